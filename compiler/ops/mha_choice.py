"""Which ONNX form `multihead_attention(lowering="auto")` takes.

Measured with benchmarks/attention_lowering.py (onnxruntime 1.32 CPU, 2 threads, one
self-attention layer, d=512, h=8; ratio = form / decomposed, median of interleaved rounds
with its bootstrap 95% interval). The machine was shared: first under heavy load (load
average 5-10) with the first decomposed graph, then, with the final graph (the scale
folded into FusedMatMul), at load average about 2.5:

    heavy load         ONNX Attention          contrib MHA
    N=1 T=128          1.05 [0.93, 1.20]       1.04 [0.98, 1.09]
    N=8 T=128          1.00 [0.99, 1.02]       1.00 [0.99, 1.02]
    N=1 T=256          1.20 [0.99, 1.84]       1.00 [0.65, 1.20]
    N=1 T=512          0.85 [0.69, 0.95]       0.86 [0.73, 1.01]
    N=8 T=512          1.05 [0.98, 1.18]       0.94 [0.88, 1.02]
    lighter load, final graph
    N=1 T=64           0.99 [0.97, 1.02]       0.93 [0.83, 0.97]
    N=1 T=128          1.05 [1.01, 1.09]       1.08 [1.06, 1.12]
                       1.00 [0.97, 1.03]       1.00 [0.98, 1.02]
    N=8 T=128          1.05 [1.05, 1.06]       1.07 [1.05, 1.07]
    N=1 T=256          0.99 [0.97, 1.01]       1.01 [1.00, 1.03]
    N=1 T=512          1.00 [0.99, 1.02]       0.99 [0.97, 1.00]
    N=8 T=512          1.03 [1.01, 1.04]       0.96 [0.94, 0.97]
    N=1 T=1024         0.99 [0.99, 1.00]       0.91 [0.90, 0.91]

Up to T=256 the fused nodes never win clearly and lose by 5-8% at T=128 in two of the
quiet runs; from T=512 the contrib node wins or ties (by about 10% at T=1024), and ONNX
Attention (opset 23) never beats it. So: the contrib node for key lengths of at least 512
known at compile time, the decomposed graph otherwise (also for a symbolic length: it is
standard ONNX, as fast for the common lengths, and can return the weights), and always
where the fused nodes cannot do the job (weights requested, per-head masks, grouped-query
heads for the contrib op, non-f32).
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
    long = isinstance(keys, int) and keys >= FUSED_MIN_KEYS
    if long and fused_unsupported(op.attrs, types, "contrib", opset) is None:
        return "contrib"
    return "decomposed"
