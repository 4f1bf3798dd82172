"""A verifiable index: a compact sparse Merkle tree from each model name to its newest block.

The log (`merkle`) proves that a block is in it; it cannot prove that a block is the *newest*
version of its name, nor that a name has no block at all. The index can: it maps the SHA-256
of every name to a small value (the newest block's index and leaf hash, and how many versions
the name has), and its root is one hash that a signed checkpoint can carry. A proof shows that a
key holds a value, or that it holds nothing, against that root.

The tree is binary over the 256 bits of the key, most significant bit first, and compact: a
subtree with no key hashes to `EMPTY`, a subtree with exactly one key hashes to that key's leaf
hash (the leaf sits as high as it can), and any other subtree to the node hash of its two
halves. So a tree of n keys is about log2(n) deep, an update touches about log2(n) nodes and a
proof carries about log2(n) hashes. Leaves and nodes are domain-separated (0x00 / 0x01 prefixes,
as in RFC 9162) and a leaf commits to its whole key, so a leaf cannot pose as a node nor stand
in for another key. Everything here is pure; `Index` keeps its nodes in any mutable mapping, so a
store can hold them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass

from modelchain.core.canonical import canonical_json
from modelchain.core.errors import InvalidProof, NoteFormatError

__all__ = [
    "EMPTY",
    "EXTENSION",
    "KEY_BITS",
    "Entry",
    "Index",
    "Proof",
    "extension_line",
    "key_of",
    "leaf_hash",
    "node_hash",
    "root_from_extensions",
    "root_of",
    "verify",
]

KEY_BITS = 256
HASH_SIZE = 32
EMPTY = bytes(HASH_SIZE)
"""The hash of a subtree that holds no key."""

_LEAF = b"\x00"
_NODE = b"\x01"
#: a leaf's stored record: the key, then the SHA-256 of its value
_LEAF_RECORD = 2 * HASH_SIZE
#: the longest proof `Proof.from_bytes` reads: a depth, a bitmap, every sibling and a leaf
MAX_PROOF_BYTES = 2 + KEY_BITS // 8 + KEY_BITS * HASH_SIZE + 1 + 2 * HASH_SIZE


#: the start of the checkpoint extension line that carries the index root: the whole line is
#: this, a space, and the standard base64 of the 32-byte root (docs/ledger.md)
EXTENSION = "modelchain-index/v1"
_EXTENSION_FAMILY = "modelchain-index/"


def extension_line(root: bytes) -> str:
    """The checkpoint extension line that commits to the index whose root is `root`."""
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise ValueError("an index root is 32 bytes")
    return f"{EXTENSION} {base64.b64encode(root).decode('ascii')}"


def root_from_extensions(extensions: tuple[str, ...]) -> bytes | None:
    """The index root a checkpoint's extension lines carry, or None when they carry none (a
    checkpoint signed before the index existed). Strict, so one root has one spelling: a
    second index line, an index line of another version, or a root that is not the canonical
    base64 of 32 bytes is refused (`NoteFormatError`), never skipped."""
    found: bytes | None = None
    for line in extensions:
        if not line.startswith(_EXTENSION_FAMILY):
            continue  # another extension: not ours to judge
        head, _, text = line.partition(" ")
        if head != EXTENSION:
            raise NoteFormatError(
                "checkpoint carries an index of a kind this modelchain does not know "
                f"({head[:40]!r})"
            )
        if found is not None:
            raise NoteFormatError("checkpoint carries two index roots")
        try:
            root = base64.b64decode(text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            root = b""
        if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != text:
            raise NoteFormatError("checkpoint index root is not the base64 of 32 bytes")
        found = root
    return found


def key_of(name: str) -> bytes:
    """The key a model name is indexed under: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(name.encode("utf-8")).digest()


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """SHA-256(0x00 || key || SHA-256(value))."""
    return _leaf_from_value_hash(key, hashlib.sha256(value).digest())


def _leaf_from_value_hash(key: bytes, value_hash: bytes) -> bytes:
    return hashlib.sha256(_LEAF + key + value_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): a subtree holding two or more keys."""
    return hashlib.sha256(_NODE + left + right).digest()


def _bit(key_int: int, depth: int) -> int:
    """The key's bit that chooses the side below `depth` (0 = left, the top bit first)."""
    return (key_int >> (KEY_BITS - 1 - depth)) & 1


def _prefix(key_int: int, depth: int) -> int:
    """The key's first `depth` bits: which node at that depth lies on its path."""
    return key_int >> (KEY_BITS - depth) if depth else 0


def _check_key(key: bytes) -> int:
    if not isinstance(key, bytes) or len(key) != HASH_SIZE:
        raise ValueError("an index key is 32 bytes (use key_of(name))")
    return int.from_bytes(key, "big")


