"""The `modelchain` command as users run it: a subprocess, real files, the default SQLite
ledger (.modelchain/ledger.db) unless a test says otherwise."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
from pathlib import Path

import click
import pytest
import rfc8785
from conftest import (
    MODEL_FILE,
    assert_clean_error,
    assert_ok,
    db,
    make_ledger,
    sha256sum,
    snapshot,
)

import modelchain
from modelchain.cli.commands import cli
from modelchain.core import merkle
from modelchain.core.errors import InvalidProof
from modelchain.core.note import Checkpoint, Signer, sign_checkpoint

DB = Path(".modelchain") / "ledger.db"
VKEY = re.compile(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*")


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def seed_formula(block: dict) -> str:
    text = str(block["index"]) + str(block["timestamp"])
    return hashlib.sha256(
        (text + block["model_hash"] + block["previous_hash"]).encode()
    ).hexdigest()


def parse_checkpoint(note: str) -> tuple[str, int, bytes, list[str]]:
    """C2SP tlog-checkpoint in a signed note: (origin, size, root, signature lines)."""
    assert note.endswith("\n")
    body, sep, sigs = note.partition("\n\n")
    assert sep, note
    origin, size, root, *extensions = body.split("\n")
    # exactly one extension line: the index root (docs/ledger.md), base64 of 32 bytes
    assert len(extensions) == 1, body
    assert re.fullmatch(r"modelchain-index/v1 [A-Za-z0-9+/]{43}=", extensions[0]), body
    return origin, int(size), b64(root), sigs.rstrip("\n").split("\n")


def leaf(block: dict) -> bytes:
    """RFC 9162 leaf hash of a block: SHA-256(0x00 || RFC 8785 JSON of the whole block)."""
    return hashlib.sha256(b"\x00" + rfc8785.dumps(block)).digest()


@pytest.fixture
def ledger(model, workdir):
    """An empty default SQLite ledger (made in-process, which is faster than `init`)."""
    make_ledger(workdir / DB)
    return workdir / DB


# -- init, register, verify ---------------------------------------------------------------


def test_init_creates_ledger_and_private_key(run, workdir, home):
    result = assert_ok(run("init"))
    keys = [line for line in result.stdout.splitlines() if line.startswith("Verifier key: ")]
    assert len(keys) == 1
    vkey = keys[0].removeprefix("Verifier key: ")
    assert VKEY.fullmatch(vkey), vkey
    key = home / "operator.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (workdir / DB).is_file()
    assert not list(workdir.rglob("*.key"))  # the key never lands beside the ledger

    # idempotent: the same log and key the second time, and the same as `checkpoint`
    again = json.loads(assert_ok(run("init", "--json")).stdout)
    assert again["verifier_key"] == vkey and again["size"] == 0
    assert Path(again["home"]) == home
    assert assert_ok(run("checkpoint", "--verifier-key")).stdout.strip() == vkey
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_register_and_verify_a_file(run, ledger, model):
    digest = sha256sum(model)
    result = assert_ok(run("register", MODEL_FILE))
    assert f"Registered {MODEL_FILE} v1 (block 0): sha256 {digest}" in result.stdout
    result = assert_ok(run("verify", MODEL_FILE))
    assert f"matches {MODEL_FILE} v1 (block 0)" in result.stdout
    assert "by the signed index and checkpoint of 1 block" in result.stdout
    result = assert_ok(run("verify", MODEL_FILE, "--full"))  # and with an audit of every block
    assert "Ledger valid: 1 block," in result.stdout


def test_verify_names_the_older_version_that_matched(run, ledger, model):
    v1 = model.read_bytes()
    assert_ok(run("register", MODEL_FILE))
    model.write_bytes(v1 + b"retrained")
    assert_ok(run("register", MODEL_FILE))
    assert_ok(run("verify", MODEL_FILE))

    model.write_bytes(v1)
    assert_clean_error(run("verify", MODEL_FILE), 1, f"{MODEL_FILE} v1", "v2")
    result = run("verify", "--json", MODEL_FILE)
    assert result.code == 1
    out = json.loads(result.stdout)
    assert out["verified"] is False
    assert (out["matched_version"], out["newest_version"]) == (1, 2)
    assert out["sha256"] == sha256sum(model)


def test_verify_a_file_that_was_never_registered(run, ledger, model):
    assert_ok(run("register", MODEL_FILE))
    shutil.copyfile(model, "other.joblib")
    assert_clean_error(run("verify", "other.joblib"), 1, "other.joblib", "not registered")


def test_directory_changes_are_named(run, ledger, workdir):
    d = workdir / "model"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "sub" / "weights.bin").write_bytes(b"\x00" * 1000)
    (d / "tokenizer.json").write_text("[]")
    result = assert_ok(run("register", "model"))
    assert "model v1 (block 0)" in result.stdout and "3 files" in result.stdout
    assert_ok(run("verify", "model"))

    (d / "sub" / "weights.bin").write_bytes(b"\x00" * 999 + b"\x01")
    (d / "extra.py").write_text("import os")
    (d / "tokenizer.json").unlink()
    line = assert_clean_error(run("verify", "model"), 1)
    assert "changed: sub/weights.bin" in line
    assert "added: extra.py" in line
    assert "removed: tokenizer.json" in line
    out = json.loads(run("verify", "model", "--json").stdout)
    assert out["changed"] == ["sub/weights.bin"]
    assert out["added"] == ["extra.py"]
    assert out["removed"] == ["tokenizer.json"]


def test_name_option(run, ledger, model):
    assert "iris v1" in assert_ok(run("register", MODEL_FILE, "--name", "iris")).stdout
    assert "iris v1" in assert_ok(run("verify", MODEL_FILE, "--name", "iris")).stdout
    assert_clean_error(run("verify", MODEL_FILE), 1, "not registered")
    blocks = json.loads(assert_ok(run("log", "--name", "iris", "--json")).stdout)
    assert [b["name"] for b in blocks] == ["iris"]


def test_json_output(run, ledger, model):
    out = json.loads(assert_ok(run("register", MODEL_FILE, "--json", "--meta", "k=v")).stdout)
    assert out["registered"] is True
    block = out["block"]
    for key in ("index", "timestamp", "model_hash", "previous_hash", "current_hash"):
        assert key in block
    assert block["model_hash"] == sha256sum(model)
    assert (block["name"], block["version"], block["kind"]) == (MODEL_FILE, 1, "file")
    assert block["size"] == model.stat().st_size
    assert block["metadata"] == {"k": "v"}
    assert block["current_hash"] == seed_formula(block)

    out = json.loads(assert_ok(run("verify", MODEL_FILE, "--json")).stdout)
    assert out["verified"] is True
    assert (out["name"], out["kind"], out["version"], out["index"]) == (MODEL_FILE, "file", 1, 0)
    assert out["sha256"] == sha256sum(model)
    assert out["ledger"]["valid"] is True and out["ledger"]["size"] == 1

    audit = json.loads(assert_ok(run("audit", "--json")).stdout)
    assert audit["valid"] is True and audit["size"] == 1
    cp = json.loads(assert_ok(run("checkpoint", "--json")).stdout)
    assert (cp["origin"], cp["size"], cp["root_hash"]) == (
        audit["origin"],
        1,
        audit["root_hash"],
    )
    assert json.loads(assert_ok(run("log", "--json")).stdout) == [block]
    out = json.loads(assert_ok(run("hash", MODEL_FILE, "--json")).stdout)
    assert (out["kind"], out["sha256"]) == ("file", sha256sum(model))


def test_log(run, ledger, model, workdir):
    assert assert_ok(run("log")).stdout.strip() == "(no blocks)"
    with modelchain.Ledger.open(ledger) as led:
        for name in ("a", "b", "a"):
            led.register(model, name=name, force=True)
    out = assert_ok(run("log")).stdout.splitlines()
    assert out[0].split() == ["INDEX", "REGISTERED", "KIND", "SIZE", "SHA256", "NAME"]
    assert [line.split()[-2:] for line in out[1:]] == [["a", "v1"], ["b", "v1"], ["a", "v2"]]
    assert all(sha256sum(model)[:16] in line for line in out[1:])
    newest = assert_ok(run("log", "--limit", "1")).stdout.splitlines()
    assert len(newest) == 2 and newest[1].split()[-2:] == ["a", "v2"]


# -- hash ---------------------------------------------------------------------------------


def test_hash_of_a_file_is_sha256sum(run, model):
    result = assert_ok(run("hash", MODEL_FILE))
    assert result.stdout == f"{sha256sum(model)}  {MODEL_FILE}\n"


def test_hash_of_a_directory_is_stable(run, workdir, tmp_path):
    d = workdir / "m"
    (d / "b").mkdir(parents=True)
    (d / "b" / "y.bin").write_bytes(os.urandom(3000))
    (d / "x.txt").write_text("hello")

    def digest(path: Path) -> str:
        out = json.loads(assert_ok(run("hash", path, "--json")).stdout)
        assert out["kind"] == "directory"
        return out["sha256"]

    first = digest(d)
    assert digest(d) == first
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)  # other inode numbers, other mtimes, other location
    os.utime(copy / "x.txt", (0, 0))
    assert digest(copy) == first
    # anyone can recompute it: SHA-256 of the canonical JSON manifest, paths sorted
    manifest = [
        {"path": p, "sha256": sha256sum(d / p), "size": (d / p).stat().st_size}
        for p in ("b/y.bin", "x.txt")
    ]
    assert first == hashlib.sha256(rfc8785.dumps(manifest)).hexdigest()
    text = assert_ok(run("hash", d, "--manifest")).stdout.splitlines()
    assert text == [f"{m['sha256']}  {m['path']}" for m in manifest] + [f"{first}  {d}/"]

    (copy / "x.txt").write_text("hellO")
    assert digest(copy) != first


# -- checkpoints and notes ------------------------------------------------------------------


def test_checkpoint_is_a_c2sp_signed_note(run, ledger, model):
    assert_ok(run("register", MODEL_FILE))
    assert_ok(run("register", MODEL_FILE, "--force"))
    note = assert_ok(run("checkpoint")).stdout
    origin, size, root, sigs = parse_checkpoint(note)
    lines = note.split("\n")
    assert lines[3].startswith("modelchain-index/v1 ") and lines[4] == ""
    assert size == 2 and len(root) == 32
    assert len(sigs) == 1 and sigs[0].startswith(f"— {origin} ")
    raw = b64(sigs[0].split(" ")[2])
    assert len(raw) == 4 + 64  # key ID + Ed25519 signature
    audit = json.loads(assert_ok(run("audit", "--json")).stdout)
    assert (audit["origin"], b64(audit["root_hash"])) == (origin, root)


def test_note_verify_checks_the_checkpoint(run, ledger, model, workdir, tmp_path):
    assert_ok(run("register", MODEL_FILE))
    (workdir / "cp.txt").write_text(assert_ok(run("checkpoint")).stdout)
    vkey = assert_ok(run("checkpoint", "--verifier-key")).stdout.strip()
    origin = parse_checkpoint((workdir / "cp.txt").read_text())[0]
    result = assert_ok(run("note", "verify", "--key", vkey, "cp.txt"))
    assert result.stdout.splitlines()[0] == f"Verified by: {origin}"
    stdin = assert_ok(
        run("note", "verify", "--key", vkey, "-", input=(workdir / "cp.txt").read_text())
    )
    assert stdin.stdout == result.stdout

    # a key of the same name but another secret must not verify it
    other = Signer.generate(origin).verifier().string()
    assert_clean_error(run("note", "verify", "--key", other, "cp.txt"), 1)
    # nor the key of another log
    other_home = tmp_path / "other-home"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_ok(run("init", cwd=elsewhere, MODELCHAIN_HOME=str(other_home)))
    key2 = run("checkpoint", "--verifier-key", cwd=elsewhere, MODELCHAIN_HOME=str(other_home))
    assert_clean_error(run("note", "verify", "--key", key2.stdout.strip(), "cp.txt"), 1)


# -- proofs -------------------------------------------------------------------------------


def test_prove_inclusion(run, ledger, model, workdir):
    make_ledger_extra(workdir, model, 5)
    _, size, root, _ = parse_checkpoint(assert_ok(run("checkpoint")).stdout)
    blocks = json.loads(assert_ok(run("log", "--json")).stdout)
    assert size == len(blocks) == 5
    for index in (0, 3, 4):
        out = json.loads(assert_ok(run("prove", "inclusion", str(index), "--json")).stdout)
        assert (out["index"], out["tree_size"]) == (index, size)
        assert b64(out["root_hash"]) == root
        assert b64(out["leaf_hash"]) == leaf(blocks[index])
        proof = [b64(h) for h in out["proof"]]
        merkle.verify_inclusion(index, size, leaf(blocks[index]), proof, root)
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(index, size, leaf(blocks[(index + 1) % 5]), proof, root)
    text = assert_ok(run("prove", "inclusion", "1")).stdout.splitlines()
    assert text[:2] == ["index 1", f"tree_size {size}"]


def test_prove_consistency(run, ledger, model, workdir):
    make_ledger_extra(workdir, model, 3)
    _, old_size, old_root, _ = parse_checkpoint(assert_ok(run("checkpoint")).stdout)
    make_ledger_extra(workdir, model, 4)
    _, new_size, new_root, _ = parse_checkpoint(assert_ok(run("checkpoint")).stdout)
    assert (old_size, new_size) == (3, 7)
    out = json.loads(assert_ok(run("prove", "consistency", "3", "--json")).stdout)
    assert (out["old_size"], out["new_size"]) == (3, 7)
    assert (b64(out["old_root"]), b64(out["new_root"])) == (old_root, new_root)
    proof = [b64(h) for h in out["proof"]]
    merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(old_size, new_size, new_root, old_root, proof)


def make_ledger_extra(workdir: Path, model: Path, count: int) -> None:
    """Append `count` blocks to the default ledger through the library (fast)."""
    with modelchain.Ledger.open(workdir / DB) as led:
        for i in range(count):
            led.register(model, name=f"m{len(led) + i}")


# -- export / import --------------------------------------------------------------------------


def test_export_import_is_lossless(run, ledger, model, workdir):
    d = workdir / "dir-model"
    d.mkdir()
    (d / "w.bin").write_bytes(b"weights")
    assert_ok(run("register", MODEL_FILE, "--meta", "accuracy=0.97", "--meta", "run=1"))
    assert_ok(run("register", d))
    assert_ok(run("register", MODEL_FILE, "--force"))
    blocks = json.loads(assert_ok(run("log", "--json")).stdout)
    note = assert_ok(run("checkpoint")).stdout

    (workdir / "x").mkdir()
    assert "Copied 3 blocks" in assert_ok(run("export", "x/out.json")).stdout
    assert json.loads((workdir / "x" / "out.json").read_text()) == blocks
    assert_ok(run("--ledger", "x/new.db", "import", "x/out.json"))
    assert_ok(run("--ledger", "x/new.db", "export", "x/back.json"))
    assert_ok(run("--ledger", "x/again.db", "import", "x/back.json"))

    for location in (DB, "x/out.json", "x/new.db", "x/back.json", "x/again.db"):
        with modelchain.Ledger.open(workdir / location) as copy:
            assert copy.checkpoint() == note
    for location in ("x/out.json", "x/new.db", "x/again.db"):
        assert_ok(run("audit", "--ledger", location))
        assert json.loads(assert_ok(run("log", "--json", "--ledger", location)).stdout) == blocks
    assert_ok(run("verify", MODEL_FILE, "--ledger", "x/again.db"))
    assert_ok(run("verify", "dir-model", "--ledger", "x/out.json"))


def test_export_refuses_to_overwrite_a_ledger(run, ledger, model, workdir):
    assert_ok(run("register", MODEL_FILE))
    assert_ok(run("export", "out.json"))
    before = (workdir / "out.json").read_bytes()
    assert_clean_error(run("export", "out.json"), 2, "out.json")
    assert (workdir / "out.json").read_bytes() == before


# -- tampering with the SQLite ledger --------------------------------------------------------


def _edit_body(old: str, new: str, idx: int = 0):
    def edit(path: Path, workdir: Path) -> None:
        with db(path) as conn:
            # SQLite refuses a body that is not JSON (the lookup columns derive from it);
            # a determined attacker rebuilds the table without them
            conn.executescript(
                "CREATE TABLE plain (idx INTEGER PRIMARY KEY, body TEXT NOT NULL);"
                "INSERT INTO plain SELECT idx, body FROM blocks;"
                "DROP TABLE blocks; ALTER TABLE plain RENAME TO blocks;"
            )
            (body,) = conn.execute("SELECT body FROM blocks WHERE idx = ?", (idx,)).fetchone()
            assert body.count(old) == 1, body
            changed = body.replace(old, new)
            assert (
                len(changed) == len(body)
                and sum(a != b for a, b in zip(body, changed, strict=True)) == 1
            )
            conn.execute("UPDATE blocks SET body = ? WHERE idx = ?", (changed, idx))

    return edit


def _delete_last(path: Path, workdir: Path) -> None:
    with db(path) as conn:
        conn.execute("DELETE FROM blocks WHERE idx = (SELECT max(idx) FROM blocks)")


def _reorder(path: Path, workdir: Path) -> None:
    with db(path) as conn:
        conn.execute("UPDATE blocks SET idx = -1 WHERE idx = 0")
        conn.execute("UPDATE blocks SET idx = 0 WHERE idx = 1")
        conn.execute("UPDATE blocks SET idx = 1 WHERE idx = -1")


def _insert(path: Path, workdir: Path) -> None:
    with db(path) as conn:
        conn.execute(  # as a later version: a second "other" v1 is refused by SQLite itself
            "INSERT INTO blocks (idx, body) "
            "SELECT idx + 2, replace(body, '\"version\":1', '\"version\":2') FROM blocks "
            "WHERE idx = 1"
        )


def _recompute(resign: bool):
    """Swap the model, rewrite every block and every Merkle node consistently; optionally
    sign a new checkpoint with a key of the attacker's own."""

    def attack(path: Path, workdir: Path) -> None:
        model = workdir / MODEL_FILE
        model.write_bytes(model.read_bytes() + b"backdoor")
        new_hash = sha256sum(model)
        with db(path) as conn:
            rows = conn.execute("SELECT idx, body FROM blocks ORDER BY idx").fetchall()
            previous, frontier = "0" * 64, merkle.Frontier.empty()
            conn.execute("DELETE FROM nodes")
            for idx, body in rows:
                block = json.loads(body)
                if block["name"] == MODEL_FILE:
                    block["model_hash"] = new_hash
                block["previous_hash"] = previous
                block["current_hash"] = previous = seed_formula(block)
                data = rfc8785.dumps(block)
                conn.execute("UPDATE blocks SET body = ? WHERE idx = ?", (data.decode(), idx))
                conn.executemany(
                    "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
                    frontier.append(merkle.leaf_hash(data)),
                )
            if resign:
                (origin,) = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
                cp = Checkpoint(origin, frontier.size, frontier.root())
                note = sign_checkpoint(cp, Signer.generate(origin))
                conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (note,))

    return attack


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        pytest.param(_edit_body('"size":', '"sizE":'), "", id="body-key-byte"),
        pytest.param(_edit_body('"version":1', '"version":2', idx=1), "", id="body-version"),
        pytest.param(_edit_body('"k":"v"', '"k":"w"'), "", id="body-metadata"),
        pytest.param(_edit_body('"manifest":null', '"manifest":nulL'), "", id="body-not-json"),
        pytest.param(_delete_last, "deleted", id="last-block-deleted"),
        pytest.param(_reorder, "", id="blocks-reordered"),
        pytest.param(_insert, "", id="block-inserted"),
        pytest.param(_recompute(resign=False), "", id="chain-recomputed"),
        pytest.param(_recompute(resign=True), "", id="chain-recomputed-and-resigned"),
    ],
)
def test_tampered_sqlite_ledger_fails_audit_and_verify(run, model, workdir, attack, message):
    with modelchain.Ledger.open(workdir / DB, create=True) as led:
        led.register(model, metadata={"k": "v"})
        led.register(model, name="other")
        led.audit()
    attack(workdir / DB, workdir)
    assert_clean_error(run("audit"), 1, message)
    result = run("verify", MODEL_FILE)
    assert_clean_error(result, 1)
    assert "OK" not in result.stdout


