"""A static safety scanner for pickle, joblib and zip-based model files. It never unpickles.

    scan_path(path) -> ScanReport | DirectoryScan
    scan_bytes(data, name) -> ScanReport

The scanner reads every byte of a file as the loader would and lists every global the file
imports, each with the verdict of `modelchain.core.allowlist.check`. A report is `ok` only when the
whole file was understood to its last byte, no import was refused and nothing else was found;
anything it cannot follow is a *finding* ("could not parse past byte N: ..."), never a pass.

What it understands:

* pickle protocols 0-5, opcode by opcode, with a symbolic stack and memo, so that
  STACK_GLOBAL operands are known even when they come from the memo; GLOBAL, INST,
  STACK_GLOBAL are imports; EXT1/2/4 (the copyreg extension registry) and PERSID/BINPERSID
  (outside a PyTorch archive) are findings, because the loading process, not the file,
  decides what they import;
* several pickles one after another in one file (all are scanned; ``pickle.load`` in a loop or
  a loader that reads on would run each);
* joblib's layout: after the BUILD of each ``NumpyArrayWrapper`` joblib reads the array's raw
  bytes (one padding-length byte and that much padding when the wrapper records
  ``numpy_array_alignment_bytes``, then ``prod(shape) * dtype.itemsize`` bytes), or a nested
  pickle for object arrays. The scanner rebuilds the wrapper's dtype from the pickled
  ``numpy.dtype`` arguments (plain data: type strings, tuples, ints), skips exactly those
  bytes and parses on;
* joblib compression (zlib, gzip, bz2, lzma, xz; lz4 when the `lz4` package is installed),
  decompressed as a stream into a temporary file under a size cap and a ratio cap
  ("decompression bomb" findings), concatenated streams included;
* zip containers member by member: PyTorch (``*/data.pkl``, where persistent ids name tensor
  storages), skops (``schema.json``: every ``__module__``/``__class__`` and function it names
  is checked against the allowlist), any other zip (every member is scanned as a file);
* safetensors (header validated; the file holds no code).

Offsets in a compressed file are offsets in the decompressed stream.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import itertools
import json
import lzma
import mmap
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from modelchain.core import allowlist, formats
from modelchain.core.errors import InputError
from modelchain.fs.safeio import NotRegularFile, kind_name, open_regular, read_error, show_path

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED",
    "DEFAULT_MAX_RATIO",
    "DirectoryScan",
    "ImportRecord",
    "ScanReport",
    "scan_bytes",
    "scan_path",
]

StrPath = str | os.PathLike[str]

#: Largest decompressed size (bytes) of a compressed file or zip member.
DEFAULT_MAX_DECOMPRESSED = 4 << 30
#: Largest expansion ratio, applied once the output passes RATIO_FLOOR bytes.
DEFAULT_MAX_RATIO = 200
RATIO_FLOOR = 16 << 20
_CHUNK = 1 << 20
_MAX_DEPTH = 8  # nested pickles (object arrays) and nested containers
_MAX_LINE = 1 << 16  # longest text-opcode argument line
_KEEP_BYTES = 1 << 16  # longer byte strings are tracked by length only
_KEEP_TOTAL = 16 << 20  # strings kept per file; beyond this they are tracked by length only
_MIN_OPS = 1 << 20  # opcode budget per file: at least this, else OPS_PER_BYTE x its size
OPS_PER_BYTE = 8
_MAX_MATERIALIZE = 100_000  # nodes of one array's dtype/shape metadata
#: joblib's legacy wrappers: NDArrayWrapper makes joblib.load call
#: numpy.load(<a path named in the pickle>, allow_pickle=True). Refused by the scanner.
_LEGACY_WRAPPER_NAMES = frozenset({"NDArrayWrapper", "ZNDArrayWrapper"})
_JOBLIB_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)

# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """One global the file imports (GLOBAL, STACK_GLOBAL, INST, or a skops type)."""

    module: str
    name: str
    allowed: bool
    reason: str
    offset: int
    #: only `pickle.load` would make this import (reading a joblib file's array bytes as
    #: opcodes); `joblib.load` and modelchain's joblib loader never do
    pickle_load_only: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "name": self.name,
            "allowed": self.allowed,
            "reason": self.reason,
            "offset": self.offset,
            "pickle_load_only": self.pickle_load_only,
        }


@dataclass(slots=True)
class ScanReport:
    """The verdict on one file. `ok` is True only if it parsed to its end, cleanly."""

    path: str
    format: str = "unknown"
    imports: list[ImportRecord] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    parsed_bytes: int = 0
    total_bytes: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.findings
            and all(i.allowed for i in self.imports)
            and self.parsed_bytes == self.total_bytes
        )

    @property
    def refused(self) -> list[ImportRecord]:
        return [i for i in self.imports if not i.allowed]

    @property
    def verdict(self) -> str:
        """One of "data" (a data format: no code), "ok" (allowed code only), "UNSAFE"."""
        if not self.ok:
            return "UNSAFE"
        return "data" if self.format in formats.DATA_FORMATS else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "verdict": self.verdict,
            "format": self.format,
            "imports": [i.as_dict() for i in self.imports],
            "findings": list(self.findings),
            "parsed_bytes": self.parsed_bytes,
            "total_bytes": self.total_bytes,
        }


@dataclass(slots=True)
class DirectoryScan:
    """One report per regular file of a directory, plus findings about the directory."""

    path: str
    reports: list[ScanReport] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and all(r.ok for r in self.reports)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "format": "directory",
            "findings": list(self.findings),
            "files": [r.as_dict() for r in self.reports],
        }


# --------------------------------------------------------------------------- reading


class _Stop(Exception):
    """Parsing cannot continue; the message becomes a finding."""


class _Buffer:
    """Random access over bytes or an mmap, with a cursor and exact reads.

    Frames are modelled as Python's pickle._Unpickler (the one joblib uses) reads them: a
    FRAME's bytes are read from the file in one go, opcodes are then read from the frame and
    may not run past its end, and reads of the *file* (joblib's array bytes, an object
    array's nested pickle) happen at `file_pos`, after the frame. Once the frame is used up,
    opcodes come from the file again, at `file_pos`.
    """

    __slots__ = ("data", "end", "file_pos", "frame_end", "pos")

    def __init__(self, data: Any, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.frame_end: int | None = None
        self.file_pos = pos

    def left(self) -> int:
        return self.end - self.pos

    def enter(self, n: int) -> None:
        """Before a framed read of n bytes: leave a used-up frame, refuse a straddling read."""
        fe = self.frame_end
        if fe is None:
            return
        if self.pos == fe:
            if n:
                self.frame_end = None
                self.pos = self.file_pos
            return
        if self.pos + n > fe:
            raise _Stop(f"a read of {n} bytes runs past the end of the frame at byte {fe}")

    def start_frame(self, n: int) -> None:
        if self.frame_end is not None:
            if self.pos != self.frame_end:
                raise _Stop("a FRAME begins before the end of the current frame")
            base = self.file_pos
        else:
            base = self.pos
        if n > self.end - base:
            raise _Stop(f"FRAME declares {n} bytes but only {self.end - base} remain")
        self.pos, self.frame_end, self.file_pos = base, base + n, base + n

    def end_pickle(self) -> None:
        """At STOP: the next pickle (if any) starts where the file position is."""
        if self.frame_end is not None:
            if self.pos != self.frame_end:
                raise _Stop("STOP before the end of its frame")
            self.pos, self.frame_end = self.file_pos, None

    def read(self, n: int, what: str) -> bytes:
        if n < 0:
            raise _Stop(f"{what}: negative length {n}")
        self.enter(n)
        if n > self.end - self.pos:
            raise _Stop(f"{what} needs {n} bytes but only {self.end - self.pos} remain")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def skip(self, n: int, what: str) -> None:
        if n >= 0:
            self.enter(n)
        if n < 0 or n > self.end - self.pos:
            raise _Stop(f"{what} needs {n} bytes but only {self.end - self.pos} remain")
        self.pos += n

    def file_read(self, n: int, what: str) -> bytes:
        """Read from the file itself (after the current frame), as joblib's read_array does."""
        if self.frame_end is None:
            return self.read(n, what)
        if n < 0 or n > self.end - self.file_pos:
            raise _Stop(f"{what} needs {n} bytes but only {self.end - self.file_pos} remain")
        out = self.data[self.file_pos : self.file_pos + n]
        self.file_pos += n
        return bytes(out)

    def file_skip(self, n: int, what: str) -> None:
        if self.frame_end is None:
            self.skip(n, what)
            return
        if n < 0 or n > self.end - self.file_pos:
            raise _Stop(f"{what} needs {n} bytes but only {self.end - self.file_pos} remain")
        self.file_pos += n

    def line(self, what: str) -> bytes:
        self.enter(1)
        stop = min(self.end if self.frame_end is None else self.frame_end, self.pos + _MAX_LINE)
        i = self.data.find(b"\n", self.pos, stop)
        if i < 0:
            raise _Stop(f"{what}: no end of line within {stop - self.pos} bytes")
        out = bytes(self.data[self.pos : i])
        self.pos = i + 1
        return out


# --------------------------------------------------------------------------- symbolic values


@dataclass(eq=False)
class _Global:
    module: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class _Obj:
    """An object the loader would create: `func(*args)` (REDUCE, NEWOBJ, OBJ, INST)."""

    func: Any
    args: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    state: Any = None
    built: bool = False
    lossy: bool = False  # items were added that the scanner did not follow


class _Dict(dict):  # type: ignore[type-arg]
    """A dict the loader would build; `lossy` once a key could not be evaluated statically
    (the loader would have stored it, perhaps as a key the scanner relies on)."""

    lossy = False


class _Opaque:
    """A value the scanner does not follow (big bytes, sets, arrays already read...)."""


_OPAQUE = _Opaque()


def _hashable(v: Any) -> bool:
    if isinstance(v, tuple):
        return all(_hashable(x) for x in v)
    return isinstance(v, (str, bytes, int, float, bool, type(None)))


def _cls_key(obj: _Obj) -> str | None:
    """'module.name' of the class an _Obj instantiates (seeing through copyreg._reconstructor)."""
    func = obj.func
    if isinstance(func, _Global):
        key = allowlist.normalize(func.module, func.name)
        key_s = f"{key[0]}.{key[1]}"
        if key_s == "copyreg._reconstructor" and isinstance(obj.args, tuple) and obj.args:
            inner = obj.args[0]
            return inner.key if isinstance(inner, _Global) else None
        return key_s
    return None


# --------------------------------------------------------------------------- dtype rebuild


def _materialize(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """Turn plain symbolic data (and pickled numpy dtypes) into real values, else _Stop.

    `budget` bounds the nodes visited: memo references make a small pickle a DAG whose
    tree is exponentially large."""
    if budget is None:
        budget = [_MAX_MATERIALIZE]
    budget[0] -= 1
    if budget[0] < 0:
        raise _Stop("array metadata is too large to evaluate")
    if depth > 20:
        raise _Stop("dtype nested too deeply")
    if getattr(value, "lossy", False):
        raise _Stop("array metadata holds a value the scanner cannot evaluate")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, tuple):
        return tuple(_materialize(v, depth + 1, budget) for v in value)
    if isinstance(value, list):
        return [_materialize(v, depth + 1, budget) for v in value]
    if isinstance(value, dict):
        return {
            _materialize(k, depth + 1, budget): _materialize(v, depth + 1, budget)
            for k, v in value.items()
        }
    if isinstance(value, _Obj) and _cls_key(value) == "numpy.dtype":
        return _rebuild_dtype(value, depth, budget)
    raise _Stop("array dtype is not plain data")


def _rebuild_dtype(obj: _Obj, depth: int, budget: list[int]) -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - numpy is installed with the sklearn extra
        raise _Stop("numpy is needed to size joblib arrays") from e
    args = obj.args
    if (
        not isinstance(args, tuple)
        or not args
        or not isinstance(args[0], str)
        or not all(isinstance(a, (bool, int)) for a in args[1:])
        or len(args) > 3
    ):
        raise _Stop("array dtype has unexpected arguments")
    from modelchain.core.restore import RestoreRefused, check_dtype_state

    try:
        dtype = numpy.dtype(*args)
        if obj.state is not None:
            state = _materialize(obj.state, depth + 1, budget)
            check_dtype_state(dtype, state)  # numpy's __setstate__ crashes on a forged one
            dtype.__setstate__(state)
    except _Stop:
        raise
    except RestoreRefused as e:
        raise _Stop(f"array dtype cannot be rebuilt: {e}") from None
    except Exception as e:
        raise _Stop(f"array dtype cannot be rebuilt: {type(e).__name__}") from None
    return dtype


# --------------------------------------------------------------------------- pickle parser


#: calls whose result is never exactly a str (STACK_GLOBAL needs exactly str operands)
_NEVER_STR = _JOBLIB_WRAPPERS | {
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
}


def _maybe_str(value: Any) -> bool:
    """Could `value` be exactly a str when the loader runs? (only literals are known)"""
    if isinstance(value, (str, _Opaque)):
        return True
    if isinstance(value, _Obj):
        key = _cls_key(value)
        return key is None or (key not in _NEVER_STR and not key.startswith("sklearn."))
    return False


def _importable_name(text: str) -> bool:
    """False for names no module or attribute can have (empty, blanks, control characters)."""
    return bool(text) and text.isprintable() and not any(c.isspace() for c in text)


def _mark_lossy(target: Any) -> None:
    """Items went into a container the scanner does not model: it can no longer be relied on."""
    if isinstance(target, (_Obj, _Dict)):
        target.lossy = True


def _legacy_wrapper(module: str, name: str) -> bool:
    mod, nm = allowlist.normalize(module, name)
    if mod.endswith("numpy_pickle_compat") or ".numpy_pickle_compat." in f"{mod}.":
        return "joblib" in mod
    return nm.split(".")[-1] in _LEGACY_WRAPPER_NAMES and "joblib" in mod


def _arg_kinds() -> dict[int, tuple[str, str | None]]:
    import pickletools

    return {
        op.code.encode("latin-1")[0]: (op.name, op.arg.name if op.arg is not None else None)
        for op in pickletools.opcodes
    }


_OPS = _arg_kinds()
_INT = {"uint1": (1, "<B"), "uint2": (2, "<H"), "int4": (4, "<i"), "uint4": (4, "<I")}
_INT.update({"uint8": (8, "<Q")})


class _PickleParser:
    """Parses pickles from a _Buffer into a ScanReport, without running anything."""

    def __init__(
        self,
        report: ScanReport,
        trusted: tuple[str, ...],
        context: str = "",
        *,
        plain: bool = False,
        input_size: int = 0,
        probe: bool = False,
    ) -> None:
        self.report = report
        self.trusted = trusted
        self.context = context  # "torch": persistent ids name storages in the archive
        # plain: model pickle.load (the C unpickler): frames are transparent and a joblib
        # array wrapper is just an object, so the bytes after it are read as opcodes
        self.plain = plain
        # probe: is this "data" file read as a pickle? Any non-empty module name counts
        self.probe = probe
        self.saw_wrapper = False
        # memory is bounded by the file's size: opcodes and kept strings are budgeted
        self.ops_left = max(_MIN_OPS, OPS_PER_BYTE * input_size)
        self.keep_left = _KEEP_TOTAL

    # -- arguments

    def _arg(self, buf: _Buffer, kind: str | None, name: str) -> Any:
        if kind is None:
            return None
        if kind in _INT:
            size, fmt = _INT[kind]
            return struct.unpack(fmt, buf.read(size, name))[0]
        if kind == "float8":
            return struct.unpack(">d", buf.read(8, name))[0]
        if kind in ("long1", "long4"):
            n = buf.read(1, name)[0] if kind == "long1" else self._len(buf, "<i", name)
            return int.from_bytes(buf.read(n, name), "little", signed=True) if n < 4096 else 0
        if kind in ("string1", "bytes1", "unicodestring1"):
            return self._blob(buf, buf.read(1, name)[0], kind, name)
        if kind in ("string4", "bytes4", "unicodestring4"):
            fmt = "<i" if kind == "string4" else "<I"
            return self._blob(buf, self._len(buf, fmt, name), kind, name)
        if kind in ("bytes8", "bytearray8", "unicodestring8"):
            return self._blob(buf, self._len(buf, "<Q", name), kind, name)
        if kind in ("decimalnl_short", "decimalnl_long"):
            text = buf.line(name).decode("ascii", "replace").strip()
            text = text[:-1] if text.endswith("L") else text
            try:
                return int(text, 10)
            except ValueError:
                raise _Stop(f"{name}: {text[:40]!r} is not an integer") from None
        if kind == "floatnl":
            try:
                return float(buf.line(name))
            except ValueError:
                raise _Stop(f"{name}: not a float") from None
        if kind == "stringnl":
            raw = buf.line(name).rstrip(b"\r")
            if len(raw) < 2 or raw[:1] not in b"'\"" or raw[-1:] != raw[:1]:
                raise _Stop(f"{name}: string argument is not quoted")
            try:
                return codecs.escape_decode(raw[1:-1])[0].decode("latin-1")
            except ValueError:
                raise _Stop(f"{name}: bad string escape") from None
        if kind == "stringnl_noescape":
            return buf.line(name).decode("utf-8", "surrogateescape")
        if kind == "stringnl_noescape_pair":
            module = buf.line(name).decode("utf-8", "surrogateescape")
            return module, buf.line(name).decode("utf-8", "surrogateescape")
        if kind == "unicodestringnl":
            try:
                return buf.line(name).decode("raw-unicode-escape")
            except UnicodeDecodeError:
                raise _Stop(f"{name}: bad unicode escape") from None
        raise _Stop(f"{name}: unknown argument kind {kind}")  # pragma: no cover

    @staticmethod
    def _len(buf: _Buffer, fmt: str, name: str) -> int:
        n = struct.unpack(fmt, buf.read(struct.calcsize(fmt), name))[0]
        if n < 0:
            raise _Stop(f"{name}: negative length {n}")
        return n

    def _blob(self, buf: _Buffer, n: int, kind: str, name: str) -> Any:
        if n > buf.left():
            raise _Stop(f"{name} declares {n} bytes but only {buf.left()} remain")
        if n > _KEEP_BYTES or n > self.keep_left:
            buf.skip(n, name)
            return _OPAQUE
        self.keep_left -= n
        raw = buf.read(n, name)
        if kind.startswith("unicode"):
            try:
                return raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise _Stop(f"{name}: not valid UTF-8") from None
        if kind.startswith("string"):
            return raw.decode("latin-1")  # what encoding="ASCII"/"latin1" loaders would see
        return raw

    # -- imports

    def _import(self, module: Any, name: Any, offset: int) -> _Global:
        if not isinstance(module, str) or not isinstance(name, str):
            if self.plain and not all(_maybe_str(x) for x in (module, name)):
                raise _Stop("STACK_GLOBAL requires str")  # pickle.load raises here
            self.report.imports.append(
                ImportRecord("?", "?", False, "refused: import name not known statically", offset)
            )
            return _Global("?", "?")
        if self.plain and not (module if self.probe else _importable_name(module)):
            # random array bytes: no module has that name, the import fails (the module is
            # imported before the name is looked up, so the name may be anything)
            raise _Stop("not a module name")
        if _legacy_wrapper(module, name):
            self.report.imports.append(
                ImportRecord(
                    module,
                    name,
                    False,
                    "refused: joblib's legacy array wrapper (joblib.load would call "
                    "numpy.load with allow_pickle=True on a path the file names)",
                    offset,
                )
            )
            return _Global(module, name)
        verdict = allowlist.check(module, name, self.trusted)
        self.report.imports.append(
            ImportRecord(module, name, verdict.allowed, verdict.reason, offset)
        )
        return _Global(module, name)

    # -- the machine

    def parse(self, buf: _Buffer, depth: int = 0) -> None:
        """Parse one pickle from buf.pos to its STOP (raises _Stop when it cannot)."""
        if depth > _MAX_DEPTH:
            raise _Stop("pickles nested too deeply")
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}

        def pop() -> Any:
            if not stack:
                raise _Stop(f"{name} on an empty stack")
            return stack.pop()

        def pop_mark() -> list[Any]:
            nonlocal stack
            if not metastack:
                raise _Stop(f"{name} without a MARK")
            items = stack
            stack = metastack.pop()
            return items

        def top() -> Any:
            if not stack:
                raise _Stop(f"{name} on an empty stack")
            return stack[-1]

        while True:
            buf.enter(1)
            start = buf.pos
            if buf.left() <= 0:
                raise _Stop("pickle ends without a STOP opcode")
            self.ops_left -= 1
            if self.ops_left < 0:
                raise _Stop("more opcodes than the scanner's memory bound for a file this size")
            code = buf.data[buf.pos]
            buf.pos += 1
            if code not in _OPS:
                raise _Stop(f"unknown opcode 0x{code:02x}")
            name, kind = _OPS[code]
            try:
                arg = self._arg(buf, kind, name)
            except _Stop:
                buf.pos = start
                raise
            if name == "STOP":
                # extra items are harmless for the loader; it returns the top
                if not self.plain:
                    buf.end_pickle()
                return
            if name == "PROTO":
                if arg > 5:
                    raise _Stop(f"unsupported pickle protocol {arg}")
            elif name == "FRAME":
                if self.plain:
                    if arg > buf.left():
                        raise _Stop(f"FRAME declares {arg} bytes but only {buf.left()} remain")
                else:
                    buf.start_frame(arg)
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(top())
            elif name in ("NONE",):
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name == "INT":
                stack.append(
                    bool(arg)
                    if buf.data[start + 1 : start + 3] in (b"00", b"01")
                    and buf.data[start + 3 : start + 4] == b"\n"
                    else arg
                )
            elif name in (
                "BININT",
                "BININT1",
                "BININT2",
                "LONG",
                "LONG1",
                "LONG4",
                "FLOAT",
                "BINFLOAT",
            ) or name in (
                "STRING",
                "BINSTRING",
                "SHORT_BINSTRING",
                "UNICODE",
                "BINUNICODE",
                "SHORT_BINUNICODE",
                "BINUNICODE8",
                "BINBYTES",
                "SHORT_BINBYTES",
                "BINBYTES8",
            ):
                stack.append(arg)
            elif name == "BYTEARRAY8":
                stack.append(_OPAQUE)
            elif name == "NEXT_BUFFER":
                raise _Stop("NEXT_BUFFER: the pickle needs out-of-band buffers")
            elif name == "READONLY_BUFFER":
                top()
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                items = tuple(pop_mark())  # pop first: pop_mark rebinds `stack`
                stack.append(items)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise _Stop(f"{name} on a stack of {len(stack)}")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                items = list(pop_mark())
                stack.append(items)
            elif name == "APPEND":
                value = pop()
                target = top()
                if isinstance(target, list):
                    target.append(value)
                else:
                    _mark_lossy(target)
            elif name == "APPENDS":
                items = pop_mark()
                target = top()
                if isinstance(target, list):
                    target.extend(items)
                else:
                    _mark_lossy(target)
            elif name == "EMPTY_DICT":
                stack.append(_Dict())
            elif name == "DICT":
                items = pop_mark()
                if len(items) % 2:
                    raise _Stop("DICT with an odd number of items")
                made = self._dict(_Dict(), items)
                stack.append(made)
            elif name == "SETITEM":
                value, key = pop(), pop()
                target = top()
                if isinstance(target, dict):
                    self._dict(target, [key, value])
                else:
                    _mark_lossy(target)
            elif name == "SETITEMS":
                items = pop_mark()
                if len(items) % 2:
                    raise _Stop("SETITEMS with an odd number of items")
                target = top()
                if isinstance(target, dict):
                    self._dict(target, items)
                else:
                    _mark_lossy(target)
            elif name in ("EMPTY_SET",):
                stack.append(_OPAQUE)
            elif name == "ADDITEMS":
                pop_mark()
                top()
            elif name == "FROZENSET":
                pop_mark()
                stack.append(_OPAQUE)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise _Stop(f"{name} {arg}: memo key not defined")
                stack.append(memo[arg])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = top()
            elif name == "MEMOIZE":
                memo[len(memo)] = top()
            elif name == "GLOBAL":
                stack.append(self._import(arg[0], arg[1], start))
            elif name == "STACK_GLOBAL":
                gname, gmodule = pop(), pop()
                stack.append(self._import(gmodule, gname, start))
            elif name == "INST":
                cls = self._import(arg[0], arg[1], start)
                items = tuple(pop_mark())
                stack.append(_Obj(cls, items))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise _Stop("OBJ without a class")
                stack.append(_Obj(items[0], tuple(items[1:])))
            elif name == "REDUCE":
                args, func = pop(), pop()
                stack.append(_Obj(func, args))
            elif name == "NEWOBJ":
                args, cls = pop(), pop()
                stack.append(_Obj(cls, args))
            elif name == "NEWOBJ_EX":
                _kwargs, args, cls = pop(), pop(), pop()
                stack.append(_Obj(cls, args))
            elif name == "BUILD":
                state = pop()
                target = top()
                if isinstance(target, _Obj):
                    cls = _cls_key(target)
                    if cls is None and not self.plain:
                        # it might be joblib's array wrapper, after which joblib reads bytes
                        raise _Stop("BUILD on an object whose class is not known statically")
                    self._build(target, state)
                    if cls in _JOBLIB_WRAPPERS and not self.plain:
                        self._skip_array(buf, target, state, start, depth)
                        stack[-1] = _OPAQUE
            elif name in ("EXT1", "EXT2", "EXT4"):
                self.report.imports.append(
                    ImportRecord(
                        "?",
                        f"extension code {arg}",
                        False,
                        "refused: copyreg extension codes import names the file does not show",
                        start,
                    )
                )
                stack.append(_OPAQUE)
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    pop()
                if self.context != "torch":
                    self.report.findings.append(
                        f"{name} at byte {start}: a persistent id, resolved by the loading "
                        "program rather than by the pickle"
                    )
                stack.append(_OPAQUE)
            else:  # pragma: no cover - every opcode of protocols 0-5 is handled above
                raise _Stop(f"opcode {name} is not supported")

    @staticmethod
    def _dict(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        for i in range(0, len(items), 2):
            key = items[i]
            if _hashable(key):
                target[key] = items[i + 1]
            else:
                _mark_lossy(target)
        return target

    @staticmethod
    def _build(obj: _Obj, state: Any) -> None:
        obj.state = state
        obj.built = True
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if isinstance(part, dict):
                for k, v in part.items():
                    if isinstance(k, str):
                        obj.attrs[k] = v

    def _skip_array(self, buf: _Buffer, wrapper: _Obj, state: Any, start: int, depth: int) -> None:
        """Skip what joblib reads after a NumpyArrayWrapper's BUILD (see read_array), from
        the file after the current frame; the rest of the frame is parsed afterwards."""
        self.saw_wrapper = True
        where = f"array wrapper at byte {start}"
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
        for part in parts:
            if part is not None and (not isinstance(part, dict) or getattr(part, "lossy", 0)):
                raise _Stop(f"{where}: its state is not a dict the scanner can evaluate")
        if wrapper.lossy or any(not isinstance(k, str) for p in parts if p for k in p):
            raise _Stop(f"{where}: its state is not a dict the scanner can evaluate")
        func, args = wrapper.func, wrapper.args
        plain = isinstance(func, _Global) and func.key in _JOBLIB_WRAPPERS and args == ()
        via_copyreg = (
            isinstance(func, _Global)
            and isinstance(args, tuple)
            and len(args) == 3
            and isinstance(args[1], _Global)
            and args[1].key in ("builtins.object", "__builtin__.object")
            and args[2] is None
        )
        if not (plain or via_copyreg):  # joblib writes NEWOBJ(cls, ()) or _reconstructor
            raise _Stop(f"{where}: constructed in a way joblib never writes")
        dtype = _materialize(wrapper.attrs.get("dtype"))
        if not hasattr(dtype, "itemsize"):
            raise _Stop(f"{where}: no dtype")
        if dtype.hasobject:  # joblib pickles object arrays as a nested pickle, in the file
            if buf.frame_end is None:
                self.parse(buf, depth + 1)
                return
            saved = (buf.pos, buf.frame_end)
            buf.pos, buf.frame_end = buf.file_pos, None
            self.parse(buf, depth + 1)
            buf.file_pos = buf.pos
            buf.pos, buf.frame_end = saved
            return
        shape = _materialize(wrapper.attrs.get("shape"))
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _Stop(f"{where}: shape is not a tuple of sizes")
        count = 1
        for d in shape:
            count *= d
        if count >= 1 << 63:
            raise _Stop(f"{where}: shape {shape} overflows")
        if wrapper.attrs.get("numpy_array_alignment_bytes") is not None:
            padding = buf.file_read(1, f"{where}: padding length")[0]
            buf.file_skip(padding, f"{where}: padding")
        buf.file_skip(count * dtype.itemsize, f"{where}: array data of shape {tuple(shape)}")


# --------------------------------------------------------------------------- formats


def _record_failure(report: ScanReport, buf: _Buffer, message: str) -> None:
    report.findings.append(f"could not parse past byte {buf.pos}: {message}")


def _scan_pickles(
    buf: _Buffer,
    report: ScanReport,
    trusted: tuple[str, ...],
    context: str = "",
    input_size: int = 0,
) -> None:
    """Every pickle in buf, one after another, to the last byte, as joblib.load reads them;
    then, if joblib arrays were found, as pickle.load would read the same bytes."""
    parser = _PickleParser(report, trusted, context, input_size=input_size or buf.end)
    if buf.left() == 0:
        report.findings.append("empty file: nothing to scan")
        return
    count = 0
    while buf.left() > 0:
        count += 1
        try:
            parser.parse(buf)
        except _Stop as e:
            if count > 1:
                e = _Stop(f"pickle {count}: {e}")
            _record_failure(report, buf, str(e))
            report.parsed_bytes = buf.pos
            return
        except (RecursionError, MemoryError):  # pragma: no cover - defensive
            _record_failure(report, buf, "too deeply nested")
            return
        except Exception as e:  # pragma: no cover - fail closed on any scanner bug
            _record_failure(report, buf, f"internal error: {type(e).__name__}: {e}")
            return
        report.parsed_bytes = buf.pos
    if parser.saw_wrapper and not report.format.startswith("joblib"):
        report.format = "joblib" + report.format[len("pickle") :]
    if parser.saw_wrapper:
        _scan_plain(buf.data, report, trusted, context, input_size or buf.end)


def _scan_plain(
    data: Any, report: ScanReport, trusted: tuple[str, ...], context: str, input_size: int
) -> None:
    """pickle.load on a joblib file runs the array bytes as opcodes: every import it would
    resolve before it fails must be allowed too (refused ones are added to the report)."""
    shadow = ScanReport(report.path)
    parser = _PickleParser(shadow, trusted, context, plain=True, input_size=input_size)
    buf = _Buffer(data)
    with contextlib.suppress(_Stop, RecursionError, MemoryError):
        while buf.left() > 0:
            parser.parse(buf)
    known = {(r.module, r.name, r.offset) for r in report.imports}
    for rec in shadow.imports:
        if not rec.allowed and (rec.module, rec.name, rec.offset) not in known:
            report.imports.append(
                ImportRecord(
                    rec.module,
                    rec.name,
                    False,
                    f"{rec.reason} (pickle.load reads this file's array bytes as opcodes)",
                    rec.offset,
                    pickle_load_only=True,
                )
            )


_COMPRESSORS: list[tuple[bytes, str]] = [
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
]


def _decompressor(method: str) -> Any:
    if method == "zlib":
        return zlib.decompressobj(zlib.MAX_WBITS)
    if method == "gzip":
        return zlib.decompressobj(31)
    if method == "bz2":
        return bz2.BZ2Decompressor()
    if method in ("lzma", "xz"):
        return lzma.LZMADecompressor()
    if method == "lz4":
        import lz4.frame  # optional: ImportError handled by the caller

        return lz4.frame.LZ4FrameDecompressor()
    raise ValueError(method)  # pragma: no cover


class _Bomb(Exception):
    pass


def _inflate(
    chunks: Iterable[bytes],
    method: str,
    out: BinaryIO,
    max_out: int,
    max_ratio: int,
) -> tuple[int, int]:
    """Stream-decompress into `out`; returns (bytes in, bytes out). Raises _Bomb, _Stop."""
    d = _decompressor(method)
    total_in = total_out = 0
    pending = b""
    started = False
    for chunk in chunks:
        total_in += len(chunk)
        pending += chunk
        while pending:
            if started and getattr(d, "eof", False):
                d = _decompressor(method)  # concatenated streams, as joblib and gzip read them
            started = True
            try:
                room = min(_CHUNK, max_out - total_out + 1)
                if method in ("zlib", "gzip"):
                    data = d.decompress(pending, room)
                    pending = d.unconsumed_tail or (d.unused_data if d.eof else b"")
                else:
                    data = d.decompress(pending, max_length=room)
                    pending = d.unused_data if d.eof else b""
                    while not d.eof and not getattr(d, "needs_input", True) and len(data) < room:
                        more = d.decompress(b"", max_length=room - len(data))
                        if not more:
                            break
                        data += more
            except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError) as e:
                raise _Stop(f"{method} data is corrupt: {e}") from None
            except Exception as e:  # lz4 raises its own RuntimeError subclasses
                raise _Stop(f"{method} data is corrupt: {e}") from None
            total_out += len(data)
            if total_out > max_out:
                raise _Bomb(f"decompression bomb: {method} data expands beyond {max_out} bytes")
            if total_out > RATIO_FLOOR and total_out > max_ratio * max(total_in, 1):
                raise _Bomb(
                    f"decompression bomb: {method} data expands more than {max_ratio} times"
                )
            out.write(data)
            if not data and not pending:
                break
            # a decompressor that returns nothing and needs input waits for the next chunk
            if (
                not data
                and method not in ("zlib", "gzip")
                and not getattr(d, "eof", False)
                and getattr(d, "needs_input", True)
            ):
                break
    if not getattr(d, "eof", False):
        raise _Stop(f"{method} stream is truncated (no end-of-stream marker)")
    return total_in, total_out


