/* Tests for src/metrics.c: AUC against hand-computed cases (ties included)
 * and an O(n^2) pair-counting reference; logloss/MSE/MAE against hand values;
 * gate statistics against hand values. (The gate statistics of real models
 * against a reference forward: tests/test_model.c, test_gate_stats.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mtl/metrics.h"
#include "test_util.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static double auc1(const float *s, const float *y, size_t n) {
    return mtl_auc(s, 1, y, 1, n);
}

static void test_auc_hand_cases(void **state) {
    (void)state;
    // positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered
    const float s1[] = {0.1f, 0.4f, 0.35f, 0.8f}, y1[] = {0, 0, 1, 1};
    assert_near(auc1(s1, y1, 4), 0.75, 1e-12);
    // pos {0.5, 0.9} vs neg {0.5, 0.2}: 0.9 beats both (2), 0.5 ties 0.5 (0.5) and
    // beats 0.2 (1) -> 3.5 / 4
    const float s2[] = {0.5f, 0.5f, 0.2f, 0.9f}, y2[] = {1, 0, 0, 1};
    assert_near(auc1(s2, y2, 4), 0.875, 1e-12);
    // all tied: every pair is half
    const float s3[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f}, y3[] = {1, 0, 0, 1, 0};
    assert_near(auc1(s3, y3, 5), 0.5, 1e-12);
    // perfect and reversed
    const float s4[] = {0.1f, 0.2f, 0.3f, 0.7f, 0.9f}, y4[] = {0, 0, 0, 1, 1};
    const float y5[] = {1, 1, 0, 0, 0};
    assert_near(auc1(s4, y4, 5), 1.0, 1e-12);
    assert_near(auc1(s4, y5, 5), 0.0, 1e-12);
    // scores need not be probabilities (logits, negative values)
    const float s6[] = {-3.0f, 2.0f, -1.0f, 0.0f}, y6[] = {0, 1, 1, 0};
    assert_near(auc1(s6, y6, 4), 0.75, 1e-12);
    // label threshold at 0.5: 0.7 is a positive, 0.3 a negative
    const float y7[] = {0.3f, 0.3f, 0.7f, 1.0f};
    assert_near(auc1(s1, y7, 4), 0.75, 1e-12);
}

static void test_auc_undefined(void **state) {
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f}, ones[] = {1, 1, 1}, zeros[] = {0, 0, 0};
    assert_true(isnan(auc1(s, ones, 3))); // one class only
    assert_true(isnan(auc1(s, zeros, 3)));
    assert_true(isnan(auc1(s, ones, 0))); // empty
    const float nan_labels[] = {NAN, NAN, NAN};
    assert_true(isnan(auc1(s, nan_labels, 3)));
    const float y[] = {0, 1, NAN};
    assert_true(isnan(auc1(s, y, 3)) == 0);
    const float s_nan[] = {0.1f, NAN, 0.3f}; // a NaN score of a labelled item
    assert_true(isnan(auc1(s_nan, y, 3)));
    const float s_nan_unlabelled[] = {0.1f, 0.4f, NAN}; // ...ignored when unlabelled
    assert_near(auc1(s_nan_unlabelled, y, 3), 1.0, 1e-12);
}

static void test_auc_skips_nan_labels(void **state) {
    (void)state;
    // the hand case 0.875 with unlabelled items mixed in at every rank
    const float s[] = {0.95f, 0.5f, 0.0f, 0.5f, 0.5f, 0.2f, 0.9f, 0.3f};
    const float y[] = {NAN, 1, NAN, 0, NAN, 0, 1, NAN};
    assert_near(auc1(s, y, N_OF(s)), 0.875, 1e-12);
}

static void test_auc_strides(void **state) {
    (void)state;
    // [4 x 3] row-major: column 0 = scores, column 2 = labels, column 1 noise
    const float m[4 * 3] = {
        0.1f,  9.0f, 0.0f, //
        0.4f,  9.0f, 0.0f, //
        0.35f, 9.0f, 1.0f, //
        0.8f,  9.0f, 1.0f,
    };
    assert_near(mtl_auc(m + 0, 3, m + 2, 3, 4), 0.75, 1e-12);
    // labels in a separate contiguous array, scores strided
    const float y[] = {0, 0, 1, 1};
    assert_near(mtl_auc(m, 3, y, 1, 4), 0.75, 1e-12);
}

/* xorshift64*: a fixed, platform-independent random stream for the test */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static double auc_reference(const float *s, const float *y, size_t n) {
    double pairs = 0.0, npos = 0.0, nneg = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i])) continue;
        if (y[i] >= 0.5f)
            npos += 1.0;
        else
            nneg += 1.0;
        if (y[i] < 0.5f) continue;
        for (size_t j = 0; j < n; j++) {
            if (isnan(y[j]) || y[j] >= 0.5f) continue;
            if (s[i] > s[j])
                pairs += 1.0;
            else if (s[i] == s[j])
                pairs += 0.5;
        }
    }
    return pairs / (npos * nneg);
}

