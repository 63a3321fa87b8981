/* Sparse embedding tables: touched-row gradients, their exchange across
 * ranks, lazy optimizer updates, and row-sharded tables (see embedding.h
 * for why and how). */
#include "mtl/embedding.h"

#include <stdlib.h>
#include <string.h>

/* ---- the id maps ---- */

/* Room for `ids` ids at most half full: a free slot is then never far. The
 * map must be empty (it is between a step's uses). */
static int id_map_reserve(mtl_id_map *map, int64_t ids, mtl_error *err) {
    uint64_t size = 16;
    while (size < 2 * (uint64_t)ids) size *= 2;
    if (map->slot && size <= (uint64_t)map->mask + 1) return MTL_OK;
    if (size > ((uint64_t)1 << 31))
        return mtl_fail(err, NULL, "id map: more than 2^30 ids in a step");
    free(map->slot);
    map->slot = mtl_alloc((size_t)size, sizeof *map->slot, "id map", err);
    if (!map->slot) return MTL_ERR;
    memset(map->slot, 0xff, (size_t)size * sizeof *map->slot); /* all ids -1 */
    map->mask = (uint32_t)(size - 1);
    map->shift = 32 - __builtin_ctzll(size);
    return MTL_OK;
}

/* Fibonacci hashing: ids of a field are mostly small and dense (a fitted
 * vocabulary, or Zipf-hot ids first), which the golden-ratio multiply
 * spreads over the top bits. */
static inline uint32_t id_hash(const mtl_id_map *map, int32_t id) {
    return ((uint32_t)id * 0x9e3779b1u) >> map->shift;
}

/* Where id is in map, or the free slot where it goes. */
static inline mtl_id_slot *id_map_at(const mtl_id_map *map, int32_t id) {
    uint32_t h = id_hash(map, id);
    while (map->slot[h].id != id && map->slot[h].id >= 0) h = (h + 1) & map->mask;
    return &map->slot[h];
}

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
    st->owned = !st->sharded && world > 1;
    if (st->owned && t->state_world != world)
        return mtl_fail(err, NULL, "%s: a model built for %d ranks, run on %d", t->name,
                        t->state_world, world);
    /* the union of all ranks' ids can hold every rank's whole batch; a
     * sharded table's touched ids are this rank's only */
    int64_t cap = st->sharded ? max_rows : (int64_t)max_rows * world;
    st->cap = (int)(cap < t->rows ? cap : t->rows);
    size_t dim = (size_t)st->dim;
    st->ids = mtl_alloc((size_t)st->cap, sizeof *st->ids, "touched ids", err);
    st->grad = mtl_alloc((size_t)st->cap * dim, sizeof *st->grad, "touched gradient rows", err);
    if (!st->ids || !st->grad || id_map_reserve(&st->slot_of, st->cap, err)) return MTL_ERR;
    if (world > 1) { /* both kinds sort their ids by owner */
        st->order = mtl_alloc((size_t)st->cap, sizeof *st->order, "owner order", err);
        st->send_count = mtl_alloc((size_t)world, sizeof *st->send_count, "owner counts", err);
        st->recv_count = mtl_alloc((size_t)world, sizeof *st->recv_count, "owner counts", err);
        if (!st->order || !st->send_count || !st->recv_count) return MTL_ERR;
    }
    if (!st->sharded) return MTL_OK;
    int64_t asked = (int64_t)max_rows * world;
    st->own_cap = (int)(asked < t->local_rows ? asked : t->local_rows);
    st->fetched = mtl_alloc((size_t)st->cap * dim, sizeof *st->fetched, "fetched rows", err);
    st->asked_cap = (int)asked;
    st->asked = mtl_alloc((size_t)asked, sizeof *st->asked, "asked ids", err);
    st->own_ids = mtl_alloc((size_t)st->own_cap, sizeof *st->own_ids, "owned ids", err);
    st->own_grad =
        mtl_alloc((size_t)st->own_cap * dim, sizeof *st->own_grad, "owned gradient rows", err);
    if (!st->fetched || !st->asked || !st->own_ids || !st->own_grad ||
        id_map_reserve(&st->own_slot_of, st->own_cap, err))
        return MTL_ERR;
    return MTL_OK;
}

/* ---- growing the buffers for lists (multi-valued fields) ---- */

