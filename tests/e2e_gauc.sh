#!/usr/bin/env bash
# End-to-end tests of GAUC (issue 14 part 3, README "Metrics") and per-task
# weights (part 2): files written by h5py (tests/h5py_multi.py --groups
# --task-weights real) with two multi-valued fields (sum and mean pooling,
# some empty lists), /groups (user ids) and /weights [N, T] (some 0).
#  (a) every model trains on 1 and 2 ranks; the final test_gauc of each task
#      equals a plain-Python computation of the definition from the run's
#      --predict-out file and the test file's labels and groups, to 1e-9
#      (the 2-rank run gathers every rank's rows, so a group split over ranks
#      is scored whole), and test_gauc_groups counts the groups; test_logloss
#      is the weighted mean sum w l / sum w of the same predictions;
#  (b) one checkpoint predicted on 1 and 2 ranks (predictions equal up to
#      float32 rounding of differently split batches) print the same GAUC;
#  (c) --early-stop-metric gauc:TASK trains; without /groups it is a clear
#      error and no gauc key is written;
#  (d) weight 0 drops a row from that task's loss: 0/1 weights train the same
#      model, bit for bit, as the same file with those labels missing (NaN),
#      on 2 ranks.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_gauc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T_START=$SECONDS

D=$WORK/data
mkdir -p "$D"
W=(--task-weights real)
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/train.h5" --rows 800 --seed 1 --groups 40 "${W[@]}"
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/valid.h5" --rows 300 --seed 2 --groups 30 "${W[@]}"
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/test.h5" --rows 300 --seed 3 --groups 30 "${W[@]}"
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/valid_nogroups.h5" --rows 300 --seed 2

