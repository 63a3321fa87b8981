#!/usr/bin/env bash
# mtl_dist and mtl_prep under valgrind memcheck: a short 1-rank training (3
# steps, tiny data, with validation, test, metrics, predictions and
# checkpoints), its resumption, predict, failing runs (bad data, bad option,
# bad checkpoint), and mtl_prep on CSV and synth. Each must have no memory
# errors and no definite leaks outside Open MPI's own init/finalize
# (tests/valgrind.supp). Skipped (exit 0) when valgrind is not installed.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind not installed"
    exit 0
fi
# (ldd captured first: with pipefail, grep -q closing the pipe early would fail ldd)
if [[ "$(ldd "$MTL_BIN/mtl_dist" 2>/dev/null)" == *libasan* ]]; then
    echo "SKIP: an AddressSanitizer build (valgrind runs on the plain build)"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_valgrind.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T_START=$SECONDS

VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --num-callers=30 --suppressions="$MTL_SRC/tests/valgrind.supp")
# valgrind does not emulate AVX-512: an OpenBLAS kernel forced to one that
# needs it dies of SIGILL under valgrind (it does not ask the CPU, which
# valgrind would answer). Those runs go without the setting, so OpenBLAS picks
# a kernel for valgrind's virtual CPU; the numerics are not what is checked
# here (tests/all-kernels.sh runs the rest of the suite with the kernel set).
case "${OPENBLAS_CORETYPE:-}" in
[Ss][Kk][Yy][Ll][Aa][Kk][Ee][Xx] | [Cc][Oo][Oo][Pp][Ee][Rr][Ll][Aa][Kk][Ee] | [Ss][Aa][Pp][Pp][Hh][Ii][Rr][Ee]*)
    echo "note: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE needs AVX-512, which valgrind cannot run:" \
        "unset for the runs under valgrind"
    VG=(env -u OPENBLAS_CORETYPE "${VG[@]}")
    ;;
esac

# vg NAME WANT_STATUS PROGRAM ARGS...: run under valgrind (timeout 80 s); the
# program must exit WANT_STATUS and valgrind must report 0 errors
vg() {
    local name=$1 want=$2
    shift 2
    local t0=$SECONDS rc=0
    timeout -k 5 80 "${VG[@]}" --log-file="$WORK/$name.vg" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    local summary lost
    summary=$(grep -m1 -o 'ERROR SUMMARY: [0-9]* errors' "$WORK/$name.vg" || echo "no summary")
    lost=$(grep -m1 -o 'definitely lost: [0-9,]* bytes in [0-9,]* blocks' "$WORK/$name.vg" ||
        echo "definitely lost: 0 bytes")
    if [ "$rc" -eq "$want" ] && [ "$summary" = "ERROR SUMMARY: 0 errors" ]; then
        pass "$name: exit $rc after $((SECONDS - t0))s, $summary, $lost"
    else
        fail "$name: exit $rc (want $want), $summary, $lost"
        grep -v '^==[0-9]*== *$' "$WORK/$name.vg" | grep -A25 -m3 -e 'Invalid' -e 'uninitialised' \
            -e 'definitely lost in' | head -60 | sed 's/^/    | /'
        head -5 "$WORK/$name.err" | sed 's/^/    | /'
    fi
}

echo "== data =="
"$PREP" synth --kind ctr --rows 400 --sparse-fields 4 --vocab 20 --dense-fields 3 --seed 1 \
    --output-dir "$WORK/tiny" >/dev/null
D=$WORK/tiny
ARGS=(--model mmoe --train "$D/train.h5" --valid "$D/valid.h5" --test "$D/test.h5"
    --batch-size 32 --epochs 1 --max-steps 3 --quiet)

echo
echo "== mtl_dist =="
vg train 0 "$DIST" "${ARGS[@]}" --checkpoint-dir "$WORK/ck" --checkpoint-every-steps 2 \
    --metrics-out "$WORK/m.jsonl" --predict-out "$WORK/p.h5"
# the same command, longer, resumed from the step-3 checkpoint (esmm, dropout
# and batch norm on the way: other layers' code paths)
vg resume 0 "$DIST" "${ARGS[@]}" --max-steps 6 --checkpoint-dir "$WORK/ck" --resume latest \
    --metrics-out "$WORK/m.jsonl"
vg esmm 0 "$DIST" --model esmm --ctr-task click --ctcvr-task conversion --train "$D/train.h5" \
    --test "$D/test.h5" --batch-size 32 --max-steps 3 --dropout 0.1 --batch-norm --quiet \
    --checkpoint-dir "$WORK/ck_esmm"
CK=$( { ls "$WORK"/ck/ckpt-*.h5 2>/dev/null || true; } | sort | tail -1)
if [ -n "$CK" ]; then
    vg predict 0 "$DIST" predict --checkpoint "$CK" --data "$D/test.h5" --predict-out "$WORK/p2.h5" --quiet
else
    fail "no checkpoint to predict with"
fi
"$PYTHON3" "$MTL_SRC/tests/make_bad_h5.py" "$D/train.h5" "$WORK/bad" >/dev/null
vg bad_data 1 "$DIST" "${ARGS[@]}" --train "$WORK/bad/sparse-vocab.h5"
vg bad_option 2 "$DIST" "${ARGS[@]}" --lr abc
echo "not a checkpoint" >"$WORK/not.h5"
vg bad_checkpoint 1 "$DIST" "${ARGS[@]}" --resume "$WORK/not.h5"

echo
echo "== mtl_prep =="
# the toy CSV's config, shared with e2e_bad_input.sh
cp "$MTL_SRC/tests/toy_prep.ini" "$WORK/p.ini"
for i in $(seq 1 60); do
    echo "$((20 + i % 50)),c$((i % 4)),$((i * 7)).5,$([ $((i % 3)) = 0 ] && echo yes || echo no)"
done >"$WORK/good.csv"
{
    head -20 "$WORK/good.csv"
    echo "33,c1,abc,yes"
} >"$WORK/bad.csv"
vg prep_csv 0 "$PREP" --config "$WORK/p.ini" --input "$WORK/good.csv" --output-dir "$WORK/prep" \
    --split 0.6,0.2,0.2 --shuffle-seed 3
vg prep_vocab_from 0 "$PREP" --config "$WORK/p.ini" --train "$WORK/good.csv" \
    --test "$WORK/good.csv" --vocab-from "$WORK/prep/train.h5" --output-dir "$WORK/prep2"
vg prep_bad_csv 1 "$PREP" --config "$WORK/p.ini" --input "$WORK/bad.csv" --output-dir "$WORK/prep3"
vg prep_synth 0 "$PREP" synth --kind mmoe --correlation 0.5 --rows 300 --seed 2 \
    --output-dir "$WORK/synth"

echo
echo "e2e_valgrind: $((SECONDS - T_START))s"
if [ "$failures" -ne 0 ]; then
    echo "e2e_valgrind: $failures check(s) FAILED"
    exit 1
fi
echo "e2e_valgrind: all checks passed"
