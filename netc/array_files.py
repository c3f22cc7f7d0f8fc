"""Reading arrays from `.npy`, `.npz` and `.safetensors` files with every size checked
before anything is allocated or decompressed.

A header may lie (an 80-byte `.npy` claiming 10^12 values) and an archive may be a zip
bomb (3 MB expanding to 3 GB). So: each array's header is read first and its claimed size
checked against the bytes the file (or zip member) really holds and against a limit;
archive members' declared sizes are checked before decompressing; and, when the caller
knows which arrays it wants (`expected`: name -> shape, `None` for a symbolic dim), an
array with an unexpected name or shape is not read at all: it comes back as a
*placeholder* of the claimed shape and dtype that holds no memory, so the caller's usual
checks report the mismatch in their own words.
"""

from __future__ import annotations

import json
import lzma
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from netc.dsl.errors import NetcError

Shape = Sequence[int | None]
# What a corrupt archive raises from zipfile and the decompressors: encrypted members
# (RuntimeError), unknown methods or versions (NotImplementedError), bad streams.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError, OSError,
               EOFError, ValueError, struct.error)
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors format's own bound on its JSON header
MAX_BYTES = 2**62  # no limit is larger: NumPy cannot describe larger arrays, even as placeholders

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16,
                       "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}


class ArrayFileError(NetcError):
    """An array file that is corrupt, lies about its sizes, or is over the limit."""


def placeholder(shape: Sequence[int], dtype: np.dtype, error: type = ArrayFileError, label: object = "") -> np.ndarray:
    """An array of `shape` and `dtype` that holds one element: for reporting, never for use."""
    try:
        return np.broadcast_to(np.zeros((), dtype), tuple(shape))
    except ValueError:  # (10**13, 10**13, 0): NumPy cannot describe it, though it holds no data
        raise error(f"cannot read {_what(error)}{label}: it claims shape {_shape(tuple(shape))}, which NumPy "
                    "cannot describe") from None


def read_npy(path: Path, limit: int, expected: Shape | None = None, error: type = ArrayFileError) -> np.ndarray:
    """One array from a `.npy` file."""
    limit = min(limit, MAX_BYTES)
    with _open(path, error) as f:
        size = path.stat().st_size
        shape, dtype, fortran = _header(f, path, error)
        want = _nbytes(shape, dtype)
        _check_size(path, shape, dtype, want, size - f.tell(), limit, error)
        if expected is not None and not _fits(shape, expected):
            return placeholder(shape, dtype, error, path)
        return _read_body(f, shape, dtype, fortran, path, error)


def read_npz(path: Path, limit: int, expected: Mapping[str, Shape] | None = None,
             error: type = ArrayFileError) -> dict[str, np.ndarray]:
    """Named arrays from a `.npz` archive; `expected` as in the module docstring."""
    limit = min(limit, MAX_BYTES)
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as err:
        raise error(f"cannot read {_what(error)}{path} as a .npz archive: {_reason(err)}") from None
    with archive:
        members = archive.infolist()
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise error(f"{path} would expand to {_bytes(declared)}, over the limit of {_bytes(limit)}",
                        None, ["an archive that expands far beyond its size is refused before it is read"])
        plans: list[tuple[str, zipfile.ZipInfo, tuple[int, ...], np.dtype, bool, bool]] = []
        for member in members:
            name = member.filename.removesuffix(".npy")
            if member.is_dir():
                continue
            if not member.filename.endswith(".npy"):  # np.load would give its raw bytes: never a tensor
                if expected is not None and name not in expected:
                    plans.append((name, member, (member.file_size,), np.dtype(np.uint8), False, False))
                    continue
                raise error(f"cannot read {_what(error)}{path}: member {member.filename} is not a .npy array",
                            None, ["save plain numeric arrays with numpy.savez"])
            try:
                with archive.open(member) as f:  # only the header is decompressed here
                    shape, dtype, fortran = _header(f, Path(f"{path}[{member.filename}]"), error)
                    offset = f.tell()
            except _ZIP_ERRORS as err:
                raise error(f"cannot read {_what(error)}{path} member {member.filename}: {_reason(err)}") from None
            label = Path(f"{path}[{member.filename}]")
            _check_size(label, shape, dtype, _nbytes(shape, dtype), member.file_size - offset, limit, error)
            wanted = expected is None or (name in expected and _fits(shape, expected[name]))
            plans.append((name, member, shape, dtype, fortran, wanted))
        arrays: dict[str, np.ndarray] = {}
        for name, member, shape, dtype, fortran, wanted in plans:
            if not wanted:
                arrays[name] = placeholder(shape, dtype, error, f"{path}[{name}]")
                continue
            try:
                with archive.open(member) as f:
                    _header(f, path, error)
                    arrays[name] = _read_body(f, shape, dtype, fortran, Path(f"{path}[{member.filename}]"), error)
            except _ZIP_ERRORS as err:
                raise error(f"cannot read {_what(error)}{path} member {member.filename}: {_reason(err)}") from None
        return arrays


