#!/usr/bin/env bash
# Build the libFuzzer targets (clang -fsanitize=fuzzer,address,undefined over
# the project's sources) and run each for SECONDS (default 600), two at a
# time. See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]   targets: csv config h5 (default: all)
#   tests/fuzz/run.sh build                   only build
#   tests/fuzz/run.sh triage TARGET           re-run and classify TARGET's artifacts
#   tests/fuzz/run.sh merge [TARGET...]       minimize the work corpora into tests/fuzz/corpus
#
# Environment:
#   FUZZ_BUILD  build and work directory (default: build-fuzz in the repo root)
#   FUZZ_JOBS   targets run at the same time (default: 2)
#   FUZZ_ARGS   extra libFuzzer arguments for every run
#   FUZZ_LSAN   LeakSanitizer suppressions (default tests/lsan.supp; "none" to
#               see leaks inside libhdf5 too, for auditing our HDF5 calls)
#
# Each run fuzzes FUZZ_BUILD/work/<target> (seeded from the committed corpus
# tests/fuzz/corpus/<target>), writes crash/timeout/leak reproducers to
# FUZZ_BUILD/crashes/<target>/ and its log to FUZZ_BUILD/logs/<target>.log.
#
# csv and config run in-process: the first crash stops the run. h5 runs in
# fork mode and goes on after a crash (-ignore_crashes etc.), because HDF5
# 1.10 itself crashes and hangs on some corrupt files; every artifact is then
# re-run and classified by its faulting frame: "upstream" when it is inside
# libhdf5, "ours" otherwise (FUZZ_BUILD/crashes/h5/triage.txt).
# Exits non-zero when a run found a crash of ours.
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
  # (flag lists: the command substitutions are split into words on purpose)
  # shellcheck disable=SC2054,SC2207
  local san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  # shellcheck disable=SC2207
  local cflags=(-std=c11 -g -O1 -Wno-psabi -DMTL_VERSION='"fuzz"' -I"$root/include"
    -I/usr/include/hdf5/serial $(pkg-config --cflags openblas inih)
    $(mpicc --showme:compile))
  # shellcheck disable=SC2207
  local libs=(-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 $(pkg-config --libs openblas inih)
    $(mpicc --showme:link) -lz -lm)
  # the library: every source but the two programs' mains, instrumented for
  # coverage (fuzzer-no-link) and the sanitizers; rebuilt when a source or a
  # header changed
  local objs=()
  for src in "$root"/src/*.c "$root"/src/models/*.c; do
    local obj
    obj="$build/obj/$(basename "$(dirname "$src")")_$(basename "${src%.c}").o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] ||
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

# Sanitizer settings. Allocations above 256 MiB return NULL (what a smaller
# machine does) so that a small file declaring a huge dataset exercises the
# out-of-memory paths instead of paging in gigabytes; the readers must then
# fail cleanly.
fuzz_env() {
  local lsan=${FUZZ_LSAN:-$root/tests/lsan.supp}
  echo "ASAN_OPTIONS=abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=256:detect_leaks=1"
  if [ "$lsan" = none ]; then
    echo "LSAN_OPTIONS=print_suppressions=0"
  else
    echo "LSAN_OPTIONS=suppressions=$lsan:print_suppressions=0"
  fi
  echo "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  local tmp=${TMPDIR:-/tmp}
  [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
  echo "MTL_FUZZ_TMPDIR=$tmp"
}

fuzz_args() {
  local t=$1
  local args=(-rss_limit_mb=3072 -malloc_limit_mb=300)
  [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
  case $t in
    h5) args+=(-max_len=40960 -timeout=3) ;;
    *) args+=(-max_len=4096 -timeout=30) ;;
  esac
  echo "${args[@]}"
}

run_target() {
  local t=$1 secs=$2
  mkdir -p "$build/work/$t" "$build/crashes/$t" "$build/logs"
  local env_vars mode=(-print_final_stats=1)
  [ "$t" = h5 ] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  mapfile -t env_vars < <(fuzz_env)
  # shellcheck disable=SC2046
  env "${env_vars[@]}" "$build/fuzz_$t" $(fuzz_args "$t") "${mode[@]}" ${FUZZ_ARGS:-} \
    -max_total_time="$secs" -artifact_prefix="$build/crashes/$t/" \
    "$build/work/$t" "$here/corpus/$t" >"$build/logs/$t.log" 2>&1 || true
}

# The faulting frame of a sanitizer/libFuzzer report: the first stack frame
# that is not the sanitizer runtime, libFuzzer, libc or an intercepted call.
faulting_frame() {
  grep -E '^\s+#[0-9]+ 0x' |
    grep -vE '__sanitizer|__asan|__ubsan|__lsan|__interceptor_|fuzzer::|libc\.so|libstdc\+\+|/abort\.c|raise\.c|pthread_kill|string/\.\./sysdeps|in (malloc|calloc|realloc|free|strlen|memcpy|memmove|memset|strdup|strndup) ' |
    head -1 | sed -E 's/^\s+#[0-9]+ 0x[0-9a-f]+ (in )?//; s/ \(BuildId: [0-9a-f]+\)//'
}

# Re-run every artifact of target t (up to 3 times) and classify it; prints
# one line each to crashes/t/triage.txt. Returns 1 when any is ours. An
# artifact that does not reproduce on its own crashed because of what earlier
# inputs of the same fuzzing job left behind: our code keeps no state between
# inputs and is fully instrumented (a bad access of ours is reported where it
# happens), so that state is libhdf5's heap after one of its own unchecked
# out-of-bounds writes; these are listed as "flaky".
triage() {
  local t=$1
  local dir="$build/crashes/$t" ours=0 upstream=0
  local out="$dir/triage.txt"
  : >"$out"
  mkdir -p "$build/rerun"
  local env_vars
  mapfile -t env_vars < <(fuzz_env)
  shopt -s nullglob
  local flaky=0
  for a in "$dir"/crash-* "$dir"/timeout-* "$dir"/leak-* "$dir"/oom-*; do
    local report frame kind=""
    for _ in 1 2 3; do
      # shellcheck disable=SC2046
      report=$(env "${env_vars[@]}" timeout 120 "$build/fuzz_$t" $(fuzz_args "$t") \
        -artifact_prefix="$build/rerun/" "$a" 2>&1 || true)
      kind=$(grep -oE 'ERROR: (AddressSanitizer: [A-Za-z-]+|LeakSanitizer|libFuzzer: [a-z-]+( [a-z-]+)?)|runtime error|FUZZ_ASSERT' <<<"$report" | head -1 || true)
      [ -n "$kind" ] && break
    done
    frame=$(faulting_frame <<<"$report" || true)
    if [ -z "$kind" ]; then
      flaky=$((flaky + 1))
      echo "flaky    $(basename "$a") [does not reproduce alone]" >>"$out"
    elif [[ $frame == *libhdf5* ]]; then
      upstream=$((upstream + 1))
      echo "upstream $(basename "$a") [$kind] $frame" >>"$out"
    else
      ours=$((ours + 1))
      echo "OURS     $(basename "$a") [$kind] $frame" >>"$out"
    fi
  done
  echo "fuzz $t: triage: $ours ours, $upstream upstream (in libhdf5), $flaky flaky: $out"
  [ $ours -eq 0 ]
}

summary() {
  local t=$1 log="$build/logs/$1.log"
  if [ "$t" = h5 ]; then
    # fork mode: "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: Ts job: J"
    local last
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    echo "fuzz $t: ${last:-no progress line}"
    triage "$t"
    return
  fi
  grep -E '^#[0-9]+\s+(DONE|INITED)' "$log" | tail -1 | sed "s/^/fuzz $t: /" || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" |
    sed "s/^/fuzz $t: /" || true
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_ASSERT|deadly signal' "$log"; then
    echo "fuzz $t: CRASH, see $log and $build/crashes/$t/"
    return 1
  fi
}

# Replay every committed h5 corpus file alone and drop those on which
# libhdf5 itself misbehaves under ASan (CI's sanitizer build replays the
# corpus through tests/test_fuzz_regressions.c, with no way to tell).
prune_h5_corpus() {
  local env_vars n=0
  mkdir -p "$build/rerun"
  mapfile -t env_vars < <(fuzz_env)
  for f in "$here"/corpus/h5/*; do
    [[ $(basename "$f") == seed-* ]] && continue
    # shellcheck disable=SC2046
    if ! env "${env_vars[@]}" timeout 60 "$build/fuzz_h5" $(fuzz_args h5) \
        -artifact_prefix="$build/rerun/" "$f" >/dev/null 2>&1; then
      rm -f "$f"
      n=$((n + 1))
    fi
  done
  echo "fuzz h5: dropped $n corpus files that upset libhdf5"
}

cmd=${1:-600}
case $cmd in
  build)
    build_targets
    exit 0
    ;;
  triage)
    triage "${2:?triage TARGET}"
    exit $?
    ;;
  merge)
    shift
    targets=("$@")
    [ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
    build_targets
    mapfile -t env_vars < <(fuzz_env)
    # into a fresh directory holding only the hand-made seeds, from the
    # committed corpus and the work corpus; h5 counts edges only
    # (-use_counters=0), which keeps its corpus of ~15 KB files small
    for t in "${targets[@]}"; do
      mkdir -p "$build/work/$t" "$here/corpus/$t"
      rm -rf "$build/merge/$t" "$build/merge-in/$t"
      mkdir -p "$build/merge/$t" "$build/merge-in/$t" "$build/rerun"
      cp "$here/corpus/$t"/seed-* "$build/merge/$t/"
      # (file names are content hashes: the same name is the same input)
      for d in "$here/corpus/$t" "$build/work/$t"; do
        find "$d" -type f ! -name 'seed-*' -exec cp -f -t "$build/merge-in/$t/" {} +
      done
      counters=()
      [ "$t" = h5 ] && counters=(-use_counters=0)
      # shellcheck disable=SC2046
      env "${env_vars[@]}" "$build/fuzz_$t" $(fuzz_args "$t") "${counters[@]}" -merge=1 \
        -artifact_prefix="$build/rerun/" \
        "$build/merge/$t" "$build/merge-in/$t" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
      find "$here/corpus/$t" -type f ! -name 'seed-*' -delete
      find "$build/merge/$t" -type f ! -name 'seed-*' -exec cp -t "$here/corpus/$t/" {} +
      [ "$t" = h5 ] && prune_h5_corpus
      echo "fuzz $t: corpus $(find "$here/corpus/$t" -type f | wc -l) files, $(cat "$here/corpus/$t"/* | wc -c) bytes"
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
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  echo "fuzz $t: running for ${secs}s (log $build/logs/$t.log)"
  run_target "$t" "$secs" &
done
wait
for t in "${targets[@]}"; do summary "$t" || status=1; done
exit $status
