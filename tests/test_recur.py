"""Recurrence over step blocks: `recur` (Scan), `generate` (Loop with early exit), `recurse`
(Loop over a tree's nodes), nesting, hoisting out of loop bodies, and located errors.

The registry's parity cases (tests/test_op_parity.py) already hold onnxruntime to the
reference on random inputs; here the outputs are also checked against hand-written NumPy
and hand-worked numbers, and the IR after the passes is inspected.
"""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.compiler import dims as D
from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network
from netc.compiler.lowering import lower_graph
from netc.compiler.ops import REGISTRY
from netc.compiler.passes import eliminate_dead_code, hoist_loop_invariants
from netc.dsl.errors import NetcError
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from tests.conftest import assert_close, check_onnx, random_inputs, run_both

ELMAN = """
block elman(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
"""


def _ort(compiled: netc.Compiled, inputs: dict) -> dict:
    session = make_session(compiled.model).session
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs)))


def _both(compiled: netc.Compiled, inputs: dict) -> dict:
    """onnxruntime's outputs, after checking the model and comparing with the reference."""
    check_onnx(compiled.model)
    got, want = run_both(compiled, inputs)
    for name, value in want.items():
        assert_close({name: got[name]}, {name: value}, compiled.graph.outputs[name].type.dtype.value, name)
    return got


def _region_ops(graph, kind: str = "recur") -> list[str]:
    (op,) = [op for op in graph.ops if op.kind == kind]
    return [inner.kind for inner in op.regions[0].ops]


# ---------------------------------------------------------------------- recur


def test_elman_matches_hand_written_numpy():
    src = ELMAN + """
network Elman {
  input x: f32[5, 3, 4]
  output hs = recur(elman, x, init=zeros(3, 6), hidden=6)
}
"""
    compiled = netc.compile_source(src, seed=3)
    p = compiled.params
    assert sorted(p) == ["recur0.dense0.bias", "recur0.dense0.weight", "recur0.dense1.weight"]
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    h = np.zeros((3, 6), np.float32)
    want = []
    for t in range(5):
        h = np.tanh(x[t] @ p["recur0.dense0.weight"] + p["recur0.dense0.bias"] + h @ p["recur0.dense1.weight"])
        want.append(h)
    got = _both(compiled, {"x": x})
    np.testing.assert_allclose(got["hs"], np.stack(want), rtol=1e-5, atol=1e-6)


