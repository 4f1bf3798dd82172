"""SQLite storage, the default: WAL, one transaction per append, many processes at once.

Blocks are kept as their canonical JSON text, so the Merkle leaf is computed over exactly the
stored bytes. Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), read the tip and
append inside that transaction, so two processes can never write the same index.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelchain.core.errors import LedgerInvalid, LedgerUnreadable
from modelchain.core.merkle import Frontier
from modelchain.log.store.base import (
    NO_LEDGER_WAY_OUT,
    TextStore,
    Tip,
    Writer,
    duplicate_version,
    no_ledger_message,
    stored_node,
    stored_text_block,
)
from modelchain.log.store.files import check_ledger_files, key_path, read_regular
from modelchain.log.store.sql import (
    SQLITE_DROP_INDEX_NODES,
    SQLITE_MIGRATE_2,
    SQLITE_MIGRATE_3,
    SQLITE_MIGRATE_4,
    SQLITE_SCHEMA,
    SQLITE_SCHEMA_2,
    SQLITE_SCHEMA_3,
    SQLITE_SCHEMA_4,
    Queries,
    index_rows,
    node_hashes,
    prefix_bytes,
    tile_key,
)

FORMAT = "modelchain-ledger"
SCHEMA_VERSION = "5"
#: older schema versions this version opens, with the statements that bring each one up to
#: date; they run in the first write transaction, so reading never changes the file
_UPGRADES = {"2": SQLITE_MIGRATE_2, "3": SQLITE_MIGRATE_3, "4": SQLITE_MIGRATE_4}
_SCHEMAS = {
    "2": SQLITE_SCHEMA_2,
    "3": SQLITE_SCHEMA_3,
    "4": SQLITE_SCHEMA_4,
    SCHEMA_VERSION: SQLITE_SCHEMA,
}
#: where each schema keeps the index of newest versions (2 and 3 have none)
_LAYOUTS = {"4": "nodes", SCHEMA_VERSION: "tiled"}
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: files SQLite keeps beside the ledger: none of them may be a symlink either
_SIDECARS = ("-wal", "-shm", "-journal")
#: the WAL is folded back into the database when it passes this many pages (40 MB)
WAL_PAGES = 10_000
#: an appending store folds the WAL back in a thread of its own every this many blocks
#: (about WAL_PAGES pages of single appends), at most every CHECKPOINT_S seconds (batches
#: write fewer pages a block); the append's own commit does it only past BACKSTOP_PAGES,
#: should that thread fall behind or be gone
CHECKPOINT_EVERY = 512
CHECKPOINT_S = 0.25
BACKSTOP_PAGES = 4 * WAL_PAGES
#: the name of that thread
CHECKPOINT_THREAD = "modelchain-checkpoint"

#: ledger files this process holds open (resolved path -> stores). Their header is not read
#: again with open(): closing *any* descriptor of a file drops every POSIX lock the process
#: holds on it, its SQLite connections' included, and another process closing the ledger
#: may then checkpoint and reset the WAL under them (they go on reading an old snapshot).
_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()

#: every statement shared with PostgreSQL, with sqlite3's parameter mark
_Q = Queries("?")


def _schema_objects(conn: sqlite3.Connection) -> frozenset[tuple[str, str, str, str | None]]:
    """Every table, index, trigger and view, with the SQL that defines it. (`sqlite_stat*`
    tables, which ANALYZE creates, only steer the query planner: they are left out.)"""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return frozenset(
        (str(t), str(n), str(tb), None if sql is None else str(sql))
        for t, n, tb, sql in rows
        if not (t == "table" and str(n).startswith("sqlite_stat"))
    )


@functools.cache
def _expected_schema(version: str = SCHEMA_VERSION) -> frozenset[tuple[str, str, str, str | None]]:
    """Exactly what that version's schema creates, as SQLite records it. A ledger whose schema
    differs (a lookup column rebuilt as a plain one that can disagree with the signed body, an
    extra trigger or view) answers lookups from something nobody signed, so it is refused."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMAS[version])
        return _schema_objects(conn)
    finally:
        conn.close()


