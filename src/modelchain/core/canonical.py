"""RFC 8785 (JSON Canonicalization Scheme) encoding.

Everything modelchain hashes or signs as JSON goes through `canonical_json`, so two programs
that agree on the value agree on the bytes: keys sorted by UTF-16 code units, no whitespace,
ECMAScript number formatting, UTF-8 output.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import rfc8785

from modelchain.core.errors import InputError

__all__ = ["canonical_json", "is_sha256_hex", "json_type", "utc_text"]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def canonical_json(obj: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of `obj`.

    Raises InputError (one line) for values JSON cannot carry exactly: NaN or infinite floats,
    integers outside ±(2**53 - 1), non-string keys, lone surrogates, unsupported types.
    """
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as e:
        raise InputError(f"cannot encode as canonical JSON: {e}") from None
    except UnicodeEncodeError:
        # rfc8785 sorts keys by their UTF-16 form before it checks them, so a lone surrogate
        # in a key escapes as UnicodeEncodeError rather than CanonicalizationError.
        raise InputError("cannot encode as canonical JSON: string is not valid Unicode") from None
    except RecursionError:
        raise InputError("cannot encode as canonical JSON: value is nested too deeply") from None


def is_sha256_hex(value: Any) -> bool:
    """Whether `value` is a SHA-256 digest as modelchain writes it: a string of exactly 64
    lowercase hex digits (no uppercase, no surrounding space, no trailing newline)."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def utc_text(timestamp: float) -> str:
    """A Unix timestamp as modelchain shows it, to the second in UTC: `2026-12-01T09:30:00Z`."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_type(value: Any) -> str:
    """What kind of JSON value `value` is, for messages ("found a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (`key`)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` hook: a key given twice is an error, not "the last one wins" (a reader
    that kept the first would see another object than the one that was hashed)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out
