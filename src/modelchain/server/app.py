"""The FastAPI application behind `modelchain serve` (the contract is docs/api.md).

A thin layer: every answer comes from `modelchain.Ledger` (entries, proofs, `lookup`,
`append_many`); the app only parses, authorises, limits and encodes. Threads: SQLite
connections belong to the thread that opened them, so reads of a local ledger run on the
event loop's thread with one connection (they are short indexed lookups), reads of a
database ledger run in the thread pool with one connection per thread, and every write goes
through the single writer thread of `Batcher` (group commit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelchain import __version__
from modelchain.core import merkle
from modelchain.core.errors import (
    InputError,
    KeyFileError,
    LedgerUnreadable,
    ModelchainError,
    SignatureError,
    UsageError,
    VerificationError,
)
from modelchain.core.note import Checkpoint
from modelchain.core.validate import MAX_NAME, MAX_SIZE
from modelchain.ledgers import Ledger, LocalLedger
from modelchain.ledgers.local import Lookup
from modelchain.ledgers.locations import local_path
from modelchain.log.block import Block, Registration, n_blocks
from modelchain.log.home import Home
from modelchain.server.batcher import Appended, Batcher
from modelchain.server.explorer import mount_explorer
from modelchain.server.lookups import LookupCache, NodeCache
from modelchain.server.metrics import Metrics
from modelchain.server.tokens import TokenStore

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment]

log = logging.getLogger("modelchain.server")

API = "/api/v1"
MAX_INDEX = 2**63 - 1
DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_BATCH = 256
MAX_SIGNATURES = 16  # registration signatures per request (each costs a verification)
HEX64 = "^[0-9a-f]{64}$"
_HEX64 = re.compile("[0-9a-f]{64}")
T = TypeVar("T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: a fast path: (scope, body) -> (status, JSON bytes), or None to let the routes answer
FastHandler = Callable[[Scope, bytes], Awaitable[tuple[int, bytes] | None]]
BEARER = HTTPBearer(auto_error=False, description="A token from `modelchain token create`.")

# -- JSON shapes (documented in the OpenAPI schema; answers are built as plain dicts) -------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Strict):
    code: str
    message: str


class ErrorBody(_Strict):
    error: ErrorDetail


class Entry(_Strict):
    index: int
    leaf_hash: str = Field(pattern=HEX64)
    data: str = Field(description="The block's canonical JSON: the exact Merkle leaf data.")
    block: dict[str, Any]


class EntryPage(_Strict):
    entries: list[Entry]
    start: int
    size: int
    next: int | None


class EntryList(_Strict):
    entries: list[Entry]
    next: int | None = Field(
        None, description="More match: pass this as `after` for the next page, else null."
    )


class InclusionProof(_Strict):
    index: int
    size: int
    leaf_hash: str = Field(pattern=HEX64)
    root_hash: str = Field(pattern=HEX64)
    hashes: list[str]


class ConsistencyProof(_Strict):
    old: int
    new: int
    old_root: str = Field(pattern=HEX64)
    new_root: str = Field(pattern=HEX64)
    hashes: list[str]


class Health(_Strict):
    status: Literal["ok"]
    size: int
    origin: str
    version: str


class LogInfo(_Strict):
    origin: str
    size: int
    root_hash: str = Field(pattern=HEX64)
    checkpoint: str
    verifier_key: str


class Registered(_Strict):
    entry: Entry
    checkpoint: str
    inclusion_proof: InclusionProof
    existing: bool = Field(
        False,
        description="True (status 200): these bytes already were the newest version of the "
        "name, nothing was appended, and `entry` is that registration.",
    )


class Verdict(_Strict):
    verified: bool
    reason: Literal["not_registered", "digest_mismatch", "older_version"] | None
    message: str
    name: str
    digest: str
    entry: Entry | None
    matched_entry: Entry | None
    inclusion_proof: InclusionProof | None
    checkpoint: str


class RegisterRequest(_Strict):
    # name, size and metadata are checked by `Ledger.prepare` (modelchain.core.validate), the one
    # place the limits live: here only their JSON types
    name: str = Field(description=f"Model name (1 to {MAX_NAME} characters, no NUL).")
    digest: str = Field(pattern=HEX64, description="Lowercase hex SHA-256 (manifest digest).")
    kind: Literal["file", "directory"] = "file"
    size: int = Field(0, description=f"Size in bytes (0 to {MAX_SIZE}).")
    metadata: dict[str, Any] = Field(default_factory=dict)
    manifest: list[dict[str, Any]] | None = Field(
        None, description='A directory\'s files: [{"path", "size", "sha256"}, ...].'
    )
    provenance: dict[str, Any] | None = Field(
        None,
        description='How the model was made: {"predicateType", "predicate"} as stored in a '
        "block, or an in-toto Statement whose subject is this model.",
    )
    signatures: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_SIGNATURES,
        description='Registrants\' signatures over the claim: [{"keyid", "key_type", '
        '"public_key", "sig"}, ...], each checked before anything is written.',
    )
    force: StrictBool = Field(
        False,
        description="Append even when these bytes already are the newest version of the name "
        "(otherwise that entry is answered, status 200, and nothing is appended).",
    )


class VerifyRequest(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    digest: str = Field(pattern=HEX64)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


READ_ERRORS = _errors(400, 422, 503)
WRITE_ERRORS = _errors(400, 401, 403, 413, 415, 422, 503)


# -- helpers ------------------------------------------------------------------------------


class ApiError(Exception):
    """A 4xx/5xx answer with the documented error body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


