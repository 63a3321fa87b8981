/* Replays the fuzz corpora (tests/fuzz/corpus/<target>/) and the crash
 * reproducers found by fuzzing (tests/fuzz/regressions/<target>/) through the
 * fuzz targets' bodies (tests/fuzz/targets.h), so the normal build, CI and
 * the sanitizer build check every one of them: no crash, no leak, and every
 * property the targets assert. The hand-made seeds (seed-*) must also reach
 * exactly the stage listed in `expected` (a valid checkpoint loads its
 * tensors, a near-miss fails where it should), which keeps the harness
 * honest: a seed that silently stopped exercising its loader fails here. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            fail_msg("%s: FUZZ_ASSERT(%s) failed", current_file, #cond);                           \
        }                                                                                          \
    } while (0)

static const char *current_file = "";

#include "../tests/fuzz/targets.h"

#define FUZZ_DIR MTL_SOURCE_DIR "/tests/fuzz"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* The stage each hand-made seed and each reproducer reaches (FUZZ_* flags of
 * targets.h, exact). */
static const struct {
    const char *target, *name;
    int reached;
    int may; /* stages that may also be reached (warned about when not) */
} expected[] = {
    {"csv", "seed-adult-split2", FUZZ_PREP_OK, 0},
    {"csv", "seed-adult-split3", FUZZ_PREP_OK, 0},
    {"csv", "seed-adult-gzip", FUZZ_PREP_OK, 0},
    {"csv", "seed-adult-train-test", FUZZ_PREP_OK, 0},
    {"csv", "seed-reg-split", FUZZ_PREP_OK, 0},
    {"csv", "seed-reg-vocab-from", FUZZ_PREP_OK | FUZZ_VOCAB_FROM_OK, 0},
    {"csv", "seed-cat-vocab-from", FUZZ_PREP_OK | FUZZ_VOCAB_FROM_OK, 0},
    {"csv", "seed-bad-fields", 0, 0},
    {"config", "seed-run-ini", FUZZ_PARSE_OK | FUZZ_VALID_OK, 0},
    {"config", "seed-esmm-ini", FUZZ_PARSE_OK, 0},
    {"config", "seed-cli-config", FUZZ_PARSE_OK, 0},
    {"config", "seed-cli-predict", 0, 0},
    {"config", "seed-cli-bad", 0, 0},
    {"config", "seed-prep-adult", FUZZ_PARSE_OK | FUZZ_VALID_OK, 0},
    {"config", "seed-prep-census", FUZZ_PARSE_OK | FUZZ_VALID_OK, 0},
    {"config", "seed-prep-census_education", FUZZ_PARSE_OK | FUZZ_VALID_OK, 0},
    {"config", "seed-prep-bad", 0, 0},
    {"h5", "seed-prep-dataset", FUZZ_DATASET_OK | FUZZ_META_OK | FUZZ_VOCAB_FROM_OK, 0},
    /* a checkpoint of an older version of a model does not load its tensors
     * (a parameter was added or renamed): not an error here, but the seed no
     * longer exercises the tensor loading; regenerate with make_seeds.sh */
    {"h5", "seed-checkpoint", FUZZ_STATE_OK, FUZZ_TENSORS_OK},
    {"h5", "seed-checkpoint-mmoe-bn", FUZZ_STATE_OK, FUZZ_TENSORS_OK},
    {"h5", "seed-h5py", FUZZ_DATASET_OK, 0},
    {"h5", "seed-h5py-names-fixed", FUZZ_DATASET_OK, 0},
    {"h5", "seed-h5py-names-vlen-ascii-no-weights", FUZZ_DATASET_OK, 0},
    {"h5", "seed-h5py-sparse-cols-0", FUZZ_DATASET_OK, 0},
    {"h5", "seed-h5py-dense-cols-0-tasks-1", FUZZ_DATASET_OK, 0},
    {"h5", "seed-h5py-bad-sparse-range", 0, 0},
    {"h5", "seed-h5py-bad-dense-nan", 0, 0},
    {"h5", "seed-h5py-bad-label-rows", 0, 0},
    {"h5", "seed-h5py-bad-vocab-float", 0, 0},
    {"h5", "seed-h5py-bad-names-int", 0, 0},
    {"h5", "seed-h5py-bad-weights-rank2", 0, 0},
    {"h5", "seed-h5py-labels-dtype-float64", FUZZ_DATASET_OK, 0}, /* converted on read */
    {"h5", "seed-h5py-bad-sparse-huge", 0, 0},                    /* an int64 id of 2^40 */
    {"h5", "seed-h5py-numpy-defaults-compression-lzf", FUZZ_DATASET_OK, 0},
    {"h5", "seed-meta-no-sparse", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "seed-meta-more-sparse", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "seed-meta-renamed", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "seed-meta-dup-vocab", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "seed-meta-bad-count", FUZZ_DATASET_OK, 0},
    {"h5", "seed-ckpt-format", 0, 0},
    {"h5", "seed-ckpt-fixed-string", 0, 0},
    {"h5", "seed-ckpt-17-tasks", 0, 0},
    {"h5", "seed-ckpt-flat-tensor", FUZZ_STATE_OK, 0},
    {"h5", "seed-ckpt-nan", FUZZ_STATE_OK, 0},
    {"h5", "seed-ckpt-no-optimizer", FUZZ_STATE_OK, 0},
    {"h5", "seed-ckpt-vocab-neg", FUZZ_STATE_OK, 0},
    {"h5", "seed-ckpt-long-config", FUZZ_STATE_OK, 0},
    /* reproducers of what fuzzing found (tests/fuzz/README.md, "Findings") */
    {"csv", "dense-minmax-overflow", FUZZ_PREP_OK, 0},
    {"csv", "regression-label-float-overflow", 0, 0},
    {"h5", "meta-no-sparse", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "meta-sparse-fewer-columns", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "meta-dense-min-inf", FUZZ_DATASET_OK | FUZZ_META_OK, 0},
    {"h5", "ckpt-dense-count-overflow", 0, 0},
};

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run fn on every file of dir (sorted); returns the number run (0 when the
 * directory does not exist). */
