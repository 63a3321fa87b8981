#!/usr/bin/env bash
# End-to-end fault tests of mtl_dist (README "Exit statuses and signals"):
#  (1) SIGTERM mid-epoch, 1 rank and 2 ranks (SIGTERM to the ranks; SIGUSR1 to
#      mpirun, which forwards it): exit 75 with a message saying how to resume
#      (mpirun passes the ranks' 75 on as its own status); the same command +
#      --resume latest ends with parameters bit-identical to an uninterrupted
#      run;
#  (2) SIGKILL at random moments while checkpoints are written every few
#      steps: the directory always resumes (exit 0, same final parameters), no
#      *.tmp.* file is ever picked up, every ckpt-*.h5 left is complete;
#  (3) a truncated checkpoint is refused by --resume FILE with a message naming
#      it; --resume latest skips it and falls back to the previous one; a
#      non-HDF5 file is refused;
#  (4) divergence (an extreme /dense value; a huge --lr): exit 1 with a message
#      naming the step and the task, no checkpoint written after the failure,
#      every checkpoint left has finite parameters; --skip-nonfinite-steps
#      completes and reports nonfinite_steps_skipped > 0;
#  (5) a second SIGTERM exits at once (143, or 75 if the first was already
#      handled).
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR. MTL_FAULT_SEED seeds the
# random kill delays (printed, so a failure can be replayed).
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_faults.XXXXXX")
SEED=${MTL_FAULT_SEED:-$(date +%s)}
RANDOM=$SEED
T_START=$SECONDS

BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    # ranks of our runs that might survive their launcher (the marker is $WORK)
    for p in $(procs_of "$WORK"); do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# procs_of MARKER [PROGRAM]: pids of processes whose program (argv[0]) is
# PROGRAM (default mtl_dist) and whose command line contains MARKER
procs_of() {
    ps -eo pid=,args= | awk -v prog="${2:-$DIST}" -v m="$1" \
        '$2 == prog && index($0, m) > 0 { print $1 }'
}

# launcher NP: the command prefix for NP ranks (1 rank: mtl_dist alone)
launcher() {
    if [ "$1" -eq 1 ]; then
        LAUNCH=()
    else
        LAUNCH=("$MPIEXEC" "$NPFLAG" "$1" "${OVERSUB[@]}")
    fi
}

# run NP NAME ARGS...: mtl_dist in the foreground under `timeout 60`; output
# in $WORK/NAME.{out,err}; sets RC (124 = timed out) and SECS
run() {
    local np=$1 name=$2
    shift 2
    launcher "$np"
    local t0=$SECONDS
    RC=0
    timeout -k 5 60 "${LAUNCH[@]}" "$DIST" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
    SECS=$((SECONDS - t0))
}

# start NP NAME ARGS...: the same in the background; finish NAME waits and sets RC
start() {
    local np=$1 name=$2
    shift 2
    launcher "$np"
    rm -f "$WORK/$name.rc"
    (
        rc=0
        timeout -k 5 60 "${LAUNCH[@]}" "$DIST" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
        echo "$rc" >"$WORK/$name.rc"
    ) 2>/dev/null & # (no "Killed" notes from this shell)
    BG=$!
    BG_PIDS+=("$BG")
}
finish() {
    wait "$BG" 2>/dev/null || true
    RC=$(cat "$WORK/$1.rc" 2>/dev/null || echo 255)
}
running() { [ ! -e "$WORK/$1.rc" ]; }

# wait_ckpt NAME DIR: wait (at most 30 s) until DIR holds a checkpoint while NAME runs
wait_ckpt() {
    local i
    for ((i = 0; i < 3000; i++)); do
        if compgen -G "$2/ckpt-*.h5" >/dev/null; then return 0; fi
        running "$1" || return 1
        sleep 0.01
    done
    return 1
}

