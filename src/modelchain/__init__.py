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
    "Ledger": "modelchain.ledger",
    "Block": "modelchain.ledger",
    "AuditReport": "modelchain.ledger",
    "Verification": "modelchain.ledger",
    "Home": "modelchain.home",
    "ModelchainError": "modelchain.errors",
    "load": "modelchain.guard",
    "Provenance": "modelchain.provenance",
}

if TYPE_CHECKING:  # pragma: no cover
    from . import merkle
    from .errors import ModelchainError
    from .guard import load
    from .home import Home
    from .ledger import AuditReport, Block, Ledger, Verification
    from .provenance import Provenance


def __getattr__(name: str) -> Any:
    import importlib

    if name == "merkle":
        return importlib.import_module("modelchain.merkle")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelchain' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