@contextlib.contextmanager
def _mapped(f: BinaryIO) -> Iterator[Any]:
    f.flush()
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        yield b""
        return
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield m
    finally:
        m.close()


@dataclass(frozen=True)
class _Options:
    trusted: tuple[str, ...]
    max_decompressed: int
    max_ratio: int


def _scan_data(data: Any, report: ScanReport, opts: _Options, depth: int = 0) -> None:
    """Detect the format of `data` (bytes or mmap) and scan it into `report`."""
    report.total_bytes = len(data)
    head = bytes(data[:16])
    if depth > _MAX_DEPTH:
        report.findings.append("containers nested too deeply")
        return
    # the one format decision (core.formats), as the scanner asks it: no name is believed
    kind = formats.model_format(data)
    if kind in ("zip", "skops"):
        report.format = "zip"
        _scan_zip(data, report, opts, depth)
        return
    if kind == "joblib-zfile":
        report.format = "joblib-zfile"
        report.findings.append("legacy joblib 'ZF' compressed format (joblib < 0.9.3) not scanned")
        return
    # data first whatever the magic says (a vocabulary may start with a compressor's byte);
    # what is not data is followed as joblib would read it, and anything else as a pickle
    method = formats.compression_of(head)
    if _scan_as_data(data, method, report, opts):
        return
    if method is not None:
        _scan_compressed(data, method, report, opts, depth)
        return
    report.format = "pickle"
    _scan_pickles(_Buffer(data), report, opts.trusted)


