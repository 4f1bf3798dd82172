"""The ledger rules: what a block is, how one is appended, and what makes a ledger valid.

This is the one place those rules live. A ledger is a hash chain of blocks (the seed's
`current_hash` formula, kept for compatibility) and, over the same blocks, an RFC 9162 Merkle
tree whose leaves are the RFC 8785 encoding of each whole block. Every append signs a C2SP
checkpoint of the tree with the operator key, so rewriting the ledger -- even recomputing the
whole chain -- no longer matches a signature the attacker cannot make. The verifier's trust
state (in `MODELCHAIN_HOME`) remembers the newest checkpoint it accepted, so a ledger rolled
back to an older signed state, or forked, is caught too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from modelchain.checks.audit import AuditReport, check_nodes, check_trusted, walk_blocks
from modelchain.checks.verdict import Verification, judge
from modelchain.claims.keys import PrivateKey, PublicKey
from modelchain.claims.provenance import Provenance, RegistrationSignature
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import (
    ForkError,
    InvalidProof,
    LedgerInvalid,
    LedgerUnreadable,
    LocationError,
    NoteFormatError,
    NotRegistered,
    RollbackError,
    SignatureError,
    UsageError,
)
from modelchain.core.note import (
    Checkpoint,
    Signer,
    Verifier,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
)
from modelchain.fs.digest import (
    Manifest,
    PathDigest,
    digest_path,
    manifest_to_json,
)
from modelchain.ledgers.locations import local_path, open_store
from modelchain.log.block import (
    ZERO_HASH,
    Block,
    Kind,
    Registration,
    canonical_timestamp,
    chain_hash_matches,
    check_binding,
    default_name,
    n_blocks,
    parse_block,
    registration,
    seed_hash,
)
from modelchain.log.home import Home
from modelchain.log.store import Store, StoredBlock, Tip

if TYPE_CHECKING:
    from modelchain.ledgers.http import HTTPStore

#: how long a reader waits for the checkpoint of an append that is committing (its trust
#: state is written just before): only when what it read looks rolled back or unsigned
_PUBLISH_WAIT_S = 2.0
#: a server's entries read one by one with an inclusion proof each, up to this many; more
#: are checked by recomputing the root from the whole log
_PROVE_EACH = 32


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """The answer of `Ledger.lookup`, with what a remote client needs to check it: the
    entries with their leaf data and inclusion proofs into the signed checkpoint."""

    name: str
    model_hash: str
    note: str
    checkpoint: Checkpoint
    message: str
    verified: bool = False
    #: None when verified, else "not_registered", "digest_mismatch" or "older_version"
    reason: str | None = None
    #: the newest registered version of `name` and its leaf data
    newest: tuple[Block, bytes] | None = None
    newest_proof: list[bytes] | None = None
    #: the older version `model_hash` matched ("older_version")
    matched: tuple[Block, bytes] | None = None
    matched_proof: list[bytes] | None = None


class _StoreSubtrees:
    """Serves complete-subtree hashes from the store's node table (proofs in O(log n))."""

    def __init__(self, store: Store, size: int) -> None:
        self.store = store
        self.size = size

    def node(self, level: int, index: int) -> bytes:
        return self.store.node(level, index)


class _CachedSubtrees(_StoreSubtrees):
    """`_StoreSubtrees` that remembers what it read (nodes never change once written)."""

    #: a shared cache is emptied when it grows past this many nodes (~100 bytes each)
    LIMIT = 200_000

    def __init__(
        self, store: Store, size: int, seen: dict[tuple[int, int], bytes] | None = None
    ) -> None:
        super().__init__(store, size)
        self._seen: dict[tuple[int, int], bytes] = {} if seen is None else seen

    def node(self, level: int, index: int) -> bytes:
        key = (level, index)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            found = self._seen[key] = self.store.node(level, index)
        return found


@dataclass(frozen=True)
class _NameState:
    """What `lookup` read about one name (or one older digest) under one checkpoint."""

    indices: tuple[int, ...]
    newest: tuple[Block, bytes] | None
    proof: list[bytes] | None


class LookupCache:
    """What `Ledger.lookup` read under one signed checkpoint, which cannot change until the
    next append: the newest version of each name asked about, its proof, older matches.

    Keyed by the checkpoint note, so an append by any process (a new note) empties it; a
    service checks the current note (one cheap read) before it trusts an answer from here.
    One object may be shared by the `Ledger`s of a process's threads (dict operations are
    atomic; a reset replaces the tables whole)."""

    #: emptied when it holds this many names and digests (a few KB each)
    LIMIT = 50_000

    def __init__(self) -> None:
        self._state: tuple[str, Checkpoint, dict[Any, _NameState], dict[Any, _NameState]] | None
        self._state = None

    def checkpoint(self, note: str, checkpoint: Checkpoint | None = None) -> Checkpoint | None:
        """The checkpoint of `note` if the cache is for it; given one, start a new cache
        for it (when the note differs from the cached one)."""
        state = self._state
        if state is not None and state[0] == note:
            return state[1]
        if checkpoint is not None:
            self._state = (note, checkpoint, {}, {})
        return checkpoint

    def _tables(self, note: str) -> tuple[dict[Any, _NameState], dict[Any, _NameState]] | None:
        state = self._state
        return (state[2], state[3]) if state is not None and state[0] == note else None

    def name(self, note: str, name: str) -> _NameState | None:
        tables = self._tables(note)
        return None if tables is None else tables[0].get(name)

    def older(self, note: str, key: tuple[str, str, str]) -> _NameState | None:
        tables = self._tables(note)
        return None if tables is None else tables[1].get(key)

    def put_name(self, note: str, name: str, state: _NameState) -> None:
        self._put(note, 0, name, state)

    def put_older(self, note: str, key: tuple[str, str, str], state: _NameState) -> None:
        self._put(note, 1, key, state)

    def _put(self, note: str, which: int, key: Any, value: _NameState) -> None:
        tables = self._tables(note)
        if tables is None:
            return  # a newer checkpoint took over meanwhile
        table = tables[which]
        if len(table) >= self.LIMIT:
            table.clear()
        table[key] = value


# -- the ledger ---------------------------------------------------------------------------


