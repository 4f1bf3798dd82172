"""The web explorer, as a visitor sees it: a real `modelchain serve` and headless Chromium.

The browser tests drive Debian's /usr/bin/chromium through Playwright (no browser download)
and check what the page itself concludes: the checkpoint signature, the inclusion proof and
a file's registration, each computed in the browser; and that a proof, a signature or a leaf
altered in flight is reported as a failure. The plain HTTP tests need no browser.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_util import Server, init_ledger, running_server, server_env

from modelchain.core.canonical import canonical_json
from modelchain.fs.digest import digest_path, manifest_to_json

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATIC = Path(__file__).resolve().parents[2] / "src/modelchain/server/explorer"
PAGE = 20  # blocks per page in app.js
EVIL = '<img src=x id="pwned">'  # a model name that must stay text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- one server for the module --------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A ledger with a file (two versions), a directory and enough blocks for two pages."""
    root = tmp_path_factory.mktemp("explorer")
    home, work = root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    ledger = str(work / "ledger.db")
    init_ledger(ledger, home)
    model = work / "resnet.bin"
    model.write_bytes(b"weights v1\n" * 100)
    old = sha(model.read_bytes())
    (work / "llm").mkdir()
    (work / "llm" / "config.json").write_text('{"layers": 2}\n')
    (work / "llm" / "weights.bin").write_bytes(b"\x00\x01" * 50)
    for argv in (["register", "resnet.bin", "--name", "resnet"], ["register", "llm"]):
        subprocess.run(
            [sys.executable, "-m", "modelchain", "--ledger", ledger, *argv],
            cwd=work,
            env=server_env(home),
            check=True,
            capture_output=True,
        )
    model.write_bytes(b"weights v2\n" * 100)  # the file on disk is now version 2
    with running_server(ledger, home) as server, server.client() as client:
        posts = [("resnet", sha(model.read_bytes()))]
        posts += [(f"bulk-{i}", sha(f"bulk {i}".encode())) for i in range(PAGE)]
        posts += [(EVIL, sha(b"evil"))]
        for name, digest in posts:
            answer = client.post(
                "/entries", json={"name": name, "digest": digest}, headers=server.auth()
            )
            assert answer.status_code == 201, answer.text
        size = client.get("/log").json()["size"]
        assert size == 2 + len(posts)
        yield {
            "server": server,
            "model": model,
            "old": old,
            "directory": digest_path(work / "llm").sha256,
            # a file holding the directory's manifest JSON: the same digest, not the model
            "manifest_json": canonical_json(manifest_to_json(digest_path(work / "llm").manifest)),
            "size": size,
        }


@pytest.fixture(scope="module")
def server(site: dict[str, Any]) -> Server:
    return site["server"]