static int resize(void *p, size_t count, size_t size, const char *what, mtl_error *err) {
    void **ptr = p;
    void *q = realloc(*ptr, (count ? count : 1) * size);
    if (!q)
        return mtl_fail(err, NULL, "%s: out of memory allocating %.1f MiB", what,
                        (double)count * (double)size / 1048576.0);
    *ptr = q;
    return MTL_OK;
}

/* Room for `need` touched ids of st (at most its rows), at least doubling. */
static int table_reserve(mtl_sparse_table *st, int64_t need, mtl_error *err) {
    if (need > st->rows) need = st->rows;
    if (need <= st->cap) return MTL_OK;
    int64_t cap = 2 * (int64_t)st->cap > need ? 2 * (int64_t)st->cap : need;
    if (cap > st->rows) cap = st->rows;
    if (cap > INT32_MAX) return mtl_fail(err, NULL, "touched ids: more than 2^31 in a step");
    size_t c = (size_t)cap, dim = (size_t)st->dim;
    if (resize(&st->ids, c, sizeof *st->ids, "touched ids", err) ||
        resize(&st->grad, c * dim, sizeof *st->grad, "touched gradient rows", err) ||
        (st->order && resize(&st->order, c, sizeof *st->order, "owner order", err)) ||
        (st->sharded && resize(&st->fetched, c * dim, sizeof *st->fetched, "fetched rows", err)) ||
        id_map_reserve(&st->slot_of, cap, err))
        return MTL_ERR;
    st->cap = (int)cap;
    *st->model_grad = st->grad;
    if (st->sharded) *st->model_rows = st->fetched;
    return MTL_OK;
}

/* A row-sharded table's owner side: room for `need` asked ids. */
static int asked_reserve(mtl_sparse_table *st, int64_t need, mtl_error *err) {
    if (need <= st->asked_cap) return MTL_OK;
    if (need > INT32_MAX) return mtl_fail(err, NULL, "asked ids: more than 2^31 in a step");
    size_t c = (size_t)need, dim = (size_t)st->dim;
    if (resize(&st->asked, c, sizeof *st->asked, "asked ids", err) ||
        resize(&st->own_ids, c, sizeof *st->own_ids, "owned ids", err) ||
        resize(&st->own_grad, c * dim, sizeof *st->own_grad, "owned gradient rows", err) ||
        id_map_reserve(&st->own_slot_of, need, err))
        return MTL_ERR;
    st->asked_cap = st->own_cap = (int)need;
    return MTL_OK;
}

/* The exchange buffers: room for `send` and `recv` bytes. */
static int bytes_reserve(mtl_embeddings *e, size_t send, size_t recv, mtl_error *err) {
    if (send > e->send_cap) {
        if (resize(&e->send, send, 1, "exchange buffer", err)) return MTL_ERR;
        e->send_cap = send;
    }
    if (recv > e->recv_cap) {
        if (resize(&e->recv, recv, 1, "exchange buffer", err)) return MTL_ERR;
        e->recv_cap = recv;
    }
    return MTL_OK;
}

