#!/usr/bin/env bash
# launch/pbs.sh without PBS (PBS is not in Debian; launch/slurm.sbatch has a
# real scheduler in tests/slurm_jobs.sh): the script is run as PBS runs it, a
# copy of it in a spool directory, with PBS_O_WORKDIR (the checkout: it finds
# launch/batch_common.sh there), PBS_NODEFILE (2 x localhost), PBS_JOBID and
# MTL_ARGS set, 2 ranks under mpirun:
#  (1) SIGUSR1 to the job's shell (what `qsig -s USR1` does): it passes the
#      signal on to mpirun and the ranks: exit 75 with a checkpoint, and no
#      process of the job is left;
#  (2) the same submission again resumes (--checkpoint-dir=DIR form) and ends
#      with the predictions of an uninterrupted run;
#  (3) SIGTERM to the shell alone: exit 75 with a checkpoint as well (mpirun
#      gets SIGUSR1, not the SIGTERM it would take as "abort");
#  (4) a missing data file: exit 1 with the message, at once.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_batch.XXXXXX")
T_START=$SECONDS
JOB_PID=""
cleanup() {
    [ -n "$JOB_PID" ] && kill -KILL "$JOB_PID" 2>/dev/null
    for p in $(procs_with "$WORK/" | awk '{print $1}'); do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT


mkdir -p "$WORK/spool"
cp "$MTL_SRC/launch/pbs.sh" "$WORK/spool/job.sh" # PBS runs a copy
printf 'localhost\nlocalhost\n' >"$WORK/nodes"
"$PREP" synth --kind ctr --rows 12000 --sparse-fields 8 --vocab 50 --dense-fields 4 --seed 1 \
    --split 0.9,0.05,0.05 --output-dir "$WORK/data" >/dev/null
ARGS="--model mmoe --train $WORK/data/train.h5 --test $WORK/data/test.h5 --batch-size 64 --seed 3 --quiet --epochs 30"

# start NAME MTL_ARGS: the job script in the background, output in $WORK/NAME.out
start() {
    (
        cd /
        exec env PBS_O_WORKDIR="$MTL_SRC" PBS_NODEFILE="$WORK/nodes" PBS_JOBID="$1.test" \
            MTL_ARGS="$2" MTL_DIST="$DIST" bash "$WORK/spool/job.sh" >"$WORK/$1.out" 2>&1
    ) &
    JOB_PID=$!
}
finish() { # NAME: wait for the job (at most 120 s); sets RC, then checks nothing of it is left
    local i left
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$JOB_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$JOB_PID" 2>/dev/null && fail "$1: still running after 120 s" && kill -KILL "$JOB_PID"
    RC=0
    wait "$JOB_PID" || RC=$?
    JOB_PID=""
    left=$(procs_with "$WORK/$1/")
    if [ -n "$left" ]; then
        fail "$1: processes left after the job's shell ended:"
        echo "$left" | sed 's/^/    | /'
    fi
}

echo "== the uninterrupted run (mpirun) == [$((SECONDS - T_START))s]"
mkdir -p "$WORK/ref"
# shellcheck disable=SC2086
"$MPIEXEC" "$NPFLAG" 2 "${OVERSUB[@]}" "$DIST" $ARGS --predict-out "$WORK/ref/pred.h5" >/dev/null

# signalled NAME SIGNAL CKPT_OPTION: (1) and (3)
signalled() {
    local name=$1 sig=$2
    mkdir -p "$WORK/$name"
    start "$name" "$ARGS $3 --predict-out $WORK/$name/pred.h5"
    if ! wait_ckpt "$WORK/$name/ckpt"; then
        finish "$name"
        fail "$name: no checkpoint appeared (exit $RC)"
        show_out "$name"
        return 1
    fi
    # The ranks are paused while the signal travels (shell, mpirun, ranks):
    # a fast machine could otherwise finish all epochs before it arrives.
    local ranks i
    ranks=$(procs_with "$WORK/$name/" | awk -v d="$DIST" '$2 == d {print $1}')
    if [ -z "$ranks" ]; then
        finish "$name"
        fail "$name: the ranks ended before the signal could be sent (exit $RC)"
        return 1
    fi
    kill -STOP $ranks 2>/dev/null
    kill -"$sig" "$JOB_PID"
    for ((i = 0; i < 100; i++)); do
        grep -q "Forwarding signal" "$WORK/$name.out" && break
        sleep 0.1
    done
    kill -CONT $ranks 2>/dev/null
    finish "$name"
    if [ "$RC" -eq 75 ] && grep -q "SIG$sig: SIGUSR1 to the launcher" "$WORK/$name.out" &&
        grep -q "interrupted at step" "$WORK/$name.out"; then
        pass "$name: SIG$sig to the job's shell: exit 75, $(grep -m1 -o 'interrupted at step [0-9]*' "$WORK/$name.out")," \
            "no process left"
    else
        fail "$name: SIG$sig to the job's shell: exit $RC, want 75 with a checkpoint"
        show_out "$name"
        return 1
    fi
}

echo "== (1) SIGUSR1 to the shell; (2) resubmitted: resumes == [$((SECONDS - T_START))s]"
if signalled usr1 USR1 "--checkpoint-dir=$WORK/usr1/ckpt"; then
    start usr1 "$ARGS --checkpoint-dir=$WORK/usr1/ckpt --predict-out $WORK/usr1/pred.h5"
    finish usr1
    if [ "$RC" -eq 0 ] && grep -q "resumed from $WORK/usr1/ckpt/" "$WORK/usr1.out"; then
        pass "(2) resubmitted: exit 0, $(grep -m1 -o 'resumed from .*' "$WORK/usr1.out" | sed "s|$WORK/||")"
        same_predictions "(2) interrupted and resumed" "$WORK/ref/pred.h5" "$WORK/usr1/pred.h5"
    else
        fail "(2) resubmitted: exit $RC: want 0 and a resume"
        show_out usr1
    fi
fi

echo "== (3) SIGTERM to the shell == [$((SECONDS - T_START))s]"
signalled term TERM "--checkpoint-dir $WORK/term/ckpt" || true

echo "== (4) a missing data file == [$((SECONDS - T_START))s]"
mkdir -p "$WORK/nodata"
t0=$SECONDS
start nodata "--model mmoe --train $WORK/nodata/missing.h5 --epochs 1"
finish nodata
if [ "$RC" -eq 1 ] && grep -q "$WORK/nodata/missing.h5: no such file" "$WORK/nodata.out"; then
    pass "(4) exit 1 after $((SECONDS - t0))s: $(grep -m1 'no such file' "$WORK/nodata.out" | sed "s|$WORK/||")"
else
    fail "(4) exit $RC: want 1 and 'no such file'"
    show_out nodata
fi

summary e2e_batch_scripts