@contextmanager
def _db_errors(path: str) -> Iterator[None]:
    """Turn SQLite's exceptions into one-line errors that name the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise LedgerUnreadable(f"{path}: not a readable modelchain SQLite ledger ({exc})") from exc


class _Checkpointer:
    """Folds an appending store's WAL back into the database off the append's path.

    At a million blocks, copying the pages an append dirtied back into the database (and
    syncing it) costs about as much again as the append's own commit: the pages of the index
    and the lookup indexes lie all over the file. A thread with a connection of its own runs
    SQLite's PASSIVE checkpoint every `CHECKPOINT_EVERY` appended blocks (`CHECKPOINT_S` at
    most), which blocks neither readers nor writers, while the appends go on; SQLite keeps
    the WAL and the checkpoint consistent however the two interleave (and after a crash)."""

    def __init__(self, location: str) -> None:
        self._location = location
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=CHECKPOINT_THREAD, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._location, timeout=0.0, isolation_level=None)
        except sqlite3.Error:
            return  # the appends' own commits fold the WAL back (past BACKSTOP_PAGES)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                with contextlib.suppress(sqlite3.Error):  # busy: the next poke tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self, *, wait: bool = True) -> None:
        self._stopping = True
        self._wake.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()


class SQLiteStore(TextStore):
    """A ledger in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.location = str(path)
        self.local_path = key_path(path)
        p = Path(path)
        if p.is_dir() and not p.is_symlink():
            raise LedgerUnreadable(f"{path}: is a directory, not a ledger file")
        check_ledger_files([p, *(f"{p}{suffix}" for suffix in _SIDECARS)])
        #: what this object created, removed again by `discard_created` if the ledger it was
        #: to start is refused (a failed `init` leaves nothing behind)
        self._made: list[Path] = []
        #: the schema was found current in a write transaction (no upgrade to look for)
        self._current = False
        #: where the index is kept: "tiled" (rows filed by tile), "nodes" (schema 4) or None
        self._layout: str | None = None
        #: the WAL's checkpointer once this store has appended, and blocks appended since
        #: its last poke
        self._checkpointer: _Checkpointer | None = None
        self._unfolded = 0
        self._poked_at = 0.0
        if not p.exists():
            parent = p.parent
            while not parent.exists() and parent != parent.parent:
                self._made.insert(0, parent)
                parent = parent.parent
            self._made.append(p)
        fresh = not p.exists() or p.stat().st_size == 0
        if fresh and not create:
            raise LedgerUnreadable(no_ledger_message(path), way_out=NO_LEDGER_WAY_OUT)
        with _OPEN_LOCK:
            checked = _OPEN.get(self.local_path, 0) > 0
        if not fresh and not checked:
            head = read_regular(p, len(_SQLITE_MAGIC)) or b""
            if head != _SQLITE_MAGIC:
                raise LedgerUnreadable(f"{path}: not an SQLite database")
        if fresh:
            p.parent.mkdir(parents=True, exist_ok=True)
        with _db_errors(self.location):
            self._conn = sqlite3.connect(self.location, timeout=60.0, isolation_level=None)
            self._conn.text_factory = _text
            self._conn.execute("PRAGMA busy_timeout = 60000")
            if fresh:
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            # an append dirties 11-14 pages over the blocks, the tree and the index; folding the
            # WAL back every WAL_PAGES pages, not SQLite's 1,000, writes each hot page back
            # once per many appends (about a third more appends per second at 1M blocks)
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
            if fresh:
                self._create_schema()
            self._check_schema()
        with _OPEN_LOCK:
            _OPEN[self.local_path] = _OPEN.get(self.local_path, 0) + 1
        self._counted = True

    # -- set-up -----------------------------------------------------------------------------

    def _create_schema(self) -> None:
        """Idempotent, so two processes creating the same ledger at once both succeed."""
        self._conn.executescript("BEGIN IMMEDIATE;" + SQLITE_SCHEMA + "COMMIT;")
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?), ('schema', ?)",
            (FORMAT, SCHEMA_VERSION),
        )

    def _check_schema(self) -> None:
        """The meta rows and the schema, read in one snapshot: another process upgrading an
        older ledger meanwhile is seen whole or not at all, never as a mismatch."""
        self._conn.execute("BEGIN")
        try:
            self._check_schema_snapshot()
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")  # only read

    def _check_schema_snapshot(self) -> None:
        try:
            rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            raise LedgerUnreadable(
                f"{self.location}: an SQLite database, but not a modelchain ledger"
            ) from exc
        if rows.get("format") != FORMAT:
            raise LedgerUnreadable(
                f"{self.location}: an SQLite database, but not a modelchain ledger"
            )
        version = rows.get("schema")
        if version not in _SCHEMAS:
            raise LedgerUnreadable(
                f"{self.location}: ledger schema {rows.get('schema')!r} is not supported "
                f"by this version of modelchain (expects {SCHEMA_VERSION})"
            )
        expected = _expected_schema(str(version))
        actual = _schema_objects(self._conn)
        self._layout = _LAYOUTS.get(str(version))
        if actual != expected:
            extra = sorted(actual - expected)
            what = f"{extra[0][0]} {extra[0][1]!r}" if extra else "a table or index is missing"
            raise LedgerInvalid(
                f"{self.location}: the database schema is not the one modelchain creates "
                f"({what} differs); the ledger was tampered with"
            )

    # -- reads ------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        with _db_errors(self.location):
            row = self._conn.execute(_Q.meta, (key,)).fetchone()
        if row is not None and not isinstance(row[0], str):
            raise LedgerInvalid(f"{self.location}: the stored {key} is not text")
        return None if row is None else row[0]

    def exists(self) -> bool:
        return self._meta("origin") is not None

    def origin(self) -> str | None:
        return self._meta("origin")

    def checkpoint(self) -> str | None:
        return self._meta("checkpoint")

    def size(self) -> int:
        with _db_errors(self.location):
            (n,) = self._conn.execute(_Q.size).fetchone()
        return int(n)

    def _texts(self, start: int, stop: int | None) -> Iterator[tuple[int, Any]]:
        sql, args = _Q.blocks(start, stop)
        with _db_errors(self.location):
            cursor = self._conn.execute(sql, args)
            position = start
            while True:
                rows = cursor.fetchmany(2048)
                if not rows:
                    break
                for idx, body in rows:
                    if type(idx) is not int:
                        raise LedgerInvalid(f"block {position}: stored under a non-integer index")
                    yield position, body
                    position += 1

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return _read_nodes(self._conn, self.location, ids)

    def all_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        with _db_errors(self.location):
            for level, idx, digest in self._conn.execute(_Q.all_nodes):
                yield stored_node(self.location, level, idx, digest)

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if self._layout == "tiled":
            return _read_tiled(self._conn, self.location, ids)
        with self.snapshot():  # an older layout: it and the rows read in one snapshot
            layout = self._index_layout()
            if layout == "tiled":
                return _read_tiled(self._conn, self.location, ids)
            if layout == "nodes":
                return _read_node_rows(self._conn, self.location, ids)
            return {}  # no index yet: any proof against a signed index root fails

    def all_index_nodes(self) -> Iterator[tuple[tuple[int, int], bytes]]:
        layout = self._index_layout()
        if layout is None:
            return
        with _db_errors(self.location):
            if layout == "tiled":
                cursor = self._conn.execute(_Q.all_index_tiled)
                while rows := cursor.fetchmany(4096):
                    yield from _tiled_rows(self.location, rows).items()
                return
            cursor = self._conn.execute(_Q.all_index_nodes)
            while rows := cursor.fetchmany(4096):
                yield from index_rows(self.location, rows).items()

    def _index_layout(self) -> str | None:
        """Where the index is kept. A ledger of an older schema may be upgraded by another
        process while this one reads it, so until the current layout is seen it is looked
        up again (a layout only ever moves forward)."""
        if self._layout != "tiled":
            with _db_errors(self.location):
                found = {
                    str(name)
                    for (name,) in self._conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name IN ('index_tiled', 'index_nodes')"
                    )
                }
            self._layout = (
                "tiled" if "index_tiled" in found else "nodes" if "index_nodes" in found else None
            )
        return self._layout

    def find(self, *, name: str | None = None, digest: str | None = None) -> list[int]:
        sql, args = _Q.find(name, digest)
        with _db_errors(self.location):
            rows = self._conn.execute(sql, args)
            return [int(r[0]) for r in rows]

    def lookup_columns(self, size: int) -> Iterator[tuple[int, Any, Any, Any]] | None:
        return self._lookup_columns(size)

    def _lookup_columns(self, size: int) -> Iterator[tuple[int, Any, Any, Any]]:
        """Read through the indexes `find` searches, not from the table: the columns are
        VIRTUAL (computed from the body on a table read), so the index entries are what
        could disagree with the body (an index rebuilt under another definition)."""
        queries = (
            "SELECT idx, name, version FROM blocks INDEXED BY blocks_by_name "
            "WHERE idx < ? ORDER BY idx",
            "SELECT idx, model_hash FROM blocks INDEXED BY blocks_by_hash "
            "WHERE idx < ? ORDER BY idx",
        )
        with _db_errors(self.location):
            try:
                by_name, by_hash = (self._conn.execute(sql, (size,)) for sql in queries)
            except sqlite3.OperationalError as exc:  # a table rebuilt without them
                raise LedgerInvalid(
                    f"{self.location}: the lookup columns or their indexes are gone ({exc})"
                ) from exc
            for named, hashed in itertools.zip_longest(by_name, by_hash):
                if named is None or hashed is None or named[0] != hashed[0]:
                    yield (-1, None, None, None)  # an index lacks a row: never matches
                    return
                yield named[0], named[1], named[2], hashed[1]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction (WAL: its snapshot is taken at its first read); inside a
        write transaction, that transaction's view."""
        if self._conn.in_transaction:
            yield
            return
        with _db_errors(self.location):
            self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                with _db_errors(self.location):
                    self._conn.execute("COMMIT")  # only read

    # -- writes -----------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        with _db_errors(self.location):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._upgrade()
                w = _SQLiteWriter(self._conn, self.location)
                yield w
                self._conn.execute("COMMIT")
                self._made = []  # a ledger lives here now: nothing to discard
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        self._appended(w.blocks)

    def _appended(self, blocks: int) -> None:
        """Count committed blocks; every `CHECKPOINT_EVERY`, wake the checkpointer (started
        with the first append, the commits' own checkpoints then only a backstop)."""
        if not blocks:
            return
        if self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.location)
            # a store dropped unclosed stops it too (the thread holds no reference to us)
            weakref.finalize(self, self._checkpointer.stop, wait=False)
            with _db_errors(self.location):
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._unfolded += blocks
        if self._unfolded >= CHECKPOINT_EVERY:
            now = time.monotonic()
            if now - self._poked_at >= CHECKPOINT_S:
                self._unfolded, self._poked_at = 0, now
                self._checkpointer.poke()

    def _upgrade(self) -> None:
        """Bring an older ledger's schema up to date, inside the write transaction that has
        just begun (so under the write lock, and undone with it if the write fails). A ledger
        of schema 2 holding two blocks with one name and version cannot be: refused."""
        if self._current:
            return  # a schema only moves forward: once current, always current
        (version,) = self._conn.execute(_Q.meta, ("schema",)).fetchone() or (None,)
        if version == SCHEMA_VERSION:
            self._current = True
        while version in _UPGRADES:
            try:
                for statement in _UPGRADES[version]:
                    self._conn.execute(statement)
            except sqlite3.IntegrityError:
                raise LedgerInvalid(
                    f"{self.location}: two blocks have the same name and version; the ledger "
                    "was tampered with"
                ) from None
            if version == "4":
                self._file_by_tile()
            version = str(int(version) + 1)
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))

    def _file_by_tile(self) -> None:
        """Schema 4 -> 5: the index's node rows (each checked as any read checks it) filed by
        tile, and their table dropped. No node changes: the signed root stays right."""
        nodes: dict[tuple[int, int], bytes] = {}
        cursor = self._conn.execute(_Q.all_index_nodes)
        while rows := cursor.fetchmany(4096):
            nodes.update(index_rows(self.location, rows))
        _write_tiled(self._conn, nodes)
        self._conn.execute(SQLITE_DROP_INDEX_NODES)
        # `_layout` is left to the next read to see: this transaction may yet be rolled back

    def discard_created(self) -> None:
        """Close, and remove the file (and directories) this object created for a ledger
        that was then refused, so a failed `init` leaves nothing that reads like an attack."""
        if not self._made:
            return
        self.close()
        *directories, ledger = self._made
        self._made = []
        for suffix in ("", *_SIDECARS):
            Path(f"{ledger}{suffix}").unlink(missing_ok=True)
        for directory in reversed(directories):
            try:
                directory.rmdir()
            except OSError:
                break  # not empty: something else lives there now

    def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        self._conn.close()
        if getattr(self, "_counted", False):
            self._counted = False
            with _OPEN_LOCK:
                left = _OPEN.get(self.local_path, 1) - 1
                if left > 0:
                    _OPEN[self.local_path] = left
                else:
                    _OPEN.pop(self.local_path, None)


