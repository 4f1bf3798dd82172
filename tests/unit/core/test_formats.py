"""modelchain.core.formats: one strict parser per data format (`scan` on a Hugging-Face folder:
cli/test_formats_cli.py)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from modelchain.core import formats
from modelchain.core.formats import FormatError, compression_of, detect_data, parse_safetensors
from modelchain.use.guard import ModelUnreadable, detect_format, parse_safetensors_header
from modelchain.use.scan import scan_bytes


def png(width: int = 2, height: int = 1) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def st_bytes(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def gguf(kv: int = 1) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, kv)
    for _ in range(kv):
        key = b"general.name"
        out += struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
        out += struct.pack("<Q", 4) + b"tiny"
    return out


ONNX = b"\x08\x07" + b"\x3a\x02" + b"\x0a\x00"  # ir_version 7, graph {1 empty field}


def test_each_format_detected_by_strict_parse() -> None:
    assert detect_data(
        st_bytes({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"xy")
    ) == ["safetensors"]
    assert detect_data(b'{"model_type": "bert"}') == ["json"]
    assert detect_data(b"# Model card\n\nWeights for a tiny model.\n") == ["text"]
    assert detect_data(png()) == ["png"]
    assert detect_data(gguf()) == ["gguf"]
    assert detect_data(ONNX) == ["onnx"]
    assert detect_data(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02\x01\x02\xff\xd9") == ["jpeg"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config.json", '{"a": 1}'.encode("utf-16")),  # UTF-16 with a BOM
        ("config.json", b"\xef\xbb\xbf" + b'{"a": 1}'),  # UTF-8 BOM
        ("config.json", b'{"a": 1, "a": 2}'),  # duplicate key
        ("config.json", b'{"a": 1} trailing'),
        ("a.png", png()[:-1]),  # truncated
        ("a.png", png()[:19] + b"\x09" + png()[20:]),  # bad CRC
        ("a.png", png() + b"x"),  # bytes after IEND
        ("m.gguf", gguf()[:-1]),
        ("m.gguf", b"GGUF" + struct.pack("<IQQ", 9, 0, 0)),  # unknown version
        ("m.onnx", ONNX[:-1]),
        ("m.onnx", b"\x08\x07"),  # no graph
        ("w.safetensors", st_bytes({}, b"junk")),
        ("model.bin", b"\x80\x04\x95text"),  # a pickle: control characters are not text
    ],
)
def test_malformed_is_not_data(name: str, data: bytes) -> None:
    assert detect_data(data, name) == []
    assert scan_bytes(data, name).verdict != "data"


def test_safetensors_header_strictness() -> None:
    utf16 = '{"a":{}}'.encode("utf-16-le")
    with pytest.raises(FormatError, match="JSON"):
        parse_safetensors(len(utf16).to_bytes(8, "little") + utf16)
    with pytest.raises(FormatError, match="follow"):
        parse_safetensors(st_bytes({}, b"junk"))
    # guard keeps its names and its error type
    with pytest.raises(ModelUnreadable, match="follow"):
        parse_safetensors_header(st_bytes({}, b"junk"))
    with pytest.raises(ModelUnreadable, match="cannot tell"):  # no lax "looks like" any more
        detect_format(st_bytes({}, b"junk"), "weights")
    assert detect_format(st_bytes({}, b""), "weights") == "safetensors"


def test_compression_is_joblibs_magic() -> None:
    assert compression_of(b"x\x9c...") == "zlib"
    assert compression_of(b"BZh9") == "bz2"
    assert compression_of(b"BZ") is None  # joblib reads that as a pickle
    assert compression_of(b"\x80\x04") is None


def test_header_length_with_low_byte_0x78_is_safetensors_not_zlib() -> None:
    for pad in range(0, 400):
        raw = json.dumps({"__metadata__": {"p": "x" * pad}}).encode()
        raw += b" " * (-len(raw) % 8)
        if len(raw) & 0xFF == 0x78:
            break
    data = len(raw).to_bytes(8, "little") + raw
    assert data[0] == 0x78 and compression_of(data) == "zlib"
    report = scan_bytes(data, "model.safetensors")
    assert report.ok and report.format == "safetensors" and report.verdict == "data"


def test_text_that_is_a_pickle_is_scanned_as_one(tmp_path: Path) -> None:
    evil = b"cos\nsystem\n(S'true'\ntR."  # protocol 0: printable text, and a pickle
    report = scan_bytes(evil, "README.md")
    assert report.format == "pickle" and not report.ok


# -- a Hugging-Face snapshot --------------------------------------------------------------


def test_data_formats_are_listed() -> None:
    assert set(formats.DATA_FORMATS) >= {"safetensors", "json", "text", "png", "gguf", "onnx"}


# -- one decision: what kind of model file ------------------------------------------------


def _st_starting_with(prefix: bytes) -> bytes:
    """A valid safetensors file whose 8-byte header length begins with `prefix`."""
    length = int.from_bytes(prefix, "little")
    raw = json.dumps({"__metadata__": {"p": "x"}}).encode()
    return length.to_bytes(8, "little") + raw + b" " * (length - len(raw))


@pytest.mark.parametrize(
    ("data", "name", "load", "scan"),
    [
        (b"\x80\x05.", "m.pkl", "pickle", "pickle"),
        (b"\x80\x05.", "m.joblib", "joblib", "pickle"),
        (b"\x80\x05.", "model", "joblib", "pickle"),  # joblib.load reads plain pickles too
        (b"\x1f\x8b\x08", "m.bin", "joblib", "joblib"),
        (b"(lp0\n.", "m.pickle", "pickle", None),  # protocol 0: only a name says
        (b"", "m.onnx", "onnx", None),
        (b"PK\x03\x04" + b"schema.json", "m.bin", "skops", "zip"),
        (b"PK\x03\x04", "m.skops", "skops", "zip"),
        (b"PK\x05\x06" + bytes(18), "m.zip", "zip", "zip"),
        (b"ZF0x10\n", "m.joblib", "joblib", "joblib-zfile"),
        (b"hello", "m.safetensors", "safetensors", None),  # named so: its loader says why not
        (st_bytes({}, b""), "weights", "safetensors", "safetensors"),
        (b"hello", "m.txt", None, None),
    ],
)
def test_one_model_format_decision(data: bytes, name: str, load: str, scan: str) -> None:
    """`load` and `scan` ask `model_format` one question; they differ only in `for_load`
    (a load believes the name it was given; the scanner believes no name)."""
    assert formats.model_format(data, name, for_load=True) == load
    assert formats.model_format(data, name) == scan
    assert formats.model_format(data) == scan


def test_safetensors_with_a_compressor_byte_or_zf_first() -> None:
    """A header length whose first byte is a compressor's magic is still safetensors for
    both; one that starts "ZF" is safetensors to `load` (it reads it with the strict parser
    only) but legacy joblib to the scanner, as joblib.load would take it: refused, fail closed."""
    gzip_first = _st_starting_with(b"\x1f\x8b")
    assert compression_of(gzip_first) == "gzip"
    assert formats.model_format(gzip_first) == "safetensors"
    assert formats.model_format(gzip_first, "w.bin", for_load=True) == "safetensors"
    assert detect_format(gzip_first, "w.bin") == "safetensors"
    zf_first = _st_starting_with(b"ZF")
    parse_safetensors(zf_first)
    assert formats.model_format(zf_first, "w.bin", for_load=True) == "safetensors"
    assert formats.model_format(zf_first, "w.safetensors") == "joblib-zfile"
    report = scan_bytes(zf_first, "w.safetensors")
    assert report.format == "joblib-zfile" and not report.ok


def test_load_and_scan_share_the_decision() -> None:
    """`guard.detect_format` is `model_format(for_load=True)` with the caller's messages;
    `scan` follows a zip as a zip whatever its name."""
    assert set(formats.MODEL_FORMATS) >= set(("joblib", "pickle", "skops", "safetensors", "onnx"))
    with pytest.raises(ModelUnreadable, match="a zip archive that is not a skops file"):
        detect_format(b"PK\x03\x04rest", "m.pkl")
    assert scan_bytes(b"PK\x05\x06" + bytes(18), "m.pkl").format == "zip"