# check_gauc METRICS PRED TEST WHAT: the final line's test_gauc and
# test_gauc_groups against the definition computed here from the files, and
# test_logloss against the weighted mean of the same predictions
check_gauc() {
    local out
    if out=$("$PYTHON3" - "$@" 2>&1 <<'PY'
import json, sys
import h5py, numpy as np
metrics, pred, test = sys.argv[1:4]
final = json.loads(open(metrics).read().splitlines()[-1])
with h5py.File(pred, "r") as f:
    p = f["predictions"][()].astype(np.float64)
    names = [n.decode() if isinstance(n, bytes) else n for n in f["predictions"].attrs["names"]]
with h5py.File(test, "r") as f:
    y = f["labels"][()]
    g = f["groups"][()]
    w = f["weights"][()].astype(np.float64)
    assert w.shape == y.shape and (w == 0).any()  # [N, T], some rows dropped
    tasks = [n.decode() if isinstance(n, bytes) else n for n in f["labels"].attrs["names"]]

def auc(s, l):  # pairs: positive above negative counts 1, a tie 1/2
    pos, neg = s[l >= 0.5], s[l < 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return None
    d = pos[:, None] - neg[None, :]
    return ((d > 0).sum() + 0.5 * (d == 0).sum()) / (len(pos) * len(neg))

# ESMM predicts pctr/pcvr/pctcvr: the click task is pctr, buy pctcvr
col = {"click": names.index("pctr") if "pctr" in names else names.index("click"),
       "buy": names.index("pctcvr") if "pctcvr" in names else names.index("buy")}
for t, task in enumerate(tasks):
    lab = ~np.isnan(y[:, t])
    s, l, gg = p[lab, col[task]], y[lab, t], g[lab]
    num = den = 0.0
    count = 0
    for u in np.unique(gg):
        a = auc(s[gg == u], l[gg == u])
        if a is not None:
            n = (gg == u).sum()
            num += n * a
            den += n
            count += 1
    want = num / den
    got = final["test_gauc"][task]
    if abs(got - want) > 1e-9 or final["test_gauc_groups"][task] != count:
        sys.exit(f"{task}: test_gauc {got} ({final['test_gauc_groups'][task]} groups), "
                 f"the definition gives {want!r} ({count} groups)")
    q = np.clip(s, 1e-7, 1 - 1e-7)
    wt = w[lab, t]
    want_ll = np.sum(wt * -(l * np.log(q) + (1 - l) * np.log(1 - q))) / np.sum(wt)
    got_ll = final["test_logloss"][task]
    if abs(got_ll - want_ll) > 1e-9:
        sys.exit(f"{task}: test_logloss {got_ll}, the weighted mean gives {want_ll!r}")
    print(f"{task} {got:.6f} over {count} groups, logloss {got_ll:.6f}", end="; ")
PY
    ); then
        pass "$4: test_gauc equals the definition ($out)"
    else
        fail "$4: $out"
    fi
}

common=(--train "$D/train.h5" --valid "$D/valid.h5" --test "$D/test.h5" --embedding-dim 4
    --batch-size 64 --epochs 2 --lr 0.01 --quiet)
esmm=(--ctr-task click --ctcvr-task buy)

# (a) every model, 1 and 2 ranks
for model in shared-bottom esmm mmoe cgc ple aitm; do
    extra=()
    [ $model = esmm ] && extra=("${esmm[@]}")
    for np in 1 2; do
        name=${model}_np$np
        run $np "$name" "${common[@]}" "${extra[@]}" --model $model \
            --metrics-out "$WORK/$name.jsonl" --predict-out "$WORK/$name.h5" \
            --checkpoint-dir "$WORK/$name" || continue
        check_gauc "$WORK/$name.jsonl" "$WORK/$name.h5" "$D/test.h5" "$model on $np rank(s)"
        grep -q '"valid_gauc"' "$WORK/$name.jsonl" && pass "$name: valid_gauc per epoch" ||
            fail "$name: no valid_gauc in the epoch lines"
    done
done

# (b) the same predictions scored on 1 and 2 ranks (predict prints the GAUC)
for np in 1 2; do
    run $np "pred_np$np" predict --checkpoint "$(last "$WORK/mmoe_np2")" --data "$D/test.h5" \
        --predict-out "$WORK/pred_np$np.h5" --batch-size 64
done
g1=$(grep -o 'gauc [0-9.]*' "$WORK/pred_np1.out" | tr '\n' ' ')
g2=$(grep -o 'gauc [0-9.]*' "$WORK/pred_np2.out" | tr '\n' ' ')
[ -n "$g1" ] && [ "$g1" = "$g2" ] && pass "predict: the same GAUC on 1 and 2 ranks ($g1)" ||
    fail "predict GAUC: 1 rank '$g1', 2 ranks '$g2'"

# (c) early stopping on GAUC; a file without /groups
run 2 early "${common[@]}" --model ple --epochs 3 --early-stop-metric gauc:click \
    --early-stop-patience 1 --metrics-out "$WORK/early.jsonl" &&
    pass "--early-stop-metric gauc:click trains (best epoch $(tail -1 "$WORK/early.jsonl" |
        "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["best_epoch"])'))"
set +e
out=$("$DIST" --train "$D/train.h5" --valid "$D/valid_nogroups.h5" --model mmoe --epochs 1 \
    --early-stop-metric gauc:click --quiet 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && [[ "$out" == *"valid_nogroups.h5"*"no /groups"* ]] &&
    pass "gauc:TASK without /groups: exit $rc, '$out'" ||
    fail "gauc:TASK without /groups: exit $rc, '$out'"
run 1 nogroups --train "$D/train.h5" --valid "$D/valid_nogroups.h5" --model mmoe --epochs 1 \
    --quiet --metrics-out "$WORK/nogroups.jsonl" &&
    { grep -q gauc "$WORK/nogroups.jsonl" && fail "a file without /groups: gauc keys written" ||
        pass "a file without /groups: no gauc keys"; }

# (d) 0/1 per-task weights == the same labels missing
for kind in weights nan; do
    extra=()
    [ $kind = nan ] && extra=(--zero-as-nan)
    "$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/$kind-train.h5" --rows 600 --seed 1 \
        --task-weights 01 "${extra[@]}"
    # (no --valid: the best epoch's choice by validation AUC, which counts
    # weight-0 rows, could differ)
    run 2 "drop_$kind" --train "$D/$kind-train.h5" --test "$D/valid.h5" --model mmoe --embedding-dim 4 --batch-size 64 --epochs 2 --quiet \
        --predict-out "$WORK/drop_$kind.h5" --metrics-out "$WORK/drop_$kind.jsonl"
done
if out=$("$PYTHON3" - "$WORK/drop_weights.h5" "$WORK/drop_nan.h5" 2>&1 <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["predictions"][()] for p in sys.argv[1:3])
if not np.array_equal(a, b):
    sys.exit(f"predictions differ: max |diff| {np.max(np.abs(a - b))}")
print(f"{a.shape[0]} rows equal")
PY
); then
    pass "weight 0 == missing label: the same model on 2 ranks ($out)"
else
    fail "weight 0 == missing label: $out"
fi

summary e2e_gauc
