/* Sparse embedding tables: touched-row gradients, their exchange across
 * ranks, and lazy optimizer updates (see embedding.h for why and how). */
#include "mtl/embedding.h"

#include <stdlib.h>
#include <string.h>

int mtl_embeddings_init(mtl_embeddings *e, mtl_model *m, int max_rows, int world, mtl_error *err) {
    memset(e, 0, sizeof *e);
    e->S = m->shape.S;
    e->max_rows = max_rows;
    e->world = world;
    const mtl_params *P = &m->params;
    for (int s = 0; s < m->shape.S; s++) e->n_tables += P->tensors[m->emb[s]].sparse;
    if (e->n_tables == 0) return MTL_OK;
    e->tables = mtl_alloc((size_t)e->n_tables, sizeof *e->tables, "sparse tables", err);
    e->grad_rows =
        mtl_alloc((size_t)max_rows * (size_t)e->S, sizeof *e->grad_rows, "gradient rows", err);
    e->counts = mtl_alloc((size_t)world * (size_t)e->n_tables, sizeof *e->counts, "counts", err);
    e->bytes_of = mtl_alloc((size_t)world, sizeof *e->bytes_of, "exchange sizes", err);
    e->mpi_scratch = mtl_alloc(2 * (size_t)world, sizeof *e->mpi_scratch, "exchange sizes", err);
    if (!e->tables || !e->grad_rows || !e->counts || !e->bytes_of || !e->mpi_scratch) goto fail;
    size_t packed = 0; /* one rank's largest contribution to the exchange */
    for (int s = 0, k = 0; s < m->shape.S; s++) {
        const mtl_tensor *t = &P->tensors[m->emb[s]];
        if (!t->sparse) continue;
        mtl_sparse_table *st = &e->tables[k++];
        st->field = s;
        st->dim = (int)t->cols;
        st->rows = t->rows;
        st->values = P->values + t->offset;
        st->m = P->m + t->offset;
        st->v = P->v + t->offset;
        /* the union of all ranks' rows can hold every rank's whole batch */
        int64_t cap = (int64_t)max_rows * world;
        st->cap = (int)(cap < t->rows ? cap : t->rows);
        st->slot_of = mtl_alloc((size_t)t->rows, sizeof *st->slot_of, "embedding slots", err);
        st->ids = mtl_alloc((size_t)st->cap, sizeof *st->ids, "touched ids", err);
        st->grad = mtl_alloc((size_t)st->cap * (size_t)st->dim, sizeof *st->grad,
                             "touched gradient rows", err);
        if (!st->slot_of || !st->ids || !st->grad) goto fail;
        memset(st->slot_of, 0xff, (size_t)t->rows * sizeof *st->slot_of); /* all -1 */
        m->dtables[s] = st->grad;
        packed += (size_t)max_rows * (sizeof(int32_t) + (size_t)st->dim * sizeof(float));
    }
    if (world > 1) {
        e->send = mtl_alloc(packed, 1, "exchange buffer", err);
        e->recv = mtl_alloc(packed * (size_t)world, 1, "exchange buffer", err);
        if (!e->send || !e->recv) goto fail;
    }
    return MTL_OK;
fail:
    mtl_embeddings_free(e);
    return MTL_ERR;
}

void mtl_embeddings_free(mtl_embeddings *e) {
    for (int k = 0; e->tables && k < e->n_tables; k++) {
        free(e->tables[k].slot_of);
        free(e->tables[k].ids);
        free(e->tables[k].grad);
    }
    free(e->tables);
    free(e->grad_rows);
    free(e->counts);
    free(e->bytes_of);
    free(e->mpi_scratch);
    free(e->send);
    free(e->recv);
    memset(e, 0, sizeof *e);
}

/* Forget the last step's ids: slot_of is back to all -1 at O(touched) cost. */
static void forget_ids(mtl_sparse_table *st) {
    for (int i = 0; i < st->n; i++) st->slot_of[st->ids[i]] = -1;
    st->n = st->n_local = 0;
}

/* The compact row of id, a new zeroed one if the step has not touched it. */
static inline int32_t slot(mtl_sparse_table *st, int32_t id) {
    int32_t k = st->slot_of[id];
    if (k >= 0) return k;
    k = st->n++;
    st->slot_of[id] = k;
    st->ids[k] = id;
    memset(st->grad + (size_t)k * (size_t)st->dim, 0, (size_t)st->dim * sizeof *st->grad);
    return k;
}

