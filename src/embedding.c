/* Sparse embedding tables: touched-row gradients, their exchange across
 * ranks, lazy optimizer updates, and row-sharded tables (see embedding.h
 * for why and how). */
#include "mtl/embedding.h"

#include <stdlib.h>
#include <string.h>

/* Allocate a table's buffers; returns the bytes one rank may send of it. */
static int init_table(mtl_sparse_table *st, const mtl_tensor *t, const mtl_params *P, int field,
                      int max_rows, int world, mtl_error *err) {
    st->field = field;
    st->dim = (int)t->cols;
    st->rows = t->rows;
    st->values = P->values + t->offset;
    st->m = P->m + t->offset;
    st->v = P->v + t->offset;
    st->sharded = t->shard_world > 1;
    /* the union of all ranks' ids can hold every rank's whole batch; a
     * sharded table's touched ids are this rank's only */
    int64_t cap = st->sharded ? max_rows : (int64_t)max_rows * world;
    st->cap = (int)(cap < t->rows ? cap : t->rows);
    size_t dim = (size_t)st->dim;
    st->slot_of = mtl_alloc((size_t)t->rows, sizeof *st->slot_of, "embedding slots", err);
    st->ids = mtl_alloc((size_t)st->cap, sizeof *st->ids, "touched ids", err);
    st->grad = mtl_alloc((size_t)st->cap * dim, sizeof *st->grad, "touched gradient rows", err);
    if (!st->slot_of || !st->ids || !st->grad) return MTL_ERR;
    memset(st->slot_of, 0xff, (size_t)t->rows * sizeof *st->slot_of); /* all -1 */
    if (!st->sharded) return MTL_OK;
    int64_t asked = (int64_t)max_rows * world;
    st->own_cap = (int)(asked < t->local_rows ? asked : t->local_rows);
    st->fetched = mtl_alloc((size_t)max_rows * dim, sizeof *st->fetched, "fetched rows", err);
    st->order = mtl_alloc((size_t)max_rows, sizeof *st->order, "fetch order", err);
    st->send_count = mtl_alloc((size_t)world, sizeof *st->send_count, "fetch counts", err);
    st->recv_count = mtl_alloc((size_t)world, sizeof *st->recv_count, "fetch counts", err);
    st->asked = mtl_alloc((size_t)asked, sizeof *st->asked, "asked ids", err);
    st->own_slot_of = mtl_alloc((size_t)t->local_rows, sizeof *st->own_slot_of, "slots", err);
    st->own_ids = mtl_alloc((size_t)st->own_cap, sizeof *st->own_ids, "owned ids", err);
    st->own_grad =
        mtl_alloc((size_t)st->own_cap * dim, sizeof *st->own_grad, "owned gradient rows", err);
    if (!st->fetched || !st->order || !st->send_count || !st->recv_count || !st->asked ||
        !st->own_slot_of || !st->own_ids || !st->own_grad)
        return MTL_ERR;
    memset(st->own_slot_of, 0xff, (size_t)t->local_rows * sizeof *st->own_slot_of);
    return MTL_OK;
}

