/* The fuzz targets' bodies, shared by the libFuzzer mains (tests/fuzz/fuzz_*.c,
 * built with clang by tests/fuzz/run.sh) and by the cmocka replay of the
 * corpora and crash reproducers (tests/test_fuzz_regressions.c, the normal
 * gcc build, so CI runs them).
 *
 *   fuzz_csv_one     mtl_prep_run: one of three fixed configs on the input as
 *                    CSV (plain or gzip): split mode, train/test mode, and
 *                    train/test followed by a --vocab-from run
 *   fuzz_config_one  the trainer's INI file (mtl_config_load_ini), its command
 *                    line (mtl_config_parse) and mtl_prep's INI config
 *                    (mtl_prep_config_load)
 *   fuzz_h5_one      the input as an HDF5 file: mtl_dataset_load (and
 *                    _header), mtl_meta_load, mtl_prep_run --vocab-from it,
 *                    mtl_checkpoint_load_state and, when the state loads,
 *                    mtl_checkpoint_load_tensors into a model built from it
 *
 * Beyond "no crash, no leak, no undefined behaviour" each target checks
 * properties the code promises (FUZZ_ASSERT): a failed call says why (a
 * non-empty message), no HDF5 handle stays open after any call, a failed
 * mtl_prep run leaves no output file, a successful one writes files the
 * dataset reader accepts, and the model text stored in checkpoints reads
 * back to the same text.
 *
 * The includer defines _POSIX_C_SOURCE 200809L before any system header
 * (mkdtemp, opendir), and may define FUZZ_ASSERT (default: print and abort,
 * which is what libFuzzer records as a crash). */
#ifndef MTL_FUZZ_TARGETS_H
#define MTL_FUZZ_TARGETS_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "mtl/checkpoint.h"
#include "mtl/config.h"
#include "mtl/data.h"
#include "mtl/error.h"
#include "mtl/model.h"
#include "mtl/prep.h"
#include "mtl/train.h"

#ifndef FUZZ_ASSERT
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#endif

/* Open HDF5 objects of any kind in any file. Declared here rather than taken
 * from <hdf5.h>, whose directory only the library target gets; the types are
 * HDF5 1.10's (hid_t is int64_t) and the value of H5F_OBJ_ALL is 0x1F. */
ssize_t H5Fget_obj_count(int64_t file_id, unsigned types);
#define FUZZ_H5F_OBJ_ALL 0x1Fu

/* What a run reached, returned by the fuzz_*_run functions so that the
 * cmocka replay can check that each valid seed gets as far as it should. */
enum {
    FUZZ_PREP_OK = 1 << 0,       /* csv: mtl_prep_run succeeded */
    FUZZ_VOCAB_FROM_OK = 1 << 1, /* csv, h5: an mtl_prep --vocab-from run succeeded */
    FUZZ_PARSE_OK = 1 << 2,      /* config: the file / command line parsed */
    FUZZ_VALID_OK = 1 << 3,      /* config: ... and passed mtl_config_validate */
    FUZZ_DATASET_OK = 1 << 4,    /* h5: mtl_dataset_load succeeded */
    FUZZ_META_OK = 1 << 5,       /* h5: a non-empty /meta loaded */
    FUZZ_STATE_OK = 1 << 6,      /* h5: mtl_checkpoint_load_state succeeded */
    FUZZ_TENSORS_OK = 1 << 7     /* h5: mtl_checkpoint_load_tensors succeeded */
};

static ssize_t fuzz_h5_open_objects(void) {
    return H5Fget_obj_count((int64_t)FUZZ_H5F_OBJ_ALL, FUZZ_H5F_OBJ_ALL);
}

/* ------------------------------------------------------------------------ */
/* scratch files: one private directory per process, removed at exit */

static char fuzz_dir_path[512];

/* Remove dir's files and (one level of) subdirectories' files, then dir. */
static void fuzz_rm_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (remove(p) != 0 && depth > 0) fuzz_rm_tree(p, depth - 1);
    }
    closedir(d);
    rmdir(dir);
}

