"""Parameters as values: free `param` declarations, shared layers, and reading a shared
layer's parameters as tensors.

    param w: f32[3 * d] = normal(0.02)      # a learned tensor of the block or network
    emb = shared(embed, V, 64)              # a layer instance: every call uses its parameters
    x = ids -> emb                          # embed(ids, V, 64), parameters made by this first call
    logits = h @ transpose(emb.weight)      # its table as a tensor (tied output projection)
    tower = shared(encoder, width=64)       # a block instance; `tower.dense0.weight` reads one of its own

A shared layer is named when it is made (`embed0`, or `name=`), in the scope where it is
made; its parameters are made by its first call, and later calls reuse them, checked to
have the same shapes and dtypes (`netc.compiler.builder.Tying`). Parameters exist once in
the graph, so `netc params` and weight files list each once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType, Value
from netc.compiler.ops.registry import Arg
from netc.compiler.values import BlockFn, Builtin, Intrinsic, convert, describe
from netc.dsl import ast
from netc.dsl.errors import NetcNameError, NetcShapeError, NetcTypeError, Span, did_you_mean

DEFAULT_INIT = Init("glorot_uniform")


@dataclass(eq=False)
class SharedLayer:
    """A layer or block instance made by `shared(...)`: calls add their arguments in front of
    the stored ones (`x -> enc` is `enc(x)`) and all use the instance's parameters."""

    func: Builtin | BlockFn
    args: list[tuple[Any, Span]]
    kwargs: dict[str, tuple[Any, Span]]
    label: str
    span: Span
    first_call: Span | None = None
    calls: int = 0

    @property
    def description(self) -> str:
        return f"shared layer '{self.label}' ({self.func.name})"


@dataclass(frozen=True)
class ParamGroup:
    """The parameters under a prefix of a shared block (`tower.dense0`), read by `.name`."""

    label: str
    layer: SharedLayer = field(compare=False)

    @property
    def description(self) -> str:
        return f"parameters '{self.label}' of shared layer '{self.layer.label}'"


# ---------------------------------------------------------------------- shared(...)


def _shared(elab, span: Span, args: list[tuple[Any, Span]], kwargs: dict[str, tuple[Any, Span]]) -> SharedLayer:
    if not args:
        raise NetcTypeError("shared() needs the layer or block to share", span,
                            ["e.g. enc = shared(dense, 128); a = x -> enc; b = y -> enc"])
    (func, fspan), rest = args[0], args[1:]
    if isinstance(func, Builtin):
        if not func.opdef.has_params:
            raise NetcTypeError(f"shared(): '{func.name}' has no parameters to share", fspan,
                                ["shared() makes one instance of a layer with parameters (dense, embed, conv2d, ...) "
                                 "or of a block"])
        kind = func.name
    elif isinstance(func, BlockFn):
        kind = func.name
    else:
        raise NetcTypeError(f"shared() expects a layer or a block; got {describe(func)}", fspan)
    name = None
    if "name" in kwargs and not (isinstance(func, BlockFn) and "name" in {p.name for p in func.defn.params}):
        value, nspan = kwargs.pop("name")
        if not isinstance(value, str) or not value.isidentifier():
            raise NetcTypeError(f"a shared layer name must be an identifier string; got {describe(value)}", nspan)
        name = value
    label = elab.b.next_label(kind, name)
    return SharedLayer(func, list(rest), dict(kwargs), label, span)


_shared.raw_arguments = True  # type: ignore[attr-defined]  # gets every argument with its span

SHARING: dict[str, Any] = {
    "shared": Intrinsic("shared", (Arg("layer", "any"), Arg("args", "any", variadic=True), Arg("kwargs", "kwargs")),
                        _shared, "shared(layer_or_block, *args, **kwargs): one instance whose calls all use its "
                                 "parameters; its parameters read as tensors with `.name`"),
}


def call_shared(elab, layer: SharedLayer, args: list[tuple[Any, Span]], kwargs: dict[str, tuple[Any, Span]],
                span: Span) -> Any:
    """Apply a shared layer: its first call makes the parameters, later calls reuse them."""
    for key, (_, kspan) in kwargs.items():
        if key in layer.kwargs or key == "name":
            raise NetcTypeError(f"{layer.description}: '{key}' was given when it was made ({layer.span}); "
                                "its calls pass only the inputs", kspan)
    if isinstance(layer.func, Builtin) and not args:
        raise NetcTypeError(f"{layer.description} is called without its input", span,
                            ["call it on its input: `enc = shared(dense, 128)`, then `h = x -> enc` or `enc(x)`"])
    merged_args = list(args) + layer.args
    merged_kwargs = {**layer.kwargs, **kwargs}
    first = layer.calls == 0
    elab.b.tying(layer.label, layer.first_call, first)
    try:
        if isinstance(layer.func, Builtin):
            result = elab._call_builtin(layer.func, merged_args, merged_kwargs, span, label=layer.label)
        else:
            result = elab._call_block(layer.func, merged_args, merged_kwargs, span, label=layer.label)
    finally:
        elab.b.untie()
    if first:
        layer.first_call = span
    layer.calls += 1
    return result


