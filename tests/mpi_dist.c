/* Multi-rank tests of src/dist.c and of data-parallel gradients, run under
 * mpiexec with 2 and 3 ranks (tests/CMakeLists.txt):
 *  - one global batch (37 rows, NaN labels, per-task sample weights) split unevenly
 *    over the ranks: the allreduced gradient equals the 1-rank gradient of the
 *    whole batch up to summation order, for every architecture;
 *  - the collectives: sums, the non-blocking sum, max, broadcasts, and the
 *    gather of uneven (and empty) arrays;
 *  - sharding: mtl_shard_range, and mtl_dataset_load of a file written by
 *    mtl_writer reads exactly the rank's rows.
 * Checks that depend on the rank never longjmp out of a test (that would
 * leave the other ranks waiting in a collective): they are recorded, and
 * every test ends with a collective verdict so all ranks fail together. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtl/config.h"
#include "mtl/data.h"
#include "mtl/dist.h"
#include "mtl/embedding.h"
#include "mtl/model.h"
#include "test_models.h"

static mtl_dist D;
static int n_failed; /* checks failed on this rank in the current test */

/* One write per failure so the ranks' messages do not interleave. */
static void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rank %d: %s:%d: check failed: %s: %s\n", D.rank, file, line, cond, what);
    n_failed++;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
    } while (0)

/* Collective: fail the test on every rank if any rank recorded a failure. */
static void verdict(void) {
    int bad = mtl_dist_max_int(&D, n_failed > 0);
    n_failed = 0;
    if (bad) fail_msg("a check failed on at least one rank (see stderr)");
}

/* Collective: stop the test on every rank unless ok on every rank. */
static void require(int ok, const char *what, const mtl_error *err) {
    if (!ok) fprintf(stderr, "rank %d: %s: %s\n", D.rank, what, err ? err->msg : "");
    int bad = mtl_dist_max_int(&D, !ok);
    if (bad) fail_msg("%s failed on at least one rank (see stderr)", what);
}

/* ---- gradients: N ranks vs 1 rank ---- */

enum { GB = 37, S_ = 3, D_ = 4, T_ = 2 };
static const int64_t VOCAB[S_] = {5, 7, 11};

typedef struct {
    const char *name;
    int kind;
    int regression1;  /* task 1 is a regression task */
    int uncertainty;  /* --loss-weighting uncertainty */
    int global_batch; /* rows of the global batch; 0: world - 1 (the last rank gets none) */
    int sparse;       /* --embedding-update sparse: touched rows exchanged by embedding.c */
} grad_case;

static void case_config(mtl_config *cfg, const grad_case *gc) {
    mtl_config_defaults(cfg);
    cfg->model = model_of(gc->kind);
    cfg->seed = 20240611;
    cfg->embedding_dim = 3;
    cfg->bottom_units = (mtl_units){2, {8, 6}};
    cfg->tower_units = every_task((mtl_units){1, {4}});
    cfg->expert_units = (mtl_units){1, {8}};
    cfg->gate_units = every_task((mtl_units){0, {0}});
    cfg->num_experts = 3;
    cfg->num_experts_specific = 2;
    cfg->num_experts_shared = 1;
    cfg->num_levels = 2;
    if (gc->kind == K_PLE) cfg->gate_units = every_task((mtl_units){1, {4}});
    if (gc->kind == K_ESMM) {
        cfg->tower_units = every_task((mtl_units){2, {8, 4}});
        strcpy(cfg->ctr_task, "click");
        strcpy(cfg->ctcvr_task, "conversion");
    }
    cfg->batch_norm = 0; /* batch statistics are per rank: not equal to 1-rank */
    cfg->dropout = 0.0f;
    cfg->loss_uncertainty = gc->uncertainty;
    cfg->embedding_update = gc->sparse ? MTL_EMBEDDING_SPARSE : MTL_EMBEDDING_DENSE;
    if (gc->uncertainty) {
        cfg->n_loss_weights = T_;
        cfg->loss_weights[0] = 0.7f;
        cfg->loss_weights[1] = 1.3f;
    }
}