static void fuzz_cleanup(void) {
    if (fuzz_dir_path[0]) fuzz_rm_tree(fuzz_dir_path, 2);
}

/* MTL_FUZZ_TMPDIR (run.sh: /dev/shm), else TMPDIR, else /tmp. */
static const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *base = getenv("MTL_FUZZ_TMPDIR");
        if (!base || !*base) base = getenv("TMPDIR");
        if (!base || !*base) base = "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/mtl_fuzz.XXXXXX", base);
        if (!mkdtemp(fuzz_dir_path)) {
            perror(fuzz_dir_path);
            abort();
        }
        atexit(fuzz_cleanup);
    }
    return fuzz_dir_path;
}

static void fuzz_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", fuzz_dir(), name);
}

static void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static int fuzz_exists(const char *path) {
    return access(path, F_OK) == 0;
}

static void fuzz_check_h5_closed(const char *after) {
    ssize_t open_objects = fuzz_h5_open_objects();
    FUZZ_ASSERT(open_objects == 0, "%zd HDF5 objects left open after %s", open_objects, after);
}

static void fuzz_check_failed(int rc, const mtl_error *err, const char *what) {
    if (rc != MTL_OK) FUZZ_ASSERT(err->msg[0] != '\0', "%s failed without a message", what);
}

/* ------------------------------------------------------------------------ */
/* mtl_prep: CSV reading, encoding, writing */

/* Three configs covering the roles and task kinds: categorical + numeric +
 * ignore with a binary task (Adult-like); a list continued on an indented
 * line, a regression and a binary task; categorical features only (D = 0). */
static const char *const fuzz_prep_configs[] = {
    "[columns]\n"
    "names = age, work, edu, hours, income, wt\n"
    "categorical = work, edu\n"
    "numeric = age, hours\n"
    "ignore = wt\n"
    "[task.income]\n"
    "column = income\n"
    "positive = >50K\n"
    "negative = <=50K, ?\n",

    "[columns]\n"
    "names = a, b, c,\n"
    "    y1, y2\n"
    "categorical = a\n"
    "numeric = b, c\n"
    "[task.r]\n"
    "column = y1\n"
    "type = regression\n"
    "[task.c]\n"
    "column = y2\n"
    "positive = 1, yes\n"
    "negative = 0, no\n",

    "[columns]\n"
    "names = x, y, lab\n"
    "categorical = x, y\n"
    "[task.lab]\n"
    "column = lab\n"
    "positive = 1\n"
    "negative = 0\n",
};
#define FUZZ_N_PREP_CONFIGS 3

static const char *const fuzz_split_files[] = {"train.h5",     "valid.h5",     "test.h5",
                                               "train.h5.tmp", "valid.h5.tmp", "test.h5.tmp"};

/* Empty the output directory `out` (created by mtl_prep_run when missing). */
static void fuzz_clean_out(const char *out) {
    char p[1024];
    for (size_t i = 0; i < sizeof fuzz_split_files / sizeof *fuzz_split_files; i++) {
        snprintf(p, sizeof p, "%s/%s", out, fuzz_split_files[i]);
        remove(p);
    }
}

/* After an mtl_prep run: on failure no file was left behind; on success every
 * part written is a dataset the reader accepts, with the config's shape. */
