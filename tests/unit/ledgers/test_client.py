"""modelchain.ledgers.client without a server: the answer limits a client may be given."""

from __future__ import annotations

import pytest

from modelchain.core.errors import UsageError
from modelchain.ledgers import client
from modelchain.ledgers.client import AnswerLimits, LedgerClient


def test_the_default_limits_are_the_module_caps() -> None:
    limits = LedgerClient("http://127.0.0.1:9").limits
    assert limits == AnswerLimits(client.MAX_BLOCK, client.MAX_ENTRY, client.MAX_PAGE)
    assert limits.page_cap(1) == client.MAX_ENTRY and limits.page_cap(2) == client.MAX_PAGE


def test_smaller_limits_are_kept() -> None:
    limits = AnswerLimits(block=1000, entry=5000, page=6000)
    assert LedgerClient("http://127.0.0.1:9", limits=limits).limits is limits
    assert (limits.page_cap(1), limits.page_cap(1000)) == (5000, 6000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("block", 0),
        ("block", client.MAX_BLOCK + 1),
        ("entry", -1),
        ("entry", client.MAX_ENTRY + 1),
        ("page", client.MAX_PAGE + 1),
        ("page", 5000.0),
        ("page", True),
    ],
)
def test_a_limit_beyond_the_caps_is_refused(field: str, value: object) -> None:
    """No limit reads more than an honest server sends (nor a size that is not one)."""
    with pytest.raises(UsageError, match=f"answer limit {field}: .* is not a size from 1 to"):
        AnswerLimits(**{field: value})  # type: ignore[arg-type]
