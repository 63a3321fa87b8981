# Sourced by the end-to-end scripts (tests/e2e_*.sh): the tools, the MPI
# launcher, and what Open MPI needs to run here (as root, more ranks than
# cores). Environment set by ctest (tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
: "${MTL_BIN:?MTL_BIN must be the build directory holding mtl_dist and mtl_prep}"
MTL_SRC=${MTL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PYTHON3=${PYTHON3:-/usr/bin/python3}
MPIEXEC=${MPIEXEC:-mpiexec}
NPFLAG=${MPIEXEC_NUMPROC_FLAG:--n}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 # more ranks than cores
OVERSUB=()
if "$MPIEXEC" --version 2>/dev/null | grep -qi -e 'open mpi' -e openrte; then OVERSUB=(--oversubscribe); fi
DIST=$MTL_BIN/mtl_dist
PREP=$MTL_BIN/mtl_prep
COMPARE=$MTL_SRC/tests/compare_params.py
# checks: fail counts (the script exits 1 at the end if any failed), pass notes
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
