"""The ledger rules: audit catches every edit, rollback and fork; proofs hold at every size."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.core import merkle
from modelchain.core.errors import (
    ForkError,
    LedgerInvalid,
    ModelMismatch,
    NotRegistered,
    RollbackError,
    SignatureError,
    command_line_text,
)
from modelchain.core.note import Signer
from modelchain.ledgers import Ledger
from modelchain.log.block import seed_hash
from modelchain.log.home import Home

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def outside(tmp: Path, name: str) -> Path:
    """A MODELCHAIN_HOME beside, not inside, the directory that holds the ledgers."""
    return tmp.parent / f"{tmp.name}-{name}"


def _hex(i: int) -> str:
    return f"{i:064x}"


def _build(location: Path, home: Home, n: int) -> Ledger:
    ledger = Ledger.open(location, home=home, create=True)
    ledger.init()
    for i in range(n):
        ledger.append(name=f"model-{i % 4}", model_hash=_hex(i), size=i, metadata={"i": i})
    return ledger


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(outside(tmp_path, "home"))


def _fresh_home(tmp_path: Path, name: str) -> Home:
    """A verifier that has the operator's key but has never seen this ledger."""
    other = Home(outside(tmp_path, name))
    other.path.mkdir(parents=True, exist_ok=True)
    return other


# -- every byte of every block is covered -------------------------------------------------


@SETTINGS
@given(size=st.integers(1, 24), data=st.data())
def test_flipping_any_byte_of_any_sqlite_block_fails_audit(tmp_path_factory, size, data) -> None:
    tmp = tmp_path_factory.mktemp("flip")
    home = Home(outside(tmp, "home"))
    loc = tmp / "l.db"
    _build(loc, home, size).close()
    index = data.draw(st.integers(0, size - 1), label="block")
    conn = sqlite3.connect(loc)
    # SQLite refuses a body that is not JSON (the lookup columns derive from it); a
    # determined attacker rebuilds the table without them
    conn.executescript(
        "CREATE TABLE plain (idx INTEGER PRIMARY KEY, body TEXT NOT NULL);"
        "INSERT INTO plain SELECT idx, body FROM blocks;"
        "DROP TABLE blocks; ALTER TABLE plain RENAME TO blocks;"
    )
    (body,) = conn.execute("SELECT body FROM blocks WHERE idx = ?", (index,)).fetchone()
    # the body's length varies with the timestamp, so draw a position independent of it
    pos = data.draw(st.integers(0, 2**32), label="byte") % len(body)
    shift = data.draw(st.integers(1, 94), label="shift")
    replacement = chr(0x20 + (ord(body[pos]) - 0x20 + shift) % 95)
    conn.execute(
        "UPDATE blocks SET body = ? WHERE idx = ?",
        (body[:pos] + replacement + body[pos + 1 :], index),
    )
    conn.commit()
    conn.close()
    # the rebuilt table alone is refused when the ledger is opened; either way, never passed
    with pytest.raises(LedgerInvalid), Ledger.open(loc, home=home) as ledger:
        ledger.audit()


@SETTINGS
@given(size=st.integers(1, 12), data=st.data())
def test_changing_any_field_of_any_json_block_fails_audit(tmp_path_factory, size, data) -> None:
    tmp = tmp_path_factory.mktemp("field")
    home = Home(outside(tmp, "home"))
    loc = tmp / "blockchain_data.json"
    _build(loc, home, size).close()
    blocks = json.loads(loc.read_text())
    index = data.draw(st.integers(0, size - 1), label="block")
    field = data.draw(st.sampled_from(sorted(blocks[index])), label="field")
    value = blocks[index][field]
    blocks[index][field] = data.draw(
        st.one_of(st.integers(), st.text(max_size=5), st.none(), st.just({"x": 1})).filter(
            lambda v: v != value
        )
    )
    loc.write_text(json.dumps(blocks, indent=4))
    with Ledger.open(loc, home=home) as ledger, pytest.raises(LedgerInvalid):
        ledger.audit()


# -- the attacks of the threat model --------------------------------------------------------


