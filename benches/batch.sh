#!/usr/bin/env bash
# Batch-evaluation benchmark: the 64-case arithmetic eval set (two prompt variants, so
# 128 cells) on SmolLM2-135M with 2 threads, run in one go:
#   sequential (--parallel 1), batched (--parallel 4 and 8), a cached re-run, a re-run
#   after editing one of the two prompts, the agreement of batched greedy outputs with
#   sequential ones, and the peak RSS of the --parallel 8 run.
# Usage: bash benches/batch.sh   (after scripts/setup.sh or scripts/fetch-models.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# PROMPTLAB_BIN=path measures that binary as it is (a test build, say) instead.
source benches/promptlab-binary.sh

work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cp -a prompts eval-sets models "$work/"
cd "$work"

# run LABEL ARGS...: wall seconds and peak RSS (KiB) of one evaluation
run() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o time.txt "$bin" eval eval-sets/arithmetic.yaml \
    --threads 2 --quiet "$@" > "$label.log" 2>&1 || [ $? -eq 1 ]
  read -r secs rss < <(tail -n 1 time.txt)
  echo "$label $secs $rss" >> results.txt
}

run sequential --parallel 1 --no-cache --store seq.db -o seq.json
run parallel4 --parallel 4 --no-cache --store p4.db -o p4.json
run parallel8 --parallel 8 --no-cache --store p8.db -o p8.json
run cached --parallel 8 --store p8.db
sed -i 's/You are a calculator. Reply with the number only./You are a calculator. Reply with the result only./' prompts/arithmetic.yaml
run edited --parallel 8 --store p8.db -o edited.json

python3 - "$(stat -L -c %s models/SmolLM2-135M-Instruct.Q4_1.gguf)" <<'PY'
import json, sys
model_bytes = int(sys.argv[1])
rows = {}
for line in open("results.txt"):
    label, secs, rss = line.split()
    rows[label] = (float(secs), int(rss))
cells = len(json.load(open("seq.json"))["cells"])
def outputs(path):
    r = json.load(open(path))
    return {(r["columns"][c["column"]]["id"], r["cases"][c["case"]]["id"]): c["output"] for c in r["cells"]}
seq = outputs("seq.json")
def agree(path):
    other = outputs(path)
    return 100.0 * sum(seq[k] == other.get(k) for k in seq) / len(seq)
edited = json.load(open("edited.json"))
regenerated = sum(1 for c in edited["cells"] if not c.get("cached"))
s, p8 = rows["sequential"][0], rows["parallel8"][0]
print(f"SmolLM2-135M Q4_1, 2 threads, {cells} cells (64 cases x 2 prompts), wall time per process")
print(f"{'run':<34}{'seconds':>9}{'cells/s':>9}{'vs seq':>8}{'agree':>8}")
for label, name, report in [("sequential", "sequential (--parallel 1)", "seq.json"),
                            ("parallel4", "batched (--parallel 4)", "p4.json"),
                            ("parallel8", "batched (--parallel 8)", "p8.json")]:
    secs = rows[label][0]
    print(f"{name:<34}{secs:>9.2f}{cells/secs:>9.1f}{s/secs:>7.2f}x{agree(report):>7.1f}%")
c = rows["cached"][0]
e = rows["edited"][0]
print(f"{'cached re-run (--parallel 8)':<34}{c:>9.2f}{'':>9}{'':>8}   {100*c/p8:.1f}% of the first run")
print(f"{'re-run after editing 1 of 2 prompts':<34}{e:>9.2f}{'':>9}{'':>8}   {100*e/p8:.1f}% of the first run ({regenerated} cells generated)")
print(f"peak RSS with --parallel 8: {rows['parallel8'][1]/1024:.1f} MiB (model file {model_bytes/1048576:.1f} MiB)")
PY