def _scan_as_data(data: Any, method: str | None, report: ScanReport, opts: _Options) -> bool:
    """A file that one strict data parser accepts and no loader reads as code: data.

    Ambiguous files (two data parsers accept it, or joblib would decompress it, or a pickle
    starts at its first byte) are refused. Returns False when the file is not data."""
    kinds = formats.detect_data(data, report.path.rsplit("/", 1)[-1].rsplit("!", 1)[-1])
    head = bytes(data[:16])
    if not kinds:
        if len(data) >= 10 and head[8:9] == b"{" and _pickle_prefix(data, opts) is False:
            try:  # it looks like safetensors: say what is wrong with it
                formats.parse_safetensors(data)
            except formats.FormatError as e:
                if int.from_bytes(head[:8], "little") <= len(data) - 8:
                    report.format = "safetensors"
                    report.findings.append(f"not a valid safetensors file: {e}")
                    return True
        return False
    pickle_too = _pickle_prefix(data, opts)
    if kinds == ["text"] and pickle_too:
        return False  # a protocol-0 pickle is text too: scan it as the pickle it is
    others = kinds[1:]
    if method is not None and _decodes(data, method):
        others.append(f"{method}-compressed data (joblib.load would decompress it)")
    if pickle_too:
        others.append("a pickle (pickle.load would run it)")
    report.format = kinds[0]
    report.parsed_bytes = len(data)
    if others:
        report.findings.append(
            f"ambiguous: parses as {kinds[0]} and as {', '.join(others)}; refused"
        )
    return True


