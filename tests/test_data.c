/* Tests for src/data.c: sharding, the HDF5 writer/reader round trip, /meta,
 * every rejection message of the reader, files written by h5py
 * (tests/h5py_write.py: gzip + chunked; numpy's dtypes converted on read;
 * h5py's and python3-hdf5plugin's compression filters, and one with no
 * plugin), batch gathering and the shuffle. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtl/data.h"

/* ---- helpers ---- */

static char *tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/test_data_%s", MTL_TEST_TMP, name);
    return buf;
}

/* Run tests/h5py_write.py OUT ARGS; fails the test if the script fails. */
static void h5py_write(const char *out, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PY " '%s/tests/h5py_write.py' '%s' %s", MTL_SOURCE_DIR, out, args);
    if (system(cmd) != 0) {
        print_error("command failed: %s\n", cmd);
        fail();
    }
}

/* Deterministic test data, row i of a [N, S/D/T] set (global row index). */
static const int64_t VOCAB[4] = {7, 3, 100, 1};
static int32_t gen_sparse(int64_t i, int s) {
    return (int32_t)((i * 13 + s * 5) % VOCAB[s]);
}
static float gen_dense(int64_t i, int j) {
    return (float)(i % 31) * 0.25f - (float)j * 1.5f;
}
static float gen_label(int64_t i, int t) {
    return (i + t) % 7 == 3 ? NAN : (float)((i * 3 + t) % 2);
}
/* column c of /weights ([N]: c = 0) */
static float gen_weight(int64_t i, int c) {
    return (float)((i + 2 * c) % 5) * 0.5f;
}

static const char *SPARSE_NAMES[4] = {"größe", "education", "", "one"};
static const char *DENSE_NAMES[3] = {"age", "hours", "capital gain"};
static const char *TASK_NAMES[2] = {"income", "marital"};

/* Write n rows with the generators above, appending in pieces of `piece`;
 * weight_cols: no /weights (0), [N] (1) or [N, T] (T). */
static void write_generated(const char *path, int64_t n, int S, int D, int T, int weight_cols,
                            int64_t piece, const mtl_meta *meta) {
    mtl_error err = {{0}};
    mtl_writer *w = NULL;
    int rc = mtl_writer_open(&w, path, S, SPARSE_NAMES, VOCAB, D, DENSE_NAMES, T, TASK_NAMES,
                             weight_cols, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
    int32_t *sp = calloc((size_t)(piece * S + 1), sizeof *sp);
    float *de = calloc((size_t)(piece * D + 1), sizeof *de);
    float *la = calloc((size_t)(piece * T + 1), sizeof *la);
    float *we = calloc((size_t)(piece * T + 1), sizeof *we);
    assert_non_null(sp);
    assert_non_null(de);
    assert_non_null(la);
    assert_non_null(we);
    for (int64_t r0 = 0; r0 < n; r0 += piece) {
        int64_t k = n - r0 < piece ? n - r0 : piece;
        for (int64_t i = 0; i < k; i++) {
            for (int s = 0; s < S; s++) sp[i * S + s] = gen_sparse(r0 + i, s);
            for (int j = 0; j < D; j++) de[i * D + j] = gen_dense(r0 + i, j);
            for (int t = 0; t < T; t++) la[i * T + t] = gen_label(r0 + i, t);
            for (int c = 0; c < weight_cols; c++) we[i * weight_cols + c] = gen_weight(r0 + i, c);
        }
        rc = mtl_writer_append(w, S ? sp : NULL, D ? de : NULL, la, weight_cols ? we : NULL, k,
                               &err);
        if (rc != MTL_OK) print_error("%s\n", err.msg);
        assert_int_equal(rc, MTL_OK);
    }
    free(sp);
    free(de);
    free(la);
    free(we);
    rc = mtl_writer_close(w, meta, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
}

static void assert_label_eq(float want, float got) {
    if (isnan(want))
        assert_true(isnan(got));
    else
        assert_true(want == got);
}

/* Every row of ds equals the generated global row row_begin + i. */
static void check_generated(const mtl_dataset *ds, int weight_cols) {
    assert_int_equal(ds->weight_cols, weight_cols);
    for (int64_t i = 0; i < ds->n_rows; i++) {
        int64_t g = ds->row_begin + i;
        for (int s = 0; s < ds->S; s++)
            assert_int_equal(ds->sparse[i * ds->S + s], gen_sparse(g, s));
        for (int j = 0; j < ds->D; j++) assert_true(ds->dense[i * ds->D + j] == gen_dense(g, j));
        for (int t = 0; t < ds->T; t++) assert_label_eq(gen_label(g, t), ds->labels[i * ds->T + t]);
        for (int c = 0; c < weight_cols; c++)
            assert_true(ds->weights[i * weight_cols + c] == gen_weight(g, c));
    }
    if (!weight_cols) assert_null(ds->weights);
}

static void check_header(const mtl_dataset *ds, int64_t n, int S, int D, int T) {
    assert_int_equal(ds->n_total, n);
    assert_int_equal(ds->S, S);
    assert_int_equal(ds->D, D);
    assert_int_equal(ds->T, T);
    for (int s = 0; s < S; s++) {
        assert_string_equal(ds->sparse_names[s], SPARSE_NAMES[s]);
        assert_int_equal(ds->vocab_sizes[s], VOCAB[s]);
    }
    for (int j = 0; j < D; j++) assert_string_equal(ds->dense_names[j], DENSE_NAMES[j]);
    for (int t = 0; t < T; t++) assert_string_equal(ds->task_names[t], TASK_NAMES[t]);
}

/* ---- sharding ---- */

static void test_shard_range(void **state) {
    (void)state;
    int64_t sizes[] = {0, 1, 2, 3, 5, 6, 7, 8, 13, 100, 1001};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        for (int P = 1; P <= 7; P++) {
            int64_t next = 0, lo = INT64_MAX, hi = 0;
            for (int r = 0; r < P; r++) {
                int64_t b, c;
                mtl_shard_range(n, r, P, &b, &c);
                assert_true(c >= 0);
                assert_int_equal(b, next); /* contiguous, in rank order, no overlap */
                next = b + c;
                lo = c < lo ? c : lo;
                hi = c > hi ? c : hi;
                /* the first n % P ranks hold the extra row */
                assert_int_equal(c, n / P + (r < n % P ? 1 : 0));
            }
            assert_int_equal(next, n); /* every row covered exactly once */
            assert_true(hi - lo <= 1);
        }
    }
}

static void test_shard_load(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "shard.h5");
    const int64_t N = 23;
    write_generated(path, N, 3, 2, 2, 1, 10, NULL);
    for (int P = 1; P <= 7; P++) {
        int64_t next = 0;
        for (int r = 0; r < P; r++) {
            mtl_dataset ds;
            mtl_error err = {{0}};
            int rc = mtl_dataset_load(&ds, path, r, P, &err);
            if (rc != MTL_OK) print_error("%s\n", err.msg);
            assert_int_equal(rc, MTL_OK);
            int64_t b, c;
            mtl_shard_range(N, r, P, &b, &c);
            assert_int_equal(ds.row_begin, b);
            assert_int_equal(ds.n_rows, c);
            assert_int_equal(ds.row_begin, next);
            next += ds.n_rows;
            check_header(&ds, N, 3, 2, 2);
            check_generated(&ds, 1);
            mtl_dataset_free(&ds);
        }
        assert_int_equal(next, N);
    }
    /* N < P: the last ranks get empty shards, which is not an error. */
    tmp_path(path, sizeof path, "shard_small.h5");
    write_generated(path, 3, 3, 2, 2, 0, 10, NULL);
    for (int r = 0; r < 5; r++) {
        mtl_dataset ds;
        mtl_error err = {{0}};
        assert_int_equal(mtl_dataset_load(&ds, path, r, 5, &err), MTL_OK);
        assert_int_equal(ds.n_rows, r < 3 ? 1 : 0);
        assert_int_equal(ds.row_begin, r < 3 ? r : 3);
        check_generated(&ds, 0);
        mtl_dataset_free(&ds);
    }
    mtl_dataset ds;
    mtl_error err = {{0}};
    assert_int_equal(mtl_dataset_load(&ds, path, 5, 5, &err), MTL_ERR);
    assert_msg(&err, "bad shard");
}

