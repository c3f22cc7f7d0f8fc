"""Beam search inside `generate` (`beam=k`): the k best hypotheses per example, in one ONNX Loop.

Semantics (runtime/reference/beam.py implements the same independently):
- Hypothesis b of example n has a score (the sum of the log-probabilities of its tokens), a
  state and, once it has emitted `stop`, is finished. At the start only hypothesis 0 is alive
  (score 0; the others -inf, so the first step does not pick k copies of one token).
- Each step runs the step block once per hypothesis b, on the states of hypothesis b of all
  examples ([N, ...] as in greedy decoding), and takes log_softmax of its logits. A finished
  hypothesis can only continue with `stop`, at log-probability 0 (it keeps its score).
- Candidates are (b, token) with score(b) + logp(b, token); the k best become the new
  hypotheses (ties: the lower b * V + token first, as ONNX TopK), each with the state of
  the hypothesis it extends.
- The loop ends when every hypothesis of every example is finished, or after max_len steps.
  The result is, per example, the hypothesis with the best score / lp(length), GNMT's
  length penalty lp = ((5 + length) / 6) ** length_penalty (length counts tokens up to and
  including `stop`; length_penalty=0 compares plain scores), as ids i64[L, N], padded with
  `stop` after it ends.

States are carried stacked per hypothesis, [k, *shape]. Reordering them needs each state's
batch axis: the one axis whose size is the batch N (`batch_axes`, checked when the call is
made; a state with no such axis, or with several, is an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

from netc.compiler import dims as D
from netc.compiler.ir import DType, Op, TensorType
from netc.dsl.errors import NetcShapeError, Span

if TYPE_CHECKING:
    from netc.compiler.lowering import LowerContext


def batch_axes(states: Sequence[TensorType], batch: D.Dim, span: Span | None) -> tuple[int, ...]:
    """The batch axis of each state: the one axis of size `batch`."""
    axes = []
    for t in states:
        found = [i for i, d in enumerate(t.shape) if d == batch]
        if len(found) != 1:
            what = "no axis" if not found else f"axes {found}"
            raise NetcShapeError(f"generate: with beam search every state needs one batch axis of size "
                                 f"{D.dim_str(batch)} to reorder the hypotheses; {t} has {what} of that size",
                                 span, ["give the batch a symbolic size (N) so that it cannot be confused "
                                        "with another axis"])
        axes.append(found[0])
    return tuple(axes)


def lower_beam(ctx: LowerContext, op: Op, inputs: list[str]) -> list[str]:
    a = op.attrs
    k, beam, stop = a["n_state"], a["beam"], a["stop"]
    (body,) = op.regions
    states_t = [v.type for v in op.inputs[:k]]
    start = inputs[k]
    sub = ctx.child()

    def i64(value) -> str:
        return ctx.const(np.asarray(value, np.int64), "i")

    ins = [sub.region_input(None, f"{op.label}/iter", TensorType(DType.i64, ())),
           sub.region_input(None, f"{op.label}/cond", TensorType(DType.bool, ()))]
    stacked = []  # [beam, *shape] per state
    for i, t in enumerate(states_t):
        ins.append(sub.region_input(None, f"{op.label}/state{i}", TensorType(t.dtype, (beam, *t.shape))))
        stacked.append(ins[-1].name)
    n = op.inputs[k].type.shape[0]
    extra_types = {
        "prev": TensorType(DType.i64, (beam, n)),
        "scores": TensorType(DType.f32, (n, beam)),
        "finished": TensorType(DType.bool, (n, beam)),
        "lengths": TensorType(DType.f32, (n, beam)),
        "history": TensorType(DType.i64, (a["max_len"], n, beam)),
    }
    carried = {}
    for key, t in extra_types.items():
        ins.append(sub.region_input(None, f"{op.label}/{key}", t))
        carried[key] = ins[-1].name
    step = ins[0].name
    # -------- the step block, once per hypothesis
    next_states: list[list[str]] = [[] for _ in states_t]
    logps = []
    for b in range(beam):
        pick = i64(b)
        for v, st in zip(body.inputs[:k], stacked):
            sub._op = op
            sub.bind(v, sub.node("Gather", [st, pick], axis=0)[0])
        sub.bind(body.inputs[k], sub.node("Gather", [carried["prev"], pick], axis=0)[0])
        sub._op = None
        sub.lower_ops(body.ops)
        sub._op = op
        outs = list(body.outputs.values())
        for i, v in enumerate(outs[:k]):
            next_states[i].append(sub.node("Unsqueeze", [sub.name_of(v), ctx.ints([0])])[0])
        logits = sub.name_of(outs[k])
        if outs[k].type.dtype != DType.f32:  # scores are accumulated in float32
            logits = sub.node("Cast", [logits], to=TensorProto.FLOAT)[0]
        logps.append(sub.node("Unsqueeze", [sub.node("LogSoftmax", [logits], axis=-1)[0], ctx.ints([1])])[0])
    logp = sub.node("Concat", logps, axis=1)[0] if beam > 1 else logps[0]  # [N, beam, V]
    vocab = sub.node("Shape", [logp], start=2, end=3)[0]
    if stop is not None:  # a finished hypothesis continues with stop at log-probability 0
        vpos = sub.node("Range", [i64(0), sub.node("Squeeze", [vocab, ctx.ints([0])])[0], i64(1)])[0]
        is_stop = sub.node("Equal", [vpos, i64(stop)])[0]
        neg = ctx.const(np.asarray(-np.inf, np.float32), "neg_inf")
        zero = ctx.const(np.asarray(0, np.float32), "zero_f")
        frozen = sub.node("Where", [is_stop, zero, neg])[0]  # [V]
        fin3 = sub.node("Unsqueeze", [carried["finished"], ctx.ints([2])])[0]
        logp = sub.node("Where", [fin3, frozen, logp])[0]
    cand = sub.node("Add", [sub.node("Unsqueeze", [carried["scores"], ctx.ints([2])])[0], logp])[0]
    cand = sub.node("Reshape", [cand, ctx.ints([0, -1])])[0]  # [N, beam * V]
    top, index = sub.node("TopK", [cand, i64([beam])], n_out=2, axis=-1, largest=1, sorted=1)
    vocab0 = sub.node("Squeeze", [vocab, ctx.ints([0])])[0]
    origin = sub.node("Div", [index, vocab0])[0]  # [N, beam]
    token = sub.node("Mod", [index, vocab0])[0]
    was_finished = sub.node("GatherElements", [carried["finished"], origin], axis=1)[0]
    lengths = sub.node("GatherElements", [carried["lengths"], origin], axis=1)[0]
    grow = sub.node("Cast", [sub.node("Not", [was_finished])[0]], to=TensorProto.FLOAT)[0]
    lengths = sub.node("Add", [lengths, grow])[0]
    finished = was_finished
    if stop is not None:
        finished = sub.node("Or", [was_finished, sub.node("Equal", [token, i64(stop)])[0]])[0]
    # -------- reorder the states and the history by origin
    origin_t = sub.node("Transpose", [origin], perm=[1, 0])[0]  # [beam, N]
    new_states = []
    for t, axis, nexts in zip(states_t, a["batch_axes"], next_states):
        stacked_next = sub.node("Concat", nexts, axis=0)[0] if beam > 1 else nexts[0]
        shape = [1] * (t.rank + 1)
        shape[0], shape[axis + 1] = beam, -1
        idx = sub.node("Reshape", [origin_t, ctx.ints(shape)])[0]
        idx = sub.node("Expand", [idx, sub.node("Shape", [stacked_next])[0]])[0]
        new_states.append(sub.node("GatherElements", [stacked_next, idx], axis=0)[0])
    hist_t = carried["history"]
    idx = sub.node("Expand", [sub.node("Unsqueeze", [origin, ctx.ints([0])])[0],
                              sub.node("Shape", [hist_t])[0]])[0]
    history = sub.node("GatherElements", [hist_t, idx], axis=2)[0]
    rows = sub.node("Range", [i64(0), i64(a["max_len"]), i64(1)])[0]
    here = sub.node("Unsqueeze", [sub.node("Equal", [rows, step])[0], ctx.ints([1, 2])])[0]
    history = sub.node("Where", [here, sub.node("Unsqueeze", [token, ctx.ints([0])])[0], history])[0]
    if stop is None:
        cond = ins[1].name
    else:
        as_int = sub.node("Cast", [finished], to=TensorProto.INT64)[0]
        cond = sub.node("Equal", [sub.node("ReduceMin", [as_int], keepdims=0)[0], i64(0)])[0]
    outs = [sub.region_output(cond, TensorType(DType.bool, ()))]
    outs += [sub.region_output(s, TensorType(t.dtype, (beam, *t.shape))) for s, t in zip(new_states, states_t)]
    outs += [sub.region_output(sub.node("Transpose", [token], perm=[1, 0])[0], extra_types["prev"]),
             sub.region_output(top, extra_types["scores"]), sub.region_output(finished, extra_types["finished"]),
             sub.region_output(lengths, extra_types["lengths"]), sub.region_output(history, extra_types["history"]),
             sub.region_output(sub.node("Add", [step, i64(1)])[0], TensorType(DType.i64, ()))]
    # the number of steps run, carried last (its input is not read: the iteration counts)
    ins.append(sub.region_input(None, f"{op.label}/count", TensorType(DType.i64, ())))
    graph = sub.subgraph(f"{op.label}/beam", ins, outs)
    # -------- initial values
    ctx._op = op
    init_states = []
    for name in inputs[:k]:
        one = ctx.node("Unsqueeze", [name, ctx.ints([0])])[0]
        init_states.append(ctx.node("Concat", [one] * beam, axis=0)[0] if beam > 1 else one)
    batch = ctx.node("Shape", [start])[0]  # [1]: N
    prev0 = ctx.node("Expand", [ctx.node("Unsqueeze", [start, ctx.ints([0])])[0],
                                ctx.node("Concat", [ctx.ints([beam]), batch], axis=0)[0]])[0]
    nk = ctx.node("Concat", [batch, ctx.ints([beam])], axis=0)[0]
    alive = np.full((1, beam), -np.inf, np.float32)
    alive[0, 0] = 0.0
    scores0 = ctx.node("Expand", [ctx.const(alive, "beam_scores"), nk])[0]
    from onnx import numpy_helper

    false = numpy_helper.from_array(np.array([False]))
    zero_f = numpy_helper.from_array(np.array([0.0], np.float32))
    zero_i = numpy_helper.from_array(np.array([0], np.int64))
    finished0 = ctx.node("ConstantOfShape", [nk], value=false)[0]
    lengths0 = ctx.node("ConstantOfShape", [nk], value=zero_f)[0]
    hist_shape = ctx.node("Concat", [ctx.ints([a["max_len"]]), nk], axis=0)[0]
    history0 = ctx.node("ConstantOfShape", [hist_shape], value=zero_i)[0]
    trip = i64(a["max_len"])
    go = ctx.const(np.array(True), "true")
    results = ctx.node("Loop", [trip, go, *init_states, prev0, scores0, finished0, lengths0, history0, i64(0)],
                       n_out=k + 6, body=graph)
    scores, lengths, history, count = results[k + 1], results[k + 3], results[k + 4], results[k + 5]
    # -------- the best hypothesis per example
    final = scores
    if a["length_penalty"] > 0:
        lp = ctx.node("Pow", [ctx.node("Div", [ctx.node("Add", [lengths, ctx.const(np.float32(5), "five")])[0],
                                              ctx.const(np.float32(6), "six")])[0],
                              ctx.const(np.float32(a["length_penalty"]), "alpha")])[0]
        final = ctx.node("Div", [scores, lp])[0]
    best = ctx.node("ArgMax", [final], axis=1, keepdims=1)[0]  # [N, 1]
    idx = ctx.node("Expand", [ctx.node("Unsqueeze", [best, ctx.ints([0])])[0],
                              ctx.node("Concat", [ctx.ints([a["max_len"]]), batch, ctx.ints([1])], axis=0)[0]])[0]
    ids = ctx.node("Squeeze", [ctx.node("GatherElements", [history, idx], axis=2)[0], ctx.ints([2])])[0]
    ids = ctx.node("Slice", [ids, ctx.ints([0]), ctx.node("Unsqueeze", [count, ctx.ints([0])])[0],
                             ctx.ints([0])])[0]
    if stop is not None:
        ctx.define_symbol(a["length"], ids, 0)
    return [ids]
