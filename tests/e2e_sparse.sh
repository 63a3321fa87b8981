#!/usr/bin/env bash
# End-to-end tests of sparse embedding tables (--embedding-update, see
# include/mtl/embedding.h) on a synthetic click log whose tables have many
# more rows than a batch touches:
#  (a) auto makes those tables sparse, and keeps small tables dense;
#  (b) SGD without momentum or L2: sparse and dense updates are the same
#      computation, so 1 rank and 2 ranks give bit-identical parameters;
#  (c) Adam with sparse tables: 2 ranks with --data-order global give the
#      1-rank parameters up to summation order;
#  (d) a run interrupted after epoch 1 and resumed gives the uninterrupted
#      run's parameters bit for bit (lazy Adam keeps no state of its own);
#  (e) lazy Adam learns: test AUC of the click task well above chance;
#  (f) row-sharded tables on 2 ranks give the 1-rank parameters up to
#      summation order; resume on 2 ranks is bit-exact, and a checkpoint of 3
#      ranks resumes on 2; `predict` from a sharded run's checkpoint gives the
#      run's own predictions.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_sparse.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T_START=$SECONDS

# final_field FILE KEY: a field of the metrics file's final line
final_field() {
    "$PYTHON3" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}

# 4 fields of 20,000 ids (Zipf) and batch 256: a step touches < 256 rows of
# each table, 80x fewer than it has
"$PREP" synth --kind ctr --rows 12000 --sparse-fields 4 --dense-fields 3 --vocab 20000 \
    --tasks 2 --seed 5 --output-dir "$WORK/data" >/dev/null
common=(--model mmoe --train "$WORK/data/train.h5" --embedding-dim 4 --expert-units 8
    --num-experts 2 --tower-units 4 --batch-size 256 --quiet)

# (a) auto vs forced dense
run 1 auto "${common[@]}" --epochs 1 --max-steps 3 --metrics-out "$WORK/auto.jsonl"
run 1 dense3 "${common[@]}" --epochs 1 --max-steps 3 --embedding-update dense \
    --metrics-out "$WORK/dense3.jsonl"
[ "$(final_field "$WORK/auto.jsonl" sparse_tables)" = 4 ] && pass "auto: 4 sparse tables" ||
    fail "auto: $(final_field "$WORK/auto.jsonl" sparse_tables) sparse tables, expected 4"
[ "$(final_field "$WORK/dense3.jsonl" sparse_tables)" = 0 ] && pass "dense: no sparse table" ||
    fail "--embedding-update dense: sparse tables"

# (b) plain SGD: sparse == dense, bit for bit, on 1 and 2 ranks
sgd=(--optimizer sgd --lr 0.5 --l2-embedding 0 --epochs 2)
for np in 1 2; do
    for mode in sparse dense; do
        run $np "sgd_${mode}_np$np" "${common[@]}" "${sgd[@]}" --embedding-update $mode \
            --checkpoint-dir "$WORK/sgd_${mode}_np$np"
    done
    same "$(last "$WORK/sgd_sparse_np$np")" "$(last "$WORK/sgd_dense_np$np")" \
        "SGD on $np rank(s): sparse and dense updates give identical parameters"
done

# (c) Adam, sparse tables: 2 ranks (global order) vs 1 rank, up to summation order
for np in 1 2; do
    run $np "adam_np$np" "${common[@]}" --epochs 2 --data-order global \
        --checkpoint-dir "$WORK/adam_np$np"
done
same "$(last "$WORK/adam_np1")" "$(last "$WORK/adam_np2")" \
    "lazy Adam: 2 ranks (sparse exchange) vs 1 rank" 1e-4

# (d) exact resume with sparse tables, 2 ranks
run 2 full "${common[@]}" --epochs 2 --checkpoint-dir "$WORK/full"
run 2 part "${common[@]}" --epochs 1 --checkpoint-dir "$WORK/part"
run 2 resumed "${common[@]}" --epochs 2 --checkpoint-dir "$WORK/part" --resume latest
same "$(last "$WORK/full")" "$(last "$WORK/part")" "resume with sparse tables: bit-identical"

# (e) it learns
run 2 learn "${common[@]}" --epochs 3 --test "$WORK/data/test.h5" --metrics-out "$WORK/learn.jsonl"
auc=$("$PYTHON3" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["test_auc"]["click"])' "$WORK/learn.jsonl")
if "$PYTHON3" -c "import sys; sys.exit(0 if $auc > 0.6 else 1)"; then
    pass "lazy Adam learns: test AUC(click) = $auc"
else
    fail "test AUC(click) = $auc, expected > 0.6"
fi

# (f) row sharding (against (c)'s 1-rank run)
run 2 row "${common[@]}" --epochs 2 --data-order global --embedding-sharding row \
    --checkpoint-dir "$WORK/row" --metrics-out "$WORK/row.jsonl" --test "$WORK/data/test.h5" \
    --predict-out "$WORK/row_pred.h5"
[ "$(final_field "$WORK/row.jsonl" sharded_tables)" = 4 ] && pass "row: 4 sharded tables" ||
    fail "row: $(final_field "$WORK/row.jsonl" sharded_tables) sharded tables, expected 4"
same "$(last "$WORK/adam_np1")" "$(last "$WORK/row")" "row-sharded, 2 ranks vs 1 rank" 1e-4
run 2 row_part "${common[@]}" --epochs 1 --data-order global --embedding-sharding row \
    --checkpoint-dir "$WORK/row_part"
run 2 row_resumed "${common[@]}" --epochs 2 --data-order global --embedding-sharding row \
    --checkpoint-dir "$WORK/row_part" --resume latest
same "$(last "$WORK/row")" "$(last "$WORK/row_part")" "row-sharded resume: bit-identical"
run 3 row3 "${common[@]}" --epochs 1 --data-order global --embedding-sharding row \
    --checkpoint-dir "$WORK/row3"
run 2 row3_on2 "${common[@]}" --epochs 2 --data-order global --embedding-sharding row \
    --checkpoint-dir "$WORK/row3" --resume latest
same "$(last "$WORK/row")" "$(last "$WORK/row3")" "3-rank sharded checkpoint resumed on 2 ranks" 1e-4
run 2 row_predict predict --checkpoint "$(last "$WORK/row")" --data "$WORK/data/test.h5" \
    --predict-out "$WORK/row_pred2.h5"
same_predictions "predict from a row-sharded checkpoint (the run's --predict-out)" \
    "$WORK/row_pred.h5" "$WORK/row_pred2.h5"

summary e2e_sparse
