/* Checkpoints and prediction files (HDF5; every HDF5 call outside the dataset
 * reader lives in checkpoint.c).
 *
 * Checkpoint layout (readable from h5py):
 *   /params/<name>            float32, [rows, cols] (vectors 1-D [cols]): every parameter
 *                             under its stable name, e.g. /params/experts.3.dense0.weight
 *                             ([out, in], PyTorch's nn.Linear layout)
 *   /optimizer/m/<name>, /optimizer/v/<name>   optimizer state, same shapes
 *   /buffers/<name>           batch-norm running statistics
 *   /best/<name>              early stopping's best parameters (when kept)
 *   root attributes: format, step, epoch, batch_in_epoch, world_size, seed,
 *   dropout_rng (uint64 [4]), best_metric, best_epoch, bad_epochs,
 *   train_loss_sum / train_count (float64 [T], the epoch so far),
 *   config (the model's hyperparameters as "key = value" lines),
 *   task_names, task_regression, sparse vocab_sizes, S, D, and (when the
 *   trainer knew them) sparse_names, dense_names: the data's column names.
 * Written to "<path>.tmp.<pid>", flushed, fsync'ed and renamed, so a crash
 * leaves the previous file or the new one, never half of one. */
#ifndef MTL_CHECKPOINT_H
#define MTL_CHECKPOINT_H

#include <stdint.h>

#include "mtl/error.h"
#include "mtl/model.h"

typedef struct {
    int64_t step, epoch, batch_in_epoch;
    int world_size;
    uint64_t seed;
    uint64_t dropout_rng[4];
    double best_metric;
    int64_t best_epoch, bad_epochs;
    double train_loss_sum[MTL_MAX_TASKS], train_count[MTL_MAX_TASKS];
    char config[8192];
    mtl_data_shape shape;
    /* save only: the data's column names, [S] and [D]; NULL: not stored */
    char *const *sparse_names, *const *dense_names;
} mtl_ckpt_state;

#define MTL_NAME_MAX 256

/* best may be NULL (no early-stopping copy). Written whole by one process:
 * begin + commit. */
int mtl_checkpoint_save(const char *path, const mtl_model *m, const float *best,
                        const mtl_ckpt_state *st, mtl_error *err);
/* A checkpoint written by several ranks, for row-sharded tables and for the
 * optimizer state of replicated sparse tables, whose rows only their owners
 * hold up to date (params.h): rank 0 begins it (everything, and its own rows
 * of those tables) in the temporary file tmp (capacity MTL_CKPT_TMP_MAX), the
 * other ranks add their rows one after another, and rank 0 commits (fsync
 * and rename). No rank writes more than its own rows. */
#define MTL_CKPT_TMP_MAX 1200
int mtl_checkpoint_begin(const char *path, const mtl_model *m, const float *best,
                         const mtl_ckpt_state *st, char *tmp, size_t tmp_cap, mtl_error *err);
int mtl_checkpoint_add_rows(const char *tmp, const mtl_model *m, const float *best, mtl_error *err);
/* 1 if the other ranks have rows to add (the same answer on every rank) */
int mtl_checkpoint_has_rank_rows(const mtl_model *m);
int mtl_checkpoint_commit(const char *tmp, const char *path, mtl_error *err);
/* Attributes only: what is needed to rebuild the model. Rejects files that
 * are not complete mtl_dist checkpoints. */
int mtl_checkpoint_load_state(const char *path, mtl_ckpt_state *st, mtl_error *err);
/* Every tensor of the model by name and shape (missing or misshapen: error);
 * optimizer state when with_optimizer; best (may be NULL) when present.
 * *has_best tells whether /best was there. */
int mtl_checkpoint_load_tensors(const char *path, mtl_model *m, int with_optimizer, float *best,
                                int *has_best, mtl_error *err);

/* The model a checkpoint holds, ready for inference: its hyperparameters
 * (the stored config text over the defaults), then its parameters and
 * batch-norm buffers (no optimizer state); forwards of up to max_batch rows.
 * st receives the attributes. Needs neither MPI nor a training config. */
int mtl_checkpoint_open_model(const char *path, int max_batch, mtl_model **out, mtl_ckpt_state *st,
                              mtl_error *err);

/* The column names stored under attribute `attr` ("sparse_names" or
 * "dense_names"), n of them, in a new block of n x MTL_NAME_MAX chars (name i
 * at block + i * MTL_NAME_MAX; free() it). *block is NULL when the checkpoint
 * has none (written before names were stored, or by a caller without them). */
int mtl_checkpoint_load_names(const char *path, const char *attr, int n, char **block,
                              mtl_error *err);

/* The checkpoint directory (--checkpoint-dir): ckpt-<step>.h5 files. */
/* dir's checkpoint of `step` */
void mtl_checkpoint_path(const char *dir, int64_t step, char *out, size_t cap);
/* The newest complete checkpoint in dir (by step; a file that does not load
 * is skipped, with a warning on stderr when verbose). */
int mtl_checkpoint_find_latest(const char *dir, char *out, size_t cap, int verbose, mtl_error *err);
/* Delete all but the newest `keep` checkpoints, and temporaries left by
 * killed runs. */
void mtl_checkpoint_prune(const char *dir, int keep);
/* Create dir and its parents (mkdir -p); an existing non-directory fails. */
int mtl_checkpoint_dir_create(const char *dir, mtl_error *err);

/* /predictions float32 [n, cols] with attribute names. Temp name + rename. */
int mtl_predictions_save(const char *path, const float *pred, int64_t n, int cols,
                         const char *const *names, mtl_error *err);

#endif
