"""int8 models through onnxruntime's quantization tools (nothing is reimplemented here).

- `dynamic`: `quantize_dynamic`: weights int8 ahead of time, activations quantized at run
  time per tensor (MatMul/Gemm -> MatMulInteger, LSTM -> DynamicQuantizeLSTM, Conv ->
  ConvInteger). No data needed; suits dense and recurrent networks.
- `static`: `quantize_static` in QDQ form (QuantizeLinear/DequantizeLinear pairs that
  onnxruntime fuses into QLinearConv, QLinearMatMul, ...), int8 weights per channel and
  activation ranges calibrated (MinMax) on the user's data: an `.npz` file holding, for
  each model input, an array whose axis 0 is the batch; it is fed in batches of
  `calibration_batch`. Suits convolutional networks.

By default the layer that computes each output (a classifier's last dense layer: the
MatMul, Gemm or Conv that an output is read from through a softmax, bias, reshape...)
stays f32, as is usual practice for int8 models: it holds few of the weights, and
quantizing it adds error right where the classes are decided (measured, with its cost in
time, in benchmarks/README.md). `quantize_all=True` (`--quantize-all`) quantizes it too.

Imported only by `netc compile --quantize` and `netc verify --against-f32`: compiling an
f32 model never loads onnxruntime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from netc.dsl.errors import NetcInputError

MODES = ("dynamic", "static")


def read_npz(path: str | Path, what: str = "data file") -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise NetcInputError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, AttributeError) as err:
        raise NetcInputError(f"cannot read {what} {path}: {err}", None,
                             ["save the arrays by input name with numpy.savez(path, image=...)"]) from None


class NpzCalibrationReader:
    """onnxruntime's CalibrationDataReader over user arrays: batches along axis 0."""

    def __init__(self, data: Mapping[str, np.ndarray], input_names: list[str], batch: int = 8):
        missing = [n for n in input_names if n not in data]
        if missing:
            raise NetcInputError(f"calibration data has no array for input(s) {', '.join(missing)}; "
                                 f"it holds {', '.join(sorted(data)) or 'nothing'}")
        sizes = {len(data[n]) for n in input_names}
        if len(sizes) != 1 or 0 in sizes:
            raise NetcInputError("calibration arrays must have the same, non-zero length along axis 0 "
                                 f"(the batch); got {', '.join(f'{n}: {len(data[n])}' for n in input_names)}")
        self.data = {n: np.ascontiguousarray(data[n]) for n in input_names}
        self.count = sizes.pop()
        self.batch = batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, self.count, self.batch):
            yield {n: a[start:start + self.batch] for n, a in self.data.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


# Ops between an output and the layer that computes it: an activation, a bias, a change of
# layout. `output_layers` walks back through them.
_PASS_THROUGH = frozenset({"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Relu", "Add", "Reshape", "Transpose",
                           "Identity", "Flatten", "Squeeze", "Unsqueeze", "Cast"})
_LAYERS = frozenset({"MatMul", "Gemm", "Conv"})


def output_layers(model) -> list[str]:
    """Names of the nodes that compute the graph's outputs: for each output, the first
    MatMul/Gemm/Conv with a constant weight reached backwards through `_PASS_THROUGH` ops
    (an Add's constant operand is its bias: the walk follows the other one; an Add of two
    activations, a residual sum, has no one layer behind it and ends the walk)."""
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    found: list[str] = []
    for out in graph.output:
        name = out.name
        while name in producer:
            node = producer[name]
            if node.op_type in _LAYERS:
                if len(node.input) > 1 and node.input[1] in consts and node.name and node.name not in found:
                    found.append(node.name)
                break
            variable = [i for i in node.input if i and i not in consts]
            if node.op_type not in _PASS_THROUGH or not variable or (node.op_type == "Add" and len(variable) > 1):
                break
            name = variable[0]
    return found


def quantize_file(f32_path: str | Path, out_path: str | Path, mode: str,
                  calibration: Mapping[str, np.ndarray] | None = None, calibration_batch: int = 8,
                  quantize_all: bool = False) -> None:
    """Quantize the model at `f32_path` into `out_path` (both ONNX files); the output
    layers stay f32 unless `quantize_all`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    if mode not in MODES:
        raise NetcInputError(f"--quantize takes {' or '.join(MODES)}; got {mode!r}")
    if mode == "dynamic" and calibration is not None:
        raise NetcInputError("--calibrate applies to --quantize static; dynamic quantization needs no data")
    if mode == "static" and calibration is None:
        raise NetcInputError("--quantize static needs calibration data: --calibrate data.npz", None,
                             ["an .npz with one array per model input, axis 0 the batch "
                              "(a few hundred representative samples)"])
    with _quiet(), tempfile.TemporaryDirectory(prefix="netc-quant-") as tmp:
        # onnxruntime's recommended preprocessing: graph optimisation first, so that the
        # quantizer sees the graph that will run: Conv+BN folded, and weights that netc
        # prepares with nodes (an LSTM's gates reordered to ONNX's order) folded into
        # initializers, which is all the quantizer quantizes.
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(str(f32_path), prepared, skip_symbolic_shape=True)
        import onnx

        model = onnx.load(prepared, load_external_data=False)
        exclude = [] if quantize_all else output_layers(model)
        if mode == "dynamic":
            # quantize_dynamic rewrites a Gemm as MatMul + Add first, the MatMul named
            # after the Gemm with "_MatMul" appended: exclude that name too.
            exclude += [f"{n}_MatMul" for n in exclude]
            quantize_dynamic(prepared, str(out_path), weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
            return
        names = [i.name for i in model.graph.input]
        reader = NpzCalibrationReader(calibration, names, calibration_batch)
        CalibrationDataReader.register(NpzCalibrationReader)
        quantize_static(prepared, str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, extra_options={"CalibTensorRangeSymmetric": False})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs its progress at INFO/WARNING through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
