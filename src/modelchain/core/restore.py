"""The checks the restricted unpicklers make while restoring, beyond "may this be imported".

An allowed name can still be misused: a pickle chooses the arguments of every call and the
state of every object. This module holds what `modelchain.use.guard`'s unpicklers enforce:

* only names imported through the allowlist may be called, and only in their `role`
  (a ``value`` such as a ufunc or ``numpy.ndarray`` is never called, so broadcasting or a
  strided view over a few bytes cannot allocate gigabytes);
* every call's arguments are checked for the handful of reconstruction functions allowed;
* numpy dtypes and arrays: no object fields (a forged dtype state with flags 0 would make
  numpy read raw file bytes as object pointers), fields inside the item size, array data
  exactly the size of the shape;
* memory: memo indices and sizes are bounded by what a file of this size can justify;
* structures that compiled code later indexes without bounds checks (sklearn's Tree and
  KDTree, scipy's sparse matrices) are checked before the object is handed out.

Everything raises `RestoreRefused` with a one-line reason; `guard` turns it into
`UnsafeModel`.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import types
from typing import Any

from modelchain.core import allowlist

__all__ = [
    "CheckedUnpicklerMixin",
    "RestoreRefused",
    "check_dtype",
    "check_dtype_state",
    "read_joblib_array",
]


class RestoreRefused(Exception):
    """Restoring would do something the loader refuses; the message is one line."""


_SMALL = 1 << 16  # sizes and indices below this are always acceptable


def _bound(size: int) -> int:
    """The largest count, index or item size a file of `size` bytes can justify."""
    return max(size, _SMALL)


def _np() -> Any:
    import numpy

    return numpy


# -- numpy ----------------------------------------------------------------------------------


def _has_object(dtype: Any) -> bool:
    """Whether `dtype` holds Python objects anywhere, judged from its layout (kind, fields,
    sub-array), never from its flags, which a pickled dtype state sets to any value."""
    if dtype.kind == "O":
        return True
    if dtype.subdtype is not None and _has_object(dtype.subdtype[0]):
        return True
    if dtype.fields:
        return any(_has_object(f[0]) for f in dtype.fields.values())
    return False


_ENDIANS = ("<", ">", "|", "=")


def check_dtype_state(dtype: Any, state: Any) -> None:
    """Refuse a dtype state numpy itself would not have written for this dtype, *before* it
    is set: numpy's `dtype.__setstate__` trusts its argument, and a malformed one (a tuple
    one item short, a forged size or flags) crashes the process or makes numpy read raw
    bytes as pointers. The state must equal, item for item, the state of a dtype built
    by numpy's own constructors from the same type, byte order, fields or sub-array."""
    np = _np()
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise RestoreRefused("refused: a dtype state numpy does not write")
    if (state[0] == 3) != (len(state) == 8) or state[1] not in _ENDIANS:
        raise RestoreRefused("refused: a dtype state numpy does not write")
    try:
        type_str = dtype.__reduce__()[1][0]
        candidates = _dtype_candidates(np, type_str, state)
    except RestoreRefused:
        raise
    except Exception:
        raise RestoreRefused("refused: a dtype state numpy does not write") from None
    for candidate in candidates:
        try:
            if _same_state(candidate.__reduce__()[2], state):
                return
        except Exception:
            continue
    raise RestoreRefused("refused: a dtype state other than the one numpy writes for it")


def _same_state(a: Any, b: Any) -> bool:
    """Equal as numpy's states are: same types item by item (dtypes compared as dtypes)."""
    np = _np()
    if isinstance(a, np.dtype) or isinstance(b, np.dtype):
        return (
            isinstance(a, np.dtype)
            and isinstance(b, np.dtype)
            and a == b
            and a.__reduce__()[2] == b.__reduce__()[2]
        )
    if isinstance(a, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_state, a, b))
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and list(a) == list(b) and all(_same_state(a[k], b[k]) for k in a)
        )
    return type(a) is type(b) and a == b


