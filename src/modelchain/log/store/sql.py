"""The SQL of both database stores, in one place: table definitions, reads, node batches.

SQLite and PostgreSQL keep the same tables (`meta`, `blocks` with lookup columns generated
from the signed body, `nodes`) and run the same reads; they differ in parameter marks
(`?`, `%s`), in where the tables live (PostgreSQL: one schema per ledger) and in how a batch
of node positions is passed. `Queries` builds every shared statement from those three facts.

The table definitions are compared with the database's own record of its schema when a
ledger is opened (`sqlite_master`; `pgschema` for PostgreSQL), so their text is part of the
format: an edit here changes what existing ledgers are checked against. That is why the
SQLite schema of every version modelchain still opens is kept, with the step between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelchain.core.errors import LedgerInvalid, MissingNode
from modelchain.log.store.base import stored_node

# -- SQLite ---------------------------------------------------------------------------------

#: schema "2": what modelchain created before (name, version) was unique in SQLite. Kept
#: byte for byte: a ledger made then is accepted only if its schema is exactly this.
SQLITE_SCHEMA_2 = """
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

_BY_NAME_2 = "CREATE INDEX IF NOT EXISTS blocks_by_name ON blocks (name, version);"
_BY_NAME_3 = "CREATE UNIQUE INDEX IF NOT EXISTS blocks_by_name ON blocks (name, version);"

#: schema "3": the name index is UNIQUE, so SQLite itself refuses a second block with the
#: same name and version, as PostgreSQL's UNIQUE (name, version) does
SQLITE_SCHEMA_3 = SQLITE_SCHEMA_2.replace(_BY_NAME_2, _BY_NAME_3)

#: the nodes of the index of newest versions (`core.index`): a node at `depth` is named by
#: the first `depth` bits of the keys below it (`prefix`, big-endian, in (depth + 7) // 8
#: bytes); its record is a 32-byte hash, or a lone key's 64-byte leaf record
_INDEX_TABLE = """CREATE TABLE IF NOT EXISTS index_nodes (
    depth INTEGER NOT NULL,
    prefix BLOB NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (depth, prefix)
) WITHOUT ROWID;"""

#: schema "4": schema 3 and the index's nodes, a row each
SQLITE_SCHEMA_4 = SQLITE_SCHEMA_3 + _INDEX_TABLE + "\n"

#: the index's nodes, a row each as in schema 4, but filed by the four-level tile they lie in
#: (`tile_key`) first: a name's path then crosses a page of the file every four levels, not
#: at every level, so an append dirties about a third of the pages
_TILED_TABLE = """CREATE TABLE IF NOT EXISTS index_tiled (
    tile BLOB NOT NULL,
    depth INTEGER NOT NULL,
    prefix BLOB NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (tile, depth, prefix)
) WITHOUT ROWID;"""

#: schema "5", the current one: schema 3 and the index's nodes filed by tile
SQLITE_SCHEMA = SQLITE_SCHEMA_3 + _TILED_TABLE + "\n"

#: schema "2" -> "3", run in the first write transaction on an older ledger (statements one
#: by one: sqlite3's executescript would commit the transaction first)
SQLITE_MIGRATE_2 = ("DROP INDEX blocks_by_name", _BY_NAME_3.rstrip(";"))
#: schema "3" -> "4": the table; the ledger fills it and signs its root in the same transaction
SQLITE_MIGRATE_3 = (_INDEX_TABLE.rstrip(";"),)
#: schema "4" -> "5": the new table, filled from `index_nodes` (by the store: `tile_key` is
#: not SQL), which then goes
SQLITE_MIGRATE_4 = (_TILED_TABLE.rstrip(";"),)
SQLITE_DROP_INDEX_NODES = "DROP TABLE index_nodes"

# -- PostgreSQL -----------------------------------------------------------------------------

