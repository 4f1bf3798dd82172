"""Golden files: the bytes of each format modelchain writes, fixed before any refactoring.

A block's canonical encoding, a registration claim and its signature, a checkpoint note, a
directory digest and OpenSSF model-signing bundles (Ed25519, deterministic; ECDSA P-256,
randomised, so checked by verification and by its statement). A change here is a format
change: regenerate with `python tests/golden/make_golden.py` only when it is meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelchain.claims import keys
from modelchain.claims.bundle import verify_model
from modelchain.core import note
from modelchain.log.block import Block, chain_hash_matches
from tests.golden import artifacts

GOLDEN = Path(__file__).resolve().parent / "golden"
REBUILT = artifacts.build_all(GOLDEN)


@pytest.mark.parametrize("name", sorted(REBUILT))
def test_format_is_unchanged(name: str) -> None:
    assert REBUILT[name] == (GOLDEN / name).read_bytes(), f"{name} changed"


def test_golden_block_reads_back_and_is_valid() -> None:
    import json

    block = Block.from_raw(json.loads((GOLDEN / "block.json").read_bytes()), 3)
    assert block.leaf_data() == (GOLDEN / "block.json").read_bytes()
    assert chain_hash_matches(block)
    assert [problem for _, problem in block.signature_problems(artifacts.ORIGIN)] == [None]
    # the same signature does not hold for another log: the binding is in the signed bytes
    assert block.signature_problems("other.example/log")[0][1] is not None


def test_golden_checkpoint_opens_with_the_operator_key() -> None:
    signer = artifacts.operator(GOLDEN)
    opened = note.open_note((GOLDEN / "checkpoint.note").read_text(), [signer.verifier()])
    checkpoint = note.Checkpoint.parse(opened.text)
    assert (checkpoint.origin, checkpoint.size) == (artifacts.ORIGIN, 7)


@pytest.mark.parametrize(
    ("bundle", "key"),
    [("oms-ed25519.sig", "registrant-ed25519"), ("oms-p256.sig", "registrant-p256")],
)
def test_golden_bundles_verify_and_carry_todays_statement(
    tmp_path: Path, bundle: str, key: str
) -> None:
    model = artifacts.model_dir(tmp_path)
    public = keys.parse_private_key((GOLDEN / f"{key}.pem").read_bytes()).public
    result = verify_model(str(model), str(GOLDEN / bundle), public)
    assert result.statement is not None
    fresh = tmp_path / "fresh.sig"
    from modelchain.claims.bundle import sign_model

    sign_model(
        str(model),
        keys.parse_private_key((GOLDEN / f"{key}.pem").read_bytes()),
        signature=str(fresh),
    )
    golden_payload = artifacts.statement_payload((GOLDEN / bundle).read_bytes())
    assert artifacts.statement_payload(fresh.read_bytes()) == golden_payload
