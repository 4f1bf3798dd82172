"""Does a model match the registration it claims to be? The judgements `verify`, `load`, the
service's `/verify` and the explorer's API share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelchain.digest import safetensors_digests
from modelchain.errors import ModelUnreadable

__all__ = ["diff_tensors", "tensor_difference"]


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
