"""The differential harness: what the real loaders do with a file, next to what `scan` says.

    observe(path, loader, block=True) -> Observation   # runs the loader in a child process
    forbidden(observation) -> list[str]                # what the allowlist would not allow

The child runs the real `pickle.load` or `joblib.load` on the file with an audit hook
(`sys.addaudithook`) that records every global the unpickler resolves (``pickle.find_class``)
and every event a model file has no business raising: running a program, opening a file
other than the model (and Python's own modules), connecting a socket, building code or
function objects. (``exec``/``compile`` are not on that list: the standard library raises
them while importing, e.g. for dataclasses; code run from a string is caught by the global
that runs it, ``builtins.eval`` and the like.) With ``block=True`` (the default) such an
event is recorded and then stopped by raising inside the hook, so a generated variant can
never do anything; ``block=False`` lets the loader run, to prove that a hand-made attack
works for real (its payload only touches a marker file in the test's tmp_path).

The property the tests check: whenever `forbidden(observe(...))` is not empty, `scan` does
not call the file ok.

Run as a script (that is how `observe` uses it):  python differential.py LOADER PATH [block]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

#: audit events no model load may raise (prefix match)
_FORBIDDEN_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.kill",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.truncate",
    "os.chmod",
    "subprocess.Popen",
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "shutil.",
    "ctypes.",
    "webbrowser.open",
    "urllib.Request",
    "code.__new__",
    "function.__new__",
    "sys.settrace",
    "sys.setprofile",
)


@dataclass
class Observation:
    loader: str
    globals: list[tuple[str, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    error: str | None = None


def observe(path: Path, loader: str, *, block: bool = True, timeout: float = 120) -> Observation:
    """Run `loader` ("pickle" or "joblib") on `path` in a child; what did it try to do?"""
    return observe_many([path], loader, block=block, timeout=timeout)[0]


def observe_many(
    paths: list[Path], loader: str, *, block: bool = True, timeout: float = 600
) -> list[Observation]:
    """`observe` for many files in one child (Python, numpy and joblib start once)."""
    argv = [sys.executable, str(Path(__file__).resolve()), loader, "block" if block else "run"]
    argv += [str(p) for p in paths]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=paths[0].parent
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    out = [json.loads(ln) for ln in lines]
    results = [
        Observation(loader, [tuple(g) for g in o["globals"]], o["events"], o["error"]) for o in out
    ]
    if len(results) < len(paths) and len(paths) > 1:
        # the child died on one of them: the rest one child each, so the culprit is named
        for path in paths[len(results) :]:
            results.extend(observe_many([path], loader, block=block, timeout=timeout))
    elif len(results) < len(paths) and proc.returncode < 0:
        # the real loader crashed the process (a forged numpy state makes numpy follow
        # pointers read from the file): as bad as any forbidden call
        results.append(Observation(loader, error=f"crashed: signal {-proc.returncode}"))
    while len(results) < len(paths):  # the child died otherwise: say so, do not guess
        results.append(Observation(loader, error=f"child failed: {proc.stderr[-300:]}"))
    return results


def forbidden(obs: Observation) -> list[str]:
    """The globals the allowlist refuses and the events no model load may raise."""
    from modelchain.core import allowlist

    # an empty module name imports nothing: __import__("") raises first
    bad = [f"{m}.{n}" for m, n in obs.globals if m and not allowlist.check(m, n).allowed]
    crashed = [obs.error] if obs.error and obs.error.startswith("crashed") else []
    return bad + list(obs.events) + crashed


def forbidden_in_process(data: bytes, *, any_global: bool = False) -> list[str]:
    """The fast oracle (for fuzzing): the real unpicklers, pickle's C one and joblib's, on
    `data` in this process, with `find_class` stopping at the first global the allowlist (or
    the scanner's legacy-wrapper rule) refuses (`any_global`: at the first global at all).
    Only allowed callables can ever run."""
    import io
    import pickle

    from modelchain.core import allowlist

    refused: list[str] = []

    def gate(module: str, name: str) -> None:
        if not module:  # __import__("") raises before importing anything
            raise pickle.UnpicklingError("empty module name")
        legacy = "numpy_pickle_compat" in module or name in ("NDArrayWrapper", "ZNDArrayWrapper")
        if any_global or legacy or not allowlist.check(module, name).allowed:
            refused.append(f"{module}.{name}")
            raise pickle.UnpicklingError("refused")

    class Plain(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            gate(module, name)
            return super().find_class(module, name)

    class PlainPy(pickle._Unpickler):  # type: ignore[name-defined]
        def find_class(self, module: str, name: str) -> object:
            gate(module, name)
            return super().find_class(module, name)

    # pickle's C unpickler sizes its memo by the largest PUT index (a few bytes can ask for
    # gigabytes: a loader-side limit, not the scanner's); then use the Python one
    plain = PlainPy if _huge_memo_index(data) else Plain
    loaders = [lambda f: plain(f).load()]
    try:
        from joblib.numpy_pickle import NumpyUnpickler
    except ImportError:  # pragma: no cover
        NumpyUnpickler = None
    if NumpyUnpickler is not None:

        class Joblib(NumpyUnpickler):  # type: ignore[misc, valid-type]
            def find_class(self, module: str, name: str) -> object:
                gate(module, name)
                return super().find_class(module, name)

        loaders.append(lambda f: Joblib("<fuzz>", f, ensure_native_byte_order=False).load())
    for load in loaders:
        stream = io.BytesIO(data)
        while stream.tell() < len(data):  # pickle.load in a loop reads every pickle
            try:
                load(stream)
            except BaseException:  # any failure ends that loader's run
                break
    return refused


def _huge_memo_index(data: bytes) -> bool:
    """Does any of the pickles in `data` (joblib and the scanner read on after a STOP) use
    a memo index large enough to make pickle's C unpickler allocate gigabytes?"""
    import pickletools

    start = 0
    while start < len(data):
        end = None
        try:
            for op, arg, pos in pickletools.genops(data[start:]):
                memo_op = op.name in (
                    "PUT",
                    "BINPUT",
                    "LONG_BINPUT",
                    "GET",
                    "BINGET",
                    "LONG_BINGET",
                )
                if memo_op and isinstance(arg, int) and arg > 1 << 20:
                    return True
                if op.name == "STOP":
                    end = start + pos + 1
        except Exception:
            return False
        if end is None or end <= start:
            return False
        start = end
    return False


def check_scan(data: bytes, name: str = "fuzz") -> None:
    """The invariant: if `scan` calls `data` ok, no real loader resolves a refused global,
    and if it calls it data, no loader resolves any global. Raises AssertionError otherwise."""
    from modelchain.core.formats import DATA_FORMATS
    from modelchain.use.scan import scan_bytes

    report = scan_bytes(data, name)
    if not report.ok:
        return
    bad = forbidden_in_process(data, any_global=report.format in DATA_FORMATS)
    assert not bad, f"scan said ok ({report.format}) but a loader resolves {bad}"


def _child(loader: str, paths: list[str], block: bool) -> None:  # pragma: no cover - a child
    import builtins

    prefixes = tuple(
        {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, str(SRC))}
    )
    model = [""]
    seen_globals: list[list[str]] = []
    events: list[str] = []
    armed = [False]

    class Refused(Exception):
        pass

    def hook(event: str, args: tuple) -> None:
        if not armed[0]:
            return
        if event == "pickle.find_class":
            seen_globals.append([str(args[0]), str(args[1])])
            return
        what = None
        if event == "open":
            target = args[0]
            if isinstance(target, int):
                return
            real = os.path.realpath(os.fsdecode(target))
            if real != model[0] and not real.startswith(prefixes):
                what = f"open {real}"
        elif event.startswith(_FORBIDDEN_EVENTS):
            what = f"{event} {str(args)[:200]}"
        if what is not None:
            events.append(what)
            if block:
                raise Refused(what)

    import pickle

    import joblib
    import numpy  # noqa: F401 - imported before arming, as a loading program would have

    sys.addaudithook(hook)
    for path in paths:
        model[0] = os.path.realpath(path)
        seen_globals.clear()
        events.clear()
        error = None
        armed[0] = True
        try:
            if loader == "pickle":
                with builtins.open(path, "rb") as f:
                    # see forbidden_in_process: C's memo would take the machine's memory
                    huge = _huge_memo_index(f.read())
                    f.seek(0)
                    (pickle._Unpickler(f) if huge else pickle.Unpickler(f)).load()
            else:
                joblib.load(path)
        except BaseException as e:  # any failure is an observation
            error = f"{type(e).__name__}: {str(e)[:200]}"
        armed[0] = False
        line = json.dumps({"globals": seen_globals, "events": events, "error": error})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    _child(sys.argv[1], sys.argv[3:], block=sys.argv[2] == "block")
