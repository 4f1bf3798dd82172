"""`modelchain.use.check`: every check a `verify` asks for, from the library, reading the model
once (the ledger check judges the very bytes the bundle check read)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_ledger

from modelchain import Ledger
from modelchain.claims import keys
from modelchain.claims.bundle import sign_model
from modelchain.core.errors import ModelchainError, ModelMismatch
from modelchain.use import check


@pytest.fixture
def signed(workdir: Path) -> tuple[Path, Path, keys.PublicKey, Path]:
    model = workdir / "model.bin"
    model.write_bytes(b"weights " * 1000)
    ledger = workdir / "ledger.db"
    make_ledger(ledger, model)
    key = keys.generate()
    sig = workdir / "model.sig"
    sign_model(str(model), key, signature=str(sig))
    return model, sig, key.public, ledger


def test_bundle_and_ledger_from_one_read(signed: tuple[Path, Path, keys.PublicKey, Path]) -> None:
    model, sig, public, ledger = signed
    seen = []

    def change_the_file_after_the_bundle_check(bundle: object) -> None:
        seen.append(bundle)
        model.write_bytes(b"something else")

    request = check.Check(str(model), signature=str(sig), public_key=public)
    result = check.check(
        request, lambda: Ledger.open(ledger), on_bundle=change_the_file_after_the_bundle_check
    )
    # the ledger judged the bytes the bundle check read, not a second read of the path
    assert seen and result.verification is not None
    assert result.verification.block.name == "model.bin"
    assert result.as_dict()["signature"]["verified"] is True
    # checked again now, the changed file fails both ways
    with pytest.raises(ModelchainError):
        check.check(request, lambda: Ledger.open(ledger))
    with pytest.raises(ModelMismatch):
        check.check(check.Check(str(model)), lambda: Ledger.open(ledger))


def test_bundle_only_without_a_ledger(signed: tuple[Path, Path, keys.PublicKey, Path]) -> None:
    model, sig, public, _ = signed
    result = check.check(check.Check(str(model), signature=str(sig), public_key=public), None)
    assert result.verification is None and result.bundle is not None
    assert result.as_dict() == result.bundle.as_dict()


def test_ledger_only(signed: tuple[Path, Path, keys.PublicKey, Path]) -> None:
    model, _, _, ledger = signed
    result = check.check(check.Check(str(model)), lambda: Ledger.open(ledger))
    assert result.bundle is None and result.as_dict()["verified"] is True
