"""netc's attention against PyTorch: nn.MultiheadAttention (weights loaded by name, 1:1),
F.scaled_dot_product_attention, nn.TransformerEncoderLayer / nn.TransformerDecoderLayer
(both norm placements) and a 2-layer nn.TransformerEncoder through the standard library
(`import "std/transformer.net"`, names paired by netc.compiler.torch_import, as `netc weights import` does). onnxruntime and
the NumPy reference must both reproduce PyTorch's outputs in float32."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.torch_import import import_state_dict
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from tests.conftest import check_onnx

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5
E, H = 8, 2


def _state(module, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().numpy().astype(np.float32) for k, v in module.state_dict().items()}


def _run(source: str, params: dict[str, np.ndarray], feeds: dict[str, np.ndarray], lowering_opsets=(21,)):
    """Outputs of onnxruntime (per opset) and of the reference, for `params`."""
    compiled = netc.compile_source(source)
    results = []
    for opset in lowering_opsets:
        model = lower_graph(compiled.graph, params, opset)
        check_onnx(model)
        session = make_session(model).session
        results.append(dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds))))
    results.append(run_graph(compiled.graph, params, feeds))
    return compiled, results


def _close(results, want: dict[str, np.ndarray]) -> None:
    for got in results:
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


def _np(t) -> np.ndarray:
    return t.detach().numpy()


# name: (constructor kwargs, (L, S), call options, feeds maker)
MHA_CASES = {
    "self": ({}, False, "", None),
    "cross": ({}, True, "", None),
    "key_padding_mask": ({}, True, "key_padding_mask=pad", "pad"),
    "causal_attn_mask": ({}, False, "causal=true", "causal"),
    "batch_first": ({"batch_first": True}, True, "key_padding_mask=pad, batch_first=true", "pad"),
    "kdim_vdim": ({"kdim": 3, "vdim": 5}, True, "", None),
    "kdim_vdim_batch_first": ({"kdim": 3, "vdim": 5, "batch_first": True}, True, "batch_first=true", None),
    "no_bias": ({"bias": False}, True, "bias=false", None),
}


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_multihead_attention(case):
    kwargs, cross, options, mask = MHA_CASES[case]
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(E, H, **kwargs).eval()
    with torch.no_grad():  # non-zero biases so that their layout is tested too
        for name, p in module.named_parameters():
            if "bias" in name:
                p.normal_()
    bf = kwargs.get("batch_first", False)
    N, Lq = 3, 4
    S = 6 if cross else Lq
    kdim, vdim = kwargs.get("kdim", E), kwargs.get("vdim", E)
    rng = np.random.default_rng(1)

    def seq(length, width):
        shape = (N, length, width) if bf else (length, N, width)
        return rng.standard_normal(shape).astype(np.float32)

    q = seq(Lq, E)
    k, v = (seq(S, kdim), seq(S, vdim)) if cross else (q, q)
    feeds = {"q": q}
    lay = (lambda n, w: f"f32[N, {n}, {w}]") if bf else (lambda n, w: f"f32[{n}, N, {w}]")
    inputs = [f"  input q: {lay('L', E)}"]
    args = "q"
    if cross:
        feeds.update(k=k, v=v)
        inputs += [f"  input k: {lay('S', kdim)}", f"  input v: {lay('S', vdim)}"]
        args = "q, k, v"
    torch_kwargs = {}
    if mask == "pad":
        pad = np.zeros((N, S), bool)
        pad[0, -2:] = True
        pad[2, -1] = True
        feeds["pad"] = pad
        inputs.append("  input pad: bool[N, S]" if cross else "  input pad: bool[N, L]")
        torch_kwargs["key_padding_mask"] = torch.from_numpy(pad)
    if mask == "causal":
        torch_kwargs["attn_mask"] = torch.nn.Transformer.generate_square_subsequent_mask(Lq)
    src = "\n".join(["network M {", *inputs,
                     f"  y, w = multihead_attention({args}, heads={H}{', ' + options if options else ''}, "
                     "return_weights=true, name=\"mha\")", "  output out = y", "  output weights = w", "}"])
    with torch.inference_mode():
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
        want_y, want_w = module(tq, tk, tv, need_weights=True, **torch_kwargs)
    _, results = _run(src, _state(module, "mha."), feeds)
    _close(results, {"out": _np(want_y), "weights": _np(want_w)})


def test_multihead_attention_per_head_weights_and_lengths():
    """average_weights=false is need_weights with average_attn_weights=False; lengths= is the
    key_padding_mask of the padded positions."""
    torch.manual_seed(3)
    module = torch.nn.MultiheadAttention(E, H).eval()
    N, Lq, S = 2, 3, 5
    rng = np.random.default_rng(4)
    q = rng.standard_normal((Lq, N, E)).astype(np.float32)
    m = rng.standard_normal((S, N, E)).astype(np.float32)
    lens = np.array([5, 2], np.int32)
    pad = np.arange(S)[None, :] >= lens[:, None]
    with torch.inference_mode():
        y, w = module(torch.from_numpy(q), torch.from_numpy(m), torch.from_numpy(m),
                      key_padding_mask=torch.from_numpy(pad), average_attn_weights=False)
    src = f"""network M {{
  input q: f32[L, N, {E}]
  input m: f32[S, N, {E}]
  input lens: i32[N]
  y, w = multihead_attention(q, m, heads={H}, lengths=lens, return_weights=true, average_weights=false, name="mha")
  output out = y
  output weights = w
}}"""
    _, results = _run(src, _state(module, "mha."), {"q": q, "m": m, "lens": lens})
    _close(results, {"out": _np(y), "weights": _np(w)})


def test_scaled_dot_product_attention():
    """F.scaled_dot_product_attention over [N, L, E] is `attention(score="scaled_dot")` on the
    time-major transposes; its bool mask (true = attend) is netc's `mask`."""
    import torch.nn.functional as F

    rng = np.random.default_rng(5)
    N, Lq, S, Dk, Dv = 3, 4, 6, 5, 7
    q = rng.standard_normal((N, Lq, Dk)).astype(np.float32)
    k = rng.standard_normal((N, S, Dk)).astype(np.float32)
    v = rng.standard_normal((N, S, Dv)).astype(np.float32)
    allow = rng.random((Lq, S)) > 0.3
    allow[:, 0] = True  # every query sees a key (PyTorch gives NaN otherwise)
    with torch.inference_mode():
        plain = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)))
        masked = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)),
                                                attn_mask=torch.from_numpy(allow))
    src = f"""network M {{
  input q: f32[L, N, {Dk}]
  input k: f32[S, N, {Dk}]
  input v: f32[S, N, {Dv}]
  input allow: bool[L, 1, S]
  output plain = attention(q, k, v, score="scaled_dot")
  output masked = attention(q, k, v, score="scaled_dot", mask=allow)
}}"""
    feeds = {"q": q.transpose(1, 0, 2).copy(), "k": k.transpose(1, 0, 2).copy(), "v": v.transpose(1, 0, 2).copy(),
             "allow": allow[:, None, :].copy()}
    _, results = _run(src, {}, feeds)
    _close(results, {"plain": _np(plain).transpose(1, 0, 2), "masked": _np(masked).transpose(1, 0, 2)})


