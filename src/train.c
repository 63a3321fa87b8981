#define _POSIX_C_SOURCE 200809L
/* The run: one rank's view of synchronous data-parallel training, and
 * prediction from a checkpoint.
 *
 * A run opens its data, builds the model, initializes it or resumes it from a
 * checkpoint, opens its outputs, trains epoch after epoch, and finishes with
 * the test split. Each step (train_step) every rank gathers its share of the
 * global batch, runs forward, and computes the gradient of its part of the
 * summed multi-task loss, scaled by the global number of labelled samples of
 * each task (summed over ranks with a small non-blocking allreduce that
 * overlaps the forward). The gradient block is summed with ONE allreduce (the
 * large embedding tables exchange only their touched rows) and every rank
 * applies the same optimizer step, so replicas stay identical. */
#include "mtl/train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtl/checkpoint.h"
#include "mtl/data.h"
#include "mtl/embedding.h"
#include "mtl/gemm.h"
#include "mtl/metrics.h"
#include "mtl/model.h"
#include "mtl/optim.h"
#include "mtl/prep.h"
#include "mtl/report.h"
#include "mtl/stream.h"

/* ---- signals ---- */

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    if (stop_requested) _exit(128 + sig); /* second signal: at once */
    stop_requested = 1;
}

void mtl_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* ---- errors across ranks ---- */

/* A step every rank takes together: if any rank failed, the first failing
 * rank reports and ends the job; the others wait for the abort. Returns
 * only when every rank succeeded. */
static void agree_ok(const mtl_dist *d, int rc, const mtl_error *err) {
    int first_bad = mtl_dist_max_int(d, rc != MTL_OK ? d->world - d->rank : 0);
    if (first_bad == 0) return;
    if (d->world - d->rank == first_bad) mtl_dist_abort(d, MTL_EXIT_FAILURE, err->msg);
    for (;;) pause(); /* MPI_Abort ends us */
}

/* ---- the trainer ---- */

/* rows of the batch that centers the hidden layers before the first step */
#define CENTER_ROWS 256
/* rows that go through the model at once: a micro-batch's activations and
 * their gradients (~0.6 MB for census MMoE) stay in a core's L2 cache */
#define MICRO_ROWS 256
_Static_assert(MICRO_ROWS >= CENTER_ROWS, "the centering batch must fit the model's arena");
/* rows of a split read at once while evaluating: splits are streamed from
 * their file, never held in memory during training */
#define EVAL_CHUNK 2048
/* steps left out of the steady-state figures (page faults, BLAS warm-up) */
#define WARMUP_STEPS 5

/* Where training stands: what a checkpoint saves and a resume restores. */
typedef struct {
    int64_t step, epoch, batch_in_epoch;
    double best_metric; /* lower is better: the valid loss, or -AUC */
    int64_t best_epoch, bad_epochs;
    int has_best;
    double loss_sum[MTL_MAX_TASKS]; /* this epoch: this rank's summed loss */
    double count[MTL_MAX_TASKS];    /* this epoch: global labelled samples */
} progress;

/* What every rank must know at the end of a step, summed over the ranks in
 * one small non-blocking allreduce that overlaps the first forward. */
typedef struct {
    double count[MTL_MAX_TASKS]; /* labelled samples per task in the global batch */
    double stop;                 /* > 0: a rank was asked to stop (SIGTERM/SIGUSR1) */
    double checkpoint_due;       /* > 0: rank 0's --checkpoint-every-seconds clock ran out */
} step_sums;

typedef struct {
    const mtl_config *cfg;
    const mtl_dist *d;
    int root;  /* rank 0: prints, writes the files */
    int whole; /* --data-order global: every rank holds the whole training file */
    mtl_dataset train, valid, test;
    int has_valid, has_test;
    int64_t valid_split_rows; /* --valid-split: the rows that train; -1 without */
    int64_t train_count;      /* rows in this rank's training order (global order: all) */
    mtl_data_shape shape;
    double prior[MTL_MAX_TASKS]; /* per task: the train labels' mean over all ranks */
    mtl_model *m;
    mtl_optim opt;
    mtl_batch batch;
    mtl_embeddings emb; /* the sparse tables' touched rows */
    int64_t *perm;
    int64_t *rows; /* [capacity] rows of the current batch */
    int local_batch;
    int64_t steps_per_epoch;
    int early_task; /* --early-stop-metric auc:TASK or gauc:TASK: the task; -1: the valid loss */
    int early_gauc; /* ... and it is gauc:TASK */
    float *best;    /* early stopping's best parameters */
    /* evaluation buffers */
    float *eval_pred, *eval_labels;    /* local [n x P], [n x T] */
    float *all_pred, *all_labels;      /* rank 0: [N x P], [N x T] */
    float *eval_weights, *all_weights; /* [n x T], [N x T]: /weights per task */
    int64_t *eval_groups, *all_groups; /* local [n], rank 0: [N] /groups for GAUC */
    int64_t eval_capacity, all_capacity;
    mtl_gate_stats gates; /* what the gates learned over the evaluated rows (all ranks) */
    FILE *metrics;
    int streaming;
    mtl_stream st;
    /* the run so far */
    progress pg;
    mtl_throughput tp;
    double start_time, last_checkpoint_time;
    double dense_exchange_bytes; /* per step, received from the gradient allreduce */
    int64_t nonfinite_skipped;
    int stop_early;
} trainer;

/* The step's embedding rows (and row-sharded tables' fetch: collective).
 * Only running out of memory for longer lists than before fails. */
static void prepare_rows(trainer *tr) {
    mtl_error err;
    if (mtl_embeddings_prepare(&tr->emb, &tr->batch, tr->d, &err) != MTL_OK)
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

/* Forward over rows [begin, begin+count) of ds in inference mode; rank 0
 * receives every rank's predictions and labels (tr->all_pred, all_labels)
 * and computes the metrics, which it broadcasts. The gate statistics are
 * summed over the ranks, so every rank holds those of all rows. */
static void evaluate(trainer *tr, const mtl_dataset *ds, int64_t begin, int64_t count,
                     mtl_eval_result *res) {
    mtl_model *m = tr->m;
    int P = m->P, T = m->T;
    mtl_error err;
    if (tr->streaming) mtl_stream_pause(&tr->st); /* one HDF5 user at a time */
    /* with row-sharded tables every forward fetches rows from the other
     * ranks: each rank makes as many as the busiest, the last ones empty */
    int64_t forwards = 0, all_forwards = 0;
    mtl_gate_stats_reset(&tr->gates);
    if (tr->emb.n_sharded > 0)
        all_forwards =
            mtl_dist_max_int(tr->d, (int)mtl_embeddings_forwards(count, EVAL_CHUNK, m->max_batch));
    for (int64_t done = 0; done < count;) {
        mtl_dataset chunk;
        int64_t want = count - done < EVAL_CHUNK ? count - done : EVAL_CHUNK;
        if (mtl_dataset_load_rows(&chunk, ds->path, ds->first + begin + done, want, &err) != MTL_OK)
            mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg); /* the file changed under us */
        if (mtl_batch_reserve(&tr->batch, &chunk, &err) != MTL_OK)
            mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
        for (int64_t c = 0; c < chunk.n_rows;) {
            int n = (int)(chunk.n_rows - c < m->max_batch ? chunk.n_rows - c : m->max_batch);
            for (int i = 0; i < n; i++) tr->rows[i] = c + i;
            mtl_batch_gather(&tr->batch, &chunk, tr->rows, n);
            prepare_rows(tr);
            forwards++;
            mtl_model_forward(m, &tr->batch, 0);
            mtl_gate_stats_add_forward(&tr->gates, m, n);
            memcpy(tr->eval_pred + (done + c) * P, mtl_model_predictions(m),
                   (size_t)n * (size_t)P * sizeof(float));
            memcpy(tr->eval_labels + (done + c) * T, tr->batch.labels,
                   (size_t)n * (size_t)T * sizeof(float));
            if (chunk.weights) /* gathered and used only when the file has /weights */
                memcpy(tr->eval_weights + (done + c) * T, tr->batch.weights,
                       (size_t)n * (size_t)T * sizeof(float));
            if (chunk.groups)
                memcpy(tr->eval_groups + done + c, chunk.groups + c, (size_t)n * sizeof(int64_t));
            c += n;
        }
        done += chunk.n_rows;
        mtl_dataset_free(&chunk);
    }
    for (tr->batch.n = 0; forwards < all_forwards; forwards++) prepare_rows(tr);
    if (tr->gates.n) mtl_dist_sum_doubles(tr->d, tr->gates.sums, tr->gates.n);
    int64_t total = ds->n_total;
    mtl_dist_gather_floats(tr->d, tr->eval_pred, count * P, tr->all_pred, total * P);
    mtl_dist_gather_floats(tr->d, tr->eval_labels, count * T, tr->all_labels, total * T);
    if (ds->weight_cols) /* weighted losses; AUC and GAUC stay unweighted */
        mtl_dist_gather_floats(tr->d, tr->eval_weights, count * T, tr->all_weights, total * T);
    if (ds->has_groups) /* a group's rows may be on several ranks: GAUC on all of them */
        mtl_dist_gather_int64s(tr->d, tr->eval_groups, count, tr->all_groups, total);
    memset(res, 0, sizeof *res);
    res->has_gauc = ds->has_groups;
    if (tr->root) {
        for (int t = 0; t < T; t++) {
            const float *p = tr->all_pred + mtl_model_prediction_of_task(m, t);
            const float *y = tr->all_labels + t;
            const float *w = ds->weight_cols ? tr->all_weights + t : NULL;
            if (m->shape.task_regression[t]) {
                res->loss[t] = mtl_mse_metric(p, (size_t)P, y, (size_t)T, w, (size_t)total);
                res->mae[t] = mtl_mae_metric(p, (size_t)P, y, (size_t)T, w, (size_t)total);
                res->auc[t] = NAN;
            } else {
                res->loss[t] = mtl_logloss(p, (size_t)P, y, (size_t)T, w, (size_t)total);
                res->auc[t] = mtl_auc(p, (size_t)P, y, (size_t)T, (size_t)total);
                if (res->has_gauc)
                    res->gauc[t] = mtl_gauc(p, (size_t)P, y, (size_t)T, tr->all_groups,
                                            (size_t)total, &res->gauc_groups[t]);
            }
            if (isfinite(res->loss[t])) res->total += m->loss_weights[t] * res->loss[t];
        }
    }
    mtl_dist_bcast_bytes(tr->d, res, sizeof *res, 0);
    res->gates = tr->gates.n_gates > 0 ? &tr->gates : NULL; /* this rank's, after the bcast */
}

