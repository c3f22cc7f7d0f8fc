"""A standard cell written as a `recur` step (compiler/passes/recognise_cells.py) lowers to
the native op the built-in takes, while the reference still runs the user's step."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import netc
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session

STEP = """
block cell(state, x, hidden: int) {
  h, c = state
  GATES = split(dense(x, 4 * hidden) + dense(h, 4 * hidden, bias=false), 4)
  i = sigmoid(i PEEP_C)
  f = sigmoid(f PEEP_C)
  c2 = f * c + i * tanh(g)
  o = sigmoid(o PEEP_C2)
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
network A {
  input x: f32[T, N, 8]
  input h0: f32[N, 16]
  input c0: f32[N, 16]
  ys, (hT, cT) = recur(cell, x, init=(h0, c0), hidden=16, return_state=true)
  output ys = ys
  output hT = hT
  output cT = cT
}
"""


def _source(peephole: bool, gates: str = "i, f, g, o") -> str:
    return (STEP.replace("GATES", gates).replace("PEEP_C2", "+ diag(c2)" if peephole else "")
            .replace("PEEP_C", "+ diag(c)" if peephole else ""))


def _op_types(graph: onnx.GraphProto) -> set[str]:
    types = set()
    for node in graph.node:
        types.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                types |= _op_types(attr.g)
    return types


def _run(compiled: netc.Compiled, steps: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.standard_normal((steps, 3, 8)).astype(np.float32),
             "h0": rng.standard_normal((3, 16)).astype(np.float32),
             "c0": rng.standard_normal((3, 16)).astype(np.float32)}
    session = make_session(compiled.model).session
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds))), run_graph(compiled.graph, compiled.params, feeds)


@pytest.mark.parametrize("peephole", [True, False])
@pytest.mark.parametrize("gates", ["i, f, g, o", "f, o, i, g"])
def test_recognised_lstm_runs_natively_and_matches_the_step(peephole: bool, gates: str) -> None:
    compiled = netc.compile_source(_source(peephole, gates), seed=3)
    (op,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    assert op.attrs["cell"]["cell"] == "lstm"
    types = _op_types(compiled.model.graph)
    assert "LSTM" in types and "Scan" not in types
    onnx.checker.check_model(compiled.model, full_check=True)
    for steps in (5, 1, 0):  # 0 steps: the initial state, as recur defines it
        got, want = _run(compiled, steps)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=f"{name}, T={steps}")
    assert np.array_equal(got["hT"], _run(compiled, 0)[1]["hT"])


def test_recognised_peephole_lstm_equals_the_builtin() -> None:
    """The step's weights in the built-in lstm(peephole=true) give the same outputs."""
    from netc.compiler.lowering import lower_graph

    mine = netc.compile_source(_source(True), seed=1)
    p = mine.params
    builtin = netc.compile_source(
        "network A {\n  input x: f32[T, N, 8]\n  input h0: f32[N, 16]\n  input c0: f32[N, 16]\n"
        "  ys, (hT, cT) = lstm(x, 16, peephole=true, init=(unsqueeze(h0, 0), unsqueeze(c0, 0)), return_state=true)\n"
        "  output ys = ys\n}\n", seed=1)
    role = {name.rsplit(".", 1)[-1]: name for name in builtin.params}
    assert sorted(role) == ["R", "W", "b", "p", "rb"]
    # netc's built-in gate order is i, f, c, o: the step's split order here
    weights = {role["W"]: p["recur0.dense0.weight"].T, role["R"]: p["recur0.dense1.weight"].T,
               role["b"]: p["recur0.dense0.bias"], role["rb"]: np.zeros(64, np.float32),
               role["p"]: np.concatenate([p[f"recur0.diag{k}.weight"] for k in range(3)])}  # p_i, p_f, p_o
    session = make_session(lower_graph(builtin.graph, {k: np.ascontiguousarray(v) for k, v in weights.items()})).session
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((6, 3, 8)).astype(np.float32),
             "h0": rng.standard_normal((3, 16)).astype(np.float32),
             "c0": rng.standard_normal((3, 16)).astype(np.float32)}
    got, _ = _run(mine, 6)
    np.testing.assert_allclose(session.run(["ys"], feeds)[0], got["ys"], rtol=1e-4, atol=1e-5)


def test_near_misses_are_lowered_as_written() -> None:
    for text in (_source(True).replace("h2 = o * tanh(c2)", "h2 = o * relu(c2)"),  # not an LSTM
                 _source(True).replace("i = sigmoid(i + diag(c))", "i = sigmoid(i)"),  # peepholes partly
                 _source(True).replace("return (h2, c2), h2", "return (h2, c2), h2 * 2.0")):  # more work
        compiled = netc.compile_source(text, seed=0)
        assert "Scan" in _op_types(compiled.model.graph)
        got, want = _run(compiled, 4)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


def test_recognised_lstm_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    compiled = netc.compile_source(_source(False), seed=2)  # split order i, f, g, o is PyTorch's
    p = compiled.params
    lstm = torch.nn.LSTM(8, 16)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(p["recur0.dense0.weight"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(p["recur0.dense1.weight"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(p["recur0.dense0.bias"]))
        lstm.bias_hh_l0.zero_()
        rng = np.random.default_rng(0)
        x, h0, c0 = (rng.standard_normal(s).astype(np.float32) for s in ((7, 3, 8), (3, 16), (3, 16)))
        ys, (hT, cT) = lstm(torch.from_numpy(x), (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
    session = make_session(compiled.model).session
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x, "h0": h0, "c0": c0})))
    np.testing.assert_allclose(got["ys"], ys.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["hT"], hT[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["cT"], cT[0].numpy(), rtol=1e-4, atol=1e-5)
