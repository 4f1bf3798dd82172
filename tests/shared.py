"""Material read from the `shared/` folder beside the checkout (test vectors, real data from
other projects), never copied into the project.

A user's fresh clone has no such folder: the tests that need it skip, naming where the
material is looked for and how to point at it. CI sets MODELCHAIN_REQUIRE_SHARED=1, and then a
missing file fails the test instead, so a skip can never hide a broken path there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the shared folder: MODELCHAIN_SHARED, else `shared/` beside the checkout
SHARED = Path(os.environ.get("MODELCHAIN_SHARED") or REPO.parent / "shared")


def required() -> bool:
    """True when missing shared material must fail rather than skip (CI)."""
    return os.environ.get("MODELCHAIN_REQUIRE_SHARED", "") not in ("", "0")


def missing(what: str, path: Path, env: str = "MODELCHAIN_SHARED") -> None:
    """Skip (or, when required, fail) because `what` is not at `path`."""
    message = (
        f"{what} not found at {path}: it is read from the shared/ folder beside the checkout "
        f"(set {env} to point elsewhere)"
    )
    if required():
        pytest.fail(message + "; MODELCHAIN_REQUIRE_SHARED=1 makes this a failure")
    pytest.skip(message)


def shared_path(relative: str, what: str) -> Path:
    """`SHARED/relative`, or skip/fail with a reason when it does not exist."""
    path = SHARED / relative
    if not path.exists():
        missing(what, path)
    return path
