"""`modelchain serve` as clients see it: real uvicorn processes on 127.0.0.1, real HTTP.

Every answer that makes a claim is checked the way a distrustful client would: leaf hashes
recomputed from `data`, proofs folded up to the root of the signed checkpoint, the checkpoint
opened with the operator's verifier key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import assert_clean_error, assert_ok, sha256sum
from hypothesis import given, settings
from hypothesis import strategies as st
from server_util import (
    BACKENDS,
    Server,
    init_ledger,
    running_server,
    served_backend,
)

from modelchain.core import merkle
from modelchain.core.note import Verifier, open_checkpoint

H = "0123456789abcdef" * 4  # a digest nobody registered


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_entry(entry: dict) -> None:
    """What a client does with an entry: hash the leaf data it was given."""
    data = entry["data"].encode()
    assert merkle.leaf_hash(data).hex() == entry["leaf_hash"]
    assert json.loads(data) == entry["block"]
    assert entry["block"]["index"] == entry["index"]


def check_proof(server: Server, entry: dict, proof: dict, note: str) -> None:
    """The proof ties the entry to the root of a checkpoint signed by the operator key."""
    vkey = httpx.get(server.api + "/log").json()["verifier_key"]
    checkpoint = open_checkpoint(note, Verifier.from_string(vkey))
    assert proof["size"] == checkpoint.size
    assert proof["root_hash"] == checkpoint.root_hash.hex()
    merkle.verify_inclusion(
        entry["index"],
        proof["size"],
        bytes.fromhex(entry["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["hashes"]],
        checkpoint.root_hash,
    )


def register(client: httpx.Client, server: Server, name: str, digest: str, **more):
    return client.post(
        "/entries", json={"name": name, "digest": digest, **more}, headers=server.auth()
    )


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with three registrations, for the tests that only read or get refused."""
    base = tmp_path_factory.mktemp("srv")
    home = base / "home"
    location = str(base / "data" / "ledger.db")
    init_ledger(location, home)
    with running_server(location, home) as server, server.client() as c:
        for name, text in (("iris", "v1"), ("iris", "v2"), ("bert", "b1")):
            assert register(c, server, name, digest_of(text)).status_code == 201
        yield server


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server over a new, empty SQLite ledger (for tests that write)."""
    home = tmp_path / "srv-home"
    location = str(tmp_path / "srv-data" / "ledger.db")
    init_ledger(location, home)
    with running_server(location, home) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A fresh server over SQLite, and over PostgreSQL when MODELCHAIN_TEST_PG_DSN is set."""
    yield from served_backend(request.param, tmp_path, "mc_test_")


# -- registering and reading --------------------------------------------------------------


def test_register_then_read_and_prove(backend: Server) -> None:
    with backend.client() as c:
        r = register(c, backend, "iris", digest_of("m1"), size=975, metadata={"team": "vision"})
        assert r.status_code == 201, r.text
        body = r.json()
        entry = body["entry"]
        check_entry(entry)
        assert entry["block"]["name"] == "iris" and entry["block"]["version"] == 1
        assert entry["block"]["metadata"] == {"team": "vision"}
        check_proof(backend, entry, body["inclusion_proof"], body["checkpoint"])

        second = register(c, backend, "iris", digest_of("m2")).json()["entry"]
        assert (second["index"], second["block"]["version"]) == (1, 2)
        assert second["block"]["previous_hash"] == entry["block"]["current_hash"]

        got = c.get("/entries/0").json()
        assert got == entry
        page = c.get("/entries", params={"start": 0, "limit": 1}).json()
        assert [e["index"] for e in page["entries"]] == [0]
        assert (page["size"], page["next"]) == (2, 1)
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["size"] == 2


