"""Batch inference throughput: `netc batch` with the local engine against Ray Data with 1 and
2 actors, on ResNet-18 over a folder of image shards.

    python benchmarks/batch_inference.py                      # 2,000 images, 224x224
    python benchmarks/batch_inference.py --rows 400 --size 112 --rounds 2

Each configuration runs whole `netc batch` commands in fresh processes (what a user runs),
interleaved over `--rounds`; the figures are rows per second of the run itself (the
command's own timing, without Python's start-up and, for the ray engine, without starting
Ray, which is reported apart: a cluster that is already up does not pay it). Scaling efficiency is rows/s with 2 actors divided by
twice the rows/s with 1. On one machine, the actors split the same cores, so efficiency
measures overhead, not added hardware: docs/scale-out.md turns the per-actor figure into a
prediction for a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "resnet18.net"
CONFIGS = {  # name: extra `netc batch` arguments
    "local, 1 session": ["--engine", "local", "--workers", "1"],
    "local, 2 sessions": ["--engine", "local", "--workers", "2"],
    "ray, 1 actor": ["--engine", "ray", "--workers", "1"],
    "ray, 2 actors": ["--engine", "ray", "--workers", "2"],
}


def make_data(folder: Path, rows: int, size: int, shard_rows: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        np.save(folder / f"images-{k:04d}.npy", rng.standard_normal((n, 3, size, size)).astype(np.float32))


def run_once(model: Path, data: Path, out: Path, extra: list[str], batch_size: int) -> tuple[float, float]:
    """Seconds of one whole `netc batch` run as the command reports them, and of those the
    seconds it took to start Ray."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "netc", "batch", str(model), str(data), "-o", str(out),
           "--batch-size", str(batch_size), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    match = re.search(r"in ([0-9.]+) s(?: \(([0-9.]+) s starting Ray\))?", done.stderr)
    if not match:
        return wall, 0.0
    return float(match.group(1)), float(match.group(2) or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224, help="image height and width")
    parser.add_argument("--shard-rows", type=int, default=100, help="rows per input file (one unit each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "resnet18.onnx"
        subprocess.run([sys.executable, "-m", "netc", "compile", str(MODEL), "-o", str(model), "--set",
                        f"size={args.size}"], check=True, capture_output=True)
        make_data(tmp / "data", args.rows, args.size, args.shard_rows)
        seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
        startup: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(args.rounds):
            for name, extra in CONFIGS.items():
                total, start = run_once(model, tmp / "data", tmp / "out", extra, args.batch_size)
                seconds[name].append(total - start)
                startup[name].append(start)
    rates = {name: args.rows / statistics.median(s) for name, s in seconds.items()}
    print(f"ResNet-18, {args.rows} images of 3x{args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.shard_rows} rows per unit, {os.cpu_count()} CPUs, median of {args.rounds} round(s)")
    print(f"{'configuration':<20} {'seconds':>8} {'rows/s':>8} {'start-up s':>11}")
    for name in CONFIGS:
        print(f"{name:<20} {statistics.median(seconds[name]):>8.2f} {rates[name]:>8.1f} "
              f"{statistics.median(startup[name]):>11.2f}")
    for engine, one, two in (("local", "local, 1 session", "local, 2 sessions"), ("ray", "ray, 1 actor", "ray, 2 actors")):
        print(f"{engine} scaling efficiency (2 vs 1): {rates[two] / (2 * rates[one]):.2f}")
    print(f"ray, 2 actors / local, 2 sessions: {rates['ray, 2 actors'] / rates['local, 2 sessions']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "size": args.size, "seconds": seconds,
                                         "startup_seconds": startup, "rows_per_s": rates}, indent=1))


if __name__ == "__main__":
    main()
