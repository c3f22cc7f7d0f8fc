"""Reference semantics of attention (netc.compiler.ops.attention and .mha document the
equations), written per example and per query with plain loops in float64, independent of
the batched ONNX lowerings."""

from __future__ import annotations

import math

import numpy as np

from netc.runtime.reference.registry import ref


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max())
    return e / e.sum()


def _weights(s: np.ndarray, valid: np.ndarray, hard: bool) -> np.ndarray:
    """Softmax (or one-hot arg-max) over the valid entries of `s`; zero where none is valid."""
    w = np.zeros_like(s)
    if not valid.any():
        return w
    idx = np.flatnonzero(valid)
    if hard:
        w[idx[np.argmax(s[idx])]] = 1.0
    else:
        w[idx] = _softmax(s[idx])
    return w


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt((x * x).sum())), 1e-8)


def _score(kind: str, q: np.ndarray, k: np.ndarray, kp: np.ndarray | None, p: dict) -> float:
    if kind == "dot":
        return float(q @ k)
    if kind == "scaled_dot":
        return float(q @ k) / math.sqrt(k.shape[0])
    if kind == "general":
        return float(q @ p["W"] @ k)
    if kind == "cosine":
        return float(_unit(q) @ _unit(k))
    hidden = q @ p["W_q"] + kp + p["b"]  # kp = k W_k
    if kind == "concat_product":
        hidden = hidden + (q * k) @ p["W_qk"]
    return float(p["v"] @ np.tanh(hidden))


@ref("attention")
def attention(query, keys, values, mask, lengths, keys_proj, W, W_q, b, v, W_qk, W_p, v_p, beta, *,
              score, hard, window, align, heads=1, causal=False, sharpen=None):
    f = np.float64
    p = {n: (None if a is None else a.astype(f)) for n, a in
         (("W", W), ("W_q", W_q), ("b", b), ("v", v), ("W_qk", W_qk), ("W_p", W_p), ("v_p", v_p))}
    seq = query.ndim == 3
    qs = query.astype(f) if seq else query.astype(f)[None]
    k, vals = keys.astype(f), values.astype(f)
    kp = None if keys_proj is None else keys_proj.astype(f)
    S, N = qs.shape[0], qs.shape[1]
    T = k.shape[0]
    wshape = (S, N, T)
    full = np.ones(wshape, bool)
    if mask is not None:
        m = mask if seq else np.broadcast_to(mask, (N, T))[None]
        full = full & np.broadcast_to(m, wshape)
    if causal:
        full = full & (np.arange(T)[None, :] <= np.arange(S)[:, None])[:, None, :]
    strength = np.full((S, N), 1.0 if sharpen is None else sharpen)
    if beta is not None:
        strength = beta.astype(f) if seq else beta.astype(f)[None]
    if heads > 1:
        return _multi_head(qs, k, vals, full, lengths, score, heads, seq, query.dtype, strength)
    weights = np.zeros(wshape, f)
    for s in range(S):
        for n in range(N):
            q = qs[s, n]
            scores = strength[s, n] * np.array([_score(score, q, k[t, n], None if kp is None else kp[t, n], p)
                                                for t in range(T)])
            valid = full[s, n].copy()
            if lengths is not None:
                valid &= np.arange(T) < lengths[n]
            gauss = np.ones(T)
            if window is not None:
                if align == "predictive":  # Luong local-p
                    centre = T / (1.0 + math.exp(-float(p["v_p"] @ np.tanh(q @ p["W_p"]))))
                else:
                    centre = float(s)
                dist = np.arange(T) - centre
                valid &= np.abs(dist) <= window
                gauss = np.exp(-dist**2 / (2 * (window / 2.0) ** 2))
            weights[s, n] = _weights(scores, valid, hard) * gauss
    context = np.einsum("snt,tnd->snd", weights, vals)
    if not seq:
        context, weights = context[0], weights[0]
    return context.astype(query.dtype), weights.astype(query.dtype)