# the newest checkpoint in a directory (by step: names are zero-padded)
last_ckpt() { { ls "$1"/ckpt-*.h5 2>/dev/null || true; } | sort | tail -1; }
# an attribute of a checkpoint
ckpt_attr() { "$PYTHON3" -c 'import h5py,sys; print(int(h5py.File(sys.argv[1],"r").attrs[sys.argv[2]]))' "$1" "$2"; }

show_err() { sed 's/^/    | /' "$WORK/$1.err" | grep -v -e '^    | -*$' | head -"${2:-8}"; }

# same_final WHAT REF_DIR DIR: the newest checkpoints have the same step and
# bit-identical /params
same_final() {
    local a b
    a=$(last_ckpt "$2")
    b=$(last_ckpt "$3")
    if [ -z "$a" ] || [ -z "$b" ]; then
        fail "$1: missing final checkpoint ('$a', '$b')"
    elif [ "${a##*/}" != "${b##*/}" ]; then
        fail "$1: final checkpoints at different steps (${a##*/} vs ${b##*/})"
    elif cmp_out=$("$PYTHON3" "$COMPARE" "$a" "$b" 2>&1); then
        pass "$1: final ${b##*/} bit-identical to the uninterrupted run ($cmp_out)"
    else
        fail "$1: final parameters differ from the uninterrupted run: $cmp_out"
    fi
}

echo "== data (mtl_prep synth --kind ctr), kill-delay seed $SEED =="
"$PREP" synth --kind ctr --rows 30000 --sparse-fields 8 --vocab 50 --dense-fields 4 --seed 1 \
    --split 0.9,0.05,0.05 --output-dir "$WORK/big" >/dev/null
"$PREP" synth --kind ctr --rows 6000 --sparse-fields 8 --vocab 50 --dense-fields 4 --seed 1 \
    --split 0.9,0.05,0.05 --output-dir "$WORK/small" >/dev/null
BIG=(--train "$WORK/big/train.h5" --valid "$WORK/big/valid.h5")
SMALL=(--train "$WORK/small/train.h5")
echo "train 27000 rows (422 steps/epoch at batch 64) and 5400 rows (85 steps/epoch)"

