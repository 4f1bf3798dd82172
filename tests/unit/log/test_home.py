"""The trust state (`modelchain.log.home.TrustState`): writes visible at once, synced by an
explicit flush, never half-written; and the trust-on-first-use decision for a server's key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelchain.core.errors import KeyFileError, SignatureError
from modelchain.core.note import Checkpoint, Signer, Verifier, sign_checkpoint
from modelchain.log.home import Home, KeyChoice, PinNotice, TrustState

ORIGIN = "example.com/log"
SIGNER = Signer.generate(ORIGIN)


def note(size: int) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, bytes([size % 256]) * 32), SIGNER)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync call (files and folders), counted."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_accept_then_flush_makes_it_durable(tmp_path: Path, fsyncs: list[int]) -> None:
    trust = Home(tmp_path).trust
    assert trust.accept(ORIGIN, 3, note(3)) is None
    assert trust.checkpoint(ORIGIN) == note(3)
    assert trust.pending and fsyncs == []  # written, visible, not yet synced
    trust.flush()
    assert not trust.pending
    assert len(fsyncs) == 2  # the file, then its folder


def test_accept_without_flush_is_visible_to_another_home(tmp_path: Path) -> None:
    first = Home(tmp_path)
    first.trust.accept(ORIGIN, 5, note(5))
    first.trust.remember_location("/data/ledger.db", ORIGIN)
    second = Home(tmp_path)
    assert second.trust.checkpoint(ORIGIN) == note(5)
    assert second.known_origin("/data/ledger.db") == ORIGIN
    assert second.trust.accept(ORIGIN, 4, note(4)) == note(5)  # never moves back
    assert first.trusted_checkpoint(ORIGIN) == note(5)


def test_flush_is_idempotent(tmp_path: Path, fsyncs: list[int]) -> None:
    trust = TrustState(tmp_path / "trust")
    trust.flush()  # nothing written: nothing to sync
    assert fsyncs == []
    trust.accept(ORIGIN, 1, note(1))
    trust.flush()
    synced = len(fsyncs)
    trust.flush()
    assert len(fsyncs) == synced


def test_with_block_flushes(tmp_path: Path) -> None:
    with Home(tmp_path).trust as trust:
        trust.accept(ORIGIN, 2, note(2))
        trust.claim_log_location(ORIGIN, "/data/ledger.db")
        assert trust.pending
    assert not trust.pending
    assert trust.log_location(ORIGIN) == "/data/ledger.db"


def test_a_failed_write_leaves_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust = Home(tmp_path).trust
    trust.accept(ORIGIN, 1, note(1))
    trust.flush()

    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        trust.accept(ORIGIN, 2, note(2))
    monkeypatch.undo()
    assert Home(tmp_path).trust.checkpoint(ORIGIN) == note(1)
    assert not trust.pending  # nothing half-done waits to be synced
    assert sorted(p.name for p in trust.directory.iterdir()) == [
        ".lock",
        next(p.name for p in trust.directory.glob("*.checkpoint")),
    ]  # no temporary file left behind


def test_synced_writes_sync_only_themselves(tmp_path: Path, fsyncs: list[int]) -> None:
    home = Home(tmp_path)
    home.trust.accept(ORIGIN, 1, note(1))
    assert fsyncs == [] and home.trust.pending
    home.remember_location("/data/ledger.db", ORIGIN)  # durable at once, as before
    assert len(fsyncs) == 2
    assert home.trust.pending  # the deferred checkpoint is still the flush's to sync
    home.remember_location("/data/ledger.db", ORIGIN)  # unchanged: nothing is written
    assert len(fsyncs) == 2
    home.trust.flush()
    assert not home.trust.pending


def test_forget_is_synced_by_flush(tmp_path: Path, fsyncs: list[int]) -> None:
    trust = Home(tmp_path).trust
    trust.accept(ORIGIN, 1, note(1))
    trust.flush()
    before = len(fsyncs)
    trust.forget_log(ORIGIN)
    assert trust.checkpoint(ORIGIN) is None and trust.pending
    trust.flush()
    assert len(fsyncs) == before + 1  # the folder that lost the file


# -- pinned keys: trust on first use ----------------------------------------------------------


def test_first_use_pins_the_advertised_key_once_accepted(tmp_path: Path) -> None:
    seen: list[PinNotice] = []
    home = Home(tmp_path, notify=seen.append)
    key = SIGNER.verifier()
    choice = home.trust.choose_key(ORIGIN, (), lambda: key, where="https://ledger.example")
    assert choice == KeyChoice(ORIGIN, key, "https://ledger.example", to_pin=True, first_use=True)
    assert home.trust.pinned_key(ORIGIN) is None  # not before a checkpoint is accepted
    notice = home.trust.accept_key(choice)
    assert notice == PinNotice(ORIGIN, "https://ledger.example", key.string())
    assert seen == [notice] and home.trust.notices == [notice]
    assert Home(tmp_path).trust.pinned_key(ORIGIN) == key.string()

    def not_asked() -> Verifier:
        raise AssertionError("a pinned key is not asked of the server again")

    again = home.trust.choose_key(ORIGIN, (), not_asked, where="https://ledger.example")
    assert again == KeyChoice(ORIGIN, key, "https://ledger.example")
    assert home.trust.accept_key(again) is None


def test_a_given_key_replaces_the_pin_without_a_notice(tmp_path: Path) -> None:
    home = Home(tmp_path)
    old, new = SIGNER.verifier(), Signer.generate(ORIGIN).verifier()
    home.trust.accept_key(KeyChoice(ORIGIN, old, "https://a", to_pin=True))
    choice = home.trust.choose_key(ORIGIN, (new,), lambda: old, where="https://a")
    assert choice == KeyChoice(ORIGIN, new, "https://a", to_pin=True, first_use=False)
    assert home.trust.accept_key(choice) is None
    assert home.trust.pinned_key(ORIGIN) == new.string() and home.trust.notices == []


def test_key_choices_refused(tmp_path: Path) -> None:
    trust = Home(tmp_path).trust
    other = Signer.generate("other.example/log").verifier()
    with pytest.raises(SignatureError, match="none of the given keys"):
        trust.choose_key(ORIGIN, (other,), lambda: other, where="https://a")
    with pytest.raises(SignatureError, match="https://a: advertises a key for log"):
        trust.choose_key(ORIGIN, (), lambda: other, where="https://a")
    trust.directory.mkdir(parents=True, exist_ok=True)
    (trust.directory / "pinned_keys.json").write_text("[]")
    with pytest.raises(KeyFileError, match="not a JSON object of verifier keys"):
        trust.choose_key(ORIGIN, (), lambda: other, where="https://a")


# -- the way out of an error, as data ---------------------------------------------------------


def test_errors_carry_their_way_out_beside_the_message(tmp_path: Path) -> None:
    from modelchain.core.errors import ModelchainError, command_line_text

    assert ModelchainError("plain").way_out is None
    with pytest.raises(KeyFileError) as caught:
        Home(tmp_path).operator_signer()
    assert str(caught.value) == f"no operator key at {Home(tmp_path).key_path}"
    way_out = caught.value.way_out
    assert way_out is not None
    assert (way_out.command, way_out.env) == (("init",), ("MODELCHAIN_HOME",))
    said = command_line_text(caught.value)
    assert said.endswith("(run `modelchain init`, or set MODELCHAIN_HOME)")


def test_trust_forget_and_move_are_flushed_before_they_return(tmp_path: Path) -> None:
    from modelchain.use.trust import forget, plan_forget

    home = Home(tmp_path)
    with home.trust as trust:
        trust.accept(ORIGIN, 1, note(1))
        trust.remember_location("/data/ledger.db", ORIGIN)
        trust.claim_log_location(ORIGIN, "/data/ledger.db")
    done = forget(plan_forget(home, ORIGIN), home)
    assert done == {"origin": ORIGIN, "forgot": "log", "locations": ["/data/ledger.db"]}
    assert not home.trust.pending and home.trust.remembered_logs() == []


def _file_note(trust: TrustState) -> str | None:
    path = trust._origin_file(ORIGIN)
    return path.read_text() if path.exists() else None


def test_an_appends_checkpoint_is_seen_at_once_and_written_soon(tmp_path: Path) -> None:
    """`accept_later` (an append's own checkpoint): every check of this process sees it at
    once, a second `TrustState` of the same folder too; the file has it within `DEFER_S`
    (by the writer thread), and at once after a flush."""
    import time

    from modelchain.log import home as home_module

    trust = Home(tmp_path).trust
    trust.accept(ORIGIN, 2, note(2))
    trust.accept_later(ORIGIN, 7, note(7))
    assert trust.checkpoint(ORIGIN) == note(7)
    assert Home(tmp_path).trust.checkpoint(ORIGIN) == note(7)
    trust.accept_later(ORIGIN, 5, note(5))  # never moves back, in memory either
    assert trust.checkpoint(ORIGIN) == note(7)
    deadline = time.monotonic() + 20 * home_module.DEFER_S + 5
    while _file_note(trust) != note(7) and time.monotonic() < deadline:
        time.sleep(home_module.DEFER_S / 5)
    assert _file_note(trust) == note(7)
    trust.accept_later(ORIGIN, 9, note(9))
    trust.flush()
    assert _file_note(trust) == note(9)


def test_a_deferred_checkpoint_stays_visible_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread drops its memory of a checkpoint only once the file holds it: a
    check between the two must not see the older file (a rollback would slip through)."""
    from modelchain.log import home as home_module

    trust = Home(tmp_path).trust
    trust.accept(ORIGIN, 1, note(1))
    seen: list[str | None] = []
    real = TrustState.accept

    def accept_and_look(self: TrustState, origin: str, size: int, text: str) -> str | None:
        seen.append(Home(tmp_path).trust.checkpoint(ORIGIN))  # before the file has it
        return real(self, origin, size, text)

    monkeypatch.setattr(TrustState, "accept", accept_and_look)
    with home_module._deferred_lock:
        home_module._deferred[(trust.directory, ORIGIN)] = (4, note(4))
    home_module._write_deferred(trust.directory)
    assert seen == [note(4)]
    assert _file_note(trust) == note(4)
