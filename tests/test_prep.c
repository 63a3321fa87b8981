/* Tests of mtl_prep's library: configs, CSV encoding, splits, --vocab-from,
 * error reporting, determinism, and the synthetic generators. The UCI cases
 * skip when the files are not in MTL_DATA_DIR. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "mtl/data.h"
#include "mtl/prep.h"
#include "mtl/synth.h"

#define ADULT_TRAIN MTL_DATA_DIR "/adult.data"
#define ADULT_TEST MTL_DATA_DIR "/adult.test"
#define CENSUS MTL_DATA_DIR "/census-income.test.gz"
#define TMP MTL_TEST_TMP "/prep"

/* ---- helpers ---- */

static int have(const char *path) {
    return access(path, R_OK) == 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_gzip(const char *path, const char *text) {
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzputs(gz, text), (int)strlen(text));
    gzclose(gz);
}

/* Remove a run's outputs (and their temporaries) so each case starts clean. */
static void clean_dir(const char *dir) {
    const char *names[] = {"train.h5",     "valid.h5",     "test.h5",
                           "train.h5.tmp", "valid.h5.tmp", "test.h5.tmp"};
    char path[1024];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
}

/* The number of files in dir (0 when dir is absent). */
static int count_outputs(const char *dir) {
    const char *names[] = {"train.h5",     "valid.h5",     "test.h5",
                           "train.h5.tmp", "valid.h5.tmp", "test.h5.tmp"};
    char path[1024];
    int n = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        n += have(path);
    }
    return n;
}

static void load(mtl_dataset *ds, const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    mtl_error err = {{0}};
    int rc = mtl_dataset_load(ds, path, 0, 1, &err);
    if (rc != MTL_OK) fail_msg("%s", err.msg);
}

static double positive_rate(const mtl_dataset *ds, int t) {
    double sum = 0.0;
    for (int64_t i = 0; i < ds->n_rows; i++) sum += ds->labels[i * ds->T + t];
    return sum / (double)ds->n_rows;
}

static void assert_dense_unit(const mtl_dataset *ds) {
    for (int64_t i = 0; i < ds->n_rows * ds->D; i++) {
        assert_true(ds->dense[i] >= 0.0f);
        assert_true(ds->dense[i] <= 1.0f);
    }
}

static char *read_all(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return buf;
}

static void assert_same_file(const char *a, const char *b) {
    long na, nb;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    assert_int_equal(na, nb);
    long first = -1;
    for (long i = 0; i < na && first < 0; i++)
        if (x[i] != y[i]) first = i;
    free(x);
    free(y);
    if (first >= 0)
        fail_msg("%s and %s differ at byte %ld (HDF5 object timestamps? the writer needs "
                 "H5Pset_obj_track_times(plist, 0))",
                 a, b, first + 1);
}

static int run_prep(const mtl_prep_options *opt, mtl_error *err) {
    mtl_prep_options o = *opt;
    o.quiet = 1;
    memset(err, 0, sizeof *err);
    return mtl_prep_run(&o, err);
}

