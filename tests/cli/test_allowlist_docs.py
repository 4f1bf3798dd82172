"""docs/allowlist.md is generated from the allowlist the code enforces and must match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_allowlist_docs", ROOT / "tools" / "gen_allowlist_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allowlist_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "allowlist.md").read_text(encoding="utf-8")
    assert current == _generator().render(), (
        "docs/allowlist.md is stale: run python tools/gen_allowlist_docs.py"
    )


def test_every_entry_and_refusal_is_in_the_reference() -> None:
    from modelchain.core import allowlist

    text = _generator().render()
    for entry in allowlist.ENTRIES:
        assert f"`{entry.key}`" in text
    for name, _ in allowlist.NOT_ALLOWED:
        assert f"`{name}`" in text


def test_scan_docs_link_the_reference() -> None:
    assert "(allowlist.md)" in (ROOT / "docs" / "scan.md").read_text(encoding="utf-8")
