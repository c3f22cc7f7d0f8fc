"""The Python API: the whole pipeline as one readable function per entry point.

    parse -> elaborate (names, blocks, unrolling, shape rules) -> passes -> parameters -> lower
          -> run / bench / verify on onnxruntime
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from netc import __version__, progress
from netc.boundary import guarded
from netc.compiler.dim_bounds import MIN_SIZES_KEY, min_sizes_text
from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network
from netc.compiler.ir import Graph
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.lowering import DEFAULT_OPSET, SUPPORTED_OPSETS, lower_graph
from netc.compiler.params import drawer, materialise, read_weight_file
from netc.compiler.passes import PIPELINE
from netc.compiler.program import Program, load_program
from netc.draw_ahead import DrawAhead
from netc.dsl.errors import NetcInputError
from netc.files import atomic_path, check_output_path
from netc.model_writer import TensorSpec, external_writer, write_model

if TYPE_CHECKING:  # the runtime (onnxruntime, the reference) loads only when a model runs
    from netc.runtime.bench import BenchResult
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
    cast_weights: bool = False  # convert weights of another float dtype (else an error)


@dataclass
class Compiled:
    """The result of compiling one network."""

    graph: Graph
    params: dict[str, np.ndarray]
    model: onnx.ModelProto
    sources: tuple[str, ...] = ()  # every file the compile read (root, imports, weights): never outputs

    def save(self, path: str | Path, source: str | Path | None = None) -> Path:
        return save_model(self.model, path, source, inputs=self.sources)

    def __repr__(self) -> str:  # one line: the weights would fill a notebook
        from netc.notebook import short_repr

        return short_repr(self.graph, self.model.opset_import[0].version if self.model.opset_import else None)

    def summary(self) -> str:
        """The check table: each layer's output type, parameter count and FLOPs; totals."""
        from netc.notebook import summary

        return summary(self.graph)

    def _repr_html_(self) -> str:
        from netc.notebook import html_table

        return html_table(self.graph)


def make_options(options: CompileOptions | None, overrides: Mapping[str, Any]) -> CompileOptions:
    """`options` updated by keyword arguments: the fields of `CompileOptions` by name
    (`seed=1`, `weights=...`), `settings={...}` merged, and any other keyword a network
    parameter or dim (`classes=10`, `N=8`). A parameter named like an option (`seed`) is
    given through `settings=`."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(CompileOptions)}
    base = options or CompileOptions()
    changes = {k: v for k, v in overrides.items() if k in fields and k != "settings"}
    settings = {**base.settings, **dict(overrides.get("settings") or {}),
                **{k: v for k, v in overrides.items() if k not in fields}}
    return dataclasses.replace(base, **changes, settings=settings)


@guarded
def load(path: str | Path, source: str | None = None, allow_import_root: str | Path | None = None,
         limits: Limits = DEFAULT_LIMITS) -> Program:
    """Parse a `.net` file (or `source` text named `path`) with its imports."""
    return load_program(path, source, allow_import_root, limits)


@guarded
def build_graph(program: Program, network: str | None = None, settings: Mapping[str, Any] | None = None,
                limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Elaborate and shape-check one network, then run the IR passes."""
    defn = choose_network(program, network)
    graph = elaborate_network(program, defn, NetworkOptions(dict(settings or {}), limits))
    for run_pass in PIPELINE:
        graph = run_pass(graph)
    return graph


@guarded
def check_file(path: str | Path, settings: Mapping[str, Any] | None = None, source: str | None = None,
               allow_import_root: str | Path | None = None, limits: Limits = DEFAULT_LIMITS,
               **more_settings: Any) -> list[Graph]:
    """Check every network of a file; returns their typed IR graphs (no weights made).
    Network parameters and dims come from `settings` and keyword arguments (`classes=10`)."""
    program = load(path, source, allow_import_root, limits)
    settings = {**dict(settings or {}), **more_settings}
    return [build_graph(program, name, settings, limits) for name in program.networks]


@guarded
def compile_file(path: str | Path, options: CompileOptions | None = None, source: str | None = None,
                 include_params: bool = True, **overrides: Any) -> Compiled:
    """Compile one network of a `.net` file to an ONNX model (not written to disk); without
    `include_params`, the model leaves out the parameters' initializers (they are in
    `Compiled.params`)."""
    options = make_options(options, overrides)
    _check_opset(options)
    program, graph = _elaborate(path, source, options)
    return _weights_and_lower(path, program, graph, options, include_params)


def _elaborate(path: str | Path, source: str | None, options: CompileOptions) -> tuple[Program, Graph]:
    with progress.stage("parse"):
        program = load(path, source, options.allow_import_root, options.limits)
    with progress.stage("elaborate"):
        graph = build_graph(program, options.network, options.settings, options.limits)
    return program, graph


