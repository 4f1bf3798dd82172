"""Streaming SHA-256 of model files and directories.

A model is either one file (its digest is the file's SHA-256, the same hex `sha256sum` prints)
or a directory. A directory is described by a *manifest*: one entry per regular file with its
POSIX path relative to the root, its size and its SHA-256, sorted by the UTF-8 bytes of the
path. The directory digest is the hex SHA-256 of the manifest encoded as RFC 8785 canonical
JSON, `[{"path": ..., "sha256": ..., "size": ...}, ...]`, so anyone can recompute it with
`sha256sum` and a JSON canonicalizer.

Safety rules for directories (a model directory is untrusted input, and a digest that silently
covers `/etc/passwd` or blocks forever on a FIFO is worse than an error):

* symbolic links are refused unless `follow_symlinks=True`; followed links must resolve
  inside the root unless `allow_outside=True`; a followed link is recorded under its own path;
* FIFOs, sockets and devices are always refused (and never opened);
* files are opened with O_NOFOLLOW | O_NONBLOCK and checked with fstat to be the very regular
  file that was scanned, closing the window in which one could be swapped for a link or a FIFO;
* names that are not valid UTF-8 are refused: they have no portable manifest form.

Ignore patterns (a gitignore-like subset, matched with `fnmatch.fnmatchcase`):

* a pattern without "/" matches the name of any file or directory at any depth
  (``*.tmp``, ``__pycache__``, ``.git``); a matching directory is pruned;
* a pattern with "/" matches the path relative to the root, one component at a time (``*``
  never crosses "/"; a ``**`` component matches any number of components): ``logs/*.txt``,
  ``**/checkpoints``; a leading "/" only anchors, as in gitignore (``/build``);
* a trailing "/" restricts the pattern to directories (``cache/``);
* negation (``!pattern``) is not supported.

Throughput: files are hashed in parallel by the engine of `modelchain.fs.hashing` (one
preallocated buffer per worker thread, largest files first), the one OMS bundles use too.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from modelchain.core.canonical import canonical_json, is_sha256_hex
from modelchain.core.errors import InputError, ModelUnreadable, UnsafePath, UsageError, WayOut
from modelchain.core.formats import (
    MAX_SAFETENSORS_HEADER,
    FormatError,
    SafetensorsHeader,
    parse_safetensors,
    parse_safetensors_header_bytes,
)
from modelchain.core.validate import MAX_SIZE as _MAX_SIZE  # the one definition of the limit
from modelchain.fs.hashing import BUFFER_SIZE, hash_open_file, run_parallel
from modelchain.fs.progress import NullProgress, ProgressSink, announce
from modelchain.fs.safeio import (
    NotRegularFile,
    kind_name,
    open_regular,
    os_message,
    read_error,
    show_path,
)

__all__ = [
    "BUFFER_SIZE",
    "FileDigest",
    "Manifest",
    "ManifestDiff",
    "ManifestEntry",
    "PathDigest",
    "compare_manifests",
    "default_workers",
    "digest_path",
    "hash_directory",
    "hash_file",
    "hash_safetensors_file",
    "manifest_from_json",
    "manifest_to_json",
    "open_scanned",
    "parse_safetensors_header",
    "safetensors_digests",
    "safetensors_digests_file",
    "scan_directory",
]

StrPath = str | os.PathLike[str]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_OPEN_DIR = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
_SCANDIR_FD = os.scandir in os.supports_fd

#: the ways past a symlink or a path leading out of the model: asking for them
_FOLLOW = WayOut(
    flag=("--follow-symlinks",),
    library=" (pass follow_symlinks=True)",
    cli=" (use --follow-symlinks)",
)
_OUTSIDE = WayOut(
    flag=("--allow-outside",), library=" (pass allow_outside=True)", cli=" (use --allow-outside)"
)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True, slots=True)
class FileDigest:
    """SHA-256 (lowercase hex, as `sha256sum` prints it) and size in bytes of one file."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One regular file of a directory: POSIX path relative to the root, size, SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every file of a directory, sorted by path; `digest` commits to all of them."""

    files: tuple[ManifestEntry, ...]
    digest: str
    size: int

    @classmethod
    def from_entries(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        """Sort `entries` and compute the digest and total size (the one place that does)."""
        files = tuple(sorted(entries, key=_path_key))
        for a, b in itertools.pairwise(files):
            if a.path == b.path:
                raise InputError(f"manifest lists {show_path(a.path)} twice")
        encoded = canonical_json(_entries_json(files))
        return cls(
            files=files,
            digest=hashlib.sha256(encoded).hexdigest(),
            size=sum(e.size for e in files),
        )


@dataclass(frozen=True, slots=True)
class PathDigest:
    """The digest of a model path: a file's SHA-256, or a directory's manifest digest."""

    kind: Literal["file", "directory"]
    sha256: str
    size: int
    manifest: Manifest | None


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """Paths whose content changed, that appeared, or that disappeared (each sorted)."""

    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """True when the two manifests describe the same files."""
        return not (self.changed or self.added or self.removed)


# --------------------------------------------------------------------------- helpers


def default_workers() -> int:
    """Threads used to hash a directory: one per CPU (hashing is CPU-bound once cached)."""
    return min(32, os.cpu_count() or 1)


def _path_key(entry: ManifestEntry) -> bytes:
    return entry.path.encode("utf-8")


def _fspath(path: StrPath | bytes) -> str:
    return os.fsdecode(os.fspath(path))


def _hash_fd(
    fd: int,
    shown: str,
    buf: bytearray,
    advance: Callable[[int], None],
    cancelled: Callable[[], bool] | None = None,
) -> FileDigest:
    """Hash an open regular file through `buf`; refuse a file that changes meanwhile."""
    h = hashlib.sha256()
    size = hash_open_file(fd, h, buf, advance, shown=shown, cancelled=cancelled)
    return FileDigest(sha256=h.hexdigest(), size=size)


def _progress_for(progress: ProgressSink | None, total: int, what: str) -> ProgressSink:
    """The caller's reporter (which it closes), told the total; else one that reports nothing:
    the library never draws a bar itself."""
    sink = progress if progress is not None else NullProgress()
    announce(sink, total, f"hashing {what}")
    return sink


# --------------------------------------------------------------------------- files


def hash_file(path: StrPath, *, progress: ProgressSink | None = None) -> FileDigest:
    """SHA-256 and size of one regular file, streamed through a fixed buffer.

    A symbolic link is followed (the user named it). Anything that is not a regular file, and
    any path that cannot be read, raises InputError naming the path; a FIFO is refused before
    it is opened, so this never blocks.
    """
    p = _fspath(path)
    shown = show_path(p)
    try:
        st = os.stat(p)
    except OSError as e:
        raise read_error(p, e) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"cannot hash {shown}: it is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"cannot hash {shown}: {kind_name(st.st_mode)}, not a regular file")
    try:
        fd, opened = open_regular(p)
    except NotRegularFile as e:
        raise InputError(f"cannot hash {shown}: {kind_name(e.mode)}") from None
    except OSError as e:
        raise read_error(p, e) from None
    try:
        bar = _progress_for(progress, opened.st_size, show_path(os.path.basename(p) or p))
        return _hash_fd(fd, shown, bytearray(BUFFER_SIZE), bar.advance)
    except OSError as e:
        raise read_error(p, e) from None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- ignore rules


@dataclass(frozen=True, slots=True)
class _Rule:
    parts: tuple[str, ...]  # path pattern components; a single one for a basename pattern
    anywhere: bool  # basename pattern: matches the last component at any depth
    dir_only: bool


def _compile_ignore(patterns: Iterable[str]) -> tuple[_Rule, ...]:
    if isinstance(patterns, str):  # a lone string would otherwise be split into characters
        patterns = (patterns,)
    rules = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("/ "):
            raise UsageError(f"invalid ignore pattern: {pattern!r}")
        if pattern.startswith("!"):
            raise UsageError(f"negated ignore patterns are not supported: {pattern!r}")
        dir_only = pattern.endswith("/")
        body = pattern.rstrip("/")
        if "/" in body:
            parts = tuple(part for part in body.split("/") if part)
            rules.append(_Rule(parts=parts, anywhere=False, dir_only=dir_only))
        else:
            rules.append(_Rule(parts=(body,), anywhere=True, dir_only=dir_only))
    return tuple(rules)


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_parts(pattern[1:], parts[1:])


def _ignored(rules: tuple[_Rule, ...], parts: tuple[str, ...], is_dir: bool) -> bool:
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.anywhere:
            if fnmatchcase(parts[-1], rule.parts[0]):
                return True
        elif _match_parts(rule.parts, parts):
            return True
    return False


# --------------------------------------------------------------------------- directories


@dataclass(frozen=True, slots=True)
class _Planned:
    """A regular file found by the scan, and how to reopen exactly that file."""

    rel: str
    open_path: str
    follow: bool  # reached through a symlink: open following it
    size: int
    ident: tuple[int, int]  # (st_dev, st_ino) seen by the scan
    shown: str


@dataclass(frozen=True, slots=True)
class _Dir:
    path: str  # path to open (through links when they are followed)
    parts: tuple[str, ...]  # relative path components from the root
    ident: tuple[int, int]
    ancestors: frozenset[tuple[int, int]]  # for symlink-loop detection
    via_link: bool


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Walker:
    """Walks a model directory and applies the safety and ignore rules, opening nothing but
    directories (checked to be the ones listed) so that special files are never touched."""

    def __init__(
        self,
        root: str,
        rules: tuple[_Rule, ...],
        follow_symlinks: bool,
        allow_outside: bool,
    ) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.rules = rules
        self.follow = follow_symlinks
        self.allow_outside = allow_outside
        self.files: list[_Planned] = []

    def shown(self, parts: tuple[str, ...]) -> str:
        return show_path(os.path.join(self.root, *parts))

    def run(self, root_stat: os.stat_result) -> list[_Planned]:
        ident = (root_stat.st_dev, root_stat.st_ino)
        stack = [_Dir(self.root, (), ident, frozenset({ident}), via_link=True)]
        while stack:
            stack.extend(reversed(self.scan_dir(stack.pop())))
        return self.files

    def scan_dir(self, d: _Dir) -> list[_Dir]:
        shown = self.shown(d.parts)
        try:
            fd = os.open(d.path, _OPEN_DIR | (0 if d.via_link else _O_NOFOLLOW))
        except OSError as e:
            if not d.via_link and os.path.islink(d.path):
                raise UnsafePath(f"{shown} was replaced by a symbolic link while hashing") from None
            raise read_error(d.path, e) from None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != d.ident:
                raise UnsafePath(f"{shown} changed while it was being scanned")
            subdirs: list[_Dir] = []
            try:
                with os.scandir(fd if _SCANDIR_FD else d.path) as it:
                    entries = sorted(it, key=lambda e: e.name)
                for entry in entries:
                    self.scan_entry(d, entry, fd if _SCANDIR_FD else None, subdirs)
            except OSError as e:
                raise read_error(d.path, e) from None
            return subdirs
        finally:
            os.close(fd)

    def scan_entry(
        self, d: _Dir, entry: os.DirEntry[str], dir_fd: int | None, subdirs: list[_Dir]
    ) -> None:
        name = entry.name
        parts = (*d.parts, name)
        path = os.path.join(d.path, name)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return  # removed since the directory was listed: not part of the tree
        except OSError as e:
            raise read_error(path, e) from None
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            self.scan_link(d, parts, path, name, dir_fd, subdirs)
            return
        if _ignored(self.rules, parts, stat.S_ISDIR(mode)):
            return
        self.check_name(parts)
        ident = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(mode):
            if ident in d.ancestors:  # a bind mount of an ancestor
                raise UnsafePath(f"{self.shown(parts)}: directory contains itself")
            subdirs.append(_Dir(path, parts, ident, d.ancestors | {ident}, via_link=False))
        elif stat.S_ISREG(mode):
            self.plan(parts, path, False, st)
        else:
            raise UnsafePath(
                f"{self.shown(parts)}: {kind_name(mode)}; special files are not hashed"
            )

    def scan_link(
        self,
        d: _Dir,
        parts: tuple[str, ...],
        path: str,
        name: str,
        dir_fd: int | None,
        subdirs: list[_Dir],
    ) -> None:
        shown = self.shown(parts)
        try:
            target = os.readlink(name, dir_fd=dir_fd) if dir_fd is not None else os.readlink(path)
        except OSError as e:
            raise read_error(path, e) from None
        arrow = f"{shown} -> {show_path(target)}"
        if not self.follow:
            if _ignored(self.rules, parts, False) or _ignored(self.rules, parts, True):
                return  # ignored whatever it points at: nothing is opened or recorded
            raise UnsafePath(f"{arrow}: symbolic links are not hashed", way_out=_FOLLOW)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if _ignored(self.rules, parts, False):
                return
            raise InputError(f"{arrow}: broken symbolic link") from None
        except OSError as e:
            if _ignored(self.rules, parts, False):
                return
            raise InputError(f"{arrow}: cannot follow: {os_message(e)}") from None
        mode = st.st_mode
        if _ignored(self.rules, parts, stat.S_ISDIR(mode)):
            return
        self.check_name(parts)
        if not self.allow_outside and not _within(os.path.realpath(path), self.root_real):
            raise UnsafePath(f"{arrow}: points outside the model directory", way_out=_OUTSIDE)
        ident = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(mode):
            if ident in d.ancestors:
                raise UnsafePath(f"{arrow}: symbolic link loop")
            subdirs.append(_Dir(path, parts, ident, d.ancestors | {ident}, via_link=True))
        elif stat.S_ISREG(mode):
            self.plan(parts, path, True, st)
        else:
            raise UnsafePath(f"{arrow}: {kind_name(mode)}; special files are not hashed")

    def check_name(self, parts: tuple[str, ...]) -> None:
        try:
            parts[-1].encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{self.shown(parts)}: file name is not valid UTF-8") from None

    def plan(self, parts: tuple[str, ...], path: str, follow: bool, st: os.stat_result) -> None:
        self.files.append(
            _Planned(
                rel="/".join(parts),
                open_path=path,
                follow=follow,
                size=st.st_size,
                ident=(st.st_dev, st.st_ino),
                shown=self.shown(parts),
            )
        )


def _hash_planned(
    item: _Planned,
    buf: bytearray,
    advance: Callable[[int], None],
    cancelled: Callable[[], bool] | None,
) -> ManifestEntry:
    """Open the scanned file again and hash it, provided it is still the same regular file."""
    fd = open_scanned(item)
    try:
        digest = _hash_fd(fd, item.shown, buf, advance, cancelled)
    except OSError as e:
        raise read_error(item.open_path, e) from None
    finally:
        os.close(fd)
    return ManifestEntry(path=item.rel, size=digest.size, sha256=digest.sha256)


def _hash_all(
    plan: list[_Planned], workers: int, advance: Callable[[int], None]
) -> list[ManifestEntry]:
    """Hash every planned file, `workers` at a time, each worker with its own buffer."""
    plan = sorted(plan, key=lambda p: p.rel)  # equal sizes go in path order

    def work(item: _Planned, buf: bytearray, cancelled: Callable[[], bool] | None) -> Any:
        return _hash_planned(item, buf, advance, cancelled)

    return run_parallel(plan, work, workers=workers, buffer=BUFFER_SIZE, weight=lambda p: p.size)


def hash_directory(
    path: StrPath,
    *,
    ignore: Iterable[str] = (),
    follow_symlinks: bool = False,
    allow_outside: bool = False,
    workers: int | None = None,
    progress: ProgressSink | None = None,
) -> Manifest:
    """Manifest and digest of every regular file under `path` (see the module docstring).

    The root itself may be a symbolic link (the user named it). Raises InputError for a
    missing or unreadable path, UnsafePath for links and special files the rules refuse.
    """
    root = _fspath(path)
    rules = _compile_ignore(ignore)
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, not {workers!r}")
    try:
        root_stat = os.stat(root)
    except OSError as e:
        raise read_error(root, e) from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise InputError(f"not a directory: {show_path(root)}")
    plan = _Walker(root, rules, follow_symlinks, allow_outside).run(root_stat)
    total = sum(item.size for item in plan)
    bar = _progress_for(progress, total, show_path(root.rstrip("/") + "/"))
    entries = _hash_all(plan, workers, bar.advance)
    return Manifest.from_entries(entries)


# --------------------------------------------------------------------------- other hashers

#: A regular file found by `scan_directory`: `.rel` (POSIX path from the root), `.size`,
#: `.shown` (for messages); reopen it only with `open_scanned`.
ScannedFile = _Planned


def scan_directory(
    path: StrPath,
    *,
    ignore: Iterable[str] = (),
    follow_symlinks: bool = False,
    allow_outside: bool = False,
) -> list[ScannedFile]:
    """The regular files of a directory under the same safety and ignore rules as
    `hash_directory`, without hashing them: for hashers of other shapes (shards, BLAKE2/3)."""
    root = _fspath(path)
    rules = _compile_ignore(ignore)
    try:
        root_stat = os.stat(root)
    except OSError as e:
        raise read_error(root, e) from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise InputError(f"not a directory: {show_path(root)}")
    return _Walker(root, rules, follow_symlinks, allow_outside).run(root_stat)


def open_scanned(item: ScannedFile) -> int:
    """A read-only descriptor of a scanned file, refusing a file swapped since the scan (for a
    link or another file): the caller closes it."""
    try:
        fd, st = open_regular(item.open_path, follow=item.follow)
    except NotRegularFile:
        raise UnsafePath(f"{item.shown} was replaced while hashing") from None
    except OSError as e:
        if not item.follow and os.path.islink(item.open_path):
            raise UnsafePath(
                f"{item.shown} was replaced by a symbolic link while hashing"
            ) from None
        raise read_error(item.open_path, e) from None
    if (st.st_dev, st.st_ino) != item.ident:
        os.close(fd)
        raise UnsafePath(f"{item.shown} was replaced while hashing")
    return fd


def digest_path(
    path: StrPath,
    *,
    ignore: Iterable[str] = (),
    follow_symlinks: bool = False,
    allow_outside: bool = False,
    workers: int | None = None,
    progress: ProgressSink | None = None,
) -> PathDigest:
    """Digest of a model given as a file or a directory (options apply to directories)."""
    p = _fspath(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise read_error(p, e) from None
    if stat.S_ISDIR(st.st_mode):
        manifest = hash_directory(
            p,
            ignore=ignore,
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
            workers=workers,
            progress=progress,
        )
        return PathDigest("directory", manifest.digest, manifest.size, manifest)
    file_digest = hash_file(p, progress=progress)
    return PathDigest("file", file_digest.sha256, file_digest.size, None)


def digest_from_known(
    path: StrPath,
    known: Mapping[str, tuple[int, str]],
    *,
    ignore: Iterable[str] = (),
    follow_symlinks: bool = False,
    allow_outside: bool = False,
) -> PathDigest | None:
    """The digest `digest_path` would compute, from SHA-256s another pass already read
    (`known`: relative path, or "." for a file, -> (size, sha256)); None when the files this
    walk finds are not exactly those, so the caller hashes instead. Saves hashing a model
    twice when one command checks it two ways (a signature bundle and the ledger)."""
    p = _fspath(path)
    if not os.path.isdir(p):
        entry = known.get(".")
        return None if entry is None else PathDigest("file", entry[1], entry[0], None)
    found = scan_directory(
        p, ignore=ignore, follow_symlinks=follow_symlinks, allow_outside=allow_outside
    )
    entries = []
    for item in found:
        entry = known.get(item.rel)
        if entry is None or entry[0] != item.size:
            return None
        entries.append(ManifestEntry(item.rel, entry[0], entry[1]))
    if len(entries) != len(known):
        return None
    manifest = Manifest.from_entries(entries)
    return PathDigest("directory", manifest.digest, manifest.size, manifest)


# --------------------------------------------------------------------------- manifests


def _entries_json(files: Iterable[ManifestEntry]) -> list[dict[str, Any]]:
    """The JSON form of manifest entries (what the directory digest is computed over)."""
    return [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in files]


def manifest_to_json(m: Manifest) -> list[dict[str, Any]]:
    """JSON-ready list of `{"path", "sha256", "size"}` objects, sorted by path."""
    return _entries_json(m.files)


def _check_rel_path(path: str, where: str) -> None:
    if not path:
        raise InputError(f"{where}: path is empty")
    if path.startswith("/"):
        raise InputError(f"{where}: path {show_path(path)} is absolute")
    if "\x00" in path:
        raise InputError(f"{where}: path contains a NUL character")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InputError(f"{where}: path {show_path(path)} is not a normalized relative path")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where}: path is not valid Unicode") from None


def manifest_from_json(data: Any) -> Manifest:
    """Rebuild a Manifest from `manifest_to_json` output, validating every field.

    Raises InputError for anything malformed: not a list, entries that are not objects with
    exactly `path` (normalized relative POSIX path), `sha256` (64 lowercase hex) and `size`
    (non-negative integer), or duplicate paths. The digest is recomputed, never trusted.
    """
    if not isinstance(data, list):
        raise InputError(f"manifest must be a JSON array, not {type(data).__name__}")
    entries = []
    for i, item in enumerate(data):
        where = f"manifest entry {i}"
        if not isinstance(item, Mapping):
            raise InputError(f"{where} must be an object, not {type(item).__name__}")
        keys = set(item)
        if keys != {"path", "sha256", "size"}:
            missing = sorted({"path", "sha256", "size"} - keys)
            extra = sorted(str(k) for k in keys - {"path", "sha256", "size"})
            detail = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(extra)}"
            raise InputError(f"{where}: {detail}")
        path, digest, size = item["path"], item["sha256"], item["size"]
        if not isinstance(path, str):
            raise InputError(f"{where}: path must be a string")
        _check_rel_path(path, where)
        if not is_sha256_hex(digest):
            raise InputError(f"{where}: sha256 must be 64 lowercase hexadecimal digits")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
            raise InputError(f"{where}: size must be a non-negative integer")
        entries.append(ManifestEntry(path=path, size=size, sha256=digest))
    return Manifest.from_entries(entries)


