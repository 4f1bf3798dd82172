"""Writing a file so that nobody else sharing its folder can redirect or half-read it.

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
import secrets
import stat
from pathlib import Path

from modelchain.core.errors import InputError, UsageError
from modelchain.fs.digest import kind_name, read_error, show_path

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


def read_once(path: str) -> bytes:
    """One open, one read of a regular file, whole: what `load` and a `.safetensors`
    registration digest (never a directory, FIFO or device; the path is not opened again)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise read_error(path, e) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{show_path(path)} is a directory: this reads model files only")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{show_path(path)}: {kind_name(st.st_mode)}, not a model file")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            return f.read()
    except OSError as e:
        raise read_error(path, e) from None
    finally:
        if fd >= 0:
            os.close(fd)
