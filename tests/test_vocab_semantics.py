"""Semantics of run-time comparisons, floor division, tensor literals, dims as run-time
values and run-time lengths, checked against known answers (worked examples) rather than
only onnxruntime against the reference."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.dsl.errors import NetcTypeError
from tests.conftest import EXAMPLES, check_onnx, network_source, run_both


def compile_expr(expr: str, inputs: dict[str, str]) -> netc.Compiled:
    compiled = netc.compile_source(network_source(expr, inputs, "f32"), seed=0)
    check_onnx(compiled.model)
    return compiled


def outputs(compiled: netc.Compiled, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs, after checking that the reference agrees exactly."""
    got, want = run_both(compiled, arrays)
    for name, expected in want.items():
        np.testing.assert_array_equal(got[name], expected, err_msg=name)
    return got


def test_integer_floor_division_and_modulo_agree_with_compile_time_numbers():
    # The same divisions folded at compile time (Python ints) and run on tensors.
    pairs = [(a, b) for a in range(-7, 8) for b in (-3, -2, -1, 1, 2, 3)]
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    folded_q = ", ".join(f"({x}) // ({y})" for x, y in pairs)
    folded_r = ", ".join(f"({x}) % ({y})" for x, y in pairs)
    src = (f"network M {{\n  input a: i64[{len(pairs)}]\n  input b: i64[{len(pairs)}]\n"
           f"  output q = a // b\n  output r = a % b\n"
           f"  output fq = a * 0 + [{folded_q}]\n  output fr = a * 0 + [{folded_r}]\n}}\n")
    compiled = netc.compile_source(src)
    got = outputs(compiled, {"a": a, "b": b})
    np.testing.assert_array_equal(got["q"], got["fq"])
    np.testing.assert_array_equal(got["r"], got["fr"])
    np.testing.assert_array_equal(got["q"], [x // y for x, y in pairs])


def test_float_modulo_has_the_sign_of_the_divisor():
    compiled = compile_expr("output r = x % 2.0\n  output s = x % -2.0\n  output q = x // 2.0",
                            {"x": "f32[4]"})
    x = np.array([-3.5, -0.5, 0.5, 3.5], dtype=np.float32)
    got, _ = run_both(compiled, {"x": x})
    np.testing.assert_allclose(got["r"], [0.5, 1.5, 0.5, 1.5])
    np.testing.assert_allclose(got["s"], [-1.5, -0.5, -1.5, -0.5])
    np.testing.assert_allclose(got["q"], [-2, -1, 0, 1])


def test_integer_true_division_is_refused_but_numbers_divide_exactly():
    with pytest.raises(NetcTypeError, match="'/' of integer tensors is not defined"):
        compile_expr("i / 2", {"i": "i64[3]"})
    compiled = compile_expr("x * (7 / 2)", {"x": "f32[1]"})  # 3.5 at compile time
    got, _ = run_both(compiled, {"x": np.ones(1, np.float32)})
    assert got["out"][0] == 3.5


def test_compile_time_comparisons_still_fold():
    src = """
network M {
  input x: f32[N, 4]
  output y = if dim(x, 1) > 2 and not (dim(x, 1) == 3) { x * 2 } else { x }
  output m = x > dim(x, 1) - 4.5
}
"""
    graph = netc.compile_source(src).graph
    assert [op.kind for op in graph.ops if op.kind in ("greater", "mul")] == ["mul", "greater"]
    assert str(graph.outputs["m"].type) == "bool[N, 4]"


def test_tensor_literals_take_the_tensors_dtype_or_their_own():
    src = """
const theta0 = [[1, 0, 0], [0, 1, 0]]
network M {
  input x: f64[2, 3]
  output a = x * theta0
  output b = tensor(theta0)
  output c = tensor([0.5, 1])
  output d = tensor([true, false])
}
"""
    graph = netc.compile_source(src).graph
    assert [str(graph.outputs[k].type) for k in "abcd"] == ["f64[2, 3]", "i64[2, 3]", "f32[2]", "bool[2]"]
    with pytest.raises(NetcTypeError, match=r"cannot combine the float 0\.5 of a literal with i64"):
        netc.compile_source("network M {\n input i: i64[2]\n output y = i + [0.5, 1]\n}\n")


def test_a_dim_is_its_run_time_value():
    compiled = compile_expr("output a = x / dim(x, 0)\n  output n = tensor(dim(x, 0) * dim(x, 1))\n"
                            "  output r = arange(dim(x, 1)) * 2", {"x": "f32[N, T]"})
    x = np.ones((3, 5), np.float32)
    got, _ = run_both(compiled, {"x": x})
    np.testing.assert_allclose(got["a"], x / 3)
    assert got["n"] == 15
    np.testing.assert_array_equal(got["r"], [0, 2, 4, 6, 8])


def test_ctc_greedy_decoder_collapses_repeats_and_drops_blanks():
    compiled = netc.compile_file(EXAMPLES / "ctc_greedy_decoder.net", settings={"V": 4}, seed=0)
    check_onnx(compiled.model)
    frames = np.array([[1, 1, 0, 2, 2, 0, 0, 3],      # -> 1 2 3
                       [0, 3, 3, 3, 0, 3, 1, 1],      # -> 3 3 1, but length 6: -> 3 3
                       [2, 0, 2, 2, 1, 2, 0, 0]]).T   # -> 2 2 1 2
    logits = np.eye(4, dtype=np.float32)[frames] * 5
    lengths = np.array([8, 6, 8], dtype=np.int64)
    got = outputs(compiled, {"logits": logits, "lengths": lengths})
    np.testing.assert_array_equal(got["n"], [3, 2, 4])
    np.testing.assert_array_equal(got["ids"].T, [[1, 2, 3, -1], [3, 3, -1, -1], [2, 2, 1, 2]])
    np.testing.assert_array_equal(got["first"], [1, 2, 3])
    np.testing.assert_array_equal(got["emitted_at"][:, :3], [[0, 0, 1], [0, 2, 1]])  # (frame, sequence)
    output = {o.name: o for o in compiled.model.graph.output}
    assert output["ids"].type.tensor_type.shape.dim[0].dim_param == "compact0.len"


def test_clockwork_modules_keep_their_state_between_ticks():
    compiled = netc.compile_file(EXAMPLES / "clockwork_rnn.net", seed=0)
    x = np.random.default_rng(0).standard_normal((9, 2, 16)).astype(np.float32)
    got, want = run_both(compiled, {"x": x})
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)
    from netc.runtime.reference import run_graph

    record: dict[int, np.ndarray] = {}
    run_graph(compiled.graph, compiled.params, {"x": x}, record=record)
    (rec,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    (h,) = [record[id(v)] for v in rec.outputs if v.type.rank == 3]  # [T, N, 4 * 8]
    for i, period in enumerate([1, 2, 4, 8]):
        block = h[:, :, i * 8:(i + 1) * 8]
        for t in range(1, 9):
            changed = not np.array_equal(block[t], block[t - 1])
            assert changed == (t % period == 0), (i, t)


def test_compress_in_a_verified_model_reports_its_run_time_dim(tmp_path):
    src = tmp_path / "c.net"
    src.write_text("network C {\n  input x: f32[T, 3]\n  output y = compress(x, x[:, 0] > 0)\n}\n")
    (graph,) = netc.check_file(src)
    assert str(graph.outputs["y"].type) == "f32[compress0.len, 3]"
    from netc.cli import main

    assert main(["verify", str(src)]) == 0


def test_nan_propagates_through_maximum_minimum_and_clip_and_compares_false():
    compiled = compile_expr("output a = maximum(x, 0)\n  output b = minimum(x, 0)\n  output c = clip(x, -1, 1)\n"
                            "  output d = x > 0\n  output e = isnan(x)", {"x": "f32[4]"})
    x = np.array([np.nan, 1, -1, 2], np.float32)
    got, want = run_both(compiled, {"x": x})
    for name in "abc":
        assert np.isnan(got[name][0]) and np.isnan(want[name][0]), name
        np.testing.assert_array_equal(got[name][1:], want[name][1:])
    np.testing.assert_array_equal(got["d"], [False, True, False, True])
    np.testing.assert_array_equal(got["e"], [True, False, False, False])
