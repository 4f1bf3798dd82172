"""One atomic write for every file modelchain writes: a random temporary name created
exclusively and never through a link, fsync'd and renamed over the target. A symbolic link
planted in a shared folder (at any predictable temporary name, or at the target itself) must
never turn the write into an overwrite of the link's destination."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelchain.fs import safeio as fsio
from modelchain.log.home import Home, _write_private
from modelchain.server.tokens import TokenStore

SECRET = b"the victim's file, which no write of ours may touch\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(SECRET)
    return path


def _plant_everywhere(folder: Path, name: str, victim: Path) -> list[Path]:
    """Links at every temporary name an older writer would have predicted."""
    planted = [
        folder / f".{name}.{os.getpid()}.tmp",
        folder / f".{name}.tmp",
        folder / f"{name}.tmp",
    ]
    for link in planted:
        link.symlink_to(victim)
    return planted


def test_atomic_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    fsio.atomic_write(target, "new contents", 0o600)
    assert target.read_text() == "new contents"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fsio.atomic_write(target, b"shared", 0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp left


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "model.sig"
    target.symlink_to(victim)
    fsio.atomic_write(target, b"bundle", 0o644)
    assert victim.read_bytes() == SECRET
    assert not target.is_symlink() and target.read_bytes() == b"bundle"


def test_planted_temporary_names_are_never_written_through(tmp_path: Path, victim: Path) -> None:
    planted = _plant_everywhere(tmp_path, "trust.json", victim)
    fsio.atomic_write(tmp_path / "trust.json", "{}", 0o600)
    assert victim.read_bytes() == SECRET
    assert all(p.is_symlink() for p in planted)
    assert (tmp_path / "trust.json").read_text() == "{}"


def test_no_overwrite_refuses_an_existing_file_or_link(tmp_path: Path, victim: Path) -> None:
    existing = tmp_path / "key.pem"
    existing.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        fsio.atomic_write(existing, b"other", 0o600, overwrite=False)
    assert existing.read_bytes() == b"mine"
    dangling = tmp_path / "dangling.pem"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        fsio.atomic_write(dangling, b"secret", 0o600, overwrite=False)
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dangling.pem",
        "key.pem",
        "victim.txt",
    ]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ledger.json"
    target.write_text("old")

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)  # the disk fills, whoever calls fsync
    with pytest.raises(OSError, match="No space"):
        fsio.atomic_write(target, "new", 0o600)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


def test_trust_state_and_token_file_are_private_and_not_redirected(
    tmp_path: Path, victim: Path
) -> None:
    home = Home(tmp_path / "home")
    home.path.mkdir()
    target = home.path / "state.json"
    target.symlink_to(victim)
    _write_private(target, "{}")
    assert victim.read_bytes() == SECRET
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    store = TokenStore(home)
    _plant_everywhere(store.path.parent, store.path.name, victim)
    store.create("write", "ci")
    assert victim.read_bytes() == SECRET
    assert not store.path.is_symlink()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


# -- the one safe regular-file open ---------------------------------------------------------


def test_read_regular_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: a blocking open would wait for ever
    with pytest.raises(fsio.NotRegularFile) as caught:
        fsio.read_regular(fifo, limit=10)
    assert stat.S_ISFIFO(caught.value.mode) and not caught.value.is_dir


def test_read_regular_is_bounded_and_can_refuse_links(tmp_path: Path, victim: Path) -> None:
    assert fsio.read_regular(victim, limit=4) == SECRET[:5]  # one byte over the limit
    assert fsio.read_regular(victim) == SECRET
    link = tmp_path / "link"
    link.symlink_to(victim)
    assert fsio.read_regular(link) == SECRET
    with pytest.raises(OSError):
        fsio.read_regular(link, follow=False)
    with pytest.raises(fsio.NotRegularFile) as caught:
        fsio.read_regular(tmp_path)
    assert caught.value.is_dir
