"""Whoever can write a local ledger's files tries to make `verify` (O(log n), by the signed
index) accept an older version, a dropped name, or a node of their own: each is refused,
exit 1, in one line naming why. (A server that lies: tests/service.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import Run, assert_clean_error, assert_ok, without_index

from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint
from modelchain.log.home import Home


@pytest.fixture
def ledger(run: Run, workdir: Path) -> Path:
    """m.bin v1, v2, v3 and other names around them, in l.db."""
    for i in range(3):
        (workdir / "m.bin").write_bytes(f"weights v{i + 1}".encode())
        assert_ok(run("--ledger", "l.db", "register", "m.bin", "--no-provenance"))
        (workdir / f"o{i}.bin").write_bytes(f"other {i}".encode())
        assert_ok(run("--ledger", "l.db", "register", f"o{i}.bin", "--no-provenance"))
    return workdir / "l.db"


def _sql(path: Path, *statements: str, args: tuple = ()) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement, args if "?" in statement else ())
    conn.close()


def test_the_newest_version_verifies_by_proofs(run: Run, ledger: Path) -> None:
    result = assert_ok(run("--ledger", "l.db", "verify", "m.bin", "--json"))
    out = json.loads(result.stdout)
    assert out["verified"] is True and out["version"] == 3
    assert out["ledger"]["checked"] == "index and inclusion proofs"


def test_an_older_version_is_named_as_such(run: Run, ledger: Path, workdir: Path) -> None:
    (workdir / "m.bin").write_bytes(b"weights v1")
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "is m.bin v1", "v3")


def test_hiding_the_newest_version_from_the_name_lookup_is_refused(
    run: Run, ledger: Path, workdir: Path
) -> None:
    """The lookup columns are generated from the signed body; rewriting the newest block's
    name (so the lookup finds v2 as the newest) breaks its leaf, and the proof of v2 as the
    newest does not lead to the signed index root."""
    (workdir / "m.bin").write_bytes(b"weights v2")
    _sql(
        ledger,
        'UPDATE blocks SET body = replace(body, \'"name":"m.bin"\', \'"name":"x.bin"\') '
        "WHERE idx = 4",
    )
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "newer version")


def test_deleting_the_newest_version_is_refused(run: Run, ledger: Path, workdir: Path) -> None:
    (workdir / "m.bin").write_bytes(b"weights v2")
    _sql(ledger, "DELETE FROM blocks WHERE idx = 5", "DELETE FROM blocks WHERE idx = 4")
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "deleted")


def test_a_dropped_name_is_not_not_registered(run: Run, ledger: Path, workdir: Path) -> None:
    """Renaming every block of a name (keeping the count): the index still proves it."""
    _sql(
        ledger,
        'UPDATE blocks SET body = replace(body, \'"name":"o1.bin"\', \'"name":"zz.bin"\')',
    )
    result = run("--ledger", "l.db", "verify", "o1.bin")
    assert_clean_error(result, 1)
    assert "not registered" not in result.stderr


def test_an_edited_index_node_is_refused_by_verify_and_by_the_next_append(
    run: Run, ledger: Path, workdir: Path
) -> None:
    _sql(ledger, "UPDATE index_tiled SET record = randomblob(32) WHERE depth = 1")
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "index")
    before = ledger.read_bytes()
    (workdir / "n.bin").write_bytes(b"new")
    assert_clean_error(
        run("--ledger", "l.db", "register", "n.bin", "--no-provenance"),
        1,
        "does not match its signed root",
    )
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT count(*) FROM blocks").fetchone() == (6,)  # nothing signed
    conn.close()
    assert before  # the ledger file is still there


def _resign(ledger: Path, home: Path, change) -> None:
    conn = sqlite3.connect(ledger)
    (note,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    checkpoint = Checkpoint.parse(parse_note(note).text)
    signer = Home(home).operator_signer().with_name(checkpoint.origin)
    new = sign_checkpoint(change(checkpoint), signer)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (new,))
    conn.close()


def test_a_checkpoint_with_two_index_lines_is_malformed(run: Run, ledger: Path, home: Path) -> None:
    _resign(
        ledger,
        home,
        lambda c: Checkpoint(c.origin, c.size, c.root_hash, (*c.extensions, *c.extensions)),
    )
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "two index roots")


def test_a_checkpoint_without_its_index_after_one_with_it_is_a_rollback(
    run: Run, ledger: Path, home: Path
) -> None:
    """Even signed by the operator: the trust state accepted the indexed checkpoint."""
    _resign(ledger, home, lambda c: Checkpoint(c.origin, c.size, c.root_hash, ()))
    assert_clean_error(run("--ledger", "l.db", "verify", "m.bin"), 1, "rolled back", "index")


def test_a_ledger_made_before_the_index_verifies_by_audit_and_migrates(
    run: Run, ledger: Path, home: Path, workdir: Path
) -> None:
    conn = sqlite3.connect(ledger)
    (note,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'checkpoint'", (without_index(note, home),)
        )
        conn.execute("DELETE FROM index_tiled")
    conn.close()
    result = assert_ok(run("--ledger", "l.db", "verify", "m.bin"))
    assert "Ledger valid: 6 blocks" in result.stdout  # a full audit, as before
    (workdir / "n.bin").write_bytes(b"new")
    assert_ok(run("--ledger", "l.db", "register", "n.bin", "--no-provenance"))  # migrates
    result = assert_ok(run("--ledger", "l.db", "verify", "m.bin"))
    assert "signed index" in result.stdout
