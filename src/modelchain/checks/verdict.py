"""Does a model match the registration it claims to be? The judgements `verify`, `load`, the
service's `/verify` and the explorer's API share."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelchain.checks.audit import AuditReport
from modelchain.claims.keys import PublicKey
from modelchain.core.errors import (
    InputError,
    ModelMismatch,
    ModelUnreadable,
    NotRegistered,
    UsageError,
)
from modelchain.fs.digest import ManifestDiff, PathDigest, compare_manifests, safetensors_digests
from modelchain.fs.safeio import read_once
from modelchain.log.block import Block, require_signers

__all__ = [
    "Recorded",
    "Verification",
    "diff_tensors",
    "difference",
    "judge",
    "mismatch",
    "same_model",
    "tensor_difference",
    "tensor_reason",
    "what_differs",
]


class Recorded(Protocol):
    """What a registration records about its model (a `Block` has these)."""

    @property
    def kind(self) -> str: ...
    @property
    def model_hash(self) -> str: ...


def same_model(recorded: Recorded, kind: str, sha256: str) -> bool:
    """The one test of "this is the registered model": the same kind (file or directory)
    and the same SHA-256. The digest alone is not enough: a file holding a directory's
    manifest JSON has the directory's digest."""
    return recorded.kind == kind and recorded.model_hash == sha256


def diff_tensors(
    expected: Mapping[str, str], actual: Mapping[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """(changed, added, removed) names between two `safetensors_digests` results, sorted."""
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    return changed, sorted(actual.keys() - expected.keys()), sorted(expected.keys() - actual.keys())


def tensor_difference(metadata: Any, data: bytes) -> dict[str, list[str]] | None:
    """Which tensors of a `.safetensors` file differ from those its registration recorded
    in `metadata["tensors"]`; None when it recorded none or the data does not parse."""
    recorded = metadata.get("tensors") if isinstance(metadata, Mapping) else None
    if not isinstance(recorded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()
    ):
        return None
    try:
        actual = safetensors_digests(data)
    except ModelUnreadable:
        return None
    changed, added, removed = diff_tensors(recorded, actual)
    return {"changed": changed, "added": added, "removed": removed}


@dataclass(frozen=True)
class Verification:
    """A model that matched the newest registered version of its name."""

    path: str
    name: str
    digest: PathDigest
    block: Block
    audit: AuditReport
    #: the newest registered version of the name (another than `block`'s only when
    #: `verify` was asked for a pinned version)
    newest_version: int = 0

    @property
    def is_newest(self) -> bool:
        return self.block.version >= self.newest_version

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "path": self.path,
            "name": self.name,
            "kind": self.digest.kind,
            "sha256": self.digest.sha256,
            "version": self.block.version,
            "index": self.block.index,
            "newest": self.is_newest,
            "newest_version": max(self.newest_version, self.block.version),
            **(
                {"signed_by": [s.keyid for s in self.block.signatures]}
                if self.block.signatures
                else {}
            ),
            "ledger": self.audit.as_dict(),
        }


def matches(block: Block, digest: PathDigest) -> bool:
    """`same_model` for a digested path."""
    return same_model(block, digest.kind, digest.sha256)


def judge(
    path: str | os.PathLike[str],
    name: str,
    digest: PathDigest,
    history: Sequence[Block],
    report: AuditReport,
    *,
    location: str,
    version: int | None = None,
    required: Sequence[PublicKey | str] = (),
    data: bytes | None = None,
) -> Verification:
    """Is `digest` (of `path`) the newest registered version of `name` (or, with `version`,
    that version)? `history`: every version, audited or proven, oldest first. `data`: the
    bytes `digest` was computed from, when the caller holds them (a mismatch is then
    described from them, and `path` is not read again). Raises `NotRegistered`,
    `ModelMismatch` (with `.details`) or `SignatureError`."""
    if not history:
        raise NotRegistered(f"{name!r} is not registered in {location}")
    if version is not None:
        return _judge_version(
            path, name, digest, history, report, location, version, required, data
        )
    newest = history[-1]
    if matches(newest, digest):
        require_signers(newest, required, report.origin)
        return Verification(str(path), name, digest, newest, report, newest.version)
    details: dict[str, Any] = {
        "verified": False,
        "path": str(path),
        "name": name,
        "sha256": digest.sha256,
        "expected_sha256": newest.model_hash,
        "newest_version": newest.version,
        "newest_index": newest.index,
    }
    older = [b for b in history[:-1] if matches(b, digest)]
    if older:
        match = older[-1]
        details.update(matched_version=match.version, matched_index=match.index)
        raise mismatch(
            f"{path} is {match.label}, not the newest registered version "
            f"v{newest.version} (block {newest.index})",
            details,
        )
    reason = what_differs(newest, digest, path, details, data)
    raise mismatch(f"{path} does not match {newest.label}: {reason}", details)


def _judge_version(
    path: str | os.PathLike[str],
    name: str,
    digest: PathDigest,
    history: Sequence[Block],
    report: AuditReport,
    location: str,
    version: int,
    required: Sequence[PublicKey | str],
    data: bytes | None = None,
) -> Verification:
    """`judge` against one pinned version of `name`."""
    newest = history[-1]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"--version must be a positive integer, not {version!r}")
    # by version, not by position: a proven history holds only the versions it needs
    pinned = next((b for b in history if b.version == version), None)
    if pinned is None:
        raise NotRegistered(
            f"{name!r} has no version {version} in {location} (versions 1 to {newest.version})"
        )
    if matches(pinned, digest):
        require_signers(pinned, required, report.origin)
        return Verification(str(path), name, digest, pinned, report, newest.version)
    details: dict[str, Any] = {
        "verified": False,
        "path": str(path),
        "name": name,
        "sha256": digest.sha256,
        "expected_sha256": pinned.model_hash,
        "version": version,
        "newest_version": newest.version,
        "newest_index": newest.index,
    }
    others = [b for b in history if b.version != version and matches(b, digest)]
    reason = what_differs(pinned, digest, path, details, data)
    if others:
        match = others[-1]
        details.update(matched_version=match.version, matched_index=match.index)
        reason = f"it is {match.label}"
    raise mismatch(f"{path} does not match {pinned.label}: {reason}", details)


