"""`modelchain scan` on the command line: exit codes, the refused import named, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok
from corpus import build_corpus


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("scan-cli")
    marker = base / "MARKER"
    built = build_corpus(base / "files", marker, kinds=("logistic_regression", "pipeline"))
    yield base, built
    assert not marker.exists(), "a payload ran"


def test_benign_file_exits_0(run, files) -> None:
    _, built = files
    benign = next(f for f in built if not f.malicious and f.path.suffix == ".joblib")
    result = assert_ok(run("scan", benign.path))
    assert " ok (" in result.stdout and "REFUSED" not in result.stdout
    assert result.stdout.split()[:3] == ["PATH", "FORMAT", "VERDICT"]


def test_malicious_file_exits_1_naming_the_import(run, files) -> None:
    _, built = files
    evil = next(
        f for f in built if f.malicious and f.technique == "os_system" and f.placement == "spliced"
    )
    result = run("scan", evil.path)
    assert result.code == 1, result
    assert "UNSAFE" in result.stdout and "REFUSED" in result.stdout
    assert "system" in result.stdout
    assert "Traceback" not in result.stderr


def test_json_report_and_directory(run, files) -> None:
    base, built = files
    result = run("scan", base / "files", "--json")
    assert result.code == 1  # the directory holds malicious files
    report = json.loads(result.stdout)
    assert report["format"] == "directory" and report["ok"] is False
    verdicts = {Path(r["path"]).name: r["ok"] for r in report["files"]}
    for f in built:
        assert verdicts[f.path.name] is (not f.malicious), f


def test_missing_and_garbage_input(run, workdir) -> None:
    assert_clean_error(run("scan", "nothere.pkl"), 2, "nothere.pkl")
    garbage = workdir / "garbage.pkl"
    garbage.write_bytes(b"\x80\x05not a pickle at all")
    result = run("scan", garbage)
    assert result.code == 1 and "finding:" in result.stdout
