#!/usr/bin/env bash
# The default build (llama.cpp compiled for AVX2) against a `dynamic-backends` build, which
# loads the best of llama.cpp's CPU variants for this CPU at run time (AVX-512 here), in
# the same script so both see the same machine load:
#   1. `promptlab bench` on each model, the two builds alternating (A B A B);
#   2. each eval set at --parallel 1 and 8 with each build (no cache), alternating: seconds,
#      and whether the dynamic build's outputs are identical at --parallel 1 and 8 (batch
#      invariance) and to the AVX2 build's.
# Usage: bash benches/cpu-dispatch.sh   (after scripts/fetch-models.sh)
#   MODELS="smollm2 qwen2.5-0.5b" (default), SETS="arithmetic sentiment" (default),
#   THREADS=2, RUNS=3 bench runs per block;
#   AVX2_BIN=path / DYNAMIC_BIN=path use those binaries as they are (no build).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a models <<<"${MODELS:-smollm2 qwen2.5-0.5b}"
read -r -a sets <<<"${SETS:-arithmetic sentiment}"
threads="${THREADS:-2}"
runs="${RUNS:-3}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}"
if [ -z "${AVX2_BIN:-}" ]; then
  CARGO_TARGET_DIR="$target" bash -c 'source scripts/llama-build-guard.sh; cargo build --release --locked --quiet'
  AVX2_BIN="$target/release/promptlab"
fi
if [ -z "${DYNAMIC_BIN:-}" ]; then
  echo "building with --features dynamic-backends into $target-dynamic (every CPU variant of llama.cpp)"
  CARGO_TARGET_DIR="$target-dynamic" bash -c 'source scripts/llama-build-guard.sh; cargo build --release --locked --quiet --features dynamic-backends'
  DYNAMIC_BIN="$target-dynamic/release/promptlab"
fi

work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cp -a prompts eval-sets models "$work/"
cd "$work"
declare -A bins=([avx2]="$AVX2_BIN" [dynamic]="$DYNAMIC_BIN")

for build in avx2 dynamic; do
  echo "$build: $("${bins[$build]}" models list | grep -o 'CPU ([A-Z0-9]*)' | head -1)"
done

echo
echo "== promptlab bench ($threads threads, $runs runs per block, medians of tok/s)"
for model in "${models[@]}"; do
  for round in 1 2; do
    for build in avx2 dynamic; do
      "${bins[$build]}" bench --model "$model" --threads "$threads" --runs "$runs" --no-reference \
        >"bench-$model-$build-$round.txt" 2>/dev/null
    done
  done
done
python3 - "${models[@]}" <<'PY'
import sys, statistics
def speeds(path):
    for line in open(path):
        if line.startswith("promptlab (end to end)"):
            p = line.split()
            return float(p[-2]), float(p[-1])
print(f"{'model':<14}{'AVX2 pp':>9}{'dyn pp':>9}{'ratio':>7}{'AVX2 tg':>9}{'dyn tg':>9}{'ratio':>7}")
for m in sys.argv[1:]:
    a = [speeds(f"bench-{m}-avx2-{r}.txt") for r in (1, 2)]
    d = [speeds(f"bench-{m}-dynamic-{r}.txt") for r in (1, 2)]
    app, atg = statistics.mean(x[0] for x in a), statistics.mean(x[1] for x in a)
    dpp, dtg = statistics.mean(x[0] for x in d), statistics.mean(x[1] for x in d)
    print(f"{m:<14}{app:>9.1f}{dpp:>9.1f}{dpp / app:>6.2f}x{atg:>9.1f}{dtg:>9.1f}{dtg / atg:>6.2f}x")
PY

echo
echo "== eval sets, --parallel 1 and 8, no cache"
for set in "${sets[@]}"; do
  for model in "${models[@]}"; do
    for parallel in 1 8; do
      for build in avx2 dynamic; do
        label="$set-$model-$build-p$parallel"
        start=$(date +%s.%N)
        "${bins[$build]}" eval "eval-sets/$set.yaml" --models "$model" --parallel "$parallel" \
          --threads "$threads" --no-cache --no-store --quiet -o "$label.json" >"$label.log" 2>&1 ||
          [ $? -eq 1 ] || { echo "$label failed:" >&2; cat "$label.log" >&2; exit 1; }
        end=$(date +%s.%N)
        echo "$label $(python3 -c "print($end - $start)")" >>results.txt
      done
    done
  done
done
python3 - "${sets[*]}" "${models[*]}" <<'PY'
import json, sys
def outputs(label):
    r = json.load(open(label + ".json"))
    return {(r["columns"][c["column"]]["id"], r["cases"][c["case"]]["id"]): c["output"] for c in r["cells"]}
secs = {k: float(v) for k, v in (line.split() for line in open("results.txt"))}
print(f"{'set / model':<30}{'cells':>6}{'AVX2 p8 s':>10}{'dyn p8 s':>10}{'ratio':>7}{'dyn p8 = p1':>13}{'dyn = AVX2':>12}")
for s in sys.argv[1].split():
    for m in sys.argv[2].split():
        base = f"{s}-{m}"
        d1, d8, a1 = (outputs(f"{base}-{b}") for b in ("dynamic-p1", "dynamic-p8", "avx2-p1"))
        same = lambda x, y: sum(x[k] == y.get(k) for k in x)
        a, d = secs[f"{base}-avx2-p8"], secs[f"{base}-dynamic-p8"]
        print(f"{base:<30}{len(d1):>6}{a:>10.1f}{d:>10.1f}{a / d:>6.2f}x{same(d1, d8):>8}/{len(d1):<4}{same(d1, a1):>7}/{len(d1):<4}")
PY
