"""Write docs/allowlist.md from `modelchain.core.allowlist.ENTRIES`, so the published list is the
list the code enforces.

Run `python tools/gen_allowlist_docs.py` after changing the allowlist;
`tests/cli/test_allowlist_docs.py` fails when docs/allowlist.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from modelchain.core import allowlist  # noqa: E402

HEADER = """# The default import allowlist

Generated from `modelchain.core.allowlist.ENTRIES` by `tools/gen_allowlist_docs.py`; do not edit
by hand. The rule that uses it is described in
[scan.md](scan.md#the-allowlist-rule-modelchainallowlist).

Every global a model pickle may import is listed here with the reason restoring it cannot act
(no I/O, no process, no code, no allocation the file's size does not pay for) and its role:

* **value**: only referenced (for example a ufunc stored as an estimator's parameter); a pickle
  that calls it is refused;
* **class**: may be instantiated and given its state;
* **call**: a reconstruction function; the restricted unpickler checks its arguments.

The restricted unpickler also checks that the imported object is defined where its entry says
(`__module__` and `__qualname__`), so a re-export under another module's name does not match.
Anything else needs `--trust` (`trusted=`); names under the always-refused modules cannot be
trusted at all.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    parts = [HEADER]
    groups: dict[str, list[allowlist.Entry]] = {}
    for entry in allowlist.ENTRIES:
        groups.setdefault(entry.key.split(".")[0], []).append(entry)
    for top, entries in groups.items():
        parts.append(f"\n## `{top}`\n\n| name | role | why restoring it cannot act |\n")
        parts.append("|---|---|---|\n")
        for entry in entries:
            name = f"`{entry.key}`"
            if entry.aliases:
                name += " (also " + ", ".join(f"`{a}`" for a in entry.aliases) + ")"
            parts.append(f"| {name} | {entry.role} | {_cell(entry.reason)} |\n")
    parts.append("\n## Refused by default\n\n| name | why |\n|---|---|\n")
    for name, why in allowlist.NOT_ALLOWED:
        parts.append(f"| `{name}` | {_cell(why)} |\n")
    parts.append("\n## Always refused, even when trusted\n\nModule trees: ")
    parts.append(", ".join(f"`{p}`" for p in allowlist.DENIED_PREFIXES) + ".\n\nNames: ")
    parts.append(", ".join(f"`{n}`" for n in sorted(allowlist.DENIED)) + ".\n")
    return "".join(parts)


def main() -> None:
    (ROOT / "docs" / "allowlist.md").write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
