"""Signed registrations: `register --sign-key`, `verify --signer`, what a signature covers
(the registrant's claim, wrapped in DSSE), and audit refusing a block whose signature fails."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil

import pytest
from conftest import MODEL_FILE, assert_clean_error, assert_ok
from hypothesis import given, settings
from hypothesis import strategies as st

import modelchain
import modelchain.fs.digest
from modelchain.claims import claim as reg
from modelchain.claims import keys
from modelchain.claims.claim import PAYLOAD_TYPE, RegistrationSignature, pae, signed_message
from modelchain.core.errors import LedgerInvalid, SignatureError
from modelchain.ledgers import Ledger


@pytest.fixture
def alice(home):
    return keys.KeyRing(home).generate("alice")


@pytest.fixture
def bob(home):
    return keys.KeyRing(home).generate("bob", "p256")


def test_pae_matches_the_dsse_specification():
    # the example of the DSSE protocol document
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert signed_message({"name": "m"}).startswith(
        b"DSSEv1 %d %s " % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode())
    )


def test_signed_registration_end_to_end(run, model, alice, bob, workdir):
    result = assert_ok(run("register", model, "--sign-key", "alice", "--sign-key", "bob"))
    assert f"Signed by key {alice.public.key_id[:16]} (ed25519)" in result.stdout
    assert f"Signed by key {bob.public.key_id[:16]} (p256)" in result.stdout

    bob_pub = workdir / "bob.pub"
    bob_pub.write_bytes(bob.public.pem())
    vkey = alice.public.verifier_string("alice")
    for signer in ("alice", alice.public.key_id[:32], vkey, bob_pub, alice.public.key_id):
        out = assert_ok(run("verify", model, "--signer", signer)).stdout
        assert "Registration signed by:" in out
    both = json.loads(
        assert_ok(run("verify", model, "--signer", "alice", "--signer", "bob", "--json")).stdout
    )
    assert both["signed_by"] == [alice.public.key_id, bob.public.key_id]

    shown = json.loads(assert_ok(run("show", MODEL_FILE, "--json")).stdout)
    assert [(s["key_name"], s["valid"]) for s in shown["signatures"]] == [
        ("alice", True),
        ("bob", True),
    ]
    text = assert_ok(run("show", MODEL_FILE)).stdout
    assert f"valid    ed25519  {alice.public.key_id}  (alice)" in text


def test_verify_signer_refuses_another_key(run, model, alice, home):
    carol = keys.KeyRing(home).generate("carol")
    assert_ok(run("register", model, "--sign-key", "alice"))
    line = assert_clean_error(run("verify", model, "--signer", "carol"), 1, "not signed by key")
    assert carol.public.key_id[:16] in line and alice.public.key_id[:16] in line
    result = run("verify", model, "--signer", "carol", "--json")
    assert result.code == 1 and json.loads(result.stdout)["exit_code"] == 1
    assert_clean_error(run("verify", model, "--signer", "0123456789abcdef" * 2), 1, "not signed")


def test_verify_signer_on_an_unsigned_registration(run, model, alice):
    assert_ok(run("register", model))
    assert_clean_error(
        run("verify", model, "--signer", "alice"), 1, "carries no registration signature"
    )
    assert_ok(run("verify", model))  # without --signer nothing changes


def test_the_newest_version_must_be_the_signed_one(run, model, alice):
    assert_ok(run("register", model, "--sign-key", "alice"))
    model.write_bytes(model.read_bytes() + b"\0")
    assert_ok(run("register", model))  # v2, unsigned
    assert_clean_error(run("verify", model, "--signer", "alice"), 1, "v2", "no registration")


@pytest.mark.parametrize(
    ("signer", "needle"),
    [("abc", "no key named"), ("nobody", "no key named"), ("a+b+c", "verifier")],
)
def test_bad_signer_spec_is_a_usage_error(run, model, alice, signer, needle):
    assert_ok(run("register", model, "--sign-key", "alice"))
    assert_clean_error(run("verify", model, "--signer", signer), 2, needle)


def test_bad_sign_key_registers_nothing(run, model, workdir, tmp_path):
    ledger = workdir / "l.db"
    assert_clean_error(run("--ledger", ledger, "register", model, "--sign-key", "nobody"), 2)
    not_a_key = workdir / "x.pem"
    not_a_key.write_text("hello")
    assert_clean_error(
        run("--ledger", ledger, "register", model, "--sign-key", not_a_key), 2, "not a PEM"
    )
    assert not ledger.exists()


def test_a_signature_covers_the_bound_claim_not_the_ledgers_fields(home, workdir, model, alice):
    """A registrant signature names the log and the version it makes, and nothing else the
    ledger assigns (index, timestamp, hashes): it can be made before a server appends it,
    at whatever index, and is good for exactly that one registration."""
    key = keys.KeyRing(home).private("alice")
    digest = modelchain.fs.digest.digest_path(model)
    fields = dict(name="m", model_hash=digest.sha256, kind="file", size=digest.size)
    with Ledger.open(workdir / "two.db", create=True) as two:
        two.init("example.com/two")
        two.register(model)  # shifts the index
        claim = reg.claim(**fields, metadata={"team": "a"}, log="example.com/two", version=1)
        (signature,) = reg.sign([key], signed_message(claim), reg.BOUND_PAYLOAD_TYPE)
        block = two.append(**fields, metadata={"team": "a"}, signatures=[signature])
        assert block.index == 1 and block.version == 1
        two.audit()
        # the same signature again is a replay; one over another claim does not verify
        with pytest.raises(SignatureError, match="already holds"):
            two.append(**fields, metadata={"team": "a"}, signatures=[signature])
        v2 = reg.claim(**fields, metadata={"team": "a"}, log="example.com/two", version=2)
        (other,) = reg.sign([key], signed_message(v2), reg.BOUND_PAYLOAD_TYPE)
        with pytest.raises(SignatureError, match="does not verify"):
            two.append(**fields, metadata={"team": "b"}, signatures=[other])
        assert len(two) == 2  # nothing was written
    assert [p for _, p in block.signature_problems("example.com/two")] == [None]
    assert block.signature_problems("example.com/one")[0][1] is not None


@settings(max_examples=25, deadline=None)
@given(
    metadata=st.dictionaries(st.text(max_size=8), st.integers(-1000, 1000) | st.text(max_size=8)),
    other=st.text(min_size=1, max_size=8),
)
def test_changing_any_claimed_field_breaks_the_signature(metadata, other):
    key = _KEY
    fields = dict(name="m", model_hash="a" * 64, kind="file", size=3)
    message = signed_message(reg.claim(**fields, metadata=metadata))
    (signature,) = reg.sign([key], message)
    assert signature.problem(message) is None
    changed = dict(metadata)
    changed[other] = "changed" if changed.get(other) != "changed" else "again"
    for variant in (
        reg.claim(**fields, metadata=changed),
        reg.claim(**{**fields, "size": 4}, metadata=metadata),
        reg.claim(**{**fields, "name": "n"}, metadata=metadata),
        reg.claim(**fields, metadata=metadata, provenance={"predicateType": "x"}),
    ):
        assert signature.problem(signed_message(variant)) is not None


_KEY = keys.generate("ed25519")


def test_audit_refuses_a_block_whose_signature_does_not_verify(home, workdir, model, alice, run):
    """Even inside a correctly signed tree (a buggy or dishonest writer), a registration
    signature that does not verify makes the ledger invalid, naming the block."""
    key = keys.KeyRing(home).private("alice")
    forged = reg.sign([key], b"some other message")
    digest = modelchain.fs.digest.digest_path(model)
    with Ledger.open(workdir / ".modelchain" / "ledger.db", create=True) as ledger:
        for name in (MODEL_FILE, "other"):  # a writer that skips the check `prepare` makes
            entry = ledger.prepare(name=name, model_hash=digest.sha256, size=digest.size)
            ledger.append_many([dataclasses.replace(entry, signatures=forged)])
        with pytest.raises(LedgerInvalid, match=r"block 0 \(iris_model.joblib v1\).*verify"):
            ledger.audit()
    assert_clean_error(run("audit"), 1, "block 0", "does not verify")
    shown = json.loads(assert_ok(run("show", MODEL_FILE, "--json")).stdout)
    assert shown["signatures"][0]["valid"] is False


def test_editing_a_stored_signature_is_caught(run, model, alice, workdir):
    ledger = workdir / "chain.json"
    assert_ok(run("--ledger", ledger, "register", model, "--sign-key", "alice"))
    blocks = json.loads(ledger.read_text())
    sig = base64.b64decode(blocks[0]["signatures"][0]["sig"])
    blocks[0]["signatures"][0]["sig"] = base64.b64encode(bytes([sig[0] ^ 1]) + sig[1:]).decode()
    ledger.write_text(json.dumps(blocks))
    assert_clean_error(run("--ledger", ledger, "verify", model), 1, "block 0")
    assert_clean_error(run("--ledger", ledger, "audit"), 1, "block 0")


@pytest.mark.parametrize(
    ("signatures", "needle"),
    [
        ([], "non-empty array"),
        ({"keyid": "x"}, "non-empty array"),
        ([{"keyid": "0" * 64}], "exactly keyid"),
        ([{"keyid": "XY", "key_type": "ed25519", "public_key": "", "sig": ""}], "keyid"),
        ([{"keyid": "0" * 64, "key_type": "rsa", "public_key": "", "sig": ""}], "key_type"),
        ([{"keyid": "0" * 64, "key_type": "p256", "public_key": 1, "sig": ""}], "strings"),
    ],
)
def test_stored_signatures_are_validated_strictly(signatures, needle):
    raw = {
        "index": 0,
        "timestamp": 1.0,
        "model_hash": "a" * 64,
        "previous_hash": "0" * 64,
        "current_hash": "b" * 64,
        "name": "m",
        "version": 1,
        "kind": "file",
        "size": 1,
        "manifest": None,
        "metadata": {},
        "signatures": signatures,
    }
    with pytest.raises(LedgerInvalid, match=needle):
        modelchain.Block.from_raw(raw, 0)


def test_signature_with_a_mismatched_key_is_reported_not_crashed():
    key = keys.generate("ed25519")
    other = keys.generate("p256")
    message = b"m"
    good = RegistrationSignature.make(key, message)
    wrong_id = RegistrationSignature(other.key_id, "ed25519", good.public_key, good.sig)
    wrong_type = RegistrationSignature(good.keyid, "p256", good.public_key, good.sig)
    not_pem = RegistrationSignature(good.keyid, "ed25519", "hello", good.sig)
    bad_b64 = RegistrationSignature(good.keyid, "ed25519", good.public_key, "!!")
    assert good.problem(message) is None
    for sig, needle in (
        (wrong_id, "keyid does not match"),
        (wrong_type, "key_type"),
        (not_pem, "not a PEM"),
        (bad_b64, "base64"),
    ):
        problem = sig.problem(message)
        assert problem is not None and needle in problem


def test_library_verify_and_load_with_signers(home, workdir, model, alice):
    key = keys.KeyRing(home).private("alice")
    location = workdir / "l.db"
    with Ledger.open(location, create=True) as ledger:
        ledger.register(model, sign_keys=[key])
        assert ledger.verify(model, signers=["alice"]).block.signatures
        assert ledger.verify(model, signers=[key.public]).block.version == 1
    clf = modelchain.load(model, ledger=location, signers=[alice.public.key_id[:32]])
    assert type(clf).__name__ == "LogisticRegression"
    other = keys.generate("ed25519")
    with pytest.raises(SignatureError, match="not signed by key"):
        modelchain.load(model, ledger=location, signers=[other.public])


def test_directory_registrations_are_signed_over_their_manifest(run, workdir, alice, model):
    d = workdir / "llm"
    d.mkdir()
    shutil.copyfile(model, d / "a.joblib")
    (d / "b.txt").write_text("b")
    assert_ok(run("register", d, "--sign-key", "alice"))
    assert_ok(run("verify", d, "--signer", "alice"))
    shown = json.loads(assert_ok(run("show", "llm", "--json")).stdout)
    assert shown["manifest"]["files"] == 2 and shown["signatures"][0]["valid"]
