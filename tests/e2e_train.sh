#!/usr/bin/env bash
# End-to-end training runs: what a user does with the two tools.
#  - a file written by h5py (gzip, chunked) trains, one rank and two;
#  - the five models train; the metrics JSON lines have the documented keys,
#    and stay JSON for task names with quotes, backslashes, tabs, non-ASCII;
#  - MMoE, CGC and PLE report what their gates learned (valid_gates,
#    test_gates, *_gate_entropy, *_gate_entropy_uniform; a "gates" console
#    line per evaluation), each gate's mean weights summing to 1; the other
#    models report none; 2 ranks give the 1-rank gate statistics;
#  - 4 epochs straight == 2 epochs + --resume + 2 epochs, bit for bit;
#  - --predict-out and `mtl_dist predict` write /predictions that agree;
#  - ESMM writes pctr, pcvr, pctcvr; regression tasks report MSE/MAE;
#  - per-task towers are in the checkpoint (h5py), predict needs no options,
#    and a list count that does not match the tasks is an option error;
#  - a config file is read and the command line overrides it;
#  - the README's demo runs.
set -euo pipefail
BIN=${MTL_BIN:?} SRC=${MTL_SRC:?}
PY=${PYTHON3:-/usr/bin/python3}
MPI=${MPIEXEC:-mpirun}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_train.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
dist() { timeout 120 "$BIN/mtl_dist" "$@"; }
mpi() { local n=$1; shift; timeout 120 "$MPI" -np "$n" --oversubscribe "$BIN/mtl_dist" "$@"; }
json() { "$PY" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(eval(sys.argv[2]))" "$@"; }
# check_gates MODEL METRICS STDOUT: the gate statistics of a run on the
# synthetic click log (tasks click, conversion; PLE: 2 levels)
check_gates() {
  local out
  if out=$("$PY" - "$@" 2>&1 <<'PY'
import json, math, sys
model, metrics, stdout = sys.argv[1:4]
lines = [json.loads(l) for l in open(metrics)]
console = open(stdout).read().splitlines()
tasks = ["click", "conversion"]
want = {"mmoe": tasks, "cgc": tasks,
        "ple": [f"levels.0.{t}" for t in tasks] + ["levels.0.shared"] + [f"levels.1.{t}" for t in tasks]}
gate_lines = [l for l in console if l.startswith("gates")]
if model not in want:
    keys = sorted(k for l in lines for k in l if "gate" in k)
    assert not keys, f"a model without gates writes {keys}"
    assert not gate_lines, f"a model without gates prints {gate_lines}"
    print("no gate keys, no gates line")
    sys.exit(0)
names = want[model]
evals = [("valid", l) for l in lines if not l.get("final")] + [("test", lines[-1])]
assert len(evals) == 3 and lines[-1].get("final"), "want 2 epoch lines and a final line"
for prefix, line in evals:
    gates, ent, uni = (line[f"{prefix}_{k}"] for k in ("gates", "gate_entropy", "gate_entropy_uniform"))
    assert list(gates) == names and list(ent) == names and list(uni) == names, (prefix, list(gates))
    for name, w in gates.items():
        K = len(w)
        assert abs(sum(w) - 1) <= 1e-4 and min(w) >= 0, (prefix, name, sum(w))
        assert abs(uni[name] - math.log(K)) < 1e-12, (prefix, name, uni[name], K)
        assert 0 <= ent[name] <= math.log(K) + 1e-9, (prefix, name, ent[name])
assert [l.split(":")[0] for l in gate_lines] == ["gates valid"] * 2 + ["gates test"], gate_lines
for name in names:
    assert f" {name} H=" in gate_lines[-1], (name, gate_lines[-1])
print(f"{len(names)} gates, weights sum to 1; {gate_lines[-1]}")
PY
  ); then
    ok "$1: $out"
  else
    fail "$1 gate statistics: $out"
  fi
}

echo "== a dataset written by h5py trains =="
if "$PY" -c "import h5py" 2>/dev/null; then
  "$PY" "$SRC/tests/h5py_write.py" "$WORK/h5py_train.h5" --rows 3000 --seed 1
  "$PY" "$SRC/tests/h5py_write.py" "$WORK/h5py_test.h5" --rows 500 --seed 2
  if dist --model mmoe --train "$WORK/h5py_train.h5" --test "$WORK/h5py_test.h5" --epochs 2 \
      --batch-size 256 --quiet --metrics-out "$WORK/h5py.jsonl" &&
     mpi 2 --model ple --train "$WORK/h5py_train.h5" --test "$WORK/h5py_test.h5" --epochs 1 \
      --batch-size 256 --quiet; then
    ok "h5py file trains on 1 and 2 ranks"
  else
    fail "h5py file did not train"
  fi
  # numpy's defaults (int64 ids, float64 values, no casts) under h5py's and
  # hdf5plugin's filters: converted on read, the same training as float32
  for c in lzf blosc bitshuffle; do
    "$PY" "$SRC/tests/h5py_write.py" "$WORK/np_$c.h5" --rows 3000 --seed 1 --numpy-defaults \
      --compression "$c"
    if dist --model mmoe --train "$WORK/np_$c.h5" --test "$WORK/h5py_test.h5" --epochs 2 \
        --batch-size 256 --quiet --metrics-out "$WORK/np_$c.jsonl" &&
       mpi 2 --model mmoe --train "$WORK/np_$c.h5" --test "$WORK/h5py_test.h5" --epochs 1 \
        --batch-size 256 --quiet; then
      if [ "$(json "$WORK/np_$c.jsonl" "r[-1]['test_auc']")" = "$(json "$WORK/h5py.jsonl" "r[-1]['test_auc']")" ]; then
        ok "int64/float64 file compressed with $c trains on 1 and 2 ranks, as its float32 twin"
      else
        fail "int64/float64 $c file: test AUC differs from the float32 gzip file's"
      fi
    else
      fail "int64/float64 file compressed with $c did not train"
    fi
  done
  # a user's HDF5_PLUGIN_PATH (here a missing and an empty directory) does not
  # hide Debian's plugins
  if HDF5_PLUGIN_PATH="$WORK/no-such-dir:$WORK" dist --model mmoe --train "$WORK/np_lzf.h5" \
      --epochs 1 --batch-size 256 --quiet; then
    ok "LZF file loads with HDF5_PLUGIN_PATH set to other directories"
  else
    fail "LZF file does not load with HDF5_PLUGIN_PATH set to other directories"
  fi
else
  echo "SKIP: /usr/bin/python3 has no h5py"
fi

echo "== data: synthetic click log =="
"$BIN/mtl_prep" synth --kind ctr --rows 6000 --sparse-fields 6 --vocab 40 --dense-fields 3 \
  --seed 3 --output-dir "$WORK/ctr" >/dev/null
D=("--train" "$WORK/ctr/train.h5" "--valid" "$WORK/ctr/valid.h5" "--test" "$WORK/ctr/test.h5")

echo "== every model trains and reports the documented keys =="
for model in shared_bottom esmm mmoe cgc ple aitm; do
  extra=()
  [ "$model" = esmm ] && extra=(--ctr-task click --ctcvr-task conversion)
  if ! dist --model "$model" "${D[@]}" "${extra[@]}" --epochs 2 --batch-size 128 \
      --metrics-out "$WORK/$model.jsonl" >"$WORK/$model.out"; then
    fail "$model did not train"; continue
  fi
  check_gates "$model" "$WORK/$model.jsonl" "$WORK/$model.out"
  keys=$(json "$WORK/$model.jsonl" "sorted(r[0].keys())")
  final=$(json "$WORK/$model.jsonl" "sorted(r[-1].keys())")
  for k in epoch train_loss valid_loss valid_auc samples_per_sec epoch_seconds; do
    [[ "$keys" == *"'$k'"* ]] || fail "$model: epoch line has no $k ($keys)"
  done
  for k in final best_epoch test_auc test_logloss train_samples_per_sec; do
    [[ "$final" == *"'$k'"* ]] || fail "$model: final line has no $k ($final)"
  done
  auc=$(json "$WORK/$model.jsonl" "min(r[-1]['test_auc'].values())")
  "$PY" -c "import sys; sys.exit(0 if 0.5 < float(sys.argv[1]) <= 1 else 1)" "$auc" ||
    fail "$model: test AUC $auc is not above chance"
  ok "$model trains (min test AUC $auc)"
done

echo "== gate statistics: 2 ranks = 1 rank (global order, 5 SGD steps, tol 1e-5) =="
# the ranks sum their rows' gate weights: the 2-rank means are those of all
# test rows, as on 1 rank; parameters differ by float32 rounding (~1e-7, see
# e2e_dist.sh (c)), while one rank's half of the rows alone moves the means
# by ~1e-3
for model in mmoe cgc ple; do
  G=(--model "$model" "${D[@]}" --epochs 1 --batch-size 256 --seed 5 --data-order global
    --max-steps 5 --optimizer sgd --lr 0.1 --quiet)
  if mpi 1 "${G[@]}" --metrics-out "$WORK/g1_$model.jsonl" &&
     mpi 2 "${G[@]}" --metrics-out "$WORK/g2_$model.jsonl"; then
    if out=$("$PY" - "$WORK/g1_$model.jsonl" "$WORK/g2_$model.jsonl" 2>&1 <<'PY'
import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:3])
diff = 0.0
for key in ("test_gates", "test_gate_entropy"):
    assert a[key].keys() == b[key].keys() and a[key], (key, list(a[key]), list(b[key]))
    for name in a[key]:
        x, y = a[key][name], b[key][name]
        x, y = (x, y) if isinstance(x, list) else ([x], [y])
        assert len(x) == len(y), (key, name)
        diff = max([diff] + [abs(u - v) for u, v in zip(x, y)])
