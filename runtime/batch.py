"""Batch inference over a dataset, resumable: the plan, the output shards, the local engine.

The dataset's rows are cut into units (a shard, or `shard_rows` rows of it); each unit's
results become one Parquet file `part-<unit>.parquet` in the output folder, written
atomically, with a `row_id` column (the row's index in the whole dataset) and one column per
model output. A manifest (`_netc_batch.json`) records what the folder is the result of: the
model's digest and the dataset's files and row counts. A second run with the same model and
data skips the units whose file is there, so a crash loses only the units in flight, and no
row is ever written twice (a retried unit rewrites the same file). Part files sort in input
order. The engines (`local`: a thread pool of sessions here; `ray`: an actor pool, in
`batch_ray.py`) share `run_unit`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from netc.dsl.errors import NetcInputError
from netc.files import atomic_path
from netc.runtime import datasets
from netc.runtime.inputs import _NETC_SPELLING as NETC_SPELLING
from netc.runtime.inputs import InputSpec

MANIFEST = "_netc_batch.json"
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Unit:
    """Rows [start, stop) of shard `shard`; its results go to `part-<index>.parquet`."""

    index: int
    shard: int
    start: int
    stop: int
    first_row_id: int

    @property
    def file_name(self) -> str:
        return f"part-{self.index:06d}.parquet"


@dataclass
class Plan:
    """Everything a worker needs to run any unit: where the data is, how it is laid out."""

    shards: list[datasets.Shard]
    specs: list[InputSpec]
    axes: dict[str, int]  # each input's batch axis
    output_axes: dict[str, int]  # each output's batch axis
    units: list[Unit]
    out: Path
    batch_size: int
    cast_inputs: bool = False
    model_digest: str = ""
    batch_dim: str = "N"
    # Integer input values a model compiled here accepts (embed ids within the vocabulary...):
    # data rows are checked as `netc run` checks its inputs, never wrapped around.
    value_rules: list = field(default_factory=list)

    def manifest(self) -> dict:
        return {"netc_batch": 1, "model_sha256": self.model_digest, "batch_dim": self.batch_dim,
                "files": [{"name": str(s.path.resolve()), "rows": s.rows, "bytes": s.path.stat().st_size}
                          for s in self.shards],
                "units": [asdict(u) for u in self.units]}


@dataclass
class Progress:
    """Counts finished units and rows; prints a line per update on a terminal."""

    total_units: int
    total_rows: int
    done_units: int = 0
    done_rows: int = 0
    started: float = field(default_factory=time.perf_counter)
    quiet: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, rows: int) -> None:
        with self._lock:
            self.done_units += 1
            self.done_rows += rows
            if not self.quiet and sys.stderr.isatty():
                rate = self.done_rows / max(time.perf_counter() - self.started, 1e-9)
                print(f"\rnetc batch: {self.done_units}/{self.total_units} units, {self.done_rows:,}/"
                      f"{self.total_rows:,} rows, {rate:,.0f} rows/s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.quiet and sys.stderr.isatty() and self.done_units:
            print(file=sys.stderr)


@dataclass
class BatchResult:
    units: int  # units in the plan
    skipped: int  # units already done by an earlier run
    rows: int  # rows in the dataset
    seconds: float
    out: Path
    startup_seconds: float = 0.0  # of `seconds`, starting the engine (Ray) before any row ran


# --------------------------------------------------------------------------- planning
def make_plan(model_bytes: bytes, specs: Sequence[InputSpec], output_shapes: Mapping[str, Sequence],
              data: str | Path, out: str | Path, batch_dim: str = "N", batch_size: int = 256,
              shard_rows: int | None = None, cast_inputs: bool = False) -> Plan:
    """Plan the units of a dataset for a model whose inputs are `specs` and whose outputs
    have the (ONNX) shapes `output_shapes`."""
    axes = datasets.batch_axes(specs, batch_dim)
    output_axes = {}
    for name, shape in output_shapes.items():
        hits = [axis for axis, d in enumerate(shape) if d == batch_dim]
        if len(hits) != 1:
            raise NetcInputError(f"output '{name}' has no axis named {batch_dim}, so its rows cannot be told "
                                 "apart", None, ["batch inference needs every output to keep the batch axis"])
        output_axes[name] = hits[0]
    shards = datasets.scan(datasets.discover(data), specs, axes)
    units: list[Unit] = []
    first = 0
    step = shard_rows or max(s.rows for s in shards) or 1
    for k, shard in enumerate(shards):
        for start in range(0, shard.rows, step):
            stop = min(start + step, shard.rows)
            units.append(Unit(len(units), k, start, stop, first + start))
        first += shard.rows
    return Plan(shards, list(specs), axes, output_axes, units, Path(out), batch_size, cast_inputs,
                hashlib.sha256(model_bytes).hexdigest(), batch_dim)


def prepare_output(plan: Plan) -> list[Unit]:
    """Make or reopen the output folder; return the units still to do."""
    out = plan.out
    if out.exists() and not out.is_dir():
        raise NetcInputError(f"-o {out} exists and is not a folder", None, ["batch results go to a folder"])
    manifest_path = out / MANIFEST
    wanted = plan.manifest()
    if out.is_dir() and any(out.iterdir()):
        if not manifest_path.is_file():
            raise NetcInputError(f"-o {out} is a folder that netc batch did not make; refusing to write into it",
                                 None, ["choose a new or empty folder"])
        try:
            found = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise NetcInputError(f"cannot read {manifest_path}: {err}") from None
        if found != wanted:
            raise NetcInputError(f"{out} holds the results of another run (a different model, dataset or "
                                 "--shard-rows)", None, ["choose another -o folder, or delete this one to start over"])
        for stale in out.glob(".part-*.tmp"):  # a temporary left by a killed run
            stale.unlink(missing_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest_path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1))
    return [u for u in plan.units if not _is_done(out / u.file_name, u)]


def _is_done(path: Path, unit: Unit) -> bool:
    if not path.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows == unit.stop - unit.start
    except Exception:  # an unreadable part file is redone
        return False


# --------------------------------------------------------------------------- one unit
def run_unit(session, plan: Plan, unit: Unit) -> int:
    """Read the unit's rows, run them in batches of `plan.batch_size`, write its Parquet
    file atomically. Returns the number of rows."""
    from netc.runtime.run import run_session

    shard = plan.shards[unit.shard]
    session.value_rules = plan.value_rules
    try:
        inputs = datasets.read_rows(shard, unit.start, unit.stop, plan.specs, plan.axes, plan.cast_inputs)
    except NetcInputError:
        raise
    except Exception as err:
        raise NetcInputError(f"cannot read rows {unit.start}..{unit.stop} of {shard.path}: {err}") from None
    chunks: dict[str, list[np.ndarray]] = {}
    for begin in range(0, unit.stop - unit.start, plan.batch_size):
        feed = {name: _rows(a, plan.axes[name], begin, begin + plan.batch_size) for name, a in inputs.items()}
        try:
            outputs = run_session(session, feed, plan.specs)
        except NetcInputError as err:
            raise NetcInputError(f"{shard.path}, rows {unit.start + begin}..: {err.message}", None,
                                 err.hints) from None
        for name, value in outputs.items():
            chunks.setdefault(name, []).append(np.moveaxis(value, plan.output_axes[name], 0))
    rows = unit.stop - unit.start
    columns = {name: np.concatenate(parts) for name, parts in chunks.items()}
    write_part(plan.out / unit.file_name, np.arange(unit.first_row_id, unit.first_row_id + rows), columns)
    return rows


def _rows(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return array[tuple(index)]


def write_part(path: Path, row_ids: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
    """One Parquet file: `row_id`, then a column per output (a scalar per row, or Arrow's
    fixed-shape tensor type for a tensor per row). Written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(row_ids.astype(np.int64))]
    for value in columns.values():
        if value.ndim == 1:
            arrays.append(pa.array(value))
        else:
            arrays.append(pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(value)))
    table = pa.Table.from_arrays(arrays, names=["row_id", *columns])
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_results(out: str | Path) -> dict[str, np.ndarray]:
    """All part files of a finished run, concatenated in row order (for tests and users)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(out).glob("part-*.parquet"))
    columns: dict[str, list[np.ndarray]] = {}
    for part in parts:
        table = pq.read_table(part)
        for name in table.column_names:
            column = table.column(name).combine_chunks()
            value = column.to_numpy_ndarray() if isinstance(column.type, pa.FixedShapeTensorType) \
                else column.to_numpy(zero_copy_only=False)
            columns.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in columns.items()}


# --------------------------------------------------------------------------- engines
def run_local(make_session: Callable[[int], object], plan: Plan, todo: Sequence[Unit], workers: int,
              progress: Progress) -> None:
    """A pool of `workers` threads, each with its own onnxruntime session (onnxruntime
    releases the GIL while it runs); the machine's cores are split between them."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    local = threading.local()
    failed = threading.Event()  # after a failure, units not yet started are left for a re-run

    def work(unit: Unit) -> int:
        if failed.is_set():
            return 0
        try:
            if not hasattr(local, "session"):
                local.session = make_session(threads)
            rows = run_unit(local.session, plan, unit)
        except BaseException:
            failed.set()
            raise
        progress.advance(rows)
        return rows

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netc-batch") as pool:
        futures = [pool.submit(work, u) for u in todo]
        _finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()


