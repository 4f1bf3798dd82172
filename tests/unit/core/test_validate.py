"""The one registration validator (`Ledger.prepare`, modelchain.core.validate) and the one
timestamp form.

- whatever `prepare` accepts round-trips: it appends, reads back with `Block.from_raw`,
  audits valid, and is found by name (a property test over names and metadata);
- what no store or reader could carry back is refused before anything is appended: deep
  nesting, integers beyond +-(2**53 - 1), NUL, over-long names, out-of-range sizes;
- a batch with one bad entry appends nothing;
- a whole-second `time.time()` is hashed and stored in one form, so the ledger audits valid,
  and a ledger written before (hashed over `1796158393.0`) still audits valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain import Ledger
from modelchain.core.errors import InputError, UsageError
from modelchain.core.validate import MAX_DEPTH, MAX_INT, MAX_NAME
from modelchain.log.block import Block, canonical_timestamp, seed_hash

DIGEST = hashlib.sha256(b"model").hexdigest()


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep (the outermost counts as 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def data(tmp_path: Path) -> Path:
    """The ledgers' directory (never the home's: the home must not sit beside a ledger)."""
    path = tmp_path / "data"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger.open(data(tmp_path) / "l.db", home=tmp_path / "home", create=True) as opened:
        opened.init()
        yield opened


# -- refused before anything is appended --------------------------------------------------


BAD_METADATA = [
    pytest.param(nested(1000), "nested more than", id="1000-deep"),
    pytest.param(nested(MAX_DEPTH + 1), "nested more than", id="one-too-deep"),
    pytest.param(
        {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        "nested more than",
        id="deep-array",
    ),
    pytest.param({"n": 2**53}, "outside", id="2^53"),
    pytest.param({"n": -(2**53)}, "outside", id="-2^53"),
    pytest.param({"n": 2**64 + 1}, "outside", id="beyond-64-bits"),
    pytest.param({"n": [1, {"m": 10**30}]}, "outside", id="nested-big-int"),
    pytest.param({"s": "a\x00b"}, "NUL", id="nul-value"),
    pytest.param({"a\x00": "x"}, "NUL", id="nul-key"),
    pytest.param({"deep": {"s": ["\x00"]}}, "NUL", id="nul-nested"),
    pytest.param({"f": math.nan}, "finite", id="nan"),
    pytest.param({"f": math.inf}, "finite", id="inf"),
    pytest.param({"f": 4.87735241517227e16}, "read back", id="integral-float-beyond-2^53"),
    pytest.param({"s": "\ud800"}, "Unicode", id="lone-surrogate"),
    pytest.param({"b": b"bytes"}, "not a JSON value", id="bytes"),
    pytest.param({1: "x"}, "keys must be strings", id="int-key"),
]


@pytest.mark.parametrize(("metadata", "why"), BAD_METADATA)
def test_unreadable_metadata_is_refused_and_nothing_appended(ledger, metadata, why) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        ledger.append(name="m", model_hash=DIGEST, metadata=metadata)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)
    assert len(ledger) == 0
    ledger.audit()


def test_the_limits_themselves_are_accepted(ledger) -> None:
    block = ledger.append(
        name="n" * MAX_NAME,
        model_hash=DIGEST,
        size=MAX_INT,
        metadata={"deep": nested(MAX_DEPTH - 1), "max": MAX_INT, "min": -MAX_INT},
    )
    assert ledger.block(0) == block
    assert ledger.registration("n" * MAX_NAME).metadata["max"] == MAX_INT
    ledger.audit()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "non-empty"),
        ("n" * (MAX_NAME + 1), f"at most {MAX_NAME}"),
        ("a\x00b", "NUL"),
        ("\udc80", "Unicode"),
        (7, "non-empty string"),
    ],
)
def test_bad_names_are_refused(ledger, name, why) -> None:
    with pytest.raises(UsageError, match=why):
        ledger.append(name=name, model_hash=DIGEST)
    assert len(ledger) == 0


@pytest.mark.parametrize("size", [-1, 2**53, 2**64, True, 1.0])
def test_sizes_out_of_range_are_refused(ledger, size) -> None:
    with pytest.raises(UsageError, match="size"):
        ledger.append(name="m", model_hash=DIGEST, size=size)
    assert len(ledger) == 0


def test_deep_provenance_is_refused(ledger) -> None:
    with pytest.raises(UsageError, match="nested more than"):
        ledger.append(
            name="m",
            model_hash=DIGEST,
            provenance={"predicateType": "https://example.com/x", "predicate": nested(40)},
        )
    assert len(ledger) == 0


def test_a_batch_with_one_bad_entry_appends_nothing(ledger) -> None:
    good = ledger.prepare(name="good", model_hash=DIGEST)
    with pytest.raises(UsageError):
        entries = [good]
        for metadata in ({"ok": 1}, {"bad": 2**60}):
            entries.append(ledger.prepare(name="m", model_hash=DIGEST, metadata=metadata))
        ledger.append_many(entries)
    assert len(ledger) == 0
    ledger.audit()


# -- whatever prepare accepts round-trips -------------------------------------------------

_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=MAX_NAME,
)
_scalars = st.none() | st.booleans() | st.integers(-MAX_INT, MAX_INT)
_scalars |= st.floats(allow_nan=False, allow_infinity=False)
_scalars |= st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5).filter(lambda k: "\x00" not in k), inner, max_size=3)
    ),
    max_leaves=12,
)
_metadata = st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), _json)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=_names, metadata=_metadata, size=st.integers(0, MAX_INT))
def test_whatever_prepare_accepts_round_trips(ledger, name, metadata, size) -> None:
    try:
        entry = ledger.prepare(name=name, model_hash=DIGEST, size=size, metadata=metadata)
    except UsageError:
        return  # refused: fine, as long as nothing accepted is unreadable
    [block] = ledger.append_many([entry])
    stored = next(iter(ledger.store.blocks(block.index, block.index + 1)))
    again = Block.from_raw(stored.raw, stored.position)
    assert again == block
    assert stored.data == block.leaf_data()
    assert ledger.store.find(name=name)[-1] == block.index
    assert ledger.registration(name) == block


def test_the_round_trip_ledger_audits(ledger) -> None:
    """Registrations like the property test's, in one ledger, audit valid together."""
    for name in ("a", "ä/b c", "x" * MAX_NAME, "\u2028\r\n\t"):
        ledger.append(name=name, model_hash=DIGEST, metadata={"k": [1.5, -MAX_INT, None, 1e300]})
    ledger.audit()