#: index -> (leaf data, its entry JSON): the same block is sent again and again (verify
#: answers), and parsing its JSON was the costliest part of an answer. Checked against the
#: data on every hit, so a cache shared by several ledgers in one process is still exact.
_ENTRIES: dict[int, tuple[bytes, dict[str, Any]]] = {}
_ENTRIES_LIMIT = 50_000


def _ledger_error_parts(exc: ModelchainError) -> tuple[int, str, str]:
    """Status, code and message of the answer to a ledger error."""
    if isinstance(exc, SignatureError):  # signatures for another version: the request's
        return 422, "bad_signature", str(exc)
    if isinstance(exc, LedgerUnreadable | KeyFileError | VerificationError):
        log.error("ledger unavailable: %s", exc)
        return 503, "ledger_unavailable", str(exc)
    if isinstance(exc, UsageError | InputError):
        return 422, "validation_error", str(exc)
    return 503, "ledger_unavailable", str(exc)


def entry_json(block: Block, data: bytes) -> dict[str, Any]:
    """The entry as the API shows it. The dict may be shared: callers must not change it."""
    cached = _ENTRIES.get(block.index)
    if cached is not None and cached[0] == data:
        return cached[1]
    text = data.decode("utf-8")
    entry = {
        "index": block.index,
        "leaf_hash": merkle.leaf_hash(data).hex(),
        "data": text,
        "block": json.loads(text),
    }
    if len(_ENTRIES) >= _ENTRIES_LIMIT:
        _ENTRIES.clear()
    _ENTRIES[block.index] = (data, entry)
    return entry


