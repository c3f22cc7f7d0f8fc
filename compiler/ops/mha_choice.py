"""Which ONNX form `multihead_attention(lowering="auto")` takes.

Measured with benchmarks/attention_lowering.py (onnxruntime 1.32 CPU, 2 threads, one
self-attention layer, d=512, h=8; ratio = form / decomposed, median of interleaved rounds
with its bootstrap 95% interval; the machine was shared, so several runs are given):

    N=1 T=64    onnx 0.95 [0.92, 0.98]   contrib 1.03 [0.97, 1.13]
    N=1 T=128   onnx 0.89 [0.49, 1.60]   contrib 0.86 [0.47, 1.45]     (20 rounds)
                onnx 1.05 [0.93, 1.20]   contrib 1.04 [0.98, 1.09]     (60 rounds)
    N=8 T=128   onnx 1.00 [0.99, 1.02]   contrib 1.00 [0.99, 1.02]
    N=1 T=256   onnx 1.20 [0.99, 1.84]   contrib 1.00 [0.65, 1.20]
    N=1 T=512   onnx 0.81 [0.62, 1.01]   contrib 0.61 [0.52, 0.71]     (20 rounds)
                onnx 0.85 [0.69, 0.95]   contrib 0.86 [0.73, 1.01]     (60 rounds)
    N=8 T=512   onnx 1.05 [0.98, 1.18]   contrib 0.94 [0.88, 1.02]

Up to T=256 the forms are not told apart (the MatMul/Softmax graph is what onnxruntime
fuses well); from T=512 the fused kernels win, the contrib one at least as much as ONNX
Attention, and it runs at the default opset 21 (ONNX Attention needs 23). So: the contrib
node when the key length is at least 512 or unknown at compile time (symbolic: the
sequences a model is compiled for are usually long), the decomposed graph otherwise, and
always where the fused nodes cannot do the job (weights requested, per-head masks,
grouped-query heads for the contrib op, non-f32).
"""

from __future__ import annotations

from netc.compiler.ir import Op
from netc.dsl.errors import NetcShapeError

FUSED_MIN_KEYS = 512


def choose_mha_lowering(op: Op, opset: int) -> str:
    from netc.compiler.ops.mha_fused import fused_unsupported

    requested = op.attrs["lowering"]
    types = [v.type if v is not None else None for v in op.inputs]
    if requested != "auto":
        why = fused_unsupported(op.attrs, types, requested, opset) if requested != "decomposed" else None
        if why:
            raise NetcShapeError(f"multihead_attention: lowering=\"{requested}\" does not support {why}", op.span,
                                 ['lowering="decomposed" (or "auto") supports everything'])
        return requested
    keys = types[1].shape[1 if op.attrs["batch_first"] else 0]
    long = not isinstance(keys, int) or keys >= FUSED_MIN_KEYS
    if long and fused_unsupported(op.attrs, types, "contrib", opset) is None:
        return "contrib"
    return "decomposed"