def test_rolled_back_sqlite_ledger_is_detected(run, ledger, model, workdir, tmp_path):
    assert_ok(run("register", MODEL_FILE))
    saved = tmp_path / "old.db"
    shutil.copyfile(workdir / DB, saved)
    old_model = model.read_bytes()
    model.write_bytes(old_model + b"v2")
    assert_ok(run("register", MODEL_FILE))
    assert_ok(run("audit"))

    # the attacker restores the older, validly signed database (and the old model)
    for suffix in ("-wal", "-shm"):
        Path(str(workdir / DB) + suffix).unlink(missing_ok=True)
    shutil.copyfile(saved, workdir / DB)
    model.write_bytes(old_model)
    assert_clean_error(run("audit"), 1, "rolled back")
    assert_clean_error(run("verify", MODEL_FILE), 1, "rolled back")


@pytest.mark.parametrize(("field", "value"), [("version", 7), ("name", "renamed")])
def test_register_never_signs_a_block_that_audit_rejects(run, model, workdir, field, value):
    """The name/version lookup columns are derived by SQLite from the signed body, so they
    cannot be edited apart from it; editing the body itself makes register refuse."""
    with modelchain.Ledger.open(workdir / DB, create=True) as led:
        led.register(model)
        led.register(model, force=True)
    with db(workdir / DB) as conn:
        with pytest.raises(sqlite3.OperationalError, match="generated column"):
            conn.execute(f"UPDATE blocks SET {field} = ? WHERE idx = 1", (value,))
        (body,) = conn.execute("SELECT body FROM blocks WHERE idx = 1").fetchone()
        block = json.loads(body)
        block[field] = value
        conn.execute("UPDATE blocks SET body = ? WHERE idx = 1", (json.dumps(block),))
    before = snapshot(workdir / DB)
    result = run("register", MODEL_FILE)
    if result.code == 0:
        assert_ok(run("audit"))  # what was just signed must audit
    else:
        assert_clean_error(result, 1)
        assert snapshot(workdir / DB) == before