def _dtype_candidates(np: Any, type_str: str, state: tuple) -> list[Any]:
    """The dtypes numpy would build for this type and the state's layout (plain, a
    sub-array, fields, a datetime unit), in each byte order the state may name."""
    subarray, names, fields, elsize = state[2], state[3], state[4], state[5]
    if subarray is not None:
        if not (
            isinstance(subarray, tuple)
            and len(subarray) == 2
            and isinstance(subarray[0], np.dtype)
            and isinstance(subarray[1], tuple)
            and all(isinstance(d, int) and not isinstance(d, bool) for d in subarray[1])
        ):
            raise RestoreRefused("refused: a dtype state with a malformed sub-array")
        return [np.dtype((subarray[0], subarray[1]))]
    if names is not None or fields is not None:
        if not (
            isinstance(names, tuple)
            and all(isinstance(n, str) for n in names)
            and isinstance(fields, dict)
            and set(names) <= set(fields)
            and isinstance(elsize, int)
            and not isinstance(elsize, bool)
        ):
            raise RestoreRefused("refused: a dtype state with malformed fields")
        spec: dict[str, Any] = {"names": list(names), "formats": [], "offsets": []}
        titles = []
        for name in names:
            field = fields[name]
            if not (
                isinstance(field, tuple)
                and len(field) in (2, 3)
                and isinstance(field[0], np.dtype)
                and isinstance(field[1], int)
                and not isinstance(field[1], bool)
            ):
                raise RestoreRefused("refused: a dtype state with a malformed field")
            spec["formats"].append(field[0])
            spec["offsets"].append(field[1])
            titles.append(field[2] if len(field) == 3 else None)
        if set(fields) != set(names) | {t for t in titles if t is not None}:
            raise RestoreRefused("refused: a dtype state with malformed fields")
        if any(t is not None for t in titles):
            spec["titles"] = titles
        spec["itemsize"] = elsize
        built = [np.dtype(spec, align=False)]
        with contextlib.suppress(ValueError):  # an aligned struct, if its offsets allow one
            built.append(np.dtype(spec, align=True))
        return built
    base = type_str
    if len(state) == 9:  # a datetime or timedelta: (None, (unit, count, 1, 1))
        meta = state[8]
        if not (
            isinstance(meta, tuple)
            and len(meta) == 2
            and meta[0] is None
            and isinstance(meta[1], tuple)
            and len(meta[1]) == 4
            and isinstance(meta[1][0], bytes)
            and meta[1][0].isalpha()
            and isinstance(meta[1][1], int)
            and not isinstance(meta[1][1], bool)
            and 0 < meta[1][1] < 1 << 31
        ):
            raise RestoreRefused("refused: a dtype state with unexpected metadata")
        unit, count = meta[1][0].decode("ascii"), meta[1][1]
        base = f"{type_str}[{count if count != 1 else ''}{unit}]"
    plain = np.dtype(base)
    return [plain, *(plain.newbyteorder(e) for e in ("<", ">"))]


def check_dtype(dtype: Any, size: int, *, objects: bool = False) -> None:
    """Refuse a dtype that could make numpy read raw bytes as pointers, or read outside an
    item: object fields (unless `objects` and it is numpy's own plain object dtype),
    fields or sub-arrays outside the item size, an item larger than the file justifies."""
    np = _np()
    if not isinstance(dtype, np.dtype):
        raise RestoreRefused("refused: an array's dtype is not a numpy dtype")
    if dtype.itemsize > _bound(size):
        raise RestoreRefused(f"refused: a dtype of {dtype.itemsize} bytes per item")
    if _has_object(dtype):
        plain = np.dtype(object)
        if not (
            objects
            and dtype.kind == "O"
            and dtype.fields is None
            and dtype.subdtype is None
            and dtype.flags == plain.flags
            and dtype.itemsize == plain.itemsize
        ):
            raise RestoreRefused(
                "refused: a dtype with object fields over raw bytes (objects must be pickled)"
            )
        return
    _check_layout(dtype)
    if dtype.flags != _canonical(dtype).flags:
        raise RestoreRefused("refused: a dtype whose flags differ from what numpy computes")


def _canonical(dtype: Any) -> Any:
    """The same layout built by numpy itself, so its flags are numpy's, not the file's."""
    np = _np()
    if dtype.fields:
        names = list(dtype.names)
        return np.dtype(
            {
                "names": names,
                "formats": [_canonical(dtype.fields[n][0]) for n in names],
                "offsets": [dtype.fields[n][1] for n in names],
                "itemsize": dtype.itemsize,
            },
            align=dtype.isalignedstruct,
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_canonical(base), shape))
    return np.dtype(dtype.str)


