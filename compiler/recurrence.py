"""Recurrence over user-written step blocks, as the elaborator sees it.

    recur(step, xs, init=state, reverse=false, return_state=false, **extra)
    generate(step, init=state, start=BOS, stop=EOS, max_len=50, **extra)
    recurse(compose, leaves=x, children=c, **extra)

Each call elaborates its step block exactly once, into a region (a `Graph` whose inputs
are the per-step state and slices), with a builder of its own that names the step's layers
under the call's label (`recur0.dense0.weight`). Parameters go to the root graph, so they
are shared by every step. Extra keyword arguments go to the step block unchanged: numbers
configure it, tensors (encoder states, memories) are captured from the enclosing graph.
The op that owns the region is emitted by the enclosing builder (see `netc.compiler.ops.loops`).

A state (and a per-step output) is a tensor or a tuple of them, nested as the user likes:
the region sees the tuple's tensors flattened in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netc.compiler import dims as D
from netc.compiler.builder import Builder
from netc.compiler.ir import DType, Graph, TensorType, Value
from netc.compiler.ops.random import stream
from netc.compiler.ops.registry import Arg
from netc.compiler.regions import captures
from netc.compiler.values import BlockFn, Builtin, Intrinsic, describe
from netc.dsl.errors import NetcNameError, NetcShapeError, NetcTypeError, Span

Structure = Any  # "tensor" or a tuple of structures


# ---------------------------------------------------------------------- tuples of tensors


def structure(value: Any) -> Structure | None:
    """The nesting of a tensor or tuple of tensors; None for anything else."""
    if isinstance(value, Value):
        return "tensor"
    if isinstance(value, tuple | list) and value:
        inner = tuple(structure(v) for v in value)
        return None if any(s is None for s in inner) else inner
    return None


def flatten(value: Any) -> list[Value]:
    if isinstance(value, Value):
        return [value]
    return [leaf for item in value for leaf in flatten(item)]


def unflatten(struct: Structure, leaves: list[Value]) -> Any:
    it = iter(leaves)

    def build(s: Structure) -> Any:
        return next(it) if s == "tensor" else tuple(build(i) for i in s)

    return build(struct)


def structure_text(struct: Structure) -> str:
    if struct == "tensor":
        return "a tensor"
    return "a tuple (" + ", ".join(structure_text(s).removeprefix("a ") for s in struct) + ")"


def _tensors(value: Any, fname: str, what: str, span: Span, hint: str = "") -> tuple[list[Value], Structure]:
    struct = structure(value)
    if struct is None:
        raise NetcTypeError(f"{fname}: '{what}' must be a tensor or a tuple of tensors; got {describe(value)}",
                            span, [hint])
    return flatten(value), struct


# ---------------------------------------------------------------------- step blocks


def _check_step(fname: str, step: Any, n_positional: int, roles: str, extra: dict[str, tuple[Any, Span]],
                span: Span, step_span: Span) -> None:
    """The step must be a block (or layer) taking `roles` positionally plus the extra arguments."""
    if isinstance(step, Builtin):
        return
    if not isinstance(step, BlockFn):
        raise NetcTypeError(f"{fname}: the step must be a block; got {describe(step)}", step_span,
                            [f"define `block step({roles}, ...) {{ ... }}` and pass its name"])
    params = step.defn.params
    if len(params) < n_positional:
        got = ", ".join(p.name for p in params) or "nothing"
        raise NetcTypeError(f"{fname}: step block '{step.name}' takes {len(params)} parameter"
                            f"{'' if len(params) == 1 else 's'} ({got}); a step takes ({roles}, ...)",
                            step_span, [f"declare it as `block {step.name}({roles}, ...)`"])
    names = {p.name for p in params}
    for key, (_, s) in extra.items():
        if key not in names or key in {p.name for p in params[:n_positional]}:
            raise NetcNameError(f"{fname}: step block '{step.name}' has no parameter '{key}'", s,
                                [f"its parameters after ({roles}): "
                                 + (", ".join(p.name for p in params[n_positional:]) or "none")])
    for p in params[n_positional:]:
        if p.default is None and p.name not in extra:
            raise NetcTypeError(f"{fname}: step block '{step.name}' needs '{p.name}'", span,
                                [f"pass it to {fname}: {fname}(..., {p.name}=...)"])


def _elaborate_step(elab, fname: str, label: str, step: Any, region: Graph, args: list[tuple[Any, Span]],
                    extra: dict[str, tuple[Any, Span]], span: Span) -> Any:
    """Run the step block once with the region's builder; returns what the block returns."""
    outer = elab.b
    elab.b = Builder(region, outer.limits, parent=outer, prefix=label + ".")
    try:
        if isinstance(step, BlockFn):
            return elab._call_block(step, args, dict(extra), span, inline=True)
        return elab.call(step, args, dict(extra), span)
    finally:
        elab.b = outer