def _dumps(value: Any) -> bytes:
    """Compact JSON as Starlette's JSONResponse writes it (UTF-8, no spaces), but by orjson:
    several times faster, and encoding was a good share of every answer."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits: orjson has no bignums
            pass
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class _FastJSON(JSONResponse):
    """JSONResponse rendered by `_dumps` (the routes' answers are plain dicts)."""

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def verdict_json(found: Lookup, name: str, digest: str) -> dict[str, Any]:
    """A `Ledger.lookup` answer as POST /verify sends it."""
    size, root = found.checkpoint.size, found.checkpoint.root_hash
    entry = matched = proof = None
    if found.newest is not None and found.newest_proof is not None:
        block, data = found.newest
        entry = entry_json(block, data)
        proof = _proof_json(block.index, size, data, root, found.newest_proof, entry)
    if found.matched is not None:
        matched = entry_json(*found.matched)
    return {
        "verified": found.verified,
        "reason": found.reason,
        "message": found.message,
        "name": name,
        "digest": digest,
        "entry": entry,
        "matched_entry": matched,
        "inclusion_proof": proof,
        "checkpoint": found.note,
    }


def registered_json(done: Appended) -> dict[str, Any]:
    """A committed registration as POST /entries sends it."""
    entry = entry_json(done.block, done.data)
    out = {
        "entry": entry,
        "checkpoint": done.note,
        "inclusion_proof": _proof_json(
            done.block.index, done.size, done.data, done.root_hash, done.proof, entry
        ),
    }
    if done.block.existing:
        out["existing"] = True
    return out


def _proof_json(
    index: int,
    size: int,
    data: bytes,
    root: bytes,
    proof: list[bytes],
    entry: dict[str, Any] | None = None,
) -> dict:
    return {
        "index": index,
        "size": size,
        "leaf_hash": entry["leaf_hash"] if entry is not None else merkle.leaf_hash(data).hex(),
        "root_hash": root.hex(),
        "hashes": [h.hex() for h in proof],
    }


class _Readers:
    """Ledger objects for reading, one per thread that reads: the loop's own thread for a
    file ledger, else a few threads of their own (each Ledger holds a connection pool, so
    Starlette's 40-thread pool would open far more connections than reads need)."""

    THREADS = 4

    def __init__(self, open_ledger: Callable[[], Ledger]) -> None:
        self._open = open_ledger
        self._local = threading.local()
        self.inline = True
        self._pool: ThreadPoolExecutor | None = None
        self._opened: list[Ledger] = []

    def get(self) -> Ledger:
        ledger = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = self._open()
            self._opened.append(ledger)
        return ledger

    async def run(self, fn: Callable[[Ledger], T]) -> T:
        if self.inline:
            return fn(self.get())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="modelchain-read")
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self.get()))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for ledger in self._opened:
            try:
                ledger.close()
            except Exception:  # a database gone at shutdown: nothing left to save
                log.debug("closing a reader failed", exc_info=True)


class _Signed:
    """The newest signed checkpoint, as a request must see it: read after the request
    arrived, so an answer never predates a registration another worker acknowledged.

    A file ledger's note is one indexed read on the loop's thread. On a database, requests
    that arrive while a read is in flight share the next one (at most one in flight and one
    waiting), so a busy worker pays one round trip per batch of requests, not per request.
    The signature is checked once per new note (`Ledger.read_checkpoint`)."""

    def __init__(self, readers: _Readers) -> None:
        self.readers = readers
        self._known: tuple[str, Checkpoint] | None = None
        self._running: asyncio.Future[str] | None = None
        self._queued: asyncio.Future[str] | None = None

    async def current(self) -> tuple[str, Checkpoint]:
        if self.readers.inline:
            note = self.readers.get().checkpoint()
        else:
            note = await asyncio.shield(self._next_read())
        known = self._known
        if known is not None and known[0] == note:
            return known
        known = await self.readers.run(lambda ledger: ledger.read_checkpoint())
        self._known = known
        return known

    def _next_read(self) -> asyncio.Future[str]:
        """A read that starts now if none is in flight, else right after the one that is."""
        if self._running is None:
            self._running = self._start()
            return self._running
        if self._queued is None:
            self._queued = asyncio.get_running_loop().create_future()
        return self._queued

    def _start(self) -> asyncio.Future[str]:
        task = asyncio.ensure_future(self.readers.run(lambda ledger: ledger.checkpoint()))
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _done: asyncio.Future[str]) -> None:
        self._running = None
        queued, self._queued = self._queued, None
        if queued is None:
            return
        self._running = running = self._start()

        def relay(done: asyncio.Future[str]) -> None:
            if queued.done():
                return
            if done.cancelled():
                queued.cancel()
            elif (exc := done.exception()) is not None:
                queued.set_exception(exc)
            else:
                queued.set_result(done.result())

        running.add_done_callback(relay)


