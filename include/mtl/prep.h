/* mtl_prep: turn raw CSV files into the HDF5 dataset layout of data.h.
 *
 * An INI config (configs/census.ini is the worked example) names the CSV's
 * columns in order and gives every column exactly one role:
 *
 *   [columns]
 *   names       = age, workclass, ...   ; every column of the CSV, in order
 *   categorical = workclass, ...        ; -> /sparse (one int32 field each)
 *   numeric     = fnlwgt, ...           ; -> /dense (min-max scaled to [0,1])
 *   ignore      = instance_weight       ; dropped
 *   hash_buckets = user_id:1000000, shop:1000  ; hashed categoricals (below)
 *   multi_valued = genres:|, tags:;:sum  ; lists (below) -> /multi/<name>
 *
 *   [task.income]                       ; -> one /labels column named "income"
 *   column   = income                   ; the CSV column it is read from
 *   type     = binary                   ; (default) or regression
 *   positive = >50K                     ; binary: values meaning 1 ...
 *   negative = <=50K                    ; ... and values meaning 0
 *
 * Lists are comma-separated; a long list continues on indented lines without
 * '=' (the INI dialect of include/mtl/ini.h) or on repeated keys, which
 * append. A task's source column
 * is listed in no other role (a label is never also a feature). Label values
 * are compared after trimming spaces and one trailing '.' (UCI's adult.test
 * writes ">50K."); any other value is an error, so a typo in the config cannot
 * silently turn into a wrong label.
 *
 * Encoding, fitted on the TRAIN split only and applied to every split:
 *  - categorical: code 0 = out of vocabulary (a value unseen in train), the
 *    train values get 1..n in strcmp order (independent of row order and of
 *    --shuffle-seed); vocab_size = n + 1. "?" (unknown) is a value like any
 *    other.
 *  - numeric: x' = (x - min) / (max - min) with the train min/max, clipped to
 *    [0, 1]; 0 when max == min. "?" in a numeric column is an error.
 *  - hashed categorical (a column listed in [columns] hash_buckets as
 *    NAME:N, N in 1..2^31-1): id = mtl_hash_id(NAME, value, N), in 0..N-1,
 *    vocab_size = N. No vocabulary is fitted or stored, nothing is out of
 *    vocabulary (every value has a bucket; code 0 is an ordinary bucket),
 *    and the id of a value is the same in every file, run and machine.
 *  - multi-valued categorical (a categorical column listed in [columns]
 *    multi_valued as NAME:SEP or NAME:SEP:sum|mean; SEP one character):
 *    the field is split at SEP, each item trimmed, empty items dropped (an
 *    empty field is an empty list), and every item encoded as the column's
 *    single values are (a vocabulary fitted on the items of the train rows,
 *    or hash_buckets). Written as /multi/NAME (data.h) with pooling mean
 *    (default, DeepCTR's VarLenSparseFeat combiner) or sum; the other
 *    categorical columns stay in /sparse. --vocab-from does not take them yet.
 * The encoding goes into every output file's /meta (its fields in the
 * config's categorical order, multi-valued ones included): vocab[s][0] is the
 * placeholder "<OOV>" and vocab[s][i] the string of code i, so
 * vocab_len[s] == vocab_size[s]; dense_min/dense_max are the train ranges.
 *
 * Input: plain or gzip CSV (read through zlib), one row per line. A first line
 * starting with '|' (UCI's adult.test) and blank lines are skipped, every
 * unquoted field is trimmed of spaces. Fields may be quoted as RFC 4180 (and
 * pandas, spreadsheets) write them (mtl_csv_split), except that a quoted
 * field cannot span lines. A malformed row stops the run with
 * "FILE:LINE: column NAME: what is wrong"; nothing is written until every
 * row has been read and encoded, so an error leaves no output file. */
#ifndef MTL_PREP_H
#define MTL_PREP_H

#include <stdint.h>

#include "mtl/data.h"
#include "mtl/error.h"

enum { MTL_COL_NONE = 0, MTL_COL_CATEGORICAL, MTL_COL_NUMERIC, MTL_COL_IGNORE, MTL_COL_LABEL };