def test_http_registration_is_a_valid_ledger_for_the_cli(
    tmp_path: Path, trained_model: Path, run
) -> None:
    """A model registered over HTTP by its sha256sum verifies with `modelchain verify`."""
    home = tmp_path / "srv-home"
    location = str(tmp_path / "srv-data" / "ledger.db")
    init_ledger(location, home)
    model = tmp_path / "iris_model.joblib"
    shutil.copyfile(trained_model, model)
    with running_server(location, home) as server, server.client() as c:
        r = register(c, server, "iris_model.joblib", sha256sum(model), size=model.stat().st_size)
        assert r.status_code == 201, r.text
    env = {"MODELCHAIN_HOME": str(home)}
    assert_ok(run("--ledger", location, "verify", str(model), **env))
    assert_ok(run("--ledger", location, "audit", **env))
    model.write_bytes(model.read_bytes() + b"x")
    assert run("--ledger", location, "verify", str(model), **env).code == 1


def test_directory_registration_with_manifest(fresh: Server, tmp_path: Path, run) -> None:
    from modelchain.fs.digest import hash_directory, manifest_to_json

    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 100)
    manifest = hash_directory(model)
    with fresh.client() as c:
        body = {"kind": "directory", "size": manifest.size}
        r = register(
            c, fresh, "model", manifest.digest, **body, manifest=manifest_to_json(manifest)
        )
        assert r.status_code == 201, r.text
        # a manifest that does not hash to the digest is refused, and nothing is written
        r = register(c, fresh, "model", H, **body, manifest=manifest_to_json(manifest))
        assert "manifest" in error_of(r, 422, "validation_error")
        r = register(c, fresh, "model", manifest.digest, kind="directory")
        assert "manifest" in error_of(r, 422, "validation_error")
        assert c.get("/health").json()["size"] == 1
    assert_ok(run("--ledger", fresh.ledger, "verify", str(model), MODELCHAIN_HOME=str(fresh.home)))


# -- verify -------------------------------------------------------------------------------


def test_verify_judges_kind_and_digest(fresh: Server, tmp_path: Path) -> None:
    """A file holding a directory's manifest JSON has the directory's digest: `/verify`
    (whose `kind` defaults to "file") must not call it that directory, on the fast path or
    through the routes (a request with an unknown field goes there, and is refused)."""
    from modelchain.fs.digest import hash_directory, manifest_to_json

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" * 100)
    manifest = hash_directory(model)
    with fresh.client() as c:
        r = register(
            c,
            fresh,
            "model",
            manifest.digest,
            kind="directory",
            size=manifest.size,
            manifest=manifest_to_json(manifest),
        )
        assert r.status_code == 201, r.text
        asked = {"name": "model", "digest": manifest.digest}
        for body in (asked, {**asked, "kind": "file"}):
            verdict = c.post("/verify", json=body).json()
            assert verdict["verified"] is False and verdict["reason"] == "digest_mismatch"
            assert verdict["entry"]["block"]["kind"] == "directory"
        verdict = c.post("/verify", json={**asked, "kind": "directory"}).json()
        assert verdict["verified"] is True, verdict
        error_of(c.post("/verify", json={**asked, "kind": "dir"}), 422, "validation_error")


def test_verify_answers_with_reasons_and_proofs(shared: Server) -> None:
    with shared.client() as c:
        ok = c.post("/verify", json={"name": "iris", "digest": digest_of("v2")}).json()
        assert ok["verified"] is True and ok["reason"] is None
        assert ok["entry"]["block"]["version"] == 2
        check_entry(ok["entry"])
        check_proof(shared, ok["entry"], ok["inclusion_proof"], ok["checkpoint"])

        old = c.post("/verify", json={"name": "iris", "digest": digest_of("v1")}).json()
        assert (old["verified"], old["reason"]) == (False, "older_version")
        assert old["matched_entry"]["block"]["version"] == 1
        assert "v2" in old["message"]

        bad = c.post("/verify", json={"name": "iris", "digest": H}).json()
        assert (bad["verified"], bad["reason"]) == (False, "digest_mismatch")
        assert bad["entry"]["block"]["model_hash"] == digest_of("v2")

        # bert's digest is registered, but not under this name
        none = c.post("/verify", json={"name": "nobody", "digest": digest_of("b1")}).json()
        assert (none["verified"], none["reason"], none["entry"]) == (False, "not_registered", None)


