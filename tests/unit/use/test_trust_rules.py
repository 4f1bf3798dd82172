"""The trust state's rules about where a log lives, pinned through the library
(`Ledger` and `modelchain.use.trust`) rather than through `modelchain trust` output.

tests/cli/test_trust_cli.py carries the same rules as one-line messages naming the command
that undoes each refusal; here each refusal is its error class, and nothing it refused has
changed the trust state or the ledger."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from modelchain import Home, Ledger
from modelchain.core.errors import (
    LedgerInvalid,
    LocationError,
    ModelchainError,
    RollbackError,
    UsageError,
    command_line_text,
)
from modelchain.use import trust

DB = Path(".modelchain") / "ledger.db"


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def _project(folder: Path, home: Home, name: str = "m") -> str:
    """A ledger at folder/.modelchain/ledger.db with one block; returns its log's origin."""
    folder.mkdir(parents=True, exist_ok=True)
    with Ledger.open(folder / DB, home=home, create=True) as led:
        led.append(name=name, model_hash=digest_of(name))
        return led.audit().origin


def _trust_files(home: Home) -> dict[str, bytes]:
    folder = home.path / "trust"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


@pytest.fixture
def project(tmp_path: Path, home: Home) -> tuple[Path, str]:
    folder = tmp_path / "work"
    return folder, _project(folder, home)


def test_appending_to_a_copy_is_a_location_error(project, home: Home, tmp_path: Path) -> None:
    """(test_trust_cli.py: "copy of log", "trust move"; exit 1)"""
    folder, origin = project
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    before = (copy / DB).read_bytes()
    with Ledger.open(copy / DB, home=home) as led:
        assert led.audit().origin == origin  # reading a copy is fine
        with pytest.raises(LocationError, match="copy of log") as exc:
            led.append(name="new", model_hash=digest_of("new"))
        assert exc.value.exit_code == 1 and str(folder / DB) in str(exc.value)
    assert (copy / DB).read_bytes() == before
    with Ledger.open(folder / DB, home=home) as led:  # the original is accused of nothing
        led.audit()
        led.append(name="again", model_hash=digest_of("again"))


def test_move_makes_the_copy_the_log_and_the_original_stale(
    project, home: Home, tmp_path: Path
) -> None:
    """(test_trust_cli.py::test_trust_move_makes_the_copy_the_log)"""
    folder, origin = project
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    moved = trust.move(home, origin, str(copy / DB))
    assert (moved["origin"], moved["location"], moved["previous"]) == (
        origin,
        str(copy / DB),
        str(folder / DB),
    )
    with Ledger.open(copy / DB, home=home) as led:
        led.append(name="new", model_hash=digest_of("new"))
    [log] = trust.remembered(home)
    assert log["location"] == str(copy / DB) and log["size"] == 2
    with Ledger.open(folder / DB, home=home) as led:
        with pytest.raises(RollbackError, match="rolled back"):
            led.audit()
        with pytest.raises(RollbackError):
            led.append(name="x", model_hash=digest_of("x"))


def test_move_refuses_what_is_not_that_log(project, home: Home, tmp_path: Path) -> None:
    """(test_trust_cli.py::test_trust_move_checks_the_ledger_is_that_log)"""
    folder, origin = project
    other = _project(tmp_path / "other", home, "o")
    before = _trust_files(home)
    with pytest.raises(LedgerInvalid, match=f"not log {origin!r}") as exc:
        trust.move(home, origin, str(tmp_path / "other" / DB))
    assert exc.value.exit_code == 1
    with pytest.raises(ModelchainError) as missing:
        trust.move(home, origin, str(tmp_path / "other" / "none.db"))
    assert missing.value.exit_code == 2
    with pytest.raises(UsageError, match="remembers no log"):
        trust.move(home, "no.such/log", str(tmp_path / "other" / DB))
    assert _trust_files(home) == before
    locations = {log["origin"]: log["location"] for log in trust.remembered(home)}
    assert locations == {origin: str(folder / DB), other: str(tmp_path / "other" / DB)}


def test_move_refuses_an_older_copy(project, home: Home, tmp_path: Path) -> None:
    """(test_trust_cli.py::test_trust_move_refuses_an_older_copy)"""
    folder, origin = project
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    with Ledger.open(folder / DB, home=home) as led:
        led.append(name="newer", model_hash=digest_of("newer"))
    with pytest.raises(RollbackError):
        trust.move(home, origin, str(old / DB))
    [log] = trust.remembered(home)
    assert log["location"] == str(folder / DB)


def test_a_deleted_ledger_is_not_restarted_until_forgotten(project, home: Home) -> None:
    """(test_trust_cli.py::test_rm_rf_then_init_is_refused_leaving_nothing_...)"""
    folder, origin = project
    shutil.rmtree(folder / ".modelchain")
    for _ in range(2):  # the second refusal is the first again: it left no file behind
        with Ledger.open(folder / DB, home=home, create=True) as led:
            with pytest.raises(RollbackError, match="is gone") as exc:
                led.init()
        assert exc.value.exit_code == 1
        assert not (folder / ".modelchain").exists()
    plan = trust.plan_forget(home, ledger=str(folder / DB))
    assert (plan["origin"], plan["scope"]) == (origin, "log")
    assert trust.forget(plan, home)["forgot"] == "log"
    with Ledger.open(folder / DB, home=home, create=True) as led:
        led.init()
        fresh = led.audit().origin
    assert fresh != origin
    assert [log["origin"] for log in trust.remembered(home)] == [fresh]


def test_a_second_ledger_under_a_remembered_origin_is_refused(
    project, home: Home, tmp_path: Path
) -> None:
    """(test_trust_cli.py::test_init_with_the_origin_of_a_remembered_log_is_refused)"""
    _folder, origin = project
    second = tmp_path / "elsewhere" / "second.db"
    second.parent.mkdir()
    with Ledger.open(second, home=home, create=True) as led:
        with pytest.raises(UsageError, match="already exists"):
            led.init(origin)
    assert not second.exists()


def test_forget_needs_exactly_one_known_log(project, home: Home, tmp_path: Path) -> None:
    """(test_trust_cli.py::test_forget_errors: exit 2 each)"""
    folder, origin = project
    for kwargs in ({}, {"origin": origin, "ledger": str(folder / DB)}):
        with pytest.raises(UsageError, match="origin or ledger") as caught:
            trust.plan_forget(home, **kwargs)
        assert "ORIGIN or --ledger" in command_line_text(caught.value)
    with pytest.raises(UsageError, match=r"remembers no log 'no\.such/log'"):
        trust.plan_forget(home, origin="no.such/log")
    with pytest.raises(UsageError, match="remembers no log at"):
        trust.plan_forget(home, ledger=str(tmp_path / "nowhere.db"))
    assert trust.plan_forget(home, origin=origin)["scope"] == "log"
