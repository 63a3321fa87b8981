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
 *   exchange: on one rank, the union of the ids; on P ranks each (id,
 *             gradient row) pair goes to the id's owner, rank id mod P (one
 *             all-to-all), which sums them in rank order into the union of
 *             its ids: the sum any replica would compute, bit for bit;
 *   update:   L2 and the optimizer on the union's rows only, each row on its
 *             owner, which alone keeps the row's optimizer state (params.h
 *             state_world; ZeRO stage 1 for embedding rows); the owners then
 *             send the new rows to every rank (one all-gather), so all
 *             replicas hold the same table. A rank so updates 1/P of the
 *             union instead of all of it.
 *
 * A row-sharded table (--embedding-sharding row) keeps row i on rank i mod P
 * only, with its optimizer state, so a rank holds 1/P of it (TorchRec's
 * row-wise sharding, HugeCTR's distributed embedding, here in MPI):
 *   fetch:    after collect, each rank sends its touched ids to their owners
 *             and gets the rows back (two all-to-alls); the forward reads
 *             them from a compact buffer (mtl_batch.table_rows);
 *   exchange: the gradient rows go back to the owners (one all-to-all),
 *             which sum them in rank order into their union;
 *   update:   each owner updates its own rows and their state.
 * Every forward of a rank with such tables (training, evaluation, the first
 * centering) takes part in a fetch, so all ranks fetch equally often.
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

/* A step's map from ids to their compact rows: open addressing with linear
 * probing, at most half full, sized to the most ids a step can insert rather
 * than to the table, so that it stays in the core's cache. (A map with a
 * slot per table row took a cache miss per id, and 4 bytes per row: 96 MB
 * per rank at 24 M rows.) Empty between the steps' uses. */
typedef struct {
    int32_t id, row;
} mtl_id_slot;
typedef struct {
    mtl_id_slot *slot; /* [mask + 1]: id -1 when free */
    uint32_t mask;
    int shift; /* 32 - log2(mask + 1): the hash's top bits index the slots */
} mtl_id_map;

typedef struct {
    int field, dim;
    int64_t rows;
    /* the model's pointers to this table's gradient rows and (row-sharded)
     * fetched rows: moved with them when a batch's lists make them grow */
    float **model_grad, **model_rows;
    float *values, *m, *v; /* the table and its optimizer state: views into the blocks */
    mtl_id_map slot_of;    /* ids -> their rows in ids and grad while a map is built */
    int32_t *ids;          /* [cap]: this step's touched ids; after the exchange, the union */
    float *grad;           /* [cap x dim]: their gradient rows */
    int n_local, n;        /* touched rows: by this rank, after the exchange in the union */
    int cap;               /* of ids, grad, slot_of (and fetched, order): grown for lists */
    /* Replicated on several ranks (owned != 0): after the exchange, ids, grad
     * and n are the union of the touched ids this rank owns (id mod world ==
     * rank). Row-sharded (sharded != 0): values, m and v hold this rank's
     * rows (global row i at local row i / world); ids, grad and n stay this
     * rank's own touched ids (n == n_local). */
    int owned, sharded;
    /* both kinds on several ranks: */
    int32_t *order;  /* [cap]: positions in ids, grouped by owner rank */
    int *send_count; /* [world]: ids sent to each owner */
    int *recv_count; /* [world]: ids each rank asked of this one (row-sharded) */
    /* row-sharded only: */
    float *fetched; /* [max_rows x dim]: the fetched rows of ids, read by the forward */
    int32_t *asked; /* [asked_cap]: those ids as rows of this rank (id / world), rank after rank */
    int n_asked, asked_cap;
    mtl_id_map own_slot_of; /* local rows -> their places in own_ids while built */
    int32_t *own_ids;       /* [own_cap]: local rows with a gradient this step */
    float *own_grad;        /* [own_cap x dim] */
    int own_n, own_cap;
} mtl_sparse_table;

typedef struct {
    int n_tables, n_sharded;
    mtl_sparse_table *tables;
    mtl_sparse_table **sharded; /* [n_sharded]: the row-sharded ones */
    int S, max_rows;
    int32_t *grad_rows;  /* [max_rows x S]: what mtl_batch.grad_rows points to */
    int32_t *table_rows; /* [max_rows x S]: what mtl_batch.table_rows points to */
    /* multi-valued fields (model fields S..S+M-1): a step touches every id of
     * the batch's lists, so their buffers grow with the longest batch seen */
    int M;
    int32_t **multi_grad_rows;   /* [M]: what mtl_batch.multi_grad_rows points to */
    int32_t **multi_table_rows;  /* [M]: what mtl_batch.multi_table_rows points to */
    int64_t *multi_rows_cap;     /* [M] */
    mtl_sparse_table **of_field; /* [S + M]: a field's sparse table, or NULL */
    /* the exchanges: packed ids and rows */
    int world;
    int *counts;                      /* [world x n_tables] touched rows per rank and table */
    int64_t *bytes_of;                /* [world] packed bytes per rank */
    int64_t *send_bytes, *recv_bytes; /* [world] */
    int *mpi_scratch;                 /* [4 x world] */
    unsigned char *send, *recv;       /* [send_cap], [recv_cap] bytes */
    size_t send_cap, recv_cap;
    double bytes_received; /* by this rank in the last step's exchanges */
} mtl_embeddings;

/* Set up the sparse tables of m (none: n_tables == 0, and every call below
 * does nothing) for steps of at most max_rows rows per rank on world ranks;
 * points m->dtables of those fields at their compact gradient rows, and
 * m->tables of row-sharded ones at their fetched rows. */
int mtl_embeddings_init(mtl_embeddings *e, mtl_model *m, int max_rows, int world, mtl_error *err);
void mtl_embeddings_free(mtl_embeddings *e);
/* The touched ids of the b->n rows of this rank's step, zeroed gradient rows
 * for them, and b->grad_rows (and b->table_rows, and the multi-valued
 * fields' multi_grad_rows, multi_table_rows). Fails only when growing the
 * buffers for a batch of longer lists than before runs out of memory. */
int mtl_embeddings_collect(mtl_embeddings *e, mtl_batch *b, mtl_error *err);
/* collect, and with row-sharded tables fetch their rows from their owners:
 * collective then. Call before every forward. */
int mtl_embeddings_prepare(mtl_embeddings *e, mtl_batch *b, const mtl_dist *d, mtl_error *err);
/* Sum the ranks' gradient rows into their owners' union of ids (on one rank,
 * the union of the batch's ids): replicated tables by owner id mod world,
 * row-sharded tables into their owners' rows. Fails as collect. */
int mtl_embeddings_exchange(mtl_embeddings *e, const mtl_dist *d, mtl_error *err);
/* 1 if every summed gradient row is finite; the same answer on every rank
 * (collective on several ranks). */
int mtl_embeddings_all_finite(const mtl_embeddings *e, const mtl_dist *d);
/* L2 (g += 2 l2 p) and the optimizer on this rank's summed rows (its owned
 * rows), step as in mtl_optim_update; then, on several ranks, every rank
 * gets every owner's new rows of the replicated tables (collective). Fails
 * only when growing the exchange buffers runs out of memory. */
int mtl_embeddings_update(mtl_embeddings *e, const mtl_optim *opt, float l2, int64_t step,
                          const mtl_dist *d, mtl_error *err);
/* Forwards a rank with row-sharded tables makes to evaluate `count` rows in
 * batches of at most max_batch from chunks of chunk_rows: what every rank
 * must match with empty fetches. */
int64_t mtl_embeddings_forwards(int64_t count, int64_t chunk_rows, int max_batch);

#endif
