/* Tests for src/checkpoint.c: a bit-identical round trip of parameters,
 * optimizer state, batch-norm buffers, the early-stopping copy and every
 * state attribute; rejection (with the path in the message) of truncated,
 * non-HDF5, missing, directory and non-checkpoint files, and of checkpoints
 * of another model (missing, differently sized and same-size-but-misshapen
 * tensors); the atomic write (no temporary left, failures leave nothing);
 * and the h5py view of checkpoints and prediction files. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtl/checkpoint.h"
#include "test_models.h"

#define DIRNAME "test_checkpoint.d"

/* ---- helpers ---- */

static char *tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/" DIRNAME "/%s", MTL_TEST_TMP, name);
    return buf;
}

/* Run a python snippet with arguments; the snippet exits non-zero (assert)
 * on failure. */
static void run_python(const char *script, const char *args) {
    char path[1024], cmd[4096];
    tmp_path(path, sizeof path, "check.py");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(script, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, PY " '%s' %s", path, args);
    if (system(cmd) != 0) {
        print_error("python check failed: %s\n", cmd);
        fail();
    }
}

/* No "<name>.tmp..." left next to a file written atomically. */
static void assert_no_tmp(const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/" DIRNAME, MTL_TEST_TMP);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t n = strlen(name);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, name, n) == 0 && strstr(e->d_name + n, ".tmp")) {
            print_error("temporary file %s left behind\n", e->d_name);
            closedir(d);
            fail();
        }
    closedir(d);
}

