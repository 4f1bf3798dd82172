"""Key resolution pinned through the library: what `--signer X`, `--sign-key X` and
`load(signers=[X])` turn X into, and which error class each refusal is.

tests/attacks/test_attack_keys.py and tests/cli/test_signed_registrations.py carry these
rules as CLI messages and exit codes; here `Ledger.verify(signers=...)` and
`keys.resolve_*_key` are called directly, with a planted file in the current directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelchain import Ledger
from modelchain.claims import keys
from modelchain.core.errors import KeyFileError, SignatureError, UsageError


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def alice(home: Path) -> keys.StoredKey:
    return keys.KeyRing(home).generate("alice")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory: someone else's unpacked model folder."""
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def mallory() -> keys.PrivateKey:
    return keys.generate("ed25519")


@pytest.fixture
def signed_by_mallory(work: Path, home: Path, mallory: keys.PrivateKey) -> Iterator[Ledger]:
    """A ledger where m.bin is registered with mallory's signature only."""
    (work / "m.bin").write_bytes(b"weights")
    with Ledger.open(work / "l.db", home=home, create=True) as led:
        led.register(work / "m.bin", sign_keys=[mallory])
        yield led


def test_a_planted_public_key_file_is_not_the_ring_key(
    signed_by_mallory: Ledger, work: Path, alice: keys.StoredKey, mallory: keys.PrivateKey
) -> None:
    """(test_attack_keys.py::test_a_planted_public_key_file_is_not_the_signer)"""
    (work / "alice").write_bytes(mallory.public.pem())
    with pytest.raises(SignatureError, match="not signed by key") as exc:
        signed_by_mallory.verify(work / "m.bin", signers=["alice"])
    assert alice.public.key_id[:16] in str(exc.value) and exc.value.exit_code == 1
    # the same file named as a path is what was asked for
    assert signed_by_mallory.verify(work / "m.bin", signers=["./alice"]).block.version == 1


def test_no_ring_entry_is_a_key_file_error_suggesting_a_path(
    signed_by_mallory: Ledger, work: Path, mallory: keys.PrivateKey
) -> None:
    """(test_attack_keys.py::test_no_key_ring_entry_means_no_key: exit 2, "./alice")"""
    (work / "alice").write_bytes(mallory.public.pem())
    with pytest.raises(KeyFileError, match="no key named 'alice'") as exc:
        signed_by_mallory.verify(work / "m.bin", signers=["alice"])
    assert "./alice" in str(exc.value) and exc.value.exit_code == 2


@pytest.mark.parametrize("length", [8, 16, 31])
def test_a_short_key_id_is_a_usage_error(
    signed_by_mallory: Ledger, work: Path, mallory: keys.PrivateKey, length: int
) -> None:
    """(test_attack_keys.py::test_a_short_key_id_prefix_is_refused: "too short", "32 hex")"""
    with pytest.raises(UsageError, match="too short") as exc:
        signed_by_mallory.verify(work / "m.bin", signers=[mallory.public.key_id[:length]])
    assert f"{keys.MIN_KEY_ID_HEX} hex" in str(exc.value) and exc.value.exit_code == 2


def test_a_long_key_id_names_the_signer(
    signed_by_mallory: Ledger, work: Path, mallory: keys.PrivateKey, alice: keys.StoredKey
) -> None:
    """A key ID of 32+ hex digits (any case) is matched against the block's signers."""
    key_id = mallory.public.key_id
    for spec in (key_id, key_id[:32], key_id[:32].upper()):
        assert signed_by_mallory.verify(work / "m.bin", signers=[spec]).block.version == 1
    with pytest.raises(SignatureError, match="not signed by key"):
        signed_by_mallory.verify(work / "m.bin", signers=[alice.public.key_id])


def test_a_planted_private_key_file_does_not_sign(
    work: Path, home: Path, alice: keys.StoredKey, mallory: keys.PrivateKey
) -> None:
    """(test_attack_keys.py::test_a_planted_private_key_file_does_not_sign)"""
    (work / "alice").write_bytes(mallory.pem())
    assert keys.resolve_private_key("alice", home).public.key_id == alice.public.key_id
    assert keys.resolve_private_key("./alice", home).public.key_id == mallory.public.key_id


def test_without_a_ring_entry_a_private_key_name_is_refused(
    work: Path, home: Path, mallory: keys.PrivateKey
) -> None:
    """(test_attack_keys.py::test_sign_key_without_a_ring_entry_registers_nothing)"""
    (work / "alice").write_bytes(mallory.pem())
    with pytest.raises(KeyFileError, match="no key named 'alice'") as exc:
        keys.resolve_private_key("alice", home)
    assert exc.value.exit_code == 2


def test_a_public_key_is_needed_where_an_id_will_not_do(
    work: Path, home: Path, alice: keys.StoredKey
) -> None:
    """`public_key_for` (a bundle's `--public-key`) needs the key itself, not an ID."""
    assert keys.public_key_for("alice", home).key_id == alice.public.key_id
    with pytest.raises(UsageError, match="looks like a key ID"):
        keys.public_key_for("ab" * 16, home)
    verifier = alice.public.verifier_string("alice")
    assert verifier is not None
    assert keys.public_key_for(verifier, home).key_id == alice.public.key_id
