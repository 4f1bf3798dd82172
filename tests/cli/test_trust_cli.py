"""`modelchain trust list / forget / move`, and the refusals that point to them: a copy of a
log (`cp -r` of a project) cannot make its original look rolled back, a deleted ledger is not
silently replaced by a new log, and every refusal names the command that undoes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import MODEL_FILE, assert_clean_error, assert_ok, make_ledger, snapshot

from modelchain.use.seed import check

DB = Path(".modelchain") / "ledger.db"


class _Sink:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _logs(run) -> list[dict]:
    return json.loads(assert_ok(run("trust", "list", "--json")).stdout)["logs"]


def _trust_files(home: Path) -> dict[str, bytes | None]:
    trust = home / "trust"
    return snapshot(*sorted(p for p in trust.iterdir() if p.name != ".lock"))


@pytest.fixture
def project(model: Path, workdir: Path, run) -> str:
    """A registered, audited project in the work dir; returns its log's origin."""
    make_ledger(workdir / DB, workdir / MODEL_FILE)
    return json.loads(assert_ok(run("audit", "--json")).stdout)["origin"]


# -- a copy of a project -------------------------------------------------------------------


def test_register_in_a_copy_is_refused_and_the_original_stays_valid(project, run, workdir):
    copy = workdir.parent / "copy"
    shutil.copytree(workdir, copy)
    assert_ok(run("verify", MODEL_FILE, cwd=copy))  # reading a copy is fine
    (copy / "new.bin").write_bytes(b"a new model")
    before = snapshot(copy / DB)
    line = assert_clean_error(
        run("register", "new.bin", cwd=copy), 1, "copy of log", "trust move", project
    )
    assert str(workdir / DB) in line  # where the log lives
    assert ".modelchain/ledger.db" in line.split("trust move", 1)[1]  # the copy
    assert snapshot(copy / DB) == before
    # the original is not accused of anything
    assert_ok(run("verify", MODEL_FILE))
    assert_ok(run("audit"))
    assert_ok(run("register", MODEL_FILE, "--name", "again"))


def test_trust_move_makes_the_copy_the_log(project, run, workdir):
    copy = workdir.parent / "copy"
    shutil.copytree(workdir, copy)
    (copy / "new.bin").write_bytes(b"a new model")
    out = json.loads(assert_ok(run("trust", "move", project, copy / DB, "--json")).stdout)
    assert out["origin"] == project
    assert out["location"] == str(copy / DB)
    assert out["previous"] == str(workdir / DB)
    assert_ok(run("register", "new.bin", cwd=copy))
    [log] = _logs(run)
    assert log["location"] == str(copy / DB) and log["size"] == 2
    # now the original is the stale copy, and says so (and where the log lives)
    line = assert_clean_error(run("audit"), 1, "rolled back", str(copy / DB), "trust forget")
    assert "another copy" in line
    assert_clean_error(run("register", MODEL_FILE, "--name", "x"), 1, "rolled back", "copy")


def test_trust_move_checks_the_ledger_is_that_log(project, run, workdir):
    other = workdir.parent / "other"
    other.mkdir()
    (other / "o.bin").write_bytes(b"other")
    make_ledger(other / DB, other / "o.bin")
    before = _trust_files(workdir.parent / "home")
    assert_clean_error(run("trust", "move", project, other / DB), 1, "not log", project)
    assert_clean_error(run("trust", "move", project, other / "none.db"), 2, "no ledger")
    assert_clean_error(run("trust", "move", "no.such/log", other / DB), 2, "no log")
    assert _trust_files(workdir.parent / "home") == before
    [log] = [x for x in _logs(run) if x["origin"] == project]
    assert log["location"] == str(workdir / DB)


def test_trust_move_refuses_an_older_copy(project, run, workdir):
    old = workdir.parent / "old"
    shutil.copytree(workdir, old)
    assert_ok(run("register", MODEL_FILE, "--name", "newer"))
    assert_clean_error(run("trust", "move", project, old / DB), 1, "rolled back")
    [log] = [x for x in _logs(run) if x["origin"] == project]
    assert log["location"] == str(workdir / DB)


def test_register_in_an_imported_copy_needs_trust_move(project, run, workdir):
    assert_ok(run("export", "backup.json"))
    assert_ok(run("--ledger", "restored.db", "import", "backup.json"))
    assert_ok(run("--ledger", "restored.db", "verify", MODEL_FILE))
    assert_clean_error(
        run("--ledger", "restored.db", "register", MODEL_FILE, "--name", "n"), 1, "trust move"
    )
    assert_ok(run("trust", "move", project, "restored.db"))
    assert_ok(run("--ledger", "restored.db", "register", MODEL_FILE, "--name", "n"))


# -- a deleted ledger ----------------------------------------------------------------------