/* ---- writer -> reader round trips ---- */

static void roundtrip(const char *name, int64_t n, int S, int D, int T, int with_weights,
                      int64_t piece) {
    char path[512];
    tmp_path(path, sizeof path, name);
    write_generated(path, n, S, D, T, with_weights, piece, NULL);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp)); /* renamed into place */

    mtl_dataset ds;
    mtl_error err = {{0}};
    int rc = mtl_dataset_load(&ds, path, 0, 1, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
    assert_string_equal(ds.path, path);
    assert_int_equal(ds.row_begin, 0);
    assert_int_equal(ds.n_rows, n);
    check_header(&ds, n, S, D, T);
    check_generated(&ds, with_weights);

    /* save what we loaded and load it again: identical */
    char path2[512];
    tmp_path(path2, sizeof path2, "resaved.h5");
    rc = mtl_dataset_save(&ds, path2, NULL, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
    mtl_dataset ds2;
    assert_int_equal(mtl_dataset_load(&ds2, path2, 0, 1, &err), MTL_OK);
    check_header(&ds2, n, S, D, T);
    check_generated(&ds2, with_weights);
    mtl_dataset_free(&ds2);
    mtl_dataset_free(&ds);
    assert_null(ds.labels); /* free zeroes the struct */

    /* header only: shapes and names, no rows */
    rc = mtl_dataset_load_header(&ds, path, &err);
    assert_int_equal(rc, MTL_OK);
    check_header(&ds, n, S, D, T);
    assert_int_equal(ds.n_rows, 0);
    assert_null(ds.labels);
    mtl_dataset_free(&ds);
}

/* 20000 rows in uneven pieces: crosses several 8192-row chunks. */
static void test_roundtrip_full(void **state) {
    (void)state;
    roundtrip("full.h5", 20000, 4, 3, 2, 1, 3001);
}
static void test_roundtrip_no_weights(void **state) {
    (void)state;
    roundtrip("noweights.h5", 100, 3, 2, 1, 0, 100);
}
static void test_roundtrip_s0(void **state) {
    (void)state;
    roundtrip("s0.h5", 50, 0, 3, 2, 1, 7);
}
static void test_roundtrip_d0(void **state) {
    (void)state;
    roundtrip("d0.h5", 50, 2, 0, 2, 0, 7);
}
static void test_roundtrip_s0_d0(void **state) {
    (void)state;
    roundtrip("s0d0.h5", 9, 0, 0, 1, 1, 4);
}

/* ---- /meta ---- */

static void test_meta_roundtrip(void **state) {
    (void)state;
    char *v0[] = {"Private", "Self-emp", "Straße ünd", ""};
    char *v2[] = {"x"};
    char **vocab[3] = {v0, NULL, v2};
    int64_t len[3] = {4, 0, 1};
    double mn[3] = {-1.5, 0.0, 1e-300}, mx[3] = {90.25, 1e300, 2.0};
    mtl_meta m = {
        .S = 3, .vocab_len = len, .vocab = vocab, .D = 3, .dense_min = mn, .dense_max = mx};
    char path[512];
    tmp_path(path, sizeof path, "meta.h5");
    write_generated(path, 10, 3, 3, 2, 0, 10, &m);

    mtl_meta got;
    mtl_error err = {{0}};
    int rc = mtl_meta_load(&got, path, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
    assert_int_equal(got.S, 3);
    assert_int_equal(got.D, 3);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(got.vocab_len[s], len[s]);
        for (int64_t i = 0; i < len[s]; i++) assert_string_equal(got.vocab[s][i], vocab[s][i]);
    }
    for (int j = 0; j < 3; j++) {
        assert_true(got.dense_min[j] == mn[j]);
        assert_true(got.dense_max[j] == mx[j]);
    }
    mtl_meta_free(&got);
    assert_null(got.vocab);
    /* the data next to /meta still loads */
    mtl_dataset ds;
    assert_int_equal(mtl_dataset_load(&ds, path, 0, 1, &err), MTL_OK);
    check_generated(&ds, 0);
    mtl_dataset_free(&ds);

    /* S = 0 and D = 0 meta */
    mtl_meta empty = {0};
    tmp_path(path, sizeof path, "meta_empty.h5");
    write_generated(path, 5, 0, 0, 1, 0, 5, &empty);
    got.S = 99;
    assert_int_equal(mtl_meta_load(&got, path, &err), MTL_OK);
    assert_int_equal(got.S, 0);
    assert_int_equal(got.D, 0);
    mtl_meta_free(&got);

    /* no /meta at all: an empty meta, not an error */
    tmp_path(path, sizeof path, "meta_none.h5");
    write_generated(path, 5, 1, 1, 1, 0, 5, NULL);
    got.S = 99;
    assert_int_equal(mtl_meta_load(&got, path, &err), MTL_OK);
    assert_int_equal(got.S, 0);
    assert_null(got.vocab);
    assert_null(got.dense_min);
    mtl_meta_free(&got);

    /* meta_load reports file problems like the dataset loader */
    tmp_path(path, sizeof path, "meta_missing.h5");
    assert_int_equal(mtl_meta_load(&got, path, &err), MTL_ERR);
    assert_msg(&err, "no such file");
}

/* ---- rejections ---- */

static void expect_load_error(const char *path, int rank, int world, const char *want) {
    mtl_dataset ds;
    mtl_error err = {{0}};
    int rc = mtl_dataset_load(&ds, path, rank, world, &err);
    if (rc != MTL_ERR) print_error("%s: loaded, expected \"%s\"\n", path, want);
    assert_int_equal(rc, MTL_ERR);
    assert_msg(&err, want);
    /* every message starts with the file name */
    assert_true(strncmp(err.msg, path, strlen(path)) == 0);
    assert_null(ds.labels); /* nothing left allocated */
    assert_null(ds.path);
}

static void test_reject_filesystem(void **state) {
    (void)state;
    char path[512], want[600];
    tmp_path(path, sizeof path, "does_not_exist.h5");
    snprintf(want, sizeof want, "%s: no such file", path);
    expect_load_error(path, 0, 1, want);

    tmp_path(path, sizeof path, "a_directory.h5");
    mkdir(path, 0755);
    snprintf(want, sizeof want, "%s: is a directory", path);
    expect_load_error(path, 0, 1, want);

    tmp_path(path, sizeof path, "text.h5");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("age,income\n39,1\n", f);
    fclose(f);
    snprintf(want, sizeof want, "%s: not an HDF5 file", path);
    expect_load_error(path, 0, 1, want);

    tmp_path(path, sizeof path, "empty.h5");
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(want, sizeof want, "%s: not an HDF5 file", path);
    expect_load_error(path, 0, 1, want);

    /* a writer-made file with zero rows */
    tmp_path(path, sizeof path, "zero_rows.h5");
    write_generated(path, 0, 2, 1, 1, 0, 5, NULL);
    snprintf(want, sizeof want, "%s: no rows", path);
    expect_load_error(path, 0, 1, want);
}

static const struct {
    const char *kind, *want;
} BAD_CASES[] = {
    {"sparse-range", "/sparse: row 17, column 1 (cat1): value 8 outside 0..7 (vocab_sizes)"},
    {"sparse-neg", "/sparse: row 3, column 0 (größe0): value -1 outside 0..4"},
    {"label-rows", "/labels has 31 rows but /sparse has 30"},
    {"sparse-float", "/sparse: dtype must be an integer type (got float64)"},
    {"sparse-huge", "/sparse: row 5, column 1 (cat1): value 1099511627776 does not fit int32"},
    {"dense-overflow", "/dense: row 6, column 1 (num1): value 1e+39 overflows float32"},
    {"sparse-rank1", "/sparse: must be 2-D [N, S] (got rank 1)"},
    {"weights-rank2", "/weights: has 1 columns; must be [N] or [N, T] with T = 2"},
    {"labels-missing", "/labels missing"},
    {"labels-group", "/labels: is not a dataset"},
    {"no-rows", ": no rows"},
    {"dense-nan", "/dense: row 5, column 1 (num1): value NaN is not finite"},
    {"dense-inf", "/dense: row 6, column 0 (num0): value Inf is not finite"},
    {"label-inf", "/labels: row 7, column 0 (task0): value -Inf"},
    {"weights-nan", "/weights: row 8: value NaN is not finite"},
    {"weights-neg", "/weights: row 9: value -1 is negative"},
    {"vocab-zero", "/sparse: vocab_sizes[1] (cat1) is 0, must be > 0"},
    {"vocab-missing", "/sparse: attribute vocab_sizes missing"},
    {"vocab-float", "/sparse: attribute vocab_sizes must be int64 (got float64)"},
    {"names-len", "/dense: attribute names has 1 entries but /dense has 2 columns"},
    {"names-missing", "/labels: attribute names missing"},
    {"names-int", "/dense: attribute names: must be strings (got int64)"},
    {"groups-rows", "/labels has 30 rows but /groups has 29"},
    {"groups-float", "/groups: dtype must be an integer type (got float64)"},
};

/* /groups: int64 ids beyond int32 read exactly, rank 1 of 3 gets its rows */
static void test_groups_h5py(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    char path[512];
    tmp_path(path, sizeof path, "groups.h5");
    h5py_write(path, "--rows 40 --groups");
    mtl_dataset ds;
    mtl_error err;
    assert_int_equal(mtl_dataset_load(&ds, path, 1, 3, &err), MTL_OK);
    assert_true(ds.has_groups);
    assert_non_null(ds.groups);
    for (int64_t i = 0; i < ds.n_rows; i++)
        assert_true(ds.groups[i] == ((ds.row_begin + i) % 7) * ((int64_t)1 << 40));
    mtl_dataset_free(&ds);
    h5py_write(path, "--rows 40");
    assert_int_equal(mtl_dataset_load(&ds, path, 0, 1, &err), MTL_OK);
    assert_false(ds.has_groups);
    assert_null(ds.groups);
    mtl_dataset_free(&ds);
}

static void test_reject_h5py(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    for (size_t k = 0; k < sizeof BAD_CASES / sizeof BAD_CASES[0]; k++) {
        char path[512], args[128], want[800];
        char name[64];
        snprintf(name, sizeof name, "bad_%s.h5", BAD_CASES[k].kind);
        tmp_path(path, sizeof path, name);
        snprintf(args, sizeof args, "--rows 30 --bad %s", BAD_CASES[k].kind);
        h5py_write(path, args);
        snprintf(want, sizeof want, "%s: %s", path, BAD_CASES[k].want);
        if (strcmp(BAD_CASES[k].kind, "no-rows") == 0)
            snprintf(want, sizeof want, "%s: no rows", path);
        expect_load_error(path, 0, 1, want);
    }
}

/* The offending row is reported by its global index, found by the rank that
 * holds it; other ranks' shards are fine. */
static void test_reject_global_row(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    char path[512];
    tmp_path(path, sizeof path, "bad_global.h5");
    h5py_write(path, "--rows 30 --bad sparse-range");                  /* bad value at row 17 */
    expect_load_error(path, 1, 3, "/sparse: row 17, column 1 (cat1)"); /* rows 10..19 */
    mtl_dataset ds;
    mtl_error err = {{0}};
    assert_int_equal(mtl_dataset_load(&ds, path, 0, 3, &err), MTL_OK);
    mtl_dataset_free(&ds);
    assert_int_equal(mtl_dataset_load(&ds, path, 2, 3, &err), MTL_OK);
    mtl_dataset_free(&ds);
}

/* ---- writer abort and writer-side validation ---- */

static void test_writer_abort(void **state) {
    (void)state;
    char path[512], tmp[600];
    tmp_path(path, sizeof path, "aborted.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    mtl_error err = {{0}};
    mtl_writer *w = NULL;
    assert_int_equal(
        mtl_writer_open(&w, path, 2, SPARSE_NAMES, VOCAB, 1, DENSE_NAMES, 1, TASK_NAMES, 0, &err),
        MTL_OK);
    assert_true(file_exists(tmp)); /* writing goes to the temporary */
    assert_false(file_exists(path));
    int32_t sp[4] = {0, 1, 6, 2};
    float de[2] = {1, 2}, la[2] = {0, 1};
    assert_int_equal(mtl_writer_append(w, sp, de, la, NULL, 2, &err), MTL_OK);
    mtl_writer_abort(w);
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));
    mtl_writer_abort(NULL); /* safe */

    /* the writer refuses rows the reader would reject, naming the global row */
    assert_int_equal(
        mtl_writer_open(&w, path, 2, SPARSE_NAMES, VOCAB, 1, DENSE_NAMES, 1, TASK_NAMES, 1, &err),
        MTL_OK);
    float we[2] = {1, 1};
    assert_int_equal(mtl_writer_append(w, sp, de, la, we, 2, &err), MTL_OK);
    int32_t bad[2] = {0, 3}; /* vocab of field 1 is 3 */
    assert_int_equal(mtl_writer_append(w, bad, de, la, we, 1, &err), MTL_ERR);
    assert_msg(&err, "/sparse: row 2, column 1 (education): value 3 outside 0..2 (vocab_sizes)");
    float badw[1] = {-2};
    assert_int_equal(mtl_writer_append(w, sp, de, la, badw, 1, &err), MTL_ERR);
    assert_msg(&err, "/weights: row 2: value -2 is negative");
    mtl_writer_abort(w);
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));

    /* a directory that does not exist: error, nothing created */
    tmp_path(path, sizeof path, "no_such_dir/x.h5");
    w = NULL;
    assert_int_equal(mtl_writer_open(&w, path, 0, NULL, NULL, 0, NULL, 1, TASK_NAMES, 0, &err),
                     MTL_ERR);
    assert_null(w);
    assert_msg(&err, "cannot create");
}