def _multi_head(qs, k, vals, full, lengths, score, heads, seq, dtype, strength):
    """Per head h: queries, keys and values restricted to the h-th block of their widths."""
    S, N, _ = qs.shape
    T = k.shape[0]
    dk, dv = k.shape[-1] // heads, vals.shape[-1] // heads
    context = np.zeros((S, N, vals.shape[-1]))
    weights = np.zeros((S, N, T))
    for s in range(S):
        for n in range(N):
            valid = full[s, n].copy()
            if lengths is not None:
                valid &= np.arange(T) < lengths[n]
            for h in range(heads):
                q = qs[s, n, h * dk:(h + 1) * dk]
                scores = strength[s, n] * np.array([_score(score, q, k[t, n, h * dk:(h + 1) * dk], None, {})
                                                    for t in range(T)])
                w = _weights(scores, valid, False)
                context[s, n, h * dv:(h + 1) * dv] = w @ vals[:, n, h * dv:(h + 1) * dv]
                weights[s, n] += w / heads
    if not seq:
        context, weights = context[0], weights[0]
    return context.astype(dtype), weights.astype(dtype)


@ref("multihead_attention")
def multihead_attention(query, key, value, key_padding_mask, lengths, attn_mask, in_proj_weight, q_proj_weight,
                        k_proj_weight, v_proj_weight, in_proj_bias, out_w, out_b, *, heads, kv_heads, causal,
                        batch_first, average_weights, lowering, return_weights):
    f = np.float64
    q, k, v = (x.astype(f) for x in (query, key, value))
    if batch_first:  # work time-major: [len, N, width]
        q, k, v = (x.transpose(1, 0, 2) for x in (q, k, v))
    Lq, N, E = q.shape
    S = k.shape[0]
    H, G = heads, kv_heads
    hd = E // H
    if in_proj_weight is not None:
        wq, wk, wv = np.split(in_proj_weight.astype(f), 3)
    else:
        wq, wk, wv = (w.astype(f) for w in (q_proj_weight, k_proj_weight, v_proj_weight))
    bias = in_proj_bias.astype(f) if in_proj_bias is not None else np.zeros(E + 2 * G * hd)
    bq, bk, bv = bias[:E], bias[E:E + G * hd], bias[E + G * hd:]
    out = np.zeros((Lq, N, E))
    weights = np.zeros((N, H, Lq, S))
    for n in range(N):
        Q = q[:, n] @ wq.T + bq  # [L, E]
        K = k[:, n] @ wk.T + bk  # [S, G*hd]
        V = v[:, n] @ wv.T + bv
        heads_out = []
        for h in range(H):
            g = h // (H // G)
            Qh, Kh, Vh = Q[:, h * hd:(h + 1) * hd], K[:, g * hd:(g + 1) * hd], V[:, g * hd:(g + 1) * hd]
            s = Qh @ Kh.T / math.sqrt(hd)  # [L, S]
            blocked = np.zeros((Lq, S), bool)
            if attn_mask is not None:
                m = attn_mask if attn_mask.ndim == 2 else attn_mask[n * H + h]
                if m.dtype == bool:
                    blocked |= m
                else:
                    s = s + m.astype(f)
            if key_padding_mask is not None:
                blocked |= key_padding_mask[n][None, :]
            if lengths is not None:
                blocked |= (np.arange(S) >= lengths[n])[None, :]
            if causal:
                blocked |= np.arange(S)[None, :] > np.arange(Lq)[:, None]
            w = np.stack([_weights(s[i], ~blocked[i], False) for i in range(Lq)])
            weights[n, h] = w
            heads_out.append(w @ Vh)
        out[:, n] = np.concatenate(heads_out, axis=1) @ out_w.astype(f).T
        if out_b is not None:
            out[:, n] += out_b
    if batch_first:
        out = out.transpose(1, 0, 2)
    if average_weights:
        weights = weights.mean(axis=1)
    return out.astype(query.dtype), weights.astype(query.dtype)


@ref("rms_norm")
def rms_norm(x, scale, *, eps):
    x64 = x.astype(np.float64)
    rms = np.sqrt((x64 * x64).mean(axis=-1, keepdims=True) + eps)
    return (x64 / rms * scale).astype(x.dtype)


@ref("positional_encoding")
def positional_encoding(x, table, *, kind, batch_first, base):
    T, D = x.shape[1 if batch_first else 0], x.shape[2]
    if kind == "learned":
        P = table[:T].astype(np.float64)
    else:
        P = np.zeros((T, D))
        for t in range(T):
            for j in range(D):
                angle = t / base ** (2 * (j // 2) / D)
                P[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    P = P[:, None, :] if not batch_first else P[None]
    return (x.astype(np.float64) + P).astype(x.dtype)


@ref("cache_write")
def cache_write(cache, x, pos):
    out = cache.copy()
    for n, p in enumerate(pos):
        if 0 <= p < cache.shape[0]:
            out[p, n] = x[n]
    return out
