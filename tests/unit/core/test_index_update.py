"""Proofs of an index update (`Index.prove_update`, `verify_update`): what incremental audit
relies on. An honest proof passes exactly when the new tree is the old one with these changes;
changes or proofs that lie in any way fail."""

from __future__ import annotations

import hashlib

import index_naive as naive
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.core import index
from modelchain.core.errors import InvalidProof
from unit.core.test_index_batch import keys

Changes = dict[bytes, tuple[bytes | None, bytes]]


def scenario(data, all_keys: list[bytes], inserts_only: bool = False):
    """An old tree, changes to it (updates to new values and insertions), the tree after."""
    cut = data.draw(st.integers(0, len(all_keys)))
    old = {k: b"old-" + data.draw(st.binary(max_size=4)) for k in all_keys[:cut]}
    updated = [] if inserts_only or not old else data.draw(st.lists(st.sampled_from(list(old))))
    inserted = all_keys[cut:]
    changes: Changes = {k: (old[k], old[k] + b"+") for k in updated}
    changes.update({k: (None, b"new") for k in inserted})
    tree = index.Index()
    tree.put_many(list(old.items()))
    old_root = tree.root()
    tree.put_many([(k, new) for k, (_, new) in changes.items()])
    new = {**old, **{k: v for k, (_, v) in changes.items()}}
    assert old_root == naive.root(old) and tree.root() == naive.root(new)
    return tree, old, old_root, changes


@settings(max_examples=150, deadline=None)
@given(keys, st.data())
def test_an_honest_update_proof_verifies(all_keys: list[bytes], data) -> None:
    tree, _, old_root, changes = scenario(data, all_keys)
    proof = index.UpdateProof.from_bytes(tree.prove_update(list(changes)).to_bytes())
    index.verify_update(old_root, tree.root(), changes, proof)


@settings(max_examples=150, deadline=None)
@given(keys, st.data())
def test_changes_that_lie_fail(all_keys: list[bytes], data) -> None:
    tree, old, old_root, changes = scenario(data, all_keys)
    new_root = tree.root()
    proof = tree.prove_update(list(changes))
    lies: list[tuple[Changes, index.UpdateProof]] = []
    for key, (was, now) in changes.items():
        rest = {k: c for k, c in changes.items() if k != key}
        lies.append((rest, proof))  # a change missing
        lies.append((rest, tree.prove_update(list(rest))))  # ... with a proof made for that
        lies.append(({**changes, key: (was, now + b"?")}, proof))  # wrong new value
        lies.append(({**changes, key: (b"forged", now)}, proof))  # wrong old value
        lies.append(({**changes, key: (None if was else b"old-", now)}, proof))
    unchanged = [k for k in old if k not in changes]
    if unchanged:
        key = data.draw(st.sampled_from(unchanged))
        # an unchanged key said to change
        lies.append(({**changes, key: (old[key], b"other")}, proof))
        lies.append(({**changes, key: (None, old[key])}, tree.prove_update([*changes, key])))
    absent = hashlib.sha256(b"never put").digest()
    lies.append(({**changes, absent: (None, b"x")}, proof))
    for claimed, used in lies:
        with pytest.raises(InvalidProof):
            index.verify_update(old_root, new_root, claimed, used)
    if unchanged:
        # saying an unchanged key kept its value is true, and passes with a proof that covers it
        truth = {**changes, key: (old[key], old[key])}
        index.verify_update(old_root, new_root, truth, tree.prove_update(list(truth)))
    with pytest.raises(InvalidProof):
        index.verify_update(new_root if changes else bytes(31) + b"\x01", new_root, changes, proof)


@settings(max_examples=150, deadline=None)
@given(keys, st.data())
def test_every_flipped_bit_of_a_proof_fails(all_keys: list[bytes], data) -> None:
    tree, _, old_root, changes = scenario(data, all_keys)
    good = tree.prove_update(list(changes)).to_bytes()
    for _ in range(10):
        at = data.draw(st.integers(0, len(good) - 1))
        bad = bytearray(good)
        bad[at] ^= 1 << data.draw(st.integers(0, 7))
        with pytest.raises(InvalidProof):
            index.verify_update(
                old_root, tree.root(), changes, index.UpdateProof.from_bytes(bytes(bad))
            )
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(InvalidProof):
        index.UpdateProof.from_bytes(good[:cut])
    with pytest.raises(InvalidProof):
        index.UpdateProof.from_bytes(good + b"\x00")


@settings(max_examples=150, deadline=None)
@given(keys, st.data())
def test_a_leaf_posing_as_a_node_or_the_other_way_fails(all_keys: list[bytes], data) -> None:
    # with insertions only, every leaf given whole is one that undoing them lifts
    tree, old, old_root, changes = scenario(data, all_keys, inserts_only=True)
    steps = tree.prove_update(list(changes)).steps
    for at, (kind, payload) in enumerate(steps):
        if kind == 2:  # a whole leaf, given as the node hash it equals
            posing = (1, hashlib.sha256(b"\x00" + payload).digest())
        elif kind == 1:  # a node given as a leaf under it, or a leaf given whole needlessly
            other = next((k for k in old if tree.get(k) and payload != index.EMPTY), None)
            if other is None:
                continue
            posing = (2, other + hashlib.sha256(b"nothing").digest())
        else:
            continue
        forged = index.UpdateProof((*steps[:at], posing, *steps[at + 1 :]))
        with pytest.raises(InvalidProof):
            index.verify_update(old_root, tree.root(), changes, forged)