/* Start clean: temporaries a crashed earlier run may have left. */
static void remove_stale_tmp(void) {
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/" DIRNAME, MTL_TEST_TMP);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

static void copy_prefix(const char *from, const char *to, long bytes) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    long left = bytes;
    while (left > 0) {
        size_t want = left < (long)sizeof buf ? (size_t)left : sizeof buf;
        size_t got = fread(buf, 1, want, in);
        assert_true(got > 0);
        assert_true(fwrite(buf, 1, got, out) == got);
        left -= (long)got;
    }
    fclose(in);
    fclose(out);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A small MMoE with batch norm (buffers), uncertainty weighting (a vector
 * tensor) and a regression task. */
static void small_config(mtl_config *cfg) {
    mtl_config_defaults(cfg);
    cfg->model = model_of(K_MMOE);
    cfg->embedding_dim = 3;
    cfg->expert_units.n = 1;
    cfg->expert_units.units[0] = 6;
    cfg->tower_units = every_task((mtl_units){1, {4}});
    cfg->num_experts = 3;
    cfg->batch_norm = 1;
    cfg->loss_uncertainty = 1;
    cfg->seed = 5;
}

static void small_shape(mtl_data_shape *sh) {
    memset(sh, 0, sizeof *sh);
    sh->S = 3;
    sh->vocab_sizes[0] = 5;
    sh->vocab_sizes[1] = 6;
    sh->vocab_sizes[2] = 70000000000LL; /* needs 64 bits; the table is not allocated here */
    sh->D = 4;
    sh->T = 2;
    strcpy(sh->task_names[0], "income");
    strcpy(sh->task_names[1], "marital stat\xc3\xbcs"); /* UTF-8 */
    sh->task_regression[1] = 1;
}

static mtl_model *new_model(const mtl_config *cfg, const mtl_data_shape *sh) {
    mtl_model *m = NULL;
    mtl_error err = {{0}};
    if (mtl_model_create(&m, cfg, sh, 8, &err) != MTL_OK) {
        print_error("mtl_model_create: %s\n", err.msg);
        fail();
    }
    return m;
}

/* the model's shape, with a vocabulary small enough to allocate */
static void model_shape(mtl_data_shape *sh) {
    small_shape(sh);
    sh->vocab_sizes[2] = 7;
}

static void fill_distinct(mtl_model *m, float *best) {
    for (size_t i = 0; i < m->params.size; i++) {
        m->params.values[i] = (float)i * 1.0e-3f - 0.5f + 1.0e-7f;
        m->params.m[i] = -(float)i * 3.3e-4f;
        m->params.v[i] = (float)i * 7.1e-5f + 1.0e-9f;
        if (best) best[i] = 2.0f * m->params.values[i] + 0.25f;
    }
    for (size_t i = 0; i < m->buffers.size; i++) m->buffers.values[i] = 100.0f + (float)i / 3.0f;
}

static void fill_state(mtl_ckpt_state *st, const mtl_data_shape *sh) {
    memset(st, 0, sizeof *st);
    st->step = 123456789012LL;
    st->epoch = 7;
    st->batch_in_epoch = 42;
    st->world_size = 3;
    st->seed = 0xfedcba9876543210ULL;
    st->dropout_rng[0] = 1;
    st->dropout_rng[1] = 0xffffffffffffffffULL;
    st->dropout_rng[2] = 0x8000000000000000ULL;
    st->dropout_rng[3] = 0x0123456789abcdefULL;
    st->best_metric = 0.1234567890123456789;
    st->best_epoch = 5;
    st->bad_epochs = 2;
    for (int t = 0; t < sh->T; t++) {
        st->train_loss_sum[t] = 1234.5678 * (t + 1) + 1e-9;
        st->train_count[t] = 1000.0 + t;
    }
    snprintf(st->config, sizeof st->config,
             "model = mmoe\nembedding_dim = 3\nexpert_units = 6\n# a comment = with '=' \"x\"\n");
    st->shape = *sh;
}

static void save_ok(const char *path, const mtl_model *m, const float *best,
                    const mtl_ckpt_state *st) {
    mtl_error err = {{0}};
    if (mtl_checkpoint_save(path, m, best, st, &err) != MTL_OK) {
        print_error("mtl_checkpoint_save: %s\n", err.msg);
        fail();
    }
}

/* Write the reference checkpoint (with /best) to path; returns the model. */
static mtl_model *write_reference(const char *path, float **best_out, mtl_ckpt_state *st) {
    mtl_config cfg;
    mtl_data_shape sh;
    small_config(&cfg);
    model_shape(&sh);
    mtl_model *m = new_model(&cfg, &sh);
    float *best = malloc(m->params.size * sizeof *best);
    assert_non_null(best);
    fill_distinct(m, best);
    mtl_data_shape st_shape;
    small_shape(&st_shape);
    fill_state(st, &st_shape);
    save_ok(path, m, best, st);
    if (best_out)
        *best_out = best;
    else
        free(best);
    return m;
}

/* ---- tests ---- */

static void test_roundtrip(void **state) {
    (void)state;
    char path[1024];
    tmp_path(path, sizeof path, "roundtrip.h5");
    unlink(path);
    float *best = NULL;
    mtl_ckpt_state st;
    mtl_model *m = write_reference(path, &best, &st);
    assert_true(file_exists(path));
    assert_no_tmp("roundtrip.h5");

    mtl_error err = {{0}};
    mtl_ckpt_state got;
    memset(&got, 0xab, sizeof got);
    if (mtl_checkpoint_load_state(path, &got, &err) != MTL_OK) {
        print_error("load_state: %s\n", err.msg);
        fail();
    }
    assert_true(got.step == st.step);
    assert_true(got.epoch == st.epoch);
    assert_true(got.batch_in_epoch == st.batch_in_epoch);
    assert_int_equal(got.world_size, st.world_size);
    assert_true(got.seed == st.seed);
    assert_memory_equal(got.dropout_rng, st.dropout_rng, sizeof st.dropout_rng);
    assert_memory_equal(&got.best_metric, &st.best_metric, sizeof(double));
    assert_true(got.best_epoch == st.best_epoch);
    assert_true(got.bad_epochs == st.bad_epochs);
    assert_string_equal(got.config, st.config);
    assert_int_equal(got.shape.S, st.shape.S);
    assert_int_equal(got.shape.D, st.shape.D);
    assert_int_equal(got.shape.T, st.shape.T);
    for (int s = 0; s < st.shape.S; s++)
        assert_true(got.shape.vocab_sizes[s] == st.shape.vocab_sizes[s]);
    for (int t = 0; t < st.shape.T; t++) {
        assert_string_equal(got.shape.task_names[t], st.shape.task_names[t]);
        assert_int_equal(got.shape.task_regression[t], st.shape.task_regression[t]);
        assert_memory_equal(&got.train_loss_sum[t], &st.train_loss_sum[t], sizeof(double));
        assert_memory_equal(&got.train_count[t], &st.train_count[t], sizeof(double));
    }

    /* a fresh model of the same configuration: every block bit-identical */
    mtl_config cfg;
    mtl_data_shape sh;
    small_config(&cfg);
    model_shape(&sh);
    mtl_model *f = new_model(&cfg, &sh);
    assert_true(f->params.size == m->params.size);
    assert_true(f->buffers.size == m->buffers.size && m->buffers.size > 0);
    assert_true(memcmp(f->params.values, m->params.values, m->params.size * sizeof(float)));
    float *best2 = calloc(m->params.size, sizeof *best2);
    assert_non_null(best2);
    int has_best = -1;
    if (mtl_checkpoint_load_tensors(path, f, 1, best2, &has_best, &err) != MTL_OK) {
        print_error("load_tensors: %s\n", err.msg);
        fail();
    }
    assert_int_equal(has_best, 1);
    size_t bytes = m->params.size * sizeof(float);
    assert_memory_equal(f->params.values, m->params.values, bytes);
    assert_memory_equal(f->params.m, m->params.m, bytes);
    assert_memory_equal(f->params.v, m->params.v, bytes);
    assert_memory_equal(best2, best, bytes);
    assert_memory_equal(f->buffers.values, m->buffers.values, m->buffers.size * sizeof(float));
    mtl_model_free(f);

    /* without the optimizer: parameters loaded, m and v untouched */
    f = new_model(&cfg, &sh);
    for (size_t i = 0; i < f->params.size; i++) f->params.m[i] = f->params.v[i] = 9.0f;
    has_best = -1;
    assert_int_equal(mtl_checkpoint_load_tensors(path, f, 0, NULL, &has_best, &err), MTL_OK);
    assert_int_equal(has_best, 0); /* no buffer given: not loaded */
    assert_memory_equal(f->params.values, m->params.values, bytes);
    for (size_t i = 0; i < f->params.size; i++)
        assert_true(f->params.m[i] == 9.0f && f->params.v[i] == 9.0f);
    mtl_model_free(f);

    /* overwrite with a checkpoint without /best: has_best 0, best untouched */
    st.step = 5;
    save_ok(path, m, NULL, &st);
    assert_no_tmp("roundtrip.h5");
    assert_int_equal(mtl_checkpoint_load_state(path, &got, &err), MTL_OK);
    assert_true(got.step == 5);
    f = new_model(&cfg, &sh);
    memset(best2, 0, bytes);
    has_best = -1;
    assert_int_equal(mtl_checkpoint_load_tensors(path, f, 1, best2, &has_best, &err), MTL_OK);
    assert_int_equal(has_best, 0);
    for (size_t i = 0; i < m->params.size; i++) assert_true(best2[i] == 0.0f);
    assert_memory_equal(f->params.values, m->params.values, bytes);
    mtl_model_free(f);

    free(best2);
    free(best);
    mtl_model_free(m);
}

/* A model without categorical fields or batch norm round-trips too (no
 * vocab_sizes attribute, no /buffers). */
static void test_roundtrip_dense_only(void **state) {
    (void)state;
    mtl_config cfg;
    mtl_config_defaults(&cfg);
    cfg.model = model_of(K_SHARED_BOTTOM);
    mtl_data_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.D = 5;
    sh.T = 1;
    strcpy(sh.task_names[0], "y");
    mtl_model *m = new_model(&cfg, &sh);
    fill_distinct(m, NULL);
    mtl_ckpt_state st;
    fill_state(&st, &sh);
    char path[1024];
    tmp_path(path, sizeof path, "dense_only.h5");
    save_ok(path, m, NULL, &st);
    mtl_ckpt_state got;
    mtl_error err = {{0}};
    assert_int_equal(mtl_checkpoint_load_state(path, &got, &err), MTL_OK);
    assert_int_equal(got.shape.S, 0);
    assert_int_equal(got.shape.D, 5);
    assert_int_equal(got.shape.T, 1);
    assert_string_equal(got.shape.task_names[0], "y");
    mtl_model *f = new_model(&cfg, &sh);
    assert_int_equal(mtl_checkpoint_load_tensors(path, f, 1, NULL, NULL, &err), MTL_OK);
    assert_memory_equal(f->params.values, m->params.values, m->params.size * sizeof(float));
    assert_memory_equal(f->params.v, m->params.v, m->params.size * sizeof(float));
    mtl_model_free(f);
    mtl_model_free(m);
}

static void expect_load_fails(const char *path, const char *want) {
    mtl_error err = {{0}};
    mtl_ckpt_state st;
    assert_int_equal(mtl_checkpoint_load_state(path, &st, &err), MTL_ERR);
    print_message("  rejected: %s\n", err.msg);
    assert_msg(&err, path);
    if (want) assert_msg(&err, want);
    mtl_config cfg;
    mtl_data_shape sh;
    small_config(&cfg);
    model_shape(&sh);
    mtl_model *m = new_model(&cfg, &sh);
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_checkpoint_load_tensors(path, m, 1, NULL, NULL, &err), MTL_ERR);
    assert_msg(&err, path);
    mtl_model_free(m);
}

