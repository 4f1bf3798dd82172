"""`modelchain.use.guard.load`: verify the bytes read once, then load those bytes with a restricted
unpickler. Malicious payloads here only ever try to create a marker file; every test that
could run one asserts the marker never appears."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from modelchain import Home, Ledger  # noqa: E402
from modelchain.core.errors import InputError, UsageError, VerificationError  # noqa: E402
from modelchain.use.guard import (  # noqa: E402
    LoadRefused,
    ModelUnreadable,
    TamperedModel,
    UnregisteredModel,
    UnsafeModel,
    child_main,
    detect_format,
    diff_tensors,
    load,
    load_verified,
    parse_safetensors_header,
    safetensors_digests,
    verify_load_in_child,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from corpus import TRUSTED, build_corpus, train_models  # noqa: E402

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return {
        "logreg": LogisticRegression(max_iter=500).fit(X, Y),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y),
    }


def _save_joblib(compress: Any) -> Any:
    def save(model: Any, path: Path) -> None:
        joblib.dump(model, path, compress=compress)

    return save


def _save_pickle(protocol: int) -> Any:
    def save(model: Any, path: Path) -> None:
        path.write_bytes(pickle.dumps(model, protocol=protocol))

    return save


SAVERS = {
    "joblib": ("model.joblib", _save_joblib(0)),
    "joblib_zlib3": ("model.joblib", _save_joblib(3)),
    "joblib_lzma": ("model.joblib", _save_joblib(("lzma", 3))),
    "joblib_gzip": ("model.joblib", _save_joblib(("gzip", 3))),
    "joblib_bz2": ("model.joblib", _save_joblib(("bz2", 3))),
    "joblib_xz": ("model.joblib", _save_joblib(("xz", 3))),
    "pickle2": ("model.pkl", _save_pickle(2)),
    "pickle5": ("model.pkl", _save_pickle(5)),
    "pickle0": ("model.pkl", _save_pickle(0)),
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MODELCHAIN_HOME", str(home))
    for var in ("MODELCHAIN_LEDGER", "MODELCHAIN_VERIFIER_KEY"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def ledger(work: Path) -> Ledger:
    led = Ledger.open(work / "l.db", home=Home(work.parent / "home"), create=True)
    yield led
    led.close()


class Evil:
    """Pickles as a call to os.system; pickling it runs nothing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class EvilEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w')",))


# -- benign models --------------------------------------------------------------------------


@pytest.mark.parametrize("saver", sorted(SAVERS))
@pytest.mark.parametrize("kind", ["logreg", "pipeline", "forest"])
def test_registered_model_loads(
    models: dict[str, Any], ledger: Ledger, work: Path, kind: str, saver: str
) -> None:
    filename, save = SAVERS[saver]
    path = work / filename
    save(models[kind], path)
    ledger.register(path)
    loaded = load(path, ledger=ledger)
    assert type(loaded) is type(models[kind])
    assert (loaded.predict(X) == models[kind].predict(X)).all()


