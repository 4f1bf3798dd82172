"""The index's batch update, its fetch hook (a store serving whole paths in one round trip) and
its one-pass root: against the naive index and against one `put` at a time."""

from __future__ import annotations

import hashlib

import index_naive as naive
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.core import index
from modelchain.core.errors import LedgerInvalid


def near_keys(base: bytes, flips: list[list[int]]) -> list[bytes]:
    """Keys that differ from `base` in a few bits each: deep paths, chains of one-sided nodes,
    and keys that part only at their last bit."""
    start = int.from_bytes(base, "big")
    out = []
    for bits in flips:
        key = start
        for position in bits:
            key ^= 1 << (255 - position)
        out.append(key.to_bytes(32, "big"))
    return list(dict.fromkeys(out))


keys = st.one_of(
    st.lists(st.binary(min_size=32, max_size=32), max_size=30, unique=True),
    st.builds(
        near_keys,
        st.binary(min_size=32, max_size=32),
        st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=30),
    ),
)
values = st.binary(max_size=8)


def filled(entries: dict[bytes, bytes]) -> index.Index:
    tree = index.Index()
    for key, value in entries.items():
        tree.put(key, value)
    return tree


@settings(max_examples=150, deadline=None)
@given(keys, st.data())
def test_put_many_writes_what_one_put_at_a_time_writes(all_keys: list[bytes], data) -> None:
    cut = data.draw(st.integers(0, len(all_keys)))
    before = {k: data.draw(values) for k in all_keys[:cut]}
    # the batch: new keys, keys already there, and keys given twice (the last value wins)
    batch_keys = data.draw(st.lists(st.sampled_from(all_keys), max_size=40)) if all_keys else []
    batch = [(k, data.draw(values)) for k in batch_keys]
    one_by_one, batched = filled(before), filled(before)
    expected: dict[tuple[int, int], bytes] = {}
    for key, value in batch:
        expected.update(one_by_one.put(key, value))
    assert batched.put_many(batch) == expected
    after = {**before, **dict(batch)}
    assert batched.nodes == one_by_one.nodes == naive.nodes(after)
    assert batched.root() == naive.root(after) == index.root_of(after)


@settings(max_examples=50, deadline=None)
@given(keys, st.data())
def test_root_of_and_root_of_hashes_match_the_naive_index(all_keys: list[bytes], data) -> None:
    entries = {k: data.draw(values) for k in all_keys}
    hashes = [(k, hashlib.sha256(v).digest()) for k, v in entries.items()]
    assert index.root_of(entries) == index.root_of_hashes(hashes) == naive.root(entries)


def test_root_of_hashes_refuses_a_key_twice_and_malformed_pairs() -> None:
    key = index.key_of("iris")
    with pytest.raises(ValueError, match="twice"):
        index.root_of_hashes([(key, bytes(32)), (key, bytes(32))])
    with pytest.raises(ValueError, match="32 bytes"):
        index.root_of_hashes([(key, b"short")])
    with pytest.raises(ValueError, match="32 bytes"):
        index.root_of_hashes([(b"short", bytes(32))])
    with pytest.raises(ValueError, match="32 bytes"):
        index.root_of({b"short": b"v"})


class Store:
    """A store of index records that counts its round trips and what it was asked."""

    def __init__(self, records: dict[tuple[int, int], bytes]) -> None:
        self.records = dict(records)
        self.calls: list[list[tuple[int, int]]] = []

    def fetch(self, ids: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.calls.append(list(ids))
        return {i: self.records[i] for i in ids if i in self.records}


@settings(max_examples=100, deadline=None)
@given(keys, st.data())
def test_a_fetching_index_reads_and_writes_as_the_full_one(all_keys: list[bytes], data) -> None:
    cut = data.draw(st.integers(0, len(all_keys)))
    before = {k: data.draw(values) for k in all_keys[:cut]}
    full = filled(before)
    store = Store(dict(full.nodes))
    cached = index.Index(fetch=store.fetch)
    assert cached.root() == full.root()
    for key in all_keys:
        assert cached.get(key) == full.get(key)
        assert cached.prove(key) == full.prove(key)
    batch = (
        [(k, data.draw(values)) for k in data.draw(st.lists(st.sampled_from(all_keys)))]
        if all_keys
        else []
    )
    if data.draw(st.booleans()):
        cached.forget()
        store.calls.clear()
    written = cached.put_many(batch)
    assert written == full.put_many(batch)
    store.records.update(written)
    for key, value in batch[:3]:
        store.records.update(cached.put(key, value + b"!"))
        full.put(key, value + b"!")
    assert cached.root() == full.root()
    assert store.records == full.nodes
    # nothing is asked twice: what came back, and what came back absent, is remembered
    asked = [i for call in store.calls for i in call]
    assert len(asked) == len(set(asked))


def test_a_put_into_a_large_index_is_one_round_trip() -> None:
    entries = {index.key_of(f"model-{i}"): b"v%d" % i for i in range(100_000)}
    full = index.Index()
    full.put_many(list(entries.items()))
    assert full.root() == index.root_of(entries)
    store = Store(dict(full.nodes))
    for name in ("model-7", "a new model"):
        key, value = index.key_of(name), b"newer"
        cached = index.Index(fetch=store.fetch)
        store.calls.clear()
        written = cached.put(key, value)
        assert len(store.calls) == 1
        assert written == full.put(key, value)
        store.records.update(written)
        assert cached.root() == full.root() == index.root_of({**entries, key: value})
        entries[key] = value
    # a batch of an append: one round trip too, and a proof then needs none
    cached = index.Index(fetch=store.fetch)
    store.calls.clear()
    batch = [(index.key_of(f"batch-{i}"), b"b") for i in range(100)]
    assert cached.put_many(batch) == full.put_many(batch)
    assert len(store.calls) == 1
    cached.prove(batch[5][0])
    assert len(store.calls) == 1


def test_a_path_deeper_than_one_fetch_takes_one_more_per_window() -> None:
    # two keys that part only at their last bit: the path runs the whole 256 levels
    a, b = bytes(32), bytes(31) + b"\x01"
    full = index.Index()
    full.put_many([(a, b"a"), (b, b"b")])
    store = Store(dict(full.nodes))
    cached = index.Index(fetch=store.fetch)
    assert cached.prove(b) == full.prove(b)
    assert len(store.calls) == -(-257 // index.FETCH_LEVELS)
    assert all(cached.known(i) for i in index.path_ids(b, 0, 257))
    store.calls.clear()
    cached.get(a)
    assert store.calls == []  # its path and siblings came with b's


def test_path_ids_are_the_path_and_its_siblings() -> None:
    key = bytes([0b10100000]) + bytes(31)
    assert index.path_ids(key, 0, 4) == [(0, 0), (1, 1), (1, 0), (2, 2), (2, 3), (3, 5), (3, 4)]
    assert index.path_ids(key, 256, 300)[-1] == (256, int.from_bytes(key, "big") ^ 1)


def test_a_store_record_that_is_not_a_record_is_refused() -> None:
    cached = index.Index(fetch=lambda ids: {(0, 0): b"seventeen bytes.."})
    with pytest.raises(LedgerInvalid, match="not a record"):
        cached.root()


def test_the_cache_is_only_a_cache() -> None:
    cached = index.Index(fetch=lambda ids: {})
    with pytest.raises(ValueError):
        list(cached)
    with pytest.raises(ValueError):
        index.Index().forget()