@dataclass(frozen=True)
class Entry:
    """What the index says of a name: its newest block and how many versions it has."""

    name: str
    index: int
    leaf_hash: bytes
    versions: int

    def value(self) -> bytes:
        """The bytes the index commits to (canonical JSON, so any reader can rebuild them)."""
        return canonical_json(
            {
                "index": self.index,
                "leaf_hash": self.leaf_hash.hex(),
                "name": self.name,
                "versions": self.versions,
            }
        )

    @property
    def key(self) -> bytes:
        return key_of(self.name)


def root_of(entries: Mapping[bytes, bytes]) -> bytes:
    """The root of the index holding `entries` (key -> value), built from scratch: what an
    audit compares with the incremental root."""
    leaves = sorted((_check_key(k), leaf_hash(k, v)) for k, v in entries.items())
    return _build(leaves, 0, 0, len(leaves))


def _build(leaves: list[tuple[int, bytes]], depth: int, lo: int, hi: int) -> bytes:
    """The hash of the subtree at `depth` holding `leaves[lo:hi]` (sorted, all on its path)."""
    if hi == lo:
        return EMPTY
    if hi - lo == 1:
        return leaves[lo][1]
    mid = lo
    while mid < hi and _bit(leaves[mid][0], depth) == 0:
        mid += 1
    return node_hash(_build(leaves, depth + 1, lo, mid), _build(leaves, depth + 1, mid, hi))


