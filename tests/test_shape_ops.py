"""Shape rules and errors of the shape, normalisation, embedding and reduction ops:
inferred types with symbolic dims, parameters they create, FLOPs, and located errors for
what the parity cases cannot show."""

from __future__ import annotations

import numpy as np
import pytest

from netc.api import Compiled, compile_source
from netc.compiler import dims as D
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.shape import divide_dims, reshape_spec
from netc.dsl.errors import NetcShapeError, NetcTypeError
from tests.conftest import run_both


def net(body: str, **inputs: str) -> str:
    lines = [f"  input {name}: {t}" for name, t in inputs.items()]
    if "output" not in body:
        body = f"output out = {body}"
    return "network Snippet {\n" + "\n".join(lines) + "\n  " + body.replace("\n", "\n  ") + "\n}\n"


def compile_(body: str, **inputs: str) -> Compiled:
    return compile_source(net(body, **inputs), seed=0)


def out_type(body: str, **inputs: str) -> str:
    return str(compile_(body, **inputs).graph.outputs["out"].type)


def fails(body: str, cls: type, match: str, **inputs: str):
    with pytest.raises(cls, match=match) as info:
        compile_(body, **inputs)
    err = info.value
    assert err.span is not None and err.span.line >= 2, "the error should point at the user's line"
    return err


# ------------------------------------------------------------------ symbolic dims helpers


def test_divide_dims():
    n, t = D.symbol("N"), D.symbol("T")
    assert divide_dims(12, 4) == 3
    assert divide_dims(12, 5) is None
    assert divide_dims(D.mul(6, n), 3) == D.mul(2, n)
    assert divide_dims(D.mul(6, n), 4) is None
    assert divide_dims(D.mul(n, t), n) == t
    assert divide_dims(D.mul(D.mul(6, n), t), D.mul(2, t)) == D.mul(3, n)
    assert divide_dims(D.add(n, t), n) is None
    assert divide_dims(D.mul(n, n), n) == n
    assert divide_dims(n, t) is None
    assert divide_dims(n, n) == 1


def test_reshape_spec_is_as_static_as_possible():
    n, t = D.symbol("N"), D.symbol("T")
    assert reshape_spec((n, 2, 3), (n, 6)) == [0, 6]
    assert reshape_spec((n, t, 2), (D.mul(n, t), 2)) == [-1, 2]
    assert reshape_spec((n, t, 2), (t, D.mul(2, n))) == [-1, D.mul(2, n)]
    assert reshape_spec((4, 6), (2, 12)) == [2, 12]


# ------------------------------------------------------------------ shape ops


@pytest.mark.parametrize(("body", "x", "want"), [
    ("flatten(x)", "f32[N, 3, 4, 5]", "f32[N, 60]"),
    ("flatten(x, 0)", "f32[N, 3]", "f32[1, 3*N]"),
    ("flatten(x, -1)", "f32[N, T, 4]", "f32[N*T, 4]"),
    ("flatten(x, 2)", "f32[N, 3]", "f32[3*N, 1]"),
    ("reshape(x, N, -1)", "f32[N, 3, 4]", "f32[N, 12]"),
    ("reshape(x, -1, 4)", "f32[N, T, 8]", "f32[2*N*T, 4]"),
    ("reshape(x, [2, -1])", "f32[N, 6]", "f32[2, 3*N]"),
    ("reshape(x, -1, N)", "f32[N, 6]", "f32[6, N]"),
    ("reshape(x, T, N)", "f32[N, T]", "f32[T, N]"),
    ("transpose(x)", "f32[N, 3, 4]", "f32[4, 3, N]"),
    ("transpose(x, 0, 2, 1)", "f32[N, 3, 4]", "f32[N, 4, 3]"),
    ("concat(x, x, axis=1)", "f32[N, T, 2]", "f32[N, 2*T, 2]"),
    ("concat([x, x, x], axis=0)", "f32[N, 2]", "f32[3*N, 2]"),
    ("squeeze(x)", "f32[1, N, 1, 3]", "f32[N, 3]"),
    ("squeeze(x, -2)", "f32[1, N, 1, 3]", "f32[1, N, 3]"),
    ("unsqueeze(x, 0, -1)", "f32[N, 3]", "f32[1, N, 3, 1]"),
    ("unsqueeze(x, 1)", "f32[N]", "f32[N, 1]"),
    ("cast(x, i64)", "f32[N, 3]", "i64[N, 3]"),
])
def test_shape_rules(body, x, want):
    assert out_type(body, x=x) == want


