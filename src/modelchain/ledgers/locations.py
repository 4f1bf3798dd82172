"""Where a ledger lives: a location string (`--ledger`, `MODELCHAIN_LEDGER`, the nearest
`.modelchain/ledger.db`) and the store that opens it."""

from __future__ import annotations

import os
from pathlib import Path

from modelchain.core.errors import LedgerUnreadable
from modelchain.log.store.base import DEFAULT_LEDGER, Store

__all__ = ["display_location", "find_ledger", "local_path", "open_store", "resolve_location"]


def resolve_location(location: str | os.PathLike[str] | None) -> str:
    """`--ledger`, else `MODELCHAIN_LEDGER`, else the nearest `.modelchain/ledger.db` in this
    folder or a parent (as git finds its repository), else `.modelchain/ledger.db` here."""
    if location is None or str(location) == "":
        location = os.environ.get("MODELCHAIN_LEDGER") or find_ledger() or DEFAULT_LEDGER
    return str(location)


def find_ledger(start: str | os.PathLike[str] | None = None) -> str | None:
    """The nearest `.modelchain/ledger.db` in `start` (default: here) or a parent folder.

    The search stops at the user's home folder (checked, not passed) and where the file
    system changes, as git's does: a ledger above them belongs to someone else's tree. One in
    the current folder is returned as the relative default, one above it as an absolute path.
    """
    here = Path(start) if start is not None else Path.cwd()
    if os.path.lexists(here / DEFAULT_LEDGER):
        return DEFAULT_LEDGER if start is None else str(here / DEFAULT_LEDGER)
    try:
        folder = here.resolve()
        device = folder.stat().st_dev
        user_home = Path.home().resolve()
    except (OSError, RuntimeError):
        return None
    while folder != user_home and folder.parent != folder:
        folder = folder.parent
        try:
            if folder.stat().st_dev != device:
                return None
        except OSError:
            return None
        candidate = folder / DEFAULT_LEDGER
        if os.path.lexists(candidate):
            return str(candidate)
    return None


def local_path(location: str | os.PathLike[str] | None) -> str | None:
    """The absolute path of a file-based ledger, None for a server or database URL."""
    loc = resolve_location(location)
    if "://" in loc:
        return None
    from modelchain.log.store.files import key_path

    return key_path(loc)


def display_location(location: str | os.PathLike[str] | None) -> str:
    """The ledger's location as it may be shown: a database URL loses its password."""
    loc = resolve_location(location)
    if loc.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in loc:
        from modelchain.log.store.postgres import PgLocation

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
            from modelchain.log.store.postgres import PostgresStore  # psycopg is imported only here

            return PostgresStore(loc, create=create)
        if scheme in ("http", "https"):
            from modelchain.ledgers.client import (
                LedgerClient,  # a server: read over its API, every answer checked
            )

            return LedgerClient(loc)
        raise LedgerUnreadable(
            f"unknown ledger scheme {scheme!r}: use a path ending in .json, an SQLite file path, "
            "postgresql:// or https://"
        )
    if loc.lower().endswith(".json"):
        from modelchain.log.store.jsonfile import JSONFileStore

        return JSONFileStore(Path(loc), create=create)
    from modelchain.log.store.sqlite import SQLiteStore

    return SQLiteStore(Path(loc), create=create)