# ---------------------------------------------------------------------- value.name


def read_attribute(elab, e: ast.Attribute, scope) -> Any:
    """`layer.weight`: a parameter of a shared layer (or a group of them, `tower.dense0`)."""
    owner = elab.eval(e.value, scope)
    if isinstance(owner, SharedLayer):
        layer, prefix = owner, owner.label
    elif isinstance(owner, ParamGroup):
        layer, prefix = owner.layer, owner.label
    else:
        raise NetcTypeError(f"'.{e.attr}' reads a parameter of a shared layer; {describe(owner)} has none", e.span,
                            ["make the layer with shared() to read its parameters: "
                             "emb = shared(embed, V, 64); x = ids -> emb; table = emb.weight"])
    params = elab.b.root.graph.param_values
    full = f"{prefix}.{e.attr}"
    if full in params:
        return params[full]
    if any(n.startswith(full + ".") for n in params):
        return ParamGroup(full, layer)
    if layer.calls == 0:
        raise NetcNameError(f"{layer.description} has no parameters yet: they are made by its first call",
                            e.span, [f"call it before reading '.{e.attr}': y = x -> {_source_name(e.value)}"])
    names = sorted({n[len(prefix) + 1:].split(".")[0] for n in params if n.startswith(prefix + ".")})
    raise NetcNameError(f"{describe(owner)} has no parameter '{e.attr}'", e.span,
                        [did_you_mean(e.attr, names) or "its parameters: " + ", ".join(names)])


def _source_name(expr: ast.Expr) -> str:
    return expr.id if isinstance(expr, ast.Name) else "layer"


# ---------------------------------------------------------------------- param declarations


def declared_dtype(name: ast.Name) -> DType:
    """The dtype a declaration (`input`, `param`) names; an unknown name is a located error."""
    try:
        return DType(name.id)
    except ValueError:
        raise NetcTypeError(f"unknown dtype '{name.id}'", name.span,
                            [did_you_mean(name.id, [d.value for d in DType])
                             or "dtypes: " + ", ".join(d.value for d in DType)]) from None


def declare_param(elab, stmt: ast.ParamDecl, scope) -> Value:
    """`param name: dtype[dims] = init`: a learned tensor, named under the block instance."""
    dtype = declared_dtype(stmt.dtype)
    if not dtype.is_float or dtype is DType.bf16:
        raise NetcTypeError(f"param '{stmt.name}': a learned tensor is f16, f32 or f64; got {dtype.value}",
                            stmt.dtype.span, ["integer tables are inputs or constants, not parameters"])
    shape = []
    for d in stmt.dims:
        value = elab.eval(d, scope)
        if isinstance(value, D.Sym):
            raise NetcShapeError(f"param '{stmt.name}': dimension {value} is symbolic; a parameter's shape must be "
                                 "known at compile time", d.span,
                                 ["size parameters with block arguments or constants; a symbolic dim "
                                  f"({sorted(D.symbols(value))[0]}) takes its size from the inputs at run time"])
        if not isinstance(value, int) or isinstance(value, bool):
            raise NetcTypeError(f"param '{stmt.name}': a dimension must be an integer; got {describe(value)}",
                                d.span)
        if value <= 0:
            raise NetcShapeError(f"param '{stmt.name}': dimensions must be positive; got {value}", d.span)
        shape.append(value)
    init = DEFAULT_INIT
    if stmt.init is not None:
        init = convert(elab.eval(stmt.init, scope), Arg("init", "init"), stmt.init.span, f"param '{stmt.name}'")
    fan_in, fan_out = fans(shape)
    elab.b.span = stmt.span
    elab.b.check_type(TensorType(dtype, tuple(shape)))
    value = elab.b.free_param(stmt.name, shape, dtype, init, fan_in, fan_out)
    elab.bind_targets((ast.Name(stmt.name, stmt.span),), value, scope, stmt.span)
    return value


def fans(shape: list[int]) -> tuple[int, int]:
    """fan_in, fan_out of a free parameter: [n] -> n, n; [in, out]; [..., in, out] -> the
    product of the leading axes, out (a stack of matrices counts as one wide matrix)."""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    return math.prod(shape[:-1]), shape[-1]

