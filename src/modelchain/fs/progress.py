"""Progress reporting for long work (hashing multi-GiB models), without printing.

The library reports to a `ProgressSink` its caller passes (`NullProgress` when none is): it
never draws anything itself. The command line's terminal bar is `modelchain.cli.progress`.
A sink that also has `start(total_bytes, description)` is told, through `announce`, how much
work is coming once the files are found.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

__all__ = ["NullProgress", "ProgressSink", "announce"]


class ProgressSink(Protocol):
    """What the hashing functions need from a progress reporter."""

    def advance(self, nbytes: int) -> None: ...


def announce(sink: ProgressSink, total_bytes: int | None, description: str) -> None:
    """Tell `sink` the total about to be hashed, if it can use it (a bar can, a counter
    need not implement `start`)."""
    start = getattr(sink, "start", None)
    if start is not None:
        start(total_bytes, description)


class NullProgress:
    """A reporter that reports nothing: for callers that want no progress at all."""

    enabled = False

    def advance(self, nbytes: int) -> None:
        """Ignore the work done."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