int mtl_embeddings_init(mtl_embeddings *e, mtl_model *m, int max_rows, int world, mtl_error *err) {
    memset(e, 0, sizeof *e);
    e->S = m->shape.S;
    e->M = m->shape.M;
    e->max_rows = max_rows;
    e->world = world;
    const mtl_params *P = &m->params;
    int fields = m->shape.S + m->shape.M;
    for (int s = 0; s < fields; s++) e->n_tables += P->tensors[m->emb[s]].sparse;
    if (e->n_tables == 0) return MTL_OK;
    e->of_field = mtl_alloc((size_t)fields, sizeof *e->of_field, "sparse tables", err);
    e->multi_grad_rows = mtl_alloc((size_t)e->M, sizeof *e->multi_grad_rows, "list rows", err);
    e->multi_table_rows = mtl_alloc((size_t)e->M, sizeof *e->multi_table_rows, "list rows", err);
    e->multi_rows_cap = mtl_alloc((size_t)e->M, sizeof *e->multi_rows_cap, "list rows", err);
    if (!e->of_field || !e->multi_grad_rows || !e->multi_table_rows || !e->multi_rows_cap)
        goto fail;
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
    for (int s = 0, k = 0; s < fields; s++) {
        const mtl_tensor *t = &P->tensors[m->emb[s]];
        if (!t->sparse) continue;
        mtl_sparse_table *st = &e->tables[k++];
        e->of_field[s] = st;
        if (init_table(st, t, P, s, max_rows, world, err)) goto fail;
        st->model_grad = &m->dtables[s];
        st->model_rows = &m->tables[s];
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
        e->send_cap = packed > answers ? packed : answers;
        e->recv_cap = packed * (size_t)world;
        e->send = mtl_alloc(e->send_cap, 1, "exchange buffer", err);
        e->recv = mtl_alloc(e->recv_cap, 1, "exchange buffer", err);
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
        free(st->slot_of.slot);
        free(st->ids);
        free(st->grad);
        free(st->fetched);
        free(st->order);
        free(st->send_count);
        free(st->recv_count);
        free(st->asked);
        free(st->own_slot_of.slot);
        free(st->own_ids);
        free(st->own_grad);
    }
    for (int j = 0; e->of_field && j < e->M; j++)
        if (e->of_field[e->S + j]) free(e->multi_grad_rows[j]); /* else: the batch's ids */
    free(e->of_field);
    free(e->multi_grad_rows);
    free(e->multi_table_rows);
    free(e->multi_rows_cap);
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

/* How many rows ahead a loop over a large table's rows prefetches: enough
 * for the misses to overlap, few enough that the lines are still cached. */
enum { ROWS_AHEAD = 8 };

/* One row of dim floats copied, or zeroed. memcpy/memset of a size known
 * only at run time is a call into libc per row, and the exchanges move rows
 * of 64 bytes by the thousand per step (profile, 4 x 10M + 20 x 1k ids, 2
 * ranks: libc's memmove 5% of the step); common widths get their size as a
 * constant, which the compiler turns into a few vector moves. */
static inline void copy_row(float *restrict to, const float *restrict from, size_t dim) {
    switch (dim) {
    case 8:
        memcpy(to, from, 8 * sizeof *to);
        break;
    case 16:
        memcpy(to, from, 16 * sizeof *to);
        break;
    case 32:
        memcpy(to, from, 32 * sizeof *to);
        break;
    default:
        memcpy(to, from, dim * sizeof *to);
    }
}
static inline void zero_row(float *row, size_t dim) {
    switch (dim) {
    case 8:
        memset(row, 0, 8 * sizeof *row);
        break;
    case 16:
        memset(row, 0, 16 * sizeof *row);
        break;
    case 32:
        memset(row, 0, 32 * sizeof *row);
        break;
    default:
        memset(row, 0, dim * sizeof *row);
    }
}

/* A map back to empty at O(ids) cost: its ids removed last first. With
 * linear probing, removing an id can cut the probe path to one inserted
 * after it, never to one inserted before; in reverse order every id is
 * still found where it was put. */
static void clear_slots(mtl_id_map *map, const int32_t *ids, int n) {
    for (int i = n - 1; i >= 0; i--) id_map_at(map, ids[i])->id = -1;
}

/* The compact row of id in (map, ids, grad, n), a new zeroed one if the
 * step has not touched it yet. */
static inline int32_t slot_in(mtl_id_map *map, int32_t *ids, float *grad, int *n, int dim,
                              int32_t id) {
    mtl_id_slot *e = id_map_at(map, id);
    if (e->id == id) return e->row;
    int32_t k = (*n)++;
    e->id = id;
    e->row = k;
    ids[k] = id;
    zero_row(grad + (size_t)k * (size_t)dim, (size_t)dim);
    return k;
}

static inline int32_t slot(mtl_sparse_table *st, int32_t id) {
    return slot_in(&st->slot_of, st->ids, st->grad, &st->n, st->dim, id);
}

/* Field j's lists: every id of the batch is touched; its compact row per
 * position in the lists. A sharded table's forward reads its fetched rows at
 * the same compact rows. */
static int collect_lists(mtl_embeddings *e, mtl_sparse_table *st, const mtl_batch *b, int j,
                         mtl_error *err) {
    const int32_t *off = b->multi_off + (size_t)j * (size_t)b->multi_ld;
    int64_t nnz = off[b->n] - off[0];
    if (nnz > e->multi_rows_cap[j]) {
        if (resize(&e->multi_grad_rows[j], (size_t)nnz, sizeof(int32_t), "list rows", err))
            return MTL_ERR;
        e->multi_rows_cap[j] = nnz;
    }
    if (table_reserve(st, nnz, err)) return MTL_ERR;
    const int32_t *ids = b->multi_ids[j];
    int32_t *rows = e->multi_grad_rows[j];
    for (int64_t k = off[0]; k < off[b->n]; k++) rows[k] = slot(st, ids[k]);
    e->multi_table_rows[j] = st->sharded ? rows : b->multi_ids[j];
    return MTL_OK;
}

int mtl_embeddings_collect(mtl_embeddings *e, mtl_batch *b, mtl_error *err) {
    if (e->n_tables == 0) return MTL_OK;
    int S = e->S, n = b->n;
    for (int j = 0; j < e->M; j++)
        if (!e->of_field[S + j]) /* a dense table: the ids' own rows */
            e->multi_grad_rows[j] = e->multi_table_rows[j] = b->multi_ids[j];
    /* dense tables: the id's own row; sparse ones: its compact row */
    size_t bytes = (size_t)n * (size_t)S * sizeof *e->grad_rows;
    memcpy(e->grad_rows, b->sparse, bytes);
    if (e->n_sharded) memcpy(e->table_rows, b->sparse, bytes);
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        st->n = st->n_local = 0; /* slot_of is empty */
        int s = st->field;
        if (s >= S && collect_lists(e, st, b, s - S, err)) return MTL_ERR;
        for (int i = 0; i < n && s < S; i++) {
            size_t at = (size_t)i * (size_t)S + (size_t)s;
            e->grad_rows[at] = slot(st, b->sparse[at]);
            if (st->sharded) e->table_rows[at] = e->grad_rows[at];
        }
        st->n_local = st->n;
        clear_slots(&st->slot_of, st->ids, st->n); /* the rows now say where an id went */
    }
    b->grad_rows = e->grad_rows;
    b->table_rows = e->n_sharded ? e->table_rows : NULL;
    b->multi_grad_rows = e->M ? e->multi_grad_rows : NULL;
    b->multi_table_rows = e->M ? e->multi_table_rows : NULL;
    return MTL_OK;
}