static void test_auc_random_vs_pairs(void **state) {
    (void)state;
    enum { N = 2000 };
    static float s[N], y[N];
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    for (int trial = 0; trial < 5; trial++) {
        // few distinct score levels so most items tie with many others,
        // ~30% positives correlated with the score, ~5% missing labels
        unsigned levels = trial == 0 ? 3u : 10u + 40u * (unsigned)trial;
        for (int i = 0; i < N; i++) {
            unsigned level = (unsigned)(rng_next(&rng) >> 33) % levels;
            s[i] = (float)level / (float)levels;
            double u = (double)(rng_next(&rng) >> 11) / 9007199254740992.0;
            y[i] = u < 0.15 + 0.3 * s[i] ? 1.0f : 0.0f;
            if (rng_next(&rng) % 20 == 0) y[i] = NAN;
        }
        double want = auc_reference(s, y, N);
        double got = mtl_auc(s, 1, y, 1, N);
        assert_near(got, want, 1e-9);
        assert_true(want > 0.5 && want < 1.0); // a non-trivial case
    }
}

static void test_logloss(void **state) {
    (void)state;
    // -(ln 0.9 + ln 0.8) / 2; the NaN-labelled item does not count
    const float p[] = {0.9f, 0.2f, 0.6f}, y[] = {1, 0, NAN};
    assert_near(mtl_logloss(p, 1, y, 1, NULL, 3), 0.164252033486018, 1e-7);
    // clamped to [1e-7, 1 - 1e-7]: a confident miss costs -ln(1e-7), not inf
    const float p0[] = {0.0f}, one[] = {1.0f}, zero[] = {0.0f};
    assert_near(mtl_logloss(p0, 1, one, 1, NULL, 1), 16.11809565095832, 1e-9);
    assert_near(mtl_logloss(p0, 1, zero, 1, NULL, 1), 1e-7, 1e-9);
    const float p1[] = {1.0f};
    assert_near(mtl_logloss(p1, 1, zero, 1, NULL, 1), 16.11809565095832, 1e-6);
    // strided column, all-NaN labels, and a NaN prediction propagating
    const float m[] = {0.9f, 1.0f, 0.2f, 0.0f};
    assert_near(mtl_logloss(m, 2, m + 1, 2, NULL, 2), 0.164252033486018, 1e-7);
    const float ynan[] = {NAN, NAN};
    assert_true(isnan(mtl_logloss(p, 1, ynan, 1, NULL, 2)));
    const float pnan[] = {NAN};
    assert_true(isnan(mtl_logloss(pnan, 1, one, 1, NULL, 1)));
    // weighted, weights in the labels' stride: (2 (-ln 0.9) + 0.5 (-ln 0.8)) / 2.5;
    // the weight-0 row (a sure miss) and the unlabelled one count for nothing
    const float wm[] = {0.9f, 1.0f, 2.0f, 0.2f, 0.0f, 0.5f, 0.0f, 1.0f, 0.0f, 0.6f, NAN, 7.0f};
    assert_near(mtl_logloss(wm, 3, wm + 1, 3, wm + 2, 4), (2.0 * -log(0.9) + 0.5 * -log(0.8)) / 2.5,
                1e-7);
    const float w0[] = {0.0f, 0.0f, 0.0f};
    assert_true(isnan(mtl_logloss(p, 1, y, 1, w0, 3))); // no weight at all
}

