"""Storage backends: one small interface (`base`), one module per backend."""

from __future__ import annotations

from modelchain.log.store.base import (
    DEFAULT_LEDGER,
    Store,
    StoredBlock,
    StoreSubtrees,
    Tip,
    Writer,
    no_ledger_message,
)

__all__ = [
    "DEFAULT_LEDGER",
    "Store",
    "StoreSubtrees",
    "StoredBlock",
    "Tip",
    "Writer",
    "no_ledger_message",
]
