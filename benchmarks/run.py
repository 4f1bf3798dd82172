"""Run every benchmark with this interpreter and print one combined summary (`make bench`).

    .venv/bin/python benchmarks/run.py [--quick] [--only NAME ...] [other flags]

Each `bench_*.py` here runs as its own process (so one cannot warm the other's caches or
share its imports), with its output shown as it comes. Flags are passed on to every
benchmark whose `--help` lists them: `--quick` to all (bench_hash has no `--quick` of its
own, so there it becomes `--size-mib 256`), `--rebuild` to bench_ledger and bench_index,
`--size-mib N` to bench_hash, and so on. At the end the summary repeats each benchmark's
result table (the rows with PASS / MISS / SKIP / ERROR), its notes and its run time.

A MISS is a finding, not a failure: the exit status is 0 unless a benchmark crashed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "bench_hash",
    "bench_ledger",
    "bench_index",
    "bench_scan",
    "bench_sign",
    "bench_postgres",
    "bench_server",
)
QUICK_HASH_MIB = "256"
STATUS = re.compile(r"(?:^|\s)(PASS|MISS|SKIP|ERROR)(?:\s|$)")
RULE = re.compile(r"^[- ]*-{3}[- ]*$")
INFO = re.compile(r"\sinfo\s*$")  # a row reported for information, with no target
NOTE = re.compile(r"^(note|workaround|warning|error)\b|\bERROR\b", re.IGNORECASE)


@dataclass
class Outcome:
    name: str
    command: list[str]
    returncode: int = 0
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)


def help_text(script: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    return out.stdout + out.stderr


def flags_for(script: Path, quick: bool, extra: list[str]) -> list[str]:
    """The flags `script` accepts, out of --quick and the pass-through ones."""
    text = help_text(script)
    accepts = set(re.findall(r"--[A-Za-z0-9][-A-Za-z0-9]*", text))
    flags: list[str] = []
    if quick:
        if "--quick" in accepts:
            flags.append("--quick")
        elif "--size-mib" in accepts and "--size-mib" not in extra:
            flags += ["--size-mib", QUICK_HASH_MIB]
    i = 0
    while i < len(extra):
        arg = extra[i]
        name = arg.split("=", 1)[0]
        takes_value = "=" not in arg and i + 1 < len(extra) and not extra[i + 1].startswith("--")
        group = extra[i : i + 2] if takes_value else [arg]
        if name in accepts:
            flags += group
        i += len(group)
    return flags


def run(name: str, quick: bool, extra: list[str]) -> Outcome:
    script = HERE / f"{name}.py"
    command = [sys.executable, str(script), *flags_for(script, quick, extra)]
    outcome = Outcome(name, command)
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            outcome.lines.append(line.rstrip("\n"))
    outcome.returncode = proc.returncode
    outcome.seconds = time.perf_counter() - start
    return outcome


def summary_lines(outcome: Outcome) -> list[str]:
    """The result table's header and rows, then the notes, as the benchmark printed them."""
    out: list[str] = []
    lines = outcome.lines
    for i, line in enumerate(lines):
        if RULE.match(line) and i > 0:
            out += [lines[i - 1], line]
        elif STATUS.search(line) or INFO.search(line) or NOTE.search(line):
            out.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog="Other flags are passed to the benchmarks that accept them.",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run of each")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)"
    )
    args, extra = parser.parse_known_args()
    outcomes = [run(name, args.quick, extra) for name in (args.only or BENCHMARKS)]

    print("\n" + "=" * 100)
    print(f"SUMMARY{' (--quick)' if args.quick else ''}, Python {sys.version.split()[0]}")
    passed = missed = errors = 0
    for outcome in outcomes:
        state = "ok" if outcome.returncode == 0 else f"EXIT STATUS {outcome.returncode}"
        print(f"\n{outcome.name} ({outcome.seconds:,.1f} s, {state})")
        for line in summary_lines(outcome):
            print(f"  {line}")
            match = STATUS.search(line)
            if match and not line.startswith(f"{outcome.name}:"):
                passed += match.group(1) == "PASS"
                missed += match.group(1) == "MISS"
                errors += match.group(1) == "ERROR"
    crashed = [o.name for o in outcomes if o.returncode != 0]
    tail = f"; crashed: {', '.join(crashed)}" if crashed else ""
    print(f"\n{passed} PASS, {missed} MISS, {errors} ERROR{tail}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