static void test_reject_truncated(void **state) {
    (void)state;
    char path[1024], half[1024], most[1024];
    tmp_path(path, sizeof path, "full.h5");
    tmp_path(half, sizeof half, "half.h5");
    tmp_path(most, sizeof most, "most.h5");
    mtl_ckpt_state st;
    mtl_model *m = write_reference(path, NULL, &st);
    mtl_model_free(m);
    long n = file_size(path);
    assert_true(n > 4096);
    copy_prefix(path, half, n / 2);
    expect_load_fails(half, "truncated");
    copy_prefix(path, most, n - 16);
    expect_load_fails(most, "truncated");
    /* an empty file */
    copy_prefix(path, most, 0);
    expect_load_fails(most, NULL);
}

static void test_reject_files(void **state) {
    (void)state;
    char path[1024];
    /* not HDF5 */
    tmp_path(path, sizeof path, "text.h5");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++) fprintf(f, "this is not an HDF5 file %d\n", i);
    fclose(f);
    expect_load_fails(path, "not an HDF5 file");
    /* missing */
    tmp_path(path, sizeof path, "does_not_exist.h5");
    unlink(path);
    expect_load_fails(path, "No such file");
    /* a directory */
    tmp_path(path, sizeof path, "a_directory.h5");
    mkdir(path, 0755);
    expect_load_fails(path, "directory");
    /* HDF5, but not a checkpoint: a predictions file */
    tmp_path(path, sizeof path, "preds_not_ckpt.h5");
    const float pred[2] = {0.25f, 0.5f};
    const char *names[1] = {"p"};
    mtl_error err = {{0}};
    assert_int_equal(mtl_predictions_save(path, pred, 2, 1, names, &err), MTL_OK);
    expect_load_fails(path, "not a complete mtl_dist checkpoint");
}

