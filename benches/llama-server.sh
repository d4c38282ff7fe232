#!/usr/bin/env bash
# promptlab's batched local engine against llama.cpp's own server, on the same model and
# machine (issue 18's "not slower than llama.cpp's server with the same number of slots
# driven by 8 concurrent clients"). For each eval set (arithmetic: 128 cells; sentiment:
# 90 few-shot cells with a JSON schema), one at a time:
#   local-1   promptlab, --parallel 1 (the reference outputs);
#   local-8   promptlab, --parallel 8 (its default: batched, one instance per core);
#   server-1  llama-server with 1 slot, promptlab sending 1 request at a time;
#   server-8  llama-server with 8 slots (continuous batching, prompt cache on, its
#             defaults), promptlab sending 8 requests at a time as a `kind: openai` model.
# Prints wall seconds, speed against local-1, how many outputs equal local-1's, and how
# many of the server's 8-slot outputs equal its 1-slot ones.
#
# Needs llama-server, built from the llama.cpp source in the llama-cpp-python sdist (about
# 20 minutes on 2 cores; optional, never in CI):
#   pip download --no-binary :all: --no-deps llama-cpp-python -d ~/.cache/promptlab/llama-server
#   cd ~/.cache/promptlab/llama-server && tar xzf llama_cpp_python-*.tar.gz
#   cd llama_cpp_python-*/vendor/llama.cpp && cmake -B build -DGGML_NATIVE=OFF \
#     -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DCMAKE_BUILD_TYPE=Release
#   cmake --build build -j2 --target llama-server
# Usage: bash benches/llama-server.sh [SET...]   (default: arithmetic sentiment)
#   LLAMA_SERVER=path  the server binary (default: the newest one built as above);
#   MODEL=name         a catalog GGUF model (default smollm2);
#   PROMPTLAB_BIN / PROFILE as for the other benchmarks (benches/promptlab-binary.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
server="${LLAMA_SERVER:-$(ls -t "$HOME"/.cache/promptlab/llama-server/*/vendor/llama.cpp/build/bin/llama-server 2>/dev/null | head -n 1)}"
if [ -z "$server" ] || [ ! -x "$server" ]; then
  echo "llama-server not found: build it as the comment at the top says, or set LLAMA_SERVER" >&2
  exit 2
fi
source benches/promptlab-binary.sh
model_name="${MODEL:-smollm2}"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(arithmetic sentiment)

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
cp -a prompts eval-sets models "$work/"
cd "$work"
model_file="$(python3 - "$model_name" <<'PY'
import sys, yaml
entry = yaml.safe_load(open("models/models.yaml"))["models"][sys.argv[1]]
print(entry["path"])
PY
)"
model_file="$(readlink -f "models/$model_file")"
context="$(python3 -c "import yaml,sys; print(yaml.safe_load(open('models/models.yaml'))['models'][sys.argv[1]].get('context_size', 2048))" "$model_name")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 - "$model_name" "$port" <<'PY'
import sys, yaml
name, port = sys.argv[1], sys.argv[2]
catalog = yaml.safe_load(open("models/models.yaml"))
for slots in (1, 8):
    catalog["models"][f"server-{slots}"] = {
        "kind": "openai",
        "openai": {"model": name, "endpoints": [f"http://127.0.0.1:{port}/v1"], "concurrency": slots},
    }
yaml.safe_dump(catalog, open("models/models.yaml", "w"), sort_keys=False)
PY

# start_server SLOTS: llama-server with SLOTS slots of the model's context each
start_server() {
  "$server" --model "$model_file" --alias "$model_name" --threads 2 --threads-batch 2 \
    --parallel "$1" --ctx-size $(( $1 * context )) --host 127.0.0.1 --port "$port" \
    > "server-$1.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null && return 0
    sleep 0.5
  done
  echo "llama-server did not come up (server-$1.log):" >&2
  tail -n 20 "server-$1.log" >&2
  exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# run SET LABEL MODEL ARGS...: wall seconds of one evaluation
run() {
  local set="$1" label="$2" model="$3"; shift 3
  /usr/bin/time -f "%e" -o time.txt "$bin" eval "eval-sets/$set.yaml" --models "$model" \
    --threads 2 --no-store --quiet -o "$set-$label.json" "$@" > "$set-$label.log" 2>&1 || [ $? -eq 1 ]
  echo "$set $label $(tail -n 1 time.txt)" >> results.txt
}

for set in "${sets[@]}"; do
  run "$set" local-1 "$model_name" --parallel 1
  run "$set" local-8 "$model_name" --parallel 8
done
for slots in 1 8; do
  start_server "$slots"
  for set in "${sets[@]}"; do
    run "$set" "server-$slots" "server-$slots"
  done
  stop_server
done

python3 - "$model_name" "$("$server" --version 2>&1 | grep -m1 version)" <<'PY'
import json, sys
rows = [line.split() for line in open("results.txt")]
def outputs(set_name, label):
    report = json.load(open(f"{set_name}-{label}.json"))
    return {(report["columns"][c["column"]]["prompt_id"], c["case"]): c for c in report["cells"]}
names = {
    "local-1": "promptlab, --parallel 1",
    "local-8": "promptlab, --parallel 8",
    "server-1": "llama-server, 1 slot, 1 client",
    "server-8": "llama-server, 8 slots, 8 clients",
}
print(f"{sys.argv[1]}, 2 threads; llama-server {sys.argv[2]}")
print(f"{'set':<12}{'engine':<36}{'seconds':>9}{'vs p1':>8}{'errors':>8}{'same as p1':>12}{'same as 1 slot':>16}")
base_secs = {s: float(secs) for s, label, secs in rows if label == "local-1"}
for set_name, label, secs in rows:
    base = outputs(set_name, "local-1")
    got = outputs(set_name, label)
    errors = sum(1 for c in got.values() if c.get("error"))
    same = sum(1 for k, c in got.items() if not c.get("error") and c.get("output") == base[k].get("output"))
    secs = float(secs)
    # The server's own batch dependence: its 8-slot outputs against its 1-slot ones.
    own = ""
    if label == "server-8":
        alone = outputs(set_name, "server-1")
        own = f"{sum(1 for k, c in got.items() if c.get('output') == alone[k].get('output'))}/{len(got)}"
    print(f"{set_name:<12}{names[label]:<36}{secs:>9.2f}{base_secs[set_name] / secs:>7.2f}x{errors:>8}{same:>8}/{len(got)}{own:>16}")
PY
