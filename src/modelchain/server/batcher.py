"""Group commit: one writer thread appends every pending registration in one transaction.

Under light load a batch is a single request, so latency stays that of one append; under
heavy load requests queue while a batch commits and the next batch takes them all, so the
cost of the lock, the commit and the checkpoint signature is shared. A future is resolved
only after `Ledger.append_many` returned, i.e. after the commit: an acknowledged
registration is durable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from modelchain.core.errors import ModelchainError
from modelchain.ledgers import Ledger
from modelchain.log.block import Block, Registration

log = logging.getLogger("modelchain.server")


@dataclass(frozen=True)
class Appended:
    """One registration, committed: the block, its leaf data, and its proof into `note`."""

    block: Block
    data: bytes
    note: str
    size: int
    root_hash: bytes
    proof: list[bytes]


@dataclass
class _Job:
    entry: Registration
    future: Future[Appended]


class Batcher:
    """Owns the writing `Ledger` (opened in, and used only by, its own thread)."""

    def __init__(
        self,
        open_ledger: Callable[[], Ledger],
        *,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
        turn_file: str | None = None,
    ) -> None:
        self._open = open_ledger
        self._max = max(1, max_batch)
        #: a file the writers of several processes take turns on (flock) before SQLite's
        #: own lock: a waiter wakes when the lock is free, where SQLite's busy handler
        #: polls with sleeps of up to 100 ms, and a busy neighbour can starve it for seconds
        self._turn_file = turn_file
        self._turn_fd: int | None = None
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="modelchain-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Finish what is queued, then close the ledger (flushing the trust state)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)

    def submit(self, entry: Registration) -> Future[Appended]:
        future: Future[Appended] = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("the writer is not running"))
            return future
        self._queue.put(_Job(entry, future))
        return future

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            ledger = self._open()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        if self._turn_file is not None:
            try:
                self._turn_fd = os.open(self._turn_file, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:  # a read-only directory: SQLite's lock alone still holds
                log.warning("cannot open %s (%s): writers will poll", self._turn_file, exc)
        try:
            stopping = False
            while not stopping:
                job = self._queue.get()
                if job is None:
                    break
                jobs = [job]
                while len(jobs) < self._max:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    jobs.append(more)
                self._commit(ledger, jobs)
        finally:
            ledger.close()
            if self._turn_fd is not None:
                os.close(self._turn_fd)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if self._turn_fd is None:
            yield
            return
        import fcntl

        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def _commit(self, ledger: Ledger, jobs: list[_Job]) -> None:
        try:
            with self._turn():
                blocks = ledger.append_many([j.entry for j in jobs])
        except ModelchainError as exc:
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            # one bad entry must not fail its neighbours: retry them one by one
            for job in jobs:
                self._commit(ledger, [job])
            return
        except BaseException as exc:  # a bug or a database failure: every caller hears it
            log.exception("append failed")
            for job in jobs:
                job.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(blocks))
        try:
            note, checkpoint = ledger.read_checkpoint()
            proofs = ledger.inclusion_proofs([b.index for b in blocks], checkpoint.size)
        except BaseException as exc:  # committed, but the proof could not be read back
            for job in jobs:
                job.future.set_exception(exc)
            return
        for job, block, proof in zip(jobs, blocks, proofs, strict=True):
            job.future.set_result(
                Appended(
                    block, block.leaf_data(), note, checkpoint.size, checkpoint.root_hash, proof
                )
            )