static void fuzz_check_prep_outputs(int rc, const mtl_error *err, const char *out,
                                    const char *config, int n_parts) {
    fuzz_check_h5_closed("mtl_prep_run");
    fuzz_check_failed(rc, err, "mtl_prep_run");
    char p[1024];
    if (rc != MTL_OK) {
        /* the input is validated before anything is encoded, so a run fails
         * on its input, never on its output (the writer's value checks:
         * "OUT/train.h5: /dense: row 0, ...: value NaN is not finite") */
        size_t n_out = strlen(out);
        FUZZ_ASSERT(strncmp(err->msg, out, n_out) != 0 || err->msg[n_out] != '/',
                    "mtl_prep failed on its own output: %s", err->msg);
        for (size_t i = 0; i < sizeof fuzz_split_files / sizeof *fuzz_split_files; i++) {
            snprintf(p, sizeof p, "%s/%s", out, fuzz_split_files[i]);
            FUZZ_ASSERT(!fuzz_exists(p), "failed mtl_prep run (%s) left %s", err->msg, p);
        }
        return;
    }
    mtl_prep_config cfg;
    mtl_error e2;
    FUZZ_ASSERT(mtl_prep_config_load(&cfg, config, &e2) == MTL_OK, "config: %s", e2.msg);
    for (int part = 0; part < n_parts; part++) {
        snprintf(p, sizeof p, "%s/%s", out, mtl_split_file(part, n_parts));
        mtl_dataset ds;
        int r = mtl_dataset_load(&ds, p, 0, 1, &e2);
        FUZZ_ASSERT(r == MTL_OK, "mtl_prep wrote %s, which the reader rejects: %s", p, e2.msg);
        FUZZ_ASSERT(ds.S == cfg.S && ds.D == cfg.D && ds.T == cfg.T,
                    "%s: S/D/T %d/%d/%d, config %d/%d/%d", p, ds.S, ds.D, ds.T, cfg.S, cfg.D,
                    cfg.T);
        for (int64_t i = 0; i < ds.n_rows * ds.D; i++)
            FUZZ_ASSERT(ds.dense[i] >= 0.0f && ds.dense[i] <= 1.0f, "%s: dense value %g", p,
                        (double)ds.dense[i]);
        mtl_dataset_free(&ds);
        fuzz_check_h5_closed("mtl_dataset_load of mtl_prep's output");
    }
    mtl_prep_config_free(&cfg);
}

/* Byte 0 picks the config (% 3) and the mode (/ 3 % 3, and bit / 9 % 2 the
 * number of parts in split mode); the rest is the CSV. Train/test modes use
 * the bytes before the first NUL as the train file and the rest as the test
 * file (no NUL: the same bytes for both). */
static int fuzz_csv_run(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int variant = data[0] % FUZZ_N_PREP_CONFIGS, mode = data[0] / 3 % 3;
    int three = data[0] / 9 % 2;
    data++;
    size--;
    char config[600], in[600], train[600], test[600], out[600], out2[600];
    char cname[32];
    snprintf(cname, sizeof cname, "prep%d.ini", variant);
    fuzz_path(config, sizeof config, cname);
    fuzz_path(in, sizeof in, "in.csv");
    fuzz_path(train, sizeof train, "train.csv");
    fuzz_path(test, sizeof test, "test.csv");
    fuzz_path(out, sizeof out, "out");
    fuzz_path(out2, sizeof out2, "out2");
    if (!fuzz_exists(config))
        fuzz_write(config, fuzz_prep_configs[variant], strlen(fuzz_prep_configs[variant]));
    fuzz_clean_out(out);
    fuzz_clean_out(out2);

    mtl_error err;
    memset(&err, 0, sizeof err);
    mtl_prep_options opt;
    memset(&opt, 0, sizeof opt);
    opt.config_path = config;
    opt.output_dir = out;
    opt.quiet = 1;
    if (mode == 0) {
        fuzz_write(in, data, size);
        opt.input_path = in;
        opt.n_split = three ? 3 : 2;
        const double frac[2][3] = {{0.5, 0.5, 0.0}, {0.4, 0.3, 0.3}};
        memcpy(opt.split, frac[three], sizeof opt.split);
        opt.shuffle = 1;
        opt.shuffle_seed = 7;
        int rc = mtl_prep_run(&opt, &err);
        fuzz_check_prep_outputs(rc, &err, out, config, opt.n_split);
        return rc == MTL_OK ? FUZZ_PREP_OK : 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t n_train = nul ? (size_t)(nul - data) : size;
    fuzz_write(train, data, n_train);
    if (nul)
        fuzz_write(test, nul + 1, size - n_train - 1);
    else
        fuzz_write(test, data, size);
    opt.train_path = train;
    opt.test_path = test;
    int rc = mtl_prep_run(&opt, &err);
    fuzz_check_prep_outputs(rc, &err, out, config, 2);
    int reached = rc == MTL_OK ? FUZZ_PREP_OK : 0;
    if (mode == 2 && rc == MTL_OK) {
        char vocab[700];
        snprintf(vocab, sizeof vocab, "%s/train.h5", out);
        opt.vocab_from = vocab;
        opt.output_dir = out2;
        rc = mtl_prep_run(&opt, &err);
        /* the same rows with the encoding they were fitted to: must work */
        FUZZ_ASSERT(rc == MTL_OK, "--vocab-from the run's own train.h5: %s", err.msg);
        fuzz_check_prep_outputs(rc, &err, out2, config, 2);
        reached |= FUZZ_VOCAB_FROM_OK;
    }
    return reached;
}

/* ------------------------------------------------------------------------ */
/* configs */

/* As train.c applies a checkpoint's model text (apply_model_text, static
 * there): "key = value" lines through mtl_config_set. */
static int fuzz_apply_model_text(mtl_config *cfg, const char *text, mtl_error *err) {
    char line[512];
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= sizeof line) return mtl_fail(err, "model text", "line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl != NULL);
        char *eq = strstr(line, " = ");
        if (!eq) continue;
        *eq = '\0';
        if (mtl_config_set(cfg, line, eq + 3, "model text", err)) return MTL_ERR;
    }
    return MTL_OK;
}

