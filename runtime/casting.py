"""The input dtype policy, the same for the API and the command line: an array whose dtype
differs from the model's input is refused (with a hint), unless casting is asked for
(`cast_inputs=True`, `--cast-inputs`). Even then only casts within a kind are made
(float64 -> float32, int32 -> int64), and integers must fit the target type: a float
array for an integer input is always refused, since truncating ids is never meant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from netc.dsl.errors import NetcInputError
from netc.runtime.inputs import InputSpec

CAST_HINT = "pass cast_inputs=True (command line: --cast-inputs) to convert float64 to float32 and the like"


def cast_inputs(specs: Sequence[InputSpec], arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` with each one whose dtype differs from its input's cast to that dtype."""
    by_name = {s.name: s for s in specs}
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        spec = by_name.get(name)
        if spec is None or spec.dtype is None or not isinstance(array, np.ndarray) or array.dtype == spec.dtype:
            out[name] = array
            continue
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind") or (
                array.dtype.kind in "iu" and spec.dtype.kind == "b"):
            raise NetcInputError(f"input '{name}' has dtype {array.dtype}; the model expects {spec}, and netc "
                                 f"casts only within a kind (float to float, integer to integer)", None,
                                 [f"convert it yourself if that is meant: array.astype(numpy.{spec.dtype})"])
        if spec.dtype.kind in "iu" and array.size:
            info = np.iinfo(spec.dtype)
            low, high = array.min(), array.max()
            if low < info.min or high > info.max:
                raise NetcInputError(f"input '{name}' holds {high if high > info.max else low}, which "
                                     f"{spec.dtype} cannot hold (the model expects {spec})")
        out[name] = array.astype(spec.dtype)
    return out
