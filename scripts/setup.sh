#!/usr/bin/env bash
# From a fresh machine to a first evaluation: installs the build prerequisites (apt, dnf,
# pacman or Homebrew), fetches
# the test models into ~/.cache/promptlab/models and the detector and photos into
# ~/.cache/promptlab/vision, builds promptlab (release), lists the models and evaluates the
# shipped examples on SmolLM2 and the detector. On Apple Silicon it builds with Metal;
# PROMPTLAB_FEATURES=cuda (or vulkan, dynamic-backends, mistralrs) adds features.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
source scripts/llama-build-guard.sh
source scripts/build-features.sh

bash scripts/install-prereqs.sh
bash scripts/fetch-models.sh
bash scripts/fetch-vision.sh
features=$(build_features)
gpu_hint
if [ -n "$features" ]; then
  echo "building with features: $features"
  cargo build --release --locked --features "$features"
else
  cargo build --release --locked
fi
bin="$CARGO_TARGET_DIR/release/promptlab"
mkdir -p reports

echo
"$bin" models list

# Exit code 1 only means some cases failed, which small models do; 2 is a real error.
evaluate() {
  local status=0
  "$bin" eval "$@" || status=$?
  if [ "$status" -gt 1 ]; then exit "$status"; fi
}
echo
echo "== sentiment: zero-shot vs few-shot on SmolLM2"
evaluate eval-sets/sentiment.yaml --rows 0 \
  -o reports/sentiment.json -o reports/sentiment.jsonl -o reports/sentiment.csv \
  -o reports/sentiment.md -o reports/sentiment.xml
echo
echo "== extraction on SmolLM2"
evaluate eval-sets/extraction.yaml --rows 0 -o reports/extraction.md
echo
echo "== prompt improvement on SmolLM2"
evaluate eval-sets/prompt-improvement.yaml --models smollm2 --rows 0 -o reports/prompt-improvement.md
echo
echo "== people detection: a YOLO detector at two confidence floors"
evaluate eval-sets/people-detection.yaml --rows 0 -o reports/people-detection.md
echo
echo "promptlab is built at $bin; reports are in reports/"
