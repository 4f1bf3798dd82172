"""Write the golden files once (`python tests/golden/make_golden.py`); the test compares
what the code makes today with them, so a refactoring cannot change a format unnoticed.

Only run it again for a format change that is meant, and say so in the commit."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.golden.artifacts import build_all  # noqa: E402


def main() -> None:
    for name, data in build_all(HERE, fresh_keys=True).items():
        (HERE / name).write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
