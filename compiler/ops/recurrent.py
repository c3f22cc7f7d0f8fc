"""Standard recurrent cells (`rnn`, `lstm`, `gru`) and sequence structures (`pyramid`,
`delay`, `last`).

Sequences are time-major, `[T, N, D]` (ONNX layout 0). Every cell is one IR op with two
ONNX lowerings: the native `RNN`/`LSTM`/`GRU` op, and a `Scan` whose input projection is
hoisted out of the loop (one MatMul over all T steps; the body does only the recurrent
product and the gates). `lowering="auto"` picks between them with `choose_lowering`.

Semantics (structures.md; sigma = logistic sigmoid, (.) = elementwise product):

    rnn   h_t = act(W x_t + b + R h_{t-1} + rb)
    lstm  i = sigma(W_i x + b_i + R_i h + rb_i [+ p_i (.) c_{t-1}])
          f = sigma(W_f x + b_f + R_f h + rb_f + forget_bias [+ p_f (.) c_{t-1}])   (coupled: f = 1 - i)
          c~ = tanh(W_c x + b_c + R_c h + rb_c)
          c_t = f (.) c_{t-1} + i (.) c~
          o = sigma(W_o x + b_o + R_o h + rb_o [+ p_o (.) c_t])
          h_t = o (.) tanh(c_t)
          clip=k bounds every gate pre-activation (the argument of sigma or tanh) to [-k, k].
    gru   z = sigma(W_z x + b_z + R_z h + rb_z)                      (update gate)
          r = sigma(W_r x + b_r + R_r h + rb_r)                      (reset gate)
          reset="before" (the lectures; ONNX linear_before_reset=0):
              h~ = tanh(W_h x + b_h + R_h (r (.) h) + rb_h)
          reset="after" (cuDNN, PyTorch; ONNX linear_before_reset=1):
              h~ = tanh(W_h x + b_h + r (.) (R_h h + rb_h))
          h_t = (1 - z) (.) h_{t-1} + z (.) h~
          netc's z is the lectures' update gate: the share of the *new* state. ONNX and
          PyTorch use z' = 1 - z (h_t = (1 - z') h~ + z' h_{t-1}); since
          1 - sigma(a) = sigma(-a), their z-gate weights and biases are netc's negated.
          The native lowering and `import_torch_weights` apply that sign.

Stacked layers feed layer k's outputs to layer k+1. Bidirectional layers run a forward
and a backward pass and concatenate their outputs per step ([fwd; bwd]). With `lengths`
(i32[N]), sequence n has lengths[n] real steps (0 <= lengths[n] <= T): the backward pass
starts at its last real step, outputs at padded steps are zero, the final state is the
state after each sequence's last real step (backward: after step 0), and a sequence of
length 0 has a zero final state (ONNX `sequence_lens` semantics). A whole batch of zero
steps (T = 0) runs only with the native lowering: onnxruntime 1.32's Scan rejects empty
scan inputs.

Parameters, per layer k and direction (`fwd`, `bwd`), named `<layer>.l<k>.<dir>.<name>`
(e.g. `lstm0.l0.fwd.W`); G is the number of gates, H the hidden size, D_k the layer's
input width (D, then H or 2H for bidirectional layers below):

    W   [G*H, D_k]   input weights, rows grouped by gate
    R   [G*H, H]     recurrent weights
    b   [G*H]        input bias
    rb  [G*H]        recurrent bias (separate, so reset="after" GRUs import exactly)
    p   [3*H]        LSTM peepholes (i, f, o), only with peephole=true

Gate order (netc's own, one per cell): rnn (h); lstm (i, f, c, o), with f left out when
coupled=true (i, c, o; peepholes i, o); gru (z, r, h). The LSTM order is PyTorch's
(i, f, g, o); ONNX wants (i, o, f, c) and GRU (z, r, h) with z negated; PyTorch's GRU is
(r, z, n) with z negated. All parameters start uniform in [-1/sqrt(H), 1/sqrt(H)], as
PyTorch's. Final states are [layers*directions, N, H], index k*directions + d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, Op, TensorType, Value
from netc.compiler.ops import scan_guard
from netc.compiler.ops.activations import lower_activation
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import same_dim, tensor_or_none

DIRECTIONS = ("fwd", "bwd")
# netc's gate order per cell (the rows of W, R, b and rb).
GATES = {"rnn": ("h",), "lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h")}
COUPLED_GATES = ("i", "c", "o")
PEEPHOLES = ("i", "f", "o")
COUPLED_PEEPHOLES = ("i", "o")
# ONNX's orders.
_ONNX_GATES = {"rnn": ("h",), "lstm": ("i", "o", "f", "c"), "gru": ("z", "r", "h")}
_ONNX_PEEPHOLES = ("i", "o", "f")
_ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# PyTorch's orders (nn.RNN, nn.LSTM, nn.GRU); `~z` marks a gate whose sign differs.
_TORCH_GATES = {"rnn": ("h",), "lstm": ("i", "f", "c", "o"), "gru": ("r", "z", "h")}
_TORCH_NEGATED = {"rnn": (), "lstm": (), "gru": ("z",)}

LOWERINGS = ("auto", "native", "scan")

# `lowering="auto"`, measured on onnxruntime 1.32 CPU (2 cores). At T=100, N=32, D=H=256,
# 2 threads, sessions on one shared thread pool (benchmarks/recurrent_vs_torch.py, section
# 4), scan/native time: rnn 0.34 (bidirectional 2-layer 0.48), lstm 1.44 (1.14), gru 0.97
# (0.92), reset-after gru 0.96 (0.90). benchmarks/rnn_lowering.py gives the same winners
# with per-session pools (rnn 0.39-0.41, lstm 1.31-1.48, gru 0.67-0.74; 1 thread 0.50,
# 1.05, 0.94). The native LSTM kernel wins at every size measured (N = 1..32, H = 8..512).
# The Scan with the hoisted input projection wins for the vanilla RNN and the GRU once a
# step has enough work to hide the cost of its small per-step nodes: not for tiny layers
# (rnn N=4, H=16: 1.18), nor for GRUs below H = 128 (N=32, H=32: 1.06) or with a small
# batch (N=1, H=256: 1.34 with 1 thread, worse with 2).
AUTO_LOWERING = {"rnn": "scan", "lstm": "native", "gru": "scan"}
SCAN_MIN_HIDDEN = {"rnn": 32, "gru": 128}
SCAN_MIN_BATCH = {"rnn": 1, "gru": 8}  # applies when the batch size is known at compile time


def choose_lowering(cell: str, dtype: DType, requested: str = "auto", hidden: int = 256,
                    batch: D.Dim | None = None) -> str:
    """The lowering used for a cell: the requested one, else the measured winner.

    onnxruntime's native RNN/LSTM/GRU CPU kernels are float32-only, so any other dtype
    lowers to Scan."""
    if requested != "auto":
        return requested
    if dtype is not DType.f32:
        return "scan"
    choice = AUTO_LOWERING[cell]
    if choice == "scan" and (hidden < SCAN_MIN_HIDDEN[cell]
                             or (isinstance(batch, int) and batch < SCAN_MIN_BATCH[cell])):
        choice = "native"
    return choice


def gates_of(cell: str, coupled: bool = False) -> tuple[str, ...]:
    """netc's gate order of `cell` (the row blocks of W, R, b, rb)."""
    return COUPLED_GATES if cell == "lstm" and coupled else GATES[cell]


