"""The service's read caches, shared by the ledgers of its reader threads: the Merkle
nodes proofs read (a stored node never changes once written) and the answers of `lookup`
under one signed checkpoint (which cannot change until the next append). A `LocalLedger`
is given them when it is opened (`node_cache=`, `lookup_cache=`)."""

from __future__ import annotations

from typing import Any

from modelchain.core.note import Checkpoint
from modelchain.ledgers.local import NameState

__all__ = ["LookupCache", "NodeCache"]


class NodeCache(dict[tuple[int, int], bytes]):
    """Merkle nodes by (level, index), emptied when it grows past `LIMIT` (a `NodeMemo`)."""

    #: about 100 bytes each
    LIMIT = 200_000

    def put(self, key: tuple[int, int], digest: bytes) -> None:
        if len(self) >= self.LIMIT:
            self.clear()
        self[key] = digest


class LookupCache:
    """What `LocalLedger.lookup` read under one signed checkpoint: the newest version of
    each name asked about, its proof, older matches (a `LookupMemo`).

    Keyed by the checkpoint note, so an append by any process (a new note) empties it; a
    service checks the current note (one cheap read) before it trusts an answer from here.
    One object may be shared by the ledgers of a process's threads (dict operations are
    atomic; a reset replaces the table whole)."""

    #: emptied when it holds this many names and digests (a few KB each)
    LIMIT = 100_000

    def __init__(self) -> None:
        self._state: tuple[str, Checkpoint, dict[Any, NameState]] | None = None

    def checkpoint(self, note: str, checkpoint: Checkpoint | None = None) -> Checkpoint | None:
        """The checkpoint of `note` if the cache is for it; given one, start a new cache
        for it (when the note differs from the cached one)."""
        state = self._state
        if state is not None and state[0] == note:
            return state[1]
        if checkpoint is not None:
            self._state = (note, checkpoint, {})
        return checkpoint

    def _table(self, note: str) -> dict[Any, NameState] | None:
        state = self._state
        return state[2] if state is not None and state[0] == note else None

    def get(self, note: str, key: tuple[str, ...]) -> NameState | None:
        table = self._table(note)
        return None if table is None else table.get(key)

    def put(self, note: str, key: tuple[str, ...], state: NameState) -> None:
        table = self._table(note)
        if table is None:
            return  # a newer checkpoint took over meanwhile
        if len(table) >= self.LIMIT:
            table.clear()
        table[key] = state