echo
echo "== (1) SIGTERM mid-epoch: exit 75, then --resume latest = uninterrupted run == [$((SECONDS - T_START))s]"
# interrupt NP MODE EPOCHS: a reference run, an interrupted one, its resumption
interrupt() {
    local np=$1 mode=$2 epochs=$3 tag="np${1}_$2"
    local args=(--model mmoe "${BIG[@]}" --batch-size 64 --epochs "$epochs" --seed 3 --quiet)
    local ref=$WORK/ref_np$np
    if [ ! -d "$ref" ]; then
        run "$np" "ref_np$np" "${args[@]}" --checkpoint-dir "$ref"
        if [ "$RC" -ne 0 ]; then
            fail "(1) $np rank(s): the uninterrupted run exited with $RC"
            show_err "ref_np$np"
            return
        fi
        echo "uninterrupted run on $np rank(s): ${SECS}s, ends at $(basename "$(last_ckpt "$ref")")"
    fi
    local dir=$WORK/ck_$tag
    start "$np" "$tag" "${args[@]}" --checkpoint-dir "$dir"
    if ! wait_ckpt "$tag" "$dir"; then
        finish "$tag"
        fail "(1) $tag: no checkpoint appeared before the run ended (exit $RC)"
        return
    fi
    sleep "0.$(printf %02d $((RANDOM % 20 + 5)))" # 0.05-0.24 s: into the next epoch(s)
    local pids target
    case $mode in
    term_ranks)
        pids=$(procs_of "$dir")
        target="SIGTERM to the rank processes ($(echo $pids))"
        [ -n "$pids" ] && kill -TERM $pids
        ;;
    usr1_mpirun)
        pids=$(procs_of "$dir" "$MPIEXEC")
        [ -z "$pids" ] && pids=$(procs_of "$dir" "$(basename "$MPIEXEC")")
        target="SIGUSR1 to $MPIEXEC ($pids)"
        [ -n "$pids" ] && kill -USR1 $pids
        ;;
    esac
    local t0=$SECONDS
    finish "$tag"
    if [ -z "$pids" ]; then
        fail "(1) $tag: no process to signal (run already over? exit $RC)"
        return
    fi
    local last
    last=$(last_ckpt "$dir")
    local bie=? spe=422
    [ -n "$last" ] && bie=$(ckpt_attr "$last" batch_in_epoch)
    echo "$tag: $target -> exit $RC after $((SECONDS - t0))s, newest ${last##*/}" \
        "(batch $bie of $spe in its epoch)"
    if [ "$RC" -eq 75 ]; then
        pass "(1) $tag: exit status 75"
    else
        fail "(1) $tag: exit status $RC, want 75"
        show_err "$tag"
    fi
    if grep -q -e "--resume latest" "$WORK/$tag.err"; then
        pass "(1) $tag: message: $(grep -m1 'interrupted' "$WORK/$tag.err")"
    else
        fail "(1) $tag: no message saying how to resume (--resume latest)"
        show_err "$tag"
    fi
    if [ "$bie" = 0 ] || [ "$bie" = "$spe" ]; then
        echo "note: $tag: the signal landed on an epoch boundary (still a valid resume test)"
    fi
    run "$np" "${tag}_resume" "${args[@]}" --checkpoint-dir "$dir" --resume latest
    if [ "$RC" -ne 0 ]; then
        fail "(1) $tag: --resume latest exited with $RC"
        show_err "${tag}_resume"
        return
    fi
    pass "(1) $tag: resumed: $(grep -m1 'resumed from' "$WORK/${tag}_resume.out" | sed "s|$WORK/||")"
    same_final "(1) $tag" "$ref" "$dir"
}
interrupt 1 term_ranks 25
interrupt 2 term_ranks 15
interrupt 2 usr1_mpirun 15

# For the record: SIGTERM to mpirun itself. Seen with Open MPI 4.1.4: mpirun
# treats it as "abort the job": the ranks get a SIGTERM about a second later,
# write their checkpoint and exit 75, but mpirun itself exits 1. Not asserted
# beyond "ends without hanging"; send SIGUSR1 to mpirun (forwarded at once,
# exit 75 propagated) or signal the ranks, as srun does.
tag=np2_term_mpirun
start 2 "$tag" --model mmoe "${BIG[@]}" --batch-size 64 --epochs 20 --seed 3 --quiet \
    --checkpoint-dir "$WORK/ck_$tag"
if wait_ckpt "$tag" "$WORK/ck_$tag"; then
    pids=$(procs_of "$WORK/ck_$tag" "$MPIEXEC")
    [ -z "$pids" ] && pids=$(procs_of "$WORK/ck_$tag" "$(basename "$MPIEXEC")")
    [ -n "$pids" ] && kill -TERM $pids
    t0=$SECONDS
    finish "$tag"
    last=$(last_ckpt "$WORK/ck_$tag")
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "(1) SIGTERM to mpirun: hung (exit $RC)"
    else
        echo "info: SIGTERM to $MPIEXEC: exit $RC after $((SECONDS - t0))s, newest ${last##*/};" \
            "ranks said: $(grep -m1 -o 'interrupted at step [0-9]*' "$WORK/$tag.err" || echo nothing)"
    fi
else
    finish "$tag"
fi

echo
echo "== (2) SIGKILL at random moments, checkpoints every 3 steps == [$((SECONDS - T_START))s]"
KARGS=(--model mmoe "${SMALL[@]}" --batch-size 64 --epochs 5 --seed 5 --quiet
    --checkpoint-every-steps 3 --keep-checkpoints 3)
