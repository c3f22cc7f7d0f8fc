"""Which ONNX form `multihead_attention(lowering="auto")` takes (measurements in
docs/language.md, "Attention"; benchmarks/attention_lowering.py reproduces them)."""

from __future__ import annotations

from netc.compiler.ir import Op


def choose_mha_lowering(op: Op, opset: int) -> str:
    requested = op.attrs["lowering"]
    if requested != "auto":
        return requested
    return "decomposed"
