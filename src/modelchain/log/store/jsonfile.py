"""The seed's format as a full backend: a JSON array of blocks in one file.

The file stays exactly what the course demo wrote (an array of block objects, pretty-printed)
so old readers keep working; the signed checkpoint lives beside it in `<file>.checkpoint`.
Every write replaces the file atomically (temporary file, fsync, rename) under an exclusive
lock on `<file>.lock`, so a crash or a concurrent writer never leaves half a ledger.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelchain.core.canonical import DuplicateKey, canonical_json, unique_object
from modelchain.core.errors import InputError, LedgerInvalid, LedgerUnreadable, MissingNode
from modelchain.core.merkle import Frontier, leaf_hash
from modelchain.fs.safeio import atomic_write
from modelchain.log.block import build_index
from modelchain.log.store.base import (
    NO_LEDGER_WAY_OUT,
    Store,
    StoredBlock,
    Tip,
    Writer,
    duplicate_version,
    no_ledger_message,
)
from modelchain.log.store.files import check_ledger_files, key_path, open_lock, read_regular


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class _Snapshot:
    """The parsed file, with the Merkle nodes computed on first use."""

    items: list[Any]
    checkpoint: str | None
    _data: list[bytes] | None = None
    _nodes: dict[tuple[int, int], bytes] | None = field(default=None, repr=False)
    #: the file's text when this process wrote it, so the next append can extend it
    text: str | None = field(default=None, repr=False)
    _versions: set[tuple[str, int]] | None = field(default=None, repr=False)
    _index: dict[tuple[int, int], bytes] | None = field(default=None, repr=False)

    def index(self, location: str) -> dict[tuple[int, int], bytes]:
        """The index of newest versions, rebuilt from the blocks on first use: this format
        keeps only the seed's array, so the index is derived, and proven like any other."""
        if self._index is None:
            pairs = zip(self.items, self.data(location), strict=True)
            self._index = dict(build_index(pairs).nodes)
        return self._index

    def versions(self) -> set[tuple[str, int]]:
        """Every (name, version) held, built once per snapshot (a writer copies it)."""
        if self._versions is None:
            keys = (_version_key(b) for b in self.items)
            self._versions = {key for key in keys if key is not None}
        return self._versions

    def data(self, location: str) -> list[bytes]:
        if self._data is None:
            out = []
            for position, item in enumerate(self.items):
                try:
                    out.append(canonical_json(item))
                except InputError as exc:
                    raise LedgerInvalid(f"{location}: block {position}: {exc}") from exc
            self._data = out
        return self._data

    def nodes(self, location: str) -> dict[tuple[int, int], bytes]:
        if self._nodes is None:
            frontier = Frontier.empty()
            nodes: dict[tuple[int, int], bytes] = {}
            for data in self.data(location):
                for level, index, digest in frontier.append(leaf_hash(data)):
                    nodes[(level, index)] = digest
            self._nodes = nodes
        return self._nodes


def _version_key(block: Any) -> tuple[str, int] | None:
    """A block's (name, version), None when it has none to clash on (a seed block, say, or
    one the ledger's validator will refuse anyway)."""
    if not isinstance(block, dict):
        return None
    name, version = block.get("name"), block.get("version")
    if not isinstance(name, str) or type(version) is not int:
        return None
    return name, version


def _origin_of(note: str | None) -> str | None:
    if not note:
        return None
    first = note.split("\n", 1)[0].strip()
    return first or None


