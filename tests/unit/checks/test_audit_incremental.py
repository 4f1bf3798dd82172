"""Audit that keeps up: after a first audit, the next one reads only what was appended since,
and still catches what is wrong in it; `audit(full=True)` rebuilds the index from the blocks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelchain.core.canonical import canonical_json
from modelchain.core.errors import LedgerInvalid
from modelchain.core.index import Entry, Index, extension_line, key_of
from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint
from modelchain.ledgers import Ledger
from modelchain.log.home import Home
from modelchain.log.store import sqlite as sqlite_store


def _hex(i: int) -> str:
    return f"{i:064x}"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path.parent / f"{tmp_path.name}-home")


def _append(ledger: Ledger, names: list[str], start: int) -> None:
    ledger.append_many(
        [ledger.prepare(name=n, model_hash=_hex(start + i)) for i, n in enumerate(names)]
    )


def _ledger(tmp_path: Path, home: Home, names: list[str]) -> Ledger:
    ledger = Ledger.open(tmp_path / "ledger.db", home=home, create=True)
    _append(ledger, names, 0)
    return ledger


def _sql(loc: Path, statement: str, args: tuple[Any, ...] = ()) -> list[Any]:
    conn = sqlite3.connect(loc)
    try:
        rows = conn.execute(statement, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def _rewrite_body(loc: Path, index: int, change: dict[str, Any]) -> None:
    """An attacker's edit of one block body (the lookup columns follow the body)."""
    import json

    ((body,),) = _sql(loc, "SELECT body FROM blocks WHERE idx = ?", (index,))
    raw = json.loads(body)
    raw.update(change)
    _sql(loc, "UPDATE blocks SET body = ? WHERE idx = ?", (canonical_json(raw).decode(), index))


def _blocks_read(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Any]]:
    """Record every range of blocks the ledger's store is asked for."""
    calls: list[tuple[int, Any]] = []
    real = ledger.store.blocks

    def spy(start: int = 0, stop: int | None = None) -> Iterator[Any]:
        calls.append((start, stop))
        return real(start, stop)

    monkeypatch.setattr(ledger.store, "blocks", spy)
    return calls


