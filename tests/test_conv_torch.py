"""Convolution and pooling against PyTorch as an independent oracle (weights copied from
torch into netc's parameters), the tutorial's worked example, and the located shape and
argument errors of the conv/pool family."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import netc  # noqa: E402
from netc.compiler.lowering import lower_graph  # noqa: E402
from netc.compiler.ops import REGISTRY  # noqa: E402
from netc.dsl.errors import NetcShapeError, NetcTypeError  # noqa: E402
from netc.runtime.reference import run_graph  # noqa: E402
from netc.runtime.session import make_session  # noqa: E402
from tests.conftest import check_onnx, network_source  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


def compile_case(expr: str, x_type: str) -> netc.Compiled:
    compiled = netc.compile_source(network_source(expr, {"x": x_type}, "f32"), seed=1)
    check_onnx(compiled.model)
    return compiled


def run_both(compiled: netc.Compiled, params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The output on onnxruntime (params as initializers) and on the NumPy reference."""
    model = lower_graph(compiled.graph, params)
    session = make_session(model).session
    got = session.run(None, {"x": x})[0]
    want = run_graph(compiled.graph, params, {"x": x})["out"]
    return got, want


def torch_params(compiled: netc.Compiled, seed: int) -> dict[str, np.ndarray]:
    """Random weights of every parameter's shape, drawn with torch's generator."""
    gen = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn(p.shape, generator=gen).numpy() for p in compiled.graph.params}


def check_against(compiled: netc.Compiled, params: dict[str, np.ndarray], x: np.ndarray, expected) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    got, want = run_both(compiled, params, x)
    assert got.shape == expected.shape, f"onnxruntime {got.shape} vs torch {tuple(expected.shape)}"
    np.testing.assert_allclose(want, expected, rtol=RTOL, atol=ATOL, err_msg="reference vs torch")
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg="onnxruntime vs torch")


def same_upper(x, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]):
    """torch's padding="same" refuses stride > 1; pad by hand as SAME_UPPER does."""
    pads: list[int] = []
    for size, k, s, d in reversed(list(zip(x.shape[2:], kernel, stride, dilation))):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


# ------------------------------------------------------------------ convolution

CONV1D = [
    # netc arguments, torch.nn.functional.conv1d keyword arguments (or a padding function)
    ("conv1d(x, 4, kernel=3)", {}),
    ("conv1d(x, 4, kernel=3, stride=2, pad=1)", {"stride": 2, "padding": 1}),
    ("conv1d(x, 6, kernel=5, stride=3)", {"stride": 3}),
    ('conv1d(x, 4, kernel=3, dilation=2, pad="same")', {"dilation": 2, "padding": "same"}),
    ("conv1d(x, 6, kernel=3, groups=3, pad=2)", {"groups": 3, "padding": 2}),
    ("conv1d(x, 6, kernel=3, groups=6)", {"groups": 6}),
    ('conv1d(x, 4, kernel=2, dilation=4, pad="causal")', {"dilation": 4, "pre_pad": (4, 0)}),
    ("conv1d(x, 4, kernel=4, stride=2, pad=[3, 0])", {"stride": 2, "pre_pad": (3, 0)}),
    ('conv1d(x, 4, kernel=4, stride=3, pad="same")', {"stride": 3, "same": True}),
]


@pytest.mark.parametrize(("expr", "kw"), CONV1D, ids=[c[0] for c in CONV1D])
@pytest.mark.parametrize("length", [11, 16])
def test_conv1d_matches_torch(expr, kw, length):
    compiled = compile_case(expr, "f32[N, 6, L]")
    params = torch_params(compiled, 0)
    x = torch.randn(3, 6, length, generator=torch.Generator().manual_seed(length))
    weight, bias = (torch.from_numpy(params[p.name]) for p in compiled.graph.params)
    kw = dict(kw)
    xt = F.pad(x, kw.pop("pre_pad")) if "pre_pad" in kw else x
    if kw.pop("same", False):
        xt = same_upper(x, tuple(weight.shape[2:]), (kw["stride"],), (1,))
    check_against(compiled, params, x.numpy(), F.conv1d(xt, weight, bias, **kw))


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return v if isinstance(v, tuple) else (v, v)


