"""Tests for modelchain.fs.digest (plus the small canonical and progress modules it uses)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelchain.cli.progress import Progress
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import InputError, UnsafePath, UsageError, command_line_text
from modelchain.fs import digest
from modelchain.fs.digest import (
    FileDigest,
    Manifest,
    ManifestEntry,
    compare_manifests,
    digest_path,
    hash_directory,
    hash_file,
    manifest_from_json,
    manifest_to_json,
)
from modelchain.fs.progress import NullProgress

SRC = str(Path(__file__).resolve().parents[3] / "src")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sha256sum(*paths: Path) -> dict[str, str]:
    """Hex digests from the real `sha256sum` (the reference the digests must match)."""
    out = subprocess.run(
        ["sha256sum", "--", *map(str, paths)], check=True, capture_output=True, text=True
    ).stdout
    result = {}
    for line in out.splitlines():
        hexdigest, name = line.split(maxsplit=1)
        result[name.lstrip("*")] = hexdigest
    return result


def reference_digest(root: Path) -> str:
    """Directory digest recomputed independently: sha256sum + json.dumps (equal to JCS here)."""
    found = [
        Path(top) / name
        for top, _dirs, names in os.walk(root, followlinks=True)
        for name in names
        if os.path.isfile(os.path.join(top, name))
    ]
    files = sorted(found, key=lambda p: p.relative_to(root).as_posix().encode("utf-8"))
    sums = sha256sum(*files) if files else {}
    entries = [
        {
            "path": p.relative_to(root).as_posix(),
            "sha256": sums[str(p)],
            "size": p.stat().st_size,
        }
        for p in files
    ]
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging forever (the FIFO tests must never block)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    write(root / "config.json", '{"layers": 3}')
    write(root / "weights" / "layer0.bin", os.urandom(70_000))
    write(root / "weights" / "layer1.bin", os.urandom(1_500_000))
    write(root / "tokenizer" / "vocab.txt", "a\nb\nc\n")
    write(root / "empty.bin", b"")
    return root


# --------------------------------------------------------------------------- hash_file


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 100_000, 3 * 1024 * 1024 + 17])
def test_hash_file_matches_sha256sum(tmp_path: Path, size: int) -> None:
    path = write(tmp_path / "f.bin", os.urandom(size))
    result = hash_file(path)
    assert result == FileDigest(sha256=sha256sum(path)[str(path)], size=size)


def test_hash_file_empty_is_sha256_of_nothing(tmp_path: Path) -> None:
    assert hash_file(write(tmp_path / "e", b"")).sha256 == EMPTY_SHA256


def test_hash_file_buffer_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest, "BUFFER_SIZE", 4096)
    for size in (4095, 4096, 4097, 8192, 10_000):
        path = write(tmp_path / f"f{size}", os.urandom(size))
        assert hash_file(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_hash_file_accepts_str_and_follows_named_symlink(tmp_path: Path) -> None:
    target = write(tmp_path / "real.bin", b"payload")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    expected = hashlib.sha256(b"payload").hexdigest()
    assert hash_file(str(link)) == FileDigest(expected, 7)


def test_hash_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file or directory: .*nope\.bin$"):
        hash_file(tmp_path / "nope.bin")


def test_hash_file_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory") as info:
        hash_file(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_hash_file_fifo_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(InputError, match="FIFO"):
        hash_file(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_hash_file_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path / "model.bin", b"secret")
    path.chmod(0)
    try:
        with pytest.raises(InputError, match=r"cannot read .*model\.bin: permission denied"):
            hash_file(path)
    finally:
        path.chmod(0o600)


def test_permission_errors_become_input_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check as above, runnable as root: os.open fails as it would without access."""
    path = write(tmp_path / "model.bin", b"secret")
    write(tmp_path / "dir" / "model.bin", b"secret")
    real_open = os.open

    def deny(p: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(p).endswith("model.bin"):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(InputError, match=r"cannot read .*model\.bin: permission denied"):
        hash_file(path)
    with pytest.raises(InputError, match=r"cannot read .*dir/model\.bin: permission denied"):
        hash_directory(tmp_path / "dir")


def test_hash_file_constant_memory(tmp_path: Path) -> None:
    """A 200 MiB (sparse) file is hashed with a small, fixed amount of memory."""
    path = tmp_path / "sparse.bin"
    size = 200 * 1024 * 1024
    with open(path, "wb") as f:
        f.truncate(size)
    script = f"""
import resource, sys
sys.path.insert(0, {SRC!r})
from modelchain.fs.digest import hash_file
from modelchain.fs.progress import NullProgress
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = hash_file({str(path)!r}, progress=NullProgress())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.size, result.sha256, (after - before) * 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    got_size, got_hex, growth = out.stdout.split()
    assert int(got_size) == size
    assert got_hex == sha256sum(path)[str(path)]
    assert int(growth) < 64 * 1024 * 1024, f"peak RSS grew by {int(growth) >> 20} MiB"


# --------------------------------------------------------------------------- directories


def test_manifest_lists_files_sorted_with_sizes(model: Path) -> None:
    m = hash_directory(model)
    assert [e.path for e in m.files] == [
        "config.json",
        "empty.bin",
        "tokenizer/vocab.txt",
        "weights/layer0.bin",
        "weights/layer1.bin",
    ]
    sums = sha256sum(*(model / e.path for e in m.files))
    for entry in m.files:
        assert entry.size == (model / entry.path).stat().st_size
        assert entry.sha256 == sums[str(model / entry.path)]
    assert m.size == sum(e.size for e in m.files)
    assert m.digest == reference_digest(model)


def test_directory_digest_is_hash_of_canonical_manifest(model: Path) -> None:
    m = hash_directory(model)
    assert m.digest == hashlib.sha256(canonical_json(manifest_to_json(m))).hexdigest()


def test_sort_order_is_utf8_bytes(tmp_path: Path) -> None:
    names = ["b", "B", "a-b", "a/b", "a.b", "é", "z", "日本", "\U0001f600", "\uff5e"]
    for name in names:
        write(tmp_path / name, name)
    paths = [e.path for e in hash_directory(tmp_path).files]
    assert paths == sorted(paths, key=lambda p: p.encode("utf-8"))
    assert len(paths) == len(names)
    assert hash_directory(tmp_path).digest == reference_digest(tmp_path)


def test_digest_independent_of_creation_order_and_workers(tmp_path: Path) -> None:
    files = {f"d{i % 3}/f{i}.bin": os.urandom(i * 997) for i in range(12)}
    one, two = tmp_path / "one", tmp_path / "two"
    for name, data in files.items():
        write(one / name, data)
    for name, data in reversed(list(files.items())):
        write(two / name, data)
    results = {hash_directory(root, workers=w) for root in (one, two) for w in (1, 2, 4, 16)}
    assert len(results) == 1


@pytest.mark.parametrize("change", ["edit", "rename", "add", "remove", "add_empty", "move"])
def test_digest_changes(model: Path, change: str) -> None:
    before = hash_directory(model)
    if change == "edit":
        write(model / "config.json", '{"layers": 4}')
    elif change == "rename":
        (model / "config.json").rename(model / "config2.json")
    elif change == "add":
        write(model / "extra.txt", "x")
    elif change == "remove":
        (model / "tokenizer" / "vocab.txt").unlink()
    elif change == "add_empty":
        write(model / "new" / "empty", b"")
    elif change == "move":
        (model / "config.json").rename(model / "tokenizer" / "config.json")
    after = hash_directory(model)
    assert after.digest != before.digest
    assert after.digest == reference_digest(model)


def test_empty_directory(tmp_path: Path) -> None:
    m = hash_directory(tmp_path)
    assert m.files == ()
    assert m.size == 0
    assert m.digest == hashlib.sha256(b"[]").hexdigest()
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    assert hash_directory(tmp_path) == m  # empty directories contribute nothing


def test_hash_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file or directory: .*/missing$"):
        hash_directory(tmp_path / "missing")
    with pytest.raises(InputError, match=r"not a directory: .*/f$"):
        hash_directory(write(tmp_path / "f", b"x"))
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UsageError):
            hash_directory(tmp_path, workers=bad)  # type: ignore[arg-type]


def test_non_utf8_name_refused(tmp_path: Path) -> None:
    try:
        fd = os.open(os.path.join(os.fsencode(tmp_path), b"bad\xff.bin"), os.O_CREAT | os.O_WRONLY)
    except OSError as e:
        pytest.skip(f"file system refuses non-UTF-8 names: {e}")
    os.close(fd)
    with pytest.raises(InputError, match=r"bad\\xff\.bin: file name is not valid UTF-8"):
        hash_directory(tmp_path)
    assert hash_directory(tmp_path, ignore=["bad*"]).files == ()


def test_control_characters_in_names_are_escaped_in_messages(tmp_path: Path) -> None:
    (tmp_path / "evil\nname").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath) as info:
        hash_directory(tmp_path)
    assert "\n" not in str(info.value)
    assert "evil\\x0aname" in str(info.value)


# --------------------------------------------------------------------------- ignore patterns


def paths_of(m: Manifest) -> list[str]:
    return [e.path for e in m.files]


def test_ignore_basename_patterns_match_at_any_depth(model: Path) -> None:
    write(model / "notes.tmp", "x")
    write(model / "weights" / "scratch.tmp", "x")
    write(model / ".git" / "HEAD", "ref")
    write(model / "weights" / ".git" / "config", "x")
    m = hash_directory(model, ignore=["*.tmp", ".git"])
    assert paths_of(m) == paths_of(hash_directory(model, ignore=["*.tmp", ".git", "nothing"]))
    assert not [p for p in paths_of(m) if p.endswith(".tmp") or ".git" in p]
    assert "weights/layer0.bin" in paths_of(m)


def test_ignored_directory_is_pruned(model: Path) -> None:
    # Hidden inside an ignored directory, even a FIFO or a symlink is never looked at.
    os.mkfifo(model / "weights" / "pipe")
    (model / "weights" / "link").symlink_to("/etc/passwd")
    with deadline(10):
        assert paths_of(hash_directory(model, ignore=["weights"])) == [
            "config.json",
            "empty.bin",
            "tokenizer/vocab.txt",
        ]


def test_ignore_path_patterns(model: Path) -> None:
    write(model / "weights" / "sub" / "deep.bin", "x")
    assert paths_of(hash_directory(model, ignore=["weights/*.bin"])) == [
        "config.json",
        "empty.bin",
        "tokenizer/vocab.txt",
        "weights/sub/deep.bin",  # "*" does not cross "/"
    ]
    assert "weights/sub/deep.bin" not in paths_of(hash_directory(model, ignore=["weights/**"]))
    assert paths_of(hash_directory(model, ignore=["**/*.bin"])) == [
        "config.json",
        "tokenizer/vocab.txt",
    ]
    # A path pattern is anchored at the root: "/config.json" and "config.json" differ in depth.
    write(model / "tokenizer" / "config.json", "{}")
    assert paths_of(hash_directory(model, ignore=["/config.json"])).count("config.json") == 0
    assert "tokenizer/config.json" in paths_of(hash_directory(model, ignore=["/config.json"]))
    # A directory matched by a path pattern is pruned.
    assert not any(
        p.startswith("weights/") for p in paths_of(hash_directory(model, ignore=["/weights"]))
    )


def test_ignore_trailing_slash_means_directories_only(tmp_path: Path) -> None:
    write(tmp_path / "cache", "a file called cache")
    write(tmp_path / "sub" / "cache" / "x", "x")
    assert paths_of(hash_directory(tmp_path, ignore=["cache/"])) == ["cache"]


def test_ignore_is_case_sensitive_and_validated(tmp_path: Path) -> None:
    write(tmp_path / "A.TMP", "x")
    assert paths_of(hash_directory(tmp_path, ignore=["*.tmp"])) == ["A.TMP"]
    for bad in ["", "/", "!keep.bin"]:
        with pytest.raises(UsageError):
            hash_directory(tmp_path, ignore=[bad])
    assert paths_of(hash_directory(tmp_path, ignore="*.TMP")) == []  # a lone string is one pattern


# --------------------------------------------------------------------------- symlinks


def test_symlink_inside_refused_by_default(model: Path) -> None:
    (model / "alias.bin").symlink_to("weights/layer0.bin")
    with pytest.raises(UnsafePath) as info:
        hash_directory(model)
    assert str(info.value) == (
        f"{model}/alias.bin -> weights/layer0.bin: "
        "symbolic links are not hashed (pass follow_symlinks=True)"
    )
    assert command_line_text(info.value).endswith("are not hashed (use --follow-symlinks)")


def test_symlink_outside_message_names_target(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (root / "evil").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath, match=r"model/evil -> /etc/passwd: symbolic links are not"):
        hash_directory(root)


def test_symlink_inside_followed(model: Path) -> None:
    (model / "alias.bin").symlink_to("weights/layer0.bin")
    m = hash_directory(model, follow_symlinks=True)
    by_path = {e.path: e for e in m.files}
    assert by_path["alias.bin"].sha256 == by_path["weights/layer0.bin"].sha256
    assert by_path["alias.bin"].size == 70_000
    assert m.digest == reference_digest(model)  # os.walk and isfile follow links too


def test_symlink_outside_refused_even_when_following(tmp_path: Path) -> None:
    root = tmp_path / "model"
    write(root / "a", "a")
    outside = write(tmp_path / "secret.txt", "secret")
    (root / "leak").symlink_to(outside)
    with pytest.raises(UnsafePath, match=r"model/leak -> .*secret\.txt: points outside"):
        hash_directory(root, follow_symlinks=True)
    (root / "leak").unlink()
    (root / "leak").symlink_to("../secret.txt")  # relative escape
    with pytest.raises(UnsafePath, match="points outside the model directory"):
        hash_directory(root, follow_symlinks=True)
    m = hash_directory(root, follow_symlinks=True, allow_outside=True)
    assert {e.path: e.sha256 for e in m.files}["leak"] == hashlib.sha256(b"secret").hexdigest()


def test_allow_outside_alone_does_not_follow(tmp_path: Path) -> None:
    (tmp_path / "leak").symlink_to("/etc/hostname")
    with pytest.raises(UnsafePath, match="symbolic links are not hashed"):
        hash_directory(tmp_path, allow_outside=True)


def test_symlinked_subdirectory(model: Path) -> None:
    (model / "alias").symlink_to("weights", target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"alias -> weights: symbolic links are not hashed"):
        hash_directory(model)
    m = hash_directory(model, follow_symlinks=True)
    by_path = {e.path: e.sha256 for e in m.files}
    assert by_path["alias/layer0.bin"] == by_path["weights/layer0.bin"]
    assert by_path["alias/layer1.bin"] == by_path["weights/layer1.bin"]
    assert m.digest == reference_digest(model)


def test_symlinked_subdirectory_outside(tmp_path: Path) -> None:
    root, shared = tmp_path / "model", tmp_path / "shared"
    write(shared / "w.bin", "w")
    write(root / "a", "a")
    (root / "shared").symlink_to(shared, target_is_directory=True)
    with pytest.raises(UnsafePath, match="points outside the model directory"):
        hash_directory(root, follow_symlinks=True)
    m = hash_directory(root, follow_symlinks=True, allow_outside=True)
    assert paths_of(m) == ["a", "shared/w.bin"]


def test_symlink_loop_and_broken_link(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "f", "f")
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"sub/up -> \.\.: symbolic link loop"):
        hash_directory(tmp_path, follow_symlinks=True)
    (tmp_path / "sub" / "up").unlink()
    (tmp_path / "dangling").symlink_to("nowhere")
    with pytest.raises(InputError, match=r"dangling -> nowhere: broken symbolic link"):
        hash_directory(tmp_path, follow_symlinks=True)
    assert paths_of(hash_directory(tmp_path, follow_symlinks=True, ignore=["dangling"])) == [
        "sub/f"
    ]


def test_ignored_symlink_is_not_an_error(model: Path) -> None:
    before = hash_directory(model)
    (model / "evil").symlink_to("/etc/passwd")
    assert hash_directory(model, ignore=["evil"]) == before
    assert hash_directory(model, ignore=["/evil"], follow_symlinks=True) == before


def test_root_may_be_a_symlink(model: Path, tmp_path: Path) -> None:
    link = tmp_path / "current"
    link.symlink_to(model, target_is_directory=True)
    assert hash_directory(link) == hash_directory(model)


# --------------------------------------------------------------------------- special files


def test_fifo_in_directory_refused_without_hanging(tmp_path: Path) -> None:
    write(tmp_path / "a", "a")
    os.mkfifo(tmp_path / "pipe")
    with deadline(10), pytest.raises(UnsafePath, match=r"pipe: a FIFO; special files"):
        hash_directory(tmp_path)
    with deadline(10), pytest.raises(UnsafePath, match="FIFO"):
        hash_directory(tmp_path, follow_symlinks=True, allow_outside=True)


def test_symlink_to_fifo_refused_when_following(tmp_path: Path) -> None:
    fifo_dir = tmp_path / "elsewhere"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "pipe")
    root = tmp_path / "model"
    root.mkdir()
    (root / "p").symlink_to(fifo_dir / "pipe")
    with deadline(10), pytest.raises(UnsafePath, match=r"p -> .*pipe: a FIFO"):
        hash_directory(root, follow_symlinks=True, allow_outside=True)


def test_socket_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s"
    if len(os.fsencode(path)) > 100:
        pytest.skip("temporary path too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(UnsafePath, match="a socket; special files are not hashed"):
            hash_directory(tmp_path)


def test_device_refused() -> None:
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with pytest.raises(InputError, match="character device"):
        hash_file("/dev/null")


def test_file_swapped_for_symlink_is_refused(tmp_path: Path) -> None:
    """The scan saw a regular file; if it becomes a symlink before it is opened, refuse."""
    write(tmp_path / "a.bin", "a")
    write(tmp_path / "big.bin", "hashed first: the largest file goes first")
    write(tmp_path / "secret", "secret")

    def swap_once(nbytes: int) -> None:
        if not (tmp_path / "a.bin").is_symlink():
            (tmp_path / "a.bin").unlink()
            (tmp_path / "a.bin").symlink_to(tmp_path / "secret")

    with pytest.raises(UnsafePath, match=r"a\.bin was replaced by a symbolic link"):
        hash_directory(tmp_path, workers=1, progress=_Hook(swap_once))


def test_file_replaced_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.bin", "a")
    write(tmp_path / "big.bin", "hashed first: the largest file goes first")
    replaced: list[int] = []

    def replace_once(nbytes: int) -> None:
        if not replaced:
            replaced.append(nbytes)
            write(tmp_path / "b.tmp", "other")
            os.replace(tmp_path / "b.tmp", tmp_path / "a.bin")

    with pytest.raises(UnsafePath, match=r"a\.bin was replaced while hashing"):
        hash_directory(tmp_path, workers=1, progress=_Hook(replace_once))


class _Hook:
    """A progress sink that runs `action` each time bytes are reported: a way to change the
    folder after it was scanned and while it is being hashed, through the public API."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.advance = action


# --------------------------------------------------------------------------- parallel errors


def test_error_in_one_worker_stops_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        write(tmp_path / f"f{i:02}", os.urandom(10_000))
    real_open = os.open

    def flaky(p: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(p).endswith("f07"):
            raise OSError(5, "Input/output error", str(p))
        return real_open(p, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", flaky)
    with pytest.raises(InputError, match=r"cannot read .*f07: input/output error"):
        hash_directory(tmp_path, workers=4)
    assert not [t for t in threading.enumerate() if t.name.startswith("modelchain-hash")]


# --------------------------------------------------------------------------- digest_path


def test_digest_path_file_and_directory(model: Path) -> None:
    f = digest_path(model / "config.json")
    assert (f.kind, f.manifest) == ("file", None)
    assert f.sha256 == hashlib.sha256(b'{"layers": 3}').hexdigest()
    assert f.size == 13
    d = digest_path(model, ignore=["tokenizer"], workers=2)
    assert d.kind == "directory"
    assert d.manifest == hash_directory(model, ignore=["tokenizer"])
    assert (d.sha256, d.size) == (d.manifest.digest, d.manifest.size)


def test_digest_path_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^no such file or directory: .*/gone$"):
        digest_path(tmp_path / "gone")


def test_digest_path_passes_options(model: Path) -> None:
    (model / "alias").symlink_to("config.json")
    with pytest.raises(UnsafePath):
        digest_path(model)
    assert "alias" in paths_of(digest_path(model, follow_symlinks=True).manifest)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- manifests


def test_compare_manifests(model: Path) -> None:
    before = hash_directory(model)
    assert compare_manifests(before, before).empty
    write(model / "config.json", '{"layers": 4}')
    write(model / "new.txt", "n")
    (model / "tokenizer" / "vocab.txt").unlink()
    diff = compare_manifests(before, hash_directory(model))
    assert diff.changed == ("config.json",)
    assert diff.added == ("new.txt",)
    assert diff.removed == ("tokenizer/vocab.txt",)
    assert not diff.empty
    reverse = compare_manifests(hash_directory(model), before)
    assert (reverse.added, reverse.removed) == (diff.removed, diff.added)


def test_manifest_json_round_trip(model: Path) -> None:
    m = hash_directory(model)
    data = manifest_to_json(m)
    assert data[0] == {"path": "config.json", "sha256": m.files[0].sha256, "size": 13}
    assert manifest_from_json(json.loads(json.dumps(data))) == m
    assert manifest_from_json([]) == hash_directory(model, ignore=["*"])
    # Order in the JSON does not matter: entries are sorted and the digest recomputed.
    assert manifest_from_json(list(reversed(data))) == m


GOOD = {"path": "a.bin", "sha256": "0" * 64, "size": 1}


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"path": "a"},
        "[]",
        [GOOD, GOOD],
        ["a.bin"],
        [{**GOOD, "extra": 1}],
        [{"path": "a.bin", "sha256": "0" * 64}],
        [{**GOOD, "path": 3}],
        [{**GOOD, "path": ""}],
        [{**GOOD, "path": "/etc/passwd"}],
        [{**GOOD, "path": "a/../b"}],
        [{**GOOD, "path": "./a"}],
        [{**GOOD, "path": "a//b"}],
        [{**GOOD, "path": "a/"}],
        [{**GOOD, "path": "bad\udcff"}],
        [{**GOOD, "sha256": "0" * 63}],
        [{**GOOD, "sha256": "A" * 64}],
        [{**GOOD, "sha256": None}],
        [{**GOOD, "size": -1}],
        [{**GOOD, "size": 1.0}],
        [{**GOOD, "size": "1"}],
        [{**GOOD, "size": True}],
        [{**GOOD, "size": 2**53}],
    ],
)
def test_malformed_manifest_json(data: object) -> None:
    with pytest.raises(InputError) as info:
        manifest_from_json(data)
    assert "\n" not in str(info.value)


