"""`MODELCHAIN_HOME`: the operator's signing key and the verifier's trust state.

Both must live where someone who can write the ledger cannot: the key because it is what
makes a rewritten ledger detectable, the trust state because it is what makes a rolled-back
ledger detectable. So the home refuses to be the ledger's own directory, the key file must
be private to its owner (mode 0600), and the trust state only ever moves forward.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelchain.core.errors import KeyFileError, SignatureError, UsageError, WayOut
from modelchain.fs.safeio import atomic_write, fsync_dir, sync_file

if TYPE_CHECKING:
    from modelchain.core.note import Signer, Verifier

OPERATOR_KEY_NAME = "modelchain-operator"
#: the verifier key pinned for each log served over HTTP (origin -> key), as SSH's known_hosts
PINS_FILE = "pinned_keys.json"


#: how long an append's own checkpoint may wait before it is written to the trust state file
#: (it is visible to this process at once): a rename per append costs more than the append
DEFER_S = 0.05

#: checkpoints accepted in memory and not yet written, by (trust folder, origin), shared by
#: every `TrustState` of the process: (size, note)
_deferred: dict[tuple[Path, str], tuple[int, str]] = {}
_deferred_lock = threading.Lock()
#: wakes the one writer thread (started on first use) when something is deferred
_deferred_wake = threading.Event()
_deferred_thread: threading.Thread | None = None
#: the writer thread's name: a fork beside it is sound (the child starts afresh, below)
WRITER_THREAD = "modelchain-trust"


def _write_deferred(directory: Path | None = None) -> None:
    """Write the checkpoints accepted in memory (of one trust folder, or all) to their files,
    durably (off the append's path: in the writer thread, a flush or at exit). A write that
    fails stays deferred."""
    with _deferred_lock:
        taken = {k: v for k, v in _deferred.items() if directory is None or k[0] == directory}
    for key, entry in taken.items():
        folder, origin = key
        with TrustState(folder).synced() as trust:
            trust.accept(origin, *entry)  # a failure leaves it deferred
        with _deferred_lock:
            # dropped only now that the file holds it: a reader in between sees it in memory
            if _deferred.get(key) == entry:
                del _deferred[key]


def _deferred_writer() -> None:
    """Write what is deferred `DEFER_S` after it was, for as long as the process runs."""
    while True:
        _deferred_wake.wait()
        time.sleep(DEFER_S)
        _deferred_wake.clear()
        with contextlib.suppress(OSError, ValueError, KeyFileError):
            _write_deferred()  # a failure stays deferred: the next flush raises it
        with _deferred_lock:
            if _deferred:
                _deferred_wake.set()


def _write_deferred_at_exit() -> None:
    with contextlib.suppress(OSError, ValueError, KeyFileError):
        _write_deferred()


def _after_fork_in_child() -> None:
    """A forked child has no writer thread (and may have forked mid-write): start afresh.
    What its parent deferred is the parent's to write."""
    global _deferred_lock, _deferred_wake, _deferred_thread
    _deferred.clear()
    _deferred_lock, _deferred_wake, _deferred_thread = threading.Lock(), threading.Event(), None


os.register_at_fork(after_in_child=_after_fork_in_child)


atexit.register(_write_deferred_at_exit)


def default_home() -> Path:
    """`MODELCHAIN_HOME`, else `$XDG_CONFIG_HOME/modelchain`, else `~/.config/modelchain`."""
    env = os.environ.get("MODELCHAIN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "modelchain"


def _write_private(path: Path, text: str, *, durable: bool = True) -> None:
    """Atomically write a file only its owner can read (`safeio.atomic_write`); durably
    (file and folder synced) unless told otherwise."""
    atomic_write(path, text, 0o600, durable=durable)


@dataclass(frozen=True)
class KeyChoice:
    """The key a log's checkpoints must be signed by, and whether it is still to be pinned
    (only once a checkpoint signed by it is accepted, so a mistyped key or a server's bogus
    one is never remembered)."""

    origin: str
    key: Verifier
    #: the server whose log it checks
    location: str
    #: not the pinned key: `TrustState.accept_key` remembers it
    to_pin: bool = False
    #: taken on the server's word (trust on first use): the user is told once it is pinned
    first_use: bool = False


@dataclass(frozen=True)
class PinNotice:
    """A log's verifier key pinned on first use. The library prints nothing: whoever opened
    the ledger (the command line) is handed this and tells the user, as SSH does."""

    origin: str
    #: the server that advertised the key
    location: str
    #: the key, as `name+id+key`
    key: str


def _supersedes(size: int, note: str, current: str) -> bool:
    """Does a checkpoint of `size` (its `note`) replace the `current` accepted note? When
    it is larger; at the same size only when it adds the index root `current` lacks (a
    ledger migrated: same tree, now with its index signed)."""
    from modelchain.core.index import root_from_extensions
    from modelchain.core.note import Checkpoint, parse_note

    old = Checkpoint.parse(parse_note(current).text)
    if size != old.size:
        return size > old.size
    if note == current or root_from_extensions(old.extensions) is not None:
        return False
    new = Checkpoint.parse(parse_note(note).text)
    return root_from_extensions(new.extensions) is not None


class TrustState:
    """The verifier's memory in `MODELCHAIN_HOME/trust`: the newest checkpoint accepted per
    log, where each log lives and where copies of it were seen, and the verifier keys pinned
    for servers' logs.

    Every write is atomic and visible to every process the moment it returns, but only
    `flush` (or leaving a `with` block) makes it durable: one sync for a batch instead of two
    per write. A power loss before the flush can only leave the state older than what was
    accepted, which the next check accepts again by a consistency proof. Writes are locked
    across processes (a file lock) and threads.
    """

    def __init__(self, directory: Path, notify: Callable[[PinNotice], None] | None = None) -> None:
        self.directory = directory
        #: called with each key pinned on first use (they are also kept in `notices`)
        self.notify = notify
        self.notices: list[PinNotice] = []
        self._pending: set[Path] = set()
        self._folder_changed = False
        self._pending_lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"TrustState({str(self.directory)!r})"

    def __enter__(self) -> TrustState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    # -- writing and syncing ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def synced(self) -> Iterator[TrustState]:
        """Writes in this block (of this thread) are durable before they return, as those
        that must be: nothing else pending is synced by them."""
        before = getattr(self._local, "synced", False)
        self._local.synced = True
        try:
            yield self
        finally:
            self._local.synced = before

    def _write(self, path: Path, text: str) -> None:
        """Replace `path` atomically, synced by the next `flush` (at once in `synced`). A
        failed write raises and leaves the file as it was (nothing is then pending for it)."""
        durable = getattr(self._local, "synced", False)
        _write_private(path, text, durable=durable)
        with self._pending_lock:
            if durable:
                self._pending.discard(path)
            else:
                self._pending.add(path)

    def _write_json(self, path: Path, data: dict[str, str], end: str = "") -> None:
        self._write(path, json.dumps(data, indent=2, sort_keys=True) + end)

    def _unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        with self._pending_lock:
            self._pending.discard(path)
            if getattr(self._local, "synced", False):
                fsync_dir(self.directory)
            else:
                self._folder_changed = True

    @property
    def pending(self) -> bool:
        """Whether some write of this object is not yet durable."""
        with self._pending_lock:
            return bool(self._pending) or self._folder_changed

    def flush(self) -> None:
        """Make every write of this object durable (each file and its folder entry), and the
        checkpoints accepted in memory for this folder (`accept_later`) written and durable.
        Calling it again with nothing written since does nothing."""
        _write_deferred(self.directory)
        self.flush_files()

    def flush_files(self) -> None:
        """Sync what this object wrote (not the checkpoints still deferred)."""
        with self._pending_lock:
            paths, self._pending = sorted(self._pending), set()
            folder, self._folder_changed = self._folder_changed, False
        try:
            for path in paths:
                sync_file(path)  # its data, then the folder entry
            if folder:  # a file removed
                fsync_dir(self.directory)
        except BaseException:
            with self._pending_lock:  # not synced: still pending
                self._pending.update(paths)
                self._folder_changed = self._folder_changed or folder
            raise

    # -- accepted checkpoints ---------------------------------------------------------------

    def _origin_file(self, origin: str) -> Path:
        return self.directory / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".checkpoint")

    def checkpoint(self, origin: str) -> str | None:
        """The newest checkpoint note accepted for `origin`, if any: the file's, or one this
        process accepted in memory (`accept_later`) and has not written yet."""
        stored = self._stored_checkpoint(origin)
        with _deferred_lock:
            deferred = _deferred.get((self.directory, origin))
        if deferred is None:
            return stored
        if stored is None or _supersedes(deferred[0], deferred[1], stored):
            return deferred[1]
        return stored

    def _stored_checkpoint(self, origin: str) -> str | None:
        try:
            return self._origin_file(origin).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read trust state for {origin}: {exc}") from exc

    def accept(self, origin: str, size: int, note: str) -> str | None:
        """Remember `note` as accepted unless a larger one already is (never move back; at
        the same size only a checkpoint that adds the index root replaces one without).
        Returns the note accepted before (None: none), to take the change back with."""
        with self._locked():
            current = self._stored_checkpoint(origin)
            if current is not None and not _supersedes(size, note, current):
                return current
            self._write(self._origin_file(origin), note)
            return current

    def accept_later(self, origin: str, size: int, note: str) -> None:
        """An append's own checkpoint: accepted at once for this process (every
        `checkpoint` call here returns it), written to the file within `DEFER_S` by a writer thread,
        on `flush` (a ledger's close) and at exit. A write per append would cost more than
        the append; a process killed in between leaves the file older than the ledger, which
        the next check accepts by a consistency proof, as after a power loss."""
        global _deferred_thread
        key = (self.directory, origin)
        with _deferred_lock:
            current = _deferred.get(key)
            # sizes first: a note is parsed only to break a tie (an append always grows)
            if (
                current is None
                or size > current[0]
                or (size == current[0] and _supersedes(size, note, current[1]))
            ):
                _deferred[key] = (size, note)
            if _deferred_thread is None:
                _deferred_thread = threading.Thread(
                    target=_deferred_writer, name=WRITER_THREAD, daemon=True
                )
                _deferred_thread.start()
        _deferred_wake.set()

    # -- how far each log was audited ---------------------------------------------------------
    #
    # Apart from the accepted checkpoint (which `verify` moves too), the checkpoint of the last
    # full or incremental audit of each log and the location it was audited at: the next audit
    # there checks only what was appended since.

    def _audit_file(self, origin: str) -> Path:
        return self.directory / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".audited")

    def audited(self, origin: str) -> tuple[str, str] | None:
        """(location, checkpoint note) of the last audit of `origin`, or None. A record that
        cannot be read is none: the next audit is then a full one, never a skipped one."""
        try:
            data = json.loads(self._audit_file(origin).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        location, note = data.get("location"), data.get("checkpoint")
        if not isinstance(location, str) or not isinstance(note, str):
            return None
        return location, note

    def accept_audit(self, origin: str, location: str, note: str) -> None:
        """Remember that the ledger at `location` audited as log `origin` up to `note`."""
        with self._locked():
            self._write_json(self._audit_file(origin), {"location": location, "checkpoint": note})

    # -- where each log lives -----------------------------------------------------------------
    #
    # `locations.json` maps every location where a log was accepted (the log itself and any
    # copy of it that was read) to its origin; `logs.json` names, per origin, the one location
    # where the log lives and may be appended to. A copy elsewhere can be read, but appending
    # to it would make the log itself look rolled back, so only `trust move` makes it the log.

    def _locations_file(self) -> Path:
        return self.directory / "locations.json"

    def _logs_file(self) -> Path:
        return self.directory / "logs.json"

    def _read_map(self, path: Path) -> dict[str, str]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise KeyFileError(f"{path}: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _read_locations(self) -> dict[str, str]:
        return self._read_map(self._locations_file())

    def _read_logs(self) -> dict[str, str]:
        return self._read_map(self._logs_file())

    def origin_at(self, location: str) -> str | None:
        """The origin of the ledger last accepted at this location, if any."""
        return self._read_locations().get(location)

    def remember_location(self, location: str, origin: str) -> None:
        with self._locked():
            data = self._read_locations()
            if data.get(location) == origin:
                return
            data[location] = origin
            self._write_json(self._locations_file(), data)

    def log_location(self, origin: str) -> str | None:
        """Where the log `origin` lives (is appended to), if this verifier knows.

        A trust state written before `logs.json` existed knows only `locations.json`: when that
        names exactly one location for the log, that is where it lives."""
        found = self._read_logs().get(origin)
        if found is not None:
            return found
        places = self.locations_of(origin)
        return places[0] if len(places) == 1 else None

    def locations_of(self, origin: str) -> list[str]:
        """Every location where the log `origin` was accepted (itself and its copies)."""
        return sorted(loc for loc, o in self._read_locations().items() if o == origin)

    def claim_log_location(self, origin: str, location: str) -> str:
        """Record `location` as where `origin` lives unless another one already is; returns
        the location the log lives at afterwards."""
        with self._locked():
            logs = self._read_logs()
            current = logs.get(origin)
            if current is None:
                places = self.locations_of(origin)
                current = places[0] if len(places) == 1 else location
                logs[origin] = current
                self._write_json(self._logs_file(), logs)
            return current

    def move_log(self, origin: str, location: str) -> str | None:
        """Make `location` the place where `origin` lives; returns the previous one. The
        previous location is released (a new log may start there)."""
        with self._locked():
            logs = self._read_logs()
            previous = logs.get(origin)
            if previous is None:
                places = self.locations_of(origin)
                previous = places[0] if len(places) == 1 else None
            logs[origin] = location
            self._write_json(self._logs_file(), logs)
            data = self._read_locations()
            if previous is not None and previous != location and data.get(previous) == origin:
                del data[previous]
            data[location] = origin
            self._write_json(self._locations_file(), data)
            return previous

    def forget(self, origin: str, location: str | None = None) -> None:
        """Drop the accepted checkpoint of one log (after a deliberate reset), and what is
        remembered of `location`."""
        with self._locked():
            self._unlink(self._origin_file(origin))
            self._unlink(self._audit_file(origin))
            if location is not None:
                data = self._read_locations()
                if data.pop(location, None) is not None:
                    self._write_json(self._locations_file(), data)

    def forget_log(self, origin: str) -> list[str]:
        """Drop everything remembered about `origin`: its newest accepted checkpoint, where it
        lives and every location it was seen at. Returns those locations."""
        with self._locked():
            self._unlink(self._origin_file(origin))
            self._unlink(self._audit_file(origin))
            logs = self._read_logs()
            home = logs.pop(origin, None)
            if home is not None:
                self._write_json(self._logs_file(), logs)
            data = self._read_locations()
            gone = sorted(loc for loc, o in data.items() if o == origin)
            if gone:
                for loc in gone:
                    del data[loc]
                self._write_json(self._locations_file(), data)
            return sorted({*gone, *([home] if home else [])})

    def forget_location(self, location: str) -> str | None:
        """Drop what is remembered about one location of a log's copy; returns its origin."""
        with self._locked():
            data = self._read_locations()
            origin = data.pop(location, None)
            if origin is not None:
                self._write_json(self._locations_file(), data)
            return origin

    # -- pinned verifier keys (trust on first use) ------------------------------------------

    def _pins_file(self) -> Path:
        return self.directory / PINS_FILE

    def _read_pins(self) -> dict[str, str]:
        path = self._pins_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise KeyFileError(f"{path}: not a JSON object of verifier keys")
        return data

    def pinned_key(self, origin: str) -> str | None:
        """The verifier key pinned for `origin` (`name+id+key`), if any."""
        return self._read_pins().get(origin)

    def choose_key(
        self,
        origin: str,
        given: Sequence[Verifier],
        advertised: Callable[[], Verifier],
        *,
        where: str,
    ) -> KeyChoice:
        """The key that must sign `origin`'s checkpoints, served from `where`: the given one
        for that log, else the one pinned before, else -- trust on first use -- the key the
        server advertises (`advertised` is asked only then). A server that changed its key
        is refused by the signature check: its checkpoints are checked with the pinned key."""
        from modelchain.core.errors import NoteFormatError
        from modelchain.core.note import Verifier

        pinned = self.pinned_key(origin)
        if given:
            chosen = next((k for k in given if k.name == origin), None)
            if chosen is None:
                names = ", ".join(k.name for k in given)
                raise SignatureError(f"none of the given keys ({names}) is for log {origin!r}")
            return KeyChoice(origin, chosen, where, to_pin=pinned != chosen.string())
        if pinned is not None:
            try:
                return KeyChoice(origin, Verifier.from_string(pinned), where)
            except (NoteFormatError, UsageError) as exc:
                raise KeyFileError(
                    f"the pinned key of log {origin!r} is unreadable: {exc}"
                ) from None
        key = advertised()
        if key.name != origin:
            raise SignatureError(f"{where}: advertises a key for log {key.name!r}, not {origin!r}")
        return KeyChoice(origin, key, where, to_pin=True, first_use=True)

    def accept_key(self, choice: KeyChoice) -> PinNotice | None:
        """Pin the key of `choice` once a checkpoint signed by it was accepted. A key taken
        on first use gives a `PinNotice` (handed to `notify` and kept in `notices`)."""
        if not choice.to_pin:
            return None
        vkey = choice.key.string()
        with self._locked():
            pins = self._read_pins()
            pins[choice.origin] = vkey
            self._write_json(self._pins_file(), pins, end="\n")
        if not choice.first_use:
            return None
        notice = PinNotice(choice.origin, choice.location, vkey)
        self.notices.append(notice)
        if self.notify is not None:
            self.notify(notice)
        return notice

    # -- what is remembered -----------------------------------------------------------------

    def remembered_logs(self) -> list[dict[str, object]]:
        """Every log this verifier remembers: origin, accepted size and root, where it lives,
        the other locations it was seen at, and the key that signed its accepted checkpoint."""
        from modelchain.core.errors import NoteFormatError
        from modelchain.core.note import Checkpoint, parse_note

        locations = self._read_locations()
        logs = self._read_logs()
        checkpoints: dict[str, str] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.checkpoint")):
                try:
                    note = path.read_text(encoding="utf-8")
                    origin = Checkpoint.parse(parse_note(note).text).origin
                except (OSError, UnicodeDecodeError, NoteFormatError):
                    continue
                if path == self._origin_file(origin):
                    checkpoints[origin] = note
        origins = sorted({*checkpoints, *logs, *locations.values()})
        out: list[dict[str, object]] = []
        for origin in origins:
            size: int | None = None
            root: str | None = None
            keys: list[str] = []
            note = checkpoints.get(origin)
            if note is not None:
                parsed = parse_note(note)
                cp = Checkpoint.parse(parsed.text)
                size, root = cp.size, base64.b64encode(cp.root_hash).decode()
                keys = [f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures]
            home = self.log_location(origin)
            out.append(
                {
                    "origin": origin,
                    "size": size,
                    "root_hash": root,
                    "location": home,
                    "copies": [loc for loc in self.locations_of(origin) if loc != home],
                    "key": keys[0] if keys else None,
                }
            )
        return out


class Home:
    """One `MODELCHAIN_HOME` directory: the operator key and the trust state (`trust`)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        notify: Callable[[PinNotice], None] | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_home()
        #: the verifier's memory; `notify` is told of each key pinned on first use
        self.trust = TrustState(self.path / "trust", notify)

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    @property
    def key_path(self) -> Path:
        return self.path / "operator.key"

    @property
    def trust_dir(self) -> Path:
        return self.trust.directory

    def _ensure_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def check_separate_from(self, ledger_path: str | None) -> None:
        """Refuse a home in the ledger's directory, or a ledger inside the home.

        The exception is a ledger kept in the user's home directory or above it (the seed
        demo run from ~), where the default home, ~/.config/modelchain, necessarily lies.
        """
        if ledger_path is None or os.path.isdir(ledger_path):
            return  # a folder is no ledger: the store says so, in those words
        home = self.path.resolve()
        ledger = Path(ledger_path).resolve()
        directory = ledger.parent
        user = Path.home().resolve()
        why = "whoever can write the ledger could then replace the key and trust state"
        if home == directory or home in ledger.parents:
            raise UsageError(
                f"the ledger ({ledger_path}) must not lie inside MODELCHAIN_HOME ({self.path}): "
                f"{why}",
                way_out=WayOut(
                    env=("MODELCHAIN_HOME",),
                    library="; keep the ledger elsewhere, or use another home",
                    cli="; keep the ledger elsewhere, or set MODELCHAIN_HOME to another folder",
                ),
            )
        if directory in home.parents and directory != user and directory not in user.parents:
            raise UsageError(
                f"MODELCHAIN_HOME ({self.path}) must not lie inside the ledger's folder "
                f"({directory}): {why}",
                way_out=WayOut(
                    env=("MODELCHAIN_HOME",),
                    library="; use a home outside it",
                    cli="; set MODELCHAIN_HOME to a folder outside it",
                ),
            )

    # -- the operator key -------------------------------------------------------------------

    def has_operator_key(self) -> bool:
        return self.key_path.exists()

    def operator_signer(self, *, create: bool = False) -> Signer:
        """Load the operator key, creating it (mode 0600) when asked and missing."""
        from modelchain.core.note import Signer

        path = self.key_path
        if not path.exists():
            if not create:
                raise KeyFileError(
                    f"no operator key at {path}",
                    way_out=WayOut(
                        command=("init",),
                        env=("MODELCHAIN_HOME",),
                        cli=" (run `modelchain init`, or set MODELCHAIN_HOME)",
                    ),
                )
            self._ensure_dir(self.path)
            signer = Signer.generate(OPERATOR_KEY_NAME)
            with contextlib.suppress(FileExistsError):  # another process made it first
                atomic_write(path, signer.private_key_string() + "\n", 0o600, overwrite=False)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise KeyFileError(f"{path}: not a regular file")
            if st.st_mode & 0o077:
                raise KeyFileError(
                    f"{path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open; "
                    f"the key must be private to its owner (chmod 600 {path})"
                )
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise KeyFileError(f"{path}: not a modelchain key file (not text)") from exc
        except OSError as exc:
            raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            return Signer.from_private_key_string(text)
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from exc

    # -- the trust state, durable at once (the ledger's callers; see `TrustState`) ----------

    def _durable(self) -> contextlib.AbstractContextManager[TrustState]:
        return self.trust.synced()

    def trusted_checkpoint(self, origin: str) -> str | None:
        """The newest checkpoint note accepted for `origin`, if any."""
        return self.trust.checkpoint(origin)

    def accept_checkpoint(self, origin: str, size: int, note: str) -> str | None:
        """`TrustState.accept`, synced at once (an append's own, deferred until a flush, goes
        through `trust.accept` directly)."""
        with self._durable() as trust:
            return trust.accept(origin, size, note)

    def audited_checkpoint(self, origin: str, location: str) -> str | None:
        """The checkpoint note of the last audit of `origin` at `location` (None: none there)."""
        found = self.trust.audited(origin)
        return found[1] if found is not None and found[0] == location else None

    def accept_audit(self, origin: str, location: str, note: str) -> None:
        """`TrustState.accept_audit`, synced at once."""
        with self._durable() as trust:
            trust.accept_audit(origin, location, note)

    def known_origin(self, location: str) -> str | None:
        """The origin of the ledger last accepted at this path, if any."""
        return self.trust.origin_at(location)

    def remember_location(self, location: str, origin: str) -> None:
        with self._durable() as trust:
            trust.remember_location(location, origin)

    def forget(self, origin: str, location: str | None = None) -> None:
        """Drop the trust state of one log (after a deliberate reset)."""
        with self._durable() as trust:
            trust.forget(origin, location)

    def log_location(self, origin: str) -> str | None:
        """Where the log `origin` lives (see `TrustState.log_location`)."""
        return self.trust.log_location(origin)

    def locations_of(self, origin: str) -> list[str]:
        return self.trust.locations_of(origin)

    def claim_log_location(self, origin: str, location: str) -> str:
        with self._durable() as trust:
            return trust.claim_log_location(origin, location)

    def move_log(self, origin: str, location: str) -> str | None:
        with self._durable() as trust:
            return trust.move_log(origin, location)

    def forget_log(self, origin: str) -> list[str]:
        with self._durable() as trust:
            return trust.forget_log(origin)

    def forget_location(self, location: str) -> str | None:
        with self._durable() as trust:
            return trust.forget_location(location)

    def remembered_logs(self) -> list[dict[str, object]]:
        return self.trust.remembered_logs()
