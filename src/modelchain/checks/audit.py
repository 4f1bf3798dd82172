"""The audit of a ledger, as far as it is a judgement over what the ledger reads: its blocks
one by one (chain, versions, signatures, lookup columns), the Merkle tree they make, the
stored nodes that proofs are served from, the index of newest versions they make, and the
signed checkpoint against the one the trust state accepted before. The ledgers read; these
functions decide.

An audit is full (every block, the index rebuilt from them) or incremental: from the checkpoint
of the last audit on, only the blocks appended since, the tree they extend (a consistency
proof) and the index update they make (an update proof). An incremental audit does not read
the blocks audited before, so a block changed among those is caught by `audit --full` (and by
every proof that reads it), not by the next incremental one."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelchain.core import index as sparse
from modelchain.core import merkle
from modelchain.core.errors import (
    ForkError,
    InvalidProof,
    LedgerInvalid,
    RollbackError,
    UsageError,
    WayOut,
)
from modelchain.core.index import Entry, key_of, root_from_extensions
from modelchain.core.note import Checkpoint
from modelchain.fs.progress import ProgressSink, announce
from modelchain.log.block import ZERO_HASH, Block, chain_hash_matches, n_blocks, signature_problem
from modelchain.log.store import StoredBlock
from modelchain.log.store.base import stored_text_block

__all__ = [
    "MIGRATE",
    "AuditReport",
    "Checked",
    "Newest",
    "Walk",
    "check_block",
    "check_index_nodes",
    "check_index_root",
    "check_index_update",
    "check_nodes",
    "check_texts",
    "check_trusted",
    "checked_blocks",
    "index_values",
    "reported",
    "walk_blocks",
]

#: what to do about a ledger whose checkpoint signs no index yet
MIGRATE = WayOut(command=("migrate",), cli="; run `modelchain migrate` to sign its index")

#: a name's newest block as a walk saw it: (index, Merkle leaf hash, version)
Newest = tuple[int, bytes, int]


@dataclass(frozen=True)
class AuditReport:
    """What a successful audit established."""

    location: str
    origin: str
    size: int
    root_hash: bytes
    checkpoint: str
    #: size of the checkpoint this verifier had accepted before (None: first sight)
    previously_trusted: int | None
    #: True when only some entries were proven into the signed checkpoint (a server's
    #: ledger in `verify`), not every block checked: reports must not claim a full audit
    proofs_only: bool = False
    #: True when the name's newest version was proven by the signed index (no scan)
    index_proven: bool = False
    #: an incremental audit: the size of the audit it continued from (blocks before it
    #: were not read again); None: every block was checked
    since: int | None = None
    #: whether the signed checkpoint carries an index root (False: a ledger of before the
    #: index, to be migrated)
    indexed: bool = True

    @property
    def checked(self) -> str:
        """What this audit read, in words (the CLI prints it, `--json` says it too)."""
        if self.index_proven:
            return "index and inclusion proofs"
        if self.proofs_only:
            return "inclusion proofs"
        if self.since is None:
            return "every block"
        if self.since == self.size:
            return f"no new blocks since the audit of {n_blocks(self.since)}"
        return f"blocks {self.since}..{self.size - 1} since the audit of {n_blocks(self.since)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": True,
            "ledger": self.location,
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "previously_trusted_size": self.previously_trusted,
            "checked": self.checked,
            "audit": (
                "proofs"
                if self.index_proven or self.proofs_only
                else "full"
                if self.since is None
                else "incremental"
            ),
            "audited_since": self.since,
            "index": self.indexed,
        }


@dataclass
class Walk:
    """What walking the blocks established: the tree's right edge, every node it completed,
    the newest block's current_hash, the root at the trusted size (None: not reached), each
    name's newest block, and that map as it stood at each of the sizes asked for."""

    frontier: merkle.Frontier
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)
    previous: str = ZERO_HASH
    root_at_trusted: bytes | None = None
    newest: dict[str, Newest] = field(default_factory=dict)
    newest_at: dict[int, dict[str, Newest]] = field(default_factory=dict)


#: what a block's own checks leave for the checks across blocks (chain, versions, lookup
#: columns, tree): its index, name, version, model_hash, previous_hash, current_hash, Merkle
#: leaf hash, whether current_hash matches its contents, and the message of its first
#: registration signature that does not verify (None: all do, or it has none)
Checked = tuple[int, str, int, str, str, str, bytes, bool, str | None]


