"""The ledger's rules pinned through the library, not through the command line's text.

The CLI tests (tests/cli/test_cli.py, test_versions.py) check what a user sees; these check
the rule itself: which error class a refusal is (so which exit status), what it carries
(`ModelMismatch.details`), and what was or was not appended. Each test names the CLI test
that carries the same rule as a message."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelchain import Ledger
from modelchain.core import merkle
from modelchain.core.errors import (
    LedgerInvalid,
    ModelMismatch,
    NotRegistered,
    RollbackError,
    UsageError,
    VerificationError,
)


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder for the ledger and models, a MODELCHAIN_HOME beside it)."""
    data = tmp_path / "data"
    data.mkdir()
    return data, tmp_path / "home"


@pytest.fixture
def ledger(paths: tuple[Path, Path]) -> Iterator[Ledger]:
    data, home = paths
    with Ledger.open(data / "l.db", home=home, create=True) as led:
        yield led


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def details(exc: pytest.ExceptionInfo[ModelMismatch]) -> dict:
    found = getattr(exc.value, "details", None)
    assert isinstance(found, dict), "a ModelMismatch carries its details"
    return found


# -- append: what register appends, and what it refuses ------------------------------------


def test_the_newest_versions_bytes_again_append_nothing(ledger: Ledger, paths) -> None:
    """(test_versions.py: "Already registered as m.bin v1 ... nothing appended")"""
    model = write(paths[0] / "m.bin", b"weights v1")
    first = ledger.register(model)
    again = ledger.register(model)
    assert (first.version, first.existing) == (1, False)
    assert again.existing and again.index == first.index and again.version == 1
    assert len(ledger) == 1


def test_force_appends_and_older_bytes_are_a_new_version(ledger: Ledger, paths) -> None:
    """(test_versions.py: --force; a roll-back to older bytes is news)"""
    model = write(paths[0] / "m.bin", b"weights v1")
    ledger.register(model)
    assert ledger.register(model, force=True).version == 2
    write(model, b"weights v2")
    assert ledger.register(model).version == 3
    write(model, b"weights v1")  # v1's bytes again: recorded, never folded into v1
    rolled_back = ledger.register(model)
    assert (rolled_back.version, rolled_back.existing) == (4, False)
    assert ledger.register(model, name="other").version == 1  # names count apart
    assert len(ledger) == 5


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        pytest.param({"model_hash": "A" * 64}, "lowercase hex", id="upper-hex"),
        pytest.param({"model_hash": "ab" * 16}, "lowercase hex", id="short-hex"),
        pytest.param({"kind": "folder"}, "kind must be", id="kind"),
        pytest.param({"kind": "directory"}, "needs its manifest", id="directory-no-manifest"),
        pytest.param({"metadata": ["not", "an", "object"]}, "JSON object", id="metadata"),
        pytest.param({"name": ""}, None, id="empty-name"),
    ],
)
def test_a_bad_registration_is_a_usage_error_and_appends_nothing(
    ledger: Ledger, entry: dict, needle: str | None
) -> None:
    fields = {"name": "m", "model_hash": digest_of(b"m"), **entry}
    with pytest.raises(UsageError, match=needle) as exc:
        ledger.append(**fields)
    assert exc.value.exit_code == 2
    assert len(ledger) == 0


def test_a_failing_batch_appends_none_of_it(ledger: Ledger) -> None:
    """`prepare` checks each entry before the lock: one bad entry, nothing written."""
    good = ledger.prepare(name="good", model_hash=digest_of(b"good"))
    with pytest.raises(UsageError):
        ledger.append_many([good, ledger.prepare(name="bad", model_hash="nothex")])
    assert len(ledger) == 0


# -- versions: what verify says about which version a model is ------------------------------


def test_verify_the_newest_version(ledger: Ledger, paths) -> None:
    """(test_cli.py::test_register_then_verify: "matches m.bin v1 (block 0)")"""
    model = write(paths[0] / "m.bin", b"weights v1")
    ledger.register(model)
    result = ledger.verify(model)
    assert (result.name, result.block.version, result.block.index) == ("m.bin", 1, 0)
    assert result.is_newest and result.digest.sha256 == digest_of(b"weights v1")
    assert result.audit.size == 1


def test_an_older_versions_bytes_are_a_mismatch_naming_both(ledger: Ledger, paths) -> None:
    """(test_cli.py::test_verify_names_the_older_version_that_matched: "m.bin v1", "v2")"""
    model = write(paths[0] / "m.bin", b"weights v1")
    ledger.register(model)
    write(model, b"weights v2")
    ledger.register(model)
    write(model, b"weights v1")
    with pytest.raises(ModelMismatch, match="not the newest registered version v2") as exc:
        ledger.verify(model)
    assert exc.value.exit_code == 1
    found = details(exc)
    assert (found["matched_version"], found["newest_version"]) == (1, 2)
    assert found["sha256"] == digest_of(b"weights v1")
    assert found["expected_sha256"] == digest_of(b"weights v2")


