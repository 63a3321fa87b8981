#!/usr/bin/env bash
# Large-vocabulary benchmark (issue 12): does a step's cost stay independent of
# the vocabulary size, and are 2 ranks faster than 1?
#
#   bash launch/bench-vocab.sh [--quick] [--build DIR] [--out DIR] [--repeat N]
#        [--cases "1k 100k 1m 10m"] [--steps N] [--timeout S] [--force] [--no-torch]
#        [--extra "mtl_dist options"]
#
# Data: the synthetic click log (mtl_prep synth --kind ctr), 200,000 training
# rows, 24 categorical fields, 8 dense, Zipf(1.1) ids; vocabulary per field
# 1k, 100k, 1M, and "10m" = 4 fields of 10M ids + 20 fields of 1k.
# Model: mtl_dist --model mmoe (defaults: 8 experts [16], towers [8], Adam
# lr 0.01) with --embedding-dim 16 --batch-size 1024, --max-steps 150 (the
# issue measured 60; at 1M ids the first steps still touch rows for the first
# time, so a steady figure needs more: 60 steps gave 55k where 150 give 130k).
# Modes: 1 rank; 2 ranks with replicated tables (sparse exchange, where the
# binary has it; --embedding-sharding replicated where it has that); 2 ranks
# with row-sharded tables (--embedding-sharding row, what auto picks for
# these tables; "n/a" when the binary does not know it); and, when `import
# torch` works, the PyTorch reference tests/bench/torch_vocab.py (same model,
# same file, nn.Embedding(sparse=True) + SparseAdam, 1 thread).
# --embedding-update sparse is passed when mtl_dist --help lists it.
#
# It prints a table: steady-state samples/s (the final metrics line's
# steady_samples_per_sec: steps after the first 5; best of --repeat runs, as
# other jobs only slow a run down; a case's modes take turns, one run each per
# round, so a busy spell hits them alike), samples/s over the same vocabulary's
# 1-rank figure, bytes exchanged per step (exchange_bytes_per_step; "n/a" when
# the binary does not report it), peak RSS per rank; then the issue's
# acceptance ratios. Every run's metrics line is kept in --out.
#
# A run whose tables would not fit in the memory available now (estimated at
# 12 bytes per table float per copy: value and two Adam moments) is
# skipped with a note (--force runs it anyway); a run longer than --timeout
# seconds (default 900) is stopped and shown as "timeout".
# --quick runs tiny versions of every case (vocabularies 100..100k, 20,000
# rows, 12 steps, 1 repeat) in seconds: CI checks that the benchmark works;
# no speed is asserted anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
out=""
quick=0
repeat=3
cases="1k 100k 1m 10m"
steps=150
steps_set=0
timeout_s=900
force=0
torch=1
extra=""
usage="usage: launch/bench-vocab.sh [--quick] [--build DIR] [--out DIR] [--repeat N] [--cases \"1k 100k 1m 10m\"] [--steps N] [--timeout S] [--force] [--no-torch] [--extra \"ARGS\"]"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --cases) cases=$2; shift ;;
    --steps) steps=$2; steps_set=1; shift ;;
    --timeout) timeout_s=$2; shift ;;
    --force) force=1 ;;
    --no-torch) torch=0 ;;
    --extra) extra=$2; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$build/bench-vocab}
mkdir -p "$out"
# Debian's python has h5py (and torch when python3-torch is installed); a
# pyenv python first on PATH may not
PY=${PYTHON3:-/usr/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3)
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

rows=250000 # --split 0.8,0.2: 200,000 training rows
if [ $quick -eq 1 ]; then
  rows=20000
  repeat=1
  [ $steps_set -eq 1 ] || steps=12
fi
fields=24
dense=8

# case -> --vocab list (a list shorter than the fields repeats its last value)
vocab_of() {
  if [ $quick -eq 1 ]; then
    case "$1" in
      1k) echo 100 ;; 100k) echo 1000 ;; 1m) echo 10000 ;;
      10m) echo 100000,100000,100000,100000,100 ;;
      *) return 1 ;;
    esac
  else
    case "$1" in
      1k) echo 1000 ;; 100k) echo 100000 ;; 1m) echo 1000000 ;;
      10m) echo 10000000,10000000,10000000,10000000,1000 ;;
      *) return 1 ;;
    esac
  fi
}
for c in $cases; do vocab_of "$c" >/dev/null || { echo "bench-vocab: unknown case '$c' (1k 100k 1m 10m)" >&2; exit 2; }; done

help=$("$build/mtl_dist" --help 2>&1 || true)
upd=()
grep -q -- "--embedding-update" <<<"$help" && upd=(--embedding-update sparse)
have_rows=0
rep=() # replicated tables: forced, as auto row-shards the large ones
grep -q -- "--embedding-sharding" <<<"$help" && have_rows=1 && rep=(--embedding-sharding replicated)
have_torch=0
if [ $torch -eq 1 ] && "$PY" -c "import torch, h5py" >/dev/null 2>&1; then have_torch=1; fi
# shellcheck disable=SC2206
extra_args=($extra)

