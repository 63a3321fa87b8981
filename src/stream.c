#define _POSIX_C_SOURCE 200809L
/* Streaming: see include/mtl/stream.h. */
#include "mtl/stream.h"

#include <stdlib.h>
#include <string.h>

static int64_t chunk_len(const mtl_stream *st, int64_t chunk) {
    int64_t begin = chunk * st->chunk_rows;
    return st->shard_count - begin < st->chunk_rows ? st->shard_count - begin : st->chunk_rows;
}

int mtl_stream_load_chunk(const mtl_stream *st, int64_t chunk, mtl_dataset *ds, mtl_error *err) {
    return mtl_dataset_load_rows(ds, st->path, st->shard_begin + chunk * st->chunk_rows,
                                 chunk_len(st, chunk), err);
}

static void *loader_main(void *arg) {
    mtl_stream *st = arg;
    st->next_rc = mtl_stream_load_chunk(st, st->order[st->next_index], &st->next, &st->next_err);
    return NULL;
}

/* Wait for the loader; its result stays in st->next. */
static int join_loader(mtl_stream *st) {
    if (!st->loading) return MTL_OK;
    pthread_join(st->thread, NULL);
    st->loading = 0;
    return st->next_rc;
}

void mtl_stream_pause(mtl_stream *st) {
    if (join_loader(st) != MTL_OK) mtl_dataset_free(&st->next);
}

static void prefetch(mtl_stream *st, int64_t index) {
    if (index >= st->n_chunks || st->loading) return;
    st->next_index = index;
    st->loading = pthread_create(&st->thread, NULL, loader_main, st) == 0;
    if (!st->loading) /* no thread: load now */
        st->next_rc = mtl_stream_load_chunk(st, st->order[index], &st->next, &st->next_err);
}

void mtl_stream_free(mtl_stream *st) {
    join_loader(st);
    mtl_dataset_free(&st->next);
    mtl_dataset_free(&st->cur);
    free(st->order);
    free(st->row_order);
    memset(st, 0, sizeof *st);
}

int mtl_stream_init(mtl_stream *st, const char *path, int64_t n_total, int rank, int world,
                    int64_t chunk_rows, uint64_t seed, mtl_error *err) {
    memset(st, 0, sizeof *st);
    st->path = path;
    mtl_shard_range(n_total, rank, world, &st->shard_begin, &st->shard_count);
    st->chunk_rows = chunk_rows;
    st->n_chunks = (st->shard_count + chunk_rows - 1) / chunk_rows;
    st->seed = seed;
    st->rank = rank;
    st->epoch = -1;
    st->cur_index = -1;
    st->order = mtl_alloc((size_t)st->n_chunks, sizeof(int64_t), "chunk order", err);
    st->row_order = mtl_alloc((size_t)chunk_rows, sizeof(int64_t), "chunk rows", err);
    return st->order && st->row_order ? MTL_OK : MTL_ERR;
}

/* Make the chunk at `index` of the epoch's order current. */
static int advance(mtl_stream *st, int64_t index, mtl_error *err) {
    int rc = join_loader(st);
    int have_next = st->next.path != NULL && st->next_index == index && rc == MTL_OK;
    if (rc != MTL_OK) {
        *err = st->next_err;
        mtl_dataset_free(&st->next);
        return MTL_ERR;
    }
    mtl_dataset_free(&st->cur);
    if (have_next) {
        st->cur = st->next;
        memset(&st->next, 0, sizeof st->next);
    } else {
        mtl_dataset_free(&st->next);
        if (mtl_stream_load_chunk(st, st->order[index], &st->cur, err) != MTL_OK) return MTL_ERR;
    }
    if (st->cur_index < 0 || index < st->cur_index) {
        st->cur_start = 0;
        for (int64_t i = 0; i < index; i++) st->cur_start += chunk_len(st, st->order[i]);
    } else {
        for (int64_t i = st->cur_index; i < index; i++)
            st->cur_start += chunk_len(st, st->order[i]);
    }
    st->cur_index = index;
    /* row order within the chunk: seeded by the chunk, the epoch and the rank */
    mtl_shuffle(st->row_order, st->cur.n_rows, st->seed ^ 0x5851f42d4c957f2dULL,
                st->epoch * st->n_chunks + st->order[index], st->rank);
    prefetch(st, index + 1);
    return MTL_OK;
}

void mtl_stream_epoch(mtl_stream *st, int64_t epoch) {
    mtl_stream_pause(st);
    mtl_dataset_free(&st->next);
    st->epoch = epoch;
    mtl_shuffle(st->order, st->n_chunks, st->seed ^ 0x2545f4914f6cdd1dULL, epoch, st->rank);
    st->cur_index = -1;
    mtl_dataset_free(&st->cur);
    prefetch(st, 0);
}

int mtl_stream_gather(mtl_stream *st, int64_t first, int n, mtl_batch *b, mtl_error *err) {
    enum { PIECE = 256 }; /* rows gathered per call: the row list lives on the stack */
    int64_t rows[PIECE];
    for (int done = 0; done < n;) {
        int64_t pos = first + done;
        if (st->cur_index < 0 || pos < st->cur_start || pos >= st->cur_start + st->cur.n_rows) {
            /* find the chunk that holds pos (forward in the normal case) */
            int64_t index = 0, start = 0;
            while (index < st->n_chunks && start + chunk_len(st, st->order[index]) <= pos)
                start += chunk_len(st, st->order[index++]);
            if (index >= st->n_chunks)
                return mtl_fail(err, st->path, "stream: position past the shard");
            if (advance(st, index, err) != MTL_OK) return MTL_ERR;
            if (mtl_batch_reserve(b, &st->cur, err) != MTL_OK) return MTL_ERR;
        }
        int64_t in_chunk = pos - st->cur_start;
        int k = (int)(st->cur.n_rows - in_chunk < n - done ? st->cur.n_rows - in_chunk : n - done);
        if (k > PIECE) k = PIECE;
        for (int i = 0; i < k; i++) rows[i] = st->row_order[in_chunk + i];
        mtl_batch rest = mtl_batch_rows(b, done, k); /* the batch from row `done` on */
        mtl_batch_gather(&rest, &st->cur, rows, k);
        done += k;
    }
    b->n = n;
    return MTL_OK;
}