def _region_inputs(types: list[TensorType], hint: str) -> list[Value]:
    return [Value(f"{hint}{i}" if len(types) > 1 else hint, t) for i, t in enumerate(types)]


def _check_types(fname: str, step: Any, what: str, got: list[Value], want: list[TensorType], want_what: str,
                 span: Span) -> None:
    for g, w in zip(got, want):
        if g.type != w:
            cls = NetcTypeError if g.type.dtype != w.dtype or g.type.rank != w.rank else NetcShapeError
            raise cls(f"{fname}: step '{step.name}' returns {what} of type {g.type}, but {want_what} is {w}",
                      span, [f"the {what} a step returns must have the type of its {want_what}"])


def _check_static_in_steps(fname: str, step: Any, region: Graph, values: list[Value], span: Span) -> None:
    """A step's results are stacked or carried from step to step, so their shapes may not
    depend on a length decided inside the step (a nested `generate`'s)."""
    local = {op.attrs["length"] for op in region.walk() if op.kind == "generate" and op.attrs.get("stop") is not None}
    for v in values:
        inside = {s for d in v.type.shape for s in D.symbols(d)} & local
        if inside:
            raise NetcShapeError(f"{fname}: step '{step.name}' returns {v.type}, whose length "
                                 f"{sorted(inside)[0]} is decided anew at every step", span,
                                 ["reduce over that axis inside the step, or give the inner generate "
                                  "no stop id so that it runs max_len steps"])


def _begin(elab, kind: str, span: Span, name: Any) -> str:
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise NetcTypeError(f"a layer name must be an identifier string; got {describe(name)}", span)
    elab.b.begin_layer(kind, span, name)
    return elab.b.label


def _emit(elab, kind: str, label: str, span: Span, inputs: list[Value], attrs: dict, region: Graph) -> list[Value]:
    caps = captures([region])
    elab.b.span, elab.b.label = span, label
    return elab.b.emit(kind, [*inputs, *caps], {**attrs, "captures": len(caps)}, regions=(region,))


# ---------------------------------------------------------------------- recur


