"""Regression tests for mistakes that once escaped as Python exceptions or produced a wrong
model: each must now compile correctly or raise a located `NetcError`. (Reproducers that
are plain `.net` files live in the error catalogue, `tests/errors/`.)"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest

import netc
from netc.compiler.elaborate import recursion_headroom
from netc.compiler.limits import Limits
from netc.compiler.lowering import lower_graph
from netc.dsl.errors import NetcError, NetcInputError, NetcLimitError, NetcTypeError, Span
from netc.runtime.reference import bind_inputs, run_graph


def _compile(body: str, blocks: str = "") -> netc.Compiled:
    compiled = netc.compile_source(blocks + "network M {\n" + body + "\n}\n", "hardening.net")
    onnx.checker.check_model(compiled.model, full_check=True)
    return compiled


def _agree(compiled: netc.Compiled, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime and the reference give the same outputs; returns them."""
    got = netc.run(compiled, inputs)
    want = run_graph(compiled.graph, compiled.params, inputs)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    return got


X = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


# ----------------------------------------------------------------------------- errors


def test_a_note_is_attached_once() -> None:
    span = Span("m.net", 2, 3, 2, 7)
    err = NetcError("boom").with_note(span, "in block 'b' called here").with_note(span, "in block 'b' called here")
    err.with_note(Span("m.net", 5, 1, 5, 4), "in block 'b' called here")
    assert len(err.notes) == 2
    assert err.render().count("note:") == 2


def test_recursive_block_notes_each_call_once() -> None:
    src = ("block b(x) { return relu(relu(b(x))) }\n"
           "network M {\n  input x: f32[N, 4]\n  output y = b(x)\n}\n")
    with pytest.raises(NetcLimitError) as info:
        netc.check_file("m.net", source=src)
    assert [s.line for s, _ in info.value.notes] == [1, 4]


# ----------------------------------------------------------------------------- recursion


def test_recursion_limit_is_restored() -> None:
    before = sys.getrecursionlimit()
    src = ("block b(x) { return " + "relu(" * 90 + "b(x)" + ")" * 90 + " }\n"
           "network M {\n  input x: f32[N, 4]\n  output y = b(x)\n}\n")
    with pytest.raises(NetcLimitError, match="nest too deeply to elaborate") as info:
        netc.check_file("m.net", source=src, limits=Limits(max_depth=100_000))
    assert info.value.span is not None and info.value.span.line == 1
    assert any("calls itself" in h for h in info.value.hints)
    assert sys.getrecursionlimit() == before
    netc.check_file("m.net", source="network M {\n  input x: f32[N, 4]\n  output y = x\n}\n")
    assert sys.getrecursionlimit() == before


def test_recursion_headroom_nests() -> None:
    before = sys.getrecursionlimit()
    with recursion_headroom(before + 500):
        with recursion_headroom(before + 100):
            assert sys.getrecursionlimit() == before + 500
        assert sys.getrecursionlimit() == before + 500
    assert sys.getrecursionlimit() == before


def test_deep_block_nesting_within_the_limit_compiles() -> None:
    """64 nested block calls with nested expressions in each: no RecursionError on the way."""
    blocks = "".join(f"block b{i}(x) {{ return " + "relu(" * 15 + f"b{i + 1}(x)" + ")" * 15 + " }\n"
                     for i in range(63))
    blocks += "block b63(x) { return x }\n"
    compiled = _compile("  input x: f32[N, 4]\n  output y = b0(x)", blocks)
    _agree(compiled, {"x": X})


# ----------------------------------------------------------------------------- constants


@pytest.mark.parametrize("dtype,number", [("i64", "-2**63"), ("i64", "2**63 - 1"), ("u8", "255"), ("i8", "-128"),
                                          ("f16", "65504"), ("f32", "1e38"), ("f64", "1e308")])
def test_numbers_at_the_edge_of_the_dtype_are_constants(dtype: str, number: str) -> None:
    compiled = _compile(f"  input x: {dtype}[N, 4]\n  output y = x + ({number})")
    (const,) = [op for op in compiled.graph.ops if op.kind == "constant"]
    assert const.attrs["value"].dtype == compiled.graph.inputs[0].type.dtype.numpy


