"""The index's nodes as read from storage that an attacker may write, each one proven from
the signed index root before it is used.

An append extends the index: it reads the nodes on a name's path and hashes the new leaf up
with their siblings. If a sibling came straight from the store, whoever can write the store
could slip a node in (say, an older version's leaf for another name) and the next append
would sign it into a new root. So no node is believed until its parent is: the root record
must hash to the signed root, and the two children of a believed node must hash to it. A
subtree below a leaf or an empty one holds nothing, so whatever the store says lies there
is ignored. Nodes the index itself writes are believed (they are computed here).

`authenticated_index(fetch, root, location)` is a `core.index.Index` whose `fetch` does this:
the index asks for a whole path at once (`index.FETCH_LEVELS` levels), so a path costs one
read and its proof about one hash per level, on top of what the index does anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from modelchain.core.errors import LedgerInvalid, WayOut
from modelchain.core.index import EMPTY, Fetch, Index, NodeId, node_hash

__all__ = ["authenticated_index", "record_hash"]


def record_hash(record: bytes | None) -> bytes:
    """The hash a stored record stands for: an empty subtree, a lone key's leaf (its key and
    value hash, hashed as `core.index` hashes leaves) or a node's own hash."""
    if not record:
        return EMPTY
    if len(record) == 64:
        return hashlib.sha256(b"\x00" + record).digest()
    return record


def authenticated_index(fetch: Fetch, root: bytes, location: str) -> Index:
    """An `Index` over the store behind `fetch` (its `index_nodes`) whose every node read is
    proven from `root` (the signed index root) first; `location` names the ledger in the
    refusal (`LedgerInvalid`, exit 1)."""
    return _Prover(fetch, root, location).index


class _Prover:
    """The `fetch` of one `Index`: reads, then believes top down, what the index asks for."""

    def __init__(self, fetch: Fetch, root: bytes, location: str) -> None:
        self._fetch = fetch
        self._root = root
        self._location = location
        self.index = Index(fetch=self._load)

    def _held(self, node: NodeId) -> tuple[bool, bytes | None]:
        """(known, record) of a node the index already believes (or wrote)."""
        record = self.index.nodes.get(node)
        if record is not None:
            return True, record
        return self.index.known(node), None

    def _load(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        wanted = sorted(set(ids))  # by depth: a parent before its children
        need = set(wanted)
        for depth, prefix in wanted:  # each node is proven with its sibling
            sibling = (depth, prefix ^ 1)
            if depth and sibling not in need and not self._held(sibling)[0]:
                need.add(sibling)
        order = sorted(need)
        found = self._fetch(order)
        believed: dict[NodeId, bytes | None] = {}

        def record(node: NodeId) -> tuple[bool, bytes | None]:
            if node in believed:
                return True, believed[node]
            if node in need:
                return False, None
            return self._held(node)

        for node in order:
            if node in believed:
                continue  # proven with its sibling
            depth, prefix = node
            if depth == 0:
                raw = found.get(node)
                if record_hash(raw) != self._root:
                    raise self._refused(0)
                believed[node] = raw
                continue
            known, parent = record((depth - 1, prefix >> 1))
            if not known:
                raise self._refused(depth)  # read from below: the index walks top down
            if parent is None or len(parent) == 64:
                believed[node] = None  # below an empty subtree or a lone leaf: nothing
                continue
            pair = ((depth, prefix & ~1), (depth, prefix | 1))
            left, right = (
                found.get(child) if child in need else self._held(child)[1] for child in pair
            )
            if node_hash(record_hash(left), record_hash(right)) != parent:
                raise self._refused(depth)
            for child, raw in zip(pair, (left, right), strict=True):
                if child in need:
                    believed[child] = raw
        return {node: raw for node, raw in believed.items() if raw is not None}

    def _refused(self, depth: int) -> LedgerInvalid:
        return LedgerInvalid(
            f"{self._location}: the stored index does not match its signed root (at depth "
            f"{depth}): it was changed after it was signed",
            way_out=WayOut(command=("audit", "--full"), cli="; run `modelchain audit --full`"),
        )
