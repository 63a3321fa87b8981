/* The parameter registry: models register each tensor once (name, shape,
 * initializer, regularization) while they are built; the registry then lays
 * all of them out in ONE contiguous float block, with gradients and optimizer
 * state in blocks of the same layout. Sizes, pointers, checkpoint names, the
 * allreduce, the optimizer loop and tests all come from this one list.
 *
 * Layout: dense parameters in registration order, then embedding tables
 * updated with the block, then sparse tables (updated by touched rows, see
 * embedding.h), so the block's allreduce and optimizer loop stop before them. Tensors
 * registered one after another within a kind are adjacent, which is what lets
 * several layers that read the same input run as one GEMM. */
#ifndef MTL_PARAMS_H
#define MTL_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/error.h"
#include "mtl/layers.h"

typedef enum {
    MTL_INIT_ZEROS = 0,
    MTL_INIT_ONES,
    MTL_INIT_GLOROT_NORMAL, /* std = sqrt(2 / (fan_in + fan_out)), as Keras' glorot_normal
                               (truncated at 2 std like Keras' truncated normal) */
    MTL_INIT_EMBEDDING      /* N(0, 1e-4): DeepCTR's init_std for embeddings */
} mtl_init;

typedef enum {
    MTL_REG_NONE = 0, /* biases, norm parameters, loss log-variances */
    MTL_REG_DNN,      /* dense weights: l2_dnn */
    MTL_REG_EMBEDDING /* embedding tables: l2_embedding */
} mtl_reg_kind;

typedef struct {
    char name[96];
    int64_t rows, cols; /* a vector has rows == 1 */
    size_t offset;      /* in floats, into the block (valid after finalize) */
    size_t size;
    mtl_init init;
    mtl_reg_kind reg;
    int is_embedding;
    int sparse; /* an embedding table updated by rows (embedding.h): laid out last */
    /* row-sharded (shard_world > 1): this rank holds rows shard_rank,
     * shard_rank + shard_world, ... (global row i at local row i / shard_world);
     * offset and size cover those rows only; laid out after everything else */
    int shard_rank, shard_world;
    int64_t local_rows;
    /* a replicated sparse table on several ranks (state_world > 1): every
     * rank holds all of it, but row i's optimizer state is kept and updated
     * only on its owner, rank i mod state_world (embedding.h); this rank's
     * m and v are valid at rows state_rank, state_rank + state_world, ... */
    int state_rank, state_world;
} mtl_tensor;

typedef struct {
    mtl_tensor *tensors;
    int n, cap;
    size_t size;            /* total floats */
    size_t dense_size;      /* floats before the first embedding table */
    size_t block_size;      /* floats before the first sparse table: what the one allreduce,
                               the optimizer loop and the gradient reset cover */
    size_t replicated_size; /* floats before the first row-sharded table: what every
                               rank holds alike */
    float *values;          /* [size] */
    float *grads;           /* [size] */
    float *m, *v;           /* optimizer state [size] each */
    uint64_t version;       /* whoever writes values bumps it (mtl_params_changed): the model
                               then refreshes what it derives from them (gemm.h's W^T copies) */
} mtl_params;

static inline void mtl_params_changed(mtl_params *p) {
    p->version++;
}

/* Register a tensor; returns its index (>= 0) or MTL_ERR. */
int mtl_params_add(mtl_params *p, const char *name, int64_t rows, int64_t cols, mtl_init init,
                   mtl_reg_kind reg, mtl_error *err);
/* Lay out, allocate values/grads (and m, v when with_state) and initialize
 * every tensor in registration order from rng. */
int mtl_params_finalize(mtl_params *p, int with_state, mtl_rng *rng, mtl_error *err);
/* Rows of a table of `rows` rows that rank `rank` of `world` holds. */
int64_t mtl_shard_rows(int64_t rows, int rank, int world);
/* Spread tensor idx's rows over world ranks; this process is rank. Before
 * finalize. */
void mtl_params_shard(mtl_params *p, int idx, int rank, int world);
float *mtl_params_value(const mtl_params *p, int idx);
float *mtl_params_grad(const mtl_params *p, int idx);
int mtl_params_find(const mtl_params *p, const char *name); /* index or -1 */
void mtl_params_free(mtl_params *p);

#endif
