#!/usr/bin/env bash
# End-to-end tests of multi-valued categorical fields (/multi, data/README.md)
# on files written by h5py (tests/h5py_multi.py): two fields, sum and mean
# pooling, about a fifth of the lists empty.
#  (a) every model trains on 1 and 2 ranks, and learns (valid AUC of the
#      click task above 0.6; chance is 0.5);
#  (b) SGD without momentum or L2: sparse and dense table updates are the same
#      computation, so parameters are bit-identical (1 and 2 ranks);
#      row-sharded tables on 2 ranks give the dense 2-rank parameters up to
#      summation order; --data-order global on 2 ranks gives the 1-rank
#      parameters up to summation order; --stream trains on 2 ranks; the
#      same comparisons on lists that touch more rows per step than the batch
#      has rows (the touched-row buffers grow);
#  (c) a field of length-1 lists, sum-pooled, is the same as the same ids in
#      /sparse: the same loss every step (batch = the file, so an epoch is one
#      step) and the same parameters, with SGD; also with --stream, whose
#      batches then take rows (and lists) from two chunks;
#  (d) checkpoints: resume after epoch 1 gives the uninterrupted run's
#      parameters bit for bit; predict from a checkpoint gives the run's own
#      test predictions; export to ONNX fails with a clear message.
#  (e) mtl_prep on the MovieLens-style example (configs/movielens.ini,
#      tests/movielens_tiny.csv) writes /multi/genres, whose lists decode to
#      the CSV's genres, and the result trains.
# Bad /multi input is in e2e_bad_input.sh; mtl_prep's multi_valued also in
# test_prep.c.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_multi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T_START=$SECONDS

# field FILE LINE KEY [SUB]: a value of a metrics file's line (-1: the last)
field() {
    "$PYTHON3" -c '
import json, sys
v = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])])[sys.argv[3]]
print(v[sys.argv[4]] if len(sys.argv) > 4 else v)' "$@"
}

D=$WORK/data
mkdir -p "$D"
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/train.h5" --rows 1200 --seed 1
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/valid.h5" --rows 400 --seed 2
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/test.h5" --rows 300 --seed 3
"$PYTHON3" - "$D/train.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    for name in ("genres", "tags"):
        g = f["multi"][name]
        lens = np.diff(g["offsets"][()])
        print(f"{name}: pooling {g.attrs['pooling']}, {np.sum(lens == 0)} empty lists of "
              f"{len(lens)}, mean length {lens.mean():.2f}")
PY

common=(--train "$D/train.h5" --valid "$D/valid.h5" --embedding-dim 4 --batch-size 64 --quiet)
esmm=(--ctr-task click --ctcvr-task buy)

# (a) every model, 1 and 2 ranks
for model in shared-bottom esmm mmoe cgc ple; do
    extra=()
    [ $model = esmm ] && extra=("${esmm[@]}")
    for np in 1 2; do
        name=${model}_np$np
        run $np "$name" "${common[@]}" "${extra[@]}" --model $model --epochs 6 --lr 0.01 \
            --test "$D/test.h5" --metrics-out "$WORK/$name.jsonl" || continue
        auc=$(field "$WORK/$name.jsonl" -2 valid_auc click)
        if "$PYTHON3" -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.6 else 1)" "$auc"; then
            pass "$model on $np rank(s): valid AUC (click) $auc"
        else
            fail "$model on $np rank(s): valid AUC (click) $auc, expected > 0.6"
        fi
    done
done

# (b) the table machinery: SGD, sparse == dense; sharded, global order, stream
sgd=(--model mmoe --optimizer sgd --lr 0.3 --l2-embedding 0 --epochs 2)
for np in 1 2; do
    for mode in sparse dense; do
        run $np "sgd_${mode}_np$np" "${common[@]}" "${sgd[@]}" --embedding-update $mode \
            --checkpoint-dir "$WORK/sgd_${mode}_np$np" --metrics-out "$WORK/sgd_${mode}_np$np.jsonl"
    done
    [ "$(field "$WORK/sgd_sparse_np$np.jsonl" -1 sparse_tables)" = 3 ] &&
        pass "$np rank(s): --embedding-update sparse makes all 3 tables sparse" ||
        fail "$np rank(s): sparse tables: $(field "$WORK/sgd_sparse_np$np.jsonl" -1 sparse_tables)"
    same "$(last "$WORK/sgd_sparse_np$np")" "$(last "$WORK/sgd_dense_np$np")" \
        "SGD on $np rank(s): sparse and dense updates of the lists' tables give identical parameters"
