#!/usr/bin/env bash
# Records promptfoo's verdicts on the configs here into each folder's expected.json, which
# tests/integration/promptfoo.rs compares promptlab's with (CI needs no promptfoo).
# PROMPTFOO_DIR: a folder with `npm install promptfoo@0.118` done.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
promptfoo="${PROMPTFOO_DIR:-/root/.cache/promptlab/promptfoo-b}/node_modules/.bin/promptfoo"
export PROMPTFOO_CONFIG_DIR="${PROMPTFOO_CONFIG_DIR:-$(mktemp -d)}" PROMPTFOO_DISABLE_TELEMETRY=1 PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_CACHE_ENABLED=false
for config in "$here"/*/promptfooconfig.yaml; do
  dir="$(dirname "$config")"
  out="$(mktemp --suffix=.json)"
  (cd "$dir" && "$promptfoo" eval -c promptfooconfig.yaml -o "$out" --no-cache >/dev/null 2>&1) || true
  node - "$out" "$dir/expected.json" <<'JS'
const fs = require('fs');
const [out, expected] = process.argv.slice(2);
const results = JSON.parse(fs.readFileSync(out, 'utf8')).results.results;
results.sort((a, b) => a.testIdx - b.testIdx || a.promptIdx - b.promptIdx);
const verdicts = results.map((r) => {
  // componentResults lists an assert-set's result (it has no `assertion`), then its members.
  const parts = [];
  const components = r.gradingResult?.componentResults || [];
  for (let i = 0; i < components.length; i++) {
    parts.push(components[i]);
    if (!components[i].assertion && components[i].componentResults) i += components[i].componentResults.length;
  }
  return {
    test: r.testIdx,
    description: r.testCase.description || '',
    pass: r.success,
    error: r.failureReason === 2,
    assertions: parts.map((c) => c.pass),
  };
});
fs.writeFileSync(expected, JSON.stringify({ promptfoo: '0.118', verdicts }, null, 1) + '\n');
JS
  rm -f "$out"
  echo "recorded $dir/expected.json"
done
