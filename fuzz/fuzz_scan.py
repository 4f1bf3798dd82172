"""Fuzz target for the scanner (atheris): whenever `scan` calls an input ok, the real
unpicklers (pickle's and joblib's, in this process, stopped at the first global the
allowlist refuses) must not resolve a refused global, and "data" must not be a pickle.

    make fuzz                                    # FUZZ_SECONDS (default 300) of fuzzing
    python fuzz/fuzz_scan.py -max_total_time=60 fuzz/corpus tests/regressions/scan

Seeds: the files in tests/regressions/scan and fuzz/corpus (built on first run from a few
small joblib/pickle/safetensors files). A failing input is written as crash-<sha1>; keep
it in tests/regressions/scan/ (tests/interop/test_differential.py runs every file there).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


def seeds(directory: Path) -> None:
    """A few small, valid inputs, so mutations start from real layouts."""
    import io
    import pickle

    import joblib
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    values = {
        "list.p4": [1, "a", {"b": (2.0, None)}],
        "array.p5": np.arange(6, dtype=np.int16),
    }
    for name, value in values.items():
        (directory / name).write_bytes(pickle.dumps(value, protocol=int(name[-1])))
    for name, value in {
        "arrays": [np.arange(4), np.ones((2, 2))],
        "obj": np.array([1, "x"], dtype=object),
    }.items():
        buf = io.BytesIO()
        joblib.dump(value, buf)
        (directory / f"{name}.joblib").write_bytes(buf.getvalue())
    header = b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'
    (directory / "w.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"xy")
    (directory / "config.json").write_bytes(b'{"model_type": "tiny"}')


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        import differential  # noqa: F401

        import modelchain.core.formats
        import modelchain.use.scan  # noqa: F401
    from differential import check_scan

    def one(data: bytes) -> None:
        check_scan(data)

    seeds(ROOT / "fuzz" / "corpus")
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
