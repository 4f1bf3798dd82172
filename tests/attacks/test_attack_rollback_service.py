"""A running service on an SQLite ledger that is rolled back with SQL to an older, genuinely
signed state: it answers 503 instead of serving the old state, and the operator's `audit`
refuses it while the service still runs (the PostgreSQL case: test_attack_pg.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from conftest import Run, assert_clean_error
from server_util import init_ledger, running_server


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_sql_rollback_of_an_sqlite_ledger_under_a_running_service(tmp_path: Path, run: Run) -> None:
    srv_home = tmp_path / "srv-home"
    ledger = tmp_path / "data" / "ledger.db"
    ledger.parent.mkdir()
    init_ledger(str(ledger), srv_home)
    with running_server(str(ledger), srv_home) as server, server.client() as client:
        for i in range(4):
            answer = client.post(
                "/entries", json={"name": "m", "digest": _digest(f"v{i}")}, headers=server.auth()
            )
            assert answer.status_code == 201, answer.text
            if i == 1:
                old_note = client.get("/checkpoint").text
        assert client.post("/verify", json={"name": "m", "digest": _digest("v3")}).json()[
            "verified"
        ]
        conn = sqlite3.connect(ledger, timeout=30)
        with conn:  # back to the signed state of 2 blocks
            conn.execute("DELETE FROM blocks WHERE idx >= 2")
            conn.execute("DELETE FROM nodes WHERE ((idx + 1) << level) > 2")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (old_note,))
        conn.close()
        for path in ("/checkpoint", "/health", "/entries?start=0"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert "rolled back" in answer.json()["error"]["message"]
        answer = client.post("/verify", json={"name": "m", "digest": _digest("v1")})
        assert answer.status_code == 503, answer.text
        assert_clean_error(
            run("--ledger", ledger, "audit", MODELCHAIN_HOME=str(srv_home)), 1, "rolled back"
        )
