"""A forged numpy dtype state: numpy's `dtype.__setstate__` trusts its argument, and a
state one item short (found by the fuzzer) crashes the process that sets it. Neither the
scanner nor the loader may ever hand numpy a state numpy itself would not have written."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from modelchain.core.restore import RestoreRefused, check_dtype_state
from modelchain.use.guard import load, verify_load_in_child

FOUND = (
    Path(__file__).resolve().parents[1]
    / "regressions"
    / "scan"
    / "fuzz-object-dtype-state-one-short.joblib"
)


def _in_child(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a child, so a crash fails the test instead of killing pytest."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_real_loaders_crash_on_the_found_file() -> None:
    """The attack is real: plain joblib.load dies of SIGSEGV on it."""
    r = _in_child(f"import joblib; joblib.load({str(FOUND)!r})")
    assert r.returncode < 0, (r.returncode, r.stderr[-300:])


def test_scan_refuses_it_without_crashing() -> None:
    r = _in_child(
        "from modelchain.use.scan import scan_path; "
        f"r = scan_path({str(FOUND)!r}); print(r.ok, r.findings)"
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-300:])
    assert r.stdout.startswith("False"), r.stdout
    assert "dtype state" in r.stdout


def test_load_refuses_it_as_unsafe() -> None:
    verdict = verify_load_in_child(FOUND, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False
    assert verdict["error_type"] == "UnsafeModel", verdict


@pytest.mark.parametrize(
    "state",
    [
        (3, "|", None, None, -1, -1, 63),  # one item short: the crash
        (3, "|", None, None, None, -1, -1, 0),  # object dtype with the flags cleared
        (3, "|", None, None, None, 8, 1, 63),  # a forged item size
        (3, "?", None, None, None, -1, -1, 63),  # no such byte order
        (2, "|", None, None, None, -1, -1, 63),  # a version numpy no longer writes
        [3, "|", None, None, None, -1, -1, 63],  # a list, not a tuple
        (3, "|", None, None, None, -1, -1, 63.0),  # a float where numpy writes an int
    ],
)
def test_a_state_numpy_would_not_write_is_refused(state: object) -> None:
    with pytest.raises(RestoreRefused):
        check_dtype_state(np.dtype("O8", False, True), state)


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype("O"),
        np.dtype("<f8"),
        np.dtype(">i2"),
        np.dtype("U8"),
        np.dtype("V12"),
        np.dtype("datetime64[s]"),
        np.dtype("timedelta64[10ms]"),
        np.dtype([("a", "f8"), ("b", "i4")]),
        np.dtype([("a", "i1"), ("b", "f8")], align=True),
        np.dtype({"names": ["x"], "formats": ["f4"], "titles": ["the x"]}),
        np.dtype(("f4", (2, 3))),
    ],
    ids=str,
)
def test_every_state_numpy_writes_is_accepted(dtype: np.dtype, tmp_path: Path) -> None:
    _cls, args, state = dtype.__reduce__()
    check_dtype_state(np.dtype(*args), state)
    if dtype.kind != "O":  # and such arrays still load, joblib and pickle alike
        value = {"a": np.zeros(3, dtype=dtype)}
        joblib.dump(value, tmp_path / "v.joblib")
        (tmp_path / "v.pkl").write_bytes(pickle.dumps(value, 5))
        for name, fmt in (("v.joblib", "joblib"), ("v.pkl", "pickle")):
            loaded = load(tmp_path / name, allow_unregistered=True, format=fmt)["a"]
            assert loaded.tolist() == value["a"].tolist()  # (joblib makes it native-endian)
            assert loaded.dtype.newbyteorder("=") == value["a"].dtype.newbyteorder("=")
