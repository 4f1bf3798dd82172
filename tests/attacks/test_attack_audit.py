"""The holder of the operator key re-signs the ledger's tree with an index of its choosing (the
newest version of a name hidden behind an older one), its nodes stored to match: `audit
--full` rebuilds the index from the blocks and names the signed root; the incremental
`audit` finds the signed index is not the audited one updated by the new blocks. Exit 1,
one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import Run, assert_clean_error, assert_ok

from modelchain.core.index import Entry, Index, extension_line
from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint
from modelchain.ledgers import Ledger
from modelchain.log.block import index_entry
from modelchain.log.home import Home
from modelchain.log.store.sql import prefix_bytes, tile_key


def _register(run: Run, workdir: Path, name: str, text: str) -> None:
    (workdir / name).write_bytes(text.encode())
    assert_ok(run("--ledger", "l.db", "register", name, "--no-provenance"))


def _forge(loc: Path, home: Home, name: str, older: int) -> None:
    """Sign the same tree with an index that names block `older` as `name`'s newest."""
    with Ledger.open(loc, home=home) as ledger:
        entries = {b.name: index_entry(b, d) for b, d in ledger.entries()}
        entries[name] = Entry(name, older, ledger.leaf_hash(older), 1)
    tree = Index()
    for entry in entries.values():
        tree.put(entry.key, entry.value())
    conn = sqlite3.connect(loc)
    (note,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    old = Checkpoint.parse(parse_note(note).text)
    forged = Checkpoint(old.origin, old.size, old.root_hash, (extension_line(tree.root()),))
    conn.execute("DELETE FROM index_tiled")
    conn.executemany(
        "INSERT INTO index_tiled (tile, depth, prefix, record) VALUES (?, ?, ?, ?)",
        [(tile_key(d, p), d, prefix_bytes(d, p), r) for (d, p), r in tree.nodes.items()],
    )
    signer = home.operator_signer().with_name(old.origin)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'checkpoint'", (sign_checkpoint(forged, signer),)
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("newly_registered", [True, False], ids=["new-name", "old-name"])
def test_a_re_signed_index_that_hides_a_newest_version(
    run: Run, workdir: Path, home: Path, newly_registered: bool
) -> None:
    _register(run, workdir, "m.bin", "weights v1")
    _register(run, workdir, "o.bin", "other v1")
    _register(run, workdir, "o.bin", "other v2")
    assert_ok(run("--ledger", "l.db", "audit"))
    _register(run, workdir, "m.bin" if newly_registered else "n.bin", "weights v2")
    # hide m.bin's v2 (block 3) or o.bin's v2 (block 2) behind their v1
    name, older = ("m.bin", 0) if newly_registered else ("o.bin", 1)
    _forge(workdir / "l.db", Home(home), name, older)
    # an auditor that last saw the ledger at its audit (this home trusts what it appended)
    trust = Home(home)
    with Ledger.open(workdir / "l.db", home=trust) as ledger:
        origin = ledger.store.origin() or ""
    found = trust.trust.audited(origin)
    assert found is not None
    trust.forget(origin)
    trust.accept_checkpoint(origin, 3, found[1])
    trust.accept_audit(origin, *found)
    assert_clean_error(
        run("--ledger", "l.db", "audit"), 1, "is not the audited index of 3 blocks updated"
    )
    assert_clean_error(
        run("--ledger", "l.db", "audit", "--full"), 1, "index root signed in the signed"
    )


def test_an_edited_index_node_is_named_by_audit_full(run: Run, workdir: Path, home: Path) -> None:
    for i in range(6):
        _register(run, workdir, f"m{i}.bin", f"weights {i}")
    conn = sqlite3.connect(workdir / "l.db")
    depth, prefix, record = conn.execute(
        "SELECT depth, prefix, record FROM index_tiled WHERE length(record) = 64 LIMIT 1"
    ).fetchone()
    conn.execute(
        "UPDATE index_tiled SET record = ? WHERE depth = ? AND prefix = ?",
        (record[:32] + bytes(32), depth, prefix),
    )
    conn.commit()
    conn.close()
    line = assert_clean_error(run("--ledger", "l.db", "audit", "--full"), 1, "stored index node")
    assert f"(depth {depth}, prefix" in line
    report = run("--ledger", "l.db", "audit", "--full", "--json")
    assert report.code == 1 and '"valid": true' not in report.stdout
