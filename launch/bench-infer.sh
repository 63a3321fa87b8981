#!/usr/bin/env bash
# Serving latency and throughput of census MMoE: libmtl_infer on 1 and 2
# threads, and ONNX Runtime (npm onnxruntime-node, one intra-op thread) on the
# same rows, same run: rows/s and per-call p50/p99 for batches of 1, 16, 256.
#
#   bash launch/bench-infer.sh [--build DIR] [--seconds S]
#
# Trains census MMoE (defaults, 2 epochs) unless DIR/bench-infer/ckpt.h5
# exists, exports it, and prints a markdown table (the README's). ONNX Runtime
# comes from DIR/onnxruntime (tests/e2e_onnx.sh installs it there); without
# node its rows are left out.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
seconds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    *) echo "usage: launch/bench-infer.sh [--build DIR] [--seconds S]" >&2; exit 2 ;;
  esac
  shift
done
raw=${MTL_DATA_DIR:-$here/../shared/data}
out=$build/bench-infer
mkdir -p "$out"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [ ! -f "$out/ckpt.h5" ]; then
  "$build/mtl_prep" --config "$here/configs/census.ini" --input "$raw/census-income.test.gz" \
    --output-dir "$out/census" --split 0.6,0.2,0.2 >/dev/null
  "$build/mtl_dist" --model mmoe --train "$out/census/train.h5" --epochs 2 --quiet \
    --checkpoint-dir "$out/ck"
  cp "$(ls "$out"/ck/ckpt-*.h5 | sort | tail -1)" "$out/ckpt.h5"
fi
"$build/mtl_dist" export --checkpoint "$out/ckpt.h5" --onnx "$out/model.onnx"
"$build/mtl_dist" predict --checkpoint "$out/ckpt.h5" --data "$out/census/test.h5" \
  --predict-out "$out/pred.h5" --quiet
"$PY" "$here/tests/onnx_rows.py" "$out/census/test.h5" "$out/pred.h5" "$out/rows"

{
  # OpenBLAS on the scoring threads themselves (see include/mtl/infer.h)
  OPENBLAS_NUM_THREADS=1 "$build/tests/bench_infer" "$out/ckpt.h5" "$out/rows" 1 "$seconds"
  OPENBLAS_NUM_THREADS=1 "$build/tests/bench_infer" "$out/ckpt.h5" "$out/rows" 2 "$seconds"
  if command -v node >/dev/null && [ -d "$build/onnxruntime/node_modules" ]; then
    NODE_PATH=$build/onnxruntime/node_modules node "$here/tests/bench/bench_onnx.js" \
      "$out/model.onnx" "$out/rows" "$seconds"
  fi
} | tee "$out/results.txt"

echo
echo "| runtime | threads | batch | rows/s | p50 µs | p99 µs |"
echo "|---|---:|---:|---:|---:|---:|"
sed -E 's/^(c|ort) threads=([0-9]+) batch=([0-9]+) rows_per_s=([0-9.]+) p50_us=([0-9.]+) p99_us=([0-9.]+).*/\1 \2 \3 \4 \5 \6/' \
  "$out/results.txt" | while read -r rt th b r p50 p99; do
  name=libmtl_infer
  [ "$rt" = ort ] && name="ONNX Runtime $(node -p "require('$build/onnxruntime/node_modules/onnxruntime-node/package.json').version" 2>/dev/null)"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$th" "$b" "$r" "$p50" "$p99"
done