@pytest.mark.parametrize("suffix", [".db", ".json"])
def test_recomputed_chain_is_caught_by_the_signature(tmp_path: Path, home: Home, suffix) -> None:
    loc = tmp_path / f"ledger{suffix}"
    _build(loc, home, 5).close()
    blocks = [b.to_dict() for b in Ledger.open(loc, home=home).blocks()]
    previous = "0" * 64
    for b in blocks:
        if b["index"] == 2:
            b["model_hash"] = _hex(999)
        b["previous_hash"] = previous
        b["current_hash"] = seed_hash(b["index"], b["timestamp"], b["model_hash"], previous)
        previous = b["current_hash"]
    if suffix == ".json":
        loc.write_text(json.dumps(blocks, indent=4))
    else:
        from modelchain.core.canonical import canonical_json

        conn = sqlite3.connect(loc)
        for b in blocks:
            conn.execute(
                "UPDATE blocks SET body = ? WHERE idx = ?",
                (canonical_json(b).decode(), b["index"]),
            )
        conn.commit()
        conn.close()
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="no longer match the signed checkpoint"):
            ledger.audit()
        # and the operator refuses to sign on top of it
        with pytest.raises(LedgerInvalid):
            ledger.append(name="new", model_hash=_hex(1000))


@pytest.mark.parametrize("suffix", [".db", ".json"])
def test_rollback_to_an_older_signed_state(tmp_path: Path, home: Home, suffix) -> None:
    loc = tmp_path / f"ledger{suffix}"
    ledger = _build(loc, home, 3)
    snapshot = tmp_path / "old"
    snapshot.mkdir()
    ledger.close()
    for p in tmp_path.glob(f"ledger{suffix}*"):
        shutil.copy(p, snapshot / p.name)
    with Ledger.open(loc, home=home) as ledger:
        ledger.append(name="model-x", model_hash=_hex(77))
        ledger.audit()
    for p in tmp_path.glob(f"ledger{suffix}*"):
        p.unlink()
    for p in snapshot.iterdir():
        shutil.copy(p, tmp_path / p.name)
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(RollbackError, match="rolled back"):
            ledger.audit()
        with pytest.raises(RollbackError):
            ledger.append(name="model-y", model_hash=_hex(78))
    # a verifier that never saw the newer state accepts the older one: that is what
    # witnesses are for; here it shows the check is the trust state, not luck
    with Ledger.open(loc, home=_copy_key(home, outside(tmp_path, "h2"))) as ledger:
        assert ledger.audit().size == 3


def _copy_key(home: Home, path: Path) -> Home:
    other = Home(path)
    other.path.mkdir(parents=True)
    shutil.copy(home.key_path, other.key_path)
    return other