t0=$(date +%s%N)
run 1 kill_ref "${KARGS[@]}" --checkpoint-dir "$WORK/kill_ref"
REF_MS=$((($(date +%s%N) - t0) / 1000000))
if [ "$RC" -ne 0 ]; then
    fail "(2) the uninterrupted run exited with $RC"
    show_err kill_ref
else
    echo "uninterrupted run: ${REF_MS} ms, ends at $(basename "$(last_ckpt "$WORK/kill_ref")")"
fi
# kill delays after the first checkpoint: anywhere in the rest of the run
SPAN_MS=$((REF_MS / 2 > 50 ? REF_MS / 2 : 50))
# a stale temporary file newer than everything (a truncated copy): must be ignored
STALE_SRC=$(last_ckpt "$WORK/kill_ref")
for trial in 1 2 3 4 5 6; do
    tag=kill$trial dir=$WORK/ck_kill$trial
    start 1 "$tag" "${KARGS[@]}" --checkpoint-dir "$dir"
    if ! wait_ckpt "$tag" "$dir"; then
        finish "$tag"
        fail "(2) trial $trial: no checkpoint appeared (exit $RC)"
        continue
    fi
    ms=$(((RANDOM * 32768 + RANDOM) % SPAN_MS))
    delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
    [ "$trial" -eq 1 ] && delay=0.0$((RANDOM % 10)) # right after the first checkpoint
    sleep "$delay"
    pids=$(procs_of "$dir")
    [ -n "$pids" ] && kill -KILL $pids
    finish "$tag"
    if [ -z "$pids" ] || [ "$RC" -eq 0 ]; then
        echo "trial $trial: delay ${delay}s: the run had finished (exit $RC) before the kill"
    fi
    left=$(cd "$dir" && ls | tr '\n' ' ')
    echo "trial $trial: SIGKILL after ${delay}s (exit $RC); left: $left"
    # every ckpt-*.h5 left is a complete file (h5py opens it, /params finite)
    if ! chk=$("$PYTHON3" - "$dir" <<'EOF' 2>&1
import glob, sys
import h5py, numpy as np
for p in sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5")):
    with h5py.File(p, "r") as f:
        assert f.attrs["format"] == "mtl_dist checkpoint 1", p
        f["params"].visititems(lambda n, o: isinstance(o, h5py.Dataset)
                               and not np.all(np.isfinite(o[()])) and sys.exit(f"{p}: {n} not finite"))
EOF
    ); then
        fail "(2) trial $trial: a ckpt-*.h5 in the directory is not a complete checkpoint: $chk"
    fi
    if [ -n "$STALE_SRC" ]; then
        size=$(stat -c %s "$STALE_SRC")
        head -c $((size / 2)) "$STALE_SRC" >"$dir/ckpt-999999999.h5.tmp.4242"
    fi
    run 1 "${tag}_resume" "${KARGS[@]}" --checkpoint-dir "$dir" --resume latest
    if [ "$RC" -ne 0 ]; then
        fail "(2) trial $trial: --resume latest exited with $RC"
        show_err "${tag}_resume"
        continue
    fi
    from=$(grep -m1 -o 'resumed from [^ ]*' "$WORK/${tag}_resume.out" || true)
    if [ -z "$from" ] && [ -n "$pids" ]; then
        fail "(2) trial $trial: the resumed run did not say where it resumed from"
    elif grep -q -e '\.tmp' "$WORK/${tag}_resume.out" "$WORK/${tag}_resume.err"; then
        fail "(2) trial $trial: a temporary file was picked up: $from"
    else
        pass "(2) trial $trial: --resume latest exit 0, ${from#resumed from $WORK/}"
    fi
    same_final "(2) trial $trial" "$WORK/kill_ref" "$dir"
done