def param_kinds(peephole: bool) -> tuple[str, ...]:
    return ("W", "R", "b", "rb") + (("p",) if peephole else ())


def param_local_name(layer: int, direction: int, kind: str) -> str:
    return f"l{layer}.{DIRECTIONS[direction]}.{kind}"


# ---------------------------------------------------------------------------- checks


def _check_sequence(b, what: str, x: TensorType) -> None:
    if x.rank != 3:
        raise b.error(f"{what} expects a time-major sequence [T, N, D]; got {x} (rank {x.rank})",
                      "sequences are [time, batch, features]; transpose batch-first data with "
                      "transpose(x, [1, 0, 2])")
    if not x.dtype.is_float:
        raise b.type_error(f"{what} needs a floating-point sequence; got {x}",
                           "embed integer ids first: ids -> embed(vocab, dim)")


def _check_lengths(b, what: str, x: TensorType, lengths: TensorType | None) -> None:
    if lengths is None:
        return
    batch = x.shape[1]
    want = f"i32[{D.dim_str(batch)}] (one length per sequence of {x})"
    if lengths.dtype is not DType.i32:
        raise b.type_error(f"{what}: lengths must be {want}; got {lengths}", "convert with cast(lengths, i32)")
    if lengths.rank != 1 or not same_dim(lengths.shape[0], batch):
        raise b.error(f"{what}: lengths must be {want}; got {lengths}")


# ---------------------------------------------------------------------------- the cells


_COMMON_ARGS = (
    Arg("bidirectional", "bool", False, doc="a forward and a backward pass, outputs concatenated per step"),
    Arg("layers", "int", 1, positive=True, doc="stacked layers"),
    Arg("init", "any", None, doc="initial state [layers*directions, N, hidden] (lstm: a tuple (h0, c0))"),
    Arg("lengths", "any", None, doc="i32[N]: the real steps of each sequence"),
    Arg("lowering", "choice", "auto", choices=LOWERINGS, doc="native ONNX op, Scan, or the measured choice"),
    Arg("return_state", "bool", False, doc="also return the final state(s)"),
    Arg("weight_init", "init", None, doc="input weights W (default: PyTorch's uniform +-1/sqrt(hidden))"),
    Arg("recurrent_init", "init", None,
        doc="recurrent weights R, e.g. identity (IRNN) or orthogonal (one block per gate)"),
    Arg("bias_init", "init", None, doc="both biases b and rb (the sum is the effective bias)"),
)

# The activations onnxruntime's native RNN kernel computes, with their netc defaults as
# (ONNX name, activation_alpha, activation_beta); any other activation lowers to Scan.
NATIVE_RNN_ACTS: dict[str, tuple[str, float | None, float | None]] = {
    "tanh": ("Tanh", None, None), "relu": ("Relu", None, None), "sigmoid": ("Sigmoid", None, None),
    "softplus": ("Softplus", None, None), "leaky_relu": ("LeakyRelu", 0.01, None), "elu": ("Elu", 1.0, None),
    "identity": ("Affine", 1.0, 0.0),
}


class _Recurrent(OpDef):
    """Shared by rnn, lstm and gru. IR inputs: [x, lengths, h0, c0, *params] (absent
    optional inputs are None; params per layer and direction in `param_kinds` order).
    IR outputs: [y, h_n] (+ c_n for lstm)."""

    has_params = True
    # onnxruntime's native recurrent kernels are float32-only; float64 lowers to Scan
    # (tests/test_recurrent_cells.py runs it), so the generated cases run float32.
    float_dtypes = (DType.f32,)
    cell: str = ""

    def build(self, b, x, hidden, bidirectional, layers, init, lengths, lowering, return_state, weight_init,
              recurrent_init, bias_init, **cell_args):
        what = self.name
        if not isinstance(x, Value):
            raise b.type_error(f"{what} expects a tensor; got {type(x).__name__}")
        _check_sequence(b, what, x.type)
        width = b.static(x.type.shape[2], f"{what}: the feature size (axis 2 of {x.type})")
        lengths = tensor_or_none(b, what, "lengths", lengths)
        h0, c0 = self._init_states(b, init)
        attrs = {"hidden": hidden, "layers": layers, "directions": 2 if bidirectional else 1,
                 "lowering": lowering, **cell_args}
        self._check_attrs(b, attrs, x.type)
        dtype = x.type.dtype
        dirs = attrs["directions"]
        gates = len(gates_of(self.cell, attrs.get("coupled", False)))
        bound = 1.0 / math.sqrt(hidden)
        init_scheme = Init("uniform", (("low", -bound), ("high", bound)))
        params = []
        peephole = attrs.get("peephole", False)
        n_peep = len(COUPLED_PEEPHOLES if attrs.get("coupled") else PEEPHOLES)
        for layer in range(layers):
            d_in = width if layer == 0 else hidden * dirs
            for d in range(dirs):
                shapes = {"W": (gates * hidden, d_in), "R": (gates * hidden, hidden),
                          "b": (gates * hidden,), "rb": (gates * hidden,), "p": (n_peep * hidden,)}
                chosen = {"W": weight_init, "R": recurrent_init, "b": bias_init, "rb": bias_init}
                fans = {"W": (d_in, gates * hidden), "R": (hidden, gates * hidden)}
                for kind in param_kinds(peephole):
                    fan_in, fan_out = fans.get(kind, (hidden, hidden))
                    params.append(b.param(param_local_name(layer, d, kind), shapes[kind], dtype,
                                          chosen.get(kind) or init_scheme, fan_in=fan_in, fan_out=fan_out))
        outs = b.emit(self.name, [x, lengths, h0, c0, *params], attrs)
        if not return_state:
            return outs[0]
        if self.cell == "lstm":
            return outs[0], (outs[1], outs[2])
        return outs[0], outs[1]

    def _init_states(self, b, init: Any) -> tuple[Value | None, Value | None]:
        if init is None:
            return None, None
        if isinstance(init, Value):
            return init, None
        raise b.type_error(f"{self.name}: 'init' expects a tensor [layers*directions, N, hidden] or none; "
                           f"got {type(init).__name__}")

    def _check_attrs(self, b, attrs: dict[str, Any], x: TensorType) -> None:
        act = attrs.get("act", "tanh")
        if attrs["lowering"] == "native" and act not in NATIVE_RNN_ACTS:
            raise b.type_error(f"{self.name}: onnxruntime's native RNN has no {act} activation",
                               'use lowering="scan" or "auto" (which picks Scan for it); native: '
                               + ", ".join(NATIVE_RNN_ACTS))
        if attrs["lowering"] == "native" and x.dtype is not DType.f32:
            raise b.type_error(f"{self.name}: lowering=\"native\" needs f32 (onnxruntime's {_ONNX_OP[self.cell]} "
                               f"kernel is float32-only); got {x}", 'use lowering="scan" or "auto"')

    def infer(self, attrs, inputs, b):
        x, lengths, h0, c0 = inputs[:4]
        what = self.name
        _check_sequence(b, what, x)
        _check_lengths(b, what, x, lengths)
        self._check_attrs(b, attrs, x)
        hidden, layers, dirs = attrs["hidden"], attrs["layers"], attrs["directions"]
        state = TensorType(x.dtype, (layers * dirs, x.shape[1], hidden))
        for name, t in (("h0", h0), ("c0", c0)):
            if t is not None and (t.dtype != x.dtype or t.rank != 3
                                  or not all(same_dim(a, e) for a, e in zip(t.shape, state.shape))):
                raise b.error(f"{what}: initial state {name} must be {state} "
                              f"(layers*directions, batch, hidden); got {t}")
        n_kinds = len(param_kinds(attrs.get("peephole", False)))
        if len(inputs) != 4 + layers * dirs * n_kinds:
            raise b.error(f"{what}: expected {layers * dirs * n_kinds} parameters; got {len(inputs) - 4}")
        y = TensorType(x.dtype, (x.shape[0], x.shape[1], dirs * hidden))
        return [y, state] + ([state] if self.cell == "lstm" else [])

    def flops(self, op):
        x = op.inputs[0].type
        a = op.attrs
        hidden, dirs = a["hidden"], a["directions"]
        gates = len(gates_of(self.cell, a.get("coupled", False)))
        per_step = 0
        for layer in range(a["layers"]):
            d_in = x.shape[2] if layer == 0 else hidden * dirs
            per_step += dirs * (2 * gates * hidden * (d_in + hidden) + 8 * gates * hidden)
        return D.mul(D.mul(x.shape[0], x.shape[1]), per_step)

    def lower(self, ctx, op, inputs):
        spec = _Spec.of(op)
        x = op.inputs[0].type
        requested = op.attrs["lowering"]
        if op.attrs.get("act", "tanh") not in NATIVE_RNN_ACTS:
            requested = "scan"
        if choose_lowering(self.cell, x.dtype, requested, op.attrs["hidden"], x.shape[1]) == "native":
            return _lower_native(ctx, spec, inputs)
        # onnxruntime's Scan fails on 0 steps: with a symbolic T the whole lowering goes into
        # the else branch of an If (then: empty outputs, zero states). Only the Scan itself
        # in the branch would cost 13-22%: the step's weights, prepared (transposed,
        # regated) at the top level, are then two subgraphs away from the Gemms that use them
        # and onnxruntime does not prepack them; prepared inside the branch, they are folded
        # into it and prepacked as before.
        types = [v.type for v in op.outputs]
        return scan_guard.guard_empty(ctx, x.shape[0], inputs[0], types,
                                      lambda branch: _lower_scan(branch, spec, inputs, op),
                                      lambda branch: [scan_guard.empty_of(branch, types[0]),
                                                      *(scan_guard.zeros_of(branch, t) for t in types[1:])])