@pytest.mark.parametrize("dtype,number,message", [
    ("i64", "-2**63 - 1", "out of range for i64"),
    ("i32", "2**31", "out of range for i32"),
    ("u8", "-1", "out of range for u8"),
    ("f16", "70000", "out of range for f16"),
    ("f32", "1e39", "out of range for f32"),
    ("f32", "10**400", "out of range for f32"),
    ("f64", "1e308 * 10", "not finite"),
    ("bool", "1", "cannot combine a number with a bool tensor"),
])
def test_numbers_beyond_the_dtype_are_errors(dtype: str, number: str, message: str) -> None:
    with pytest.raises(NetcTypeError, match=message) as info:
        _compile(f"  input x: {dtype}[N, 4]\n  output y = x * ({number})")
    assert info.value.span is not None and info.value.span.line == 3


@pytest.mark.parametrize("expr,message", [
    ("-b", "neg needs a signed numeric tensor"),
    ("b @ b", "matmul needs f16, f32, f64, i32 or i64"),
    ("c + c", "add needs numeric tensors"),
    ("-c", "neg needs a signed numeric tensor"),
])
def test_arithmetic_onnx_has_no_kernel_for_is_an_error(expr: str, message: str) -> None:
    with pytest.raises(NetcTypeError, match=message):
        _compile(f"  input b: u8[4, 4]\n  input c: bool[4, 4]\n  output y = {expr}")


def test_identity_of_a_bool_tensor_still_compiles() -> None:
    _compile("  input c: bool[N, 4]\n  output y = identity(c)")


# ----------------------------------------------------------------------------- indexing


def test_slice_bounds_beyond_int64_clamp_like_python() -> None:
    compiled = _compile("  input x: f32[N, 4]\n  output y = x[:, 1:10**20]\n  output z = x[:, -10**20:2]")
    got = _agree(compiled, {"x": X})
    np.testing.assert_array_equal(got["y"], X[:, 1:])
    np.testing.assert_array_equal(got["z"], X[:, :2])


def test_compile_time_list_slicing_with_large_bounds() -> None:
    compiled = _compile("  input x: f32[N, 4]\n  output y = x -> dense([1, 2, 3][1:10**30][0])")
    assert compiled.graph.outputs["y"].type.shape[-1] == 2


# ----------------------------------------------------------------------------- compile-time values


def test_lists_up_to_the_limit_are_fine() -> None:
    src = "network M {\n  input x: f32[N, 4]\n  k = len([0] * 1000)\n  output y = x -> dense(k)\n}\n"
    with pytest.raises(NetcLimitError, match="list of 1000 items is over the limit of 999"):
        netc.check_file("m.net", source=src, limits=Limits(max_list_items=999))
    (graph,) = netc.check_file("m.net", source=src, limits=Limits(max_list_items=1000))
    assert graph.outputs["y"].type.shape[-1] == 1000


def test_range_counts_without_building_the_list() -> None:
    src = "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(len(range(-10**30, 10**30, 7)))\n}\n"
    with pytest.raises(NetcLimitError, match=r"range\(\) of 2857142857\d+ items is over the limit"):
        netc.check_file("m.net", source=src)


def test_integers_within_the_bit_limit_are_exact() -> None:
    src = ("network M {\n  input x: f32[N, 4]\n  k = 2**4000 * 3\n"
           "  output y = x -> dense(k // 2**3999 - 2)\n}\n")
    (graph,) = netc.check_file("m.net", source=src)
    assert graph.outputs["y"].type.shape[-1] == 4


def test_symbolic_dims_with_huge_coefficients_are_refused() -> None:
    src = "network M {\n  input x: f32[N, 4]\n  output y = zeros(N * 2**70, 4)\n}\n"
    with pytest.raises(NetcLimitError, match="coefficient beyond the int64 range"):
        netc.check_file("m.net", source=src)


# ----------------------------------------------------------------------------- blocks


ACT_BLOCKS = """
block apply(x, a: act) { return a(x) }
block piped(x, a: act = tanh) { return x -> a }
block passed(x, a: act) { return x -> dense(3, act=a, name="fc") }
"""


def test_an_act_parameter_can_be_called() -> None:
    compiled = _compile("  input x: f32[N, 4]\n  output p = apply(x, relu)\n  output q = piped(x)\n"
                        "  output r = apply(x, a=sigmoid)", ACT_BLOCKS)
    got = _agree(compiled, {"x": X})
    np.testing.assert_allclose(got["p"], np.maximum(X, 0))
    np.testing.assert_allclose(got["q"], np.tanh(X), rtol=1e-6)
    np.testing.assert_allclose(got["r"], 1 / (1 + np.exp(-X)), rtol=1e-6)


