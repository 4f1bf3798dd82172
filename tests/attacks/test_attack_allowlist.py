"""Attacks on the allowlist and the restricted unpicklers: names that act on restore, dotted
names through a trusted tree, numpy arrays over raw bytes that hold objects, the
HistGradientBoosting predictor, memory bombs, and structures compiled code indexes blindly.

Every payload only ever touches a marker file in the test's tmp_path (or connects to a
listening socket the test owns); each test asserts that never happens. Attempts that could
crash the interpreter run in a child process, so a SIGSEGV fails the test instead of pytest.
"""

from __future__ import annotations

import importlib
import pickle
import socket
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from modelchain.core import allowlist  # noqa: E402
from modelchain.core.errors import UsageError  # noqa: E402
from modelchain.use.guard import (  # noqa: E402
    ModelUnreadable,
    UnsafeModel,
    _load_joblib,
    load,
    verify_load_in_child,
)
from modelchain.use.scan import scan_path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import TRUSTED, train_models  # noqa: E402

PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _stack_global(module: str, name: str) -> bytes:
    """Protocol 4 STACK_GLOBAL: the unpickler resolves a dotted `name` attribute by attribute."""

    def unicode(text: str) -> bytes:
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    return unicode(module) + unicode(name) + b"\x93"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class _Reduce:
    """Pickles as ``func(*args)`` with `state` for BUILD; pickling never calls `func`."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


# -- names that act on restore -----------------------------------------------------------


def test_multiprocessing_client_restore_is_refused_by_scan_and_load(tmp_path: Path) -> None:
    """multiprocessing.connection.Client connects to an address from the file and waits for
    an answer: the scan refuses it, and a test load (in a child, with a timeout so it can
    never hang the suite) never connects."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    data = (
        _g("multiprocessing.connection", "Client")
        + b"((S'127.0.0.1'\nI"
        + str(port).encode()
        + b"\ntS'AF_INET'\ntR."
    )
    path = _write(tmp_path, "client.pkl", data)
    try:
        report = scan_path(path)
        assert not report.ok
        assert [f"{i.module}.{i.name}" for i in report.refused] == [
            "multiprocessing.connection.Client"
        ]
        with pytest.raises(UnsafeModel, match="multiprocessing"):
            load(path, allow_unregistered=True)
        verdict = verify_load_in_child(path, allow_unregistered=True, timeout=60)
        assert verdict["loaded"] is False and verdict["error_type"] == "UnsafeModel"
        with pytest.raises(socket.timeout):
            server.accept()  # nobody ever connected
    finally:
        server.close()


def test_a_re_export_through_a_trusted_tree_is_refused_by_load(tmp_path: Path) -> None:
    """`--trust sklearn.*` covers what sklearn defines, not what it imports: os.remove seen
    as sklearn.datasets._california_housing.remove is posix.remove, so load refuses it."""
    victim = tmp_path / "KEEP"
    victim.write_text("still here")
    data = _g("sklearn.datasets._california_housing", "remove") + b"(S'" + str(victim).encode()
    path = _write(tmp_path, "remove.pkl", data + b"'\ntR.")
    assert not scan_path(path).ok  # not in the default allowlist at all
    with pytest.raises(UnsafeModel, match=r"posix\.remove"):
        load(path, allow_unregistered=True, trusted=["sklearn.*"])
    verdict = verify_load_in_child(path, allow_unregistered=True, trusted=["sklearn.*"])
    assert verdict["loaded"] is False and verdict["error_type"] == "UnsafeModel"
    assert victim.exists()


@pytest.mark.parametrize(
    "key",
    [
        "sklearn.pipeline.Parallel",
        "sklearn.utils.parallel.delayed",
        "sklearn.datasets.fetch_openml",
        "sklearn.base.clone",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        PREDICTOR,
        "builtins.range",
        "numpy.void",
        "multiprocessing.connection.Client",
        "multiprocessing.managers.BaseManager",
    ],
)
def test_names_that_act_or_are_unreviewed_are_not_allowed(key: str) -> None:
    module, _, name = key.rpartition(".")
    assert not allowlist.check(module, name).allowed


