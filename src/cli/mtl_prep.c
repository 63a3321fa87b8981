/* mtl_prep: CSV -> HDF5 datasets, and synthetic datasets. Argument parsing
 * only; the work is in src/prep.c and src/synth.c. Exit codes: 0 ok,
 * 1 error (bad input data, I/O), 2 usage error or bad --config file (as
 * mtl_dist). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/prep.h"
#include "mtl/synth.h"

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

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno || v < lo) {
        char bound[32];
        snprintf(bound, sizeof bound, "%lld", (long long)lo);
        return usage_error("%s: '%s' is not an integer >= %s", opt, s, bound);
    }
    *out = (int64_t)v;
    return 0;
}

static int parse_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (s[0] == '-') return usage_error("%s: '%s' is not a non-negative integer", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno)
        return usage_error("%s: '%s' is not a non-negative integer", opt, s);
    *out = (uint64_t)v;
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int *out) {
    int64_t v = 0;
    if (parse_i64(opt, s, lo, &v)) return 2;
    if (v > INT32_MAX) return usage_error("%s: '%s' is too large", opt, s);
    *out = (int)v;
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
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return usage_error("%s: missing value", name);
            val = argv[++i];
        }
        if (*val == '\0') return usage_error("%s: empty value", name);
        mtl_error err;
        int rc = 0;
        if (strcmp(name, "--output-dir") == 0)
            a->prep.output_dir = val;
        else if (strcmp(name, "--split") == 0) {
            if (mtl_split_parse(val, a->prep.split, &a->prep.n_split, &err)) {
                fprintf(stderr, "mtl_prep: %s\n", err.msg);
                return 2;
            }
        } else if (strcmp(name, "--seed") == 0 && a->synth)
            rc = parse_u64(name, val, &a->seed);
        else if (strcmp(name, "--rows") == 0 && a->synth) {
            rc = parse_i64(name, val, 1, &a->rows);
            a->have_rows = 1;
        } else if (strcmp(name, "--kind") == 0 && a->synth)
            a->kind = val;
        else if (strcmp(name, "--correlation") == 0 && a->synth) {
            char *end;
            errno = 0;
            a->mmoe.correlation = strtod(val, &end);
            if (end == val || *end != '\0' || errno || !(a->mmoe.correlation >= -1.0) ||
                !(a->mmoe.correlation <= 1.0))
                return usage_error("%s: '%s' is not a number in [-1, 1]", name, val);
            a->have_correlation = 1;
        } else if (strcmp(name, "--sparse-fields") == 0 && a->synth) {
            rc = parse_int(name, val, 0, &a->ctr.sparse_fields);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--vocab") == 0 && a->synth) {
            if (mtl_synth_vocab_parse(val, a->ctr.vocab, &a->ctr.n_vocab, &err))
                return usage_error("%s", err.msg);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--dense-fields") == 0 && a->synth) {
            rc = parse_int(name, val, 0, &a->ctr.dense_fields);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--multi-fields") == 0 && a->synth) {
            rc = parse_int(name, val, 0, &a->ctr.multi_fields);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--multi-len") == 0 && a->synth) {
            rc = parse_int(name, val, 1, &a->ctr.multi_len);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--tasks") == 0 && a->synth) {
            rc = parse_int(name, val, 2, &a->ctr.tasks);
            a->have_ctr_shape = 1;
        } else if (strcmp(name, "--config") == 0 && !a->synth)
            a->prep.config_path = val;
        else if (strcmp(name, "--input") == 0 && !a->synth)
            a->prep.input_path = val;
        else if (strcmp(name, "--train") == 0 && !a->synth)
            a->prep.train_path = val;
        else if (strcmp(name, "--test") == 0 && !a->synth)
            a->prep.test_path = val;
        else if (strcmp(name, "--vocab-from") == 0 && !a->synth)
            a->prep.vocab_from = val;
        else if (strcmp(name, "--shuffle-seed") == 0 && !a->synth) {
            rc = parse_u64(name, val, &a->prep.shuffle_seed);
            a->prep.shuffle = 1;
        } else
            return usage_error("%s: unknown option%s", name, a->synth ? " for synth" : "");
        if (rc) return 2;
    }

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