def test_an_act_parameter_can_be_passed_on() -> None:
    compiled = _compile("  input x: f32[N, 4]\n  output y = passed(x, relu)", ACT_BLOCKS)
    assert "Relu" in [n.op_type for n in compiled.model.graph.node]
    _agree(compiled, {"x": X})


def test_an_act_parameter_is_checked() -> None:
    with pytest.raises(NetcTypeError, match="expects an activation"):
        _compile("  input x: f32[N, 4]\n  output y = apply(x, dense)", ACT_BLOCKS)


def test_an_act_network_parameter_is_set_by_name() -> None:
    src = "network M(a: act = relu) {\n  input x: f32[N, 4]\n  output y = a(x) -> dense(3, act=a)\n}\n"
    (graph,) = netc.check_file("m.net", source=src, settings={"a": "tanh"})
    assert graph.ops[0].kind == "tanh"
    assert graph.ops[-1].attrs["act"] == "tanh"
    with pytest.raises(NetcInputError, match="expects an activation"):
        netc.check_file("m.net", source=src, settings={"a": "dense"})


@pytest.mark.parametrize("name", ["3", '"two words"', "none"])
def test_a_block_instance_name_must_be_an_identifier(name: str) -> None:
    with pytest.raises(NetcTypeError, match="block instance name must be an identifier"):
        _compile(f"  input x: f32[N, 4]\n  output y = passed(x, relu, name={name})", ACT_BLOCKS)


def test_a_block_instance_name_prefixes_its_parameters() -> None:
    compiled = _compile("  input x: f32[N, 4]\n  output y = passed(x, relu, name=\"head\")", ACT_BLOCKS)
    assert sorted(compiled.params) == ["head.fc.bias", "head.fc.weight"]


# ----------------------------------------------------------------------------- outputs and lowering


def test_outputs_that_compute_nothing_get_a_tensor_of_their_own() -> None:
    compiled = _compile("  input x: f32[2, 4]\n  h = x -> dense(4, name=\"fc\")\n  output same = x\n"
                        "  output zero = zeros(2, 4)\n  output a = h\n  output b = h")
    names = [o.name for o in compiled.model.graph.output]
    assert names == ["same", "zero", "a", "b"]
    got = _agree(compiled, {"x": X})
    np.testing.assert_array_equal(got["same"], X)
    np.testing.assert_array_equal(got["zero"], np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(got["a"], got["b"])


def test_an_output_read_by_a_step_body_keeps_one_name() -> None:
    """Naming an op's result after the output renames it in Scan bodies that read it too."""
    compiled = _compile("  input x: f32[T, N, 3]\n  w = x[0] -> relu\n  output a = w\n"
                        "  output b = recur(step, x, init=zeros(N, 3), w=w)",
                        "block step(h, x, w) { return tanh(h * w + x) }\n")
    x = np.random.default_rng(1).standard_normal((4, 2, 3)).astype(np.float32)
    _agree(compiled, {"x": x})


def test_lower_graph_names_every_top_level_value() -> None:
    compiled = netc.compile_source("network M {\n  input x: f32[N, 4]\n  h = x -> dense(4) -> relu\n"
                                   "  output y = h * 2 + 1\n}\n", "m.net")
    graph = compiled.graph
    names: dict[int, str] = {}
    model = lower_graph(graph, compiled.params, value_names=names)
    tensors = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} \
        | {o for n in model.graph.node for o in n.output}
    values = [*graph.inputs, *graph.param_values.values(), *(v for op in graph.ops for v in op.outputs)]
    assert {id(v) for v in values} == set(names)
    assert set(names.values()) <= tensors
    assert names[id(graph.outputs["y"])] == "y"
    assert names[id(graph.inputs[0])] == "x"


# ----------------------------------------------------------------------------- inputs


def test_reference_inputs_must_be_arrays_by_name() -> None:
    compiled = netc.compile_source("network M {\n  input x: f32[N, 4]\n  output y = x -> relu\n}\n", "m.net")
    with pytest.raises(NetcInputError, match="input 'x' must be a NumPy array; got list"):
        bind_inputs(compiled.graph, {"x": X.tolist()})
    with pytest.raises(NetcInputError, match="inputs must map input names to NumPy arrays; got list"):
        bind_inputs(compiled.graph, [X])  # type: ignore[arg-type]
    with pytest.raises(NetcInputError, match="input 'x' must be a NumPy array; got list"):
        netc.run(compiled, {"x": X.tolist()})
    with pytest.raises(NetcInputError, match="inputs must map input names"):
        netc.run(compiled, [X])  # type: ignore[arg-type]
