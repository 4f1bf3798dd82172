"""The docs a user reads first must match the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("## ", 1)[0]
    commands = [
        line.split("#")[0].strip() for line in head.splitlines() if line.startswith("make ")
    ]
    assert commands == ["make demo", "make test"]


def test_cli_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "tools" / "gen_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == module.render(), "docs/cli.md is stale: run python tools/gen_cli_docs.py"


def test_ci_runs_make_test_with_postgres_dsn() -> None:
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in text and "MODELCHAIN_TEST_PG_DSN" in text


def test_every_docs_page_is_linked_from_the_readme() -> None:
    """A page nobody can find from the README does not help anyone."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages, "docs/ is empty"
    missing = [name for name in pages if f"docs/{name}" not in readme]
    assert not missing, f"not linked from README.md: {missing}"
