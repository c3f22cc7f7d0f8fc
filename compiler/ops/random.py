"""Random numbers in the graph: normal and uniform noise, Bernoulli masks and sampling from
logits (ONNX RandomNormal(Like), RandomUniform(Like), Multinomial).

Every op carries a `seed` stream derived from its layer name; the lowering combines it with
the compile seed (`LowerContext.random_seed`), so a compiled file is byte-identical from
run to run, and a fresh onnxruntime session reproduces the same draws (each run of one
session draws new ones; so does every step of a recurrence). The reference draws from its
own NumPy generator, seeded by the same stream: the two agree in distribution, not value by
value, and `check_draw` states what a draw must satisfy (support, moments within five
standard errors) for `netc verify` and the parity tests.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Op, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel

# |z| beyond this many standard errors fails a moment check: about 6e-7 false alarms per test.
Z_LIMIT = 5.0


def stream(label: str) -> int:
    """A stable 24-bit stream number for the op named `label`."""
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=4).digest(), "little") % 2**24


def z_problem(what: str, observed: float, expected: float, variance: float) -> list[str]:
    """A z-test of a sum (or mean) against its expectation and variance."""
    if variance <= 0:
        return [] if math.isclose(observed, expected, rel_tol=1e-6, abs_tol=1e-6) else \
            [f"{what} is {observed:.4g}; it can only be {expected:.4g}"]
    z = (observed - expected) / math.sqrt(variance)
    if abs(z) > Z_LIMIT:
        return [f"{what} is {observed:.4g}, {z:+.1f} standard errors from its expectation {expected:.4g}"]
    return []


def chi2_bounds(k: int, z: float = Z_LIMIT) -> tuple[float, float]:
    """Quantiles of chi-square(k) at -z and +z standard normal deviations (Wilson-Hilferty)."""
    c = 2.0 / (9.0 * k)
    low = k * max(1 - c - z * math.sqrt(c), 0.0) ** 3
    return low, k * (1 - c + z * math.sqrt(c)) ** 3


def _float_dtype(b, fname: str, dtype: DType) -> None:
    if not dtype.is_float or dtype is DType.bf16:
        raise b.type_error(f"{fname}: draws are f16, f32 or f64; got {dtype.value}")


class RandomOp(OpDef):
    """Noise of a given shape, or of the shape of `like`."""

    dist: str  # ONNX op name without "Like"
    seeded = True

    def stochastic(self, op):
        return True

    def build_shape(self, b, shape: tuple, like: Value | None, dtype: DType | None, **attrs) -> Value:
        fname = self.name
        if like is not None and shape:
            raise b.type_error(f"{fname}: give a shape or like=, not both")
        if like is None and not shape:
            raise b.type_error(f"{fname} needs a shape or like=: {fname}(N, 16) or {fname}(like=x)")
        for d in shape:
            if isinstance(d, int) and d <= 0:
                raise b.error(f"{fname}: dimensions must be positive; got {d}")
        dtype = dtype or (like.type.dtype if like is not None and like.type.dtype.is_float else DType.f32)
        _float_dtype(b, fname, dtype)
        # ONNX keeps these as float32 attributes, and draws are of `dtype`: both must hold them
        largest = float(np.finfo(np.float16 if dtype is DType.f16 else np.float32).max)
        for key, value in attrs.items():
            if abs(value) > largest:
                raise b.error(f"{fname}: {key}={value:g} is beyond the range of "
                              f"{'f16' if dtype is DType.f16 else 'a float32 attribute'} (largest {largest:g})")
        return b.emit(self.name, [like] if like is not None else [],
                      {"shape": tuple(shape), "dtype": dtype, "seed": stream(b.label), **attrs})[0]

    def infer(self, attrs, inputs, b):
        shape = inputs[0].shape if inputs else attrs["shape"]
        return [TensorType(attrs["dtype"], tuple(shape))]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def onnx_attrs(self, op: Op) -> dict:
        raise NotImplementedError

    def lower(self, ctx, op, inputs):
        dtype = op.attrs["dtype"]
        attrs = {**self.onnx_attrs(op), "seed": ctx.random_seed(op.attrs["seed"]), "dtype": dtype.onnx}
        shape = op.outputs[0].type.shape
        if inputs:
            return ctx.node(f"{self.dist}Like", inputs, **attrs)
        if all(isinstance(d, int) for d in shape):
            return ctx.node(self.dist, [], shape=list(shape), **attrs)
        # A symbolic shape: a tensor of that shape (read from the inputs at run time) to draw like.
        from onnx import numpy_helper

        zero = numpy_helper.from_array(np.zeros(1, dtype=dtype.numpy))
        template = ctx.node("ConstantOfShape", [ctx.shape_tensor(shape)], value=zero)[0]
        return ctx.node(f"{self.dist}Like", [template], **attrs)


@register
class RandomNormal(RandomOp):
    name = "random_normal"
    dist = "RandomNormal"
    doc = ("random_normal(*shape, like=none, mean=0, scale=1, dtype): independent normal draws N(mean, scale^2) "
           "of the given shape (dims may be symbolic) or of like's shape; seeded from the compile seed and the "
           "layer name")
    signature = (
        Arg("shape", "dim", variadic=True),
        Arg("like", "tensor", None),
        Arg("mean", "float", 0.0),
        Arg("scale", "float", 1.0),
        Arg("dtype", "dtype", None),
    )
    cases = (
        Case("x + random_normal(like=x)", {"x": "{f}[64, 32]"}),
        Case("random_normal(N, 300, mean=2, scale=0.5, dtype={f})", {"x": "{f}[N, 3]"}, note="symbolic shape"),
        Case("mu + exp(0.5 * logvar) * random_normal(like=mu)", {"mu": "{f}[N, 200]", "logvar": "{f}[N, 200]"},
             note="reparameterised sample"),
    )

    def build(self, b, shape, like, mean, scale, dtype):
        if scale < 0:
            raise b.error(f"random_normal: scale is a standard deviation and cannot be negative; got {scale:g}")
        return self.build_shape(b, shape, like, dtype, mean=mean, scale=scale)

    def onnx_attrs(self, op):
        return {"mean": op.attrs["mean"], "scale": op.attrs["scale"]}

    def check_draw(self, op, inputs, outputs):
        (y,) = outputs
        x = y.astype(np.float64).ravel()
        if not np.isfinite(x).all():
            return ["non-finite draws"]
        n, mean, scale = x.size, op.attrs["mean"], op.attrs["scale"]
        if n == 0:
            return []
        problems = z_problem("the mean", float(x.mean()), mean, scale**2 / n)
        if n > 1 and scale > 0:
            stat = float(((x - x.mean()) ** 2).sum()) / scale**2  # chi-square with n - 1 degrees of freedom
            low, high = chi2_bounds(n - 1)
            if not low <= stat <= high:
                problems.append(f"the spread is off: sum of squares / scale^2 = {stat:.4g}, outside "
                                f"[{low:.4g}, {high:.4g}] for chi-square({n - 1})")
        return problems


@register
class RandomUniform(RandomOp):
    name = "random_uniform"
    dist = "RandomUniform"
    doc = ("random_uniform(*shape, like=none, low=0, high=1, dtype): independent uniform draws in [low, high) "
           "of the given shape or of like's shape; seeded from the compile seed and the layer name")
    signature = (
        Arg("shape", "dim", variadic=True),
        Arg("like", "tensor", None),
        Arg("low", "float", 0.0),
        Arg("high", "float", 1.0),
        Arg("dtype", "dtype", None),
    )
    cases = (
        Case("random_uniform(like=x)", {"x": "{f}[50, 40]"}),
        Case("random_uniform(T, N, 100, low=-2, high=3, dtype={f})", {"x": "{f}[T, N]"}, note="symbolic shape"),
    )

    def build(self, b, shape, like, low, high, dtype):
        if not low < high:
            raise b.error(f"random_uniform: low must be below high; got low={low:g}, high={high:g}")
        return self.build_shape(b, shape, like, dtype, low=low, high=high)

    def onnx_attrs(self, op):
        return {"low": op.attrs["low"], "high": op.attrs["high"]}

    def check_draw(self, op, inputs, outputs):
        (y,) = outputs
        x = y.astype(np.float64).ravel()
        low, high = op.attrs["low"], op.attrs["high"]
        if x.size == 0:
            return []
        # float32 rounding may put a draw just below `high` onto it
        if not ((x >= low) & (x <= high)).all():
            return [f"draws outside [{low:g}, {high:g}): from {x.min():.4g} to {x.max():.4g}"]
        return z_problem("the mean", float(x.mean()), (low + high) / 2, (high - low) ** 2 / 12 / x.size)


@register
class Bernoulli(OpDef):
    name = "bernoulli"
    seeded = True
    doc = ("bernoulli(p, like=none, dtype): 1 with probability p, else 0, independently per element; p is a "
           "tensor of probabilities, or a number with like= giving the shape (a uniform draw below p)")
    signature = (Arg("p", "any"), Arg("like", "tensor", None), Arg("dtype", "dtype", None))
    cases = (
        Case("bernoulli(sigmoid(x))", {"x": "{f}[40, 50]"}),
        Case("x * bernoulli(0.8, like=x)", {"x": "{f}[N, 300]"}, note="a number p"),
        Case("bernoulli(sigmoid(x), dtype=bool)", {"x": "{f}[N, 64]"}, note="boolean mask"),
    )

    def stochastic(self, op):
        return True

    def build(self, b, p, like, dtype):
        if isinstance(p, Value):
            if like is not None:
                raise b.type_error("bernoulli: like= gives the shape of a number p; a tensor p has its own")
            if not p.type.dtype.is_float:
                raise b.type_error(f"bernoulli: p must be a floating-point tensor of probabilities; got {p.type}")
            dtype = dtype or p.type.dtype
            return b.emit(self.name, [p], {"dtype": dtype, "seed": stream(b.label)})[0]
        if isinstance(p, bool) or not isinstance(p, int | float):
            raise b.type_error(f"bernoulli: p must be a probability or a tensor of them; got {p!r}")
        if not 0 <= p <= 1:
            raise b.error(f"bernoulli: p is a probability and must be in [0, 1]; got {p:g}")
        if like is None:
            raise b.type_error("bernoulli with a number p needs like= for its shape: bernoulli(0.5, like=x)")
        dtype = dtype or (like.type.dtype if like.type.dtype.is_float else DType.f32)
        probs = b.emit("fill", [], {"shape": like.type.shape, "value": float(p),
                                    "dtype": like.type.dtype if like.type.dtype.is_float else DType.f32})[0]
        return b.emit(self.name, [probs], {"dtype": dtype, "seed": stream(b.label)})[0]

    def infer(self, attrs, inputs, b):
        if attrs["dtype"] is DType.bf16:
            raise b.type_error("bernoulli: bf16 is not supported")
        return [TensorType(attrs["dtype"], inputs[0].shape)]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        # Not ONNX Bernoulli: onnxruntime 1.32's CPU kernel draws 1 with probability 1 - p
        # (measured: p = 0.1 gives 89% ones, p = 0.95 gives 5%). A uniform draw below p is 1
        # with probability p exactly, by definition.
        (p,) = inputs
        u = ctx.node("RandomUniformLike", [p], seed=ctx.random_seed(op.attrs["seed"]))[0]
        mask = ctx.node("Less", [u, p])[0]
        if op.attrs["dtype"] is DType.bool:
            return [mask]
        return ctx.node("Cast", [mask], to=op.attrs["dtype"].onnx)

    def check_draw(self, op, inputs, outputs):
        p = np.clip(inputs[0].astype(np.float64), 0, 1)
        y = outputs[0].astype(np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            return ["draws other than 0 and 1"]
        if ((p == 0) & (y == 1)).any() or ((p == 1) & (y == 0)).any():
            return ["a draw contradicts a probability of 0 or 1"]
        return z_problem("the number of ones", float(y.sum()), float(p.sum()), float((p * (1 - p)).sum()))


@register
class Sample(OpDef):
    name = "sample"
    seeded = True
    doc = ("sample(logits, temperature=1): one id per row drawn from softmax(logits / temperature) over the last "
           "axis; logits [..., V] -> i64[...] (ONNX Multinomial)")
    signature = (Arg("logits", "tensor"), Arg("temperature", "float", 1.0))
    cases = (
        Case("sample(x)", {"x": "{f}[64, 5]"}),
        Case("sample(x * 3, temperature=0.5)", {"x": "{f}[T, N, 7]"}, note="rank 3, sharpened"),
        Case("x -> dense(6) -> sample", {"x": "{f}[N, 4]"}),
        Case("sample(x)", {"x": "{f}[T, N, V]"}, note="symbolic classes"),
    )

    def stochastic(self, op):
        return True

    def build(self, b, logits, temperature):
        if not temperature > 0:
            raise b.error(f"sample: temperature must be positive; got {temperature:g}",
                          "temperature -> 0 approaches argmax(logits, axis=-1)")
        if logits.type.rank < 1 or not logits.type.dtype.is_float:
            raise b.type_error(f"sample needs floating-point logits [..., V]; got {logits.type}")
        return b.emit(self.name, [logits], {"temperature": temperature, "seed": stream(b.label)})[0]

    def infer(self, attrs, inputs, b):
        (logits,) = inputs
        return [TensorType(DType.i64, logits.shape[:-1])]

    def flops(self, op):
        return D.mul(numel(op.inputs[0].type.shape), 4)  # scale, exponentiate, accumulate, compare

    def lower(self, ctx, op, inputs):
        (x,) = inputs
        t = op.inputs[0].type
        x = scaled_logits(ctx, ctx, x, t.dtype, op.attrs["temperature"])
        if t.rank != 2:  # rows of V classes
            classes = t.shape[-1]
            rows = ctx.ints([-1, classes]) if isinstance(classes, int) else \
                ctx.node("Concat", [ctx.ints([-1]), ctx.dim_tensor(classes)], axis=0)[0]
            x = ctx.node("Reshape", [x, rows])[0]
        ids = ctx.node("Multinomial", [x], sample_size=1, dtype=DType.i64.onnx,
                       seed=ctx.random_seed(op.attrs["seed"]))[0]
        return ctx.node("Reshape", [ids, ctx.shape_tensor(t.shape[:-1])])

    def check_draw(self, op, inputs, outputs):
        return check_categorical(inputs[0], outputs[0], op.attrs["temperature"])


def scaled_logits(ctx, at, x: str, dtype: DType, temperature: float) -> str:
    """(logits - max) / temperature in float32, the form onnxruntime's Multinomial reads:
    the largest logit becomes 0, so any positive temperature gives finite or -inf logits,
    never inf - inf. `at` makes the nodes (a loop body's context), `ctx` the constants."""
    if dtype is not DType.f32:  # onnxruntime's Multinomial reads float32 only
        x = at.node("Cast", [x], to=DType.f32.onnx)[0]
    x = at.node("Sub", [x, at.node("ReduceMax", [x, ctx.ints([-1])], keepdims=1)[0]])[0]
    if temperature != 1.0:
        x = at.node("Div", [x, ctx.const(np.asarray(temperature, dtype=np.float32), "temperature")])[0]
    return x


def categorical(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) over the last axis, in float64."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_categorical(logits: np.ndarray, ids: np.ndarray, temperature: float) -> list[str]:
    """Draws of one id per row: in range, never of probability 0, and the probability of the
    drawn ids summed over rows near its expectation sum_rows sum_j p_j^2."""
    probs = categorical(logits, temperature).reshape(-1, logits.shape[-1])
    flat = ids.reshape(-1)
    if flat.size == 0:
        return []
    if (flat < 0).any() or (flat >= probs.shape[1]).any():
        return [f"ids outside [0, {probs.shape[1]})"]
    picked = probs[np.arange(flat.size), flat]
    if (picked == 0).any():
        return ["an id of probability 0 was drawn"]
    second, third = (probs**2).sum(axis=1), (probs**3).sum(axis=1)
    return z_problem("the summed probability of the drawn ids", float(picked.sum()), float(second.sum()),
                     float((third - second**2).sum()))