def _text(value: bytes) -> str | bytes:
    """TEXT as str; text that is not UTF-8 (an attacker may write the file) stays bytes, for
    the reader to refuse as an invalid ledger rather than fail in the middle of a query."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _read_nodes(
    conn: sqlite3.Connection, location: str, ids: Sequence[tuple[int, int]]
) -> list[bytes]:
    """Nodes by ID, in one query (an append reads the peaks every time, a proof its path)."""
    rows: list[Any] = []
    with _db_errors(location):
        for sql, args in _Q.nodes(ids):
            rows.extend(conn.execute(sql, args).fetchall())
    return node_hashes(location, ids, rows)


def _read_tiled(
    conn: sqlite3.Connection, location: str, ids: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Index nodes by ID, in one query (a path's nodes lie on few pages: `tile_key`)."""
    rows: list[Any] = []
    with _db_errors(location):
        for sql, args in _Q.index_tiled(ids):
            rows.extend(conn.execute(sql, args).fetchall())
    return index_rows(location, rows)


def _tiled_rows(location: str, rows: Iterable[Sequence[Any]]) -> dict[tuple[int, int], bytes]:
    """Rows of the whole table (tile, depth, prefix, record), each node checked as a read
    checks it and filed under its own tile: a node filed twice (under another tile too)
    would let the nodes a full audit vouches for differ from those proofs are served from."""
    rows = list(rows)
    out = index_rows(location, [row[1:] for row in rows])  # types and sizes checked
    for tile, depth, prefix, _ in rows:
        if tile != tile_key(depth, int.from_bytes(prefix, "big")):
            raise LedgerInvalid(
                f"{location}: stored index node (depth {depth}, prefix "
                f"{int.from_bytes(prefix, 'big'):#x}) is filed under another tile"
            )
    return out


