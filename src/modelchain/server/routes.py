"""The API's routes (the contract is docs/api.md): thin over the library.

Every answer comes from `modelchain.Ledger` (entries, proofs, `lookup`, `prepare`); a route
only parses, authorises and encodes. Every write goes through the single writer thread of
`Batcher` (group commit); reads go through `Readers`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelchain import __version__
from modelchain.core import merkle, validate
from modelchain.core.errors import (
    LedgerUnreadable,
    ModelchainError,
    SignatureError,
    command_line_text,
)
from modelchain.ledgers import Ledger
from modelchain.log.block import Registration, n_blocks
from modelchain.server.answers import (
    Answers,
    ApiError,
    FastJSON,
    error_response,
    ledger_error_parts,
    log,
    proof_json,
)
from modelchain.server.batcher import Appended, Batcher
from modelchain.server.metrics import Metrics
from modelchain.server.readers import Readers
from modelchain.server.schemas import (
    HEX64,
    NAME_SCHEMA,
    READ_ERRORS,
    WRITE_ERRORS,
    ConsistencyProof,
    Entry,
    EntryList,
    EntryPage,
    Health,
    InclusionProof,
    LogInfo,
    NameProof,
    Registered,
    RegisterRequest,
    Verdict,
    VerifyRequest,
    errors,
)
from modelchain.server.tokens import TokenStore

API = "/api/v1"
MAX_INDEX = 2**63 - 1
BEARER = HTTPBearer(auto_error=False, description="A token from `modelchain token create`.")


def add_routes(
    app: FastAPI,
    *,
    readers: Readers,
    batcher: Batcher,
    tokens: TokenStore,
    metrics: Metrics,
    answers: Answers,
) -> None:
    """The error handlers and every route of `/api/v1` and `/metrics`."""
    verifier_keys: dict[str, str] = {}  # origin -> the operator's verifier key, as shown

    # -- errors -----------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(exc.status_code, "bad_request")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint (see /openapi.json)"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        if first.get("type") == "extra_forbidden":
            message = f"{where}: unknown field"
        else:
            message = f"{where}: {first.get('msg', 'invalid')}"
        return error_response(422, "validation_error", message)

    @app.exception_handler(ModelchainError)
    async def _ledger_error(_r: Request, exc: ModelchainError) -> JSONResponse:
        return error_response(*ledger_error_parts(exc))

    @app.exception_handler(Exception)
    async def _bug(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")

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

    @app.get(f"{API}/health", response_model=Health, responses=errors(503), tags=["log"])
    async def health() -> JSONResponse:
        """Liveness and the signed size of the ledger."""
        _note, cp = await readers.run(signed)
        return JSONResponse(
            {"status": "ok", "size": cp.size, "origin": cp.origin, "version": __version__}
        )

    @app.get(f"{API}/log", response_model=LogInfo, responses=errors(503), tags=["log"])
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
            **errors(503),
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
                [answers.entry(b, d) for b, d in ledger.entries(start, stop)]
                if start < stop
                else []
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
        responses=errors(404, 422, 503),
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
                return answers.entry(block, data)
            raise LedgerUnreadable(f"{ledger.location}: block {index} is missing")

        return JSONResponse(await readers.run(read))

    @app.get(f"{API}/search", response_model=EntryList, responses=READ_ERRORS, tags=["entries"])
    async def search(
        name: str | None = Query(None, json_schema_extra=NAME_SCHEMA),
        digest: str | None = Query(None, pattern=HEX64),
        limit: int = Query(100, ge=1, le=1000),
        after: int | None = Query(
            None, ge=0, le=MAX_INDEX, description="Only entries after this index (paging)."
        ),
    ) -> JSONResponse:
        """Entries by model name and/or digest, oldest first, `limit` a page."""
        if name is None and digest is None:
            raise ApiError(400, "bad_request", "give name, digest, or both")
        if name is not None:  # a name no registration can have: refused as registering it is
            validate.check_name(name)

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
                    out.append(answers.entry(block, data))
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
            return proof_json(index, tree, data, root, proof)

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

    @app.get(
        f"{API}/proof/index",
        response_model=NameProof,
        responses=READ_ERRORS,
        tags=["proofs"],
    )
    async def index_proof(name: str = Query(json_schema_extra=NAME_SCHEMA)) -> JSONResponse:
        """The newest entry of `name` with its inclusion proof and the index proof that it is
        the newest (or, with no entry, that the name is not registered)."""
        validate.check_name(name)  # refused as a registration of that name would be

        def read(ledger: Ledger) -> dict[str, Any]:
            note, cp, state = ledger.name_proof(name)
            metrics.size(cp.size)
            return answers.name_proof(name, note, cp, state)

        return FastJSON(await readers.run(read))

    @app.post(
        f"{API}/verify",
        response_model=Verdict,
        responses=errors(400, 413, 415, 422, 503),
        tags=["verify"],
    )
    async def verify(body: VerifyRequest) -> JSONResponse:
        """Is `digest` the newest registered version of `name`? With the proof to check it."""
        validate.check_name(body.name)  # refused as a registration of that name would be

        def read(ledger: Ledger) -> dict[str, Any]:
            found = ledger.lookup(body.name, body.digest, kind=body.kind)
            metrics.size(found.checkpoint.size)
            return answers.verdict(found, body.name, body.digest)

        return FastJSON(await readers.run(read))

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
                raise ApiError(422, "bad_signature", command_line_text(exc)) from None

        entry = prepare() if readers.inline else await run_in_threadpool(prepare)
        done: Appended = await asyncio.wrap_future(batcher.submit(entry))
        metrics.size(done.size)
        return FastJSON(answers.registered(done), status_code=200 if done.block.existing else 201)

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
