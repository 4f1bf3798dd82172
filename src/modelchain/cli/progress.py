"""The terminal progress bar the command line shows for long work (hashing multi-GiB models,
a full audit of a large ledger).

The library never prints: its hashing functions report to a `ProgressSink` (by default
`NullProgress`), and the command line passes a `Progress`. A bar stays invisible unless
stderr is a terminal *and* the work has already taken longer than `delay` seconds, so quick
commands never flash a bar and piped or captured output never contains one. `rich` is
imported only when a bar is actually shown, which keeps `modelchain --version` and every
short command from paying for it.

`advance` sits on the hashing hot path (once per read buffer, from several threads), so when
no bar is shown it costs an attribute check, or a lock and a clock read while waiting for the
delay to pass.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal, Self

__all__ = ["Progress", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """True when stderr exists and is a terminal (the only place a bar is useful)."""
    stream = sys.stderr
    if stream is None:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # replaced, closed or detached stream
        return False


class Progress:
    """A progress bar on stderr (of bytes, or of blocks) that appears only for slow work on a
    terminal.

    `enabled=None` decides automatically (stderr is a terminal); `True` forces the bar on (after
    the delay), `False` turns it off. `advance` may be called from any thread.
    """

    def __init__(
        self,
        total_bytes: int | None,
        description: str,
        enabled: bool | None = None,
        *,
        delay: float = 1.0,
        unit: Literal["bytes", "blocks"] = "bytes",
    ) -> None:
        #: what is counted: "bytes" (shown in binary units, with a speed) or "blocks"
        self.unit = unit
        self.total_bytes = total_bytes
        self.description = description
        self.enabled = stderr_is_terminal() if enabled is None else bool(enabled)
        self._lock = threading.Lock()
        self._completed = 0
        self._delay = delay
        self._show_at = time.monotonic() + delay
        self._display: Any = None  # rich.progress.Progress once shown
        self._task: Any = None
        self._closed = False

    @property
    def completed(self) -> int:
        """Bytes reported so far (counted only when enabled: nobody reads it otherwise)."""
        return self._completed

    @property
    def shown(self) -> bool:
        """Whether the bar has been put on screen."""
        return self._display is not None

    def start(self, total_bytes: int | None, description: str) -> None:
        """The library says how much work is coming (once it has found the files): the bar
        shows that total and waits its delay from now."""
        with self._lock:
            self.total_bytes = total_bytes
            self.description = description
            self._show_at = time.monotonic() + self._delay
            if self._display is not None:
                self._display.update(self._task, total=total_bytes, description=description)

    def advance(self, nbytes: int) -> None:
        """Record `nbytes` more bytes of work; shows the bar once the delay has passed."""
        if not self.enabled:
            return
        with self._lock:
            self._completed += nbytes
            if self._display is None:
                if self._closed or time.monotonic() < self._show_at:
                    return
                self._show()
            if self._display is not None:
                self._display.update(self._task, completed=self._completed)

    def _show(self) -> None:
        """Start the rich display (called with the lock held, at most once)."""
        try:
            from rich import progress as rp
            from rich.console import Console
        except ImportError:  # rich is a dependency, but a bar is never worth a crash
            self.enabled = False
            return
        counted = (
            (rp.MofNCompleteColumn(), rp.TextColumn("blocks"))
            if self.unit == "blocks"
            else (rp.DownloadColumn(binary_units=True), rp.TransferSpeedColumn())
        )
        display = rp.Progress(
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            *counted,
            rp.TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = display.add_task(
            self.description, total=self.total_bytes, completed=self._completed
        )
        display.start()
        self._display = display

    def close(self) -> None:
        """Remove the bar (if shown); later `advance` calls only count."""
        with self._lock:
            self._closed = True
            display, self._display = self._display, None
        if display is not None:
            display.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
