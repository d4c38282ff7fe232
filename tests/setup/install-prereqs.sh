#!/usr/bin/env bash
# Checks scripts/install-prereqs.sh and scripts/build-features.sh on the systems this
# machine is not: each case runs the script with PATH holding only stubs (apt-get, dnf,
# pacman, brew, sudo, uname, id and whichever tools the case says are installed) that
# log what they were asked, then compares the log with what that system needs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bash_bin="$(command -v bash)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

# stub NAME [BODY]: an executable that logs its name and arguments, then runs BODY.
stub() {
  printf '#!%s\necho "%s $*" >>"%s/log"\n%s\n' "$bash_bin" "$1" "$work" "${2:-}" >"$work/bin/$1"
  chmod +x "$work/bin/$1"
}

# run_case NAME OS ARCH UID "INSTALLED TOOLS" "PACKAGE MANAGERS" [ENV...]: runs the script
# and leaves its log, output and exit status in $log, $out and $status.
run_case() {
  local name=$1 os=$2 arch=$3 uid=$4 tools=$5 managers=$6
  shift 6
  rm -rf "$work/bin" "$work/root" "$work/log"
  mkdir -p "$work/bin" "$work/root"
  touch "$work/log"
  printf '#!%s\n[ "${1:-}" = -m ] && echo %s || echo %s\n' "$bash_bin" "$arch" "$os" >"$work/bin/uname"
  printf '#!%s\n[ "${1:-}" = -u ] && echo %s\n' "$bash_bin" "$uid" >"$work/bin/id"
  chmod +x "$work/bin/uname" "$work/bin/id"
  stub sudo '"$@"'
  local tool manager
  for manager in $managers; do
    stub "$manager" '[ "${1:-}" = --prefix ] && echo /opt/homebrew/opt/llvm || true'
  done
  for tool in $tools; do
    if [ "$tool" = libclang ]; then
      mkdir -p "$work/root/usr/lib/llvm-16/lib"
      touch "$work/root/usr/lib/llvm-16/lib/libclang-16.so.1"
    else
      printf '#!%s\n' "$bash_bin" >"$work/bin/$tool"
      chmod +x "$work/bin/$tool"
    fi
  done
  status=0
  out=$(env -i PATH="$work/bin" PROMPTLAB_SYSROOT="$work/root" "$@" \
    "$bash_bin" "$repo/scripts/install-prereqs.sh" 2>&1) || status=$?
  log=$(cat "$work/log")
  current=$name
}

expect() {
  local what=$1 expected=$2 actual=$3
  if [ "$expected" != "$actual" ]; then
    echo "FAIL $current: $what"
    echo "  expected: $expected"
    echo "  actual:   $actual"
    failures=$((failures + 1))
  fi
}

expect_contains() {
  local what=$1 needle=$2 haystack=$3
  if [[ $haystack != *"$needle"* ]]; then
    echo "FAIL $current: $what"
    echo "  expected to contain: $needle"
    echo "  actual: $haystack"
    failures=$((failures + 1))
  fi
}

everything="cmake cc c++ libclang python3 tmux chromium npm"

run_case "Debian, nothing installed, as a user" Linux x86_64 1000 "" "apt-get"
expect status 0 "$status"
expect log "sudo apt-get update -qq
apt-get update -qq
sudo apt-get install -y -qq cmake build-essential clang libclang-dev python3 python3-pip python3-venv tmux chromium npm
apt-get install -y -qq cmake build-essential clang libclang-dev python3 python3-pip python3-venv tmux chromium npm" "$log"

run_case "Debian as root, only tmux and libclang missing" Linux x86_64 0 "cmake cc c++ python3 chromium npm" "apt-get"
expect status 0 "$status"
expect log "apt-get update -qq
apt-get install -y -qq libclang-dev tmux" "$log"

run_case "Fedora" Linux x86_64 1000 "python3" "dnf"
expect status 0 "$status"
expect log "sudo dnf install -y cmake gcc gcc-c++ clang clang-devel tmux chromium npm
dnf install -y cmake gcc gcc-c++ clang clang-devel tmux chromium npm" "$log"

run_case "Arch" Linux x86_64 0 "cc c++ npm" "pacman"
expect status 0 "$status"
expect log "pacman -S --needed --noconfirm cmake clang python python-pip tmux chromium" "$log"

run_case "macOS with Xcode's tools" Darwin arm64 501 "cc c++ python3" "brew"
expect status 0 "$status"
expect log "brew install cmake llvm tmux node
brew install --cask chromium
brew --prefix llvm" "$log"
expect_contains "libclang hint" 'LIBCLANG_PATH="/opt/homebrew/opt/llvm/lib"' "$out"

run_case "macOS without a compiler" Darwin arm64 501 "" "brew"
expect status 1 "$status"
expect log "" "$log"
expect_contains "message" "xcode-select --install" "$out"

run_case "a system without a known package manager" Linux x86_64 1000 "cc c++ python3" ""
expect status 1 "$status"
expect log "" "$log"
expect_contains "message" "no known package manager" "$out"
expect_contains "packages" "  - libclang (the LLVM C library, its development package)" "$out"
expect_contains "packages" "  - cmake" "$out"

run_case "everything there" Linux x86_64 1000 "$everything" "apt-get dnf"
expect status 0 "$status"
expect log "" "$log"
expect output "" "$out"

run_case "build prerequisites only" Linux x86_64 0 "cmake" "apt-get" PROMPTLAB_PREREQS=build
expect status 0 "$status"
expect log "apt-get update -qq
apt-get install -y -qq build-essential clang libclang-dev" "$log"

# build_features: Metal on Apple Silicon, nothing by default elsewhere, extras added.
features() {
  env -i PATH="$work/bin" "$@" "$bash_bin" -c "source '$repo/scripts/build-features.sh'; build_features"
}
run_case "features on Apple Silicon" Darwin arm64 501 "$everything" "brew"
expect features "metal" "$(features)"
expect features "metal,mistralrs" "$(features PROMPTLAB_FEATURES=mistralrs)"
run_case "features on an Intel Mac" Darwin x86_64 501 "$everything" "brew"
expect features "" "$(features)"
run_case "features on Linux" Linux x86_64 1000 "$everything" "apt-get"
expect features "" "$(features)"
expect features "cuda,mistralrs" "$(features PROMPTLAB_FEATURES=cuda,mistralrs)"
stub nvidia-smi
hint=$(env -i PATH="$work/bin" "$bash_bin" -c "source '$repo/scripts/build-features.sh'; gpu_hint" 2>&1)
expect_contains "CUDA hint" "PROMPTLAB_FEATURES=cuda" "$hint"
hint=$(env -i PATH="$work/bin" PROMPTLAB_FEATURES=cuda "$bash_bin" -c "source '$repo/scripts/build-features.sh'; gpu_hint" 2>&1)
expect "no hint with cuda" "" "$hint"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "install-prereqs.sh and build-features.sh: every case passed"
