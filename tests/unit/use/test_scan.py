"""The static scanner: every malicious corpus file flagged, every benign one passed, bad input
reported as findings (never a crash, never a pass). Nothing here ever unpickles a payload."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.core import allowlist
from modelchain.core.errors import InputError, UsageError
from modelchain.core.formats import DATA_FORMATS
from modelchain.use.scan import DirectoryScan, ScanReport, scan_bytes, scan_path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from corpus import TECHNIQUES, TRUSTED, CorpusFile, build_corpus, payload

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[CorpusFile], Path]:
    base = tmp_path_factory.mktemp("corpus")
    marker = base / "MARKER"
    files = build_corpus(base / "files", marker)
    yield files, marker
    assert not marker.exists(), "a payload ran"


def _report(path: Path, trusted: tuple[str, ...] = ()) -> ScanReport:
    result = scan_path(path, trusted=trusted)
    assert isinstance(result, ScanReport)
    return result


def test_corpus_is_big_enough(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, _ = corpus
    kinds = {f.kind for f in files if not f.malicious}
    assert len(kinds) >= 15
    placements = {f.placement for f in files if f.malicious}
    assert {"prefix", "spliced", "appended", "compressed", "wrapped"} <= placements
    assert {f.technique for f in files if f.malicious} == set(TECHNIQUES)


def test_benign_files_pass(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, marker = corpus
    failures = []
    for f in files:
        if f.malicious:
            continue
        r = _report(f.path, TRUSTED.get(f.kind, ()))
        if not r.ok:
            failures.append((f.path.name, r.findings, [i.reason for i in r.refused]))
        assert r.parsed_bytes == r.total_bytes == f.path.stat().st_size
    assert failures == []
    assert not marker.exists()


def test_malicious_files_flagged(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, marker = corpus
    for f in files:
        if not f.malicious:
            continue
        r = _report(f.path)
        assert not r.ok, f.path.name
        assert r.refused, (f.path.name, r.findings)
        assert all(not i.allowed for i in r.refused)
    assert not marker.exists()


def test_spliced_payload_is_found_after_array_bytes(
    corpus: tuple[list[CorpusFile], Path],
) -> None:
    files, _ = corpus
    spliced = next(f for f in files if f.placement == "spliced" and f.technique == "os_system")
    r = _report(spliced.path)
    assert r.format == "joblib"
    assert [(i.module, i.name) for i in r.refused] == [("os", "system")]
    assert r.parsed_bytes == r.total_bytes and r.findings == []
    compressed = next(f for f in files if f.placement == "compressed" and f.technique == "marshal")
    r = _report(compressed.path)
    assert r.format == "joblib+zlib"
    assert {"marshal.loads", "types.FunctionType"} <= {f"{i.module}.{i.name}" for i in r.refused}


def test_every_benign_global_is_allowed_and_imports_listed(
    corpus: tuple[list[CorpusFile], Path],
) -> None:
    files, _ = corpus
    forest = next(f for f in files if f.kind == "random_forest" and f.placement == "joblib")
    r = _report(forest.path)
    names = {f"{i.module}.{i.name}" for i in r.imports}
    assert "sklearn.ensemble._forest.RandomForestClassifier" in names
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in names
    log1p = next(f for f in files if f.kind == "function_transformer_log1p" and "p5" in f.path.name)
    assert "numpy.log1p" in {f"{i.module}.{i.name}" for i in _report(log1p.path).imports}
    assert json.loads(json.dumps(r.as_dict()))["ok"] is True


# --------------------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("__builtin__", "eval"),
        ("importlib", "import_module"),
        ("marshal", "loads"),
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("joblib", "load"),
        ("operator", "methodcaller"),
        ("functools", "partial"),
        ("types", "CodeType"),
        ("numpy", "load"),
        ("numpy.testing", "assert_equal"),
        ("sklearn.pipeline", "Parallel"),
        ("sklearn.utils._testing", "TempMemmap"),
        ("sklearn.pipeline", "Pipeline.__init__"),
        ("sklearn.pipeline", "make_pipeline"),
        ("torch", "load"),
        ("nonexistent", "Thing"),
    ],
)
def test_refused_names(module: str, name: str) -> None:
    verdict = allowlist.check(module, name)
    assert not verdict.allowed and verdict.reason.startswith("refused")


@pytest.mark.parametrize(
    "key",
    [
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.log1p",
        "__builtin__.set",
        "copy_reg._reconstructor",
        "sklearn.tree._tree.Tree",
        "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "scipy.sparse._csr.csr_matrix",
    ],
)
def test_allowed_names(key: str) -> None:
    module, _, name = key.rpartition(".")
    assert allowlist.check(module, name).allowed


def test_trusted_names() -> None:
    assert not allowlist.check("mypkg.models", "Net").allowed
    trusted = [allowlist.parse_trusted("mypkg.models.Net")]
    assert allowlist.check("mypkg.models", "Net", trusted).allowed
    assert allowlist.check("mypkg.sub", "X", [allowlist.parse_trusted("mypkg.*")]).allowed
    with pytest.raises(UsageError):
        allowlist.parse_trusted("os.system")
    with pytest.raises(UsageError):
        allowlist.parse_trusted("not a name")
    data = pickle.dumps(Path("x"), 2)  # pathlib is always refused
    assert not scan_bytes(data).ok


# --------------------------------------------------------------------------- bad input


def _has(report: ScanReport, text: str) -> bool:
    return any(text in f for f in report.findings)


def test_truncated_files(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, _ = corpus
    f = next(f for f in files if f.kind == "random_forest" and f.placement == "joblib")
    data = f.path.read_bytes()
    for cut in (1, 10, len(data) // 2, len(data) - 1):
        r = scan_bytes(data[:cut], "cut")
        assert not r.ok
        assert _has(r, "could not parse past byte"), r.findings
    z = next(f for f in files if f.kind == "random_forest" and f.placement == "joblib-zlib")
    r = scan_bytes(z.path.read_bytes()[:-20], "cutz")
    assert not r.ok and r.findings


def test_empty_random_and_huge_length(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    r = _report(empty)
    assert not r.ok and _has(r, "empty file")
    assert not scan_bytes(os.urandom(4096)).ok
    huge = b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"xx"
    r = scan_bytes(huge)
    assert not r.ok and _has(r, "declares 1152921504606846976 bytes"), r.findings
    neg = b"\x80\x02T\xff\xff\xff\xff."
    assert _has(scan_bytes(neg), "negative length")


def test_unknown_opcode_and_missing_stop() -> None:
    r = scan_bytes(b"\x80\x02\xff")
    assert _has(r, "unknown opcode 0xff")
    r = scan_bytes(pickle.dumps([1, 2], 2)[:-1])
    assert _has(r, "without a STOP")


def test_decompression_bomb() -> None:
    bomb = zlib.compress(b"\x00" * (8 << 20), 9)  # ~8 KiB -> 8 MiB
    r = scan_bytes(bomb, "bomb", max_decompressed=1 << 20)
    assert not r.ok and _has(r, "decompression bomb"), r.findings
    ratio = zlib.compress(b"N" * (40 << 20), 9)
    r = scan_bytes(ratio, "ratio", max_ratio=100)
    assert not r.ok and _has(r, "expands more than 100 times"), r.findings


def test_extension_and_persistent_ids_are_findings() -> None:
    r = scan_bytes(b"\x80\x02\x82\x01.")
    assert not r.ok and r.refused and "extension" in r.refused[0].reason
    r = scan_bytes(b"\x80\x02X\x01\x00\x00\x00aQ.")
    assert not r.ok and _has(r, "persistent id")


def test_stack_global_from_memo_is_resolved() -> None:
    # 'os' and 'system' stored in the memo, fetched back for STACK_GLOBAL
    data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x04echo\x85R."
    r = scan_bytes(data)
    assert [(i.module, i.name) for i in r.imports] == [("os", "system")]
    computed = b"\x80\x04\x8c\x02os\x8c\x06system\x85)R\x8c\x01x\x93."  # operand not a string
    r = scan_bytes(computed)
    assert r.refused and r.refused[0].reason == "refused: import name not known statically"


def test_zip_members(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", payload("os_system", marker) + b".")
        zf.writestr("archive/data/0", os.urandom(64))
        zf.writestr("archive/version", "3\n")
    r = scan_bytes(buf.getvalue(), "model.pt")
    assert r.format == "pytorch-zip"
    assert not r.ok and [(i.module, i.name) for i in r.refused] == [("os", "system")]
    benign = io.BytesIO()
    with zipfile.ZipFile(benign, "w") as zf:
        zf.writestr("m.pkl", pickle.dumps({"a": [1, 2]}, 5))
    assert scan_bytes(benign.getvalue(), "ok.zip").ok
    skops = io.BytesIO()
    schema = {
        "__class__": "Pipeline",
        "__module__": "sklearn.pipeline",
        "__loader__": "ObjectNode",
        "content": {
            "steps": [
                {
                    "__class__": "function",
                    "__module__": "builtins",
                    "__loader__": "FunctionNode",
                    "content": {"module_path": "os", "function": "system"},
                }
            ]
        },
    }
    with zipfile.ZipFile(skops, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    r = scan_bytes(skops.getvalue(), "m.skops")
    assert r.format == "skops" and [(i.module, i.name) for i in r.refused] == [
        ("builtins", "function"),
        ("os", "system"),
    ]
    assert not marker.exists()


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "a.pkl").write_bytes(pickle.dumps([1, 2, 3], 5))
    (d / "sub" / "b.pkl").write_bytes(pickle.dumps({"x": 1.5}, 2))
    result = scan_path(d)
    assert isinstance(result, DirectoryScan) and result.ok
    assert [r.path for r in result.reports] == ["a.pkl", "sub/b.pkl"]
    (d / "link.pkl").symlink_to(d / "a.pkl")
    os.mkfifo(d / "fifo")
    result = scan_path(d)
    assert not result.ok
    assert any("symbolic link not followed" in f for f in result.findings)
    assert any("fifo" in f and "FIFO" in f for f in result.findings)
    assert result.as_dict()["format"] == "directory"


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        scan_path(tmp_path / "missing.pkl")
    os.mkfifo(tmp_path / "f")
    with pytest.raises(InputError, match="FIFO"):
        scan_path(tmp_path / "f")


# --------------------------------------------------------------------------- properties


def _valid_and_clean(data: bytes) -> bool:
    """Independent check: pickletools walks each pickle to the end with allowed globals."""
    import pickletools

    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []
        try:
            for op, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name in ("GLOBAL", "INST"):
                    module, name = arg.split(" ", 1)
                    if not allowlist.check(module, name).allowed:
                        return False
                elif op.name in ("EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"):
                    return False
        except Exception:
            return False
    return bool(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    r = scan_bytes(data, "fuzz")
    assert isinstance(r, ScanReport)
    _assert_ok_means_safe(r, data)


def _assert_ok_means_safe(r: ScanReport, data: bytes) -> None:
    if r.ok and r.format in DATA_FORMATS:
        from differential import forbidden_in_process

        # data: the real unpicklers resolve no global at all reading it
        assert forbidden_in_process(data, any_global=True) == []
    elif r.ok:
        assert _valid_and_clean(data)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text()
        | st.binary(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner),
        max_leaves=20,
    ),
    st.integers(min_value=0, max_value=5),
)
def test_plain_data_pickles_pass(value: object, protocol: int) -> None:
    data = pickle.dumps(value, protocol)
    r = scan_bytes(data)
    assert r.ok, r.findings
    mutated = bytearray(data)
    mutated[len(data) // 2] ^= 0x5A
    r = scan_bytes(bytes(mutated))
    assert isinstance(r, ScanReport)
    _assert_ok_means_safe(r, bytes(mutated))
