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
from modelchain.core.errors import LedgerInvalid, LedgerUnreadable
from modelchain.fs.digest import PathDigest
from modelchain.ledgers import Ledger
from modelchain.ledgers.locations import open_store
from modelchain.log.home import Home
from modelchain.log.store import StoreSubtrees, Writer
from modelchain.log.store import sqlite as sqlite_store

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
    assert store.nodes(positions) == [tree.node(level, index) for level, index in positions]
    assert merkle.Frontier(13, store.nodes(positions)).root() == merkle.root(leaves)
    assert list(s.position for s in store.blocks(5, 8)) == [5, 6, 7]
    assert store.find(name="m1") == [1, 4, 7, 10]
    assert store.find(digest=_hex(4)) == [4]
    assert store.origin() is not None and store.checkpoint() is not None


def test_nodes_are_read_by_id_in_one_batch(location: Path | str, home: Home) -> None:
    with Ledger.open(location, home=home, create=True) as ledger:
        for i in range(21):
            ledger.append(name="m", model_hash=_hex(i))
    store = open_store(location)
    leaves = [merkle.leaf_hash(s.data) for s in store.blocks()]
    tree = merkle.ListSubtrees(leaves)
    ids = [(4, 0), (0, 20), (2, 4), (0, 20), (1, 9)]  # any order, repeats allowed
    assert store.nodes(ids) == [tree.node(level, index) for level, index in ids]
    assert store.nodes([]) == []
    many = ids * 100  # more positions than one SQLite statement takes
    assert store.nodes(many) == [tree.node(level, index) for level, index in many]
    assert store.node(2, 4) == tree.node(2, 4)
    with pytest.raises(LedgerUnreadable, match=r"Merkle node \(0, 21\)"):
        store.nodes([(0, 3), (0, 21)])
    with pytest.raises(LedgerUnreadable, match=r"Merkle node \(5, 0\)"):
        store.nodes([(5, 0)])
    # a proof, a root and the peaks through the adapter: one read each, the same answers
    reads: list[int] = []
    batch = store.nodes

    def counted(ids: Any) -> list[bytes]:
        reads.append(len(ids))
        return batch(ids)

    store.nodes = counted  # type: ignore[method-assign]
    subtrees = StoreSubtrees(store, 21)
    for i in (0, 7, 20):
        assert merkle.inclusion_proof(i, subtrees) == merkle.inclusion_proof(i, leaves)
    for m in (1, 5, 16, 20):
        assert merkle.consistency_proof(m, subtrees) == merkle.consistency_proof(m, leaves)
    assert merkle.root(subtrees, 13) == merkle.root(leaves[:13])
    peaks21 = merkle.Frontier.peak_positions(21)
    assert store.nodes(peaks21) == [tree.node(*p) for p in peaks21]
    assert len(reads) == 3 + 4 + 1 + 1
    # with a cache, a node is read once
    reads.clear()
    cache: dict[tuple[int, int], bytes] = {}
    cached = StoreSubtrees(store, 21, cache)
    assert merkle.inclusion_proof(3, cached) == merkle.inclusion_proof(3, leaves)
    assert merkle.inclusion_proof(3, cached) == merkle.inclusion_proof(3, leaves)
    assert len(reads) == 1 and len(cache) == reads[0]
    store.close()


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
    w: Writer, home: Home, name: str, count: int, first: int | None = None, step: int = 1
) -> tuple[list[tuple[dict[str, Any], bytes]], list[tuple[int, int, bytes]], str, dict[Any, bytes]]:
    """`count` valid blocks after the writer's tip, their nodes, one checkpoint over all
    (versions from `first`, default the next one, `step` apart: 0 repeats one version),
    carrying the index root, and the index nodes they change."""
    from modelchain.core.index import extension_line, root_from_extensions
    from modelchain.core.indexcache import authenticated_index
    from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint
    from modelchain.log.block import ZERO_HASH, Block, index_entry, seed_hash

    tip = w.tip()
    assert tip.origin is not None
    frontier = merkle.Frontier(tip.size, list(tip.peaks))
    previous = ZERO_HASH if tip.last_data is None else json.loads(tip.last_data)["current_hash"]
    first = w.latest_version(name) + 1 if first is None else first
    assert tip.checkpoint is not None
    root = root_from_extensions(Checkpoint.parse(parse_note(tip.checkpoint).text).extensions)
    assert root is not None
    tree, written = authenticated_index(w.index_nodes, root, "test"), {}
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
            version=first + (i - tip.size) * step,
            kind="file",
            size=i,
        )
        data = canonical_json(block.to_dict())
        nodes.extend(frontier.append(merkle.leaf_hash(data)))
        entry = index_entry(block, data)
        written.update(tree.put(entry.key, entry.value()))
        items.append((block.to_dict(), data))
        previous = block.current_hash
    signer = home.operator_signer().with_name(tip.origin)
    signed = Checkpoint(tip.origin, frontier.size, frontier.root(), (extension_line(tree.root()),))
    return items, nodes, sign_checkpoint(signed, signer), written


