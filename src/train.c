#define _POSIX_C_SOURCE 200809L
/* The training loop, evaluation, checkpoints and prediction: one rank's view
 * of data-parallel training.
 *
 * Each step every rank gathers its share of the global batch, runs forward,
 * and computes the gradient of its part of the summed multi-task loss, scaled
 * by the global number of labelled samples of each task (summed over ranks
 * with a small non-blocking allreduce that overlaps the forward). The gradient
 * block is summed with ONE allreduce and every rank applies the same optimizer
 * step, so replicas stay identical. */
#include "mtl/train.h"

#include <cJSON.h>
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mtl/checkpoint.h"
#include "mtl/data.h"
#include "mtl/embedding.h"
#include "mtl/metrics.h"
#include "mtl/model.h"
#include "mtl/optim.h"
#include "mtl/prep.h"

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

/* ---- streaming (--stream): the training shard read a chunk at a time ----
 *
 * An epoch visits the shard's chunks in a shuffled order, and each chunk's
 * rows in a shuffled order; both orders follow from (seed, epoch, rank), so a
 * resumed run reads exactly the rows it would have. While one chunk trains, a
 * thread loads the next. Only one thread calls HDF5 at a time: the main thread
 * joins the loader before its own HDF5 calls (evaluation, checkpoints). */
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
} stream_state;

static int64_t chunk_len(const stream_state *st, int64_t chunk) {
    int64_t begin = chunk * st->chunk_rows;
    return st->shard_count - begin < st->chunk_rows ? st->shard_count - begin : st->chunk_rows;
}

static int load_chunk(const stream_state *st, int64_t chunk, mtl_dataset *ds, mtl_error *err) {
    return mtl_dataset_load_rows(ds, st->path, st->shard_begin + chunk * st->chunk_rows,
                                 chunk_len(st, chunk), err);
}

static void *loader_main(void *arg) {
    stream_state *st = arg;
    st->next_rc = load_chunk(st, st->order[st->next_index], &st->next, &st->next_err);
    return NULL;
}

/* Wait for the loader; its result stays in st->next. */
static int stream_join(stream_state *st) {
    if (!st->loading) return MTL_OK;
    pthread_join(st->thread, NULL);
    st->loading = 0;
    return st->next_rc;
}

static void stream_prefetch(stream_state *st, int64_t index) {
    if (index >= st->n_chunks || st->loading) return;
    st->next_index = index;
    st->loading = pthread_create(&st->thread, NULL, loader_main, st) == 0;
    if (!st->loading) /* no thread: load when needed */
        st->next_rc = load_chunk(st, st->order[index], &st->next, &st->next_err), st->loading = 0;
}

static void stream_free(stream_state *st) {
    stream_join(st);
    mtl_dataset_free(&st->next);
    mtl_dataset_free(&st->cur);
    free(st->order);
    free(st->row_order);
    memset(st, 0, sizeof *st);
}

static int stream_init(stream_state *st, const char *path, int64_t n_total, int rank, int world,
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
static int stream_advance(stream_state *st, int64_t index, mtl_error *err) {
    int rc = stream_join(st);
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
        if (load_chunk(st, st->order[index], &st->cur, err) != MTL_OK) return MTL_ERR;
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
    stream_prefetch(st, index + 1);
    return MTL_OK;
}

static int stream_epoch(stream_state *st, int64_t epoch, mtl_error *err) {
    (void)err;
    if (stream_join(st) != MTL_OK) mtl_dataset_free(&st->next);
    mtl_dataset_free(&st->next);
    st->epoch = epoch;
    mtl_shuffle(st->order, st->n_chunks, st->seed ^ 0x2545f4914f6cdd1dULL, epoch, st->rank);
    st->cur_index = -1;
    mtl_dataset_free(&st->cur);
    stream_prefetch(st, 0);
    return MTL_OK;
}

/* Rows at epoch positions [first, first+n) into b (n <= its capacity). */
static int stream_gather(stream_state *st, int64_t first, int n, mtl_batch *b, mtl_error *err) {
    int done = 0;
    int64_t rows[256];
    while (done < n) {
        int64_t pos = first + done;
        if (st->cur_index < 0 || pos < st->cur_start || pos >= st->cur_start + st->cur.n_rows) {
            /* find the chunk that holds pos (forward in the normal case) */
            int64_t index = 0, start = 0;
            while (index < st->n_chunks && start + chunk_len(st, st->order[index]) <= pos)
                start += chunk_len(st, st->order[index++]);
            if (index >= st->n_chunks)
                return mtl_fail(err, st->path, "stream: position past the shard");
            if (stream_advance(st, index, err) != MTL_OK) return MTL_ERR;
            if (mtl_batch_reserve(b, &st->cur, err) != MTL_OK) return MTL_ERR;
        }
        int64_t in_chunk = pos - st->cur_start;
        int k = (int)(st->cur.n_rows - in_chunk < n - done ? st->cur.n_rows - in_chunk : n - done);
        if (k > 256) k = 256;
        for (int i = 0; i < k; i++) rows[i] = st->row_order[in_chunk + i];
        mtl_batch view = *b; /* the batch from row `done` on */
        view.sparse += (size_t)done * (size_t)b->S;
        view.dense += (size_t)done * (size_t)b->D;
        view.labels += (size_t)done * (size_t)b->T;
        view.weights += done;
        view.multi_off += done;
        view.capacity -= done;
        mtl_batch_gather(&view, &st->cur, rows, k);
        done += k;
    }
    b->n = n;
    return MTL_OK;
}

typedef struct {
    double loss[MTL_MAX_TASKS];         /* logloss (binary) or MSE (regression) */
    double auc[MTL_MAX_TASKS];          /* binary */
    double mae[MTL_MAX_TASKS];          /* regression */
    double gauc[MTL_MAX_TASKS];         /* binary, when the split has /groups (has_gauc) */
    int64_t gauc_groups[MTL_MAX_TASKS]; /* groups counted in gauc (metrics.h) */
    int has_gauc;
    double total; /* sum of loss-weighted per-task losses */
} eval_result;

typedef struct {
    const mtl_config *cfg;
    const mtl_dist *d;
    mtl_dataset train, valid, test;
    int has_valid, has_test;
    int64_t train_count; /* rows in this rank's training order (global order: all) */
    mtl_model *m;
    mtl_optim opt;
    mtl_batch batch;
    mtl_embeddings emb; /* the sparse tables' touched rows */
    int64_t *perm;
    int64_t *rows; /* [capacity] rows of the current batch */
    int local_batch;
    int64_t steps_per_epoch;
    float *best;
    /* evaluation buffers */
    float *eval_pred, *eval_labels;    /* local [n x P], [n x T] */
    float *all_pred, *all_labels;      /* rank 0: [N x P], [N x T] */
    int64_t *eval_groups, *all_groups; /* local [n], rank 0: [N] /groups for GAUC */
    int64_t eval_capacity, all_capacity;
    FILE *metrics;
    int streaming;
    stream_state st;
} trainer;

/* The step's embedding rows (and row-sharded tables' fetch: collective).
 * Only running out of memory for longer lists than before fails. */
static void prepare_rows(trainer *tr) {
    mtl_error err;
    if (mtl_embeddings_prepare(&tr->emb, &tr->batch, tr->d, &err) != MTL_OK)
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

/* Forward over rows [begin, begin+count) of ds in inference mode; rank 0
 * receives every rank's predictions and labels and computes the metrics,
 * which it broadcasts. preds_out (rank 0): the gathered predictions. */
/* rows of a split read at once while evaluating: splits are streamed from
 * their file, never held in memory during training */
#define EVAL_CHUNK 2048

static void evaluate(trainer *tr, const mtl_dataset *ds, int64_t begin, int64_t count,
                     eval_result *res) {
    mtl_model *m = tr->m;
    int P = m->P, T = m->T;
    mtl_error err;
    if (tr->streaming && stream_join(&tr->st) != MTL_OK) /* one HDF5 user at a time */
        mtl_dataset_free(&tr->st.next);
    /* with row-sharded tables every forward fetches rows from the other
     * ranks: each rank makes as many as the busiest, the last ones empty */
    int64_t forwards = 0, all_forwards = 0;
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
            memcpy(tr->eval_pred + (done + c) * P, mtl_model_predictions(m),
                   (size_t)n * (size_t)P * sizeof(float));
            memcpy(tr->eval_labels + (done + c) * T, tr->batch.labels,
                   (size_t)n * (size_t)T * sizeof(float));
            if (chunk.groups)
                memcpy(tr->eval_groups + done + c, chunk.groups + c, (size_t)n * sizeof(int64_t));
            c += n;
        }
        done += chunk.n_rows;
        mtl_dataset_free(&chunk);
    }
    for (tr->batch.n = 0; forwards < all_forwards; forwards++) prepare_rows(tr);
    int64_t total = ds->n_total;
    mtl_dist_gather_floats(tr->d, tr->eval_pred, count * P, tr->all_pred, total * P);
    mtl_dist_gather_floats(tr->d, tr->eval_labels, count * T, tr->all_labels, total * T);
    if (ds->has_groups) /* a group's rows may be on several ranks: GAUC on all of them */
        mtl_dist_gather_int64s(tr->d, tr->eval_groups, count, tr->all_groups, total);
    memset(res, 0, sizeof *res);
    res->has_gauc = ds->has_groups;
    if (tr->d->rank == 0) {
        for (int t = 0; t < T; t++) {
            const float *p = tr->all_pred + mtl_model_prediction_of_task(m, t);
            const float *y = tr->all_labels + t;
            if (m->shape.task_regression[t]) {
                res->loss[t] = mtl_mse_metric(p, (size_t)P, y, (size_t)T, (size_t)total);
                res->mae[t] = mtl_mae_metric(p, (size_t)P, y, (size_t)T, (size_t)total);
                res->auc[t] = NAN;
            } else {
                res->loss[t] = mtl_logloss(p, (size_t)P, y, (size_t)T, (size_t)total);
                res->auc[t] = mtl_auc(p, (size_t)P, y, (size_t)T, (size_t)total);
                if (res->has_gauc)
                    res->gauc[t] = mtl_gauc(p, (size_t)P, y, (size_t)T, tr->all_groups,
                                            (size_t)total, &res->gauc_groups[t]);
            }
            if (isfinite(res->loss[t])) res->total += m->loss_weights[t] * res->loss[t];
        }
    }
    mtl_dist_bcast_bytes(tr->d, res, sizeof *res, 0);
}

