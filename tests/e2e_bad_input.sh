#!/usr/bin/env bash
# End-to-end bad-input tests: every class of bad input to mtl_dist and
# mtl_prep ends with the documented exit status (README "Exit statuses": 2 for
# a bad option or config value, 1 for bad data, checkpoints and I/O), a message
# naming the option, file:line, file/dataset/row or rank, without hanging and
# without leaving a partial output (metrics, predictions, checkpoints, mtl_prep
# output directory): the output area is compared before and after each run.
# Classes: command-line options, config files, CSV input to mtl_prep, HDF5
# datasets for --train/--valid/--test/--data (1 and 2 ranks), checkpoints
# (1 and 2 ranks), unwritable output paths.
# Prints a table "class | case | ranks | exit | message" at the end.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_bad_input.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T_START=$SECONDS

TABLE=$WORK/table.md

# Each case runs in its own output area, $WORK/case_N/out, holding a regular
# file and a directory to aim outputs at and nothing else; a failed run must
# leave it as it was. Arguments name it as @O@. Cases mostly wait (MPI start
# and abort), so up to JOBS run at once; each section prints its results in
# order when all its cases are done.
JOBS=4
OUTS=(--metrics-out @O@/m.jsonl --predict-out @O@/p.h5 --checkpoint-dir @O@/ck)
ncase=0
section_first=1