def compare_manifests(expected: Manifest, actual: Manifest) -> ManifestDiff:
    """Which paths changed content (or size), were added, or were removed."""
    old = {e.path: e for e in expected.files}
    new = {e.path: e for e in actual.files}

    def ordered(paths: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(paths, key=lambda p: p.encode("utf-8", "surrogateescape")))

    return ManifestDiff(
        changed=ordered(
            p
            for p in old.keys() & new.keys()
            if (old[p].sha256, old[p].size) != (new[p].sha256, new[p].size)
        ),
        added=ordered(new.keys() - old.keys()),
        removed=ordered(old.keys() - new.keys()),
    )


# -- safetensors per tensor ------------------------------------------------------------


def parse_safetensors_header(data: bytes, file_size: int | None = None) -> SafetensorsHeader:
    """Parse and check a safetensors file's header strictly (`modelchain.core.formats`, the parser
    `scan` uses too): `data` is the whole file, or only its beginning when `file_size` says how
    large the file is. Raises `ModelUnreadable` naming the first problem."""
    try:
        if file_size is None:
            return parse_safetensors(data)
        return parse_safetensors_header_bytes(data, file_size)
    except FormatError as e:
        raise ModelUnreadable(str(e)) from None


def safetensors_digests(data: bytes) -> dict[str, str]:
    """SHA-256 (hex) of each tensor's bytes, and of the header under ``"__header__"``."""
    parsed = parse_safetensors_header(data)
    view = memoryview(data)
    out = {"__header__": hashlib.sha256(parsed.header).hexdigest()}
    for name, (begin, end) in sorted(parsed.tensors.items()):
        out[name] = hashlib.sha256(view[begin:end]).hexdigest()
    return out


