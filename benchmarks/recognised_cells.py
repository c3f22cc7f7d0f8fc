"""A standard cell written as a `recur` step against the built-in cell (compiler/passes/recognise_cells.py).

    python benchmarks/recognised_cells.py [--rounds 40] [--json out.json]

The peephole LSTM of `recurrent_vs_torch.py` section 3, T=100, N=32, D=H=256, f32:
`recur` over the step written with one projection split in four (recognised: lowered to
the native LSTM) and with one `dense` per gate (as examples/peephole_lstm_lm.net writes
it; not recognised: a Scan), each against `lstm(x, 256, peephole=true)`. The models take
turns on the harness's shared pool; ratios are paired, with bootstrap 95% intervals.
Target for the recognised form: within 5% of the built-in (<= 1.05).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc

SPLIT = """
block peephole_lstm(state, x, hidden: int) {
  h, c = state
  i, f, g, o = split(dense(x, 4 * hidden) + dense(h, 4 * hidden, bias=false), 4)
  i = sigmoid(i + diag(c))
  f = sigmoid(f + diag(c))
  c2 = f * c + i * tanh(g)
  o = sigmoid(o + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
PER_GATE = """
block peephole_lstm(state, x, hidden: int) {
  h, c = state
  i = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  f = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  c2 = f * c + i * tanh(dense(x, hidden) + dense(h, hidden, bias=false))
  o = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
RECUR = "recur(peephole_lstm, x, init=(zeros(N, 256), zeros(N, 256)), hidden=256)"


def network(blocks: str, call: str) -> str:
    return f"{blocks}\nnetwork A {{\n  input x: f32[T, N, 256]\n  output y = {call}\n}}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, rounds=40)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("recognised_cells")
    models = {"lstm(peephole=true)": network("", "lstm(x, 256, peephole=true)"),
              "recur, split step (recognised)": network(SPLIT, RECUR),
              "recur, per-gate step (Scan)": network(PER_GATE, RECUR)}
    sessions = {k: ort_session(netc.compile_source(text, seed=0).model) for k, text in models.items()}
    x = np.random.default_rng(0).standard_normal((100, 32, 256)).astype(np.float32)
    times = interleave_sessions(sessions, {"x": x}, args.rounds, args.warmup)
    case = "peephole LSTM T=100 N=32 D=H=256"
    for name in sessions:
        bench.time_row(case, f"{name} ms", times[name])
    base = times["lstm(peephole=true)"]
    bench.ratio_row(case, "recognised recur / lstm(peephole=true)", times["recur, split step (recognised)"], base,
                    target=1.05)
    bench.ratio_row(case, "per-gate recur / lstm(peephole=true)", times["recur, per-gate step (Scan)"], base)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
