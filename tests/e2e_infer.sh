#!/usr/bin/env bash
# The README's libmtl_infer example: `cmake --install` into a prefix in the
# build tree, the program compiled from the README's very text with
# `pkg-config --cflags --libs mtl_infer`, run on test rows of a trained
# model; its output must name the --predict-out columns and match
# `mtl_dist predict` on the same rows. The library must not pull in MPI.
set -euo pipefail
BIN=${MTL_BIN:?} SRC=${MTL_SRC:?}
PY=${PYTHON3:-/usr/bin/python3}
CC=${CC:-cc}
TOL=1e-6
ROWS=300
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_infer.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== install into $WORK/prefix =="
cmake --install "$BIN" --prefix "$WORK/prefix" >/dev/null
export PKG_CONFIG_PATH=$WORK/prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs mtl_infer)
echo "pkg-config --cflags --libs mtl_infer: $flags"

echo "== the README's example =="
awk '/<!-- example: score.c -->/ {on = 1; next} on && /^```c/ {code = 1; next}
     code && /^```/ {exit} code {print}' "$SRC/README.md" >"$WORK/score.c"
[ -s "$WORK/score.c" ] || { echo "FAIL: no example program in README.md"; exit 1; }
echo "$(wc -l <"$WORK/score.c") lines"
# shellcheck disable=SC2086 # word splitting of the flags is intended
"$CC" -std=c11 -Wall -Wextra -Werror ${MTL_EXAMPLE_CFLAGS:-} "$WORK/score.c" $flags -o "$WORK/score"
export LD_LIBRARY_PATH=$WORK/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ldd "$WORK/score" | grep -i -e mpi -e open-pal; then
  echo "FAIL: the program links MPI through libmtl_infer"
  exit 1
fi

echo "== a trained model, and mtl_dist predict =="
"$BIN/mtl_prep" synth --kind ctr --rows 4000 --sparse-fields 6 --vocab 40 --dense-fields 3 \
  --seed 3 --output-dir "$WORK/data" >/dev/null
"$BIN/mtl_dist" --model ple --batch-norm true --train "$WORK/data/train.h5" --epochs 1 \
  --batch-size 256 --checkpoint-dir "$WORK/ck" --quiet
ck=$(ls "$WORK"/ck/ckpt-*.h5 | sort | tail -1)
"$BIN/mtl_dist" predict --checkpoint "$ck" --data "$WORK/data/test.h5" \
  --predict-out "$WORK/pred.h5" --quiet

echo "== the example scores $ROWS test rows =="
"$PY" - "$WORK/data/test.h5" "$ROWS" >"$WORK/rows.txt" <<'EOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
n = int(sys.argv[2])
sp, dn = f["sparse"][:n], f["dense"][:n]
for i in range(n):
    print(" ".join([str(int(v)) for v in sp[i]] + ["%.9g" % v for v in dn[i]]))
EOF
"$WORK/score" "$ck" <"$WORK/rows.txt" >"$WORK/out.txt"
"$PY" - "$WORK/pred.h5" "$WORK/out.txt" "$ROWS" "$TOL" <<'EOF'
import sys, h5py, numpy as np
p = h5py.File(sys.argv[1], "r")["predictions"]
names = [n.decode() if isinstance(n, bytes) else str(n) for n in p.attrs["names"]]
lines = open(sys.argv[2]).read().splitlines()
n, tol = int(sys.argv[3]), float(sys.argv[4])
if lines[0].split() != names:
    sys.exit(f"FAIL: header {lines[0]!r}, want {' '.join(names)}")
got = np.array([[float(v) for v in l.split()] for l in lines[1:]])
want = p[:n].astype(np.float64)
if got.shape != want.shape:
    sys.exit(f"FAIL: {got.shape} values, want {want.shape}")
diff = np.abs(got - want).max()
print(f"{n} rows x {len(names)} outputs ({' '.join(names)}): max abs diff {diff:.3g}")
sys.exit(0 if diff <= tol else f"FAIL: max abs diff {diff} > {tol}")
EOF
echo "e2e_infer: all checks passed"
