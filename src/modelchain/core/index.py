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
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from modelchain.core.canonical import canonical_json
from modelchain.core.errors import InvalidProof, LedgerInvalid, NoteFormatError

__all__ = [
    "EMPTY",
    "EXTENSION",
    "KEY_BITS",
    "Entry",
    "Index",
    "Proof",
    "UpdateProof",
    "extension_line",
    "key_of",
    "leaf_hash",
    "node_hash",
    "path_ids",
    "root_from_extensions",
    "root_of",
    "root_of_hashes",
    "verify",
    "verify_update",
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
    sha256 = hashlib.sha256
    keys = sorted(entries)
    _check_keys(keys)
    leaves = [sha256(_LEAF + k + sha256(entries[k]).digest()).digest() for k in keys]
    return _root_of_sorted(keys, leaves)


def root_of_hashes(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """`root_of` from (key, SHA-256 of the value) pairs, for an auditor that kept only the
    hashes. A key given twice is refused: two newest entries for one name is a bug to show."""
    held: dict[bytes, bytes] = {}
    count = 0
    for key, value_hash in pairs:
        if not isinstance(value_hash, bytes) or len(value_hash) != HASH_SIZE:
            raise ValueError("an index value hash is 32 bytes")
        held[key] = value_hash
        count += 1
    if len(held) != count:
        raise ValueError("a key is given twice")
    sha256 = hashlib.sha256
    keys = sorted(held)
    _check_keys(keys)
    return _root_of_sorted(keys, [sha256(_LEAF + k + held[k]).digest() for k in keys])


def _check_keys(keys: list[bytes]) -> None:
    if any(type(k) is not bytes or len(k) != HASH_SIZE for k in keys):
        raise ValueError("an index key is 32 bytes (use key_of(name))")


def _root_of_sorted(keys: list[bytes], leaves: list[bytes]) -> bytes:
    """The root over sorted distinct keys and their leaf hashes, in one pass and no recursion.

    Two neighbours in key order part at the depth of their common prefix, and the node there
    is the one that joins them; so a stack of left halves waiting for their right half builds
    the tree left to right. A subtree whose keys all share more bits than its parent's depth
    hangs under a chain of nodes with one empty side (`_lift`)."""
    if not keys:
        return EMPTY
    sha256 = hashlib.sha256
    ints = [int.from_bytes(k, "big") for k in keys]
    splits = [KEY_BITS - (a ^ b).bit_length() for a, b in pairwise(ints)]
    if splits and max(splits) >= KEY_BITS:
        raise ValueError("a key is given twice")
    waiting_depth: list[int] = []
    waiting_hash: list[bytes] = []
    node, top = leaves[0], -1  # top: the depth of the subtree's highest node (-1: a leaf)
    for key_int, split, leaf in zip(ints[:-1], splits, leaves[1:], strict=True):
        while waiting_depth and waiting_depth[-1] > split:
            depth = waiting_depth.pop()
            if top > depth + 1:
                node = _lift(node, key_int, top, depth)
            node = sha256(_NODE + waiting_hash.pop() + node).digest()
            top = depth
        if top > split + 1:
            node = _lift(node, key_int, top, split)
        waiting_depth.append(split)
        waiting_hash.append(node)
        node, top = leaf, -1
    key_int = ints[-1]
    while waiting_depth:
        depth = waiting_depth.pop()
        if top > depth + 1:
            node = _lift(node, key_int, top, depth)
        node = sha256(_NODE + waiting_hash.pop() + node).digest()
        top = depth
    if top > 0:
        node = _lift(node, key_int, top, -1)
    return node


def _lift(node: bytes, key_int: int, top: int, parent: int) -> bytes:
    """The hash, as the child of a node at depth `parent`, of the subtree whose highest node
    is at depth `top` on `key_int`'s path: one node with an empty side per level between."""
    for level in range(top - 1, parent, -1):
        if _bit(key_int, level):
            node = hashlib.sha256(_NODE + EMPTY + node).digest()
        else:
            node = hashlib.sha256(_NODE + node + EMPTY).digest()
    return node


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


#: how many levels of a key's path `Index` asks its `fetch` for at once. A key's path runs
#: below this only when another key shares its first 24 bits (about n / 2**24 of the time
#: in an index of n keys), so one round trip serves almost every path up to millions of keys
FETCH_LEVELS = 24

NodeId = tuple[int, int]
Fetch = Callable[[list[NodeId]], Mapping[NodeId, bytes]]


def path_ids(key: bytes, start: int, stop: int) -> list[NodeId]:
    """The ids a walk down `key`'s path may read at depths [start, stop): the node on the path
    at each depth and, below the root, its sibling. What `Index` asks its `fetch` for."""
    return _path_ids(_check_key(key), start, stop)


def _path_ids(key_int: int, start: int, stop: int) -> list[NodeId]:
    ids: list[NodeId] = []
    for depth in range(max(start, 0), min(stop, KEY_BITS + 1)):
        prefix = _prefix(key_int, depth)
        ids.append((depth, prefix))
        if depth:
            ids.append((depth, prefix ^ 1))
    return ids


class Index:
    """The index, updated in place in O(depth) node reads and writes.

    `nodes` maps `(depth, prefix)` (the node at `depth` whose path is the key's first `depth`
    bits) to its record: a 32-byte hash for a subtree of two or more keys, or 64 bytes (key,
    value hash) for a single key's leaf. Absent means empty. A store keeps this mapping; the
    writes of one `put` are what it must persist together.

    With `fetch`, `nodes` is only a cache of the store's records: before it walks a key's path
    the index asks `fetch` once for every id on that path and beside it that it does not know
    yet (`path_ids`, `FETCH_LEVELS` levels at a time, deeper only when the path goes on), and
    remembers the ids the store does not hold as empty. Writes still go to `nodes` and are
    returned for the store to persist; `forget` drops the cache between transactions."""

    def __init__(
        self,
        nodes: MutableMapping[NodeId, bytes] | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        self.nodes: MutableMapping[NodeId, bytes] = {} if nodes is None else nodes
        self._fetch = fetch
        self._empty: set[NodeId] = set()

    # -- the cache ----------------------------------------------------------------------

    def known(self, node_id: NodeId) -> bool:
        """Whether reading `node_id` needs no fetch: it is cached, or known to be empty."""
        return self._fetch is None or node_id in self.nodes or node_id in self._empty

    def forget(self) -> None:
        """Drop every cached record (another writer may have changed the store since)."""
        if self._fetch is None:
            raise ValueError("an index without fetch holds its nodes: there is no cache to drop")
        self.nodes.clear()
        self._empty.clear()

    def _load(self, ids: list[NodeId]) -> None:
        """One fetch for those of `ids` not known yet; what the store lacks is empty."""
        assert self._fetch is not None
        wanted = list(dict.fromkeys(i for i in ids if i not in self.nodes and i not in self._empty))
        if not wanted:
            return
        found = self._fetch(wanted)
        for node_id in wanted:
            record = found.get(node_id)
            if record is None:
                self._empty.add(node_id)
            elif type(record) is not bytes or len(record) not in (HASH_SIZE, _LEAF_RECORD):
                raise LedgerInvalid(f"index node {node_id[0]}/{node_id[1]:x} is not a record")
            else:
                self.nodes[node_id] = record

    def _prefetch(self, key_ints: Iterable[int]) -> None:
        """Load the paths of `key_ints`, one fetch per `FETCH_LEVELS` levels they reach."""
        if self._fetch is None:
            return
        pending = [k for k in key_ints if not self._path_known(k)]
        start = 0
        while pending and start <= KEY_BITS:
            stop = start + FETCH_LEVELS
            self._load([i for k in pending for i in _path_ids(k, start, stop)])
            # a path goes on past `stop` only through a node (32 bytes) at its last level
            if stop > KEY_BITS:
                return  # the window held the last level a path can reach
            last = stop - 1
            pending = [
                k
                for k in pending
                if len(self.nodes.get((last, _prefix(k, last)), b"")) == HASH_SIZE
            ]
            start = stop

    def _path_known(self, key_int: int) -> bool:
        """Whether every id a walk down `key_int`'s path reads is known already (the common
        case for an appender that keeps its index): then there is nothing to fetch."""
        nodes, empty = self.nodes, self._empty
        for depth in range(KEY_BITS + 1):
            prefix = key_int >> (KEY_BITS - depth)
            if depth and (depth, prefix ^ 1) not in nodes and (depth, prefix ^ 1) not in empty:
                return False
            record = nodes.get((depth, prefix))
            if record is None:
                return (depth, prefix) in empty
            if len(record) != HASH_SIZE:
                return True  # a leaf: the walk stops here
        return False

    def _read(self, node_id: NodeId) -> bytes | None:
        record = self.nodes.get(node_id)
        if record is None and self._fetch is not None and node_id not in self._empty:
            self._load([node_id])  # not prefetched: correct, one more round trip
            record = self.nodes.get(node_id)
        return record

    # -- reading and writing -------------------------------------------------------------

    def root(self) -> bytes:
        return self._hash(self._read((0, 0)))

    @staticmethod
    def _hash(record: bytes | None) -> bytes:
        if record is None:
            return EMPTY
        if len(record) == _LEAF_RECORD:
            return _leaf_from_value_hash(record[:HASH_SIZE], record[HASH_SIZE:])
        return record

    def put(self, key: bytes, value: bytes) -> dict[NodeId, bytes]:
        """Set `key` to `value`; returns the records written (for a store to persist)."""
        key_int = _check_key(key)
        self._prefetch((key_int,))
        written: dict[NodeId, bytes] = {}
        self._put_one(key_int, key + hashlib.sha256(value).digest(), 0, written)
        self.nodes.update(written)
        return written

    def _put_one(
        self, key_int: int, record: bytes, start: int, written: dict[NodeId, bytes]
    ) -> bytes:
        """Put one leaf record into the subtree at depth `start` on its key's path, writing
        into `written`; returns that subtree's new hash. A loop, not a recursion: below the
        top that a batch shares, each key's path is its own."""
        sha256 = hashlib.sha256
        nodes_get = self.nodes.get
        depth = start
        path: list[int] = []  # the key's prefix at each depth from `start` down
        while True:
            prefix = key_int >> (KEY_BITS - depth)
            path.append(prefix)
            here = (depth, prefix)
            found = nodes_get(here)
            if found is None and self._fetch is not None:
                found = self._read(here)
            if found is None or (
                len(found) == _LEAF_RECORD and found[:HASH_SIZE] == record[:HASH_SIZE]
            ):
                written[here] = record
                node = sha256(_LEAF + record).digest()
                break
            if len(found) == _LEAF_RECORD:
                # the leaf there moves down to where the two keys part; below it all is empty
                other_int = int.from_bytes(found[:HASH_SIZE], "big")
                split = KEY_BITS - (other_int ^ key_int).bit_length()
                if split < depth:
                    raise LedgerInvalid("index leaf off the path it is stored on")
                shift = KEY_BITS - 1 - split
                written[(split + 1, other_int >> shift)] = found
                written[(split + 1, key_int >> shift)] = record
                mine = sha256(_LEAF + record).digest()
                theirs = sha256(_LEAF + found).digest()
                if (key_int >> shift) & 1:
                    node = sha256(_NODE + theirs + mine).digest()
                else:
                    node = sha256(_NODE + mine + theirs).digest()
                written[(split, key_int >> (shift + 1))] = node
                for level in range(split - 1, depth - 1, -1):
                    if (key_int >> (KEY_BITS - 1 - level)) & 1:
                        node = sha256(_NODE + EMPTY + node).digest()
                    else:
                        node = sha256(_NODE + node + EMPTY).digest()
                    written[(level, key_int >> (KEY_BITS - level))] = node
                break
            if depth >= KEY_BITS:
                raise LedgerInvalid("index node below the last bit of a key")
            depth += 1
        # every node above on the key's path now holds two or more keys
        below = path[-1]
        for level in range(depth - 1, start - 1, -1):
            sibling_id = (level + 1, below ^ 1)
            sibling = nodes_get(sibling_id)
            if sibling is None and self._fetch is not None:
                sibling = self._read(sibling_id)
            if sibling is None:
                sibling = EMPTY
            elif len(sibling) == _LEAF_RECORD:
                sibling = sha256(_LEAF + sibling).digest()
            if below & 1:
                node = sha256(_NODE + sibling + node).digest()
            else:
                node = sha256(_NODE + node + sibling).digest()
            below = path[level - start]
            written[(level, below)] = node
        return node

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> dict[NodeId, bytes]:
        """`put` of every (key, value) in order (a key given twice: the last value wins), with
        each node the batch touches hashed once: the top of the tree, which every key of an
        append shares, is written once instead of once per key. Returns the records written,
        the same as the union of what the `put`s would have returned."""
        latest: dict[int, bytes] = {}
        for key, value in items:
            latest[_check_key(key)] = key + hashlib.sha256(value).digest()
        if not latest:
            return {}
        keys = sorted(latest)
        records = [latest[k] for k in keys]
        self._prefetch(keys)
        written: dict[NodeId, bytes] = {}
        self._merge(0, 0, keys, records, 0, len(keys), written)
        self.nodes.update(written)
        return written

    def _merge(
        self,
        depth: int,
        prefix: int,
        keys: list[int],
        records: list[bytes],
        lo: int,
        hi: int,
        written: dict[NodeId, bytes],
    ) -> bytes:
        """The new hash of the subtree at (depth, prefix) with `records[lo:hi]` put into it."""
        if hi - lo == 1:
            return self._put_one(keys[lo], records[lo], depth, written)
        found = self._read((depth, prefix))
        if found is not None and len(found) == HASH_SIZE:
            if depth >= KEY_BITS:
                raise LedgerInvalid("index node below the last bit of a key")
            middle = bisect_left(keys, ((prefix << 1) | 1) << (KEY_BITS - 1 - depth), lo, hi)
            halves = []
            for side, start, stop in ((0, lo, middle), (1, middle, hi)):
                child = (depth + 1, (prefix << 1) | side)
                if stop > start:
                    halves.append(self._merge(*child, keys, records, start, stop, written))
                else:
                    halves.append(self._hash(self._read(child)))
            node = node_hash(halves[0], halves[1])
            written[(depth, prefix)] = node
            return node
        if found is not None:
            # a lone leaf: it joins the batch, unless the batch replaces it
            other = int.from_bytes(found[:HASH_SIZE], "big")
            at = bisect_left(keys, other, lo, hi)
            if at == hi or keys[at] != other:
                keys = [*keys[lo:at], other, *keys[at:hi]]
                records = [*records[lo:at], found, *records[at:hi]]
                lo, hi = 0, len(keys)
        return _fresh(depth, prefix, keys, records, lo, hi, written)

    def get(self, key: bytes) -> bytes | None:
        """The value hash stored for `key`, or None."""
        key_int = _check_key(key)
        self._prefetch((key_int,))
        for depth in range(KEY_BITS + 1):
            found = self._read((depth, _prefix(key_int, depth)))
            if found is None:
                return None
            if len(found) == _LEAF_RECORD:
                return found[HASH_SIZE:] if found[:HASH_SIZE] == key else None
        return None  # pragma: no cover - a path cannot run past the key's bits

    def prove(self, key: bytes) -> Proof:
        """A proof that `key` holds its value, or that it holds nothing."""
        key_int = _check_key(key)
        self._prefetch((key_int,))
        siblings: list[bytes] = []
        for depth in range(KEY_BITS + 1):
            found = self._read((depth, _prefix(key_int, depth)))
            if found is None:
                return Proof(tuple(siblings))
            if len(found) == _LEAF_RECORD:
                if found[:HASH_SIZE] == key:
                    return Proof(tuple(siblings))
                return Proof(tuple(siblings), (found[:HASH_SIZE], found[HASH_SIZE:]))
            sibling = (depth + 1, _prefix(key_int, depth + 1) ^ 1)
            siblings.append(self._hash(self._read(sibling)))
        raise AssertionError("unreachable")  # pragma: no cover

    def prove_update(self, keys: Iterable[bytes]) -> UpdateProof:
        """A proof, from this (the newer) tree, that it is an older tree with `keys` changed
        or inserted: the union of their paths, each subtree beside it that holds none of them
        as its hash, and as a whole leaf where taking the keys out could lift it (see
        `verify_update`). Every key must be in the index."""
        key_ints = sorted({_check_key(k) for k in keys})
        self._prefetch(key_ints)
        steps: list[tuple[int, bytes]] = []
        if key_ints:
            self._prove_walk(0, 0, key_ints, 0, len(key_ints), steps)
        else:
            steps.append(_off_step(self._read((0, 0)), whole_leaf=False))
        return UpdateProof(tuple(steps))

    def _prove_walk(
        self,
        depth: int,
        prefix: int,
        keys: list[int],
        lo: int,
        hi: int,
        steps: list[tuple[int, bytes]],
    ) -> bool:
        """Append the steps of the subtree at (depth, prefix) holding `keys[lo:hi]`; returns
        whether it holds anything besides them (then nothing beside it can be lifted)."""
        found = self._read((depth, prefix))
        if found is None or len(found) == _LEAF_RECORD:
            if found is not None and hi - lo == 1 and found[:HASH_SIZE] == _key_bytes(keys[lo]):
                steps.append((_STEP_HERE, b""))
                return False
            raise ValueError("an update proof is for keys the index holds: one is not in it")
        middle = bisect_left(keys, ((prefix << 1) | 1) << (KEY_BITS - 1 - depth), lo, hi)
        if lo < middle < hi:
            left = self._prove_walk(depth + 1, prefix << 1, keys, lo, middle, steps)
            right = self._prove_walk(depth + 1, (prefix << 1) | 1, keys, middle, hi, steps)
            return left or right
        side = 0 if middle == hi else 1
        at = len(steps)
        steps.append((_STEP_EMPTY, b""))  # the subtree beside, filled in below
        inside = self._prove_walk(depth + 1, (prefix << 1) | side, keys, lo, hi, steps)
        beside = self._read((depth + 1, (prefix << 1) | (side ^ 1)))
        steps[at] = _off_step(beside, whole_leaf=not inside)
        return inside or beside is not None

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value hash) held, in key order."""
        if self._fetch is not None:
            raise ValueError("an index with fetch holds only a cache: iterate the store")
        for record in sorted(r for r in self.nodes.values() if len(r) == _LEAF_RECORD):
            yield record[:HASH_SIZE], record[HASH_SIZE:]


def _key_bytes(key_int: int) -> bytes:
    return key_int.to_bytes(HASH_SIZE, "big")


def _fresh(
    depth: int,
    prefix: int,
    keys: list[int],
    records: list[bytes],
    lo: int,
    hi: int,
    written: dict[NodeId, bytes],
) -> bytes:
    """Write the subtree at (depth, prefix) that holds just `records[lo:hi]` (sorted, at least
    one); returns its hash. Nothing is read: the subtree was empty or a leaf among them."""
    if hi - lo == 1:
        written[(depth, prefix)] = records[lo]
        return hashlib.sha256(_LEAF + records[lo]).digest()
    middle = bisect_left(keys, ((prefix << 1) | 1) << (KEY_BITS - 1 - depth), lo, hi)
    left = (
        _fresh(depth + 1, prefix << 1, keys, records, lo, middle, written) if middle > lo else EMPTY
    )
    right = (
        _fresh(depth + 1, (prefix << 1) | 1, keys, records, middle, hi, written)
        if hi > middle
        else EMPTY
    )
    node = node_hash(left, right)
    written[(depth, prefix)] = node
    return node


# -- proofs of an update ----------------------------------------------------------------------

#: the steps of an update proof (`UpdateProof.to_bytes` gives their bytes)
_STEP_EMPTY = 0  # a subtree beside the paths that is empty
_STEP_NODE = 1  # one that holds two or more keys, or a leaf that cannot move: its hash
_STEP_LEAF = 2  # a lone leaf that taking the changed keys out could lift: key, value hash
_STEP_HERE = 3  # the changed key's own leaf sits here
_STEP_PAYLOAD = {_STEP_EMPTY: 0, _STEP_NODE: HASH_SIZE, _STEP_LEAF: _LEAF_RECORD, _STEP_HERE: 0}
#: the largest update proof `UpdateProof.from_bytes` reads (a server sends them): ample for
#: tens of thousands of changed keys; more changes are proved in several proofs, each from
#: the root the one before it proved
MAX_UPDATE_PROOF_BYTES = 1 << 25


def _off_step(record: bytes | None, *, whole_leaf: bool) -> tuple[int, bytes]:
    if record is None:
        return (_STEP_EMPTY, b"")
    if len(record) == _LEAF_RECORD:
        if whole_leaf:
            return (_STEP_LEAF, record)
        return (_STEP_NODE, hashlib.sha256(_LEAF + record).digest())
    return (_STEP_NODE, record)


@dataclass(frozen=True)
class UpdateProof:
    """The part of a newer tree an auditor needs to check that it is an older one with some
    keys changed or inserted: `steps`, each (kind, payload), in the order `verify_update`
    walks the changed keys' paths."""

    steps: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        """The number of steps (4 bytes), then each step: its kind (1 byte) and its payload
        (none for empty and here, 32 bytes for a hash, 64 for a leaf's key and value hash)."""
        out = [len(self.steps).to_bytes(4, "big")]
        for kind, payload in self.steps:
            out.append(bytes((kind,)))
            out.append(payload)
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> UpdateProof:
        """The strict inverse of `to_bytes`; anything else raises `InvalidProof`."""
        if not isinstance(data, bytes) or not 4 <= len(data) <= MAX_UPDATE_PROOF_BYTES:
            raise InvalidProof("update proof: wrong length")
        count = int.from_bytes(data[:4], "big")
        if count > len(data) - 4:
            raise InvalidProof("update proof: more steps than bytes")
        steps = []
        pos = 4
        for _ in range(count):
            if pos >= len(data):
                raise InvalidProof("update proof: truncated")
            kind = data[pos]
            size = _STEP_PAYLOAD.get(kind)
            if size is None:
                raise InvalidProof(f"update proof: unknown step kind {kind}")
            payload = data[pos + 1 : pos + 1 + size]
            if len(payload) != size:
                raise InvalidProof("update proof: truncated")
            if kind == _STEP_NODE and payload == EMPTY:
                raise InvalidProof("update proof: an empty subtree given as a node")
            steps.append((kind, payload))
            pos += 1 + size
        if pos != len(data):
            raise InvalidProof("update proof: bytes after its last step")
        return cls(tuple(steps))


# a subtree as the auditor sees it, in the older or the newer tree: (kind, hash)
_EMPTY_KIND, _LEAF_KIND, _NODE_KIND = 0, 1, 2
_Seen = tuple[int, bytes]


def verify_update(
    old_root: bytes,
    new_root: bytes,
    changes: Mapping[bytes, tuple[bytes | None, bytes]],
    proof: UpdateProof,
) -> None:
    """Check that the index whose root is `new_root` is the one whose root is `old_root` with
    exactly `changes` made: key -> (its old value, or None where it was inserted; its new
    value). Raises `InvalidProof` naming the first problem.

    The proof is walked once along the changed keys' paths: with the new values it must give
    the new root (every node on the way holding two keys or more, as in a compact tree), and
    with the changes undone the old root. Undoing an insertion can leave a lone leaf beside
    the path, which then sits higher in the older tree: that is why such a leaf is given
    whole (its key and value hash) wherever only changed keys lie beside it, and only there.
    A key changed but missing from `changes`, a wrong old or new value, a key in `changes`
    that the proof does not cover, or a leaf posing as a node where that matters, all fail."""
    for root in (old_root, new_root):
        if not isinstance(root, bytes) or len(root) != HASH_SIZE:
            raise ValueError("an index root is 32 bytes")
    rows = []
    for key, (old, new) in changes.items():
        if not isinstance(new, bytes) or not (old is None or isinstance(old, bytes)):
            raise ValueError("a change is (old value or None, new value), in bytes")
        rows.append((_check_key(key), key, old, new))
    rows.sort()
    walk = _UpdateWalk(proof.steps, rows)
    if rows:
        new_seen, old_seen, _ = walk.subtree(0, 0, 0, len(rows))
    else:
        new_seen, whole = walk.beside(0, 0)
        if whole:
            raise InvalidProof("update proof: a leaf given whole where its hash would do")
        old_seen = new_seen
    if walk.pos != len(proof.steps):
        raise InvalidProof("update proof: steps left over past the changed keys' paths")
    if new_seen[1] != new_root:
        raise InvalidProof("update proof does not lead to the new index root")
    if old_seen[1] != old_root:
        raise InvalidProof("update proof: the changes undone do not lead to the old index root")


class _UpdateWalk:
    """`verify_update`'s walk: the proof's steps consumed in order."""

    def __init__(
        self,
        steps: tuple[tuple[int, bytes], ...],
        rows: list[tuple[int, bytes, bytes | None, bytes]],
    ) -> None:
        self.steps = steps
        self.rows = rows
        self.keys = [row[0] for row in rows]
        self.pos = 0

    def _next(self) -> tuple[int, bytes]:
        if self.pos >= len(self.steps):
            raise InvalidProof("update proof: ends before the changed keys' paths do")
        step = self.steps[self.pos]
        self.pos += 1
        if (
            not isinstance(step, tuple)
            or len(step) != 2
            or not isinstance(step[1], bytes)
            or _STEP_PAYLOAD.get(step[0]) != len(step[1])
        ):
            raise InvalidProof("update proof: a malformed step")
        return step

    def beside(self, depth: int, prefix: int) -> tuple[_Seen, bool]:
        """The subtree at (depth, prefix) that holds no changed key (the same in both trees),
        and whether it was given as a whole leaf."""
        kind, payload = self._next()
        if kind == _STEP_EMPTY:
            return (_EMPTY_KIND, EMPTY), False
        if kind == _STEP_NODE:
            if payload == EMPTY:
                raise InvalidProof("update proof: an empty subtree given as a node")
            return (_NODE_KIND, payload), False
        if kind == _STEP_LEAF:
            if _prefix(int.from_bytes(payload[:HASH_SIZE], "big"), depth) != prefix:
                raise InvalidProof("update proof: a leaf beside the path is not under its node")
            return (_LEAF_KIND, hashlib.sha256(_LEAF + payload).digest()), True
        raise InvalidProof("update proof: a changed key's leaf where no changed key is")

    def subtree(self, depth: int, prefix: int, lo: int, hi: int) -> tuple[_Seen, _Seen, bool]:
        """The subtree at (depth, prefix) holding the changed keys `rows[lo:hi]`: as it is in
        the new tree, as it was in the old one, and whether it holds other keys too."""
        if hi - lo == 1 and self.pos < len(self.steps) and self.steps[self.pos][0] == _STEP_HERE:
            self._next()
            _, key, old, new = self.rows[lo]
            old_seen = (_EMPTY_KIND, EMPTY) if old is None else (_LEAF_KIND, leaf_hash(key, old))
            return (_LEAF_KIND, leaf_hash(key, new)), old_seen, False
        if depth >= KEY_BITS:
            raise InvalidProof("update proof: a path runs past the last bit of its key")
        middle = bisect_left(self.keys, ((prefix << 1) | 1) << (KEY_BITS - 1 - depth), lo, hi)
        if lo < middle < hi:
            left = self.subtree(depth + 1, prefix << 1, lo, middle)
            right = self.subtree(depth + 1, (prefix << 1) | 1, middle, hi)
            return (
                _join_new(left[0], right[0]),
                _join_old(left[1], right[1]),
                left[2] or right[2],
            )
        side = 0 if middle == hi else 1
        off, whole = self.beside(depth + 1, (prefix << 1) | (side ^ 1))
        new, old, inside = self.subtree(depth + 1, (prefix << 1) | side, lo, hi)
        if whole and inside:
            raise InvalidProof("update proof: a leaf given whole where its hash would do")
        pair_new = (off, new) if side else (new, off)
        pair_old = (off, old) if side else (old, off)
        return (
            _join_new(*pair_new),
            _join_old(*pair_old),
            inside or off[0] != _EMPTY_KIND,
        )


def _join_new(left: _Seen, right: _Seen) -> _Seen:
    """A node of the new tree: it must hold two keys or more, as every node of a compact tree."""
    kinds = (left[0], right[0])
    if _EMPTY_KIND in kinds and _NODE_KIND not in kinds:
        raise InvalidProof("update proof: not canonical (a node with fewer than two keys)")
    return (_NODE_KIND, node_hash(left[1], right[1]))


def _join_old(left: _Seen, right: _Seen) -> _Seen:
    """A node of the old tree, where undone insertions may have left it empty or one leaf."""
    if left[0] == _EMPTY_KIND and right[0] != _NODE_KIND:
        return right
    if right[0] == _EMPTY_KIND and left[0] != _NODE_KIND:
        return left
    return (_NODE_KIND, node_hash(left[1], right[1]))
