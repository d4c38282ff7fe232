#!/usr/bin/env bash
# GPU smoke test, for a machine with a GPU. Builds promptlab with a GPU feature (in its own
# target folder), then:
#   1. `promptlab models list`: where each model will run;
#   2. `promptlab bench` with --gpu-layers none and all: prompt and generation speed on
#      the CPU and on the GPU, and the speed-up;
#   3. each eval set on the GPU at --parallel 1 and 8 and on the CPU at --parallel 1:
#      seconds, and how many outputs are byte-identical (batched against one at a time on
#      the GPU, which promptlab verifies on the CPU only; and the GPU against the CPU).
# Usage: bash benches/gpu.sh   (after scripts/fetch-models.sh)
#   FEATURE=metal|cuda|vulkan   default: metal on macOS, cuda with nvidia-smi, else vulkan
#   MODEL=qwen2.5-0.5b          the catalog model (default smollm2)
#   SETS="arithmetic sentiment" the eval sets (default arithmetic)
#   PROMPTLAB_BIN=path          that binary as it is (no build)
#   Vulkan without a GPU: GGML_VK_VISIBLE_DEVICES=N makes llama.cpp use Vulkan device N even
#   when it is a CPU (Mesa's lavapipe), which runs the offload path, slowly.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${MODEL:-smollm2}"
read -r -a sets <<<"${SETS:-arithmetic}"
if [ -z "${FEATURE:-}" ]; then
  if [ "$(uname -s)" = Darwin ]; then FEATURE=metal
  elif command -v nvidia-smi >/dev/null; then FEATURE=cuda
  else FEATURE=vulkan; fi
fi
if [ -n "${PROMPTLAB_BIN:-}" ]; then
  bin="$PROMPTLAB_BIN"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}-$FEATURE"
  source scripts/llama-build-guard.sh
  if [ "$FEATURE" = vulkan ] && [ -z "${VULKAN_SDK:-}" ]; then
    VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)"
    export VULKAN_SDK
  fi
  echo "building with --features $FEATURE into $CARGO_TARGET_DIR (the first build compiles llama.cpp)"
  cargo build --release --locked --quiet --features "$FEATURE"
  bin="$CARGO_TARGET_DIR/release/promptlab"
fi

work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cp -a prompts eval-sets models "$work/"
cd "$work"

echo "== where the models run"
"$bin" models list | grep -E "runs on|^\| *$model |$model " || true

echo
echo "== promptlab bench: $model, CPU against GPU"
for layers in none all; do
  "$bin" bench --model "$model" --no-reference --runs 3 --gpu-layers "$layers" \
    >"bench-$layers.txt" 2>"bench-$layers.err" || { cat "bench-$layers.err" >&2; exit 1; }
  grep -E "^(prompt:|promptlab)" "bench-$layers.txt" | sed "s/^/[$layers] /"
done
python3 - <<'PY'
def speeds(path):
    for line in open(path):
        if line.startswith("promptlab (end to end)"):
            parts = line.split()
            return float(parts[-2]), float(parts[-1])
cpu, gpu = speeds("bench-none.txt"), speeds("bench-all.txt")
print(f"GPU / CPU: prompt {gpu[0] / cpu[0]:.2f}x, generation {gpu[1] / cpu[1]:.2f}x")
PY

echo
echo "== eval sets: GPU at --parallel 1 and 8, CPU at --parallel 1"
for set in "${sets[@]}"; do
  for run in "gpu 1 all" "gpu 8 all" "cpu 1 none"; do
    read -r where parallel layers <<<"$run"
    label="$set-$where-p$parallel"
    start=$(date +%s.%N)
    "$bin" eval "eval-sets/$set.yaml" --models "$model" --parallel "$parallel" --gpu-layers "$layers" \
      --no-cache --no-store --quiet -o "$label.json" >"$label.log" 2>&1 || [ $? -eq 1 ] || {
      echo "$label failed:" >&2; cat "$label.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$label $(python3 -c "print($end - $start)")" >>results.txt
  done
done
python3 - "${sets[@]}" <<'PY'
import json, sys
def outputs(label):
    r = json.load(open(label + ".json"))
    return {(r["columns"][c["column"]]["id"], r["cases"][c["case"]]["id"]): c["output"] for c in r["cells"]}
secs = dict(line.split() for line in open("results.txt"))
print(f"{'set':<14}{'cells':>6}{'GPU p1 s':>10}{'GPU p8 s':>10}{'p8/p1':>7}{'CPU p1 s':>10}{'GPU p8 = GPU p1':>17}{'GPU = CPU':>11}")
for s in sys.argv[1:]:
    g1, g8, c1 = outputs(f"{s}-gpu-p1"), outputs(f"{s}-gpu-p8"), outputs(f"{s}-cpu-p1")
    same = lambda a, b: sum(a[k] == b.get(k) for k in a)
    t = lambda label: float(secs[label])
    print(f"{s:<14}{len(g1):>6}{t(f'{s}-gpu-p1'):>10.1f}{t(f'{s}-gpu-p8'):>10.1f}"
          f"{t(f'{s}-gpu-p1') / t(f'{s}-gpu-p8'):>6.2f}x{t(f'{s}-cpu-p1'):>10.1f}"
          f"{same(g1, g8):>12}/{len(g1):<4}{same(g1, c1):>6}/{len(g1):<4}")
PY
grep -h "runs on\|warning" ./*.log | sort -u | head -5 || true