# -- the application ----------------------------------------------------------------------


def create_app(
    location: str,
    *,
    home: str | os.PathLike[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """The app for one ledger. `home` holds the operator key and tokens.json."""
    home_obj = Home(home) if home is not None else Home()
    tokens = TokenStore(home_obj)
    metrics = Metrics()

    node_cache = NodeCache()
    lookup_cache = LookupCache()

    def open_ledger() -> LocalLedger:
        # shared by this process's readers: proofs share their upper nodes (which never
        # change once written), and lookups repeat until the next checkpoint
        return LocalLedger.open(
            location, home=home_obj, node_cache=node_cache, lookup_cache=lookup_cache
        )

    readers = _Readers(open_ledger)
    signed_view = _Signed(readers)
    file = local_path(location)
    batcher = Batcher(
        open_ledger,
        max_batch=max_batch,
        on_batch=metrics.batch,
        # several workers on one SQLite file take turns by a lock beside it (not on it:
        # closing a descriptor of the ledger itself would drop SQLite's own locks)
        turn_file=None if file is None or os.name != "posix" else file + ".writer-turn",
    )
    verifier_keys: dict[str, str] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        first = readers.get()  # on the loop's thread: opened, so a bad ledger fails now
        readers.inline = first.store.local_path is not None
        await run_in_threadpool(batcher.start)
        try:
            yield
        finally:
            await run_in_threadpool(batcher.stop)
            readers.close()  # on this thread: SQLite's connection belongs to it

    app = FastAPI(
        title="modelchain",
        version=__version__,
        summary="A tamper-evident ledger of ML model digests: entries, proofs, checkpoints.",
        lifespan=lifespan,
        # the Swagger and ReDoc pages load their scripts from a CDN (blank offline); the
        # document itself stays at /openapi.json
        docs_url=None,
        redoc_url=None,
    )

    # -- errors -----------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(exc.status_code, "bad_request")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint (see /openapi.json)"
        return _error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error_response(400, "malformed_json", "the request body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        if first.get("type") == "extra_forbidden":
            message = f"{where}: unknown field"
        else:
            message = f"{where}: {first.get('msg', 'invalid')}"
        return _error_response(422, "validation_error", message)

    @app.exception_handler(ModelchainError)
    async def _ledger_error(_r: Request, exc: ModelchainError) -> JSONResponse:
        return _error_response(*_ledger_error_parts(exc))

    @app.exception_handler(Exception)
    async def _bug(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error_response(500, "internal", f"internal error: {type(exc).__name__}")

    # -- auth -------------------------------------------------------------------------------

    def authorise(creds: HTTPAuthorizationCredentials | None, scope: str) -> None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if creds is None or not creds.credentials:
            raise ApiError(
                401, "unauthorized", f"a bearer token with {scope} scope is required", challenge
            )
        record = tokens.authenticate(creds.credentials)
        if record is None:
            raise ApiError(401, "unauthorized", "unknown, revoked or expired token", challenge)
        if not record.allows(scope):
            raise ApiError(403, "forbidden", f"this token has {record.scope} scope, not {scope}")

    async def require_write(
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> None:
        """A dependency, so that it runs before the body's fields are validated."""
        authorise(creds, "write")

    # -- reads ------------------------------------------------------------------------------

    def signed(ledger: Ledger) -> tuple[str, Any]:
        note, checkpoint = ledger.read_checkpoint()
        metrics.size(checkpoint.size)
        return note, checkpoint

    @app.get(f"{API}/health", response_model=Health, responses=_errors(503), tags=["log"])
    async def health() -> JSONResponse:
        """Liveness and the signed size of the ledger."""
        _note, cp = await readers.run(signed)
        return JSONResponse(
            {"status": "ok", "size": cp.size, "origin": cp.origin, "version": __version__}
        )

    @app.get(f"{API}/log", response_model=LogInfo, responses=_errors(503), tags=["log"])
    async def log_info() -> JSONResponse:
        """The log's origin, size, root hash, checkpoint note and the operator's verifier key."""

        def read(ledger: Ledger) -> dict[str, Any]:
            note, cp = signed(ledger)
            if cp.origin not in verifier_keys:
                verifier_keys[cp.origin] = ledger.verifier_for(cp.origin).string()
            return {
                "origin": cp.origin,
                "size": cp.size,
                "root_hash": cp.root_hash.hex(),
                "checkpoint": note,
                "verifier_key": verifier_keys[cp.origin],
            }

        return JSONResponse(await readers.run(read))

    @app.get(
        f"{API}/checkpoint",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(503),
        },
        tags=["log"],
    )
    async def checkpoint() -> PlainTextResponse:
        """The newest signed checkpoint: a C2SP tlog-checkpoint in a signed note."""
        note, _cp = await readers.run(signed)
        return PlainTextResponse(note)

    @app.get(f"{API}/entries", response_model=EntryPage, responses=READ_ERRORS, tags=["entries"])
    async def list_entries(
        start: int = Query(0, ge=0, le=MAX_INDEX, description="First index."),
        limit: int = Query(100, ge=1, le=1000, description="At most this many entries."),
    ) -> JSONResponse:
        """A page of entries in index order."""

        def read(ledger: Ledger) -> dict[str, Any]:
            _note, cp = signed(ledger)
            stop = min(start + limit, cp.size)
            entries = (
                [entry_json(b, d) for b, d in ledger.entries(start, stop)] if start < stop else []
            )
            return {
                "entries": entries,
                "start": start,
                "size": cp.size,
                "next": stop if stop < cp.size else None,
            }

        return JSONResponse(await readers.run(read))

    @app.get(
        f"{API}/entries/{{index}}",
        response_model=Entry,
        responses=_errors(404, 422, 503),
        tags=["entries"],
    )
    async def get_entry(index: int = Path(ge=0, le=MAX_INDEX)) -> JSONResponse:
        """One entry, with its exact leaf data."""

        def read(ledger: Ledger) -> dict[str, Any]:
            _note, cp = signed(ledger)
            if index >= cp.size:
                raise ApiError(
                    404, "not_found", f"no entry {index}: the ledger has {n_blocks(cp.size)}"
                )
            for block, data in ledger.entries(index, index + 1):
                return entry_json(block, data)
            raise LedgerUnreadable(f"{ledger.location}: block {index} is missing")

        return JSONResponse(await readers.run(read))

    @app.get(f"{API}/search", response_model=EntryList, responses=READ_ERRORS, tags=["entries"])
    async def search(
        name: str | None = Query(None, min_length=1, max_length=MAX_NAME),
        digest: str | None = Query(None, pattern=HEX64),
        limit: int = Query(100, ge=1, le=1000),
        after: int | None = Query(
            None, ge=0, le=MAX_INDEX, description="Only entries after this index (paging)."
        ),
    ) -> JSONResponse:
        """Entries by model name and/or digest, oldest first, `limit` a page."""
        if name is None and digest is None:
            raise ApiError(400, "bad_request", "give name, digest, or both")

        def read(ledger: Ledger) -> dict[str, Any]:
            _note, cp = signed(ledger)
            found = [
                i
                for i in ledger.store.find(name=name, digest=digest)
                if i < cp.size and (after is None or i > after)
            ]
            out = []
            for index in found[:limit]:
                for block, data in ledger.entries(index, index + 1):
                    out.append(entry_json(block, data))
            more = len(found) > limit and bool(out)
            return {"entries": out, "next": out[-1]["index"] if more else None}

        return JSONResponse(await readers.run(read))

    @app.get(
        f"{API}/proof/inclusion",
        response_model=InclusionProof,
        responses=READ_ERRORS,
        tags=["proofs"],
    )
    async def inclusion(
        index: int = Query(ge=0, le=MAX_INDEX),
        size: int | None = Query(None, ge=1, le=MAX_INDEX, description="Default: signed size."),
    ) -> JSONResponse:
        """RFC 9162 inclusion proof of entry `index` in the tree of `size` entries."""

        def read(ledger: Ledger) -> dict[str, Any]:
            _note, cp = signed(ledger)
            tree = cp.size if size is None else size
            if tree > cp.size:
                raise ApiError(
                    422, "validation_error", f"size {tree} is beyond the tree ({n_blocks(cp.size)})"
                )
            if index >= tree:
                raise ApiError(
                    422, "validation_error", f"entry {index} is not in a tree of {n_blocks(tree)}"
                )
            proof = ledger.inclusion_proof(index, tree)
            root = cp.root_hash if tree == cp.size else ledger.root_hash(tree)
            data = next(ledger.entries(index, index + 1))[1]
            return _proof_json(index, tree, data, root, proof)

        return JSONResponse(await readers.run(read))

    @app.get(
        f"{API}/proof/consistency",
        response_model=ConsistencyProof,
        responses=READ_ERRORS,
        tags=["proofs"],
    )
    async def consistency(
        old: int = Query(ge=0, le=MAX_INDEX),
        new: int | None = Query(None, ge=0, le=MAX_INDEX, description="Default: signed size."),
    ) -> JSONResponse:
        """RFC 9162 consistency proof from the tree of `old` entries to the tree of `new`."""

        def read(ledger: Ledger) -> dict[str, Any]:
            _note, cp = signed(ledger)
            tree = cp.size if new is None else new
            if tree > cp.size:
                raise ApiError(
                    422,
                    "validation_error",
                    f"new size {tree} is beyond the tree ({n_blocks(cp.size)})",
                )
            if old > tree:
                raise ApiError(
                    422, "validation_error", f"old size {old} is larger than new size {tree}"
                )
            proof = ledger.consistency_proof(old, tree)
            new_root = cp.root_hash if tree == cp.size else ledger.root_hash(tree)
            old_root = ledger.root_hash(old) if old else merkle.EMPTY_ROOT
            return {
                "old": old,
                "new": tree,
                "old_root": old_root.hex(),
                "new_root": new_root.hex(),
                "hashes": [h.hex() for h in proof],
            }

        return JSONResponse(await readers.run(read))

    @app.post(
        f"{API}/verify",
        response_model=Verdict,
        responses=_errors(400, 413, 415, 422, 503),
        tags=["verify"],
    )
    async def verify(body: VerifyRequest) -> JSONResponse:
        """Is `digest` the newest registered version of `name`? With the proof to check it."""

        def read(ledger: Ledger) -> dict[str, Any]:
            found = ledger.lookup(body.name, body.digest)
            metrics.size(found.checkpoint.size)
            return verdict_json(found, body.name, body.digest)

        return _FastJSON(await readers.run(read))

    # -- writes -----------------------------------------------------------------------------

    @app.post(
        f"{API}/entries",
        status_code=201,
        response_model=Registered,
        responses={
            200: {
                "model": Registered,
                "description": "Already the newest version of the name: nothing appended, "
                '`entry` is that registration and `"existing": true`.',
            },
            **WRITE_ERRORS,
        },
        tags=["entries"],
        dependencies=[Depends(require_write)],
    )
    async def register(body: RegisterRequest) -> JSONResponse:
        """Append a registration (write scope). Answered once it is committed and signed."""
        manifest = None
        if body.manifest is not None:
            from modelchain.fs.digest import manifest_from_json

            manifest = manifest_from_json(body.manifest)

        def prepare() -> Registration:  # every rule, provenance and signatures too, is the ledger's
            try:
                return readers.get().prepare(
                    name=body.name,
                    model_hash=body.digest,
                    kind=body.kind,
                    size=body.size,
                    manifest=manifest,
                    metadata=body.metadata,
                    provenance=body.provenance,
                    signatures=body.signatures,
                    force=body.force,
                )
            except SignatureError as exc:  # the request's fault, not the ledger's: no 503
                raise ApiError(422, "bad_signature", str(exc)) from None

        entry = prepare() if readers.inline else await run_in_threadpool(prepare)
        done: Appended = await asyncio.wrap_future(batcher.submit(entry))
        metrics.size(done.size)
        return _FastJSON(registered_json(done), status_code=200 if done.block.existing else 201)

    # -- metrics ----------------------------------------------------------------------------

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        include_in_schema=True,
        tags=["ops"],
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        """Prometheus text format, for this worker process."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- fast paths -------------------------------------------------------------------------
    # The busiest requests, answered without FastAPI's routing, dependency injection and
    # pydantic (which cost more than the answer itself). They take only the plain, valid
    # form of a request; anything else (a bad token, an unknown field, a manifest, a value
    # out of range, a ledger error before any write) returns None and goes to the routes
    # above, so every refusal and every error is the documented one, from one place.

    async def fast_health(_scope: Scope, _body: bytes) -> tuple[int, bytes] | None:
        try:
            _note, cp = await signed_view.current()
        except ModelchainError:
            return None
        metrics.size(cp.size)
        answer = {"status": "ok", "size": cp.size, "origin": cp.origin, "version": __version__}
        return 200, _dumps(answer)

    async def fast_verify(_scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        request = _json_object(body)
        if request is None or request.keys() != {"name", "digest"}:
            return None
        name, digest = request["name"], request["digest"]
        if not _valid_name(name) or not _valid_digest(digest):
            return None
        try:
            signed = await signed_view.current()
            found = readers.get().cached_lookup(name, digest, signed[0])
            if found is None:
                found = await readers.run(lambda ledger: ledger.lookup(name, digest, signed=signed))
        except ModelchainError:
            return None
        metrics.size(found.checkpoint.size)
        return 200, _dumps(verdict_json(found, name, digest))

    async def fast_register(scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        token = _bearer_token(scope)
        if token is None:
            return None
        record = tokens.authenticate(token)
        if record is None or not record.allows("write"):
            return None
        request = _json_object(body)
        if request is None and _too_deep(body):  # the route's parser would fail on it (400)
            return 422, _dumps(_validation_error("the body is nested too deeply"))
        if request is None or not request.keys() <= _PLAIN_REGISTRATION:
            return None
        name, digest = request.get("name"), request.get("digest")
        kind, size = request.get("kind", "file"), request.get("size", 0)
        metadata, force = request.get("metadata", {}), request.get("force", False)
        if type(name) is not str or not _valid_digest(digest) or kind != "file":
            return None
        if type(size) is not int or type(metadata) is not dict or type(force) is not bool:
            return None
        if metadata and _has_float(metadata):  # orjson reads an integer beyond 64 bits as
            return None  # a float: let the route's exact parser see it (and refuse it)
        try:  # every limit is the ledger's (modelchain.core.validate), answered as the route would
            entry = readers.get().prepare(
                name=name, model_hash=digest, kind="file", size=size, metadata=metadata, force=force
            )
        except UsageError as exc:
            return 422, _dumps(_validation_error(str(exc)))
        except ModelchainError:
            return None
        try:  # from here on it may be written: answer, never retry through the route
            done: Appended = await asyncio.wrap_future(batcher.submit(entry))
        except ModelchainError as exc:
            status, code, message = _ledger_error_parts(exc)
            return status, _dumps({"error": {"code": code, "message": message}})
        except Exception as exc:
            log.exception("internal error")
            message = f"internal error: {type(exc).__name__}"
            return 500, _dumps({"error": {"code": "internal", "message": message}})
        metrics.size(done.size)
        return (200 if done.block.existing else 201), _dumps(registered_json(done))

    fast: dict[tuple[str, str], FastHandler] = {
        ("GET", f"{API}/health"): fast_health,
        ("POST", f"{API}/verify"): fast_verify,
        ("POST", f"{API}/entries"): fast_register,
    }

    mount_explorer(app)  # the web explorer at /explorer/ (explorer.py), / redirects there
    return _Guard(app, max_body=max_body, metrics=metrics, fast=fast)  # type: ignore[return-value]


_PLAIN_REGISTRATION = frozenset({"name", "digest", "kind", "size", "metadata", "force"})


def _validation_error(message: str) -> dict[str, Any]:
    return {"error": {"code": "validation_error", "message": message}}


def _too_deep(body: bytes) -> bool:
    """Is the body JSON nested beyond what orjson (and so any reader here) takes?"""
    if orjson is None:
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return str(exc).startswith("depth limit exceeded")
    return False


def _has_float(value: Any) -> bool:
    """Does a parsed JSON value hold a float anywhere (iteratively: any depth is safe)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (not JSON, not an object, or orjson missing)."""
    if orjson is None:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def _valid_name(name: Any) -> bool:
    return type(name) is str and 1 <= len(name) <= MAX_NAME


def _valid_digest(digest: Any) -> bool:
    return type(digest) is str and _HEX64.fullmatch(digest) is not None


def _bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer <token>` header in exactly that form."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            if value.startswith(b"Bearer ") and len(value) > 7:
                try:
                    return value[7:].decode("latin-1")
                except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
                    return None
            return None
    return None


# -- request guard: body limit, content type, metrics (pure ASGI: cheap on the hot path) ---


class _Guard:
    """Refuses oversize and non-JSON bodies before FastAPI parses them, and times requests.

    It wraps the FastAPI app; attribute access falls through to it (`app.openapi()` etc.)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        max_body: int,
        metrics: Metrics,
        fast: dict[tuple[str, str], FastHandler] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics
        self.fast = fast or {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        label: str | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            body = b""
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body, refused = await self._read_body(scope, receive)
                if refused is None and body:
                    refused = _check_content_type(scope)
                if refused is not None:
                    await refused(scope, receive, send_wrapper)
                    return
                receive = _replay(body, receive)
            handler = self.fast.get((scope["method"], scope["path"]))
            if handler is not None and not scope.get("query_string"):
                answer = await handler(scope, body)
                if answer is not None:
                    label = scope["path"]
                    status = answer[0]
                    await _send_json(send, *answer)
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            if label is None:
                route = scope.get("route")
                label = getattr(route, "path", None) or "unmatched"
            self.metrics.request(label, scope["method"], status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, Response | None]:
        too_big = _error_response(
            413, "payload_too_large", f"the request body is over {self.max_body} bytes"
        )
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    if int(value) > self.max_body:
                        return b"", too_big
                except ValueError:
                    return b"", _error_response(400, "bad_request", "bad Content-Length")
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None


async def _send_json(send: Send, status: int, body: bytes) -> None:
    """What JSONResponse sends, without building one."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _check_content_type(scope: Scope) -> Response | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                return None
            break
    return _error_response(
        415, "unsupported_media_type", "send the request body as application/json"
    )


def _replay(body: bytes, original: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the client's own events."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


# -- for uvicorn ----------------------------------------------------------------------------

ENV_LEDGER = "MODELCHAIN_SERVE_LEDGER"
ENV_MAX_BODY = "MODELCHAIN_SERVE_MAX_BODY"
ENV_MAX_BATCH = "MODELCHAIN_SERVE_MAX_BATCH"


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker process (`serve --workers N`)."""
    location = os.environ.get(ENV_LEDGER)
    if not location:
        raise UsageError(f"{ENV_LEDGER} is not set")
    return create_app(
        location,
        max_body=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY)),
        max_batch=int(os.environ.get(ENV_MAX_BATCH, DEFAULT_MAX_BATCH)),
    )