def _weights_and_lower(path: str | Path, program: Program, graph: Graph, options: CompileOptions,
                       include_params: bool = True) -> Compiled:
    with progress.stage("weights"):
        params = _materialise(graph, options)
    with progress.stage("lower"):
        model = lower_graph(graph, params, options.opset, _metadata(path, graph, options), seed=options.seed,
                            include_params=include_params)
    return Compiled(graph, params, model, _files_read(program, options))


def _materialise(graph: Graph, options: CompileOptions) -> dict[str, np.ndarray]:
    """Every parameter's values: from the weight file (only tensors of the expected names and
    shapes are read), the rest drawn from the seed."""
    expected = {p.name: p.shape for p in graph.params}
    weights = (read_weight_file(options.weights, expected, options.limits.max_param_bytes)
               if options.weights else None)
    source_name = f"weight file {options.weights}" if options.weights else "weights"
    return materialise(graph, options.seed, weights, source_name, cast=options.cast_weights)


@guarded
def compile_to_file(path: str | Path, output: str | Path, options: CompileOptions | None = None,
                    source: str | None = None, **overrides: Any) -> Graph:
    """Compile one network and write it to `output` (atomically), drawing each weight just
    before it is written (`netc.model_writer`): the bytes of `compile_file(...).save(output)`
    with a peak memory of a few megabytes of buffers instead of three times the model.
    Returns the network's IR graph."""
    options = make_options(options, overrides)
    _check_opset(options)
    out = check_output_path(output, path, options.weights)
    program, graph = _elaborate(path, source, options)
    out = check_output_path(output, *_files_read(program, options))  # no imported file is overwritten
    specs = [TensorSpec(p.name, tuple(p.shape), p.dtype.numpy) for p in graph.params]
    if sum(s.nbytes for s in specs) >= EXTERNAL_DATA_THRESHOLD:  # the data goes to a file of its own
        compiled = _weights_and_lower(path, program, graph, options)
        with progress.stage("save"):  # the name given: a data file goes beside it, even a link
            compiled.save(output, path)
        return graph
    with progress.stage("lower"):
        model = lower_graph(graph, {}, options.opset, _metadata(path, graph, options), seed=options.seed,
                            include_params=False)
    # One stage: the weights are drawn while the file is written.
    with progress.stage("weights + save"), atomic_path(out) as tmp:
        _stream(graph, model, options, tmp)
    return graph


def _stream(graph: Graph, model: onnx.ModelProto, options: CompileOptions, out: Path,
            write: Callable[..., int] | None = None) -> None:
    """Write `model` (lowered without its parameters) to `out` with the parameters drawn
    (or read from the weight file) one at a time, by `write` (default `write_model`;
    `model_writer.external_writer` puts the parameters in a data file)."""
    specs = [TensorSpec(p.name, tuple(p.shape), p.dtype.numpy) for p in graph.params]
    by_name = {p.name: p for p in graph.params}
    if options.weights:  # checked as a whole before anything is written
        values = _materialise(graph, options)
        with open(out, "wb") as f:
            (write or write_model)(model, specs, lambda spec: values.pop(spec.name), f)  # each freed once written
        return
    # Generated weights are drawn ahead by worker threads, piece by piece across all the
    # parameters, while the pieces before are written (netc.draw_ahead): drawing and writing
    # overlap, and the memory they take is a few pieces, whatever the size of the model.
    with DrawAhead(specs, lambda spec: drawer(by_name[spec.name], options.seed), PIECE_BYTES) as ahead, \
            open(out, "wb") as f:
        (write or write_model)(model, specs, ahead.pieces, f)


PIECE_BYTES = 4 * 2**20


def _metadata(path: str | Path, graph: Graph, options: CompileOptions) -> dict[str, str]:
    metadata = {"netc.version": __version__, "netc.source": os.path.basename(str(path)),
                "netc.network": graph.name, "netc.seed": str(options.seed)}
    if graph.min_sizes.requirement_text():
        metadata[MIN_SIZES_KEY] = min_sizes_text(graph.min_sizes.minima)
    if options.weights:
        metadata["netc.weights"] = os.path.basename(str(options.weights))
    return metadata


def _files_read(program: Program, options: CompileOptions) -> tuple[str, ...]:
    """Every file a compile read (root, imports, weights): never an output."""
    read = [key for key in program.modules if Path(key).is_absolute()]  # files, not source text
    return tuple(read + ([str(options.weights)] if options.weights else []))


def compile_source(text: str, name: str = "<string>.net", **overrides: Any) -> Compiled:
    """Compile `.net` text (imports resolve relative to the current folder)."""
    return compile_file(name, source=text, **overrides)


