"""Load-test `modelchain serve` on loopback: registrations/s and verifications/s, p50/p99.

    .venv/bin/python benchmarks/bench_server.py [--quick] [--seconds 10] [--clients 64]
        [--pg postgresql://...] [--workers 1 2] [--generator auto|wrk|python] [--models 1000]

For each backend (SQLite; PostgreSQL when --pg or MODELCHAIN_TEST_PG_DSN is given) and each
worker count, a real `modelchain serve` is started over a fresh ledger (PostgreSQL: a fresh
`bench_<random>` schema, dropped afterwards) that already holds `--models` models, each
registered twice (v1, v2). Then, for `--seconds` each:

- health: GET /api/v1/health, the service's cheapest endpoint (the reference);
- registrations: POST /api/v1/entries, a new name and digest in every request; every answer
  must be a 201, and afterwards the ledger must hold exactly the acknowledged entries;
- verifications: POST /api/v1/verify over all the models: 70 % the newest digest (verified),
  15 % the older v1 digest (older_version), 12 % an unknown digest (digest_mismatch), 3 % an
  unregistered name -- not one cached answer. Before the timed phase a sample of answers of
  each kind is checked in full (reason, and the inclusion proof against the signed
  checkpoint, with the operator's key).

The load generator is `wrk` (Debian package; `tools/ensure-wrk` installs it) with a Lua
script for the POST bodies: it costs far less CPU than any Python client, which matters on a
2-core machine where client and server share the cores. Without wrk, a Python asyncio client
with raw keep-alive HTTP/1.1 is used (its figures are lower: it competes for the CPUs). The
ceiling row is wrk against a trivial ASGI app under the same uvicorn (uvloop, httptools) with
the same worker count: no framework, no ledger. Targets: >= 1,000 registrations/s on
PostgreSQL, >= 3,000 verifications/s. The script reports; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REG_TARGET = 1000.0
VERIFY_TARGET = 3000.0
# the verification mix: shares of newest / older / unknown digest; the rest: unknown names
MIX = (0.70, 0.15, 0.12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Result:
    """One timed phase."""

    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0  # transport errors and unexpected statuses
    extra: dict[str, int] = field(default_factory=dict)

    def rate(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


# -- names and digests the Lua scripts and Python agree on --------------------------------


@dataclass(frozen=True)
class Corpus:
    """`models` names, each with a v1 and a v2 digest; all derived from random salts."""

    models: int
    salt_v1: str  # 56 hex: digest = salt + %08x(i)
    salt_v2: str
    salt_bad: str
    salt_reg: str  # 48 hex: registration digests = salt + %02x(thread) + %014x(n)
    run: str  # 8 hex: keeps names unique across runs on one database

    @classmethod
    def new(cls, models: int) -> Corpus:
        return cls(
            models,
            secrets.token_hex(28),
            secrets.token_hex(28),
            secrets.token_hex(28),
            secrets.token_hex(24),
            secrets.token_hex(4),
        )

    def name(self, i: int) -> str:
        return f"bench-{self.run}-{i}"

    def v1(self, i: int) -> str:
        return f"{self.salt_v1}{i:08x}"

    def v2(self, i: int) -> str:
        return f"{self.salt_v2}{i:08x}"


LUA_COMMON = r"""
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local totals = {}
  for _, t in ipairs(threads) do
    for _, key in ipairs(COUNTERS) do
      totals[key] = (totals[key] or 0) + (t:get(key) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d status_errors=%d",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
  for _, key in ipairs(COUNTERS) do io.write(string.format(" %s=%d", key, totals[key])) end
  io.write("\n")
end
"""

LUA_HEALTH = (
    LUA_COMMON
    + r"""
COUNTERS = {}
"""
)

LUA_REGISTER = (
    LUA_COMMON
    + r"""
COUNTERS = {"created"}
local salt, run, token = "@SALT@", "@RUN@", "@TOKEN@"
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
function init(args)
  n = 0
  created = 0
end
function request()
  n = n + 1
  local body = string.format('{"name":"reg-%s-%d-%d","digest":"%s%02x%014x"}',
    run, id, n, salt, id, n)
  return wrk.format("POST", "/api/v1/entries", headers, body)
end
function response(status, headers, body)
  if status == 201 then created = created + 1 end
end
"""
)

LUA_VERIFY = (
    LUA_COMMON
    + r"""
COUNTERS = {"verified", "refused"}
local models, run = @MODELS@, "@RUN@"
local v1, v2, bad = "@V1@", "@V2@", "@BAD@"
local newest, older, unknown = @MIX@
local headers = {["Content-Type"] = "application/json"}
function init(args)
  math.randomseed(id * 7919 + 17)
  verified = 0
  refused = 0
end
function request()
  local i = math.random(0, models - 1)
  local r = math.random()
  local name, digest = string.format("bench-%s-%d", run, i), nil
  if r < newest then
    digest = string.format("%s%08x", v2, i)
  elseif r < newest + older then
    digest = string.format("%s%08x", v1, i)
  elseif r < newest + older + unknown then
    digest = string.format("%s%08x", bad, math.random(0, 2147483647))
  else
    name = string.format("nobody-%s-%d", run, i)
    digest = string.format("%s%08x", v2, i)
  end
  local body = string.format('{"name":"%s","digest":"%s"}', name, digest)
  return wrk.format("POST", "/api/v1/verify", headers, body)
end
function response(status, headers, body)
  if string.find(body, '"verified":true', 1, true) then
    verified = verified + 1
  elseif string.find(body, '"verified":false', 1, true) then
    refused = refused + 1
  end
end
"""
)

RESULT = re.compile(r"^RESULT (.*)$", re.M)


def run_wrk(wrk: str, url: str, script: str, seconds: float, clients: int, tmp: Path) -> Result:
    path = tmp / f"script-{secrets.token_hex(4)}.lua"
    path.write_text(script)
    cmd = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", str(path), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    found = RESULT.search(out.stdout)
    if found is None:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in found.group(1).split())}
    return Result(
        requests=fields.pop("requests"),
        seconds=fields.pop("duration_us") / 1e6,
        p50_ms=fields.pop("p50_us") / 1000,
        p99_ms=fields.pop("p99_us") / 1000,
        errors=fields.pop("errors") + fields.pop("status_errors"),
        extra=fields,
    )


# -- the Python fallback generator ---------------------------------------------------------


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


def _raw(method: str, path: str, body: dict | None, token: str | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    kind = "Content-Type: application/json\r\n" if body is not None else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{kind}{auth}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def run_python(
    port: int,
    clients: int,
    seconds: float,
    make: Callable[[int, int], bytes],
    classify: Callable[[int, bytes], str | None],
) -> Result:
    """`clients` keep-alive connections, each sending `make(client, i)` back to back;
    `classify` names a counter for each answer, or None for an error."""
    latencies: list[float] = []
    counts: dict[str, int] = {}
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(c: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        try:
            while time.perf_counter() < stop_at:
                raw = make(c, i)
                t0 = time.perf_counter()
                status, body = await _request(reader, writer, raw)
                latencies.append(time.perf_counter() - t0)
                kind = classify(status, body)
                if kind is None:
                    errors += 1
                else:
                    counts[kind] = counts.get(kind, 0) + 1
                i += 1
        finally:
            writer.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    values = sorted(latencies)

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else 0.0

    return Result(len(values), elapsed, pct(50), pct(99), errors, counts)


# -- one configuration --------------------------------------------------------------------


@dataclass
class Row:
    name: str
    result: Result
    target: float
    reference: float | None  # the health rate of the same configuration


def preload(location: str, home: Path, corpus: Corpus) -> None:
    """`init`, then v1 and v2 of every model, through the library (not timed)."""
    from modelchain import Ledger

    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.init()
        for version in (1, 2):
            digest = corpus.v1 if version == 1 else corpus.v2
            entries = [
                ledger.prepare(name=corpus.name(i), model_hash=digest(i), size=i)
                for i in range(corpus.models)
            ]
            for start in range(0, len(entries), 500):
                ledger.append_many(entries[start : start + 500])


@contextmanager
def server(argv: list[str], env: dict[str, str], port: int, workers: int) -> Iterator[None]:
    import httpx

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                assert proc.stderr is not None
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
        time.sleep(0.5 * workers)  # let every worker finish starting
        yield
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def expected_reason(corpus: Corpus, kind: str) -> str | None:
    return {"newest": None, "older": "older_version", "bad": "digest_mismatch"}.get(
        kind, "not_registered"
    )


def verify_request(corpus: Corpus, rng: random.Random) -> tuple[str, str, str]:
    i = rng.randrange(corpus.models)
    r = rng.random()
    if r < MIX[0]:
        return "newest", corpus.name(i), corpus.v2(i)
    if r < MIX[0] + MIX[1]:
        return "older", corpus.name(i), corpus.v1(i)
    if r < sum(MIX):
        return "bad", corpus.name(i), f"{corpus.salt_bad}{rng.getrandbits(31):08x}"
    return "unknown", f"nobody-{corpus.run}-{i}", corpus.v2(i)


def check_answers(port: int, corpus: Corpus, home: Path, n: int = 200) -> None:
    """Every kind of verification answer, checked in full: reason, and for every answer that
    carries one, the inclusion proof against the checkpoint signed by the operator key."""
    import httpx

    from modelchain.core import merkle
    from modelchain.core.note import open_checkpoint
    from modelchain.log.home import Home

    rng = random.Random(1)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1") as c:
        origin = c.get("/log").json()["origin"]
        # the operator's own key, from its home: not the key the server says it has
        key = Home(home).operator_signer(create=False).with_name(origin).verifier()
        for _ in range(n):
            kind, name, digest = verify_request(corpus, rng)
            answer = c.post("/verify", json={"name": name, "digest": digest}).json()
            want = expected_reason(corpus, kind)
            if answer["reason"] != want or answer["verified"] != (want is None):
                raise RuntimeError(f"wrong answer for {kind} {name}: {answer['reason']}")
            proof = answer["inclusion_proof"]
            if kind == "unknown":
                continue
            checkpoint = open_checkpoint(answer["checkpoint"], key)
            entry = answer["entry"]
            leaf = merkle.leaf_hash(entry["data"].encode())
            if entry["block"]["model_hash"] != corpus.v2(int(name.rsplit("-", 1)[1])):
                raise RuntimeError(f"{name}: the newest entry is not v2")
            merkle.verify_inclusion(
                entry["index"],
                checkpoint.size,
                leaf,
                [bytes.fromhex(h) for h in proof["hashes"]],
                checkpoint.root_hash,
            )


def run_config(
    label: str,
    location: str | None,
    workers: int,
    args: argparse.Namespace,
    wrk: str | None,
    tmp: Path,
    ceiling_rate: float | None = None,
) -> list[Row]:
    home = tmp / f"home-{label}-{workers}"
    if location is None:
        location = str(tmp / f"data-{label}-{workers}" / "ledger.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCHAIN_")}
    env["MODELCHAIN_HOME"] = str(home)
    from modelchain.log.home import Home
    from modelchain.server.tokens import TokenStore

    corpus = Corpus.new(args.models)
    preload(location, home, corpus)
    token = TokenStore(Home(home)).create("write", "bench")[0]
    port = free_port()
    argv = [sys.executable, "-m", "modelchain", "--ledger", location, "serve"]
    argv += ["--port", str(port), "--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    seconds, clients = args.seconds, args.clients
    what = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
    import httpx

    with server(argv, env, port, workers):
        check_answers(port, corpus, home)
        size_before = httpx.get(base + "/api/v1/health").json()["size"]
        if wrk:
            health = run_wrk(wrk, base + "/api/v1/health", LUA_HEALTH, seconds, clients, tmp)
            reg_script = (
                LUA_REGISTER.replace("@SALT@", corpus.salt_reg)
                .replace("@RUN@", corpus.run)
                .replace("@TOKEN@", token)
            )
            reg = run_wrk(wrk, base + "/api/v1/entries", reg_script, seconds, clients, tmp)
            created = reg.extra.get("created", 0)
            ver_script = (
                LUA_VERIFY.replace("@MODELS@", str(corpus.models))
                .replace("@RUN@", corpus.run)
                .replace("@V1@", corpus.salt_v1)
                .replace("@V2@", corpus.salt_v2)
                .replace("@BAD@", corpus.salt_bad)
                .replace("@MIX@", ", ".join(str(x) for x in MIX))
            )
            ver = run_wrk(wrk, base + "/api/v1/verify", ver_script, seconds, clients, tmp)
        else:
            health_raw = _raw("GET", "/api/v1/health", None)
            health = run_python(
                port,
                clients,
                seconds,
                lambda c, i: health_raw,
                lambda s, b: "ok" if s == 200 else None,
            )

            def make_reg(c: int, i: int) -> bytes:
                digest = f"{corpus.salt_reg}{c:02x}{i:014x}"
                body = {"name": f"reg-{corpus.run}-{c}-{i}", "digest": digest}
                return _raw("POST", "/api/v1/entries", body, token)

            reg = run_python(
                port, clients, seconds, make_reg, lambda s, b: "created" if s == 201 else None
            )
            created = reg.extra.get("created", 0)
            rngs = [random.Random(c) for c in range(clients)]

            def make_verify(c: int, i: int) -> bytes:
                _kind, name, digest = verify_request(corpus, rngs[c])
                return _raw("POST", "/api/v1/verify", {"name": name, "digest": digest})

            def classify(status: int, body: bytes) -> str | None:
                if status != 200:
                    return None
                return "verified" if b'"verified":true' in body else "refused"

            ver = run_python(port, clients, seconds, make_verify, classify)
        size_after = httpx.get(base + "/api/v1/health").json()["size"]
    # the load generator stops with up to one request per connection in flight: those may
    # be committed without their answer being read, never the other way round
    grown = size_after - size_before
    if not created <= grown <= created + clients:
        reg.errors += max(1, abs(grown - created))
        print(
            f"error: {what}: {created} registrations acknowledged, but the ledger grew by {grown}",
            file=sys.stderr,
        )
    share = ver.extra.get("verified", 0) / max(1, ver.requests)
    print(
        f"{what}: {created} registrations acknowledged, the ledger grew by {grown}; "
        f"{share:.0%} of verifications verified (mix: {MIX[0]:.0%})",
        file=sys.stderr,
    )
    reg_target = REG_TARGET if label == "postgresql" else 0.0
    h = health.rate()
    return [
        Row(f"{what}: health (reference)", health, 0.0, ceiling_rate),
        Row(f"{what}: registrations/s", reg, reg_target, h),
        Row(f"{what}: verifications/s", ver, VERIFY_TARGET, h),
    ]


CEILING_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""


def ceiling(wrk: str, workers: int, args: argparse.Namespace, tmp: Path) -> Row:
    """wrk against a trivial ASGI app on the same uvicorn set-up: the framework's ceiling."""
    (tmp / "ceiling_app.py").write_text(CEILING_APP)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(tmp)]
    argv += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    argv += ["--no-access-log"]
    env = dict(os.environ)
    import httpx

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the ceiling app did not start") from None
                time.sleep(0.1)
        time.sleep(0.5 * workers)
        url = f"http://127.0.0.1:{port}/"
        result = run_wrk(wrk, url, LUA_HEALTH, args.seconds, args.clients, tmp)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    what = f"{workers} worker{'s' if workers > 1 else ''}"
    return Row(f"ceiling: bare ASGI app, {what}", result, 0.0, None)


