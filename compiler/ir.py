"""The netc IR: typed values, ops with attributes and source spans, parameters, and graphs
whose ops may own nested regions (a recurrence's step, a loop body).

Values are compared by identity (two ops may produce values of equal type that are
still different tensors); everything else is a frozen value type.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto

from netc.compiler.dim_bounds import MinSizes
from netc.compiler.dims import Dim, shape_str
from netc.dsl.errors import Span


class DType(enum.Enum):
    """Element types netc tensors may have; `value` is the spelling in `.net` files."""

    f16 = "f16"
    bf16 = "bf16"
    f32 = "f32"
    f64 = "f64"
    i8 = "i8"
    i32 = "i32"
    i64 = "i64"
    u8 = "u8"
    bool = "bool"

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.bf16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in (DType.i8, DType.i32, DType.i64, DType.u8)

    @property
    def numpy(self) -> np.dtype:
        if self is DType.bf16:
            raise TypeError("NumPy has no bfloat16")
        return np.dtype(_NUMPY[self])

    @property
    def onnx(self) -> int:
        return _ONNX[self]

    @property
    def itemsize(self) -> int:
        return 2 if self is DType.bf16 else self.numpy.itemsize

    @staticmethod
    def from_numpy(dtype: np.dtype) -> DType:
        for d, name in _NUMPY.items():
            if np.dtype(name) == dtype:
                return d
        raise KeyError(str(dtype))


_NUMPY = {DType.f16: "float16", DType.f32: "float32", DType.f64: "float64", DType.i8: "int8",
          DType.i32: "int32", DType.i64: "int64", DType.u8: "uint8", DType.bool: "bool"}
_ONNX = {DType.f16: TensorProto.FLOAT16, DType.bf16: TensorProto.BFLOAT16,
         DType.f32: TensorProto.FLOAT, DType.f64: TensorProto.DOUBLE, DType.i8: TensorProto.INT8,
         DType.i32: TensorProto.INT32, DType.i64: TensorProto.INT64, DType.u8: TensorProto.UINT8,
         DType.bool: TensorProto.BOOL}


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.value}{shape_str(self.shape)}"


@dataclass(eq=False, slots=True)
class Value:
    """A tensor in the IR. `producer` is the op that computes it (None for graph inputs and
    parameters)."""

    name: str
    type: TensorType
    producer: Op | None = None
    param: Param | None = None

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(frozen=True, slots=True)
class Init:
    """How a parameter is initialised: a named scheme and its arguments."""

    scheme: str  # glorot_uniform | glorot_normal | he_uniform | he_normal | normal | uniform | zeros | ones | constant
    #              | identity | orthogonal | array
    args: tuple[tuple[str, float], ...] = ()
    values: tuple[float, ...] = ()  # "array": the elements, row-major
    shape: tuple[int, ...] = ()  # "array": the nesting of the list written in the source

    def arg(self, name: str, default: float) -> float:
        return dict(self.args).get(name, default)

    def __str__(self) -> str:
        if self.scheme == "array":
            shown = ", ".join(f"{v:g}" for v in self.values[:6]) + (", ..." if len(self.values) > 6 else "")
            return f"array{list(self.shape)}[{shown}]"
        if not self.args:
            return self.scheme
        return f"{self.scheme}({', '.join(f'{k}={v:g}' for k, v in self.args)})"


@dataclass(frozen=True, slots=True)
class Param:
    """A named, learned (or stored) tensor; `fan_in`/`fan_out` feed the initialisers."""

    name: str
    shape: tuple[int, ...]
    dtype: DType
    init: Init
    fan_in: int = 1
    fan_out: int = 1
    trainable: bool = True
    span: Span | None = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(eq=False, slots=True)
class Op:
    """One operation: its registry `kind`, operands, results, attributes, the source span that
    created it, and nested `regions` for ops that own a body."""

    kind: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any]
    span: Span | None
    regions: tuple[Graph, ...] = ()
    label: str = ""  # human name of the layer instance (e.g. "bottleneck3.conv2d1")

    def __repr__(self) -> str:
        ins = ", ".join("_" if v is None else f"%{v.name}" for v in self.inputs)
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        return f"{outs} = {self.kind}({ins}) {self.attrs}"


@dataclass(eq=False, slots=True)
class Graph:
    """A network or a region body. `outputs` keeps names in declaration order."""

    name: str
    inputs: list[Value] = field(default_factory=list)
    outputs: dict[str, Value] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    param_values: dict[str, Value] = field(default_factory=dict)
    source: str = ""  # the .net file it came from
    span: Span | None = None
    # The least size of each symbolic dim the network needs (`T >= 5` for a valid conv of
    # width 5), with the span that asked for it; see compiler/dim_bounds.py.
    min_sizes: MinSizes = field(default_factory=lambda: MinSizes())

    def walk(self) -> Iterator[Op]:
        """Every op, depth first, including those inside nested regions."""
        for op in self.ops:
            yield op
            for region in op.regions:
                yield from region.walk()

    def all_params(self) -> list[Param]:
        return list(self.params)

    def dump(self) -> str:
        lines = [f"graph {self.name}({', '.join(repr(v) for v in self.inputs)})"]
        lines += [f"  param {p.name}: {p.dtype.value}{list(p.shape)} = {p.init}" for p in self.params]
        lines += [f"  {op!r}" for op in self.ops]
        lines += [f"  output {k} = %{v.name}" for k, v in self.outputs.items()]
        return "\n".join(lines)
