#!/usr/bin/env bash
# Learning curves from training runs' --metrics-out JSON lines, with gnuplot:
# train loss and valid loss (the mean over tasks) and valid AUC (a panel per
# task), per epoch, one line per run, labelled by the file's name (e.g.
# mmoe_seed1.jsonl -> "mmoe seed1").
#
#   bash launch/plot.sh RUN.jsonl [MORE.jsonl ...] -o OUT.png
#
# --bars: instead, a bar chart of the final test AUC per task and model, the
# mean over the runs of a model (file names MODEL-SEED.jsonl or
# MODEL_seedN.jsonl, as launch/quality.sh writes them): the model table as a
# picture.
#   bash launch/plot.sh --bars build/quality/census-*.jsonl -o auc.png
#
# Needs gnuplot (Debian: gnuplot-nox) and python3.
set -euo pipefail
out=""
bars=0
runs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    --bars) bars=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) runs+=("$1") ;;
  esac
  shift
done
if [ -z "$out" ] || [ ${#runs[@]} -eq 0 ]; then
  echo "usage: launch/plot.sh [--bars] RUN.jsonl [MORE.jsonl ...] -o OUT.png" >&2
  exit 2
fi
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (Debian: gnuplot-nox)" >&2; exit 1; }
PY=$(command -v /usr/bin/python3 || command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# one data file per run (epoch, mean train loss, mean valid loss, AUC per
# task) and the gnuplot commands that draw them
PLOT_OUT=$out BARS=$bars "$PY" - "$tmp" "${runs[@]}" <<'PYTHON'
import json, os, re, sys
tmp, runs = sys.argv[1], sys.argv[2:]
if os.environ["BARS"] == "1":
    auc = {}  # model -> task -> [AUC per run]
    for path in runs:
        model = re.sub(r"([-_]seed)?[-_]?\d+$", "", os.path.basename(path).rsplit(".", 1)[0])
        finals = [json.loads(l) for l in open(path) if '"final"' in l]
        if not finals or "test_auc" not in finals[-1]:
            sys.exit(f"plot.sh: {path}: no final line with test_auc (trained with --test?)")
        for t, v in finals[-1]["test_auc"].items():
            auc.setdefault(model, {}).setdefault(t, []).append(v)
    tasks = sorted({t for m in auc.values() for t in m})
    lo = min(min(v) for m in auc.values() for v in m.values())
    with open(os.path.join(tmp, "bars.dat"), "w") as f:
        f.write("model " + " ".join(tasks) + "\n")
        for m, per in auc.items():
            f.write(m.replace(" ", "_") + " " + " ".join(
                str(sum(per.get(t, [float("nan")])) / len(per.get(t, [1]))) for t in tasks) + "\n")
    with open(os.path.join(tmp, "plots.gp"), "w") as f:
        f.write(f"set terminal pngcairo size {max(500, 120 * len(auc) * len(tasks))},380 font ',9'\n")
        f.write(f"set output '{os.environ['PLOT_OUT']}'\nset termoption noenhanced\n")
        f.write(f"unset xlabel\nset xrange [-0.6:{len(auc) - 0.4}]\n")
        f.write("set title 'test AUC per task (mean over seeds)'\nset style data histograms\n")
        f.write("set style histogram clustered gap 1\nset style fill solid 0.8 border -1\n")
        f.write(f"set yrange [{max(0.0, lo - 0.02):.3f}:*]\nset key top left\nset xtics scale 0\n")
        f.write(f"plot for [i=2:{1 + len(tasks)}] '{tmp}/bars.dat' using i:xtic(1) title columnheader(i)\n")
    sys.exit(0)
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
    f.write(f"set output '{os.environ['PLOT_OUT']}'\nset termoption noenhanced\n")
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
