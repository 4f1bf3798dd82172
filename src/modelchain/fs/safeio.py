"""Opening files safely: reading a regular file without ever blocking on a FIFO or device,
and writing a file so that nobody else sharing its folder can redirect or half-read it.

Every read of a file modelchain is given goes through `open_regular`: `O_NONBLOCK` (opening a
FIFO never waits for a writer), `O_NOFOLLOW` when the caller must not follow a link, then
`fstat` on the open descriptor, so what is read is the regular file that was checked, not
whatever the path names a moment later. `read_regular` adds a bounded read.

One helper for every file modelchain writes (trust state, token file, keys, signature
bundles, a JSON ledger), because each is written into a folder someone else may be able to
write too: a predictable temporary name opened without `O_EXCL`/`O_NOFOLLOW` lets a planted
symbolic link turn our write into an overwrite of any file we can write.

`atomic_write` creates its temporary file in the target's own folder with a random name,
`O_CREAT | O_EXCL | O_NOFOLLOW` (never an existing file, never through a link), writes,
fsyncs, then renames it over the target and fsyncs the folder. A rename replaces a symbolic
link at the target itself and never writes through it, so a link planted at the target
path is harmless: it is replaced, its destination untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from modelchain.core.errors import InputError, UsageError

__all__ = [
    "NotRegularFile",
    "atomic_write",
    "fsync_dir",
    "kind_name",
    "open_regular",
    "os_message",
    "read_error",
    "read_once",
    "read_regular",
    "show_path",
    "sync_file",
]

#: temporary files are `.NAME.<random>.tmp` next to the target
_TMP_SUFFIX = ".tmp"
_ATTEMPTS = 16


def _create_temp(directory: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new file of our own in `directory`: exclusive, not through a link, random name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_ATTEMPTS):
        tmp = directory / f".{name}.{secrets.token_hex(8)}{_TMP_SUFFIX}"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file in {directory}")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in `directory` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    mode: int = 0o600,
    *,
    overwrite: bool = True,
    durable: bool = True,
) -> None:
    """Write `data` to `path` atomically: readers see the old file or the whole new one.

    `mode` is the new file's permission bits (0o600 for anything private, 0o644 for what is
    meant to be shared), set on the temporary file before any byte is written, so a secret is
    never readable by others even for a moment. With `overwrite=False` an existing `path`
    (a file, or a symbolic link anywhere) raises `FileExistsError` and is left alone: the
    file is published with a hard link, which never replaces anything. `durable=False`
    skips both fsyncs: the rename is still atomic and at once visible to every process,
    only a power loss may take it back (`sync_file` later makes it durable).
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = _create_temp(directory, target.name, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away; `mode` is what we want
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target, follow_symlinks=False)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


def sync_file(path: str | os.PathLike[str]) -> None:
    """Make a file written with `durable=False` durable: its data, then its folder entry."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(Path(path).parent)


_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must never wait for a writer
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ = os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def show_path(path: str) -> str:
    """A path fit for a one-line message: undecodable bytes and control characters escaped."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def os_message(e: OSError) -> str:
    """`strerror` in the lower case our messages use ("permission denied")."""
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]


def read_error(path: str, e: OSError) -> InputError:
    """The one-line InputError for a model path that could not be opened or read."""
    shown = show_path(path)
    if isinstance(e, FileNotFoundError):
        return InputError(f"no such file or directory: {shown}")
    if isinstance(e, PermissionError):
        return InputError(f"cannot read {shown}: permission denied")
    if isinstance(e, IsADirectoryError):
        return InputError(f"cannot hash {shown}: it is a directory, not a file")
    return InputError(f"cannot read {shown}: {os_message(e)}")


def kind_name(mode: int) -> str:
    """What a file that is not a regular one is, for messages ("a FIFO")."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


class NotRegularFile(Exception):
    """The path opened is a directory, FIFO, socket or device (`mode` says which): each
    caller words its own message."""

    def __init__(self, mode: int) -> None:
        super().__init__(kind_name(mode))
        self.mode = mode

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def open_regular(
    path: str | os.PathLike[str], *, follow: bool = True
) -> tuple[int, os.stat_result]:
    """A blocking read-only descriptor of the regular file at `path`, and its `fstat`.

    Opened non-blocking (a FIFO never hangs the open) and, with `follow=False`, never through
    a symbolic link (`OSError` ELOOP); the descriptor is checked, not the path, so the file
    cannot be swapped between check and read. Raises `OSError` or `NotRegularFile`; the
    caller closes the descriptor."""
    fd = os.open(path, _READ | (0 if follow else _O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(st.st_mode)
        if _O_NONBLOCK:  # only the open had to be non-blocking: reads must never see EAGAIN
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(
    path: str | os.PathLike[str], *, limit: int | None = None, follow: bool = True
) -> bytes:
    """The bytes of the regular file at `path` (see `open_regular`), one open, one read.

    With `limit`, at most `limit + 1` bytes are read, so a caller can tell a file over its
    limit without reading all of it. Raises `OSError` or `NotRegularFile`."""
    fd, _ = open_regular(path, follow=follow)
    with os.fdopen(fd, "rb", closefd=True) as f:
        return f.read() if limit is None else f.read(limit + 1)


def read_once(path: str) -> bytes:
    """One open, one read of a regular file, whole: what `load` reads (never a directory,
    FIFO or device; the path is not opened again)."""
    try:
        return read_regular(path)
    except NotRegularFile as e:
        if e.is_dir:
            raise UsageError(
                f"{show_path(path)} is a directory: this reads model files only"
            ) from None
        raise InputError(f"{show_path(path)}: {kind_name(e.mode)}, not a model file") from None
    except OSError as e:
        raise read_error(path, e) from None