/* ---- files written by h5py ---- */

/* Values of tests/h5py_write.py (see its docstring); labels of a non-float
 * dtype have no missing (NaN) entries (nan_labels 0). */
static void check_h5py_file(const mtl_dataset *ds, int64_t N, int S, int D, int T, int seed,
                            int with_weights, const char *first_sparse_name, int nan_labels) {
    assert_int_equal(ds->n_total, N);
    assert_int_equal(ds->S, S);
    assert_int_equal(ds->D, D);
    assert_int_equal(ds->T, T);
    char name[32];
    for (int s = 0; s < S; s++) {
        snprintf(name, sizeof name, "cat%d", s);
        assert_string_equal(ds->sparse_names[s], s == 0 ? first_sparse_name : name);
        assert_int_equal(ds->vocab_sizes[s], 5 + 3 * s);
    }
    for (int j = 0; j < D; j++) {
        snprintf(name, sizeof name, "num%d", j);
        assert_string_equal(ds->dense_names[j], name);
    }
    for (int t = 0; t < T; t++) {
        snprintf(name, sizeof name, "task%d", t);
        assert_string_equal(ds->task_names[t], name);
    }
    for (int64_t r = 0; r < ds->n_rows; r++) {
        int64_t i = ds->row_begin + r;
        for (int s = 0; s < S; s++)
            assert_int_equal(ds->sparse[r * S + s], (i * 7 + s * 3 + seed) % (5 + 3 * s));
        for (int j = 0; j < D; j++)
            assert_true(ds->dense[r * D + j] == (float)(i % 97) * 0.5f - (float)j);
        for (int t = 0; t < T; t++) {
            float want = nan_labels && (i * T + t) % 11 == 5 ? NAN : (float)((i + t + seed) % 2);
            assert_label_eq(want, ds->labels[r * T + t]);
        }
        if (with_weights) assert_true(ds->weights[r] == 0.5f + (float)(i % 4) * 0.25f);
    }
    if (!with_weights) assert_null(ds->weights);
}

