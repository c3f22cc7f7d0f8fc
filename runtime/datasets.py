"""Datasets for batch inference: a folder (or one file) of `.npy`/`.npz` shards or Parquet
files, read as rows along each input's batch axis.

A shard holds a whole number of rows. `.npz` keys and Parquet columns are the model's input
names; a `.npy` shard serves a model with one input. NumPy shards are in the model's own
layout (the rows lie on the batch axis, wherever the model has it: axis 1 of a time-major
`[T, N, D]` input); a Parquet cell holds one row's tensor (nested lists, Arrow's
`fixed_shape_tensor`, or a scalar). Row counts come from headers and metadata, so planning
reads no data; a unit of work then reads only the rows it needs (memory-mapped `.npy`, the
Parquet row groups that hold them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netc.dsl.errors import NetcInputError, did_you_mean, first_line
from netc.runtime.inputs import InputSpec

FORMATS = (".npy", ".npz", ".parquet")
MAX_SHARD_BYTES = 64 * 2**30  # one NumPy shard: `.npy` is memory-mapped, a `.npz` member read whole


@dataclass(frozen=True)
class Shard:
    """One file of the dataset: its path, format and number of rows."""

    path: Path
    rows: int

    @property
    def kind(self) -> str:
        return self.path.suffix


def batch_axes(specs: Sequence[InputSpec], batch_dim: str) -> dict[str, int]:
    """The axis of each input that holds the rows: the one whose dim is named `batch_dim`."""
    axes: dict[str, int] = {}
    for spec in specs:
        hits = [axis for axis, d in enumerate(spec.shape) if d == batch_dim]
        if len(hits) != 1:
            dims = sorted({d for s in specs for d in s.shape if isinstance(d, str)})
            raise NetcInputError(
                f"input '{spec.name}' ({spec}) has no axis named {batch_dim}: batch inference splits every "
                "input into rows along its batch axis", None,
                [f"name the batch dim with --batch-dim (symbolic dims of this model: {', '.join(dims) or 'none'})"])
        axes[spec.name] = hits[0]
    return axes


def discover(data: str | Path) -> list[Path]:
    """The dataset's files in order: `data` itself, or the supported files of the folder
    sorted by name (so `part-00010` follows `part-00009`)."""
    root = Path(data)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted((p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: p.name)
        files = [p for p in files if p.suffix in FORMATS]
        if not files:
            raise NetcInputError(f"dataset folder {root} holds no {', '.join(FORMATS)} files")
    else:
        raise NetcInputError(f"dataset not found: {data}")
    kinds = {p.suffix for p in files}
    if not kinds <= set(FORMATS):
        raise NetcInputError(f"{files[0]} is not a dataset file; expected {', '.join(FORMATS)}")
    if len(kinds) > 1:
        raise NetcInputError(f"dataset {root} mixes formats ({', '.join(sorted(kinds))}); keep one per dataset")
    return files


def scan(files: Sequence[Path], specs: Sequence[InputSpec], axes: Mapping[str, int]) -> list[Shard]:
    """Row counts of every file, from headers and metadata only."""
    return [Shard(path, _count_rows(path, specs, axes)) for path in files]


def _count_rows(path: Path, specs: Sequence[InputSpec], axes: Mapping[str, int]) -> int:
    names = [s.name for s in specs]
    if path.suffix == ".parquet":
        pq = _pyarrow_parquet()
        try:
            meta = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
            raise NetcInputError(f"cannot read {path} as Parquet: {first_line(err, 300)}") from None
        columns = meta.schema_arrow.names
        _check_names(path, names, columns, "column")
        return meta.metadata.num_rows
    shapes = _npy_headers(path, names)
    counts = {name: shape[axes[name]] if len(shape) > axes[name] else None for name, shape in shapes.items()}
    for name, count in counts.items():
        spec = next(s for s in specs if s.name == name)
        if count is None or len(shapes[name]) != len(spec.shape):
            raise NetcInputError(f"{path}: '{name}' has shape {list(shapes[name])}; the model expects {spec}")
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{n}: {c}" for n, c in counts.items())
        raise NetcInputError(f"{path}: the inputs disagree on the number of rows ({detail})")
    return next(iter(counts.values()))


def _npy_headers(path: Path, names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays of a `.npy`/`.npz` file, read from their headers alone; each
    header's claim is checked against the bytes the file holds (netc.array_files), so the
    rows read later are really there."""
    from netc.array_files import array_headers

    if path.suffix == ".npy" and len(names) != 1:
        raise NetcInputError(f"{path}: a .npy shard serves a model with one input; this one has "
                             f"{len(names)} ({', '.join(names)})", None, ["use .npz shards keyed by input name"])
    headers = array_headers(path, MAX_SHARD_BYTES, NetcInputError)
    if path.suffix == ".npy":
        return {names[0]: next(iter(headers.values()))[0]}
    _check_names(path, names, list(headers), "array")
    return {name: headers[name][0] for name in names}


