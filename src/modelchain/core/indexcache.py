"""The index's nodes as read from storage that an attacker may write, each one authenticated
against the signed index root before it is used.

An append extends the index: it reads the nodes on a name's path and hashes the new leaf up
with their siblings. If a sibling came straight from the store, whoever can write the store
could slip a node in (say, an older version's leaf for another name) and the next append
would sign it into a new root. So no node is believed until its parent is: the root record
must hash to the signed root, and the two children of a believed node must hash to it. A
subtree below a leaf or an empty one holds nothing, so it is never read. Nodes the index
itself writes are believed (they are computed here). Reads come in batches: a miss below a
node reads its descendants `AHEAD` levels down in one call, since a path goes on down.

`AuthenticatedNodes` is the `nodes` mapping of `core.index.Index`; `fetch(ids)` returns the
stored records present at those ids (a store's `index_nodes`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence

from modelchain.core.errors import LedgerInvalid, WayOut
from modelchain.core.index import EMPTY, node_hash

__all__ = ["AHEAD", "AuthenticatedNodes", "record_hash"]

NodeId = tuple[int, int]
Fetch = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]

#: how many levels below a missed node one read brings in (2 + 4 + 8 + 16 = 30 ids)
AHEAD = 4
_KEY_BITS = 256
_ABSENT = b""


def record_hash(record: bytes | None) -> bytes:
    """The hash a stored record stands for: an empty subtree, a lone key's leaf (its key and
    value hash, hashed as `core.index` hashes leaves) or a node's own hash."""
    if not record:
        return EMPTY
    if len(record) == 64:
        return hashlib.sha256(b"\x00" + record).digest()
    return record


class AuthenticatedNodes(MutableMapping[NodeId, bytes]):
    """The nodes of the index whose root is `root`, read through `fetch` and believed only
    once proven from the root down. `location` names the ledger in errors."""

    def __init__(self, fetch: Fetch, root: bytes, location: str) -> None:
        self._fetch = fetch
        self._root = root
        self._location = location
        #: believed records: proven from the root, or written here (b"" = empty subtree)
        self._known: dict[NodeId, bytes] = {}
        #: records read but not yet proven
        self._raw: dict[NodeId, bytes] = {}

    # -- what Index uses ----------------------------------------------------------------------

    def get(self, key: NodeId, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        record = self._believe(key)
        return default if record == _ABSENT else record

    def __getitem__(self, key: NodeId) -> bytes:
        record = self._believe(key)
        if record == _ABSENT:
            raise KeyError(key)
        return record

    def __setitem__(self, key: NodeId, record: bytes) -> None:
        self._known[key] = record
        self._raw.pop(key, None)

    def update(self, other: Mapping[NodeId, bytes] = (), /, **kwargs: bytes) -> None:  # type: ignore[override]
        for key, record in dict(other).items():
            self[key] = record

    def __delitem__(self, key: NodeId) -> None:
        raise TypeError("index nodes are never deleted")

    def __iter__(self) -> Iterator[NodeId]:
        """The believed nodes only (this is a window on the store, not all of it)."""
        return iter([k for k, r in self._known.items() if r != _ABSENT])

    def __len__(self) -> int:
        return len(self._known)

    # -- keeping the window small -------------------------------------------------------------

    def root(self) -> bytes:
        """The root this window is proven against, as the writes here have moved it."""
        return record_hash(self._believe((0, 0)) or None)

    def trim(self, limit: int) -> None:
        """Forget what was read once more than `limit` nodes are held (between transactions:
        every write here is then committed, and is read again and proven when needed)."""
        if len(self._known) + len(self._raw) > limit:
            self._root = self.root()
            self._known.clear()
            self._raw.clear()

    # -- proving ---------------------------------------------------------------------------

    def _believe(self, key: NodeId) -> bytes:
        found = self._known.get(key)
        if found is not None:
            return found
        depth, prefix = key
        if depth == 0:
            record = self._read([(0, 0)], key)
            if record_hash(record or None) != self._root:
                raise self._refused(0)
            self._known[key] = record
            return record
        parent = self._believe((depth - 1, prefix >> 1))
        if parent == _ABSENT or len(parent) == 64 or depth > _KEY_BITS:
            self._known[key] = _ABSENT  # below an empty subtree or a lone leaf: nothing
            return _ABSENT
        pair = ((depth, prefix & ~1), (depth, prefix | 1))
        # a child written here is believed already (its sibling is checked against it)
        held = [self._known.get(child) for child in pair]
        if any(r is None and c not in self._raw for c, r in zip(pair, held, strict=True)):
            self._read_below((depth - 1, prefix >> 1))
        left, right = (
            r if r is not None else self._raw.pop(c) for c, r in zip(pair, held, strict=True)
        )
        if node_hash(record_hash(left or None), record_hash(right or None)) != parent:
            raise self._refused(depth)
        self._known[pair[0]], self._known[pair[1]] = left, right
        return self._known[key]

    def _read(self, ids: list[NodeId], key: NodeId) -> bytes:
        self._store_read(ids)
        return self._raw.pop(key)

    def _read_below(self, node: NodeId) -> None:
        """Read the descendants of `node` down `AHEAD` levels, in one call."""
        depth, prefix = node
        ids: list[NodeId] = []
        for below in range(1, AHEAD + 1):
            if depth + below > _KEY_BITS:
                break
            first = prefix << below
            ids.extend((depth + below, first + i) for i in range(1 << below))
        self._store_read([i for i in ids if i not in self._known and i not in self._raw])

    def _store_read(self, ids: list[NodeId]) -> None:
        found = self._fetch(ids) if ids else {}
        for i in ids:
            record = found.get(i)
            self._raw[i] = _ABSENT if record is None else record

    def _refused(self, depth: int) -> LedgerInvalid:
        return LedgerInvalid(
            f"{self._location}: the stored index does not match its signed root (at depth "
            f"{depth}): it was changed after it was signed",
            way_out=WayOut(command=("audit", "--full"), cli="; run `modelchain audit --full`"),
        )
