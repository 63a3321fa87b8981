#!/usr/bin/env bash
# launch/plot.sh draws learning curves and the test-AUC bar chart from
# metrics files as mtl_dist writes them (two real runs' worth of lines,
# written here): PNG files come out, and a file without epoch lines is an
# error naming it. Exit 77 (ctest SKIP) when gnuplot is missing.
set -euo pipefail
SRC=${MTL_SRC:?}
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot not installed (Debian: gnuplot-nox)"; exit 77; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_plot.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
for run in mmoe-1 ple-1 ple-2; do
  for e in 1 2 3; do
    echo "{\"epoch\":$e,\"train_loss\":{\"income\":0.$((30 - e)),\"marital\":0.$((20 - e))},\"valid_loss\":{\"income\":0.$((25 - e)),\"marital\":0.$((15 - e))},\"valid_auc\":{\"income\":0.9$e,\"marital\":0.98$e},\"samples_per_sec\":1000,\"epoch_seconds\":1,\"steps\":$((e * 10))}"
  done >"$WORK/census-$run.jsonl"
  echo "{\"final\":true,\"best_epoch\":3,\"test_auc\":{\"income\":0.94,\"marital\":0.99},\"steps\":30}" >>"$WORK/census-$run.jsonl"
done
png() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = "211PNG" ]; }
bash "$SRC/launch/plot.sh" "$WORK"/census-*.jsonl -o "$WORK/curves.png"
png "$WORK/curves.png" || { echo "FAIL: curves.png is not a PNG"; exit 1; }
bash "$SRC/launch/plot.sh" --bars "$WORK"/census-*.jsonl -o "$WORK/bars.png"
png "$WORK/bars.png" || { echo "FAIL: bars.png is not a PNG"; exit 1; }
echo '{"final":true}' >"$WORK/empty.jsonl"
if out=$(bash "$SRC/launch/plot.sh" "$WORK/empty.jsonl" -o "$WORK/x.png" 2>&1) ||
   [[ "$out" != *"empty.jsonl: no epoch lines"* ]]; then
  echo "FAIL: a file without epoch lines: $out"
  exit 1
fi
echo "e2e_plot: all checks passed"
