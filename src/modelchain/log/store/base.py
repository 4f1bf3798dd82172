"""The storage interface every backend implements, and nothing more.

A store keeps five things: blocks (JSON objects, in index order), the hashes of the complete
Merkle subtrees over them (so proofs and appends cost O(log n)), the nodes of the index of
newest versions (`core.index`, so a name's newest block is proven in O(log n)), the newest
signed checkpoint note, and the log origin. Merkle nodes are read by ID in batches
(`Store.nodes`): the proof code names every node a proof needs up front
(`merkle.inclusion_nodes`), so `StoreSubtrees` serves a whole proof, or a tree's peaks, in
one round trip.

A store enforces one ledger rule only, as a last line of defence: a (name, version) is
stored once (`duplicate_version`). Otherwise the ledger (`modelchain.ledgers`) decides what
is written and checks what is read; the store only makes each write atomic and serialises
writers (several processes may append at once).
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

# the stores read JSON with these (defined once, with canonical JSON)
from modelchain.core.canonical import loads_unique
from modelchain.core.errors import LedgerInvalid, WayOut

#: where a ledger is when none is named: this folder or the nearest parent that has one
DEFAULT_LEDGER = os.path.join(".modelchain", "ledger.db")


#: the ways out of "no ledger here": create one, or name another
NO_LEDGER_WAY_OUT = WayOut(
    command=("init",),
    flag=("--ledger",),
    env=("MODELCHAIN_LEDGER",),
    cli=(
        ": run `modelchain init` to create one, or name another with --ledger or MODELCHAIN_LEDGER"
    ),
)


def no_ledger_message(location: str | os.PathLike[str]) -> str:
    """The "no ledger here" message (raise it with `way_out=NO_LEDGER_WAY_OUT`)."""
    where = str(location)
    searched = " (nor in a parent folder)" if where == DEFAULT_LEDGER else ""
    return f"no ledger at {where}{searched}"


@dataclass(frozen=True)
class StoredBlock:
    """A block as read back: its position, the parsed object, and its leaf data.

    `data` is the canonical (RFC 8785) encoding the Merkle leaf is computed over. Stores that
    keep canonical text return it verbatim (any change to it changes the leaf, so audit sees
    it); stores that keep another layout re-encode `raw`.
    """

    position: int
    raw: Any
    data: bytes


def stored_text_block(position: int, body: Any) -> StoredBlock:
    """A block kept as canonical JSON text in a database row. A row of another type (a
    BLOB, a number: an attacker may write the database) is an invalid ledger, never a crash."""
    if not isinstance(body, str):
        if isinstance(body, bytes | bytearray | memoryview):
            kind = "binary data"
        elif body is None:
            kind = "NULL"
        else:
            kind = "a number" if isinstance(body, int | float) else "a non-text value"
        raise LedgerInvalid(f"block {position}: stored as {kind}, not as JSON text")
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        raise LedgerInvalid(f"block {position}: stored text is not valid Unicode") from None
    try:
        raw = loads_unique(body)
    except (ValueError, RecursionError) as exc:  # a key given twice, or not JSON at all
        raise LedgerInvalid(f"block {position}: not a JSON object ({exc})") from None
    return StoredBlock(position, raw, data)


def stored_node(location: str, level: Any, index: Any, digest: Any) -> tuple[int, int, bytes]:
    """A Merkle node row, its types checked: (level, index, 32-byte hash)."""
    if type(level) is not int or type(index) is not int:
        raise LedgerInvalid(f"{location}: a stored Merkle node has a non-integer position")
    if type(digest) is not bytes:
        digest = bytes(digest) if isinstance(digest, bytearray | memoryview) else None
    if digest is None or len(digest) != 32:
        raise LedgerInvalid(
            f"{location}: stored Merkle node ({level}, {index}) is not a 32-byte hash"
        )
    return level, index, digest


def duplicate_version(location: str, name: Any, version: Any) -> Exception:
    """The refusal of a second block with a name and version already stored: the one rule
    every store enforces itself (the ledger checks it first; this holds if it did not)."""
    return LedgerInvalid(
        f"{location}: refusing a second block named {name!r} with version {version}: "
        "each version of a name is registered once"
    )


class StoreSubtrees:
    """`merkle.BatchSubtrees` over a store's nodes: a proof, a root or a tree's peaks costs
    one read. With `cache` (a dict shared across calls: nodes never change once written) a
    node is read once; the cache is emptied when it would grow past `LIMIT` entries."""

    #: about 100 bytes a node
    LIMIT = 200_000

    def __init__(
        self, store: Store, size: int, cache: dict[tuple[int, int], bytes] | None = None
    ) -> None:
        self.store = store
        self.size = size
        self.cache = cache

    def node(self, level: int, index: int) -> bytes:
        return self.nodes([(level, index)])[0]

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        cache = self.cache
        if cache is None:
            return self.store.nodes(ids)
        known = {i: cache.get(i) for i in ids}  # one look each: another thread may clear it
        wanted = [i for i, digest in known.items() if digest is None]
        read = dict(zip(wanted, self.store.nodes(wanted), strict=True)) if wanted else {}
        out = [known[i] or read[i] for i in ids]
        if read:
            if len(cache) + len(read) > self.LIMIT:
                cache.clear()
            cache.update(read)
        return out


@dataclass(frozen=True)
class Tip:
    """What a writer needs to append: the tree's size and right edge, and the newest state."""

    size: int
    last_data: bytes | None
    peaks: tuple[bytes, ...]
    checkpoint: str | None
    origin: str | None


