#!/usr/bin/env bash
# launch/slurm.sbatch under a real Slurm (README "Running on a cluster"): this
# script starts a private single-node cluster from Debian's slurm-wlm and
# munge (munged, slurmctld, slurmd on this machine, as root; config, state,
# spool and logs in a directory under the build tree; free ports; Slurm's
# default MpiDefault=none, proctrack/linuxproc, no cgroups) and submits jobs
# with sbatch, 2 ranks each:
#  (1) the default launcher (srun) trains and writes its metrics and
#      predictions: the uninterrupted reference run;
#  (2) each launcher (srun, mpirun), submitted with --time=2 and an early
#      signal to the batch shell (--signal=B:USR1@85: Slurm looks at job
#      signals every 30 s, so it comes 5-35 s into the job; the script's own
#      @120 would come at any time from the job's first second): exit 75 with
#      a checkpoint well before the limit; the same command submitted again
#      (srun with --checkpoint-dir DIR, mpirun with --checkpoint-dir=DIR)
#      resumes from that checkpoint, and its predictions equal the
#      reference's. The training is short (~12 s, calibrated on this machine
#      first), so the test pauses the ranks (SIGSTOP) from their first
#      checkpoint until the batch shell reports the signal, then lets them go
#      on (SIGCONT) to receive it;
#  (3) a missing data file (each launcher): the job fails fast (exit 1) with
#      the message in its output;
#  (4) scancel of a running mpirun job: it ends, and nothing of it is left;
#  (5) MTL_REQUEUE=1 sbatch --requeue, stopped with scancel --batch
#      --signal=USR1: the job requeues itself and, started again, resumes and
#      finishes;
# and after every job: no process of it (mtl_dist, mpirun, srun, the batch
# shell) is still running. Every daemon started here is stopped by its pid on
# exit, failures included.
# Skipped (exit 77) only when slurm-wlm and munge cannot be installed.
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
T_START=$SECONDS
export PATH=$PATH:/usr/sbin:/sbin

