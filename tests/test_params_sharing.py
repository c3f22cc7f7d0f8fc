"""Parameters as values: `param` declarations, shared layers (tied embeddings, Siamese
towers, shared blocks inside recurrences) and reading a shared layer's parameters."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.compiler.params import initialise
from netc.dsl.errors import NetcNameError
from netc.report import param_uses, params_table
from tests.conftest import assert_close, check_onnx, random_inputs, run_both


def _compile(text: str, **kw) -> netc.Compiled:
    compiled = netc.compile_source(text, **kw)
    check_onnx(compiled.model)
    return compiled


def _agree(compiled: netc.Compiled, seeds=(0, 1)) -> None:
    for seed in seeds:
        got, want = run_both(compiled, random_inputs(compiled.graph, seed, int_high=7))
        assert_close(got, want, "f32", f"seed {seed}")


PARAM_NET = """
block gate(x) {
  d = dim(x, -1)
  param w: f32[2 * d, d]
  param s: f32[d] = normal(0.5, mean=1)
  param c: f32[d] = 0.25
  return (concat(x, x) @ w) * c + s
}
network M {
  input x: f32[N, 4]
  param top: f32[4]
  output y = gate(x) + gate(x) * top
}
"""


def test_param_declarations_are_named_under_their_block_instance():
    compiled = _compile(PARAM_NET)
    params = {p.name: p for p in compiled.graph.params}
    assert list(params) == ["top", "gate0.w", "gate0.s", "gate0.c", "gate1.w", "gate1.s", "gate1.c"]
    w = params["gate0.w"]
    assert (w.shape, w.dtype.value, str(w.init), w.fan_in, w.fan_out) == ((8, 4), "f32", "glorot_uniform", 8, 4)
    assert str(params["gate0.s"].init) == "normal(std=0.5, mean=1)"
    assert params["top"].fan_in == params["top"].fan_out == 4
    np.testing.assert_array_equal(compiled.params["gate0.c"], np.full(4, 0.25, np.float32))
    # glorot_uniform over fan_in 8, fan_out 4: within +-sqrt(6 / 12)
    assert np.abs(compiled.params["gate0.w"]).max() <= np.sqrt(0.5)
    assert not np.array_equal(compiled.params["gate0.w"], compiled.params["gate1.w"])
    _agree(compiled)


def test_param_values_are_deterministic_per_name():
    a, b = _compile(PARAM_NET, seed=3), _compile(PARAM_NET, seed=3)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    p = next(p for p in a.graph.params if p.name == "gate1.w")
    np.testing.assert_array_equal(a.params["gate1.w"], initialise(p, 3))


TIED = """
network Tied {
  input ids: i64[N, T]
  emb = shared(embed, 7, 5, name="emb")
  h = tanh(ids -> emb)
  param b: f32[7] = zeros
  output logits = h @ transpose(emb.weight) + b
  output table = emb.weight
}
"""


def test_tied_embedding_is_one_tensor_used_twice(tmp_path):
    compiled = _compile(TIED)
    assert [p.name for p in compiled.graph.params] == ["emb.weight", "b"]
    assert param_uses(compiled.graph) == {"emb.weight": 2, "b": 1}
    assert [i.name for i in compiled.model.graph.initializer if i.name in ("emb.weight", "b")] == ["emb.weight", "b"]
    table = params_table(compiled.graph)
    assert "uses" in table and "shared: 1 tensor(s)" in table
    _agree(compiled)
    # a weight file holds the tied table once, and the model uses exactly it both ways
    weights = {"emb.weight": np.arange(35, dtype=np.float32).reshape(7, 5) / 35, "b": np.zeros(7, np.float32)}
    np.savez(tmp_path / "w.npz", **weights)
    path = tmp_path / "tied.net"
    path.write_text(TIED)
    loaded = netc.compile_file(path, weights=tmp_path / "w.npz")
    ids = np.array([[0, 6, 3]], np.int64)
    got, _want = run_both(loaded, {"ids": ids})
    np.testing.assert_allclose(got["logits"], np.tanh(weights["emb.weight"][ids]) @ weights["emb.weight"].T,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["table"], weights["emb.weight"])


SIAMESE = """
block tower(x, width: int) {
  param scale: f32[width] = uniform(0.5, 1.5)
  return (x -> dense(width, act=relu) -> dense(width)) * scale
}
network Siamese {
  input a: f32[N, 6]
  input b: f32[N, 6]
  t = shared(tower, width=4)
  output ha = a -> t
  output hb = b -> t
  output w = t.dense1.weight
}
"""


def test_siamese_towers_share_every_parameter():
    compiled = _compile(SIAMESE)
    names = [p.name for p in compiled.graph.params]
    assert names == ["tower0.scale", "tower0.dense0.weight", "tower0.dense0.bias", "tower0.dense1.weight",
                     "tower0.dense1.bias"]
    assert set(param_uses(compiled.graph).values()) == {2}
    x = random_inputs(compiled.graph, 0)["a"]
    got, _want = run_both(compiled, {"a": x, "b": x})
    np.testing.assert_array_equal(got["ha"], got["hb"])  # same input, same parameters: same code
    np.testing.assert_array_equal(got["w"], compiled.params["tower0.dense1.weight"])
    _agree(compiled)


def test_shared_layer_inside_and_outside_a_recurrence():
    text = """
block step(h, x, proj) {
  return tanh((x -> proj) + dense(h, 3, bias=false))
}
network M {
  input xs: f32[T, N, 3]
  input x0: f32[N, 3]
  proj = shared(dense, 3, name="proj")
  h0 = x0 -> proj
  output hs = recur(step, xs, init=h0, proj=proj)
}
"""
    compiled = _compile(text)
    assert [p.name for p in compiled.graph.params] == ["proj.weight", "proj.bias", "recur0.dense0.weight"]
    assert param_uses(compiled.graph)["proj.weight"] == 2
    _agree(compiled)


def test_shared_layer_made_inside_a_shared_block_is_reused():
    text = """
block pair(x) {
  p = shared(dense, 4)
  return (x -> p) + (x * 2 -> p)
}
network M {
  input a: f32[N, 4]
  input b: f32[N, 4]
  t = shared(pair)
  output y = (a -> t) - (b -> t)
}
"""
    compiled = _compile(text)
    assert [p.name for p in compiled.graph.params] == ["pair0.dense0.weight", "pair0.dense0.bias"]
    assert param_uses(compiled.graph)["pair0.dense0.weight"] == 4
    _agree(compiled)


def test_a_later_call_may_not_make_new_parameters():
    text = """
block grow(x) {
  h = x -> dense(4)
  return if dim(x, 0) == 2 { h } else { h -> dense(4) }
}
network M {
  input a: f32[2, 4]
  input b: f32[3, 4]
  g = shared(grow)
  h1 = a -> g
  output y = b -> g
}
"""
    with pytest.raises(NetcNameError, match="which its first call did not make"):
        netc.compile_source(text)


def test_separate_layers_still_may_not_collide():
    text = """
network M {
  input x: f32[N, 4]
  p = shared(dense, 4, name="fc")
  a = x -> p
  output y = x -> dense(4, name="fc")
}
"""
    with pytest.raises(NetcNameError, match=r"parameter name 'fc\.weight' is used twice"):
        netc.compile_source(text)


def test_compiled_model_with_sharing_is_byte_identical():
    a = netc.compile_source(SIAMESE, seed=1).model.SerializeToString()
    b = netc.compile_source(SIAMESE, seed=1).model.SerializeToString()
    assert a == b