/* rows of split ds this rank evaluates */
static void eval_range(const trainer *tr, const mtl_dataset *ds, int64_t *begin, int64_t *count) {
    mtl_shard_range(ds->n_total, tr->d->rank, tr->d->world, begin, count);
}

/* Evaluate this rank's share of a split. */
static void evaluate_split(trainer *tr, const mtl_dataset *ds, mtl_eval_result *res) {
    int64_t begin, count;
    eval_range(tr, ds, &begin, &count);
    evaluate(tr, ds, begin, count, res);
}

/* ---- checkpoints ---- */

/* A checkpoint that resumes at (epoch, batch_in_epoch). Rank 0 writes; with
 * row-sharded tables every rank adds its rows; every rank learns whether it
 * worked. */
static int save_checkpoint(trainer *tr, int64_t epoch, int64_t batch_in_epoch, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    const progress *pg = &tr->pg;
    if (tr->streaming) mtl_stream_pause(&tr->st); /* one HDF5 user at a time */
    int rc = MTL_OK;
    /* the epoch's train loss so far, over all ranks: rank 0 carries it on resume */
    double loss_sum[MTL_MAX_TASKS];
    memcpy(loss_sum, pg->loss_sum, sizeof loss_sum);
    mtl_dist_sum_doubles(tr->d, loss_sum, (size_t)tr->m->T);
    const float *best = pg->has_best ? tr->best : NULL;
    char path[MTL_PATH_MAX + 32], tmp[MTL_CKPT_TMP_MAX] = "";
    mtl_checkpoint_path(cfg->checkpoint_dir, pg->step, path, sizeof path);
    if (tr->root) {
        mtl_ckpt_state st;
        memset(&st, 0, sizeof st);
        st.sparse_names = tr->train.sparse_names;
        st.dense_names = tr->train.dense_names;
        st.step = pg->step;
        st.epoch = epoch;
        st.batch_in_epoch = batch_in_epoch;
        st.world_size = tr->d->world;
        st.seed = cfg->seed;
        memcpy(st.dropout_rng, tr->m->dropout_rng.s, sizeof st.dropout_rng);
        st.best_metric = pg->best_metric;
        st.best_epoch = pg->best_epoch;
        st.bad_epochs = pg->bad_epochs;
        memcpy(st.train_loss_sum, loss_sum, sizeof st.train_loss_sum);
        memcpy(st.train_count, pg->count, sizeof st.train_count);
        mtl_config_model_text(cfg, st.config, sizeof st.config);
        st.shape = tr->m->shape;
        rc = mtl_checkpoint_begin(path, tr->m, best, &st, tmp, sizeof tmp, err);
    }
    if (mtl_checkpoint_has_rank_rows(tr->m)) {
        /* the other ranks add their rows of the row-sharded tables and their
         * owned optimizer rows of the replicated sparse ones, one at a time */
        mtl_dist_bcast_bytes(tr->d, tmp, sizeof tmp, 0);
        for (int r = 1; r < tr->d->world; r++) {
            int failed = mtl_dist_max_int(tr->d, rc != MTL_OK);
            if (!failed && tr->d->rank == r) rc = mtl_checkpoint_add_rows(tmp, tr->m, best, err);
        }
    }
    int bad = mtl_dist_max_int(tr->d, rc != MTL_OK);
    if (tr->root) {
        if (!bad)
            rc = mtl_checkpoint_commit(tmp, path, err);
        else if (rc == MTL_OK)
            unlink(tmp); /* another rank failed */
        if (rc == MTL_OK) mtl_checkpoint_prune(cfg->checkpoint_dir, cfg->keep_checkpoints);
    }
    bad = mtl_dist_max_int(tr->d, rc != MTL_OK);
    if (bad && !tr->root) mtl_fail(err, NULL, "rank 0 could not write a checkpoint");
    tr->last_checkpoint_time = mtl_dist_time();
    return bad ? MTL_ERR : MTL_OK;
}

/* ---- setup ---- */

/* An output file can be created: its directory exists and it is not a
 * directory itself. */
static int check_writable(const char *path, const char *option, mtl_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return mtl_fail(err, path, "%s: is a directory", option);
    char dir[MTL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) != 0)
        return mtl_fail(err, path, "%s: directory %s does not exist", option, dir);
    if (!S_ISDIR(st.st_mode)) return mtl_fail(err, path, "%s: %s is not a directory", option, dir);
    if (access(dir, W_OK) != 0)
        return mtl_fail(err, path, "%s: directory %s is not writable", option, dir);
    return MTL_OK;
}

/* n_part >= 0: only the file's first n_part rows (--valid-split) */
static int load_split(trainer *tr, mtl_dataset *ds, const char *path, int whole, int64_t n_part,
                      mtl_error *err) {
    const mtl_dist *d = tr->d;
    int rank = whole ? 0 : d->rank, world = whole ? 1 : d->world;
    int rc = n_part >= 0 ? mtl_dataset_load_part(ds, path, 0, n_part, rank, world, 1, err)
                         : mtl_dataset_load_compact(ds, path, rank, world, err);
    if (rc != MTL_OK && strstr(err->msg, "out of memory")) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len,
                 " (the training shard does not fit in memory: --stream reads it in chunks%s)",
                 whole ? "; with --data-order local each rank holds only its shard" : "");
    }
    return rc;
}

/* A split that is only evaluated: its header, and one pass over this rank's
 * rows in chunks so a bad value fails now rather than after the first epoch.
 * first > 0: the split is the file's rows from `first` on (--valid-split). */
static int open_eval_split(trainer *tr, mtl_dataset *ds, const char *path, int64_t first,
                           mtl_error *err) {
    if (mtl_dataset_load_header(ds, path, err) != MTL_OK) return MTL_ERR;
    ds->first = first;
    ds->n_total -= first;
    int64_t begin, count;
    mtl_shard_range(ds->n_total, tr->d->rank, tr->d->world, &begin, &count);
    for (int64_t done = 0; done < count; done += EVAL_CHUNK) {
        mtl_dataset chunk;
        int64_t want = count - done < EVAL_CHUNK ? count - done : EVAL_CHUNK;
        if (mtl_dataset_load_rows(&chunk, path, first + begin + done, want, err) != MTL_OK)
            return MTL_ERR;
        mtl_dataset_free(&chunk);
    }
    return MTL_OK;
}

