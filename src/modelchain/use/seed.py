"""The course demo that modelchain grew from, kept working word for word.

`train_model.py` trains Logistic Regression on Iris and saves `iris_model.joblib`; `main.py`
registers its SHA-256 in `blockchain_data.json` on the first run and checks it on every later
run. Both are thin wrappers over the functions here, which use the real ledger: the JSON file
is the seed's format, and a signed checkpoint beside it is what makes a consistently
recomputed chain detectable. `run_demo` tells the whole story, attacks included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

MODEL_FILE = "iris_model.joblib"
LEDGER_FILE = "blockchain_data.json"
#: what train_model.py knows about the model it made (an in-toto statement); main.py records it
PROVENANCE_FILE = "iris_model.provenance.json"

VERIFIED = "Model Integrity Verified ✅"
TAMPERED = "Model Tampered ❌"
UNVERIFIED = "Model Integrity Unverified ⚠️ (the blockchain is not valid)"


def train(directory: str | os.PathLike[str] = ".", *, max_iter: int = 200) -> float:
    """Train Logistic Regression on the Iris data bundled with scikit-learn; save it with
    joblib, and its provenance beside it (`PROVENANCE_FILE`); return the test accuracy."""
    try:
        import joblib
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        from modelchain.core.errors import UsageError, install_way_out

        raise UsageError(
            "training needs scikit-learn: install the 'sklearn' extra",
            way_out=install_way_out("sklearn"),
        ) from exc
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    model = LogisticRegression(max_iter=max_iter)
    model.fit(x_train, y_train)
    joblib.dump(model, Path(directory) / MODEL_FILE)
    accuracy = float(model.score(x_test, y_test))
    _write_provenance(Path(directory), x, y, model.get_params(), accuracy)
    return accuracy


def _write_provenance(
    directory: Path, x: Any, y: Any, params: dict[str, Any], accuracy: float
) -> None:
    """An in-toto statement about the saved model: which data (the digest of the arrays'
    bytes, with their dtype and shape), which hyperparameters, what test accuracy."""
    import hashlib

    from modelchain.claims.provenance import Provenance, collect, statement
    from modelchain.fs.digest import hash_file

    data = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    predicate = {
        "trainingData": [
            {
                "name": "sklearn.datasets.load_iris",
                "digest": {"sha256": data},
                "encoding": "X.tobytes() + y.tobytes()",
                "arrays": {
                    "X": {"dtype": str(x.dtype), "shape": list(x.shape)},
                    "y": {"dtype": str(y.dtype), "shape": list(y.shape)},
                },
                "split": {"test_size": 0.2, "random_state": 42},
            }
        ],
        "hyperparameters": {
            "model": "sklearn.linear_model.LogisticRegression",
            **_jsonable(params),
        },
        "metrics": {"test_accuracy": accuracy},
    }
    model = directory / MODEL_FILE
    full = collect(model, base=Provenance.from_json(predicate))
    assert full is not None
    text = json.dumps(statement(MODEL_FILE, hash_file(model).sha256, full.predicate), indent=2)
    (directory / PROVENANCE_FILE).write_text(text + "\n", encoding="utf-8")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """get_params() as JSON: numbers, strings, booleans and None as they are, others as text."""
    import math

    def plain(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        return value is None or isinstance(value, bool | int | str)

    return {key: value if plain(value) else repr(value) for key, value in params.items()}


def training_provenance(model: Path) -> Any:
    """The statement train_model.py wrote beside `model`, if it is there, readable, and
    about these very bytes; else None (the first registration then records none)."""
    from modelchain.claims.provenance import Provenance
    from modelchain.core.errors import ModelchainError
    from modelchain.fs.digest import hash_file

    path = model.parent / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        provenance = Provenance.load(path)
        provenance.check_subject(hash_file(model).sha256)
    except ModelchainError:
        return None
    return provenance


def train_main() -> int:
    """`python train_model.py`."""
    from modelchain.core.errors import ModelchainError, command_line_text

    try:
        accuracy = train(".")
    except ModelchainError as exc:
        print(f"error: {command_line_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:
        return _not_installed(exc, "train_model.py")
    print(f"Model trained (test accuracy {accuracy:.2f}) and saved to {MODEL_FILE}")
    return 0


def check(directory: str | os.PathLike[str] = ".", out: TextIO | None = None) -> bool:
    """`python main.py`: register the model on the first run, verify it on later runs.

    Prints the seed's lines. Returns True when the model is verified (or was just registered)
    and the blockchain is valid.
    """
    from modelchain.core.errors import (
        InputError,
        LedgerUnreadable,
        ModelchainError,
        ModelMismatch,
        NotRegistered,
        command_line_text,
    )
    from modelchain.ledgers import Ledger

    out = out or sys.stdout
    directory = Path(directory)
    model = directory / MODEL_FILE
    say: Callable[[str], None] = lambda line: print(line, file=out)  # noqa: E731
    if not model.is_file():
        raise InputError(f"{model} not found: run `python train_model.py` first")
    ledger_path = directory / LEDGER_FILE
    try:
        ledger = Ledger.open(ledger_path, create=True)
    except ModelchainError as exc:
        say(f"Is Blockchain Valid? False\nReason: {command_line_text(exc)}")
        return False
    with ledger:
        valid, model_ok, reason = True, False, ""
        try:
            if not ledger.store.exists():
                block = ledger.register(
                    model, name=MODEL_FILE, provenance=training_provenance(model)
                )
                say(f"Model hash stored in block {block.index}: {block.model_hash}")
                ledger.audit()
                model_ok = True
            else:
                ledger.verify(model, name=MODEL_FILE)
                model_ok = True
                say(VERIFIED)
        except (ModelMismatch, NotRegistered):
            say(TAMPERED)
        except LedgerUnreadable as exc:  # blockchain_data.json is not even valid JSON
            valid, reason = False, command_line_text(exc)
            say(UNVERIFIED)
        except InputError:
            raise
        except ModelchainError as exc:
            valid, reason = False, command_line_text(exc)
            say(UNVERIFIED)
        say(f"Is Blockchain Valid? {valid}")
        if reason:
            say(f"Reason: {reason}")
        return valid and model_ok


def main() -> int:
    """`python main.py`: exit 0 when verified, 1 when not, 2 when it cannot run."""
    from modelchain.core.errors import ModelchainError, command_line_text

    try:
        return 0 if check(".") else 1
    except ModelchainError as exc:
        print(f"error: {command_line_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:
        return _not_installed(exc, "main.py")


def _not_installed(exc: ImportError, script: str) -> int:
    """The seed scripts run from a Python without modelchain's dependencies (outside the
    virtual environment): one line that says how to run them, not a traceback."""
    missing = exc.name or str(exc)
    print(
        f"error: {script} needs modelchain and its dependencies ({missing} is not installed "
        f"in {sys.executable}): run `make install` in the modelchain checkout, then "
        f"`.venv/bin/python {script}` (or `. .venv/bin/activate` first)",
        file=sys.stderr,
    )
    return 2


# -- the narrated demo ---------------------------------------------------------------------


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _recompute_chain(ledger_path: Path, model_hash: str) -> None:
    """The seed's weakness: swap the registered hash and recompute every block consistently."""
    from modelchain.log.block import seed_hash

    blocks = json.loads(ledger_path.read_text())
    previous = "0" * 64
    for block in blocks:
        if block["name"] == MODEL_FILE:
            block["model_hash"] = model_hash
        block["previous_hash"] = previous
        block["current_hash"] = seed_hash(
            block["index"], block["timestamp"], block["model_hash"], previous
        )
        previous = block["current_hash"]
    ledger_path.write_text(json.dumps(blocks, indent=4) + "\n")