/* A parsed trainer config: validate, and the model text that checkpoints
 * store must read back to itself. */
static int fuzz_check_trainer_config(const mtl_config *cfg) {
    mtl_error err;
    memset(&err, 0, sizeof err);
    int rc = mtl_config_validate(cfg, &err);
    fuzz_check_failed(rc, &err, "mtl_config_validate");
    int reached = FUZZ_PARSE_OK | (rc == MTL_OK ? FUZZ_VALID_OK : 0);
    if (cfg->command != MTL_CMD_TRAIN && cfg->command != MTL_CMD_PREDICT) return reached;
    static char text[8192], again[8192];
    mtl_config_model_text(cfg, text, sizeof text);
    mtl_config back;
    mtl_config_defaults(&back);
    rc = fuzz_apply_model_text(&back, text, &err);
    FUZZ_ASSERT(rc == MTL_OK, "model text does not read back: %s\n%s", err.msg, text);
    mtl_config_model_text(&back, again, sizeof again);
    FUZZ_ASSERT(strcmp(text, again) == 0, "model text changed:\n%s---\n%s", text, again);
    return reached;
}

/* Byte 0 % 3 picks the input: 0 the trainer's INI file; 1 its command line
 * (bytes before the first NUL are an INI file, the rest the arguments, one
 * per line; "--config" or "--config=X" is replaced by "--config=<that INI>" so
 * no other file is ever opened); 2 an mtl_prep INI config. */