@guarded
def save_model(model: onnx.ModelProto, path: str | Path, source: str | Path | None = None,
               inputs: Sequence[str | Path] = ()) -> Path:
    """Write `model` atomically. A model over 2 GB keeps its tensors in a data file beside it,
    `<name>.<hash>.data`, named after its content: the data is written first under its own
    name, then the model replaces the previous one in one rename, then the previous model's
    data file goes. A failure at any point leaves the previous pair (or nothing), never a
    model with data that is not its own. `model` itself is left as it was."""
    out = check_output_path(path, source, *inputs)
    if _weight_bytes(model) < EXTERNAL_DATA_THRESHOLD:
        with atomic_path(out) as tmp:
            tmp.write_bytes(model.SerializeToString())
        return out
    # The data file goes beside the model as the user named it (a symlinked -o: beside the
    # link, where loading through that name looks for it); the model goes where the name points.
    _save_with_external_data(model, out, Path(os.path.abspath(path)))
    return out


def _weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers, from their shapes: cheaper than `ByteSize()`, which walks
    every weight. The threshold leaves headroom for the graph itself."""
    total = 0
    for tensor in model.graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        total += count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total


def model_files(path: str | Path) -> list[Path]:
    """A saved model file and the external data files it refers to (beside it)."""
    out = Path(path)  # data files lie beside the model as named (a link: beside the link)
    return [out, *(out.parent / name for name in sorted(_external_locations(out)))]


_STAGED_DATA = "tensors.data"


def _save_with_external_data(model: onnx.ModelProto, out: Path, named: Path | None = None) -> None:
    named = named or out
    folder = named.parent
    # onnx.save_model moves the tensors of the model it is given out into the data file (and
    # points the model at it): hand it a copy, so the caller's model keeps its weights.
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{named.name[:64]}.", dir=folder))
    data_path: Path | None = None
    created = replaced = False
    try:
        onnx.save_model(copy, staging / out.name, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=_STAGED_DATA, size_threshold=1024)
        staged = staging / _STAGED_DATA
        if staged.exists():
            data_name = f"{named.name}.{_file_digest(staged)}.data"
            for tensor in _all_tensors(copy.graph):
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = data_name
            (staging / out.name).write_bytes(copy.SerializeToString())
            _fsync(staged)
            data_path = folder / data_name
        _fsync(staging / out.name)
        previous = _external_locations(out)
        if data_path is not None:
            created = not data_path.exists()  # else the same content is there already
            os.replace(staged, data_path)
        if out.parent.resolve() == folder.resolve():
            os.replace(staging / out.name, out)
        else:  # a link to another folder, maybe another file system: no rename across
            with atomic_path(out) as tmp:
                shutil.copyfile(staging / out.name, tmp)
        replaced = True
    finally:
        if not replaced and created and data_path is not None:
            with contextlib.suppress(OSError):
                data_path.unlink()
        shutil.rmtree(staging, ignore_errors=True)
    for name in previous - ({data_path.name} if data_path else set()):
        if _is_own_data_name(named, name):  # a file this function wrote for the previous model
            with contextlib.suppress(OSError):
                (folder / name).unlink()


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The tensors of a graph and its subgraphs: initializers and tensor attributes."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _all_tensors(body)


def _external_locations(path: Path) -> set[str]:
    """The data files a saved model refers to; none for a model that is not there or not
    readable (a model file of 2 GiB or more holds its tensors itself)."""
    try:
        if not path.is_file() or path.stat().st_size >= 2**31:  # protobuf reads no more
            return set()
        saved = onnx.load(str(path), load_external_data=False)
    except Exception:  # not a model (any more): nothing of it to clean up
        return set()
    return {entry.value for tensor in _all_tensors(saved.graph) for entry in tensor.external_data
            if entry.key == "location"}


def _is_own_data_name(out: Path, name: str) -> bool:
    """`<model>.<hash>.data`, or `<model>.data` as earlier versions wrote, in the model's folder."""
    return re.fullmatch(re.escape(out.name) + r"(\.[0-9a-f]{16})?\.data", name) is not None


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        while chunk := f.read(2**22):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@guarded
def open_model(model: Compiled | onnx.ModelProto | str | Path, provider: str = "cpu", threads: int = 0,
               options: CompileOptions | None = None) -> tuple[Session, list[InputSpec]]:
    """An onnxruntime session and the input specs of a model: a `Compiled`, a `ModelProto`,
    a `.onnx` file, or a `.net` file (compiled with `options`)."""
    from netc.runtime.input_values import value_rules
    from netc.runtime.inputs import integer_bounds, integer_lows, specs_from_session, with_bounds
    from netc.runtime.session import make_session

    if isinstance(model, (str, Path)) and Path(model).suffix == ".net":
        model = compile_file(model, options)
    elif isinstance(model, (str, Path)) and not Path(model).is_file():
        raise NetcInputError(f"model file not found: {model}")
    compiled = model if isinstance(model, Compiled) else None
    session = make_session(compiled.model if compiled else model, provider, threads)
    if compiled is not None:  # onnxruntime's failures point at the op's source line
        session.spans = {op.label: op.span for op in compiled.graph.walk() if op.label and op.span}
        session.value_rules = value_rules(compiled.graph)
    specs = specs_from_session(session.session)
    if compiled is not None:  # integer inputs draw random values in range of the ops using them
        specs = with_bounds(specs, integer_bounds(compiled.graph), integer_lows(compiled.graph))
        session.graph = compiled.graph
    return session, specs


