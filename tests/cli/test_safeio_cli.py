"""The commands that write files (`sign`, `key generate`, a JSON ledger's rewrite) never write
through a planted symbolic link; the one atomic write itself is in unit/fs/test_safeio.py, whose
planting helper these tests share."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok
from unit.fs.test_safeio import SECRET, _plant_everywhere

from modelchain.claims import keys


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(SECRET)
    return path


def test_sign_never_writes_through_a_planted_link(
    run, workdir: Path, victim: Path, home: Path
) -> None:
    """`sign` in a shared folder: links at the bundle path and at the old predictable
    temporary name leave their destination untouched."""
    model = workdir / "m"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"weights")
    assert_ok(run("key", "generate", "signer", "--type", "p256"))
    sig = workdir / "model.sig"
    sig.symlink_to(victim)
    _plant_everywhere(workdir, "model.sig", victim)
    assert_ok(run("sign", "m", "--private-key", "signer"))
    assert victim.read_bytes() == SECRET
    assert not sig.is_symlink()
    assert_ok(run("verify", "m", "--signature", "model.sig", "--public-key", "signer"))
    assert stat.S_IMODE(sig.stat().st_mode) == 0o644


def test_key_generation_refuses_a_planted_link(run, home: Path, victim: Path) -> None:
    ring = keys.KeyRing(home)
    ring.dir.mkdir(parents=True)
    (ring.dir / "alice.pem").symlink_to(victim)
    assert_clean_error(run("key", "generate", "alice"), 2, "already exists")
    assert victim.read_bytes() == SECRET
    assert not (ring.dir / "alice.pub").exists()

    (ring.dir / "bob.pub").symlink_to(victim.parent / "absent.pub")
    assert_clean_error(run("key", "generate", "bob"), 2, "already exists")
    assert not (ring.dir / "bob.pem").exists()  # no half pair left behind
    stored = ring.generate("carol")
    assert stat.S_IMODE(stored.private_path.stat().st_mode) == 0o600


def test_json_ledger_rewrite_does_not_follow_a_planted_temporary(
    run, workdir: Path, model: Path, victim: Path
) -> None:
    _plant_everywhere(workdir, "ledger.json", victim)
    assert_ok(run("--ledger", "ledger.json", "register", model))
    assert_ok(run("--ledger", "ledger.json", "register", model, "--name", "again"))
    assert victim.read_bytes() == SECRET
    assert_ok(run("--ledger", "ledger.json", "audit"))