assert diff <= 1e-5, f"max |2 ranks - 1 rank| {diff:.3g}"
print(f"max |diff| {diff:.2g} over {len(a['test_gates'])} gates")
PY
    ); then
      ok "$model: 2-rank test gate statistics = 1-rank ($out)"
    else
      fail "$model: 2-rank test gate statistics differ from 1-rank: $out"
    fi
  else
    fail "$model: gate statistics runs failed"
  fi
done

echo "== metrics JSON: task names with quotes, backslashes, tabs and non-ASCII UTF-8 =="
# the task names are strings from the user's file (/labels names): the lines
# must be JSON whatever they hold
"$PY" - "$WORK/ctr" "$WORK/odd" <<'EOF'
import os, sys
import h5py, numpy as np
src, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
names = ['in"come\\x', 'tab\there: größe € \u65e5\u672c "q" \\']
for split in ("train", "valid", "test"):
    with h5py.File(f"{src}/{split}.h5", "r") as a, h5py.File(f"{dst}/{split}.h5", "w") as b:
        for k, ds in a.items():
            if isinstance(ds, h5py.Dataset):
                out = b.create_dataset(k, data=ds[()])
                for ak, av in ds.attrs.items():
                    out.attrs[ak] = av
        b["labels"].attrs["names"] = np.array(names, dtype=h5py.string_dtype("utf-8"))