def _pickle_prefix(data: Any, opts: _Options) -> bool:
    """Would pickle.load do anything with these bytes: read a whole pickle, or resolve a
    global before it fails? (A truncated pickle still runs every call before the point
    where it breaks, and the loaders take a last line without its newline at the end.)"""
    probe = ScanReport("")
    parser = _PickleParser(probe, opts.trusted, plain=True, input_size=len(data), probe=True)
    buf = _Buffer(data)
    try:
        parser.parse(buf)
    except (_Stop, RecursionError, MemoryError):
        return bool(probe.imports) or bytes(data[buf.pos : buf.pos + 1]) in (b"c", b"i")
    return True


def _decodes(data: Any, method: str) -> bool:
    """Would joblib's decompressor get past the first bytes of `data`?"""
    try:
        d = _decompressor(method)
        if method in ("zlib", "gzip"):
            d.decompress(bytes(data[: 1 << 16]), 1 << 16)
        else:
            d.decompress(bytes(data[: 1 << 16]), max_length=1 << 16)
    except ImportError:
        return False  # joblib cannot decompress it either
    except Exception:
        return False
    return True


def _scan_compressed(
    data: Any, method: str, report: ScanReport, opts: _Options, depth: int
) -> None:
    report.format = f"pickle+{method}"

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), _CHUNK):
            yield bytes(data[i : i + _CHUNK])

    with tempfile.TemporaryFile(prefix="modelchain-scan-") as tmp:
        try:
            _inflate(chunks(), method, tmp, opts.max_decompressed, opts.max_ratio)
        except ImportError:
            report.findings.append(f"{method} compressed: install the '{method}' package to scan")
            return
        except _Bomb as e:
            report.findings.append(str(e))
            return
        except _Stop as e:
            report.findings.append(f"could not decompress: {e}")
            return
        inner = ScanReport(report.path)
        with _mapped(tmp) as view:
            inner.total_bytes = len(view)
            if len(view) == 0:
                report.findings.append("compressed stream holds no data")
                report.parsed_bytes = report.total_bytes
                return
            _scan_pickles(_Buffer(view), inner, opts.trusted, input_size=len(data))
        report.imports.extend(inner.imports)
        report.findings.extend(inner.findings)
        if inner.format.startswith("joblib"):
            report.format = f"joblib+{method}"
        if inner.parsed_bytes == inner.total_bytes:
            report.parsed_bytes = report.total_bytes
        elif not inner.findings:  # pragma: no cover - a stop always leaves a finding
            report.findings.append(
                f"parsed {inner.parsed_bytes} of {inner.total_bytes} decompressed bytes"
            )