def test_every_entry_is_defined_where_it_says_and_has_a_reason() -> None:
    """No re-exports: each allowed object's __module__/__qualname__ is the entry's key (or an
    alias of it), so the list documents the objects really admitted."""
    assert allowlist.ENTRIES
    for entry in allowlist.ENTRIES:
        assert entry.role in ("value", "class", "call"), entry
        assert len(entry.reason) > 20 and "\n" not in entry.reason, entry
        try:
            module = importlib.import_module(entry.module)
        except ImportError:
            continue
        obj = getattr(module, entry.name)
        assert allowlist.identity_problem(entry.module, entry.name, obj) is None, entry
        for alias in entry.aliases:
            alias_module, _, alias_name = alias.rpartition(".")
            assert allowlist.check(alias_module, alias_name).allowed


def test_no_sklearn_class_is_allowed_by_its_shape() -> None:
    assert not allowlist.check("sklearn.linear_model._logistic", "LogisticRegressionCV").allowed
    assert not allowlist.check("sklearn.utils._testing", "TempMemmap").allowed
    assert allowlist.check("sklearn.linear_model._logistic", "LogisticRegression").allowed


# -- dotted names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name"),
    [("sklearn._config", "os.system"), ("sklearn.base", "platform.os.system")],
)
def test_dotted_names_through_a_trusted_tree_are_refused(
    tmp_path: Path, module: str, name: str
) -> None:
    """`--trust sklearn.*` must not admit ``sklearn._config`` + ``os.system``: every step of
    a dotted name is checked and refused names stay refused."""
    marker = tmp_path / "MARKER"
    data = (
        b"\x80\x04"
        + _stack_global(module, name)
        + b"X"
        + len(f"touch {marker}").to_bytes(4, "little")
        + f"touch {marker}".encode()
        + b"\x85R."
    )
    path = _write(tmp_path, "dotted.pkl", data)
    trusted = [allowlist.parse_trusted("sklearn.*")]
    assert not allowlist.check(module, name, trusted).allowed
    report = scan_path(path, trusted=["sklearn.*"])
    assert not report.ok and report.refused
    with pytest.raises(UnsafeModel):
        load(path, allow_unregistered=True, trusted=["sklearn.*"])
    assert not marker.exists()


def test_a_trusted_tree_admits_plain_names_only() -> None:
    trusted = [allowlist.parse_trusted("mypkg.*")]
    assert allowlist.check("mypkg.models", "Net", trusted).allowed
    assert not allowlist.check("mypkg.models", "Net.helper", trusted).allowed
    exact = [allowlist.parse_trusted("mypkg.models:Net.helper")]
    assert allowlist.check("mypkg.models", "Net.helper", exact).allowed
    with pytest.raises(UsageError):
        allowlist.parse_trusted("sklearn._config:os.system")


def test_a_trusted_name_that_is_really_a_refused_one_is_refused_on_load(tmp_path: Path) -> None:
    """An exact trusted name whose object turns out to be posix.system is still refused."""
    marker = tmp_path / "MARKER"
    # sklearn._config imports os; trusting a made-up alias of os.system must not help
    data = _g("sklearn._config", "os") + b"."
    path = _write(tmp_path, "module.pkl", data)
    with pytest.raises(UnsafeModel):
        load(path, allow_unregistered=True, trusted=["sklearn.*"])
    assert not marker.exists()


# -- numpy over raw bytes -----------------------------------------------------------------


def _object_over_bytes_dtype() -> _Reduce:
    """A void dtype whose state names an object field at offset 0, with flags 0: numpy would
    then read raw file bytes as a PyObject pointer."""
    fields = {"a": (np.dtype("O"), 0)}
    return _Reduce(np.dtype, ("V8", False, True), (3, "|", None, ("a",), fields, 8, 1, 0))


