"""A lying server against a remote `verify` that checks the signed index: it cannot hide the
newest version, say a registered name is absent, answer with a proof from another index (an
older one, a fork's) or a proof of another name, nor fall back to its own search by giving no
proof. Each lie is refused with exit 1 and a one-line reason naming it.

The server is scripted (`service.test_remote.FakeServer`): it answers what an honest server
would for a ledger built with the library (`FakeLog`), edited into each lie.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, assert_clean_error, assert_ok
from service.test_remote import FakeLog, FakeServer, _q, write_model

from modelchain.core.index import key_of
from modelchain.core.note import Checkpoint, Signer, sign_checkpoint
from modelchain.log.block import build_index

ORIGIN = "fake.example/index"


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """main: a, b, m, then b again (b v2 is block 3); fork: the same key and origin, a, m, b."""
    tmp_path = tmp_path_factory.mktemp("index-logs")
    (tmp_path / "data").mkdir()
    models = tmp_path / "models"
    a = write_model(models / "a.bin", b"model a")
    b = write_model(models / "b.bin", b"model b")
    b2 = write_model(models / "b2.bin", b"model b, second version")
    m = write_model(models / "m.bin", b"model m")
    srv = tmp_path / "srv"
    main = FakeLog(
        tmp_path / "data" / "main.db", srv, [(a, "a"), (b, "b"), (m, "m"), (b2, "b")], ORIGIN
    )
    forker = tmp_path / "forker"
    forker.mkdir(mode=0o700)
    shutil.copy2(srv / "operator.key", forker / "operator.key")
    fork = FakeLog(tmp_path / "data" / "fork.db", forker, [(a, "a"), (m, "m"), (b, "b")], ORIGIN)
    return {"main": main, "fork": fork, "models": models}


def _index_proof(log: FakeLog, size: int, name: str) -> str:
    """The base64 index proof of `name` in `log`'s index as of `size` blocks."""
    tree = build_index((json.loads(data), data) for _block, data in log.entries[:size])
    return base64.b64encode(tree.prove(key_of(name)).to_bytes()).decode()


def _longer(text: str) -> str:
    """The same proof with a byte after its end."""
    return base64.b64encode(base64.b64decode(text) + b"\x00").decode()


def _answer(fake: FakeServer, name: str) -> dict[str, Any]:
    body: dict[str, Any] = fake.routes[_q("/proof/index", name=name)][1]
    return body


def _verify(run: Run, fake: FakeServer, log: FakeLog, model: Path, name: str, *args: str) -> Any:
    return run("verify", model, "--name", name, "--ledger", fake.url, "--key", log.vkey, *args)


def test_the_honest_answers_verify(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    """The baseline every lie below is edited from."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    ok = assert_ok(_verify(run, fake, main, logs["models"] / "b2.bin", "b"))
    assert "Proved the newest version by the signed index" in ok.stdout
    older = _verify(run, fake, main, logs["models"] / "b.bin", "b")
    assert_clean_error(older, 1, "not the newest registered version")
    fake.routes[_q("/proof/index", name="zzz")] = (200, main.name_proof(4, "zzz"))
    assert_clean_error(
        _verify(run, fake, main, logs["models"] / "a.bin", "zzz"), 1, "not registered"
    )


def test_hiding_the_newest_version_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    """b v1 (block 1) shown as b's newest under the checkpoint of 4 blocks, with a true
    inclusion proof and the index proof of the index of 2 blocks (when v1 was the newest);
    the search hides v2 too."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    lie = _answer(fake, "b")
    lie["entry"] = main.entry(1)
    lie["inclusion_proof"] = main.inclusion_json(1, 4, main.inclusion[(1, 4)])
    lie["index_proof"] = _index_proof(main, 2, "b")
    fake.routes[_q("/search", name="b", limit=1000)] = (200, {"entries": [main.entry(1)]})
    bad = _verify(run, fake, main, logs["models"] / "b.bin", "b")
    assert_clean_error(
        bad,
        1,
        "b v1",
        "not proven to be the newest version of 'b'",
        "a newer version may be hidden",
    )
    pinned = _verify(run, fake, main, logs["models"] / "b.bin", "b", "--version", "1")
    assert_clean_error(pinned, 1, "not proven to be the newest version of 'b'")


def test_an_older_signed_state_is_a_rollback(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    """The whole older state (its note, index and proofs: all true, of 2 blocks) after the
    client accepted 4: the answer's checkpoint is refused before its proofs are read."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    assert_ok(_verify(run, fake, main, logs["models"] / "b2.bin", "b"))
    old = main.routes(2)
    fake.routes[_q("/proof/index", name="b")] = old[_q("/proof/index", name="b")]
    bad = run("verify", logs["models"] / "b.bin", "--name", "b", "--ledger", fake.url)
    assert_clean_error(bad, 1, "rolled back")


@pytest.mark.parametrize("how", ["older index", "another name's absence", "no proof at all"])
def test_saying_a_registered_name_is_absent_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any], how: str
) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    lie = _answer(fake, "m")
    lie["entry"] = lie["inclusion_proof"] = None
    if how == "older index":  # true of the index of 2 blocks, before m was registered
        lie["index_proof"] = _index_proof(main, 2, "m")
    elif how == "another name's absence":
        lie["index_proof"] = _index_proof(main, 4, "zzz")
    else:
        lie["index_proof"] = base64.b64encode(b"\x00\x00\x00").decode()  # the empty tree's
    bad = _verify(run, fake, main, logs["models"] / "m.bin", "m")
    assert_clean_error(bad, 1, "says 'm' is not registered, but the signed index does not prove")


def test_a_proof_from_a_fork_is_refused(run: Run, fake: FakeServer, logs: dict[str, Any]) -> None:
    """The fork is signed with the same key: its index proof of m, and its block of m (true in
    the fork), under main's checkpoint; then the fork's own checkpoint after main's."""
    main, fork = logs["main"], logs["fork"]
    fake.routes = main.routes(3)
    lie = _answer(fake, "m")
    lie["index_proof"] = _index_proof(fork, 3, "m")
    bad = _verify(run, fake, main, logs["models"] / "m.bin", "m")
    assert_clean_error(bad, 1, "not proven to be the newest version of 'm' by the signed index")

    lie.update(fork.name_proof(3, "m"))  # the fork's whole answer, its note included
    bad = _verify(run, fake, main, logs["models"] / "m.bin", "m")
    assert_clean_error(bad, 1, "forked")


def test_a_proof_of_another_name_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any]
) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    honest_a = main.name_proof(4, "a")
    model = logs["models"] / "b2.bin"

    fake.routes[_q("/proof/index", name="b")] = (200, honest_a)  # a's answer, named a
    assert_clean_error(_verify(run, fake, main, model, "b"), 1, "was answered about 'a'")

    fake.routes[_q("/proof/index", name="b")] = (200, {**honest_a, "name": "b"})  # renamed
    assert_clean_error(_verify(run, fake, main, model, "b"), 1, "asked for 'b', was shown block 0")

    fake.routes = main.routes(4)  # b's entry, a's index proof
    _answer(fake, "b")["index_proof"] = honest_a["index_proof"]
    assert_clean_error(
        _verify(run, fake, main, model, "b"), 1, "not proven to be the newest version of 'b'"
    )


