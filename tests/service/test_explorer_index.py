"""The explorer proves a model's newest version by the signed index, in the browser.

Its index proof check (app.js `verifyIndexProof`) must agree with `core.index.verify` on
honest proofs and on every tampered one; the model and check pages say "the newest version,
proven by the signed index" only when the proof from GET /proof/index leads to the index root
in the signed checkpoint. A relay on 127.0.0.1 rewrites that answer, as a lying server would:
a tampered proof, an older version passed off as the newest, a registered name said absent.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_util import init_ledger, running_server

from modelchain.core import index
from modelchain.core.errors import InvalidProof
from modelchain.log.block import build_index
from service.test_explorer import browser, settled, sha, watched_page  # noqa: F401  (browser is a fixture)
from service.test_explorer_proofs import Relay, drop, green

V1, V2 = b"resnet weights v1\n" * 40, b"resnet weights v2\n" * 40


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """resnet v1 (block 0), other (block 1), resnet v2 (block 2), behind a relay."""
    from modelchain import Ledger

    root = tmp_path_factory.mktemp("explorer-index")
    home, work = root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    ledger = str(work / "ledger.db")
    init_ledger(ledger, home)
    with Ledger.open(ledger, home=home) as book:
        book.append(name="resnet", model_hash=sha(V1))
        book.append(name="other", model_hash=sha(b"other"))
        book.append(name="resnet", model_hash=sha(V2))
    with running_server(ledger, home) as server, Relay(server.url) as relay:
        relay.path = "/api/v1/proof/index"
        entries = httpx.get(server.api + "/entries", params={"limit": 10}).json()["entries"]
        yield {"server": server, "relay": relay, "entries": entries}


@pytest.fixture
def relay(site: dict[str, Any]) -> Iterator[Relay]:
    relay: Relay = site["relay"]
    relay.rewrite = None
    yield relay
    relay.rewrite = None


@pytest.fixture
def tab(browser: Any, relay: Relay) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    with watched_page(browser, relay.url, 30_000) as page:
        yield page


def older_proof(site: dict[str, Any], size: int, name: str) -> str:
    """The base64 index proof of `name` in the index of the first `size` blocks (as signed
    then): true of an older root, not of the current one."""
    chosen = site["entries"][:size]
    tree = build_index((json.loads(e["data"]), e["data"].encode()) for e in chosen)
    return base64.b64encode(tree.prove(index.key_of(name)).to_bytes()).decode()


# -- the page's index proof check against core.index ------------------------------------------


def _cases() -> list[dict[str, Any]]:
    """Honest proofs of presence and absence in a random index, and tampered ones, each with
    the verdict `core.index.verify` gives."""
    rng = random.Random(12)
    tree = index.Index()
    values = {}
    for i in range(60):
        key, value = index.key_of(f"model-{i}"), f"value {i}".encode()
        tree.put(key, value)
        values[key] = value
    root = tree.root()
    cases = []

    def case(key: bytes, value: bytes | None, data: bytes, what: str, at: bytes = root) -> None:
        try:
            index.verify(at, key, value, index.Proof.from_bytes(data))
            ok = True
        except InvalidProof:
            ok = False
        cases.append(
            {
                "what": what,
                "root": at.hex(),
                "key": key.hex(),
                "value": None if value is None else value.hex(),
                "proof": data.hex(),
                "ok": ok,
            }
        )

    for i in range(0, 60, 7):
        key = index.key_of(f"model-{i}")
        data = tree.prove(key).to_bytes()
        case(key, values[key], data, f"present {i}")
        case(key, b"another value", data, f"wrong value {i}")
        case(key, None, data, f"present said absent {i}")
        case(key, values[key], data, f"another root {i}", at=bytes(32))
        for _ in range(3):  # one flipped bit anywhere
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            case(key, values[key], bytes(flipped), f"flipped bit {i}")
    for i in range(8):
        key = index.key_of(f"absent-{i}")
        data = tree.prove(key).to_bytes()
        case(key, None, data, f"absent {i}")
        case(key, b"value 0", data, f"absent said present {i}")
        other = index.key_of(f"model-{i}")
        case(other, None, tree.prove(other).to_bytes(), f"absence proof for a present key {i}")
    empty = index.Index()
    case(index.key_of("x"), None, empty.prove(index.key_of("x")).to_bytes(), "empty", empty.root())
    # not canonical: a leaf pushed one level down under an empty last sibling
    key = index.key_of("model-0")
    real = tree.prove(key)
    deeper = index.Proof((*real.siblings, index.EMPTY))
    case(key, values[key], deeper.to_bytes(), "non-canonical")
    return cases


def test_the_pages_index_check_agrees_with_core_index(tab: Any) -> None:
    cases = _cases()
    assert sum(c["ok"] for c in cases) >= 15 and sum(not c["ok"] for c in cases) >= 40
    tab.goto("/explorer/#/check")
    tab.wait_for_function("window.modelchainExplorer !== undefined")
    got = tab.evaluate(
        """async (cases) => {
            const x = window.modelchainExplorer;
            const bytes = (t) => Uint8Array.from(t.match(/../g) || [], (b) => parseInt(b, 16));
            const out = [];
            for (const c of cases) {
                try {
                    const proof = x.parseIndexProof(bytes(c.proof));
                    await x.verifyIndexProof(bytes(c.root), bytes(c.key),
                        c.value === null ? null : bytes(c.value), proof);
                    out.push(true);
                } catch (err) {
                    out.push(false);
                }
            }
            return out;
        }""",
        cases,
    )
    wrong = [c["what"] for c, ok in zip(cases, got, strict=True) if ok != c["ok"]]
    assert wrong == []


def test_the_index_line_is_read_strictly(tab: Any) -> None:
    tab.goto("/explorer/#/check")
    tab.wait_for_function("window.modelchainExplorer !== undefined")
    root = base64.b64encode(bytes(range(32))).decode()
    got = tab.evaluate(
        """(lines) => lines.map((l) => {
            try { const r = window.modelchainExplorer.indexRoot(l); return r && r.length; }
            catch (err) { return "refused"; }
        })""",
        [
            [f"modelchain-index/v1 {root}"],
            ["other/v1 whatever"],
            [f"modelchain-index/v2 {root}"],
            [f"modelchain-index/v1 {root}", f"modelchain-index/v1 {root}"],
            [f"modelchain-index/v1 {root[:-1]}"],
            [f"modelchain-index/v1 {root}="],
        ],
    )
    assert got == [32, None, "refused", "refused", "refused", "refused"]


# -- the pages -------------------------------------------------------------------------------


def test_the_newest_version_is_proven_by_the_signed_index(tab: Any, tmp_path: Path) -> None:
    tab.goto("/explorer/#/model/resnet")
    newest = settled(tab, "#history-newest")
    assert newest.get_attribute("data-ok") == "true", newest.inner_text()
    assert "v2 is the newest version, proven by the signed index" in newest.inner_text()
    assert "resnet v2 (block 2) is in the signed log" in tab.inner_text("#history-status")
    tab.goto("/explorer/#/model/nobody")
    status = settled(tab, "#history-status")
    assert "No model named nobody is registered: proven by the signed index" in (
        status.inner_text()
    )
    model = tmp_path / "resnet"
    model.write_bytes(V2)
    status = drop(tab, model)
    assert status.get_attribute("data-ok") == "true", status.inner_text()
    assert "the newest version, proven by the signed index" in tab.inner_text("#check-matches")
    older = tmp_path / "older" / "resnet"  # another file: the same one would not "change"
    older.parent.mkdir()
    older.write_bytes(V1)
    tab.set_input_files("#file-input", str(older))
    tab.wait_for_selector("#check-status:has-text('resnet v1')")
    status = tab.locator("#check-status")
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "an OLDER version: registered as resnet v1" in status.inner_text()


def test_a_tampered_index_proof_is_refused_in_the_browser(
    tab: Any, relay: Relay, tmp_path: Path
) -> None:
    def tamper(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        raw = bytearray(base64.b64decode(body["index_proof"]))
        raw[-1 - 32 if body["entry"] is None else -2] ^= 0x01  # inside the last hash
        body["index_proof"] = base64.b64encode(bytes(raw)).decode()
        return body

    relay.rewrite = tamper
    tab.goto("/explorer/#/model/resnet")
    newest = settled(tab, "#history-newest")
    assert newest.get_attribute("data-ok") == "false", newest.inner_text()
    assert "NOT proven" in newest.inner_text()
    assert "does not lead to the signed index root" in newest.inner_text()
    assert green(tab) == []
    model = tmp_path / "resnet"
    model.write_bytes(V2)
    status = drop(tab, model)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "Whether it is the newest version is NOT proven" in status.inner_text()


def test_an_older_version_passed_off_as_the_newest_is_refused(
    tab: Any, site: dict[str, Any], relay: Relay, tmp_path: Path
) -> None:
    """The relay answers resnet v1 (block 0) with its true inclusion proof and the index
    proof of the index of 2 blocks, when v1 was the newest."""
    server = site["server"]
    v1 = site["entries"][0]
    inclusion = httpx.get(server.api + "/proof/inclusion", params={"index": 0}).json()

    def older(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("name") == ["resnet"]:
            body.update(entry=v1, inclusion_proof=inclusion)
            body["index_proof"] = older_proof(site, 2, "resnet")
        return body

    relay.rewrite = older
    tab.goto("/explorer/#/model/resnet")
    newest = settled(tab, "#history-newest")
    assert newest.get_attribute("data-ok") == "false", newest.inner_text()
    assert "resnet v1 (block 0) is not proven to be the newest version" in newest.inner_text()
    assert "a newer version may be hidden" in newest.inner_text()
    model = tmp_path / "resnet"
    model.write_bytes(V1)
    status = drop(tab, model)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "NOT proven" in status.inner_text()
    assert green(tab) == []


def test_a_registered_name_said_absent_is_refused(
    tab: Any, site: dict[str, Any], relay: Relay
) -> None:
    def absent(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("name") == ["other"]:  # true of the index of 1 block, before "other"
            body.update(entry=None, inclusion_proof=None)
            body["index_proof"] = older_proof(site, 1, "other")
        return body

    relay.rewrite = absent
    tab.goto("/explorer/#/model/other")
    newest = settled(tab, "#history-newest")
    assert newest.get_attribute("data-ok") == "false", newest.inner_text()
    assert "says other is not registered, but the signed index does not prove it" in (
        newest.inner_text()
    )
    assert green(tab) == []