static void load_ok(mtl_dataset *ds, const char *path, int rank, int world) {
    mtl_error err = {{0}};
    int rc = mtl_dataset_load(ds, path, rank, world, &err);
    if (rc != MTL_OK) print_error("%s\n", err.msg);
    assert_int_equal(rc, MTL_OK);
}

static void test_h5py_file(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    char path[512];
    mtl_dataset ds;

    /* gzip + chunked, vlen UTF-8 names; whole file and shards */
    tmp_path(path, sizeof path, "h5py_gzip.h5");
    h5py_write(path, "--rows 1000 --seed 3");
    load_ok(&ds, path, 0, 1);
    assert_int_equal(ds.n_rows, 1000);
    check_h5py_file(&ds, 1000, 3, 2, 2, 3, 1, "größe0", 1);
    mtl_dataset_free(&ds);
    for (int r = 0; r < 3; r++) {
        load_ok(&ds, path, r, 3);
        assert_int_equal(ds.n_rows, r == 0 ? 334 : 333);
        check_h5py_file(&ds, 1000, 3, 2, 2, 3, 1, "größe0", 1);
        mtl_dataset_free(&ds);
    }

    /* vlen ASCII and fixed-length names */
    tmp_path(path, sizeof path, "h5py_ascii.h5");
    h5py_write(path, "--rows 40 --names vlen-ascii --no-weights");
    load_ok(&ds, path, 0, 1);
    check_h5py_file(&ds, 40, 3, 2, 2, 0, 0, "cat0", 1);
    mtl_dataset_free(&ds);
    tmp_path(path, sizeof path, "h5py_fixed.h5");
    h5py_write(path, "--rows 40 --names fixed --tasks 3");
    load_ok(&ds, path, 0, 1);
    check_h5py_file(&ds, 40, 3, 2, 3, 0, 1, "cat0", 1);
    mtl_dataset_free(&ds);

    /* S = 0 / D = 0: datasets absent, or present with 0 columns */
    tmp_path(path, sizeof path, "h5py_s0.h5");
    h5py_write(path, "--rows 20 --sparse-cols 0");
    load_ok(&ds, path, 0, 1);
    check_h5py_file(&ds, 20, 0, 2, 2, 0, 1, "", 1);
    mtl_dataset_free(&ds);
    tmp_path(path, sizeof path, "h5py_d0.h5");
    h5py_write(path, "--rows 20 --dense-cols 0 --no-weights");
    load_ok(&ds, path, 0, 1);
    check_h5py_file(&ds, 20, 3, 0, 2, 0, 0, "größe0", 1);
    mtl_dataset_free(&ds);
    tmp_path(path, sizeof path, "h5py_empty_cols.h5");
    h5py_write(path, "--rows 20 --sparse-cols 0 --dense-cols 0 --keep-empty");
    load_ok(&ds, path, 0, 1);
    check_h5py_file(&ds, 20, 0, 0, 2, 0, 1, "", 1);
    mtl_dataset_free(&ds);
}