def test_manifest_entry_json_matches_digest(tmp_path: Path) -> None:
    entries = [ManifestEntry("b", 2, "1" * 64), ManifestEntry("a", 1, "2" * 64)]
    m = Manifest.from_entries(entries)
    assert paths_of(m) == ["a", "b"]
    expected = (
        b'[{"path":"a","sha256":"' + b"2" * 64 + b'","size":1},'
        b'{"path":"b","sha256":"' + b"1" * 64 + b'","size":2}]'
    )
    assert m.digest == hashlib.sha256(expected).hexdigest()
    assert m.size == 3


# --------------------------------------------------------------------------- hypothesis

NAME = st.text(
    alphabet=st.sampled_from("abcXYZ019._- é日\U0001f600"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
TREE = st.recursive(
    st.binary(max_size=3000),
    lambda children: st.dictionaries(NAME, children, max_size=4),
    max_leaves=12,
)


def build(root: Path, tree: dict[str, object]) -> None:
    for name, child in tree.items():
        if isinstance(child, dict):
            (root / name).mkdir()
            build(root / name, child)
        else:
            assert isinstance(child, bytes)
            (root / name).write_bytes(child)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(NAME, TREE, max_size=5))
def test_random_trees_match_independent_recomputation(tree: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, tree)
        serial = hash_directory(root, workers=1, progress=NullProgress())
        parallel = hash_directory(root, workers=4, progress=NullProgress())
        assert serial == parallel
        assert serial.digest == reference_digest(root)
        assert manifest_from_json(manifest_to_json(serial)) == serial


# --------------------------------------------------------------------------- progress, canonical


class Recorder:
    def __init__(self) -> None:
        self.total = 0
        self.lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.total += nbytes


def test_progress_receives_every_byte(model: Path) -> None:
    rec = Recorder()
    m = hash_directory(model, progress=rec, workers=3)
    assert rec.total == m.size
    rec = Recorder()
    hash_file(model / "weights" / "layer1.bin", progress=rec)
    assert rec.total == 1_500_000


def test_progress_is_silent_when_short_or_disabled(capfd: pytest.CaptureFixture[str]) -> None:
    with Progress(100, "quick", enabled=True) as p:
        p.advance(50)
        assert p.completed == 50
        assert not p.shown  # less than the delay: nothing displayed
    with Progress(100, "off", enabled=False, delay=0) as p:
        p.advance(50)
        assert not p.shown
    with Progress(100, "auto", delay=0) as p:  # stderr is captured, not a terminal
        assert not p.enabled
        p.advance(1)
    with NullProgress() as n:
        n.advance(5)
    assert capfd.readouterr().err == ""


def test_progress_shows_after_delay_and_counts_across_threads() -> None:
    with Progress(8 * 1000 * 64, "hashing", enabled=True, delay=0) as p:
        threads = [
            threading.Thread(target=lambda: [p.advance(64) for _ in range(1000)]) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert p.shown
        assert p.completed == 8 * 1000 * 64
    assert not p.shown


def test_the_library_draws_no_bar_and_tells_a_callers_bar_the_total(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library never prints: without a reporter it makes none (even on a terminal); the
    command line's bar is told the total once the files are found."""
    from modelchain.cli import progress as cli_progress
    from modelchain.fs import progress as fs_progress

    assert not hasattr(fs_progress, "Progress")
    monkeypatch.setattr(cli_progress, "stderr_is_terminal", lambda: True)
    made: list[object] = []
    monkeypatch.setattr(cli_progress.Progress, "__init__", lambda *a, **k: made.append(a))
    m = hash_directory(model, workers=2)
    hash_file(model / "weights" / "layer1.bin")
    assert made == []
    monkeypatch.undo()
    with Progress(None, "hashing", enabled=True, delay=3600) as bar:
        m = hash_directory(model, progress=bar, workers=2)
        assert bar.total_bytes == m.size and bar.description.startswith("hashing ")
        assert bar.completed == m.size and not bar.shown


def test_importing_digest_does_not_import_rich() -> None:
    code = "import sys, modelchain.fs.digest; print('rich' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 2**53, -(2**53), {1: "x"}, object(), "\udcff"]
)
def test_canonical_json_refuses_what_it_cannot_encode(value: object) -> None:
    with pytest.raises(InputError, match=r"^cannot encode as canonical JSON: "):
        canonical_json(value)


def test_canonical_json_is_rfc8785() -> None:
    assert canonical_json({"b": [1, 2.5, None, True], "a": "é", "€": 1e21}) == (
        '{"a":"é","b":[1,2.5,null,true],"€":1e+21}'.encode()
    )
    assert canonical_json(2**53 - 1) == b"9007199254740991"
