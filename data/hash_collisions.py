#!/usr/bin/env python3
"""Collision rate of the hashed fields of an mtl_prep config on a CSV file.

    python3 data/hash_collisions.py CONFIG.ini DATA.csv[.gz] [--buckets N]

For every column listed in the config's [columns] hash_buckets (or, with
--buckets N, every categorical column hashed into N buckets) it hashes each
distinct raw value exactly as mtl_prep does (include/mtl/prep.h, mtl_hash_id):

    id = xxh3_64(value, seed=xxh3_64(column name)) mod N

and prints, per field and overall, the distinct values, the buckets they
occupy, and the collision rate: the fraction of distinct values that share
their bucket with another value of the same field (and the fraction of rows
holding such a value). Needs python3-xxhash (Debian), an independent
implementation of the hash, so the output doubles as a cross-check of the C
code. Plain comma splitting and trimming, as mtl_prep reads the UCI files.
"""
import argparse
import collections
import configparser
import gzip
import sys

import xxhash


def items(value):
    return [v.strip() for v in value.replace("\n", " ").split(",") if v.strip()]


def bucket(column, value, n):
    seed = xxhash.xxh3_64_intdigest(column.encode())
    return xxhash.xxh3_64_intdigest(value.encode(), seed=seed) % n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("csv")
    ap.add_argument("--buckets", type=int, help="hash every categorical column into N buckets")
    a = ap.parse_args()
    cp = configparser.ConfigParser(inline_comment_prefixes=None, interpolation=None)
    cp.read(a.config)
    cols = cp["columns"]
    names = items(cols["names"])
    if a.buckets:
        hashed = {c: a.buckets for c in items(cols.get("categorical", ""))}
    else:
        hashed = {}
        for it in items(cols.get("hash_buckets", "")):
            name, n = it.rsplit(":", 1)
            hashed[name.strip()] = int(n)
    if not hashed:
        sys.exit(f"{a.config}: no hash_buckets in [columns] (or give --buckets N)")
    index = {c: names.index(c) for c in hashed}
    counts = {c: collections.Counter() for c in hashed}
    opener = gzip.open if a.csv.endswith(".gz") else open
    with opener(a.csv, "rt", encoding="utf-8", errors="surrogateescape") as f:
        for i, line in enumerate(f):
            if (i == 0 and line.startswith("|")) or not line.strip():
                continue
            fields = line.rstrip("\r\n").split(",")
            for c, j in index.items():
                counts[c][fields[j].strip()] += 1
    tot_values = tot_coll = tot_rows = tot_coll_rows = 0
    print(f"{'field':<20} {'buckets':>10} {'values':>8} {'used':>8} {'colliding':>9} "
          f"{'rate':>7} {'row rate':>8}")
    for c, n in hashed.items():
        per_bucket = collections.defaultdict(list)
        for v in counts[c]:
            per_bucket[bucket(c, v, n)].append(v)
        coll = [v for vs in per_bucket.values() if len(vs) > 1 for v in vs]
        rows = sum(counts[c].values())
        coll_rows = sum(counts[c][v] for v in coll)
        nv = len(counts[c])
        print(f"{c:<20} {n:>10} {nv:>8} {len(per_bucket):>8} {len(coll):>9} "
              f"{len(coll) / nv:>7.2%} {coll_rows / rows:>8.2%}")
        tot_values += nv
        tot_coll += len(coll)
        tot_rows += rows
        tot_coll_rows += coll_rows
    print(f"{'overall':<20} {'':>10} {tot_values:>8} {'':>8} {tot_coll:>9} "
          f"{tot_coll / tot_values:>7.2%} {tot_coll_rows / tot_rows:>8.2%}")


if __name__ == "__main__":
    main()
