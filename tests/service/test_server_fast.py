"""The service's fast paths and caches (issue 5) change speed, never answers.

- the fast paths (health, verify, register) answer exactly what the FastAPI routes answer;
- a verify answer is never older than a write acknowledged before it, even when another
  process appended (the per-checkpoint caches are keyed by the signed note);
- `Ledger.lookup` with a `LookupCache` answers like the store, whatever the order of
  appends and questions (a property test);
- concurrent requests on a database share checkpoint reads, and none sees a stale one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_util import (
    BACKENDS,
    Server,
    init_ledger,
    served_backend,
)

from modelchain import Ledger
from modelchain.core import merkle
from modelchain.core.note import open_checkpoint
from modelchain.ledgers import LocalLedger
from modelchain.server.lookups import LookupCache


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A fresh server over SQLite, and over PostgreSQL when MODELCHAIN_TEST_PG_DSN is set."""
    yield from served_backend(request.param, tmp_path, "mc_fast_")


def _verify(c: httpx.Client, name: str, digest: str, routed: bool = False) -> dict[str, Any]:
    # a query string sends the request through the FastAPI route instead of the fast path
    r = c.post("/verify" + ("?via=route" if routed else ""), json={"name": name, "digest": digest})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def _check_proof(server: Server, answer: dict[str, Any]) -> None:
    """The proof ties the newest entry to a checkpoint signed by the operator's own key."""
    from modelchain.log.home import Home

    origin = httpx.get(server.api + "/log").json()["origin"]
    key = Home(server.home).operator_signer(create=False).with_name(origin).verifier()
    checkpoint = open_checkpoint(answer["checkpoint"], key)
    proof, entry = answer["inclusion_proof"], answer["entry"]
    assert proof["size"] == checkpoint.size
    merkle.verify_inclusion(
        entry["index"],
        checkpoint.size,
        merkle.leaf_hash(entry["data"].encode()),
        [bytes.fromhex(h) for h in proof["hashes"]],
        checkpoint.root_hash,
    )


def test_fast_paths_answer_exactly_like_the_routes(backend: Server) -> None:
    auth = backend.auth()
    with backend.client() as c:
        for name, text in (("iris", "v1"), ("iris", "v2"), ("bert", "b1")):
            r = c.post("/entries", json={"name": name, "digest": digest_of(text)}, headers=auth)
            assert r.status_code == 201, r.text
        # the routed registration (a scheme spelled otherwise) continues the same versions
        lower = {"Authorization": "bearer " + backend.token()}
        r = c.post("/entries", json={"name": "iris", "digest": digest_of("v3")}, headers=lower)
        assert r.status_code == 201, r.text
        assert r.json()["entry"]["block"]["version"] == 3
        fast = c.post("/entries", json={"name": "iris", "digest": digest_of("v4")}, headers=auth)
        assert fast.json()["entry"]["block"]["version"] == 4
        assert fast.json()["entry"]["index"] == 4
        questions = [
            ("iris", digest_of("v4"), True, None),
            ("iris", digest_of("v1"), False, "older_version"),
            ("iris", "ab" * 32, False, "digest_mismatch"),
            ("bert", digest_of("b1"), True, None),
            ("nobody", digest_of("b1"), False, "not_registered"),
        ]
        for _ in range(2):  # the second time from the caches
            for name, digest, verified, reason in questions:
                answer = _verify(c, name, digest)
                assert (answer["verified"], answer["reason"]) == (verified, reason)
                assert answer == _verify(c, name, digest, routed=True)
                if answer["entry"] is not None:
                    _check_proof(backend, answer)
        assert c.get("/health").json() == c.get("/health?via=route").json()
        assert c.get("/health").json()["size"] == 5
    metrics = httpx.get(backend.url + "/metrics").text
    assert 'route="/api/v1/verify",method="POST",status="200"' in metrics
    assert 'route="/api/v1/entries",method="POST",status="201"' in metrics