static void case_shape(mtl_data_shape *sh, const grad_case *gc) {
    memset(sh, 0, sizeof *sh);
    sh->S = S_;
    for (int s = 0; s < S_; s++) sh->vocab_sizes[s] = VOCAB[s];
    sh->D = D_;
    sh->T = T_;
    strcpy(sh->task_names[0], "click");
    strcpy(sh->task_names[1], "conversion");
    sh->task_regression[1] = gc->regression1;
}

/* The same global batch on every rank, from a fixed generator: ~15% NaN
 * labels, and task 1 unlabelled from row 25 on (so with 3 ranks the last
 * rank has no label of task 1 at all, but still contributes to task 0). */
static void make_global_batch(mtl_batch *b, int n, int regression1) {
    mtl_rng rng;
    mtl_rng_seed(&rng, 777);
    b->n = n;
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < S_; s++)
            b->sparse[i * S_ + s] = (int32_t)mtl_rng_below(&rng, (uint64_t)VOCAB[s]);
        for (int j = 0; j < D_; j++) b->dense[i * D_ + j] = mtl_rng_uniform(&rng) * 2.0f - 1.0f;
        for (int t = 0; t < T_; t++) {
            float y;
            if (t == 1 && regression1)
                y = (float)mtl_rng_normal(&rng);
            else
                y = mtl_rng_uniform(&rng) < 0.4f ? 1.0f : 0.0f;
            if (mtl_rng_uniform(&rng) < 0.15f || (t == 1 && i >= 25)) y = NAN;
            b->labels[i * T_ + t] = y;
            b->weights[i * T_ + t] = 0.5f + mtl_rng_uniform(&rng); /* per task, [N, T] */
        }
    }
}

static void copy_rows(mtl_batch *dst, const mtl_batch *src, int64_t begin, int64_t count) {
    dst->n = (int)count;
    memcpy(dst->sparse, src->sparse + begin * S_, (size_t)count * S_ * sizeof(int32_t));
    memcpy(dst->dense, src->dense + begin * D_, (size_t)count * D_ * sizeof(float));
    memcpy(dst->labels, src->labels + begin * T_, (size_t)count * T_ * sizeof(float));
    memcpy(dst->weights, src->weights + begin * T_, (size_t)count * T_ * sizeof(float));
}

/* One training step's gradient as train.c computes it, without the update. */
static void step_gradient(mtl_model *m, const mtl_batch *b, const double *global_count, int is_root,
                          double *loss_sum) {
    if (b->n > 0) mtl_model_forward(m, b, 1);
    memset(m->params.grads, 0, m->params.size * sizeof(float));
    mtl_model_loss(m, b, global_count, is_root, loss_sum);
    if (b->n > 0) mtl_model_backward(m, b);
}

/* The sparse tables' exchanged rows, written into their place in the gradient
 * block (untouched rows zero), to compare the block as a whole. */
static void scatter_sparse_rows(mtl_model *m, const mtl_embeddings *E) {
    for (int k = 0; k < E->n_tables; k++) {
        const mtl_sparse_table *st = &E->tables[k];
        float *block = mtl_params_grad(&m->params, m->emb[st->field]);
        memset(block, 0, (size_t)st->rows * (size_t)st->dim * sizeof *block);
        for (int i = 0; i < st->n; i++)
            memcpy(block + (size_t)st->ids[i] * (size_t)st->dim,
                   st->grad + (size_t)i * (size_t)st->dim, (size_t)st->dim * sizeof *block);
    }
}

