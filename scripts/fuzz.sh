#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer, AddressSanitizer) for a fixed
# time each, starting from a seed corpus of the shipped files, and prints how many inputs
# each ran. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Not part of CI: the stable property tests (tests/integration/property.rs) cover the same entry points.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# FUZZ_RUNS=N stops each target after N inputs instead (SECONDS_PER_TARGET still caps it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(eval_set prompt catalog promptfoo template chat_template gguf calculator server_reply model_reply)
fi
# Instrumented builds of every dependency: a target dir of their own.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/promptlab/fuzz-target}"
corpus_root="${FUZZ_CORPUS:-$HOME/.cache/promptlab/fuzz-corpus}"
findings="${FUZZ_FINDINGS:-$HOME/.cache/promptlab/fuzz-findings}"
mkdir -p "$findings"

seed() { # seed TARGET FILE...
    local dir="$corpus_root/$1"
    shift
    mkdir -p "$dir"
    for file in "$@"; do
        [ -f "$file" ] && cp "$file" "$dir/seed-$(basename "$(dirname "$file")")-$(basename "$file")"
    done
    return 0
}
seed_text() { # seed_text TARGET NAME TEXT
    mkdir -p "$corpus_root/$1"
    printf '%s' "$3" >"$corpus_root/$1/seed-$2"
}

seed eval_set eval-sets/*.yaml
seed prompt prompts/*.yaml
seed catalog models/models.yaml
seed promptfoo tests/fixtures/promptfoo/*/promptfooconfig.yaml
seed template prompts/*.yaml
seed_text template loops '{% for i in range(3) %}{% for j in range(3) %}{{ i * j }}{% endfor %}{% endfor %}'
seed_text template macro '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}'
seed_text template filters "{{ data | tojson }} {{ data | dump }} {{ '[1, 2]' | load }} {{ name | upper }}"
seed_text chat_template chatml "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
seed_text chat_template tools "{%- if tools %}{%- for tool in tools %}{{- tool | tojson }}{%- endfor %}{%- endif %}{%- for message in messages %}{{- message.role + ': ' + message.content }}{%- endfor %}"
mkdir -p "$corpus_root/gguf"
python3 scripts/gguf_seed.py "$corpus_root/gguf/seed-small.gguf"
for expression in '1234 * 5678' '(2 + 3) ^ 4 / 7' '-(-(-1.5)) + 0.25' '2 ^ 0.5' '((9 ^ 10) ^ 10) ^ 10' '(0.5 ^ 100) ^ 100' '100 / (3 - 3)' '12 % 5 + 7 // 2'; do
    seed_text calculator "$(printf '%s' "$expression" | sha1sum | cut -c1-8)" "$expression"
done
# The first byte is where the stream is cut (every 16 bytes here).
seed_text server_reply stream "$(printf '\x10')data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}

data: [DONE]

"
seed_text server_reply whole "$(printf '\x40'){\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1}\"}}]},\"finish_reason\":\"tool_calls\"}]}"
seed_text model_reply hermes '<tool_call>
{"name": "calculator", "arguments": {"expression": "2 + 2"}}
</tool_call>'
seed_text model_reply json '{"tool": "detect_objects", "arguments": {"image": "photos/bus.jpg", "classes": ["person"]}}'
seed_text model_reply answer '{"answer": "4"}'
seed_text model_reply verdict '{"reason": "matches", "pass": true, "score": 0.9}'

cargo +nightly fuzz build --release
for target in "${targets[@]}"; do
    log="$findings/$target.log"
    # -max_len 65536: eval sets and templates are longer than libFuzzer's default 4 KiB.
    limits=(-max_total_time="$seconds")
    [ -n "${FUZZ_RUNS:-}" ] && limits+=(-runs="$FUZZ_RUNS")
    if ! cargo +nightly fuzz run --release "$target" "$corpus_root/$target" -- \
        "${limits[@]}" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix="$findings/$target-" -print_final_stats=1 >"$log" 2>&1; then
        echo "$target: FAILED, see $log"
        tail -n 30 "$log"
        exit 1
    fi
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1)
    echo "$target: ${runs:-?}, no crash"
done