echo
echo "== (3) truncated and non-HDF5 checkpoints == [$((SECONDS - T_START))s]"
TDIR=$WORK/ck_trunc
run 1 trunc_base "${KARGS[@]}" --epochs 1 --checkpoint-dir "$TDIR" --keep-checkpoints 5
mapfile -t tck < <(ls "$TDIR"/ckpt-*.h5 | sort)
if [ "$RC" -ne 0 ] || [ "${#tck[@]}" -lt 2 ]; then
    fail "(3) could not make checkpoints (exit $RC, ${#tck[@]} files)"
else
    newest=${tck[-1]} prev=${tck[-2]}
    size=$(stat -c %s "$newest")
    # cut to half, and short by only 64 bytes
    for keep in $((size / 2)) $((size - 64)); do
        CUT=$WORK/cut_$keep.h5
        head -c "$keep" "$newest" >"$CUT"
        run 1 trunc_file "${KARGS[@]}" --epochs 2 --checkpoint-dir "$WORK/ck_trunc_file" --resume "$CUT"
        if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && grep -qF "$CUT" "$WORK/trunc_file.err"; then
            pass "(3) --resume truncated file ($keep of $size bytes): exit $RC:" \
                "$(grep -m1 mtl_dist "$WORK/trunc_file.err" | sed "s|$WORK/||")"
        else
            fail "(3) --resume truncated file ($keep of $size bytes): exit $RC, want non-zero" \
                "with a message naming $CUT"
            show_err trunc_file
        fi
        if compgen -G "$WORK/ck_trunc_file/ckpt-*" >/dev/null; then
            fail "(3) --resume truncated file: a checkpoint was written anyway"
        fi
    done
    CUT=$WORK/cut_$((size / 2)).h5
    # the newest checkpoint of the directory cut in half: latest falls back
    cp "$CUT" "$newest"
    run 1 trunc_latest "${KARGS[@]}" --epochs 2 --checkpoint-dir "$TDIR" --resume latest
    if [ "$RC" -eq 0 ] && grep -q "skipping $newest" "$WORK/trunc_latest.err" &&
        grep -q "resumed from $prev" "$WORK/trunc_latest.out"; then
        pass "(3) --resume latest skips the truncated newest: $(grep -m1 skipping "$WORK/trunc_latest.err" | sed "s|$WORK/||")"
        pass "(3) ... and $(grep -m1 'resumed from' "$WORK/trunc_latest.out" | sed "s|$WORK/||")"
    else
        fail "(3) --resume latest with a truncated newest checkpoint: exit $RC, want 0," \
            "'skipping ${newest##*/}' and 'resumed from ${prev##*/}'"
        show_err trunc_latest
        head -3 "$WORK/trunc_latest.out"
    fi
    NOT=$WORK/not_hdf5.h5
    echo "this is not an HDF5 file" >"$NOT"
    run 1 not_hdf5 "${KARGS[@]}" --epochs 2 --checkpoint-dir "$WORK/ck_not" --resume "$NOT"
    if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && grep -qF "$NOT" "$WORK/not_hdf5.err" &&
        grep -q "not an HDF5 file" "$WORK/not_hdf5.err"; then
        pass "(3) --resume non-HDF5 file: exit $RC: $(grep -m1 mtl_dist "$WORK/not_hdf5.err" | sed "s|$WORK/||")"
    else
        fail "(3) --resume non-HDF5 file: exit $RC, want non-zero and 'not an HDF5 file' naming it"
        show_err not_hdf5
    fi
fi

echo
echo "== (4) divergence: NaN/Inf stops training with the step, keeps the last good checkpoint == [$((SECONDS - T_START))s]"
"$PYTHON3" - "$WORK/small/train.h5" "$WORK/extreme.h5" <<'EOF'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    for name, ds in src.items():
        if not isinstance(ds, h5py.Dataset):
            continue
        a = ds[()]
        if name == "dense":
            a[1000, :] = 3e38  # finite float32: the reader accepts it, the forward overflows
        out = dst.create_dataset(name, data=a)
        for k, v in ds.attrs.items():
            out.attrs[k] = v
