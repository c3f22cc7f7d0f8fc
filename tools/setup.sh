#!/usr/bin/env bash
# Create .venv and install netc (editable) with its test and benchmark tools.
# PyTorch (CPU) is a test/benchmark-only oracle; netc itself never imports it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# PYTHONWARNINGS: setuptools prints a banner about editable installs on every run; it is
# advice for package authors, not for someone setting up.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[test]'
if [ "${NETC_SKIP_TORCH:-0}" != "1" ]; then
  .venv/bin/python -m pip install -q 'torch==2.13.0' || echo "setup: torch not installed; PyTorch parity tests will be skipped" >&2
fi