static void run_grad_case(const grad_case *gc) {
    mtl_config cfg;
    mtl_data_shape shape;
    mtl_error err = {{0}};
    case_config(&cfg, gc);
    cfg.rank = D.rank; /* replicated sparse tables: whose optimizer rows are whose */
    cfg.world = D.world;
    case_shape(&shape, gc);
    int n = gc->global_batch > 0 ? gc->global_batch : D.world - 1;

    mtl_model *m = NULL;
    mtl_batch full, mine;
    memset(&full, 0, sizeof full);
    memset(&mine, 0, sizeof mine);
    int rc = mtl_model_create(&m, &cfg, &shape, GB, &err);
    if (rc == MTL_OK) rc = mtl_batch_alloc(&full, GB, S_, D_, T_, &err);
    if (rc == MTL_OK) rc = mtl_batch_alloc(&mine, GB, S_, D_, T_, &err);
    require(rc == MTL_OK, "model and batches", &err);
    size_t P = m->params.size;
    float *init = malloc(P * sizeof(float));
    float *g1 = malloc(P * sizeof(float));
    float *g_root = malloc(P * sizeof(float));
    require(init && g1 && g_root, "malloc", NULL);

    /* same seed, same init; broadcast anyway as train.c does */
    memcpy(init, m->params.values, P * sizeof(float));
    mtl_dist_bcast_floats(&D, m->params.values, P, 0);
    mtl_params_changed(&m->params);
    CHECK(memcmp(init, m->params.values, P * sizeof(float)) == 0,
          "%s: initial parameters differ from rank 0's with the same seed", gc->name);

    /* the 1-rank reference over the whole batch */
    make_global_batch(&full, n, gc->regression1);
    double count1[T_], loss1[T_] = {0};
    mtl_model_count_labels(m, &full, count1);
    step_gradient(m, &full, count1, 1, loss1);
    memcpy(g1, m->params.grads, P * sizeof(float));

    /* this rank's share, scaled by the global counts */
    int64_t begin, cnt;
    mtl_shard_range(n, D.rank, D.world, &begin, &cnt);
    copy_rows(&mine, &full, begin, cnt);
    mtl_embeddings E; /* sparse tables: compact rows from here on (the reference used the block) */
    require(mtl_embeddings_init(&E, m, GB, D.world, &err) == MTL_OK, "sparse tables", &err);
    CHECK(E.n_tables == (gc->sparse ? S_ : 0), "%s: %d sparse tables", gc->name, E.n_tables);
    require(mtl_embeddings_collect(&E, &mine, &err) == MTL_OK, "collect", &err);
    double count[T_], loss[T_] = {0};
    mtl_model_count_labels(m, &mine, count);
    mtl_dist_sum_doubles(&D, count, T_);
    for (int t = 0; t < T_; t++)
        CHECK(count[t] == count1[t], "%s: task %d: summed label count %g, whole batch %g", gc->name,
              t, count[t], count1[t]);
    step_gradient(m, &mine, count, D.rank == 0, loss);
    mtl_dist_sum_floats(&D, m->params.grads, m->params.block_size);
    require(mtl_embeddings_exchange(&E, &D, &err) == MTL_OK, "exchange", &err);
    scatter_sparse_rows(m, &E);
    /* each rank holds the summed rows it owns (id mod world): their sum over
     * the ranks is the whole tables' gradient (adding zeros is exact) */
    if (E.n_tables > 0)
        mtl_dist_sum_floats(&D, m->params.grads + m->params.block_size,
                            m->params.replicated_size - m->params.block_size);
    mtl_embeddings_free(&E);
    mtl_dist_sum_doubles(&D, loss, T_);

    double diff2 = 0, ref2 = 0;
    size_t worst = 0;
    double worst_abs = 0;
    for (size_t i = 0; i < P; i++) {
        double dd = (double)m->params.grads[i] - (double)g1[i];
        diff2 += dd * dd;
        ref2 += (double)g1[i] * (double)g1[i];
        if (fabs(dd) > worst_abs || isnan(dd)) worst_abs = fabs(dd), worst = i;
    }
    double rel = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
    if (D.rank == 0)
        printf("  %-28s batch %2d over %d ranks: |g_N - g_1| / |g_1| = %.3g (|g_1| = %.3g)\n",
               gc->name, n, D.world, rel, sqrt(ref2));
    CHECK(isfinite(ref2) && (ref2 > 0 || n < GB), "%s: reference gradient is zero or not finite",
          gc->name);
    /* float32 gradients summed in another order (over ranks, and by SGEMM
     * kernels chosen by shape): rounding of ~1e-7 per element, far below 1e-5
     * in norm; a missing or doubled row shows up at 1e-2 or more */
    CHECK(rel < 1e-5, "%s: relative gradient difference %.3g (worst element %zu: %g vs %g)",
          gc->name, rel, worst, (double)m->params.grads[worst], (double)g1[worst]);
    /* The loss sums are accumulated in double, but from float32 logits, and
     * the logits of a row need not be bit-identical between the whole batch
     * and a rank's share of it: OpenBLAS picks kernels and blocking by the
     * matrix shape (and by OPENBLAS_CORETYPE), so a row's dot products may be
     * summed in another order and round differently. A row's logit then
     * differs by a few float32 ulp of its magnitude, and so does its loss:
     * |d loss / d logit| <= 1 for BCE and <= 2 sqrt(loss) <= 1 + loss for
     * MSE. Per labelled row a few ulp of (1 + loss_i), times its weight (at
     * most 1.5 here), summed over the rows: 16 FLT_EPSILON (count * 1.5 +
     * loss). That is ~1e-5 relative for these batches; a row lost or counted
     * twice changes the sum by its whole loss, orders of magnitude more. */
    for (int t = 0; t < T_; t++) {
        double tol = 16.0 * FLT_EPSILON * (1.5 * count1[t] + fabs(loss1[t]));
        CHECK(fabs(loss[t] - loss1[t]) <= tol,
              "%s: task %d: summed loss %.17g, whole batch %.17g (tolerance %.3g)", gc->name, t,
              loss[t], loss1[t], tol);
    }

    /* the replicas apply the same update only if the sum is the same everywhere */
    memcpy(g_root, m->params.grads, P * sizeof(float));
    mtl_dist_bcast_floats(&D, g_root, P, 0);
    CHECK(memcmp(g_root, m->params.grads, P * sizeof(float)) == 0,
          "%s: the allreduced gradient differs from rank 0's", gc->name);

    free(init);
    free(g1);
    free(g_root);
    mtl_batch_free(&full);
    mtl_batch_free(&mine);
    mtl_model_free(m);
    verdict();
}