def _read_exact(f: io.FileIO, n: int) -> bytes:
    """`n` bytes, or fewer only at the end of the file."""
    parts = []
    while n > 0:
        chunk = f.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def hash_safetensors_file(
    path: StrPath, *, progress: ProgressSink | None = None
) -> tuple[FileDigest, dict[str, str]]:
    """The file's SHA-256 and `safetensors_digests` of a `.safetensors` file, in one pass
    that holds the header and one buffer in memory, never the tensors: the header is read
    (bounded by `MAX_SAFETENSORS_HEADER`) and checked by the same strict parser, then the
    tensors are streamed in file order, each byte feeding its tensor's digest and the
    file's. Both describe the same bytes: a file that changes meanwhile is refused.

    Raises ModelUnreadable for a malformed file, InputError (UsageError for a directory)
    for one that cannot be read, as `safeio.read_once` does."""
    p = _fspath(path)
    shown = show_path(p)
    try:
        fd, before = open_regular(p)
    except NotRegularFile as e:
        if e.is_dir:
            raise UsageError(f"{shown} is a directory: this reads model files only") from None
        raise InputError(f"{shown}: {kind_name(e.mode)}, not a model file") from None
    except OSError as e:
        raise read_error(p, e) from None
    size = before.st_size
    advance = _progress_for(progress, size, shown).advance
    try:
        with io.FileIO(fd, "rb", closefd=False) as f:
            head = _read_exact(f, 8)
            if len(head) == 8:
                announced = int.from_bytes(head, "little")
                head += _read_exact(f, min(announced, MAX_SAFETENSORS_HEADER, size - 8))
            parsed = parse_safetensors_header(head, size)
            whole = hashlib.sha256(head)
            advance(len(head))
            out = {"__header__": hashlib.sha256(parsed.header).hexdigest()}
            buf = bytearray(BUFFER_SIZE)
            view = memoryview(buf)
            digests: dict[str, str] = {}
            for name, (begin, end) in sorted(parsed.tensors.items(), key=lambda kv: kv[1]):
                h = hashlib.sha256()
                remaining = end - begin
                while remaining > 0:
                    n = f.readinto(view[: min(remaining, BUFFER_SIZE)])
                    if not n:
                        raise InputError(f"{shown} changed while it was being hashed")
                    chunk = view[:n]
                    h.update(chunk)
                    whole.update(chunk)
                    remaining -= n
                    advance(n)
                digests[name] = h.hexdigest()
            if f.read(1):
                raise InputError(f"{shown} changed while it was being hashed")
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise InputError(f"{shown} changed while it was being hashed")
    except OSError as e:
        raise read_error(p, e) from None
    finally:
        os.close(fd)
    out.update(sorted(digests.items()))
    return FileDigest(sha256=whole.hexdigest(), size=size), out


def safetensors_digests_file(path: StrPath) -> dict[str, str]:
    """`safetensors_digests` of the file at `path`, streamed (see `hash_safetensors_file`)."""
    return hash_safetensors_file(path)[1]