def test_other_bytes_are_a_mismatch_with_both_digests(ledger: Ledger, paths) -> None:
    """(test_cli.py::test_edited_model_fails_verify: the file's digest in the line)"""
    model = write(paths[0] / "m.bin", b"weights")
    ledger.register(model)
    write(model, b"weights\0")
    with pytest.raises(ModelMismatch, match=r"does not match m\.bin v1") as exc:
        ledger.verify(model)
    found = details(exc)
    assert found["sha256"] == digest_of(b"weights\0") and "matched_version" not in found
    ledger.audit()  # the ledger itself is fine


def test_a_directory_mismatch_names_the_files(ledger: Ledger, paths) -> None:
    """(test_cli.py::test_directory_changes_are_named: changed/added/removed)"""
    folder = paths[0] / "model"
    (folder / "sub").mkdir(parents=True)
    write(folder / "config.json", b"{}")
    write(folder / "sub" / "weights.bin", b"\0" * 1000)
    write(folder / "tokenizer.json", b"[]")
    assert ledger.register(folder).kind == "directory"
    write(folder / "sub" / "weights.bin", b"\0" * 999 + b"\1")
    write(folder / "extra.py", b"import os")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelMismatch) as exc:
        ledger.verify(folder)
    found = details(exc)
    assert found["changed"] == ["sub/weights.bin"]
    assert found["added"] == ["extra.py"]
    assert found["removed"] == ["tokenizer.json"]


def test_a_name_never_registered_is_not_registered(ledger: Ledger, paths) -> None:
    """(test_cli.py::test_verify_a_file_that_was_never_registered, test_name_option)"""
    model = write(paths[0] / "m.bin", b"weights")
    ledger.register(model, name="iris")
    with pytest.raises(NotRegistered, match=r"'m\.bin' is not registered") as exc:
        ledger.verify(model)
    assert exc.value.exit_code == 1
    assert ledger.verify(model, name="iris").name == "iris"


def test_a_pinned_version(ledger: Ledger, paths) -> None:
    """(test_versions.py::test_verify_a_pinned_version and ..._that_does_not_match)"""
    model = write(paths[0] / "m.bin", b"weights v1")
    ledger.register(model)
    write(model, b"weights v2")
    ledger.register(model)

    newest = ledger.verify(model, version=2)
    assert newest.block.version == 2 and newest.is_newest
    with pytest.raises(ModelMismatch, match=r"it is m\.bin v2") as exc:
        ledger.verify(model, version=1)
    assert details(exc)["matched_version"] == 2 and details(exc)["version"] == 1

    write(model, b"weights v1")
    older = ledger.verify(model, version=1)
    assert older.block.version == 1 and not older.is_newest and older.newest_version == 2
    assert older.as_dict()["newest"] is False
    with pytest.raises(ModelMismatch):
        ledger.verify(model)  # without a pin, only the newest matches

    with pytest.raises(NotRegistered, match=r"no version 3 .*\(versions 1 to 2\)"):
        ledger.verify(model, version=3)
    for bad in (0, -1, True):
        with pytest.raises(UsageError) as usage:
            ledger.verify(model, version=bad)
        assert usage.value.exit_code == 2


def test_registration_by_name_and_version(ledger: Ledger) -> None:
    """`registration` (what `show` and `log --name` read) counts versions from 1."""
    ledger.append(name="m", model_hash=digest_of(b"1"))
    ledger.append(name="other", model_hash=digest_of(b"o"))
    ledger.append(name="m", model_hash=digest_of(b"2"))
    assert ledger.registration("m").version == 2
    assert ledger.registration("m", 1).index == 0
    with pytest.raises(NotRegistered, match=r"no version 3 .*\(versions 1 to 2\)"):
        ledger.registration("m", 3)
    with pytest.raises(NotRegistered, match="'x' is not registered"):
        ledger.registration("x")


# -- audit failures: which class each kind of tampering is -----------------------------------


def _two_blocks(paths) -> Path:
    data, home = paths
    location = data / "l.db"
    model = write(data / "m.bin", b"weights")
    with Ledger.open(location, home=home, create=True) as led:
        led.register(model)
        led.register(model, name="other")
        led.audit()
    return location


def _sql(location: Path, *statements: str) -> None:
    conn = sqlite3.connect(location)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("statements", "error"),
    [
        pytest.param(
            ["DELETE FROM blocks WHERE idx = (SELECT max(idx) FROM blocks)"],
            LedgerInvalid,
            id="last-block-deleted",
        ),
        pytest.param(
            [
                "UPDATE blocks SET idx = -1 WHERE idx = 0",
                "UPDATE blocks SET idx = 0 WHERE idx = 1",
                "UPDATE blocks SET idx = 1 WHERE idx = -1",
            ],
            LedgerInvalid,
            id="blocks-reordered",
        ),
        pytest.param(
            [  # a copy as another version: the store refuses a second (name, version) itself
                "INSERT INTO blocks (idx, body) SELECT idx + 2, "
                "replace(body, '\"version\":1', '\"version\":7') FROM blocks WHERE idx = 1"
            ],
            LedgerInvalid,
            id="block-inserted",
        ),
        pytest.param(
            ["UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 1"],
            LedgerInvalid,
            id="stored-node-zeroed",
        ),
    ],
)
def test_tampering_is_ledger_invalid_for_audit_and_verify(
    paths, statements: list[str], error: type[LedgerInvalid]
) -> None:
    """(test_cli.py::test_tampered_sqlite_ledger_fails_audit_and_verify, exit 1) After an
    audit, what was audited is checked again only by a full audit."""
    location = _two_blocks(paths)
    _sql(location, *statements)
    with Ledger.open(location, home=paths[1]) as led:
        with pytest.raises(error) as exc:
            led.audit(full=True)
        assert exc.value.exit_code == 1
        with pytest.raises(VerificationError):
            led.verify(paths[0] / "m.bin")


