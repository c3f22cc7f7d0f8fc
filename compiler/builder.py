"""`Builder`: how ops add themselves to the graph under construction.

It names layer instances and parameters (stable, readable, unique), enforces the resource
limits, runs each op's shape rule as the op is emitted, and turns failures into errors
located at the source span of the call being elaborated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netc.compiler import dims as D
from netc.compiler.dims import Dim
from netc.compiler.ir import DType, Graph, Init, Op, Param, TensorType, Value
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.ops.registry import REGISTRY
from netc.dsl.errors import NetcLimitError, NetcNameError, NetcShapeError, NetcTypeError, Span


@dataclass
class _Scope:
    prefix: str
    counters: dict[str, int] = field(default_factory=dict)

    def next_label(self, kind: str) -> str:
        n = self.counters.get(kind, 0)
        self.counters[kind] = n + 1
        return f"{self.prefix}{kind}{n}"


class Builder:
    """Appends ops to `graph`; one instance per graph (regions get their own)."""

    def __init__(self, graph: Graph, limits: Limits = DEFAULT_LIMITS, parent: Builder | None = None,
                 prefix: str = ""):
        self.graph = graph
        self.limits = limits
        self.parent = parent
        self.span: Span | None = None  # span of the call being built
        self.label = ""  # label of the layer instance being built
        self._scopes = [_Scope(prefix)]  # a region's builder names its layers under its op's label
        self._value_names: dict[str, int] = {}
        self._param_bytes = 0 if parent is None else parent._param_bytes
        self._op_count = 0

    # ------------------------------------------------------------------ naming and scopes
    def push_scope(self, kind: str, name: str | None = None) -> str:
        """Enter a block instance; returns its label (e.g. `bottleneck3`)."""
        label = self._scoped(name) if name else self._scopes[-1].next_label(kind)
        self._scopes.append(_Scope(label + "."))
        return label

    def pop_scope(self) -> None:
        self._scopes.pop()

    def _scoped(self, name: str) -> str:
        return self._scopes[-1].prefix + name

    def begin_layer(self, kind: str, span: Span | None, name: str | None = None) -> None:
        self.span = span
        self.label = self._scoped(name) if name else self._scopes[-1].next_label(kind)

    def fresh_name(self, hint: str) -> str:
        n = self._value_names.get(hint, 0)
        self._value_names[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    # ------------------------------------------------------------------ errors
    def error(self, message: str, *hints: str, cls: type = NetcShapeError) -> NetcShapeError:
        return cls(message, self.span, hints)

    def type_error(self, message: str, *hints: str) -> NetcTypeError:
        return NetcTypeError(message, self.span, hints)

    def static(self, d: Dim, what: str) -> int:
        """A dim that must be known at compile time (e.g. a dense layer's input width)."""
        if isinstance(d, int):
            return d
        raise self.error(f"{what} must be known at compile time; got the symbolic dim {d}",
                         f"give it a value with `--set {sorted(D.symbols(d))[0]}=...`")

    def axis(self, axis: int, rank: int, what: str = "axis") -> int:
        if not -rank <= axis < rank:
            raise self.error(f"{what} {axis} is out of range for a rank-{rank} tensor")
        return axis % rank

    # ------------------------------------------------------------------ parameters
    def param(self, local: str, shape: Sequence[int], dtype: DType, init: Init,
              fan_in: int = 1, fan_out: int = 1, trainable: bool = True) -> Value:
        name = f"{self.label}.{local}"
        if name in self.root.graph.param_values:
            raise NetcNameError(f"parameter name '{name}' is used twice", self.span,
                                ["give one of the layers another `name=`"])
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape, dtype=np.float64))
        nbytes = size * dtype.itemsize
        root = self.root
        if root._param_bytes + nbytes > self.limits.max_param_bytes:
            raise NetcLimitError(
                f"parameter '{name}' {list(shape)} would bring the model to "
                f"{(root._param_bytes + nbytes) / 2**30:.1f} GiB of parameters, over the limit of "
                f"{self.limits.max_param_bytes / 2**30:.1f} GiB", self.span,
                ["check the layer sizes, or raise the limit with --max-param-bytes"])
        root._param_bytes += nbytes
        param = Param(name, shape, dtype, init, max(fan_in, 1), max(fan_out, 1), trainable, self.span)
        value = Value(name, TensorType(dtype, shape), None, param)
        root.graph.params.append(param)
        root.graph.param_values[name] = value
        return value

    @property
    def root(self) -> Builder:
        return self if self.parent is None else self.parent.root

    # ------------------------------------------------------------------ ops
    def emit(self, kind: str, inputs: Sequence[Value | None], attrs: dict[str, Any],
             regions: tuple[Graph, ...] = (), names: Sequence[str] | None = None) -> list[Value]:
        """Run `kind`'s shape rule on `inputs` and append the op; returns its outputs."""
        root = self.root
        root._op_count += 1
        if root._op_count > self.limits.max_ops:
            raise NetcLimitError(f"the network has more than {self.limits.max_ops} ops after unrolling",
                                 self.span, ["a compile-time `for` may be running away"])
        opdef = REGISTRY[kind]
        in_types = [v.type if v is not None else None for v in inputs]
        if regions:
            out_types = opdef.infer_regions(attrs, in_types, regions, self)
        else:
            out_types = opdef.infer(attrs, in_types, self)
        for t in out_types:
            self.check_type(t)
        op = Op(kind, list(inputs), [], dict(attrs), self.span, regions, self.label)
        hint = names or [self.label.rsplit(".", 1)[-1] or kind] * len(out_types)
        op.outputs = [Value(self.fresh_name(h), t, op) for h, t in zip(hint, out_types)]
        self.graph.ops.append(op)
        return op.outputs

    def check_type(self, t: TensorType) -> None:
        if t.rank > self.limits.max_rank:
            raise NetcLimitError(f"tensor rank {t.rank} exceeds the limit of {self.limits.max_rank}", self.span)
        static = 1
        for d in t.shape:
            if isinstance(d, int):
                if d < 0:
                    raise self.error(f"negative dimension in {t}")
                static *= d
        if static > self.limits.max_tensor_elements:
            raise NetcLimitError(f"tensor {t} has {static:.3g} elements, over the limit", self.span)

    def constant(self, value: np.ndarray | float | int, dtype: DType) -> Value:
        array = np.asarray(value, dtype=dtype.numpy)
        return self.emit("constant", [], {"value": array})[0]
