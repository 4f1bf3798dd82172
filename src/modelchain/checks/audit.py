"""The audit of a ledger, as far as it is a judgement over what the ledger reads: its blocks
one by one (chain, versions, signatures, lookup columns), the Merkle tree they make, the
stored nodes that proofs are served from, and the signed checkpoint against the one the
trust state accepted before. The ledgers read; these functions decide."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from modelchain.core import merkle
from modelchain.core.errors import ForkError, LedgerInvalid, RollbackError, WayOut
from modelchain.core.index import root_from_extensions
from modelchain.core.note import Checkpoint
from modelchain.log.block import ZERO_HASH, Block, chain_hash_matches, check_signatures, n_blocks
from modelchain.log.store import StoredBlock

__all__ = ["AuditReport", "Walk", "check_nodes", "check_trusted", "walk_blocks"]


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": True,
            "ledger": self.location,
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "previously_trusted_size": self.previously_trusted,
            "checked": (
                "index and inclusion proofs"
                if self.index_proven
                else "inclusion proofs"
                if self.proofs_only
                else "every block"
            ),
        }


@dataclass
class Walk:
    """What walking every block established: the tree's right edge, every node of it, the
    newest block's current_hash, and the root at the trusted size (None: not reached)."""

    frontier: merkle.Frontier
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)
    previous: str = ZERO_HASH
    root_at_trusted: bytes | None = None


def walk_blocks(
    location: str,
    stored_blocks: Iterable[StoredBlock],
    columns: Iterator[tuple[int, str, int, str]] | None,
    origin: str | None,
    trusted_size: int | None,
    on_block: Callable[[Block], None] | None = None,
    on_stored: Callable[[Block, StoredBlock], None] | None = None,
) -> Walk:
    """Check each block in order (the first problem is a `LedgerInvalid` naming the block)
    and build the Merkle tree over their stored bytes. `columns`: the store's lookup columns
    (index, name, version, model_hash), which must be those of the signed bodies."""
    walk = Walk(merkle.Frontier.empty())
    if trusted_size == 0:
        walk.root_at_trusted = merkle.EMPTY_ROOT
    versions: dict[str, int] = {}
    frontier, nodes = walk.frontier, walk.nodes
    previous = ZERO_HASH
    for stored in stored_blocks:
        block = Block.from_raw(stored.raw, stored.position)
        where = f"block {block.index}"
        if columns is not None:
            row = next(columns, None)
            if row != (block.index, block.name, block.version, block.model_hash):
                raise LedgerInvalid(
                    f"{where}: its lookup columns (name, version, model_hash) do not "
                    "match its signed body: lookups would find other blocks than "
                    "were signed"
                )
        if block.previous_hash != previous:
            raise LedgerInvalid(
                f"{where}: previous_hash does not match block {block.index - 1}'s "
                "current_hash (the chain is broken)"
                if block.index
                else f"{where}: previous_hash must be {ZERO_HASH[:8]}… for the first block"
            )
        if not chain_hash_matches(block):
            raise LedgerInvalid(f"{where}: current_hash does not match the block's contents")
        expected_version = versions.get(block.name, 0) + 1
        if block.version != expected_version:
            raise LedgerInvalid(
                f"{where}: {block.name!r} has version {block.version}, expected {expected_version}"
            )
        versions[block.name] = block.version
        if block.signatures:
            check_signatures(block, origin)
        previous = block.current_hash
        for level, index, digest in frontier.append(merkle.leaf_hash(stored.data)):
            nodes[(level, index)] = digest
        if trusted_size is not None and frontier.size == trusted_size:
            walk.root_at_trusted = frontier.root()
        if on_block is not None:
            on_block(block)
        if on_stored is not None:
            on_stored(block, stored)
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
