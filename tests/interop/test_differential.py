"""The differential harness: the real loaders against `scan`, on the corpus, on the attack
files, on generated variants and on every regression file the fuzzer found.

Whenever `pickle.load` or `joblib.load` (in a child, with an audit hook, see
tests/differential.py) would resolve a global the allowlist refuses or raise an event no
model load may raise, `modelchain scan` must not call the file ok.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import scan_attacks
from corpus import build_corpus, payload
from differential import check_scan, forbidden, observe_many
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.use.scan import scan_path

pytest.importorskip("sklearn")
pytest.importorskip("joblib")

REGRESSIONS = Path(__file__).resolve().parents[1] / "regressions" / "scan"


def _assert_differential(paths: list[Path]) -> list[str]:
    """Run both loaders on every path; return the ones a loader found forbidden."""
    caught = []
    for loader in ("pickle", "joblib"):
        for path, obs in zip(paths, observe_many(paths, loader), strict=True):
            assert obs.error is None or not obs.error.startswith("child failed"), obs
            bad = forbidden(obs)
            if bad:
                caught.append(path.name)
                assert not scan_path(path).ok, f"{path.name}: scan ok, but {loader} did {bad}"
    return caught


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    base = tmp_path_factory.mktemp("differential")
    marker = base / "MARKER"
    built = [f.path for f in build_corpus(base / "corpus", marker, kinds=("logistic_regression",))]
    for name in scan_attacks.ATTACKS:
        built.append(
            scan_attacks.build(name, base / "attacks" / name, payload("os_system", marker))
        )
    yield base, built
    assert not marker.exists(), "a payload ran"


def test_corpus_and_attacks(files: tuple[Path, list[Path]]) -> None:
    _, paths = files
    caught = _assert_differential(paths)
    # the harness is not void: it sees every attack and the malicious corpus files
    for name in scan_attacks.ATTACKS:
        assert any(c.startswith(name) for c in caught), name
    assert any(c.startswith("evil_") for c in caught)


def _mutate(data: bytes, rng: random.Random, splice: bytes) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(4)
    at = rng.randrange(len(out) + 1)
    if kind == 0 and out:  # flip a byte
        out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
    elif kind == 1:  # splice a payload in, balanced by POP, as an attacker would
        out[at:at] = splice + b"0"
    elif kind == 2:  # truncate
        del out[at:]
    else:  # duplicate a slice
        out[at:at] = out[at : at + rng.randrange(1, 64)]
    return bytes(out)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_generated_variants(files: tuple[Path, list[Path]], seed: int) -> None:
    base, paths = files
    rng = random.Random(seed)
    splice = payload("os_system", base / "MARKER")
    out = base / f"variants-{seed}"
    out.mkdir(exist_ok=True)
    variants = []
    for i in range(12):
        source = rng.choice(paths)
        data = _mutate(source.read_bytes(), rng, splice)
        target = out / f"{i}-{source.name}"
        target.write_bytes(data)
        variants.append(target)
    _assert_differential(variants)


def test_regression_files() -> None:
    files = sorted(p for p in REGRESSIONS.iterdir() if p.is_file())
    assert files, "tests/regressions/scan is empty"
    for path in files:
        check_scan(path.read_bytes(), path.name)  # the fuzzer's invariant holds
        if path.name.startswith("attack-"):
            assert not scan_path(path).ok, path.name
    _assert_differential(files)
