"""Attacks on a PostgreSQL ledger by someone who can write its schema (but not the operator
key nor MODELCHAIN_HOME): the service and `audit` must not believe the database.

- SQL rollback to an older, genuinely signed state while the service runs: the service
  answers 503 and the operator's `audit` exits 1 (the trust state was written before the
  newer checkpoint was ever published, not lazily by the running service).
- A lookup column turned writable (`DROP EXPRESSION`) and changed to hide the newest
  version, and other changes of the schema's definition: refused when the store is opened;
  audit checks every lookup column against the signed body as well.
- Another schema's log renamed into place with its origin row removed: refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, assert_clean_error, assert_ok
from conftest import pg_schema as _schema
from conftest import pg_sql as sql
from server_util import init_ledger, running_server

from modelchain.core.errors import LedgerInvalid, RollbackError
from modelchain.ledgers import Ledger
from modelchain.ledgers.locations import open_store
from modelchain.log.home import Home


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _save(location: str) -> dict[str, list[tuple[Any, ...]]]:
    schema = _schema(location)
    with sql(location) as conn:
        return {
            "meta": conn.execute(f'SELECT key, value FROM "{schema}".meta').fetchall(),
            "nodes": conn.execute(f'SELECT level, idx, hash FROM "{schema}".nodes').fetchall(),
            "blocks": conn.execute(f'SELECT idx, body FROM "{schema}".blocks').fetchall(),
        }


def _restore(location: str, saved: dict[str, list[tuple[Any, ...]]]) -> None:
    """Put an older state back with SQL, in one transaction."""
    schema = _schema(location)
    columns = {"meta": "(key, value)", "nodes": "(level, idx, hash)", "blocks": "(idx, body)"}
    with sql(location) as conn, conn.transaction():
        for table, rows in saved.items():
            conn.execute(f'DELETE FROM "{schema}".{table}')
            marks = ", ".join(["%s"] * len(rows[0]))
            with conn.cursor() as cur:
                cur.executemany(
                    f'INSERT INTO "{schema}".{table} {columns[table]} VALUES ({marks})', rows
                )


def _build(location: str, names: list[str]) -> None:
    with Ledger.open(location, create=True) as ledger:
        ledger.init()
        for i, name in enumerate(names):
            ledger.append(name=name, model_hash=_digest(f"{name}-{i}"), size=i)


# -- rollback under a running service ---------------------------------------------------------


def test_sql_rollback_under_a_running_service_is_refused_by_it_and_by_audit(
    pg_ledger: str, tmp_path: Path, run: Run
) -> None:
    srv_home = tmp_path / "srv-home"
    init_ledger(pg_ledger, srv_home)
    with running_server(pg_ledger, srv_home) as server, server.client() as client:
        for i in range(3):
            answer = client.post(
                "/entries",
                json={"name": "m", "digest": _digest(f"v{i}")},
                headers=server.auth(),
            )
            assert answer.status_code == 201, answer.text
        older = _save(pg_ledger)
        for i in range(3, 5):
            answer = client.post(
                "/entries",
                json={"name": "m", "digest": _digest(f"v{i}")},
                headers=server.auth(),
            )
            assert answer.status_code == 201, answer.text
        assert client.get("/health").json()["size"] == 5
        newest = {"name": "m", "digest": _digest("v4")}
        assert client.post("/verify", json=newest).json()["verified"] is True

        _restore(pg_ledger, older)  # a genuinely signed state of 3 blocks

        for method, path, body in [
            ("GET", "/checkpoint", None),
            ("GET", "/health", None),
            ("GET", "/log", None),
            ("GET", "/entries/2", None),
            ("POST", "/verify", {"name": "m", "digest": _digest("v2")}),
        ]:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 503, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "ledger_unavailable"
            assert "rolled back" in error["message"], error
        # while the service still runs, the operator's audit already refuses it
        assert_clean_error(
            run("--ledger", pg_ledger, "audit", MODELCHAIN_HOME=str(srv_home)), 1, "rolled back"
        )
        # the service itself refuses to build on the old state
        answer = client.post(
            "/entries", json={"name": "m", "digest": _digest("x")}, headers=server.auth()
        )
        assert answer.status_code == 503, answer.text
    assert_clean_error(
        run("--ledger", pg_ledger, "audit", MODELCHAIN_HOME=str(srv_home)), 1, "rolled back"
    )


def test_an_append_is_trusted_once_committed_before_it_returns(pg_ledger: str, home: Path) -> None:
    """The trust state holds a new checkpoint from the moment its transaction commits, before
    the append returns (so before a service answers): a rollback after that is refused. It
    is not written before the commit: a writer killed in between would otherwise leave the
    trust state ahead of a ledger that never held the checkpoint, a false rollback."""
    _build(pg_ledger, ["a"])
    seen: list[str | None] = []
    with Ledger.open(pg_ledger) as ledger:
        origin = ledger.signed_checkpoint().origin
        before = Home(home).trusted_checkpoint(origin)
        store = ledger.store
        real = store.writer

        @contextmanager
        def spy() -> Iterator[Any]:
            with real() as w:
                yield w
                seen.append(Home(home).trusted_checkpoint(origin))  # not committed yet

        store.writer = spy  # type: ignore[method-assign]
        ledger.append(name="b", model_hash=_digest("b"))
        store.writer = real  # type: ignore[method-assign]
        note = ledger.checkpoint()
        assert Home(home).trusted_checkpoint(origin) == note  # trusted once it returned
    assert seen == [before]  # ...and not while the transaction was still open
    with sql(pg_ledger) as conn:  # a rollback to the state before is refused
        conn.execute(f'DELETE FROM "{_schema(pg_ledger)}".blocks WHERE idx >= 1')
        conn.execute(
            f"UPDATE \"{_schema(pg_ledger)}\".meta SET value = %s WHERE key = 'checkpoint'",
            (before,),
        )
    with pytest.raises(RollbackError, match="rolled back"):
        with Ledger.open(pg_ledger) as ledger:
            ledger.audit()


def test_a_failed_commit_leaves_the_trust_state_as_it_was(pg_ledger: str, home: Path) -> None:
    _build(pg_ledger, ["a"])
    with Ledger.open(pg_ledger) as ledger:
        origin = ledger.signed_checkpoint().origin
        before = Home(home).trusted_checkpoint(origin)
        store = ledger.store
        real = store.writer

        @contextmanager
        def failing() -> Iterator[Any]:
            with real() as w:
                yield w
                raise OSError("the connection dropped at commit")

        store.writer = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            ledger.append(name="b", model_hash=_digest("b"))
        assert Home(home).trusted_checkpoint(origin) == before
        store.writer = real  # type: ignore[method-assign]
        assert ledger.audit().size == 1


# -- the schema's definition -------------------------------------------------------------------


def test_writable_lookup_column_hiding_the_newest_version_is_refused(
    pg_ledger: str, run: Run, home: Path, workdir: Path
) -> None:
    _build(pg_ledger, ["m", "m", "other"])
    schema = _schema(pg_ledger)
    assert_ok(run("--ledger", pg_ledger, "audit"))
    with sql(pg_ledger) as conn:
        conn.execute(f'ALTER TABLE "{schema}".blocks ALTER COLUMN name DROP EXPRESSION')
        conn.execute(f"UPDATE \"{schema}\".blocks SET name = 'hidden' WHERE idx = 1")
    with pytest.raises(LedgerInvalid, match="not the ones modelchain creates"):
        open_store(pg_ledger)
    out = assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "modelchain creates")
    assert "generated" in out
    model = workdir / "m.bin"
    model.write_bytes(b"not registered")
    assert_clean_error(run("--ledger", pg_ledger, "verify", str(model), "--name", "m"), 1)


def test_audit_checks_every_lookup_column_even_past_the_open_check(
    pg_ledger: str, home: Path
) -> None:
    """Defence in depth: with the schema changed after the check on open (under an open
    ledger, as under a running service), a full audit still compares every lookup column with
    the signed body (an incremental one reads only the blocks appended since its last audit)."""
    _build(pg_ledger, ["m", "m"])
    schema = _schema(pg_ledger)
    with Ledger.open(pg_ledger) as ledger:
        assert ledger.audit().size == 2  # the schema check on open has passed
        with sql(pg_ledger) as conn:
            for column in ("name", "version", "model_hash"):
                conn.execute(f'ALTER TABLE "{schema}".blocks ALTER COLUMN {column} DROP EXPRESSION')
        assert ledger.audit().size == 2  # plain columns, still right: valid
        for change in ("name = 'hidden'", "version = 7", f"model_hash = '{_digest('x')}'"):
            with sql(pg_ledger) as conn:
                conn.execute(f'UPDATE "{schema}".blocks SET {change} WHERE idx = 1')
            with pytest.raises(LedgerInvalid, match="block 1: its lookup columns"):
                ledger.audit(full=True)
            with sql(pg_ledger) as conn:  # put the right values back for the next change
                conn.execute(
                    f"UPDATE \"{schema}\".blocks SET name = body::json ->> 'name', "
                    "version = (body::json ->> 'version')::bigint, "
                    "model_hash = body::json ->> 'model_hash'"
                )
            assert ledger.audit(full=True).size == 2


_TAMPERING = {
    "generated column made plain": "ALTER TABLE {s}.blocks ALTER COLUMN model_hash DROP EXPRESSION",
    "trigger": (
        "CREATE FUNCTION {s}.quiet() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RETURN NEW; END $$; "
        "CREATE TRIGGER quiet BEFORE INSERT ON {s}.blocks FOR EACH ROW EXECUTE FUNCTION {s}.quiet()"
    ),
    "rule": "CREATE RULE keep AS ON DELETE TO {s}.blocks DO INSTEAD NOTHING",
    "row security policy": (
        "ALTER TABLE {s}.blocks ENABLE ROW LEVEL SECURITY; "
        "CREATE POLICY few ON {s}.blocks USING (idx < 1)"
    ),
    "row security forced": "ALTER TABLE {s}.blocks FORCE ROW LEVEL SECURITY",
    "inherited rows": "CREATE TABLE {s}.more () INHERITS ({s}.blocks)",
    "dropped index": "DROP INDEX {s}.blocks_by_hash",
    "dropped constraint": "ALTER TABLE {s}.blocks DROP CONSTRAINT blocks_name_version_key",
    "dropped check": "ALTER TABLE {s}.blocks DROP CONSTRAINT blocks_idx_check",
    "nullable column": "ALTER TABLE {s}.nodes ALTER COLUMN hash DROP NOT NULL",
    "added column": "ALTER TABLE {s}.meta ADD COLUMN note text DEFAULT 'x'",
    "extra table": "CREATE TABLE {s}.shadow (idx bigint)",
}


@pytest.mark.parametrize("change", list(_TAMPERING), ids=list(_TAMPERING))
def test_any_change_to_the_schema_definition_is_refused_on_open(
    pg_ledger: str, run: Run, home: Path, change: str
) -> None:
    _build(pg_ledger, ["m"])
    with sql(pg_ledger) as conn:
        conn.execute(_TAMPERING[change].format(s=f'"{_schema(pg_ledger)}"'))
    assert_clean_error(run("--ledger", pg_ledger, "audit"), 1, "not the ones modelchain creates")
    with pytest.raises(LedgerInvalid, match="refusing it as tampered"):
        open_store(pg_ledger, create=True)  # `init` does not accept it either


def test_a_service_refuses_to_start_on_a_changed_schema(pg_ledger: str, tmp_path: Path) -> None:
    srv_home = tmp_path / "srv-home"
    init_ledger(pg_ledger, srv_home)
    with sql(pg_ledger) as conn:
        conn.execute(f'CREATE RULE keep AS ON DELETE TO "{_schema(pg_ledger)}".blocks DO NOTHING')
    with pytest.raises(AssertionError, match="modelchain creates"):
        with running_server(pg_ledger, srv_home):
            pass


# -- another log put in place -------------------------------------------------------------------


def test_another_schemas_log_renamed_into_place_without_origin_is_refused(
    pg_ledger: str, run: Run, home: Path
) -> None:
    other = pg_ledger.replace("schema=", "schema=b")
    _build(pg_ledger, ["m"])
    assert_ok(run("--ledger", pg_ledger, "audit"))  # this location is remembered as log A
    try:
        _build(other, ["m", "m", "x"])  # log B, same operator key, and larger
        assert_ok(run("--ledger", other, "audit"))
        with sql(pg_ledger) as conn, conn.transaction():
            conn.execute(f'DROP SCHEMA "{_schema(pg_ledger)}" CASCADE')
            conn.execute(f'ALTER SCHEMA "{_schema(other)}" RENAME TO "{_schema(pg_ledger)}"')
            conn.execute(f"DELETE FROM \"{_schema(pg_ledger)}\".meta WHERE key = 'origin'")
        # checked against the trust state of the log remembered here, not of the one put
        # in its place
        assert_clean_error(run("--ledger", pg_ledger, "audit"), 1)
    finally:
        with sql(pg_ledger) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{_schema(other)}" CASCADE')


def test_the_answer_to_a_refused_checkpoint_is_quick_after_the_first(
    pg_ledger: str, home: Path
) -> None:
    """A service does not wait again on every request for a state it already refused."""
    import time

    _build(pg_ledger, ["a", "b"])
    older = _save(pg_ledger)
    with Ledger.open(pg_ledger) as ledger:
        ledger.append(name="c", model_hash=_digest("c"))
    _restore(pg_ledger, older)
    with Ledger.open(pg_ledger) as ledger:
        for _ in range(2):
            with pytest.raises(LedgerInvalid, match="rolled back"):
                ledger.read_checkpoint()
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(LedgerInvalid, match="rolled back"):
                ledger.read_checkpoint()
        assert time.monotonic() - started < 1.0
