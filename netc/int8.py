"""The int8 paths of `netc compile --quantize` and `netc verify --against-f32`."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from netc import api
from netc.compiler.ir import Graph
from netc.dsl.errors import NetcInputError, NetcVerifyError
from netc.files import atomic_path
from netc.runtime.against_f32 import compare_sessions, format_report
from netc.runtime.quantize import quantize_file, read_npz

RANDOM_BATCH = 32  # rows per random draw: enough for a top-1 agreement figure per seed


def compile_quantized(source: Path, out: Path, options: api.CompileOptions, mode: str | None,
                      calibrate: str | None, quantize_all: bool = False) -> Graph:
    """Compile the f32 model to a temporary file, quantize it into `out` (atomically);
    the output layers stay f32 unless `quantize_all`."""
    if mode is None:
        raise NetcInputError("--calibrate needs --quantize static" if calibrate
                             else "--quantize-all needs --quantize dynamic or --quantize static")
    calibration = read_npz(calibrate, "calibration file") if calibrate else None
    with tempfile.TemporaryDirectory(prefix="netc-f32-") as tmp:
        f32 = Path(tmp) / "f32.onnx"
        graph = api.compile_to_file(source, f32, options)
        with atomic_path(out) as target:
            quantize_file(f32, target, mode, calibration, quantize_all=quantize_all)
    return graph


def verify_against_f32(source: Path, options: api.CompileOptions, quantized: str | None, data: str | None,
                       seeds: int) -> int:
    from netc.runtime.session import make_session

    if quantized is None:
        raise NetcInputError("--data applies to --against-f32 QUANT.onnx")
    if not Path(quantized).is_file():
        raise NetcInputError(f"model file not found: {quantized}")
    compiled = api.compile_file(source, options)
    _check_same_origin(quantized, compiled.model)
    f32 = make_session(compiled.model).session
    quant = make_session(quantized).session
    if data is not None:
        arrays = read_npz(data, "data file")
        feeds: Iterator[dict[str, np.ndarray]] = _batches(arrays, [i.name for i in f32.get_inputs()])
    else:
        feeds = random_feeds(compiled.graph, f32, seeds)
    report = compare_sessions(f32, quant, feeds, compiled.graph.name)
    print(format_report(report, quantized))
    if not report.ok:
        raise NetcVerifyError(f"{quantized} departs from the f32 model beyond the tolerance", None,
                              ["static quantization: calibrate on more representative data",
                               "or use --quantize dynamic"])
    return 0


def random_feeds(graph: Graph, session, seeds: int) -> Iterator[dict[str, np.ndarray]]:
    """One random draw of batch RANDOM_BATCH per seed for `session`'s inputs. Integer inputs
    draw values in range of the ops using them (word ids below an embedding's vocabulary
    size), as `netc verify`'s own random inputs do."""
    from netc.runtime.inputs import (
        integer_bounds,
        integer_lows,
        random_inputs,
        specs_from_session,
        with_bounds,
    )

    specs = with_bounds(specs_from_session(session), integer_bounds(graph), integer_lows(graph))
    return (random_inputs(specs, seed, default=RANDOM_BATCH) for seed in range(seeds))


def _batches(arrays: dict[str, np.ndarray], names: list[str], batch: int = 32) -> Iterator[dict[str, np.ndarray]]:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise NetcInputError(f"data file has no array for input(s) {', '.join(missing)}")
    count = len(arrays[names[0]]) if names else 0
    for start in range(0, count, batch):
        yield {n: arrays[n][start:start + batch] for n in names}


def _check_same_origin(path: str, f32) -> None:
    """The quantized model must come from the same network, seed and weights."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    want = {p.key: p.value for p in f32.metadata_props}
    for key in ("netc.network", "netc.seed", "netc.weights"):
        if key in meta and meta.get(key) != want.get(key):
            raise NetcInputError(f"{path} was compiled with {key.split('.')[1]} {meta[key]!r}, "
                                 f"the f32 model here with {want.get(key)!r}", None,
                                 ["pass the same --network/--seed/--weights as to compile --quantize"])