EOF
# all_finite DIR: every checkpoint in DIR loads with finite /params; prints the steps
all_finite() {
    "$PYTHON3" - "$1" <<'EOF'
import glob, sys
import h5py, numpy as np
steps = []
for p in sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5")):
    with h5py.File(p, "r") as f:
        bad = []
        f["params"].visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset)
                               and not np.all(np.isfinite(o[()])) else None)
        if bad:
            sys.exit(f"{p}: non-finite {bad[:3]}")
        steps.append(int(f.attrs["step"]))
print(" ".join(map(str, steps)))
EOF
}
diverge_check() { # NP TAG ARGS...
    local np=$1 tag=$2
    shift 2
    local dir=$WORK/ck_$tag
    run "$np" "$tag" "$@" --checkpoint-dir "$dir" --checkpoint-every-steps 5
    local msg
    msg=$(grep -m1 'not finite' "$WORK/$tag.err" || true)
    local step
    step=$(echo "$msg" | sed -n 's/.*step \([0-9]*\) (epoch.*/\1/p')
    if [ "$RC" -eq 1 ] && [ -n "$step" ]; then
        pass "(4) $tag: exit 1 after ${SECS}s: ${msg#mtl_dist: }"
    else
        fail "(4) $tag: exit $RC, want 1 and a message naming the step"
        show_err "$tag"
        return
    fi
    if echo "$msg" | grep -q ' in task '; then
        pass "(4) $tag: the message names the task"
    else
        fail "(4) $tag: the message does not name a task"
    fi
    local steps
    if ! steps=$(all_finite "$dir" 2>&1); then
        fail "(4) $tag: a checkpoint left is not loadable/finite: $steps"
        return
    fi
    local max=0 s
    for s in $steps; do [ "$s" -gt "$max" ] && max=$s; done
    if [ "$max" -lt "$step" ]; then
        pass "(4) $tag: checkpoints left (steps: ${steps:-none}) all finite, none at/after step $step"
    else
        fail "(4) $tag: a checkpoint at step $max was written at/after the failing step $step"
    fi
}
diverge_check 1 extreme_np1 --model mmoe --train "$WORK/extreme.h5" --batch-size 64 --epochs 2 --seed 1
diverge_check 2 extreme_np2 --model mmoe --train "$WORK/extreme.h5" --batch-size 64 --epochs 2 --seed 1
diverge_check 1 huge_lr --model mmoe "${SMALL[@]}" --batch-size 64 --epochs 2 --lr 1e30 --max-steps 50
run 1 skip --model mmoe --train "$WORK/extreme.h5" --batch-size 64 --epochs 2 --seed 1 \
    --skip-nonfinite-steps --metrics-out "$WORK/skip.jsonl" --checkpoint-dir "$WORK/ck_skip"
skipped=$("$PYTHON3" -c '
import json, sys
f = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print([l for l in f if l.get("final")][-1]["nonfinite_steps_skipped"])' "$WORK/skip.jsonl" 2>/dev/null || echo missing)
if [ "$RC" -eq 0 ] && [ "$skipped" != missing ] && [ "$skipped" -gt 0 ]; then
    pass "(4) --skip-nonfinite-steps: exit 0, nonfinite_steps_skipped $skipped;" \
        "$(grep -m1 'skipped' "$WORK/skip.err" | sed 's/^mtl_dist: //')"
else
    fail "(4) --skip-nonfinite-steps: exit $RC, nonfinite_steps_skipped $skipped (want 0 and > 0)"
    show_err skip
fi
if steps=$(all_finite "$WORK/ck_skip" 2>&1); then
    pass "(4) --skip-nonfinite-steps: final parameters finite"
else
    fail "(4) --skip-nonfinite-steps: $steps"
fi

echo
echo "== (5) a second SIGTERM exits at once == [$((SECONDS - T_START))s]"
# 1 rank: two SIGTERMs 1 ms apart: 143 if the second lands before the first
# is handled at the end of the step, else 75; either way at once
tag=double
start 1 "$tag" --model mmoe "${BIG[@]}" --batch-size 64 --epochs 40 --seed 3 --quiet \
    --checkpoint-dir "$WORK/ck_double"
if wait_ckpt "$tag" "$WORK/ck_double"; then
    pids=$(procs_of "$WORK/ck_double")
    t0=$(date +%s%N)
    if [ -n "$pids" ]; then
        kill -TERM $pids
        sleep 0.001
        kill -TERM $pids 2>/dev/null || true
    fi
    finish "$tag"
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ -n "$pids" ] && { [ "$RC" -eq 143 ] || [ "$RC" -eq 75 ]; } && [ "$ms" -lt 2000 ]; then
        pass "(5) 1 rank, two SIGTERMs: exit $RC after ${ms} ms"
    else
        fail "(5) 1 rank, two SIGTERMs: exit $RC after ${ms} ms (want 143 or 75 within 2 s)"
    fi
