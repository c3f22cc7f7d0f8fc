#!/usr/bin/env bash
# Set up, then compile, run and benchmark a bundled example (ResNet-50).
set -euo pipefail
cd "$(dirname "$0")/.."
NETC_SKIP_TORCH=1 bash tools/setup.sh
mkdir -p out
.venv/bin/netc check examples/resnet50.net | tail -n 4
.venv/bin/netc compile examples/resnet50.net -o out/resnet50.onnx
.venv/bin/netc run out/resnet50.onnx --random --set N=1
.venv/bin/netc bench out/resnet50.onnx --batch 1 --iterations 20
