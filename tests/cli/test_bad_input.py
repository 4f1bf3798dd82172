"""Bad input of every kind: a one-line error, the right non-zero exit status (2 unreadable
input or usage, 1 invalid ledger or failed verification), never a traceback, never data lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import MODEL_FILE, assert_clean_error, db, make_ledger, snapshot

import modelchain
from modelchain.core.note import Signer, sign_note

DB = Path(".modelchain") / "ledger.db"


@pytest.fixture
def db_ledger(model, workdir) -> Path:
    make_ledger(workdir / DB, model, (model, "other"))
    return workdir / DB


@pytest.fixture
def json_ledger(model, workdir) -> Path:
    path = workdir / "ledger.json"
    make_ledger(path, model, (model, "other"))
    return path


def sidecar(path: Path) -> Path:
    return Path(str(path) + ".checkpoint")


def ledger_files(path: Path) -> list[Path]:
    return [path, sidecar(path)] if path.suffix == ".json" else [path]


# -- model paths ----------------------------------------------------------------------------


def _missing(w: Path) -> tuple[str, list[str]]:
    return "nope.joblib", []


def _parent_is_a_file(w: Path) -> tuple[str, list[str]]:
    (w / "afile").write_text("not a directory")
    return "afile/model.joblib", []


def _dangling_symlink(w: Path) -> tuple[str, list[str]]:
    os.symlink(w / "gone.joblib", w / "dangling.joblib")
    return "dangling.joblib", []


def _model_dir(w: Path) -> Path:
    d = w / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"weights")
    (w / "secret.txt").write_text("outside the model directory")
    return d


def _link_outside(w: Path) -> tuple[str, list[str]]:
    os.symlink(w / "secret.txt", _model_dir(w) / "leak")
    return "m", []


def _link_outside_followed(w: Path) -> tuple[str, list[str]]:
    os.symlink(w / "secret.txt", _model_dir(w) / "leak")
    return "m", ["--follow-symlinks"]


def _fifo(w: Path) -> tuple[str, list[str]]:
    os.mkfifo(_model_dir(w) / "pipe")
    return "m", []


@pytest.mark.parametrize("command", ["register", "hash"])
@pytest.mark.parametrize(
    ("setup", "code", "needle"),
    [
        pytest.param(_missing, 2, "nope.joblib", id="missing"),
        pytest.param(_parent_is_a_file, 2, "afile/model.joblib", id="parent-is-a-file"),
        pytest.param(_dangling_symlink, 2, "dangling.joblib", id="dangling-symlink"),
        pytest.param(_link_outside, 1, "leak", id="symlink-in-dir"),
        pytest.param(_link_outside_followed, 1, "leak", id="symlink-out-of-dir-followed"),
        pytest.param(_fifo, 1, "pipe", id="fifo-in-dir"),
    ],
)
def test_bad_model_path(run, workdir, db_ledger, command, setup, code, needle):
    path, options = setup(workdir)
    before = snapshot(db_ledger)
    result = run(command, path, *options, timeout=20)  # a FIFO must never block
    assert_clean_error(result, code, needle)
    assert result.stdout == ""
    assert snapshot(db_ledger) == before


def test_errors_with_json_flag(run, workdir, db_ledger):
    result = run("register", "nope.joblib", "--json")
    assert_clean_error(result, 2, "nope.joblib")
    out = json.loads(result.stdout)
    assert out["exit_code"] == 2 and "nope.joblib" in out["error"]


# -- broken JSON ledgers --------------------------------------------------------------------


def _blocks(edit):
    def apply(text: str) -> str:
        blocks = json.loads(text)
        edit(blocks)
        return json.dumps(blocks, indent=4)

    return apply


def _set(i: int, key: str, value):
    return _blocks(lambda b: b[i].__setitem__(key, value))


def _duplicate_key(text: str) -> str:
    """A second "model_hash" in block 0, before the real one: Python's json keeps the last,
    other readers (and people) see the first, so the signed leaf would not be what they read."""
    real = '"model_hash": "'
    assert text.count(real) == 2
    return text.replace(real, f'"model_hash": "{"e" * 64}",\n        {real}', 1)


@pytest.mark.parametrize("command", ["audit", "register"])
@pytest.mark.parametrize(
    ("corrupt", "code", "needle"),
    [
        pytest.param(
            lambda t: t.replace('"index"', "index", 1), 2, "not valid JSON", id="malformed"
        ),
        pytest.param(lambda t: t[: len(t) // 2], 2, "not valid JSON", id="truncated"),
        pytest.param(lambda t: "", 2, "empty", id="empty"),
        pytest.param(lambda t: '{"blocks": []}', 1, "array", id="top-level-object"),
        pytest.param(_set(0, "index", "0"), 1, "index", id="index-is-a-string"),
        pytest.param(_set(1, "timestamp", "1700000000.5"), 1, "timestamp", id="timestamp-string"),
        pytest.param(
            _blocks(lambda b: b[1].pop("previous_hash")), 1, "previous_hash", id="missing"
        ),
        pytest.param(_set(1, "index", 0), 1, "index", id="duplicate-index"),
        pytest.param(_set(0, "model_hash", 12345), 1, "model_hash", id="model_hash-number"),
        pytest.param(_set(0, "model_hash", "XYZ"), 1, "model_hash", id="model_hash-not-hex"),
        pytest.param(_blocks(lambda b: b.__setitem__(1, None)), 1, "block 1", id="null-block"),
        pytest.param(_duplicate_key, 1, "model_hash", id="duplicate-key"),
    ],
)
def test_broken_json_ledger(run, json_ledger, command, corrupt, code, needle):
    json_ledger.write_text(corrupt(json_ledger.read_text()))
    before = snapshot(*ledger_files(json_ledger))
    args = [MODEL_FILE, "--name", "new"] if command == "register" else []
    result = run(command, "--ledger", json_ledger.name, *args)
    line = assert_clean_error(result, code)
    if command == "audit":
        assert needle in line
    assert snapshot(*ledger_files(json_ledger)) == before


# -- broken SQLite ledgers ------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text(path: Path) -> None:
    path.write_text("this is not a database\n" * 100)


def _foreign_sqlite(path: Path) -> None:
    path.unlink()
    with db(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('alice')")


@pytest.mark.parametrize("command", ["audit", "register"])
@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        pytest.param(_truncate, "ledger.db", id="truncated"),
        pytest.param(_text, "not an SQLite database", id="text-file"),
        pytest.param(_foreign_sqlite, "not a modelchain ledger", id="other-sqlite-db"),
    ],
)
def test_broken_sqlite_ledger(run, db_ledger, command, damage, needle):
    assert db_ledger.stat().st_size > 8192  # big enough that half of it is a real cut
    damage(db_ledger)
    before = snapshot(db_ledger)
    args = [MODEL_FILE] if command == "register" else []
    assert_clean_error(run(command, *args), 2, needle)
    assert snapshot(db_ledger) == before


# -- ledger locations -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["audit", "register", "init"])
@pytest.mark.parametrize(
    ("location", "needle"),
    [
        pytest.param("ftp://x", "ftp", id="ftp"),
        # a server that is not there (or refuses us): one line, exit 2, nothing created
        pytest.param(
            "postgresql://modelchain@127.0.0.1:1/ledger",
            "cannot open postgresql://",
            id="postgresql",
        ),
    ],
)
def test_unsupported_ledger_location(run, model, workdir, command, location, needle):
    args = [MODEL_FILE] if command == "register" else []
    assert_clean_error(run(command, "--ledger", location, *args), 2, needle)
    assert sorted(p.name for p in workdir.iterdir()) == [MODEL_FILE]


def test_unsupported_ledger_location_from_environment(run, model, workdir):
    result = run("register", MODEL_FILE, MODELCHAIN_LEDGER="postgres://md@127.0.0.1:1/ledger")
    assert_clean_error(result, 2, "cannot open postgresql://md@127.0.0.1:1/ledger")
    assert sorted(p.name for p in workdir.iterdir()) == [MODEL_FILE]


# -- checkpoints ----------------------------------------------------------------------------


def _read_note(path: Path) -> str:
    if path.suffix == ".json":
        return sidecar(path).read_text()
    with db(path) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()[0]


def _write_note(path: Path, note: str) -> None:
    if path.suffix == ".json":
        sidecar(path).write_text(note)
        return
    with db(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (note,))


@pytest.fixture(params=["json", "sqlite"])
def any_ledger(request, model, workdir) -> Path:
    path = workdir / ("ledger.json" if request.param == "json" else "ledger.db")
    make_ledger(path, model, (model, "other"))
    return path


def _assert_refused(run, path: Path, code: int, needle: str = "") -> None:
    """`audit` fails (naming `needle`), and so does `register`, leaving the ledger as it was."""
    before = snapshot(*ledger_files(path))
    assert_clean_error(run("audit", "--ledger", path.name), code, needle)
    assert_clean_error(run("register", "--ledger", path.name, MODEL_FILE), code)
    assert snapshot(*ledger_files(path)) == before


@pytest.mark.parametrize("position", [2, 40], ids=["key-id", "signature"])
def test_corrupted_checkpoint_signature(run, any_ledger, position):
    note = _read_note(any_ledger)
    head, _, sig = note.rstrip("\n").rpartition(" ")
    flipped = sig[:position] + ("A" if sig[position] != "A" else "B") + sig[position + 1 :]
    _write_note(any_ledger, f"{head} {flipped}\n")
    _assert_refused(run, any_ledger, 1)


def test_checkpoint_of_another_log(run, any_ledger, tmp_path):
    other = tmp_path / "elsewhere" / "other.db"
    with modelchain.Ledger.open(other, create=True) as led:
        led.init("example.com/other")
        note = led.checkpoint()
    _write_note(any_ledger, note)
    _assert_refused(run, any_ledger, 1, "example.com/other")


def test_checkpoint_signed_by_another_key(run, any_ledger):
    """A well-formed checkpoint of the same log, signed by a key that is not the operator's."""
    from modelchain.core.note import Checkpoint, parse_note, sign_checkpoint

    cp = Checkpoint.parse(parse_note(_read_note(any_ledger)).text)
    _write_note(any_ledger, sign_checkpoint(cp, Signer.generate(cp.origin)))
    _assert_refused(run, any_ledger, 1)


