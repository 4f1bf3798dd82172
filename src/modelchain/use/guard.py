"""Verify, then load: `load()` deserialises only the bytes the ledger vouches for.

The gap between "check the file" and "load the file" is closed by reading the model once:
`load` opens the path, reads every byte into memory, hashes exactly those bytes, checks the
digest against the newest registered version of the model's name (with the ledger audited, by
`Ledger.verify` -- the one place that rule lives), and only then deserialises the same bytes
from memory. The path is never opened a second time, so replacing the file in between changes
nothing.

Pickle and joblib data go through a restricted unpickler: every global the data names is
checked by `modelchain.core.allowlist.check` (the one place the import allowlist lives) before it is
imported, persistent ids are refused, and bytes left over after the pickle's STOP are refused
(a second, hidden pickle would otherwise go unnoticed). skops files are loaded with skops'
own trusted-types check, fed only with the types the allowlist (or the caller's `trusted=`)
allows. safetensors files are parsed strictly and returned as numpy arrays; ONNX files as an
`onnx.ModelProto` when `onnx` is installed.

For `modelchain verify --load`, `verify_load_in_child` runs `load` in an isolated child
process (``python -I``, an empty working directory, a minimal environment, memory and CPU
limits), which writes a one-line JSON verdict to a dedicated pipe.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import stat
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelchain.checks.verdict import diff_tensors
from modelchain.core.errors import (
    ModelchainError,
    ModelMismatch,
    ModelUnreadable,
    NotRegistered,
    UnknownFormat,
    UsageError,
    VerificationError,
    WayOut,
    command_line_text,
    install_way_out,
)
from modelchain.core.formats import model_format
from modelchain.fs.digest import (
    PathDigest,
    parse_safetensors_header,
    safetensors_digests,
)
from modelchain.fs.safeio import read_once, show_path

if TYPE_CHECKING:  # pragma: no cover
    from modelchain.ledgers import Ledger
    from modelchain.log.block import Block
    from modelchain.log.home import Home

__all__ = [
    "FORMATS",
    "LoadRefused",
    "LoadedModel",
    "ModelUnreadable",
    "TamperedModel",
    "UnregisteredModel",
    "UnsafeModel",
    "child_main",
    "detect_format",
    "diff_tensors",
    "load",
    "load_verified",
    "parse_safetensors_header",
    "safetensors_digests",
    "verify_load_in_child",
]

FORMATS = ("joblib", "pickle", "skops", "safetensors", "onnx")


# -- errors ---------------------------------------------------------------------------------


class LoadRefused(VerificationError):
    """`load` refused the model: unregistered, tampered, or unsafe to deserialise (exit 1)."""


class UnregisteredModel(LoadRefused, NotRegistered):
    """No version of the model's name is registered in the ledger."""


class TamperedModel(LoadRefused, ModelMismatch):
    """The bytes read differ from the newest registered version (`.details` says how)."""

    details: dict[str, Any]


class UnsafeModel(LoadRefused):
    """The data asks for something the restricted loader refuses; `.refused` names the import
    (``module.name``) when there is one."""

    refused: str | None = None


def _unsafe(message: str, refused: str | None = None) -> UnsafeModel:
    exc = UnsafeModel(message)
    exc.refused = refused
    return exc


# -- format detection -----------------------------------------------------------------------


def detect_format(data: bytes, path: str = "", format: str | None = None) -> str:
    """One of `FORMATS`, as `modelchain.core.formats.model_format` decides it for a load
    (the content's magic bytes first, the extension second)."""
    if format is not None:
        if format not in FORMATS:
            raise UsageError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
        return format
    found = model_format(data, path, for_load=True)
    if found in FORMATS:
        return found
    shown = show_path(path) if path else "the model"
    if found == "zip":
        raise ModelUnreadable(
            f"{shown}: a zip archive that is not a skops file (not supported by modelchain.load)"
        )
    formats = ", ".join(FORMATS)
    raise UnknownFormat(
        f"{shown}: cannot tell the model's format from its name or its bytes; name it",
        way_out=WayOut(
            flag=("--format",),
            library=f" (format=): {formats}",
            cli=f" (format= in Python, --format on the command line): {formats}",
        ),
    )