def test_load_by_location_and_info(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    path = work / "iris.joblib"
    joblib.dump(models["logreg"], path)
    block = ledger.register(path, name="iris")
    ledger.flush_trust()
    info = load_verified(str(path), ledger=str(work / "l.db"), name="iris")
    assert info.block == block
    assert info.format == "joblib"
    assert info.as_dict()["type"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_unregistered_model_refused(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    path = work / "model.joblib"
    joblib.dump(models["logreg"], path)
    other = work / "other.joblib"
    joblib.dump(models["forest"], other)
    ledger.register(other)
    with pytest.raises(UnregisteredModel, match=r"model\.joblib") as info:
        load(path, ledger=ledger)
    assert isinstance(info.value, LoadRefused)
    assert info.value.exit_code == 1


def test_allow_unregistered_loads(models: dict[str, Any], work: Path) -> None:
    path = work / "model.pkl"
    path.write_bytes(pickle.dumps(models["pipeline"], protocol=5))
    loaded = load(path, allow_unregistered=True)
    assert (loaded.predict(X) == models["pipeline"].predict(X)).all()


def test_tampered_model_refused(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    path = work / "model.joblib"
    joblib.dump(models["logreg"], path)
    block = ledger.register(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedModel) as info:
        load(path, ledger=ledger)
    message = str(info.value)
    assert block.model_hash in message
    import hashlib

    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert "v1" in message


def test_older_version_is_not_the_newest(
    models: dict[str, Any], ledger: Ledger, work: Path
) -> None:
    path = work / "model.joblib"
    joblib.dump(models["logreg"], path)
    old = path.read_bytes()
    ledger.register(path)
    joblib.dump(models["forest"], path)
    ledger.register(path)
    path.write_bytes(old)
    with pytest.raises(TamperedModel, match="not the newest"):
        load(path, ledger=ledger)


def test_directory_and_missing_path(work: Path, ledger: Ledger) -> None:
    with pytest.raises(UsageError, match="directory"):
        load(work, ledger=ledger, name="x")
    with pytest.raises(InputError):
        load(work / "missing.joblib", ledger=ledger)


def test_bad_trusted_entry(work: Path) -> None:
    path = work / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UsageError):
        load(path, allow_unregistered=True, trusted=["os.system"])
    with pytest.raises(UsageError):
        load(path, allow_unregistered=True, format="torch")


# -- malicious pickles ----------------------------------------------------------------------


def _malicious_files(work: Path, marker: Path, models: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for name, obj in (("system", Evil(marker)), ("eval", EvilEval(marker))):
        for proto in (0, 2, 5):
            p = work / f"{name}{proto}.pkl"
            p.write_bytes(pickle.dumps(obj, protocol=proto))
            out[p.name] = p
        p = work / f"{name}_compressed.joblib"
        joblib.dump(obj, p, compress=3)
        out[p.name] = p
    model = work / "benign.joblib"
    joblib.dump(models["forest"], model)
    p = work / "prefixed.joblib"
    p.write_bytes(pickle.dumps(Evil(marker), protocol=2) + model.read_bytes())
    out[p.name] = p
    p = work / "after_arrays.joblib"
    joblib.dump([models["forest"], Evil(marker)], p)
    out[p.name] = p
    p = work / "appended.joblib"
    p.write_bytes(model.read_bytes() + pickle.dumps(Evil(marker), protocol=2))
    out[p.name] = p
    return out


def test_malicious_pickles_refused(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    marker = work / "MARKER"
    for name, path in _malicious_files(work, marker, models).items():
        ledger.register(path)  # registered: the ledger passes, the unpickler still refuses
        with pytest.raises(UnsafeModel) as info:
            load(path, ledger=ledger)
        message = str(info.value)
        if name.startswith("eval"):
            assert "builtins.eval" in message, message
            assert info.value.refused == "builtins.eval"
        else:  # appended too: the static pre-scan reads past the model and names the import
            assert "system" in message, message
        assert name in message
        with pytest.raises(UnsafeModel):
            load(path, allow_unregistered=True)
    assert not marker.exists()


def test_persistent_id_refused(work: Path) -> None:
    class P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "x" if obj == "ref" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(["ref"])
    path = work / "pid.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeModel, match="persistent id"):
        load(path, allow_unregistered=True)


def test_corpus(tmp_path_factory: pytest.TempPathFactory, work: Path) -> None:
    """Every benign corpus file loads; every malicious one is refused; nothing runs."""
    base = tmp_path_factory.mktemp("c")  # short: corpus.py's marshal payload needs < 256 bytes
    marker = base / "M"
    files = build_corpus(base / "corpus", marker)  # every kind: 18 models, 4+ formats each
    benign = [f for f in files if not f.malicious]
    bad = [f for f in files if f.malicious]
    assert len({f.kind for f in benign}) >= 15 and bad
    originals = train_models()  # trained with fixed seeds, as the corpus was
    for f in benign:
        loaded = load(f.path, allow_unregistered=True, trusted=TRUSTED.get(f.kind, ()))
        original = originals.get(f.kind)
        if original is not None and hasattr(original, "predict"):
            np.testing.assert_array_equal(loaded.predict(X), original.predict(X), err_msg=str(f))
    for f in bad:
        with pytest.raises(LoadRefused):
            load(f.path, allow_unregistered=True)
    assert not marker.exists()


# -- TOCTOU ---------------------------------------------------------------------------------


def test_replacing_the_file_while_loading(
    models: dict[str, Any], ledger: Ledger, work: Path
) -> None:
    target = work / "model.joblib"
    joblib.dump(models["logreg"], target)
    ledger.register(target)
    good = target.read_bytes()
    other = LogisticRegression(max_iter=500).fit(X, Y)
    other.sentinel = "replacement"
    buf = io.BytesIO()
    joblib.dump(other, buf)
    replacement = buf.getvalue()
    assert replacement != good

    stop = threading.Event()

    def flip() -> None:
        i = 0
        while not stop.is_set():
            tmp = work / f"tmp{i % 2}"
            tmp.write_bytes(replacement if i % 2 else good)
            os.replace(tmp, target)
            i += 1

    thread = threading.Thread(target=flip)
    thread.start()
    outcomes = {"loaded": 0, "refused": 0}
    try:
        for _ in range(150):
            try:
                obj = load(target, ledger=ledger)
            except LoadRefused:
                outcomes["refused"] += 1
                continue
            assert not hasattr(obj, "sentinel")
            assert (obj.predict(X) == models["logreg"].predict(X)).all()
            outcomes["loaded"] += 1
    finally:
        stop.set()
        thread.join()
    assert sum(outcomes.values()) == 150


# -- safetensors ----------------------------------------------------------------------------


def test_safetensors_per_tensor(ledger: Ledger, work: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    tensors = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.ones(4, dtype=np.int64),
        "c": np.zeros((0,), dtype=np.float64),
    }
    path = work / "w.safetensors"
    st.save_file(tensors, str(path))
    data = path.read_bytes()
    digests = safetensors_digests(data)
    assert set(digests) == {"__header__", "a", "b", "c"}
    ledger.register(path, metadata={"tensors": digests})
    loaded = load(path, ledger=ledger)
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert (loaded[k] == v).all()

    begin, _end = parse_safetensors_header(data).tensors["b"]
    changed = bytearray(data)
    changed[begin] ^= 0xFF
    path.write_bytes(bytes(changed))
    with pytest.raises(TamperedModel, match="changed tensors: b") as info:
        load(path, ledger=ledger)
    assert info.value.details["tensors"] == {"changed": ["b"], "added": [], "removed": []}
    assert diff_tensors(digests, safetensors_digests(bytes(changed)))[0] == ["b"]


#: the paths opened while `_opened` records (an audit hook stays for the whole process)
_opened: list[str] = []
_recording: list[Any] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _recording and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if path == _recording[0]:
            _opened.append(path)
            if len(_opened) > 1:
                _recording[1]()  # anything that opens the path again reads other bytes


sys.addaudithook(_audit)


def test_a_refused_safetensors_is_described_from_the_bytes_read(ledger: Ledger, work: Path) -> None:
    """The refusal names the tensor that changed in the bytes `load` read and hashed, is
    said once, and the path is opened once for the model (`format_before_reading` looks at
    its head before that); a file swapped after the read changes nothing in the answer."""
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"a": np.arange(4, dtype=np.float32), "b": np.ones(4, dtype=np.int64)}
    path = work / "w.safetensors"
    st.save_file(tensors, str(path))
    data = path.read_bytes()
    ledger.register(path)
    header = parse_safetensors_header(data)
    changed_b = bytearray(data)
    changed_b[header.tensors["b"][0]] ^= 0xFF
    changed_a = bytearray(data)
    changed_a[header.tensors["a"][0]] ^= 0xFF
    path.write_bytes(bytes(changed_b))
    swapped = work / "swapped"
    swapped.write_bytes(bytes(changed_a))

    def swap() -> None:
        if swapped.exists():
            os.replace(swapped, path)

    _opened.clear()
    _recording[:] = [str(path), swap]
    try:
        with pytest.raises(TamperedModel) as info:
            load(path, ledger=ledger, format="safetensors")
    finally:
        _recording.clear()
    message = str(info.value)
    assert message.endswith(": changed tensors: b"), message
    assert message.count("tensors:") == 1, message
    assert info.value.details["tensors"] == {"changed": ["b"], "added": [], "removed": []}
    assert len(_opened) == 1, _opened
    assert path.read_bytes() == bytes(changed_b)  # nothing re-read it, so nothing swapped it


def test_diff_tensors() -> None:
    assert diff_tensors({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == (
        ["b"],
        ["c"],
        [],
    )
    assert diff_tensors({"a": "1"}, {}) == ([], [], ["a"])


def _st(header: dict[str, Any], body: bytes, pad: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() + pad
    return len(raw).to_bytes(8, "little") + raw + body


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x00", "shorter"),
        ((10**6).to_bytes(8, "little") + b"{}", "exceeds"),
        (_st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"x"), "outside"),
        (
            _st(
                {
                    "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                    "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},
                },
                b"xyz",
            ),
            "overlaps",
        ),
        (_st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"xy"), "follow"),
        (_st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"xy"), "gap"),
        (_st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2]}}, b"xy"), "hold"),
        (_st({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b""), "shape"),
        (_st({"a": [1]}, b""), "exactly"),
        (_st([], b""), "object"),  # type: ignore[arg-type]
        (b"\x0a" + b"\x00" * 7 + b'{"a":1,"a":2}'[:10], "JSON"),
    ],
)
def test_safetensors_header_is_strict(data: bytes, message: str) -> None:
    with pytest.raises(ModelUnreadable, match=message):
        safetensors_digests(data)