/* numpy's dtypes as a script makes them, without casts: converted on read to
 * int32 ids and float32 values, equal to those of an int32/float32 file, in
 * whole loads, shards and compact loads. 70000 rows cross several rounds of
 * the reader's bounded conversion buffer. */
static void test_h5py_dtypes(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    static const struct {
        const char *args;
        int nan_labels; /* float labels keep their NaN (missing) entries */
    } CASES[] = {
        {"--rows 70000 --numpy-defaults", 1}, /* int64 ids, float64 values and weights */
        {"--rows 300 --sparse-dtype uint8 --labels-dtype bool", 0}, /* bool: h5py's enum */
        {"--rows 300 --sparse-dtype '>i8' --dense-dtype '>f8' --labels-dtype int8 "
         "--weights-dtype float16",
         0},
        {"--rows 300 --sparse-dtype uint64 --dense-dtype float16 --labels-dtype uint8", 0},
        {"--rows 300 --sparse-dtype int16 --labels-dtype float16 --weights-dtype float64", 1},
    };
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        char path[512], name[64];
        snprintf(name, sizeof name, "h5py_dtypes%zu.h5", k);
        tmp_path(path, sizeof path, name);
        h5py_write(path, CASES[k].args);
        int64_t N = k == 0 ? 70000 : 300;
        mtl_dataset ds;
        for (int world = 1; world <= 3; world += 2)
            for (int r = 0; r < world; r++) {
                load_ok(&ds, path, r, world);
                check_h5py_file(&ds, N, 3, 2, 2, 0, 1, "größe0", CASES[k].nan_labels);
                mtl_dataset_free(&ds);
            }
        mtl_error err = {{0}};
        int rc = mtl_dataset_load_compact(&ds, path, 1, 2, &err);
        if (rc != MTL_OK) print_error("%s\n", err.msg);
        assert_int_equal(rc, MTL_OK);
        assert_non_null(ds.sparse_u8);
        for (int64_t r = 0; r < ds.n_rows; r++)
            for (int s = 0; s < 3; s++)
                assert_int_equal(ds.sparse_u8[r * 3 + s],
                                 ((ds.row_begin + r) * 7 + s * 3) % (5 + 3 * s));
        mtl_dataset_free(&ds);
    }
    /* an int64 id beyond int32 is named, in a compact load and on the rank
     * holding it too (it is in rows 0..14 of 30) */
    char path[512];
    tmp_path(path, sizeof path, "bad_sparse-huge.h5");
    h5py_write(path, "--rows 30 --bad sparse-huge");
    const char *want = "/sparse: row 5, column 1 (cat1): value 1099511627776 does not fit int32";
    expect_load_error(path, 0, 2, want);
    mtl_dataset ds;
    mtl_error err = {{0}};
    assert_int_equal(mtl_dataset_load_compact(&ds, path, 0, 1, &err), MTL_ERR);
    assert_msg(&err, want);
    assert_int_equal(mtl_dataset_load(&ds, path, 1, 2, &err), MTL_OK);
    mtl_dataset_free(&ds);
}

/* h5py's LZF and python3-hdf5plugin's filters load (launch/install-deps.sh
 * installs Debian's plugins); a filter no plugin provides is named. */
static void test_h5py_compression(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    static const char *const FILTERS[] = {"lzf", "blosc", "bitshuffle", "lz4", "bzip2"};
    char path[512], name[64], args[128];
    mtl_dataset ds;
    for (size_t k = 0; k < sizeof FILTERS / sizeof FILTERS[0]; k++) {
        snprintf(name, sizeof name, "h5py_%s.h5", FILTERS[k]);
        tmp_path(path, sizeof path, name);
        snprintf(args, sizeof args, "--rows 3000 --seed 2 --numpy-defaults --compression %s",
                 FILTERS[k]);
        h5py_write(path, args);
        for (int world = 1; world <= 2; world++)
            for (int r = 0; r < world; r++) {
                load_ok(&ds, path, r, world);
                check_h5py_file(&ds, 3000, 3, 2, 2, 2, 1, "größe0", 1);
                mtl_dataset_free(&ds);
            }
    }
    tmp_path(path, sizeof path, "h5py_zstd.h5");
    h5py_write(path, "--rows 300 --compression zstd");
    expect_load_error(path, 0, 1,
                      "/sparse: compressed with filter 32015 (zstd), which this HDF5 "
                      "installation lacks: Debian has no package for it");
}