def check_block(stored: StoredBlock, origin: str | None) -> tuple[Block, Checked]:
    """The checks one block needs nothing else for: it parses as a block at its position
    (else `LedgerInvalid`), its hash and signatures (recorded, for the walk to name in its
    order), its leaf. The same work whether the walk or a worker process does it."""
    block = Block.from_raw(stored.raw, stored.position)
    problem = signature_problem(block, origin) if block.signatures else None
    return block, (
        block.index,
        block.name,
        block.version,
        block.model_hash,
        block.previous_hash,
        block.current_hash,
        merkle.leaf_hash(stored.data),
        chain_hash_matches(block),
        problem,
    )


def check_texts(start: int, bodies: Sequence[Any], origin: str | None) -> tuple[list[Checked], str]:
    """`check_block` over blocks kept as text from position `start` on (a worker's share of a
    full audit). Stops at the first that does not parse: the blocks before it, and its
    message ("" when all parse), so that the walk names problems in block order."""
    out: list[Checked] = []
    try:
        for position, body in enumerate(bodies, start):
            out.append(check_block(stored_text_block(position, body), origin)[1])
    except LedgerInvalid as exc:
        return out, str(exc)
    return out, ""


def checked_blocks(
    stored_blocks: Iterable[StoredBlock],
    origin: str | None,
    on_block: Callable[[Block], None] | None = None,
    on_stored: Callable[[Block, StoredBlock], None] | None = None,
) -> Iterator[tuple[Checked, Callable[[], None] | None]]:
    """`check_block` in this process, each record with what to call once the walk has
    checked the block (the callbacks; None when there are none)."""
    for stored in stored_blocks:
        block, checked = check_block(stored, origin)
        done = None
        if on_block is not None or on_stored is not None:

            def done(block: Block = block, stored: StoredBlock = stored) -> None:
                if on_block is not None:
                    on_block(block)
                if on_stored is not None:
                    on_stored(block, stored)

        yield checked, done


#: blocks between two reports to a progress sink
REPORT_EVERY = 4096


def reported(
    checked: Iterable[tuple[Checked, Callable[[], None] | None]],
    progress: ProgressSink | None,
    total: int,
) -> Iterable[tuple[Checked, Callable[[], None] | None]]:
    """`checked`, telling `progress` (if any) of `total` blocks to check, then of the blocks
    the walk has taken, every `REPORT_EVERY`."""
    if progress is None:
        return checked
    announce(progress, total, "auditing")

    def counted() -> Iterator[tuple[Checked, Callable[[], None] | None]]:
        taken = 0
        for item in checked:
            yield item
            taken += 1
            if taken == REPORT_EVERY:
                progress.advance(taken)
                taken = 0
        progress.advance(taken)

    return counted()


def walk_blocks(
    location: str,
    checked: Iterable[tuple[Checked, Callable[[], None] | None]],
    columns: Iterator[tuple[int, str, int, str]] | None,
    trusted_size: int | None,
    *,
    start: Walk | None = None,
    snapshots: Collection[int] = (),
) -> Walk:
    """Check each block in order (the first problem is a `LedgerInvalid` naming the block)
    and build the Merkle tree over their stored bytes. `checked`: each block's own checks
    (`checked_blocks`, or worker processes'), in order. `columns`: the store's lookup
    columns (index, name, version, model_hash), which must be those of the signed bodies.

    `start`: continue an audited tree (its frontier, the current_hash of its last block, and
    the newest block before it of each name the new blocks carry) instead of the empty one.
    `snapshots`: sizes at which to keep a copy of the newest-block map (for the index roots
    of older checkpoints)."""
    walk = start if start is not None else Walk(merkle.Frontier.empty())
    if trusted_size == walk.frontier.size:
        walk.root_at_trusted = walk.frontier.root()
    newest = walk.newest
    frontier, nodes = walk.frontier, walk.nodes
    previous = walk.previous
    if frontier.size in snapshots:
        walk.newest_at[frontier.size] = dict(newest)
    for record, done in checked:
        index, name, version, model_hash, previous_hash, current_hash, leaf, sound, problem = record
        where = f"block {index}"
        if columns is not None:
            row = next(columns, None)
            if row != (index, name, version, model_hash):
                raise LedgerInvalid(
                    f"{where}: its lookup columns (name, version, model_hash) do not "
                    "match its signed body: lookups would find other blocks than "
                    "were signed"
                )
        if index != frontier.size:
            raise LedgerInvalid(f"{where}: stored at position {frontier.size}")
        if previous_hash != previous:
            raise LedgerInvalid(
                f"{where}: previous_hash does not match block {index - 1}'s "
                "current_hash (the chain is broken)"
                if index
                else f"{where}: previous_hash must be {ZERO_HASH[:8]}… for the first block"
            )
        if not sound:
            raise LedgerInvalid(f"{where}: current_hash does not match the block's contents")
        before = newest.get(name)
        expected_version = 1 if before is None else before[2] + 1
        if version != expected_version:
            raise LedgerInvalid(
                f"{where}: {name!r} has version {version}, expected {expected_version}"
            )
        if problem is not None:
            raise LedgerInvalid(problem)
        previous = current_hash
        newest[name] = (index, leaf, version)
        for level, at, digest in frontier.append(leaf):
            nodes[(level, at)] = digest
        if trusted_size is not None and frontier.size == trusted_size:
            walk.root_at_trusted = frontier.root()
        if frontier.size in snapshots:
            walk.newest_at[frontier.size] = dict(newest)
        if done is not None:
            done()
    walk.previous = previous
    if columns is not None and next(columns, None) is not None:
        raise LedgerInvalid(
            f"{location}: the lookup columns list blocks that are not in the ledger"
        )
    return walk