def what_differs(
    block: Block,
    digest: PathDigest,
    path: str | os.PathLike[str],
    details: dict[str, Any],
    data: bytes | None = None,
) -> str:
    """Why `digest` is not `block`, in words: a folder's changed, added and removed files,
    a safetensors file's changed tensors (of `data` when given, else of `path` read again);
    `details` gains the same as data."""
    reason = difference(block, digest)
    if isinstance(reason, ManifestDiff):
        details.update(
            changed=list(reason.changed), added=list(reason.added), removed=list(reason.removed)
        )
        parts = [
            f"{label}: {', '.join(paths)}"
            for label, paths in (
                ("changed", reason.changed),
                ("added", reason.added),
                ("removed", reason.removed),
            )
            if paths
        ]
        return "; ".join(parts) or "the manifest differs"
    if "tensors" in block.metadata and digest.kind == "file":
        tensors = tensor_reason(block, path, data)
        if tensors is not None:
            details["tensors"] = tensors[0]
            return tensors[1]
    return reason


def difference(block: Block, digest: PathDigest) -> str | ManifestDiff:
    if block.kind != digest.kind:
        return f"registered as a {block.kind}, found a {digest.kind}"
    if block.kind == "directory" and block.manifest is not None and digest.manifest is not None:
        return compare_manifests(block.manifest, digest.manifest)
    return f"sha256 {digest.sha256}, registered {block.model_hash}"


def tensor_reason(
    block: Block, path: str | os.PathLike[str], data: bytes | None = None
) -> tuple[dict[str, list[str]], str] | None:
    """For a safetensors model registered with per-tensor digests: which tensors differ, in
    `data` (the bytes already read and hashed) or, without it, in `path` read now."""
    try:
        diff = tensor_difference(
            block.metadata, read_once(os.fspath(path)) if data is None else data
        )
    except InputError:
        return None
    if diff is None or not any(diff.values()):
        return None
    parts = [f"{kind} tensors: {', '.join(names)}" for kind, names in diff.items() if names]
    return diff, "; ".join(parts)


def mismatch(message: str, details: dict[str, Any]) -> ModelMismatch:
    exc = ModelMismatch(message)
    exc.details = details  # type: ignore[attr-defined]
    return exc
