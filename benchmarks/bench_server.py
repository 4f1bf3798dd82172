"""Load-test `modelchain serve` on loopback: registrations/s and verifications/s, p50/p99.

    .venv/bin/python benchmarks/bench_server.py [--quick] [--seconds 5] [--clients 64]
                                                [--pg postgresql://...] [--workers 1 2]

For each backend (SQLite; PostgreSQL when --pg or MODELCHAIN_TEST_PG_DSN is given) and each
worker count, a real server is started in a subprocess over a fresh ledger, then driven by
a light load generator: asyncio with raw HTTP/1.1 keep-alive connections (a full HTTP client
library would spend more CPU than the server on this 2-core machine). Phase 1 registers new
digests for `--seconds` (every answer must be a 201); phase 2 asks /verify about them (every
answer must say verified). Targets: >= 1,000 registrations/s on PostgreSQL, >= 3,000
verifications/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REG_TARGET = 1000.0
VERIFY_TARGET = 3000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Phase:
    ok: int = 0
    bad: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


def _post(path: str, body: dict, token: str | None) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def drive(
    port: int,
    clients: int,
    seconds: float,
    make: object,
    expect: object,
) -> Phase:
    """`clients` connections, each sending `make(client, i)` requests back to back."""
    phase = Phase()
    stop_at = time.perf_counter() + seconds

    async def client(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        try:
            while time.perf_counter() < stop_at:
                raw = make(c, i)  # type: ignore[operator]
                t0 = time.perf_counter()
                status, body = await _request(reader, writer, raw)
                phase.latencies.append(time.perf_counter() - t0)
                if expect(status, body):  # type: ignore[operator]
                    phase.ok += 1
                else:
                    phase.bad += 1
                i += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    phase.seconds = time.perf_counter() - started
    return phase


def run_config(
    label: str, location: str | None, workers: int, clients: int, seconds: float, tmp: Path
) -> list[tuple[str, Phase, float]]:
    home = tmp / f"home-{label}-{workers}"
    if location is None:
        location = str(tmp / f"data-{label}-{workers}" / "ledger.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCHAIN_")}
    env["MODELCHAIN_HOME"] = str(home)
    from modelchain import Ledger
    from modelchain.home import Home
    from modelchain.server.tokens import TokenStore

    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()
    token = TokenStore(Home(home)).create("write", "bench")[0]
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelchain",
            "--ledger",
            location,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()}")
            time.sleep(0.1)
        time.sleep(0.5 * workers)  # let every worker finish starting
        salt = secrets.token_hex(4)
        registered: list[list[str]] = [[] for _ in range(clients)]

        def digest(c: int, i: int) -> str:
            return hashlib.sha256(f"{salt}-{c}-{i}".encode()).hexdigest()

        def make_reg(c: int, i: int) -> bytes:
            d = digest(c, i)
            registered[c].append(d)
            return _post("/api/v1/entries", {"name": f"model-{c}-{i}", "digest": d}, token)

        reg = asyncio.run(drive(port, clients, seconds, make_reg, lambda s, _b: s == 201))

        def make_verify(c: int, i: int) -> bytes:
            n = len(registered[c])
            j = i % n if n else 0
            return _post("/api/v1/verify", {"name": f"model-{c}-{j}", "digest": digest(c, j)}, None)

        ver = asyncio.run(
            drive(
                port,
                clients,
                seconds,
                make_verify,
                lambda s, b: s == 200 and b'"verified":true' in b,
            )
        )
        return [
            (
                f"{label}, {workers} worker{'s' if workers > 1 else ''}: registrations/s",
                reg,
                REG_TARGET if label == "postgresql" else 0.0,
            ),
            (
                f"{label}, {workers} worker{'s' if workers > 1 else ''}: verifications/s",
                ver,
                VERIFY_TARGET,
            ),
        ]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s phases.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each phase.")
    parser.add_argument("--clients", type=int, default=64, help="Concurrent connections.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--pg",
        default=os.environ.get("MODELCHAIN_TEST_PG_DSN"),
        help="PostgreSQL DSN (default: $MODELCHAIN_TEST_PG_DSN).",
    )
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rows: list[tuple[str, Phase, float]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-server-") as tmp:
        backends: list[tuple[str, str | None]] = [("sqlite", None)]
        if args.pg:
            sep = "&" if "?" in args.pg else "?"
            backends.append(("postgresql", f"{args.pg}{sep}schema=bench_{secrets.token_hex(4)}"))
        else:
            notes.append("note: PostgreSQL skipped (pass --pg DSN or set MODELCHAIN_TEST_PG_DSN)")
        for label, location in backends:
            for workers in args.workers:
                loc = location
                if loc is not None and workers > 1:  # a fresh schema per run
                    loc = loc.rsplit("schema=", 1)[0] + f"schema=bench_{secrets.token_hex(4)}"
                try:
                    rows += run_config(label, loc, workers, args.clients, seconds, Path(tmp))
                except Exception as exc:  # report and go on with the other configurations
                    notes.append(f"error: {label}, {workers} workers: {exc}")
    print(
        f"\nmodelchain serve on loopback, {args.clients} clients, {seconds:g} s per phase, "
        f"{os.cpu_count()} CPUs (load generator on the same machine)"
    )
    print(f"{'measurement':48} {'rate':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  status")
    print("-" * 92)
    for name, phase, target in rows:
        if target:
            status = (
                f"PASS (>= {target:,.0f})" if phase.rate() >= target else f"MISS (< {target:,.0f})"
            )
        else:
            status = "info"
        print(
            f"{name:48} {phase.rate():9,.0f} {phase.pct(50):8.2f} {phase.pct(99):8.2f} "
            f"{phase.bad:7d}  {status}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
