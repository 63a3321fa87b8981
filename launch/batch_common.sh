# shellcheck shell=bash
# Sourced by launch/slurm.sbatch and launch/pbs.sh: what a batch script does
# around the MPI launcher (srun or mpirun).
#
#   mtl_job_init NAME     trap the signals from here on (call it first)
#   mtl_job_args ARGS...  MTL_JOB_ARGS=(ARGS...), plus `--resume latest` when
#                         --checkpoint-dir DIR (or --checkpoint-dir=DIR) holds
#                         a checkpoint and no --resume is given (a
#                         checkpoint_dir set in a --config file is not seen)
#   mtl_job_bin           MTL_JOB_BIN=$MTL_DIST, or mtl_dist on PATH
#   mtl_job_run CMD...    run the launcher, pass signals on to it, wait for
#                         it and return its status
#
# Signals. A scheduler's early warning reaches this shell alone (Slurm's
# --signal=B:USR1@T, `scancel --batch --signal=USR1`, PBS's qsig); SIGTERM,
# SIGINT and SIGHUP may come to it alone too (a `kill`). Each one is passed on
# to the launcher as SIGUSR1: srun and mpirun forward it to every rank, and
# mtl_dist finishes its step, writes a checkpoint and exits with 75 (a second
# one ends it at once). SIGUSR1 and not SIGTERM, because mpirun takes SIGTERM
# as "abort the job" and exits with 1. The shell keeps waiting for the
# launcher and exits with its status, so it never ends before the ranks; if it
# ends some other way, its EXIT trap stops the launcher and its children
# (SIGTERM, then SIGKILL after MTL_KILL_WAIT seconds, default 10), so no
# rank survives the job even where the scheduler tracks processes by parent
# (Slurm's proctrack/linuxproc): orphans are invisible to it. (SIGKILL cannot
# be trapped; Slurm and PBS send it to all the job's processes at once.)

MTL_JOB_NAME=mtl_dist
MTL_JOB_PID=""       # the launcher, while it runs
# before, running, after (the launcher's life); stopped: signalled before.
# The scripts trap signals into "stopped" until they have sourced this file.
MTL_JOB_STATE=${MTL_JOB_STATE:-before}
MTL_JOB_TRAPPED=0

mtl_job_init() {
    MTL_JOB_NAME=$1
    local s
    for s in USR1 TERM INT HUP; do
        # shellcheck disable=SC2064 # the signal's name, now
        trap "_mtl_job_signal $s" "$s"
    done
    trap _mtl_job_cleanup EXIT
}

_mtl_job_signal() {
    MTL_JOB_TRAPPED=1
    case $MTL_JOB_STATE in
    before) echo "$MTL_JOB_NAME: SIG$1 before the launch: the ranks will not be started" >&2 ;;
    running)
        echo "$MTL_JOB_NAME: SIG$1: SIGUSR1 to the launcher (pid $MTL_JOB_PID):" \
            "the ranks write a checkpoint and stop" >&2
        kill -USR1 "$MTL_JOB_PID" 2>/dev/null || true
        ;;
    esac
    [ "$MTL_JOB_STATE" = before ] && MTL_JOB_STATE=stopped
    return 0
}

# _mtl_job_tree PID: PID and all its descendants
_mtl_job_tree() {
    ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            if (!(root in parent)) exit
            in_tree[root] = 1
            for (grew = 1; grew;) {
                grew = 0
                for (p in parent)
                    if (!(p in in_tree) && (parent[p] in in_tree)) { in_tree[p] = 1; grew = 1 }
            }
            for (p in in_tree) print p
        }'
}

_mtl_job_cleanup() {
    local rc=$? pids i
    if [ "$MTL_JOB_STATE" = running ] && [ -n "$MTL_JOB_PID" ]; then
        mapfile -t pids < <(_mtl_job_tree "$MTL_JOB_PID")
        if [ ${#pids[@]} -gt 0 ]; then
            echo "$MTL_JOB_NAME: the batch shell ends before the launcher: stopping ${pids[*]}" >&2
            kill -TERM "${pids[@]}" 2>/dev/null || true
            for ((i = 0; i < ${MTL_KILL_WAIT:-10} * 10; i++)); do
                # (the launcher, our child, stays a zombie until we exit)
                ps -o stat= -p "$(IFS=,; echo "${pids[*]}")" | grep -qv '^Z' || break
                sleep 0.1
            done
            kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
    fi
    return "$rc"
}

mtl_job_args() {
    MTL_JOB_ARGS=("$@")
    local dir="" prev="" a
    for a in "$@"; do
        case $a in
        --resume | --resume=*) return 0 ;;
        --checkpoint-dir=*) dir=${a#--checkpoint-dir=} ;;
        esac
        [ "$prev" = --checkpoint-dir ] && dir=$a
        prev=$a
    done
    if [ -n "$dir" ] && compgen -G "$dir/ckpt-*.h5" >/dev/null; then
        MTL_JOB_ARGS+=(--resume latest)
    fi
    return 0
}

mtl_job_bin() {
    MTL_JOB_BIN=${MTL_DIST:-mtl_dist}
    if ! command -v "$MTL_JOB_BIN" >/dev/null; then
        echo "$MTL_JOB_NAME: $MTL_JOB_BIN not found: set MTL_DIST=/path/to/mtl_dist, or PATH" >&2
        exit 2
    fi
}

mtl_job_run() {
    if [ "$MTL_JOB_STATE" != before ]; then
        echo "$MTL_JOB_NAME: stopped before the launch: nothing ran; submit again to continue" >&2
        return 75
    fi
    "$@" &
    MTL_JOB_PID=$!
    MTL_JOB_STATE=running
    local rc=0 prev
    while :; do
        MTL_JOB_TRAPPED=0
        prev=$rc
        rc=0
        wait "$MTL_JOB_PID" || rc=$?
        # 127: the status was collected by the previous wait after all
        if [ "$rc" -eq 127 ] && [ "$prev" -gt 128 ]; then
            rc=$prev
            break
        fi
        # a trapped signal interrupts wait (status 128 + n); the launcher runs on
        if [ "$MTL_JOB_TRAPPED" -eq 0 ] || [ "$rc" -le 128 ]; then break; fi
    done
    MTL_JOB_STATE=after
    MTL_JOB_PID=""
    return "$rc"
}
