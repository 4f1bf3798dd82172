"""Signed notes from real logs (Go checksum database, Rekor v2, Sigsum, static CT, Armored
Witness, C2SP's own example), read from shared/interop/notes: `modelchain note verify` must
accept each with its log's published Ed25519 key, and refuse the published bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Run
from shared import shared_path

# (folder, note, the key names that must verify it), from each folder's keys.txt
GOOD = [
    ("c2sp-signed-note-example", "example.note", ["example.com/foo"]),
    ("go-x-mod-sumdb-note-vectors", "peter-only.note", ["PeterNeumann"]),
    ("go-x-mod-sumdb-note-vectors", "enoch-only.note", ["EnochRoot"]),
    ("go-x-mod-sumdb-note-vectors", "peter-enoch.note", ["PeterNeumann", "EnochRoot"]),
    ("sumdb-checkpoint-6476701", "sumdb.note", ["sum.golang.org"]),
    ("sumdb-checkpoint-30055305", "sumdb.note", ["sum.golang.org"]),
    ("sumdb-checkpoint-15081221-witnessed", "sumdb+test-witness.note", ["sum.golang.org"]),
    ("rekor-v2-staging-alpha1", "alpha1.note", ["log2025-alpha1.rekor.sigstage.dev"]),
    ("rekor-v2-staging-alpha3-witnessed", "alpha3.note", ["log2025-alpha3.rekor.sigstage.dev"]),
    ("static-ct-arche2025h1-witnessed", "arche.note", ["arche2025h1.staging.ct.transparency.dev"]),
    (
        "sigsum-go-vectors",
        "valid-checkpoint.note",
        ["sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"],
    ),
]

# (folder, note, exit code, a word of the one-line reason): 2 for a file that is no signed
# note at all, 1 for a note whose signatures do not check out
BAD = [
    ("go-x-mod-sumdb-note-vectors", "bad-1-text-only.note", 2, "blank line"),
    ("go-x-mod-sumdb-note-vectors", "bad-2-no-sigs.note", 2, "no signatures"),
    ("go-x-mod-sumdb-note-vectors", "bad-3-no-final-newline.note", 2, "newline"),
    ("go-x-mod-sumdb-note-vectors", "bad-4-control-char.note", 2, "control character"),
    ("go-x-mod-sumdb-note-vectors", "bad-5-invalid-utf8.note", 2, "cannot read"),
    ("go-x-mod-sumdb-note-vectors", "bad-7-unexpected-line.note", 2, "em dash"),
    ("go-x-mod-sumdb-note-vectors", "peter-invalid-sig.note", 1, "does not verify"),
    ("go-x-mod-sumdb-note-vectors", "dup-verified-unverified.note", 1, "does not verify"),
    ("go-x-mod-sumdb-note-vectors", "misnamed.note", 1, "no signature by a known key"),
    ("go-x-mod-sumdb-note-vectors", "wrong-hash.note", 1, "no signature by a known key"),
    ("go-x-mod-sumdb-note-vectors", "peter-x101.note", 2, "more than the limit"),
    ("static-ct-arche2025h1-witnessed", "arche-body-tampered.note", 1, "does not verify"),
]


def _ed25519_keys(folder: Path) -> list[str]:
    """The folder's Ed25519 verifier keys (type byte 0x01); cosignature keys are skipped."""
    import base64

    keys = []
    for line in (folder / "keys.txt").read_text(encoding="utf-8").splitlines():
        key = line.split("#", 1)[0].strip()
        if key and base64.b64decode(key.split("+", 2)[2])[:1] == b"\x01":
            keys.append(key)
    return keys


def _args(folder: Path) -> list[str]:
    return [arg for key in _ed25519_keys(folder) for arg in ("--key", key)]


@pytest.mark.parametrize(("folder", "note", "names"), GOOD, ids=[f"{f}/{n}" for f, n, _ in GOOD])
def test_real_notes_verify(run: Run, folder: str, note: str, names: list[str]) -> None:
    where = shared_path(f"interop/notes/{folder}", "signed notes from real logs")
    r = run("note", "verify", *_args(where), str(where / note), "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verified"] is True
    assert sorted(out["verified_by"]) == sorted(names)
    assert out["text"] == (where / note).read_text(encoding="utf-8").split("\n\n")[0] + "\n"


@pytest.mark.parametrize(("folder", "note", "code", "word"), BAD, ids=[n for _, n, _, _ in BAD])
def test_published_bad_notes_are_refused(
    run: Run, folder: str, note: str, code: int, word: str
) -> None:
    where = shared_path(f"interop/notes/{folder}", "signed notes from real logs")
    r = run("note", "verify", *_args(where), str(where / note))
    assert r.code == code, (r.code, r.stderr)
    assert word in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_a_checkpoint_is_refused_under_another_logs_key(run: Run) -> None:
    """The Go checksum database's checkpoint does not verify with Rekor's key: a key is for
    one log, whatever the note says."""
    sumdb = shared_path("interop/notes/sumdb-checkpoint-6476701", "signed notes from real logs")
    rekor = shared_path("interop/notes/rekor-v2-staging-alpha1", "signed notes from real logs")
    r = run("note", "verify", *_args(rekor), str(sumdb / "sumdb.note"))
    assert r.code == 1
    assert "no signature by a known key" in r.stderr
