"""Write an ONNX model whose weights are produced one at a time, straight into the file.

A model built in memory holds every weight twice (the NumPy arrays and the protobuf's
copies) and serialising it makes a third copy: 3x the model's size before the first byte
is written. Here the graph is lowered without its parameter initializers, and each
parameter is drawn (or looked up), written with `file.write(memoryview)` and dropped (a large one piece by
piece), so the peak is a few megabytes of buffers, not the model. The bytes are exactly those of
`ModelProto.SerializeToString()` for the complete model: protobuf writes the fields of a
message in field-number order and a length-delimited field is `tag, length, bytes`, so
the lengths are computed from the tensors' shapes before any data exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx

_MODEL_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_GRAPH_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_TENSOR_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number
_LEN = 2  # wire type of length-delimited fields


@dataclass(frozen=True)
class TensorSpec:
    """A parameter to write: its name, shape and (NumPy) dtype; the values come later."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count * np.dtype(self.dtype).itemsize


def write_model(model: onnx.ModelProto, params: Sequence[TensorSpec],
                value_of: Callable[[TensorSpec], np.ndarray | Iterable[np.ndarray]], f: BinaryIO) -> int:
    """Write `model` with `params` as its first initializers (before the model's own) to `f`;
    `value_of(spec)` is called once per parameter, in order, just before its bytes are
    written: it gives the array, or its flattened values piece by piece (arrays of the
    parameter's dtype, consumed in order, each written before the next is asked for).
    Returns the number of bytes written."""
    headers = [_tensor_header(spec) for spec in params]
    entries_len = sum(len(h) + spec.nbytes for h, spec in zip(headers, params))

    graph_bytes = model.graph.SerializeToString()
    g_before, g_rest = _split(graph_bytes, _GRAPH_INITIALIZER)  # fields before the initializers
    model_bytes = _model_without_graph(model).SerializeToString()
    m_before, m_after = _split(model_bytes, _MODEL_GRAPH)

    written = 0

    def put(data: bytes | memoryview) -> None:
        nonlocal written
        f.write(data)
        written += len(data)

    put(m_before)
    graph_len = len(g_before) + entries_len + len(g_rest)
    put(_key(_MODEL_GRAPH) + _varint(graph_len))
    put(g_before)
    for header, spec in zip(headers, params):
        put(header)
        _write_values(put, spec, value_of(spec))
    put(g_rest)
    put(m_after)
    return written


def write_model_external(model: onnx.ModelProto, params: Sequence[TensorSpec],
                         value_of: Callable[[TensorSpec], np.ndarray | Iterable[np.ndarray]], f: BinaryIO,
                         data: BinaryIO, location: str, align: int = 4096) -> int:
    """Write `model` with `params` as its first initializers, their bytes in `data` (ONNX
    external data: `location` is the data file's name relative to the model's folder), each
    at an offset that is a multiple of `align`. `value_of` is called as by `write_model`.
    onnxruntime then reads each weight from the data file when it needs it, instead of
    holding the whole serialised model in memory while it builds the session.
    Returns the number of bytes written to `data`."""
    offsets = []
    end = 0
    for spec in params:
        offset = -(-end // align) * align
        offsets.append(offset)
        end = offset + spec.nbytes
    out = onnx.ModelProto()
    out.CopyFrom(model)  # cheap: the parameters are not in it
    own = list(out.graph.initializer)
    out.graph.ClearField("initializer")
    for spec, offset in zip(params, offsets):
        tensor = out.graph.initializer.add()
        tensor.name = spec.name
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
        tensor.dims.extend(spec.shape)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(spec.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    out.graph.initializer.extend(own)
    f.write(out.SerializeToString())
    del out, own
    written = 0

    def put(chunk: bytes | memoryview) -> None:
        nonlocal written
        data.write(chunk)
        written += len(chunk)

    for spec, offset in zip(params, offsets):
        put(bytes(offset - written))  # padding up to the aligned offset
        _write_values(put, spec, value_of(spec))
    return written


def external_writer(data_path: str | Path) -> Callable[..., int]:
    """A function like `write_model` that puts the parameters in `data_path` (a file beside
    the model) as external data."""
    data_path = Path(data_path)

    def write(model: onnx.ModelProto, params: Sequence[TensorSpec],
              value_of: Callable[[TensorSpec], np.ndarray | Iterable[np.ndarray]], f: BinaryIO) -> int:
        with open(data_path, "wb") as data:
            return write_model_external(model, params, value_of, f, data, data_path.name)

    return write


def _write_values(put: Callable[[memoryview], None], spec: TensorSpec,
                  values: np.ndarray | Iterable[np.ndarray]) -> None:
    """Write one parameter's bytes, given whole or piece by piece, checking their size."""
    if isinstance(values, np.ndarray):
        array = _little_endian(values, spec)
        put(memoryview(array).cast("B"))
        return
    done = 0
    for piece in values:
        piece = _little_endian_piece(piece, spec)
        put(memoryview(piece).cast("B"))
        done += piece.nbytes
    if done != spec.nbytes:
        raise ValueError(f"parameter {spec.name}: got {done} bytes, declared {spec.nbytes}")


def _tensor_header(spec: TensorSpec) -> bytes:
    """The initializer's field key and length, the tensor's dims, type and name, and the
    key and length of its raw data: everything but the data itself."""
    proto = onnx.TensorProto()
    proto.name = spec.name
    proto.data_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    proto.dims.extend(spec.shape)
    body = proto.SerializeToString() + _key(_TENSOR_RAW_DATA) + _varint(spec.nbytes)
    return _key(_GRAPH_INITIALIZER) + _varint(len(body) + spec.nbytes) + body


def _little_endian(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != spec.shape or array.dtype != np.dtype(spec.dtype):
        raise ValueError(f"parameter {spec.name}: got {array.dtype}{list(array.shape)}, "
                         f"declared {np.dtype(spec.dtype)}{list(spec.shape)}")
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _little_endian_piece(piece: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if piece.dtype != np.dtype(spec.dtype):
        raise ValueError(f"parameter {spec.name}: a piece of dtype {piece.dtype}, declared {np.dtype(spec.dtype)}")
    return np.ascontiguousarray(piece.reshape(-1), dtype=piece.dtype.newbyteorder("<"))


def _model_without_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # cheap: the parameters are not in it
    copy.ClearField("graph")
    return copy


def _split(data: bytes, number: int) -> tuple[bytes, bytes]:
    """Split canonically serialised `data` before its first field numbered `number` or
    higher (fields are in ascending order, so this is where field `number` goes)."""
    for start, field in _fields(data):
        if field >= number:
            return data[:start], data[start:]
    return data, b""


def _fields(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset, field number) of each top-level field of a serialised message."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _read_varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) are not used by onnx.proto
            raise ValueError(f"unexpected wire type {wire}")
        yield start, key >> 3


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _key(number: int) -> bytes:
    return _varint((number << 3) | _LEN)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