def _recur(elab, span: Span, step: Any, xs: Any, init: Any, reverse: bool, return_state: bool, name: Any,
           extra: dict, spans: dict[str, Span]) -> Any:
    fname = "recur"
    xs_leaves, xs_struct = _tensors(xs, fname, "xs", spans["xs"],
                                    "recur runs over axis 0 of a time-major tensor [T, N, ...]")
    for x in xs_leaves:
        if x.type.rank < 1:
            raise NetcTypeError(f"recur: 'xs' must be a sequence with its time axis first; got {describe(x)}",
                                spans["xs"], ["recur runs over axis 0 of a time-major tensor [T, N, ...]"])
    steps = xs_leaves[0].type.shape[0]
    for x in xs_leaves[1:]:
        if x.type.shape[0] != steps:
            raise NetcShapeError(f"recur: the sequences in 'xs' have different lengths: "
                                 f"{xs_leaves[0].type} and {x.type}", spans["xs"])
    init_leaves, init_struct = _tensors(init, fname, "init", spans["init"],
                                        "init is the initial state, e.g. init=zeros(N, 256)")
    _check_step(fname, step, 2, "state, x", extra, span, spans["step"])
    label = _begin(elab, "recur", span, name)
    region = Graph(f"{label}.step", span=span)
    states = _region_inputs([v.type for v in init_leaves], "state")
    slices = _region_inputs([TensorType(x.type.dtype, x.type.shape[1:]) for x in xs_leaves], "x")
    region.inputs = [*states, *slices]
    result = _elaborate_step(elab, fname, label, step, region,
                             [(unflatten(init_struct, states), spans["init"]),
                              (unflatten(xs_struct, slices), spans["xs"])], extra, span)
    got = structure(result)
    if got == init_struct:
        next_state, ys = result, result
    elif isinstance(result, tuple) and len(result) == 2 and structure(result[0]) == init_struct \
            and structure(result[1]) is not None:
        next_state, ys = result
    else:
        raise NetcTypeError(f"recur: step '{step.name}' returns {describe(result)}; expected the next state "
                            f"({structure_text(init_struct)}, like init) or (next_state, y_t)", span,
                            [f"init is {_types_text(init_leaves)}"])
    next_leaves = flatten(next_state)
    _check_types(fname, step, "a state", next_leaves, [v.type for v in init_leaves], "init", span)
    y_leaves, y_struct = flatten(ys), structure(ys)
    _check_static_in_steps(fname, step, region, [*next_leaves, *y_leaves], span)
    region.outputs = {f"state{i}": v for i, v in enumerate(next_leaves)}
    region.outputs.update({f"y{i}": v for i, v in enumerate(y_leaves)})
    outs = _emit(elab, "recur", label, span, [*init_leaves, *xs_leaves],
                 {"n_state": len(init_leaves), "n_seqs": len(xs_leaves), "reverse": reverse, "step": step.name},
                 region)
    k = len(init_leaves)
    stacked = unflatten(y_struct, outs[k:])
    return (stacked, unflatten(init_struct, outs[:k])) if return_state else stacked


def _types_text(values: list[Value]) -> str:
    return ", ".join(str(v.type) for v in values)


# ---------------------------------------------------------------------- generate


