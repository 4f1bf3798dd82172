"""RFC 9162 (Certificate Transparency v2) Merkle tree: tree hash, proofs, and the append frontier.

Everything here is pure: hashes in, hashes out. "leaves" always means leaf *hashes*
(already passed through `leaf_hash`). The functions follow RFC 9162 section 2.1 closely so each
step can be checked against the RFC text:

- MTH (2.1.1)           -> `root`, `subtree_hash`
- PATH (2.1.3.1)        -> `inclusion_proof`
- PROOF/SUBPROOF (2.1.4.1) -> `consistency_proof`
- verification (2.1.3.2, 2.1.4.2) -> `verify_inclusion`, `verify_consistency`

Proof generation reads the tree only through `Subtrees.node`, the hash of a complete, aligned
subtree, so a store that keeps those nodes can serve a proof in O(log n) reads (O(log^2 n) at
worst) without loading the leaves. `inclusion_nodes` and `consistency_nodes` name those nodes
up front, so a store can read them all in one batch (`BatchSubtrees.nodes`) and
`proof_from_nodes` can combine them. `Frontier` is what the writer keeps to append in O(log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from modelchain.core.errors import InvalidProof, UsageError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "BatchSubtrees",
    "Frontier",
    "ListSubtrees",
    "NodeID",
    "ProofNodes",
    "Subtrees",
    "consistency_nodes",
    "consistency_proof",
    "inclusion_nodes",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "proof_from_nodes",
    "read_nodes",
    "root",
    "subtree_hash",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH({}) = HASH(): the root of the empty tree (RFC 9162 2.1.1)."""

NodeID = tuple[int, int]
"""(level, index): the complete subtree over leaves [index << level, (index + 1) << level)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the prefix keeps a leaf from ever posing as an inner node."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node from its two children."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------------------------
# Reading a tree: complete subtrees
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Subtrees(Protocol):
    """A tree of `size` leaves that can give the hash of any complete, aligned subtree.

    `node(level, index)` is the root hash of the perfect subtree over leaves
    `[index << level, (index + 1) << level)`; level 0 is the leaf hash itself. These are the
    only nodes that never change once written, which is why a store can keep them.
    """

    @property
    def size(self) -> int: ...

    def node(self, level: int, index: int) -> bytes: ...


@runtime_checkable
class BatchSubtrees(Subtrees, Protocol):
    """A `Subtrees` that reads many nodes at once (a store: one query for a whole proof)."""

    def nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """The hashes of the complete subtrees `ids`, in the same order."""
        ...


class ListSubtrees:
    """`Subtrees` over an in-memory list of leaf hashes (node hashes computed on demand, cached).

    It lets the proof code take a single path whether the tree lives in memory or in a store.
    """

    __slots__ = ("_cache", "_leaves")

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves: list[bytes] = list(leaves)
        self._cache: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return len(self._leaves)

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree at (level, index); O(2**level) the first time."""
        if level < 0 or index < 0 or (index + 1) << level > len(self._leaves):
            raise UsageError(
                f"no complete subtree at level {level}, index {index} "
                f"in a tree of size {len(self._leaves)}"
            )
        if level == 0:
            return self._leaves[index]
        key = (level, index)
        cached = self._cache.get(key)
        if cached is None:
            cached = node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))
            self._cache[key] = cached
        return cached


def _as_subtrees(leaves: Sequence[bytes] | Subtrees) -> Subtrees:
    """Accept either form the API promises; a plain sequence is wrapped, a store is used as is."""
    if isinstance(leaves, Sequence):
        return ListSubtrees(leaves)
    return leaves


def _split(n: int) -> int:
    """RFC 9162's k: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _aligned_pieces(start: int, end: int) -> Iterator[tuple[int, int]]:
    """(level, index) of the complete subtrees that MTH's recursion makes of [start, end).

    MTH splits n leaves into a complete left part of k = 2**floor(log2(n - 1)) leaves and
    recurses on the rest, so the pieces are the binary digits of n, largest first. Each is
    aligned as long as `start` is a multiple of the largest one, which holds for every range
    the RFC's recursions (MTH, PATH, SUBPROOF) ever visit.
    """
    n = end - start
    if start < 0 or n <= 0:
        raise UsageError(f"empty or negative leaf range [{start}, {end})")
    if start % (1 << (n.bit_length() - 1)) != 0:
        raise UsageError(f"leaf range [{start}, {end}) is not one RFC 9162 ever hashes")
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            yield level, start >> level
            start += 1 << level


def subtree_nodes(start: int, end: int) -> list[NodeID]:
    """The complete subtrees whose hashes, folded right to left, give MTH(D[start:end])."""
    return list(_aligned_pieces(start, end))


def _fold(pieces: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete pieces (largest first), combined right to left,
    because MTH(D[n]) = HASH(left || MTH(rest)) keeps the unbalanced part on the right edge."""
    result = pieces[-1]
    for piece in reversed(pieces[:-1]):
        result = node_hash(piece, result)
    return result


