# Sourced by the build scripts. llama.cpp must be compiled with GGML_LLAMAFILE=OFF and
# GGML_CPU_REPACK=OFF (.cargo/config.toml): with either on, batched outputs differ from
# sequential ones. cargo does not rebuild llama-cpp-sys-2 when such a setting first
# appears, so a target folder from before it still holds the old build; this finds such a
# build and removes it.
llama_build_guard() {
  local target="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}" cache profile dir setting stale
  for cache in "$target"/*/build/llama-cpp-sys-2-*/out/build/CMakeCache.txt; do
    [ -f "$cache" ] || continue
    stale=""
    for setting in GGML_LLAMAFILE GGML_CPU_REPACK; do
      grep -q "^$setting:[A-Z]*=OFF\$" "$cache" || stale="$setting"
    done
    [ -n "$stale" ] || continue
    dir="${cache#"$target"/}"
    profile="${dir%%/*}"
    [ "$profile" = debug ] && profile=dev
    echo "llama.cpp in $target was built with $stale on: rebuilding it" >&2
    cargo clean --quiet -p llama-cpp-sys-2 --profile "$profile"
  done
}
llama_build_guard
