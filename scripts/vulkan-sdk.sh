#!/usr/bin/env bash
# Prints a VULKAN_SDK folder that llama.cpp's Vulkan backend builds with, making one when
# the system's headers are too old. llama.cpp needs Vulkan headers 1.3.261 or newer
# (VK_EXT_layer_settings); Debian 12 ships 1.3.239, so on such a system this takes the
# headers (and SPIRV-Headers) from Debian 13's packages into
# ~/.cache/promptlab/vulkan-sdk, beside a link to the system's Vulkan loader. The system
# still needs the loader and glslc: `apt-get install libvulkan-dev glslc`
# (mesa-vulkan-drivers adds lavapipe, a Vulkan device that runs on the CPU).
# Usage: export VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)"
set -euo pipefail
header=/usr/include/vulkan/vulkan_core.h
if [ -f "$header" ] && grep -q VK_EXT_layer_settings "$header"; then
  echo /usr
  exit 0
fi
sdk="${PROMPTLAB_VULKAN_SDK:-$HOME/.cache/promptlab/vulkan-sdk}"
if grep -qs VK_EXT_layer_settings "$sdk/include/vulkan/vulkan_core.h"; then
  echo "$sdk"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: the Vulkan headers in /usr/include are older than llama.cpp needs (1.3.261); install newer ones (the LunarG Vulkan SDK) and set VULKAN_SDK" >&2
  exit 1
fi
loader=$(ls /usr/lib/*-linux-gnu/libvulkan.so.1 /usr/lib64/libvulkan.so.1 2>/dev/null | head -1 || true)
if [ -z "$loader" ]; then
  echo "error: no Vulkan loader: apt-get install libvulkan-dev glslc" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$work/sources.list"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
apt_options=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
echo "fetching Vulkan headers from Debian 13 into $sdk" >&2
apt-get "${apt_options[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_options[@]}" download libvulkan-dev spirv-headers >&2)
rm -rf "$sdk"
mkdir -p "$sdk/lib" "$work/root"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
cp -a "$work/root/usr/include" "$sdk/include"
ln -s "$loader" "$sdk/lib/libvulkan.so"
echo "$sdk"