static void test_grad_mmoe(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"mmoe", K_MMOE, 0, 0, GB, 0});
}

static void test_grad_ple(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"ple (task 1 regression)", K_PLE, 1, 0, GB, 0});
}

static void test_grad_esmm(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"esmm", K_ESMM, 0, 0, GB, 0});
}

static void test_grad_others(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"shared_bottom", K_SHARED_BOTTOM, 0, 0, GB, 0});
    run_grad_case(&(grad_case){"cgc", K_CGC, 0, 0, GB, 0});
    run_grad_case(&(grad_case){"aitm", K_AITM, 0, 0, GB, 0});
}

/* Sparse tables: each rank's touched rows, gathered and summed in rank
 * order, give the 1-rank gradient, and the same union on every rank. */
static void test_grad_sparse(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"mmoe sparse tables", K_MMOE, 0, 0, GB, 1});
    run_grad_case(&(grad_case){"esmm sparse tables", K_ESMM, 0, 0, GB, 1});
    run_grad_case(&(grad_case){"sparse, last rank empty", K_MMOE, 0, 0, 0, 1});
}

/* Row-sharded tables: each rank holds rows r, r + P, ...; the rows its batch
 * fetches from their owners are the 1-rank model's rows, and the gradient
 * rows the owners sum are the 1-rank gradient of the whole batch. */
