"""API tokens for `modelchain serve`: shown once, stored only as a SHA-256.

A token is `mc_` followed by 32 random bytes (urlsafe base64). `MODELCHAIN_HOME/tokens.json`
(mode 0600) keeps, per token, the hex SHA-256 of the whole token string, a scope, a name and
the creation and expiry times -- never the token itself, so a leaked tokens.json grants
nothing. The server compares hashes in constant time and re-reads the file when it changes,
so `modelchain token revoke` takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from modelchain.core.errors import KeyFileError, UsageError, WayOut
from modelchain.fs.safeio import atomic_write
from modelchain.log.home import Home

PREFIX = "mc_"
SCOPES = ("read", "write")
FILE_NAME = "tokens.json"


@dataclass(frozen=True)
class TokenRecord:
    """What is stored about one token (its hash, not the token)."""

    id: str
    sha256: str
    scope: str
    name: str
    created: float
    expires: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return (
            self.expires is not None and (now if now is not None else time.time()) >= self.expires
        )

    def allows(self, scope: str) -> bool:
        """`write` implies `read`."""
        return self.scope == scope or self.scope == "write"

    def public(self) -> dict[str, Any]:
        """What `token list` shows: everything but the hash."""
        out = asdict(self)
        del out["sha256"]
        out["expired"] = self.expired()
        return out


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The token file of one MODELCHAIN_HOME."""

    def __init__(self, home: Home | None = None) -> None:
        self.home = home if home is not None else Home()
        self.path = self.home.path / FILE_NAME
        self._cache: tuple[tuple[int, int, int], list[TokenRecord]] | None = None
        self._cache_lock = threading.Lock()

    # -- file -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.home.path / ".tokens.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> list[TokenRecord]:
        try:
            st = self.path.stat()
            if st.st_mode & 0o077:
                raise KeyFileError(
                    f"{self.path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open "
                    f"(chmod 600 {self.path})"
                )
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise KeyFileError(f"cannot read {self.path}: {exc}") from exc
        try:
            return [TokenRecord(**item) for item in data["tokens"]]
        except (TypeError, KeyError) as exc:
            raise KeyFileError(f"{self.path}: not a modelchain token file") from exc

    def _write(self, records: list[TokenRecord]) -> None:
        """Replace the file atomically and durably (file and folder synced), mode 0600: a
        reader sees the old tokens or the new ones, and a revocation survives a power loss."""
        text = json.dumps({"tokens": [asdict(r) for r in records]}, indent=2) + "\n"
        atomic_write(self.path, text, 0o600)

    def records(self) -> list[TokenRecord]:
        """All records, re-read only when the file changed (the server calls this per write
        request)."""
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeyFileError(f"cannot read {self.path}: {exc.strerror}") from exc
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            records = self._read()
            self._cache = (key, records)
            return records

    # -- operations -------------------------------------------------------------------------

    def create(
        self, scope: str, name: str = "", expires_days: float | None = None
    ) -> tuple[str, TokenRecord]:
        """Make a token; returns it (to show once) and the record kept of it."""
        if scope not in SCOPES:
            raise UsageError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        if expires_days is not None and not 0 < expires_days <= 36500:
            raise UsageError("--expires must be between 0 and 36500 days")
        token = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        record = TokenRecord(
            id=secrets.token_hex(4),
            sha256=_hash(token),
            scope=scope,
            name=name,
            created=now,
            expires=None if expires_days is None else now + expires_days * 86400,
        )
        with self._locked():
            records = self._read()
            records.append(record)
            self._write(records)
        return token, record

    def revoke(self, ident: str) -> TokenRecord:
        """Remove the token with this id (or, if unique, this name)."""
        with self._locked():
            records = self._read()
            matches = [r for r in records if r.id == ident] or [
                r for r in records if r.name and r.name == ident
            ]
            if not matches:
                raise UsageError(
                    f"no token with id or name {ident!r} (see `modelchain token list`)",
                    way_out=WayOut(command=("token", "list")),
                )
            if len(matches) > 1:
                raise UsageError(f"{len(matches)} tokens are named {ident!r}: revoke by id")
            self._write([r for r in records if r is not matches[0]])
        return matches[0]

    def authenticate(self, token: str) -> TokenRecord | None:
        """The live record of `token`, or None. Every record is compared (in constant time),
        so timing tells nothing about which hash was close."""
        digest = _hash(token)
        found = None
        for record in self.records():
            if hmac.compare_digest(record.sha256, digest):
                found = record
        if found is None or found.expired():
            return None
        return found


__all__ = ["PREFIX", "SCOPES", "TokenRecord", "TokenStore"]