#: how much of a file `format_before_reading` looks at
_HEAD = 1 << 20


def format_before_reading(path: str, format: str | None = None) -> str | None:
    """The format from the name and the first MiB, before a multi-gigabyte model is read
    and hashed only to learn that its format cannot be told. None: only the whole file
    decides (a zip, a long safetensors header); the load then decides on the bytes it
    loads, as always -- this is an early refusal, never the decision itself."""
    if format is not None:
        return detect_format(b"", path, format)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None  # the read that follows says why, in its words
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        head = os.read(fd, _HEAD)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return detect_format(head, path)
    except UnknownFormat:
        if len(head) < st.st_size and head[8:9] == b"{":
            return None  # a safetensors header longer than the head: decided on the whole
        raise
    except ModelchainError:
        return None  # malformed in its first bytes: the load says so, on the whole file


# -- restricted unpickling ------------------------------------------------------------------


class _NeedsJoblib(Exception):
    """A plain-pickle load met joblib's array wrapper: reload the same bytes with joblib."""


def _check_import(module: str, name: str, trusted: tuple[str, ...]) -> None:
    from modelchain.core.allowlist import check, normalize

    verdict = check(module, name, trusted)
    if not verdict.allowed:
        both_str = isinstance(module, str) and isinstance(name, str)
        key = ".".join(normalize(module, name)) if both_str else repr((module, name))
        raise _unsafe(f"unsafe model: {verdict.reason}", key)


def _refused(exc: Exception) -> UnsafeModel:
    return _unsafe(f"unsafe model: {exc}")


def _restricted_unpickler() -> type:
    from modelchain.core.restore import CheckedUnpicklerMixin

    class RestrictedUnpickler(CheckedUnpicklerMixin, pickle._Unpickler):  # type: ignore[misc]
        """The pure-Python unpickler (its memo is a dict, every opcode can be checked) that
        imports only what the allowlist allows and checks every call and state."""

        def __init__(self, file: Any, trusted: tuple[str, ...], size: int) -> None:
            super().__init__(file)
            self._trusted = trusted
            self._size = size

        def find_class(self, module: str, name: str) -> Any:
            _check_import(module, name, self._trusted)
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                raise _NeedsJoblib
            obj = super().find_class(module, name)
            self._admit(module, name, obj)
            return obj

        def persistent_load(self, pid: Any) -> Any:
            return _refuse_persistent_id(pid)

    RestrictedUnpickler.dispatch = RestrictedUnpickler.checked_dispatch(
        pickle._Unpickler.dispatch  # type: ignore[attr-defined]
    )
    return RestrictedUnpickler


def _refuse_persistent_id(pid: Any) -> Any:
    raise _unsafe("unsafe model: refused: a persistent id (the loader decides what it means)")


def _restricted_joblib_unpickler() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    from modelchain.core.restore import CheckedUnpicklerMixin, read_joblib_array

    class RestrictedNumpyUnpickler(CheckedUnpicklerMixin, NumpyUnpickler):
        """joblib's unpickler, restricted like the one above; the arrays that follow joblib's
        placeholders are read by `read_joblib_array`, never by joblib."""

        def __init__(self, file: Any, trusted: tuple[str, ...], size: int) -> None:
            super().__init__("", file, ensure_native_byte_order=True, mmap_mode=None)
            self._trusted = trusted
            self._size = size

        def find_class(self, module: str, name: str) -> Any:
            _check_import(module, name, self._trusted)
            obj = super().find_class(module, name)
            self._admit(module, name, obj)
            return obj

        def persistent_load(self, pid: Any) -> Any:
            return _refuse_persistent_id(pid)

        def _build(self, inst: Any) -> None:
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            if isinstance(self.stack[-1], NumpyArrayWrapper):
                wrapper = self.stack.pop()
                fh = self.file_handle
                self.stack.append(
                    read_joblib_array(
                        wrapper,
                        fh,
                        lambda: self._size - fh.tell(),
                        self._size,
                        lambda f: _restricted_unpickler()(f, self._trusted, self._size).load(),
                    )
                )

    RestrictedNumpyUnpickler.dispatch = RestrictedNumpyUnpickler.checked_dispatch(
        NumpyUnpickler.dispatch
    )
    return RestrictedNumpyUnpickler


