#!/usr/bin/env bash
# Create .venv and install netc (editable) with its test and benchmark tools.
# PyTorch (CPU) is a test/benchmark-only oracle; netc itself never imports it.
# NETC_SETUP=core installs netc alone (what tools/quickstart.sh needs); the default, full,
# adds everything the tests use: PyTorch, the optional extras, Graphviz and Chromium, the
# editor's npm tools, Ray, and the separate Triton environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# PYTHONWARNINGS: setuptools prints a banner about editable installs on every run; it is
# advice for package authors, not for someone setting up.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[test]'
# Bytecode for netc's own modules, as pip writes it when it installs a wheel: an editable
# install leaves it to the first import, which never happens where PYTHONDONTWRITEBYTECODE
# is set, and every netc command then compiles its modules from source again (about 0.1 s
# of each start). Stale files are ignored by Python, so this is safe to run at any time.
.venv/bin/python -m compileall -q -j 0 netc compiler dsl runtime >/dev/null
if [ "${NETC_SETUP:-full}" = "core" ]; then
  exit 0
fi
if [ "${NETC_SKIP_TORCH:-0}" != "1" ]; then
  .venv/bin/python -m pip install -q 'torch==2.13.0' || echo "setup: torch not installed; PyTorch parity tests will be skipped" >&2
fi

# Editor support and pictures: the lsp/graph/view/plot extras; Graphviz's `dot` and a
# headless Chromium for the diagram tests (Debian packages, when run as root); the VS Code
# extension's client library and its grammar-test tool (npm, into editors/vscode).
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[lsp,graph,view,plot]'
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! command -v dot >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz chromium >/dev/null; } \
      || echo "setup: graphviz/chromium not installed; diagram tests will be skipped" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  (cd editors/vscode && npm install --no-audit --no-fund --silent) \
    || echo "setup: npm install failed in editors/vscode; grammar tests will fail" >&2
fi
# Scale-out: Ray and Parquet for `netc batch`, the Triton client for the serving tests.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[batch,ray,triton]'
# A real tritonserver for the tests, in its own environment: nvidia-pytriton bundles one
# (python backend; the official image's onnxruntime backend is not on the package index)
# and needs numpy < 2, which netc's environment does not pin.
if [ "${NETC_SKIP_TRITON:-0}" != "1" ]; then
  [ -x .venv-triton/bin/python ] || "$PYTHON" -m venv .venv-triton
  .venv-triton/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv-triton/bin/python -m pip install -q 'nvidia-pytriton==0.7.0' 'numpy<2' onnxruntime \
    'tritonclient[grpc]' || echo "setup: the Triton environment failed to install; its tests will fail" >&2
fi
