#!/usr/bin/env bash
# Learning curves from training runs' --metrics-out JSON lines, with gnuplot:
# train loss and valid loss (the mean over tasks) and valid AUC (a panel per
# task), per epoch, one line per run, labelled by the file's name (e.g.
# mmoe_seed1.jsonl -> "mmoe seed1").
#
#   bash launch/plot.sh RUN.jsonl [MORE.jsonl ...] -o OUT.png
#
# Needs gnuplot (Debian: gnuplot-nox) and python3.
set -euo pipefail
out=""
runs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) runs+=("$1") ;;
  esac
  shift
done
if [ -z "$out" ] || [ ${#runs[@]} -eq 0 ]; then
  echo "usage: launch/plot.sh RUN.jsonl [MORE.jsonl ...] -o OUT.png" >&2
  exit 2
fi
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (Debian: gnuplot-nox)" >&2; exit 1; }
PY=$(command -v /usr/bin/python3 || command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# one data file per run (epoch, mean train loss, mean valid loss, AUC per
# task) and the gnuplot commands that draw them
PLOT_OUT=$out "$PY" - "$tmp" "${runs[@]}" <<'PYTHON'
import json, os, sys
tmp, runs = sys.argv[1], sys.argv[2:]
loss, vloss, auc, all_tasks = [], [], {}, []
for i, path in enumerate(runs):
    label = os.path.basename(path).rsplit(".", 1)[0].replace("_", " ")
    epochs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if "epoch" in r and not r.get("final"):
                    epochs.append(r)
    if not epochs:
        sys.exit(f"plot.sh: {path}: no epoch lines (a --metrics-out file?)")
    tasks = sorted(epochs[0].get("valid_auc", {}))
    data = os.path.join(tmp, f"run{i}.dat")
    mean = lambda d: sum(d.values()) / len(d) if d else float("nan")
    with open(data, "w") as f:
        for r in epochs:
            cols = [r["epoch"], mean(r.get("train_loss", {})), mean(r.get("valid_loss", {}))]
            cols += [r.get("valid_auc", {}).get(t, float("nan")) for t in tasks]
            f.write(" ".join(str(c) for c in cols) + "\n")
    style = f"with linespoints lc {i + 1} pt {i + 1} title '{label}'"
    loss.append(f"'{data}' using 1:2 {style}")
    vloss.append(f"'{data}' using 1:3 {style}")
    for k, t in enumerate(tasks):
        if t not in all_tasks:
            all_tasks.append(t)
        auc.setdefault(t, []).append(f"'{data}' using 1:{4 + k} {style}")
panels = 2 + len(all_tasks)
with open(os.path.join(tmp, "plots.gp"), "w") as f:
    f.write(f"set terminal pngcairo size {380 * panels},360 font ',9'\n")
    f.write(f"set output '{os.environ['PLOT_OUT']}'\n")
    f.write(f"set multiplot layout 1,{panels}\nset key top right\n")
    f.write("set title 'train loss (mean over tasks)'\nplot " + ", ".join(loss) + "\n")
    f.write("set title 'valid loss (mean over tasks)'\nplot " + ", ".join(vloss) + "\n")
    f.write("set key bottom right\n")
    for t in all_tasks:
        f.write(f"set title 'valid AUC: {t}'\nplot " + ", ".join(auc[t]) + "\n")
    f.write("unset multiplot\n")
PYTHON

gnuplot <<GNUPLOT
set xlabel 'epoch'
set grid
set xtics 1
set datafile missing 'nan'
load '$tmp/plots.gp'
GNUPLOT
echo "plot.sh: wrote $out"
