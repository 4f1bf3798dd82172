#!/usr/bin/env python3
"""modelchain's scanner against picklescan, fickling and modelscan, on the test corpus.

    python benchmarks/bench_scan.py [--dir DIR]

Builds tests/corpus.py's corpus (benign scikit-learn models; malicious payloads placed before
the model, after joblib's array bytes, appended, compressed) into DIR (default: a temporary
directory), runs every tool that is importable on every file through its Python API, and
prints per tool: files flagged, malicious files missed, benign files falsely flagged, files
the tool could not scan (errors: counted as "not flagged", since a scan error is not a
verdict), and scan time per MB. Nothing is ever loaded; the payloads only touch a marker file,
and the script checks that the marker never appears. Benchmarks report; they always exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from corpus import TRUSTED, build_corpus  # noqa: E402

from modelchain.use.scan import scan_path  # noqa: E402

FLAGGED, CLEAN, ERROR = "flagged", "clean", "error"
Tool = Callable[[Path], str]


def ours(path: Path, trusted: tuple[str, ...] = ()) -> str:
    return CLEAN if scan_path(path, trusted=trusted).ok else FLAGGED


def picklescan_tool() -> Tool | None:
    try:
        from picklescan.scanner import scan_file_path
    except ImportError:
        return None

    def run(path: Path) -> str:
        result = scan_file_path(str(path))
        if result.infected_files or result.issues_count:
            return FLAGGED
        return ERROR if result.scan_err else CLEAN

    return run


def fickling_tool() -> Tool | None:
    try:
        import fickling
    except ImportError:
        return None

    def run(path: Path) -> str:
        return CLEAN if fickling.is_likely_safe(str(path)) else FLAGGED

    return run


def modelscan_tool() -> Tool | None:
    try:
        from modelscan.modelscan import ModelScan
    except ImportError:
        return None

    def run(path: Path) -> str:
        result = ModelScan().scan(str(path))
        if result["summary"]["total_issues"]:
            return FLAGGED
        scanned = result["summary"].get("scanned", {}).get("total_scanned", 0)
        return ERROR if result["errors"] or not scanned else CLEAN

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        marker = base / "MARKER"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files = build_corpus(base / "corpus", marker)
        total_mb = sum(f.path.stat().st_size for f in files) / 1e6
        bad = sum(f.malicious for f in files)
        print(f"corpus: {len(files)} files ({bad} malicious), {total_mb:.2f} MB\n")
        tools: dict[str, Tool | None] = {
            "modelchain": ours,
            "picklescan": picklescan_tool(),
            "fickling": fickling_tool(),
            "modelscan": modelscan_tool(),
        }
        header = (
            f"{'tool':<12} {'flagged':>8} {'missed':>7} {'false+':>7} {'errors':>7} {'s/MB':>8}"
            f"  {'vs ours s/MB':>12}  status"
        )
        print(header)
        print("-" * len(header))
        missed_by: dict[str, list[str]] = {}
        ours_per_mb = 0.0
        for name, tool in tools.items():
            if tool is None:
                print(f"{name:<12} not installed")
                continue
            flagged = missed = false_pos = errors = 0
            start = time.perf_counter()
            for f in files:
                try:
                    # some tools print their own warnings: keep the table readable
                    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                        warnings.simplefilter("ignore")
                        # ours refuses HistGradientBoosting's tree predictor unless it is
                        # trusted by name (as skops does): the user's --trust, given here
                        verdict = (
                            tool(f.path, TRUSTED.get(f.kind, ())) if tool is ours else tool(f.path)
                        )
                except Exception:
                    verdict = ERROR
                errors += verdict == ERROR
                flagged += verdict == FLAGGED
                if f.malicious and verdict != FLAGGED:
                    missed += 1
                    missed_by.setdefault(name, []).append(f.placement)
                if not f.malicious and verdict == FLAGGED:
                    false_pos += 1
            per_mb = (time.perf_counter() - start) / total_mb
            if name == "modelchain":  # the target: ours misses nothing, flags nothing benign
                ours_per_mb = per_mb
                status = "PASS" if missed == false_pos == errors == 0 else "MISS"
            else:
                status = "info"
            ratio = f"{per_mb / ours_per_mb:.2f}x" if ours_per_mb else "-"
            print(
                f"{name:<12} {flagged:>8} {missed:>7} {false_pos:>7} {errors:>7} {per_mb:>8.3f}"
                f"  {ratio:>12}  {status}"
            )
        print()
        for name, placements in missed_by.items():
            counts = {p: placements.count(p) for p in sorted(set(placements))}
            print(f"{name} missed by placement: {counts}")
        print("marker file present:", marker.exists())


if __name__ == "__main__":
    main()
