#!/usr/bin/env bash
# The benchmarks work (quick mode): launch/bench.sh prints a row per model and
# mode, and the production-size row; launch/bench-vocab.sh a row per
# vocabulary and mode (without its PyTorch reference: torch is no test
# dependency); launch/bench-multi.sh a row per rank count with a ratio. No speed is asserted: speed is measured by the benchmarks
# themselves, never by a test.
set -euo pipefail
BIN=${MTL_BIN:?} SRC=${MTL_SRC:?}
# (ldd captured first: with pipefail, grep -q closing the pipe early would fail ldd)
if [[ "$(ldd "$BIN/mtl_dist" 2>/dev/null)" == *libasan* ]]; then
  echo "SKIP: a sanitizer build (the benchmark runs on the release build)"
  exit 0
fi
OUT=$(mktemp -d "${TMPDIR:-/tmp}/e2e_bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
log=$OUT/bench.txt
timeout 600 bash "$SRC/launch/bench.sh" --quick --build "$BIN" --out "$OUT/work" >"$log" 2>&1 || {
  cat "$log"; echo "FAIL: launch/bench.sh --quick exited non-zero"; exit 1; }
cat "$log"
rows=$(grep -cE '^\| (mmoe|cgc|ple|shared_bottom|esmm) +\| [12]x[12] ' "$log" || true)
# 5 models x 3 modes, then the production-size MMoE on 1 and 2 ranks
if [ "$rows" -ne 17 ]; then echo "FAIL: expected 17 table rows, got $rows"; exit 1; fi
if grep -qE '\| +0k \|' "$log"; then echo "FAIL: a run reported 0 samples/s"; exit 1; fi
echo "e2e_bench: the benchmark table is complete"

log=$OUT/bench-vocab.txt
timeout 600 bash "$SRC/launch/bench-vocab.sh" --quick --no-torch --build "$BIN" --out "$OUT/vocab" \
  >"$log" 2>&1 || { cat "$log"; echo "FAIL: launch/bench-vocab.sh --quick exited non-zero"; exit 1; }
cat "$log"
# 4 vocabularies; 1 rank and 2 ranks replicated always run and report samples/s
ok=$(grep -cE '^\|[^|]*\| (1 rank|2 ranks, replicated) \| [0-9.,]+k? \|' "$log" || true)
if [ "$ok" -ne 8 ]; then echo "FAIL: expected 8 measured 1-rank/2-rank rows, got $ok"; exit 1; fi
if grep -q 'failed' "$log"; then echo "FAIL: a run failed"; exit 1; fi
echo "e2e_bench: the large-vocabulary table is complete"

log=$OUT/bench-multi.txt
timeout 600 bash "$SRC/launch/bench-multi.sh" --quick --build "$BIN" --out "$OUT/multi" \
  >"$log" 2>&1 || { cat "$log"; echo "FAIL: launch/bench-multi.sh --quick exited non-zero"; exit 1; }
cat "$log"
ok=$(grep -cE '^\| [12] \| [0-9.,]+k samples/s \| [0-9.,]+k samples/s \| [0-9.]+ \|$' "$log" || true)
if [ "$ok" -ne 2 ]; then echo "FAIL: expected 2 measured rows (1 and 2 ranks), got $ok"; exit 1; fi
echo "e2e_bench: the multi-valued fields table is complete"
