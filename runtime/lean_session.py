"""An onnxruntime CPU session on a large saved model, built in two steps to halve the peak memory.

Building a session at `ORT_ENABLE_ALL` keeps every weight twice at its peak: the Conv +
BatchNormalization fusion (a basic optimization) makes new, fused weights in memory, and
the NCHWc layout transformer (the `ALL` level) then makes reordered copies of those, while
the fused ones live on until the end of optimization. ResNet-50 (98 MB of weights) peaks
about 2.2x its size above the process's baseline that way, even from external data.

Here the same optimizations run in two sessions. The first, at `ORT_ENABLE_EXTENDED`,
saves its optimized model with its weights as external data and is dropped; the second
loads that file at `ORT_ENABLE_ALL`: the fusions are already done (they find nothing left
to fuse), and the layout transformer reads each fused weight from the file as it reorders
it. Each step holds about one copy of the weights (1.3x at the peak for ResNet-50). The
second session runs the same kernels on the same graph as a one-step `ORT_ENABLE_ALL`
session (`tests/test_verify_memory.py` checks the outputs are bit for bit the same).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnxruntime as ort

from netc.runtime.heap import large_blocks_returned
from netc.runtime.session import Session, make_session

# Weights smaller than this take the one-step path: the second session costs more time
# than the memory it saves is worth.
LEAN_MIN_BYTES = 16 * 2**20

_SAVE_EXTERNAL = {
    "session.optimized_model_external_initializers_file_name": "optimized.data",
    "session.optimized_model_external_initializers_min_size_in_bytes": "1024",
}


def make_lean_session(model_file: str | Path, provider: str, weight_bytes: int,
                      min_bytes: int | None = None) -> Session:
    """A session on `model_file` (saved, best with its weights as external data) as
    `make_session(model_file, provider)` makes it, built in two steps when it runs on the
    CPU and its weights (`weight_bytes`) reach `min_bytes` (default `LEAN_MIN_BYTES`)."""
    if provider != "cpu" or weight_bytes < (LEAN_MIN_BYTES if min_bytes is None else min_bytes):
        return make_session(model_file, provider)
    workdir = tempfile.TemporaryDirectory(prefix="netc-session-")
    optimized = Path(workdir.name, "optimized.onnx")
    try:
        with large_blocks_returned():  # freed temporaries go back to the system (runtime/heap.py)
            first = make_session(model_file, provider, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                 optimized_model_path=str(optimized), config=_SAVE_EXTERNAL)
            min_sizes = first.min_sizes
            del first
            try:
                session = make_session(optimized, provider)
            except Exception:  # onnxruntime's own types: the one-step session below says it of the user's model
                session = None
    except BaseException:
        workdir.cleanup()
        raise
    if session is None:
        workdir.cleanup()
        return make_session(model_file, provider)
    session.min_sizes = min_sizes or session.min_sizes
    # onnxruntime may read the external weights after the session is made: the folder is
    # removed with the session.
    session.shared = (*session.shared, workdir)
    return session