def test_checkpoint_garbage(run, any_ledger):
    _write_note(any_ledger, "not a checkpoint at all")
    _assert_refused(run, any_ledger, 1)


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        pytest.param(lambda k: k.chmod(0o644), "chmod 600", id="mode-0644"),
        pytest.param(lambda k: k.write_text("garbage\n"), "operator.key", id="garbage"),
        pytest.param(lambda k: k.write_bytes(b"\xff\xfe\x00\x81"), "operator.key", id="binary"),
        pytest.param(lambda k: k.write_text(""), "operator.key", id="empty"),
        pytest.param(
            lambda k: k.write_text("PRIVATE+KEY+x+00000000+AQ==\n"), "operator.key", id="short"
        ),
    ],
)
def test_bad_operator_key_file(run, db_ledger, home, damage, needle):
    key = home / "operator.key"
    damage(key)
    before = snapshot(db_ledger, key)
    assert_clean_error(run("audit"), 2, needle)
    assert_clean_error(run("register", MODEL_FILE), 2, needle)
    assert snapshot(db_ledger, key) == before


# -- notes ----------------------------------------------------------------------------------

_VKEY = Signer.generate("example.com/log").verifier().string()


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"example.com/log\n1\n", id="no-signature"),
        pytest.param(b"example.com/log\n\n\xe2\x80\x94 example.com/log !!!!\n", id="bad-base64"),
        pytest.param(b"text\n\n\xe2\x80\x94 example.com/log\n", id="short-signature-line"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
    ],
)
def test_note_verify_malformed_note(run, workdir, note):
    (workdir / "note.txt").write_bytes(note)
    assert_clean_error(run("note", "verify", "--key", _VKEY, "note.txt"), 2)