/* ---- multi-valued fields in the data shape ---- */

static void shape_multi(mtl_data_shape *sh, const mtl_dataset *ds) {
    sh->M = ds->M;
    for (int j = 0; j < ds->M; j++) {
        sh->multi_vocab_sizes[j] = ds->multi_vocab[j];
        sh->multi_mean[j] = ds->multi_mean[j];
    }
}

/* ds's /multi fields are the ones the model (or the training file) has. */
static int same_multi_shape(const mtl_dataset *ds, const mtl_data_shape *sh, mtl_error *err) {
    if (ds->M != sh->M)
        return mtl_fail(err, ds->path, "/multi: has %d multi-valued fields, the model %d", ds->M,
                        sh->M);
    for (int j = 0; j < ds->M; j++)
        if (ds->multi_vocab[j] != sh->multi_vocab_sizes[j] ||
            ds->multi_mean[j] != sh->multi_mean[j])
            return mtl_fail(err, ds->path,
                            "/multi/%s: vocab_size %lld and pooling %s, but the model has %lld "
                            "and %s (encode all splits alike: mtl_prep --vocab-from)",
                            ds->multi_names[j], (long long)ds->multi_vocab[j],
                            ds->multi_mean[j] ? "mean" : "sum", (long long)sh->multi_vocab_sizes[j],
                            sh->multi_mean[j] ? "mean" : "sum");
    return MTL_OK;
}

static int same_layout(const mtl_dataset *a, const mtl_dataset *b, mtl_error *err) {
    if (a->S != b->S || a->D != b->D || a->T != b->T)
        return mtl_fail(err, b->path,
                        "has %d sparse, %d dense and %d label columns, but %s has %d, %d and %d",
                        b->S, b->D, b->T, a->path, a->S, a->D, a->T);
    for (int s = 0; s < a->S; s++)
        if (a->vocab_sizes[s] != b->vocab_sizes[s])
            return mtl_fail(err, b->path,
                            "/sparse: vocab_sizes[%d] (%s) is %lld, but %lld in %s (encode all "
                            "splits with the same vocabulary: mtl_prep --vocab-from)",
                            s, b->sparse_names[s], (long long)b->vocab_sizes[s],
                            (long long)a->vocab_sizes[s], a->path);
    for (int t = 0; t < a->T; t++)
        if (strcmp(a->task_names[t], b->task_names[t]) != 0)
            return mtl_fail(err, b->path, "/labels: task %d is '%s', but '%s' in %s", t,
                            b->task_names[t], a->task_names[t], a->path);
    mtl_data_shape sh;
    memset(&sh, 0, sizeof sh);
    shape_multi(&sh, a);
    return same_multi_shape(b, &sh, err);
}

static int shape_from_dataset(mtl_data_shape *sh, const mtl_dataset *ds, mtl_error *err) {
    memset(sh, 0, sizeof *sh);
    if (ds->S > MTL_MAX_FIELDS)
        return mtl_fail(err, ds->path, "/sparse: %d fields (at most %d)", ds->S, MTL_MAX_FIELDS);
    if (ds->T > MTL_MAX_TASKS || ds->T < 1)
        return mtl_fail(err, ds->path, "/labels: %d tasks (1..%d supported)", ds->T, MTL_MAX_TASKS);
    sh->S = ds->S;
    sh->D = ds->D;
    sh->T = ds->T;
    for (int s = 0; s < ds->S; s++) sh->vocab_sizes[s] = ds->vocab_sizes[s];
    shape_multi(sh, ds);
    for (int t = 0; t < ds->T; t++) {
        if (strlen(ds->task_names[t]) >= sizeof sh->task_names[t])
            return mtl_fail(err, ds->path, "/labels: task name '%s' is too long",
                            ds->task_names[t]);
        strcpy(sh->task_names[t], ds->task_names[t]);
    }
    return MTL_OK;
}

static int alloc_eval(trainer *tr, int64_t local_rows, int64_t total_rows, mtl_error *err) {
    int P = tr->m->P, T = tr->m->T;
    if (tr->gates.n_gates != tr->m->n_gates) {
        mtl_gate_stats_free(&tr->gates);
        if (mtl_gate_stats_init_model(&tr->gates, tr->m, err) != MTL_OK) return MTL_ERR;
    }
    if (local_rows > tr->eval_capacity) {
        free(tr->eval_pred);
        free(tr->eval_labels);
        tr->eval_pred =
            mtl_alloc((size_t)local_rows * (size_t)P, sizeof(float), "predictions", err);
        tr->eval_labels = mtl_alloc((size_t)local_rows * (size_t)T, sizeof(float), "labels", err);
        free(tr->eval_weights);
        tr->eval_weights = mtl_alloc((size_t)local_rows * (size_t)T, sizeof(float), "weights", err);
        free(tr->eval_groups);
        tr->eval_groups = mtl_alloc((size_t)local_rows, sizeof(int64_t), "groups", err);
        if (!tr->eval_pred || !tr->eval_labels || !tr->eval_weights || !tr->eval_groups)
            return MTL_ERR;
        tr->eval_capacity = local_rows;
    }
    if (tr->d->rank == 0 && total_rows > tr->all_capacity) {
        free(tr->all_pred);
        free(tr->all_labels);
        tr->all_pred = mtl_alloc((size_t)total_rows * (size_t)P, sizeof(float), "predictions", err);
        tr->all_labels = mtl_alloc((size_t)total_rows * (size_t)T, sizeof(float), "labels", err);
        free(tr->all_weights);
        tr->all_weights = mtl_alloc((size_t)total_rows * (size_t)T, sizeof(float), "weights", err);
        free(tr->all_groups);
        tr->all_groups = mtl_alloc((size_t)total_rows, sizeof(int64_t), "groups", err);
        if (!tr->all_pred || !tr->all_labels || !tr->all_weights || !tr->all_groups) return MTL_ERR;
        tr->all_capacity = total_rows;
    }
    return MTL_OK;
}

static void trainer_free(trainer *tr) {
    mtl_dataset_free(&tr->train);
    mtl_dataset_free(&tr->valid);
    mtl_dataset_free(&tr->test);
    mtl_model_free(tr->m);
    mtl_batch_free(&tr->batch);
    mtl_embeddings_free(&tr->emb);
    free(tr->perm);
    free(tr->rows);
    free(tr->best);
    free(tr->eval_pred);
    free(tr->eval_labels);
    free(tr->all_pred);
    free(tr->all_labels);
    free(tr->eval_weights);
    free(tr->all_weights);
    free(tr->eval_groups);
    free(tr->all_groups);
    mtl_gate_stats_free(&tr->gates);
    if (tr->metrics) fclose(tr->metrics);
    if (tr->streaming) mtl_stream_free(&tr->st);
}

/* Per task over this rank's training rows: the labelled rows' summed weight
 * and weighted label sum (the base rate the loss sees: a row of weight 0 is
 * not in it), and the first row whose label is neither 0 nor 1 (-1 if none).
 * Streaming reads the shard once here, chunk by chunk. */
typedef struct {
    double sum[MTL_MAX_TASKS], count[MTL_MAX_TASKS];
    int64_t nonbinary_row[MTL_MAX_TASKS];
} label_stats;

static void scan_labels(const mtl_dataset *ds, int64_t first, int64_t n, int T, label_stats *ls) {
    const float *labels = ds->labels + first * T;
    int64_t row0 = ds->row_begin + first;
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            float y = labels[i * T + t];
            if (isnan(y)) continue;
            const float *w = ds->weights ? ds->weights + (first + i) * ds->weight_cols : NULL;
            double wt = !w ? 1.0 : w[ds->weight_cols > 1 ? t : 0];
            ls->sum[t] += wt * y;
            ls->count[t] += wt;
            if (y != 0.0f && y != 1.0f && ls->nonbinary_row[t] < 0) ls->nonbinary_row[t] = row0 + i;
        }
}