static void assert_msg_has(const mtl_error *err, const char *needle) {
    if (!strstr(err->msg, needle)) fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

/* ---- a small hand-made dataset exercising the encoding rules ---- */

static const char *toy_ini = "; toy config\n"
                             "[columns]\n"
                             "names = color, size, const,\n"
                             "    label, score\n"
                             "categorical = color\n"
                             "numeric = size, const\n"
                             "[task.good]\n"
                             "column = label\n"
                             "positive = yes\n"
                             "negative = no\n"
                             "[task.score]\n"
                             "column = score\n"
                             "type = regression\n";

/* UCI quirks: a '|' first line, blank lines, spaces around fields, labels
 * with a trailing '.' */
static const char *toy_train = "|1x3 Cross validator\n"
                               " red, 1, 5, yes, 0.5\n"
                               "\n"
                               "blue , 3, 5, no., 1.5\r\n"
                               "?, 2, 5, yes., 2.5\n"
                               "\n";
static const char *toy_test = "green, 5, 5, no, 3\n"
                              "red, 0, 5, yes, -1\n"
                              "?, 2, 5, no, 0\n";

static int setup_toy(void **state) {
    (void)state;
    mtl_error err;
    assert_int_equal(mtl_mkdir_p(TMP "/toy", &err), MTL_OK);
    write_text(TMP "/toy/toy.ini", toy_ini);
    write_text(TMP "/toy/train.csv", toy_train);
    write_text(TMP "/toy/test.csv", toy_test);
    write_gzip(TMP "/toy/train.csv.gz", toy_train);
    return 0;
}

static void check_toy(const char *dir) {
    mtl_dataset tr, te;
    load(&tr, dir, "train.h5");
    load(&te, dir, "test.h5");
    assert_int_equal(tr.n_rows, 3);
    assert_int_equal(te.n_rows, 3);
    assert_int_equal(tr.S, 1);
    assert_int_equal(tr.D, 2);
    assert_int_equal(tr.T, 2);
    assert_string_equal(tr.task_names[0], "good");
    assert_string_equal(tr.task_names[1], "score");
    /* train vocabulary in strcmp order: ? < blue < red, 0 = OOV */
    assert_int_equal(tr.vocab_sizes[0], 4);
    assert_int_equal(te.vocab_sizes[0], 4);
    const int32_t want_tr[3] = {3, 2, 1}, want_te[3] = {0, 3, 1}; /* green unseen -> 0 */
    const float size_tr[3] = {0.0f, 1.0f, 0.5f}, size_te[3] = {1.0f, 0.0f, 0.5f}; /* clipped */
    const float good_tr[3] = {1, 0, 1}, good_te[3] = {0, 1, 0};
    const float score_tr[3] = {0.5f, 1.5f, 2.5f}, score_te[3] = {3.0f, -1.0f, 0.0f};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr.sparse[i], want_tr[i]);
        assert_int_equal(te.sparse[i], want_te[i]);
        assert_float_equal(tr.dense[i * 2], size_tr[i], 1e-7);
        assert_float_equal(te.dense[i * 2], size_te[i], 1e-7);
        assert_float_equal(tr.dense[i * 2 + 1], 0.0f, 0.0); /* max == min -> 0 */
        assert_float_equal(te.dense[i * 2 + 1], 0.0f, 0.0);
        assert_float_equal(tr.labels[i * 2], good_tr[i], 0.0);
        assert_float_equal(te.labels[i * 2], good_te[i], 0.0);
        assert_float_equal(tr.labels[i * 2 + 1], score_tr[i], 1e-7);
        assert_float_equal(te.labels[i * 2 + 1], score_te[i], 1e-7);
    }
    mtl_dataset_free(&tr);
    mtl_dataset_free(&te);

    /* the fitted encoding is stored in /meta of every file */
    char path[1024];
    snprintf(path, sizeof path, "%s/test.h5", dir);
    mtl_meta meta;
    mtl_error err;
    assert_int_equal(mtl_meta_load(&meta, path, &err), MTL_OK);
    assert_int_equal(meta.S, 1);
    assert_int_equal(meta.vocab_len[0], 4);
    assert_string_equal(meta.vocab[0][0], "<OOV>");
    assert_string_equal(meta.vocab[0][1], "?");
    assert_string_equal(meta.vocab[0][2], "blue");
    assert_string_equal(meta.vocab[0][3], "red");
    assert_int_equal(meta.D, 2);
    assert_float_equal(meta.dense_min[0], 1.0, 0.0);
    assert_float_equal(meta.dense_max[0], 3.0, 0.0);
    mtl_meta_free(&meta);
}

/* Encoding rules on a hand-checked example: sorted vocabulary, OOV = 0,
 * min-max from train with clipping, constant column -> 0, '?' a category,
 * label '.' trimming, regression labels, gzip input. */
static void test_toy_encoding(void **state) {
    (void)state;
    mtl_prep_options o = {.config_path = TMP "/toy/toy.ini",
                          .train_path = TMP "/toy/train.csv",
                          .test_path = TMP "/toy/test.csv",
                          .output_dir = TMP "/toy/out"};
    mtl_error err;
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("%s", err.msg);
    check_toy(o.output_dir);

    o.train_path = TMP "/toy/train.csv.gz";
    o.output_dir = TMP "/toy/out_gz";
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("gzip input: %s", err.msg);
    check_toy(o.output_dir);
}

/* --vocab-from: the stored encoding is applied, not refitted. Encoding the
 * test file as "train" with the first run's encoding must give the codes and
 * scaling of the first run's test.h5. */