def _check_names(path: Path, names: Sequence[str], present: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in present]
    extra = [p for p in present if p not in names]
    if missing:
        hint = did_you_mean(missing[0], extra) if extra else None
        raise NetcInputError(f"{path} has no {what} for input{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}", None,
                             [hint or "", f"{what}s present: {', '.join(present) or 'none'}"])
    if extra:
        raise NetcInputError(f"{path} has {what}s the model does not take: {', '.join(extra)}", None,
                             [f"model inputs: {', '.join(names)}"])


def read_rows(shard: Shard, start: int, stop: int, specs: Sequence[InputSpec], axes: Mapping[str, int],
              cast: bool = False) -> dict[str, np.ndarray]:
    """Rows [start, stop) of `shard` as model inputs (rows on each input's batch axis)."""
    if shard.kind == ".parquet":
        arrays = _parquet_rows(shard.path, start, stop, specs, axes)
    elif shard.kind == ".npy":
        data = np.load(shard.path, mmap_mode="r", allow_pickle=False)
        arrays = {specs[0].name: _take(data, axes[specs[0].name], start, stop)}
    else:  # sizes checked before anything is decompressed (netc.array_files)
        from netc.array_files import read_npz

        archive = read_npz(shard.path, MAX_SHARD_BYTES, {s.name: (None,) * len(s.shape) for s in specs},
                           NetcInputError)
        arrays = {s.name: _take(archive[s.name], axes[s.name], start, stop) for s in specs}
    return {s.name: _dtype(shard.path, s, arrays[s.name], cast) for s in specs}


def _take(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return np.ascontiguousarray(array[tuple(index)])


def _dtype(path: Path, spec: InputSpec, array: np.ndarray, cast: bool) -> np.ndarray:
    if spec.dtype is None or array.dtype == spec.dtype:
        return array
    if cast and np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
        return array.astype(spec.dtype)
    raise NetcInputError(f"{path}: '{spec.name}' holds {array.dtype}; the model expects {spec}", None,
                         ["convert the data, or pass --cast-inputs to convert float64 to float32 and the like"])


def _parquet_rows(path: Path, start: int, stop: int, specs: Sequence[InputSpec],
                  axes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Read only the row groups that hold [start, stop), then slice them."""
    pq = _pyarrow_parquet()
    file = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for g in range(file.metadata.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    names = [s.name for s in specs]
    table = file.read_row_groups(groups, columns=names).slice(start - (first or 0), stop - start)
    out = {}
    for spec in specs:
        rows = _column_rows(path, spec, table.column(spec.name))
        out[spec.name] = np.moveaxis(rows, 0, axes[spec.name]) if rows.ndim > 1 else rows
    return out


def _column_rows(path: Path, spec: InputSpec, column) -> np.ndarray:
    """A Parquet column as one array [rows, *row shape]: fixed-shape tensors, nested lists
    of equal lengths, or scalars."""
    import pyarrow as pa

    column = column.combine_chunks()
    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    shape = [len(column)]
    values = column
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or \
            pa.types.is_fixed_size_list(values.type):
        lengths = np.asarray(values.value_lengths() if not pa.types.is_fixed_size_list(values.type)
                             else [values.type.list_size] * len(values))
        if values.null_count or (lengths.size and (lengths != lengths[0]).any()):
            raise NetcInputError(f"{path}: column '{spec.name}' has rows of different lengths", None,
                                 ["pad the rows of one file to one shape (and give their lengths as an input)"])
        shape.append(int(lengths[0]) if lengths.size else 0)
        values = values.flatten()
    if values.null_count:
        raise NetcInputError(f"{path}: column '{spec.name}' has missing values")
    return values.to_numpy(zero_copy_only=False).reshape(shape)


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise NetcInputError("Parquet needs pyarrow, which is not installed", None,
                             ["install the extra: pip install 'netc[batch]'"]) from None
    return pq