static int replay_dir(const char *target, const char *dir, fuzz_fn fn, int *seeds_checked,
                      int *mismatches) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            assert_non_null(names);
        }
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, cmp_str);
    static char path[2048];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        current_file = path;
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        assert_true(size >= 0);
        uint8_t *buf = malloc((size_t)size + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        int reached = fn(buf, (size_t)size);
        free(buf);
        for (size_t k = 0; k < sizeof expected / sizeof *expected; k++) {
            if (strcmp(expected[k].target, target) != 0 || strcmp(expected[k].name, names[i]) != 0)
                continue;
            if ((reached & expected[k].may) != expected[k].may)
                print_message("warning: %s: stages 0x%x not reached (stale seed? run "
                              "tests/fuzz/make_seeds.sh)\n",
                              path, (unsigned)(expected[k].may & ~reached));
            if ((reached & ~expected[k].may) != expected[k].reached) {
                print_error("%s: reached stages 0x%x, expected 0x%x\n", path,
                            (unsigned)(reached & ~expected[k].may), (unsigned)expected[k].reached);
                (*mismatches)++;
            }
            (*seeds_checked)++;
        }
        free(names[i]);
    }
    free(names);
    return (int)n;
}

static void replay(const char *target, fuzz_fn fn) {
    char dir[1024];
    int seeds = 0, mismatches = 0;
    snprintf(dir, sizeof dir, "%s/corpus/%s", FUZZ_DIR, target);
    int n_corpus = replay_dir(target, dir, fn, &seeds, &mismatches);
    snprintf(dir, sizeof dir, "%s/regressions/%s", FUZZ_DIR, target);
    int n_regr = replay_dir(target, dir, fn, &seeds, &mismatches);
    print_message("fuzz %s: %d corpus inputs, %d regression inputs replayed\n", target, n_corpus,
                  n_regr);
    assert_true(n_corpus > 0);
    assert_int_equal(mismatches, 0);
    int want = 0;
    for (size_t k = 0; k < sizeof expected / sizeof *expected; k++)
        want += strcmp(expected[k].target, target) == 0;
    assert_int_equal(seeds, want); /* every listed seed is present */
}

static void test_csv(void **state) {
    (void)state;
    replay("csv", fuzz_csv_run);
}

static void test_config(void **state) {
    (void)state;
    replay("config", fuzz_config_run);
}

static void test_h5(void **state) {
    (void)state;
    replay("h5", fuzz_h5_run);
}

int main(void) {
    setenv("MTL_FUZZ_TMPDIR", MTL_TEST_TMP, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_h5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
