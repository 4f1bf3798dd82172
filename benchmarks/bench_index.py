"""Index benchmarks (issue 12): verify, proofs, appends and audits at 10k, 100k and 1M blocks.

Run with the project's interpreter (``make bench`` runs it through ``benchmarks/run.py``)::

    .venv/bin/python benchmarks/bench_index.py            # full: 10k, 100k and 1M blocks
    .venv/bin/python benchmarks/bench_index.py --quick    # smoke: 10k and 100k, fewer samples

Every figure is printed next to a reference measured in the same run (the same call on the
10k ledger, ``python -c pass``, the full-audit verify, a full audit) and the ratio between
the two. The SQLite ledgers are built once with ``Ledger.append_many`` in batches and cached
under ``bench-data/`` (git-ignored), keyed by the SQLite schema version and ``BENCH_FORMAT``;
each larger one grows from a copy of the next smaller one. They hold a tenth as many names as
blocks, each name with ten versions. Measurements that write work on throw-away copies. The
script always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import modelchain
from modelchain.fs.digest import PathDigest
from modelchain.log.store import sqlite as sqlite_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_server
from bench_ledger import (
    DEFAULT_DATA,
    BuildProgress,
    Row,
    Snapshot,
    check,
    fmt_rate,
    fmt_s,
    kilo,
    percentile,
    print_table,
    publish_build,
)

#: Bump when the cached ledgers' contents or layout change (the block recipe below, say).
BENCH_FORMAT = 1
CACHE_KEY = f"index-v{BENCH_FORMAT}-sqlite{sqlite_store.SCHEMA_VERSION}"

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
#: every CHUNK blocks hold NAMES_PER_CHUNK new names, each VERSIONS times, interleaved
CHUNK, NAMES_PER_CHUNK = 1_000, 100
VERSIONS = CHUNK // NAMES_PER_CHUNK
BUILD_BATCH = 1_000
APPEND_BATCH = 100
MODEL_NAME = "bench-model-1mb"

TARGET_VERIFY_S = 0.005  # the ledger part of verify at 1M
TARGET_VERIFY_GROWTH = 1.5  # ... and at most this times its 10k figure
TARGET_CLI_S = 0.2
TARGET_PROOF_BYTES = 4096
TARGET_APPEND_RATE = 5_000.0
TARGET_BATCH_RATE = 20_000.0
TARGET_FLAT = 0.8  # largest-size rate / 10k rate
TARGET_FULL_AUDIT_S = 30.0  # at 1M
TARGET_INCREMENTAL_S = 0.2  # 1,000 new blocks
TARGET_SERVICE_RATE = 5_000.0  # verifications/s on 2 workers
LARGE = 1_000_000  # the size the audit target is set at


def log(message: str) -> None:
    print(f"[bench_index] {message}", file=sys.stderr, flush=True)


# -- the blocks ----------------------------------------------------------------------------


def name_number(i: int) -> int:
    return (i // CHUNK) * NAMES_PER_CHUNK + i % NAMES_PER_CHUNK


def block_args(i: int) -> dict[str, Any]:
    """Block i of every ledger here: deterministic, so a ledger of any multiple of CHUNK
    blocks holds size/10 names with exactly ten versions each."""
    return {
        "name": f"model-{name_number(i):07d}",
        "model_hash": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
        "kind": "file",
        "size": 1_000_000 + i,
    }


def newest_block(k: int) -> int:
    """The index of name k's newest (tenth) block."""
    return (k // NAMES_PER_CHUNK) * CHUNK + k % NAMES_PER_CHUNK + (VERSIONS - 1) * NAMES_PER_CHUNK


def digest_of(i: int) -> PathDigest:
    """What hashing block i's model would give: the ledger part of verify starts from it."""
    args = block_args(i)
    return PathDigest(kind="file", sha256=args["model_hash"], size=args["size"], manifest=None)


def append_blocks(ledger: modelchain.Ledger, start: int, count: int, batch: int) -> None:
    for first in range(start, start + count, batch):
        stop = min(start + count, first + batch)
        ledger.append_many([ledger.prepare(**block_args(i)) for i in range(first, stop)])


# -- cached ledgers --------------------------------------------------------------------------


class Cache:
    """`<data>/index-v<format>-sqlite<schema>/sqlite-n<size>/`: `ledger/ledger.db`, its `home/`
    (operator key and trust state) and `meta.json` (build time, rate by size)."""

    def __init__(self, data_dir: Path, *, rebuild: bool) -> None:
        self.root = data_dir / CACHE_KEY
        self.root.mkdir(parents=True, exist_ok=True)
        self.rebuild = rebuild
        self._rebuilt: set[int] = set()
        self.built: list[Snapshot] = []

    def _load(self, size: int) -> Snapshot | None:
        d = self.root / f"sqlite-n{size}"
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if not meta.get("complete") or not (d / meta.get("ledger", "?")).is_file():
            return None
        return Snapshot(d, int(meta["size"]), meta)

    def get(self, size: int, smaller: list[int]) -> Snapshot:
        """The cached ledger of `size` blocks, grown from the largest of `smaller` (also
        cached, built first if need be) or from empty."""
        if self.rebuild and size not in self._rebuilt:
            shutil.rmtree(self.root / f"sqlite-n{size}", ignore_errors=True)
            self._rebuilt.add(size)
        snap = self._load(size)
        if snap is not None:
            return snap
        below = [s for s in smaller if s < size]
        base = self.get(below[-1], below[:-1]) if below else None
        return self._build(size, base)

    def _build(self, size: int, base: Snapshot | None) -> Snapshot:
        name = f"sqlite-n{size}"
        work = self.root / (name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        ledger_name = "ledger/ledger.db"
        if base is not None:
            copy_ledger(base, work, trust=True)
            start, before = base.size, float(base.meta["build_seconds"])
            curve = list(base.meta.get("curve", []))
        else:
            (work / "ledger").mkdir(parents=True)
            start, before, curve = 0, 0.0, []
        log(f"building the {size:,}-block ledger with append_many, from {start:,} blocks")
        ledger = modelchain.Ledger.open(work / ledger_name, home=work / "home", create=True)
        step = max(BUILD_BATCH, min(100_000, size // 10))
        progress = BuildProgress(size, start, step, "blocks", curve, log)
        t0 = time.perf_counter()
        try:
            for first in range(start, size, BUILD_BATCH):
                append_blocks(ledger, first, min(BUILD_BATCH, size - first), BUILD_BATCH)
                progress.done(min(size, first + BUILD_BATCH))
        finally:
            ledger.close()
        stage = time.perf_counter() - t0
        publish_build(
            work,
            self.root / name,
            {"size": size, "backend": "sqlite", "ledger": ledger_name},
            bench_format=BENCH_FORMAT,
            start=start,
            seconds=(before, stage),
            curve=curve,
        )
        snap = self._load(size)
        assert snap is not None
        self.built.append(snap)
        return snap


def copy_ledger(snap: Snapshot, dest: Path, *, trust: bool, home_name: str = "home") -> Path:
    """Copy `snap`'s ledger to `dest/ledger/` with a home holding its operator key; with
    `trust`, also the trust state, which then names the copy as where the log lives.

    Without the trust state the copy is a log its home meets for the first time: no
    `trust move` (a full audit of the copy) is needed before it takes appends, and the first
    operation accepts its checkpoint, as a fresh verifier's would."""
    shutil.copytree(snap.dir / "ledger", dest / "ledger")
    home = dest / home_name
    if trust:
        shutil.copytree(snap.home, home)
        from bench_ledger import adopt

        adopt(dest / snap.meta["ledger"], home)
    else:
        home.mkdir(parents=True)
        shutil.copy2(snap.home / "operator.key", home / "operator.key")
    return dest / snap.meta["ledger"]


@contextlib.contextmanager
def scratch_copy(snap: Snapshot, scratch: Path, home_name: str = "home") -> Iterator[Path]:
    """A throw-away copy of `snap`'s ledger (its home beside it, key only)."""
    d = Path(tempfile.mkdtemp(prefix="work-", dir=scratch))
    try:
        yield copy_ledger(snap, d, trust=False, home_name=home_name)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def env_home(home: Path) -> contextlib.AbstractContextManager[None]:
    return env_var("MODELCHAIN_HOME", str(home))


def open_copy(path: Path) -> modelchain.Ledger:
    return modelchain.Ledger.open(path, home=path.parent.parent / "home")


# -- measurements ----------------------------------------------------------------------------


def verify_times(
    snap: Snapshot, scratch: Path, samples: int, budget_s: float, seed: int = 12
) -> dict[str, Any]:
    """`ledger.verify(path, name=..., digest=...)` on the newest version of random names,
    with the digest precomputed: the ledger part of a verify. The ledger is read in place
    (nothing is appended), by a verifier whose home holds only the operator key."""
    rng = random.Random(seed)
    names = snap.size // VERSIONS
    picks = [rng.randrange(names) for _ in range(samples + 3)]
    read_through(snap.ledger)
    with scratch_copy_home(snap, scratch) as home, env_home(home):
        ledger = modelchain.Ledger.open(snap.ledger, home=home)
        try:
            times: list[float] = []
            wrong = 0
            started = time.perf_counter()
            for n, k in enumerate(picks):
                index = newest_block(k)
                name = block_args(index)["name"]
                t = time.perf_counter()
                v = ledger.verify(name, name=name, digest=digest_of(index))
                elapsed = time.perf_counter() - t
                if v.block.index != index or not v.is_newest:
                    wrong += 1
                if n >= 3:  # three warm-ups: the first accepts the checkpoint
                    times.append(elapsed)
                if times and time.perf_counter() - started > budget_s:
                    break
        finally:
            ledger.close()
    return {
        "p50": statistics.median(times),
        "p99": percentile(times, 99),
        "n": len(times),
        "wrong": wrong,
        "asked": samples,
    }


def read_through(ledger: Path) -> None:
    """Read the ledger's files once, so every size is timed with them in the page cache (as
    the hashing benchmark times its files): otherwise what the other benchmarks left in
    memory, not the ledger's size, decides how many of a verify's reads go to the disk."""
    for path in sorted(ledger.parent.glob(ledger.name + "*")):
        with path.open("rb") as f:
            while f.read(1 << 20):
                pass


@contextlib.contextmanager
def scratch_copy_home(snap: Snapshot, scratch: Path) -> Iterator[Path]:
    """A home with `snap`'s operator key and no trust state."""
    d = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    try:
        (d / "home").mkdir()
        shutil.copy2(snap.home / "operator.key", d / "home" / "operator.key")
        yield d / "home"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def proof_sizes(snap: Snapshot, scratch: Path, samples: int) -> dict[str, Any] | str:
    """Bytes a verifier is sent to prove a name's newest version (index proof, inclusion
    proof, checkpoint), from `ledger.name_proof`; a reason string when it does not exist."""
    rng = random.Random(34)
    names = snap.size // VERSIONS
    with scratch_copy_home(snap, scratch) as home, env_home(home):
        ledger = modelchain.Ledger.open(snap.ledger, home=home)
        try:
            note = ledger.checkpoint()
            prove = public_prover(ledger)
            if prove is None:
                return "Ledger.name_proof does not exist"
            sizes, refs = [], []
            for _ in range(samples):
                index = newest_block(rng.randrange(names))
                sizes.append(proof_bytes(prove(block_args(index)["name"])))
                refs.append(32 * len(ledger.inclusion_proof(index)) + len(note.encode()))
            absent = [proof_bytes(prove(f"nobody-{n}")) for n in range(max(1, samples // 10))]
        finally:
            ledger.close()
    return {
        "max": max(sizes),
        "median": statistics.median(sizes),
        "absent": max(absent),
        "ref": max(refs),
    }


def public_prover(ledger: modelchain.Ledger) -> Callable[[str], Any] | None:
    """What the service sends for a name (`name_proof`, the body of its `/verify` answer):
    the index proof, the newest block's inclusion proof and the checkpoint note."""
    name_proof = getattr(ledger, "name_proof", None)
    if name_proof is None:
        return None

    def prove(name: str) -> Any:
        note, _, state = name_proof(name)
        return argparse.Namespace(
            index_proof=state.index_proof or b"", inclusion=state.proof or [], note=note
        )

    return prove


def proof_bytes(proof: Any) -> int:
    """The bytes of a proof: its index proof, inclusion hashes and checkpoint note."""
    return len(proof.index_proof) + 32 * len(proof.inclusion) + len(proof.note.encode())


def make_model(scratch: Path) -> Path:
    """A 1 MiB model file (deterministic random bytes)."""
    path = scratch / "model-1mb.bin"
    if not path.exists():
        path.write_bytes(random.Random(56).randbytes(1 << 20))
    return path


def verify_help() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "modelchain", "verify", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


def cli_env(home: Path, pycache: Path) -> dict[str, str]:
    """The commands' environment: their home, and bytecode kept (under `pycache`) even
    where PYTHONDONTWRITEBYTECODE is set, so that, as for an installed package, the timed
    runs import compiled modules rather than compile the sources each time."""
    env = dict(os.environ, MODELCHAIN_HOME=str(home), PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cli_times(snap: Snapshot, scratch: Path, runs: int, full_runs: int) -> dict[str, Any]:
    """Wall time of `modelchain verify <1 MB model> --name N --ledger L` against `python -c
    pass` and the full-audit verify (`verify --full`, or `audit` where that is missing), runs
    interleaved so drift hits all alike. The model is registered on a copy of the ledger,
    with a hundred blocks after it."""
    model = make_model(scratch)
    python = sys.executable
    script = Path(python).parent / "modelchain"
    cli = [str(script)] if script.exists() else [python, "-m", "modelchain"]
    has_full = "--full" in verify_help()
    with scratch_copy(snap, scratch) as path:
        home = path.parent.parent / "home"
        ledger = open_copy(path)
        try:
            ledger.register(model, name=MODEL_NAME)
            append_blocks(ledger, len(ledger), APPEND_BATCH, APPEND_BATCH)
        finally:
            ledger.close()
        verify = [*cli, "verify", str(model), "--name", MODEL_NAME, "--ledger", str(path)]
        full = [*verify, "--full"] if has_full else [*cli, "audit", "--ledger", str(path)]
        commands = {"bare": [python, "-c", "pass"], "verify": verify, "full": full}
        env = cli_env(home, scratch.parent / "pycache")
        times: dict[str, list[float]] = {k: [] for k in commands}
        for run in range(runs + 1):
            for key, cmd in commands.items():
                if key == "full" and len(times["full"]) >= full_runs:
                    continue
                t = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=scratch)
                elapsed = time.perf_counter() - t
                if out.returncode != 0:
                    why = (out.stderr.strip() or out.stdout.strip()).splitlines()
                    raise RuntimeError(
                        f"{' '.join(cmd[len(cli) :][:2])}: exit {out.returncode}: "
                        f"{why[-1] if why else ''}"
                    )
                if run > 0 or key == "full":  # the first run of the quick ones warms up
                    times[key].append(elapsed)
    return {
        **{k: statistics.median(v) for k, v in times.items()},
        "runs": len(times["verify"]),
        "full_runs": len(times["full"]),
        "full_label": "verify --full" if has_full else "audit (verify --full is missing)",
    }


def append_rates(snap: Snapshot, scratch: Path, singles: int, batches: int) -> dict[str, float]:
    """Appends into a copy: `singles` with `ledger.append` (after 20 untimed), then `batches`
    batches of 100 with `append_many`; each timing includes `prepare` (what a caller pays).
    The writes the store is handed are recorded, and replayed into a second copy by the
    store alone (`store_replay`): what the same appends cost without the ledger's work."""
    with scratch_copy(snap, scratch) as path:
        ledger = open_copy(path)
        writes = record_writes(ledger.store)
        try:
            n = len(ledger)
            for i in range(n, n + 20):
                ledger.append(**block_args(i))
            n += 20
            marks = [len(writes)]
            t0 = time.perf_counter()
            for i in range(n, n + singles):
                ledger.append(**block_args(i))
            single = singles / (time.perf_counter() - t0)
            marks.append(len(writes))
            n += singles
            append_blocks(ledger, n, APPEND_BATCH, APPEND_BATCH)  # warm-up
            n += APPEND_BATCH
            marks.append(len(writes))
            t0 = time.perf_counter()
            append_blocks(ledger, n, batches * APPEND_BATCH, APPEND_BATCH)
            batch = batches * APPEND_BATCH / (time.perf_counter() - t0)
            marks.append(len(writes))
            n += batches * APPEND_BATCH
            pages, page_size = wal_pages_per_append(ledger, n, PAGE_SAMPLE)
            n += PAGE_SAMPLE
            body = ledger.store._conn.execute(  # type: ignore[attr-defined]
                "SELECT body FROM blocks WHERE idx = ?", (n - 1,)
            ).fetchone()[0]
        finally:
            ledger.close()
        floor = storage_floor(path, json.loads(body), n, singles, batches)
    replay = store_replay(snap, scratch, writes[: marks[-1]], marks)
    unindexed = [(items, nodes, {}, note) for items, nodes, _, note in writes[: marks[-1]]]
    bare = store_replay(snap, scratch, unindexed, marks)
    rows = sum(len(w[2]) for w in writes[marks[0] : marks[1]]) / singles
    return {
        "single": single,
        "batch": batch,
        "pages": pages,
        "page_size": page_size,
        "index_rows": rows,
        **floor,
        **replay,
        **{f"{k}_no_index": v for k, v in bare.items()},
    }


#: what one write transaction of an append handed the store: its `Writer.append_many` args
Write = tuple[
    Sequence[tuple[dict[str, Any], bytes]],
    Sequence[tuple[int, int, bytes]],
    Mapping[Any, bytes],
    str,
]


def record_writes(store: Any) -> list[Write]:
    """Record every `append_many` the ledger makes on `store`'s writers, in order (the
    store's own `writer`, wrapped on this instance only: the ledger runs unchanged). The
    arguments are kept as they are, not copied, so the timed appends pay next to nothing
    for it: the ledger builds them afresh for each transaction and leaves them alone after."""
    writes: list[Write] = []
    opened = store.writer

    @contextlib.contextmanager
    def writer() -> Iterator[Any]:
        with opened() as w:
            inner = w.append_many

            def append_many(items: Any, nodes: Any, checkpoint: str, index: Any = None) -> None:
                writes.append((items, nodes, index or {}, checkpoint))
                inner(items, nodes, checkpoint, index)

            w.append_many = append_many
            yield w

    store.writer = writer
    return writes


def store_replay(
    snap: Snapshot, scratch: Path, writes: list[Write], marks: list[int]
) -> dict[str, float]:
    """The recorded writes replayed in order into a fresh copy of `snap`'s ledger through
    the SQLite store alone (its connection, pragmas, checkpointer and statements; no
    index, tree, signature or block to compute): the same rows land on the same pages, so
    the rates are what the store allows these appends, the ledger's work aside. Timed as
    the appends were: the singles (`marks[0]:marks[1]`) and the batches (`marks[2]:`).
    Given the writes without their index node records, what the store would allow a
    ledger that did not keep the index's nodes up to date on every append."""
    with scratch_copy(snap, scratch) as path:
        store = sqlite_store.SQLiteStore(path)
        try:
            spans: list[float] = []
            t0, blocks = time.perf_counter(), 0
            for k, (items, nodes, index, checkpoint) in enumerate(writes):
                if k in (marks[0], marks[2]):
                    t0, blocks = time.perf_counter(), 0
                with store.writer() as w:
                    w.append_many(items, nodes, checkpoint, index)
                blocks += len(items)
                if k + 1 in (marks[1], marks[3]):
                    spans.append(blocks / (time.perf_counter() - t0))
        finally:
            store.close()
    return {"replay_single": spans[0], "replay_batch": spans[1]}


def storage_floor(
    path: Path, template: dict[str, Any], start: int, singles: int, batches: int
) -> dict[str, float]:
    """What SQLite alone allows, as the store configures it: the block row of an append and
    nothing else (no tree, index, checkpoint or signature), into the same table with its
    lookup indexes; `singles` transactions of one row, then `batches` of 100 rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {sqlite_store.WAL_PAGES}")

        def row(i: int) -> tuple[int, str]:
            block = {**template, "index": i, "name": f"floor-{i}", "version": 1}
            block["model_hash"] = hashlib.sha256(b"floor" + i.to_bytes(8, "big")).hexdigest()
            return i, json.dumps(block, separators=(",", ":"), sort_keys=True)

        insert = "INSERT INTO blocks (idx, body) VALUES (?, ?)"
        t0 = time.perf_counter()
        for i in range(start, start + singles):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row(i))
            conn.execute("COMMIT")
        single = singles / (time.perf_counter() - t0)
        start += singles
        t0 = time.perf_counter()
        for first in range(start, start + batches * APPEND_BATCH, APPEND_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, [row(i) for i in range(first, first + APPEND_BATCH)])
            conn.execute("COMMIT")
        batch = batches * APPEND_BATCH / (time.perf_counter() - t0)
    finally:
        conn.close()
    return {"floor_single": single, "floor_batch": batch}


#: appends whose WAL pages are counted (machine-independent: what the disk is asked to write)
PAGE_SAMPLE = 200


def wal_pages_per_append(ledger: modelchain.Ledger, start: int, count: int) -> tuple[float, int]:
    """Database pages one `ledger.append` writes to the WAL, averaged over `count` appends
    with the WAL emptied first and not folded back meanwhile, and the page size."""
    store: Any = ledger.store  # the SQLite store: its connection, its checkpointer
    conn = store._conn
    every = sqlite_store.CHECKPOINT_EVERY
    sqlite_store.CHECKPOINT_EVERY = 10**9  # nor its checkpointer thread meanwhile
    if store._checkpointer is not None:  # this copy is thrown away after
        store._checkpointer.stop()  # once a checkpoint it is running has ended
    conn.execute(f"PRAGMA wal_autocheckpoint = {10 * count * 100}")
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0, "the WAL could not be emptied before counting pages"
    try:
        for i in range(start, start + count):
            ledger.append(**block_args(i))
    finally:
        sqlite_store.CHECKPOINT_EVERY = every
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    return float(frames) / count, int(page_size)


def full_audit(ledger: modelchain.Ledger) -> Any:
    """`audit(full=True)` where the ledger has it; otherwise `audit()` (then always full)."""
    if "full" in inspect.signature(ledger.audit).parameters:
        return ledger.audit(full=True)
    return ledger.audit()


def audit_times(
    snap: Snapshot, scratch: Path, new_blocks: int = 1_000, *, one_process: bool = False
) -> dict[str, Any]:
    """On a copy: a full audit (its worker processes as the ledger chooses; with
    `one_process`, first also one with none), then `new_blocks` appends (batches of 100),
    then the timed `audit()` of a ledger opened afresh, as the next `modelchain audit`
    would run it."""
    from modelchain.checks import parallel

    with scratch_copy(snap, scratch) as path:
        home = path.parent.parent / "home"
        with env_home(home):
            ledger = open_copy(path)
            try:
                alone_s = None
                if one_process:
                    with env_var(parallel.WORKERS_ENV, "0"):
                        t0 = time.perf_counter()
                        full_audit(ledger)
                        alone_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                report = full_audit(ledger)
                full_s = time.perf_counter() - t0
                full_n = report.size
                append_blocks(ledger, len(ledger), new_blocks, APPEND_BATCH)
            finally:
                ledger.close()
            ledger = open_copy(path)
            try:
                t0 = time.perf_counter()
                report = ledger.audit()
                incremental_s = time.perf_counter() - t0
            finally:
                ledger.close()
    return {
        "full": full_s,
        "full_n": full_n,
        "alone": alone_s,
        "workers": parallel.worker_count() if full_n >= parallel.MIN_BLOCKS else 0,
        "incremental": incremental_s,
        "n": report.size,
    }


def service_rows(
    snap: Snapshot, scratch: Path, seconds: float, workers: int
) -> tuple[list[bench_server.Row], str]:
    """bench_server's SQLite configuration (health, registrations, verifications with their
    answers checked first), on a copy of `snap` that also holds its 1,000 models x 2."""
    wrk = shutil.which("wrk")
    args = argparse.Namespace(models=1000, seconds=seconds, clients=64)
    label = "index"
    with scratch_copy(snap, scratch, home_name=f"home-{label}-{workers}") as path:
        rows = bench_server.run_config(label, str(path), workers, args, wrk, path.parent.parent)
    return rows, "wrk (1 thread)" if wrk else "the Python asyncio client (no wrk)"


# -- the report ------------------------------------------------------------------------------


def timed(label: str, fn: Callable[[], Any]) -> Any:
    log(f"{label} ...")
    t0 = time.perf_counter()
    out = fn()
    log(f"{label}: done in {time.perf_counter() - t0:.1f} s")
    return out


def fmt_bytes(n: float) -> str:
    return f"{n:,.0f} B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, fewer samples")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="cache directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached ledgers")
    parser.add_argument("--sizes", help=argparse.SUPPRESS)  # e.g. 2000,5000 (multiples of 1000)
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = list(QUICK_SIZES if quick else SIZES)
    if args.sizes:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(s % CHUNK for s in sizes):
        parser.error(f"sizes must be multiples of {CHUNK}")
    small, top = sizes[0], sizes[-1]

    def against_small(
        size: int, value: float, ref: float, fmt: Callable[[float], str]
    ) -> tuple[str, str]:
        """The reference and ratio cells of a row: the same figure at the smallest size."""
        if size == small:
            return "", ""
        return f"@ {kilo(small)}: {fmt(ref)}", f"{value / ref:.2f}x {kilo(small)}"

    verify_samples, verify_budget = (100, 15.0) if quick else (200, 30.0)
    cli_runs, proof_samples = (5, 30) if quick else (9, 100)
    singles, batches = (500, 10) if quick else (2000, 40)
    seconds = 3.0 if quick else 10.0

    cache = Cache(args.data_dir, rebuild=args.rebuild)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=cache.root))
    rows: list[Row] = []
    notes: list[str] = []
    snaps: dict[int, Snapshot] = {}
    t_start = time.perf_counter()

    def snap(size: int) -> Snapshot:
        if size not in snaps:
            snaps[size] = timed(f"the {size:,}-block ledger", lambda: cache.get(size, sizes))
        return snaps[size]

    def build() -> None:
        for size in sizes:
            snap(size)
        for s in cache.built:
            curve = ", ".join(f"{kilo(n)}: {r:,.0f}/s" for n, r in s.meta["curve"])
            notes.append(
                f"built the {s.size:,}-block ledger with append_many (batches of "
                f"{BUILD_BATCH}) in {float(s.meta['build_seconds']):,.1f} s from empty; "
                f"blocks/s by size: {curve}"
            )

    def verify() -> None:
        ref: float | None = None
        for size in sizes:
            m = timed(
                f"ledger.verify x{verify_samples} at {size:,}",
                lambda size=size: verify_times(snap(size), scratch, verify_samples, verify_budget),
            )
            if m["wrong"]:
                notes.append(f"error: {m['wrong']} verifies at {kilo(size)} proved another block")
            if m["n"] < verify_samples:
                notes.append(
                    f"verify at {kilo(size)}: {m['n']} of {verify_samples} calls, within "
                    f"the {verify_budget:.0f} s budget"
                )
            if ref is None:
                ref = m["p50"]
            growth = m["p50"] / ref
            ok = m["p50"] <= TARGET_VERIFY_S and (size == small or growth <= TARGET_VERIFY_GROWTH)
            rows.append(
                Row(
                    f"ledger.verify @ {kilo(size)}, median ({m['n']} names)",
                    f"{fmt_s(m['p50'])} (p99 {fmt_s(m['p99'])})",
                    *against_small(size, m["p50"], ref, fmt_s),
                    f"<= {fmt_s(TARGET_VERIFY_S)}"
                    + ("" if size == small else f", <= {TARGET_VERIFY_GROWTH}x"),
                    check(ok and not m["wrong"]),
                )
            )

    def cli() -> None:
        for size in sizes:
            full_runs = 3 if size <= 10_000 else 2 if size <= 100_000 else 1
            m = timed(
                f"CLI verify x{cli_runs} at {size:,}",
                lambda size=size, full_runs=full_runs: cli_times(
                    snap(size), scratch, cli_runs, full_runs
                ),
            )
            rows.append(
                Row(
                    f"`modelchain verify` 1 MB model @ {kilo(size)} (median of {m['runs']})",
                    fmt_s(m["verify"]),
                    f"python -c pass {fmt_s(m['bare'])}; {m['full_label']} {fmt_s(m['full'])}",
                    f"full / this: {m['full'] / m['verify']:,.1f}x",
                    f"<= {fmt_s(TARGET_CLI_S)}",
                    check(m["verify"] <= TARGET_CLI_S),
                )
            )
            if os.environ.get("PYTHONDONTWRITEBYTECODE"):
                notes.append(
                    "PYTHONDONTWRITEBYTECODE is set here: the CLI runs keep bytecode in the "
                    "cache directory anyway, as an installed package has it"
                )
            if "missing" in m["full_label"]:
                notes.append("`verify --full` does not exist yet: its reference is `audit`")

    def proofs() -> None:
        for size in sizes:
            m = timed(
                f"proof sizes at {size:,}",
                lambda size=size: proof_sizes(snap(size), scratch, proof_samples),
            )
            if isinstance(m, str):
                rows.append(Row(f"proof bytes @ {kilo(size)}", m, status="SKIP"))
                continue
            rows.append(
                Row(
                    f"proof bytes @ {kilo(size)}, max of {proof_samples} (median)",
                    f"{fmt_bytes(m['max'])} ({fmt_bytes(m['median'])}); "
                    f"absent {fmt_bytes(m['absent'])}",
                    f"inclusion proof + checkpoint {fmt_bytes(m['ref'])}",
                    f"{m['max'] / m['ref']:.2f}x",
                    f"<= {fmt_bytes(TARGET_PROOF_BYTES)}",
                    check(max(m["max"], m["absent"]) <= TARGET_PROOF_BYTES),
                )
            )

    def appends() -> None:
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        for size in sizes:
            m = timed(
                f"appends at {size:,}",
                lambda size=size: append_rates(snap(size), scratch, singles, batches),
            )
            for key, what, target, count in (
                ("single", "ledger.append, one at a time", TARGET_APPEND_RATE, singles),
                (
                    "batch",
                    f"append_many, batches of {APPEND_BATCH}",
                    TARGET_BATCH_RATE,
                    batches * APPEND_BATCH,
                ),
            ):
                first.setdefault(key, m[key])
                last[key] = m[key]
                rows.append(
                    Row(
                        f"{what} @ {kilo(size)} ({count:,} blocks)",
                        fmt_rate(m[key]),
                        *against_small(size, m[key], first[key], fmt_rate),
                        f">= {fmt_rate(target)}",
                        check(m[key] >= target),
                    )
                )
            alone = "the store alone: those appends' writes"
            for key, what, ledger_key in (
                ("floor_single", "SQLite alone: the block row, one per transaction", "single"),
                (
                    "floor_batch",
                    f"SQLite alone: the block row, {APPEND_BATCH} per transaction",
                    "batch",
                ),
                ("replay_single", f"{alone}, one at a time", "single"),
                ("replay_batch", f"{alone}, batches of {APPEND_BATCH}", "batch"),
                ("replay_single_no_index", f"{alone}, one at a time, no index records", "single"),
                ("replay_batch_no_index", f"{alone}, batches, no index records", "batch"),
            ):
                first.setdefault(key, m[key])
                rows.append(
                    Row(
                        f"{what} @ {kilo(size)}",
                        fmt_rate(m[key]),
                        f"the ledger: {fmt_rate(m[ledger_key])}"
                        + ("" if size == small else f"; @ {kilo(small)}: {fmt_rate(first[key])}"),
                        f"ledger / this: {m[ledger_key] / m[key]:.2f}x"
                        + ("" if size == small else f"; {m[key] / first[key]:.2f}x {kilo(small)}"),
                        "(reference)",
                        "info",
                    )
                )
            first.setdefault("index_rows", m["index_rows"])
            rows.append(
                Row(
                    f"index node records written per ledger.append @ {kilo(size)}",
                    f"{m['index_rows']:.1f}",
                    *against_small(
                        size, m["index_rows"], first["index_rows"], lambda r: f"{r:.1f}"
                    ),
                    "(info)",
                    "info",
                )
            )
            first.setdefault("pages", m["pages"])
            rows.append(
                Row(
                    f"WAL pages written per ledger.append @ {kilo(size)}",
                    f"{m['pages']:.1f} ({m['pages'] * m['page_size'] / 1024:.0f} KiB)",
                    *against_small(size, m["pages"], first["pages"], lambda p: f"{p:.1f}"),
                    "(info)",
                    "info",
                )
            )
        if top != small:
            for key, what in (("single", "one at a time"), ("batch", "batches")):
                rows.append(
                    Row(
                        f"append rate {kilo(top)} / {kilo(small)}, {what} (flatness)",
                        f"{last[key] / first[key]:.2f}",
                        "",
                        "",
                        f">= {TARGET_FLAT:.2f}",
                        check(last[key] / first[key] >= TARGET_FLAT),
                    )
                )

    def audits() -> None:
        per_block: float | None = None
        for size in sizes:
            m = timed(
                f"audits at {size:,}",
                lambda size=size: audit_times(snap(size), scratch, one_process=size == top),
            )
            if per_block is None:
                per_block = m["full"] / m["full_n"]
            linear = per_block * m["full_n"]
            at_target = size >= LARGE
            workers = f", {m['workers']} worker processes" if m["workers"] else ""
            if m["alone"] is not None:
                rows.append(
                    Row(
                        f"full audit @ {kilo(size)} in one process (no workers)",
                        fmt_s(m["alone"]),
                        f"with workers {fmt_s(m['full'])}",
                        f"this / workers: {m['alone'] / m['full']:.2f}x",
                        "(reference)",
                        "info",
                    )
                )
            rows.append(
                Row(
                    f"full audit @ {kilo(size)} ({m['full_n']:,} blocks{workers})",
                    fmt_s(m["full"]),
                    ""
                    if size == small
                    else f"@ {kilo(small)} x {m['full_n'] / small:,.3g}: {fmt_s(linear)}",
                    "" if size == small else f"{m['full'] / linear:.2f}x linear",
                    f"<= {TARGET_FULL_AUDIT_S:.0f} s @ 1M",
                    check(m["full"] <= TARGET_FULL_AUDIT_S) if at_target else "info",
                )
            )
            rows.append(
                Row(
                    f"audit after 1,000 new blocks @ {kilo(size)}",
                    fmt_s(m["incremental"]),
                    f"full audit {fmt_s(m['full'])}",
                    f"full / this: {m['full'] / m['incremental']:,.1f}x",
                    f"<= {fmt_s(TARGET_INCREMENTAL_S)}",
                    check(m["incremental"] <= TARGET_INCREMENTAL_S),
                )
            )

    def service() -> None:
        found, generator = timed(
            f"the service on 2 workers at {top:,}",
            lambda: service_rows(snap(top), scratch, seconds, 2),
        )
        by_name = {r.name.split(": ", 1)[1]: r for r in found}
        health = by_name["health (reference)"].result.rate()
        for key, target in (("verifications/s", TARGET_SERVICE_RATE), ("registrations/s", 0.0)):
            r = by_name[key].result
            rows.append(
                Row(
                    f"service {key} @ {kilo(top)}, 2 workers ({seconds:g} s)",
                    f"{fmt_rate(r.rate())} (p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                    f"{r.errors} errors)",
                    f"/health {fmt_rate(health)}",
                    f"{r.rate() / health:.2f}x health" if health else "",
                    f">= {fmt_rate(target)}" if target else "(info)",
                    check(r.rate() >= target and r.errors == 0) if target else "info",
                )
            )
        notes.append(f"service load from {generator}, sharing the CPUs with the server")

    try:
        for section in (build, verify, cli, proofs, appends, audits, service):
            try:
                section()
            except Exception as exc:  # report it and go on with the other sections
                traceback.print_exc()
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:90]
                rows.append(Row(section.__name__, message, status="ERROR"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(
        f"modelchain {modelchain.__version__} index benchmarks"
        f"{' (--quick)' if quick else ''}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, cache {cache.root}"
    )
    print()
    print_table(rows)
    for note in dict.fromkeys(notes):  # each once, in order
        print(f"note: {note}")
    counts = {s: sum(r.status == s for r in rows) for s in ("PASS", "MISS", "SKIP", "ERROR")}
    print(
        "bench_index: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f" ({time.perf_counter() - t_start:,.0f} s including builds)"
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a benchmark reports; it exits 0 regardless
        traceback.print_exc()
        print(f"bench_index: ERROR {type(exc).__name__}: {exc}")
    sys.exit(0)
