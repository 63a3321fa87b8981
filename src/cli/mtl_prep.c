/* mtl_prep: CSV -> HDF5 datasets, and synthetic datasets. Argument parsing
 * only; the work is in src/prep.c and src/synth.c. Exit codes: 0 ok,
 * 1 error (bad input data, I/O), 2 usage error or bad --config file (as
 * mtl_dist). */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/prep.h"
#include "mtl/synth.h"
#include "mtl/util.h"

static const char *usage_text =
    "usage:\n"
    "  mtl_prep --config FILE.ini --input DATA.csv[.gz] --output-dir DIR [--split 0.8,0.1,0.1]\n"
    "           [--shuffle-seed S] [--vocab-from FILE.h5]\n"
    "  mtl_prep --config FILE.ini --train TRAIN.csv --test TEST.csv --output-dir DIR\n"
    "           [--vocab-from FILE.h5]\n"
    "  mtl_prep synth --kind mmoe --correlation P --rows N --seed S --output-dir DIR [--split "
    "...]\n"
    "  mtl_prep synth --kind ctr [--rows 1000000] [--sparse-fields 24] [--vocab 10000[,...]]\n"
    "           [--dense-fields 8] [--tasks 2] [--multi-fields 0 --multi-len 10] [--seed 0]\n"
    "           --output-dir DIR [--split ...]\n"
    "\n"
    "Writes DIR/train.h5, DIR/valid.h5 (only for a 3-part split) and DIR/test.h5.\n"
    "  --config FILE       column roles and tasks (see configs/census.ini)\n"
    "  --input FILE        one CSV (plain or gzip), split into parts by --split\n"
    "  --split F,F[,F]     train,test or train,valid,test fractions (default 0.8,0.1,0.1):\n"
    "                      floor(F*N) rows each, the last part gets the rest\n"
    "  --shuffle-seed S    shuffle rows before splitting (default: file order)\n"
    "  --train/--test FILE use these files as train and test as they are\n"
    "  --vocab-from FILE   reuse the encoding in FILE's /meta instead of fitting on train\n"
    "  --output-dir DIR    created if missing\n"
    "synth:\n"
    "  --kind mmoe|ctr     MMoE paper's synthetic regression / click-log-like funnel\n"
    "  --correlation P     mmoe: correlation of the two tasks' linear parts, in [-1,1]\n"
    "  --rows N            total rows (mmoe default 100000, ctr default 1000000)\n"
    "  --seed S            generator seed (default 0)\n"
    "  --sparse-fields S, --dense-fields D, --tasks T   ctr shape\n"
    "  --vocab V1,V2,...   ctr: categories of field 1, 2, ... (Zipf 1.1 ranks); a list\n"
    "                      shorter than --sparse-fields repeats its last value, so one\n"
    "                      value sets every field: --vocab 10000000,1000 is 1 field of 10M\n"
    "                      and the rest of 1000\n"
    "  --multi-fields K    ctr: K multi-valued fields /multi/m0.. (lists of Zipf ranks of\n"
    "                      the last --vocab value; mean pooling, every second one sum)\n"
    "  --multi-len L       their lists' lengths: uniform in 0..2L, mean L (default 10)\n"
    "Options may also be written --name=value.\n";

typedef struct {
    int synth;
    const char *kind;
    int have_correlation, have_ctr_shape;
    mtl_prep_options prep;
    mtl_synth_mmoe_options mmoe;
    mtl_synth_ctr_options ctr;
    int64_t rows;
    int have_rows;
    uint64_t seed;
} args;

/* Print "mtl_prep: <msg> (see mtl_prep --help)" and return exit code 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mtl_prep: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see mtl_prep --help)\n");
    va_end(ap);
    return 2;
}

/* ---- the option table ---- */

typedef enum {
    SET_TEXT,
    SET_U64,
    SET_I64,
    SET_INT,
    SET_SPLIT,
    SET_VOCAB,
    SET_CORRELATION
} set_kind;
enum { FOR_PREP = 1, FOR_SYNTH = 2 };
#define NO_FLAG ((size_t)-1)

typedef struct {
    const char *name;
    int modes; /* FOR_PREP, FOR_SYNTH: where the option is known */
    set_kind kind;
    size_t field; /* offset into args */
    int64_t min;  /* SET_I64, SET_INT */
    size_t flag;  /* offset of an int set to 1 when the option is given, or NO_FLAG */
} prep_option;

