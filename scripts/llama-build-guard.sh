# Sourced by the build scripts. llama.cpp must be compiled with GGML_LLAMAFILE=OFF
# (.cargo/config.toml): with it on, batched outputs differ from sequential ones. cargo does
# not rebuild llama-cpp-sys-2 when that setting first appears, so a target folder from
# before it still holds the old build; this finds such a build and removes it.
llama_build_guard() {
  local target="${CARGO_TARGET_DIR:-$HOME/.cache/promptlab/target}" cache profile dir
  for cache in "$target"/*/build/llama-cpp-sys-2-*/out/build/CMakeCache.txt; do
    [ -f "$cache" ] || continue
    grep -q '^GGML_LLAMAFILE:[A-Z]*=OFF$' "$cache" && continue
    dir="${cache#"$target"/}"
    profile="${dir%%/*}"
    [ "$profile" = debug ] && profile=dev
    echo "llama.cpp in $target was built with GGML_LLAMAFILE on: rebuilding it" >&2
    cargo clean --quiet -p llama-cpp-sys-2 --profile "$profile"
  done
}
llama_build_guard
