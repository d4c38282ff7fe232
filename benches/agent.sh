#!/usr/bin/env bash
# Agent-set benchmark: eval-sets/agent-vision.yaml (31 questions about photos, digits and
# arithmetic, Qwen2.5-Coder-0.5B calling the vision tools and the calculator) with the
# questions asked one after another (--parallel 1) and together (--parallel 8), one run
# after the other in one script. Prints wall time, the speed-up, how many questions got
# the same final reply and the same verdict (exit 1, failed questions, is fine), and where the one-at-a-time run's time went:
# reading prompts (each step's new tokens and the tool's run), generating, and the
# speed-up batching could give at most, from the model's batched decoding rate measured
# here on 16 generation-only requests at --parallel 8.
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
  "$bin" agent --eval eval-sets/agent-vision.yaml --model qwen2.5-0.5b --parallel "$p" \
    --no-store -o "p$p.json" "${limit[@]}" > "p$p.log" 2>&1 || [ $? -eq 1 ] || {
    echo "--parallel $p failed:" >&2; cat "p$p.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$p $(python3 -c "print($end - $start)")" >> results.txt
done

# Batched decoding alone: 16 requests that each generate ~100 tokens from a short prompt.
cat > prompts/bench-count.yaml <<'YAML'
name: bench-count
messages:
  - role: user
    content: "Write the numbers from {{ start }} to {{ start + 60 }}, separated by commas."
params:
  max_tokens: 128
YAML
{
  printf 'name: bench-count\nprompts: [bench-count]\nmodels: [qwen2.5-0.5b]\ncases:\n'
  for i in $(seq 0 15); do printf '  - vars: {start: %d}\n' $((i * 7 + 1)); done
} > eval-sets/bench-count.yaml
start=$(date +%s.%N)
"$bin" eval eval-sets/bench-count.yaml --threads 2 --parallel 8 --no-store --quiet \
  --min-pass-rate 0 -o count.json > count.log 2>&1 || { cat count.log >&2; exit 1; }
end=$(date +%s.%N)
echo "count $(python3 -c "print($end - $start)")" >> results.txt

python3 - <<'PY'
import json
rows = dict(line.split() for line in open("results.txt"))
def cases(p):
    return {c["case"]: c for c in json.load(open(f"p{p}.json"))["cases"]}
alone, together = cases(1), cases(8)
same_reply = sum(alone[k]["trace"]["answer"] == together[k]["trace"]["answer"] for k in alone)
same_verdict = sum(alone[k]["passed"] == together[k]["passed"] for k in alone)
passed = lambda cs: sum(bool(c["passed"]) for c in cs.values())
s1, s8 = float(rows["1"]), float(rows["8"])
print(f"agent-vision on Qwen2.5-Coder-0.5B, 2 threads, {len(alone)} questions")
print(f"--parallel 1: {s1:.1f} s, {passed(alone)} passed")
print(f"--parallel 8: {s8:.1f} s, {passed(together)} passed, {s1 / s8:.2f}x faster")
print(f"same reply: {same_reply}/{len(alone)}, same verdict: {same_verdict}/{len(alone)}")

# Where the one-at-a-time run's time went, from its traces.
first = reading = generating = 0.0
new_tokens = generated = 0
for i, case in enumerate(alone.values()):
    for j, step in enumerate(case["trace"]["steps"]):
        if i == 0 and j == 0:
            first = step["ttft_ms"] / 1000  # the system prompt, read once
            continue
        reading += step["ttft_ms"] / 1000
        generating += (step["generation_ms"] - step["ttft_ms"]) / 1000
        new_tokens += step["prompt_tokens"] - step["cached_prompt_tokens"]
        generated += step["generated_tokens"]
total = sum(c["trace"]["total_ms"] for c in alone.values()) / 1000
count = json.load(open("count.json"))["cells"]
batched_rate = sum(c["completion_tokens"] for c in count) / float(rows["count"])
print(f"one at a time, {total:.1f} s in questions: the system prompt {first:.1f} s; "
      f"reading {new_tokens} new prompt tokens and running tools {reading:.1f} s; "
      f"generating {generated} tokens {generating:.1f} s ({generated / generating:.1f} tok/s)")
print(f"batched decoding, 16 requests at --parallel 8: {batched_rate:.1f} tok/s")
rest = total - generating
print(f"at most {total / (rest + generated / batched_rate):.2f}x with generation at that rate; "
      f"{total / rest:.2f}x if generating cost nothing")
PY
