#!/usr/bin/env bash
# Builds the user guide (docs/, an mdBook) into docs/book and checks that every link
# between its pages, and to a heading, leads somewhere. Installs mdbook with cargo when it
# is missing. Links to other sites are not followed (CI has no internet).
set -euo pipefail
cd "$(dirname "$0")/.."
mdbook="$(command -v mdbook || true)"
if [ -z "$mdbook" ]; then
  echo "installing mdbook (cargo install mdbook)" >&2
  # A target folder of its own: mdbook's build has no business in promptlab's.
  build="$(mktemp -d)"
  cargo install mdbook --locked --version 0.5.4 --target-dir "$build"
  rm -rf "$build"
  mdbook="${CARGO_HOME:-$HOME/.cargo}/bin/mdbook"
fi
# mdbook fails on a page SUMMARY.md lists but does not find (book.toml: create-missing).
"$mdbook" build docs
python3 scripts/check-book-links.py docs/book
