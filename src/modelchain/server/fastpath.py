"""The service's fast path: the busiest requests answered in pure ASGI, and the guard every
request passes first (body limit, content type, metrics).

The busiest requests (health, verify, a plain registration) are answered without FastAPI's
routing, dependency injection and pydantic, which cost more than the answer itself. They
take only the plain, valid form of a request; anything else (a bad token, an unknown field,
a manifest, a value out of range, a ledger error before any write) returns None and goes to
the routes, so every refusal and every error is the documented one, from one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from modelchain import __version__
from modelchain.core import validate
from modelchain.core.canonical import is_sha256_hex
from modelchain.core.errors import ModelchainError, UsageError, command_line_text
from modelchain.server.answers import (
    Answers,
    dumps,
    error_response,
    ledger_error_parts,
    log,
    orjson,
)
from modelchain.server.batcher import Appended, Batcher
from modelchain.server.metrics import Metrics
from modelchain.server.readers import Readers, SignedView
from modelchain.server.routes import API
from modelchain.server.tokens import TokenStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: a fast path: (scope, body) -> (status, JSON bytes), or None to let the routes answer
FastHandler = Callable[[Scope, bytes], Awaitable[tuple[int, bytes] | None]]


def fast_handlers(
    *,
    readers: Readers,
    signed_view: SignedView,
    batcher: Batcher,
    tokens: TokenStore,
    metrics: Metrics,
    answers: Answers,
) -> dict[tuple[str, str], FastHandler]:
    """(method, path) -> its fast handler."""

    async def fast_health(_scope: Scope, _body: bytes) -> tuple[int, bytes] | None:
        try:
            _note, cp = await signed_view.current()
        except ModelchainError:
            return None
        metrics.size(cp.size)
        answer = {"status": "ok", "size": cp.size, "origin": cp.origin, "version": __version__}
        return 200, dumps(answer)

    async def fast_verify(_scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        request = _json_object(body)
        if request is None or not _VERIFY_KEYS <= request.keys() <= _VERIFY_FIELDS:
            return None
        name, digest, kind = request["name"], request["digest"], request.get("kind", "file")
        if not is_sha256_hex(digest) or kind not in validate.KINDS:
            return None
        try:  # a bad name goes to the route, which refuses it with the validator's message
            validate.check_name(name)
        except ModelchainError:
            return None
        try:
            signed = await signed_view.current()
            found = readers.get().cached_lookup(name, digest, signed[0], kind=kind)
            if found is None:
                found = await readers.run(
                    lambda ledger: ledger.lookup(name, digest, kind=kind, signed=signed)
                )
        except ModelchainError:
            return None
        metrics.size(found.checkpoint.size)
        return 200, dumps(answers.verdict(found, name, digest))

    async def fast_register(scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        token = _bearer_token(scope)
        if token is None:
            return None
        record = tokens.authenticate(token)
        if record is None or not record.allows("write"):
            return None
        request = _json_object(body)
        if request is None and _too_deep(body):  # the route's parser would fail on it (400)
            return 422, dumps(validation_error("the body is nested too deeply"))
        if request is None or not request.keys() <= _PLAIN_REGISTRATION:
            return None
        name, digest = request.get("name"), request.get("digest")
        kind, size = request.get("kind", "file"), request.get("size", 0)
        metadata, force = request.get("metadata", {}), request.get("force", False)
        if type(name) is not str or not is_sha256_hex(digest) or kind != "file":
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
            return 422, dumps(validation_error(command_line_text(exc)))
        except ModelchainError:
            return None
        try:  # from here on it may be written: answer, never retry through the route
            done: Appended = await asyncio.wrap_future(batcher.submit(entry))
        except ModelchainError as exc:
            status, code, message = ledger_error_parts(exc)
            return status, dumps({"error": {"code": code, "message": message}})
        except Exception as exc:
            log.exception("internal error")
            message = f"internal error: {type(exc).__name__}"
            return 500, dumps({"error": {"code": "internal", "message": message}})
        metrics.size(done.size)
        return (200 if done.block.existing else 201), dumps(answers.registered(done))

    return {
        ("GET", f"{API}/health"): fast_health,
        ("POST", f"{API}/verify"): fast_verify,
        ("POST", f"{API}/entries"): fast_register,
    }


_VERIFY_KEYS = frozenset({"name", "digest"})
_VERIFY_FIELDS = _VERIFY_KEYS | {"kind"}
_PLAIN_REGISTRATION = frozenset({"name", "digest", "kind", "size", "metadata", "force"})


def validation_error(message: str) -> dict[str, Any]:
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


class Guard:
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
        too_big = error_response(
            413, "payload_too_large", f"the request body is over {self.max_body} bytes"
        )
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    if int(value) > self.max_body:
                        return b"", too_big
                except ValueError:
                    return b"", error_response(400, "bad_request", "bad Content-Length")
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
    return error_response(
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
