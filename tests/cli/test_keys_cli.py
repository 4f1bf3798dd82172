"""`modelchain key` on the command line (generate, list, show) and an encrypted key used by
`register --sign-key`; the key rules themselves are in unit/claims/test_keys.py."""

from __future__ import annotations

import json

from conftest import assert_clean_error, assert_ok


def test_key_commands(run, home):
    out = assert_ok(run("key", "generate", "alice", "--json")).stdout
    alice = json.loads(out)
    assert alice["key_type"] == "ed25519" and alice["verifier_key"].startswith("alice+")
    assert alice["encrypted"] is False
    assert (home / "keys" / "alice.pem").is_file()
    text = assert_ok(run("key", "generate", "ci", "--type", "p256")).stdout
    assert "BEGIN PUBLIC KEY" in text and "key ID" in text

    listed = json.loads(assert_ok(run("key", "list", "--json")).stdout)
    assert [(k["name"], k["key_type"]) for k in listed] == [("alice", "ed25519"), ("ci", "p256")]
    table = assert_ok(run("key", "list")).stdout
    assert alice["keyid"] in table

    pem = assert_ok(run("key", "show", "ci", "--pem")).stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    shown = json.loads(assert_ok(run("key", "show", "alice", "--json")).stdout)
    assert shown["keyid"] == alice["keyid"]


def test_key_command_errors(run, home, tmp_path):
    assert_ok(run("key", "generate", "alice"))
    before = (home / "keys" / "alice.pem").read_bytes()
    assert_clean_error(run("key", "generate", "alice"), 2, "already exists")
    assert (home / "keys" / "alice.pem").read_bytes() == before
    assert_clean_error(run("key", "generate", "../evil"), 2, "invalid key name")
    assert_clean_error(run("key", "show", "nobody"), 2, "no key named")
    missing = tmp_path / "missing.txt"
    assert_clean_error(
        run("key", "generate", "bob", "--password-file", missing), 2, "no such password file"
    )
    assert not (home / "keys" / "bob.pem").exists()
    assert "(no keys" in assert_ok(run("key", "list", MODELCHAIN_HOME=str(tmp_path))).stdout


def test_encrypted_key_from_the_command_line(run, home, tmp_path, workdir, model):
    password = tmp_path / "pass.txt"
    password.write_text("correct horse\n")
    out = json.loads(
        assert_ok(run("key", "generate", "ci", "--password-file", password, "--json")).stdout
    )
    assert out["encrypted"] is True
    assert b"ENCRYPTED" in (home / "keys" / "ci.pem").read_bytes()
    ledger = workdir / "l.db"
    result = run("--ledger", ledger, "register", model, "--sign-key", "ci")
    assert_clean_error(result, 2, "encrypted", "--password-file")
    assert not ledger.exists()  # refused before anything was written
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    result = run(
        "--ledger", ledger, "register", model, "--sign-key", "ci", "--password-file", wrong
    )
    assert_clean_error(result, 2, "wrong password")
    assert_ok(
        run("--ledger", ledger, "register", model, "--sign-key", "ci", "--password-file", password)
    )
    assert_ok(
        run(
            "--ledger",
            ledger,
            "register",
            model,
            "--sign-key",
            "ci",
            MODELCHAIN_KEY_PASSWORD="correct horse",
        )
    )