void mtl_embeddings_collect(mtl_embeddings *e, mtl_batch *b) {
    if (e->n_tables == 0) return;
    int S = e->S, n = b->n;
    /* dense tables: the id's own row; sparse ones: its compact row */
    memcpy(e->grad_rows, b->sparse, (size_t)n * (size_t)S * sizeof *e->grad_rows);
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        forget_ids(st);
        int s = st->field;
        for (int i = 0; i < n; i++)
            e->grad_rows[(size_t)i * S + s] = slot(st, b->sparse[(size_t)i * S + s]);
        st->n_local = st->n;
    }
    b->grad_rows = e->grad_rows;
}

/* This rank's rows, packed table by table: ids, then gradient rows. */
static size_t pack(const mtl_embeddings *e, unsigned char *out) {
    size_t off = 0;
    for (int k = 0; k < e->n_tables; k++) {
        const mtl_sparse_table *st = &e->tables[k];
        size_t ids = (size_t)st->n_local * sizeof *st->ids;
        size_t rows = (size_t)st->n_local * (size_t)st->dim * sizeof *st->grad;
        memcpy(out + off, st->ids, ids);
        memcpy(out + off + ids, st->grad, rows);
        off += ids + rows;
    }
    return off;
}

void mtl_embeddings_exchange(mtl_embeddings *e, const mtl_dist *d) {
    e->bytes_received = 0;
    if (e->n_tables == 0 || d->world == 1) return;
    int T = e->n_tables, P = d->world;
    int mine[256]; /* a model has at most 256 fields */
    for (int k = 0; k < T; k++) mine[k] = e->tables[k].n_local;
    mtl_dist_allgather_ints(d, mine, T, e->counts);
    for (int r = 0; r < P; r++) {
        e->bytes_of[r] = 0;
        for (int k = 0; k < T; k++)
            e->bytes_of[r] += (int64_t)e->counts[r * T + k] *
                              (int64_t)(sizeof(int32_t) + (size_t)e->tables[k].dim * sizeof(float));
        if (r != d->rank) e->bytes_received += (double)e->bytes_of[r];
    }
    pack(e, e->send);
    mtl_dist_allgatherv_bytes(d, e->send, e->recv, e->bytes_of, e->mpi_scratch);
    /* the union, in rank order: the same ids in the same order on every rank,
     * and each row summed in the same order (rank 0's part first) */
    for (int k = 0; k < T; k++) forget_ids(&e->tables[k]);
    const unsigned char *in = e->recv;
    for (int r = 0; r < P; r++)
        for (int k = 0; k < T; k++) {
            mtl_sparse_table *st = &e->tables[k];
            int cnt = e->counts[r * T + k], dim = st->dim;
            const int32_t *ids = (const int32_t *)in;
            const float *rows = (const float *)(in + (size_t)cnt * sizeof(int32_t));
            for (int i = 0; i < cnt; i++) {
                float *restrict g = st->grad + (size_t)slot(st, ids[i]) * (size_t)dim;
                const float *restrict x = rows + (size_t)i * (size_t)dim;
                for (int j = 0; j < dim; j++) g[j] += x[j];
            }
            in += (size_t)cnt * (sizeof(int32_t) + (size_t)dim * sizeof(float));
        }
}

int mtl_embeddings_all_finite(const mtl_embeddings *e) {
    for (int k = 0; k < e->n_tables; k++) {
        const mtl_sparse_table *st = &e->tables[k];
        if (!mtl_all_finite(st->grad, (size_t)st->n * (size_t)st->dim)) return 0;
    }
    return 1;
}

void mtl_embeddings_update(mtl_embeddings *e, const mtl_optim *opt, float l2, int64_t step) {
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        mtl_optim_update_rows(opt, st->values, st->m, st->v, st->dim, st->ids, st->grad, st->n, l2,
                              step);
    }
}

int64_t mtl_embeddings_touched(const mtl_embeddings *e) {
    int64_t n = 0;
    for (int k = 0; k < e->n_tables; k++) n += e->tables[k].n;
    return n;
}