def test_scaled_dot_product_attention_causal_via_mha_core():
    """SDPA with is_causal=True equals a causal single-head attention: the `window`-free
    causal form is multihead_attention's; here through `attention` with a lower-triangular mask."""
    import torch.nn.functional as F

    rng = np.random.default_rng(6)
    N, T, Dk = 2, 5, 4
    q, k, v = (rng.standard_normal((N, T, Dk)).astype(np.float32) for _ in range(3))
    with torch.inference_mode():
        want = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)), is_causal=True)
    tril = np.tril(np.ones((T, T), bool))[:, None, :]
    src = f"""network M {{
  input q: f32[T, N, {Dk}]
  input k: f32[T, N, {Dk}]
  input v: f32[T, N, {Dk}]
  input tril: bool[T, 1, T]
  output y = attention(q, k, v, score="scaled_dot", mask=tril)
}}"""
    feeds = {"q": q.transpose(1, 0, 2).copy(), "k": k.transpose(1, 0, 2).copy(),
             "v": v.transpose(1, 0, 2).copy(), "tril": tril}
    _, results = _run(src, {}, feeds)
    _close(results, {"y": _np(want).transpose(1, 0, 2)})


FF = 16


def _import(graph, state):
    """netc's values for every parameter of `graph` from a PyTorch state dict, paired by
    structure (`netc weights import`): nothing may be left on either side."""
    result = import_state_dict(state, graph)
    assert not result.unfilled and not result.unmatched_torch, result.report()
    return result.weights


