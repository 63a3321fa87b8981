#!/usr/bin/env bash
# Regenerate the hand-made seeds (tests/fuzz/corpus/<target>/seed-*): valid
# inputs of every kind plus a few near-misses for each error path. The
# fuzzers' own additions (files named by SHA-1) come from `run.sh merge`.
#
#   tests/fuzz/make_seeds.sh [BUILD_DIR]     (default: build; needs mtl_prep and
#                                             mtl_dist built there, h5py, h5repack)
#
# Byte 0 of a csv/config seed selects the config and mode (see targets.h).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build}
py=/usr/bin/python3
corpus=$here/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$corpus/csv" "$corpus/config" "$corpus/h5"
rm -f "$corpus"/*/seed-*

# seed FILE BYTE0 [FILES...]: BYTE0 (decimal) then the files' bytes,
# separated by a NUL when there are two
seed() {
  local out=$1 b=$2
  shift 2
  {
    printf "\\$(printf '%03o' "$b")"
    local first=1
    for f in "$@"; do
      [ $first -eq 0 ] && printf '\0'
      cat "$f"
      first=0
    done
  } >"$out"
}

# ---- csv: config 0 (Adult-like), 1 (regression + binary), 2 (categorical only)
cat >"$work/adult.csv" <<'EOF'
39, State-gov, Bachelors, 40, <=50K, 1
50, Private, HS-grad, 13, >50K, 2

38, Private, Masters, 40, <=50K, 3
53, ?, Bachelors, 60, >50K, 4
28, Private, HS-grad, 40, ?, 5
37, Self-emp, Masters, 45e0, >50K, 6
EOF
printf '|1x3 Cross validator\r\n25, Private, 11th, 40, <=50K., 8\r\n38, Private, HS-grad, 50, >50K., 7\r\n' >"$work/adult.test"
printf '1,0.5,2,3.25,yes\n2,1e3,-1,0,0\nx,7,7,-2.5,no\n1,0,0,1,1\n' >"$work/reg.csv"
printf 'a,b,1\nb,c,0\na,c,1\nd,a,0\n' >"$work/cat.csv"
printf 'a,b,1\ne,f,0\n' >"$work/cat_test.csv"
gzip -9n <"$work/adult.csv" >"$work/adult.csv.gz"
seed "$corpus/csv/seed-adult-split2" 0 "$work/adult.csv"
seed "$corpus/csv/seed-adult-split3" 9 "$work/adult.csv"
seed "$corpus/csv/seed-adult-gzip" 0 "$work/adult.csv.gz"
seed "$corpus/csv/seed-adult-train-test" 3 "$work/adult.csv" "$work/adult.test"
seed "$corpus/csv/seed-reg-split" 1 "$work/reg.csv"
seed "$corpus/csv/seed-reg-vocab-from" 7 "$work/reg.csv" "$work/reg.csv"
seed "$corpus/csv/seed-cat-vocab-from" 8 "$work/cat.csv" "$work/cat_test.csv"
printf '1,2,3\n' >"$work/short.csv"
seed "$corpus/csv/seed-bad-fields" 2 "$work/short.csv"

# ---- config: 0 trainer INI, 1 INI \0 command line, 2 mtl_prep INI
cat >"$work/run.ini" <<'EOF'
; a trainer config using most keys, beside mtl_prep's sections
[columns]
names = a, b,
    c
[train]
train = data/train.h5
valid = data/valid.h5   # inline comment
data-order = global
model = ple
embedding_dim = 8
bottom_units = 16, 8
tower_units = 4
expert_units = 32,16
gate_units =
num_experts_specific = 2
num_experts_shared = 1
[train.ple]
num_levels = 3
[train]
batch_norm = yes
dropout = 0.25
task_types = binary, regression
loss_weights = 1, 0.5
loss_weighting = uncertainty
[task.y]
column = c
[train]
optimizer = sgd
lr = 1e-3
momentum = 0.9
l2_embedding = 0
batch_size = 512
epochs = 3
seed = 18446744073709551615
early_stop_patience = 2
early_stop_metric = auc:income
skip_nonfinite_steps = on
checkpoint_dir = /nonexistent/ck
checkpoint_every_steps = 100
checkpoint_every_seconds = 1.5
keep_checkpoints = 2
resume = latest
threads = 2
max_steps = 10
quiet = false
EOF
printf '[train]\nmodel = esmm\n[train.esmm]\nctr_task = click\nctcvr_task = buy\n' >"$work/esmm.ini"
printf 'train\n--config\n--lr=0.5\n--batch-size\n64\n--quiet\n--model\nmmoe\n--bottom_units=8,4\n--seed\n5\n' >"$work/args1"
printf 'predict\n--checkpoint\nck.h5\n--data\nd.h5\n--predict-out\np.h5\n--dropout\n1\n' >"$work/args2"
printf 'nan\n--epochs=1.5\n' >"$work/args3"
seed "$corpus/config/seed-run-ini" 0 "$work/run.ini"
seed "$corpus/config/seed-esmm-ini" 0 "$work/esmm.ini"
seed "$corpus/config/seed-cli-config" 1 "$work/esmm.ini" "$work/args1"
seed "$corpus/config/seed-cli-predict" 1 /dev/null "$work/args2"
seed "$corpus/config/seed-cli-bad" 1 "$work/run.ini" "$work/args3"
for c in "$root"/configs/*.ini; do
  seed "$corpus/config/seed-prep-$(basename "${c%.ini}")" 2 "$c"
done
printf '[columns]\nnames = a, b, y\ncategorical = a\nnumeric = b, a\n[task.y]\ncolumn = y\ntype = regression\npositive = 1\n' >"$work/prep_bad.ini"
seed "$corpus/config/seed-prep-bad" 2 "$work/prep_bad.ini"

# ---- h5: what mtl_prep writes (repacked contiguous: a chunked file is
# ~180 KB), h5py-written datasets, a checkpoint, and near-misses of each
printf '[columns]\nnames = age, work, edu, hours, income, wt\ncategorical = work, edu\nnumeric = age, hours\nignore = wt\n[task.income]\ncolumn = income\npositive = >50K\nnegative = <=50K, ?\n' >"$work/prep0.ini"
"$bin/mtl_prep" --config "$work/prep0.ini" --train "$work/adult.csv" --test "$work/adult.csv" \
  --output-dir "$work/prep" >/dev/null
h5repack -l CONTI "$work/prep/train.h5" "$work/prep.h5"
cp "$work/prep.h5" "$corpus/h5/seed-prep-dataset"
"$bin/mtl_dist" --train "$work/prep/train.h5" --model shared_bottom --bottom-units 2 \
  --tower-units 2 --embedding-dim 2 --epochs 1 --batch-size 2 --checkpoint-dir "$work/ck" \
  --checkpoint-every-steps 3 --quiet >/dev/null
cp "$work"/ck/ckpt-*.h5 "$work/ckpt.h5"
cp "$work/ckpt.h5" "$corpus/h5/seed-checkpoint"
"$bin/mtl_dist" --train "$work/prep/train.h5" --model mmoe --expert-units 2 --num-experts 2 \
  --tower-units 1 --embedding-dim 1 --epochs 1 --batch-size 6 --batch-norm \
  --checkpoint-dir "$work/ck2" --checkpoint-every-steps 1 --quiet >/dev/null
cp "$work"/ck2/ckpt-*.h5 "$corpus/h5/seed-checkpoint-mmoe-bn"
for v in "" "--names fixed" "--names vlen-ascii --no-weights" "--sparse-cols 0" \
         "--dense-cols 0 --tasks 1" "--bad sparse-range" "--bad dense-nan" "--bad label-rows" \
         "--bad vocab-float" "--bad names-int" "--bad weights-rank2" "--labels-dtype float64" \
         "--bad sparse-huge" "--numpy-defaults --compression lzf"; do
  name=$(echo "h5py $v" | tr -s ' -' '-' | sed 's/-$//')
  # shellcheck disable=SC2086
  "$py" "$root/tests/h5py_write.py" "$work/x.h5" --rows 20 $v
  cp "$work/x.h5" "$corpus/h5/seed-$name"
done
"$py" - "$work" "$corpus/h5" <<'EOF'
import shutil, sys
import h5py, numpy as np
work, out = sys.argv[1], sys.argv[2]
def variant(src, name, fn):
    dst = f"{work}/{name}.h5"
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    shutil.copy(dst, f"{out}/seed-{name}")
# /meta that does not match the datasets beside it (mtl_prep --vocab-from)
variant(f"{work}/prep.h5", "meta-no-sparse", lambda f: f.__delitem__("sparse"))
def meta_more_sparse(f):
    f["meta"].attrs["n_sparse"] = np.int64(3)
    f["meta/vocab"].create_dataset("2", data=np.array(["<OOV>", "x"], dtype=h5py.string_dtype()))
variant(f"{work}/prep.h5", "meta-more-sparse", meta_more_sparse)
def meta_renamed(f):
    f["sparse"].attrs["names"] = np.array(["edu", "work"], dtype=h5py.string_dtype())
variant(f"{work}/prep.h5", "meta-renamed", meta_renamed)
def meta_dup(f):
    del f["meta/vocab/0"]
    f["meta/vocab"].create_dataset("0", data=np.array(["<OOV>", "a", "a", "b", "c"], dtype=h5py.string_dtype()))
variant(f"{work}/prep.h5", "meta-dup-vocab", meta_dup)
variant(f"{work}/prep.h5", "meta-bad-count", lambda f: f["meta"].attrs.__setitem__("n_dense", np.int64(-1)))
# checkpoints: wrong format, too many tasks, a misshapen tensor, NaN, no optimizer
variant(f"{work}/ckpt.h5", "ckpt-format", lambda f: f.attrs.__setitem__("format", "mtl_dist checkpoint 0"))
def ckpt_fixed_format(f):
    f.attrs["format"] = np.bytes_("mtl_dist checkpoint 1")
variant(f"{work}/ckpt.h5", "ckpt-fixed-string", ckpt_fixed_format)
def ckpt_tasks(f):
    f.attrs["task_names"] = np.array(["t%d" % i for i in range(17)], dtype=h5py.string_dtype())
variant(f"{work}/ckpt.h5", "ckpt-17-tasks", ckpt_tasks)
def ckpt_shape(f):
    name = "bottom.dense0.weight"
    d = f["params"][name][()]
    del f["params"][name]
    f["params"].create_dataset(name, data=d.reshape(-1))
variant(f"{work}/ckpt.h5", "ckpt-flat-tensor", ckpt_shape)
def ckpt_nan(f):
    name = sorted(f["params"].keys())[-1]
    d = f["params"][name]
    v = d[()]
    v.flat[0] = np.nan
    d[...] = v
variant(f"{work}/ckpt.h5", "ckpt-nan", ckpt_nan)
variant(f"{work}/ckpt.h5", "ckpt-no-optimizer", lambda f: f.__delitem__("optimizer"))
variant(f"{work}/ckpt.h5", "ckpt-vocab-neg", lambda f: f.attrs.__setitem__("vocab_sizes", np.array([-5, 4], dtype=np.int64)))
def ckpt_long_config(f):
    f.attrs["config"] = "model = shared_bottom\n" + "x" * 600 + "\n"
variant(f"{work}/ckpt.h5", "ckpt-long-config", ckpt_long_config)
EOF
# every h5 seed is repacked small where h5py chunked it
for f in "$corpus"/h5/seed-*; do
  h5repack -f NONE -l CONTI "$f" "$work/r.h5" 2>/dev/null && [ "$(stat -c %s "$work/r.h5")" -lt "$(stat -c %s "$f")" ] &&
    cp "$work/r.h5" "$f"
done
du -sh "$corpus"/* | sed 's/^/seeds: /'
ls -S -l "$corpus/h5" | head -3
