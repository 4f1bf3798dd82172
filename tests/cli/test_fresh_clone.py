"""A fresh clone on its own, with no shared/ folder beside it, must pass: the tests that read
shared material skip with a reason that says where it is looked for, and fail instead when
MODELCHAIN_REQUIRE_SHARED=1 (as CI sets it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shared import REPO

# the tests that read shared/: every one must skip in a lone clone, never fail
NEEDS_SHARED = [
    "tests/unit/core/test_merkle.py",
    "tests/interop/test_interop_notes.py",
    "tests/service/test_explorer_proofs.py::test_the_pages_inclusion_check_passes_the_rfc9162_vectors",
]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files of this checkout that git would clone (and new ones not ignored), as they
    are now, in a folder with no shared/ beside it."""
    dest = tmp_path_factory.mktemp("lone") / "modelchain"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    assert not (dest.parent / "shared").exists()
    return dest


def _pytest(clone: Path, *args: str, require: bool) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODELCHAIN_SHARED", "MODELCHAIN_VECTORS", "MODELCHAIN_REQUIRE_SHARED")
    }
    if require:
        env["MODELCHAIN_REQUIRE_SHARED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_whole_suite_collects_in_a_lone_clone(clone: Path) -> None:
    r = _pytest(clone, "--collect-only", "-q", require=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "error" not in r.stdout.splitlines()[-1].lower(), r.stdout[-2000:]


def test_shared_material_skips_with_a_reason(clone: Path) -> None:
    r = _pytest(clone, "-q", "-rs", *NEEDS_SHARED, require=False)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "failed" not in r.stdout.splitlines()[-1], r.stdout[-3000:]
    assert "read from the shared/ folder beside the checkout" in r.stdout
    assert "skipped" in r.stdout.splitlines()[-1]


def test_required_shared_material_fails_when_absent(clone: Path) -> None:
    r = _pytest(clone, "-q", *NEEDS_SHARED, require=True)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "MODELCHAIN_REQUIRE_SHARED=1 makes this a failure" in r.stdout
