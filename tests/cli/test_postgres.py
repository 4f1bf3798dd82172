"""The PostgreSQL backend end to end: the real CLI on a fresh schema, tampering with SQL, many
processes at once, and every way of pointing at a server that is not there.

Tests that need a server use the `pg_ledger` fixture (conftest.py): they run whenever
MODELCHAIN_TEST_PG_DSN is set and are skipped, with that reason, when it is not.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, assert_clean_error, assert_ok
from conftest import pg_schema as _schema
from conftest import pg_sql as sql
from hypothesis import given
from hypothesis import strategies as st

from modelchain.core.errors import LedgerInvalid, LedgerUnreadable, UsageError
from modelchain.ledgers import Ledger
from modelchain.ledgers.locations import open_store
from modelchain.log.home import Home
from modelchain.log.store.postgres import SCHEMA_VERSION, PgLocation


def _hex(i: int) -> str:
    return f"{i:064x}"


def _build(location: str, count: int) -> None:
    """A ledger of `count` blocks, made through the library with MODELCHAIN_HOME's key."""
    with Ledger.open(location, create=True) as ledger:
        ledger.init()
        for i in range(count):
            ledger.append(name=f"m{i % 2}", model_hash=_hex(i), size=i)


# -- the command line ------------------------------------------------------------------------


def test_init_register_verify_audit_through_the_cli(
    pg_ledger: str, run: Run, model: Path, home: Path
) -> None:
    out = json.loads(assert_ok(run("--ledger", pg_ledger, "init", "--json")).stdout)
    schema = _schema(pg_ledger)
    assert out["ledger"] == PgLocation(pg_ledger).display
    with sql(pg_ledger) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        meta = dict(conn.execute(f'SELECT key, value FROM "{schema}".meta').fetchall())
    assert tables == {"blocks", "nodes", "index_nodes", "meta"}
    assert meta["schema"] == str(SCHEMA_VERSION) and meta["origin"].startswith("modelchain.local/")

    assert_ok(run("--ledger", pg_ledger, "register", model.name))
    assert_ok(run("--ledger", pg_ledger, "register", model.name, "--name", "other"))
    verified = json.loads(
        assert_ok(run("--ledger", pg_ledger, "verify", model.name, "--json")).stdout
    )
    assert verified["verified"] is True and verified["version"] == 1
    audit = json.loads(assert_ok(run("--ledger", pg_ledger, "audit", "--json")).stdout)
    assert audit["valid"] is True and audit["size"] == 2
    log = assert_ok(run("--ledger", pg_ledger, "log", "--json")).stdout
    assert "other" in log

    model.write_bytes(model.read_bytes() + b"x")
    result = run("--ledger", pg_ledger, "verify", model.name)
    assert_clean_error(result, 1, model.name)


def test_two_schemas_are_two_ledgers(pg_ledger: str, pg_dsn: str, home: Path) -> None:
    other = pg_ledger.replace("schema=", "schema=b")
    try:
        _build(pg_ledger, 3)
        _build(other, 1)
        with Ledger.open(pg_ledger) as a, Ledger.open(other) as b:
            assert (a.audit().size, b.audit().size) == (3, 1)
            assert a.audit().origin != b.audit().origin
    finally:
        with sql(pg_ledger) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{_schema(other)}" CASCADE')


def test_export_to_json_and_import_back(pg_ledger: str, run: Run, workdir: Path) -> None:
    _build(pg_ledger, 4)
    assert_ok(run("--ledger", pg_ledger, "export", "copy.json"))
    target = pg_ledger.replace("schema=", "schema=imp")
    try:
        out = json.loads(assert_ok(run("--ledger", target, "import", "copy.json", "--json")).stdout)
        assert out["copied"] == 4
        audit = json.loads(assert_ok(run("--ledger", target, "audit", "--json")).stdout)
        assert audit["size"] == 4
    finally:
        with sql(pg_ledger) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{_schema(target)}" CASCADE')


# -- tampering, as someone with write access to the database --------------------------------


def test_edited_block_body_is_named_by_audit(pg_ledger: str, run: Run, home: Path) -> None:
    _build(pg_ledger, 5)
    with sql(pg_ledger) as conn:
        conn.execute(
            f'UPDATE "{_schema(pg_ledger)}".blocks SET body = replace(body, %s, %s) WHERE idx = 3',
            (_hex(3), _hex(99)),
        )
    line = assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "block 3")
    assert "current_hash" in line


def test_deleted_last_block_is_detected(pg_ledger: str, run: Run, home: Path) -> None:
    _build(pg_ledger, 5)
    with sql(pg_ledger) as conn:
        conn.execute(f'DELETE FROM "{_schema(pg_ledger)}".blocks WHERE idx = 4')
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "deleted")
    assert_clean_error(run("--ledger", pg_ledger, "register", __file__), 1)
    assert open_store(pg_ledger).size() == 4