_X3 = "{f}[5, 2, 3]"


@register
class Rnn(_Recurrent):
    name = "rnn"
    cell = "rnn"
    doc = ("vanilla (Elman) RNN over a time-major sequence: h_t = act(W x_t + b + R h_{t-1} + rb), any "
           "activation (native ONNX RNN for tanh, relu, sigmoid, softplus, leaky_relu, elu, identity)")

    signature = (Arg("x", "tensor"), Arg("hidden", "int", positive=True),
                 Arg("act", "act", "tanh", doc="any activation; none is the identity"), *_COMMON_ARGS)

    def build(self, b, x, hidden, act, **common):
        return super().build(b, x, hidden, act=act or "identity", **common)

    cases = (
        Case("rnn(x, 4)", {"x": _X3}),
        Case('rnn(x, 4, lowering="native")', {"x": _X3}),
        Case('rnn(x, 4, lowering="scan")', {"x": _X3}),
        Case('rnn(x, 3, act=relu, lowering="native")', {"x": "{f}[T, N, 2]"}, note="symbolic T and N"),
        Case('rnn(x, 3, act=relu, lowering="scan")', {"x": "{f}[T, N, 2]"}, note="symbolic T and N"),
        Case("""
  y, h = rnn(x, 3, bidirectional=true, layers=2, init=h0, lengths=lens, lowering="native", return_state=true)
  output out = y
  output hn = h""", {"x": _X3, "h0": "{f}[4, 2, 3]", "lens": "i32[2]"}, int_high=6),
        Case("""
  y, h = rnn(x, 3, bidirectional=true, layers=2, init=h0, lengths=lens, lowering="scan", return_state=true)
  output out = y
  output hn = h""", {"x": "{f}[5, N, 3]", "h0": "{f}[4, N, 3]", "lens": "i32[N]"}, int_high=6),
        Case("rnn(x, 4, act=sigmoid)", {"x": "{f}[T, N, 3]"}, note="the lectures' naive RNN"),
        Case('rnn(x, 3, act=sigmoid, bidirectional=true, lowering="native")', {"x": _X3}),
        Case('rnn(x, 3, act=leaky_relu, lowering="native")', {"x": _X3}, note="activation_alpha"),
        Case('rnn(x, 3, act=elu, layers=2, lowering="native")', {"x": _X3}),
        Case('rnn(x, 3, act=softplus, lowering="native")', {"x": _X3}),
        Case('rnn(x * 0.5, 3, act=none, lowering="native")', {"x": _X3}, note="linear: Affine"),
        Case('rnn(x, 3, act=gelu, lengths=lens)', {"x": "{f}[5, N, 3]", "lens": "i32[N]"}, int_high=6,
             note="no native form: Scan"),
        Case('rnn(x, 3, act=swish, bidirectional=true)', {"x": _X3}),
        Case("rnn(x, 4, act=relu, recurrent_init=identity, weight_init=normal(std=0.1))", {"x": "{f}[T, N, 3]"},
             note="IRNN"),
        Case('lstm(x, 3, recurrent_init=orthogonal, weight_init=glorot_uniform)', {"x": _X3},
             note="initialisers on another cell"),
    )


