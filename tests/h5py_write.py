#!/usr/bin/python3
"""Write an mtl_dist dataset with h5py, the way a user's script would.

Usage: h5py_write.py OUT.h5 [--rows N] [--seed S] [--sparse-cols S]
                             [--dense-cols D] [--tasks T] [--no-weights]
                             [--names vlen-utf8|vlen-ascii|fixed] [--bad KIND]
                             [--numpy-defaults] [--sparse-dtype T] [--dense-dtype T]
                             [--labels-dtype T] [--weights-dtype T]
                             [--compression gzip|lzf|blosc|bitshuffle|lz4|bzip2|zstd|none]

Datasets are chunked and gzip-compressed, names are variable-length UTF-8
strings (unless --names says otherwise), as documented in data/README.md.
Ids are int32 and values float32 unless --numpy-defaults (numpy's own int64
ids and float64 values, no casts) or --*-dtype (a numpy dtype name: uint8,
int64, float16, float64, bool, ...) say otherwise. Labels of a non-float
dtype cannot hold NaN: the rows that would miss a label get the formula's 0/1.
--compression picks h5py's filter: gzip (with shuffle, the default), lzf
(h5py's own), blosc, bitshuffle, lz4, bzip2 (python3-hdf5plugin's filter
options; plain filter ids when it is not installed), zstd (filter 32015,
which no Debian package provides: h5py cannot compress with it, so the chunks
are stored through write_direct_chunk as if compressed, and the reader must
name the missing filter), none.
Values follow closed formulas so a C test can recompute them (row i, col j):

  vocab_sizes[j] = 5 + 3*j
  sparse[i, j]   = (i*7 + j*3 + seed) % vocab_sizes[j]
  dense[i, j]    = (i % 97) * 0.5 - j
  labels[i, t]   = NaN if (i*T + t) % 11 == 5 else float((i + t + seed) % 2)
  weights[i]     = 0.5 + (i % 4) * 0.25
  names          = "cat<j>", "num<j>" (the first one "größe<0>" for UTF-8),
                   "task<t>"

--sparse-cols 0 / --dense-cols 0 omit /sparse or /dense; pass
--keep-empty to write them with 0 columns instead.

--bad KIND makes a file the reader must reject:
  sparse-range   /sparse row 17 column 1 = vocab_sizes[1]
  sparse-neg     /sparse row 3 column 0 = -1
  label-rows     /labels has one more row than the others
  sparse-float   /sparse stored as float64 (ids must be integers)
  sparse-huge    /sparse stored as int64, row 5 column 1 = 2**40 (beyond int32)
  dense-overflow /dense stored as float64, row 6 column 1 = 1e39 (beyond float32)
  sparse-rank1   /sparse is 1-D
  weights-rank2  /weights is [N, 1]
  labels-missing no /labels
  no-rows        every dataset has 0 rows
  dense-nan      /dense row 5 column 1 = NaN
  dense-inf      /dense row 6 column 0 = +Inf
  label-inf      /labels row 7 column 0 = -Inf
  weights-nan    /weights row 8 = NaN
  weights-neg    /weights row 9 = -1
  vocab-zero     vocab_sizes[1] = 0
  vocab-missing  /sparse has no vocab_sizes attribute
  vocab-float    vocab_sizes stored as float64
  names-len      /dense names has one entry too few
  names-missing  /labels has no names attribute
  names-int      /dense names are integers
  labels-group   /labels is a group, not a dataset
  groups-rows    /groups has N - 1 rows
  groups-float   /groups stored as float64 (group ids are integers)
--groups writes /groups int64 [N]: groups[i] = (i % 7) * 2**40 (beyond int32).
"""
import argparse
import sys

import h5py
import numpy as np

try:
    import hdf5plugin
except ImportError:  # the same filters by id and options
    hdf5plugin = None