/* Checkpoints of other models: a missing tensor, a tensor of another size,
 * and a tensor with the same number of values in another shape. */
static void test_reject_other_model(void **state) {
    (void)state;
    char path[1024];
    tmp_path(path, sizeof path, "other.h5");
    mtl_ckpt_state st;
    mtl_model *m = write_reference(path, NULL, &st);
    mtl_model_free(m);
    mtl_error err = {{0}};

    /* wider experts: the first tensor already differs */
    mtl_config cfg;
    mtl_data_shape sh;
    small_config(&cfg);
    model_shape(&sh);
    cfg.expert_units.units[0] = 7;
    mtl_model *o = new_model(&cfg, &sh);
    assert_int_equal(mtl_checkpoint_load_tensors(path, o, 1, NULL, NULL, &err), MTL_ERR);
    assert_msg(&err, path);
    assert_msg(&err, "/params/experts.0.dense0.weight");
    mtl_model_free(o);

    /* the checkpoint has no batch norm, the model does: missing tensor */
    small_config(&cfg);
    cfg.batch_norm = 0;
    m = new_model(&cfg, &sh);
    fill_distinct(m, NULL);
    save_ok(path, m, NULL, &st);
    mtl_model_free(m);
    small_config(&cfg);
    o = new_model(&cfg, &sh);
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_checkpoint_load_tensors(path, o, 1, NULL, NULL, &err), MTL_ERR);
    assert_msg(&err, path);
    assert_msg(&err, "/params/experts.0.bn0.gamma missing");
    mtl_model_free(o);

    /* another architecture */
    cfg.model = model_of(K_PLE);
    o = new_model(&cfg, &sh);
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_checkpoint_load_tensors(path, o, 0, NULL, NULL, &err), MTL_ERR);
    assert_msg(&err, "levels.0.experts.task0.0.dense0.weight");
    mtl_model_free(o);

    /* same sizes, other shape: embeddings.0 [6 x 4] saved, [8 x 3] wanted
     * (in_dim 4 either way: S 1, D 0 vs D 1) */
    mtl_config_defaults(&cfg);
    cfg.model = model_of(K_SHARED_BOTTOM);
    cfg.embedding_dim = 4;
    mtl_data_shape a;
    memset(&a, 0, sizeof a);
    a.S = 1;
    a.vocab_sizes[0] = 6;
    a.T = 1;
    strcpy(a.task_names[0], "y");
    m = new_model(&cfg, &a);
    fill_distinct(m, NULL);
    fill_state(&st, &a);
    save_ok(path, m, NULL, &st);
    mtl_data_shape b = a;
    b.vocab_sizes[0] = 8;
    b.D = 1;
    cfg.embedding_dim = 3;
    o = new_model(&cfg, &b);
    assert_true(o->params.size == m->params.size);
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_checkpoint_load_tensors(path, o, 1, NULL, NULL, &err), MTL_ERR);
    print_message("  rejected: %s\n", err.msg);
    assert_msg(&err, path);
    assert_msg(&err, "/params/embeddings.0");
    mtl_model_free(o);
    mtl_model_free(m);
}