# -- one timestamp form ------------------------------------------------------------------


@given(st.floats(min_value=0, max_value=4e9) | st.integers(0, 4 * 10**9).map(float))
def test_a_timestamp_reads_back_as_what_was_hashed(t: float) -> None:
    from modelchain.core.canonical import canonical_json

    form = canonical_timestamp(t)
    assert form == t
    read_back = json.loads(canonical_json({"t": form}))["t"]
    assert str(read_back) == str(form)
    assert seed_hash(0, read_back, DIGEST, "0" * 64) == seed_hash(0, form, DIGEST, "0" * 64)


@pytest.mark.parametrize("backend", ["l.db", "l.json"])
@pytest.mark.parametrize("now", [1796158393.0, 1796158393.25])
def test_integral_time_still_audits_valid(tmp_path, monkeypatch, backend, now) -> None:
    import time  # the clock itself, whichever module reads it

    monkeypatch.setattr(time, "time", lambda: now)
    location = data(tmp_path) / backend
    with Ledger.open(location, home=tmp_path / "home", create=True) as ledger:
        for i in range(3):
            ledger.append(name="m", model_hash=hashlib.sha256(bytes([i])).hexdigest())
    with Ledger.open(location, home=tmp_path / "home") as ledger:
        ledger.audit()
        assert [b.timestamp for b in ledger.blocks()] == [now] * 3
        assert str(ledger.block(0).timestamp) == (
            "1796158393" if now.is_integer() else "1796158393.25"
        )