BAD = [
    "sparse-range", "sparse-neg", "label-rows", "sparse-float", "sparse-huge", "dense-overflow",
    "sparse-rank1", "weights-rank2", "labels-missing", "no-rows", "dense-nan", "dense-inf",
    "label-inf", "weights-nan", "weights-neg", "vocab-zero", "vocab-missing", "vocab-float",
    "names-len", "names-missing", "names-int", "labels-group", "groups-rows", "groups-float",
]


def plugin(name, filter_id, opts):
    """h5py arguments of a python3-hdf5plugin filter (its class `name`)."""
    if hdf5plugin is not None:
        return dict(getattr(hdf5plugin, name)())
    return dict(compression=filter_id, compression_opts=opts)


COMPRESSION = {
    "gzip": lambda: dict(compression="gzip", compression_opts=4, shuffle=True),
    "lzf": lambda: dict(compression="lzf"),
    "blosc": lambda: plugin("Blosc", 32001, (0, 0, 0, 0, 5, 1, 1)),
    "bitshuffle": lambda: plugin("Bitshuffle", 32008, (0, 2)),
    "lz4": lambda: plugin("LZ4", 32004, (0,)),
    "bzip2": lambda: plugin("BZip2", 307, (9,)),
    "zstd": lambda: dict(compression=32015, compression_opts=(3,), allow_unknown_filter=True),
}


def write_unpluggable(f, name, data, chunks):
    """A dataset whose chunks claim a filter this HDF5 lacks (zstd). h5py
    marks filters optional and stores the chunks it cannot compress as they
    are, which any reader reads; write_direct_chunk stores them as filtered."""
    ds = f.create_dataset(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                          **COMPRESSION["zstd"]())
    for r0 in range(0, len(data), chunks[0]):
        block = np.zeros(chunks, dtype=data.dtype)
        part = data[r0:r0 + chunks[0]]
        block[:len(part)] = part
        ds.id.write_direct_chunk((r0,) + (0,) * (data.ndim - 1), block.tobytes())
    return ds


