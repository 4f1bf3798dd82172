"""Planting a key by name: a file called `alice` in the current directory (or inside an
unpacked model someone else shipped) must never supply the key that `--signer alice`,
`--public-key alice`, `--sign-key alice`, `--private-key alice` or `load(signers=["alice"])`
trusts. Bare names come from the key ring only, files only where the argument is a path, and
a key ID only when it is long enough that nobody can make a key to match it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok

import modelchain
from modelchain.claims import keys
from modelchain.core.errors import KeyFileError, SignatureError, UsageError
from modelchain.ledgers import Ledger


@pytest.fixture
def alice(home: Path) -> keys.StoredKey:
    return keys.KeyRing(home).generate("alice")


@pytest.fixture
def mallory(workdir: Path) -> tuple[keys.PrivateKey, Path]:
    """The attacker's key; its private half kept outside the victim's key ring."""
    key = keys.generate("ed25519")
    path = workdir.parent / "mallory.pem"
    path.write_bytes(key.pem())
    return key, path


def test_a_planted_public_key_file_is_not_the_signer(
    run, workdir: Path, model: Path, alice, mallory
) -> None:
    """The attacker registers their model signed by their key and ships a file `alice`
    holding their public key: `verify --signer alice` still means the key ring's alice."""
    key, private = mallory
    (workdir / "alice").write_bytes(key.public.pem())
    assert_ok(run("register", model, "--sign-key", private))
    line = assert_clean_error(run("verify", model, "--signer", "alice"), 1, "not signed by key")
    assert alice.public.key_id[:16] in line
    # the same file given as a path is what the user asked for
    assert_ok(run("verify", model, "--signer", "./alice"))


def test_a_planted_file_inside_the_model_directory_is_ignored(
    run, workdir: Path, model: Path, alice, mallory
) -> None:
    key, private = mallory
    shipped = workdir / "unpacked"
    shipped.mkdir()
    shutil.copyfile(model, shipped / "model.joblib")
    (shipped / "alice").write_bytes(key.public.pem())
    assert_ok(run("--ledger", workdir / "l.db", "register", shipped / "model.joblib",
                  "--sign-key", private))  # fmt: skip
    result = run("--ledger", workdir / "l.db", "verify", "model.joblib", "--signer", "alice",
                 cwd=shipped)  # fmt: skip
    assert_clean_error(result, 1, "not signed by key", alice.public.key_id[:16])


def test_no_key_ring_entry_means_no_key(run, workdir: Path, model: Path, mallory) -> None:
    """Without `alice` in the key ring, the planted file is not a fallback: usage error."""
    key, private = mallory
    (workdir / "alice").write_bytes(key.public.pem())
    assert_ok(run("register", model, "--sign-key", private))
    assert_clean_error(
        run("verify", model, "--signer", "alice"), 2, "no key named 'alice'", "./alice"
    )


def test_a_planted_private_key_file_does_not_sign(
    run, workdir: Path, model: Path, alice, mallory
) -> None:
    key, _private = mallory
    (workdir / "alice").write_bytes(key.pem())
    out = json.loads(assert_ok(run("register", model, "--sign-key", "alice", "--json")).stdout)
    assert [s["keyid"] for s in out["block"]["signatures"]] == [alice.public.key_id]


def test_sign_key_without_a_ring_entry_registers_nothing(
    run, workdir: Path, model: Path, mallory
) -> None:
    key, _private = mallory
    (workdir / "alice").write_bytes(key.pem())
    ledger = workdir / "l.db"
    assert_clean_error(
        run("--ledger", ledger, "register", model, "--sign-key", "alice"), 2, "no key named"
    )
    assert not ledger.exists()


def test_a_planted_key_does_not_make_or_check_a_bundle(run, workdir: Path, alice, mallory) -> None:
    key, private = mallory
    model = workdir / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    (workdir / "alice").write_bytes(key.public.pem())
    assert_ok(run("sign", "m", "--private-key", private))  # the attacker's bundle
    result = run("verify", "m", "--signature", "model.sig", "--public-key", "alice")
    assert_clean_error(result, 1, "key")
    # a planted private key named like a ring key does not sign either
    (workdir / "alice").write_bytes(key.pem())
    out = json.loads(
        assert_ok(
            run("sign", "m", "--private-key", "alice", "--json", "--signature", "a.sig")
        ).stdout
    )
    assert out["key_id"] == alice.public.key_id


def test_load_signers_by_name_ignores_a_planted_file(
    home: Path, workdir: Path, model: Path, alice, mallory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _private = mallory
    location = workdir / "l.db"
    with Ledger.open(location, create=True) as ledger:
        ledger.register(model, sign_keys=[key])
    shipped = workdir / "unpacked"
    shipped.mkdir()
    (shipped / "alice").write_bytes(key.public.pem())
    monkeypatch.chdir(shipped)
    marker = workdir / "loaded"
    with pytest.raises(SignatureError, match="not signed by key"):
        modelchain.load(model, ledger=location, signers=["alice"])
        marker.touch()
    assert not marker.exists()


@pytest.mark.parametrize("length", [8, 16, 31])
def test_a_short_key_id_prefix_is_refused(run, model: Path, alice, length: int) -> None:
    """32 bits of prefix take minutes to match with a key made for it: never enough."""
    assert_ok(run("register", model, "--sign-key", "alice"))
    prefix = alice.public.key_id[:length]
    assert_clean_error(run("verify", model, "--signer", prefix), 2, "too short", "32 hex")


def test_a_128_bit_prefix_or_full_key_id_is_accepted(run, model: Path, alice) -> None:
    assert_ok(run("register", model, "--sign-key", "alice"))
    for ident in (alice.public.key_id[:32], alice.public.key_id.upper()):
        assert_ok(run("verify", model, "--signer", ident))


def test_what_counts_as_a_path() -> None:
    for spec in ("./alice", "keys/alice", "~/alice", ".alice", "alice.pem", "alice.pub"):
        assert keys.is_path_spec(spec), spec
    for spec in ("alice", "ci-signer", "a" * 64, "alice_2"):
        assert not keys.is_path_spec(spec), spec


def test_library_resolution_never_reads_the_current_directory(
    home: Path, workdir: Path, mallory
) -> None:
    key, _private = mallory
    (workdir / "bob").write_bytes(key.public.pem())
    (workdir / "carol").write_bytes(key.pem())
    with pytest.raises(KeyFileError, match="no key named 'bob'"):
        keys.resolve_public_key("bob", home)
    with pytest.raises(KeyFileError, match="no key named 'carol'"):
        keys.resolve_private_key("carol", home)
    with pytest.raises(UsageError, match="too short"):
        keys.resolve_public_key(key.key_id[:8], home)
    assert keys.resolve_public_key("./bob", home) == key.public
