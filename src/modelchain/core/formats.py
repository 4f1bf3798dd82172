"""One format detector and one strict parser per data format, shared by `scan` and `load`.

    model_format(data, name) -> str|None  # what kind of model file: the one decision
    detect_data(data) -> list[str]        # every data format whose strict parser accepts data
    parse_safetensors(data) -> SafetensorsHeader
    compression_of(data) -> str | None    # the compressor joblib.load would pick

Pure: no I/O beyond the bytes given. A format is recognised only by a strict parse of the
whole file, never by an extension or a loose prefix check: a lax check that accepts a file
which another loader reads as a pickle is how a pickle passes for data. The caller decides
what to do when several parsers accept one file (`scan` and `load` refuse it as ambiguous).

`model_format` is the one answer to "what kind of model file is this" that `load` (which
loader to use) and `scan` (which parser to follow) share; `detect_data` then says, for the
scanner, whether a file is data that no loader reads as code.

Data formats (they hold no code): ``safetensors``, ``json`` (UTF-8, no byte-order mark, no
duplicate keys), ``text`` (UTF-8 without control characters: model cards, vocabularies),
``png``, ``jpeg``, ``gguf``, ``onnx`` (a protobuf ``ModelProto`` walked field by field).
"""

from __future__ import annotations

import codecs
import json
import posixpath
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelchain.core.canonical import DuplicateKey, unique_object
from modelchain.core.errors import InputError, VerificationError

__all__ = [
    "DATA_FORMATS",
    "JOBLIB_COMPRESSORS",
    "MAX_SAFETENSORS_HEADER",
    "MODEL_FORMATS",
    "AmbiguousFormat",
    "FormatError",
    "SafetensorsHeader",
    "compression_of",
    "detect_data",
    "model_format",
    "parse_safetensors",
    "parse_safetensors_header_bytes",
]

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024

#: joblib's compressor magic prefixes (joblib.compressor), in the order joblib tests them.
JOBLIB_COMPRESSORS: tuple[tuple[bytes, str], ...] = (
    (b"x", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"]\x00\x00", "lzma"),
    (b"\xfd7zXZ", "xz"),
    (b'\x04"M\x18', "lz4"),
)


#: what `model_format` answers: the formats `load` reads, and what only the scanner follows
MODEL_FORMATS = ("safetensors", "skops", "zip", "onnx", "joblib-zfile", "joblib", "pickle")

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end
ZFILE_MAGIC = b"ZF"  # joblib < 0.9.3's compressed format
PICKLE_EXTENSIONS = (".pkl", ".pickle", ".pk", ".p")
JOBLIB_EXTENSIONS = (".joblib", ".jbl", ".jl")


class FormatError(InputError):
    """The bytes are not a well-formed file of the format they were parsed as (exit 2)."""


class AmbiguousFormat(VerificationError):
    """Two loaders would read the same bytes as two different formats (exit 1)."""


def compression_of(data: Any) -> str | None:
    """The compressor `joblib.load` would choose for these bytes (by its magic prefixes)."""
    head = bytes(data[:8])
    for prefix, method in JOBLIB_COMPRESSORS:
        if head.startswith(prefix):
            return method
    return None


# --------------------------------------------------------------------------- strict JSON


def _strict_json(raw: bytes, what: str) -> Any:
    """UTF-8 only (json.loads on bytes would also accept UTF-16/32 and a BOM)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{what} is not UTF-8 JSON: {e}") from None
    try:
        return json.loads(text, object_pairs_hook=unique_object)
    except DuplicateKey as e:
        raise FormatError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{what} is not UTF-8 JSON: {e}") from None


# --------------------------------------------------------------------------- safetensors

_DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed safetensors header: `tensors` maps name -> (begin, end) absolute offsets."""

    header_length: int
    header: bytes
    tensors: dict[str, tuple[int, int]]
    metadata: dict[str, str]


def _nonneg_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_safetensors(data: Any) -> SafetensorsHeader:
    """Parse and check a safetensors file (8-byte little-endian header length, JSON header).

    Strict: the header lies within the file, starts with ``{`` (as the safetensors library
    requires), is a UTF-8 JSON object without duplicate keys; every tensor has a dtype, a
    shape and data offsets inside the data area whose length matches the shape; the tensors
    cover the data area exactly, without overlap or gaps. Raises `FormatError` naming the
    first problem.
    """
    return parse_safetensors_header_bytes(data, len(data))


