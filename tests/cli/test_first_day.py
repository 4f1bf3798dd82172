"""What a new user meets on the first day: finding the project's ledger from a subfolder,
messages that name the way out, `hash` like sha256sum, `verify --json` that always says
whether it verified, and the seed scripts run from the wrong Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Run, assert_clean_error, assert_ok, sha256sum


@pytest.fixture
def project(run: Run, workdir: Path) -> Path:
    """A project with a ledger at its top and one registered file."""
    (workdir / "m.bin").write_bytes(b"weights")
    assert_ok(run("init"))
    assert_ok(run("register", "m.bin"))
    return workdir


def test_a_subfolder_uses_the_projects_ledger(run: Run, project: Path) -> None:
    deep = project / "notebooks" / "experiments"
    deep.mkdir(parents=True)
    r = assert_ok(run("verify", "../../m.bin", "--name", "m.bin", cwd=deep))
    assert "matches m.bin v1" in r.stdout
    log = assert_ok(run("log", "--json", cwd=deep))
    assert [b["name"] for b in json.loads(log.stdout)] == ["m.bin"]
    assert not (deep / ".modelchain").exists()  # no second ledger was started
    assert not (project / "notebooks" / ".modelchain").exists()


def test_register_from_a_subfolder_appends_to_the_same_ledger(run: Run, project: Path) -> None:
    sub = project / "sub"
    sub.mkdir()
    (sub / "n.bin").write_bytes(b"other")
    assert_ok(run("register", "n.bin", cwd=sub))
    names = [b["name"] for b in json.loads(assert_ok(run("log", "--json")).stdout)]
    assert names == ["m.bin", "n.bin"]


def test_the_search_stops_at_the_home_folder(run: Run, project: Path) -> None:
    """A ledger above the user's home folder is someone else's: it is never picked up."""
    user_home = project / "users" / "ann"
    inside = user_home / "work"
    inside.mkdir(parents=True)
    r = run("log", cwd=inside, HOME=str(user_home))
    assert_clean_error(r, 2, "no ledger at .modelchain/ledger.db (nor in a parent folder)")
    # ... while the home folder itself is still looked in
    assert_ok(run("init", "--ledger", str(user_home / ".modelchain" / "ledger.db")))
    assert_ok(run("log", cwd=inside, HOME=str(user_home)))


def test_no_ledger_names_every_way_out(run: Run) -> None:
    line = assert_clean_error(run("verify", "x.bin"), 2)
    line = assert_clean_error(run("log"), 2)
    for needle in ("modelchain init", "--ledger", "MODELCHAIN_LEDGER"):
        assert needle in line


def test_the_environment_variable_wins_over_the_search(run: Run, project: Path) -> None:
    elsewhere = project / "other" / "elsewhere.db"
    r = run("log", MODELCHAIN_LEDGER=str(elsewhere))
    assert_clean_error(r, 2, f"no ledger at {elsewhere}")


def test_a_folder_given_as_ledger_is_called_a_folder(run: Run, workdir: Path) -> None:
    (workdir / "dir").mkdir()
    line = assert_clean_error(run("log", "--ledger", "dir"), 2, "is a directory")
    assert "MODELCHAIN_HOME" not in line


def test_home_inside_the_ledgers_folder_says_so_the_right_way_round(
    run: Run, workdir: Path
) -> None:
    home = workdir / "state" / "home"
    home.mkdir(parents=True)
    r = run("init", "--ledger", "state/l.db", MODELCHAIN_HOME=str(home))
    assert_clean_error(r, 2, "MODELCHAIN_HOME", "must not lie inside the ledger's folder")
    r = run("init", "--ledger", str(home / "l.db"), MODELCHAIN_HOME=str(home))
    assert_clean_error(r, 2, "must not lie inside MODELCHAIN_HOME")
    assert not (home / "l.db").exists() and not (workdir / "state" / "l.db").exists()


def test_hash_takes_several_paths_and_stdin_like_sha256sum(run: Run, workdir: Path) -> None:
    a, b = workdir / "a.bin", workdir / "b.bin"
    a.write_bytes(b"alpha")
    b.write_bytes(b"beta" * 1000)
    r = assert_ok(run("hash", "a.bin", "b.bin"))
    assert r.stdout == f"{sha256sum(a)}  a.bin\n{sha256sum(b)}  b.bin\n"
    r = assert_ok(run("hash", "-", input="alpha"))
    assert r.stdout == f"{sha256sum(a)}  -\n"
    out = json.loads(assert_ok(run("hash", "a.bin", "b.bin", "--json")).stdout)
    assert [o["sha256"] for o in out] == [sha256sum(a), sha256sum(b)]


def test_hash_goes_on_past_a_missing_path(run: Run, workdir: Path) -> None:
    a = workdir / "a.bin"
    a.write_bytes(b"alpha")
    r = run("hash", "missing.bin", "a.bin")
    assert r.code == 2
    assert r.stdout == f"{sha256sum(a)}  a.bin\n"
    assert r.stderr == "modelchain: error: no such file or directory: missing.bin\n"
    out = json.loads(run("hash", "missing.bin", "a.bin", "--json").stdout)
    assert out[0]["exit_code"] == 2 and out[1]["sha256"] == sha256sum(a)


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("tampered", 1),
        ("unregistered", 1),
        ("missing", 2),
    ],
)
def test_verify_json_says_verified_in_every_outcome(
    run: Run, project: Path, setup: str, code: int
) -> None:
    target = "m.bin"
    if setup == "tampered":
        (project / "m.bin").write_bytes(b"trojan")
    elif setup == "unregistered":
        (project / "u.bin").write_bytes(b"new")
        target = "u.bin"
    else:
        target = "gone.bin"
    r = run("verify", target, "--json")
    assert r.code == code
    out = json.loads(r.stdout)
    assert out["verified"] is False
    assert out["exit_code"] == code


def test_verify_json_success_says_verified(run: Run, project: Path) -> None:
    assert json.loads(assert_ok(run("verify", "m.bin", "--json")).stdout)["verified"] is True


def test_serve_without_the_operator_key_is_a_usage_error(
    run: Run, project: Path, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    other = tmp_path / "other-home"
    other.mkdir()
    r = run("serve", "--port", "0", MODELCHAIN_HOME=str(other))
    line = assert_clean_error(r, 2, "no operator key at", "MODELCHAIN_HOME")
    assert "--key" not in line


@pytest.mark.parametrize("script", ["main.py", "train_model.py"])
def test_seed_scripts_outside_the_environment_say_how_to_run(tmp_path: Path, script: str) -> None:
    """`python main.py` with a Python that lacks the dependencies: one line, not a traceback
    (-S leaves out site-packages, as a system Python without the virtual environment)."""
    r = subprocess.run(
        [sys.executable, "-S", str(REPO / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "make install" in lines[0] or "install" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_verify_takes_several_paths_and_reports_each(run: Run, project: Path) -> None:
    (project / "n.bin").write_bytes(b"second")
    assert_ok(run("register", "n.bin"))
    r = assert_ok(run("verify", "m.bin", "n.bin"))
    assert "matches m.bin v1" in r.stdout and "matches n.bin v1" in r.stdout
    (project / "n.bin").write_bytes(b"trojan")
    r = run("verify", "n.bin", "m.bin", "gone.bin")
    assert r.code == 2  # the worst: an unreadable PATH
    assert "matches m.bin v1" in r.stdout  # checked although n.bin failed before it
    assert r.stderr.count("modelchain: error:") == 2
    out = json.loads(run("verify", "m.bin", "n.bin", "--json").stdout)
    assert [o["verified"] for o in out] == [True, False]
    assert out[1]["exit_code"] == 1 and out[1]["path"] == "n.bin"


def test_several_paths_refuse_options_for_one(run: Run, project: Path) -> None:
    for option in (["--name", "m.bin"], ["--version", "1"]):
        r = run("verify", "m.bin", "m.bin", *option)
        assert_clean_error(r, 2, "check one PATH")


def test_scan_takes_several_paths(run: Run, workdir: Path) -> None:
    import pickle

    (workdir / "config.json").write_text('{"a": 1}', encoding="utf-8")
    (workdir / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, 4))
    r = assert_ok(run("scan", "config.json", "ok.pkl"))
    assert "config.json" in r.stdout and "ok.pkl" in r.stdout
    marker = workdir / "marker"
    (workdir / "bad.pkl").write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    r = run("scan", "config.json", "bad.pkl", "--json")
    assert r.code == 1
    out = json.loads(r.stdout)
    assert [(o["ok"], o["verdict"]) for o in out] == [(True, "data"), (False, "UNSAFE")]
    assert len(out) == 2
    assert not marker.exists()


def test_verify_load_refuses_an_unknown_format_before_reading(run: Run, workdir: Path) -> None:
    """The format is decided from the name and first bytes before the model is hashed and
    looked up: an unregistered file of no known format gets the format error, not
    "not registered" (which would mean it was read and hashed first)."""
    (workdir / "weights.xyz").write_bytes(b"\x00\x01" * 50_000)
    assert_ok(run("init"))
    line = assert_clean_error(run("verify", "weights.xyz", "--load"), 2, "--format")
    assert "not registered" not in line


def test_verify_load_format_names_the_format(run: Run, model: Path, workdir: Path) -> None:
    renamed = workdir / "model.bin"
    renamed.write_bytes(model.read_bytes())
    assert_ok(run("register", "model.bin"))
    assert_clean_error(run("verify", "model.bin", "--format", "joblib"), 2, "--load")
    r = assert_ok(run("verify", "model.bin", "--load", "--format", "joblib"))
    assert "joblib model loaded" in r.stdout


def test_the_format_choices_are_the_loaders_formats() -> None:
    from modelchain.cli.commands import verify
    from modelchain.use.guard import FORMATS

    option = next(p for p in verify.params if p.name == "load_format")
    assert sorted(option.type.choices) == sorted(FORMATS)  # type: ignore[attr-defined]


def test_note_verify_reads_a_regular_file_within_a_limit(run: Run, workdir: Path) -> None:
    """A FIFO named as the note would block for ever, a huge file be read whole: both are
    refused at once with one line."""
    import os

    key = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    fifo = workdir / "note.fifo"
    os.mkfifo(fifo)
    assert_clean_error(run("note", "verify", "--key", key, str(fifo), timeout=20), 2, "regular")
    big = workdir / "big.note"
    big.write_bytes(b"x" * ((1 << 20) + 1))
    assert_clean_error(run("note", "verify", "--key", key, str(big)), 2, "too large")
    r = run("note", "verify", "--key", key, "-", input="y" * ((1 << 20) + 1))
    assert_clean_error(r, 2, "too large")
