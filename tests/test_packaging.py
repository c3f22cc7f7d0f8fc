"""The wheel installs netc under one import namespace (netc.dsl, netc.compiler,
netc.runtime) and puts no generic top-level packages into site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("netc-*.whl")
    return path


def test_wheel_has_only_the_netc_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"netc"}
    for expected in ("netc/dsl/grammar.lark", "netc/compiler/ir.py", "netc/runtime/session.py",
                     "netc/compiler/ops/dense.py", "netc/runtime/reference/interpreter.py", "netc/cli.py",
                     "netc/compiler/std/transformer.net"):
        assert expected in names


def test_wheel_installs_and_imports_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    # Dependencies (onnx, numpy, ...) come from this environment's site-packages via
    # PYTHONPATH, which does not process .pth files: the editable install stays invisible.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    code = ("import netc, netc.dsl, netc.compiler, netc.runtime, netc.cli, importlib.util as u; "
            "print(netc.__file__); "
            "print([m for m in ('compiler', 'runtime', 'dsl') if u.find_spec(m)]); "
            "print(netc.compile_source('network M { input x: f32[N, 3]  output y = x -> dense(2) }')"
            ".model.graph.node[0].op_type); "
            "print(len(netc.compile_source('import \"std/transformer.net\"\\nnetwork M { input x: f32[T, N, 8]  "
            "output y = feed_forward(x, 16) }').params))")
    result = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    file_line, leaked, op, std_params = result.stdout.strip().splitlines()
    assert Path(file_line).resolve().is_relative_to(env_dir.resolve())
    assert leaked == "[]"
    assert op == "Gemm"
    assert std_params == "4"  # the standard library ships in the wheel
    script = env_dir / "bin" / "netc"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "0.1.0" in version.stdout
