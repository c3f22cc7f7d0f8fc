"""Reference semantics of elementwise arithmetic, activations and dense layers, written
from the equations (structures.md), not from ONNX."""

from __future__ import annotations

import math

import numpy as np

from netc.runtime.reference.registry import REFERENCE, ref

ref("add")(lambda a, b: a + b)
ref("sub")(lambda a, b: a - b)
ref("mul")(lambda a, b: a * b)
ref("div")(lambda a, b: a / b)
ref("pow")(lambda a, b: np.power(a, b))
ref("matmul")(lambda a, b: np.matmul(a, b))
ref("neg")(lambda x: -x)
ref("exp")(np.exp)
ref("log")(np.log)
ref("sqrt")(np.sqrt)
ref("abs")(np.abs)
ref("identity")(lambda x: x.copy())


@ref("relu")
def relu(x):
    return np.maximum(x, 0).astype(x.dtype)


@ref("sigmoid")
def sigmoid(x):
    # Split by sign so neither branch overflows: e^-x for x >= 0, e^x / (1 + e^x) otherwise.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1 + ex)
    return out


ref("tanh")(np.tanh)


@ref("softplus")
def softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


@ref("swish")
def swish(x):
    return x * sigmoid(x)


@ref("leaky_relu")
def leaky_relu(x, *, alpha):
    return np.where(x > 0, x, alpha * x).astype(x.dtype)


@ref("elu")
def elu(x, *, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


@ref("gelu")
def gelu(x, *, approximate):
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y = 0.5 * x64 * (1 + _erf(x64 / np.sqrt(2)))
    return y.astype(x.dtype)


@ref("hard_tanh")
def hard_tanh(x, *, min, max):  # the op's attribute names shadow the builtins
    return np.clip(x, min, max).astype(x.dtype)


@ref("softmax")
def softmax(x, *, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


@ref("log_softmax")
def log_softmax(x, *, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def apply_activation(name: str | None, x: np.ndarray) -> np.ndarray:
    """The `act=` of a layer: the activation's reference with its default attributes."""
    if name is None:
        return x
    from netc.compiler.ops import REGISTRY

    defaults = {a.name: a.default for a in REGISTRY[name].signature if a.kind != "tensor"}
    return REFERENCE[name].fn(x, **defaults)


@ref("dense")
def dense(x, weight, bias=None, *, act):
    y = x @ weight
    if bias is not None:
        y = y + bias
    return apply_activation(act, y)


@ref("constant")
def constant(*, value):
    return value.copy()


@ref("fill")
def fill(*, shape, value, dtype):
    return np.full(shape, value, dtype=dtype.numpy)


@ref("index")
def index(x, *, items):
    key = tuple(i if isinstance(i, int) else slice(*i) for i in items)
    return np.ascontiguousarray(x[key])
