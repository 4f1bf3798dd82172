"""A ledger in a file or a database: the writer (append under one signed checkpoint, in
one transaction) and the reader over a `Store`, which a service runs on.

A ledger is a hash chain of blocks (the seed's `current_hash` formula, kept for
compatibility) and, over the same blocks, an RFC 9162 Merkle tree whose leaves are the
RFC 8785 encoding of each whole block. Every append signs a C2SP checkpoint of the tree
with the operator key, so rewriting the ledger -- even recomputing the whole chain -- no
longer matches a signature the attacker cannot make.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelchain.checks.audit import (
    AuditReport,
    Walk,
    check_index_nodes,
    check_index_update,
    check_nodes,
    checked_blocks,
    walk_blocks,
)
from modelchain.checks.verdict import same_model
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import (
    ForkError,
    InvalidProof,
    LedgerInvalid,
    LedgerUnreadable,
    LocationError,
    MissingNode,
    RollbackError,
    SignatureError,
    UsageError,
    WayOut,
)
from modelchain.core.index import EMPTY as EMPTY_INDEX
from modelchain.core.index import Entry, Index, extension_line, key_of, root_from_extensions
from modelchain.core.index import Proof as IndexProof
from modelchain.core.index import verify as verify_index
from modelchain.core.indexcache import authenticated_index
from modelchain.core.note import Checkpoint, Signer, Verifier, sign_checkpoint
from modelchain.ledgers.base import PUBLISH_WAIT_S, Ledger, Source, Unsettled, same_file
from modelchain.log.block import (
    ZERO_HASH,
    Block,
    Registration,
    canonical_timestamp,
    check_binding,
    index_entry,
    n_blocks,
    parse_block,
    seed_hash,
)
from modelchain.log.home import Home
from modelchain.log.store import Tip
from modelchain.log.store.base import StoreSubtrees

#: what to do about a ledger that does not hold together: audit it
_AUDIT = WayOut(command=("audit",), cli="; run `modelchain audit`")
_AUDIT_FULL = WayOut(command=("audit", "--full"), cli="; run `modelchain audit --full`")

__all__ = ["LocalLedger", "Lookup", "LookupMemo", "NameState", "NodeMemo"]


#: Merkle nodes kept across calls by a long-running reader (a service): a stored node never
#: changes once written, so a dict shared by threads serves them (see `StoreSubtrees`)
NodeMemo = dict[tuple[int, int], bytes]


#: how often a lookup reads again when appends rewrite the index nodes it was reading
_SUPERSEDED_TRIES = 5


class _Superseded(Exception):
    """The index nodes read belong to a checkpoint newer than the one being answered (an
    append committed meanwhile: nodes are rewritten in place), so read under the newer one."""


@dataclass(frozen=True)
class NameState:
    """What `lookup` read about one name (or one older digest) under one checkpoint."""

    indices: tuple[int, ...]
    newest: tuple[Block, bytes] | None
    proof: list[bytes] | None
    #: the index proof (`Proof.to_bytes()`) of the name in the checkpoint's signed index,
    #: checked against `newest` here; None for an older digest, or a checkpoint without one
    index_proof: bytes | None = None


class LookupMemo(Protocol):
    """What `lookup` read under one signed checkpoint, which cannot change until the next
    append: kept by a service (and shared by its readers), keyed by the checkpoint note."""

    def checkpoint(self, note: str, checkpoint: Checkpoint | None = None) -> Checkpoint | None:
        """The checkpoint of `note` if the memo is for it; given one, start a new memo for
        it (when the note differs from the remembered one)."""
        ...

    def get(self, note: str, key: tuple[str, ...]) -> NameState | None: ...

    def put(self, note: str, key: tuple[str, ...], state: NameState) -> None:
        """Remember `state` under `note` (nothing if a newer checkpoint took over)."""
        ...


@dataclass(frozen=True)
class Lookup:
    """The answer of `LocalLedger.lookup`, with what a remote client needs to check it: the
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
    #: the index proof of `name` (`Proof.to_bytes()`) in the signed index: that `newest` is
    #: its newest version, or that it is not registered; None when the checkpoint signs none
    index_proof: bytes | None = None