def test_a_ledger_hashed_over_the_float_form_still_audits(tmp_path: Path) -> None:
    """Ledgers written before the fix hashed `1796158393.0` and stored `1796158393`."""
    from modelchain.core import merkle
    from modelchain.core.canonical import canonical_json
    from modelchain.core.note import Checkpoint, sign_checkpoint

    location = data(tmp_path) / "old.db"
    home = tmp_path / "home"
    with Ledger.open(location, home=home, create=True) as ledger:
        ledger.append(name="m", model_hash=DIGEST)
    conn = sqlite3.connect(location)
    (body,) = conn.execute("SELECT body FROM blocks WHERE idx = 0").fetchone()
    raw = json.loads(body)
    raw["timestamp"] = 1796158393
    raw["current_hash"] = seed_hash(0, 1796158393.0, DIGEST, "0" * 64)
    leaf_data = canonical_json(raw)
    leaf = merkle.leaf_hash(leaf_data)
    (origin,) = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    from modelchain.log.home import Home

    signer = Home(home).operator_signer(create=False).with_name(origin)
    note = sign_checkpoint(Checkpoint(origin, 1, leaf), signer)
    conn.execute("UPDATE blocks SET body = ? WHERE idx = 0", (leaf_data.decode(),))
    conn.execute("UPDATE nodes SET hash = ? WHERE level = 0 AND idx = 0", (leaf,))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (note,))
    conn.commit()
    conn.close()
    with Ledger.open(location, home=tmp_path / "fresh-home") as ledger:
        key = Home(home).operator_signer(create=False).with_name(origin).verifier()
        report = ledger.audit(keys=[key])
        assert report.size == 1
        assert ledger.block(0).timestamp == 1796158393


def test_a_changed_timestamp_is_still_caught(tmp_path: Path) -> None:
    """Accepting both spellings of one whole second accepts no other value."""
    block = Block(
        index=0,
        timestamp=1796158394,
        model_hash=DIGEST,
        previous_hash="0" * 64,
        current_hash=seed_hash(0, 1796158393.0, DIGEST, "0" * 64),
        name="m",
        version=1,
        kind="file",
        size=0,
    )
    import dataclasses

    from modelchain.log.block import chain_hash_matches

    assert not chain_hash_matches(block)
    assert chain_hash_matches(dataclasses.replace(block, timestamp=1796158393))