/* Metrics lines are built with cJSON, which escapes task names (strings
 * from the user's file) and writes numbers as JSON; NaN and Inf are not JSON
 * numbers: null. */
static void json_num(cJSON *obj, const char *key, double x) {
    if (isfinite(x))
        cJSON_AddNumberToObject(obj, key, x);
    else
        cJSON_AddNullToObject(obj, key);
}

static void json_task_map(cJSON *obj, const mtl_model *m, const char *key, const double *v,
                          int want_regression) {
    cJSON *map = cJSON_AddObjectToObject(obj, key);
    for (int t = 0; t < m->T; t++) {
        if (want_regression >= 0 && m->shape.task_regression[t] != want_regression) continue;
        json_num(map, m->shape.task_names[t], v[t]);
    }
}

/* One line of the metrics file; frees obj. */
static void json_line(FILE *f, cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    if (text) {
        fputs(text, f);
        fputc('\n', f);
        fflush(f);
    }
    cJSON_free(text);
    cJSON_Delete(obj);
}

static int any_task(const mtl_model *m, int regression) {
    for (int t = 0; t < m->T; t++)
        if (m->shape.task_regression[t] == regression) return 1;
    return 0;
}

/* PREFIX_gauc and PREFIX_gauc_groups per binary task */
static void json_gauc(cJSON *f, const mtl_model *m, const char *prefix, const eval_result *r) {
    char key[64];
    snprintf(key, sizeof key, "%s_gauc", prefix);
    json_task_map(f, m, key, r->gauc, 0);
    snprintf(key, sizeof key, "%s_gauc_groups", prefix);
    cJSON *map = cJSON_AddObjectToObject(f, key);
    for (int t = 0; t < m->T; t++)
        if (!m->shape.task_regression[t])
            cJSON_AddNumberToObject(map, m->shape.task_names[t], (double)r->gauc_groups[t]);
}

static void json_eval(cJSON *f, const mtl_model *m, const char *prefix, const eval_result *r) {
    char key[64];
    snprintf(key, sizeof key, "%s_loss", prefix);
    json_task_map(f, m, key, r->loss, -1);
    if (any_task(m, 0)) {
        snprintf(key, sizeof key, "%s_auc", prefix);
        json_task_map(f, m, key, r->auc, 0);
        if (strcmp(prefix, "test") == 0) json_task_map(f, m, "test_logloss", r->loss, 0);
        if (r->has_gauc) json_gauc(f, m, prefix, r);
    }
    if (any_task(m, 1)) {
        snprintf(key, sizeof key, "%s_mse", prefix);
        json_task_map(f, m, key, r->loss, 1);
        snprintf(key, sizeof key, "%s_mae", prefix);
        json_task_map(f, m, key, r->mae, 1);
    }
}

static void print_eval(const mtl_model *m, const char *label, const eval_result *r) {
    printf(" | %s", label);
    for (int t = 0; t < m->T; t++) {
        if (m->shape.task_regression[t])
            printf(" %s mse %.4f mae %.4f", m->shape.task_names[t], r->loss[t], r->mae[t]);
        else
            printf(" %s loss %.4f auc %.4f", m->shape.task_names[t], r->loss[t], r->auc[t]);
        if (r->has_gauc && !m->shape.task_regression[t]) printf(" gauc %.4f", r->gauc[t]);
    }
}

/* ---- checkpoints on disk ---- */

static int is_checkpoint_name(const char *name, int64_t *step) {
    long long s = 0;
    int end = 0;
    if (sscanf(name, "ckpt-%lld.h5%n", &s, &end) != 1 || name[end] != '\0') return 0;
    *step = s;
    return 1;
}