class Writer(ABC):
    """An exclusive write transaction. Nothing is visible to others until it is committed."""

    @abstractmethod
    def tip(self) -> Tip: ...

    @abstractmethod
    def head(self) -> tuple[int, str | None]:
        """The number of blocks and the newest checkpoint: all an appender that wrote the
        last block itself needs to know that nobody else has written since."""

    @abstractmethod
    def latest_version(self, name: str) -> int:
        """Highest version registered under `name`, 0 if none (an index, not yet audited)."""

    def latest_versions(self, names: Sequence[str]) -> dict[str, int]:
        """`latest_version` of each of `names` (a batch's), in one read where the store can."""
        return {name: self.latest_version(name) for name in names}

    def append(
        self,
        block: dict[str, Any],
        data: bytes,
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        """Add one block, its new Merkle and index nodes, and the checkpoint that now covers
        it (a batch of one: `append_many` is the one write path)."""
        self.append_many([(block, data)], nodes, checkpoint, index)

    @abstractmethod
    def set_checkpoint(
        self, checkpoint: str, index: Mapping[tuple[int, int], bytes] | None = None
    ) -> None:
        """Replace the checkpoint (and write `index` nodes) with no new block: `migrate`
        signing the index of an older ledger's blocks."""

    @abstractmethod
    def append_many(
        self,
        items: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        """Add several blocks (in index order), all their new nodes, the index nodes they
        changed (`index`: (depth, prefix) -> record, written over the old ones), and the one
        checkpoint that covers the batch: one transaction and one signature for many appends,
        which is how a busy service keeps up. A block whose (name, version) is stored
        already, or comes twice in `items`, is refused (`duplicate_version`) and nothing is
        written. (A store that derives its index from its blocks ignores `index`.)"""

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The index nodes at `ids` as this transaction sees them (see `Store.index_nodes`)."""
        raise NotImplementedError

    @abstractmethod
    def initialise(self, origin: str, checkpoint: str) -> None:
        """Record the origin and the first (empty-tree) checkpoint of a new ledger."""

    @abstractmethod
    def import_blocks(
        self,
        blocks: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        origin: str,
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        """Fill an empty store in one transaction (used by `modelchain import`)."""


class Store(ABC):
    """One ledger's storage. Open with `modelchain.log.store.open_store(location)`."""

    location: str
    #: whether the store lives in a local file, so the trust state must live elsewhere
    local_path: str | None = None
    #: a server's ledger (`store.http`): read through proofs, written by `submit`
    remote: bool = False
    #: the index nodes are computed from the blocks when read (the JSON store), not kept
    derives_index: bool = False

    @abstractmethod
    def exists(self) -> bool:
        """True once the ledger has been initialised (it has an origin)."""

    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def origin(self) -> str | None: ...

    @abstractmethod
    def checkpoint(self) -> str | None: ...

    @abstractmethod
    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBlock]: ...

    def block_texts(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, Any]] | None:
        """The blocks `blocks` reads, unparsed: (position, stored text) in index order, for an
        audit that parses them in worker processes (each with `stored_text_block`, as
        `blocks` would). None where blocks are not kept as text."""
        return None

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of the complete subtrees at `ids` (level, index), in the same order, in one
        read; a missing node is a damaged ledger (`LedgerUnreadable`). A store that keeps no
        nodes (a server's ledger, read through proofs) refuses."""
        from modelchain.core.errors import LedgerUnreadable

        raise LedgerUnreadable(f"{self.location}: keeps no Merkle nodes to read")

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree over leaves [index << level, (index + 1) << level).
        To be removed: `nodes` reads many at once."""
        return self.nodes([(level, index)])[0]

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The index nodes at `ids` ((depth, prefix), see `core.index.Index`) that exist, in
        one read; an id with no node is an empty subtree, so it is simply left out. What is
        read is checked by proofs against the signed index root, never trusted. A store that
        keeps no index (a server's ledger, read through proofs) refuses."""
        from modelchain.core.errors import LedgerUnreadable

        raise LedgerUnreadable(f"{self.location}: keeps no index nodes to read")

    def all_index_nodes(self) -> Iterator[tuple[tuple[int, int], bytes]]:
        """Every stored index node, in any order (`audit --full` compares them all)."""
        return iter(())

    @abstractmethod
    def all_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored (level, index, hash), in any order (audit checks them all)."""

    @abstractmethod
    def find(self, *, name: str | None = None, digest: str | None = None) -> list[int]:
        """Indices of blocks by name or model digest (a lookup aid; callers verify)."""

    def lookup_columns(self, size: int) -> Iterator[tuple[int, Any, Any, Any]] | None:
        """(index, name, version, model_hash) of blocks [0, size), in index order, as the
        lookup columns beside the stored body hold them (what `find` searches), or None
        when the store keeps none. Audit checks every row against the signed body."""
        return None

    @abstractmethod
    def writer(self) -> AbstractContextManager[Writer]: ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads in this block (of this thread) see one committed state: the checkpoint and
        the index nodes it signs, which appends overwrite, must come from the same one."""
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and locks."""

    def discard_created(self) -> None:  # noqa: B027 - optional hook
        """Remove what opening this store created (a new, still empty ledger file), because
        the ledger it was to hold was refused: a failed command leaves nothing behind."""


class TextStore(Store):
    """A store that keeps each block as its canonical JSON text in a row (SQLite, PostgreSQL):
    `blocks` parses the rows `_texts` reads, which `block_texts` hands out unparsed."""

    @abstractmethod
    def _texts(self, start: int, stop: int | None) -> Iterator[tuple[int, Any]]:
        """(position, stored text) of the blocks in index order, numbered by position so
        that a gap shows as a wrong index."""

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBlock]:
        for position, body in self._texts(start, stop):
            yield stored_text_block(position, body)

    def block_texts(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, Any]] | None:
        return self._texts(start, stop)