EOF
ODD=(--train "$WORK/odd/train.h5" --valid "$WORK/odd/valid.h5" --test "$WORK/odd/test.h5")
if dist --model mmoe "${ODD[@]}" --epochs 2 --batch-size 256 --quiet --metrics-out "$WORK/odd.jsonl" &&
   dist --model cgc "${ODD[@]}" --epochs 1 --batch-size 256 --quiet --task-types binary,regression \
     --metrics-out "$WORK/odd_reg.jsonl" &&
   mpi 2 --model esmm --ctr-task 'in"come\x' --ctcvr-task $'tab\there: größe € 日本 "q" \\' \
     "${ODD[@]}" --epochs 1 --batch-size 256 --quiet --metrics-out "$WORK/odd_esmm.jsonl"; then
  if "$PY" - "$WORK" <<'EOF'; then
import json, sys
names = {'in"come\\x', 'tab\there: größe € \u65e5\u672c "q" \\'}
for run, maps in (("odd", ("train_loss", "valid_loss", "valid_auc", "test_auc", "test_logloss")),
                  ("odd_reg", ("valid_mse", "valid_mae", "test_mse", "test_mae")),
                  ("odd_esmm", ("train_loss", "valid_auc", "test_auc"))):
    raw = open(f"{sys.argv[1]}/{run}.jsonl", "rb").read().decode("utf-8")
    lines = [json.loads(l) for l in raw.splitlines()]  # raises on invalid JSON
    assert lines and lines[-1].get("final") is True, f"{run}: no final line"
    seen = set()
    for l in lines:
        for key in maps:
            seen.update(l.get(key, {}).keys())
    if run == "odd_reg":  # one regression task, one binary
        assert set(lines[-1]["test_mse"]) | set(lines[-1]["test_auc"]) == names, lines[-1]
    else:
        assert seen == names, f"{run}: task names {seen!r}, want {names!r}"
    print(f"{run}: {len(lines)} lines parse, task names exact: {sorted(seen)!r}")
EOF
    ok "metrics lines are JSON with the odd task names intact"
  else
    fail "metrics lines with odd task names: invalid JSON or names changed"
  fi
else
  fail "training with odd task names failed"
fi