def test_safetensors_duplicate_key() -> None:
    raw = b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{}}'
    with pytest.raises(ModelUnreadable, match="duplicate"):
        parse_safetensors_header(len(raw).to_bytes(8, "little") + raw)


# -- skops, onnx, detection -----------------------------------------------------------------


def test_skops(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    sio = pytest.importorskip("skops.io")
    from sklearn.preprocessing import FunctionTransformer

    path = work / "forest.skops"
    sio.dump(models["forest"], path)
    assert sio.get_untrusted_types(file=path)  # the Tree type: allowed by our allowlist
    ledger.register(path)
    loaded = load(path, ledger=ledger)
    assert (loaded.predict(X) == models["forest"].predict(X)).all()

    bad = work / "bad.skops"
    sio.dump(FunctionTransformer(os.getcwd), bad)
    ledger.register(bad)
    with pytest.raises(UnsafeModel, match="getcwd"):
        load(bad, ledger=ledger)


def test_onnx_missing_is_a_usage_error(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    path = work / "m.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(UsageError, match="pip install onnx"):
        load(path, allow_unregistered=True)


def test_detect_format() -> None:
    assert detect_format(b"\x80\x05.", "m.pkl") == "pickle"
    assert detect_format(b"\x80\x05.", "m.joblib") == "joblib"
    assert detect_format(b"\x80\x05.", "model") == "joblib"
    assert detect_format(b"\x1f\x8b\x08", "m.bin") == "joblib"
    assert detect_format(b"(lp0\n.", "m.pickle") == "pickle"
    assert detect_format(b"", "m.onnx") == "onnx"
    assert detect_format(_st({}, b""), "weights") == "safetensors"
    with pytest.raises(ModelUnreadable, match="format"):
        detect_format(b"hello", "m.txt")


def test_unreadable_bytes_are_an_input_error(work: Path) -> None:
    path = work / "m.pkl"
    path.write_bytes(b"\x80\x05\x95garbage")
    with pytest.raises(ModelUnreadable) as info:
        load(path, allow_unregistered=True)
    assert info.value.exit_code == 2


# -- in a child process ---------------------------------------------------------------------


def test_verify_load_in_child(models: dict[str, Any], ledger: Ledger, work: Path) -> None:
    path = work / "model.joblib"
    joblib.dump(models["pipeline"], path)
    ledger.register(path)
    ledger.flush_trust()
    home = work.parent / "home"
    good = verify_load_in_child(path, ledger_location=work / "l.db", home=home, timeout=60)
    assert good["loaded"] is True, good
    assert good["exit_code"] == 0
    assert good["type"] == "sklearn.pipeline.Pipeline"

    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.write_bytes(bytes(data))
    bad = verify_load_in_child(path, ledger_location=work / "l.db", home=home, timeout=60)
    assert bad["loaded"] is False
    assert bad["error_type"] == "TamperedModel"
    assert bad["exit_code"] == 1

    marker = work / "MARKER"
    evil = work / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    unsafe = verify_load_in_child(evil, allow_unregistered=True, timeout=60)
    assert unsafe["loaded"] is False
    assert unsafe["error_type"] == "UnsafeModel"
    assert unsafe["refused"] == "posix.system" or "system" in unsafe["refused"]
    assert not marker.exists()


def test_child_main_prints_one_json_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = work / "missing.joblib"
    code = child_main([str(path), "--allow-unregistered"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["loaded"] is False and out["exit_code"] == 2


def test_refusals_are_verification_errors() -> None:
    for cls in (UnregisteredModel, TamperedModel, UnsafeModel):
        assert issubclass(cls, LoadRefused)
        assert issubclass(cls, VerificationError)


def test_onnx_model_loads_as_a_model_proto(ledger: Ledger, work: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx is optional (pip install onnx)")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "g", [x], [y])
    path = work / "identity.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    ledger.register(path)
    model = load(path, ledger=ledger)
    assert isinstance(model, onnx.ModelProto)
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(TamperedModel):
        load(path, ledger=ledger)


def test_bytes_after_the_pickle_are_refused_by_the_unpickler_too(
    models: dict[str, Any], work: Path
) -> None:
    """A harmless second pickle passes the static scan; the unpickler still refuses to
    leave bytes it did not read."""
    path = work / "trailing.joblib"
    joblib.dump(models["logreg"], path)
    path.write_bytes(path.read_bytes() + pickle.dumps(123, protocol=2))
    with pytest.raises(UnsafeModel, match="follow the end"):
        load(path, allow_unregistered=True)


def test_compression_bomb_is_refused_before_unpickling(work: Path) -> None:
    import zlib

    path = work / "bomb.joblib"
    path.write_bytes(zlib.compress(pickle.dumps(bytes(48 << 20), protocol=4), 9))
    assert path.stat().st_size < (1 << 20)
    with pytest.raises(UnsafeModel, match="decompression bomb"):
        load(path, allow_unregistered=True)


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x00",
        (10**6).to_bytes(8, "little") + b"{}",
        _st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"x"),
        _st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"xy"),
        _st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"xy"),
        _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2]}}, b"xy"),
        _st([], b""),  # type: ignore[arg-type]
    ],
)
def test_streamed_safetensors_refuses_what_the_parser_refuses(work: Path, data: bytes) -> None:
    from modelchain.fs.digest import safetensors_digests_file

    path = work / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ModelUnreadable) as in_memory:
        safetensors_digests(data)
    with pytest.raises(ModelUnreadable) as streamed:
        safetensors_digests_file(path)
    assert str(streamed.value) == str(in_memory.value)


def test_streamed_safetensors_digests_match_and_memory_stays_bounded(work: Path) -> None:
    """A registration of a 64 MB .safetensors file must not read it into memory."""
    import hashlib
    import tracemalloc

    from modelchain.fs.digest import hash_safetensors_file, safetensors_digests_file

    rng = np.random.default_rng(7)
    sizes = {"big": 48 << 20, "mid": 16 << 20, "tiny": 3, "empty": 0}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, size in sizes.items():
        header[name] = {"dtype": "U8", "shape": [size], "data_offsets": [offset, offset + size]}
        offset += size
    path = work / "w.safetensors"
    with path.open("wb") as f:
        raw = json.dumps(header).encode()
        f.write(len(raw).to_bytes(8, "little") + raw)
        for size in sizes.values():
            f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    tracemalloc.start()
    try:
        digest, streamed = hash_safetensors_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    data = path.read_bytes()
    assert streamed == safetensors_digests(data) == safetensors_digests_file(path)
    assert list(streamed) == list(safetensors_digests(data))
    assert digest.sha256 == hashlib.sha256(data).hexdigest() and digest.size == len(data)