@pytest.mark.parametrize("how", ["no route", "null proof"])
def test_no_index_proof_is_no_fallback_to_the_search(
    run: Run, fake: FakeServer, logs: dict[str, Any], how: str
) -> None:
    """A server whose checkpoint signs an index must prove by it: one that gives no proof
    (and hides v2 from its search) is refused, not believed; `--full` is the user's choice."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    fake.routes[_q("/search", name="b", limit=1000)] = (200, {"entries": [main.entry(1)]})
    if how == "no route":
        del fake.routes[_q("/proof/index", name="b")]
    else:
        _answer(fake, "b")["index_proof"] = None
    bad = _verify(run, fake, main, logs["models"] / "b.bin", "b")
    assert_clean_error(bad, 1, "gives no index proof of 'b'", "--full")


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda a: a.update(index_proof="not base64!"), "index_proof is not the base64"),
        (
            lambda a: a.update(index_proof=_longer(a["index_proof"])),
            "index proof of 'b' is malformed",
        ),
        (lambda a: a.update(index_proof="A" * 20_000), "index_proof is not the base64"),
        (lambda a: a.update(inclusion_proof=None), "an entry comes with its inclusion proof"),
        (lambda a: a["inclusion_proof"].update(size=3), "into a tree of 3 blocks"),
        (lambda a: a["inclusion_proof"].update(index=1), "proves another entry"),
    ],
    ids=["not base64", "trailing bytes", "oversized", "no inclusion", "other size", "other entry"],
)
def test_malformed_answers_are_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any], edit: Any, needle: str
) -> None:
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    edit(_answer(fake, "b"))
    bad = _verify(run, fake, main, logs["models"] / "b2.bin", "b")
    assert_clean_error(bad, 1, needle)


@pytest.mark.parametrize("how", ["another key", "another log"])
def test_an_answer_under_a_checkpoint_not_of_this_log_is_refused(
    run: Run, fake: FakeServer, logs: dict[str, Any], how: str
) -> None:
    """The index proof names the checkpoint it is under: that checkpoint is accepted as any
    other (signed by the log's key, for this log) before the proof is read."""
    main: FakeLog = logs["main"]
    fake.routes = main.routes(4)
    origin = ORIGIN if how == "another key" else "elsewhere.example/log"
    forger = Signer.generate(origin)
    _answer(fake, "b")["checkpoint"] = sign_checkpoint(Checkpoint(origin, 4, main.roots[4]), forger)
    bad = _verify(run, fake, main, logs["models"] / "b2.bin", "b")
    line = assert_clean_error(bad, 1)
    assert ("signature" in line or "key" in line) if how == "another key" else "is for log" in line