def _check_layout(dtype: Any) -> None:
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        _check_layout(base)
        if base.itemsize * math.prod(shape) != dtype.itemsize:
            raise RestoreRefused("refused: a sub-array dtype whose size does not add up")
    for field in (dtype.fields or {}).values():
        sub, offset = field[0], field[1]
        _check_layout(sub)
        if not isinstance(offset, int) or offset < 0 or offset + sub.itemsize > dtype.itemsize:
            raise RestoreRefused("refused: a structured dtype with a field outside its item")


def _shape(value: Any, size: int) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise RestoreRefused("refused: an array shape that is not a tuple of sizes")
    if math.prod(value) > _bound(size):
        raise RestoreRefused(f"refused: an array of {math.prod(value)} items")
    return value


def _buffer_len(data: Any) -> int | None:
    if isinstance(data, bytes | bytearray):
        return len(data)
    if isinstance(data, pickle.PickleBuffer):
        return memoryview(data).nbytes
    return None


def check_array_state(state: Any, size: int) -> None:
    """ndarray.__setstate__'s argument: (version, shape, dtype, is_fortran, data)."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise RestoreRefused("refused: an array state of an unknown form")
    shape, dtype, _, data = state[-4:]
    shape = _shape(shape, size)
    check_dtype(dtype, size, objects=True)
    count = math.prod(shape)
    if dtype.kind == "O":
        if not isinstance(data, list) or len(data) != count:
            raise RestoreRefused("refused: an object array not restored from a list of items")
        return
    if _buffer_len(data) != count * dtype.itemsize:
        raise RestoreRefused("refused: array data that does not match its shape and dtype")


def read_joblib_array(wrapper: Any, file: Any, remaining: int, size: int, load_nested: Any) -> Any:
    """The array that follows a joblib NumpyArrayWrapper in the stream, read by us rather
    than by joblib: the dtype is checked, the byte count must fit in what is left of the
    file, and an object array's nested pickle goes through `load_nested` (restricted)."""
    np = _np()
    dtype = getattr(wrapper, "dtype", None)
    check_dtype(dtype, size, objects=True)
    shape = _shape(getattr(wrapper, "shape", None), size)
    order = getattr(wrapper, "order", "C")
    if order not in ("C", "F"):
        raise RestoreRefused("refused: a joblib array with an unknown memory order")
    subclass = getattr(wrapper, "subclass", None)
    if subclass is not np.ndarray:
        raise RestoreRefused("refused: a joblib array of a class other than numpy.ndarray")
    if dtype.kind == "O":
        array = load_nested(file)
        if not isinstance(array, np.ndarray):
            raise RestoreRefused("refused: a joblib object array that is not an array")
        return array
    if getattr(wrapper, "numpy_array_alignment_bytes", None) is not None:
        padding = file.read(1)
        if len(padding) != 1:
            raise RestoreRefused("refused: a joblib array cut short")
        file.read(padding[0])
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > remaining():
        raise RestoreRefused("refused: a joblib array larger than the bytes left in the file")
    data = file.read(nbytes)
    if len(data) != nbytes:
        raise RestoreRefused("refused: a joblib array cut short")
    array = np.frombuffer(data, dtype=dtype).copy()
    array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


# -- structures compiled code indexes without bounds checks ---------------------------------


def _check_tree(tree: Any) -> None:
    """sklearn's Tree: children come after their parent (no cycles, no index past the end),
    leaves have no children, every split feature exists."""
    np = _np()
    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    if left.shape != (n,) or right.shape != (n,) or feature.shape != (n,):
        raise RestoreRefused("refused: a decision tree whose arrays disagree on its size")
    index = np.arange(n)
    leaf = (left == -1) & (right == -1)
    split = ~leaf & (left > index) & (left < n) & (right > index) & (right < n)
    split &= (feature >= 0) & (feature < int(tree.n_features))
    if not bool((leaf | split).all()):
        raise RestoreRefused("refused: a decision tree with a child or feature out of range")