def test_the_second_audit_reads_only_the_new_blocks(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _ledger(tmp_path, home, ["a", "b", "a", "c"] * 5) as ledger:
        first = ledger.audit()
        assert first.since is None and first.as_dict()["audit"] == "full"
        _append(ledger, ["a", "d", "b"], 100)
        calls = _blocks_read(ledger, monkeypatch)
        second = ledger.audit()
        assert second.size == 23 and second.since == 20
        assert second.as_dict()["checked"] == "blocks 20..22 since the audit of 20 blocks"
        assert second.as_dict()["audit"] == "incremental"
        # the new blocks, then one block each: the one before them and each name's newest
        # before them (to prove where its versions go on from), never a scan
        assert sum((stop or 23) - start for start, stop in calls) <= 3 + 1 + 2, calls
        again = ledger.audit()
        assert again.since == 23 and again.as_dict()["checked"].startswith("no new blocks")
        assert ledger.audit(full=True).since is None


def test_verify_does_not_move_the_audit_record(tmp_path: Path, home: Home) -> None:
    from modelchain.fs.digest import PathDigest

    with _ledger(tmp_path, home, ["a", "b"]) as ledger:
        ledger.audit()
        _append(ledger, ["a"], 10)
        ledger.verify("a", name="a", digest=PathDigest("file", _hex(10), 0, None))
        assert ledger.audit().since == 2  # from the audit, not from verify's checkpoint


def test_a_changed_new_block_is_caught_by_the_incremental_audit(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b", "c"]) as ledger:
        ledger.audit()
        _append(ledger, ["a", "b"], 10)
    _rewrite_body(loc, 4, {"model_hash": _hex(999)})
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="block 4: current_hash does not match"):
            ledger.audit()


def test_a_changed_old_block_is_left_to_the_full_audit(tmp_path: Path, home: Home) -> None:
    """Documented: an incremental audit does not read the blocks audited before (that is
    what makes it O(new blocks)); `audit --full` is what catches an edit among them."""
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b", "c"]) as ledger:
        ledger.audit()
        _append(ledger, ["d"], 10)
    _rewrite_body(loc, 1, {"metadata": {"edited": True}})
    with Ledger.open(loc, home=home) as ledger:
        assert ledger.audit().since == 3  # not read: not caught here
        with pytest.raises(LedgerInvalid, match="no longer match the signed checkpoint"):
            ledger.audit(full=True)


def test_a_version_that_skips_is_caught_by_both_audits(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that numbered a version wrongly (and signed it): the chain, the tree and the
    index all agree with the block, only the version count betrays it."""
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b"]) as ledger:
        ledger.audit()
    real = sqlite_store._SQLiteWriter.latest_version
    monkeypatch.setattr(
        sqlite_store._SQLiteWriter,
        "latest_version",
        lambda self, name: real(self, name) + (1 if name == "a" else 0),
    )
    with Ledger.open(loc, home=home) as ledger:
        _append(ledger, ["a"], 10)
    monkeypatch.undo()
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="'a' has version 3, expected 2"):
            ledger.audit()
        with pytest.raises(LedgerInvalid, match="'a' has version 3, expected 2"):
            ledger.audit(full=True)


def _forge_index(loc: Path, home: Home, entries: dict[str, Entry]) -> None:
    """The operator key's holder signs the ledger's tree with an index of its choosing, and
    stores that index's nodes, so that the index proofs served hold against the signed root."""
    from modelchain.log.store.sql import prefix_bytes, tile_key

    tree = Index()
    for entry in entries.values():
        tree.put(entry.key, entry.value())
    ((note,),) = _sql(loc, "SELECT value FROM meta WHERE key = 'checkpoint'")
    old = Checkpoint.parse(parse_note(note).text)
    forged = Checkpoint(old.origin, old.size, old.root_hash, (extension_line(tree.root()),))
    signer = home.operator_signer().with_name(old.origin)
    conn = sqlite3.connect(loc)
    conn.execute("DELETE FROM index_tiled")
    conn.executemany(
        "INSERT INTO index_tiled (tile, depth, prefix, record) VALUES (?, ?, ?, ?)",
        [(tile_key(d, p), d, prefix_bytes(d, p), r) for (d, p), r in tree.nodes.items()],
    )
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'checkpoint'", (sign_checkpoint(forged, signer),)
    )
    conn.commit()
    conn.close()


def _back_to_the_audit(home: Home, origin: str) -> None:
    """The trust state of an auditor that saw the ledger last at its audit (not the appends
    since, which this home made itself and so trusts)."""
    found = home.trust.audited(origin)
    assert found is not None
    location, note = found
    home.forget(origin)
    home.accept_checkpoint(origin, Checkpoint.parse(parse_note(note).text).size, note)
    home.accept_audit(origin, location, note)


def _entries(ledger: Ledger) -> dict[str, Entry]:
    from modelchain.log.block import index_entry

    out: dict[str, Entry] = {}
    for block, data in ledger.entries():
        out[block.name] = index_entry(block, data)
    return out


@pytest.mark.parametrize("forged_name", ["a", "b"])
def test_a_signed_index_that_does_not_match_the_blocks(
    tmp_path: Path, home: Home, forged_name: str
) -> None:
    """The newest version of a name hidden by a re-signed index (an older block of it named
    as its newest): the full audit names the index root; the incremental one finds the
    signed index is not the audited one plus the new blocks. "a" has a new block since the
    audit, "b" none."""
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b", "a", "b", "c"]) as ledger:
        ledger.audit()
        _append(ledger, ["a", "c"], 10)
        entries = _entries(ledger)
    older = 0 if forged_name == "a" else 1
    hidden = entries[forged_name]
    with Ledger.open(loc, home=home) as ledger:
        leaf = ledger.leaf_hash(older)
    entries[forged_name] = Entry(forged_name, older, leaf, 1)
    assert entries[forged_name] != hidden
    _forge_index(loc, home, entries)
    home.forget(Ledger.open(loc, home=home).store.origin() or "")  # a fresh verifier...
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="index root signed in the signed checkpoint"):
            ledger.audit(full=True)


