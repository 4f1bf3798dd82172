"""`MODELCHAIN_HOME`: the operator's signing key and the verifier's trust state.

Both must live where someone who can write the ledger cannot: the key because it is what
makes a rewritten ledger detectable, the trust state because it is what makes a rolled-back
ledger detectable. So the home refuses to be the ledger's own directory, the key file must
be private to its owner (mode 0600), and the trust state only ever moves forward.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from modelchain.core.errors import KeyFileError, UsageError
from modelchain.fs.safeio import atomic_write, sync_file

OPERATOR_KEY_NAME = "modelchain-operator"


def default_home() -> Path:
    """`MODELCHAIN_HOME`, else `$XDG_CONFIG_HOME/modelchain`, else `~/.config/modelchain`."""
    env = os.environ.get("MODELCHAIN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "modelchain"


def _write_private(path: Path, text: str, *, durable: bool = True) -> None:
    """Atomically write a file only its owner can read (`fsio.atomic_write`); durably
    (file and folder synced) unless told otherwise."""
    atomic_write(path, text, 0o600, durable=durable)


class Home:
    """One `MODELCHAIN_HOME` directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_home()

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    @property
    def key_path(self) -> Path:
        return self.path / "operator.key"

    @property
    def trust_dir(self) -> Path:
        return self.path / "trust"

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
                f"{why}; keep the ledger elsewhere, or set MODELCHAIN_HOME to another folder"
            )
        if directory in home.parents and directory != user and directory not in user.parents:
            raise UsageError(
                f"MODELCHAIN_HOME ({self.path}) must not lie inside the ledger's folder "
                f"({directory}): {why}; set MODELCHAIN_HOME to a folder outside it"
            )

    # -- the operator key -------------------------------------------------------------------

    def has_operator_key(self) -> bool:
        return self.key_path.exists()

    def operator_signer(self, *, create: bool = False):  # -> note.Signer
        """Load the operator key, creating it (mode 0600) when asked and missing."""
        from modelchain.core.note import Signer

        path = self.key_path
        if not path.exists():
            if not create:
                raise KeyFileError(
                    f"no operator key at {path} (run `modelchain init`, or set MODELCHAIN_HOME)"
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

    # -- trust state ------------------------------------------------------------------------

    def _origin_file(self, origin: str) -> Path:
        return self.trust_dir / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".checkpoint")

    @contextlib.contextmanager
    def _trust_lock(self) -> Iterator[None]:
        self._ensure_dir(self.trust_dir)
        with open(self.trust_dir / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def trusted_checkpoint(self, origin: str) -> str | None:
        """The newest checkpoint note accepted for `origin`, if any."""
        try:
            return self._origin_file(origin).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read trust state for {origin}: {exc}") from exc

    def accept_checkpoint(
        self, origin: str, size: int, note: str, *, durable: bool = True
    ) -> str | None:
        """Remember `note` as accepted unless a larger one already is (never move back).
        `durable=False`: visible to every process at once, synced by `sync_checkpoint`.
        Returns the note accepted before (None: none), to take the change back with."""
        from modelchain.core.note import Checkpoint, parse_note

        with self._trust_lock():
            current = self.trusted_checkpoint(origin)
            if current is not None:
                old = Checkpoint.parse(parse_note(current).text)
                if old.size >= size:
                    return current
            _write_private(self._origin_file(origin), note, durable=durable)
            return current

    def sync_checkpoint(self, origin: str) -> None:
        """Make the accepted checkpoint of `origin` durable (see `accept_checkpoint`)."""
        sync_file(self._origin_file(origin))

    def _locations_file(self) -> Path:
        return self.trust_dir / "locations.json"

    def _read_locations(self) -> dict[str, str]:
        try:
            data = json.loads(self._locations_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read {self._locations_file()}: {exc}") from exc
        if not isinstance(data, dict):
            raise KeyFileError(f"{self._locations_file()}: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def known_origin(self, location: str) -> str | None:
        """The origin of the ledger last accepted at this path, if any."""
        return self._read_locations().get(location)

    def remember_location(self, location: str, origin: str) -> None:
        with self._trust_lock():
            data = self._read_locations()
            if data.get(location) == origin:
                return
            data[location] = origin
            _write_private(self._locations_file(), json.dumps(data, indent=2, sort_keys=True))

    def forget(self, origin: str, location: str | None = None) -> None:
        """Drop the trust state of one log (after a deliberate reset)."""
        with self._trust_lock():
            self._origin_file(origin).unlink(missing_ok=True)
            if location is not None:
                data = self._read_locations()
                if data.pop(location, None) is not None:
                    _write_private(
                        self._locations_file(), json.dumps(data, indent=2, sort_keys=True)
                    )

    # -- where each log lives -----------------------------------------------------------------
    #
    # `locations.json` maps every location where a log was accepted (the log itself and any
    # copy of it that was read) to its origin; `logs.json` names, per origin, the one location
    # where the log lives and may be appended to. A copy elsewhere can be read, but appending
    # to it would make the log itself look rolled back, so only `trust move` makes it the log.

    def _logs_file(self) -> Path:
        return self.trust_dir / "logs.json"

    def _read_logs(self) -> dict[str, str]:
        try:
            data = json.loads(self._logs_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read {self._logs_file()}: {exc}") from exc
        if not isinstance(data, dict):
            raise KeyFileError(f"{self._logs_file()}: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _write_json(self, path: Path, data: dict[str, str]) -> None:
        _write_private(path, json.dumps(data, indent=2, sort_keys=True))

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
        with self._trust_lock():
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
        with self._trust_lock():
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

    def forget_log(self, origin: str) -> list[str]:
        """Drop everything remembered about `origin`: its newest accepted checkpoint, where it
        lives and every location it was seen at. Returns those locations."""
        with self._trust_lock():
            self._origin_file(origin).unlink(missing_ok=True)
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
        with self._trust_lock():
            data = self._read_locations()
            origin = data.pop(location, None)
            if origin is not None:
                self._write_json(self._locations_file(), data)
            return origin

    def remembered_logs(self) -> list[dict[str, object]]:
        """Every log this verifier remembers: origin, accepted size and root, where it lives,
        the other locations it was seen at, and the key that signed its accepted checkpoint."""
        from modelchain.core.errors import NoteFormatError
        from modelchain.core.note import Checkpoint, parse_note

        locations = self._read_locations()
        logs = self._read_logs()
        checkpoints: dict[str, str] = {}
        if self.trust_dir.is_dir():
            for path in sorted(self.trust_dir.glob("*.checkpoint")):
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