static int fuzz_config_run(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    char ini[600];
    fuzz_path(ini, sizeof ini, mode == 2 ? "prep.ini" : "run.ini");
    mtl_error err;
    memset(&err, 0, sizeof err);
    if (mode == 0) {
        fuzz_write(ini, data, size);
        mtl_config cfg;
        mtl_config_defaults(&cfg);
        int rc = mtl_config_load_ini(&cfg, ini, &err);
        fuzz_check_failed(rc, &err, "mtl_config_load_ini");
        return rc == MTL_OK ? fuzz_check_trainer_config(&cfg) : 0;
    }
    if (mode == 2) {
        fuzz_write(ini, data, size);
        mtl_prep_config cfg;
        int rc = mtl_prep_config_load(&cfg, ini, &err);
        fuzz_check_failed(rc, &err, "mtl_prep_config_load");
        if (rc == MTL_OK) {
            FUZZ_ASSERT(cfg.T >= 1 && cfg.S + cfg.D >= 1 && cfg.n_cols >= 1, "S/D/T %d/%d/%d",
                        cfg.S, cfg.D, cfg.T);
            int seen[3] = {0, 0, 0};
            for (int c = 0; c < cfg.n_cols; c++) {
                int role = cfg.col_role[c];
                FUZZ_ASSERT(role >= MTL_COL_CATEGORICAL && role <= MTL_COL_LABEL,
                            "column %d role %d", c, role);
                if (role == MTL_COL_CATEGORICAL)
                    FUZZ_ASSERT(cfg.col_slot[c] >= 0 && cfg.col_slot[c] < cfg.S &&
                                    cfg.sparse_col[cfg.col_slot[c]] == c,
                                "column %d slot", c);
                if (role == MTL_COL_NUMERIC)
                    FUZZ_ASSERT(cfg.col_slot[c] >= 0 && cfg.col_slot[c] < cfg.D &&
                                    cfg.dense_col[cfg.col_slot[c]] == c,
                                "column %d slot", c);
                if (role <= MTL_COL_NUMERIC) seen[role]++;
            }
            FUZZ_ASSERT(seen[MTL_COL_CATEGORICAL] == cfg.S && seen[MTL_COL_NUMERIC] == cfg.D,
                        "role counts");
            for (int t = 0; t < cfg.T; t++) {
                const mtl_prep_task *k = &cfg.tasks[t];
                FUZZ_ASSERT(k->col >= 0 && k->col < cfg.n_cols &&
                                cfg.col_role[k->col] == MTL_COL_LABEL &&
                                strcmp(cfg.col_names[k->col], k->column) == 0,
                            "task %d column", t);
                FUZZ_ASSERT(k->regression || (k->n_positive > 0 && k->n_negative > 0),
                            "task %d values", t);
            }
        }
        mtl_prep_config_free(&cfg);
        return rc == MTL_OK ? FUZZ_PARSE_OK | FUZZ_VALID_OK : 0;
    }
    /* mode 1: INI \0 arguments */
    const uint8_t *nul = memchr(data, 0, size);
    size_t n_ini = nul ? (size_t)(nul - data) : 0;
    fuzz_write(ini, data, n_ini);
    const uint8_t *args = nul ? nul + 1 : data;
    size_t n_args = size - (size_t)(args - data);
    char *buf = malloc(n_args + 1);
    if (!buf) abort();
    memcpy(buf, args, n_args);
    buf[n_args] = '\0'; /* an argument ends at an embedded NUL, as in a real argv */
    enum { MAX_ARGS = 48 };
    char *argv[MAX_ARGS + 1];
    char config_arg[700];
    snprintf(config_arg, sizeof config_arg, "--config=%s", ini);
    int argc = 0;
    argv[argc++] = "mtl_dist";
    char *p = buf;
    while (argc < MAX_ARGS && p < buf + n_args) {
        char *nl = memchr(p, '\n', (size_t)(buf + n_args - p));
        if (nl) *nl = '\0';
        argv[argc++] =
            (strcmp(p, "--config") == 0 || strncmp(p, "--config=", 9) == 0) ? config_arg : p;
        if (!nl) break;
        p = nl + 1;
    }
    argv[argc] = NULL;
    mtl_config cfg;
    int rc = mtl_config_parse(&cfg, argc, argv, &err);
    fuzz_check_failed(rc, &err, "mtl_config_parse");
    int reached = rc == MTL_OK ? fuzz_check_trainer_config(&cfg) : 0;
    free(buf);
    return reached;
}

/* ------------------------------------------------------------------------ */
/* HDF5: datasets, /meta, checkpoints */

/* A small CSV for the --vocab-from run, in fuzz_prep_configs[0]'s columns. */
static const char fuzz_vocab_csv[] = "39, State-gov, Bachelors, 40, <=50K, 1\n"
                                     "50, Private, HS-grad, 13, >50K, 2\n"
                                     "38, Private, Masters, 40, <=50K, 3\n"
                                     "53, ?, Bachelors, 60, >50K, 4\n";