CONV2D = [
    ("conv2d(x, 5, kernel=3)", {}),
    ("conv2d(x, 5, kernel=3, stride=2, pad=1)", {"stride": 2, "padding": 1}),
    ("conv2d(x, 5, kernel=[3, 2], stride=[1, 2], pad=[2, 1])", {"stride": (1, 2), "padding": (2, 1)}),
    ("conv2d(x, 4, kernel=3, dilation=[2, 1], pad=2)", {"dilation": (2, 1), "padding": 2}),
    ('conv2d(x, 4, kernel=3, dilation=2, pad="same")', {"dilation": 2, "padding": "same"}),
    ("conv2d(x, 6, kernel=3, groups=2)", {"groups": 2}),
    ("conv2d(x, 4, kernel=3, groups=4, pad=1)", {"groups": 4, "padding": 1}),  # depthwise
    ("conv2d(x, 8, kernel=3, groups=4, stride=2)", {"groups": 4, "stride": 2}),  # depthwise, multiplier 2
    ("conv2d(x, 3, kernel=3, pad=[0, 1, 2, 1])", {"pre_pad": (1, 1, 0, 2)}),  # top, left, bottom, right
    ('conv2d(x, 3, kernel=3, stride=2, pad="same")', {"stride": 2, "same": True}),
    ('conv2d(x, 3, kernel=[4, 3], stride=[3, 2], dilation=[1, 2], pad="same")',
     {"stride": (3, 2), "dilation": (1, 2), "same": True}),
]


@pytest.mark.parametrize(("expr", "kw"), CONV2D, ids=[c[0] for c in CONV2D])
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_conv2d_matches_torch(expr, kw, size):
    compiled = compile_case(expr, "f32[N, 4, H, W]")
    params = torch_params(compiled, 1)
    x = torch.randn(2, 4, *size, generator=torch.Generator().manual_seed(sum(size)))
    weight, bias = (torch.from_numpy(params[p.name]) for p in compiled.graph.params)
    kw = dict(kw)
    xt = F.pad(x, kw.pop("pre_pad")) if "pre_pad" in kw else x
    if kw.pop("same", False):
        xt = same_upper(x, tuple(weight.shape[2:]), _pair(kw["stride"]), _pair(kw.get("dilation", 1)))
    check_against(compiled, params, x.numpy(), F.conv2d(xt, weight, bias, **kw))


def test_conv_without_bias_and_with_activation():
    compiled = compile_case("conv2d(x, 5, kernel=3, pad=1, bias=false, act=relu)", "f32[N, 3, 8, 8]")
    assert [p.name for p in compiled.graph.params] == ["conv2d0.weight"]
    params = torch_params(compiled, 2)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = F.relu(F.conv2d(x, torch.from_numpy(params["conv2d0.weight"]), padding=1))
    check_against(compiled, params, x.numpy(), expected)


def test_conv_stack_with_symbolic_batch_and_sizes():
    expr = "x -> conv2d(8, kernel=3, pad=1, act=relu) -> maxpool(2) -> conv2d(4, kernel=3, stride=2)"
    compiled = compile_case(expr, "f32[N, 3, H, W]")
    params = torch_params(compiled, 3)
    w0, b0, w1, b1 = (torch.from_numpy(params[p.name]) for p in compiled.graph.params)
    for n, h, w in [(1, 12, 12), (3, 17, 10)]:
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(h))
        y = F.conv2d(F.max_pool2d(F.relu(F.conv2d(x, w0, b0, padding=1)), 2), w1, b1, stride=2)
        check_against(compiled, params, x.numpy(), y)


def test_weight_layout_and_fans():
    compiled = compile_case("conv2d(x, 6, kernel=[3, 5], groups=2)", "f32[N, 4, 9, 9]")
    weight, bias = compiled.graph.params
    assert weight.name == "conv2d0.weight" and weight.shape == (6, 2, 3, 5)
    assert bias.name == "conv2d0.bias" and bias.shape == (6,)
    assert weight.fan_in == 2 * 3 * 5
    assert compiled.params["conv2d0.bias"].tolist() == [0.0] * 6


def test_conv_flops():
    compiled = compile_case("conv2d(x, 6, kernel=3, groups=2, stride=2)", "f32[N, 4, 9, 9]")
    (op,) = [op for op in compiled.graph.ops if op.kind == "conv2d"]
    assert op.outputs[0].type.shape[1:] == (6, 4, 4)
    flops = REGISTRY["conv2d"].flops(op)
    assert str(flops) == str(2 * 16 * 6 * 2 * 9) + "*N"


# ------------------------------------------------------------------ pooling

