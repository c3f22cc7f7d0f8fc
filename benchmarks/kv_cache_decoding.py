"""Greedy decoding with a key/value cache against recomputing the prefix, both inside one
ONNX Loop (examples/kv_cache_lm.net: CachedLM and RecomputeLM, the same weights).

    python benchmarks/kv_cache_decoding.py [--L 128] [--N 1] [--d 256] [--heads 4] [--V 1000]
        [--threads 2] [--repeats 10]

Generates L tokens per example (no stop id) with both networks, checks that they emit the
same ids, then times them in interleaved rounds (benchmarks/timing.py) and prints tokens
per second (N * L / time) and the speed-up of the cache with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import netc
from benchmarks.timing import Ratio, ort_session, time_interleaved
from netc.compiler.lowering import lower_graph

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kv_cache_lm.net"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--L", type=int, default=128)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--V", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    settings = {"V": args.V, "d": args.d, "heads": args.heads, "M": args.L}
    cached = netc.compile_file(EXAMPLE, network="CachedLM", settings=settings)
    recompute = netc.check_file(EXAMPLE, settings=settings)[1]
    sessions = {"cached": ort_session(cached.model, args.threads),
                "recompute": ort_session(lower_graph(recompute, cached.params), args.threads)}
    feeds = {"prompt": np.arange(1, args.N + 1, dtype=np.int64)}
    ids = {name: s.run(None, feeds)[0] for name, s in sessions.items()}
    np.testing.assert_array_equal(ids["cached"], ids["recompute"])
    stats = time_interleaved({name: (lambda s=s: s.run(None, feeds)) for name, s in sessions.items()},
                             args.repeats, warmup=1)
    print(f"# {' '.join(sys.argv)}")
    print(f"# 2 layers, d={args.d}, heads={args.heads}, V={args.V}, N={args.N}, L={args.L} tokens, "
          f"threads={args.threads}, repeats={args.repeats}")
    for name, st in stats.items():
        print(f"{name:10s} {st.median:9.1f} ms  {args.N * args.L / st.median * 1e3:9.0f} tokens/s")
    print(f"speed-up of the cache (recompute / cached time): {Ratio.of(stats['recompute'], stats['cached'])}")


if __name__ == "__main__":
    main()
