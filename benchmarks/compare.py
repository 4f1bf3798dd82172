"""Run the benchmarks of an earlier commit and of this tree in one run, taking turns, and
print each figure before and after (`make bench-compare BEFORE=<rev>`).

    .venv/bin/python benchmarks/compare.py --before REV [--quick] [--only NAME ...]

The earlier commit is checked out once as a detached worktree under
`bench-data/before-<rev>/` (reused, so its cached ledgers are built once) and run with the same
interpreter, its own `src/` first on `PYTHONPATH`. Each benchmark runs before, then after, then
the next: both sides see the same machine load, as far as a shared machine allows. A change is
`after / before` for rates and `before / after` for times, so above 1.00 is better; rows that
got more than 5% worse are marked `WORSE`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import BENCHMARKS, Outcome, summary_lines  # noqa: E402

NUMBER = re.compile(r"(-?[\d,]*\.?\d+)\s*(µs|us|ms|s|/s|MiB/s|GiB/s|MB/s|KiB|MiB|B|x|×)?")
CELL_SPLIT = re.compile(r"\s{2,}")
#: a figure in these units is better when larger
RATES = ("/s", "MiB/s", "GiB/s", "MB/s", "x", "×")
TIME_SCALE = {"µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def worktree(rev: str) -> Path:
    """A detached checkout of `rev`, made once."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=10", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = ROOT / "bench-data" / f"before-{commit}"
    if not (path / "benchmarks" / "run.py").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


def run_one(tree: Path, name: str, flags: list[str]) -> Outcome:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, str(tree / "benchmarks" / "run.py"), "--only", name, *flags]
    print(f"\n=== {name} at {tree.name if tree != ROOT else 'this tree'}", flush=True)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=tree)
    out = Outcome(name, command, proc.returncode)
    # the inner run.py prints the benchmark's output, then its own summary: keep the output
    lines = proc.stdout.splitlines()
    cut = next((i for i, line in enumerate(lines) if line.startswith("=" * 100)), len(lines))
    out.lines = lines[:cut]
    sys.stdout.write("\n".join(out.lines[-40:]) + "\n")
    return out


def rows(outcome: Outcome) -> dict[str, str]:
    """Each result row's metric and its measured figure, from the benchmark's table."""
    found: dict[str, str] = {}
    for line in summary_lines(outcome):
        cells = CELL_SPLIT.split(line.strip())
        header = cells[0] in ("metric", "case") or set(cells[0]) <= set("- ")
        if len(cells) >= 2 and not line.startswith(" ") and not header:
            found.setdefault(cells[0], cells[1])
    return found


def value(text: str) -> tuple[float, bool] | None:
    """(a comparable number, larger-is-better) of a figure such as `1,319/s` or `498 ms`."""
    match = NUMBER.search(text)
    if not match:
        return None
    number = float(match.group(1).replace(",", ""))
    unit = match.group(2) or ""
    if unit in TIME_SCALE:
        return number * TIME_SCALE[unit], False
    return number, unit in RATES or not unit


def change(before: str, after: str) -> str:
    a, b = value(before), value(after)
    if a is None or b is None or a[0] == 0 or b[0] == 0:
        return ""
    ratio = b[0] / a[0] if a[1] else a[0] / b[0]
    mark = "  WORSE" if ratio < 0.95 else ""
    return f"{ratio:.2f}{mark}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", required=True, help="the earlier commit (a git revision)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run of each")
    parser.add_argument("--only", action="append", choices=BENCHMARKS)
    args, extra = parser.parse_known_args()
    old = worktree(args.before)
    flags = (["--quick"] if args.quick else []) + extra
    table: list[tuple[str, str, str, str]] = []
    for name in args.only or BENCHMARKS:
        before = rows(run_one(old, name, flags))
        after = rows(run_one(ROOT, name, flags))
        for metric, figure in after.items():
            if metric in before:
                table.append(
                    (f"{name}: {metric}", before[metric], figure, change(before[metric], figure))
                )
            else:
                table.append((f"{name}: {metric}", "(new)", figure, ""))
    print("\n" + "=" * 100)
    print(f"BEFORE ({args.before}) AND AFTER (this tree), change > 1.00 is better")
    widths = [
        max(len(r[i]) for r in [("row", "before", "after", "change"), *table]) for i in range(4)
    ]
    for r in [("row", "before", "after", "change"), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
