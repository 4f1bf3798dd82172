"""The API's answers as JSON: entries, proofs, verdicts, registrations and error bodies,
shared by the routes and the fast path so that both send the very same bytes."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from fastapi.responses import JSONResponse

from modelchain.core import merkle
from modelchain.core.errors import (
    InputError,
    KeyFileError,
    LedgerUnreadable,
    ModelchainError,
    SignatureError,
    UsageError,
    VerificationError,
    command_line_text,
)
from modelchain.core.note import Checkpoint
from modelchain.ledgers.local import Lookup, NameState
from modelchain.log.block import Block
from modelchain.server.batcher import Appended

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment]

log = logging.getLogger("modelchain.server")


class ApiError(Exception):
    """A 4xx/5xx answer with the documented error body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def ledger_error_parts(exc: ModelchainError) -> tuple[int, str, str]:
    """Status, code and message of the answer to a ledger error."""
    if isinstance(exc, SignatureError):  # signatures for another version: the request's
        return 422, "bad_signature", command_line_text(exc)
    if isinstance(exc, LedgerUnreadable | KeyFileError | VerificationError):
        log.error("ledger unavailable: %s", exc)
        return 503, "ledger_unavailable", command_line_text(exc)
    if isinstance(exc, UsageError | InputError):
        return 422, "validation_error", command_line_text(exc)
    return 503, "ledger_unavailable", command_line_text(exc)


def dumps(value: Any) -> bytes:
    """Compact JSON as Starlette's JSONResponse writes it (UTF-8, no spaces), but by orjson:
    several times faster, and encoding was a good share of every answer."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits: orjson has no bignums
            pass
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class FastJSON(JSONResponse):
    """JSONResponse rendered by `dumps` (the routes' answers are plain dicts)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


class Answers:
    """Builds the answers of one app. It remembers each entry's JSON (index -> leaf data,
    entry): the same block is sent again and again (verify answers), and parsing its JSON was
    the costliest part of an answer. A hit is checked against the data, so it stays exact."""

    LIMIT = 50_000

    def __init__(self) -> None:
        self._entries: dict[int, tuple[bytes, dict[str, Any]]] = {}

    def entry(self, block: Block, data: bytes) -> dict[str, Any]:
        """The entry as the API shows it. The dict may be shared: callers must not change it."""
        cached = self._entries.get(block.index)
        if cached is not None and cached[0] == data:
            return cached[1]
        text = data.decode("utf-8")
        entry = {
            "index": block.index,
            "leaf_hash": merkle.leaf_hash(data).hex(),
            "data": text,
            "block": json.loads(text),
        }
        if len(self._entries) >= self.LIMIT:
            self._entries.clear()
        self._entries[block.index] = (data, entry)
        return entry

    def verdict(self, found: Lookup, name: str, digest: str) -> dict[str, Any]:
        """A `Ledger.lookup` answer as POST /verify sends it."""
        size, root = found.checkpoint.size, found.checkpoint.root_hash
        entry = matched = proof = None
        if found.newest is not None and found.newest_proof is not None:
            block, data = found.newest
            entry = self.entry(block, data)
            proof = proof_json(block.index, size, data, root, found.newest_proof, entry)
        if found.matched is not None:
            matched = self.entry(*found.matched)
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
            "index_proof": _b64(found.index_proof),
        }

    def name_proof(
        self, name: str, note: str, checkpoint: Checkpoint, state: NameState
    ) -> dict[str, Any]:
        """`LocalLedger.name_proof` as GET /proof/index sends it: the newest entry of `name`
        (or null), its inclusion proof, and the index proof that it is the newest (or that
        the name is not registered) under the signed checkpoint `note`."""
        entry = proof = None
        if state.newest is not None and state.proof is not None:
            block, data = state.newest
            entry = self.entry(block, data)
            proof = proof_json(
                block.index, checkpoint.size, data, checkpoint.root_hash, state.proof, entry
            )
        return {
            "name": name,
            "checkpoint": note,
            "index_proof": _b64(state.index_proof),
            "entry": entry,
            "inclusion_proof": proof,
        }

    def registered(self, done: Appended) -> dict[str, Any]:
        """A committed registration as POST /entries sends it."""
        entry = self.entry(done.block, done.data)
        out = {
            "entry": entry,
            "checkpoint": done.note,
            "inclusion_proof": proof_json(
                done.block.index, done.size, done.data, done.root_hash, done.proof, entry
            ),
        }
        if done.block.existing:
            out["existing"] = True
        return out


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def proof_json(
    index: int,
    size: int,
    data: bytes,
    root: bytes,
    proof: list[bytes],
    entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "size": size,
        "leaf_hash": entry["leaf_hash"] if entry is not None else merkle.leaf_hash(data).hex(),
        "root_hash": root.hex(),
        "hashes": [h.hex() for h in proof],
    }