def _randomise_norms(module) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or "bias" in name:
                p.normal_(std=0.5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer(norm_first):
    torch.manual_seed(7)
    layer = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.1, norm_first=norm_first).eval()
    _randomise_norms(layer)
    N, T = 3, 5
    x = np.random.default_rng(8).standard_normal((T, N, E)).astype(np.float32)
    pad = np.zeros((N, T), bool)
    pad[1, -2:] = True
    with torch.inference_mode():
        want = layer(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad))
    src = f"""import "std/transformer.net"
network Enc {{
  input x: f32[T, N, {E}]
  input pad: bool[N, T]
  output y = encoder_layer(x, {H}, {FF}, norm_first={str(norm_first).lower()}, key_padding_mask=pad, name="layer")
}}"""
    compiled = netc.compile_source(src)
    params = _import(compiled.graph, _state(layer))
    _, results = _run(src, params, {"x": x, "pad": pad})
    # padded positions of PyTorch's fast path are not defined to match: compare real ones
    y = _np(want)
    for got in results:
        np.testing.assert_allclose(got["y"][:, 0], y[:, 0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got["y"][:3, 1], y[:3, 1], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got["y"][:, 2], y[:, 2], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_decoder_layer(norm_first):
    torch.manual_seed(9)
    layer = torch.nn.TransformerDecoderLayer(E, H, FF, dropout=0.1, norm_first=norm_first).eval()
    _randomise_norms(layer)
    N, T, S = 2, 4, 6
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, N, E)).astype(np.float32)
    mem = rng.standard_normal((S, N, E)).astype(np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(T)
    with torch.inference_mode():
        want = layer(torch.from_numpy(x), torch.from_numpy(mem), tgt_mask=causal, tgt_is_causal=True)
    src = f"""import "std/transformer.net"
network Dec {{
  input x: f32[T, N, {E}]
  input mem: f32[S, N, {E}]
  output y = decoder_layer(x, mem, {H}, {FF}, norm_first={str(norm_first).lower()}, name="layer")
}}"""
    compiled = netc.compile_source(src)
    params = _import(compiled.graph, _state(layer))
    _, results = _run(src, params, {"x": x, "mem": mem})
    _close(results, {"y": _np(want)})


def test_transformer_encoder_two_layers():
    torch.manual_seed(11)
    layer = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation="gelu")
    stack = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    _randomise_norms(stack)
    x = np.random.default_rng(12).standard_normal((5, 3, E)).astype(np.float32)
    with torch.inference_mode():
        want = stack(torch.from_numpy(x))
    src = f"""import "std/transformer.net"
network Enc {{
  input x: f32[T, N, {E}]
  output y = encoder(x, 2, {H}, {FF}, act=gelu, name="enc")
}}"""
    compiled = netc.compile_source(src)
    params = _import(compiled.graph, _state(stack))
    _, results = _run(src, params, {"x": x})
    _close(results, {"y": _np(want)})


def test_transformer_encoder_example_parameter_count():
    """examples/transformer_encoder.net at its defaults: the encoder layers hold exactly
    nn.TransformerEncoder's parameters, the embedding nn.Embedding's (stated in the example)."""
    from tests.conftest import EXAMPLES

    (graph,) = netc.check_file(EXAMPLES / "transformer_encoder.net")
    layer = torch.nn.TransformerEncoderLayer(512, 8, 2048)
    stack = torch.nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False)
    encoder = sum(p.size for p in graph.params if p.name.startswith("encoder0."))
    assert encoder == sum(p.numel() for p in stack.parameters()) == 18_914_304
    assert sum(p.size for p in graph.params) == encoder + 32000 * 512 == 35_298_304
    # and every encoder parameter has its PyTorch counterpart, by name and shape
    compiled_names = {p.name: p.shape for p in graph.params if p.name.startswith("encoder0.")}
    result = import_state_dict({k: v.numpy() for k, v in stack.state_dict().items()}, graph)
    assert not result.unmatched_torch, result.report()
    assert result.unfilled == ["embed0"], result.report()  # the embedding is not in the stack
    assert {k: v.shape for k, v in result.weights.items()} == compiled_names


def test_multihead_attention_state_dict_loads_with_weights_file(tmp_path):
    """nn.MultiheadAttention's state dict, saved under the layer's name, is a netc weight file
    as it is (`--weights`): no renaming, no transposing."""
    torch.manual_seed(13)
    module = torch.nn.MultiheadAttention(E, H, kdim=3, vdim=5).eval()
    path = tmp_path / "mha.npz"
    np.savez(path, **_state(module, "self_attn."))
    src = f"""network M {{
  input q: f32[L, N, {E}]
  input k: f32[S, N, 3]
  input v: f32[S, N, 5]
  output y = multihead_attention(q, k, v, heads={H}, name="self_attn")
}}"""
    compiled = netc.compile_source(src, weights=path)
    rng = np.random.default_rng(14)
    feeds = {"q": rng.standard_normal((4, 2, E)).astype(np.float32),
             "k": rng.standard_normal((6, 2, 3)).astype(np.float32),
             "v": rng.standard_normal((6, 2, 5)).astype(np.float32)}
    with torch.inference_mode():
        want, _ = module(*(torch.from_numpy(feeds[n]) for n in "qkv"))
    got = make_session(compiled.model).session.run(None, feeds)[0]
    np.testing.assert_allclose(got, _np(want), rtol=RTOL, atol=ATOL)
