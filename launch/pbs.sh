#!/usr/bin/env bash
# mtl_dist under PBS Pro / Torque: one MPI rank per requested cpu.
#
#   qsub -l select=4:ncpus=16:mpiprocs=16 -l walltime=01:00:00 \
#        -v MTL_ARGS="--model mmoe --train data/train.h5 --test data/test.h5 --checkpoint-dir ckpt" \
#        launch/pbs.sh
#
# Nodes and ranks per node come from -l select=...:mpiprocs=... (Torque:
# -l nodes=4:ppn=16). Open MPI reads the node list from PBS itself. PBS sends
# SIGTERM before killing a job at its walltime (kill_delay, default 10 s):
# mtl_dist finishes its step, writes a checkpoint and exits with status 75;
# qsub the same command again and it resumes (--resume latest is added when
# the checkpoint directory has checkpoints).
#PBS -N mtl_dist
#PBS -j oe
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
bin=${MTL_DIST:-mtl_dist}
read -r -a args <<<"${MTL_ARGS:-}"
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--checkpoint-dir" ] && ls "${args[$((i + 1))]}"/ckpt-*.h5 >/dev/null 2>&1; then
    args+=(--resume latest)
  fi
done
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mpirun -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS "$bin" "${args[@]}"
