#!/usr/bin/env bash
# End-to-end tests of data-parallel training with mtl_dist under MPI:
#  (b) the same command twice on 2 ranks gives bit-identical parameters;
#  (c) --data-order global on 2 and 3 ranks gives the 1-rank parameters up to
#      float32 rounding (SGD; the tolerance is derived there); on census data
#      (if MTL_DATA_DIR has it) 1, 2 and 3 ranks reach test AUCs within 0.005;
#  (d) a training file whose rows do not divide by 3, on 3 ranks: completes,
#      reports AUCs, and predicts every test row once;
#  (e) a corrupt file (truncated; or bad only in one rank's shard) ends the
#      job with a message naming the rank and the file, without hanging; more
#      ranks than training rows is refused, and so is predicting a file with
#      fewer rows than ranks (the message names the file's row count);
#  (f) --valid-split 0.2 (1, 2, 3 ranks; global order; streaming) trains and
#      validates exactly as --train HEAD --valid TAIL, the two parts of the
#      file written separately: the tail is held out and sharded correctly.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MTL_DATA_DIR, MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
MTL_DATA_DIR=${MTL_DATA_DIR:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_dist.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# run NP NAME ARGS...: mtl_dist on NP ranks under `timeout 120`; stdout and
# stderr go to $WORK/NAME.{out,err}; sets RC (124 = timed out) and SECS.
run() {
    local np=$1 name=$2
    shift 2
    local t0=$SECONDS
    RC=0
    timeout 120 "$MPIEXEC" "$NPFLAG" "$np" "${OVERSUB[@]}" "$DIST" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
    SECS=$((SECONDS - t0))
}
# the run must have succeeded
need_ok() {
    if [ "$RC" -ne 0 ]; then
        fail "$1: mtl_dist exited with $RC; stderr:"
        sed 's/^/    /' "$WORK/$2.err" | head -20
        return 1
    fi
}
# the newest checkpoint in a directory
last_ckpt() { { ls "$1"/ckpt-*.h5 2>/dev/null || true; } | sort | tail -1; }
# final test AUCs of a metrics file, "task=auc ..." (empty if missing)
final_aucs() {
    "$PYTHON3" - "$1" <<'EOF'
import json, sys
try:
    final = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and json.loads(l).get("final")]
except (OSError, ValueError):
    final = []
if final:
    print(" ".join(f"{k}={v}" for k, v in sorted(final[-1].get("test_auc", {}).items())))
EOF
}

echo "== data: synthetic click log (mtl_prep synth --kind ctr) =="
SYN=$WORK/syn
"$PREP" synth --kind ctr --rows 3002 --sparse-fields 4 --vocab 20 --dense-fields 3 --tasks 2 \
    --seed 1 --split 0.8,0.1,0.1 --output-dir "$SYN" >"$WORK/synth.out"
