"""Versions: registering the newest version's bytes again appends nothing, and `verify` can
pin a version.

- `register` of bytes identical to the newest version of the name says "already registered
  as NAME vN", exits 0 and appends nothing (`--json` says so); `--force` appends a new
  version; bytes equal to an *older* version are a new version (a roll-back is news);
- the same over a server: `POST /entries` answers 200 with the existing entry (and its
  proof), `force: true` appends; the remote CLI says "already registered" too;
- `verify --version N` checks against vN and says whether it is the newest; a version that
  was never registered, or bytes of another version, exit 1;
- a store altered to make an old block look like the newest version is not believed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_util import BACKENDS, Server, served_backend

from modelchain import Ledger
from modelchain.core import merkle
from modelchain.core.errors import LedgerInvalid


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def registered(run, *argv: str) -> dict:
    result = run("register", *argv, "--no-provenance", "--json")
    assert result.code == 0, result
    return json.loads(result.stdout)


def size(run) -> int:
    result = run("audit", "--json")
    assert result.code == 0, result
    return int(json.loads(result.stdout)["size"])


@pytest.fixture
def model(workdir: Path) -> Path:
    path = workdir / "m.bin"
    path.write_bytes(b"weights v1")
    return path


def test_same_bytes_again_are_already_registered(run, model: Path) -> None:
    assert run("register", "m.bin", "--no-provenance").code == 0
    again = run("register", "m.bin", "--no-provenance")
    assert again.code == 0, again
    assert "Already registered as m.bin v1" in again.stdout
    assert "nothing appended" in again.stdout
    answer = registered(run, "m.bin")
    assert answer["already_registered"] is True and answer["appended"] is False
    assert answer["block"]["version"] == 1 and answer["block"]["index"] == 0
    assert size(run) == 1


def test_force_appends_a_new_version(run, model: Path) -> None:
    registered(run, "m.bin")
    answer = registered(run, "m.bin", "--force")
    assert answer["appended"] is True and answer["already_registered"] is False
    assert answer["block"]["version"] == 2
    assert size(run) == 2
    # now v2 is the newest and has these bytes: not appended again
    assert registered(run, "m.bin")["block"]["version"] == 2
    assert size(run) == 2


def test_other_bytes_and_older_bytes_are_new_versions(run, model: Path) -> None:
    registered(run, "m.bin")
    model.write_bytes(b"weights v2")
    assert registered(run, "m.bin")["block"]["version"] == 2
    model.write_bytes(b"weights v1")  # v1's bytes again: a roll-back, recorded as v3
    answer = registered(run, "m.bin")
    assert answer["appended"] is True and answer["block"]["version"] == 3
    # another name for the same bytes is its own registration
    assert registered(run, "m.bin", "--name", "other")["block"]["version"] == 1
    assert size(run) == 4


def test_library_register_and_append(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    model = tmp_path / "data" / "m.bin"
    model.write_bytes(b"w")
    with Ledger.open(tmp_path / "data" / "l.db", home=tmp_path / "home", create=True) as led:
        first = led.register(model)
        again = led.register(model)
        assert again.existing and not first.existing
        assert again == first
        assert led.register(model, force=True).version == 2
        # the low-level append keeps appending unless asked not to
        block = led.append(name="x", model_hash=digest_of("x"))
        assert led.append(name="x", model_hash=digest_of("x")).version == 2
        assert led.append(name="x", model_hash=digest_of("x"), force=False).version == 2
        # in one batch, a repeat of an entry earlier in the batch is that entry
        batch = led.append_many(
            [
                led.prepare(name="y", model_hash=digest_of("y"), force=False),
                led.prepare(name="y", model_hash=digest_of("y"), force=False),
            ]
        )
        assert [b.version for b in batch] == [1, 1] and batch[1].existing
        assert block.version == 1
        assert len(led) == 5
        led.audit()


def test_a_store_altered_to_fake_the_newest_version_is_not_believed(tmp_path: Path) -> None:
    """The block the store calls newest must be proven into the signed checkpoint."""
    (tmp_path / "data").mkdir()
    location = tmp_path / "data" / "l.db"
    with Ledger.open(location, home=tmp_path / "home", create=True) as led:
        led.append(name="m", model_hash=digest_of("v1"))
        led.append(name="m", model_hash=digest_of("v2"))
        led.append(name="other", model_hash=digest_of("o"))  # the tip is not the altered block
    conn = sqlite3.connect(location)
    (body,) = conn.execute("SELECT body FROM blocks WHERE idx = 1").fetchone()
    conn.execute(
        "UPDATE blocks SET body = ? WHERE idx = 1",
        (body.replace(digest_of("v2"), digest_of("evil")),),
    )
    conn.commit()
    conn.close()
    with Ledger.open(location, home=tmp_path / "home") as led:
        with pytest.raises(LedgerInvalid, match="not the one that was signed"):
            led.append(name="m", model_hash=digest_of("evil"), force=False)
        assert len(led) == 3


# -- verify --version ----------------------------------------------------------------------


def test_verify_a_pinned_version(run, model: Path) -> None:
    registered(run, "m.bin")
    model.write_bytes(b"weights v2")
    registered(run, "m.bin")
    ok = run("verify", "m.bin", "--version", "2")
    assert ok.code == 0, ok
    assert "matches m.bin v2" in ok.stdout and "v2 is the newest version" in ok.stdout
    model.write_bytes(b"weights v1")
    old = run("verify", "m.bin", "--version", "1")
    assert old.code == 0, old
    assert "matches m.bin v1" in old.stdout
    assert "Not the newest version: m.bin is at v2" in old.stdout
    answer = json.loads(run("verify", "m.bin", "--version", "1", "--json").stdout)
    assert answer["version"] == 1 and answer["newest"] is False
    assert answer["newest_version"] == 2
    # without --version the newest must match: v1's bytes are refused
    assert run("verify", "m.bin").code == 1


def test_verify_a_pinned_version_that_does_not_match(run, model: Path) -> None:
    registered(run, "m.bin")
    model.write_bytes(b"weights v2")
    registered(run, "m.bin")
    wrong = run("verify", "m.bin", "--version", "1")
    assert wrong.code == 1
    assert "does not match m.bin v1" in wrong.stderr and "it is m.bin v2" in wrong.stderr
    details = json.loads(run("verify", "m.bin", "--version", "1", "--json").stdout)
    assert details["matched_version"] == 2 and details["exit_code"] == 1
    missing = run("verify", "m.bin", "--version", "3")
    assert missing.code == 1
    assert "no version 3" in missing.stderr and "versions 1 to 2" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = run("verify", "m.bin", "--version", "0")
    assert bad.code == 2
    model.write_bytes(b"something else")
    assert run("verify", "m.bin", "--version", "2").code == 1


# -- over a server -------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    yield from served_backend(request.param, tmp_path, "mc_versions_")


def _post(c: httpx.Client, server: Server, body: dict, *, routed: bool = False):
    # a query string sends the request through the FastAPI route instead of the fast path
    return c.post("/entries" + ("?via=route" if routed else ""), json=body, headers=server.auth())


@pytest.mark.parametrize("routed", [False, True], ids=["fast", "route"])
def test_the_service_answers_an_existing_registration(server: Server, routed: bool) -> None:
    body = {"name": "iris", "digest": digest_of("v1")}
    with server.client() as c:
        first = _post(c, server, body, routed=routed)
        assert first.status_code == 201, first.text
        assert "existing" not in first.json()
        again = _post(c, server, body, routed=routed)
        assert again.status_code == 200, again.text
        answer = again.json()
        assert answer["existing"] is True
        assert answer["entry"] == first.json()["entry"]
        proof = answer["inclusion_proof"]
        merkle.verify_inclusion(
            proof["index"],
            proof["size"],
            bytes.fromhex(proof["leaf_hash"]),
            [bytes.fromhex(h) for h in proof["hashes"]],
            bytes.fromhex(proof["root_hash"]),
        )
        assert c.get("/health").json()["size"] == 1
        forced = _post(c, server, {**body, "force": True}, routed=routed)
        assert forced.status_code == 201, forced.text
        assert forced.json()["entry"]["block"]["version"] == 2
        assert c.get("/health").json()["size"] == 2


def test_the_remote_cli_says_already_registered(server: Server, run, workdir: Path) -> None:
    (workdir / "m.bin").write_bytes(b"remote weights")
    env = {"MODELCHAIN_TOKEN": server.token()}
    argv = ("--ledger", server.url, "register", "m.bin", "--no-provenance")
    first = run(*argv, **env)
    assert first.code == 0, first
    again = run(*argv, **env)
    assert again.code == 0, again
    assert "Already registered as m.bin v1" in again.stdout
    forced = run(*argv, "--force", "--json", **env)
    assert forced.code == 0, forced
    assert json.loads(forced.stdout)["block"]["version"] == 2
    with server.client() as c:
        assert c.get("/health").json()["size"] == 2
    pinned = run("--ledger", server.url, "verify", "m.bin", "--version", "1", **env)
    assert pinned.code == 0, pinned
    assert "Not the newest version: m.bin is at v2" in pinned.stdout


def test_verify_a_pinned_version_of_a_directory_names_the_files(run, workdir: Path) -> None:
    folder = workdir / "llm"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a1")
    (folder / "b.bin").write_bytes(b"b1")
    registered(run, "llm")
    (folder / "a.bin").write_bytes(b"a2")
    registered(run, "llm")
    assert run("verify", "llm", "--version", "2").code == 0
    wrong = run("verify", "llm", "--version", "1")
    assert wrong.code == 1
    assert "does not match llm v1" in wrong.stderr and "it is llm v2" in wrong.stderr
    (folder / "c.bin").write_bytes(b"c")
    added = run("verify", "llm", "--version", "2")
    assert added.code == 1 and "added: c.bin" in added.stderr
