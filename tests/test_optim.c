/* Tests for src/optim.c: each optimizer's first two steps against values
 * computed by hand (in double, from the documented formulas), Adam
 * minimizing a quadratic, L2, and the name table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mtl/optim.h"
#include "test_util.h"

static void test_defaults_and_names(void **state) {
    (void)state;
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAM);
    assert_int_equal(o.kind, MTL_OPT_ADAM);
    assert_true(o.beta1 == 0.9f && o.beta2 == 0.999f && o.eps == 1e-7f);
    assert_true(o.momentum == 0.0f && o.adagrad_init == 0.1f && o.lr > 0.0f);
    mtl_optim_defaults(&o, MTL_OPT_ADAGRAD);
    assert_int_equal(o.kind, MTL_OPT_ADAGRAD);
    assert_true(o.adagrad_init == 0.1f);

    assert_int_equal(mtl_optim_parse("adam"), MTL_OPT_ADAM);
    assert_int_equal(mtl_optim_parse("sgd"), MTL_OPT_SGD);
    assert_int_equal(mtl_optim_parse("adagrad"), MTL_OPT_ADAGRAD);
    assert_int_equal(mtl_optim_parse("rmsprop"), -1);
    assert_int_equal(mtl_optim_parse(""), -1);
    assert_int_equal(mtl_optim_parse(NULL), -1);
    for (int k = MTL_OPT_ADAM; k <= MTL_OPT_ADAGRAD; k++)
        assert_int_equal(mtl_optim_parse(mtl_optim_name((mtl_optim_kind)k)), k);
}

static void test_adam_two_steps(void **state) {
    (void)state;
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAM);
    o.lr = 0.01f;
    // three parameters: one per gradient sign, one with no gradient at all
    float p[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0}, v[3] = {0};
    const float g1[3] = {0.5f, -3.0f, 0.0f}, g2[3] = {-0.25f, 1.0f, 0.0f};
    // step 1: m = 0.1 g, v = 0.001 g^2, lr_t = 0.01 sqrt(0.001) / 0.1, so the
    // step is ~lr * sign(g) (less the eps effect): p0 - 0.0099999367...
    mtl_optim_update(&o, p, g1, m, v, 3, 1);
    assert_near(p[0], 0.9900000632451532, 1e-6);
    assert_near(p[1], -1.9900000105409144, 1e-6);
    assert_near(p[2], 0.5, 0.0);
    assert_near(m[0], 0.05, 1e-7);
    assert_near(v[0], 0.00025, 1e-8); // 1 - 0.999f is 1.00005e-3 in float, as in TF
    // step 2: m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2,
    // lr_t = 0.01 sqrt(1 - 0.999^2) / (1 - 0.9^2), p -= lr_t m / (sqrt(v) + 1e-7)
    mtl_optim_update(&o, p, g2, m, v, 3, 2);
    assert_near(p[0], 0.9873367079207922, 1e-6);
    assert_near(p[1], -1.985997828825354, 1e-6);
    assert_near(p[2], 0.5, 0.0);
    assert_near(m[1], -0.17, 1e-7);
    assert_near(v[1], 0.009991, 1e-6);
}

static void test_adam_eps_placement(void **state) {
    (void)state;
    // a tiny gradient exposes where eps goes: Keras adds it to the
    // uncorrected sqrt(v) (sqrt(v1) = 1e-6 * sqrt(0.001) = 3.16e-8), so step 1
    // is lr_t * m / (sqrt(v) + eps) ~ 0.0024, where eps added to sqrt(v_hat)
    // (PyTorch) would give 0.01 * 1e-6 / (1e-6 + 1e-7) ~ 0.0091
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAM);
    o.lr = 0.01f;
    float p[1] = {0.0f}, m[1] = {0}, v[1] = {0};
    const float g[1] = {1e-6f};
    mtl_optim_update(&o, p, g, m, v, 1, 1);
    double lr_t = 0.01 * sqrt(1.0 - 0.999) / (1.0 - 0.9);
    double mm = 0.1 * 1e-6, vv = 0.001 * 1e-12;
    double want = -lr_t * mm / (sqrt(vv) + 1e-7);
    assert_near(p[0], want, 1e-4 * fabs(want)); // float32 state, as Keras
    assert_true(fabs(p[0]) < 0.0025);           // the PyTorch form would move ~0.0091
}

static void test_sgd_two_steps(void **state) {
    (void)state;
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_SGD);
    o.lr = 0.1f;
    const float g1[1] = {0.5f}, g2[1] = {-0.25f};
    // plain: p -= lr g
    float p[1] = {1.0f}, m[1] = {0}, v[1] = {0};
    mtl_optim_update(&o, p, g1, m, v, 1, 1);
    assert_near(p[0], 0.95, 1e-7);
    mtl_optim_update(&o, p, g2, m, v, 1, 2);
    assert_near(p[0], 0.975, 1e-7);
    // momentum 0.9, PyTorch style: buf = 0.5 -> p = 0.95; buf = 0.45 - 0.25 = 0.2 -> p = 0.93
    o.momentum = 0.9f;
    p[0] = 1.0f;
    m[0] = 0.0f;
    mtl_optim_update(&o, p, g1, m, v, 1, 1);
    assert_near(p[0], 0.95, 1e-7);
    assert_near(m[0], 0.5, 1e-7);
    mtl_optim_update(&o, p, g2, m, v, 1, 2);
    assert_near(m[0], 0.2, 1e-7);
    assert_near(p[0], 0.93, 1e-7);
}

static void test_adagrad_two_steps(void **state) {
    (void)state;
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAGRAD);
    o.lr = 0.1f;
    const float g1[1] = {0.5f}, g2[1] = {-0.25f};
    float p[1] = {1.0f}, m[1] = {0}, v[1] = {o.adagrad_init};
    // acc = 0.1 + 0.25 = 0.35, p = 1 - 0.1 * 0.5 / (sqrt(0.35) + 1e-7)
    mtl_optim_update(&o, p, g1, m, v, 1, 1);
    assert_near(v[0], 0.35, 1e-7);
    assert_near(p[0], 0.9154845888128602, 1e-6);
    // acc = 0.4125, p += 0.1 * 0.25 / (sqrt(0.4125) + 1e-7)
    mtl_optim_update(&o, p, g2, m, v, 1, 2);
    assert_near(v[0], 0.4125, 1e-7);
    assert_near(p[0], 0.9544095299603312, 1e-6);
}

static void test_adam_minimizes_quadratic(void **state) {
    (void)state;
    // f(p) = sum_i a_i (p_i - c_i)^2, badly scaled (a from 0.01 to 100):
    // Adam's per-coordinate step size should handle it
    enum { N = 37 }; // not a multiple of the SIMD width: the loop tail runs too
    float p[N], g[N], m[N] = {0}, v[N] = {0}, a[N], c[N];
    for (int i = 0; i < N; i++) {
        a[i] = powf(10.0f, -2.0f + 4.0f * (float)i / (float)(N - 1));
        c[i] = (float)(i % 7) - 3.0f;
        p[i] = 0.0f;
    }
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAM);
    o.lr = 0.05f;
    for (int64_t t = 1; t <= 3000; t++) {
        for (int i = 0; i < N; i++) g[i] = 2.0f * a[i] * (p[i] - c[i]);
        mtl_optim_update(&o, p, g, m, v, N, t);
    }
    for (int i = 0; i < N; i++) assert_near(p[i], c[i], 1e-2);
}

static void test_l2(void **state) {
    (void)state;
    float g[5] = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f};
    const float p[5] = {2.0f, -4.0f, 0.5f, 0.0f, 8.0f};
    mtl_add_l2(g, p, 5, 0.25f); // g += 2 * 0.25 * p
    const double want[5] = {2.0, -2.0, -0.75, 2.0, 4.5};
    for (int i = 0; i < 5; i++) assert_near(g[i], want[i], 1e-7);
    mtl_add_l2(g, p, 5, 0.0f); // no-op
    for (int i = 0; i < 5; i++) assert_near(g[i], want[i], 1e-7);
}

static void test_all_finite(void **state) {
    (void)state;
    float x[37];
    for (int i = 0; i < 37; i++) x[i] = (float)i - 18.5f;
    x[3] = 3.4e38f; /* large but finite */
    assert_true(mtl_all_finite(x, 37));
    assert_true(mtl_all_finite(x, 0));
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int at = 0; at < 37; at += 12) {
            float y[37];
            memcpy(y, x, sizeof y);
            y[at] = bad[b];
            assert_false(mtl_all_finite(y, 37));
        }
}

