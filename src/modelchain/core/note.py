"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A checkpoint is the only thing modelchain signs: it binds a ledger's origin, size and Merkle
root, so anyone holding the operator's verifier key can check a copy of the ledger offline. The
formats follow the C2SP specifications (and golang.org/x/mod/sumdb/note, which they
describe), so the keys and notes interoperate with existing transparency-log tooling.

Strings and bytes in, strings and bytes out: no I/O. Ed25519 (signature type 0x01) is the
only supported key type, as the spec recommends supporting only the types a design needs.

Limits, chosen so that parsing hostile input stays cheap:

- a note may carry at most ``MAX_SIGNATURES`` (100, as golang.org/x/mod/sumdb/note; the
  spec requires accepting at least 16) signature lines;
- a note may be at most ``MAX_NOTE_BYTES`` (1 MiB) of UTF-8.

Base64 is standard (RFC 4648 section 4) and must be canonical: padded, and re-encoding the
decoded bytes gives back the same text. This keeps one signature from having many spellings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from modelchain.core.errors import (
    KeyFileError,
    ModelchainError,
    NoteFormatError,
    SignatureError,
    UsageError,
)

__all__ = [
    "ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "check_key_name",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
]

ED25519 = 0x01
"""Signature type byte of Ed25519 keys (signed-note, "Signature types")."""

MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
MAX_TREE_SIZE = (1 << 64) - 1  # RFC 9162 tree sizes are uint64

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_KEY_LEN = 32
_ED25519_SIG_LEN = 64
_HASH_LEN = 32

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


# --- helpers ---------------------------------------------------------------------------------


def _b64decode(text: str) -> bytes | None:
    """Decode canonical standard base64, or None: one encoding per byte string, no malleability."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _utf8(text: str, what: str) -> bytes:
    """Encode as UTF-8; lone surrogates cannot be, and a note must be valid UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteFormatError(f"{what} is not valid UTF-8") from None


def _check_no_control(text: str, what: str) -> None:
    """The spec forbids ASCII control characters other than newline anywhere in a note."""
    m = _CONTROL.search(text)
    if m is not None:
        raise NoteFormatError(
            f"{what} contains control character {ord(m.group()):#04x} at offset {m.start()}"
        )


def _key_name_problem(name: object) -> str | None:
    """Why `name` is not a valid key name, or None if it is."""
    if not isinstance(name, str):
        return "key name must be a string"
    if name == "":
        return "key name is empty"
    if "+" in name:
        return f"key name {name!r} contains '+'"
    if any(c.isspace() for c in name):
        return f"key name {name!r} contains a space"
    if _CONTROL.search(name):
        return f"key name {name!r} contains a control character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"key name {name!r} is not valid UTF-8"
    return None


def check_key_name(name: str, error: type[ModelchainError] = UsageError) -> None:
    """Reject names the spec forbids (empty, Unicode spaces, '+'), which would break parsing.

    Raises `error` (UsageError by default: a bad name usually comes from the caller).
    """
    problem = _key_name_problem(name)
    if problem is not None:
        raise error(problem)


def key_id(name: str, type_and_public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4] (signed-note)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + type_and_public_key).digest()[:4]


# --- keys ------------------------------------------------------------------------------------


