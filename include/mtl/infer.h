/* libmtl_infer: score rows with a model trained by mtl_dist, straight from
 * its checkpoint, in a C or C++ service. No MPI, no training config:
 *   cc app.c $(pkg-config --cflags --libs mtl_infer)
 *
 * The model computes exactly what `mtl_dist predict` does (the same engine,
 * forward in inference mode: batch norm with its running statistics, no
 * dropout): one float per prediction column, probabilities for binary tasks,
 * ESMM's pctr, pcvr, pctcvr.
 *
 * Threads: an opened model is never written after mtl_infer_open, so any
 * number of threads may call mtl_infer_score on it at once. Each call needs
 * scratch space (activations for up to mtl_infer_batch_rows() rows, about
 * 4 bytes x the model's arena width per row). Either pass a scratch made by
 * mtl_infer_scratch_new, one per thread and reused for every call (scoring
 * then allocates nothing), or pass NULL and the call allocates its own and
 * frees it before returning. A scratch must not be used by two calls at once.
 * Matrix products go through OpenBLAS; with several scoring threads set
 * OPENBLAS_NUM_THREADS=1 (or openblas_set_num_threads(1)) so they do not
 * compete with OpenBLAS's own threads.
 *
 * Every function that can fail returns MTL_OK (0) or MTL_ERR (-1) and fills
 * err->msg with "where: what is wrong". */
#ifndef MTL_INFER_H
#define MTL_INFER_H

#include <stdint.h>

#include "mtl/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the library exports these functions only (built with hidden visibility) */
#define MTL_INFER_API __attribute__((visibility("default")))

typedef struct mtl_infer mtl_infer;
typedef struct mtl_infer_scratch mtl_infer_scratch;

/* Open a checkpoint written by mtl_dist (ckpt-*.h5): its parameters, not
 * its optimizer state, are loaded. */
MTL_INFER_API int mtl_infer_open(mtl_infer **out, const char *checkpoint_path, mtl_error *err);
MTL_INFER_API void mtl_infer_close(mtl_infer *m);

/* Inputs: S categorical fields (one id each, 0 <= id < vocabulary size; id
 * 0 is mtl_prep's out-of-vocabulary value) and D dense features, with their
 * names as in the training data (NULL when the checkpoint does not store
 * them: written by an older mtl_dist, or out of range). */
MTL_INFER_API int mtl_infer_num_sparse(const mtl_infer *m);
MTL_INFER_API int mtl_infer_num_dense(const mtl_infer *m);
MTL_INFER_API const char *mtl_infer_sparse_name(const mtl_infer *m, int field);
MTL_INFER_API const char *mtl_infer_dense_name(const mtl_infer *m, int col);
MTL_INFER_API int64_t mtl_infer_vocab_size(const mtl_infer *m, int field); /* -1 if no such field */
/* Outputs: P prediction columns, named as --predict-out's columns. */
MTL_INFER_API int mtl_infer_num_outputs(const mtl_infer *m);
MTL_INFER_API const char *mtl_infer_output_name(const mtl_infer *m,
                                                int col); /* NULL if no such column */
/* Rows a scratch holds; mtl_infer_score takes any n, in pieces this big. */
MTL_INFER_API int mtl_infer_batch_rows(const mtl_infer *m);

MTL_INFER_API int mtl_infer_scratch_new(const mtl_infer *m, mtl_infer_scratch **out,
                                        mtl_error *err);
MTL_INFER_API void mtl_infer_scratch_free(mtl_infer_scratch *s);

/* Score n rows: sparse [n x S] ids, dense [n x D] (either may be NULL when
 * its width is 0), all row-major; writes out [n x P]. An id outside its
 * field's vocabulary or a NaN/Inf dense value is an error naming the row
 * and field; out is then left unspecified. scratch: see above (NULL: the
 * call allocates its own). */
MTL_INFER_API int mtl_infer_score(const mtl_infer *m, mtl_infer_scratch *scratch, int64_t n,
                                  const int64_t *sparse, const float *dense, float *out,
                                  mtl_error *err);

#ifdef __cplusplus
}
#endif

#endif