/* Lazy updates of table rows (TF's LazyAdam, PyTorch's SparseAdam) against a
 * reference written here in double from the formulas: over five steps that
 * touch different rows, a touched row's moments and value follow Adam with
 * the global step's bias correction; an untouched row, its moments and its
 * value stay exactly as they were. Tolerance: the float kernel against a
 * double reference, a few float ulps of values of size ~1 per step. */
static void test_lazy_rows_against_reference(void **state) {
    (void)state;
    enum { ROWS = 6, DIM = 3, STEPS = 5 };
    for (int kind = MTL_OPT_ADAM; kind <= MTL_OPT_ADAGRAD; kind++) {
        mtl_optim o;
        mtl_optim_defaults(&o, (mtl_optim_kind)kind);
        o.lr = 0.05f;
        o.momentum = kind == MTL_OPT_SGD ? 0.9f : 0.0f;
        const float l2 = kind == MTL_OPT_ADAM ? 0.0f : 0.01f; /* on the touched rows only */
        float p[ROWS * DIM], m[ROWS * DIM] = {0}, v[ROWS * DIM];
        double rp[ROWS * DIM], rm[ROWS * DIM] = {0}, rv[ROWS * DIM];
        for (int i = 0; i < ROWS * DIM; i++) {
            p[i] = (float)(0.3 * i - 2.0);
            rp[i] = p[i];
            v[i] = kind == MTL_OPT_ADAGRAD ? o.adagrad_init : 0.0f;
            rv[i] = v[i];
        }
        /* steps touch {0,3}, {3}, {5,1,0}, {2}, {3,5}: row 4 never */
        const int32_t touched[STEPS][3] = {{0, 3}, {3}, {5, 1, 0}, {2}, {3, 5}};
        const int n_touched[STEPS] = {2, 1, 3, 1, 2};
        for (int step = 1; step <= STEPS; step++) {
            const int32_t *ids = touched[step - 1];
            int n = n_touched[step - 1];
            float g[3 * DIM];
            for (int k = 0; k < n * DIM; k++) g[k] = (float)sin(1.7 * step + 0.9 * k) * 2.0f;
            float g_in[3 * DIM]; /* the row update adds L2 to g in place */
            memcpy(g_in, g, sizeof g_in);
            mtl_optim_update_rows(&o, p, m, v, DIM, ids, g, n, l2, step);
            double b1 = o.beta1, b2 = o.beta2, eps = o.eps, lr = o.lr;
            double lr_t = lr * sqrt(1 - pow(b2, step)) / (1 - pow(b1, step));
            for (int k = 0; k < n; k++)
                for (int j = 0; j < DIM; j++) {
                    int i = ids[k] * DIM + j;
                    double gi = g_in[k * DIM + j] + 2.0 * l2 * rp[i];
                    if (kind == MTL_OPT_ADAM) {
                        rm[i] = b1 * rm[i] + (1 - b1) * gi;
                        rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
                        rp[i] -= lr_t * rm[i] / (sqrt(rv[i]) + eps);
                    } else if (kind == MTL_OPT_SGD) {
                        rm[i] = o.momentum * rm[i] + gi;
                        rp[i] -= lr * rm[i];
                    } else {
                        rv[i] += gi * gi;
                        rp[i] -= lr * gi / (sqrt(rv[i]) + eps);
                    }
                }
        }
        for (int i = 0; i < ROWS * DIM; i++) {
            assert_near(p[i], rp[i], 2e-6 * (1 + fabs(rp[i])));
            assert_near(m[i], rm[i], 2e-6 * (1 + fabs(rm[i])));
            assert_near(v[i], rv[i], 2e-6 * (1 + fabs(rv[i])));
        }
        for (int j = 0; j < DIM; j++) /* row 4: never touched, exactly as initialized */
            assert_true(p[4 * DIM + j] == (float)(0.3 * (4 * DIM + j) - 2.0));
    }
}

