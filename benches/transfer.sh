#!/usr/bin/env bash
# Transfer-learning learning curves: test accuracy (with its Wilson 95% interval), training
# time and images/s for 100, 1,000 and 10,000 labelled training images, on Fashion-MNIST
# and MNIST, for four starting points:
#   scratch       the `mnist` preset CNN from random weights, every layer trained;
#   mnist-cnn     that CNN trained first on all of MNIST, its convolution blocks frozen
#                 (--init, --freeze 8), the dense layers trained (Fashion-MNIST only: on
#                 MNIST it would have seen the test digits' siblings);
#   mobilenet     MobileNetV2's ImageNet features (--backbone mobilenet_v2, --freeze all),
#                 a new classes layer trained;
#   mobilenet-ft  MobileNetV2 with its last 3 of 19 blocks fine-tuned (--freeze 16).
# Every run tests on the full 10,000-image test set. Prints a Markdown table and writes the
# runs as learning curves (HTML, REPORT=path, default ~/.cache/promptlab/learning-curves.html): "features s"
# is the time spent computing the frozen layers' output (training images and the test set;
# 0 when the feature cache had them, which it is emptied of first), "training s" the rest.
# Usage: bash benches/transfer.sh   (after scripts/fetch-vision.sh, and
#   FASHION=1 scripts/fetch-datasets.sh)
#   SIZES="100 1000" and DATASETS=fashion-mnist narrow it; IMAGE_SIZE (default 96) is the
#   side MobileNetV2 sees; PROMPTLAB_BIN / PROFILE as in benches/promptlab-binary.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/promptlab-binary.sh
sizes="${SIZES:-100 1000 10000}"
datasets="${DATASETS:-fashion-mnist mnist}"
image_size="${IMAGE_SIZE:-96}"
data_root="${PROMPTLAB_DATASETS:-$HOME/.cache/promptlab/datasets}"
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
results="$work/results.tsv"
# Features computed by earlier runs would make the first runs look cheaper than they are.
rm -rf "${PROMPTLAB_VISION_CACHE:-$HOME/.cache/promptlab/vision}/features"

# Epochs by training-set size: small sets need more passes; early stopping keeps the best.
epochs_for() { case "$1" in 100) echo 40 ;; 1000) echo 15 ;; *) echo 6 ;; esac; }

train() { # dataset size method output-name extra-args...
  local dataset="$1" size="$2" method="$3" name="$4"
  shift 4
  local epochs
  epochs="$(epochs_for "$size")"
  "$bin" vision digits train --dataset "$dataset" --data "$data_root/$dataset" \
    --limit "$size" --epochs "$epochs" --patience 5 --seed 1 --project "$work" \
    -o "$work/$name.safetensors" "$@" > "$work/$name.log" 2>&1 || {
    echo "$name failed:" >&2; cat "$work/$name.log" >&2; exit 1; }
  python3 - "$work/$name.json" "$dataset" "$size" "$method" >> "$results" <<'PY'
import json, math, sys
card = json.load(open(sys.argv[1]))
test = card["test"]
n, p = test["samples"], test["accuracy"]
z = 1.959964
centre = (p + z * z / (2 * n)) / (1 + z * z / n)
half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
epochs = card["epochs"]
rate = sum(e["images_per_s"] for e in epochs) / max(len(epochs), 1)
features = card.get("feature_seconds", 0.0)
print("\t".join(map(str, [sys.argv[2], sys.argv[3], sys.argv[4], f"{p:.4f}",
      f"{centre - half:.4f}", f"{centre + half:.4f}", f"{features:.1f}",
      f"{card['train_seconds'] - features:.1f}", f"{rate:.0f}", len(epochs)])))
PY
}

for dataset in $datasets; do
  if [ "$dataset" = fashion-mnist ]; then
    # The MNIST-trained CNN the mnist-cnn rows start from: all 60,000 digits, 3 epochs.
    "$bin" vision digits train --dataset mnist --data "$data_root/mnist" --epochs 3 --seed 1 \
      --no-store -o "$work/mnist-base.safetensors" > "$work/mnist-base.log" 2>&1
  fi
  for size in $sizes; do
    train "$dataset" "$size" scratch "$dataset-$size-scratch"
    if [ "$dataset" = fashion-mnist ]; then
      train "$dataset" "$size" mnist-cnn "$dataset-$size-init" \
        --init "$work/mnist-base.safetensors" --freeze 8
    fi
    train "$dataset" "$size" mobilenet "$dataset-$size-mobilenet" \
      --backbone mobilenet_v2 --image-size "$image_size" --freeze all --lr 0.003
    train "$dataset" "$size" mobilenet-ft "$dataset-$size-finetune" \
      --backbone mobilenet_v2 --image-size "$image_size" --freeze 16 --lr 0.0005
  done
done

echo "| data set | labelled images | start | test accuracy [95% CI] | features s | training s | images/s per epoch | epochs |"
echo "|---|---:|---|---|---:|---:|---:|---:|"
while IFS=$'\t' read -r dataset size method accuracy low high features seconds rate epochs; do
  echo "| $dataset | $size | $method | $accuracy [$low–$high] | $features | $seconds | $rate | $epochs |"
done < "$results"
report="${REPORT:-$HOME/.cache/promptlab/learning-curves.html}"
"$bin" report training:curve --store "$work/.promptlab/runs.db" -o "$report" >&2
