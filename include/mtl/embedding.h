/* Sparse embedding tables: a step's gradient, exchange and optimizer update
 * only for the rows it touches.
 *
 * Recommender tables have 10^5..10^9 rows and a step touches at most a
 * batch's worth of them, so anything per step that runs over a whole table
 * (the gradient reset, the allreduce, the optimizer loop) makes the step cost
 * grow with the vocabulary. The model marks a table sparse at build time
 * (--embedding-update, params.h's `sparse`); such tables are laid out after
 * the block that the one allreduce and the dense optimizer cover. Per step
 * and per sparse table:
 *   collect:  the unique ids of this rank's rows, in first-touch order, a
 *             zeroed compact gradient row for each, and for every (row,
 *             field) the compact row its gradient goes to (mtl_batch's
 *             grad_rows), which the unchanged input backward of layers.h
 *             accumulates into;
 *   exchange: every rank gathers every rank's (id, gradient row) pairs and
 *             sums them in rank order into the union of the ids, so every
 *             replica holds the same sum, bit for bit;
 *   update:   L2 and the optimizer on the union's rows only.
 *
 * The optimizer is "lazy" for these tables, like TF's LazyAdam and PyTorch's
 * SparseAdam: a row's state changes only in steps that touch it. With
 * SGD without momentum and no L2 this is the dense update exactly (an
 * untouched row has a zero gradient); with Adam an untouched row keeps its
 * moments instead of decaying them and does not move, where dense Adam
 * would keep moving it on its old momentum; the bias correction uses the
 * global step count as in both references. L2 on embeddings applies to the
 * rows a step touches (the regularizer's gradient of a row is added only
 * when the row is updated), as in Keras/DeepCTR's embedding regularizer on
 * looked-up rows. */
#ifndef MTL_EMBEDDING_H
#define MTL_EMBEDDING_H

#include <stdint.h>

#include "mtl/data.h"
#include "mtl/dist.h"
#include "mtl/error.h"
#include "mtl/model.h"
#include "mtl/optim.h"

typedef struct {
    int field, dim;
    int64_t rows;
    float *values, *m, *v; /* the table and its optimizer state: views into the blocks */
    int32_t *slot_of;      /* [rows]: an id's compact row in this step, -1: untouched */
    int32_t *ids;          /* [cap]: this step's touched ids; after the exchange, the union */
    float *grad;           /* [cap x dim]: their gradient rows */
    int n_local, n;        /* touched rows: by this rank, by all ranks */
    int cap;
} mtl_sparse_table;

typedef struct {
    int n_tables;
    mtl_sparse_table *tables;
    int S, max_rows;
    int32_t *grad_rows; /* [max_rows x S]: what mtl_batch.grad_rows points to */
    /* the exchange: each rank's packed (ids, rows) of every table */
    int world;
    int *counts;                /* [world x n_tables] touched rows per rank and table */
    int64_t *bytes_of;          /* [world] packed bytes per rank */
    int *mpi_scratch;           /* [2 x world] */
    unsigned char *send, *recv; /* [one rank's maximum], [world x that] */
    double bytes_received;      /* by this rank in the last exchange */
} mtl_embeddings;

/* Set up the sparse tables of m (none: n_tables == 0, and every call below
 * does nothing) for steps of at most max_rows rows per rank on world ranks;
 * points m->dtables of those fields at their compact gradient rows. */
int mtl_embeddings_init(mtl_embeddings *e, mtl_model *m, int max_rows, int world, mtl_error *err);
void mtl_embeddings_free(mtl_embeddings *e);
/* The touched ids of the b->n rows of this rank's step, zeroed gradient rows
 * for them, and b->grad_rows. */
void mtl_embeddings_collect(mtl_embeddings *e, mtl_batch *b);
/* Sum the ranks' gradient rows into the union of their ids (every rank
 * gets the same ids in the same order, and the same sums). */
void mtl_embeddings_exchange(mtl_embeddings *e, const mtl_dist *d);
/* 1 if every gradient row of the union is finite */
int mtl_embeddings_all_finite(const mtl_embeddings *e);
/* L2 (g += 2 l2 p) and the optimizer on the union's rows; step as in
 * mtl_optim_update. */
void mtl_embeddings_update(mtl_embeddings *e, const mtl_optim *opt, float l2, int64_t step);
/* Rows touched in the last step, over all sparse tables and ranks. */
int64_t mtl_embeddings_touched(const mtl_embeddings *e);

#endif
