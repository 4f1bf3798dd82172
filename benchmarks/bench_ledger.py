"""Ledger benchmarks: append rate, inclusion proofs, audit, and CLI start-up.

Run with the project's interpreter (``make bench`` runs it through ``benchmarks/run.py``)::

    .venv/bin/python benchmarks/bench_ledger.py            # full: 10k and 100k blocks
    .venv/bin/python benchmarks/bench_ledger.py --quick    # smoke: 10k only, fewer samples

The machines this runs on are noisy, so every figure is printed next to a reference measured
in the same run (the seed's rewrite-the-whole-JSON-file append, a proof built from the leaves
with no node table, the seed's chain check, a bare ``python -c pass``) and the ratio between
the two. The ledgers are built with ``Ledger.append`` only (never with SQL) and cached under
``bench-data/`` (git-ignored), keyed by a format version, so reruns skip the build; a missing
or stale cache is rebuilt and the build time is reported. The script always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import modelchain
from modelchain.core import merkle
from modelchain.log.store import sqlite as sqlite_store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "bench-data"

#: Bump when the cached ledgers' contents or layout change (the block recipe below, say).
BENCH_FORMAT = 2
CACHE_KEY = f"ledger-v{BENCH_FORMAT}-sqlite{sqlite_store.SCHEMA_VERSION}"

SMALL, LARGE, JSON_SIZE = 10_000, 100_000, 1_000
NAMES = 1_000  # distinct model names; versions grow as the ledger does

TARGET_APPEND_RATE = 5_000.0  # appends/s
TARGET_FLAT = 0.8  # 100k-rate / 10k-rate at least this
TARGET_PROOF_S = 0.002
TARGET_PROOF_HASHES = 17
TARGET_AUDIT_S = 10.0
TARGET_STARTUP_S = 0.1
SLOW_BUILD_S = 180.0  # the brief's "building 100k by append takes too long"


def log(message: str) -> None:
    print(f"[bench_ledger] {message}", file=sys.stderr, flush=True)


# -- the blocks ----------------------------------------------------------------------------


def block_args(i: int) -> dict[str, Any]:
    """The i-th block every ledger in this benchmark gets: deterministic, 1000 model names."""
    return {
        "name": f"model-{i % NAMES:04d}",
        "model_hash": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
        "kind": "file",
        "size": 1_000_000 + i,
    }


def open_ledger(path: Path, home: Path, *, create: bool = False) -> modelchain.Ledger:
    return modelchain.Ledger.open(path, create=create, home=home)


def adopt(path: Path, home: Path) -> None:
    """A copied ledger (and home) takes appends only once its home says the log lives at the
    copy: `modelchain trust move`, as a user who moved a project would run it."""
    from modelchain.ledgers.locations import open_store
    from modelchain.log.home import Home
    from modelchain.use.trust import move

    store = open_store(path)
    try:
        origin = store.origin()
    finally:
        store.close()
    if origin is not None:
        move(Home(home), origin, str(path))


# -- cached ledgers --------------------------------------------------------------------------


@dataclass
class Snapshot:
    """A finished ledger of `size` blocks: `<dir>/ledger/ledger.<ext>` and its home `<dir>/home`
    (side by side: a home may not be inside the ledger's directory)."""

    dir: Path
    size: int
    meta: dict[str, Any]

    @property
    def ledger(self) -> Path:
        return self.dir / self.meta["ledger"]

    @property
    def home(self) -> Path:
        return self.dir / "home"


class BuildProgress:
    """Logs a build's rate every `step` blocks (and at the end) and records it in `curve`."""

    def __init__(
        self,
        size: int,
        start: int,
        step: int,
        unit: str,
        curve: list[Any],
        say: Callable[[str], None] = log,
    ) -> None:
        self.size, self.step, self.unit, self.curve, self.say = size, step, unit, curve, say
        self.t0 = self.t_chunk = time.perf_counter()
        self.i_chunk = start

    def done(self, done: int) -> None:
        if done % self.step and done != self.size:
            return
        now = time.perf_counter()
        rate = (done - self.i_chunk) / (now - self.t_chunk)
        self.curve.append([done, round(rate, 1)])
        left = (self.size - done) / rate if rate else 0.0
        self.say(
            f"  {done:>9,} blocks  {rate:8.0f} {self.unit}/s over the last "
            f"{done - self.i_chunk:,}  ({now - self.t0:6.0f} s so far, ~{left:.0f} s to go)"
        )
        self.t_chunk, self.i_chunk = now, done


def publish_build(
    work: Path,
    final: Path,
    what: dict[str, Any],
    *,
    bench_format: int,
    start: int,
    seconds: tuple[float, float],
    curve: list[Any],
) -> None:
    """Write a finished build's `meta.json` and move it to `final` (replacing an older one):
    a ledger only counts as cached once its meta says complete."""
    before, stage = seconds
    meta = {
        "complete": True,
        **what,
        "bench_format": bench_format,
        "modelchain": modelchain.__version__,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "from_size": start,
        "stage_seconds": round(stage, 3),
        "build_seconds": round(before + stage, 3),
        "curve": curve,
    }
    (work / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)


class Cache:
    def __init__(self, data_dir: Path, *, rebuild: bool, small: int = SMALL) -> None:
        self.root = data_dir / CACHE_KEY
        self.small = small
        self.root.mkdir(parents=True, exist_ok=True)
        self.rebuild = rebuild
        self._rebuilt: set[str] = set()

    def _load(self, name: str) -> Snapshot | None:
        d = self.root / name
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if not meta.get("complete") or not (d / meta.get("ledger", "?")).is_file():
            return None
        return Snapshot(d, int(meta["size"]), meta)

    def get(self, backend: str, size: int) -> Snapshot:
        """The cached ledger of `size` blocks, building it (from a smaller one) if missing."""
        name = f"{backend}-n{size}"
        if self.rebuild and name not in self._rebuilt:
            shutil.rmtree(self.root / name, ignore_errors=True)
            self._rebuilt.add(name)
        snap = self._load(name)
        if snap is not None:
            return snap
        # the large ledger grows from a copy of the small one (its build time includes it)
        base = self.get(backend, self.small) if backend == "sqlite" and size > self.small else None
        return self._build(backend, size, base)

    def _build(self, backend: str, size: int, base: Snapshot | None) -> Snapshot:
        name = f"{backend}-n{size}"
        work = self.root / (name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        ledger_name = "ledger/ledger.db" if backend == "sqlite" else "ledger/ledger.json"
        if base is not None:
            shutil.copytree(base.dir, work)
            (work / "meta.json").unlink()
            start, before = base.size, float(base.meta["build_seconds"])
            curve = list(base.meta.get("curve", []))
        else:
            (work / "ledger").mkdir(parents=True)
            start, before, curve = 0, 0.0, []
        log(f"building the {size:,}-block {backend} ledger by append, from {start:,} blocks")
        if base is not None:
            adopt(work / ledger_name, work / "home")
        ledger = open_ledger(work / ledger_name, work / "home", create=True)
        progress = BuildProgress(size, start, max(1, min(10_000, size // 10)), "appends", curve)
        t0 = time.perf_counter()
        for i in range(start, size):
            ledger.append(**block_args(i))
            progress.done(i + 1)
        stage = time.perf_counter() - t0
        ledger.close()
        publish_build(
            work,
            self.root / name,
            {"size": size, "backend": backend, "ledger": ledger_name},
            bench_format=BENCH_FORMAT,
            start=start,
            seconds=(before, stage),
            curve=curve,
        )
        snap = self._load(name)
        assert snap is not None
        snap.meta["built_now"] = True
        return snap


@contextlib.contextmanager
def working_copy(snap: Snapshot, scratch: Path) -> Iterator[Snapshot]:
    """A throw-away copy of a snapshot (ledger and home), so measurements never touch the cache."""
    d = Path(tempfile.mkdtemp(prefix="work-", dir=scratch))
    try:
        shutil.copytree(snap.dir, d / "s")
        copy = Snapshot(d / "s", snap.size, dict(snap.meta))
        adopt(copy.ledger, copy.home)
        yield copy
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- the seed's append (the reference) -------------------------------------------------------


def seed_block(index: int, model_hash: str, previous: str) -> dict[str, Any]:
    timestamp = time.time()
    text = str(index) + str(timestamp) + model_hash + previous
    return {
        "index": index,
        "timestamp": timestamp,
        "model_hash": model_hash,
        "previous_hash": previous,
        "current_hash": hashlib.sha256(text.encode()).hexdigest(),
    }


def seed_chain(size: int) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    previous = "0" * 64
    for i in range(size):
        block = seed_block(i, block_args(i)["model_hash"], previous)
        chain.append(block)
        previous = block["current_hash"]
    return chain


def seed_append_rate(size: int, appends: int, scratch: Path) -> tuple[float, Path]:
    """The seed's append: add a block to the in-memory list, json.dump the whole list."""
    chain = seed_chain(size)
    path = Path(tempfile.mkdtemp(prefix="seed-", dir=scratch)) / "blockchain_data.json"
    with open(path, "w") as f:
        json.dump(chain, f, indent=4)
    t0 = time.perf_counter()
    for i in range(size, size + appends):
        chain.append(seed_block(i, block_args(i)["model_hash"], chain[-1]["current_hash"]))
        with open(path, "w") as f:
            json.dump(chain, f, indent=4)
    return appends / (time.perf_counter() - t0), path


def seed_validate_seconds(path: Path) -> float:
    """The seed's check: load the file, recompute every block's hash and link."""
    t0 = time.perf_counter()
    with open(path) as f:
        chain = json.load(f)
    previous = "0" * 64
    for b in chain:
        text = str(b["index"]) + str(b["timestamp"]) + b["model_hash"] + b["previous_hash"]
        if (
            b["previous_hash"] != previous
            or hashlib.sha256(text.encode()).hexdigest() != (b["current_hash"])
        ):
            raise AssertionError(f"seed reference chain broken at {b['index']}")
        previous = b["current_hash"]
    return time.perf_counter() - t0


# -- measurements ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def append_window(
    snap: Snapshot, scratch: Path, appends: int, warmup: int = 20
) -> dict[str, float]:
    """Append `appends` blocks to a copy of `snap` (after `warmup` untimed ones)."""
    with working_copy(snap, scratch) as work:
        ledger = open_ledger(work.ledger, work.home)
        try:
            n = len(ledger)
            for i in range(n, n + warmup):
                ledger.append(**block_args(i))
            n += warmup
            times = []
            t0 = time.perf_counter()
            for i in range(n, n + appends):
                t = time.perf_counter()
                ledger.append(**block_args(i))
                times.append(time.perf_counter() - t)
            total = time.perf_counter() - t0
        finally:
            ledger.close()
    return {
        "rate": appends / total,
        "p50": statistics.median(times),
        "p99": percentile(times, 99),
    }


def proofs(snap: Snapshot, scratch: Path, samples: int, reference_samples: int) -> dict[str, Any]:
    with working_copy_home(snap, scratch) as home:
        ledger = open_ledger(snap.ledger, home)
        try:
            size = ledger.signed_size()
            root = ledger.root_hash()
            rng = random.Random(20240601)
            indices = [rng.randrange(size) for _ in range(samples)]
            ledger.inclusion_proof(indices[0])  # warm the connection and the key
            times, lengths, made = [], [], []
            for index in indices:
                t = time.perf_counter()
                proof = ledger.inclusion_proof(index)
                times.append(time.perf_counter() - t)
                lengths.append(len(proof))
                made.append((index, proof))
            # every proof is checked against the signed root, from the stored leaf bytes
            for index, proof in made:
                stored = next(ledger.store.blocks(index, index + 1))
                merkle.verify_inclusion(index, size, merkle.leaf_hash(stored.data), proof, root)
            leaves = [merkle.leaf_hash(s.data) for s in ledger.store.blocks()]
        finally:
            ledger.close()
    ref = []
    for index in indices[:reference_samples]:
        t = time.perf_counter()
        proof = merkle.inclusion_proof(index, leaves)
        ref.append(time.perf_counter() - t)
        merkle.verify_inclusion(index, size, leaves[index], proof, root)
    return {
        "size": size,
        "p50": statistics.median(times),
        "p99": percentile(times, 99),
        "max_hashes": max(lengths),
        "verified": len(made),
        "ref_p50": statistics.median(ref),
    }


@contextlib.contextmanager
def working_copy_home(snap: Snapshot, scratch: Path) -> Iterator[Path]:
    """A temporary MODELCHAIN_HOME holding a copy of the snapshot's key and trust state."""
    d = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    try:
        shutil.copytree(snap.home, d / "home")
        yield d / "home"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def audit_seconds(snap: Snapshot, scratch: Path) -> tuple[float, int]:
    with working_copy_home(snap, scratch) as home:
        old = os.environ.get("MODELCHAIN_HOME")
        os.environ["MODELCHAIN_HOME"] = str(home)
        try:
            ledger = open_ledger(snap.ledger, home)
            try:
                t0 = time.perf_counter()
                report = ledger.audit()
                elapsed = time.perf_counter() - t0
            finally:
                ledger.close()
        finally:
            if old is None:
                os.environ.pop("MODELCHAIN_HOME", None)
            else:
                os.environ["MODELCHAIN_HOME"] = old
    return elapsed, report.size


def startup_times(runs: int, scratch: Path) -> dict[str, float]:
    """Median wall time of each command; runs are interleaved so drift hits all alike."""
    python = sys.executable
    script = Path(python).parent / "modelchain"
    commands: dict[str, list[str]] = {
        "bare": [python, "-c", "pass"],
        "module": [python, "-m", "modelchain", "--version"],
    }
    if script.exists():
        commands["script"] = [str(script), "--version"]
    env = dict(os.environ, MODELCHAIN_HOME=str(scratch / "startup-home"))
    times: dict[str, list[float]] = {k: [] for k in commands}
    for run in range(runs + 2):
        for key, cmd in commands.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=scratch)
            if run >= 2:  # the first two warm the page cache
                times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# -- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    value: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    status: str = "info"


def check(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(rows: list[Row]) -> None:
    head = Row("metric", "measured", "reference (same run)", "ratio", "target", "status")
    table = [head, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in Row.__dataclass_fields__]
    for n, r in enumerate(table):
        cells = [
            getattr(r, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def kilo(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def fmt_rate(r: float) -> str:
    return f"{r:,.0f}/s" if r >= 100 else f"{r:,.1f}/s"


def fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} µs"


def timed(label: str, fn: Callable[[], Any]) -> Any:
    log(f"{label} ...")
    t0 = time.perf_counter()
    out = fn()
    log(f"{label}: done in {time.perf_counter() - t0:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10k blocks only, fewer samples")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="cache directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached ledgers")
    parser.add_argument("--window", type=int, help="appends per timed window (default 2000)")
    parser.add_argument("--small", type=int, default=SMALL, help=argparse.SUPPRESS)
    parser.add_argument("--large", type=int, default=LARGE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    small, large = args.small, args.large

    quick = args.quick
    sizes = [small] if quick else [small, large]
    window = args.window or (500 if quick else 2000)
    seed_window = {small: 20 if quick else 50, large: 10}
    proof_samples, proof_ref = (200, 3) if quick else (1000, 5)
    startup_runs = 10 if quick else 20

    cache = Cache(args.data_dir, rebuild=args.rebuild, small=small)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=cache.root))
    rows: list[Row] = []
    notes: list[str] = []
    rates: dict[int, float] = {}
    p50s: dict[int, float] = {}
    seed_files: dict[int, Path] = {}
    t_start = time.perf_counter()

    def append_rates() -> None:
        """Appends into SQLite, with the seed's whole-file rewrite as the reference."""
        for size in sizes:
            snap = cache.get("sqlite", size)
            if snap.meta.get("built_now"):
                built = float(snap.meta["build_seconds"])
                slow = " -- longer than 3 min" if built > SLOW_BUILD_S else ""
                curve = ", ".join(f"{kilo(n)}: {r:,.0f}/s" for n, r in snap.meta["curve"])
                notes.append(
                    f"built the {size:,}-block SQLite ledger by append in {built:,.0f} s "
                    f"({size / built:,.0f} appends/s on average){slow}; rate by size: {curve}"
                )
            m = timed(
                f"{window} appends at {size:,} blocks",
                lambda snap=snap: append_window(snap, scratch, window),
            )
            ref, seed_files[size] = timed(
                f"seed reference, {seed_window[size]} appends at {size:,}",
                lambda size=size: seed_append_rate(size, seed_window[size], scratch),
            )
            rates[size] = m["rate"]
            p50s[size] = m["p50"]
            rows.append(
                Row(
                    f"SQLite append rate @ {kilo(size)} blocks ({window} appends)",
                    f"{fmt_rate(m['rate'])} (p50 {fmt_s(m['p50'])}, p99 {fmt_s(m['p99'])})",
                    f"seed JSON rewrite {fmt_rate(ref)} ({seed_window[size]} appends)",
                    f"{m['rate'] / ref:,.1f}x seed",
                    f">= {TARGET_APPEND_RATE:,.0f}/s",
                    check(m["rate"] >= TARGET_APPEND_RATE),
                )
            )
        if large in rates:
            flat = rates[large] / rates[small]
            rows.append(
                Row(
                    f"append rate {kilo(large)} / {kilo(small)} (flatness)",
                    f"{flat:.2f}",
                    f"p50 latency {kilo(small)} / {kilo(large)}: {p50s[small] / p50s[large]:.2f}",
                    "",
                    f">= {TARGET_FLAT:.2f}",
                    check(flat >= TARGET_FLAT),
                )
            )

    def json_backend() -> None:
        """modelchain's own JSON backend, for information."""
        jsnap = cache.get("json", JSON_SIZE)
        if jsnap.meta.get("built_now"):
            notes.append(
                f"built the {JSON_SIZE:,}-block JSON-backend ledger by append in "
                f"{float(jsnap.meta['build_seconds']):,.0f} s"
            )
        jw = 10 if quick else 30
        jm = timed(
            f"JSON backend, {jw} appends at {JSON_SIZE:,}",
            lambda: append_window(jsnap, scratch, jw, warmup=2),
        )
        jref, _ = seed_append_rate(JSON_SIZE, 50, scratch)
        rows.append(
            Row(
                f"JSON-backend append rate @ {kilo(JSON_SIZE)} blocks ({jw} appends)",
                f"{fmt_rate(jm['rate'])} (p50 {fmt_s(jm['p50'])})",
                f"seed JSON rewrite {fmt_rate(jref)}",
                f"{jm['rate'] / jref:,.2f}x seed",
                "(info)",
            )
        )

    top = sizes[-1]
    label = kilo(top)

    def inclusion_proofs() -> None:
        snap = cache.get("sqlite", top)
        p = timed(
            f"{proof_samples} inclusion proofs at {top:,}",
            lambda: proofs(snap, scratch, proof_samples, proof_ref),
        )
        rows.append(
            Row(
                f"inclusion proof @ {label}, median ({proof_samples} random)",
                fmt_s(p["p50"]),
                f"from leaves, no node table {fmt_s(p['ref_p50'])}",
                f"{p['ref_p50'] / p['p50']:,.0f}x faster",
                f"<= {fmt_s(TARGET_PROOF_S)}",
                check(p["p50"] <= TARGET_PROOF_S),
            )
        )
        rows.append(
            Row(
                f"inclusion proof @ {label}, p99",
                fmt_s(p["p99"]),
                "",
                "",
                f"<= {fmt_s(TARGET_PROOF_S)}",
                check(p["p99"] <= TARGET_PROOF_S),
            )
        )
        rows.append(
            Row(
                f"inclusion proof @ {label}, size (max)",
                f"{p['max_hashes']} hashes",
                f"ceil(log2 n) = {(p['size'] - 1).bit_length()}",
                "",
                f"<= {TARGET_PROOF_HASHES} hashes",
                check(p["max_hashes"] <= TARGET_PROOF_HASHES),
            )
        )
        rows.append(
            Row(
                f"inclusion proofs verified @ {label}",
                f"{p['verified']}/{proof_samples} against root_hash()",
                "",
                "",
                "all",
                check(p["verified"] == proof_samples),
            )
        )

    def audit() -> None:
        snap = cache.get("sqlite", top)
        audit_s, audit_n = timed(f"audit at {top:,}", lambda: audit_seconds(snap, scratch))
        seed_file = seed_files.get(top) or seed_append_rate(top, 1, scratch)[1]
        seed_s = seed_validate_seconds(seed_file)
        rows.append(
            Row(
                f"full audit @ {label} ({audit_n:,} blocks)",
                fmt_s(audit_s),
                f"seed chain check {fmt_s(seed_s)}",
                f"{audit_s / seed_s:,.1f}x seed",
                f"<= {TARGET_AUDIT_S:.0f} s",
                check(audit_s <= TARGET_AUDIT_S),
            )
        )

    def startup() -> None:
        st = timed(
            f"start-up, {startup_runs} runs each", lambda: startup_times(startup_runs, scratch)
        )
        for key, what in (("module", "python -m modelchain"), ("script", "modelchain")):
            if key not in st:
                notes.append(f"no console script next to {sys.executable}")
                continue
            extra = st[key] - st["bare"]
            rows.append(
                Row(
                    f"`{what} --version` minus `python -c pass`",
                    fmt_s(extra),
                    f"python -c pass {fmt_s(st['bare'])}",
                    f"{st[key] / st['bare']:,.1f}x bare",
                    f"<= {fmt_s(TARGET_STARTUP_S)}",
                    check(extra <= TARGET_STARTUP_S),
                )
            )

    try:
        for section in (append_rates, json_backend, inclusion_proofs, audit, startup):
            try:
                section()
            except Exception as exc:  # report it and go on with the other sections
                traceback.print_exc()
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:90]
                rows.append(Row(section.__name__.replace("_", " "), message, status="ERROR"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(
        f"modelchain {modelchain.__version__} ledger benchmarks"
        f"{' (--quick)' if quick else ''}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, cache {cache.root}"
    )
    print()
    print_table(rows)
    for note in notes:
        print(f"note: {note}")
    passed = sum(r.status == "PASS" for r in rows)
    missed = sum(r.status == "MISS" for r in rows)
    errors = sum(r.status == "ERROR" for r in rows)
    print(
        f"bench_ledger: {passed} PASS, {missed} MISS, {errors} ERROR "
        f"({time.perf_counter() - t_start:,.0f} s including builds)"
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a benchmark reports; it exits 0 regardless
        traceback.print_exc()
        print(f"bench_ledger: ERROR {type(exc).__name__}: {exc}")
    sys.exit(0)
