"""Shared fixtures for the end-to-end tests: a private MODELCHAIN_HOME, a work directory, the
real `modelchain` command run as a subprocess, and one trained Iris model per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from modelchain.log.home import Home

REPO = Path(__file__).resolve().parents[1]
MODEL_FILE = "iris_model.joblib"

# Variables that would change which ledger or key the CLI uses behind the test's back.
_SCRUB = ("MODELCHAIN_LEDGER", "MODELCHAIN_VERIFIER_KEY", "MODELCHAIN_DEBUG")


class Result(NamedTuple):
    code: int
    stdout: str
    stderr: str


Run = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MODELCHAIN_HOME, set in os.environ, outside the work directory."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("MODELCHAIN_HOME", str(path))
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """A fresh current directory (sibling of the home, never inside it)."""
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _run(argv: list[str], cwd: Path, timeout: float, input: str | None, **env: str) -> Result:
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=_env(**env),
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run(workdir: Path) -> Run:
    """`run("register", "m.joblib", cwd=..., input=..., timeout=...)` runs the real CLI."""

    def runner(
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 60,
        **env: str,
    ) -> Result:
        argv = [sys.executable, "-m", "modelchain", *map(str, args)]
        return _run(argv, cwd or workdir, timeout, input, **env)

    return runner


@pytest.fixture
def run_script(workdir: Path) -> Run:
    """`run_script("main.py")` runs one of the repository's seed scripts in the work dir."""

    def runner(name: str, cwd: Path | None = None, timeout: float = 120) -> Result:
        return _run([sys.executable, str(REPO / name)], cwd or workdir, timeout, None)

    return runner


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the seed's Iris model once per session (copy it with the `model` fixture)."""
    from modelchain.use.seed import train

    directory = tmp_path_factory.mktemp("trained")
    train(directory)
    return directory / MODEL_FILE


@pytest.fixture
def model(trained_model: Path, workdir: Path) -> Path:
    """A private copy of the trained model, as ./iris_model.joblib in the work dir."""
    path = workdir / MODEL_FILE
    shutil.copyfile(trained_model, path)
    return path


def sha256sum(path: Path) -> str:
    """The digest the coreutils `sha256sum` tool prints for a file."""
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def assert_clean_error(result: Result, code: int | None = None, *needles: str) -> str:
    """A failure as users must see it: non-zero exit (`code` if given), no traceback, and
    exactly one line on stderr starting with "modelchain: error:" (containing `needles`).
    Returns that line."""
    assert_no_traceback(result)
    if code is None:
        assert result.code != 0, result
    else:
        assert result.code == code, result
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, f"want one line on stderr, got {result.stderr!r}"
    line = lines[0]
    assert line.startswith("modelchain: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def assert_ok(result: Result) -> Result:
    assert_no_traceback(result)
    assert result.code == 0, result
    return result


def make_ledger(location: Path, *models: Path | tuple[Path, str]) -> None:
    """Register `models` (a path, or (path, name)) into a new ledger at `location`, through
    the library (faster than the CLI), with the operator key in the current MODELCHAIN_HOME.
    Each one appends a block, a repeat of the same bytes too (`force`)."""
    from modelchain import Ledger

    with Ledger.open(location, create=True) as ledger:
        ledger.init()
        for item in models:
            path, name = item if isinstance(item, tuple) else (item, None)
            ledger.register(path, name=name, force=True)


def snapshot(*paths: Path) -> dict[str, bytes | None]:
    """The bytes of each file (None if missing), to prove a failed command changed nothing."""
    return {str(p): p.read_bytes() if p.exists() else None for p in paths}


@contextlib.contextmanager
def db(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to a ledger file, as an attacker (or a curious user) has;
    commits on leaving the block."""
    conn = sqlite3.connect(path)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


# -- PostgreSQL ------------------------------------------------------------------------------

PG_DSN_VAR = "MODELCHAIN_TEST_PG_DSN"
PG_SKIP_REASON = f"{PG_DSN_VAR} is not set (PostgreSQL tests need a server)"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN; the test is skipped (never silently passed) when it is unset."""
    dsn = os.environ.get(PG_DSN_VAR, "")
    if not dsn:
        pytest.skip(PG_SKIP_REASON)
    return dsn


@pytest.fixture
def pg_ledger(pg_dsn: str) -> Iterator[str]:
    """A `postgresql://...?schema=...` ledger location in a fresh schema of its own (other
    test runs may share the server), dropped afterwards."""
    import secrets

    import psycopg

    schema = f"mc_test_{secrets.token_hex(6)}"
    sep = "&" if "?" in pg_dsn else "?"
    yield f"{pg_dsn}{sep}schema={schema}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_schema(location: str) -> str:
    """The schema a postgresql:// ledger location names."""
    from modelchain.log.store.postgres import PgLocation

    return PgLocation(location).schema


@contextlib.contextmanager
def pg_sql(location: str) -> Iterator[Any]:
    """A plain psycopg connection to the ledger's database, as an attacker (or a DBA) has."""
    import psycopg

    from modelchain.log.store.postgres import PgLocation

    with psycopg.connect(PgLocation(location).conninfo, autocommit=True) as conn:
        yield conn


def without_index(note: str, home: Home | Path | str) -> str:
    """`note`'s checkpoint re-signed by the operator key of `home` without its index line,
    as a ledger made before the index signed it; the trust state of `home` is set back to it
    (as a verifier that only ever saw the old ledger)."""
    from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint

    home = home if isinstance(home, Home) else Home(home)
    checkpoint = Checkpoint.parse(parse_note(note).text)
    kept = tuple(e for e in checkpoint.extensions if not e.startswith("modelchain-index/"))
    old = Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root_hash, kept)
    legacy = sign_checkpoint(old, home.operator_signer().with_name(checkpoint.origin))
    home.trust.flush()  # nothing deferred may overwrite what is set here
    home.trust._origin_file(checkpoint.origin).write_text(legacy, encoding="utf-8")
    return legacy
