"""Recognising a standard cell written as a `recur` step.

Requires: ops in dependency order; `recur` ops as `compiler/ops/loops.py` builds them
(states first, then the scan inputs, then captures; the region's inputs are the states
and the per-step slices, its outputs the next states and the per-step outputs). Runs
before hoisting, on the step as the user wrote it.

Recognises, in a forward `recur` over one f32 sequence with state `(h, c)`, the LSTM in
the form of one projection split in four, with or without peepholes:

    i, f, g, o = split(dense(x, 4 * H) + dense(h, 4 * H, bias=false), 4)   # any gate order
    i = sigmoid(i [+ diag(c)]);  f = sigmoid(f [+ diag(c)])
    c2 = f * c + i * tanh(g);    o = sigmoid(o [+ diag(c2)]);   h2 = o * tanh(c2)
    return (h2, c2), h2

(additions and products in either order; the peepholes all present or all absent), where
the step computes nothing else. Only when the built-in `lstm` would take its native
lowering for these sizes (`choose_lowering`) is the op marked.

Guarantees: the graph is unchanged except that a recognised `recur` op carries
`attrs["cell"]`: the cell ("lstm"), the gate order of the split, and the parameter
values in the roles the native op needs (`Wx`, `bx`, `Wh`, `p_i`, `p_f`, `p_o`). Its region
stays as written: the reference still runs the user's step, the hoisting pass leaves
the op alone, and `Recur.lower` emits the native `LSTM` from those parameters.
Not recognised (lowered as written): one `dense` per gate, coupled gates, GRU and Elman
steps (the Elman step already lowers to the built-in `rnn`'s Scan form).
"""

from __future__ import annotations

from dataclasses import replace

from netc.compiler.ir import DType, Graph, Op, Value
from netc.compiler.ops.recurrent import choose_lowering
from netc.compiler.regions import with_regions


def recognise_cells(graph: Graph) -> Graph:
    ops = [_marked(op) if op.kind == "recur" else op for op in graph.ops]
    return replace(graph, ops=ops)  # every other field (least sizes included) kept


def _marked(op: Op) -> Op:
    cell = match_lstm(op)
    if cell is None:
        return op
    return with_regions(op, op.regions, attrs={**op.attrs, "cell": cell})


def _producer(v: Value, kind: str) -> Op | None:
    p = v.producer
    return p if p is not None and p.kind == kind else None


def _pair(op: Op | None, kind: str) -> tuple[Value, Value] | None:
    if op is None or op.kind != kind or len(op.inputs) != 2:
        return None
    return op.inputs[0], op.inputs[1]


def _gate(v: Value, state: Value, seen: list[Op]) -> tuple[Value, Value | None] | None:
    """sigmoid(a + diag(state)) -> (a, p); sigmoid(a) -> (a, None)."""
    sig = _producer(v, "sigmoid")
    if sig is None:
        return None
    seen.append(sig)
    inner = sig.inputs[0]
    add = _producer(inner, "add")
    if add is not None:
        for a, d in (add.inputs, add.inputs[::-1]):
            diag = _producer(d, "diag")
            if diag is not None and diag.inputs[0] is state and diag.inputs[1] is not None \
                    and diag.inputs[1].param is not None:
                seen += [add, diag]
                return a, diag.inputs[1]
    return inner, None


def match_lstm(op: Op) -> dict | None:
    a = op.attrs
    if a.get("n_state") != 2 or a.get("n_seqs") != 1 or a.get("reverse") or len(op.regions) != 1:
        return None
    (region,) = op.regions
    if len(region.inputs) != 3 or len(region.outputs) != 3:
        return None
    h, c, x = region.inputs
    h2, c2, y = region.outputs.values()
    if y is not h2 or x.type.dtype is not DType.f32 or x.type.rank != 2 or h.type.rank != 2:
        return None
    hidden, batch = h.type.shape[1], h.type.shape[0]
    if not isinstance(hidden, int) or choose_lowering("lstm", DType.f32, "auto", hidden,
                                                       batch if isinstance(batch, int) else None) != "native":
        return None
    seen: list[Op] = []
    # h2 = o * tanh(c2)
    pair = _pair(h2.producer, "mul")
    if pair is None:
        return None
    seen.append(h2.producer)
    o_val = next((u for u, t in (pair, pair[::-1]) if _producer(t, "tanh") and t.producer.inputs[0] is c2), None)
    if o_val is None:
        return None
    other = pair[1] if pair[0] is o_val else pair[0]
    seen.append(other.producer)
    o = _gate(o_val, c2, seen)
    # c2 = f * c + i * tanh(g)
    add = _pair(c2.producer, "add")
    if o is None or add is None:
        return None
    seen.append(c2.producer)
    f = i = g = None
    for term in add:
        m = _pair(term.producer, "mul")
        if m is None:
            return None
        seen.append(term.producer)
        for u, v in (m, m[::-1]):
            if v is c:
                f = _gate(u, c, seen)
                break
            if _producer(v, "tanh"):
                seen.append(v.producer)
                i, g = _gate(u, c, seen), v.producer.inputs[0]
                break
    if f is None or i is None or g is None:
        return None
    peep = [i[1], f[1], o[1]]
    if any(p is None for p in peep) and any(p is not None for p in peep):
        return None
    split = g.producer
    if split is None or split.kind != "split" or len(split.outputs) != 4 or \
            len({id(v.producer) for v in (i[0], f[0], g, o[0])}) != 1:
        return None
    if tuple(split.attrs.get("sizes", ())) != (hidden,) * 4 or split.attrs.get("axis") not in (1, -1):
        return None
    order = {name: next(k for k, v in enumerate(split.outputs) if v is val)
             for name, val in (("i", i[0]), ("f", f[0]), ("g", g), ("o", o[0]))}
    pre = _pair(split.inputs[0].producer, "add")
    if pre is None:
        return None
    seen += [split, split.inputs[0].producer]
    proj = {}
    for v in pre:
        d = _producer(v, "dense")
        if d is None or d.attrs.get("act") is not None:
            return None
        seen.append(d)
        proj[id(d.inputs[0])] = d
    dx, dh = proj.get(id(x)), proj.get(id(h))
    if dx is None or dh is None or (len(dh.inputs) > 2 and dh.inputs[2] is not None):
        return None
    params = [dx.inputs[1], dh.inputs[1], *(dx.inputs[2:3] or [None])]
    if any(p is not None and p.param is None for p in params):
        return None
    if {id(s) for s in seen} != {id(s) for s in region.ops}:  # the step computes nothing else
        return None
    return {"cell": "lstm", "order": order, "Wx": dx.inputs[1], "bx": dx.inputs[2] if len(dx.inputs) > 2 else None,
            "Wh": dh.inputs[1], "p_i": i[1], "p_f": f[1], "p_o": o[1], "hidden": hidden}
