"""OpenSSF model-signing bundles made and checked by modelchain alone: the format's facts, every
tampering and every malformed bundle refused with one clear line and the right exit status."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.claims import bundle, keys
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import (
    InputError,
    ModelchainError,
    ModelMismatch,
    SignatureError,
    UsageError,
    VerificationError,
)

FILES = {"a.bin": b"weights-" * 5, "sub/b.txt": b"config", "empty": b"", "a.b": b"x"}


def make_model(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / ".git").mkdir(exist_ok=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "m")


def write_keys(directory: Path, kind: keys.KeyType = "p256", password: bytes | None = None):
    key = keys.generate(kind)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{kind}.pem", directory / f"{kind}.pub"
    private.write_bytes(key.pem(password))
    public.write_bytes(key.public.pem())
    return key, private, public


@pytest.fixture
def key(tmp_path: Path) -> keys.PrivateKey:
    return write_keys(tmp_path / "keys")[0]


def payload_of(sig: Path) -> dict:
    data = json.loads(sig.read_bytes())
    return json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))


def resign(sig: Path, key: keys.PrivateKey, statement: dict | bytes) -> None:
    """Replace the bundle's payload with `statement`, validly signed by `key`."""
    payload = statement if isinstance(statement, bytes) else canonical_json(statement)
    sig.write_bytes(bundle.make_bundle(payload, key))


# -- the format ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_sign_verify_every_key_type(model_dir, tmp_path, kind):
    key = keys.generate(kind)
    sig = tmp_path / "model.sig"
    signed = bundle.sign_model(str(model_dir), key, signature=str(sig))
    result = bundle.verify_model(str(model_dir), str(sig), key.public)
    assert result.key.kind == kind
    assert result.statement.digest == signed.statement.digest
    data = json.loads(sig.read_bytes())
    assert data["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert data["verificationMaterial"]["publicKey"]["hint"] == key.key_id
    assert data["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    envelope = data["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    assert key.public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae)


def test_statement_lists_every_file_sorted_with_subject_over_digests(model_dir, tmp_path, key):
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig))
    statement = payload_of(sig)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    resources = statement["predicate"]["resources"]
    # sorted by path components, as model_signing sorts: "a.b" < "a.bin" < "empty" < "sub/b.txt"
    assert [r["name"] for r in resources] == ["a.b", "a.bin", "empty", "sub/b.txt"]
    for r in resources:
        assert r["algorithm"] == "sha256"
        assert r["digest"] == hashlib.sha256(FILES[r["name"]]).hexdigest()
    joined = b"".join(bytes.fromhex(r["digest"]) for r in resources)
    subject = statement["subject"]
    assert subject == [{"name": "m", "digest": {"sha256": hashlib.sha256(joined).hexdigest()}}]
    serialization = statement["predicate"]["serialization"]
    assert serialization["method"] == "files"
    assert serialization["allow_symlinks"] is False
    assert set(serialization["ignore_paths"]) == {".git", ".gitattributes", ".github", ".gitignore"}


def test_single_file_model_is_one_resource_named_dot(tmp_path, key):
    model = tmp_path / "model.joblib"
    model.write_bytes(b"pickle bytes")
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model), key, signature=str(sig))
    (resource,) = payload_of(sig)["predicate"]["resources"]
    assert resource == {
        "name": ".",
        "algorithm": "sha256",
        "digest": hashlib.sha256(b"pickle bytes").hexdigest(),
    }
    assert bundle.verify_model(str(model), str(sig), key.public).files == 1
    model.write_bytes(b"pickle bytez")
    with pytest.raises(ModelMismatch, match=r"changed file .*model\.joblib"):
        bundle.verify_model(str(model), str(sig), key.public)


