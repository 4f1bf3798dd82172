"""Provenance: what `register` records automatically and from --data/--param/--metric or an
in-toto file, the refusal of bad provenance files, `modelchain show`, and the seed demo's
training provenance."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess

import pytest
from conftest import MODEL_FILE, assert_clean_error, assert_ok, sha256sum, snapshot
from hypothesis import given
from hypothesis import strategies as st

from modelchain.claims.provenance import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Provenance,
    _public_url,
    git_source,
    parse_assignments,
    statement,
)
from modelchain.core.errors import InputError, LedgerInvalid, UsageError
from modelchain.ledgers import Ledger
from modelchain.log.block import Block, parse_ref

SLSA = "https://slsa.dev/provenance/v1"


def _block(run, *args) -> dict:
    out = assert_ok(run("register", *args, "--json")).stdout
    return json.loads(out)["block"]


def test_register_records_library_versions_by_default(run, model):
    block = _block(run, model)
    prov = block["provenance"]
    assert prov["predicateType"] == PREDICATE_TYPE
    libs = prov["predicate"]["libraries"]
    import sklearn

    import modelchain

    assert libs["scikit-learn"] == sklearn.__version__
    assert libs["modelchain"] == modelchain.__version__ and "python" in libs
    assert "source" not in prov["predicate"]  # the work dir is not a git checkout


def test_no_provenance_records_none(run, model):
    assert "provenance" not in _block(run, model, "--no-provenance")
    shown = assert_ok(run("show", MODEL_FILE)).stdout
    assert "Provenance: none recorded" in shown and "Signatures: none" in shown


def test_data_params_and_metrics(run, model, workdir):
    data = workdir / "train.csv"
    data.write_text("x,y\n1,2\n")
    ddir = workdir / "images"
    ddir.mkdir()
    (ddir / "a.png").write_bytes(b"\x89PNG")
    block = _block(
        run,
        model,
        "--data",
        data,
        "--data",
        ddir,
        "--param",
        "C=1.5",
        "--param",
        "solver=lbfgs",
        "--param",
        "layers=[64, 64]",
        "--metric",
        "accuracy=0.97",
        "--metric",
        "note=not json",
    )
    predicate = block["provenance"]["predicate"]
    assert predicate["trainingData"][0]["digest"]["sha256"] == sha256sum(data)
    assert predicate["trainingData"][0]["name"] == "train.csv"
    hashed = json.loads(assert_ok(run("hash", ddir, "--json")).stdout)["sha256"]
    assert predicate["trainingData"][1]["digest"]["sha256"] == hashed
    assert predicate["hyperparameters"] == {"C": 1.5, "solver": "lbfgs", "layers": [64, 64]}
    assert predicate["metrics"] == {"accuracy": 0.97, "note": "not json"}
    text = assert_ok(run("show", f"{MODEL_FILE}@1")).stdout
    assert f"training data: train.csv  sha256 {sha256sum(data)}" in text
    assert 'metrics: accuracy=0.97, note="not json"' in text


def _git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_git_commit_is_recorded_without_credentials(run, model, workdir):
    _git(workdir, "init", "-q")
    _git(workdir, "remote", "add", "origin", "https://user:s3cret@example.com/team/repo.git")
    (workdir / "train.py").write_text("print('train')\n")
    _git(workdir, "add", "train.py")
    _git(workdir, "commit", "-q", "-m", "x")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout.strip()
    source = _block(run, model)["provenance"]["predicate"]["source"]
    assert source == {
        "commit": head,
        "dirty": False,
        "repository": "https://example.com/team/repo.git",
    }
    (workdir / "train.py").write_text("print('changed')\n")
    assert git_source(model) == {**source, "dirty": True}


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://github.com/o/r", "https://github.com/o/r"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("ssh://git@host:2222/o/r", "ssh://host:2222/o/r"),
    ],
)
def test_remote_urls_lose_their_credentials(url, public):
    assert _public_url(url) == public


def test_no_git_checkout_and_no_git_binary_are_silent(tmp_path, monkeypatch):
    (tmp_path / "m").write_bytes(b"m")
    assert git_source(tmp_path / "m") is None
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert git_source(tmp_path / "m") is None


def test_provenance_statement_with_matching_subject(run, model, workdir):
    path = workdir / "prov.json"
    predicate = {"buildDefinition": {"buildType": "x"}, "runDetails": {}}
    path.write_text(json.dumps(statement(MODEL_FILE, sha256sum(model), predicate, SLSA)))
    block = _block(run, model, "--provenance", path)
    assert block["provenance"] == {"predicateType": SLSA, "predicate": predicate}
    text = assert_ok(run("show", MODEL_FILE)).stdout
    assert f"Provenance ({SLSA})" in text and '"buildType": "x"' in text


def test_bare_predicate_is_ours_and_options_add_to_it(run, model, workdir):
    path = workdir / "prov.json"
    path.write_text(json.dumps({"metrics": {"f1": 0.5}, "notes": "by hand"}))
    block = _block(run, model, "--provenance", path, "--metric", "accuracy=1")
    predicate = block["provenance"]["predicate"]
    assert predicate["metrics"] == {"f1": 0.5, "accuracy": 1}
    assert predicate["notes"] == "by hand" and "libraries" in predicate


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ('{"trainingData": "iris"}', "'trainingData' must be an array"),
        ('{"trainingData": [{"digest": {"sha256": "XYZ"}}]}', "not lowercase hex"),
        ('{"metrics": [1]}', "'metrics' must be a JSON object"),
        ('{"libraries": {"numpy": 2}}', "version string"),
        ('{"_type": "https://example.com/other"}', "unsupported _type"),
        (json.dumps({"_type": STATEMENT_TYPE, "predicate": {}}), "predicateType"),
        (
            json.dumps({"_type": STATEMENT_TYPE, "subject": [{"name": "x"}], "predicateType": "t"}),
            "no 'digest'",
        ),
        (
            json.dumps(statement("other.bin", "0" * 64, {}, SLSA)),
            "do not include this model",
        ),
        ('{"metrics": {"big": 1e400}}', "canonical JSON"),
        ('{"metrics": {"loss": NaN}}', "canonical JSON"),  # the one strict reader
        ('{"notes": ' + "[" * 200 + "]" * 200 + "}", "nested 201 levels deep"),
        (" " * (1 << 20) + "{}", "too large"),
    ],
)
def test_bad_provenance_files_register_nothing(run, model, workdir, content, needle):
    ledger = workdir / "l.db"
    path = workdir / "prov.json"
    path.write_text(content)
    result = run("--ledger", ledger, "register", model, "--provenance", path)
    assert_clean_error(result, 2, needle)
    assert _size(ledger) == 0


def _size(location) -> int:
    """Blocks in the ledger at `location` (0 if there is none)."""
    if not location.exists():
        return 0
    with Ledger.open(location) as ledger:
        return len(ledger)


def test_bad_provenance_options(run, model, workdir):
    ledger = workdir / "chain.json"
    assert_ok(run("--ledger", ledger, "register", model))
    before = snapshot(ledger)
    foreign = workdir / "slsa.json"
    foreign.write_text(json.dumps({"predicateType": SLSA, "predicate": {}}))
    for args, needle in (
        (["--param", "noequals"], "--param takes KEY=VALUE"),
        (["--metric", "=1"], "--metric takes KEY=VALUE"),
        (["--provenance", workdir / "missing.json"], "no such provenance file"),
        (["--provenance", workdir], "is a directory"),
        (["--provenance", "/dev/zero"], "not a regular file"),
        (["--data", workdir / "missing.csv"], "missing.csv"),
        (["--provenance", foreign, "--param", "a=1"], "predicate type"),
    ):
        assert_clean_error(run("--ledger", ledger, "register", model, *args), 2, needle)
    assert snapshot(ledger) == before


def test_provenance_in_a_stored_block_is_covered_and_validated(run, model, workdir):
    ledger = workdir / "chain.json"
    assert_ok(run("--ledger", ledger, "register", model, "--metric", "accuracy=0.9"))
    blocks = json.loads(ledger.read_text())
    blocks[0]["provenance"]["predicate"]["metrics"]["accuracy"] = 0.99
    ledger.write_text(json.dumps(blocks))
    assert_clean_error(run("--ledger", ledger, "audit"), 1, "signed checkpoint")
    raw = dict(blocks[0], provenance={"predicate": {}})
    with pytest.raises(LedgerInvalid, match="provenance"):
        Block.from_raw(raw, 0)


# -- show ---------------------------------------------------------------------------------


def test_show_versions_and_errors(run, model):
    assert_ok(run("register", model, "--meta", "team=vision"))
    model.write_bytes(model.read_bytes() + b"\0")
    assert_ok(run("register", model))
    newest = json.loads(assert_ok(run("show", MODEL_FILE, "--json")).stdout)
    assert (newest["version"], newest["index"]) == (2, 1)
    assert newest["sha256"] == sha256sum(model)
    assert json.loads(assert_ok(run("show", f"{MODEL_FILE}@latest", "--json")).stdout) == newest
    first = json.loads(assert_ok(run("show", f"{MODEL_FILE}@1", "--json")).stdout)
    assert first["version"] == 1 and first["metadata"] == {"team": "vision"}
    assert "metadata:    team=vision" in assert_ok(run("show", f"{MODEL_FILE}@1")).stdout
    assert_clean_error(run("show", "nope"), 1, "'nope' is not registered")
    assert_clean_error(run("show", f"{MODEL_FILE}@3"), 1, "no version 3", "1 to 2")
    assert_clean_error(run("show", f"{MODEL_FILE}@0"), 2, "count from 1")
    result = run("show", "nope", "--json")
    assert json.loads(result.stdout)["exit_code"] == 1


def test_show_without_a_ledger_is_a_clean_error(run, workdir):
    result = run("--ledger", workdir / "none.db", "show", "x")
    assert_clean_error(result)
    assert not (workdir / "none.db").exists()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("m", ("m", None)),
        ("m@2", ("m", 2)),
        ("m@latest", ("m", None)),
        ("org@team/m@3", ("org@team/m", 3)),
        ("user@host", ("user@host", None)),
        ("@3", ("@3", None)),
    ],
)
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@given(st.text(min_size=1).filter(lambda s: "@" not in s))
def test_parse_ref_leaves_plain_names_alone(name):
    assert parse_ref(name) == (name, None)


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda k: "=" not in k and k.strip() == k),
        st.integers(-(2**53) + 1, 2**53 - 1) | st.booleans() | st.lists(st.integers(0, 9)),
    )
)
def test_assignments_parse_json_values(values):
    items = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    assert parse_assignments(items, "--param") == values


def test_assignments_keep_non_json_text():
    assert parse_assignments(["a=NaN", "b=x=y", "c="], "--param") == {
        "a": "NaN",
        "b": "x=y",
        "c": "",
    }
    with pytest.raises(UsageError):
        parse_assignments(["novalue"], "--param")


def test_provenance_from_json_forms():
    ours = Provenance.from_json({"metrics": {"a": 1}})
    assert ours.is_ours and ours.subjects == ()
    pair = Provenance.from_json({"predicateType": SLSA, "predicate": {"x": 1}})
    assert not pair.is_ours and pair.to_json() == {"predicateType": SLSA, "predicate": {"x": 1}}
    stmt = Provenance.from_json(statement("m", "A" * 64, {}, SLSA))
    assert stmt.subjects == ("a" * 64,)
    stmt.check_subject("a" * 64)
    stmt.check_subject("b" * 64, ["a" * 64])  # a directory whose one file is the subject
    with pytest.raises(InputError, match="do not include"):
        stmt.check_subject("b" * 64)


# -- the seed demo ------------------------------------------------------------------------


def test_seed_records_training_provenance(workdir, run_script, run):
    from sklearn.datasets import load_iris

    result = run_script("train_model.py")
    assert result.code == 0, result
    assert result.stdout.splitlines() == [
        "Model trained (test accuracy 1.00) and saved to iris_model.joblib"
    ]
    statement_file = json.loads((workdir / "iris_model.provenance.json").read_text())
    assert statement_file["subject"][0]["digest"]["sha256"] == sha256sum(workdir / MODEL_FILE)
    assert run_script("main.py").code == 0

    with Ledger.open(workdir / "blockchain_data.json") as ledger:
        block = ledger.registration(MODEL_FILE)
    assert block.provenance is not None
    predicate = block.provenance["predicate"]
    x, y = load_iris(return_X_y=True)
    data = predicate["trainingData"][0]
    assert data["digest"]["sha256"] == hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    assert data["arrays"]["X"] == {"dtype": str(x.dtype), "shape": [150, 4]}
    assert predicate["hyperparameters"]["max_iter"] == 200
    assert predicate["metrics"]["test_accuracy"] == 1.0
    shown = assert_ok(run("--ledger", "blockchain_data.json", "show", MODEL_FILE)).stdout
    assert "test_accuracy=1.0" in shown


def test_seed_skips_provenance_that_is_not_about_the_model(model, workdir):
    from modelchain.use.seed import PROVENANCE_FILE, check

    (workdir / PROVENANCE_FILE).write_text(json.dumps(statement(MODEL_FILE, "0" * 64, {})))
    out = io.StringIO()
    assert check(workdir, out)
    assert out.getvalue().splitlines()[-1] == "Is Blockchain Valid? True"
    with Ledger.open(workdir / "blockchain_data.json") as ledger:
        assert ledger.registration(MODEL_FILE).provenance is None
