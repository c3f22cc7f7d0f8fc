"""GRU (both reset forms, both update conventions), LSTM with one `dense` per gate, coupled
LSTM and Elman steps written as `recur` steps are recognised (compiler/passes/recognise_cells.py)
and lower as the built-in cell does, while the reference still runs the user's step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import netc
from netc.compiler.lowering import lower_graph
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session

ROOT = Path(__file__).resolve().parents[1]

GRU_BEFORE = """
block cell(h, x, hidden: int) {
  z = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false))
  r = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false))
  hc = tanh(dense(x, hidden) + dense(r * h, hidden))
  h2 = (1 - z) * h + z * hc
  return h2, h2
}
"""
# PyTorch's form and update convention (z keeps the old state), one dense per gate.
GRU_AFTER = """
block cell(h, x, hidden: int) {
  z = sigmoid(dense(x, hidden) + dense(h, hidden))
  r = sigmoid(dense(x, hidden) + dense(h, hidden))
  n = tanh(dense(x, hidden) + r * dense(h, hidden))
  h2 = z * h + (1 - z) * n
  return h2, h2
}
"""
# nn.GRU's own layout: one projection of x and one of h, each split in (r, z, n).
GRU_TORCH_SPLIT = """
block cell(h, x, hidden: int) {
  xr, xz, xn = split(dense(x, 3 * hidden), 3)
  hr, hz, hn = split(dense(h, 3 * hidden), 3)
  r = sigmoid(xr + hr)
  z = sigmoid(xz + hz)
  n = tanh(xn + r * hn)
  h2 = (1 - z) * n + z * h
  return h2, h2
}
"""
# Reset before with split projections: x in three, h in two (z, r), and U_h (r * h).
GRU_BEFORE_SPLIT = """
block cell(h, x, hidden: int) {
  xz, xr, xh = split(dense(x, 3 * hidden), 3)
  hz, hr = split(dense(h, 2 * hidden, bias=false), 2)
  z = sigmoid(hz + xz)
  r = sigmoid(xr + hr)
  h2 = z * tanh(dense(h * r, hidden) + xh) + h * (1 - z)
  return h2, h2
}
"""
LSTM_PER_GATE = """
block cell(state, x, hidden: int) {
  h, c = state
  i = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  f = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  c2 = f * c + i * tanh(dense(x, hidden) + dense(h, hidden, bias=false))
  o = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
# Coupled, written with i = 1 - f (netc's coupled LSTM has f = 1 - i: its i is sigmoid(-a_f)).
LSTM_COUPLED = """
block cell(state, x, hidden: int) {
  h, c = state
  f = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  i = 1 - f
  c2 = f * c + i * tanh(dense(x, hidden) + dense(h, hidden, bias=false))
  o = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
LSTM_COUPLED_SPLIT = """
block cell(state, x, hidden: int) {
  h, c = state
  o, g, i = split(dense(x, 3 * hidden) + dense(h, 3 * hidden), 3)
  i = sigmoid(i)
  c2 = (1 - i) * c + tanh(g) * i
  h2 = sigmoid(o) * tanh(c2)
  return (h2, c2), h2
}
"""
ELMAN = """
block cell(h, x, hidden: int) {
  h2 = ACT(dense(x, hidden) + dense(h, hidden, bias=false))
  return h2, h2
}
"""


def network(step: str, hidden: int = 16, lstm: bool = False) -> str:
    state = "(h0, c0)" if lstm else "h0"
    c0 = f"  input c0: f32[N, {hidden}]\n" if lstm else ""
    outs = "  output ys = ys\n  output hT = hT\n" + ("  output cT = cT\n" if lstm else "")
    return (f"{step}\nnetwork A {{\n  input x: f32[T, N, 8]\n  input h0: f32[N, {hidden}]\n{c0}"
            f"  ys, {'(hT, cT)' if lstm else 'hT'} = recur(cell, x, init={state}, hidden={hidden}, return_state=true)\n"
            f"{outs}}}\n")


def _op_types(graph: onnx.GraphProto) -> set[str]:
    types = set()
    for node in graph.node:
        types.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                types |= _op_types(attr.g)
    return types


def _feeds(steps: int, hidden: int, lstm: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.standard_normal((steps, 3, 8)).astype(np.float32),
             "h0": rng.standard_normal((3, hidden)).astype(np.float32)}
    if lstm:
        feeds["c0"] = rng.standard_normal((3, hidden)).astype(np.float32)
    return feeds


def _run(model: onnx.ModelProto, feeds: dict) -> dict:
    session = make_session(model).session
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _cell(compiled: netc.Compiled) -> dict | None:
    (op,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    return op.attrs.get("cell")


def _check_against_reference(compiled: netc.Compiled, hidden: int, lstm: bool) -> None:
    onnx.checker.check_model(compiled.model, full_check=True)
    for steps in (5, 1, 0):  # 0 steps: the initial state, as recur defines it
        feeds = _feeds(steps, hidden, lstm)
        got, want = _run(compiled.model, feeds), run_graph(compiled.graph, compiled.params, feeds)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=f"{name}, T={steps}")
        if steps == 0:
            assert np.array_equal(got["hT"], feeds["h0"])


@pytest.mark.parametrize("step, reset", [(GRU_BEFORE, "before"), (GRU_AFTER, "after"),
                                         (GRU_TORCH_SPLIT, "after"), (GRU_BEFORE_SPLIT, "before")])
@pytest.mark.parametrize("hidden, onnx_op", [(16, "GRU"), (128, "Scan")])  # the built-in's choose_lowering
def test_recognised_gru_matches_the_step(step: str, reset: str, hidden: int, onnx_op: str) -> None:
    compiled = netc.compile_source(network(step, hidden), seed=3)
    cell = _cell(compiled)
    assert cell is not None and (cell["cell"], cell["reset"]) == ("gru", reset)
    types = _op_types(compiled.model.graph)
    assert onnx_op in types and ({"GRU", "Scan"} - {onnx_op}).isdisjoint(types)
    _check_against_reference(compiled, hidden, lstm=False)


@pytest.mark.parametrize("step, lstm", [(LSTM_PER_GATE, True), (LSTM_COUPLED, True), (LSTM_COUPLED_SPLIT, True)])
def test_recognised_lstm_forms_run_natively_and_match_the_step(step: str, lstm: bool) -> None:
    compiled = netc.compile_source(network(step, 16, lstm=True), seed=5)
    cell = _cell(compiled)
    assert cell is not None and cell["cell"] == "lstm"
    assert cell["coupled"] == (step is not LSTM_PER_GATE)
    types = _op_types(compiled.model.graph)
    assert "LSTM" in types and "Scan" not in types
    _check_against_reference(compiled, 16, lstm=True)


def _builtin(call: str, hidden: int, lstm: bool, weights: dict) -> onnx.ModelProto:
    c0 = f"  input c0: f32[N, {hidden}]\n" if lstm else ""
    init = "(unsqueeze(h0, 0), unsqueeze(c0, 0))" if lstm else "unsqueeze(h0, 0)"
    builtin = netc.compile_source(
        f"network A {{\n  input x: f32[T, N, 8]\n  input h0: f32[N, {hidden}]\n{c0}"
        f"  ys = {call.replace('INIT', init)}\n  output ys = ys\n}}\n", seed=1)
    role = {name.rsplit(".", 1)[-1]: name for name in builtin.params}
    assert sorted(role) == sorted(weights)
    return lower_graph(builtin.graph, {role[k]: np.ascontiguousarray(v, np.float32) for k, v in weights.items()})


def _w(p: dict, k: int, neg: bool = False) -> np.ndarray:
    return (-1 if neg else 1) * p[f"recur0.dense{k}.weight"].T


def _b(p: dict, k: int, neg: bool = False, hidden: int = 16) -> np.ndarray:
    name = f"recur0.dense{k}.bias"
    return (-1 if neg else 1) * p[name] if name in p else np.zeros(hidden, np.float32)


@pytest.mark.parametrize("step, reset", [(GRU_BEFORE, "before"), (GRU_AFTER, "after")])
def test_recognised_gru_equals_the_builtin(step: str, reset: str) -> None:
    """The step's weights in the built-in gru give the same outputs. GRU_AFTER's z keeps the
    old state: netc's z is its negation."""
    mine = netc.compile_source(network(step), seed=1)
    p = mine.params
    neg = step is GRU_AFTER  # gates z (dense 0, 1), r (2, 3), h (4, 5)
    weights = {"W": np.concatenate([_w(p, 0, neg), _w(p, 2), _w(p, 4)]),
               "R": np.concatenate([_w(p, 1, neg), _w(p, 3), _w(p, 5)]),
               "b": np.concatenate([_b(p, 0, neg), _b(p, 2), _b(p, 4)]),
               "rb": np.concatenate([_b(p, 1, neg), _b(p, 3), _b(p, 5)])}
    model = _builtin(f'gru(x, 16, reset="{reset}", init=INIT)', 16, False, weights)
    feeds = _feeds(6, 16, False)
    np.testing.assert_allclose(_run(model, feeds)["ys"], _run(mine.model, feeds)["ys"], rtol=1e-4, atol=1e-5)


def test_recognised_lstm_forms_equal_the_builtin() -> None:
    feeds = _feeds(6, 16, True)
    mine = netc.compile_source(network(LSTM_PER_GATE, lstm=True), seed=1)
    p = mine.params  # gates i (dense 0, 1), f (2, 3), c (4, 5), o (6, 7); diag i, f, o
    weights = {"W": np.concatenate([_w(p, k) for k in (0, 2, 4, 6)]),
               "R": np.concatenate([_w(p, k) for k in (1, 3, 5, 7)]),
               "b": np.concatenate([_b(p, k) for k in (0, 2, 4, 6)]), "rb": np.zeros(64, np.float32),
               "p": np.concatenate([p[f"recur0.diag{k}.weight"] for k in range(3)])}
    model = _builtin("lstm(x, 16, peephole=true, init=INIT)", 16, True, weights)
    np.testing.assert_allclose(_run(model, feeds)["ys"], _run(mine.model, feeds)["ys"], rtol=1e-4, atol=1e-5)

    mine = netc.compile_source(network(LSTM_COUPLED, lstm=True), seed=1)
    p = mine.params  # f (dense 0, 1; diag 0), c (2, 3), o (4, 5; diag 1); netc's i = sigmoid(-a_f)
    weights = {"W": np.concatenate([_w(p, 0, True), _w(p, 2), _w(p, 4)]),
               "R": np.concatenate([_w(p, 1, True), _w(p, 3), _w(p, 5)]),
               "b": np.concatenate([_b(p, 0, True), _b(p, 2), _b(p, 4)]), "rb": np.zeros(48, np.float32),
               "p": np.concatenate([-p["recur0.diag0.weight"], p["recur0.diag1.weight"]])}
    model = _builtin("lstm(x, 16, coupled=true, peephole=true, init=INIT)", 16, True, weights)
    np.testing.assert_allclose(_run(model, feeds)["ys"], _run(mine.model, feeds)["ys"], rtol=1e-4, atol=1e-5)


def test_recognised_gru_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    compiled = netc.compile_source(network(GRU_TORCH_SPLIT), seed=2)
    assert _cell(compiled) is not None
    p = compiled.params
    gru = torch.nn.GRU(8, 16)  # reset after (linear_before_reset=1), gates r, z, n
    feeds = _feeds(7, 16, False)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(_w(p, 0).copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(_w(p, 1).copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(_b(p, 0, hidden=48)))
        gru.bias_hh_l0.copy_(torch.from_numpy(_b(p, 1, hidden=48)))
        ys, hT = gru(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["h0"])[None])
    got = _run(compiled.model, feeds)
    np.testing.assert_allclose(got["ys"], ys.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["hT"], hT[0].numpy(), rtol=1e-4, atol=1e-5)


NEAR_MISSES = [
    (GRU_BEFORE.replace("h2 = (1 - z) * h + z * hc", "h2 = (1 - z) * h + r * hc"), False),  # two gates mixed
    (GRU_BEFORE.replace("(1 - z)", "(2 - z)"), False),  # not a convex combination
    (GRU_BEFORE.replace("hc = tanh(", "hc = relu("), False),  # not a GRU candidate
    (GRU_BEFORE.replace("dense(r * h, hidden)", "dense(r * h, hidden) + dense(h, hidden)"), False),  # extra U h
    (GRU_AFTER.replace("r * dense(h, hidden)", "r * dense(x, hidden)"), False),  # r gates an x projection
    (GRU_BEFORE.replace("return h2, h2", "return h2, h2 * 2.0"), False),  # more work
    (LSTM_PER_GATE.replace("dense(h, hidden, bias=false) + diag(c))\n  f", "dense(h, hidden, bias=false))\n  f"),
     True),  # peepholes partly
    (LSTM_PER_GATE.replace("f = sigmoid(dense(x, hidden)", "f = sigmoid(1.0 + dense(x, hidden)"), True),  # a constant
    (LSTM_COUPLED.replace("i = 1 - f", "i = 1 - sigmoid(dense(x, hidden))"), True),  # not coupled to f
    (LSTM_PER_GATE.replace("c2 = f * c", "c2 = f * h"), True),  # not an LSTM
]


@pytest.mark.parametrize("step, lstm", NEAR_MISSES)
def test_near_misses_are_lowered_as_written(step: str, lstm: bool) -> None:
    compiled = netc.compile_source(network(step, 16, lstm), seed=0)
    assert _cell(compiled) is None
    assert "Scan" in _op_types(compiled.model.graph)
    feeds = _feeds(4, 16, lstm)
    got, want = _run(compiled.model, feeds), run_graph(compiled.graph, compiled.params, feeds)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


def test_the_peephole_example_is_recognised() -> None:
    compiled = netc.compile_file(ROOT / "examples" / "peephole_lstm_lm.net", seed=0)
    (op,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    cell = op.attrs["cell"]
    assert (cell["cell"], cell["peephole"], cell["coupled"]) == ("lstm", True, False)
    assert "LSTM" in _op_types(compiled.model.graph)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("hidden, onnx_op", [(16, "RNN"), (32, "Scan")])  # the built-in rnn's choose_lowering
def test_recognised_elman_matches_the_step_and_the_builtin(act: str, hidden: int, onnx_op: str) -> None:
    compiled = netc.compile_source(network(ELMAN.replace("ACT", act), hidden), seed=4)
    cell = _cell(compiled)
    assert cell is not None and (cell["cell"], cell["act"]) == ("rnn", act)
    types = _op_types(compiled.model.graph)
    assert onnx_op in types and ({"RNN", "Scan"} - {onnx_op}).isdisjoint(types)
    _check_against_reference(compiled, hidden, lstm=False)
    p = compiled.params
    weights = {"W": _w(p, 0), "R": _w(p, 1), "b": _b(p, 0, hidden=hidden), "rb": np.zeros(hidden, np.float32)}
    model = _builtin(f"rnn(x, {hidden}, act={act}, init=INIT)", hidden, False, weights)
    feeds = _feeds(6, hidden, False)
    np.testing.assert_allclose(_run(model, feeds)["ys"], _run(compiled.model, feeds)["ys"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("step", [ELMAN.replace("ACT", "softplus"),  # not one of the recognised activations
                                  ELMAN.replace("ACT(dense(x, hidden)", "tanh(dense(x, hidden) + dense(x, hidden)"),
                                  ELMAN.replace("ACT", "tanh").replace("return h2, h2", "return h2, dense(h2, 4)")])
def test_elman_near_misses_are_lowered_as_written(step: str) -> None:
    compiled = netc.compile_source(network(step), seed=0)
    assert _cell(compiled) is None
    feeds = _feeds(4, 16, False)
    got, want = _run(compiled.model, feeds), run_graph(compiled.graph, compiled.params, feeds)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)