static void test_toy_vocab_from(void **state) {
    (void)state;
    mtl_prep_options o = {.config_path = TMP "/toy/toy.ini",
                          .train_path = TMP "/toy/train.csv",
                          .test_path = TMP "/toy/test.csv",
                          .output_dir = TMP "/toy/out_v1"};
    mtl_error err;
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("%s", err.msg);
    mtl_prep_options o2 = o;
    o2.train_path = TMP "/toy/test.csv";
    o2.test_path = TMP "/toy/train.csv";
    o2.output_dir = TMP "/toy/out_v2";
    o2.vocab_from = TMP "/toy/out_v1/train.h5";
    clean_dir(o2.output_dir);
    if (run_prep(&o2, &err)) fail_msg("%s", err.msg);
    mtl_dataset a, b;
    load(&a, o.output_dir, "test.h5");
    load(&b, o2.output_dir, "train.h5");
    assert_int_equal(a.n_rows, b.n_rows);
    assert_int_equal(a.vocab_sizes[0], b.vocab_sizes[0]);
    assert_memory_equal(a.sparse, b.sparse, (size_t)a.n_rows * sizeof(int32_t));
    assert_memory_equal(a.dense, b.dense, (size_t)a.n_rows * 2 * sizeof(float));
    mtl_dataset_free(&a);
    mtl_dataset_free(&b);
}

/* A malformed row stops the run with FILE:LINE: column NAME: and no output
 * file is left, even when only the second file is bad. */
