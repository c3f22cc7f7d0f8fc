"""Normalisation and regularisation layers: batch and layer normalisation, dropout, and the
layers with learned or grouped nonlinearities that sit beside them: PReLU and maxout."""

from __future__ import annotations

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.shape import divide_dims, lower_reshape
from netc.compiler.shapes import numel, replace_dim


def _float_input(b, name: str, x) -> None:
    if not x.type.dtype.is_float:
        raise b.type_error(f"{name} needs a floating-point tensor; got {x.type}", "convert with cast(x, f32)")


# Ops whose rank-3 outputs are time-major sequences [T, N, D].
_SEQUENCE_OPS = ("rnn", "lstm", "gru", "recur", "generate", "pyramid", "delay")
# Symbolic dims on axis 0 that name time (netc's convention is [T, N, D]).
_TIME_NAMES = ("T", "S", "time", "steps", "seq")
_BATCH_NAMES = ("N", "B", "batch")


def _sequence_origin(x) -> str | None:
    """Why a rank-3 tensor reads as a time-major sequence: the sequence op it comes from
    (through ops that keep the layout, e.g. activations), or a time-named axis 0."""
    from netc.compiler.ops.registry import REGISTRY

    v, hops = x, 0
    while v.producer is not None and hops < 32:
        op = v.producer
        if op.kind in _SEQUENCE_OPS:
            return f"it comes from {op.kind} (time-major [T, N, D])"
        first = op.inputs[0] if op.inputs else None
        if not REGISTRY[op.kind].step_polymorphic or first is None or first.type.rank != 3:
            break
        v, hops = first, hops + 1
    names = D.symbols(x.type.shape[0])
    if names & set(_TIME_NAMES):
        return f"its axis 0 is {D.dim_str(x.type.shape[0])}, a time axis in netc's [T, N, D] convention"
    return None