class Ledger:
    """A tamper-evident ledger of model digests. Open one with `Ledger.open(location)`."""

    def __init__(
        self, store: Store, home: Home | None = None, keys: Sequence[Verifier] = ()
    ) -> None:
        self.store = store
        self.home = home if home is not None else Home()
        #: verifier keys for a server's checkpoints when a call passes none (remote only)
        self.keys = tuple(keys)
        #: a server's newest checkpoint this object accepted: (note, checkpoint, trusted before)
        self._remote_accepted: tuple[str, Checkpoint, int | None] | None = None
        self.home.check_separate_from(store.local_path)
        self._signer: Signer | None = None
        #: the newest checkpoint note this object signed or verified, to skip re-verifying it
        self._known_note: str | None = None
        self._known_checkpoint: Checkpoint | None = None
        self._tip_hash: str | None = None
        self._frontier: merkle.Frontier | None = None
        #: logs whose trust state this object wrote but has not yet synced to disk
        self._unsynced: set[str] = set()
        self._synced_at = time.monotonic()
        #: (note, checkpoint) last read by `read_checkpoint`
        self._read_cache: tuple[str, Checkpoint] | None = None
        #: (note, trusted note, error) of the last stored checkpoint refused against the
        #: trust state, so a service does not re-check (and wait) on every request
        self._refused: tuple[str, str | None, LedgerInvalid] | None = None
        #: the origin this object found to live at its location (appends are allowed)
        self._home_checked: str | None = None
        #: opt-in (a long-running reader such as the server): Merkle nodes read for proofs,
        #: kept across calls -- a stored node never changes once written
        self.node_cache: dict[tuple[int, int], bytes] | None = None
        #: opt-in, may be shared by a process's Ledgers: `lookup` answers per checkpoint
        self.lookup_cache: LookupCache | None = None
        self._finalizer = weakref.finalize(self, _sync_trust, self.home, self._unsynced)

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        home: Home | str | os.PathLike[str] | None = None,
        create: bool = False,
        keys: Sequence[Verifier] = (),
    ) -> Ledger:
        """Open a ledger: `*.json` (the seed's format), an SQLite path, the default
        `.modelchain/ledger.db`, or a server (`https://...`, checked with `keys` or the key
        pinned for its log). With `create=True` a missing ledger is created on first append."""
        if not isinstance(home, Home):
            home = Home(home)
        home.check_separate_from(local_path(location))  # before a file is created
        return cls(open_store(location, create=create), home, keys)

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

    def _unchanged_since_known(self, w: Any) -> tuple[merkle.Frontier, Checkpoint, str] | None:
        """If nobody wrote since this object last signed or verified the ledger (same size,
        same checkpoint), the tip it remembers is authentic: nothing needs re-reading."""
        size, note = w.head()
        frontier, checkpoint, tip_hash = self._frontier, self._known_checkpoint, self._tip_hash
        if note is None or note != self._known_note or frontier is None or frontier.size != size:
            return None
        if checkpoint is None or tip_hash is None:
            return None
        return frontier.copy(), checkpoint, tip_hash

    def _accept_own(self, origin: str, size: int, note: str) -> None:
        """What we sign, we trust -- so a later rollback below it is caught, by this and
        every other verifier sharing the home, and by a running service. Written the moment
        the append's transaction has committed, before the append returns (so before any
        client of the service is answered): a database rolled back after that is refused.
        Not before the commit: a writer killed between the two would leave the trust state
        ahead of a ledger that never held that checkpoint, a false rollback for ever.

        The write is atomic and at once visible to every process; it is synced to disk by
        `flush_trust` (within a second, and on close), not on every append, where two
        fsyncs cost ten times the append: a power loss in between can only leave the trust
        state older than the ledger, which the next check accepts by a consistency proof."""
        self.home.accept_checkpoint(origin, size, note, durable=False)
        self._unsynced.add(origin)

    def flush_trust(self) -> None:
        """Sync to disk the trust state this object's appends wrote (see `_accept_own`);
        on close, and at most a second after an append in a long-running writer such as
        the service."""
        _sync_trust(self.home, self._unsynced)
        self._synced_at = time.monotonic()

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

    # -- keys -------------------------------------------------------------------------------

    def _operator(self, origin: str, *, create: bool) -> Signer:
        if self._signer is None:
            self._signer = self.home.operator_signer(create=create)
        if self._signer.name != origin:
            self._signer = self._signer.with_name(origin)
        return self._signer

    def verifier_for(self, origin: str, keys: Sequence[Verifier] = ()) -> Verifier:
        """The key that must have signed `origin`'s checkpoints: one of `keys`, else ours
        (for a server's ledger: else the key pinned for that log, see `store.http`)."""
        if self.store.remote:
            return self._http().verifier(origin, keys or self.keys, self.home)
        for key in keys:
            if key.name == origin:
                return key
        if keys:
            names = ", ".join(k.name for k in keys)
            raise SignatureError(f"none of the given keys ({names}) is for log {origin!r}")
        if not self.home.has_operator_key():
            raise SignatureError(
                f"no key to check log {origin!r}: pass --key VERIFIER_KEY "
                f"(or create the operator key with `modelchain init`)"
            )
        return self._operator(origin, create=False).verifier()

    # -- writing ----------------------------------------------------------------------------

    def init(self, origin: str | None = None) -> str:
        """Create the ledger (and the operator key if missing); returns the checkpoint note.
        When it is refused, a ledger file this call created is removed again."""
        try:
            with self.store.writer() as w:
                tip = w.tip()
                if tip.origin is not None:
                    if origin is not None and origin != tip.origin:
                        raise UsageError(
                            f"{self.location} is already initialised for log {tip.origin!r}"
                        )
                    return tip.checkpoint or ""
                self._initialise(w, tip, origin)
        except BaseException:
            self.store.discard_created()
            raise
        self.flush_trust()
        return self._known_note or ""

    def _initialise(self, w: Any, tip: Tip, origin: str | None) -> Tip:
        if tip.checkpoint:
            self._check_same_log(tip.origin, tip.checkpoint)  # no origin record: refused
        if tip.size or tip.checkpoint:
            raise LedgerInvalid(
                f"{self.location}: holds {n_blocks(tip.size)} but no signed checkpoint; "
                "refusing to sign blocks nobody vouched for"
            )
        known = self.home.known_origin(self._trust_key())
        if known is not None:
            raise RollbackError(
                f"{self.location}: the ledger of log {known!r} that was here is gone "
                "(deleted or emptied); refusing to start a new one in its place. If it was "
                f"removed on purpose, run `modelchain trust forget --ledger {self.location}`; "
                f"if it moved, `modelchain trust move {known} NEW_LOCATION`"
            )
        if origin is not None:
            elsewhere = self.home.log_location(origin)
            if elsewhere is not None or self.home.trusted_checkpoint(origin) is not None:
                raise UsageError(
                    f"log {origin!r} already exists (at {elsewhere or 'a location not recorded'});"
                    " a second ledger under its name would be a fork of it: choose another "
                    "origin, or `modelchain trust forget` the old log first"
                )
        origin = origin or f"modelchain.local/{secrets.token_hex(8)}"
        signer = self._operator(origin, create=True)
        empty = Checkpoint(origin, 0, merkle.EMPTY_ROOT)
        note = sign_checkpoint(empty, signer)
        w.initialise(origin, note)
        self._remember(note, empty, ZERO_HASH, merkle.Frontier.empty())
        self.home.remember_location(self._trust_key(), origin)
        if self.home.claim_log_location(origin, self._trust_key()) == self._trust_key():
            self._home_checked = origin
        self.home.accept_checkpoint(origin, 0, note)  # what we sign, we trust
        return Tip(0, None, (), note, origin)

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
        if self.store.remote:
            self._http().token()  # refuse before hashing a large model for nothing
        if os.fspath(path).endswith(".safetensors") and os.path.isfile(path):
            from modelchain.fs.digest import safetensors_digests
            from modelchain.fs.safeio import read_once

            data = read_once(os.fspath(path))  # one read: the digests all describe these bytes
            digest = PathDigest("file", hashlib.sha256(data).hexdigest(), len(data), None)
            metadata = {**(metadata or {}), "tensors": safetensors_digests(data)}
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

    def _binding(self, name: str) -> tuple[tuple[str, int], set[str]]:
        """The log and the version a registration of `name` made now gets -- what its
        signatures are bound to -- and the signature values the log already holds for
        `name`. A server's are read from proofs of its entries for `name` (the checkpoint
        gives the origin); `append_many` checks the binding again under the write lock."""
        if self.store.remote:
            history, report = self._remote_history(name, ())
            origin: str | None = report.origin
        else:
            origin = self.store.origin()
            if origin is None:  # a new ledger: make it now, a signature must name its log
                self.init()
                origin = self.store.origin()
            if origin is None:
                raise LedgerInvalid(f"{self.location}: has no origin")
            history = [self.block(i) for i in self.store.find(name=name)]
        version = history[-1].version + 1 if history else 1
        return (origin, version), {s.sig for b in history for s in b.signatures}

    def append_many(self, entries: Sequence[Registration]) -> list[Block]:
        """Append several prepared entries in one transaction under one signed checkpoint.

        This is group commit for a busy service: one lock, one fsync and one signature for
        the whole batch. Versions count on across the batch (the same name twice gets v, v+1).
        """
        if not entries:
            return []
        if self.store.remote:
            return [self._submit_remote(entry) for entry in entries]
        try:
            return self._append_local(entries)
        except BaseException:
            self.store.discard_created()  # a refused first append leaves no new file
            raise

    def _append_local(self, entries: Sequence[Registration]) -> list[Block]:
        with self.store.writer() as w:
            known = self._unchanged_since_known(w)
            if known is not None:
                frontier, checkpoint, previous = known
            else:
                tip = w.tip()
                if tip.origin is None:
                    tip = self._initialise(w, tip, None)
                frontier, checkpoint, previous = self._check_tip(tip)
            self._check_log_home(checkpoint.origin)
            versions: dict[str, int] = {}
            blocks: list[Block] = []
            items: list[tuple[dict[str, Any], bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            newest: dict[str, Block] = {}  # this batch's newest block of each name
            for entry in entries:
                if not entry.force:
                    same = self._same_as_newest(w, entry, newest, checkpoint)
                    if same is not None:
                        blocks.append(same)
                        continue
                index, timestamp = frontier.size, canonical_timestamp(time.time())
                version = versions.get(entry.name)
                if version is None:
                    version = w.latest_version(entry.name)
                versions[entry.name] = version + 1
                if entry.binding is not None:
                    check_binding(entry, checkpoint.origin, version + 1)
                block = Block(
                    index=index,
                    timestamp=timestamp,
                    model_hash=entry.model_hash,
                    previous_hash=previous,
                    current_hash=seed_hash(index, timestamp, entry.model_hash, previous),
                    name=entry.name,
                    version=version + 1,
                    kind=entry.kind,
                    size=entry.size,
                    manifest=entry.manifest,
                    metadata=dict(entry.metadata),
                    provenance=entry.provenance,
                    signatures=entry.signatures,
                )
                raw = block.to_dict()
                data = canonical_json(raw)
                nodes.extend(frontier.append(merkle.leaf_hash(data)))
                items.append((raw, data))
                blocks.append(block)
                newest[block.name] = block
                previous = block.current_hash
            if not items:  # every one was registered already: nothing to sign or write
                return blocks
            signer = self._operator(checkpoint.origin, create=True)
            signed = Checkpoint(checkpoint.origin, frontier.size, frontier.root())
            note = sign_checkpoint(signed, signer)
            if len(items) == 1:
                w.append(items[0][0], items[0][1], nodes, note)
            else:
                w.append_many(items, nodes, note)
        self._accept_own(checkpoint.origin, frontier.size, note)  # committed: before we answer
        self._remember(note, signed, previous, frontier)
        if time.monotonic() - self._synced_at >= 1.0:
            self.flush_trust()
        if self.node_cache is not None:  # committed: the batch's proofs need these next
            if len(self.node_cache) + len(nodes) > _CachedSubtrees.LIMIT:
                self.node_cache.clear()
            for level, index, digest in nodes:
                self.node_cache[(level, index)] = digest
        return blocks

    def _same_as_newest(
        self, w: Any, entry: Registration, batch: Mapping[str, Block], checkpoint: Checkpoint
    ) -> Block | None:
        """The newest version of `entry.name` if it has the very same bytes (kind and
        digest), else None. A stored block counts only once it is proven (from the stored
        nodes) into the signed checkpoint the append extends, and is the version the store
        says is newest: an altered store cannot make us skip a registration on its word."""
        import dataclasses

        found = batch.get(entry.name)
        if found is None:
            # one indexed lookup for the usual case, bytes this name never had; only a
            # candidate is read, proven, and compared with the newest version number
            indices = [
                i
                for i in self.store.find(name=entry.name, digest=entry.model_hash)
                if i < checkpoint.size
            ]
            if not indices:
                return None
            index = indices[-1]
            stored = next(iter(self.store.blocks(index, index + 1)), None)
            if stored is None:
                raise LedgerInvalid(f"{self.location}: block {index} is missing")
            block = Block.from_raw(stored.raw, stored.position)
            if block.name != entry.name or block.model_hash != entry.model_hash:
                raise LedgerInvalid(
                    f"{self.location}: the name index disagrees with block {index}; "
                    "run `modelchain audit`"
                )
            if block.version != w.latest_version(entry.name):
                return None  # a newer version has other bytes: these are a new version
            proof = merkle.inclusion_proof(index, _StoreSubtrees(self.store, checkpoint.size))
            try:
                merkle.verify_inclusion(
                    index,
                    checkpoint.size,
                    merkle.leaf_hash(stored.data),
                    proof,
                    checkpoint.root_hash,
                )
            except InvalidProof:
                raise LedgerInvalid(
                    f"{self.location}: block {index} is not the one that was signed; "
                    "run `modelchain audit`"
                ) from None
            found = block
        if found.kind != entry.kind or found.model_hash != entry.model_hash:
            return None
        return dataclasses.replace(found, existing=True)

    def _check_tip(self, tip: Tip) -> tuple[merkle.Frontier, Checkpoint, str]:
        """Before signing anything new, make sure the tree we extend is the one we signed.

        Returns the tree's right edge, its checkpoint, and the newest block's current_hash.
        (When nothing changed since this object's last append or audit, `append` skips this
        and uses what it remembers: see `_unchanged_since_known`.)"""
        assert tip.origin is not None
        self._check_same_log(tip.origin, tip.checkpoint)
        if tip.checkpoint is None:
            raise LedgerInvalid(f"{self.location}: the signed checkpoint is missing")
        checkpoint = self._open_checkpoint(tip.checkpoint, tip.origin, ())
        frontier = merkle.Frontier(tip.size, list(tip.peaks))
        if checkpoint.size != tip.size:
            raise LedgerInvalid(
                f"{self.location}: holds {n_blocks(tip.size)} but its signed checkpoint covers "
                f"{n_blocks(checkpoint.size)}; run `modelchain audit`"
            )
        if frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the stored Merkle tree does not match the signed checkpoint; "
                "run `modelchain audit`"
            )
        previous = ZERO_HASH
        if tip.last_data is not None:
            if not self._is_signed_leaf(tip, frontier):
                raise LedgerInvalid(
                    f"{self.location}: block {tip.size - 1} is not the block that was signed; "
                    "run `modelchain audit`"
                )
            previous = parse_block(tip.last_data, tip.size - 1).current_hash
        self._check_trusted(checkpoint, self._prove_extends(checkpoint))
        self._remember(tip.checkpoint, checkpoint, previous, frontier)
        return frontier, checkpoint, previous

    def _is_signed_leaf(self, tip: Tip, frontier: merkle.Frontier) -> bool:
        """Is the newest block the one under the signed root? It lies in the smallest peak,
        so hashing it up with its left siblings must give that peak (O(log n), usually 1)."""
        assert tip.last_data is not None
        index = tip.size - 1
        digest = merkle.leaf_hash(tip.last_data)
        level = 0
        while (index >> level) & 1 and level < (tip.size & -tip.size).bit_length() - 1:
            sibling = self.store.node(level, (index >> level) - 1)
            digest = merkle.node_hash(sibling, digest)
            level += 1
        return digest == frontier.peaks[-1]

    def _prove_extends(self, checkpoint: Checkpoint) -> Callable[[int, bytes], bool]:
        """A check that `checkpoint` extends an older tree, by an RFC 9162 consistency proof
        built from the stored nodes (so the nodes themselves are checked against both roots)."""

        def check(old_size: int, old_root: bytes) -> bool:
            tree = _StoreSubtrees(self.store, checkpoint.size)
            try:
                proof = merkle.consistency_proof(old_size, tree)
                merkle.verify_consistency(
                    old_size, checkpoint.size, old_root, checkpoint.root_hash, proof
                )
            except (InvalidProof, LedgerUnreadable):
                return False
            return True

        return check

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
            return open_checkpoint(note, verifier)
        except NoteFormatError as exc:
            raise LedgerInvalid(f"{self.location}: the checkpoint is malformed: {exc}") from exc

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

    # -- reading ----------------------------------------------------------------------------

    def checkpoint(self) -> str:
        """The newest signed checkpoint note, as stored (a server's: once accepted)."""
        if self.store.remote:
            return self._remote_checkpoint()[0]
        note = self.store.checkpoint()
        if note is None:
            raise LedgerInvalid(f"{self.location}: has no signed checkpoint")
        return note

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[Block]:
        """Blocks in order, validated one by one (not audited: use `audit` for that).
        A server's blocks are each proven into its accepted checkpoint."""
        if self.store.remote:
            for block, _data in self._proven_entries(start, stop):
                yield block
            return
        for stored in self.store.blocks(start, stop):
            yield Block.from_raw(stored.raw, stored.position)

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

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Block, bytes]]:
        """Blocks with their exact leaf data, for a client that re-hashes what it is given."""
        if self.store.remote:
            yield from self._proven_entries(start, stop)
            return
        for stored in self.store.blocks(start, stop):
            yield Block.from_raw(stored.raw, stored.position), stored.data

    def read_checkpoint(self) -> tuple[str, Checkpoint]:
        """The newest signed note and its checkpoint, the signature checked once per note
        (a service reads it on every request)."""
        note = self.checkpoint()
        cached = self._read_cache
        if cached is not None and cached[0] == note:
            return cached
        origin = self.store.origin()
        if not self.store.remote:
            self._check_same_log(origin, note)
        checkpoint = self._open_checkpoint(note, origin, ())
        if not self.store.remote:
            note, checkpoint = self._check_served(note, checkpoint)
        self._read_cache = (note, checkpoint)
        return note, checkpoint

    def _check_served(self, note: str, checkpoint: Checkpoint) -> tuple[str, Checkpoint]:
        """A stored checkpoint is believed (and served) only if it is not older than, nor
        inconsistent with, the newest one the trust state accepted: the database may have
        been rolled back or forked under a running service. Checked once per new note; a
        refusal is remembered until the note or the trust state changes."""
        trusted_note = self.home.trusted_checkpoint(checkpoint.origin)
        refused = self._refused
        if refused is not None and refused[:2] == (note, trusted_note):
            raise refused[2]
        deadline = time.monotonic() + _PUBLISH_WAIT_S
        while True:
            try:
                self._check_trusted(checkpoint, self._prove_extends(checkpoint))
                return note, checkpoint
            except RollbackError as exc:
                if time.monotonic() >= deadline or not self._newer_note(note):
                    self._refused = (note, trusted_note, exc)
                    raise
            except LedgerInvalid as exc:
                self._refused = (note, trusted_note, exc)
                raise
            # an append was committing (its trust state is written first): take its note
            note = self.store.checkpoint() or note
            checkpoint = self._open_checkpoint(note, self.store.origin(), ())

    def _newer_note(self, note: str) -> bool:
        """Has a newer checkpoint been committed than `note` (waiting a moment for it)?

        Asked when `note` looks older than the trust state, or blocks lie beyond it: an
        append writes its trust state (and a JSON ledger its blocks) just before it
        publishes its checkpoint, so a reader in between must not cry tampering."""
        deadline = time.monotonic() + _PUBLISH_WAIT_S
        delay = 0.002
        while True:
            current = self.store.checkpoint()
            if current is not None and current != note:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def lookup(
        self,
        name: str,
        model_hash: str,
        *,
        kind: str = "file",
        signed: tuple[str, Checkpoint] | None = None,
    ) -> Lookup:
        """Is the `kind` (file or directory) with `model_hash` the newest registered version
        of `name`, as of the newest signed checkpoint? Judged as `verify` judges (kind and
        digest, `same_model`); answered from the store's index with an inclusion proof of
        the newest version -- not an audit: this is for clients that check the proof.

        `signed`: a (note, checkpoint) that `read_checkpoint` returned just before, to
        answer as of it without reading it again."""
        note, checkpoint = self.read_checkpoint() if signed is None else signed
        if self.lookup_cache is not None:
            self.lookup_cache.checkpoint(note, checkpoint)
        found = self._lookup(name, model_hash, kind, note, checkpoint, read=True)
        assert found is not None
        return found

    def cached_lookup(
        self, name: str, model_hash: str, note: str, *, kind: str = "file"
    ) -> Lookup | None:
        """`lookup` as of the checkpoint `note`, answered from `lookup_cache` alone (no I/O,
        so an event loop may call it), or None when the store must be read."""
        cache = self.lookup_cache
        checkpoint = None if cache is None else cache.checkpoint(note)
        if checkpoint is None:
            return None
        return self._lookup(name, model_hash, kind, note, checkpoint, read=False)

    def _lookup(
        self,
        name: str,
        model_hash: str,
        kind: str,
        note: str,
        checkpoint: Checkpoint,
        *,
        read: bool,
    ) -> Lookup | None:
        from modelchain.checks.verdict import same_model

        size = checkpoint.size
        cache = self.lookup_cache
        base = {"name": name, "model_hash": model_hash, "note": note, "checkpoint": checkpoint}
        state = None if cache is None else cache.name(note, name)
        if state is None:
            if not read:
                return None
            indices = tuple(i for i in self.store.find(name=name) if i < size)
            if indices:
                newest, data = self._entry_at(indices[-1], name)
                proof = self.inclusion_proof(newest.index, size)
                state = _NameState(indices, (newest, data), proof)
            else:
                state = _NameState(indices, None, None)
            if cache is not None:
                cache.put_name(note, name, state)
        if state.newest is None:
            return Lookup(**base, reason="not_registered", message=f"{name!r} is not registered")
        newest = state.newest[0]
        base.update(newest=state.newest, newest_proof=state.proof)
        if same_model(newest, kind, model_hash):
            return Lookup(**base, verified=True, message=f"{newest.label} matches")
        older: _NameState | None = None
        if len(state.indices) > 1:  # only then can an older version match
            key = (name, model_hash, kind)
            older = None if cache is None else cache.older(note, key)
            if older is None:
                if not read:
                    return None
                older = _NameState((), None, None)
                found = [
                    i for i in self.store.find(name=name, digest=model_hash) if i < newest.index
                ]
                for index in reversed(found):
                    match, match_data = self._entry_at(index, name)
                    if same_model(match, kind, model_hash):
                        proof = self.inclusion_proof(match.index, size)
                        older = _NameState((match.index,), (match, match_data), proof)
                        break
                if cache is not None:
                    cache.put_older(note, key, older)
        if older is not None and older.newest is not None:
            match = older.newest[0]
            return Lookup(
                **base,
                reason="older_version",
                message=f"{model_hash} is {match.label}, not the newest registered "
                f"version v{newest.version} (block {newest.index})",
                matched=older.newest,
                matched_proof=older.proof,
            )
        differs = (
            f"registered as a {newest.kind}, not a {kind}"
            if newest.model_hash == model_hash
            else f"sha256 {newest.model_hash}"
        )
        return Lookup(
            **base,
            reason="digest_mismatch",
            message=f"{model_hash} does not match {newest.label} ({differs})",
        )

    def _entry_at(self, index: int, name: str) -> tuple[Block, bytes]:
        for block, data in self.entries(index, index + 1):
            if block.name != name:
                raise LedgerInvalid(
                    f"{self.location}: the name index disagrees with block {index}; "
                    "run `modelchain audit`"
                )
            return block, data
        raise LedgerInvalid(f"{self.location}: block {index} is missing")

    def audit(
        self,
        *,
        keys: Sequence[Verifier] = (),
        update_trust: bool = True,
        on_block: Callable[[Block], None] | None = None,
        on_stored: Callable[[Block, StoredBlock], None] | None = None,
    ) -> AuditReport:
        """Check every block, the Merkle tree, the signed checkpoint and the trust state.

        Raises `LedgerInvalid` (or its subclasses `RollbackError`, `ForkError`) naming the
        first problem found, `SignatureError` when the checkpoint is not signed by the key.
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
        signed_size = checkpoint.size
        columns = store.lookup_columns(signed_size)

        walk = walk_blocks(
            self.location,
            store.blocks(0, signed_size),
            columns,
            origin,
            None if trusted is None else trusted.size,
            on_block,
            on_stored,
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
        previously = self._check_trusted(
            checkpoint, lambda _size, old_root: walk.root_at_trusted == old_root, trusted
        )
        if update_trust:
            self.home.accept_checkpoint(checkpoint.origin, checkpoint.size, note)
            self.home.remember_location(self._trust_key(), checkpoint.origin)
            if self.store.remote:
                self._http().pin(self.home)
        self._remember(note, checkpoint, previous, frontier)
        return AuditReport(
            location=self.location,
            origin=checkpoint.origin,
            size=size,
            root_hash=checkpoint.root_hash,
            checkpoint=note,
            previously_trusted=previously,
        )

    def _check_nodes(self, computed: dict[tuple[int, int], bytes], size: int) -> None:
        """Proofs are served from the stored nodes, so audit vouches for every one of them
        in the signed tree of `size` leaves. (Nodes beyond it belong to appends committed
        since, and are checked once a checkpoint covers them; no proof into this tree
        reads them. A server's nodes are not kept here: its proofs are checked as read.)"""
        if self.store.remote:
            return
        check_nodes(self.location, computed, size, self.store.all_nodes())

    def _first_unsigned_leaf(self, size: int) -> str:
        """Best effort: name the first block whose leaf differs from the stored tree."""
        try:
            for stored in self.store.blocks():
                if merkle.leaf_hash(stored.data) != self.store.node(0, stored.position):
                    return f"; first difference at block {stored.position}"
        except (LedgerUnreadable, LedgerInvalid):
            pass
        return ""

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
    ) -> Verification:
        """Check `path` against the newest registered version of `name`, and audit the ledger.

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
        history: list[Block] = []

        def collect(block: Block) -> None:
            if block.name == name:
                history.append(block)

        if self.store.remote:  # proofs of the name's entries, not a download of the log
            history, report = self._remote_history(name, keys)
        else:
            report = self.audit(keys=keys, on_block=collect)
        return judge(
            path,
            name,
            digest,
            history,
            report,
            location=self.location,
            version=version,
            required=required,
        )

    def _resolve_signers(self, signers: Sequence[PublicKey | str]) -> list[PublicKey | str]:
        if isinstance(signers, str):
            signers = [signers]
        from modelchain.claims.keys import resolve_public_key

        return [
            s if isinstance(s, PublicKey) else resolve_public_key(s, self.home.path)
            for s in signers
        ]

    # -- a server's ledger (store.http): everything it says is checked here ---------------

    def _http(self) -> HTTPStore:
        return cast("HTTPStore", self.store)

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
                "before (the ledger was replaced). If it was replaced on purpose, run "
                f"`modelchain trust forget --ledger {self.location}`"
            )
        return known

    def _way_back(self, origin: str) -> str:
        """The end of a rollback or fork message: where the log lives if this is a copy of
        it, and the command that accepts the change."""
        home = None if self.store.remote else self.home.log_location(origin)
        where = ""
        if (
            home is not None
            and home != self._trust_key()
            and not _same_file(home, self._trust_key())
        ):
            where = f". The log lives at {home}; this is another copy of it"
        return (
            f"{where}. If this older or other state is what you want, run `modelchain trust "
            f"forget {origin}` (this verifier then forgets everything it accepted for the log)"
        )

    def _check_log_home(self, origin: str) -> None:
        """Append only where the log lives: appending to a copy elsewhere (`cp -r` of a
        project) would make the log itself look rolled back."""
        if self._home_checked == origin:
            return
        here = self._trust_key()
        home = self.home.claim_log_location(origin, here)
        if home != here and not _same_file(home, here):
            raise LocationError(
                f"{self.location} holds a copy of log {origin!r}, which lives at {home}: "
                "appending here would make that ledger look rolled back. Register there, "
                f"or, if this copy is the log from now on, run `modelchain trust move {origin} "
                f"{self.location}`"
            )
        self._home_checked = origin

    def _remote_checkpoint(
        self, keys: Sequence[Verifier] = ()
    ) -> tuple[str, Checkpoint, int | None]:
        """The server's newest checkpoint, accepted only if it is signed by the log's key,
        is for the log this address served before, and extends the newest checkpoint
        accepted for that log (by a consistency proof the server must give). Returns the
        note, the checkpoint and the size accepted before (None: first sight)."""
        if self._remote_accepted is not None:
            return self._remote_accepted
        http = self._http()
        note = http.checkpoint() or ""
        origin = http.origin()
        self._check_same_log(origin)
        checkpoint = self._open_checkpoint(note, origin, keys)
        previously = self._check_trusted(checkpoint, self._prove_remote_extends(checkpoint))
        self._accept_remote(note, checkpoint, previously)
        assert self._remote_accepted is not None
        return self._remote_accepted

    def _accept_remote(self, note: str, checkpoint: Checkpoint, previously: int | None) -> None:
        self.home.accept_checkpoint(checkpoint.origin, checkpoint.size, note)
        self.home.remember_location(self._trust_key(), checkpoint.origin)
        self._http().pin(self.home)
        self._remote_accepted = (note, checkpoint, previously)

    def _prove_remote_extends(self, checkpoint: Checkpoint) -> Callable[[int, bytes], bool]:
        """A check that `checkpoint` extends an older tree, by the server's consistency proof."""

        def check(old_size: int, old_root: bytes) -> bool:
            proof = self._http().consistency_proof(old_size, checkpoint.size)
            try:
                merkle.verify_consistency(
                    old_size, checkpoint.size, old_root, checkpoint.root_hash, proof
                )
            except InvalidProof:
                return False
            return True

        return check

    def _proven(self, index: int, checkpoint: Checkpoint) -> tuple[Block, bytes]:
        """Entry `index` of a server's ledger, its leaf data proven into `checkpoint`."""
        http = self._http()
        stored = http.entry(index)
        proof = http.inclusion_proof(index, checkpoint.size)
        try:
            merkle.verify_inclusion(
                index, checkpoint.size, merkle.leaf_hash(stored.data), proof, checkpoint.root_hash
            )
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: entry {index} is not proven into the signed checkpoint "
                f"of {n_blocks(checkpoint.size)} ({exc})"
            ) from None
        return Block.from_raw(stored.raw, index), stored.data

    def _proven_entries(self, start: int, stop: int | None) -> Iterator[tuple[Block, bytes]]:
        """A range of a server's entries, checked against its accepted checkpoint: a few by
        inclusion proofs, many by recomputing the root from every leaf (fewer requests)."""
        _note, checkpoint, _before = self._remote_checkpoint()
        stop = checkpoint.size if stop is None else min(stop, checkpoint.size)
        if start >= stop:
            return
        if stop - start <= _PROVE_EACH:
            for index in range(start, stop):
                yield self._proven(index, checkpoint)
            return
        frontier = merkle.Frontier.empty()
        kept: list[StoredBlock] = []
        for stored in self._http().blocks(0, checkpoint.size):
            frontier.append(merkle.leaf_hash(stored.data))
            if start <= stored.position < stop:
                kept.append(stored)
        if frontier.size != checkpoint.size or frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the entries served do not match the signed checkpoint "
                f"of {n_blocks(checkpoint.size)} (Merkle root differs)"
            )
        for stored in kept:
            yield Block.from_raw(stored.raw, stored.position), stored.data

    def _remote_history(
        self, name: str, keys: Sequence[Verifier]
    ) -> tuple[list[Block], AuditReport]:
        """Every version of `name` on a server, each proven into its accepted checkpoint.

        The server's search finds them; a version it leaves out in the middle shows as a gap
        in the version numbers. (Withholding the newest versions cannot be ruled out without
        reading the whole log: that is what `audit` does.)"""
        note, checkpoint, previously = self._remote_checkpoint(keys)
        history: list[Block] = []
        for index in sorted(i for i in self.store.find(name=name) if i < checkpoint.size):
            block, _data = self._proven(index, checkpoint)
            if block.name != name:
                raise LedgerInvalid(
                    f"{self.location}: searched for {name!r}, was given entry {index} "
                    f"of {block.name!r}"
                )
            if block.version != len(history) + 1:
                raise LedgerInvalid(
                    f"{self.location}: searched for {name!r}, was given v{block.version} "
                    f"(entry {index}) after v{len(history)}: versions were left out"
                )
            history.append(block)
        report = AuditReport(
            location=self.location,
            origin=checkpoint.origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            checkpoint=note,
            previously_trusted=previously,
            proofs_only=True,
        )
        return history, report

    def _submit_remote(self, entry: Registration) -> Block:
        """Register on a server, then check its answer: the checkpoint is signed by the
        log's key and extends the one accepted before, the entry is proven into it, and the
        entry records exactly what was sent: the claim, its provenance and the signatures
        made here (a server that drops, adds or alters one is caught)."""
        _note, before, _previously = self._remote_checkpoint()
        manifest = None if entry.manifest is None else manifest_to_json(entry.manifest)
        sent: dict[str, Any] = {
            "name": entry.name,
            "digest": entry.model_hash,
            "kind": entry.kind,
            "size": entry.size,
            "metadata": dict(entry.metadata),
            "manifest": manifest,
        }
        if entry.provenance is not None:
            sent["provenance"] = dict(entry.provenance)
        if entry.signatures:
            sent["signatures"] = [s.to_json() for s in entry.signatures]
        if entry.force:  # absent means false: a server that predates the field still takes it
            sent["force"] = True
        answer = self._http().submit(sent)
        checkpoint = self._open_checkpoint(answer.note, before.origin, ())
        if answer.size != checkpoint.size or not 0 <= answer.index < checkpoint.size:
            raise InvalidProof(
                f"{self.location}: the server proved entry {answer.index} into a tree of "
                f"{n_blocks(answer.size)}, but its checkpoint covers {n_blocks(checkpoint.size)}"
            )
        try:
            merkle.verify_inclusion(
                answer.index,
                checkpoint.size,
                merkle.leaf_hash(answer.data),
                answer.proof,
                checkpoint.root_hash,
            )
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: the new entry {answer.index} is not proven into the "
                f"checkpoint the server signed for it ({exc})"
            ) from None
        self._remote_accepted = None
        previously = self._check_trusted(checkpoint, self._prove_remote_extends(checkpoint))
        block = Block.from_raw(answer.raw, answer.index)
        if answer.existing and not entry.force:
            return self._check_existing(block, entry, answer.note, checkpoint, previously)
        got: dict[str, Any] = {
            "name": block.name,
            "digest": block.model_hash,
            "kind": block.kind,
            "size": block.size,
            "metadata": dict(block.metadata),
            "manifest": None if block.manifest is None else manifest_to_json(block.manifest),
        }
        if block.provenance is not None:
            got["provenance"] = dict(block.provenance)
        if block.signatures:
            got["signatures"] = [s.to_json() for s in block.signatures]
        sent.pop("force", None)
        differ = [
            k
            for k in {**sent, **got}
            if k not in sent or k not in got or canonical_json(sent[k]) != canonical_json(got[k])
        ]
        differ += sorted(block.extra)  # fields nobody sent
        if differ:
            what = ", ".join(differ)
            raise LedgerInvalid(
                f"{self.location}: the server recorded entry {answer.index} with other "
                f"{what} than were sent"
            )
        if not chain_hash_matches(block):
            raise LedgerInvalid(
                f"{self.location}: entry {answer.index}: current_hash does not match its contents"
            )
        for _signature, problem in block.signature_problems(checkpoint.origin):
            if problem is not None:  # recorded as another version than the one signed
                raise LedgerInvalid(
                    f"{self.location}: entry {answer.index} ({block.label}): {problem}"
                )
        self._accept_remote(answer.note, checkpoint, previously)
        return block

    def _check_existing(
        self,
        block: Block,
        entry: Registration,
        note: str,
        checkpoint: Checkpoint,
        previously: int | None,
    ) -> Block:
        """A server that appended nothing must show the registration it means: proven into
        its signed checkpoint (checked by the caller), of this name, with these bytes."""
        import dataclasses

        if (block.name, block.kind, block.model_hash) != (
            entry.name,
            entry.kind,
            entry.model_hash,
        ):
            raise LedgerInvalid(
                f"{self.location}: the server says {entry.name!r} is registered already, "
                f"but shows entry {block.index} of {block.name!r} ({block.model_hash[:12]}…)"
            )
        if not chain_hash_matches(block):
            raise LedgerInvalid(
                f"{self.location}: entry {block.index}: current_hash does not match its contents"
            )
        self._accept_remote(note, checkpoint, previously)
        return dataclasses.replace(block, existing=True)

    # -- proofs -----------------------------------------------------------------------------

    def leaf_hash(self, index: int) -> bytes:
        """The Merkle leaf hash of block `index`, over its stored canonical encoding."""
        if self.store.remote and 0 <= index < len(self):
            return merkle.leaf_hash(self._http().entry(index).data)
        for stored in self.store.blocks(index, index + 1):
            return merkle.leaf_hash(stored.data)
        raise UsageError(f"no block {index}: the ledger has {n_blocks(len(self))}")

    def signed_checkpoint(self, keys: Sequence[Verifier] = ()) -> Checkpoint:
        """The newest checkpoint, its signature verified (not a full audit)."""
        if not keys:
            return self.read_checkpoint()[1]
        return self._open_checkpoint(self.checkpoint(), self.store.origin(), keys)

    def signed_size(self) -> int:
        return self.signed_checkpoint().size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of block `index` in the tree of `size` (default: signed)."""
        size = self.signed_size() if size is None else size
        if not 0 <= index < size:
            raise UsageError(f"block {index} is not in a tree of {n_blocks(size)}")
        self._check_size(size)
        if self.store.remote:  # the server's proof: `prove` checks it against a signed root
            return self._http().inclusion_proof(index, size)
        return merkle.inclusion_proof(index, self._subtrees(size))

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> list[list[bytes]]:
        """Proofs of several blocks into one tree, each stored node read once: the blocks of
        one appended batch share most of their proofs."""
        for index in indices:
            if not 0 <= index < size:
                raise UsageError(f"block {index} is not in a tree of {n_blocks(size)}")
        self._check_size(size)
        tree = _CachedSubtrees(self.store, size, self.node_cache)
        return [merkle.inclusion_proof(index, tree) for index in indices]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from `old_size` to `new_size` (default: signed)."""
        new_size = self.signed_size() if new_size is None else new_size
        if not 0 <= old_size <= new_size:
            raise UsageError(f"old size {old_size} must be between 0 and {new_size}")
        self._check_size(new_size)
        if self.store.remote:
            return self._http().consistency_proof(old_size, new_size)
        return merkle.consistency_proof(old_size, self._subtrees(new_size))

    def _subtrees(self, size: int) -> _StoreSubtrees:
        if self.node_cache is None:
            return _StoreSubtrees(self.store, size)
        return _CachedSubtrees(self.store, size, self.node_cache)

    def root_hash(self, size: int | None = None) -> bytes:
        """The signed root for the signed size; for an older size, the root of that prefix
        as the stored nodes give it (which a consistency proof then ties to the signed one)."""
        signed = self.signed_checkpoint()
        if size is None or size == signed.size:
            return signed.root_hash
        self._check_size(size)
        if not size:
            return merkle.EMPTY_ROOT
        if self.store.remote:
            return self._remote_prefix_root(size, signed)
        return merkle.subtree_hash(_StoreSubtrees(self.store, size), 0, size)

    def _remote_prefix_root(self, size: int, signed: Checkpoint) -> bytes:
        """A server's root of an older tree size, believed only once a consistency proof ties
        it to the signed checkpoint this client accepted."""
        root, proof = self._http().prefix_root(size, signed.size)
        try:
            merkle.verify_consistency(size, signed.size, root, signed.root_hash, proof)
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: the root the server gives for the tree of "
                f"{n_blocks(size)} is not consistent with its signed checkpoint ({exc})"
            ) from None
        return root

    def _check_size(self, size: int) -> None:
        have = len(self)
        if size > have:
            raise UsageError(f"tree size {size} is beyond the ledger's {n_blocks(have)}")


