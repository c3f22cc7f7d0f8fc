"""Multi-head attention, parameter for parameter PyTorch's `nn.MultiheadAttention`.

    multihead_attention(query, key=query, value=key, heads=H, kv_heads=H, causal=false,
                        key_padding_mask=, lengths=, attn_mask=, bias=true, batch_first=false)

Shapes (time-major, PyTorch's default; `batch_first=true` swaps the first two axes):
query [L, N, E], key [S, N, kdim], value [S, N, vdim]; output [L, N, E]; weights
[N, L, S] averaged over the heads (`average_weights=false`: [N, H, L, S]).

    Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v     (split into heads)
    head_h = softmax(Q_h K_g(h)^T / sqrt(E/H) + attn_mask, blocked -> excluded) V_g(h)
    output = concat_h(head_h) W_o^T + b_o

With `kv_heads` = G < H (grouped-query attention), K and V have G heads of width E/H and
query head h reads key/value head h // (H/G). A key s is blocked for query l when
key_padding_mask[n, s] is true (PyTorch's convention: true = padding), s >= lengths[n],
`causal` and s > l, or a bool attn_mask[l, s] is true; a float attn_mask is added to the
scores. A query with every key blocked gets zero weights (PyTorch gives NaN).

Parameters (PyTorch's names and layouts, so a state dict loads by name):

    in_proj_weight   [3E, E]      W_q; W_k; W_v stacked, when kdim = vdim = E and G = H
    q_proj_weight    [E, E]       otherwise, separately
    k_proj_weight    [G*E/H, kdim]
    v_proj_weight    [G*E/H, vdim]
    in_proj_bias     [E + 2*G*E/H]  b_q; b_k; b_v (bias=true)
    out_proj.weight  [E, E]
    out_proj.bias    [E]          (bias=true)

Dropout is a training-time regulariser: at inference the identity (`dropout=` is accepted
and ignored).
"""

from __future__ import annotations

import math

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import same_dim, tensor_or_none

LOWERINGS = ("auto", "decomposed", "onnx", "contrib")
# IR inputs: query, key, value, key_padding_mask, lengths, attn_mask, then the parameters.
PARAMS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
          "out_proj.weight", "out_proj.bias")


