"""The rules for a ledger kept in local files: never through a symlink, only regular files.

Which log lives at a location is decided by the verifier's trust state, keyed by the path the
user named. A symlink at that path would let whoever can write the directory point it at
another log's copy (or at nothing, so that a new log is started in the old one's place), and a
FIFO or device would hang or feed the reader. So the ledger file and each of its sidecars must
be absent or a regular file, checked with lstat and opened with O_NOFOLLOW.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from modelchain.core.errors import LedgerInvalid, LedgerUnreadable


def key_path(path: str | os.PathLike[str]) -> str:
    """The absolute path the trust state remembers a file ledger under: the path as named,
    made absolute, never resolved through symlinks (the link is not what the user named)."""
    return os.path.abspath(os.fspath(path))


def check_ledger_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse a ledger file (or sidecar) that is a symlink or not a regular file."""
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LedgerUnreadable(f"cannot read {os.fspath(path)}: {exc.strerror}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise LedgerInvalid(
                f"{os.fspath(path)}: is a symbolic link; a ledger is never read through one "
                "(it would decide which log is checked): put the ledger file itself here"
            )
        if not stat.S_ISREG(st.st_mode):
            raise LedgerUnreadable(f"{os.fspath(path)}: not a regular file")


def read_regular(path: str | os.PathLike[str], limit: int = -1) -> bytes | None:
    """The bytes (the first `limit`, if given) of a regular file, None if it does not exist;
    never through a symlink, and never blocking on a FIFO."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        check_ledger_files([path])  # a symlink: say so rather than "too many levels of links"
        raise LedgerUnreadable(f"cannot read {os.fspath(path)}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LedgerUnreadable(f"{os.fspath(path)}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit)
    finally:
        os.close(fd)


def open_lock(path: str | os.PathLike[str]) -> int:
    """Open (creating) a lock file, never through a symlink; returns the descriptor."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        check_ledger_files([path])
        raise LedgerUnreadable(f"cannot open {os.fspath(path)}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LedgerUnreadable(f"{os.fspath(path)}: not a regular file")
    return fd