static void test_mse_mae(void **state) {
    (void)state;
    // errors -0.5, 0, 2 (the 4th item is unlabelled)
    const float pred[] = {1.0f, 2.0f, 3.0f, 100.0f}, y[] = {1.5f, 2.0f, 1.0f, NAN};
    assert_near(mtl_mse_metric(pred, 1, y, 1, NULL, 4), 4.25 / 3.0, 1e-12);
    assert_near(mtl_mae_metric(pred, 1, y, 1, NULL, 4), 2.5 / 3.0, 1e-12);
    // strided: [2 x 2] matrix, column 1 against column 0
    const float m[] = {1.0f, 4.0f, 2.0f, -1.0f};
    assert_near(mtl_mse_metric(m + 1, 2, m, 2, NULL, 2), (9.0 + 9.0) / 2.0, 1e-12);
    assert_near(mtl_mae_metric(m + 1, 2, m, 2, NULL, 2), 3.0, 1e-12);
    const float ynan[] = {NAN};
    assert_true(isnan(mtl_mse_metric(pred, 1, ynan, 1, NULL, 1)));
    assert_true(isnan(mtl_mae_metric(pred, 1, ynan, 1, NULL, 1)));
    // weighted: errors -0.5 (w 2), 0 (w 0: dropped), 2 (w 0.5)
    const float w[] = {2.0f, 0.0f, 0.5f, 1.0f};
    assert_near(mtl_mse_metric(pred, 1, y, 1, w, 4), (2.0 * 0.25 + 0.5 * 4.0) / 2.5, 1e-12);
    assert_near(mtl_mae_metric(pred, 1, y, 1, w, 4), (2.0 * 0.5 + 0.5 * 2.0) / 2.5, 1e-12);
}

