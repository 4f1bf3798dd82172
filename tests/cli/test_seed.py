"""The seed demo, end to end: `python train_model.py` and `python main.py` as a user runs them
(in a fresh directory, with MODELCHAIN_HOME elsewhere), the attacks of the threat model against
blockchain_data.json, its file format, and `modelchain demo`."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

import pytest
import rfc8785
from conftest import MODEL_FILE, Result, assert_clean_error, assert_no_traceback, sha256sum

from modelchain.core import merkle
from modelchain.core.note import Checkpoint, Signer, sign_checkpoint
from modelchain.use.seed import check

LEDGER = "blockchain_data.json"
SIDECAR = LEDGER + ".checkpoint"
VERIFIED = "Model Integrity Verified ✅"
TAMPERED = "Model Tampered ❌"
VALID = "Is Blockchain Valid? True"
INVALID = "Is Blockchain Valid? False"
SEED_FIELDS = ("index", "timestamp", "model_hash", "previous_hash", "current_hash")


def seed_formula(block: dict) -> str:
    """current_hash as the course demo defined it."""
    text = (
        str(block["index"]) + str(block["timestamp"]) + block["model_hash"] + block["previous_hash"]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def assert_invalid(result: Result) -> None:
    """The chain is reported invalid, with a reason, and the model is never called verified."""
    assert_no_traceback(result)
    out = lines(result)
    assert INVALID in out, result
    assert VALID not in out
    assert VERIFIED not in result.stdout
    assert any(line.startswith("Reason: ") and len(line) > len("Reason: ") for line in out)
    assert result.code == 1, result


@pytest.fixture
def main_py(model, workdir, run_script):
    """The state after main.py's first run (made in-process, which is faster; the real first
    run is tested on its own), and a runner for `python main.py`."""
    out = io.StringIO()
    assert check(workdir, out), out.getvalue()
    assert (workdir / LEDGER).is_file()
    return lambda: run_script("main.py")


# -- the scripts --------------------------------------------------------------------------


def test_train_model_script_saves_a_working_model(workdir, run_script):
    result = run_script("train_model.py")
    assert_no_traceback(result)
    assert result.code == 0, result
    path = workdir / MODEL_FILE
    assert path.is_file()

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    clf = joblib.load(path)  # our own freshly written file
    assert isinstance(clf, LogisticRegression)
    x, y = load_iris(return_X_y=True)
    assert (clf.predict(x) == y).mean() > 0.9


def test_main_without_a_model_says_to_train_first(workdir, run_script):
    result = run_script("main.py")
    assert_no_traceback(result)
    assert result.code == 2
    assert "train_model.py" in result.stderr
    assert not (workdir / LEDGER).exists()


def test_first_run_stores_the_hash_in_a_block(model, workdir, run_script, home):
    result = run_script("main.py")
    assert_no_traceback(result)
    assert result.code == 0, result
    out = lines(result)
    assert f"Model hash stored in block 0: {sha256sum(model)}" in out
    assert VALID in out
    assert VERIFIED not in result.stdout and TAMPERED not in result.stdout
    assert (workdir / LEDGER).is_file()
    # the signing key lives in MODELCHAIN_HOME, never beside the ledger
    assert (home / "operator.key").is_file()
    assert not any("key" in p.name for p in workdir.iterdir())


def test_untouched_model_is_verified(main_py):
    for _ in range(2):
        result = main_py()
        assert_no_traceback(result)
        assert result.code == 0, result
        assert lines(result) == [VERIFIED, VALID]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda b: b + b"\0", id="byte-appended"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"not a model", id="replaced"),
    ],
)
def test_modified_model_is_tampered(main_py, model, edit):
    model.write_bytes(edit(model.read_bytes()))
    result = main_py()
    assert_no_traceback(result)
    assert lines(result) == [TAMPERED, VALID]
    assert VERIFIED not in result.stdout
    assert result.code == 1


def _edit_block(field, value):
    def edit(text: str) -> str:
        blocks = json.loads(text)
        blocks[0][field] = value(blocks[0][field]) if callable(value) else value
        return json.dumps(blocks, indent=4)

    return edit


def _flip_hex(h: str) -> str:
    return h[:-1] + ("0" if h[-1] != "0" else "1")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_edit_block("timestamp", lambda t: t + 1), id="timestamp"),
        pytest.param(_edit_block("model_hash", _flip_hex), id="model_hash"),
        pytest.param(_edit_block("previous_hash", _flip_hex), id="previous_hash"),
        pytest.param(_edit_block("metadata", {"approved": True}), id="metadata"),
        pytest.param(lambda t: "[]\n", id="block-deleted"),
        pytest.param(lambda t: json.dumps(json.loads(t) * 2), id="block-duplicated"),
        pytest.param(lambda t: t[: len(t) // 2], id="truncated"),
        pytest.param(lambda t: "", id="emptied"),
        pytest.param(lambda t: "{}", id="not-an-array"),
        pytest.param(lambda t: None, id="file-deleted"),
    ],
)
def test_modified_blockchain_is_invalid(main_py, workdir, edit):
    path = workdir / LEDGER
    text = edit(path.read_text())
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    assert_invalid(main_py())


def test_ledger_and_checkpoint_both_deleted_is_invalid(main_py, workdir):
    """Deleting the whole ledger must not silently start a new one in its place."""
    (workdir / LEDGER).unlink()
    (workdir / SIDECAR).unlink()
    assert_invalid(main_py())


def test_checkpoint_sidecar_deleted_is_invalid(main_py, workdir):
    assert main_py().code == 0
    (workdir / SIDECAR).unlink()
    assert_invalid(main_py())


def _recompute_chain(path: Path, new_model_hash: str) -> list[dict]:
    """The seed's weakness: swap the model's hash and recompute every current_hash."""
    blocks = json.loads(path.read_text())
    previous = "0" * 64
    for block in blocks:
        if block.get("name", MODEL_FILE) == MODEL_FILE:
            block["model_hash"] = new_model_hash
        block["previous_hash"] = previous
        block["current_hash"] = seed_formula(block)
        previous = block["current_hash"]
    path.write_text(json.dumps(blocks, indent=4) + "\n")
    return blocks


@pytest.mark.parametrize("resign", [False, True], ids=["chain-only", "resigned-with-own-key"])
def test_recomputed_chain_after_swapping_the_model_is_detected(
    main_py, run, workdir, model, resign
):
    # two blocks, so that previous_hash links have to be recomputed as well
    assert run("register", "--ledger", LEDGER, MODEL_FILE).code == 0
    assert main_py().code == 0

    model.write_bytes(model.read_bytes() + b"backdoor")
    blocks = _recompute_chain(workdir / LEDGER, sha256sum(model))
    # the rewritten chain is consistent by the seed's own rules ...
    assert all(b["current_hash"] == seed_formula(b) for b in blocks)
    assert all(b["previous_hash"] == a["current_hash"] for a, b in itertools.pairwise(blocks))
    if resign:
        # ... and the attacker may even sign a checkpoint of it, with a key of their own
        origin = (workdir / SIDECAR).read_text().split("\n", 1)[0]
        frontier = merkle.Frontier.empty()
        for block in blocks:
            frontier.append(merkle.leaf_hash(rfc8785.dumps(block)))
        cp = Checkpoint(origin, frontier.size, frontier.root())
        (workdir / SIDECAR).write_text(sign_checkpoint(cp, Signer.generate(origin)))

    assert_invalid(main_py())


def test_rollback_to_an_older_signed_ledger_is_detected(main_py, run, workdir, model):
    old = {name: (workdir / name).read_bytes() for name in (LEDGER, SIDECAR, MODEL_FILE)}
    model.write_bytes(model.read_bytes() + b"v2")
    result = run("register", "--ledger", LEDGER, MODEL_FILE)
    assert result.code == 0, result
    assert "v2" in result.stdout
    assert lines(main_py()) == [VERIFIED, VALID]

    # restore the older, validly signed ledger and checkpoint (and the old model with them)
    for name, data in old.items():
        (workdir / name).write_bytes(data)
    result = main_py()
    assert_invalid(result)
    assert "rolled back" in result.stdout


def test_blockchain_data_json_format(main_py, run, workdir, model):
    first_hash = sha256sum(model)
    model.write_bytes(model.read_bytes() + b"v2")
    assert run("register", "--ledger", LEDGER, MODEL_FILE).code == 0

    blocks = json.loads((workdir / LEDGER).read_text(encoding="utf-8"))
    assert isinstance(blocks, list) and len(blocks) == 2
    previous = "0" * 64
    for i, block in enumerate(blocks):
        assert isinstance(block, dict)
        assert list(block)[:5] == list(SEED_FIELDS)  # reads like the seed's file
        assert block["index"] == i
        assert isinstance(block["timestamp"], int | float)
        assert block["previous_hash"] == previous
        assert block["current_hash"] == seed_formula(block)
        for key in ("model_hash", "previous_hash", "current_hash"):
            assert len(block[key]) == 64 and set(block[key]) <= set("0123456789abcdef")
        previous = block["current_hash"]
    assert blocks[0]["model_hash"] == first_hash
    assert blocks[1]["model_hash"] == sha256sum(model)
    assert lines(main_py()) == [VERIFIED, VALID]


def test_modelchain_demo(run, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = run("demo", TMPDIR=str(tmp), timeout=120)
    assert_no_traceback(result)
    assert result.code == 0, result
    assert "NOT as expected" not in result.stdout
    assert [line.strip() for line in lines(result)].count("as expected") == 6, result.stdout
    for text in (VERIFIED, TAMPERED, VALID, INVALID, "rolled back"):
        assert text in result.stdout
    assert "All steps behaved as expected." in result.stdout
    assert list(tmp.iterdir()) == []  # the demo cleans up after itself


def test_demo_refuses_a_non_empty_directory(run, workdir):
    (workdir / "keep.txt").write_text("mine")
    result = run("demo", "--dir", workdir)
    assert_clean_error(result, 2, "not empty")
    assert [p.name for p in workdir.iterdir()] == ["keep.txt"]
    assert (workdir / "keep.txt").read_text() == "mine"