def parse_safetensors_header_bytes(head: Any, file_size: int) -> SafetensorsHeader:
    """`parse_safetensors` for a file of `file_size` bytes given only its beginning: `head`
    holds at least the 8-byte length and the header it announces (a reader that streams the
    tensors reads no more). Every check is the same; offsets are checked against
    `file_size`."""
    if file_size < 8 or len(head) < 8:
        raise FormatError("safetensors: file shorter than its 8-byte header length")
    n = int.from_bytes(bytes(head[:8]), "little")
    if n > file_size - 8:
        raise FormatError(f"safetensors: header length {n} exceeds the file")
    if n > MAX_SAFETENSORS_HEADER:
        raise FormatError(f"safetensors: header length {n} is implausibly large")
    if len(head) < 8 + n:
        raise FormatError("safetensors: file shorter than its header length")
    header = bytes(head[8 : 8 + n])
    if header[:1] != b"{":
        raise FormatError("safetensors: header is not a JSON object (it must start with '{')")
    parsed = _strict_json(header, "safetensors: header")
    if not isinstance(parsed, dict):
        raise FormatError("safetensors: header is not a JSON object")
    body = file_size - 8 - n
    metadata: dict[str, str] = {}
    tensors: dict[str, tuple[int, int]] = {}
    for key, info in parsed.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise FormatError("safetensors: __metadata__ must map strings to strings")
            metadata = dict(info)
            continue
        where = f"safetensors: tensor {key!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{where}: needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str):
            raise FormatError(f"{where}: dtype must be a string")
        if not isinstance(shape, list) or not all(_nonneg_int(d) for d in shape):
            raise FormatError(f"{where}: shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_nonneg_int(o) for o in offsets)
        ):
            raise FormatError(f"{where}: data_offsets must be two non-negative integers")
        begin, end = offsets
        if begin > end or end > body:
            raise FormatError(f"{where}: data_offsets [{begin}, {end}] outside the data")
        size = _DTYPE_SIZES.get(dtype)
        if size is not None:
            count = 1
            for d in shape:
                count *= d
            if count * size != end - begin:
                raise FormatError(f"{where}: {end - begin} bytes do not hold {dtype}{shape}")
        tensors[key] = (8 + n + begin, 8 + n + end)
    position = 8 + n
    for key, (begin, end) in sorted(tensors.items(), key=lambda kv: (kv[1], kv[0])):
        if begin != position:
            what = "overlaps another tensor" if begin < position else "leaves a gap before it"
            raise FormatError(f"safetensors: tensor {key!r} {what}")
        position = end
    if position != file_size:
        raise FormatError(f"safetensors: {file_size - position} bytes follow the last tensor")
    return SafetensorsHeader(n, header, tensors, metadata)


# --------------------------------------------------------------------------- the others


#: JSON and text files larger than this are not taken for data (parsing them whole would
#: take memory in proportion); they are scanned as what else they might be
MAX_TEXT = 256 << 20


def parse_json(data: Any) -> Any:
    """A whole file of UTF-8 JSON (config.json, tokenizer.json, *.index.json)."""
    if len(data) > MAX_TEXT:
        raise FormatError(f"json: larger than {MAX_TEXT} bytes")
    return _strict_json(bytes(data), "json")


_TEXT_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 12, 13)) + b"\x7f"


