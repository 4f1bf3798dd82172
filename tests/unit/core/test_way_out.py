"""The library states the problem; the way out is data (`WayOut`), and only a face with a
command line says it in command-line words (`command_line_text`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelchain.core.errors import (
    KeyFileError,
    LedgerUnreadable,
    ModelchainError,
    UnknownFormat,
    UnsafePath,
    UsageError,
    WayOut,
    command_line_text,
    install_hint,
    install_way_out,
)

#: what only a command line says: a modelchain command, a flag, a shell command
CLI_WORDS = ("modelchain ", "--", "`")


def assert_library_words(exc: ModelchainError) -> None:
    assert not any(word in str(exc) for word in CLI_WORDS), str(exc)


def test_the_message_is_the_problem_then_the_librarys_way_out() -> None:
    way_out = WayOut(flag=("--name",), library=": pass name=", cli=": pass --name")
    exc = UsageError("cannot derive a model name from ''", way_out=way_out)
    assert str(exc) == "cannot derive a model name from '': pass name="
    assert exc.problem == "cannot derive a model name from ''"
    assert command_line_text(exc) == "cannot derive a model name from '': pass --name"
    assert way_out.as_json() == {"command": [], "env": [], "flag": ["--name"]}


def test_without_command_line_words_the_message_is_said_as_it_is() -> None:
    assert command_line_text(UsageError("plain")) == "plain"
    exc = UsageError("set X", way_out=WayOut(env=("X",)))
    assert command_line_text(exc) == "set X"


def test_install_hint_is_the_way_out_said_as_one_phrase() -> None:
    assert install_hint("sklearn") == "install the 'sklearn' extra" + install_way_out("sklearn").cli
    assert "pip install -e '.[sklearn]'" in install_way_out("sklearn").cli


def test_a_symlink_refusal_names_the_keyword_and_carries_the_flag(tmp_path: Path) -> None:
    from modelchain.fs.digest import hash_directory

    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    (model / "alias.bin").symlink_to("w.bin")
    with pytest.raises(UnsafePath) as caught:
        hash_directory(model)
    assert_library_words(caught.value)
    assert str(caught.value).endswith("symbolic links are not hashed (pass follow_symlinks=True)")
    assert caught.value.way_out is not None
    assert caught.value.way_out.flag == ("--follow-symlinks",)
    assert command_line_text(caught.value).endswith("(use --follow-symlinks)")


def test_no_ledger_carries_init_flag_and_variable(tmp_path: Path) -> None:
    from modelchain.ledgers import Ledger
    from modelchain.log.store import NO_LEDGER_WAY_OUT

    (tmp_path / "project").mkdir()
    missing = tmp_path / "project" / "none.db"
    with pytest.raises(LedgerUnreadable) as caught:
        Ledger.open(missing, home=tmp_path / "home")
    assert str(caught.value) == f"no ledger at {missing}"
    assert caught.value.way_out == NO_LEDGER_WAY_OUT
    assert NO_LEDGER_WAY_OUT.command == ("init",)
    assert NO_LEDGER_WAY_OUT.flag == ("--ledger",)
    assert NO_LEDGER_WAY_OUT.env == ("MODELCHAIN_LEDGER",)
    assert command_line_text(caught.value) == (
        f"no ledger at {missing}: run `modelchain init` to create one, or name another "
        "with --ledger or MODELCHAIN_LEDGER"
    )


def test_a_missing_key_names_the_list_command_as_data(tmp_path: Path) -> None:
    from modelchain.claims.keys import KeyRing

    with pytest.raises(KeyFileError) as caught:
        KeyRing(tmp_path).get("alice")
    assert_library_words(caught.value)
    assert caught.value.way_out == WayOut(
        command=("key", "list"), cli=" (see `modelchain key list`)"
    )


def test_an_unknown_format_names_the_keyword_not_the_flag() -> None:
    from modelchain.use.guard import detect_format

    with pytest.raises(UnknownFormat) as caught:
        detect_format(b"\x00\x01 not a model", "weights.xyz")
    assert_library_words(caught.value)
    assert "(format=): " in str(caught.value)
    assert caught.value.way_out is not None
    assert caught.value.way_out.flag == ("--format",)
    assert "--format on the command line" in command_line_text(caught.value)


def test_a_refused_rollback_carries_the_command_that_accepts_it() -> None:
    from modelchain.checks.audit import check_trusted
    from modelchain.core.errors import RollbackError
    from modelchain.core.note import Checkpoint

    way_back = WayOut(command=("trust", "forget", "o"), cli=". If so, run it")
    older, newer = Checkpoint("o", 1, b"\x00" * 32), Checkpoint("o", 2, b"\x01" * 32)
    with pytest.raises(RollbackError) as caught:
        check_trusted("L", older, newer, lambda size, root: True, lambda: way_back)
    assert str(caught.value).endswith("was accepted before")
    assert caught.value.way_out == way_back
    assert command_line_text(caught.value).endswith("was accepted before. If so, run it")


def test_a_server_refusing_local_writes_says_so_in_the_librarys_words() -> None:
    from modelchain.ledgers.client import LedgerClient, writes_refused

    exc = writes_refused("https://ledger.example")
    assert_library_words(exc)
    assert exc.way_out is not None
    assert exc.way_out.command == ("register", "--ledger", "https://ledger.example")
    with pytest.raises(UsageError) as caught:
        LedgerClient("https://ledger.example").writer()
    assert command_line_text(caught.value) == command_line_text(exc)
    assert "`modelchain register --ledger URL`" in command_line_text(exc)


def test_forget_names_its_arguments_not_its_flags(tmp_path: Path) -> None:
    from modelchain.log.home import Home
    from modelchain.use import trust

    with pytest.raises(UsageError) as caught:
        trust.plan_forget(Home(tmp_path))
    assert str(caught.value) == "name the log to forget: origin or ledger (not both)"
    assert command_line_text(caught.value) == (
        "name the log to forget: ORIGIN or --ledger LOCATION (not both)"
    )
