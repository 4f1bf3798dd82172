"""Parsing JSON that someone else wrote (a server's answer, a signature bundle), within limits.

`json.loads` alone accepts any nesting depth (until the interpreter's recursion limit, which
then surfaces as RecursionError rather than a parse error), numbers of thousands of digits
and floats that overflow to infinity. A value that big or that deep is never honest in
anything modelchain reads, so it is refused up front, with a one-line reason, before (the
depth) or while (the numbers) the text is parsed. The caller bounds the size of the text.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from modelchain.core.canonical import unique_object

__all__ = ["MAX_DEPTH", "JSONLimitError", "loads_within", "nesting_depth"]

#: deeper than any honest block (metadata is the user's JSON, so leave it room) or bundle
MAX_DEPTH = 128
#: digits (and sign) of the longest integer: canonical JSON carries at most 2**53 - 1
MAX_INT_CHARS = 24
#: characters of the longest float text ("-1.7976931348623157e+308" is 24)
MAX_FLOAT_CHARS = 40

# a JSON string, unrolled and possessive so the regex engine never backtracks
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPEN_IS_ONE = bytes(1 if b in b"[{" else 0 for b in range(256))


class JSONLimitError(ValueError):
    """The JSON text is nested too deeply or holds a number no honest writer produces."""


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in `data`, brackets inside strings ignored.

    Computed without parsing (so it is safe on any input); for text that is not JSON it is
    only an estimate, and the parser then reports the real error."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    # after k brackets the depth is opens - closes = 2 * opens - k; all of it in C
    opens = itertools.accumulate(brackets.translate(_OPEN_IS_ONE))
    doubled = map(operator.mul, opens, itertools.repeat(2))
    return max(0, max(map(operator.sub, doubled, itertools.count(1))))


def _int(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise JSONLimitError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise JSONLimitError(f"the number {text[:20]}... is out of range")
    return value


def _constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number")


def loads_within(
    data: bytes | str,
    *,
    max_depth: int = MAX_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] = unique_object,
) -> Any:
    """Parse `data` as strict JSON: at most `max_depth` levels of nesting, integers of at
    most MAX_INT_CHARS characters, finite floats only, no NaN/Infinity, and (by default) no
    key given twice.

    Raises ValueError: UnicodeDecodeError, json.JSONDecodeError, JSONLimitError, or what the
    hook raises (`unique_object`'s DuplicateKey)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > max_depth:  # else it cannot be deeper: skip the scan
        depth = nesting_depth(raw)
        if depth > max_depth:
            raise JSONLimitError(f"nested {depth} levels deep (the limit is {max_depth})")
    text = data if isinstance(data, str) else data.decode("utf-8")
    try:
        return json.loads(
            text,
            object_pairs_hook=object_pairs_hook,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
        )
    except RecursionError:
        raise JSONLimitError("nested too deeply") from None