def parse_text(data: Any) -> str:
    """UTF-8 text without control characters (model cards, vocabularies, merges)."""
    if len(data) > MAX_TEXT:
        raise FormatError(f"text: larger than {MAX_TEXT} bytes")
    raw = bytes(data)
    if not raw:
        raise FormatError("text: empty")
    if raw.translate(None, _TEXT_CONTROLS) != raw:
        raise FormatError("text: holds control characters")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"text: not UTF-8: {e}") from None


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse_png(data: Any) -> None:
    """Every chunk's length and CRC, IHDR first, IEND last and at the end of the file."""
    raw = data  # bytes or an mmap: sliced, never copied whole
    if bytes(raw[:8]) != _PNG_MAGIC:
        raise FormatError("png: no signature")
    pos, first = 8, True
    while True:
        if pos + 12 > len(raw):
            raise FormatError("png: truncated chunk")
        (length,) = struct.unpack(">I", bytes(raw[pos : pos + 4]))
        kind = bytes(raw[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(raw):
            raise FormatError("png: chunk runs past the end of the file")
        (crc,) = struct.unpack(">I", bytes(raw[end - 4 : end]))
        if zlib.crc32(bytes(raw[pos + 4 : end - 4])) != crc:
            raise FormatError(f"png: bad CRC in chunk {kind!r}")
        if first and kind != b"IHDR":
            raise FormatError("png: first chunk is not IHDR")
        first = False
        pos = end
        if kind == b"IEND":
            break
    if pos != len(raw):
        raise FormatError(f"png: {len(raw) - pos} bytes follow IEND")


def parse_jpeg(data: Any) -> None:
    """Start-of-image marker, well-formed segments up to start-of-scan, end-of-image at EOF."""
    raw = data
    if bytes(raw[:3]) != b"\xff\xd8\xff" or bytes(raw[-2:]) != b"\xff\xd9":
        raise FormatError("jpeg: no start or end marker")
    pos = 2
    while True:
        if pos + 4 > len(raw) or raw[pos] != 0xFF:
            raise FormatError(f"jpeg: bad segment at byte {pos}")
        marker = raw[pos + 1]
        (length,) = struct.unpack(">H", bytes(raw[pos + 2 : pos + 4]))
        if length < 2 or pos + 2 + length > len(raw):
            raise FormatError(f"jpeg: bad segment length at byte {pos}")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to EOI
            return


_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def parse_gguf(data: Any) -> None:
    """Magic, version 2 or 3, every metadata value and tensor description well formed."""
    raw = data  # the header only is read, by slices: GGUF files are gigabytes
    if bytes(raw[:4]) != b"GGUF" or len(raw) < 24:
        raise FormatError("gguf: no magic")
    version, n_tensors, n_kv = struct.unpack("<IQQ", bytes(raw[4:24]))
    if version not in (2, 3):
        raise FormatError(f"gguf: unsupported version {version}")
    if n_tensors > len(raw) or n_kv > len(raw):
        raise FormatError("gguf: counts exceed the file")
    pos = 24

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(raw):
            raise FormatError("gguf: truncated")
        out = bytes(raw[pos : pos + n])
        pos += n
        return out

    def string() -> bytes:
        (n,) = struct.unpack("<Q", take(8))
        return take(n)

    def value(kind: int, depth: int = 0) -> None:
        if kind in _GGUF_SCALARS:
            take(_GGUF_SCALARS[kind])
        elif kind == 8:
            string()
        elif kind == 9 and depth == 0:
            inner, count = struct.unpack("<IQ", take(12))
            if count > len(raw):
                raise FormatError("gguf: array count exceeds the file")
            for _ in range(count):
                value(inner, depth + 1)
        else:
            raise FormatError(f"gguf: unknown value type {kind}")

    for _ in range(n_kv):
        string()
        (kind,) = struct.unpack("<I", take(4))
        value(kind)
    for _ in range(n_tensors):
        string()
        (dims,) = struct.unpack("<I", take(4))
        if dims > 8:
            raise FormatError("gguf: tensor has too many dimensions")
        take(8 * dims + 4 + 8)


# ONNX ModelProto fields (onnx.proto3): number -> wire type (0 varint, 2 length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def _varint(raw: Any, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(raw) or shift > 63:
            raise FormatError("onnx: bad varint")
        b = raw[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return out, pos


def parse_onnx(data: Any) -> None:
    """A protobuf ModelProto: known fields only, right wire types, ir_version and a graph."""
    raw = data  # indexed in place: ONNX files are gigabytes
    pos, seen = 0, set()
    while pos < len(raw):
        tag, pos = _varint(raw, pos)
        number, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(number) != wire:
            raise FormatError(f"onnx: unexpected field {number} (wire type {wire})")
        if wire == 0:
            _, pos = _varint(raw, pos)
        else:
            n, pos = _varint(raw, pos)
            if pos + n > len(raw):
                raise FormatError("onnx: field runs past the end of the file")
            pos += n
        seen.add(number)
    if not {1, 7} <= seen:
        raise FormatError("onnx: no ir_version or no graph")


_PARSERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("safetensors", parse_safetensors),
    ("json", parse_json),
    ("png", parse_png),
    ("jpeg", parse_jpeg),
    ("gguf", parse_gguf),
    ("onnx", parse_onnx),
)

DATA_FORMATS = (*(name for name, _ in _PARSERS), "text")


def _could_be(name: str, head: bytes) -> bool:
    """Cheap necessary conditions, so a large pickle is not parsed six times."""
    if name == "safetensors":
        return len(head) >= 9 and head[8:9] == b"{"
    if name == "json":
        return head.lstrip(b" \t\r\n")[:1] in (b"{", b"[")
    if name == "png":
        return head.startswith(_PNG_MAGIC)
    if name == "jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if name == "gguf":
        return head.startswith(b"GGUF")
    if name == "onnx":
        return head[:1] == b"\x08"  # field 1 (ir_version) comes first in every writer
    return True  # pragma: no cover


#: a file whose name claims a data format is data only if it parses as that format
_CLAIMED = {
    ".safetensors": "safetensors",
    ".json": "json",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gguf": "gguf",
    ".onnx": "onnx",
}


def _text_start(head: bytes) -> bool:
    """Cheap test before reading a whole file as text: its start is UTF-8 without controls."""
    if head.translate(None, _TEXT_CONTROLS) != head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def detect_data(data: Any, name: str = "") -> list[str]:
    """Every data format whose strict parser accepts the whole of `data` ("text" only when no
    other one does). More than one name means the file is ambiguous. A `name` whose extension
    claims a format (``config.json``) narrows it: if that parser refuses, the file is no data
    (a broken config.json is not "text")."""
    dot = name.rfind(".")
    claimed = _CLAIMED.get(name[dot:].lower()) if dot >= 0 else None
    found = _detect(data)
    if claimed is not None and claimed not in found:
        return []
    return found


def _detect(data: Any) -> list[str]:
    head = bytes(data[:64])
    found = []
    for name, parser in _PARSERS:
        if not _could_be(name, head):
            continue
        try:
            parser(data)
        except FormatError:
            continue
        found.append(name)
    if not found and _text_start(head):
        try:
            parse_text(data)
        except FormatError:
            pass
        else:
            found.append("text")
    return found


# --------------------------------------------------------------------------- model files


def _is_safetensors(data: Any) -> bool:
    """True only if the strict parser accepts the whole file."""
    try:
        parse_safetensors(data)
    except FormatError:
        return False
    return True


def model_format(data: Any, name: str = "", *, for_load: bool = False) -> str | None:
    """What kind of model file `data` is: one of `MODEL_FORMATS`, or None when nothing in the
    bytes says (a protocol 0 or 1 pickle, a data file, or nothing known).

    The content decides: a zip archive (``zip``; for a load, ``skops`` when it holds a
    ``schema.json``), a safetensors file the strict parser accepts whole, data joblib
    would decompress (``joblib``), a protocol 2+ pickle (``pickle``).

    The two callers differ on purpose, and only in what `for_load` says:
    - ``for_load=True`` is how `load` picks the loader for bytes it will read itself: the
      extension of `name` counts (``.safetensors``, ``.skops``, ``.onnx``; a protocol 2+
      pickle is ``pickle`` only under a pickle extension, else ``joblib``, which reads
      both; the pickle and joblib extensions name a format with no magic), and a strict
      safetensors parse comes first, since that is the only way `load` reads such bytes.
    - ``for_load=False`` (the scanner) asks what any loader could make of the bytes and
      believes no name: the legacy joblib ``ZF`` prefix (``joblib-zfile``) comes before
      a safetensors parse, since joblib.load would take such a file as compressed."""
    head = bytes(data[:16])
    ext = posixpath.splitext(name)[1].lower() if for_load else ""
    if for_load and (ext == ".safetensors" or _is_safetensors(data)):
        return "safetensors"
    if head.startswith(ZIP_MAGIC) or ext == ".skops":
        skops = ext == ".skops" or (for_load and b"schema.json" in data)
        return "skops" if skops else "zip"
    if not for_load:
        if head.startswith(ZFILE_MAGIC):
            return "joblib-zfile"
        if _is_safetensors(data):
            return "safetensors"
    if ext == ".onnx":
        return "onnx"
    if head[:1] == b"\x80":  # pickle protocol 2 and newer
        return "pickle" if not for_load or ext in PICKLE_EXTENSIONS else "joblib"
    if compression_of(head) is not None:
        return "joblib"
    if ext in PICKLE_EXTENSIONS:
        return "pickle"  # protocols 0 and 1 have no magic
    if ext in JOBLIB_EXTENSIONS:
        return "joblib"
    return None