echo "== resume: 4 epochs == 2 epochs + resume + 2 epochs, bit for bit =="
R=(--model mmoe "${D[@]}" --batch-size 100 --seed 9 --dropout 0.1 --quiet)
dist "${R[@]}" --epochs 4 --checkpoint-dir "$WORK/straight"
dist "${R[@]}" --epochs 2 --checkpoint-dir "$WORK/resumed"
dist "${R[@]}" --epochs 4 --checkpoint-dir "$WORK/resumed" --resume latest
a=$(ls "$WORK"/straight/ckpt-*.h5 | sort | tail -1)
b=$(ls "$WORK"/resumed/ckpt-*.h5 | sort | tail -1)
if "$PY" "$SRC/tests/compare_params.py" "$a" "$b"; then ok "resume is bit-identical"
else fail "resume differs ($a vs $b)"; fi

echo "== streaming: chunks, a stop inside an epoch, and a bit-identical resume =="
S=(--model mmoe "${D[@]}" --batch-size 100 --seed 9 --dropout 0.1 --quiet --stream --stream-chunk-rows 700)
dist "${S[@]}" --epochs 2 --checkpoint-dir "$WORK/s_straight"
dist "${S[@]}" --epochs 2 --checkpoint-dir "$WORK/s_resumed" --max-steps 70
mpi 1 "${S[@]}" --epochs 2 --checkpoint-dir "$WORK/s_resumed" --resume latest
a=$(ls "$WORK"/s_straight/ckpt-*.h5 | sort | tail -1)
b=$(ls "$WORK"/s_resumed/ckpt-*.h5 | sort | tail -1)
if "$PY" "$SRC/tests/compare_params.py" "$a" "$b"; then ok "streamed resume is bit-identical"
else fail "streamed resume differs ($a vs $b)"; fi
if mpi 2 --model ple "${D[@]}" --epochs 1 --batch-size 64 --quiet --stream --stream-chunk-rows 500; then
  ok "streaming on 2 ranks"
else fail "streaming on 2 ranks"; fi
out=$(dist --model mmoe "${D[@]}" --stream --data-order global 2>&1) && fail "stream + global accepted" ||
  { [[ "$out" == *"--stream: works with --data-order local only"* ]] && ok "stream + global refused" ||
    fail "stream + global message: $out"; }

echo "== predictions: --predict-out and mtl_dist predict agree =="
dist --model cgc "${D[@]}" --epochs 1 --batch-size 128 --quiet --predict-out "$WORK/p1.h5" \
  --checkpoint-dir "$WORK/pred"
ck=$(ls "$WORK"/pred/ckpt-*.h5 | sort | tail -1)
mpi 2 predict --checkpoint "$ck" --data "$WORK/ctr/test.h5" --predict-out "$WORK/p2.h5" --quiet
"$PY" - "$WORK/p1.h5" "$WORK/p2.h5" "$WORK/ctr/test.h5" <<'EOF' && ok "predictions agree, shape and names right" || fail "predictions"
import h5py, numpy as np, sys
a, b, t = (h5py.File(p) for p in sys.argv[1:])
pa, pb = a["predictions"][...], b["predictions"][...]
n = t["labels"].shape[0]
assert pa.shape == (n, 2) and pa.dtype == np.float32, pa.shape
assert list(a["predictions"].attrs["names"]) == ["click", "conversion"], a["predictions"].attrs["names"]
assert np.all((pa > 0) & (pa < 1))
# the same weights, but rows scored in batches of other shapes (1 rank: every
# row; 2 ranks: each rank's half): SGEMM may round a row's sums differently
# (kernels and blocking follow the shape and OPENBLAS_CORETYPE), a few float32
# ulp per layer, ~1e-6 of a logit; |dp/dz| <= 1/4. 1e-5 is well above that and
# far below what scoring another row or another model would change
assert np.max(np.abs(pa - pb)) < 1e-5, np.max(np.abs(pa - pb))
EOF

echo "== per-task towers: the checkpoint holds each tower's shape, predict needs no options =="
dist --model mmoe --tower-units 8,8/4 --activation tanh "${D[@]}" --epochs 1 --batch-size 128 \
  --quiet --predict-out "$WORK/pt1.h5" --checkpoint-dir "$WORK/pertask"
ck=$(ls "$WORK"/pertask/ckpt-*.h5 | sort | tail -1)
dist predict --checkpoint "$ck" --data "$WORK/ctr/test.h5" --predict-out "$WORK/pt2.h5" --quiet
"$PY" - "$ck" "$WORK/pt1.h5" "$WORK/pt2.h5" <<'EOF' && ok "per-task towers: shapes, config, predict" || fail "per-task towers"
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1])
shapes = {k: f["params"][k].shape for k in f["params"] if k.startswith("towers.") and "weight" in k}
assert shapes == {"towers.0.dense0.weight": (8, 16), "towers.0.dense1.weight": (8, 8),
                  "towers.0.out.weight": (8,), "towers.1.dense0.weight": (4, 16),
                  "towers.1.out.weight": (4,)}, shapes
