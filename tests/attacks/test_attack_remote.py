"""A server that tries to hold the client (drips its answer), swell it (answers of any size,
JSON nested or numbered beyond reason), or catch the write token (a proxy for a loopback
address, plain http elsewhere); and signature bundles that try to swell `verify`. Each is
cut off within the deadline or refused unread, with one line and its exit status."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, assert_clean_error, assert_ok
from service.test_remote import FakeLog, FakeServer, write_model

from modelchain.claims import bundle, keys
from modelchain.core.errors import LedgerInvalid, UsageError
from modelchain.ledgers.client import AnswerLimits, LedgerClient, _check_loopback_peer

ORIGIN = "attack.example/log"
TOKEN = "mc_secret_write_token"

# -- servers that misbehave at the socket level ---------------------------------------------


class RawServer:
    """A loopback TCP server (in a thread) that reads one request per connection and then
    lets `behave(conn)` answer it however it likes; it records how much it managed to send
    and whether the client hung up before it was done."""

    def __init__(
        self, behave: Callable[[socket.socket, RawServer], None], *, read_request: bool = True
    ) -> None:
        self.behave, self.read_request = behave, read_request
        self.sent = 0
        self.cut_off = threading.Event()
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while self.read_request and b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                self.behave(conn, self)
            except OSError:
                self.cut_off.set()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(behave: Callable[[socket.socket, RawServer], None], **kwargs: Any) -> RawServer:
        servers.append(RawServer(behave, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def drip_body(conn: socket.socket, server: RawServer) -> None:
    """Honest-looking headers, then the body one byte every half second."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    server.send(conn, b"Content-Length: 60000\r\n\r\n")
    while not server.stop.is_set():
        server.send(conn, b" ")
        time.sleep(0.5)


