/* Datasets: the HDF5 layout (see data/README.md), the sharded reader, a
 * chunked writer, and mini-batch gathering.
 *
 * Layout of one split file (the contract users' h5py scripts rely on; the
 * dtypes are what mtl_prep writes and what is held in memory: the file may
 * store any integer type for ids and any float, integer or bool type for the
 * rest, converted with a range check on read):
 *   /sparse  int32   [N, S]  attrs: vocab_sizes int64 [S], names (S vlen UTF-8 strings)
 *   /dense   float32 [N, D]  attrs: names
 *   /labels  float32 [N, T]  attrs: names (task names); NaN = missing label
 *   /weights float32 [N] or [N, T]  optional sample weights (default 1): one
 *            for every task, or one per task (0 drops the row from that
 *            task's loss)
 *   /groups int64 [N]        optional group (user, session) of each row, for GAUC
 *   /multi/<field>           optional multi-valued categorical fields (tags,
 *            genres, a user's recent items), one group each: ids int32 [nnz]
 *            and offsets int64 [N+1] (row i's ids are
 *            ids[offsets[i]:offsets[i+1]], empty lists allowed); attrs
 *            vocab_size int64, pooling "sum" or "mean". Fields in name order.
 *   /meta    optional group written by mtl_prep: the fitted encoding
 *            (per field vocabulary, per dense column min/max) so other files
 *            can be encoded identically (--vocab-from).
 * S or D may be 0 (the dataset may then be absent). */
#ifndef MTL_DATA_H
#define MTL_DATA_H

#include <stdint.h>

#include "mtl/error.h"

/* Categorical fields of a data set, single- and multi-valued together (each
 * has its own embedding table). A bound so per-field arrays can be fixed. */
#define MTL_MAX_FIELDS 256

/* Rows [begin, begin+count) of N owned by `rank` of `world`: contiguous,
 * the first N % world ranks get one extra row. */
void mtl_shard_range(int64_t n, int rank, int world, int64_t *begin, int64_t *count);

/* Fitted encoding stored in /meta (all NULL/0 when absent). */
typedef struct {
    int S;                 /* categorical fields */
    int64_t *vocab_len;    /* [S] number of known categories of field s */
    char ***vocab;         /* [S][vocab_len[s]] raw strings; index i encodes as i */
    int64_t *hash_buckets; /* [S] 0, or N: field s is hashed into N buckets (vocab_len 0);
                              NULL when writing means all 0 */
    int D;                 /* numeric columns */
    double *dense_min;     /* [D] */
    double *dense_max;     /* [D] */
} mtl_meta;

void mtl_meta_free(mtl_meta *meta);

typedef struct {
    char *path;
    int64_t n_total;   /* rows in the file (a part of it: the part's rows) */
    int64_t first;     /* file row of the dataset's row 0: 0 unless it is a part */
    int64_t row_begin; /* file row of this shard's first row */
    int64_t n_rows;    /* rows held here */
    int S, D, T;
    int32_t *sparse;      /* [n_rows x S], or NULL when held compact: */
    uint8_t *sparse_u8;   /* [n_rows x S] when every vocabulary has <= 256 ids */
    uint16_t *sparse_u16; /* [n_rows x S] when every vocabulary has <= 65536 ids */
    float *dense;         /* [n_rows x D] */
    float *labels;        /* [n_rows x T] */
    float *weights;       /* [n_rows x weight_cols] or NULL when the file has none */
    int weight_cols;      /* 1: /weights [N], T: [N, T] */
    int64_t *groups;      /* [n_rows] /groups (user or session ids for GAUC) or NULL */
    int has_groups;       /* the file has /groups (also set by header-only loads) */
    int64_t *vocab_sizes; /* [S] */
    char **sparse_names;  /* [S] */
    char **dense_names;   /* [D] */
    char **task_names;    /* [T] */
    /* multi-valued fields (M == 0: none, every pointer NULL) */
    int M;
    char **multi_names;     /* [M] the group names under /multi */
    int64_t *multi_vocab;   /* [M] vocab_size */
    int *multi_mean;        /* [M] 1: mean pooling, 0: sum */
    int64_t **multi_off;    /* [M][n_rows + 1] this shard's offsets, from 0 */
    int32_t **multi_ids;    /* [M][multi_off[j][n_rows]] */
    int64_t *multi_max_len; /* [M] longest list of the shard */
} mtl_dataset;

/* Load rank's shard (hyperslab of rows) of the file at path. Validates the
 * layout: dataset ranks and dtypes (/sparse any integer type, the others any
 * float, integer or bool type; converted to int32 / float32 as read, a
 * bounded buffer at a time, and an id beyond int32 or a finite value beyond
 * float32 is an error), equal N across datasets, names attributes of the
 * right length, vocab_sizes > 0, every sparse value in 0..vocab-1, no NaN/Inf
 * in /dense or /weights, labels finite or NaN. A dataset compressed with a
 * filter this HDF5 lacks is named with the filter and its Debian package.
 * Errors name the file, the dataset and the first offending (global) row. */
int mtl_dataset_load(mtl_dataset *ds, const char *path, int rank, int world, mtl_error *err);
/* As mtl_dataset_load, but /sparse is held in 1 or 2 bytes per id when the
 * vocabularies allow (sparse == NULL, sparse_u8 or sparse_u16 set): a quarter
 * or half the memory of a training shard's ids. Read in chunks, so the int32
 * rows never all exist at once. mtl_batch_gather reads either form. */
int mtl_dataset_load_compact(mtl_dataset *ds, const char *path, int rank, int world,
                             mtl_error *err);
