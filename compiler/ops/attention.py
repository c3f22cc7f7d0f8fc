"""Soft, hard and local attention of one query (or a sequence of queries) over a time-major
memory: `attention(query, keys, values=keys, score=..., mask=, lengths=, hard=, window=)`.

Shapes: query q is [N, Dq] (one query per example, as a decoder step has) or [S, N, Dq] (a
sequence of queries); keys k are [T, N, Dk] and values v [T, N, Dv] (time-major, as the
recurrences produce them). The context is [N, Dv] or [S, N, Dv]; the weights (alignment)
are [N, T] or [S, N, T].

Scores s(q, k_t) (structures.md; the parameters belong to the layer, named `<layer>.<name>`):

    dot             q · k_t                                        (Dq = Dk)
    scaled_dot      q · k_t / sqrt(Dk)                             (Dq = Dk)
    general         q W k_t                     W [Dq, Dk]         (Luong's bilinear form)
    additive        v · tanh(q W_q + k_t W_k + b)                  W_q [Dq, U], W_k [Dk, U], b [U], v [U]
                                                                   (Bahdanau's concat score)
    concat_product  v · tanh([q; k_t; q ⊙ k_t] W + b)              W as W_q, W_k, W_qk [D, U] each
                                                                   (its row blocks), b [U], v [U]
    cosine          (q / max(|q|, 1e-8)) · (k_t / max(|k_t|, 1e-8))

U is `units` (default Dq). With `heads=h` (dot and scaled_dot scores) queries, keys and
values split into h heads of width D/h, each with its own softmax (scaled by 1/sqrt(Dk/h));
the contexts are concatenated and the weights averaged over the heads. Weights a = softmax_t(s) over the valid keys: key t is valid
when mask[..., t] is true (a bool tensor broadcastable to the weights' shape), t <
lengths[n] (i32[N]), and, with `window=D`, |t - p| <= D. With `causal=true` (sequences of queries) query s
takes keys t <= s. A query with no valid key gets zero weights and a zero context. The context is sum_t a_t v_t. `sharpen=beta` multiplies the scores by a
key strength before the softmax (Graves et al. 2014's content addressing: a number, or one
beta per query).

`hard=true` replaces the softmax by a one-hot at the arg-max of the valid scores (the
first on ties): the context is the value at the best key.

`window=D` is Luong et al.'s local attention (2015). align="predictive" (local-p):
p = T · sigmoid(v_p · tanh(q W_p)) with W_p [Dq, U], v_p [U]; align="monotonic" (local-m,
sequence queries only): p = s, the query's own position. Keys outside [p - D, p + D] are
masked and the weights are multiplied by exp(-(t - p)^2 / (2 sigma^2)), sigma = D / 2
(after the softmax, as in the paper, so they no longer sum to one).

The key projection of `additive` and `concat_product` (k_t W_k) is emitted as a separate
`dense` op: inside a decoder's step it depends on no state and is hoisted out of the loop.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType, Value
from netc.compiler.ops import attn_lower as L
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import broadcast_shapes, numel, same_dim, tensor_or_none

SCORES = ("dot", "scaled_dot", "general", "additive", "concat_product", "cosine")
# IR inputs after query, keys, values, mask, lengths (absent ones are None).
PARAM_SLOTS = ("keys_proj", "W", "W_q", "b", "v", "W_qk", "W_p", "v_p", "beta")
COSINE_EPS = 1e-8


@register
class Attention(OpDef):
    name = "attention"
    doc = ("soft (or hard, or local) attention of a query [N, D] or queries [S, N, D] over a time-major "
           "memory [T, N, Dk]: context [N, Dv] / [S, N, Dv] and, with return_weights, weights [N, T] / [S, N, T]")
    has_params = True
    signature = (
        Arg("query", "tensor"),
        Arg("keys", "tensor"),
        Arg("values", "any", None, doc="[T, N, Dv]; default: the keys"),
        Arg("score", "choice", "dot", choices=SCORES),
        Arg("mask", "any", None, doc="bool, true where a key may be attended; broadcastable to the weights"),
        Arg("lengths", "any", None, doc="i32[N]: keys t < lengths[n] are real"),
        Arg("causal", "bool", False, doc="sequence queries: query s attends to keys t <= s"),
        Arg("hard", "bool", False, doc="one-hot weights at the best key (arg-max) instead of the softmax"),
        Arg("window", "any", None, doc="int D: Luong's local attention over [p - D, p + D]"),
        Arg("align", "choice", "predictive", choices=("predictive", "monotonic"),
            doc="local attention's centre p: predicted from the query (local-p) or the query's position (local-m)"),
        Arg("units", "any", None, doc="hidden size U of the additive/concat_product/predictive scorers (default Dq)"),
        Arg("sharpen", "any", None, doc="key strength beta (Neural Turing Machines): softmax(beta * scores); "
            "a positive number, or a tensor [N] ([S, N] for a sequence of queries)"),
        Arg("heads", "int", 1, positive=True,
            doc="dot/scaled_dot: split queries, keys and values into heads, each with its own softmax"),
        Arg("return_weights", "bool", False, doc="also return the weights"),
        Arg("weight_init", "init", Init("glorot_uniform")),
    )
    cases = (
        Case("attention(q, m)", {"q": "{f}[N, 4]", "m": "{f}[T, N, 4]"}),
        Case('attention(q, m, v, score="scaled_dot")', {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]",
                                                         "v": "{f}[T, N, 3]"}, note="sequence of queries"),
        Case('attention(q, m, score="general")', {"q": "{f}[N, 3]", "m": "{f}[5, N, 4]"}),
        Case('attention(q, m, score="cosine", sharpen=beta)', {"q": "{f}[N, 4]", "m": "{f}[T, N, 4]", "beta": "{f}[N]"},
             note="NTM content addressing, key strength per example"),
        Case('attention(q, m, score="cosine", sharpen=5)', {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]"}),
        Case('attention(q, m, heads=2, sharpen=beta)', {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]", "beta": "{f}[S, N]"},
             note="sharpened heads"),
        Case('attention(q, m, score="additive", units=6, lengths=lens)',
             {"q": "{f}[N, 3]", "m": "{f}[5, N, 4]", "lens": "i32[N]"}, int_high=6, note="Bahdanau, lengths"),
        Case('attention(q, m, score="concat_product", mask=mk)',
             {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]", "mk": "bool[S, N, T]"}, note="full mask"),
        Case('attention(q, m, score="cosine", mask=mk)', {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]",
                                                           "mk": "bool[N, T]"}, note="mask broadcast over S"),
        Case("""
  c, w = attention(q, m, hard=true, lengths=lens, return_weights=true)
  output ctx = c
  output weights = w""", {"q": "{f}[N, 4]", "m": "{f}[6, N, 4]", "lens": "i32[N]"}, int_high=7, note="hard"),
        Case("""
  c, w = attention(q, m, score="general", window=1, return_weights=true)
  output ctx = c
  output weights = w""", {"q": "{f}[N, 4]", "m": "{f}[7, N, 4]"}, note="local-p"),
        Case("""
  c, w = attention(q, m, v, score="scaled_dot", heads=2, lengths=lens, return_weights=true)
  output ctx = c
  output weights = w""", {"q": "{f}[N, 4]", "m": "{f}[5, N, 4]", "v": "{f}[5, N, 6]", "lens": "i32[N]"},
             int_high=6, note="two heads"),
        Case('attention(q, m, score="scaled_dot", heads=2, causal=true, lengths=lens)',
             {"q": "{f}[T, N, 4]", "m": "{f}[T, N, 4]", "lens": "i32[N]"}, note="causal self-attention"),
        Case('attention(q, m, heads=2, causal=true)', {"q": "{f}[T, N, 4]", "m": "{f}[T, N, 4]"},
             note="causal alone"),
        Case("attention(q, m, heads=2, mask=mk)", {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]", "mk": "bool[S, 1, T]"},
             note="two heads, sequence"),
        Case("""
  c, w = attention(q, m, window=2, align="monotonic", mask=mk, return_weights=true)
  output ctx = c
  output weights = w""", {"q": "{f}[S, N, 4]", "m": "{f}[T, N, 4]", "mk": "bool[S, 1, T]"}, note="local-m"),
    )

    def build(self, b, query, keys, values, score, mask, lengths, causal, hard, window, align, units, sharpen, heads,
              return_weights, weight_init):
        values = tensor_or_none(b, "attention", "values", values)
        mask = tensor_or_none(b, "attention", "mask", mask)
        lengths = tensor_or_none(b, "attention", "lengths", lengths)
        q, k = query.type, keys.type
        self._check_query_keys(b, q, k)
        dq = b.static(q.shape[-1], "attention: the query width")
        dk = b.static(k.shape[-1], "attention: the key width")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window <= 0):
            raise b.type_error(f"attention: 'window' expects a positive integer (the half-width D); got {window!r}")
        if units is not None and (not isinstance(units, int) or isinstance(units, bool) or units <= 0):
            raise b.type_error(f"attention: 'units' expects a positive integer; got {units!r}")
        units = units or dq
        dtype = q.dtype
        slots: dict[str, Value | None] = dict.fromkeys(PARAM_SLOTS)

        def param(local, shape):
            return b.param(local, shape, dtype, weight_init, fan_in=shape[0], fan_out=shape[-1])

        if score in ("dot", "scaled_dot", "concat_product", "cosine") and dq != dk:
            raise b.error(f"attention: score={score} needs queries and keys of one width; got {q} and {k}",
                          'score="general" or "additive" relate different widths')
        if score == "general":
            slots["W"] = param("W", (dq, dk))
        elif score in ("additive", "concat_product"):
            slots["W_q"] = param("W_q", (dq, units))
            w_k = param("W_k", (dk, units))
            slots["b"] = b.param("b", (units,), dtype, Init("zeros"))
            slots["v"] = b.param("v", (units,), dtype, weight_init, fan_in=units, fan_out=1)
            if score == "concat_product":
                slots["W_qk"] = param("W_qk", (dq, units))
            # Its own op, so the hoisting pass moves it out of a decoder's step.
            slots["keys_proj"] = b.emit("dense", [keys, w_k, None], {"act": None})[0]
        if window is not None and align == "predictive":
            slots["W_p"] = param("W_p", (dq, units))
            slots["v_p"] = b.param("v_p", (units,), dtype, weight_init, fan_in=units, fan_out=1)
        attrs = {"score": score, "hard": hard, "window": window, "align": align, "heads": heads, "causal": causal,
                 "sharpen": None}
        if isinstance(sharpen, Value):
            slots["beta"] = sharpen
        elif isinstance(sharpen, int | float) and not isinstance(sharpen, bool) and sharpen > 0:
            attrs["sharpen"] = float(sharpen)
        elif sharpen is not None:
            raise b.type_error(f"attention: 'sharpen' expects a positive number or a tensor of key strengths; "
                               f"got {sharpen!r}")
        inputs = [query, keys, values if values is not None else keys, mask, lengths,
                  *(slots[s] for s in PARAM_SLOTS)]
        context, weights = b.emit(self.name, inputs, attrs)
        return (context, weights) if return_weights else context

    @staticmethod
    def _check_query_keys(b, q: TensorType, k: TensorType) -> None:
        if q.rank not in (2, 3):
            raise b.error(f"attention: the query must be [N, D] or a sequence [S, N, D]; got {q}")
        if k.rank != 3:
            raise b.error(f"attention: keys must be a time-major memory [T, N, Dk]; got {k}",
                          "batch-first memories: transpose(m, [1, 0, 2])")
        if not q.dtype.is_float or k.dtype != q.dtype:
            raise b.type_error(f"attention needs floating-point queries and keys of one dtype; got {q} and {k}")
        if not same_dim(q.shape[-2], k.shape[1]):
            raise b.error(f"attention: the query's batch {q.shape[-2]} does not match the keys' batch "
                          f"{k.shape[1]} ({q} and {k})")

    def infer(self, attrs, inputs, b):
        q, k, v, mask, lengths = inputs[:5]
        self._check_query_keys(b, q, k)
        if v.rank != 3 or v.dtype != q.dtype or not same_dim(v.shape[0], k.shape[0]) \
                or not same_dim(v.shape[1], k.shape[1]):
            raise b.error(f"attention: values must be [T, N, Dv] matching the keys {k}; got {v}")
        seq = q.rank == 3
        T, N = k.shape[0], k.shape[1]
        weights = TensorType(q.dtype, (q.shape[0], N, T) if seq else (N, T))
        if mask is not None:
            if mask.dtype is not DType.bool:
                raise b.type_error(f"attention: mask must be a bool tensor (true = may attend); got {mask}",
                                   "from lengths, pass lengths= instead")
            if mask.rank > weights.rank or broadcast_shapes(mask.shape, weights.shape) != weights.shape:
                want = "[S, N, T]" if seq else "[N, T]"
                raise b.error(f"attention: mask {mask} does not broadcast to the weights {D.shape_str(weights.shape)} "
                              f"{want}", "one entry per (query,) example and key; size-1 axes broadcast")
        if lengths is not None and (lengths.dtype is not DType.i32 or lengths.rank != 1
                                    or not same_dim(lengths.shape[0], N)):
            raise b.error(f"attention: lengths must be i32[{N}] (one per example); got {lengths}")
        if attrs["window"] is not None and attrs["align"] == "monotonic" and not seq:
            raise b.error("attention: align=\"monotonic\" centres the window on the query's position and needs "
                          f"a sequence of queries [S, N, D]; got {q}", 'use align="predictive" (local-p)')
        beta = inputs[5 + PARAM_SLOTS.index("beta")]
        if beta is not None and (beta.dtype != q.dtype or beta.shape != q.shape[:-1]):
            raise b.error(f"attention: sharpen must be {q.dtype.value}{D.shape_str(q.shape[:-1])} (one key strength "
                          f"per query); got {beta}")
        if attrs["causal"] and not seq:
            raise b.error(f"attention: causal=true needs a sequence of queries [S, N, D]; got {q}",
                          "one query per step attends to the keys so far: pass lengths=")
        heads = attrs["heads"]
        if heads > 1:
            if attrs["score"] not in ("dot", "scaled_dot") or attrs["hard"] or attrs["window"] is not None:
                raise b.error(f"attention: heads={heads} works with score=dot or scaled_dot, soft and global; got "
                              f"score={attrs['score']}" + (", hard=true" if attrs["hard"] else "")
                              + (", window" if attrs["window"] is not None else ""))
            for what, t in (("key", k), ("value", v)):
                if not isinstance(t.shape[-1], int) or t.shape[-1] % heads:
                    raise b.error(f"attention: heads={heads} does not divide the {what} width {t.shape[-1]}")
        context = TensorType(q.dtype, (*q.shape[:-1], v.shape[-1]))
        return [context, weights]

    def flops(self, op):
        q, k, v = (t.type for t in op.inputs[:3])
        pairs = D.mul(numel(q.shape[:-1]), k.shape[0])
        per = D.add(D.mul(2, D.add(k.shape[-1], v.shape[-1])), 4)
        if op.attrs["score"] in ("additive", "concat_product"):
            units = op.inputs[5 + PARAM_SLOTS.index("v")].type.shape[0]
            per = D.add(per, 3 * units)
            if op.attrs["score"] == "concat_product":
                per = D.add(per, D.mul(2 * units, q.shape[-1]))
        return D.mul(pairs, per)

    def lower(self, ctx, op, inputs):
        return lower_attention(ctx, op, inputs)


def lower_attention(ctx, op, inputs: list[str]) -> list[str]:
    """Batch-major MatMuls: Q [N, S, Dq], K [N, T, Dk], V [N, T, Dv]; scores [N, S, T]."""
    a = op.attrs
    q_t = op.inputs[0].type
    seq = q_t.rank == 3
    dtype = q_t.dtype.numpy
    query, keys, values, mask, lengths = inputs[:5]
    p = dict(zip(PARAM_SLOTS, inputs[5:]))

    def const(x, hint="c"):
        return ctx.const(np.asarray(x, dtype), hint)

    Q = ctx.node("Transpose", [query], perm=[1, 0, 2])[0] if seq else ctx.node(
        "Unsqueeze", [query, ctx.ints([1])])[0]
    heads = a.get("heads", 1)
    if heads > 1:  # heads as an axis: Q [N, h, S, d/h], K^T [N, h, d/h, T], V [N, h, T, dv/h]
        dk, dv = op.inputs[1].type.shape[-1] // heads, op.inputs[2].type.shape[-1] // heads
        Q = ctx.node("Transpose", [ctx.node("Reshape", [Q, ctx.ints([0, 0, heads, dk])])[0]], perm=[0, 2, 1, 3])[0]
        KT = ctx.node("Transpose", [ctx.node("Reshape", [keys, ctx.ints([0, 0, heads, dk])])[0]],
                      perm=[1, 2, 3, 0])[0]
        V = ctx.node("Transpose", [ctx.node("Reshape", [values, ctx.ints([0, 0, heads, dv])])[0]],
                     perm=[1, 2, 0, 3])[0]
    else:
        KT = ctx.node("Transpose", [keys], perm=[1, 2, 0])[0]  # [N, Dk, T]
        V = ctx.node("Transpose", [values], perm=[1, 0, 2])[0]
    score = a["score"]
    if score in ("dot", "scaled_dot"):
        if score == "scaled_dot":  # scale the (smaller) query, not the scores
            width = op.inputs[1].type.shape[-1] // heads
            Q = ctx.node("Mul", [Q, const(1.0 / math.sqrt(width), "scale")])[0]
        scores = ctx.node("MatMul", [Q, KT])[0]
    elif score == "general":
        scores = ctx.node("MatMul", [ctx.node("MatMul", [Q, p["W"]])[0], KT])[0]
    elif score == "cosine":
        eps = const(COSINE_EPS, "eps")
        qn = ctx.node("Max", [ctx.node("ReduceL2", [Q, ctx.ints([-1])], keepdims=1)[0], eps])[0]
        kn = ctx.node("Max", [ctx.node("ReduceL2", [KT, ctx.ints([1])], keepdims=1)[0], eps])[0]
        scores = ctx.node("MatMul", [ctx.node("Div", [Q, qn])[0], ctx.node("Div", [KT, kn])[0]])[0]
    else:  # additive, concat_product: v · tanh(q W_q + k W_k (+ (q ⊙ k) W_qk) + b) over [N, S, T, U]
        qw = ctx.node("Add", [ctx.node("MatMul", [Q, p["W_q"]])[0], p["b"]])[0]
        kw = ctx.node("Transpose", [p["keys_proj"]], perm=[1, 0, 2])[0]  # [N, T, U]
        hidden = ctx.node("Add", [ctx.node("Unsqueeze", [qw, ctx.ints([2])])[0],
                                  ctx.node("Unsqueeze", [kw, ctx.ints([1])])[0]])[0]
        if score == "concat_product":
            K = ctx.node("Transpose", [keys], perm=[1, 0, 2])[0]
            prod = ctx.node("Mul", [ctx.node("Unsqueeze", [Q, ctx.ints([2])])[0],
                                    ctx.node("Unsqueeze", [K, ctx.ints([1])])[0]])[0]
            hidden = ctx.node("Add", [hidden, ctx.node("MatMul", [prod, p["W_qk"]])[0]])[0]
        v_col = ctx.node("Unsqueeze", [p["v"], ctx.ints([1])])[0]
        scores = ctx.node("MatMul", [ctx.node("Tanh", [hidden])[0], v_col])[0]
        scores = ctx.node("Squeeze", [scores, ctx.ints([3])])[0]
    if a.get("sharpen") is not None:
        scores = ctx.node("Mul", [scores, const(a["sharpen"], "beta")])[0]
    elif p["beta"]:  # [N] or [S, N] -> [N, 1, 1] or [N, S, 1] (heads: [N, 1, S, 1])
        beta = p["beta"]
        beta = ctx.node("Transpose", [beta], perm=[1, 0])[0] if seq else ctx.node(
            "Unsqueeze", [beta, ctx.ints([1])])[0]
        beta = ctx.node("Unsqueeze", [beta, ctx.ints([1, 3] if heads > 1 else [2])])[0]
        scores = ctx.node("Mul", [scores, beta])[0]
    valid = None
    if mask:
        m = mask
        rank = op.inputs[3].type.rank
        full = 3 if seq else 2
        if rank < full:
            m = ctx.node("Unsqueeze", [m, ctx.ints(list(range(full - rank)))])[0]
        m = ctx.node("Transpose", [m], perm=[1, 0, 2])[0] if seq else ctx.node("Unsqueeze", [m, ctx.ints([1])])[0]
        valid = m
    causal = a.get("causal", False)
    pos = L.positions(ctx, keys, 0) if (lengths or causal or a["hard"] or a["window"] is not None) else None
    if lengths:
        valid = L.both(ctx, valid, L.lengths_valid(ctx, lengths, pos, 3))
    if causal:  # key t <= query s: [1, S, T], of the rank of the other masks
        spos = ctx.node("Unsqueeze", [L.positions(ctx, query, 0), ctx.ints([1])])[0]
        earlier = ctx.node("LessOrEqual", [pos, spos])[0]
        valid = L.both(ctx, valid, ctx.node("Unsqueeze", [earlier, ctx.ints([0])])[0])
    gauss = None
    if a["window"] is not None:
        T = ctx.node("Cast", [L.axis_size(ctx, keys, 0)], to=op.inputs[0].type.dtype.onnx)[0]
        posf = ctx.node("Cast", [pos], to=op.inputs[0].type.dtype.onnx)[0]
        if a["align"] == "predictive":  # p = T sigmoid(v_p · tanh(q W_p)): [N, S, 1]
            hid = ctx.node("Tanh", [ctx.node("MatMul", [Q, p["W_p"]])[0]])[0]
            v_col = ctx.node("Unsqueeze", [p["v_p"], ctx.ints([1])])[0]
            centre = ctx.node("Mul", [T, ctx.node("Sigmoid", [ctx.node("MatMul", [hid, v_col])[0]])[0]])[0]
        else:  # p = s: [S, 1]
            spos = ctx.node("Cast", [L.positions(ctx, query, 0)], to=op.inputs[0].type.dtype.onnx)[0]
            centre = ctx.node("Unsqueeze", [spos, ctx.ints([1])])[0]
        dist = ctx.node("Sub", [posf, centre])[0]
        inside = ctx.node("LessOrEqual", [ctx.node("Abs", [dist])[0], const(a["window"], "window")])[0]
        valid = L.both(ctx, valid, inside)
        sigma = a["window"] / 2.0
        coef = const(-1.0 / (2.0 * sigma * sigma), "gauss")
        gauss = ctx.node("Exp", [ctx.node("Mul", [ctx.node("Mul", [dist, dist])[0], coef])[0]])[0]
    if heads > 1 and valid is not None:  # [N, S, T] -> [N, 1, S, T]
        valid = ctx.node("Unsqueeze", [valid, ctx.ints([1])])[0]
    if a["hard"]:
        weights = L.hard_weights(ctx, scores, valid, pos, dtype)
    else:
        weights = L.masked_softmax(ctx, scores, valid, dtype)
    if gauss is not None:
        weights = ctx.node("Mul", [weights, gauss])[0]
    context = ctx.node("MatMul", [weights, V])[0]
    if heads > 1:  # [N, h, S, dv/h] -> [N, S, dv]; weights averaged over the heads
        context = ctx.node("Transpose", [context], perm=[0, 2, 1, 3])[0]
        context = ctx.node("Reshape", [context, ctx.ints([0, 0, op.inputs[2].type.shape[-1]])])[0]
        weights = ctx.node("ReduceMean", [weights, ctx.ints([1])], keepdims=0)[0]
    if seq:
        context = ctx.node("Transpose", [context], perm=[1, 0, 2])[0]
        weights = ctx.node("Transpose", [weights], perm=[1, 0, 2])[0]
    else:
        context = ctx.node("Squeeze", [context, ctx.ints([1])])[0]
        weights = ctx.node("Squeeze", [weights, ctx.ints([1])])[0]
    return [context, weights]

