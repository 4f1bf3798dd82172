"""Which global names a model pickle may import: the one place this rule lives.

Unpickling calls whatever a pickle names with the GLOBAL / STACK_GLOBAL / INST opcodes (and
REDUCE / NEWOBJ call it with arguments the file chose), so the safety of loading a pickle is
the safety of the names it may import. The scanner (`modelchain.use.scan`) and the restricted
unpickler (`modelchain.use.guard`) both ask `check(module, name)`; nothing else decides.

The rule, in order:

1. Names are first mapped as the unpickler maps them for Python 2 pickles
   (``__builtin__`` -> ``builtins``, ``copy_reg`` -> ``copyreg``; `pickle`'s own table).
2. **Refused, always** (even if the caller trusts them): any name in a module tree of
   `DENIED_PREFIXES` (os, posix, subprocess, importlib, marshal, pickle, multiprocessing,
   socket, ...), any dotted name with a step in such a tree (``sklearn.x.os.system``), and
   the exact names of `DENIED` (eval, exec, getattr, functools.partial, numpy.load, ...).
3. **Allowed**: an entry of `ENTRIES`, an explicit list where every entry says in one line
   why restoring it cannot act (no I/O, no process, no code, no allocation the file's size
   does not pay for), and in which `role` it may be used: a ``value`` is only referenced,
   never called; a ``class`` may be instantiated and given its state; a ``call`` is a
   reconstruction function whose arguments the restricted unpickler checks. There is no
   rule "by shape" or "by package": a class is allowed because it is listed.
4. Names the caller trusts (`trusted=`, strings from `parse_trusted`): an exact
   "module.qualname", or "module.*" for every *plain* name (no dots) in a module tree.
5. Everything else is refused (`NOT_ALLOWED` documents some refusals people ask about).

The restricted unpickler also checks what it imported: the object must be defined where the
pickle says (``obj.__module__``/``__qualname__`` equal the entry, so a re-export such as
joblib's `Parallel` seen through an sklearn module does not match), must not be a module,
and an object reached through a trusted name must not itself be a refused name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelchain.core.errors import UsageError

__all__ = [
    "DEFAULT_ALLOWED",
    "DENIED",
    "DENIED_PREFIXES",
    "ENTRIES",
    "NOT_ALLOWED",
    "Entry",
    "Verdict",
    "check",
    "entry",
    "identity_problem",
    "normalize",
    "parse_trusted",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a global may be imported, and why (a short phrase for reports)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class Entry:
    """One allowed global: where it is defined, how it may be used, and why that is safe.

    `key` is "module.qualname" where the object is defined; `aliases` are other names a
    pickle may use for the very same object (``numpy.core`` for ``numpy._core``, a public
    re-export); `role` is "value", "class" or "call" (see the module docstring).
    """

    key: str
    role: str
    reason: str
    aliases: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]


def _names(module: str, *names: str) -> set[str]:
    return {f"{module}.{n}" for n in names}


def _entries(role: str, reason: str, module: str, names: str, aliases: Iterable[str] = ()) -> list:
    """One Entry per name of `names` (space separated) in `module`; `aliases` are other
    modules the same objects may be requested from."""
    return [
        Entry(f"{module}.{n}", role, reason, tuple(f"{a}.{n}" for a in aliases))
        for n in names.split()
    ]


_UFUNCS = (
    "absolute add arccos arccosh arcsin arcsinh arctan arctan2 arctanh cbrt ceil clip "
    "conjugate cos cosh deg2rad degrees divide exp exp2 expm1 fabs floor floor_divide fmax "
    "fmin fmod hypot log log10 log1p log2 logaddexp logaddexp2 maximum minimum multiply "
    "negative positive power rad2deg radians reciprocal remainder rint sign sin sinh sqrt "
    "square subtract tan tanh trunc isnan isfinite isinf"
)

_ESTIMATOR = (
    "estimator: restoring sets attributes through BaseEstimator.__setstate__ (a version "
    "warning at most); no I/O, no process, no code"
)
_PLAIN = "plain Python class: restoring sets instance attributes only"
_TREES = _ESTIMATOR + "; modelchain checks its trees expect its number of features"

#: Everything the default allowlist admits, with the reason restoring it cannot act.
ENTRIES: tuple[Entry, ...] = tuple(
    # -- Python builtins and the standard library's reconstruction helpers
    _entries(
        "class",
        "builds a container from items already decoded from the file",
        "builtins",
        "set frozenset list tuple dict",
    )
    + _entries(
        "class",
        "builds a number or string from a value already in the file",
        "builtins",
        "int float complex bool str",
    )
    + _entries("class", "a slice object: three values, no action", "builtins", "slice")
    + _entries(
        "class",
        "bytes from a string in the file (an integer size, a zero-filled "
        "allocation the file does not pay for, is refused)",
        "builtins",
        "bytes bytearray",
    )
    + _entries(
        "class", "only as copyreg._reconstructor's base: object.__new__(cls)", "builtins", "object"
    )
    + _entries(
        "call",
        "cls.__new__ for a class and base that are themselves allowed; "
        "size arguments are checked like bytes()",
        "copyreg",
        "_reconstructor",
    )
    + _entries(
        "call",
        "latin-1 text to bytes, how protocol 2 writes bytes (other codecs are refused)",
        "_codecs",
        "encode",
    )
    + _entries(
        "class",
        "a container of items already in the file; a defaultdict's factory "
        "is only called on a missing key, after loading",
        "collections",
        "OrderedDict defaultdict deque Counter",
    )
    + _entries(
        "class",
        "a date or time value from bytes in the file",
        "datetime",
        "datetime date time timedelta timezone",
    )
    # -- numpy
    + _entries(
        "value",
        "only as the class argument of _reconstruct; calling it with a "
        "shape, buffer or strides is refused",
        "numpy",
        "ndarray",
    )
    + _entries(
        "class",
        "a dtype from a type string; its state is checked (no object "
        "fields unless it is the plain object dtype, fields inside the item size)",
        "numpy",
        "dtype",
    )
    + _entries(
        "call",
        "an empty ndarray of shape (0,), then filled by its checked state "
        "(data exactly the size of the shape, objects only from a list)",
        "numpy._core.multiarray",
        "_reconstruct",
        ("numpy.core.multiarray",),
    )
    + _entries(
        "call",
        "a scalar from bytes in the file, for a checked dtype without object fields",
        "numpy._core.multiarray",
        "scalar",
        ("numpy.core.multiarray",),
    )
    + _entries(
        "call",
        "an array over bytes in the file, for a checked dtype without object fields",
        "numpy._core.numeric",
        "_frombuffer",
        ("numpy.core.numeric",),
    )
    + _entries(
        "value",
        "a pure elementwise math ufunc, only referenced (a pickle cannot call "
        "it: broadcasting could allocate far more than the file)",
        "numpy",
        _UFUNCS,
    )
    + _entries(
        "call",
        "looks up a bit generator by name among numpy's own",
        "numpy.random._pickle",
        "__bit_generator_ctor",
    )
    + _entries(
        "call",
        "a Generator or RandomState over a bit generator from "
        "__bit_generator_ctor (any other factory is refused)",
        "numpy.random._pickle",
        "__generator_ctor __randomstate_ctor",
    )
    + _entries(
        "class",
        "bit generator: __setstate__ checks and copies a fixed-size state",
        "numpy.random._mt19937",
        "MT19937",
    )
    + _entries(
        "class",
        "bit generator: __setstate__ checks and copies a fixed-size state",
        "numpy.random._pcg64",
        "PCG64 PCG64DXSM",
    )
    + _entries(
        "class",
        "bit generator: __setstate__ checks and copies a fixed-size state",
        "numpy.random._philox",
        "Philox",
    )
    + _entries(
        "class",
        "bit generator: __setstate__ checks and copies a fixed-size state",
        "numpy.random._sfc64",
        "SFC64",
    )
    + _entries(
        "class",
        "seed sequence: entropy and pool values only",
        "numpy.random.bit_generator",
        "SeedSequence",
    )
    + _entries(
        "call",
        "Cython's restore of SeedSequence (checks a layout checksum, sets fields)",
        "numpy.random.bit_generator",
        "__pyx_unpickle_SeedSequence",
    )
    + _entries(
        "class",
        "legacy random state over a checked bit generator",
        "numpy.random.mtrand",
        "RandomState",
    )
    + _entries(
        "class",
        "random generator over a checked bit generator",
        "numpy.random._generator",
        "Generator",
    )
    # -- joblib
    + _entries(
        "class",
        "joblib's array placeholder: modelchain reads the array that follows "
        "it itself, bounded by the bytes left and with a checked dtype",
        "joblib.numpy_pickle",
        "NumpyArrayWrapper",
    )
    # -- scipy sparse
    + _entries(
        "class",
        "sparse matrix of arrays in the file; its index structure is checked "
        "(check_format(full_check=True)) before use",
        "scipy.sparse._csr",
        "csr_matrix csr_array",
        ("scipy.sparse", "scipy.sparse.csr"),
    )
    + _entries(
        "class",
        "sparse matrix of arrays in the file; its index structure is checked "
        "(check_format(full_check=True)) before use",
        "scipy.sparse._csc",
        "csc_matrix csc_array",
        ("scipy.sparse", "scipy.sparse.csc"),
    )
    # -- scikit-learn: the estimators and internals the benign corpus needs
    + _entries("class", _ESTIMATOR, "sklearn.linear_model._logistic", "LogisticRegression")
    + _entries("class", _ESTIMATOR, "sklearn.linear_model._base", "LinearRegression")
    + _entries("class", _ESTIMATOR, "sklearn.linear_model._ridge", "Ridge")
    + _entries("class", _ESTIMATOR, "sklearn.linear_model._coordinate_descent", "Lasso")
    + _entries(
        "class",
        _TREES,
        "sklearn.tree._classes",
        "DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier",
    )
    + _entries(
        "class",
        _TREES,
        "sklearn.ensemble._forest",
        "RandomForestClassifier ExtraTreesClassifier",
    )
    + _entries("class", _TREES, "sklearn.ensemble._gb", "GradientBoostingClassifier")
    + _entries(
        "class",
        _ESTIMATOR,
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        "HistGradientBoostingClassifier",
    )
    + _entries(
        "class",
        "bin thresholds (arrays); binning happens at predict time",
        "sklearn.ensemble._hist_gradient_boosting.binning",
        "_BinMapper",
    )
    + _entries(
        "class",
        _ESTIMATOR + "; modelchain checks its support-vector arrays agree (libsvm does not)",
        "sklearn.svm._classes",
        "SVC",
    )
    + _entries("class", _ESTIMATOR, "sklearn.svm._classes", "LinearSVC")
    + _entries(
        "class",
        _ESTIMATOR + "; modelchain checks its centres have its number of features",
        "sklearn.cluster._kmeans",
        "KMeans",
    )
    + _entries("class", _ESTIMATOR, "sklearn.neighbors._classification", "KNeighborsClassifier")
    + _entries("class", _ESTIMATOR, "sklearn.naive_bayes", "GaussianNB")
    + _entries(
        "class", _ESTIMATOR, "sklearn.neural_network._multilayer_perceptron", "MLPClassifier"
    )
    + _entries("class", _PLAIN, "sklearn.neural_network._stochastic_optimizers", "AdamOptimizer")
    + _entries("class", _ESTIMATOR, "sklearn.pipeline", "Pipeline")
    + _entries("class", _ESTIMATOR, "sklearn.compose._column_transformer", "ColumnTransformer")
    + _entries("class", _ESTIMATOR, "sklearn.preprocessing._data", "StandardScaler MinMaxScaler")
    + _entries(
        "class", _ESTIMATOR, "sklearn.preprocessing._function_transformer", "FunctionTransformer"
    )
    + _entries("class", _ESTIMATOR, "sklearn.preprocessing._label", "LabelBinarizer LabelEncoder")
    + _entries("class", _ESTIMATOR, "sklearn.dummy", "DummyClassifier")
    + _entries(
        "class",
        "Cython decision tree: __setstate__ checks the node array's dtype and "
        "shape; modelchain checks every child and feature index before use",
        "sklearn.tree._tree",
        "Tree",
    )
    + _entries(
        "class",
        "Cython KD-tree: arrays only; modelchain checks its index arrays before use",
        "sklearn.neighbors._kd_tree",
        "KDTree",
    )
    + _entries(
        "call",
        "Cython's cls.__new__(cls) for an allowed class",
        "sklearn.neighbors._kd_tree",
        "newObj",
    )
    + _entries(
        "class",
        "distance metric: a few scalars and arrays",
        "sklearn.metrics._dist_metrics",
        "EuclideanDistance64",
    )
    + _entries(
        "call",
        "Cython's cls.__new__(cls) for an allowed class",
        "sklearn.metrics._dist_metrics",
        "newObj",
    )
    + _entries("class", "loss object without state", "sklearn._loss._loss", "CyHalfMultinomialLoss")
    + _entries(
        "call",
        "Cython's restore of CyHalfMultinomialLoss (checks a layout checksum)",
        "sklearn._loss._loss",
        "__pyx_unpickle_CyHalfMultinomialLoss",
    )
    + _entries("class", _PLAIN, "sklearn._loss.loss", "HalfMultinomialLoss")
    + _entries("class", _PLAIN, "sklearn._loss.link", "Interval MultinomialLogit")
)

_BY_KEY: dict[str, Entry] = {}
for _e in ENTRIES:
    for _k in (_e.key, *_e.aliases):
        _BY_KEY[_k] = _e

#: Every "module.name" of `ENTRIES` (and their aliases): the default allowlist as a set.
DEFAULT_ALLOWED: frozenset[str] = frozenset(_BY_KEY)

#: Names people ask about that the default allowlist refuses, and why (for the docs).
NOT_ALLOWED: tuple[tuple[str, str], ...] = (
    (
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "skops refuses it too: its node array is indexed without bounds checks at predict "
        "time; pass it with --trust for a file you trust",
    ),
    (
        "joblib.numpy_pickle_compat.NDArrayWrapper / ZNDArrayWrapper",
        "joblib < 0.10 arrays: joblib.load would call numpy.load(<path from the pickle>, "
        "allow_pickle=True)",
    ),
    ("builtins.range", "list(range(N)) allocates without bound from a few bytes"),
    ("numpy.void, numpy.bytes_", "numpy.void(N) allocates N zero bytes"),
    ("numpy.ma.core, numpy.matrix", "not needed by scikit-learn models; not reviewed"),
    (
        "multiprocessing.connection.Client (and all of multiprocessing)",
        "connects to an address from the file when restored, and waits",
    ),
    (
        "any other class in sklearn",
        "not reviewed; there is no 'everything in sklearn' rule (re-exports such as "
        "sklearn.pipeline.Parallel and classes that act on restore would pass it)",
    ),
)

#: Module trees refused even when a caller trusts them.
DENIED_PREFIXES: tuple[str, ...] = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "importlib",
    "marshal",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "shelve",
    "runpy",
    "code",
    "codeop",
    "pty",
    "socket",
    "shutil",
    "sys",
    "ctypes",
    "_ctypes",
    "multiprocessing",
    "threading",
    "_thread",
    "signal",
    "asyncio",
    "webbrowser",
    "http",
    "urllib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "tempfile",
    "pathlib",
    "io",
    "_io",
    "zipimport",
    "pkgutil",
    "site",
    "sysconfig",
    "inspect",
    "gc",
    "atexit",
    "platform",
    "pdb",
    "bdb",
    "trace",
    "timeit",
    "profile",
    "cProfile",
    "commands",
    "popen2",
    "joblib.numpy_pickle_utils",
    "joblib.numpy_pickle_compat",
    "numpy.testing",
    "numpy.lib.npyio",
    "numpy.distutils",
    "numpy.f2py",
    "torch.serialization",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch._C",
    "torch.ops",
    "torch.utils",
    "dask",
    "IPython",
    "setuptools",
    "distutils",
    "pip",
    "venv",
)

#: Exact names refused even when a caller trusts them (their modules are otherwise harmless).
DENIED: frozenset[str] = frozenset(
    _names(
        "builtins",
        "eval",
        "exec",
        "compile",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "open",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "exit",
        "quit",
        "help",
        "memoryview",
        "type",
        "super",
        "classmethod",
        "staticmethod",
        "property",
        "print",
        "__build_class__",
        "dir",
        "id",
    )
    | _names("operator", "attrgetter", "itemgetter", "methodcaller", "call")
    | _names("functools", "partial", "partialmethod", "reduce")
    | _names("types", "FunctionType", "CodeType", "MethodType", "LambdaType", "ModuleType")
    | _names("copyreg", "__newobj__", "__newobj_ex__")
    | _names("joblib", "load", "dump")
    | _names("joblib.numpy_pickle", "load", "NumpyUnpickler", "dump", "NumpyPickler")
    | _names(
        "numpy",
        "load",
        "loads",
        "fromfile",
        "frompyfunc",
        "vectorize",
        "piecewise",
        "apply_along_axis",
        "apply_over_axes",
        "loadtxt",
        "genfromtxt",
        "save",
        "savez",
    )
    | _names("numpy.core.multiarray", "_load")
    | _names("numpy._core.multiarray", "_load")
    | _names("torch", "load", "loads", "compile")
    | _names("torch.storage", "_load_from_bytes")
)

_REASONS = {
    "os": "runs shell commands and touches files",
    "posix": "runs shell commands and touches files",
    "nt": "runs shell commands and touches files",
    "subprocess": "runs programs",
    "importlib": "imports arbitrary modules",
    "marshal": "loads code objects",
    "pickle": "unpickles a nested payload",
    "_pickle": "unpickles a nested payload",
    "dill": "unpickles a nested payload",
    "cloudpickle": "unpickles a nested payload",
    "builtins": "evaluates code or reaches arbitrary attributes",
    "operator": "calls or reaches arbitrary attributes",
    "functools": "builds arbitrary calls",
    "types": "builds functions from code",
    "runpy": "runs modules",
    "socket": "opens network connections",
    "ctypes": "calls native code",
    "sys": "changes the interpreter",
    "shutil": "touches files",
}

_COMPAT_MODULES: dict[str, str] = {}
_COMPAT_NAMES: dict[tuple[str, str], tuple[str, str]] = {}
try:  # pickle's own Python 2 -> 3 table, the one the unpickler applies
    import _compat_pickle

    _COMPAT_MODULES = dict(_compat_pickle.IMPORT_MAPPING)
    _COMPAT_NAMES = dict(_compat_pickle.NAME_MAPPING)
except ImportError:  # pragma: no cover - always present in CPython
    pass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DENIED_TOPS = frozenset(p.split(".")[0] for p in DENIED_PREFIXES if "." not in p)


def normalize(module: str, name: str) -> tuple[str, str]:
    """The (module, name) the unpickler really imports for a Python 2 style reference."""
    if (module, name) in _COMPAT_NAMES:
        return _COMPAT_NAMES[(module, name)]
    return _COMPAT_MODULES.get(module, module), name


def _under(module: str, prefixes: Iterable[str]) -> str | None:
    for prefix in prefixes:
        base = prefix.rstrip(".")
        if module == base or module.startswith(base + "."):
            return base
    return None


def _denied(module: str, name: str) -> Verdict | None:
    """Rule 2, checked for the name and for every attribute step of a dotted name: the
    unpickler resolves ``a.b.c`` by getattr, so ``sklearn.x`` + ``os.system`` reaches
    whatever ``sklearn.x.os`` is."""
    key = f"{module}.{name}"
    top = _under(module, DENIED_PREFIXES)
    if top is not None:
        why = _REASONS.get(top.split(".")[0], "can run code")
        return Verdict(False, f"refused: {key} ({why})")
    if key in DENIED:
        why = _REASONS.get(module.split(".")[0], "can run code")
        return Verdict(False, f"refused: {key} ({why})")
    steps = name.split(".")
    for i, step in enumerate(steps):
        inner = ".".join([module, *steps[:i]])
        if step in _DENIED_TOPS or _under(f"{inner}.{step}", DENIED_PREFIXES) is not None:
            return Verdict(
                False,
                f"refused: {key} (attribute step {step!r} reaches a module that is always refused)",
            )
        if i and f"{inner}.{step}" in DENIED:
            return Verdict(False, f"refused: {key} (reaches {inner}.{step})")
    return None


def entry(module: str, name: str) -> Entry | None:
    """The `ENTRIES` entry a (normalized) pickle reference names, if any."""
    module, name = normalize(module, name)
    return _BY_KEY.get(f"{module}.{name}")


def check(module: str, name: str, trusted: Iterable[str] = ()) -> Verdict:
    """May a pickle import `name` from `module`? See the module docstring for the rule."""
    if not isinstance(module, str) or not isinstance(name, str):
        return Verdict(False, "refused: global name is not a string")
    module, name = normalize(module, name)
    key = f"{module}.{name}"
    if not _MODULE.fullmatch(module) or not all(_IDENT.fullmatch(p) for p in name.split(".")):
        return Verdict(False, f"refused: {key!r} is not a valid module.name")
    denied = _denied(module, name)
    if denied is not None:
        return denied
    if key in _BY_KEY:
        return Verdict(True, "allowed: default allowlist")
    for item in trusted:
        if item.endswith(".*"):
            if "." not in name and _under(module, (item[:-2],)) is not None:
                return Verdict(True, f"allowed: trusted by caller ({item})")
        elif item == key:
            return Verdict(True, "allowed: trusted by caller")
    if "." in name:
        return Verdict(False, f"refused: {key} (a dotted name is allowed only when listed exactly)")
    return Verdict(False, f"refused: {key} is not in the allowlist")


def identity_problem(
    module: str, name: str, obj: object, trusted: Iterable[str] = ()
) -> str | None:
    """For the restricted unpickler, after importing: why `obj` is not what the allowed name
    promised (None when it is). The object must be defined where its entry says (no
    re-exports), must not be a module, and what a trusted name reaches must itself pass."""
    import types

    module, name = normalize(module, name)
    key = f"{module}.{name}"
    if isinstance(obj, types.ModuleType):
        return f"refused: {key} is a module"
    home_module = getattr(obj, "__module__", None)
    home_name = getattr(obj, "__qualname__", None)
    if not isinstance(home_module, str) or not isinstance(home_name, str):
        return f"refused: {key} does not say where it is defined"
    home = f"{home_module}.{home_name}"
    found = _BY_KEY.get(key)
    if found is not None:
        if home not in (found.key, *found.aliases):
            return f"refused: {key} is {home}, not the object the allowlist names"
        return None
    verdict = check(home_module, home_name, trusted)
    if not verdict.allowed:
        return f"refused: {key} is {home} ({verdict.reason})"
    return None


def parse_trusted(text: str) -> str:
    """Validate one `trusted=` entry: "pkg.mod.Name", "pkg.mod:Qual.Name" or "pkg.mod.*".

    Returns the normalized "module.qualname" (or "module.*"). Raises UsageError for a
    malformed entry or one that names something refused by rule 2 (which trust cannot lift).
    """
    text = text.strip()
    if text.endswith(".*"):
        module = text[:-2]
        if not _MODULE.fullmatch(module):
            raise UsageError(f"trusted name {text!r} is not of the form package.module.*")
        if _under(module, DENIED_PREFIXES) is not None or any(
            _under(d, (module,)) for d in DENIED_PREFIXES
        ):
            raise UsageError(f"trusted name {text!r} covers modules that are always refused")
        return text
    if ":" in text:
        module, _, name = text.partition(":")
    else:
        module, _, name = text.rpartition(".")
    if not module or not _MODULE.fullmatch(module) or not name:
        raise UsageError(f"trusted name {text!r} is not of the form package.module.Name")
    if not all(_IDENT.fullmatch(p) for p in name.split(".")):
        raise UsageError(f"trusted name {text!r} is not of the form package.module.Name")
    module, name = normalize(module, name)
    denied = _denied(module, name)
    if denied is not None:
        raise UsageError(f"cannot trust {module}.{name}: it is always {denied.reason}")
    return f"{module}.{name}"
