"""Replaying a registration signature. Anyone who can append (another team's write token, a
local writer) can copy a signed registration out of the public log and post it again. It
must never become a new version "signed by alice": not in the same log (v1 re-posted as v3),
not in another log (staging's copied into production), not through the service. A signature
names the log and the version it makes, and the ledger refuses one it already holds."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import assert_clean_error, assert_ok
from server_util import running_server

from modelchain.claims import claim as reg
from modelchain.claims import keys
from modelchain.core.errors import ModelMismatch, SignatureError
from modelchain.fs.digest import digest_path
from modelchain.ledgers import Ledger
from modelchain.log.block import Block


@pytest.fixture
def alice(home: Path) -> keys.PrivateKey:
    ring = keys.KeyRing(home)
    ring.generate("alice")
    return ring.private("alice")


def _replay_fields(block: Block) -> dict[str, Any]:
    """What an attacker copies out of the public log: the claim and its signatures."""
    return dict(
        name=block.name,
        model_hash=block.model_hash,
        kind=block.kind,
        size=block.size,
        manifest=block.manifest,
        metadata=dict(block.metadata),
        provenance=block.provenance,
        signatures=list(block.signatures),
    )


def _new_version(model: Path) -> Path:
    model.write_bytes(model.read_bytes() + b"\0")
    return model


def test_the_same_log_refuses_a_replayed_signature(
    home: Path, workdir: Path, model: Path, alice
) -> None:
    location = workdir / "l.db"
    with Ledger.open(location, create=True) as ledger:
        v1 = ledger.register(model, name="m", sign_keys=[alice])
        old = model.read_bytes()
        v2 = ledger.register(_new_version(model), name="m", sign_keys=[alice])
        with pytest.raises(SignatureError, match="already holds"):
            ledger.append(**_replay_fields(v1))
        assert len(ledger) == 2
        # the copy, signature bytes altered so they are not "held": made for v1, not v3
        sig = v1.signatures[0]
        raw = base64.b64decode(sig.sig)
        other = reg.RegistrationSignature(
            sig.keyid,
            sig.key_type,
            sig.public_key,
            base64.b64encode(raw[::-1]).decode(),
            sig.payload_type,
        )
        with pytest.raises(SignatureError, match="does not verify"):
            ledger.append(**{**_replay_fields(v1), "signatures": [other]})
        assert len(ledger) == 2
        assert ledger.verify(model, name="m", signers=["alice"]).block == v2
    withdrawn = workdir / "withdrawn.bin"
    withdrawn.write_bytes(old)
    with Ledger.open(location) as ledger, pytest.raises(ModelMismatch, match="not the newest"):
        ledger.verify(withdrawn, name="m", signers=["alice"])


@pytest.mark.parametrize("backend", ["json", "sqlite", "postgres"])
def test_every_store_refuses_the_replay(
    request: pytest.FixtureRequest, home: Path, workdir: Path, alice, backend: str
) -> None:
    """The rule is the ledger's, so it holds whatever stores the blocks."""
    location = {"json": str(workdir / "l.json"), "sqlite": str(workdir / "l.db")}.get(backend)
    if location is None:
        location = request.getfixturevalue("pg_ledger")
    with Ledger.open(location, create=True) as ledger:
        v1 = ledger.append(name="m", model_hash="a" * 64, size=1, sign_keys=[alice])
        ledger.append(name="m", model_hash="b" * 64, size=1, sign_keys=[alice])
        with pytest.raises(SignatureError, match="already holds"):
            ledger.append(**_replay_fields(v1))
        assert len(ledger) == 2
        ledger.audit()


def test_an_unbound_copy_is_refused(home: Path, workdir: Path, model: Path, alice) -> None:
    """Stripping the payload type makes the signature claim the old unbound kind: refused
    for any new registration (and it would not verify as one either)."""
    with Ledger.open(workdir / "l.db", create=True) as ledger:
        v1 = ledger.register(model, name="m", sign_keys=[alice])
        sig = v1.signatures[0]
        unbound = reg.RegistrationSignature(sig.keyid, sig.key_type, sig.public_key, sig.sig)
        with pytest.raises(SignatureError, match="unbound"):
            ledger.append(**{**_replay_fields(v1), "signatures": [unbound]})
        # an unbound signature freshly made over the old claim is refused all the same
        (legacy,) = reg.sign([alice], reg.signed_message(v1.claim()))
        with pytest.raises(SignatureError, match="unbound"):
            ledger.append(**{**_replay_fields(v1), "signatures": [legacy]})
        assert len(ledger) == 1


def test_another_log_refuses_a_copied_signature(
    home: Path, workdir: Path, model: Path, alice
) -> None:
    with Ledger.open(workdir / "staging.db", create=True) as staging:
        staging.init("example.com/staging")
        signed = staging.register(model, name="m", sign_keys=[alice])
    with Ledger.open(workdir / "production.db", create=True) as production:
        production.init("example.com/production")
        with pytest.raises(SignatureError, match=r"example\.com/production.*does not verify"):
            production.append(**_replay_fields(signed))
        assert len(production) == 0
    # the signature names its log: in staging it is valid, checked as production's it is not
    assert signed.signature_problems("example.com/staging")[0][1] is None
    assert signed.signature_problems("example.com/production")[0][1] is not None


