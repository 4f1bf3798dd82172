"""A second, deliberately naive implementation of the index (`modelchain.core.index`), written
from its definition over bit strings: the tests hold the real one against it."""

from __future__ import annotations

import hashlib

EMPTY = b"\x00" * 32


def bits(key: bytes) -> str:
    return "".join(f"{byte:08b}" for byte in key)


def leaf(key: bytes, value: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + key + hashlib.sha256(value).digest()).digest()


def subtree(entries: dict[bytes, bytes], prefix: str) -> bytes:
    """No key under `prefix`: EMPTY; one: its leaf; more: the node of the two halves."""
    inside = [(k, v) for k, v in entries.items() if bits(k).startswith(prefix)]
    if not inside:
        return EMPTY
    if len(inside) == 1:
        return leaf(*inside[0])
    left = subtree(entries, prefix + "0")
    right = subtree(entries, prefix + "1")
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(entries: dict[bytes, bytes]) -> bytes:
    return subtree(entries, "")


def siblings(entries: dict[bytes, bytes], key: bytes) -> list[bytes]:
    """The siblings down the key's path until the subtree there holds at most one key."""
    path = bits(key)
    out = []
    prefix = ""
    while sum(bits(k).startswith(prefix) for k in entries) > 1:
        flip = "1" if path[len(prefix)] == "0" else "0"
        out.append(subtree(entries, prefix + flip))
        prefix += path[len(prefix)]
    return out


def nodes(entries: dict[bytes, bytes]) -> dict[tuple[int, int], bytes]:
    """Every record a store of the index holds, from the definition: at each prefix with two
    keys or more its node hash, and where a key is alone under a prefix for the first time
    its leaf record (the key, then the SHA-256 of its value)."""
    out: dict[tuple[int, int], bytes] = {}

    def walk(prefix: str, inside: list[tuple[bytes, bytes]]) -> bytes:
        here = (len(prefix), int(prefix, 2) if prefix else 0)
        if not inside:
            return EMPTY
        if len(inside) == 1:
            key, value = inside[0]
            out[here] = key + hashlib.sha256(value).digest()
            return leaf(key, value)
        left = walk(prefix + "0", [(k, v) for k, v in inside if bits(k)[len(prefix)] == "0"])
        right = walk(prefix + "1", [(k, v) for k, v in inside if bits(k)[len(prefix)] == "1"])
        out[here] = hashlib.sha256(b"\x01" + left + right).digest()
        return out[here]

    walk("", list(entries.items()))
    return out