def _read_node_rows(
    conn: sqlite3.Connection, location: str, ids: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Index nodes by ID from a schema-4 ledger's rows (unfiled), in one query."""
    rows: list[Any] = []
    with _db_errors(location):
        for sql, args in _Q.index_nodes(ids):
            rows.extend(conn.execute(sql, args).fetchall())
    return index_rows(location, rows)


def _write_tiled(conn: sqlite3.Connection, records: Mapping[tuple[int, int], bytes]) -> None:
    """Write index nodes, each filed under its tile."""
    conn.executemany(
        "INSERT OR REPLACE INTO index_tiled (tile, depth, prefix, record) VALUES (?, ?, ?, ?)",
        [(tile_key(d, p), d, prefix_bytes(d, p), bytes(r)) for (d, p), r in records.items()],
    )


class _SQLiteWriter(Writer):
    def __init__(self, conn: sqlite3.Connection, location: str) -> None:
        self._conn = conn
        self._location = location
        #: blocks this transaction wrote
        self.blocks = 0

    def tip(self) -> Tip:
        conn = self._conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        row = conn.execute(_Q.last_block).fetchone()
        if row is not None and type(row[0]) is not int:
            raise LedgerInvalid(f"{self._location}: a block is stored under a non-integer index")
        size = 0 if row is None else row[0] + 1
        last = None if row is None else stored_text_block(size - 1, row[1]).data
        for key in ("checkpoint", "origin"):
            if not isinstance(meta.get(key, ""), str):
                raise LedgerInvalid(f"{self._location}: the stored {key} is not text")
        return Tip(
            size=size,
            last_data=last,
            peaks=tuple(_read_nodes(conn, self._location, Frontier.peak_positions(size))),
            checkpoint=meta.get("checkpoint"),
            origin=meta.get("origin"),
        )

    def head(self) -> tuple[int, str | None]:
        size, checkpoint = self._conn.execute(_Q.head).fetchone()
        return int(size), checkpoint

    def latest_versions(self, names: Sequence[str]) -> dict[str, int]:
        found = {name: 0 for name in names}
        for sql, args in _Q.latest_versions(list(found)):
            for name, version in self._conn.execute(sql, args).fetchall():
                if name in found and type(version) is int:
                    found[name] = version
        return found

    def latest_version(self, name: str) -> int:
        row = self._conn.execute(_Q.latest_version, (name,)).fetchone()
        return int(row[0] or 0)

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return _read_tiled(self._conn, self._location, ids)  # upgraded when the write began

    def append_many(
        self,
        items: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        if not items:
            return
        self._insert_blocks(items)
        self._insert_nodes(nodes)
        self.set_checkpoint(checkpoint, index)

    def set_checkpoint(
        self, checkpoint: str, index: Mapping[tuple[int, int], bytes] | None = None
    ) -> None:
        if index:
            _write_tiled(self._conn, index)
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (checkpoint,))

    def _insert_blocks(self, items: Sequence[tuple[dict[str, Any], bytes]]) -> None:
        self.blocks += len(items)
        try:
            self._conn.executemany(
                "INSERT INTO blocks (idx, body) VALUES (?, ?)",
                [(b["index"], data.decode()) for b, data in items],
            )
        except sqlite3.IntegrityError as exc:
            if "blocks.name" not in str(exc):
                raise
            # the rows before the refused one are in (the transaction is rolled back by
            # the caller): the first block whose name and version another row holds
            for block, _ in items:
                clash = self._conn.execute(
                    "SELECT 1 FROM blocks WHERE name = ? AND version = ? AND idx <> ?",
                    (block.get("name"), block.get("version"), block["index"]),
                ).fetchone()
                if clash is not None:
                    raise duplicate_version(
                        self._location, block.get("name"), block.get("version")
                    ) from None
            raise

    def _insert_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
        )

    def initialise(self, origin: str, checkpoint: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('origin', ?), ('checkpoint', ?)",
            (origin, checkpoint),
        )

    def import_blocks(
        self,
        blocks: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        origin: str,
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        self.initialise(origin, checkpoint)
        self._insert_blocks(blocks)
        self._insert_nodes(nodes)
        self.set_checkpoint(checkpoint, index)
