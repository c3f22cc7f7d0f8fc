"""Latency and throughput of a model on onnxruntime, per batch size.

The batch dim is the dim named `N` (the language's batch convention), else the first
symbolic dim that is not a sequence axis (`T`, `S`, `L`, `time`, `seq`...), or the one
named with `--batch-dim`; other symbolic dims take the sizes given (default 1). Each batch
size gets its own random inputs, some warm-up runs, then timed runs: a fixed count, or as
many as fit in a time budget. Every JSON figure carries its unit in its key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from netc import progress
from netc.boundary import is_onnxruntime_error
from netc.dsl.errors import NetcInputError
from netc.runtime.inputs import InputSpec, random_inputs
from netc.runtime.ort_errors import translate
from netc.runtime.session import Session

MIN_TIMED_RUNS = 5  # a time budget still gets at least this many runs
RELIABLE_RUNS = 20  # fewer timed runs than this: the percentiles are noted as unreliable
BATCH_NAME = "N"
# Names of sequence axes (time-major models lead with them): never taken as the batch.
SEQUENCE_NAMES = ("T", "S", "L", "time", "times", "steps", "seq", "seq_len", "length", "len", "frames")


@dataclass
class BenchResult:
    batch: int | None  # None: the model has no batch dim
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    samples_per_s: float  # throughput: batch elements per second
    provider: str
    threads: int | None  # None: onnxruntime's default

    def as_dict(self) -> dict:
        return asdict(self)


def _plain_dims(specs: Sequence[InputSpec]) -> list[str]:
    """Symbolic dims that are plain names (`N`, not `2*T`), in order of appearance."""
    names: list[str] = []
    for spec in specs:
        names += [d for d in spec.shape if isinstance(d, str) and d.isidentifier() and d not in names]
    return names


def is_sequence_axis(name: str) -> bool:
    low = name.lower()
    return name in SEQUENCE_NAMES or low in SEQUENCE_NAMES or low.startswith(("seq", "time"))


def batch_dim(specs: Sequence[InputSpec], chosen: str | None = None) -> str | None:
    """The batch dim: `chosen` (checked), else `N`, else the first symbolic dim that is not
    a sequence axis; None when there is none."""
    names = _plain_dims(specs)
    if chosen is not None:
        if chosen not in names:
            raise NetcInputError(f"--batch-dim {chosen}: the model has no symbolic dim named '{chosen}'", None,
                                 ["symbolic dims: " + (", ".join(names) or "none")])
        return chosen
    if BATCH_NAME in names:
        return BATCH_NAME
    return next((n for n in names if not is_sequence_axis(n)), None)


def warnings_for(results: Sequence[BenchResult]) -> list[str]:
    """Notes on figures that rest on too few runs to mean much."""
    few = sorted({r.iterations for r in results if r.iterations < RELIABLE_RUNS})
    if not few:
        return []
    return [f"the percentiles rest on only {', '.join(map(str, few))} timed run(s) per batch size; "
            f"use --iterations {RELIABLE_RUNS} or more (p99 needs about 100 to mean much)"]


def bench(session: Session, specs: Sequence[InputSpec], batches: Sequence[int] | None = None, warmup: int = 5,
          iterations: int | None = None, seconds: float | None = None, sizes: Mapping[str, int] | None = None,
          seed: int = 0, batch_name: str | None = None) -> list[BenchResult]:
    """Time `session` at each batch size (default: the batch dim's size in `sizes`, else 1);
    `iterations` or `seconds` (default 1 s) bounds the timed runs. `batch_name` chooses the
    batch dim (default: see `batch_dim`)."""
    if iterations is not None and iterations < 1:
        raise NetcInputError("--iterations must be at least 1")
    if seconds is not None and seconds <= 0:
        raise NetcInputError("--seconds must be positive")
    if warmup < 0:
        raise NetcInputError("--warmup must not be negative")
    if iterations is None and seconds is None:
        seconds = 1.0
    sizes = dict(sizes or {})
    batch_name = batch_dim(specs, batch_name)
    least = session.min_sizes.get(batch_name, 1) if batch_name else 1  # the model's least batch size
    if batches is None:
        batches = [sizes.get(batch_name, least) if batch_name else 1]
    if not batches:
        raise NetcInputError("--batch needs at least one size")
    if batch_name is None and (len(batches) > 1 or batches[0] != 1):
        raise NetcInputError("the model has no symbolic batch dim (its first input is "
                             f"{specs[0] if specs else 'missing'}), so it runs at one batch size only",
                             None, ["drop --batch, or keep a symbolic batch dim (input x: f32[N, ...]) "
                                    "and do not fix it with --set"])
    if batch_name is not None and batch_name in sizes and (len(batches) > 1 or batches[0] != sizes[batch_name]):
        raise NetcInputError(f"--set {batch_name}={sizes[batch_name]} fixes the batch dim; choose batch sizes "
                             "with --batch instead")
    names = [o.name for o in session.session.get_outputs()]
    results = []
    for batch in batches:
        if batch < 1:
            raise NetcInputError(f"batch sizes are positive; got {batch}")
        if batch < least:
            raise NetcInputError(f"batch size {batch} is below the least size the model needs ({batch_name} ≥ {least})",
                                 None, [f"use --batch {least} or more"])
        env = {**sizes, batch_name: batch} if batch_name is not None else sizes
        feeds = random_inputs(specs, seed, env, default=1, minima=session.min_sizes)

        def run_once(feeds=feeds, batch=batch) -> None:
            try:
                session.session.run(names, feeds)
            except Exception as err:  # onnxruntime's own error types: name the op and the inputs
                if is_onnxruntime_error(err):
                    raise translate(err, specs, feeds, session.graph,
                                    f"onnxruntime failed at batch size {batch}", session.spans) from None
                raise

        with progress.stage(f"batch {batch}"):
            for _ in range(warmup):
                run_once()
            times = _timed_runs(run_once, iterations, seconds)
        ms = np.asarray(times) * 1e3
        samples = batch if batch_name is not None else 1
        results.append(BenchResult(
            batch=batch if batch_name is not None else None, iterations=len(times),
            p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), min_ms=float(ms.min()),
            samples_per_s=samples / (float(ms.mean()) / 1e3), provider=session.provider,
            threads=session.threads or None))
    return results


def _timed_runs(run, iterations: int | None, seconds: float | None) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        if iterations is not None:
            if len(times) >= iterations:
                return times
        elif time.perf_counter() - start >= seconds and len(times) >= MIN_TIMED_RUNS:
            return times


def format_table(results: Sequence[BenchResult], batch_name: str | None) -> str:
    threads = results[0].threads if results else None
    thread_text = str(threads) if threads else f"onnxruntime default ({os.cpu_count()} cpus visible)"
    lines = [f"provider {results[0].provider if results else '?'}, threads {thread_text}"]
    header = [f"batch ({batch_name})" if batch_name else "batch", "runs", "p50 ms", "p90 ms", "p99 ms",
              "mean ms", "samples/s"]
    rows = [[str(r.batch if r.batch is not None else "-"), str(r.iterations), f"{r.p50_ms:.3f}",
             f"{r.p90_ms:.3f}", f"{r.p99_ms:.3f}", f"{r.mean_ms:.3f}", f"{r.samples_per_s:,.1f}"] for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    return "\n".join(lines)


def to_json(results: Sequence[BenchResult], model: str, batch_name: str | None) -> str:
    """Every figure's unit is in its key (`_ms`, `samples_per_s`) or is a count (`batch`,
    `iterations`: timed runs, `threads`, `cpus`)."""
    return json.dumps({"model": model, "batch_dim": batch_name, "cpus": os.cpu_count(),
                       "results": [r.as_dict() for r in results], "warnings": warnings_for(results)},
                      indent=2)
