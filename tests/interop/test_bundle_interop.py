"""Interoperability with the reference OpenSSF `model_signing` tool, through its real CLI: each
side verifies the other's bundles, and both refuse a tampered model or the wrong key."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Result, assert_clean_error, assert_ok

from modelchain.claims import bundle, keys

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("model_signing") is None or not MODEL_SIGNING.exists(),
    reason="model-signing is not installed (pip install -e '.[dev]')",
)

FILES = {"weights.bin": b"\x00\x01" * 600, "config.json": b'{"layers": 2}', "tok/vocab.txt": b"a"}


def ms(*args: str | Path, cwd: Path) -> Result:
    """Run the real `model_signing` command."""
    proc = subprocess.run(
        [str(MODEL_SIGNING), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ms_verify(model: Path, sig: Path, public: Path, cwd: Path) -> Result:
    return ms("verify", "key", model, "--signature", sig, "--public_key", public, cwd=cwd)


def ms_sign(model: Path, sig: Path, private: Path, cwd: Path, *extra: str) -> Result:
    return ms("sign", "key", model, "--signature", sig, "--private_key", private, *extra, cwd=cwd)


@pytest.fixture
def model(workdir: Path) -> Path:
    root = workdir / "model"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def key_files(directory: Path, kind: keys.KeyType, password: bytes | None = None):
    key = keys.generate(kind)
    directory.mkdir(exist_ok=True)
    private, public = directory / f"{kind}.pem", directory / f"{kind}.pub"
    private.write_bytes(key.pem(password))
    public.write_bytes(key.public.pem())
    return key, private, public


@pytest.mark.parametrize("kind", ["p256", "p384"])
def test_both_ways(run, model, workdir, kind):
    _, private, public = key_files(workdir / "keys", kind)
    assert_ok(run("sign", model, "--private-key", private, "--signature", "ours.sig"))
    out = ms_verify(model, workdir / "ours.sig", public, workdir)
    assert out.code == 0 and "Verification succeeded" in out.stdout, out
    out = ms_sign(model, workdir / "theirs.sig", private, workdir)
    assert out.code == 0, out
    assert_ok(run("verify", model, "--signature", "theirs.sig", "--public-key", public))
    # the same model, settings and key give the same statement (signatures differ: ECDSA)
    ours = bundle.Statement.parse(bundle.read_bundle(workdir / "ours.sig").payload)
    theirs = bundle.Statement.parse(bundle.read_bundle(workdir / "theirs.sig").payload)
    assert ours.resources == theirs.resources and ours.digest == theirs.digest


def _edit(m: Path) -> None:
    (m / "config.json").write_bytes(b'{"layers": 3}')


def _add(m: Path) -> None:
    (m / "tok" / "extra.txt").write_text("x")


def _remove(m: Path) -> None:
    (m / "tok" / "vocab.txt").unlink()


@pytest.mark.parametrize("signer", ["modelchain", "model_signing"])
@pytest.mark.parametrize(
    ("attack", "needle"),
    [(_edit, "config.json"), (_add, "tok/extra.txt"), (_remove, "tok/vocab.txt"), (None, "key")],
)
def test_both_refuse(run, model, workdir, signer, attack, needle):
    _, private, public = key_files(workdir / "keys", "p256")
    sig = workdir / "model.sig"
    if signer == "modelchain":
        assert_ok(run("sign", model, "--private-key", private))
    else:
        assert ms_sign(model, sig, private, workdir).code == 0
    if attack is None:
        public = key_files(workdir / "other", "p256")[2]
    else:
        attack(model)
    theirs = ms_verify(model, sig, public, workdir)
    assert theirs.code != 0 and "Verification failed" in theirs.stderr, theirs
    ours = run("verify", model, "--signature", sig, "--public-key", public)
    assert_clean_error(ours, 1, needle)


def test_password_protected_keys_both_ways(run, model, workdir):
    _, private, public = key_files(workdir / "keys", "p256", password=b"hunter2")
    (workdir / "pw.txt").write_text("hunter2\n")
    assert_ok(run("sign", model, "--private-key", private, "--password-file", "pw.txt"))
    assert ms_verify(model, workdir / "model.sig", public, workdir).code == 0
    # model_signing 1.1.1's CLI hands --password to cryptography as str and fails: use its
    # library, with the password as bytes
    _api_sign(model, workdir / "theirs.sig", private, password=b"hunter2")
    assert_ok(run("verify", model, "--signature", "theirs.sig", "--public-key", public))


def test_single_file_model_both_ways(run, model, workdir):
    _, private, public = key_files(workdir / "keys", "p384")
    weights = model / "weights.bin"
    assert_ok(run("sign", weights, "--private-key", private, "--signature", "w.sig"))
    assert ms_verify(weights, workdir / "w.sig", public, workdir).code == 0
    assert ms_sign(weights, workdir / "t.sig", private, workdir).code == 0
    assert_ok(run("verify", weights, "--signature", "t.sig", "--public-key", public))


def _api_sign(
    model: Path, sig: Path, private: Path, password: bytes | None = None, **serialization: object
) -> None:
    """model_signing's own library, for settings its CLI cannot choose."""
    import model_signing

    method = serialization.pop("method", "files")
    config = model_signing.hashing.Config()
    if method == "shards":
        config = config.use_shard_serialization(**serialization)  # type: ignore[arg-type]
    else:
        config = config.use_file_serialization(**serialization)  # type: ignore[arg-type]
    signing = model_signing.signing.Config().use_elliptic_key_signer(
        private_key=private,
        password=password,  # type: ignore[arg-type]
    )
    signing.set_hashing_config(config).sign(model, sig)


@pytest.mark.parametrize(
    "serialization",
    [
        {"method": "shards", "shard_size": 500},
        {"method": "files", "hashing_algorithm": "blake2"},
        {"method": "files", "hashing_algorithm": "blake3"},
    ],
    ids=["shards", "blake2b", "blake3"],
)
def test_other_settings_made_by_model_signing(run, model, workdir, serialization):
    _, private, public = key_files(workdir / "keys", "p256")
    sig = workdir / "api.sig"
    _api_sign(model, sig, private, **dict(serialization))
    settings = bundle.Statement.parse(bundle.read_bundle(sig).payload).serialization
    assert settings.method == serialization["method"]
    out = assert_ok(run("verify", model, "--signature", sig, "--public-key", public, "--json"))
    assert '"verified": true' in out.stdout
    (model / "weights.bin").write_bytes(b"\x00\x01" * 599 + b"\x00\x02")
    assert_clean_error(
        run("verify", model, "--signature", sig, "--public-key", public), 1, "weights.bin"
    )


def test_our_sharded_bundle_verifies_with_model_signing_library(run, model, workdir):
    import model_signing

    _, private, public = key_files(workdir / "keys", "p256")
    assert_ok(run("sign", model, "--private-key", private, "--shard-size", "256"))
    verifier = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public)
    verifier.verify(model, workdir / "model.sig")  # guesses the settings from the bundle
    _edit(model)
    with pytest.raises(ValueError, match=r"config\.json"):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
            model, workdir / "model.sig"
        )


def test_model_signing_refuses_ed25519_which_we_accept(run, model, workdir):
    _, private, public = key_files(workdir / "keys", "ed25519")
    assert_ok(run("sign", model, "--private-key", private))
    assert_ok(run("verify", model, "--signature", "model.sig", "--public-key", public))
    assert ms_verify(model, workdir / "model.sig", public, workdir).code != 0