static void test_malformed_rows(void **state) {
    (void)state;
    struct {
        const char *name, *text, *want; /* want: message after "PATH:" */
    } cases[] = {
        {"few.csv", "red, 1, 5, yes, 0.5\nblue, 2, 5\n", "2: column label: missing"},
        {"many.csv", "red, 1, 5, yes, 0.5, 7\n", "1: column score: extra fields"},
        {"nonnum.csv", "\nred, 1, 5, yes, 0.5\nred, 1x, 5, yes, 0.5\n", "3: column size: '1x'"},
        {"qnum.csv", "red, ?, 5, yes, 0.5\n", "1: column size: '?'"},
        {"label.csv", "red, 1, 5, maybe, 0.5\n", "1: column label: label value 'maybe'"},
        {"regr.csv", "red, 1, 5, yes, high\n", "1: column score: 'high' is not a number"},
        {"quote_open.csv", "red, 1, 5, yes, 0.5\n\"red, 1, 5, yes, 0.5\n",
         "2: column color: quoted field not closed on this line"},
        {"quote_inside.csv", "red, 1, 5, y\"es, 0.5\n",
         "1: column label: '\"' inside an unquoted field"},
        {"quote_after.csv", "\"red\" x, 1, 5, yes, 0.5\n",
         "1: column color: text after the closing quote"},
        {"quote_extra.csv", "red, 1, 5, yes, 0.5, \"x\n",
         "1: column score: field 1 after it: quoted field not closed"},
        {"quoted_many.csv", "red, 1, 5, yes, 0.5, \"x,y\"\n", "1: column score: extra fields"},
        {"empty.csv", "", " no data rows"},
        {"blank.csv", "\n\n  \n", " no data rows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024], want[1200];
        snprintf(path, sizeof path, TMP "/toy/%s", cases[i].name);
        write_text(path, cases[i].text);
        snprintf(want, sizeof want, "%s:%s", path, cases[i].want);
        /* bad as the train file, and as the test file after a good train */
        for (int as_test = 0; as_test < 2; as_test++) {
            mtl_prep_options o = {.config_path = TMP "/toy/toy.ini",
                                  .train_path = as_test ? TMP "/toy/train.csv" : path,
                                  .test_path = as_test ? path : TMP "/toy/test.csv",
                                  .output_dir = TMP "/toy/out_bad"};
            clean_dir(o.output_dir);
            mtl_error err;
            assert_int_equal(run_prep(&o, &err), MTL_ERR);
            assert_msg_has(&err, want);
            assert_int_equal(count_outputs(o.output_dir), 0);
        }
    }
    /* a missing file */
    mtl_prep_options o = {.config_path = TMP "/toy/toy.ini",
                          .input_path = TMP "/toy/no_such.csv",
                          .output_dir = TMP "/toy/out_bad"};
    mtl_error err;
    assert_int_equal(run_prep(&o, &err), MTL_ERR);
    assert_msg_has(&err, TMP "/toy/no_such.csv: cannot open");
    assert_int_equal(count_outputs(o.output_dir), 0);
    /* a truncated gzip file */
    write_gzip(TMP "/toy/cut.csv.gz", toy_train);
    long len;
    char *gz = read_all(TMP "/toy/cut.csv.gz", &len);
    FILE *f = fopen(TMP "/toy/cut.csv.gz", "wb");
    assert_non_null(f);
    fwrite(gz, 1, (size_t)len - 12, f);
    fclose(f);
    free(gz);
    o.input_path = TMP "/toy/cut.csv.gz";
    assert_int_equal(run_prep(&o, &err), MTL_ERR);
    assert_msg_has(&err, TMP "/toy/cut.csv.gz: read error");
    assert_int_equal(count_outputs(o.output_dir), 0);
}

/* mtl_csv_split: RFC 4180 quoting within a line. */
static void test_csv_split(void **state) {
    (void)state;
    struct {
        const char *line;
        int n;               /* fields, or -1 - i: field i malformed */
        const char *want[5]; /* the fields (up to 5) */
    } cases[] = {
        {"a,b,c", 3, {"a", "b", "c"}},
        {" a , b\t,\tc ", 3, {"a", "b", "c"}},
        {"", 1, {""}},
        {",", 2, {"", ""}},
        {"a,,c,", 4, {"a", "", "c", ""}},
        {"\"a,b\",c", 2, {"a,b", "c"}},
        {" \"a,b\" , c", 2, {"a,b", "c"}},
        {"\" x \",y", 2, {" x ", "y"}},                   /* kept as written inside quotes */
        {"\"say \"\"hi\"\"\",2", 2, {"say \"hi\"", "2"}}, /* "" is one quote */
        {"\"\",\"\"\"\"\"\"", 2, {"", "\"\""}},
        {"1,\"Washington, D.C.\",\"x\"", 3, {"1", "Washington, D.C.", "x"}},
        {"\"caf\xc3\xa9, \xe2\x82\xac\",b", 2, {"caf\xc3\xa9, \xe2\x82\xac", "b"}},
        {"a,\"b", -2, {0}},
        {"a,b\"c\",d", -2, {0}},
        {"\"a\"b,c", -1, {0}},
        {"a,b,\"c\" \"d\"", -3, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char line[128];
        char *field[8];
        const char *why = NULL;
        snprintf(line, sizeof line, "%s", cases[i].line);
        int n = mtl_csv_split(line, field, 8, &why);
        if (n != cases[i].n) fail_msg("'%s': %d fields, want %d", cases[i].line, n, cases[i].n);
        if (n < 0) {
            assert_non_null(why);
            continue;
        }
        for (int k = 0; k < n && k < 5; k++)
            if (strcmp(field[k], cases[i].want[k]) != 0)
                fail_msg("'%s': field %d is '%s', want '%s'", cases[i].line, k, field[k],
                         cases[i].want[k]);
    }
    /* fields past cap are counted, not stored */
    char line[] = "a,b,c,d";
    char *two[2];
    const char *why;
    assert_int_equal(mtl_csv_split(line, two, 2, &why), 4);
    assert_string_equal(two[1], "b");
}

/* Quoted fields as pandas and spreadsheets write them: a comma inside
 * quotes is data, "" a quote; the row has the config's columns. */
static void test_quoted_csv(void **state) {
    (void)state;
    write_text(TMP "/toy/quoted.csv", "\"red, dark\", 1, 5, yes, 0.5\n"
                                      "\"say \"\"hi\"\"\",3,5,\"no\",\"1.5\"\n"
                                      "red, 2, 5, yes, 2.5\n");
    mtl_prep_options o = {.config_path = TMP "/toy/toy.ini",
                          .train_path = TMP "/toy/quoted.csv",
                          .test_path = TMP "/toy/quoted.csv",
                          .output_dir = TMP "/toy/out_quoted"};
    clean_dir(o.output_dir);
    mtl_error err;
    if (run_prep(&o, &err) != MTL_OK) fail_msg("%s", err.msg);
    mtl_meta meta;
    assert_int_equal(mtl_meta_load(&meta, TMP "/toy/out_quoted/train.h5", &err), MTL_OK);
    assert_int_equal(meta.vocab_len[0], 4); /* <OOV>, red, red, dark, say "hi" (strcmp order) */
    assert_string_equal(meta.vocab[0][1], "red");
    assert_string_equal(meta.vocab[0][2], "red, dark");
    assert_string_equal(meta.vocab[0][3], "say \"hi\"");
    mtl_meta_free(&meta);
    mtl_dataset tr;
    load(&tr, TMP "/toy/out_quoted", "train.h5");
    assert_int_equal(tr.n_rows, 3);
    const int32_t want[3] = {2, 3, 1};
    const float good[3] = {1, 0, 1}, score[3] = {0.5f, 1.5f, 2.5f};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr.sparse[i], want[i]);
        assert_float_equal(tr.labels[i * 2], good[i], 0.0);
        assert_float_equal(tr.labels[i * 2 + 1], score[i], 1e-7);
    }
    mtl_dataset_free(&tr);
}