def run_batch(model_bytes: bytes, plan: Plan, engine: str = "local", workers: int = 1,
              address: str | None = None, quiet: bool = False) -> BatchResult:
    """Run every unit not yet done with `engine`; finished units stay done."""
    from netc.runtime.session import make_session

    if engine not in ENGINES:
        raise NetcInputError(f"unknown engine '{engine}'; choose " + " or ".join(ENGINES))
    start = time.perf_counter()
    todo = prepare_output(plan)
    skipped = len(plan.units) - len(todo)
    if skipped and not quiet:
        print(f"netc batch: resuming {plan.out}: {skipped} of {len(plan.units)} units already done",
              file=sys.stderr)
    progress = Progress(len(todo), sum(u.stop - u.start for u in todo), quiet=quiet)
    try:
        if todo and engine == "local":
            import onnx

            model = onnx.load_model_from_string(model_bytes)
            run_local(lambda threads: make_session(model, "cpu", threads), plan, todo, workers, progress)
        elif todo:
            from netc.runtime.batch_ray import run_ray

            run_ray(model_bytes, plan, todo, workers, address, progress)
    finally:
        progress.close()
    rows = sum(s.rows for s in plan.shards)
    return BatchResult(len(plan.units), skipped, rows, time.perf_counter() - start, plan.out,
                       max(0.0, progress.started - start))


# --------------------------------------------------------------------------- the model's I/O
def model_io(model) -> tuple[list[InputSpec], dict[str, list[int | str]]]:
    """Input specs and output shapes of an ONNX model, read from its graph (no session)."""
    import onnx

    def shape(value) -> list[int | str]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or f"?{value.name}.{k}")
                for k, d in enumerate(dims)]

    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        elem = value.type.tensor_type.elem_type
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        except (KeyError, TypeError, ValueError):
            dtype = None
        onnx_name = onnx.TensorProto.DataType.Name(elem).lower()
        specs.append(InputSpec(value.name, dtype, tuple(shape(value)), NETC_SPELLING.get(onnx_name, onnx_name)))
    return specs, {v.name: shape(v) for v in model.graph.output}
