#!/usr/bin/env bash
# Model quality on the field's benchmarks, as in the README's results table.
#
#   bash launch/quality.sh [--build DIR] [--ranks N] [--seeds "1 2 3"] [--models "mmoe aitm"]
#
# Census-Income (KDD): mtl_prep 60/20/20 split of census-income.test.gz, up to
# 10 epochs with early stopping on the valid loss (patience 2, best epoch
# restored), defaults of the field's census experiments. Adult: train on
# adult.data, test on adult.test, 5 epochs. ESMM: click = marital, conversion
# = income. AITM: the tasks in /labels order (income, then marital), and again
# with --task-order marital,income (the run "aitm-marital-first"). Then (when
# both models are run) the MMoE paper's synthetic data (correlation 0.5): test MSE of
# MMoE and Shared-Bottom. Prints markdown tables of test AUC (or MSE) per seed
# and time per epoch. Raw files: MTL_DATA_DIR (default ../shared/data).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
ranks=1
seeds="1 2 3"
models="shared_bottom esmm mmoe cgc ple aitm aitm-marital-first"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --models) models=$2; shift ;;
    *) echo "usage: launch/quality.sh [--build DIR] [--ranks N] [--seeds \"1 2 3\"] [--models LIST]" >&2; exit 2 ;;
  esac
  shift
done
raw=${MTL_DATA_DIR:-$here/../shared/data}
out=$build/quality
mkdir -p "$out"
PY=$(command -v python3)

train() { # name data_dir epochs extra...
  local name=$1 data=$2 epochs=$3
  shift 3
  local valid=()
  [ -f "$data/valid.h5" ] && valid=(--valid "$data/valid.h5" --early-stop-patience 2)
  MTL_DIST="$build/mtl_dist" "$here/launch/local.sh" "$ranks" --train "$data/train.h5" \
    "${valid[@]}" --test "$data/test.h5" --epochs "$epochs" --quiet \
    --metrics-out "$out/$name.jsonl" "$@" >/dev/null
}

report() { # title, then jsonl files as "label=path"
  "$PY" - "$@" <<'EOF'
import json, sys
title, runs = sys.argv[1], sys.argv[2:]
print(f"\n{title}\n")
rows = []
for run in runs:
    label, path = run.split("=", 1)
    lines = [json.loads(l) for l in open(path)]
    final = lines[-1]
    epochs = [l for l in lines if "epoch" in l]
    sec = sum(l["epoch_seconds"] for l in epochs) / max(len(epochs), 1)
    metric = final.get("test_auc") or final.get("test_mse")
    rows.append((label, metric, final["best_epoch"], len(epochs), sec))
tasks = list(rows[0][1].keys())
print("| model, seed | " + " | ".join(tasks) + " | best epoch / run | s per epoch |")
print("|---|" + "---|" * len(tasks) + "---|---|")
for label, metric, best, n, sec in rows:
    print(f"| {label} | " + " | ".join(f"{metric[t]:.4f}" for t in tasks) + f" | {best} / {n} | {sec:.3f} |")
EOF
}

model_args() {
  case "$1" in
    esmm) echo "--model esmm --ctr-task marital --ctcvr-task income" ;;
    aitm) echo "--model aitm --tower-units 16" ;; # configs/*.ini's [train.aitm]
    aitm-marital-first) echo "--model aitm --tower-units 16 --task-order marital,income" ;;
    *) echo "--model $1" ;;
  esac
}

if [ -f "$raw/census-income.test.gz" ]; then
  "$build/mtl_prep" --config "$here/configs/census.ini" --input "$raw/census-income.test.gz" \
    --output-dir "$out/census" --split 0.6,0.2,0.2 >/dev/null
  runs=()
  for m in $models; do
    for s in $seeds; do
      # shellcheck disable=SC2046
      train "census-$m-$s" "$out/census" 10 --seed "$s" $(model_args "$m")
      runs+=("$m, $s=$out/census-$m-$s.jsonl")
    done
  done
  report "Census-Income, test AUC ($ranks rank(s); up to 10 epochs, early stopping on valid loss)" "${runs[@]}"
  if command -v gnuplot >/dev/null; then # the table as a picture
    bash "$here/launch/plot.sh" --bars "$out"/census-*.jsonl -o "$out/census_test_auc.png"
  fi
fi
if [ -f "$raw/adult.data" ]; then
  "$build/mtl_prep" --config "$here/configs/adult.ini" --train "$raw/adult.data" \
    --test "$raw/adult.test" --output-dir "$out/adult" >/dev/null
  runs=()
  for m in $models; do
    for s in $seeds; do
      # shellcheck disable=SC2046
      train "adult-$m-$s" "$out/adult" 5 --seed "$s" $(model_args "$m")
      runs+=("$m, $s=$out/adult-$m-$s.jsonl")
    done
  done
  report "Adult, test AUC ($ranks rank(s); 5 epochs)" "${runs[@]}"
fi
[[ " $models " == *" mmoe "* && " $models " == *" shared_bottom "* ]] || exit 0
runs=()
for s in $seeds; do
  "$build/mtl_prep" synth --kind mmoe --correlation 0.5 --rows 100000 --seed "$s" \
    --output-dir "$out/synth-$s" >/dev/null
  for m in shared_bottom mmoe; do
    # the paper's models: 8 experts of one 16-unit layer, towers of one 8-unit layer;
    # Shared-Bottom with a bottom as wide as the experts together
    extra=()
    [ "$m" = shared_bottom ] && extra=(--bottom-units 128)
    train "synth-$m-$s" "$out/synth-$s" 20 --model "$m" --seed "$s" --lr 0.001 "${extra[@]}"
    runs+=("$m, $s=$out/synth-$m-$s.jsonl")
  done
done
report "MMoE paper's synthetic data, correlation 0.5: test MSE (lower is better)" "${runs[@]}"
