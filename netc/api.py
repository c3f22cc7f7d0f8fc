"""The Python API: the whole pipeline as one readable function per entry point.

    parse -> elaborate (names, blocks, unrolling, shape rules) -> passes -> parameters -> lower
          -> run / bench / verify on onnxruntime
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from netc import __version__
from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network
from netc.compiler.ir import Graph
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.lowering import DEFAULT_OPSET, SUPPORTED_OPSETS, lower_graph
from netc.compiler.params import materialise, read_weight_file
from netc.compiler.passes import PIPELINE
from netc.compiler.program import Program, load_program
from netc.dsl.errors import NetcInputError
from netc.files import atomic_path, check_output_path

if TYPE_CHECKING:  # the runtime (onnxruntime, the reference) loads only when a model runs
    from netc.runtime.inputs import InputSpec
    from netc.runtime.session import Session
    from netc.runtime.verify import VerifyReport

EXTERNAL_DATA_THRESHOLD = 2**31 - 2**24  # protobuf's 2 GiB limit, with headroom for the graph


@dataclass
class CompileOptions:
    network: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    opset: int = DEFAULT_OPSET
    seed: int = 0
    weights: str | Path | None = None
    allow_import_root: str | Path | None = None
    limits: Limits = DEFAULT_LIMITS


@dataclass
class Compiled:
    """The result of compiling one network."""

    graph: Graph
    params: dict[str, np.ndarray]
    model: onnx.ModelProto

    def save(self, path: str | Path, source: str | Path | None = None) -> Path:
        return save_model(self.model, path, source)


def load(path: str | Path, source: str | None = None, allow_import_root: str | Path | None = None,
         limits: Limits = DEFAULT_LIMITS) -> Program:
    """Parse a `.net` file (or `source` text named `path`) with its imports."""
    return load_program(path, source, allow_import_root, limits)


def build_graph(program: Program, network: str | None = None, settings: Mapping[str, Any] | None = None,
                limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Elaborate and shape-check one network, then run the IR passes."""
    defn = choose_network(program, network)
    graph = elaborate_network(program, defn, NetworkOptions(dict(settings or {}), limits))
    for run_pass in PIPELINE:
        graph = run_pass(graph)
    return graph


def check_file(path: str | Path, settings: Mapping[str, Any] | None = None, source: str | None = None,
               allow_import_root: str | Path | None = None, limits: Limits = DEFAULT_LIMITS) -> list[Graph]:
    """Check every network of a file; returns their typed IR graphs (no weights made)."""
    program = load(path, source, allow_import_root, limits)
    return [build_graph(program, name, settings, limits) for name in program.networks]


def compile_file(path: str | Path, options: CompileOptions | None = None, source: str | None = None,
                 **overrides: Any) -> Compiled:
    """Compile one network of a `.net` file to an ONNX model (not written to disk)."""
    options = options or CompileOptions(**overrides)
    if options.opset not in SUPPORTED_OPSETS:
        raise NetcInputError(f"opset {options.opset} is not supported; use {SUPPORTED_OPSETS.start}.."
                             f"{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    program = load(path, source, options.allow_import_root, options.limits)
    graph = build_graph(program, options.network, options.settings, options.limits)
    weights = read_weight_file(options.weights) if options.weights else None
    source_name = f"weight file {options.weights}" if options.weights else "weights"
    params = materialise(graph, options.seed, weights, source_name)
    metadata = {"netc.version": __version__, "netc.source": os.path.basename(str(path)),
                "netc.network": graph.name, "netc.seed": str(options.seed)}
    if options.weights:
        metadata["netc.weights"] = os.path.basename(str(options.weights))
    model = lower_graph(graph, params, options.opset, metadata)
    return Compiled(graph, params, model)


def compile_source(text: str, name: str = "<string>.net", **overrides: Any) -> Compiled:
    """Compile `.net` text (imports resolve relative to the current folder)."""
    return compile_file(name, source=text, **overrides)


def save_model(model: onnx.ModelProto, path: str | Path, source: str | Path | None = None) -> Path:
    """Write `model` atomically; models over 2 GB keep their tensors in `<name>.data` beside it."""
    out = check_output_path(path, source)
    if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
        with atomic_path(out) as tmp:
            tmp.write_bytes(model.SerializeToString())
        return out
    data_name = out.name + ".data"
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
    try:
        onnx.save_model(model, staging / out.name, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        os.replace(staging / data_name, out.parent / data_name)
        os.replace(staging / out.name, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def open_model(model: Compiled | onnx.ModelProto | str | Path, provider: str = "cpu", threads: int = 0,
               options: CompileOptions | None = None) -> tuple[Session, list[InputSpec]]:
    """An onnxruntime session and the input specs of a model: a `Compiled`, a `ModelProto`,
    a `.onnx` file, or a `.net` file (compiled with `options`)."""
    from netc.runtime.inputs import integer_bounds, specs_from_session, with_bounds
    from netc.runtime.session import make_session

    if isinstance(model, (str, Path)) and Path(model).suffix == ".net":
        model = compile_file(model, options)
    elif isinstance(model, (str, Path)) and not Path(model).is_file():
        raise NetcInputError(f"model file not found: {model}")
    compiled = model if isinstance(model, Compiled) else None
    session = make_session(compiled.model if compiled else model, provider, threads)
    specs = specs_from_session(session.session)
    if compiled is not None:  # integer inputs draw random values in range of the ops using them
        specs = with_bounds(specs, integer_bounds(compiled.graph))
    return session, specs


def run(model: Compiled | onnx.ModelProto | str | Path, inputs: Mapping[str, np.ndarray] | None = None,
        provider: str = "cpu", threads: int = 0, random: bool = False, seed: int = 0,
        sizes: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Run a model once; with `random`, inputs not given are random arrays (symbolic dims
    from `sizes`, else 1)."""
    from netc.runtime.inputs import random_inputs
    from netc.runtime.run import run_session

    session, specs = open_model(model, provider, threads)
    feeds = dict(inputs or {})
    if random:
        feeds = random_inputs(specs, seed, sizes, default=1, given=feeds)
    return run_session(session, feeds, specs)


def verify_file(path: str | Path, options: CompileOptions | None = None, seeds: int | Sequence[int] = 3,
                rtol: float | None = None, atol: float | None = None, per_op: bool = False,
                provider: str = "cpu", source: str | None = None, **overrides: Any) -> VerifyReport:
    """Compile a network, then compare onnxruntime with the NumPy reference on random inputs."""
    from netc.runtime.verify import verify

    options = options or CompileOptions(**overrides)
    compiled = compile_file(path, options, source)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise NetcInputError("verify needs at least one seed")
    return verify(compiled.graph, compiled.params, compiled.model, seed_list, rtol, atol, per_op,
                  options.opset, provider)