/* Whether a model of this config and shape is small enough to build for
 * every input (a checkpoint may describe any size; building a large model
 * is not what is being tested, and would only slow the fuzzer down). */
static int fuzz_small_model(const mtl_config *cfg, const mtl_data_shape *sh) {
    const mtl_units *u[2 * (MTL_MAX_TASKS + 1) + 2] = {&cfg->bottom_units, &cfg->expert_units};
    int n = 2;
    for (int i = 0; i < cfg->tower_units.n_lists; i++) u[n++] = &cfg->tower_units.list[i];
    for (int i = 0; i < cfg->gate_units.n_lists; i++) u[n++] = &cfg->gate_units.list[i];
    for (int i = 0; i < n; i++)
        for (int l = 0; l < u[i]->n; l++)
            if (u[i]->units[l] > 64) return 0;
    if (cfg->embedding_dim > 16 || cfg->num_experts > 8 || cfg->num_experts_specific > 4 ||
        cfg->num_experts_shared > 4 || cfg->num_levels > 3 || sh->D > 1024 || sh->S > 64)
        return 0;
    int64_t vocab = 0;
    for (int s = 0; s < sh->S; s++) {
        if (sh->vocab_sizes[s] > 100000) return 0;
        vocab += sh->vocab_sizes[s];
    }
    return vocab <= 100000;
}

