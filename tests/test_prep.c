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
#include "mtl/util.h"

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
    assert_int_equal(mtl_mkdir_p(TMP "/toy", "directory", &err), MTL_OK);
    write_text(TMP "/toy/toy.ini", toy_ini);
    write_text(TMP "/toy/train.csv", toy_train);
    write_text(TMP "/toy/test.csv", toy_test);
    write_gzip(TMP "/toy/train.csv.gz", toy_train);
    return 0;
}

/* The toy train and test files through `config` into `out`, run clean. */
static int run_toy(mtl_prep_options *o, const char *config, const char *out, mtl_error *err) {
    *o = (mtl_prep_options){.config_path = config,
                            .train_path = TMP "/toy/train.csv",
                            .test_path = TMP "/toy/test.csv",
                            .output_dir = out};
    clean_dir(out);
    return run_prep(o, err);
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
    mtl_prep_options o;
    mtl_error err;
    if (run_toy(&o, TMP "/toy/toy.ini", TMP "/toy/out", &err)) fail_msg("%s", err.msg);
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
    mtl_prep_options o;
    mtl_error err;
    if (run_toy(&o, TMP "/toy/toy.ini", TMP "/toy/out_v1", &err)) fail_msg("%s", err.msg);
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

/* ---- hashed categoricals ---- */

/* Known buckets, computed independently of this code with python3-xxhash:
 *   xxhash.xxh3_64_intdigest(value, seed=xxhash.xxh3_64_intdigest(field)) % n
 * (the seed of "education", 0xebfff372318d49de, also by `printf education |
 * xxhsum -H3`). */
static void test_hash_id(void **state) {
    (void)state;
    struct {
        const char *field, *value;
        int64_t n, want;
    } known[] = {
        {"education", "Bachelors degree(BA AB BS)", 1000, 681},
        {"color", "red", 1000, 561},
        {"color", "blue", 1000, 572},
        {"color", "green", 1000, 995},
        {"color", "?", 1000, 707},
        {"color", "", 1000, 137},
        {"color", "red", 7, 3},
        {"size", "red", 1000, 483}, /* the field name is part of the hash */
        {"user_id", "u123456789", 1000000, 276104},
        {"color", "red", 1, 0},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        int64_t got = mtl_hash_id(known[i].field, known[i].value, known[i].n);
        if (got != known[i].want)
            fail_msg("mtl_hash_id(%s, '%s', %lld) = %lld, expected %lld", known[i].field,
                     known[i].value, (long long)known[i].n, (long long)got,
                     (long long)known[i].want);
    }
}

/* toy_ini with its categorical column hashed (a second [columns] section adds
 * to the first) */
static const char *hashed_key = "[columns]\nhash_buckets = color:%d\n";

static void write_hashed_ini(const char *path, int buckets) {
    char text[1024];
    int n = snprintf(text, sizeof text, "%s", toy_ini);
    snprintf(text + n, sizeof text - (size_t)n, hashed_key, buckets);
    write_text(path, text);
}

/* A hashed field: vocab_size = N, no fitted vocabulary, no OOV (a value only
 * in test gets its bucket), the same id for a value in every file and run
 * (another input file, another row order), hash_buckets in /meta, and
 * --vocab-from checks the bucket count. */
static void test_hashed_field(void **state) {
    (void)state;
    write_hashed_ini(TMP "/toy/hashed.ini", 1000);
    mtl_prep_options o;
    mtl_error err;
    if (run_toy(&o, TMP "/toy/hashed.ini", TMP "/toy/out_hash", &err)) fail_msg("%s", err.msg);
    mtl_dataset tr, te;
    load(&tr, o.output_dir, "train.h5");
    load(&te, o.output_dir, "test.h5");
    assert_int_equal(tr.vocab_sizes[0], 1000);
    assert_int_equal(te.vocab_sizes[0], 1000);
    /* red, blue, ? / green, red, ? (bucket values: test_hash_id) */
    const int32_t want_tr[3] = {561, 572, 707}, want_te[3] = {995, 561, 707};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr.sparse[i], want_tr[i]);
        assert_int_equal(te.sparse[i], want_te[i]);
    }
    mtl_dataset_free(&tr);
    mtl_dataset_free(&te);
    mtl_meta meta;
    assert_int_equal(mtl_meta_load(&meta, TMP "/toy/out_hash/test.h5", &err), MTL_OK);
    assert_int_equal(meta.S, 1);
    assert_int_equal(meta.hash_buckets[0], 1000);
    assert_int_equal(meta.vocab_len[0], 0);
    mtl_meta_free(&meta);

    /* another file in another run, shuffled: "green" (row 0 of test.csv
     * above) and "red" keep their ids */
    write_text(TMP "/toy/other.csv", "green, 9, 5, no, 1\nred, 8, 5, yes, 2\npurple, 7, 5, no, 3\n"
                                     "green, 6, 5, yes, 4\n");
    mtl_prep_options o2 = {.config_path = TMP "/toy/hashed.ini",
                           .input_path = TMP "/toy/other.csv",
                           .n_split = 2,
                           .split = {0.5, 0.5},
                           .shuffle = 1,
                           .shuffle_seed = 3,
                           .output_dir = TMP "/toy/out_hash2"};
    clean_dir(o2.output_dir);
    if (run_prep(&o2, &err)) fail_msg("%s", err.msg);
    int seen_green = 0, seen_red = 0;
    const char *files[2] = {"train.h5", "test.h5"};
    for (int p = 0; p < 2; p++) {
        mtl_dataset ds;
        load(&ds, o2.output_dir, files[p]);
        for (int64_t i = 0; i < ds.n_rows; i++) {
            int32_t id = ds.sparse[i];
            float score = ds.labels[i * 2 + 1];
            if (score == 1.0f || score == 4.0f) seen_green++, assert_int_equal(id, 995);
            if (score == 2.0f) seen_red++, assert_int_equal(id, 561);
            if (score == 3.0f) assert_int_equal(id, (int32_t)mtl_hash_id("color", "purple", 1000));
        }
        mtl_dataset_free(&ds);
    }
    assert_int_equal(seen_green, 2);
    assert_int_equal(seen_red, 1);

    /* --vocab-from a hashed file: same ids; a config with another bucket
     * count, or without hashing, is refused */
    mtl_prep_options o3 = o;
    o3.output_dir = TMP "/toy/out_hash3";
    o3.vocab_from = TMP "/toy/out_hash/train.h5";
    clean_dir(o3.output_dir);
    if (run_prep(&o3, &err)) fail_msg("%s", err.msg);
    mtl_dataset a, b;
    load(&a, o.output_dir, "test.h5");
    load(&b, o3.output_dir, "test.h5");
    assert_memory_equal(a.sparse, b.sparse, (size_t)a.n_rows * sizeof(int32_t));
    mtl_dataset_free(&a);
    mtl_dataset_free(&b);
    write_hashed_ini(TMP "/toy/hashed1001.ini", 1001);
    o3.config_path = TMP "/toy/hashed1001.ini";
    clean_dir(o3.output_dir);
    assert_int_equal(run_prep(&o3, &err), MTL_ERR);
    assert_msg_has(&err, "field color: hashed into 1000 buckets there");
    assert_int_equal(count_outputs(o3.output_dir), 0);
    o3.config_path = TMP "/toy/toy.ini";
    assert_int_equal(run_prep(&o3, &err), MTL_ERR);
    assert_msg_has(&err, "field color: hashed into 1000 buckets there");
    o3.config_path = TMP "/toy/hashed.ini";
    o3.vocab_from = TMP "/toy/out_v1/train.h5"; /* a vocabulary file (test_toy_vocab_from) */
    if (have(o3.vocab_from)) {
        assert_int_equal(run_prep(&o3, &err), MTL_ERR);
        assert_msg_has(&err, "field color: hashed into 0 buckets there");
    }
}