def copy_ledger(
    source: Ledger, destination: str | os.PathLike[str], *, keys: Sequence[Verifier] = ()
) -> AuditReport:
    """Copy an audited ledger, block for block, to a new location (`export` / `import`).

    Blocks, origin and signed checkpoint are copied verbatim, so the copy has the same Merkle
    root and the same signature: the copy is the same log, only stored differently. Nothing
    is created at `destination` unless the source audits and the copy succeeds.
    """
    copied: list[tuple[dict[str, Any], bytes]] = []

    def keep(block: Block, stored: StoredBlock) -> None:
        raw = block.to_dict()
        if canonical_json(raw) != stored.data:
            raw = stored.raw
        copied.append((raw, stored.data))

    report = source.audit(keys=keys, on_stored=keep)
    if not source.store.remote:  # the log lives where it was copied from, not in the copy
        source.home.claim_log_location(report.origin, source._trust_key())
    frontier = merkle.Frontier.empty()
    nodes: list[tuple[int, int, bytes]] = []
    for _, data in copied:
        nodes.extend(frontier.append(merkle.leaf_hash(data)))
    if frontier.root() != report.root_hash:  # the source changed under us
        raise LedgerInvalid(f"{source.location}: changed while it was being copied; try again")
    target_path = local_path(destination)
    existed = target_path is None or Path(target_path).exists()
    try:
        with Ledger.open(destination, home=source.home, create=True) as target:
            _fill(target, copied, nodes, report, keys)
    except BaseException:
        if not existed and target_path is not None:
            for suffix in ("", "-wal", "-shm", ".checkpoint", ".lock"):
                Path(target_path + suffix).unlink(missing_ok=True)
        raise
    return report


