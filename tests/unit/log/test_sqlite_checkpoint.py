"""An appending SQLite store folds its WAL back into the database in a thread of its own (the
appends' commits only past a backstop), and stops that thread when it closes."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from modelchain.ledgers import Ledger
from modelchain.log.home import Home
from modelchain.log.store import sqlite as sqlite_store


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == sqlite_store.CHECKPOINT_THREAD]


def _in_database_file(path: Path) -> int:
    """Blocks the database file itself holds (not the WAL): those folded back (0 while it
    holds no table yet, or is caught in the middle of a checkpoint)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM blocks").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()


def test_the_wal_is_folded_back_off_the_append_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_S", 0.0)
    monkeypatch.setattr(sqlite_store, "BACKSTOP_PAGES", 1_000_000)  # never by a commit
    (tmp_path / "ledger").mkdir()
    path = tmp_path / "ledger" / "ledger.db"
    before = len(_checkpointers())
    with Ledger.open(path, home=Home(tmp_path / "home"), create=True) as ledger:
        for i in range(12):
            ledger.append(name=f"m{i}", model_hash=f"{i:064x}")
        assert len(_checkpointers()) == before + 1
        deadline = time.monotonic() + 10
        while _in_database_file(path) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _in_database_file(path) >= 10  # poked after blocks 5 and 10
        ledger.audit(full=True)
    assert len(_checkpointers()) == before  # stopped with the store


def test_a_store_dropped_unclosed_stops_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ledger").mkdir()
    path = tmp_path / "ledger" / "ledger.db"
    before = len(_checkpointers())
    ledger = Ledger.open(path, home=Home(tmp_path / "home"), create=True)
    ledger.append(name="m", model_hash="0" * 64)
    assert len(_checkpointers()) == before + 1
    del ledger  # never closed
    gc.collect()
    deadline = time.monotonic() + 10
    while len(_checkpointers()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_checkpointers()) == before


def test_a_store_that_only_reads_starts_no_thread(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    path = tmp_path / "ledger" / "ledger.db"
    home = Home(tmp_path / "home")
    with Ledger.open(path, home=home, create=True) as ledger:
        ledger.append(name="m", model_hash="0" * 64)
    before = len(_checkpointers())
    with Ledger.open(path, home=home) as ledger:
        ledger.audit(full=True)
        assert len(_checkpointers()) == before