static void test_save_errors(void **state) {
    (void)state;
    mtl_config cfg;
    mtl_data_shape sh;
    small_config(&cfg);
    model_shape(&sh);
    mtl_model *m = new_model(&cfg, &sh);
    mtl_ckpt_state st;
    fill_state(&st, &sh);
    char path[1024];
    mtl_error err = {{0}};
    /* a directory that does not exist */
    tmp_path(path, sizeof path, "no_such_dir/ckpt.h5");
    assert_int_equal(mtl_checkpoint_save(path, m, NULL, &st, &err), MTL_ERR);
    assert_msg(&err, path);
    assert_msg(&err, "cannot create");
    assert_false(file_exists(path));
    /* the path is a directory */
    tmp_path(path, sizeof path, "is_a_dir.h5");
    mkdir(path, 0755);
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_checkpoint_save(path, m, NULL, &st, &err), MTL_ERR);
    assert_msg(&err, path);
    assert_msg(&err, "directory");
    assert_no_tmp("is_a_dir.h5");
    /* predictions: same */
    const float p[1] = {0.5f};
    const char *names[1] = {"p"};
    tmp_path(path, sizeof path, "no_such_dir/preds.h5");
    memset(&err, 0, sizeof err);
    assert_int_equal(mtl_predictions_save(path, p, 1, 1, names, &err), MTL_ERR);
    assert_msg(&err, path);
    mtl_model_free(m);
}

