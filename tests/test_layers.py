"""The layers of transposed convolution, resizing, sampling and local response
normalisation, batchnorm's axis rule and the recurrent cells' initialisers: shape rules on
symbolic sizes, FLOPs, initial values, and what they do at initialisation."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.compiler import dims as D
from netc.compiler.ops import REGISTRY
from netc.dsl.errors import NetcShapeError, NetcTypeError
from tests.conftest import (
    EXAMPLES,
    assert_close,
    check_onnx,
    network_source,
    random_inputs,
    run_both,
)


def compile_expr(expr: str, inputs: dict[str, str], **kw) -> netc.Compiled:
    return netc.compile_source(network_source(expr, inputs, "f32"), seed=3, **kw)


def out_type(compiled: netc.Compiled) -> str:
    return str(compiled.graph.outputs["out"].type)


@pytest.mark.parametrize(("expr", "x", "want"), [
    ("conv_transpose2d(x, 3, kernel=4, stride=2, pad=1)", "f32[N, 4, H, W]", "f32[N, 3, 2*H, 2*W]"),
    ("conv_transpose1d(x, 2, kernel=3, stride=3, output_pad=1)", "f32[N, 4, T]", "f32[N, 2, 3*T + 1]"),
    ('conv_transpose1d(x, 2, kernel=3, stride=2, pad="same")', "f32[N, 4, T]", "f32[N, 2, 2*T]"),
    ("upsample(x, 2)", "f32[N, 4, H, W]", "f32[N, 4, 2*H, 2*W]"),
    ("resize(x, scale=[1.5, 0.5])", "f32[N, 4, H, W]", "f32[N, 4, (3*H)//2, W//2]"),
    ("resize(x, size=[7, W])", "f32[N, 4, H, W]", "f32[N, 4, 7, W]"),
    ("affine_grid(t, size=[H, 5])", "f32[N, 2, 3]", "f32[N, H, 5, 2]"),
])
def test_symbolic_shape_rules(expr, x, want):
    inputs = {"x" if "x" in expr else "t": x}
    if "H" in expr and "x" not in expr:
        inputs["img"] = "f32[1, 1, H, 1]"  # where H comes from
    assert out_type(compile_expr(expr, inputs)) == want


def test_flops():
    compiled = compile_expr("conv_transpose2d(x, 6, kernel=3, groups=2)", {"x": "f32[2, 4, 5, 5]"})
    (op,) = [op for op in compiled.graph.ops if op.kind == "conv_transpose2d"]
    # every input element (2*4*5*5) meets filters/groups * 3 * 3 weights, a multiply-add each
    assert REGISTRY["conv_transpose2d"].flops(op) == 2 * 4 * 25 * 2 * 3 * 9
    compiled = compile_expr("lrn(x, 5)", {"x": "f32[N, 8, 4, 4]"})
    (op,) = [op for op in compiled.graph.ops if op.kind == "lrn"]
    assert REGISTRY["lrn"].flops(op) == D.mul(D.symbol("N"), 8 * 16 * 14)


# ------------------------------------------------------------------ spatial transformer


def test_spatial_transformer_starts_as_the_identity():
    """Zero weights and the bias [1, 0, 0, 0, 1, 0] in the localisation's last layer: the
    sampler reproduces its input exactly (pixel centres map to pixel centres)."""
    compiled = netc.compile_file(EXAMPLES / "spatial_transformer.net", network="SpatialTransformerMnist", seed=0)
    check_onnx(compiled.model)
    names = [p.name for p in compiled.graph.params]
    assert "spatial_transformer0.dense1.bias" in names
    np.testing.assert_array_equal(compiled.params["spatial_transformer0.dense1.bias"], [1, 0, 0, 0, 1, 0])
    image = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    got, want = run_both(compiled, {"image": image})
    np.testing.assert_allclose(got["warped"], image, rtol=1e-4, atol=1e-5)  # float32 coordinates
    np.testing.assert_allclose(want["warped"], image, rtol=1e-4, atol=1e-5)
    # No tensor in the graph is as large as an (H*W) x (H*W) sampling matrix would be.
    env = {"N": 2, "H": 28, "W": 28}
    largest = max(np.prod([D.evaluate(d, env) for d in v.type.shape]) for op in compiled.graph.ops
                  for v in op.outputs)
    assert largest < 28 ** 4


def test_spatial_transformer_with_a_layer_and_a_size(compile_text):
    compiled = compile_text("""
