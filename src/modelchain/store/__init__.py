"""Storage backends and the one function that picks one from a location string."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LedgerUnreadable
from .base import Store, StoredBlock, Tip, Writer

__all__ = [
    "DEFAULT_LEDGER",
    "Store",
    "StoredBlock",
    "Tip",
    "Writer",
    "local_path",
    "open_store",
    "resolve_location",
]

DEFAULT_LEDGER = os.path.join(".modelchain", "ledger.db")


def resolve_location(location: str | os.PathLike[str] | None) -> str:
    """`--ledger`, else `MODELCHAIN_LEDGER`, else `.modelchain/ledger.db` here."""
    if location is None or str(location) == "":
        location = os.environ.get("MODELCHAIN_LEDGER") or DEFAULT_LEDGER
    return str(location)


def local_path(location: str | os.PathLike[str] | None) -> str | None:
    """The absolute path of a file-based ledger, None for a server or database URL."""
    loc = resolve_location(location)
    return None if "://" in loc else str(Path(loc).resolve())


def open_store(location: str | os.PathLike[str] | None, *, create: bool = False) -> Store:
    """Open the ledger named by `location`: `*.json` is the seed's format, `postgresql://`
    a PostgreSQL database, any other path an SQLite file."""
    loc = resolve_location(location)
    if "://" in loc:
        scheme = loc.split("://", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            raise LedgerUnreadable(
                f"PostgreSQL ledgers are not available in this version of modelchain: {scheme}://"
            )
        raise LedgerUnreadable(
            f"unknown ledger scheme {scheme!r}: use a path ending in .json, an SQLite file path, "
            "or postgresql://"
        )
    if loc.lower().endswith(".json"):
        from .jsonfile import JSONFileStore

        return JSONFileStore(Path(loc), create=create)
    from .sqlite import SQLiteStore

    return SQLiteStore(Path(loc), create=create)