int mtl_embeddings_init(mtl_embeddings *e, mtl_model *m, int max_rows, int world, mtl_error *err) {
    memset(e, 0, sizeof *e);
    e->S = m->shape.S;
    e->max_rows = max_rows;
    e->world = world;
    const mtl_params *P = &m->params;
    for (int s = 0; s < m->shape.S; s++) e->n_tables += P->tensors[m->emb[s]].sparse;
    if (e->n_tables == 0) return MTL_OK;
    size_t rows_S = (size_t)max_rows * (size_t)e->S;
    e->tables = mtl_alloc((size_t)e->n_tables, sizeof *e->tables, "sparse tables", err);
    e->sharded = mtl_alloc((size_t)e->n_tables, sizeof *e->sharded, "sparse tables", err);
    e->grad_rows = mtl_alloc(rows_S, sizeof *e->grad_rows, "gradient rows", err);
    e->table_rows = mtl_alloc(rows_S, sizeof *e->table_rows, "table rows", err);
    /* replicated: [world x n_tables]; sharded: [world + 2 x world x n_tables] */
    e->counts =
        mtl_alloc((size_t)world * (1 + 2 * (size_t)e->n_tables), sizeof *e->counts, "counts", err);
    e->bytes_of = mtl_alloc((size_t)world, sizeof *e->bytes_of, "exchange sizes", err);
    e->send_bytes = mtl_alloc((size_t)world, sizeof *e->send_bytes, "exchange sizes", err);
    e->recv_bytes = mtl_alloc((size_t)world, sizeof *e->recv_bytes, "exchange sizes", err);
    e->mpi_scratch = mtl_alloc(4 * (size_t)world, sizeof *e->mpi_scratch, "exchange sizes", err);
    if (!e->tables || !e->sharded || !e->grad_rows || !e->table_rows || !e->counts ||
        !e->bytes_of || !e->send_bytes || !e->recv_bytes || !e->mpi_scratch)
        goto fail;
    size_t packed = 0;  /* one rank's largest contribution to an exchange */
    size_t answers = 0; /* a row-sharded table's owner answers every rank's batch */
    for (int s = 0, k = 0; s < m->shape.S; s++) {
        const mtl_tensor *t = &P->tensors[m->emb[s]];
        if (!t->sparse) continue;
        mtl_sparse_table *st = &e->tables[k++];
        if (init_table(st, t, P, s, max_rows, world, err)) goto fail;
        m->dtables[s] = st->grad;
        if (st->sharded) {
            m->tables[s] = st->fetched;
            e->sharded[e->n_sharded++] = st;
        }
        packed += (size_t)max_rows * (sizeof(int32_t) + (size_t)st->dim * sizeof(float));
        if (st->sharded &&
            (size_t)max_rows * (size_t)world * (size_t)st->dim * sizeof(float) > answers)
            answers = (size_t)max_rows * (size_t)world * (size_t)st->dim * sizeof(float);
    }
    if (world > 1) {
        e->send = mtl_alloc(packed > answers ? packed : answers, 1, "exchange buffer", err);
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
        mtl_sparse_table *st = &e->tables[k];
        free(st->slot_of);
        free(st->ids);
        free(st->grad);
        free(st->fetched);
        free(st->order);
        free(st->send_count);
        free(st->recv_count);
        free(st->asked);
        free(st->own_slot_of);
        free(st->own_ids);
        free(st->own_grad);
    }
    free(e->tables);
    free(e->sharded);
    free(e->grad_rows);
    free(e->table_rows);
    free(e->counts);
    free(e->bytes_of);
    free(e->send_bytes);
    free(e->recv_bytes);
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

/* The compact row of id in (slot_of, ids, grad, n), a new zeroed one if the
 * step has not touched it yet. */
static inline int32_t slot_in(int32_t *slot_of, int32_t *ids, float *grad, int *n, int dim,
                              int32_t id) {
    int32_t k = slot_of[id];
    if (k >= 0) return k;
    k = (*n)++;
    slot_of[id] = k;
    ids[k] = id;
    memset(grad + (size_t)k * (size_t)dim, 0, (size_t)dim * sizeof *grad);
    return k;
}

static inline int32_t slot(mtl_sparse_table *st, int32_t id) {
    return slot_in(st->slot_of, st->ids, st->grad, &st->n, st->dim, id);
}

void mtl_embeddings_collect(mtl_embeddings *e, mtl_batch *b) {
    if (e->n_tables == 0) return;
    int S = e->S, n = b->n;
    /* dense tables: the id's own row; sparse ones: its compact row */
    size_t bytes = (size_t)n * (size_t)S * sizeof *e->grad_rows;
    memcpy(e->grad_rows, b->sparse, bytes);
    if (e->n_sharded) memcpy(e->table_rows, b->sparse, bytes);
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        forget_ids(st);
        int s = st->field;
        for (int i = 0; i < n; i++) {
            size_t at = (size_t)i * (size_t)S + (size_t)s;
            if (i + 8 < n) /* slot_of of a large table: a cache miss per id, overlapped */
                __builtin_prefetch(st->slot_of + b->sparse[at + 8 * (size_t)S]);
            e->grad_rows[at] = slot(st, b->sparse[at]);
            if (st->sharded) e->table_rows[at] = e->grad_rows[at];
        }
        st->n_local = st->n;
    }
    b->grad_rows = e->grad_rows;
    b->table_rows = e->n_sharded ? e->table_rows : NULL;
}

/* ---- row-sharded tables ---- */

static double bytes_from_others(const int64_t *bytes, const mtl_dist *d) {
    double sum = 0;
    for (int r = 0; r < d->world; r++)
        if (r != d->rank) sum += (double)bytes[r];
    return sum;
}

/* The row-sharded tables' exchanges are packed: for each rank, table after
 * table, so a step makes 4 collectives whatever the number of tables. */
