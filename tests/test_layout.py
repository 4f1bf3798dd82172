"""The test layout (tests/README.md) stays true: a test under `tests/unit/` calls the library and
never the command. It asks for neither the `run` nor the `run_script` fixture and starts no
subprocess of `modelchain` (`python -m modelchain`, the `modelchain` script); such a test
belongs in `tests/cli/`. A subprocess of Python itself (a fresh interpreter to measure memory
or imports) is still a unit test. Read from the source with `ast`."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
UNIT = TESTS / "unit"
#: the conftest fixtures that run the real command
CLI_FIXTURES = frozenset({"run", "run_script"})
#: what starts a process, as `subprocess.<name>` or `os.<name>`
STARTERS = frozenset(
    {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
    | {"system", "popen", "execv", "execvp", "execl", "execlp", "spawnv", "spawnvp", "posix_spawn"}
)


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _names_the_command(strings: list[str]) -> bool:
    """`modelchain` as the program (a string's first word, alone or as a path's last part) or
    after `-m`; `python -c "import modelchain"` names the package, not the command."""
    words = [word for s in strings for word in s.split()]
    for s in strings:
        first = s.split()[:1]
        if first and (first[0] == "modelchain" or first[0].endswith("/modelchain")):
            return True
    return any(a == "-m" and b.split(".")[0] == "modelchain" for a, b in itertools.pairwise(words))


def _starter(call: ast.Call) -> str | None:
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("subprocess", "os", "sp")
        and func.attr in STARTERS
    ):
        return f"{func.value.id}.{func.attr}"
    if isinstance(func, ast.Name) and func.id in ("Popen", "check_output", "check_call"):
        return func.id
    return None


def problems(source: str, filename: str = "<test>") -> list[str]:
    """One line per way a test file runs the command (empty: it calls only the library)."""
    tree = ast.parse(source, filename)
    assigned: dict[str, list[str]] = {}  # argv built in a variable first, then passed
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).extend(_strings(node.value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
            for name in sorted(params & CLI_FIXTURES):
                out.append(f"{filename}:{node.lineno}: {node.name} asks for the {name!r} fixture")
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func.endswith("usefixtures") or func.endswith("getfixturevalue"):
            for name in sorted(set(_strings(node)) & CLI_FIXTURES):
                out.append(f"{filename}:{node.lineno}: {func} asks for the {name!r} fixture")
            continue
        starter = _starter(node)
        if starter is None:
            continue
        words = [
            w for arg in [*node.args, *(k.value for k in node.keywords)] for w in _strings(arg)
        ]
        for arg in node.args:
            if isinstance(arg, ast.Name):
                words.extend(assigned.get(arg.id, []))
        if _names_the_command(words):
            out.append(f"{filename}:{node.lineno}: {starter} starts the modelchain command")
    return out


def unit_files() -> list[Path]:
    return sorted(UNIT.rglob("*.py"))


def test_unit_tests_do_not_run_the_command() -> None:
    assert unit_files(), f"no test files under {UNIT}"
    found = [
        line
        for path in unit_files()
        for line in problems(path.read_text(), str(path.relative_to(TESTS)))
    ]
    assert not found, "CLI tests under tests/unit/ (move them to tests/cli/):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "def test_x(run, tmp_path): run('audit')",
        "def test_x(home, run_script): run_script('main.py')",
        "@pytest.mark.usefixtures('run')\ndef test_x(): pass",
        "def test_x(request): request.getfixturevalue('run')('audit')",
        "def test_x(): subprocess.run([sys.executable, '-m', 'modelchain', 'audit'])",
        "def test_x(): subprocess.check_output(['modelchain', 'scan', 'm'])",
        "def test_x():\n    argv = [sys.executable, '-m', 'modelchain']\n    subprocess.run(argv)",
        "def test_x(): os.system('modelchain audit')",
        "def test_x(): subprocess.run('.venv/bin/modelchain audit'.split())",
    ],
)
def test_the_check_finds_the_command(source: str) -> None:
    assert problems(source)


@pytest.mark.parametrize(
    "source",
    [
        "def test_x(tmp_path, model): ledger.register(model)",
        "def test_x(): subprocess.run([sys.executable, '-c', 'import modelchain.fs.digest'])",
        "def test_x(): subprocess.run([sys.executable, '-c', 'import modelchain'])",
        "def test_x(): subprocess.run(['sha256sum', '--', 'modelchain.bin'])",
        "def test_x(): result = runner.run('modelchain')",
    ],
)
def test_the_check_leaves_library_tests_alone(source: str) -> None:
    assert not problems(source)