read -r NTRAIN NVALID NTEST < <("$PYTHON3" -c '
import h5py, sys
print(*(h5py.File(f"{sys.argv[1]}/{s}.h5", "r")["labels"].shape[0] for s in ("train", "valid", "test")))
' "$SYN")
echo "train $NTRAIN, valid $NVALID, test $NTEST rows"
if [ $((NTRAIN % 3)) -eq 0 ] || [ $((NTEST % 3)) -eq 0 ]; then
    fail "synthetic data: want row counts not divisible by 3 (got train $NTRAIN, test $NTEST)"
fi
DATA=(--train "$SYN/train.h5" --valid "$SYN/valid.h5" --test "$SYN/test.h5")
SMALL=(--embedding-dim 4 --expert-units 16 --num-experts 4 --tower-units 8)

echo
echo "== (b) the same command twice on 2 ranks: bit-identical parameters =="
for cfg in "mmoe local dropout" "esmm global"; do
    read -r model order extra <<<"$cfg"
    args=(--model "$model" "${DATA[@]}" "${SMALL[@]}" --epochs 3 --batch-size 128 --seed 11
        --data-order "$order" --quiet)
    [ "$model" = esmm ] && args+=(--ctr-task click --ctcvr-task conversion)
    [ "${extra:-}" = dropout ] && args+=(--dropout 0.1)
    ok=1
    for k in 1 2; do
        run 2 "repeat_${model}_$k" "${args[@]}" --checkpoint-dir "$WORK/rep_${model}_$k" \
            --metrics-out "$WORK/rep_${model}_$k.jsonl"
        need_ok "(b) $cfg run $k" "repeat_${model}_$k" || ok=0
    done
    [ $ok = 1 ] || continue
    a=$(last_ckpt "$WORK/rep_${model}_1")
    b=$(last_ckpt "$WORK/rep_${model}_2")
    echo "$cfg: ${a##*/} vs ${b##*/}"
    if [ "${a##*/}" != "${b##*/}" ]; then
        fail "(b) $cfg: the runs ended at different steps (${a##*/}, ${b##*/})"
    elif "$PYTHON3" "$COMPARE" "$a" "$b"; then
        pass "(b) $cfg: parameters bit-identical"
    else
        fail "(b) $cfg: two identical runs on 2 ranks give different parameters"
    fi
    auc1=$(final_aucs "$WORK/rep_${model}_1.jsonl")
    auc2=$(final_aucs "$WORK/rep_${model}_2.jsonl")
    if [ -n "$auc1" ] && [ "$auc1" = "$auc2" ]; then
        pass "(b) $cfg: identical test AUCs ($auc1)"
    else
        fail "(b) $cfg: test AUCs differ or are missing: '$auc1' vs '$auc2'"
    fi
done

echo
# The runs differ in how each step's batch is split over the ranks, so their
# gradients agree only up to float32 rounding (summation order over ranks, and
# SGEMM kernels that OpenBLAS picks by matrix shape and OPENBLAS_CORETYPE).
# Plain SGD keeps a parameter's difference at lr times the gradients'
# rounding differences (~1e-7 of O(1) values per step, so ~1e-7 here); the
# tolerance 1e-4 is ~1000 float32 ulp of an O(1) parameter, while a row
# missing from a step or seen twice moves parameters by ~lr |g| = 1e-3 or
# more. Adam would not do: its first step moves every parameter by +-lr
# whatever the gradient's size, so an element that is pure rounding noise
# (a sum that cancels to ~1e-9) can step in opposite directions.
echo "== (c) --data-order global, 5 SGD steps: 2 and 3 ranks match 1 rank (tol 1e-4) =="
for np in 1 2 3; do
    run "$np" "global_np$np" --model mmoe --train "$SYN/train.h5" "${SMALL[@]}" --epochs 1 \
        --batch-size 256 --seed 5 --data-order global --max-steps 5 --optimizer sgd --lr 0.1 \
        --checkpoint-dir "$WORK/global_np$np" --quiet
    need_ok "(c) global order on $np ranks" "global_np$np" || true
done
ref=$(last_ckpt "$WORK/global_np1")
for np in 2 3; do
    got=$(last_ckpt "$WORK/global_np$np")
    if [ -z "$ref" ] || [ -z "$got" ]; then
        fail "(c) global order: missing checkpoint (1 rank: '$ref', $np ranks: '$got')"
    elif [ "${ref##*/}" != ckpt-000000005.h5 ] || [ "${got##*/}" != ckpt-000000005.h5 ]; then
        fail "(c) global order: want checkpoints at step 5, got ${ref##*/} and ${got##*/}"
    elif "$PYTHON3" "$COMPARE" "$ref" "$got" --tol 1e-4; then
        pass "(c) global order: $np ranks = 1 rank after 5 steps"
    else
        fail "(c) global order: $np ranks differ from 1 rank"
    fi
done

echo
echo "== (c) census: test AUC on 1, 2 and 3 ranks within 0.005 =="
CENSUS=${MTL_DATA_DIR:+$MTL_DATA_DIR/census-income.test.gz}
if [ -z "$CENSUS" ] || [ ! -f "$CENSUS" ]; then
    echo "SKIP: census-income.test.gz not found in MTL_DATA_DIR='$MTL_DATA_DIR'"
else
    "$PREP" --config "$MTL_SRC/configs/census.ini" --input "$CENSUS" --output-dir "$WORK/census" \
        --split 0.6,0.2,0.2 >"$WORK/census_prep.out"
    for np in 1 2 3; do
        run "$np" "census_np$np" --model mmoe --train "$WORK/census/train.h5" \
            --valid "$WORK/census/valid.h5" --test "$WORK/census/test.h5" --epochs 2 \
            --batch-size 1024 --seed 7 --metrics-out "$WORK/census_np$np.jsonl" --quiet
        need_ok "(c) census on $np ranks" "census_np$np" || true
        echo "$np rank(s), ${SECS}s: test AUC $(final_aucs "$WORK/census_np$np.jsonl" || true)"
    done
    if "$PYTHON3" - "$WORK" <<'EOF'; then
import json, math, sys
aucs = {}
for np in (1, 2, 3):
    try:
        lines = [json.loads(l) for l in open(f"{sys.argv[1]}/census_np{np}.jsonl") if l.strip()]
        aucs[np] = [l for l in lines if l.get("final")][-1]["test_auc"]
    except (OSError, IndexError, KeyError, ValueError) as e:
        sys.exit(f"no final test_auc for {np} rank(s): {e!r}")
ok = True
for task in aucs[1]:
    v = [aucs[np].get(task) for np in (1, 2, 3)]
    if any(x is None or not math.isfinite(x) for x in v):
        print(f"task {task}: AUC missing or not finite: {v}")
        ok = False
        continue
    spread = max(v) - min(v)
    print(f"task {task}: AUC {v[0]:.4f} / {v[1]:.4f} / {v[2]:.4f}, spread {spread:.4f}")
    ok &= spread <= 0.005 and min(v) > 0.7
sys.exit(0 if ok else 1)
EOF
        pass "(c) census: test AUCs of 1, 2 and 3 ranks agree within 0.005"
    else
        fail "(c) census: test AUCs of 1, 2 and 3 ranks disagree (or are poor)"
    fi
fi

echo
echo "== (d) uneven shards: $NTRAIN train / $NTEST test rows on 3 ranks =="
run 3 uneven --model mmoe "${DATA[@]}" "${SMALL[@]}" --epochs 2 --batch-size 100 --seed 3 \
    --metrics-out "$WORK/uneven.jsonl" --predict-out "$WORK/uneven_pred.h5"
if need_ok "(d) uneven shards" uneven; then
    echo "took ${SECS}s: $(head -1 "$WORK/uneven.out")"
    if grep -q "train $NTRAIN rows, valid $NVALID, test $NTEST" "$WORK/uneven.out"; then
        pass "(d) the header counts every row of every split"
    else
        fail "(d) the header does not say 'train $NTRAIN rows, valid $NVALID, test $NTEST'"
    fi
    if "$PYTHON3" - "$WORK" "$NTEST" <<'EOF'; then
import h5py, json, math, sys
import numpy as np
work, ntest = sys.argv[1], int(sys.argv[2])
lines = [json.loads(l) for l in open(f"{work}/uneven.jsonl") if l.strip()]
final = [l for l in lines if l.get("final")]
assert final, "no final metrics line"
final = final[-1]
assert final.get("world_size") == 3, f"world_size {final.get('world_size')}"
auc = final.get("test_auc", {})
assert auc and all(v is not None and math.isfinite(v) and 0 <= v <= 1 for v in auc.values()), \
    f"test_auc {auc}"
epochs = [l for l in lines if "epoch" in l]
assert len(epochs) == 2, f"{len(epochs)} epoch lines"
with h5py.File(f"{work}/uneven_pred.h5", "r") as f:
    p = f["predictions"][()]
assert p.shape == (ntest, 2), f"predictions {p.shape}, want ({ntest}, 2)"
assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), "predictions outside [0, 1]"
assert len(np.unique(p[:, 0])) > 1, "all predictions equal"
print(f"test AUC {auc}; predictions {p.shape}")
EOF
        pass "(d) 3 ranks: AUCs reported and all $NTEST test rows predicted"
    else
        fail "(d) metrics or predictions of the 3-rank run are wrong"
    fi
