"""One storage suite, run against every backend: what a Ledger relies on a store to do."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import LedgerUnreadable
from modelchain.ledgers import Ledger
from modelchain.ledgers.locations import open_store
from modelchain.log.home import Home
from modelchain.log.store import Writer

BACKENDS = ["sqlite", "json", "postgresql"]


def _location(tmp_path: Path, backend: str) -> Path:
    return tmp_path / "ledgers" / ("ledger.db" if backend == "sqlite" else "ledger.json")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def location(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path | str:
    """A new, not yet created ledger of the backend under test (PostgreSQL: a fresh schema,
    skipped with a reason when MODELCHAIN_TEST_PG_DSN is not set)."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_ledger"))
    return _location(tmp_path, backend)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(outside(tmp_path, "home"))


def outside(tmp: Path, name: str) -> Path:
    """A MODELCHAIN_HOME beside, not inside, the directory that holds the ledgers."""
    return tmp.parent / f"{tmp.name}-{name}"


def _hex(i: int) -> str:
    return f"{i:064x}"


def test_missing_ledger_is_an_error_unless_created(location: Path | str) -> None:
    loc = location
    with pytest.raises(LedgerUnreadable, match="no ledger"):
        open_store(loc)
    store = open_store(loc, create=True)
    assert store.size() == 0
    assert store.origin() is None
    assert store.checkpoint() is None


def test_append_read_back_and_nodes(location: Path | str, home: Home) -> None:
    loc = location
    with Ledger.open(loc, home=home, create=True) as ledger:
        blocks = [ledger.append(name=f"m{i % 3}", model_hash=_hex(i), size=i) for i in range(13)]
    store = open_store(loc)
    assert store.size() == 13
    stored = list(store.blocks())
    assert [s.position for s in stored] == list(range(13))
    assert [s.raw["model_hash"] for s in stored] == [b.model_hash for b in blocks]
    # the leaf data is the canonical encoding of the block, exactly
    assert [s.data for s in stored] == [canonical_json(b.to_dict()) for b in blocks]
    leaves = [merkle.leaf_hash(s.data) for s in stored]
    tree = merkle.ListSubtrees(leaves)
    for level in range(4):
        for index in range(13 >> level):
            assert store.node(level, index) == tree.node(level, index)
    positions = merkle.Frontier.peak_positions(13)
    assert list(store.peaks(13)) == [tree.node(level, index) for level, index in positions]
    assert merkle.Frontier(13, list(store.peaks(13))).root() == merkle.root(leaves)
    assert list(s.position for s in store.blocks(5, 8)) == [5, 6, 7]
    assert store.find(name="m1") == [1, 4, 7, 10]
    assert store.find(digest=_hex(4)) == [4]
    assert store.origin() is not None and store.checkpoint() is not None


def test_versions_count_per_name(location: Path | str, home: Home) -> None:
    with Ledger.open(location, home=home, create=True) as ledger:
        versions = [
            ledger.append(name=n, model_hash=_hex(i)).version for i, n in enumerate("aabab")
        ]
    assert versions == [1, 2, 1, 3, 2]


def test_failed_write_leaves_store_unchanged(
    location: Path | str, backend: str, home: Home
) -> None:
    loc = location
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(1))
    before = loc.read_bytes() if isinstance(loc, Path) else None
    store = open_store(loc)
    with pytest.raises(RuntimeError), store.writer() as w:
        tip = w.tip()
        w.append(
            {"index": tip.size, "name": "x", "version": 1, "model_hash": _hex(9)},
            b"{}",
            [(0, tip.size, b"\0" * 32)],
            "not a checkpoint\n",
        )
        raise RuntimeError("crash in the middle of an append")
    store.close()
    assert open_store(loc).size() == 1
    if backend == "json":
        assert isinstance(loc, Path) and loc.read_bytes() == before
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit().size == 1


def _append_many(args: tuple[str, str, int, int]) -> None:
    location, home, worker, count = args
    with Ledger.open(location, home=Home(home)) as ledger:
        for i in range(count):
            ledger.append(name=f"worker{worker}", model_hash=_hex(worker * 1000 + i))


def test_concurrent_appenders_never_fork(location: Path | str, backend: str, home: Home) -> None:
    """Several processes append at once: contiguous indices, one chain, a valid audit."""
    loc = location
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.init()
    workers, each = 4, 10 if backend == "json" else 25
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.map(_append_many, [(str(loc), str(home.path), w, each) for w in range(workers)])
    with Ledger.open(loc, home=home) as ledger:
        report = ledger.audit()
        assert report.size == workers * each
        blocks = list(ledger.blocks())
    assert [b.index for b in blocks] == list(range(workers * each))
    for w in range(workers):
        assert [b.version for b in blocks if b.name == f"worker{w}"] == list(range(1, each + 1))