def _check_kd_tree(tree: Any) -> None:
    """sklearn's KDTree: every index inside the data, every node's range inside the index
    array, and every node whose children would be past the end is a leaf."""
    np = _np()
    state = tree.__getstate__()
    data, idx, nodes, bounds = (np.asarray(a) for a in state[:4])
    n_nodes = int(state[6])
    if data.ndim != 2 or idx.ndim != 1 or nodes.shape != (n_nodes,):
        raise RestoreRefused("refused: a KD-tree whose arrays disagree on its size")
    if bounds.shape != (2, n_nodes, data.shape[1]):
        raise RestoreRefused("refused: a KD-tree whose bounds disagree on its size")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= data.shape[0]):
        raise RestoreRefused("refused: a KD-tree index outside its data")
    start, end, is_leaf = nodes["idx_start"], nodes["idx_end"], nodes["is_leaf"]
    if n_nodes and (int(start.min()) < 0 or bool((end < start).any()) or int(end.max()) > idx.size):
        raise RestoreRefused("refused: a KD-tree node range outside its index array")
    inner = 2 * np.arange(n_nodes) + 2 >= n_nodes
    if bool((inner & (is_leaf == 0)).any()):
        raise RestoreRefused("refused: a KD-tree node whose children lie past the end")


def _check_sparse(matrix: Any) -> None:
    try:
        matrix.check_format(full_check=True)
    except Exception as e:  # scipy raises ValueError / TypeError variants
        raise RestoreRefused(f"refused: a sparse matrix with a bad structure ({e})") from None


def _features(estimator: Any) -> int | None:
    n = estimator.__dict__.get("n_features_in_")
    return n if _int(n) else None


def _check_tree_estimator(estimator: Any) -> None:
    """A fitted decision tree's Tree splits on the features its estimator checks X against:
    predict indexes X's columns by the tree's feature numbers without bounds checks."""
    tree = estimator.__dict__.get("tree_")
    if tree is not None and int(tree.n_features) != _features(estimator):
        raise RestoreRefused("refused: a decision tree fitted on another number of features")


def _check_ensemble(estimator: Any) -> None:
    """An ensemble checks X once and hands it to each tree unchecked: every tree must expect
    the ensemble's number of features."""
    np = _np()
    members = estimator.__dict__.get("estimators_")
    if members is None:
        return
    n = _features(estimator)
    per_iteration = estimator.__dict__.get("n_trees_per_iteration_")
    if per_iteration is not None and (
        not isinstance(members, np.ndarray)
        or members.ndim != 2
        or members.shape[1] != per_iteration
    ):  # gradient boosting writes one output column per tree of an iteration, unchecked
        raise RestoreRefused("refused: a boosted ensemble with another number of trees per step")
    for member in np.ravel(np.asarray(members, dtype=object)):
        tree = getattr(member, "__dict__", {}).get("tree_")
        if _features(member) != n or tree is None or int(tree.n_features) != n:
            raise RestoreRefused("refused: an ensemble member fitted on another number of features")


