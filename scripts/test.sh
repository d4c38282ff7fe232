#!/usr/bin/env bash
# Runs the whole test suite: unit tests, CLI tests with the echo engine, and real-model
# tests on SmolLM2-135M and Gemma-3-270M (llama.cpp and mistral.rs), and vision tests on MNIST and the 8×8 digits
# (models and datasets fetched into the cache if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
bash scripts/fetch-models.sh
bash scripts/fetch-datasets.sh
bash scripts/fetch-vision.sh
# With the mistral.rs engine too (its first build takes about 20 minutes).
cargo test --locked --features mistralrs "$@"
