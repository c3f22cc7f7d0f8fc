"""`Builder`: how ops add themselves to the graph under construction.

It names layer instances and parameters (stable, readable, unique), enforces the resource
limits, runs each op's shape rule as the op is emitted, and turns failures into errors
located at the source span of the call being elaborated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netc.compiler import dims as D
from netc.compiler.dims import Dim
from netc.compiler.ir import DType, Graph, Init, Op, Param, TensorType, Value
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.ops.registry import REGISTRY
from netc.compiler.values import count_text
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
        self._tying: list[Tying] = []  # calls of shared layers in progress (kept at the root)

    # ------------------------------------------------------------------ naming and scopes
    def push_scope(self, kind: str, name: str | None = None, label: str | None = None) -> str:
        """Enter a block instance; returns its label (e.g. `bottleneck3`). `label`, when
        given, is used as it is (a shared block instance keeps the label it was made with)."""
        label = label or (self._scoped(name) if name else self._scopes[-1].next_label(kind))
        self._scopes.append(_Scope(label + "."))
        return label

    def pop_scope(self) -> None:
        self._scopes.pop()

    def _scoped(self, name: str) -> str:
        return self._scopes[-1].prefix + name

    def begin_layer(self, kind: str, span: Span | None, name: str | None = None) -> None:
        self.span = span
        self.label = self._scoped(name) if name else self._scopes[-1].next_label(kind)

    def next_label(self, kind: str, name: str | None = None) -> str:
        """The label a new layer or block instance of `kind` gets here (taking its number)."""
        return self._scoped(name) if name else self._scopes[-1].next_label(kind)

    def begin_shared(self, label: str, span: Span | None) -> None:
        """Build a call of a shared layer: its label is the one it was made with."""
        self.span = span
        self.label = label

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
        """The parameter `<layer label>.<local>`: a new one, or, in a call of a shared layer
        after its first, the one that call made (checked to have the same shape and dtype)."""
        return self.named_param(f"{self.label}.{local}", shape, dtype, init, fan_in, fan_out, trainable)

    def free_param(self, name: str, shape: Sequence[int], dtype: DType, init: Init, fan_in: int,
                   fan_out: int) -> Value:
        """A `param` declaration: named `<block instance>.<name>` (just `name` in a network)."""
        return self.named_param(self._scoped(name), shape, dtype, init, fan_in, fan_out, True,
                                ["a `param` declared in a loop body is declared again by every iteration: "
                                 "declare it in a block that the loop calls"])

    def named_param(self, name: str, shape: Sequence[int], dtype: DType, init: Init, fan_in: int = 1,
                    fan_out: int = 1, trainable: bool = True, hints: Sequence[str] = ()) -> Value:
        root = self.root
        shape = tuple(int(s) for s in shape)
        existing = root.graph.param_values.get(name)
        if existing is not None:
            tying = next((t for t in reversed(root._tying) if t.owns(name)), None)
            if tying is None or name in tying.seen:
                raise NetcNameError(f"parameter name '{name}' is used twice", self.span,
                                    list(hints) or ["give one of the layers another `name=`"])
            tying.seen.add(name)
            return tying.reuse(existing, TensorType(dtype, shape), self.span)
        for tying in root._tying:
            if tying.owns(name):
                if not tying.first_call:
                    raise NetcNameError(f"shared layer '{tying.label}': this call makes parameter '{name}', "
                                        f"which its first call did not make (first call at {tying.first})",
                                        self.span, ["every call of a shared layer must use the same parameters"])
                tying.seen.add(name)
        check_init(init, shape, name, self.span)
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: sizes far beyond float range stay exact
        if root._param_bytes + nbytes > self.limits.max_param_bytes:
            dims = "[" + ", ".join(count_text(d) for d in shape) + "]"
            raise NetcLimitError(
                f"parameter '{name}' {dims} would bring the model to "
                f"{_gib(root._param_bytes + nbytes)} of parameters, over the limit of "
                f"{_gib(self.limits.max_param_bytes)}", self.span,
                ["check the layer sizes, or raise the limit with --max-param-bytes"])
        root._param_bytes += nbytes
        param = Param(name, shape, dtype, init, max(fan_in, 1), max(fan_out, 1), trainable, self.span)
        value = Value(name, TensorType(dtype, shape), None, param)
        root.graph.params.append(param)
        root.graph.param_values[name] = value
        return value

    def tying(self, label: str, first: Span | None, first_call: bool) -> Tying:
        """Enter a call of the shared layer `label` (leave with `untie`)."""
        tying = Tying(label, first, first_call)
        self.root._tying.append(tying)
        return tying

    def untie(self) -> None:
        self.root._tying.pop()

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
            shown = f"{static:.3g}" if static.bit_length() <= 1000 else count_text(static)
            raise NetcLimitError(f"tensor {_type_text(t)} has {shown} elements, over the limit", self.span)
        for d in t.shape:  # a symbolic dim's coefficients become int64 constants in the model
            if isinstance(d, D.Sym) and any(abs(c) > _INT64_MAX for _, c in d.terms):
                raise NetcLimitError(f"dimension {_dim_text(d)} has a coefficient beyond the int64 range",
                                     self.span)
        for d in t.shape:  # every symbolic dim is >= 1 above the least sizes the network records
            self.root.graph.min_sizes.require(d, self.span)

    def constant(self, value: np.ndarray | float | int, dtype: DType) -> Value:
        """A compile-time tensor of `dtype`; a number the dtype cannot hold is an error, never a
        wrapped integer or an infinity."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = self._scalar(value, dtype)
        array = np.asarray(value, dtype=dtype.numpy)
        return self.emit("constant", [], {"value": array})[0]

    def _scalar(self, value: int | float, dtype: DType) -> np.generic:
        shown = count_text(value) if isinstance(value, int) else f"{value:g}"
        if dtype.is_int:
            info = np.iinfo(dtype.numpy)
            if isinstance(value, float) or not info.min <= value <= info.max:
                raise self.type_error(f"the number {shown} is out of range for {dtype.value} "
                                      f"({info.min}..{info.max})")
            return dtype.numpy.type(value)
        if not dtype.is_float or dtype is DType.bf16:
            raise self.type_error(f"cannot combine a number with a {dtype.value} tensor",
                                  "cast(x, f32) to compute with numbers")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.type_error(f"the number {shown} is not finite; compile-time arithmetic overflowed")
        with np.errstate(over="ignore"):
            try:
                scalar = dtype.numpy.type(value)
            except OverflowError:  # an int beyond float64
                scalar = dtype.numpy.type(np.inf)
        if not np.isfinite(scalar):
            largest = np.finfo(dtype.numpy).max
            raise self.type_error(f"the number {shown} is out of range for {dtype.value} "
                                  f"(largest finite magnitude {float(largest):g})")
        return scalar


