"""Another log swapped in at a ledger's location: by removing the record that names the log,
by a symlink (to another log's copy, or to nothing), by a FIFO, or by rebuilding the SQLite
schema. Which log lives where comes from the verifier's trust state only, so every one of
these is refused with a one-line error, and no swapped model is ever accepted.

The two projects share one operator key (one MODELCHAIN_HOME), the case where a checkpoint
of project B verifies perfectly well: only the trust state says it is not project A's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import MODEL_FILE, assert_clean_error, assert_no_traceback, db, make_ledger

import modelchain
from modelchain.core.errors import LedgerInvalid, ModelchainError
from modelchain.use.seed import check

DB = Path(".modelchain") / "ledger.db"
VERIFIED = "Model Integrity Verified ✅"


@pytest.fixture
def projects(model: Path, workdir: Path) -> tuple[Path, Path]:
    """Project A (the work dir: the real model) and project B (another model under the same
    name), both registered and audited with the one operator key of MODELCHAIN_HOME."""
    a = workdir
    b = workdir.parent / "project-b"
    b.mkdir()
    (b / MODEL_FILE).write_bytes(b"project B's model, not A's")
    make_ledger(a / DB, a / MODEL_FILE)
    make_ledger(b / DB, b / MODEL_FILE)
    for project in (a, b):
        with modelchain.Ledger.open(project / DB) as ledger:
            ledger.audit()
    return a, b


def _swap_model(a: Path, b: Path) -> None:
    """The attacker's real goal: B's model in A's place."""
    shutil.copyfile(b / MODEL_FILE, a / MODEL_FILE)


def _copy_ledger_files(src: Path, dst: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src, dst)


# -- the origin record removed -------------------------------------------------------------


@pytest.fixture
def b_without_origin(projects: tuple[Path, Path]) -> tuple[Path, Path]:
    a, b = projects
    _swap_model(a, b)
    _copy_ledger_files(b / DB, a / DB)
    with db(a / DB) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'origin'")
    return a, b


def test_deleted_origin_record_is_refused_by_verify_and_audit(b_without_origin, run) -> None:
    for args in (("verify", MODEL_FILE), ("audit",), ("verify", MODEL_FILE, "--json")):
        result = run(*args)
        assert_clean_error(result, 1, "origin", "is missing")
        assert "OK:" not in result.stdout


def test_deleted_origin_record_is_refused_by_load(b_without_origin) -> None:
    """Refused by the ledger, before a byte of the model is deserialised."""
    with pytest.raises(LedgerInvalid, match="origin"):
        modelchain.load(MODEL_FILE, ledger=DB)


@pytest.mark.parametrize("value", ["X'00ff'", "42", "''", "'modelchain.local/other'"])
def test_unreadable_or_other_origin_record_is_refused(b_without_origin, run, value) -> None:
    a, _ = b_without_origin
    with db(a / DB) as conn:
        conn.execute(f"INSERT INTO meta (key, value) VALUES ('origin', {value})")
    result = run("verify", MODEL_FILE)
    assert_clean_error(result, 1)
    assert "OK:" not in result.stdout


def test_deleted_origin_record_is_refused_even_at_a_new_location(projects, run, workdir) -> None:
    """Nothing was ever accepted at this path: still no log is taken from the checkpoint."""
    _, b = projects
    fresh = workdir / "fresh.db"
    shutil.copyfile(b / DB, fresh)
    with db(fresh) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'origin'")
    assert_clean_error(run("audit", "--ledger", fresh), 1, "origin")
    assert_clean_error(run("register", MODEL_FILE, "--ledger", fresh), 1, "origin")


def test_swapped_seed_ledger_is_refused_by_main_py(model, workdir, run_script) -> None:
    """main.py in A with project B's blockchain_data.json (and its checkpoint) copied in."""
    b = workdir.parent / "seed-b"
    b.mkdir()
    (b / MODEL_FILE).write_bytes(b"project B's model")
    for project in (workdir, b):
        assert check(project, _Sink())
    for name in ("blockchain_data.json", "blockchain_data.json.checkpoint"):
        shutil.copyfile(b / name, workdir / name)
    shutil.copyfile(b / MODEL_FILE, workdir / MODEL_FILE)
    result = run_script("main.py")
    assert_no_traceback(result)
    assert result.code == 1, result
    assert VERIFIED not in result.stdout
    assert "Is Blockchain Valid? False" in result.stdout


class _Sink:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


# -- symlinks ------------------------------------------------------------------------------


def test_ledger_symlinked_to_another_logs_copy_is_refused(projects, run) -> None:
    a, b = projects
    _swap_model(a, b)
    (a / DB).unlink()
    (a / DB).symlink_to(b / DB)
    for args in (("verify", MODEL_FILE), ("audit",), ("register", MODEL_FILE)):
        assert_clean_error(run(*args), 1, "symbolic link")
    with pytest.raises(LedgerInvalid, match="symbolic link"):
        modelchain.load(MODEL_FILE, ledger=DB)


def test_ledger_directory_symlinked_to_another_project_is_refused(projects, run) -> None:
    """The link one level up: the location is still A's, and A's log is not B's."""
    a, b = projects
    _swap_model(a, b)
    shutil.rmtree(a / ".modelchain")
    (a / ".modelchain").symlink_to(b / ".modelchain")
    for args in (("verify", MODEL_FILE), ("audit",)):
        result = run(*args)
        assert_clean_error(result, 1, "was accepted here before")
        assert "OK:" not in result.stdout


