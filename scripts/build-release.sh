#!/usr/bin/env bash
# Builds the release binary with both engines. On a CPU with AVX2, FMA and BMI2 it targets
# x86-64-v3: mistral.rs's quantized CPU kernels are compiled for AVX2 only then (about 3x
# faster here); llama.cpp picks its kernels at run time either way. The binary then needs
# such a CPU, so the flag is only used when this machine has one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
source scripts/build-features.sh
# mistral.rs, plus Metal on Apple Silicon and PROMPTLAB_FEATURES (docs/src/gpu.md).
extra=$(build_features)
features=(--features "mistralrs${extra:+,$extra}")
if [[ "$(uname -m)" == x86_64 ]] && [ -r /proc/cpuinfo ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw bmi2 /proc/cpuinfo; then
  echo "CPU has AVX2/FMA/BMI2: building for x86-64-v3"
  export RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=x86-64-v3"
  # A separate folder, so the flag does not rebuild the test build's artifacts.
  export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-x86-64-v3"
else
  echo "no AVX2/FMA/BMI2: building for the baseline x86-64"
fi
source scripts/llama-build-guard.sh
cargo build --release --locked "${features[@]}" "$@"
echo "built $CARGO_TARGET_DIR/release/promptlab"
