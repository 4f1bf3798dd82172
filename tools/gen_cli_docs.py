"""Write docs/cli.md from the command's own --help, so the reference never drifts.

Run `python tools/gen_cli_docs.py` after changing an option; `tests/cli/test_docs.py` fails
when docs/cli.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from modelchain.cli.commands import cli  # noqa: E402

HEADER = """# Command reference

Generated from `modelchain --help` by `tools/gen_cli_docs.py`; do not edit by hand.

Exit status everywhere: `0` verified or success, `1` verification failed (tampered,
unregistered, invalid ledger, unsafe file), `2` usage error or unreadable input.
"""


def _walk(command: click.Command, path: list[str], parent: click.Context | None):
    ctx = click.Context(command, info_name=" ".join(path), parent=None, terminal_width=100)
    yield path, command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, [*path, name], ctx)


def render() -> str:
    parts = [HEADER]
    for path, text in _walk(cli, ["modelchain"], None):
        title = " ".join(path)
        parts.append(f"\n## `{title}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main() -> None:
    (ROOT / "docs" / "cli.md").write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
