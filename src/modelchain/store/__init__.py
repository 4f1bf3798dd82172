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
    "display_location",
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
    if "://" in loc:
        return None
    from .files import key_path

    return key_path(loc)


def display_location(location: str | os.PathLike[str] | None) -> str:
    """The ledger's location as it may be shown: a database URL loses its password."""
    loc = resolve_location(location)
    if loc.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in loc:
        from .postgres import PgLocation

        return PgLocation(loc).display
    return loc


def open_store(location: str | os.PathLike[str] | None, *, create: bool = False) -> Store:
    """Open the ledger named by `location`: `*.json` is the seed's format, `postgresql://`
    a PostgreSQL database, `https://` (or `http://` on loopback) a `modelchain serve`
    server, any other path an SQLite file."""
    loc = resolve_location(location)
    if "://" in loc:
        scheme = loc.split("://", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            from .postgres import PostgresStore  # psycopg is imported only here

            return PostgresStore(loc, create=create)
        if scheme in ("http", "https"):
            from .http import HTTPStore  # a server: read over its API, every answer checked

            return HTTPStore(loc)
        raise LedgerUnreadable(
            f"unknown ledger scheme {scheme!r}: use a path ending in .json, an SQLite file path, "
            "postgresql:// or https://"
        )
    if loc.lower().endswith(".json"):
        from .jsonfile import JSONFileStore

        return JSONFileStore(Path(loc), create=create)
    from .sqlite import SQLiteStore

    return SQLiteStore(Path(loc), create=create)