def drop_schema(location: str) -> None:
    import psycopg

    dsn, _, schema = location.rpartition("schema=")
    with psycopg.connect(dsn.rstrip("?&"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each phase.")
    parser.add_argument("--clients", type=int, default=64, help="Concurrent connections.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", type=int, default=1000, help="Distinct models verified.")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="Load generator (auto: wrk when installed).",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("MODELCHAIN_TEST_PG_DSN"),
        help="PostgreSQL DSN (default: $MODELCHAIN_TEST_PG_DSN).",
    )
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="One backend only.")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3.0
    wrk = shutil.which("wrk") if args.generator != "python" else None
    notes: list[str] = []
    if wrk is None:
        if args.generator == "wrk":
            parser.error("wrk is not installed (tools/ensure-wrk installs it)")
        why = "wrk not found" if args.generator == "auto" else "--generator python"
        notes.append(f"note: {why}: the Python generator shares the CPUs with the server")
    rows: list[Row] = []
    ceilings: dict[int, float] = {}  # workers -> the bare ASGI app's rate
    with tempfile.TemporaryDirectory(prefix="mc-bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        if wrk:
            for workers in args.workers:
                try:
                    rows.append(ceiling(wrk, workers, args, tmp))
                    ceilings[workers] = rows[-1].result.rate()
                except Exception as exc:
                    notes.append(f"error: ceiling, {workers} workers: {exc}")
        backends: list[tuple[str, str | None]] = []
        if args.only in (None, "sqlite"):
            backends.append(("sqlite", None))
        if args.only in (None, "postgresql"):
            if args.pg:
                backends.append(("postgresql", args.pg))
            else:
                notes.append(
                    "note: PostgreSQL skipped (pass --pg DSN or set MODELCHAIN_TEST_PG_DSN)"
                )
        for label, dsn in backends:
            for workers in args.workers:
                loc = None
                if dsn is not None:
                    sep = "&" if "?" in dsn else "?"
                    loc = f"{dsn}{sep}schema=bench_{secrets.token_hex(4)}"
                try:
                    rows += run_config(label, loc, workers, args, wrk, tmp, ceilings.get(workers))
                except Exception as exc:  # report and go on with the other configurations
                    notes.append(f"error: {label}, {workers} workers: {exc}")
                finally:
                    if loc is not None:
                        try:
                            drop_schema(loc)
                        except Exception as exc:
                            notes.append(f"warning: could not drop {loc}: {exc}")
    gen = "wrk (1 thread)" if wrk else "Python asyncio"
    print(
        f"\nmodelchain serve on loopback: {gen}, {args.clients} connections, "
        f"{args.seconds:g} s per phase, {os.cpu_count()} CPUs shared by client and server"
    )
    print(
        f"{'measurement':44} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'ratio':>7}  status"
    )
    print("-" * 100)
    for row in rows:
        r = row.result
        ratio = f"{r.rate() / row.reference:7.2f}" if row.reference else f"{'':7}"
        if row.target:
            ok = r.rate() >= row.target and r.errors == 0
            status = f"{'PASS' if ok else 'MISS'} (>= {row.target:,.0f})"
        else:
            status = "info"
        print(
            f"{row.name:44} {r.rate():8,.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:6d} "
            f"{ratio}  {status}"
        )
    print(
        "note: ratio = registrations/s or verifications/s over /health of the same server; "
        "/health over the bare ASGI app with as many workers (the framework's ceiling)"
    )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