def test_append_many_writes_a_batch_under_one_checkpoint(location: Path | str, home: Home) -> None:
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(0))
    store = open_store(location)
    with store.writer() as w:
        items, nodes, note, index = _signed_batch(w, home, "batch", 100)
        w.append_many(items, nodes, note, index)
        assert w.head() == (101, note)
    with pytest.raises(RuntimeError), store.writer() as w:  # a failed batch leaves nothing
        items, nodes, bad, index = _signed_batch(w, home, "lost", 50)
        w.append_many(items, nodes, bad, index)
        raise RuntimeError("crash after the batch was written")
    store.close()
    with Ledger.open(location, home=home) as ledger:
        assert ledger.audit().size == 101
        assert ledger.checkpoint() == note
        assert [b.version for b in ledger.blocks() if b.name == "batch"] == list(range(1, 101))
        assert ledger.append(name="a", model_hash=_hex(999)).index == 101  # the tip is sound
        assert ledger.store.find(name="lost") == []


def test_a_second_block_with_the_same_name_and_version_is_refused(
    location: Path | str, home: Home
) -> None:
    """(name, version) is unique in every store, not only in the ledger's check before it:
    a writer that skips that check (or races it) still cannot register a version twice."""
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.append(name="m", model_hash=_hex(0))
        ledger.append(name="other", model_hash=_hex(1))
    store = open_store(location)
    with pytest.raises(LedgerInvalid, match="second block named 'm' with version 1"):
        with store.writer() as w:  # the stored version again
            w.append_many(*_signed_batch(w, home, "m", 1, first=1))
    with pytest.raises(LedgerInvalid, match="second block named 'm' with version 1"):
        with store.writer() as w:  # versions 2, 3, then 1 again: after two good blocks
            items, _, _, _ = _signed_batch(w, home, "m", 3, first=3, step=-1)
            items = [items[1], items[0], items[2]]
            for position, (block, _) in enumerate(items):
                block["index"] = 2 + position
            w.append_many(items, [], "a checkpoint")
    with pytest.raises(LedgerInvalid, match="second block named 'm' with version 2"):
        with store.writer() as w:  # twice in one batch
            w.append_many(*_signed_batch(w, home, "m", 2, first=2, step=0))
    store.close()
    with Ledger.open(location, home=home) as ledger:
        assert ledger.audit().size == 2  # nothing of the refused batches was written
        assert ledger.append(name="m", model_hash=_hex(9)).version == 2


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


def test_sqlite_reads_a_proof_in_one_statement_by_primary_key(tmp_path: Path, home: Home) -> None:
    import sqlite3

    from modelchain.log.store.sql import Queries

    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(37):
            ledger.append(name="m", model_hash=_hex(i))
    store = open_store(loc)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    proof = merkle.inclusion_proof(5, StoreSubtrees(store, 37))
    assert len(statements) == 1 and len(proof) == 6
    store.close()
    ((sql, args),) = Queries("?").nodes(merkle.inclusion_nodes(5, 37).ids)
    conn = sqlite3.connect(loc)
    plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    conn.close()
    assert "SEARCH n USING PRIMARY KEY" in plan and "SCAN n" not in plan


def test_sqlite_reads_an_index_path_in_one_statement_by_primary_key(
    tmp_path: Path, home: Home
) -> None:
    """A path's index nodes come in one statement that searches the tile-first primary key
    (never a scan of the table), and every node is found where the append filed it."""
    import sqlite3

    from modelchain.core.index import key_of, path_ids
    from modelchain.log.store.sql import Queries, tile_key

    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(300):
            ledger.append(name=f"m{i}", model_hash=_hex(i))
    store = open_store(loc)
    ids = path_ids(key_of("m7"), 0, 12)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    found = store.index_nodes(ids)
    store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    assert len(statements) == 1 and (0, 0) in found and len(found) >= 8
    ((sql, args),) = Queries("?").index_tiled(ids)
    conn = sqlite3.connect(loc)
    plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    filed = conn.execute("SELECT tile, depth, prefix FROM index_tiled").fetchall()
    conn.close()
    store.close()
    assert "SEARCH n USING PRIMARY KEY" in plan and "SCAN n" not in plan
    assert all(t == tile_key(d, int.from_bytes(p, "big")) for t, d, p in filed)


