"""What the registration validator refuses, as the command reports it: exit 2, one line, nothing
appended; the rules themselves are in unit/core/test_validate.py."""

from __future__ import annotations

import json
from pathlib import Path


def test_deep_metadata_from_the_command_line_is_a_usage_error(run, workdir: Path) -> None:
    (workdir / "m.bin").write_bytes(b"weights")
    deep = '{"a":' * 999 + "{}" + "}" * 999  # json.dumps itself cannot write it
    (workdir / "p.json").write_text(
        f'{{"predicateType": "https://example.com/x", "predicate": {deep}}}'
    )
    assert run("init").code == 0
    result = run("register", "m.bin", "--provenance", "p.json")
    assert result.code == 2, result
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    audit = run("audit", "--json")
    assert audit.code == 0 and json.loads(audit.stdout)["size"] == 0