def test_a_signature_is_for_the_version_it_was_prepared_for(
    home: Path, workdir: Path, model: Path, alice
) -> None:
    """Signed in `prepare`, appended later: if the name was registered meanwhile, the
    signature names the wrong version and nothing is written."""
    with Ledger.open(workdir / "l.db", create=True) as ledger:
        entry = ledger.prepare(name="m", model_hash="a" * 64, size=1, sign_keys=[alice])
        assert entry.binding is not None and entry.binding[1] == 1
        ledger.append(name="m", model_hash="b" * 64, size=1)
        with pytest.raises(SignatureError, match=r"for v1 .* would be v2"):
            ledger.append_many([entry])
        assert len(ledger) == 1


def test_old_unbound_signatures_audit_but_do_not_satisfy_signer(
    run, home: Path, workdir: Path, model: Path, alice
) -> None:
    """A block written by a release whose signatures named no log or version still audits
    (the signature is what it is), but `verify --signer` says it is of the unbound kind."""
    with Ledger.open(workdir / ".modelchain" / "ledger.db", create=True) as ledger:
        digest = digest_path(model)
        entry = ledger.prepare(
            name=model.name, model_hash=digest.sha256, kind=digest.kind, size=digest.size
        )
        claim = reg.claim(
            name=entry.name,
            model_hash=entry.model_hash,
            kind=entry.kind,
            size=entry.size,
            manifest=None,
            metadata=entry.metadata,
            provenance=entry.provenance,
        )
        unbound = reg.sign([alice], reg.signed_message(claim))
        # as that release wrote it: `append_many` takes the entry as prepared elsewhere
        ledger.append_many([dataclasses.replace(entry, signatures=unbound)])
    assert_ok(run("audit"))
    assert_clean_error(run("verify", model, "--signer", "alice"), 1, "unbound", "replay")
    shown = assert_ok(run("show", model.name)).stdout
    assert "valid    ed25519" in shown and "[unbound" in shown
    assert (
        json.loads(assert_ok(run("show", model.name, "--json")).stdout)["signatures"][0]["bound"]
        is False
    )


# -- through the service ------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path):
    srv_home = tmp_path / "srv-home"
    location = str(tmp_path / "srv-data" / "ledger.db")
    with Ledger.open(location, home=srv_home, create=True) as ledger:
        ledger.init("example.com/production")
        vkey = ledger.verifier_for("example.com/production").string()
    with running_server(location, srv_home) as server:
        yield server, vkey


def _replay_body(entry: dict[str, Any]) -> dict[str, Any]:
    block = json.loads(entry["data"])
    body = {k: block[k] for k in ("name", "kind", "size", "metadata", "manifest", "signatures")}
    body["digest"] = block["model_hash"]
    if "provenance" in block:
        body["provenance"] = block["provenance"]
    return body


def test_replay_through_the_service_is_refused(
    run, served, workdir: Path, model: Path, alice
) -> None:
    server, vkey = served
    token = server.token()
    at = ("--ledger", server.url, "--key", vkey)
    registered = run("register", model, *at, "--name", "m", "--sign-key", "alice", "--json",
              MODELCHAIN_TOKEN=token)  # fmt: skip
    v1 = json.loads(assert_ok(registered).stdout)["block"]
    assert v1["signatures"][0]["payload_type"] == reg.BOUND_PAYLOAD_TYPE
    old = model.read_bytes()
    assert_ok(run("register", _new_version(model), *at, "--name", "m", "--sign-key", "alice",
                  MODELCHAIN_TOKEN=token))  # fmt: skip

    entry = httpx.get(f"{server.api}/entries/{v1['index']}").json()  # the public log
    with server.client() as c:
        answer = c.post("/entries", json=_replay_body(entry), headers=server.auth())
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "bad_signature"
        assert "already holds" in answer.json()["error"]["message"]
        stripped = _replay_body(entry)
        del stripped["signatures"][0]["payload_type"]
        answer = c.post("/entries", json=stripped, headers=server.auth())
        assert answer.status_code == 422 and "unbound" in answer.text
    assert httpx.get(f"{server.api}/health").json()["size"] == 2

    assert_ok(run("verify", model, *at, "--name", "m", "--signer", "alice"))
    withdrawn = workdir / "withdrawn.bin"
    withdrawn.write_bytes(old)
    assert_clean_error(
        run("verify", withdrawn, *at, "--name", "m", "--signer", "alice"), 1, "not the newest"
    )


def test_a_staging_signature_posted_to_production_is_refused(
    served, workdir: Path, model: Path, alice
) -> None:
    server, _vkey = served
    with Ledger.open(workdir / "staging.db", create=True) as staging:
        staging.init("example.com/staging")
        staging.register(model, name="m", sign_keys=[alice])
        (entry_block, data) = next(staging.entries())
    entry = {"data": data.decode()}
    with server.client() as c:
        answer = c.post("/entries", json=_replay_body(entry), headers=server.auth())
    assert answer.status_code == 422, answer.text
    assert "does not verify" in answer.json()["error"]["message"]
    assert entry_block.signatures and httpx.get(f"{server.api}/health").json()["size"] == 0
