"""The one surface of a ledger, local or a server's: what every ledger answers (blocks,
registrations, audit, verify, proofs) and the checks they share (the signed checkpoint,
the trust state's rollback and fork rules, which log lives at a location).

`Ledger(location)` (or `Ledger.open(location)`) is a `LocalLedger` for a file or a
database and a `RemoteLedger` for a `modelchain serve` server, as `pathlib.Path` is a
`PosixPath` or a `WindowsPath`: callers name one class, and `isinstance(x, Ledger)` holds
for both. The verifier's trust state (in `MODELCHAIN_HOME`) remembers the newest
checkpoint it accepted, so a ledger rolled back to an older signed state, or forked, is
caught by either.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

from modelchain.checks.audit import (
    AuditReport,
    Checked,
    Walk,
    check_index_root,
    check_trusted,
    checked_blocks,
    index_values,
    reported,
    walk_blocks,
)
from modelchain.checks.proven import check_newest
from modelchain.checks.verdict import Verification, judge, matches
from modelchain.claims.claim import RegistrationSignature
from modelchain.claims.keys import PrivateKey, PublicKey
from modelchain.claims.provenance import Provenance
from modelchain.core import merkle
from modelchain.core.errors import (
    ForkError,
    InvalidProof,
    LedgerInvalid,
    LedgerUnreadable,
    NoteFormatError,
    NotRegistered,
    RollbackError,
    UsageError,
    WayOut,
)
from modelchain.core.index import Proof as IndexProof
from modelchain.core.index import root_from_extensions
from modelchain.core.note import Checkpoint, Verifier, open_checkpoint, parse_note
from modelchain.fs.digest import Manifest, PathDigest, digest_path
from modelchain.fs.progress import ProgressSink
from modelchain.ledgers.client import LedgerClient
from modelchain.ledgers.locations import local_path, open_store
from modelchain.log.block import (
    Block,
    Kind,
    Registration,
    default_name,
    n_blocks,
    registration,
)
from modelchain.log.home import Home
from modelchain.log.store import Store, StoredBlock

__all__ = ["PUBLISH_WAIT_S", "Ledger", "Source", "Unsettled", "same_file"]

#: how long a reader waits for the checkpoint of an append that is committing (its trust
#: state is written just before): only when what it read looks rolled back or unsigned
PUBLISH_WAIT_S = 2.0

#: how many checkpoints an audit tries when appends commit while it reads the index, which
#: each append updates in place (each checkpoint is checked as the first was: a newer one is
#: no excuse, only a sign that what was read is of a newer tree)
AUDIT_ATTEMPTS = 50

#: what names a ledger: a location (`--ledger`), or a store already open
Source = Store | LedgerClient | str | os.PathLike[str] | None


class Ledger:
    """A tamper-evident ledger of model digests. Open one with `Ledger.open(location)`:
    a `LocalLedger` or a `RemoteLedger`, which share this surface."""

    #: the kinds of ledger, most specific first (see `__init_subclass__`)
    _kinds: ClassVar[list[type[Ledger]]] = []

    def __init_subclass__(cls, *, default: bool = False, **kwargs: Any) -> None:
        """Each kind of ledger says which locations it serves (`_serves`); the default kind
        serves every location no other kind claims."""
        super().__init_subclass__(**kwargs)
        if default:
            Ledger._kinds.append(cls)
        elif "_serves" in cls.__dict__:  # a subclass of a kind is that kind, not a new one
            Ledger._kinds.insert(0, cls)

    @classmethod
    def _serves(cls, source: Source) -> bool:
        """Is `source` (a location or an open store) a ledger of this kind?"""
        return True

    def __new__(cls, source: Source = None, *args: Any, **kwargs: Any) -> Ledger:
        kind = next((k for k in Ledger._kinds if k._serves(source)), None)
        if kind is None:
            raise UsageError(f"no kind of ledger serves {source!r}")
        if cls is Ledger:
            return super().__new__(kind)
        if not issubclass(cls, kind):
            where = getattr(source, "location", None) or str(source)
            raise UsageError(f"{where} is not a ledger of kind {cls.__name__}")
        return super().__new__(cls)

    def __init__(
        self,
        source: Source = None,
        home: Home | str | os.PathLike[str] | None = None,
        keys: Sequence[Verifier] = (),
        *,
        create: bool = False,
    ) -> None:
        """`source`: a location or an open store; `keys`: verifier keys for checkpoints
        when a call passes none (a server's); `create`: make a missing ledger on first
        append."""
        if not isinstance(home, Home):
            home = Home(home)
        if not isinstance(source, Store | LedgerClient):
            home.check_separate_from(local_path(source))  # before a file is created
            source = open_store(source, create=create)
        self.store: Store = source  # type: ignore[assignment]  # a server's: RemoteLedger
        self.home = home
        self.keys = tuple(keys)
        self.home.check_separate_from(source.local_path)
        #: the newest checkpoint note this object signed or verified, to skip re-verifying it
        self._known_note: str | None = None
        self._known_checkpoint: Checkpoint | None = None
        self._tip_hash: str | None = None
        self._frontier: merkle.Frontier | None = None
        #: (note, checkpoint) last read by `read_checkpoint`
        self._read_cache: tuple[str, Checkpoint] | None = None

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        home: Home | str | os.PathLike[str] | None = None,
        create: bool = False,
        keys: Sequence[Verifier] = (),
        **options: Any,
    ) -> Ledger:
        """Open a ledger: `*.json` (the seed's format), an SQLite path, the default
        `.modelchain/ledger.db`, or a server (`https://...`, checked with `keys` or the key
        pinned for its log). With `create=True` a missing ledger is created on first append.
        `options` are those of the kind of ledger (see `LocalLedger`)."""
        return cls(location, home, keys, create=create, **options)

    def close(self) -> None:
        self.flush_trust()
        self.store.close()

    def _remember(
        self, note: str, checkpoint: Checkpoint, tip_hash: str, frontier: merkle.Frontier
    ) -> None:
        """The newest checkpoint this object signed or verified (so it is not checked again),
        with the current_hash of the block it ends on and the tree's right edge."""
        self._known_note, self._known_checkpoint = note, checkpoint
        self._tip_hash, self._frontier = tip_hash, frontier.copy()

    def flush_trust(self) -> None:
        """Sync to disk the trust state this object wrote without syncing (a local ledger's
        appends: see `LocalLedger.flush_trust`); on close."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.store.size()

    @property
    def location(self) -> str:
        return self.store.location

    def _trust_key(self) -> str:
        return self.store.local_path or self.store.location

    # -- what each kind of ledger does its own way --------------------------------------

    def verifier_for(self, origin: str, keys: Sequence[Verifier] = ()) -> Verifier:
        """The key that must have signed `origin`'s checkpoints."""
        raise NotImplementedError

    def init(self, origin: str | None = None) -> str:
        """Create the ledger; returns the checkpoint note."""
        raise NotImplementedError

    def append_many(self, entries: Sequence[Registration]) -> list[Block]:
        """Append several prepared registrations under one signed checkpoint."""
        raise NotImplementedError

    def checkpoint(self) -> str:
        """The newest signed checkpoint note."""
        raise NotImplementedError

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Block, bytes]]:
        """Blocks with their exact leaf data, for a client that re-hashes what it is given."""
        raise NotImplementedError

    def read_checkpoint(self) -> tuple[str, Checkpoint]:
        """The newest signed note and its checkpoint, the signature checked once per note."""
        raise NotImplementedError

    def leaf_hash(self, index: int) -> bytes:
        """The Merkle leaf hash of block `index`, over its stored canonical encoding."""
        raise NotImplementedError

    def _binding(self, name: str) -> tuple[tuple[str, int], set[str]]:
        """The log and version a registration of `name` made now gets, and the signature
        values the log already holds for `name` (see `log.block.registration`)."""
        raise NotImplementedError

    def _history(self, name: str, keys: Sequence[Verifier]) -> tuple[list[Block], AuditReport]:
        """Every version of `name`, oldest first, each checked, with what vouches for them."""
        raise NotImplementedError

    def _inclusion_proof(self, index: int, size: int) -> list[bytes]:
        raise NotImplementedError

    def _consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        raise NotImplementedError

    def _prefix_root(self, size: int, signed: Checkpoint) -> bytes:
        """The root of the tree of the first `size` blocks (0 < size < signed.size)."""
        raise NotImplementedError

    def _check_nodes(self, computed: dict[tuple[int, int], bytes], size: int) -> None:
        """Audit: vouch for the Merkle nodes proofs are served from (none kept: nothing)."""

    def _check_index_nodes(self, values: dict[bytes, bytes], root: bytes) -> bool:
        """Full audit: vouch for the index nodes index proofs are served from; True when
        they were all checked to be the index of `values` under `root` (none kept: False)."""
        return False

    def _first_unsigned_leaf(self, size: int) -> str:
        """Audit, best effort: name the first block whose leaf differs from the stored tree."""
        return ""

    def _audited(self, note: str, checkpoint: Checkpoint) -> None:
        """An audit accepted `checkpoint`: the trust state remembers it and where it lives."""
        self.home.accept_checkpoint(checkpoint.origin, checkpoint.size, note)
        self.home.remember_location(self._trust_key(), checkpoint.origin)

    def _record_audit(self, note: str, checkpoint: Checkpoint) -> None:
        """A full or incremental audit got as far as `checkpoint` here: where the next audit
        of this ledger may start (not moved by `verify`, which proves, not audits)."""
        self._audited(note, checkpoint)
        self.home.accept_audit(checkpoint.origin, self._trust_key(), note)

    def _log_home(self, origin: str) -> str | None:
        """Where log `origin` lives, if this ledger may be a copy of it (for messages)."""
        return None

    def _before_hashing(self) -> None:
        """`register`: refuse before hashing a large model for nothing."""

    # -- writing ---------------------------------------------------------------------------

    def register(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        ignore: Sequence[str] = (),
        follow_symlinks: bool = False,
        allow_outside: bool = False,
        progress: Any = None,
        provenance: Provenance | Mapping[str, Any] | None = None,
        sign_keys: Sequence[PrivateKey] = (),
        force: bool = False,
    ) -> Block:
        """Hash a model file or directory and append a block for it.

        When the newest version of the name already has these bytes, nothing is appended
        and that block is returned with `existing=True` (`force=True` appends anyway).

        A `.safetensors` file also gets a digest per tensor (and of its header) in
        `metadata["tensors"]`, so a later mismatch can name the tensors that changed.
        `provenance` (see `modelchain.claims.provenance`) is recorded with the block; an in-toto
        statement about other artifacts is refused. Each of `sign_keys` signs the claim.
        """
        self._before_hashing()
        if os.fspath(path).endswith(".safetensors") and os.path.isfile(path):
            from modelchain.fs.digest import hash_safetensors_file

            # one pass, streamed: the file's digest and each tensor's describe the same bytes
            whole, tensors = hash_safetensors_file(path, progress=progress)
            digest = PathDigest("file", whole.sha256, whole.size, None)
            metadata = {**(metadata or {}), "tensors": tensors}
        else:
            digest = digest_path(
                path,
                ignore=ignore,
                follow_symlinks=follow_symlinks,
                allow_outside=allow_outside,
                progress=progress,
            )
        return self.append(
            name=name or default_name(path),
            model_hash=digest.sha256,
            kind=digest.kind,
            size=digest.size,
            manifest=digest.manifest,
            metadata=metadata,
            provenance=provenance,
            sign_keys=sign_keys,
            force=force,
        )

    def append(
        self,
        *,
        name: str,
        model_hash: str,
        kind: Kind = "file",
        size: int = 0,
        manifest: Manifest | None = None,
        metadata: Mapping[str, Any] | None = None,
        provenance: Provenance | Mapping[str, Any] | None = None,
        sign_keys: Sequence[PrivateKey] = (),
        signatures: Sequence[RegistrationSignature] = (),
        force: bool = True,
    ) -> Block:
        """Append one block and sign the checkpoint that covers it, in one transaction.

        Each of `sign_keys` signs the registrant's claim (see `Block.claim`); `signatures`
        are ones made elsewhere over the same claim, checked before anything is written.
        `force=False`: see `Registration.force`.
        """
        return self.append_many(
            [
                self.prepare(
                    name=name,
                    model_hash=model_hash,
                    kind=kind,
                    size=size,
                    manifest=manifest,
                    metadata=metadata,
                    provenance=provenance,
                    sign_keys=sign_keys,
                    signatures=signatures,
                    force=force,
                )
            ]
        )[0]

    def prepare(
        self,
        *,
        name: str,
        model_hash: str,
        kind: Kind = "file",
        size: int = 0,
        manifest: Manifest | None = None,
        metadata: Mapping[str, Any] | None = None,
        provenance: Provenance | Mapping[str, Any] | None = None,
        sign_keys: Sequence[PrivateKey] = (),
        signatures: Sequence[RegistrationSignature | Mapping[str, Any]] = (),
        force: bool = True,
    ) -> Registration:
        """Check one registration (and sign its claim) before any write lock is taken, so
        that a batch given to `append_many` cannot fail halfway on one bad entry.

        `provenance` and `signatures` may come as JSON (a service's request body): they are
        checked here exactly as a local registration's are, so a server holds no rule."""
        return registration(
            name=name,
            model_hash=model_hash,
            kind=kind,
            size=size,
            manifest=manifest,
            metadata=metadata,
            provenance=provenance,
            sign_keys=sign_keys,
            signatures=signatures,
            force=force,
            bind=self._binding,
        )

    # -- checking what the ledger says ------------------------------------------------------

    def _open_checkpoint(
        self, note: str, origin: str | None, keys: Sequence[Verifier]
    ) -> Checkpoint:
        known = self._known_checkpoint
        if note == self._known_note and known is not None and origin in (None, known.origin):
            return known
        try:
            claimed = Checkpoint.parse(parse_note(note).text)
        except NoteFormatError as exc:
            raise LedgerInvalid(f"{self.location}: the checkpoint is malformed: {exc}") from exc
        if origin is not None and claimed.origin != origin:
            raise LedgerInvalid(
                f"{self.location}: the checkpoint is for log {claimed.origin!r}, "
                f"but the ledger is log {origin!r}"
            )
        verifier = self.verifier_for(claimed.origin, keys)
        try:
            opened = open_checkpoint(note, verifier)
            root_from_extensions(opened.extensions)  # one index line, well formed, or none
        except NoteFormatError as exc:
            raise LedgerInvalid(f"{self.location}: the checkpoint is malformed: {exc}") from exc
        return opened

    def _trusted(self, origin: str) -> Checkpoint | None:
        note = self.home.trusted_checkpoint(origin)
        if note is None:
            return None
        try:
            return Checkpoint.parse(parse_note(note).text)
        except NoteFormatError as exc:
            raise LedgerUnreadable(f"the trust state for {origin!r} is unreadable: {exc}") from exc

    def _check_trusted(
        self,
        checkpoint: Checkpoint,
        extends: Callable[[int, bytes], bool],
        trusted: Checkpoint | Literal["read"] | None = "read",
    ) -> int | None:
        """Refuse a checkpoint that is older than, or not an extension of, the trusted one
        (`trusted`: as read before the checkpoint, by a reader racing with appends)."""
        if trusted == "read":
            trusted = self._trusted(checkpoint.origin)
        return check_trusted(
            self.location, checkpoint, trusted, extends, lambda: self._way_back(checkpoint.origin)
        )

    def _check_same_log(self, origin: str | None, note: str | None = None) -> str | None:
        """This location must hold the log accepted here before; returns that log's origin.

        Which log that is comes from the trust state alone: a ledger that carries a checkpoint
        but no origin record is refused, never identified by the checkpoint it carries (with
        one operator key for two logs, that would let one log stand in for the other)."""
        known = self.home.known_origin(self._trust_key())
        if origin is None and note:
            before = f" (log {known!r} was accepted here before)" if known else ""
            raise LedgerInvalid(
                f"{self.location}: the record of which log it is (its origin) is missing{before}; "
                "a log is never taken from the checkpoint it carries"
            )
        if known is not None and origin is not None and known != origin:
            raise ForkError(
                f"{self.location}: is now log {origin!r}, but log {known!r} was accepted here "
                "before (the ledger was replaced)",
                way_out=WayOut(
                    command=("trust", "forget", "--ledger", self.location),
                    cli=". If it was replaced on purpose, run "
                    f"`modelchain trust forget --ledger {self.location}`",
                ),
            )
        return known

    def _way_back(self, origin: str) -> WayOut:
        """The end of a rollback or fork message: where the log lives if this is a copy of
        it, and the command that accepts the change."""
        home = self._log_home(origin)
        where = ""
        if (
            home is not None
            and home != self._trust_key()
            and not same_file(home, self._trust_key())
        ):
            where = f". The log lives at {home}; this is another copy of it"
        return WayOut(
            command=("trust", "forget", origin),
            library=where,
            cli=f"{where}. If this older or other state is what you want, run `modelchain trust "
            f"forget {origin}` (this verifier then forgets everything it accepted for the log)",
        )

    def _newer_note(self, note: str) -> bool:
        """Has a newer checkpoint been committed than `note` (waiting a moment for it)?

        Asked when `note` looks older than the trust state, or blocks lie beyond it: an
        append writes its trust state (and a JSON ledger its blocks) just before it
        publishes its checkpoint, so a reader in between must not cry tampering."""
        deadline = time.monotonic() + PUBLISH_WAIT_S
        delay = 0.002
        while True:
            current = self.store.checkpoint()
            if current is not None and current != note:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- reading ---------------------------------------------------------------------------

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[Block]:
        """Blocks in order, validated one by one (not audited: use `audit` for that).
        A server's blocks are each proven into its accepted checkpoint."""
        for block, _data in self.entries(start, stop):
            yield block

    def block(self, index: int) -> Block:
        for b in self.blocks(index, index + 1):
            return b
        raise UsageError(f"no block {index}: the ledger has {n_blocks(len(self))}")

    def registration(self, name: str, version: int | None = None) -> Block:
        """The block of `name` at `version` (default: the newest). Not an audit."""
        indices = self.store.find(name=name)
        if not indices:
            raise NotRegistered(f"{name!r} is not registered in {self.location}")
        if version is None:
            return self.block(indices[-1])
        if 1 <= version <= len(indices):  # versions count 1, 2, ... in order
            block = self.block(indices[version - 1])
            if block.version == version:
                return block
        newest = self.block(indices[-1]).version
        raise NotRegistered(
            f"{name!r} has no version {version} in {self.location} (versions 1 to {newest})"
        )

    def audit(
        self,
        *,
        keys: Sequence[Verifier] = (),
        update_trust: bool = True,
        on_block: Callable[[Block], None] | None = None,
        on_stored: Callable[[Block, StoredBlock], None] | None = None,
        full: bool = False,
        progress: ProgressSink | None = None,
    ) -> AuditReport:
        """Check the blocks, the Merkle tree, the index, the signed checkpoint and the trust
        state.

        Incremental when this verifier audited the ledger here before and both checkpoints
        sign an index: only the blocks appended since that audit are read (their tree proven
        to extend the audited one, the index update proven from the audited index root).
        `full=True` (or `on_block`/`on_stored`, or no earlier audit) checks every block and
        rebuilds the index from them. A block changed among those audited before is caught
        only by a full audit.

        Raises `LedgerInvalid` (or its subclasses `RollbackError`, `ForkError`) naming the
        first problem found, `SignatureError` when the checkpoint is not signed by the key.
        `progress` is told (`announce`) how many blocks a full audit checks, then of each
        it has checked.
        """
        store = self.store
        origin = store.origin()
        known = self._check_same_log(origin)
        # the trust state before the note: an append writes its trust state first, so a
        # note read after it is at least as new unless that append is still committing
        trusted = self._trusted(origin or known) if (origin or known) else None
        note = store.checkpoint()
        if origin is None and note is not None:
            self._check_same_log(origin, note)  # no record of which log this is: refused
        # audit exactly the tree the checkpoint signs, so appends committed meanwhile
        # (blocks and nodes beyond it) are no false alarm
        if note is None:
            if trusted is not None:
                raise RollbackError(
                    f"{self.location}: the signed checkpoint is missing, but one covering "
                    f"{n_blocks(trusted.size)} was accepted before"
                )
            raise LedgerInvalid(f"{self.location}: has no signed checkpoint")
        checkpoint = self._open_checkpoint(note, origin, keys)
        if trusted is not None and checkpoint.size < trusted.size and self._newer_note(note):
            note = store.checkpoint() or note  # an append was committing: audit its tree
            checkpoint = self._open_checkpoint(note, origin, keys)
        quiet = on_block is None and on_stored is None
        for attempt in range(AUDIT_ATTEMPTS):
            audited = self._audited_before(checkpoint)
            try:
                if not full and quiet and audited is not None:
                    since = root_from_extensions(audited.extensions) is not None
                    if since and root_from_extensions(checkpoint.extensions) is not None:
                        # one snapshot: the index nodes appends overwrite, read with the
                        # note that signs them (the trust state was read before it)
                        with self._reading():
                            current = store.checkpoint() or note
                            if current != note:
                                note = current
                                checkpoint = self._open_checkpoint(note, origin, keys)
                            return self._audit_increment(
                                note, checkpoint, audited, trusted, update_trust
                            )
                return self._audit_full(
                    note,
                    checkpoint,
                    trusted,
                    audited,
                    update_trust,
                    on_block,
                    on_stored,
                    keys,
                    progress,
                )
            except (RollbackError, ForkError):
                raise
            except LedgerInvalid:
                # the store's index nodes are updated in place: an append committed while
                # they were read makes them those of a newer checkpoint; audit that one
                if not quiet or attempt + 1 == AUDIT_ATTEMPTS or not self._newer_note(note):
                    raise
                note = store.checkpoint() or note
                checkpoint = self._open_checkpoint(note, origin, keys)
        raise AssertionError("unreachable")  # pragma: no cover

    def _audited_before(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """The checkpoint of the last audit of this log at this location, if any (a record
        that does not parse, or is of another log, is none: the audit is then full)."""
        note = self.home.audited_checkpoint(checkpoint.origin, self._trust_key())
        if note is None:
            return None
        try:
            audited = Checkpoint.parse(parse_note(note).text)
            root_from_extensions(audited.extensions)
        except NoteFormatError:
            return None
        return audited if audited.origin == checkpoint.origin else None

    def _audit_increment(
        self,
        note: str,
        checkpoint: Checkpoint,
        audited: Checkpoint,
        trusted: Checkpoint | None,
        update_trust: bool,
    ) -> AuditReport:
        """Audit only what was appended since the `audited` checkpoint (see `audit`); a kind
        of ledger that cannot audits in full."""
        return self._audit_full(note, checkpoint, trusted, audited, update_trust, None, None)

    def _audit_full(
        self,
        note: str,
        checkpoint: Checkpoint,
        trusted: Checkpoint | None,
        audited: Checkpoint | None,
        update_trust: bool,
        on_block: Callable[[Block], None] | None,
        on_stored: Callable[[Block, StoredBlock], None] | None,
        keys: Sequence[Verifier] = (),
        progress: ProgressSink | None = None,
    ) -> AuditReport:
        """Every block, the tree and the nodes, and the index rebuilt from the blocks and
        compared with the signed and the trusted checkpoint's index root.

        The stored index nodes are updated in place by each append, so when an append
        commits while they are read they are those of a newer checkpoint: the walk then goes
        on to that checkpoint's blocks (each block is still read and checked once) and
        audits it instead."""
        store = self.store
        origin = store.origin()
        # the trusted checkpoint's index, as the blocks made it at its size (the audited
        # one's was checked by the audit that recorded it)
        older = [
            c
            for c in (trusted,)
            if c is not None
            and c.size < checkpoint.size
            and root_from_extensions(c.extensions) is not None
        ]
        walk: Walk | None = None

        def extends(_size: int, old_root: bytes) -> bool:
            return walk is not None and walk.root_at_trusted == old_root

        for attempt in range(AUDIT_ATTEMPTS):
            start = 0 if walk is None else walk.frontier.size
            signed_size = checkpoint.size
            if signed_size < start:
                raise RollbackError(
                    f"{self.location}: rolled back while it was audited: its signed "
                    f"checkpoint now covers {n_blocks(signed_size)}, not {start}"
                )
            columns = store.lookup_columns(signed_size)
            if columns is not None and start:
                columns = itertools.dropwhile(lambda row, at=start: row[0] < at, columns)
            index_root = root_from_extensions(checkpoint.extensions)
            walk = walk_blocks(
                self.location,
                reported(
                    self._checked(start, signed_size, origin, on_block, on_stored),
                    progress,
                    signed_size - start,
                ),
                columns,
                None if trusted is None else trusted.size,
                start=walk,
                snapshots={c.size for c in older},
            )
            frontier, previous, size = walk.frontier, walk.previous, walk.frontier.size
            if checkpoint.size > size:
                raise LedgerInvalid(
                    f"{self.location}: holds {n_blocks(size)} but its signed checkpoint covers "
                    f"{n_blocks(checkpoint.size)}: blocks were deleted"
                )
            stored_size = store.size()
            if stored_size > size and not self._newer_note(note):
                raise LedgerInvalid(
                    f"{self.location}: blocks {checkpoint.size} to {stored_size - 1} are not "
                    f"covered by the signed checkpoint (which covers {checkpoint.size})"
                )
            if frontier.root() != checkpoint.root_hash:
                culprit = self._first_unsigned_leaf(size)
                raise LedgerInvalid(
                    f"{self.location}: the blocks no longer match the signed checkpoint "
                    f"(Merkle root differs{culprit}): the ledger was changed after it was signed"
                )
            self._check_nodes(walk.nodes, size)
            if index_root is None:
                break
            values = index_values(walk.newest)
            try:
                # stored nodes that all check out make the signed root: then they are the
                # index the blocks make, with no second build of it
                vouched = self._check_index_nodes(values, index_root)
            except LedgerInvalid:
                self._check_trusted(checkpoint, extends, trusted)  # a rollback named first
                check_index_root(self.location, values, index_root, "the signed checkpoint")
                if attempt + 1 == AUDIT_ATTEMPTS or not self._newer_note(note):
                    raise
                note = store.checkpoint() or note
                checkpoint = self._open_checkpoint(note, origin, keys)
                continue
            if not vouched:
                check_index_root(self.location, values, index_root, "the signed checkpoint")
            self._check_trusted(checkpoint, extends, trusted)  # a fork named as one
            for old in older:
                old_root = root_from_extensions(old.extensions)
                assert old_root is not None
                check_index_root(
                    self.location,
                    index_values(walk.newest_at.get(old.size, {})),
                    old_root,
                    f"the checkpoint of {n_blocks(old.size)} accepted before",
                )
            break
        assert walk is not None
        return self._audited_to(
            note,
            checkpoint,
            (extends, trusted),
            update_trust,
            (previous, frontier),
            indexed=index_root is not None,
        )

    def _checked(
        self,
        start: int,
        stop: int,
        origin: str | None,
        on_block: Callable[[Block], None] | None,
        on_stored: Callable[[Block, StoredBlock], None] | None,
    ) -> Iterable[tuple[Checked, Callable[[], None] | None]]:
        """Each block's own checks for the walk: in worker processes when there are many
        blocks, kept as text, and nothing needs them as objects; otherwise here."""
        from modelchain.checks import parallel  # its process pool: only a large audit

        store = self.store
        if on_block is None and on_stored is None and stop - start >= parallel.MIN_BLOCKS:
            count = parallel.worker_count()
            rows = store.block_texts(start, stop) if count else None
            if rows is not None:
                return parallel.checked_in_workers(rows, origin, count)
        return checked_blocks(store.blocks(start, stop), origin, on_block, on_stored)

    def _audited_to(
        self,
        note: str,
        checkpoint: Checkpoint,
        trust: tuple[Callable[[int, bytes], bool], Checkpoint | None],
        update_trust: bool,
        tip: tuple[str, merkle.Frontier],
        *,
        indexed: bool = True,
        since: int | None = None,
    ) -> AuditReport:
        """How every audit that found the blocks sound ends: the checkpoint accepted against
        the trust state first, only then recorded as audited (where the next audit starts)
        and remembered; its report."""
        extends, trusted = trust
        previously = self._check_trusted(checkpoint, extends, trusted)
        if update_trust:
            self._record_audit(note, checkpoint)
        self._remember(note, checkpoint, *tip)
        return AuditReport(
            location=self.location,
            origin=checkpoint.origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            checkpoint=note,
            previously_trusted=previously,
            since=since,
            indexed=indexed,
        )

    def verify(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        keys: Sequence[Verifier] = (),
        ignore: Sequence[str] = (),
        follow_symlinks: bool = False,
        allow_outside: bool = False,
        progress: Any = None,
        digest: PathDigest | None = None,
        signers: Sequence[PublicKey | str] = (),
        version: int | None = None,
        data: bytes | None = None,
        full: bool = False,
    ) -> Verification:
        """Check `path` against the newest registered version of `name`, proven by the signed
        index and tree in O(log n) reads (`full=True`, or a ledger made before the index:
        by an audit of the whole ledger instead).

        `data`: the bytes `digest` was computed from (a file read once, as `load` does); a
        mismatch is then described from them and `path` is not opened again.

        `version` pins the check to that version instead (the answer says whether it is
        the newest); a version that was never registered is `NotRegistered`.

        With `signers` (public keys, or strings: a key file, a key-ring name, an Ed25519
        verifier key, a key ID prefix of 8+ hex digits), that version must also carry a
        valid registration signature by each of them.

        Raises `NotRegistered`, `ModelMismatch` (with `.details`), `SignatureError`, or the
        audit's errors.
        """
        name = name or default_name(path)
        required = self._resolve_signers(signers)
        if digest is None:
            digest = digest_path(
                path,
                ignore=ignore,
                follow_symlinks=follow_symlinks,
                allow_outside=allow_outside,
                progress=progress,
            )
        proven = None if full else self._proven_history(name, digest, version, keys)
        history, report = self._history(name, keys) if proven is None else proven
        return judge(
            path,
            name,
            digest,
            history,
            report,
            location=self.location,
            version=version,
            required=required,
            data=data,
        )

    def _proven_history(
        self, name: str, digest: PathDigest, version: int | None, keys: Sequence[Verifier]
    ) -> tuple[list[Block], AuditReport] | None:
        """What `judge` needs of `name`, proven, without a scan: the newest version (by the
        signed index), the pinned `version`, and the newest older version with `digest`'s
        bytes, each proven into the signed tree. None when the checkpoint signs no index
        (a ledger made before it) or the server proves none: the caller then reads all.
        Read in one snapshot: appends overwrite index nodes, which must be the ones the
        checkpoint read signs."""
        deadline = time.monotonic() + 5 * PUBLISH_WAIT_S
        while True:
            try:
                with self._reading():
                    return self._proven_reads(name, digest, version, keys)
            except Unsettled as exc:
                # blocks beyond the note: an append between writing its blocks and its
                # checkpoint (a JSON ledger writes two files), unless no newer note comes
                if not self._newer_note(exc.note):
                    raise LedgerInvalid(str(exc), way_out=exc.way_out) from None
                if time.monotonic() > deadline:  # appends never let a read settle
                    raise LedgerInvalid(
                        f"{self.location}: changed under every read for "
                        f"{5 * PUBLISH_WAIT_S:g} s; try again"
                    ) from None

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        """Reads in this block see one state of the ledger (see `Store.snapshot`)."""
        return contextlib.nullcontext()

    def _proven_reads(
        self, name: str, digest: PathDigest, version: int | None, keys: Sequence[Verifier]
    ) -> tuple[list[Block], AuditReport] | None:
        note, checkpoint, previously = self._accepted(keys)
        if root_from_extensions(checkpoint.extensions) is None:
            return None
        shown = self._name_proof(name, checkpoint)
        if shown is None:
            return None
        proof, newest_shown = shown
        newest = check_newest(self.location, checkpoint, name, proof, newest_shown)
        report = AuditReport(
            location=self.location,
            origin=checkpoint.origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            checkpoint=note,
            previously_trusted=previously,
            proofs_only=True,
            index_proven=True,
        )
        if newest is None:
            return [], report
        found = {newest.index: newest}
        target = newest
        if version is not None and version != newest.version and 1 <= version < newest.version:
            target = self._proven_version(name, version, newest, checkpoint)
            found[target.index] = target
        if not matches(target, digest):
            older = self._newest_with(name, digest, newest, checkpoint, skip=target.index)
            if older is not None:
                found[older.index] = older
        return [found[i] for i in sorted(found)], report

    def _proven_version(
        self, name: str, version: int, newest: Block, checkpoint: Checkpoint
    ) -> Block:
        """Version `version` of `name` (older than `newest`), proven into the signed tree:
        the index says every version up to the newest exists, so one the ledger cannot show
        is a damaged ledger, never "not registered"."""
        indices = [i for i in self.store.find(name=name) if i < newest.index]
        if version <= len(indices):
            block, _data = self._proven(indices[version - 1], checkpoint)
            if block.name == name and block.version == version:
                return block
        raise LedgerInvalid(
            f"{self.location}: the signed index says {name!r} has {newest.version} versions, "
            f"but the ledger does not show v{version}"
        )

    def _newest_with(
        self, name: str, digest: PathDigest, newest: Block, checkpoint: Checkpoint, skip: int
    ) -> Block | None:
        """The newest version of `name` older than `newest` with `digest`'s bytes, proven (a
        lookup aid: what it finds is proven; what it misses only makes the answer "differs")."""
        for index in reversed(self.store.find(name=name, digest=digest.sha256)):
            if index >= newest.index or index == skip:
                continue
            block, _data = self._proven(index, checkpoint)
            if block.name == name and block.version < newest.version and matches(block, digest):
                return block
        return None

    def _accepted(self, keys: Sequence[Verifier]) -> tuple[str, Checkpoint, int | None]:
        """The newest signed checkpoint, its signature checked with `keys` and accepted
        against the trust state (not older, consistent with the one accepted before), then
        remembered: the note, the checkpoint and the size accepted before."""
        raise NotImplementedError

    def _name_proof(
        self, name: str, checkpoint: Checkpoint
    ) -> tuple[IndexProof, tuple[int, bytes, list[bytes]] | None] | None:
        """The index proof of `name` in `checkpoint`'s index, and its newest block (position,
        bytes, inclusion proof) if the index holds it; None when none can be had (a server
        that predates the index). Not checked here: `check_newest` does that."""
        raise NotImplementedError

    def _proven(self, index: int, checkpoint: Checkpoint) -> tuple[Block, bytes]:
        """Block `index` and its bytes, proven into `checkpoint`'s tree."""
        raise NotImplementedError

    def _resolve_signers(self, signers: Sequence[PublicKey | str]) -> list[PublicKey | str]:
        if isinstance(signers, str):
            signers = [signers]
        from modelchain.claims.keys import resolve_public_key

        return [
            s if isinstance(s, PublicKey) else resolve_public_key(s, self.home.path)
            for s in signers
        ]

    # -- proofs -----------------------------------------------------------------------------

    def signed_checkpoint(self, keys: Sequence[Verifier] = ()) -> Checkpoint:
        """The newest checkpoint, its signature verified (not a full audit)."""
        if not keys:
            return self.read_checkpoint()[1]
        return self._open_checkpoint(self.checkpoint(), self.store.origin(), keys)

    def signed_size(self) -> int:
        return self.signed_checkpoint().size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of block `index` in the tree of `size` (default: signed),
        checked before it is handed out: a proof built from a bad stored node (or a server's
        bad answer) is refused here, not by whoever uses it. For the signed size the root is
        the signed checkpoint's, otherwise `root_hash(size)`; the check is one leaf read and
        about log2(size) hashes. Raises `LedgerInvalid` naming the block."""
        signed = self.signed_checkpoint()
        size = signed.size if size is None else size
        if not 0 <= index < size:
            raise UsageError(f"block {index} is not in a tree of {n_blocks(size)}")
        self._check_size(size)
        root = signed.root_hash if size == signed.size else self._prefix_root(size, signed)
        return self._checked_proof(index, size, self.leaf_hash(index), root)

    def _checked_proof(self, index: int, size: int, leaf: bytes, root: bytes) -> list[bytes]:
        """The inclusion proof of `leaf` (block `index`) in the tree of `size` whose root is
        `root`, checked before anyone is handed it (`LedgerInvalid` naming the block)."""
        proof = self._inclusion_proof(index, size)
        try:
            merkle.verify_inclusion(index, size, leaf, proof, root)
        except InvalidProof as exc:
            raise LedgerInvalid(
                f"{self.location}: the inclusion proof of block {index} in the tree of "
                f"{n_blocks(size)} does not hold ({exc})"
            ) from None
        return proof

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> list[list[bytes]]:
        """Proofs of several blocks into one tree."""
        for index in indices:
            if not 0 <= index < size:
                raise UsageError(f"block {index} is not in a tree of {n_blocks(size)}")
        self._check_size(size)
        return [self._inclusion_proof(index, size) for index in indices]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from `old_size` to `new_size` (default: signed)."""
        new_size = self.signed_size() if new_size is None else new_size
        if not 0 <= old_size <= new_size:
            raise UsageError(f"old size {old_size} must be between 0 and {new_size}")
        self._check_size(new_size)
        return self._consistency_proof(old_size, new_size)

    def root_hash(self, size: int | None = None) -> bytes:
        """The signed root for the signed size; for an older size, the root of that prefix
        as the stored nodes give it (which a consistency proof then ties to the signed one)."""
        signed = self.signed_checkpoint()
        if size is None or size == signed.size:
            return signed.root_hash
        self._check_size(size)
        if not size:
            return merkle.EMPTY_ROOT
        return self._prefix_root(size, signed)

    def _check_size(self, size: int) -> None:
        have = len(self)
        if size > have:
            raise UsageError(f"tree size {size} is beyond the ledger's {n_blocks(have)}")


class Unsettled(LedgerInvalid):
    """Blocks lie beyond the signed checkpoint read: an append may be publishing it."""

    def __init__(self, message: str, note: str, way_out: WayOut | None = None) -> None:
        super().__init__(message, way_out=way_out)
        self.note = note


def same_file(a: str, b: str) -> bool:
    """Two names of one ledger file (say, through a symlinked directory): appending through
    either writes the same ledger."""
    if "://" in a or "://" in b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