# -- plain HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/explorer/", "text/html"),
        ("/explorer/index.html", "text/html"),
        ("/explorer/app.js", "text/javascript"),
        ("/explorer/app.css", "text/css"),
        ("/explorer/favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_type_and_a_self_only_csp(
    server: Server, path: str, media: str
) -> None:
    answer = httpx.get(server.url + path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media
    csp = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content == (STATIC / (path.rsplit("/", 1)[1] or "index.html")).read_bytes()
    assert httpx.head(server.url + path).status_code == 200


def test_root_redirects_to_the_explorer_and_unknown_files_are_404(server: Server) -> None:
    for path in ("/", "/explorer"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 307
        assert answer.headers["location"] == "/explorer/"
    missing = httpx.get(server.url + "/explorer/../pyproject.toml")
    assert missing.status_code == 404
    for path in ("/explorer/secret.txt", "/explorer/app.js.map", "/explorer/a/b"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
    # the API is untouched by the explorer's routes
    assert httpx.get(server.api + "/health").json()["status"] == "ok"


def test_pages_work_offline_with_no_inline_code() -> None:
    """Nothing is fetched from elsewhere, and nothing would be blocked by the CSP."""
    html = (STATIC / "index.html").read_text()
    for name in ("index.html", "app.css", "app.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), name
        assert "@import" not in text and "url(" not in text, name
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\sstyle=|<style", html), "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "innerHTML" not in (STATIC / "app.js").read_text()


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh page; any JavaScript error or CSP violation fails the test."""
    with watched_page(browser, server.url, 20_000) as tab:
        yield tab


@contextlib.contextmanager
def watched_page(browser: Any, base_url: str, timeout_ms: int) -> Iterator[Any]:
    """A page on `base_url` whose JavaScript errors and CSP violations fail the test."""
    context = browser.new_context(base_url=base_url)
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    yield tab
    context.close()
    assert not problems, problems


def settled(tab: Any, selector: str) -> Any:
    """The status element once the page has finished checking."""
    tab.wait_for_selector(f"{selector}:not([data-ok='pending'])")
    return tab.locator(selector)


def test_explorer_verifies_checkpoint_and_a_blocks_proof(
    page: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    page.goto("/")
    assert page.url.endswith("/explorer/")
    status = settled(page, "#checkpoint-status")
    assert status.get_attribute("data-ok") == "true"
    assert "Signature verified" in status.inner_text()
    log = httpx.get(site["server"].api + "/log").json()
    assert page.inner_text("#size") == f"{site['size']} blocks"
    assert page.inner_text("#root-hash") == log["root_hash"]
    assert log["verifier_key"].split("+")[1] in status.inner_text()

    # follow the directory block (index 1) from the blocks list to its detail page
    page.click("a[data-nav='entries']")
    page.click("#order")  # oldest first: block 1 is on the first page
    page.click("tr[data-index='1'] td >> nth=0 >> a")
    page.wait_for_url(re.compile(r"#/entry/1$"))
    proof = settled(page, "#proof-status")
    assert proof.get_attribute("data-ok") == "true", proof.inner_text()
    assert "Proof verified: block 1" in proof.inner_text()
    assert page.locator("#manifest tbody tr").count() == 2
    assert "config.json" in page.inner_text("#manifest")
    assert page.locator("#proof-hashes li").count() >= 1
    shot = tmp_path / "block-1.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_blocks_are_paged_newest_first(page: Any, site: dict[str, Any]) -> None:
    size = site["size"]
    page.goto("/explorer/#/entries")
    page.wait_for_selector("tbody tr")
    rows = page.locator("tbody tr")
    assert rows.count() == PAGE
    assert rows.first.get_attribute("data-index") == str(size - 1)
    page.click("#next")  # older
    page.wait_for_selector(f"tbody tr[data-index='{size - PAGE - 1}']")
    assert page.locator("tbody tr").count() == size - PAGE
    assert page.locator("tbody tr").last.get_attribute("data-index") == "0"
    assert page.locator("#next").count() == 0
    page.click("#order")  # oldest first
    page.wait_for_selector("tbody tr[data-index='0']")
    assert page.locator("tbody tr").first.get_attribute("data-index") == "0"


def test_model_history_and_hostile_names_stay_text(page: Any) -> None:
    page.goto("/explorer/")
    page.fill("#model-name", "resnet")
    page.press("#model-name", "Enter")
    status = settled(page, "#history-status")
    assert "resnet v2 (block 2) is in the signed log: proven" in status.inner_text()
    assert "v2 is the newest version, proven by the signed index" in (
        page.inner_text("#history-newest")
    )
    assert page.locator("tbody tr").count() == 2
    page.goto("/explorer/#/model/" + quote(EVIL, safe=""))
    settled(page, "#history-status")
    assert EVIL in page.inner_text("tbody")
    assert page.locator("#pwned").count() == 0
    page.goto("/explorer/#/model/nobody")
    assert settled(page, "#history-status").get_attribute("data-ok") == "false"


def test_dropped_file_is_hashed_locally_and_looked_up(
    page: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    page.goto("/explorer/#/check")
    page.set_input_files("#file-input", str(site["model"]))
    status = settled(page, "#check-status")
    assert status.get_attribute("data-ok") == "true"
    assert "registered as resnet v2" in status.inner_text()
    assert "the newest version, proven by the signed index" in page.inner_text("#check-matches")

    older = tmp_path / "old.bin"
    older.write_bytes(b"weights v1\n" * 100)
    page.set_input_files("#file-input", str(older))
    page.wait_for_selector("#check-status:has-text('resnet v1')")
    assert "not the newest: resnet v2 (block 2) is a later version (proven)" in (
        page.inner_text("#check-matches")
    )
    assert page.locator("#check-status").get_attribute("data-ok") == "unknown"  # not green

    unknown = tmp_path / "unknown.bin"
    unknown.write_bytes(os.urandom(3000))
    page.set_input_files("#file-input", str(unknown))
    page.wait_for_selector("#check-status:has-text('not registered')")
    assert page.locator("#check-status").get_attribute("data-ok") == "false"
    assert sha(unknown.read_bytes()) in page.inner_text("#check-status")

    # the files never left the browser: only GETs, no bodies, the digest as a query
    assert requests and all(r.method == "GET" and not r.post_data for r in requests)
    searched = [r.url for r in requests if "/api/v1/search?digest=" in r.url]
    assert any(sha(unknown.read_bytes()) in url for url in searched)


def test_a_file_holding_a_directorys_manifest_is_not_that_directory(
    page: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    """Kind and digest, as `modelchain verify` judges: a dropped file is a file, so a
    directory's block with the same digest is not its registration (it was shown green)."""
    impostor = tmp_path / "llm.json"
    impostor.write_bytes(site["manifest_json"])
    assert sha(impostor.read_bytes()) == site["directory"]
    page.goto("/explorer/#/check")
    page.set_input_files("#file-input", str(impostor))
    status = settled(page, "#check-status")
    assert status.get_attribute("data-ok") == "false"
    text = status.inner_text()
    assert "not registered" in text, text
    assert "(llm v1, proven) has this digest, but it registers a directory, and this is a file" in (
        text
    )
    page.fill("#digest-input", site["directory"])  # a pasted digest may be a directory's
    page.click("#digest-form button")
    page.wait_for_selector("#check-status:has-text('registered as llm v1')")


def test_pasted_digest_is_checked(page: Any, site: dict[str, Any]) -> None:
    page.goto("/explorer/#/check")
    page.fill("#digest-input", "not hex")
    page.click("#digest-form button")
    assert "64 hex digits" in settled(page, "#check-status").inner_text()
    page.fill("#digest-input", site["old"])
    page.click("#digest-form button")
    page.wait_for_selector("#check-status:has-text('resnet v1')")
    page.fill("#digest-input", site["directory"].upper())  # `modelchain hash DIR` of a directory
    page.click("#digest-form button")
    page.wait_for_selector("#check-status:has-text('registered as llm v1')")


def test_without_webcrypto_the_signature_is_shown_unchecked(page: Any) -> None:
    """As over plain HTTP from another machine: the proof is still folded (in JS), but the
    page says the signature was not checked instead of claiming it verified."""
    page.add_init_script(
        "Object.defineProperty(Crypto.prototype, 'subtle', {get: () => undefined});"
    )
    page.goto("/explorer/#/entry/2")
    status = settled(page, "#proof-status")
    assert status.get_attribute("data-ok") == "unknown", status.inner_text()
    assert "leads to the checkpoint's root" in status.inner_text()
    assert "cannot check Ed25519" in status.inner_text()
    assert page.locator("ul.steps li[data-ok='false']").count() == 0


def _tamper_proof(body: dict[str, Any]) -> dict[str, Any]:
    first = body["hashes"][0]
    body["hashes"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    return body


def _tamper_signature(body: dict[str, Any]) -> dict[str, Any]:
    text, _, sigline = body["checkpoint"].rstrip("\n").rpartition("\n")
    prefix, b64 = sigline.rsplit(" ", 1)
    b64 = ("A" if b64[10] != "A" else "B").join((b64[:10], b64[11:]))
    body["checkpoint"] = f"{text}\n{prefix} {b64}\n"
    return body


def _tamper_leaf(body: dict[str, Any]) -> dict[str, Any]:
    body["data"] = body["data"].replace('"llm"', '"evil-llm"')
    body["block"]["name"] = "evil-llm"
    return body


@pytest.mark.parametrize(
    ("pattern", "tamper", "expect"),
    [
        ("**/api/v1/proof/inclusion*", _tamper_proof, "not the signed root"),
        ("**/api/v1/log", _tamper_signature, "does not verify"),
        ("**/api/v1/entries/1", _tamper_leaf, "leaf hash"),
    ],
    ids=["proof", "signature", "leaf"],
)
def test_tampering_in_flight_is_reported(page: Any, pattern: str, tamper: Any, expect: str) -> None:
    def alter(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, body=json.dumps(tamper(answer.json())))

    page.route(pattern, alter)
    page.goto("/explorer/#/entry/1")
    status = settled(page, "#proof-status")
    assert status.get_attribute("data-ok") == "false"
    assert "NOT verified" in status.inner_text()
    assert expect in status.inner_text()


def test_bad_block_numbers_are_reported(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/explorer/#/entry/{site['size']}")
    status = settled(page, "#proof-status")
    assert status.get_attribute("data-ok") == "false"
    assert f"no block {site['size']}" in status.inner_text()
    page.goto("/explorer/#/entry/-1")
    assert "not a block number" in page.inner_text("#error")


@pytest.fixture(scope="module")
def js(browser: Any, server: Server) -> Iterator[Any]:
    """One page whose `modelchainExplorer` functions the property tests call."""
    tab = browser.new_page()
    tab.goto(server.url + "/explorer/#/check")
    tab.wait_for_function("window.modelchainExplorer !== undefined")
    yield tab
    tab.close()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=4))
def test_incremental_sha256_matches_hashlib(js: Any, data: bytes, cuts: list[int]) -> None:
    """The page's own SHA-256 (for files too big for WebCrypto), fed in arbitrary pieces."""
    got = js.evaluate(
        """([bytes, cuts]) => {
            const {Sha256, hex} = window.modelchainExplorer;
            const data = Uint8Array.from(bytes);
            const state = new Sha256();
            let at = 0;
            for (const cut of [...cuts].sort((a, b) => a - b)) {
                const end = Math.min(cut, data.length);
                if (end > at) { state.update(data.subarray(at, end)); at = end; }
            }
            state.update(data.subarray(at));
            return hex(state.digest());
        }""",
        [list(data), cuts],
    )
    assert got == sha(data)


def test_large_files_are_hashed_in_slices(js: Any) -> None:
    """Above the WebCrypto limit (forced to 0 here) a file is read 4 MiB at a time."""
    got = js.evaluate(
        """async () => {
            const n = 9 * 1024 * 1024 + 7;
            const data = new Uint8Array(n);
            for (let i = 0; i < n; i++) data[i] = (i * 31 + (i >> 11)) & 255;
            const seen = [];
            const digest = await window.modelchainExplorer.hashFile(
                new File([data], "big.bin"), (done) => seen.push(done), 0);
            return [digest, seen];
        }"""
    )
    n = 9 * 1024 * 1024 + 7
    i = numpy.arange(n, dtype=numpy.int64)
    data = ((i * 31 + (i >> 11)) & 255).astype(numpy.uint8).tobytes()
    assert got[0] == sha(data)
    assert got[1] == [4 << 20, 8 << 20, n]


def test_the_module_serving_the_static_files_is_not_named_like_their_folder() -> None:
    """`server/static.py` serves the files in `server/explorer/`; no `explorer.py` beside it."""
    from modelchain.server import static

    assert callable(static.mount_explorer)
    assert not (STATIC.parent / "explorer.py").exists()
    assert (STATIC / "index.html").is_file()