static void test_gauc_hand(void **state) {
    (void)state;
    // group 7: scores/labels of the first AUC hand case, AUC 3/4 over 4 rows;
    // group 3: positive 0.5 ties negative 0.5 (1/2) and loses to 0.9 (0): 1/4 over 3 rows;
    // group 5: positives only, not counted; group 9: 1 over 2 labelled rows (NaN label skipped).
    // Rows interleaved so sorting by group is exercised.
    const float nan = NAN;
    const int64_t g[] = {7, 3, 5, 9, 7, 3, 9, 7, 5, 3, 9, 7};
    const float s[] = {0.1f, 0.5f, 0.3f, 0.9f, 0.4f, 0.5f, 0.2f, 0.35f, 0.6f, 0.9f, 0.1f, 0.8f};
    const float y[] = {0, 1, 1, 1, 0, 0, nan, 1, 1, 0, 0, 1};
    int64_t groups = -1;
    double want = (4 * 0.75 + 3 * 0.25 + 2 * 1.0) / 9.0;
    assert_near(mtl_gauc(s, 1, y, 1, g, N_OF(s), &groups), want, 1e-12);
    assert_int_equal(groups, 3);
    // a single group is the plain AUC
    const int64_t one[N_OF(s)] = {0};
    assert_near(mtl_gauc(s, 1, y, 1, one, N_OF(s), &groups), mtl_auc(s, 1, y, 1, N_OF(s)), 1e-12);
    assert_int_equal(groups, 1);
    // no group with both classes: NaN and 0 groups
    const float pos[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(isnan(mtl_gauc(s, 1, pos, 1, g, N_OF(s), &groups)));
    assert_int_equal(groups, 0);
}

/* Gate A mixes 2 experts: rows (1, 0), (1/2, 1/2), (1/4, 3/4) at stride 3
 * (the third column is another gate's); gate B 3 experts, uniform, added one
 * row at a time. Two "ranks" holding half the rows each, summed as
 * mtl_dist_sum_doubles does, give the statistics of all rows. */
static void test_gate_stats_hand(void **state) {
    (void)state;
    const float a[] = {1.0f, 0.0f, 9.0f, 0.5f, 0.5f, 9.0f, 0.25f, 0.75f, 9.0f};
    const float third = 1.0f / 3.0f, b[] = {third, third, third};
    const int K[] = {2, 3};
    mtl_gate_stats s, r0, r1;
    mtl_error err;
    assert_int_equal(mtl_gate_stats_init(&s, 2, K, &err), MTL_OK);
    assert_int_equal(s.n, 2 + 2 + 3 + 2);
    double w[3], h;
    assert_near(mtl_gate_stats_mean(&s, 0, w, &h), 0.0, 0.0); /* no rows yet: NaN */
    assert_true(isnan(w[0]) && isnan(w[1]) && isnan(h));
    mtl_gate_stats_add(&s, 0, a, 3, 3);
    mtl_gate_stats_add(&s, 1, b, 3, 1);
    mtl_gate_stats_add(&s, 1, b, 3, 1);
    // entropy per row: 0 (0 ln 0 = 0), ln 2, -(1/4 ln 1/4 + 3/4 ln 3/4)
    double h_a = (0.0 + log(2.0) - (0.25 * log(0.25) + 0.75 * log(0.75))) / 3.0;
    assert_near(mtl_gate_stats_mean(&s, 0, w, &h), 3.0, 0.0);
    assert_near(w[0], 1.75 / 3.0, 1e-12);
    assert_near(w[1], 1.25 / 3.0, 1e-12);
    assert_near(w[0] + w[1], 1.0, 1e-12);
    assert_near(h, h_a, 1e-12);
    assert_near(mtl_gate_stats_mean(&s, 1, w, &h), 2.0, 0.0);
    for (int k = 0; k < 3; k++) assert_near(w[k], 1.0 / 3.0, 1e-7);
    assert_near(h, log(3.0), 1e-6); /* uniform: the largest entropy, ln K */

    assert_int_equal(mtl_gate_stats_init(&r0, 2, K, &err), MTL_OK);
    assert_int_equal(mtl_gate_stats_init(&r1, 2, K, &err), MTL_OK);
    mtl_gate_stats_add(&r0, 0, a, 3, 1);
    mtl_gate_stats_add(&r1, 0, a + 3, 3, 2);
    mtl_gate_stats_add(&r0, 1, b, 3, 1);
    mtl_gate_stats_add(&r1, 1, b, 3, 1);
    for (size_t i = 0; i < r0.n; i++) r0.sums[i] += r1.sums[i];
    for (size_t i = 0; i < s.n; i++) assert_near(r0.sums[i], s.sums[i], 1e-15);

    mtl_gate_stats_reset(&s);
    assert_near(mtl_gate_stats_mean(&s, 1, w, &h), 0.0, 0.0);
    assert_true(isnan(h));
    mtl_gate_stats_free(&s);
    mtl_gate_stats_free(&r0);
    mtl_gate_stats_free(&r1);
    assert_null(s.sums);
    // a model without gates: nothing to sum
    assert_int_equal(mtl_gate_stats_init(&s, 0, NULL, &err), MTL_OK);
    assert_int_equal(s.n, 0);
    mtl_gate_stats_reset(&s);
    mtl_gate_stats_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_hand_cases),
        cmocka_unit_test(test_auc_undefined),
        cmocka_unit_test(test_auc_skips_nan_labels),
        cmocka_unit_test(test_auc_strides),
        cmocka_unit_test(test_auc_random_vs_pairs),
        cmocka_unit_test(test_gauc_hand),
        cmocka_unit_test(test_logloss),
        cmocka_unit_test(test_mse_mae),
        cmocka_unit_test(test_gate_stats_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