static const char *ckpt_py =
    "import sys, h5py, numpy as np\n"
    "path, rows, cols, step, w12 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
    "int(sys.argv[4]), float(sys.argv[5])\n"
    "with h5py.File(path, 'r') as f:\n"
    "    w = f['/params/experts.0.dense0.weight']\n"
    "    assert w.shape == (rows, cols), w.shape\n"
    "    assert w.dtype == np.float32, w.dtype\n"
    "    assert abs(float(w[1, 2]) - w12) <= 1e-6 * abs(w12), (float(w[1, 2]), w12)\n"
    "    assert f['/params/experts.0.dense0.bias'].shape == (rows,)\n"
    "    assert f['/optimizer/m/experts.0.dense0.weight'].shape == (rows, cols)\n"
    "    assert f['/optimizer/v/embeddings.1'].shape == (6, 3)\n"
    "    assert f['/buffers/experts.0.bn0.running_var'].shape == (rows,)\n"
    "    assert f['/best/gates.1.out.weight'].shape == (3, cols)\n"
    "    assert f['/params/loss.log_var'].shape == (2,)\n"
    "    assert int(f.attrs['step']) == step, f.attrs['step']\n"
    "    assert int(f.attrs['epoch']) == 7\n"
    "    names = list(f.attrs['task_names'])\n"
    "    assert all(isinstance(n, str) for n in names), names\n"
    "    assert names == ['income', 'marital stat\\u00fcs'], names\n"
    "    assert isinstance(f.attrs['config'], str) and 'model = mmoe' in f.attrs['config']\n"
    "    assert list(f.attrs['vocab_sizes']) == [5, 6, 70000000000]\n"
    "    assert list(f.attrs['dropout_rng'])[1] == 2**64 - 1\n"
    "    assert f.attrs['format'] == 'mtl_dist checkpoint 1'\n";

static void test_h5py_checkpoint(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    char path[1024], args[2048];
    tmp_path(path, sizeof path, "h5py_ckpt.h5");
    mtl_ckpt_state st;
    mtl_model *m = write_reference(path, NULL, &st);
    int w = mtl_params_find(&m->params, "experts.0.dense0.weight");
    assert_true(w >= 0);
    const mtl_tensor *t = &m->params.tensors[w];
    assert_true(t->rows == 6 && t->cols == m->in_dim);
    /* row-major [out, in]: element (1, 2) */
    float w12 = mtl_params_value(&m->params, w)[1 * t->cols + 2];
    snprintf(args, sizeof args, "'%s' %lld %lld %lld %.9g", path, (long long)t->rows,
             (long long)t->cols, (long long)st.step, (double)w12);
    run_python(ckpt_py, args);
    mtl_model_free(m);
}

static const char *preds_py =
    "import sys, h5py, numpy as np\n"
    "with h5py.File(sys.argv[1], 'r') as f:\n"
    "    p = f['/predictions']\n"
    "    assert p.shape == (5, 3), p.shape\n"
    "    assert p.dtype == np.float32\n"
    "    want = np.array([[i * 3 + j + 0.5 for j in range(3)] for i in range(5)], np.float32)\n"
    "    assert (p[...] / 8 == want / 8).all(), p[...]\n"
    "    names = list(p.attrs['names'])\n"
    "    assert all(isinstance(n, str) for n in names), names\n"
    "    assert names == ['pctr', 'pcvr', 'pctcvr'], names\n";

static void test_predictions_save(void **state) {
    (void)state;
    char path[1024];
    tmp_path(path, sizeof path, "preds.h5");
    unlink(path);
    float pred[15];
    for (int i = 0; i < 15; i++) pred[i] = (float)i + 0.5f;
    const char *names[3] = {"pctr", "pcvr", "pctcvr"};
    mtl_error err = {{0}};
    assert_int_equal(mtl_predictions_save(path, pred, 5, 3, names, &err), MTL_OK);
    assert_true(file_exists(path));
    assert_no_tmp("preds.h5");
    /* overwriting an existing file works */
    assert_int_equal(mtl_predictions_save(path, pred, 5, 3, names, &err), MTL_OK);
    assert_no_tmp("preds.h5");
    if (!have_h5py()) skip();
    char args[1100];
    snprintf(args, sizeof args, "'%s'", path);
    run_python(preds_py, args);
}

int main(void) {
    mkdir(MTL_TEST_TMP, 0755);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/" DIRNAME, MTL_TEST_TMP);
    mkdir(dir, 0755);
    remove_stale_tmp();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_roundtrip_dense_only),
        cmocka_unit_test(test_reject_truncated),   cmocka_unit_test(test_reject_files),
        cmocka_unit_test(test_reject_other_model), cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_h5py_checkpoint),    cmocka_unit_test(test_predictions_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