def test_shards_name_byte_ranges_and_leave_empty_files_uncovered(model_dir, tmp_path, key):
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig), shard_size=16)
    statement = payload_of(sig)
    assert statement["predicate"]["serialization"]["shard_size"] == 16
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["a.b:0:1", "a.bin:0:16", "a.bin:16:32", "a.bin:32:40", "sub/b.txt:0:6"]
    assert {r["algorithm"] for r in statement["predicate"]["resources"]} == {"sha256-sharded-16"}
    second = statement["predicate"]["resources"][2]["digest"]
    assert second == hashlib.sha256(FILES["a.bin"][16:32]).hexdigest()
    result = bundle.verify_model(str(model_dir), str(sig), key.public)
    assert result.not_covered == ("empty",)
    (model_dir / "a.bin").write_bytes(FILES["a.bin"] + b"!")  # one more byte: a new shard
    with pytest.raises(ModelMismatch, match=r"changed file a\.bin"):
        bundle.verify_model(str(model_dir), str(sig), key.public)


@pytest.mark.parametrize(
    ("hash_type", "reference"),
    [("blake2b", lambda b: hashlib.blake2b(b).hexdigest()), ("blake3", None)],
)
def test_blake_hashes(model_dir, tmp_path, key, hash_type, reference):
    if hash_type == "blake3":
        blake3 = pytest.importorskip("blake3")
        reference = lambda b: blake3.blake3(b).hexdigest()  # noqa: E731
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig), hash_type=hash_type)
    resources = payload_of(sig)["predicate"]["resources"]
    assert {r["algorithm"] for r in resources} == {hash_type}
    assert all(r["digest"] == reference(FILES[r["name"]]) for r in resources)
    bundle.verify_model(str(model_dir), str(sig), key.public)
    (model_dir / "sub" / "b.txt").write_bytes(b"changed")
    with pytest.raises(ModelMismatch, match=r"changed file sub/b\.txt"):
        bundle.verify_model(str(model_dir), str(sig), key.public)


def test_signature_inside_the_model_is_left_out(model_dir, key):
    sig = model_dir / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig))
    assert "model.sig" in payload_of(sig)["predicate"]["serialization"]["ignore_paths"]
    bundle.verify_model(str(model_dir), str(sig), key.public)


def test_ignore_paths_cwd_relative_or_model_relative(model_dir, tmp_path, key, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig), ignore_paths=["m/sub", "a.b"])
    ignored = payload_of(sig)["predicate"]["serialization"]["ignore_paths"]
    assert {"sub", "a.b"} <= set(ignored)
    (model_dir / "sub" / "b.txt").write_bytes(b"free to change")
    (model_dir / "a.b").unlink()
    bundle.verify_model(str(model_dir), str(sig), key.public)
    (model_dir / "later.txt").write_text("not signed")
    bundle.verify_model(str(model_dir), str(sig), key.public, ignore_paths=["later.txt"])
    with pytest.raises(UsageError, match="not a path inside the model"):
        bundle.sign_model(str(model_dir), key, signature=str(sig), ignore_paths=["../x"])


# -- tampering ----------------------------------------------------------------------------


def _edit(m: Path) -> None:
    (m / "sub" / "b.txt").write_bytes(b"configX")


def _add(m: Path) -> None:
    (m / "sub" / "new.py").write_text("import os")


def _remove(m: Path) -> None:
    (m / "a.b").unlink()


@pytest.mark.parametrize(
    ("attack", "message", "field"),
    [
        (_edit, "changed file sub/b.txt", "changed"),
        (_add, "extra file sub/new.py", "added"),
        (_remove, "missing file a.b", "removed"),
    ],
)
@pytest.mark.parametrize("shard_size", [None, 4])
def test_tampering_names_the_file(model_dir, tmp_path, key, attack, message, field, shard_size):
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig), shard_size=shard_size)
    attack(model_dir)
    with pytest.raises(ModelMismatch, match=message) as info:
        bundle.verify_model(str(model_dir), str(sig), key.public)
    assert info.value.exit_code == 1
    assert len(info.value.details[field]) == 1  # type: ignore[attr-defined]


