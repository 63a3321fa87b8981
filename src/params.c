#include "mtl/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mtl_params_add(mtl_params *p, const char *name, int64_t rows, int64_t cols, mtl_init init,
                   mtl_reg_kind reg, mtl_error *err) {
    if (rows <= 0 || cols <= 0)
        return mtl_fail(err, MTL_HERE, "%s: invalid shape [%lld x %lld]", name, (long long)rows,
                        (long long)cols);
    if (strlen(name) >= sizeof p->tensors[0].name)
        return mtl_fail(err, MTL_HERE, "%s: tensor name too long", name);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        mtl_tensor *t = realloc(p->tensors, (size_t)cap * sizeof *t);
        if (!t) return mtl_fail(err, MTL_HERE, "parameter registry: out of memory");
        p->tensors = t;
        p->cap = cap;
    }
    mtl_tensor *t = &p->tensors[p->n];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->rows = rows;
    t->cols = cols;
    t->size = (size_t)(rows * cols);
    t->init = init;
    t->reg = reg;
    t->is_embedding = reg == MTL_REG_EMBEDDING;
    t->shard_world = 1;
    t->state_world = 1;
    t->local_rows = rows;
    return p->n++;
}

/* Embedding tables, N(0, 1e-4) (DeepCTR's init_std), from a counter-based
 * generator: row r's values depend only on the tensor's key and r, so a rank
 * of a row-sharded table draws its own rows only, and every rank draws the
 * same replicated table without a broadcast. Box-Muller on 24-bit uniforms,
 * both values of a pair used (|z| < 5.8: the tail beyond is 1e-8). Measured
 * start-up before the first step with 24 M rows x 16: 18.6 s -> 6.6 s on one
 * rank (the rest is the kernel's first touch of the GBs of tables and Adam
 * state). */
static void init_embedding(float *x, const mtl_tensor *t, uint64_t key) {
    int64_t cols = t->cols, step = t->shard_world, first = t->shard_rank;
    for (int64_t local = 0; local < t->local_rows; local++) {
        uint64_t r = (uint64_t)(local * step + first); /* the row in the whole table */
        float *row = x + local * cols;
        for (int64_t j = 0; j < cols; j += 2) {
            uint64_t h = mtl_splitmix64(key, r * (uint64_t)cols + (uint64_t)j);
            float u1 = (float)((h >> 40) + 1) * 0x1.0p-24f; /* (0, 1]: a finite log */
            float u2 = (float)((h >> 16) & 0xffffff) * 0x1.0p-24f;
            float radius = 1e-4f * sqrtf(-2.0f * logf(u1)), angle = 6.2831853f * u2;
            row[j] = radius * cosf(angle);
            if (j + 1 < cols) row[j + 1] = radius * sinf(angle);
        }
    }
}

static void init_tensor(float *x, const mtl_tensor *t, mtl_rng *rng) {
    switch (t->init) {
    case MTL_INIT_ZEROS:
        memset(x, 0, t->size * sizeof *x);
        break;
    case MTL_INIT_ONES:
        for (size_t i = 0; i < t->size; i++) x[i] = 1.0f;
        break;
    case MTL_INIT_GLOROT_NORMAL: {
        /* Keras glorot_normal: truncated normal with stddev = sqrt(2/(fan_in+fan_out))
         * / .87962566 (the truncated distribution's std correction). Weights are
         * stored [out x in], so fan_in = cols, fan_out = rows. */
        double std = sqrt(2.0 / (double)(t->rows + t->cols)) / .87962566103423978;
        for (size_t i = 0; i < t->size; i++) {
            double z;
            do z = mtl_rng_normal(rng);
            while (fabs(z) > 2.0);
            x[i] = (float)(z * std);
        }
        break;
    }
    case MTL_INIT_EMBEDDING: /* one key per table, the same on every rank */
        init_embedding(x, t, mtl_rng_next(rng));
        break;
    }
}

int mtl_params_finalize(mtl_params *p, int with_state, mtl_rng *rng, mtl_error *err) {
    size_t off = 0;
    /* dense, embedding, sparse embedding, row-sharded embedding */
    for (int pass = 0; pass < 4; pass++) {
        for (int i = 0; i < p->n; i++) {
            mtl_tensor *t = &p->tensors[i];
            if (t->is_embedding + t->sparse + (t->shard_world > 1) != pass) continue;
            t->offset = off;
            off += t->size;
        }
        if (pass == 0) p->dense_size = off;
        if (pass == 1) p->block_size = off;
        if (pass == 2) p->replicated_size = off;
    }
    p->size = off;
    p->values = mtl_alloc_huge(off, sizeof(float), "parameters", err);
    p->grads = mtl_alloc(off, sizeof(float), "gradients", err);
    if (!p->values || !p->grads) return MTL_ERR;
    if (with_state) {
        p->m = mtl_alloc_huge(off, sizeof(float), "optimizer state", err);
        p->v = mtl_alloc_huge(off, sizeof(float), "optimizer state", err);
        if (!p->m || !p->v) return MTL_ERR;
    }
    for (int i = 0; i < p->n; i++)
        init_tensor(p->values + p->tensors[i].offset, &p->tensors[i], rng);
    mtl_params_changed(p);
    return MTL_OK;
}

int64_t mtl_shard_rows(int64_t rows, int rank, int world) {
    return rank < rows ? (rows - rank + world - 1) / world : 0;
}

void mtl_params_shard(mtl_params *p, int idx, int rank, int world) {
    mtl_tensor *t = &p->tensors[idx];
    t->shard_rank = rank;
    t->shard_world = world;
    t->local_rows = mtl_shard_rows(t->rows, rank, world);
    t->size = (size_t)(t->local_rows * t->cols);
}

float *mtl_params_value(const mtl_params *p, int idx) {
    return p->values + p->tensors[idx].offset;
}

float *mtl_params_grad(const mtl_params *p, int idx) {
    return p->grads + p->tensors[idx].offset;
}

int mtl_params_find(const mtl_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return i;
    return -1;
}

void mtl_params_free(mtl_params *p) {
    free(p->tensors);
    free(p->values);
    free(p->grads);
    free(p->m);
    free(p->v);
    memset(p, 0, sizeof *p);
}
