#!/usr/bin/env bash
# Prints the cargo features promptlab is built with here: `metal` on Apple Silicon (the
# GPU every such Mac has), plus whatever PROMPTLAB_FEATURES adds (`cuda`, `vulkan`,
# `dynamic-backends`, `mistralrs`, comma-separated). Sourced by setup.sh and
# build-release.sh; tests/setup/install-prereqs.sh checks it.
build_features() {
  local features=()
  if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then
    features+=(metal)
  fi
  local extra
  IFS=',' read -r -a extra <<<"${PROMPTLAB_FEATURES:-}"
  features+=("${extra[@]}")
  local IFS=,
  echo "${features[*]}"
}

# Says so when this machine has a GPU the build does not use.
gpu_hint() {
  local features
  features=",$(build_features),"
  if command -v nvidia-smi >/dev/null && [[ $features != *,cuda,* ]]; then
    echo "note: this machine has an NVIDIA GPU; with the CUDA toolkit installed, PROMPTLAB_FEATURES=cuda bash scripts/setup.sh builds promptlab to use it (docs/src/gpu.md)" >&2
  fi
}