def test_split_types():
    c = compile_("a, b, c = split(x, [1, 3, 2], axis=0)\noutput a\noutput b\noutput c", x="f32[6, N]")
    assert [str(v.type) for v in c.graph.outputs.values()] == ["f32[1, N]", "f32[3, N]", "f32[2, N]"]
    c = compile_("a, b = split(x, 2, axis=1)\noutput a\noutput b", x="f32[N, 6]")
    assert [str(v.type) for v in c.graph.outputs.values()] == ["f32[N, 3]", "f32[N, 3]"]


def test_split_symbolic():
    c = compile_("a, b = concat(x, x, x, axis=0) -> split([N, 2 * N], axis=0)\noutput a\noutput b", x="f32[N, 2]")
    assert [str(v.type) for v in c.graph.outputs.values()] == ["f32[N, 2]", "f32[2*N, 2]"]


@pytest.mark.parametrize(("body", "x", "cls", "match"), [
    ("reshape(x, 4, 2)", "f32[2, 3]", NetcShapeError, r"f32\[2, 3\] has 6 elements, \[4, 2\] has 8"),
    ("reshape(x, N, 5)", "f32[N, 6]", NetcShapeError, "has 6\\*N elements"),
    ("reshape(x, -1, -1)", "f32[2, 3]", NetcShapeError, "at most one dim may be -1"),
    ("reshape(x, 0, 6)", "f32[1, 6]", NetcShapeError, "dim 0 is not allowed"),
    ("reshape(x, -1, 4)", "f32[N, 6]", NetcShapeError, "cannot infer the -1"),
    ("reshape(x, 2.5)", "f32[N, 6]", NetcTypeError, "integers or symbolic dims"),
    ("reshape(x)", "f32[N, 6]", NetcShapeError, "needs the new dims"),
    ("flatten(x, 3)", "f32[N, 6]", NetcShapeError, "axis 3 is out of range"),
    ("transpose(x, 0, 0)", "f32[N, 6]", NetcShapeError, "not a permutation"),
    ("transpose(x, 1, 0, 2)", "f32[N, 6]", NetcShapeError, "has 2 axes"),
    ("transpose(x, 0, 2)", "f32[N, 6]", NetcShapeError, "out of range"),
    ("concat(x, 3)", "f32[N, 6]", NetcTypeError, "concat joins tensors; got int 3"),
    ("split(x, 4)", "f32[N, 6]", NetcShapeError, r"\(6\) does not divide into 4 equal parts"),
    ("split(x, 2, axis=0)", "f32[N, 6]", NetcShapeError, "does not divide"),
    ("split(x, [2, 3])", "f32[N, 6]", NetcShapeError, "add up to 5"),
    ("split(x, [0, 6])", "f32[N, 6]", NetcShapeError, "sizes must be positive"),
    ("split(x, 1.5)", "f32[N, 6]", NetcTypeError, "number of equal parts or a list"),
    ("squeeze(x, 1)", "f32[N, 6]", NetcShapeError, "it has size 6"),
    ("squeeze(x, 0)", "f32[N, 6]", NetcShapeError, "symbolic dim N is not known to be 1"),
    ("unsqueeze(x, 0, 0)", "f32[N, 6]", NetcShapeError, "repeated"),
    ("unsqueeze(x)", "f32[N, 6]", NetcShapeError, "at least one axis"),
    ("unsqueeze(x, 3)", "f32[N, 6]", NetcShapeError, "out of range"),
    ("cast(x, bf16)", "f32[N, 6]", NetcTypeError, "bf16"),
])
def test_shape_errors(body, x, cls, match):
    fails(body, cls, match, x=x)