static void test_grad_sharded(void **state) {
    (void)state;
    grad_case gc = {"mmoe row-sharded", K_MMOE, 0, 0, GB, 1};
    mtl_config cfg, ref_cfg;
    mtl_data_shape shape;
    mtl_error err = {{0}};
    case_config(&ref_cfg, &gc);
    case_shape(&shape, &gc);
    cfg = ref_cfg;
    cfg.embedding_sharding = MTL_SHARDING_ROW;
    cfg.rank = D.rank;
    cfg.world = D.world;
    mtl_model *ref = NULL, *m = NULL;
    mtl_batch full, mine;
    memset(&full, 0, sizeof full);
    memset(&mine, 0, sizeof mine);
    mtl_embeddings E;
    memset(&E, 0, sizeof E);
    int rc = mtl_model_create(&ref, &ref_cfg, &shape, GB, &err);
    if (rc == MTL_OK) rc = mtl_model_create(&m, &cfg, &shape, GB, &err);
    if (rc == MTL_OK) rc = mtl_batch_alloc(&full, GB, S_, D_, T_, &err);
    if (rc == MTL_OK) rc = mtl_batch_alloc(&mine, GB, S_, D_, T_, &err);
    if (rc == MTL_OK) rc = mtl_embeddings_init(&E, m, GB, D.world, &err);
    require(rc == MTL_OK, "models, batches and tables", &err);
    CHECK(E.n_sharded == S_, "%d sharded tables", E.n_sharded);

    /* the 1-rank reference over the whole batch */
    make_global_batch(&full, GB, 0);
    double count[T_], loss1[T_] = {0}, loss[T_] = {0};
    mtl_model_count_labels(ref, &full, count);
    step_gradient(ref, &full, count, 1, loss1);

    int64_t begin, cnt;
    mtl_shard_range(GB, D.rank, D.world, &begin, &cnt);
    copy_rows(&mine, &full, begin, cnt);
    require(mtl_embeddings_prepare(&E, &mine, &D, &err) == MTL_OK, "prepare", &err);
    for (int k = 0; k < E.n_tables; k++) { /* the fetched rows are the table's rows */
        const mtl_sparse_table *st = &E.tables[k];
        const float *table = mtl_params_value(&ref->params, ref->emb[st->field]);
        for (int i = 0; i < st->n; i++)
            CHECK(memcmp(st->fetched + (size_t)i * st->dim, table + (size_t)st->ids[i] * st->dim,
                         (size_t)st->dim * sizeof(float)) == 0,
                  "table %d: fetched row of id %d differs", k, st->ids[i]);
    }
    step_gradient(m, &mine, count, D.rank == 0, loss);
    mtl_dist_sum_floats(&D, m->params.grads, m->params.block_size);
    require(mtl_embeddings_exchange(&E, &D, &err) == MTL_OK, "exchange", &err);

    double diff2 = 0, ref2 = 0;
    for (int i = 0; i < m->params.n; i++) {
        const mtl_tensor *t = &m->params.tensors[i];
        const mtl_tensor *r = &ref->params.tensors[mtl_params_find(&ref->params, t->name)];
        const float *want = ref->params.grads + r->offset;
        if (t->shard_world > 1) continue; /* below */
        for (size_t j = 0; j < t->size; j++) {
            double dd = (double)m->params.grads[t->offset + j] - want[j];
            diff2 += dd * dd;
            ref2 += (double)want[j] * want[j];
        }
    }
    for (int k = 0; k < E.n_tables; k++) {
        const mtl_sparse_table *st = &E.tables[k];
        const float *want = mtl_params_grad(&ref->params, ref->emb[st->field]);
        for (int64_t row = D.rank; row < st->rows; row += D.world) { /* the rows this rank owns */
            int32_t local = (int32_t)(row / D.world), at = -1;
            for (int i = 0; i < st->own_n; i++)
                if (st->own_ids[i] == local) at = i;
            for (int j = 0; j < st->dim; j++) {
                double got = at >= 0 ? st->own_grad[(size_t)at * st->dim + j] : 0.0;
                double dd = got - want[row * st->dim + j];
                diff2 += dd * dd;
                ref2 += (double)want[row * st->dim + j] * want[row * st->dim + j];
            }
        }
    }
    mtl_dist_sum_doubles(&D, &diff2, 1);
    mtl_dist_sum_doubles(&D, &ref2, 1);
    double rel = sqrt(diff2 / ref2);
    if (D.rank == 0)
        printf("  %-28s batch %2d over %d ranks: |g_N - g_1| / |g_1| = %.3g\n", gc.name, GB,
               D.world, rel);
    CHECK(ref2 > 0 && rel < 1e-5, "relative gradient difference %.3g", rel);

    mtl_embeddings_free(&E);
    mtl_batch_free(&full);
    mtl_batch_free(&mine);
    mtl_model_free(ref);
    mtl_model_free(m);
    verdict();
}

/* Kendall et al. weighting: the regularizer's constant is added by rank 0 only */
static void test_grad_uncertainty(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"mmoe uncertainty", K_MMOE, 1, 1, GB, 0});
}

/* A rank with no rows of the batch (what the trainer does when a rank's shard
 * runs out): it still joins the sums and contributes nothing but zeros. */
static void test_grad_empty_rank(void **state) {
    (void)state;
    run_grad_case(&(grad_case){"mmoe, last rank empty", K_MMOE, 0, 0, 0, 0});
    run_grad_case(&(grad_case){"uncertainty, last rank empty", K_MMOE, 1, 1, 0, 0});
}

