"""A corpus of benign and malicious model files, built into a directory for tests and benchmarks.

    build_corpus(directory, marker) -> list[CorpusFile]

Benign files: scikit-learn models trained on Iris, each saved with joblib (plain and
``compress=3``) and with pickle protocols 2 and 5, plus a few other joblib compressors.

Malicious files: payloads that, *if loaded*, would create the file ``marker``. They are never
loaded here. Each payload is written as hand-made pickle opcodes (protocol 0 text opcodes:
``c`` GLOBAL, ``(`` MARK, ``t`` TUPLE, ``R`` REDUCE), so building the corpus cannot run them,
and they are placed:

* ``prefix``: a complete payload pickle followed by the model's pickle (``pickle.load`` runs
  the first one);
* ``spliced``: inside a joblib file, right after the raw bytes of its first numpy array, as
  ``payload POP`` so the stream stays balanced and ``joblib.load`` would run it, then load the
  model normally (the position is found by loading our own *benign* file with joblib);
* ``appended``: a second pickle after the end of a joblib file;
* ``compressed``: the spliced joblib stream, zlib-compressed as ``joblib.dump(compress=3)``
  writes it;
* ``wrapped``: ``joblib.dump([array, payload, model])`` so the payload follows array bytes in
  an otherwise ordinary joblib file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickle
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BENIGN_KINDS",
    "TECHNIQUES",
    "TRUSTED",
    "CorpusFile",
    "build_corpus",
    "payload",
    "train_models",
]


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    kind: str
    malicious: bool
    technique: str
    placement: str

    def __iter__(self):  # so callers may unpack (path, kind, malicious, technique, placement)
        return iter((self.path, self.kind, self.malicious, self.technique, self.placement))


BENIGN_KINDS = (
    "logistic_regression",
    "linear_regression",
    "ridge",
    "lasso",
    "decision_tree",
    "random_forest",
    "extra_trees",
    "gradient_boosting",
    "hist_gradient_boosting",
    "svc",
    "linear_svc",
    "kmeans",
    "knn",
    "gaussian_nb",
    "mlp",
    "pipeline_scaler_logreg",
    "column_transformer",
    "function_transformer_log1p",
)

#: Names a kind needs beyond the default allowlist (skops refuses HistGradientBoosting's tree
#: predictor too: its nodes are indexed without bounds checks), for tests to pass as trusted.
TRUSTED: dict[str, tuple[str, ...]] = {
    "hist_gradient_boosting": ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
}


def train_models() -> dict[str, Any]:
    """One fitted estimator per BENIGN_KINDS entry, on Iris (small and fast)."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    models: dict[str, Any] = {
        "logistic_regression": LogisticRegression(max_iter=500),
        "linear_regression": LinearRegression(),
        "ridge": Ridge(),
        "lasso": Lasso(alpha=0.01),
        "decision_tree": DecisionTreeClassifier(random_state=0),
        "random_forest": RandomForestClassifier(n_estimators=10, random_state=0),
        "extra_trees": ExtraTreesClassifier(n_estimators=10, random_state=0),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=10, random_state=0),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=10, random_state=0),
        "svc": SVC(probability=False),
        "linear_svc": LinearSVC(max_iter=2000),
        "kmeans": KMeans(n_clusters=3, n_init=3, random_state=0),
        "knn": KNeighborsClassifier(n_neighbors=3),
        "gaussian_nb": GaussianNB(),
        "mlp": MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
        "pipeline_scaler_logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "column_transformer": Pipeline(
            [
                (
                    "columns",
                    ColumnTransformer(
                        [("std", StandardScaler(), [0, 1]), ("minmax", MinMaxScaler(), [2, 3])]
                    ),
                ),
                ("clf", LogisticRegression(max_iter=500)),
            ]
        ),
        "function_transformer_log1p": make_pipeline(
            FunctionTransformer(np.log1p), LogisticRegression(max_iter=500)
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in models.values():
            model.fit(x, y)
    return models


# --------------------------------------------------------------------------- payloads


def _s(text: str) -> bytes:
    """A protocol-0 STRING opcode (repr quoting; text must be plain ASCII)."""
    return b"S" + repr(text).encode("ascii") + b"\n"


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


TECHNIQUES = (
    "os_system",
    "builtins_eval",
    "builtins_exec",
    "getattr_chain",
    "importlib",
    "marshal",
    "methodcaller",
    "nested_pickle",
)


def payload(technique: str, marker: Path) -> bytes:
    """Opcodes that leave one object on the stack and, if ever run, create `marker`.

    No STOP opcode: callers add ``.`` (a whole pickle) or ``0`` (POP, to splice into a stream).
    """
    cmd = f"touch {marker}"
    py = f"open({str(marker)!r}, 'w').close()"
    os_module = _call(_g("builtins", "__import__"), _s("os"))
    if technique == "os_system":
        return _call(_g("os", "system"), _s(cmd))
    if technique == "builtins_eval":
        return _call(_g("builtins", "eval"), _s(py))
    if technique == "builtins_exec":
        return _call(_g("builtins", "exec"), _s(py))
    if technique == "getattr_chain":
        system = _call(_g("builtins", "getattr"), os_module, _s("system"))
        return system + b"(" + _s(cmd) + b"tR"
    if technique == "importlib":
        module = _call(_g("importlib", "import_module"), _s("os"))
        system = _call(_g("builtins", "getattr"), module, _s("system"))
        return system + b"(" + _s(cmd) + b"tR"
    if technique == "marshal":
        import marshal

        code = compile(py, "<payload>", "exec")
        blob = marshal.dumps(code)
        loads = _call(_g("marshal", "loads"), b"C" + bytes([len(blob)]) + blob)
        if len(blob) > 255:
            loads = _call(_g("marshal", "loads"), b"B" + len(blob).to_bytes(4, "little") + blob)
        func = _call(_g("types", "FunctionType"), loads, _call(_g("builtins", "globals")))
        return func + b")R"
    if technique == "methodcaller":
        caller = _call(_g("operator", "methodcaller"), _s("system"), _s(cmd))
        return caller + b"(" + os_module + b"tR"
    if technique == "nested_pickle":
        inner = payload("os_system", marker) + b"."
        return _call(_g("pickle", "loads"), b"C" + bytes([len(inner)]) + inner)
    raise ValueError(f"unknown technique {technique}")


# --------------------------------------------------------------------------- joblib helpers


def array_ends(path: Path) -> list[int]:
    """Offsets just after each raw array of a *benign, self-made* plain joblib file.

    Loads the file with joblib's own unpickler (safe: we wrote it), recording the file position
    each time joblib has read an array's bytes.
    """
    from joblib import numpy_pickle

    ends: list[int] = []

    class Recorder(numpy_pickle.NumpyUnpickler):
        def load_build(self) -> None:
            wrapper = isinstance(self.stack[-2], numpy_pickle.NumpyArrayWrapper)
            super().load_build()
            if wrapper:
                ends.append(self.file_handle.tell())

        dispatch = numpy_pickle.NumpyUnpickler.dispatch.copy()
        dispatch[pickle.BUILD[0]] = load_build

    with open(path, "rb") as f:
        Recorder(str(path), f, ensure_native_byte_order=False).load()
    return ends


def _joblib_dump(obj: Any, path: Path, compress: Any = 0) -> None:
    import joblib

    joblib.dump(obj, path, compress=compress)


# --------------------------------------------------------------------------- builder


def build_corpus(
    directory: Path, marker: Path, *, kinds: tuple[str, ...] | None = None
) -> list[CorpusFile]:
    """Write the corpus into `directory`; return one CorpusFile per file written."""
    import numpy as np

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    models = train_models()
    if kinds is not None:
        models = {k: v for k, v in models.items() if k in kinds}
    out: list[CorpusFile] = []

    def add(name: str, data: bytes | None, kind: str, bad: bool, tech: str, place: str) -> Path:
        path = directory / name
        if data is not None:
            path.write_bytes(data)
        out.append(CorpusFile(path, kind, bad, tech, place))
        return path

    for kind, model in models.items():
        _joblib_dump(model, directory / f"{kind}.joblib")
        add(f"{kind}.joblib", None, kind, False, "", "joblib")
        _joblib_dump(model, directory / f"{kind}.z3.joblib", compress=3)
        add(f"{kind}.z3.joblib", None, kind, False, "", "joblib-zlib")
        for protocol in (2, 5):
            add(f"{kind}.p{protocol}.pkl", pickle.dumps(model, protocol), kind, False, "", "pickle")
    # every other compressor joblib supports, on one model
    base = models.get("random_forest") or next(iter(models.values()))
    for method in ("gzip", "bz2", "lzma", "xz"):
        _joblib_dump(base, directory / f"forest.{method}.joblib", compress=(method, 3))
        add(f"forest.{method}.joblib", None, "random_forest", False, "", f"joblib-{method}")
    try:
        import lz4  # noqa: F401
    except ImportError:
        pass
    else:
        _joblib_dump(base, directory / "forest.lz4.joblib", compress=("lz4", 3))
        add("forest.lz4.joblib", None, "random_forest", False, "", "joblib-lz4")
    # an object-dtype array (a nested pickle inside joblib's array section)
    _joblib_dump(np.array(["a", None, 3], dtype=object), directory / "object_array.joblib")
    add("object_array.joblib", None, "object_array", False, "", "joblib")

    victim = models.get("logistic_regression") or next(iter(models.values()))
    plain = directory / "victim.joblib.tmp"
    _joblib_dump(victim, plain)
    victim_bytes = plain.read_bytes()
    first_end = array_ends(plain)[0]
    plain.unlink()
    arr = np.arange(12, dtype=np.float64)
    for tech in TECHNIQUES:
        ops = payload(tech, marker)
        add(
            f"evil_{tech}.prefix.pkl",
            ops + b"." + pickle.dumps(victim, 5),
            "logistic_regression",
            True,
            tech,
            "prefix",
        )
        spliced = victim_bytes[:first_end] + ops + b"0" + victim_bytes[first_end:]
        add(f"evil_{tech}.spliced.joblib", spliced, "logistic_regression", True, tech, "spliced")
        add(
            f"evil_{tech}.appended.joblib",
            victim_bytes + ops + b".",
            "logistic_regression",
            True,
            tech,
            "appended",
        )
        add(
            f"evil_{tech}.spliced.z3.joblib",
            zlib.compress(spliced, 3),
            "logistic_regression",
            True,
            tech,
            "compressed",
        )
        reduced = _reduce_payload(tech, marker)
        if reduced is not None:
            _joblib_dump([arr, reduced, victim], directory / f"evil_{tech}.wrapped.joblib")
            add(f"evil_{tech}.wrapped.joblib", None, "logistic_regression", True, tech, "wrapped")
    # the other compressors, with one technique
    ops = payload("os_system", marker)
    spliced = victim_bytes[:first_end] + ops + b"0" + victim_bytes[first_end:]
    for suffix, data in (
        ("gz", gzip.compress(spliced, 3)),
        ("bz2", bz2.compress(spliced, 3)),
        ("xz", lzma.compress(spliced)),
    ):
        add(
            f"evil_os_system.spliced.{suffix}.joblib",
            data,
            "logistic_regression",
            True,
            "os_system",
            "compressed",
        )
    return out


class _Reduce:
    """Pickles as ``func(*args)``; pickling never calls `func` (loading would)."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _reduce_payload(technique: str, marker: Path) -> _Reduce | None:
    """The `__reduce__` form of a technique, where it has a simple one (else None)."""
    import builtins
    import importlib
    import marshal
    import os

    py = f"open({str(marker)!r}, 'w').close()"
    if technique == "os_system":
        return _Reduce(os.system, (f"touch {marker}",))
    if technique == "builtins_eval":
        return _Reduce(builtins.eval, (py,))
    if technique == "builtins_exec":
        return _Reduce(builtins.exec, (py,))
    if technique == "importlib":
        return _Reduce(importlib.import_module, ("os",))
    if technique == "marshal":
        return _Reduce(marshal.loads, (marshal.dumps(compile(py, "<payload>", "exec")),))
    if technique == "nested_pickle":
        return _Reduce(pickle.loads, (payload("os_system", marker) + b".",))
    return None