class JSONFileStore(Store):
    """A ledger in the seed's `blockchain_data.json` layout."""

    derives_index = True

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.location = str(path)
        self._path = Path(path)
        self.local_path = key_path(self._path)
        self._sidecar = Path(str(self._path) + ".checkpoint")
        self._lockfile = Path(str(self._path) + ".lock")
        if self._path.is_dir() and not self._path.is_symlink():
            raise LedgerUnreadable(f"{path}: is a directory, not a ledger file")
        check_ledger_files([self._path, self._sidecar, self._lockfile])
        #: the lock file and directories this object may create (see `discard_created`)
        self._made: list[Path] = [] if self._lockfile.exists() else [self._lockfile]
        parent = self._path.parent
        while not parent.exists() and parent != parent.parent:
            self._made.insert(0, parent)
            parent = parent.parent
        if not create and not self._path.exists() and not self._sidecar.exists():
            raise LedgerUnreadable(no_ledger_message(path), way_out=NO_LEDGER_WAY_OUT)
        self._cache: tuple[tuple[int, ...], _Snapshot] | None = None
        self._pinned: _Snapshot | None = None
        self._pinning = False

    # -- reading ----------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, ...]:
        stamp: list[int] = []
        for p in (self._path, self._sidecar):
            try:
                st = p.lstat()
                stamp += [st.st_ino, st.st_size, st.st_mtime_ns]
            except FileNotFoundError:
                stamp += [-1, -1, -1]
        return tuple(stamp)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read in this block from the file as it was read first."""
        if self._pinning:
            yield
            return
        self._pinning = True  # pinned at the first read, as a database's snapshot is
        try:
            yield
        finally:
            self._pinning, self._pinned = False, None

    def _load(self) -> _Snapshot:
        if self._pinned is not None:
            return self._pinned
        if self._pinning:
            self._pinning = False
            try:
                self._pinned = self._load()
            finally:
                self._pinning = True
            return self._pinned
        stamp = self._stamp()
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        # the checkpoint before the blocks: an append writes the blocks first, so blocks
        # read after a checkpoint hold all it signs (at worst an unsigned tail, which the
        # reader waits out); read the other way round, an append between the two reads
        # showed a checkpoint over blocks not yet seen: "blocks were deleted"
        checkpoint = self._read_checkpoint()
        items, text = self._read_items()
        snapshot = _Snapshot(items, checkpoint, text=text)
        self._cache = (stamp, snapshot)
        return snapshot

    def _read_items(self) -> tuple[list[Any], str | None]:
        raw = read_regular(self._path)
        if raw is None:
            return [], None
        if not raw.strip():
            raise LedgerUnreadable(f"{self.location}: the file is empty (expected a JSON array)")
        try:
            items = json.loads(
                raw.decode("utf-8"),
                parse_constant=_reject_constant,
                object_pairs_hook=unique_object,
            )
        except UnicodeDecodeError as exc:
            raise LedgerUnreadable(f"{self.location}: not UTF-8 text") from exc
        except DuplicateKey as exc:
            raise LedgerInvalid(f"{self.location}: {exc} in a block") from exc
        except json.JSONDecodeError as exc:
            raise LedgerUnreadable(
                f"{self.location}: not valid JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}"
            ) from exc
        except (ValueError, RecursionError) as exc:
            raise LedgerUnreadable(f"{self.location}: not valid JSON: {exc}") from exc
        if not isinstance(items, list):
            kind = type(items).__name__.replace("dict", "object").replace("list", "array")
            raise LedgerInvalid(
                f"{self.location}: the top level must be a JSON array of blocks, not {kind}"
            )
        return items, raw.decode("utf-8")

    def _read_checkpoint(self) -> str | None:
        raw = read_regular(self._sidecar)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerUnreadable(f"cannot read {self._sidecar}: {exc}") from exc

    def exists(self) -> bool:
        return self._path.exists() or self._sidecar.exists()

    def size(self) -> int:
        return len(self._load().items)

    def origin(self) -> str | None:
        return _origin_of(self._load().checkpoint)

    def checkpoint(self) -> str | None:
        return self._load().checkpoint

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBlock]:
        snap = self._load()
        data = snap.data(self.location)
        end = len(snap.items) if stop is None else min(stop, len(snap.items))
        for position in range(start, end):
            yield StoredBlock(position, snap.items[position], data[position])

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """From memory: the nodes are computed from the blocks when the file is read."""
        kept = self._load().nodes(self.location)
        out = []
        for level, index in ids:
            digest = kept.get((level, index))
            if digest is None:
                raise MissingNode(f"{self.location}: no Merkle node ({level}, {index})")
            out.append(digest)
        return out

    def all_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        for (level, index), digest in self._load().nodes(self.location).items():
            yield level, index, digest

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        kept = self._load().index(self.location)
        return {i: kept[i] for i in ids if i in kept}

    def all_index_nodes(self) -> Iterator[tuple[tuple[int, int], bytes]]:
        yield from self._load().index(self.location).items()

    def find(self, *, name: str | None = None, digest: str | None = None) -> list[int]:
        out = []
        for position, item in enumerate(self._load().items):
            if not isinstance(item, dict):
                continue
            if name is not None and item.get("name") != name:
                continue
            if digest is not None and item.get("model_hash") != digest:
                continue
            out.append(position)
        return out

    # -- writing ----------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_lock(self._lockfile)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                w = _JSONWriter(self)  # reads the files again unless they are unchanged
                yield w
                w.commit()
                self._made = []  # a ledger lives here now: nothing to discard
            except BaseException:
                self._cache = None
                raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def discard_created(self) -> None:
        """Remove the lock file (and directories) this object made for a ledger that was
        then refused, as long as no ledger was written there meanwhile."""
        made, self._made = self._made, []
        if not made or self._path.exists() or self._sidecar.exists():
            return
        directories = [p for p in made if p != self._lockfile]
        if self._lockfile in made:
            self._lockfile.unlink(missing_ok=True)
        for directory in reversed(directories):
            try:
                directory.rmdir()
            except OSError:
                break

    def _replace(self, path: Path, text: str) -> None:
        """Write `text` to `path` atomically: readers see the old file or the new one."""
        atomic_write(path, text, 0o600)


class _JSONWriter(Writer):
    def __init__(self, store: JSONFileStore) -> None:
        self._store = store
        self._snap = store._load()
        self._items = list(self._snap.items)
        self._checkpoint = self._snap.checkpoint
        self._dirty = False
        #: what append() added, to carry the parsed snapshot over to the next writer
        self._added: list[tuple[bytes, Sequence[tuple[int, int, bytes]]]] | None = []
        #: the (name, version) of every block held, once a write needs them
        self._versions: set[tuple[str, int]] | None = None
        #: the index nodes the ledger's appends changed, carried to the next snapshot
        self._index: dict[tuple[int, int], bytes] = {}

    def tip(self) -> Tip:
        size = len(self._items)
        return Tip(
            size=size,
            last_data=self._snap.data(self._store.location)[-1] if self._items else None,
            peaks=tuple(self._store.nodes(Frontier.peak_positions(size))),
            checkpoint=self._checkpoint,
            origin=_origin_of(self._checkpoint),
        )

    def head(self) -> tuple[int, str | None]:
        return len(self._items), self._checkpoint

    def latest_version(self, name: str) -> int:
        versions = [
            b.get("version", 0)
            for b in self._items
            if isinstance(b, dict) and b.get("name") == name and isinstance(b.get("version"), int)
        ]
        return max(versions, default=0)

    def index_nodes(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        kept = self._snap.index(self._store.location)
        return {i: kept[i] for i in ids if i in kept}

    def append_many(
        self,
        items: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        if not items:
            return
        self._refuse_duplicates(block for block, _ in items)
        for i, (block, data) in enumerate(items):
            self._items.append(block)
            if self._added is not None:
                self._added.append((data, nodes if i == len(items) - 1 else ()))
        self._index.update(index or {})
        self._checkpoint = checkpoint
        self._dirty = True

    def set_checkpoint(
        self, checkpoint: str, index: Mapping[tuple[int, int], bytes] | None = None
    ) -> None:
        """The index is derived from the blocks here: only the checkpoint is written."""
        self._checkpoint = checkpoint
        self._dirty = True

    def _refuse_duplicates(self, new: Iterable[Any]) -> None:
        """(name, version) is unique, as the database stores' indexes make it: checked against
        every block held (read once per writer) and within the new ones, before any is added."""
        if self._versions is None:
            self._versions = set(self._snap.versions())  # a copy: a rollback keeps the snapshot
        added: set[tuple[str, int]] = set()
        for block in new:
            key = _version_key(block)
            if key is not None and (key in self._versions or key in added):
                raise duplicate_version(self._store.location, *key)
            if key is not None:
                added.add(key)
        self._versions |= added

    def initialise(self, origin: str, checkpoint: str) -> None:
        self._checkpoint = checkpoint
        self._dirty = True

    def import_blocks(
        self,
        blocks: Sequence[tuple[dict[str, Any], bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        origin: str,
        checkpoint: str,
        index: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        self._items, self._versions = [], set()
        self._refuse_duplicates(b for b, _ in blocks)
        self._items = [b for b, _ in blocks]
        self._checkpoint = checkpoint
        self._dirty = True
        self._added = None

    def commit(self) -> None:
        """Ledger first, then its checkpoint: a crash in between leaves an unsigned tail
        that `audit` reports, never a checkpoint for blocks that were not written."""
        if not self._dirty:
            return
        store = self._store
        text = self._extended_text()
        if text is None:
            text = json.dumps(self._items, indent=4, ensure_ascii=False) + "\n"
        store._replace(store._path, text)
        if self._checkpoint is not None:
            store._replace(store._sidecar, self._checkpoint)
        store._cache = None
        old = self._snap
        if self._added is not None and old._data is not None and old._nodes is not None:
            # keep the canonical encodings and nodes, so the next append is not O(n) in them
            data = [*old._data, *(d for d, _ in self._added)]
            nodes = dict(old._nodes)
            for _, added in self._added:
                nodes.update(((level, index), h) for level, index, h in added)
            snap = _Snapshot(self._items, self._checkpoint, data, nodes, text, self._versions)
            if old._index is not None and self._index:
                # what the ledger computed over this very snapshot's index (else rebuilt)
                snap._index = {**old._index, **self._index}
            store._cache = (store._stamp(), snap)

    def _extended_text(self) -> str | None:
        """The new file text as our last text plus the new blocks: the same bytes as a full
        `json.dumps(indent=4)`, without re-encoding every block (Python's indenting encoder
        is the slow pure-Python one)."""
        old = self._snap
        if self._added is None or old.text is None or not old.items or not self._added:
            return None
        head = old.text.rstrip()
        if not head.endswith("]"):
            return None
        added = json.dumps(self._items[len(old.items) :], indent=4, ensure_ascii=False)
        return head[:-1].rstrip() + ",\n" + added[2:] + "\n"