typedef struct {
    char *name;     /* /labels column name (the section's "task.NAME") */
    char *column;   /* source CSV column */
    int col;        /* its index among the CSV columns */
    int regression; /* 0: binary, 1: the numeric value is the label */
    int n_positive, n_negative;
    char **positive; /* [n_positive] trimmed values meaning 1 */
    char **negative; /* [n_negative] trimmed values meaning 0 */
    int line;        /* config line of the section header's first key */
} mtl_prep_task;

typedef struct {
    char *path;       /* the config file, for messages */
    int n_cols;       /* CSV columns */
    char **col_names; /* [n_cols] */
    int *col_role;    /* [n_cols] MTL_COL_* */
    int *col_slot;    /* [n_cols] index among /sparse, /dense or /labels columns; -1 */
    int S, D, T;
    int *sparse_col;       /* [S] CSV column of sparse field s (config order) */
    int *dense_col;        /* [D] CSV column of dense feature d */
    mtl_prep_task *tasks;  /* [T] in config order */
    int64_t *hash_buckets; /* [S] 0: vocabulary fitted on train; N: hashed into N buckets */
    int M;                 /* fields of the S that are multi-valued (-> /multi) */
    int *multi_sep;        /* [S] 0: one value; else the separator of field s's list */
    int *multi_mean;       /* [S] a multi-valued field's pooling: 1 mean, 0 sum */
} mtl_prep_config;

/* Parse and check a config: every column has exactly one role, tasks name
 * known columns, binary tasks list positives and negatives. Errors are
 * "FILE:LINE: key: what" (unknown keys, malformed values) or
 * "FILE: column NAME: what" (whole-file checks). */
int mtl_prep_config_load(mtl_prep_config *cfg, const char *path, mtl_error *err);
void mtl_prep_config_free(mtl_prep_config *cfg);

/* The bucket of a hashed categorical value (xxHash 0.8, XXH3 64-bit):
 *   seed = XXH3_64bits(field)                 (the column name's bytes)
 *   id   = XXH3_64bits_withSeed(value, seed) mod n_buckets
 * value is the field as read (trimmed), without its terminating NUL. In
 * python: xxhash.xxh3_64_intdigest(value, seed=xxhash.xxh3_64_intdigest(
 * field)) % n_buckets. n_buckets >= 1. */
int64_t mtl_hash_id(const char *field, const char *value, int64_t n_buckets);

/* ---- splits, shared with the synthetic generators ---- */
#define MTL_SPLIT_MAX 3

/* "0.6,0.2,0.2" (train,valid,test) or "0.8,0.2" (train,test): every fraction
 * > 0, summing to 1 (within 1e-6). */
int mtl_split_parse(const char *s, double *frac, int *n_parts, mtl_error *err);
/* rows per part: floor(frac[i] * n) for all parts but the last, which gets
 * the remainder (0.6,0.2,0.2 of 99,762 -> 59,857 / 19,952 / 19,953). */
void mtl_split_counts(int64_t n, const double *frac, int n_parts, int64_t *count);
/* The output file name of part i of n_parts: "train.h5", "valid.h5" (only
 * with 3 parts), "test.h5". */
const char *mtl_split_file(int part, int n_parts);

/* ---- the CSV reader ---- */

/* Split one CSV line (no line break) into fields, in place. A field is
 * either unquoted: up to the next comma, trimmed of spaces and tabs, and
 * holding no '"'; or quoted (RFC 4180): '"', any text in which a comma is
 * data and '""' stands for one '"', then '"' (spaces around the quotes are
 * allowed, the text inside is kept as written). field[i] is set for
 * i < cap; returns the number of fields, or -1 - i when field i is
 * malformed, with *why saying how. */
int mtl_csv_split(char *line, char **field, int cap, const char **why);

/* ---- the CSV -> HDF5 run ---- */
typedef struct {
    const char *config_path;
    /* either one input split by `split` ... */
    const char *input_path;
    int n_split; /* 0: default 0.8,0.1,0.1 */
    double split[MTL_SPLIT_MAX];
    int shuffle; /* shuffle rows (seeded) before splitting; else file order */
    uint64_t shuffle_seed;
    /* ... or a train and a test file, used as they are */
    const char *train_path, *test_path;
    const char *output_dir;
    const char *vocab_from; /* NULL: fit on train; else reuse this file's /meta */
    int quiet;              /* 0: print a one-line summary per file to stdout */
} mtl_prep_options;

int mtl_prep_run(const mtl_prep_options *opt, mtl_error *err);

#endif