#define MAX_CHECKPOINTS 4096

/* The steps of the ckpt-<step>.h5 files in dir; -1 if dir cannot be read. */
static int list_checkpoints(const char *dir, int64_t *steps) {
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < MAX_CHECKPOINTS) {
        int64_t s;
        if (is_checkpoint_name(e->d_name, &s)) steps[n++] = s;
    }
    closedir(dp);
    return n;
}

/* The newest complete checkpoint in dir (by step; a file that does not load
 * is skipped with a warning). */
static int find_latest(const char *dir, char *out, size_t cap, int verbose, mtl_error *err) {
    int64_t steps[MAX_CHECKPOINTS];
    int n = list_checkpoints(dir, steps);
    if (n < 0)
        return mtl_fail(err, dir, "--resume latest: cannot open checkpoint directory: %s",
                        strerror(errno));
    for (;;) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (steps[i] >= 0 && (best < 0 || steps[i] > steps[best])) best = i;
        if (best < 0) break;
        snprintf(out, cap, "%s/ckpt-%09lld.h5", dir, (long long)steps[best]);
        mtl_ckpt_state st;
        mtl_error e2;
        if (mtl_checkpoint_load_state(out, &st, &e2) == MTL_OK) return MTL_OK;
        if (verbose) fprintf(stderr, "mtl_dist: skipping %s\n", e2.msg);
        steps[best] = -1;
    }
    return mtl_fail(err, dir, "--resume latest: no complete checkpoint in this directory");
}

