#!/usr/bin/env bash
# Batch invariance and batched speed: each eval set runs on each shipped model at
# --parallel 1, 4, 8 and 16 (no cache), and every cell's output is compared with the
# --parallel 1 run's, byte for byte. Then the variations that must not change an output
# either: 1 thread against 2, sampled decoding (temperature 0.9, a fixed seed) at
# --parallel 1 against 8.
#   arithmetic  (64 cases x 2 prompts)  smollm2, qwen2.5-0.5b
#   sentiment   (45 cases x 2 prompts, JSON schema, few-shot)  smollm2, qwen2.5-0.5b
#   extraction  (12 cases, JSON schema)  smollm2, qwen2.5-0.5b
#   capitals    (completion on the base model)  gemma3-270m
# Prints one line per run: seconds, speed-up over --parallel 1, cells identical to it.
# Usage: bash benches/invariance.sh [SET ...]   (after scripts/fetch-models.sh)
#   PROFILE=debug uses the test build (dependencies optimised) instead of a release build;
#   PROMPTLAB_BIN=path uses that binary as it is.
#   PARALLEL="1 8" limits the --parallel values; THREADS=2 sets the threads (default 2);
#   MODELS="smollm2 gemma3-270m" runs only those models; WORKERS=1 runs every model as one
#   llama.cpp instance (by default a small model runs as one instance per core).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/promptlab-binary.sh
threads="${THREADS:-2}"
parallels="${PARALLEL:-1 4 8 16}"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(arithmetic sentiment extraction capitals)

work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cp -a prompts eval-sets models "$work/"
cd "$work"

# run LABEL SET MODEL ARGS...: one evaluation, its wall seconds appended to results.txt
run() {
  local label="$1" set="$2" model="$3"; shift 3
  local start end
  start=$(date +%s.%N)
  local workers=()
  [ -n "${WORKERS:-}" ] && workers=(--workers "$WORKERS")
  "$bin" eval "eval-sets/$set.yaml" --models "$model" --threads "${run_threads:-$threads}" --quiet "${workers[@]}" \
    --no-store -o "$label.json" "$@" > "$label.log" 2>&1 || [ $? -eq 1 ] || {
    echo "$label failed:" >&2; cat "$label.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$label $set $model $(python3 -c "print($end - $start)")" >> results.txt
}

for set in "${sets[@]}"; do
  case "$set" in
    capitals) models="gemma3-270m" ;;
    *) models="smollm2 qwen2.5-0.5b" ;;
  esac
  for model in $models; do
    if [ -n "${MODELS:-}" ] && ! printf '%s\n' $MODELS | grep -qx "$model"; then continue; fi
    for p in $parallels; do
      run "$set-$model-p$p" "$set" "$model" --parallel "$p"
    done
    # Threads: the same cells at --parallel 8 with 1 thread.
    run_threads=1 run "$set-$model-p8-t1" "$set" "$model" --parallel 8
  done
done
# Seeded sampling: temperature 0.9, seed 42, one at a time and 8 together.
if printf '%s\n' "${sets[@]}" | grep -qx arithmetic && { [ -z "${MODELS:-}" ] || printf '%s\n' $MODELS | grep -qx smollm2; }; then
  for p in 1 8; do
    run "sampled-smollm2-p$p" arithmetic smollm2 --prompts arithmetic-sampled --parallel "$p"
  done
fi

python3 - "$parallels" <<'PY'
import json, sys
from collections import OrderedDict
def outputs(label):
    r = json.load(open(label + ".json"))
    return {(r["columns"][c["column"]]["id"], r["cases"][c["case"]]["id"]): c["output"] for c in r["cells"]}
rows = OrderedDict()
for line in open("results.txt"):
    label, set_, model, secs = line.split()
    rows[label] = (set_, model, float(secs))
print(f"{'run':<34}{'cells':>6}{'seconds':>9}{'vs p1':>8}{'identical to p1':>17}")
for label, (set_, model, secs) in rows.items():
    base = label.rsplit("-p", 1)[0] + "-p1"
    if label.endswith("-t1"):
        base = label[: -len("-p8-t1")] + "-p1"
    ref, out = outputs(base), outputs(label)
    same = sum(ref[k] == out.get(k) for k in ref)
    ratio = rows[base][2] / secs if base in rows else float("nan")
    print(f"{label:<34}{len(out):>6}{secs:>9.2f}{ratio:>7.2f}x{same:>9}/{len(ref)} {100*same/len(ref):5.1f}%")
PY
