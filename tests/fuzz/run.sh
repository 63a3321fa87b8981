#!/usr/bin/env bash
# Build the libFuzzer targets (clang -fsanitize=fuzzer,address,undefined over
# the project's sources) and run each for SECONDS (default 600), two at a
# time. See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     targets: csv config h5 (default: all)
#   tests/fuzz/run.sh build                     only build
#   tests/fuzz/run.sh merge [TARGET...]         minimize the work corpus into tests/fuzz/corpus
#
# Environment:
#   FUZZ_BUILD  build and work directory (default: build-fuzz in the repo root)
#   FUZZ_JOBS   targets run at the same time (default: 2)
#   FUZZ_ARGS   extra libFuzzer arguments for every run
#
# Each run fuzzes FUZZ_BUILD/work/<target> (seeded from the committed corpus
# tests/fuzz/corpus/<target>) and writes crash reproducers to
# FUZZ_BUILD/crashes/<target>/ and its log to FUZZ_BUILD/logs/<target>.log.
# Exits non-zero when any run found a crash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-2}
all_targets=(csv config h5)

# clang with its runtime libraries (libFuzzer, ASan, UBSan): Debian 12's
# clang-14 and libclang-rt-14-dev. Installed here, not by
# launch/install-deps.sh: CI does not fuzz.
ensure_tools() {
  local missing=()
  command -v clang-14 >/dev/null || missing+=(clang-14)
  dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed" ||
    missing+=(libclang-rt-14-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "fuzz: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build_targets() {
  ensure_tools
  bash "$root/launch/install-deps.sh" >/dev/null
  mkdir -p "$build/obj"
  local cc=clang-14
  local san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  local cflags=(-std=c11 -g -O1 -Wno-psabi -DMTL_VERSION='"fuzz"' -I"$root/include"
    -I/usr/include/hdf5/serial $(pkg-config --cflags openblas inih)
    $(mpicc --showme:compile))
  local libs=(-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 $(pkg-config --libs openblas inih)
    $(mpicc --showme:link) -lz -lm)
  # the library: every source but the two programs' mains, instrumented for
  # coverage (fuzzer-no-link) and the sanitizers; rebuilt when a source changed
  local objs=()
  for src in "$root"/src/*.c "$root"/src/models/*.c; do
    local obj="$build/obj/$(basename "$(dirname "$src")")_$(basename "${src%.c}").o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$root/include/mtl" -nt "$obj" ] ||
       [ -n "$(find "$root/include/mtl" "$root/src/hot.h" -newer "$obj" 2>/dev/null)" ]; then
      $cc "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs+=("$obj")
  done
  for t in "${all_targets[@]}"; do
    $cc "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer "$here/fuzz_$t.c" "${objs[@]}" "${libs[@]}" \
      -o "$build/fuzz_$t"
  done
  echo "fuzz: built ${all_targets[*]/#/$build/fuzz_}"
}

# libFuzzer and sanitizer settings per target. Allocations above 256 MiB
# return NULL (what a smaller machine does) so that a small file declaring a
# huge dataset exercises the out-of-memory paths instead of paging in
# gigabytes; the readers must then fail cleanly.
fuzz_env() {
  local t=$1
  local asan="abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=256:detect_leaks=1"
  echo "ASAN_OPTIONS=$asan"
  echo "LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0"
  echo "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  echo "MTL_FUZZ_TMPDIR=$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")"
}

fuzz_args() {
  local t=$1
  local args=(-timeout=30 -rss_limit_mb=3072 -malloc_limit_mb=300 -print_final_stats=1)
  [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
  case $t in
    h5) args+=(-max_len=40960) ;;
    *) args+=(-max_len=4096) ;;
  esac
  echo "${args[@]}"
}

run_target() {
  local t=$1 secs=$2
  mkdir -p "$build/work/$t" "$build/crashes/$t" "$build/logs"
  local env_vars
  mapfile -t env_vars < <(fuzz_env "$t")
  # shellcheck disable=SC2046
  env "${env_vars[@]}" "$build/fuzz_$t" $(fuzz_args "$t") ${FUZZ_ARGS:-} \
    -max_total_time="$secs" -artifact_prefix="$build/crashes/$t/" \
    "$build/work/$t" "$here/corpus/$t" >"$build/logs/$t.log" 2>&1
}

summary() {
  local t=$1 log="$build/logs/$1.log"
  local last
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  echo "fuzz $t: ${last:-no progress line}"
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" |
    sed "s/^/fuzz $t: /" || true
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_ASSERT|deadly signal' "$log"; then
    echo "fuzz $t: CRASH, see $log and $build/crashes/$t/"
    return 1
  fi
}

cmd=${1:-600}
case $cmd in
  build)
    build_targets
    exit 0
    ;;
  merge)
    shift
    targets=("$@")
    [ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
    build_targets
    for t in "${targets[@]}"; do
      mkdir -p "$build/work/$t" "$here/corpus/$t"
      mapfile -t env_vars < <(fuzz_env "$t")
      # shellcheck disable=SC2046
      env "${env_vars[@]}" "$build/fuzz_$t" $(fuzz_args "$t") -merge=1 \
        "$here/corpus/$t" "$build/work/$t" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
    done
    exit 0
    ;;
esac
secs=$cmd
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
build_targets

status=0
pids=()
names=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  echo "fuzz $t: running for ${secs}s (log $build/logs/$t.log)"
  run_target "$t" "$secs" &
  pids+=($!)
  names+=("$t")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || true
done
for t in "${names[@]}"; do summary "$t" || status=1; done
exit $status
