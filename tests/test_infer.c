/* Tests for src/infer.c (libmtl_infer): for every model, scores from a
 * checkpoint opened by the library equal the engine's own forward of the
 * model that wrote it, with the data's column names when stored; 4 threads scoring the same rows on
 * one opened model get identical outputs; out-of-vocabulary ids, non-finite dense values, a scratch
 * of another model and unreadable checkpoints are clear errors. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "mtl/checkpoint.h"
#include "mtl/config.h"
#include "mtl/infer.h"
#include "mtl/train.h"

#define ROWS 600
#define S_FIELDS 3
#define D_FEATS 2

static const int64_t vocab[S_FIELDS] = {7, 3, 11};
static char *sparse_names[S_FIELDS] = {"color", "shape", "city"};
static char *dense_names[D_FEATS] = {"price", "age"};
static int with_names = 1; /* checkpoints written before names were stored have none */

static void tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/test_infer_%s", MTL_TEST_TMP, name);
}

/* Random rows: ids in range, dense in [0, 1). */
static void make_rows(int64_t *sparse, float *dense, int n, uint64_t seed) {
    mtl_rng rng;
    mtl_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < S_FIELDS; s++)
            sparse[i * S_FIELDS + s] = (int64_t)mtl_rng_below(&rng, (uint64_t)vocab[s]);
        for (int d = 0; d < D_FEATS; d++) dense[i * D_FEATS + d] = mtl_rng_uniform(&rng);
    }
}

/* A model of kind `model` with random parameters (so every unit matters),
 * saved to `path`; preds receives the engine's forward of the rows. */
static void save_model(const char *model, int batch_norm, const char *path, const int64_t *sparse,
                       const float *dense, float *preds, int *P) {
    mtl_config cfg;
    mtl_config_defaults(&cfg);
    mtl_error err = {{0}};
    assert_int_equal(mtl_config_set(&cfg, "model", model, "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "ctr_task", "click", "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "ctcvr_task", "conversion", "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "expert_units", "8,4", "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "gate_units", "4", "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "num_experts_specific", "2", "test", &err), MTL_OK);
    assert_int_equal(mtl_config_set(&cfg, "num_experts_shared", "1", "test", &err), MTL_OK);
    cfg.batch_norm = batch_norm;
    mtl_ckpt_state *st = calloc(1, sizeof *st);
    assert_non_null(st);
    st->shape.S = S_FIELDS;
    st->shape.D = D_FEATS;
    st->shape.T = 2;
    for (int s = 0; s < S_FIELDS; s++) st->shape.vocab_sizes[s] = vocab[s];
    snprintf(st->shape.task_names[0], sizeof st->shape.task_names[0], "click");
    snprintf(st->shape.task_names[1], sizeof st->shape.task_names[1], "conversion");
    mtl_config_model_text(&cfg, st->config, sizeof st->config);
    if (with_names) {
        st->sparse_names = sparse_names;
        st->dense_names = dense_names;
    }
    mtl_model *m = NULL;
    if (mtl_model_create(&m, &cfg, &st->shape, ROWS, &err) != MTL_OK) {
        print_error("mtl_model_create: %s\n", err.msg);
        fail();
    }
    mtl_rng rng;
    mtl_rng_seed(&rng, 42);
    for (size_t i = 0; i < m->params.size; i++) m->params.values[i] = mtl_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < m->buffers.size; i++)
        m->buffers.values[i] = mtl_rng_uniform(&rng) + 0.5f;
    mtl_batch b = {0};
    assert_int_equal(mtl_batch_alloc(&b, ROWS, S_FIELDS, D_FEATS, 2, &err), MTL_OK);
    b.n = ROWS;
    for (int i = 0; i < ROWS * S_FIELDS; i++) b.sparse[i] = (int32_t)sparse[i];
    memcpy(b.dense, dense, sizeof(float) * ROWS * D_FEATS);
    mtl_model_forward(m, &b, 0);
    *P = m->P;
    memcpy(preds, mtl_model_predictions(m), sizeof(float) * (size_t)(ROWS * m->P));
    if (mtl_checkpoint_save(path, m, NULL, st, &err) != MTL_OK) {
        print_error("mtl_checkpoint_save: %s\n", err.msg);
        fail();
    }
    mtl_batch_free(&b);
    mtl_model_free(m);
    free(st);
}

static void check_model(const char *model, int batch_norm) {
    char path[1024];
    tmp_path(path, sizeof path, "model.h5");
    static int64_t sparse[ROWS * S_FIELDS];
    static float dense[ROWS * D_FEATS], want[ROWS * 3], got[ROWS * 3];
    make_rows(sparse, dense, ROWS, 7);
    int P = 0;
    save_model(model, batch_norm, path, sparse, dense, want, &P);

    mtl_error err = {{0}};
    mtl_infer *inf = NULL;
    if (mtl_infer_open(&inf, path, &err) != MTL_OK) {
        print_error("mtl_infer_open: %s\n", err.msg);
        fail();
    }
    assert_int_equal(mtl_infer_num_sparse(inf), S_FIELDS);
    assert_int_equal(mtl_infer_num_dense(inf), D_FEATS);
    assert_int_equal(mtl_infer_num_outputs(inf), P);
    for (int s = 0; s < S_FIELDS; s++) assert_true(mtl_infer_vocab_size(inf, s) == vocab[s]);
    assert_true(mtl_infer_vocab_size(inf, S_FIELDS) == -1);
    for (int s = 0; s < S_FIELDS; s++)
        assert_string_equal(mtl_infer_sparse_name(inf, s), sparse_names[s]);
    for (int d = 0; d < D_FEATS; d++)
        assert_string_equal(mtl_infer_dense_name(inf, d), dense_names[d]);
    assert_null(mtl_infer_sparse_name(inf, S_FIELDS));
    assert_null(mtl_infer_dense_name(inf, -1));
    assert_string_equal(mtl_infer_output_name(inf, 0), P == 3 ? "pctr" : "click");
    assert_null(mtl_infer_output_name(inf, P));
    /* per-call scratch, all rows at once (several pieces) */
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, got, &err), MTL_OK);
    double maxdiff = 0;
    for (int i = 0; i < ROWS * P; i++) maxdiff = fmax(maxdiff, fabs((double)got[i] - want[i]));
    if (maxdiff > 1e-6) {
        print_error("%s: max abs diff %g from the engine's forward\n", model, maxdiff);
        fail();
    }
    /* a caller's scratch, row by row: the same values */
    mtl_infer_scratch *sc = NULL;
    assert_int_equal(mtl_infer_scratch_new(inf, &sc, &err), MTL_OK);
    for (int i = 0; i < ROWS; i += 37) {
        float one[3];
        assert_int_equal(
            mtl_infer_score(inf, sc, 1, sparse + i * S_FIELDS, dense + i * D_FEATS, one, &err),
            MTL_OK);
        for (int p = 0; p < P; p++) assert_true(fabs((double)one[p] - got[i * P + p]) <= 1e-6);
    }
    mtl_infer_scratch_free(sc);
    mtl_infer_close(inf);
}

