"""onnxruntime sessions: provider choice with an explicit, reported fallback."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from netc.dsl.errors import NetcInputError, first_line

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# onnxruntime prints its own (ANSI-coloured) log line for every failed run; netc reports the
# failure itself, so only fatal messages get through.
ort.set_default_logger_severity(4)


@dataclass
class Session:
    session: ort.InferenceSession
    provider: str  # the provider actually used: cpu | cuda
    threads: int
    graph: Any = None  # the netc IR graph, when compiled here: run-time errors then cite its source
    min_sizes: dict[str, int] = field(default_factory=dict)  # least sizes of symbolic dims (metadata)
    spans: dict = field(default_factory=dict)  # op label -> source span, for a model compiled from .net
    value_rules: list = field(default_factory=list)  # integer input values a .net model accepts
    shared: tuple = ()  # OrtValues over caller arrays the session reads: alive as long as it is

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]


def available_providers() -> list[str]:
    names = set(ort.get_available_providers())
    return [short for short, full in PROVIDERS.items() if full in names]


def make_session(model: onnx.ModelProto | str | Path, provider: str = "cpu", threads: int = 0,
                 optimized_model_path: str | None = None, warn=None,
                 initializers: Mapping[str, np.ndarray] | None = None,
                 level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                 config: Mapping[str, str] | None = None) -> Session:
    """A session on `provider`; asking for CUDA where it is missing falls back to CPU and says so.

    `initializers` are tensors the model reads but does not hold (a model lowered without
    its parameters): the session uses the arrays' memory, without a copy. `level` is the
    graph optimization level and `config` extra session configuration entries."""
    if provider not in PROVIDERS:
        raise NetcInputError(f"unknown provider '{provider}'; choose " + " or ".join(PROVIDERS))
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    used = provider
    if provider == "cuda" and "cuda" not in available_providers():
        warn("netc: note: the CUDA provider is not available in this onnxruntime; running on CPU")
        used = "cpu"
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    options.log_severity_level = 4  # fatal only: netc reports failures itself, without ANSI noise
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if optimized_model_path:
        options.optimized_model_filepath = optimized_model_path
    shared = []
    if initializers:
        if not isinstance(model, onnx.ModelProto):
            raise ValueError("initializers are given with a ModelProto")
        model = with_external_placeholders(model, initializers)
        names = list(initializers)
        shared = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(initializers[n])) for n in names]
        options.add_external_initializers(names, shared)
    providers = [PROVIDERS[used]] + (["CPUExecutionProvider"] if used != "cpu" else [])
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        if isinstance(model, onnx.ModelProto):
            raise
        raise NetcInputError(f"onnxruntime cannot load {model}: {first_line(err, 300)}") from None
    actual = session.get_providers()[0]
    if used == "cuda" and actual != PROVIDERS["cuda"]:
        warn("netc: note: the CUDA provider failed to initialise; running on CPU")
        used = "cpu"
    from netc.runtime.inputs import min_sizes_of

    return Session(session, used, threads, min_sizes=min_sizes_of(session), shared=tuple(shared))


def with_external_placeholders(model: onnx.ModelProto, arrays: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` (lowered without these tensors) whose initializers name `arrays` as
    external data: the session takes their values from `add_external_initializers`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for name, array in arrays.items():
        tensor = out.graph.initializer.add()
        tensor.name = name
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", "netc-in-memory"), ("offset", "0"), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return out
