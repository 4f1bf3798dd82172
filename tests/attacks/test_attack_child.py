"""`verify --load` runs the test load in a child process: code planted beside the model (a fake
`modelchain/` package, `sitecustomize.py`, a shadowed standard module) or named by the
caller's environment (PYTHONPATH, PYTHONSTARTUP) must never run there, and nothing the child
prints on stdout can forge its verdict. Every planted file only ever touches a marker."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from modelchain import Home, Ledger  # noqa: E402
from modelchain.use import guard  # noqa: E402
from modelchain.use.guard import verify_load_in_child  # noqa: E402

FORGED = {"loaded": True, "exit_code": 0, "type": "sklearn.pipeline.Pipeline", "path": "x"}


def _plant(directory: Path, marker: Path) -> None:
    """Files that, if imported by the child, touch `marker` and print a forged verdict."""
    code = (
        "import json, sys\n"
        f"open({str(marker)!r}, 'a').close()\n"
        f"print(json.dumps({FORGED!r}), flush=True)\n"
    )
    fake = directory / "modelchain"
    fake.mkdir()
    (fake / "__init__.py").write_text(code)
    (fake / "guard.py").write_text(code + "def child_main(argv):\n    return 0\n")
    for name in ("sitecustomize.py", "usercustomize.py", "json.py", "argparse.py"):
        (directory / name).write_text(code)
    (directory / "startup.py").write_text(code)


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A working directory full of planted code, and PYTHON* variables pointing at it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MODELCHAIN_HOME", str(home))
    for var in ("MODELCHAIN_LEDGER", "MODELCHAIN_VERIFIER_KEY"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "MARKER"
    _plant(work, marker)
    monkeypatch.chdir(work)
    monkeypatch.setenv("PYTHONPATH", str(work))
    monkeypatch.setenv("PYTHONSTARTUP", str(work / "startup.py"))
    monkeypatch.setenv("PYTHONINSPECT", "1")
    return work, marker


def _model(work: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = work / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), path)
    return path


def test_planted_code_never_runs_and_cannot_forge_a_refusal(hostile: tuple[Path, Path]) -> None:
    work, marker = hostile
    path = _model(work)
    with Ledger.open(work / "l.db", home=Home(work.parent / "home"), create=True) as led:
        led.register(path)
    good = verify_load_in_child(path, ledger_location="l.db", timeout=120)
    assert good["loaded"] is True and good["type"].endswith("LogisticRegression"), good
    path.write_bytes(path.read_bytes() + b"\0")  # tampered: the forged verdict says loaded
    bad = verify_load_in_child(path, ledger_location="l.db", timeout=120)
    assert bad["loaded"] is False and bad["error_type"] == "TamperedModel", bad
    evil = work / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    unsafe = verify_load_in_child(evil, allow_unregistered=True, timeout=120)
    assert unsafe["loaded"] is False and unsafe["error_type"] == "UnsafeModel", unsafe
    assert not marker.exists()


def test_verify_load_from_a_hostile_directory(hostile: tuple[Path, Path]) -> None:
    """The command itself (started so that it does not import from its directory) runs the
    child isolated: a tampered model is refused, the planted code never runs."""
    work, marker = hostile
    path = _model(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-P", "-m", "modelchain", *args]
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=180)

    assert run("register", path.name).returncode == 0
    ok = run("verify", path.name, "--load", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["load"]["loaded"] is True
    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.write_bytes(bytes(data))
    refused = run("verify", path.name, "--load")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_stdout_cannot_forge_a_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that prints a perfect 'loaded' verdict on stdout and exits 0, but writes nothing
    to the verdict pipe, is a failure."""
    forger = f"import json; print(json.dumps({FORGED!r}))"
    monkeypatch.setattr(guard, "_CHILD_CODE", forger)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2], 2))
    verdict = verify_load_in_child(path, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False and verdict["error_type"] == "ChildFailed"


def test_a_verdict_that_disagrees_with_the_exit_status_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forger = (
        "import json, os, sys\n"
        f"os.write(int(sys.argv[-1]), (json.dumps({FORGED!r}) + '\\n').encode())\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setattr(guard, "_CHILD_CODE", forger)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2], 2))
    verdict = verify_load_in_child(path, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False and verdict["error_type"] == "ChildFailed"


def test_the_child_runs_under_a_memory_limit(tmp_path: Path) -> None:
    """Too little address space to even import numpy: the load fails closed."""
    import numpy as np

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(np.arange(4.0), 2))
    verdict = verify_load_in_child(
        path, allow_unregistered=True, timeout=60, memory_limit=64 * 1024**2
    )
    assert verdict["loaded"] is False and verdict["exit_code"] != 0, verdict
    assert "\n" not in verdict["error"]  # one line, whatever failed
    fine = verify_load_in_child(path, allow_unregistered=True, timeout=60)
    assert fine["loaded"] is True, fine


def test_the_child_cannot_see_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCHAIN_SECRET_FOR_TEST", "x")
    probe = (
        "import json, os, sys\n"
        "state = {'cwd': os.getcwd(), 'env': sorted(os.environ), 'path': sys.path,"
        " 'isolated': sys.flags.isolated}\n"
        "os.write(int(sys.argv[-1]), (json.dumps({'loaded': False, 'exit_code': 1,"
        " 'probe': state}) + '\\n').encode())\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setattr(guard, "_CHILD_CODE", probe)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1], 2))
    verdict = verify_load_in_child(path, allow_unregistered=True, timeout=60)
    state = verdict["probe"]
    assert state["isolated"] == 1
    assert "MODELCHAIN_SECRET_FOR_TEST" not in state["env"]
    assert not any(k.startswith("PYTHON") for k in state["env"])
    assert Path(state["cwd"]) != tmp_path
    assert not Path(state["cwd"]).exists()  # an empty directory of its own, removed after
    assert str(tmp_path) not in state["path"] and "" not in state["path"]
