"""The one reader of user-named small files (keys, passwords, bundles, provenance)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelchain.core.errors import InputError, KeyFileError
from modelchain.fs.inputs import read_small_file


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _socket(tmp_path: Path) -> Path:
    import socket

    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the file stays after the socket is closed; opening it fails
    server.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "no such key file"),
        (lambda d: d, "is a directory, not a key file"),
        (_fifo, "not a regular file"),  # opening it would block forever
        (_socket, "not a regular file"),  # it cannot even be opened
        (lambda d: (d / "big").write_bytes(b"x" * 101) and d / "big", "too large for a key file"),
        (lambda d: (d / "blank").write_bytes(b" \n\n") and d / "blank", "key file is empty"),
    ],
)
def test_refusals_name_the_file(tmp_path: Path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(KeyFileError, match=message) as info:
        read_small_file(path, limit=100, what="key file", error=KeyFileError)
    assert str(path) in str(info.value)


def test_reads_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "ok"
    path.write_bytes(b"y" * 100)
    assert read_small_file(path, limit=100, what="bundle") == b"y" * 100
    with pytest.raises(InputError, match=r"limit 1 KiB"):
        path.write_bytes(b"y" * 1025)
        read_small_file(path, limit=1024, what="bundle")