def test_a_lone_leaf_moves_up_when_the_insert_is_undone() -> None:
    a, b = index.key_of("iris"), index.key_of("resnet")
    tree = index.Index()
    tree.put(a, b"a")
    old_root = tree.root()
    tree.put(b, b"b")
    proof = tree.prove_update([b])
    # the proof gives iris's leaf whole: without b it is the root itself
    assert [kind for kind, _ in proof.steps] == [2, 3]
    index.verify_update(old_root, tree.root(), {b: (None, b"b")}, proof)
    hidden = index.UpdateProof(((1, index.leaf_hash(a, b"a")), proof.steps[1]))
    with pytest.raises(InvalidProof, match="old index root"):
        index.verify_update(old_root, tree.root(), {b: (None, b"b")}, hidden)
    # an update of b instead: iris cannot move, so its hash is all the proof gives
    tree.put(b, b"b2")
    proof = tree.prove_update([b])
    assert [kind for kind, _ in proof.steps] == [2, 3]  # only changed keys beside it
    index.verify_update(tree.root(), tree.root(), {b: (b"b2", b"b2")}, proof)


def test_a_node_holding_one_key_is_refused() -> None:
    key = index.key_of("iris")
    tree = index.Index()
    tree.put(key, b"v")
    # a root node over iris and an empty side: iris would be the root itself
    forged = index.UpdateProof(((0, b""), (3, b"")))
    stretched = index.node_hash(index.leaf_hash(key, b"v"), index.EMPTY)
    if naive.bits(key)[0] == "1":
        stretched = index.node_hash(index.EMPTY, index.leaf_hash(key, b"v"))
    with pytest.raises(InvalidProof, match="canonical"):
        index.verify_update(index.EMPTY, stretched, {key: (None, b"v")}, forged)


def test_no_changes() -> None:
    tree = index.Index()
    tree.put_many([(index.key_of(f"m{i}"), b"v") for i in range(5)])
    proof = tree.prove_update([])
    assert proof.steps == ((1, tree.root()),)
    index.verify_update(tree.root(), tree.root(), {}, proof)
    with pytest.raises(InvalidProof):
        index.verify_update(index.EMPTY, tree.root(), {}, proof)
    empty = index.Index().prove_update([])
    index.verify_update(index.EMPTY, index.EMPTY, {}, empty)
    with pytest.raises(ValueError, match="not in it"):
        tree.prove_update([index.key_of("absent")])


def test_malformed_update_proof_bytes() -> None:
    for data in (
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x01",  # one step, no byte for it
        b"\x00\x00\x00\x01\x04",  # an unknown kind
        b"\x00\x00\x00\x01\x01" + b"\x00" * 32,  # an empty subtree as a node
        b"\x00\x00\x00\x01\x02" + b"\x01" * 63,  # a leaf cut short
        b"\x00\x00\x00\x01\x03\x03",  # a byte after the last step
        b"\xff\xff\xff\xff\x00",  # more steps than bytes
        b"\x00" * (index.MAX_UPDATE_PROOF_BYTES + 1),
    ):
        with pytest.raises(InvalidProof):
            index.UpdateProof.from_bytes(data)
    assert index.UpdateProof.from_bytes(b"\x00\x00\x00\x01\x03").steps == ((3, b""),)
    with pytest.raises(InvalidProof, match="malformed"):
        index.verify_update(index.EMPTY, index.EMPTY, {}, index.UpdateProof(((1, b"short"),)))


@settings(max_examples=100, deadline=None)
@given(keys, st.data())
def test_a_leaf_given_whole_where_its_hash_would_do_fails(all_keys: list[bytes], data) -> None:
    # one proof per update: a leaf that cannot be lifted is given as its hash only
    tree, _, old_root, changes = scenario(data, all_keys)
    records = {hashlib.sha256(b"\x00" + k + v).digest(): k + v for k, v in tree}
    steps = tree.prove_update(list(changes)).steps
    for at, (kind, payload) in enumerate(steps):
        if kind == 1 and payload in records:
            whole = index.UpdateProof((*steps[:at], (2, records[payload]), *steps[at + 1 :]))
            with pytest.raises(InvalidProof, match="would do"):
                index.verify_update(old_root, tree.root(), changes, whole)


def test_a_leaf_beside_the_path_must_lie_under_its_node() -> None:
    # a lying log's tree: a changed key on the left, and beside it on the right a leaf whose
    # key starts with 0 (it belongs on the left); the hashes alone would add up
    left = [k for k in (index.key_of(f"m{i}") for i in range(20)) if k[0] < 0x80]
    changed, stray = left[0], left[1]
    stray_record = stray + hashlib.sha256(b"s").digest()
    new_root = index.node_hash(index.leaf_hash(changed, b"c"), index.leaf_hash(stray, b"s"))
    proof = index.UpdateProof(((2, stray_record), (3, b"")))
    with pytest.raises(InvalidProof, match="under its node"):
        index.verify_update(index.leaf_hash(stray, b"s"), new_root, {changed: (None, b"c")}, proof)