static void test_shared_bottom(void **state) {
    (void)state;
    check_model("shared_bottom", 1);
}
static void test_esmm(void **state) {
    (void)state;
    check_model("esmm", 0);
}
static void test_mmoe(void **state) {
    (void)state;
    check_model("mmoe", 0);
}
static void test_cgc(void **state) {
    (void)state;
    check_model("cgc", 1);
}
static void test_ple(void **state) {
    (void)state;
    check_model("ple", 1);
}
static void test_aitm(void **state) {
    (void)state;
    check_model("aitm", 1);
}

/* ---- threads ---- */

#define THREADS 4
#define REPEATS 5

typedef struct {
    const mtl_infer *inf;
    const int64_t *sparse;
    const float *dense;
    float *out;
    int per_call_scratch;
    int rc;
} job;

static void *score_thread(void *arg) {
    job *j = arg;
    mtl_error err = {{0}};
    mtl_infer_scratch *sc = NULL;
    j->rc = j->per_call_scratch ? MTL_OK : mtl_infer_scratch_new(j->inf, &sc, &err);
    for (int r = 0; r < REPEATS && j->rc == MTL_OK; r++)
        for (int i = 0; i < ROWS && j->rc == MTL_OK; i += 50) /* batches of 50 */
            j->rc = mtl_infer_score(j->inf, sc, 50, j->sparse + i * S_FIELDS,
                                    j->dense + i * D_FEATS, j->out + i * 2, &err);
    mtl_infer_scratch_free(sc);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    char path[1024];
    tmp_path(path, sizeof path, "threads.h5");
    static int64_t sparse[ROWS * S_FIELDS];
    static float dense[ROWS * D_FEATS], want[ROWS * 3], single[ROWS * 2], out[THREADS][ROWS * 2];
    make_rows(sparse, dense, ROWS, 11);
    int P = 0;
    save_model("ple", 1, path, sparse, dense, want, &P);
    mtl_error err = {{0}};
    mtl_infer *inf = NULL;
    assert_int_equal(mtl_infer_open(&inf, path, &err), MTL_OK);
    /* one thread, the same pieces of 50 rows as the threads (a product's
     * last bit may depend on how many rows it has) */
    for (int i = 0; i < ROWS; i += 50)
        assert_int_equal(mtl_infer_score(inf, NULL, 50, sparse + i * S_FIELDS, dense + i * D_FEATS,
                                         single + i * 2, &err),
                         MTL_OK);
    pthread_t th[THREADS];
    job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (job){inf, sparse, dense, out[t], t % 2, MTL_ERR};
        assert_int_equal(pthread_create(&th[t], NULL, score_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].rc, MTL_OK);
        assert_memory_equal(out[t], single, sizeof single);
    }
    mtl_infer_close(inf);
}