POOL2D = [
    # netc call, torch function name, torch keyword arguments
    ("maxpool(x, 2)", "max_pool2d", {"kernel_size": 2}),
    ("maxpool(x, 3, stride=2, pad=1)", "max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("maxpool(x, [2, 3], stride=[1, 2], pad=[1, 0])", "max_pool2d",
     {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
    ("maxpool(x, 3, stride=2, ceil=true)", "max_pool2d", {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("maxpool(x, 2, stride=2, pad=1, ceil=true)", "max_pool2d",
     {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("maxpool(x, [3, 2], stride=2, pad=[0, 1], ceil=true)", "max_pool2d",
     {"kernel_size": (3, 2), "stride": 2, "padding": (0, 1), "ceil_mode": True}),
    ("avgpool(x, 2)", "avg_pool2d", {"kernel_size": 2}),
    ("avgpool(x, 3, stride=2, pad=1)", "avg_pool2d",
     {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("avgpool(x, 3, stride=2, pad=1, count_pad=true)", "avg_pool2d",
     {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": True}),
    ("avgpool(x, 3, stride=2, pad=1, ceil=true, count_pad=true)", "avg_pool2d",
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": True}),
    ("avgpool(x, [2, 3], stride=[3, 2], pad=1, ceil=true)", "avg_pool2d",
     {"kernel_size": (2, 3), "stride": (3, 2), "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("avgpool(x, [2, 3], stride=[3, 2], pad=1, ceil=true, count_pad=true)", "avg_pool2d",
     {"kernel_size": (2, 3), "stride": (3, 2), "padding": 1, "ceil_mode": True, "count_include_pad": True}),
    ("l2pool(x, 2)", "lp_pool2d", {"norm_type": 2, "kernel_size": 2}),
    ("l2pool(x, 3, stride=2)", "lp_pool2d", {"norm_type": 2, "kernel_size": 3, "stride": 2}),
]


@pytest.mark.parametrize(("expr", "fn", "kw"), POOL2D, ids=[c[0] for c in POOL2D])
@pytest.mark.parametrize("size", [(8, 8), (9, 7), (5, 6)])
def test_pool2d_matches_torch(expr, fn, kw, size):
    compiled = compile_case(expr, f"f32[2, 3, {size[0]}, {size[1]}]")
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(sum(size)))
    check_against(compiled, {}, x.numpy(), getattr(F, fn)(x, **kw))


POOL1D = [
    ("maxpool(x, 3)", "max_pool1d", {"kernel_size": 3}),
    ("maxpool(x, 4, stride=2, pad=2, ceil=true)", "max_pool1d",
     {"kernel_size": 4, "stride": 2, "padding": 2, "ceil_mode": True}),
    ("avgpool(x, 3, stride=2, pad=1, count_pad=true)", "avg_pool1d",
     {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": True}),
    ("avgpool(x, 4, stride=3, pad=1, ceil=true)", "avg_pool1d",
     {"kernel_size": 4, "stride": 3, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("l2pool(x, 2, stride=1)", "lp_pool1d", {"norm_type": 2, "kernel_size": 2, "stride": 1}),
]


@pytest.mark.parametrize(("expr", "fn", "kw"), POOL1D, ids=[c[0] for c in POOL1D])
@pytest.mark.parametrize("length", [7, 10, 13])
def test_pool1d_matches_torch_on_symbolic_length(expr, fn, kw, length):
    compiled = compile_case(expr, "f32[N, 3, T]")
    x = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(length))
    check_against(compiled, {}, x.numpy(), getattr(F, fn)(x, **kw))


@pytest.mark.parametrize(("fname", "torch_fn"), [
    ("global_maxpool", lambda x: torch.amax(x, dim=(2, 3), keepdim=True)),
    ("global_avgpool", lambda x: F.adaptive_avg_pool2d(x, 1)),
    ("global_l2pool", lambda x: torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True)),
])
def test_global_pools_match_torch(fname, torch_fn):
    compiled = compile_case(f"{fname}(x)", "f32[N, 3, H, W]")
    assert str(compiled.graph.outputs["out"].type) == "f32[N, 3, 1, 1]"
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(5))
    check_against(compiled, {}, x.numpy(), torch_fn(x))


def test_l2pool_of_zeros_is_zero():
    compiled = compile_case("l2pool(x, 2, pad=1)", "f32[1, 2, 4, 4]")
    got, want = run_both(compiled, {}, np.zeros((1, 2, 4, 4), np.float32))
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got, np.zeros((1, 2, 3, 3), np.float32))
    np.testing.assert_array_equal(want, got)


def test_maxpool_padding_never_wins():
    compiled = compile_case("maxpool(x, 2, pad=1)", "f32[1, 1, 3, 3]")
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    got, want = run_both(compiled, {}, x)
    np.testing.assert_array_equal(got, [[[[-1, -2], [-4, -5]]]])
    np.testing.assert_array_equal(want, got)


# ------------------------------------------------------------------ the tutorial's worked example

def test_tutorial_worked_example():
    """A 6x6 binary image and a 3x3 filter: stride 1 gives a 4x4 feature map, 2x2 max pooling
    then 2x2; stride 2 gives 2x2 directly."""
    image = np.array([[1, 0, 0, 0, 0, 1],
                      [0, 1, 0, 0, 1, 0],
                      [0, 0, 1, 1, 0, 0],
                      [1, 0, 0, 0, 1, 0],
                      [0, 1, 0, 0, 1, 0],
                      [0, 0, 1, 0, 1, 0]], np.float32).reshape(1, 1, 6, 6)
    filt = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]], np.float32).reshape(1, 1, 3, 3)
    source = """network Tutorial {
  input x: f32[1, 1, 6, 6]
  output feature = x -> conv2d(1, kernel=3, bias=false, name="filter")
  output pooled = feature -> maxpool(2)
  output strided = x -> conv2d(1, kernel=3, stride=2, bias=false, name="strided")
}
"""
    compiled = netc.compile_source(source)
    check_onnx(compiled.model)
    assert {k: str(v.type) for k, v in compiled.graph.outputs.items()} == {
        "feature": "f32[1, 1, 4, 4]", "pooled": "f32[1, 1, 2, 2]", "strided": "f32[1, 1, 2, 2]"}
    params = {"filter.weight": filt, "strided.weight": filt}
    session = make_session(lower_graph(compiled.graph, params)).session
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": image})))
    want = run_graph(compiled.graph, params, {"x": image})
    feature = F.conv2d(torch.from_numpy(image), torch.from_numpy(filt))
    expected = {"feature": feature, "pooled": F.max_pool2d(feature, 2),
                "strided": F.conv2d(torch.from_numpy(image), torch.from_numpy(filt), stride=2)}
    np.testing.assert_array_equal(expected["feature"].numpy()[0, 0, 0], [3, -1, -3, -1])
    for name, value in expected.items():
        np.testing.assert_allclose(want[name], value.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(got[name], value.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


# ------------------------------------------------------------------ errors

def compile_error(body: str, x_type: str, cls: type) -> tuple[Exception, str]:
    """Compile a one-line network and return the error it raises and the offending line."""
    line = f"  output out = {body}"
    source = f"network Bad {{\n  input x: {x_type}\n{line}\n}}\n"
    with pytest.raises(cls) as info:
        netc.compile_source(source)
    return info.value, line


def assert_at(err, line: str, call: str) -> None:
    assert err.span is not None
    assert (err.span.line, err.span.col) == (3, line.index(call) + 1), err.span


def test_conv2d_on_a_flat_input_suggests_a_reshape():
    err, line = compile_error("x -> conv2d(25, kernel=3)", "f32[N, 784]", NetcShapeError)
    assert err.message == "conv2d expects a tensor [N, C, H, W] (rank 4); got f32[N, 784] (rank 2)"
    assert err.hints == ["reshape first: x -> reshape(N, 1, 28, 28) -> conv2d(...)"]
    assert_at(err, line, "conv2d")


def test_conv1d_rank_error():
    err, line = compile_error("conv1d(x, 4, kernel=3)", "f32[N, 100]", NetcShapeError)
    assert err.message == "conv1d expects a tensor [N, C, L] (rank 3); got f32[N, 100] (rank 2)"
    assert err.hints == ["reshape first: x -> reshape(N, 1, 100) -> conv1d(...)"]
    assert_at(err, line, "conv1d")


def test_conv2d_without_a_channel_axis():
    err, _ = compile_error("conv2d(x, 4, kernel=3)", "f32[N, 28, 28]", NetcShapeError)
    assert err.hints == ["reshape first: x -> reshape(N, 1, 28, 28) -> conv2d(...)"]


def test_kernel_larger_than_padded_input():
    err, line = compile_error("x -> conv2d(4, kernel=[3, 7], pad=1)", "f32[N, 3, 8, 4]", NetcShapeError)
    assert err.message == ("conv2d: the kernel extent 7 on axis W is larger than the padded input "
                           "(4 + 2 padding) of f32[N, 3, 8, 4]")
    assert_at(err, line, "conv2d")


def test_dilated_kernel_larger_than_input():
    err, _ = compile_error("conv1d(x, 4, kernel=3, dilation=4)", "f32[N, 3, 8]", NetcShapeError)
    assert "kernel extent 9 (kernel 3, dilation 4) on axis L" in err.message


def test_pool_window_larger_than_input():
    err, line = compile_error("maxpool(x, 5)", "f32[N, 3, 4, 8]", NetcShapeError)
    assert err.message.startswith("maxpool: the kernel extent 5 on axis H is larger than the padded input")
    assert_at(err, line, "maxpool")


def test_symbolic_channels_must_be_known():
    err, line = compile_error("conv2d(x, 4, kernel=3)", "f32[N, C, 8, 8]", NetcShapeError)
    assert err.message == ("conv2d: the input channels (axis 1) must be known at compile time; "
                           "got the symbolic dim C")
    assert err.hints == ["give it a value with `--set C=...`"]
    assert_at(err, line, "conv2d")


def test_groups_must_divide_channels_and_filters():
    err, _ = compile_error("conv2d(x, 4, kernel=3, groups=3)", "f32[N, 4, 8, 8]", NetcShapeError)
    assert err.message == "conv2d: groups=3 does not divide the 4 input channels of f32[N, 4, 8, 8]"
    err, _ = compile_error("conv2d(x, 5, kernel=3, groups=2)", "f32[N, 4, 8, 8]", NetcTypeError)
    assert err.message == "conv2d: groups=2 does not divide filters=5"


@pytest.mark.parametrize(("call", "message"), [
    ('conv2d(x, 4, kernel=3, pad="full")', 'conv2d: unknown padding "full"'),
    ('conv2d(x, 4, kernel=3, pad="causal")', 'conv2d: unknown padding "causal"'),
    ("conv2d(x, 4, kernel=3, pad=[1, 2, 3])", "conv2d: 'pad' needs 1, 2 or 4 values; got 3"),
    ("conv2d(x, 4, kernel=3, pad=-1)", "conv2d: padding must not be negative; got int -1"),
    ("conv2d(x, 4, kernel=3, pad=true)", (
        "conv2d: 'pad' expects \"valid\", \"same\", a non-negative integer, or a list of 2 or 4 of them; "
        "got bool true")),
    ("conv2d(x, 4, kernel=[3, 3, 3])", "conv2d: 'kernel' needs 1 or 2 values (one per spatial axis); "
                                       "got 3: [3, 3, 3]"),
    ("maxpool(x, 2, pad=2)", "maxpool: padding 2 on axis H must be smaller than the kernel (2)"),
    ('maxpool(x, 2, pad="causal")', 'maxpool: unknown padding "causal"'),
])
def test_argument_errors(call, message):
    err, line = compile_error(call, "f32[N, 4, 8, 8]", NetcTypeError)
    assert err.message == message
    assert_at(err, line, call.split("(")[0])


def test_causal_is_for_conv1d():
    err, _ = compile_error('conv2d(x, 4, kernel=3, pad="causal")', "f32[N, 4, 8, 8]", NetcTypeError)
    assert err.hints == ['pad="causal" is for conv1d only']


def test_pool_rank_error():
    err, line = compile_error("x -> avgpool(2)", "f32[N, 8]", NetcShapeError)
    assert err.message == ("avgpool expects a tensor [N, C, L] or [N, C, H, W] (rank 3 or 4); "
                           "got f32[N, 8] (rank 2)")
    assert_at(err, line, "avgpool")


def test_integer_input_is_a_type_error():
    err, _ = compile_error("conv1d(x, 4, kernel=3)", "i64[N, 3, 8]", NetcTypeError)
    assert err.message == "conv1d needs a floating-point input; got i64[N, 3, 8]"


def test_ceil_on_an_undecidable_symbolic_length():
    err, line = compile_error("maxpool(x, 2, stride=3, ceil=true)", "f32[N, 3, T]", NetcShapeError)
    assert err.message == ("maxpool: with ceil=true, the output length of the symbolic axis L (T) "
                           "depends on (T) mod 3")
    assert_at(err, line, "maxpool")


def test_symbolic_output_dims():
    cases = {
        "conv1d(x, 4, kernel=3)": "f32[N, 4, T - 2]",
        'conv1d(x, 4, kernel=3, pad="same")': "f32[N, 4, T]",
        'conv1d(x, 4, kernel=2, dilation=8, pad="causal")': "f32[N, 4, T]",
        "conv1d(x, 4, kernel=3, stride=2)": "f32[N, 4, (T - 1)//2]",
        'conv1d(x, 4, kernel=3, stride=2, pad="same")': "f32[N, 4, (T + 1)//2]",
        "maxpool(x, 2)": "f32[N, 3, T//2]",
        "maxpool(x, 3, stride=1, pad=1)": "f32[N, 3, T]",
        "avgpool(x, 3, stride=2, ceil=true)": "f32[N, 3, T//2]",
    }
    for expr, expected in cases.items():
        compiled = compile_case(expr, "f32[N, 3, T]")
        assert str(compiled.graph.outputs["out"].type) == expected, expr
