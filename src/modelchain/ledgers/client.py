"""The client of a ledger served by `modelchain serve`: read (and appended to) over its API.

The server is not trusted. This client only fetches: the newest checkpoint note, the entries
with their exact leaf data, inclusion and consistency proofs, the key the server advertises.
`modelchain.ledgers.RemoteLedger` checks all of it with the same rules as for a local
ledger: the checkpoint signature with the log's verifier key, every leaf it reads against the
signed root, and that each new checkpoint extends the newest one accepted before. Which key
that is, and pinning it on first use like SSH's known_hosts, is the trust state's decision
(`modelchain.log.home.TrustState`), not this module's.

It is not a `Store`: it keeps no Merkle nodes (there is nothing stored here to check) and
has no `Writer` (the operator key lives on the server); registrations go through `submit`.

Only the standard library is used (http.client), so a client needs no extra dependency.
Every request has a deadline and every answer a size cap near what an honest server can
send for it (see MAX_* below); JSON is parsed within limits (`modelchain.core.strictjson`).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from modelchain.core import index, validate
from modelchain.core.errors import (
    KeyFileError,
    LedgerInvalid,
    LedgerUnreadable,
    NoteFormatError,
    UsageError,
    WayOut,
)
from modelchain.core.strictjson import JSONLimitError, loads_within
from modelchain.log.store.base import StoredBlock

if TYPE_CHECKING:
    import http.client
    import ssl

    from modelchain.core.note import Verifier
    from modelchain.log.home import Home, KeyChoice, PinNotice

API = "/api/v1"
PAGE = 1000  # the API's largest page (entries, search)
DEFAULT_TIMEOUT = 30.0

# -- answer caps: near what an honest server can send for each request ---------------------
# Anything larger is refused unread (exit 1) and nothing is parsed before it is known to fit.
#: a block's canonical leaf data: no ledger accepts a larger block (`validate.MAX_BLOCK`,
#: checked by `Ledger.prepare` for every registration, local or served)
MAX_BLOCK = validate.MAX_BLOCK
#: /log: origin, size, root, verifier key and a checkpoint note (a few hundred bytes, plus
#: about 100 bytes per signature line)
MAX_LOG = 64 << 10
#: /proof/*: at most MAX_PROOF_HASHES hashes of 64 hex digits and a few numbers
MAX_PROOF_HASHES = 64
MAX_PROOF = 16 << 10
#: /entries/N: the leaf data as a JSON string (escaping at most doubles it), the parsed
#: block beside it, and a few small fields
MAX_ENTRY = 3 * MAX_BLOCK + (16 << 10)
#: a page of /entries or /search: asked for PAGE entries, but never read beyond this; an
#: honest page that is larger is asked for again in smaller pages, down to one entry
MAX_PAGE = max(16 << 20, MAX_ENTRY + (16 << 10))
#: POST /entries: the new entry, its checkpoint note and its inclusion proof
MAX_SUBMITTED = MAX_ENTRY + MAX_LOG + MAX_PROOF
#: an error answer: only its message is shown, so only its start is read
MAX_ERROR = 64 << 10
#: an index proof as base64: the longest `Proof.to_bytes()` (`core.index.MAX_PROOF_BYTES`)
MAX_INDEX_PROOF_B64 = 4 * ((index.MAX_PROOF_BYTES + 2) // 3)
#: /proof/index beside an entry: its checkpoint note, index proof and inclusion proof
MAX_NAME_PROOF_EXTRA = MAX_LOG + MAX_INDEX_PROOF_B64 + MAX_PROOF
_CHUNK = 64 << 10
RETRIES = (0.2, 0.6)  # pauses before the 2nd and 3rd attempt of an idempotent GET
TOKEN_ENV = "MODELCHAIN_TOKEN"
TOKEN_FILE_ENV = "MODELCHAIN_TOKEN_FILE"
CA_BUNDLE_ENV = "MODELCHAIN_CA_BUNDLE"
TIMEOUT_ENV = "MODELCHAIN_HTTP_TIMEOUT"
DEADLINE_ENV = "MODELCHAIN_HTTP_DEADLINE"


def is_remote(location: str) -> bool:
    """Is `location` an http(s):// server address (rather than a file or a database)?"""
    return location.split("://", 1)[0].lower() in ("http", "https") and "://" in location


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_url(location: str) -> str:
    """`http(s)://host[:port][/prefix]`, checked: plain http only to a loopback address."""
    try:
        parts = urllib.parse.urlsplit(location.strip())
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{location}: not a valid server address ({exc})") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise UsageError(f"{location}: not a server address (use https://host:port)")
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"{location}: do not put credentials in the address",
            way_out=WayOut(env=(TOKEN_ENV,), cli=f"; set {TOKEN_ENV} instead"),
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{location}: a server address has no query or fragment")
    if scheme == "http" and not is_loopback(host):
        raise UsageError(
            f"{location}: plain http:// is allowed only to a loopback address "
            "(127.0.0.1, ::1, localhost); use https:// for another host"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Submitted:
    """The server's answer to a registration: to be checked, not believed."""

    index: int
    raw: Any
    data: bytes
    note: str
    size: int
    proof: list[bytes]
    #: the server says these bytes already are the newest version and it appended nothing
    existing: bool = False


@dataclass(frozen=True)
class NameAnswer:
    """The server's proof of a name's newest entry (or of its absence): to be checked, not
    believed. `newest`: the entry, the tree size its inclusion proof is for, and the proof."""

    name: str
    note: str
    #: `core.index.Proof.to_bytes()` as sent (parsed strictly by the ledger)
    index_proof: bytes
    newest: tuple[StoredBlock, int, list[bytes]] | None


class AnswerTooLarge(LedgerInvalid):
    """A server sent more than an honest answer to that request can be: it is lying (or is
    not a modelchain server), and the rest of its answer is not read."""

    def __init__(self, location: str, path: str, cap: int) -> None:
        super().__init__(
            f"{location}: the answer to {API}{path} is over {_size(cap)}, more than an honest "
            "server sends; refused"
        )
        self.path = path


@dataclass(frozen=True)
class AnswerLimits:
    """The most a client reads of an entry's leaf data, an entry answer and a page, in bytes.

    The defaults (MAX_BLOCK, MAX_ENTRY, MAX_PAGE) are near what an honest server sends; a
    client may read less (a small machine, a ledger known to hold small blocks), never more,
    as no ledger holds a larger block."""

    block: int = MAX_BLOCK
    entry: int = MAX_ENTRY
    page: int = MAX_PAGE

    def __post_init__(self) -> None:
        for name, most in (("block", MAX_BLOCK), ("entry", MAX_ENTRY), ("page", MAX_PAGE)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
                raise UsageError(f"answer limit {name}: {value!r} is not a size from 1 to {most}")

    def page_cap(self, entries: int) -> int:
        """The most a page of `entries` entries is read to: a page, or one entry's bound."""
        return self.entry if entries == 1 else self.page


class LedgerClient:
    """A server's ledger seen through its API: what it says, to be proven by the ledger;
    registrations go through `submit`."""

    #: read through proofs, written by `submit` (what `Ledger` branches on)
    remote = True
    #: nothing of it lives in a local file
    local_path: str | None = None

    def __init__(
        self, location: str, *, timeout: float | None = None, limits: AnswerLimits | None = None
    ) -> None:
        self.location = normalise_url(location)
        self.timeout = timeout if timeout is not None else _env_timeout()
        #: the size caps of the answers read (`AnswerLimits`; its defaults unless given)
        self.limits = limits if limits is not None else AnswerLimits()
        #: all requests of this command end by then (MODELCHAIN_HTTP_DEADLINE), if it is set
        overall = _env_seconds(DEADLINE_ENV, None, 86400)
        self._overall = None if overall is None else (overall, time.monotonic() + overall)
        parts = urllib.parse.urlsplit(self.location)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._scheme == "https" else 80)
        self._prefix = parts.path
        self._tls = _tls_context() if self._scheme == "https" else None
        #: the last /log answer: origin, size, checkpoint and verifier key, read together
        self._log: dict[str, Any] | None = None
        #: entries already fetched (by search); each is still proven before it is used
        self._entries: dict[int, StoredBlock] = {}
        #: the verifier key to pin once a checkpoint signed by it is accepted
        self._key_choice: KeyChoice | None = None

    # -- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        cap: int,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, bytes, str]:
        """One request, its whole answer read within the deadline and at most `cap` bytes.

        The deadline (MODELCHAIN_HTTP_TIMEOUT) is wall time for the request, retries
        included: a server that drips its answer a byte at a time is cut off, not waited
        for. An answer over `cap` is refused as a lie (`AnswerTooLarge`, exit 1)."""
        import http.client

        target = self._prefix + API + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        deadline = time.monotonic() + self.timeout
        if self._overall is not None and self._overall[1] < deadline:
            deadline = self._overall[1]
        attempts = len(RETRIES) + 1 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                status, data, kind, answer_headers = self._exchange(
                    method, target, body, dict(headers or {}), deadline, cap, path
                )
                break
            except (OSError, http.client.HTTPException) as exc:
                pause = RETRIES[attempt] if attempt + 1 < attempts else 0.0
                if pause and _transient(exc) and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    continue
                overall = self._overall
                if (
                    isinstance(exc, TimeoutError)
                    and overall is not None
                    and time.monotonic() >= overall[1] - 0.05
                ):
                    raise LedgerUnreadable(
                        f"{self.location}: the command did not finish within {overall[0]:g} s",
                        way_out=WayOut(
                            env=(DEADLINE_ENV,), cli=f" (set {DEADLINE_ENV} to allow longer)"
                        ),
                    ) from None
                raise LedgerUnreadable(
                    f"{self.location}: {_describe(exc, self.timeout)}",
                    way_out=_way_out(exc),
                ) from None
        if not 200 <= status < 300 and status not in allow:
            self._refuse(status, data, kind, path, answer_headers)
        return status, data, kind

    def _exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
        cap: int,
        path: str,
    ) -> tuple[int, bytes, str, http.client.HTTPMessage]:
        """Connect (never through a proxy to a loopback host), send, read the answer."""
        conn = self._connection(_remaining(deadline))
        conn.response_class = functools.partial(_deadline_response(), deadline=deadline)
        try:
            # the connection's timeout is the time left: connect() waits at most that, and
            # CPython's TLS handshake counts it as one deadline for the whole handshake
            conn.connect()
            sock = conn.sock
            assert sock is not None
            if self._scheme == "http":
                _check_loopback_peer(sock, self.location)
            sock.settimeout(_remaining(deadline))  # sendall: total time, since Python 3.5
            conn.request(method, target, body=body, headers={**_HEADERS, **headers})
            response = conn.getresponse()
            ok = 200 <= response.status < 300
            limit = cap if ok else MAX_ERROR
            length = response.getheader("Content-Length")
            if ok and length is not None and length.strip().isdigit() and int(length) > cap:
                raise AnswerTooLarge(self.location, path, cap)
            data = _read_at_most(response, limit)
            if len(data) > limit:
                if ok:
                    raise AnswerTooLarge(self.location, path, cap)
                data = data[:limit]
            return response.status, data, response.getheader("Content-Type", ""), response.msg
        finally:
            conn.close()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """http.client, not urllib: no redirect is followed, no proxy is used for a loopback
        host (a proxy there would see the write token in clear), and https elsewhere goes
        through `https_proxy` only as a CONNECT tunnel, so TLS still ends at the server."""
        import http.client

        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        context = self._tls
        proxy = None if is_loopback(self._host) else _proxy_for(self._host)
        if proxy is None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context
            )
        proxy_host, proxy_port, proxy_headers = proxy
        conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=timeout, context=context)
        conn.set_tunnel(self._host, self._port, headers=proxy_headers)
        return conn

    def _refuse(self, status: int, data: bytes, kind: str, path: str, headers: Any) -> None:
        """Every non-2xx answer as one error naming what to do about it."""
        message = _error_message(data) or f"HTTP {status}"
        where = f"{self.location}: {API}{path}"
        if 300 <= status < 400:
            target = headers.get("Location", "?") if headers else "?"
            raise LedgerUnreadable(f"{where}: the server redirects to {target}; use that address")
        if status == 401:
            raise UsageError(
                f"{self.location}: the server refused the token ({message})",
                way_out=WayOut(
                    command=_WRITE_TOKEN,
                    env=(TOKEN_ENV,),
                    cli=f": set {TOKEN_ENV} to a token made on the server with {_MAKE_TOKEN}",
                ),
            )
        if status == 403:
            raise UsageError(
                f"{self.location}: the token may not do this ({message}): "
                "use a token with write scope",
                way_out=WayOut(command=_WRITE_TOKEN, env=(TOKEN_ENV,)),
            )
        if status == 404 and path == "/log":
            raise LedgerUnreadable(
                f"{self.location}: not a modelchain server (no {API}/log); check the address"
            )
        if status >= 500:
            raise LedgerUnreadable(f"{where}: server error {status}: {message}")
        raise UsageError(f"{where}: the server refused the request ({status}): {message}")

    def _get_json(
        self, path: str, query: Mapping[str, Any] | None = None, *, cap: int
    ) -> dict[str, Any]:
        _status, data, _kind = self._request("GET", path, query, cap=cap)
        return self._parse(data, path)

    def _parse(self, data: bytes, path: str) -> dict[str, Any]:
        try:
            value = loads_within(data)
        except JSONLimitError as exc:
            raise LedgerInvalid(
                f"{self.location}: the answer to {API}{path} is not what an honest server "
                f"sends: {exc}"
            ) from None
        except ValueError:
            raise LedgerUnreadable(
                f"{self.location}: the answer to {API}{path} is not JSON "
                "(is this a modelchain server?)"
            ) from None
        if not isinstance(value, dict):
            raise LedgerUnreadable(f"{self.location}: the answer to {API}{path} is not an object")
        return value

    def _field(
        self, obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str
    ) -> Any:
        value = obj.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LedgerUnreadable(
                f"{self.location}: malformed answer to {API}{path}: field {key!r} is missing "
                "or of the wrong type"
            )
        return value

    def _hashes(self, obj: Mapping[str, Any], path: str) -> list[bytes]:
        values = self._field(obj, "hashes", list, path)
        if len(values) > MAX_PROOF_HASHES:
            raise LedgerInvalid(
                f"{self.location}: the answer to {API}{path} has {len(values)} proof hashes; "
                f"a proof in a tree of at most 2**64 entries has at most {MAX_PROOF_HASHES}"
            )
        out = []
        for value in values:
            try:
                digest = bytes.fromhex(value) if isinstance(value, str) else b""
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise LedgerUnreadable(
                    f"{self.location}: malformed answer to {API}{path}: a proof hash is not "
                    "64 hex digits"
                )
            out.append(digest)
        return out

    def _stored(self, entry: Any, position: int, path: str) -> StoredBlock:
        """An entry's exact leaf data (its `block` convenience copy is ignored)."""
        if not isinstance(entry, dict):
            raise LedgerUnreadable(f"{self.location}: malformed answer to {API}{path}")
        text = self._field(entry, "data", str, path)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise LedgerUnreadable(
                f"{self.location}: entry {position}: data is not UTF-8"
            ) from None
        if len(data) > self.limits.block:
            raise LedgerInvalid(
                f"{self.location}: entry {position} in the answer to {API}{path} is over "
                f"{_size(self.limits.block)}, larger than any block a ledger holds"
            )
        try:
            raw = loads_within(data)
        except ValueError:
            raw = text  # the ledger's validator reports it as a non-object block
        return StoredBlock(position, raw, data)

    # -- what the server says ---------------------------------------------------------------

    def refresh(self) -> dict[str, Any]:
        """Read /log again: origin, size, checkpoint and advertised key, from one answer."""
        path = "/log"
        log = self._get_json(path, cap=MAX_LOG)
        self._field(log, "origin", str, path)
        self._field(log, "size", int, path)
        self._field(log, "checkpoint", str, path)
        self._log = log
        return log

    def _snapshot(self) -> dict[str, Any]:
        return self._log if self._log is not None else self.refresh()

    def exists(self) -> bool:
        self._snapshot()
        return True

    def size(self) -> int:
        return int(self._snapshot()["size"])

    def origin(self) -> str | None:
        return str(self._snapshot()["origin"])

    def checkpoint(self) -> str | None:
        """The newest checkpoint note, as the server says now (callers verify it)."""
        return str(self.refresh()["checkpoint"])

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBlock]:
        """Entries in index order, up to the size of the checkpoint last read."""
        stop = self.size() if stop is None else stop
        position = start
        page_size = PAGE
        while position < stop:
            limit = min(page_size, stop - position)
            query = {"start": position, "limit": limit}
            try:
                page = self._get_json("/entries", query, cap=self.limits.page_cap(limit))
            except AnswerTooLarge:
                if limit == 1:
                    raise
                page_size = limit // 2  # large entries, perhaps: ask for fewer at a time
                continue
            entries = self._field(page, "entries", list, "/entries")
            if not entries:
                return  # the server has fewer entries than it signed: audit says so
            for entry in entries[:limit]:
                yield self._stored(entry, position, "/entries")
                position += 1

    def entry(self, index: int) -> StoredBlock:
        """One entry's leaf data (not yet proven: see `Ledger`)."""
        cached = self._entries.get(index)
        if cached is not None:
            return cached
        path = f"/entries/{index}"
        return self._stored(self._get_json(path, cap=self.limits.entry), index, path)

    def find(self, *, name: str | None = None, digest: str | None = None) -> list[int]:
        """Indices by name and/or digest, via the server's search (a lookup aid: the ledger
        proves every entry it then reads). A search that fills a whole page may have been cut
        short, so then every entry is read and matched here instead."""
        query: dict[str, Any] = {}
        if name is not None:
            query["name"] = name
        if digest is not None:
            query["digest"] = digest
        if not query:
            return []
        query["limit"] = PAGE
        path = "/search"
        try:
            answer = self._get_json(path, query, cap=self.limits.page)
            entries = self._field(answer, "entries", list, path)
        except AnswerTooLarge:
            entries = [None] * PAGE  # as if cut short: read and match every entry here
        if len(entries) < PAGE:
            out = []
            for entry in entries:
                index = self._field(entry, "index", int, path) if isinstance(entry, dict) else -1
                if index < 0:
                    raise LedgerUnreadable(f"{self.location}: malformed answer to {API}{path}")
                self._entries[index] = self._stored(entry, index, path)
                out.append(index)
            return sorted(set(out))
        found = []
        for stored in self.blocks():
            raw = stored.raw if isinstance(stored.raw, dict) else {}
            if (name is None or raw.get("name") == name) and (
                digest is None or raw.get("model_hash") == digest
            ):
                found.append(stored.position)
        return found

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        path = "/proof/inclusion"
        answer = self._get_json(path, {"index": index, "size": size}, cap=MAX_PROOF)
        if answer.get("index") != index or answer.get("size") != size:
            raise LedgerUnreadable(
                f"{self.location}: asked for the proof of entry {index} in a tree of {size}, "
                f"got one for entry {answer.get('index')} in a tree of {answer.get('size')}"
            )
        return self._hashes(answer, path)

    def name_proof(self, name: str) -> NameAnswer | None:
        """The server's newest entry of `name` with its inclusion proof, and the index proof
        that it is the newest (or that the name is not registered), under the checkpoint note
        it names; None when the server gives no index proof (it predates them, or hides one:
        the ledger decides). Every field is parsed strictly and bounded; nothing is checked
        against a signed root here."""
        path = "/proof/index"
        cap = self.limits.entry + MAX_NAME_PROOF_EXTRA
        status, data, _kind = self._request("GET", path, {"name": name}, cap=cap, allow=(404,))
        if status == 404:
            return None  # no such endpoint: a server of before the index proofs
        answer = self._parse(data, path)
        if answer.get("name") != name:
            raise LedgerInvalid(
                f"{self.location}: asked {API}{path} about {name!r}, was answered about "
                f"{str(answer.get('name'))[:80]!r}"
            )
        note = self._field(answer, "checkpoint", str, path)
        text = answer.get("index_proof")
        if text is None:
            return None
        proof = self._base64(text, path, "index_proof", index.MAX_PROOF_BYTES)
        entry, inclusion = answer.get("entry"), answer.get("inclusion_proof")
        if entry is None and inclusion is None:
            return NameAnswer(name, note, proof, None)
        if not isinstance(entry, dict) or not isinstance(inclusion, dict):
            raise LedgerInvalid(
                f"{self.location}: malformed answer to {API}{path}: an entry comes with its "
                "inclusion proof"
            )
        position = self._field(entry, "index", int, path)
        if self._field(inclusion, "index", int, path) != position:
            raise LedgerInvalid(
                f"{self.location}: the answer to {API}{path} proves another entry "
                f"({inclusion.get('index')}) than it shows ({position})"
            )
        size = self._field(inclusion, "size", int, path)
        stored = self._stored(entry, position, path)
        return NameAnswer(name, note, proof, (stored, size, self._hashes(inclusion, path)))

    def _base64(self, value: Any, path: str, field: str, most: int) -> bytes:
        """A field that is the canonical standard base64 of at most `most` bytes."""
        raw = b""
        if isinstance(value, str) and len(value) <= 4 * ((most + 2) // 3):
            try:
                raw = base64.b64decode(value.encode("ascii"), validate=True)
            except (UnicodeEncodeError, ValueError):
                raw = b""
        if not raw or len(raw) > most or base64.b64encode(raw).decode("ascii") != value:
            raise LedgerInvalid(
                f"{self.location}: the answer to {API}{path}: {field} is not the base64 of "
                f"at most {most} bytes"
            )
        return raw

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self._consistency(old, new)[1]

    def prefix_root(self, old: int, new: int) -> tuple[bytes, list[bytes]]:
        """The root the server gives for the tree of `old` leaves, and the consistency proof
        from it to `new` (unchecked: the ledger checks it against the signed root)."""
        answer, proof = self._consistency(old, new)
        (root,) = self._hashes({"hashes": [answer.get("old_root")]}, "/proof/consistency")
        return root, proof

    def _consistency(self, old: int, new: int) -> tuple[dict[str, Any], list[bytes]]:
        path = "/proof/consistency"
        answer = self._get_json(path, {"old": old, "new": new}, cap=MAX_PROOF)
        if answer.get("old") != old or answer.get("new") != new:
            raise LedgerUnreadable(
                f"{self.location}: asked for a consistency proof from {old} to {new}, "
                f"got one from {answer.get('old')} to {answer.get('new')}"
            )
        return answer, self._hashes(answer, path)

    # -- writing ----------------------------------------------------------------------------

    def _check_token_transport(self) -> None:
        """The write token goes only where nobody else can read it: over https (through a
        proxy only as a CONNECT tunnel), or plain http to this machine, never via a proxy
        (`_connection` uses none for loopback; `_exchange` checks the address connected to)."""
        if self._scheme != "https" and not is_loopback(self._host):
            raise UsageError(
                f"{self.location}: a write token is sent only over https:// or to a loopback "
                "address; refusing to send it in clear"
            )

    def token(self) -> str:
        """The bearer token for writes: MODELCHAIN_TOKEN, else the file MODELCHAIN_TOKEN_FILE."""
        token = os.environ.get(TOKEN_ENV, "").strip()
        file = os.environ.get(TOKEN_FILE_ENV, "")
        if not token and file:
            try:
                with open(file, encoding="utf-8") as fh:
                    token = fh.read(4096).strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise KeyFileError(f"{file}: cannot read the token file: {exc}") from None
        if not token:
            raise UsageError(
                f"registering at {self.location} needs a token",
                way_out=WayOut(
                    command=_WRITE_TOKEN,
                    env=(TOKEN_ENV, TOKEN_FILE_ENV),
                    cli=f": set {TOKEN_ENV} (or {TOKEN_FILE_ENV}) to one made on the server "
                    f"with {_MAKE_TOKEN}",
                ),
            )
        return token

    def submit(self, payload: Mapping[str, Any]) -> Submitted:
        """POST one registration; the answer is returned for the ledger to check."""
        path = "/entries"
        self._check_token_transport()
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.token()}",
            "Content-Type": "application/json",
        }
        _status, data, _kind = self._request(
            "POST", path, body=body, headers=headers, cap=MAX_SUBMITTED
        )
        self._log = None  # the log has grown
        answer = self._parse(data, path)
        entry = self._field(answer, "entry", dict, path)
        proof = self._field(answer, "inclusion_proof", dict, path)
        index = self._field(entry, "index", int, path)
        stored = self._stored(entry, index, path)
        return Submitted(
            index=self._field(proof, "index", int, path),
            raw=stored.raw,
            data=stored.data,
            note=self._field(answer, "checkpoint", str, path),
            size=self._field(proof, "size", int, path),
            proof=self._hashes(proof, path),
            existing=answer.get("existing") is True,
        )

    # -- the verifier key -------------------------------------------------------------------

    def advertised_key(self) -> Verifier:
        """The verifier key the server advertises in /log: only a claim (whether to trust it
        is the trust state's decision, `TrustState.choose_key`)."""
        from modelchain.core.note import Verifier

        log = self._snapshot()
        try:
            return Verifier.from_string(str(log.get("verifier_key", "")))
        except (NoteFormatError, UsageError) as exc:
            raise LedgerUnreadable(f"{self.location}: advertises no usable key: {exc}") from None

    def verifier(self, origin: str, keys: Sequence[Verifier], home: Home) -> Verifier:
        """The key that must sign `origin`'s checkpoints (`TrustState.choose_key`), kept to
        be pinned by `pin` once the ledger has accepted a checkpoint signed by it."""
        choice = home.trust.choose_key(origin, keys, self.advertised_key, where=self.location)
        self._key_choice = choice if choice.to_pin else None
        return choice.key

    def pin(self, home: Home) -> PinNotice | None:
        """Pin the key chosen by `verifier` (`TrustState.accept_key`, synced at once). A key
        taken on first use gives a notice, also handed to the home's `notify`: this module
        prints nothing."""
        choice, self._key_choice = self._key_choice, None
        if choice is None:
            return None
        with home.trust.synced() as trust:
            return trust.accept_key(choice)

    # -- what `Ledger` still asks of every store --------------------------------------------
    #
    # The ledger treats a server's log like a store in a few shared paths: the audit's hint
    # for the first changed leaf (`node`, whose refusal it catches), `init` and `import`
    # into a server (`writer`, refused in these words), the audit's lookup columns (none
    # here) and the cleanup of a refused first append (nothing to remove).

    def node(self, level: int, index: int) -> bytes:
        raise LedgerUnreadable(
            f"{self.location}: a server's Merkle nodes are not read one by one; "
            "ask the server for proofs"
        )

    def writer(self) -> NoReturn:
        raise writes_refused(self.location)

    def lookup_columns(self, size: int) -> None:
        return None

    def discard_created(self) -> None:
        return None

    def close(self) -> None:
        return None