static int train_label_stats(trainer *tr, int T, label_stats *ls, mtl_error *err) {
    memset(ls, 0, sizeof *ls);
    for (int t = 0; t < T; t++) ls->nonbinary_row[t] = -1;
    const mtl_dataset *ds = &tr->train;
    if (tr->streaming) {
        for (int64_t c = 0; c < tr->st.n_chunks; c++) {
            mtl_dataset chunk;
            if (mtl_stream_load_chunk(&tr->st, c, &chunk, err) != MTL_OK) return MTL_ERR;
            scan_labels(&chunk, 0, chunk.n_rows, T, ls);
            mtl_dataset_free(&chunk);
        }
        return MTL_OK;
    }
    int64_t b0 = 0, n0 = ds->n_rows;
    if (tr->cfg->data_order_global)
        mtl_shard_range(ds->n_total, tr->d->rank, tr->d->world, &b0, &n0);
    scan_labels(ds, b0, n0, T, ls);
    return MTL_OK;
}

/* Binary or regression per task: given, or inferred from the train labels
 * (all labels 0/1 -> binary); all ranks agree. */
static int task_types(trainer *tr, mtl_data_shape *sh, const label_stats *ls, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    if (cfg->n_task_types) {
        if (cfg->n_task_types != sh->T)
            return mtl_fail(err, NULL, "--task-types: %d types given for %d tasks",
                            cfg->n_task_types, sh->T);
        for (int t = 0; t < sh->T; t++) sh->task_regression[t] = cfg->task_regression[t];
    } else {
        double nonbinary[MTL_MAX_TASKS] = {0};
        for (int t = 0; t < sh->T; t++) nonbinary[t] = ls->nonbinary_row[t] >= 0;
        mtl_dist_sum_doubles(tr->d, nonbinary, (size_t)sh->T);
        for (int t = 0; t < sh->T; t++) sh->task_regression[t] = nonbinary[t] > 0;
    }
    for (int t = 0; t < sh->T; t++)
        if (!sh->task_regression[t] && ls->nonbinary_row[t] >= 0)
            return mtl_fail(err, tr->train.path,
                            "/labels: row %lld, task %s: not 0 or 1 (binary task)",
                            (long long)ls->nonbinary_row[t], sh->task_names[t]);
    return MTL_OK;
}

/* This rank's rows at epoch positions [first, first+n) into the batch. */
static void gather_train(trainer *tr, int64_t first, int n) {
    if (!tr->streaming) {
        mtl_batch_gather(&tr->batch, &tr->train, tr->perm + first, n);
        return;
    }
    mtl_error err;
    if (mtl_stream_gather(&tr->st, first, n, &tr->batch, &err) != MTL_OK)
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

static void start_epoch(trainer *tr, int64_t epoch) {
    if (tr->streaming) {
        mtl_stream_epoch(&tr->st, epoch);
        return;
    }
    mtl_shuffle(tr->perm, tr->train_count, tr->cfg->seed, epoch,
                tr->cfg->data_order_global ? 0 : tr->d->rank);
}

/* The task of --early-stop-metric auc:TASK or gauc:TASK (*gauc set for the
 * latter), -1 for valid_loss, below -1 on an error (err filled). */
static int early_metric_task(const trainer *tr, int *gauc, mtl_error *err) {
    const char *metric = tr->cfg->early_stop_metric;
    *gauc = strncmp(metric, "gauc:", 5) == 0;
    if (!*gauc && strncmp(metric, "auc:", 4) != 0) return -1;
    const char *task = metric + (*gauc ? 5 : 4);
    if (*gauc && tr->has_valid && !tr->valid.has_groups)
        return mtl_fail(err, tr->valid.path,
                        "--early-stop-metric %s: the validation data has no /groups "
                        "(GAUC needs a group id per row)",
                        metric) -
               1;
    for (int t = 0; t < tr->m->T; t++)
        if (strcmp(tr->m->shape.task_names[t], task) == 0) {
            if (tr->m->shape.task_regression[t])
                return mtl_fail(err, NULL,
                                "--early-stop-metric: task %s is a regression task (no AUC)",
                                task) -
                       1;
            return t;
        }
    return mtl_fail(err, NULL, "--early-stop-metric: '%s' is not a task of the data", task) - 1;
}

/* --valid-split F: the tail of the training file, F of its rows (rounded as
 * mtl_prep --split rounds), validates; the head trains. *n_train: the rows
 * that train, -1 without --valid-split. */
static int valid_split_rows(const mtl_config *cfg, int64_t *n_train, mtl_error *err) {
    *n_train = -1;
    if (cfg->valid_split <= 0) return MTL_OK;
    mtl_dataset h;
    if (mtl_dataset_load_header(&h, cfg->train_path, err) != MTL_OK) return MTL_ERR;
    int64_t n = h.n_total, count[2];
    mtl_dataset_free(&h);
    const double frac[2] = {1.0 - cfg->valid_split, cfg->valid_split};
    mtl_split_counts(n, frac, 2, count);
    if (count[0] < 1 || count[1] < 1)
        return mtl_fail(err, cfg->train_path,
                        "--valid-split %g: of %lld rows, %lld would train and %lld validate "
                        "(each needs at least one)",
                        cfg->valid_split, (long long)n, (long long)count[0], (long long)count[1]);
    *n_train = count[0];
    return MTL_OK;
}

/* ---- the run's phases; each returns an exit status ---- */

/* This rank's shard of every split (whole files in global order mode), the
 * data's shape, and the task types. */
static int open_data(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    const mtl_dist *d = tr->d;
    if (cfg->stream && tr->whole) {
        mtl_fail(err, NULL, "--stream: works with --data-order local only");
        return MTL_EXIT_USAGE;
    }
    tr->streaming = cfg->stream;
    int64_t n_train; /* --valid-split: the rows that train, the rest validate */
    int rc = valid_split_rows(cfg, &n_train, err);
    tr->valid_split_rows = n_train;
    if (rc == MTL_OK)
        rc = tr->streaming ? mtl_dataset_load_header(&tr->train, cfg->train_path, err)
                           : load_split(tr, &tr->train, cfg->train_path, tr->whole, n_train, err);
    if (rc == MTL_OK && tr->streaming && n_train >= 0) tr->train.n_total = n_train;
    if (rc == MTL_OK && tr->streaming)
        rc = mtl_stream_init(&tr->st, tr->train.path, tr->train.n_total, d->rank, d->world,
                             cfg->stream_chunk_rows, cfg->seed, err);
    agree_ok(d, rc, err);
    if (tr->train.n_total < d->world) {
        mtl_fail(err, cfg->train_path,
                 "%lld training rows cannot be shared by %d ranks: use at most %lld ranks",
                 (long long)tr->train.n_total, d->world, (long long)tr->train.n_total);
        return MTL_EXIT_USAGE;
    }
    if (cfg->valid_path[0] || n_train >= 0) {
        rc = n_train >= 0 ? open_eval_split(tr, &tr->valid, cfg->train_path, n_train, err)
                          : open_eval_split(tr, &tr->valid, cfg->valid_path, 0, err);
        if (rc == MTL_OK) rc = same_layout(&tr->train, &tr->valid, err);
        agree_ok(d, rc, err);
        tr->has_valid = 1;
    }
    if (cfg->test_path[0]) {
        rc = open_eval_split(tr, &tr->test, cfg->test_path, 0, err);
        if (rc == MTL_OK) rc = same_layout(&tr->train, &tr->test, err);
        agree_ok(d, rc, err);
        tr->has_test = 1;
    }
    label_stats ls;
    rc = shape_from_dataset(&tr->shape, &tr->train, err);
    if (rc == MTL_OK) rc = train_label_stats(tr, tr->shape.T, &ls, err);
    agree_ok(d, rc, err);
    rc = task_types(tr, &tr->shape, &ls, err);
    agree_ok(d, rc, err);
    /* each task starts at its base rate (or mean), over all ranks' rows */
    double stats[2 * MTL_MAX_TASKS] = {0};
    int T = tr->shape.T;
    for (int t = 0; t < T; t++) {
        stats[t] = ls.sum[t];
        stats[T + t] = ls.count[t];
    }
    mtl_dist_sum_doubles(d, stats, (size_t)(2 * T));
    for (int t = 0; t < T; t++) tr->prior[t] = stats[T + t] > 0 ? stats[t] / stats[T + t] : NAN;
    return MTL_EXIT_OK;
}

/* The rows a forward takes: micro-batches of MICRO_ROWS rows, except with
 * batch norm (its statistics are over the whole local batch) and BLAS threads
 * (they need big products). Training and predict score in the same pieces: on
 * OpenBLAS a row's rounding depends on the rows beside it in a product. */
static int micro_rows(const mtl_config *cfg, int capacity) {
    return cfg->batch_norm || cfg->threads > 1 || capacity < MICRO_ROWS ? capacity : MICRO_ROWS;
}

/* The batch shares, the model, the optimizer and every buffer of the run:
 * nothing is allocated after this. */
static int build(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    const mtl_dist *d = tr->d;
    /* batches: the global batch is shared out over the ranks */
    int64_t local_begin, local_count;
    mtl_shard_range(cfg->batch_size, d->rank, d->world, &local_begin, &local_count);
    if (cfg->batch_size < d->world) {
        mtl_fail(err, NULL, "--batch-size: %d is smaller than the number of ranks (%d)",
                 cfg->batch_size, d->world);
        return MTL_EXIT_USAGE;
    }
    int capacity = (int)((cfg->batch_size + d->world - 1) / d->world);
    /* the first-step centering reads CENTER_ROWS rows at once */
    if (capacity < CENTER_ROWS) capacity = CENTER_ROWS;
    tr->local_batch = (int)local_count;
    if (tr->whole) {
        tr->train_count = tr->train.n_total;
        tr->steps_per_epoch = (tr->train.n_total + cfg->batch_size - 1) / cfg->batch_size;
    } else {
        tr->train_count = tr->streaming ? tr->st.shard_count : tr->train.n_rows;
        int64_t mine = (tr->train_count + tr->local_batch - 1) / tr->local_batch;
        tr->steps_per_epoch = mtl_dist_max_int(d, (int)mine);
    }

    int micro = micro_rows(cfg, capacity);
    /* the model learns this rank's place in the job (row-sharded tables) */
    mtl_config job = *cfg;
    job.rank = d->rank;
    job.world = d->world;
    job.rank_memory_mb = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
                         1048576.0 / d->local_world;
    if (mtl_model_create(&tr->m, &job, &tr->shape, micro, err) != MTL_OK)
        return MTL_EXIT_USAGE; /* same on every rank: a configuration problem */
    mtl_model *m = tr->m;
    tr->early_task = early_metric_task(tr, &tr->early_gauc, err);
    if (tr->early_task < -1) return MTL_EXIT_USAGE;
    mtl_optim_defaults(&tr->opt, (mtl_optim_kind)cfg->optimizer);
    tr->opt.lr = cfg->lr;
    tr->opt.momentum = cfg->momentum;
    if (cfg->optimizer == MTL_OPT_ADAGRAD)
        for (size_t i = 0; i < m->params.size; i++) m->params.v[i] = tr->opt.adagrad_init;
    int rc = mtl_batch_alloc(&tr->batch, capacity, tr->shape.S, tr->shape.D, tr->shape.T, err);
    if (rc == MTL_OK) rc = mtl_batch_alloc_multi(&tr->batch, tr->shape.M, err);
    if (rc == MTL_OK && !tr->streaming) rc = mtl_batch_reserve(&tr->batch, &tr->train, err);
    if (rc == MTL_OK) {
        tr->perm = mtl_alloc(tr->streaming ? 1 : (size_t)tr->train_count, sizeof(int64_t),
                             "shuffle order", err);
        tr->rows = mtl_alloc((size_t)capacity, sizeof(int64_t), "batch rows", err);
        tr->best = mtl_alloc(m->params.size, sizeof(float), "best parameters", err);
        if (!tr->perm || !tr->rows || !tr->best) rc = MTL_ERR;
    }
    if (rc == MTL_OK) rc = mtl_embeddings_init(&tr->emb, m, capacity, d->world, err);
    int64_t max_eval = 0, max_total = 0;
    const mtl_dataset *splits[2] = {tr->has_valid ? &tr->valid : NULL,
                                    tr->has_test ? &tr->test : NULL};
    for (int i = 0; i < 2; i++) {
        if (!splits[i]) continue;
        int64_t b, c;
        eval_range(tr, splits[i], &b, &c);
        if (c > max_eval) max_eval = c;
        if (splits[i]->n_total > max_total) max_total = splits[i]->n_total;
    }
    if (rc == MTL_OK) rc = alloc_eval(tr, max_eval, max_total, err);
    agree_ok(d, rc, err);
    /* bytes a rank receives per step in the gradient exchange: a ring
     * allreduce of the block receives 2 (P-1)/P of it (the model, as MPI
     * does not report it); the sparse exchange adds the other ranks' rows */
    tr->dense_exchange_bytes =
        d->world > 1 ? 2.0 * (d->world - 1) / d->world * (double)m->params.block_size * 4.0 : 0.0;
    return MTL_EXIT_OK;
}

/* A fresh model: each task at its prior, hidden biases centered, the same
 * parameters on every rank. */
static void init_parameters(trainer *tr) {
    const mtl_config *cfg = tr->cfg;
    mtl_model *m = tr->m;
    mtl_model_set_prior(m, tr->prior);
    /* hidden biases centered on the first CENTER_ROWS rows of rank 0's first
     * epoch order (the broadcast below gives every rank rank 0's parameters);
     * a fixed count, so --data-order global starts the same on any number of
     * ranks */
    int64_t n_init = tr->train_count < CENTER_ROWS ? tr->train_count : CENTER_ROWS;
    start_epoch(tr, 0);
    gather_train(tr, 0, (int)n_init);
    prepare_rows(tr);
    mtl_model_center_init(m, &tr->batch);
    /* replicas start identical: rank 0's centered biases; the embedding
     * tables, GBs at large vocabularies, are drawn alike on every rank
     * (params.c's counter-based draw) and need no broadcast */
    mtl_dist_bcast_floats(tr->d, m->params.values, m->params.dense_size, 0);
    mtl_params_changed(&m->params);
    mtl_rng_seed(&m->dropout_rng, cfg->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)tr->d->rank + 1);
    memset(&tr->pg, 0, sizeof tr->pg);
    tr->pg.best_metric = INFINITY;
    tr->pg.best_epoch = -1;
}

