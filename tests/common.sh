# Sourced by the end-to-end scripts (tests/e2e_*.sh, slurm_jobs.sh): the
# tools, the MPI launcher, and what Open MPI needs to run here (as root, more
# ranks than cores). Environment set by ctest (tests/CMakeLists.txt):
# MTL_BIN, MTL_SRC, MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
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
# procs_with MARKER: "pid args" of every process whose command line holds MARKER
procs_with() {
    ps -eo pid=,args= | awk -v m="$1" -v me=$$ 'index($0, m) > 0 && $1 != me && $2 != "awk" && $2 != "ps"'
}

# Checks: a failed check is counted and the script goes on; `summary NAME`
# ends it (exit 1 after any failure).
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
summary() {
    echo "$1: $((SECONDS - T_START))s"
    if [ "$failures" -ne 0 ]; then
        echo "$1: $failures check(s) FAILED"
        exit 1
    fi
    echo "$1: all checks passed"
}
# show_out NAME [N]: the last N (10) lines of $WORK/NAME.out, indented
show_out() { sed 's/^/    | /' "$WORK/$1.out" | grep -v -e '^    | -*$' | tail -"${2:-10}"; }
# wait_ckpt DIR: until DIR holds a checkpoint (at most 60 s)
wait_ckpt() {
    local i
    for ((i = 0; i < 600; i++)); do
        compgen -G "$1/ckpt-*.h5" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# same_predictions WHAT REF.h5 H5: /predictions bit-identical
same_predictions() {
    local out
    if out=$("$PYTHON3" - "$2" "$3" 2>&1 <<'PY'
import sys
import h5py, numpy as np
a, b = (h5py.File(p, "r")["predictions"][()] for p in sys.argv[1:3])
if a.shape != b.shape or not np.array_equal(a, b):
    sys.exit(f"differ: shapes {a.shape} {b.shape}, max |diff| "
             f"{np.abs(a - b).max() if a.shape == b.shape else 'n/a'}")
print(f"{a.shape[0]} x {a.shape[1]} predictions bit-identical")
PY
    ); then
        pass "$1: $out"
    else
        fail "$1: predictions differ from the uninterrupted run's: $out"
    fi
}

# Helpers of the scripts that run mtl_dist and compare checkpoints (a script
# may define its own instead). They write into $WORK.
# run NP NAME ARGS...: mtl_dist on NP ranks; output in $WORK/NAME.{out,err}
run() {
    local np=$1 name=$2
    shift 2
    if ! timeout 300 "$MPIEXEC" "$NPFLAG" "$np" "${OVERSUB[@]}" "$DIST" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        fail "$name: mtl_dist failed"
        cat "$WORK/$name.err"
        return 1
    fi
}
# last DIR: the newest checkpoint in DIR
last() { ls "$1"/ckpt-*.h5 | sort | tail -1; }
# same CKPT_A CKPT_B WHAT [TOL]: parameters equal (bit for bit without TOL)
same() {
    if "$PYTHON3" "$COMPARE" "$1" "$2" ${4:+--tol "$4"} >"$WORK/cmp.out" 2>&1; then
        pass "$3 ($(tail -1 "$WORK/cmp.out"))"
    else
        fail "$3"
        cat "$WORK/cmp.out"
    fi
}
