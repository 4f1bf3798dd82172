"""Registrant signing keys: Ed25519 and ECDSA on P-256, P-384 and P-521.

One place decides which key types are accepted, how each signs (Ed25519 pure; ECDSA with
SHA-256, SHA-384 or SHA-512 by curve, as the OpenSSF model-signing format and Sigstore do),
how a key is identified (the SHA-256 of its PEM SubjectPublicKeyInfo, the same "hint" a
model-signing bundle carries) and how keys are kept in `MODELCHAIN_HOME/keys/`.

The operator's checkpoint key is a different thing (`modelchain.core.note`); a registrant key
only signs registrations and model-signing bundles.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from modelchain.core.errors import KeyFileError, UsageError, WayOut
from modelchain.fs.inputs import read_small_file

KeyType = Literal["ed25519", "p256", "p384", "p521"]
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "p256", "p384", "p521")

_CURVES: dict[str, tuple[KeyType, type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "secp256r1": ("p256", ec.SECP256R1, hashes.SHA256),
    "secp384r1": ("p384", ec.SECP384R1, hashes.SHA384),
    "secp521r1": ("p521", ec.SECP521R1, hashes.SHA512),
}
_BY_TYPE = {kind: (curve, digest) for kind, curve, digest in _CURVES.values()}

#: where a password for an encrypted private key may come from when none is given
PASSWORD_ENV = "MODELCHAIN_KEY_PASSWORD"
MAX_KEY_FILE = 64 * 1024
#: where to see which keys there are
_KEY_LIST = WayOut(command=("key", "list"), cli=" (see `modelchain key list`)")
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

PublicKeyObject = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKeyObject = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _kind_of(key: PublicKeyObject, where: str) -> KeyType:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        entry = _CURVES.get(key.curve.name)
        if entry is not None:
            return entry[0]
        raise KeyFileError(
            f"{where}: unsupported elliptic curve {key.curve.name} "
            "(supported: Ed25519, EC P-256, P-384, P-521)"
        )
    label = type(key).__name__.lstrip("_").removesuffix("PublicKey") or "unknown"
    raise KeyFileError(
        f"{where}: unsupported key type {label} (supported: Ed25519, EC P-256, P-384, P-521)"
    )


@dataclass(frozen=True)
class PublicKey:
    """A registrant's public key."""

    key: PublicKeyObject
    kind: KeyType

    @classmethod
    def of(cls, key: PublicKeyObject, where: str = "key") -> PublicKey:
        return cls(key, _kind_of(key, where))

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the PEM SubjectPublicKeyInfo (model-signing's key "hint")."""
        return hashlib.sha256(self.pem()).hexdigest()

    def raw_ed25519(self) -> bytes:
        assert isinstance(self.key, ed25519.Ed25519PublicKey)
        return self.key.public_bytes_raw()

    def verifier_string(self, name: str) -> str | None:
        """The C2SP verifier key string of an Ed25519 key under `name` (None for EC keys)."""
        if self.kind != "ed25519":
            return None
        from modelchain.core.note import Verifier

        return Verifier(name, self.raw_ed25519()).string()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True if `signature` is this key's signature of `message`."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                digest = _BY_TYPE[self.kind][1]
                self.key.verify(signature, message, ec.ECDSA(digest()))
        except (crypto_exceptions.InvalidSignature, ValueError):
            return False
        return True

    def matches(self, identity: str) -> bool:
        """Whether `identity` (a key ID, or a prefix of at least `MIN_KEY_ID_HEX` hex digits)
        names this key."""
        ident = identity.strip().lower()
        return len(ident) >= MIN_KEY_ID_HEX and self.key_id.startswith(ident)


@dataclass(frozen=True)
class PrivateKey:
    """A registrant's private key, and the public half that identifies it."""

    key: PrivateKeyObject
    public: PublicKey

    @classmethod
    def of(cls, key: PrivateKeyObject, where: str = "key") -> PrivateKey:
        return cls(key, PublicKey.of(key.public_key(), where))

    @property
    def kind(self) -> KeyType:
        return self.public.kind

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(message)
        digest = _BY_TYPE[self.kind][1]
        return self.key.sign(message, ec.ECDSA(digest()))

    def pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
        from cryptography.hazmat.primitives import serialization

        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def generate(kind: KeyType = "ed25519") -> PrivateKey:
    """A new private key of `kind`."""
    if kind == "ed25519":
        return PrivateKey.of(ed25519.Ed25519PrivateKey.generate())
    if kind not in _BY_TYPE:
        raise UsageError(f"unknown key type {kind!r} (choose from {', '.join(KEY_TYPES)})")
    return PrivateKey.of(ec.generate_private_key(_BY_TYPE[kind][0]()))


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    return read_small_file(path, limit=MAX_KEY_FILE, what="key file", error=KeyFileError)


def read_password_file(path: str | os.PathLike[str]) -> bytes:
    """The first line of a password file, without its line ending."""
    data = read_small_file(path, limit=4096, what="password file", error=KeyFileError)
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise KeyFileError(f"{path}: the password file's first line is empty")
    return line


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None:
        env = os.environ.get(PASSWORD_ENV)
        return env.encode() if env else None
    return password.encode() if isinstance(password, str) else password


def parse_private_key(
    data: bytes, where: str = "key", password: str | bytes | None = None
) -> PrivateKey:
    """A PEM private key (PKCS#8, SEC1 or OpenSSL legacy), encrypted or not."""
    if b"-----BEGIN" not in data:
        raise KeyFileError(f"{where}: not a PEM private key")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise KeyFileError(f"{where}: holds a public key; a private key is needed here")
    from cryptography.hazmat.primitives import serialization  # key files only: not at start-up

    secret = _password_bytes(password)
    try:
        key = serialization.load_pem_private_key(data, secret)
    except TypeError:
        # cryptography says TypeError both for "encrypted, no password" and the reverse
        if secret is None:
            raise KeyFileError(
                f"{where}: the private key is encrypted; give its password",
                way_out=WayOut(
                    flag=("--password-file",),
                    env=(PASSWORD_ENV,),
                    cli=f" (--password-file, or the {PASSWORD_ENV} environment variable)",
                ),
            ) from None
        key = serialization.load_pem_private_key(data, None)
    except ValueError as exc:
        text = str(exc).lower()
        if secret is not None and ("password" in text or "decrypt" in text):
            raise KeyFileError(f"{where}: wrong password for the private key") from None
        raise KeyFileError(f"{where}: not a readable PEM private key") from None
    except crypto_exceptions.UnsupportedAlgorithm:
        raise KeyFileError(f"{where}: unsupported key type or encryption") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        _kind_of(key.public_key(), where)  # type: ignore[arg-type]  # raises the right error
    return PrivateKey.of(key, where)  # type: ignore[arg-type]


def load_private_key(
    path: str | os.PathLike[str], password: str | bytes | None = None
) -> PrivateKey:
    """Read a PEM private key file (see `parse_private_key`)."""
    return parse_private_key(_read_key_file(path), str(path), password)


def parse_public_key(data: bytes, where: str = "key") -> PublicKey:
    """A PEM public key, an X.509 certificate's key, or a C2SP Ed25519 verifier key string."""
    text = data.strip()
    if b"-----BEGIN CERTIFICATE-----" in text:
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(text)
        except ValueError:
            raise KeyFileError(f"{where}: not a readable PEM certificate") from None
        return PublicKey.of(cert.public_key(), where)  # type: ignore[arg-type]
    if b"PRIVATE KEY-----" in text:
        raise KeyFileError(f"{where}: holds a private key; give the public key instead")
    if b"-----BEGIN" in text:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, crypto_exceptions.UnsupportedAlgorithm):
            raise KeyFileError(f"{where}: not a readable PEM public key") from None
        return PublicKey.of(key, where)  # type: ignore[arg-type]
    if text.count(b"+") >= 2 and b"\n" not in text:
        from modelchain.core.note import Verifier

        verifier = Verifier.from_string(text.decode("utf-8", "replace"))
        return PublicKey.of(ed25519.Ed25519PublicKey.from_public_bytes(verifier.public_key_bytes))
    raise KeyFileError(f"{where}: not a PEM public key or a verifier key string")


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file (see `parse_public_key`)."""
    return parse_public_key(_read_key_file(path), str(path))


def check_key_name(name: str) -> None:
    if not _KEY_NAME.fullmatch(name):
        raise UsageError(
            f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class StoredKey:
    """A key pair kept in `MODELCHAIN_HOME/keys/`."""

    name: str
    private_path: Path
    public: PublicKey


class KeyRing:
    """The registrant keys of one `MODELCHAIN_HOME`: `NAME.pem` (private, 0600) and
    `NAME.pub` (public PEM) in `keys/`."""

    def __init__(self, home_path: str | os.PathLike[str]) -> None:
        self.dir = Path(home_path) / "keys"

    def _paths(self, name: str) -> tuple[Path, Path]:
        check_key_name(name)
        return self.dir / f"{name}.pem", self.dir / f"{name}.pub"

    def generate(
        self, name: str, kind: KeyType = "ed25519", password: bytes | None = None
    ) -> StoredKey:
        """Create and store a new key pair; refuses to overwrite one of the same name."""
        private_path, public_path = self._paths(name)
        if private_path.exists() or public_path.exists():
            raise UsageError(f"a key named {name!r} already exists in {self.dir}")
        key = generate(kind)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        from modelchain.fs.safeio import atomic_write

        try:  # never through a link planted at either name, never over an existing file
            atomic_write(private_path, key.pem(password), 0o600, overwrite=False)
            try:
                atomic_write(public_path, key.public.pem(), 0o644, overwrite=False)
            except BaseException:
                private_path.unlink()  # ours: made just now, and no half pair is left behind
                raise
        except FileExistsError:
            raise UsageError(f"a key named {name!r} already exists in {self.dir}") from None
        return StoredKey(name, private_path, key.public)

    def get(self, name: str) -> StoredKey:
        private_path, public_path = self._paths(name)
        if not public_path.exists():
            raise KeyFileError(f"no key named {name!r} in {self.dir}", way_out=_KEY_LIST)
        return StoredKey(name, private_path, load_public_key(public_path))

    def __iter__(self) -> Iterator[StoredKey]:
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.pub")):
            yield self.get(path.stem)

    def private(self, name: str, password: str | bytes | None = None) -> PrivateKey:
        stored = self.get(name)
        return load_private_key(stored.private_path, password)


#: a key ID given on its own must be at least this many hex digits (128 bits): a shorter
#: prefix is one an attacker can find a key for (32 bits takes minutes), and a key they made
#: would then pass for the one the user meant
MIN_KEY_ID_HEX = 32
_KEY_ID = re.compile(rf"[0-9a-fA-F]{{{MIN_KEY_ID_HEX},64}}")
#: a C2SP verifier key string, `name+hash+base64` (its base64 may hold a `/`)
_VERIFIER = re.compile(r"[^+\s./~][^+\s]*\+[0-9a-fA-F]{8}\+[A-Za-z0-9+/]+={0,2}")
_HEX_WORD = re.compile(r"[0-9a-fA-F]{1,64}")
_PATH_SUFFIXES = (".pem", ".pub", ".key", ".crt")


def is_path_spec(spec: str) -> bool:
    """Whether a key argument names a file: it has a path separator, starts with `.` or `~`,
    or ends in `.pem`, `.pub`, `.key` or `.crt`. Anything else is a key-ring name or key ID.

    A bare word is never looked up as a file in the current directory: an unpacked model
    (or any folder someone else wrote) could hold a file named `alice` that would otherwise
    supply the key `--signer alice` trusts."""
    return (
        os.sep in spec
        or "/" in spec
        or (os.altsep is not None and os.altsep in spec)
        or spec.startswith((".", "~"))
        or spec.lower().endswith(_PATH_SUFFIXES)
    )


def _not_in_ring(spec: str, ring: KeyRing) -> KeyFileError:
    path = f"; a key file must be given as a path, e.g. ./{spec}"
    return KeyFileError(
        f"no key named {spec!r} in {ring.dir}",
        way_out=WayOut(command=_KEY_LIST.command, library=path, cli=_KEY_LIST.cli + path),
    )


def resolve_private_key(
    spec: str, home_path: str | os.PathLike[str], password: str | bytes | None = None
) -> PrivateKey:
    """`spec` is a path to a PEM private key (see `is_path_spec`), or the name of a key in
    the home's key ring; a bare name is never read from the current directory."""
    if is_path_spec(spec):
        return load_private_key(Path(spec).expanduser(), password)
    ring = KeyRing(home_path)
    check_key_name(spec)
    if not (ring.dir / f"{spec}.pub").exists():
        raise _not_in_ring(spec, ring)
    return ring.private(spec, password)


