"""What a verifier believes about a name without reading the whole ledger: its newest block,
proven by the signed index and the signed tree, or its absence, proven by the index.

A local ledger and a server's answer `verify` the same way, here: the index proof must lead
from the block's index entry (its position, leaf hash and version, rebuilt from the block's
own bytes) to the index root the checkpoint signs, and the block must be proven into the
checkpoint's tree at that position. A store or server that hides the newest version, offers
an older one, drops a name or answers from another index root fails one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelchain.core import index, merkle
from modelchain.core.errors import InvalidProof, LedgerInvalid
from modelchain.core.note import Checkpoint
from modelchain.log.block import Block, index_entry, n_blocks, parse_block

__all__ = ["check_included", "check_newest", "signed_index_root"]


def signed_index_root(location: str, checkpoint: Checkpoint) -> bytes:
    """The index root `checkpoint` signs; a checkpoint of before the index has none."""
    root = index.root_from_extensions(checkpoint.extensions)
    if root is None:
        raise LedgerInvalid(
            f"{location}: its signed checkpoint carries no index root (a ledger made before "
            "the index: run `modelchain migrate`)"
        )
    return root


def check_newest(
    location: str,
    checkpoint: Checkpoint,
    name: str,
    proof: index.Proof,
    newest: tuple[int, bytes, Sequence[bytes]] | None,
) -> Block | None:
    """The newest block of `name` as of `checkpoint`, or None when the index proves it was
    never registered. `newest`: the block's position, its stored bytes and its inclusion
    proof. Raises `LedgerInvalid` naming what does not hold."""
    root = signed_index_root(location, checkpoint)
    key = index.key_of(name)
    if newest is None:
        try:
            index.verify(root, key, None, proof)
        except InvalidProof as exc:
            raise LedgerInvalid(
                f"{location}: says {name!r} is not registered, but the signed index does not "
                f"prove it ({exc})"
            ) from None
        return None
    position, data, inclusion = newest
    block = check_included(location, checkpoint, position, data, inclusion)
    if block.name != name:
        raise LedgerInvalid(
            f"{location}: asked for {name!r}, was shown block {position} of {block.name!r}"
        )
    try:
        index.verify(root, key, index_entry(block, data).value(), proof)
    except InvalidProof as exc:
        raise LedgerInvalid(
            f"{location}: {block.label} is not proven to be the newest version of {name!r} "
            f"by the signed index ({exc}): a newer version may be hidden"
        ) from None
    return block


def check_included(
    location: str, checkpoint: Checkpoint, position: int, data: bytes, inclusion: Sequence[bytes]
) -> Block:
    """Block `position` (its stored bytes `data`), proven into the checkpoint's tree."""
    if not 0 <= position < checkpoint.size:
        raise LedgerInvalid(
            f"{location}: block {position} is not in the signed tree of {n_blocks(checkpoint.size)}"
        )
    try:
        merkle.verify_inclusion(
            position, checkpoint.size, merkle.leaf_hash(data), list(inclusion), checkpoint.root_hash
        )
    except InvalidProof as exc:
        raise LedgerInvalid(
            f"{location}: block {position} is not proven into the signed checkpoint of "
            f"{n_blocks(checkpoint.size)} ({exc})"
        ) from None
    return parse_block(data, position)