def _generate(elab, span: Span, step: Any, init: Any, start: Any, max_len: int, stop: Any, sample: bool,
              temperature: float | None, top_k: int | None, beam: int, length_penalty: float, name: Any,
              extra: dict, spans: dict[str, Span]) -> Value:
    fname = "generate"
    if not sample and (temperature is not None or top_k is not None):
        which = "temperature" if temperature is not None else "top_k"
        raise NetcTypeError(f"generate: '{which}' applies to sampling; greedy decoding takes the argmax",
                            spans[which], ["pass sample=true to draw each next id from softmax(logits / temperature)"])
    if temperature is not None and not temperature > 0:
        raise NetcTypeError(f"generate: 'temperature' must be positive; got {temperature:g}", spans["temperature"],
                            ["a temperature towards 0 approaches greedy decoding"])
    init_leaves, init_struct = _tensors(init, fname, "init", spans["init"],
                                        "init is the decoder's initial state, e.g. an encoder's final state")
    if max_len <= 0:
        raise NetcTypeError(f"generate: 'max_len' must be positive; got {max_len}", spans["max_len"])
    if stop is not None and not _is_int(stop):
        raise NetcTypeError(f"generate: 'stop' must be a token id (an integer) or none; got {describe(stop)}",
                            spans["stop"])
    if beam < 1:
        raise NetcTypeError(f"generate: 'beam' must be a positive number of hypotheses; got {beam}", spans["beam"])
    if length_penalty < 0:
        raise NetcTypeError(f"generate: 'length_penalty' must be >= 0; got {length_penalty:g}",
                            spans["length_penalty"])
    _check_step(fname, step, 2, "state, prev_ids", extra, span, spans["step"])
    label = _begin(elab, "generate", span, name)
    if _is_int(start):
        first = init_leaves[0].type
        if first.rank < 1:
            raise NetcTypeError(f"generate: cannot tell the batch size from init {first}; pass start ids "
                                "i64[N] as start=", spans["init"])
        elab.b.span, elab.b.label = spans["start"], f"{label}.start"
        start = elab.b.emit("fill", [], {"shape": (first.shape[0],), "value": start, "dtype": DType.i64})[0]
    elif not (isinstance(start, Value) and start.type.dtype is DType.i64 and start.type.rank == 1):
        raise NetcTypeError(f"generate: 'start' must be a token id or i64[N] ids; got {describe(start)}",
                            spans["start"])
    region = Graph(f"{label}.step", span=span)
    states = _region_inputs([v.type for v in init_leaves], "state")
    prev = Value("prev", start.type)
    region.inputs = [*states, prev]
    result = _elaborate_step(elab, fname, label, step, region,
                             [(unflatten(init_struct, states), spans["init"]), (prev, spans["start"])],
                             extra, span)
    if not (isinstance(result, tuple) and len(result) == 2 and structure(result[0]) == init_struct
            and isinstance(result[1], Value)):
        raise NetcTypeError(f"generate: step '{step.name}' returns {describe(result)}; expected "
                            f"(next_state, logits) with the state {structure_text(init_struct)} like init",
                            span, ["logits are f32[N, V]: the next ids are their argmax"])
    next_state, logits = result
    next_leaves = flatten(next_state)
    _check_types(fname, step, "a state", next_leaves, [v.type for v in init_leaves], "init", span)
    batch = start.type.shape[0]
    if logits.type.rank != 2 or not logits.type.dtype.is_float or logits.type.shape[0] != batch:
        raise NetcShapeError(f"generate: step '{step.name}' returns logits {logits.type}; expected "
                             f"[{D.dim_str(batch)}, V] floats (one row per sequence)", span)
    vocab = logits.type.shape[1]
    if top_k is not None and isinstance(vocab, int) and top_k > vocab:
        raise NetcShapeError(f"generate: 'top_k' is {top_k}, more than the {vocab} classes of the logits",
                             spans["top_k"])
    _check_static_in_steps(fname, step, region, [*next_leaves, logits], span)
    region.outputs = {f"state{i}": v for i, v in enumerate(next_leaves)}
    region.outputs["logits"] = logits
    attrs = {"n_state": len(init_leaves), "max_len": max_len, "stop": stop, "length": f"{label}.len",
             "step": step.name, "sample": sample, "temperature": temperature or 1.0, "top_k": top_k,
             "seed": stream(label)}
    if beam > 1:
        from netc.compiler.beam import batch_axes

        if sample:  # beam search keeps the k best hypotheses; it draws nothing
            raise NetcTypeError("generate: beam search and sample=true do not combine", spans["beam"],
                                ["use beam=k for the k most likely hypotheses, or sample=true to draw"])
        attrs.update(beam=beam, length_penalty=length_penalty,
                     batch_axes=batch_axes([v.type for v in init_leaves], batch, spans["init"]))
        if isinstance(logits.type.shape[1], int) and logits.type.shape[1] < beam:
            raise NetcShapeError(f"generate: beam={beam} needs at least {beam} candidate tokens; the logits "
                                 f"are {logits.type}", spans["beam"])
    (ids,) = _emit(elab, "generate", label, span, [*init_leaves, start], attrs, region)
    return ids


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------- recurse


