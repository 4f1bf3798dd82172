"""The service under stress: two `modelchain serve` processes on one PostgreSQL ledger, many
keep-alive clients at once, and servers killed with SIGKILL in the middle of a stream.

What a user relies on, checked from outside: every registration that was answered 201 is in
the ledger, at the index it was given, with the digest that was sent; the indices run
0..n-1 with no gap and no duplicate; `modelchain audit` accepts the ledger, read both from
the database and through a server. Each 201 is also checked as a distrustful client would:
its inclusion proof folds up to the root of a checkpoint signed by the operator key.

The PostgreSQL tests need MODELCHAIN_TEST_PG_DSN (the `pg_ledger` fixture skips them, with
that reason, when it is unset); the SQLite crash test always runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import Run, assert_ok
from server_util import Server, init_ledger, running_server

from modelchain.core import merkle
from modelchain.core.note import Verifier, open_checkpoint
from modelchain.ledgers import Ledger
from modelchain.log.block import Block

CLIENTS = 8
EACH = 500


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Ack:
    """A registration the service acknowledged (201), as the client was told."""

    index: int
    name: str
    digest: str
    server: str


class Tally:
    """What every client sent and was told, shared by the client threads."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.lock = threading.Lock()
        self.sent: set[str] = set()
        self.acks: list[Ack] = []
        #: sent, but the server died before answering: committed or not, nobody was told
        self.in_doubt: set[str] = set()
        self.errors: list[str] = []

    def acked_by(self, url: str) -> int:
        with self.lock:
            return sum(1 for a in self.acks if a.server == url)

    def check(self, server: Server, name: str, digest: str, body: dict) -> Ack:
        """The 201 answer proves the entry into a checkpoint signed by the operator key."""
        entry, proof = body["entry"], body["inclusion_proof"]
        data = entry["data"].encode()
        checkpoint = open_checkpoint(body["checkpoint"], self.verifier)
        assert proof["index"] == entry["index"] and proof["size"] == checkpoint.size
        merkle.verify_inclusion(
            entry["index"],
            checkpoint.size,
            merkle.leaf_hash(data),
            [bytes.fromhex(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )
        block = json.loads(data)
        assert (block["name"], block["model_hash"]) == (name, digest), block
        return Ack(entry["index"], name, digest, server.url)


def client(server: Server, number: int, count: int, tally: Tally) -> None:
    """One client: `count` registrations in a row on one keep-alive connection. A dropped
    connection (the server was killed) ends the stream; the last request is then in doubt."""
    headers = server.auth()
    try:
        with server.client() as http:
            for i in range(count):
                name, digest = f"model-{number % 3}", digest_of(f"{number}-{i}")
                with tally.lock:
                    tally.sent.add(digest)
                try:
                    answer = http.post(
                        "/entries", json={"name": name, "digest": digest}, headers=headers
                    )
                except httpx.TransportError:
                    with tally.lock:
                        tally.in_doubt.add(digest)
                    return
                if answer.status_code != 201:
                    raise AssertionError(f"HTTP {answer.status_code}: {answer.text}")
                ack = tally.check(server, name, digest, answer.json())
                with tally.lock:
                    tally.acks.append(ack)
    except Exception as exc:  # reported by the test's thread, not lost in this one
        with tally.lock:
            tally.errors.append(f"client {number}: {type(exc).__name__}: {exc}")


def start_clients(servers: list[Server], clients: int, count: int, tally: Tally) -> list:
    for server in servers:
        server.auth()  # make each server's token now, not from racing threads
    threads = [
        threading.Thread(target=client, args=(servers[n % len(servers)], n, count, tally))
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    return threads


def join(threads: list[threading.Thread], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients did not finish"


def operator_verifier(location: str, home: Path) -> Verifier:
    """The operator's verifier key, from the operator's home (not from any server)."""
    with Ledger.open(location, home=home) as ledger:
        origin = ledger.signed_checkpoint().origin
        return ledger.verifier_for(origin)


def stored_blocks(location: str, home: Path) -> list[Block]:
    """Every block, read from the database itself; each must sit at its own index."""
    with Ledger.open(location, home=home) as ledger:
        blocks = list(ledger.blocks())
        assert ledger.signed_checkpoint().size == len(blocks)
    assert [b.index for b in blocks] == list(range(len(blocks)))
    return blocks


def assert_acks_kept(blocks: list[Block], tally: Tally) -> None:
    """Every acknowledged registration at its index; nothing that was not sent; nothing
    twice; what is there but unacknowledged was in doubt (killed before it could answer)."""
    assert tally.errors == []
    for ack in tally.acks:
        block = blocks[ack.index]
        assert (block.name, block.model_hash) == (ack.name, ack.digest), ack
    digests = Counter(b.model_hash for b in blocks)
    assert max(digests.values()) == 1, "a registration was stored twice"
    assert set(digests) <= tally.sent, "the ledger holds a registration nobody sent"
    unacknowledged = set(digests) - {a.digest for a in tally.acks}
    assert unacknowledged <= tally.in_doubt
    versions: dict[str, int] = {}
    for block in blocks:  # every name's versions count 1, 2, 3... in ledger order
        versions[block.name] = versions.get(block.name, 0) + 1
        assert block.version == versions[block.name], block.label


def audit_ok(run: Run, location: str, home: Path, size: int, *more: str) -> None:
    report = json.loads(
        assert_ok(
            run("--ledger", location, "audit", "--json", *more, MODELCHAIN_HOME=str(home))
        ).stdout
    )
    assert report["valid"] is True and report["size"] == size, report


def register_one(server: Server, name: str) -> int:
    answer = httpx.post(
        server.api + "/entries",
        json={"name": name, "digest": digest_of(name)},
        headers=server.auth(),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["entry"]["index"])


def kill_when(server: Server, tally: Tally, acked: int, timeout: float = 60) -> None:
    """SIGKILL `server` once it has acknowledged `acked` registrations (mid-stream)."""
    deadline = time.monotonic() + timeout
    while tally.acked_by(server.url) < acked:
        assert not tally.errors, tally.errors
        assert time.monotonic() < deadline, "the server acknowledged too little, too slowly"
        time.sleep(0.005)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


# -- two servers, one PostgreSQL ledger ------------------------------------------------------


def test_two_servers_on_one_pg_ledger_take_4000_concurrent_registrations(
    pg_ledger: str, tmp_path: Path, run: Run, home: Path
) -> None:
    srv_home = tmp_path / "srv-home"
    init_ledger(pg_ledger, srv_home)
    verifier = operator_verifier(pg_ledger, srv_home)
    tally = Tally(verifier)
    with running_server(pg_ledger, srv_home) as a, running_server(pg_ledger, srv_home) as b:
        join(start_clients([a, b], CLIENTS, EACH, tally))
        assert tally.errors == []
        assert len(tally.acks) == CLIENTS * EACH == 4000
        assert tally.acked_by(a.url) == tally.acked_by(b.url) == 2000
        assert sorted(ack.index for ack in tally.acks) == list(range(4000))
        for server in (a, b):
            assert httpx.get(server.api + "/health").json()["size"] == 4000
        # the remote client audits through a server: every entry against the signed root
        audit_ok(run, a.url, home, 4000, "--key", verifier.string())
    blocks = stored_blocks(pg_ledger, srv_home)
    assert len(blocks) == 4000
    assert_acks_kept(blocks, tally)
    audit_ok(run, pg_ledger, srv_home, 4000)


# -- kill -9 in the middle of a stream -------------------------------------------------------


def test_kill_9_one_of_two_pg_servers_mid_stream_loses_no_acknowledged_registration(
    pg_ledger: str, tmp_path: Path, run: Run, home: Path
) -> None:
    srv_home = tmp_path / "srv-home"
    init_ledger(pg_ledger, srv_home)
    verifier = operator_verifier(pg_ledger, srv_home)
    tally = Tally(verifier)
    with running_server(pg_ledger, srv_home) as a, running_server(pg_ledger, srv_home) as b:
        threads = start_clients([a, b], 6, 200, tally)  # 3 clients on each server
        kill_when(a, tally, 150)
        join(threads)
        assert tally.errors == []
        assert tally.acked_by(a.url) < 600 and tally.in_doubt, "A was not killed mid-stream"
        assert tally.acked_by(b.url) == 600  # B went on, undisturbed
        after = register_one(b, "after-the-crash")  # and still takes registrations
        blocks = stored_blocks(pg_ledger, srv_home)
        assert after == len(blocks) - 1 and blocks[after].name == "after-the-crash"
        assert_acks_kept(blocks[:after], tally)
        audit_ok(run, pg_ledger, srv_home, len(blocks))
    with running_server(pg_ledger, srv_home) as restarted:  # A comes back on the same ledger
        index = register_one(restarted, "after-the-restart")
        assert index == len(blocks)
        audit_ok(run, restarted.url, home, index + 1, "--key", verifier.string())
    audit_ok(run, pg_ledger, srv_home, index + 1)


def test_kill_9_the_sqlite_server_mid_stream_loses_no_acknowledged_registration(
    tmp_path: Path, run: Run
) -> None:
    srv_home = tmp_path / "srv-home"
    location = str(tmp_path / "srv-data" / "ledger.db")
    init_ledger(location, srv_home)
    tally = Tally(operator_verifier(location, srv_home))
    with running_server(location, srv_home) as server:
        threads = start_clients([server], 4, 200, tally)
        kill_when(server, tally, 100)
        join(threads)
    assert tally.errors == []
    assert 100 <= len(tally.acks) < 800 and tally.in_doubt, "not killed mid-stream"
    blocks = stored_blocks(location, srv_home)
    assert_acks_kept(blocks, tally)
    audit_ok(run, location, srv_home, len(blocks))
    with running_server(location, srv_home) as restarted:
        assert register_one(restarted, "after-the-restart") == len(blocks)
    audit_ok(run, location, srv_home, len(blocks) + 1)