def resolve_public_key(spec: str, home_path: str | os.PathLike[str]) -> PublicKey | str:
    """A public key from a file path (see `is_path_spec`), a key-ring name or a verifier key
    string; otherwise a key ID of at least `MIN_KEY_ID_HEX` hex digits, returned lower-cased
    to match against (a prefix that names one key of the ring becomes that key; one that
    names several is refused). A bare name is never read from the current directory."""
    if _VERIFIER.fullmatch(spec):
        return parse_public_key(spec.encode(), "verifier key")
    if is_path_spec(spec):
        return load_public_key(Path(spec).expanduser())
    ring = KeyRing(home_path)
    if _KEY_NAME.fullmatch(spec) and (ring.dir / f"{spec}.pub").exists():
        return ring.get(spec).public
    if _KEY_ID.fullmatch(spec):
        ident = spec.lower()
        found = {k.public.key_id: k.public for k in ring if k.public.key_id.startswith(ident)}
        if len(found) > 1:
            raise UsageError(f"key ID {ident} is ambiguous: it names {len(found)} keys")
        return next(iter(found.values())) if found else ident
    if _HEX_WORD.fullmatch(spec) and len(spec) >= 8:
        raise UsageError(
            f"key ID {spec!r} is too short: give at least {MIN_KEY_ID_HEX} hex digits "
            "(a shorter prefix can be matched by a key made for the purpose)"
        )
    if _KEY_NAME.fullmatch(spec):
        raise _not_in_ring(spec, ring)
    raise UsageError(
        f"{spec!r} is not a public key file, a key name, a verifier key or a key ID "
        f"(at least {MIN_KEY_ID_HEX} hex digits)"
    )


def public_key_for(spec: str, home_path: str | os.PathLike[str]) -> PublicKey:
    """A public key (not just an ID): a key file, a key-ring name or a verifier key string."""
    found = resolve_public_key(spec, home_path)
    if isinstance(found, str):
        raise UsageError(f"{spec!r} looks like a key ID; a public key file or key name is needed")
    return found
