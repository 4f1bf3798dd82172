"""Attacks on what the service accepts and on the rows a store holds.

- metadata nested 1000 deep, integers beyond +-(2**53 - 1) (beyond 64 bits too, which a fast
  JSON parser reads as a rounded float), NUL in a name or a metadata string, a name longer
  than `/search` takes: refused with 422 by the service on every backend, nothing appended,
  the service still answers every read;
- whatever the service accepts is found by name through `/search` (a property test);
- rows of the wrong type written into an SQLite ledger by SQL: `audit` and `verify` exit 1
  with a one-line reason, and `modelchain.load` raises `LedgerInvalid`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_util import BACKENDS, Server, init_ledger, running_server, served_backend

from modelchain.core.validate import MAX_INT, MAX_NAME

H = hashlib.sha256(b"model").hexdigest()


def deep_body(depth: int) -> bytes:
    """A registration whose metadata is `depth` objects deep, written by hand (no encoder
    can write it)."""
    deep = '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    return f'{{"name": "deep", "digest": "{H}", "metadata": {deep}}}'.encode()


@pytest.fixture(params=[*BACKENDS, "json"], scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A server over SQLite, a JSON file, and PostgreSQL when MODELCHAIN_TEST_PG_DSN is set."""
    tmp_path = tmp_path_factory.mktemp(f"validate-{request.param}")
    if request.param == "json":
        home, location = tmp_path / "srv-home", str(tmp_path / "srv-data" / "ledger.json")
        init_ledger(location, home)
        with running_server(location, home) as running:
            yield running
        return
    yield from served_backend(request.param, tmp_path, "mc_validate_")


def size_of(c: httpx.Client) -> int:
    return int(c.get("/health").json()["size"])


def refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "validation_error", body
    message = body["error"]["message"]
    assert "\n" not in message
    for word in words:
        assert word in message, message


BAD_BODIES = [
    pytest.param({"name": "x", "digest": H, "metadata": {"n": 2**53}}, "outside", id="2^53"),
    pytest.param({"name": "x", "digest": H, "metadata": {"n": -(2**63)}}, "outside", id="-2^63"),
    pytest.param(
        {"name": "x", "digest": H, "metadata": {"n": 123456789012345678901234567890}},
        "outside",
        id="beyond-64-bits",
    ),
    pytest.param(
        {"name": "x", "digest": H, "metadata": {"a": [{"n": 2**70}]}}, "outside", id="nested-big"
    ),
    pytest.param({"name": "x\x00y", "digest": H}, "NUL", id="nul-name"),
    pytest.param({"name": "x", "digest": H, "metadata": {"s": "a\x00"}}, "NUL", id="nul-value"),
    pytest.param({"name": "x", "digest": H, "metadata": {"k\x00": 1}}, "NUL", id="nul-key"),
    pytest.param({"name": "n" * (MAX_NAME + 1), "digest": H}, "at most", id="long-name"),
    pytest.param({"name": "", "digest": H}, "non-empty", id="empty-name"),
    pytest.param({"name": "x", "digest": H, "size": 2**53}, "size", id="size-2^53"),
    pytest.param({"name": "x", "digest": H, "size": -1}, "size", id="negative-size"),
    pytest.param({"name": "x", "digest": H, "size": True}, "size", id="size-true"),
    pytest.param({"name": "x", "digest": H, "size": "5"}, "size", id="size-a-string"),
    pytest.param({"name": "x", "digest": H, "size": 5.0}, "size", id="size-a-float"),
    pytest.param({"name": "x", "digest": H, "force": "yes"}, "force", id="force-not-a-boolean"),
]


@pytest.mark.parametrize(("body", "why"), BAD_BODIES)
def test_unreadable_registrations_are_422_and_append_nothing(server: Server, body, why) -> None:
    with server.client() as c:
        before = size_of(c)
        refused(c.post("/entries", json=body, headers=server.auth()), why)
        assert size_of(c) == before
        assert c.get("/entries", params={"start": 0}).status_code == 200