/* Config errors name the file, line and key. */
static void test_config_errors(void **state) {
    (void)state;
    struct {
        const char *text, *want;
    } cases[] = {
        {"[columns]\nnames = a, b\ncategorical = a\nnumerc = b\n", ":4: numerc: unknown"},
        {"[columns]\nnames = a, b, c\ncategorical = a\n[task.t]\ncolumn = b\ntype = regression\n",
         ": column c: no role"},
        {"[columns]\nnames = a, b\ncategorical = a\n\n[task.t]\ncolumn = z\n",
         ":6: column: unknown column 'z'"},
        {"[columns]\nnames = a, b\ncategorical = a, q\n", ":3: categorical: unknown column 'q'"},
        {"[columns]\nnames = a, b\ncategorical = a\nnumeric = a\n",
         ":4: numeric: column 'a' already has a role"},
        {"[columns]\nnames = a, b\ncategorical = a\n[task.t]\ncolumn = b\npositive = 1\n",
         ":5: [task.t]: a binary task needs both positive and negative values"},
        {"[columns]\nnames = a, b\ncategorical = a, b\n[task.t]\ncolumn = b\ntype = regression\n",
         ":5: column: 'b' is task t's label and cannot also be a feature"},
        {"[columns]\nnames = a, b\ncategorical = a\n[task.t]\ncolumn = b\ntype = ordinal\n",
         ":6: type: 'ordinal' is not binary or regression"},
        {"[colums]\nnames = a\n", ":2: [colums]: unknown section"},
        {"[columns]\nnames = a, b\ncategorical = a\n[task.t]\ncolumn = b\n"
         "positive = x\nnegative = y, x.\n",
         ":7: negative: 'x' is also positive"},
        {"[columns]\nnames = a\nthis line has no equals sign\n", ":3: syntax error"},
        {"[columns]\nnames = a\ncategorical = a\n", ": no tasks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = TMP "/toy/bad.ini";
        write_text(path, cases[i].text);
        mtl_prep_config cfg;
        mtl_error err = {{0}};
        assert_int_equal(mtl_prep_config_load(&cfg, path, &err), MTL_ERR);
        char want[1200];
        snprintf(want, sizeof want, "%s%s", path, cases[i].want);
        assert_msg_has(&err, want);
    }
    /* a line longer than inih's buffer is refused, not split in two */
    char text[1024] = "[columns]\nnames = a";
    for (int i = 0; i < 60; i++) strcat(text, ", col");
    strcat(text, "\n");
    write_text(TMP "/toy/long.ini", text);
    mtl_prep_config cfg;
    mtl_error err = {{0}};
    assert_int_equal(mtl_prep_config_load(&cfg, TMP "/toy/long.ini", &err), MTL_ERR);
    assert_msg_has(&err, TMP "/toy/long.ini:2: line longer than");
    /* the shipped configs load, with the documented shapes */
    struct {
        const char *file;
        int S, D, T, n_cols;
    } shipped[] = {{MTL_SOURCE_DIR "/configs/census.ini", 29, 11, 2, 42},
                   {MTL_SOURCE_DIR "/configs/census_education.ini", 28, 11, 2, 42},
                   {MTL_SOURCE_DIR "/configs/adult.ini", 8, 5, 2, 15}};
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++) {
        if (mtl_prep_config_load(&cfg, shipped[i].file, &err)) fail_msg("%s", err.msg);
        assert_int_equal(cfg.S, shipped[i].S);
        assert_int_equal(cfg.D, shipped[i].D);
        assert_int_equal(cfg.T, shipped[i].T);
        assert_int_equal(cfg.n_cols, shipped[i].n_cols);
        mtl_prep_config_free(&cfg);
    }
    /* one config serves both tools: mtl_dist's sections are skipped, whatever
     * keys they hold, wherever they are */
    write_text(TMP "/toy/shared.ini", "[train]\nlr = 0.1\nnot_a_prep_key = 1\n[columns]\n"
                                      "names = a, b\ncategorical = a\n[train.esmm]\n"
                                      "ctr_task = t\n[task.t]\ncolumn = b\npositive = 1\n"
                                      "negative = 0\n");
    if (mtl_prep_config_load(&cfg, TMP "/toy/shared.ini", &err)) fail_msg("%s", err.msg);
    assert_int_equal(cfg.S, 1);
    assert_int_equal(cfg.T, 1);
    mtl_prep_config_free(&cfg);
}

