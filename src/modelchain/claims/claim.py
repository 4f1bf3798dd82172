"""The registrant's claim about a model, and the signatures that vouch for it.

A registrant's key signs the *claim* -- name, digest, kind, size, manifest, metadata,
provenance -- not the fields a ledger (or a server) assigns (index, timestamp, hashes) --
except the two that make it one registration: the log's origin and the version it creates
(`BOUND_PAYLOAD_TYPE`), so a signature copied out of a public log can never be registered
again, here or in another log. The claim is RFC 8785 JSON wrapped in DSSE's
pre-authentication encoding under its payload type, so such a signature can never be
replayed as a signature over any other kind of message. The older `PAYLOAD_TYPE` claims (no
log, no version) still verify as what they are, but are no longer accepted for new
registrations nor by `verify --signer`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelchain.claims.keys import (
    KEY_TYPES,
    MIN_KEY_ID_HEX,
    PrivateKey,
    PublicKey,
    parse_public_key,
)
from modelchain.core.canonical import canonical_json, is_sha256_hex, utc_text
from modelchain.core.dsse import pae
from modelchain.core.errors import KeyFileError, LedgerInvalid, SignatureError, UsageError

__all__ = [
    "BOUND_PAYLOAD_TYPE",
    "PAYLOAD_TYPE",
    "RegistrationSignature",
    "claim",
    "describe",
    "matches",
    "pae",
    "payload_type_of",
    "registration_view",
    "sign",
    "signed_message",
    "stored_signatures",
]

#: the first, unbound claim: no log and no version, so it can be replayed (kept to audit old
#: blocks; refused for new registrations)
PAYLOAD_TYPE = "application/vnd.modelchain.registration.v1+json"
#: the claim bound to one registration: it names the log (origin) and the version it makes
BOUND_PAYLOAD_TYPE = "application/vnd.modelchain.registration.v2+json"
_SIGNATURE_FIELDS = {"keyid", "key_type", "public_key", "sig"}


def claim(
    *,
    name: str,
    model_hash: str,
    kind: str,
    size: int,
    manifest: Any = None,
    metadata: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    log: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The registrant's claim: every field the registrant decides, none a ledger assigns.

    With `log` (the log's origin) and `version` (the version this registration makes) it is
    the bound claim (`BOUND_PAYLOAD_TYPE`); without, the old unbound one."""
    out: dict[str, Any] = {}
    if log is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UsageError("a bound claim needs the version it registers (1 or more)")
        out.update(log=log, version=version)
    out |= {
        "name": name,
        "model_hash": model_hash,
        "kind": kind,
        "size": size,
        "metadata": dict(metadata or {}),
    }
    if manifest is not None:
        out["manifest"] = manifest
    if provenance is not None:
        out["provenance"] = dict(provenance)
    return out


def payload_type_of(claim_obj: Mapping[str, Any]) -> str:
    """A claim that names its log is the bound kind."""
    return BOUND_PAYLOAD_TYPE if "log" in claim_obj else PAYLOAD_TYPE


def signed_message(claim_obj: Mapping[str, Any]) -> bytes:
    """The bytes a registration signature covers."""
    return pae(payload_type_of(claim_obj), canonical_json(dict(claim_obj)))


@dataclass(frozen=True)
class RegistrationSignature:
    """One signer's signature over a registration claim, as stored in a block."""

    keyid: str
    key_type: str
    public_key: str
    sig: str
    #: what kind of claim it signs: `BOUND_PAYLOAD_TYPE` (stored as `payload_type`) or the
    #: old `PAYLOAD_TYPE` (stored as no field at all, as before)
    payload_type: str = PAYLOAD_TYPE
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def bound(self) -> bool:
        """Whether it signs a claim bound to one log and version (so it cannot be replayed)."""
        return self.payload_type == BOUND_PAYLOAD_TYPE

    def to_json(self) -> dict[str, str]:
        out = {
            "keyid": self.keyid,
            "key_type": self.key_type,
            "public_key": self.public_key,
            "sig": self.sig,
        }
        if self.bound:
            out["payload_type"] = self.payload_type
        return out

    @classmethod
    def make(
        cls, key: PrivateKey, message: bytes, payload_type: str = PAYLOAD_TYPE
    ) -> RegistrationSignature:
        return cls(
            key.key_id,
            key.kind,
            key.public.pem().decode("ascii"),
            base64.b64encode(key.sign(message)).decode("ascii"),
            payload_type,
        )

    @classmethod
    def from_raw(cls, raw: Any, where: str) -> RegistrationSignature:
        """Structure only (types, hex, base64); `problem` does the cryptography."""
        if not isinstance(raw, dict) or set(raw) - {"payload_type"} != _SIGNATURE_FIELDS:
            raise LedgerInvalid(
                f"{where}: a signature must be an object of exactly keyid, key_type, "
                "public_key and sig (and payload_type)"
            )
        if not all(isinstance(v, str) for v in raw.values()):
            raise LedgerInvalid(f"{where}: signature fields must be strings")
        if not is_sha256_hex(raw["keyid"]):
            raise LedgerInvalid(f"{where}: signature keyid is not a lowercase hex SHA-256")
        if raw["key_type"] not in KEY_TYPES:
            raise LedgerInvalid(f"{where}: unknown signature key_type {raw['key_type'][:20]!r}")
        payload_type = raw.get("payload_type", PAYLOAD_TYPE)
        if "payload_type" in raw and payload_type != BOUND_PAYLOAD_TYPE:
            raise LedgerInvalid(
                f"{where}: unknown signature payload_type {str(payload_type)[:60]!r} "
                f"(expected {BOUND_PAYLOAD_TYPE})"
            )
        return cls(raw["keyid"], raw["key_type"], raw["public_key"], raw["sig"], payload_type)

    def public(self) -> PublicKey:
        """The signer's key, checked against the stored key ID and type."""
        return _public_key(self.public_key, self.keyid, self.key_type)

    def problem(self, message: bytes) -> str | None:
        """None when this is a valid signature of `message` by the key it names, else why not."""
        try:
            key = self.public()
        except (KeyFileError, SignatureError) as exc:
            return str(exc)
        try:
            raw = base64.b64decode(self.sig, validate=True)
        except (binascii.Error, ValueError):
            return f"signature by key {self.keyid[:16]} is not base64"
        if not key.verify(raw, message):
            return f"signature by key {self.keyid[:16]} does not verify"
        return None