def _recurse(elab, span: Span, compose: Any, leaves: Any, children: Any, name: Any, extra: dict,
             spans: dict[str, Span]) -> Any:
    fname = "recurse"
    leaf_values, struct = _tensors(leaves, fname, "leaves", spans["leaves"],
                                   "leaves holds one row per node: [M, ...]")
    if not (isinstance(children, Value) and children.type.dtype is DType.i64 and children.type.rank == 2
            and children.type.shape[1] == 2):
        raise NetcTypeError(f"recurse: 'children' must be i64[M, 2] (left and right child of each node, "
                            f"-1 for none); got {describe(children)}", spans["children"])
    count = children.type.shape[0]
    for v in leaf_values:
        if v.type.rank < 1 or v.type.shape[0] != count:
            raise NetcShapeError(f"recurse: 'leaves' must have one row per node ({D.dim_str(count)}, the "
                                 f"rows of children); got {v.type}", spans["leaves"])
    _check_step(fname, compose, 2, "left, right", extra, span, spans["compose"])
    label = _begin(elab, "recurse", span, name)
    rows = [TensorType(v.type.dtype, v.type.shape[1:]) for v in leaf_values]
    region = Graph(f"{label}.compose", span=span)
    left, right = _region_inputs(rows, "left"), _region_inputs(rows, "right")
    region.inputs = [*left, *right]
    result = _elaborate_step(elab, fname, label, compose, region,
                             [(unflatten(struct, left), spans["leaves"]), (unflatten(struct, right), spans["leaves"])],
                             extra, span)
    if structure(result) != struct:
        raise NetcTypeError(f"recurse: compose '{compose.name}' returns {describe(result)}; expected a node "
                            f"state ({structure_text(struct)}, like a row of leaves)", span)
    composed = flatten(result)
    _check_types(fname, compose, "a node state", composed, rows, "row of leaves", span)
    _check_static_in_steps(fname, compose, region, composed, span)
    region.outputs = {f"state{i}": v for i, v in enumerate(composed)}
    outs = _emit(elab, "recurse", label, span, [*leaf_values, children],
                 {"n_state": len(leaf_values), "step": compose.name}, region)
    return unflatten(struct, outs)


# ---------------------------------------------------------------------- registration


def _with_spans(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.wants_spans = True  # type: ignore[attr-defined]  # the elaborator passes each argument's span
    return fn


_EXTRA = Arg("extra", "kwargs")

RECURRENCE: dict[str, Intrinsic] = {
    i.name: i
    for i in [
        Intrinsic("recur", (Arg("step", "any"), Arg("xs", "any"), Arg("init", "any"), Arg("reverse", "bool", False),
                            Arg("return_state", "bool", False), Arg("name", "any", None), _EXTRA),
                  _with_spans(_recur),
                  "run a step block over axis 0 of xs: state = step(state, x_t, **extra), which returns "
                  "next_state or (next_state, y_t); gives the stacked outputs [T, ...] (and, with "
                  "return_state=true, the final state). ONNX Scan"),
        Intrinsic("generate", (Arg("step", "any"), Arg("init", "any"), Arg("start", "any"),
                               Arg("max_len", "int", 50), Arg("stop", "any", None), Arg("sample", "bool", False),
                               Arg("temperature", "float", None), Arg("top_k", "int", None, positive=True),
                               Arg("beam", "int", 1), Arg("length_penalty", "float", 0.0),
                               Arg("name", "any", None), _EXTRA),
                  _with_spans(_generate),
                  "greedy decoding: (state, logits [N, V]) = step(state, prev_ids [N], **extra), next ids = "
                  "argmax(logits), or with sample=true drawn from softmax(logits / temperature) over the top_k "
                  "largest (all by default), from start ids until every sequence emitted stop or max_len steps; gives "
                  "ids i64[L, N]; beam=k keeps the k best hypotheses instead (length_penalty: GNMT's alpha). "
                  "ONNX Loop with an early exit"),
        Intrinsic("recurse", (Arg("compose", "any"), Arg("leaves", "any"), Arg("children", "any"),
                              Arg("name", "any", None), _EXTRA),
                  _with_spans(_recurse),
                  "tree network over a node table (children i64[M, 2], children before parents, -1 = none): "
                  "a node with children gets compose(left, right, **extra), a leaf keeps its row of leaves; "
                  "gives every node's state [M, ...], the root last. ONNX Loop"),
    ]
}
