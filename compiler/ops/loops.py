"""Recurrence over user-written step blocks: `recur` (ONNX `Scan`), `generate` (greedy
autoregressive decoding, ONNX `Loop` with an early exit) and `recurse` (bottom-up over a
tree's node table, ONNX `Loop`).

The surface calls are elaborated by `netc.compiler.recurrence`, which builds the step
block once into a region. The ops here own that region: their shape rules, FLOP counts and
lowerings. Every op lists the values its region captures from enclosing graphs as its
trailing inputs (`captures` of them; see `netc.compiler.regions`).

Also here: `diag`, the learned diagonal weight that hand-written cells need (peepholes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, numpy_helper

from netc.compiler import dims as D
from netc.compiler.ir import DType, Graph, Init, Op, TensorType, Value
from netc.compiler.ops import scan_guard
from netc.compiler.ops.registry import REGISTRY, Arg, Case, OpDef, register
from netc.compiler.regions import with_regions
from netc.compiler.shapes import numel


def body_flops(region: Graph) -> D.Dim:
    total: D.Dim = 0
    for op in region.ops:
        total = D.add(total, REGISTRY[op.kind].flops(op))
    return total


class RegionOp(OpDef):
    """An op that owns one region and runs it repeatedly."""

    internal = True  # made by the recur/generate/recurse functions, not called by name

    def steps(self, op: Op) -> D.Dim:
        raise NotImplementedError

    def flops(self, op):
        return D.mul(self.steps(op), body_flops(op.regions[0]))

    def sequences(self, op: Op) -> list[tuple[Value, Value]]:
        """(region input, outer value) pairs where the region input is one step's slice of a
        time-major outer sequence: the inputs a hoisting pass may replace. None by default."""
        return []

    def with_sequences(self, op: Op, region: Graph, seqs: Sequence[Value]) -> Op:
        """The op over a new region whose inputs are the carried values, then one slice of
        each of `seqs` (for ops that have `sequences`)."""
        raise NotImplementedError


def _check_same(b, what: str, got: Sequence[TensorType], want: Sequence[TensorType]) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise b.error(f"{what} {i}: the body gives {g}, expected {w}")


# ---------------------------------------------------------------------- diag


@register
class Diag(OpDef):
    """The diagonal weights step blocks need (LSTM peepholes: i = sigmoid(... + diag(c)))."""

    name = "diag"
    doc = "x * weight: a learned diagonal matrix (one weight per unit of the last axis), e.g. LSTM peepholes"
    has_params = True
    step_polymorphic = True
    signature = (Arg("x", "tensor"), Arg("weight_init", "init", Init("uniform", (("low", -0.1), ("high", 0.1)))))
    cases = (
        Case("diag(x)", {"x": "{f}[N, 4]"}),
        Case("x -> diag(weight_init=0.5) -> tanh", {"x": "{f}[T, N, 3]"}),
    )

    def build(self, b, x, weight_init):
        if x.type.rank < 1 or not x.type.dtype.is_float:
            raise b.type_error(f"diag needs a floating-point tensor of rank >= 1; got {x.type}")
        width = b.static(x.type.shape[-1], "diag: the last axis")
        w = b.param("weight", (width,), x.type.dtype, weight_init, fan_in=width, fan_out=width)
        return b.emit(self.name, [x, w], {})[0]

    def infer(self, attrs, inputs, b):
        x, w = inputs
        if w.shape != (x.shape[-1],):
            raise b.error(f"diag: weight {w} does not match the last axis of {x}")
        return [x]

    def hoistable(self, op, varying):
        return bool(varying[0]) and not varying[1]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        return ctx.node("Mul", inputs)


# ---------------------------------------------------------------------- recur

_ELMAN = """
block elman(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
"""
_PAIR = """
block pair(s, x) {
  a, b = s
  return (a + x, b * 0.5 + tanh(x)), a * b
}
"""
_MEMORY = """
block mem_step(h, xs, memory) {
  a, b = xs
  return tanh(h @ memory + a * b + dense(a, 3))
}
"""
_NESTED = """
block inner(d, t) {
  return tanh(dense(d, 3) + dense(t, 3, bias=false))
}
block outer(ts, x) {
  d0 = dense(x, 3)
  return recur(inner, ts, init=d0)
}
"""


@register
class Recur(RegionOp):
    name = "recur"
    doc = ("recur(step, xs, init=state, reverse=false, return_state=false, **extra): "
           "state_t = step(state_{t-1}, x_t, **extra) over the time axis (axis 0) of xs "
           "(a tensor or a tuple); a step returns next_state or (next_state, y_t); "
           "gives the stacked outputs [T, ...] (and the final state). Lowered to ONNX Scan.")
    cases = (
        Case("recur(add, x, init=zeros(N, 4, dtype={f}))", {"x": "{f}[T, N, 4]"}, note="running sum"),
        Case("recur(elman, x, init=zeros(N, 5, dtype={f}), hidden=5)", {"x": "{f}[T, N, 3]"},
             defs=_ELMAN, note="Elman"),
        Case("recur(pair, x, init=(zeros(N, 3, dtype={f}), ones(N, 3, dtype={f})), reverse=true)",
             {"x": "{f}[T, N, 3]"}, defs=_PAIR, note="tuple state, reverse"),
        Case("ys, hT = recur(mem_step, (x, y), init=h0, memory=m, return_state=true)\n"
             "  output out = ys\n  output final = hT",
             {"x": "{f}[T, N, 3]", "y": "{f}[T, N, 3]", "h0": "{f}[N, 3]", "m": "{f}[3, 3]"},
             defs=_MEMORY, note="captured tensor, two sequences"),
        Case("recur(outer, x, init=s0)", {"x": "{f}[T, N, 2]", "s0": "{f}[4, N, 3]"}, defs=_NESTED,
             note="nested"),
    )

    def infer_regions(self, attrs, inputs, regions, b):
        k, m = attrs["n_state"], attrs["n_seqs"]
        (body,) = regions
        init, seqs = inputs[:k], inputs[k:k + m]
        if m < 1:
            raise b.error("recur needs at least one sequence")
        steps = seqs[0].shape[0]
        _check_same(b, "recur: state", [v.type for v in body.inputs[:k]], init)
        _check_same(b, "recur: slice", [v.type for v in body.inputs[k:]],
                    [TensorType(s.dtype, s.shape[1:]) for s in seqs])
        outs = list(body.outputs.values())
        _check_same(b, "recur: next state", [v.type for v in outs[:k]], init)
        return [*init, *(TensorType(y.type.dtype, (steps, *y.type.shape)) for y in outs[k:])]

    def steps(self, op):
        return op.inputs[op.attrs["n_state"]].type.shape[0]

    def sequences(self, op):
        k, m = op.attrs["n_state"], op.attrs["n_seqs"]
        return list(zip(op.regions[0].inputs[k:k + m], op.inputs[k:k + m]))

    def with_sequences(self, op, region, seqs):
        k = op.attrs["n_state"]
        own = [*op.inputs[:k], *seqs]
        return with_regions(op, (region,), own, {**op.attrs, "n_seqs": len(seqs)})

    def lower(self, ctx, op, inputs):
        if "cell" in op.attrs:  # a standard cell in the user's words (compiler/passes/recognise_cells.py)
            from netc.compiler.ops.recognised import lower_recognised

            return lower_recognised(ctx, op, inputs)
        k, m = op.attrs["n_state"], op.attrs["n_seqs"]
        (body,) = op.regions
        body_outs = list(body.outputs.values())
        n_out = len(body_outs) - k
        steps = op.inputs[k].type.shape[0]

        def emit(scope) -> list[str]:
            if scope is not ctx:
                # Inside the If guard (`scan_guard`), the step's weights would sit two subgraphs
                # away from the Gemms that use them, and onnxruntime would not prepack them:
                # a Reshape to its own shape per parameter, in the branch, is folded into a
                # constant there (an Identity would be removed instead, and the Gemm would
                # again read the top-level initializer).
                params = {id(v) for v in ctx.graph.param_values.values()}
                for v in op.inputs[k + m:]:
                    if v is not None and id(v) in params:
                        shape = ctx.ints(list(v.type.shape))
                        scope.bind(v, scope.node("Reshape", [scope.name_of(v), shape])[0])
            sub = scope.child()
            ins = [sub.region_input(v, f"{op.label}/state{i}") for i, v in enumerate(body.inputs[:k])]
            ins += [sub.region_input(v, f"{op.label}/x{i}") for i, v in enumerate(body.inputs[k:])]
            sub.lower_ops(body.ops)
            sub._op = op
            outs = [sub.region_output(sub.name_of(v), v.type) for v in body_outs]
            reverse = op.attrs["reverse"]
            return scope.node("Scan", inputs[:k + m], n_out=len(outs),
                              body=sub.subgraph(f"{op.label}/body", ins, outs), num_scan_inputs=m,
                              scan_input_directions=[1] * m if reverse else None,
                              scan_output_directions=[1] * n_out if reverse and n_out else None)

        def empty(scope) -> list[str]:  # no step ran: the initial states, empty stacked outputs
            return [*(scope.node("Identity", [s])[0] for s in inputs[:k]),
                    *(scan_guard.empty_of(scope, TensorType(v.type.dtype, (steps, *v.type.shape)))
                      for v in body_outs[k:])]

        types = [*(v.type for v in body_outs[:k]), *(TensorType(v.type.dtype, (steps, *v.type.shape))
                                                      for v in body_outs[k:])]
        return scan_guard.guard_empty(ctx, steps, inputs[k], types, emit, empty)


# ---------------------------------------------------------------------- generate

_GEN = """
block gen_step(h, prev, V: int) {
  e = embed(prev, V, 4, dtype={f})
  h2 = tanh(dense(e, 5) + dense(h, 5, bias=false))
  return h2, dense(h2, V)
}
"""


@register
class Generate(RegionOp):
    name = "generate"
    doc = ("generate(step, init=state, start=BOS, stop=EOS, max_len=50, **extra): greedy decoding; "
           "(state, logits [N, V]) = step(state, previous ids [N], **extra), the next ids are "
           "argmax(logits); runs until every sequence has emitted `stop` (then pads with it) or "
           "for max_len steps; gives the ids i64[L, N]. beam=k: beam search over k hypotheses "
           "(compiler/beam.py), length_penalty=alpha. Lowered to ONNX Loop with an early exit.")
    cases = (
        Case("generate(gen_step, init=h, start=1, stop=2, max_len=6, V=5)", {"h": "{f}[N, 5]"},
             defs=_GEN, note="early exit"),
        Case("generate(gen_step, init=h, start=0, max_len=4, V=6)", {"h": "{f}[3, 5]"}, defs=_GEN,
             note="no stop id: max_len steps"),
        Case("generate(gen_step, init=h, start=1, stop=2, max_len=8, V=7, sample=true, temperature=0.7, top_k=3)",
             {"h": "{f}[N, 5]"}, defs=_GEN, note="sampling from the top 3"),
        Case("generate(gen_step, init=h, start=0, max_len=5, V=6, sample=true)", {"h": "{f}[4, 5]"}, defs=_GEN,
             note="sampling from all"),
        Case("generate(gen_step, init=h, start=1, stop=2, max_len=6, beam=3, V=5)", {"h": "{f}[N, 5]"},
             defs=_GEN, note="beam search"),
        Case("generate(gen_step, init=h, start=1, stop=0, max_len=5, beam=2, length_penalty=0.6, V=4)",
             {"h": "{f}[N, 5]"}, defs=_GEN, note="beam search, length penalty"),
    )

    def infer_regions(self, attrs, inputs, regions, b):
        k = attrs["n_state"]
        (body,) = regions
        init, start = inputs[:k], inputs[k]
        if start.dtype is not DType.i64 or start.rank != 1:
            raise b.type_error(f"generate: the start ids must be i64[N]; got {start}")
        _check_same(b, "generate: state", [v.type for v in body.inputs[:k]], init)
        outs = list(body.outputs.values())
        _check_same(b, "generate: next state", [v.type for v in outs[:k]], init)
        logits = outs[k].type
        if logits.rank != 2 or logits.shape[0] != start.shape[0]:
            raise b.error(f"generate: the step's logits must be [N, V] with N = {start.shape[0]}; "
                          f"got {logits}")
        return [TensorType(DType.i64, (self.length(attrs), start.shape[0]))]

    def stochastic(self, op):
        return op.attrs.get("sample", False)

    def next_ids(self, ctx, sub, op: Op, logits: str, t: TensorType) -> str:
        """The next ids [N]: argmax, or a draw from softmax(logits / temperature) over the
        top_k largest logits (ONNX Multinomial, seeded; a new draw at every step)."""
        if not op.attrs.get("sample"):
            return sub.node("ArgMax", [logits], axis=-1, keepdims=0)[0]
        from netc.compiler.ops.random import scaled_logits

        x = scaled_logits(ctx, sub, logits, t.dtype, op.attrs["temperature"])
        top_k = op.attrs["top_k"]
        if top_k is not None:
            x, candidates = sub.node("TopK", [x, ctx.ints([top_k])], n_out=2, axis=-1)
        picked = sub.node("Multinomial", [x], sample_size=1, dtype=DType.i64.onnx,
                          seed=ctx.random_seed(op.attrs["seed"]))[0]
        if top_k is not None:
            picked = sub.node("GatherElements", [candidates, picked], axis=1)[0]
        return sub.node("Squeeze", [picked, ctx.ints([1])])[0]

    def check_draw(self, op, inputs, outputs):
        (ids,) = outputs
        vocab = list(op.regions[0].outputs.values())[op.attrs["n_state"]].type.shape[1]
        if isinstance(vocab, int) and ((ids < 0) | (ids >= vocab)).any():
            return [f"ids outside [0, {vocab})"]
        return []

    @staticmethod
    def length(attrs) -> D.Dim:
        return attrs["max_len"] if attrs["stop"] is None else D.symbol(attrs["length"])

    def steps(self, op):
        return op.attrs["max_len"] * op.attrs.get("beam", 1)  # beam search runs the step per hypothesis

    def lower(self, ctx, op, inputs):
        if op.attrs.get("beam", 1) > 1:
            from netc.compiler.beam import lower_beam

            return lower_beam(ctx, op, inputs)
        k, stop = op.attrs["n_state"], op.attrs["stop"]
        (body,) = op.regions
        sub = ctx.child()
        scalar_i64 = TensorType(DType.i64, ())
        scalar_bool = TensorType(DType.bool, ())
        ins = [sub.region_input(None, f"{op.label}/iter", scalar_i64),
               sub.region_input(None, f"{op.label}/cond", scalar_bool)]
        ins += [sub.region_input(v, f"{op.label}/state{i}") for i, v in enumerate(body.inputs[:k])]
        prev = body.inputs[k]
        ins.append(sub.region_input(prev, f"{op.label}/prev"))
        done_type = TensorType(DType.bool, prev.type.shape)
        ins.append(sub.region_input(None, f"{op.label}/done", done_type))
        done = ins[-1].name
        sub.lower_ops(body.ops)
        outs = list(body.outputs.values())
        sub._op = op
        ids = self.next_ids(ctx, sub, op, sub.name_of(outs[k]), outs[k].type)
        if stop is None:
            cond, done2 = ins[1].name, done
        else:
            stop_id = ctx.const(np.array(stop, dtype=np.int64), "stop")
            ids = sub.node("Where", [done, stop_id, ids])[0]
            done2 = sub.node("Or", [done, sub.node("Equal", [ids, stop_id])[0]])[0]
            as_int = sub.node("Cast", [done2], to=TensorProto.INT64)[0]
            all_done = sub.node("ReduceMin", [as_int], keepdims=0)[0]
            cond = sub.node("Equal", [all_done, ctx.const(np.array(0, dtype=np.int64), "zero")])[0]
        body_outs = [sub.region_output(cond, scalar_bool)]
        body_outs += [sub.region_output(sub.name_of(v), v.type) for v in outs[:k]]
        body_outs += [sub.region_output(ids, prev.type), sub.region_output(done2, done_type),
                      sub.region_output(ids, prev.type)]
        graph = sub.subgraph(f"{op.label}/body", ins, body_outs)
        false = numpy_helper.from_array(np.array([False]))
        done0 = ctx.node("ConstantOfShape", [ctx.node("Shape", [inputs[k]])[0]], value=false)[0]
        trip = ctx.const(np.array(op.attrs["max_len"], dtype=np.int64), "max_len")
        go = ctx.const(np.array(True), "true")
        results = ctx.node("Loop", [trip, go, *inputs[:k + 1], done0], n_out=k + 3, body=graph)
        if stop is not None:
            ctx.define_symbol(op.attrs["length"], results[-1], 0)
        return [results[-1]]


# ---------------------------------------------------------------------- recurse

_COMPOSE = """
block compose(l, r) {
  return tanh(dense(concat(l, r), dim(l, -1)))
}
"""
_TREE_LSTM = """
block tree_lstm(l, r) {
  hl, cl = l
  hr, cr = r
  H = dim(hl, -1)
  z = dense(concat(hl, hr), 5 * H)
  i = sigmoid(z[0:H])
  fl = sigmoid(z[H:2*H])
  fr = sigmoid(z[2*H:3*H])
  o = sigmoid(z[3*H:4*H])
  u = tanh(z[4*H:])
  c = i * u + fl * cl + fr * cr
  return (o * tanh(c), c)
}
"""


@register
class Recurse(RegionOp):
    name = "recurse"
    doc = ("recurse(compose, leaves=x, children=c, **extra): a recursive (tree) network over a "
           "node table in topological order (children before parents, the root last). "
           "children is i64[M, 2]; an index outside [0, node) (-1 by convention) means no child, "
           "whose state is zeros. A node without children keeps its row of leaves [M, ...] (a "
           "tensor or a tuple); any other node gets compose(left, right, **extra). Gives every "
           "node's state [M, ...]. Lowered to ONNX Loop over the nodes.")
    cases = (
        Case("recurse(compose, leaves=x, children=c)", {"x": "{f}[M, 4]", "c": "i64[M, 2]"},
             int_high=4, defs=_COMPOSE),
        Case("hs, cs = recurse(tree_lstm, leaves=(x, x * 0), children=c)\n  output out = hs\n"
             "  output cells = cs", {"x": "{f}[M, 3]", "c": "i64[M, 2]"}, int_high=5, defs=_TREE_LSTM,
             note="Tree-LSTM, tuple state"),
    )

    def infer_regions(self, attrs, inputs, regions, b):
        k = attrs["n_state"]
        (body,) = regions
        leaves, children = inputs[:k], inputs[k]
        if children.dtype is not DType.i64 or children.rank != 2 or children.shape[1] != 2:
            raise b.type_error(f"recurse: children must be i64[M, 2]; got {children}")
        rows = [TensorType(t.dtype, t.shape[1:]) for t in leaves]
        _check_same(b, "recurse: left", [v.type for v in body.inputs[:k]], rows)
        _check_same(b, "recurse: right", [v.type for v in body.inputs[k:]], rows)
        _check_same(b, "recurse: composed state", [v.type for v in body.outputs.values()], rows)
        return list(leaves)

    def steps(self, op):
        return op.inputs[0].type.shape[0]

    def lower(self, ctx, op, inputs):
        k = op.attrs["n_state"]
        (body,) = op.regions
        children = inputs[k]
        sub = ctx.child()
        ins = [sub.region_input(None, f"{op.label}/node", TensorType(DType.i64, ())),
               sub.region_input(None, f"{op.label}/cond", TensorType(DType.bool, ()))]
        states = []
        for i, v in enumerate(op.inputs[:k]):
            ins.append(sub.region_input(None, f"{op.label}/states{i}", v.type))
            states.append(ins[-1].name)
        node = ins[0].name
        sub._op = op
        row = sub.node("Gather", [children, node], axis=0)[0]
        is_child = []
        for region_inputs, col in ((body.inputs[:k], 0), (body.inputs[k:], 1)):
            c = sub.node("Gather", [row, ctx.const(np.array(col, dtype=np.int64), "col")], axis=0)[0]
            valid = sub.node("And", [sub.node("GreaterOrEqual", [c, ctx.const(np.array(0, np.int64), "zero")])[0],
                                     sub.node("Less", [c, node])[0]])[0]
            index = sub.node("Where", [valid, c, ctx.const(np.array(0, np.int64), "zero")])[0]
            for value, table in zip(region_inputs, states):
                picked = sub.node("Gather", [table, index], axis=0)[0]
                zero = ctx.const(np.zeros((), dtype=value.type.dtype.numpy), "zero")
                sub.bind(value, sub.node("Where", [valid, picked, zero])[0])
            is_child.append(valid)
        sub._op = None
        sub.lower_ops(body.ops)
        sub._op = op
        leaf = sub.node("Not", [sub.node("Or", is_child)[0]])[0]
        position = sub.node("Unsqueeze", [node, ctx.ints([0])])[0]
        outs = [sub.region_output(ins[1].name, TensorType(DType.bool, ()))]
        for value, table, composed in zip(op.inputs[:k], states, body.outputs.values()):
            own = sub.node("Gather", [table, node], axis=0)[0]
            new = sub.node("Where", [leaf, own, sub.name_of(composed)])[0]
            updated = sub.node("ScatterND", [table, position, new])[0]
            outs.append(sub.region_output(updated, value.type))
        graph = sub.subgraph(f"{op.label}/body", ins, outs)
        count = ctx.node("Gather", [ctx.node("Shape", [children])[0], ctx.const(np.array(0, np.int64), "zero")],
                         axis=0)[0]
        return ctx.node("Loop", [count, "", *inputs[:k]], n_out=k, body=graph)