class LocalLedger(Ledger, default=True):
    """A ledger in a file (`*.json`, SQLite) or a PostgreSQL database, written here and
    signed with the operator key in `MODELCHAIN_HOME`."""

    def __init__(
        self,
        source: Source = None,
        home: Home | str | os.PathLike[str] | None = None,
        keys: Sequence[Verifier] = (),
        *,
        create: bool = False,
        node_cache: NodeMemo | None = None,
        lookup_cache: LookupMemo | None = None,
    ) -> None:
        """`node_cache` and `lookup_cache`: a long-running reader's (a service's) memory of
        the Merkle nodes proofs read and of `lookup` answers per checkpoint, which may be
        shared by the ledgers of a process's threads (see `modelchain.server.lookups`)."""
        super().__init__(source, home, keys, create=create)
        self.node_cache = node_cache
        self.lookup_cache = lookup_cache
        self._signer: Signer | None = None
        #: when `flush_trust` last made the trust state this object wrote durable
        self._synced_at = time.monotonic()
        #: (note, trusted note, error) of the last stored checkpoint refused against the
        #: trust state, so a service does not re-check (and wait) on every request
        self._refused: tuple[str, str | None, LedgerInvalid] | None = None
        #: the origin this object found to live at its location (appends are allowed)
        self._home_checked: str | None = None
        #: the index of newest versions as of the checkpoint note `_tree_note` (its nodes
        #: proven from that note's signed index root, or written here), kept across appends
        self._tree: Index | None = None
        self._tree_note: str | None = None
        #: the index as of one checkpoint note, its nodes proven as `lookup` read them
        self._proof_index: tuple[str, Index] | None = None

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
        self.home.trust.accept_later(origin, size, note)

    def flush_trust(self) -> None:
        """Sync to disk the trust state this object's appends wrote (see `_accept_own`);
        on close, and at most a second after an append in a long-running writer such as
        the service."""
        self.home.trust.flush()
        self._synced_at = time.monotonic()

    def _operator(self, origin: str, *, create: bool) -> Signer:
        if self._signer is None:
            self._signer = self.home.operator_signer(create=create)
        if self._signer.name != origin:
            self._signer = self._signer.with_name(origin)
        return self._signer

    def verifier_for(self, origin: str, keys: Sequence[Verifier] = ()) -> Verifier:
        """The key that must have signed `origin`'s checkpoints: one of `keys`, else ours."""
        for key in keys:
            if key.name == origin:
                return key
        if keys:
            names = ", ".join(k.name for k in keys)
            raise SignatureError(f"none of the given keys ({names}) is for log {origin!r}")
        if not self.home.has_operator_key():
            raise SignatureError(
                f"no key to check log {origin!r}",
                way_out=WayOut(
                    command=("init",),
                    flag=("--key",),
                    library=": pass keys= (or create the operator key with init())",
                    cli=": pass --key VERIFIER_KEY "
                    "(or create the operator key with `modelchain init`)",
                ),
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
                "(deleted or emptied); refusing to start a new one in its place",
                way_out=WayOut(
                    command=("trust", "forget", "--ledger", self.location),
                    cli=". If it was removed on purpose, run "
                    f"`modelchain trust forget --ledger {self.location}`; "
                    f"if it moved, `modelchain trust move {known} NEW_LOCATION`",
                ),
            )
        if origin is not None:
            elsewhere = self.home.log_location(origin)
            if elsewhere is not None or self.home.trusted_checkpoint(origin) is not None:
                raise UsageError(
                    f"log {origin!r} already exists (at {elsewhere or 'a location not recorded'});"
                    " a second ledger under its name would be a fork of it: choose another "
                    "origin",
                    way_out=WayOut(
                        command=("trust", "forget", origin),
                        cli=", or `modelchain trust forget` the old log first",
                    ),
                )
        origin = origin or f"modelchain.local/{secrets.token_hex(8)}"
        signer = self._operator(origin, create=True)
        empty = Checkpoint(origin, 0, merkle.EMPTY_ROOT, (extension_line(EMPTY_INDEX),))
        note = sign_checkpoint(empty, signer)
        w.initialise(origin, note)
        self._remember(note, empty, ZERO_HASH, merkle.Frontier.empty())
        self.home.remember_location(self._trust_key(), origin)
        if self.home.claim_log_location(origin, self._trust_key()) == self._trust_key():
            self._home_checked = origin
        self.home.accept_checkpoint(origin, 0, note)  # what we sign, we trust
        return Tip(0, None, (), note, origin)

    def _binding(self, name: str) -> tuple[tuple[str, int], set[str]]:
        """The log and the version a registration of `name` made now gets -- what its
        signatures are bound to -- and the signature values the log already holds for
        `name`; `append_many` checks the binding again under the write lock."""
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
        try:
            return self._append_local(entries)
        except BaseException:
            self.store.discard_created()  # a refused first append leaves no new file
            raise

    def _append_local(self, entries: Sequence[Registration]) -> list[Block]:
        try:
            return self._append_under_lock(entries)
        except BaseException:
            self._tree = None  # it may hold writes that were rolled back
            raise

    def _append_under_lock(self, entries: Sequence[Registration]) -> list[Block]:
        with self.store.writer() as w:
            known = self._unchanged_since_known(w)
            if known is not None:
                frontier, checkpoint, previous = known
                extended = self._known_note
            else:
                tip = w.tip()
                if tip.origin is None:
                    tip = self._initialise(w, tip, None)
                frontier, checkpoint, previous = self._check_tip(tip)
                extended = tip.checkpoint
            self._check_log_home(checkpoint.origin)
            tree, written = self._index_for(w, checkpoint, extended)
            # each name's stored newest version, read at once for a batch
            versions: dict[str, int] = (
                w.latest_versions(sorted({e.name for e in entries})) if len(entries) > 1 else {}
            )
            blocks: list[Block] = []
            items: list[tuple[dict[str, Any], bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            newest: dict[str, Block] = {}  # this batch's newest block of each name
            index_items: list[tuple[bytes, bytes]] = []  # put at once: a shared top hashed once
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
                entry_now = index_entry(block, data)
                index_items.append((entry_now.key, entry_now.value()))
                items.append((raw, data))
                blocks.append(block)
                newest[block.name] = block
                previous = block.current_hash
            written.update(tree.put_many(index_items))
            if not items:  # every one was registered already: nothing to sign or write
                if written:  # a ledger of before the index: its index is signed next time
                    self._tree = None
                return blocks
            signer = self._operator(checkpoint.origin, create=True)
            signed = Checkpoint(
                checkpoint.origin,
                frontier.size,
                frontier.root(),
                (extension_line(tree.root()),),
            )
            note = sign_checkpoint(signed, signer)
            w.append_many(items, nodes, note, written)
        self._accept_own(checkpoint.origin, frontier.size, note)  # committed: before we answer
        self._remember(note, signed, previous, frontier)
        self._keep_index(tree, note)
        if time.monotonic() - self._synced_at >= 1.0:
            self.flush_trust()
        memo = self.node_cache
        if memo is not None:  # committed: the batch's proofs need these next
            for level, index, digest in nodes:
                memo.put((level, index), digest)
        return blocks

    def _index_for(
        self, w: Any, checkpoint: Checkpoint, note: str | None
    ) -> tuple[Index, dict[tuple[int, int], bytes]]:
        """The index the append extends, and the nodes to write before any put: none when
        the checkpoint signs an index root (its nodes are proven from that root as they are
        read); every node when it signs none (a ledger made before the index: migrated by
        this append, its blocks checked against the signed tree first)."""
        if self._tree is not None and note is not None and self._tree_note == note:
            return self._tree, {}
        root = root_from_extensions(checkpoint.extensions)
        if root is None:
            tree = self._rebuild_index(checkpoint)
            return tree, dict(tree.nodes)
        return authenticated_index(w.index_nodes, root, self.location), {}

    def _keep_index(self, tree: Index, note: str) -> None:
        """Keep the index for the next append (nothing changes under it but our appends: the
        next append checks that, as it does for the tree), forgetting nodes past a bound."""
        if len(tree.nodes) > self.INDEX_CACHE_NODES:  # read again, proven from our root
            tree = authenticated_index(self.store.index_nodes, tree.root(), self.location)
        self._tree, self._tree_note = tree, note

    #: index nodes an appender keeps in memory (about 150 bytes each)
    INDEX_CACHE_NODES = 400_000
    #: index nodes a reader keeps for the proofs it serves under one checkpoint
    PROOF_INDEX_NODES = 100_000

    def _rebuild_index(self, checkpoint: Checkpoint) -> Index:
        """The index of the signed blocks, built from them: each block read and validated,
        and their leaves shown to make the signed tree, so what gets signed is the index of
        what was signed before, not of whatever the store holds."""
        tree = Index()
        frontier = merkle.Frontier.empty()
        for stored in self.store.blocks(0, checkpoint.size):
            block = Block.from_raw(stored.raw, stored.position)
            frontier.append(merkle.leaf_hash(stored.data))
            entry = index_entry(block, stored.data)
            tree.put(entry.key, entry.value())
        if frontier.size != checkpoint.size or frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the blocks no longer match the signed checkpoint; refusing "
                "to sign an index of them",
                way_out=_AUDIT,
            )
        return tree

    def migrate(self) -> tuple[str, bool]:
        """Sign the index of a ledger made before it: a new checkpoint of the same tree that
        carries the index root (older checkpoints stay valid; a verifier that accepted one
        accepts this by consistency). Returns the newest note and whether it is new."""
        with self.store.writer() as w:
            tip = w.tip()
            if tip.origin is None:
                raise LedgerUnreadable(f"{self.location}: has no ledger to migrate")
            frontier, checkpoint, previous = self._check_tip(tip)
            if root_from_extensions(checkpoint.extensions) is not None:
                return tip.checkpoint or "", False
            self._check_log_home(checkpoint.origin)
            tree = self._rebuild_index(checkpoint)
            signed = Checkpoint(
                checkpoint.origin,
                checkpoint.size,
                checkpoint.root_hash,
                (*checkpoint.extensions, extension_line(tree.root())),
            )
            note = sign_checkpoint(signed, self._operator(checkpoint.origin, create=False))
            w.set_checkpoint(note, dict(tree.nodes))
        self.home.accept_checkpoint(signed.origin, signed.size, note)
        self._remember(note, signed, previous, frontier)
        self._keep_index(tree, note)
        return note, True

    def _same_as_newest(
        self, w: Any, entry: Registration, batch: Mapping[str, Block], checkpoint: Checkpoint
    ) -> Block | None:
        """The newest version of `entry.name` if it has the very same bytes (kind and
        digest), else None. A stored block counts only once it is proven (from the stored
        nodes) into the signed checkpoint the append extends, and is the version the store
        says is newest: an altered store cannot make us skip a registration on its word."""
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
                    f"{self.location}: the name index disagrees with block {index}",
                    way_out=_AUDIT,
                )
            if block.version != w.latest_version(entry.name):
                return None  # a newer version has other bytes: these are a new version
            proof = merkle.inclusion_proof(index, self._subtrees(checkpoint.size, cached=False))
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
                    f"{self.location}: block {index} is not the one that was signed",
                    way_out=_AUDIT,
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
                f"{n_blocks(checkpoint.size)}",
                way_out=_AUDIT,
            )
        if frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the stored Merkle tree does not match the signed checkpoint",
                way_out=_AUDIT,
            )
        previous = ZERO_HASH
        if tip.last_data is not None:
            if not self._is_signed_leaf(tip, frontier):
                raise LedgerInvalid(
                    f"{self.location}: block {tip.size - 1} is not the block that was signed",
                    way_out=_AUDIT,
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
        top = (tip.size & -tip.size).bit_length() - 1
        siblings: list[tuple[int, int]] = []
        level = 0
        while (index >> level) & 1 and level < top:
            siblings.append((level, (index >> level) - 1))
            level += 1
        digest = merkle.leaf_hash(tip.last_data)
        for sibling in self.store.nodes(siblings) if siblings else ():  # one read
            digest = merkle.node_hash(sibling, digest)
        return digest == frontier.peaks[-1]

    def _prove_extends(self, checkpoint: Checkpoint) -> Callable[[int, bytes], bool]:
        """A check that `checkpoint` extends an older tree, by an RFC 9162 consistency proof
        built from the stored nodes (so the nodes themselves are checked against both roots)."""

        def check(old_size: int, old_root: bytes) -> bool:
            tree = self._subtrees(checkpoint.size, cached=False)
            try:
                proof = merkle.consistency_proof(old_size, tree)
                merkle.verify_consistency(
                    old_size, checkpoint.size, old_root, checkpoint.root_hash, proof
                )
            except (InvalidProof, LedgerUnreadable, LedgerInvalid):
                return False
            return True

        return check

    def _check_log_home(self, origin: str) -> None:
        """Append only where the log lives: appending to a copy elsewhere (`cp -r` of a
        project) would make the log itself look rolled back."""
        if self._home_checked == origin:
            return
        here = self._trust_key()
        home = self.home.claim_log_location(origin, here)
        if home != here and not same_file(home, here):
            raise LocationError(
                f"{self.location} holds a copy of log {origin!r}, which lives at {home}: "
                "appending here would make that ledger look rolled back. Register there",
                way_out=WayOut(
                    command=("trust", "move", origin, self.location),
                    cli=", or, if this copy is the log from now on, run "
                    f"`modelchain trust move {origin} {self.location}`",
                ),
            )
        self._home_checked = origin

    def _log_home(self, origin: str) -> str | None:
        return self.home.log_location(origin)

    # -- reading ----------------------------------------------------------------------------

    def checkpoint(self) -> str:
        """The newest signed checkpoint note, as stored."""
        note = self.store.checkpoint()
        if note is None:
            raise LedgerInvalid(f"{self.location}: has no signed checkpoint")
        return note

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Block, bytes]]:
        """Blocks with their exact leaf data, for a client that re-hashes what it is given."""
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
        self._check_same_log(origin, note)
        checkpoint = self._open_checkpoint(note, origin, ())
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
        deadline = time.monotonic() + PUBLISH_WAIT_S
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

    def _history(self, name: str, keys: Sequence[Verifier]) -> tuple[list[Block], AuditReport]:
        """Every version of `name`, as an audit of the whole ledger finds them."""
        history: list[Block] = []

        def collect(block: Block) -> None:
            if block.name == name:
                history.append(block)

        report = self.audit(keys=keys, on_block=collect)
        return history, report

    # -- a service's lookups --------------------------------------------------------------

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
        for _attempt in range(_SUPERSEDED_TRIES):
            if self.lookup_cache is not None:
                self.lookup_cache.checkpoint(note, checkpoint)
            try:
                found = self._lookup(name, model_hash, kind, note, checkpoint, read=True)
            except _Superseded:
                note, checkpoint = self.read_checkpoint()
                continue
            assert found is not None
            return found
        raise LedgerUnreadable(f"{self.location}: appends keep superseding the index read")

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
        size = checkpoint.size
        cache = self.lookup_cache
        base: dict[str, Any] = {
            "name": name,
            "model_hash": model_hash,
            "note": note,
            "checkpoint": checkpoint,
        }
        state = self._name_state(name, note, checkpoint, read=read)
        if state is None:
            return None
        base["index_proof"] = state.index_proof
        if state.newest is None:
            return Lookup(**base, reason="not_registered", message=f"{name!r} is not registered")
        newest = state.newest[0]
        base.update(newest=state.newest, newest_proof=state.proof)
        if same_model(newest, kind, model_hash):
            return Lookup(**base, verified=True, message=f"{newest.label} matches")
        older: NameState | None = None
        if len(state.indices) > 1:  # only then can an older version match
            key = ("older", name, model_hash, kind)
            older = None if cache is None else cache.get(note, key)
            if older is None:
                if not read:
                    return None
                older = NameState((), None, None)
                found = [
                    i for i in self.store.find(name=name, digest=model_hash) if i < newest.index
                ]
                for index in reversed(found):
                    match, match_data = self._entry_at(index, name)
                    if same_model(match, kind, model_hash):
                        proof = self._checked_proof(
                            match.index, size, merkle.leaf_hash(match_data), checkpoint.root_hash
                        )
                        older = NameState((match.index,), (match, match_data), proof)
                        break
                if cache is not None:
                    cache.put(note, key, older)
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

    def name_proof(
        self, name: str, *, signed: tuple[str, Checkpoint] | None = None
    ) -> tuple[str, Checkpoint, NameState]:
        """The newest block of `name` as of the newest signed checkpoint (or `signed`), with
        its inclusion proof and the index proof that it is the newest (or that the name is
        not registered): what a client checks without trusting the service. From
        `lookup_cache` when it holds the name."""
        note, checkpoint = self.read_checkpoint() if signed is None else signed
        for _attempt in range(_SUPERSEDED_TRIES):
            if self.lookup_cache is not None:
                self.lookup_cache.checkpoint(note, checkpoint)
            try:
                state = self._name_state(name, note, checkpoint, read=True)
            except _Superseded:
                note, checkpoint = self.read_checkpoint()
                continue
            assert state is not None
            return note, checkpoint, state
        raise LedgerUnreadable(f"{self.location}: appends keep superseding the index read")

    def _name_state(
        self, name: str, note: str, checkpoint: Checkpoint, *, read: bool
    ) -> NameState | None:
        """What the store says of `name` under `checkpoint`, each proof checked before it is
        served (a damaged store is refused here, not by every client); None when it is not
        cached and `read` is false."""
        cache = self.lookup_cache
        state = None if cache is None else cache.get(note, ("name", name))
        if state is not None or not read:
            return state
        size = checkpoint.size
        indices = tuple(i for i in self.store.find(name=name) if i < size)
        newest: tuple[Block, bytes] | None = None
        proof = None
        if indices:
            block, data = self._entry_at(indices[-1], name)
            # the block just read, under the checkpoint being judged: no second read
            proof = self._checked_proof(
                block.index, size, merkle.leaf_hash(data), checkpoint.root_hash
            )
            newest = (block, data)
        try:
            index_proof = self._checked_index_proof(name, note, checkpoint, newest)
        except LedgerInvalid:
            if self.store.checkpoint() != note:
                raise _Superseded from None  # an append rewrote the nodes read: read again
            raise
        state = NameState(indices, newest, proof, index_proof)
        if cache is not None:
            cache.put(note, ("name", name), state)
        return state

    def _checked_index_proof(
        self, name: str, note: str, checkpoint: Checkpoint, newest: tuple[Block, bytes] | None
    ) -> bytes | None:
        """The index proof of `name` as `Proof.to_bytes()`, checked to prove `newest` (or the
        name's absence) from the signed index root: the name lookup and the index must agree.
        None when the checkpoint signs no index (a ledger made before it)."""
        root = root_from_extensions(checkpoint.extensions)
        if root is None:
            return None
        key = key_of(name)
        kept = self._proof_index
        if kept is None or kept[0] != note or len(kept[1].nodes) > self.PROOF_INDEX_NODES:
            # the nodes proven for one note serve the next names' proofs (their top levels)
            tree = authenticated_index(self.store.index_nodes, root, self.location)
            self._proof_index = kept = (note, tree)
        try:
            proof = kept[1].prove(key)
        except LedgerInvalid:
            self._proof_index = None
            raise
        value = None if newest is None else index_entry(*newest).value()
        try:
            verify_index(root, key, value, proof)
        except InvalidProof as exc:
            said = "is not registered" if newest is None else f"ends at {newest[0].label}"
            raise LedgerInvalid(
                f"{self.location}: the name lookup says {name!r} {said}, but the signed "
                f"index does not agree ({exc})",
                way_out=_AUDIT,
            ) from None
        return proof.to_bytes()

    # -- proven reads (verify and load without a scan) --------------------------------------

    def _accepted(self, keys: Sequence[Verifier]) -> tuple[str, Checkpoint, int | None]:
        """The stored checkpoint, signature checked with `keys`, accepted against the trust
        state by a consistency proof from the stored nodes, and remembered there."""
        store = self.store
        # the trust state before the first read of the snapshot: an append writes it after
        # its commit, so the note the snapshot then shows is at least as new
        known = self.home.known_origin(self._trust_key())
        trusted = self._trusted(known) if known else None
        origin = store.origin()
        self._check_same_log(origin)
        if trusted is None and origin is not None:
            trusted = self._trusted(origin)  # a log first seen at this location
        note = store.checkpoint()
        if note is None:
            if trusted is not None:
                raise RollbackError(
                    f"{self.location}: the signed checkpoint is missing, but one covering "
                    f"{n_blocks(trusted.size)} was accepted before"
                )
            raise LedgerInvalid(f"{self.location}: has no signed checkpoint")
        if origin is None:
            self._check_same_log(origin, note)  # no record of which log this is: refused
        checkpoint = self._open_checkpoint(note, origin, keys)
        if trusted is not None and checkpoint.size < trusted.size and self._newer_note(note):
            note = store.checkpoint() or note  # an append was committing: take its note
            checkpoint = self._open_checkpoint(note, origin, keys)
        stored = store.size()  # the same snapshot as the note (a JSON ledger's two files
        if stored < checkpoint.size:  # may be between an append's two writes)
            raise LedgerInvalid(
                f"{self.location}: holds {n_blocks(stored)} but its signed checkpoint covers "
                f"{n_blocks(checkpoint.size)}: blocks were deleted",
                way_out=_AUDIT,
            )
        if stored > checkpoint.size:
            raise Unsettled(
                f"{self.location}: blocks {checkpoint.size} to {stored - 1} are not covered "
                f"by the signed checkpoint (which covers {checkpoint.size})",
                note,
                way_out=_AUDIT,
            )
        previously = self._check_trusted(checkpoint, self._prove_extends(checkpoint), trusted)
        self._audited(note, checkpoint)
        return note, checkpoint, previously

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        return self.store.snapshot()

    def _name_proof(
        self, name: str, checkpoint: Checkpoint
    ) -> tuple[IndexProof, tuple[int, bytes, list[bytes]] | None]:
        """From the stored index (each node proven from the signed root as it is read) and
        the name lookup, whose answer the index proof then checks."""
        tree = self._signed_index(checkpoint)
        key = key_of(name)
        try:
            proof = tree.prove(key)
            held = tree.get(key)
        except LedgerInvalid:
            if self.store.derives_index:  # the index is the blocks': name the changed one
                self.audit(update_trust=False)
            raise
        if held is None:
            return proof, None
        indices = [i for i in self.store.find(name=name) if i < checkpoint.size]
        if not indices:
            raise LedgerInvalid(
                f"{self.location}: the signed index holds {name!r}, but the name lookup finds "
                "no block of it",
                way_out=_AUDIT,
            )
        position = indices[-1]
        for stored in self.store.blocks(position, position + 1):
            inclusion = self._inclusion_proof(position, checkpoint.size)
            return proof, (position, stored.data, inclusion)
        raise LedgerInvalid(f"{self.location}: block {position} is missing")

    def _signed_index(self, checkpoint: Checkpoint) -> Index:
        """The stored index as of `checkpoint`, its nodes proven from its signed root."""
        root = root_from_extensions(checkpoint.extensions)
        if root is None:
            raise LedgerInvalid(f"{self.location}: its signed checkpoint carries no index root")
        return authenticated_index(self.store.index_nodes, root, self.location)

    def _proven(self, index: int, checkpoint: Checkpoint) -> tuple[Block, bytes]:
        for stored in self.store.blocks(index, index + 1):
            self._checked_proof(
                index, checkpoint.size, merkle.leaf_hash(stored.data), checkpoint.root_hash
            )
            return Block.from_raw(stored.raw, stored.position), stored.data
        raise LedgerInvalid(f"{self.location}: block {index} is missing")

    def _entry_at(self, index: int, name: str) -> tuple[Block, bytes]:
        for block, data in self.entries(index, index + 1):
            if block.name != name:
                raise LedgerInvalid(
                    f"{self.location}: the name index disagrees with block {index}",
                    way_out=_AUDIT,
                )
            return block, data
        raise LedgerInvalid(f"{self.location}: block {index} is missing")

    # -- audit --------------------------------------------------------------------------------

    def _audit_increment(
        self,
        note: str,
        checkpoint: Checkpoint,
        audited: Checkpoint,
        trusted: Checkpoint | None,
        update_trust: bool,
    ) -> AuditReport:
        """Audit the blocks appended since the `audited` checkpoint, in O(new blocks) reads:
        the signed tree proven to extend the audited one (a consistency proof from the stored
        nodes, and the audited tree's stored peaks, which must make its root, extended by the
        new blocks' leaves to the signed root); the new blocks checked as a full audit checks
        them (chain from the block before, proven into the audited tree; versions continuing
        from each name's newest block before, which the audited index commits to); the
        stored Merkle nodes they completed and the name lookup of each; and the signed index
        root proven to be the audited one updated by exactly the new blocks' entries
        (`verify_update`). Blocks before the audited size are not read again, nor the digest
        lookup column: `audit --full` checks those."""
        store = self.store
        start, size = audited.size, checkpoint.size
        stored_size = store.size()
        if size < start:
            raise RollbackError(
                f"{self.location}: rolled back: its signed checkpoint covers "
                f"{n_blocks(size)}, but it was audited at {n_blocks(start)} before",
                way_out=self._way_back(checkpoint.origin),
            )
        if stored_size < size:
            raise LedgerInvalid(
                f"{self.location}: holds {n_blocks(stored_size)} but its signed checkpoint "
                f"covers {n_blocks(size)}: blocks were deleted"
            )
        if stored_size > size:  # unless a newer note comes (`audit` waits outside the read)
            raise Unsettled(
                f"{self.location}: blocks {size} to {stored_size - 1} are not covered by the "
                f"signed checkpoint (which covers {size})",
                note,
                way_out=_AUDIT_FULL,
            )
        if not self._prove_extends(checkpoint)(start, audited.root_hash):
            raise ForkError(
                f"{self.location}: forked: its first {n_blocks(start)} are not the ones "
                "audited before (consistency check failed)",
                way_out=self._way_back(checkpoint.origin),
            )
        if size == start and root_from_extensions(checkpoint.extensions) != (
            root_from_extensions(audited.extensions)
        ):
            raise ForkError(
                f"{self.location}: forked: the checkpoint for {n_blocks(size)} has a different "
                "index root than the one audited before",
                way_out=self._way_back(checkpoint.origin),
            )
        new = list(store.blocks(start, size))
        # each new name's lookup (the raw names: the walk checks every block after)
        names = dict.fromkeys(s.raw.get("name") for s in new if isinstance(s.raw, dict))
        found = {n: store.find(name=n) for n in names if isinstance(n, str)}
        walk, before = self._audited_edge(audited, found)
        olds = {name: walk.newest[name] for name in before}
        placed: dict[str, list[int]] = {}
        walk = walk_blocks(
            self.location,
            checked_blocks(
                new,
                checkpoint.origin,
                lambda block: placed.setdefault(block.name, []).append(block.index),
            ),
            None,
            None if trusted is None else trusted.size,
            start=walk,
        )
        if walk.frontier.size != size or walk.frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: blocks {start} to {size - 1} do not make the signed "
                "checkpoint's tree from the audited one (Merkle root differs): the ledger "
                "was changed after it was signed"
            )
        self._check_new_nodes(walk.nodes)
        self._check_new_lookups(placed, found, start, size)
        # the stored index nodes, read unproven (level by level, for all the keys at once):
        # `verify_update` checks the proof made of them against the signed root, so a wrong
        # node can only make it fail
        tree = Index(fetch=self._index_levels)
        try:
            proof = tree.prove_update(sorted(key_of(name) for name in placed))
        except (InvalidProof, ValueError) as exc:  # a new name the stored index lacks
            raise LedgerInvalid(
                f"{self.location}: the stored index does not hold the new blocks ({exc})",
                way_out=_AUDIT_FULL,
            ) from None
        changes = {}
        for name, (index, leaf, versions) in walk.newest.items():
            if index < start:
                continue  # no new block of this name (its newest before was read for none)
            changes[key_of(name)] = (
                before.get(name),
                Entry(name, index, leaf, versions).value(),
            )
        try:
            check_index_update(self.location, audited, checkpoint, changes, proof)
        except LedgerInvalid:
            # a rollback or fork is named as such; an old block that changed, if that is why
            # (its entry is not the audited one)
            self._check_trusted(checkpoint, self._prove_extends(checkpoint), trusted)
            self._prove_audited(audited, {i: leaf for i, leaf, _v in olds.values()})
            raise
        return self._audited_to(
            note,
            checkpoint,
            (self._prove_extends(checkpoint), trusted),
            update_trust,
            (walk.previous, walk.frontier),
            since=start,
        )

    def _audited_edge(
        self, audited: Checkpoint, found: Mapping[str, list[int]]
    ) -> tuple[Walk, dict[str, bytes]]:
        """Where the new blocks start from, each part proven into the `audited` tree: its
        peaks (they must make its root), the current_hash of its last block (an inclusion
        proof), and each new name's newest block before it, as its index entry value: the
        audited index commits to that entry (its index, leaf hash and versions), so the
        update proof that follows proves these blocks too, from the audited index root."""
        start = audited.size
        frontier = merkle.Frontier.empty()
        if start:
            peaks = self.store.nodes(merkle.Frontier.peak_positions(start))
            frontier = merkle.Frontier(start, peaks)
        if frontier.root() != audited.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the stored Merkle nodes no longer make the audited tree of "
                f"{n_blocks(start)}",
                way_out=_AUDIT_FULL,
            )
        walk = Walk(frontier)
        before: dict[str, bytes] = {}
        wanted: dict[str, int] = {}
        for name, indices in found.items():  # the name lookup of each new block's name
            older = [i for i in indices if i < start]
            if older:
                wanted[name] = older[-1]
        read: dict[int, tuple[Block, bytes]] = {}
        for index in sorted({*wanted.values(), *([start - 1] if start else [])}):
            for stored in self.store.blocks(index, index + 1):
                read[index] = (Block.from_raw(stored.raw, index), merkle.leaf_hash(stored.data))
            if index not in read:
                raise LedgerInvalid(f"{self.location}: block {index} is missing")
        if start:
            self._prove_audited(audited, {start - 1: read[start - 1][1]})
        if start:
            walk.previous = read[start - 1][0].current_hash
        for name, index in wanted.items():
            block, leaf = read[index]
            if block.name != name:
                raise LedgerInvalid(
                    f"{self.location}: the name index disagrees with block {block.index}",
                    way_out=_AUDIT_FULL,
                )
            walk.newest[name] = (block.index, leaf, block.version)
            before[name] = Entry(name, block.index, leaf, block.version).value()
        return walk, before

    def _prove_audited(self, audited: Checkpoint, leaves: Mapping[int, bytes]) -> None:
        """Each of `leaves` (block index -> leaf hash) is in the `audited` tree: inclusion
        proofs from the stored nodes, every node they need read in one query."""
        size = audited.size
        plans = {index: merkle.inclusion_nodes(index, size) for index in leaves}
        ids = sorted({node for plan in plans.values() for node in plan.ids})
        known = dict(zip(ids, self.store.nodes(ids), strict=True)) if ids else {}
        for index, plan in plans.items():
            proof = merkle.proof_from_nodes(plan, [known[i] for i in plan.ids])
            try:
                merkle.verify_inclusion(index, size, leaves[index], proof, audited.root_hash)
            except InvalidProof:
                raise LedgerInvalid(
                    f"{self.location}: block {index} is not the one that was audited",
                    way_out=_AUDIT_FULL,
                ) from None

    def _check_new_nodes(self, computed: dict[tuple[int, int], bytes]) -> None:
        """The stored Merkle nodes the new blocks completed, which proofs are served from."""
        ids = sorted(computed)
        for (level, index), digest in zip(ids, self.store.nodes(ids), strict=True):
            if computed[(level, index)] != digest:
                raise LedgerInvalid(
                    f"{self.location}: stored Merkle node ({level}, {index}) does not match "
                    "the blocks (proofs served from it would fail)"
                )

    def _index_levels(self, ids: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """`Store.index_nodes`, one depth at a time, leaving out the ids under a node this
        read found empty or a leaf: an index of n keys is about log2(n) deep, so most of the
        levels a path's read asks for hold nothing."""
        by_depth: dict[int, list[tuple[int, int]]] = {}
        for node_id in ids:
            by_depth.setdefault(node_id[0], []).append(node_id)
        asked = set(ids)
        out: dict[tuple[int, int], bytes] = {}
        for depth in sorted(by_depth):
            wanted = [
                (d, p)
                for d, p in by_depth[depth]
                if (d - 1, p >> 1) not in asked or len(out.get((d - 1, p >> 1), b"")) == 32
            ]
            if wanted:
                out.update(self.store.index_nodes(wanted))
        return out

    def _check_new_lookups(
        self, placed: Mapping[str, list[int]], found: Mapping[str, list[int]], start: int, size: int
    ) -> None:
        """The name lookup must find each new block under its signed name (`placed`: the
        new blocks' indices by name), and no other block in [start, size) (the rest of the
        lookup columns: `audit --full`)."""
        for name, indices in placed.items():
            if [i for i in found.get(name, []) if start <= i < size] != indices:
                raise LedgerInvalid(
                    f"{self.location}: the lookup columns of {name!r} do not match the signed "
                    "blocks: lookups would find other blocks than were signed",
                    way_out=_AUDIT_FULL,
                )

    def _check_index_nodes(self, values: dict[bytes, bytes], root: bytes) -> bool:
        """Index proofs are served from the stored index nodes: vouch for every one."""
        check_index_nodes(self.location, values, self.store.all_index_nodes(), root)
        return True

    def _check_nodes(self, computed: dict[tuple[int, int], bytes], size: int) -> None:
        """Proofs are served from the stored nodes, so audit vouches for every one of them
        in the signed tree of `size` leaves. (Nodes beyond it belong to appends committed
        since, and are checked once a checkpoint covers them; no proof into this tree
        reads them.)"""
        check_nodes(self.location, computed, size, self.store.all_nodes())

    def _first_unsigned_leaf(self, size: int) -> str:
        """Best effort: name the first block whose leaf differs from the stored tree."""
        try:
            tree = self._subtrees(self.store.size(), cached=False)
            for stored in self.store.blocks():
                if merkle.leaf_hash(stored.data) != tree.node(0, stored.position):
                    return f"; first difference at block {stored.position}"
        except (LedgerUnreadable, LedgerInvalid):
            pass
        return ""

    # -- proofs -------------------------------------------------------------------------------

    def leaf_hash(self, index: int) -> bytes:
        """The Merkle leaf hash of block `index`, over its stored canonical encoding."""
        for stored in self.store.blocks(index, index + 1):
            return merkle.leaf_hash(stored.data)
        raise UsageError(f"no block {index}: the ledger has {n_blocks(len(self))}")

    def _inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """From the stored nodes; one missing from a signed tree is a damaged ledger."""
        try:
            return merkle.inclusion_proof(index, self._subtrees(size))
        except MissingNode as exc:
            raise LedgerInvalid(f"{exc.problem or exc}", way_out=_AUDIT) from None

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> list[list[bytes]]:
        """Proofs of several blocks into one tree, each stored node read once: the blocks of
        one appended batch share most of their proofs."""
        for index in indices:
            if not 0 <= index < size:
                raise UsageError(f"block {index} is not in a tree of {n_blocks(size)}")
        self._check_size(size)
        memo = self.node_cache
        tree = self._subtrees(size, memo={} if memo is None else memo)
        return [merkle.inclusion_proof(index, tree) for index in indices]

    def _consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return merkle.consistency_proof(old_size, self._subtrees(new_size))

    def _prefix_root(self, size: int, signed: Checkpoint) -> bytes:
        return merkle.subtree_hash(self._subtrees(size, cached=False), 0, size)

    def _subtrees(
        self, size: int, *, cached: bool = True, memo: NodeMemo | None = None
    ) -> StoreSubtrees:
        """The one place proofs and checks read stored Merkle nodes from: through the
        service's node cache (`cached`), or `memo`, or straight from the store."""
        if memo is None and cached:
            memo = self.node_cache
        return StoreSubtrees(self.store, size, memo)