def test_search_by_name_and_digest(shared: Server) -> None:
    with shared.client() as c:
        by_name = c.get("/search", params={"name": "iris"}).json()["entries"]
        assert [e["block"]["version"] for e in by_name] == [1, 2]
        for entry in by_name:
            check_entry(entry)
        by_digest = c.get("/search", params={"digest": digest_of("b1")}).json()["entries"]
        assert [e["block"]["name"] for e in by_digest] == ["bert"]
        both = c.get("/search", params={"name": "iris", "digest": digest_of("b1")}).json()
        assert both["entries"] == []
        error_of(c.get("/search"), 400, "bad_request")
        error_of(c.get("/search", params={"digest": "XYZ"}), 422, "validation_error")


# -- proofs -------------------------------------------------------------------------------


def test_inclusion_and_consistency_proofs_verify(shared: Server) -> None:
    with shared.client() as c:
        log = c.get("/log").json()
        checkpoint = open_checkpoint(log["checkpoint"], Verifier.from_string(log["verifier_key"]))
        assert c.get("/checkpoint").text == log["checkpoint"]
        assert log["root_hash"] == checkpoint.root_hash.hex() and log["size"] == 3
        for index in range(3):
            p = c.get("/proof/inclusion", params={"index": index}).json()
            entry = c.get(f"/entries/{index}").json()
            assert p["leaf_hash"] == entry["leaf_hash"]
            check_proof(shared, entry, p, log["checkpoint"])
        old = c.get("/proof/inclusion", params={"index": 0, "size": 2}).json()
        for old_size in range(0, 4):
            p = c.get("/proof/consistency", params={"old": old_size}).json()
            assert p["new"] == 3 and p["new_root"] == log["root_hash"]
            merkle.verify_consistency(
                old_size,
                3,
                bytes.fromhex(p["old_root"]),
                checkpoint.root_hash,
                [bytes.fromhex(h) for h in p["hashes"]],
            )
        p = c.get("/proof/consistency", params={"old": 2}).json()
        assert p["old_root"] == old["root_hash"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/proof/inclusion", {"index": 0, "size": 4}),  # size beyond the tree
        ("/proof/inclusion", {"index": 3}),  # index beyond the tree
        ("/proof/inclusion", {"index": 2, "size": 2}),
        ("/proof/inclusion", {"index": -1}),
        ("/proof/inclusion", {"index": 0, "size": 0}),
        ("/proof/inclusion", {"index": 2**70}),
        ("/proof/inclusion", {}),
        ("/proof/consistency", {"old": 1, "new": 9}),  # new beyond the tree
        ("/proof/consistency", {"old": 3, "new": 2}),
        ("/proof/consistency", {"old": 2**64}),
        ("/proof/consistency", {"old": "one"}),
    ],
)
def test_impossible_proofs_are_422(shared: Server, path: str, params: dict) -> None:
    with shared.client() as c:
        error_of(c.get(path, params=params), 422, "validation_error")


# -- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "status"),
    [("-1", 422), (str(2**70), 422), (str(2**63), 422), ("3", 404), ("99", 404), ("x", 422)],
)
def test_bad_indices(shared: Server, index: str, status: int) -> None:
    with shared.client() as c:
        error_of(
            c.get(f"/entries/{index}"), status, "not_found" if status == 404 else "validation_error"
        )


def test_paging_limits(shared: Server) -> None:
    with shared.client() as c:
        error_of(c.get("/entries", params={"limit": 1001}), 422, "validation_error")
        error_of(c.get("/entries", params={"limit": 0}), 422, "validation_error")
        error_of(c.get("/entries", params={"start": -5}), 422, "validation_error")
        beyond = c.get("/entries", params={"start": 2**62}).json()
        assert beyond["entries"] == [] and beyond["next"] is None


