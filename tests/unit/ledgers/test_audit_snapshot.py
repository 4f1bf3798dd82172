"""Audits during a stream of appends: no false alarm.

`audit` (and `verify`, which audits) checks exactly the tree its checkpoint signs, so the
blocks, nodes and newer checkpoints an append commits meanwhile are no "tampering"; and an
append's trust state, written just before its commit, is not taken for a rollback. A false
alarm is a defect as real as a missed attack, so each backend runs audits in a loop while a
writer appends, and every one of them must pass.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from modelchain.core.errors import ModelchainError
from modelchain.fs.digest import PathDigest
from modelchain.ledgers import Ledger
from modelchain.log.home import Home

APPENDS = 120
MIN_AUDITS = 5


def _digest(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


@pytest.fixture(params=["sqlite", "json", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        if not os.environ.get("MODELCHAIN_TEST_PG_DSN"):
            pytest.skip("MODELCHAIN_TEST_PG_DSN is not set (PostgreSQL tests need a server)")
        return str(request.getfixturevalue("pg_ledger"))
    ledger_dir = tmp_path / "work"
    ledger_dir.mkdir()
    return str(ledger_dir / ("ledger.db" if request.param == "sqlite" else "ledger.json"))


def test_audits_and_verifies_during_appends_never_cry_tampering(
    location: str, tmp_path: Path
) -> None:
    home = Home(tmp_path / "home")
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()
        fixed = ledger.append(name="fixed", model_hash=_digest(-1), size=1)
    done = threading.Event()
    writer_errors: list[BaseException] = []
    rounds: list[int] = []  # one per round of the reader, whatever its outcome

    def rounds_begun_after(count: int) -> None:
        """Wait (bounded) until the reader finishes a round it began after `count` rounds,
        so a loaded machine does not decide whether the test checks what it says."""
        deadline = time.monotonic() + 120
        while len(rounds) < count + 2 and time.monotonic() < deadline:
            time.sleep(0.005)

    def write() -> None:
        try:
            with Ledger.open(location, home=home) as writer:
                rounds_begun_after(-1)  # one audit before any append...
                for i in range(APPENDS):
                    if i == APPENDS // 2:
                        rounds_begun_after(len(rounds))  # ...and one half way through
                    writer.append(name=f"m{i % 3}", model_hash=_digest(i), size=i)
        except BaseException as exc:  # reported below, not lost in the thread
            writer_errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    alarms: list[str] = []
    sizes: list[int] = []
    try:
        with Ledger.open(location, home=home) as reader:
            while not done.is_set() or len(sizes) < MIN_AUDITS:
                try:
                    sizes.append(reader.audit().size)
                    found = reader.verify(
                        "fixed.bin",
                        name="fixed",
                        digest=PathDigest("file", fixed.model_hash, 1, None),
                    )
                    assert found.block.index == fixed.index
                    reader.read_checkpoint()
                except ModelchainError as exc:
                    alarms.append(f"{type(exc).__name__}: {exc}")
                rounds.append(len(rounds))
    finally:
        thread.join(timeout=120)
    assert not writer_errors, writer_errors
    assert alarms == []
    assert sizes == sorted(sizes)  # each audit saw the same tree or a newer one
    assert sizes[0] == 1  # audits really ran before the writer appended...
    assert APPENDS // 2 + 1 in sizes  # ...and while it did
    with Ledger.open(location, home=home) as ledger:
        assert ledger.audit().size == APPENDS + 1


@pytest.mark.parametrize("read", ["audit", "verify", "read_checkpoint"])
def test_a_json_append_between_the_two_files_reads_is_no_alarm(
    read: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON ledger is two files, read one after the other: an append landing between the
    two reads (whichever comes first) must not be taken for deleted blocks."""
    from modelchain.log.store import jsonfile

    home = Home(tmp_path / "home")
    location = tmp_path / "work" / "ledger.json"
    location.parent.mkdir()
    with Ledger.open(location, home=home, create=True) as ledger:
        fixed = ledger.append(name="fixed", model_hash=_digest(0), size=1)
    reads: list[str] = []
    with Ledger.open(location, home=home) as reader:
        store = reader.store
        assert isinstance(store, jsonfile.JSONFileStore)

        def racing(name: str) -> object:
            real = getattr(store, name)

            def read() -> object:
                out = real()
                reads.append(name)
                if len(reads) == 1:  # between this store's two reads, another process appends
                    with Ledger.open(location, home=home) as other:
                        other.append(name="m", model_hash=_digest(1))
                return out

            return read

        for name in ("_read_items", "_read_checkpoint"):
            monkeypatch.setattr(store, name, racing(name))
        store._cache = None  # read the files again
        if read == "audit":
            assert reader.audit().size >= 1
        elif read == "verify":
            digest = PathDigest("file", fixed.model_hash, 1, None)
            assert reader.verify("f.bin", name="fixed", digest=digest).block.index == 0
        else:
            assert reader.read_checkpoint() is not None
    assert reads[:2] == ["_read_checkpoint", "_read_items"]
    with Ledger.open(location, home=home) as ledger:
        assert ledger.audit().size == 2


def test_unsigned_blocks_beyond_the_checkpoint_are_still_reported(tmp_path: Path) -> None:
    """Auditing only the signed tree must not hide blocks an attacker appended unsigned:
    when no newer checkpoint appears, they are reported."""
    import sqlite3

    home = Home(tmp_path / "home")
    path = tmp_path / "work" / "ledger.db"
    path.parent.mkdir()
    with Ledger.open(path, home=home, create=True) as ledger:
        for i in range(3):
            ledger.append(name="m", model_hash=_digest(i))
        body = next(ledger.store.blocks(2, 3)).data.decode()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO blocks (idx, body) VALUES (3, ?)",
        (body.replace('"index":2', '"index":3').replace('"version":3', '"version":4'),),
    )
    conn.commit()
    conn.close()
    with Ledger.open(path, home=home) as ledger:
        with pytest.raises(ModelchainError, match="blocks 3 to 3 are not covered"):
            ledger.audit()


def test_a_stray_node_inside_the_signed_tree_is_still_reported(tmp_path: Path) -> None:
    import sqlite3

    home = Home(tmp_path / "home")
    path = tmp_path / "work" / "ledger.db"
    path.parent.mkdir()
    with Ledger.open(path, home=home, create=True) as ledger:
        for i in range(4):
            ledger.append(name="m", model_hash=_digest(i))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE nodes SET hash = ? WHERE level = 1 AND idx = 1", (b"\0" * 32,))
    conn.commit()
    conn.close()
    with Ledger.open(path, home=home) as ledger:
        with pytest.raises(ModelchainError, match=r"Merkle node \(1, 1\)"):
            ledger.audit()
