"""The explorer paints green only what it proved in the browser.

A relay on 127.0.0.1 (started here, forwarding to a real `modelchain serve`) rewrites only
the `/search` answers, as a lying server or a man in the middle would; the page must never
show a green verdict from them. Also: a name with more than 1,000 versions (the search's page
size), a block beyond the tree, a tampered file, the pages at 1280 and 390 px wide, and the
page's own Merkle proof check against the RFC 9162 vectors.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from server_util import Server, init_ledger, running_server, server_env
from shared import SHARED, missing

from modelchain.core import merkle
from service.test_explorer import browser, settled, sha, watched_page  # noqa: F401  (browser is a fixture)

TWIN = b"the same weights under two names\n"
BIG = 1005  # versions of one name: more than one page (1000) of /search
VECTORS = Path(os.environ.get("MODELCHAIN_VECTORS") or SHARED / "vectors" / "rfc9162")

Rewrite = Callable[[str, dict[str, list[str]], dict[str, Any]], dict[str, Any]]


class Relay:
    """An HTTP relay to `target` that may rewrite the JSON answers of one API path."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.path = "/api/v1/search"
        self.rewrite: Rewrite | None = None
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = httpx.get(relay.target + self.path, timeout=30)
                body = answer.content
                url = urlsplit(self.path)
                rewrite = relay.rewrite
                if rewrite is not None and url.path == relay.path and answer.status_code == 200:
                    body = json.dumps(rewrite(url.path, parse_qs(url.query), answer.json()))
                    body = body.encode()
                self.send_response(answer.status_code)
                for name in ("content-type", "content-security-policy", "location"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Relay:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """resnet v1 and v2, a directory, classifier.bin v1, and `big` with BIG versions."""
    from modelchain import Ledger
    from modelchain.log.block import Registration

    root = tmp_path_factory.mktemp("explorer-proofs")
    home, work = root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    ledger = str(work / "ledger.db")
    init_ledger(ledger, home)
    (work / "llm").mkdir()
    (work / "llm" / "config.json").write_text('{"layers": 2}\n')
    (work / "llm" / "weights.bin").write_bytes(b"\x00\x01" * 50)
    classifier = work / "classifier.bin"
    classifier.write_bytes(b"classifier weights\n" * 50)
    for argv in (["register", "llm"], ["register", "classifier.bin"]):
        subprocess.run(
            [sys.executable, "-m", "modelchain", "--ledger", ledger, *argv],
            cwd=work,
            env=server_env(home),
            check=True,
            capture_output=True,
        )
    v1, v2 = b"resnet weights v1\n" * 40, b"resnet weights v2\n" * 40
    with Ledger.open(ledger, home=home) as book:
        book.append_many(
            [
                Registration(name="resnet", model_hash=sha(v1)),
                Registration(name="resnet", model_hash=sha(v2)),
                # one file registered under two names: the newer block is named first
                Registration(name="twin-a", model_hash=sha(TWIN)),
                Registration(name="twin-b", model_hash=sha(TWIN)),
            ]
            + [
                Registration(name="big", model_hash=sha(f"big {i}".encode()))
                for i in range(1, BIG + 1)
            ]
        )
    with running_server(ledger, home) as server, Relay(server.url) as relay:
        log = httpx.get(server.api + "/log").json()
        yield {
            "server": server,
            "relay": relay,
            "work": work,
            "classifier": classifier,
            "v1": v1,
            "v2": v2,
            "size": log["size"],
        }


@pytest.fixture
def relay(site: dict[str, Any]) -> Iterator[Relay]:
    relay: Relay = site["relay"]
    relay.rewrite = None
    yield relay
    relay.rewrite = None


@pytest.fixture
def tab(browser: Any, relay: Relay) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    """A page on the relay; any JavaScript error or CSP violation fails the test."""
    with watched_page(browser, relay.url, 30_000) as page:
        yield page


def drop(tab: Any, path: Path) -> Any:
    """Check a file on the check page; the settled status element."""
    tab.goto("/explorer/#/check")
    tab.set_input_files("#file-input", str(path))
    return settled(tab, "#check-status")


def green(tab: Any) -> list[str]:
    """The text of every green verdict on the page."""
    return [str(t) for t in tab.locator(".status[data-ok='true']").all_inner_texts()]


def entry_of(server: Server, index: int) -> dict[str, Any]:
    return httpx.get(f"{server.api}/entries/{index}").json()


def forged(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`entry` with fields of its leaf changed, its leaf hash recomputed to match."""
    block = json.loads(entry["data"]) | changes
    data = json.dumps(block, separators=(",", ":"), sort_keys=True)
    return {
        "index": entry["index"],
        "leaf_hash": merkle.leaf_hash(data.encode()).hex(),
        "data": data,
        "block": block,
    }


def index_of(server: Server, name: str, version: int) -> int:
    got = httpx.get(server.api + "/search", params={"name": name, "limit": 1000}).json()
    return next(e["index"] for e in got["entries"] if e["block"]["version"] == version)


# -- a relay that rewrites /search -------------------------------------------------------------


@pytest.mark.parametrize("how", ["forged-leaf", "another-block"])
def test_a_trojan_the_relay_lists_as_registered_is_not_green(
    tab: Any, site: dict[str, Any], relay: Relay, tmp_path: Path, how: str
) -> None:
    server: Server = site["server"]
    trojan = tmp_path / "resnet"
    trojan.write_bytes(b"trojan weights\n" * 40)
    digest = sha(trojan.read_bytes())
    real = entry_of(server, index_of(server, "resnet", 2))

    def lie(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("digest") == [digest]:
            fake = forged(real, model_hash=digest) if how == "forged-leaf" else real
            return {"entries": [fake], "next": None}
        return body

    relay.rewrite = lie
    status = drop(tab, trojan)
    assert status.get_attribute("data-ok") == "false", status.inner_text()
    assert "NOT proven" in status.inner_text()
    assert "registered as resnet" not in status.inner_text()
    assert green(tab) == []


def test_a_forged_newest_version_on_the_model_page_is_not_green(
    tab: Any, site: dict[str, Any], relay: Relay
) -> None:
    """The relay lists a forged resnet v3 last: the signed index proves v2 is the newest,
    and the page says the list is not to be believed."""
    server: Server = site["server"]
    other = entry_of(server, 0)  # a real block of another model, relabelled resnet v3

    def lie(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("name") == ["resnet"]:
            fake = forged(other, name="resnet", version=3)
            fake["index"] = site["size"] - 1  # listed last: the newest
            return {"entries": [*body["entries"], fake], "next": None}
        return body

    relay.rewrite = lie
    tab.goto("/explorer/#/model/resnet")
    newest = settled(tab, "#history-newest")
    later = index_of(server, "resnet", 2)
    assert newest.get_attribute("data-ok") == "true", newest.inner_text()
    assert "v2 is the newest version, proven by the signed index" in newest.inner_text()
    assert f"resnet v2 (block {later}) is in the signed log" in tab.inner_text("#history-status")
    listed = tab.locator("#history-listed")
    assert listed.get_attribute("data-ok") == "false"
    assert "NOT to be believed" in listed.inner_text()
    assert not any("v3" in text for text in green(tab))


def test_a_hidden_later_version_is_found_by_the_signed_index(
    tab: Any, site: dict[str, Any], relay: Relay, tmp_path: Path
) -> None:
    """The relay leaves v2 out of its search: v1 is proven registered, and the signed index
    still proves v2 is the newest, so v1 is named an older version."""

    def hide(_path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("name") == ["resnet"]:
            body["entries"] = [e for e in body["entries"] if e["block"]["version"] != 2]
        return body

    relay.rewrite = hide
    later = index_of(site["server"], "resnet", 2)
    old = tmp_path / "resnet"
    old.write_bytes(site["v1"])
    status = drop(tab, old)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "an OLDER version: registered as resnet v1" in status.inner_text()
    assert f"resnet v2 (block {later}) is later" in status.inner_text()
    tab.goto("/explorer/#/model/resnet")
    newest = settled(tab, "#history-newest")
    assert newest.get_attribute("data-ok") == "true", newest.inner_text()
    assert "v2 is the newest version, proven by the signed index" in newest.inner_text()
    assert tab.locator("#history-listed").get_attribute("data-ok") == "false"


def test_an_older_version_is_amber_and_names_the_later_one(
    tab: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    """Proven, but not a pass: `modelchain verify` exits 1 for an older version, so the page
    does not paint it green either."""
    older = tmp_path / "resnet"
    older.write_bytes(site["v1"])
    status = drop(tab, older)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    later = index_of(site["server"], "resnet", 2)
    assert "an OLDER version: registered as resnet v1" in status.inner_text()
    assert f"resnet v2 (block {later}) is later. Both proven in your browser." in (
        status.inner_text()
    )
    assert f"not the newest: resnet v2 (block {later}) is a later version (proven)" in (
        tab.inner_text("#check-matches")
    )
    assert tab.locator(f"#check-matches a[href='#/entry/{later}']").count() == 1
    assert "false" not in tab.inner_text("#check-result")


def test_without_webcrypto_a_registered_file_is_amber_not_green(
    tab: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    """Over plain HTTP from another machine: the proof folds, the signature is unchecked."""
    tab.add_init_script(
        "Object.defineProperty(Crypto.prototype, 'subtle', {get: () => undefined});"
    )
    older = tmp_path / "resnet"
    older.write_bytes(site["v1"])
    status = drop(tab, older)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "registered as resnet v1" in status.inner_text()
    assert "signature was not checked" in status.inner_text()
    tab.goto("/explorer/#/model/resnet")
    assert settled(tab, "#history-status").get_attribute("data-ok") == "unknown"
    assert green(tab) == []


def test_a_file_registered_twice_is_named_by_its_newest_matching_block(
    tab: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    twin.write_bytes(TWIN)
    status = drop(tab, twin)
    newer = index_of(site["server"], "twin-b", 1)
    assert status.get_attribute("data-ok") == "true", status.inner_text()
    assert f"registered as twin-b v1 (block {newer})" in status.inner_text()
    items = tab.locator("#check-matches li").all_inner_texts()
    assert [item.split(" (")[0] for item in items] == [
        "registered as twin-b v1",
        "registered as twin-a v1",
    ]


# -- past one page of search -------------------------------------------------------------------


def test_search_pages_past_1000(site: dict[str, Any]) -> None:
    api = site["server"].api
    first = httpx.get(api + "/search", params={"name": "big", "limit": 1000}).json()
    assert len(first["entries"]) == 1000
    assert first["next"] == first["entries"][-1]["index"]
    rest = httpx.get(
        api + "/search", params={"name": "big", "limit": 1000, "after": first["next"]}
    ).json()
    assert [e["block"]["version"] for e in rest["entries"]] == list(range(1001, BIG + 1))
    assert rest["next"] is None


def test_past_1000_versions_v1000_is_not_called_the_newest(
    tab: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    server: Server = site["server"]
    newest = index_of(server, "big", 1000) + (BIG - 1000)
    v1000 = tmp_path / "big"
    v1000.write_bytes(b"big 1000")
    status = drop(tab, v1000)
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()  # older: amber
    assert "an OLDER version: registered as big v1000" in status.inner_text()
    assert f"not the newest: big v{BIG} (block {newest}) is a later version (proven)" in (
        tab.inner_text("#check-matches")
    )

    tab.goto("/explorer/#/model/big")
    status = settled(tab, "#history-status")
    assert status.get_attribute("data-ok") == "true", status.inner_text()
    assert f"big v{BIG} (block {newest}) is in the signed log" in status.inner_text()
    assert f"v{BIG} is the newest version, proven by the signed index" in (
        tab.inner_text("#history-newest")
    )
    assert "v1000 is the newest" not in tab.inner_text("main")
    assert tab.locator("tbody tr").count() == BIG


# -- what a person sees ------------------------------------------------------------------------


def test_a_block_beyond_the_tree_is_no_such_block(tab: Any, site: dict[str, Any]) -> None:
    tab.goto("/explorer/#/entry/999999")
    status = settled(tab, "#proof-status")
    assert status.inner_text().startswith("No such block")
    assert f"the signed tree has {site['size']} blocks" in status.inner_text()
    assert "NOT verified" not in status.inner_text()
    assert green(tab) == []


def test_a_tampered_file_names_the_model_and_the_version_it_is_not(
    tab: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    tampered = tmp_path / "classifier.bin"  # the registered base name
    tampered.write_bytes(site["classifier"].read_bytes() + b"\x00")
    status = drop(tab, tampered)
    assert status.get_attribute("data-ok") == "false"
    text = status.inner_text()
    assert "classifier.bin: not registered" in text
    assert "A model named classifier.bin is registered, but this is not classifier.bin v1" in text
    # a pasted digest is explained by the name typed in the box
    tab.fill("#check-name", "resnet")
    tab.fill("#digest-input", sha(tampered.read_bytes()))
    tab.click("#digest-form button")
    tab.wait_for_selector("#check-status:has-text('this is not resnet v2')")
    assert "That digest: not registered" in tab.inner_text("#check-status")
    assert green(tab) == []


def test_the_checkpoint_root_is_shown_in_hex_and_base64(tab: Any, site: dict[str, Any]) -> None:
    tab.goto("/explorer/")
    assert settled(tab, "#checkpoint-status").get_attribute("data-ok") == "true"
    log = httpx.get(site["server"].api + "/log").json()
    b64 = base64.b64encode(bytes.fromhex(log["root_hash"])).decode()
    assert tab.inner_text("#root-hash") == log["root_hash"]
    assert tab.inner_text("#root-hash-b64") == b64
    assert b64 in log["checkpoint"].split("\n")


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_window(
    browser: Any,  # noqa: F811 - the imported fixture
    site: dict[str, Any],
    tmp_path: Path,
    width: int,
) -> None:
    """No page is wider than the window, and the SHA-256 column keeps a readable width."""
    context = browser.new_context(
        base_url=site["server"].url, viewport={"width": width, "height": 900}
    )
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    older = tmp_path / "resnet"
    older.write_bytes(site["v1"])
    shots = {
        "home": ("/explorer/", "#checkpoint-status"),
        "blocks": ("/explorer/#/entries", "tbody tr"),
        "directory": ("/explorer/#/entry/0", "#proof-status"),
        "model": ("/explorer/#/model/resnet", "#history-status"),
        "missing": ("/explorer/#/entry/999999", "#proof-status"),
    }
    try:
        for name, (path, selector) in shots.items():
            tab.goto(path)
            tab.wait_for_selector(f"{selector}:not([data-ok='pending'])")
            check_fits(tab, tmp_path / f"{name}-{width}.png", width)
        tab.goto("/explorer/#/check")
        tab.set_input_files("#file-input", str(older))
        settled(tab, "#check-status")
        check_fits(tab, tmp_path / f"check-{width}.png", width)
        tab.fill("#check-name", "resnet")
        tab.fill("#digest-input", sha(b"not registered"))
        tab.click("#digest-form button")
        tab.wait_for_selector("#check-status:has-text('this is not resnet v2')")
        check_fits(tab, tmp_path / f"check-unknown-{width}.png", width)
        tab.goto("/explorer/#/entry/0")
        settled(tab, "#proof-status")
        cells = tab.locator("#manifest td.hash")
        assert cells.count() == 2
        assert all(cell.bounding_box()["width"] >= 120 for cell in cells.all())
    finally:
        context.close()
    print(f"\nscreenshots at {width} px: {tmp_path}")


def check_fits(tab: Any, shot: Path, width: int) -> None:
    tab.screenshot(path=str(shot), full_page=True)
    wide = tab.evaluate(
        """() => [document.documentElement.scrollWidth,
            ...[...document.querySelectorAll("main *, header *")]
                .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
                .filter((el) => !el.closest("pre, .table-scroll"))
                .map((el) => el.tagName + "#" + el.id + "." + el.className)]"""
    )
    assert wide[0] <= width, (shot, wide)
    assert wide[1:] == [], (shot, wide[1:])


# -- the command line and the server -----------------------------------------------------------


def test_serve_prints_the_explorers_url(site: dict[str, Any]) -> None:
    server: Server = site["server"]
    assert server.proc.stderr is not None
    lines = [server.proc.stderr.readline() for _ in range(2)]
    assert f"explorer: {server.url}/\n" in lines, lines


def test_no_docs_page_that_needs_a_cdn(site: dict[str, Any]) -> None:
    url = site["server"].url
    for path in ("/docs", "/redoc"):
        assert httpx.get(url + path).status_code == 404
    assert "/api/v1/search" in httpx.get(url + "/openapi.json").json()["paths"]


# -- the page's Merkle proof check against RFC 9162 --------------------------------------------


@pytest.fixture
def inclusion_vectors() -> list[dict[str, Any]]:
    """The vectors, read (or skipped for) before a browser is started."""
    folder = VECTORS / "inclusion"
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not files:
        missing("RFC 9162 inclusion vectors", folder, "MODELCHAIN_VECTORS")
    return [
        json.loads(f.read_text(encoding="utf-8")) | {"file": str(f.relative_to(VECTORS))}
        for f in files
    ]


def test_the_pages_inclusion_check_passes_the_rfc9162_vectors(
    inclusion_vectors: list[dict[str, Any]], tab: Any
) -> None:
    vectors = inclusion_vectors
    tab.goto("/explorer/#/check")
    tab.wait_for_function("window.modelchainExplorer !== undefined")
    got = tab.evaluate(
        """async (vectors) => {
            const b64 = (t) => Uint8Array.from(atob(t), (c) => c.charCodeAt(0));
            const out = [];
            for (const v of vectors) {
                out.push(await window.modelchainExplorer.verifyInclusion(
                    v.leafIdx, v.treeSize, b64(v.leafHash), (v.proof || []).map(b64),
                    b64(v.root)));
            }
            return out;
        }""",
        vectors,
    )
    assert sum(1 for v in vectors if not v["wantErr"]) >= 5
    assert sum(1 for v in vectors if v["wantErr"]) >= 5
    wrong = [
        f"{v['file']} ({v['desc']})"
        for v, ok in zip(vectors, got, strict=True)
        if ok == v["wantErr"]
    ]
    assert wrong == []