def test_reverse_runs_from_the_end_and_keeps_positions():
    src = """
network Sums {
  input x: f32[T, N, 2]
  fwd, total = recur(add, x, init=zeros(N, 2), return_state=true)
  output f = fwd
  output b = recur(add, x, init=zeros(N, 2), reverse=true)
  output t = total
}
"""
    compiled = netc.compile_source(src)
    x = np.random.default_rng(1).standard_normal((4, 3, 2)).astype(np.float32)
    got = _both(compiled, {"x": x})
    np.testing.assert_allclose(got["f"], np.cumsum(x, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["b"], np.cumsum(x[::-1], axis=0)[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["t"], x.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_tuple_state_and_separate_output():
    src = """
block fib(s, x) {
  a, b = s
  return (b, a + b + x), a * 2
}
network Fib {
  input x: f32[6, 1]
  ys, (a, b) = recur(fib, x, init=(zeros(1), ones(1)), return_state=true)
  output out = ys
  output last_b = b
}
"""
    compiled = netc.compile_source(src)
    got = _both(compiled, {"x": np.zeros((6, 1), np.float32)})
    np.testing.assert_array_equal(got["out"][:, 0], [0, 2, 2, 4, 6, 10])
    np.testing.assert_array_equal(got["last_b"], [13])


def test_parameters_are_created_once_and_named_under_the_call():
    src = ELMAN + """
block tagger(x) {
  return recur(elman, x, init=zeros(N, 4), hidden=4, name="enc")
}
network Named {
  input x: f32[T, N, 3]
  h = recur(elman, x, init=zeros(N, 4), hidden=4)
  output y = tagger(h)
}
""".replace("zeros(N, 4), hidden=4, name", "zeros(dim(x, 1), 4), hidden=4, name")
    (graph,) = netc.check_file("named.net", source=src)
    assert [p.name for p in graph.params] == [
        "recur0.dense0.weight", "recur0.dense0.bias", "recur0.dense1.weight",
        "tagger0.enc.dense0.weight", "tagger0.enc.dense0.bias", "tagger0.enc.dense1.weight"]


def test_captured_tensor_and_two_sequences():
    src = """
block step(h, xs, scale) {
  a, b = xs
  return h * scale + a - b
}
network Capture {
  input x: f32[T, N, 3]
  input y: f32[T, N, 3]
  input s: f32[3]
  output out = recur(step, (x, y), init=zeros(N, 3), scale=s)
}
"""
    compiled = netc.compile_source(src)
    inputs = random_inputs(compiled.graph, 0)
    got = _both(compiled, inputs)
    h = np.zeros(inputs["x"].shape[1:], np.float32)
    for t in range(inputs["x"].shape[0]):
        h = h * inputs["s"] + inputs["x"][t] - inputs["y"][t]
    np.testing.assert_allclose(got["out"][-1], h, rtol=1e-5, atol=1e-6)


def test_nested_recur():
    src = """
block inner(d, t) {
  return d + t
}
block outer(ts, x) {
  ys, top = recur(inner, ts, init=x, return_state=true)
  return ys, top
}
network Nested {
  input x: f32[T, N, 2]
  input s: f32[3, N, 2]
  output y = recur(outer, x, init=s)
}
"""
    compiled = netc.compile_source(src)
    inputs = random_inputs(compiled.graph, 0)
    got = _both(compiled, inputs)
    ts = inputs["s"].copy()
    want = []
    for t in range(inputs["x"].shape[0]):
        ts = np.cumsum(ts, axis=0) + inputs["x"][t]  # inner prefix sums starting from x_t
        want.append(ts[-1])
    np.testing.assert_allclose(got["y"], np.stack(want), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- hoisting


def _graph(src: str, hoist: bool):
    program = netc.load("case.net", src)
    graph = elaborate_network(program, choose_network(program, None), NetworkOptions())
    graph = eliminate_dead_code(graph)
    return hoist_loop_invariants(graph) if hoist else graph


def test_hoisting_moves_the_input_projection_out_of_the_scan():
    src = ELMAN + """
network Elman {
  input x: f32[T, N, 8]
  output hs = recur(elman, x, init=zeros(N, 5), hidden=5)
}
"""
    graph = _graph(src, hoist=True)
    assert [op.kind for op in graph.ops] == ["fill", "dense", "recur"]
    projection = graph.ops[1]
    assert str(projection.inputs[0].type) == "f32[T, N, 8]" and str(projection.outputs[0].type) == "f32[T, N, 5]"
    assert _region_ops(graph) == ["dense", "add", "tanh"]  # the state's dense only
    recur = graph.ops[2]
    assert recur.inputs[1] is projection.outputs[0]  # the projection is the scan input now
    # Same numbers with and without hoisting, on onnxruntime and on the reference.
    plain = _graph(src, hoist=False)
    assert _region_ops(plain) == ["dense", "dense", "add", "tanh"]
    params = netc.compile_source(src).params
    x = np.random.default_rng(0).standard_normal((4, 2, 8)).astype(np.float32)
    results = []
    for g in (graph, plain):
        model = lower_graph(g, params)
        check_onnx(model)
        session = make_session(model).session
        results.append(session.run(None, {"x": x})[0])
        results.append(run_graph(g, params, {"x": x})["hs"])
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-5, atol=1e-6)


def test_hoisting_keeps_state_dependent_and_axis_sensitive_work_inside():
    src = """
block step(h, x) {
  a = softmax(x, axis=0)
  b = softmax(x * 2)
  c = x[0]
  return h + a + b + c + 1
}
network Keep {
  input x: f32[T, 3, 4]
  output y = recur(step, x, init=zeros(3, 4))
}
"""
    graph = _graph(src, hoist=True)
    body = _region_ops(graph)
    assert "softmax" in body and body.count("softmax") == 1  # axis=0 stays; axis=-1 is hoisted
    assert "index" in body  # x[0] indexes the batch axis of the slice: not step-polymorphic
    assert "constant" not in body  # the constants 1 and 2 are invariant
    compiled = netc.compile_source(src)
    _both(compiled, random_inputs(compiled.graph, 0))


def test_hoisting_nested_regions_moves_work_level_by_level():
    src = """
block inner(d, t) {
  return tanh(dense(d, 3) + dense(t, 3, bias=false))
}
block outer(ts, x) {
  return recur(inner, ts, init=dense(x, 3) + zeros(dim(x, 0), 3))
}
network Nested {
  input x: f32[T, N, 2]
  input s0: f32[4, N, 3]
  output y = recur(outer, x, init=s0)
}
"""
    graph = _graph(src, hoist=True)
    # The outer step's input projection and the zeros leave both loops; the inner step's
    # dense(t) leaves the inner loop and runs over all 4 layers in the outer body.
    assert [op.kind for op in graph.ops] == ["dense", "fill", "add", "recur"]
    assert str(graph.ops[2].outputs[0].type) == "f32[T, N, 3]"
    outer = graph.ops[3].regions[0]
    assert [op.kind for op in outer.ops] == ["dense", "recur"]
    assert str(outer.ops[0].outputs[0].type) == "f32[4, N, 3]"
    assert [op.kind for op in outer.ops[1].regions[0].ops] == ["dense", "add", "tanh"]
    compiled = netc.compile_source(src)
    _both(compiled, random_inputs(compiled.graph, 0))


def test_invariant_work_moves_out_of_generate():
    src = """
block step(s, prev, memory) {
  keys = dense(memory, 4, bias=false)
  return s, sum(keys, axis=0) + s
}
network Gen {
  input m: f32[T, N, 3]
  input s: f32[N, 4]
  output ids = generate(step, init=s, start=0, max_len=3, memory=m)
}
"""
    graph = _graph(src, hoist=True)
    assert _region_ops(graph, "generate") == ["add"]
    assert [op.kind for op in graph.ops] == ["fill", "dense", "sum", "generate"]
    compiled = netc.compile_source(src)
    _both(compiled, random_inputs(compiled.graph, 0))


def test_dead_code_inside_a_step_and_its_parameters_go():
    src = """
block step(h, x) {
  unused = dense(x, 7)
  return h + x
}
network Dead {
  input x: f32[T, N, 3]
  output y = recur(step, x, init=zeros(N, 3))
}
"""
    compiled = netc.compile_source(src)
    assert compiled.graph.params == []
    assert _region_ops(compiled.graph) == ["add"]
    _both(compiled, random_inputs(compiled.graph, 0))


def test_flops_count_every_step():
    src = ELMAN + """
network Elman {
  input x: f32[T, 2, 3]
  output hs = recur(elman, x, init=zeros(2, 4), hidden=4)
}
"""
    (graph,) = netc.check_file("e.net", source=src)
    (recur,) = [op for op in graph.ops if op.kind == "recur"]
    # h @ U, the add, the tanh, and x @ W: the step is a recognised Elman cell
    # (compiler/passes/recognise_cells.py), so its input projection is not hoisted out
    per_step = 2 * 2 * 4 * 4 + 2 * 4 + 2 * 4 + 2 * 2 * 3 * 4
    assert REGISTRY["recur"].flops(recur) == D.mul(D.symbol("T"), per_step)


# ---------------------------------------------------------------------- generate

COUNTER = """
block counter(c, prev, limit) {
  c2 = c + 1.0
  return c2, concat(limit - c2, c2 - limit)
}
"""


def _counter(max_len: int, stop: str = "1") -> netc.Compiled:
    src = COUNTER + f"""
network Count {{
  input limit: f32[N, 1]
  output ids = generate(counter, init=zeros(N, 1), start=0, stop={stop}, max_len={max_len}, limit=limit)
}}
"""
    return netc.compile_source(src)


def test_generate_stops_when_every_sequence_has_emitted_stop():
    # Token 1 (stop) wins once the step count passes the sequence's limit.
    compiled = _counter(10)
    limit = np.array([[1.5], [3.5], [0.5]], np.float32)
    got = _both(compiled, {"limit": limit})
    np.testing.assert_array_equal(got["ids"], [[0, 0, 1], [1, 0, 1], [1, 0, 1], [1, 1, 1]])
    assert str(compiled.graph.outputs["ids"].type) == "i64[generate0.len, N]"
    assert {n.op_type for n in compiled.model.graph.node} >= {"Loop"}


def test_generate_stops_at_max_len():
    got = _both(_counter(2), {"limit": np.array([[5.0]], np.float32)})
    np.testing.assert_array_equal(got["ids"], [[0], [0]])


def test_generate_without_stop_runs_max_len_steps():
    compiled = _counter(3, stop="none")
    assert str(compiled.graph.outputs["ids"].type) == "i64[3, N]"
    got = _both(compiled, {"limit": np.array([[0.5], [2.5]], np.float32)})
    np.testing.assert_array_equal(got["ids"], [[1, 0], [1, 0], [1, 1]])


def test_generated_length_is_a_dim_later_ops_can_use():
    src = COUNTER + """
network Count {
  input limit: f32[N, 1]
  ids = generate(counter, init=zeros(N, 1), start=0, stop=1, max_len=9, limit=limit)
  output z = cast(ids, f32) + zeros(dim(ids, 0), dim(ids, 1))
}
"""
    compiled = netc.compile_source(src)
    got = _both(compiled, {"limit": np.array([[2.5], [0.5]], np.float32)})
    np.testing.assert_array_equal(got["z"], [[0, 1], [0, 1], [1, 1]])


def test_generate_with_start_ids_and_embedding():
    src = """
block step(h, prev, V: int) {
  h2 = tanh(dense(embed(prev, V, 3), 4) + dense(h, 4, bias=false))
  return h2, dense(h2, V)
}
network Gen {
  input first: i64[N]
  input h: f32[N, 4]
  output ids = generate(step, init=h, start=first, stop=0, max_len=7, V=6)
}
"""
    compiled = netc.compile_source(src, seed=1)
    for seed in range(3):
        _both(compiled, random_inputs(compiled.graph, seed, int_high=6))


# ---------------------------------------------------------------------- recurse


def test_recurse_sums_a_hand_built_tree():
    src = """
network Tree {
  input x: f32[M, 2]
  input c: i64[M, 2]
  output h = recurse(add, leaves=x, children=c)
}
"""
    compiled = netc.compile_source(src)
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    # ((0 1) 2) and a unary node over 3; a bad index (5 at node 1) means no child.
    c = np.array([[-1, -1], [5, -1], [-1, -1], [0, 1], [3, 2], [4, -1]], np.int64)
    got = _both(compiled, {"x": x, "c": c})
    want = x.copy()
    want[3] = x[0] + x[1]
    want[4] = want[3] + x[2]
    want[5] = want[4]
    np.testing.assert_allclose(got["h"], want)


def test_recurse_tree_rnn_on_random_tables():
    src = """
block compose(l, r, H: int) {
  return tanh(dense(concat(l, r), H))
}
network Tree {
  input x: f32[M, 3]
  input c: i64[M, 2]
  output h = recurse(compose, leaves=x, children=c, H=3)
}
"""
    compiled = netc.compile_source(src)
    for seed in range(3):
        _both(compiled, random_inputs(compiled.graph, seed, int_high=4, sizes={"M": 5}))


# ---------------------------------------------------------------------- errors


def _error(src: str) -> NetcError:
    with pytest.raises(NetcError) as info:
        netc.compile_source(src, name="bad.net")
    return info.value


def _at(err: NetcError) -> tuple[int, int]:
    assert err.span is not None
    return err.span.line, err.span.col


def test_error_state_type_mismatch():
    err = _error(ELMAN + """
network Bad {
  input x: f32[T, N, 3]
  output y = recur(elman, x, init=zeros(N, 16), hidden=8)
}
""")
    assert err.message == "recur: step 'elman' returns a state of type f32[N, 8], but init is f32[N, 16]"
    assert _at(err) == (8, 14)
    assert "bad.net:8:14: error:" in err.render()


def test_error_state_dtype_mismatch():
    err = _error("""
network Bad {
  input x: f32[T, N, 3]
  output y = recur(add, x, init=zeros(N, 3, dtype=f64))
}
""")
    assert "dtypes differ" in err.message and _at(err) == (4, 14)


def test_error_state_structure_mismatch():
    err = _error("""
block step(s, x) {
  return s[0] + x
}
network Bad {
  input x: f32[T, N, 3]
  output y = recur(step, x, init=(zeros(N, 3), zeros(N, 3)))
}
""")
    assert err.message.startswith("recur: step 'step' returns tensor f32[N, 3]; expected the next state "
                                  "(a tuple (tensor, tensor), like init)")
    assert _at(err) == (7, 14)


def test_error_step_arity():
    err = _error("""
block step(h) {
  return h
}
network Bad {
  input x: f32[T, N, 3]
  output y = recur(step, x, init=zeros(N, 3))
}
""")
    assert err.message == "recur: step block 'step' takes 1 parameter (h); a step takes (state, x, ...)"
    assert _at(err) == (7, 20)


def test_error_step_needs_an_argument():
    err = _error(ELMAN + """
network Bad {
  input x: f32[T, N, 3]
  output y = recur(elman, x, init=zeros(N, 8))
}
""")
    assert err.message == "recur: step block 'elman' needs 'hidden'" and _at(err) == (8, 14)
    assert err.hints == ["pass it to recur: recur(..., hidden=...)"]


def test_error_step_unknown_argument():
    err = _error(ELMAN + """
network Bad {
  input x: f32[T, N, 3]
  output y = recur(elman, x, init=zeros(N, 8), hidden=8, hiden=8)
}
""")
    assert err.message == "recur: step block 'elman' has no parameter 'hiden'" and _at(err) == (8, 58)


def test_error_non_sequence_input():
    err = _error(ELMAN + """
network Bad {
  input x: f32[T, N, 3]
  output y = recur(elman, 3, init=zeros(N, 8), hidden=8)
}
""")
    assert err.message == "recur: 'xs' must be a tensor or a tuple of tensors; got int 3"
    assert _at(err) == (8, 27)


def test_error_scalar_is_not_a_sequence():
    err = _error("""
network Bad {
  input x: f32[T, N, 3]
  output y = recur(add, x[0, 0, 0], init=zeros(N, 8))
}
""")
    assert err.message == "recur: 'xs' must be a sequence with its time axis first; got tensor f32[]"
    assert _at(err) == (4, 25)


def test_error_sequences_of_different_lengths():
    err = _error("""
network Bad {
  input x: f32[T, N, 3]
  input y: f32[5, N, 3]
  output o = recur(add, (x, y), init=zeros(N, 3))
}
""")
    assert "different lengths" in err.message and _at(err) == (5, 25)


def test_error_step_must_be_a_block():
    err = _error("""
network Bad {
  input x: f32[T, N, 3]
  output y = recur(3, x, init=zeros(N, 3))
}
""")
    assert err.message == "recur: the step must be a block; got int 3" and _at(err) == (4, 20)


def test_error_inside_the_step_points_into_the_block():
    err = _error("""
block step(h, x) {
  return h + dense(x, 5)
}
network Bad {
  input x: f32[T, N, 3]
  output y = recur(step, x, init=zeros(N, 3))
}
""")
    assert "do not broadcast" in err.message and _at(err) == (3, 10)
    assert [n[0].line for n in err.notes] == [7]


def test_error_generate_logits():
    err = _error("""
block step(s, prev) {
  return s, s[0]
}
network Bad {
  input s: f32[N, 4]
  output ids = generate(step, init=s, start=0, stop=1)
}
""")
    assert err.message == "generate: step 'step' returns logits f32[4]; expected [N, V] floats (one row per sequence)"
    assert _at(err) == (7, 16)


def test_error_recurse_children():
    err = _error("""
network Bad {
  input x: f32[M, 4]
  input c: i32[M, 2]
  output h = recurse(add, leaves=x, children=c)
}
""")
    assert err.message.startswith("recurse: 'children' must be i64[M, 2]") and _at(err) == (5, 37)


def test_error_recurse_compose_changes_the_state():
    err = _error("""
block compose(l, r) {
  return dense(concat(l, r), 3)
}
network Bad {
  input x: f32[M, 4]
  input c: i64[M, 2]
  output h = recurse(compose, leaves=x, children=c)
}
""")
    assert err.message == ("recurse: step 'compose' returns a node state of type f32[3], but row of leaves "
                           "is f32[4]")
    assert _at(err) == (8, 14)