/* The rows [first, first + count) of the file as a dataset of their own
 * (n_total = count, ds->first = first), and rank's shard of them: how
 * --valid-split trains on the head of a file and validates on its tail.
 * compact as mtl_dataset_load_compact. */
int mtl_dataset_load_part(mtl_dataset *ds, const char *path, int64_t first, int64_t count, int rank,
                          int world, int compact, mtl_error *err);
/* Rows [begin, begin+count) only (cut at the end of the file), validated the
 * same way: what streaming evaluation reads one chunk at a time. */
int mtl_dataset_load_rows(mtl_dataset *ds, const char *path, int64_t begin, int64_t count,
                          mtl_error *err);
/* Only the header: N, S, D, T, names and vocab sizes (no rows read). */
int mtl_dataset_load_header(mtl_dataset *ds, const char *path, mtl_error *err);
void mtl_dataset_free(mtl_dataset *ds);
/* Read /meta from a file written by mtl_prep. */
int mtl_meta_load(mtl_meta *meta, const char *path, mtl_error *err);

/* Chunked writer: rows are appended in pieces (chunked, extendable datasets)
 * so a 10-million-row file never needs all rows in memory. Writes to
 * "<path>.tmp" and renames to path on close, so a failed run leaves no
 * partial output. */
typedef struct mtl_writer mtl_writer;
int mtl_writer_open(mtl_writer **w, const char *path, int S, const char *const *sparse_names,
                    const int64_t *vocab_sizes, int D, const char *const *dense_names, int T,
                    const char *const *task_names, int weight_cols, mtl_error *err);
/* weight_cols: 0 no /weights, 1 /weights [N], T /weights [N, T].
 * Append n rows; dense/sparse may be NULL when D/S is 0, weights NULL when
 * the writer has none. */
int mtl_writer_append(mtl_writer *w, const int32_t *sparse, const float *dense, const float *labels,
                      const float *weights, int64_t n, mtl_error *err);
/* Multi-valued fields: declare M fields (before the first append), then
 * after each mtl_writer_append of n rows, append those rows' lists of every
 * field: off[0..n] (off[0] == 0) into ids. Pooling: 1 mean, 0 sum. */
int mtl_writer_add_multi(mtl_writer *w, int M, const char *const *names, const int64_t *vocab,
                         const int *mean, mtl_error *err);
int mtl_writer_append_multi(mtl_writer *w, int field, const int64_t *off, const int32_t *ids,
                            int64_t n, mtl_error *err);
/* Write meta (may be NULL), close, and rename into place. Frees w. */
int mtl_writer_close(mtl_writer *w, const mtl_meta *meta, mtl_error *err);
/* Close and delete the temporary file. Frees w. Safe on NULL. */
void mtl_writer_abort(mtl_writer *w);

/* Write a whole in-memory dataset (all n_rows rows) to path. */
int mtl_dataset_save(const mtl_dataset *ds, const char *path, const mtl_meta *meta, mtl_error *err);

/* A contiguous mini-batch gathered from a dataset's rows. Buffers are
 * allocated once for `capacity` rows. */
typedef struct {
    int capacity, n; /* rows allocated, rows filled */
    int S, D, T;
    int32_t *sparse; /* [capacity x S] */
    float *dense;    /* [capacity x D] */
    float *labels;   /* [capacity x T] */
    float *weights;  /* [capacity x T]: each row's weight per task (all 1 when the
                        dataset has none) */
    /* [capacity x S], not owned: the row of each field's gradient table that
     * receives each id's gradient (embedding.h: a sparse table's compact rows);
     * NULL: the id's own row */
    const int32_t *grad_rows;
    /* [capacity x S], not owned: the row of each field's table that the
     * forward reads (embedding.h: a row-sharded table's fetched rows); NULL:
     * the id's own row */
    const int32_t *table_rows;
    /* multi-valued fields (M == 0: none). Row i's ids of field j are
     * multi_ids[j][o[i] .. o[i+1]) with o = multi_off + j * multi_ld: offsets
     * into the whole batch's ids, so a view of rows [first, ...) only moves
     * multi_off (o[0] of the batch is 0). */
    int M, multi_ld;
    int32_t *multi_off;  /* [M x multi_ld] */
    int32_t **multi_ids; /* [M] grown by mtl_batch_reserve */
    int64_t *multi_cap;  /* [M] ids each buffer holds */
    /* [M] each (not owned): per id, the row of its field's gradient table /
     * of the table the forward reads (as grad_rows, table_rows); NULL: the ids */
    int32_t *const *multi_grad_rows;
    int32_t *const *multi_table_rows;
} mtl_batch;

int mtl_batch_alloc(mtl_batch *b, int capacity, int S, int D, int T, mtl_error *err);
void mtl_batch_free(mtl_batch *b);
/* Room for M multi-valued fields (after mtl_batch_alloc). */
int mtl_batch_alloc_multi(mtl_batch *b, int M, mtl_error *err);
/* Grow the id buffers so that any capacity rows of ds fit (after loading
 * each dataset or chunk that batches are gathered from; nothing to do when
 * it has no multi-valued fields). */
int mtl_batch_reserve(mtl_batch *b, const mtl_dataset *ds, mtl_error *err);
/* Gather rows[0..n) (local indices into ds) into b (n <= capacity). */
void mtl_batch_gather(mtl_batch *b, const mtl_dataset *ds, const int64_t *rows, int n);
/* Rows [first, first+n) of b as a batch of their own (no copy): a
 * micro-batch, or the place where a gather continues. */
mtl_batch mtl_batch_rows(const mtl_batch *b, int first, int n);

/* perm[i] = i, then a Fisher-Yates shuffle seeded by (seed, epoch, rank). */
void mtl_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch, int rank);

#endif