# expect CLASS CASE NP WANT SUBSTR PROGRAM ARGS...
#   PROGRAM is dist (mtl_dist on NP ranks) or prep (mtl_prep; NP ignored).
#   The run must exit WANT (not time out), stderr must contain SUBSTR (and
#   "rank N" when NP > 1 and WANT is 1), and the output area must be unchanged.
expect() {
    ncase=$((ncase + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run_case "$ncase" "$@" &
}
run_case() {
    local n=$1 class=$2 case=$3 np=$4 want=$5 sub=$6 prog=$7
    shift 7
    local dir=$WORK/case_$n
    local o=$dir/out
    mkdir -p "$o/adir"
    echo "a regular file" >"$o/regfile"
    local args=("${@//@O@/$o}")
    local cmd=("$PREP")
    if [ "$prog" = dist ]; then
        cmd=("$DIST")
        [ "$np" -gt 1 ] && cmd=("$MPIEXEC" "$NPFLAG" "$np" "${OVERSUB[@]}" "$DIST")
    else
        np=1
    fi
    local before after rc=0 t0
    before=$(cd "$o" && find . | sort)
    # each case its own TMPDIR: Open MPI's session directory lives there, and
    # cases running side by side raced on one (a case ending removed it while
    # another's mkdir was under way: "Error: File exists", the run exiting 1)
    mkdir -p "$dir/tmp"
    t0=$(date +%s%N)
    TMPDIR=$dir/tmp timeout -k 5 60 "${cmd[@]}" "${args[@]}" >"$dir/stdout" 2>"$dir/stderr" </dev/null || rc=$?
    local ms=$((($(date +%s%N) - t0) / 1000000))
    after=$(cd "$o" && find . | sort)
    local msg
    # the last message line: the error itself (after e.g. "skipping ..." notes)
    msg=$(grep -e '^mtl_dist:' -e '^mtl_prep:' "$dir/stderr" | tail -1 |
        sed "s|$WORK/case_$n/|case/|g; s|$WORK/||g" || true)
    local bad=()
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        bad+=("hung (killed by timeout after ${ms} ms)")
    elif [ "$rc" -ne "$want" ]; then
        bad+=("exit $rc, want $want")
    fi
    grep -qF -- "$sub" "$dir/stderr" || bad+=("stderr lacks '$sub'")
    # a rank's data/IO failure ends the job through MPI_Abort, naming the rank;
    # an option error is the same on every rank and rank 0 alone reports it
    if [ "$np" -gt 1 ] && [ "$want" -eq 1 ] && ! grep -q '^mtl_dist: rank [0-9]' "$dir/stderr"; then
        bad+=("the message does not name the rank")
    fi
    if [ "$before" != "$after" ]; then
        bad+=("left output behind: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')")
    fi
    {
        if [ ${#bad[@]} -eq 0 ]; then
            echo "ok: [$class] $case (np $np): exit $rc, ${ms} ms: $msg"
        else
            local b
            for b in "${bad[@]}"; do echo "FAIL: [$class] $case (np $np): $b"; done
            grep -v -e '^-*$' "$dir/stderr" | head -6 | sed "s|$WORK/||g; s/^/    | /"
        fi
    } >"$dir/result"
    printf '| %s | %s | %s | %s | `%s` |\n' "$class" "$case" "$np" "$rc" "${msg//|/\\|}" >"$dir/row"
}
# section_end: wait for the section's cases, print their results in order
section_end() {
    wait
    local n
    for ((n = section_first; n <= ncase; n++)); do
        if [ -f "$WORK/case_$n/result" ]; then
            cat "$WORK/case_$n/result"
            grep -q '^FAIL' "$WORK/case_$n/result" && failures=$((failures + 1))
            cat "$WORK/case_$n/row" >>"$TABLE"
        else
            fail "case $n: no result"
        fi
    done
    section_first=$((ncase + 1))
}

echo "== data =="
D=$WORK/data
"$PREP" synth --kind ctr --rows 2000 --sparse-fields 8 --vocab 50 --dense-fields 4 --seed 1 \
    --output-dir "$D" >/dev/null
"$PREP" synth --kind ctr --rows 600 --sparse-fields 4 --vocab 20 --dense-fields 3 --seed 2 \
    --output-dir "$WORK/other" >/dev/null # another layout
BAD=$WORK/bad
"$PYTHON3" "$MTL_SRC/tests/make_bad_h5.py" "$D/train.h5" "$BAD" | sed 's/^/made bad file: /'
echo "not an HDF5 file" >"$BAD/text.h5"
: >"$BAD/empty.h5"
size=$(stat -c %s "$D/train.h5")
head -c $((size / 2)) "$D/train.h5" >"$BAD/truncated.h5"
mkdir -p "$BAD/dir.h5"
TR=(--train "$D/train.h5" --test "$D/test.h5" --batch-size 64 --max-steps 3 --quiet)
echo "| class | case | ranks | exit | message |" >"$TABLE"
echo "|---|---|---|---|---|" >>"$TABLE"

echo
echo "== command-line options (exit 2) =="
expect options "unknown option --bogus" 1 2 "--bogus: unknown option" dist "${TR[@]}" --bogus 1 "${OUTS[@]}"
expect options "missing value: --lr at the end" 1 2 "--lr: missing value" dist "${TR[@]}" "${OUTS[@]}" --lr
expect options "malformed number --lr abc" 1 2 "--lr: 'abc' is not a number" dist "${TR[@]}" --lr abc "${OUTS[@]}"
expect options "not finite --lr nan" 1 2 "--lr: 'nan' is not a finite number" dist "${TR[@]}" --lr nan "${OUTS[@]}"
expect options "out of range --batch-size 0" 1 2 "--batch-size: 0 is out of range" dist "${TR[@]}" --batch-size 0 "${OUTS[@]}"
expect options "out of range --epochs=-1" 1 2 "--epochs: -1 is out of range" dist "${TR[@]}" --epochs=-1 "${OUTS[@]}"
expect options "out of range --dropout 1.5" 1 2 "--dropout: '1.5' must be in [0, 1)" dist "${TR[@]}" --dropout 1.5 "${OUTS[@]}"
expect options "unknown model --model foo" 1 2 "--model: 'foo' is not a model" dist "${TR[@]}" --model foo "${OUTS[@]}"
expect options "no --train" 1 2 "no training data" dist --batch-size 64 "${OUTS[@]}"
expect options "--resume latest without --checkpoint-dir" 1 2 "--resume latest needs --checkpoint-dir" dist "${TR[@]}" --resume latest
expect options "esmm without its tasks" 1 2 "model esmm needs --ctr-task and --ctcvr-task" dist "${TR[@]}" --model esmm "${OUTS[@]}"
expect options "predict without --checkpoint" 1 2 "predict needs --checkpoint" dist predict --data "$D/test.h5" --predict-out "@O@/p.h5"
expect options "--valid-split with --valid" 1 2 "--valid-split: holds out part of --train as the validation set, so it cannot be combined with --valid FILE" dist "${TR[@]}" --valid "$D/test.h5" --valid-split 0.2 "${OUTS[@]}"
expect options "--valid-split 1" 1 2 "--valid-split: '1' must be in [0, 1)" dist "${TR[@]}" --valid-split 1 "${OUTS[@]}"
expect options "--patience without a validation set" 1 2 "early stopping (early_stop_patience 2) needs a validation set" dist "${TR[@]}" --patience 2 "${OUTS[@]}"
expect options "stray argument" 1 2 "'oops': unknown command" dist oops "${TR[@]}"
expect options "options, 2 ranks: --lr abc" 2 2 "--lr: 'abc' is not a number" dist "${TR[@]}" --lr abc "${OUTS[@]}"
expect options "mtl_prep: unknown option" 1 2 "--bogus: unknown option" prep --bogus 1 --output-dir "@O@/prep"
expect options "mtl_prep: missing value" 1 2 "--output-dir: missing value" prep synth --kind ctr --output-dir
expect options "mtl_prep: --rows abc" 1 2 "--rows: 'abc' is not a number" prep synth --kind ctr --rows abc --output-dir "@O@/prep"
expect options "mtl_prep: --split 0.5,abc" 1 2 "--split: '0.5,abc'" prep synth --kind ctr --rows 100 --split 0.5,abc --output-dir "@O@/prep"
expect options "mtl_prep: --kind foo" 1 2 "--kind: 'foo' is not mmoe or ctr" prep synth --kind foo --output-dir "@O@/prep"

section_end
echo
echo "== config files (exit 2, file:line: key) =="
C=$WORK/configs
mkdir -p "$C/a_directory.ini"
printf '[train]\nmodel = mmoe\nbogus_key = 3\n' >"$C/unknown_key.ini"
printf '[train]\nlr = 0.01\nbatch_size = 12x\n' >"$C/malformed.ini"
printf '[train]\nthis line has no equals sign\n' >"$C/syntax.ini"
printf '[train]\nconfig = other.ini\n' >"$C/nested.ini"
printf 'lr = 0.01\n[train]\n' >"$C/no_section.ini"
printf '[columns]\nnames = a\n[train]\nlr = 0.01\n[model]\nepochs = 2\n' >"$C/unknown_section.ini"
printf '[train]\nmodel = mmoe\n[train.esmm]\nctr_tsk = a\n' >"$C/unknown_key_esmm.ini"
expect config "unknown key" 1 2 "unknown_key.ini:3: bogus_key: unknown key" dist "${TR[@]}" --config "$C/unknown_key.ini" "${OUTS[@]}"
expect config "key outside a section" 1 2 "no_section.ini:1: lr: outside a section" dist "${TR[@]}" --config "$C/no_section.ini" "${OUTS[@]}"
expect config "unknown section" 1 2 "unknown_section.ini:6: [model]: unknown section" dist "${TR[@]}" --config "$C/unknown_section.ini" "${OUTS[@]}"
expect config "unknown key in another model's section" 1 2 "unknown_key_esmm.ini:4: ctr_tsk: unknown key" dist "${TR[@]}" --config "$C/unknown_key_esmm.ini" "${OUTS[@]}"
expect config "malformed value" 1 2 "malformed.ini:3: batch_size: '12x' is not a number" dist "${TR[@]}" --config "$C/malformed.ini" "${OUTS[@]}"
expect config "syntax error" 1 2 "syntax.ini:2: syntax error" dist "${TR[@]}" --config "$C/syntax.ini" "${OUTS[@]}"
expect config "config inside a config" 1 2 "nested.ini:2: config: not allowed in a config file" dist "${TR[@]}" --config "$C/nested.ini" "${OUTS[@]}"
expect config "missing config file" 1 2 "missing.ini: cannot open: No such file or directory" dist "${TR[@]}" --config "$C/missing.ini" "${OUTS[@]}"
expect config "a directory as config" 1 2 "a_directory.ini: cannot read: Is a directory" dist "${TR[@]}" --config "$C/a_directory.ini" "${OUTS[@]}"
expect config "unknown key, 2 ranks" 2 2 "unknown_key.ini:3: bogus_key: unknown key" dist "${TR[@]}" --config "$C/unknown_key.ini" "${OUTS[@]}"

# mtl_prep: its column/task config
CSV=$WORK/csv
mkdir -p "$CSV/a_directory.csv"
# the toy CSV's config, shared with e2e_valgrind.sh (line numbers below count its lines)
cp "$MTL_SRC/tests/toy_prep.ini" "$CSV/p.ini"
sed 's/^categorical = color$/categorical = color, colour/' "$CSV/p.ini" >"$CSV/unknown_column.ini"
sed 's/^numeric = age, amount$/numeric = age, amount\nbogus = 1/' "$CSV/p.ini" >"$CSV/unknown_key.ini"
printf '[model]\nepochs = 2\n' | cat "$CSV/p.ini" - >"$CSV/unknown_section.ini"
for i in $(seq 1 40); do
    echo "$((20 + i)),c$((i % 3)),$((i * 7)).5,$([ $((i % 2)) = 0 ] && echo yes || echo no)"
done >"$CSV/good.csv"
expect config "mtl_prep: unknown column" 1 2 "unknown_column.ini:3: categorical: unknown column 'colour'" prep --config "$CSV/unknown_column.ini" --input "$CSV/good.csv" --output-dir "@O@/prep"
expect config "mtl_prep: unknown key" 1 2 "unknown_key.ini:5: bogus: unknown" prep --config "$CSV/unknown_key.ini" --input "$CSV/good.csv" --output-dir "@O@/prep"
expect config "mtl_prep: unknown section" 1 2 "unknown_section.ini:11: [model]: unknown section" prep --config "$CSV/unknown_section.ini" --input "$CSV/good.csv" --output-dir "@O@/prep"
expect config "mtl_prep: missing config" 1 2 "missing.ini: cannot open" prep --config "$CSV/missing.ini" --input "$CSV/good.csv" --output-dir "@O@/prep"
expect config "mtl_prep: a directory as config" 1 2 "a_directory.csv: cannot read: Is a directory" prep --config "$CSV/a_directory.csv" --input "$CSV/good.csv" --output-dir "@O@/prep"

section_end
echo
echo "== CSV input to mtl_prep (exit 1, file:line: column NAME) =="
# line_with N TEXT: good.csv with line N replaced
line_with() { awk -v n="$1" -v t="$2" 'NR == n { print t; next } { print }' "$CSV/good.csv"; }
line_with 7 "33,c1,4.5" >"$CSV/few_fields.csv"
line_with 8 "33,c1,4.5,yes,extra" >"$CSV/many_fields.csv"
line_with 9 "abc,c1,4.5,yes" >"$CSV/not_numeric.csv"
line_with 10 "33,c1,nan,yes" >"$CSV/nan_numeric.csv"
line_with 11 "33,c1,4.5,maybe" >"$CSV/unknown_label.csv"
line_with 12 '33,"c1,4.5,yes' >"$CSV/open_quote.csv"
line_with 13 '33,c"1,4.5,yes' >"$CSV/stray_quote.csv"
: >"$CSV/empty.csv"
P=(--config "$CSV/p.ini" --output-dir "@O@/prep")
expect csv "wrong field count (too few)" 1 1 "few_fields.csv:7: column label: missing (row has 3 fields, config names 4)" prep "${P[@]}" --input "$CSV/few_fields.csv"
expect csv "wrong field count (too many)" 1 1 "many_fields.csv:8: column label: extra fields" prep "${P[@]}" --input "$CSV/many_fields.csv"
expect csv "non-numeric in a numeric column" 1 1 "not_numeric.csv:9: column age: 'abc' is not a number" prep "${P[@]}" --input "$CSV/not_numeric.csv"
expect csv "nan in a numeric column" 1 1 "nan_numeric.csv:10: column amount: 'nan' is not a number" prep "${P[@]}" --input "$CSV/nan_numeric.csv"
expect csv "unknown label value" 1 1 "unknown_label.csv:11: column label: label value 'maybe' is neither positive nor negative for task buy" prep "${P[@]}" --input "$CSV/unknown_label.csv"
expect csv "quoted field not closed" 1 1 "open_quote.csv:12: column color: quoted field not closed on this line" prep "${P[@]}" --input "$CSV/open_quote.csv"
expect csv "quote inside an unquoted field" 1 1 "stray_quote.csv:13: column color: '\"' inside an unquoted field" prep "${P[@]}" --input "$CSV/stray_quote.csv"
expect csv "empty file" 1 1 "empty.csv: no data rows" prep "${P[@]}" --input "$CSV/empty.csv"
expect csv "missing file" 1 1 "missing.csv: cannot open: No such file or directory" prep "${P[@]}" --input "$CSV/missing.csv"
expect csv "a directory as input" 1 1 "a_directory.csv: cannot read: is a directory" prep "${P[@]}" --input "$CSV/a_directory.csv"
expect csv "bad --test file after a good --train" 1 1 "not_numeric.csv:9: column age" prep "${P[@]}" --train "$CSV/good.csv" --test "$CSV/not_numeric.csv"
expect csv "--vocab-from not HDF5" 1 1 "text.h5: not an HDF5 file" prep "${P[@]}" --train "$CSV/good.csv" --test "$CSV/good.csv" --vocab-from "$BAD/text.h5"
# a /meta whose n_sparse is 2^31 - 1: refused before anything is sized by it
"$PREP" --config "$CSV/p.ini" --input "$CSV/good.csv" --output-dir "$CSV/prepped" >/dev/null
"$PYTHON3" -c '
import sys, h5py, numpy
with h5py.File(sys.argv[1], "r+") as f:
    f["meta"].attrs["n_sparse"] = numpy.int64(2**31 - 1)' "$CSV/prepped/train.h5"
expect csv "--vocab-from: /meta n_sparse 2^31-1" 1 1 "prepped/train.h5: /meta: bad n_sparse 2147483647 (0..256)" prep "${P[@]}" --train "$CSV/good.csv" --test "$CSV/good.csv" --vocab-from "$CSV/prepped/train.h5"

section_end
echo
echo "== HDF5 datasets for mtl_dist (exit 1; 1 and 2 ranks) =="
DARGS=(--test "$D/test.h5" --batch-size 64 --max-steps 3 --quiet "${OUTS[@]}")
# multi-valued fields (/multi, tests/h5py_multi.py --bad KIND)
MARGS=(--test "$BAD/multi-good.h5" --batch-size 64 --max-steps 3 --quiet "${OUTS[@]}")
for kind in nonmonotone last first id-range id-negative no-pooling offsets-rows no-multi; do
    "$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$BAD/multi-$kind.h5" --bad $kind
done
"$PYTHON3" "$MTL_SRC/tests/h5py_multi.py" "$BAD/multi-good.h5"
for np in 1 2; do
    expect hdf5 "missing file" $np 1 "bad/missing.h5: no such file" dist --train "$BAD/missing.h5" "${DARGS[@]}"
    expect hdf5 "a directory" $np 1 "bad/dir.h5: is a directory" dist --train "$BAD/dir.h5" "${DARGS[@]}"
    expect hdf5 "a text file" $np 1 "bad/text.h5: not an HDF5 file" dist --train "$BAD/text.h5" "${DARGS[@]}"
    expect hdf5 "an empty file" $np 1 "bad/empty.h5: not an HDF5 file" dist --train "$BAD/empty.h5" "${DARGS[@]}"
    expect hdf5 "truncated .h5" $np 1 "bad/truncated.h5: cannot open HDF5 file (corrupt or truncated?)" dist --train "$BAD/truncated.h5" "${DARGS[@]}"
    expect hdf5 "/sparse float64" $np 1 "bad/sparse-float64.h5: /sparse: dtype must be an integer type (got float64)" dist --train "$BAD/sparse-float64.h5" "${DARGS[@]}"
    expect hdf5 "/sparse int64 id 2^40" $np 1 "bad/sparse-huge.h5: /sparse: row 1200, column 2 (c2): value 1099511627776 does not fit int32" dist --train "$BAD/sparse-huge.h5" "${DARGS[@]}"
    expect hdf5 "/dense float64 1e39" $np 1 "bad/dense-overflow.h5: /dense: row 1200, column 1 (d1): value 1e+39 overflows float32" dist --train "$BAD/dense-overflow.h5" "${DARGS[@]}"
    # HDF5_PLUGIN_PRELOAD=:: disables HDF5's plugins: LZF as on a machine without hdf5-plugin-lzf
    HDF5_PLUGIN_PRELOAD=:: expect hdf5 "LZF without its plugin" $np 1 "bad/lzf.h5: /sparse: compressed with filter 32000 (lzf), which this HDF5 installation lacks: install hdf5-plugin-lzf" dist --train "$BAD/lzf.h5" "${DARGS[@]}"
    expect hdf5 "/dense 1-D" $np 1 "bad/dense-rank1.h5: /dense: must be 2-D [N, D] (got rank 1)" dist --train "$BAD/dense-rank1.h5" "${DARGS[@]}"
    expect hdf5 "/labels 3-D" $np 1 "bad/labels-rank3.h5: /labels: must be 2-D [N, T] (got rank 3)" dist --train "$BAD/labels-rank3.h5" "${DARGS[@]}"
    expect hdf5 "N of /labels != N of /dense" $np 1 "bad/n-mismatch.h5: /labels has 1600 rows but /dense has 1599" dist --train "$BAD/n-mismatch.h5" "${DARGS[@]}"
    expect hdf5 "/sparse out of vocab" $np 1 "bad/sparse-vocab.h5: /sparse: row 1200, column 2 (c2): value 51 outside 0..50" dist --train "$BAD/sparse-vocab.h5" "${DARGS[@]}"
    expect hdf5 "/sparse negative" $np 1 "bad/sparse-neg.h5: /sparse: row 1200, column 0 (c0): value -1 outside" dist --train "$BAD/sparse-neg.h5" "${DARGS[@]}"
    expect hdf5 "NaN in /dense" $np 1 "bad/dense-nan.h5: /dense: row 1200, column 1 (d1): value NaN is not finite" dist --train "$BAD/dense-nan.h5" "${DARGS[@]}"
    expect hdf5 "Inf in /dense" $np 1 "bad/dense-inf.h5: /dense: row 1200, column 0 (d0): value Inf is not finite" dist --train "$BAD/dense-inf.h5" "${DARGS[@]}"
    expect hdf5 "-Inf in /labels" $np 1 "bad/labels-inf.h5: /labels: row 1200, column 0 (click): value -Inf" dist --train "$BAD/labels-inf.h5" "${DARGS[@]}"
    expect hdf5 "no /labels" $np 1 "bad/no-labels.h5: /labels missing" dist --train "$BAD/no-labels.h5" "${DARGS[@]}"
    expect hdf5 "no vocab_sizes" $np 1 "bad/no-vocab.h5: /sparse: attribute vocab_sizes missing" dist --train "$BAD/no-vocab.h5" "${DARGS[@]}"
    expect hdf5 "zero rows" $np 1 "bad/zero-rows.h5: no rows" dist --train "$BAD/zero-rows.h5" "${DARGS[@]}"
    expect hdf5 "--valid of another layout" $np 1 "other/valid.h5: has 4 sparse, 3 dense and 2 label columns" dist --train "$D/train.h5" --valid "$WORK/other/valid.h5" "${DARGS[@]}"
    expect hdf5 "/multi offsets not monotone" $np 1 "bad/multi-nonmonotone.h5: /multi/genres/offsets: row 7: negative length" dist --train "$BAD/multi-nonmonotone.h5" "${MARGS[@]}"
    expect hdf5 "/multi offsets[N] != nnz" $np 1 "bad/multi-last.h5: /multi/genres/offsets: offsets[N] = offsets[600] is" dist --train "$BAD/multi-last.h5" "${MARGS[@]}"
    expect hdf5 "/multi offsets[0] != 0" $np 1 "bad/multi-first.h5: /multi/tags/offsets: row 0: offsets[0] is 1, must be 0" dist --train "$BAD/multi-first.h5" "${MARGS[@]}"
    expect hdf5 "/multi id out of range" $np 1 "bad/multi-id-range.h5: /multi/tags/ids: row 11: id 50" dist --train "$BAD/multi-id-range.h5" "${MARGS[@]}"
    expect hdf5 "/multi id negative" $np 1 "bad/multi-id-negative.h5: /multi/genres/ids: row 3: id -1" dist --train "$BAD/multi-id-negative.h5" "${MARGS[@]}"
    expect hdf5 "/multi without pooling" $np 1 "bad/multi-no-pooling.h5: /multi/tags: attribute pooling missing" dist --train "$BAD/multi-no-pooling.h5" "${MARGS[@]}"
    expect hdf5 "/multi offsets of N entries" $np 1 "bad/multi-offsets-rows.h5: /multi/genres/offsets: has 600 entries, must be N + 1 = 601" dist --train "$BAD/multi-offsets-rows.h5" "${MARGS[@]}"
    expect hdf5 "--valid without the /multi fields" $np 1 "bad/multi-no-multi.h5: /multi: has 0 multi-valued fields" dist --train "$BAD/multi-good.h5" --valid "$BAD/multi-no-multi.h5" "${MARGS[@]}"
    expect hdf5 "--test with NaN in /dense" $np 1 "bad/dense-nan.h5: /dense: row" dist --train "$D/train.h5" --batch-size 64 --max-steps 3 --quiet --test "$BAD/dense-nan.h5" --metrics-out "@O@/m.jsonl" --predict-out "@O@/p.h5" --checkpoint-dir "@O@/ck"
done

section_end
echo
echo "== checkpoints (exit 1) =="
CK=$WORK/ckpts
mkdir -p "$CK"
"$DIST" --model mmoe "${TR[@]}" --checkpoint-dir "$CK/mmoe" >/dev/null
"$DIST" --model cgc "${TR[@]}" --checkpoint-dir "$CK/cgc" >/dev/null
MMOE=$CK/mmoe/ckpt-000000003.h5
CGC=$CK/cgc/ckpt-000000003.h5
size=$(stat -c %s "$MMOE")
head -c $((size / 2)) "$MMOE" >"$CK/truncated.h5"
echo "not a checkpoint" >"$CK/text.h5"
# mmoe parameters under a config that says cgc: a checkpoint whose tensors are another model's
cp "$MMOE" "$CK/relabelled.h5"
"$PYTHON3" -c '
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["config"] = f.attrs["config"].replace("model = mmoe", "model = cgc")' "$CK/relabelled.h5"
mkdir -p "$CK/only_truncated"
cp "$CK/truncated.h5" "$CK/only_truncated/ckpt-000000009.h5"
PR=(predict --data "$D/test.h5" --predict-out "@O@/p.h5" --quiet)
for np in 1 2; do
    expect checkpoint "--resume truncated" $np 1 "ckpts/truncated.h5: cannot open as HDF5 (truncated or corrupt checkpoint?)" dist "${TR[@]}" --resume "$CK/truncated.h5" "${OUTS[@]}"
    expect checkpoint "--resume not HDF5" $np 1 "ckpts/text.h5: not an HDF5 file" dist "${TR[@]}" --resume "$CK/text.h5" "${OUTS[@]}"
    expect checkpoint "--resume missing file" $np 1 "ckpts/missing.h5: cannot open checkpoint: No such file" dist "${TR[@]}" --resume "$CK/missing.h5" "${OUTS[@]}"
    expect checkpoint "--resume a checkpoint of another model (cgc into mmoe)" $np 1 "ckpts/cgc/ckpt-000000003.h5: --resume: the checkpoint's model differs from this run's" dist --model mmoe "${TR[@]}" --resume "$CGC" "${OUTS[@]}"
    expect checkpoint "--resume with data of another shape" $np 1 "--resume: the checkpoint was trained on data of another shape" dist --train "$WORK/other/train.h5" --batch-size 64 --max-steps 3 --quiet --resume "$MMOE" --metrics-out "@O@/m.jsonl" --checkpoint-dir "@O@/ck"
    expect checkpoint "--resume latest, only a truncated one" $np 1 "--resume latest: no complete checkpoint in this directory" dist "${TR[@]}" --resume latest --checkpoint-dir "$CK/only_truncated" --metrics-out "@O@/m.jsonl" --predict-out "@O@/p.h5"
    expect checkpoint "predict: truncated" $np 1 "ckpts/truncated.h5: cannot open as HDF5" dist "${PR[@]}" --checkpoint "$CK/truncated.h5"
    expect checkpoint "predict: not HDF5" $np 1 "ckpts/text.h5: not an HDF5 file" dist "${PR[@]}" --checkpoint "$CK/text.h5"
    expect checkpoint "predict: tensors of another model" $np 1 "ckpts/relabelled.h5: /params/" dist "${PR[@]}" --checkpoint "$CK/relabelled.h5"
    expect checkpoint "predict: data of another layout" $np 1 "other/test.h5: has 4 sparse and 3 dense columns; the model was trained on 8 and 4" dist predict --data "$WORK/other/test.h5" --predict-out "@O@/p.h5" --quiet --checkpoint "$MMOE"
done

section_end
echo
echo "== unwritable output paths (exit 1, checked before training) =="
expect output "--metrics-out in a missing directory" 1 1 "out/nodir/m.jsonl: --metrics-out: directory" dist "${TR[@]}" --metrics-out "@O@/nodir/m.jsonl" --predict-out "@O@/p.h5" --checkpoint-dir "@O@/ck"
expect output "--metrics-out a directory" 1 1 "out/adir: --metrics-out: is a directory" dist "${TR[@]}" --metrics-out "@O@/adir" --predict-out "@O@/p.h5" --checkpoint-dir "@O@/ck"
expect output "--predict-out a directory" 1 1 "out/adir: --predict-out: is a directory" dist "${TR[@]}" --predict-out "@O@/adir" --metrics-out "@O@/m.jsonl" --checkpoint-dir "@O@/ck"
expect output "--predict-out under a regular file" 1 1 "out/regfile is not a directory" dist "${TR[@]}" --predict-out "@O@/regfile/p.h5" --metrics-out "@O@/m.jsonl" --checkpoint-dir "@O@/ck"
expect output "--checkpoint-dir a regular file" 1 1 "out/regfile: --checkpoint-dir: not a directory" dist "${TR[@]}" --checkpoint-dir "@O@/regfile" --metrics-out "@O@/m.jsonl" --predict-out "@O@/p.h5"
expect output "--checkpoint-dir under a regular file" 1 1 "out/regfile/ck: cannot create checkpoint directory: Not a directory" dist "${TR[@]}" --checkpoint-dir "@O@/regfile/ck" --metrics-out "@O@/m.jsonl" --predict-out "@O@/p.h5"
expect output "--checkpoint-dir a regular file, 2 ranks" 2 1 "out/regfile: --checkpoint-dir: not a directory" dist "${TR[@]}" --checkpoint-dir "@O@/regfile" --metrics-out "@O@/m.jsonl" --predict-out "@O@/p.h5"
expect output "predict --predict-out in a missing directory" 1 1 "out/nodir/p.h5: --predict-out: directory" dist predict --data "$D/test.h5" --checkpoint "$MMOE" --predict-out "@O@/nodir/p.h5" --quiet
expect output "predict --predict-out a directory" 1 1 "out/adir: --predict-out: is a directory" dist predict --data "$D/test.h5" --checkpoint "$MMOE" --predict-out "@O@/adir" --quiet
expect output "mtl_prep --output-dir under a regular file" 1 1 "out/regfile/prep: cannot create directory: Not a directory" prep "${P[@]}" --input "$CSV/good.csv" --output-dir "@O@/regfile/prep"
expect output "mtl_prep --output-dir a regular file" 1 1 "out/regfile: not a directory" prep "${P[@]}" --input "$CSV/good.csv" --output-dir "@O@/regfile"
expect output "mtl_prep synth --output-dir under a regular file" 1 1 "out/regfile/s" prep synth --kind ctr --rows 100 --output-dir "@O@/regfile/s"

section_end
echo
echo "e2e_bad_input: $ncase cases, $((SECONDS - T_START))s"
echo
cat "$TABLE"
echo
if [ "$failures" -ne 0 ]; then
    echo "e2e_bad_input: $failures check(s) FAILED"
    exit 1
fi
echo "e2e_bad_input: all checks passed"
