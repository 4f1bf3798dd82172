"""Issue 3 through the command line and the package: verify --load, per-tensor safetensors
digests recorded by register and named by verify, and `modelchain.load`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MODEL_FILE, assert_clean_error, assert_ok

import modelchain

PAYLOAD = b"cos\nsystem\n(S'touch MARKER'\ntR."


def test_verify_load_passes_a_clean_model(run, model) -> None:
    assert_ok(run("register", MODEL_FILE))
    result = assert_ok(run("verify", MODEL_FILE, "--load", "--json"))
    verdict = json.loads(result.stdout)
    assert verdict["verified"] is True and verdict["load"]["loaded"] is True
    assert verdict["load"]["type"].endswith("LogisticRegression")


def test_verify_load_refuses_a_registered_but_unsafe_model(run, model, workdir) -> None:
    model.write_bytes(model.read_bytes() + PAYLOAD)  # registered as is: the digest matches
    assert_ok(run("register", MODEL_FILE))
    line = assert_clean_error(run("verify", MODEL_FILE, "--load"), 1, "test load refused")
    assert "second pickle" in line or "system" in line
    assert not (workdir / "MARKER").exists()


def test_safetensors_register_records_and_verify_names_tensors(run, workdir) -> None:
    safetensors_numpy = pytest.importorskip(
        "safetensors.numpy", reason="the formats extra (safetensors) is not installed"
    )
    path = workdir / "weights.safetensors"
    tensors = {"a": np.arange(6, dtype=np.float32), "b": np.ones((2, 3), dtype=np.float32)}
    safetensors_numpy.save_file(tensors, str(path))
    block = json.loads(assert_ok(run("register", path.name, "--json")).stdout)["block"]
    assert set(block["metadata"]["tensors"]) == {"__header__", "a", "b"}
    assert_ok(run("verify", path.name))
    safetensors_numpy.save_file({**tensors, "b": np.zeros((2, 3), dtype=np.float32)}, str(path))
    result = run("verify", path.name, "--json")
    assert result.code == 1
    assert "changed tensors: b" in result.stderr
    assert json.loads(result.stdout)["tensors"]["changed"] == ["b"]


def test_package_level_load(model, workdir, home) -> None:
    ledger = workdir / "l.db"
    with modelchain.Ledger.open(ledger, create=True) as led:
        led.register(model)
    loaded = modelchain.load(model, ledger=str(ledger))
    assert type(loaded).__name__ == "LogisticRegression"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(modelchain.core.errors.ModelMismatch):
        modelchain.load(model, ledger=str(ledger))