def test_reshape_undecidable_product_is_an_error():
    err = fails("reshape(x, T, 6)", NetcShapeError, "not provably equal", x="f32[N, 6]", y="f32[T]")
    assert any("-1" in h for h in err.hints)


def test_concat_errors():
    fails("concat(x, y)", NetcShapeError, r"differ in axis 0 \(N vs T\)", x="f32[N, 2]", y="f32[T, 2]")
    fails("concat(x, y, axis=0)", NetcShapeError, "ranks differ", x="f32[N, 2]", y="f32[2]")
    err = fails("concat(x, y)", NetcTypeError, "dtypes differ", x="f32[N, 2]", y="i64[N, 2]")
    assert any("cast" in h for h in err.hints)


def test_split_needs_a_tuple_target():
    c = compile_("p = split(x, 3)\noutput out = p[1]", x="f32[2, 9]")
    assert str(c.graph.outputs["out"].type) == "f32[2, 3]"


# ------------------------------------------------------------------ normalisation


def test_batchnorm_parameters():
    c = compile_("x -> batchnorm(name=\"bn\")", x="f32[N, 3, 4, 4]")
    params = {p.name: p for p in c.graph.params}
    assert sorted(params) == ["bn.bias", "bn.mean", "bn.scale", "bn.var"]
    assert all(p.shape == (3,) for p in params.values())
    assert params["bn.scale"].trainable and params["bn.bias"].trainable
    assert not params["bn.mean"].trainable and not params["bn.var"].trainable
    assert np.all(c.params["bn.var"] == 1) and np.all(c.params["bn.mean"] == 0)
    assert [n.op_type for n in c.model.graph.node] == ["BatchNormalization"]


@pytest.mark.parametrize(("body", "x", "cls", "match"), [
    ("batchnorm(x)", "f32[6]", NetcShapeError, "rank >= 2"),
    ("batchnorm(x)", "i64[N, 6]", NetcTypeError, "floating-point"),
    ("batchnorm(x)", "f32[N, C, 4]", NetcShapeError, "must be known at compile time"),
    ("batchnorm(x, eps=0)", "f32[N, 6]", NetcShapeError, "eps must be positive"),
    ("batchnorm(x, momentum=1)", "f32[N, 6]", NetcShapeError, "momentum"),
    ("layernorm(x)", "f32[N, D]", NetcShapeError, "must be known at compile time"),
    ("layernorm(x)", "i32[N, 4]", NetcTypeError, "floating-point"),
    ("dropout(x, 1)", "f32[N, 6]", NetcShapeError, r"must be in \[0, 1\)"),
    ("dropout(x, -0.1)", "f32[N, 6]", NetcShapeError, r"must be in \[0, 1\)"),
    ('dropout(x, mode="spatial")', "f32[N, 6]", NetcTypeError, "one of inverted, classic"),
    ("prelu(x)", "f32[N, C]", NetcShapeError, "must be known at compile time"),
    ("maxout(x, 4)", "f32[N, 6]", NetcShapeError, r"\(6\) does not divide into groups of 4"),
    ("maxout(x, 2, axis=0)", "f32[N, 6]", NetcShapeError, "does not divide"),
    ("maxout(x, 0)", "f32[N, 6]", NetcTypeError, "must be positive"),
])
def test_norm_errors(body, x, cls, match):
    fails(body, cls, match, x=x)


