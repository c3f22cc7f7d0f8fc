"""netc's rnn/lstm/gru against PyTorch's nn.RNN/nn.LSTM/nn.GRU: the PyTorch weights are
imported under netc's names (gate order converted) and both lowerings and the NumPy
reference must reproduce PyTorch's outputs and final states."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.ops.recurrent import export_torch_weights, import_torch_weights
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from tests.conftest import check_onnx

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5
T, N, D, H = 6, 3, 5, 4

# name: (torch constructor kwargs, netc cell call)
CELLS = {
    "rnn-tanh": ("RNN", {"nonlinearity": "tanh"}, "rnn", "rnn(x, {H}{opts})"),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}, "rnn", "rnn(x, {H}, act=relu{opts})"),
    "lstm": ("LSTM", {}, "lstm", "lstm(x, {H}{opts})"),
    "gru": ("GRU", {}, "gru", 'gru(x, {H}, reset="after"{opts})'),
}
CONFIGS = {"stacked": (2, False), "bidirectional": (1, True), "stacked-bidirectional": (2, True)}


def _torch_module(name: str, layers: int, bidirectional: bool, seed: int):
    cls, kwargs, _, _ = CELLS[name]
    torch.manual_seed(seed)
    return getattr(torch.nn, cls)(D, H, num_layers=layers, bidirectional=bidirectional, **kwargs).eval()


def _netc_source(name: str, layers: int, bidirectional: bool, lowering: str, lengths: bool, init: bool) -> str:
    _, _, cell, call = CELLS[name]
    is_lstm = cell == "lstm"
    opts = f", layers={layers}, bidirectional={str(bidirectional).lower()}, lowering=\"{lowering}\", return_state=true"
    opts += ", lengths=lens" if lengths else ""
    opts += (", init=(h0, c0)" if is_lstm else ", init=h0") if init else ""
    states = layers * (2 if bidirectional else 1)
    lines = ["network Torch {", f"  input x: f32[T, N, {D}]"]
    lines += ["  input lens: i32[N]"] if lengths else []
    lines += [f"  input h0: f32[{states}, N, {H}]"] if init else []
    lines += [f"  input c0: f32[{states}, N, {H}]"] if init and is_lstm else []
    lines += [f"  {'y, (h, c)' if is_lstm else 'y, h'} = {call.format(H=H, opts=opts)}",
              "  output out = y", "  output hn = h"] + (["  output cn = c"] if is_lstm else []) + ["}"]
    return "\n".join(lines) + "\n"


def _compare(name, module, compiled, feeds, want):
    cell = CELLS[name][2]
    renamed = {k: v.astype(np.float32) for k, v in import_torch_weights(module, cell, f"{cell}0").items()}
    model = lower_graph(compiled.graph, renamed)
    check_onnx(model)
    session = make_session(model).session
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    ref = run_graph(compiled.graph, renamed, feeds)
    for key, expected in want.items():
        np.testing.assert_allclose(got[key], expected, rtol=RTOL, atol=ATOL, err_msg=f"onnxruntime {key}")
        np.testing.assert_allclose(ref[key], expected, rtol=RTOL, atol=ATOL, err_msg=f"reference {key}")


def _torch_run(module, x, lengths=None, h0=None, c0=None):
    hx = None if h0 is None else ((torch.from_numpy(h0), torch.from_numpy(c0)) if c0 is not None
                                  else torch.from_numpy(h0))
    with torch.no_grad():
        inp = torch.from_numpy(x)
        if lengths is not None:
            inp = torch.nn.utils.rnn.pack_padded_sequence(inp, torch.from_numpy(lengths.astype(np.int64)),
                                                          enforce_sorted=False)
        y, state = module(inp, hx)
        if lengths is not None:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=x.shape[0])
    out = {"out": y.numpy()}
    if isinstance(state, tuple):
        out["hn"], out["cn"] = state[0].numpy(), state[1].numpy()
    else:
        out["hn"] = state.numpy()
    return out


@pytest.mark.parametrize("lowering", ["native", "scan"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_torch(name, config, lowering):
    layers, bidirectional = CONFIGS[config]
    module = _torch_module(name, layers, bidirectional, seed=len(name) + layers)
    compiled = netc.compile_source(_netc_source(name, layers, bidirectional, lowering, False, True))
    rng = np.random.default_rng(0)
    states = layers * (2 if bidirectional else 1)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    h0 = rng.standard_normal((states, N, H)).astype(np.float32)
    c0 = rng.standard_normal((states, N, H)).astype(np.float32) if CELLS[name][2] == "lstm" else None
    feeds = {"x": x, "h0": h0} | ({"c0": c0} if c0 is not None else {})
    _compare(name, module, compiled, feeds, _torch_run(module, x, h0=h0, c0=c0))


@pytest.mark.parametrize("lowering", ["native", "scan"])
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_torch_packed_sequences(name, lowering):
    """Variable lengths: PyTorch's pack_padded_sequence against netc's `lengths`."""
    module = _torch_module(name, 2, True, seed=11)
    compiled = netc.compile_source(_netc_source(name, 2, True, lowering, True, False))
    rng = np.random.default_rng(1)
    lengths = np.array([3, T, 1], np.int32)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0  # padding, as a padded batch has it
    _compare(name, module, compiled, {"x": x, "lens": lengths}, _torch_run(module, x, lengths))


@pytest.mark.parametrize("name", list(CELLS))
def test_exported_weights_load_into_torch(name):
    cls, kwargs, cell, call = CELLS[name]
    text = (f"network E {{\n  input x: f32[T, N, {D}]\n"
            f"  output y = {call.format(H=H, opts=', layers=2, bidirectional=true')}\n}}\n")
    compiled = netc.compile_source(text, seed=4)
    state = export_torch_weights(compiled.params, cell, f"{cell}0")
    module = getattr(torch.nn, cls)(D, H, num_layers=2, bidirectional=True, **kwargs).eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = np.random.default_rng(2).standard_normal((T, N, D)).astype(np.float32)
    got = make_session(compiled.model).session.run(None, {"x": x})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
