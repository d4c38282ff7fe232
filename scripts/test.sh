#!/usr/bin/env bash
# Runs the whole test suite: the user guide's build and links, unit tests, CLI tests with the echo engine, and real-model
# tests on SmolLM2-135M and Gemma-3-270M (llama.cpp and mistral.rs), and vision tests on MNIST and the 8×8 digits
# (models and datasets fetched into the cache if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
source scripts/llama-build-guard.sh
# The user guide builds and its internal links hold (quick, so first).
bash scripts/docs.sh
# Setup on apt, dnf, pacman and Homebrew systems, with stubbed package managers (quick).
bash tests/setup/install-prereqs.sh
bash scripts/fetch-models.sh
bash scripts/fetch-datasets.sh
bash scripts/fetch-vision.sh
bash scripts/fetch-wordnet.sh
# One test at a time: the real-model tests each decode on every core, and two at once on a
# 2-core machine took twice as long as one after the other (tests/integration/agent.rs:
# 117 s against 62 s) and starved a 100-client serve test past its timeout.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-1}"
# Tests read the CLI's tables as a pipe gets them: as wide as their content, uncoloured.
unset COLUMNS NO_COLOR
# With the mistral.rs engine too (its first build takes about 20 minutes).
cargo test --locked --features mistralrs "$@"
