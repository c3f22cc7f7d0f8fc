"""A sequence of 0 steps (T = 0 at run time): both lowerings of the standard cells and
`recur` give what the reference gives, instead of onnxruntime's Scan error (or, for the
native GRU kernel, a process abort)."""

from __future__ import annotations

import numpy as np
import pytest

import netc
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session

RNG = np.random.default_rng(0)


def _run_both(source: str, feeds: dict[str, np.ndarray]) -> tuple[dict, dict]:
    compiled = netc.compile_source(source)
    session = make_session(compiled.model).session
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, feeds)))
    want = run_graph(compiled.graph, compiled.params, feeds)
    return got, want


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("lowering", ["native", "scan"])
@pytest.mark.parametrize("shape", ["layers=1", "bidirectional=true, layers=2"])
def test_standard_cells_on_an_empty_sequence(cell: str, lowering: str, shape: str) -> None:
    dirs_layers = 4 if "bidirectional" in shape else 1
    init = "init=(h0, c0)" if cell == "lstm" else "init=h0"
    states = "y, (h, c)" if cell == "lstm" else "y, h"
    source = (f"network N {{\n  input x: f32[T, 2, 3]\n  input h0: f32[{dirs_layers}, 2, 4]\n"
              f"  input c0: f32[{dirs_layers}, 2, 4]\n"
              f"  {states} = {cell}(x, 4, {shape}, {init}, lowering=\"{lowering}\", return_state=true)\n"
              f"  output y = y\n  output h = h\n" + ("  output c = c\n" if cell == "lstm" else "")
              + "  output s = h0 + c0\n}\n")
    h0 = RNG.standard_normal((dirs_layers, 2, 4)).astype(np.float32)
    for steps in (0, 3):  # the guard leaves a non-empty sequence alone
        feeds = {"x": RNG.standard_normal((steps, 2, 3)).astype(np.float32), "h0": h0, "c0": h0 + 1}
        got, want = _run_both(source, feeds)
        for name, value in want.items():
            assert got[name].shape == value.shape, (name, steps)
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=f"{name}, T={steps}")
        if steps == 0:  # as the native ops define it: no step ran, the final state is zero
            assert got["y"].shape == (0, 2, 4 * (2 if "bidirectional" in shape else 1))
            assert not got["h"].any()


@pytest.mark.parametrize("reverse", ["false", "true"])
def test_recur_on_an_empty_sequence_keeps_the_initial_state(reverse: str) -> None:
    source = ("block elman(h, x) {\n  h2 = tanh(dense(x, 4) + dense(h, 4, bias=false))\n  return h2, h2 * 2.0\n}\n"
              "network N {\n  input x: f32[T, 2, 3]\n  input h0: f32[2, 4]\n"
              f"  ys, fin = recur(elman, x, init=h0, reverse={reverse}, return_state=true)\n"
              "  output ys = ys\n  output fin = fin\n}\n")
    h0 = RNG.standard_normal((2, 4)).astype(np.float32)
    for steps in (0, 2):
        got, want = _run_both(source, {"x": RNG.standard_normal((steps, 2, 3)).astype(np.float32), "h0": h0})
        for name, value in want.items():
            assert got[name].shape == value.shape
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)
    got, _ = _run_both(source, {"x": np.zeros((0, 2, 3), np.float32), "h0": h0})
    np.testing.assert_array_equal(got["fin"], h0)
    assert got["ys"].shape == (0, 2, 4)


def test_static_length_needs_no_guard() -> None:
    model = netc.compile_source('network N {\n  input x: f32[5, 2, 3]\n  output y = gru(x, 4, lowering="scan")\n}\n').model
    assert "If" not in {n.op_type for n in model.graph.node}


SAMPLED = """block stochastic(h, x) {
  h2 = bernoulli(sigmoid(dense(x, 4) + dense(h, 4, bias=false)))
  return h2, h2
}
block step(h, prev, chars: int) {
  h2 = tanh(dense(embed(prev, chars, 4), 4) + dense(h, 4, bias=false))
  return h2, dense(h2, chars)
}
network N {
  input x: f32[T, B, 3]
  input h0: f32[B, 4]
  input start: i64[B]
  ys, fin = recur(stochastic, x, init=h0, return_state=true)
  output ys = ys
  output fin = fin
  output text = generate(step, init=fin, start=start, stop=3, max_len=5, sample=true, top_k=2, chars=8)
}
"""


def test_empty_sequence_with_random_ops_and_sampling() -> None:
    # A draw inside a guarded recur stays in its step (neither hoisted nor taken for a
    # standard cell), and the sampled generate after it runs from the initial state on T = 0.
    compiled = netc.compile_source(SAMPLED, seed=4)
    (recur,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    assert "cell" not in recur.attrs
    assert "bernoulli" in {op.kind for op in recur.regions[0].ops}
    assert "bernoulli" not in {op.kind for op in compiled.graph.ops}
    h0 = RNG.standard_normal((2, 4)).astype(np.float32)
    start = np.array([0, 1], np.int64)
    for steps in (0, 3):
        feeds = {"x": RNG.standard_normal((steps, 2, 3)).astype(np.float32), "h0": h0, "start": start}
        got, want = _run_both(SAMPLED, feeds)
        assert got["ys"].shape == want["ys"].shape == (steps, 2, 4)
        assert set(np.unique(got["ys"])) <= {0.0, 1.0}
        for out in (got, want):
            assert out["text"].ndim == 2 and out["text"].shape[1] == 2 and out["text"].shape[0] <= 5
            assert ((out["text"] >= 0) & (out["text"] < 8)).all()
        if steps == 0:
            np.testing.assert_array_equal(got["fin"], h0)
            np.testing.assert_array_equal(want["fin"], h0)
