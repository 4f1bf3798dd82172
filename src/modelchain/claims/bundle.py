"""OpenSSF model-signing (OMS) bundles: sign a model, and verify a model against a bundle.

A bundle is a Sigstore bundle (media type v0.3) whose DSSE envelope carries an in-toto
Statement v1 with the predicate `https://model_signing/signature/v1.0`. The predicate lists one
*resource* per file (or per file shard) with its digest, and the serialization settings
(method, hash, shard size, symlinks, ignored paths) needed to hash the model the same way
again. The subject digest is the SHA-256 of the resources' raw digests, concatenated in the
listed order. Signed with a key, the bundle holds no certificate, only a *hint*: the SHA-256 of
the signer's PEM public key. The `model_signing` tool reads and writes the same files, so each
side verifies the other's (Ed25519 bundles are our extension: model_signing signs only with EC
keys).

Verification trusts nothing it has not checked: the key hint and the DSSE signature first,
then the statement inside the signed payload, then the subject digest against the resources,
and only then the model on disk, hashed with the settings the signer recorded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelchain.claims.keys import PrivateKey, PublicKey
from modelchain.core.canonical import DuplicateKey, canonical_json, is_sha256_hex
from modelchain.core.dsse import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, pae
from modelchain.core.errors import (
    InputError,
    ModelMismatch,
    SignatureError,
    UsageError,
    VerificationError,
)
from modelchain.core.strictjson import JSONLimitError, loads_within
from modelchain.fs.digest import ScannedFile, default_workers, open_scanned, scan_directory
from modelchain.fs.hashing import buffer_size, hash_open_file, new_hasher, run_parallel
from modelchain.fs.inputs import read_small_file
from modelchain.fs.progress import NullProgress, ProgressSink, announce
from modelchain.fs.safeio import kind_name, read_error, show_path

__all__ = [
    "DEFAULT_SIGNATURE",
    "GIT_PATHS",
    "MEDIA_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Resource",
    "Serialization",
    "SignResult",
    "Statement",
    "VerifyResult",
    "make_bundle",
    "parse_size",
    "read_bundle",
    "sign_model",
    "verify_model",
]

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = IN_TOTO_PAYLOAD_TYPE
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: model_signing's default signature path (relative to the current directory), and ours
DEFAULT_SIGNATURE = "model.sig"
#: what model_signing leaves out of every directory unless told not to
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")

HashType = Literal["sha256", "blake2b", "blake3"]
HASH_TYPES: tuple[HashType, ...] = ("sha256", "blake2b", "blake3")
_DIGEST_SIZE = {"sha256": 32, "blake2b": 64, "blake3": 32}
#: The largest signature bundle read or written. Each resource (a file, or a shard of one)
#: costs about 200 bytes in the statement plus a third for base64: 16 MiB holds some 60,000
#: resources with 100-byte paths, beyond any real model (the largest have a few thousand
#: files; a 1 TB model in the default 1 GiB shards is about 1,000). `sign` refuses to write
#: more, so everything it writes can be verified.
MAX_BUNDLE = 16 << 20
#: DSSE signatures in one bundle (model_signing writes one; each costs a verification)
MAX_BUNDLE_SIGNATURES = 16
#: nesting of a bundle or its statement (an honest one is 5 levels deep)
MAX_BUNDLE_DEPTH = 32
_HEX = re.compile(r"[0-9a-f]+")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Serialization:
    """How a model was turned into resources: what a verifier must repeat exactly."""

    method: Literal["files", "shards"] = "files"
    hash_type: HashType = "sha256"
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()

    @property
    def algorithm(self) -> str:
        """The `algorithm` every resource of this serialization carries."""
        if self.method == "shards":
            return f"{self.hash_type}-sharded-{self.shard_size}"
        return self.hash_type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Serialization:
        where = "bundle: predicate.serialization"
        obj = _object(data, where)
        method = obj.get("method")
        if method not in ("files", "shards"):
            raise InputError(f"{where}: unknown method {_short(method)} (supported: files, shards)")
        hash_type = obj.get("hash_type")
        if hash_type == "blake2":  # the name model_signing's API takes for blake2b
            hash_type = "blake2b"
        if hash_type not in HASH_TYPES:
            raise InputError(
                f"{where}: unknown hash_type {_short(hash_type)} "
                f"(supported: {', '.join(HASH_TYPES)})"
            )
        allow = obj.get("allow_symlinks", False)
        if not isinstance(allow, bool):
            raise InputError(f"{where}: allow_symlinks must be true or false")
        shard_size = None
        if method == "shards":
            shard_size = _integer(obj.get("shard_size"), f"{where}.shard_size")
            if shard_size < 1:
                raise InputError(f"{where}.shard_size must be positive")
        ignore = obj.get("ignore_paths", [])
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise InputError(f"{where}: ignore_paths must be a list of strings")
        return cls(method, hash_type, shard_size, allow, tuple(ignore))


def _object(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a JSON object")
    return data


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True) if value is not None else "(missing)"
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(value: Any, where: str) -> int:
    """An integer, also as a float with no fraction (protobuf's JSON writes numbers so)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where} must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{where} must be an integer")
        value = int(value)
    return value


def parse_size(text: str) -> int:
    """A byte count such as `1000000`, `64M`, `256MiB` or `1G` (K/M/G are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"invalid size {text!r} (examples: 1000000, 64M, 1GiB)")
    value = int(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")
    if value < 1:
        raise UsageError("the shard size must be at least 1 byte")
    return value


# --------------------------------------------------------------------------- ignore paths


def _escape(part: str) -> str:
    """A literal file name as an fnmatch pattern (the walker's rules are globs)."""
    return re.sub(r"([*?\[])", r"[\1]", part)


def _normalize_ignore(path: str) -> str | None:
    """A model-relative POSIX ignore path, or None when it cannot name anything inside."""
    norm = posixpath.normpath(path.replace("\\", "/")) if path else ""
    if not norm or norm.startswith("/") or norm == ".." or norm.startswith("../"):
        return None
    return norm


def _walk_rules(ignore: Iterable[str]) -> tuple[list[str], bool]:
    """Walker patterns for exact ignore paths (a path and everything under it, as in
    model_signing), and whether the whole model is ignored."""
    patterns = []
    for path in ignore:
        norm = _normalize_ignore(path)
        if norm is None:
            continue
        if norm == ".":
            return [], True
        patterns.append("/" + "/".join(_escape(p) for p in norm.split("/")))
    return patterns, False


def resolve_ignore_paths(model: str | os.PathLike[str], paths: Iterable[str]) -> list[str]:
    """User ignore paths as model-relative paths: a path (absolute, or relative to the current
    directory) inside the model, as model_signing takes them, or else a path relative to the
    model root."""
    root = Path(model).resolve()
    out = []
    for raw in paths:
        if not raw or not raw.strip():
            raise UsageError("empty --ignore-paths value")
        candidate = Path(raw).expanduser()
        resolved = (candidate if candidate.is_absolute() else Path.cwd() / candidate).resolve()
        if resolved.is_relative_to(root) and resolved != root:
            out.append(resolved.relative_to(root).as_posix())
            continue
        norm = None if candidate.is_absolute() else _normalize_ignore(raw)
        if norm is None or norm == ".":
            raise UsageError(f"--ignore-paths {raw}: not a path inside the model {model}")
        out.append(norm)
    return out


def _signature_inside(model: str | os.PathLike[str], signature: str | os.PathLike[str]) -> str:
    """The signature's path relative to a model directory ("" when it lies outside)."""
    root = Path(model).resolve()
    sig = Path(signature).expanduser()
    sig = (sig if sig.is_absolute() else Path.cwd() / sig).resolve()
    if sig != root and sig.is_relative_to(root):
        return sig.relative_to(root).as_posix()
    return ""


# --------------------------------------------------------------------------- hashing


@dataclass(frozen=True)
class Resource:
    """One signed item: a file (`name` = its path) or a shard (`path:start:end`)."""

    name: str
    algorithm: str
    digest: str  # lowercase hex

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "algorithm": self.algorithm, "digest": self.digest}


@dataclass(frozen=True)
class _Task:
    item: ScannedFile
    start: int
    end: int
    whole: bool  # the whole file: also check it did not grow or shrink meanwhile


def _hash_task(
    task: _Task,
    hash_type: str,
    buf: bytearray,
    advance: Callable[[int], None],
    cancelled: Callable[[], bool] | None = None,
) -> str:
    """Hex digest of bytes [start, end) of a scanned file, read once through `buf`."""
    item = task.item
    fd = open_scanned(item)
    try:
        h = new_hasher(hash_type)
        hash_open_file(
            fd,
            h,
            buf,
            advance,
            shown=item.shown,
            start=task.start,
            length=task.end - task.start,
            expect_size=item.size,
            cancelled=cancelled,
        )
        return str(h.hexdigest())
    except OSError as e:
        raise read_error(item.open_path, e) from None
    finally:
        os.close(fd)


def _run_tasks(
    tasks: Sequence[_Task], hash_type: str, workers: int, advance: Callable[[int], None]
) -> list[str]:
    """Digests of `tasks` (same order), hashed in parallel, largest first: hashlib and blake3
    release the GIL, so threads use every core."""

    def work(task: _Task, buf: bytearray, cancelled: Callable[[], bool] | None) -> str:
        return _hash_task(task, hash_type, buf, advance, cancelled)

    return run_parallel(
        tasks,
        work,
        workers=workers,
        buffer=buffer_size(hash_type),
        weight=lambda t: t.end - t.start,
        name="modelchain-oms",
    )


def _single_file(path: str) -> ScannedFile:
    """A model that is one file, as the walker would have found it (a link the user named is
    followed)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise read_error(path, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"cannot sign or verify {show_path(path)}: {kind_name(st.st_mode)}")
    return ScannedFile(
        rel=".",
        open_path=path,
        follow=True,
        size=st.st_size,
        ident=(st.st_dev, st.st_ino),
        shown=show_path(path),
    )


@dataclass
class _Hashed:
    resources: list[Resource]
    files: list[ScannedFile]
    not_covered: list[str] = field(default_factory=list)  # empty files a shard bundle omits


def _order_key(name: str, start: int = 0) -> tuple[tuple[str, ...], int]:
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    return parts, start


def hash_model(
    model: str,
    settings: Serialization,
    *,
    allow_outside: bool = False,
    workers: int | None = None,
    progress: ProgressSink | None = None,
) -> _Hashed:
    """The resources of `model` under `settings`, sorted as model_signing sorts them."""
    if os.path.isdir(model):
        patterns, everything = _walk_rules(settings.ignore_paths)
        files = (
            []
            if everything
            else scan_directory(
                model,
                ignore=patterns,
                follow_symlinks=settings.allow_symlinks,
                allow_outside=allow_outside,
            )
        )
    else:
        files = [_single_file(model)]
    tasks: list[_Task] = []
    not_covered = []
    for item in files:
        if settings.method == "files":
            tasks.append(_Task(item, 0, item.size, True))
        elif item.size == 0:
            not_covered.append(item.rel)
        else:
            step = settings.shard_size or 1
            for start in range(0, item.size, step):
                tasks.append(_Task(item, start, min(start + step, item.size), False))
    sink = progress if progress is not None else NullProgress()  # the caller closes its own
    announce(sink, sum(t.end - t.start for t in tasks), "hashing")
    digests = _run_tasks(tasks, settings.hash_type, workers or default_workers(), sink.advance)
    algorithm = settings.algorithm
    named = []
    for task, digest in zip(tasks, digests, strict=True):
        if settings.method == "files":
            named.append((_order_key(task.item.rel), Resource(task.item.rel, algorithm, digest)))
        else:
            name = f"{task.item.rel}:{task.start}:{task.end}"
            named.append((_order_key(task.item.rel, task.start), Resource(name, algorithm, digest)))
    named.sort(key=lambda pair: pair[0])
    return _Hashed([r for _, r in named], files, not_covered)


def subject_digest(resources: Iterable[Resource]) -> str:
    """SHA-256 over the raw digests of the resources, in order (the statement's subject)."""
    h = hashlib.sha256()
    for resource in resources:
        h.update(bytes.fromhex(resource.digest))
    return h.hexdigest()


# --------------------------------------------------------------------------- statement


@dataclass(frozen=True)
class Statement:
    """The signed in-toto statement: model name, subject digest, settings, resources."""

    name: str
    digest: str
    serialization: Serialization
    resources: tuple[Resource, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": self.digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": self.serialization.to_json(),
                "resources": [r.to_json() for r in self.resources],
            },
        }

    @classmethod
    def parse(cls, payload: bytes) -> Statement:
        """Strictly parse a signed payload; the subject digest must match the resources."""
        data = _load_json(payload, "bundle: DSSE payload")
        obj = _object(data, "bundle: DSSE payload")
        if obj.get("_type") != STATEMENT_TYPE:
            raise InputError(
                f"bundle: payload is not an in-toto Statement v1 (_type {_short(obj.get('_type'))})"
            )
        ptype = obj.get("predicateType")
        if ptype != PREDICATE_TYPE:
            raise InputError(
                f"bundle: unknown predicateType {_short(ptype)} (supported: {PREDICATE_TYPE})"
            )
        subjects = obj.get("subject")
        if not isinstance(subjects, list) or len(subjects) != 1:
            raise InputError("bundle: statement must have exactly one subject")
        subject = _object(subjects[0], "bundle: subject")
        name = subject.get("name")
        digest = _object(subject.get("digest"), "bundle: subject.digest").get("sha256")
        if not isinstance(name, str):
            raise InputError("bundle: subject.name must be a string")
        if not is_sha256_hex(digest):
            raise InputError("bundle: subject.digest.sha256 must be 64 lowercase hex digits")
        predicate = _object(obj.get("predicate"), "bundle: predicate")
        settings = Serialization.from_json(predicate.get("serialization"))
        raw = predicate.get("resources")
        if not isinstance(raw, list):
            raise InputError("bundle: predicate.resources must be a list")
        resources = tuple(_parse_resource(r, i, settings) for i, r in enumerate(raw))
        seen: set[str] = set()
        for r in resources:
            if r.name in seen:
                raise InputError(f"bundle: resource {show_path(r.name)} is listed twice")
            seen.add(r.name)
        actual = subject_digest(resources)
        if actual != digest:
            raise VerificationError(
                f"bundle: subject digest {digest[:16]}... does not match its resources "
                f"({actual[:16]}...): the statement is inconsistent"
            )
        return cls(name, digest, settings, resources)


def _parse_resource(data: Any, index: int, settings: Serialization) -> Resource:
    where = f"bundle: resource {index}"
    obj = _object(data, where)
    name, algorithm, digest = obj.get("name"), obj.get("algorithm"), obj.get("digest")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: name must be a non-empty string")
    if algorithm != settings.algorithm:
        raise InputError(
            f"{where}: algorithm {_short(algorithm)} does not match the serialization "
            f"({settings.algorithm})"
        )
    size = _DIGEST_SIZE[settings.hash_type]
    if not isinstance(digest, str) or len(digest) != 2 * size or not _HEX.fullmatch(digest):
        raise InputError(f"{where}: digest must be {2 * size} lowercase hex digits")
    if settings.method == "shards":
        path, start, end = _split_shard(name, where)
        if not 0 <= start < end or end - start > (settings.shard_size or 0):
            raise InputError(f"{where}: shard {show_path(name)} is not a valid byte range")
        _check_name(path, where)
    else:
        _check_name(name, where)
    return Resource(name, algorithm, digest)


def _split_shard(name: str, where: str) -> tuple[str, int, int]:
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not all(re.fullmatch(r"[0-9]+", p) for p in parts[1:]):
        raise InputError(f"{where}: shard name {show_path(name)} is not PATH:START:END")
    return parts[0], int(parts[1]), int(parts[2])


def _check_name(name: str, where: str) -> None:
    if name == ".":
        return
    if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in name.split("/")):
        raise InputError(f"{where}: {show_path(name)} is not a normalized relative path")


