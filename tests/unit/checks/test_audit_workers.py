"""A full audit whose per-block checks run in worker processes reaches the verdict the audit
in one process reaches, with the same message naming the same block, whatever is wrong and
wherever (first or last chunk, two problems at once); a pool that breaks or cannot start
leaves the work to this process."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelchain.checks import audit, parallel
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import LedgerInvalid, UsageError
from modelchain.ledgers import Ledger
from modelchain.ledgers import base as ledger_base
from modelchain.log.home import Home

BLOCKS = 60
CHUNK = 7  # several chunks, the last one short


@pytest.fixture
def loc(tmp_path: Path) -> Path:
    home = Home(tmp_path / "home")
    (tmp_path / "ledger").mkdir()
    path = tmp_path / "ledger" / "ledger.db"
    with Ledger.open(path, home=home, create=True) as ledger:
        for first in range(0, BLOCKS, 20):
            ledger.append_many(
                [
                    ledger.prepare(name=f"m{i % 9}", model_hash=f"{i:064x}")
                    for i in range(first, first + 20)
                ]
            )
    return path


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Workers for ledgers this small, in chunks of 7; records whether each pool started."""
    deadline = time.monotonic() + 10  # a thread another test left may be ending
    while not parallel.fork_is_safe() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not parallel.fork_is_safe():  # forking is refused then
        names = sorted(t.name for t in threading.enumerate())
        pytest.skip(f"threads of other tests still run ({', '.join(names)}): no worker is forked")
    monkeypatch.setattr(parallel, "MIN_BLOCKS", 1)
    # nothing appends meanwhile: no need to wait for a checkpoint being published
    monkeypatch.setattr(ledger_base, "PUBLISH_WAIT_S", 0.01)
    monkeypatch.setattr(parallel, "CHUNK", CHUNK)
    started: list[bool] = []
    real = parallel._pool

    def spy(count: int) -> Any:
        pool = real(count)
        started.append(pool is not None)
        return pool

    monkeypatch.setattr(parallel, "_pool", spy)
    yield started


def _audit(loc: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """The full audit's outcome: "ok" or its message."""
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    # a verifier meeting the log afresh, with the operator's key
    folder = loc.parent.parent / f"auditor-{workers}"
    if not folder.exists():
        folder.mkdir(mode=0o700)
        shutil.copy2(loc.parent.parent / "home" / "operator.key", folder / "operator.key")
    home = Home(folder)
    try:
        with Ledger.open(loc, home=home) as ledger:
            ledger.audit(full=True, update_trust=False)
        return "ok"
    except LedgerInvalid as exc:
        return str(exc)


def _body(loc: Path, index: int, body: str) -> None:
    conn = sqlite3.connect(loc)
    conn.execute("UPDATE blocks SET body = ? WHERE idx = ?", (body, index))
    conn.commit()
    conn.close()


def _edit(loc: Path, index: int, **change: Any) -> None:
    conn = sqlite3.connect(loc)
    ((text,),) = conn.execute("SELECT body FROM blocks WHERE idx = ?", (index,)).fetchall()
    conn.close()
    raw = __import__("json").loads(text)
    raw.update(change)
    _body(loc, index, canonical_json(raw).decode())


def test_a_sound_ledger_passes_in_workers(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _audit(loc, 2, monkeypatch) == "ok"
    assert pools == [True]
    assert _audit(loc, 0, monkeypatch) == "ok"
    assert pools == [True]  # 0 workers: checked here, no pool asked for


TAMPERING = {
    "hash-first-chunk": lambda loc: _edit(loc, 3, model_hash="ab" * 32),
    "hash-last-chunk": lambda loc: _edit(loc, BLOCKS - 1, timestamp=1),
    "fields-missing": lambda loc: _body(loc, 30, '{"index": 30}'),
    "duplicate-key": lambda loc: _body(loc, 22, '{"index": 22, "index": 22}'),
    "not-an-object": lambda loc: _body(loc, 8, "[]"),
    "version-skipped": lambda loc: _edit(loc, 40, version=9),
    "chain-then-garbage": lambda loc: (
        _edit(loc, 15, previous_hash="cd" * 32),
        _body(loc, 16, '{"index": 16, "name": 1}'),
    ),
    "garbage-then-chain": lambda loc: (
        _body(loc, 15, '{"index": 15, "name": 1}'),
        _edit(loc, 16, previous_hash="cd" * 32),
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_the_same_block_is_named_with_or_without_workers(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    TAMPERING[tamper](loc)
    here = _audit(loc, 0, monkeypatch)
    assert here != "ok" and here.startswith("block ")
    assert _audit(loc, 2, monkeypatch) == here
    assert pools == [True]


def _die_in_a_worker(start: int, bodies: list[Any], origin: str | None) -> Any:
    """Checks here as usual, but a worker process exits at its first task."""
    if os.getpid() != PARENT:
        os._exit(3)
    return audit.check_texts(start, bodies, origin)


PARENT = os.getpid()


def test_a_pool_that_breaks_leaves_the_blocks_to_this_process(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "check_texts", _die_in_a_worker)
    assert _audit(loc, 2, monkeypatch) == "ok"
    _edit(loc, 50, model_hash="ef" * 32)
    assert (
        _audit(loc, 2, monkeypatch) == "block 50: current_hash does not match the block's contents"
    )
    assert pools == [True, True]


def test_no_worker_is_forked_beside_another_thread(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert _audit(loc, 2, monkeypatch) == "ok"
    finally:
        release.set()
        other.join()
    assert pools == [False]


def test_a_worker_count_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.WORKERS_ENV, "two")
    with pytest.raises(UsageError, match="MODELCHAIN_AUDIT_WORKERS must be a whole number"):
        parallel.worker_count()
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.worker_count() == 3


class _Sink:
    """A progress sink that records what it is told."""

    def __init__(self) -> None:
        self.started: list[tuple[int | None, str]] = []
        self.done = 0

    def start(self, total: int | None, description: str) -> None:
        self.started.append((total, description))

    def advance(self, n: int) -> None:
        self.done += n


@pytest.mark.parametrize("workers", [0, 2])
def test_a_full_audit_reports_each_block_it_checked(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(audit, "REPORT_EVERY", 8)
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    sink = _Sink()
    with Ledger.open(loc, home=Home(loc.parent.parent / "home")) as ledger:
        ledger.audit(full=True, progress=sink)
    assert sink.started == [(BLOCKS, "auditing")]
    assert sink.done == BLOCKS
    assert pools == ([True] if workers else [])


def test_a_process_still_appending_audits_here(
    loc: Path, pools: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open store's checkpointer thread holds an SQLite connection a fork would copy."""
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    with Ledger.open(loc, home=Home(loc.parent.parent / "home")) as ledger:
        ledger.append(name="late", model_hash="ab" * 32)
        assert ledger.audit(full=True).size == BLOCKS + 1
    assert pools == [False]