def test_metadata_nested_1000_deep_is_422_and_appends_nothing(server: Server) -> None:
    headers = {**server.auth(), "Content-Type": "application/json"}
    with server.client() as c:
        before = size_of(c)
        for depth in (1000, 2000, 40):
            response = c.post("/entries", content=deep_body(depth), headers=headers)
            assert response.status_code == 422, response.text
            assert "\n" not in response.json()["error"]["message"]
        assert size_of(c) == before
        # the service is not poisoned: it still registers and reads back
        ok = c.post("/entries", json={"name": "after-deep", "digest": H}, headers=server.auth())
        assert ok.status_code == 201, ok.text
        index = ok.json()["entry"]["index"]
        assert c.get(f"/entries/{index}").status_code == 200
        assert c.get("/search", params={"name": "after-deep"}).json()["entries"]


def test_the_limits_themselves_are_accepted_and_searchable(server: Server) -> None:
    name = "L" * MAX_NAME
    body = {"name": name, "digest": H, "size": MAX_INT, "metadata": {"n": -MAX_INT, "m": MAX_INT}}
    with server.client() as c:
        r = c.post("/entries", json=body, headers=server.auth())
        assert r.status_code == 201, r.text
        [found] = c.get("/search", params={"name": name}).json()["entries"]
        assert found["block"]["metadata"] == {"n": -MAX_INT, "m": MAX_INT}
        assert found["block"]["size"] == MAX_INT


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=MAX_NAME + 4),
    metadata=st.dictionaries(
        _text,
        st.integers(-(2**64), 2**64) | _text | st.floats(allow_nan=False, allow_infinity=False),
        max_size=3,
    ),
)
def test_whatever_the_service_accepts_is_found_by_name(server: Server, name, metadata) -> None:
    digest = hashlib.sha256(secrets.token_bytes(8)).hexdigest()
    with server.client() as c:
        r = c.post(
            "/entries",
            json={"name": name, "digest": digest, "metadata": metadata},
            headers=server.auth(),
        )
        if r.status_code == 422:
            return
        assert r.status_code == 201, r.text
        entry = r.json()["entry"]
        found = c.get("/search", params={"name": name, "digest": digest})
        assert found.status_code == 200, found.text
        assert [e["index"] for e in found.json()["entries"]] == [entry["index"]]
        assert c.get(f"/entries/{entry['index']}").json()["data"] == entry["data"]
        verdict = c.post("/verify", json={"name": name, "digest": digest}).json()
        assert verdict["verified"] is True


# -- wrong-typed rows in an SQLite ledger -------------------------------------------------


@pytest.fixture
def sqlite_ledger(run, workdir: Path) -> Path:
    (workdir / "m.bin").write_bytes(b"weights v1")
    assert run("--ledger", "l.db", "register", "m.bin", "--no-provenance").code == 0
    (workdir / "m.bin").write_bytes(b"weights v2")
    assert run("--ledger", "l.db", "register", "m.bin", "--no-provenance").code == 0
    return workdir / "l.db"


#: rows that `verify m.bin` reads (v2 is block 1: its body, the node its inclusion proof in
#: the tree of 2 needs, (0, 0), the origin and the checkpoint) ...
ON_PROOF_PATH = [
    pytest.param("UPDATE blocks SET body = 42 WHERE idx = 1", id="body-number"),
    pytest.param("UPDATE nodes SET hash = hex(hash) WHERE level = 0 AND idx = 0", id="hash-text"),
    pytest.param("UPDATE nodes SET idx = 'x' WHERE level = 0 AND idx = 0", id="node-index-text"),
    pytest.param("UPDATE meta SET value = X'6f' WHERE key = 'origin'", id="origin-blob"),
    pytest.param("UPDATE meta SET value = X'ff' WHERE key = 'checkpoint'", id="checkpoint-blob"),
]
#: an index node, which every proof of a name reads from the root down
INDEX_ROWS = [
    pytest.param("UPDATE index_tiled SET record = 7 WHERE depth = 0", id="index-root-number"),
    pytest.param("UPDATE index_tiled SET record = X'00' WHERE depth = 0", id="index-root-short"),
]
#: ... and rows it does not: only an audit (or `verify --full`) reads every block and node
OFF_PROOF_PATH = [
    pytest.param("UPDATE blocks SET body = CAST(body AS BLOB) WHERE idx = 0", id="body-blob"),
    pytest.param("UPDATE nodes SET hash = X'00' WHERE level = 0 AND idx = 1", id="hash-short"),
]