#define EACH_SHARDED(e, st, t)                                                                     \
    for (int t = 0; t < (e)->n_sharded; t++)                                                       \
        for (mtl_sparse_table *st = (e)->sharded[t]; st; st = NULL)

/* Send the touched ids to their owners, who answer with the rows; the rows
 * land in st->fetched at each id's slot. */
static void fetch_sharded(mtl_embeddings *e, const mtl_dist *d) {
    int P = d->world, K = e->n_sharded;
    int off[256] = {0}; /* running offsets per table (at most 256 fields) */
    /* counting sort of each table's ids by owner: st->order lists positions */
    EACH_SHARDED(e, st, t) {
        for (int r = 0; r < P; r++) st->send_count[r] = 0;
        for (int i = 0; i < st->n; i++) st->send_count[st->ids[i] % P]++;
        for (int r = 0, sum = 0; r < P; r++) {
            e->counts[r] = sum; /* scratch: where owner r's ids start */
            sum += st->send_count[r];
            e->counts[P + r * K + t] = st->send_count[r];
        }
        for (int i = 0; i < st->n; i++) st->order[e->counts[st->ids[i] % P]++] = i;
    }
    int *cnt_out = e->counts + P, *cnt_in = e->counts + P + P * K;
    mtl_dist_alltoall_ints(d, cnt_out, K, cnt_in);
    /* ids out, by owner then table */
    int32_t *ids_out = (int32_t *)(void *)e->send;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            for (int i = 0; i < st->send_count[r]; i++) *ids_out++ = st->ids[st->order[off[t]++]];
            st->recv_count[r] = cnt_in[r * K + t];
            e->send_bytes[r] += (int64_t)st->send_count[r] * (int64_t)sizeof(int32_t);
            e->recv_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)sizeof(int32_t);
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    /* the asked ids, table by table in rank order; the rows they ask for */
    const int32_t *ids_in = (const int32_t *)(const void *)e->recv;
    EACH_SHARDED(e, st, t) st->n_asked = 0;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            memcpy(st->asked + st->n_asked, ids_in, (size_t)st->recv_count[r] * sizeof(int32_t));
            ids_in += st->recv_count[r];
            st->n_asked += st->recv_count[r];
        }
    float *rows_out = (float *)(void *)e->send;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            for (int i = 0; i < st->recv_count[r]; i++, rows_out += dim)
                memcpy(rows_out, st->values + (size_t)(st->asked[off[t]++] / P) * dim,
                       dim * sizeof(float));
            e->send_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)(dim * sizeof(float));
            e->recv_bytes[r] += (int64_t)st->send_count[r] * (int64_t)(dim * sizeof(float));
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    const float *rows_in = (const float *)(const void *)e->recv;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            for (int i = 0; i < st->send_count[r]; i++, rows_in += dim)
                memcpy(st->fetched + (size_t)st->order[off[t]++] * dim, rows_in,
                       dim * sizeof(float));
        }
}

/* The gradient rows to their owners, in the order the ids were sent; each
 * owner sums them in rank order into its own rows' union. */
static void push_sharded(mtl_embeddings *e, const mtl_dist *d) {
    int P = d->world;
    int off[256] = {0};
    float *out = (float *)(void *)e->send;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            for (int i = 0; i < st->send_count[r]; i++, out += dim)
                memcpy(out, st->grad + (size_t)st->order[off[t]++] * dim, dim * sizeof(float));
            e->send_bytes[r] += (int64_t)st->send_count[r] * (int64_t)(dim * sizeof(float));
            e->recv_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)(dim * sizeof(float));
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    EACH_SHARDED(e, st, t) {
        for (int i = 0; i < st->own_n; i++) st->own_slot_of[st->own_ids[i]] = -1;
        st->own_n = 0;
        off[t] = 0;
    }
    const float *in = (const float *)(const void *)e->recv;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            for (int i = 0; i < st->recv_count[r]; i++, in += dim) {
                int32_t local = st->asked[off[t]++] / P;
                float *restrict g =
                    st->own_grad + (size_t)slot_in(st->own_slot_of, st->own_ids, st->own_grad,
                                                   &st->own_n, st->dim, local) *
                                       dim;
                const float *restrict x = in;
                for (size_t j = 0; j < dim; j++) g[j] += x[j];
            }
        }
}

void mtl_embeddings_prepare(mtl_embeddings *e, mtl_batch *b, const mtl_dist *d) {
    mtl_embeddings_collect(e, b);
    e->bytes_received = 0;
    if (e->n_sharded > 0) fetch_sharded(e, d);
}