def _split_key_string(text: str, error: type[ModelchainError], what: str) -> tuple[str, str, bytes]:
    """Split `name+hexkeyid+base64(type||key)`, the layout verifier and private key strings
    share; return the name, the hex key ID and the decoded Ed25519 type-and-key bytes."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise error(f"malformed {what}: want name+keyid+key")
    name, hex_id, b64 = parts
    problem = _key_name_problem(name)
    if problem is not None:
        raise error(f"malformed {what}: {problem}")
    if not _HEX8.fullmatch(hex_id):
        raise error(f"malformed {what}: key ID is not 8 hex digits")
    raw = _b64decode(b64)
    if not raw:
        raise error(f"malformed {what}: key is not valid base64")
    if raw[0] != ED25519:
        raise error(f"unsupported {what} type {raw[0]:#04x} (want 0x01)")
    if len(raw) != 1 + _ED25519_KEY_LEN:
        raise error(f"malformed {what}: Ed25519 key is {len(raw) - 1} bytes, not 32")
    return name, hex_id, raw


class Verifier:
    """An Ed25519 public key under a key name: what a relying party trusts."""

    __slots__ = ("_key", "_key_id", "_name", "_public_key_bytes")

    def __init__(self, name: str, public_key_bytes: bytes) -> None:
        check_key_name(name)
        if len(public_key_bytes) != _ED25519_KEY_LEN:
            raise UsageError(f"an Ed25519 public key is 32 bytes, not {len(public_key_bytes)}")
        self._name = name
        self._public_key_bytes = bytes(public_key_bytes)
        self._key_id = key_id(name, bytes([ED25519]) + self._public_key_bytes)
        self._key = Ed25519PublicKey.from_public_bytes(self._public_key_bytes)

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse `name+hexkeyid+base64(type||pubkey)`, checking the key ID matches the key."""
        if not isinstance(vkey, str):
            raise NoteFormatError("verifier key must be a string")
        name, hex_id, raw = _split_key_string(vkey.strip(), NoteFormatError, "verifier key")
        if key_id(name, raw) != bytes.fromhex(hex_id):
            raise NoteFormatError("malformed verifier key: key ID does not match name and key")
        try:
            return cls(name, raw[1:])
        except ValueError:
            raise NoteFormatError("malformed verifier key: not an Ed25519 key") from None

    def string(self) -> str:
        """The verifier key string, the form operators publish and verifiers pin."""
        type_and_key = bytes([ED25519]) + self._public_key_bytes
        return f"{self._name}+{self._key_id.hex()}+{_b64encode(type_and_key)}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key (without the type byte)."""
        return self._public_key_bytes

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff `signature` (without key ID) is this key's Ed25519 signature of `message`."""
        if len(signature) != _ED25519_SIG_LEN:
            return False
        try:
            self._key.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self._name, self._public_key_bytes) == (other._name, other._public_key_bytes)

    def __hash__(self) -> int:
        return hash((self._name, self._public_key_bytes))

    def __repr__(self) -> str:
        return f"Verifier({self.string()!r})"


class Signer:
    """An Ed25519 private key under a key name. Its repr never shows the key material."""

    __slots__ = ("_key", "_key_id", "_name", "_public_key_bytes", "_seed")

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != _ED25519_KEY_LEN:
            raise UsageError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
        self._name = name
        self._seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public_key_bytes = self._key.public_key().public_bytes_raw()
        self._key_id = key_id(name, bytes([ED25519]) + self._public_key_bytes)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A fresh random key (raises UsageError for an invalid name)."""
        check_key_name(name)
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed)

    @classmethod
    def from_private_key_string(cls, s: str) -> Signer:
        """Parse `PRIVATE+KEY+name+hexkeyid+base64(type||seed)` (golang.org/x/mod/sumdb/note).

        Messages never echo the string: it is a secret.
        """
        if not isinstance(s, str):
            raise KeyFileError("private key must be a string")
        s = s.strip()
        if not s.startswith(_PRIVATE_PREFIX):
            raise KeyFileError("malformed private key: does not start with PRIVATE+KEY+")
        name, hex_id, raw = _split_key_string(
            s[len(_PRIVATE_PREFIX) :], KeyFileError, "private key"
        )
        signer = cls(name, raw[1:])
        # The ID hashes the public key, so it can only be checked after deriving it.
        if signer.key_id != bytes.fromhex(hex_id):
            raise KeyFileError("malformed private key: key ID does not match name and key")
        return signer

    def private_key_string(self) -> str:
        """The secret key string; anyone holding it can sign as this key."""
        type_and_seed = bytes([ED25519]) + self._seed
        return f"{_PRIVATE_PREFIX}{self._name}+{self._key_id.hex()}+{_b64encode(type_and_seed)}"

    def with_name(self, name: str) -> Signer:
        """Same key material under another key name (modelchain names keys after log origins)."""
        return Signer(name, self._seed)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def verifier(self) -> Verifier:
        return Verifier(self._name, self._public_key_bytes)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._key.sign(bytes(message))

    def __repr__(self) -> str:
        return f"Signer(name={self._name!r}, key_id={self._key_id.hex()!r})"


# --- notes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, and the signature proper (without the ID)."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The line as it appears in a note, newline included."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass
class Note:
    """A note's text and signatures; `verified_by` lists the keys that verified (open_note)."""

    text: str
    signatures: list[NoteSignature]
    verified_by: list[Verifier] = field(default_factory=list)