/* ---- errors ---- */

static void test_bad_rows(void **state) {
    (void)state;
    char path[1024], other_path[1024];
    tmp_path(path, sizeof path, "bad.h5");
    tmp_path(other_path, sizeof other_path, "other.h5");
    static int64_t sparse[ROWS * S_FIELDS];
    static float dense[ROWS * D_FEATS], want[ROWS * 3], out[ROWS * 3];
    make_rows(sparse, dense, ROWS, 3);
    int P = 0;
    save_model("mmoe", 0, path, sparse, dense, want, &P);
    with_names = 0;
    save_model("esmm", 0, other_path, sparse, dense, want, &P);
    with_names = 1;
    mtl_error err = {{0}};
    mtl_infer *inf = NULL, *other = NULL;
    assert_int_equal(mtl_infer_open(&inf, path, &err), MTL_OK);
    assert_int_equal(mtl_infer_open(&other, other_path, &err), MTL_OK);
    assert_null(mtl_infer_sparse_name(other, 0)); /* a checkpoint without names */
    assert_null(mtl_infer_dense_name(other, 0));

    sparse[300 * S_FIELDS + 2] = vocab[2]; /* one past the vocabulary, in the second piece */
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, out, &err), MTL_ERR);
    assert_msg(&err, "row 300: sparse field 2: id 11 is outside its vocabulary (0..10");
    sparse[300 * S_FIELDS + 2] = -1;
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, out, &err), MTL_ERR);
    assert_msg(&err, "row 300: sparse field 2: id -1");
    sparse[300 * S_FIELDS + 2] = 0;

    dense[5 * D_FEATS + 1] = NAN;
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, out, &err), MTL_ERR);
    assert_msg(&err, "row 5: dense feature 1: value is not finite");
    dense[5 * D_FEATS + 1] = INFINITY;
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, out, &err), MTL_ERR);
    assert_msg(&err, "row 5: dense feature 1");
    dense[5 * D_FEATS + 1] = 0.5f;
    assert_int_equal(mtl_infer_score(inf, NULL, ROWS, sparse, dense, out, &err), MTL_OK);

    mtl_infer_scratch *sc = NULL;
    assert_int_equal(mtl_infer_scratch_new(other, &sc, &err), MTL_OK);
    assert_int_equal(mtl_infer_score(inf, sc, 1, sparse, dense, out, &err), MTL_ERR);
    assert_msg(&err, "another model");
    assert_int_equal(mtl_infer_score(inf, NULL, 1, NULL, dense, out, &err), MTL_ERR);
    assert_msg(&err, "missing");
    assert_int_equal(mtl_infer_score(inf, NULL, 0, NULL, NULL, NULL, &err), MTL_OK);
    mtl_infer_scratch_free(sc);
    mtl_infer_close(other);
    mtl_infer_close(inf);
}

static void test_open_errors(void **state) {
    (void)state;
    mtl_error err = {{0}};
    mtl_infer *inf = (mtl_infer *)1;
    assert_int_equal(mtl_infer_open(&inf, "/nonexistent/ck.h5", &err), MTL_ERR);
    assert_null(inf);
    assert_msg(&err, "/nonexistent/ck.h5");
    char path[1024];
    tmp_path(path, sizeof path, "not_h5.h5");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a checkpoint\n", f);
    fclose(f);
    assert_int_equal(mtl_infer_open(&inf, path, &err), MTL_ERR);
    assert_msg(&err, "not an HDF5 file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_bottom), cmocka_unit_test(test_esmm),
        cmocka_unit_test(test_mmoe),          cmocka_unit_test(test_cgc),
        cmocka_unit_test(test_ple),           cmocka_unit_test(test_aitm),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