/* h5py reads what our writer writes: names come back as str, vocab_sizes as
 * int64, empty S gives an empty array. */
static void test_h5py_reads_writer(void **state) {
    (void)state;
    if (!have_h5py()) skip();
    char path[512], cmd[2048];
    tmp_path(path, sizeof path, "for_h5py.h5");
    write_generated(path, 12, 2, 1, 2, 1, 5, NULL);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import h5py, numpy as np, sys\n"
                "f = h5py.File(sys.argv[1], 'r')\n"
                "n = list(f['sparse'].attrs['names'])\n"
                "assert n == ['größe', 'education'], n\n"
                "assert all(type(x) is str for x in n)\n"
                "v = f['sparse'].attrs['vocab_sizes']\n"
                "assert v.dtype == np.int64 and list(v) == [7, 3], v\n"
                "assert list(f['labels'].attrs['names']) == ['income', 'marital']\n"
                "assert f['sparse'].dtype == np.int32 and f['sparse'].shape == (12, 2)\n"
                "assert f['dense'].dtype == np.float32 and f['weights'].shape == (12,)\n"
                "\" '%s'",
             path);
    assert_int_equal(system(cmd), 0);

    tmp_path(path, sizeof path, "for_h5py_s0.h5");
    write_generated(path, 3, 0, 1, 1, 0, 5, NULL);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import h5py, sys\n"
                "f = h5py.File(sys.argv[1], 'r')\n"
                "assert f['sparse'].shape == (3, 0)\n"
                "assert len(f['sparse'].attrs['names']) == 0\n"
                "assert 'weights' not in f\n"
                "\" '%s'",
             path);
    assert_int_equal(system(cmd), 0);
}

/* ---- shuffle and batches ---- */

static void test_shuffle(void **state) {
    (void)state;
    enum { N = 1000 };
    int64_t a[N], b[N], c[N];
    int seen[N];
    mtl_shuffle(a, N, 42, 0, 0);
    memset(seen, 0, sizeof seen);
    int64_t fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        seen[a[i]]++;
        fixed += a[i] == i;
    }
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1); /* a permutation */
    assert_true(fixed < 20);                                  /* and actually shuffled */

    mtl_shuffle(b, N, 42, 0, 0);
    assert_memory_equal(a, b, sizeof a); /* deterministic in (seed, epoch, rank) */
    mtl_shuffle(c, N, 42, 1, 0);
    assert_memory_not_equal(a, c, sizeof a); /* a new order each epoch */
    mtl_shuffle(c, N, 42, 0, 1);
    assert_memory_not_equal(a, c, sizeof a); /* and on each rank */
    mtl_shuffle(c, N, 43, 0, 0);
    assert_memory_not_equal(a, c, sizeof a); /* and for each seed */

    /* uniform over permutations: all 6 orders of 3 items about equally often
     * (a biased or Sattolo-style shuffle misses some orders entirely) */
    int counts[3][3][3] = {{{0}}};
    for (uint64_t seed = 0; seed < 6000; seed++) {
        int64_t p[3];
        mtl_shuffle(p, 3, seed, 0, 0);
        counts[p[0]][p[1]][p[2]]++;
    }
    int orders = 0;
    for (int x = 0; x < 3; x++)
        for (int y = 0; y < 3; y++)
            for (int z = 0; z < 3; z++)
                if (counts[x][y][z]) {
                    orders++;
                    assert_in_range(counts[x][y][z], 850, 1150);
                }
    assert_int_equal(orders, 6);

    mtl_shuffle(a, 0, 1, 0, 0); /* n = 0, 1: nothing to do, no crash */
    mtl_shuffle(a, 1, 1, 0, 0);
    assert_int_equal(a[0], 0);
}

/* /weights [N, T]: one weight per task, through the writer, the reader (whole,
 * sharded, header), a batch, and the writer's own validation */
static void test_task_weights(void **state) {
    (void)state;
    roundtrip("taskweights.h5", 3000, 3, 2, 2, 2, 999);
    char path[512];
    tmp_path(path, sizeof path, "taskweights.h5");
    mtl_dataset ds;
    load_ok(&ds, path, 1, 2); /* rows 1500..2999 */
    check_generated(&ds, 2);
    mtl_batch b;
    mtl_error err = {{0}};
    assert_int_equal(mtl_batch_alloc(&b, 4, 3, 2, 2, &err), MTL_OK);
    int64_t rows[3] = {7, 0, 1499};
    mtl_batch_gather(&b, &ds, rows, 3);
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 2; t++)
            assert_true(b.weights[i * 2 + t] == gen_weight(1500 + rows[i], t));
    mtl_batch view = mtl_batch_rows(&b, 1, 2); /* a micro-batch's rows */
    assert_true(view.weights[2 + 1] == gen_weight(1500 + 1499, 1));
    mtl_batch_free(&b);
    mtl_dataset_free(&ds);
    assert_int_equal(mtl_dataset_load_header(&ds, path, &err), MTL_OK);
    assert_int_equal(ds.weight_cols, 2);
    mtl_dataset_free(&ds);

    /* the writer checks each task's weight and names its column */
    tmp_path(path, sizeof path, "taskweights_bad.h5");
    mtl_writer *w = NULL;
    assert_int_equal(mtl_writer_open(&w, path, 0, NULL, NULL, 0, NULL, 2, TASK_NAMES, 2, &err),
                     MTL_OK);
    const float labels[4] = {1, 0, 0, 1}, weights[4] = {1, 0, 2, -0.5f};
    assert_int_equal(mtl_writer_append(w, NULL, NULL, labels, weights, 2, &err), MTL_ERR);
    assert_msg(&err, "/weights: row 1, column 1: value -0.5 is negative");
    mtl_writer_abort(w);
    assert_false(file_exists(path));
    /* 3 weight columns for 2 tasks: refused */
    assert_int_equal(mtl_writer_open(&w, path, 0, NULL, NULL, 0, NULL, 2, TASK_NAMES, 3, &err),
                     MTL_ERR);
    assert_msg(&err, "3 weight columns (0, 1 or T = 2)");
}