# total rows of all tables of a --vocab list over $fields fields (+1 OOV row each)
table_rows() {
  "$PY" -c '
import sys
v = [int(x) for x in sys.argv[1].split(",")]; S = int(sys.argv[2])
print(sum(v[min(s, len(v) - 1)] + 1 for s in range(S)))' "$1" "$fields"
}
mem_avail_mb() { awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo; }

# fits NEED_MB: 0 when it fits in 85% of what is available now (or --force)
fits() {
  [ $force -eq 1 ] && return 0
  [ "$1" -le $(($(mem_avail_mb) * 85 / 100)) ]
}

# the value of KEY in the JSON line in FILE, or n/a
json_get() {
  "$PY" -c '
import json, sys
try:
    v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]).get(sys.argv[2])
except Exception:
    v = None
print("n/a" if v is None else v)' "$1" "$2"
}

# run_try RESULT LOG cmd...: one run; its metrics line replaces RESULT's
# when its steady_samples_per_sec is higher (status in RESULT.status: ok,
# or why no run gave a figure). A case's modes take turns, round after round
# (see the loop below), so that a busy spell on the machine slows every mode
# alike rather than all repeats of one.
run_try() {
  local result=$1 log=$2
  shift 2
  local best=-1 status rc sps
  status=$(cat "$result.status" 2>/dev/null || echo failed)
  [ "$status" = "ok" ] && best=$(json_get "$result" steady_samples_per_sec)
  rm -f "$result.try"
  rc=0
  timeout --kill-after=30 "$timeout_s" "$@" >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$result.try" ]; then # keep an earlier good run
    if [ "$status" != "ok" ]; then
      status="failed (exit $rc, see $log)"
      [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="timeout"
      grep -q "unknown option" "$log" && status="n/a"
    fi
  else
    sps=$(json_get "$result.try" steady_samples_per_sec)
    [ "$sps" = "n/a" ] && sps=0
    if "$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$sps" "$best"; then
      tail -1 "$result.try" >"$result"
      status="ok"
    fi
  fi
  rm -f "$result.try"
  echo "$status" >"$result.status"
}

mtl_run() { # CASE MODE RANKS [options...]
  local c=$1 mode=$2 ranks=$3
  shift 3
  local res="$out/$c-$mode.json"
  run_try "$res" "$out/$c-$mode.log" env MTL_DIST="$build/mtl_dist" "$here/launch/local.sh" "$ranks" \
    --model mmoe --train "$out/data-$c/train.h5" --embedding-dim 16 --batch-size 1024 --epochs 1 \
    --max-steps "$steps" --quiet --metrics-out "$res.try" ${upd[@]+"${upd[@]}"} "$@" \
    ${extra_args[@]+"${extra_args[@]}"}
}

torch_run() { # CASE
  local c=$1 res="$out/$1-torch.json"
  # torch_vocab.py prints its metrics line to stdout: run_try reads RESULT.try
  # shellcheck disable=SC2016
  run_try "$res" "$out/$c-torch.log" bash -c \
    '"$1" "$2" --train "$3" --embedding-dim 16 --batch-size 1024 --max-steps "$4" >"$5.try"' _ \
    "$PY" "$here/tests/bench/torch_vocab.py" "$out/data-$c/train.h5" "$steps" "$res"
}

skip() { # CASE MODE WHY (an earlier round's figure stays)
  [ "$(cat "$out/$1-$2.json.status" 2>/dev/null)" = "ok" ] && return 0
  rm -f "$out/$1-$2.json"
  echo "$3" >"$out/$1-$2.json.status"
}

echo "mtl_dist large-vocabulary benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')$([ $quick -eq 1 ] && echo ' (--quick)')"
echo "data: synthetic click log, $((rows * 4 / 5)) training rows, $fields categorical fields (Zipf 1.1) + $dense dense;"
echo "model: MMoE defaults, embedding_dim 16, batch 1024, Adam, $steps steps (steady state excludes the first 5)"
echo "mtl_dist options: ${upd[*]:-(no --embedding-update in this binary)}${extra:+ $extra}; row sharding: $([ $have_rows -eq 1 ] && echo yes || echo 'n/a (no --embedding-sharding in this binary)')"
echo "PyTorch reference: $([ $have_torch -eq 1 ] && "$PY" -c 'import torch; print("torch", torch.__version__, "1 thread, SparseAdam")' || echo 'not run (no python3-torch)')"
echo "best of $repeat runs per mode, the modes taking turns; other jobs on the machine only slow a run down"
echo

for c in $cases; do
  vocab=$(vocab_of "$c")
  "$build/mtl_prep" synth --kind ctr --rows $rows --sparse-fields $fields --vocab "$vocab" \
    --dense-fields $dense --tasks 2 --seed 1 --split 0.8,0.2 --output-dir "$out/data-$c" >/dev/null
  trows=$(table_rows "$vocab")
  echo "$trows" >"$out/$c.rows"
  # one replica: value and two Adam moments (sparse tables keep gradients
  # for the touched rows only)
  copy_mb=$((trows * 16 * 12 / 1048576 + 100))
  for m in 1rank 2rep 2row torch; do rm -f "$out/$c-$m.json" "$out/$c-$m.json.status"; done
  for ((r = 0; r < repeat; r++)); do # the modes take turns (see run_try)
    if fits $copy_mb; then mtl_run "$c" 1rank 1; else skip "$c" 1rank "skipped (~$((copy_mb / 1024 + 1)) GB; --force)"; fi
    if fits $((2 * copy_mb)); then
      mtl_run "$c" 2rep 2 ${rep[@]+"${rep[@]}"}
    else
      skip "$c" 2rep "skipped (~$((2 * copy_mb / 1024 + 1)) GB; --force)"
    fi
    if [ $have_rows -eq 0 ]; then
      skip "$c" 2row "n/a"
    elif fits $((copy_mb + 200)); then
      mtl_run "$c" 2row 2 --embedding-sharding row
    else
      skip "$c" 2row "skipped (~$((copy_mb / 1024 + 1)) GB; --force)"
    fi
    if [ $have_torch -eq 0 ]; then
      skip "$c" torch "not run"
    elif fits $((trows * 16 * 12 / 1048576 + 400)); then
      torch_run "$c"
    else
      skip "$c" torch "skipped (~$((trows * 16 * 12 / 1048576 / 1024 + 1)) GB; --force)"
    fi
  done
done

# shellcheck disable=SC2086
"$PY" - "$out" "$quick" $cases <<'EOF'
import json, os, sys
out, quick, cases = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
modes = [("1rank", "1 rank"), ("2rep", "2 ranks, replicated"), ("2row", "2 ranks, row-sharded"),
         ("torch", "PyTorch, 1 thread")]
names = {"1k": "1,000", "100k": "100,000", "1m": "1,000,000", "10m": "4 × 10,000,000 + 20 × 1,000"}
if quick:
    names = {"1k": "100", "100k": "1,000", "1m": "10,000", "10m": "4 × 100,000 + 20 × 100"}

def load(c, m):
    p = os.path.join(out, f"{c}-{m}.json")
    status = open(p + ".status").read().strip() if os.path.exists(p + ".status") else "n/a"
    r = json.load(open(p)) if status == "ok" and os.path.exists(p) else None
    return r, status

def count(n):
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else str(n)

def rate(v):
    return f"{v / 1e3:,.0f}k" if v >= 1e4 else f"{v / 1e3:.1f}k" if v >= 100 else f"{v:.0f}"

def nbytes(v):
    if v is None: return "n/a"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if v >= f: return f"{v / f:.1f} {unit}"
    return f"{v:.0f} B"

res = {}
print("| vocab per field (rows in all tables) | mode | samples/s | × 1 rank | exchanged per step | peak RSS per rank |")
print("|---|---|---|---|---|---|")
for c in cases:
    rows = int(open(os.path.join(out, f"{c}.rows")).read())
    first = True
    for m, label in modes:
        r, status = load(c, m)
        res[(c, m)] = r
        lead = f"{names[c]} ({count(rows)})" if first else ""
        first = False
        if r is None or not r.get("steady_samples_per_sec"):
            print(f"| {lead} | {label} | {status if r is None else 'n/a'} | | | |")
            continue
        sps = r["steady_samples_per_sec"]
        base = res.get((c, "1rank"))
        ratio = f"{sps / base['steady_samples_per_sec']:.2f}" if base and base.get("steady_samples_per_sec") else ""
        ex = "—" if m in ("1rank", "torch") else nbytes(r.get("exchange_bytes_per_step"))
        rss = r.get("peak_rss_mb")
        print(f"| {lead} | {label} | {rate(sps)} | {ratio} | {ex} | {'n/a' if rss is None else f'{rss:,.0f} MB'} |")

def sps(c, m):
    r = res.get((c, m))
    return r.get("steady_samples_per_sec") if r else None

print()
print("Acceptance ratios (issue 12):")
lo, hi = sps("1k", "1rank"), sps("1m", "1rank")
if "1k" in cases and "1m" in cases:
    print(f"- 1 rank, 1m vs 1k samples/s: {hi / lo:.0%} (target >= 50%)" if lo and hi else "- 1 rank, 1m vs 1k: n/a")
for c in cases:
    one = sps(c, "1rank")
    for m, label in (("2rep", "replicated"), ("2row", "row-sharded")):
        two = sps(c, m)
        print(f"- {c}: 2 ranks {label} / 1 rank: " + (f"{two / one:.2f}× (target >= 1.6×)" if one and two else "n/a"))
for c in ("100k", "1m"):
    one, ref = sps(c, "1rank"), sps(c, "torch")
    if c in cases:
        print(f"- {c}: 1 rank / PyTorch: " + (f"{one / ref:.2f}× (target >= 3×)" if one and ref else "n/a"))
r1, rr = res.get(("1m", "1rank")), res.get(("1m", "2row"))
if "1m" in cases:
    print("- 1m: row-sharded RSS per rank / 1 rank: " +
          (f"{rr['peak_rss_mb'] / r1['peak_rss_mb']:.0%} (target <= 60%)" if r1 and rr and r1.get("peak_rss_mb") and rr.get("peak_rss_mb") else "n/a"))
EOF