static void test_split_counts(void **state) {
    (void)state;
    double f[3];
    int n;
    int64_t c[3];
    mtl_error err;
    assert_int_equal(mtl_split_parse("0.6,0.2,0.2", f, &n, &err), MTL_OK);
    assert_int_equal(n, 3);
    mtl_split_counts(99762, f, n, c);
    assert_int_equal(c[0], 59857);
    assert_int_equal(c[1], 19952);
    assert_int_equal(c[2], 19953);
    assert_int_equal(mtl_split_parse("0.57,0.43", f, &n, &err), MTL_OK);
    mtl_split_counts(100, f, n, c);
    assert_int_equal(c[0], 57); /* 0.57 * 100 = 56.99999999999999 in binary */
    assert_int_equal(c[1], 43);
    assert_string_equal(mtl_split_file(1, 3), "valid.h5");
    assert_string_equal(mtl_split_file(1, 2), "test.h5");
    const char *bad[] = {"0.5,0.2", "1", "0.5,x", "0.5,0.5,", "0,1", "0.25,0.25,0.25,0.25",
                         "-0.5,1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(mtl_split_parse(bad[i], f, &n, &err), MTL_ERR);
}

/* ---- the UCI files ---- */

static void test_adult(void **state) {
    (void)state;
    if (!have(ADULT_TRAIN) || !have(ADULT_TEST)) skip();
    mtl_prep_options o = {.config_path = MTL_SOURCE_DIR "/configs/adult.ini",
                          .train_path = ADULT_TRAIN,
                          .test_path = ADULT_TEST,
                          .output_dir = TMP "/adult"};
    mtl_error err;
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("%s", err.msg);
    assert_int_equal(count_outputs(o.output_dir), 2); /* no valid.h5 */
    mtl_dataset tr, te;
    load(&tr, o.output_dir, "train.h5");
    load(&te, o.output_dir, "test.h5");
    assert_int_equal(tr.n_rows, 32561);
    assert_int_equal(te.n_rows, 16281);
    assert_int_equal(tr.S, 8);
    assert_int_equal(tr.D, 5);
    assert_int_equal(tr.T, 2);
    assert_int_equal(tr.S * 4 + tr.D, 37); /* model input with 4-dim embeddings */
    assert_string_equal(tr.task_names[0], "income");
    assert_string_equal(tr.task_names[1], "marital");
    assert_string_equal(tr.sparse_names[0], "age");
    /* positive rates: 7,841 / 32,561 earn >50K; 10,683 never married */
    assert_float_equal(positive_rate(&tr, 0), 0.2408, 0.001);
    assert_float_equal(positive_rate(&tr, 1), 0.3281, 0.001);
    assert_float_equal(positive_rate(&te, 0), 0.2362, 0.001); /* ">50K." matched */
    assert_dense_unit(&tr);
    assert_dense_unit(&te);
    for (int s = 0; s < tr.S; s++) assert_true(tr.vocab_sizes[s] >= 2);
    mtl_dataset_free(&tr);
    mtl_dataset_free(&te);
}

static void test_census(void **state) {
    (void)state;
    if (!have(CENSUS)) skip();
    mtl_prep_options o = {.config_path = MTL_SOURCE_DIR "/configs/census.ini",
                          .input_path = CENSUS,
                          .n_split = 3,
                          .split = {0.6, 0.2, 0.2},
                          .output_dir = TMP "/census"};
    mtl_error err;
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("%s", err.msg);
    mtl_dataset ds[3];
    const char *files[3] = {"train.h5", "valid.h5", "test.h5"};
    const int64_t rows[3] = {59857, 19952, 19953};
    for (int p = 0; p < 3; p++) {
        load(&ds[p], o.output_dir, files[p]);
        assert_int_equal(ds[p].n_rows, rows[p]);
        assert_int_equal(ds[p].S, 29);
        assert_int_equal(ds[p].D, 11); /* 42 columns - 29 categorical - 2 labels */
        assert_int_equal(ds[p].T, 2);
        assert_dense_unit(&ds[p]);
    }
    int64_t total = 0;
    for (int s = 0; s < 29; s++) {
        assert_true(ds[0].vocab_sizes[s] >= 2);
        total += ds[0].vocab_sizes[s];
    }
    assert_int_equal(total, 514); /* 485 categories seen in train + 29 OOV slots */
    assert_float_equal(positive_rate(&ds[0], 0), 0.062, 0.003);
    assert_float_equal(positive_rate(&ds[0], 1), 0.432, 0.005);
    /* the train split has every code of every field; a valid/test category
     * unseen in train is code 0 (det_hh_fam_stat has rare values) */
    int64_t oov = 0;
    for (int p = 1; p < 3; p++)
        for (int64_t i = 0; i < ds[p].n_rows * 29; i++) oov += ds[p].sparse[i] == 0;
    for (int64_t i = 0; i < ds[0].n_rows * 29; i++) assert_int_not_equal(ds[0].sparse[i], 0);
    printf("census: %lld OOV values in valid+test\n", (long long)oov);

    /* --vocab-from the train file reproduces the same encoding exactly */
    mtl_prep_options o2 = o;
    o2.output_dir = TMP "/census_vocab";
    o2.vocab_from = TMP "/census/train.h5";
    clean_dir(o2.output_dir);
    if (run_prep(&o2, &err)) fail_msg("%s", err.msg);
    for (int p = 0; p < 3; p++) {
        mtl_dataset b;
        load(&b, o2.output_dir, files[p]);
        assert_int_equal(b.n_rows, ds[p].n_rows);
        assert_memory_equal(b.vocab_sizes, ds[p].vocab_sizes, 29 * sizeof(int64_t));
        assert_memory_equal(b.sparse, ds[p].sparse, (size_t)b.n_rows * 29 * sizeof(int32_t));
        assert_memory_equal(b.dense, ds[p].dense, (size_t)b.n_rows * 11 * sizeof(float));
        assert_memory_equal(b.labels, ds[p].labels, (size_t)b.n_rows * 2 * sizeof(float));
        mtl_dataset_free(&b);
    }
    for (int p = 0; p < 3; p++) mtl_dataset_free(&ds[p]);

    /* --vocab-from a file of another config is refused */
    if (have(TMP "/adult/train.h5")) {
        o2.vocab_from = TMP "/adult/train.h5";
        clean_dir(o2.output_dir);
        assert_int_equal(run_prep(&o2, &err), MTL_ERR);
        assert_msg_has(&err, TMP "/adult/train.h5: /meta has 8 categorical");
        assert_int_equal(count_outputs(o2.output_dir), 0);
    }
}

/* Same inputs and options -> byte-identical files, also when shuffled. */
static void test_deterministic(void **state) {
    (void)state;
    if (!have(CENSUS)) skip();
    const char *dirs[2] = {TMP "/det1", TMP "/det2"};
    for (int r = 0; r < 2; r++) {
        mtl_prep_options o = {.config_path = MTL_SOURCE_DIR "/configs/census.ini",
                              .input_path = CENSUS,
                              .n_split = 2,
                              .split = {0.8, 0.2},
                              .shuffle = 1,
                              .shuffle_seed = 7,
                              .output_dir = dirs[r]};
        mtl_error err;
        clean_dir(o.output_dir);
        if (run_prep(&o, &err)) fail_msg("%s", err.msg);
        if (r == 0) sleep(1); /* so that a stored timestamp would differ */
    }
    assert_same_file(TMP "/det1/train.h5", TMP "/det2/train.h5");
    assert_same_file(TMP "/det1/test.h5", TMP "/det2/test.h5");
    mtl_dataset a;
    load(&a, dirs[0], "train.h5");
    assert_int_equal(a.n_rows, 79809); /* floor(0.8 * 99,762) */
    mtl_dataset_free(&a);
}

/* ---- synthetic data ---- */

static double pearson(const double *v, int64_t n, int a, int b) {
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) ma += v[i * 2 + a], mb += v[i * 2 + b];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i * 2 + a] - ma, y = v[i * 2 + b] - mb;
        sab += x * y, saa += x * x, sbb += y * y;
    }
    return sab / sqrt(saa * sbb);
}

