"""The public import surface: what `import modelchain` promises a library user.

Moving a module must not change it; adding or dropping a name is an API change and is made
here on purpose."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import modelchain

SURFACE = {
    "AuditReport": "class",
    "Block": "class",
    "Home": "class",
    "Ledger": "class",
    "ModelchainError": "class",
    "Provenance": "class",
    "Verification": "class",
    "__version__": "str",
    "load": "function",
    "merkle": "module",
}


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "class"
    if inspect.ismodule(value):
        return "module"
    if inspect.isfunction(value):
        return "function"
    return type(value).__name__


def test_all_is_the_promised_surface() -> None:
    assert sorted(modelchain.__all__) == sorted(SURFACE)
    assert {name: _kind(getattr(modelchain, name)) for name in modelchain.__all__} == SURFACE


def test_every_public_name_has_a_docstring() -> None:
    for name in modelchain.__all__:
        value = getattr(modelchain, name)
        if not isinstance(value, str):
            assert inspect.getdoc(value), f"modelchain.{name} has no docstring"


def test_merkle_keeps_its_functions() -> None:
    for name in (
        "leaf_hash",
        "node_hash",
        "root",
        "inclusion_proof",
        "consistency_proof",
        "verify_inclusion",
        "verify_consistency",
        "Frontier",
        "EMPTY_ROOT",
    ):
        assert hasattr(modelchain.merkle, name), name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        modelchain.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def _loaded_after(imports: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter holds after `import <imports>`."""
    code = f"import sys, {imports}; print([m for m in {modules!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip()))


def test_import_modelchain_loads_nothing_heavy() -> None:
    heavy = ("sklearn", "numpy", "fastapi", "psycopg", "cryptography", "modelchain.ledger", "rich")
    assert _loaded_after("modelchain", heavy) == []


def test_the_cli_and_ledger_modules_load_no_key_file_or_thread_pool_code() -> None:
    """What every `modelchain verify` pays at start-up: PEM key files and the hashing thread
    pool are loaded by the commands that use them, not by every start."""
    imports = "modelchain.cli.commands, modelchain.ledgers, modelchain.use.check"
    modules = ("cryptography.hazmat.primitives.serialization", "concurrent.futures")
    assert _loaded_after(imports, modules) == []