def _check_svc(svc: Any) -> None:
    """libsvm indexes the support vectors by the per-class counts, unchecked."""
    np = _np()
    d = svc.__dict__
    if "support_vectors_" not in d:
        return
    sv, support = np.asarray(d["support_vectors_"]), np.asarray(d.get("support_"))
    counts = np.asarray(d.get("_n_support"))
    coef, intercept = np.asarray(d.get("_dual_coef_")), np.asarray(d.get("_intercept_"))
    shape_fit = d.get("shape_fit_")
    k = counts.shape[0] if counts.ndim == 1 else -1
    n_sv = sv.shape[0] if sv.ndim == 2 else -1
    if (
        k < 1
        or n_sv < 0
        or bool((counts < 0).any())
        or int(counts.sum()) != n_sv
        or support.shape != (n_sv,)
        or coef.shape != (max(k - 1, 1), n_sv)
        or intercept.shape != (k * (k - 1) // 2,)
        or not isinstance(shape_fit, tuple)
        or len(shape_fit) != 2
        or (n_sv and (int(support.min()) < 0 or int(support.max()) >= shape_fit[0]))
        or (svc.__dict__.get("kernel") != "precomputed" and sv.shape[1] != _features(svc))
    ):
        raise RestoreRefused("refused: a support vector machine whose arrays disagree")


def _check_kmeans(kmeans: Any) -> None:
    np = _np()
    centers = kmeans.__dict__.get("cluster_centers_")
    if centers is not None and (np.ndim(centers) != 2 or np.shape(centers)[1] != _features(kmeans)):
        raise RestoreRefused("refused: k-means centres of another number of features")


_AFTER_BUILD = {
    "sklearn.tree._classes.DecisionTreeClassifier": _check_tree_estimator,
    "sklearn.tree._classes.DecisionTreeRegressor": _check_tree_estimator,
    "sklearn.tree._classes.ExtraTreeClassifier": _check_tree_estimator,
    "sklearn.ensemble._forest.RandomForestClassifier": _check_ensemble,
    "sklearn.ensemble._forest.ExtraTreesClassifier": _check_ensemble,
    "sklearn.ensemble._gb.GradientBoostingClassifier": _check_ensemble,
    "sklearn.svm._classes.SVC": _check_svc,
    "sklearn.cluster._kmeans.KMeans": _check_kmeans,
    "sklearn.tree._tree.Tree": _check_tree,
    "sklearn.neighbors._kd_tree.KDTree": _check_kd_tree,
    "scipy.sparse._csr.csr_matrix": _check_sparse,
    "scipy.sparse._csr.csr_array": _check_sparse,
    "scipy.sparse._csc.csc_matrix": _check_sparse,
    "scipy.sparse._csc.csc_array": _check_sparse,
}


# -- the unpickler ---------------------------------------------------------------------------

_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso8859-1", "iso-8859-1", "l1"})
_BIT_GENERATORS = (
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CheckedUnpicklerMixin:
    """For a subclass of the pure-Python `pickle._Unpickler`: remembers which objects came
    through `find_class` (and in which role), and checks every call, state and memo index.

    The subclass calls `_admit(module, name, obj)` from its `find_class` and sets
    `_size` (the pickle's length in bytes) and `_trusted`."""

    _size: int
    _trusted: tuple[str, ...]

    def _admitted(self) -> dict[int, tuple[str, str, Any]]:
        table = self.__dict__.get("_imports")
        if table is None:
            table = self.__dict__["_imports"] = {}
        return table

    def _admit(self, module: str, name: str, obj: Any) -> None:
        """Check what `find_class` imported really is the allowed object, and record it."""
        problem = allowlist.identity_problem(module, name, obj, self._trusted)
        if problem is not None:
            raise RestoreRefused(problem)
        found = allowlist.entry(module, name)
        if found is not None:
            self._admitted()[id(obj)] = (found.key, found.role, obj)
        else:  # trusted by the caller: may be called and given state, arguments unchecked
            key = ".".join(allowlist.normalize(module, name))
            self._admitted()[id(obj)] = (key, "trusted", obj)

    def _role(self, obj: Any) -> tuple[str, str] | None:
        found = self._admitted().get(id(obj))
        if found is None or found[2] is not obj:
            return None
        return found[0], found[1]

    # -- calls

    def _check_call(self, func: Any, args: Any, kwargs: Any = None) -> None:
        role = self._role(func)
        if role is None:
            raise RestoreRefused("refused: the pickle calls an object it did not import")
        key, kind = role
        if kind == "value":
            raise RestoreRefused(f"refused: {key} may be referenced, not called")
        if kind == "trusted":
            return
        if not isinstance(args, tuple) or (kwargs and not isinstance(kwargs, dict)):
            raise RestoreRefused(f"refused: {key} called with malformed arguments")
        check = _CALL_CHECKS.get(key)
        if check is not None:
            check(self, args, kwargs or {})
        elif kind == "call":
            raise RestoreRefused(f"refused: {key} has no argument check")
        else:
            for value in (*args, *(kwargs or {}).values()):
                if _int(value) and abs(value) > _bound(self._size):
                    raise RestoreRefused(f"refused: {key} called with the size {value}")

    def _is(self, obj: Any, *keys: str) -> bool:
        role = self._role(obj)
        return role is not None and role[0] in keys

    def _class_arg(self, obj: Any, what: str) -> None:
        role = self._role(obj)
        if role is None or role[1] not in ("class", "trusted") or not isinstance(obj, type):
            raise RestoreRefused(f"refused: {what} of a class that is not allowed")

    def _check_dtype_arg(self, dtype: Any, *, objects: bool) -> None:
        try:
            check_dtype(dtype, self._size, objects=objects)
        except RestoreRefused:
            raise
        except Exception:  # pragma: no cover - an exotic dtype numpy cannot describe
            raise RestoreRefused("refused: an unusable dtype") from None

    def load_reduce(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        args = stack[-1]
        self._check_call(stack[-2], args)
        super().load_reduce()  # type: ignore[misc]

    def load_newobj(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        self._check_call(stack[-2], stack[-1])
        super().load_newobj()  # type: ignore[misc]

    def load_newobj_ex(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        self._check_call(stack[-3], stack[-2], stack[-1])
        super().load_newobj_ex()  # type: ignore[misc]

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        self._check_call(klass, tuple(args))
        super()._instantiate(klass, args)  # type: ignore[misc]

    # -- state

    def load_build(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        state, inst = stack[-1], stack[-2]
        if isinstance(inst, type | types.FunctionType | types.BuiltinFunctionType) or (
            self._role(inst) is not None
        ):
            raise RestoreRefused("refused: the pickle sets the state of an imported object")
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, dict) and any(
                isinstance(k, str) and k.startswith("__") and k.endswith("__") for k in part
            ):  # __class__, __dict__, ...: state is data, not a change of type
                raise RestoreRefused("refused: an object state that sets a special attribute")
        np = _np()
        if isinstance(inst, np.dtype):  # numpy 2: a subclass per kind (ObjectDType, ...)
            self._build_dtype(inst, state)
            return
        if type(inst) is np.ndarray:
            check_array_state(state, self._size)
        self._build(inst)
        after = _AFTER_BUILD.get(f"{type(inst).__module__}.{type(inst).__qualname__}")
        if after is not None:
            after(inst)

    def _build(self, inst: Any) -> None:
        """The BUILD opcode proper (joblib's unpickler replaces the array placeholder here)."""
        super().load_build()  # type: ignore[misc]

    def _build_dtype(self, dtype: Any, state: Any) -> None:
        check_dtype_state(dtype, state)  # before numpy sees it: a bad state crashes numpy
        super().load_build()  # type: ignore[misc]
        self._check_dtype_arg(dtype, objects=True)

    # -- memory

    def _memo_index(self, index: int) -> None:
        if index < 0 or index > _bound(self._size):
            raise RestoreRefused(f"refused: memo index {index} in a file of {self._size} bytes")

    def load_put(self) -> None:
        line = self.readline()[:-1]  # type: ignore[attr-defined]
        try:
            index = int(line)
        except ValueError:
            raise pickle.UnpicklingError("bad PUT index") from None
        self._memo_index(index)
        self.memo[index] = self.stack[-1]  # type: ignore[attr-defined]

    def load_binput(self) -> None:
        index = self.read(1)[0]  # type: ignore[attr-defined]
        self.memo[index] = self.stack[-1]  # type: ignore[attr-defined]

    def load_long_binput(self) -> None:
        index = int.from_bytes(self.read(4), "little")  # type: ignore[attr-defined]
        self._memo_index(index)
        self.memo[index] = self.stack[-1]  # type: ignore[attr-defined]

    def load_ext(self) -> None:
        raise RestoreRefused("refused: an extension code (the registry decides what it imports)")

    def load_persid(self) -> None:
        raise RestoreRefused("refused: a persistent id (the loader decides what it means)")

    @classmethod
    def checked_dispatch(cls, base: dict[int, Any]) -> dict[int, Any]:
        """`base` (an unpickler's opcode table) with the checked handlers in place."""
        table = dict(base)
        for opcode, method in (
            (pickle.REDUCE, cls.load_reduce),
            (pickle.NEWOBJ, cls.load_newobj),
            (pickle.NEWOBJ_EX, cls.load_newobj_ex),
            (pickle.BUILD, cls.load_build),
            (pickle.PUT, cls.load_put),
            (pickle.BINPUT, cls.load_binput),
            (pickle.LONG_BINPUT, cls.load_long_binput),
            (pickle.EXT1, cls.load_ext),
            (pickle.EXT2, cls.load_ext),
            (pickle.EXT4, cls.load_ext),
            (pickle.PERSID, cls.load_persid),
            (pickle.BINPERSID, cls.load_persid),
        ):
            table[opcode[0]] = method
        return table


# -- per-function argument checks ------------------------------------------------------------


def _no_size(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if any(_int(a) for a in (*args, *kwargs.values())):
        raise RestoreRefused("refused: bytes() of an integer size (a zero-filled allocation)")


def _reconstructor(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) != 3:
        raise RestoreRefused("refused: copyreg._reconstructor with unexpected arguments")
    cls, base, state = args
    u._class_arg(cls, "copyreg._reconstructor")
    u._class_arg(base, "copyreg._reconstructor")
    if base is not object:
        u._check_call(base, (state,))


def _encode(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    encoding = args[1] if len(args) > 1 else kwargs.get("encoding")
    if kwargs or len(args) not in (2, 3) or not isinstance(args[0], str):
        raise RestoreRefused("refused: _codecs.encode with unexpected arguments")
    if not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise RestoreRefused(f"refused: _codecs.encode with the codec {encoding!r}")


def _dtype(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or not args or not isinstance(args[0], str) or len(args[0]) > 64:
        raise RestoreRefused("refused: numpy.dtype from something other than a type string")
    if len(args) != 3 or not isinstance(args[1], bool) or args[2] is not True:
        # copy=True: state must never be set on numpy's shared built-in dtype objects
        raise RestoreRefused("refused: numpy.dtype with unexpected arguments")


def _reconstruct(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    np = _np()
    if kwargs or len(args) != 3 or args[0] is not np.ndarray or args[1] != (0,):
        raise RestoreRefused("refused: numpy _reconstruct other than an empty ndarray")
    if args[2] not in (b"b", "b"):
        raise RestoreRefused("refused: numpy _reconstruct with an unexpected type code")


def _scalar(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) not in (1, 2):
        raise RestoreRefused("refused: numpy scalar with unexpected arguments")
    u._check_dtype_arg(args[0], objects=True)
    if args[0].kind != "O" and len(args) == 2 and _buffer_len(args[1]) != args[0].itemsize:
        raise RestoreRefused("refused: a numpy scalar whose bytes do not match its dtype")


def _frombuffer(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) != 4:
        raise RestoreRefused("refused: numpy _frombuffer with unexpected arguments")
    buf, dtype, shape, order = args
    u._check_dtype_arg(dtype, objects=False)
    count = math.prod(_shape(shape, u._size))
    if _buffer_len(buf) != count * dtype.itemsize or order not in ("C", "F"):
        raise RestoreRefused("refused: numpy _frombuffer whose bytes do not match the shape")


def _bit_generator(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) > 1:
        raise RestoreRefused("refused: a bit generator with unexpected arguments")
    if args and not isinstance(args[0], str) and not u._is(args[0], *_BIT_GENERATORS):
        raise RestoreRefused("refused: a bit generator that is not one of numpy's")


def _generator(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) > 2:
        raise RestoreRefused("refused: a random generator with unexpected arguments")
    first = args[:1]
    if first and f"{type(first[0]).__module__}.{type(first[0]).__qualname__}" in _BIT_GENERATORS:
        first = ()  # an already restored bit generator instance
    _bit_generator(u, first, {})
    if len(args) == 2 and not u._is(args[1], "numpy.random._pickle.__bit_generator_ctor"):
        raise RestoreRefused("refused: a random generator built by an unexpected factory")


def _new_obj(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) != 1:
        raise RestoreRefused("refused: newObj with unexpected arguments")
    u._class_arg(args[0], "newObj")


def _pyx_unpickle(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    if kwargs or len(args) != 3 or not _int(args[1]):
        raise RestoreRefused("refused: a Cython restore with unexpected arguments")
    u._class_arg(args[0], "a Cython restore")


def _plain_args(u: CheckedUnpicklerMixin, args: tuple, kwargs: dict) -> None:
    plain = str | bytes | bytearray | int | float | complex | bool
    if kwargs or len(args) > 3 or not all(isinstance(a, plain) for a in args):
        # str() of a structure of shared references would print it exponentially often
        raise RestoreRefused("refused: a number or string built from something else")


_CALL_CHECKS = {
    "builtins.str": _plain_args,
    "builtins.int": _plain_args,
    "builtins.float": _plain_args,
    "builtins.complex": _plain_args,
    "builtins.bool": _plain_args,
    "builtins.bytes": _no_size,
    "builtins.bytearray": _no_size,
    "copyreg._reconstructor": _reconstructor,
    "_codecs.encode": _encode,
    "numpy.dtype": _dtype,
    "numpy._core.multiarray._reconstruct": _reconstruct,
    "numpy._core.multiarray.scalar": _scalar,
    "numpy._core.numeric._frombuffer": _frombuffer,
    "numpy.random._pickle.__bit_generator_ctor": _bit_generator,
    "numpy.random._pickle.__generator_ctor": _generator,
    "numpy.random._pickle.__randomstate_ctor": _generator,
    "sklearn.neighbors._kd_tree.newObj": _new_obj,
    "sklearn.metrics._dist_metrics.newObj": _new_obj,
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": _pyx_unpickle,
    "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss": _pyx_unpickle,
}