@register
class Lstm(_Recurrent):
    name = "lstm"
    cell = "lstm"
    doc = "LSTM over a time-major sequence; peepholes, coupled input-forget gate, forget bias, clip"

    signature = (Arg("x", "tensor"), Arg("hidden", "int", positive=True),
                 Arg("peephole", "bool", False, doc="diagonal peepholes: p_i, p_f see c_{t-1}, p_o sees c_t"),
                 Arg("forget_bias", "float", 0.0, doc="constant added to the forget gate's pre-activation"),
                 Arg("coupled", "bool", False, doc="coupled input-forget gate: f = 1 - i"),
                 Arg("clip", "any", None, doc="bound every gate pre-activation to [-clip, clip]"),
                 *_COMMON_ARGS)

    def build(self, b, x, hidden, peephole, forget_bias, coupled, clip, **common):
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, int | float) or clip <= 0:
                raise b.type_error(f"lstm: 'clip' expects a positive number or none; got {clip!r}")
            clip = float(clip)
        if coupled and forget_bias != 0.0:
            raise b.type_error("lstm: forget_bias has no effect with coupled=true (f = 1 - i has no bias)",
                               "drop forget_bias, or use coupled=false")
        return super().build(b, x, hidden, peephole=peephole, forget_bias=forget_bias, coupled=coupled,
                             clip=clip, **common)

    def _init_states(self, b, init):
        if init is None:
            return None, None
        if isinstance(init, tuple) and len(init) == 2 and all(isinstance(v, Value) for v in init):
            return init
        raise b.type_error("lstm: 'init' expects a tuple (h0, c0) of tensors [layers*directions, N, hidden] "
                           f"or none; got {type(init).__name__}", "write init=(h0, c0)")

    cases = (
        Case("lstm(x, 4)", {"x": _X3}),
        Case('lstm(x, 4, lowering="native")', {"x": _X3}),
        Case('lstm(x, 4, lowering="scan")', {"x": _X3}),
        Case('lstm(x, 3, peephole=true, forget_bias=1.0, lowering="native")', {"x": "{f}[T, N, 2]"}),
        Case('lstm(x, 3, peephole=true, forget_bias=1.0, lowering="scan")', {"x": "{f}[T, N, 2]"}),
        Case('lstm(x * 4, 3, coupled=true, peephole=true, clip=0.5, lowering="native")', {"x": _X3}),
        Case('lstm(x * 4, 3, coupled=true, peephole=true, clip=0.5, lowering="scan")', {"x": _X3}),
        Case('lstm(x * 4, 3, clip=0.7, lowering="native")', {"x": _X3}),
        Case('lstm(x * 4, 3, clip=0.7, coupled=true, lowering="scan")', {"x": _X3}),
        Case("""
  y, (h, c) = lstm(x, 3, bidirectional=true, layers=2, init=(h0, c0), lengths=lens, peephole=true,
                   lowering="native", return_state=true)
  output out = y
  output hn = h
  output cn = c""", {"x": _X3, "h0": "{f}[4, 2, 3]", "c0": "{f}[4, 2, 3]", "lens": "i32[2]"}, int_high=6),
        Case("""
  y, (h, c) = lstm(x, 3, bidirectional=true, layers=2, init=(h0, c0), lengths=lens, peephole=true,
                   lowering="scan", return_state=true)
  output out = y
  output hn = h
  output cn = c""", {"x": "{f}[5, N, 3]", "h0": "{f}[4, N, 3]", "c0": "{f}[4, N, 3]", "lens": "i32[N]"},
             int_high=6),
        Case("""
  y, (h, c) = lstm(x, 2, layers=2, lengths=lens, coupled=true, lowering="scan", return_state=true)
  output out = y
  output hn = h
  output cn = c""", {"x": "{f}[T, N, 3]", "lens": "i32[N]"}, int_high=3, note="symbolic T, lengths"),
    )


@register
class Gru(_Recurrent):
    name = "gru"
    cell = "gru"
    doc = "GRU over a time-major sequence; reset gate before (lectures) or after (cuDNN) the recurrent product"

    signature = (Arg("x", "tensor"), Arg("hidden", "int", positive=True),
                 Arg("reset", "choice", "before", choices=("before", "after"),
                     doc="before: R_h (r*h) (ONNX linear_before_reset=0); after: r*(R_h h + rb_h) (PyTorch)"),
                 *_COMMON_ARGS)

    cases = (
        Case("gru(x, 4)", {"x": _X3}),
        Case('gru(x, 4, lowering="native")', {"x": _X3}),
        Case('gru(x, 4, lowering="scan")', {"x": _X3}),
        Case('gru(x, 3, reset="after", lowering="native")', {"x": "{f}[T, N, 2]"}),
        Case('gru(x, 3, reset="after", lowering="scan")', {"x": "{f}[T, N, 2]"}),
        Case("""
  y, h = gru(x, 3, bidirectional=true, layers=2, init=h0, lengths=lens, lowering="native", return_state=true)
  output out = y
  output hn = h""", {"x": _X3, "h0": "{f}[4, 2, 3]", "lens": "i32[2]"}, int_high=6),
        Case("""
  y, h = gru(x, 3, reset="after", bidirectional=true, layers=2, init=h0, lengths=lens, lowering="scan",
             return_state=true)
  output out = y
  output hn = h""", {"x": "{f}[5, N, 3]", "h0": "{f}[4, N, 3]", "lens": "i32[N]"}, int_high=6),
        Case("""
  y, h = gru(x, 3, reset="after", bidirectional=true, lengths=lens, lowering="native", return_state=true)
  output out = y
  output hn = h""", {"x": _X3, "lens": "i32[2]"}, int_high=6),
    )


# ---------------------------------------------------------------------------- lowering helpers


@dataclass(frozen=True)
class _Spec:
    cell: str
    hidden: int
    layers: int
    dirs: int
    act: str
    peephole: bool
    coupled: bool
    forget_bias: float
    clip: float | None
    reset: str
    dtype: np.dtype
    op: Op

    @staticmethod
    def of(op: Op) -> _Spec:
        a = op.attrs
        return _Spec(op.kind, a["hidden"], a["layers"], a["directions"], a.get("act", "tanh"),
                     a.get("peephole", False), a.get("coupled", False), a.get("forget_bias", 0.0),
                     a.get("clip"), a.get("reset", "before"), op.inputs[0].type.dtype.numpy, op)

    @property
    def gates(self) -> tuple[str, ...]:
        return gates_of(self.cell, self.coupled)

    @property
    def peepholes(self) -> tuple[str, ...]:
        return COUPLED_PEEPHOLES if self.coupled else PEEPHOLES

    def params(self, inputs: Sequence[str], layer: int, d: int) -> dict[str, str]:
        kinds = param_kinds(self.peephole)
        start = 4 + (layer * self.dirs + d) * len(kinds)
        return dict(zip(kinds, inputs[start:start + len(kinds)]))

    def d_in(self, layer: int) -> int:
        width = self.op.inputs[0].type.shape[2]
        return int(width) if layer == 0 else self.hidden * self.dirs

    def scalar(self, ctx, value: float, hint: str) -> str:
        return ctx.const(np.array(value, dtype=self.dtype), hint)

    def zeros(self, ctx, shape: Sequence[int]) -> str:
        value = numpy_helper.from_array(np.zeros([1], dtype=self.dtype))
        return ctx.node("ConstantOfShape", [ctx.ints(list(shape))], value=value)[0]


def _regate(ctx, spec: _Spec, name: str, src: Sequence[str], dst: Sequence[str], rest: Sequence[int],
            axis: int = 0, negate: Sequence[str] = (), zero: Sequence[str] = ()) -> str:
    """Reorder the gate blocks of `name` (blocks of `hidden` rows along `axis`, in order `src`)
    into order `dst`; gates in `negate` change sign; gates in `zero` or missing from `src`
    become zeros of shape [hidden, *rest]."""
    if tuple(src) == tuple(dst) and not negate and not zero:
        return name
    parts = ctx.node("Split", [name], n_out=len(src), axis=axis, num_outputs=len(src)) if len(src) > 1 else [name]
    by_gate = dict(zip(src, parts))
    pieces = []
    for gate in dst:
        if gate in by_gate and gate not in zero:
            piece = by_gate[gate]
            if gate in negate:
                piece = ctx.node("Neg", [piece])[0]
        else:
            piece = spec.zeros(ctx, [spec.hidden, *rest])
        pieces.append(piece)
    return ctx.node("Concat", pieces, axis=axis)[0] if len(pieces) > 1 else pieces[0]


def _stack(ctx, names: Sequence[str]) -> str:
    """[a, b, ...] -> a new leading axis."""
    stacked = [ctx.node("Unsqueeze", [n, ctx.ints([0])])[0] for n in names]
    return ctx.node("Concat", stacked, axis=0)[0] if len(stacked) > 1 else stacked[0]