def test_layernorm_prelu_maxout_shapes():
    c = compile_("x -> layernorm(name=\"ln\", bias=false)", x="f32[T, N, 6]")
    assert [(p.name, p.shape) for p in c.graph.params] == [("ln.scale", (6,))]
    c = compile_("x -> prelu(name=\"p\")", x="f32[N, 4, 5, 5]")
    assert [(p.name, p.shape) for p in c.graph.params] == [("p.slope", (4,))]
    assert np.all(c.params["p.slope"] == np.float32(0.25))
    c = compile_("x -> prelu(name=\"p\", shared=true)", x="f32[N, 4, 5, 5]")
    assert [(p.name, p.shape) for p in c.graph.params] == [("p.slope", (1,))]
    assert out_type("maxout(x, 3)", x="f32[N, 12]") == "f32[N, 4]"
    assert out_type("maxout(x, 2, axis=1)", x="f32[N, 8, 5]") == "f32[N, 4, 5]"
    assert out_type("x -> concat(x, axis=0) -> maxout(2, axis=0)", x="f32[N, 3]") == "f32[N, 3]"


def test_dropout_lowers_to_nothing_that_computes():
    c = compile_("dropout(x, 0.3)", x="f32[N, 6]")
    assert [n.op_type for n in c.model.graph.node] == ["Identity"]
    c = compile_('dropout(x, 0.3, mode="classic")', x="f32[N, 6]")
    assert [n.op_type for n in c.model.graph.node] == ["Mul"]


def test_prelu_f64_lowering_runs():
    # onnxruntime has no float64 PRelu kernel; the f64 lowering avoids it.
    c = compile_("prelu(x)", x="f64[N, 3, 2]")
    assert "PRelu" not in [n.op_type for n in c.model.graph.node]
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    got, want = run_both(c, {"x": x})
    np.testing.assert_allclose(got["out"], want["out"])
    np.testing.assert_allclose(want["out"], np.where(x < 0, 0.25 * x, x))


# ------------------------------------------------------------------ embeddings


def test_embed_shapes_and_parameters():
    c = compile_('ids -> embed(100, 8, name="emb")', ids="i64[N, 5]")
    assert str(c.graph.outputs["out"].type) == "f32[N, 5, 8]"
    assert [(p.name, p.shape) for p in c.graph.params] == [("emb.weight", (100, 8))]
    assert out_type("embed(ids, 10, 4, dtype=f64)", ids="i32[T]") == "f64[T, 4]"
    assert out_type("one_hot(ids, 7)", ids="i64[N, 3]") == "f32[N, 3, 7]"
    assert out_type("one_hot(ids, 7, axis=0, dtype=i32)", ids="i64[N, 3]") == "i32[7, N, 3]"
    assert out_type("one_hot(ids, 7, axis=1)", ids="i64[N, 3]") == "f32[N, 7, 3]"


@pytest.mark.parametrize(("body", "ids", "cls", "match"), [
    ("embed(ids, 10, 4)", "f32[N, 3]", NetcTypeError, "integer ids"),
    ("embed(ids, 10, 4)", "u8[N, 3]", NetcTypeError, "integer ids"),
    ("embed(ids, 0, 4)", "i64[N, 3]", NetcTypeError, "must be positive"),
    ("embed(ids, 10, 4, dtype=i64)", "i64[N, 3]", NetcTypeError, "f16, f32 or f64"),
    ("one_hot(ids, 4)", "f32[N]", NetcTypeError, "integer ids"),
    ("one_hot(ids, 4, axis=3)", "i64[N, 2]", NetcShapeError, "out of range"),
])
def test_embed_errors(body, ids, cls, match):
    fails(body, cls, match, ids=ids)


def test_one_hot_out_of_range_ids_give_zeros():
    c = compile_("one_hot(ids, 3)", ids="i64[5]")
    ids = np.array([0, 2, 3, -1, -4], dtype=np.int64)
    got, want = run_both(c, {"ids": ids})
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(want["out"], expected)
    np.testing.assert_array_equal(got["out"], expected)


# ------------------------------------------------------------------ reductions


