#!/usr/bin/env bash
# Creates the Python environment the reference implementations run in, for the vision
# benchmarks and fixture generators (not needed for the tests, which use committed
# fixtures): PyTorch 2.15 (CPU use), onnxruntime 1.32, pycocotools, transformers.
#   benches/digits_torch.py, benches/detect_reference.py,
#   tests/fixtures/detect/make_coco_fixture.py, tests/fixtures/clip/make_tiny_clip.py,
#   scripts/cnn_gradients_fixture.py
# The PyPI torch wheel pulls in the CUDA libraries (several GB) even for CPU use.
#
#   PROMPTLAB_REFERENCE_VENV  where (default: ~/.cache/promptlab/torch-venv)
set -euo pipefail
venv="${PROMPTLAB_REFERENCE_VENV:-$HOME/.cache/promptlab/torch-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet torch==2.15.0 onnxruntime==1.32.0 pycocotools transformers tokenizers \
  safetensors pillow numpy
"$venv/bin/python" -c "import torch, onnxruntime, pycocotools, transformers; print('reference environment ready in $venv')"
