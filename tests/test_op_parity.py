"""Every registry op, every case it declares, several seeds and float dtypes: onnxruntime
against the NumPy reference, and the ONNX checker's full check on the model."""

from __future__ import annotations

import pytest

import netc
from netc.compiler.ops import REGISTRY
from netc.runtime.reference import REFERENCE
from netc.runtime.stochastic import random_values
from netc.runtime.verify import format_report, verify
from tests.conftest import assert_close, check_onnx, network_source, random_inputs, run_both

CASES = [
    pytest.param(opdef, case, dtype, id=f"{name}-{i}-{dtype.value}")
    for name, opdef in sorted(REGISTRY.ops.items())
    for i, case in enumerate(opdef.cases)
    for dtype in opdef.float_dtypes
]


@pytest.mark.parametrize(("opdef", "case", "dtype"), CASES)
def test_parity(opdef, case, dtype):
    source = network_source(case.expr, case.inputs, dtype.value, case.defs)
    compiled = netc.compile_source(source, seed=7)
    check_onnx(compiled.model)
    if random_values(compiled.graph):  # draws: checked by each op's `check_draw` and by structure
        report = verify(compiled.graph, compiled.params, compiled.model, seeds=(0, 1, 2), check_model=False)
        assert report.ok and report.draws, format_report(report)
        return
    for seed in (0, 1, 2):
        inputs = random_inputs(compiled.graph, seed, case.int_high)
        got, want = run_both(compiled, inputs)
        assert_close(got, want, dtype.value, f"{opdef.name} `{case.expr}` seed {seed}")


@pytest.mark.parametrize("name", sorted(REGISTRY.ops))
def test_every_op_is_complete(name):
    opdef = REGISTRY[name]
    assert name in REFERENCE, f"{name} has no NumPy reference"
    assert opdef.cases, f"{name} declares no parity cases"
    assert opdef.doc, f"{name} has no doc line"
    used = any(name in c.expr or opdef.internal for c in opdef.cases)
    assert used, f"{name}'s cases never call it"
