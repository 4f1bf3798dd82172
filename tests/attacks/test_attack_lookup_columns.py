"""Lookup columns that disagree with the signed body, on SQLite (PostgreSQL: see
test_attack_pg.py): whatever `find` searches must be checked by `audit`, or a lookup can
hide the newest version of a model while the ledger audits as valid.

SQLite computes its lookup columns from the body on every table read, but its indexes keep
the values they were built with: an index rebuilt under another column definition, with
the definition then put back, makes `find` miss a block. Audit reads through the indexes.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from conftest import Run, assert_clean_error, assert_ok

from modelchain.ledgers import Ledger
from modelchain.log.home import Home

_NAME = "json_extract(body, '$.name')"
_HIDE_NEWEST = "CASE WHEN idx = 2 THEN 'hidden' ELSE json_extract(body, '$.name') END"


def _digest(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _build(path: Path, home: Path) -> None:
    with Ledger.open(path, home=Home(home), create=True) as ledger:
        for i in range(3):
            ledger.append(name="m", model_hash=_digest(i))


def _redefine(path: Path, old: str, new: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE name = 'blocks'", (old, new)
    )
    conn.commit()
    conn.close()


def _found(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT idx FROM blocks WHERE name = 'm' ORDER BY idx")]
    finally:
        conn.close()


def test_an_index_rebuilt_to_hide_the_newest_version_fails_audit(
    workdir: Path, home: Path, run: Run
) -> None:
    path = workdir / "ledger.db"
    _build(path, home)
    assert_ok(run("--ledger", path, "audit"))
    _redefine(path, _NAME, _HIDE_NEWEST)
    conn = sqlite3.connect(path)
    conn.execute("REINDEX blocks_by_name")
    conn.commit()
    conn.close()
    _redefine(path, _HIDE_NEWEST, _NAME)  # the definition as modelchain wrote it
    assert _found(path) == [0, 1]  # the attack works: lookups no longer see v3
    # after an audit, the next one reads only what was appended since: the lookup columns
    # of the blocks audited before are checked again by a full audit
    assert_clean_error(run("--ledger", path, "audit", "--full"), 1)


def test_plain_lookup_columns_that_disagree_with_the_body_fail_audit(
    workdir: Path, home: Path, run: Run
) -> None:
    path = workdir / "ledger.db"
    _build(path, home)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE plain (idx INTEGER PRIMARY KEY, body TEXT NOT NULL, name TEXT, "
        "version INTEGER, model_hash TEXT);"
        "INSERT INTO plain SELECT idx, body, name, version, model_hash FROM blocks;"
        "DROP TABLE blocks; ALTER TABLE plain RENAME TO blocks;"
        "CREATE INDEX blocks_by_name ON blocks (name, version);"
        "CREATE INDEX blocks_by_hash ON blocks (model_hash);"
        "UPDATE blocks SET name = 'hidden' WHERE idx = 2;"
    )
    conn.close()
    assert _found(path) == [0, 1]
    assert_clean_error(run("--ledger", path, "audit"), 1)


def test_a_missing_lookup_index_fails_audit(workdir: Path, home: Path, run: Run) -> None:
    path = workdir / "ledger.db"
    _build(path, home)
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX blocks_by_hash")
    conn.commit()
    conn.close()
    assert_clean_error(run("--ledger", path, "audit"), 1)
