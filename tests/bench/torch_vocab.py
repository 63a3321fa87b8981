#!/usr/bin/env python3
"""PyTorch reference for launch/bench-vocab.sh: mtl_dist's MMoE on one thread
with sparse embedding updates, on the same HDF5 file.

    python3 tests/bench/torch_vocab.py --train DIR/train.h5 [--embedding-dim 16]
        [--batch-size 1024] [--max-steps 60] [--warmup-steps 5] [--seed 1024]

Not a test and not a dependency of anything: it needs python3-torch (Debian)
and python3-h5py, and launch/bench-vocab.sh runs it only when `import torch`
works. It prints one JSON line like mtl_dist's final --metrics-out line:
steady_samples_per_sec (steps after the first --warmup-steps, as mtl_dist's
steady state excludes its first 5 steps), peak_rss_mb, steps, train_loss.

The model is mtl_dist's MMoE with its defaults (src/config.c,
src/models/experts.c, src/model.c):
  - input: per sparse field an embedding row (dim d), concatenated, then the
    dense features: [S*d + D];
  - 8 experts, each Dense(16) + ReLU; their first layers are one Linear, as
    mtl_dist fuses them into one GEMM;
  - per task a gate: Linear(in, 8) without bias, softmax; the task's input is
    the gate-weighted sum of the experts;
  - per task a tower: Dense(8) + ReLU, then Linear(8, 1) without bias plus a
    scalar bias (DeepCTR's PredictionLayer) started at the task's log-odds;
  - loss: sum over tasks of the mean binary cross-entropy over labelled rows;
  - init as Keras: weights glorot_normal (truncated normal, std
    sqrt(2/(fan_in+fan_out))/0.8796, cut at 2 std), biases 0, embeddings
    N(0, 1e-4^2);
  - nn.Embedding(sparse=True) + torch.optim.SparseAdam for the tables, Adam
    for the rest; lr 0.01, betas (0.9, 0.999), eps 1e-7 (Keras' and
    mtl_dist's defaults); L2 1e-5 on the embedding rows a step touches
    (lazy, like a sparse update: each unique row once per step).
mtl_dist's data-dependent init of hidden biases is left out: it costs one
forward pass at the start and changes nothing per step.
"""
import argparse
import json
import math
import resource
import time

import h5py
import numpy as np
import torch
from torch import nn


def glorot_(w, fan_in, fan_out):
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