/* ---- collectives ---- */

static void test_sums(void **state) {
    (void)state;
    enum { N = 1001 };
    float f[N];
    double dbl[3];
    for (int i = 0; i < N; i++) f[i] = (float)(D.rank + 1) * (float)(i % 7);
    for (int i = 0; i < 3; i++) dbl[i] = (D.rank + 1) * 0.5 + i;
    mtl_dist_sum_floats(&D, f, N);
    int w = D.world;
    float tri = (float)(w * (w + 1) / 2);
    for (int i = 0; i < N; i++)
        CHECK(f[i] == tri * (float)(i % 7), "sum_floats[%d] = %g", i, (double)f[i]);

    mtl_dist_pending p;
    mtl_dist_sum_doubles_start(&D, dbl, 3, &p);
    double busy = 0;
    for (int i = 0; i < 1000; i++) busy += sqrt((double)i); /* overlap some work */
    mtl_dist_wait(&D, &p);
    CHECK(busy > 0, "busy");
    for (int i = 0; i < 3; i++)
        CHECK(dbl[i] == 0.5 * tri + (double)(w * i), "sum_doubles_start[%d] = %g", i, dbl[i]);
    mtl_dist_wait(&D, &p); /* waiting twice is harmless */

    double one = D.rank;
    mtl_dist_sum_doubles(&D, &one, 1);
    CHECK(one == (double)(w * (w - 1) / 2), "sum_doubles = %g", one);
    verdict();
}

static void test_max_int(void **state) {
    (void)state;
    int w = D.world;
    int got = mtl_dist_max_int(&D, D.rank * 7 - 3);
    CHECK(got == (w - 1) * 7 - 3, "max of rank*7-3 = %d", got);
    got = mtl_dist_max_int(&D, -D.rank - 1);
    CHECK(got == -1, "max of -rank-1 = %d", got);
    got = mtl_dist_max_int(&D, D.rank == w - 1); /* a flag raised by the last rank only */
    CHECK(got == 1, "flag of the last rank = %d", got);
    got = mtl_dist_max_int(&D, 0);
    CHECK(got == 0, "max of zeros = %d", got);
    /* the trainer's "first failing rank" encoding: world - rank of the lowest bad rank */
    int bad = D.rank >= 1;
    got = mtl_dist_max_int(&D, bad ? w - D.rank : 0);
    CHECK(w - got == 1, "first bad rank = %d", w - got);
    verdict();
}

static void test_bcast(void **state) {
    (void)state;
    int root = D.world - 1;
    float f[5];
    for (int i = 0; i < 5; i++) f[i] = D.rank == root ? 1.5f * (float)i : -1.0f;
    mtl_dist_bcast_floats(&D, f, 5, root);
    for (int i = 0; i < 5; i++)
        CHECK(f[i] == 1.5f * (float)i, "bcast_floats[%d] = %g", i, (double)f[i]);
    struct {
        int64_t a;
        char s[13];
    } msg;
    memset(&msg, 0, sizeof msg);
    if (D.rank == 0) {
        msg.a = -1234567890123LL;
        strcpy(msg.s, "from rank 0");
    }
    mtl_dist_bcast_bytes(&D, &msg, sizeof msg, 0);
    CHECK(msg.a == -1234567890123LL && strcmp(msg.s, "from rank 0") == 0, "bcast_bytes: %lld %s",
          (long long)msg.a, msg.s);
    verdict();
}

/* rank r sends count(r) floats (rank 1 sends none): rank 0 gets them in rank order */
static int64_t gather_count(int r) {
    return r == 1 ? 0 : 2 * r + 3;
}