def _forget_bias_vector(spec: _Spec, order: Sequence[str]) -> np.ndarray:
    vec = np.zeros(len(order) * spec.hidden, dtype=spec.dtype)
    if "f" in order:
        k = order.index("f")
        vec[k * spec.hidden:(k + 1) * spec.hidden] = spec.forget_bias
    return vec


def _trim(inputs: list[str]) -> list[str]:
    while inputs and inputs[-1] == "":
        inputs.pop()
    return inputs


def _lower_native(ctx, spec: _Spec, inputs: list[str]) -> list[str]:
    """One native RNN/LSTM/GRU node per layer (both directions in it), gates reordered to
    ONNX's order by Split/Concat of the initializers (onnxruntime folds them at load)."""
    x, lengths, h0, c0 = inputs[:4]
    onnx_gates = _ONNX_GATES[spec.cell]
    negate = ("z",) if spec.cell == "gru" else ()
    seq = x
    finals: list[list[str]] = [[], []]
    for layer in range(spec.layers):
        ws, rs, bs, ps = [], [], [], []
        for d in range(spec.dirs):
            p = spec.params(inputs, layer, d)
            ws.append(_regate(ctx, spec, p["W"], spec.gates, onnx_gates, [spec.d_in(layer)], negate=negate))
            rs.append(_regate(ctx, spec, p["R"], spec.gates, onnx_gates, [spec.hidden], negate=negate))
            wb = _regate(ctx, spec, p["b"], spec.gates, onnx_gates, [], negate=negate)
            if spec.forget_bias:
                wb = ctx.node("Add", [wb, ctx.const(_forget_bias_vector(spec, onnx_gates), "forget_bias")])[0]
            rb = _regate(ctx, spec, p["rb"], spec.gates, onnx_gates, [], negate=negate)
            bs.append(ctx.node("Concat", [wb, rb], axis=0)[0])
            if spec.peephole:
                ps.append(_regate(ctx, spec, p["p"], spec.peepholes, _ONNX_PEEPHOLES, []))
        first, last = layer * spec.dirs, (layer + 1) * spec.dirs
        init_h = ctx.node("Slice", [h0, ctx.ints([first]), ctx.ints([last]), ctx.ints([0])])[0] if h0 else ""
        init_c = ctx.node("Slice", [c0, ctx.ints([first]), ctx.ints([last]), ctx.ints([0])])[0] if c0 else ""
        node_inputs = [seq, _stack(ctx, ws), _stack(ctx, rs), _stack(ctx, bs), lengths, init_h]
        attrs: dict[str, Any] = {"hidden_size": spec.hidden, "layout": 0,
                                 "direction": "bidirectional" if spec.dirs == 2 else "forward"}
        if spec.cell == "rnn":
            name, alpha, beta = NATIVE_RNN_ACTS[spec.act]
            attrs["activations"] = [name] * spec.dirs
            if alpha is not None:
                attrs["activation_alpha"] = [alpha] * spec.dirs
            if beta is not None:
                attrs["activation_beta"] = [beta] * spec.dirs
        elif spec.cell == "gru":
            attrs["linear_before_reset"] = 1 if spec.reset == "after" else 0
        else:
            node_inputs += [init_c, _stack(ctx, ps) if spec.peephole else ""]
            attrs["input_forget"] = 1 if spec.coupled else 0
            attrs["clip"] = spec.clip
        n_out = 3 if spec.cell == "lstm" else 2
        if spec.cell == "gru":  # onnxruntime's GRU kernel aborts the process on 0 steps
            xt = spec.op.inputs[0].type
            y_t = TensorType(xt.dtype, (xt.shape[0], spec.dirs, xt.shape[1], spec.hidden))
            h_t = TensorType(xt.dtype, (spec.dirs, xt.shape[1], spec.hidden))
            gru_inputs = _trim(node_inputs)
            outs = scan_guard.guard_empty(
                ctx, xt.shape[0], seq, [y_t, h_t],
                lambda branch, ins=gru_inputs, a=attrs: branch.node("GRU", ins, n_out=2, **a),
                lambda branch, y_t=y_t, h_t=h_t: [scan_guard.empty_of(branch, y_t), scan_guard.zeros_of(branch, h_t)])
        else:
            outs = ctx.node(_ONNX_OP[spec.cell], _trim(node_inputs), n_out=n_out, **attrs)
        if spec.dirs == 1:
            seq = ctx.node("Squeeze", [outs[0], ctx.ints([1])])[0]
        else:
            y = ctx.node("Transpose", [outs[0]], perm=[0, 2, 1, 3])[0]
            seq = ctx.node("Reshape", [y, ctx.ints([0, 0, 2 * spec.hidden])])[0]
        for k in range(n_out - 1):
            finals[k].append(outs[1 + k])
    states = [ctx.node("Concat", f, axis=0)[0] if len(f) > 1 else f[0] for f in finals if f]
    xt = spec.op.inputs[0].type
    if spec.cell == "lstm" and not isinstance(xt.shape[0], int):
        # onnxruntime's LSTM gives a zero Y_h but a non-zero Y_c for 0 steps: zero it, as
        # the definition (and the reference) says. One Where on a [dirs*layers, N, H] tensor.
        steps = ctx.node("Shape", [x], start=0, end=1)[0]
        ran = ctx.node("Greater", [steps, ctx.ints([0])])[0]
        states[1] = ctx.node("Where", [ran, states[1], spec.scalar(ctx, 0.0, "zero")])[0]
    return [seq, *states]


# Gate order inside the Scan lowering: the sigmoid gates first and contiguous, so one
# Sigmoid covers them.
_SCAN_GATES = {"rnn": ("h",), "lstm": ("i", "f", "o", "c"), "gru": ("z", "r", "h")}
_SCAN_COUPLED = ("i", "o", "c")


