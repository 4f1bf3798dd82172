"""`modelchain scan` on a Hugging-Face snapshot folder: every data file named with its format;
the parsers themselves are in unit/core/test_formats.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from unit.core.test_formats import png


def _hf_folder(root: Path) -> Path:
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (root / "generation_config.json").write_text(json.dumps({"max_new_tokens": 20}))
    (root / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"vocab": {"a": 0, "é": 1}}})
    )
    (root / "README.md").write_text("---\nlicense: mit\n---\n# Tiny\n\nA model card.\n")
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (root / "assets").mkdir()
    (root / "assets" / "logo.png").write_bytes(png(4, 3))
    weight_map = {}
    seen_0x78 = False
    for i in range(1, 3):
        name = f"model-0000{i}-of-00002.safetensors"
        for pad in range(400):  # make the header length's low byte 0x78 for one shard
            tensors = {f"layer{i}.w": np.arange(6, dtype=np.float32).reshape(2, 3)}
            st.save_file(tensors, str(root / name), metadata={"format": "pt", "p": "x" * pad})
            first = (root / name).read_bytes()[0]
            if i == 2 or first == 0x78:
                break
        seen_0x78 |= (root / name).read_bytes()[0] == 0x78
        weight_map[f"layer{i}.w"] = name
    assert seen_0x78
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 48}, "weight_map": weight_map})
    )
    return root


def test_scan_of_a_hugging_face_snapshot_exits_0_with_a_table(run, tmp_path: Path) -> None:
    folder = _hf_folder(tmp_path / "snapshot")
    result = run("scan", folder)
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "FORMAT", "VERDICT"]
    table = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert table["config.json"] == ["json", "data"]
    assert table["tokenizer.json"] == ["json", "data"]
    assert table["model.safetensors.index.json"] == ["json", "data"]
    assert table["README.md"] == ["text", "data"]
    assert table["assets/logo.png"] == ["png", "data"]
    assert table["model-00001-of-00002.safetensors"] == ["safetensors", "data"]
    report = json.loads(run("scan", folder, "--json").stdout)
    assert report["ok"] is True
    assert {f["path"]: (f["format"], f["verdict"]) for f in report["files"]}["vocab.txt"] == (
        "text",
        "data",
    )


def test_a_json_file_that_is_not_utf8_json_is_not_data(run, tmp_path: Path) -> None:
    folder = _hf_folder(tmp_path / "snapshot")
    (folder / "config.json").write_bytes('{"model_type": "llama"}'.encode("utf-16"))
    (folder / "tokenizer.json").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    result = run("scan", folder, "--json")
    assert result.code == 1
    files = {f["path"]: f for f in json.loads(result.stdout)["files"]}
    assert files["config.json"]["verdict"] == "UNSAFE"
    assert files["tokenizer.json"]["verdict"] == "UNSAFE"
    assert files["README.md"]["verdict"] == "data"