static void test_batch_gather(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "batch.h5");
    write_generated(path, 40, 3, 2, 2, 1, 40, NULL);
    mtl_dataset ds;
    load_ok(&ds, path, 1, 2); /* rows 20..39 */
    mtl_batch b;
    mtl_error err = {{0}};
    assert_int_equal(mtl_batch_alloc(&b, 8, 3, 2, 2, &err), MTL_OK);
    int64_t rows[5] = {19, 0, 7, 7, 3};
    mtl_batch_gather(&b, &ds, rows, 5);
    assert_int_equal(b.n, 5);
    for (int i = 0; i < 5; i++) {
        int64_t g = 20 + rows[i];
        for (int s = 0; s < 3; s++) assert_int_equal(b.sparse[i * 3 + s], gen_sparse(g, s));
        for (int j = 0; j < 2; j++) assert_true(b.dense[i * 2 + j] == gen_dense(g, j));
        for (int t = 0; t < 2; t++) assert_label_eq(gen_label(g, t), b.labels[i * 2 + t]);
        for (int t = 0; t < 2; t++) /* [N] weights: the row's for every task */
            assert_true(b.weights[i * 2 + t] == gen_weight(g, 0));
    }
    mtl_batch_gather(&b, &ds, rows, 0);
    assert_int_equal(b.n, 0);
    mtl_batch_free(&b);
    assert_null(b.sparse);
    mtl_dataset_free(&ds);

    /* without /weights every batch weight is 1 */
    tmp_path(path, sizeof path, "batch_nw.h5");
    write_generated(path, 10, 0, 1, 1, 0, 10, NULL);
    load_ok(&ds, path, 0, 1);
    assert_int_equal(mtl_batch_alloc(&b, 4, 0, 1, 1, &err), MTL_OK);
    int64_t r2[4] = {9, 8, 1, 0};
    mtl_batch_gather(&b, &ds, r2, 4);
    for (int i = 0; i < 4; i++) {
        assert_true(b.weights[i] == 1.0f);
        assert_true(b.dense[i] == gen_dense(r2[i], 0));
    }
    mtl_batch_free(&b);
    mtl_dataset_free(&ds);

    assert_int_equal(mtl_batch_alloc(&b, 0, 1, 1, 1, &err), MTL_ERR);
}

/* ---- multi-valued fields (/multi) ---- */

/* Row i's list of field j: length (i * 7 + j) % 5 (0 for a fifth of the
 * rows), id k of it (i + 3 k + j) % vocab. */
static const int64_t MULTI_VOCAB[2] = {9, 4};
static int64_t multi_len(int64_t i, int j) {
    return (i * 7 + j) % 5;
}
static int32_t multi_id(int64_t i, int j, int64_t k) {
    return (int32_t)((i + 3 * k + j) % MULTI_VOCAB[j]);
}

/* The writer in appends of 13 rows; every rank's shard (1, 2 and 3 ranks)
 * and a row range hold exactly their rows' lists, offsets from 0; batches of
 * any rows gather them, also into a view that starts mid-batch. */
static void test_multi_fields(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "multi.h5");
    const int64_t N = 40;
    const char *names[2] = {"genres", "tags"};
    const int mean[2] = {1, 0};
    mtl_writer *w;
    mtl_error err = {{0}};
    assert_int_equal(
        mtl_writer_open(&w, path, 1, SPARSE_NAMES, VOCAB, 0, NULL, 1, TASK_NAMES, 0, &err), MTL_OK);
    assert_int_equal(mtl_writer_add_multi(w, 2, names, MULTI_VOCAB, mean, &err), MTL_OK);
    for (int64_t b = 0; b < N; b += 13) {
        int64_t n = N - b < 13 ? N - b : 13;
        int32_t sp[13];
        float la[13];
        for (int64_t i = 0; i < n; i++) sp[i] = gen_sparse(b + i, 0), la[i] = gen_label(b + i, 0);
        assert_int_equal(mtl_writer_append(w, sp, NULL, la, NULL, n, &err), MTL_OK);
        for (int j = 0; j < 2; j++) {
            int64_t off[14] = {0};
            int32_t ids[13 * 5];
            for (int64_t i = 0; i < n; i++) {
                off[i + 1] = off[i] + multi_len(b + i, j);
                for (int64_t k = 0; k < multi_len(b + i, j); k++)
                    ids[off[i] + k] = multi_id(b + i, j, k);
            }
            assert_int_equal(mtl_writer_append_multi(w, j, off, ids, n, &err), MTL_OK);
        }
    }
    /* an id out of range is refused before anything is written */
    int64_t bad_off[2] = {0, 1};
    int32_t bad_id = 9;
    assert_int_equal(mtl_writer_append_multi(w, 0, bad_off, &bad_id, 1, &err), MTL_ERR);
    assert_non_null(strstr(err.msg, "/multi/genres/ids: row 40: id 9 outside 0..8"));
    assert_int_equal(mtl_writer_close(w, NULL, &err), MTL_OK);

    for (int world = 1; world <= 3; world++)
        for (int rank = 0; rank < world; rank++) {
            mtl_dataset ds;
            load_ok(&ds, path, rank, world);
            assert_int_equal(ds.M, 2);
            assert_string_equal(ds.multi_names[0], "genres");
            assert_int_equal(ds.multi_vocab[1], 4);
            assert_int_equal(ds.multi_mean[0], 1);
            assert_int_equal(ds.multi_mean[1], 0);
            for (int j = 0; j < 2; j++) {
                const int64_t *o = ds.multi_off[j];
                assert_int_equal(o[0], 0);
                for (int64_t i = 0; i < ds.n_rows; i++) {
                    int64_t g = ds.row_begin + i;
                    assert_int_equal(o[i + 1] - o[i], multi_len(g, j));
                    for (int64_t k = 0; k < multi_len(g, j); k++)
                        assert_int_equal(ds.multi_ids[j][o[i] + k], multi_id(g, j, k));
                }
            }
            mtl_dataset_free(&ds);
        }
    mtl_dataset ds, hdr;
    assert_int_equal(mtl_dataset_load_header(&hdr, path, &err), MTL_OK);
    assert_int_equal(hdr.M, 2);
    assert_null(hdr.multi_off[0]); /* no rows read */
    mtl_dataset_free(&hdr);
    assert_int_equal(mtl_dataset_load_rows(&ds, path, 17, 9, &err), MTL_OK);
    assert_int_equal(ds.multi_off[1][0], 0); /* rebased */
    for (int64_t i = 0; i < 9; i++)
        assert_int_equal(ds.multi_off[1][i + 1] - ds.multi_off[1][i], multi_len(17 + i, 1));

    /* batches: rows 8, 0 (empty genres), 3, then a view from row 3 of the
     * batch gathering rows 5, 5: the lists follow each other */
    mtl_batch b;
    assert_int_equal(mtl_batch_alloc(&b, 6, 1, 0, 1, &err), MTL_OK);
    assert_int_equal(mtl_batch_alloc_multi(&b, 2, &err), MTL_OK);
    assert_int_equal(mtl_batch_reserve(&b, &ds, &err), MTL_OK);
    assert_true(b.multi_cap[0] >= 6 * 4);
    int64_t rows[3] = {8, 0, 3};
    mtl_batch_gather(&b, &ds, rows, 3);
    mtl_batch view = b;
    view.multi_off += 3;
    view.capacity -= 3;
    int64_t more[2] = {5, 5};
    mtl_batch_gather(&view, &ds, more, 2);
    const int64_t order[5] = {8, 0, 3, 5, 5};
    for (int j = 0; j < 2; j++) {
        const int32_t *o = b.multi_off + (size_t)j * (size_t)b.multi_ld;
        assert_int_equal(o[0], 0);
        for (int i = 0; i < 5; i++) {
            int64_t g = 17 + order[i];
            assert_int_equal(o[i + 1] - o[i], multi_len(g, j));
            for (int64_t k = 0; k < multi_len(g, j); k++)
                assert_int_equal(b.multi_ids[j][o[i] + k], multi_id(g, j, k));
        }
    }
    mtl_batch_free(&b);
    mtl_dataset_free(&ds);
}