def batchnorm_axis(b, x, axis) -> int:
    """The statistics axis: `axis` when given; else 1, refused where a rank-3 input reads
    as a time-major sequence (its axis 1 would be the batch)."""
    if axis is not None:
        return b.axis(axis, x.type.rank, "batchnorm: axis")
    if x.type.rank == 3:
        why = _sequence_origin(x)
        batch = D.symbols(x.type.shape[1]) & set(_BATCH_NAMES)
        if why is None and batch:
            why = f"its axis 1 is the symbolic {D.dim_str(x.type.shape[1])}, a batch size in netc's [T, N, D] convention"
        if why:
            raise b.error(f"batchnorm on {x.type} would normalise axis 1, but {why}: the statistics would be "
                          "per example of the batch",
                          "for a time-major sequence [T, N, D], normalise the features: batchnorm(x, axis=2) "
                          "(or layernorm(x))",
                          "if axis 1 really holds channels [N, C, L], say so: batchnorm(x, axis=1)")
    return 1


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    doc = ("scale * (x - mean) / sqrt(var + eps) + bias per index of the channel axis (axis=, default 1; "
           "a rank-3 input that reads as a time-major [T, N, D] sequence needs axis= given), with stored "
           "statistics (inference form)")
    has_params = True
    signature = (
        Arg("x", "tensor"),
        Arg("axis", "int", None, doc="the channel/feature axis; default 1 ([N, C, ...]); axis=2 for [T, N, D]"),
        Arg("eps", "float", 1e-5),
        Arg("momentum", "float", 0.9,
            doc="training only: running = momentum * running + (1 - momentum) * batch (the ONNX convention)"),
        Arg("scale_init", "init", Init("ones")),
        Arg("bias_init", "init", Init("zeros")),
        Arg("mean_init", "init", Init("zeros")),
        Arg("var_init", "init", Init("ones")),
    )
    cases = (
        Case("batchnorm(x)", {"x": "{f}[N, 3, 4, 5]"}),
        Case("x -> batchnorm(eps=0.001, mean_init=normal(std=1), var_init=uniform(low=0.5, high=2), "
             "scale_init=normal(std=1, mean=1), bias_init=normal(std=1))", {"x": "{f}[2, 3, 4, 5]"},
             note="non-trivial statistics"),
        Case("batchnorm(x, mean_init=uniform(low=-1, high=1), var_init=uniform(low=0.1, high=3))",
             {"x": "{f}[N, 6]"}, note="rank 2"),
        Case("batchnorm(x, momentum=0.99, var_init=2.0, bias_init=0.5)", {"x": "{f}[N, 4, T]"}, note="rank 3"),
        Case("batchnorm(x, axis=2, mean_init=uniform(low=-1, high=1), var_init=uniform(low=0.1, high=3), "
             "scale_init=normal(std=1))", {"x": "{f}[T, N, 5]"}, note="time-major sequence: features"),
        Case("x -> rnn(4) -> batchnorm(axis=-1, bias_init=normal(std=1))", {"x": "{f}[T, N, 3]"},
             note="after a recurrent layer"),
        Case("batchnorm(x, axis=2, mean_init=normal(std=1))", {"x": "{f}[N, 3, 4, 5]"}, note="a middle axis"),
    )

    def build(self, b, x, axis, eps, momentum, scale_init, bias_init, mean_init, var_init):
        if x.type.rank < 2:
            raise b.error(f"batchnorm needs a tensor of rank >= 2 with channels on axis 1; got {x.type}",
                          "for [N, D] features this is batchnorm(x); for a vector, unsqueeze(x, 0) first")
        _float_input(b, "batchnorm", x)
        if eps <= 0:
            raise b.error(f"batchnorm: eps must be positive; got {eps:g}")
        if not 0 <= momentum < 1:
            raise b.error(f"batchnorm: momentum must be in [0, 1); got {momentum:g}")
        axis = batchnorm_axis(b, x, axis)
        channels = x.type.shape[axis]
        if not isinstance(channels, int):
            raise b.error(f"batchnorm: the normalised axis {axis} of {x.type} is the symbolic {D.dim_str(channels)}: "
                          "its size must be known at compile time (one mean, variance, scale and bias per index)",
                          "choose the channel or feature axis with axis=")
        dtype = x.type.dtype
        scale = b.param("scale", (channels,), dtype, scale_init)
        bias = b.param("bias", (channels,), dtype, bias_init)
        mean = b.param("mean", (channels,), dtype, mean_init, trainable=False)
        var = b.param("var", (channels,), dtype, var_init, trainable=False)
        return b.emit(self.name, [x, scale, bias, mean, var], {"eps": eps, "momentum": momentum, "axis": axis})[0]

    def infer(self, attrs, inputs, b):
        x, *stats = inputs
        axis = attrs.get("axis", 1)
        for t in stats:
            if t.shape != (x.shape[axis],) or t.dtype != x.dtype:
                raise b.error(f"batchnorm: statistics {t} do not match axis {axis} of {x}")
        return [x]

    def flops(self, op):
        return D.mul(2, numel(op.inputs[0].type.shape))  # folded to x * a + c

    def lower(self, ctx, op, inputs):
        axis = op.attrs.get("axis", 1)
        if axis == 1:
            # Inference-mode BatchNormalization with the statistics as initializers is what
            # onnxruntime folds into a preceding Conv (and fuses with a following Relu).
            return ctx.node("BatchNormalization", inputs, epsilon=op.attrs["eps"], momentum=op.attrs["momentum"])
        # Another axis: x * a + c with a = scale / sqrt(var + eps), c = bias - mean * a, the
        # [C] vectors shaped to broadcast over that axis (computed from initializers, so
        # onnxruntime folds them at load).
        x, scale, bias, mean, var = inputs
        xt = op.inputs[0].type
        eps = ctx.const(np.asarray(op.attrs["eps"], dtype=xt.dtype.numpy), "eps")
        a = ctx.node("Div", [scale, ctx.node("Sqrt", [ctx.node("Add", [var, eps])[0]])[0]])[0]
        c = ctx.node("Sub", [bias, ctx.node("Mul", [mean, a])[0]])[0]
        trailing = xt.rank - 1 - axis
        if trailing:
            shape = ctx.ints([xt.shape[axis]] + [1] * trailing)
            a = ctx.node("Reshape", [a, shape])[0]
            c = ctx.node("Reshape", [c, shape])[0]
        return ctx.node("Add", [ctx.node("Mul", [x, a])[0], c])


