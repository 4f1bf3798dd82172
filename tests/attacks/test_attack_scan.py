"""Files the scanner once called ok while the real loaders ran their payload.

Each attack is built as bytes (tests/scan_attacks.py) around a payload that only creates a
marker file in tmp_path. Every test checks three things: `modelchain scan` exits non-zero,
the marker never appears from scanning, and the real `joblib.load` / `pickle.load`, run in a
child (tests/differential.py), DOES create the marker, so the file attacks for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scan_attacks
from corpus import payload
from differential import SRC, observe

from modelchain.use.scan import scan_bytes, scan_path

pytest.importorskip("joblib")
pytest.importorskip("numpy")


@pytest.mark.parametrize("name", sorted(scan_attacks.ATTACKS))
def test_attack_is_refused_and_real(run, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "MARKER"
    path = scan_attacks.build(name, tmp_path / "files", payload("os_system", marker))
    result = run("scan", path, "--json")
    assert result.code == 1, result
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["verdict"] == "UNSAFE"
    assert report["findings"] or any(not i["allowed"] for i in report["imports"])
    assert not marker.exists(), "scanning ran the payload"
    for loader in scan_attacks.ATTACKS[name]:
        observe(path, loader, block=False)
        assert marker.exists(), f"{loader}.load did not run the payload: the test is void"
        marker.unlink()


def test_frame_attack_names_the_hidden_import(tmp_path: Path) -> None:
    path = scan_attacks.build("frame", tmp_path, payload("os_system", tmp_path / "M"))
    report = scan_path(path)
    assert [f"{r.module}.{r.name}" for r in report.refused] == ["os.system"]
    assert report.format == "joblib"


def test_legacy_wrapper_is_refused_by_name(tmp_path: Path) -> None:
    path = scan_attacks.build("legacy_ndarray_wrapper", tmp_path, payload("os_system", tmp_path))
    report = scan_path(path)
    assert any(r.name == "NDArrayWrapper" and "numpy.load" in r.reason for r in report.refused)
    for module, name in [
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
        ("joblib.numpy_pickle", "NDArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ]:
        data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
        assert not scan_bytes(data).ok, (module, name)


def test_utf16_header_is_not_safetensors(tmp_path: Path) -> None:
    report = scan_bytes(scan_attacks.utf16_safetensors(payload("os_system", tmp_path / "M")))
    assert report.format == "pickle" and not report.ok


def test_polyglot_is_ambiguous(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    data = scan_attacks.safetensors_pickle_polyglot(payload("os_system", tmp_path / "M"))
    assert list(st.load(data)) == ["x"]  # the safetensors library accepts it
    report = scan_bytes(data)
    assert not report.ok and "ambiguous" in report.findings[0]


@pytest.mark.parametrize("same_name", [True, False])
def test_zip_member_listed_many_times_is_refused_fast(tmp_path: Path, same_name: bool) -> None:
    path = scan_attacks.duplicated_zip(tmp_path / "dup.zip", 300, same_name=same_name)
    assert path.stat().st_size < 32 * 1024
    start = time.monotonic()
    report = scan_path(path)
    assert time.monotonic() - start < 5
    assert not report.ok
    assert "appears twice" in report.findings[0] or "overlap" in report.findings[0]


def test_tiny_file_cannot_make_the_scanner_allocate_gigabytes(tmp_path: Path) -> None:
    path = tmp_path / "bomb.joblib"
    path.write_bytes(scan_attacks.memory_bomb())
    assert path.stat().st_size < 64 * 1024
    code = (
        "import resource, sys; from modelchain.use.scan import scan_path; "
        f"r = scan_path({str(path)!r}); "
        "print(r.ok, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); print(r.findings[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    ok, maxrss = out.stdout.split("\n")[0].split()
    assert ok == "False"
    assert "memory bound" in out.stdout
    assert int(maxrss) * (1 if sys.platform == "darwin" else 1024) < 400 << 20


def test_state_with_unknown_key_fails_closed() -> None:
    """Any key the scanner cannot evaluate in a wrapper's state stops the scan."""
    data = scan_attacks.computed_shape_key(b"N")
    report = scan_bytes(data)
    assert not report.ok
    assert "state is not a dict the scanner can evaluate" in report.findings[0]


def test_read_straddling_a_frame_is_refused() -> None:
    """joblib's unpickler refuses it, pickle.load reads on: two loaders, two readings."""
    # FRAME of 3 bytes holding the start of a SHORT_BINUNICODE whose text runs past it
    data = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00\x8c\x03abc."
    report = scan_bytes(data)
    assert not report.ok and "frame" in report.findings[0]
