"""The verifiable index (`modelchain.core.index`): against a naive second implementation, the
committed vectors, and proofs that are tampered with, truncated or not canonical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import index_naive as naive
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.core import index
from modelchain.core.errors import InvalidProof

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "index-v1.json"


def value_of(name: str, version: int = 1) -> bytes:
    return index.Entry(name, version * 7, hashlib.sha256(name.encode()).digest(), version).value()


def build(names: list[str]) -> tuple[index.Index, dict[bytes, bytes]]:
    tree = index.Index()
    entries: dict[bytes, bytes] = {}
    seen: dict[str, int] = {}
    for name in names:
        key = index.key_of(name)
        seen[name] = seen.get(name, 0) + 1
        value = value_of(name, seen[name])
        entries[key] = value
        tree.put(key, value)
    return tree, entries


def test_an_empty_index() -> None:
    tree = index.Index()
    assert tree.root() == index.EMPTY == index.root_of({})
    proof = tree.prove(index.key_of("anything"))
    assert proof.siblings == () and proof.other is None
    index.verify(tree.root(), index.key_of("anything"), None, proof)
    with pytest.raises(InvalidProof):
        index.verify(tree.root(), index.key_of("anything"), b"v", proof)


def test_one_key_is_its_leaf() -> None:
    tree, entries = build(["iris"])
    key = index.key_of("iris")
    assert tree.root() == index.leaf_hash(key, entries[key]) == naive.root(entries)
    index.verify(tree.root(), key, entries[key], tree.prove(key))
    absent = tree.prove(index.key_of("other"))
    assert absent.other == (key, hashlib.sha256(entries[key]).digest())
    index.verify(tree.root(), index.key_of("other"), None, absent)


names = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(names, st.lists(st.text(min_size=1, max_size=12), max_size=5))
def test_matches_the_naive_index_and_every_proof_verifies(
    present: list[str], absent: list[str]
) -> None:
    tree, entries = build(present)
    assert tree.root() == naive.root(entries) == index.root_of(entries)
    for key, value in entries.items():
        proof = index.Proof.from_bytes(tree.prove(key).to_bytes())
        assert list(proof.siblings) == naive.siblings(entries, key)
        index.verify(tree.root(), key, value, proof)
        with pytest.raises(InvalidProof):
            index.verify(tree.root(), key, value + b" ", proof)
        with pytest.raises(InvalidProof):
            index.verify(tree.root(), key, None, proof)
        assert tree.get(key) == hashlib.sha256(value).digest()
    for name in absent:
        key = index.key_of(name)
        if key in entries:
            continue
        proof = index.Proof.from_bytes(tree.prove(key).to_bytes())
        index.verify(tree.root(), key, None, proof)
        with pytest.raises(InvalidProof):
            index.verify(tree.root(), key, value_of(name), proof)
        assert tree.get(key) is None


@settings(max_examples=60, deadline=None)
@given(names.filter(lambda n: len(set(n)) >= 2), st.randoms(use_true_random=False))
def test_insertion_order_and_updates_do_not_change_the_root(present: list[str], rnd) -> None:
    tree, entries = build(present)
    shuffled = list(entries.items())
    rnd.shuffle(shuffled)
    other = index.Index()
    for key, value in shuffled:
        other.put(key, b"an older value")
        other.put(key, value)
    assert other.root() == tree.root()
    assert dict(other) == {k: hashlib.sha256(v).digest() for k, v in entries.items()}


def test_every_changed_byte_of_a_proof_is_refused() -> None:
    tree, entries = build([f"model-{i}" for i in range(40)])
    root = tree.root()
    for key, value in list(entries.items())[:5]:
        good = tree.prove(key).to_bytes()
        for i in range(len(good)):
            for flip in (0x01, 0x80):
                bad = bytearray(good)
                bad[i] ^= flip
                with pytest.raises(InvalidProof):
                    index.verify(root, key, value, index.Proof.from_bytes(bytes(bad)))
        for cut in range(len(good)):
            with pytest.raises(InvalidProof):
                index.verify(root, key, value, index.Proof.from_bytes(good[:cut]))
        with pytest.raises(InvalidProof):
            index.Proof.from_bytes(good + b"\x00")


def test_a_proof_that_is_not_canonical_is_refused() -> None:
    tree, entries = build(["a", "b"])
    key = index.key_of("a")
    proof = tree.prove(key)
    # one level deeper with an empty sibling hashes differently, and is refused before that
    longer = index.Proof((*proof.siblings, index.EMPTY))
    with pytest.raises(InvalidProof, match="canonical"):
        index.verify(tree.root(), key, entries[key], longer)


def test_an_absence_proof_cannot_use_the_key_itself_or_a_leaf_off_its_path() -> None:
    tree, entries = build([f"m{i}" for i in range(16)])
    key = index.key_of("m3")
    value_hash = hashlib.sha256(entries[key]).digest()
    own = index.Proof(tree.prove(key).siblings, (key, value_hash))
    with pytest.raises(InvalidProof, match="present"):
        index.verify(tree.root(), key, None, own)
    far = next(k for k in entries if naive.bits(k)[0] != naive.bits(key)[0])
    stray = index.Proof(tree.prove(key).siblings, (far, hashlib.sha256(entries[far]).digest()))
    with pytest.raises(InvalidProof, match="path"):
        index.verify(tree.root(), key, None, stray)


def test_malformed_proof_bytes() -> None:
    for data in (
        b"",
        b"\x00",
        b"\x01\x01\x00",
        b"\x00\x01\x80",
        b"\x00\x01\x40\x00",
        b"\x00\x00\x02",
        b"\x00\x00\x01" + b"\x00" * 63,
    ):
        with pytest.raises(InvalidProof):
            index.Proof.from_bytes(data)
    with pytest.raises(InvalidProof):
        index.Proof.from_bytes(b"\x01\x01" + b"\x00" * 40)  # depth 257


def test_depth_grows_with_log_n() -> None:
    tree, entries = build([f"model-{i}" for i in range(2000)])
    deepest = max(len(tree.prove(k).siblings) for k in entries)
    assert 11 <= deepest <= 40
    assert max(len(tree.prove(k).to_bytes()) for k in entries) < 40 * 32 + 80


def make_vectors() -> dict:
    """The committed vectors: fixed name sets, their roots and proofs (from the naive index)."""
    cases = []
    for names in ([], ["iris"], ["iris", "resnet"], [f"model-{i}" for i in range(10)]):
        entries = {index.key_of(n): value_of(n) for n in names}
        tree, _ = build(names)
        proofs = {n: tree.prove(index.key_of(n)).to_bytes().hex() for n in [*names, "absent"]}
        cases.append({"names": names, "root": naive.root(entries).hex(), "proofs": proofs})
    return {"value": "Entry(name, 7, sha256(name), 1).value()", "cases": cases}


def test_committed_vectors() -> None:
    committed = json.loads(VECTORS.read_text())
    assert committed == make_vectors()
    for case in committed["cases"]:
        root = bytes.fromhex(case["root"])
        for name, proof in case["proofs"].items():
            value = None if name not in case["names"] else value_of(name)
            index.verify(
                root, index.key_of(name), value, index.Proof.from_bytes(bytes.fromhex(proof))
            )


# PYTHONPATH=tests:. python tests/unit/core/test_index.py writes the vectors
if __name__ == "__main__":
    VECTORS.write_text(json.dumps(make_vectors(), indent=1, sort_keys=True) + "\n")