fi

echo
echo "== (e) failures end the job with a message, without hanging =="
# expect_abort NAME WANT...: the last run failed (not by timeout) and its
# stderr contains every WANT string
expect_abort() {
    local name=$1
    shift
    if [ "$RC" -eq 0 ]; then
        fail "(e) $name: mtl_dist succeeded; want a failure"
        return
    fi
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "(e) $name: hung (killed by timeout after ${SECS}s)"
        return
    fi
    local w missing=0
    for w in "$@"; do
        if ! grep -qF -- "$w" "$WORK/$name.err"; then
            fail "(e) $name: stderr lacks '$w'"
            missing=1
        fi
    done
    if [ $missing = 1 ]; then
        sed 's/^/    /' "$WORK/$name.err" | head -10
    else
        pass "(e) $name: exit $RC after ${SECS}s: $(grep -m1 'mtl_dist' "$WORK/$name.err")"
    fi
}

TRUNC=$WORK/truncated_train.h5
size=$(stat -c %s "$SYN/train.h5")
head -c $((size / 2)) "$SYN/train.h5" >"$TRUNC"
run 2 truncated --model mmoe --train "$TRUNC" --valid "$SYN/valid.h5" --test "$SYN/test.h5" \
    "${SMALL[@]}" --epochs 1 --batch-size 64 --quiet