static void prune_checkpoints(const char *dir, int keep) {
    int64_t steps[MAX_CHECKPOINTS];
    int n = list_checkpoints(dir, steps);
    if (n < 0) return;
    struct dirent *e;
    DIR *dp;
    /* temporaries of runs that were killed while writing (never read back) */
    dp = opendir(dir);
    char mine[64];
    snprintf(mine, sizeof mine, ".tmp.%ld", (long)getpid());
    while (dp && (e = readdir(dp))) {
        const char *tmp = strstr(e->d_name, ".h5.tmp.");
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && tmp && !strstr(e->d_name, mine)) {
            char path[MTL_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (dp) closedir(dp);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char path[MTL_PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/ckpt-%09lld.h5", dir, (long long)steps[i]);
            unlink(path);
        }
    }
}

typedef struct {
    int64_t step, epoch, batch_in_epoch;
    double best_metric;
    int64_t best_epoch, bad_epochs;
    int has_best;
    double loss_sum[MTL_MAX_TASKS], count[MTL_MAX_TASKS];
} progress;

/* Rank 0 writes; every rank learns whether it worked. */
static int save_checkpoint(trainer *tr, const progress *pg, mtl_error *err) {
    const mtl_config *cfg = tr->cfg;
    if (tr->streaming && stream_join(&tr->st) != MTL_OK) /* one HDF5 user at a time */
        mtl_dataset_free(&tr->st.next);
    int rc = MTL_OK;
    /* the epoch's train loss so far, over all ranks: rank 0 carries it on resume */
    double loss_sum[MTL_MAX_TASKS];
    memcpy(loss_sum, pg->loss_sum, sizeof loss_sum);
    mtl_dist_sum_doubles(tr->d, loss_sum, (size_t)tr->m->T);
    const float *best = pg->has_best ? tr->best : NULL;
    char path[MTL_PATH_MAX + 32], tmp[MTL_CKPT_TMP_MAX] = "";
    snprintf(path, sizeof path, "%s/ckpt-%09lld.h5", cfg->checkpoint_dir, (long long)pg->step);
    if (tr->d->rank == 0) {
        mtl_ckpt_state st;
        memset(&st, 0, sizeof st);
        st.sparse_names = tr->train.sparse_names;
        st.dense_names = tr->train.dense_names;
        st.step = pg->step;
        st.epoch = pg->epoch;
        st.batch_in_epoch = pg->batch_in_epoch;
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
    if (tr->emb.n_sharded > 0) {
        /* the other ranks add their rows of the row-sharded tables, one at a time */
        mtl_dist_bcast_bytes(tr->d, tmp, sizeof tmp, 0);
        for (int r = 1; r < tr->d->world; r++) {
            int failed = mtl_dist_max_int(tr->d, rc != MTL_OK);
            if (!failed && tr->d->rank == r) rc = mtl_checkpoint_add_rows(tmp, tr->m, best, err);
        }
    }
    int bad = mtl_dist_max_int(tr->d, rc != MTL_OK);
    if (tr->d->rank == 0) {
        if (!bad)
            rc = mtl_checkpoint_commit(tmp, path, err);
        else if (rc == MTL_OK)
            unlink(tmp); /* another rank failed */
        if (rc == MTL_OK) prune_checkpoints(cfg->checkpoint_dir, cfg->keep_checkpoints);
    }
    bad = mtl_dist_max_int(tr->d, rc != MTL_OK);
    if (bad && tr->d->rank != 0) mtl_fail(err, NULL, "rank 0 could not write a checkpoint");
    return bad ? MTL_ERR : MTL_OK;
}

/* ---- setup ---- */

/* mkdir -p */
static int mkdir_parents(const char *path) {
    char buf[MTL_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

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
    if (ds->S > 256) return mtl_fail(err, ds->path, "/sparse: %d fields (at most 256)", ds->S);
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
    if (local_rows > tr->eval_capacity) {
        free(tr->eval_pred);
        free(tr->eval_labels);
        tr->eval_pred =
            mtl_alloc((size_t)local_rows * (size_t)P, sizeof(float), "predictions", err);
        tr->eval_labels = mtl_alloc((size_t)local_rows * (size_t)T, sizeof(float), "labels", err);
        free(tr->eval_groups);
        tr->eval_groups = mtl_alloc((size_t)local_rows, sizeof(int64_t), "groups", err);
        if (!tr->eval_pred || !tr->eval_labels || !tr->eval_groups) return MTL_ERR;
        tr->eval_capacity = local_rows;
    }
    if (tr->d->rank == 0 && total_rows > tr->all_capacity) {
        free(tr->all_pred);
        free(tr->all_labels);
        tr->all_pred = mtl_alloc((size_t)total_rows * (size_t)P, sizeof(float), "predictions", err);
        tr->all_labels = mtl_alloc((size_t)total_rows * (size_t)T, sizeof(float), "labels", err);
        free(tr->all_groups);
        tr->all_groups = mtl_alloc((size_t)total_rows, sizeof(int64_t), "groups", err);
        if (!tr->all_pred || !tr->all_labels || !tr->all_groups) return MTL_ERR;
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
    free(tr->eval_groups);
    free(tr->all_groups);
    if (tr->metrics) fclose(tr->metrics);
    if (tr->streaming) stream_free(&tr->st);
}

/* rows of split ds this rank evaluates */
static void eval_range(const trainer *tr, const mtl_dataset *ds, int64_t *begin, int64_t *count) {
    mtl_shard_range(ds->n_total, tr->d->rank, tr->d->world, begin, count);
}

/* Per task over this rank's training rows: the labelled count and sum, and
 * the first row whose label is neither 0 nor 1 (-1 if none). Streaming reads
 * the shard once here, chunk by chunk. */
typedef struct {
    double sum[MTL_MAX_TASKS], count[MTL_MAX_TASKS];
    int64_t nonbinary_row[MTL_MAX_TASKS];
} label_stats;

static void scan_labels(const float *labels, int64_t n, int T, int64_t row0, label_stats *ls) {
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            float y = labels[i * T + t];
            if (isnan(y)) continue;
            ls->sum[t] += y;
            ls->count[t] += 1;
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
            if (load_chunk(&tr->st, c, &chunk, err) != MTL_OK) return MTL_ERR;
            scan_labels(chunk.labels, chunk.n_rows, T, chunk.row_begin, ls);
            mtl_dataset_free(&chunk);
        }
        return MTL_OK;
    }
    int64_t b0 = 0, n0 = ds->n_rows;
    if (tr->cfg->data_order_global)
        mtl_shard_range(ds->n_total, tr->d->rank, tr->d->world, &b0, &n0);
    scan_labels(ds->labels + b0 * T, n0, T, ds->row_begin + b0, ls);
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

/* Rows [first, first+n) of b, as a batch of their own (no copy). */
static mtl_batch batch_rows(const mtl_batch *b, int first, int n) {
    mtl_batch v = *b;
    v.sparse += (size_t)first * (size_t)b->S;
    v.dense += (size_t)first * (size_t)b->D;
    v.labels += (size_t)first * (size_t)b->T;
    v.weights += first;
    if (v.grad_rows) v.grad_rows += (size_t)first * (size_t)b->S;
    if (v.table_rows) v.table_rows += (size_t)first * (size_t)b->S;
    v.multi_off += first; /* the lists' offsets index the whole batch's ids */
    v.capacity -= first;
    v.n = n;
    return v;
}

/* This rank's rows at epoch positions [first, first+n) into the batch. */
static void gather_train(trainer *tr, int64_t first, int n) {
    if (!tr->streaming) {
        mtl_batch_gather(&tr->batch, &tr->train, tr->perm + first, n);
        return;
    }
    mtl_error err;
    if (stream_gather(&tr->st, first, n, &tr->batch, &err) != MTL_OK)
        mtl_dist_abort(tr->d, MTL_EXIT_FAILURE, err.msg);
}

static void start_epoch(trainer *tr, int64_t epoch) {
    if (tr->streaming) {
        mtl_error err;
        stream_epoch(&tr->st, epoch, &err);
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

int mtl_train_run(const mtl_config *cfg, const mtl_dist *d, mtl_error *err) {
    trainer tr_, *tr = &tr_;
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg;
    tr->d = d;
    int root = d->rank == 0;
    openblas_set_num_threads(cfg->threads);
    double t_start = mtl_dist_time();

    /* data: this rank's shard of every split (whole files in global order mode) */
    int whole = cfg->data_order_global;
    if (cfg->stream && whole) {
        mtl_fail(err, NULL, "--stream: works with --data-order local only");
        trainer_free(tr);
        return MTL_EXIT_USAGE;
    }
    tr->streaming = cfg->stream;
    int64_t n_train; /* --valid-split: the rows that train, the rest validate */
    int rc = valid_split_rows(cfg, &n_train, err);
    if (rc == MTL_OK)
        rc = tr->streaming ? mtl_dataset_load_header(&tr->train, cfg->train_path, err)
                           : load_split(tr, &tr->train, cfg->train_path, whole, n_train, err);
    if (rc == MTL_OK && tr->streaming && n_train >= 0) tr->train.n_total = n_train;
    if (rc == MTL_OK && tr->streaming)
        rc = stream_init(&tr->st, tr->train.path, tr->train.n_total, d->rank, d->world,
                         cfg->stream_chunk_rows, cfg->seed, err);
    agree_ok(d, rc, err);
    if (tr->train.n_total < d->world) {
        mtl_fail(err, cfg->train_path,
                 "%lld training rows cannot be shared by %d ranks: use at most %lld ranks",
                 (long long)tr->train.n_total, d->world, (long long)tr->train.n_total);
        trainer_free(tr);
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
    mtl_data_shape shape;
    label_stats lstats;
    rc = shape_from_dataset(&shape, &tr->train, err);
    if (rc == MTL_OK) rc = train_label_stats(tr, shape.T, &lstats, err);
    agree_ok(d, rc, err);
    rc = task_types(tr, &shape, &lstats, err);
    agree_ok(d, rc, err);

    /* batches: the global batch is shared out over the ranks */
    int64_t local_begin, local_count;
    mtl_shard_range(cfg->batch_size, d->rank, d->world, &local_begin, &local_count);
    if (cfg->batch_size < d->world) {
        mtl_fail(err, NULL, "--batch-size: %d is smaller than the number of ranks (%d)",
                 cfg->batch_size, d->world);
        trainer_free(tr);
        return MTL_EXIT_USAGE;
    }
    int capacity = (int)((cfg->batch_size + d->world - 1) / d->world);
    /* the first-step centering (below) reads CENTER_ROWS rows at once */
    if (capacity < CENTER_ROWS) capacity = CENTER_ROWS;
    tr->local_batch = (int)local_count;
    if (whole) {
        tr->train_count = tr->train.n_total;
        tr->steps_per_epoch = (tr->train.n_total + cfg->batch_size - 1) / cfg->batch_size;
    } else {
        tr->train_count = tr->streaming ? tr->st.shard_count : tr->train.n_rows;
        int64_t mine = (tr->train_count + tr->local_batch - 1) / tr->local_batch;
        tr->steps_per_epoch = mtl_dist_max_int(d, (int)mine);
    }

    /* micro-batches of MICRO_ROWS rows, except with batch norm (its statistics
     * are over the whole local batch) and BLAS threads (they need big products) */
    int micro =
        cfg->batch_norm || cfg->threads > 1 || capacity < MICRO_ROWS ? capacity : MICRO_ROWS;
    /* the model learns this rank's place in the job (row-sharded tables) */
    mtl_config job = *cfg;
    job.rank = d->rank;
    job.world = d->world;
    job.rank_memory_mb = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
                         1048576.0 / d->local_world;
    rc = mtl_model_create(&tr->m, &job, &shape, micro, err);
    if (rc != MTL_OK) {
        trainer_free(tr);
        return MTL_EXIT_USAGE; /* same on every rank: a configuration problem */
    }
    mtl_model *m = tr->m;
    int et_gauc = 0, et = early_metric_task(tr, &et_gauc, err);
    if (et < -1) {
        trainer_free(tr);
        return MTL_EXIT_USAGE;
    }
    mtl_optim_defaults(&tr->opt, (mtl_optim_kind)cfg->optimizer);
    tr->opt.lr = cfg->lr;
    tr->opt.momentum = cfg->momentum;
    if (cfg->optimizer == MTL_OPT_ADAGRAD)
        for (size_t i = 0; i < m->params.size; i++) m->params.v[i] = tr->opt.adagrad_init;
    rc = mtl_batch_alloc(&tr->batch, capacity, shape.S, shape.D, shape.T, err);
    if (rc == MTL_OK) rc = mtl_batch_alloc_multi(&tr->batch, shape.M, err);
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
    /* each task starts at its base rate (or mean), over all ranks' rows */
    if (rc == MTL_OK) {
        double stats[2 * MTL_MAX_TASKS] = {0};
        for (int t = 0; t < shape.T; t++) {
            stats[t] = lstats.sum[t];
            stats[shape.T + t] = lstats.count[t];
        }
        mtl_dist_sum_doubles(d, stats, (size_t)(2 * shape.T));
        double mean[MTL_MAX_TASKS];
        for (int t = 0; t < shape.T; t++)
            mean[t] = stats[shape.T + t] > 0 ? stats[t] / stats[shape.T + t] : NAN;
        mtl_model_set_prior(m, mean);
        /* hidden biases centered on the first CENTER_ROWS rows of rank 0's
         * first epoch order (the broadcast below gives every rank rank 0's
         * parameters); a fixed count, so --data-order global starts the same
         * on any number of ranks */
        int64_t n_init = tr->train_count < CENTER_ROWS ? tr->train_count : CENTER_ROWS;
        start_epoch(tr, 0);
        gather_train(tr, 0, (int)n_init);
        prepare_rows(tr);
        mtl_model_center_init(m, &tr->batch);
    }
    /* replicas start identical whatever each rank's generator did */
    mtl_dist_bcast_floats(d, m->params.values, m->params.replicated_size, 0);
    mtl_params_changed(&m->params);
    mtl_rng_seed(&m->dropout_rng, cfg->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)d->rank + 1);

    progress pg;
    memset(&pg, 0, sizeof pg);
    pg.best_metric = INFINITY;
    pg.best_epoch = -1;
    int use_early = cfg->early_stop_patience > 0 && tr->has_valid;

    /* resume */
    if (cfg->resume[0]) {
        char path[MTL_PATH_MAX + 32];
        if (strcmp(cfg->resume, "latest") == 0) {
            if (!cfg->checkpoint_dir[0]) {
                mtl_fail(err, NULL, "--resume latest: needs --checkpoint-dir");
                trainer_free(tr);
                return MTL_EXIT_USAGE;
            }
            rc = find_latest(cfg->checkpoint_dir, path, sizeof path, root, err);
        } else {
            snprintf(path, sizeof path, "%s", cfg->resume);
            rc = MTL_OK;
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
        if (rc == MTL_OK && (st.shape.S != shape.S || st.shape.D != shape.D ||
                             st.shape.T != shape.T || st.shape.M != shape.M))
            rc = mtl_fail(err, path,
                          "--resume: the checkpoint was trained on data of another shape");
        if (rc == MTL_OK) rc = mtl_checkpoint_load_tensors(path, m, 1, tr->best, &pg.has_best, err);
        if (rc == MTL_OK) {
            pg.step = st.step;
            pg.epoch = st.epoch;
            pg.batch_in_epoch = st.batch_in_epoch;
            pg.best_metric = st.best_metric;
            pg.best_epoch = st.best_epoch;
            pg.bad_epochs = st.bad_epochs;
            if (root) memcpy(pg.loss_sum, st.train_loss_sum, sizeof pg.loss_sum);
            memcpy(pg.count, st.train_count, sizeof pg.count);
            if (st.world_size == d->world) {
                /* rank 0's generator is in the file; in a same-size resume each rank
                 * derives its own from it, as at the start */
                memcpy(m->dropout_rng.s, st.dropout_rng, sizeof st.dropout_rng);
                for (int k = 0; k < d->rank; k++) mtl_rng_next(&m->dropout_rng);
            }
            if (root)
                printf("resumed from %s at epoch %lld, step %lld%s\n", path,
                       (long long)pg.epoch + 1, (long long)pg.step,
                       st.world_size != d->world
                           ? " (saved by a different number of ranks: the data order differs "
                             "from the original run)"
                           : "");
        }
        agree_ok(d, rc, err);
        if (st.world_size != d->world && !whole) {
            /* the partial epoch's position does not carry over to other shards */
            pg.batch_in_epoch = pg.batch_in_epoch < tr->steps_per_epoch ? pg.batch_in_epoch : 0;
        }
    }

    /* outputs written at the end are checked now, not after hours of training */
    if (root && cfg->predict_out[0]) rc = check_writable(cfg->predict_out, "--predict-out", err);
    if (rc == MTL_OK && root && cfg->metrics_out[0])
        rc = check_writable(cfg->metrics_out, "--metrics-out", err);
    agree_ok(d, rc, err);
    /* the checkpoint directory before the metrics file: a failure leaves no empty file */
    if (root && cfg->checkpoint_dir[0]) {
        struct stat sb;
        if (stat(cfg->checkpoint_dir, &sb) != 0 && mkdir_parents(cfg->checkpoint_dir) != 0)
            rc = mtl_fail(err, cfg->checkpoint_dir, "cannot create checkpoint directory: %s",
                          strerror(errno));
        else if (stat(cfg->checkpoint_dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
            rc = mtl_fail(err, cfg->checkpoint_dir, "--checkpoint-dir: not a directory");
    }
    agree_ok(d, rc, err);
    if (root && cfg->metrics_out[0]) {
        tr->metrics = fopen(cfg->metrics_out, pg.step > 0 ? "a" : "w");
        rc = tr->metrics
                 ? MTL_OK
                 : mtl_fail(err, cfg->metrics_out, "cannot open for writing: %s", strerror(errno));
    }
    agree_ok(d, rc, err);

    if (root && !cfg->quiet) {
        printf("mtl_dist %s: model %s, %d rank%s, %lld parameters (%lld in embeddings), "
               "%.1f kFLOP/sample, train %lld rows",
               MTL_VERSION, cfg->model->name, d->world, d->world > 1 ? "s" : "",
               (long long)m->params.size, (long long)(m->params.size - m->params.dense_size),
               mtl_model_flops_per_sample(m) / 1e3, (long long)tr->train.n_total);
        if (tr->emb.n_tables > 0)
            printf(", %d sparse embedding table%s", tr->emb.n_tables,
                   tr->emb.n_tables > 1 ? "s" : "");
        if (tr->has_valid)
            printf(", valid %lld%s", (long long)tr->valid.n_total,
                   n_train >= 0 ? " (the last rows of the training file: --valid-split)" : "");
        if (tr->has_test) printf(", test %lld", (long long)tr->test.n_total);
        printf("\n");
        fflush(stdout);
    }

    /* ---- the loop ---- */
    int T = m->T;
    double train_seconds = 0, train_samples = 0;
    /* steady state: steps after the first few (page faults, BLAS warm-up),
     * and the share of them spent in the gradient allreduce */
    const int64_t warmup_steps = 5;
    double steady_seconds = 0, steady_samples = 0, allreduce_seconds = 0, gemm_seconds = 0;
    /* bytes a rank receives per step in the gradient exchange: a ring
     * allreduce of the block receives 2 (P-1)/P of it (the model, as MPI
     * does not report it), the sparse exchange the other ranks' rows */
    const double dense_exchange_bytes =
        d->world > 1 ? 2.0 * (d->world - 1) / d->world * (double)m->params.block_size * 4.0 : 0.0;
    double exchange_bytes = 0, steady_steps = 0;
    double last_ckpt_time = mtl_dist_time();
    int interrupted = 0, diverged = 0, stop_early = 0;
    int64_t nonfinite_skipped = 0;
    int tty = root && !cfg->quiet && isatty(STDERR_FILENO);
    for (; pg.epoch < cfg->epochs && !interrupted && !diverged && !stop_early; pg.epoch++) {
        start_epoch(tr, pg.epoch);
        double epoch_t0 = mtl_dist_time(), epoch_samples = 0, last_progress = epoch_t0;
        for (; pg.batch_in_epoch < tr->steps_per_epoch; pg.batch_in_epoch++) {
            if (cfg->max_steps > 0 && pg.step >= cfg->max_steps) break;
            /* this rank's rows of the step */
            int64_t first, n;
            if (whole) {
                int64_t gb = pg.batch_in_epoch * cfg->batch_size;
                int64_t gn =
                    tr->train_count - gb < cfg->batch_size ? tr->train_count - gb : cfg->batch_size;
                int64_t off;
                mtl_shard_range(gn, d->rank, d->world, &off, &n);
                first = gb + off;
            } else {
                first = pg.batch_in_epoch * tr->local_batch;
                n = tr->train_count - first;
                if (n > tr->local_batch) n = tr->local_batch;
                if (n < 0) n = 0; /* this rank ran out: it still joins every allreduce */
            }
            double step_t0 = mtl_dist_time(), gemm_t0 = mtl_gemm_seconds();
            gather_train(tr, first, (int)n);
            prepare_rows(tr);
            /* one small non-blocking sum, overlapped with the forward: the labelled
             * counts per task, and two flags that every rank must act on at the
             * end of this step: a stop signal, and rank 0's checkpoint clock */
            double count[MTL_MAX_TASKS + 2], loss_sum[MTL_MAX_TASKS] = {0};
            mtl_model_count_labels(m, &tr->batch, count);
            count[T] = stop_requested ? 1 : 0;
            count[T + 1] = root && cfg->checkpoint_dir[0] && cfg->checkpoint_every_seconds > 0 &&
                           mtl_dist_time() - last_ckpt_time >= cfg->checkpoint_every_seconds;
            mtl_dist_pending pending;
            mtl_dist_sum_doubles_start(d, count, (size_t)T + 2, &pending);
            /* the rank's rows go through the model in micro-batches of
             * m->max_batch rows, whose activations stay in the core's cache;
             * their gradients add up in the one gradient block */
            int part_rows = m->max_batch;
            mtl_batch part = batch_rows(&tr->batch, 0, n < part_rows ? (int)n : part_rows);
            if (part.n > 0) mtl_model_forward(m, &part, 1);
            mtl_dist_wait(d, &pending);
            if (m->buffers.n > 0 && d->world > 1) {
                /* batch-norm running statistics: the replicas' average, so every rank
                 * (and the checkpoint) holds the same model */
                mtl_dist_sum_floats(d, m->buffers.values, m->buffers.size);
                for (size_t i = 0; i < m->buffers.size; i++)
                    m->buffers.values[i] /= (float)d->world;
            }
            memset(m->params.grads, 0, m->params.block_size * sizeof(float));
            for (int first_row = 0;;) {
                double part_loss[MTL_MAX_TASKS];
                /* the uncertainty weighting's constant term once per step: rank 0's first part */
                mtl_model_loss(m, &part, count, root && first_row == 0, part_loss);
                for (int t = 0; t < T; t++) loss_sum[t] += part_loss[t];
                if (part.n > 0) mtl_model_backward(m, &part);
                first_row += part.n;
                if (first_row >= n) break;
                part = batch_rows(&tr->batch, first_row,
                                  n - first_row < part_rows ? (int)n - first_row : part_rows);
                mtl_model_forward(m, &part, 1);
            }
            double reduce_t0 = mtl_dist_time();
            mtl_dist_sum_floats(d, m->params.grads, m->params.block_size);
            mtl_error xerr;
            if (mtl_embeddings_exchange(&tr->emb, d, &xerr) != MTL_OK)
                mtl_dist_abort(d, MTL_EXIT_FAILURE, xerr.msg);
            double reduce_seconds = mtl_dist_time() - reduce_t0;
            /* the summed gradient is the same on every rank: so is this test */
            if (!mtl_all_finite(m->params.grads, m->params.block_size) ||
                !mtl_embeddings_all_finite(&tr->emb, d)) {
                int my_task = 0;
                for (int t = 0; t < T && !my_task; t++)
                    if (!isfinite(loss_sum[t])) my_task = t + 1;
                int task = mtl_dist_max_int(d, my_task);
                if (cfg->skip_nonfinite_steps) {
                    nonfinite_skipped++;
                    if (root && !cfg->quiet)
                        fprintf(
                            stderr,
                            "mtl_dist: step %lld: non-finite loss or gradient%s%s: step skipped\n",
                            (long long)pg.step + 1, task ? " in task " : "",
                            task ? m->shape.task_names[task - 1] : "");
                    continue;
                }
                mtl_fail(
                    err, NULL,
                    "step %lld (epoch %lld): the loss or gradient is not finite (NaN/Inf)%s%s; "
                    "training stopped, the last good checkpoint is kept (lower --lr, check the "
                    "data for extreme values, or pass --skip-nonfinite-steps)",
                    (long long)pg.step + 1, (long long)pg.epoch + 1, task ? " in task " : "",
                    task ? m->shape.task_names[task - 1] : "");
                diverged = 1;
                break;
            }
            for (int i = 0; i < m->params.n; i++) {
                const mtl_tensor *t = &m->params.tensors[i];
                float l2 = t->reg == MTL_REG_DNN         ? cfg->l2_dnn
                           : t->reg == MTL_REG_EMBEDDING ? cfg->l2_embedding
                                                         : 0.0f;
                if (l2 > 0 && !t->sparse)
                    mtl_add_l2(m->params.grads + t->offset, m->params.values + t->offset, t->size,
                               l2);
            }
            pg.step++;
            mtl_optim_update(&tr->opt, m->params.values, m->params.grads, m->params.m, m->params.v,
                             m->params.block_size, pg.step);
            mtl_params_changed(&m->params);
            mtl_embeddings_update(&tr->emb, &tr->opt, cfg->l2_embedding, pg.step);
            for (int t = 0; t < T; t++) {
                pg.loss_sum[t] += loss_sum[t]; /* this rank's */
                pg.count[t] += count[t];       /* global, the same on every rank */
            }
            {
                int64_t gb = pg.batch_in_epoch * (int64_t)cfg->batch_size;
                int64_t all = whole ? tr->train_count : tr->train.n_total;
                int64_t gn = all - gb < cfg->batch_size ? all - gb : cfg->batch_size;
                epoch_samples += (double)(gn > 0 ? gn : 0);
                if (pg.step > warmup_steps) {
                    steady_seconds += mtl_dist_time() - step_t0;
                    steady_samples += (double)(gn > 0 ? gn : 0);
                    allreduce_seconds += reduce_seconds;
                    gemm_seconds += mtl_gemm_seconds() - gemm_t0;
                    exchange_bytes += dense_exchange_bytes + tr->emb.bytes_received;
                    steady_steps++;
                }
            }
            /* stop or checkpoint: every rank has the same flags (summed above) */
            int want = (count[T] > 0 ? 1 : 0) | (count[T + 1] > 0 ? 2 : 0);
            if (cfg->checkpoint_dir[0] && cfg->checkpoint_every_steps > 0 &&
                pg.step % cfg->checkpoint_every_steps == 0)
                want |= 2;
            if (want) {
                pg.batch_in_epoch++; /* this batch is done */
                if (cfg->checkpoint_dir[0]) {
                    if (save_checkpoint(tr, &pg, err) != MTL_OK) {
                        trainer_free(tr);
                        return MTL_EXIT_FAILURE;
                    }
                    last_ckpt_time = mtl_dist_time();
                }
                pg.batch_in_epoch--;
                if (want & 1) {
                    interrupted = 1;
                    pg.batch_in_epoch++;
                    break;
                }
            }
            if (tty && mtl_dist_time() - last_progress > 0.5) {
                last_progress = mtl_dist_time();
                fprintf(stderr, "\repoch %lld: %3.0f%% (%lld/%lld steps)", (long long)pg.epoch + 1,
                        100.0 * (double)(pg.batch_in_epoch + 1) / (double)tr->steps_per_epoch,
                        (long long)pg.batch_in_epoch + 1, (long long)tr->steps_per_epoch);
            }
        }
        if (tty) fprintf(stderr, "\r%60s\r", "");
        double epoch_seconds = mtl_dist_time() - epoch_t0;
        train_seconds += epoch_seconds;
        train_samples += epoch_samples;
        if (interrupted || diverged) break;
        int hit_max = cfg->max_steps > 0 && pg.step >= cfg->max_steps;
        if (hit_max && pg.batch_in_epoch < tr->steps_per_epoch) {
            /* --max-steps inside an epoch: no epoch end; a checkpoint that
             * resumes at this very step */
            if (cfg->checkpoint_dir[0] && save_checkpoint(tr, &pg, err) != MTL_OK) {
                trainer_free(tr);
                return MTL_EXIT_FAILURE;
            }
            break;
        }

        /* epoch end: train loss, validation, early stopping */
        double sums[2 * MTL_MAX_TASKS];
        for (int t = 0; t < T; t++) {
            sums[t] = pg.loss_sum[t];
            sums[T + t] = 0;
        }
        mtl_dist_sum_doubles(d, sums, (size_t)T);
        double train_loss[MTL_MAX_TASKS];
        for (int t = 0; t < T; t++) train_loss[t] = pg.count[t] > 0 ? sums[t] / pg.count[t] : NAN;
        eval_result valid;
        memset(&valid, 0, sizeof valid);
        if (tr->has_valid) {
            int64_t b, c;
            eval_range(tr, &tr->valid, &b, &c);
            evaluate(tr, &tr->valid, b, c, &valid);
        }
        double sps = epoch_seconds > 0 ? epoch_samples / epoch_seconds : 0;
        if (root && !cfg->quiet) {
            printf("epoch %lld/%d train", (long long)pg.epoch + 1, cfg->epochs);
            for (int t = 0; t < T; t++) printf(" %s %.4f", m->shape.task_names[t], train_loss[t]);
            if (tr->has_valid) print_eval(m, "valid", &valid);
            printf(" | %.0f samples/s | %.2f s\n", sps, epoch_seconds);
            fflush(stdout);
        }
        if (tr->metrics) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "epoch", (double)(pg.epoch + 1));
            json_task_map(j, m, "train_loss", train_loss, -1);
            if (tr->has_valid) json_eval(j, m, "valid", &valid);
            json_num(j, "samples_per_sec", sps);
            json_num(j, "epoch_seconds", epoch_seconds);
            cJSON_AddNumberToObject(j, "steps", (double)pg.step);
            json_line(tr->metrics, j);
        }
        if (use_early) {
            double metric = et >= 0 ? -(et_gauc ? valid.gauc[et] : valid.auc[et]) : valid.total;
            if (metric < pg.best_metric) {
                pg.best_metric = metric;
                pg.best_epoch = pg.epoch;
                pg.bad_epochs = 0;
                pg.has_best = 1;
                memcpy(tr->best, m->params.values, m->params.size * sizeof(float));
            } else if (++pg.bad_epochs >= cfg->early_stop_patience) {
                stop_early = 1;
                if (root && !cfg->quiet)
                    printf("early stopping: no improvement for %d epochs; best epoch %lld\n",
                           cfg->early_stop_patience, (long long)pg.best_epoch + 1);
            }
        }
        memset(pg.loss_sum, 0, sizeof pg.loss_sum);
        memset(pg.count, 0, sizeof pg.count);
        pg.batch_in_epoch = 0;
        if (cfg->checkpoint_dir[0]) {
            pg.epoch++; /* the checkpoint resumes at the next epoch */
            int crc = save_checkpoint(tr, &pg, err);
            pg.epoch--;
            if (crc != MTL_OK) {
                trainer_free(tr);
                return MTL_EXIT_FAILURE;
            }
            last_ckpt_time = mtl_dist_time();
        }
        if (hit_max) {
            pg.epoch++;
            break;
        }
    }

    if (diverged) {
        trainer_free(tr);
        return MTL_EXIT_FAILURE;
    }
    if (interrupted) {
        if (root)
            fprintf(
                stderr, "mtl_dist: interrupted at step %lld; %s\n", (long long)pg.step,
                cfg->checkpoint_dir[0]
                    ? "checkpoint written: rerun the same command with --resume latest to continue"
                    : "no --checkpoint-dir was given, so nothing was saved");
        trainer_free(tr);
        /* 75 promises a checkpoint to resume from */
        return cfg->checkpoint_dir[0] ? MTL_EXIT_INTERRUPTED : MTL_EXIT_FAILURE;
    }

    /* the end: best weights, test metrics, predictions */
    if (use_early && pg.has_best) {
        memcpy(m->params.values, tr->best, m->params.size * sizeof(float));
        mtl_params_changed(&m->params);
    }
    eval_result test;
    memset(&test, 0, sizeof test);
    if (tr->has_test) {
        int64_t b, c;
        eval_range(tr, &tr->test, &b, &c);
        evaluate(tr, &tr->test, b, c, &test);
        if (root && !cfg->quiet) {
            printf("test");
            print_eval(m, "", &test);
            printf("\n");
        }
        if (root && cfg->predict_out[0]) {
            const char *names[3 + MTL_MAX_TASKS];
            for (int p = 0; p < m->P; p++) names[p] = mtl_model_prediction_name(m, p);
            rc = mtl_predictions_save(cfg->predict_out, tr->all_pred, tr->test.n_total, m->P, names,
                                      err);
        }
        agree_ok(d, rc, err);
    }
    double total_seconds = mtl_dist_time() - t_start;
    /* the largest peak resident set over the ranks */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak_rss_mb = mtl_dist_max_int(d, (int)ru.ru_maxrss) / 1024.0;
    if (tr->metrics) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddTrueToObject(j, "final");
        cJSON_AddNumberToObject(j, "best_epoch",
                                (double)(use_early && pg.has_best ? pg.best_epoch + 1 : pg.epoch));
        if (tr->has_test) {
            if (any_task(m, 0)) {
                json_task_map(j, m, "test_auc", test.auc, 0);
                json_task_map(j, m, "test_logloss", test.loss, 0);
                if (test.has_gauc) json_gauc(j, m, "test", &test);
            }
            if (any_task(m, 1)) {
                json_task_map(j, m, "test_mse", test.loss, 1);
                json_task_map(j, m, "test_mae", test.mae, 1);
            }
        }
        json_num(j, "train_samples_per_sec", train_seconds > 0 ? train_samples / train_seconds : 0);
        json_num(j, "train_seconds", train_seconds);
        json_num(j, "total_seconds", total_seconds);
        json_num(j, "steady_samples_per_sec",
                 steady_seconds > 0 ? steady_samples / steady_seconds : NAN);
        json_num(j, "allreduce_share",
                 steady_seconds > 0 ? allreduce_seconds / steady_seconds : NAN);
        json_num(j, "gemm_share", steady_seconds > 0 ? gemm_seconds / steady_seconds : NAN);
        cJSON_AddStringToObject(j, "gemm", mtl_gemm_backend_name(m->gemm_backend));
        json_num(j, "exchange_bytes_per_step",
                 steady_steps > 0 ? exchange_bytes / steady_steps : NAN);
        cJSON_AddNumberToObject(j, "sparse_tables", tr->emb.n_tables);
        cJSON_AddNumberToObject(j, "sharded_tables", tr->emb.n_sharded);
        json_num(j, "flops_per_sample", round(mtl_model_flops_per_sample(m)));
        json_num(j, "peak_rss_mb", round(peak_rss_mb * 10.0) / 10.0);
        cJSON_AddNumberToObject(j, "steps", (double)pg.step);
        cJSON_AddNumberToObject(j, "nonfinite_steps_skipped", (double)nonfinite_skipped);
        cJSON_AddNumberToObject(j, "world_size", d->world);
        cJSON_AddNumberToObject(j, "threads", cfg->threads);
        json_line(tr->metrics, j);
    }
    if (root && !cfg->quiet)
        printf("done: %lld steps, %.0f samples/s, %.2f s\n", (long long)pg.step,
               train_seconds > 0 ? train_samples / train_seconds : 0, total_seconds);
    trainer_free(tr);
    return MTL_EXIT_OK;
}

/* ---- predict ---- */

int mtl_predict_run(const mtl_config *cfg_in, const mtl_dist *d, mtl_error *err) {
    trainer tr_, *tr = &tr_;
    memset(tr, 0, sizeof *tr);
    mtl_config cfg = *cfg_in;
    tr->cfg = &cfg;
    tr->d = d;
    openblas_set_num_threads(cfg.threads);
    mtl_ckpt_state st;
    /* the output is checked first, as in training */
    int rc = d->rank == 0 ? check_writable(cfg.predict_out, "--predict-out", err) : MTL_OK;
    if (rc == MTL_OK) rc = mtl_checkpoint_load_state(cfg.checkpoint_path, &st, err);
    if (rc == MTL_OK) rc = mtl_config_apply_text(&cfg, st.config, cfg.checkpoint_path, err);
    agree_ok(d, rc, err);
    rc = open_eval_split(tr, &tr->valid, cfg.data_path, 0, err);
    if (rc == MTL_OK) {
        mtl_dataset *ds = &tr->valid;
        if (ds->S != st.shape.S || ds->D != st.shape.D)
            rc = mtl_fail(err, cfg.data_path,
                          "has %d sparse and %d dense columns; the model was trained on %d and %d",
                          ds->S, ds->D, st.shape.S, st.shape.D);
        for (int s = 0; rc == MTL_OK && s < ds->S; s++)
            if (ds->vocab_sizes[s] != st.shape.vocab_sizes[s])
                rc = mtl_fail(err, cfg.data_path,
                              "/sparse: vocab_sizes[%d] is %lld; the model was trained with %lld "
                              "(encode with mtl_prep --vocab-from the training file)",
                              s, (long long)ds->vocab_sizes[s], (long long)st.shape.vocab_sizes[s]);
        if (rc == MTL_OK && ds->T != st.shape.T)
            rc = mtl_fail(err, cfg.data_path, "has %d label columns; the model has %d tasks", ds->T,
                          st.shape.T);
        if (rc == MTL_OK) rc = same_multi_shape(ds, &st.shape, err);
    }
    agree_ok(d, rc, err);
    if (tr->valid.n_total < d->world) {
        /* the message first: trainer_free zeroes the dataset */
        mtl_fail(err, cfg.data_path, "%lld row%s cannot be shared by %d ranks",
                 (long long)tr->valid.n_total, tr->valid.n_total == 1 ? "" : "s", d->world);
        trainer_free(tr);
        return MTL_EXIT_USAGE;
    }
    int capacity = (int)((cfg.batch_size + d->world - 1) / d->world);
    rc = mtl_model_create(&tr->m, &cfg, &st.shape, capacity, err);
    if (rc == MTL_OK)
        rc = mtl_checkpoint_load_tensors(cfg.checkpoint_path, tr->m, 0, NULL, NULL, err);
    if (rc == MTL_OK)
        rc = mtl_batch_alloc(&tr->batch, capacity, st.shape.S, st.shape.D, st.shape.T, err);
    if (rc == MTL_OK) rc = mtl_batch_alloc_multi(&tr->batch, st.shape.M, err);
    if (rc == MTL_OK) {
        tr->rows = mtl_alloc((size_t)capacity, sizeof(int64_t), "batch rows", err);
        int64_t b, c;
        eval_range(tr, &tr->valid, &b, &c);
        rc = tr->rows ? alloc_eval(tr, c, tr->valid.n_total, err) : MTL_ERR;
    }
    agree_ok(d, rc, err);
    eval_result res;
    int64_t begin, count;
    eval_range(tr, &tr->valid, &begin, &count);
    evaluate(tr, &tr->valid, begin, count, &res);
    if (d->rank == 0) {
        const char *names[3 + MTL_MAX_TASKS];
        for (int p = 0; p < tr->m->P; p++) names[p] = mtl_model_prediction_name(tr->m, p);
        rc = mtl_predictions_save(cfg.predict_out, tr->all_pred, tr->valid.n_total, tr->m->P, names,
                                  err);
        if (rc == MTL_OK && !cfg.quiet) {
            printf("wrote %lld predictions to %s", (long long)tr->valid.n_total, cfg.predict_out);
            print_eval(tr->m, "labels in the data:", &res);
            printf("\n");
        }
    }
    agree_ok(d, rc, err);
    trainer_free(tr);
    return MTL_EXIT_OK;
}
