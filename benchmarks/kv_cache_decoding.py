"""Greedy decoding with a key/value cache against recomputing the prefix, both inside one
ONNX Loop (examples/kv_cache_lm.net: CachedLM and RecomputeLM, the same weights).

    python benchmarks/kv_cache_decoding.py [--L 128] [--N 1] [--d 256] [--heads 4] [--V 1000]
        [--threads 2] [--rounds 10] [--json out.json]

Generates L tokens per example (no stop id) with both networks, checks that they emit the
same ids, then times them in interleaved rounds on the harness's shared pool
(benchmarks/harness.py). Rows: tokens per second (N * L / time) of each, and the speed-up
of the cache (recompute / cached time, paired, bootstrap 95% interval; target >= 5 at
L=128).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc
from netc.compiler.lowering import lower_graph

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kv_cache_lm.net"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--L", type=int, default=128)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--V", type=int, default=1000)
    add_common_arguments(parser, rounds=10, warmup=1)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("kv_cache_decoding")
    settings = {"V": args.V, "d": args.d, "heads": args.heads, "M": args.L}
    cached = netc.compile_file(EXAMPLE, network="CachedLM", settings=settings)
    recompute = netc.check_file(EXAMPLE, settings=settings)[1]
    sessions = {"cached": ort_session(cached.model), "recompute": ort_session(lower_graph(recompute, cached.params))}
    feeds = {"prompt": np.arange(1, args.N + 1, dtype=np.int64)}
    ids = {name: s.run(None, feeds)[0] for name, s in sessions.items()}
    np.testing.assert_array_equal(ids["cached"], ids["recompute"])
    times = interleave_sessions(sessions, feeds, args.rounds, args.warmup)
    case = f"2 layers d={args.d} h={args.heads} V={args.V} N={args.N} L={args.L}"
    tokens = args.N * args.L
    for name in sessions:
        bench.time_row(case, f"{name} ms", times[name])
        bench.estimate_row(case, f"{name} tokens/s", [tokens / t for t in times[name]], "tokens/s")
    # 5x is the goal at L=128 only: shorter prefixes leave less to recompute.
    bench.ratio_row(case, "speed-up of the cache (recompute / cached time)", times["recompute"], times["cached"],
                    target=5.0 if args.L >= 128 else None, higher_is_better=True)
    bench.finish(args.json)


if __name__ == "__main__":
    main()