def read_nodes(tree: Subtrees, ids: Sequence[NodeID]) -> list[bytes]:
    """The hashes of `ids`, in order: one batch read when the tree offers one, so a store
    answers a whole proof in one round trip."""
    if not ids:
        return []
    if isinstance(tree, BatchSubtrees):
        hashes = list(tree.nodes(ids))
        if len(hashes) != len(ids):
            raise UsageError(f"asked for {len(ids)} Merkle nodes, got {len(hashes)}")
        return hashes
    return [tree.node(level, index) for level, index in ids]


def subtree_hash(tree: Subtrees, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from the popcount(end - start) nodes of `subtree_nodes`."""
    if end > tree.size:
        raise UsageError(f"leaf range [{start}, {end}) is beyond tree size {tree.size}")
    return _fold(read_nodes(tree, subtree_nodes(start, end)))


def root(leaves: Sequence[bytes] | Subtrees, size: int | None = None) -> bytes:
    """MTH of the first `size` leaves (default: all of them); EMPTY_ROOT for an empty tree.

    With a store-backed `Subtrees` this gives the root of any earlier size without the leaves.
    """
    tree = _as_subtrees(leaves)
    n = tree.size if size is None else size
    if not 0 <= n <= tree.size:
        raise UsageError(f"size {n} is outside the tree's 0..{tree.size}")
    if n == 0:
        return EMPTY_ROOT
    return subtree_hash(tree, 0, n)


# --------------------------------------------------------------------------------------------
# Which nodes a proof needs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofNodes:
    """The stored nodes a proof is made of, and how they combine into its hashes.

    `ids` are the complete subtrees to read, in order. Proof hash i is the fold (right to
    left) of the hashes of `ids[spans[i][0]:spans[i][1]]`: a span of one is a stored node as
    it is, a longer span a partial subtree on the tree's right edge, which no store keeps
    because it changes with every append. The spans cover `ids` in order, without gaps.
    """

    ids: tuple[NodeID, ...]
    spans: tuple[tuple[int, int], ...]


def _plan(ranges: Sequence[tuple[int, int]]) -> ProofNodes:
    """ProofNodes for proof hashes that are MTH(D[start:end]) of each range, in order."""
    ids: list[NodeID] = []
    spans: list[tuple[int, int]] = []
    for start, end in ranges:
        first = len(ids)
        ids.extend(_aligned_pieces(start, end))
        spans.append((first, len(ids)))
    return ProofNodes(tuple(ids), tuple(spans))


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """What PATH(index, D[size]) (RFC 9162 2.1.3.1) reads: the sibling of each split from
    the leaf up to the root.

    Walks the RFC's recursion from the root down, noting the sibling's leaf range at each
    split, and reverses at the end because the RFC lists the deepest sibling first.
    """
    if not 0 <= index < size:
        raise UsageError(f"index {index} is beyond tree size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return _plan(ranges)


def consistency_nodes(old_size: int, new_size: int) -> ProofNodes:
    """What PROOF(old_size, D[new_size]) = SUBPROOF(old_size, D[new_size], true) (RFC 9162
    2.1.4.1) reads; nothing when old_size is 0 or new_size (the proof is empty).

    Like `inclusion_nodes`, it walks down and reverses at the end.
    """
    if not 0 <= old_size <= new_size:
        raise UsageError(f"old size {old_size} is outside 0..{new_size} (the new tree size)")
    if old_size in (0, new_size):
        return ProofNodes((), ())
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, new_size, old_size
    whole_old_tree = True  # SUBPROOF's b: the verifier already knows this subtree's hash
    while m != end - start:
        k = _split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((start, end))
    ranges.reverse()
    return _plan(ranges)


def proof_from_nodes(nodes: ProofNodes, hashes: Sequence[bytes]) -> list[bytes]:
    """The proof from the hashes of `nodes.ids` (read in that order)."""
    if len(hashes) != len(nodes.ids):
        raise UsageError(f"a proof needs {len(nodes.ids)} node hashes, got {len(hashes)}")
    return [_fold(hashes[first:last]) for first, last in nodes.spans]


# --------------------------------------------------------------------------------------------
# Building proofs
# --------------------------------------------------------------------------------------------


def inclusion_proof(index: int, leaves: Sequence[bytes] | Subtrees) -> list[bytes]:
    """PATH(index, D[n]) (RFC 9162 2.1.3.1): the sibling hashes from the leaf up to the root,
    from one batch of node reads (`inclusion_nodes`)."""
    tree = _as_subtrees(leaves)
    plan = inclusion_nodes(index, tree.size)
    return proof_from_nodes(plan, read_nodes(tree, plan.ids))


def consistency_proof(old_size: int, leaves: Sequence[bytes] | Subtrees) -> list[bytes]:
    """PROOF(old_size, D[n]) (RFC 9162 2.1.4.1), from one batch of node reads
    (`consistency_nodes`). Empty when old_size is 0 or n: the empty tree is a prefix of every
    tree, and a tree is consistent with itself."""
    tree = _as_subtrees(leaves)
    plan = consistency_nodes(old_size, tree.size)
    return proof_from_nodes(plan, read_nodes(tree, plan.ids))


# --------------------------------------------------------------------------------------------
# Verifying proofs
# --------------------------------------------------------------------------------------------


def _check_hash(what: str, value: bytes) -> None:
    """Reject anything but a 32-byte hash before it reaches the arithmetic."""
    if not isinstance(value, bytes | bytearray):
        raise InvalidProof(f"{what} is not bytes")
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} has {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes], expected: int) -> None:
    """The RFC algorithms assume the right number of well-formed hashes; say so if not."""
    if len(proof) != expected:
        raise InvalidProof(f"proof has {len(proof)} hashes, expected {expected}")
    for i, h in enumerate(proof):
        _check_hash(f"proof hash {i}", h)


def _shift_to_odd(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift fn and sn equally until LSB(fn) is set or fn is 0 (the RFC's border skip)."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def _path_steps(fn: int, sn: int) -> int:
    """How many proof hashes the RFC 9162 verification loop consumes from (fn, sn) until sn = 0.

    Running the loop without hashing gives the exact proof length, so a proof of the wrong
    length is rejected up front with a clear message.
    """
    steps = 0
    while sn:
        if fn & 1 or fn == sn:
            fn, sn = _shift_to_odd(fn, sn)
        fn >>= 1
        sn >>= 1
        steps += 1
    return steps


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    RFC 9162 2.1.3.2; raises `InvalidProof` for any bad input rather than returning False, so
    a caller cannot forget to look at the result.
    """
    proof = list(proof)
    if size <= 0:
        raise InvalidProof(f"tree size {size} has no leaves to prove")
    if not 0 <= index < size:  # step 1
        raise InvalidProof(f"index {index} is beyond tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof(proof, _path_steps(index, size - 1))

    fn, sn = index, size - 1  # step 2
    r = bytes(leaf_hash)  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a (unreachable once the length is checked; kept as in the RFC)
            raise InvalidProof("proof is longer than the path to the root")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    if sn != 0:  # step 5
        raise InvalidProof("proof is shorter than the path to the root")
    if r != root:
        raise InvalidProof("calculated root does not match the given root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    RFC 9162 2.1.4.2 for 0 < old_size < new_size. The edge cases the RFC leaves out:
    equal sizes need an empty proof and equal roots; old_size 0 needs an empty proof and
    old_root == EMPTY_ROOT, since the empty tree is a prefix of every tree (a size-0 tree
    claiming any other root is bogus). Raises `InvalidProof`.
    """
    proof = list(proof)
    if old_size < 0 or new_size < 0:
        raise InvalidProof(f"tree sizes must not be negative (got {old_size}, {new_size})")
    if old_size > new_size:
        raise InvalidProof(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise InvalidProof(f"proof has {len(proof)} hashes, expected 0 for equal sizes")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise InvalidProof("old root is not the empty tree's root")
        if old_root != new_root:
            raise InvalidProof("roots differ although the sizes are equal")
        return
    if old_size == 0:
        if proof:
            raise InvalidProof(f"proof has {len(proof)} hashes, expected 0 from an empty tree")
        _check_hash("old root", old_root)
        _check_hash("new root", new_root)
        if old_root != EMPTY_ROOT:
            raise InvalidProof("old root is not the empty tree's root")
        return

    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    if not proof:  # step 1
        raise InvalidProof("proof is empty")
    old_is_perfect = old_size & (old_size - 1) == 0
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    # The seed (first path entry) plus one hash per loop step; the seed is old_root itself,
    # not sent, when the old tree is a perfect subtree.
    expected = _path_steps(fn, sn) + (0 if old_is_perfect else 1)
    _check_proof(proof, expected)

    path = [bytes(old_root), *proof] if old_is_perfect else proof  # step 2
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a (unreachable once the length is checked; kept as in the RFC)
            raise InvalidProof("proof is longer than the path to the root")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    if sn != 0:  # step 7
        raise InvalidProof("proof is shorter than the path to the root")
    if fr != old_root:
        raise InvalidProof("calculated old root does not match the given old root")
    if sr != new_root:
        raise InvalidProof("calculated new root does not match the given new root")


# --------------------------------------------------------------------------------------------
# Appending: the frontier
# --------------------------------------------------------------------------------------------


class Frontier:
    """The right edge of a tree: the roots ("peaks") of its complete subtrees, largest first.

    A tree of n leaves has one peak per set bit of n, so this is O(log n) hashes, enough to
    append a leaf and to compute the root without the leaves.
    """

    __slots__ = ("_peaks", "_size")

    def __init__(self, size: int, peaks: Sequence[bytes]) -> None:
        if size < 0:
            raise UsageError(f"tree size {size} is negative")
        if len(peaks) != size.bit_count():
            raise UsageError(
                f"a tree of size {size} has {size.bit_count()} peaks, got {len(peaks)}"
            )
        for i, peak in enumerate(peaks):
            if len(peak) != HASH_SIZE:
                raise UsageError(f"peak {i} has {len(peak)} bytes, expected {HASH_SIZE}")
        self._size = size
        self._peaks = [bytes(p) for p in peaks]

    @classmethod
    def empty(cls) -> Frontier:
        """The frontier of the empty tree."""
        return cls(0, [])

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> list[bytes]:
        """Peak hashes left to right (largest first); a copy, so callers cannot corrupt it."""
        return list(self._peaks)

    def copy(self) -> Frontier:
        """An independent frontier, e.g. to try an append before committing it."""
        return Frontier(self._size, self._peaks)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return every complete subtree it completes as (level, index, hash).

        The leaf itself comes first as (0, old size, leaf). Appending works like incrementing a
        binary counter: while the new node is a right child, it merges with the peak on its
        left. The returned nodes are exactly the ones a store must add to serve `Subtrees.node`.
        """
        if len(leaf) != HASH_SIZE:
            raise UsageError(f"leaf hash has {len(leaf)} bytes, expected {HASH_SIZE}")
        h = bytes(leaf)
        level, index = 0, self._size
        created = [(level, index, h)]
        while index & 1:
            h = node_hash(self._peaks.pop(), h)
            level += 1
            index >>= 1
            created.append((level, index, h))
        self._peaks.append(h)
        self._size += 1
        return created

    def root(self) -> bytes:
        """MTH of the whole tree: the peaks folded right to left (EMPTY_ROOT when empty)."""
        if not self._peaks:
            return EMPTY_ROOT
        result = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            result = node_hash(peak, result)
        return result

    @staticmethod
    def peak_positions(size: int) -> list[tuple[int, int]]:
        """(level, index) of each peak of a tree of `size` leaves, left to right.

        Lets a store rebuild a frontier from its kept nodes: one `node` read per peak.
        """
        if size < 0:
            raise UsageError(f"tree size {size} is negative")
        return list(_aligned_pieces(0, size)) if size else []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._peaks == other._peaks

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        peaks = ", ".join(p.hex()[:12] for p in self._peaks)
        return f"Frontier(size={self._size}, peaks=[{peaks}])"