@functools.lru_cache(maxsize=512)
def _public_key(pem: str, keyid: str, key_type: str) -> PublicKey:
    """Parsing a PEM key costs more than an Ed25519 verification: a ledger signed by a few
    registrants parses each of their keys once per process."""
    if "-----BEGIN PUBLIC KEY-----" not in pem:
        raise KeyFileError(f"signature by key {keyid[:16]}: public_key is not a PEM public key")
    key = parse_public_key(pem.encode("ascii", "replace"), f"signature by key {keyid[:16]}")
    if key.key_id != keyid:
        raise SignatureError(f"signature by key {keyid[:16]}: keyid does not match public_key")
    if key.kind != key_type:
        raise SignatureError(
            f"signature by key {keyid[:16]}: key_type {key_type} does not match the key"
        )
    return key


def sign(
    keys: Sequence[PrivateKey], message: bytes, payload_type: str = PAYLOAD_TYPE
) -> tuple[RegistrationSignature, ...]:
    """Each key's signature of `message` (a claim of `payload_type`); a key given twice
    signs once."""
    seen: dict[str, RegistrationSignature] = {}
    for key in keys:
        if key.key_id not in seen:
            seen[key.key_id] = RegistrationSignature.make(key, message, payload_type)
    return tuple(seen.values())


def stored_signatures(raw: Any, where: str) -> tuple[RegistrationSignature, ...]:
    """A block's `signatures` field: a non-empty array, one signature per key."""
    if not isinstance(raw, list) or not raw:
        raise LedgerInvalid(f"{where}: field 'signatures' must be a non-empty array")
    out = tuple(RegistrationSignature.from_raw(item, where) for item in raw)
    if len({s.keyid for s in out}) != len(out):
        raise LedgerInvalid(f"{where}: the same key signed twice")
    return out


def matches(key: PublicKey | str, signature: RegistrationSignature) -> bool:
    """Whether `key` (a public key, or a key ID prefix of at least `MIN_KEY_ID_HEX` hex
    digits: shorter ones can be collided) is the key that made `signature`."""
    if isinstance(key, PublicKey):
        return key.key_id == signature.keyid
    ident = key.strip().lower()
    return len(ident) >= MIN_KEY_ID_HEX and signature.keyid.startswith(ident)


def describe(key: PublicKey | str) -> str:
    return key.key_id[:16] if isinstance(key, PublicKey) else key.strip().lower()


# -- presenting a registration --------------------------------------------------------------


def registration_view(
    block: Any, home_path: str | os.PathLike[str] | None = None, origin: str | None = None
) -> dict[str, Any]:
    """A block as `modelchain show` presents it: its fields, a manifest summary, its
    provenance, and each signature with whether it verifies (a bound one against `origin`,
    the log's) and is bound, and, when the signer's key is in the local key ring, that key's
    name."""

    names: dict[str, str] = {}
    if home_path is not None:
        from modelchain.claims.keys import KeyRing

        try:
            names = {k.public.key_id: k.name for k in KeyRing(home_path)}
        except (KeyFileError, UsageError):
            names = {}
    signatures = []
    for signature, problem in block.signature_problems(origin):
        entry: dict[str, Any] = {
            "keyid": signature.keyid,
            "key_type": signature.key_type,
            "valid": problem is None,
            "bound": signature.bound,
        }
        if problem is not None:
            entry["problem"] = problem
        if signature.keyid in names:
            entry["key_name"] = names[signature.keyid]
        if problem is None and signature.key_type == "ed25519":
            entry["verifier_key"] = signature.public().verifier_string(
                names.get(signature.keyid, signature.keyid[:16])
            )
        signatures.append(entry)
    manifest = None
    if block.manifest is not None:
        manifest = {
            "files": len(block.manifest.files),
            "size": block.manifest.size,
            "digest": block.manifest.digest,
        }
    return {
        "name": block.name,
        "version": block.version,
        "index": block.index,
        "timestamp": block.timestamp,
        "registered": utc_text(block.timestamp),
        "sha256": block.model_hash,
        "kind": block.kind,
        "size": block.size,
        "current_hash": block.current_hash,
        "metadata": dict(block.metadata),
        "manifest": manifest,
        "provenance": None if block.provenance is None else dict(block.provenance),
        "signatures": signatures,
    }