@pytest.mark.parametrize("sql", ON_PROOF_PATH + OFF_PROOF_PATH)
def test_wrong_typed_rows_are_an_invalid_ledger(run, sqlite_ledger: Path, sql: str) -> None:
    conn = sqlite3.connect(sqlite_ledger)
    conn.execute(sql)
    conn.commit()
    conn.close()
    for argv in (
        ("audit",),
        ("verify", "m.bin", "--full"),
        ("verify", "m.bin", "--full", "--json"),
    ):
        result = run("--ledger", "l.db", *argv)
        assert result.code == 1, (argv, result)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        if "--json" in argv:
            assert json.loads(result.stdout)["exit_code"] == 1
        else:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("sql", ON_PROOF_PATH + INDEX_ROWS)
def test_wrong_typed_rows_a_proof_reads_fail_verify(run, sqlite_ledger: Path, sql: str) -> None:
    conn = sqlite3.connect(sqlite_ledger)
    conn.execute(sql)
    conn.commit()
    conn.close()
    for argv in (("verify", "m.bin"), ("verify", "m.bin", "--json")):
        result = run("--ledger", "l.db", *argv)
        assert result.code == 1, (argv, result)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        if "--json" in argv:
            assert json.loads(result.stdout)["exit_code"] == 1
        else:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("sql", OFF_PROOF_PATH)
def test_rows_no_proof_reads_leave_verify_proven(run, sqlite_ledger: Path, sql: str) -> None:
    """O(log n): verify reads the name's proof path only; what it proves still holds."""
    conn = sqlite3.connect(sqlite_ledger)
    conn.execute(sql)
    conn.commit()
    conn.close()
    result = run("--ledger", "l.db", "verify", "m.bin")
    assert result.code == 0, result
    assert "signed index" in result.stdout


@pytest.mark.parametrize("sql", ON_PROOF_PATH + INDEX_ROWS)
def test_load_raises_ledger_invalid_for_wrong_typed_rows(sqlite_ledger: Path, sql: str) -> None:
    import modelchain
    from modelchain.core.errors import LedgerInvalid

    conn = sqlite3.connect(sqlite_ledger)
    conn.execute(sql)
    conn.commit()
    conn.close()
    with pytest.raises(LedgerInvalid):
        modelchain.load(sqlite_ledger.parent / "m.bin", ledger=sqlite_ledger, format="pickle")


