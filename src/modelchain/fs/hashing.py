"""One parallel hashing engine: directory digests (SHA-256 of each file) and OMS bundles
(SHA-256, BLAKE2b or BLAKE3 of each file or byte range) both hash through it.

Each worker thread owns one preallocated buffer, reads into it with `readinto` and feeds it
to the hasher, which releases the GIL for large updates, so the work spreads over every core.
The largest pieces go first, so a big file does not end up last on one core. The first
failure stops the others after their current buffer (and so does an interrupt of the caller).
The read loop costs one `readinto`, one `update` and one progress call per buffer, nothing
per byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from modelchain.core.errors import InputError, UsageError, install_way_out

__all__ = [
    "BLAKE3_BUFFER_SIZE",
    "BUFFER_SIZE",
    "HASH_NAMES",
    "Cancelled",
    "buffer_size",
    "hash_open_file",
    "new_hasher",
    "run_parallel",
]

#: Read size per worker. Chosen by benchmarks/bench_hash.py: sizes from 1 to 8 MiB hash at the
#: same speed from the page cache; 1 MiB keeps memory low and the buffer inside L2 cache.
BUFFER_SIZE = 1 << 20
#: blake3 spreads one update over its own threads: give it big ones
BLAKE3_BUFFER_SIZE = 8 << 20
HASH_NAMES = ("sha256", "blake2b", "blake3")

T = TypeVar("T")
R = TypeVar("R")


class Cancelled(Exception):
    """Raised inside a worker when another worker failed or the caller was interrupted."""


def new_hasher(name: str) -> Any:
    """A fresh hasher for `name` (one of `HASH_NAMES`); BLAKE3 needs the optional package."""
    if name == "sha256":
        return hashlib.sha256()
    if name == "blake2b":
        return hashlib.blake2b()
    if name != "blake3":
        raise UsageError(f"unknown hash {name!r} (choose from {', '.join(HASH_NAMES)})")
    try:
        import blake3
    except ImportError:
        raise UsageError(
            "BLAKE3 hashing needs the blake3 package: install the 'signing' extra",
            way_out=install_way_out("signing"),
        ) from None
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def buffer_size(name: str) -> int:
    """The read buffer that keeps hasher `name` fastest."""
    return BLAKE3_BUFFER_SIZE if name == "blake3" else BUFFER_SIZE


def hash_open_file(
    fd: int,
    hasher: Any,
    buf: bytearray,
    advance: Callable[[int], None],
    *,
    shown: str,
    start: int = 0,
    length: int | None = None,
    expect_size: int | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> int:
    """Feed bytes [start, start + length) of the open regular file `fd` (to its end when
    `length` is None) into `hasher` through `buf`; return how many were read.

    A file that is not `expect_size` bytes long, ends early, or whose size or modification
    time changes meanwhile raises InputError: the digest would describe no version of it.
    OSError is left to the caller, who knows what the path is called."""
    before = os.fstat(fd)
    changed = f"{shown} changed while it was being hashed"
    if expect_size is not None and before.st_size != expect_size:
        raise InputError(changed)
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # only a hint: larger readahead when not cached
            os.posix_fadvise(fd, start, length or 0, os.POSIX_FADV_SEQUENTIAL)
    update = hasher.update
    full = len(buf)
    view = memoryview(buf)
    remaining = sys.maxsize if length is None else length
    total = 0
    with io.FileIO(fd, "rb", closefd=False) as f:
        readinto = f.readinto
        f.seek(start)  # the descriptor may have been read before
        while remaining > 0:
            n = readinto(buf if remaining >= full else view[:remaining])
            if not n:
                if length is None:
                    break
                raise InputError(changed)
            update(buf if n == full else view[:n])
            total += n
            remaining -= n
            advance(n)
            if cancelled is not None and cancelled():
                raise Cancelled
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise InputError(changed)
    return total


def run_parallel(
    items: Sequence[T],
    work: Callable[[T, bytearray, Callable[[], bool] | None], R],
    *,
    workers: int,
    buffer: int = BUFFER_SIZE,
    weight: Callable[[T], int] = lambda _item: 0,
    name: str = "modelchain-hash",
) -> list[R]:
    """`work(item, buffer, cancelled)` for every item, `workers` threads at a time, heaviest
    first; results in the order of `items`.

    Each thread allocates one buffer of `buffer` bytes and reuses it for all its items;
    `cancelled` (None when there is one worker) turns true once another item failed, and the
    first real failure is raised."""
    order = sorted(range(len(items)), key=lambda i: -weight(items[i]))
    results: list[Any] = [None] * len(items)
    if workers <= 1 or len(items) <= 1:
        buf = bytearray(buffer)
        for i in order:
            results[i] = work(items[i], buf, None)
        return results
    queue = deque(order)
    stop = threading.Event()

    def worker() -> None:
        buf = bytearray(buffer)
        try:
            while not stop.is_set():
                try:
                    i = queue.popleft()
                except IndexError:
                    return
                results[i] = work(items[i], buf, stop.is_set)
        except BaseException:
            stop.set()  # the first failure ends everyone's work
            raise

    from concurrent.futures import ThreadPoolExecutor  # only here: not at every start-up

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(worker) for _ in range(min(workers, len(queue)))]
        try:
            errors = [f.exception() for f in futures]
        finally:
            stop.set()  # also on KeyboardInterrupt: workers stop after their current buffer
    real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
    if real:
        raise real[0]
    return results
