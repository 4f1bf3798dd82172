"""Does a model match the registration it claims to be? The judgements `verify`, `load`, the
service's `/verify` and the explorer's API share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from modelchain.core.errors import ModelUnreadable
from modelchain.fs.digest import safetensors_digests

__all__ = ["Recorded", "diff_tensors", "same_model", "tensor_difference"]


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