def test_an_index_node_filed_under_another_tile_is_refused_by_the_full_audit(
    tmp_path: Path, home: Home
) -> None:
    """A second copy of a node under a wrong tile is never what a proof reads, so the full
    audit must not vouch for it either: it names the node."""
    import sqlite3

    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(20):
            ledger.append(name=f"m{i}", model_hash=_hex(i))
    conn = sqlite3.connect(loc)
    conn.execute(
        "INSERT INTO index_tiled SELECT x'00ff', depth, prefix, record FROM index_tiled "
        "WHERE depth = 2 LIMIT 1"
    )
    conn.commit()
    conn.close()
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match=r"\(depth 2, prefix .*\) is filed under another"):
            ledger.audit(full=True)


# The SQLite schema as modelchain created it up to schema version 2 (the name index was not
# UNIQUE), copied here as it was written: ledgers made then must keep opening.
_SQLITE_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    idx INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    -- lookup columns derived by SQLite from the signed body, so they cannot disagree with it
    name TEXT GENERATED ALWAYS AS (json_extract(body, '$.name')) VIRTUAL,
    version INTEGER GENERATED ALWAYS AS (json_extract(body, '$.version')) VIRTUAL,
    model_hash TEXT GENERATED ALWAYS AS (json_extract(body, '$.model_hash')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS blocks_by_name ON blocks (name, version);
CREATE INDEX IF NOT EXISTS blocks_by_hash ON blocks (model_hash);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
"""


def _as_schema_2(path: Path, home: Home, extra_sql: str = "") -> None:
    """Rebuild the ledger at `path` with the schema-2 statements (same rows, same meta but
    the schema version, the checkpoint signed without an index), as a ledger made before
    the name index was unique."""
    import sqlite3

    from conftest import without_index

    conn = sqlite3.connect(path, isolation_level=None)
    (note,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (without_index(note, home),))
    conn.close()

    old = path.with_name("old.db")
    conn = sqlite3.connect(old, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")  # as modelchain made them
    conn.executescript(_SQLITE_SCHEMA_2)
    conn.execute("ATTACH DATABASE ? AS a", (str(path),))
    conn.executescript(
        "BEGIN;"
        "INSERT INTO meta SELECT key, value FROM a.meta;"
        "UPDATE meta SET value = '2' WHERE key = 'schema';"
        "INSERT INTO blocks (idx, body) SELECT idx, body FROM a.blocks;"
        "INSERT INTO nodes SELECT level, idx, hash FROM a.nodes;" + extra_sql + "COMMIT;"
    )
    conn.execute("DETACH DATABASE a")
    conn.close()
    os.replace(old, path)


def _sqlite_schema(path: Path) -> tuple[str, str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        (index,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'blocks_by_name'"
        ).fetchone()
        return version, index
    finally:
        conn.close()


def test_a_schema_2_sqlite_ledger_opens_and_is_upgraded_on_its_first_write(
    tmp_path: Path, home: Home
) -> None:
    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i, name in enumerate("mmo"):
            ledger.append(name=name, model_hash=_hex(i))
    _as_schema_2(loc, home)
    assert _sqlite_schema(loc) == ("2", "CREATE INDEX blocks_by_name ON blocks (name, version)")
    with Ledger.open(loc, home=home) as ledger:  # reading leaves the schema as it is
        assert ledger.audit().size == 3
        assert ledger.registration("m").version == 2
        assert ledger.store.find(name="m") == [0, 1]
    assert _sqlite_schema(loc)[0] == "2"
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.append(name="m", model_hash=_hex(7)).version == 3
    assert _sqlite_schema(loc) == (
        sqlite_store.SCHEMA_VERSION,
        "CREATE UNIQUE INDEX blocks_by_name ON blocks (name, version)",
    )
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit().size == 4
    store = open_store(loc)
    with pytest.raises(LedgerInvalid, match="second block named 'm' with version 3"):
        with store.writer() as w:
            w.append_many(*_signed_batch(w, home, "m", 1, first=3))
    store.close()
    with Ledger.open(loc, home=home) as ledger:  # the first append signed the index
        assert ledger.verify("m", digest=PathDigest("file", _hex(7), 0, None)).block.version == 3


# The index table of schema 4 (one row a node, before tiles), copied as it was written.
_INDEX_NODES_4 = """CREATE TABLE IF NOT EXISTS index_nodes (
    depth INTEGER NOT NULL,
    prefix BLOB NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (depth, prefix)
) WITHOUT ROWID;"""


def _as_schema_4(path: Path, damage: bool = False) -> dict[tuple[int, int], bytes]:
    """Keep the ledger's index as schema 4 did, a row per node; `damage` makes one row's
    record 33 bytes (not a record). Returns the nodes."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    stored = conn.execute("SELECT depth, prefix, record FROM index_tiled").fetchall()
    nodes = {(d, int.from_bytes(p, "big")): r for d, p, r in stored}
    rows = sorted(stored)
    if damage:
        rows[-1] = (*rows[-1][:2], rows[-1][2][:32] + b"x")
    conn.execute("BEGIN")
    conn.execute(_INDEX_NODES_4)
    conn.executemany("INSERT INTO index_nodes VALUES (?, ?, ?)", rows)
    conn.execute("DROP TABLE index_tiled")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    conn.execute("COMMIT")
    conn.close()
    return nodes


def _tables(path: Path) -> set[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_a_schema_4_sqlite_ledger_is_read_as_it_is_and_moved_into_tiles_on_its_first_write(
    tmp_path: Path, home: Home
) -> None:
    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(60):
            ledger.append(name=f"m{i}", model_hash=_hex(i))
    assert len(_as_schema_4(loc)) > 60
    with Ledger.open(loc, home=home) as ledger:  # proofs served from the node rows
        assert ledger.verify("m7", digest=PathDigest("file", _hex(7), 0, None)).block.index == 7
        assert ledger.audit(full=True).size == 60
    assert _sqlite_schema(loc)[0] == "4" and "index_nodes" in _tables(loc)
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.append(name="m7", model_hash=_hex(99)).version == 2
    assert _sqlite_schema(loc)[0] == sqlite_store.SCHEMA_VERSION
    assert "index_nodes" not in _tables(loc) and "index_tiled" in _tables(loc)
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit(full=True).size == 61
        found = ledger.verify("m7", digest=PathDigest("file", _hex(99), 0, None))
        assert found.block.version == 2
        assert ledger.verify("m8", digest=PathDigest("file", _hex(8), 0, None)).block.index == 8


def test_a_schema_4_ledger_whose_node_rows_are_damaged_is_refused_on_write(
    tmp_path: Path, home: Home
) -> None:
    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        for i in range(5):
            ledger.append(name=f"m{i}", model_hash=_hex(i))
    _as_schema_4(loc, damage=True)
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match=r"stored index node at depth \d+ is not a hash"):
            ledger.append(name="m9", model_hash=_hex(9))
    assert _sqlite_schema(loc)[0] == "4" and "index_nodes" in _tables(loc)  # rolled back
    assert len(Ledger.open(loc, home=home)) == 5


def test_a_schema_2_sqlite_ledger_holding_a_version_twice_is_refused_on_write(
    tmp_path: Path, home: Home
) -> None:
    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="m", model_hash=_hex(0))
    _as_schema_2(
        loc, home, "INSERT INTO blocks (idx, body) SELECT 1, body FROM blocks WHERE idx = 0;"
    )
    store = open_store(loc)
    with pytest.raises(LedgerInvalid, match="two blocks have the same name and version"):
        with store.writer():
            pass
    store.close()
    assert _sqlite_schema(loc)[0] == "2"  # the failed upgrade was rolled back


def test_opening_while_another_process_upgrades_the_schema(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema version and the schema are read in one snapshot: an upgrade committed
    between the two reads is not taken for tampering."""
    import sqlite3

    from modelchain.log.store import sqlite as sqlite_store

    loc = tmp_path / "ledger.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="m", model_hash=_hex(0))
    _as_schema_2(loc, home)
    real = sqlite_store._schema_objects

    def upgraded_meanwhile(conn: sqlite3.Connection) -> Any:
        other = sqlite3.connect(loc, isolation_level=None)
        other.executescript(
            "BEGIN IMMEDIATE; DROP INDEX blocks_by_name;"
            "CREATE UNIQUE INDEX IF NOT EXISTS blocks_by_name ON blocks (name, version);"
            "UPDATE meta SET value = '3' WHERE key = 'schema'; COMMIT;"
        )
        other.close()
        monkeypatch.setattr(sqlite_store, "_schema_objects", real)
        return real(conn)

    monkeypatch.setattr(sqlite_store, "_schema_objects", upgraded_meanwhile)
    open_store(loc).close()
    assert _sqlite_schema(loc)[0] == "3"
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit().size == 1