#define AT(member) offsetof(args, member)
static const prep_option OPTIONS[] = {
    {"--output-dir", FOR_PREP | FOR_SYNTH, SET_TEXT, AT(prep.output_dir), 0, NO_FLAG},
    {"--split", FOR_PREP | FOR_SYNTH, SET_SPLIT, 0, 0, NO_FLAG},
    {"--config", FOR_PREP, SET_TEXT, AT(prep.config_path), 0, NO_FLAG},
    {"--input", FOR_PREP, SET_TEXT, AT(prep.input_path), 0, NO_FLAG},
    {"--train", FOR_PREP, SET_TEXT, AT(prep.train_path), 0, NO_FLAG},
    {"--test", FOR_PREP, SET_TEXT, AT(prep.test_path), 0, NO_FLAG},
    {"--vocab-from", FOR_PREP, SET_TEXT, AT(prep.vocab_from), 0, NO_FLAG},
    {"--shuffle-seed", FOR_PREP, SET_U64, AT(prep.shuffle_seed), 0, AT(prep.shuffle)},
    {"--kind", FOR_SYNTH, SET_TEXT, AT(kind), 0, NO_FLAG},
    {"--seed", FOR_SYNTH, SET_U64, AT(seed), 0, NO_FLAG},
    {"--rows", FOR_SYNTH, SET_I64, AT(rows), 1, AT(have_rows)},
    {"--correlation", FOR_SYNTH, SET_CORRELATION, AT(mmoe.correlation), 0, AT(have_correlation)},
    {"--sparse-fields", FOR_SYNTH, SET_INT, AT(ctr.sparse_fields), 0, AT(have_ctr_shape)},
    {"--vocab", FOR_SYNTH, SET_VOCAB, 0, 0, AT(have_ctr_shape)},
    {"--dense-fields", FOR_SYNTH, SET_INT, AT(ctr.dense_fields), 0, AT(have_ctr_shape)},
    {"--multi-fields", FOR_SYNTH, SET_INT, AT(ctr.multi_fields), 0, AT(have_ctr_shape)},
    {"--multi-len", FOR_SYNTH, SET_INT, AT(ctr.multi_len), 1, AT(have_ctr_shape)},
    {"--tasks", FOR_SYNTH, SET_INT, AT(ctr.tasks), 2, AT(have_ctr_shape)},
};

static const prep_option *find_option(const char *name, int mode) {
    for (size_t i = 0; i < sizeof OPTIONS / sizeof OPTIONS[0]; i++)
        if (strcmp(OPTIONS[i].name, name) == 0 && (OPTIONS[i].modes & mode)) return &OPTIONS[i];
    return NULL;
}

/* Set o from its value (numbers through the same strict parsers as
 * mtl_dist's options). Returns 0, or 2 after a usage error. */
static int set_option(args *a, const prep_option *o, const char *val) {
    void *field = (char *)a + o->field;
    mtl_error err;
    int64_t v = 0;
    double d = 0;
    int rc = MTL_OK;
    switch (o->kind) {
    case SET_TEXT:
        *(const char **)field = val;
        break;
    case SET_U64:
        rc = mtl_parse_u64(val, field, o->name, &err);
        break;
    case SET_I64:
        rc = mtl_parse_i64(val, o->min, INT64_MAX, field, o->name, &err);
        break;
    case SET_INT:
        rc = mtl_parse_i64(val, o->min, INT32_MAX, &v, o->name, &err);
        if (rc == MTL_OK) *(int *)field = (int)v;
        break;
    case SET_SPLIT:
        rc = mtl_split_parse(val, a->prep.split, &a->prep.n_split, &err);
        break;
    case SET_VOCAB:
        rc = mtl_synth_vocab_parse(val, a->ctr.vocab, &a->ctr.n_vocab, &err);
        break;
    case SET_CORRELATION:
        rc = mtl_parse_double(val, &d, o->name, &err);
        if (rc == MTL_OK && !(d >= -1.0 && d <= 1.0))
            rc = mtl_fail(&err, o->name, "'%s' is not a number in [-1, 1]", val);
        if (rc == MTL_OK) *(double *)field = d;
        break;
    }
    if (rc != MTL_OK) return usage_error("%s", err.msg);
    if (o->flag != NO_FLAG) *(int *)((char *)a + o->flag) = 1;
    return 0;
}