static void test_gather_uneven(void **state) {
    (void)state;
    int64_t total = 0;
    for (int r = 0; r < D.world; r++) total += gather_count(r);
    int64_t n = gather_count(D.rank);
    float send[64], recv[256];
    for (int64_t i = 0; i < n; i++) send[i] = (float)(100 * D.rank + i);
    for (int i = 0; i < 256; i++) recv[i] = -7.0f;
    mtl_dist_gather_floats(&D, send, n, recv, total);
    if (D.rank == 0) {
        int64_t k = 0;
        for (int r = 0; r < D.world; r++)
            for (int64_t i = 0; i < gather_count(r); i++, k++)
                CHECK(recv[k] == (float)(100 * r + i), "recv[%lld] = %g, want %d", (long long)k,
                      (double)recv[k], (int)(100 * r + i));
        CHECK(recv[total] == -7.0f, "wrote past the gathered arrays");
    }
    /* a second gather where every rank sends different sizes again (reuse) */
    n = D.rank + 1;
    for (int64_t i = 0; i < n; i++) send[i] = (float)(D.rank * 10 + i);
    total = (int64_t)D.world * (D.world + 1) / 2;
    mtl_dist_gather_floats(&D, send, n, recv, total);
    if (D.rank == 0) {
        int64_t k = 0;
        for (int r = 0; r < D.world; r++)
            for (int64_t i = 0; i <= r; i++, k++)
                CHECK(recv[k] == (float)(r * 10 + i), "second gather: recv[%lld] = %g",
                      (long long)k, (double)recv[k]);
    }
    verdict();
}

/* ---- sharding ---- */

static void test_shard_range(void **state) {
    (void)state;
    for (int64_t n = 0; n <= 60; n++)
        for (int w = 1; w <= 8; w++) {
            int64_t next = 0, lo = INT64_MAX, hi = 0;
            for (int r = 0; r < w; r++) {
                int64_t b, c;
                mtl_shard_range(n, r, w, &b, &c);
                CHECK(b == next, "n %lld world %d rank %d: begin %lld, want %lld", (long long)n, w,
                      r, (long long)b, (long long)next);
                CHECK(c == n / w + (r < n % w), "n %lld world %d rank %d: count %lld", (long long)n,
                      w, r, (long long)c);
                next = b + c;
                lo = c < lo ? c : lo;
                hi = c > hi ? c : hi;
            }
            CHECK(next == n, "n %lld world %d: shards cover %lld rows", (long long)n, w,
                  (long long)next);
            CHECK(hi - lo <= 1, "n %lld world %d: shard sizes %lld..%lld", (long long)n, w,
                  (long long)lo, (long long)hi);
        }
    verdict();
}

enum { NROWS = 31, FS = 2, FD = 2, FT = 2 };
static const int64_t FVOCAB[FS] = {4, 9};

static float row_label(int64_t i, int t) {
    if (t == 1 && i % 5 == 0) return NAN;
    return (float)((i + t) % 2);
}