def test_wal_sidecar_symlink_is_refused(projects, run, tmp_path) -> None:
    a, _ = projects
    target = tmp_path / "elsewhere-wal"
    wal = Path(f"{a / DB}-wal")
    wal.unlink(missing_ok=True)
    wal.symlink_to(target)
    assert_clean_error(run("audit"), 1, "symbolic link")
    assert not target.exists()


def test_dangling_symlink_does_not_start_a_new_log(projects, run, tmp_path) -> None:
    """A tampered model must not become block 0 of a brand-new log behind a dangling link."""
    a, _ = projects
    (a / MODEL_FILE).write_bytes(b"tampered")
    target = tmp_path / "nowhere" / "ledger.db"
    (a / DB).unlink()
    (a / DB).symlink_to(target)
    for args in (("register", MODEL_FILE), ("init",), ("verify", MODEL_FILE)):
        assert_clean_error(run(*args), 1, "symbolic link")
    assert not target.exists() and not target.parent.exists()


def test_dangling_symlink_in_place_of_the_seed_ledger(model, workdir, run_script, tmp_path):
    assert check(workdir, _Sink())
    (workdir / MODEL_FILE).write_bytes(b"tampered")
    target = tmp_path / "elsewhere" / "gone.json"
    (workdir / "blockchain_data.json").unlink()
    (workdir / "blockchain_data.json").symlink_to(target)
    result = run_script("main.py")
    assert_no_traceback(result)
    assert result.code == 1, result
    assert "Is Blockchain Valid? False" in result.stdout
    assert "symbolic link" in result.stdout
    assert "Model hash stored" not in result.stdout
    assert not target.exists()


# -- not a regular file --------------------------------------------------------------------


def test_fifo_ledger_is_refused_without_hanging(projects, run) -> None:
    a, _ = projects
    (a / DB).unlink()
    os.mkfifo(a / DB)
    for args in (("verify", MODEL_FILE), ("audit",)):
        assert_clean_error(run(*args, timeout=30), 2, "not a regular file")


def test_fifo_seed_ledger_does_not_hang_main_py(model, workdir, run_script) -> None:
    os.mkfifo(workdir / "blockchain_data.json")
    result = run_script("main.py", timeout=60)
    assert_no_traceback(result)
    assert result.code != 0, result
    assert "not a regular file" in result.stdout + result.stderr


def test_fifo_checkpoint_sidecar_does_not_hang(model, workdir, run) -> None:
    assert check(workdir, _Sink())
    sidecar = workdir / "blockchain_data.json.checkpoint"
    sidecar.unlink()
    os.mkfifo(sidecar)
    result = run("audit", "--ledger", "blockchain_data.json", timeout=30)
    assert_clean_error(result, 2, "not a regular file")


# -- the SQLite schema is exactly modelchain's ---------------------------------------------


def _two_versions(workdir: Path) -> Path:
    (workdir / "m.bin").write_bytes(b"version 1")
    make_ledger(workdir / DB, (workdir / "m.bin", "m"))
    with modelchain.Ledger.open(workdir / DB) as ledger:
        (workdir / "m.bin").write_bytes(b"version 2")  # v1 is withdrawn by v2
        ledger.register(workdir / "m.bin", name="m")
        ledger.audit()
    (workdir / "m.bin").write_bytes(b"version 1")  # the withdrawn version is back
    return workdir / DB


def test_lookup_columns_rebuilt_as_plain_columns_are_refused(workdir, home, run) -> None:
    loc = _two_versions(workdir)
    with db(loc) as conn:
        conn.executescript(
            "CREATE TABLE plain (idx INTEGER PRIMARY KEY, body TEXT NOT NULL, name TEXT, "
            "version INTEGER, model_hash TEXT);"
            "INSERT INTO plain SELECT idx, body, name, version, model_hash FROM blocks;"
            "UPDATE plain SET name = 'hidden' WHERE idx = 1;"
            "DROP TABLE blocks; ALTER TABLE plain RENAME TO blocks;"
            "CREATE INDEX blocks_by_name ON blocks (name, version);"
            "CREATE INDEX blocks_by_hash ON blocks (model_hash);"
        )
    with pytest.raises(LedgerInvalid, match="schema"):
        modelchain.Ledger.open(loc)
    assert_clean_error(run("verify", "m.bin", "--name", "m"), 1, "schema", "tampered")


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TRIGGER t AFTER INSERT ON blocks BEGIN SELECT 1; END",
        "CREATE VIEW v AS SELECT idx FROM blocks",
        "CREATE INDEX extra ON blocks (body)",
        "DROP INDEX blocks_by_hash",
        "CREATE TABLE notes (x)",
    ],
)
def test_schema_objects_modelchain_did_not_create_are_refused(workdir, home, run, sql) -> None:
    loc = _two_versions(workdir)
    with db(loc) as conn:
        conn.execute(sql)
    with pytest.raises(LedgerInvalid, match="schema"):
        modelchain.Ledger.open(loc)
    assert_clean_error(run("audit"), 1, "schema")


def test_untouched_schema_and_analyze_are_accepted(workdir, home, run) -> None:
    """The check must not refuse the ledger modelchain made (nor SQLite's own statistics)."""
    loc = _two_versions(workdir)
    with db(loc) as conn:
        conn.execute("ANALYZE")
    assert "Ledger valid" in run("audit").stdout
    assert run("verify", "m.bin", "--name", "m").code == 1  # v1 is not the newest: refused


def test_refusals_are_modelchain_errors(projects) -> None:
    a, b = projects
    (a / DB).unlink()
    (a / DB).symlink_to(b / DB)
    with pytest.raises(ModelchainError) as info:
        modelchain.Ledger.open(a / DB)
    assert info.value.exit_code == 1
    assert "\n" not in str(info.value)
