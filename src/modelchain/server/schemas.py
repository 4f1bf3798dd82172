"""The JSON shapes of the HTTP API, as pydantic models: they document the OpenAPI schema
and parse request bodies into their JSON types.

The limits themselves (a name's length, a size's range, metadata, signatures) are
`modelchain.core.validate`'s: a request model states them only by the same constants, and
the routes leave every refusal of a value to the one validator (through `Ledger.prepare`,
or `validate.check_name` for a name to look up), so a limit has one message everywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from modelchain.core.validate import HEX64_PATTERN, MAX_NAME, MAX_SIGNATURES, MAX_SIZE

HEX64 = HEX64_PATTERN
#: a model name as the schema documents it; the check is `validate.check_name`'s
NAME_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": MAX_NAME}


INDEX_PROOF_DOC = (
    "Base64 of the index proof of the name in the checkpoint's signed index (its "
    "`modelchain-index/v1` line): that `entry` is the name's newest version, or with no "
    "entry that the name is not registered. Null when the checkpoint signs no index."
)


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
    index_proof: str | None = Field(
        None,
        description=INDEX_PROOF_DOC,
    )


class NameProof(_Strict):
    name: str
    checkpoint: str = Field(description="The signed checkpoint note the proofs are under.")
    index_proof: str | None = Field(None, description=INDEX_PROOF_DOC)
    entry: Entry | None = Field(description="The newest entry of the name; null: not registered.")
    inclusion_proof: InclusionProof | None


class RegisterRequest(_Strict):
    # every value is checked by `Ledger.prepare` (modelchain.core.validate), the one place the
    # limits live: here only their JSON types, and the limits as documentation
    name: str = Field(
        description=f"Model name (1 to {MAX_NAME} characters, no NUL).",
        json_schema_extra=NAME_SCHEMA,
    )
    digest: str = Field(pattern=HEX64, description="Lowercase hex SHA-256 (manifest digest).")
    kind: Literal["file", "directory"] = "file"
    # strict: an integer, as the validator takes it (lax parsing made "5", 5.0 and true sizes)
    size: int = Field(0, strict=True, description=f"Size in bytes (0 to {MAX_SIZE}).")
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
    name: str = Field(json_schema_extra=NAME_SCHEMA)
    digest: str = Field(pattern=HEX64)
    kind: Literal["file", "directory"] = Field(
        "file",
        description="What was hashed: a file (the default: a browser hashes files), or a "
        "directory (`digest` is then its manifest digest). The newest version matches only "
        "with the same kind and digest.",
    )


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    return {code: {"model": ErrorBody} for code in codes}


READ_ERRORS = errors(400, 422, 503)
WRITE_ERRORS = errors(400, 401, 403, 413, 415, 422, 503)
