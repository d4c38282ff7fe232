# Sourced by the benchmark scripts: sets `bin` to the promptlab binary to measure.
#   PROMPTLAB_BIN=path   that binary, as it is (a test build, say);
#   PROFILE=debug        the test build (dependencies optimised), built if needed;
#   otherwise            a release build, built if needed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
source scripts/llama-build-guard.sh
if [ -n "${PROMPTLAB_BIN:-}" ]; then
  bin="$PROMPTLAB_BIN"
elif [ "${PROFILE:-release}" = debug ]; then
  cargo build --locked --quiet
  bin="$CARGO_TARGET_DIR/debug/promptlab"
else
  cargo build --release --locked --quiet
  bin="$CARGO_TARGET_DIR/release/promptlab"
fi
