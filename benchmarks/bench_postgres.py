"""PostgreSQL backend benchmarks: appends one at a time, in batches, and from several processes.

Run with the project's interpreter against a PostgreSQL server you may write to::

    MODELCHAIN_TEST_PG_DSN=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/bench_postgres.py [--quick] [--dsn URL]

Every run works in a fresh schema (``bench_<random>``) that is dropped at the end, with a
throw-away MODELCHAIN_HOME. With no DSN (neither ``--dsn`` nor ``MODELCHAIN_TEST_PG_DSN``)
it prints one SKIP row and exits 0. Figures are printed next to a reference measured in the
same run (the same appends into an SQLite ledger, or one-at-a-time appends on PostgreSQL) and
the ratio between the two. The script always exits 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import modelchain
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.index import Index, extension_line
from modelchain.core.note import Checkpoint, sign_checkpoint
from modelchain.ledgers import Ledger
from modelchain.log.block import Block, index_entry, seed_hash
from modelchain.log.home import Home

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ledger import Row, block_args, fmt_rate, print_table

DSN_VAR = "MODELCHAIN_TEST_PG_DSN"
BATCH = 100
TARGET_BATCH_RATE = 1_000.0  # registrations/s, the target for the service on PG


def log(message: str) -> None:
    print(f"[bench_postgres] {message}", file=sys.stderr, flush=True)


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms"


# -- measurements ----------------------------------------------------------------------------


def single_appends(location: str, home: Path, count: int) -> dict[str, float]:
    """`Ledger.append` one block at a time (one transaction and one signature each)."""
    with Ledger.open(location, home=home, create=True) as ledger:
        n = len(ledger)
        for i in range(n, n + 20):  # warm-up: connection, key, first checkpoint
            ledger.append(**block_args(i))
        n += 20
        times = []
        t0 = time.perf_counter()
        for i in range(n, n + count):
            t = time.perf_counter()
            ledger.append(**block_args(i))
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
    times.sort()
    return {
        "rate": count / total,
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
    }


def ledger_batches(location: str, home: Path, batches: int) -> float | None:
    """`Ledger.append_many` with batches of BATCH entries; None if this Ledger has none."""
    from modelchain.log import block as ledger_mod

    entry_type = getattr(ledger_mod, "Registration", None)
    if entry_type is None or not hasattr(Ledger, "append_many"):
        return None
    with Ledger.open(location, home=home, create=True) as ledger:
        n = len(ledger)
        ledger.append_many([entry_type(**block_args(n + i)) for i in range(BATCH)])  # warm-up
        n += BATCH
        t0 = time.perf_counter()
        for b in range(batches):
            start = n + b * BATCH
            ledger.append_many([entry_type(**block_args(start + i)) for i in range(BATCH)])
        return batches * BATCH / (time.perf_counter() - t0)


def store_batches(location: str, home: Path, batches: int) -> float:
    """The store alone: `Writer.append_many` of BATCH ready-made, signed blocks and their
    index nodes per transaction (what the database costs, without the ledger's checks)."""
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()
        store = ledger.store
        origin = store.origin()
        assert origin is not None
        signer = ledger.home.operator_signer().with_name(origin)
        index = Index()  # the ledger is new: its whole index is here
        elapsed = 0.0
        for _ in range(batches):
            with store.writer() as w:
                t = time.perf_counter()
                tip = w.tip()
                frontier = merkle.Frontier(tip.size, list(tip.peaks))
                previous = "0" * 64
                if tip.last_data is not None:
                    previous = json.loads(tip.last_data)["current_hash"]
                items, nodes, entries = [], [], []
                for i in range(tip.size, tip.size + BATCH):
                    args, stamp = block_args(i), time.time()
                    block = Block(
                        index=i,
                        timestamp=stamp,
                        model_hash=args["model_hash"],
                        previous_hash=previous,
                        current_hash=seed_hash(i, stamp, args["model_hash"], previous),
                        name=f"store-{i}",
                        version=1,
                        kind="file",
                        size=args["size"],
                    )
                    data = canonical_json(block.to_dict())
                    nodes.extend(frontier.append(merkle.leaf_hash(data)))
                    items.append((block.to_dict(), data))
                    entry = index_entry(block, data)
                    entries.append((entry.key, entry.value()))
                    previous = block.current_hash
                written = index.put_many(entries)
                line = extension_line(index.root())
                cp = Checkpoint(origin, frontier.size, frontier.root(), (line,))
                w.append_many(items, nodes, sign_checkpoint(cp, signer), written)
            elapsed += time.perf_counter() - t
        ledger.audit()  # what was written is a valid ledger
    return batches * BATCH / elapsed


def _worker(args: tuple[str, str, int, int]) -> None:
    location, home, worker, count = args
    with Ledger.open(location, home=Home(home)) as ledger:
        for i in range(count):
            ledger.append(**block_args(1_000_000 * (worker + 1) + i))


def concurrent_appends(location: str, home: Path, workers: int, each: int) -> float:
    """`workers` processes appending at once, one block per transaction: aggregate rate."""
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.map(_worker, [(location, str(home), w, 5) for w in range(workers)])  # warm-up
        t0 = time.perf_counter()
        pool.map(_worker, [(location, str(home), w, each) for w in range(workers)])
        elapsed = time.perf_counter() - t0
    with Ledger.open(location, home=home) as ledger:
        size = ledger.audit().size
    if size != workers * (each + 5):
        raise AssertionError(f"expected {workers * (each + 5)} blocks, found {size}")
    return workers * each / elapsed


# -- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer appends and batches")
    parser.add_argument("--dsn", default=os.environ.get(DSN_VAR, ""), help=f"default ${DSN_VAR}")
    args = parser.parse_args(argv)
    quick = args.quick
    singles, batches = (300, 10) if quick else (2_000, 50)
    workers, each = 4, (50 if quick else 250)

    print()
    print(
        f"modelchain {modelchain.__version__} PostgreSQL benchmarks"
        f"{' (--quick)' if quick else ''}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print()
    if not args.dsn:
        print_table([Row("PostgreSQL benchmarks", "not run", status="SKIP")])
        print(f"note: no server given: set {DSN_VAR} or pass --dsn postgresql://...")
        print("bench_postgres: 0 PASS, 0 MISS, 0 ERROR (skipped)")
        return 0

    import psycopg

    t_start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    schemas: list[str] = []
    rows: list[Row] = []
    notes: list[str] = []

    def fresh(tag: str) -> tuple[str, Path]:
        schema = f"bench_{tag}_{secrets.token_hex(4)}"
        schemas.append(schema)
        sep = "&" if "?" in args.dsn else "?"
        home = scratch / f"home-{schema}"
        return f"{args.dsn}{sep}schema={schema}", home

    singles_pg: dict[str, float] = {}

    def one_at_a_time() -> None:
        loc, home = fresh("single")
        log(f"{singles} appends on PostgreSQL, one per transaction ...")
        singles_pg.update(single_appends(loc, home, singles))
        log(f"{singles} appends on SQLite (reference) ...")
        ref = single_appends(str(scratch / "ref" / "ledger.db"), scratch / "home-ref", singles)
        rows.append(
            Row(
                "Ledger.append, 1 process",
                f"{fmt_rate(singles_pg['rate'])} (p50 {fmt_ms(singles_pg['p50'])}, "
                f"p99 {fmt_ms(singles_pg['p99'])})",
                f"SQLite {fmt_rate(ref['rate'])}",
                f"{singles_pg['rate'] / ref['rate']:.2f}x SQLite",
            )
        )

    def batched() -> None:
        loc, home = fresh("batch")
        log(f"{batches} Ledger.append_many batches of {BATCH} ...")
        rate = ledger_batches(loc, home, batches)
        base = singles_pg.get("rate")
        if rate is None:
            notes.append("Ledger.append_many is not in this version: ledger batch row skipped")
        else:
            rows.append(
                Row(
                    f"Ledger.append_many, batches of {BATCH}",
                    f"{fmt_rate(rate)} registrations",
                    f"1 per transaction {fmt_rate(base)}" if base else "",
                    f"{rate / base:.1f}x" if base else "",
                    f">= {TARGET_BATCH_RATE:,.0f}/s",
                    "PASS" if rate >= TARGET_BATCH_RATE else "MISS",
                )
            )
        loc, home = fresh("store")
        log(f"{batches} Writer.append_many batches of {BATCH} (store only) ...")
        rate = store_batches(loc, home, batches)
        rows.append(
            Row(
                f"Writer.append_many, batches of {BATCH} (store only)",
                f"{fmt_rate(rate)} blocks",
                f"1 per transaction {fmt_rate(base)}" if base else "",
                f"{rate / base:.1f}x" if base else "",
            )
        )

    def concurrent() -> None:
        loc, home = fresh("procs")
        log(f"{workers} processes x {each} appends ...")
        rate = concurrent_appends(loc, home, workers, each)
        base = singles_pg.get("rate")
        rows.append(
            Row(
                f"Ledger.append, {workers} processes at once",
                f"{fmt_rate(rate)} in all",
                f"1 process {fmt_rate(base)}" if base else "",
                f"{rate / base:.2f}x" if base else "",
            )
        )

    try:
        for section in (one_at_a_time, batched, concurrent):
            try:
                section()
            except Exception as exc:  # report it and go on with the other sections
                traceback.print_exc()
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:90]
                rows.append(Row(section.__name__.replace("_", " "), message, status="ERROR"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.Error as exc:
            notes.append(f"could not drop the benchmark schemas: {exc}")

    print_table(rows)
    for note in notes:
        print(f"note: {note}")
    passed = sum(r.status == "PASS" for r in rows)
    missed = sum(r.status == "MISS" for r in rows)
    errors = sum(r.status == "ERROR" for r in rows)
    print(
        f"bench_postgres: {passed} PASS, {missed} MISS, {errors} ERROR "
        f"({time.perf_counter() - t_start:,.0f} s)"
    )
    return 0


def _run(fn: Callable[[], int]) -> None:
    try:
        fn()
    except Exception as exc:  # a benchmark reports; it exits 0 regardless
        traceback.print_exc()
        print(f"bench_postgres: ERROR {type(exc).__name__}: {exc}")
    sys.exit(0)


if __name__ == "__main__":
    _run(main)
