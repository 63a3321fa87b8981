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

/* N(0, 1e-4): DeepCTR's init_std for embeddings */
static float embedding_draw(mtl_rng *rng) {
    return (float)(1e-4 * mtl_rng_normal(rng));
}

static void init_tensor(float *x, const mtl_tensor *t, mtl_rng *rng) {
    if (t->shard_world > 1) { /* only embedding tables are sharded */
        /* the whole table's draws, this rank's rows kept: the same values as
         * a replicated table, and the same generator state for what follows */
        for (int64_t r = 0; r < t->rows; r++)
            for (int64_t j = 0; j < t->cols; j++) {
                float z = embedding_draw(rng);
                if (r % t->shard_world == t->shard_rank) x[(r / t->shard_world) * t->cols + j] = z;
            }
        return;
    }
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
    case MTL_INIT_EMBEDDING:
        for (size_t i = 0; i < t->size; i++) x[i] = embedding_draw(rng);
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