/* --resume: the parameters, optimizer state and position of a checkpoint. */
static int resume(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    const mtl_dist *d = tr->d;
    progress *pg = &tr->pg;
    mtl_model *m = tr->m;
    char path[MTL_PATH_MAX + 32];
    int rc = MTL_OK;
    if (strcmp(cfg->resume, "latest") == 0) {
        if (!cfg->checkpoint_dir[0]) {
            mtl_fail(err, NULL, "--resume latest: needs --checkpoint-dir");
            return MTL_EXIT_USAGE;
        }
        rc = mtl_checkpoint_find_latest(cfg->checkpoint_dir, path, sizeof path, tr->root, err);
    } else {
        snprintf(path, sizeof path, "%s", cfg->resume);
    }
    mtl_ckpt_state st;
    if (rc == MTL_OK) rc = mtl_checkpoint_load_state(path, &st, err);
    if (rc == MTL_OK) {
        char mine[8192];
        if (!mtl_config_same_model(cfg, st.config, mine, sizeof mine))
            rc = mtl_fail(err, path,
                          "--resume: the checkpoint's model differs from this run's.\n"
                          "checkpoint:\n%s\nthis run:\n%s",
                          st.config, mine);
    }
    const mtl_data_shape *sh = &tr->shape;
    if (rc == MTL_OK &&
        (st.shape.S != sh->S || st.shape.D != sh->D || st.shape.T != sh->T || st.shape.M != sh->M))
        rc = mtl_fail(err, path, "--resume: the checkpoint was trained on data of another shape");
    if (rc == MTL_OK) rc = mtl_checkpoint_load_tensors(path, m, 1, tr->best, &pg->has_best, err);
    agree_ok(d, rc, err);
    pg->step = st.step;
    pg->epoch = st.epoch;
    pg->batch_in_epoch = st.batch_in_epoch;
    pg->best_metric = st.best_metric;
    pg->best_epoch = st.best_epoch;
    pg->bad_epochs = st.bad_epochs;
    if (tr->root) memcpy(pg->loss_sum, st.train_loss_sum, sizeof pg->loss_sum);
    memcpy(pg->count, st.train_count, sizeof pg->count);
    if (st.world_size == d->world) {
        /* rank 0's generator is in the file; in a same-size resume each rank
         * derives its own from it, as at the start */
        memcpy(m->dropout_rng.s, st.dropout_rng, sizeof st.dropout_rng);
        for (int k = 0; k < d->rank; k++) mtl_rng_next(&m->dropout_rng);
    } else if (!tr->whole && pg->batch_in_epoch >= tr->steps_per_epoch) {
        /* the partial epoch's position does not carry over to other shards */
        pg->batch_in_epoch = 0;
    }
    if (tr->root)
        printf("resumed from %s at epoch %lld, step %lld%s\n", path, (long long)pg->epoch + 1,
               (long long)pg->step,
               st.world_size != d->world ? " (saved by a different number of ranks: the data "
                                           "order differs from the original run)"
                                         : "");
    return MTL_EXIT_OK;
}