def test_fork_same_size_other_root(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "l.db"
    _build(loc, home, 2).close()
    snapshot = tmp_path / "snap.db"
    shutil.copy(loc, snapshot)
    with Ledger.open(loc, home=home) as ledger:
        ledger.append(name="a", model_hash=_hex(1))
    # the operator (or a thief of the key) signs a different third block on the old copy
    other_home = _copy_key(home, outside(tmp_path, "other"))
    with Ledger.open(snapshot, home=other_home) as fork:
        fork.append(name="b", model_hash=_hex(2))
    shutil.copy(snapshot, loc)
    for ext in ("-wal", "-shm"):
        Path(str(loc) + ext).unlink(missing_ok=True)
    with Ledger.open(loc, home=home) as ledger, pytest.raises(ForkError, match="forked"):
        ledger.audit()


def test_deleted_checkpoint_after_acceptance(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "blockchain_data.json"
    _build(loc, home, 2).close()
    Path(str(loc) + ".checkpoint").unlink()
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(RollbackError, match="checkpoint is missing"):
            ledger.audit()
    # a verifier with no history still refuses an unsigned ledger
    with Ledger.open(loc, home=_copy_key(home, outside(tmp_path, "h2"))) as ledger:
        with pytest.raises(LedgerInvalid, match="no signed checkpoint"):
            ledger.audit()


def test_deleted_ledger_is_not_silently_restarted(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "blockchain_data.json"
    _build(loc, home, 2).close()
    loc.unlink()
    Path(str(loc) + ".checkpoint").unlink()
    with Ledger.open(loc, home=home, create=True) as ledger, pytest.raises(RollbackError):
        ledger.append(name="m", model_hash=_hex(5))
    assert not loc.exists()


def test_unsigned_tail_is_reported(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "blockchain_data.json"
    _build(loc, home, 2).close()
    blocks = json.loads(loc.read_text())
    last = blocks[-1]
    extra = dict(last, index=2, previous_hash=last["current_hash"], name="evil", version=1)
    extra["current_hash"] = seed_hash(
        2, extra["timestamp"], extra["model_hash"], extra["previous_hash"]
    )
    loc.write_text(json.dumps([*blocks, extra], indent=4))
    with Ledger.open(loc, home=home) as ledger:
        with pytest.raises(LedgerInvalid, match="not covered by the signed checkpoint"):
            ledger.audit()
        with pytest.raises(LedgerInvalid):
            ledger.append(name="m", model_hash=_hex(6))


def test_checkpoint_signed_by_another_key(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "l.db"
    _build(loc, home, 2).close()
    stranger = _fresh_home(tmp_path, "stranger")
    stranger.key_path.write_text(Signer.generate("modelchain-operator").private_key_string())
    stranger.key_path.chmod(0o600)
    with Ledger.open(loc, home=stranger) as ledger, pytest.raises(SignatureError):
        ledger.audit()


def test_auditor_with_only_the_verifier_key(tmp_path: Path, home: Home) -> None:
    loc = tmp_path / "l.db"
    ledger = _build(loc, home, 3)
    origin = ledger.store.origin()
    assert origin is not None
    vkey = ledger.verifier_for(origin)
    ledger.close()
    auditor = _fresh_home(tmp_path, "auditor")
    with Ledger.open(loc, home=auditor) as ledger:
        with pytest.raises(SignatureError, match="pass keys=") as refused:
            ledger.audit()
        assert "--key" in command_line_text(refused.value)
        assert ledger.audit(keys=[vkey]).size == 3


# -- verify --------------------------------------------------------------------------------


def test_verify_names_versions_and_files(tmp_path: Path, home: Home) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"v1")
    with Ledger.open(tmp_path / "x" / "l.db", home=home, create=True) as ledger:
        ledger.register(model)
        model.write_bytes(b"v2")
        ledger.register(model)
        assert ledger.verify(model).block.version == 2
        model.write_bytes(b"v1")
        with pytest.raises(ModelMismatch, match=r"m.bin v1 \(block 0\), not the newest"):
            ledger.verify(model)
        model.write_bytes(b"v3")
        with pytest.raises(ModelMismatch, match=r"does not match m\.bin v2"):
            ledger.verify(model)
        with pytest.raises(NotRegistered):
            ledger.verify(model, name="other")
        d = tmp_path / "dir"
        d.mkdir()
        for n in "abc":
            (d / n).write_text(n)
        ledger.register(d)
        (d / "a").write_text("changed")
        (d / "b").unlink()
        (d / "z").write_text("new")
        with pytest.raises(ModelMismatch) as info:
            ledger.verify(d)
        assert info.value.details["changed"] == ["a"]
        assert info.value.details["removed"] == ["b"]
        assert info.value.details["added"] == ["z"]


# -- proofs over the stored tree -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".db", ".json"])
def test_proofs_from_the_store_verify(tmp_path: Path, home: Home, suffix) -> None:
    n = 37
    with _build(tmp_path / f"l{suffix}", home, n) as ledger:
        leaves = [merkle.leaf_hash(b.leaf_data()) for b in ledger.blocks()]
        root = ledger.root_hash()
        assert root == merkle.root(leaves)
        for i in range(n):
            proof = ledger.inclusion_proof(i)
            merkle.verify_inclusion(i, n, leaves[i], proof, root)
        for old in range(n + 1):
            proof = ledger.consistency_proof(old)
            merkle.verify_consistency(old, n, merkle.root(leaves[:old]), root, proof)


@pytest.mark.parametrize("target", ["copy.db", "copy.json"])
def test_failed_copy_creates_nothing(tmp_path: Path, home: Home, target: str) -> None:
    from modelchain.ledgers.copy import copy_ledger

    loc = tmp_path / "l.db"
    _build(loc, home, 3).close()
    conn = sqlite3.connect(loc)
    conn.execute("UPDATE blocks SET body = replace(body, '\"size\":1', '\"size\":9')")
    conn.commit()
    conn.close()
    with Ledger.open(loc, home=home) as ledger, pytest.raises(LedgerInvalid):
        copy_ledger(ledger, tmp_path / "out" / target)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_rollback_between_two_appends_of_one_process(tmp_path: Path, home: Home) -> None:
    """Within one process the trust state is written at most once a second; a rollback
    between two appends must still be caught, not signed over."""
    loc = tmp_path / "l.db"
    snapshot = tmp_path / "snap.db"
    with Ledger.open(loc, home=home, create=True) as ledger:
        ledger.append(name="a", model_hash=_hex(1))
        ledger.store.close()
        shutil.copy(loc, snapshot)
        ledger.store = type(ledger.store)(loc)
        ledger.append(name="a", model_hash=_hex(2))
        ledger.append(name="a", model_hash=_hex(3))  # within the second: not yet flushed
        ledger.store.close()
        for ext in ("-wal", "-shm"):
            Path(str(loc) + ext).unlink(missing_ok=True)
        shutil.copy(snapshot, loc)
        ledger.store = type(ledger.store)(loc)
        with pytest.raises(RollbackError, match="rolled back"):
            ledger.append(name="a", model_hash=_hex(4))


def test_lookup_judges_kind_and_digest_as_verify_does(tmp_path: Path, home: Home) -> None:
    """The lookup behind the service's `POST /api/v1/verify`: a file holding a directory's
    manifest JSON has the directory's digest, and must not be "verified" as that directory
    (nor as an older version of it)."""
    from modelchain.core.canonical import canonical_json
    from modelchain.fs.digest import digest_path, manifest_to_json

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"weights")
    d1 = digest_path(model)
    (model / "weights.bin").write_bytes(b"weights 2")
    d2 = digest_path(model)
    impostor = tmp_path / "impostor.json"
    impostor.write_bytes(canonical_json(manifest_to_json(d2.manifest)))
    assert digest_path(impostor).sha256 == d2.sha256  # the case: same digest, other kind
    with _build(tmp_path / "ledger.db", home, 0) as ledger:
        for d in (d1, d2):
            ledger.append(
                name="m", model_hash=d.sha256, kind="directory", size=d.size, manifest=d.manifest
            )
        found = ledger.lookup("m", d2.sha256)  # kind defaults to "file"
        assert (found.verified, found.reason) == (False, "digest_mismatch")
        assert "registered as a directory, not a file" in found.message
        assert ledger.lookup("m", d2.sha256, kind="directory").verified
        older = ledger.lookup("m", d1.sha256)
        assert (older.verified, older.reason, older.matched) == (False, "digest_mismatch", None)
        assert ledger.lookup("m", d1.sha256, kind="directory").reason == "older_version"


def test_ledger_is_local_or_remote_by_location(tmp_path: Path, home: Home) -> None:
    """One class to name (`Ledger`), the kind chosen by the location, as pathlib does."""
    from modelchain.core.errors import UsageError
    from modelchain.ledgers import LocalLedger, RemoteLedger

    with Ledger(tmp_path / "ledger.db", home, create=True) as local:
        assert type(local) is LocalLedger and isinstance(local, Ledger)
    with Ledger.open("https://ledger.example", home=home) as remote:
        assert type(remote) is RemoteLedger and isinstance(remote, Ledger)
    with RemoteLedger(remote.store, home) as again:  # an open store chooses too
        assert again.client is remote.store
    with pytest.raises(UsageError, match="is not a ledger of kind LocalLedger"):
        LocalLedger.open("https://ledger.example", home=home)
