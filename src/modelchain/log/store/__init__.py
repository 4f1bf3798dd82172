"""Storage backends: one small interface (`base`), one module per backend."""

from __future__ import annotations

from modelchain.log.store.base import (
    DEFAULT_LEDGER,
    NO_LEDGER_WAY_OUT,
    Store,
    StoredBlock,
    StoreSubtrees,
    Tip,
    Writer,
    no_ledger_message,
)

__all__ = [
    "DEFAULT_LEDGER",
    "NO_LEDGER_WAY_OUT",
    "Store",
    "StoreSubtrees",
    "StoredBlock",
    "Tip",
    "Writer",
    "no_ledger_message",
]
