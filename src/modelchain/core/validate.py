"""The limits of a registration: what `Ledger.prepare` accepts, every store can read back.

A block is signed into the log the moment it is appended, so anything a store or a reader
cannot carry must be refused *before*: a value nested too deeply for a JSON parser (every
later read of the block would fail), an integer that JSON readers round to a float, a NUL
character PostgreSQL cannot store, a name longer than the service lets anyone search for.
These rules live here only; the service, the CLI and the library all go through
`Ledger.prepare`, which calls `check_registration`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from modelchain.core.errors import UsageError

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

__all__ = [
    "MAX_BLOCK",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_METADATA_BYTES",
    "MAX_NAME",
    "MAX_SIZE",
    "check_json_value",
    "check_name",
    "check_size",
]


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