@pytest.mark.parametrize(
    "key",
    [
        "garbage",
        "a+b+c",
        "example.com/log+zzzzzzzz+AQ==",
        _VKEY.rsplit("+", 1)[0] + "+AQ==",  # a key of 0 bytes
        "example.com/log+00000000+" + _VKEY.rsplit("+", 1)[1],  # wrong key ID
    ],
)
def test_note_verify_malformed_key(run, workdir, key):
    signer = Signer.generate("example.com/log")
    (workdir / "cp.txt").write_text(sign_note("example.com/log\n1\n", [signer]))
    assert_clean_error(run("note", "verify", "--key", key, "cp.txt"), 2, "key")


def test_note_verify_missing_file(run, workdir):
    assert_clean_error(run("note", "verify", "--key", _VKEY, "nope.txt"), 2, "nope.txt")


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["prove", "inclusion", "2"],
        ["prove", "inclusion", "99"],
        ["prove", "inclusion", "0", "--size", "3"],
        ["prove", "consistency", "3"],
        ["prove", "consistency", "2", "1"],
    ],
    ids=" ".join,
)
def test_proof_beyond_the_tree(run, db_ledger, args):
    assert_clean_error(run(*args), 2)


@pytest.mark.parametrize("meta", ["foo", "=bar"])
def test_meta_without_key_value(run, workdir, db_ledger, meta, model):
    before = snapshot(db_ledger)
    assert_clean_error(run("register", MODEL_FILE, "--meta", meta), 2, "KEY=VALUE")
    assert snapshot(db_ledger) == before
    # and nothing is created where there was no ledger
    assert_clean_error(run("register", MODEL_FILE, "--meta", meta, "--ledger", "new.db"), 2)
    assert not (workdir / "new.db").exists()


@pytest.mark.parametrize("ledger", [str(DB), "ledger.json"])
def test_home_holding_the_ledger_is_refused(run, model, workdir, ledger):
    """Whoever can write the ledger must not be able to replace the key and trust state."""
    home = (workdir / ledger).parent
    result = run("register", MODEL_FILE, "--ledger", ledger, MODELCHAIN_HOME=str(home))
    assert_clean_error(result, 2, "MODELCHAIN_HOME")
    assert not (home / "operator.key").exists()
    assert not (home / "trust").exists()
    assert not Path(str(workdir / ledger) + ".checkpoint").exists()
