#!/usr/bin/env bash
# Create .venv and install netc (editable) with its test and benchmark tools.
# PyTorch (CPU) is a test/benchmark-only oracle; netc itself never imports it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
if [ "${NETC_SKIP_TORCH:-0}" != "1" ]; then
  .venv/bin/python -m pip install -q 'torch==2.13.0' || echo "setup: torch not installed; PyTorch parity tests will be skipped" >&2
fi

# Scale-out: Ray and Parquet for `netc batch`, the Triton client for the serving tests.
.venv/bin/python -m pip install -q -e '.[batch,ray,triton]'
# A real tritonserver for the tests, in its own environment: nvidia-pytriton bundles one
# (python backend; the official image's onnxruntime backend is not on the package index)
# and needs numpy < 2, which netc's environment does not pin.
if [ "${NETC_SKIP_TRITON:-0}" != "1" ]; then
  [ -x .venv-triton/bin/python ] || "$PYTHON" -m venv .venv-triton
  .venv-triton/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv-triton/bin/python -m pip install -q 'nvidia-pytriton==0.7.0' 'numpy<2' onnxruntime \
    'tritonclient[grpc]' || echo "setup: the Triton environment failed to install; its tests will fail" >&2
fi