def _scan_zip(data: Any, report: ScanReport, opts: _Options, depth: int) -> None:
    import io

    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else _MmapFile(data))
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        report.findings.append(f"could not parse zip: {e}")
        return
    names = [m.filename for m in members]
    torch = any(n.endswith("/data.pkl") or n == "data.pkl" for n in names)
    skops = "schema.json" in names
    report.format = "pytorch-zip" if torch else "skops" if skops else "zip"
    problem = _zip_layout_problem(data, members)
    if problem:
        report.findings.append(problem)
        return
    budget = [opts.max_decompressed]  # total work per file, over all members
    for member in members:
        if member.is_dir():
            continue
        shown = member.filename
        if member.file_size > opts.max_decompressed:
            report.findings.append(
                f"{shown}: declares {member.file_size} bytes, over the {opts.max_decompressed} cap"
            )
            continue
        if torch and _torch_data_member(shown):
            continue  # raw tensor storage / version strings: never unpickled by torch.load
        if skops and shown.endswith(".npy"):
            continue  # skops loads arrays with numpy.load(allow_pickle=False)
        with tempfile.TemporaryFile(prefix="modelchain-scan-") as tmp:
            try:
                with zf.open(member) as src:
                    _inflate_copy(src, tmp, member, opts, budget)
            except _Bomb as e:
                report.findings.append(f"{shown}: {e}")
                continue
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                report.findings.append(f"{shown}: could not read zip member: {e}")
                continue
            with _mapped(tmp) as view:
                if skops and shown == "schema.json":
                    _scan_skops_schema(bytes(view), report, opts, shown)
                    continue
                inner = ScanReport(f"{report.path}!{shown}")
                if torch and shown.endswith(".pkl"):
                    inner.total_bytes = len(view)
                    _scan_pickles(_Buffer(view), inner, opts.trusted, context="torch")
                else:
                    _scan_data(view, inner, opts, depth + 1)
        for rec in inner.imports:
            report.imports.append(rec)
        report.findings.extend(f"{shown}: {f}" for f in inner.findings)
        if inner.parsed_bytes != inner.total_bytes and not inner.findings:
            report.findings.append(f"{shown}: not parsed to its end")
    report.parsed_bytes = report.total_bytes


