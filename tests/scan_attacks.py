"""Hand-made files on which an older scanner said ok while joblib.load / pickle.load ran code.

    build(name, directory, payload) -> Path     # one attack file (plus any file it needs)
    ATTACKS: name -> the loaders that run its payload

`payload` is pickle opcodes leaving one object on the stack (tests/corpus.py `payload`),
never run here: the files are written byte by byte.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

#: attack name -> loaders that run the payload ("joblib", "pickle")
ATTACKS: dict[str, tuple[str, ...]] = {
    "frame": ("joblib", "pickle"),
    "computed_shape_key": ("joblib",),
    "slotstate_shape": ("joblib",),
    "legacy_ndarray_wrapper": ("joblib",),
    "utf16_safetensors": ("joblib", "pickle"),
    "safetensors_pickle_polyglot": ("joblib", "pickle"),
}


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _wrapper_state(shape: bytes, extra: bytes = b"") -> bytes:
    """A NumpyArrayWrapper for uint8 data, as joblib writes it, then its state dict."""
    return (
        _g("joblib.numpy_pickle", "NumpyArrayWrapper")
        + b")\x81"  # EMPTY_TUPLE NEWOBJ
        + b"}("  # EMPTY_DICT MARK
        + _u("subclass")
        + _g("numpy", "ndarray")
        + _u("shape")
        + shape
        + _u("order")
        + _u("C")
        + _u("dtype")
        + _g("numpy", "dtype")
        + _u("u1")
        + b"\x89\x88\x87R"  # False True TUPLE3 REDUCE
        + _u("allow_mmap")
        + b"\x89"
        + extra
        + b"u"  # SETITEMS
    )


def _shape(n: int) -> bytes:
    return b"J" + struct.pack("<i", n) + b"\x85"  # BININT TUPLE1


def frame(payload: bytes) -> bytes:
    """joblib reads the array's bytes from the file *after* the current frame, then runs the
    rest of the frame: a scanner that skips the array inside the frame skips the payload."""
    hidden = payload + b"0"
    in_frame = _wrapper_state(_shape(len(hidden))) + b"b" + hidden
    array = b"N" * len(hidden)  # what joblib reads as the array (and a naive scanner parses)
    return b"\x80\x04\x95" + struct.pack("<Q", len(in_frame)) + in_frame + array + b"."


def computed_shape_key(payload: bytes) -> bytes:
    """A second "shape" key, computed at load time (rot13 of "funcr"), replaces the first:
    joblib reads 1 byte of array and runs the rest; a scanner that drops the key skips it."""
    hidden = payload + b"0"
    key = _g("_codecs", "encode") + b"(" + _u("funcr") + _u("rot13") + b"tR"
    state = _wrapper_state(_shape(1 + len(hidden)), extra=key + _shape(1))
    return b"\x80\x02" + state + b"b" + b"\x00" + hidden + b"."


def slotstate_shape(payload: bytes) -> bytes:
    """BUILD with (state, slotstate): the slot state, an OrderedDict filled by SETITEMS, sets
    shape=(1,) after the dict set the other one."""
    hidden = payload + b"0"
    state = _wrapper_state(_shape(1 + len(hidden)))
    slots = _g("collections", "OrderedDict") + b")R(" + _u("shape") + _shape(1) + b"u"
    return b"\x80\x02" + state + slots + b"\x86b" + b"\x00" + hidden + b"."


def legacy_ndarray_wrapper(payload: bytes, directory: Path) -> bytes:
    """joblib's legacy NDArrayWrapper: joblib.load calls numpy.load(<file named in the
    pickle>, allow_pickle=True), and numpy.load unpickles a file that is not .npy."""
    (directory / "weights.npy").write_bytes(payload + b".")
    return (
        b"\x80\x02"
        + _g("joblib.numpy_pickle_compat", "NDArrayWrapper")
        + b")\x81}("
        + _u("filename")
        + _u("weights.npy")
        + _u("subclass")
        + _g("numpy", "ndarray")
        + _u("allow_mmap")
        + b"\x89ub"
        + b"."
    )


def _v_prefix(header: bytes) -> bytes:
    """8 length bytes that begin a pickle: 'V' (UNICODE, a text line) + 0x01 = 342."""
    assert len(header) == 0x156
    return (0x156).to_bytes(8, "little")  # b"V\x01\0\0\0\0\0\0"


def utf16_safetensors(payload: bytes) -> bytes:
    """A safetensors-looking header in UTF-16 (json.loads(bytes) accepts it, the safetensors
    library does not); the same bytes are a pickle: UNICODE line, payload, POP, STOP."""
    header = ("{" + " " * 169 + "}").encode("utf-16-le")
    return _v_prefix(header) + header + b"\n" + payload + b"0."


def safetensors_pickle_polyglot(payload: bytes) -> bytes:
    """A strictly valid safetensors file (one U8 tensor) that is also a pickle."""
    body = b"\n" + payload + b"0."
    text = json.dumps(
        {"x": {"dtype": "U8", "shape": [len(body)], "data_offsets": [0, len(body)]}},
        separators=(",", ":"),
    )
    header = text.ljust(0x156).encode()
    return _v_prefix(header) + header + body


def build(name: str, directory: Path, payload: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if name == "legacy_ndarray_wrapper":
        data = legacy_ndarray_wrapper(payload, directory)
    else:
        data = globals()[name](payload)
    suffix = ".safetensors" if "safetensors" in name else ".joblib"
    path = directory / f"{name}{suffix}"
    path.write_bytes(data)
    return path


def duplicated_zip(path: Path, copies: int, *, same_name: bool = True) -> Path:
    """A small zip whose central directory lists one compressible member `copies` times."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.pkl", b"N0" * (1 << 19) + b"N.")
    data = path.read_bytes()
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12 : eocd + 20])
    entry = data[cd_offset : cd_offset + cd_size]
    entries = []
    for i in range(copies):
        if same_name:
            entries.append(entry)
        else:
            name = f"{i:05d}".encode()[-5:]
            entries.append(entry[:46] + name + entry[46 + 5 :])  # same length as "a.pkl"
    cd = b"".join(entries)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, copies, copies, len(cd), cd_offset, 0)
    path.write_bytes(data[:cd_offset] + cd + end)
    return path


def memory_bomb() -> bytes:
    """15 KB that decompress to 15 million one-byte EMPTY_LIST opcodes (under the ratio
    cap's 16 MiB floor): a symbolic stack of 15 million lists is gigabytes."""
    return zlib.compress(b"\x80\x02" + b"]" * 15_000_000 + b".", 9)