def _forged_flags_dtype() -> _Reduce:
    """float64 with flags claiming reference-counted items: numpy would DECREF raw doubles."""
    return _Reduce(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 1))


def _attacks() -> dict[str, bytes]:
    from numpy._core import multiarray, numeric

    raw = b"\x41" * 8
    return {
        "array_state": pickle.dumps(
            _Reduce(
                multiarray._reconstruct,
                (np.ndarray, (0,), b"b"),
                (1, (1,), _object_over_bytes_dtype(), False, raw),
            ),
            2,
        ),
        "frombuffer": pickle.dumps(
            _Reduce(numeric._frombuffer, (raw, _object_over_bytes_dtype(), (1,), "C")), 2
        ),
        "scalar": pickle.dumps(_Reduce(multiarray.scalar, (_object_over_bytes_dtype(), raw)), 2),
        "forged_flags": pickle.dumps(
            _Reduce(
                multiarray._reconstruct,
                (np.ndarray, (0,), b"b"),
                (1, (1,), _forged_flags_dtype(), False, raw),
            ),
            2,
        ),
        "ndarray_over_buffer": pickle.dumps(_Reduce(np.ndarray, ((1,), np.dtype("O"), raw)), 2),
    }


@pytest.mark.parametrize("attack", sorted(_attacks()))
def test_object_arrays_over_raw_bytes_are_refused(tmp_path: Path, attack: str) -> None:
    """The load runs in a child: were the array built, touching it would SIGSEGV."""
    path = _write(tmp_path, f"{attack}.pkl", _attacks()[attack])
    verdict = verify_load_in_child(path, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False, verdict
    assert verdict["error_type"] == "UnsafeModel", verdict  # refused, not crashed
    assert "refused" in verdict["error"]


def test_joblib_array_with_an_object_dtype_over_raw_bytes_is_refused(tmp_path: Path) -> None:
    """joblib's wrapper with a dtype claiming no objects while holding one: joblib would read
    the bytes that follow as pointers; modelchain reads joblib arrays itself and refuses."""
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (1,), "C", _object_over_bytes_dtype())
    wrapper.numpy_array_alignment_bytes = None
    data = pickle.dumps(wrapper, 2)
    assert data.endswith(b"b.")  # BUILD, STOP: joblib reads the array right after BUILD
    evil = _write(tmp_path, "evil.joblib", data[:-1] + b"\x41" * 8 + b".")
    verdict = verify_load_in_child(evil, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False and verdict["error_type"] == "UnsafeModel", verdict


def test_benign_object_and_structured_arrays_still_load(tmp_path: Path) -> None:
    values = {
        "objects": np.array(["a", None, 3], dtype=object),
        "records": np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    for save in ("joblib", "pickle"):
        path = tmp_path / f"v.{save}"
        if save == "joblib":
            joblib.dump(values, path)
        else:
            path.write_bytes(pickle.dumps(values, 5))
        loaded = load(path, allow_unregistered=True, format=save)
        for key, value in values.items():
            assert loaded[key].dtype == value.dtype
            assert list(loaded[key].ravel()) == list(value.ravel())


# -- HistGradientBoosting's predictor -------------------------------------------------------


def test_hist_gradient_boosting_predictor_refused_unless_trusted(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_models()["hist_gradient_boosting"]
    path = tmp_path / "hgb.joblib"
    joblib.dump(model, path)
    report = scan_path(path)
    assert not report.ok
    assert PREDICTOR in {f"{i.module}.{i.name}" for i in report.refused}
    with pytest.raises(UnsafeModel, match="TreePredictor"):
        load(path, allow_unregistered=True)
    assert scan_path(path, trusted=TRUSTED["hist_gradient_boosting"]).ok
    loaded = load(path, allow_unregistered=True, trusted=[PREDICTOR])
    assert (loaded.predict(x) == model.predict(x)).all()
    del y


# -- memory bombs ----------------------------------------------------------------------------

BOMBS = {
    "memo_index": b"\x80\x02Nr\xff\xff\xff\xff.",
    "memo_index_text": b"Np4294967295\n.",
    "list_range": _g("__builtin__", "list")
    + b"("
    + _g("__builtin__", "range")
    + b"(I10000000000\ntRtR.",
    "bytes_size": _g("__builtin__", "bytes") + b"(I10000000000\ntR.",
    "bytearray_size": _g("__builtin__", "bytearray") + b"(I10000000000\ntR.",
    "reconstructor_bytes": _g("copy_reg", "_reconstructor")
    + b"("
    + _g("__builtin__", "bytes")
    + _g("__builtin__", "bytes")
    + b"I10000000000\ntR.",
    "reconstruct_shape": _g("numpy.core.multiarray", "_reconstruct")
    + b"("
    + _g("numpy", "ndarray")
    + b"(I1000000000\ntS'b'\ntR.",
    "ndarray_shape": _g("numpy", "ndarray") + b"((I1000000000\ntS'f8'\ntR.",
    "ufunc_broadcast": _g("numpy", "add") + b"(I1\nI2\ntR.",
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_memory_bombs_are_refused_quickly_with_bounded_memory(tmp_path: Path, bomb: str) -> None:
    path = _write(tmp_path, f"{bomb}.pkl", BOMBS[bomb])
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(UnsafeModel):
            load(path, allow_unregistered=True, format="pickle")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 64 * 1024**2


def test_a_memo_bomb_is_refused_by_the_restricted_unpickler_itself() -> None:
    """Even without the scan in front, the unpickler bounds memo indices by the file size."""
    from modelchain.use.guard import _load_pickle

    with pytest.raises(UnsafeModel, match="memo index"):
        _load_pickle(BOMBS["memo_index"], ())


def test_a_joblib_array_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    joblib.dump(np.zeros(4), path, protocol=2)  # no frames: the shape can be rewritten
    data = path.read_bytes()
    assert data.count(b"K\x04\x85") == 1
    huge = _write(tmp_path, "huge.joblib", data.replace(b"K\x04\x85", b"J\x00\xca\x9a\x3b\x85"))
    tracemalloc.start()
    try:
        with pytest.raises((UnsafeModel, ModelUnreadable)):  # the scan in front sees it too
            load(huge, allow_unregistered=True)
        with pytest.raises(UnsafeModel, match="refused: an array of"):
            _load_joblib(huge.read_bytes(), ())  # and the unpickler bounds it by itself
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2


# -- structures compiled code indexes without bounds checks -------------------------------


def test_a_decision_tree_with_a_child_out_of_range_is_refused(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0).fit(x, y)
    state = tree.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6  # predict would read far past the node array
    data = pickle.dumps(tree, 5)
    original = state["nodes"].tobytes()
    assert original in data
    evil = _write(tmp_path, "tree.pkl", data.replace(original, nodes.tobytes(), 1))
    verdict = verify_load_in_child(evil, allow_unregistered=True, timeout=60)
    assert verdict["loaded"] is False and "decision tree" in verdict["error"], verdict


def test_the_benign_corpus_kinds_all_scan_clean_and_load(tmp_path: Path) -> None:
    """One file per kind here (test_guard/test_scan cover every format of every kind)."""
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = train_models()
    assert len(models) == 18
    for kind, model in models.items():
        path = tmp_path / f"{kind}.joblib"
        joblib.dump(model, path)
        trusted = TRUSTED.get(kind, ())
        assert scan_path(path, trusted=trusted).ok, kind
        loaded = load(path, allow_unregistered=True, trusted=trusted)
        if hasattr(model, "predict"):
            assert (loaded.predict(x) == model.predict(x)).all(), kind


def test_state_cannot_change_an_objects_class(tmp_path: Path) -> None:
    """BUILD with a slot state {"__class__": ...} would turn a listed object into another."""
    from sklearn.linear_model import LogisticRegression

    data = pickle.dumps(LogisticRegression(), 2)
    assert data.endswith(b"b.")
    # (state, slotstate) with __class__: a tuple pushed before BUILD replaces the dict state
    evil = data[:-2] + b"0N}U\t__class__" + _g("sklearn.pipeline", "Pipeline") + b"s\x86b."
    path = _write(tmp_path, "class.pkl", evil)
    with pytest.raises(UnsafeModel, match="special attribute"):
        load(path, allow_unregistered=True)


def _fitted(kind: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_models()[kind]


def _tamper_and_load(tmp_path: Path, model: Any, change: Any, match: str) -> None:
    """Change the fitted `model` with `change(model)` (as an attacker editing the file would)
    and check loading its pickle is refused before any predict could index blindly."""
    change(model)
    path = _write(tmp_path, "m.pkl", pickle.dumps(model, 5))
    with pytest.raises(UnsafeModel, match=match):
        load(path, allow_unregistered=True)


def test_a_forest_member_expecting_more_features_is_refused(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    wide = DecisionTreeClassifier(random_state=0).fit(np.eye(40), np.arange(40) % 3)

    def change(forest: Any) -> None:
        forest.estimators_[0] = wide  # splits on feature numbers up to 39; X has 4 columns

    _tamper_and_load(tmp_path, _fitted("random_forest"), change, "another number of features")


def test_a_decision_tree_whose_tree_expects_more_features_is_refused(tmp_path: Path) -> None:
    def change(tree: Any) -> None:
        tree.n_features_in_ = 2  # X is checked against 2 columns, the tree reads column 3

    _tamper_and_load(tmp_path, _fitted("decision_tree"), change, "another number of features")


def test_an_svc_with_inconsistent_support_counts_is_refused(tmp_path: Path) -> None:
    def change(svc: Any) -> None:
        svc._n_support = svc._n_support * 10  # libsvm would read past the support vectors

    _tamper_and_load(tmp_path, _fitted("svc"), change, "support vector")


def test_kmeans_centres_narrower_than_the_data_are_refused(tmp_path: Path) -> None:
    def change(kmeans: Any) -> None:
        kmeans.cluster_centers_ = kmeans.cluster_centers_[:, :1].copy()

    _tamper_and_load(tmp_path, _fitted("kmeans"), change, "k-means")


def test_a_kd_tree_index_outside_its_data_is_refused(tmp_path: Path) -> None:
    from sklearn.neighbors import KDTree

    tree = KDTree(np.random.default_rng(0).random((20, 3)), leaf_size=4)
    data = pickle.dumps(tree, 5)
    idx = tree.get_arrays()[1]
    bad = idx.copy()
    bad[0] = 10**6  # a query would read row 1000000 of a 20-row array
    assert idx.tobytes() in data
    path = _write(tmp_path, "kd.pkl", data.replace(idx.tobytes(), bad.tobytes(), 1))
    with pytest.raises(UnsafeModel, match="KD-tree"):
        load(path, allow_unregistered=True)


def test_a_sparse_matrix_with_indices_out_of_range_is_refused(tmp_path: Path) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    matrix = sparse.csr_matrix(np.eye(3))
    matrix.indices = matrix.indices.copy()
    matrix.indices[0] = 10**6  # no check at restore: later arithmetic would read past the end
    path = _write(tmp_path, "csr.pkl", pickle.dumps(matrix, 5))
    with pytest.raises(UnsafeModel, match="sparse matrix"):
        load(path, allow_unregistered=True)
    good = _write(tmp_path, "ok.pkl", pickle.dumps(sparse.csr_matrix(np.eye(3)), 5))
    assert (load(good, allow_unregistered=True).toarray() == np.eye(3)).all()


def test_gradient_boosting_with_more_trees_per_step_than_outputs_is_refused(
    tmp_path: Path,
) -> None:
    def change(gb: Any) -> None:
        gb.estimators_ = np.concatenate([gb.estimators_, gb.estimators_], axis=1)  # 6 > 3 columns

    _tamper_and_load(tmp_path, _fitted("gradient_boosting"), change, "trees per step")
