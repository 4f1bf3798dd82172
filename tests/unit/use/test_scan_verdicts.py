"""The scanner's verdicts pinned through `scan_bytes`/`scan_path`, not through the table
`modelchain scan` prints (tests/cli/test_scan_cli.py, test_first_day.py and
test_formats_cli.py carry the same rules as text and exit codes)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from modelchain.core.errors import InputError
from modelchain.use.scan import DirectoryScan, ScanReport, scan_bytes, scan_path

#: `os.system("true")` as protocol-0 opcodes: never unpickled here
SYSTEM = b"cos\nsystem\n(S'true'\ntR."


def safetensors(tensors: dict[str, bytes]) -> bytes:
    """A minimal well-formed safetensors file of U8 tensors."""
    header: dict[str, object] = {}
    offset = 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(tensors.values())


def test_plain_data_pickle_is_ok() -> None:
    report = scan_bytes(pickle.dumps({"w": [1.0, 2.0]}, 4), "ok.pkl")
    assert report.ok and report.verdict == "ok" and report.format != "unknown"
    assert report.refused == [] and report.findings == []
    assert report.parsed_bytes == report.total_bytes > 0


def test_a_refused_import_is_unsafe_and_named() -> None:
    """(test_scan_cli.py: "UNSAFE", "REFUSED", "system"; exit 1)"""
    report = scan_bytes(SYSTEM, "bad.pkl")
    assert not report.ok and report.verdict == "UNSAFE"
    [refused] = report.refused
    assert (refused.module, refused.name, refused.allowed) == ("os", "system", False)
    assert refused.reason.startswith("refused")
    answer = report.as_dict()
    assert answer["ok"] is False and answer["verdict"] == "UNSAFE"
    assert answer["imports"][0]["name"] == "system"


def test_bytes_that_do_not_parse_are_a_finding_never_a_pass() -> None:
    """(test_scan_cli.py::test_missing_and_garbage_input: "finding:", exit 1)"""
    report = scan_bytes(b"\x80\x05not a pickle at all", "garbage.pkl")
    assert not report.ok and report.verdict == "UNSAFE" and report.findings


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        pytest.param("config.json", b'{"a": 1}', "json", id="json"),
        pytest.param("README.md", b"# a model\n", "text", id="text"),
        pytest.param("m.safetensors", safetensors({"w": b"\1\2\3\4"}), "safetensors", id="st"),
    ],
)
def test_data_formats_are_data(name: str, data: bytes, kind: str) -> None:
    """(test_first_day.py::test_scan_takes_several_paths, test_formats.py's table)"""
    report = scan_bytes(data, name)
    assert (report.format, report.verdict, report.ok) == (kind, "data", True)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("config.json", '{"model_type": "llama"}'.encode("utf-16"), id="utf16-json"),
        pytest.param("tokenizer.json", b"\x80\x02cos\nsystem\nq\x00.", id="pickle-as-json"),
        pytest.param("README.md", SYSTEM, id="pickle-as-text"),
    ],
)
def test_a_data_name_does_not_make_bytes_data(name: str, data: bytes) -> None:
    """(cli/test_formats_cli.py::test_a_json_file_that_is_not_utf8_json_is_not_data)"""
    report = scan_bytes(data, name)
    assert report.verdict != "data"
    assert not report.ok


def test_a_directory_is_ok_only_if_every_file_is(tmp_path: Path) -> None:
    """(test_scan_cli.py::test_json_report_and_directory: per-file verdicts, exit 1)"""
    folder = tmp_path / "snapshot"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "w.safetensors").write_bytes(safetensors({"w": b"\0" * 8}))
    (folder / "ok.pkl").write_bytes(pickle.dumps([1, 2], 2))
    clean = scan_path(folder)
    assert isinstance(clean, DirectoryScan) and clean.ok
    verdicts = {r.path: r.verdict for r in clean.reports}
    assert verdicts == {"config.json": "data", "ok.pkl": "ok", "sub/w.safetensors": "data"}

    (folder / "bad.pkl").write_bytes(SYSTEM)
    dirty = scan_path(folder)
    assert isinstance(dirty, DirectoryScan) and not dirty.ok
    answer = dirty.as_dict()
    assert answer["format"] == "directory" and answer["ok"] is False
    assert {f["path"]: f["ok"] for f in answer["files"]} == {
        "bad.pkl": False,
        "config.json": True,
        "ok.pkl": True,
        "sub/w.safetensors": True,
    }


def test_a_file_path_gives_one_report(tmp_path: Path) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({"x": 1}, 5))
    report = scan_path(path)
    assert isinstance(report, ScanReport) and report.ok


def test_a_missing_path_is_an_input_error_naming_it(tmp_path: Path) -> None:
    """(test_scan_cli.py: `scan nothere.pkl` exits 2 naming the file)"""
    with pytest.raises(InputError, match=r"nothere\.pkl") as exc:
        scan_path(tmp_path / "nothere.pkl")
    assert exc.value.exit_code == 2