def test_wrong_key_names_both_key_ids(model_dir, tmp_path, key):
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig))
    other = keys.generate("p256")
    with pytest.raises(SignatureError, match="key mismatch") as info:
        bundle.verify_model(str(model_dir), str(sig), other.public)
    assert key.key_id[:16] in str(info.value) and other.key_id[:16] in str(info.value)
    # without the hint, the signature itself is what fails
    data = json.loads(sig.read_bytes())
    del data["verificationMaterial"]["publicKey"]
    sig.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match="does not verify"):
        bundle.verify_model(str(model_dir), str(sig), other.public)
    bundle.verify_model(str(model_dir), str(sig), key.public)


def test_bundle_for_another_model(model_dir, tmp_path, key):
    other = make_model(tmp_path / "other", {"weights.bin": b"other"})
    sig = tmp_path / "other.sig"
    bundle.sign_model(str(other), key, signature=str(sig))
    with pytest.raises(ModelMismatch, match=r"missing file weights\.bin"):
        bundle.verify_model(str(model_dir), str(sig), key.public)


# -- malformed bundles ----------------------------------------------------------------------


def _statement(model_dir: Path, key: keys.PrivateKey, sig: Path) -> dict:
    bundle.sign_model(str(model_dir), key, signature=str(sig))
    return payload_of(sig)


def _set(statement: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    target = statement
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return statement


@pytest.mark.parametrize(
    ("path", "value", "error", "message"),
    [
        ("predicateType", "https://example.com/other/v1", InputError, "unknown predicateType"),
        ("_type", "https://in-toto.io/Statement/v0.1", InputError, "not an in-toto Statement"),
        ("subject", [], InputError, "exactly one subject"),
        ("subject.0.digest.sha256", "00" * 32, VerificationError, "does not match its resources"),
        ("predicate.serialization.method", "tensors", InputError, "unknown method"),
        ("predicate.serialization.hash_type", "md5", InputError, "unknown hash_type"),
        ("predicate.resources.0.algorithm", "sha512", InputError, "does not match"),
        ("predicate.resources.0.digest", "zz", InputError, "lowercase hex"),
        ("predicate.resources.0.name", "../etc/passwd", InputError, "not a normalized"),
        ("predicate.resources", "all of them", InputError, "must be a list"),
    ],
)
def test_malformed_statement_validly_signed(model_dir, tmp_path, key, path, value, error, message):
    sig = tmp_path / "model.sig"
    resign(sig, key, _set(_statement(model_dir, key, sig), path, value))
    with pytest.raises(error, match=message):
        bundle.verify_model(str(model_dir), str(sig), key.public)


def test_duplicate_resource_and_not_json_payload(model_dir, tmp_path, key):
    sig = tmp_path / "model.sig"
    statement = _statement(model_dir, key, sig)
    resources = statement["predicate"]["resources"]
    resources.append(resources[0])
    joined = b"".join(bytes.fromhex(r["digest"]) for r in resources)
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(joined).hexdigest()
    resign(sig, key, statement)
    with pytest.raises(InputError, match="listed twice"):
        bundle.verify_model(str(model_dir), str(sig), key.public)
    resign(sig, key, b"\xff not json")
    with pytest.raises(InputError, match="DSSE payload: not UTF-8"):
        bundle.verify_model(str(model_dir), str(sig), key.public)


def _envelope_edit(data: dict) -> None:
    data["dsseEnvelope"]["payloadType"] = "text/plain"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("mediaType"), "not a Sigstore bundle"),
        (
            lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1"),
            "unsupported media type",
        ),
        (lambda d: d.pop("dsseEnvelope"), "no DSSE envelope"),
        (_envelope_edit, "unknown payloadType"),
        (lambda d: d["dsseEnvelope"].update(payload="not base64!"), "not valid base64"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "non-empty list"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=7), "base64 string"),
        (lambda d: d["verificationMaterial"]["publicKey"].update(hint="xyz"), "64 hex digits"),
    ],
)
def test_malformed_envelope(model_dir, tmp_path, key, mutate, message):
    sig = tmp_path / "model.sig"
    bundle.sign_model(str(model_dir), key, signature=str(sig))
    data = json.loads(sig.read_bytes())
    mutate(data)
    sig.write_text(json.dumps(data))
    with pytest.raises(InputError, match=message) as info:
        bundle.verify_model(str(model_dir), str(sig), key.public)
    assert str(sig) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"[1, 2]", "not a Sigstore bundle"), (b'{"a": 1, "a": 2}', "twice")],
)
def test_not_a_bundle(model_dir, tmp_path, key, content, message):
    sig = tmp_path / "model.sig"
    sig.write_bytes(content)
    with pytest.raises(InputError, match=message):
        bundle.verify_model(str(model_dir), str(sig), key.public)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_corrupted_bundle_never_passes_unless_unchanged(model_dir, tmp_path, key, data):
    """Flip, cut or overwrite bytes anywhere: a ModelchainError, or (only when what was signed
    and who signed it are unchanged, e.g. unused base64 padding bits) a pass."""
    sig = tmp_path / "model.sig"
    if not sig.exists():
        bundle.sign_model(str(model_dir), key, signature=str(sig))
    original = sig.read_bytes()
    mode = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if mode == "flip":
        i = data.draw(st.integers(0, len(original) - 1))
        bad = (
            original[:i] + bytes([original[i] ^ data.draw(st.integers(1, 255))]) + original[i + 1 :]
        )
    elif mode == "truncate":
        bad = original[: data.draw(st.integers(0, len(original) - 1))]
    else:
        i = data.draw(st.integers(0, len(original)))
        bad = original[:i] + data.draw(st.binary(min_size=1, max_size=8)) + original[i:]
    corrupt = tmp_path / "corrupt.sig"
    corrupt.write_bytes(bad)
    try:
        bundle.verify_model(str(model_dir), str(corrupt), key.public)
    except ModelchainError:
        return
    before, after = bundle.parse_bundle(original), bundle.parse_bundle(bad)
    assert (after.payload, after.signatures) == (before.payload, before.signatures)


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=12))
def test_parse_size_accepts_only_sizes(text):
    try:
        value = bundle.parse_size(text)
    except UsageError:
        return
    assert value >= 1


