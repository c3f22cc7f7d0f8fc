#!/usr/bin/env bash
# Set up netc, then check, compile, run and benchmark a bundled example (ResNet-50),
# saying what each step does. Needs about 0.4 GB of disk: the virtual environment
# (.venv, without PyTorch) and the model (out/resnet50.onnx, about 100 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n== %s\n' "$*"; }

say "1/5 Setting up .venv: netc with onnxruntime (the test-only tools, PyTorch among them, are skipped here)"
NETC_SETUP=core bash tools/setup.sh
NETC=.venv/bin/netc
mkdir -p out

say "2/5 netc check examples/resnet50.net: every layer's shape, parameters and FLOPs (the totals:)"
$NETC check examples/resnet50.net | tail -n 4

say "3/5 netc compile: examples/resnet50.net -> out/resnet50.onnx"
echo "    The weights are RANDOM (seeded initialisers), not trained: the model runs, but classifies nothing."
$NETC compile examples/resnet50.net -o out/resnet50.onnx

say "4/5 netc run: one random 224x224 image (out/image.npy, made with NumPy) -> out/logits.npz"
.venv/bin/python -c "import numpy as np; np.save('out/image.npy', np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))"
$NETC run -q out/resnet50.onnx --input image=out/image.npy -o out/logits.npz
.venv/bin/python -c "import numpy as np; z = np.load('out/logits.npz')['logits']; print(f'    logits: shape {z.shape}, largest at class {int(z.argmax())} (meaningless: random weights and input)')"

say "5/5 netc bench: latency of out/resnet50.onnx at batch size 1 (20 timed runs)"
$NETC bench -q out/resnet50.onnx --batch 1 --iterations 20

cat <<'EOF'

Done. Outputs are in out/: resnet50.onnx (the model), image.npy (the input), logits.npz.

Next:
  export PATH="$PWD/.venv/bin:$PATH"          # or call .venv/bin/netc
  netc verify examples/mnist_mlp.net          # onnxruntime vs netc's NumPy reference
  netc check examples/bilstm_tagger.net       # a sequence model: symbolic T and N
  netc params examples/resnet18.net           # the names a weight file uses
  netc weights import model.safetensors --net examples/resnet18.net -o weights.npz
                                              # trained PyTorch weights (docs/weights.md)
  bash tools/setup.sh && .venv/bin/python -m pytest -q   # the tests (installs PyTorch CPU)
Docs: README.md, docs/language.md, docs/api.md (Python), docs/ops.md.
EOF
