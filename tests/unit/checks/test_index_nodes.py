"""`check_index_nodes`: a full audit vouches for every stored index node against the index the
blocks make, and names the damaged one."""

from __future__ import annotations

import hashlib

import pytest

from modelchain.checks.audit import check_index_nodes
from modelchain.core.errors import LedgerInvalid
from modelchain.core.index import Index, key_of


def _tree(n: int) -> tuple[dict[bytes, bytes], Index]:
    values = {key_of(f"m{i}"): b"value %d" % i for i in range(n)}
    tree = Index()
    for key, value in values.items():
        tree.put(key, value)
    return values, tree


def test_an_honest_index_passes() -> None:
    values, tree = _tree(50)
    check_index_nodes("l", values, tree.nodes.items(), tree.root())


def test_an_empty_index_passes_and_a_missing_one_does_not() -> None:
    check_index_nodes("l", {}, [], bytes(32))
    values, tree = _tree(3)
    with pytest.raises(LedgerInvalid, match="does not lead to the signed index root"):
        check_index_nodes("l", values, [], tree.root())


def _deepest_leaf(tree: Index) -> tuple[int, int]:
    return max((k for k, r in tree.nodes.items() if len(r) == 64), key=lambda k: k[0])


def test_an_altered_leaf_is_named() -> None:
    values, tree = _tree(50)
    nodes = dict(tree.nodes)
    depth, prefix = _deepest_leaf(tree)
    record = nodes[(depth, prefix)]
    nodes[(depth, prefix)] = record[:32] + hashlib.sha256(b"other").digest()
    with pytest.raises(LedgerInvalid, match=rf"\(depth {depth}, prefix {prefix:#x}\) holds an"):
        check_index_nodes("l", values, nodes.items(), tree.root())


def test_an_altered_inner_node_is_named() -> None:
    values, tree = _tree(50)
    nodes = dict(tree.nodes)
    depth, prefix = max((k for k, r in nodes.items() if len(r) == 32), key=lambda k: k[0])
    nodes[(depth, prefix)] = bytes(32)
    with pytest.raises(LedgerInvalid, match=rf"\(depth {depth}, prefix {prefix:#x}\) is not"):
        check_index_nodes("l", values, nodes.items(), tree.root())


def test_a_node_nobody_reaches_and_a_leaf_off_its_path_are_named() -> None:
    values, tree = _tree(10)
    depth, prefix = _deepest_leaf(tree)
    stray = {**tree.nodes, (depth + 1, prefix << 1): tree.nodes[(depth, prefix)]}
    with pytest.raises(LedgerInvalid, match="hangs under no inner node"):
        check_index_nodes("l", values, stray.items(), tree.root())
    moved = dict(tree.nodes)
    record = moved[(depth, prefix)]
    moved[(depth, prefix ^ 1)], moved[(depth, prefix)] = record, moved.get((depth, prefix ^ 1), b"")
    moved = {k: v for k, v in moved.items() if v}
    with pytest.raises(LedgerInvalid, match="stored index node"):
        check_index_nodes("l", values, moved.items(), tree.root())


def test_a_name_missing_from_the_blocks_is_refused() -> None:
    values, tree = _tree(10)
    fewer = dict(values)
    fewer.pop(next(iter(fewer)))
    with pytest.raises(LedgerInvalid, match="not a name's newest block"):
        check_index_nodes("l", fewer, tree.nodes.items(), tree.root())


def test_a_leaf_pushed_down_under_an_empty_side_is_not_compact() -> None:
    """Hashes that all check out, up to a root signed over them, but a lone leaf one level
    lower than a compact tree puts it: not the tree of these names (nor its root)."""
    from modelchain.core.index import node_hash

    values, tree = _tree(2)  # the root over two leaves
    nodes = dict(tree.nodes)
    (depth, prefix), record = next((k, r) for k, r in nodes.items() if len(r) == 64)
    del nodes[(depth, prefix)]
    below = (depth + 1, prefix << 1 | ((int.from_bytes(record[:32], "big") >> (255 - depth)) & 1))
    nodes[below] = record
    leaf = hashlib.sha256(b"\x00" + record).digest()
    pushed = node_hash(leaf, bytes(32)) if below[1] & 1 == 0 else node_hash(bytes(32), leaf)
    nodes[(depth, prefix)] = pushed
    other = next(r for k, r in nodes.items() if k[0] == depth and k != (depth, prefix))
    other_hash = hashlib.sha256(b"\x00" + other).digest() if len(other) == 64 else other
    root = node_hash(pushed, other_hash) if prefix & 1 == 0 else node_hash(other_hash, pushed)
    nodes[(0, 0)] = root
    with pytest.raises(LedgerInvalid, match="not compact"):
        check_index_nodes("l", values, nodes.items(), root)
