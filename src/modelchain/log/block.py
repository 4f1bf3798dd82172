"""A block and a registration: what each holds, how a stored block is parsed and checked,
and the one validator of a registration (every limit, its claim's signatures and their
binding to a log and version), before any ledger takes a write lock."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelchain.claims.claim import RegistrationSignature
from modelchain.claims.keys import PrivateKey, PublicKey
from modelchain.claims.provenance import Provenance
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json, is_sha256_hex, json_type, loads_unique
from modelchain.core.errors import InputError, LedgerInvalid, SignatureError, UsageError, WayOut
from modelchain.core.index import Entry, Index
from modelchain.fs.digest import Manifest, manifest_from_json, manifest_to_json

__all__ = [
    "SEED_FIELDS",
    "ZERO_HASH",
    "Block",
    "Kind",
    "Registration",
    "canonical_timestamp",
    "chain_hash_matches",
    "check_binding",
    "default_name",
    "n_blocks",
    "parse_block",
    "parse_ref",
    "registration",
    "require_signers",
    "seed_hash",
    "signature_problem",
]

ZERO_HASH = "0" * 64
SEED_FIELDS = ("index", "timestamp", "model_hash", "previous_hash", "current_hash")
Kind = Literal["file", "directory"]
#: what `registration` asks the ledger for when a claim is signed: the log and version the
#: registration gets, and the signature values the log already holds for the name
Binder = Callable[[str], tuple[tuple[str, int], set[str]]]


def seed_hash(index: int, timestamp: float, model_hash: str, previous_hash: str) -> str:
    """The seed's block hash: SHA-256(str(index) + str(timestamp) + model_hash + previous_hash)."""
    text = str(index) + str(timestamp) + model_hash + previous_hash
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_timestamp(timestamp: float) -> float:
    """The one form a block's timestamp is hashed and stored in: the value its canonical
    JSON reads back as. RFC 8785 writes an integral float `1796158393.0` as `1796158393`,
    which reads back as an integer, and `str()` of the two differs: so a whole number of
    seconds is an `int` from the start, and any other value stays the float it is (whose
    shortest round-trip digits RFC 8785 and `str()` share)."""
    if isinstance(timestamp, float) and timestamp.is_integer():
        return int(timestamp)
    return timestamp


def chain_hash_matches(block: Block) -> bool:
    """Does `current_hash` match the block's contents? An integer timestamp may also have
    been hashed as the float it was before it was stored (`1796158393.0`), as ledgers
    written before `canonical_timestamp` did: the same value, so the same block."""
    expected = seed_hash(block.index, block.timestamp, block.model_hash, block.previous_hash)
    if block.current_hash == expected:
        return True
    timestamp = block.timestamp
    if isinstance(timestamp, int) and abs(timestamp) <= 2**53:
        legacy = seed_hash(block.index, float(timestamp), block.model_hash, block.previous_hash)
        return block.current_hash == legacy
    return False