def _zip_layout_problem(data: Any, members: list[zipfile.ZipInfo]) -> str | None:
    """Each member once, each in its own bytes: duplicate names or central-directory entries
    that share or overlap one member's bytes are refused (scanning each copy would multiply
    the work, and two readers may pick different copies)."""
    seen: set[str] = set()
    spans: list[tuple[int, int, str]] = []
    for m in members:
        if m.filename in seen:
            return f"zip member {m.filename!r} appears twice: refused"
        seen.add(m.filename)
        start = m.header_offset
        local = bytes(data[start : start + 30])
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return f"zip member {m.filename!r}: no local header at byte {start}"
        n, e = struct.unpack("<HH", local[26:30])
        spans.append((start, start + 30 + n + e + m.compress_size, m.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if start < end:
            return f"zip members {name!r} and {other!r} overlap: refused"
    if spans and spans[-1][1] > len(data):
        return f"zip member {spans[-1][2]!r} runs past the end of the file"
    return None


def _torch_data_member(name: str) -> bool:
    parts = name.split("/")
    if len(parts) >= 3 and parts[-2] == "data" and parts[-1].isdigit():
        return True
    return parts[-1] in (
        "version",
        "byteorder",
        "serialization_id",
        ".format_version",
        ".storage_alignment",
    )


class _MmapFile:
    """A minimal seekable file over an mmap, for zipfile."""

    def __init__(self, data: Any) -> None:
        self.data, self.pos = data, 0

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self.pos, len(self.data))[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out

    def seekable(self) -> bool:
        return True


def _inflate_copy(
    src: BinaryIO, out: BinaryIO, member: zipfile.ZipInfo, opts: _Options, budget: list[int]
) -> None:
    total = 0
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return
        total += len(chunk)
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise _Bomb(
                f"decompression bomb: the members together expand beyond "
                f"{opts.max_decompressed} bytes"
            )
        if total > opts.max_decompressed:
            raise _Bomb(f"decompression bomb: expands beyond {opts.max_decompressed} bytes")
        if total > RATIO_FLOOR and total > opts.max_ratio * max(member.compress_size, 1):
            raise _Bomb(f"decompression bomb: expands more than {opts.max_ratio} times")
        out.write(chunk)


def _scan_skops_schema(raw: bytes, report: ScanReport, opts: _Options, shown: str) -> None:
    try:
        schema = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        report.findings.append(f"{shown}: not valid JSON: {e}")
        return
    seen: set[tuple[str, str]] = set()

    def visit(node: Any, depth: int) -> None:
        if depth > 200:
            report.findings.append(f"{shown}: nested too deeply")
            return
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if module is not None or cls is not None:
                add(module, cls)
            content = node.get("content")
            if node.get("__loader__") == "FunctionNode" and isinstance(content, dict):
                add(content.get("module_path"), content.get("function"))
            for value in node.values():
                visit(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                visit(value, depth + 1)

    def add(module: Any, name: Any) -> None:
        if not isinstance(module, str) or not isinstance(name, str):
            report.imports.append(
                ImportRecord(str(module), str(name), False, "refused: malformed type", 0)
            )
            return
        if (module, name) in seen:
            return
        seen.add((module, name))
        verdict = allowlist.check(module, name, opts.trusted)
        report.imports.append(ImportRecord(module, name, verdict.allowed, verdict.reason, 0))

    visit(schema, 0)


# --------------------------------------------------------------------------- entry points


def scan_bytes(
    data: bytes,
    name: str = "<bytes>",
    *,
    trusted: Iterable[str] = (),
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> ScanReport:
    """Scan in-memory bytes (for example the exact bytes about to be loaded)."""
    opts = _Options(tuple(allowlist.parse_trusted(t) for t in trusted), max_decompressed, max_ratio)
    report = ScanReport(name)
    _scan_data(bytes(data), report, opts)
    return report


def _open_regular(path: str, *, nofollow: bool) -> int:
    try:
        st = os.stat(path, follow_symlinks=not nofollow)
    except OSError as e:
        raise read_error(path, e) from None
    if not stat.S_ISREG(st.st_mode):  # refused before it is opened
        raise InputError(f"cannot scan {show_path(path)}: it is {kind_name(st.st_mode)}")
    try:
        fd, _ = open_regular(path, follow=not nofollow)
    except NotRegularFile:
        raise InputError(f"cannot scan {show_path(path)}: it changed while being opened") from None
    except OSError as e:
        raise read_error(path, e) from None
    return fd


def _scan_file(path: str, shown: str, opts: _Options, *, nofollow: bool) -> ScanReport:
    fd = _open_regular(path, nofollow=nofollow)
    report = ScanReport(shown)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            report.findings.append("empty file: nothing to scan")
            return report
        try:
            view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {shown}: {e}") from None
        try:
            _scan_data(view, report, opts)
        finally:
            view.close()
    return report


def scan_path(
    path: StrPath,
    *,
    trusted: Iterable[str] = (),
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> ScanReport | DirectoryScan:
    """Scan a file (ScanReport) or a directory (DirectoryScan, one report per regular file).

    Raises InputError when `path` is missing, unreadable, or not a regular file/directory.
    Inside a directory, symbolic links are not followed and FIFOs, sockets and devices are
    never opened: each is a finding.
    """
    opts = _Options(tuple(allowlist.parse_trusted(t) for t in trusted), max_decompressed, max_ratio)
    text = os.fsdecode(os.fspath(path))
    try:
        st = os.stat(text)
    except OSError as e:
        raise read_error(text, e) from None
    if not stat.S_ISDIR(st.st_mode):
        return _scan_file(text, text, opts, nofollow=False)
    result = DirectoryScan(text)
    _walk(text, "", result, opts, set())
    result.reports.sort(key=lambda r: r.path)
    return result


def _walk(
    root: str, rel: str, result: DirectoryScan, opts: _Options, seen: set[tuple[int, int]]
) -> None:
    here = os.path.join(root, rel) if rel else root
    try:
        entries = sorted(os.scandir(here), key=lambda e: e.name)
    except OSError as e:
        result.findings.append(f"cannot list {show_path(here)}: {e.strerror or e}")
        return
    for entry in entries:
        sub = f"{rel}/{entry.name}" if rel else entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            result.findings.append(f"{show_path(sub)}: cannot stat: {e.strerror or e}")
            continue
        if stat.S_ISLNK(st.st_mode):
            result.findings.append(f"{show_path(sub)}: symbolic link not followed")
        elif stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            _walk(root, sub, result, opts, seen)
        elif stat.S_ISREG(st.st_mode):
            try:
                result.reports.append(_scan_file(os.path.join(root, sub), sub, opts, nofollow=True))
            except InputError as e:
                result.findings.append(f"{show_path(sub)}: {e}")
        else:
            result.findings.append(f"{show_path(sub)}: is {kind_name(st.st_mode)}; not opened")
