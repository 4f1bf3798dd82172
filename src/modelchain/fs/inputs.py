"""Reading the small files a user names on the command line: keys, passwords, signature
bundles, provenance statements.

One rule for all of them, because each is a place where a mistaken path must give one clear
line and never hang or exhaust memory: regular files only (a FIFO would block the read, a
device never end), a size limit read with one byte to spare, and an error naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelchain.core.errors import InputError
from modelchain.fs.safeio import NotRegularFile, read_regular


def read_small_file(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[InputError] = InputError,
) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes that is not empty.

    `what` names the kind of file in messages ("key file", "signature bundle", ...).
    """
    p = Path(path)
    try:
        data = read_regular(p, limit=limit)
    except NotRegularFile as exc:
        if exc.is_dir:
            raise error(f"{p}: is a directory, not a {what}") from None
        raise error(f"{p}: not a regular file") from None
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except OSError as exc:
        # a folder we may not list is still a folder, a socket (which cannot be opened) still
        # not a regular file: say what it is rather than why opening it failed
        if p.is_dir():
            raise error(f"{p}: is a directory, not a {what}") from None
        if p.exists() and not p.is_file():
            raise error(f"{p}: not a regular file") from None
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{p}: too large for a {what} (limit {_size(limit)})")
    if not data.strip():
        raise error(f"{p}: {what} is empty")
    return data


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"
