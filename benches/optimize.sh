#!/usr/bin/env bash
# `promptlab optimize` on the shipped eval sets: for each run, the baseline and the best
# finalist on the held-out part (pass rate with its Wilson 95% interval), the cases fixed
# and regressed there, McNemar's exact p (and Holm-adjusted), the verdict, the candidates
# evaluated and refused, the cells spent and the wall time. Each run starts in a fresh copy
# of the project, so nothing comes from an earlier run's cache. Prints a Markdown table;
# the JSON of every optimization stays in $OUT (default ~/.cache/promptlab/optimize-bench).
# Usage: bash benches/optimize.sh
#   RUNS="sentiment-0.5b extraction" picks runs (names below); SEED (default 1);
#   PROMPTLAB_BIN / PROFILE as in benches/promptlab-binary.sh. The qwen2.5-1.5b run needs
#   scripts/fetch-judge-model.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/promptlab-binary.sh
seed="${SEED:-1}"
out="${OUT:-$HOME/.cache/promptlab/optimize-bench}"
mkdir -p "$out"
runs="${RUNS:-sentiment-0.5b sentiment-1.5b extraction ticket-title}"

spec() { # name -> eval set, prompt, proposer, budget, extra options
  case "$1" in
    sentiment-0.5b) echo "sentiment sentiment:zero-shot qwen2.5-0.5b 2000" ;;
    sentiment-1.5b) echo "sentiment sentiment:zero-shot qwen2.5-1.5b 2000" ;;
    sentiment-reflect) echo "sentiment sentiment:zero-shot qwen2.5-0.5b 1000 --strategy reflect" ;;
    extraction) echo "extraction extract-contact qwen2.5-0.5b 600" ;;
    ticket-title) echo "prompt-improvement ticket-title:1-role qwen2.5-0.5b 600" ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}

echo "| run | eval set | prompt | proposer | tuning / held-out | baseline held-out | best held-out | fixed / regressed | McNemar p (Holm) | verdict | candidates (refused) | cells | wall s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for run in $runs; do
  read -r set prompt proposer budget extra <<<"$(spec "$run")"
  project="$(mktemp -d)"
  cp -r prompts eval-sets models "$project/"
  start=$(date +%s.%N)
  # Exit 1 means "no candidate proven better": a result, not a failure.
  (cd "$project" && "$bin" optimize "$set" --prompt "$prompt" --model smollm2 \
    --proposer "$proposer" --budget "$budget" --seed "$seed" --quiet ${extra:-} \
    -o "$out/$run.json" >"$out/$run.txt" 2>&1) || [ $? -eq 1 ]
  end=$(date +%s.%N)
  python3 - "$out/$run.json" "$run" "$set" "$prompt" "$proposer" "$start" "$end" <<'EOF'
import json, math, sys
path, run, set_, prompt, proposer, start, end = sys.argv[1:]
o = json.load(open(path))
v = o["state"]["verdict"]
def rate(s):
    n, k = s["cases"], s["passed"]
    z = 1.959963984540054
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z / d * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return f"{100*p:.1f}% [{100*max(0,c-h):.1f}–{100*min(1,c+h):.1f}]"
best = next((f for f in v["finalists"] if f["number"] == v["best"]), None)
evaluated = sum(1 for c in o["candidates"] if c["tuning"] and c["number"] > 0)
refused = sum(1 for c in o["candidates"] if c["rejected"])
verdict = f"winner {v['winner']}" if v["winner"] is not None else "none proven"
print("| " + " | ".join([
    run, set_, prompt, proposer,
    f"{len(o['state']['split']['tuning'])} / {len(o['state']['split']['held_out'])}",
    rate(v["baseline"]),
    f"{best['number']}: {rate(best['held_out'])}" if best else "—",
    f"{best['only_candidate']} / {best['only_baseline']}" if best else "—",
    f"{best['p_value']:.3f} ({best['adjusted_p']:.3f})" if best else "—",
    verdict, f"{evaluated} ({refused})", str(o["state"]["spent_cells"]),
    f"{float(end) - float(start):.0f}",
]) + " |")
EOF
  rm -rf "$project"
done