def array_headers(path: Path, limit: int, error: type = ArrayFileError) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array of a `.npy` file (named by its stem) or `.npz` archive,
    from the headers alone, each claim checked against the bytes the file (or zip member)
    holds and against `limit`: a caller may then memory-map or read parts of them safely."""
    limit = min(limit, MAX_BYTES)
    if path.suffix.lower() != ".npz":
        with _open(path, error) as f:
            shape, dtype, _ = _header(f, path, error)
            _check_size(path, shape, dtype, _nbytes(shape, dtype), path.stat().st_size - f.tell(), limit, error)
            return {path.stem: (shape, dtype)}
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as err:
        raise error(f"cannot read {_what(error)}{path} as a .npz archive: {_reason(err)}") from None
    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            label = Path(f"{path}[{member.filename}]")
            if not member.filename.endswith(".npy"):
                raise error(f"cannot read {_what(error)}{path}: member {member.filename} is not a .npy array",
                            None, ["save plain numeric arrays with numpy.savez"])
            try:
                with archive.open(member) as f:  # only the header is decompressed
                    shape, dtype, _ = _header(f, label, error)
                    offset = f.tell()
            except _ZIP_ERRORS as err:
                raise error(f"cannot read {_what(error)}{path} member {member.filename}: {_reason(err)}") from None
            _check_size(label, shape, dtype, _nbytes(shape, dtype), member.file_size - offset, limit, error)
            found[member.filename.removesuffix(".npy")] = (shape, dtype)
    return found


def read_safetensors(path: Path, limit: int, expected: Mapping[str, Shape] | None = None,
                     error: type = ArrayFileError) -> dict[str, np.ndarray]:
    """Named tensors from a `.safetensors` file (8-byte header length, JSON header, data)."""
    limit = min(limit, MAX_BYTES)
    with _open(path, error) as f:
        size = path.stat().st_size
        raw = f.read(8)
        if len(raw) < 8:
            raise error(f"cannot read {_what(error)}{path} as safetensors: the file is too short")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise error(f"cannot read {_what(error)}{path} as safetensors: its header claims {_bytes(header_len)}, more than "
                        f"{'the file holds' if header_len > size - 8 else 'the format allows'}")
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError) as err:
            raise error(f"cannot read {_what(error)}{path} as safetensors: the header is not JSON ({_reason(err)})") from None
        if not isinstance(header, dict):
            raise error(f"cannot read {_what(error)}{path} as safetensors: the header is not a JSON object")
        data_start, data_size = 8 + header_len, size - 8 - header_len
        plans = []
        total = 0
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            shape, dtype, begin, end = _safetensors_entry(path, name, entry, error)
            want = _nbytes(shape, dtype)
            if end - begin != want or not 0 <= begin <= end <= data_size:
                raise error(f"cannot read {_what(error)}{path}: tensor '{name}' claims bytes {begin}..{end} for "
                            f"{_bytes(want)} of data, and the file holds {_bytes(data_size)} of data")
            if want > limit:  # even unexpected: no placeholder of a size no machine holds
                raise error(f"{path}: tensor '{name}' claims shape {_shape(shape)} ({_bytes(want)}), over the "
                            f"limit of {_bytes(limit)}")
            wanted = expected is None or (name in expected and _fits(shape, expected[name]))
            total += want if wanted else 0
            plans.append((name, shape, dtype, begin, wanted))
        if total > limit:
            raise error(f"{path} holds {_bytes(total)} of tensors, over the limit of {_bytes(limit)}")
        arrays: dict[str, np.ndarray] = {}
        for name, shape, dtype, begin, wanted in plans:
            if not wanted:
                arrays[name] = placeholder(shape, dtype, error, f"{path}[{name}]")
                continue
            f.seek(data_start + begin)
            arrays[name] = _read_body(f, shape, dtype, False, path, error)
        return arrays


def _safetensors_entry(path: Path, name: str, entry: object, error: type) -> tuple[tuple[int, ...], np.dtype, int, int]:
    if not isinstance(entry, dict):
        raise error(f"cannot read {_what(error)}{path}: the entry for '{name}' is not an object")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if code not in _SAFETENSORS_DTYPES:
        known = ", ".join(_SAFETENSORS_DTYPES)
        raise error(f"cannot read {_what(error)}{path}: tensor '{name}' has dtype {code!s:.40}, which netc does not load "
                    f"(NumPy has no such type)", None, [f"convert it to one of {known} before saving"])
    if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)):
        raise error(f"cannot read {_what(error)}{path}: the entry for '{name}' has no valid shape and data_offsets")
    return tuple(shape), np.dtype(_SAFETENSORS_DTYPES[code]), offsets[0], offsets[1]


# --------------------------------------------------------------------------- pieces
def _open(path: Path, error: type) -> IO[bytes]:
    try:
        return open(path, "rb")
    except (OSError, ValueError) as err:
        raise error(f"cannot read {_what(error)}{path}: {_reason(err)}") from None


def _header(f: IO[bytes], path: Path, error: type) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Shape, dtype and order from a `.npy` header, refusing Python objects."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        reader: Callable = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(f, max_header_size=2**16)
    except Exception as err:  # NumPy's header parser raises many types (TokenError...) for garbage
        if isinstance(err, MemoryError):
            raise
        raise error(f"cannot read {_what(error)}{path} as a NumPy file: {_reason(err)}", None,
                    ["save plain numeric arrays with numpy.save / numpy.savez"]) from None
    if dtype.hasobject:
        raise error(f"cannot read {_what(error)}{path}: it holds Python objects, which netc does not load", None,
                    ["save plain numeric arrays with numpy.save / numpy.savez"])
    return tuple(shape), dtype, bool(fortran)


def _check_size(path: Path, shape: tuple[int, ...], dtype: np.dtype, want: int, have: int, limit: int,
                error: type) -> None:
    if want > limit:
        raise error(f"{path} holds an array of shape {_shape(shape)} ({_bytes(want)}), over the limit of "
                    f"{_bytes(limit)}")
    if want > have:
        raise error(f"cannot read {_what(error)}{path}: its header claims shape {_shape(shape)} ({_bytes(want)} of "
                    f"{dtype}), but the file holds only {_bytes(max(have, 0))} of data")


def _read_body(f: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, fortran: bool, path: Path,
               error: type) -> np.ndarray:
    nbytes = _nbytes(shape, dtype)
    buffer = np.empty(nbytes, np.uint8)  # read in place: one copy of the data, and writable
    view, done = memoryview(buffer), 0
    while done < nbytes:
        got = f.readinto(view[done:])
        if not got:
            raise error(f"cannot read {_what(error)}{path}: the data ends after {_bytes(done)} of {_bytes(nbytes)}")
        done += got
    array = buffer.view(dtype) if nbytes else np.empty(0, dtype)
    try:
        return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
    except ValueError:  # an empty array whose other dims overflow NumPy's size
        raise error(f"cannot read {_what(error)}{path}: it claims shape {_shape(shape)}, which NumPy "
                    "cannot describe") from None


def _what(error: type) -> str:
    """How a message names the file: `weight file w.npz`, `input file x.npy`."""
    return {"NetcWeightsError": "weight file ", "NetcInputError": "input file "}.get(error.__name__, "")


def _fits(shape: tuple[int, ...], expected: Shape) -> bool:
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))


def _nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: a lying header cannot overflow this


def _shape(shape: tuple[int, ...]) -> str:
    text = str(list(shape))
    return text if len(text) <= 80 else text[:77] + "..."


def _bytes(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0][:200] \
        or type(err).__name__