expect_abort truncated "rank" "$TRUNC"

# valid HDF5, but one value out of range in the last row: only the last rank's
# shard is bad, so that rank alone fails and must take the job down
"$PYTHON3" - "$SYN/train.h5" "$WORK" <<'EOF'
import h5py, sys
src = h5py.File(sys.argv[1], "r")
def copy(path, rows=None, bad_last=False):
    with h5py.File(path, "w") as dst:
        for name, ds in src.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            a = ds[()] if rows is None else ds[:rows]
            if bad_last and name == "sparse":
                a[-1, 0] = 1000000
            out = dst.create_dataset(name, data=a)
            for k, v in ds.attrs.items():
                out.attrs[k] = v
copy(f"{sys.argv[2]}/bad_last_row.h5", bad_last=True)
copy(f"{sys.argv[2]}/two_rows.h5", rows=2)
copy(f"{sys.argv[2]}/one_row.h5", rows=1)
EOF
BAD=$WORK/bad_last_row.h5
run 2 bad_shard --model mmoe --train "$BAD" "${SMALL[@]}" --epochs 1 --batch-size 64 --quiet
expect_abort bad_shard "rank 1" "$BAD"

TWO=$WORK/two_rows.h5
run 3 too_many_ranks --model mmoe --train "$TWO" "${SMALL[@]}" --epochs 1 --batch-size 4 --quiet
expect_abort too_many_ranks "$TWO" "3 ranks"

# predict refuses a file with fewer rows than ranks, naming its real row count
# (the message was once built from the freed dataset: "0 rows")
CKPT=$(last_ckpt "$WORK/rep_mmoe_1")
if [ -z "$CKPT" ]; then
    fail "(e) predict on one row: no checkpoint from (b) to predict with"
else
    run 2 predict_one_row predict --checkpoint "$CKPT" --data "$WORK/one_row.h5" \
        --predict-out "$WORK/one_row_pred.h5" --quiet
    expect_abort predict_one_row "$WORK/one_row.h5: 1 row cannot be shared by 2 ranks"
fi