static int fuzz_h5_run(const uint8_t *data, size_t size) {
    char path[600], out[600], csv[600], config[600];
    fuzz_path(path, sizeof path, "in.h5");
    fuzz_path(out, sizeof out, "out");
    fuzz_path(csv, sizeof csv, "vocab.csv");
    fuzz_path(config, sizeof config, "prep0.ini");
    fuzz_write(path, data, size);
    mtl_error err;
    memset(&err, 0, sizeof err);

    /* the dataset reader: whole file, a shard of two, the header */
    mtl_dataset ds;
    int rc = mtl_dataset_load(&ds, path, 0, 1, &err);
    fuzz_check_h5_closed("mtl_dataset_load");
    fuzz_check_failed(rc, &err, "mtl_dataset_load");
    int reached = rc == MTL_OK ? FUZZ_DATASET_OK : 0;
    if (rc == MTL_OK) {
        FUZZ_ASSERT(ds.n_rows == ds.n_total && ds.n_total >= 1 && ds.T >= 1 && ds.S >= 0 &&
                        ds.D >= 0,
                    "shape %lld/%lld S %d D %d T %d", (long long)ds.n_rows, (long long)ds.n_total,
                    ds.S, ds.D, ds.T);
        int64_t total = ds.n_total;
        mtl_dataset_free(&ds);
        /* (not asserted to succeed: on a corrupt file HDF5 1.10 itself may
         * read out of bounds and answer differently the second time) */
        rc = mtl_dataset_load(&ds, path, 1, 2, &err);
        fuzz_check_h5_closed("mtl_dataset_load (shard)");
        fuzz_check_failed(rc, &err, "mtl_dataset_load (shard)");
        if (rc == MTL_OK) {
            FUZZ_ASSERT(ds.n_total != total ||
                            (ds.n_rows == total / 2 && ds.row_begin == total - total / 2),
                        "shard of %lld rows: %lld from %lld", (long long)total,
                        (long long)ds.n_rows, (long long)ds.row_begin);
            mtl_dataset_free(&ds);
        }
    }
    rc = mtl_dataset_load_header(&ds, path, &err);
    fuzz_check_h5_closed("mtl_dataset_load_header");
    fuzz_check_failed(rc, &err, "mtl_dataset_load_header");
    if (rc == MTL_OK) mtl_dataset_free(&ds);

    /* /meta, and an mtl_prep run reusing it (--vocab-from) */
    mtl_meta meta;
    rc = mtl_meta_load(&meta, path, &err);
    fuzz_check_h5_closed("mtl_meta_load");
    fuzz_check_failed(rc, &err, "mtl_meta_load");
    int have_meta = rc == MTL_OK && (meta.S > 0 || meta.D > 0);
    if (rc == MTL_OK) mtl_meta_free(&meta);
    if (have_meta) reached |= FUZZ_META_OK;
    if (have_meta) {
        if (!fuzz_exists(csv)) fuzz_write(csv, fuzz_vocab_csv, strlen(fuzz_vocab_csv));
        if (!fuzz_exists(config))
            fuzz_write(config, fuzz_prep_configs[0], strlen(fuzz_prep_configs[0]));
        fuzz_clean_out(out);
        mtl_prep_options opt;
        memset(&opt, 0, sizeof opt);
        opt.config_path = config;
        opt.train_path = csv;
        opt.test_path = csv;
        opt.output_dir = out;
        opt.vocab_from = path;
        opt.quiet = 1;
        rc = mtl_prep_run(&opt, &err);
        fuzz_check_prep_outputs(rc, &err, out, config, 2);
        if (rc == MTL_OK) reached |= FUZZ_VOCAB_FROM_OK;
    }

    /* checkpoints */
    static mtl_ckpt_state st;
    rc = mtl_checkpoint_load_state(path, &st, &err);
    fuzz_check_h5_closed("mtl_checkpoint_load_state");
    fuzz_check_failed(rc, &err, "mtl_checkpoint_load_state");
    if (rc != MTL_OK) return reached;
    reached |= FUZZ_STATE_OK;
    FUZZ_ASSERT(st.shape.T >= 1 && st.shape.T <= MTL_MAX_TASKS && st.shape.S >= 0 &&
                    st.shape.S <= 256 && st.shape.D >= 0 && st.world_size >= 0,
                "state shape S %d D %d T %d", st.shape.S, st.shape.D, st.shape.T);
    FUZZ_ASSERT(memchr(st.config, 0, sizeof st.config) != NULL, "config text not terminated");
    for (int t = 0; t < st.shape.T; t++)
        FUZZ_ASSERT(memchr(st.shape.task_names[t], 0, sizeof st.shape.task_names[t]) != NULL,
                    "task name %d not terminated", t);
    mtl_config cfg;
    mtl_config_defaults(&cfg);
    if (fuzz_apply_model_text(&cfg, st.config, &err) != MTL_OK) return reached;
    if (!fuzz_small_model(&cfg, &st.shape)) return reached;
    mtl_model *m = NULL;
    if (mtl_model_create(&m, &cfg, &st.shape, 4, &err) != MTL_OK) {
        fuzz_check_failed(MTL_ERR, &err, "mtl_model_create");
        return reached;
    }
    float *best = calloc(m->params.size ? m->params.size : 1, sizeof *best);
    if (!best) abort();
    int has_best = -1;
    rc = mtl_checkpoint_load_tensors(path, m, 1, best, &has_best, &err);
    fuzz_check_h5_closed("mtl_checkpoint_load_tensors");
    fuzz_check_failed(rc, &err, "mtl_checkpoint_load_tensors");
    FUZZ_ASSERT(has_best == 0 || has_best == 1, "has_best %d", has_best);
    free(best);
    mtl_model_free(m);
    return reached | (rc == MTL_OK ? FUZZ_TENSORS_OK : 0);
}

/* the libFuzzer entry points' bodies (libFuzzer wants 0) */
static inline int fuzz_csv_one(const uint8_t *data, size_t size) {
    (void)fuzz_csv_run(data, size);
    return 0;
}
static inline int fuzz_config_one(const uint8_t *data, size_t size) {
    (void)fuzz_config_run(data, size);
    return 0;
}
static inline int fuzz_h5_one(const uint8_t *data, size_t size) {
    (void)fuzz_h5_run(data, size);
    return 0;
}

#endif
