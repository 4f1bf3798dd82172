"""Exception types. Every error modelchain raises on purpose derives from ModelchainError.

Each carries the process exit code the CLI uses for it, so the mapping from failure to exit
status lives in one place: 1 means "verification failed", 2 means "usage error or unreadable
input" (see PRODUCT.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WayOut:
    """What would get past a failure, as data: a program or another face reads it here
    instead of parsing the message. The library's message states the problem (and, at most,
    a way out in the library's own terms); how a command line says the way out is `cli`,
    which only a face that has a command line shows (see `command_line_text`)."""

    #: a modelchain command that helps, as its words: ("token", "create", "--scope", "write")
    command: tuple[str, ...] = ()
    #: environment variables that would change the outcome
    env: tuple[str, ...] = ()
    #: command-line options that would change the outcome: ("--follow-symlinks",)
    flag: tuple[str, ...] = ()
    #: the way out in a command line's words, said right after the problem
    cli: str = ""
    #: the way out in the library's words (a keyword argument, say), said right after the
    #: problem in the message itself
    library: str = ""

    def as_json(self) -> dict[str, list[str]]:
        """The data a program reads (an error body, `--json`): commands, variables, flags."""
        return {"command": list(self.command), "env": list(self.env), "flag": list(self.flag)}


class ModelchainError(Exception):
    """Base class: a failure with a one-line, user-facing message, and optionally the way
    out of it as data (`way_out`). The message is the problem, then `way_out.library`."""

    exit_code: int = 2
    way_out: WayOut | None = None
    #: the message without the library's way out (what `command_line_text` starts from)
    problem: str = ""

    def __init__(self, *args: object, way_out: WayOut | None = None) -> None:
        self.problem = str(args[0]) if len(args) == 1 else ""
        if way_out is not None:
            self.way_out = way_out
            if way_out.library and len(args) == 1:
                args = (f"{args[0]}{way_out.library}",)
        super().__init__(*args)


def command_line_text(exc: ModelchainError) -> str:
    """The error as a command line says it: the problem, then the way out in command-line
    words when there is one; otherwise the library's message as it is."""
    way_out = exc.way_out
    if way_out is None or not way_out.cli:
        return str(exc)
    return (exc.problem or str(exc)) + way_out.cli


class UsageError(ModelchainError):
    """The caller asked for something that cannot be done as asked (bad option, bad name)."""


class InputError(ModelchainError):
    """An input file or directory is missing, unreadable, or not of the expected form."""


class LedgerUnreadable(InputError):
    """The ledger cannot be opened or parsed at all (not SQLite, not JSON, unknown scheme)."""


class MissingNode(LedgerUnreadable):
    """A stored Merkle node that should be there is not. Asked for beyond the stored tree,
    a wrong question (exit 2); on the path of a proof of a signed tree, a damaged ledger:
    the proof paths raise `LedgerInvalid` for it."""


class KeyFileError(InputError):
    """A key file is missing, malformed, or has unsafe permissions."""


class NoteFormatError(InputError):
    """A signed note or checkpoint is not well formed."""


class VerificationError(ModelchainError):
    """Something was checked and found wrong: exit status 1."""

    exit_code = 1


class LedgerInvalid(VerificationError):
    """The ledger's blocks, Merkle tree, or checkpoint do not hold together."""


class RollbackError(LedgerInvalid):
    """The ledger is older or smaller than a checkpoint this verifier accepted before."""


class ForkError(LedgerInvalid):
    """The ledger is not an extension of a checkpoint this verifier accepted before."""


class SignatureError(VerificationError):
    """A signature is missing, made by an unknown key, or does not verify."""


class InvalidProof(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""


class ModelMismatch(VerificationError):
    """The model's digest differs from the newest registered version."""


class NotRegistered(VerificationError):
    """No registration exists for the model's name."""


class UnsafePath(VerificationError):
    """A directory holds something that must not be hashed silently (symlink, device, escape)."""


def install_way_out(extra: str) -> WayOut:
    """How to add an optional part: modelchain is installed from its checkout (it is on no
    package index), so the command line's advice names the checkout's own commands."""
    return WayOut(
        cli=(
            " from the modelchain checkout: "
            f"`.venv/bin/pip install -e '.[{extra}]'` (or `make install-all` for every extra)"
        )
    )


def install_hint(extra: str) -> str:
    """`install_way_out` as one phrase, for a face that speaks to the command line."""
    return f"install the {extra!r} extra{install_way_out(extra).cli}"


class LocationError(VerificationError):
    """The ledger is not at the location this verifier remembers for its log (a copy, or a
    log that moved): refused until `modelchain trust move` or `trust forget` says so."""


class ModelUnreadable(InputError):
    """The (verified) bytes are not a well-formed file of the format they claim (exit 2)."""


class UnknownFormat(ModelUnreadable):
    """Neither the name nor the bytes say which format a model file is in."""
