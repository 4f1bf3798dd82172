"""The service proves its /verify answers by the signed index, and a remote `verify` checks
that proof: the newest version, an older one (named), a version pin and an unregistered name
against a real `modelchain serve`; the index proof it serves is cached per checkpoint and name
and follows appends by another process (index nodes are rewritten in place)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Run, assert_clean_error, assert_ok
from server_util import BACKENDS, Server, init_ledger, served_backend

from modelchain import Ledger
from modelchain.checks.proven import check_newest
from modelchain.core.index import Proof
from modelchain.core.note import Checkpoint, open_checkpoint
from modelchain.ledgers import LocalLedger
from modelchain.log.home import Home
from modelchain.server.lookups import LookupCache


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A fresh server over SQLite, and over PostgreSQL when MODELCHAIN_TEST_PG_DSN is set."""
    yield from served_backend(request.param, tmp_path, "mc_index_")


def _signed(server: Server, note: str) -> Checkpoint:
    origin = httpx.get(server.api + "/log").json()["origin"]
    key = Home(server.home).operator_signer(create=False).with_name(origin).verifier()
    return open_checkpoint(note, key)


def _newest(answer: dict[str, Any]) -> tuple[int, bytes, list[bytes]] | None:
    entry = answer["entry"]
    if entry is None:
        return None
    hashes = [bytes.fromhex(h) for h in answer["inclusion_proof"]["hashes"]]
    return entry["index"], entry["data"].encode(), hashes


def _checked(server: Server, name: str, answer: dict[str, Any]) -> Any:
    """What a client believes of `answer`: `check_newest` under the checkpoint it names."""
    proof = Proof.from_bytes(base64.b64decode(answer["index_proof"]))
    checkpoint = _signed(server, answer["checkpoint"])
    return check_newest(server.url, checkpoint, name, proof, _newest(answer))


def _model(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_remote_verify_is_proven_by_the_index(
    backend: Server, run: Run, workdir: Path, home: Path
) -> None:
    at = ("--ledger", backend.url)
    token = {"MODELCHAIN_TOKEN": backend.token()}
    v1 = _model(workdir / "v1.bin", b"first weights")
    v2 = _model(workdir / "v2.bin", b"second weights")
    for model in (v1, v2):
        assert_ok(run(*at, "register", model, "--name", "net", **token))

    newest = assert_ok(run(*at, "verify", v2, "--name", "net"))
    assert "Proved the newest version by the signed index" in newest.stdout
    assert "v2" in newest.stdout
    as_json = json.loads(assert_ok(run(*at, "verify", v2, "--name", "net", "--json")).stdout)
    assert as_json["ledger"]["checked"] == "index and inclusion proofs"

    older = run(*at, "verify", v1, "--name", "net")
    assert_clean_error(older, 1, "not the newest registered version", "v1")

    pinned = assert_ok(run(*at, "verify", v1, "--name", "net", "--version", "1"))
    assert "v1" in pinned.stdout
    wrong_pin = run(*at, "verify", v2, "--name", "net", "--version", "1")
    assert_clean_error(wrong_pin, 1)

    unknown = run(*at, "verify", v1, "--name", "never-registered")
    assert_clean_error(unknown, 1, "'never-registered' is not registered")


def test_the_served_proofs_hold_and_verify_carries_the_same(backend: Server) -> None:
    with Ledger.open(backend.ledger, home=backend.home) as ledger:
        for i in range(5):
            ledger.append(name=f"m{i % 2}", model_hash=f"{i:064x}")
    with backend.client() as c:
        for name, index, versions in (("m0", 4, 3), ("m1", 3, 2)):
            answer = c.get("/proof/index", params={"name": name}).json()
            block = _checked(backend, name, answer)
            assert (block.index, block.version) == (index, versions)
            for _ in range(2):  # the fast path, the second time from its caches
                verdict = c.post("/verify", json={"name": name, "digest": "0" * 64}).json()
                assert verdict["index_proof"] == answer["index_proof"]
                assert verdict["checkpoint"] == answer["checkpoint"]
        absent = c.get("/proof/index", params={"name": "nobody"}).json()
        assert absent["entry"] is None and absent["inclusion_proof"] is None
        assert _checked(backend, "nobody", absent) is None
        verdict = c.post("/verify", json={"name": "nobody", "digest": "0" * 64}).json()
        assert verdict["reason"] == "not_registered"
        assert verdict["index_proof"] == absent["index_proof"]
        bad = c.get("/proof/index", params={"name": ""})
        assert bad.status_code == 422


def test_the_proof_follows_appends_by_another_process(backend: Server) -> None:
    with backend.client() as c:
        before = c.get("/proof/index", params={"name": "x"}).json()
        assert _checked(backend, "x", before) is None
        with Ledger.open(backend.ledger, home=backend.home) as ledger:
            ledger.append(name="x", model_hash="1" * 64)
        after = c.get("/proof/index", params={"name": "x"}).json()
        assert after["checkpoint"] != before["checkpoint"]
        assert _checked(backend, "x", after).version == 1
        verdict = c.post("/verify", json={"name": "x", "digest": "1" * 64}).json()
        assert verdict["verified"] is True and verdict["index_proof"] == after["index_proof"]


def test_a_lookup_under_a_superseded_checkpoint_reads_again(tmp_path: Path) -> None:
    """Index nodes are rewritten in place by an append: a service reading them under the
    note it read before (another process appended meanwhile) answers under the newer note,
    never with a false alarm about a changed index."""
    home, location = tmp_path / "home", str(tmp_path / "data" / "ledger.db")
    init_ledger(location, home)
    with (
        Ledger.open(location, home=home) as writer,
        LocalLedger.open(location, home=home, lookup_cache=LookupCache()) as service,
    ):
        writer.append(name="a", model_hash="a" * 64)
        old = service.read_checkpoint()
        writer.append(name="a", model_hash="b" * 64)
        note, checkpoint, state = service.name_proof("a", signed=old)
        assert note != old[0] and checkpoint.size == old[1].size + 1
        assert state.newest is not None and state.newest[0].version == 2
        found = service.lookup("a", "b" * 64, signed=old)
        assert found.verified and found.note == note
        assert found.index_proof == state.index_proof


def test_a_name_lookup_that_misses_the_newest_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service checks the index proof it is about to serve against the block its name
    lookup found: a lookup that misses the newest block (a damaged lookup index) fails
    there, with the reason, instead of serving an older version to every client."""
    from modelchain.core.errors import LedgerInvalid

    home, location = tmp_path / "home", str(tmp_path / "data" / "ledger.db")
    init_ledger(location, home)
    with Ledger.open(location, home=home) as writer:
        writer.append(name="a", model_hash="a" * 64)
        writer.append(name="a", model_hash="b" * 64)
    with LocalLedger.open(location, home=home) as service:
        find = service.store.find
        monkeypatch.setattr(service.store, "find", lambda **kw: find(**kw)[:-1])
        with pytest.raises(LedgerInvalid, match="the signed index does not agree"):
            service.name_proof("a")
        with pytest.raises(LedgerInvalid, match="the signed index does not agree"):
            service.lookup("a", "a" * 64)