def _show_provenance(console: Any, ledger_path: Path) -> None:
    """What the first registration recorded about how the model was made."""
    from modelchain.claims.provenance import provenance_lines
    from modelchain.ledgers import Ledger

    with Ledger.open(ledger_path) as led:
        block = led.registration(MODEL_FILE)
    if block.provenance is None:
        return
    console.print(
        f"  $ modelchain --ledger {LEDGER_FILE} show {MODEL_FILE}  [dim]# provenance[/dim]"
    )
    for line in provenance_lines(block.provenance):
        console.print(f"  {line if len(line) <= 100 else line[:99] + '…'}", markup=False)


def run_demo(directory: str | os.PathLike[str] | None = None, out: TextIO | None = None) -> bool:
    """Tell the seed story in a fresh directory, step by step; True if every step behaved."""
    from rich.console import Console

    from modelchain.fs.digest import hash_file

    console = Console(file=out or sys.stdout, highlight=False, soft_wrap=True)
    keep = directory is not None
    work = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="modelchain-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        from modelchain.core.errors import UsageError

        raise UsageError(f"{work} is not empty: the demo needs a new or empty directory")
    home = Path(tempfile.mkdtemp(prefix="modelchain-demo-home-"))
    model, ledger = work / MODEL_FILE, work / LEDGER_FILE
    results: list[bool] = []

    def step(title: str, explanation: str) -> None:
        console.print(f"\n[bold]{len(results) + 1}. {title}[/bold]")
        console.print(f"[dim]{explanation}[/dim]")

    def run_main(expect_verified: bool | None, expect_valid: bool) -> None:
        import io

        buffer = io.StringIO()
        check(work, buffer)
        text = buffer.getvalue()
        console.print("  $ python main.py")
        for line in text.splitlines():
            console.print(f"  {line}", markup=False)
        ok = f"Is Blockchain Valid? {expect_valid}" in text
        if expect_verified is True:
            ok = ok and VERIFIED in text
        elif expect_verified is False:
            ok = ok and TAMPERED in text and VERIFIED not in text
        else:
            ok = ok and VERIFIED not in text
        results.append(ok)
        console.print("  [green]as expected[/green]" if ok else "  [red]NOT as expected[/red]")

    try:
        with _environment(MODELCHAIN_HOME=str(home)):
            console.print(f"[bold]modelchain demo[/bold] in {work}")
            console.print(f"[dim]operator key and trust state in {home}[/dim]")
            step("Train", "Logistic Regression on the Iris data set bundled with scikit-learn.")
            accuracy = train(work)
            console.print(
                f"  $ python train_model.py\n  saved {MODEL_FILE}, accuracy {accuracy:.2f}"
            )
            results.append(model.is_file())

            step("Register", "First run of main.py: hash the model, store it in a block, sign.")
            run_main(expect_verified=None, expect_valid=True)
            results[-1] = results[-1] and ledger.exists()
            _show_provenance(console, ledger)

            step("Verify", "Second run, nothing touched.")
            run_main(expect_verified=True, expect_valid=True)

            original = model.read_bytes()
            step("Attack 1: edit the model", "One byte appended to iris_model.joblib.")
            model.write_bytes(original + b"\0")
            run_main(expect_verified=False, expect_valid=True)
            model.write_bytes(original)

            saved = ledger.read_text()
            step(
                "Attack 2: edit the ledger", "A block's timestamp changed in blockchain_data.json."
            )
            blocks = json.loads(saved)
            blocks[0]["timestamp"] = blocks[0]["timestamp"] + 1
            ledger.write_text(json.dumps(blocks, indent=4) + "\n")
            run_main(expect_verified=None, expect_valid=False)
            ledger.write_text(saved)

            step(
                "Attack 3: swap the model and recompute the whole chain",
                "The seed's weakness: every current_hash recomputed consistently. "
                "Only the signed checkpoint catches it.",
            )
            model.write_bytes(original + b"backdoor")
            _recompute_chain(ledger, hash_file(model).sha256)
            run_main(expect_verified=None, expect_valid=False)
            model.write_bytes(original)
            ledger.write_text(saved)

            step(
                "Attack 4: roll the ledger back",
                "A second version is registered, then the older, validly signed files restored.",
            )
            old_sidecar = Path(str(ledger) + ".checkpoint").read_text()
            accuracy = train(work, max_iter=150)
            from modelchain.ledgers import Ledger

            with Ledger.open(ledger) as led:
                block = led.register(model, name=MODEL_FILE)
            console.print(f"  registered {block.label}")
            ledger.write_text(saved)
            Path(str(ledger) + ".checkpoint").write_text(old_sidecar)
            run_main(expect_verified=None, expect_valid=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    passed = all(results)
    console.print(
        f"\n[bold]{'All steps behaved as expected.' if passed else 'Some steps did not behave.'}"
        "[/bold]"
    )
    return passed