def test_audit_vouches_for_every_stored_node(paths) -> None:
    """(test_cli.py::test_audit_checks_every_stored_merkle_node) Proofs are served from the
    stored nodes: a node audit did not check would make `prove` fail after a valid audit."""
    data, home = paths
    location = data / "l.db"
    with Ledger.open(location, home=home, create=True) as led:
        for i in range(3):
            led.append(name="m", model_hash=digest_of(bytes([i])))
    _sql(location, "UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 1")
    with Ledger.open(location, home=home) as led:
        with pytest.raises(LedgerInvalid, match="inclusion proof of block 0 "):
            led.inclusion_proof(0)  # read from the stored nodes, and checked before handed out
        with pytest.raises(LedgerInvalid):
            led.audit()


def test_an_inclusion_proof_is_checked_before_it_is_handed_out(paths) -> None:
    """A library caller never gets a proof that does not hold: for the signed size it is
    checked against the signed root, for an older size against that prefix's root. Proofs
    that do not need the bad node are still given."""
    data, home = paths
    location = data / "l.db"
    with Ledger.open(location, home=home, create=True) as led:
        for i in range(5):
            led.append(name="m", model_hash=digest_of(bytes([i])))
        good = {(i, n): led.inclusion_proof(i, n) for n in (3, 5) for i in range(n)}
        for (i, n), proof in good.items():
            merkle.verify_inclusion(i, n, led.leaf_hash(i), proof, led.root_hash(n))
        good[2, 4] = led.inclusion_proof(2, 4)
    # leaf 3's stored node: the first step of block 2's proof in the trees of 4 and 5
    _sql(location, "UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 3")
    with Ledger.open(location, home=home) as led:
        assert led.signed_size() == 5
        with pytest.raises(LedgerInvalid, match="inclusion proof of block 2 in the tree of 5 "):
            led.inclusion_proof(2)
        with pytest.raises(LedgerInvalid, match="inclusion proof of block 2 in the tree of 5 "):
            led.inclusion_proof(2, 5)
        with pytest.raises(LedgerInvalid, match="inclusion proof of block 2 in the tree of 4 "):
            led.inclusion_proof(2, 4)  # an older tree: checked against that prefix's root
        for i, n in ((0, 5), (3, 5), (4, 5), (1, 3)):  # proofs that do not use that node
            assert led.inclusion_proof(i, n) == good[i, n]


def test_a_lookup_never_answers_with_a_proof_that_does_not_hold(paths) -> None:
    """The service's `/verify` (`LocalLedger.lookup`) proves the block it read under the
    checkpoint it judges: a bad stored node is `LedgerInvalid`, never a proof handed out."""
    data, home = paths
    location = data / "l.db"
    with Ledger.open(location, home=home, create=True) as led:
        for i in range(5):
            led.append(name=f"m{i}", model_hash=digest_of(bytes([i])))
        found = led.lookup("m2", digest_of(bytes([2])))
        assert found.verified and found.newest_proof == led.inclusion_proof(2)
    _sql(location, "UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 3")
    with Ledger.open(location, home=home) as led:
        with pytest.raises(LedgerInvalid, match="inclusion proof of block 2 in the tree of 5 "):
            led.lookup("m2", digest_of(bytes([2])))
        assert led.lookup("m4", digest_of(bytes([4]))).verified  # its proof needs no bad node


def test_a_rolled_back_ledger_is_a_rollback_error(paths, tmp_path: Path) -> None:
    """(test_cli.py::test_rolled_back_sqlite_ledger_is_detected: "rolled back", exit 1)"""
    data, home = paths
    location = data / "l.db"
    model = write(data / "m.bin", b"weights v1")
    with Ledger.open(location, home=home, create=True) as led:
        led.register(model)
    saved = tmp_path / "old.db"
    shutil.copyfile(location, saved)
    write(model, b"weights v2")
    with Ledger.open(location, home=home) as led:
        led.register(model)
        led.audit()
    for suffix in ("-wal", "-shm"):
        Path(f"{location}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(saved, location)
    write(model, b"weights v1")
    with Ledger.open(location, home=home) as led:
        with pytest.raises(RollbackError, match="rolled back") as exc:
            led.audit()
        assert exc.value.exit_code == 1
        with pytest.raises(RollbackError):
            led.verify(model)
