"""`modelchain sign` and `verify --signature` on the command line: exit codes, the one-line
errors, `--json`, and a bundle checked together with a ledger. The format's rules themselves are
in unit/claims/test_bundle.py, whose helpers these tests share."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok, make_ledger, snapshot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from unit.claims.test_bundle import _add, _edit, _set, make_model, payload_of, resign, write_keys

from modelchain.claims import bundle


@pytest.fixture
def cli_model(workdir: Path) -> Path:
    return make_model(workdir / "m")


@pytest.fixture
def pem(workdir: Path) -> tuple[Path, Path]:
    _, private, public = write_keys(workdir / "keys", "p384")
    return private, public


def test_cli_sign_and_verify(run, cli_model, pem):
    private, public = pem
    out = assert_ok(run("sign", "m", "--private-key", private, "--json"))
    report = json.loads(out.stdout)
    assert report["signature"] == "model.sig" and report["files"] == 4
    assert report["key_type"] == "p384"
    out = assert_ok(run("verify", "m", "--signature", "model.sig", "--public-key", public))
    assert out.stdout.startswith("OK: m matches signature model.sig")
    _edit(cli_model)
    result = run("verify", "m", "--signature", "model.sig", "--public-key", public, "--json")
    assert_clean_error(result, 1, "changed file sub/b.txt")
    assert json.loads(result.stdout)["changed"] == ["sub/b.txt"]


def test_cli_key_ring_names_for_both_keys(run, cli_model):
    """A key made with `modelchain key generate` signs and verifies by name; an ID does not
    serve as a public key (it cannot check a signature)."""
    assert_ok(run("key", "generate", "ci-signer", "--type", "p256"))
    assert_ok(run("sign", "m", "--private-key", "ci-signer"))
    out = assert_ok(run("verify", "m", "--signature", "model.sig", "--public-key", "ci-signer"))
    assert "(4 files," in out.stdout
    result = run("verify", "m", "--signature", "model.sig", "--public-key", "0123abcd" * 8)
    assert_clean_error(result, 2, "key ID", "public key file or key name")


def test_cli_password_protected_key(run, cli_model, workdir):
    _, private, public = write_keys(workdir / "keys", "p256", password=b"s3cret")
    old = workdir / "model.sig"
    old.write_text("previous signature")
    before = snapshot(old)
    assert_clean_error(run("sign", "m", "--private-key", private), 2, "encrypted", "password")
    (workdir / "wrong.txt").write_text("nope\n")
    result = run("sign", "m", "--private-key", private, "--password-file", "wrong.txt")
    assert_clean_error(result, 2, "wrong password")
    assert snapshot(old) == before  # a failed sign leaves the old signature alone
    (workdir / "pw.txt").write_text("s3cret\n")
    assert_ok(run("sign", "m", "--private-key", private, "--password-file", "pw.txt"))
    assert_ok(run("verify", "m", "--signature", "model.sig", "--public-key", public))


def test_cli_unsupported_key_types(run, cli_model, workdir):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (workdir / "rsa.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert_clean_error(run("sign", "m", "--private-key", "rsa.pem"), 2, "unsupported key type")
    (workdir / "rsa.pub").write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (workdir / "model.sig").write_text("{}")
    result = run("verify", "m", "--signature", "model.sig", "--public-key", "rsa.pub")
    assert_clean_error(result, 2, "unsupported key type")


def test_cli_bad_bundles(run, cli_model, pem, workdir):
    private, public = pem
    assert_ok(run("sign", "m", "--private-key", private))
    good = (workdir / "model.sig").read_bytes()
    cases = {
        "truncated.sig": (good[: len(good) // 2], 2, "not valid JSON"),
        "text.sig": (b"hello", 2, "not valid JSON"),
        "empty.sig": (b"", 2, "empty"),
    }
    for name, (content, code, needle) in cases.items():
        (workdir / name).write_bytes(content)
        result = run("verify", "m", "--signature", name, "--public-key", public)
        assert_clean_error(result, code, name, needle)
    assert_clean_error(
        run("verify", "m", "--signature", "missing.sig", "--public-key", public),
        2,
        "no such signature file",
    )
    other = make_model(workdir / "other", {"x": b"x"})
    assert_ok(run("sign", other, "--private-key", private, "--signature", "other.sig"))
    assert_clean_error(
        run("verify", "m", "--signature", "other.sig", "--public-key", public),
        1,
        "does not match the signature",
    )
    wrong = write_keys(workdir / "wrong", "p384")[2]
    assert_clean_error(
        run("verify", "m", "--signature", "model.sig", "--public-key", wrong), 1, "key mismatch"
    )


def test_cli_unknown_predicate_and_payload_type(run, cli_model, workdir):
    key, private, public = write_keys(workdir / "keys", "ed25519")
    assert_ok(run("sign", "m", "--private-key", private))
    sig = workdir / "model.sig"
    resign(sig, key, _set(payload_of(sig), "predicateType", "https://slsa.dev/provenance/v1"))
    result = run("verify", "m", "--signature", sig, "--public-key", public)
    assert_clean_error(result, 2, "unknown predicateType")
    sig.write_bytes(bundle.make_bundle(b"{}", key, payload_type="application/json"))
    result = run("verify", "m", "--signature", sig, "--public-key", public)
    assert_clean_error(result, 2, "unknown payloadType")


def test_cli_usage_errors(run, cli_model, pem, workdir):
    private, public = pem
    cases = [
        (("sign", "m", "--private-key", private, "--files", "--shard-size", "1M"), "exclude"),
        (("sign", "m", "--private-key", private, "--shard-size", "lots"), "invalid size"),
        (("sign", "m", "--private-key", private, "--signature", "m"), "is a directory"),
        (("sign", "nope", "--private-key", private), "no such file"),
        (("sign", "m", "--private-key", "nokey.pem"), "no such key file"),
        (("verify", "m", "--signature", "model.sig"), "go together"),
        (("verify", "m", "--public-key", public), "go together"),
    ]
    for args, needle in cases:
        assert_clean_error(run(*args), 2, needle)
    assert not (workdir / "model.sig").exists()


def test_cli_verify_bundle_and_ledger(run, cli_model, pem, workdir):
    private, public = pem
    assert_ok(run("sign", "m", "--private-key", private))
    ledger = workdir / "ledger.db"
    shutil.rmtree(cli_model / ".git")  # the ledger's default ignore is .git at any depth
    make_ledger(ledger, cli_model)
    args = ("verify", "m", "--signature", "model.sig", "--public-key", public)
    report = json.loads(assert_ok(run("--ledger", ledger, *args, "--json")).stdout)
    assert report["signature"]["verified"] is True and report["name"] == "m"
    out = assert_ok(run(*args, "--ledger", ledger)).stdout
    assert "matches signature" in out and "by the signed index and checkpoint" in out
    _add(cli_model)
    assert_clean_error(run(*args, "--ledger", ledger), 1, "extra file sub/new.py")
    # an ignored path is left out of the bundle check; the ledger still sees it
    os.rename(cli_model / "sub" / "new.py", cli_model / "notes.txt")
    result = run(*args, "--ignore-paths", "m/notes.txt", "--ledger", ledger)
    assert "matches signature" in result.stdout
    assert_clean_error(result, 1, "notes.txt")