def test_audit_checks_every_stored_merkle_node(run, model, workdir):
    """Proofs are served from the stored nodes, so audit must vouch for all of them, not
    only for the peaks: otherwise audit says valid while `prove` fails for some blocks."""
    make_ledger(workdir / DB, model, model, model)
    with db(workdir / DB) as conn:  # (0, 1) is an interior node of a 3-leaf tree
        conn.execute("UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 1")
    assert_clean_error(run("prove", "inclusion", "0", "--json"), 1)
    assert_clean_error(run("audit"), 1)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda b: b + b"\0", id="appended"),
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: bytes(len(b)), id="replaced"),
    ],
)
def test_edited_model_fails_verify(run, workdir, model, edit):
    make_ledger(workdir / DB, model)
    model.write_bytes(edit(model.read_bytes()))
    line = assert_clean_error(run("verify", MODEL_FILE), 1, MODEL_FILE)
    assert sha256sum(model) in line
    assert_ok(run("audit"))  # the ledger itself is fine


# -- help and version ---------------------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    def walk(group: click.Group, prefix: tuple[str, ...]):
        for name, command in sorted(group.commands.items()):
            yield (*prefix, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))

    return [(), *walk(cli, ())]


@pytest.mark.parametrize("command", _command_paths(), ids=lambda c: " ".join(c) or "modelchain")
def test_help(run, command):
    result = assert_ok(run(*command, "--help"))
    assert result.stdout.startswith("Usage: modelchain")
    assert result.stderr == ""


def test_version(run):
    for flag in ("--version", "-V"):
        result = assert_ok(run(flag))
        assert result.stdout.strip() == f"modelchain, version {modelchain.__version__}"


def test_note_verify_another_logs_checkpoint(run, workdir):
    """A real sum.golang.org checkpoint (transparency-dev/trillian-tessera test data) with
    the Go checksum database's published key: any C2SP signed note, not only ours."""
    from unit.core.test_note import SUMDB_NOTE, SUMDB_VKEY

    note = workdir / "sumdb.note"
    note.write_text(SUMDB_NOTE, encoding="utf-8")
    result = assert_ok(run("note", "verify", "--key", SUMDB_VKEY, note))
    assert "Verified by: sum.golang.org" in result.stdout
    assert "go.sum database tree\n31700353\n" in result.stdout
    tampered = workdir / "tampered.note"
    tampered.write_text(SUMDB_NOTE.replace("31700353", "31700354"), encoding="utf-8")
    assert_clean_error(run("note", "verify", "--key", SUMDB_VKEY, tampered), 1, "sum.golang.org")