/* Outputs written at the end are checked now, not after hours of training;
 * the checkpoint directory before the metrics file, so a failure leaves no
 * empty file. */
static int open_outputs(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    int rc = MTL_OK;
    if (tr->root && cfg->predict_out[0])
        rc = check_writable(cfg->predict_out, "--predict-out", err);
    if (rc == MTL_OK && tr->root && cfg->metrics_out[0])
        rc = check_writable(cfg->metrics_out, "--metrics-out", err);
    if (rc == MTL_OK && tr->root && cfg->checkpoint_dir[0])
        rc = mtl_checkpoint_dir_create(cfg->checkpoint_dir, err);
    if (rc == MTL_OK && tr->root && cfg->metrics_out[0]) {
        tr->metrics = fopen(cfg->metrics_out, tr->pg.step > 0 ? "a" : "w");
        if (!tr->metrics)
            rc = mtl_fail(err, cfg->metrics_out, "cannot open for writing: %s", strerror(errno));
    }
    agree_ok(tr->d, rc, err);
    if (tr->root) {
        mtl_run_header h = {
            .model_name = cfg->model->name,
            .world_size = tr->d->world,
            .train_rows = tr->train.n_total,
            .valid_rows = tr->has_valid ? tr->valid.n_total : -1,
            .valid_from_split = tr->valid_split_rows >= 0,
            .test_rows = tr->has_test ? tr->test.n_total : -1,
            .sparse_tables = tr->emb.n_tables,
        };
        mtl_report_start(cfg->quiet, tr->m, &h);
    }
    tr->last_checkpoint_time = mtl_dist_time();
    return MTL_EXIT_OK;
}

/* ---- one step ---- */

/* This rank's rows of the step: epoch positions [*first, *first + *n). */
static void step_rows(const trainer *tr, int64_t *first, int64_t *n) {
    const mtl_config *cfg = tr->cfg;
    int64_t batch = tr->pg.batch_in_epoch;
    if (tr->whole) {
        /* the global batch's rows in the one order, shared out over the ranks */
        int64_t gb = batch * cfg->batch_size;
        int64_t gn =
            tr->train_count - gb < cfg->batch_size ? tr->train_count - gb : cfg->batch_size;
        int64_t off;
        mtl_shard_range(gn, tr->d->rank, tr->d->world, &off, n);
        *first = gb + off;
    } else {
        *first = batch * tr->local_batch;
        *n = tr->train_count - *first;
        if (*n > tr->local_batch) *n = tr->local_batch;
        if (*n < 0) *n = 0; /* this rank ran out: it still joins every allreduce */
    }
}

/* The global batch's samples in this step (the same on every rank). */
static double step_samples(const trainer *tr) {
    const mtl_config *cfg = tr->cfg;
    int64_t gb = tr->pg.batch_in_epoch * (int64_t)cfg->batch_size;
    int64_t all = tr->whole ? tr->train_count : tr->train.n_total;
    int64_t gn = all - gb < cfg->batch_size ? all - gb : cfg->batch_size;
    return (double)(gn > 0 ? gn : 0);
}

/* Forward, loss and backward of this rank's n rows, in micro-batches of
 * m->max_batch rows whose activations stay in the core's cache; their
 * gradients add up in the one gradient block. The loss of each task is a
 * mean over the global batch, so its scale needs the labelled counts of all
 * ranks: they are summed (with the step's stop and checkpoint flags) while
 * the first micro-batch goes forward. */
static void forward_backward(trainer *tr, int n, step_sums *sums, double *loss_sum) {
    const mtl_config *cfg = tr->cfg;
    const mtl_dist *d = tr->d;
    mtl_model *m = tr->m;
    memset(sums, 0, sizeof *sums);
    mtl_model_count_labels(m, &tr->batch, sums->count);
    sums->stop = stop_requested ? 1 : 0;
    sums->checkpoint_due =
        tr->root && cfg->checkpoint_dir[0] && cfg->checkpoint_every_seconds > 0 &&
        mtl_dist_time() - tr->last_checkpoint_time >= cfg->checkpoint_every_seconds;
    mtl_dist_pending pending;
    mtl_dist_sum_doubles_start(d, (double *)sums, sizeof *sums / sizeof(double), &pending);
    int part_rows = m->max_batch;
    mtl_batch part = mtl_batch_rows(&tr->batch, 0, n < part_rows ? n : part_rows);
    if (part.n > 0) mtl_model_forward(m, &part, 1);
    mtl_dist_wait(d, &pending);
    if (m->buffers.n > 0 && d->world > 1) {
        /* batch-norm running statistics: the replicas' average, so every rank
         * (and the checkpoint) holds the same model */
        mtl_dist_sum_floats(d, m->buffers.values, m->buffers.size);
        for (size_t i = 0; i < m->buffers.size; i++) m->buffers.values[i] /= (float)d->world;
    }
    memset(m->params.grads, 0, m->params.block_size * sizeof(float));
    memset(loss_sum, 0, (size_t)m->T * sizeof(double));
    for (int first = 0;;) {
        double part_loss[MTL_MAX_TASKS];
        /* the uncertainty weighting's constant term once per step: rank 0's first part */
        mtl_model_loss(m, &part, sums->count, tr->root && first == 0, part_loss);
        for (int t = 0; t < m->T; t++) loss_sum[t] += part_loss[t];
        if (part.n > 0) mtl_model_backward(m, &part);
        first += part.n;
        if (first >= n) break;
        part = mtl_batch_rows(&tr->batch, first, n - first < part_rows ? n - first : part_rows);
        mtl_model_forward(m, &part, 1);
    }
}

/* Sum the ranks' gradients: the dense block in one allreduce, the sparse
 * tables' touched rows by their own exchange. */