# -- blocks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One registration. The seed's five fields, plus what a real registry needs."""

    index: int
    timestamp: float
    model_hash: str
    previous_hash: str
    current_hash: str
    name: str
    version: int
    kind: Kind
    size: int
    manifest: Manifest | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: in-toto provenance `{"predicateType", "predicate"}` (see `modelchain.claims.provenance`)
    provenance: Mapping[str, Any] | None = None
    #: registrants' signatures over `claim()`
    signatures: tuple[RegistrationSignature, ...] = ()
    #: not stored: True when an append found these very bytes as the newest version of the
    #: name and appended nothing (see `Registration.force`); this is that registration
    existing: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The block as stored: seed fields first, so the JSON file reads like the seed's."""
        out: dict[str, Any] = {
            "index": self.index,
            "timestamp": self.timestamp,
            "model_hash": self.model_hash,
            "previous_hash": self.previous_hash,
            "current_hash": self.current_hash,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "size": self.size,
            "manifest": None if self.manifest is None else manifest_to_json(self.manifest),
            "metadata": dict(self.metadata),
        }
        if self.provenance is not None:  # absent, not null: older blocks encode as before
            out["provenance"] = dict(self.provenance)
        if self.signatures:
            out["signatures"] = [s.to_json() for s in self.signatures]
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def claim(self, origin: str | None = None) -> dict[str, Any]:
        """What the registrant signed: the block minus what the ledger assigned. With the
        log's `origin`, the bound claim: it also names the log and this block's version."""
        from modelchain.claims.claim import claim

        return claim(
            name=self.name,
            model_hash=self.model_hash,
            kind=self.kind,
            size=self.size,
            manifest=None if self.manifest is None else manifest_to_json(self.manifest),
            metadata=self.metadata,
            provenance=self.provenance,
            log=origin,
            version=self.version if origin is not None else None,
        )

    def signature_problems(
        self, origin: str | None = None
    ) -> list[tuple[RegistrationSignature, str | None]]:
        """Each signature with None (valid) or the reason it is not. A bound signature is
        checked against the claim naming `origin` (the log this block is in) and the block's
        version; without `origin` it cannot be checked, and says so."""
        if not self.signatures:
            return []
        from modelchain.claims.claim import signed_message

        messages: dict[bool, bytes] = {}
        out: list[tuple[RegistrationSignature, str | None]] = []
        for s in self.signatures:
            if s.bound and origin is None:
                unknown = f"signature by key {s.keyid[:16]} names its log: checking it needs one"
                out.append((s, unknown))
                continue
            if s.bound not in messages:
                messages[s.bound] = signed_message(self.claim(origin if s.bound else None))
            out.append((s, s.problem(messages[s.bound])))
        return out

    def leaf_data(self) -> bytes:
        """The Merkle leaf's data: the canonical (RFC 8785) encoding of the whole block."""
        return canonical_json(self.to_dict())

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version} (block {self.index})"

    @classmethod
    def from_raw(cls, raw: Any, position: int) -> Block:
        """Validate a stored block; every problem is a `LedgerInvalid` naming block and field."""
        where = f"block {position}"
        if not isinstance(raw, dict):
            kind = json_type(raw)
            raise LedgerInvalid(f"{where}: expected a JSON object, found {kind}")
        for key in (*SEED_FIELDS, "name", "version", "kind", "size"):
            if key not in raw:
                raise LedgerInvalid(f"{where}: missing field {key!r}")
        index = _int_field(raw, "index", where)
        if index != position:
            raise LedgerInvalid(
                f"{where}: has index {index} (blocks were deleted, duplicated or reordered)"
            )
        timestamp = raw["timestamp"]
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise LedgerInvalid(
                f"{where}: field 'timestamp' must be a number, found {json_type(timestamp)}"
            )
        if isinstance(timestamp, float) and not math.isfinite(timestamp):
            raise LedgerInvalid(f"{where}: field 'timestamp' must be finite")
        hashes = {
            k: _hex_field(raw, k, where) for k in ("model_hash", "previous_hash", "current_hash")
        }
        name = raw["name"]
        if not isinstance(name, str) or not name:
            raise LedgerInvalid(f"{where}: field 'name' must be a non-empty string")
        version = _int_field(raw, "version", where)
        if version < 1:
            raise LedgerInvalid(f"{where}: field 'version' must be at least 1")
        kind = raw["kind"]
        if kind not in ("file", "directory"):
            raise LedgerInvalid(f"{where}: field 'kind' must be 'file' or 'directory'")
        size = _int_field(raw, "size", where)
        if size < 0:
            raise LedgerInvalid(f"{where}: field 'size' must not be negative")
        manifest = None
        raw_manifest = raw.get("manifest")
        if kind == "directory":
            try:
                manifest = manifest_from_json(raw_manifest)
            except InputError as exc:
                raise LedgerInvalid(f"{where}: field 'manifest': {exc}") from exc
            if manifest.digest != hashes["model_hash"]:
                raise LedgerInvalid(f"{where}: the manifest does not hash to model_hash")
        elif raw_manifest is not None:
            raise LedgerInvalid(f"{where}: a file block must have no manifest")
        metadata = raw.get("metadata", {})
        if not isinstance(metadata, dict):
            raise LedgerInvalid(f"{where}: field 'metadata' must be a JSON object")
        provenance = None
        if "provenance" in raw:
            from modelchain.claims.provenance import check_stored

            provenance = check_stored(raw["provenance"], where)
        signatures: tuple[RegistrationSignature, ...] = ()
        if "signatures" in raw:
            from modelchain.claims.claim import stored_signatures

            signatures = stored_signatures(raw["signatures"], where)
        known = {
            *SEED_FIELDS,
            *("name", "version", "kind", "size", "manifest", "metadata"),
            *("provenance", "signatures"),
        }
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(
            index=index,
            timestamp=timestamp,
            model_hash=hashes["model_hash"],
            previous_hash=hashes["previous_hash"],
            current_hash=hashes["current_hash"],
            name=name,
            version=version,
            kind=kind,
            size=size,
            manifest=manifest,
            metadata=metadata,
            extra=extra,
            provenance=provenance,
            signatures=signatures,
        )