config = f.attrs["config"]
assert "tower_units = 8,8/4\n" in config and "activation = tanh\n" in config, config
a, b = (h5py.File(p)["predictions"][...] for p in sys.argv[2:])
assert np.max(np.abs(a - b)) < 1e-5, np.max(np.abs(a - b))
EOF
rc=0
out=$(dist --model mmoe --tower-units 8/4/2 "${D[@]}" --epochs 1 --quiet 2>&1) || rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--tower-units: 3 lists given for 2 tasks"* ]] &&
  ok "3 tower lists for 2 tasks: exit 2, option named" || fail "tower list count: exit $rc: $out"
rc=0
out=$(dist --model cgc --gate-units 8/4/2 "${D[@]}" --epochs 1 --quiet 2>&1) || rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--gate-units: 3 lists given for 2 tasks"* ]] &&
  ok "3 gate lists for 2 tasks (cgc): exit 2, option named" || fail "gate list count: exit $rc: $out"

echo "== ESMM predicts pCTR, pCVR and pCTCVR = pCTR * pCVR =="
dist --model esmm --ctr-task click --ctcvr-task conversion "${D[@]}" --epochs 1 --quiet \
  --predict-out "$WORK/esmm.h5"
"$PY" - "$WORK/esmm.h5" <<'EOF' && ok "esmm predictions" || fail "esmm predictions"
import h5py, numpy as np, sys
p = h5py.File(sys.argv[1])["predictions"]
assert list(p.attrs["names"]) == ["pctr", "pcvr", "pctcvr"], p.attrs["names"]
v = p[...]
assert np.allclose(v[:, 2], v[:, 0] * v[:, 1], rtol=1e-5, atol=1e-7)
EOF

echo "== regression tasks: the MMoE paper's synthetic data =="
"$BIN/mtl_prep" synth --kind mmoe --correlation 0.5 --rows 4000 --seed 4 \
  --output-dir "$WORK/synth" >/dev/null
dist --model mmoe --train "$WORK/synth/train.h5" --valid "$WORK/synth/valid.h5" \
  --test "$WORK/synth/test.h5" --epochs 3 --batch-size 128 --quiet --metrics-out "$WORK/reg.jsonl"
keys=$(json "$WORK/reg.jsonl" "sorted(r[-1].keys())")
if [[ "$keys" == *"'test_mse'"* && "$keys" == *"'test_mae'"* && "$keys" != *"'test_auc'"* ]]; then
  ok "regression metrics: $(json "$WORK/reg.jsonl" "r[-1]['test_mse']")"
else
  fail "regression final keys: $keys"
fi

echo "== single-task PLE, uncertainty weighting, early stopping on auc:TASK =="
if dist --model ple "${D[@]}" --epochs 3 --batch-size 128 --quiet --loss-weighting uncertainty \
    --early-stop-patience 1 --early-stop-metric auc:click --metrics-out "$WORK/unc.jsonl" &&
   "$PY" "$SRC/tests/h5py_write.py" "$WORK/one.h5" --rows 800 --tasks 1 --seed 5 2>/dev/null &&
   dist --model ple --train "$WORK/one.h5" --epochs 1 --batch-size 64 --quiet; then
  ok "uncertainty weighting and a single task"
else
  fail "uncertainty weighting or single task"
fi

echo "== a config file, overridden by the command line =="
cat >"$WORK/run.ini" <<EOF
; a run described in a file
[train]
model = cgc
epochs = 1
batch_size = 64
[train.cgc]
num_experts_specific = 2
EOF
out=$(dist --config "$WORK/run.ini" --train "$WORK/ctr/train.h5" --model mmoe --num-experts 3)
[[ "$out" == *"model mmoe"* ]] && ok "config + override: ${out%%$'\n'*}" || fail "config file: $out"

echo "== the README's demo =="
if MTL_DATA_DIR=/nonexistent timeout 300 bash "$SRC/launch/demo.sh" "$BIN" >"$WORK/demo.log" 2>&1 &&
   grep -q "^epoch 5/5" "$WORK/demo.log"; then
  ok "demo trains ($(grep '^test' "$WORK/demo.log" | head -1))"
else
  fail "demo: $(tail -5 "$WORK/demo.log")"
fi

if [ $failures -gt 0 ]; then echo "e2e_train: $failures check(s) FAILED"; exit 1; fi
echo "e2e_train: all checks passed"