tools=(munged mungekey slurmctld slurmd sbatch scontrol squeue scancel sinfo srun)
missing_tools() {
    local t
    for t in "${tools[@]}"; do command -v "$t" >/dev/null || return 0; done
    return 1
}
if missing_tools; then
    echo "slurm_jobs: slurm-wlm or munge missing: bash launch/install-deps.sh"
    bash "$MTL_SRC/launch/install-deps.sh" || true
    if missing_tools; then
        echo "SKIP: slurm-wlm and munge could not be installed (launch/install-deps.sh): no Slurm to test under"
        exit 77
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/slurm.XXXXXX")
# unix sockets (munge's, slurmstepd's in the spool) take paths of < 108 bytes
if [ ${#WORK} -gt 60 ]; then
    rmdir "$WORK"
    WORK=$(mktemp -d /tmp/mtl_slurm.XXXXXX)
    echo "note: the build tree's path is too long for unix sockets: working in $WORK"
fi
export SLURM_CONF=$WORK/etc/slurm.conf
export MTL_DIST=$DIST # for the jobs (sbatch exports the environment)
MUNGED_PID="" CTLD_PID="" SLURMD_PID=""

stop_pid() { # NAME PID: SIGTERM, then SIGKILL after 10 s
    local i
    [ -n "$2" ] && kill -0 "$2" 2>/dev/null || return 0
    kill -TERM "$2" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$2" 2>/dev/null; then
        echo "cleanup: $1 (pid $2) ignored SIGTERM: SIGKILL"
        kill -KILL "$2" 2>/dev/null || true
    fi
    wait "$2" 2>/dev/null || true
}

cleanup() {
    local rc=$? i p
    set +e
    if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
        scancel --user="$(id -un)" 2>/dev/null
        for ((i = 0; i < 150; i++)); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    # anything of a job still here (the daemons' command lines name $WORK too)
    for p in $(procs_with "$WORK/" | awk '{print $1}'); do kill -KILL "$p" 2>/dev/null; done
    if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then
        for f in "$WORK"/log/*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of ${f##*/}"
            tail -15 "$f"
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== a private Slurm: $(slurmctld -V), munge $(munged -V 2>&1 | awk '{print $1}') == [0s]"
mkdir -p "$WORK/etc" "$WORK/state" "$WORK/spool" "$WORK/log" "$WORK/run"
mkdir -m 700 "$WORK/munge-key"
mkdir -m 755 "$WORK/munge"
mungekey --create --keyfile="$WORK/munge-key/munge.key" 2>/dev/null ||
    dd if=/dev/urandom of="$WORK/munge-key/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge-key/munge.key"
SOCK=$WORK/munge/munge.socket
# --force: as root, in a world-writable tree
munged --foreground --force --socket="$SOCK" --key-file="$WORK/munge-key/munge.key" \
    --pid-file="$WORK/run/munged.pid" --log-file="$WORK/log/munged.log" \
    --seed-file="$WORK/munge/munged.seed" </dev/null >>"$WORK/log/munged.log" 2>&1 &
MUNGED_PID=$!
for ((i = 0; i < 100; i++)); do
    munge -n -S "$SOCK" 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 && break
    kill -0 "$MUNGED_PID" 2>/dev/null || break
    sleep 0.1
done
munge -n -S "$SOCK" | unmunge -S "$SOCK" >/dev/null || {
    echo "FAIL: munged did not start"
    exit 1
}

read -r CTLD_PORT SLURMD_PORT < <("$PYTHON3" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
cat >"$SLURM_CONF" <<EOF
# a private single-node cluster for tests/slurm_jobs.sh; MpiDefault is left
# at Slurm's default (none), as on a stock installation
ClusterName=mtltest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$WORK/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -N localhost -f "$SLURM_CONF" </dev/null >>"$WORK/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for ((i = 0; i < 300; i++)); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    kill -0 "$CTLD_PID" 2>/dev/null && kill -0 "$SLURMD_PID" 2>/dev/null || break
    sleep 0.1
done
if [ "$state" != idle ]; then
    echo "FAIL: the node did not come up (state '$state')"
    cat "$WORK"/log/*.out 2>/dev/null | tail -20
    exit 1
fi
echo "slurmctld (pid $CTLD_PID, port $CTLD_PORT), slurmd (pid $SLURMD_PID, port $SLURMD_PORT)," \
    "munged (pid $MUNGED_PID): node localhost idle, 2 CPUs;" \
    "MpiDefault=$(scontrol show config | awk '$1 == "MpiDefault" {print $3}');" \
    "srun --mpi=list: $(srun --mpi=list 2>&1 | awk 'NR > 1 && NF == 1 {printf "%s ", $1}')"

# submit NAME SBATCH_OPTIONS... -- MTL_DIST_ARGS...: sets JOB; output in $WORK/NAME.out
submit() {
    local name=$1 sb=()
    shift
    while [ "$1" != -- ]; do
        sb+=("$1")
        shift
    done
    shift
    JOB=$(sbatch --parsable --job-name="$name" --output="$WORK/$name.out" --chdir="$WORK" \
        "${sb[@]}" "$MTL_SRC/launch/slurm.sbatch" "$@")
}
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# finish NAME [LIMIT [DIR]]: wait (at most LIMIT s, default 240) for $JOB to
# end; sets STATE, RC (its exit status), SECS (its run time); then checks that
# nothing of it survives (its processes: those with $WORK/DIR/ in their command
# line, DIR = NAME by default)
finish() {
    local name=$1 limit=${2:-240} dir=${3:-$1} t0=$SECONDS
    while :; do
        STATE=$(job_field "$JOB" JobState)
        case $STATE in PENDING | RUNNING | COMPLETING | CONFIGURING | SUSPENDED | REQUEUED) ;; *) break ;; esac
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            fail "$name: job $JOB still $STATE after ${limit}s: scancel"
            scancel "$JOB"
            sleep 3
        fi
        sleep 0.3
    done
    local ec run
    ec=$(job_field "$JOB" ExitCode)
    RC=${ec%%:*}
    [ "${ec#*:}" != 0 ] && RC="signal ${ec#*:}"
    run=$(job_field "$JOB" RunTime)
    SECS=$((10#${run:0:2} * 3600 + 10#${run:3:2} * 60 + 10#${run:6:2}))
    no_survivors "$name" "$dir"
}
# no_survivors NAME DIR: no process with $WORK/DIR/ in its command line (the
# job's batch shell, srun, mpirun, its ranks) outlives the job (2 s to be reaped)
no_survivors() {
    local i left
    for ((i = 0; i < 20; i++)); do
        left=$(procs_with "$WORK/$2/")
        [ -z "$left" ] && break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        fail "$1: processes of job $JOB still run after it ended ($STATE):"
        echo "$left" | sed 's/^/    | /'
        kill -KILL $(echo "$left" | awk '{print $1}') 2>/dev/null || true
    else
        pass "$1: job $JOB $STATE, exit $RC after ${SECS}s; no process of it left"
    fi
}
echo
echo "== data, and the training's length on this machine == [$((SECONDS - T_START))s]"
"$PREP" synth --kind ctr --rows 30000 --sparse-fields 8 --vocab 50 --dense-fields 4 --seed 1 \
    --split 0.9,0.05,0.05 --output-dir "$WORK/data" >/dev/null
# what every training job runs, but for its epochs and its own paths (args NAME)
train_args() {
    mkdir -p "$WORK/$1"
    ARGS=(--model mmoe --train "$WORK/data/train.h5" --test "$WORK/data/test.h5" --batch-size 64
        --seed 3 --quiet --epochs "$EPOCHS" --metrics-out "$WORK/$1/metrics.jsonl"
        --predict-out "$WORK/$1/pred.h5")
}
EPOCHS=4
train_args calibrate
t0=$(date +%s%N)
"$MPIEXEC" "$NPFLAG" 2 "${OVERSUB[@]}" "$DIST" "${ARGS[@]}" >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
# ~12 s per training run
EPOCHS=$((12000 * 4 / (ms > 1 ? ms : 1)))
[ "$EPOCHS" -lt 8 ] && EPOCHS=8
[ "$EPOCHS" -gt 600 ] && EPOCHS=600
echo "4 epochs (27,000 rows, batch 64) on 2 ranks: ${ms} ms: the jobs train $EPOCHS epochs"

echo
echo "== (1) the default launcher: a 2-rank job trains == [$((SECONDS - T_START))s]"
train_args ref
submit ref --ntasks-per-node=2 -- "${ARGS[@]}" --checkpoint-dir "$WORK/ref/ckpt"
finish ref 600
if [ "$RC" = 0 ] && "$PYTHON3" - "$WORK/ref/metrics.jsonl" <<'EOF'; then
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
final = lines[-1]
assert final.get("final") and set(final["test_auc"]) == {"click", "conversion"}, final
assert sum(1 for l in lines if "epoch" in l and not l.get("final")) >= 1
EOF
    pass "(1) srun job: exit 0, $(grep -o 'srun [^/]*' "$WORK/ref.out" | head -1| sed 's/ *$//'), metrics written: $(tail -1 "$WORK/ref/metrics.jsonl" | cut -c1-90)..."
else
    fail "(1) the default launcher's job: exit $RC, want 0 and metrics with a final line"
    show_out ref 12
fi

echo
echo "== (2) --time=2 and an early signal: exit 75 with a checkpoint; resubmitted: resumes == [$((SECONDS - T_START))s]"
# preempt LAUNCHER CKPT_FORM: CKPT_FORM "sep" gives --checkpoint-dir DIR, "eq" --checkpoint-dir=DIR
preempt() {
    local launcher=$1 name=pre_$1 ck
    train_args "$name"
    if [ "$2" = eq ]; then ck=(--checkpoint-dir="$WORK/$name/ckpt"); else ck=(--checkpoint-dir "$WORK/$name/ckpt"); fi
    MTL_LAUNCHER=$launcher submit "$name" --time=2 --signal=B:USR1@85 -- "${ARGS[@]}" "${ck[@]}"
    # the training is short: pause the ranks from their first checkpoint until
    # the batch shell has the signal, so that it cannot end first
    local ranks i
    if wait_ckpt "$WORK/$name/ckpt"; then
        ranks=$(procs_with "$WORK/$name/" | awk -v d="$DIST" '$2 == d {print $1}')
        [ -n "$ranks" ] && kill -STOP $ranks
        for ((i = 0; i < 600; i++)); do
            grep -q 'SIGUSR1: SIGUSR1 to the launcher' "$WORK/$name.out" && break
            sleep 0.1
        done
        [ -n "$ranks" ] && kill -CONT $ranks
        echo "$launcher: ranks $(echo $ranks) paused from their first checkpoint until the signal came: $((i / 10)) s"
    fi
    finish "$name" 200
    local last
    last=$({ ls "$WORK/$name/ckpt"/ckpt-*.h5 2>/dev/null || true; } | sort | tail -1)
    if [ "$RC" = 75 ] && [ -n "$last" ] && [ "$SECS" -lt 100 ] &&
        grep -q "interrupted at step" "$WORK/$name.out"; then
        pass "(2) $launcher: exit 75 after ${SECS}s of the 120 s limit: $(grep -m1 -o 'SIGUSR1: SIGUSR1 to the launcher' "$WORK/$name.out"); $(grep -m1 -o 'interrupted at step [0-9]*' "$WORK/$name.out"), ${last##*/}"
    else
        fail "(2) $launcher: exit $RC after ${SECS}s (state $STATE), newest checkpoint '${last##*/}':" \
            "want 75 with a checkpoint before the limit"
        show_out "$name"
        return
    fi
    # the same command again (output to another file); --resume latest is the script's
    MTL_LAUNCHER=$launcher submit "${name}_again" -- "${ARGS[@]}" "${ck[@]}"
    finish "${name}_again" 600 "$name"
    local from
    from=$(grep -m1 'resumed from' "$WORK/${name}_again.out" || true)
    if [ "$RC" = 0 ] && [[ "$from" == "resumed from $last "* ]]; then
        pass "(2) $launcher: resubmitted: exit 0, ${from/$WORK\//}"
        same_predictions "(2) $launcher, interrupted and resumed" "$WORK/ref/pred.h5" "$WORK/$name/pred.h5"
    else
        fail "(2) $launcher: the resubmitted job: exit $RC, '$from': want 0, resumed from ${last##*/}"
        show_out "${name}_again"
    fi
}
preempt srun sep
preempt mpirun eq

echo
echo "== (3) a missing data file: fails fast, with the message in the job's output == [$((SECONDS - T_START))s]"
for launcher in srun mpirun; do
    name=nodata_$launcher
    MTL_LAUNCHER=$launcher submit "$name" -- --model mmoe --train "$WORK/$name/missing.h5" --epochs 1
    finish "$name" 60
    if [ "$RC" = 1 ] && [ "$SECS" -le 20 ] && grep -q "$WORK/$name/missing.h5: no such file" "$WORK/$name.out"; then
        pass "(3) $launcher: exit 1 after ${SECS}s: $(grep -m1 'no such file' "$WORK/$name.out" | sed "s|$WORK/||")"
    else
        fail "(3) $launcher: exit $RC after ${SECS}s: want 1 within 20 s and 'no such file' in the output"
        show_out "$name"
    fi
done

echo
echo "== (4) scancel of a running mpirun job: nothing of it is left == [$((SECONDS - T_START))s]"
train_args cancel
MTL_LAUNCHER=mpirun submit cancel -- "${ARGS[@]}" --checkpoint-dir "$WORK/cancel/ckpt"
if wait_ckpt "$WORK/cancel/ckpt"; then
    ranks=$(procs_with "$WORK/cancel/" | awk -v d="$DIST" '$2 == d' | wc -l)
    scancel "$JOB"
    finish cancel 60
    echo "scancel with $ranks rank(s) running: job $STATE, exit $RC"
else
    fail "(4) no checkpoint appeared in the job"
    show_out cancel
fi

echo
echo "== (5) MTL_REQUEUE=1 sbatch --requeue: exit 75 requeues the job, which resumes == [$((SECONDS - T_START))s]"
SAVE_EPOCHS=$EPOCHS
EPOCHS=$((EPOCHS / 2 > 4 ? EPOCHS / 2 : 4))
train_args requeue
EPOCHS=$SAVE_EPOCHS
MTL_REQUEUE=1 MTL_LAUNCHER=srun submit requeue --requeue -- "${ARGS[@]}" --checkpoint-dir "$WORK/requeue/ckpt"
if wait_ckpt "$WORK/requeue/ckpt"; then
    scancel --batch --signal=USR1 "$JOB" # stop now, with a checkpoint
    for ((i = 0; i < 300; i++)); do
        [ "$(job_field "$JOB" Restarts)" = 1 ] && [ "$(job_field "$JOB" JobState)" = PENDING ] && break
        sleep 0.2
    done
    if [ "$(job_field "$JOB" Restarts)" = 1 ] && grep -q "requeueing job $JOB" "$WORK/requeue.out"; then
        pass "(5) exit 75 -> $(grep -m1 -o 'requeueing job [0-9]*' "$WORK/requeue.out"): pending again," \
            "$(job_field "$JOB" Reason) ($(job_field "$JOB" EligibleTime))"
        STATE=REQUEUED RC=75 SECS="?"
        no_survivors requeue requeue
        # Slurm holds a requeued job ~2 minutes: let it start now, once the
        # step of its first run is gone (pmix's socket in the spool has the
        # same name for the second run)
        for ((i = 0; i < 300; i++)); do
            compgen -G "$WORK/spool/*[._]$JOB.[0-9]*" >/dev/null || break
            sleep 0.1
        done
        scontrol update JobId="$JOB" StartTime=now
        finish requeue 300
        from=$(grep -m1 'resumed from' "$WORK/requeue.out" || true)
        if [ "$RC" = 0 ] && [ -n "$from" ] && [ -f "$WORK/requeue/pred.h5" ]; then
            pass "(5) the requeued job: exit 0, ${from/$WORK\//}"
        else
            fail "(5) the requeued job: exit $RC, '$from': want 0 and a resume"
            show_out requeue 20
        fi
    else
        fail "(5) the job was not requeued (Restarts=$(job_field "$JOB" Restarts), $(job_field "$JOB" JobState))"
        show_out requeue 20
        finish requeue 60
    fi
else
    fail "(5) no checkpoint appeared in the job"
    show_out requeue
fi

echo
summary slurm_jobs