@guarded
def run(model: Compiled | onnx.ModelProto | str | Path, inputs: Mapping[str, np.ndarray] | None = None,
        provider: str = "cpu", threads: int = 0, random: bool = False, seed: int = 0,
        sizes: Mapping[str, int] | None = None, cast_inputs: bool = False) -> dict[str, np.ndarray]:
    """Run a model once; with `random`, inputs not given are random arrays (symbolic dims
    from `sizes`, else 1). An input of another dtype than the model's is refused unless
    `cast_inputs` (then float64 -> float32 and the like; see `netc.runtime.casting`)."""
    from netc.runtime.casting import cast_inputs as cast
    from netc.runtime.inputs import random_inputs
    from netc.runtime.run import run_session

    if inputs is not None and not isinstance(inputs, Mapping):
        raise NetcInputError(f"inputs must map input names to NumPy arrays; got {type(inputs).__name__}")
    session, specs = open_model(model, provider, threads)
    feeds = cast(specs, inputs or {}) if cast_inputs else dict(inputs or {})
    if random:
        feeds = random_inputs(specs, seed, sizes, default=1, given=feeds, minima=session.min_sizes)
    return run_session(session, feeds, specs)


@guarded
def verify_file(path: str | Path, options: CompileOptions | None = None, seeds: int | Sequence[int] = 3,
                rtol: float | None = None, atol: float | None = None, per_op: bool = False,
                provider: str = "cpu", source: str | None = None, **overrides: Any) -> VerifyReport:
    """Compile a network, then compare onnxruntime with the NumPy reference on random inputs."""
    from netc.runtime.saved_weights import SavedWeights
    from netc.runtime.verify import verify

    options = make_options(options, overrides)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise NetcInputError("verify needs at least one seed")
    _check_opset(options)
    with progress.stage("parse"):
        program = load(path, source, options.allow_import_root, options.limits)
    with progress.stage("elaborate"):
        graph = build_graph(program, options.network, options.settings, options.limits)
    if sum(p.size * p.dtype.numpy.itemsize for p in graph.params) >= EXTERNAL_DATA_THRESHOLD:
        compiled = compile_file(path, options, source, include_params=False)
        with progress.stage("verify"):
            return verify(compiled.graph, compiled.params, compiled.model, seed_list, rtol, atol, per_op,
                          options.opset, provider, params_in_model=False)
    # The weights are streamed into a data file beside the model (never all in memory);
    # onnxruntime loads the model from there and runs every seed, and only after its session
    # is gone does the reference run, reading each weight from that file just before the
    # first op that needs it (runtime/saved_weights.py).
    with progress.stage("lower"):
        model = lower_graph(graph, {}, options.opset, _metadata(path, graph, options), seed=options.seed,
                            include_params=False)
    with tempfile.TemporaryDirectory(prefix="netc-verify-") as tmp:
        model_file = Path(tmp, "model.onnx")
        with progress.stage("weights"):
            _stream(graph, model, options, model_file, external_writer(Path(tmp, "model.data")))
        with progress.stage("verify"):
            return verify(graph, SavedWeights(model_file), model, seed_list, rtol, atol, per_op, options.opset,
                          provider, params_in_model=False, model_file=model_file)


def _check_opset(options: CompileOptions) -> None:
    if options.opset not in SUPPORTED_OPSETS:
        raise NetcInputError(f"opset {options.opset} is not supported; use {SUPPORTED_OPSETS.start}.."
                             f"{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")


@guarded
def bench(model: Compiled | onnx.ModelProto | str | Path, batches: Sequence[int] | None = None,
          iterations: int | None = None, seconds: float | None = None, warmup: int = 5,
          sizes: Mapping[str, int] | None = None, batch_dim: str | None = None, provider: str = "cpu",
          threads: int = 0, seed: int = 0) -> list[BenchResult]:
    """Latency and throughput per batch size on random inputs, as `netc bench` measures
    them (the batch dim is `N`, else the first symbolic dim that is not a sequence axis,
    or `batch_dim`)."""
    from netc.runtime.bench import bench as run_bench

    session, specs = open_model(model, provider, threads)
    return run_bench(session, specs, batches, warmup, iterations, seconds, sizes, seed, batch_dim)