@register
class MultiheadAttention(OpDef):
    name = "multihead_attention"
    doc = ("multi-head (and grouped-query) scaled dot-product attention with nn.MultiheadAttention's "
           "parameters: query [L, N, E], key [S, N, kdim], value [S, N, vdim] -> [L, N, E]")
    has_params = True
    signature = (
        Arg("query", "tensor"),
        Arg("key", "any", None, doc="default: the query (self-attention)"),
        Arg("value", "any", None, doc="default: the key"),
        Arg("heads", "int", positive=True, doc="number of query heads H; must divide E"),
        Arg("kv_heads", "any", None, doc="key/value heads G (grouped-query attention); must divide H"),
        Arg("causal", "bool", False, doc="query l attends to keys s <= l"),
        Arg("key_padding_mask", "any", None, doc="bool [N, S], true = padding (ignored key)"),
        Arg("lengths", "any", None, doc="i32[N]: keys s < lengths[n] are real"),
        Arg("attn_mask", "any", None, doc="[L, S] or [N*H, L, S]: bool (true = blocked) or float (added)"),
        Arg("bias", "bool", True, doc="in_proj_bias and out_proj.bias"),
        Arg("return_weights", "bool", False, doc="also return the attention weights"),
        Arg("average_weights", "bool", True, doc="weights averaged over heads [N, L, S], else [N, H, L, S]"),
        Arg("batch_first", "bool", False, doc="[N, L, E] instead of [L, N, E]"),
        Arg("dropout", "float", 0.0, doc="training only: the identity at inference"),
        Arg("lowering", "choice", "auto", choices=LOWERINGS,
            doc="MatMul/Softmax, ONNX Attention (opset 23) or com.microsoft.MultiHeadAttention"),
        Arg("weight_init", "init", Init("glorot_uniform")),
    )
    cases = (
        Case("multihead_attention(x, heads=2)", {"x": "{f}[T, N, 4]"}),
        Case("multihead_attention(q, m, heads=2, causal=false, lengths=lens)",
             {"q": "{f}[L, N, 6]", "m": "{f}[5, N, 6]", "lens": "i32[N]"}, int_high=6, note="cross, lengths"),
        Case("""
  y, w = multihead_attention(x, heads=2, causal=true, key_padding_mask=pad, return_weights=true)
  output out = y
  output weights = w""", {"x": "{f}[T, N, 4]", "pad": "bool[N, T]"}, note="causal and padding"),
        Case("multihead_attention(q, k, v, heads=4, kv_heads=2, batch_first=true, bias=false)",
             {"q": "{f}[N, L, 8]", "k": "{f}[N, S, 3]", "v": "{f}[N, S, 5]"}, note="GQA, kdim/vdim"),
        Case("""
  y, w = multihead_attention(x, heads=2, attn_mask=am, return_weights=true, average_weights=false)
  output out = y
  output weights = w""", {"x": "{f}[4, N, 4]", "am": "{f}[4, 4]"}, note="float mask, per-head weights"),
        Case("multihead_attention(x, heads=3, attn_mask=am)", {"x": "{f}[4, 2, 6]", "am": "bool[6, 4, 4]"},
             note="bool mask per batch and head"),
    )

    def build(self, b, query, key, value, heads, kv_heads, causal, key_padding_mask, lengths, attn_mask,
              bias, return_weights, average_weights, batch_first, dropout, lowering, weight_init):
        key = tensor_or_none(b, "multihead_attention", "key", key)
        value = tensor_or_none(b, "multihead_attention", "value", value)
        masks = [tensor_or_none(b, "multihead_attention", n, v) for n, v in
                 (("key_padding_mask", key_padding_mask), ("lengths", lengths), ("attn_mask", attn_mask))]
        key = key if key is not None else query
        value = value if value is not None else key
        if kv_heads is not None and (not isinstance(kv_heads, int) or isinstance(kv_heads, bool) or kv_heads <= 0):
            raise b.type_error(f"multihead_attention: 'kv_heads' expects a positive integer; got {kv_heads!r}")
        if not 0 <= dropout < 1:
            raise b.error(f"multihead_attention: dropout must be in [0, 1); got {dropout:g}")
        attrs = {"heads": heads, "kv_heads": kv_heads or heads, "causal": causal, "batch_first": batch_first,
                 "average_weights": average_weights, "lowering": lowering, "return_weights": return_weights}
        for t in (query, key, value):
            _check_seq(b, t.type, batch_first)
        E = b.static(query.type.shape[2], "multihead_attention: the embedding width E")
        kdim = b.static(key.type.shape[2], "multihead_attention: the key width")
        vdim = b.static(value.type.shape[2], "multihead_attention: the value width")
        _check_heads(b, E, heads, attrs["kv_heads"])
        kv_width = attrs["kv_heads"] * (E // heads)
        dtype = query.type.dtype
        p: dict[str, Value | None] = dict.fromkeys(PARAMS)
        if kdim == vdim == E and kv_width == E:
            p["in_proj_weight"] = b.param("in_proj_weight", (3 * E, E), dtype, weight_init, fan_in=E, fan_out=3 * E)
        else:
            p["q_proj_weight"] = b.param("q_proj_weight", (E, E), dtype, weight_init, fan_in=E, fan_out=E)
            p["k_proj_weight"] = b.param("k_proj_weight", (kv_width, kdim), dtype, weight_init,
                                         fan_in=kdim, fan_out=kv_width)
            p["v_proj_weight"] = b.param("v_proj_weight", (kv_width, vdim), dtype, weight_init,
                                         fan_in=vdim, fan_out=kv_width)
        if bias:
            p["in_proj_bias"] = b.param("in_proj_bias", (E + 2 * kv_width,), dtype, Init("zeros"))
        bound = 1.0 / math.sqrt(E)  # nn.Linear's default
        p["out_proj.weight"] = b.param("out_proj.weight", (E, E), dtype,
                                       Init("uniform", (("low", -bound), ("high", bound))), fan_in=E, fan_out=E)
        if bias:
            p["out_proj.bias"] = b.param("out_proj.bias", (E,), dtype, Init("zeros"))
        out, weights = b.emit(self.name, [query, key, value, *masks, *(p[n] for n in PARAMS)], attrs)
        return (out, weights) if return_weights else out

    def infer(self, attrs, inputs, b):
        q, k, v, kpm, lengths, am = inputs[:6]
        bf = attrs["batch_first"]
        for t in (q, k, v):
            _check_seq(b, t, bf)
        if k.dtype != q.dtype or v.dtype != q.dtype:
            raise b.type_error(f"multihead_attention: query, key and value need one dtype; got {q}, {k}, {v}")
        ax_len, ax_batch = (1, 0) if bf else (0, 1)
        Lq, N, S = q.shape[ax_len], q.shape[ax_batch], k.shape[ax_len]
        E = q.shape[2]
        if not same_dim(k.shape[ax_batch], N) or not same_dim(v.shape[ax_batch], N):
            raise b.error(f"multihead_attention: query, key and value need one batch size; got {q}, {k}, {v}")
        if not same_dim(v.shape[ax_len], S):
            raise b.error(f"multihead_attention: key and value need one length; got {k} and {v}")
        _check_heads(b, E, attrs["heads"], attrs["kv_heads"])
        if attrs["causal"] and not same_dim(Lq, S):
            raise b.error(f"multihead_attention: causal=true needs queries and keys of one length; got "
                          f"{Lq} queries and {S} keys",
                          "causal masking is for self-attention; for cross-attention pass an attn_mask")
        if kpm is not None and (kpm.dtype is not DType.bool or kpm.rank != 2 or not same_dim(kpm.shape[0], N)
                                or not same_dim(kpm.shape[1], S)):
            raise b.error(f"multihead_attention: key_padding_mask must be bool[{N}, {S}] (batch, keys; true = "
                          f"padding); got {kpm}", "lengths=lens (i32[N]) gives the same from sequence lengths")
        if lengths is not None and (lengths.dtype is not DType.i32 or lengths.rank != 1
                                    or not same_dim(lengths.shape[0], N)):
            raise b.error(f"multihead_attention: lengths must be i32[{N}] (one per example); got {lengths}")
        if am is not None:
            heads = attrs["heads"]
            want = [(Lq, S), (D.mul(N, heads), Lq, S)]
            if am.dtype is not DType.bool and am.dtype != q.dtype:
                raise b.type_error(f"multihead_attention: attn_mask must be bool (true = blocked) or {q.dtype.value} "
                                   f"(added to the scores); got {am}")
            if not any(len(w) == am.rank and all(same_dim(a, c) for a, c in zip(am.shape, w)) for w in want):
                raise b.error(f"multihead_attention: attn_mask must be [{Lq}, {S}] or [{D.mul(N, heads)}, {Lq}, "
                              f"{S}] (queries, keys); got {am}")
        params = dict(zip(PARAMS, inputs[6:]))
        kv_width = attrs["kv_heads"] * _static(E) // attrs["heads"]
        expect = {"in_proj_weight": (3 * _static(E), _static(E)), "q_proj_weight": (E, E),
                  "k_proj_weight": (kv_width, k.shape[2]), "v_proj_weight": (kv_width, v.shape[2]),
                  "in_proj_bias": (_static(E) + 2 * kv_width,), "out_proj.weight": (E, E), "out_proj.bias": (E,)}
        for n, t in params.items():
            if t is not None and (t.shape != expect[n] or t.dtype != q.dtype):
                raise b.error(f"multihead_attention: parameter {n} {t} should be {q.dtype.value}{list(expect[n])}")
        if params["in_proj_weight"] is None and params["q_proj_weight"] is None:
            raise b.error("multihead_attention: missing the input projection")
        if attrs["lowering"] in ("onnx", "contrib"):
            from netc.compiler.ops.mha_fused import fused_unsupported

            why = fused_unsupported(attrs, list(inputs), attrs["lowering"])
            if why:
                raise b.error(f"multihead_attention: lowering=\"{attrs['lowering']}\" does not support {why}",
                              'lowering="decomposed" (or "auto") supports everything')
        weights = (N, Lq, S) if attrs["average_weights"] else (N, attrs["heads"], Lq, S)
        return [q, TensorType(q.dtype, weights)]

    def flops(self, op):
        q, k, v = (t.type for t in op.inputs[:3])
        bf = op.attrs["batch_first"]
        Lq, N, S = (q.shape[1], q.shape[0], k.shape[1]) if bf else (q.shape[0], q.shape[1], k.shape[0])
        E = q.shape[2]
        kvw = op.attrs["kv_heads"] * _static(E) // op.attrs["heads"]
        proj = D.add(D.mul(D.mul(Lq, N), 4 * _static(E) * _static(E)),
                     D.mul(D.mul(S, N), 2 * kvw * (_static(k.shape[2]) + _static(v.shape[2]))))
        attend = D.mul(D.mul(D.mul(Lq, S), N), 4 * _static(E) + 5 * op.attrs["heads"])
        return D.add(proj, attend)

    def lower(self, ctx, op, inputs):
        from netc.compiler.ops.mha_lower import lower_mha

        return lower_mha(ctx, op, inputs)


def _static(d) -> int:
    return d if isinstance(d, int) else 1


def _check_seq(b, t: TensorType, batch_first: bool) -> None:
    layout = "[N, L, E] (batch_first=true)" if batch_first else "[L, N, E] (time-major)"
    if t.rank != 3:
        raise b.error(f"multihead_attention expects sequences {layout}; got {t} (rank {t.rank})",
                      "batch-first data: batch_first=true" if not batch_first else "")
    if not t.dtype.is_float:
        raise b.type_error(f"multihead_attention needs floating-point sequences; got {t}",
                           "embed integer ids first: ids -> embed(vocab, dim)")


def _check_heads(b, E, heads: int, kv_heads: int) -> None:
    if isinstance(E, int) and E % heads:
        divisors = [h for h in range(1, min(E, 64) + 1) if E % h == 0]
        raise b.error(f"multihead_attention: heads={heads} does not divide the embedding width {E}",
                      f"heads must divide {E}: one of {', '.join(map(str, divisors[-6:]))}")
    if heads % kv_heads:
        raise b.error(f"multihead_attention: kv_heads={kv_heads} does not divide heads={heads}",
                      "each key/value head serves heads / kv_heads query heads")

