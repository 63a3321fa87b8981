#!/usr/bin/python3
"""Write an mtl_dist dataset with multi-valued fields (/multi, data/README.md)
with h5py, as a user's script would.

Usage: h5py_multi.py OUT.h5 [--rows N] [--seed S] [--layout multi|sparse|single]
                            [--bad KIND] [--groups G]
                            [--task-weights real|01] [--zero-as-nan]

--layout multi (default): /sparse with one field "user" (vocab 30), /dense
  with 2 columns, 2 tasks, and two multi-valued fields:
    /multi/genres  sum pooling,  vocab 12, lists of 0..4 ids (numpy int64 ids)
    /multi/tags    mean pooling, vocab 50, lists of 0..6 ids (int32 ids)
  about a fifth of the rows have an empty list in each field.
--layout sparse / single: the same-length-1 comparison of issue 14. Both have
  /sparse "user" and /dense; "sparse" adds a second /sparse column "item"
  (vocab 40), "single" the same ids as /multi/item, sum pooling, lists of
  length 1. The model sees the same input row in both.
Labels follow the features (a click task and a purchase task), so a model
learns something.

--groups G adds /groups int64 [N]: G user ids (for GAUC), drawn from their own
  generator so the rest of the file is the same with or without them.
--task-weights adds /weights float32 [N, 2], one weight per task, from their
  own generator (the rest of the file is the same with or without them):
    real  click weights in [0.5, 2) with a tenth 0; buy weights 1 on clicked
          rows and 0 elsewhere (a CVR loss over clicked impressions only);
    01    click weights 1 with a sixth 0; buy as for real.
--zero-as-nan (with --task-weights 01): no /weights; instead the labels whose
  weight would be 0 are NaN (missing), which drops the same rows from each
  task's loss: training must give the same model.
--bad KIND writes a file the reader must reject (--layout multi):
  nonmonotone   /multi/genres/offsets: row 7's end below its start
  last          /multi/genres/offsets[N] != len(ids)
  first         /multi/tags/offsets[0] = 1
  id-range      /multi/tags/ids: an id of row 11 equal to vocab_size
  id-negative   /multi/genres/ids: an id of row 3 is -1
  no-pooling    /multi/tags without the pooling attribute
  offsets-rows  /multi/genres/offsets has N entries (not N + 1)
  no-multi      no /multi at all (valid alone, but not as --valid of a file with it)
"""
import argparse

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--rows", type=int, default=600)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--layout", default="multi", choices=["multi", "sparse", "single"])
ap.add_argument("--bad", default="")
ap.add_argument("--groups", type=int, default=0)
ap.add_argument("--task-weights", default="", choices=["", "real", "01"])
ap.add_argument("--zero-as-nan", action="store_true")
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
N = a.rows


def lists(vocab, max_len, empty):
    lens = rng.integers(1, max_len + 1, size=N)
    lens[rng.random(N) < empty] = 0
    off = np.zeros(N + 1, dtype=np.int64)
    off[1:] = np.cumsum(lens)
    ids = rng.integers(0, vocab, size=int(off[-1]))
    return off, ids


user = rng.integers(0, 30, size=N)
dense = rng.normal(size=(N, 2)).astype(np.float32)
score = 0.8 * dense[:, 0] + 0.3 * (user % 3 == 0)
with h5py.File(a.out, "w") as f:
    if a.layout == "multi":
        g_off, g_ids = lists(12, 4, 0.2)
        t_off, t_ids = lists(50, 6, 0.2)
        # genres 0..3 and tags below 10 raise the click rate
        for i in range(N):
            score[i] += 0.5 * np.sum(g_ids[g_off[i]:g_off[i + 1]] < 4)
            t = t_ids[t_off[i]:t_off[i + 1]]
            score[i] += 1.0 * (np.mean(t < 10) if len(t) else 0.0)
        if a.bad == "nonmonotone":
            g_off[8] = g_off[7] - 1
        if a.bad == "last":
            g_off[-1] -= 1
        if a.bad == "first":
            t_off[0] = 1
        if a.bad == "id-range":
            t_ids[t_off[11]] = 50
            assert t_off[12] > t_off[11]
        if a.bad == "id-negative":
            g_ids[g_off[3]] = -1
            assert g_off[4] > g_off[3]
        if a.bad == "offsets-rows":
            g_off = g_off[:-1]
        fields = [("genres", g_off, g_ids.astype(np.int64), 12, "sum"),
                  ("tags", t_off, t_ids.astype(np.int32), 50, "mean")]
        for name, off, ids, vocab, pooling in fields if a.bad != "no-multi" else []:
            g = f.create_group(f"multi/{name}")
            g.create_dataset("offsets", data=off)
            g.create_dataset("ids", data=ids, chunks=True, compression="gzip")
            g.attrs["vocab_size"] = np.int64(vocab)
            if not (a.bad == "no-pooling" and name == "tags"):
                g.attrs["pooling"] = pooling
        sparse = user[:, None]
        names = ["user"]
    else:
        item = rng.integers(0, 40, size=N)
        score += 0.6 * (item < 10)
        if a.layout == "sparse":
            sparse = np.stack([user, item], axis=1)
            names = ["user", "item"]
        else:
            sparse = user[:, None]
            names = ["user"]
            g = f.create_group("multi/item")
            g.create_dataset("offsets", data=np.arange(N + 1, dtype=np.int64))
            g.create_dataset("ids", data=item.astype(np.int32))
            g.attrs["vocab_size"] = np.int64(40)
            g.attrs["pooling"] = "sum"
    d = f.create_dataset("sparse", data=sparse.astype(np.int32))
    d.attrs["names"] = names
    d.attrs["vocab_sizes"] = np.array([30, 40][: len(names)], dtype=np.int64)
    d = f.create_dataset("dense", data=dense)
    d.attrs["names"] = ["x0", "x1"]
    p = 1 / (1 + np.exp(-(score - np.mean(score))))
    click = (rng.random(N) < p).astype(np.float32)
    buy = (click * (rng.random(N) < p)).astype(np.float32)
    labels = np.stack([click, buy], axis=1)
    if a.task_weights:
        wr = np.random.default_rng(a.seed + 2000)
        if a.task_weights == "real":
            w_click = wr.uniform(0.5, 2.0, size=N)
            w_click[wr.random(N) < 0.1] = 0.0
        else:
            w_click = np.where(wr.random(N) < 1 / 6, 0.0, 1.0)
        w = np.stack([w_click, click], axis=1).astype(np.float32)
        if a.zero_as_nan:
            labels[w == 0] = np.nan
        else:
            f.create_dataset("weights", data=w)
    d = f.create_dataset("labels", data=labels)
    d.attrs["names"] = ["click", "buy"]
    if a.groups > 0:
        f.create_dataset("groups", data=np.random.default_rng(a.seed + 1000).integers(
            0, a.groups, size=N, dtype=np.int64))
