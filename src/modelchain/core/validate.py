"""The limits of a registration: what `Ledger.prepare` accepts, every store can read back.

A block is signed into the log the moment it is appended, so anything a store or a reader
cannot carry must be refused *before*: a value nested too deeply for a JSON parser (every
later read of the block would fail), an integer that JSON readers round to a float, a NUL
character PostgreSQL cannot store, a name longer than the service lets anyone search for.
These rules live here only: `check_registration` applies all of them to one registration,
and the service builds its request schemas and its fast path's pre-checks from the same
constants and functions, so no limit has a second copy that could disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from modelchain.core.canonical import canonical_json, is_sha256_hex
from modelchain.core.errors import InputError, UsageError

#: a model name's length in characters (the service's `/search` and `/verify` take up to this)
MAX_NAME = 256
#: a size in bytes, and any integer in metadata: what IEEE doubles (and so every JSON reader,
#: RFC 8785 and PostgreSQL's jsonb included) carry exactly
MAX_INT = 2**53 - 1
MAX_SIZE = MAX_INT
#: how deeply metadata (and provenance) may nest: the metadata object itself is level 1
MAX_DEPTH = 32
#: the canonical JSON of one block's metadata, in bytes (per-tensor digests of a large
#: safetensors model stay well below it)
MAX_METADATA_BYTES = 8 << 20
#: the canonical JSON of one whole block (metadata, a folder's manifest, provenance,
#: signatures): the remote client refuses any entry larger than this as a lie, so nothing
#: larger may be accepted (a manifest of ~100,000 files fits)
MAX_BLOCK = 16 << 20
#: registration signatures on one registration (each costs a verification before any write)
MAX_SIGNATURES = 16
#: what a model is: one file, or a directory described by its manifest
KINDS: Final = ("file", "directory")
#: a model hash (SHA-256, or a directory's manifest digest): lowercase hex, as sha256sum prints
HEX64_PATTERN = "^[0-9a-f]{64}$"
#: the fields a registration gives, as its block stores them (`manifest_digest` is the digest
#: the caller computed from `manifest`, which must equal `model_hash`)
REGISTRATION_FIELDS: Final = frozenset(
    {
        "name",
        "model_hash",
        "kind",
        "size",
        "manifest",
        "manifest_digest",
        "metadata",
        "provenance",
        "signatures",
    }
)
#: what the append fills in (index, time, hashes, version), at their starting values: with
#: `BLOCK_SLACK` more bytes, the largest they can grow to, the bound holds for the stored block
_APPENDED: Final = {
    "index": 0,
    "timestamp": 0,
    "previous_hash": "0" * 64,
    "current_hash": "0" * 64,
    "version": 1,
}
BLOCK_SLACK = 512

__all__ = [
    "HEX64_PATTERN",
    "KINDS",
    "MAX_BLOCK",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_METADATA_BYTES",
    "MAX_NAME",
    "MAX_SIGNATURES",
    "MAX_SIZE",
    "REGISTRATION_FIELDS",
    "check_json_value",
    "check_kind",
    "check_model_hash",
    "check_name",
    "check_registration",
    "check_size",
]


def check_registration(fields: Mapping[str, Any]) -> None:
    """Every limit of one registration, checked before anything is signed into the log, so
    a batch cannot fail halfway and nothing accepted is unreadable or unfindable later.

    `fields` holds the registration as its block will store it (JSON values): `name`,
    `model_hash`, `kind` ("file"), `size` (0), `manifest` (the manifest's JSON array, or
    None), `manifest_digest` (what the caller hashed that manifest to), `metadata` ({}),
    `provenance` (the stored object, or None), `signatures` (their stored objects, []).
    What needs a higher layer stays with the caller: hashing the manifest, the provenance
    subject, verifying the signatures. Raises `UsageError` (or `InputError` for the shape of
    given JSON) with a one-line reason."""
    unknown = sorted(str(key) for key in fields.keys() - REGISTRATION_FIELDS)
    if unknown:
        raise UsageError(f"unknown registration field: {unknown[0]}")
    name = check_name(fields.get("name"))
    model_hash = check_model_hash(fields.get("model_hash"))
    kind = check_kind(fields.get("kind", "file"))
    check_size(fields.get("size", 0))
    manifest = fields.get("manifest")
    if kind == "directory":
        if manifest is None:
            raise UsageError("a directory registration needs its manifest")
        if not isinstance(manifest, Sequence) or isinstance(manifest, str | bytes):
            raise InputError("manifest must be a JSON array of files")
        if fields.get("manifest_digest") != model_hash:
            raise UsageError("the manifest does not hash to model_hash")
    elif manifest is not None:
        raise UsageError("a file registration has no manifest")
    metadata = fields.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise UsageError("metadata must be a JSON object")
    check_json_value(metadata, "metadata")  # depth, numbers, NUL: readable back
    # now, not mid-batch (without metadata there is nothing to measure: the name is checked)
    encoded = canonical_json({"name": name, "metadata": dict(metadata)}) if metadata else b""
    if len(encoded) > MAX_METADATA_BYTES:
        raise UsageError(
            f"metadata is {len(encoded)} bytes as canonical JSON; at most "
            f"{MAX_METADATA_BYTES} are accepted"
        )
    provenance = fields.get("provenance")
    if provenance is not None:
        if not isinstance(provenance, Mapping):
            raise InputError("provenance must be a JSON object")
        check_json_value(provenance, "provenance")
    signatures = fields.get("signatures")
    if signatures is None:
        signatures = ()
    if not isinstance(signatures, Sequence) or isinstance(signatures, str | bytes):
        raise InputError("signatures must be a JSON array")
    if len(signatures) > MAX_SIGNATURES:
        raise UsageError(
            f"a registration carries at most {MAX_SIGNATURES} signatures, not {len(signatures)}"
        )
    for i, signature in enumerate(signatures):
        if not isinstance(signature, Mapping):
            raise InputError(f"signatures[{i}] must be a JSON object")
    if manifest is not None or provenance is not None or signatures:
        # else it is metadata (bounded above) and a few short fields: far below the bound
        _check_block_size(
            name,
            model_hash,
            kind,
            fields.get("size", 0),
            manifest,
            metadata,
            provenance,
            signatures,
        )


def _check_block_size(
    name: str,
    model_hash: str,
    kind: str,
    size: int,
    manifest: Any,
    metadata: Mapping[str, Any],
    provenance: Mapping[str, Any] | None,
    signatures: Sequence[Mapping[str, Any]],
) -> None:
    """The whole block, as it will be stored, within `MAX_BLOCK`: the remote client refuses
    any larger entry, so a ledger must not accept one."""
    draft: dict[str, Any] = {
        **_APPENDED,
        "model_hash": model_hash,
        "name": name,
        "kind": kind,
        "size": size,
        "manifest": None if manifest is None else list(manifest),
        "metadata": dict(metadata),
    }
    if provenance is not None:  # absent, not null, as a block stores it
        draft["provenance"] = dict(provenance)
    if signatures:
        draft["signatures"] = [dict(s) for s in signatures]
    total = len(canonical_json(draft)) + BLOCK_SLACK
    if total > MAX_BLOCK:
        raise UsageError(
            f"the block for {name!r} would be {total} bytes as canonical JSON; at most "
            f"{MAX_BLOCK} are accepted (a smaller manifest, metadata or provenance)"
        )


def check_model_hash(model_hash: Any) -> str:
    if not is_sha256_hex(model_hash):
        raise UsageError("model_hash must be a lowercase hex SHA-256")
    return model_hash


def check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise UsageError("kind must be 'file' or 'directory'")
    return kind


def check_name(name: Any) -> str:
    """A model name: a non-empty string of at most `MAX_NAME` characters, no NUL."""
    if not isinstance(name, str) or not name:
        raise UsageError("a model name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise UsageError(f"a model name must be at most {MAX_NAME} characters, not {len(name)}")
    if "\x00" in name:
        raise UsageError("a model name must not contain a NUL character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("a model name must be valid Unicode") from None
    return name


def check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise UsageError(f"size must be an integer from 0 to {MAX_SIZE}")
    return size


def check_json_value(value: Any, where: str, *, max_depth: int = MAX_DEPTH) -> None:
    """`value` must be plain JSON that reads back as itself everywhere: objects with string
    keys, arrays, strings without NUL, finite floats, integers within +-`MAX_INT`, nested
    at most `max_depth` deep. Walks iteratively, so no depth can exhaust the stack here."""
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > max_depth:
                raise UsageError(f"{at}: nested more than {max_depth} levels deep")
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise UsageError(f"{at}: object keys must be strings")
                    _check_string(key, f"{at}: key {key[:40]!r}")
                    stack.append((child, f"{at}.{key[:40]}", depth + 1))
            else:
                stack.extend((child, f"{at}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            _check_string(item, at)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -MAX_INT <= item <= MAX_INT:
                raise UsageError(
                    f"{at}: integer {_short(item)} is outside +-{MAX_INT} "
                    "(JSON readers would round it); store it as a string"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UsageError(f"{at}: numbers must be finite")
            if MAX_INT < abs(item) < 1e21:  # RFC 8785 writes it as the digits of an integer,
                raise UsageError(  # which reads back as another value than this float
                    f"{at}: number {item!r} is beyond +-{MAX_INT} and would read back as "
                    "another integer; store it as a string"
                )
        else:
            raise UsageError(f"{at}: {type(item).__name__} is not a JSON value")


def _check_string(text: str, at: str) -> None:
    if "\x00" in text:
        raise UsageError(f"{at}: strings must not contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{at}: string is not valid Unicode") from None


def _short(n: int) -> str:
    text = str(n) if n.bit_length() < 200 else f"of {n.bit_length()} bits"
    return text if len(text) <= 40 else text[:20] + "…"
