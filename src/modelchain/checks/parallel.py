"""A full audit's per-block checks in worker processes.

Most of a full audit is work each block needs nothing else for: parsing it strictly,
recomputing its hash, verifying its registration signatures, hashing its Merkle leaf
(`audit.check_block`). Worker processes do that for chunks of blocks read as stored text;
this process walks their records in block order, doing everything that spans blocks (chain,
versions, lookup columns, tree, index). Each record is the one `check_block` makes in this
process, and problems are named in block order, so the verdict and its message are the
same either way; only the time differs.

`MODELCHAIN_AUDIT_WORKERS` sets how many worker processes (0: none, every block checked in
this process); by default one per CPU this process may run on, when there are two or more.
Workers are forked, so only on Linux, from a process with no other thread running but the
trust state's writer; a pool that cannot start, or that breaks, leaves the remaining chunks
to this process."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from modelchain.checks.audit import Checked, check_texts
from modelchain.core.errors import LedgerInvalid, UsageError
from modelchain.log.home import WRITER_THREAD

__all__ = ["CHUNK", "MIN_BLOCKS", "WORKERS_ENV", "checked_in_workers", "worker_count"]

WORKERS_ENV = "MODELCHAIN_AUDIT_WORKERS"
#: blocks per task: large enough that sending them costs little next to checking them
CHUNK = 8192
#: below this many blocks, starting the workers costs more than they save
MIN_BLOCKS = 50_000
#: chunks in flight per worker (bounds the memory the text of pending chunks takes)
AHEAD = 2


def worker_count() -> int:
    """How many worker processes a full audit uses (`MODELCHAIN_AUDIT_WORKERS`, else one
    per usable CPU when there are two or more)."""
    setting = os.environ.get(WORKERS_ENV, "").strip()
    if setting:
        if not setting.isdigit():
            raise UsageError(
                f"{WORKERS_ENV} must be a whole number of worker processes (0: none), "
                f"not {setting!r}"
            )
        return int(setting)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        cpus = os.cpu_count() or 1
    return cpus if cpus >= 2 else 0


def _chunks(rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, list[Any]]]:
    """(first position, bodies) of up to `CHUNK` consecutive rows."""
    start, bodies = 0, []
    for position, body in rows:
        if not bodies:
            start = position
        bodies.append(body)
        if len(bodies) >= CHUNK:
            yield start, bodies
            bodies = []
    if bodies:
        yield start, bodies


#: threads of ours a fork is sound beside: the trust state's writer, which a forked child
#: starts afresh without (`log.home`). Not an SQLite store's checkpointer: a child would
#: inherit its connection mid-checkpoint, and whether that is ever finalised there is the
#: interpreter's business; a process that still holds an appending store audits here.
FORK_SAFE_THREADS = frozenset({WRITER_THREAD})


def fork_is_safe() -> bool:
    """No thread runs here but this one and those of `FORK_SAFE_THREADS`."""
    main = threading.current_thread()
    return all(t is main or t.name in FORK_SAFE_THREADS for t in threading.enumerate())


def _pool(count: int) -> ProcessPoolExecutor | None:
    """Workers forked from this process: they start at once, import nothing and run no code
    of the caller's (a script's unguarded main module is not run again, as spawned workers
    would). Only where forking is sound: on Linux, from a process with no other thread
    (whose locks a fork could copy held) but those a fork is safe beside; None otherwise,
    and the blocks are checked here."""
    if sys.platform != "linux" or not fork_is_safe():
        return None
    try:
        return ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("fork"), initializer=_in_worker
        )
    except (OSError, ValueError):
        return None


def _in_worker() -> None:
    """A worker leaves Ctrl-C to this process (which stops the audit and the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Around the submit that forks the workers: what this process holds is frozen for the
    garbage collector first, so no object of ours (an SQLite connection left unclosed, say,
    whose closing in a child could fold the WAL back under this process) is finalised in a
    worker; this process collects as before once they are forked."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def checked_in_workers(
    rows: Iterator[tuple[int, Any]], origin: str | None, count: int
) -> Iterator[tuple[Checked, None]]:
    """`check_block`'s records for blocks stored as text (`rows`: (position, body) in
    order), made by `count` worker processes, yielded in block order as `walk_blocks` takes
    them. A block that does not parse raises its `LedgerInvalid` after the blocks before
    it, as the walk in this process would."""
    pool = started = _pool(count) if count > 0 else None
    pending: deque[tuple[int, list[Any], Future[tuple[list[Checked], str]] | None]] = deque()

    forked = False  # the first submit forks the workers

    def submit(start: int, bodies: list[Any]) -> None:
        nonlocal pool, forked
        future = None
        if pool is not None:
            try:
                with contextlib.nullcontext() if forked else _forking():
                    forked = True
                    future = pool.submit(check_texts, start, bodies, origin)
            except (BrokenProcessPool, RuntimeError, OSError):
                pool = None  # left to this process from here on
        pending.append((start, bodies, future))

    def results() -> Iterator[tuple[Checked, None]]:
        nonlocal pool
        start, bodies, future = pending.popleft()
        outcome = None
        if future is not None:
            try:
                outcome = future.result()
            except (BrokenProcessPool, OSError):
                pool = None
        if outcome is None:
            outcome = check_texts(start, bodies, origin)
        records, problem = outcome
        for record in records:
            yield record, None
        if problem:
            raise LedgerInvalid(problem)

    try:
        for start, bodies in _chunks(rows):
            submit(start, bodies)
            if len(pending) > AHEAD * max(count, 1):
                yield from results()
        while pending:
            yield from results()
    finally:
        if started is not None:
            started.shutdown(wait=False, cancel_futures=True)
