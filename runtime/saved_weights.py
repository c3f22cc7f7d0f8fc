"""The initializers of a saved model, each read from its file when it is looked up.

`netc verify` writes the model it hands onnxruntime with its weights in a data file of
their own; the reference interpreter then reads each weight from that file just before
the first op that needs it and drops it after the last one (`run_graph`), so the
reference holds a layer's weights at a time instead of the whole model, and computes
with the very bytes onnxruntime was given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


class SavedWeights(Mapping[str, np.ndarray]):
    """Name -> array of the initializers of `model_file`; one stored as external data is
    read from its file on every lookup (the mapping keeps no array)."""

    def __init__(self, model_file: str | Path) -> None:
        self._folder = Path(model_file).parent
        model = onnx.load(str(model_file), load_external_data=False)  # the graph: the weights stay on disk
        self._tensors = {t.name: t for t in model.graph.initializer}

    def __getitem__(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return numpy_helper.to_array(tensor)
        info = {e.key: e.value for e in tensor.external_data}
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
        count = 1
        for d in tensor.dims:
            count *= d
        length = int(info.get("length", count * dtype.itemsize))
        if length != count * dtype.itemsize:
            raise ValueError(f"initializer {name}: {length} bytes of data for {count} values of {dtype}")
        array = np.fromfile(self._folder / info["location"], dtype=dtype, count=count,
                            offset=int(info.get("offset", 0)))
        if array.size != count:
            raise ValueError(f"initializer {name}: its data file ends after {array.size} of {count} values")
        return array.astype(dtype.newbyteorder("="), copy=False).reshape(tuple(tensor.dims))

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)