def test_refusals_still_come_from_the_routes(backend: Server) -> None:
    """What the fast paths do not take gets the documented error, and nothing is written."""
    with backend.client() as c:
        r = c.post("/entries", json={"name": "x", "digest": "ab" * 32})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.post(
            "/entries",
            json={"name": "x", "digest": "ab" * 32, "size": 2**53},
            headers=backend.auth(),
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = c.post("/verify", json={"name": "x", "digest": "AB" * 32})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = c.post("/verify", json={"name": "x" * 257, "digest": "ab" * 32})
        assert r.status_code == 422
        r = c.post("/verify", content=b'{"name": "x", "digest": ', headers=_json())
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
        assert c.get("/health").json()["size"] == 0


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_answers_follow_appends_by_another_process(backend: Server) -> None:
    """The server caches per signed checkpoint: a registration written by someone else (here
    the library, as `modelchain register` would) shows in the very next answer."""
    with backend.client() as c:
        first = _verify(c, "late", digest_of("l1"))
        assert first["reason"] == "not_registered"
        size = c.get("/health").json()["size"]
        with Ledger.open(backend.ledger, home=backend.home) as ledger:
            ledger.append(name="late", model_hash=digest_of("l1"))
        answer = _verify(c, "late", digest_of("l1"))
        assert answer["verified"] is True
        assert answer["inclusion_proof"]["size"] == size + 1
        _check_proof(backend, answer)
        assert c.get("/health").json()["size"] == size + 1
        with Ledger.open(backend.ledger, home=backend.home) as ledger:
            ledger.append(name="late", model_hash=digest_of("l2"))
        again = _verify(c, "late", digest_of("l1"))
        assert (again["verified"], again["reason"]) == (False, "older_version")
        assert again["entry"]["block"]["version"] == 2
        _check_proof(backend, again)


# -- the cache against the store, as a property ---------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
DIGESTS = st.sampled_from([digest_of(str(i)) for i in range(4)])
STEPS = st.lists(
    st.tuples(st.sampled_from(["append", "ask", "ask"]), NAMES, DIGESTS), min_size=1, max_size=25
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_cached_lookups_answer_like_the_store(
    tmp_path_factory: pytest.TempPathFactory, steps
) -> None:
    base = tmp_path_factory.mktemp("cache")
    home = base / "home"
    location = str(base / "data" / "ledger.db")
    init_ledger(location, home)
    with (
        Ledger.open(location, home=home) as writer,
        LocalLedger.open(location, home=home, lookup_cache=LookupCache()) as cached,
        Ledger.open(location, home=home) as plain,
    ):
        for action, name, digest in steps:
            if action == "append":  # another Ledger: the cached one learns only from the note
                writer.append(name=name, model_hash=digest)
                continue
            want = _summary(plain.lookup(name, digest))
            assert _summary(cached.lookup(name, digest)) == want
            from_cache = cached.cached_lookup(name, digest, cached.read_checkpoint()[0])
            assert from_cache is not None and _summary(from_cache) == want


def _summary(found: Any) -> tuple:
    return (
        found.verified,
        found.reason,
        found.message,
        found.note,
        None if found.newest is None else (found.newest[0].index, found.newest[1]),
        found.newest_proof,
        None if found.matched is None else found.matched[0].index,
        found.matched_proof,
    )


# -- shared checkpoint reads ----------------------------------------------------------------


class _FakeLedger:
    def __init__(self, store: dict[str, int]) -> None:
        self.store = store

    def checkpoint(self) -> str:
        self.store["reads"] += 1
        return f"note {self.store['version']}"

    def read_checkpoint(self) -> tuple[str, Any]:
        return self.checkpoint(), self.store["version"]


class _FakeReaders:
    """A database reader whose reads take a while and may see a newer note."""

    inline = False

    def __init__(self) -> None:
        self.store = {"version": 0, "reads": 0}

    def get(self) -> _FakeLedger:
        return _FakeLedger(self.store)

    async def run(self, fn: Any) -> Any:
        await asyncio.sleep(0.002)
        return fn(self.get())


def test_concurrent_requests_share_reads_and_none_sees_an_older_note() -> None:
    from modelchain.server.readers import SignedView as _Signed

    readers = _FakeReaders()
    signed = _Signed(readers)  # type: ignore[arg-type]

    async def request(delay: float) -> None:
        await asyncio.sleep(delay)
        seen_before = readers.store["version"]  # acknowledged before the request came
        note, _cp = await signed.current()
        assert int(note.split()[1]) >= seen_before

    async def writer() -> None:
        for _ in range(20):
            await asyncio.sleep(0.001)
            readers.store["version"] += 1

    async def main() -> None:
        await asyncio.gather(writer(), *(request(i * 0.0002) for i in range(200)))

    asyncio.run(main())
    assert readers.store["reads"] < 150  # requests shared reads


# -- SQLite: a process with two stores on one file still sees other processes' writes --------


def test_sqlite_readers_see_writes_after_a_second_store_opened(tmp_path: Path) -> None:
    """A server holds two connections to its ledger (reader, writer). Opening the second
    once re-read the file's header with open()/close(), which dropped the first one's POSIX
    locks; a `modelchain register` that then closed its own connection reset the WAL, and the
    server went on answering from the old snapshot."""
    import subprocess
    import sys

    home = tmp_path / "home"
    location = str(tmp_path / "data" / "ledger.db")
    init_ledger(location, home)
    with Ledger.open(location, home=home) as reader, Ledger.open(location, home=home):
        for i in range(2):
            code = (
                "import sys; from modelchain import Ledger\n"
                "with Ledger.open(sys.argv[1], home=sys.argv[2]) as l:\n"
                "    l.append(name='m', model_hash=sys.argv[3])\n"
            )
            subprocess.run(
                [sys.executable, "-c", code, location, str(home), digest_of(str(i))],
                check=True,
                timeout=60,
            )
            assert reader.read_checkpoint()[1].size == i + 1
            assert reader.lookup("m", digest_of(str(i))).verified