@pytest.mark.parametrize(("body", "x", "want"), [
    ("sum(x)", "f32[N, 3]", "f32[]"),
    ("sum(x, keepdims=true)", "f32[N, 3]", "f32[1, 1]"),
    ("mean(x, axis=1)", "f32[N, 3, 4]", "f32[N, 4]"),
    ("x -> mean(axis=[2, 3], keepdims=true)", "f32[N, 3, 4, 4]", "f32[N, 3, 1, 1]"),
    ("max(x, -1)", "f32[N, 3]", "f32[N]"),
    ("x -> max", "f32[N, 3]", "f32[]"),
    ("x -> min(axis=0)", "i64[N, 3]", "i64[3]"),
    ("prod(x, (0, 1))", "i32[N, 3, 2]", "i32[2]"),
    ("argmax(x)", "f32[N, 3]", "i64[N]"),
    ("argmin(x, axis=0, keepdims=true)", "f32[N, 3]", "i64[1, 3]"),
])
def test_reduction_shapes(body, x, want):
    assert out_type(body, x=x) == want


def test_max_and_min_still_work_on_numbers():
    body = "output out = reshape(x, max(2, 3), min([4, 2, 5]))"
    assert out_type(body, x="f32[6]") == "f32[3, 2]"


@pytest.mark.parametrize(("body", "x", "cls", "match"), [
    ("sum(x, axis=[0, 0])", "f32[N, 3]", NetcShapeError, "repeated"),
    ("sum(x, axis=2)", "f32[N, 3]", NetcShapeError, "axis 2 is out of range"),
    ("sum(x, axis=1.0)", "f32[N, 3]", NetcTypeError, "none, an integer or a list"),
    ("mean(x)", "i64[N, 3]", NetcTypeError, "floating-point"),
    ("sum(cast(x, bool))", "f32[N, 3]", NetcTypeError, "numeric"),
    ("max(x, x)", "f32[N, 3]", NetcTypeError, "reduces one tensor over axes"),
    ("max(3, x)", "f32[N, 3]", NetcTypeError, "reduces one tensor over axes"),
    ("max(x, axis=0, keepdims=1)", "f32[N, 3]", NetcTypeError, "true or false"),
    ("max(x, 0, true, 1)", "f32[N, 3]", NetcTypeError, "at most 3 positional"),
    ("argmax(x, axis=2)", "f32[N, 3]", NetcShapeError, "out of range"),
    ("argmax(x, axis=[0, 1])", "f32[N, 3]", NetcTypeError, "an integer"),
])
def test_reduction_errors(body, x, cls, match):
    fails(body, cls, match, x=x)


def test_max_axis_on_numbers_is_an_error():
    fails("output out = reshape(x, max(2, 3, axis=0), 2)", NetcTypeError, "apply to a tensor", x="f32[6]")


def test_argmax_ties_take_the_first_index():
    c = compile_("argmax(x, axis=1)", x="f32[3, 4]")
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, 0, 0, 5]], dtype=np.float32)
    got, want = run_both(c, {"x": x})
    np.testing.assert_array_equal(want["out"], [1, 0, 3])
    np.testing.assert_array_equal(got["out"], [1, 0, 3])


# ------------------------------------------------------------------ FLOPs


@pytest.mark.parametrize(("body", "x", "flops"), [
    ("flatten(x)", "f32[N, 3, 4]", 0),
    ("batchnorm(x)", "f32[2, 3, 4]", 48),
    ("layernorm(x)", "f32[2, 4]", 64),
    ('dropout(x, mode="classic")', "f32[2, 4]", 8),
    ("dropout(x)", "f32[2, 4]", 0),
    ("maxout(x, 2)", "f32[2, 4]", 8),
    ("sum(x)", "f32[2, 4]", 8),
    ("argmax(x)", "f32[2, 4]", 8),
])
def test_flops(body, x, flops):
    c = compile_(body, x=x)
    op = c.graph.ops[-1]
    assert D.evaluate(REGISTRY[op.kind].flops(op), {}, default=1) == flops