def _fill(
    target: Ledger,
    copied: list[tuple[dict[str, Any], bytes]],
    nodes: list[tuple[int, int, bytes]],
    report: AuditReport,
    keys: Sequence[Verifier],
) -> None:
    with target.store.writer() as w:
        tip = w.tip()
        if tip.origin is not None or tip.size:
            raise UsageError(
                f"{target.location} already holds a ledger (log {tip.origin}); "
                "copy into a new, empty location"
            )
        known = target.home.known_origin(target._trust_key())
        if known is not None and known != report.origin:
            raise RollbackError(
                f"{target.location}: log {known!r} was accepted here before; "
                "refusing to put another log in its place. If that log is gone on purpose, "
                f"run `modelchain trust forget --ledger {target.location}`"
            )
        w.import_blocks(copied, nodes, report.origin, report.checkpoint)
    target.home.claim_log_location(report.origin, target._trust_key())
    target.home.remember_location(target._trust_key(), report.origin)
    target.audit(keys=keys)


def _same_file(a: str, b: str) -> bool:
    """Two names of one ledger file (say, through a symlinked directory): appending through
    either writes the same ledger."""
    if "://" in a or "://" in b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _sync_trust(home: Home, unsynced: set[str]) -> None:
    while unsynced:
        home.sync_checkpoint(unsynced.pop())