def _int_field(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise LedgerInvalid(f"{where}: field {key!r} must be an integer, found {json_type(value)}")
    return value


def _hex_field(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise LedgerInvalid(f"{where}: field {key!r} must be a string, found {json_type(value)}")
    if not is_sha256_hex(value):
        raise LedgerInvalid(f"{where}: field {key!r} is not a lowercase hex SHA-256")
    return value


@dataclass(frozen=True)
class Registration:
    """A registration checked by `registration` (`Ledger.prepare`): what the registrant
    claims. The ledger adds the rest (index, timestamp, hashes, version) when it appends it."""

    name: str
    model_hash: str
    kind: Kind = "file"
    size: int = 0
    manifest: Manifest | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] | None = None
    signatures: tuple[RegistrationSignature, ...] = ()
    #: the log (origin) and version the signatures are bound to: the registration must be
    #: exactly that one when it is appended (None: no signatures)
    binding: tuple[str, int] | None = None
    #: False: when the newest version of `name` has these very bytes (same kind and digest),
    #: append nothing and answer with that block (`Block.existing`)
    force: bool = True


def registration(
    *,
    name: str,
    model_hash: str,
    kind: Kind = "file",
    size: int = 0,
    manifest: Manifest | None = None,
    metadata: Mapping[str, Any] | None = None,
    provenance: Provenance | Mapping[str, Any] | None = None,
    sign_keys: Sequence[PrivateKey] = (),
    signatures: Sequence[RegistrationSignature | Mapping[str, Any]] = (),
    force: bool = True,
    bind: Binder | None = None,
) -> Registration:
    """Check one registration (and sign its claim): the one validator, with every limit,
    used by the library and the service alike, before any write lock is taken, so that a
    batch cannot fail halfway on one bad entry. `provenance` and `signatures` may come as
    JSON (a service's request body). `bind` gives the log and version signatures name
    (asked only when there are signatures to make or check)."""
    from modelchain.core import validate

    validate.check_name(name)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise UsageError("metadata must be a JSON object")
    metadata = dict(metadata or {})
    fields: dict[str, Any] = {
        "name": name,
        "model_hash": model_hash,
        "kind": kind,
        "size": size,
        "manifest": None if manifest is None else manifest_to_json(manifest),
        "manifest_digest": None if manifest is None else manifest.digest,
        "metadata": metadata,
    }
    validate.check_registration(fields)  # every limit (again below with what is signed)
    stored_provenance = None
    if provenance is not None:
        parsed = _as_provenance(provenance)
        files = [(f.path, f.sha256) for f in manifest.files] if manifest is not None else []
        parsed.check_subject(model_hash, files)  # a statement about other artifacts: no
        stored_provenance = parsed.to_json()
        validate.check_json_value(stored_provenance, "provenance")
    given = [_as_signature(s, i) for i, s in enumerate(signatures)]
    binding: tuple[str, int] | None = None
    held: set[str] = set()
    if given or sign_keys:
        if bind is None:
            raise UsageError("signing a registration needs the ledger it is made for")
        binding, held = bind(name)
    claim_signatures = _sign_claim(
        name,
        model_hash,
        kind,
        size,
        manifest,
        metadata,
        stored_provenance,
        sign_keys,
        given,
        binding,
        held,
    )
    entry = Registration(
        name=name,
        model_hash=model_hash,
        kind=kind,
        size=size,
        manifest=manifest,
        metadata=metadata,
        provenance=stored_provenance,
        signatures=claim_signatures,
        binding=binding if claim_signatures else None,
        force=bool(force),
    )
    if stored_provenance is not None or claim_signatures:
        fields["provenance"] = stored_provenance
        fields["signatures"] = [sig.to_json() for sig in claim_signatures]
        validate.check_registration(fields)  # their shape and count, and the whole block
    return entry


def index_entry(block: Block, data: bytes) -> Entry:
    """What the index of newest versions says of `block` once it is its name's newest: its
    index, its Merkle leaf hash (over `data`, its stored encoding) and its version, which is
    the number of versions the name has (they count 1, 2, ... with no gap)."""
    return Entry(block.name, block.index, merkle.leaf_hash(data), block.version)


def raw_entry(raw: Any, position: int, data: bytes) -> Entry | None:
    """`index_entry` of a stored block not yet validated (a store that derives its index, a
    copy), or None for one that could not be valid: the ledger refuses it when it reads it,
    and an index without it proves nothing about it."""
    if not isinstance(raw, dict):
        return None
    name, version = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or type(version) is not int or raw.get("index") != position:
        return None
    return Entry(name, position, merkle.leaf_hash(data), version)


def build_index(items: Iterable[tuple[Any, bytes]]) -> Index:
    """The index of newest versions of stored blocks (raw, data), in index order."""
    tree = Index()
    for position, (raw, data) in enumerate(items):
        entry = raw_entry(raw, position, data)
        if entry is not None:
            tree.put(entry.key, entry.value())
    return tree


def parse_block(data: bytes, position: int) -> Block:
    """A block from its stored canonical JSON (UTF-8: `json.loads` of bytes would also take
    UTF-16 or UTF-32, which no honest store holds)."""
    try:
        raw = loads_unique(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise LedgerInvalid(f"block {position}: not a JSON object ({exc})") from exc
    return Block.from_raw(raw, position)


def require_signers(
    block: Block, required: Sequence[PublicKey | str], origin: str | None = None
) -> None:
    """Each required key must have made a valid signature over the block's bound claim (log
    `origin`, this version). A valid signature of the old unbound kind is not enough: it
    names no log and no version, so it may be a copy of another registration's."""
    if not required:
        return
    from modelchain.claims.claim import BOUND_PAYLOAD_TYPE, describe, matches

    checked = block.signature_problems(origin)
    valid = [s for s, problem in checked if problem is None]
    for key in required:
        named = {s.keyid for s in block.signatures if matches(key, s)}
        if len(named) > 1:
            raise SignatureError(
                f"{block.label}: key ID {describe(key)} is ambiguous: it names "
                f"{len(named)} of its signers"
            )
        if any(matches(key, s) and s.bound for s in valid):
            continue
        if any(matches(key, s) for s in valid):
            bound = BOUND_PAYLOAD_TYPE
            raise SignatureError(
                f"{block.label} is signed by key {describe(key)} only with an unbound "
                "signature (made before signatures named their log and version, so it may "
                "be a replay of another registration)",
                way_out=WayOut(
                    flag=("--sign-key",),
                    library=f"; register it again, signed, to get a {bound} signature",
                    cli=f"; register it again with --sign-key to get a {bound} signature",
                ),
            )
        if not block.signatures:
            who = "it carries no registration signature"
        else:
            parts = [f"{s.keyid[:16]} ({s.key_type})" for s in valid]
            if len(valid) < len(checked):
                parts.append(f"{len(checked) - len(valid)} signature(s) that do not verify")
            who = "signed by " + ", ".join(parts)
        raise SignatureError(f"{block.label} is not signed by key {describe(key)}: {who}")


def _as_provenance(value: Provenance | Mapping[str, Any]) -> Provenance:
    if isinstance(value, Provenance):
        return value
    return Provenance.from_json(dict(value) if isinstance(value, Mapping) else value)


def _as_signature(value: RegistrationSignature | Any, position: int) -> RegistrationSignature:
    """A signature given as JSON (as stored in a block) is input: its shape is an InputError."""
    if isinstance(value, RegistrationSignature):
        return value
    try:
        return RegistrationSignature.from_raw(value, f"signatures[{position}]")
    except LedgerInvalid as exc:
        raise InputError(str(exc)) from None


def _sign_claim(
    name: str,
    model_hash: str,
    kind: str,
    size: int,
    manifest: Manifest | None,
    metadata: Mapping[str, Any] | None,
    provenance: Mapping[str, Any] | None,
    sign_keys: Sequence[PrivateKey],
    signatures: Sequence[RegistrationSignature],
    binding: tuple[str, int] | None = None,
    held: set[str] | frozenset[str] = frozenset(),
) -> tuple[RegistrationSignature, ...]:
    """Sign the bound claim (this log, this version) with each key (before the write lock:
    ECDSA is not free), and check the signatures made elsewhere against the very same claim.

    One place refuses a replay: a signature of the old unbound kind, a signature value the
    log already holds for this name, and one made for another log or version."""
    if not sign_keys and not signatures:
        return ()
    assert binding is not None
    from modelchain.claims.claim import BOUND_PAYLOAD_TYPE, claim, sign, signed_message

    origin, version = binding
    message = signed_message(
        claim(
            name=name,
            model_hash=model_hash,
            kind=kind,
            size=size,
            manifest=None if manifest is None else manifest_to_json(manifest),
            metadata=metadata,
            provenance=provenance,
            log=origin,
            version=version,
        )
    )
    for signature in signatures:
        who = f"the signature by key {signature.keyid[:16]}"
        if not signature.bound:
            raise SignatureError(
                f"refusing to register {name!r}: {who} is of the old, unbound kind (it names "
                f"no log and no version, so it could be a replay); sign the "
                f"{BOUND_PAYLOAD_TYPE} claim"
            )
        if signature.sig in held:
            raise SignatureError(
                f"refusing to register {name!r}: log {origin!r} already holds {who} "
                "(a replay of an earlier registration)"
            )
        problem = signature.problem(message)
        if problem is not None:
            raise SignatureError(
                f"refusing to register {name!r} as v{version} of log {origin!r}: {problem} "
                "(was it made for another log or version?)"
            )
    out = {s.keyid: s for s in signatures}
    for made in sign(sign_keys, message, BOUND_PAYLOAD_TYPE):
        out.setdefault(made.keyid, made)
    return tuple(out.values())


def check_binding(entry: Registration, origin: str, version: int) -> None:
    """Under the write lock: the registration being made is the one the signatures name
    (the name may have been registered again since `prepare`; then they must be redone)."""
    assert entry.binding is not None
    bound_origin, bound_version = entry.binding
    if (bound_origin, bound_version) != (origin, version):
        raise SignatureError(
            f"refusing to register {entry.name!r}: its signatures are for v{bound_version} "
            f"of log {bound_origin!r}, but it would be v{version} of log {origin!r} "
            "(registered again meanwhile? sign it again)"
        )


def signature_problem(block: Block, origin: str | None = None) -> str | None:
    """The first registration signature of `block` that does not verify, as the message
    that makes the ledger invalid (the ledger must never vouch for a claim its signer did
    not make); None when every one verifies."""
    for _signature, problem in block.signature_problems(origin):
        if problem is not None:
            return f"block {block.index} ({block.name} v{block.version}): {problem}"
    return None


def n_blocks(n: int) -> str:
    """ "1 block", "2 blocks": for messages."""
    return "1 block" if n == 1 else f"{n} blocks"


def default_name(path: str | os.PathLike[str]) -> str:
    """A model's default name: its base name (`models/iris.joblib` -> `iris.joblib`)."""
    name = Path(os.path.normpath(os.fspath(path))).name
    if not name or name in (".", ".."):
        name = Path(os.path.abspath(os.fspath(path))).name
    if not name:
        raise UsageError(
            f"cannot derive a model name from {path!r}",
            way_out=WayOut(flag=("--name",), library=": pass name=", cli=": pass --name"),
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME`, `NAME@VERSION` or `NAME@latest` -> (name, version or None). A name may
    itself hold '@': only a trailing `@<digits>` or `@latest` is a version."""
    name, sep, tail = ref.rpartition("@")
    if not sep or not name:
        return ref, None
    if tail == "latest":
        return name, None
    if tail.isascii() and tail.isdigit():
        version = int(tail)
        if version < 1:
            raise UsageError(f"{ref!r}: versions count from 1")
        return name, version
    return ref, None
