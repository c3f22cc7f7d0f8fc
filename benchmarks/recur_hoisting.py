"""What hoisting step-invariant work out of a `recur` body gains, on onnxruntime CPU.

    python benchmarks/recur_hoisting.py [--T 100 --N 32,1 --D 256 --H 256] [--threads 2]
                                        [--repeats 30] [--rounds 3]

An Elman recurrence written as a step block, h_t = tanh(dense(x_t) + dense(h_{t-1})),
compiled twice from the same source and weights: with the full pass pipeline (the input
projection dense(x_t) is hoisted out of the Scan and becomes one MatMul over [T, N, D]),
and without the hoisting pass (the projection runs inside the body, one small Gemm per
step). It checks that the two agree, then times `session.run` with `--threads` intra-op
threads. The sessions take turns, run by run; each timing is the median of `--repeats`
runs after a warm-up, and the line shows the median over `--rounds` rounds. The ratio is
hoisted / not hoisted: below 1 means hoisting is faster. `--N` takes a list: one line per
batch size (at N=1 the per-step projection is a matrix-vector product, and hoisting turns
T of them into one matrix product).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.params import materialise
from netc.compiler.passes import PIPELINE, hoist_loop_invariants
from netc.runtime.session import make_session

SOURCE = """
block elman(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
network Elman {
  input x: f32[T, N, D]
  output hs = recur(elman, x, init=zeros(N, H), hidden=H)
}
"""


def compile_model(args: argparse.Namespace, hoist: bool):
    text = SOURCE.replace("D]", f"{args.D}]").replace("N, H)", f"N, {args.H})").replace("=H)", f"={args.H})")
    from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network

    program = netc.load("elman.net", text)
    graph = elaborate_network(program, choose_network(program, None), NetworkOptions())
    for run_pass in PIPELINE:
        if hoist or run_pass is not hoist_loop_invariants:
            graph = run_pass(graph)
    return lower_graph(graph, materialise(graph, seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--N", default="32,1", help="batch sizes, comma-separated")
    parser.add_argument("--D", type=int, default=256)
    parser.add_argument("--H", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(f"onnxruntime {ort.__version__}, {platform.machine()}, {args.threads} threads; "
          f"T={args.T} D={args.D} H={args.H}; median of {args.repeats} runs, median over {args.rounds} rounds")
    sessions = {name: make_session(compile_model(args, hoist), threads=args.threads).session
                for name, hoist in (("hoisted", True), ("in-loop", False))}
    for batch in (int(n) for n in args.N.split(",")):
        x = np.random.default_rng(0).standard_normal((args.T, batch, args.D)).astype(np.float32)
        feeds = {"x": x}
        outs = {name: s.run(None, feeds)[0] for name, s in sessions.items()}
        np.testing.assert_allclose(outs["hoisted"], outs["in-loop"], rtol=1e-4, atol=1e-5)
        hoisted, in_loop = (statistics.median(r) for r in _time(sessions, feeds, args).values())
        print(f"Elman recur N={batch:<4d} in-loop {in_loop:7.2f} ms  hoisted {hoisted:7.2f} ms  "
              f"ratio hoisted/in-loop {hoisted / in_loop:.2f}")


def _time(sessions: dict, feeds: dict, args: argparse.Namespace) -> dict[str, list[float]]:
    """Per session, the median time (ms) of each round; the sessions take turns run by run."""
    rounds: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for s in sessions.values():
            for _ in range(3):
                s.run(None, feeds)
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.repeats):
            for name, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds)
                times[name].append(time.perf_counter() - start)
        for name in sessions:
            rounds[name].append(statistics.median(times[name]) * 1e3)
    return rounds


if __name__ == "__main__":
    main()