static void test_synth_mmoe(void **state) {
    (void)state;
    const double ps[2] = {0.5, 0.9};
    const int64_t n = 20000;
    float *x = malloc((size_t)n * MTL_MMOE_D * sizeof(float));
    float *y = malloc((size_t)n * 2 * sizeof(float));
    double *lin = malloc((size_t)n * 2 * sizeof(double));
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(lin);
    for (int k = 0; k < 2; k++) {
        mtl_rng rng;
        mtl_rng_seed(&rng, 42 + (uint64_t)k);
        mtl_mmoe_model m;
        mtl_mmoe_init(&m, ps[k], &rng);
        double n0 = 0, n1 = 0, dot = 0;
        for (int j = 0; j < MTL_MMOE_D; j++) {
            n0 += m.w[0][j] * m.w[0][j];
            n1 += m.w[1][j] * m.w[1][j];
            dot += m.w[0][j] * m.w[1][j];
        }
        assert_float_equal(n0, 1.0, 1e-12); /* c = 1 */
        assert_float_equal(n1, 1.0, 1e-12);
        assert_float_equal(dot, ps[k], 1e-12); /* cos(w1, w2) = p */
        mtl_mmoe_sample(&m, &rng, n, x, y, lin);
        double r = pearson(lin, n, 0, 1);
        printf("mmoe p=%.1f: corr of linear parts %.4f\n", ps[k], r);
        assert_float_equal(r, ps[k], 0.02);
    }
    free(x);
    free(y);
    free(lin);

    mtl_synth_mmoe_options o = {
        .rows = 1000, .correlation = 0.9, .seed = 1, .output_dir = TMP "/mmoe", .quiet = 1};
    mtl_error err;
    clean_dir(o.output_dir);
    if (mtl_synth_mmoe(&o, &err)) fail_msg("%s", err.msg);
    const char *files[3] = {"train.h5", "valid.h5", "test.h5"};
    const int64_t rows[3] = {800, 100, 100};
    for (int p = 0; p < 3; p++) {
        mtl_dataset ds;
        load(&ds, o.output_dir, files[p]);
        assert_int_equal(ds.n_rows, rows[p]);
        assert_int_equal(ds.S, 0);
        assert_int_equal(ds.D, 100);
        assert_int_equal(ds.T, 2);
        assert_string_equal(ds.task_names[0], "y1");
        assert_string_equal(ds.task_names[1], "y2");
        mtl_dataset_free(&ds);
    }
}