_INT64_MAX = 2**63 - 1


@dataclass
class Tying:
    """One call of a shared layer: parameters under `label` that already exist are its own,
    made by its first call, and are reused, each once per call."""

    label: str
    first: Span | None  # where the first call was made
    first_call: bool
    seen: set[str] = field(default_factory=set)

    def owns(self, name: str) -> bool:
        return name.startswith(self.label + ".")

    def reuse(self, value: Value, want: TensorType, span: Span | None) -> Value:
        if value.type != want:
            where = f" (first call at {self.first})" if self.first else ""
            cls = NetcTypeError if value.type.shape == want.shape else NetcShapeError
            raise cls(f"shared layer '{self.label}': this call needs parameter '{value.name}' as {want}, but "
                      f"its first call made it {value.type}{where}", span,
                      ["a shared layer's calls must fit the same parameters: give them inputs of the same "
                       "width and dtype, or make separate layers"])
        return value


def check_init(init: Init, shape: tuple[int, ...], name: str, span: Span | None) -> None:
    """Initialisers that only fit some shapes: a list of values must have the parameter's
    shape; identity and orthogonal need a matrix (or a kernel flattened to one)."""
    dims = "[" + ", ".join(count_text(d) for d in shape) + "]"
    if init.scheme == "array":
        flat_fits = len(init.shape) == 1 and len(shape) == 1
        if init.shape != shape and not (flat_fits and init.shape[0] == shape[0]):
            raise NetcShapeError(f"the initial values {list(init.shape)} do not fit parameter '{name}' {dims}",
                                 span, [f"give {math.prod(shape)} values, nested as {dims}"])
    elif init.scheme in ("identity", "orthogonal") and len(shape) < 2:
        raise NetcShapeError(f"the {init.scheme} initialiser needs a matrix; parameter '{name}' is {dims}", span,
                             ["use it for weight matrices (weight_init=, recurrent_init=), not biases"])


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes.bit_length() <= 1000 else f"{count_text(nbytes)} bytes"


def _dim_text(d: Dim) -> str:
    return str(d) if len(str(d)) <= 80 else str(d)[:77] + "..."


def _type_text(t: TensorType) -> str:
    """A type for a message, with dims too long to read elided."""
    dims = [count_text(d) if isinstance(d, int) else _dim_text(d) for d in t.shape]
    return f"{t.dtype.value}[{', '.join(dims)}]"
