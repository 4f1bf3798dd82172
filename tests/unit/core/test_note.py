"""Tests for modelchain.core.note: published vectors, round trips, and every malformed input."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.core.errors import KeyFileError, NoteFormatError, SignatureError, UsageError
from modelchain.core.note import (
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteSignature,
    Signer,
    Verifier,
    check_key_name,
    key_id,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
)

# --- published test vectors ------------------------------------------------------------------
# golang/mod, sumdb/note/note.go (package docs) and sumdb/note/note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox"
    "33WWd1RvMc+QQ=\n"
)
PETER_NOTE = GO_TEXT + "\n" + PETER_SIG
DOUBLE_NOTE = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
# sumdb/note/note_test.go: wrong key length / unknown algorithm, each with a matching key ID.
BAD_LENGTH_VKEY = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
BAD_TYPE_VKEY = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

# The Go checksum database key: golang/go, src/cmd/go/internal/modfetch/key.go.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
# A real sum.golang.org checkpoint: transparency-dev/trillian-tessera,
# internal/parse/parse_test.go (BenchmarkCheckpointUnsafe; final newline restored).
SUMDB_NOTE = (
    "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n"
    "— sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW"
    "9/C8DJ87F61QqspBYwM=\n"
)

ORIGIN = "example.com/modelchain/ledger"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def _resign_line(line: str, raw: bytes) -> str:
    """Replace the base64 of a signature line with the base64 of `raw`."""
    head, _, _ = line.rstrip("\n").rpartition(" ")
    return f"{head} {base64.b64encode(raw).decode()}\n"


def _raw(line: str) -> bytes:
    return base64.b64decode(line.rstrip("\n").rpartition(" ")[2])


# --- vectors ---------------------------------------------------------------------------------


def test_go_verifier_key_parses_and_round_trips() -> None:
    v = Verifier.from_string(PETER_VKEY)
    assert v.name == "PeterNeumann"
    assert v.key_id == bytes.fromhex("c74f20a3")
    assert len(v.public_key_bytes) == 32
    assert v.string() == PETER_VKEY
    assert Verifier.from_string(ENOCH_VKEY).key_id == bytes.fromhex("af0cfe78")


def test_key_id_derivation_matches_published_ids() -> None:
    for vkey in (PETER_VKEY, ENOCH_VKEY, SUMDB_VKEY):
        name, hex_id, b64 = vkey.split("+", 2)
        assert key_id(name, base64.b64decode(b64)) == bytes.fromhex(hex_id)


def test_go_private_key_signs_the_published_note() -> None:
    s = Signer.from_private_key_string(PETER_SKEY)
    assert s.name == "PeterNeumann"
    assert s.key_id == bytes.fromhex("c74f20a3")
    assert s.private_key_string() == PETER_SKEY
    assert s.verifier().string() == PETER_VKEY
    # Ed25519 is deterministic, so the note is byte-for-byte the published one.
    assert sign_note(GO_TEXT, [s]) == PETER_NOTE


def test_go_signed_note_verifies() -> None:
    peter = Verifier.from_string(PETER_VKEY)
    n = open_note(PETER_NOTE, [peter])
    assert n.text == GO_TEXT
    assert n.verified_by == [peter]
    assert n.signatures == [
        NoteSignature("PeterNeumann", bytes.fromhex("c74f20a3"), _raw(PETER_SIG)[4:])
    ]


def test_go_doubly_signed_note() -> None:
    peter = Verifier.from_string(PETER_VKEY)
    enoch = Verifier.from_string(ENOCH_VKEY)
    assert open_note(DOUBLE_NOTE, [peter, enoch]).verified_by == [peter, enoch]
    # A signature by a key the caller does not know is ignored, not an error.
    assert open_note(DOUBLE_NOTE, [peter]).verified_by == [peter]
    assert open_note(DOUBLE_NOTE, [enoch]).verified_by == [enoch]
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(DOUBLE_NOTE, [])


def test_go_bad_keys_rejected() -> None:
    # Go's vector ends in non-canonical base64 ("EY==" has stray bits), which we refuse outright.
    with pytest.raises(NoteFormatError, match="malformed verifier key: key is not valid base64"):
        Verifier.from_string(BAD_LENGTH_VKEY)
    with pytest.raises(NoteFormatError, match="unsupported verifier key type 0x65"):
        Verifier.from_string(BAD_TYPE_VKEY)


def test_sumdb_checkpoint_vector() -> None:
    sumdb = Verifier.from_string(SUMDB_VKEY)
    n = open_note(SUMDB_NOTE, [sumdb])
    cp = Checkpoint.parse(n.text)
    assert cp.origin == "go.sum database tree"
    assert cp.size == 31700353
    assert cp.root_hash == base64.b64decode("qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=")
    assert cp.body() == n.text
    # Go's log names its key differently from its origin, which modelchain refuses.
    with pytest.raises(SignatureError) as e:
        open_checkpoint(SUMDB_NOTE, sumdb)
    assert str(e.value) == (
        "checkpoint is for origin go.sum database tree but the key is for sum.golang.org"
    )


# --- keys ------------------------------------------------------------------------------------


def test_generated_keys_round_trip(signer: Signer) -> None:
    again = Signer.from_private_key_string(signer.private_key_string())
    assert again.key_id == signer.key_id
    assert again.verifier() == signer.verifier()
    v = Verifier.from_string(signer.verifier().string())
    assert v == signer.verifier()
    assert v.key_id == signer.key_id
    sig = signer.sign(b"hi")
    assert len(sig) == 64
    assert v.verify(b"hi", sig)
    assert not v.verify(b"ho", sig)
    assert not v.verify(b"hi", sig[:-1])
    assert not v.verify(b"hi", bytes([sig[0] ^ 1]) + sig[1:])


def test_with_name_keeps_key_material(signer: Signer) -> None:
    other = signer.with_name("example.com/other")
    assert other.name == "example.com/other"
    assert other.verifier().public_key_bytes == signer.verifier().public_key_bytes
    assert other.key_id != signer.key_id  # the ID covers the name
    assert other.key_id == key_id(other.name, b"\x01" + signer.verifier().public_key_bytes)
    with pytest.raises(UsageError, match=r"contains '\+'"):
        signer.with_name("a+b")


def test_signer_repr_hides_secret(signer: Signer) -> None:
    secret = signer.private_key_string().split("+", 4)[4]
    assert secret not in repr(signer)
    assert signer.key_id.hex() in repr(signer)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("a+b", r"contains '\+'"),
        ("a b", "contains a space"),
        ("a\tb", "contains a space"),
        ("a\u00a0b", "contains a space"),
        ("a\u2003b", "contains a space"),
        ("a\x01b", "control character"),
    ],
)
def test_bad_key_names(name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_key_name(name)
    with pytest.raises(UsageError, match=message):
        Signer.generate(name)
    with pytest.raises(NoteFormatError, match=message):
        check_key_name(name, NoteFormatError)


def test_good_key_names() -> None:
    for name in ("PeterNeumann", "example.com/log42", "σ.example/ключ", "go.sum/x-y_z"):
        check_key_name(name)


def test_verifier_key_with_bad_name() -> None:
    pub = Verifier.from_string(PETER_VKEY).public_key_bytes
    for name, message in (("Peter Neumann", "contains a space"), ("", "empty")):
        raw = b"\x01" + pub
        vkey = f"{name}+{key_id(name, raw).hex()}+{base64.b64encode(raw).decode()}"
        with pytest.raises(NoteFormatError, match=message):
            Verifier.from_string(vkey)


def test_every_truncation_of_the_verifier_key_is_rejected() -> None:
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) == (0, len(PETER_VKEY)):
                continue
            with pytest.raises(NoteFormatError):
                Verifier.from_string(PETER_VKEY[i:j])


def test_every_single_character_change_of_the_verifier_key_is_rejected() -> None:
    for i, c in enumerate(PETER_VKEY):
        mangled = PETER_VKEY[:i] + chr(ord(c) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteFormatError):
            Verifier.from_string(mangled)


def test_every_truncation_of_the_private_key_is_rejected() -> None:
    for i in range(len(PETER_SKEY)):
        for j in range(i + 1, len(PETER_SKEY) + 1):
            if (i, j) == (0, len(PETER_SKEY)):
                continue
            with pytest.raises(KeyFileError) as e:
                Signer.from_private_key_string(PETER_SKEY[i:j])
            assert "AYEKFALV" not in str(e.value)  # never echo the secret


def test_every_single_character_change_of_the_private_key_is_rejected() -> None:
    for i, c in enumerate(PETER_SKEY):
        mangled = PETER_SKEY[:i] + chr(ord(c) + 1) + PETER_SKEY[i + 1 :]
        with pytest.raises(KeyFileError):
            Signer.from_private_key_string(mangled)


def test_verifier_key_messages() -> None:
    name, hex_id, b64 = PETER_VKEY.split("+", 2)
    cases = [
        ("PeterNeumann", "want name\\+keyid\\+key"),
        ("PeterNeumann+c74f20a3", "want name\\+keyid\\+key"),
        (f"{name}+c74f20+{b64}", "not 8 hex digits"),
        (f"{name}+{hex_id}+{b64[:-1]}", "not valid base64"),
        (f"{name}+{hex_id}+", "not valid base64"),
        (f"{name}+c74f20a4+{b64}", "key ID does not match"),
        ("Peter+" + PETER_VKEY.partition("+")[2], "key ID does not match"),
    ]
    for vkey, message in cases:
        with pytest.raises(NoteFormatError, match=message):
            Verifier.from_string(vkey)


def test_wrong_key_length() -> None:
    pub = Verifier.from_string(PETER_VKEY).public_key_bytes
    for raw in (b"\x01" + pub[:31], b"\x01" + pub + b"\x00", b"\x01"):
        vkey = f"PeterNeumann+{key_id('PeterNeumann', raw).hex()}+{base64.b64encode(raw).decode()}"
        with pytest.raises(NoteFormatError, match=f"Ed25519 key is {len(raw) - 1} bytes, not 32"):
            Verifier.from_string(vkey)


def _skey_parts() -> list[str]:
    return PETER_SKEY.split("+", 4)  # PRIVATE, KEY, name, key ID, base64 (which may hold '+')


def test_wrong_key_type_byte() -> None:
    pub = Verifier.from_string(PETER_VKEY).public_key_bytes
    raw = b"\x04" + pub
    vkey = f"PeterNeumann+{key_id('PeterNeumann', raw).hex()}+{base64.b64encode(raw).decode()}"
    with pytest.raises(NoteFormatError, match="unsupported verifier key type 0x04"):
        Verifier.from_string(vkey)
    *head, b64 = _skey_parts()
    seed = base64.b64decode(b64)[1:]
    skey = "+".join([*head, base64.b64encode(b"\x02" + seed).decode()])
    with pytest.raises(KeyFileError, match="unsupported private key type 0x02"):
        Signer.from_private_key_string(skey)


def test_private_key_messages() -> None:
    with pytest.raises(KeyFileError, match="does not start with PRIVATE\\+KEY\\+"):
        Signer.from_private_key_string(PETER_VKEY)
    with pytest.raises(KeyFileError, match="key ID does not match"):
        Signer.from_private_key_string(PETER_SKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(KeyFileError, match="not valid base64"):
        Signer.from_private_key_string(PETER_SKEY[:-2])


# --- notes -----------------------------------------------------------------------------------


def test_sign_and_open_round_trip(signer: Signer) -> None:
    text = "hello\n\nworld with a blank line above\n"
    note = sign_note(text, [signer])
    n = open_note(note, [signer.verifier()])
    assert n.text == text
    assert n.verified_by == [signer.verifier()]
    assert parse_note(note).text == text
    assert parse_note(note).verified_by == []


def test_text_that_looks_like_a_signature_block_is_not_ambiguous(signer: Signer) -> None:
    # The last blank line separates text from signatures, and signature lines are never blank.
    tricky = "x\n\n" + PETER_SIG + "\n"
    n = open_note(sign_note(tricky, [signer]), [signer.verifier()])
    assert n.text == tricky
    assert len(n.signatures) == 1


def test_cosigning_keeps_existing_signatures(signer: Signer) -> None:
    peter = Verifier.from_string(PETER_VKEY)
    cosigned = sign_note(GO_TEXT, [signer], existing=PETER_NOTE)
    assert cosigned == PETER_NOTE + sign_note(GO_TEXT, [signer]).partition("\n\n")[2]
    n = open_note(cosigned, [peter, signer.verifier()])
    assert n.verified_by == [peter, signer.verifier()]
    # Signing again with the same key replaces its signature instead of repeating it.
    assert sign_note(GO_TEXT, [signer], existing=cosigned) == cosigned
    with pytest.raises(NoteFormatError, match="different text"):
        sign_note("other\n", [signer], existing=PETER_NOTE)


def test_sign_with_several_signers(signer: Signer) -> None:
    other = Signer.generate("example.com/witness")
    note = sign_note("t\n", [signer, other, signer])
    assert note.count("\n— ") == 2
    assert open_note(note, [other.verifier()]).verified_by == [other.verifier()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "must end with a newline"),
        ("", "must end with a newline"),
        ("tab\there\n", "control character 0x09"),
        ("cr\r\n", "control character 0x0d"),
        ("nul\x00\n", "control character 0x00"),
        ("\ud800\n", "not valid UTF-8"),
    ],
)
def test_sign_rejects_bad_text(signer: Signer, text: str, message: str) -> None:
    with pytest.raises(NoteFormatError, match=message):
        sign_note(text, [signer])


def test_sign_needs_a_signer() -> None:
    with pytest.raises(UsageError):
        sign_note("t\n", [])


PETER = Verifier.from_string(PETER_VKEY)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GO_TEXT, "no blank line"),
        (GO_TEXT + "\n", "no signatures"),
        (GO_TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline"),
        ("\x01" + PETER_NOTE, "control character 0x01"),
        ("\udcff" + PETER_NOTE, "not valid UTF-8"),
        (
            GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
            "line 2 does not start with an em dash",
        ),
        (GO_TEXT + "\n" + PETER_SIG.replace("—", "-"), "line 1 does not start with an em dash"),
        (GO_TEXT + "\n— PeterNeumann\n", "no space between"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "more than one space"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), "contains '\\+'"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", " "), "key name is empty"),
        (GO_TEXT + "\n" + PETER_SIG.replace("x08go", "x08g!"), "not valid base64"),
        (GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AM\n"), "not valid base64"),
        (GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AN=\n"), "not valid base64"),
        (GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AM= \n"), "more than one space"),
        (GO_TEXT + "\n— PeterNeumann x08gow==\n", "4 bytes, too short"),
        (GO_TEXT + "\n— PeterNeumann AAA=\n", "2 bytes, too short"),
        (GO_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "more than the limit"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    with pytest.raises(NoteFormatError, match=message):
        parse_note(note)
    with pytest.raises(NoteFormatError, match=message):
        open_note(note, [PETER])


def test_too_long_note() -> None:
    with pytest.raises(NoteFormatError, match="longer than"):
        parse_note("x" * (1 << 20) + "\n\n" + PETER_SIG)


def test_limits_are_at_least_what_the_spec_requires() -> None:
    note = GO_TEXT + "\n" + PETER_SIG * MAX_SIGNATURES
    assert MAX_SIGNATURES >= 16
    assert open_note(note, [PETER]).verified_by == [PETER]


def test_signature_with_wrong_key_id_is_ignored() -> None:
    raw = bytearray(_raw(PETER_SIG))
    raw[0] ^= 0xFF
    note = GO_TEXT + "\n" + _resign_line(PETER_SIG, bytes(raw))
    assert parse_note(note).signatures[0].key_id == bytes(raw[:4])
    with pytest.raises(SignatureError) as e:
        open_note(note, [PETER])
    assert str(e.value).startswith("no signature by a known key")
    assert "PeterNeumann+38" in str(e.value)  # names what it saw
    assert "known keys: PeterNeumann+c74f20a3" in str(e.value)


def test_signature_with_wrong_name_is_ignored() -> None:
    note = GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(note, [PETER])


def test_flipped_signature_bit_is_rejected() -> None:
    raw = bytearray(_raw(PETER_SIG))
    raw[10] ^= 0x01
    note = GO_TEXT + "\n" + _resign_line(PETER_SIG, bytes(raw))
    with pytest.raises(SignatureError, match=r"^signature by PeterNeumann does not verify$"):
        open_note(note, [PETER])
    # A bad signature from a known key spoils the note even when another key verifies.
    enoch = Verifier.from_string(ENOCH_VKEY)
    with pytest.raises(SignatureError, match="signature by PeterNeumann does not verify"):
        open_note(note + ENOCH_SIG, [PETER, enoch])
    # But it is ignored if the caller does not know Peter's key.
    assert open_note(note + ENOCH_SIG, [enoch]).verified_by == [enoch]


def test_longer_signature_from_known_key_is_rejected() -> None:
    # From sumdb/note/note_test.go: four base64 characters spliced into the signature.
    note = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError, match="signature by PeterNeumann does not verify"):
        open_note(note, [PETER])


def test_changed_text_is_rejected() -> None:
    with pytest.raises(SignatureError, match="signature by PeterNeumann does not verify"):
        open_note(PETER_NOTE.replace("problem,", "problem;"), [PETER])


def test_colliding_known_keys_are_reported(signer: Signer) -> None:
    # A second key claiming Peter's name and ID (a forged ID) must not be silently tried.
    impostor = Verifier("PeterNeumann", signer.verifier().public_key_bytes)
    impostor._key_id = PETER.key_id  # type: ignore[attr-defined]
    with pytest.raises(SignatureError, match="share name PeterNeumann and key ID c74f20a3"):
        open_note(PETER_NOTE, [PETER, impostor])
    # The same key given twice is not a collision.
    assert open_note(PETER_NOTE, [PETER, Verifier.from_string(PETER_VKEY)]).verified_by == [PETER]


def test_duplicate_identical_lines_collapse() -> None:
    n = parse_note(GO_TEXT + "\n" + PETER_SIG + PETER_SIG)
    assert isinstance(n, Note)
    assert len(n.signatures) == 1


_text_chars = st.characters(
    blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32) if c != 10]
)


@settings(max_examples=200, deadline=None)
@given(st.text(_text_chars, max_size=200))
def test_hypothesis_round_trip(body: str) -> None:
    s = _HYPOTHESIS_SIGNER
    text = body + "\n"
    note = sign_note(text, [s])
    n = open_note(note, [s.verifier()])
    assert n.text == text
    assert n.verified_by == [s.verifier()]
    assert sign_note(text, [s], existing=note) == note


_HYPOTHESIS_SIGNER = Signer.generate("example.com/hypothesis")


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_body_and_parse() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    body = cp.body()
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(body) == cp
    ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two"))
    assert ext.body().endswith("\next one\next two\n")
    assert Checkpoint.parse(ext.body()) == ext


def test_checkpoint_sign_and_open(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.body() + "\n— " + ORIGIN + " ")
    assert open_checkpoint(note, signer.verifier()) == cp


def test_checkpoint_for_another_origin(signer: Signer) -> None:
    other = signer.with_name("example.com/other-ledger")
    cp = Checkpoint("example.com/other-ledger", 7, ROOT)
    note = sign_checkpoint(cp, other)
    with pytest.raises(SignatureError) as e:
        open_checkpoint(note, signer.verifier())
    assert str(e.value) == (
        f"checkpoint is for origin example.com/other-ledger but the key is for {ORIGIN}"
    )
    with pytest.raises(UsageError, match="differs from checkpoint origin"):
        sign_checkpoint(cp, signer)


def test_checkpoint_signed_by_another_key(signer: Signer) -> None:
    stranger = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), stranger)
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_checkpoint(note, signer.verifier())


def test_checkpoint_with_witness_cosignature(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 3, ROOT)
    witness = Signer.generate("witness.example/w1")
    note = sign_note(cp.body(), [witness], existing=sign_checkpoint(cp, signer))
    assert open_checkpoint(note, signer.verifier()) == cp


B64_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ORIGIN}\n1\n{B64_ROOT}", "does not end with a newline"),
        (f"{ORIGIN}\n1\n", "has 2 lines"),
        (f"{ORIGIN}\n", "has 1 lines"),
        (f"\n1\n{B64_ROOT}\n", "origin is empty"),
        (f"{ORIGIN}\n01\n{B64_ROOT}\n", "not a decimal without leading zeros"),
        (f"{ORIGIN}\n00\n{B64_ROOT}\n", "not a decimal without leading zeros"),
        (f"{ORIGIN}\n-1\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n+1\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n 1\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n1_000\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n١\n{B64_ROOT}\n", "not a decimal"),  # Arabic-Indic digit one
        (f"{ORIGIN}\n0x10\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n\n{B64_ROOT}\n", "not a decimal"),
        (f"{ORIGIN}\n{1 << 64}\n{B64_ROOT}\n", "out of range"),
        (f"{ORIGIN}\n1\nthisisnotright\n", "not the base64 of 32 bytes"),
        (f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "not the base64 of 32 bytes"),
        (f"{ORIGIN}\n1\n{B64_ROOT.rstrip('=')}\n", "not the base64 of 32 bytes"),
        (f"{ORIGIN}\n1\n{B64_ROOT}\n\n", "extension lines must be non-empty"),
        (f"{ORIGIN}\n1\n{B64_ROOT}\next\tx\n", "control character 0x09"),
    ],
)
def test_malformed_checkpoints(body: str, message: str) -> None:
    with pytest.raises(NoteFormatError, match=message):
        Checkpoint.parse(body)


def test_checkpoint_constructor_validates() -> None:
    for args, message in (
        (("", 1, ROOT), "origin is empty"),
        (("a\nb", 1, ROOT), "newline"),
        ((ORIGIN, -1, ROOT), "out of range"),
        ((ORIGIN, True, ROOT), "integer"),
        ((ORIGIN, 1, ROOT[:31]), "32 bytes"),
        ((ORIGIN, 1, ROOT, ("",)), "non-empty"),
        ((ORIGIN, 1, ROOT, ("a\nb",)), "newline"),
    ):
        with pytest.raises(NoteFormatError, match=message):
            Checkpoint(*args)  # type: ignore[arg-type]


def test_checkpoint_note_with_malformed_body(signer: Signer) -> None:
    note = sign_note(f"{ORIGIN}\n01\n{B64_ROOT}\n", [signer])
    with pytest.raises(NoteFormatError, match="leading zeros"):
        open_checkpoint(note, signer.verifier())


@given(
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(_text_chars.filter(lambda c: c != "\n"), min_size=1, max_size=20), max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_hypothesis_checkpoint_round_trip(size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(ORIGIN, size, root, tuple(ext))
    assert Checkpoint.parse(cp.body()) == cp
    note = sign_checkpoint(cp, _HYPOTHESIS_SIGNER.with_name(ORIGIN))
    assert open_checkpoint(note, _HYPOTHESIS_SIGNER.with_name(ORIGIN).verifier()) == cp


# --- performance -----------------------------------------------------------------------------


def test_sign_and_verify_1000_checkpoints_is_fast(signer: Signer) -> None:
    verifier = signer.verifier()
    start = time.perf_counter()
    for size in range(1000):
        cp = Checkpoint(ORIGIN, size, ROOT)
        assert open_checkpoint(sign_checkpoint(cp, signer), verifier) == cp
    assert time.perf_counter() - start < 5.0


# The example note of the C2SP signed-note specification (its public key is not published,
# so the example checks the format: a text with an empty line of its own, one signature).
C2SP_EXAMPLE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)


def test_c2sp_spec_example_parses() -> None:
    note = parse_note(C2SP_EXAMPLE)
    assert note.text == (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n"
        "ed è subito sera.\n"
    )
    [sig] = note.signatures
    assert sig.name == "quasimodo.example/salvatore"
    assert len(sig.key_id) == 4 and len(sig.signature) == 64
    # an unknown key's signature is ignored, so no known key vouches for the note
    stranger = Signer.generate("quasimodo.example/salvatore").verifier()
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(C2SP_EXAMPLE, [stranger])