done
run 2 sgd_sharded "${common[@]}" "${sgd[@]}" --embedding-update sparse --embedding-sharding row \
    --checkpoint-dir "$WORK/sgd_sharded" --metrics-out "$WORK/sgd_sharded.jsonl"
[ "$(field "$WORK/sgd_sharded.jsonl" -1 sharded_tables)" = 3 ] &&
    pass "--embedding-sharding row: 3 row-sharded tables" ||
    fail "sharded tables: $(field "$WORK/sgd_sharded.jsonl" -1 sharded_tables)"
# float32 sums of 2 ranks' rows in another order: 1e-5 after 38 steps of lr 0.3
same "$(last "$WORK/sgd_sharded")" "$(last "$WORK/sgd_dense_np2")" \
    "row-sharded tables on 2 ranks give the replicated run's parameters" 1e-5
for np in 1 2; do
    run $np "global_np$np" "${common[@]}" "${sgd[@]}" --embedding-update sparse \
        --data-order global --checkpoint-dir "$WORK/global_np$np"
done
same "$(last "$WORK/global_np2")" "$(last "$WORK/global_np1")" \
    "--data-order global: 2 ranks give the 1-rank parameters (up to summation order)" 1e-5
run 2 stream2 "${common[@]}" "${sgd[@]}" --embedding-update sparse --stream \
    --stream-chunk-rows 100 --metrics-out "$WORK/stream2.jsonl" &&
    pass "--stream, 2 ranks, chunks of 100 rows: valid AUC $(field "$WORK/stream2.jsonl" -2 valid_auc click)"

# the same on lists that touch more rows per step than a batch has rows (64
# rows x lists of mean length 10 of 5000 ids): the touched-row buffers grow
"$PREP" synth --kind ctr --rows 3000 --sparse-fields 2 --vocab 100,5000 --dense-fields 2 \
    --multi-fields 2 --multi-len 10 --seed 3 --split 0.8,0.2 --output-dir "$D/syn" >/dev/null
big=(--train "$D/syn/train.h5" --model cgc --embedding-dim 4 --batch-size 64 --quiet
    --optimizer sgd --lr 0.3 --l2-embedding 0 --epochs 2)
for np in 1 2; do
    for mode in sparse dense; do
        run $np "big_${mode}_np$np" "${big[@]}" --embedding-update $mode \
            --checkpoint-dir "$WORK/big_${mode}_np$np"
    done
    same "$(last "$WORK/big_sparse_np$np")" "$(last "$WORK/big_dense_np$np")" \
        "long lists, SGD on $np rank(s): sparse and dense updates give identical parameters"
done
run 2 big_sharded "${big[@]}" --embedding-update sparse --embedding-sharding row \
    --checkpoint-dir "$WORK/big_sharded"
same "$(last "$WORK/big_sharded")" "$(last "$WORK/big_dense_np2")" \
    "long lists: row-sharded tables on 2 ranks give the replicated run's parameters" 1e-5

# (c) length-1 lists == /sparse
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/as_sparse.h5" --layout sparse --rows 500 --seed 4
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$D/as_multi.h5" --layout single --rows 500 --seed 4
for layout in sparse multi; do
    run 1 "one_$layout" --train "$D/as_$layout.h5" --model mmoe --embedding-dim 4 \
        --batch-size 500 --epochs 6 --optimizer sgd --lr 0.5 --quiet \
        --metrics-out "$WORK/one_$layout.jsonl" --checkpoint-dir "$WORK/one_$layout"
done
if "$PYTHON3" - "$WORK/one_sparse.jsonl" "$WORK/one_multi.jsonl" <<'PY'; then
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"epoch"' in l] for p in sys.argv[1:3])
assert len(a) == len(b) == 6, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for t in x["train_loss"]:
        u, v = x["train_loss"][t], y["train_loss"][t]
        # float rounding of a loss of ~0.6: 1e-6 relative
        assert abs(u - v) <= 1e-6 * abs(u), (x["epoch"], t, u, v)
        worst = max(worst, abs(u - v))
print(f"6 steps, 2 tasks: max |loss difference| {worst:.3g}")
PY
    pass "length-1 sum-pooled lists give /sparse's loss at every step"