def _check_text(text: str) -> bytes:
    """Validate a note text for signing; returns its UTF-8 bytes (the signed message)."""
    if not isinstance(text, str):
        raise NoteFormatError("note text must be a string")
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    _check_no_control(text, "note text")
    raw = _utf8(text, "note text")
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteFormatError(f"note text is longer than {MAX_NOTE_BYTES} bytes")
    return raw


def sign_note(text: str, signers: Sequence[Signer], existing: str | None = None) -> str:
    """Sign `text` with each signer and return the signed note.

    With `existing` (a signed note of the same text), its signatures are kept and ours are
    appended, which is how a witness cosigns; an existing signature by the same key (name and
    key ID) as one of `signers` is replaced. The text may contain blank lines: readers split at
    the last blank line, and signature lines are never blank, so that split is unambiguous.
    """
    message = _check_text(text)
    if isinstance(signers, Signer):
        signers = [signers]
    if not signers:
        raise UsageError("sign_note needs at least one signer")
    ours: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if ident in seen:
            continue
        seen.add(ident)
        ours.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)))
    kept: list[NoteSignature] = []
    if existing is not None:
        old = parse_note(existing)
        if old.text != text:
            raise NoteFormatError("the existing note has a different text")
        kept = [s for s in old.signatures if (s.name, s.key_id) not in seen]
    sigs = kept + ours
    if len(sigs) > MAX_SIGNATURES:
        raise NoteFormatError(f"a note may carry at most {MAX_SIGNATURES} signatures")
    note = text + "\n" + "".join(s.line() for s in sigs)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteFormatError(f"signed note would be longer than {MAX_NOTE_BYTES} bytes")
    return note


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    where = f"signature line {number}"
    if not line.startswith(_SIG_PREFIX):
        raise NoteFormatError(f"{where} does not start with an em dash and a space")
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise NoteFormatError(f"{where} has no space between key name and signature")
    problem = _key_name_problem(name)
    if problem is not None:
        raise NoteFormatError(f"{where}: {problem}")
    if " " in b64:
        raise NoteFormatError(f"{where} has more than one space (key names cannot contain spaces)")
    raw = _b64decode(b64)
    if raw is None:
        raise NoteFormatError(f"{where} (key {name}): signature is not valid base64")
    if len(raw) < 5:
        raise NoteFormatError(
            f"{where} (key {name}): signature is {len(raw)} bytes, "
            "too short for a 4-byte key ID and a signature"
        )
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(note: str) -> Note:
    """Split a signed note into text and signatures, checking the format only (no crypto).

    Identical repeated signature lines are kept once.
    """
    if not isinstance(note, str):
        raise NoteFormatError("signed note must be a string")
    if len(note) > MAX_NOTE_BYTES or len(_utf8(note, "signed note")) > MAX_NOTE_BYTES:
        raise NoteFormatError(f"signed note is longer than {MAX_NOTE_BYTES} bytes")
    _check_no_control(note, "signed note")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("signed note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteFormatError("signed note has no signatures")
    if not block.endswith("\n"):
        raise NoteFormatError("signed note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(
            f"signed note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}"
        )
    signatures: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        sig = _parse_signature_line(line, number)
        if sig not in signatures:  # an identical repeated line adds nothing
            signatures.append(sig)
    return Note(text=text, signatures=signatures)


def _index_verifiers(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], list[Verifier]]:
    if isinstance(verifiers, Verifier):
        verifiers = [verifiers]
    known: dict[tuple[str, bytes], list[Verifier]] = {}
    for v in verifiers:
        same = known.setdefault((v.name, v.key_id), [])
        if v not in same:
            same.append(v)
    return known