class _Body:
    """A Scan body under construction; value names come from the enclosing context so they
    are unique in the whole model (ONNX forbids shadowing outer-scope names)."""

    def __init__(self, ctx, spec: _Spec, hint: str):
        self.ctx, self.spec, self.hint = ctx, spec, hint
        self.nodes: list = []
        self.inputs: list = []
        self.outputs: list = []

    def _dims(self, shape: Sequence[D.Dim]) -> list:
        return [d if isinstance(d, int) else D.dim_str(d) for d in shape]

    def input(self, hint: str, shape: Sequence[D.Dim], elem: int | None = None) -> str:
        name = self.ctx.fresh(f"{self.hint}/{hint}")
        elem = elem if elem is not None else helper.np_dtype_to_tensor_dtype(self.spec.dtype)
        self.inputs.append(helper.make_tensor_value_info(name, elem, self._dims(shape)))
        return name

    def output(self, name: str, shape: Sequence[D.Dim]) -> None:
        elem = helper.np_dtype_to_tensor_dtype(self.spec.dtype)
        self.outputs.append(helper.make_tensor_value_info(name, elem, self._dims(shape)))

    def node(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        outs = [self.ctx.fresh(f"{self.hint}/{op_type}") for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.ctx.fresh(f"{self.hint}/{op_type}#"),
                                           **attrs))
        return outs

    def one(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        return self.node(op_type, inputs, **attrs)[0]

    def graph(self):
        return helper.make_graph(self.nodes, self.ctx.fresh(f"{self.hint}_body"), self.inputs, self.outputs)


@dataclass
class _DirParams:
    """Outer-scope values one direction's step reads (already transposed and reordered)."""

    rt: str  # R^T [H, G*H] in scan order (gru: the z, r part)
    rt_h: str = ""  # gru: R_h^T [H, H]
    rb_h: str = ""  # gru reset="after": rb_h [H]
    p_in: str = ""  # lstm peepholes on c_{t-1}: [p_i; p_f] (coupled: p_i)
    p_o: str = ""  # lstm peephole on c_t


def _scan_order(spec: _Spec) -> tuple[str, ...]:
    return _SCAN_COUPLED if spec.cell == "lstm" and spec.coupled else _SCAN_GATES[spec.cell]


def _transpose(ctx, name: str) -> str:
    return ctx.node("Transpose", [name], perm=[1, 0])[0]


def _slice_rows(ctx, name: str, start: int, stop: int) -> str:
    return ctx.node("Slice", [name, ctx.ints([start]), ctx.ints([stop]), ctx.ints([0])])[0]


def _lower_scan(ctx, spec: _Spec, inputs: list[str], op: Op) -> list[str]:
    """Per layer: MatMuls project the whole sequence, one per direction (gru: two), biases
    and the forget bias folded in; then one Scan runs both directions' recurrences side by
    side (the backward one with reversed scan input and output directions)."""
    x, lengths, h0, c0 = inputs[:4]
    xt = op.inputs[0].type
    H = spec.hidden
    order = _scan_order(spec)
    G = len(order)
    is_lstm = spec.cell == "lstm"
    shape_n = [xt.shape[1], H]

    mask = ""
    if lengths:
        if isinstance(xt.shape[0], int):
            steps = ctx.const(np.arange(xt.shape[0], dtype=np.int64).reshape(-1, 1), "steps")
        else:
            t = ctx.node("Squeeze", [ctx.node("Shape", [x], start=0, end=1)[0], ctx.ints([0])])[0]
            zero, one = ctx.const(np.array(0, np.int64), "zero"), ctx.const(np.array(1, np.int64), "one")
            steps = ctx.node("Unsqueeze", [ctx.node("Range", [zero, t, one])[0], ctx.ints([1])])[0]
        lens64 = ctx.node("Cast", [lengths], to=TensorProto.INT64)[0]
        mask = ctx.node("Unsqueeze", [ctx.node("Less", [steps, lens64])[0], ctx.ints([2])])[0]  # [T, N, 1]

    zero_state = ""
    if not h0 or (is_lstm and not c0):
        n_dim = ctx.node("Shape", [x], start=1, end=2)[0]
        value = numpy_helper.from_array(np.zeros([1], dtype=spec.dtype))
        zero_state = ctx.node("ConstantOfShape", [ctx.node("Concat", [n_dim, ctx.ints([H])], axis=0)[0]],
                              value=value)[0]
    zero = spec.scalar(ctx, 0.0, "zero")

    def initial(state: str, index: int) -> str:
        if not state:
            return zero_state
        return ctx.node("Gather", [state, ctx.const(np.array(index, np.int64), "index")], axis=0)[0]

    seq = x
    finals: list[list[str]] = [[], []]
    for layer in range(spec.layers):
        d_in = spec.d_in(layer)
        weights, biases, dparams = [], [], []
        for d in range(spec.dirs):
            p = spec.params(inputs, layer, d)
            weights.append(_transpose(ctx, _regate(ctx, spec, p["W"], spec.gates, order, [d_in])))
            bias = _regate(ctx, spec, p["b"], spec.gates, order, [])
            # The recurrent bias folds into the hoisted projection, except GRU reset="after"'s
            # rb_h, which the reset gate multiplies.
            zeroed = ("h",) if spec.cell == "gru" and spec.reset == "after" else ()
            bias = ctx.node("Add", [bias, _regate(ctx, spec, p["rb"], spec.gates, order, [], zero=zeroed)])[0]
            if spec.forget_bias:
                bias = ctx.node("Add", [bias, ctx.const(_forget_bias_vector(spec, order), "forget_bias")])[0]
            biases.append(bias)
            r = _regate(ctx, spec, p["R"], spec.gates, order, [H])
            if spec.cell == "gru":
                dp = _DirParams(_transpose(ctx, _slice_rows(ctx, r, 0, 2 * H)),
                                rt_h=_transpose(ctx, _slice_rows(ctx, r, 2 * H, 3 * H)))
                if spec.reset == "after":
                    dp.rb_h = _slice_rows(ctx, p["rb"], 2 * H, 3 * H)  # netc order z, r, h
            else:
                dp = _DirParams(_transpose(ctx, r))
            if spec.peephole:
                pp = ctx.node("Split", [p["p"]], n_out=len(spec.peepholes), axis=0,
                              num_outputs=len(spec.peepholes))
                dp.p_in = pp[0] if spec.coupled else ctx.node("Concat", pp[:2], axis=0)[0]
                dp.p_o = pp[-1]
            dparams.append(dp)
        # The Scan inputs: per direction, its projection of the whole sequence (gru: the z, r
        # part and the h part), each from a MatMul of its own. One wide MatMul split into
        # them would copy the projection once more: 2-4% of the run at T=100, N=32, H=256.
        widths = [2 * H, H] if spec.cell == "gru" else [G * H]
        pieces = []
        for d in range(spec.dirs):
            start = 0
            for width in widths:
                w, bias = weights[d], biases[d]
                if len(widths) > 1:
                    w = ctx.node("Slice", [w, ctx.ints([start]), ctx.ints([start + width]), ctx.ints([1])])[0]
                    bias = _slice_rows(ctx, bias, start, start + width)
                pieces.append(ctx.node("Add", [ctx.node("MatMul", [seq, w])[0], bias])[0])  # [T, N, width]
                start += width

        body = _Body(ctx, spec, f"{spec.op.label or spec.cell}/l{layer}")
        n_states = 2 if is_lstm else 1
        state_in = [[body.input(f"{DIRECTIONS[d]}_{'hc'[k]}", shape_n) for k in range(n_states)]
                    for d in range(spec.dirs)]
        per_dir = len(widths)
        xs_in = [[body.input(f"{DIRECTIONS[d]}_x", [xt.shape[1], wd]) for wd in widths] for d in range(spec.dirs)]
        mask_in = [body.input(f"{DIRECTIONS[d]}_mask", [xt.shape[1], 1], TensorProto.BOOL) if mask else ""
                   for d in range(spec.dirs)]
        new_states, ys = [], []
        for d in range(spec.dirs):
            h = state_in[d][0]
            c = state_in[d][1] if is_lstm else ""
            h_new, c_new = _step(body, spec, dparams[d], xs_in[d], h, c)
            if mask:
                h_out = body.one("Where", mask_in[d], h_new, h)
                y = body.one("Where", mask_in[d], h_new, zero)
                c_out = body.one("Where", mask_in[d], c_new, c) if is_lstm else ""
            else:
                h_out, c_out, y = h_new, c_new, body.one("Identity", h_new)
            new_states.append([h_out] + ([c_out] if is_lstm else []))
            ys.append(y)
        for d in range(spec.dirs):
            for s in new_states[d]:
                body.output(s, shape_n)
        for y in ys:
            body.output(y, shape_n)

        scan_inputs, in_dirs = [], []
        for d in range(spec.dirs):
            scan_inputs += pieces[d * per_dir:(d + 1) * per_dir]
            in_dirs += [d] * per_dir
        if mask:
            scan_inputs += [mask] * spec.dirs
            in_dirs += list(range(spec.dirs))
        init_states = []
        for d in range(spec.dirs):
            init_states.append(initial(h0, layer * spec.dirs + d))
            if is_lstm:
                init_states.append(initial(c0, layer * spec.dirs + d))
        n_out = spec.dirs * n_states + spec.dirs
        outs = ctx.node("Scan", init_states + scan_inputs, n_out=n_out, body=body.graph(),
                        num_scan_inputs=len(scan_inputs), scan_input_directions=in_dirs,
                        scan_output_directions=list(range(spec.dirs)))
        y_outs = outs[spec.dirs * n_states:]
        seq = ctx.node("Concat", y_outs, axis=2)[0] if spec.dirs > 1 else y_outs[0]
        for d in range(spec.dirs):
            for k in range(n_states):
                finals[k].append(outs[d * n_states + k])
    states = []
    for f in finals[:2 if is_lstm else 1]:
        state = _stack(ctx, f)
        if lengths and (h0 or c0):
            # A sequence of length 0 never updates its state: its final state is zero, as
            # the native ops define it, not the initial state.
            nonzero = ctx.node("Greater", [lengths, ctx.const(np.array(0, np.int32), "zero_i32")])[0]
            nonzero = ctx.node("Unsqueeze", [nonzero, ctx.ints([0, 2])])[0]
            state = ctx.node("Where", [nonzero, state, zero])[0]
        states.append(state)
    return [seq, *states]


def _step(body: _Body, spec: _Spec, p: _DirParams, xs: list[str], h: str, c: str) -> tuple[str, str]:
    """One time step of one direction inside the Scan body; returns (h_t, c_t)."""
    ctx = body.ctx
    H = spec.hidden
    if spec.cell == "rnn":
        pre = body.one("Gemm", h, p.rt, xs[0])
        # The activation's own lowering, built in a child context and moved into the body.
        sub = ctx.child()
        h_new = lower_activation(sub, spec.act, pre, spec.op.inputs[0].type.dtype)
        body.nodes.extend(sub.nodes)
        return h_new, ""
    if spec.cell == "gru":
        x_zr, x_h = xs
        zr = body.one("Sigmoid", body.one("Gemm", h, p.rt, x_zr))
        z, r = body.node("Split", [zr], n_out=2, axis=1, num_outputs=2)
        if spec.reset == "before":
            cand = body.one("Gemm", body.one("Mul", r, h), p.rt_h, x_h)
        else:
            cand = body.one("Add", x_h, body.one("Mul", r, body.one("Gemm", h, p.rt_h, p.rb_h)))
        cand = body.one("Tanh", cand)
        return body.one("Add", h, body.one("Mul", z, body.one("Sub", cand, h))), ""
    # LSTM, scan order (i, f, o, c) or coupled (i, o, c).
    pre = body.one("Gemm", h, p.rt, xs[0])
    if not spec.peephole and not spec.clip and not spec.coupled:
        sig_pre, g_pre = body.node("Split", [pre, ctx.ints([3 * H, H])], n_out=2, axis=1)
        i, f, o = body.node("Split", [body.one("Sigmoid", sig_pre)], n_out=3, axis=1, num_outputs=3)
        g = body.one("Tanh", g_pre)
        c_new = body.one("Add", body.one("Mul", f, c), body.one("Mul", i, g))
        return body.one("Mul", o, body.one("Tanh", c_new)), c_new
    n_in = 1 if spec.coupled else 2
    in_pre, o_pre, g_pre = body.node("Split", [pre, ctx.ints([n_in * H, H, H])], n_out=3, axis=1)
    if spec.peephole:
        cc = c if spec.coupled else body.one("Concat", c, c, axis=1)
        in_pre = body.one("Add", in_pre, body.one("Mul", cc, p.p_in))

    def clip(v: str) -> str:
        if not spec.clip:
            return v
        return body.one("Clip", v, spec.scalar(ctx, -spec.clip, "clip_lo"), spec.scalar(ctx, spec.clip, "clip_hi"))

    g = body.one("Tanh", clip(g_pre))
    if spec.coupled:
        i = body.one("Sigmoid", clip(in_pre))
        c_new = body.one("Add", c, body.one("Mul", i, body.one("Sub", g, c)))  # (1 - i) c + i g
    else:
        i, f = body.node("Split", [body.one("Sigmoid", clip(in_pre))], n_out=2, axis=1, num_outputs=2)
        c_new = body.one("Add", body.one("Mul", f, c), body.one("Mul", i, g))
    if spec.peephole:
        o_pre = body.one("Add", o_pre, body.one("Mul", c_new, p.p_o))
    o = body.one("Sigmoid", clip(o_pre))
    return body.one("Mul", o, body.one("Tanh", c_new)), c_new


# ---------------------------------------------------------------------------- sequence structures


@register
class Pyramid(OpDef):
    name = "pyramid"
    doc = "join k adjacent steps: [T, N, D] -> [T/k, N, k*D] (pyramidal RNN; a symbolic T drops the remainder)"
    signature = (Arg("x", "tensor"), Arg("k", "int", 2, positive=True))
    float_dtypes = (DType.f32, DType.f64)
    cases = (
        Case("pyramid(x)", {"x": "{f}[6, 2, 3]"}),
        Case("pyramid(x, 3)", {"x": "{f}[6, N, 2]"}),
        Case("pyramid(x, 2)", {"x": "{f}[T, N, 3]"}, note="symbolic T: T//2 steps"),
        Case("x -> rnn(3) -> pyramid(2) -> gru(2)", {"x": "{f}[8, N, 2]"}, note="pyramidal stack"),
    )

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_sequence(b, "pyramid", x)
        k = attrs["k"]
        t, n, d = x.shape
        if isinstance(t, int) and t % k:
            raise b.error(f"pyramid: {t} steps do not divide into groups of {k}",
                          f"pad or trim the sequence to a multiple of {k} steps")
        return [TensorType(x.dtype, (D.floordiv(t, k), n, D.mul(d, k)))]

    def lower(self, ctx, op, inputs):
        (x,) = inputs
        k = op.attrs["k"]
        t, n, d = op.inputs[0].type.shape
        steps = D.floordiv(t, k)
        if not isinstance(t, int):
            end = ctx.dim_tensor(D.mul(steps, k))
            x = ctx.node("Slice", [x, ctx.ints([0]), end, ctx.ints([0])])[0]
        grouped = ctx.node("Reshape", [x, ctx.shape_tensor([-1, k, n, d])])[0]
        y = ctx.node("Transpose", [grouped], perm=[0, 2, 1, 3])[0]
        return ctx.node("Reshape", [y, ctx.shape_tensor([0, 0, D.mul(d, k)])])

    def flops(self, op):
        return 0


@register
class Delay(OpDef):
    name = "delay"
    doc = "target delay along axis 0 (time): output t is input t-k, zeros for t < k"
    signature = (Arg("x", "tensor"), Arg("k", "int"))
    float_dtypes = (DType.f32, DType.f64)
    cases = (
        Case("delay(x, 2)", {"x": "{f}[5, 2, 3]"}),
        Case("delay(x, 1)", {"x": "{f}[T, N, 3]"}),
        Case("delay(x, 0)", {"x": "{f}[4, 2]"}),
        Case("delay(x, 6)", {"x": "{f}[4, 2, 1]"}, note="longer than the sequence"),
        Case("x -> lstm(3) -> delay(3)", {"x": "{f}[T, N, 2]"}),
    )

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if x.rank < 1:
            raise b.error(f"delay needs a sequence with time on axis 0; got {x}")
        if attrs["k"] < 0:
            raise b.type_error(f"delay: k must be >= 0; got {attrs['k']}")
        return [x]

    def lower(self, ctx, op, inputs):
        k = op.attrs["k"]
        if k == 0:
            return ctx.node("Identity", inputs)
        # Pad k zero steps in front, keep the first T (also right when k >= T: all zeros).
        rank = op.inputs[0].type.rank
        pads = ctx.ints([k] + [0] * (rank - 1) + [0] * rank)
        padded = ctx.node("Pad", [inputs[0], pads])[0]
        return ctx.node("Slice", [padded, ctx.ints([0]), ctx.ints([-k]), ctx.ints([0])])


@register
class Last(OpDef):
    name = "last"
    doc = "many-to-one: the last step of [T, N, ...], or with lengths each sequence's last real step"
    signature = (Arg("x", "tensor"), Arg("lengths", "any", None))
    float_dtypes = (DType.f32, DType.f64)
    cases = (
        Case("last(x)", {"x": "{f}[5, 2, 3]"}),
        Case("last(x, lens + 1)", {"x": "{f}[4, N, 3]", "lens": "i32[N]"}, int_high=4),
        Case("last(x, lengths=lens + 1)", {"x": "{f}[T, N, 2, 2]", "lens": "i32[N]"}, int_high=2),
        Case("""
  y = lstm(x, 3, lengths=lens + 1)
  output out = last(y, lens + 1)""", {"x": "{f}[5, N, 2]", "lens": "i32[N]"}, int_high=5),
    )

    def build(self, b, x, lengths):
        lengths = tensor_or_none(b, "last", "lengths", lengths)
        return b.emit(self.name, [x, lengths], {})[0]

    def infer(self, attrs, inputs, b):
        x, lengths = inputs
        if x.rank < 2:
            raise b.error(f"last needs a sequence [T, N, ...]; got {x} (rank {x.rank})")
        _check_lengths(b, "last", x, lengths)
        return [TensorType(x.dtype, x.shape[1:])]

    def lower(self, ctx, op, inputs):
        x, lengths = inputs
        if not lengths:
            return ctx.node("Gather", [x, ctx.const(np.array(-1, np.int64), "last")], axis=0)
        rank = op.inputs[0].type.rank
        index = ctx.node("Sub", [ctx.node("Cast", [lengths], to=TensorProto.INT64)[0],
                                 ctx.const(np.array(1, np.int64), "one")])[0]
        index = ctx.node("Reshape", [index, ctx.ints([1, -1] + [1] * (rank - 2))])[0]
        shape = ctx.node("Concat", [ctx.ints([1]), ctx.node("Shape", [x], start=1)[0]], axis=0)[0]
        index = ctx.node("Expand", [index, shape])[0]
        picked = ctx.node("GatherElements", [x, index], axis=0)[0]
        return ctx.node("Squeeze", [picked, ctx.ints([0])])


# ---------------------------------------------------------------------------- PyTorch weights


def _as_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def _move_gates(a: np.ndarray, src: Sequence[str], dst: Sequence[str], negate: Sequence[str]) -> np.ndarray:
    blocks = dict(zip(src, np.split(a, len(src), axis=0)))
    return np.concatenate([-blocks[g] if g in negate else blocks[g] for g in dst], axis=0)


def import_torch_weights(module_or_state: Any, cell: str, label: str) -> dict[str, np.ndarray]:
    """netc parameters `<label>.l<k>.<fwd|bwd>.<W|R|b|rb>` from a PyTorch `nn.RNN`,
    `nn.LSTM` or `nn.GRU` (or its `state_dict()`); layers and directions are read from
    the names. Does not import torch.

    Mapping: `weight_ih_l<k>[_reverse]` -> W, `weight_hh_...` -> R, `bias_ih_...` -> b,
    `bias_hh_...` -> rb (zeros when the module has bias=False). Gate blocks move from
    PyTorch's order to netc's: LSTM (i, f, g, o) -> (i, f, c, o) (the same), GRU
    (r, z, n) -> (z, r, h) with the z rows negated (PyTorch's z is netc's 1 - z). A
    PyTorch GRU is reset-after: declare it `gru(..., reset="after")`. The netc layer must
    use the same hidden size, layers and bidirectional setting, no peepholes and no
    coupling; the PyTorch module's batch_first only changes its inputs, not its weights.
    """
    if cell not in GATES:
        raise ValueError(f"cell must be one of {', '.join(GATES)}; got {cell!r}")
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    state = {k: _as_numpy(v) for k, v in state.items()}
    if any(k.startswith("weight_hr_") for k in state):
        raise ValueError("LSTMs with proj_size have no netc equivalent")
    out: dict[str, np.ndarray] = {}
    layer = 0
    while f"weight_ih_l{layer}" in state:
        for d, suffix in enumerate(("", "_reverse")):
            key = f"l{layer}{suffix}"
            if f"weight_ih_{key}" not in state:
                continue
            w, r = state[f"weight_ih_{key}"], state[f"weight_hh_{key}"]
            rows = w.shape[0]
            b = state.get(f"bias_ih_{key}", np.zeros(rows, w.dtype))
            rb = state.get(f"bias_hh_{key}", np.zeros(rows, w.dtype))
            for kind, value in (("W", w), ("R", r), ("b", b), ("rb", rb)):
                out[f"{label}.{param_local_name(layer, d, kind)}"] = np.ascontiguousarray(
                    _move_gates(value, _TORCH_GATES[cell], GATES[cell], _TORCH_NEGATED[cell]))
        layer += 1
    if not out:
        raise ValueError("no recurrent weights (weight_ih_l0, ...) found")
    return out


def export_torch_weights(params: Mapping[str, np.ndarray], cell: str, label: str) -> dict[str, np.ndarray]:
    """The inverse of `import_torch_weights`: a PyTorch `state_dict` (NumPy arrays; wrap
    them with torch.from_numpy) for the netc layer `label` (no peepholes, not coupled)."""
    if cell not in GATES:
        raise ValueError(f"cell must be one of {', '.join(GATES)}; got {cell!r}")
    names = {"W": "weight_ih", "R": "weight_hh", "b": "bias_ih", "rb": "bias_hh"}
    out: dict[str, np.ndarray] = {}
    prefix = f"{label}.l"
    for name, value in params.items():
        if not name.startswith(prefix):
            continue
        layer_s, direction, kind = name[len(prefix):].split(".")
        if kind not in names:
            raise ValueError(f"{name}: PyTorch's {cell.upper()} has no peepholes")
        suffix = "_reverse" if direction == "bwd" else ""
        out[f"{names[kind]}_l{layer_s}{suffix}"] = np.ascontiguousarray(
            _move_gates(np.asarray(value), GATES[cell], _TORCH_GATES[cell], _TORCH_NEGATED[cell]))
    if not out:
        raise ValueError(f"no parameters of layer '{label}' found")
    return out
