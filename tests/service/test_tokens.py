"""The token file of `modelchain serve`: private, replaced atomically, synced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelchain.log.home import Home
from modelchain.server.tokens import TokenStore


def test_token_file_is_private_and_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_umask = os.umask(0)  # a permissive umask must not make the file readable by others
    try:
        store = TokenStore(Home(tmp_path / "home"))
        token, first = store.create("write", "ci")
    finally:
        os.umask(old_umask)
    path = store.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    _token, second = store.create("read", "viewer")
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(synced) >= 2  # the file and its folder
    assert [r.id for r in TokenStore(Home(tmp_path / "home")).records()] == [first.id, second.id]

    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        store.revoke(first.id)
    monkeypatch.undo()
    assert store.authenticate(token) is not None  # a failed write leaves the old file whole
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
