"""The one parallel hashing engine (directory digests and OMS bundles)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from modelchain.core.errors import InputError
from modelchain.fs import hashing


def test_results_keep_the_order_of_the_items_and_each_worker_has_one_buffer() -> None:
    buffers: set[int] = set()
    lock = threading.Lock()

    def work(item: int, buf: bytearray, cancelled: object) -> int:
        with lock:
            buffers.add(id(buf))
        return item * 2

    items = list(range(50))
    assert hashing.run_parallel(items, work, workers=4, weight=lambda i: i % 7) == [
        i * 2 for i in items
    ]
    assert 1 <= len(buffers) <= 4
    assert hashing.run_parallel(items, work, workers=1) == [i * 2 for i in items]


def test_the_first_failure_stops_the_others_and_is_raised() -> None:
    started: list[int] = []

    def work(item: int, buf: bytearray, cancelled: object) -> int:
        started.append(item)
        if item == 0:
            raise InputError("broken")
        return item

    with pytest.raises(InputError, match="broken"):
        hashing.run_parallel(list(range(1000)), work, workers=2, weight=lambda i: -i)
    assert len(started) < 1000


def test_a_byte_range_and_a_whole_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    seen: list[int] = []
    for name in ("sha256", "blake2b"):
        fd = os.open(path, os.O_RDONLY)
        try:
            h = hashing.new_hasher(name)
            n = hashing.hash_open_file(
                fd, h, bytearray(1000), seen.append, shown="f", start=100, length=2000
            )
            assert n == 2000 and h.hexdigest() == hashlib.new(name, data[100:2100]).hexdigest()
            whole = hashing.new_hasher(name)
            assert hashing.hash_open_file(fd, whole, bytearray(1000), seen.append, shown="f") == (
                len(data)
            )
            assert whole.hexdigest() == hashlib.new(name, data).hexdigest()
            with pytest.raises(InputError, match="changed while it was being hashed"):
                hashing.hash_open_file(
                    fd, h, bytearray(10), seen.append, shown="f", expect_size=len(data) + 1
                )
            with pytest.raises(InputError, match="changed while it was being hashed"):
                hashing.hash_open_file(
                    fd, h, bytearray(10), seen.append, shown="f", start=len(data) - 1, length=5
                )
        finally:
            os.close(fd)
    assert all(0 < n <= 1000 for n in seen)