class MMoE(nn.Module):
    def __init__(self, vocab_sizes, n_dense, n_tasks, dim, n_experts, expert_units, tower_units,
                 pos_rate):
        super().__init__()
        self.emb = nn.ModuleList(nn.Embedding(int(v), dim, sparse=True) for v in vocab_sizes)
        for e in self.emb:
            nn.init.normal_(e.weight, 0.0, 1e-4)
        in_dim = len(vocab_sizes) * dim + n_dense
        self.E, self.u = n_experts, expert_units
        self.experts = nn.Linear(in_dim, n_experts * expert_units)  # fused first layers
        with torch.no_grad():
            for k in range(n_experts):
                glorot_(self.experts.weight[k * expert_units:(k + 1) * expert_units], in_dim,
                        expert_units)
            self.experts.bias.zero_()
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts, bias=False) for _ in range(n_tasks))
        self.towers = nn.ModuleList(nn.Linear(expert_units, tower_units) for _ in range(n_tasks))
        self.heads = nn.ModuleList(nn.Linear(tower_units, 1, bias=False) for _ in range(n_tasks))
        self.head_bias = nn.Parameter(torch.tensor(
            [math.log(max(p, 1e-6) / max(1 - p, 1e-6)) for p in pos_rate], dtype=torch.float32))
        for g in self.gates:
            glorot_(g.weight, in_dim, n_experts)
        for t in self.towers:
            glorot_(t.weight, expert_units, tower_units)
            nn.init.zeros_(t.bias)
        for h in self.heads:
            glorot_(h.weight, tower_units, 1)

    def forward(self, sparse, dense):
        """sparse: [B, S] int64, dense: [B, D]. Returns logits [B, T] and the
        unique embedding rows of the step (for the L2 term)."""
        cols, touched = [], []
        for s, e in enumerate(self.emb):
            uniq, inv = torch.unique(sparse[:, s], return_inverse=True)
            rows = e(uniq)  # one sparse gradient row per unique id
            touched.append(rows)
            cols.append(rows[inv])
        x = torch.cat(cols + [dense], dim=1)
        h = torch.relu(self.experts(x)).view(-1, self.E, self.u)
        out = []
        for t in range(len(self.gates)):
            g = torch.softmax(self.gates[t](x), dim=1)
            mix = torch.bmm(g.unsqueeze(1), h).squeeze(1)
            z = torch.relu(self.towers[t](mix))
            out.append(self.heads[t](z).squeeze(1) + self.head_bias[t])
        return torch.stack(out, dim=1), touched


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--embedding-dim", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--max-steps", type=int, default=60)
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--num-experts", type=int, default=8)
    ap.add_argument("--expert-units", type=int, default=16)
    ap.add_argument("--tower-units", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--l2-embedding", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)

    with h5py.File(a.train, "r") as f:
        sparse = torch.from_numpy(f["sparse"][...].astype(np.int64))
        vocab = [int(v) for v in f["sparse"].attrs["vocab_sizes"]]
        dense = torch.from_numpy(f["dense"][...]) if "dense" in f else torch.zeros(len(sparse), 0)
        labels = torch.from_numpy(f["labels"][...])
    n, T = labels.shape
    pos = [float(torch.nanmean(labels[:, t])) for t in range(T)]
    model = MMoE(vocab, dense.shape[1], T, a.embedding_dim, a.num_experts, a.expert_units,
                 a.tower_units, pos)
    emb_params = [p for e in model.emb for p in e.parameters()]
    emb_ids = {id(p) for p in emb_params}
    dense_params = [p for p in model.parameters() if id(p) not in emb_ids]
    opt_sparse = torch.optim.SparseAdam(emb_params, lr=a.lr, betas=(0.9, 0.999), eps=1e-7)
    opt_dense = torch.optim.Adam(dense_params, lr=a.lr, betas=(0.9, 0.999), eps=1e-7)
    bce = nn.BCEWithLogitsLoss(reduction="sum")

    gen = torch.Generator().manual_seed(a.seed)
    order = torch.randperm(n, generator=gen)
    B, pos_in_epoch, t0, loss_v = a.batch_size, 0, None, float("nan")
    for step in range(a.max_steps):
        if step == a.warmup_steps:
            t0 = time.perf_counter()
        if pos_in_epoch + B > n:
            order, pos_in_epoch = torch.randperm(n, generator=gen), 0
        idx = order[pos_in_epoch:pos_in_epoch + B]
        pos_in_epoch += B
        y = labels[idx]
        logits, touched = model(sparse[idx], dense[idx])
        loss = 0.0
        for t in range(T):
            m = ~torch.isnan(y[:, t])
            cnt = int(m.sum())
            if cnt:
                loss = loss + bce(logits[m, t], y[m, t]) / cnt
        if a.l2_embedding > 0:
            loss = loss + a.l2_embedding * sum((r * r).sum() for r in touched)
        opt_sparse.zero_grad(set_to_none=True)
        opt_dense.zero_grad(set_to_none=True)
        loss.backward()
        opt_sparse.step()
        opt_dense.step()
        loss_v = float(loss)
    steady = None
    if t0 is not None and a.max_steps > a.warmup_steps:
        steady = (a.max_steps - a.warmup_steps) * B / (time.perf_counter() - t0)
    print(json.dumps({
        "final": True,
        "impl": f"pytorch {torch.__version__}",
        "steady_samples_per_sec": steady,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "steps": a.max_steps,
        "train_loss": loss_v,
        "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