/* ---- row-sharded tables ---- */

static double bytes_from_others(const int64_t *bytes, const mtl_dist *d) {
    double sum = 0;
    for (int r = 0; r < d->world; r++)
        if (r != d->rank) sum += (double)bytes[r];
    return sum;
}

/* Row id's owner, id mod P, and its row there, id / P. A division costs
 * 10-40 cycles and a step makes several per touched id; rank counts are
 * mostly powers of two, where a mask and a shift do. */
static inline int owner_of(int32_t id, int P) {
    return (P & (P - 1)) == 0 ? (int)((uint32_t)id & (uint32_t)(P - 1)) : (int)(id % P);
}
static inline int32_t local_row(int32_t id, int P) {
    return (P & (P - 1)) == 0 ? (int32_t)((uint32_t)id >> __builtin_ctz((unsigned)P)) : id / P;
}

/* Counting sort of st's touched ids by owner rank (id mod P): send_count per
 * owner, and order the positions in ids, owner after owner. scratch [P]. */
static void sort_by_owner(mtl_sparse_table *st, int P, int *scratch) {
    for (int r = 0; r < P; r++) st->send_count[r] = 0;
    for (int i = 0; i < st->n; i++) st->send_count[owner_of(st->ids[i], P)]++;
    for (int r = 0, sum = 0; r < P; r++) {
        scratch[r] = sum; /* where owner r's ids start */
        sum += st->send_count[r];
    }
    for (int i = 0; i < st->n; i++) st->order[scratch[owner_of(st->ids[i], P)]++] = i;
}

/* The row-sharded tables' exchanges are packed: for each rank, table after
 * table, so a step makes 4 collectives whatever the number of tables. */
#define EACH_SHARDED(e, st, t)                                                                     \
    for (int t = 0; t < (e)->n_sharded; t++)                                                       \
        for (mtl_sparse_table *st = (e)->sharded[t]; st; st = NULL)

/* Send the touched ids to their owners, who answer with the rows; the rows
 * land in st->fetched at each id's slot. The ids this rank owns take no
 * part in the exchanges: their rows are copied from the table straight to
 * their slots (on P ranks 1/P of the rows; through MPI they were packed,
 * copied to itself and unpacked, twice). */
