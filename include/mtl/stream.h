/* Streaming (--stream): a rank's training shard read a chunk at a time.
 *
 * An epoch visits the shard's chunks in a shuffled order, and each chunk's
 * rows in a shuffled order; both orders follow from (seed, epoch, rank), so a
 * resumed run reads exactly the rows it would have. While one chunk trains, a
 * thread loads the next. Only one thread calls HDF5 at a time: callers that
 * use HDF5 themselves (evaluation, checkpoints) call mtl_stream_pause first. */
#ifndef MTL_STREAM_H
#define MTL_STREAM_H

#include <pthread.h>
#include <stdint.h>

#include "mtl/data.h"
#include "mtl/error.h"

typedef struct {
    const char *path;
    int64_t shard_begin, shard_count, chunk_rows;
    int64_t n_chunks;
    uint64_t seed;
    int rank;
    int64_t epoch;
    int64_t *order;     /* [n_chunks] chunk visiting order of this epoch */
    int64_t *row_order; /* [chunk_rows] row order within the current chunk */
    mtl_dataset cur;    /* the current chunk */
    int64_t cur_index;  /* its place in the order, -1: none */
    int64_t cur_start;  /* epoch position of its first row */
    /* the loader thread */
    pthread_t thread;
    int loading;
    int64_t next_index;
    mtl_dataset next;
    int next_rc;
    mtl_error next_err;
} mtl_stream;

/* rank's shard of the file's first n_total rows, in chunks of chunk_rows. */
int mtl_stream_init(mtl_stream *st, const char *path, int64_t n_total, int rank, int world,
                    int64_t chunk_rows, uint64_t seed, mtl_error *err);
void mtl_stream_free(mtl_stream *st);
/* Chunk `chunk` of the shard (in file order) as a dataset of its own. */
int mtl_stream_load_chunk(const mtl_stream *st, int64_t chunk, mtl_dataset *ds, mtl_error *err);
/* Start an epoch: its chunk order, and the first chunk's prefetch. */
void mtl_stream_epoch(mtl_stream *st, int64_t epoch);
/* The rows at epoch positions [first, first+n) into b (n <= its capacity). */
int mtl_stream_gather(mtl_stream *st, int64_t first, int n, mtl_batch *b, mtl_error *err);
/* Wait for the loader thread, so that the caller may use HDF5; a chunk it
 * failed to load is dropped (it is loaded again when needed). */
void mtl_stream_pause(mtl_stream *st);

#endif
