"""Tests for modelchain.core.merkle: the RFC 9162 vectors, then properties over random trees."""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared import SHARED, missing

from modelchain.core import merkle
from modelchain.core.errors import InvalidProof, UsageError
from modelchain.core.merkle import (
    EMPTY_ROOT,
    BatchSubtrees,
    Frontier,
    ListSubtrees,
    ProofNodes,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    proof_from_nodes,
    root,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------------------------
# RFC 9162 vectors (transparency-dev/merkle testdata)
# --------------------------------------------------------------------------------------------

VECTORS = Path(os.environ.get("MODELCHAIN_VECTORS") or SHARED / "vectors" / "rfc9162")

# Leaf inputs of the vectors' trees, from the vectors' README: tree size n uses the first n.
README_LEAVES = [
    leaf_hash(bytes.fromhex(h))
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# Roots of those trees for sizes 1..8, as published with the RFC 6962 reference tests.
REFERENCE_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

_MISSING = "<vectors missing>"


def _vector_files() -> list[str]:
    if not VECTORS.is_dir():
        return [_MISSING]
    files = sorted(p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*.json"))
    return files or [_MISSING]


VECTOR_FILES = _vector_files()


def _load(rel: str) -> dict[str, Any]:
    if rel == _MISSING:
        missing(
            "RFC 9162 test vectors (transparency-dev/merkle testdata)",
            VECTORS,
            "MODELCHAIN_VECTORS",
        )
    data: dict[str, Any] = json.loads((VECTORS / rel).read_text(encoding="utf-8"))
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in data["proof"] or []]


def _check_vector(data: dict[str, Any]) -> None:
    proof = _proof(data)
    if "leafIdx" in data:
        verify_inclusion(
            data["leafIdx"], data["treeSize"], _b64(data["leafHash"]), proof, _b64(data["root"])
        )
    else:
        verify_consistency(
            data["size1"], data["size2"], _b64(data["root1"]), _b64(data["root2"]), proof
        )


def _happy(kind: str) -> list[str]:
    return [f for f in VECTOR_FILES if f.startswith(f"{kind}/") and f.endswith("happy-path.json")]


@pytest.mark.parametrize("rel", VECTOR_FILES, ids=VECTOR_FILES)
def test_vector(rel: str) -> None:
    data = _load(rel)
    if data["wantErr"]:
        with pytest.raises(InvalidProof):
            _check_vector(data)
    else:
        _check_vector(data)


def test_vectors_cover_both_kinds() -> None:
    if not VECTORS.is_dir():
        missing(
            "RFC 9162 test vectors (transparency-dev/merkle testdata)",
            VECTORS,
            "MODELCHAIN_VECTORS",
        )
    assert _happy("inclusion"), f"no inclusion happy-path vectors under {VECTORS}"
    assert _happy("consistency"), f"no consistency happy-path vectors under {VECTORS}"


@pytest.mark.parametrize("rel", _happy("inclusion") or [_MISSING])
def test_generated_inclusion_proof_equals_vector(rel: str) -> None:
    data = _load(rel)
    leaves = README_LEAVES[: data["treeSize"]]
    assert leaves[data["leafIdx"]] == _b64(data["leafHash"])
    assert root(leaves) == _b64(data["root"])
    assert inclusion_proof(data["leafIdx"], leaves) == _proof(data)


@pytest.mark.parametrize("rel", _happy("consistency") or [_MISSING])
def test_generated_consistency_proof_equals_vector(rel: str) -> None:
    data = _load(rel)
    assert root(README_LEAVES[: data["size1"]]) == _b64(data["root1"])
    assert root(README_LEAVES[: data["size2"]]) == _b64(data["root2"])
    assert consistency_proof(data["size1"], README_LEAVES[: data["size2"]]) == _proof(data)


def test_reference_roots() -> None:
    assert (
        root([]) == EMPTY_ROOT == base64.b64decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    )
    for n, want in REFERENCE_ROOTS.items():
        assert root(README_LEAVES[:n]).hex() == want
        frontier = Frontier.empty()
        for leaf in README_LEAVES[:n]:
            frontier.append(leaf)
        assert frontier.root().hex() == want


# --------------------------------------------------------------------------------------------
# Hashing, edge cases, messages
# --------------------------------------------------------------------------------------------


def test_hash_domain_separation() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert len(a) == 32
    assert leaf_hash(b"") != EMPTY_ROOT
    assert node_hash(a, b) != node_hash(b, a)
    assert node_hash(a, b) != leaf_hash(a + b)  # a leaf cannot pose as an inner node


def test_inclusion_messages() -> None:
    leaves = README_LEAVES
    good = inclusion_proof(3, leaves)
    r = root(leaves)
    with pytest.raises(InvalidProof, match="index 9 is beyond tree size 8"):
        verify_inclusion(9, 8, leaves[3], good, r)
    with pytest.raises(InvalidProof, match="proof has 2 hashes, expected 3"):
        verify_inclusion(3, 8, leaves[3], good[:2], r)
    with pytest.raises(InvalidProof, match="calculated root does not match"):
        verify_inclusion(3, 8, leaves[4], good, r)
    with pytest.raises(InvalidProof, match="leaf hash has 31 bytes"):
        verify_inclusion(3, 8, leaves[3][:31], good, r)
    with pytest.raises(InvalidProof, match="root has 33 bytes"):
        verify_inclusion(3, 8, leaves[3], good, r + b"\0")
    with pytest.raises(InvalidProof, match="proof hash 1 has 0 bytes"):
        verify_inclusion(3, 8, leaves[3], [good[0], b"", good[2]], r)
    with pytest.raises(InvalidProof):
        verify_inclusion(-1, 8, leaves[3], good, r)
    with pytest.raises(InvalidProof):
        verify_inclusion(0, 0, leaves[0], [], EMPTY_ROOT)


def test_consistency_edge_cases() -> None:
    r3, r8 = root(README_LEAVES[:3]), root(README_LEAVES)
    proof = consistency_proof(3, README_LEAVES)
    verify_consistency(3, 8, r3, r8, proof)
    # The empty tree is a prefix of every tree, but only under its real root.
    verify_consistency(0, 8, EMPTY_ROOT, r8, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(8, 8, r8, r8, [])
    assert consistency_proof(0, README_LEAVES) == []
    assert consistency_proof(8, README_LEAVES) == []
    with pytest.raises(InvalidProof, match="empty tree"):
        verify_consistency(0, 8, r3, r8, [])
    with pytest.raises(InvalidProof, match="expected 0"):
        verify_consistency(0, 8, EMPTY_ROOT, r8, [r8])
    with pytest.raises(InvalidProof, match="expected 0"):
        verify_consistency(8, 8, r8, r8, [r8])
    with pytest.raises(InvalidProof, match="roots differ"):
        verify_consistency(8, 8, r8, r3, [])
    with pytest.raises(InvalidProof, match="larger than new size"):
        verify_consistency(8, 3, r8, r3, [])
    with pytest.raises(InvalidProof, match=f"proof has {len(proof) - 1} hashes, expected"):
        verify_consistency(3, 8, r3, r8, proof[:-1])
    with pytest.raises(InvalidProof, match="old root does not match"):
        verify_consistency(3, 8, r8, r8, proof)
    with pytest.raises(InvalidProof, match="new root does not match"):
        verify_consistency(3, 8, r3, r3, proof)
    with pytest.raises(InvalidProof, match="new root has 31 bytes"):
        verify_consistency(3, 8, r3, r8[:31], proof)


def test_generation_rejects_bad_arguments() -> None:
    with pytest.raises(UsageError, match="index 8 is beyond tree size 8"):
        inclusion_proof(8, README_LEAVES)
    with pytest.raises(UsageError):
        inclusion_proof(0, [])
    with pytest.raises(UsageError):
        consistency_proof(9, README_LEAVES)
    with pytest.raises(UsageError):
        ListSubtrees(README_LEAVES[:5]).node(3, 0)
    with pytest.raises(UsageError):
        subtree_hash(ListSubtrees(README_LEAVES), 1, 4)  # not a range MTH ever hashes
    with pytest.raises(UsageError):
        root(README_LEAVES, 9)


def test_root_of_earlier_size() -> None:
    tree = ListSubtrees(README_LEAVES)
    for n in range(9):
        assert root(tree, n) == root(README_LEAVES[:n])


def test_frontier_basics() -> None:
    f = Frontier.empty()
    assert (f.size, f.peaks, f.root()) == (0, [], EMPTY_ROOT)
    assert f.append(README_LEAVES[0]) == [(0, 0, README_LEAVES[0])]
    created = f.append(README_LEAVES[1])
    assert created == [(0, 1, README_LEAVES[1]), (1, 0, root(README_LEAVES[:2]))]
    g = f.copy()
    g.append(README_LEAVES[2])
    assert f.size == 2 and g.size == 3 and f != g
    assert Frontier(g.size, g.peaks) == g
    f.peaks.append(b"x" * 32)  # a copy: the frontier itself is untouched
    assert len(f.peaks) == 1
    with pytest.raises(UsageError, match="has 2 peaks, got 1"):
        Frontier(3, [README_LEAVES[0]])
    with pytest.raises(UsageError):
        Frontier(1, [b"short"])
    with pytest.raises(UsageError):
        Frontier.empty().append(b"short")


def test_peak_positions() -> None:
    assert Frontier.peak_positions(0) == []
    assert Frontier.peak_positions(1) == [(0, 0)]
    assert Frontier.peak_positions(8) == [(3, 0)]
    assert Frontier.peak_positions(7) == [(2, 0), (1, 2), (0, 6)]
    assert Frontier.peak_positions(13) == [(3, 0), (2, 2), (0, 12)]


# --------------------------------------------------------------------------------------------
# Properties over random trees
# --------------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _leaves(seed: bytes, n: int) -> list[bytes]:
    return [leaf_hash(seed + i.to_bytes(4, "big")) for i in range(n)]


class DictSubtrees:
    """A store-like Subtrees: only the nodes Frontier.append emitted, counting reads."""

    def __init__(self, size: int, nodes: dict[tuple[int, int], bytes]) -> None:
        self.size = size
        self.kept = nodes
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.kept[(level, index)]


class BatchDictSubtrees(DictSubtrees):
    """DictSubtrees that also reads in batches (as the stores do), counting round trips."""

    def __init__(self, size: int, nodes: dict[tuple[int, int], bytes]) -> None:
        super().__init__(size, nodes)
        self.batches = 0

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        self.batches += 1
        return [self.kept[i] for i in ids]


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


trees = st.tuples(st.binary(max_size=8), st.integers(min_value=1, max_value=300))


@PROPERTY_SETTINGS
@given(tree=trees, data=st.data())
def test_inclusion_proofs_verify(tree: tuple[bytes, int], data: st.DataObject) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    subtrees = ListSubtrees(leaves)
    r = root(subtrees)
    indices = [*data.draw(st.lists(st.integers(0, n - 1), max_size=30)), 0, n - 1]
    for i in indices:
        proof = inclusion_proof(i, subtrees)
        assert len(proof) <= math.ceil(math.log2(n))  # == for the leftmost leaf
        assert i != 0 or len(proof) == math.ceil(math.log2(n))
        verify_inclusion(i, n, leaves[i], proof, r)
        if n > 1:
            with pytest.raises(InvalidProof):
                verify_inclusion(i, n, leaves[i ^ 1 if i ^ 1 < n else i - 1], proof, r)


@PROPERTY_SETTINGS
@given(tree=trees)
def test_consistency_proofs_verify_for_every_old_size(tree: tuple[bytes, int]) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    subtrees = ListSubtrees(leaves)
    new_root = root(subtrees)
    for m in range(n + 1):
        old_root = root(subtrees, m)
        proof = consistency_proof(m, subtrees)
        verify_consistency(m, n, old_root, new_root, proof)
        if 0 < m < n:
            with pytest.raises(InvalidProof):  # a different old tree is not a prefix
                verify_consistency(m, n, root(_leaves(seed + b"x", m)), new_root, proof)


@PROPERTY_SETTINGS
@given(tree=trees)
def test_frontier_matches_list(tree: tuple[bytes, int]) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    subtrees = ListSubtrees(leaves)
    frontier = Frontier.empty()
    seen: set[tuple[int, int]] = set()
    for i, leaf in enumerate(leaves):
        created = frontier.append(leaf)
        assert created[0] == (0, i, leaf)
        for level, index, h in created:
            assert ((index + 1) << level) == i + 1  # completed by this very leaf
            assert subtrees.node(level, index) == h
            seen.add((level, index))
        assert frontier.size == i + 1
        assert frontier.root() == root(subtrees, i + 1)
        peaks = [pos for pos in _all_complete(i + 1) if _is_peak(pos, i + 1)]
        assert Frontier.peak_positions(i + 1) == sorted(peaks, key=lambda p: p[1] << p[0])
        assert frontier.peaks == [subtrees.node(*p) for p in Frontier.peak_positions(i + 1)]
    assert seen == set(_all_complete(n))  # every complete subtree emitted, exactly once


def _all_complete(n: int) -> list[tuple[int, int]]:
    return [(lv, ix) for lv in range(n.bit_length()) for ix in range(n >> lv)]


def _is_peak(pos: tuple[int, int], n: int) -> bool:
    """A complete subtree is a peak when its parent is not complete in a tree of n leaves."""
    level, index = pos
    return ((index // 2 + 1) << (level + 1)) > n


@PROPERTY_SETTINGS
@given(tree=trees, data=st.data())
def test_store_backed_proofs_equal_list_proofs(
    tree: tuple[bytes, int], data: st.DataObject
) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    frontier = Frontier.empty()
    nodes: dict[tuple[int, int], bytes] = {}
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            nodes[(level, index)] = h
    store = DictSubtrees(n, nodes)
    bound = (n.bit_length() + 1) ** 2  # O(log^2 n) node reads at worst
    assert root(store) == root(leaves) == frontier.root()
    for i in [*data.draw(st.lists(st.integers(0, n - 1), max_size=20)), n - 1]:
        store.reads = 0
        assert inclusion_proof(i, store) == inclusion_proof(i, leaves)
        assert store.reads <= bound
    for m in [*data.draw(st.lists(st.integers(0, n), max_size=20)), 1, n]:
        store.reads = 0
        assert consistency_proof(m, store) == consistency_proof(m, leaves)
        assert store.reads <= bound
        assert root(store, m) == root(leaves[:m])


@PROPERTY_SETTINGS
@given(tree=trees, data=st.data())
def test_flipping_any_bit_breaks_inclusion(tree: tuple[bytes, int], data: st.DataObject) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    r = root(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, leaves)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(InvalidProof):
        verify_inclusion(i, n, leaves[i], proof, _flip(r, bit))
    with pytest.raises(InvalidProof):
        verify_inclusion(i, n, _flip(leaves[i], bit), proof, r)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(InvalidProof):
            verify_inclusion(i, n, leaves[i], bad, r)


@PROPERTY_SETTINGS
@given(tree=trees, data=st.data())
def test_flipping_any_bit_breaks_consistency(tree: tuple[bytes, int], data: st.DataObject) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    m = data.draw(st.integers(1, n))  # from 0, any new root is consistent (tested above)
    old_root, new_root = root(leaves[:m]), root(leaves)
    proof = consistency_proof(m, leaves)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(InvalidProof):
        verify_consistency(m, n, _flip(old_root, bit), new_root, proof)
    with pytest.raises(InvalidProof):
        verify_consistency(m, n, old_root, _flip(new_root, bit), proof)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(InvalidProof):
            verify_consistency(m, n, old_root, new_root, bad)


@cache
def _big_tree() -> tuple[ListSubtrees, list[bytes], bytes]:
    leaves = _leaves(b"big", 100_000)
    subtrees = ListSubtrees(leaves)
    return subtrees, leaves, root(subtrees)


@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, 99_999))
def test_inclusion_proof_is_short_for_large_tree(index: int) -> None:
    subtrees, leaves, r = _big_tree()
    proof = inclusion_proof(index, subtrees)
    assert len(proof) <= 17
    verify_inclusion(index, 100_000, leaves[index], proof, r)


# --------------------------------------------------------------------------------------------
# Node IDs: which stored nodes a proof needs
# --------------------------------------------------------------------------------------------


def _mth(leaves: Sequence[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 defines it, recursively (the reference)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) as RFC 9162 2.1.3.1 writes it."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_rfc_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _rfc_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) as RFC 9162 2.1.4.1 writes it."""
    n = len(leaves)
    if m == n:
        return [] if b else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_rfc_subproof(m, leaves[:k], b), _mth(leaves[k:])]
    return [*_rfc_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


def _from_nodes(plan: ProofNodes, tree: ListSubtrees) -> list[bytes]:
    return proof_from_nodes(plan, [tree.node(level, index) for level, index in plan.ids])


def _check_plan(plan: ProofNodes, size: int) -> None:
    """Only complete subtrees inside the tree, each once; spans cover the IDs in order."""
    assert len(set(plan.ids)) == len(plan.ids)
    for level, index in plan.ids:
        assert level >= 0 and index >= 0 and (index + 1) << level <= size
    bounds = [0, *(b for _, b in plan.spans)]
    assert list(itertools.pairwise(bounds)) == list(plan.spans)
    assert bounds[-1] == len(plan.ids)
    assert all(b > a for a, b in plan.spans)


def test_node_ids_give_the_rfc_proofs_at_every_size_up_to_64() -> None:
    for n in range(1, 65):
        leaves = _leaves(b"ids", n)
        tree = ListSubtrees(leaves)
        for i in range(n):
            plan = inclusion_nodes(i, n)
            _check_plan(plan, n)
            assert _from_nodes(plan, tree) == _rfc_path(i, leaves) == inclusion_proof(i, tree)
        for m in range(n + 1):
            plan = consistency_nodes(m, n)
            _check_plan(plan, n)
            want = [] if m in (0, n) else _rfc_subproof(m, leaves, True)
            assert _from_nodes(plan, tree) == want == consistency_proof(m, tree)


def test_node_ids_of_a_small_tree() -> None:
    # size 7: leaf 6 has sibling MTH(D[4:6]) = node (1, 2) and MTH(D[0:4]) = node (2, 0)
    assert inclusion_nodes(6, 7) == ProofNodes(((1, 2), (2, 0)), ((0, 1), (1, 2)))
    # leaf 0 of 7: the right-edge subtree D[4:7] is no stored node: (1, 2) and (0, 6) folded
    assert inclusion_nodes(0, 7) == ProofNodes(
        ((0, 1), (1, 1), (1, 2), (0, 6)), ((0, 1), (1, 2), (2, 4))
    )
    assert consistency_nodes(4, 7) == ProofNodes(((1, 2), (0, 6)), ((0, 2),))
    assert consistency_nodes(0, 7) == consistency_nodes(7, 7) == ProofNodes((), ())


def test_node_ids_reject_bad_arguments() -> None:
    with pytest.raises(UsageError, match="beyond tree size 3"):
        inclusion_nodes(3, 3)
    with pytest.raises(UsageError, match="beyond tree size 0"):
        inclusion_nodes(0, 0)
    with pytest.raises(UsageError, match=r"outside 0\.\.3"):
        consistency_nodes(4, 3)
    with pytest.raises(UsageError, match=r"outside 0\.\.3"):
        consistency_nodes(-1, 3)
    with pytest.raises(UsageError, match="needs 2 node hashes, got 1"):
        proof_from_nodes(inclusion_nodes(6, 7), [b"\0" * 32])


@PROPERTY_SETTINGS
@given(
    n=st.integers(min_value=65, max_value=1 << 40),
    data=st.data(),
)
def test_node_ids_of_large_trees(n: int, data: st.DataObject) -> None:
    """Without the leaves: the IDs are complete subtrees inside the tree, O(log n) of them."""
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(0, n))
    for plan in (inclusion_nodes(i, n), consistency_nodes(m, n)):
        _check_plan(plan, n)
        assert len(plan.spans) <= n.bit_length() + 1
        assert len(plan.ids) <= 2 * n.bit_length() + 1


@PROPERTY_SETTINGS
@given(tree=trees, data=st.data())
def test_batch_subtrees_answer_a_proof_in_one_read(
    tree: tuple[bytes, int], data: st.DataObject
) -> None:
    seed, n = tree
    leaves = _leaves(seed, n)
    frontier = Frontier.empty()
    nodes: dict[tuple[int, int], bytes] = {}
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            nodes[(level, index)] = h
    store = BatchDictSubtrees(n, nodes)
    assert isinstance(store, BatchSubtrees) and not isinstance(ListSubtrees(leaves), BatchSubtrees)
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    for compute, want in (
        (lambda: inclusion_proof(i, store), inclusion_proof(i, leaves)),
        (lambda: consistency_proof(m, store), consistency_proof(m, leaves)),
        (lambda: root(store, m), root(leaves[:m])),
    ):
        store.batches = store.reads = 0
        assert compute() == want
        assert store.reads == 0 and store.batches <= 1


def test_module_exports() -> None:
    for name in merkle.__all__:
        assert hasattr(merkle, name), name