def test_a_block_over_the_bound_the_remote_client_accepts_is_refused(tmp_path: Path) -> None:
    """What a ledger accepts, a remote client must accept too: the block bound is one
    number for both (a manifest of many files can reach it without any metadata)."""
    from modelchain.core import validate
    from modelchain.core.errors import UsageError
    from modelchain.fs.digest import Manifest, ManifestEntry
    from modelchain.ledgers import Ledger
    from modelchain.ledgers import client as http
    from modelchain.log.home import Home

    assert http.MAX_BLOCK == validate.MAX_BLOCK
    assert http.MAX_PAGE >= http.MAX_ENTRY
    files = [
        ManifestEntry(path=f"shard-{i:07d}.bin", sha256="ab" * 32, size=1)
        for i in range(validate.MAX_BLOCK // 80)
    ]
    manifest = Manifest.from_entries(files)
    ledger_path, home = tmp_path / "data" / "l.db", Home(tmp_path / "home")
    with Ledger.open(ledger_path, home=home, create=True) as ledger:
        with pytest.raises(UsageError, match="at most 16777216 are accepted"):
            ledger.prepare(
                name="big", model_hash=manifest.digest, kind="directory", manifest=manifest
            )
        assert len(ledger) == 0


# -- the one validator, as a function: the same rules and messages as `Ledger.prepare` ----


def _fields(**changes: Any) -> dict[str, Any]:
    return {"name": "m", "model_hash": DIGEST, "kind": "file", "size": 0, **changes}


SAME_AS_PREPARE = [
    pytest.param({"name": "n" * (MAX_NAME + 1)}, id="long-name"),
    pytest.param({"name": ""}, id="empty-name"),
    pytest.param({"name": "a\x00b"}, id="nul-name"),
    pytest.param({"model_hash": DIGEST.upper()}, id="upper-hash"),
    pytest.param({"model_hash": 5}, id="hash-not-a-string"),
    pytest.param({"kind": "dir"}, id="kind"),
    pytest.param({"size": -1}, id="negative-size"),
    pytest.param({"size": 2**53}, id="size-2^53"),
    pytest.param({"size": True}, id="size-bool"),
    pytest.param({"metadata": [1]}, id="metadata-not-an-object"),
    pytest.param({"metadata": nested(MAX_DEPTH + 1)}, id="metadata-too-deep"),
    pytest.param({"metadata": {"n": 2**60}}, id="metadata-big-int"),
    pytest.param({"metadata": {"s": "\x00"}}, id="metadata-nul"),
    pytest.param({"metadata": {"blob": "a" * (8 << 20)}}, id="metadata-bytes"),
    pytest.param({"kind": "directory"}, id="directory-without-manifest"),
]


@pytest.mark.parametrize("changes", SAME_AS_PREPARE)
def test_check_registration_refuses_as_prepare_does(ledger, changes) -> None:
    from modelchain.core.validate import check_registration

    fields = _fields(**changes)
    with pytest.raises(UsageError) as by_function:
        check_registration(fields)
    with pytest.raises(UsageError) as by_prepare:
        ledger.prepare(**fields)
    assert str(by_function.value) == str(by_prepare.value)
    assert "\n" not in str(by_function.value)
    assert len(ledger) == 0


def test_check_registration_accepts_the_limits() -> None:
    from modelchain.core.validate import MAX_SIGNATURES, check_registration

    check_registration(_fields(name="n" * MAX_NAME, size=MAX_INT))
    check_registration(_fields(metadata={"deep": nested(MAX_DEPTH - 1), "n": -MAX_INT}))
    sig = {"keyid": "k", "key_type": "ed25519", "public_key": "p", "sig": "s"}
    check_registration(_fields(signatures=[sig] * MAX_SIGNATURES))
    manifest = [{"path": "a", "size": 1, "sha256": DIGEST}]
    check_registration(_fields(kind="directory", manifest=manifest, manifest_digest=DIGEST, size=1))


@pytest.mark.parametrize(
    ("changes", "error", "why"),
    [
        pytest.param({"signatures": [{}] * 17}, UsageError, "at most 16 signatures", id="17-sigs"),
        pytest.param({"signatures": "sig"}, InputError, "signatures", id="sigs-not-a-list"),
        pytest.param({"signatures": ["x"]}, InputError, "signatures[0]", id="sig-not-an-object"),
        pytest.param({"provenance": [1]}, InputError, "provenance", id="provenance-not-object"),
        pytest.param(
            {"provenance": {"predicateType": "x", "predicate": nested(40)}},
            UsageError,
            "nested more than",
            id="provenance-too-deep",
        ),
        pytest.param(
            {"kind": "directory", "manifest": [], "manifest_digest": "0" * 64},
            UsageError,
            "does not hash to model_hash",
            id="manifest-digest",
        ),
        pytest.param({"manifest": []}, UsageError, "has no manifest", id="file-with-manifest"),
        pytest.param({"owner": "me"}, UsageError, "unknown registration field", id="unknown"),
        pytest.param(
            {
                "kind": "directory",
                "manifest": [{"path": "f" * 9, "size": 1, "sha256": DIGEST}] * 200_000,
                "manifest_digest": DIGEST,
            },
            UsageError,
            "at most 16777216 are accepted",
            id="block-size",
        ),
    ],
)
def test_check_registration_refuses(changes, error, why) -> None:
    from modelchain.core.validate import check_registration

    with pytest.raises(error, match=re.escape(why)) as caught:
        check_registration(_fields(**changes))
    assert "\n" not in str(caught.value)


def test_check_registration_bounds_the_block_as_prepare_does(ledger) -> None:
    """The same byte count in the message: the bound is computed over the same block."""
    from modelchain.core.validate import MAX_BLOCK, check_registration
    from modelchain.fs.digest import Manifest, ManifestEntry, manifest_to_json

    files = [
        ManifestEntry(path=f"shard-{i:07d}.bin", sha256="ab" * 32, size=1)
        for i in range(MAX_BLOCK // 80)
    ]
    manifest = Manifest.from_entries(files)
    fields = _fields(
        name="big",
        kind="directory",
        size=manifest.size,
        manifest=manifest_to_json(manifest),
        manifest_digest=manifest.digest,
        model_hash=manifest.digest,
        metadata={"team": "x"},
    )
    with pytest.raises(UsageError) as by_function:
        check_registration(fields)
    with pytest.raises(UsageError) as by_prepare:
        ledger.prepare(
            name="big",
            model_hash=manifest.digest,
            kind="directory",
            size=manifest.size,
            manifest=manifest,
            metadata={"team": "x"},
        )
    assert str(by_function.value) == str(by_prepare.value)


def test_a_model_hash_is_checked_as_prepare_checked_it() -> None:
    from modelchain.core.canonical import is_sha256_hex
    from modelchain.core.validate import check_model_hash

    class Text(str):
        pass

    assert check_model_hash(Text(DIGEST)) == DIGEST  # any str, as `isinstance` took it
    for bad in (DIGEST + "\n", DIGEST[:-1], DIGEST.upper(), b"a" * 64, None):
        assert not is_sha256_hex(bad)
        with pytest.raises(UsageError, match="lowercase hex SHA-256"):
            check_model_hash(bad)
