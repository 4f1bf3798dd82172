"""canonical_json's fast path: byte for byte the reference RFC 8785 encoder's output, or the
same refusal, whatever the value (floats, astral keys, control characters, lone surrogates,
deep nesting), with each fast encoder this machine has."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.core import canonical
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import InputError

_orjson = canonical._orjson_fast()
FAST: dict[str, Callable[[Any], bytes]] = {"stdlib": canonical._stdlib_fast}
if _orjson is not None:
    FAST["orjson"] = _orjson


@pytest.fixture(params=sorted(FAST))
def fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with canonical_json using this fast encoder."""
    monkeypatch.setattr(canonical, "_fast", FAST[request.param])
    yield request.param


#: characters where encoders tend to differ: escapes, the code points JavaScript treats
#: specially, the top of the BMP (sorts after astral characters by UTF-16), lone surrogates
_tricky = st.sampled_from(
    [
        "\x00",
        "\x08",
        "\x1f",
        "\x7f",
        '"',
        "\\",
        "/",
        "\u2028",
        "\u2029",
        "é",
        "\ud7ff",
        "\ue000",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
        "\ud800",
        "\udfff",
    ]
)
_text = st.text(alphabet=st.characters(codec=None) | _tricky, max_size=6)
_numbers = (
    st.integers()
    | st.integers(-(2**53) - 2, -(2**53) + 2)
    | st.integers(2**53 - 2, 2**53 + 2)
    | st.floats()
    | st.floats(1e-5, 1e17)
    | st.sampled_from([0.0, -0.0, 1e-4, 1e-7, 1e16, 1e21, 2.0**52 + 0.5, 5e-324, 1.0])
)
_scalars = st.none() | st.booleans() | _numbers | _text
values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(_text, inner, max_size=4)
    ),
    max_leaves=25,
)


def outcome(encode: Callable[[Any], bytes], value: Any) -> bytes | str:
    """The bytes, or "raises" (the encoders word their errors differently)."""
    try:
        return encode(value)
    except (InputError, rfc8785.CanonicalizationError, UnicodeEncodeError, RecursionError):
        return "raises"


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_random_values_encode_as_the_reference_does(fast: str, value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(0, 1_500), leaf=_scalars, as_dict=st.booleans())
def test_deep_values_encode_as_the_reference_does(
    fast: str, depth: int, leaf: Any, as_dict: bool
) -> None:
    value = leaf
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)


def test_every_character_as_a_value_and_as_a_key(fast: str) -> None:
    text = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    assert canonical_json([text]) == rfc8785.dumps([text])
    keys = {ch: i for i, ch in enumerate(text[:0xD800:7] + text[0xD800::97])}
    assert canonical_json(keys) == rfc8785.dumps(keys)


def test_keys_sort_by_utf16_code_units(fast: str) -> None:
    # by code point U+E000 comes first; by UTF-16 the astral character's D83D unit does
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()


def test_numbers_are_written_as_ecmascript_writes_them(fast: str) -> None:
    value = [1.0, -0.0, 1e-7, 0.00001, 1e16, 1e21, 2**53 - 1, 1796204555.4267921]
    assert (
        canonical_json(value)
        == b"[1,0,1e-7,0.00001,10000000000000000,1e+21,9007199254740991,1796204555.4267921]"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": [float("nan")]}, "nan is not representable"),
        ({"size": 2**53}, "exceeds safe integer domain"),
        ({"a": {1: "x"}}, "object keys must be strings"),
        ({"\udcff": 1}, "string is not valid Unicode"),
        (["ok", "\ud800"], "non-UTF-8 codepoints"),
        ({"a": object()}, ""),
    ],
)
def test_refusals_keep_their_one_line_reason(fast: str, value: Any, reason: str) -> None:
    with pytest.raises(InputError, match=r"^cannot encode as canonical JSON: ") as e:
        canonical_json(value)
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_a_value_that_contains_itself_is_refused(fast: str) -> None:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    with pytest.raises(InputError, match="nested too deeply"):
        canonical_json(value)


def test_a_block_takes_the_fast_path(fast: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed-up is real only if ordinary blocks never reach the reference encoder."""

    def slow(obj: Any) -> bytes:
        raise AssertionError("the reference encoder was used")

    block = {
        "index": 7,
        "timestamp": 1796204555.4267921,
        "model_hash": "ab" * 32,
        "previous_hash": "cd" * 32,
        "current_hash": "ef" * 32,
        "name": "résnet-50",
        "version": 3,
        "kind": "directory",
        "size": 1_000_000,
        "manifest": [{"path": "w.safetensors", "sha256": "01" * 32, "size": 10}],
        "metadata": {"accuracy": 0.76, "tags": ["vision"], "ok": True, "note": None},
    }
    expected = rfc8785.dumps(block)
    monkeypatch.setattr(rfc8785, "dumps", slow)
    assert canonical_json(block) == expected
    with pytest.raises(AssertionError, match="reference"):
        canonical_json({"timestamp": 1796204555.0})  # integral float: the reference spells it
