"""Shared test helpers: compile snippets, run them on onnxruntime and the reference."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import netc
from netc.compiler import dims as D
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

TOLERANCES = {"f16": (1e-2, 1e-2), "f32": (1e-4, 1e-5), "f64": (1e-9, 1e-11)}


def random_inputs(graph, seed: int, int_high: int = 5, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random arrays for every graph input; each symbolic dim gets one size (2..4)."""
    rng = np.random.default_rng(seed)
    env: dict[str, int] = dict(sizes or {})
    arrays = {}
    for v in graph.inputs:
        shape = []
        for d in v.type.shape:
            for s in sorted(D.symbols(d)):
                env.setdefault(s, int(rng.integers(2, 5)))
            shape.append(D.evaluate(d, env))
        dtype = v.type.dtype
        if dtype.is_float:
            arrays[v.name] = rng.standard_normal(shape).astype(dtype.numpy)
        elif dtype.value == "bool":
            arrays[v.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            arrays[v.name] = rng.integers(0, int_high, shape).astype(dtype.numpy)
    return arrays


def torch_models():
    """benchmarks/torch_models.py (PyTorch modules written after torchvision); skips without torch."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("torch_models", ROOT / "benchmarks" / "torch_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise_batchnorm(module) -> None:
    """Non-trivial batchnorm statistics and affine terms, so a swapped mean/var or scale/bias shows."""
    import torch  # only the tests that compare with PyTorch call this

    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def check_onnx(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def run_both(compiled: netc.Compiled, inputs: dict[str, np.ndarray]):
    session = make_session(compiled.model)
    names = [o.name for o in session.session.get_outputs()]
    got = dict(zip(names, session.session.run(None, inputs)))
    want = run_graph(compiled.graph, compiled.params, inputs)
    return got, want


def assert_close(got: dict, want: dict, dtype: str, context: str = "") -> None:
    rtol, atol = TOLERANCES.get(dtype, (1e-4, 1e-5))
    for name, expected in want.items():
        actual = got[name]
        assert actual.shape == expected.shape, f"{context} {name}: shape {actual.shape} vs {expected.shape}"
        assert actual.dtype == expected.dtype, f"{context} {name}: dtype {actual.dtype} vs {expected.dtype}"
        if np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=f"{context} {name}")
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=f"{context} {name}")


def network_source(expr: str, inputs: dict[str, str], dtype: str, defs: str = "") -> str:
    """A one-network file: `defs` (blocks) first, then the inputs and `expr` as the output."""
    lines = [f"  input {name}: {t.replace('{f}', dtype)}" for name, t in inputs.items()]
    body = expr.replace("{f}", dtype)
    if re.search(r"^\s*output\b", body, flags=re.M):
        lines.append(body)
    else:
        lines.append(f"  output out = {body}")
    return defs.replace("{f}", dtype) + "network Case {\n" + "\n".join(lines) + "\n}\n"


@pytest.fixture
def compile_text(tmp_path):
    def compile_(text: str, **kw) -> netc.Compiled:
        path = tmp_path / "case.net"
        path.write_text(text)
        return netc.compile_file(path, **kw)

    return compile_