@register
class LayerNorm(OpDef):
    name = "layernorm"
    doc = "scale * (x - mean) / sqrt(var + eps) + bias, statistics over the last axis of each example"
    has_params = True
    step_polymorphic = True
    signature = (
        Arg("x", "tensor"),
        Arg("eps", "float", 1e-5),
        Arg("bias", "bool", True),
        Arg("scale_init", "init", Init("ones")),
        Arg("bias_init", "init", Init("zeros")),
    )
    cases = (
        Case("layernorm(x)", {"x": "{f}[3, 8]"}),
        Case("x -> layernorm(eps=0.001, scale_init=normal(std=1), bias_init=normal(std=1))",
             {"x": "{f}[T, N, 6]"}, note="rank 3, learned-looking scale"),
        Case("layernorm(x * 10, bias=false, scale_init=2.0)", {"x": "{f}[N, 5]"}, note="no bias"),
    )

    def build(self, b, x, eps, bias, scale_init, bias_init):
        if x.type.rank < 1:
            raise b.error(f"layernorm needs a tensor of rank >= 1; got {x.type}")
        _float_input(b, "layernorm", x)
        if eps <= 0:
            raise b.error(f"layernorm: eps must be positive; got {eps:g}")
        width = b.static(x.type.shape[-1], "layernorm: the normalised width (last axis)")
        dtype = x.type.dtype
        scale = b.param("scale", (width,), dtype, scale_init)
        shift = b.param("bias", (width,), dtype, bias_init) if bias else None
        return b.emit(self.name, [x, scale, shift], {"eps": eps})[0]

    def infer(self, attrs, inputs, b):
        x, scale, bias = inputs
        for t in (scale, bias):
            if t is not None and (t.shape != (x.shape[-1],) or t.dtype != x.dtype):
                raise b.error(f"layernorm: parameter {t} does not match the last axis of {x}")
        return [x]

    def flops(self, op):
        return D.mul(8, numel(op.inputs[0].type.shape))

    def lower(self, ctx, op, inputs):
        x, scale, bias = inputs
        # stash_type = the input's own type, so f64 statistics are not computed in f32.
        stash = op.inputs[0].type.dtype
        stash = stash if stash in (DType.f32, DType.f64) else DType.f32
        return ctx.node("LayerNormalization", [x, scale] + ([bias] if bias else []), axis=-1,
                        epsilon=op.attrs["eps"], stash_type=stash.onnx)