def _signed_batch(
    w: Writer, home: Home, name: str, count: int
) -> tuple[list[tuple[dict[str, Any], bytes]], list[tuple[int, int, bytes]], str]:
    """`count` valid blocks after the writer's tip, their nodes and one checkpoint over all."""
    from modelchain.core.note import Checkpoint, sign_checkpoint
    from modelchain.log.block import ZERO_HASH, Block, seed_hash

    tip = w.tip()
    assert tip.origin is not None
    frontier = merkle.Frontier(tip.size, list(tip.peaks))
    previous = ZERO_HASH if tip.last_data is None else json.loads(tip.last_data)["current_hash"]
    first = w.latest_version(name) + 1
    items, nodes = [], []
    for i in range(tip.size, tip.size + count):
        digest, stamp = _hex(i), 1_700_000_000.25 + i
        block = Block(
            index=i,
            timestamp=stamp,
            model_hash=digest,
            previous_hash=previous,
            current_hash=seed_hash(i, stamp, digest, previous),
            name=name,
            version=first + i - tip.size,
            kind="file",
            size=i,
        )
        data = canonical_json(block.to_dict())
        nodes.extend(frontier.append(merkle.leaf_hash(data)))
        items.append((block.to_dict(), data))
        previous = block.current_hash
    signer = home.operator_signer().with_name(tip.origin)
    note = sign_checkpoint(Checkpoint(tip.origin, frontier.size, frontier.root()), signer)
    return items, nodes, note


def test_append_many_writes_a_batch_under_one_checkpoint(location: Path | str, home: Home) -> None:
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(0))
    store = open_store(location)
    with store.writer() as w:
        items, nodes, note = _signed_batch(w, home, "batch", 100)
        w.append_many(items, nodes, note)
        assert w.head() == (101, note)
    with pytest.raises(RuntimeError), store.writer() as w:  # a failed batch leaves nothing
        items, nodes, bad = _signed_batch(w, home, "lost", 50)
        w.append_many(items, nodes, bad)
        raise RuntimeError("crash after the batch was written")
    store.close()
    with Ledger.open(location, home=home) as ledger:
        assert ledger.audit().size == 101
        assert ledger.checkpoint() == note
        assert [b.version for b in ledger.blocks() if b.name == "batch"] == list(range(1, 101))
        assert ledger.append(name="a", model_hash=_hex(999)).index == 101  # the tip is sound
        assert ledger.store.find(name="lost") == []


def test_json_store_writes_the_seed_layout(tmp_path: Path, home: Home) -> None:
    import json

    loc = tmp_path / "blockchain_data.json"
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="iris_model.joblib", model_hash=_hex(7), size=10)
    data = json.loads(loc.read_text())
    assert isinstance(data, list) and len(data) == 1
    assert list(data[0])[:5] == [
        "index",
        "timestamp",
        "model_hash",
        "previous_hash",
        "current_hash",
    ]
    assert Path(str(loc) + ".checkpoint").read_text().startswith("modelchain.local/")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_sqlite_uses_wal(tmp_path: Path, home: Home) -> None:
    import sqlite3

    loc = tmp_path / "l.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(1))
    conn = sqlite3.connect(loc)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_home_refuses_to_live_with_the_ledger(tmp_path: Path) -> None:
    from modelchain.core.errors import UsageError

    for home in (tmp_path, tmp_path / ".modelchain" / "keys", tmp_path / "l.db-home"):
        inside = "the ledger's folder" if home != tmp_path else "MODELCHAIN_HOME"
        with pytest.raises(UsageError, match=f"must not lie inside {inside}"):
            Ledger.open(tmp_path / "l.db", home=Home(home), create=True)
        with pytest.raises(UsageError, match="must not lie inside MODELCHAIN_HOME"):
            Ledger.open(home / "l.json", home=Home(home), create=True)
    assert not (tmp_path / "l.db").exists()  # refused before anything was created
    Ledger.open(tmp_path / "a" / "l.db", home=Home(tmp_path / "b"), create=True).close()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_operator_key_is_private(tmp_path: Path, home: Home) -> None:
    with Ledger.open(tmp_path / "x" / "l.db", home=home, create=True) as ledger:
        ledger.init()
    assert (home.key_path.stat().st_mode & 0o777) == 0o600


def test_json_file_stays_a_plain_indented_dump(tmp_path: Path, home: Home) -> None:
    """Appends extend the file's text instead of re-encoding it; the bytes must still be
    exactly what `json.dump(blocks, indent=4)` writes, whoever appended."""
    import json

    loc = tmp_path / "blockchain_data.json"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(5):
            ledger.append(name="m", model_hash=_hex(i), metadata={"note": "ünïcode\n"})
    for i in range(3):  # a fresh process each time, as the CLI is
        with Ledger.open(loc, home=home) as ledger:
            ledger.append(name="m", model_hash=_hex(10 + i))
    text = loc.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=4, ensure_ascii=False) + "\n"
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit().size == 8
