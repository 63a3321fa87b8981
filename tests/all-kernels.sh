#!/usr/bin/env bash
# The README's test command once per OpenBLAS kernel family: the suite must not
# depend on which SGEMM kernel the machine's OpenBLAS picks (a kernel may round
# a row's sums differently depending on the shape of the product, so results
# computed with the work split differently agree only up to float32 rounding).
#
#   bash tests/all-kernels.sh [BUILD_DIR [KERNEL...]]   (default: build, all five)
#
# Runs `ctest --test-dir BUILD_DIR --output-on-failure` with OPENBLAS_CORETYPE
# set to Haswell, SkylakeX, Zen and Prescott, and unset (OpenBLAS's own choice
# for this CPU) -- or the KERNELs named ("unset" for the default) -- then
# prints one line per run: passed/total and seconds. Logs
# go to BUILD_DIR/all-kernels/<kernel>.log. Exits 1 if any run failed.
# OPENBLAS_CORETYPE is set here only: never in CI or in the tests, where the
# environment decides. Each line names the kernel OpenBLAS reports it runs
# (openblas_get_corename, through python3's ctypes when it can), since a CPU
# without a kernel's instructions may be given another.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(Haswell SkylakeX Zen Prescott unset)
if [ ! -f "$build/CTestTestfile.cmake" ]; then
    echo "all-kernels: $build is not a configured build directory (see README: cmake -S . -B $build)" >&2
    exit 2
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
logs=$build/all-kernels
mkdir -p "$logs"
summary=()
# corename KERNEL: the kernel OpenBLAS picks with OPENBLAS_CORETYPE=KERNEL
corename() {
    local code='import ctypes; l = ctypes.CDLL("libopenblas.so.0"); '
    code+='l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())'
    if [ "$1" = unset ]; then
        env -u OPENBLAS_CORETYPE python3 -c "$code" 2>/dev/null || echo "?"
    else
        OPENBLAS_CORETYPE=$1 python3 -c "$code" 2>/dev/null || echo "?"
    fi
}
failed=0
for kernel in "${kernels[@]}"; do
    log=$logs/$kernel.log
    echo "== OPENBLAS_CORETYPE=$kernel =="
    core=$(corename "$kernel")
    t0=$(date +%s)
    if [ "$kernel" = unset ]; then
        env -u OPENBLAS_CORETYPE ctest --test-dir "$build" --output-on-failure >"$log" 2>&1
    else
        OPENBLAS_CORETYPE=$kernel ctest --test-dir "$build" --output-on-failure >"$log" 2>&1
    fi
    rc=$?
    secs=$(($(date +%s) - t0))
    # "100% tests passed, 0 tests failed out of 17"
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
    total=$(echo "$line" | sed -nE 's/.*out of ([0-9]+).*/\1/p')
    nfail=$(echo "$line" | sed -nE 's/.*passed, ([0-9]+) tests? failed.*/\1/p')
    if [ -n "$total" ] && [ -n "$nfail" ]; then
        counts="$((total - nfail))/$total passed"
    else
        counts="no ctest summary"
    fi
    status=ok
    if [ "$rc" -ne 0 ]; then
        status=FAILED
        failed=1
        grep -E '^\s+[0-9]+ - ' "$log" | sed 's/^/    /'
    fi
    summary+=("$(printf '%-9s %-11s %-7s %-16s %5d s   %s' "$kernel" "$core" "$status" "$counts" "$secs" "$log")")
    echo "${summary[-1]}"
done
echo
echo "OPENBLAS_CORETYPE, kernel run, result, tests passed, time, log:"
printf '%s\n' "${summary[@]}"
exit $failed
