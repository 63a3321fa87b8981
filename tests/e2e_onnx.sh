#!/usr/bin/env bash
# ONNX export checked by a real ONNX Runtime: each of the five models trains
# briefly on census (synthetic data when the census file is absent), is
# exported with `mtl_dist export`, passes onnx.checker (Debian python3-onnx,
# when importable), and ONNX Runtime (npm onnxruntime-node, CPU) scores the
# test split: every output within 1e-5 of `mtl_dist predict` on the same rows.
# Exit 77 (ctest SKIP) only when node or npm is missing.
set -euo pipefail
BIN=${MTL_BIN:?} SRC=${MTL_SRC:?}
PY=${PYTHON3:-/usr/bin/python3}
TOL=1e-5
ORT_VERSION=1.30.0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are needed to run ONNX Runtime (Debian: nodejs, npm)"
  exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_onnx.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
dist() { timeout 300 "$BIN/mtl_dist" "$@"; }

# ONNX Runtime in the build tree. --ignore-scripts: the package's install
# script fetches GPU pieces from a host that cannot be reached; the CPU
# runtime is inside the package.
ORT=$BIN/onnxruntime
if [ ! -f "$ORT/node_modules/onnxruntime-node/package.json" ]; then
  echo "== npm install onnxruntime-node@$ORT_VERSION into $ORT =="
  mkdir -p "$ORT"
  if ! (cd "$ORT" && timeout 600 npm install --ignore-scripts --no-audit --no-fund --silent \
      "onnxruntime-node@$ORT_VERSION" >"$WORK/npm.log" 2>&1); then
    cat "$WORK/npm.log"
    echo "FAIL: npm install onnxruntime-node failed"
    exit 1
  fi
fi
export NODE_PATH=$ORT/node_modules

CENSUS=${MTL_DATA_DIR:+$MTL_DATA_DIR/census-income.test.gz}
if [ -n "$CENSUS" ] && [ -f "$CENSUS" ]; then
  echo "== data: census (test split of a 0.6/0.2/0.2 split) =="
  "$BIN/mtl_prep" --config "$SRC/configs/census.ini" --input "$CENSUS" --output-dir "$WORK/data" \
    --split 0.6,0.2,0.2 >/dev/null
  tasks=(marital income) # esmm: ctr task, ctcvr task
else
  echo "== data: synthetic (census-income.test.gz not in MTL_DATA_DIR='${MTL_DATA_DIR:-}') =="
  "$BIN/mtl_prep" synth --kind ctr --rows 8000 --sparse-fields 6 --vocab 40 --dense-fields 3 \
    --seed 3 --output-dir "$WORK/data" >/dev/null
  tasks=(click conversion)
fi
D=(--train "$WORK/data/train.h5" --epochs 1 --max-steps 40 --batch-size 512 --quiet)

# one variant of each model, between them every kind of block: multi-layer
# bottoms, towers and experts, batch norm, dropout, gate hidden layers, levels
declare -A opts=(
  [shared_bottom]="--bottom-units 32,16 --tower-units 8 --batch-norm true"
  [esmm]="--tower-units 16,8 --ctr-task ${tasks[0]} --ctcvr-task ${tasks[1]}"
  [mmoe]="--num-experts 4 --expert-units 16 --dropout 0.1 --tower-units 8,4/16 --activation tanh"
  [cgc]="--num-experts-specific 2 --num-experts-shared 2 --expert-units 16,8 --gate-units 8/4,4"
  [ple]="--num-levels 2 --num-experts-specific 2 --num-experts-shared 1 --batch-norm true --gate-units 4/none/8 --activation sigmoid"
)
have_checker=1
for model in shared_bottom esmm mmoe cgc ple; do
  echo "== $model =="
  dir=$WORK/$model
  read -r -a extra <<<"${opts[$model]}"
  if ! dist --model "$model" "${D[@]}" "${extra[@]}" --checkpoint-dir "$dir/ck" --seed 5; then
    fail "$model: training failed"
    continue
  fi
  ck=$(ls "$dir"/ck/ckpt-*.h5 | sort | tail -1)
  if ! dist export --checkpoint "$ck" --onnx "$dir/model.onnx"; then
    fail "$model: export failed"
    continue
  fi
  rc=0
  "$PY" "$SRC/tests/onnx_rows.py" --check "$dir/model.onnx" >"$dir/check.out" || rc=$?
  cat "$dir/check.out"
  if [ $rc -eq 77 ]; then
    have_checker=0
  elif [ $rc -ne 0 ]; then
    fail "$model: onnx.checker rejects the export"
  elif ! grep -q "config,dense_names,.*sparse_names,.*vocab_sizes" "$dir/check.out"; then
    fail "$model: metadata_props lack the config, column names or vocabulary sizes"
  fi
  dist predict --checkpoint "$ck" --data "$WORK/data/test.h5" --predict-out "$dir/pred.h5" --quiet
  "$PY" "$SRC/tests/onnx_rows.py" "$WORK/data/test.h5" "$dir/pred.h5" "$dir/rows"
  if node "$SRC/tests/onnx_check.js" "$dir/model.onnx" "$dir/rows" "$TOL"; then
    ok "$model: ONNX Runtime agrees with mtl_dist predict within $TOL"
  else
    fail "$model: ONNX Runtime and mtl_dist predict differ"
  fi
done
[ $have_checker -eq 1 ] || echo "note: onnx.checker not run (no python3-onnx)"

echo "== export errors =="
rc=0
dist --model aitm "${D[@]}" --epochs 1 --checkpoint-dir "$WORK/aitm/ck" --quiet
out=$(dist export --checkpoint "$(ls "$WORK"/aitm/ck/ckpt-*.h5 | tail -1)" --onnx "$WORK/aitm.onnx" 2>&1) || rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"export: model aitm is not supported yet"* ]] &&
  ok "aitm: export refuses it, naming the model" || fail "aitm export: exit $rc: $out"
rc=0
out=$(dist export --checkpoint "$WORK/mmoe/ck/none.h5" 2>&1) || rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"export needs --checkpoint FILE and --onnx FILE"* ]] &&
  ok "export without --onnx: exit 2 ($out)" || fail "export without --onnx: exit $rc: $out"
rc=0
out=$(dist export --checkpoint "$WORK/data/test.h5" --onnx "$WORK/x.onnx" 2>&1) || rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"$WORK/data/test.h5"* ]] && [ ! -e "$WORK/x.onnx" ] &&
  ok "export of a data file: exit 1 ($out)" || fail "export of a data file: exit $rc: $out"
rc=0
out=$(dist export --checkpoint "$ck" --onnx "$WORK/no/such/dir/x.onnx" 2>&1) || rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"$WORK/no/such/dir/x.onnx: cannot create"* ]] &&
  ok "export into a missing directory: exit 1" || fail "export into a missing directory: exit $rc: $out"

if [ $failures -gt 0 ]; then echo "e2e_onnx: $failures check(s) FAILED"; exit 1; fi
echo "e2e_onnx: all checks passed"
