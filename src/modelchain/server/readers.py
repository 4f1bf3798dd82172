"""Who reads the ledger for the service, and which signed checkpoint a request sees.

Threads: SQLite connections belong to the thread that opened them, so reads of a local
ledger run on the event loop's thread with one connection (they are short indexed lookups),
and reads of a database ledger run in a few threads of their own, one connection each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from modelchain.core.note import Checkpoint
from modelchain.ledgers import Ledger

log = logging.getLogger("modelchain.server")
T = TypeVar("T")


class Readers:
    """Ledger objects for reading, one per thread that reads: the loop's own thread for a
    file ledger, else a few threads of their own (each Ledger holds a connection pool, so
    Starlette's 40-thread pool would open far more connections than reads need)."""

    THREADS = 4

    def __init__(self, open_ledger: Callable[[], Ledger]) -> None:
        self._open = open_ledger
        self._local = threading.local()
        self.inline = True
        self._pool: ThreadPoolExecutor | None = None
        self._opened: list[Ledger] = []

    def get(self) -> Ledger:
        ledger = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = self._open()
            self._opened.append(ledger)
        return ledger

    async def run(self, fn: Callable[[Ledger], T]) -> T:
        if self.inline:
            return fn(self.get())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="modelchain-read")
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self.get()))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for ledger in self._opened:
            try:
                ledger.close()
            except Exception:  # a database gone at shutdown: nothing left to save
                log.debug("closing a reader failed", exc_info=True)


class SignedView:
    """The newest signed checkpoint, as a request must see it: read after the request
    arrived, so an answer never predates a registration another worker acknowledged.

    A file ledger's note is one indexed read on the loop's thread. On a database, requests
    that arrive while a read is in flight share the next one (at most one in flight and one
    waiting), so a busy worker pays one round trip per batch of requests, not per request.
    The signature is checked once per new note (`Ledger.read_checkpoint`)."""

    def __init__(self, readers: Readers) -> None:
        self.readers = readers
        self._known: tuple[str, Checkpoint] | None = None
        self._running: asyncio.Future[str] | None = None
        self._queued: asyncio.Future[str] | None = None

    async def current(self) -> tuple[str, Checkpoint]:
        if self.readers.inline:
            note = self.readers.get().checkpoint()
        else:
            note = await asyncio.shield(self._next_read())
        known = self._known
        if known is not None and known[0] == note:
            return known
        known = await self.readers.run(lambda ledger: ledger.read_checkpoint())
        self._known = known
        return known

    def _next_read(self) -> asyncio.Future[str]:
        """A read that starts now if none is in flight, else right after the one that is."""
        if self._running is None:
            self._running = self._start()
            return self._running
        if self._queued is None:
            self._queued = asyncio.get_running_loop().create_future()
        return self._queued

    def _start(self) -> asyncio.Future[str]:
        task = asyncio.ensure_future(self.readers.run(lambda ledger: ledger.checkpoint()))
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _done: asyncio.Future[str]) -> None:
        self._running = None
        queued, self._queued = self._queued, None
        if queued is None:
            return
        self._running = running = self._start()

        def relay(done: asyncio.Future[str]) -> None:
            if queued.done():
                return
            if done.cancelled():
                queued.cancel()
            elif (exc := done.exception()) is not None:
                queued.set_exception(exc)
            else:
                queued.set_result(done.result())

        running.add_done_callback(relay)