@register
class Dropout(OpDef):
    name = "dropout"
    seeded = True
    doc = ("training-time regularisation; at inference the identity (inverted dropout) or, in the classic "
           "formulation, x * (1 - p); with training=true, noise at inference too: each unit is zeroed with "
           "probability p, the others scaled by 1 / (1 - p) (inverted) or kept (classic)")
    signature = (
        Arg("x", "tensor"),
        Arg("p", "float", 0.5),
        Arg("mode", "choice", "inverted", choices=("inverted", "classic")),
        Arg("training", "bool", False, doc="drop units at inference too (Monte Carlo dropout, noisy structures)"),
    )
    step_polymorphic = True
    cases = (
        Case("dropout(x)", {"x": "{f}[3, 4]"}),
        Case("x -> dropout(0.2)", {"x": "{f}[N, 2, 5]"}),
        Case('dropout(x, p=0.25, mode="classic")', {"x": "{f}[N, 6]"}, note="scaled by 1 - p"),
        Case('x -> dropout(0, mode="classic")', {"x": "{f}[4]"}, note="p = 0"),
        Case("dropout(x, 0.3, training=true)", {"x": "{f}[N, 400]"}, note="drawn at inference"),
        Case('x -> dropout(0.5, mode="classic", training=true)', {"x": "{f}[40, 30]"}, note="classic, drawn"),
    )

    def build(self, b, x, p, mode, training):
        if not 0 <= p < 1:
            raise b.error(f"dropout: p is the probability of dropping a unit and must be in [0, 1); got {p:g}")
        _float_input(b, "dropout", x)
        from netc.compiler.ops.random import stream

        return b.emit(self.name, [x], {"p": p, "mode": mode, "training": training, "seed": stream(b.label)})[0]

    def infer(self, attrs, inputs, b):
        return [inputs[0]]

    def stochastic(self, op):
        return op.attrs["training"] and op.attrs["p"] > 0

    def flops(self, op):
        return numel(op.inputs[0].type.shape) if op.attrs["mode"] == "classic" or op.attrs["training"] else 0

    def lower(self, ctx, op, inputs):
        import numpy as np

        dtype = op.inputs[0].type.dtype.numpy
        keep = ctx.const(np.asarray(1 - op.attrs["p"], dtype=dtype), "keep")
        if self.stochastic(op):
            # ONNX Dropout in training mode: a mask drawn per call, kept units scaled by 1/(1-p)
            ratio = ctx.const(np.asarray(op.attrs["p"], dtype=dtype), "ratio")
            y = ctx.node("Dropout", [inputs[0], ratio, ctx.const(np.asarray(True), "true")],
                         seed=int(ctx.random_seed(op.attrs["seed"])))[0]  # Dropout's seed is an int
            return ctx.node("Mul", [y, keep]) if op.attrs["mode"] == "classic" else [y]
        if op.attrs["mode"] == "inverted" or op.attrs["training"]:
            return ctx.node("Identity", inputs)
        return ctx.node("Mul", [inputs[0], keep])

    def check_draw(self, op, inputs, outputs):
        import numpy as np

        from netc.compiler.ops.random import z_problem

        x, y = inputs[0].astype(np.float64), outputs[0].astype(np.float64)
        p = op.attrs["p"]
        scale = 1.0 if op.attrs["mode"] == "classic" else 1.0 / (1.0 - p)
        dropped = y == 0
        kept_ok = np.isclose(y, x * scale, rtol=1e-3, atol=1e-6)
        if not (dropped | kept_ok).all():
            return [f"units neither dropped nor kept as x * {scale:g}"]
        live = x != 0
        n = int(live.sum())
        return z_problem("the number of dropped units", float(dropped[live].sum()), n * p, n * p * (1 - p))


