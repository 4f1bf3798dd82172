"""The index read from a store that an attacker may write: nodes believed only once proven."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.core import index
from modelchain.core.errors import LedgerInvalid
from modelchain.core.indexcache import authenticated_index


def _tree(n: int) -> index.Index:
    tree = index.Index()
    for i in range(n):
        tree.put(index.key_of(f"m{i}"), f"v{i}".encode())
    return tree


class Store:
    """A store's `index_nodes`, counting reads."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self.nodes = nodes
        self.reads = 0

    def fetch(self, ids: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        self.reads += 1
        return {i: self.nodes[i] for i in ids if i in self.nodes}


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=50))
def test_puts_over_stored_nodes_give_the_same_root_as_in_memory(n: int, more: int) -> None:
    honest = _tree(n)
    store = Store(dict(honest.nodes))
    over = authenticated_index(store.fetch, honest.root(), "ledger")
    for i in range(n, n + more):
        key, value = index.key_of(f"m{i}"), f"v{i}".encode()
        honest.put(key, value)
        over.put(key, value)
    assert over.root() == honest.root()
    for i in range(0, n + more, 7):
        key = index.key_of(f"m{i}")
        index.verify(honest.root(), key, f"v{i}".encode(), over.prove(key))


def test_a_proof_reads_few_times() -> None:
    honest = _tree(5_000)
    store = Store(dict(honest.nodes))
    over = authenticated_index(store.fetch, honest.root(), "ledger")
    over.prove(index.key_of("m17"))
    assert store.reads == 1  # the whole path of ~13 levels in one read


@pytest.mark.parametrize("depth", [0, 1, 5])
def test_an_altered_node_is_refused_before_it_is_used(depth: int) -> None:
    honest = _tree(2_000)
    nodes = dict(honest.nodes)
    key = index.key_of("m42")
    prefix = int.from_bytes(key, "big") >> (256 - depth) if depth else 0
    assert (depth, prefix) in nodes
    nodes[(depth, prefix)] = os.urandom(32)
    over = authenticated_index(Store(nodes).fetch, honest.root(), "l.db")
    with pytest.raises(LedgerInvalid, match="does not match its signed root"):
        over.put(key, b"new")


def test_an_older_leaf_slipped_in_for_another_name_is_refused() -> None:
    """The attack the authentication stops: a stored leaf of name A set back to an older
    value, so that an append of name B would sign it into a new root."""
    tree = index.Index()
    for i in range(200):
        tree.put(index.key_of(f"m{i}"), b"v1")
    old_leaf = dict(tree.nodes)
    for i in range(200):
        tree.put(index.key_of(f"m{i}"), b"v2")
    nodes = dict(tree.nodes)
    for ident, record in old_leaf.items():
        if len(record) == 64 and record[:32] == index.key_of("m3"):
            nodes[ident] = record  # m3 back to v1
    over = authenticated_index(Store(nodes).fetch, tree.root(), "l.db")
    with pytest.raises(LedgerInvalid):
        for i in range(200, 400):
            over.put(index.key_of(f"m{i}"), b"v1")


def test_a_missing_root_record_is_refused() -> None:
    honest = _tree(10)
    over = authenticated_index(Store({}).fetch, honest.root(), "l.db")
    with pytest.raises(LedgerInvalid, match="at depth 0"):
        over.get(index.key_of("m1"))


def test_a_fresh_window_after_writes_is_proven_from_the_new_root() -> None:
    """What an appender does past its memory bound: forget, and read again from the root it
    computed (so its own committed writes are proven like any stored node)."""
    honest = _tree(1_000)
    store = Store(dict(honest.nodes))
    over = authenticated_index(store.fetch, honest.root(), "ledger")
    written = over.put(index.key_of("new"), b"x")
    store.nodes.update(written)  # committed
    again = authenticated_index(store.fetch, over.root(), "ledger")
    assert over.root() != honest.root()
    index.verify(over.root(), index.key_of("new"), b"x", again.prove(index.key_of("new")))
    with pytest.raises(LedgerInvalid):  # the old root no longer describes the store
        authenticated_index(store.fetch, honest.root(), "ledger").prove(index.key_of("new"))