/* Every row touched once, in order: the row update is the dense update. */
static void test_rows_all_touched_equal_dense(void **state) {
    (void)state;
    enum { ROWS = 5, DIM = 4, N = ROWS * DIM };
    mtl_optim o;
    mtl_optim_defaults(&o, MTL_OPT_ADAM);
    float p1[N], p2[N], m1[N] = {0}, m2[N] = {0}, v1[N] = {0}, v2[N] = {0}, g[N];
    const int32_t ids[ROWS] = {0, 1, 2, 3, 4};
    for (int i = 0; i < N; i++) {
        p1[i] = p2[i] = (float)cos(i);
        g[i] = (float)sin(3.0 * i);
    }
    for (int step = 1; step <= 3; step++) {
        mtl_optim_update(&o, p1, g, m1, v1, N, step);
        float g2[N];
        memcpy(g2, g, sizeof g2); /* the row update adds L2 in place */
        mtl_optim_update_rows(&o, p2, m2, v2, DIM, ids, g2, ROWS, 0.0f, step);
    }
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(v1, v2, sizeof v1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_finite),
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_adam_two_steps),
        cmocka_unit_test(test_adam_eps_placement),
        cmocka_unit_test(test_sgd_two_steps),
        cmocka_unit_test(test_adagrad_two_steps),
        cmocka_unit_test(test_adam_minimizes_quadratic),
        cmocka_unit_test(test_l2),
        cmocka_unit_test(test_lazy_rows_against_reference),
        cmocka_unit_test(test_rows_all_touched_equal_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