static void test_synth_ctr(void **state) {
    (void)state;
    mtl_synth_ctr_options o = {.rows = 25000,
                               .sparse_fields = 6,
                               .vocab = 500,
                               .dense_fields = 3,
                               .tasks = 2,
                               .seed = 3,
                               .output_dir = TMP "/ctr",
                               .chunk_rows = 1000, /* 20 appends for train */
                               .quiet = 1};
    mtl_error err;
    clean_dir(o.output_dir);
    if (mtl_synth_ctr(&o, &err)) fail_msg("%s", err.msg);
    const char *files[3] = {"train.h5", "valid.h5", "test.h5"};
    const int64_t rows[3] = {20000, 2500, 2500};
    for (int p = 0; p < 3; p++) {
        mtl_dataset ds;
        load(&ds, o.output_dir, files[p]);
        assert_int_equal(ds.n_rows, rows[p]);
        assert_int_equal(ds.S, 6);
        assert_int_equal(ds.D, 3);
        assert_int_equal(ds.T, 2);
        assert_string_equal(ds.task_names[0], "click");
        assert_string_equal(ds.task_names[1], "conversion");
        assert_int_equal(ds.vocab_sizes[0], 501);
        assert_dense_unit(&ds);
        int64_t top = 0;
        for (int64_t i = 0; i < ds.n_rows; i++) {
            for (int s = 0; s < 6; s++) assert_true(ds.sparse[i * 6 + s] >= 1);
            top += ds.sparse[i * 6] == 1;
            float c = ds.labels[i * 2], v = ds.labels[i * 2 + 1];
            assert_true(c == 0.0f || c == 1.0f);
            assert_true(v == 0.0f || v == 1.0f);
            assert_true(v <= c); /* a conversion needs a click */
        }
        for (int t = 0; t < 2; t++) {
            double rate = positive_rate(&ds, t);
            assert_true(rate > 0.01 && rate < 0.99);
        }
        /* Zipf(1.1) over 500 values: the top value has P = 1/H = ~0.19 */
        double ptop = (double)top / (double)ds.n_rows;
        assert_true(ptop > 0.15 && ptop < 0.23);
        mtl_dataset_free(&ds);
    }
}

int main(void) {
    mtl_error err;
    if (mtl_mkdir_p(TMP, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_toy_encoding, setup_toy),
        cmocka_unit_test_setup(test_toy_vocab_from, setup_toy),
        cmocka_unit_test_setup(test_malformed_rows, setup_toy),
        cmocka_unit_test_setup(test_config_errors, setup_toy),
        cmocka_unit_test(test_csv_split),
        cmocka_unit_test_setup(test_quoted_csv, setup_toy),
        cmocka_unit_test(test_split_counts),
        cmocka_unit_test(test_adult),
        cmocka_unit_test(test_census),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_synth_mmoe),
        cmocka_unit_test(test_synth_ctr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
