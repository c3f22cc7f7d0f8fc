"""Running a model once: checked inputs in, named outputs out, a short summary of each, and
an atomic `.npz` writer for saving them."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from netc.boundary import is_onnxruntime_error
from netc.files import atomic_path, check_output_path
from netc.runtime.input_values import check_values
from netc.runtime.inputs import InputSpec, check_inputs, specs_from_session
from netc.runtime.ort_errors import translate
from netc.runtime.session import Session

_SHORT_DTYPES = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int32": "i32",
                 "int64": "i64", "uint8": "u8", "bool": "bool"}


def run_session(session: Session, inputs: Mapping[str, np.ndarray],
                specs: Sequence[InputSpec] | None = None) -> dict[str, np.ndarray]:
    """Check `inputs` against the model's inputs, run once, return the outputs by name."""
    env = check_inputs(specs if specs is not None else specs_from_session(session.session), inputs)
    check_values(session.value_rules, inputs, env)
    names = [o.name for o in session.session.get_outputs()]
    specs = specs if specs is not None else specs_from_session(session.session)
    try:
        results = session.session.run(names, dict(inputs))
    except Exception as err:  # every onnxruntime exception type, not only InvalidArgument
        if not is_onnxruntime_error(err):
            raise
        raise translate(err, specs, inputs, session.graph, "onnxruntime failed",
                        session.spans) from None
    return dict(zip(names, results))


def short_dtype(dtype: np.dtype) -> str:
    return _SHORT_DTYPES.get(str(dtype), str(dtype))


def summarise(outputs: Mapping[str, np.ndarray], first: int = 6) -> str:
    """Each output's type, its min/max/mean, and its first values."""
    lines = []
    for name, array in outputs.items():
        head = f"{name}: {short_dtype(array.dtype)}{list(array.shape)}"
        flat = array.reshape(-1)
        if flat.size and (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            values = flat.astype(np.float64)
            finite = values[np.isfinite(values)]
            if finite.size:
                head += (f"  min {_num(finite.min())}  max {_num(finite.max())}  "
                         f"mean {_num(finite.mean())}")
            if finite.size < values.size:
                head += f"  ({values.size - finite.size} non-finite)"
        shown = ", ".join(_num(v) for v in flat[:first].tolist())
        more = f", ... ({flat.size} values)" if flat.size > first else ""
        lines += [head, f"  [{shown}{more}]"]
    return "\n".join(lines)


def _num(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    return f"{v:.6g}"


def save_outputs(path: str | Path, outputs: Mapping[str, np.ndarray], *sources: str | Path | None) -> Path:
    """Write `outputs` as an uncompressed `.npz` (keys are the output names), atomically;
    refuses to write over any of `sources`."""
    out = check_output_path(path, *sources)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in outputs.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return out
