"""`modelchain audit` says which kind of audit it did; `modelchain migrate` signs the index of
a ledger made before it (schema 3), as its first append does, and older checkpoints stay
accepted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from modelchain.core.index import root_from_extensions
from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint
from modelchain.ledgers import Ledger
from modelchain.log.home import Home
from modelchain.log.store.sqlite import SCHEMA_VERSION
from tests.conftest import assert_clean_error, assert_no_traceback

DB = "ledger.db"


def _ok(result):  # type: ignore[no-untyped-def]
    assert_no_traceback(result)
    assert result.code == 0, result
    return result


def _meta(loc: Path, key: str) -> str:
    conn = sqlite3.connect(loc)
    try:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(value)
    finally:
        conn.close()


def _registered(workdir: Path, home: Path, *names: str) -> Path:
    loc = workdir / DB
    with Ledger.open(loc, home=Home(home), create=True) as ledger:
        for i, name in enumerate(names):
            path = workdir / name
            path.write_bytes(b"weights %d" % i)
            ledger.register(path)
    return loc


def _as_schema_3(loc: Path, home: Home) -> str:
    """Make the ledger one of before the index: schema 3 (no index table) and its checkpoint
    as modelchain signed it then (no index line), the only one its verifier accepted."""
    note = _meta(loc, "checkpoint")
    signed = Checkpoint.parse(parse_note(note).text)
    old = Checkpoint(signed.origin, signed.size, signed.root_hash)
    old_note = sign_checkpoint(old, home.operator_signer().with_name(signed.origin))
    conn = sqlite3.connect(loc, isolation_level=None)
    conn.executescript(
        "BEGIN; DROP TABLE index_tiled; UPDATE meta SET value = '3' WHERE key = 'schema';COMMIT;"
    )
    conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (old_note,))
    conn.close()
    home.forget(signed.origin)
    home.accept_checkpoint(signed.origin, signed.size, old_note)
    return old_note


def _signs_index(loc: Path) -> bool:
    return (
        root_from_extensions(Checkpoint.parse(parse_note(_meta(loc, "checkpoint")).text).extensions)
        is not None
    )


def test_audit_says_which_kind_it_did(run, workdir: Path, home: Path) -> None:
    loc = _registered(workdir, home, "a.bin", "b.bin")
    first = _ok(run("--ledger", loc, "audit"))
    assert "checked:    every block" in first.stdout
    _registered(workdir, home, "c.bin")
    second = _ok(run("--ledger", loc, "audit"))
    assert "checked:    blocks 2..2 since the audit of 2 blocks" in second.stdout
    _registered(workdir, home, "d.bin")
    report = json.loads(_ok(run("--ledger", loc, "audit", "--json")).stdout)
    assert report["audit"] == "incremental" and report["audited_since"] == 3
    assert report["checked"] == "blocks 3..3 since the audit of 3 blocks"
    full = json.loads(_ok(run("--ledger", loc, "audit", "--full", "--json")).stdout)
    assert full["audit"] == "full" and full["checked"] == "every block" and full["index"]


def test_migrate_signs_the_index_of_a_schema_3_ledger(run, workdir: Path, home: Path) -> None:
    loc = _registered(workdir, home, "a.bin", "b.bin", "a.bin")
    verifier = Home(home.parent / f"{home.name}-auditor")  # another verifier, old checkpoint
    old_note = _as_schema_3(loc, Home(home))
    old = Checkpoint.parse(parse_note(old_note).text)
    verifier.accept_checkpoint(old.origin, old.size, old_note)
    verifier.remember_location(str(loc), old.origin)

    before = _ok(run("--ledger", loc, "audit"))
    assert "none yet" in before.stdout and "modelchain migrate" in before.stdout
    assert json.loads(_ok(run("--ledger", loc, "audit", "--json")).stdout)["index"] is False
    _ok(run("--ledger", loc, "verify", "a.bin"))  # by a full audit: no index to prove by
    assert _meta(loc, "schema") == "3" and not _signs_index(loc)

    done = _ok(run("--ledger", loc, "migrate"))
    assert done.stdout.strip() == "Signed the index of 3 blocks: a new checkpoint of the same tree"
    assert _meta(loc, "schema") == SCHEMA_VERSION and _signs_index(loc)
    again = json.loads(_ok(run("--ledger", loc, "migrate", "--json")).stdout)
    assert again["migrated"] is False and again["message"].startswith("Already migrated")

    assert json.loads(_ok(run("--ledger", loc, "audit", "--full", "--json")).stdout)["index"]
    key = Home(home).operator_signer().with_name(old.origin).verifier()
    with Ledger.open(loc, home=verifier) as ledger:
        report = ledger.audit(
            keys=[key]
        )  # the old checkpoint it accepted is extended by the new one
        assert report.previously_trusted == 3 and report.indexed
    _ok(run("--ledger", loc, "verify", "a.bin"))


def test_the_first_append_migrates_a_schema_3_ledger(run, workdir: Path, home: Path) -> None:
    loc = _registered(workdir, home, "a.bin", "b.bin")
    _as_schema_3(loc, Home(home))
    _registered(workdir, home, "c.bin")
    assert _meta(loc, "schema") == SCHEMA_VERSION and _signs_index(loc)
    report = json.loads(_ok(run("--ledger", loc, "audit", "--full", "--json")).stdout)
    assert report["size"] == 3 and report["index"]


def test_migrate_refuses_a_server_and_a_missing_ledger(run, workdir: Path) -> None:
    assert_clean_error(
        run("--ledger", "https://ledger.example:8443", "migrate"), 2, "server's ledger"
    )
    assert_clean_error(run("--ledger", workdir / "none.db", "migrate"), None, "no ledger")
    assert not (workdir / "none.db").exists()
