"""A Triton Inference Server model repository for a compiled model:
`REPO/<name>/config.pbtxt` and `REPO/<name>/1/model.onnx`, for Triton's onnxruntime backend.

Triton batches along a leading axis it adds itself: `max_batch_size > 0` says the model
takes that axis, and then `dims` leave it out. That holds when every input and output has
the batch dim (`N`) first; otherwise `max_batch_size` is 0 and `dims` are the full shapes.
A symbolic dim is -1. The config is written in protobuf text format (Triton's
`ModelConfig`); the tests parse it with Triton's own message definition.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from netc.dsl.errors import NetcInputError

TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.STRING: "TYPE_STRING",
}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonConfig:
    name: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    dynamic_batching: bool
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    instances: int
    kind: str  # KIND_CPU | KIND_GPU

    def to_pbtxt(self) -> str:
        lines = [f'name: "{self.name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {self.max_batch_size}"]
        for field, tensors in (("input", self.inputs), ("output", self.outputs)):
            entries = [f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n'
                       f'    dims: [ {", ".join(map(str, t.dims))} ]\n  }}' for t in tensors]
            lines.append(f"{field} [\n" + ",\n".join(entries) + "\n]")
        if self.dynamic_batching:
            body = "".join(f"  preferred_batch_size: {b}\n" for b in self.preferred_batch_sizes)
            lines.append(f"dynamic_batching {{\n{body}  max_queue_delay_microseconds: {self.max_queue_delay_us}\n}}")
        lines.append(f"instance_group [\n  {{\n    count: {self.instances}\n    kind: {self.kind}\n  }}\n]")
        return "\n".join(lines) + "\n"


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _tensor(value: onnx.ValueInfoProto, batched: bool) -> TensorConfig:
    elem = value.type.tensor_type.elem_type
    if elem not in TRITON_TYPES:
        raise NetcInputError(f"'{value.name}' has ONNX type {onnx.TensorProto.DataType.Name(elem)}, which "
                             "Triton cannot carry")
    dims = _dims(value)[1:] if batched else _dims(value)
    return TensorConfig(value.name, TRITON_TYPES[elem], tuple(d if isinstance(d, int) else -1 for d in dims))


def make_config(model: onnx.ModelProto, name: str, max_batch: int | None = None, dynamic_batching: bool = False,
                instances: int = 1, kind: str = "KIND_CPU", batch_dim: str = "N",
                max_queue_delay_us: int = 100) -> TritonConfig:
    """The Triton config of `model`: batched along `batch_dim` when every input and output
    has it first."""
    if not _NAME.fullmatch(name):
        raise NetcInputError(f"--name {name!r}: a Triton model name uses letters, digits, '_', '.' and '-'")
    values = [*model.graph.input, *model.graph.output]
    initializers = {t.name for t in model.graph.initializer}
    values = [v for v in values if v.name not in initializers]
    batchable = bool(values) and all(_dims(v)[:1] == [batch_dim] for v in values)
    if not batchable:
        if dynamic_batching or max_batch:
            lead = ", ".join(f"{v.name}: [{', '.join(map(str, _dims(v)))}]" for v in values)
            raise NetcInputError(
                f"the model cannot be batched by Triton: not every input and output has {batch_dim} as its "
                f"first axis ({lead})", None,
                ["drop --max-batch/--dynamic-batching (Triton then sends whole tensors), or name the batch "
                 "dim with --batch-dim"])
        max_batch_size = 0
    else:
        max_batch_size = max_batch or 32
    inputs = tuple(_tensor(v, batchable) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor(v, batchable) for v in model.graph.output)
    # No preferred_batch_size: Triton's guide advises leaving it out unless a size is known
    # to run faster; the batcher then forms the largest batch the delay allows.
    return TritonConfig(name, max_batch_size, inputs, outputs, dynamic_batching, (),
                        max_queue_delay_us, instances, kind)


def export_repository(model_files: Sequence[Path], repo: Path, config: TritonConfig) -> Path:
    """Write `repo/<name>/` whole or not at all: built in a temporary folder beside it, then
    renamed into place. An existing model folder is never replaced. `model_files` is the
    model file, then the external data files it names (kept under their names)."""
    target = repo / config.name
    if target.exists() or target.is_symlink():
        raise NetcInputError(f"{target} exists already; refusing to replace it", None,
                             ["choose another --name, or remove the folder"])
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config.name}.", dir=repo))
    try:
        version = staging / "1"
        version.mkdir()
        for k, file in enumerate(model_files):
            dest = version / ("model.onnx" if k == 0 else file.name)
            shutil.copyfile(file, dest)
        (staging / "config.pbtxt").write_text(config.to_pbtxt())
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def model_name(path: Path) -> str:
    """A Triton model name from a file name: its stem with other characters as '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "model"


def describe(config: TritonConfig) -> Sequence[str]:
    batching = (f"max_batch_size {config.max_batch_size}"
                + (", dynamic batching" if config.dynamic_batching else "")) if config.max_batch_size \
        else "no batching by Triton (max_batch_size 0)"
    return [batching, f"{config.instances} instance(s), {config.kind}"]
