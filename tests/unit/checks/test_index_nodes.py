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