def make_names(kind, prefix, n, first_utf8):
    names = [f"{prefix}{j}" for j in range(n)]
    if first_utf8 and n > 0 and kind == "vlen-utf8":
        names[0] = "größe0"
    if kind == "vlen-utf8":
        return np.array(names, dtype=h5py.string_dtype("utf-8"))
    if kind == "vlen-ascii":
        return np.array([s.encode("ascii") for s in names], dtype=h5py.string_dtype("ascii"))
    return np.array([s.encode("ascii") for s in names], dtype=f"S{max(map(len, names), default=1)}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparse-cols", type=int, default=3)
    p.add_argument("--dense-cols", type=int, default=2)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--no-weights", action="store_true")
    p.add_argument("--groups", action="store_true")
    p.add_argument("--keep-empty", action="store_true")
    p.add_argument("--names", choices=["vlen-utf8", "vlen-ascii", "fixed"], default="vlen-utf8")
    p.add_argument("--bad", choices=BAD)
    p.add_argument("--numpy-defaults", action="store_true")
    for k in ("sparse", "dense", "labels", "weights"):
        p.add_argument(f"--{k}-dtype")
    p.add_argument("--compression", choices=list(COMPRESSION) + ["none"], default="gzip")
    a = p.parse_args()

    N, S, D, T, seed, bad = a.rows, a.sparse_cols, a.dense_cols, a.tasks, a.seed, a.bad
    if bad == "no-rows":
        N = 0
    i = np.arange(N, dtype=np.int64)[:, None]
    vocab = np.array([5 + 3 * j for j in range(S)], dtype=np.int64)
    sparse = ((i * 7 + np.arange(S)[None, :] * 3 + seed) % np.maximum(vocab, 1)).astype(np.int32)
    dense = ((i % 97) * 0.5 - np.arange(D)[None, :]).astype(np.float32)
    t = np.arange(T)[None, :]
    labels = ((i + t + seed) % 2).astype(np.float32)
    labels[(i * T + t) % 11 == 5] = np.nan
    weights = (0.5 + (np.arange(N) % 4) * 0.25).astype(np.float32)
    if a.numpy_defaults:  # what numpy makes without casts
        sparse, dense, labels, weights = (sparse.astype(np.int64), dense.astype(np.float64),
                                          labels.astype(np.float64), weights.astype(np.float64))
    if a.sparse_dtype:
        sparse = sparse.astype(a.sparse_dtype)
    if a.dense_dtype:
        dense = dense.astype(a.dense_dtype)
    if a.labels_dtype:
        want = np.dtype(a.labels_dtype)
        if want.kind != "f":
            labels = np.nan_to_num(labels, nan=0.0)
            labels[(i * T + t) % 11 == 5] = ((i + t + seed) % 2)[(i * T + t) % 11 == 5]
        labels = labels.astype(want)
    if a.weights_dtype:
        weights = weights.astype(a.weights_dtype)

    if bad == "sparse-range":
        sparse[17, 1] = vocab[1]
    if bad == "sparse-neg":
        sparse[3, 0] = -1
    if bad == "dense-nan":
        dense[5, 1] = np.nan
    if bad == "dense-inf":
        dense[6, 0] = np.inf
    if bad == "label-inf":
        labels[7, 0] = -np.inf
    if bad == "weights-nan":
        weights[8] = np.nan
    if bad == "weights-neg":
        weights[9] = -1.0
    if bad == "vocab-zero":
        vocab[1] = 0
    if bad == "sparse-float":
        sparse = sparse.astype(np.float64)
    if bad == "sparse-huge":
        sparse = sparse.astype(np.int64)
        sparse[5, 1] = 2**40
    if bad == "dense-overflow":
        dense = dense.astype(np.float64)
        dense[6, 1] = 1e39
    if bad == "sparse-rank1":
        sparse = sparse[:, 0].copy()
    if bad == "weights-rank2":
        weights = weights[:, None].copy()
    if bad == "label-rows":
        labels = np.concatenate([labels, labels[:1]], axis=0)

    # h5py refuses to chunk an empty dataset, so only compress non-empty ones.
    def create(f, name, data):
        if data.size > 0 and a.compression == "zstd":
            return write_unpluggable(f, name, data, (min(len(data), 128),) + data.shape[1:])
        if data.size > 0 and a.compression != "none":
            chunks = (min(len(data), 128),) + data.shape[1:]
            return f.create_dataset(name, data=data, chunks=chunks, **COMPRESSION[a.compression]())
        return f.create_dataset(name, data=data)

    with h5py.File(a.out, "w") as f:
        if S > 0 or a.keep_empty:
            ds = create(f, "sparse", sparse)
            if bad != "vocab-missing":
                ds.attrs["vocab_sizes"] = vocab.astype(np.float64) if bad == "vocab-float" else vocab
            ds.attrs["names"] = make_names(a.names, "cat", S, True)
        if D > 0 or a.keep_empty:
            ds = create(f, "dense", dense)
            if bad == "names-len":
                ds.attrs["names"] = make_names(a.names, "num", D - 1, False)
            elif bad == "names-int":
                ds.attrs["names"] = np.arange(D, dtype=np.int64)
            else:
                ds.attrs["names"] = make_names(a.names, "num", D, False)
        if bad == "labels-group":
            f.create_group("labels")
        elif bad != "labels-missing":
            ds = create(f, "labels", labels)
            if bad != "names-missing":
                ds.attrs["names"] = make_names(a.names, "task", T, False)
        if not a.no_weights:
            create(f, "weights", weights)
        if a.groups or bad in ("groups-rows", "groups-float"):
            groups = (np.arange(N) % 7) * 2**40
            if bad == "groups-rows":
                groups = groups[:-1]
            create(f, "groups", groups.astype(np.float64 if bad == "groups-float" else np.int64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