/* The options given together make sense. Returns 0 or 2. */
static int check_args(const args *a) {
    if (!a->prep.output_dir) return usage_error("--output-dir: required");
    if (a->synth) {
        if (!a->kind) return usage_error("--kind: required (mmoe or ctr)");
        if (strcmp(a->kind, "mmoe") == 0) {
            if (!a->have_correlation) return usage_error("--correlation: required for mmoe");
            if (a->have_ctr_shape)
                return usage_error("--sparse-fields/--vocab/--dense-fields/--tasks: only for "
                                   "--kind ctr");
        } else if (strcmp(a->kind, "ctr") == 0) {
            if (a->have_correlation) return usage_error("--correlation: only for --kind mmoe");
            if (a->ctr.sparse_fields > 0 && a->ctr.n_vocab > a->ctr.sparse_fields)
                return usage_error("--vocab: %d values for %d sparse fields", a->ctr.n_vocab,
                                   a->ctr.sparse_fields);
        } else {
            return usage_error("--kind: '%s' is not mmoe or ctr", a->kind);
        }
        return 0;
    }
    if (!a->prep.config_path) return usage_error("--config: required");
    int has_input = a->prep.input_path != NULL;
    int has_pair = a->prep.train_path != NULL || a->prep.test_path != NULL;
    if (has_input == has_pair)
        return usage_error("give either --input FILE or --train FILE --test FILE");
    if (has_pair && (!a->prep.train_path || !a->prep.test_path))
        return usage_error("--train and --test go together");
    if (has_pair && a->prep.n_split)
        return usage_error("--split: only with --input (--train/--test are the split)");
    if (has_pair && a->prep.shuffle) return usage_error("--shuffle-seed: only with --input");
    return 0;
}

/* Returns 0 to go on, 1 after --help, 2 on a usage error. */
static int parse_args(args *a, int argc, char **argv) {
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "synth") == 0) {
        a->synth = 1;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) return usage_error("'%s': unexpected argument", arg);
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) return usage_error("%s: unknown option", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        const prep_option *o = find_option(name, a->synth ? FOR_SYNTH : FOR_PREP);
        if (!o) return usage_error("%s: unknown option%s", name, a->synth ? " for synth" : "");
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return usage_error("%s: missing value", name);
            val = argv[++i];
        }
        if (*val == '\0') return usage_error("%s: empty value", name);
        if (set_option(a, o, val)) return 2;
    }
    return check_args(a);
}

int main(int argc, char **argv) {
    args a;
    memset(&a, 0, sizeof a);
    a.ctr.sparse_fields = 24; /* defaults of the ctr generator */
    a.ctr.vocab[0] = 10000;
    a.ctr.n_vocab = 1;
    a.ctr.dense_fields = 8;
    a.ctr.tasks = 2;
    int rc = parse_args(&a, argc, argv);
    if (rc == 1) return 0;
    if (rc) return rc;

    mtl_error err;
    memset(&err, 0, sizeof err);
    int status;
    if (!a.synth) {
        /* a bad config file is a usage error (exit 2), found before any input is read */
        mtl_prep_config pc;
        if (mtl_prep_config_load(&pc, a.prep.config_path, &err) != MTL_OK) {
            fprintf(stderr, "mtl_prep: %s\n", err.msg);
            return 2;
        }
        mtl_prep_config_free(&pc);
        status = mtl_prep_run(&a.prep, &err);
    } else if (strcmp(a.kind, "mmoe") == 0) {
        a.mmoe.rows = a.have_rows ? a.rows : 100000;
        a.mmoe.seed = a.seed;
        a.mmoe.n_split = a.prep.n_split;
        memcpy(a.mmoe.split, a.prep.split, sizeof a.mmoe.split);
        a.mmoe.output_dir = a.prep.output_dir;
        status = mtl_synth_mmoe(&a.mmoe, &err);
    } else {
        a.ctr.rows = a.have_rows ? a.rows : 1000000;
        a.ctr.seed = a.seed;
        a.ctr.n_split = a.prep.n_split;
        memcpy(a.ctr.split, a.prep.split, sizeof a.ctr.split);
        a.ctr.output_dir = a.prep.output_dir;
        status = mtl_synth_ctr(&a.ctr, &err);
    }
    if (status != MTL_OK) {
        fprintf(stderr, "mtl_prep: %s\n", err.msg);
        return 1;
    }
    return 0;
}
