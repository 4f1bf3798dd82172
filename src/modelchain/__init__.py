"""modelchain: know that the model you load is the model you trained, and prove it.

The public API is imported lazily so that `modelchain --help` and `import modelchain` stay
fast; `modelchain.Ledger` and friends load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AuditReport",
    "Block",
    "Home",
    "Ledger",
    "ModelchainError",
    "Provenance",
    "Verification",
    "__version__",
    "load",
    "merkle",
]

_LAZY = {
    "Ledger": "modelchain.ledgers",
    "Block": "modelchain.log.block",
    "AuditReport": "modelchain.checks.audit",
    "Verification": "modelchain.checks.verdict",
    "Home": "modelchain.log.home",
    "ModelchainError": "modelchain.core.errors",
    "load": "modelchain.use.guard",
    "Provenance": "modelchain.claims.provenance",
}

if TYPE_CHECKING:  # pragma: no cover
    from modelchain.checks.audit import AuditReport
    from modelchain.checks.verdict import Verification
    from modelchain.claims.provenance import Provenance
    from modelchain.core import merkle
    from modelchain.core.errors import ModelchainError
    from modelchain.ledgers import Ledger
    from modelchain.log.block import Block
    from modelchain.log.home import Home
    from modelchain.use.guard import load


def __getattr__(name: str) -> Any:
    import importlib

    if name == "merkle":
        return importlib.import_module("modelchain.core.merkle")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelchain' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