# -- helpers --------------------------------------------------------------------------------

#: the command that makes a token registrations are accepted with
_WRITE_TOKEN = ("token", "create", "--scope", "write")
_MAKE_TOKEN = "`modelchain token create --scope write`"
_HEADERS = {"Accept": "application/json", "Connection": "close", "User-Agent": "modelchain"}


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline`; past it, the request has timed out."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline passed")
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket reader whose every read waits at most until the request's deadline, so the
    deadline holds over headers and body however slowly the bytes come."""

    def __init__(self, file: Any, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._file, self._raw, self._sock, self._deadline = file, file.raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return int(self._raw.readinto(buffer))

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


@functools.cache
def _deadline_response() -> type:
    """`http.client.HTTPResponse` read under a deadline (status line, headers, body); made on
    first use, so that a local command never imports the HTTP stack."""
    import http.client

    class _DeadlineResponse(http.client.HTTPResponse):
        def __init__(self, sock: Any, *args: Any, deadline: float, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp = io.BufferedReader(_DeadlineReader(self.fp, sock, deadline))

    return _DeadlineResponse


def _read_at_most(response: http.client.HTTPResponse, limit: int) -> bytes:
    """The body, but never more than `limit` + 1 bytes of it (one more shows it is over)."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = response.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _check_loopback_peer(sock: socket.socket, location: str) -> None:
    """Plain http only ever talks to this machine: the address actually connected to must
    be loopback (a name like localhost could resolve elsewhere), else nothing is sent."""
    import ipaddress

    peer = str(sock.getpeername()[0]).split("%", 1)[0]
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is None or not address.is_loopback:
        raise UsageError(
            f"{location}: connected to {peer}, not a loopback address; plain http:// is "
            "allowed only to this machine (use https://)"
        )


def _proxy_for(host: str) -> tuple[str, int, dict[str, str]] | None:
    """The https proxy to tunnel through (`https_proxy`, unless `no_proxy` names the host)."""
    import urllib.request

    url = urllib.request.getproxies().get("https", "")
    if not url or urllib.request.proxy_bypass(host):
        return None
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"https_proxy={url!r}: not a proxy address") from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise UsageError(f"https_proxy={url!r}: give an http://host:port proxy (CONNECT)")
    headers: dict[str, str] = {}
    if parts.username is not None:
        user, password = parts.username, parts.password or ""
        secret = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
    return parts.hostname, port, headers


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def _env_timeout() -> float:
    value = _env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT, 3600)
    assert value is not None
    return value


def _env_seconds(name: str, default: float | None, most: float) -> float | None:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= most:
        raise UsageError(f"{name}={text!r}: give seconds, between 0 and {most:g}")
    return value


def _tls_context() -> ssl.SSLContext:
    """Certificates are verified; MODELCHAIN_CA_BUNDLE names a private CA if there is one."""
    import ssl

    bundle = os.environ.get(CA_BUNDLE_ENV) or None
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        raise KeyFileError(f"{CA_BUNDLE_ENV}={bundle}: cannot load CA bundle: {exc}") from None


def writes_refused(location: str) -> UsageError:
    """What a ledger that is a server answers to a local write (init, import)."""
    return UsageError(
        f"{location} is a server",
        way_out=WayOut(
            command=("register", "--ledger", location),
            library=": initialising, importing and exporting into it run on the server",
            cli=(
                ": register models there with `modelchain register --ledger URL` "
                "(initialising, importing and exporting into it run on the server)"
            ),
        ),
    )


def _transient(reason: object) -> bool:
    """Worth another try: the server is (re)starting or dropped the connection."""
    import http.client

    return isinstance(
        reason, ConnectionRefusedError | ConnectionResetError | http.client.RemoteDisconnected
    )


def _way_out(reason: object) -> WayOut | None:
    """The way past what `_describe` says."""
    import ssl

    if isinstance(reason, ConnectionRefusedError):
        return WayOut(command=("serve",), cli=" (is `modelchain serve` running there?)")
    if isinstance(reason, TimeoutError):
        return WayOut(env=(TIMEOUT_ENV,), cli=f" (set {TIMEOUT_ENV} to wait longer)")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return WayOut(env=(CA_BUNDLE_ENV,), cli=f"; set {CA_BUNDLE_ENV} to its CA file")
    return None


def _describe(reason: object, timeout: float) -> str:
    import http.client
    import ssl

    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror or reason})"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = reason.verify_message or reason.reason or reason
        return f"TLS certificate not trusted ({detail})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(reason, http.client.HTTPException):
        return f"not an HTTP answer ({type(reason).__name__})"
    if isinstance(reason, OSError):
        return f"cannot connect ({reason.strerror or reason})"
    return f"cannot connect ({reason})"


def _error_message(data: bytes) -> str:
    """The message of the API's error body `{"error": {"code", "message"}}`, if it is one."""

    try:
        body = loads_within(data)
        message = body["error"]["message"]
    except (ValueError, TypeError, KeyError):
        return ""
    return " ".join(str(message).split())[:300]