static int fetch_sharded(mtl_embeddings *e, const mtl_dist *d, mtl_error *err) {
    int P = d->world, K = e->n_sharded, me = d->rank;
    int off[MTL_MAX_FIELDS] = {0};  /* running offsets per table: in order */
    int seen[MTL_MAX_FIELDS] = {0}; /* and in asked */
    EACH_SHARDED(e, st, t) {
        sort_by_owner(st, P, e->counts);
        for (int r = 0; r < P; r++) e->counts[P + r * K + t] = st->send_count[r];
    }
    int *cnt_out = e->counts + P, *cnt_in = e->counts + P + P * K;
    mtl_dist_alltoall_ints(d, cnt_out, K, cnt_in);
    /* room for what comes: ids out and in, then the rows back */
    size_t n_ids_out = 0, n_ids_in = 0, n_rows_out = 0, n_rows_in = 0;
    EACH_SHARDED(e, st, t) {
        int64_t asked = 0;
        for (int r = 0; r < P; r++) asked += cnt_in[r * K + t];
        if (asked_reserve(st, asked, err)) return MTL_ERR;
        n_ids_out += (size_t)st->n * sizeof(int32_t);
        n_ids_in += (size_t)asked * sizeof(int32_t);
        n_rows_out += (size_t)asked * (size_t)st->dim * sizeof(float);
        n_rows_in += (size_t)st->n * (size_t)st->dim * sizeof(float);
    }
    if (bytes_reserve(e, n_ids_out > n_rows_out ? n_ids_out : n_rows_out,
                      n_ids_in > n_rows_in ? n_ids_in : n_rows_in, err))
        return MTL_ERR;
    /* ids out to the other owners, by owner then table */
    int32_t *ids_out = (int32_t *)(void *)e->send;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            st->recv_count[r] = cnt_in[r * K + t]; /* [me]: send_count[me] */
            if (r != me) {
                for (int i = 0; i < st->send_count[r]; i++)
                    *ids_out++ = st->ids[st->order[off[t] + i]];
                e->send_bytes[r] += (int64_t)st->send_count[r] * (int64_t)sizeof(int32_t);
                e->recv_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)sizeof(int32_t);
            }
            off[t] += st->send_count[r];
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    /* the asked ids as rows of this rank, table by table in rank order (its
     * own among them, for the push's sums in rank order); the rows they ask for */
    const int32_t *ids_in = (const int32_t *)(const void *)e->recv;
    EACH_SHARDED(e, st, t) off[t] = st->n_asked = 0;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            int32_t *to = st->asked + st->n_asked;
            if (r == me) {
                for (int i = 0; i < st->send_count[r]; i++)
                    to[i] = local_row(st->ids[st->order[off[t] + i]], P);
            } else {
                for (int i = 0; i < st->recv_count[r]; i++) to[i] = local_row(ids_in[i], P);
                ids_in += st->recv_count[r];
            }
            st->n_asked += st->recv_count[r];
            off[t] += st->send_count[r];
        }
    float *rows_out = (float *)(void *)e->send;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            const int32_t *asked = st->asked + seen[t];
            int n = st->recv_count[r];
            /* a large table's rows are cache misses: ask for them ahead */
            for (int i = 0; i < n && i < ROWS_AHEAD; i++)
                __builtin_prefetch(st->values + (size_t)asked[i] * dim);
            if (r == me) { /* own rows: from the table to their slots */
                for (int i = 0; i < n; i++) {
                    if (i + ROWS_AHEAD < n)
                        __builtin_prefetch(st->values + (size_t)asked[i + ROWS_AHEAD] * dim);
                    copy_row(st->fetched + (size_t)st->order[off[t] + i] * dim,
                             st->values + (size_t)asked[i] * dim, dim);
                }
            } else {
                for (int i = 0; i < n; i++, rows_out += dim) {
                    if (i + ROWS_AHEAD < n)
                        __builtin_prefetch(st->values + (size_t)asked[i + ROWS_AHEAD] * dim);
                    copy_row(rows_out, st->values + (size_t)asked[i] * dim, dim);
                }
                e->send_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)(dim * sizeof(float));
                e->recv_bytes[r] += (int64_t)st->send_count[r] * (int64_t)(dim * sizeof(float));
            }
            seen[t] += st->recv_count[r];
            off[t] += st->send_count[r];
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    const float *rows_in = (const float *)(const void *)e->recv;
    EACH_SHARDED(e, st, t) off[t] = 0;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            if (r != me)
                for (int i = 0; i < st->send_count[r]; i++, rows_in += dim)
                    copy_row(st->fetched + (size_t)st->order[off[t] + i] * dim, rows_in, dim);
            off[t] += st->send_count[r];
        }
    return MTL_OK;
}