static void test_dataset_shards(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/mpi_dist_np%d_shards.h5", MTL_TEST_TMP, D.world);
    mtl_error err = {{0}};
    int rc = MTL_OK;
    if (D.rank == 0) {
        const char *sn[FS] = {"s0", "s1"}, *dn[FD] = {"d0", "d1"}, *tn[FT] = {"t0", "t1"};
        int32_t sparse[NROWS * FS];
        float dense[NROWS * FD], labels[NROWS * FT], weights[NROWS];
        for (int64_t i = 0; i < NROWS; i++) {
            for (int s = 0; s < FS; s++) sparse[i * FS + s] = (int32_t)((i * (s + 3)) % FVOCAB[s]);
            for (int j = 0; j < FD; j++) dense[i * FD + j] = (float)i + 0.25f * (float)j;
            for (int t = 0; t < FT; t++) labels[i * FT + t] = row_label(i, t);
            weights[i] = 1.0f + (float)i / 64.0f;
        }
        mtl_writer *w = NULL;
        rc = mtl_writer_open(&w, path, FS, sn, FVOCAB, FD, dn, FT, tn, 1, &err);
        const int64_t pieces[3][2] = {{0, 10}, {10, 1}, {11, NROWS - 11}}; /* begin, count */
        for (int k = 0; k < 3 && rc == MTL_OK; k++) {
            int64_t b = pieces[k][0];
            rc = mtl_writer_append(w, sparse + b * FS, dense + b * FD, labels + b * FT, weights + b,
                                   pieces[k][1], &err);
        }
        if (rc == MTL_OK)
            rc = mtl_writer_close(w, NULL, &err);
        else
            mtl_writer_abort(w);
    }
    require(rc == MTL_OK, "rank 0 writing the file", &err); /* also a barrier */

    mtl_dataset ds;
    memset(&ds, 0, sizeof ds);
    rc = mtl_dataset_load(&ds, path, D.rank, D.world, &err);
    require(rc == MTL_OK, "mtl_dataset_load", &err);
    int64_t begin, count;
    mtl_shard_range(NROWS, D.rank, D.world, &begin, &count);
    CHECK(ds.n_total == NROWS, "n_total %lld", (long long)ds.n_total);
    CHECK(ds.row_begin == begin && ds.n_rows == count, "shard [%lld, +%lld), want [%lld, +%lld)",
          (long long)ds.row_begin, (long long)ds.n_rows, (long long)begin, (long long)count);
    CHECK(ds.S == FS && ds.D == FD && ds.T == FT, "shape %d %d %d", ds.S, ds.D, ds.T);
    CHECK(ds.weights != NULL, "weights not loaded");
    int64_t rows = ds.n_rows <= count ? ds.n_rows : count;
    for (int64_t k = 0; k < rows; k++) {
        int64_t i = begin + k; /* global row */
        for (int s = 0; s < FS; s++)
            CHECK(ds.sparse[k * FS + s] == (int32_t)((i * (s + 3)) % FVOCAB[s]),
                  "row %lld sparse %d = %d", (long long)i, s, ds.sparse[k * FS + s]);
        for (int j = 0; j < FD; j++)
            CHECK(ds.dense[k * FD + j] == (float)i + 0.25f * (float)j, "row %lld dense %d = %g",
                  (long long)i, j, (double)ds.dense[k * FD + j]);
        for (int t = 0; t < FT; t++) {
            float y = ds.labels[k * FT + t], want = row_label(i, t);
            CHECK(isnan(want) ? isnan(y) : y == want, "row %lld label %d = %g", (long long)i, t,
                  (double)y);
        }
        if (ds.weights)
            CHECK(ds.weights[k] == 1.0f + (float)i / 64.0f, "row %lld weight %g", (long long)i,
                  (double)ds.weights[k]);
    }
    /* sizes differ by at most one over the ranks */
    int hi = mtl_dist_max_int(&D, (int)ds.n_rows), lo = -mtl_dist_max_int(&D, -(int)ds.n_rows);
    CHECK(hi - lo <= 1, "shard sizes %d..%d", lo, hi);
    /* the union, in rank order, is every row once: gather the rows' dense[0] (= row index) */
    float ids[NROWS], all[NROWS + 1];
    int64_t mine = ds.n_rows <= NROWS ? ds.n_rows : NROWS;
    for (int64_t k = 0; k < mine; k++) ids[k] = ds.dense[k * FD];
    double total = (double)mine;
    mtl_dist_sum_doubles(&D, &total, 1);
    CHECK(total == NROWS, "shards hold %g rows in all", total);
    if (total == NROWS) {
        mtl_dist_gather_floats(&D, ids, mine, all, NROWS);
        if (D.rank == 0)
            for (int i = 0; i < NROWS; i++)
                CHECK(all[i] == (float)i, "row %d of the union is %g", i, (double)all[i]);
    }
    mtl_dataset_free(&ds);
    mtl_dist_barrier(&D);
    if (D.rank == 0) unlink(path);
    verdict();
}

int main(int argc, char **argv) {
    if (mtl_dist_init(&argc, &argv, &D) != 0) return 1;
    /* one report: the other ranks' failures go to stderr */
    if (D.rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums),
        cmocka_unit_test(test_max_int),
        cmocka_unit_test(test_bcast),
        cmocka_unit_test(test_gather_uneven),
        cmocka_unit_test(test_shard_range),
        cmocka_unit_test(test_dataset_shards),
        cmocka_unit_test(test_grad_mmoe),
        cmocka_unit_test(test_grad_ple),
        cmocka_unit_test(test_grad_esmm),
        cmocka_unit_test(test_grad_others),
        cmocka_unit_test(test_grad_uncertainty),
        cmocka_unit_test(test_grad_sparse),
        cmocka_unit_test(test_grad_sharded),
        cmocka_unit_test(test_grad_empty_rank),
    };
    int failed = cmocka_run_group_tests_name("mpi_dist", tests, NULL, NULL);
    mtl_dist_finalize();
    return failed != 0;
}
