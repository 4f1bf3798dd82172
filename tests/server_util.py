"""Real `modelchain serve` processes for the server tests: started on a free loopback port,
waited for, and stopped by process id."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PG_ENV = "MODELCHAIN_TEST_PG_DSN"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCHAIN_")}
    env["MODELCHAIN_HOME"] = str(home)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@dataclass
class Server:
    url: str
    ledger: str
    home: Path
    proc: subprocess.Popen[str]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def token(self, scope: str = "write") -> str:
        """A token of `scope`, made through the library (the CLI is tested on its own)."""
        if scope not in self.tokens:
            from modelchain.log.home import Home
            from modelchain.server.tokens import TokenStore

            self.tokens[scope] = TokenStore(Home(self.home)).create(scope, f"test-{scope}")[0]
        return self.tokens[scope]

    def auth(self, scope: str = "write") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope)}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30)


def init_ledger(location: str, home: Path) -> None:
    from modelchain import Ledger

    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()


@contextlib.contextmanager
def running_server(
    location: str, home: Path, *extra: str, cwd: Path | None = None
) -> Iterator[Server]:
    """Start `modelchain serve`, wait until /health answers, stop it by pid afterwards."""
    port = free_port()
    argv = [sys.executable, "-m", "modelchain", "--ledger", location, "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, *extra],
        cwd=cwd or home.parent,
        env=server_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start in 30 s")
            time.sleep(0.1)
        yield Server(url, location, home, proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def pg_location(schema: str) -> str | None:
    """A PostgreSQL ledger location in a fresh schema, or None when no test DSN is set."""
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        return None
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}schema={schema}"


def drop_schema(location: str) -> None:
    """Remove a test's PostgreSQL schema (other runs may share the server)."""
    import psycopg

    dsn, _, schema = location.rpartition("schema=")
    with psycopg.connect(dsn.rstrip("?&"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


#: the backends a server test runs on: SQLite always, PostgreSQL when a test DSN is set
BACKENDS = [
    "sqlite",
    pytest.param(
        "pg",
        marks=pytest.mark.skipif(
            not os.environ.get(PG_ENV), reason=f"{PG_ENV} is not set (no PostgreSQL to test)"
        ),
    ),
]


def served_backend(backend: str, tmp_path: Path, prefix: str) -> Iterator[Server]:
    """A fresh, initialised ledger of `backend` served by a real server; a PostgreSQL schema
    (named `prefix` + random) is dropped afterwards."""
    home = tmp_path / "srv-home"
    if backend == "pg":
        location = pg_location(prefix + secrets.token_hex(6))
        assert location is not None
    else:
        location = str(tmp_path / "srv-data" / "ledger.db")
    init_ledger(location, home)
    try:
        with running_server(location, home) as server:
            yield server
    finally:
        if backend == "pg":
            drop_schema(location)