# {s} is the quoted schema name (validated by the store, so plain formatting is safe).
PG_CREATE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.blocks (
    idx bigint PRIMARY KEY CHECK (idx >= 0),
    body text NOT NULL,
    -- derived by PostgreSQL from the signed body, so they cannot disagree with it
    name text GENERATED ALWAYS AS (body::json ->> 'name') STORED,
    version bigint GENERATED ALWAYS AS ((body::json ->> 'version')::bigint) STORED,
    model_hash text GENERATED ALWAYS AS (body::json ->> 'model_hash') STORED,
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS blocks_by_hash ON {s}.blocks (model_hash);
CREATE TABLE IF NOT EXISTS {s}.nodes (
    level smallint NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS {s}.index_nodes (
    depth smallint NOT NULL,
    prefix bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (depth, prefix)
);
"""

#: schema 1 -> 2 (PostgreSQL): the index's nodes
PG_INDEX_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.index_nodes (
    depth smallint NOT NULL,
    prefix bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (depth, prefix)
)
"""

# -- the statements both run ----------------------------------------------------------------

#: node positions per SQLite statement: far more than any proof needs (about 2 log2 n), and
#: within the oldest SQLite's 999 parameters
_SQLITE_BATCH = 400


@dataclass(frozen=True)
class Queries:
    """Every statement the two database stores share, for one dialect and one ledger."""

    #: the parameter mark: "?" (sqlite3) or "%s" (psycopg)
    mark: str
    #: what goes before a table name: "" or the quoted PostgreSQL schema and a dot
    prefix: str = ""

    def _t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    @property
    def size(self) -> str:
        return f"SELECT coalesce(max(idx) + 1, 0) FROM {self._t('blocks')}"

    @property
    def meta(self) -> str:
        return f"SELECT value FROM {self._t('meta')} WHERE key = {self.mark}"

    @property
    def head(self) -> str:
        """The number of blocks and the newest checkpoint, in one statement."""
        return (
            f"SELECT ({self.size}), (SELECT value FROM {self._t('meta')} WHERE key = 'checkpoint')"
        )

    def blocks(self, start: int, stop: int | None) -> tuple[str, tuple[int, ...]]:
        """Blocks [start, stop) in index order. By LIMIT, not by `idx < stop`, so that a gap
        in the indices shifts the rows after it and shows as a wrong index."""
        sql = f"SELECT idx, body FROM {self._t('blocks')} WHERE idx >= {self.mark} ORDER BY idx"
        if stop is None:
            return sql, (start,)
        return f"{sql} LIMIT {self.mark}", (start, max(0, stop - start))

    @property
    def last_block(self) -> str:
        return f"SELECT idx, body FROM {self._t('blocks')} ORDER BY idx DESC LIMIT 1"

    @property
    def latest_version(self) -> str:
        return f"SELECT max(version) FROM {self._t('blocks')} WHERE name = {self.mark}"

    def latest_versions(self, names: Sequence[str]) -> list[tuple[str, list[Any]]]:
        """The statements giving (name, highest version) of each of `names` that has one."""
        table = self._t("blocks")
        if self.mark == "%s":
            sql = f"SELECT name, max(version) FROM {table} WHERE name = ANY(%s) GROUP BY name"
            return [(sql, [list(names)])]
        out: list[tuple[str, list[Any]]] = []
        for first in range(0, len(names), _SQLITE_BATCH):
            chunk = list(names[first : first + _SQLITE_BATCH])
            marks = ", ".join("?" for _ in chunk)
            out.append(
                (
                    f"SELECT name, max(version) FROM {table} WHERE name IN ({marks}) GROUP BY name",
                    chunk,
                )
            )
        return out

    @property
    def all_nodes(self) -> str:
        return f"SELECT level, idx, hash FROM {self._t('nodes')}"

    @property
    def all_index_nodes(self) -> str:
        return f"SELECT depth, prefix, record FROM {self._t('index_nodes')}"

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> list[tuple[str, list[Any]]]:
        """The statements that read the index nodes at `ids` (depth, prefix) by primary key,
        each row (depth, prefix bytes, record); absent nodes (empty subtrees) give no row."""
        if not ids:
            return []
        keys = [(depth, prefix_bytes(depth, prefix)) for depth, prefix in ids]
        return self._by_pairs("index_nodes", INDEX_COLUMNS, "bytea", keys)

    def find(self, name: str | None, digest: str | None) -> tuple[str, list[str]]:
        """Indices of the blocks with this name and/or model digest, in index order."""
        clauses, args = [], []
        if name is not None:
            clauses.append(f"name = {self.mark}")
            args.append(name)
        if digest is not None:
            clauses.append(f"model_hash = {self.mark}")
            args.append(digest)
        where = " AND ".join(clauses) or "1 = 1"
        return f"SELECT idx FROM {self._t('blocks')} WHERE {where} ORDER BY idx", args

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[tuple[str, list[Any]]]:
        """The statements (one for any proof) that read the nodes at `ids` by primary key,
        each row (level, idx, hash). Positions may repeat; rows come in any order."""
        if not ids:
            return []
        return self._by_pairs("nodes", ("level", "idx", "hash"), "bigint", ids)

    def _by_pairs(
        self, table: str, columns: tuple[str, str, str], second_type: str, keys: Sequence[Any]
    ) -> list[tuple[str, list[Any]]]:
        """Rows of `table` by a two-column primary key, for many keys in few statements."""
        first, second, value = columns
        if self.mark == "%s":  # PostgreSQL: two arrays, joined against the table
            sql = (
                f"SELECT n.{first}, n.{second}, n.{value} FROM {self._t(table)} n "
                f"JOIN unnest(%s::smallint[], %s::{second_type}[]) AS p({first}, {second}) "
                f"ON n.{first} = p.{first} AND n.{second} = p.{second}"
            )
            return [(sql, [[a for a, _ in keys], [b for _, b in keys]])]
        return _sqlite_by_keys(self._t(table), (first, second), columns, keys)

    def index_tiled(self, ids: Sequence[tuple[int, int]]) -> list[tuple[str, list[Any]]]:
        """SQLite: the statements that read the index nodes at `ids` from `index_tiled` by
        its primary key (tile, depth, prefix), each row (depth, prefix bytes, record)."""
        keys = [(tile_key(d, p), d, prefix_bytes(d, p)) for d, p in ids]
        table = self._t("index_tiled")
        return _sqlite_by_keys(table, ("tile", "depth", "prefix"), INDEX_COLUMNS, keys)

    @property
    def all_index_tiled(self) -> str:
        return f"SELECT tile, depth, prefix, record FROM {self._t('index_tiled')}"


#: the columns an index node read gives: (depth, prefix bytes, record)
INDEX_COLUMNS = ("depth", "prefix", "record")


def _sqlite_by_keys(
    table: str, key: tuple[str, ...], columns: tuple[str, ...], keys: Sequence[Sequence[Any]]
) -> list[tuple[str, list[Any]]]:
    """SQLite: `columns` of the rows of `table` by a primary key of the `key` columns, for
    many keys in few statements (each under SQLite's 999 parameters)."""
    batch = 2 * _SQLITE_BATCH // len(key)
    wanted = " AND ".join(f"n.{c} = want.column{i}" for i, c in enumerate(key, 1))
    mark = "(" + ", ".join("?" for _ in key) + ")"
    out: list[tuple[str, list[Any]]] = []
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        # CROSS JOIN keeps the wanted keys as the outer loop: one primary-key lookup each
        # (SQLite may plan `(a, b) IN (VALUES ...)` as a scan of the table)
        values = ", ".join(mark for _ in chunk)
        sql = (
            f"SELECT {', '.join(f'n.{c}' for c in columns)} FROM (VALUES {values}) AS want "
            f"CROSS JOIN {table} AS n WHERE {wanted}"
        )
        out.append((sql, [x for pos in chunk for x in pos]))
    return out


def node_hashes(
    location: str, ids: Sequence[tuple[int, int]], rows: Iterable[Sequence[Any]]
) -> list[bytes]:
    """The hashes of `ids`, in order, from the rows a node read returned (types checked);
    a position with no row is a damaged ledger, named in the error."""
    found: dict[tuple[int, int], bytes] = {}
    for row in rows:
        level, idx, digest = stored_node(location, *row)
        found[(level, idx)] = digest
    out = []
    for level, index in ids:
        digest = found.get((level, index))
        if digest is None:
            raise MissingNode(f"{location}: Merkle node ({level}, {index}) is missing")
        out.append(digest)
    return out


def prefix_bytes(depth: int, prefix: int) -> bytes:
    """How an index node's prefix is stored: big-endian in (depth + 7) // 8 bytes."""
    return prefix.to_bytes((depth + 7) // 8, "big")


#: levels of the index in a tile (SQLite's `index_tiled`)
TILE_LEVELS = 4


def tile_key(depth: int, prefix: int) -> bytes:
    """The tile an index node is filed under in SQLite: the node `depth % 4` levels above it,
    as one byte (`depth // 4`) and its prefix's bytes. Bytes compare as the tiles nest, so
    the nodes of a tile lie side by side, and every path runs through few pages."""
    stratum = depth // TILE_LEVELS
    top = stratum * TILE_LEVELS
    return bytes((stratum,)) + (prefix >> (depth - top)).to_bytes((top + 7) // 8, "big")


def index_rows(location: str, rows: Iterable[Sequence[Any]]) -> dict[tuple[int, int], bytes]:
    """Index node rows (depth, prefix bytes, record), their types and sizes checked: a row an
    attacker shaped otherwise is a damaged ledger, named, never a crash or a wrong node."""
    out: dict[tuple[int, int], bytes] = {}
    for depth, prefix, record in rows:
        if type(depth) is not int or not 0 <= depth <= 256:
            raise LedgerInvalid(f"{location}: a stored index node has a bad depth")
        if not isinstance(prefix, bytes | bytearray | memoryview):
            raise LedgerInvalid(f"{location}: a stored index node has a bad prefix")
        prefix = bytes(prefix)
        value = int.from_bytes(prefix, "big")
        if len(prefix) != (depth + 7) // 8 or value >> depth:
            raise LedgerInvalid(f"{location}: a stored index node has a bad prefix")
        if not isinstance(record, bytes | bytearray | memoryview) or len(record) not in (32, 64):
            raise LedgerInvalid(f"{location}: stored index node at depth {depth} is not a hash")
        out[(depth, value)] = bytes(record)
    return out


def index_params(records: Mapping[tuple[int, int], bytes]) -> list[tuple[int, bytes, bytes]]:
    """Index records as rows to write (depth, prefix bytes, record)."""
    return [(d, prefix_bytes(d, p), bytes(r)) for (d, p), r in records.items()]