def test_rm_rf_then_init_is_refused_leaving_nothing_then_forget_lets_init_work(
    project, run, workdir
):
    shutil.rmtree(workdir / ".modelchain")
    for _ in range(2):  # the second refusal reads exactly like the first: no leftover file
        assert_clean_error(
            run("init"), 1, "is gone", "modelchain trust forget --ledger", "trust move"
        )
        assert not (workdir / ".modelchain").exists()
    assert_clean_error(run("register", MODEL_FILE), 1, "is gone")
    assert not (workdir / ".modelchain").exists()

    assert_ok(run("trust", "forget", "--ledger", DB, "--yes"))
    out = json.loads(assert_ok(run("init", "--json")).stdout)
    assert out["origin"] != project
    assert_ok(run("register", MODEL_FILE))
    assert [x["origin"] for x in _logs(run)] == [out["origin"]]


def test_seed_ledger_deleted_then_forgotten_main_py_starts_again(model, workdir, run, run_script):
    assert check(workdir, _Sink())
    for p in workdir.glob("blockchain_data.json*"):
        p.unlink()
    result = run_script("main.py")
    assert result.code == 1, result
    assert "Is Blockchain Valid? False" in result.stdout
    assert "trust forget --ledger" in result.stdout
    assert not list(workdir.glob("blockchain_data.json*"))  # no lock file left either
    assert_ok(run("trust", "forget", "--ledger", "blockchain_data.json", "--yes"))
    result = run_script("main.py")
    assert result.code == 0, result
    assert result.stdout.startswith("Model hash stored in block 0: ")


def test_ledger_replaced_by_another_log_names_the_way_back(project, run, workdir):
    other = workdir.parent / "other"
    other.mkdir()
    (other / "o.bin").write_bytes(b"other")
    make_ledger(other / DB, other / "o.bin")
    shutil.rmtree(workdir / ".modelchain")
    shutil.copytree(other / ".modelchain", workdir / ".modelchain")
    assert_clean_error(run("audit"), 1, "was accepted here before", "trust forget --ledger")


def test_init_with_the_origin_of_a_remembered_log_is_refused(project, run, workdir):
    """A second ledger of a remembered log would fork it, and once it grew past the original,
    the original would be the one accused."""
    assert_clean_error(
        run("--ledger", "second.db", "init", "--origin", project), 2, "already exists"
    )
    assert not (workdir / "second.db").exists()


# -- list / forget -------------------------------------------------------------------------


def test_trust_list(project, run, workdir, home):
    [log] = _logs(run)
    assert log["origin"] == project
    assert log["size"] == 1
    assert log["location"] == str(workdir / DB)
    assert log["copies"] == []
    assert log["key"].startswith(project + "+") and len(log["key"]) == len(project) + 9
    text = assert_ok(run("trust", "list")).stdout
    assert project in text and str(workdir / DB) in text and "size 1" in text
    out = json.loads(assert_ok(run("trust", "list", "--json")).stdout)
    assert out["home"] == str(home)


def test_trust_list_of_a_fresh_home(run, home):
    assert json.loads(assert_ok(run("trust", "list", "--json")).stdout)["logs"] == []
    assert "remembers no logs" in assert_ok(run("trust", "list")).stdout


def test_forget_without_yes_and_without_a_terminal_is_refused(project, run, home):
    before = _trust_files(home)
    assert_clean_error(run("trust", "forget", project), 2, "--yes")
    assert_clean_error(run("trust", "forget", "--ledger", DB, input="y\n"), 2, "--yes")
    assert _trust_files(home) == before


def test_forget_errors(project, run, home):
    before = _trust_files(home)
    assert_clean_error(run("trust", "forget", "no.such/log", "--yes"), 2, "no log")
    assert_clean_error(run("trust", "forget", "--ledger", "nowhere.db", "--yes"), 2, "no log")
    assert_clean_error(run("trust", "forget", "--yes"), 2, "ORIGIN or --ledger")
    assert_clean_error(run("trust", "forget", project, "--ledger", DB, "--yes"), 2, "not both")
    assert _trust_files(home) == before


def test_forget_by_origin(project, run, workdir):
    out = json.loads(assert_ok(run("trust", "forget", project, "--yes", "--json")).stdout)
    assert out == {"origin": project, "forgot": "log", "locations": [str(workdir / DB)]}
    assert _logs(run) == []
    assert_ok(run("audit"))  # accepted afresh: trust on first use again
    assert [x["origin"] for x in _logs(run)] == [project]


def test_forget_a_copy_location_keeps_the_log(project, run, workdir):
    copy = workdir.parent / "copy"
    shutil.copytree(workdir, copy)
    assert_ok(run("audit", cwd=copy))
    [log] = _logs(run)
    assert log["copies"] == [str(copy / DB)]
    out = json.loads(
        assert_ok(run("trust", "forget", "--ledger", copy / DB, "--yes", "--json")).stdout
    )
    assert out["forgot"] == "location"
    [log] = _logs(run)
    assert log["copies"] == [] and log["size"] == 1 and log["location"] == str(workdir / DB)