def test_a_stored_block_with_a_key_given_twice_is_refused_by_every_reader(
    run, sqlite_ledger: Path
) -> None:
    """A body with "name" twice reads as one block to a parser that keeps the first and as
    another to one that keeps the last: it is refused, never read either way."""
    conn = sqlite3.connect(sqlite_ledger)
    conn.execute(
        'UPDATE blocks SET body = replace(body, \'"name":\', \'"name":"other","name":\') '
        "WHERE idx = 1"
    )
    conn.commit()
    (body,) = conn.execute("SELECT body FROM blocks WHERE idx = 1").fetchone()
    conn.close()
    assert '"name":"other","name":"m.bin"' in body
    for argv, why in (
        (("audit",), "block 1: not a JSON object (duplicate key 'name')"),
        (("verify", "m.bin", "--full"), "block 1: not a JSON object (duplicate key 'name')"),
        # SQLite's lookup column takes the first "name": the proven read then finds v1 the
        # newest, which the signed index does not prove
        (("verify", "m.bin"), "not proven to be the newest version"),
    ):
        result = run("--ledger", "l.db", *argv)
        assert result.code == 1, (argv, result)
        assert why in result.stderr, (argv, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


# -- a provenance statement about only some of a directory's files -------------------------


def _statement(subjects: list[tuple[str, str]]) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": "https://example.com/model-card/v1",
        "predicate": {"note": "trained on data X"},
    }


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    directory = tmp_path / "data" / "model"
    directory.mkdir(parents=True)
    files = {"weights.bin": b"w" * 10, "config.json": b"{}", "tokenizer.json": b"[]"}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory, {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}


STATEMENTS_ABOUT_OTHER_THINGS = [
    pytest.param(lambda f: [("weights.bin", f["weights.bin"])], id="one-file-of-three"),
    pytest.param(
        lambda f: [
            ("weights.bin", f["config.json"]),
            ("config.json", f["weights.bin"]),
            ("tokenizer.json", f["tokenizer.json"]),
        ],
        id="digests-under-other-paths",
    ),
    pytest.param(
        lambda f: [*f.items(), ("extra.bin", hashlib.sha256(b"x").hexdigest())],
        id="an-extra-subject",
    ),
    pytest.param(lambda f: [(None, d) for d in f.values()], id="unnamed-subjects"),
]


@pytest.mark.parametrize("subjects", STATEMENTS_ABOUT_OTHER_THINGS)
def test_a_statement_not_exactly_about_the_folder_is_refused(tmp_path, folder, subjects) -> None:
    from modelchain import Ledger
    from modelchain.core.errors import InputError

    directory, digests = folder
    statement = _statement(subjects(digests))
    if statement["subject"] and statement["subject"][0]["name"] is None:
        for s in statement["subject"]:
            del s["name"]
    with Ledger.open(tmp_path / "data" / "l.db", home=tmp_path / "home", create=True) as led:
        with pytest.raises(InputError, match="subjects"):
            led.register(directory, provenance=statement)
        assert len(led) == 0


def test_a_statement_about_the_folder_or_exactly_its_files_is_kept(tmp_path, folder) -> None:
    from modelchain import Ledger
    from modelchain.fs.digest import digest_path

    directory, digests = folder
    with Ledger.open(tmp_path / "data" / "l.db", home=tmp_path / "home", create=True) as led:
        exact = led.register(directory, provenance=_statement(list(digests.items())))
        assert exact.provenance is not None
        whole = _statement([("model", digest_path(directory).sha256)])
        again = led.register(directory, provenance=whole, force=True)
        assert again.version == 2 and again.provenance is not None
        led.audit()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("n" * (MAX_NAME + 1), f"at most {MAX_NAME} characters", id="long"),
        pytest.param("x\x00y", "NUL", id="nul"),
    ],
)
def test_a_name_no_registration_can_have_is_refused_the_same_everywhere(
    server: Server, name: str, why: str
) -> None:
    """Registering, verifying and searching refuse such a name with the one validator's
    message (before, `/verify` and `/search` answered with another wording, or not at all)."""
    from modelchain.core.errors import UsageError
    from modelchain.core.validate import check_name

    with pytest.raises(UsageError) as caught:
        check_name(name)
    expected = str(caught.value)
    assert why in expected
    with server.client() as c:
        before = size_of(c)
        answers = [
            c.post("/entries", json={"name": name, "digest": H}, headers=server.auth()),
            c.post("/verify", json={"name": name, "digest": H}),
            c.get("/search", params={"name": name}),
        ]
        for response in answers:
            refused(response)
            assert response.json()["error"]["message"] == expected
        assert size_of(c) == before
