#!/usr/bin/python3
"""Compare the /params of two mtl_dist checkpoints.

usage: compare_params.py A.h5 B.h5 [--tol X]

Without --tol (or --tol 0) the parameters must be bit-identical; with --tol X
every element must agree within X (absolute). Both files must hold the same
tensors with the same shapes and dtypes. Prints the max abs difference (and
the tensor where it occurs); exits 0 when they agree, 1 when they do not or a
file cannot be read (2: bad command line).
"""
import argparse
import sys

import h5py
import numpy as np


def load_params(path):
    out = {}
    with h5py.File(path, "r") as f:
        if "params" not in f:
            raise ValueError(f"{path}: no /params group (not an mtl_dist checkpoint?)")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f["params"].visititems(visit)
    if not out:
        raise ValueError(f"{path}: /params is empty")
    return out


def main():
    ap = argparse.ArgumentParser(description="compare /params of two checkpoints")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=0.0,
                    help="max abs difference allowed (default 0: bit-identical)")
    args = ap.parse_args()
    try:
        pa, pb = load_params(args.a), load_params(args.b)
    except (OSError, ValueError) as e:
        print(f"compare_params: {e}", file=sys.stderr)
        return 1

    ok = True
    if pa.keys() != pb.keys():
        only_a = sorted(pa.keys() - pb.keys())
        only_b = sorted(pb.keys() - pa.keys())
        print(f"different tensors: only in A {only_a[:5]}, only in B {only_b[:5]}")
        ok = False
    max_diff, worst, n_diff, n_total = 0.0, None, 0, 0
    for name in sorted(pa.keys() & pb.keys()):
        a, b = pa[name], pb[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            print(f"{name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
            ok = False
            continue
        n_total += a.size
        if args.tol == 0:
            # bit-identical: also tells -0.0 from 0.0 and compares NaN payloads
            same = a.view(np.uint8).reshape(a.size, -1) == b.view(np.uint8).reshape(b.size, -1)
            n_diff += int(np.count_nonzero(~same.all(axis=1)))
        if a.size == 0:
            continue
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        nan_mismatch = np.isnan(fa) != np.isnan(fb)
        d = np.abs(fa - fb)
        d[np.isnan(fa) & np.isnan(fb)] = 0.0
        d[nan_mismatch] = np.inf
        m = float(np.max(d))
        if args.tol > 0:
            n_diff += int(np.count_nonzero(d > args.tol))
        if m > max_diff or worst is None:
            max_diff, worst = m, name
    mode = "bit-identical" if args.tol == 0 else f"tol {args.tol:g}"
    print(f"max abs diff {max_diff:.6g} (in {worst}); {n_diff} of {n_total} values differ ({mode})")
    if n_diff:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