/* The gradient rows to their owners, in the order the ids were sent; each
 * owner sums them in rank order into its own rows' union, its own rows read
 * where they are. */
static int push_sharded(mtl_embeddings *e, const mtl_dist *d, mtl_error *err) {
    int P = d->world, me = d->rank;
    int off[MTL_MAX_FIELDS] = {0};  /* running offsets per table: in order */
    int seen[MTL_MAX_FIELDS] = {0}; /* and in asked */
    size_t out_bytes = 0, in_bytes = 0;
    EACH_SHARDED(e, st, t) {
        out_bytes += (size_t)st->n * (size_t)st->dim * sizeof(float);
        in_bytes += (size_t)st->n_asked * (size_t)st->dim * sizeof(float);
    }
    if (bytes_reserve(e, out_bytes, in_bytes, err)) return MTL_ERR;
    float *out = (float *)(void *)e->send;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            if (r != me) {
                for (int i = 0; i < st->send_count[r]; i++, out += dim)
                    copy_row(out, st->grad + (size_t)st->order[off[t] + i] * dim, dim);
                e->send_bytes[r] += (int64_t)st->send_count[r] * (int64_t)(dim * sizeof(float));
                e->recv_bytes[r] += (int64_t)st->recv_count[r] * (int64_t)(dim * sizeof(float));
            }
            off[t] += st->send_count[r];
        }
    }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    EACH_SHARDED(e, st, t) off[t] = st->own_n = 0; /* own_slot_of is empty */
    const float *in = (const float *)(const void *)e->recv;
    for (int r = 0; r < P; r++) EACH_SHARDED(e, st, t) {
            size_t dim = (size_t)st->dim;
            const int32_t *asked = st->asked + seen[t];
            int n = st->recv_count[r];
            for (int i = 0; i < n; i++) {
                float *restrict g =
                    st->own_grad + (size_t)slot_in(&st->own_slot_of, st->own_ids, st->own_grad,
                                                   &st->own_n, st->dim, asked[i]) *
                                       dim;
                const float *restrict x = in;
                if (r == me)
                    x = st->grad + (size_t)st->order[off[t] + i] * dim;
                else
                    in += dim;
                for (size_t j = 0; j < dim; j++) g[j] += x[j];
            }
            seen[t] += st->recv_count[r];
            off[t] += st->send_count[r];
        }
    EACH_SHARDED(e, st, t) clear_slots(&st->own_slot_of, st->own_ids, st->own_n);
    return MTL_OK;
}