def _verify(parsed: Note, verifiers: Sequence[Verifier]) -> Note:
    """Check signatures by known keys (name and key ID both match); ignore the rest."""
    known = _index_verifiers(verifiers)
    message = parsed.text.encode("utf-8")
    verified: list[Verifier] = []
    for sig in parsed.signatures:
        candidates = known.get((sig.name, sig.key_id))
        if not candidates:
            continue  # unknown key: the spec says to ignore it
        if len(candidates) > 1:
            raise SignatureError(
                f"two known keys share name {sig.name} and key ID {sig.key_id.hex()}"
            )
        v = candidates[0]
        if not v.verify(message, sig.signature):
            raise SignatureError(f"signature by {sig.name} does not verify")
        if v not in verified:
            verified.append(v)
    if not verified:
        signed_by = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures)
        trusted = ", ".join(f"{n}+{i.hex()}" for n, i in known) or "none"
        raise SignatureError(
            f"no signature by a known key (signed by: {signed_by}; known keys: {trusted})"
        )
    parsed.verified_by = verified
    return parsed


def open_note(note: str, verifiers: Sequence[Verifier]) -> Note:
    """Parse and verify a note: at least one known key must sign, and every known key's must hold.

    Signatures by unknown keys (different name or key ID) are ignored, as the spec requires,
    so cosignatures from witnesses the caller does not know never cause a failure.
    """
    return _verify(parse_note(note), verifiers)


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, RFC 9162 root hash, optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Validate on construction so body() can never emit something parse() rejects.
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteFormatError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise NoteFormatError("checkpoint origin contains a newline")
        _check_no_control(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteFormatError("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteFormatError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_LEN:
            raise NoteFormatError("checkpoint root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            object.__setattr__(self, "extensions", tuple(self.extensions))
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext:
                raise NoteFormatError("checkpoint extension lines must be non-empty")
            if "\n" in ext:
                raise NoteFormatError("checkpoint extension line contains a newline")
            _check_no_control(ext, "checkpoint extension line")

    def body(self) -> str:
        """The note text to sign: one item per line, each ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly, so each checkpoint has exactly one spelling."""
        if not isinstance(text, str):
            raise NoteFormatError("checkpoint must be a string")
        if not text.endswith("\n"):
            raise NoteFormatError("checkpoint does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteFormatError(
                f"checkpoint has {len(lines)} lines; want origin, size and root hash"
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteFormatError("checkpoint origin is empty")
        if not _TREE_SIZE.fullmatch(size_text) or len(size_text) > 20:
            raise NoteFormatError(
                f"checkpoint size {size_text[:40]!r} is not a decimal without leading zeros"
            )
        root = _b64decode(root_text)
        if root is None or len(root) != _HASH_LEN:
            raise NoteFormatError("checkpoint root hash is not the base64 of 32 bytes")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    """Sign a checkpoint; the key name must be the origin (modelchain's convention)."""
    if signer.name != cp.origin:
        raise UsageError(
            f"key name {signer.name} differs from checkpoint origin {cp.origin}; "
            "sign with signer.with_name(origin)"
        )
    return sign_note(cp.body(), [signer])


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a signed checkpoint by `verifier`, whose key name must equal the origin.

    The origin is compared before the signature is checked only to give a better message;
    nothing from an unverified note is returned.
    """
    parsed = parse_note(note)
    cp = Checkpoint.parse(parsed.text)
    if cp.origin != verifier.name:
        raise SignatureError(
            f"checkpoint is for origin {cp.origin} but the key is for {verifier.name}"
        )
    _verify(parsed, [verifier])
    return cp