@dataclass(frozen=True)
class Proof:
    """Siblings from the top of the tree down to where the key's path ends, and, when it
    ends at another key's leaf, that leaf (its key and value hash): a proof of absence."""

    siblings: tuple[bytes, ...]
    other: tuple[bytes, bytes] | None = None

    def to_bytes(self) -> bytes:
        """depth (2 bytes), a bitmap of the non-empty siblings, those siblings, then 0x00, or
        0x01 and the other leaf's key and value hash. About 32 bytes per level of the tree."""
        depth = len(self.siblings)
        bitmap = bytearray((depth + 7) // 8)
        kept = []
        for i, sibling in enumerate(self.siblings):
            if sibling != EMPTY:
                bitmap[i // 8] |= 0x80 >> (i % 8)
                kept.append(sibling)
        tail = b"\x00" if self.other is None else b"\x01" + self.other[0] + self.other[1]
        return depth.to_bytes(2, "big") + bytes(bitmap) + b"".join(kept) + tail

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """The strict inverse of `to_bytes`; anything else raises `InvalidProof`."""
        if not isinstance(data, bytes) or not 3 <= len(data) <= MAX_PROOF_BYTES:
            raise InvalidProof("index proof: wrong length")
        depth = int.from_bytes(data[:2], "big")
        if depth > KEY_BITS:
            raise InvalidProof(f"index proof: depth {depth} is more than {KEY_BITS}")
        pos = 2 + (depth + 7) // 8
        bitmap = data[2:pos]
        if len(bitmap) != (depth + 7) // 8:
            raise InvalidProof("index proof: truncated")
        if depth % 8 and bitmap[-1] & (0xFF >> (depth % 8)):
            raise InvalidProof("index proof: bits set past its depth")
        siblings = []
        for i in range(depth):
            if bitmap[i // 8] & (0x80 >> (i % 8)):
                sibling = data[pos : pos + HASH_SIZE]
                if len(sibling) != HASH_SIZE or sibling == EMPTY:
                    raise InvalidProof("index proof: truncated or empty sibling marked present")
                siblings.append(sibling)
                pos += HASH_SIZE
            else:
                siblings.append(EMPTY)
        tail = data[pos:]
        if tail == b"\x00":
            return cls(tuple(siblings))
        if len(tail) == 1 + 2 * HASH_SIZE and tail[0] == 1:
            return cls(tuple(siblings), (tail[1 : 1 + HASH_SIZE], tail[1 + HASH_SIZE :]))
        raise InvalidProof("index proof: bad ending")


def verify(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> None:
    """Check that `key` holds `value` (or, with `value=None`, that it holds nothing) in the
    index whose root is `root`. Raises `InvalidProof` naming the first problem.

    Only canonical proofs are accepted: a leaf whose last sibling is empty would sit one level
    higher in a compact tree, so no honest tree gives such a proof."""
    key_int = _check_key(key)
    depth = len(proof.siblings)
    if depth > KEY_BITS:
        raise InvalidProof("index proof: deeper than the key")
    if value is not None:
        if proof.other is not None:
            raise InvalidProof("index proof: a proof of absence cannot prove a value")
        node = leaf_hash(key, value)
    elif proof.other is None:
        node = EMPTY
    else:
        other_key, other_value_hash = proof.other
        other_int = _check_key(other_key)
        if other_key == key:
            raise InvalidProof("index proof: the key is present, not absent")
        if _prefix(other_int, depth) != _prefix(key_int, depth):
            raise InvalidProof("index proof: the other leaf is not on the key's path")
        node = _leaf_from_value_hash(other_key, other_value_hash)
    if depth and proof.siblings[-1] == EMPTY:
        raise InvalidProof("index proof: not canonical (its last sibling is empty)")
    for level in range(depth - 1, -1, -1):
        sibling = proof.siblings[level]
        node = node_hash(sibling, node) if _bit(key_int, level) else node_hash(node, sibling)
    if node != root:
        raise InvalidProof("index proof does not lead to the signed index root")


class Index:
    """The index, updated in place in O(depth) node reads and writes.

    `nodes` maps `(depth, prefix)` (the node at `depth` whose path is the key's first `depth`
    bits) to its record: a 32-byte hash for a subtree of two or more keys, or 64 bytes (key,
    value hash) for a single key's leaf. Absent means empty. A store keeps this mapping; the
    writes of one `put` are what it must persist together."""

    def __init__(self, nodes: MutableMapping[tuple[int, int], bytes] | None = None) -> None:
        self.nodes: MutableMapping[tuple[int, int], bytes] = {} if nodes is None else nodes

    def root(self) -> bytes:
        return self._hash(self.nodes.get((0, 0)))

    @staticmethod
    def _hash(record: bytes | None) -> bytes:
        if record is None:
            return EMPTY
        if len(record) == _LEAF_RECORD:
            return _leaf_from_value_hash(record[:HASH_SIZE], record[HASH_SIZE:])
        return record

    def put(self, key: bytes, value: bytes) -> dict[tuple[int, int], bytes]:
        """Set `key` to `value`; returns the records written (for a store to persist)."""
        key_int = _check_key(key)
        record = key + hashlib.sha256(value).digest()
        written: dict[tuple[int, int], bytes] = {}
        depth = 0
        while True:
            here = (depth, _prefix(key_int, depth))
            found = self.nodes.get(here)
            if found is None or (len(found) == _LEAF_RECORD and found[:HASH_SIZE] == key):
                written[here] = record
                break
            if len(found) == _LEAF_RECORD:
                other_int = int.from_bytes(found[:HASH_SIZE], "big")
                split = depth
                while _bit(other_int, split) == _bit(key_int, split):
                    split += 1
                written[(split + 1, _prefix(other_int, split + 1))] = found
                written[(split + 1, _prefix(key_int, split + 1))] = record
                depth = split + 1
                break
            depth += 1
        # every node above the new leaf on the key's path now holds two or more keys
        for level in range(depth - 1, -1, -1):
            children = []
            for side in (0, 1):
                child = (level + 1, (_prefix(key_int, level) << 1) | side)
                rec = written.get(child)
                children.append(self._hash(rec if rec is not None else self.nodes.get(child)))
            written[(level, _prefix(key_int, level))] = node_hash(children[0], children[1])
        self.nodes.update(written)
        return written

    def get(self, key: bytes) -> bytes | None:
        """The value hash stored for `key`, or None."""
        key_int = _check_key(key)
        for depth in range(KEY_BITS + 1):
            found = self.nodes.get((depth, _prefix(key_int, depth)))
            if found is None:
                return None
            if len(found) == _LEAF_RECORD:
                return found[HASH_SIZE:] if found[:HASH_SIZE] == key else None
        return None  # pragma: no cover - a path cannot run past the key's bits

    def prove(self, key: bytes) -> Proof:
        """A proof that `key` holds its value, or that it holds nothing."""
        key_int = _check_key(key)
        siblings: list[bytes] = []
        for depth in range(KEY_BITS + 1):
            found = self.nodes.get((depth, _prefix(key_int, depth)))
            if found is None:
                return Proof(tuple(siblings))
            if len(found) == _LEAF_RECORD:
                if found[:HASH_SIZE] == key:
                    return Proof(tuple(siblings))
                return Proof(tuple(siblings), (found[:HASH_SIZE], found[HASH_SIZE:]))
            sibling = (depth + 1, _prefix(key_int, depth + 1) ^ 1)
            siblings.append(self._hash(self.nodes.get(sibling)))
        raise AssertionError("unreachable")  # pragma: no cover

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value hash) held, in key order."""
        for record in sorted(r for r in self.nodes.values() if len(r) == _LEAF_RECORD):
            yield record[:HASH_SIZE], record[HASH_SIZE:]