def test_edited_merkle_node_is_detected(pg_ledger: str, run: Run, home: Path) -> None:
    _build(pg_ledger, 5)
    with sql(pg_ledger) as conn:
        conn.execute(
            f'UPDATE "{_schema(pg_ledger)}".nodes SET hash = %s WHERE level = 1 AND idx = 0',
            (b"\x00" * 32,),
        )
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "Merkle node (1, 0)")


def test_rollback_to_an_older_signed_state(pg_ledger: str, run: Run, home: Path) -> None:
    """Restore an older, validly signed state with SQL: the verifier that saw the newer one
    (trust state keyed by the password-free location, schema included) refuses it."""
    _build(pg_ledger, 3)
    schema = _schema(pg_ledger)
    with sql(pg_ledger) as conn:
        saved = {
            table: conn.execute(f'SELECT * FROM "{schema}".{table}').fetchall()
            for table in ("nodes", "meta")
        }
        saved["blocks"] = conn.execute(f'SELECT idx, body FROM "{schema}".blocks').fetchall()
    with Ledger.open(pg_ledger) as ledger:
        ledger.append(name="late", model_hash=_hex(77))
        assert ledger.audit().size == 4
    with sql(pg_ledger) as conn, conn.transaction():
        for table, rows in saved.items():
            conn.execute(f'DELETE FROM "{schema}".{table}')
            columns = "(idx, body)" if table == "blocks" else ""
            with conn.cursor() as cur:
                marks = ", ".join(["%s"] * len(rows[0]))
                cur.executemany(f'INSERT INTO "{schema}".{table} {columns} VALUES ({marks})', rows)
    with Ledger.open(pg_ledger) as ledger:  # the old state on its own is a valid ledger...
        with pytest.raises(LedgerInvalid, match="rolled back"):
            ledger.audit()
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "rolled back")


# -- concurrency -------------------------------------------------------------------------------


def _appender(args: tuple[str, str, int, int]) -> None:
    location, home, worker, count = args
    with Ledger.open(location, home=Home(home)) as ledger:
        for i in range(count):
            ledger.append(name=f"w{worker}", model_hash=_hex(worker * 1000 + i))


@pytest.mark.slow
def test_eight_processes_append_400_blocks(pg_ledger: str, tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    with Ledger.open(pg_ledger, home=home, create=True) as ledger:
        ledger.init()
    workers, each = 8, 50
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_appender, [(pg_ledger, str(home.path), w, each) for w in range(workers)])
    with Ledger.open(pg_ledger, home=home) as ledger:
        assert ledger.audit().size == workers * each
        blocks = list(ledger.blocks())
    assert [b.index for b in blocks] == list(range(workers * each))
    for b, prev in zip(blocks[1:], blocks, strict=False):
        assert b.previous_hash == prev.current_hash
    for w in range(workers):
        assert [b.version for b in blocks if b.name == f"w{w}"] == list(range(1, each + 1))


def test_writers_queue_on_the_database_lock(pg_ledger: str, tmp_path: Path) -> None:
    """While another session holds the ledger's lock row, an append waits; it then lands
    after the other session's write, never beside it."""
    home = Home(tmp_path / "h")
    with Ledger.open(pg_ledger, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(1))
    schema = _schema(pg_ledger)
    done: list[int] = []
    with sql(pg_ledger) as conn, conn.transaction():
        conn.execute(f"SELECT 1 FROM \"{schema}\".meta WHERE key = 'format' FOR UPDATE")

        def append() -> None:
            with Ledger.open(pg_ledger, home=home) as ledger:
                done.append(ledger.append(name="b", model_hash=_hex(2)).index)

        thread = threading.Thread(target=append)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and not done  # queued behind the lock
    thread.join(timeout=30)
    assert done == [1]


# -- bad locations and servers -----------------------------------------------------------------


def test_unreachable_server_is_a_clean_error(run: Run) -> None:
    for command in (["audit"], ["init"], ["log", "--json"]):
        result = run("--ledger", "postgresql://postgres:s3cret@127.0.0.1:1/test", *command)
        line = assert_clean_error(result, 2, "cannot open postgresql://postgres@127.0.0.1:1/")
        assert "s3cret" not in result.stderr + result.stdout, line


def test_wrong_database_is_a_clean_error(pg_dsn: str, run: Run) -> None:
    base = pg_dsn.split("?", 1)[0].rsplit("/", 1)[0]
    result = run("--ledger", f"{base}/modelchain_no_such_db?schema=x", "audit")
    assert_clean_error(result, 2, "modelchain_no_such_db", "does not exist")