else
    finish "$tag"
    fail "(5) 1 rank: no checkpoint appeared before the run ended (exit $RC)"
fi
# 2 ranks, the case the second signal is for: rank 1 is stopped (SIGSTOP), so
# rank 0 honours the first SIGTERM only as far as the next allreduce and waits
# there; the second SIGTERM must end it at once (143), and the job with it
tag=stuck
start 2 "$tag" --model mmoe "${BIG[@]}" --batch-size 64 --epochs 40 --seed 3 --quiet \
    --checkpoint-dir "$WORK/ck_stuck"
if wait_ckpt "$tag" "$WORK/ck_stuck"; then
    r0='' r1=''
    for p in $(procs_of "$WORK/ck_stuck"); do
        case $(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep '^OMPI_COMM_WORLD_RANK=') in
        *=0) r0=$p ;;
        *=1) r1=$p ;;
        esac
    done
    if [ -z "$r0" ] || [ -z "$r1" ]; then
        finish "$tag"
        fail "(5) 2 ranks: did not find both rank processes"
    else
        kill -STOP "$r1"
        kill -TERM "$r0"
        sleep 0.3
        state=$(ps -o stat= -p "$r0" || echo gone)
        t0=$(date +%s%N)
        kill -TERM "$r0" 2>/dev/null || true
        for ((i = 0; i < 500; i++)); do kill -0 "$r0" 2>/dev/null || break; sleep 0.01; done
        ms0=$((($(date +%s%N) - t0) / 1000000))
        kill -CONT "$r1" 2>/dev/null || true
        finish "$tag"
        ms=$((($(date +%s%N) - t0) / 1000000))
        r0rc=$(grep -m1 -o 'Exit code: *[0-9]*' "$WORK/$tag.err" | grep -o '[0-9]*$' || echo '?')
        echo "rank 0 waiting in the allreduce (state $state) after the first SIGTERM;" \
            "second SIGTERM: rank 0 gone after ${ms0} ms (its exit code $r0rc), job exit $RC after ${ms} ms"
        if [ "$state" != gone ] && [ "$ms0" -lt 1000 ] && [ "$r0rc" = 143 ] &&
            [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ "$ms" -lt 10000 ]; then
            pass "(5) 2 ranks, one stopped: the second SIGTERM ends rank 0 at once (143), job exit $RC"
        else
            fail "(5) 2 ranks, one stopped: want rank 0 to exit 143 within 1 s of the second SIGTERM"
            show_err "$tag"
        fi
    fi
else
    finish "$tag"
    fail "(5) 2 ranks: no checkpoint appeared before the run ended (exit $RC)"
fi

echo
echo "e2e_faults: $((SECONDS - T_START))s"
if [ "$failures" -ne 0 ]; then
    echo "e2e_faults: $failures check(s) FAILED"
    exit 1
fi
echo "e2e_faults: all checks passed"
