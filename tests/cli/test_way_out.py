"""With --json, a failure's way out is data beside the message a person reads."""

from __future__ import annotations

import json

from conftest import Run, assert_clean_error


def test_json_error_carries_the_way_out(run: Run) -> None:
    r = run("log", "--json")
    line = assert_clean_error(r, 2, "run `modelchain init` to create one")
    out = json.loads(r.stdout)
    assert out["error"] == line.removeprefix("modelchain: error: ")
    assert out["exit_code"] == 2
    assert out["way_out"] == {
        "command": ["init"],
        "env": ["MODELCHAIN_LEDGER"],
        "flag": ["--ledger"],
    }


def test_json_error_without_a_way_out_has_none(run: Run) -> None:
    r = run("hash", "missing.bin", "--json")
    assert_clean_error(r, 2)
    assert "way_out" not in json.loads(r.stdout)
