"""The bounded JSON reader: it reads every honest value exactly as json.loads does, and
measures nesting without being fooled by brackets inside strings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.core.canonical import DuplicateKey
from modelchain.core.strictjson import JSONLimitError, loads_within, nesting_depth

_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('[]{}"\\'))
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(values, st.booleans())
def test_honest_values_read_as_json_loads_reads_them(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert loads_within(text.encode()) == json.loads(text)
    assert nesting_depth(text.encode()) == depth_of(value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 200 + "]" * 200, "nested 200 levels deep"),
        ('{"a":' * 129 + "0" + "}" * 129, "nested 129 levels deep"),
        ("[" + "1" * 25 + "]", "integer of 25 digits"),
        ("-" + "9" * 24, "integer of 25 digits"),
        ("[1e400]", "out of range"),
        ("-1e999", "out of range"),
        ("[0." + "1" * 50 + "]", "out of range"),
        ("[NaN]", "NaN is not a JSON number"),
        ('{"x": -Infinity}', "-Infinity is not a JSON number"),
    ],
)
def test_values_beyond_limits_are_refused(text: str, needle: str) -> None:
    with pytest.raises(JSONLimitError, match=needle):
        loads_within(text.encode())


def test_limits_at_their_edge_are_allowed() -> None:
    assert loads_within(b"[" * 128 + b"]" * 128) is not None
    assert loads_within(b"-" + b"9" * 23) == -int("9" * 23)
    assert loads_within(b"-1.7976931348623157e+308") == -1.7976931348623157e308


def test_brackets_in_strings_do_not_count() -> None:
    text = json.dumps(["[" * 500, "]" * 500, {"k": "\\[" * 300 + '"{{{'}])
    assert nesting_depth(text.encode()) == 2
    assert loads_within(text)[0] == "[" * 500


def test_duplicate_keys_and_bad_text_are_value_errors() -> None:
    with pytest.raises(DuplicateKey):
        loads_within(b'{"a": 1, "a": 2}')
    with pytest.raises(UnicodeDecodeError):
        loads_within(b'"\xff"')
    with pytest.raises(json.JSONDecodeError):
        loads_within(b'{"a": ')


def test_one_hex_digest_check_and_one_timestamp_text() -> None:
    from modelchain.core.canonical import is_sha256_hex, utc_text

    assert is_sha256_hex("ab" * 32)
    for bad in ("AB" * 32, "ab" * 32 + "\n", "ab" * 31, " " + "ab" * 32, None, b"ab" * 32):
        assert not is_sha256_hex(bad)
    assert utc_text(0) == "1970-01-01T00:00:00Z"
    assert utc_text(1764581400.9) == "2025-12-01T09:30:00Z"


def test_a_bundle_with_a_duplicate_key_names_it() -> None:
    from modelchain.claims.bundle import parse_bundle
    from modelchain.core.errors import InputError

    with pytest.raises(InputError, match='bundle: key "mediaType" appears twice'):
        parse_bundle(b'{"mediaType": "a", "mediaType": "b"}')