def check_nodes(
    location: str,
    computed: dict[tuple[int, int], bytes],
    size: int,
    stored_nodes: Iterable[tuple[int, int, bytes]],
) -> None:
    """Proofs are served from the stored nodes, so audit vouches for every one of them in
    the signed tree of `size` leaves. (Nodes beyond it belong to appends committed since,
    and are checked once a checkpoint covers them; no proof into this tree reads them.)"""
    seen = 0
    for level, index, digest in stored_nodes:
        if 0 <= level < 64 and index >= 0 and (index + 1) << level > size:
            continue
        if computed.get((level, index)) != digest:
            raise LedgerInvalid(
                f"{location}: stored Merkle node ({level}, {index}) does not match "
                "the blocks (proofs served from it would fail)"
            )
        seen += 1
    if seen != len(computed):
        raise LedgerInvalid(f"{location}: {len(computed) - seen} stored Merkle nodes are missing")


def check_trusted(
    location: str,
    checkpoint: Checkpoint,
    trusted: Checkpoint | None,
    extends: Callable[[int, bytes], bool],
    way_back: Callable[[], WayOut],
) -> int | None:
    """Refuse a checkpoint that is older than, or not an extension of, the `trusted` one
    (`extends(size, root)`: a consistency check against that older tree); returns the
    trusted size (None: first sight). `way_back()` ends a refusal: how to accept it."""
    if trusted is None:
        return None
    trusted_index = root_from_extensions(trusted.extensions)
    if trusted_index is not None and root_from_extensions(checkpoint.extensions) is None:
        raise RollbackError(
            f"{location}: rolled back: its signed checkpoint of {n_blocks(checkpoint.size)} "
            "carries no index root, but the one accepted before (of "
            f"{n_blocks(trusted.size)}) did",
            way_out=way_back(),
        )
    if checkpoint.size < trusted.size:
        raise RollbackError(
            f"{location}: rolled back: its signed checkpoint covers "
            f"{n_blocks(checkpoint.size)}, but one covering {trusted.size} was accepted "
            "before",
            way_out=way_back(),
        )
    if checkpoint.size == trusted.size:
        if checkpoint.root_hash != trusted.root_hash:
            raise ForkError(
                f"{location}: forked: the checkpoint for {n_blocks(checkpoint.size)} has "
                "a different root hash than the one accepted before",
                way_out=way_back(),
            )
        if trusted_index is not None and root_from_extensions(checkpoint.extensions) != (
            trusted_index
        ):
            raise ForkError(
                f"{location}: forked: the checkpoint for {n_blocks(checkpoint.size)} has "
                "a different index root than the one accepted before",
                way_out=way_back(),
            )
        return trusted.size
    if not extends(trusted.size, trusted.root_hash):
        raise ForkError(
            f"{location}: forked: its first {n_blocks(trusted.size)} are not the ones "
            "accepted before (consistency check failed)",
            way_out=way_back(),
        )
    return trusted.size