block loc(x) {
  return x -> global_avgpool -> flatten -> dense(6, weight_init=zeros, bias_init=[0.5, 0, 0, 0, 0.5, 0])
}
network M {
  input x: f32[N, 2, H, W]
  output y = spatial_transformer(x, loc, size=[4, 6], padding_mode="border", name="stn")
}
""")
    assert str(compiled.graph.outputs["y"].type) == "f32[N, 2, 4, 6]"
    assert "stn.dense0.weight" in compiled.params
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 12)).astype(np.float32)
    got, want = run_both(compiled, {"x": x})
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("source", "cls", "message"), [
    ("block loc(x) {\n  return x -> flatten\n}\nnetwork M {\n  input x: f32[N, 1, 4, 4]\n"
     "  output y = spatial_transformer(x, loc)\n}\n", NetcShapeError, "must return theta, a tensor [N, 2, 3]"),
    ("network M {\n  input x: f32[N, 1, 4, 4]\n  output y = spatial_transformer(x, 3)\n}\n", NetcTypeError,
     "'localisation' must be a block"),
    ("network M {\n  input x: f32[N, 16]\n  output y = spatial_transformer(x, relu)\n}\n", NetcShapeError,
     "transforms an image [N, C, H, W]"),
])
def test_spatial_transformer_errors(compile_text, source, cls, message):
    with pytest.raises(cls, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_text(source)


# ------------------------------------------------------------------ initialisers


def test_orthogonal_recurrent_blocks_are_orthogonal():
    compiled = compile_expr("gru(x, 5, recurrent_init=orthogonal(gain=2.0), name=\"g\")", {"x": "f32[T, N, 3]"})
    r = compiled.params["g.l0.fwd.R"]
    assert r.shape == (15, 5)
    for block in np.split(r.astype(np.float64), 3):
        np.testing.assert_allclose(block.T @ block, 4 * np.eye(5), atol=1e-5)
    other = netc.compile_source(network_source("gru(x, 5, recurrent_init=orthogonal(gain=2.0), name=\"g\")",
                                               {"x": "f32[T, N, 3]"}, "f32"), seed=4).params["g.l0.fwd.R"]
    assert not np.allclose(r, other), "orthogonal draws from the seed"


def test_identity_and_array_initialisers():
    compiled = compile_expr('lstm(x, 3, recurrent_init=identity, weight_init=0.5, name="l")', {"x": "f32[T, N, 2]"})
    r = compiled.params["l.l0.fwd.R"]
    np.testing.assert_array_equal(r, np.concatenate([np.eye(3)] * 4))
    np.testing.assert_array_equal(compiled.params["l.l0.fwd.W"], np.full((12, 2), 0.5))
    compiled = compile_expr("dense(x, 2, weight_init=[[1, 2], [3, 4], [5, 6]], bias_init=[-1, 1])",
                            {"x": "f32[N, 3]"})
    np.testing.assert_array_equal(compiled.params["dense0.weight"], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(compiled.params["dense0.bias"], [-1, 1])


def test_identity_rectangular():
    compiled = compile_expr("dense(x, 5, weight_init=identity, bias=false)", {"x": "f32[N, 3]"})
    np.testing.assert_array_equal(compiled.params["dense0.weight"], np.eye(3, 5))


# ------------------------------------------------------------------ batchnorm's axis


@pytest.mark.parametrize(("x", "expr", "message"), [
    ("f32[T, N, 4]", "batchnorm(x)", "its axis 0 is T, a time axis"),
    ("f32[5, N, 4]", "batchnorm(x)", "its axis 1 is the symbolic N, a batch size"),
    ("f32[T, 2, 4]", "batchnorm(x)", "its axis 0 is T, a time axis"),
    ("f32[5, 2, 4]", "x -> gru(3) -> tanh -> batchnorm", "it comes from gru"),
    ("f32[N, 3, T]", "batchnorm(x, axis=2)", "the normalised axis 2"),
    ("f32[N, 3, T]", "batchnorm(x, axis=3)", "out of range"),
])
def test_batchnorm_refuses_a_doubtful_axis(x, expr, message):
    with pytest.raises(NetcShapeError, match=message) as err:
        compile_expr(expr, {"x": x})
    assert "--set" not in str(err.value), "the old hint led to setting the batch size"


def test_batchnorm_axis_2_normalises_the_features_of_a_sequence():
    compiled = compile_expr("batchnorm(x, axis=2, mean_init=[1, 2, 3], var_init=[4, 1, 0.25])", {"x": "f32[T, N, 3]"})
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    got, want = run_both(compiled, {"x": x})
    expected = (x - np.array([1, 2, 3])) / np.sqrt(np.array([4, 1, 0.25]) + 1e-5)
    np.testing.assert_allclose(got["out"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(want["out"], expected, rtol=1e-5, atol=1e-6)
    # the explicit channel axis of [N, C, L] still lowers to BatchNormalization
    compiled = compile_expr("batchnorm(x, axis=1)", {"x": "f32[T, 4, 5]"})
    assert "BatchNormalization" in {n.op_type for n in compiled.model.graph.node}


@pytest.mark.parametrize("act", ["hard_tanh", "softmax", "sigmoid", "none"])
def test_rnn_activations_in_float64(act):
    """float64 lowers to Scan; the activation's constants take the sequence's dtype."""
    source = network_source(f"rnn(x * 2, 3, act={act}, bidirectional=true, lengths=lens)",
                            {"x": "{f}[T, N, 2]", "lens": "i32[N]"}, "f64")
    compiled = netc.compile_source(source, seed=2)
    check_onnx(compiled.model)
    for seed in (0, 1):
        inputs = random_inputs(compiled.graph, seed, int_high=3)
        got, want = run_both(compiled, inputs)
        assert_close(got, want, "f64", act)
