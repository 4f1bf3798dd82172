"""What the golden files hold, built from fixed inputs with the code as it is now."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from modelchain.claims import keys
from modelchain.claims.bundle import sign_model
from modelchain.claims.claim import BOUND_PAYLOAD_TYPE, RegistrationSignature, signed_message
from modelchain.core import merkle, note
from modelchain.core.canonical import canonical_json
from modelchain.fs.digest import digest_path, manifest_to_json
from modelchain.log.block import Block, seed_hash

ORIGIN = "golden.example/log"
#: the files of the model that the OMS bundles sign (a folder named `golden-model`)
MODEL_FILES = {"config.json": b'{"layers": 2}\n', "weights.bin": bytes(range(256)) * 8}


def _key(folder: Path, name: str, kind: str, fresh: bool) -> keys.PrivateKey:
    path = folder / f"{name}.pem"
    if fresh and not path.exists():
        path.write_bytes(keys.generate(kind).pem())  # type: ignore[arg-type]
    return keys.parse_private_key(path.read_bytes(), name)


def operator(folder: Path, fresh: bool = False) -> note.Signer:
    path = folder / "operator.key"
    if fresh and not path.exists():
        path.write_text(note.Signer.generate(ORIGIN).private_key_string() + "\n")
    return note.Signer.from_private_key_string(path.read_text().strip())


def model_dir(root: Path) -> Path:
    model = root / "golden-model"
    model.mkdir()
    for name, data in MODEL_FILES.items():
        (model / name).write_bytes(data)
    return model


def golden_block(registrant: keys.PrivateKey) -> Block:
    """Version 2 of a file model, with metadata, provenance and a bound Ed25519 signature."""
    model_hash = "ab" * 32
    previous = "cd" * 32
    timestamp = 1796158393.25
    raw = {
        "index": 3,
        "timestamp": timestamp,
        "model_hash": model_hash,
        "previous_hash": previous,
        "current_hash": seed_hash(3, timestamp, model_hash, previous),
        "name": "iris-classifier",
        "version": 2,
        "kind": "file",
        "size": 1234,
        "manifest": None,
        "metadata": {"accuracy": 0.97, "team": "ml-platform", "tags": ["prod", "iris"]},
        "provenance": {
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://example.com/train"}},
        },
    }
    unsigned = Block.from_raw(raw, 3)
    message = signed_message(unsigned.claim(ORIGIN))
    sig = RegistrationSignature.make(registrant, message, BOUND_PAYLOAD_TYPE)
    raw["signatures"] = [sig.to_json()]
    return Block.from_raw(raw, 3)


def build_all(folder: Path, fresh_keys: bool = False) -> dict[str, bytes]:
    """Every golden file's name and bytes. The EC bundle's signature is randomised (ECDSA),
    so only its file is golden, never rebuilt: the test checks it verifies and that its
    statement is the one the code makes now."""
    ed = _key(folder, "registrant-ed25519", "ed25519", fresh_keys)
    ec = _key(folder, "registrant-p256", "p256", fresh_keys)
    signer = operator(folder, fresh_keys)
    block = golden_block(ed)
    out: dict[str, bytes] = {}
    out["block.json"] = block.leaf_data()
    out["block-leaf-hash.hex"] = merkle.leaf_hash(block.leaf_data()).hex().encode() + b"\n"
    claim = signed_message(block.claim(ORIGIN))
    out["claim-message.bin"] = claim
    out["claim-signature.json"] = canonical_json(block.signatures[0].to_json()) + b"\n"
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(7)]
    checkpoint = note.Checkpoint(ORIGIN, 7, merkle.root(leaves))
    out["checkpoint.note"] = note.sign_note(checkpoint.body(), [signer]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir(Path(tmp))
        tree = digest_path(model)
        listing = {"sha256": tree.sha256, "size": tree.size, "manifest": tree.manifest}
        listing["manifest"] = manifest_to_json(tree.manifest)  # type: ignore[arg-type]
        out["directory-digest.json"] = canonical_json(listing) + b"\n"
        for kind, key in (("ed25519", ed), ("p256", ec)):
            bundle = Path(tmp) / f"{kind}.sig"
            if kind == "p256" and not fresh_keys:
                continue
            sign_model(str(model), key, signature=str(bundle))
            out[f"oms-{kind}.sig"] = bundle.read_bytes()
    return out


def statement_payload(bundle: bytes) -> bytes:
    """The DSSE payload (the in-toto statement) a bundle carries."""
    import base64

    return base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