else
    fail "length-1 sum-pooled lists: losses differ from /sparse's"
fi
same "$(last "$WORK/one_multi")" "$(last "$WORK/one_sparse")" \
    "length-1 sum-pooled lists give /sparse's parameters" 1e-6
# the same with --stream in chunks of 64 rows and batches of 100: a batch's
# lists come from two chunks
for layout in sparse multi; do
    run 1 "stream_$layout" --train "$D/as_$layout.h5" --model mmoe --embedding-dim 4 \
        --batch-size 100 --epochs 2 --optimizer sgd --lr 0.5 --quiet --stream \
        --stream-chunk-rows 64 --checkpoint-dir "$WORK/stream_$layout"
done
same "$(last "$WORK/stream_multi")" "$(last "$WORK/stream_sparse")" \
    "--stream, batches across chunks: length-1 lists give /sparse's parameters" 1e-6

# (d) checkpoints: resume, predict, export
ck=(--model ple "${common[@]}" --epochs 3 --test "$D/test.h5")
run 1 full "${ck[@]}" --checkpoint-dir "$WORK/full" --predict-out "$WORK/full_pred.h5"
run 1 part "${ck[@]}" --epochs 1 --checkpoint-dir "$WORK/part"
run 1 resumed "${ck[@]}" --checkpoint-dir "$WORK/part" --resume latest
same "$(last "$WORK/part")" "$(last "$WORK/full")" "resumed after epoch 1: the uninterrupted run"
run 1 predict predict --checkpoint "$(last "$WORK/full")" --data "$D/test.h5" \
    --predict-out "$WORK/pred.h5" --batch-size 256 --quiet # the run evaluated 256 rows at a time
same_predictions "predict from the checkpoint" "$WORK/full_pred.h5" "$WORK/pred.h5"
if "$DIST" export --checkpoint "$(last "$WORK/full")" --onnx "$WORK/m.onnx" >"$WORK/export.out" 2>&1; then
    fail "export of a model with multi-valued fields succeeded"
elif grep -q "multi-valued field" "$WORK/export.out" && [ ! -e "$WORK/m.onnx" ]; then
    pass "export refuses: $(head -1 "$WORK/export.out")"
else
    fail "export: unexpected output"
    cat "$WORK/export.out"
fi

# (e) mtl_prep on the MovieLens-style example: genres becomes /multi/genres,
# whose lists decode (through /meta's vocabulary) to the CSV's genres
ML=$WORK/ml
"$PREP" --config "$MTL_SRC/configs/movielens.ini" --input "$MTL_SRC/tests/movielens_tiny.csv" \
    --split 0.8,0.2 --output-dir "$ML" >"$WORK/prep.out"
if "$PYTHON3" - "$ML/train.h5" "$ML/test.h5" "$MTL_SRC/tests/movielens_tiny.csv" <<'PY'; then
import csv, sys, h5py
rows = list(csv.reader(open(sys.argv[3])))
want = [[g.strip() for g in r[5].split("|") if g.strip()] for r in rows]
got = []
for path in sys.argv[1:3]:
    with h5py.File(path, "r") as f:
        g = f["multi/genres"]
        assert g.attrs["pooling"] == "mean" and list(f["sparse"].attrs["names"]) == [
            "user_id", "movie_id", "gender", "occupation"]
        vocab = [v.decode() for v in f["meta/vocab/4"][()]]  # genres: the 5th categorical
        assert g.attrs["vocab_size"] == len(vocab) == 12, len(vocab)
        off, ids = g["offsets"][()], g["ids"][()]
        got += [[vocab[i] for i in ids[off[k]:off[k + 1]]] for k in range(len(off) - 1)]
# the test rows' genres all occur in train (else <OOV>)
assert got == want, [(a, b) for a, b in zip(got, want) if a != b][:3]
print(f"{len(got)} rows, {sum(map(len, got))} genres, {sum(not g for g in got)} empty lists")
PY
    pass "mtl_prep: configs/movielens.ini writes /multi/genres, lists as in the CSV"
else
    fail "mtl_prep: /multi/genres does not match the CSV"
fi
run 2 ml --config "$MTL_SRC/configs/movielens.ini" --train "$ML/train.h5" --test "$ML/test.h5" \
    --epochs 2 --quiet && pass "MovieLens example trains on 2 ranks"

summary e2e_multi