/* ---- multi-valued columns (multi_valued = COL:SEP) ---- */

static const char *movies_ini = "[columns]\n"
                                "names = user, genres, tags, liked\n"
                                "categorical = user, genres, tags\n"
                                "multi_valued = genres:|, tags:;:sum\n"
                                "hash_buckets = tags:100\n"
                                "[task.like]\n"
                                "column = liked\n"
                                "positive = 1\n"
                                "negative = 0\n";
/* empty fields, spaces, an empty item, a repeated item, a quoted field */
static const char *movies_train = "u1, Comedy|Action, a;b, 1\n"
                                  "u2, , , 0\n"
                                  "u1, Drama | Comedy||Comedy, b, 1\n"
                                  "u3, \"Action\", ;a;, 0\n";
static const char *movies_test = "u2, Western|Drama, c, 1\n";

/* Vocabulary lists: items of the train rows in strcmp order after OOV; a
 * hashed list: mtl_hash_id per item; /sparse keeps the single-valued field. */
static void test_multi_valued(void **state) {
    (void)state;
    mtl_error err;
    assert_int_equal(mtl_mkdir_p(TMP "/movies", "directory", &err), MTL_OK);
    write_text(TMP "/movies/m.ini", movies_ini);
    write_text(TMP "/movies/train.csv", movies_train);
    write_text(TMP "/movies/test.csv", movies_test);
    mtl_prep_options o = {.config_path = TMP "/movies/m.ini",
                          .train_path = TMP "/movies/train.csv",
                          .test_path = TMP "/movies/test.csv",
                          .output_dir = TMP "/movies/out"};
    clean_dir(o.output_dir);
    if (run_prep(&o, &err)) fail_msg("%s", err.msg);
    mtl_dataset tr, te;
    load(&tr, o.output_dir, "train.h5");
    load(&te, o.output_dir, "test.h5");
    assert_int_equal(tr.S, 1);
    assert_string_equal(tr.sparse_names[0], "user");
    assert_int_equal(tr.M, 2);
    /* /multi in name order: genres, tags */
    assert_string_equal(tr.multi_names[0], "genres");
    assert_string_equal(tr.multi_names[1], "tags");
    assert_int_equal(tr.multi_mean[0], 1);
    assert_int_equal(tr.multi_mean[1], 0);
    /* genres: <OOV>, Action, Comedy, Drama */
    assert_int_equal(tr.multi_vocab[0], 4);
    assert_int_equal(tr.multi_vocab[1], 100);
    const int64_t g_off[5] = {0, 2, 2, 5, 6};
    const int32_t g_ids[6] = {2, 1, 3, 2, 2, 1};
    assert_memory_equal(tr.multi_off[0], g_off, sizeof g_off);
    assert_memory_equal(tr.multi_ids[0], g_ids, sizeof g_ids);
    const char *tags[4] = {"a", "b", "b", "a"}; /* a;b / (empty) / b / ;a; */
    const int64_t t_off[5] = {0, 2, 2, 3, 4};
    assert_memory_equal(tr.multi_off[1], t_off, sizeof t_off);
    for (int k = 0; k < 4; k++)
        assert_int_equal(tr.multi_ids[1][k], (int32_t)mtl_hash_id("tags", tags[k], 100));
    /* test: Western unseen -> OOV 0 */
    const int64_t te_off[2] = {0, 2};
    const int32_t te_ids[2] = {0, 3};
    assert_memory_equal(te.multi_off[0], te_off, sizeof te_off);
    assert_memory_equal(te.multi_ids[0], te_ids, sizeof te_ids);
    assert_int_equal(te.multi_ids[1][0], (int32_t)mtl_hash_id("tags", "c", 100));
    mtl_dataset_free(&tr);
    mtl_dataset_free(&te);
    /* the vocabulary in /meta, in the config's categorical order */
    mtl_meta meta;
    assert_int_equal(mtl_meta_load(&meta, TMP "/movies/out/train.h5", &err), MTL_OK);
    assert_int_equal(meta.S, 3);
    assert_int_equal(meta.vocab_len[1], 4);
    assert_string_equal(meta.vocab[1][3], "Drama");
    assert_int_equal(meta.hash_buckets[2], 100);
    mtl_meta_free(&meta);
    /* --vocab-from does not take lists yet: an error, no output */
    o.vocab_from = TMP "/movies/out/train.h5";
    o.output_dir = TMP "/movies/out2";
    clean_dir(o.output_dir);
    assert_int_equal(run_prep(&o, &err), MTL_ERR);
    assert_msg_has(&err, "--vocab-from: not supported with multi_valued columns");
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
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = a\n",
         ":4: hash_buckets: 'a' is not NAME:BUCKETS"},
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = a:0\n",
         ":4: hash_buckets: 'a:0': the bucket count must be an integer in 1..2147483647"},
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = a:2147483648\n",
         ":4: hash_buckets: 'a:2147483648': the bucket count"},
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = a:1e6\n",
         ":4: hash_buckets: 'a:1e6': the bucket count"},
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = z:10\n",
         ":4: hash_buckets: unknown column 'z'"},
        {"[columns]\nnames = a, b\ncategorical = a\nnumeric = b\nhash_buckets = a:5,\n"
         "  b:10\n",
         ":6: hash_buckets: column 'b' is not categorical"},
        {"[columns]\nnames = a, b\ncategorical = a\nhash_buckets = a:5\nhash_buckets = a:6\n",
         ":5: hash_buckets: column 'a' listed twice"},
        {"[columns]\nnames = a, b\ncategorical = a\nmulti_valued = a\n",
         ":4: multi_valued: 'a' is not NAME:SEP or NAME:SEP:sum|mean"},
        {"[columns]\nnames = a, b\ncategorical = a\nmulti_valued = a:|:max\n",
         ":4: multi_valued: 'a:|:max' is not NAME:SEP"},
        {"[columns]\nnames = a, b\ncategorical = a\nnumeric = b\nmulti_valued = b:|\n",
         ":5: multi_valued: column 'b' is not categorical"},
        {"[columns]\nnames = a, b\ncategorical = a\nmulti_valued = a:|, a:;\n",
         ":4: multi_valued: column 'a' listed twice"},
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
    assert_msg_has(&err, TMP "/toy/long.ini:2: line is too long");
    /* the shipped configs load, with the documented shapes */
    struct {
        const char *file;
        int S, D, T, n_cols;
    } shipped[] = {{MTL_SOURCE_DIR "/configs/census.ini", 29, 11, 2, 42},
                   {MTL_SOURCE_DIR "/configs/census-hashed.ini", 29, 11, 2, 42},
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
                               .n_vocab = 1,
                               .vocab = {500},
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

/* The rejection-inversion sampler against the exact Zipf probabilities: every
 * rank's frequency within 5 standard deviations, and a chi-square test. */
static void check_zipf(int64_t n, double s, int64_t draws) {
    mtl_zipf z;
    mtl_zipf_init(&z, n, s);
    mtl_rng rng;
    mtl_rng_seed(&rng, 11);
    int64_t *count = calloc((size_t)n + 1, sizeof *count);
    assert_non_null(count);
    for (int64_t i = 0; i < draws; i++) {
        int64_t k = mtl_zipf_sample(&z, &rng);
        assert_true(k >= 1 && k <= n);
        count[k]++;
    }
    double norm = 0.0;
    for (int64_t k = 1; k <= n; k++) norm += pow((double)k, -s);
    double chi2 = 0.0;
    for (int64_t k = 1; k <= n; k++) {
        double p = pow((double)k, -s) / norm, mean = p * (double)draws;
        double sd = sqrt(mean * (1.0 - p));
        if (fabs((double)count[k] - mean) > 5.0 * sd + 1.0)
            fail_msg("zipf n=%lld s=%g: rank %lld drawn %lld times, expected %.1f", (long long)n, s,
                     (long long)k, (long long)count[k], mean);
        chi2 += ((double)count[k] - mean) * ((double)count[k] - mean) / mean;
    }
    /* n - 1 degrees of freedom: mean n - 1, sd sqrt(2(n - 1)) */
    double dof = (double)(n - 1);
    printf("zipf n=%lld s=%g: chi2 %.1f for %lld dof\n", (long long)n, s, chi2, (long long)(n - 1));
    assert_true(chi2 < dof + 5.0 * sqrt(2.0 * dof) + 1.0);
    free(count);
}

/* --multi-fields K --multi-len L: K lists per row, lengths uniform in 0..2L
 * (mean L, some empty), ids Zipf ranks 1..V; the rows' other columns are
 * those of a run without lists only in shape (their random stream differs). */
static void test_synth_ctr_multi(void **state) {
    (void)state;
    mtl_synth_ctr_options o = {.rows = 4000,
                               .sparse_fields = 3,
                               .n_vocab = 2,
                               .vocab = {50, 300},
                               .dense_fields = 2,
                               .tasks = 2,
                               .multi_fields = 2,
                               .multi_len = 4,
                               .seed = 5,
                               .n_split = 2,
                               .split = {0.5, 0.5},
                               .output_dir = TMP "/ctr_multi",
                               .chunk_rows = 700, /* lists cross appends */
                               .quiet = 1};
    mtl_error err;
    clean_dir(o.output_dir);
    if (mtl_synth_ctr(&o, &err)) fail_msg("%s", err.msg);
    mtl_dataset ds;
    load(&ds, o.output_dir, "train.h5");
    assert_int_equal(ds.n_rows, 2000);
    assert_int_equal(ds.S, 3);
    assert_int_equal(ds.M, 2);
    for (int j = 0; j < 2; j++) {
        char name[8];
        snprintf(name, sizeof name, "m%d", j);
        assert_string_equal(ds.multi_names[j], name);
        assert_int_equal(ds.multi_mean[j], j == 0); /* mean, then sum */
        assert_int_equal(ds.multi_vocab[j], 301);
        const int64_t *off = ds.multi_off[j];
        int64_t empty = 0;
        for (int64_t i = 0; i < ds.n_rows; i++) {
            int64_t len = off[i + 1] - off[i];
            assert_true(len >= 0 && len <= 8);
            empty += len == 0;
        }
        for (int64_t k = 0; k < off[ds.n_rows]; k++)
            assert_true(ds.multi_ids[j][k] >= 1 && ds.multi_ids[j][k] <= 300);
        /* mean 4: 2000 rows of std 2.6 give a mean within 4 +- 0.25 (4 sigma);
         * empty lists 1/9 of the rows */
        double mean = (double)off[ds.n_rows] / (double)ds.n_rows;
        assert_true(mean > 3.75 && mean < 4.25);
        assert_true(empty > 150 && empty < 300);
    }
    mtl_dataset_free(&ds);
}

static void test_zipf(void **state) {
    (void)state;
    check_zipf(50, 1.1, 400000); /* the ctr generator's exponent */
    check_zipf(50, 1.0, 400000); /* H(x) = log x */
    check_zipf(20, 2.5, 200000);
    check_zipf(1, 1.1, 1000);
    /* 10M ranks, no table: P(1) = 1 / sum k^-1.1 = 0.1164, and the upper half */
    const int64_t n = 10000000;
    const double draws = 200000;
    mtl_zipf z;
    mtl_zipf_init(&z, n, 1.1);
    mtl_rng rng;
    mtl_rng_seed(&rng, 5);
    int64_t ones = 0, big = 0, max = 0;
    for (int i = 0; i < (int)draws; i++) {
        int64_t k = mtl_zipf_sample(&z, &rng);
        assert_true(k >= 1 && k <= n);
        ones += k == 1;
        big += k > n / 2;
        if (k > max) max = k;
    }
    double norm = 0.0, tail = 0.0;
    for (int64_t k = n; k >= 1; k--) { /* small terms first */
        norm += pow((double)k, -1.1);
        if (k == n / 2 + 1) tail = norm;
    }
    double p1 = 1.0 / norm, ptail = tail / norm;
    assert_true(fabs((double)ones / draws - p1) < 5.0 * sqrt(p1 * (1 - p1) / draws));
    assert_true(fabs((double)big / draws - ptail) < 5.0 * sqrt(ptail * (1 - ptail) / draws));
    printf("zipf n=1e7: P(1) %.4f (exact %.4f), P(k > n/2) %.4f (exact %.4f), max %lld\n",
           (double)ones / draws, p1, (double)big / draws, ptail, (long long)max);
}

/* --vocab lists: per-field vocabularies, the last value repeating */
static void test_synth_ctr_vocab_list(void **state) {
    (void)state;
    int64_t v[MTL_SYNTH_VOCAB_MAX];
    int n = 0;
    mtl_error err;
    assert_int_equal(mtl_synth_vocab_parse("10000000,1000000,1000", v, &n, &err), MTL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 10000000);
    assert_int_equal(v[2], 1000);
    assert_int_equal(mtl_synth_vocab_parse("7", v, &n, &err), MTL_OK);
    assert_int_equal(n, 1);
    const char *bad[] = {"0", "10,", ",10", "1e6", "10,x", "-3", "2147483647", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(mtl_synth_vocab_parse(bad[i], v, &n, &err), MTL_ERR);
        assert_msg_has(&err, "--vocab: ");
    }

    mtl_synth_ctr_options o = {.rows = 4000,
                               .sparse_fields = 5,
                               .n_vocab = 3,
                               .vocab = {200000, 50, 3},
                               .dense_fields = 2,
                               .tasks = 2,
                               .seed = 9,
                               .n_split = 2,
                               .split = {0.5, 0.5},
                               .output_dir = TMP "/ctr_vocab",
                               .quiet = 1};
    clean_dir(o.output_dir);
    if (mtl_synth_ctr(&o, &err)) fail_msg("%s", err.msg);
    mtl_dataset ds;
    load(&ds, o.output_dir, "train.h5");
    const int64_t want[5] = {200001, 51, 4, 4, 4}; /* codes 1..V, 0 = OOV */
    assert_memory_equal(ds.vocab_sizes, want, sizeof want);
    int32_t max[5] = {0};
    for (int64_t i = 0; i < ds.n_rows; i++)
        for (int s = 0; s < 5; s++) {
            int32_t id = ds.sparse[i * 5 + s];
            assert_true(id >= 1 && id < want[s]);
            if (id > max[s]) max[s] = id;
        }
    assert_true(max[0] > 50); /* the large field draws from its whole range */
    assert_int_equal(max[2], 3);
    mtl_dataset_free(&ds);

    o.n_vocab = 6; /* more values than fields */
    o.vocab[3] = o.vocab[4] = o.vocab[5] = 9;
    assert_int_equal(mtl_synth_ctr(&o, &err), MTL_ERR);
    assert_msg_has(&err, "--vocab: 6 values for 5 sparse fields");
}

int main(void) {
    mtl_error err;
    if (mtl_mkdir_p(TMP, "directory", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_toy_encoding, setup_toy),
        cmocka_unit_test_setup(test_toy_vocab_from, setup_toy),
        cmocka_unit_test_setup(test_malformed_rows, setup_toy),
        cmocka_unit_test_setup(test_config_errors, setup_toy),
        cmocka_unit_test(test_hash_id),
        cmocka_unit_test_setup(test_hashed_field, setup_toy),
        cmocka_unit_test(test_multi_valued),

        cmocka_unit_test(test_csv_split),
        cmocka_unit_test_setup(test_quoted_csv, setup_toy),
        cmocka_unit_test(test_split_counts),
        cmocka_unit_test(test_adult),
        cmocka_unit_test(test_census),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_synth_mmoe),
        cmocka_unit_test(test_synth_ctr),
        cmocka_unit_test(test_synth_ctr_multi),
        cmocka_unit_test(test_zipf),
        cmocka_unit_test(test_synth_ctr_vocab_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
