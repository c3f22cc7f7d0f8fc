"""Recognising a standard cell written as a `recur` step.

Requires: ops in dependency order; `recur` ops as `compiler/ops/loops.py` builds them
(states first, then the scan inputs, then captures; the region's inputs are the states
and the per-step slices, its outputs the next states and the per-step outputs). Runs
before hoisting, on the step as the user wrote it.

Recognises, in a forward `recur` over one f32 sequence whose step returns its new hidden
state as its output and computes nothing else, these cells (additions and products in
either order; every gate pre-activation a sum of `dense` projections of the step's input
x and its state h -- one `dense` per gate, or one wider `dense` whose output is `split`
into equal gate blocks in any order -- with `diag` peepholes where the cell has them):

    Elman, state h:  h2 = act(W x + U h);  return h2, h2   (act tanh, relu or sigmoid: rnn)
    LSTM, state (h, c):
        i = sigmoid(W_i x + U_i h [+ diag(c)]);  f = sigmoid(W_f x + U_f h [+ diag(c)])
        c2 = f * c + i * tanh(W_g x + U_g h);   o = sigmoid(W_o x + U_o h [+ diag(c2)])
        h2 = o * tanh(c2);   return (h2, c2), h2
      peepholes all present or all absent; coupled: f = 1 - i, or i = 1 - f (then netc's
      input gate is sigmoid of the negated f pre-activation: 1 - sigmoid(a) = sigmoid(-a)).
    GRU, state h:
        z = sigmoid(W_z x + U_z h);  r = sigmoid(W_r x + U_r h)
        reset before:  h~ = tanh(W_h x + U_h (r * h))      (dense over r * h)
        reset after:   h~ = tanh(W_h x + r * (U_h h + b))  (PyTorch's form)
        h2 = (1 - z) * h + z * h~   (netc's and the lectures' z)
          or z * h + (1 - z) * h~   (ONNX's and PyTorch's z: netc's z is its negation)
        return h2, h2

Guarantees: the graph is unchanged except that a recognised `recur` op carries
`attrs["cell"]`: the cell ("rnn", "lstm" or "gru"), its options (`act`, `coupled`,
`peephole`, `reset`), `hidden` and, per gate in netc's built-in order (`compiler/ops/recurrent.py`: rnn h; lstm i, f, c, o,
coupled i, c, o; gru z, r, h), where the built-in's `W`, `R`, `b`, `rb` rows come from:
`(param, k, n, negate)`, block k of n of a `dense` weight's columns or bias, or None for
an absent bias; and the peepholes (`p`, as `(param, negate)` in the built-in's order).
Every parameter maps exactly (block copies and sign flips); its region stays as written:
the reference still runs the user's step, the hoisting pass leaves the op alone, and
`Recur.lower` lowers it as the built-in cell with those weights would be (native op or
Scan, by `choose_lowering`), keeping `recur`'s initial state for an empty sequence.
Not recognised (lowered as written): reversed or multi-sequence `recur`s, other dtypes,
other activations, biases or constants that are not a `dense`'s bias (a forget bias
constant), clipping, or any extra work in the step.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from netc.compiler.ir import DType, Graph, Op, Value
from netc.compiler.regions import with_regions

ELMAN_ACTS = ("tanh", "relu", "sigmoid")  # activations the built-in rnn runs natively, as ops
Term = tuple  # (source Value, role "W" | "b" | "p", param Value, block k, blocks n)


def recognise_cells(graph: Graph) -> Graph:
    ops = [_marked(op) if op.kind == "recur" else op for op in graph.ops]
    return replace(graph, ops=ops)  # every other field (least sizes included) kept


def _marked(op: Op) -> Op:
    cell = match_cell(op)
    if cell is None:
        return op
    return with_regions(op, op.regions, attrs={**op.attrs, "cell": cell})


def match_cell(op: Op) -> dict | None:
    a = op.attrs
    if a.get("n_seqs") != 1 or a.get("reverse") or len(op.regions) != 1 or a.get("n_state") not in (1, 2):
        return None
    (region,) = op.regions
    n = a["n_state"]
    if len(region.inputs) != n + 1 or len(region.outputs) != n + 1:
        return None
    x, h = region.inputs[n], region.inputs[0]
    outs = list(region.outputs.values())
    if outs[-1] is not outs[0] or x.type.dtype is not DType.f32 or x.type.rank != 2 or h.type.rank != 2 \
            or not isinstance(h.type.shape[1], int):
        return None
    m = _Matcher(x, h.type.shape[1])
    try:
        if n == 2:
            cell = m.lstm(h, region.inputs[1], outs[0], outs[1])
        elif outs[0].producer is not None and outs[0].producer.kind in ELMAN_ACTS:
            cell = m.elman(h, outs[0])
        else:
            cell = m.gru(h, outs[0])
    except _NoMatch:
        return None
    if {id(s) for s in m.seen} != {id(s) for s in region.ops}:  # the step computes nothing else
        return None
    return {**cell, "hidden": m.hidden}


class _NoMatch(Exception):
    pass


def _need(cond: object) -> None:
    if not cond:
        raise _NoMatch


class _Matcher:
    def __init__(self, x: Value, hidden: int):
        self.x, self.hidden = x, hidden
        self.seen: list[Op] = []

    def op(self, v: Value, kind: str) -> Op:
        p = v.producer
        _need(p is not None and p.kind == kind)
        self.seen.append(p)
        return p

    def is_op(self, v: Value, kind: str) -> bool:
        return v.producer is not None and v.producer.kind == kind

    def pair(self, v: Value, kind: str) -> tuple[Value, Value]:
        p = self.op(v, kind)
        _need(len(p.inputs) == 2)
        return p.inputs[0], p.inputs[1]

    def one_minus(self, v: Value) -> Value:
        """1 - u -> u."""
        one, u = self.pair(v, "sub")
        c = self.op(one, "constant")
        value = np.asarray(c.attrs.get("value"))
        _need(value.size == 1 and float(value.reshape(-1)[0]) == 1.0)
        return u

    def linear(self, v: Value, block: tuple[int, int] = (0, 1)) -> list[Term]:
        """A sum of dense projections (or split blocks of one) and diag terms."""
        p = v.producer
        _need(p is not None)
        if p.kind == "add":
            self.seen.append(p)
            return self.linear(p.inputs[0], block) + self.linear(p.inputs[1], block)
        if p.kind == "split" and block == (0, 1):
            self.seen.append(p)
            sizes = tuple(p.attrs.get("sizes", ()))
            _need(p.attrs.get("axis") in (1, -1) and len(set(sizes)) == 1 and len(sizes) == len(p.outputs))
            k = next(i for i, o in enumerate(p.outputs) if o is v)
            return self.linear(p.inputs[0], (k, len(p.outputs)))
        if p.kind == "dense":
            self.seen.append(p)
            _need(p.attrs.get("act") is None and p.inputs[1].param is not None)
            _need(p.inputs[1].type.shape[-1] == block[1] * self.hidden)
            terms = [(p.inputs[0], "W", p.inputs[1], *block)]
            if len(p.inputs) > 2 and p.inputs[2] is not None:
                _need(p.inputs[2].param is not None)
                terms.append((p.inputs[0], "b", p.inputs[2], *block))
            return terms
        if p.kind == "diag" and block == (0, 1):
            self.seen.append(p)
            _need(p.inputs[1] is not None and p.inputs[1].param is not None
                  and tuple(p.inputs[1].type.shape) == (self.hidden,))
            return [(p.inputs[0], "p", p.inputs[1], 0, 1)]
        raise _NoMatch

    def roles(self, terms: list[Term], rec: Value | None, peep: Value | None = None, neg: bool = False) -> dict:
        """Terms -> the built-in's rows: W (x), b (x's bias), R (`rec`), rb (its bias), p (`peep`)."""
        out: dict = {"W": None, "b": None, "R": None, "rb": None, "p": None}
        for src, role, param, k, n in terms:
            if role == "p":
                _need(src is peep and out["p"] is None)
                out["p"] = (param, neg)
                continue
            key = {("W", True): "W", ("b", True): "b", ("W", False): "R", ("b", False): "rb"}[(role, src is self.x)]
            _need((src is self.x or src is rec) and out[key] is None)
            out[key] = (param, k, n, neg)
        _need(out["W"] is not None and (rec is None or out["R"] is not None))
        return out

    def sigmoid_gate(self, v: Value, h: Value, peep: Value | None, neg: bool = False) -> dict:
        return self.roles(self.linear(self.op(v, "sigmoid").inputs[0]), h, peep, neg)

    # ------------------------------------------------------------------ LSTM
    def lstm(self, h: Value, c: Value, h2: Value, c2: Value) -> dict:
        a, b = self.pair(h2, "mul")  # h2 = o * tanh(c2)
        o_val, t = (a, b) if self.is_op(b, "tanh") and b.producer.inputs[0] is c2 else (b, a)
        _need(self.op(t, "tanh").inputs[0] is c2)
        terms = {}
        for term in self.pair(c2, "add"):  # c2 = f * c + i * tanh(g)
            u, v = self.pair(term, "mul")
            if v is c or u is c:
                terms["f"] = u if v is c else v
            else:
                gate, cand = (u, v) if self.is_op(v, "tanh") else (v, u)
                terms["i"], terms["g"] = gate, self.op(cand, "tanh").inputs[0]
        _need(set(terms) == {"i", "f", "g"})
        o = self.sigmoid_gate(o_val, h, c2)
        g = self.roles(self.linear(terms["g"]), h)
        coupled = self.is_op(terms["f"], "sub") or self.is_op(terms["i"], "sub")
        if coupled:
            if self.is_op(terms["f"], "sub"):  # f = 1 - i: netc's coupled LSTM
                _need(self.one_minus(terms["f"]) is terms["i"])
                i = self.sigmoid_gate(terms["i"], h, c)
            else:  # i = 1 - f: netc's i is sigmoid(-f's pre-activation)
                _need(self.one_minus(terms["i"]) is terms["f"])
                i = self.sigmoid_gate(terms["f"], h, c, neg=True)
            gates = {"i": i, "c": g, "o": o}
            peeps = [i["p"], o["p"]]
        else:
            gates = {"i": self.sigmoid_gate(terms["i"], h, c), "f": self.sigmoid_gate(terms["f"], h, c),
                     "c": g, "o": o}
            peeps = [gates["i"]["p"], gates["f"]["p"], o["p"]]
        peephole = all(p is not None for p in peeps)
        _need(peephole or all(p is None for p in peeps))
        _need(g["p"] is None)
        return {"cell": "lstm", "coupled": coupled, "peephole": peephole, "reset": "before",
                "gates": {k: {r: v[r] for r in ("W", "R", "b", "rb")} for k, v in gates.items()},
                "p": peeps if peephole else []}

    # ------------------------------------------------------------------ Elman
    def elman(self, h: Value, h2: Value) -> dict:
        act = h2.producer.kind
        g = self.roles(self.linear(self.op(h2, act).inputs[0]), h)
        return {"cell": "rnn", "act": act, "coupled": False, "peephole": False, "reset": "before", "p": [],
                "gates": {"h": {k: g[k] for k in ("W", "R", "b", "rb")}}}

    # ------------------------------------------------------------------ GRU
    def gru(self, h: Value, h2: Value) -> dict:
        keep = cand = None
        for term in self.pair(h2, "add"):  # (1 - z) * h + z * h~, or z * h + (1 - z) * h~
            u, v = self.pair(term, "mul")
            if u is h or v is h:
                keep = v if u is h else u
            else:
                w, t = (u, v) if self.is_op(v, "tanh") else (v, u)
                cand, take = self.op(t, "tanh").inputs[0], w
        _need(keep is not None and cand is not None)
        if self.is_op(keep, "sub"):  # netc's z: the share of the new state
            z_val, neg = take, False
            _need(self.one_minus(keep) is take)
        else:  # ONNX's and PyTorch's z: the share of the old state
            z_val, neg = keep, True
            _need(self.one_minus(take) is keep)
        z = self.sigmoid_gate(z_val, h, None, neg)
        top = cand.producer
        gated = None  # reset after: (W x + b) + r * (U h + b_u), either order
        if top is not None and top.kind == "add" and len(top.inputs) == 2:
            for a, b in (top.inputs, top.inputs[::-1]):
                if self.is_op(b, "mul") and any(self.is_op(u, "sigmoid") for u in b.producer.inputs):
                    gated = a, b
                    break
        if gated is not None:
            self.seen.append(top)
            a, b = gated
            u, v = self.pair(b, "mul")
            r_val, inner = (u, v) if self.is_op(u, "sigmoid") else (v, u)
            x_terms, h_terms = self.linear(a), self.linear(inner)
            _need(all(t[0] is self.x for t in x_terms) and all(t[0] is h for t in h_terms))
            g = self.roles(x_terms + h_terms, h)
            reset = "after"
        else:  # reset before: h~ = tanh(W x + b + U (r * h) + b_u)
            terms = self.linear(cand)
            rh = [src for src, *_ in terms if src is not self.x]
            _need(rh and self.is_op(rh[0], "mul"))
            u, v = self.pair(rh[0], "mul")
            _need(u is h or v is h)
            r_val = v if u is h else u
            g = self.roles(terms, rh[0])
            reset = "before"
        h_gate = {k: g[k] for k in ("W", "R", "b", "rb")}
        r = self.sigmoid_gate(r_val, h, None)
        return {"cell": "gru", "coupled": False, "peephole": False, "reset": reset, "p": [],
                "gates": {"z": {k: z[k] for k in ("W", "R", "b", "rb")},
                          "r": {k: r[k] for k in ("W", "R", "b", "rb")}, "h": h_gate}}