int64_t mtl_embeddings_forwards(int64_t count, int64_t chunk_rows, int max_batch) {
    int64_t n = 0;
    for (int64_t done = 0; done < count; done += chunk_rows) {
        int64_t len = count - done < chunk_rows ? count - done : chunk_rows;
        n += (len + max_batch - 1) / max_batch;
    }
    return n;
}

/* ---- replicated sparse tables ---- */

/* This rank's rows of the replicated tables, packed table by table: ids,
 * then gradient rows. */
static void pack(const mtl_embeddings *e, unsigned char *out) {
    size_t off = 0;
    for (int k = 0; k < e->n_tables; k++) {
        const mtl_sparse_table *st = &e->tables[k];
        if (st->sharded) continue;
        size_t ids = (size_t)st->n_local * sizeof *st->ids;
        size_t rows = (size_t)st->n_local * (size_t)st->dim * sizeof *st->grad;
        memcpy(out + off, st->ids, ids);
        memcpy(out + off + ids, st->grad, rows);
        off += ids + rows;
    }
}

static void exchange_replicated(mtl_embeddings *e, const mtl_dist *d) {
    int T = e->n_tables, P = d->world;
    int mine[256]; /* a model has at most 256 fields */
    for (int k = 0; k < T; k++) mine[k] = e->tables[k].sharded ? 0 : e->tables[k].n_local;
    mtl_dist_allgather_ints(d, mine, T, e->counts);
    for (int r = 0; r < P; r++) {
        e->bytes_of[r] = 0;
        for (int k = 0; k < T; k++)
            e->bytes_of[r] += (int64_t)e->counts[r * T + k] *
                              (int64_t)(sizeof(int32_t) + (size_t)e->tables[k].dim * sizeof(float));
    }
    e->bytes_received += bytes_from_others(e->bytes_of, d);
    pack(e, e->send);
    mtl_dist_allgatherv_bytes(d, e->send, e->recv, e->bytes_of, e->mpi_scratch);
    /* the union, in rank order: the same ids in the same order on every rank,
     * and each row summed in the same order (rank 0's part first) */
    for (int k = 0; k < T; k++)
        if (!e->tables[k].sharded) forget_ids(&e->tables[k]);
    const unsigned char *in = e->recv;
    for (int r = 0; r < P; r++)
        for (int k = 0; k < T; k++) {
            mtl_sparse_table *st = &e->tables[k];
            int cnt = e->counts[r * T + k], dim = st->dim;
            const int32_t *ids = (const int32_t *)(const void *)in;
            const float *rows = (const float *)(const void *)(in + (size_t)cnt * sizeof(int32_t));
            for (int i = 0; i < cnt; i++) {
                float *restrict g = st->grad + (size_t)slot(st, ids[i]) * (size_t)dim;
                const float *restrict x = rows + (size_t)i * (size_t)dim;
                for (int j = 0; j < dim; j++) g[j] += x[j];
            }
            in += (size_t)cnt * (sizeof(int32_t) + (size_t)dim * sizeof(float));
        }
}

void mtl_embeddings_exchange(mtl_embeddings *e, const mtl_dist *d) {
    if (e->n_tables == 0 || d->world == 1) return;
    if (e->n_sharded < e->n_tables) exchange_replicated(e, d);
    if (e->n_sharded > 0) push_sharded(e, d);
}

int mtl_embeddings_all_finite(const mtl_embeddings *e, const mtl_dist *d) {
    int ok = 1;
    for (int k = 0; k < e->n_tables && ok; k++) {
        const mtl_sparse_table *st = &e->tables[k];
        ok = st->sharded ? mtl_all_finite(st->own_grad, (size_t)st->own_n * (size_t)st->dim)
                         : mtl_all_finite(st->grad, (size_t)st->n * (size_t)st->dim);
    }
    if (e->n_sharded > 0) ok = !mtl_dist_max_int(d, !ok);
    return ok;
}

void mtl_embeddings_update(mtl_embeddings *e, const mtl_optim *opt, float l2, int64_t step) {
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        if (st->sharded)
            mtl_optim_update_rows(opt, st->values, st->m, st->v, st->dim, st->own_ids, st->own_grad,
                                  st->own_n, l2, step);
        else
            mtl_optim_update_rows(opt, st->values, st->m, st->v, st->dim, st->ids, st->grad, st->n,
                                  l2, step);
    }
}