def test_writes_need_a_write_token(shared: Server) -> None:
    body = {"name": "evil", "digest": H}
    with shared.client() as c:
        r = c.post("/entries", json=body)
        assert "token" in error_of(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        error_of(
            c.post("/entries", json=body, headers={"Authorization": "Bearer mc_nope"}),
            401,
            "unauthorized",
        )
        error_of(
            c.post("/entries", json=body, headers={"Authorization": "Basic dTpw"}),
            401,
            "unauthorized",
        )
        r = c.post("/entries", json=body, headers=shared.auth("read"))
        assert "read scope" in error_of(r, 403, "forbidden")
        # the auth check comes first: a bad body without a token is still a 401
        error_of(c.post("/entries", json={"x": 1}), 401, "unauthorized")
        assert c.get("/search", params={"name": "evil"}).json()["entries"] == []


def test_revoked_and_expired_tokens_stop_working_without_restart(fresh: Server, run) -> None:
    env = {"MODELCHAIN_HOME": str(fresh.home)}
    created = json.loads(
        assert_ok(
            run("token", "create", "--scope", "write", "--name", "ci", "--json", **env)
        ).stdout
    )
    headers = {"Authorization": f"Bearer {created['token']}"}
    with fresh.client() as c:
        assert (
            c.post("/entries", json={"name": "a", "digest": H}, headers=headers).status_code == 201
        )
        assert_ok(run("token", "revoke", "ci", **env))
        error_of(
            c.post("/entries", json={"name": "a", "digest": H}, headers=headers),
            401,
            "unauthorized",
        )
        assert c.get("/health").json()["size"] == 1


def test_malformed_unknown_and_oversize_bodies(shared: Server) -> None:
    auth = shared.auth()
    json_headers = {**auth, "Content-Type": "application/json"}
    with shared.client() as c:
        error_of(
            c.post("/entries", content=b'{"name": "x", ', headers=json_headers),
            400,
            "malformed_json",
        )
        error_of(
            c.post("/verify", content=b"\xff\xfe", headers=json_headers), 400, "malformed_json"
        )
        msg = error_of(
            c.post("/entries", json={"name": "x", "digest": H, "owner": "me"}, headers=auth),
            422,
            "validation_error",
        )
        assert "owner" in msg and "unknown" in msg
        error_of(
            c.post("/verify", json={"name": "x", "digest": H, "extra": 1}), 422, "validation_error"
        )
        for bad in (
            {"name": "x"},
            {"name": "", "digest": H},
            {"name": "x", "digest": H.upper()},
            {"name": "x", "digest": H, "size": -1},
            {"name": "x", "digest": H, "kind": "dir"},
            {"name": "x", "digest": H, "metadata": {"n": 2**60}},
            {"name": "x", "digest": H, "metadata": [1]},
            [1, 2],
            "text",
            None,
        ):
            error_of(c.post("/entries", json=bad, headers=auth), 422, "validation_error")
        big = {"name": "x", "digest": H, "metadata": {"blob": "a" * (2 << 20)}}
        error_of(c.post("/entries", json=big, headers=auth), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            yield b'{"name": "x", "digest": "' + H.encode() + b'", "metadata": {"b": "'
            for _ in range(40):
                yield b"a" * 65536
            yield b'"}}'

        error_of(
            c.post("/entries", content=chunks(), headers=json_headers), 413, "payload_too_large"
        )
        error_of(
            c.post(
                "/entries",
                content=b"name=x",
                headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
            "unsupported_media_type",
        )
        error_of(c.get("/no/such/thing"), 404, "not_found")
        error_of(c.delete("/entries/0"), 405, "method_not_allowed")
        assert c.get("/health").json()["size"] == 3  # nothing was written


# -- metrics ------------------------------------------------------------------------------

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+$')


def test_metrics_are_prometheus_text(shared: Server) -> None:
    httpx.get(shared.api + "/entries/999")
    text = httpx.get(shared.url + "/metrics").text
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) \w+ ", line), line
            continue
        assert SAMPLE.match(line), line
        key, value = line.rsplit(" ", 1)
        samples[key] = float(value)
    assert samples["modelchain_ledger_size"] == 3
    assert samples["modelchain_appends_total"] == 3
    key = (
        'modelchain_http_requests_total{route="/api/v1/entries/{index}",method="GET",status="404"}'
    )
    assert samples[key] >= 1


# -- concurrency --------------------------------------------------------------------------


def _hammer(server: Server, threads: int, each: int) -> list[dict]:
    results: list[dict] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        with server.client() as c:
            for i in range(each):
                r = register(c, server, f"model-{t % 5}", digest_of(f"{t}-{i}"))
                with lock:
                    if r.status_code == 201:
                        results.append(r.json()["entry"])
                    else:
                        failures.append(r.text)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert failures == []
    return results


def test_concurrent_registrations_are_contiguous_and_audit(backend: Server, run) -> None:
    entries = _hammer(backend, 20, 50)
    assert sorted(e["index"] for e in entries) == list(range(1000))
    versions: dict[str, list[int]] = {}
    for e in sorted(entries, key=lambda e: e["index"]):
        versions.setdefault(e["block"]["name"], []).append(e["block"]["version"])
    for name, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), name
    metrics = httpx.get(backend.url + "/metrics").text
    batches = float(
        re.search(r"^modelchain_append_batch_size_count (\S+)$", metrics, re.M).group(1)
    )
    assert batches < 1000  # group commit: some batches held several registrations
    assert_ok(run("--ledger", backend.ledger, "audit", MODELCHAIN_HOME=str(backend.home)))


def test_two_workers_share_one_ledger(tmp_path: Path, run) -> None:
    home = tmp_path / "srv-home"
    location = str(tmp_path / "srv-data" / "ledger.db")
    init_ledger(location, home)
    with running_server(location, home, "--workers", "2") as server:
        entries = _hammer(server, 8, 25)
        assert sorted(e["index"] for e in entries) == list(range(200))
        assert httpx.get(server.api + "/health").json()["size"] == 200
    assert_ok(run("--ledger", location, "audit", MODELCHAIN_HOME=str(home)))


# -- the commands -------------------------------------------------------------------------


def test_token_commands_store_only_a_hash(home: Path, run) -> None:
    out = assert_ok(run("token", "create", "--scope", "write", "--name", "ci")).stdout
    token = out.strip()
    assert re.fullmatch(r"mc_[A-Za-z0-9_-]{43}", token)
    stored = (home / "tokens.json").read_text()
    assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored
    assert stat.S_IMODE((home / "tokens.json").stat().st_mode) == 0o600
    listed = json.loads(assert_ok(run("token", "list", "--json")).stdout)["tokens"]
    assert [(t["name"], t["scope"]) for t in listed] == [("ci", "write")]
    assert token not in json.dumps(listed) and "sha256" not in listed[0]
    assert_clean_error(run("token", "revoke", "nobody"), 2, "no token")
    assert_ok(run("token", "revoke", listed[0]["id"]))
    assert json.loads(assert_ok(run("token", "list", "--json")).stdout)["tokens"] == []
    assert run("token", "create", "--scope", "admin").code == 2
    assert_clean_error(run("token", "create", "--scope", "read", "--expires", "-1"), 2)
    (home / "tokens.json").write_text("{not json")
    os.chmod(home / "tokens.json", 0o600)
    assert_clean_error(run("token", "list"), 2, "tokens.json")


def test_serve_refuses_bad_setups(workdir: Path, home: Path, run) -> None:
    assert_clean_error(run("--ledger", "missing.db", "serve"), 2, "missing.db")
    init_ledger(str(workdir / "l.db"), home)
    assert_clean_error(run("--ledger", "l.db", "serve", "--host", "0.0.0.0"), 2, "--allow-remote")
    with running_server(str(workdir / "l.db"), home, cwd=workdir) as server:
        port = server.url.rsplit(":", 1)[1]
        assert_clean_error(run("--ledger", "l.db", "serve", "--port", port), 2, "cannot listen")
    assert run("--ledger", "l.db", "serve", "--workers", "0").code == 2


# -- provenance and registration signatures in POST /entries ------------------------------

PROVENANCE = {
    "predicateType": "https://modelchain.dev/provenance/v1",
    "predicate": {"hyperparameters": {"lr": 0.1}, "metrics": {"accuracy": 0.97}},
}


def signed_body(
    name: str,
    digest: str,
    keys: list,
    provenance: dict | None = None,
    origin: str = "example.com/unknown",
    version: int = 1,
) -> dict:
    """A registration signed by `keys` the way the client signs one: over the claim bound to
    the log's origin and the version it makes."""
    from modelchain.claims.claim import BOUND_PAYLOAD_TYPE, claim, sign, signed_message

    message = signed_message(
        claim(
            name=name,
            model_hash=digest,
            kind="file",
            size=0,
            provenance=provenance,
            log=origin,
            version=version,
        )
    )
    body: dict = {"name": name, "digest": digest, "signatures": []}
    if provenance is not None:
        body["provenance"] = provenance
    body["signatures"] = [s.to_json() for s in sign(keys, message, BOUND_PAYLOAD_TYPE)]
    return body


def test_provenance_and_signatures_are_stored_as_sent(fresh: Server, run) -> None:
    from modelchain.claims.keys import generate

    keys = [generate("ed25519"), generate("p256")]
    origin = httpx.get(fresh.api + "/health").json()["origin"]
    body = signed_body("signed", digest_of("s1"), keys, PROVENANCE, origin)
    with fresh.client() as c:
        r = c.post("/entries", json=body, headers=fresh.auth())
    assert r.status_code == 201, r.text
    answer = r.json()
    check_entry(answer["entry"])
    check_proof(fresh, answer["entry"], answer["inclusion_proof"], answer["checkpoint"])
    stored = json.loads(answer["entry"]["data"])
    assert stored["provenance"] == PROVENANCE
    assert stored["signatures"] == body["signatures"]
    assert [s["key_type"] for s in stored["signatures"]] == ["ed25519", "p256"]
    # the ledger's own audit checks each registration signature again
    audit = run("--ledger", fresh.ledger, "audit", "--json", MODELCHAIN_HOME=str(fresh.home))
    assert json.loads(assert_ok(audit).stdout)["size"] == 1


def _bad_signature_bodies() -> list:
    from modelchain.claims.keys import generate

    key, other = generate(), generate()
    digest = digest_of("bad")

    def body(**change) -> dict:
        out = signed_body("bad", digest, [key], PROVENANCE)
        sig = out["signatures"][0]
        for field_name, value in change.items():
            if value is None:
                del sig[field_name]
            else:
                sig[field_name] = value
        return out

    over_other_claim = signed_body("another-name", digest, [key], PROVENANCE)
    over_other_claim["name"] = "bad"
    keyid_of_other = body(keyid=other.key_id)
    return [
        pytest.param(over_other_claim, 422, "bad_signature", "does not verify", id="other-claim"),
        pytest.param(keyid_of_other, 422, "bad_signature", "keyid does not match", id="keyid"),
        pytest.param(body(sig="@@@"), 422, "bad_signature", "not base64", id="not-base64"),
        pytest.param(
            body(public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            422,
            "bad_signature",
            "not a readable PEM",
            id="garbage-key",
        ),
        pytest.param(body(sig=None), 422, "validation_error", "exactly keyid", id="no-sig"),
        pytest.param(body(key_type="rsa"), 422, "validation_error", "key_type", id="key-type"),
        pytest.param(
            {**body(), "signatures": "sig"}, 422, "validation_error", "signatures", id="not-list"
        ),
        pytest.param(
            {**body(), "signatures": body()["signatures"] * 17},
            422,
            "validation_error",
            "signatures",
            id="too-many",
        ),
        pytest.param(
            {**body(), "provenance": {"predicateType": 5}},
            422,
            "validation_error",
            "predicateType",
            id="provenance-type",
        ),
        pytest.param(
            {
                **body(),
                "provenance": {
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": "x", "digest": {"sha256": H}}],
                    **PROVENANCE,
                },
            },
            422,
            "validation_error",
            "do not include this model",
            id="statement-about-another-model",
        ),
    ]


@pytest.mark.parametrize(("body", "status", "code", "needle"), _bad_signature_bodies())
def test_bad_signatures_and_provenance_are_refused_and_append_nothing(
    shared: Server, body: dict, status: int, code: str, needle: str
) -> None:
    before = httpx.get(shared.api + "/health").json()["size"]
    with shared.client() as c:
        message = error_of(c.post("/entries", json=body, headers=shared.auth()), status, code)
    assert needle in message, message
    assert httpx.get(shared.api + "/health").json()["size"] == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
signature_like = st.fixed_dictionaries(
    {
        "keyid": st.sampled_from(["0" * 64, "zz", H]),
        "key_type": st.sampled_from(["ed25519", "p256", "rsa"]),
        "public_key": st.text(max_size=40) | st.just("-----BEGIN PUBLIC KEY-----\n"),
        "sig": st.text(max_size=40),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    signatures=st.lists(json_values | signature_like, max_size=3),
    provenance=st.none() | json_values,
)
def test_any_json_in_signatures_or_provenance_is_a_clean_refusal(
    tmp_path_factory: pytest.TempPathFactory, signatures: list, provenance: object
) -> None:
    """What a request body can hold reaches `Ledger.prepare` as is: whatever it is, the
    answer is a ModelchainError (a 422 from the server), never another exception (a 500)."""
    from modelchain.core.errors import ModelchainError
    from modelchain.ledgers import Ledger

    base = tmp_path_factory.getbasetemp()
    location = base / "fuzz-data" / "ledger.db"
    with Ledger.open(location, home=base / "fuzz-home", create=True) as ledger:
        with contextlib.suppress(ModelchainError):
            ledger.prepare(
                name="fuzz",
                model_hash=H,
                provenance=provenance,  # type: ignore[arg-type]
                signatures=signatures,
            )


def test_serve_refuses_a_server_address_as_its_ledger(workdir: Path, run) -> None:
    """A server holds its ledger; it cannot serve (and sign for) another server's."""
    for location in ("https://ledger.example.com:8443", "http://127.0.0.1:8080"):
        bad = run("--ledger", location, "serve", "--port", "0")
        assert_clean_error(bad, 2, location, "is a server")


def test_a_batch_whose_third_entry_the_service_would_refuse_appends_nothing(
    fresh: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a server, `append_many` sends one registration after another: a limit only the
    service held (here: at most 16 signatures) refused the 3rd after the first two were
    written. With every limit in the one validator, `prepare` refuses it before any write."""
    from modelchain import Ledger
    from modelchain.claims import keys
    from modelchain.core.errors import ModelchainError
    from modelchain.core.validate import MAX_SIGNATURES

    monkeypatch.setenv("MODELCHAIN_TOKEN", fresh.token())
    signers = [keys.generate("ed25519") for _ in range(MAX_SIGNATURES + 1)]
    with Ledger.open(fresh.url, home=tmp_path / "client") as ledger:
        with pytest.raises(ModelchainError):
            entries = [ledger.prepare(name=f"m{i}", model_hash=digest_of(str(i))) for i in (0, 1)]
            entries.append(ledger.prepare(name="m2", model_hash=digest_of("2"), sign_keys=signers))
            ledger.append_many(entries)
    with fresh.client() as c:
        assert c.get("/health").json()["size"] == 0


def test_serve_takes_the_clients_loopback_rule(tmp_path: Path) -> None:
    """One loopback test for both ends (the client's, which also takes `LOCALHOST`)."""
    from modelchain.core.errors import ModelchainError, UsageError
    from modelchain.server import launch

    with pytest.raises(UsageError, match="not a loopback address"):
        launch.serve(str(tmp_path / "none.db"), host="10.0.0.1")
    for host in ("LOCALHOST", "127.0.0.2", "::1"):
        with pytest.raises(ModelchainError) as caught:  # refused later: no ledger there
            launch.serve(str(tmp_path / "none.db"), host=host)
        assert "loopback" not in str(caught.value)