def index_values(newest: Mapping[str, Newest]) -> dict[bytes, bytes]:
    """The index of newest versions that blocks make (key -> value), from a walk's map."""
    return {
        key_of(name): Entry(name, index, leaf, versions).value()
        for name, (index, leaf, versions) in newest.items()
    }


def check_index_root(location: str, values: Mapping[bytes, bytes], signed: bytes, of: str) -> None:
    """The index rebuilt from the blocks must be the one `of` (a checkpoint) signs: an index
    root that does not match would prove other newest versions than the blocks hold."""
    if sparse.root_of(values) != signed:
        raise LedgerInvalid(
            f"{location}: the index root signed in {of} does not match the index the blocks "
            "make (the index of newest versions was forged or damaged)"
        )


def check_index_nodes(
    location: str,
    values: Mapping[bytes, bytes],
    stored: Iterable[tuple[tuple[int, int], bytes]],
    root: bytes,
) -> None:
    """Every stored index node must be the node of the index the blocks make (`values`): each
    leaf a name's newest entry at a place on its key's path, each inner node the hash of its
    two children and over two keys or more (compact), each node under an inner node, every
    name there, and the top the signed `root`. Then the stored index is the compact tree of
    `values` and its root theirs. Proofs are served from these nodes; the deepest damaged
    one is named (a node altered breaks its own check first)."""
    nodes = dict(stored)
    sha256 = hashlib.sha256
    size, bits = sparse.HASH_SIZE, sparse.KEY_BITS
    hashes = {key: sha256(value).digest() for key, value in values.items()}
    empty = sparse.EMPTY
    worst: tuple[int, int, str] | None = None
    leaves = 0

    def child(record: bytes | None) -> bytes:
        if record is None:
            return empty
        if len(record) == 2 * size:
            return sha256(b"\x00" + record).digest()
        return record

    for (depth, prefix), record in nodes.items():
        why = ""
        if not 0 <= depth <= bits or prefix < 0 or prefix >> depth:
            why = "lies outside the tree"
        elif depth and len(nodes.get((depth - 1, prefix >> 1), b"")) != size:
            why = "hangs under no inner node"
        elif len(record) == 2 * size:
            leaves += 1
            key = record[:size]
            if depth and int.from_bytes(key, "big") >> (bits - depth) != prefix:
                why = "holds a key that does not belong there"
            elif hashes.get(key) != record[size:]:
                why = "holds an entry that is not a name's newest block"
        elif len(record) == size and depth < bits:
            below = nodes.get((depth + 1, prefix << 1)), nodes.get((depth + 1, (prefix << 1) | 1))
            if record != sha256(b"\x01" + child(below[0]) + child(below[1])).digest():
                why = "is not the hash of its children"
            elif None in below and len(below[0] or below[1] or b"") != size:
                why = "holds fewer than two keys (the tree is not compact)"
        else:
            why = "is not a record"
        if why and (worst is None or depth > worst[0]):
            worst = (depth, prefix, why)
    if worst is not None:
        depth, prefix, why = worst
        raise LedgerInvalid(
            f"{location}: stored index node (depth {depth}, prefix {prefix:#x}) {why}: "
            "index proofs served from it would fail"
        )
    if child(nodes.get((0, 0))) != root:
        raise LedgerInvalid(f"{location}: the stored index does not lead to the signed index root")
    if leaves != len(hashes):
        raise LedgerInvalid(
            f"{location}: the stored index holds {leaves} names, the blocks {len(hashes)}"
        )


def check_index_update(
    location: str,
    audited: Checkpoint,
    signed: Checkpoint,
    changes: Mapping[bytes, tuple[bytes | None, bytes]],
    proof: Any,
) -> None:
    """The signed index must be the audited one with exactly the entries the new blocks make
    (`changes`: key -> (entry before the audited size or None, newest entry now))."""
    old_root = root_from_extensions(audited.extensions)
    new_root = root_from_extensions(signed.extensions)
    if old_root is None or new_root is None:
        raise UsageError("an incremental audit needs two checkpoints that sign an index")
    try:
        sparse.verify_update(old_root, new_root, changes, proof)
    except (InvalidProof, ValueError) as exc:
        raise LedgerInvalid(
            f"{location}: the index root signed for {n_blocks(signed.size)} is not the "
            f"audited index of {n_blocks(audited.size)} updated by the new blocks ({exc})"
        ) from None
