#!/usr/bin/python3
"""Write copies of a good mtl_dist dataset, each with one defect the reader
must reject (data/README.md lists the rules).

usage: make_bad_h5.py GOOD.h5 OUT_DIR [--row R]

Writes OUT_DIR/<kind>.h5 for every kind below and prints "<kind> <detail>"
lines (the detail is what the error message should name). R (default: a row
in the second half, i.e. the last rank's shard on 2 ranks) is the row made
bad by the per-row kinds.

  sparse-float64  /sparse stored as float64 (ids must be integers)
  sparse-huge     /sparse stored as int64, row R, column 2 = 2**40 (beyond int32)
  dense-overflow  /dense stored as float64, row R, column 1 = 1e39 (beyond float32)
  dense-rank1     /dense is 1-D [N] instead of [N, D]
  labels-rank3    /labels is [N, T, 1]
  n-mismatch      /dense has one row fewer than /labels
  sparse-vocab    /sparse row R, column 2 = vocab_sizes[2] (one past the end)
  sparse-neg      /sparse row R, column 0 = -1
  dense-nan       /dense row R, column 1 = NaN
  dense-inf       /dense row R, column 0 = +Inf
  labels-inf      /labels row R, column 0 = -Inf
  no-labels       /labels missing
  no-vocab        /sparse without its vocab_sizes attribute
  zero-rows       every dataset has 0 rows
  lzf             a good file, /sparse compressed with h5py's LZF (loads where
                  hdf5-plugin-lzf is installed; a test disables HDF5's plugins)
"""
import argparse
import os

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("good")
    ap.add_argument("out_dir")
    ap.add_argument("--row", type=int, default=None)
    a = ap.parse_args()
    with h5py.File(a.good, "r") as f:
        data = {k: (f[k][()], dict(f[k].attrs)) for k in f if isinstance(f[k], h5py.Dataset)}
    n = data["labels"][0].shape[0]
    row = a.row if a.row is not None else n - n // 4
    os.makedirs(a.out_dir, exist_ok=True)

    def write(kind, detail, change, filters=None):
        d = {k: (v.copy(), dict(at)) for k, (v, at) in data.items()}
        change(d)
        with h5py.File(os.path.join(a.out_dir, kind + ".h5"), "w") as f:
            for k, (v, at) in d.items():
                ds = f.create_dataset(k, data=v, **(filters or {}).get(k, {}))
                for ak, av in at.items():
                    ds.attrs[ak] = av
        print(kind, detail)

    def setv(name, r, c, value):
        def change(d):
            d[name][0][r, c] = value
        return change

    def retype(name, dtype):
        def change(d):
            d[name] = (d[name][0].astype(dtype), d[name][1])
        return change

    def reshape(name, fn):
        def change(d):
            d[name] = (fn(d[name][0]), d[name][1])
        return change

    vocab2 = int(data["sparse"][1]["vocab_sizes"][2])
    write("sparse-float64", "float64", retype("sparse", np.float64))

    def big(name, c, value, dtype):
        def change(d):
            retype(name, dtype)(d)
            d[name][0][row, c] = value
        return change
    write("sparse-huge", f"row {row}", big("sparse", 2, 2**40, np.int64))
    write("dense-overflow", f"row {row}", big("dense", 1, 1e39, np.float64))
    write("lzf", "filter 32000", lambda d: None,
          {"sparse": dict(chunks=True, compression="lzf")})
    write("dense-rank1", "rank 1", reshape("dense", lambda x: x[:, 0].copy()))
    write("labels-rank3", "rank 3", reshape("labels", lambda x: x[:, :, None].copy()))
    write("n-mismatch", f"{n} rows", reshape("dense", lambda x: x[:-1].copy()))
    write("sparse-vocab", f"row {row}", setv("sparse", row, 2, vocab2))
    write("sparse-neg", f"row {row}", setv("sparse", row, 0, -1))
    write("dense-nan", f"row {row}", setv("dense", row, 1, np.nan))
    write("dense-inf", f"row {row}", setv("dense", row, 0, np.inf))
    write("labels-inf", f"row {row}", setv("labels", row, 0, -np.inf))
    write("no-labels", "/labels", lambda d: d.pop("labels"))

    def no_vocab(d):
        d["sparse"][1].pop("vocab_sizes")
    write("no-vocab", "vocab_sizes", no_vocab)

    def zero(d):
        for k in d:
            d[k] = (d[k][0][:0].copy(), d[k][1])
    write("zero-rows", "no rows", zero)


if __name__ == "__main__":
    main()