static void exchange_gradients(trainer *tr) {
    mtl_error err;
    mtl_dist_sum_floats(tr->d, tr->m->params.grads, tr->m->params.block_size);
    if (mtl_embeddings_exchange(&tr->emb, tr->d, &err) != MTL_OK)
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

/* The same optimizer step on every rank: L2 on the dense block's tensors,
 * then the dense update, then the sparse tables' touched rows. */
static void update(trainer *tr) {
    const mtl_config *cfg = tr->cfg;
    mtl_model *m = tr->m;
    for (int i = 0; i < m->params.n; i++) {
        const mtl_tensor *t = &m->params.tensors[i];
        float l2 = t->reg == MTL_REG_DNN         ? cfg->l2_dnn
                   : t->reg == MTL_REG_EMBEDDING ? cfg->l2_embedding
                                                 : 0.0f;
        if (l2 > 0 && !t->sparse)
            mtl_add_l2(m->params.grads + t->offset, m->params.values + t->offset, t->size, l2);
    }
    tr->pg.step++;
    mtl_optim_update(&tr->opt, m->params.values, m->params.grads, m->params.m, m->params.v,
                     m->params.block_size, tr->pg.step);
    mtl_params_changed(&m->params);
    mtl_error err;
    if (mtl_embeddings_update(&tr->emb, &tr->opt, cfg->l2_embedding, tr->pg.step, tr->d, &err))
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

typedef enum { STEP_DONE, STEP_SKIPPED, STEP_DIVERGED } step_result;

/* The summed gradient is not finite; it is the same on every rank, so every
 * rank takes the same branch: skip the step (--skip-nonfinite-steps) or stop. */
static step_result nonfinite_step(trainer *tr, const double *loss_sum, mtl_error *err) {
    int my_task = 0;
    for (int t = 0; t < tr->m->T && !my_task; t++)
        if (!isfinite(loss_sum[t])) my_task = t + 1;
    int task = mtl_dist_max_int(tr->d, my_task);
    const char *in = task ? " in task " : "", *name = task ? tr->m->shape.task_names[task - 1] : "";
    if (tr->cfg->skip_nonfinite_steps) {
        tr->nonfinite_skipped++;
        if (tr->root && !tr->cfg->quiet)
            fprintf(stderr, "mtl_dist: step %lld: non-finite loss or gradient%s%s: step skipped\n",
                    (long long)tr->pg.step + 1, in, name);
        return STEP_SKIPPED;
    }
    mtl_fail(err, NULL,
             "step %lld (epoch %lld): the loss or gradient is not finite (NaN/Inf)%s%s; "
             "training stopped, the last good checkpoint is kept (lower --lr, check the "
             "data for extreme values, or pass --skip-nonfinite-steps)",
             (long long)tr->pg.step + 1, (long long)tr->pg.epoch + 1, in, name);
    return STEP_DIVERGED;
}

/* One step of synchronous data-parallel training: gather this rank's rows,
 * forward, loss, backward, sum the gradients over the ranks, update. */
static step_result train_step(trainer *tr, step_sums *sums, mtl_error *err) {
    mtl_model *m = tr->m;
    int64_t first, n;
    step_rows(tr, &first, &n);
    double t0 = mtl_dist_time(), gemm0 = mtl_gemm_seconds();
    gather_train(tr, first, (int)n);
    prepare_rows(tr);
    double loss_sum[MTL_MAX_TASKS];
    forward_backward(tr, (int)n, sums, loss_sum);
    double exchange_t0 = mtl_dist_time();
    exchange_gradients(tr);
    double exchange_seconds = mtl_dist_time() - exchange_t0;
    if (!mtl_all_finite(m->params.grads, m->params.block_size) ||
        !mtl_embeddings_all_finite(&tr->emb, tr->d))
        return nonfinite_step(tr, loss_sum, err);
    update(tr);

    for (int t = 0; t < m->T; t++) {
        tr->pg.loss_sum[t] += loss_sum[t]; /* this rank's */
        tr->pg.count[t] += sums->count[t]; /* global, the same on every rank */
    }
    if (tr->pg.step > WARMUP_STEPS) {
        mtl_throughput *tp = &tr->tp;
        tp->steady_steps++;
        tp->steady_seconds += mtl_dist_time() - t0;
        tp->steady_samples += step_samples(tr);
        tp->allreduce_seconds += exchange_seconds;
        tp->gemm_seconds += mtl_gemm_seconds() - gemm0;
        tp->exchange_bytes += tr->dense_exchange_bytes + tr->emb.bytes_received;
    }
    return STEP_DONE;
}

/* ---- epochs ---- */

typedef enum { EPOCH_COMPLETE, EPOCH_MAX_STEPS, EPOCH_INTERRUPTED, EPOCH_FAILED } epoch_end;

/* The steps of the current epoch from pg.batch_in_epoch on. Checkpoints when
 * asked (every N steps or seconds, or on a stop signal). *seconds and
 * *samples: the epoch's time and global samples. */
static epoch_end run_epoch_steps(trainer *tr, double *seconds, double *samples, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    progress *pg = &tr->pg;
    int tty = tr->root && !cfg->quiet && isatty(STDERR_FILENO);
    double t0 = mtl_dist_time(), last_progress = t0;
    epoch_end end = EPOCH_COMPLETE;
    *samples = 0;
    for (; pg->batch_in_epoch < tr->steps_per_epoch; pg->batch_in_epoch++) {
        if (cfg->max_steps > 0 && pg->step >= cfg->max_steps) {
            end = EPOCH_MAX_STEPS;
            break;
        }
        step_sums sums;
        step_result r = train_step(tr, &sums, err);
        if (r == STEP_DIVERGED) {
            end = EPOCH_FAILED;
            break;
        }
        if (r == STEP_SKIPPED) continue;
        *samples += step_samples(tr);
        /* every rank has the same flags: they were summed in the step */
        int every_steps =
            cfg->checkpoint_every_steps > 0 && pg->step % cfg->checkpoint_every_steps == 0;
        int want_checkpoint = sums.stop > 0 || sums.checkpoint_due > 0 || every_steps;
        /* resumes after this step */
        if (want_checkpoint && cfg->checkpoint_dir[0] &&
            save_checkpoint(tr, pg->epoch, pg->batch_in_epoch + 1, err) != MTL_OK) {
            end = EPOCH_FAILED;
            break;
        }
        if (sums.stop > 0) {
            end = EPOCH_INTERRUPTED;
            break;
        }
        if (tty && mtl_dist_time() - last_progress > 0.5) {
            last_progress = mtl_dist_time();
            fprintf(stderr, "\repoch %lld: %3.0f%% (%lld/%lld steps)", (long long)pg->epoch + 1,
                    100.0 * (double)(pg->batch_in_epoch + 1) / (double)tr->steps_per_epoch,
                    (long long)pg->batch_in_epoch + 1, (long long)tr->steps_per_epoch);
        }
    }
    if (tty) fprintf(stderr, "\r%60s\r", "");
    *seconds = mtl_dist_time() - t0;
    if (end == EPOCH_COMPLETE && cfg->max_steps > 0 && pg->step >= cfg->max_steps)
        end = EPOCH_MAX_STEPS; /* at the epoch's last step: the epoch still ends */
    return end;
}

/* Keep the best parameters by the validation metric; stop after
 * --early-stop-patience epochs without improvement. */
static void early_stopping(trainer *tr, const mtl_eval_result *valid) {
    progress *pg = &tr->pg;
    int t = tr->early_task;
    double metric = t < 0 ? valid->total : tr->early_gauc ? -valid->gauc[t] : -valid->auc[t];
    if (metric < pg->best_metric) {
        pg->best_metric = metric;
        pg->best_epoch = pg->epoch;
        pg->bad_epochs = 0;
        pg->has_best = 1;
        memcpy(tr->best, tr->m->params.values, tr->m->params.size * sizeof(float));
    } else if (++pg->bad_epochs >= tr->cfg->early_stop_patience) {
        tr->stop_early = 1;
        if (tr->root && !tr->cfg->quiet)
            printf("early stopping: no improvement for %d epochs; best epoch %lld\n",
                   tr->cfg->early_stop_patience, (long long)pg->best_epoch + 1);
    }
}

static int use_early_stopping(const trainer *tr) {
    return tr->cfg->early_stop_patience > 0 && tr->has_valid;
}

/* The end of an epoch: train loss, validation, early stopping, and a
 * checkpoint that resumes at the next epoch. */
static int end_epoch(trainer *tr, double seconds, double samples, mtl_error *err) {
    progress *pg = &tr->pg;
    int T = tr->m->T;
    double train_loss[MTL_MAX_TASKS];
    memcpy(train_loss, pg->loss_sum, sizeof train_loss);
    mtl_dist_sum_doubles(tr->d, train_loss, (size_t)T);
    for (int t = 0; t < T; t++)
        train_loss[t] = pg->count[t] > 0 ? train_loss[t] / pg->count[t] : NAN;
    mtl_eval_result valid;
    memset(&valid, 0, sizeof valid);
    if (tr->has_valid) evaluate_split(tr, &tr->valid, &valid);
    if (tr->root) {
        mtl_epoch_report e = {.epoch = pg->epoch + 1,
                              .epochs = tr->cfg->epochs,
                              .train_loss = train_loss,
                              .valid = tr->has_valid ? &valid : NULL,
                              .samples_per_sec = seconds > 0 ? samples / seconds : 0,
                              .seconds = seconds,
                              .steps = pg->step};
        mtl_report_epoch(tr->metrics, tr->cfg->quiet, tr->m, &e);
    }
    if (use_early_stopping(tr)) early_stopping(tr, &valid);
    memset(pg->loss_sum, 0, sizeof pg->loss_sum);
    memset(pg->count, 0, sizeof pg->count);
    pg->batch_in_epoch = 0;
    if (tr->cfg->checkpoint_dir[0] && save_checkpoint(tr, pg->epoch + 1, 0, err) != MTL_OK)
        return MTL_EXIT_FAILURE;
    return MTL_EXIT_OK;
}

/* Epochs until --epochs, --max-steps, early stopping, a stop signal or a
 * failure. */
static int train_epochs(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    progress *pg = &tr->pg;
    for (; pg->epoch < cfg->epochs; pg->epoch++) {
        start_epoch(tr, pg->epoch);
        double seconds, samples;
        epoch_end end = run_epoch_steps(tr, &seconds, &samples, err);
        tr->tp.train_seconds += seconds;
        tr->tp.train_samples += samples;
        if (end == EPOCH_FAILED) return MTL_EXIT_FAILURE;
        if (end == EPOCH_INTERRUPTED) {
            if (tr->root)
                fprintf(stderr, "mtl_dist: interrupted at step %lld; %s\n", (long long)pg->step,
                        cfg->checkpoint_dir[0] ? "checkpoint written: rerun the same command "
                                                 "with --resume latest to continue"
                                               : "no --checkpoint-dir was given, so nothing "
                                                 "was saved");
            /* 75 promises a checkpoint to resume from */
            return cfg->checkpoint_dir[0] ? MTL_EXIT_INTERRUPTED : MTL_EXIT_FAILURE;
        }
        if (end == EPOCH_MAX_STEPS && pg->batch_in_epoch < tr->steps_per_epoch) {
            /* --max-steps inside an epoch: no epoch end; a checkpoint that
             * resumes at this very step */
            if (cfg->checkpoint_dir[0] &&
                save_checkpoint(tr, pg->epoch, pg->batch_in_epoch, err) != MTL_OK)
                return MTL_EXIT_FAILURE;
            return MTL_EXIT_OK;
        }
        if (end_epoch(tr, seconds, samples, err) != MTL_EXIT_OK) return MTL_EXIT_FAILURE;
        if (tr->stop_early || end == EPOCH_MAX_STEPS) {
            pg->epoch++;
            break;
        }
    }
    return MTL_EXIT_OK;
}

/* ---- the end ---- */

/* Best weights, test metrics, predictions, and the final report. */
static int finish(trainer *tr, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    mtl_model *m = tr->m;
    int use_best = use_early_stopping(tr) && tr->pg.has_best;
    if (use_best) {
        memcpy(m->params.values, tr->best, m->params.size * sizeof(float));
        mtl_params_changed(&m->params);
    }
    mtl_eval_result test;
    memset(&test, 0, sizeof test);
    int rc = MTL_OK;
    if (tr->has_test) {
        evaluate_split(tr, &tr->test, &test);
        if (tr->root) mtl_report_test(cfg->quiet, m, &test);
        if (tr->root && cfg->predict_out[0]) {
            const char *names[3 + MTL_MAX_TASKS];
            for (int p = 0; p < m->P; p++) names[p] = mtl_model_prediction_name(m, p);
            rc = mtl_predictions_save(cfg->predict_out, tr->all_pred, tr->test.n_total, m->P, names,
                                      err);
        }
        agree_ok(tr->d, rc, err);
    }
    /* the largest peak resident set over the ranks */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak_rss_mb = mtl_dist_max_int(tr->d, (int)ru.ru_maxrss) / 1024.0;
    if (tr->root) {
        mtl_final_report f = {
            .best_epoch = use_best ? tr->pg.best_epoch + 1 : tr->pg.epoch,
            .steps = tr->pg.step,
            .nonfinite_skipped = tr->nonfinite_skipped,
            .test = tr->has_test ? &test : NULL,
            .tp = tr->tp,
            .total_seconds = mtl_dist_time() - tr->start_time,
            .peak_rss_mb = peak_rss_mb,
            .world_size = tr->d->world,
            .threads = cfg->threads,
            .sparse_tables = tr->emb.n_tables,
            .sharded_tables = tr->emb.n_sharded,
        };
        mtl_report_final(tr->metrics, cfg->quiet, m, &f);
    }
    return MTL_EXIT_OK;
}

int mtl_train_run(const mtl_config *cfg, const mtl_dist *d, mtl_error *err) {
    trainer tr_, *tr = &tr_;
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg;
    tr->d = d;
    tr->root = d->rank == 0;
    tr->whole = cfg->data_order_global;
    tr->start_time = mtl_dist_time();
    openblas_set_num_threads(cfg->threads);
    int status = open_data(tr, err);
    if (status == MTL_EXIT_OK) status = build(tr, err);
    if (status == MTL_EXIT_OK) init_parameters(tr);
    if (status == MTL_EXIT_OK && cfg->resume[0]) status = resume(tr, err);
    if (status == MTL_EXIT_OK) status = open_outputs(tr, err);
    if (status == MTL_EXIT_OK) status = train_epochs(tr, err);
    if (status == MTL_EXIT_OK) status = finish(tr, err);
    trainer_free(tr);
    return status;
}

/* ---- predict ---- */

/* The data has the columns the checkpoint's model was trained on. */
static int same_shape_as_model(const mtl_dataset *ds, const mtl_data_shape *sh, const char *path,
                               mtl_error *err) {
    if (ds->S != sh->S || ds->D != sh->D)
        return mtl_fail(err, path,
                        "has %d sparse and %d dense columns; the model was trained on %d and %d",
                        ds->S, ds->D, sh->S, sh->D);
    for (int s = 0; s < ds->S; s++)
        if (ds->vocab_sizes[s] != sh->vocab_sizes[s])
            return mtl_fail(err, path,
                            "/sparse: vocab_sizes[%d] is %lld; the model was trained with %lld "
                            "(encode with mtl_prep --vocab-from the training file)",
                            s, (long long)ds->vocab_sizes[s], (long long)sh->vocab_sizes[s]);
    if (ds->T != sh->T)
        return mtl_fail(err, path, "has %d label columns; the model has %d tasks", ds->T, sh->T);
    return same_multi_shape(ds, sh, err);
}

/* The model of the checkpoint over the data file: predictions (rank 0
 * writes them) and the metrics of the labels the file has. */
static int predict(trainer *tr, mtl_config *cfg, mtl_error *err) {
    const mtl_dist *d = tr->d;
    mtl_ckpt_state st;
    /* the output is checked first, as in training */
    int rc = tr->root ? check_writable(cfg->predict_out, "--predict-out", err) : MTL_OK;
    if (rc == MTL_OK) rc = mtl_checkpoint_load_state(cfg->checkpoint_path, &st, err);
    if (rc == MTL_OK) rc = mtl_config_apply_text(cfg, st.config, cfg->checkpoint_path, err);
    agree_ok(d, rc, err);
    rc = open_eval_split(tr, &tr->valid, cfg->data_path, 0, err);
    if (rc == MTL_OK) rc = same_shape_as_model(&tr->valid, &st.shape, cfg->data_path, err);
    agree_ok(d, rc, err);
    if (tr->valid.n_total < d->world) {
        mtl_fail(err, cfg->data_path, "%lld row%s cannot be shared by %d ranks",
                 (long long)tr->valid.n_total, tr->valid.n_total == 1 ? "" : "s", d->world);
        return MTL_EXIT_USAGE;
    }
    int capacity = (int)((cfg->batch_size + d->world - 1) / d->world);
    rc = mtl_model_create(&tr->m, cfg, &st.shape, micro_rows(cfg, capacity), err);
    if (rc == MTL_OK)
        rc = mtl_checkpoint_load_tensors(cfg->checkpoint_path, tr->m, 0, NULL, NULL, err);
    if (rc == MTL_OK)
        rc = mtl_batch_alloc(&tr->batch, capacity, st.shape.S, st.shape.D, st.shape.T, err);
    if (rc == MTL_OK) rc = mtl_batch_alloc_multi(&tr->batch, st.shape.M, err);
    int64_t begin, count;
    eval_range(tr, &tr->valid, &begin, &count);
    if (rc == MTL_OK) {
        tr->rows = mtl_alloc((size_t)capacity, sizeof(int64_t), "batch rows", err);
        rc = tr->rows ? alloc_eval(tr, count, tr->valid.n_total, err) : MTL_ERR;
    }
    agree_ok(d, rc, err);
    mtl_eval_result res;
    evaluate(tr, &tr->valid, begin, count, &res);
    if (tr->root) {
        const char *names[3 + MTL_MAX_TASKS];
        for (int p = 0; p < tr->m->P; p++) names[p] = mtl_model_prediction_name(tr->m, p);
        rc = mtl_predictions_save(cfg->predict_out, tr->all_pred, tr->valid.n_total, tr->m->P,
                                  names, err);
        if (rc == MTL_OK && !cfg->quiet) {
            printf("wrote %lld predictions to %s", (long long)tr->valid.n_total, cfg->predict_out);
            mtl_report_print_eval(tr->m, "labels in the data:", &res);
            printf("\n");
        }
    }
    agree_ok(d, rc, err);
    return MTL_EXIT_OK;
}

int mtl_predict_run(const mtl_config *cfg_in, const mtl_dist *d, mtl_error *err) {
    trainer tr_, *tr = &tr_;
    memset(tr, 0, sizeof *tr);
    mtl_config cfg = *cfg_in; /* the checkpoint's model options go over it */
    tr->cfg = &cfg;
    tr->d = d;
    tr->root = d->rank == 0;
    openblas_set_num_threads(cfg.threads);
    int status = predict(tr, &cfg, err);
    trainer_free(tr);
    return status;
}