@pytest.mark.parametrize("forged_name", ["a", "b"])
def test_an_incremental_audit_refuses_a_forged_index_update(
    tmp_path: Path, home: Home, forged_name: str
) -> None:
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b", "a", "b", "c"]) as ledger:
        ledger.audit()
        _append(ledger, ["a", "c"], 10)
        entries = _entries(ledger)
        older = 0 if forged_name == "a" else 1
        entries[forged_name] = Entry(forged_name, older, ledger.leaf_hash(older), 1)
        origin = ledger.store.origin() or ""
    _forge_index(loc, home, entries)
    _back_to_the_audit(home, origin)
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="is not the audited index of 5 blocks updated"):
            ledger.audit()


def test_an_altered_stored_index_node_is_named_by_the_full_audit(
    tmp_path: Path, home: Home
) -> None:
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, [f"m{i}" for i in range(40)]) as ledger:
        ledger.audit()
    rows = _sql(
        loc,
        "SELECT depth, prefix, record FROM index_tiled WHERE length(record) = 64 "
        "ORDER BY depth DESC LIMIT 1",
    )
    ((depth, prefix, record),) = rows
    damaged = record[:40] + bytes([record[40] ^ 1]) + record[41:]
    _sql(
        loc,
        "UPDATE index_tiled SET record = ? WHERE depth = ? AND prefix = ?",
        (damaged, depth, prefix),
    )
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match=rf"stored index node \(depth {depth}, prefix"):
            ledger.audit(full=True)


def test_an_audit_at_another_location_is_full(tmp_path: Path, home: Home) -> None:
    """The record is of the ledger audited at one location: a copy elsewhere (whose old
    blocks were never read here) is audited in full, and `trust forget` drops the record."""
    import shutil

    with _ledger(tmp_path, home, ["a", "b"]) as ledger:
        ledger.audit()
        _append(ledger, ["c"], 10)
        assert ledger.audit().since == 2
        origin = ledger.store.origin()
        assert origin is not None
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "ledger.db", copy / "ledger.db")
    with Ledger.open(copy / "ledger.db", home=home) as other:
        assert other.audit().since is None
    home.forget(origin)
    with Ledger.open(copy / "ledger.db", home=home) as other:
        assert other.audit().since is None


def test_index_values_match_the_key_of_each_name() -> None:
    from modelchain.checks.audit import index_values

    values = index_values({"a": (3, bytes(32), 2)})
    assert values == {key_of("a"): Entry("a", 3, bytes(32), 2).value()}


def test_an_audit_of_the_empty_ledger_is_continued(tmp_path: Path, home: Home) -> None:
    with Ledger.open(tmp_path / "ledger.db", home=home, create=True) as ledger:
        ledger.init()
        assert ledger.audit().size == 0
        _append(ledger, ["a", "b", "a"], 0)
        report = ledger.audit()
        assert report.since == 0 and report.size == 3


def test_a_changed_old_block_the_new_ones_continue_is_named(tmp_path: Path, home: Home) -> None:
    """The newest block before of a name that has a new version is read (its versions go on
    from it): the audited index says what it was, so an edit of it is caught and named."""
    loc = tmp_path / "ledger.db"
    with _ledger(tmp_path, home, ["a", "b", "c"]) as ledger:
        ledger.audit()
        _append(ledger, ["a"], 10)
    _rewrite_body(loc, 0, {"metadata": {"edited": True}})
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="block 0 is not the one that was audited"):
            ledger.audit()