def test_parse_size_units():
    assert bundle.parse_size("1000") == 1000
    assert bundle.parse_size("64M") == 64 << 20
    assert bundle.parse_size("1GiB") == 1 << 30


# -- the digests `verify --signature --ledger` reuses (the commands: cli/test_bundle_cli.py) --


def test_bundle_digests_stand_in_for_the_ledger_hash(model_dir, tmp_path, key):
    """`verify --signature --ledger` reads each file once: the SHA-256s the bundle check
    computed give exactly the digest the ledger would, or None when the file sets differ."""
    from modelchain.fs.digest import digest_from_known, digest_path

    private, public = key, key.public
    sig = tmp_path / "m.sig"
    bundle.sign_model(str(model_dir), private, signature=str(sig))
    result = bundle.verify_model(str(model_dir), str(sig), public)
    assert set(result.sha256s) == set(FILES)
    assert digest_from_known(model_dir, result.sha256s, ignore=(".git",)) == digest_path(
        model_dir, ignore=(".git",)
    )
    assert digest_from_known(model_dir, result.sha256s, ignore=()) is None  # .git/HEAD unknown
    assert digest_from_known(model_dir, result.sha256s, ignore=("*.bin",)) is None
    one = tmp_path / "one.bin"
    one.write_bytes(b"weights")
    bundle.sign_model(str(one), private, signature=str(sig))
    single = bundle.verify_model(str(one), str(sig), public)
    assert digest_from_known(one, single.sha256s) == digest_path(one)
    sharded = tmp_path / "sharded.sig"
    bundle.sign_model(str(model_dir), private, signature=str(sharded), shard_size=4)
    assert bundle.verify_model(str(model_dir), str(sharded), public).sha256s == {}
