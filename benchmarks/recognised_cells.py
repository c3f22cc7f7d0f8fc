"""A standard cell written as a `recur` step against the built-in cell (compiler/passes/recognise_cells.py).

    python benchmarks/recognised_cells.py [--rounds 40] [--json out.json]

T=100, N=32, D=H=256, f32. The peephole LSTM of `recurrent_vs_torch.py` section 3:
`recur` over the step written with one projection split in four and with one `dense` per
gate (as examples/peephole_lstm_lm.net writes it), both recognised and lowered to the
native LSTM, against `lstm(x, 256, peephole=true)`. The lectures' GRU (reset before) with
one `dense` per gate, recognised and lowered as `gru(x, 256)` is (its Scan form at this
size), against `gru(x, 256)`. The Elman step, recognised, against `rnn(x, 256)`. The models of a case take turns on the harness's shared pool;
ratios are paired, with bootstrap 95% intervals. Target for the recognised forms: within
5% of the built-in (<= 1.05).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from cells import ELMAN, GRU, PER_GATE, SPLIT
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc

RECUR = "recur(peephole_lstm, x, init=(zeros(N, 256), zeros(N, 256)), hidden=256)"
RECUR_GRU = "recur(gru_step, x, init=zeros(N, 256), hidden=256)"


def network(blocks: str, call: str) -> str:
    return f"{blocks}\nnetwork A {{\n  input x: f32[T, N, 256]\n  output y = {call}\n}}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, rounds=40)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("recognised_cells")
    x = np.random.default_rng(0).standard_normal((100, 32, 256)).astype(np.float32)
    cases = {
        "peephole LSTM T=100 N=32 D=H=256": ("lstm(peephole=true)", {
            "lstm(peephole=true)": network("", "lstm(x, 256, peephole=true)"),
            "recur, split step (recognised)": network(SPLIT, RECUR),
            "recur, per-gate step (recognised)": network(PER_GATE, RECUR)}),
        "GRU T=100 N=32 D=H=256": ("gru", {
            "gru": network("", "gru(x, 256)"),
            "recur, per-gate GRU step (recognised)": network(GRU, RECUR_GRU)}),
        "Elman T=100 N=32 D=H=256": ("rnn", {
            "rnn": network("", "rnn(x, 256)"),
            "recur, Elman step (recognised)": network(ELMAN, "recur(elman_step, x, init=zeros(N, 256), hidden=256)")}),
    }
    for case, (base_name, models) in cases.items():
        sessions = {k: ort_session(netc.compile_source(text, seed=0).model) for k, text in models.items()}
        times = interleave_sessions(sessions, {"x": x}, args.rounds, args.warmup)
        for name in sessions:
            bench.time_row(case, f"{name} ms", times[name])
        for name in list(sessions)[1:]:
            short = name.split(" (")[0]
            bench.ratio_row(case, f"{short} / {base_name}", times[name], times[base_name], target=1.05)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
