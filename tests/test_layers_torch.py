"""Transposed convolution, resizing, grid sampling, local response normalisation and the
IRNN against PyTorch as an independent oracle: the same weights and inputs in both, the
onnxruntime output and the NumPy reference each compared with torch's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import netc  # noqa: E402
from netc.compiler.lowering import lower_graph  # noqa: E402
from netc.compiler.ops.recurrent import export_torch_weights  # noqa: E402
from netc.runtime.reference import run_graph  # noqa: E402
from netc.runtime.session import make_session  # noqa: E402
from tests.conftest import check_onnx, network_source  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


def compile_case(expr: str, inputs: dict[str, str]) -> netc.Compiled:
    compiled = netc.compile_source(network_source(expr, inputs, "f32"), seed=1)
    check_onnx(compiled.model)
    return compiled


def torch_params(compiled: netc.Compiled, seed: int) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn(p.shape, generator=gen).numpy() for p in compiled.graph.params}


def check(compiled: netc.Compiled, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray], expected) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    session = make_session(lower_graph(compiled.graph, params)).session
    got = session.run(None, inputs)[0]
    want = run_graph(compiled.graph, params, inputs)["out"]
    assert got.shape == expected.shape, f"onnxruntime {got.shape} vs torch {tuple(expected.shape)}"
    np.testing.assert_allclose(want, expected, rtol=RTOL, atol=ATOL, err_msg="reference vs torch")
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg="onnxruntime vs torch")


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ transposed convolution

CONV_T1D = [
    # netc call, torch F.conv_transpose1d keywords, (begin, end) cropped from torch's padding-0 output
    ("conv_transpose1d(x, 4, kernel=3)", {}, None),
    ("conv_transpose1d(x, 4, kernel=4, stride=2, pad=1)", {"stride": 2, "padding": 1}, None),
    ("conv_transpose1d(x, 4, kernel=3, stride=3, pad=1, output_pad=2)",
     {"stride": 3, "padding": 1, "output_padding": 2}, None),
    ("conv_transpose1d(x, 6, kernel=3, dilation=3, pad=2, output_pad=1, stride=2, groups=3)",
     {"dilation": 3, "padding": 2, "output_padding": 1, "stride": 2, "groups": 3}, None),
    ("conv_transpose1d(x, 4, kernel=5, stride=2, pad=[3, 1])", {"stride": 2}, (3, 1)),
    ('conv_transpose1d(x, 4, kernel=5, stride=2, pad="same")', {"stride": 2}, (1, 2)),
]


@pytest.mark.parametrize(("expr", "kw", "crop"), CONV_T1D, ids=[c[0] for c in CONV_T1D])
def test_conv_transpose1d_matches_torch(expr, kw, crop):
    compiled = compile_case(expr, {"x": "{f}[2, 6, 7]"})
    for seed in (0, 1):
        params = torch_params(compiled, seed)
        x = randn(2, 6, 7, seed=seed)
        (w,) = [v for k, v in params.items() if k.endswith("weight")]
        b = next(v for k, v in params.items() if k.endswith("bias"))
        y = F.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw)
        if crop:
            y = y[..., crop[0]:y.shape[-1] - crop[1]]
        if "pad=\"same\"" in expr:
            assert y.shape[-1] == 2 * 7
        check(compiled, params, {"x": x}, y)


CONV_T2D = [
    ("conv_transpose2d(x, 4, kernel=3)", {}),
    ("conv_transpose2d(x, 3, kernel=4, stride=2, pad=1)", {"stride": 2, "padding": 1}),
    ("conv_transpose2d(x, 4, kernel=[3, 2], stride=[2, 3], pad=[1, 0], output_pad=[1, 2])",
     {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2)}),
    ("conv_transpose2d(x, 6, kernel=3, dilation=2, stride=2, pad=1, output_pad=1, groups=2)",
     {"dilation": 2, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
    ("conv_transpose2d(x, 4, kernel=4, groups=4, stride=2)", {"groups": 4, "stride": 2}),
]


@pytest.mark.parametrize(("expr", "kw"), CONV_T2D, ids=[c[0] for c in CONV_T2D])
def test_conv_transpose2d_matches_torch(expr, kw):
    compiled = compile_case(expr, {"x": "{f}[2, 4, 5, 6]"})
    for seed in (0, 1):
        params = torch_params(compiled, seed)
        x = randn(2, 4, 5, 6, seed=seed)
        w = next(v for k, v in params.items() if k.endswith("weight"))
        b = next(v for k, v in params.items() if k.endswith("bias"))
        y = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw)
        check(compiled, params, {"x": x}, y)


def test_conv_transpose2d_module_weights_load_unchanged():
    """nn.ConvTranspose2d's state_dict is netc's layout: weight [C_in, C_out/groups, kh, kw]."""
    torch.manual_seed(0)
    module = torch.nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2)
    compiled = compile_case('conv_transpose2d(x, 6, kernel=3, stride=2, pad=1, output_pad=1, groups=2, '
                            'name="up")', {"x": "{f}[N, 4, H, W]"})
    params = {"up.weight": module.weight.detach().numpy(), "up.bias": module.bias.detach().numpy()}
    x = randn(3, 4, 5, 4)
    check(compiled, params, {"x": x}, module(torch.from_numpy(x)))


# ------------------------------------------------------------------ local response normalisation

@pytest.mark.parametrize(("expr", "size", "alpha", "beta", "k", "shape"), [
    ("lrn(x, 5, alpha=0.0001, beta=0.75, bias=2.0)", 5, 1e-4, 0.75, 2.0, (2, 8, 5, 5)),
    ("lrn(x * 10, 3, alpha=0.5, beta=0.5, bias=1.5)", 3, 0.5, 0.5, 1.5, (2, 4, 3, 6)),
    ("lrn(x, 7, alpha=1.0, beta=1.0)", 7, 1.0, 1.0, 1.0, (1, 5, 3, 3)),
    ("lrn(x * 3, 3, alpha=0.3)", 3, 0.3, 0.75, 1.0, (2, 6, 9)),
])
def test_lrn_matches_torch(expr, size, alpha, beta, k, shape):
    compiled = compile_case(expr, {"x": "{f}[" + ", ".join(map(str, shape)) + "]"})
    module = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    scale = 10.0 if "x * 10" in expr else 3.0 if "x * 3" in expr else 1.0
    for seed in (0, 1):
        x = randn(*shape, seed=seed)
        check(compiled, {}, {"x": x}, module(torch.from_numpy(x * np.float32(scale))))


# ------------------------------------------------------------------ resizing

INTERPOLATE = [
    # netc call, F.interpolate keywords
    ("resize(x, size=[7, 9])", {"size": (7, 9), "mode": "nearest"}),
    ("resize(x, size=[3, 2])", {"size": (3, 2), "mode": "nearest"}),
    ("upsample(x, 2)", {"scale_factor": 2, "mode": "nearest"}),
    ("upsample(x, [1.5, 3])", {"scale_factor": (1.5, 3), "mode": "nearest"}),
    ('resize(x, size=[7, 9], mode="linear")', {"size": (7, 9), "mode": "bilinear", "align_corners": False}),
    ('resize(x, size=[3, 2], mode="linear")', {"size": (3, 2), "mode": "bilinear", "align_corners": False}),
    ('resize(x, size=[7, 9], mode="linear", align_corners=true)',
     {"size": (7, 9), "mode": "bilinear", "align_corners": True}),
    ('resize(x, size=[1, 3], mode="linear", align_corners=true)',
     {"size": (1, 3), "mode": "bilinear", "align_corners": True}),
    ('upsample(x, 2, mode="linear")', {"scale_factor": 2, "mode": "bilinear", "align_corners": False}),
    ('resize(x, scale=[0.5, 1.5], mode="linear")', {"scale_factor": (0.5, 1.5), "mode": "bilinear",
                                                     "align_corners": False}),
    ('upsample(x, 3, mode="linear", align_corners=true)', {"scale_factor": 3, "mode": "bilinear",
                                                          "align_corners": True}),
]


@pytest.mark.parametrize(("expr", "kw"), INTERPOLATE, ids=[c[0] for c in INTERPOLATE])
def test_resize_matches_interpolate(expr, kw):
    compiled = compile_case(expr, {"x": "{f}[N, 3, H, W]" if "upsample(x, 2" in expr else "{f}[2, 3, 5, 4]"})
    for seed in (0, 1):
        x = randn(2, 3, 5, 4, seed=seed)
        check(compiled, {}, {"x": x}, F.interpolate(torch.from_numpy(x), **kw))


@pytest.mark.parametrize("align", [False, True])
def test_resize_1d_linear_matches_interpolate(align):
    flag = "true" if align else "false"
    compiled = compile_case(f'resize(x, size=11, mode="linear", align_corners={flag})', {"x": "{f}[2, 3, T]"})
    x = randn(2, 3, 6)
    check(compiled, {}, {"x": x}, F.interpolate(torch.from_numpy(x), size=11, mode="linear", align_corners=align))


# ------------------------------------------------------------------ affine grid and grid sampling

SAMPLING = [(mode, padding, align) for mode in ("bilinear", "nearest") for padding in ("zeros", "border", "reflection")
            for align in (False, True)]


@pytest.mark.parametrize(("mode", "padding", "align"), SAMPLING, ids=[f"{m}-{p}-{a}" for m, p, a in SAMPLING])
def test_grid_sample_matches_torch(mode, padding, align):
    flag = "true" if align else "false"
    compiled = compile_case(f'grid_sample(x, g, mode="{mode}", padding_mode="{padding}", align_corners={flag})',
                            {"x": "{f}[N, 3, H, W]", "g": "{f}[N, 4, 5, 2]"})
    for seed in (0, 1, 2):
        x = randn(2, 3, 5, 6, seed=seed)
        # Points inside and well outside the image, so every padding rule is exercised.
        g = (np.random.default_rng(seed + 10).uniform(-2.2, 2.2, (2, 4, 5, 2))).astype(np.float32)
        y = F.grid_sample(torch.from_numpy(x), torch.from_numpy(g), mode=mode, padding_mode=padding,
                          align_corners=align)
        check(compiled, {}, {"x": x, "g": g}, y)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_grid_and_sampler_match_torch(align, mode):
    flag = "true" if align else "false"
    compiled = compile_case(f'grid_sample(x, affine_grid(t, size=[5, 7], align_corners={flag}), mode="{mode}", '
                            f'align_corners={flag})', {"x": "{f}[N, 2, 6, 6]", "t": "{f}[N, 2, 3]"})
    for seed in (0, 1):
        x = randn(3, 2, 6, 6, seed=seed)
        t = (np.array([[1, 0, 0], [0, 1, 0]], np.float32) + 0.3 * randn(3, 2, 3, seed=seed + 5)).astype(np.float32)
        grid = F.affine_grid(torch.from_numpy(t), [3, 2, 5, 7], align_corners=align)
        y = F.grid_sample(torch.from_numpy(x), grid, mode=mode, align_corners=align)
        check(compiled, {}, {"x": x, "t": t}, y)


def test_affine_grid_matches_torch():
    compiled = compile_case("affine_grid(t, size=[4, 3])", {"t": "{f}[N, 6]"})
    t = randn(2, 6)
    check(compiled, {}, {"t": t}, F.affine_grid(torch.from_numpy(t).reshape(2, 2, 3), [2, 1, 4, 3],
                                                align_corners=False))


# ------------------------------------------------------------------ IRNN

def test_irnn_matches_torch_rnn_with_identity_recurrent_weights():
    """netc's initial IRNN (R = I, relu) run by nn.RNN with the same weights, and torch's own
    identity initialisation (nn.init.eye_) giving the same recurrent matrix."""
    hidden = 6
    compiled = compile_case('rnn(x, 6, act=relu, recurrent_init=identity, weight_init=normal(std=0.5), '
                            'name="irnn")', {"x": "{f}[T, N, 4]"})
    params = dict(compiled.params)
    module = torch.nn.RNN(4, hidden, nonlinearity="relu")
    eye = torch.empty(hidden, hidden)
    torch.nn.init.eye_(eye)
    np.testing.assert_array_equal(params["irnn.l0.fwd.R"], eye.numpy())
    state = {k: torch.from_numpy(v) for k, v in export_torch_weights(params, "rnn", "irnn").items()}
    module.load_state_dict(state)
    for seed in (0, 1):
        x = randn(9, 3, 4, seed=seed)
        with torch.no_grad():
            y, _ = module(torch.from_numpy(x))
        check(compiled, params, {"x": x}, y)
