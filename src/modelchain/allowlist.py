"""Which global names a model pickle may import: the one place this rule lives.

Unpickling calls whatever a pickle names with the GLOBAL / STACK_GLOBAL / INST opcodes (and
REDUCE / NEWOBJ call it with arguments the file chose), so the safety of loading a pickle is
the safety of the names it may import. The scanner (`modelchain.scan`) and the restricted
unpickler (`modelchain.guard`) both ask `check(module, name)`; nothing else decides.

The rule, in order:

1. Names are first mapped as the unpickler maps them for Python 2 pickles
   (``__builtin__`` -> ``builtins``, ``copy_reg`` -> ``copyreg``; `pickle`'s own table).
2. **Refused, always** (even if the caller trusts them): any name in a module tree of
   `DENIED_PREFIXES` (os, posix, subprocess, importlib, marshal, pickle, dill, joblib's loaders,
   runpy, code, ctypes, socket, shutil, sys, ...), and the exact names of `DENIED` (builtins
   that evaluate, import, open or reach attributes: eval, exec, compile, getattr, __import__,
   open, ...; operator.attrgetter/methodcaller/itemgetter; functools.partial; numpy.load, ...).
3. **Allowed**: an exact entry of `DEFAULT_ALLOWED` ("module.qualname"): numpy and scipy
   reconstruction, numpy random generators, pure math numpy ufuncs, joblib's array wrappers,
   safe builtins constructors (set, frozenset, slice, complex, bytes, bytearray, range,
   object), collections containers, copyreg._reconstructor, _codecs.encode.
4. **Allowed by shape**: in a module under one of `ALLOWED_PREFIXES` (``sklearn.``), a name
   that *looks like a class* -- one identifier in CapWords, optionally with one leading
   underscore (``LogisticRegression``, ``Tree``, ``_BinMapper``, ``CyHalfMultinomialLoss``) --
   or Cython's class-restoring helper ``__pyx_unpickle_<Class>``; modules whose code is not
   data (``sklearn.utils._testing``, ``sklearn.externals``, ``sklearn.datasets``, test
   packages, ...) are excluded. The decision is static, by name only, so the scanner never
   imports anything; the restricted unpickler additionally checks that the object it
   imported under such a name is really a class (see `looks_like_class`).
5. Names the caller trusts (`trusted=`, strings from `parse_trusted`): an exact
   "module.qualname", or "module.*" for every name in a module tree.
6. Everything else is refused.

Dotted qualnames (``Pipeline.__init__``) never match rule 4, and exact entries match only
themselves, so attribute traversal cannot reach past an allowed name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelchain.errors import UsageError

__all__ = [
    "ALLOWED_PREFIXES",
    "DEFAULT_ALLOWED",
    "DENIED",
    "DENIED_PREFIXES",
    "Verdict",
    "check",
    "looks_like_class",
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


def _names(module: str, *names: str) -> set[str]:
    return {f"{module}.{n}" for n in names}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_NUMPY_UFUNCS = _words(
    # pure elementwise math: no I/O, no callbacks, nothing that calls back into Python
    "abs absolute add arccos arccosh arcsin arcsinh arctan arctan2 arctanh cbrt ceil clip "
    "conjugate cos cosh deg2rad degrees divide exp exp2 expm1 fabs floor floor_divide fmax "
    "fmin fmod hypot log log10 log1p log2 logaddexp logaddexp2 maximum minimum mod multiply "
    "negative positive power rad2deg radians reciprocal remainder rint sign sin sinh sqrt "
    "square subtract tan tanh true_divide trunc isnan isfinite isinf"
)

_NUMPY_SCALARS = [
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
    "intc",
    "uintc",
    "intp",
    "uintp",
]

DEFAULT_ALLOWED: frozenset[str] = frozenset(
    _names("builtins", "set", "frozenset", "slice", "complex", "bytes", "bytearray", "range")
    | _names("builtins", "object", "int", "float", "bool", "str", "list", "dict", "tuple")
    | _names("collections", "OrderedDict", "defaultdict", "deque", "Counter")
    | _names("copyreg", "_reconstructor")
    | _names("_codecs", "encode")
    | _names("datetime", "datetime", "date", "time", "timedelta", "timezone")
    | _names("numpy", "ndarray", "dtype", "matrix", *_NUMPY_UFUNCS, *_NUMPY_SCALARS)
    | _names("numpy.core.multiarray", "_reconstruct", "scalar")
    | _names("numpy._core.multiarray", "_reconstruct", "scalar")
    | _names("numpy.core.numeric", "_frombuffer")
    | _names("numpy._core.numeric", "_frombuffer")
    | _names("numpy.ma.core", "_mareconstruct", "MaskedArray")
    | _names(
        "numpy.random._pickle",
        "__bit_generator_ctor",
        "__generator_ctor",
        "__randomstate_ctor",
    )
    | _names("numpy.random._mt19937", "MT19937")
    | _names("numpy.random._pcg64", "PCG64", "PCG64DXSM")
    | _names("numpy.random._philox", "Philox")
    | _names("numpy.random._sfc64", "SFC64")
    | _names("numpy.random.bit_generator", "SeedSequence", "__pyx_unpickle_SeedSequence")
    | _names("numpy.random.mtrand", "RandomState")
    | _names("numpy.random._generator", "Generator")
    | _names("joblib.numpy_pickle", "NumpyArrayWrapper")
    | _names("joblib.numpy_pickle_compat", "NDArrayWrapper", "ZNDArrayWrapper")
    | _names("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper")
    # PyTorch checkpoints (zip): tensor and storage reconstruction only
    | _names("torch._utils", "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter")
    | _names("torch", "Size", "device", "float32", "float64", "float16", "bfloat16", "int64")
    | _names("torch", "int32", "int16", "int8", "uint8", "bool")
    | {
        f"torch.{t}Storage"
        for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte")
    }
    | _names("torch", "BoolStorage")
    | _names("torch.storage", "UntypedStorage", "TypedStorage")
    # sklearn's Cython binary trees restore themselves with `newObj(cls) = cls.__new__(cls)`
    | _names("sklearn.metrics._dist_metrics", "newObj")
    | _names("sklearn.neighbors._kd_tree", "newObj")
    | _names("sklearn.neighbors._ball_tree", "newObj")
    | _names("sklearn.neighbors._binary_tree", "newObj")
    | {
        f"{module}.{fmt}_{kind}"
        for fmt in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
        for kind in ("matrix", "array")
        for module in (f"scipy.sparse._{fmt}", f"scipy.sparse.{fmt}", "scipy.sparse")
    }
)

#: Module trees whose *classes* are data-only model parts (rule 4 above).
ALLOWED_PREFIXES: tuple[str, ...] = ("sklearn.",)

#: Module trees under an allowed prefix that are never allowed (test helpers, data fetchers,
#: vendored code, parallelism and build machinery).
EXCLUDED_PREFIXES: tuple[str, ...] = (
    "sklearn.utils._testing",
    "sklearn.utils.estimator_checks",
    "sklearn.utils._joblib",
    "sklearn.utils.parallel",
    "sklearn.utils.fixes",
    "sklearn.utils._show_versions",
    "sklearn.externals",
    "sklearn.datasets",
    "sklearn.experimental",
    "sklearn.conftest",
    "sklearn._build_utils",
    "sklearn.__check_build",
    "sklearn._config",
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

#: Class-like names that sklearn modules re-export from libraries whose objects run code.
_SHAPE_DENIED = frozenset(
    [
        "Parallel",
        "Memory",
        "Path",
        "PurePath",
        "Popen",
        "Thread",
        "Pool",
        "ThreadPool",
        "ThreadPoolExecutor",
        "ProcessPoolExecutor",
        "ZipFile",
        "TemporaryDirectory",
        "NamedTemporaryFile",
        "Logger",
    ]
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLASS_NAME = re.compile(r"_?[A-Z][A-Za-z0-9_]*")
_PYX_UNPICKLE = re.compile(r"__pyx_unpickle_(_?[A-Z][A-Za-z0-9_]*)")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


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
    key = f"{module}.{name}"
    top = _under(module, DENIED_PREFIXES)
    if top is not None:
        why = _REASONS.get(top.split(".")[0], "can run code")
        return Verdict(False, f"refused: {key} ({why})")
    if key in DENIED:
        why = _REASONS.get(module.split(".")[0], "can run code")
        return Verdict(False, f"refused: {key} ({why})")
    return None


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
    if key in DEFAULT_ALLOWED:
        return Verdict(True, "allowed: default allowlist")
    if (
        _under(module, ALLOWED_PREFIXES) is not None
        and _under(module, EXCLUDED_PREFIXES) is None
        and not any(part.startswith("test") for part in module.split("."))
        and name not in _SHAPE_DENIED
        and (_CLASS_NAME.fullmatch(name) or _PYX_UNPICKLE.fullmatch(name))
    ):
        return Verdict(True, "allowed: scikit-learn class")
    for entry in trusted:
        if entry.endswith(".*"):
            if _under(module, (entry[:-2],)) is not None:
                return Verdict(True, f"allowed: trusted by caller ({entry})")
        elif entry == key:
            return Verdict(True, "allowed: trusted by caller")
    return Verdict(False, f"refused: {key} is not in the allowlist")


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


def looks_like_class(obj: object) -> bool:
    """For the restricted unpickler: an object allowed by shape (rule 4) must be a class
    *defined* under an allowed prefix (not one re-exported from elsewhere, such as joblib's
    `Parallel` imported into `sklearn.pipeline`), or Cython's `__pyx_unpickle_*` helper."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or _under(module, ALLOWED_PREFIXES) is None:
        return False
    if isinstance(obj, type):
        return True
    return callable(obj) and bool(_PYX_UNPICKLE.fullmatch(getattr(obj, "__name__", "")))


def allowed_by_shape(module: str, name: str) -> bool:
    """True when `check` allows the name by rule 4 (so the unpickler must `looks_like_class`)."""
    module, name = normalize(module, name)
    return check(module, name).reason == "allowed: scikit-learn class"