def _no_trailing(f: Any, what: str) -> None:
    if f.read(1):
        raise _unsafe(
            f"unsafe model: bytes follow the end of the {what} (a second pickle would be "
            "hidden there); refusing to load"
        )


def _load_pickle(data: bytes, trusted: tuple[str, ...]) -> Any:
    from modelchain.core.restore import RestoreRefused

    f = io.BytesIO(data)
    try:
        obj = _restricted_unpickler()(f, trusted, len(data)).load()
    except _NeedsJoblib:
        return _load_joblib(data, trusted)
    except RestoreRefused as e:
        raise _refused(e) from None
    _no_trailing(f, "pickle")
    return obj


def _load_joblib(data: bytes, trusted: tuple[str, ...]) -> Any:
    try:
        from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap
    except ImportError:
        raise UsageError(
            "loading joblib files needs joblib: install the 'sklearn' extra",
            way_out=install_way_out("sklearn"),
        ) from None
    from modelchain.core.restore import RestoreRefused

    unpickler = _restricted_joblib_unpickler()
    with _validate_fileobject_and_memmap(io.BytesIO(data), "", None) as (fobj, _):
        if isinstance(fobj, str):
            raise ModelUnreadable(
                "a joblib < 0.10 file (its arrays live in companion files): not supported"
            )
        # the scan before loading capped the decompressed size: hold it all, so every
        # bound below is relative to the bytes really there
        raw = fobj.read() if not isinstance(fobj, io.BytesIO) else data
    stream = io.BytesIO(raw)
    try:
        obj = unpickler(stream, trusted, len(raw)).load()
    except RestoreRefused as e:
        raise _refused(e) from None
    _no_trailing(stream, "joblib pickle")
    return obj


# -- other formats --------------------------------------------------------------------------


def _load_skops(data: bytes, trusted: tuple[str, ...]) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise UsageError("loading .skops files needs skops: pip install skops") from None
    untrusted = sio.get_untrusted_types(data=data)
    allowed: list[str] = []
    refused: list[str] = []
    from modelchain.core.allowlist import check

    for entry in untrusted:
        module, _, name = entry.rpartition(".")
        (allowed if module and check(module, name, trusted).allowed else refused).append(entry)
    if refused:
        raise _unsafe(
            f"unsafe model: refused skops types not in the allowlist: {', '.join(refused)}",
            refused[0],
        )
    return sio.loads(data, trusted=allowed)


def _load_safetensors(data: bytes) -> dict[str, Any]:
    parse_safetensors_header(data)  # strict: refuse anything the parser below would doubt
    try:
        from safetensors.numpy import load as st_load
    except ImportError:
        raise UsageError(
            "loading .safetensors files needs safetensors and numpy: pip install safetensors"
        ) from None
    return st_load(data)


def _load_onnx(data: bytes) -> Any:
    try:
        import onnx
    except ImportError:
        raise UsageError("loading .onnx files needs onnx: pip install onnx") from None
    return onnx.load_model_from_string(data)


# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """What `load_verified` loaded, and what vouched for it (`block` is None when
    `allow_unregistered=True` skipped the ledger)."""

    obj: Any
    path: str
    name: str
    format: str
    sha256: str
    size: int
    block: Block | None

    def as_dict(self) -> dict[str, Any]:
        kind = type(self.obj)
        return {
            "loaded": True,
            "path": self.path,
            "name": self.name,
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
            "verified": self.block is not None,
            "version": None if self.block is None else self.block.version,
            "index": None if self.block is None else self.block.index,
            "type": f"{kind.__module__}.{kind.__qualname__}",
        }


def _check_ledger(
    ledger: Ledger | str | os.PathLike[str] | None,
    home: Home | str | os.PathLike[str] | None,
    path: str,
    name: str,
    data: bytes,
    sha256: str,
    signers: Sequence[Any] = (),
) -> Block:
    from modelchain.ledgers import Ledger

    owned = not isinstance(ledger, Ledger)
    led = Ledger.open(ledger, home=home) if owned else ledger
    try:
        digest = PathDigest("file", sha256, len(data), None)
        try:
            # `data` goes along so that a refusal names the tensors of the bytes read here
            return led.verify(path, name=name, digest=digest, signers=signers, data=data).block
        except NotRegistered as e:
            raise UnregisteredModel(f"refused to load: {e}") from e
        except ModelMismatch as e:
            exc = TamperedModel(f"refused to load: {e}")
            exc.details = dict(getattr(e, "details", {}))
            raise exc from e
    finally:
        if owned:
            led.close()


def load_verified(
    path: str | os.PathLike[str],
    *,
    ledger: Ledger | str | os.PathLike[str] | None = None,
    name: str | None = None,
    trusted: Iterable[str] = (),
    allow_unregistered: bool = False,
    format: str | None = None,
    home: Home | str | os.PathLike[str] | None = None,
    signers: Sequence[Any] = (),
) -> LoadedModel:
    """Like `load`, but returns the loaded object with the digest and block that vouched."""
    from modelchain.core.allowlist import parse_trusted
    from modelchain.log.block import default_name

    if isinstance(trusted, str):
        trusted = (trusted,)
    trusted_names = tuple(parse_trusted(t) for t in trusted)
    p = os.fspath(path)
    name = name or default_name(p)
    format_before_reading(p, format)  # an unknown format is refused before a byte is read
    data = read_once(p)
    sha256 = hashlib.sha256(data).hexdigest()
    block = None
    if not allow_unregistered:
        block = _check_ledger(ledger, home, p, name, data, sha256, signers)
    fmt = detect_format(data, p, format)
    if fmt in ("joblib", "pickle"):
        _prescan(data, p, trusted, fmt)
    try:
        if fmt == "joblib":
            obj = _load_joblib(data, trusted_names)
        elif fmt == "pickle":
            obj = _load_pickle(data, trusted_names)
        elif fmt == "skops":
            obj = _load_skops(data, trusted_names)
        elif fmt == "safetensors":
            obj = _load_safetensors(data)
        else:
            obj = _load_onnx(data)
    except UnsafeModel as e:
        raise _unsafe(f"refused to load {show_path(p)}: {e}", e.refused) from None
    except ModelchainError:
        raise
    except Exception as e:
        raise ModelUnreadable(
            f"{show_path(p)}: cannot load as {fmt}: {type(e).__name__}: {e}"
        ) from None
    return LoadedModel(obj, p, name, fmt, sha256, len(data), block)


def _prescan(data: bytes, path: str, trusted: Iterable[str], fmt: str = "pickle") -> None:
    """Before any byte is unpickled, scan those very bytes statically: the decompression caps
    stop a compression bomb from exhausting memory, and a file the scanner cannot follow to
    its end is refused (fail closed) even if the restricted unpickler might cope with it.

    Loaded as joblib, the array bytes are read as arrays, never as opcodes: what only
    `pickle.load` would import from them (a benign object array does that) is no reason to
    refuse this load, though `modelchain scan` reports it."""
    from modelchain.core.allowlist import normalize
    from modelchain.use.scan import scan_bytes

    report = scan_bytes(data, path, trusted=trusted)
    refused = [r for r in report.refused if not (fmt == "joblib" and r.pickle_load_only)]
    if not refused and not report.findings and report.parsed_bytes == report.total_bytes:
        return
    if refused:
        module, name = normalize(refused[0].module, refused[0].name)
        raise _unsafe(
            f"refused to load {show_path(path)}: imports {module}.{name} ({refused[0].reason})",
            f"{module}.{name}",
        )
    reason = report.findings[0] if report.findings else "not parsed to its end"
    if reason.startswith("could not parse") and "refused:" not in reason:  # malformed only
        raise ModelUnreadable(f"{show_path(path)}: {reason}")
    raise _unsafe(f"refused to load {show_path(path)}: {reason}")


def load(
    path: str | os.PathLike[str],
    *,
    ledger: Ledger | str | os.PathLike[str] | None = None,
    name: str | None = None,
    trusted: Iterable[str] = (),
    allow_unregistered: bool = False,
    format: str | None = None,
    home: Home | str | os.PathLike[str] | None = None,
    signers: Sequence[Any] = (),
) -> Any:
    """Load the model at `path`, but only if its bytes are the newest registered version.

    `ledger` is a `Ledger` or a location for `Ledger.open` (with `home`); `name` defaults to
    the path's base name; `trusted` adds "module.Name" / "module.*" entries to the import
    allowlist for this call; `format` overrides detection (one of `FORMATS`); `signers`
    (public keys, key files, key-ring names, verifier keys or key IDs) must each have signed
    that registration (see `Ledger.verify`).

    Raises `UnregisteredModel`, `TamperedModel`, `UnsafeModel` (all `LoadRefused`), the
    ledger audit's errors, `ModelUnreadable` for malformed data, `UsageError` when a needed
    library is missing.
    """
    return load_verified(
        path,
        ledger=ledger,
        name=name,
        trusted=trusted,
        allow_unregistered=allow_unregistered,
        format=format,
        home=home,
        signers=signers,
    ).obj


# -- in a child process ---------------------------------------------------------------------


def _refusal(path: str, name: str | None, exc: BaseException, code: int) -> dict[str, Any]:
    # the verdict's error is what `verify --load` shows: the command line's words
    said = command_line_text(exc) if isinstance(exc, ModelchainError) else str(exc)
    out: dict[str, Any] = {
        "loaded": False,
        "path": path,
        "name": name,
        "error": " ".join(said.split()) or type(exc).__name__,
        "error_type": type(exc).__name__,
        "exit_code": code,
    }
    refused = getattr(exc, "refused", None)
    if refused:
        out["refused"] = refused
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        out["details"] = details
    return out


def child_main(argv: list[str] | None = None) -> int:
    """`python -m modelchain.use.guard PATH [--ledger L] [--name N] [--trusted T]...`: load PATH
    with `load_verified`, print one line of JSON, exit 0 (loaded), 1 (refused) or 2."""
    parser = argparse.ArgumentParser(prog="python -m modelchain.use.guard")
    parser.add_argument("path")
    parser.add_argument("--ledger")
    parser.add_argument("--name")
    parser.add_argument("--home")
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--trusted", action="append", default=[])
    parser.add_argument("--allow-unregistered", action="store_true")
    parser.add_argument("--verdict-fd", type=int, help="write the verdict here, not stdout")
    args = parser.parse_args(argv)
    try:
        loaded = load_verified(
            args.path,
            ledger=args.ledger,
            name=args.name,
            trusted=args.trusted,
            allow_unregistered=args.allow_unregistered,
            format=args.format,
            home=args.home,
        )
        verdict, code = loaded.as_dict(), 0
    except ModelchainError as e:
        code = e.exit_code
        verdict = _refusal(args.path, args.name, e, code)
    except Exception as e:  # never a traceback: the parent reads one JSON line
        code = 1
        verdict = _refusal(args.path, args.name, e, code)
    verdict.setdefault("exit_code", code)
    line = json.dumps(verdict, sort_keys=True, default=str) + "\n"
    if args.verdict_fd is None:
        print(line, end="", flush=True)
    else:
        with os.fdopen(args.verdict_fd, "w", encoding="utf-8") as out:
            out.write(line)
    return code


#: Address space the test-load child may use: numpy, scipy and scikit-learn themselves need
#: about a gigabyte of mappings; a model may use a multiple of its size on top.
CHILD_MEMORY_BASE = 2 * 1024**3
CHILD_MEMORY_PER_BYTE = 32


def _child_limits(memory: int, cpu_seconds: int) -> Any:
    """A preexec_fn for the child: caps address space and CPU time, no core files."""

    def apply() -> None:  # runs in the child between fork and exec
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _child_env() -> dict[str, str]:
    """A minimal environment: nothing that makes Python import from elsewhere (PYTHON*), one
    thread per math library, and the libpq variables a PostgreSQL ledger location may need."""
    env = {
        "PATH": os.defpath,
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for name, value in os.environ.items():
        if name.startswith("PG") and name.isupper():
            env[name] = value
    return env


# Started with `python -I -c`: no PYTHON* variables, no user site, and neither the working
# directory nor the script's directory on sys.path. The package directory the parent runs
# from is appended (after the standard library and site-packages), for a source checkout.
_CHILD_CODE = (
    "import sys\n"
    "if sys.argv[1] not in sys.path: sys.path.append(sys.argv[1])\n"
    "from modelchain.use.guard import child_main\n"
    "sys.exit(child_main(sys.argv[2:]))\n"
)


def _child_failure(p: str, name: str | None, error: str, kind: str) -> dict[str, Any]:
    return {
        "loaded": False,
        "path": p,
        "name": name,
        "error": error,
        "error_type": kind,
        "exit_code": 1,
    }


def verify_load_in_child(
    path: str | os.PathLike[str],
    *,
    ledger_location: str | os.PathLike[str] | None = None,
    name: str | None = None,
    trusted: Iterable[str] = (),
    timeout: float = 120.0,
    allow_unregistered: bool = False,
    format: str | None = None,
    home: str | os.PathLike[str] | None = None,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Run `load` on `path` in a fresh, isolated Python process and return its JSON verdict.

    The child is started with ``python -I`` in an empty temporary directory with a minimal
    environment, under address-space and CPU-time limits, so no ``*.py`` beside the model or
    in the caller's directory is importable. It writes its verdict to a dedicated pipe; the
    parent trusts only one well-formed JSON line there that agrees with the exit status.

    The verdict has ``loaded`` (bool) and ``exit_code``; a refusal adds ``error`` and
    ``error_type``. A child that times out, crashes or gives no verdict is reported as not
    loaded (exit code 1): failing closed.
    """
    import math
    import tempfile
    import threading

    from modelchain.ledgers.locations import resolve_location
    from modelchain.log.home import default_home

    p = os.path.abspath(os.fspath(path))
    try:
        size = os.stat(p).st_size
    except OSError:
        size = 0
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [p]
    if ledger_location is not None or not allow_unregistered:
        location = resolve_location(ledger_location)
        if "://" not in location:
            location = os.path.abspath(location)
        args += ["--ledger", location]
    if name is not None:
        args += ["--name", name]
    args += ["--home", os.path.abspath(os.fspath(home) if home is not None else default_home())]
    if format is not None:
        args += ["--format", format]
    if isinstance(trusted, str):
        trusted = (trusted,)
    for entry in trusted:
        args += ["--trusted", entry]
    if allow_unregistered:
        args.append("--allow-unregistered")
    if memory_limit is None:
        memory_limit = CHILD_MEMORY_BASE + CHILD_MEMORY_PER_BYTE * size
    read_fd, write_fd = os.pipe()
    args += ["--verdict-fd", str(write_fd)]
    cmd = [sys.executable, "-I", "-c", _CHILD_CODE, package_dir, *args]
    chunks: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as r:
            while len(b"".join(chunks)) <= 1 << 20:
                chunk = r.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        with tempfile.TemporaryDirectory(prefix="modelchain-load-") as cwd:
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=cwd,
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=timeout,
                    pass_fds=(write_fd,),
                    preexec_fn=_child_limits(memory_limit, max(1, math.ceil(timeout))),
                    close_fds=True,
                )
            except subprocess.TimeoutExpired:
                return _child_failure(
                    p, name, f"loading did not finish within {timeout:g} s", "Timeout"
                )
    finally:
        os.close(write_fd)
        reader.join(timeout=5)
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    verdict: Any = None
    if len(lines) == 1:
        try:
            verdict = json.loads(lines[0])
        except ValueError:
            verdict = None
    well_formed = (
        isinstance(verdict, dict)
        and isinstance(verdict.get("loaded"), bool)
        and verdict.get("exit_code") == proc.returncode
        and verdict["loaded"] == (proc.returncode == 0)
    )
    if not well_formed:
        stderr = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = stderr[-1] if stderr else ""
        status = proc.returncode
        why = f"signal {-status}" if status < 0 else f"status {status}"
        return _child_failure(
            p, name, f"the loading process exited with {why}: {tail}".rstrip(": "), "ChildFailed"
        )
    return verdict


if __name__ == "__main__":
    from modelchain.use.guard import child_main as _main  # one copy of the classes, not __main__'s

    sys.exit(_main(sys.argv[1:]))
