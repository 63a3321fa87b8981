#!/usr/bin/env bash
# mtl_dist under PBS Pro / Torque: one MPI rank per requested cpu.
#
#   qsub -l select=4:ncpus=16:mpiprocs=16 -l walltime=01:00:00 \
#        -v MTL_ARGS="--model mmoe --train data/train.h5 --test data/test.h5 --checkpoint-dir ckpt" \
#        launch/pbs.sh
#
# Submit from the checkout (the script finds launch/batch_common.sh under
# $PBS_O_WORKDIR/launch; else set MTL_LAUNCH_DIR). Nodes and ranks per node
# come from -l select=...:mpiprocs=... (Torque: -l nodes=4:ppn=16); mpirun
# gets the node list from $PBS_NODEFILE. MTL_ARGS is split at spaces.
#
# Signals: PBS sends SIGTERM to the job's processes before killing it at its
# walltime (kill_delay, default 10 s), and `qsig -s USR1 JOBID` signals the
# job's shell: the shell passes either on to mpirun as SIGUSR1, mpirun
# forwards it to the ranks, mtl_dist finishes its step, writes a checkpoint
# and exits with 75, and so does the job (launch/batch_common.sh; the shell
# never ends before mpirun and the ranks). qsub the same command again and it
# resumes: --resume latest is added when the directory of --checkpoint-dir DIR
# (or --checkpoint-dir=DIR) holds a checkpoint.
#
# Tested without PBS (not in Debian): tests/e2e_batch_scripts.sh runs this
# script as PBS would, with PBS_O_WORKDIR and PBS_NODEFILE set, signals its
# shell and checks exit 75, the resume and that no process is left.
#PBS -N mtl_dist
#PBS -j oe
set -euo pipefail
trap MTL_JOB_STATE=stopped USR1 TERM INT HUP # until batch_common.sh traps them
cd "${PBS_O_WORKDIR:-.}"
here=""
for d in "${MTL_LAUNCH_DIR:-}" "$(dirname "$0")" "$PWD/launch"; do
    if [ -n "$d" ] && [ -f "$d/batch_common.sh" ]; then here=$d; break; fi
done
[ -n "$here" ] || { echo "pbs.sh: launch/batch_common.sh not found: set MTL_LAUNCH_DIR" >&2; exit 2; }
# shellcheck source=launch/batch_common.sh
source "$here/batch_common.sh"
mtl_job_init pbs.sh
read -r -a args <<<"${MTL_ARGS:-}"
mtl_job_args "${args[@]}"

mtl_job_bin
hosts=()
if [ -n "${PBS_NODEFILE:-}" ] && [ -f "$PBS_NODEFILE" ]; then hosts=(--hostfile "$PBS_NODEFILE"); fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
echo "pbs.sh: job ${PBS_JOBID:-?}: mpirun ${hosts[*]} $MTL_JOB_BIN ${MTL_JOB_ARGS[*]}" >&2
rc=0
mtl_job_run mpirun "${hosts[@]}" -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS "$MTL_JOB_BIN" "${MTL_JOB_ARGS[@]}" || rc=$?
echo "pbs.sh: the ranks exited with $rc" >&2
exit "$rc"