def test_missing_schema_and_bad_schema_names(pg_ledger: str, run: Run) -> None:
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 2, "no ledger at", "modelchain init")
    for bad in ("Upper", "1digit", "semi;colon", "x" * 64, ""):
        loc = pg_ledger.split("schema=")[0] + f"schema={bad}"
        assert_clean_error(run("--ledger", loc, "audit"), 2, "schema")
    with sql(pg_ledger) as conn:
        schema = _schema(pg_ledger)
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".meta (key text, value text)')
    assert_clean_error(run("--ledger", pg_ledger, "init"), 2, "not a modelchain ledger")


def test_newer_schema_is_refused_older_is_migrated_by_init(
    pg_ledger: str, run: Run, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelchain.log.store import postgres

    _build(pg_ledger, 2)
    schema = _schema(pg_ledger)

    def set_version(v: int) -> None:
        with sql(pg_ledger) as conn:
            conn.execute(f"UPDATE \"{schema}\".meta SET value = %s WHERE key = 'schema'", (str(v),))

    set_version(SCHEMA_VERSION + 1)
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 2, "not supported", "upgrade")
    set_version(SCHEMA_VERSION - 1)
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 2, "modelchain migrate")
    monkeypatch.delitem(postgres.MIGRATIONS, SCHEMA_VERSION - 1)  # a version with no step
    with pytest.raises(LedgerUnreadable, match="no migration"):
        open_store(pg_ledger, create=True)
    steps: list[int] = []

    def step(conn: Any, s: str) -> None:
        steps.append(1)
        # a real step also changes the DDL the schema is checked against on open; this
        # one leaves the structure as it is
        conn.execute(f"COMMENT ON TABLE {s}.blocks IS 'migrated'")

    monkeypatch.setitem(postgres.MIGRATIONS, SCHEMA_VERSION - 1, step)
    open_store(pg_ledger, create=True).close()
    assert steps == [1]
    with Ledger.open(pg_ledger) as ledger:  # migrated, and the ledger is intact
        assert ledger.audit().size == 2


# -- locations, without a server -------------------------------------------------------------


_PASSWORD = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="@/?#%"), min_size=1, max_size=20
).filter(lambda p: p.strip() and p not in ("postgres", "db", "host", "schema"))


@given(password=_PASSWORD, schema=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True))
def test_location_keeps_the_password_for_libpq_only(password: str, schema: str) -> None:
    from urllib.parse import quote

    quoted = quote(password, safe="")
    loc = PgLocation(f"postgres://ml:{quoted}@db.example:5433/registry?schema={schema}&x=1")
    assert loc.schema == schema
    assert loc.display == f"postgresql://ml@db.example:5433/registry?x=1&schema={schema}"
    assert f":{quoted}@" in loc.conninfo and "schema=" not in loc.conninfo


def test_location_defaults_and_query_passwords() -> None:
    loc = PgLocation("postgresql:///test?host=/run/postgresql&password=pw")
    assert loc.schema == "modelchain"
    assert loc.conninfo == "postgresql:///test?host=/run/postgresql&password=pw"
    assert loc.display == "postgresql:///test?host=/run/postgresql&schema=modelchain"
    with pytest.raises(UsageError, match="only once"):
        PgLocation("postgresql://h/db?schema=a&schema=b")


def test_missing_driver_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if modelchain[postgres] were absent
    from modelchain.core.errors import command_line_text

    with pytest.raises(LedgerUnreadable, match=r"install the 'postgres' extra$") as caught:
        open_store("postgresql://postgres@127.0.0.1:1/test")
    assert re.search(  # the command line says how, in the checkout's commands
        r"install the 'postgres' extra from the modelchain checkout: "
        r".*pip install -e '\.\[postgres\]'",
        command_line_text(caught.value),
    )


def test_the_core_does_not_import_psycopg() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modelchain.cli.commands, modelchain.ledgers; print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- node reads ------------------------------------------------------------------------------


def test_a_proof_and_the_peaks_are_one_query_each(
    pg_ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from modelchain.core import merkle
    from modelchain.log.store import StoreSubtrees

    _build(pg_ledger, 37)
    store = open_store(pg_ledger)
    leaves = [merkle.leaf_hash(s.data) for s in store.blocks()]
    statements: list[str] = []
    execute = psycopg.Connection.execute

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    assert merkle.inclusion_proof(5, StoreSubtrees(store, 37)) == merkle.inclusion_proof(5, leaves)
    assert len(statements) == 1  # the whole proof: one round trip
    assert merkle.consistency_proof(11, StoreSubtrees(store, 37)) == merkle.consistency_proof(
        11, leaves
    )
    with store.writer() as w:
        tip = w.tip()
    assert merkle.Frontier(tip.size, list(tip.peaks)).root() == merkle.root(leaves)
    node_reads = [s for s in statements if "unnest(" in s and ".nodes n" in s]
    assert len(node_reads) == 3
    store.close()
