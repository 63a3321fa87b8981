#!/usr/bin/env bash
# The README's first run: prepare data and train MMoE on 2 ranks.
#
#   bash launch/demo.sh [build-dir]
#
# Uses the UCI Census-Income file when it is in MTL_DATA_DIR (default
# ../shared/data next to the checkout, or data/raw after data/download.sh),
# else the MMoE paper's synthetic data. Outputs go to <build-dir>/demo.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=$build/demo
mkdir -p "$out"
raw=${MTL_DATA_DIR:-}
for d in "$raw" "$here/../shared/data" "$here/data/raw"; do
  if [ -n "$d" ] && [ -f "$d/census-income.test.gz" ]; then raw=$d; break; fi
  raw=""
done
if [ -n "$raw" ]; then
  echo "+ census data from $raw"
  "$build/mtl_prep" --config "$here/configs/census.ini" --input "$raw/census-income.test.gz" \
    --output-dir "$out/census" --split 0.6,0.2,0.2
  data=$out/census
else
  echo "+ no UCI data found: synthetic data of the MMoE paper (correlation 0.5)"
  "$build/mtl_prep" synth --kind mmoe --correlation 0.5 --rows 100000 --seed 1 \
    --output-dir "$out/synth"
  data=$out/synth
fi
set -x
MTL_DIST="$build/mtl_dist" "$here/launch/local.sh" 2 --model mmoe \
  --train "$data/train.h5" --valid "$data/valid.h5" --test "$data/test.h5" \
  --epochs 5 --metrics-out "$out/metrics.jsonl" --predict-out "$out/predictions.h5" \
  --checkpoint-dir "$out/checkpoints"
