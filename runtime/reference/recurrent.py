"""Reference semantics of the recurrent cells and sequence structures, written from the
equations (structures.md; netc.compiler.ops.recurrent documents them) with plain loops:
one sequence at a time, one step at a time, gates in netc's order. Nothing here follows
ONNX's gate layout or its RNN/LSTM/GRU kernels.

Computation is in float64 and the results are cast back to the input's dtype.
"""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.math import apply_activation
from netc.runtime.reference.registry import ref


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # Split by sign so neither branch overflows.
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _rnn_step(x, h, c, p, attrs):
    """h_t = act(W x_t + b + R h_{t-1} + rb), act the activation's own reference."""
    a = p["W"] @ x + p["b"] + p["R"] @ h + p["rb"]
    return apply_activation(attrs["act"], a), None


def _lstm_step(x, h, c, p, attrs):
    H = h.shape[0]
    a = p["W"] @ x + p["b"] + p["R"] @ h + p["rb"]
    clip = attrs["clip"]

    def bound(v):
        return v if clip is None else np.clip(v, -clip, clip)

    if attrs["coupled"]:
        a_i, a_c, a_o = a[:H], a[H:2 * H], a[2 * H:]  # netc order without f: i, c, o
        p_i, p_o = (p["p"][:H], p["p"][H:]) if attrs["peephole"] else (0.0, 0.0)
    else:
        a_i, a_f, a_c, a_o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]  # netc order: i, f, c, o
        p_i, p_f, p_o = (p["p"][:H], p["p"][H:2 * H], p["p"][2 * H:]) if attrs["peephole"] else (0.0, 0.0, 0.0)
    i = _sigmoid(bound(a_i + p_i * c))
    if attrs["coupled"]:
        f = 1.0 - i
    else:
        f = _sigmoid(bound(a_f + attrs["forget_bias"] + p_f * c))
    c_tilde = np.tanh(bound(a_c))
    c_new = f * c + i * c_tilde
    o = _sigmoid(bound(a_o + p_o * c_new))
    return o * np.tanh(c_new), c_new


def _gru_step(x, h, c, p, attrs):
    H = h.shape[0]
    W, R, b, rb = p["W"], p["R"], p["b"], p["rb"]
    rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(("z", "r", "h"))}  # netc order: z, r, h
    z = _sigmoid(W[rows["z"]] @ x + b[rows["z"]] + R[rows["z"]] @ h + rb[rows["z"]])
    r = _sigmoid(W[rows["r"]] @ x + b[rows["r"]] + R[rows["r"]] @ h + rb[rows["r"]])
    if attrs["reset"] == "before":
        h_tilde = np.tanh(W[rows["h"]] @ x + b[rows["h"]] + R[rows["h"]] @ (r * h) + rb[rows["h"]])
    else:
        h_tilde = np.tanh(W[rows["h"]] @ x + b[rows["h"]] + r * (R[rows["h"]] @ h + rb[rows["h"]]))
    return (1.0 - z) * h + z * h_tilde, None


_STEP = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def _run_cell(cell: str, x, lengths, h0, c0, params, attrs):
    hidden, layers, dirs = attrs["hidden"], attrs["layers"], attrs["directions"]
    kinds = ("W", "R", "b", "rb") + (("p",) if attrs.get("peephole") else ())
    T, N = x.shape[0], x.shape[1]
    step = _STEP[cell]
    lens = [T] * N if lengths is None else [int(n) for n in lengths]
    seq = x.astype(np.float64)
    final_h = np.zeros((layers * dirs, N, hidden))
    final_c = np.zeros((layers * dirs, N, hidden))
    for layer in range(layers):
        out = np.zeros((T, N, dirs * hidden))
        for d in range(dirs):
            index = layer * dirs + d
            start = index * len(kinds)
            p = {k: np.asarray(v, np.float64) for k, v in zip(kinds, params[start:start + len(kinds)])}
            for n in range(N):
                h = np.zeros(hidden) if h0 is None else h0[index, n].astype(np.float64)
                c = np.zeros(hidden) if c0 is None else c0[index, n].astype(np.float64)
                if lens[n] == 0:  # no step: outputs stay zero, and so does the final state
                    continue
                steps = range(lens[n]) if d == 0 else reversed(range(lens[n]))
                for t in steps:
                    h, c = step(seq[t, n], h, c, p, attrs)
                    out[t, n, d * hidden:(d + 1) * hidden] = h
                final_h[index, n] = h
                if c is not None:
                    final_c[index, n] = c
        seq = out
    dtype = x.dtype
    result = (seq.astype(dtype), final_h.astype(dtype))
    return result + ((final_c.astype(dtype),) if cell == "lstm" else ())


def _cell(cell: str):
    def fn(x, lengths, h0, c0, *params, **attrs):
        attrs.setdefault("act", "tanh")
        attrs.setdefault("clip", None)
        attrs.setdefault("coupled", False)
        attrs.setdefault("peephole", False)
        attrs.setdefault("forget_bias", 0.0)
        attrs.setdefault("reset", "before")
        return _run_cell(cell, x, lengths, h0, c0, params, attrs)
    return fn


ref("rnn")(_cell("rnn"))
ref("lstm")(_cell("lstm"))
ref("gru")(_cell("gru"))


@ref("pyramid")
def pyramid(x, *, k):
    """out[t, n] = [x[k t, n]; x[k t + 1, n]; ...; x[k t + k - 1, n]], trailing steps dropped."""
    T, N, D = x.shape
    out = np.zeros((T // k, N, k * D), dtype=x.dtype)
    for t in range(T // k):
        for j in range(k):
            out[t, :, j * D:(j + 1) * D] = x[k * t + j]
    return out


@ref("delay")
def delay(x, *, k):
    """out[t] = x[t - k] for t >= k, zero before."""
    out = np.zeros_like(x)
    for t in range(k, x.shape[0]):
        out[t] = x[t - k]
    return out


@ref("last")
def last(x, lengths=None):
    """x[T - 1], or x[lengths[n] - 1, n] for each sequence n."""
    if lengths is None:
        return x[-1].copy()
    return np.stack([x[int(n_len) - 1, n] for n, n_len in enumerate(lengths)]).astype(x.dtype)
