"""Interleaved timing with bootstrap intervals, shared by the attention benchmarks.

Every model of a comparison runs once per round, in an order that rotates from round to
round, so that background load on a shared machine hits them alike; ratios are medians of
per-round ratios with a bootstrap 95% interval."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort


@dataclass
class Stats:
    median: float  # ms
    p90: float
    times: list[float]

    @staticmethod
    def of(seconds: list[float]) -> Stats:
        ms = [t * 1e3 for t in seconds]
        return Stats(statistics.median(ms), float(np.percentile(ms, 90)), ms)


@dataclass
class Ratio:
    paired: float  # median of per-round ratios
    low: float
    high: float

    @staticmethod
    def of(a: Stats, b: Stats) -> Ratio:
        r = np.asarray(a.times) / np.asarray(b.times)
        rng = np.random.default_rng(0)
        medians = np.median(rng.choice(r, (2000, len(r))), axis=1)
        low, high = np.percentile(medians, [2.5, 97.5])
        return Ratio(float(np.median(r)), float(low), float(high))

    def __str__(self) -> str:
        return f"{self.paired:.2f} [{self.low:.2f}, {self.high:.2f}]"


def ort_session(model: onnx.ModelProto | bytes, threads: int) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads that do not spin when idle (spinning
    threads take the cores from whatever runs next in an interleaved comparison)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, Stats]:
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: Stats.of(t) for name, t in times.items()}
