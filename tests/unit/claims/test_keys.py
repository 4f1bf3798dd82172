"""Registrant keys: the four key types, key IDs, PEM files with and without passwords, the key
ring in MODELCHAIN_HOME/keys/, resolving a key from what a user types (`modelchain key`
itself: cli/test_keys_cli.py)."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.claims import keys
from modelchain.core.errors import KeyFileError, UsageError
from modelchain.core.note import Verifier

ALL_TYPES = ("ed25519", "p256", "p384", "p521")


@pytest.fixture(scope="module")
def generated() -> dict[str, keys.PrivateKey]:
    return {kind: keys.generate(kind) for kind in ALL_TYPES}  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_each_key_type_signs_and_verifies(generated, kind):
    key = generated[kind]
    assert key.kind == kind
    sig = key.sign(b"message")
    assert key.public.verify(sig, b"message")
    assert not key.public.verify(sig, b"messagE")
    assert not generated["ed25519" if kind != "ed25519" else "p256"].public.verify(sig, b"message")


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_key_id_is_the_sha256_of_the_public_pem(generated, kind):
    key = generated[kind]
    assert key.key_id == hashlib.sha256(key.public.pem()).hexdigest()
    # the same key read back from its files has the same ID
    assert keys.parse_public_key(key.public.pem()).key_id == key.key_id
    assert keys.parse_private_key(key.pem()).key_id == key.key_id


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=256), flip=st.integers(min_value=0))
def test_a_signature_covers_every_byte(generated, message, flip):
    for key in (generated["ed25519"], generated["p256"]):
        sig = key.sign(message)
        assert key.public.verify(sig, message)
        if message:
            i = flip % len(message)
            changed = message[:i] + bytes([message[i] ^ 1]) + message[i + 1 :]
            assert not key.public.verify(sig, changed)


def test_ed25519_verifier_string_names_the_same_key(generated):
    key = generated["ed25519"]
    vkey = key.public.verifier_string("alice")
    assert vkey is not None and vkey.startswith("alice+")
    assert Verifier.from_string(vkey).name == "alice"
    assert keys.parse_public_key(vkey.encode()).key_id == key.key_id
    assert generated["p256"].public.verifier_string("bob") is None


def test_encrypted_private_key_needs_the_right_password(generated, tmp_path, monkeypatch):
    monkeypatch.delenv(keys.PASSWORD_ENV, raising=False)
    path = tmp_path / "k.pem"
    path.write_bytes(generated["p256"].pem(b"s3cret"))
    with pytest.raises(KeyFileError, match="encrypted"):
        keys.load_private_key(path)
    with pytest.raises(KeyFileError, match="wrong password"):
        keys.load_private_key(path, "nope")
    assert keys.load_private_key(path, "s3cret").key_id == generated["p256"].key_id
    monkeypatch.setenv(keys.PASSWORD_ENV, "s3cret")
    assert keys.load_private_key(path).key_id == generated["p256"].key_id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a readable"),
        (b"x" * (keys.MAX_KEY_FILE + 1), "too large"),
    ],
)
def test_bad_private_key_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message):
        keys.load_private_key(path)


def test_public_and_private_halves_are_not_confused(generated, tmp_path):
    with pytest.raises(KeyFileError, match="holds a public key"):
        keys.parse_private_key(generated["ed25519"].public.pem())
    with pytest.raises(KeyFileError, match="holds a private key"):
        keys.parse_public_key(generated["ed25519"].pem())


def test_unsupported_key_types_are_refused():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFileError, match="unsupported key type"):
        keys.parse_private_key(pem)
    k1 = ec.generate_private_key(ec.SECP256K1())
    pub = k1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFileError, match="unsupported elliptic curve"):
        keys.parse_public_key(pub)


def test_key_ring_stores_private_keys_privately(tmp_path):
    ring = keys.KeyRing(tmp_path)
    stored = ring.generate("alice")
    assert stat.S_IMODE(stored.private_path.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "alice.pub").read_bytes() == stored.public.pem()
    assert ring.private("alice").key_id == stored.public.key_id
    with pytest.raises(UsageError, match="already exists"):
        ring.generate("alice")
    ring.generate("bob", "p384")
    assert [(k.name, k.public.kind) for k in ring] == [("alice", "ed25519"), ("bob", "p384")]
    with pytest.raises(KeyFileError, match="no key named 'carol'"):
        ring.get("carol")
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65):
        with pytest.raises(UsageError, match="invalid key name"):
            ring.generate(bad)


def test_resolve_public_key_from_what_a_user_types(tmp_path, generated):
    ring = keys.KeyRing(tmp_path)
    alice = ring.generate("alice").public
    pub_file = tmp_path / "alice.pub.pem"
    pub_file.write_bytes(alice.pem())
    vkey = alice.verifier_string("alice")
    assert vkey is not None
    for spec in ("alice", str(pub_file), vkey):
        resolved = keys.resolve_public_key(spec, tmp_path)
        assert isinstance(resolved, keys.PublicKey) and resolved.key_id == alice.key_id
    # a 128-bit prefix names the ring's key; an unknown one is kept as an ID to match
    assert keys.resolve_public_key(alice.key_id[:32].upper(), tmp_path) == alice
    assert keys.resolve_public_key("ab" * 16, tmp_path) == "ab" * 16
    with pytest.raises(UsageError, match="too short"):
        keys.resolve_public_key(alice.key_id[:31], tmp_path)
    for junk in ("not a key!", "a b"):
        with pytest.raises(UsageError, match="not a public key file"):
            keys.resolve_public_key(junk, tmp_path)
    for unknown in ("abc", "1234567", "zzzzzzzzzz"):
        with pytest.raises(KeyFileError, match="no key named"):
            keys.resolve_public_key(unknown, tmp_path)
    assert alice.matches(alice.key_id[:32]) and not alice.matches(alice.key_id[:31])


def test_resolve_private_key_by_name_or_file(tmp_path, generated):
    ring = keys.KeyRing(tmp_path)
    alice = ring.generate("alice")
    assert keys.resolve_private_key("alice", tmp_path).key_id == alice.public.key_id
    path = tmp_path / "other.pem"
    path.write_bytes(generated["p521"].pem())
    assert keys.resolve_private_key(str(path), tmp_path).kind == "p521"
    with pytest.raises(KeyFileError, match="no such key file"):
        keys.resolve_private_key(str(tmp_path / "missing.pem"), tmp_path)
    with pytest.raises(KeyFileError, match="no key named"):
        keys.resolve_private_key("carol", tmp_path)
