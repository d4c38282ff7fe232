#!/usr/bin/env bash
# Remote-engine benchmark: one eval set (32 short stories, up to 64 tokens each, greedy) on
# the same SmolLM2-135M file with 2 threads, run four ways in one script, one at a time:
#   local llama.cpp, one cell at a time and 8 together (--parallel 1 / 8);
#   through `promptlab serve --parallel 8` as a `kind: openai` model, 1 and 8 requests in flight;
#   through llama-cpp-python's OpenAI server as a `kind: openai` model (it serves one
#   request at a time, so 1 in flight).
# Prints wall time, generated tokens per second over the run, and how many outputs equal
# the local sequential run's.
# Needs llama-cpp-python's server in ~/.cache/promptlab/bench-venv (or PROMPTLAB_BENCH_VENV):
#   python3 -m venv ~/.cache/promptlab/bench-venv
#   CMAKE_ARGS="-DGGML_NATIVE=OFF" ~/.cache/promptlab/bench-venv/bin/pip install 'llama-cpp-python[server]'
# Usage: bash benches/remote.sh   (after scripts/fetch-models.sh)
#   PROFILE=debug uses the test build (dependencies optimised) instead of a release build;
#   PROMPTLAB_BIN=path uses that binary as it is; NO_REFERENCE=1 leaves out llama-cpp-python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PROMPTLAB_BENCH_VENV:-$HOME/.cache/promptlab/bench-venv}"
python="$venv/bin/python"
if [ -n "${NO_REFERENCE:-}" ]; then
  python=python3
else
  "$python" -c "import llama_cpp.server" 2>/dev/null || {
    echo "llama-cpp-python's server is not installed in $venv (see the comment at the top; NO_REFERENCE=1 skips it)" >&2
    exit 2
  }
fi
source benches/promptlab-binary.sh
model="$(readlink -f models/SmolLM2-135M-Instruct.Q4_1.gguf)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/prompts" "$work/eval-sets" "$work/models"
cd "$work"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
serve_port=$(free_port)
lcp_port=$(free_port)
cat > models/models.yaml <<EOF
models:
  smollm2:
    path: $model
    context_size: 2048
  via-serve:
    kind: openai
    openai: {model: smollm2, endpoints: ["http://127.0.0.1:$serve_port/v1"], concurrency: 8}
  via-serve-1:
    kind: openai
    openai: {model: smollm2, endpoints: ["http://127.0.0.1:$serve_port/v1"], concurrency: 1}
  via-llama-cpp-python:
    kind: openai
    openai: {model: smollm2, endpoints: ["http://127.0.0.1:$lcp_port/v1"], concurrency: 1}
EOF
cat > prompts/story.yaml <<'EOF'
name: story
params: {temperature: 0, max_tokens: 64}
messages:
  - role: user
    content: "Write a short story about {{ topic }}."
EOF
{
  echo "name: stories"
  echo "prompts: [story]"
  echo "models: [smollm2]"
  echo "cases:"
  for topic in "a lighthouse keeper" "a lost dog" "the first day of school" "a dragon who cannot fly" \
    "a robot gardener" "a storm at sea" "a haunted library" "two rival bakers" "a talking cat" \
    "a broken clock" "a desert caravan" "an old violin" "a snowed-in village" "a lucky coin" \
    "the last train home" "a secret garden" "a clumsy wizard" "a mountain rescue" "a city of glass" \
    "a forgotten letter" "a kite festival" "an underwater palace" "a midnight market" "a brave mouse" \
    "a runaway balloon" "a chess prodigy" "a lonely astronaut" "a painted door" "a sleepy bear" \
    "a river ferry" "a mapmaker's daughter" "a summer fair"; do
    echo "  - vars: {topic: \"$topic\"}"
  done
} > eval-sets/stories.yaml

# wait_for PORT: until the server answers /v1/models (120 s at most)
wait_for() {
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$1/v1/models" > /dev/null && return 0
    sleep 0.5
  done
  echo "the server on port $1 did not come up" >&2
  exit 1
}

# run LABEL MODEL ARGS...: wall seconds of one evaluation
run() {
  local label="$1" model_name="$2"; shift 2
  /usr/bin/time -f "%e" -o time.txt "$bin" eval eval-sets/stories.yaml --models "$model_name" \
    --no-store --quiet -o "$label.json" "$@" > "$label.log" 2>&1 || [ $? -eq 1 ]
  echo "$label $(tail -n 1 time.txt)" >> results.txt
}

run local-1 smollm2 --threads 2 --parallel 1
run local-8 smollm2 --threads 2 --parallel 8

"$bin" serve --listen "127.0.0.1:$serve_port" --threads 2 --parallel 8 > serve.log 2>&1 &
server_pid=$!
wait_for "$serve_port"
run serve-1 via-serve-1
run serve-8 via-serve
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

version=none
if [ -z "${NO_REFERENCE:-}" ]; then
  "$python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
    --n_threads 2 --n_threads_batch 2 --n_ctx 2048 --host 127.0.0.1 --port "$lcp_port" > lcp.log 2>&1 &
  server_pid=$!
  wait_for "$lcp_port"
  run llama-cpp-python-1 via-llama-cpp-python
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  version="$("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
fi

"$python" - "$version" <<'PY'
import json, sys
rows = [line.split() for line in open("results.txt")]
def cells(label):
    report = json.load(open(f"{label}.json"))
    return {c["case"]: c for c in report["cells"]}
base = cells("local-1")
names = {
    "local-1": "local llama.cpp, 1 at a time",
    "local-8": "local llama.cpp, 8 together",
    "serve-1": "promptlab serve, 1 in flight",
    "serve-8": "promptlab serve, 8 in flight",
    "llama-cpp-python-1": f"llama-cpp-python {sys.argv[1]} server, 1 in flight",
}
print(f"SmolLM2-135M Q4_1, 2 threads, 32 cells of up to 64 tokens, greedy")
print(f"{'engine':<44}{'seconds':>9}{'tokens':>8}{'tok/s':>8}{'errors':>8}{'same text':>11}")
for label, secs in rows:
    got = cells(label)
    tokens = sum(c["completion_tokens"] for c in got.values() if not c.get("error"))
    errors = sum(1 for c in got.values() if c.get("error"))
    same = sum(1 for k, c in got.items() if c.get("output") == base[k].get("output"))
    secs = float(secs)
    print(f"{names[label]:<44}{secs:>9.2f}{tokens:>8}{tokens / secs:>8.1f}{errors:>8}{same:>8}/{len(got)}")
PY