@register
class PRelu(OpDef):
    name = "prelu"
    doc = ("parametric ReLU: x if x >= 0 else slope * x, with a learned slope per channel (axis 1; "
           "the only axis of a vector) or one shared slope")
    has_params = True
    signature = (
        Arg("x", "tensor"),
        Arg("shared", "bool", False),
        Arg("slope_init", "init", Init("constant", (("value", 0.25),))),
    )
    cases = (
        Case("prelu(x)", {"x": "{f}[N, 3, 4, 4]"}),
        Case("x -> dense(5) -> prelu(slope_init=uniform(low=0, high=1))", {"x": "{f}[N, 4]"}, note="rank 2"),
        Case("prelu(x, shared=true, slope_init=0.1)", {"x": "{f}[2, 3, 5]"}, note="one slope"),
        Case("prelu(x, slope_init=normal(std=1))", {"x": "{f}[6]"}, note="vector"),
        Case("prelu(x)", {"x": "{f}[N, 2, T]"}, note="rank 3"),
    )

    def build(self, b, x, shared, slope_init):
        if x.type.rank < 1:
            raise b.error(f"prelu needs a tensor of rank >= 1; got {x.type}")
        _float_input(b, "prelu", x)
        if shared:
            width = 1
        else:
            axis = 1 if x.type.rank >= 2 else 0
            width = b.static(x.type.shape[axis], f"prelu: the number of channels (axis {axis})",)
        slope = b.param("slope", (width,), x.type.dtype, slope_init)
        return b.emit(self.name, [x, slope], {})[0]

    def infer(self, attrs, inputs, b):
        x, slope = inputs
        axis = 1 if x.rank >= 2 else 0
        if slope.dtype != x.dtype or slope.shape[0] not in (1, x.shape[axis]):
            raise b.error(f"prelu: slope {slope} does not match the channels of {x}")
        return [x]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        x, slope = inputs
        xt = op.inputs[0].type
        width = op.inputs[1].type.shape[0]
        if xt.rank > 2 and width != 1:  # [C] -> [C, 1, ..., 1] to broadcast over NCHW...
            slope = ctx.node("Reshape", [slope, ctx.ints([width] + [1] * (xt.rank - 2))])[0]
        if xt.dtype in (DType.f32, DType.f16):
            return ctx.node("PRelu", [x, slope])
        # onnxruntime's CPU PRelu has no float64 kernel: x < 0 ? x * slope : x.
        negative = ctx.node("Less", [x, ctx.const(xt.dtype.numpy.type(0), "zero")])[0]
        return ctx.node("Where", [negative, ctx.node("Mul", [x, slope])[0], x])


@register
class Maxout(OpDef):
    name = "maxout"
    doc = ("max over groups of `pieces` adjacent units along an axis: size D becomes D / pieces "
           "(Goodfellow et al.: dense(units * pieces) -> maxout(pieces))")
    signature = (Arg("x", "tensor"), Arg("pieces", "int", positive=True), Arg("axis", "int", -1))
    step_polymorphic = True  # the axis is kept counted from the end
    cases = (
        Case("maxout(x, 2)", {"x": "{f}[3, 8]"}),
        Case("x -> dense(12) -> maxout(3)", {"x": "{f}[N, 5]"}, note="the maxout layer"),
        Case("maxout(x, 4, axis=1)", {"x": "{f}[N, 8, 3, 3]"}, note="over channels"),
        Case("maxout(x, 1)", {"x": "{f}[2, 3]"}, note="one piece: identity"),
        Case("maxout(x, 2, axis=0)", {"x": "i64[6, N]"}, int_high=50, note="integer tensor"),
    )

    def build(self, b, x, pieces, axis):
        if x.type.rank < 1:
            raise b.error(f"maxout needs a tensor of rank >= 1; got {x.type}")
        if x.type.dtype is DType.bool:
            raise b.type_error(f"maxout needs a numeric tensor; got {x.type}")
        axis = b.axis(axis, x.type.rank, "maxout: axis")
        units = divide_dims(x.type.shape[axis], pieces)
        if units is None:
            raise b.error(f"maxout: axis {axis} of {x.type} ({x.type.shape[axis]}) does not divide "
                          f"into groups of {pieces}", f"the layer before needs units * {pieces} outputs")
        return b.emit(self.name, [x], {"pieces": pieces, "axis": axis - x.type.rank})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        axis, pieces = b.axis(attrs["axis"], x.rank, "maxout: axis"), attrs["pieces"]
        return [TensorType(x.dtype, replace_dim(x.shape, axis, divide_dims(x.shape[axis], pieces)))]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        x = op.inputs[0].type
        axis, pieces = op.attrs["axis"] % x.rank, op.attrs["pieces"]
        out = op.outputs[0].type.shape
        grouped = (*out[:axis + 1], pieces, *x.shape[axis + 1:])
        y = lower_reshape(ctx, inputs[0], x.shape, grouped)
        return ctx.node("ReduceMax", [y, ctx.ints([axis + 1])], keepdims=0)
