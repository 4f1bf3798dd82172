"""The remote client (`--ledger http://...`): against a real `modelchain serve` subprocess,
and against a lying server that answers from a script, each lie refused with its exit code."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, assert_clean_error, assert_ok
from hypothesis import given
from hypothesis import strategies as st

from modelchain.core import merkle
from modelchain.core.errors import UsageError
from modelchain.core.index import key_of
from modelchain.core.note import Checkpoint, Signer, sign_checkpoint
from modelchain.ledgers import Ledger
from modelchain.ledgers.client import normalise_url
from modelchain.log.block import build_index
from modelchain.log.home import Home

ORIGIN = "fake.example/log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_model(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# -- a real server ---------------------------------------------------------------------------


class Server:
    def __init__(self, url: str, token: str, vkey: str, proc: subprocess.Popen[str]) -> None:
        self.url, self.token, self.vkey, self.proc = url, token, vkey, proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`modelchain serve` on SQLite in a subprocess on a free loopback port, stopped by pid."""
    from modelchain.server.tokens import TokenStore

    base = tmp_path_factory.mktemp("server")
    srv_home, ledger_path = base / "home", base / "data" / "ledger.db"
    ledger_path.parent.mkdir()
    with Ledger.open(ledger_path, home=srv_home, create=True) as ledger:
        ledger.init("test.example/models")
        vkey = ledger.verifier_for("test.example/models").string()
    token, _record = TokenStore(Home(srv_home)).create("write", "test", None)
    port = free_port()
    env = {**os.environ, "MODELCHAIN_HOME": str(srv_home)}
    env.pop("MODELCHAIN_LEDGER", None)
    argv = [sys.executable, "-m", "modelchain", "serve", "--ledger", str(ledger_path)]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"modelchain serve exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("modelchain serve did not answer within 30 s")
                time.sleep(0.1)
        yield Server(url, token, vkey, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_library_prints_nothing_on_first_use(
    server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Trust on first use is data for the caller (a notice), not a line the library prints."""
    from modelchain.log.home import PinNotice

    home = Home(tmp_path / "home")
    with Ledger.open(server.url, home=home) as ledger:
        report = ledger.audit()
    assert report.origin == "test.example/models"
    assert capfd.readouterr().err == ""
    assert home.trust.notices == [PinNotice("test.example/models", server.url, server.vkey)]
    assert home.trust.pinned_key("test.example/models") == server.vkey


def test_register_verify_audit_log_checkpoint(
    server: Server, run: Run, workdir: Path, home: Path
) -> None:
    model = write_model(workdir / "m1.bin", b"the first model")
    at = ("--ledger", server.url)
    token = {"MODELCHAIN_TOKEN": server.token}

    reg = assert_ok(run(*at, "register", model, "--name", "e2e", "--json", **token))
    block = json.loads(reg.stdout)["block"]
    assert block["name"] == "e2e" and block["version"] == 1
    assert "pinned the verifier key" in reg.stderr  # trust on first use, said out loud
    pins = json.loads((home / "trust" / "pinned_keys.json").read_text())
    assert pins == {"test.example/models": server.vkey}

    ok = assert_ok(run(*at, "verify", model, "--name", "e2e", "--json"))
    assert json.loads(ok.stdout)["index"] == block["index"]
    assert ok.stderr == ""  # pinned now: no second notice

    audit = json.loads(assert_ok(run(*at, "audit", "--json")).stdout)
    assert audit["valid"] is True and audit["size"] >= 1
    assert audit["origin"] == "test.example/models"

    log = json.loads(assert_ok(run(*at, "log", "--name", "e2e", "--json")).stdout)
    assert [b["model_hash"] for b in log] == [block["model_hash"]]

    cp = json.loads(assert_ok(run(*at, "checkpoint", "--json")).stdout)
    assert cp["origin"] == "test.example/models" and cp["size"] == audit["size"]
    vkey = assert_ok(run(*at, "checkpoint", "--verifier-key")).stdout.strip()
    assert vkey == server.vkey

    # a second version: the first one's bytes are now an older version, exit 1
    newer = write_model(workdir / "m2.bin", b"the second model")
    assert_ok(run(*at, "register", newer, "--name", "e2e", **token))
    old = run(*at, "verify", model, "--name", "e2e")
    assert_clean_error(old, 1, "not the newest registered version")

    # tampered bytes: exit 1
    newer.write_bytes(b"the second model, edited")
    assert_clean_error(run(*at, "verify", newer, "--name", "e2e"), 1, "does not match")

    # proofs from the real server, checked before they are printed
    proved = assert_ok(run(*at, "prove", "inclusion", str(block["index"]), "--json"))
    proof = json.loads(proved.stdout)
    signed = json.loads(assert_ok(run(*at, "checkpoint", "--json")).stdout)
    assert proof["tree_size"] == signed["size"]
    grown = json.loads(assert_ok(run(*at, "prove", "consistency", "1", "--json")).stdout)
    assert grown["new_size"] == signed["size"]


def test_directory_model_names_the_changed_file(server: Server, run: Run, workdir: Path) -> None:
    model = workdir / "llm"
    write_model(model / "config.json", b"{}")
    write_model(model / "weights" / "part1.bin", b"weights")
    at = ("--ledger", server.url)
    key = ("--name", "llm-dir", "--key", server.vkey)
    assert_ok(run(*at, "register", model, *key, MODELCHAIN_TOKEN=server.token))
    assert_ok(run(*at, "verify", model, *key))
    (model / "weights" / "part1.bin").write_bytes(b"other weights")
    assert_clean_error(run(*at, "verify", model, *key), 1, "changed: weights/part1.bin")


def test_register_needs_a_valid_token(server: Server, run: Run, workdir: Path) -> None:
    model = write_model(workdir / "t.bin", b"token test")
    at = ("--ledger", server.url, "register", model, "--name", "tok", "--key", server.vkey)
    missing = run(*at)
    assert_clean_error(missing, 2, "MODELCHAIN_TOKEN", "token create --scope write")
    wrong = run(*at, MODELCHAIN_TOKEN="mc_not-a-real-token")
    assert_clean_error(wrong, 2, "refused the token")
    listed = run("--ledger", server.url, "log", "--name", "tok", "--json", "--key", server.vkey)
    assert json.loads(assert_ok(listed).stdout) == []  # nothing was registered


def test_wrong_key_and_refused_writes(server: Server, run: Run, home: Path) -> None:
    other = Signer.generate("test.example/models").verifier().string()
    bad = run("--ledger", server.url, "audit", "--key", other)
    assert_clean_error(bad, 1)
    assert not (home / "trust" / "pinned_keys.json").exists()  # a wrong key is not pinned
    assert_ok(run("--ledger", server.url, "audit", "--key", server.vkey))
    pins = json.loads((home / "trust" / "pinned_keys.json").read_text())
    assert pins == {"test.example/models": server.vkey}
    init = run("--ledger", server.url, "init")
    assert_clean_error(init, 2, "is a server")


# -- a lying server ------------------------------------------------------------------------


def _q(path: str, **query: Any) -> str:
    return f"/api/v1{path}?{urllib.parse.urlencode(query)}"


class FakeLog:
    """A ledger built with the library, and the answers an honest server gives about it at
    each size: tests then edit those answers into lies."""

    def __init__(self, path: Path, home: Path, models: list[tuple[Path, str]], origin: str):
        self.notes: list[str] = []
        with Ledger.open(path, home=home, create=True) as ledger:
            self.notes.append(ledger.init(origin))
            for model, name in models:
                ledger.register(model, name=name)
                self.notes.append(ledger.checkpoint())
            self.vkey = ledger.verifier_for(origin).string()
            self.entries = list(ledger.entries())
            n = len(self.entries)
            self.inclusion = {
                (i, s): ledger.inclusion_proof(i, s) for s in range(1, n + 1) for i in range(s)
            }
            self.consistency = {
                (a, b): ledger.consistency_proof(a, b) for b in range(n + 1) for a in range(b + 1)
            }
            self.roots = {s: ledger.root_hash(s) for s in range(n + 1)}
        self.origin = origin

    def entry(self, i: int) -> dict[str, Any]:
        _block, data = self.entries[i]
        return {
            "index": i,
            "leaf_hash": merkle.leaf_hash(data).hex(),
            "data": data.decode(),
            "block": json.loads(data),
        }

    def routes(self, size: int, note: str | None = None) -> dict[str, tuple[int, Any]]:
        """What an honest server answers when its signed size is `size`."""
        note = self.notes[size] if note is None else note
        out: dict[str, tuple[int, Any]] = {
            "/api/v1/log": (
                200,
                {
                    "origin": self.origin,
                    "size": size,
                    "root_hash": self.roots[size].hex(),
                    "checkpoint": note,
                    "verifier_key": self.vkey,
                },
            ),
            _q("/entries", start=0, limit=size): (
                200,
                {
                    "entries": [self.entry(i) for i in range(size)],
                    "start": 0,
                    "size": size,
                    "next": None,
                },
            ),
        }
        names: dict[str, list[int]] = {}
        for i in range(size):
            out[f"/api/v1/entries/{i}"] = (200, self.entry(i))
            names.setdefault(self.entries[i][0].name, []).append(i)
        for name, indices in names.items():
            out[_q("/search", name=name, limit=1000)] = (
                200,
                {"entries": [self.entry(i) for i in indices]},
            )
            out[_q("/proof/index", name=name)] = (200, self.name_proof(size, name, note))
            for digest in {self.entries[i][0].model_hash for i in indices}:
                out[_q("/search", name=name, digest=digest, limit=1000)] = (
                    200,
                    {
                        "entries": [
                            self.entry(i)
                            for i in indices
                            if self.entries[i][0].model_hash == digest
                        ]
                    },
                )
        for (i, s), proof in self.inclusion.items():
            out[_q("/proof/inclusion", index=i, size=s)] = (200, self.inclusion_json(i, s, proof))
        for (a, b), proof in self.consistency.items():
            out[_q("/proof/consistency", old=a, new=b)] = (
                200,
                {
                    "old": a,
                    "new": b,
                    "old_root": self.roots[a].hex(),
                    "new_root": self.roots[b].hex(),
                    "hashes": [h.hex() for h in proof],
                },
            )
        return out

    def name_proof(self, size: int, name: str, note: str | None = None) -> dict[str, Any]:
        """What an honest server answers to GET /proof/index?name= at `size`."""
        tree = build_index((json.loads(data), data) for _block, data in self.entries[:size])
        proof = tree.prove(key_of(name))
        found = [i for i in range(size) if self.entries[i][0].name == name]
        newest = found[-1] if found else None
        return {
            "name": name,
            "checkpoint": self.notes[size] if note is None else note,
            "index_proof": base64.b64encode(proof.to_bytes()).decode(),
            "entry": None if newest is None else self.entry(newest),
            "inclusion_proof": None
            if newest is None
            else self.inclusion_json(newest, size, self.inclusion[(newest, size)]),
        }

    def inclusion_json(self, i: int, s: int, proof: list[bytes]) -> dict[str, Any]:
        return {
            "index": i,
            "size": s,
            "leaf_hash": merkle.leaf_hash(self.entries[i][1]).hex(),
            "root_hash": self.roots[s].hex(),
            "hashes": [h.hex() for h in proof],
        }

    def registered(self, i: int) -> dict[str, Any]:
        """The answer to the POST that appended entry `i`."""
        s = i + 1
        return {
            "entry": self.entry(i),
            "checkpoint": self.notes[s],
            "inclusion_proof": self.inclusion_json(i, s, self.inclusion[(i, s)]),
        }


class FakeServer:
    """An HTTP server (in a thread; the client under test is a subprocess) that answers each
    GET/POST from `routes`: `{path with query: (status, JSON object or raw bytes)}`."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        self.posts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, key: str) -> None:
                status, body = fake.routes.get(
                    key, (404, {"error": {"code": "not_found", "message": key}})
                )
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._answer(self.path)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.posts += 1
                self._answer("POST " + self.path)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two logs of the same origin and key that differ from entry 1 on (a fork), and a
    third of another origin; models a.bin, b.bin (names "a", "b") and m.bin (name "m").
    Read-only: tests lie by editing the fresh answers `FakeLog.routes` builds."""
    tmp_path = tmp_path_factory.mktemp("logs")
    srv = tmp_path / "srv"
    (tmp_path / "data").mkdir()
    models = tmp_path / "models"
    a = write_model(models / "a.bin", b"model a")
    b = write_model(models / "b.bin", b"model b")
    b2 = write_model(models / "b2.bin", b"model b, second version")
    m = write_model(models / "m.bin", b"model m")
    main = FakeLog(
        tmp_path / "data" / "main.db", srv, [(a, "a"), (b, "b"), (m, "m"), (b2, "b")], ORIGIN
    )
    # the fork is signed with the same key elsewhere (a thief of the key, or a second home
    # of the operator's): this home would refuse a second ledger of a log it remembers
    forker = tmp_path / "forker"
    forker.mkdir(mode=0o700)
    shutil.copy2(srv / "operator.key", forker / "operator.key")
    fork = FakeLog(tmp_path / "data" / "fork.db", forker, [(a, "a"), (m, "m"), (b, "b")], ORIGIN)
    other = FakeLog(tmp_path / "data" / "other.db", srv, [(a, "a")], "other.example/log")
    return {"main": main, "fork": fork, "other": other, "models": models}


def _accept(run: Run, fake: FakeServer, log: FakeLog, size: int) -> None:
    """The client accepts `log` at `size` (pinning its key explicitly)."""
    fake.routes = log.routes(size)
    assert_ok(run("--ledger", fake.url, "audit", "--key", log.vkey))


def test_honest_fake_server_is_accepted(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    at = ("--ledger", fake.url, "--key", main.vkey)
    assert_ok(run("verify", logs["models"] / "b2.bin", "--name", "b", *at))
    older = run("verify", logs["models"] / "b.bin", "--name", "b", *at)
    assert_clean_error(older, 1, "not the newest registered version")
    report = json.loads(assert_ok(run("audit", "--json", *at)).stdout)
    assert report["size"] == 4
    fake.routes[_q("/search", name="zzz", limit=1000)] = (200, {"entries": []})
    fake.routes[_q("/proof/index", name="zzz")] = (200, main.name_proof(4, "zzz"))
    unknown = run("verify", logs["models"] / "a.bin", "--name", "zzz", *at)
    assert_clean_error(unknown, 1, "'zzz' is not registered")


def test_wrong_inclusion_proof_is_refused(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(3)
    for proof in (
        fake.routes[_q("/proof/inclusion", index=2, size=3)][1],
        fake.routes[_q("/proof/index", name="m")][1]["inclusion_proof"],
    ):
        proof["hashes"][0] = "00" * 32
    bad = run(
        "verify", logs["models"] / "m.bin", "--name", "m", "--ledger", fake.url, "--key", main.vkey
    )
    assert_clean_error(bad, 1, "2 is not proven into the signed checkpoint")


def test_entry_data_that_does_not_match_its_proof_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(3)
    for key in (_q("/search", name="m", limit=1000), "/api/v1/entries/2", "index"):
        if key == "index":
            entry = fake.routes[_q("/proof/index", name="m")][1]["entry"]
        else:
            entries = fake.routes[key][1]
            entry = entries["entries"][0] if "entries" in entries else entries
        entry["data"] = entry["data"].replace('"metadata":{}', '"metadata":{"ok":true}')
    at = ("--ledger", fake.url, "--key", main.vkey)
    bad = run("verify", logs["models"] / "m.bin", "--name", "m", *at)
    assert_clean_error(bad, 1, "not proven")
    # the same lie in the full listing: audit recomputes the root and refuses it
    page = fake.routes[_q("/entries", start=0, limit=3)][1]
    page["entries"][1]["data"] = page["entries"][1]["data"].replace('"b"', '"B"')
    assert_clean_error(run("audit", *at), 1, "no longer match the signed checkpoint")
    assert_clean_error(run("log", *at), 1, "not proven")


def test_checkpoint_signed_by_another_key_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    main: FakeLog = logs["main"]
    _accept(run, fake, main, 2)  # trust on first use would pin the honest key here too
    forger = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, main.roots[3]), forger)
    fake.routes = main.routes(3, note)
    fake.routes["/api/v1/log"][1]["verifier_key"] = forger.verifier().string()
    for args in (("audit",), ("verify", logs["models"] / "m.bin", "--name", "m"), ("log",)):
        bad = run("--ledger", fake.url, *args)
        assert_clean_error(bad, 1)
        assert "signature" in bad.stderr.lower() or "key" in bad.stderr.lower()


def test_rollback_is_refused(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    main: FakeLog = logs["main"]
    _accept(run, fake, main, 4)
    fake.routes = main.routes(2)  # an older, validly signed state
    at = ("--ledger", fake.url)
    assert_clean_error(run("audit", *at), 1, "rolled back")
    assert_clean_error(
        run("verify", logs["models"] / "b.bin", "--name", "b", *at), 1, "rolled back"
    )
    assert_clean_error(run("checkpoint", *at), 1, "rolled back")


def test_fork_is_refused(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    main, fork = logs["main"], logs["fork"]
    _accept(run, fake, main, 2)
    at = ("--ledger", fake.url)
    fake.routes = fork.routes(2)  # same size, other root
    assert_clean_error(run("audit", *at), 1, "forked")
    fake.routes = fork.routes(3)  # larger, but not an extension: its consistency proof fails
    assert_clean_error(run("verify", logs["models"] / "b.bin", "--name", "b", *at), 1, "forked")
    assert_clean_error(run("audit", *at), 1, "forked")


def test_another_log_at_the_same_address_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    _accept(run, fake, logs["main"], 1)
    other: FakeLog = logs["other"]
    fake.routes = other.routes(1)
    bad = run("--ledger", fake.url, "audit", "--key", other.vkey)
    assert_clean_error(bad, 1, "is now log 'other.example/log'")


def test_search_that_leaves_out_a_version_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    # "b" is v1 at entry 1 and v2 at entry 3; a server hiding v1 gives itself away (--full:
    # without the index proof, from the versions the search finds)
    fake.routes[_q("/search", name="b", limit=1000)] = (200, {"entries": [main.entry(3)]})
    at = ("--ledger", fake.url, "--key", main.vkey)
    bad = run("verify", logs["models"] / "b2.bin", "--name", "b", "--full", *at)
    assert_clean_error(bad, 1, "versions were left out")


def _register(run: Run, fake: FakeServer, log: FakeLog, model: Path, *args: str, **env: str) -> Any:
    return run(
        "--ledger",
        fake.url,
        "register",
        model,
        "--name",
        "m",
        "--key",
        log.vkey,
        "--json",
        "--no-provenance",  # the fake's entries were registered without any
        *args,
        MODELCHAIN_TOKEN="mc_fake",
        **env,
    )


def test_register_through_an_honest_fake(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    main: FakeLog = logs["main"]
    fake.routes = {**main.routes(2), "POST /api/v1/entries": (201, main.registered(2))}
    ok = json.loads(assert_ok(_register(run, fake, main, logs["models"] / "m.bin")).stdout)
    assert ok["block"]["index"] == 2 and ok["block"]["name"] == "m"
    assert fake.posts == 1


def _bad_proof(logs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = logs["main"].registered(2)
    answer["inclusion_proof"]["hashes"][0] = "11" * 32
    return 2, answer


def _other_entry(logs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 3, logs["main"].registered(3)  # validly proven, but b2.bin under "b", not m.bin


def _other_key(logs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = logs["main"].registered(2)
    answer["checkpoint"] = sign_checkpoint(
        Checkpoint(ORIGIN, 3, logs["main"].roots[3]), Signer.generate(ORIGIN)
    )
    return 2, answer


def _forked(logs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 2, logs["fork"].registered(2)  # another tree of the same log, validly signed


@pytest.mark.parametrize(
    ("lie", "needle"),
    [
        (_bad_proof, "not proven into the checkpoint"),
        (_other_entry, "recorded entry 3 with other name, digest"),
        (_other_key, "signature"),
        (_forked, "forked"),
    ],
)
def test_register_answers_are_checked(
    run: Run, fake: FakeServer, logs: dict[str, Any], lie: Any, needle: str
) -> None:
    main: FakeLog = logs["main"]
    size, answer = lie(logs)
    fake.routes = {**main.routes(size), "POST /api/v1/entries": (201, answer)}
    bad = _register(run, fake, main, logs["models"] / "m.bin")
    line = assert_clean_error(bad, 1)
    assert needle in line.lower(), line
    assert fake.posts == 1


def test_register_on_a_rolled_back_server_sends_nothing(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    main: FakeLog = logs["main"]
    _accept(run, fake, main, 3)
    fake.routes = {**main.routes(2), "POST /api/v1/entries": (201, main.registered(2))}
    bad = run(
        "--ledger",
        fake.url,
        "register",
        logs["models"] / "m.bin",
        "--name",
        "m",
        MODELCHAIN_TOKEN="mc_fake",
    )
    assert_clean_error(bad, 1, "rolled back")
    assert fake.posts == 0


@pytest.mark.parametrize(
    ("status", "body", "needle"),
    [
        (200, b"<html>not an API</html>", "not JSON"),
        (500, b'{"error": {"code": "internal", "message": "boom"}}', "server error 500: boom"),
        (302, b"", "redirects to"),
        (404, b"", "not a modelchain server"),
        (200, b'{"origin": 1}', "malformed answer"),
    ],
)
def test_bad_answers_are_one_line_errors(
    run: Run, fake: FakeServer, status: int, body: bytes, needle: str
) -> None:
    fake.routes = {"/api/v1/log": (status, body)} if status != 404 else {}
    assert_clean_error(run("--ledger", fake.url, "audit"), 2, needle)


def test_unreachable_servers_are_one_line_errors(run: Run, fake: FakeServer) -> None:
    down = run("--ledger", f"http://127.0.0.1:{free_port()}", "audit")
    assert_clean_error(down, 2, "connection refused")
    tls = run("--ledger", fake.url.replace("http://", "https://"), "audit")
    assert_clean_error(tls, 2, "TLS")
    dns = run("--ledger", "https://no-such-host.invalid:8443", "audit")
    assert_clean_error(dns, 2, "cannot resolve")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        slow = run("--ledger", f"http://127.0.0.1:{port}", "audit", MODELCHAIN_HTTP_TIMEOUT="1")
        assert_clean_error(slow, 2, "no answer within 1 s")


@pytest.mark.parametrize(
    ("location", "needle"),
    [
        ("http://10.0.0.5:8080", "only to a loopback address"),
        ("http://ledger.example.com", "use https://"),
        ("https://user:pw@ledger.example.com", "MODELCHAIN_TOKEN"),
        ("https://ledger.example.com/?x=1", "no query"),
        ("https://ledger.example.com:99999", "not a valid server address"),
    ],
)
def test_bad_server_addresses(run: Run, location: str, needle: str) -> None:
    assert_clean_error(run("--ledger", location, "audit"), 2, needle)


@given(st.ip_addresses(v=4))
def test_plain_http_only_on_loopback(address: Any) -> None:
    url = f"http://{address}:8080"
    if address.is_loopback:
        assert normalise_url(url) == url
    else:
        with pytest.raises(UsageError, match="loopback"):
            normalise_url(url)
    assert normalise_url(f"https://{address}:8443/") == f"https://{address}:8443"


def test_trust_on_first_use_then_a_new_key_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any], home: Path
) -> None:
    main: FakeLog = logs["main"]
    # first contact with a server whose advertised key does not sign its checkpoint
    fake.routes = main.routes(2)
    fake.routes["/api/v1/log"][1]["verifier_key"] = Signer.generate(ORIGIN).verifier().string()
    assert_clean_error(run("--ledger", fake.url, "audit"), 1)
    assert not (home / "trust" / "pinned_keys.json").exists()
    fake.routes = main.routes(2)
    first = assert_ok(run("--ledger", fake.url, "audit"))
    assert "trust on first use" in first.stderr and main.vkey in first.stderr
    # the server now signs with another key (and advertises it): refused, the pin stays
    forger = Signer.generate(ORIGIN)
    fake.routes = main.routes(2, sign_checkpoint(Checkpoint(ORIGIN, 2, main.roots[2]), forger))
    fake.routes["/api/v1/log"][1]["verifier_key"] = forger.verifier().string()
    assert_clean_error(run("--ledger", fake.url, "audit"), 1)
    pins = json.loads((home / "trust" / "pinned_keys.json").read_text())
    assert pins[ORIGIN] == main.vkey


def test_long_listings_are_checked_by_recomputing_the_root(
    fake: FakeServer, home: Path, tmp_path: Path
) -> None:
    """More than a few entries (here 40) are not proven one by one: the whole tree is
    recomputed from the leaves served, so one altered leaf in the listing is still refused."""
    from modelchain.core.errors import LedgerInvalid
    from modelchain.core.note import Verifier

    n = 40
    models = [
        (write_model(tmp_path / "models" / f"{i}.bin", b"model %d" % i), "ab"[i % 2])
        for i in range(n)
    ]
    (tmp_path / "data").mkdir()
    long = FakeLog(tmp_path / "data" / "long.db", tmp_path / "srv", models, ORIGIN)
    fake.routes = long.routes(n)
    with Ledger.open(fake.url, home=home, keys=[Verifier.from_string(long.vkey)]) as ledger:
        assert [b.name for b in ledger.blocks(1)] == ["ab"[i % 2] for i in range(1, n)]
    page = fake.routes[_q("/entries", start=0, limit=n)][1]
    page["entries"][0]["data"] = page["entries"][0]["data"].replace('"a"', '"A"')
    with Ledger.open(fake.url, home=home, keys=[Verifier.from_string(long.vkey)]) as ledger:
        with pytest.raises(LedgerInvalid, match="do not match the signed checkpoint"):
            list(ledger.blocks(1))


# -- provenance and registration signatures over HTTP ----------------------------------------


def _statement(subject: str, path: Path) -> Path:
    """An in-toto Statement about the artifact with digest `subject`, with a predicate of ours."""
    from modelchain.claims.provenance import statement

    body = statement("model", subject, {"hyperparameters": {"epochs": 3}, "team": "vision"})
    path.write_text(json.dumps(body))
    return path


def test_signed_registration_with_provenance_over_http(
    server: Server, run: Run, workdir: Path, home: Path
) -> None:
    """The client builds and signs the claim; the server stores exactly it; `verify --signer`
    and `audit` through the server check the signature like a local ledger's."""
    from modelchain.claims.claim import signed_message
    from modelchain.claims.keys import KeyRing

    ring = KeyRing(home)
    alice, bob = ring.generate("alice"), ring.generate("bob", "p256")
    model = write_model(workdir / "signed.bin", b"a model its trainer vouches for")
    data = write_model(workdir / "train.csv", b"x,y\n1,2\n")
    digest = json.loads(assert_ok(run("hash", model, "--json")).stdout)["sha256"]
    at = ("--ledger", server.url, "--key", server.vkey)
    reg = run(
        "register", model, *at, "--name", "signed", "--sign-key", "alice", "--json",
        "--provenance", _statement(digest, workdir / "stmt.json"), "--data", data,
        "--param", "C=1.0", "--metric", "accuracy=0.97", MODELCHAIN_TOKEN=server.token,
    )  # fmt: skip
    block = json.loads(assert_ok(reg).stdout)["block"]
    predicate = block["provenance"]["predicate"]
    assert predicate["hyperparameters"] == {"epochs": 3, "C": 1.0}
    assert predicate["metrics"] == {"accuracy": 0.97} and predicate["team"] == "vision"
    assert predicate["trainingData"][0]["digest"]["sha256"] == sha256_of(data)
    assert "scikit-learn" in predicate["libraries"]  # recorded automatically, as locally
    assert [s["keyid"] for s in block["signatures"]] == [alice.public.key_id]

    # what the server serves is what was signed: its leaf data, checked here independently
    entry = json.loads(
        urllib.request.urlopen(f"{server.url}/api/v1/entries/{block['index']}").read()
    )
    stored = json.loads(entry["data"])
    assert stored["provenance"] == block["provenance"]
    assert stored["signatures"] == block["signatures"]
    from modelchain.log.block import Block

    health = json.loads(urllib.request.urlopen(f"{server.url}/api/v1/health").read())
    claim = signed_message(Block.from_raw(stored, block["index"]).claim(health["origin"]))
    assert alice.public.verify(base64.b64decode(stored["signatures"][0]["sig"]), claim)

    ok = assert_ok(run("verify", model, *at, "--name", "signed", "--signer", "alice"))
    assert "Proved the newest version by the signed index and checkpoint of" in ok.stdout
    assert "Ledger valid" not in ok.stdout  # only proofs were checked, not every block
    assert f"Registration signed by: {alice.public.key_id[:16]}" in ok.stdout
    as_json = json.loads(
        assert_ok(
            run("verify", model, *at, "--name", "signed", "--signer", "alice", "--json")
        ).stdout
    )
    assert as_json["signed_by"] == [alice.public.key_id]
    assert as_json["ledger"]["checked"] == "index and inclusion proofs"
    not_bob = run("verify", model, *at, "--name", "signed", "--signer", "bob")
    assert_clean_error(not_bob, 1, "is not signed by key", bob.public.key_id[:16])
    audit = json.loads(assert_ok(run("audit", *at, "--json")).stdout)
    assert audit["valid"] is True and audit["checked"] == "every block"


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_provenance_about_another_model_is_refused_before_sending(
    server: Server, run: Run, workdir: Path
) -> None:
    model = write_model(workdir / "mine.bin", b"my model")
    other = _statement("ab" * 32, workdir / "other.json")
    at = ("--ledger", server.url, "--key", server.vkey)
    bad = run("register", model, *at, "--name", "mine", "--provenance", other,
              MODELCHAIN_TOKEN=server.token)  # fmt: skip
    assert_clean_error(bad, 2, "do not include this model")
    assert json.loads(assert_ok(run("log", *at, "--name", "mine", "--json")).stdout) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--sign-key", "alice"), "other signatures than were sent"),
        (("--param", "lr=0.1"), "other provenance than were sent"),
    ],
)
def test_a_server_that_drops_signatures_or_provenance_is_caught(
    run: Run, fake: FakeServer, logs: dict[str, Any], home: Path, args: tuple[str, ...],
    needle: str,
) -> None:  # fmt: skip
    from modelchain.claims.keys import KeyRing

    KeyRing(home).generate("alice")
    main: FakeLog = logs["main"]
    fake.routes = {**main.routes(2), "POST /api/v1/entries": (201, main.registered(2))}
    fake.routes.setdefault(_q("/search", name="m", limit=1000), (200, {"entries": []}))
    bad = _register(run, fake, main, logs["models"] / "m.bin", *args)
    assert_clean_error(bad, 1, needle)
    assert fake.posts == 1


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_prove_over_http_checks_what_it_prints(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    """`prove` against a server prints the server's proofs only after checking them: an
    inclusion proof against the signed root, an older root by a consistency proof to it."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    at = ("--ledger", fake.url, "--key", main.vkey)
    shown = json.loads(assert_ok(run("prove", "inclusion", "2", "--json", *at)).stdout)
    assert shown["root_hash"] == b64(main.roots[4]) and shown["tree_size"] == 4
    assert shown["proof"] == [b64(h) for h in main.inclusion[(2, 4)]]
    older = run("prove", "inclusion", "1", "--size", "2", "--json", *at)
    assert json.loads(assert_ok(older).stdout)["root_hash"] == b64(main.roots[2])
    grown = json.loads(assert_ok(run("prove", "consistency", "1", "--json", *at)).stdout)
    assert grown["old_root"] == b64(main.roots[1]) and grown["new_root"] == b64(main.roots[4])
    # lies: a wrong proof hash, a wrong root for an older size
    fake.routes[_q("/proof/inclusion", index=2, size=4)][1]["hashes"][0] = "00" * 32
    assert_clean_error(run("prove", "inclusion", "2", *at), 1)
    fake.routes[_q("/proof/consistency", old=2, new=4)][1]["old_root"] = "11" * 32
    bad_root = run("prove", "inclusion", "1", "--size", "2", *at)
    assert_clean_error(bad_root, 1, "not consistent with its signed checkpoint")


def test_the_client_is_not_a_store() -> None:
    """A server's ledger is reached through a client that only fetches, not a `Store` whose
    node and peak reads would raise."""
    from modelchain.ledgers.client import LedgerClient
    from modelchain.log.store.base import Store

    assert not issubclass(LedgerClient, Store)
    assert not hasattr(LedgerClient, "peaks") and not hasattr(LedgerClient, "all_nodes")


def test_a_missing_token_says_what_to_make(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelchain.ledgers.client import TOKEN_ENV, TOKEN_FILE_ENV, LedgerClient

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(TOKEN_FILE_ENV, raising=False)
    with pytest.raises(UsageError, match="needs a token") as caught:
        LedgerClient("http://127.0.0.1:9").token()
    way_out = caught.value.way_out
    assert way_out is not None
    assert (way_out.command, way_out.env) == (
        ("token", "create", "--scope", "write"),
        (TOKEN_ENV, TOKEN_FILE_ENV),
    )
    assert "modelchain token" not in str(caught.value)
    assert "`modelchain token create --scope write`" in way_out.cli
