#!/usr/bin/env bash
# The benchmark works (quick mode): it prints a row per model and mode, and the
# production-size row. No speed is asserted: speed is measured by
# launch/bench.sh itself, never by a test.
set -euo pipefail
BIN=${MTL_BIN:?} SRC=${MTL_SRC:?}
if ldd "$BIN/mtl_dist" 2>/dev/null | grep -q libasan; then
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