def drip_headers(conn: socket.socket, server: RawServer) -> None:
    """The status line, then a header that never ends, one byte every half second."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not server.stop.is_set():
        server.send(conn, b"a")
        time.sleep(0.5)


@pytest.mark.parametrize("behave", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_server_is_cut_off_at_the_deadline(
    run: Run, raw_server: Any, behave: Any
) -> None:
    """Each byte comes well within the socket timeout, so only a deadline on the whole
    request ends this: without one, audit would wait 60000 half-seconds."""
    server = raw_server(behave)
    start = time.monotonic()
    result = run("--ledger", server.url, "audit", MODELCHAIN_HTTP_TIMEOUT="2", timeout=30)
    elapsed = time.monotonic() - start
    assert_clean_error(result, 2, "no answer within 2 s", "MODELCHAIN_HTTP_TIMEOUT")
    assert elapsed < 10, f"held for {elapsed:.1f} s"


def drip_handshake(conn: socket.socket, server: RawServer) -> None:
    """A TLS record header for a server hello, then its body one byte every half second."""
    conn.recv(65536)  # the client hello
    server.send(conn, b"\x16\x03\x03\x40\x00\x02")
    while not server.stop.is_set():
        server.send(conn, b"\x00")
        time.sleep(0.5)


def test_a_tls_handshake_that_drips_is_cut_off(run: Run, raw_server: Any) -> None:
    server = raw_server(drip_handshake, read_request=False)
    address = server.url.replace("http://", "https://")
    start = time.monotonic()
    result = run("--ledger", address, "audit", MODELCHAIN_HTTP_TIMEOUT="2", timeout=30)
    assert_clean_error(result, 2, "no answer within 2 s")
    assert time.monotonic() - start < 10


def test_a_dripping_server_cannot_hold_verify(run: Run, raw_server: Any, workdir: Path) -> None:
    server = raw_server(drip_body)
    model = write_model(workdir / "m.bin", b"a model")
    start = time.monotonic()
    result = run("verify", model, "--ledger", server.url, MODELCHAIN_HTTP_TIMEOUT="1.5", timeout=30)
    assert_clean_error(result, 2, "no answer within 1.5 s")
    assert time.monotonic() - start < 10


def test_a_whole_command_can_be_given_a_deadline(run: Run, raw_server: Any) -> None:
    server = raw_server(drip_body)
    start = time.monotonic()
    result = run(
        "--ledger",
        server.url,
        "audit",
        MODELCHAIN_HTTP_TIMEOUT="60",
        MODELCHAIN_HTTP_DEADLINE="1.5",
        timeout=30,
    )
    assert_clean_error(result, 2, "did not finish within 1.5 s", "MODELCHAIN_HTTP_DEADLINE")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("name", ["MODELCHAIN_HTTP_TIMEOUT", "MODELCHAIN_HTTP_DEADLINE"])
@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "1e9"])
def test_bad_deadlines_are_usage_errors(run: Run, name: str, value: str) -> None:
    result = run("--ledger", "http://127.0.0.1:9", "audit", **{name: value})
    assert_clean_error(result, 2, f"{name}={value!r}: give seconds")


def _huge(announce: bool) -> Callable[[socket.socket, RawServer], None]:
    """256 MiB of answer, announced by Content-Length or not (then ended by closing)."""

    def behave(conn: socket.socket, server: RawServer) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if announce:
            head += b"Content-Length: %d\r\n" % (256 << 20)
        server.send(conn, head + b"\r\n")
        block = b'["' + b"x" * ((1 << 20) - 2)
        for _ in range(256):
            server.send(conn, block)

    return behave


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "until-close"])
def test_a_huge_answer_is_refused_without_reading_it(
    run: Run, raw_server: Any, announce: bool
) -> None:
    server = raw_server(_huge(announce))
    start = time.monotonic()
    result = run("--ledger", server.url, "audit", timeout=60)
    assert_clean_error(result, 1, "the answer to /api/v1/log is over 64 KiB")
    assert server.cut_off.wait(10), "the client read the whole answer"
    assert server.sent < 64 << 20, f"the server got {server.sent} bytes out"
    assert time.monotonic() - start < 20


# -- answers that parse into too much -------------------------------------------------------


class Scripted:
    """A loopback HTTP server answering every GET of `path` from `answers`; counts requests."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.handler: Callable[[str], tuple[int, bytes]] | None = None
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(self.path)
                if outer.handler is not None:
                    status, body = outer.handler(self.path)
                else:
                    status, body = outer.answers.get(self.path.split("?")[0], (404, b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


def _log(size: str) -> bytes:
    return b'{"origin": "x", "size": %s, "checkpoint": "x"}' % size.encode()


@pytest.mark.parametrize(
    ("status", "body", "code", "needle"),
    [
        (200, b"[" * 30000 + b"]" * 30000, 1, "nested 30000 levels deep"),
        (200, b'{"a":' * 10000 + b"1" + b"}" * 10000, 1, "nested 10000 levels deep"),
        (200, _log("9" * 5000), 1, "integer of 5000 digits"),
        (200, _log("1e999"), 1, "out of range"),
        (200, _log("NaN"), 1, "NaN is not a JSON number"),
        (500, b"[" * 30000 + b"]" * 30000, 2, "server error 500: HTTP 500"),
    ],
    ids=["deep-array", "deep-object", "long-int", "infinite", "nan", "deep-error-body"],
)
def test_json_beyond_limits_is_refused(
    run: Run, scripted: Scripted, status: int, body: bytes, code: int, needle: str
) -> None:
    scripted.answers["/api/v1/log"] = (status, body)
    assert_clean_error(run("--ledger", scripted.url, "audit"), code, needle)


def test_a_proof_longer_than_any_tree_needs_is_refused(scripted: Scripted) -> None:
    hashes = ["00" * 32] * 65
    body = json.dumps({"index": 0, "size": 2, "hashes": hashes}).encode()
    scripted.answers["/api/v1/proof/inclusion"] = (200, body)
    with pytest.raises(LedgerInvalid, match="65 proof hashes"):
        LedgerClient(scripted.url).inclusion_proof(0, 2)


def _entries_handler(entries: list[dict[str, Any]]) -> Callable[[str], tuple[int, bytes]]:
    """/api/v1/entries?start=&limit= pages over `entries`, like the real server."""

    def handle(path: str) -> tuple[int, bytes]:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(path).query)
        start, limit = int(query["start"][0]), int(query["limit"][0])
        page = entries[start : start + limit]
        return 200, json.dumps({"entries": page, "start": start}).encode()

    return handle


def _entry(i: int, filler: int) -> dict[str, Any]:
    data = json.dumps({"index": i, "name": "m", "pad": "p" * filler}, separators=(",", ":"))
    return {"index": i, "data": data}


def test_large_honest_entries_are_read_in_smaller_pages(scripted: Scripted) -> None:
    """A page over its cap is not a lie while it may hold that many honest entries: it is
    asked for again in halves, and every entry still arrives, in order."""
    scripted.handler = _entries_handler([_entry(i, 1500) for i in range(4)])
    stored = list(LedgerClient(scripted.url, limits=AnswerLimits(page=5000)).blocks(0, 4))
    assert [s.position for s in stored] == [0, 1, 2, 3]
    limits = [p.split("limit=")[1] for p in scripted.seen]
    assert limits == ["4", "2", "2"]  # 4 would be ~6 KB: over the cap; 2 fit


def test_one_entry_beyond_any_block_is_a_lie(scripted: Scripted) -> None:
    scripted.handler = _entries_handler([_entry(0, 100), _entry(1, 9000)])
    store = LedgerClient(scripted.url, limits=AnswerLimits(entry=5000, page=5000))
    with pytest.raises(LedgerInvalid, match="is over 5000 bytes, more than an honest server"):
        list(store.blocks(0, 2))
    assert scripted.seen[-1].endswith("start=1&limit=1")  # entry 0 was read; 1 alone fails


def test_a_search_answer_over_its_cap_is_read_as_cut_short(scripted: Scripted) -> None:
    """An oversized search answer is not parsed: the client matches every entry itself."""
    entries = [_entry(0, 10), _entry(1, 10)]
    pages = _entries_handler(entries)

    def handle(path: str) -> tuple[int, bytes]:
        if path.startswith("/api/v1/search"):
            return 200, json.dumps({"entries": [_entry(1, 100)] * 100}).encode()
        if path == "/api/v1/log":
            return 200, json.dumps({"origin": ORIGIN, "size": 2, "checkpoint": "x"}).encode()
        return pages(path)

    scripted.handler = handle
    assert LedgerClient(scripted.url, limits=AnswerLimits(page=5000)).find(name="m") == [0, 1]
    assert any(p.startswith("/api/v1/entries?") for p in scripted.seen)


def test_entry_data_over_the_block_bound_is_refused(scripted: Scripted) -> None:
    body = json.dumps(_entry(3, 2000)).encode()
    scripted.answers["/api/v1/entries/3"] = (200, body)
    with pytest.raises(LedgerInvalid, match=r"entry 3 .* larger than any block"):
        LedgerClient(scripted.url, limits=AnswerLimits(block=1000)).entry(3)


# -- the write token: no proxy for loopback, nothing in clear elsewhere ---------------------


class RecordingProxy:
    """An HTTP proxy that records everything it is sent and forwards nothing (502)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                outer.seen.append(f"{self.command} {self.path}\n{self.headers}")
                self.send_error(502, "this proxy forwards nothing")

            do_GET = do_POST = do_CONNECT = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def env(self) -> dict[str, str]:
        proxy = self.url
        return {
            "http_proxy": proxy,
            "HTTP_PROXY": proxy,
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "all_proxy": proxy,
            "ALL_PROXY": proxy,
            "no_proxy": "",
            "NO_PROXY": "",
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    yield server
    server.close()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("attack-logs")
    models = tmp / "models"
    a = write_model(models / "a.bin", b"model a")
    m = write_model(models / "m.bin", b"model m")
    (tmp / "data").mkdir()
    fake = FakeLog(tmp / "data" / "log.db", tmp / "srv", [(a, "a"), (m, "m")], ORIGIN)
    return {"log": fake, "models": models}


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def test_a_loopback_ledger_never_goes_through_a_proxy(
    run: Run, fake: FakeServer, proxy: RecordingProxy, log: dict[str, Any]
) -> None:
    main: FakeLog = log["log"]
    fake.routes = {**main.routes(1), "POST /api/v1/entries": (201, main.registered(1))}
    at = ("--ledger", fake.url)
    reg = run(
        *at,
        "register",
        log["models"] / "m.bin",
        "--name",
        "m",
        "--key",
        main.vkey,
        "--no-provenance",
        MODELCHAIN_TOKEN=TOKEN,
        **proxy.env(),
    )
    assert_ok(reg)
    assert fake.posts == 1
    fake.routes = main.routes(2)  # the log as it is after the registration
    assert_ok(run(*at, "audit", "--key", main.vkey, **proxy.env()))
    assert proxy.seen == []  # neither the reads nor the token went through it


def test_https_goes_through_a_proxy_only_as_a_tunnel(
    run: Run, proxy: RecordingProxy, workdir: Path
) -> None:
    model = write_model(workdir / "m.bin", b"a model")
    result = run(
        "--ledger",
        "https://ledger.example.com:8443",
        "register",
        model,
        "--name",
        "m",
        MODELCHAIN_TOKEN=TOKEN,
        **proxy.env(),
    )
    assert_clean_error(result, 2, "ledger.example.com", "502")
    assert len(proxy.seen) == 1
    assert proxy.seen[0].startswith("CONNECT ledger.example.com:8443\n")
    assert TOKEN not in proxy.seen[0] and "authorization" not in proxy.seen[0].lower()


@pytest.mark.parametrize("address", ["http://192.0.2.7:8080", "http://ledger.example.com"])
def test_a_token_is_never_sent_in_clear_to_another_host(
    run: Run, proxy: RecordingProxy, workdir: Path, address: str
) -> None:
    model = write_model(workdir / "m.bin", b"a model")
    start = time.monotonic()
    result = run(
        "--ledger", address, "register", model, "--name", "m", MODELCHAIN_TOKEN=TOKEN, **proxy.env()
    )
    assert_clean_error(result, 2, "plain http:// is allowed only to a loopback address")
    assert proxy.seen == []
    assert time.monotonic() - start < 10  # refused before any connection was tried


class _Peer:
    def __init__(self, address: str) -> None:
        self.address = address

    def getpeername(self) -> tuple[str, int]:
        return (self.address, 80)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_plain_http_talks_to_a_loopback_peer(address: str) -> None:
    _check_loopback_peer(_Peer(address), "http://localhost")  # type: ignore[arg-type]


@pytest.mark.parametrize("address", ["10.0.0.5", "203.0.113.9", "::ffff:10.0.0.5", "2001:db8::1"])
def test_plain_http_to_a_name_that_resolves_elsewhere_sends_nothing(address: str) -> None:
    """`localhost` counts as loopback by name; the address connected to must agree."""
    with pytest.raises(UsageError, match=f"connected to {address}, not a loopback"):
        _check_loopback_peer(_Peer(address), "http://localhost")  # type: ignore[arg-type]


# -- signature bundles ----------------------------------------------------------------------


@pytest.fixture
def signed(tmp_path: Path) -> dict[str, Any]:
    model = write_model(tmp_path / "model" / "w.bin", b"weights").parent
    key = keys.generate("ed25519")
    pub = tmp_path / "signer.pub"
    pub.write_bytes(key.public.pem())
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model), key, signature=str(sig))
    return {"model": model, "key": key, "pub": pub, "sig": sig}


def _verify(run: Run, signed: dict[str, Any]) -> Any:
    return run(
        "verify", signed["model"], "--signature", signed["sig"], "--public-key", signed["pub"]
    )


def test_an_honest_bundle_verifies(run: Run, signed: dict[str, Any]) -> None:
    assert_ok(_verify(run, signed))


def test_an_oversized_signature_file_is_refused_unread(run: Run, signed: dict[str, Any]) -> None:
    honest = signed["sig"].read_bytes()
    signed["sig"].write_bytes(b" " * (bundle.MAX_BUNDLE + 1 - len(honest)) + honest)
    assert_clean_error(_verify(run, signed), 2, "too large for a signature file (limit 16 MiB)")


def _resigned(signed: dict[str, Any], payload: bytes) -> None:
    signed["sig"].write_bytes(bundle.make_bundle(payload, signed["key"]))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda b: b"[" * 5000 + b"]" * 5000, "bundle: JSON beyond limits: nested 5000 levels"),
        (
            lambda b: b.replace(b'"mediaType"', b'"n": ' + b"9" * 4000 + b', "mediaType"', 1),
            "integer of 4000 digits",
        ),
    ],
    ids=["deep", "long-int"],
)
def test_a_bundle_beyond_json_limits_is_refused(
    run: Run, signed: dict[str, Any], edit: Any, needle: str
) -> None:
    signed["sig"].write_bytes(edit(signed["sig"].read_bytes()))
    assert_clean_error(_verify(run, signed), 2, needle)


def test_a_signed_payload_beyond_json_limits_is_refused(run: Run, signed: dict[str, Any]) -> None:
    _resigned(signed, b"{" + b'"a":[' * 40 + b"1" + b"]" * 40 + b"}")
    assert_clean_error(_verify(run, signed), 2, "DSSE payload: JSON beyond limits: nested 41")


def test_a_bundle_with_thousands_of_signatures_is_refused(run: Run, signed: dict[str, Any]) -> None:
    data = json.loads(signed["sig"].read_bytes())
    sigs = data["dsseEnvelope"]["signatures"]
    fake = {"sig": base64.b64encode(b"\0" * 64).decode(), "keyid": ""}
    data["dsseEnvelope"]["signatures"] = [fake] * 5000 + sigs
    signed["sig"].write_text(json.dumps(data))
    assert_clean_error(_verify(run, signed), 2, "5001 signatures; at most 16")


def test_sign_never_writes_a_bundle_verify_would_refuse(tmp_path: Path) -> None:
    """A model whose bundle would be over the real MAX_BUNDLE: a few thousand empty files
    whose names are near the path limit (each costs its name, in base64, in the bundle)."""
    model = tmp_path / "many"
    levels = (4096 - len(str(model)) - 300) // 251  # the absolute path stays under PATH_MAX
    deep = model.joinpath(*["d" * 250] * levels)
    deep.mkdir(parents=True)
    name_length = levels * 251 + 205
    for i in range(bundle.MAX_BUNDLE // (name_length * 4 // 3) + 200):
        (deep / f"{i:05}{'w' * 200}").write_bytes(b"")
    sig = tmp_path / "model.sig"
    with pytest.raises(UsageError, match=r"more than the 16 MiB a verifier reads"):
        bundle.sign_model(str(model), keys.generate("ed25519"), signature=str(sig))
    assert not sig.exists()