/* Compact ids: the vocabularies decide 1, 2 or 4 bytes per id, and batches
 * gathered from a compact load equal those from a plain one. */
static void test_compact_load(void **state) {
    (void)state;
    const int64_t vocabs[3][2] = {{7, 256}, {257, 65536}, {65537, 3}};
    const int widths[3] = {1, 2, 4};
    for (int v = 0; v < 3; v++) {
        char path[512];
        snprintf(path, sizeof path, "%s/test_data_compact%d.h5", MTL_TEST_TMP, v);
        const char *names[2] = {"a", "b"}, *dn[1] = {"x"}, *tn[1] = {"y"};
        mtl_error err = {{0}};
        mtl_writer *w = NULL;
        assert_int_equal(mtl_writer_open(&w, path, 2, names, vocabs[v], 1, dn, 1, tn, 0, &err),
                         MTL_OK);
        enum { N = 9000 }; /* more than one 8192-row read chunk */
        static int32_t sp[N * 2];
        static float de[N], la[N];
        for (int i = 0; i < N; i++) {
            sp[2 * i] = (int32_t)((i * 7919) % vocabs[v][0]);
            sp[2 * i + 1] = (int32_t)(vocabs[v][1] - 1 - (i % vocabs[v][1]));
            de[i] = (float)i;
            la[i] = (float)(i % 2);
        }
        assert_int_equal(mtl_writer_append(w, sp, de, la, NULL, N, &err), MTL_OK);
        assert_int_equal(mtl_writer_close(w, NULL, &err), MTL_OK);
        mtl_dataset plain, compact;
        assert_int_equal(mtl_dataset_load(&plain, path, 1, 2, &err), MTL_OK);
        assert_int_equal(mtl_dataset_load_compact(&compact, path, 1, 2, &err), MTL_OK);
        assert_true((compact.sparse_u8 != NULL) == (widths[v] == 1));
        assert_true((compact.sparse_u16 != NULL) == (widths[v] == 2));
        assert_true((compact.sparse != NULL) == (widths[v] == 4));
        mtl_batch a, b;
        assert_int_equal(mtl_batch_alloc(&a, 64, 2, 1, 1, &err), MTL_OK);
        assert_int_equal(mtl_batch_alloc(&b, 64, 2, 1, 1, &err), MTL_OK);
        int64_t rows[64];
        for (int i = 0; i < 64; i++) rows[i] = (i * 4099) % plain.n_rows;
        mtl_batch_gather(&a, &plain, rows, 64);
        mtl_batch_gather(&b, &compact, rows, 64);
        assert_memory_equal(a.sparse, b.sparse, 64 * 2 * sizeof(int32_t));
        for (int i = 0; i < 64; i++) assert_int_equal(b.sparse[2 * i], sp[2 * (4500 + rows[i])]);
        mtl_batch_free(&a);
        mtl_batch_free(&b);
        mtl_dataset_free(&plain);
        mtl_dataset_free(&compact);
    }
}

int main(void) {
    mkdir(MTL_TEST_TMP, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_range),       cmocka_unit_test(test_shard_load),
        cmocka_unit_test(test_roundtrip_full),    cmocka_unit_test(test_roundtrip_no_weights),
        cmocka_unit_test(test_roundtrip_s0),      cmocka_unit_test(test_roundtrip_d0),
        cmocka_unit_test(test_roundtrip_s0_d0),   cmocka_unit_test(test_meta_roundtrip),
        cmocka_unit_test(test_task_weights),      cmocka_unit_test(test_reject_filesystem),
        cmocka_unit_test(test_reject_h5py),       cmocka_unit_test(test_groups_h5py),
        cmocka_unit_test(test_reject_global_row), cmocka_unit_test(test_writer_abort),
        cmocka_unit_test(test_h5py_file),         cmocka_unit_test(test_h5py_reads_writer),
        cmocka_unit_test(test_shuffle),           cmocka_unit_test(test_batch_gather),
        cmocka_unit_test(test_compact_load),      cmocka_unit_test(test_h5py_dtypes),
        cmocka_unit_test(test_h5py_compression),  cmocka_unit_test(test_multi_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
