"""The package's layers: a module imports only from its own layer or below, and no modules
import each other in a loop. Read from the source with `ast` (imports inside functions and
under TYPE_CHECKING count too: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "modelchain"

#: bottom up; docs/architecture.md gives each layer's job
LAYERS = {
    "core": 0,
    "fs": 1,
    "claims": 2,
    "log": 3,
    "checks": 4,
    "ledgers": 5,
    "use": 6,
    "cli": 7,
    "server": 7,
    "": 8,  # the package itself: `modelchain/__init__.py` and `__main__.py`
}
#: the standard-library and third-party modules that mean I/O: none of them in the pure layer
IO_MODULES = {
    "subprocess",
    "socket",
    "sqlite3",
    "psycopg",
    "httpx",
    "urllib.request",
    "shutil",
    "tempfile",
    "threading",
    "concurrent.futures",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top not in LAYERS and top in ("__main__",):
        top = ""
    assert top in LAYERS, f"{module}: not in a layer package (add it to LAYERS and the docs)"
    return LAYERS[top]


def imports(module: str, path: Path, known: set[str]) -> list[tuple[int, str, str]]:
    """(line, imported module, how it was written) for every modelchain import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "modelchain" or alias.name.startswith("modelchain."):
                    out.append((node.lineno, alias.name, f"import {alias.name}"))
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if not (target == "modelchain" or target.startswith("modelchain.")):
            continue
        for alias in node.names:
            full = f"{target}.{alias.name}"
            written = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
            out.append((node.lineno, full if full in known else target, written))
    return out


def graph() -> dict[str, list[tuple[int, str, str]]]:
    found = modules()
    known = set(found)
    return {m: imports(m, p, known) for m, p in found.items()}


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_imports_only_go_down() -> None:
    upward = []
    for module, edges in graph().items():
        for line, target, written in edges:
            if target == "modelchain" and written.endswith("import __version__"):
                continue  # the version string is the package's, read by every layer
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{module}:{line}: {written} (layer {layer_of(module)} -> {layer_of(target)})"
                )
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_the_faces_do_not_import_each_other_backwards() -> None:
    for module, edges in graph().items():
        if module.startswith("modelchain.server"):
            assert not [t for _, t, _ in edges if t.startswith("modelchain.cli")], module


def test_no_import_cycles() -> None:
    edges = {
        m: {t for _, t, w in e if t not in (m, "modelchain") or not w.endswith("__version__")}
        for m, e in G.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other in a loop: {cycles}"


def test_the_pure_layer_does_no_io() -> None:
    for module, path in modules().items():
        if layer_of(module) != 0:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                assert name not in IO_MODULES, f"{module}:{node.lineno}: imports {name}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                pytest.fail(f"{module}:{node.lineno}: opens a file")


G = graph()
graph_keys = set(G)


@pytest.mark.parametrize(
    "bad", ["from modelchain.cli.commands import main", "from ..ledgers import ledger"]
)
def test_the_check_catches_an_upward_import(tmp_path: Path, bad: str) -> None:
    """The rule is not vacuous: an upward import written into a core module is found."""
    fake = tmp_path / "x.py"
    fake.write_text(bad + "\n")
    edges = imports("modelchain.core.x", fake, set(G) | {"modelchain.core.x"})
    assert edges and layer_of(edges[0][1]) > 0


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md is written from the code: each module has its row (a new module
    without one, or a row for a module that is gone, fails here)."""
    page = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text()
    for module in modules():
        parts = module.split(".")
        if len(parts) < 3 or (parts[1] == "log" and len(parts) > 3):
            continue  # the package itself and the layers' faces; the stores have one row
        names = (f"`{parts[-1]}`", f"`{parts[-1]}/`", f"`{'/'.join(parts[1:])}`")
        assert any(name in page for name in names), f"{module} has no row in architecture.md"