echo
echo "== (f) --valid-split 0.2 on 1, 2, 3 ranks = the same rows as --train HEAD --valid TAIL =="
# the head and the tail of the training file as files of their own, split as
# mtl_prep --split rounds (train = floor(0.8 N + 1e-6))
read -r NHEAD NTAIL < <("$PYTHON3" - "$SYN/train.h5" "$WORK" <<'EOF'
import math, sys
import h5py
src = h5py.File(sys.argv[1], "r")
n = src["labels"].shape[0]
head = int(math.floor((1.0 - 0.2) * n + 1e-6))
for name, rows in (("head", slice(0, head)), ("tail", slice(head, n))):
    with h5py.File(f"{sys.argv[2]}/{name}.h5", "w") as dst:
        for k, ds in src.items():
            if isinstance(ds, h5py.Dataset):
                out = dst.create_dataset(k, data=ds[rows])
                for ak, av in ds.attrs.items():
                    out.attrs[ak] = av
print(head, n - head)
EOF
)
echo "head $NHEAD rows, tail $NTAIL rows"
# same_metrics A B: the epoch lines of two metrics files agree in every loss
# and AUC (bit for bit: the same rows on the same ranks in the same order)
same_metrics() {
    "$PYTHON3" - "$1" "$2" <<'EOF'
import json, sys
def load(p):
    keep = ("epoch", "train_loss", "valid_loss", "valid_auc", "steps")
    return [{k: l[k] for k in keep if k in l} for l in map(json.loads, open(p)) if "epoch" in l]
a, b = load(sys.argv[1]), load(sys.argv[2])
if not a or a != b or "valid_auc" not in a[-1]:
    sys.exit(f"differ:\n  {a}\n  {b}")
print(f"{len(a)} epochs, valid_auc {a[-1]['valid_auc']}")
EOF
}
for mode in "1 local" "2 local" "3 local" "2 global" "2 stream"; do
    read -r np order <<<"$mode"
    extra=(--data-order "$order")
    [ "$order" = stream ] && extra=(--stream --stream-chunk-rows 300)
    common=(--model mmoe "${SMALL[@]}" --epochs 3 --batch-size 128 --seed 4 --patience 1 --quiet
        "${extra[@]}")
    run "$np" "vsplit_${np}_$order" "${common[@]}" --train "$SYN/train.h5" --valid-split 0.2 \
        --metrics-out "$WORK/vsplit_${np}_$order.jsonl"
    need_ok "(f) --valid-split on $np ranks ($order)" "vsplit_${np}_$order" || continue
    run "$np" "vfiles_${np}_$order" "${common[@]}" --train "$WORK/head.h5" --valid "$WORK/tail.h5" \
        --metrics-out "$WORK/vfiles_${np}_$order.jsonl"
    need_ok "(f) head/tail files on $np ranks ($order)" "vfiles_${np}_$order" || continue
    if cmp_out=$(same_metrics "$WORK/vsplit_${np}_$order.jsonl" "$WORK/vfiles_${np}_$order.jsonl"); then
        pass "(f) $np ranks, $order: --valid-split = head/tail files: $cmp_out"
    else
        fail "(f) $np ranks, $order: --valid-split differs from the head/tail files: $cmp_out"
    fi
done
run 2 vsplit_header --model mmoe "${SMALL[@]}" --epochs 1 --batch-size 128 --train "$SYN/train.h5" \
    --valid-split 0.2
if need_ok "(f) --valid-split header" vsplit_header; then
    if grep -q "train $NHEAD rows, valid $NTAIL (the last rows of the training file" \
        "$WORK/vsplit_header.out"; then
        pass "(f) the header counts $NHEAD training and $NTAIL validation rows"
    else
        fail "(f) the header does not say 'train $NHEAD rows, valid $NTAIL': $(head -1 "$WORK/vsplit_header.out")"
    fi
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "e2e_dist: $failures check(s) FAILED"
    exit 1
fi
echo "e2e_dist: all checks passed"
