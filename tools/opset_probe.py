"""Find the newest ONNX opset at which onnxruntime (CPU) runs every op netc emits.

    python tools/opset_probe.py [FIRST [LAST]]

Compiles every parity case of every registry op at each candidate opset and runs it on
onnxruntime; prints, per opset, the cases that fail to load or run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnx

import netc
from netc.compiler import lowering
from netc.compiler.ops import REGISTRY
from netc.runtime.session import make_session
from tests.conftest import network_source, random_inputs


def probe(opset: int) -> list[str]:
    failures = []
    for name, opdef in sorted(REGISTRY.ops.items()):
        for case in opdef.cases:
            for dtype in opdef.float_dtypes:
                source = network_source(case.expr, case.inputs, dtype.value, case.defs)
                try:
                    compiled = netc.compile_source(source)
                    model = lowering.lower_graph(compiled.graph, compiled.params, opset)
                    model.ir_version = onnx.helper.VERSION_TABLE[-1][1]
                    session = make_session(model)
                    session.session.run(None, random_inputs(compiled.graph, 0, case.int_high))
                except Exception as err:  # report everything: this is a probe
                    failures.append(f"{name} `{case.expr}` {dtype.value}: {str(err).splitlines()[0][:160]}")
    return failures


def main() -> None:
    newest_ok = None
    first = int(sys.argv[1]) if len(sys.argv) > 1 else 18
    last = int(sys.argv[2]) if len(sys.argv) > 2 else onnx.defs.onnx_opset_version()
    for opset in range(first, last + 1):
        lowering.IR_VERSION_FOR_OPSET.setdefault(opset, onnx.helper.VERSION_TABLE[-1][1])
        failures = probe(opset)
        print(f"opset {opset}: {len(failures)} failing case(s)")
        for f in failures[:5]:
            print("   ", f)
        if not failures:
            newest_ok = opset
    print(f"newest opset with every case running: {newest_ok}")


if __name__ == "__main__":
    main()
