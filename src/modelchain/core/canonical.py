"""RFC 8785 (JSON Canonicalization Scheme) encoding.

Everything modelchain hashes or signs as JSON goes through `canonical_json`, so two programs
that agree on the value agree on the bytes: keys sorted by UTF-16 code units, no whitespace,
ECMAScript number formatting, UTF-8 output.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
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
    # Every append encodes its block several times. For the values `_plain` accepts, a C
    # encoder writes exactly the RFC 8785 bytes, 4 (stdlib) to 15 (orjson) times faster than
    # the pure-Python reference. Anything else, and anything a fast encoder trips on (a lone
    # surrogate, nesting deeper than it allows), goes to the reference, which also words
    # the error.
    try:
        if _plain(obj):
            return _fast(obj)
    except (RecursionError, UnicodeEncodeError, ValueError, TypeError):
        pass
    return _exact(obj)


def _exact(obj: Any) -> bytes:
    """The reference encoder, and the one place its errors become InputError."""
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


_MAX_INT = 2**53 - 1
#: keys below this sort the same by code point (what the fast encoders do) as by UTF-16
#: code unit (RFC 8785)
_FIRST_SURROGATE = "\ud800"


def _plain(value: Any) -> bool:
    """Whether a fast encoder writes `value` exactly as RFC 8785 does: only exact dicts (str
    keys below U+D800), lists, str, bool, None, ints within ±(2**53 - 1), and floats that
    print as plain decimals with a fraction (1e-4 <= |x| < 1e16, not integral: there Python's
    shortest digits and ECMAScript's are spelled alike; `1.0`, `1e-05`, `1e+16` are not).
    Strings are not checked here: a lone surrogate makes the fast encoder raise."""
    t = type(value)
    if t is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) < _FIRST_SURROGATE):
                return False
            ti = type(item)
            if ti is str or item is None or ti is bool:
                continue
            if ti is int:
                if not -_MAX_INT <= item <= _MAX_INT:
                    return False
            elif not _plain(item):
                return False
        return True
    if t is list:
        return all(map(_plain, value))
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return -_MAX_INT <= value <= _MAX_INT
    if t is float:
        return 1e-4 <= abs(value) < 1e16 and not value.is_integer()
    return False


_stdlib_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def _stdlib_fast(obj: Any) -> bytes:
    """The stdlib's C encoder; `.encode()` refuses a lone surrogate (UnicodeEncodeError)."""
    return _stdlib_encode(obj).encode()


def _orjson_fast() -> Callable[[Any], bytes] | None:
    """orjson (installed with the service) when present and it spells the probes as the
    reference does (a guard against a release that formats numbers differently)."""
    try:
        import orjson
    except ImportError:
        return None
    option = orjson.OPT_SORT_KEYS

    def encode(obj: Any) -> bytes:
        return orjson.dumps(obj, option=option)

    probe = {
        "b": [0.0001, 0.1, 1 / 3, 4503599627370495.5, -(2**53) + 1],
        "a": "\x00\x1f\x7f\u2028é",
    }
    try:
        same = encode(probe) == rfc8785.dumps(probe)
    except Exception:
        same = False
    return encode if same else None


_fast: Callable[[Any], bytes] = _orjson_fast() or _stdlib_fast


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
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find the key given twice, for the message
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out


_UNIQUE = json.JSONDecoder(object_pairs_hook=unique_object)


def loads_unique(text: str) -> Any:
    """`json.loads(text, object_pairs_hook=unique_object)`, with one decoder made once (an
    audit parses every block: `json.loads` with a hook builds a new decoder each call).
    Raises ValueError (`json.JSONDecodeError`, `DuplicateKey`) or RecursionError."""
    return _UNIQUE.decode(text)
