#!/usr/bin/env bash
# Agent-set benchmark: eval-sets/agent-vision.yaml (31 questions about photos, digits and
# arithmetic, Qwen2.5-Coder-0.5B calling the vision tools and the calculator) with the
# questions asked one after another (--parallel 1) and together (--parallel 8), one run
# after the other in one script. Prints wall time, the speed-up, and how many questions got
# the same final reply and the same verdict.
# Usage: bash benches/agent.sh   (after scripts/fetch-models.sh and scripts/fetch-vision.sh)
#   LIMIT=10 asks only the first 10 questions; PROMPTLAB_BIN=path measures that binary as it
#   is; PROFILE=debug uses the test build instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/promptlab-binary.sh
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
# The photos in eval-sets/data/photos come along as copies (the agent's file tools refuse
# links out of the project).
cp -a prompts eval-sets models "$work/"
cd "$work"
limit=()
[ -n "${LIMIT:-}" ] && limit=(--limit "$LIMIT")

for p in 1 8; do
  start=$(date +%s.%N)
  "$bin" eval eval-sets/agent-vision.yaml --models qwen2.5-0.5b --threads 2 --parallel "$p" \
    --no-store --quiet --min-pass-rate 0 -o "p$p.json" "${limit[@]}" > "p$p.log" 2>&1 || {
    echo "--parallel $p failed:" >&2; cat "p$p.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$p $(python3 -c "print($end - $start)")" >> results.txt
done

python3 - <<'PY'
import json
rows = dict(line.split() for line in open("results.txt"))
def cells(p):
    report = json.load(open(f"p{p}.json"))
    return {c["case"]: c for c in report["cells"]}
alone, together = cells(1), cells(8)
same = lambda key: sum(alone[k].get(key) == together[k].get(key) for k in alone)
passed = lambda cs: sum(bool(c.get("passed")) for c in cs.values())
s1, s8 = float(rows["1"]), float(rows["8"])
print(f"agent-vision on Qwen2.5-Coder-0.5B, 2 threads, {len(alone)} questions")
print(f"--parallel 1: {s1:.1f} s, {passed(alone)} passed")
print(f"--parallel 8: {s8:.1f} s, {passed(together)} passed, {s1 / s8:.2f}x faster")
print(f"same reply: {same('output')}/{len(alone)}, same verdict: {same('passed')}/{len(alone)}")
PY