int mtl_embeddings_prepare(mtl_embeddings *e, mtl_batch *b, const mtl_dist *d, mtl_error *err) {
    if (mtl_embeddings_collect(e, b, err)) return MTL_ERR;
    e->bytes_received = 0;
    return e->n_sharded > 0 ? fetch_sharded(e, d, err) : MTL_OK;
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

/* Owner computes (ZeRO stage 1 for embedding rows): every rank holds the
 * whole table, but row id's optimizer state and update belong to rank
 * id mod P. The exchange sends each touched (id, gradient row) to the id's
 * owner (one all-to-all), which sums them in rank order into the union of
 * its ids; the update moves those rows on the owner only, and every owner
 * then sends its new rows to every rank (one all-gather). A rank so updates
 * 1/P of the step's union of rows instead of all of it, and sums 1/P of the
 * received rows; each row's sum and update are the ones a single replica
 * would compute, bit for bit. */

#define EACH_REPLICATED(e, st, k)                                                                  \
    for (int k = 0; k < (e)->n_tables; k++)                                                        \
        for (mtl_sparse_table *st = &(e)->tables[k]; st && !st->sharded; st = NULL)

static size_t row_bytes(const mtl_sparse_table *st) {
    return sizeof(int32_t) + (size_t)st->dim * sizeof(float);
}

/* The (id, row) pairs at positions order[0..n) of a table's touched ids,
 * packed as ids then rows. */
static unsigned char *pack_rows(unsigned char *out, const int32_t *ids, const int32_t *order,
                                const float *rows, int n, int dim) {
    int32_t *id_out = (int32_t *)(void *)out;
    float *row_out = (float *)(void *)(out + (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int at = order[i];
        id_out[i] = ids[at];
        copy_row(row_out + (size_t)i * (size_t)dim, rows + (size_t)at * (size_t)dim, (size_t)dim);
    }
    return out + (size_t)n * (sizeof(int32_t) + (size_t)dim * sizeof(float));
}

static int exchange_replicated(mtl_embeddings *e, const mtl_dist *d, mtl_error *err) {
    int P = d->world, K = e->n_tables, me = d->rank;
    int *cnt_out = e->counts + P, *cnt_in = e->counts + P + P * K;
    for (int k = 0; k < K; k++)
        for (int r = 0; r < P; r++) cnt_out[r * K + k] = 0;
    EACH_REPLICATED(e, st, k) {
        sort_by_owner(st, P, e->counts);
        for (int r = 0; r < P; r++) cnt_out[r * K + k] = st->send_count[r];
    }
    mtl_dist_alltoall_ints(d, cnt_out, K, cnt_in);
    size_t out = 0, in = 0;
    for (int r = 0; r < P; r++) {
        e->send_bytes[r] = e->recv_bytes[r] = 0;
        EACH_REPLICATED(e, st, k) {
            e->send_bytes[r] += (int64_t)cnt_out[r * K + k] * (int64_t)row_bytes(st);
            e->recv_bytes[r] += (int64_t)cnt_in[r * K + k] * (int64_t)row_bytes(st);
        }
        out += (size_t)e->send_bytes[r];
        in += (size_t)e->recv_bytes[r];
    }
    if (bytes_reserve(e, out, in, err)) return MTL_ERR;
    EACH_REPLICATED(e, st, k) { /* the owned union holds at most what all ranks send */
        int64_t sum = 0;
        for (int r = 0; r < P; r++) sum += cnt_in[r * K + k];
        if (table_reserve(st, sum, err)) return MTL_ERR;
    }
    /* this rank's own rows are packed after the others' and stay out of the
     * exchange: the union below is built in st->grad, over them */
    size_t own_bytes = (size_t)e->send_bytes[me];
    e->send_bytes[me] = e->recv_bytes[me] = 0;
    unsigned char *const own_start = e->send + out - own_bytes;
    unsigned char *o = e->send, *own = own_start;
    int off[MTL_MAX_FIELDS] = {0};
    for (int r = 0; r < P; r++) EACH_REPLICATED(e, st, k) {
            int n = st->send_count[r];
            if (r == me)
                own = pack_rows(own, st->ids, st->order + off[k], st->grad, n, st->dim);
            else
                o = pack_rows(o, st->ids, st->order + off[k], st->grad, n, st->dim);
            off[k] += n;
        }
    mtl_dist_alltoallv_bytes(d, e->send, e->send_bytes, e->recv, e->recv_bytes, e->mpi_scratch);
    e->bytes_received += bytes_from_others(e->recv_bytes, d);
    /* the owned union, in rank order: each row summed as one replica would */
    EACH_REPLICATED(e, st, k) st->n = 0; /* slot_of is empty */
    const unsigned char *at = e->recv;
    own = own_start;
    for (int r = 0; r < P; r++) EACH_REPLICATED(e, st, k) {
            int cnt = cnt_in[r * K + k], dim = st->dim;
            const unsigned char *from = r == me ? own : at;
            const int32_t *ids = (const int32_t *)(const void *)from;
            const float *rows = (const float *)(const void *)(from + (size_t)cnt * sizeof(int32_t));
            for (int i = 0; i < cnt; i++) {
                float *restrict g = st->grad + (size_t)slot(st, ids[i]) * (size_t)dim;
                const float *restrict x = rows + (size_t)i * (size_t)dim;
                for (int j = 0; j < dim; j++) g[j] += x[j];
            }
            if (r == me)
                own += (size_t)cnt * row_bytes(st);
            else
                at += (size_t)cnt * row_bytes(st);
        }
    EACH_REPLICATED(e, st, k) clear_slots(&st->slot_of, st->ids, st->n);
    return MTL_OK;
}

/* After the owners' update: every rank gathers every owner's updated rows
 * (ids, then values) and writes the others' into its copy of the table. */
static int share_replicated(mtl_embeddings *e, const mtl_dist *d, mtl_error *err) {
    int T = e->n_tables, P = d->world;
    int mine[MTL_MAX_FIELDS] = {0};
    EACH_REPLICATED(e, st, k) mine[k] = st->n;
    mtl_dist_allgather_ints(d, mine, T, e->counts);
    size_t all = 0;
    for (int r = 0; r < P; r++) {
        e->bytes_of[r] = 0;
        EACH_REPLICATED(e, st, k) {
            e->bytes_of[r] += (int64_t)e->counts[r * T + k] * (int64_t)row_bytes(st);
        }
        all += (size_t)e->bytes_of[r];
    }
    e->bytes_received += bytes_from_others(e->bytes_of, d);
    if (bytes_reserve(e, (size_t)e->bytes_of[d->rank], all, err)) return MTL_ERR;
    unsigned char *o = e->send;
    EACH_REPLICATED(e, st, k) {
        /* the updated rows, gathered as (id, row) like gradients */
        int32_t *ids = (int32_t *)(void *)o;
        float *rows = (float *)(void *)(o + (size_t)st->n * sizeof(int32_t));
        for (int i = 0; i < st->n; i++) {
            ids[i] = st->ids[i];
            copy_row(rows + (size_t)i * (size_t)st->dim,
                     st->values + (size_t)st->ids[i] * (size_t)st->dim, (size_t)st->dim);
        }
        o += (size_t)st->n * row_bytes(st);
    }
    mtl_dist_allgatherv_bytes(d, e->send, e->recv, e->bytes_of, e->mpi_scratch);
    const unsigned char *at = e->recv;
    for (int r = 0; r < P; r++) EACH_REPLICATED(e, st, k) {
            int cnt = e->counts[r * T + k];
            size_t dim = (size_t)st->dim;
            const int32_t *ids = (const int32_t *)(const void *)at;
            const float *rows = (const float *)(const void *)(at + (size_t)cnt * sizeof(int32_t));
            if (r != d->rank)
                for (int i = 0; i < cnt; i++) {
                    if (i + ROWS_AHEAD < cnt)
                        __builtin_prefetch(st->values + (size_t)ids[i + ROWS_AHEAD] * dim, 1);
                    copy_row(st->values + (size_t)ids[i] * dim, rows + (size_t)i * dim, dim);
                }
            at += (size_t)cnt * row_bytes(st);
        }
    return MTL_OK;
}

int mtl_embeddings_exchange(mtl_embeddings *e, const mtl_dist *d, mtl_error *err) {
    if (e->n_tables == 0 || d->world == 1) return MTL_OK;
    if (e->n_sharded < e->n_tables && exchange_replicated(e, d, err)) return MTL_ERR;
    return e->n_sharded > 0 ? push_sharded(e, d, err) : MTL_OK;
}

int mtl_embeddings_all_finite(const mtl_embeddings *e, const mtl_dist *d) {
    int ok = 1;
    for (int k = 0; k < e->n_tables && ok; k++) {
        const mtl_sparse_table *st = &e->tables[k];
        ok = st->sharded ? mtl_all_finite(st->own_grad, (size_t)st->own_n * (size_t)st->dim)
                         : mtl_all_finite(st->grad, (size_t)st->n * (size_t)st->dim);
    }
    /* each rank sees its own rows' sums only */
    if (e->n_tables > 0 && d->world > 1) ok = !mtl_dist_max_int(d, !ok);
    return ok;
}

int mtl_embeddings_update(mtl_embeddings *e, const mtl_optim *opt, float l2, int64_t step,
                          const mtl_dist *d, mtl_error *err) {
    for (int k = 0; k < e->n_tables; k++) {
        mtl_sparse_table *st = &e->tables[k];
        if (st->sharded)
            mtl_optim_update_rows(opt, st->values, st->m, st->v, st->dim, st->own_ids, st->own_grad,
                                  st->own_n, l2, step);
        else
            mtl_optim_update_rows(opt, st->values, st->m, st->v, st->dim, st->ids, st->grad, st->n,
                                  l2, step);
    }
    return e->n_sharded < e->n_tables && d->world > 1 ? share_replicated(e, d, err) : MTL_OK;
}