def _load_json(data: bytes, where: str) -> Any:
    try:
        return loads_within(data, max_depth=MAX_BUNDLE_DEPTH)
    except DuplicateKey as e:
        raise InputError(f"{where}: key {_short(e.key)} appears twice") from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except JSONLimitError as e:
        raise InputError(f"{where}: JSON beyond limits: {e}") from None


# --------------------------------------------------------------------------- DSSE bundle


def make_bundle(payload: bytes, key: PrivateKey, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """A Sigstore v0.3 bundle with one DSSE signature by `key` over `payload`."""
    signature = key.sign(pae(payload_type, payload))
    bundle = {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.key_id}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return (json.dumps(bundle, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    """A parsed (not yet verified) bundle: the key hint, payload and DSSE signatures."""

    hint: str | None
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def verify(self, key: PublicKey) -> None:
        """Raise SignatureError unless one signature is `key`'s over the PAE of the payload."""
        if self.hint is not None and self.hint.lower() != key.key_id:
            raise SignatureError(
                f"key mismatch: the bundle was signed by key {self.hint[:16]}..., "
                f"the given public key is {key.key_id[:16]}..."
            )
        message = pae(self.payload_type, self.payload)
        if not any(key.verify(sig, message) for sig in self.signatures):
            raise SignatureError(
                f"the bundle's signature does not verify with public key {key.key_id[:16]}... "
                "(wrong key, or the bundle was altered)"
            )


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where} is not valid base64") from None


def parse_bundle(data: bytes) -> Envelope:
    """Strictly parse the bundle's JSON (signatures are checked by `Envelope.verify`)."""
    obj = _load_json(data, "bundle")
    if not isinstance(obj, dict) or "mediaType" not in obj:
        raise InputError("bundle: not a Sigstore bundle (no mediaType)")
    media = obj["mediaType"]
    if media != MEDIA_TYPE:
        raise InputError(f"bundle: unsupported media type {_short(media)} (expected {MEDIA_TYPE})")
    material = _object(obj.get("verificationMaterial"), "bundle: verificationMaterial")
    hint = None
    if "publicKey" in material:
        hint = _object(material["publicKey"], "bundle: verificationMaterial.publicKey").get("hint")
        if hint is not None and (
            not isinstance(hint, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", hint)
        ):
            raise InputError("bundle: publicKey.hint must be 64 hex digits")
    elif "certificate" in material or "x509CertificateChain" in material:
        raise InputError(
            "bundle: signed with a certificate (Sigstore or PKI); only key-signed bundles are "
            "supported here"
        )
    if "dsseEnvelope" not in obj:
        raise InputError("bundle: no DSSE envelope (message signatures are not supported)")
    envelope = _object(obj["dsseEnvelope"], "bundle: dsseEnvelope")
    ptype = envelope.get("payloadType")
    if ptype != PAYLOAD_TYPE:
        raise InputError(f"bundle: unknown payloadType {_short(ptype)} (expected {PAYLOAD_TYPE})")
    payload = _b64(envelope.get("payload"), "bundle: dsseEnvelope.payload")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise InputError("bundle: dsseEnvelope.signatures must be a non-empty list")
    if len(sigs) > MAX_BUNDLE_SIGNATURES:
        raise InputError(
            f"bundle: {len(sigs)} signatures; at most {MAX_BUNDLE_SIGNATURES} are checked"
        )
    signatures = tuple(
        _b64(_object(s, "bundle: signature").get("sig"), f"bundle: signature {i}")
        for i, s in enumerate(sigs)
    )
    return Envelope(hint, ptype, payload, signatures)


def read_bundle(path: str | os.PathLike[str]) -> Envelope:
    """Read and parse a bundle file (InputError naming the file for anything unreadable)."""
    p = os.fspath(path)
    data = read_small_file(p, limit=MAX_BUNDLE, what="signature file")
    try:
        return parse_bundle(data)
    except InputError as e:
        raise InputError(f"{p}: {e}") from None


# --------------------------------------------------------------------------- sign / verify


def _model_name(model: str) -> str:
    name = Path(model).name
    if not name or name == "..":
        name = Path(model).resolve().name
    return name


def _check_model(model: str) -> None:
    try:
        os.stat(model)
    except OSError as e:
        raise read_error(model, e) from None


@dataclass(frozen=True)
class SignResult:
    """What `sign_model` wrote."""

    model: str
    signature: str
    statement: Statement
    key: PublicKey
    files: int
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "signed": True,
            "model": self.model,
            "signature": self.signature,
            "subject": {"name": self.statement.name, "sha256": self.statement.digest},
            "key_id": self.key.key_id,
            "key_type": self.key.kind,
            "serialization": self.statement.serialization.to_json(),
            "files": self.files,
            "resources": len(self.statement.resources),
            "size": self.size,
        }


def sign_model(
    model: str,
    key: PrivateKey,
    *,
    signature: str = DEFAULT_SIGNATURE,
    ignore_paths: Sequence[str] = (),
    ignore_git_paths: bool = True,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    allow_symlinks: bool = False,
    allow_outside: bool = False,
    workers: int | None = None,
    progress: ProgressSink | None = None,
) -> SignResult:
    """Hash `model` (file or directory), sign the statement with `key`, write the bundle."""
    _check_model(model)
    if hash_type not in HASH_TYPES:
        raise UsageError(f"unknown hash {hash_type!r} (choose from {', '.join(HASH_TYPES)})")
    if shard_size is not None and shard_size < 1:
        raise UsageError("the shard size must be at least 1 byte")
    sig_path = Path(signature).expanduser()
    if sig_path.is_dir():
        raise UsageError(f"--signature {signature}: is a directory")
    if os.path.exists(sig_path) and os.path.samefile(sig_path, model):
        raise UsageError("--signature would overwrite the model itself")
    ignored: list[str] = []
    if os.path.isdir(model):
        ignored = [
            *(GIT_PATHS if ignore_git_paths else ()),
            *resolve_ignore_paths(model, ignore_paths),
        ]
        inside = _signature_inside(model, sig_path)
        if inside:
            ignored.append(inside)
    settings = Serialization(
        method="shards" if shard_size is not None else "files",
        hash_type=hash_type,  # type: ignore[arg-type]
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(sorted(set(ignored))),
    )
    hashed = hash_model(
        model, settings, allow_outside=allow_outside, workers=workers, progress=progress
    )
    statement = Statement(
        _model_name(model),
        subject_digest(hashed.resources),
        settings,
        tuple(hashed.resources),
    )
    bundle = make_bundle(canonical_json(statement.to_json()), key)
    if len(bundle) > MAX_BUNDLE:
        raise UsageError(
            f"the signature bundle would be {len(bundle) >> 20} MiB, more than the "
            f"{MAX_BUNDLE >> 20} MiB a verifier reads ({len(statement.resources)} resources); "
            "sign fewer files, or with larger shards"
        )
    _write_atomic(sig_path, bundle)
    return SignResult(
        model,
        str(sig_path),
        statement,
        key.public,
        len(hashed.files),
        sum(f.size for f in hashed.files),
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """The bundle is public: 0644, written without ever following a planted link."""
    from modelchain.fs.safeio import atomic_write

    try:
        atomic_write(path, data, 0o644)
    except OSError as e:
        raise InputError(f"cannot write signature {path}: {e.strerror or e}") from None


@dataclass(frozen=True)
class VerifyResult:
    """A model that matched a bundle, and what the bundle said."""

    model: str
    signature: str
    statement: Statement
    key: PublicKey
    files: int
    size: int
    not_covered: tuple[str, ...]
    #: relative path ("." for a file model) -> (size, SHA-256) of what was verified, when the
    #: bundle hashes whole files with SHA-256 (then the ledger check can reuse them)
    sha256s: dict[str, tuple[int, str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "model": self.model,
            "signature": self.signature,
            "subject": {"name": self.statement.name, "sha256": self.statement.digest},
            "key_id": self.key.key_id,
            "key_type": self.key.kind,
            "serialization": self.statement.serialization.to_json(),
            "files": self.files,
            "resources": len(self.statement.resources),
            "size": self.size,
            "not_covered": list(self.not_covered),
        }


def _file_of(name: str, method: str) -> str:
    return name.rsplit(":", 2)[0] if method == "shards" else name


def _compare(
    expected: Sequence[Resource], actual: Sequence[Resource], method: str
) -> dict[str, list[str]]:
    """Changed, added (extra) and removed (missing) files between two resource lists."""

    def by_file(resources: Sequence[Resource]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for r in resources:
            out.setdefault(_file_of(r.name, method), {})[r.name] = r.digest
        return out

    want, have = by_file(expected), by_file(actual)
    key = lambda p: _order_key(p)  # noqa: E731
    return {
        "changed": sorted((p for p in want.keys() & have.keys() if want[p] != have[p]), key=key),
        "added": sorted(have.keys() - want.keys(), key=key),
        "removed": sorted(want.keys() - have.keys(), key=key),
    }


def verify_model(
    model: str,
    signature: str,
    key: PublicKey,
    *,
    ignore_paths: Sequence[str] = (),
    follow_symlinks: bool = False,
    allow_outside: bool = False,
    workers: int | None = None,
    progress: ProgressSink | None = None,
) -> VerifyResult:
    """Check the bundle at `signature` with `key`, then `model` against its statement.

    Raises SignatureError (key mismatch, bad signature), InputError (malformed bundle),
    VerificationError (inconsistent statement) or ModelMismatch naming the changed, extra and
    missing files (also in `.details`).
    """
    _check_model(model)
    envelope = read_bundle(signature)
    envelope.verify(key)
    statement = Statement.parse(envelope.payload)
    settings = statement.serialization
    extra: list[str] = []
    if os.path.isdir(model):
        extra = resolve_ignore_paths(model, ignore_paths)
        inside = _signature_inside(model, signature)
        if inside:
            extra.append(inside)
    settings = Serialization(
        settings.method,
        settings.hash_type,
        settings.shard_size,
        settings.allow_symlinks or follow_symlinks,
        (*settings.ignore_paths, *extra),
    )
    hashed = hash_model(
        model, settings, allow_outside=allow_outside, workers=workers, progress=progress
    )
    diff = _compare(statement.resources, hashed.resources, settings.method)
    if any(diff.values()):
        parts = []
        for label, what in (("changed", "changed"), ("added", "extra"), ("removed", "missing")):
            names = diff[label]
            if names:
                shown = ", ".join(show_path(model if n == "." else n) for n in names[:5])
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                parts.append(f"{what} {'file' if len(names) == 1 else 'files'} {shown}{more}")
        error = ModelMismatch(f"{model} does not match the signature: {'; '.join(parts)}")
        error.details = {  # type: ignore[attr-defined]
            "verified": False,
            "model": model,
            "signature": signature,
            **diff,
        }
        raise error
    sha256s: dict[str, tuple[int, str]] = {}
    if settings.method == "files" and settings.hash_type == "sha256":
        sizes = {f.rel: f.size for f in hashed.files}
        sha256s = {r.name: (sizes[r.name], r.digest) for r in hashed.resources}
    return VerifyResult(
        model,
        signature,
        statement,
        key,
        len(hashed.files),
        sum(f.size for f in hashed.files),
        tuple(hashed.not_covered),
        sha256s,
    )
