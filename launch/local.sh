#!/usr/bin/env bash
# Run mtl_dist with N ranks on this machine.
#
#   launch/local.sh N [mtl_dist options...]
#   launch/local.sh 2 --model mmoe --train out/census/train.h5 --valid ... --test ...
#
# Handles what Open MPI needs on a workstation: running as root (it refuses
# unless OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 are set)
# and more ranks than cores (--oversubscribe). Each rank uses one BLAS thread
# unless --threads is given. MTL_DIST=/path/to/mtl_dist overrides the binary.
# Ranks on one machine exchange through shared-memory fragments rather than
# the kernel's cross-process copy (CMA): a step's messages are small (census
# MMoE: 83 KB), and process_vm_readv's system calls cost more than the copy
# (2 ranks, 5 alternating runs: allreduce share 8-9% -> 5-6%, samples/s
# +4-5%). An OMPI_MCA_btl_vader_single_copy_mechanism already set is kept.
set -euo pipefail
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: launch/local.sh N [mtl_dist options...]" >&2
  exit 2
fi
n=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
bin=${MTL_DIST:-}
if [ -z "$bin" ]; then
  if [ -x "$here/../build/mtl_dist" ]; then bin="$here/../build/mtl_dist"
  else bin=$(command -v mtl_dist || true); fi
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "launch/local.sh: mtl_dist not found (build it, or set MTL_DIST)" >&2; exit 2; }
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# OpenBLAS starts its thread pool when the library loads, before mtl_dist can
# call openblas_set_num_threads: size it from --threads (default 1) so idle
# pool threads do not spin on the cores the other ranks use.
threads=1
prev=""
for a in "$@"; do
  case "$a" in --threads=*) threads=${a#--threads=} ;; esac
  [ "$prev" = "--threads" ] && threads=$a
  prev=$a
done
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}
extra=()
if [ $((n * threads)) -gt "$(nproc)" ]; then
  extra+=(--oversubscribe --bind-to none)   # more work than cores: let the kernel place it
else
  extra+=(--map-by "slot:PE=$threads" --bind-to core)  # one rank per core (or per $threads cores)
fi
exec mpirun -np "$n" "${extra[@]}" "$bin" "$@"
