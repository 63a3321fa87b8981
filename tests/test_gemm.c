/* Unit tests for src/gemm.c: the three products of a dense layer on both
 * backends, against a double-precision reference, over shapes that are
 * small, odd and the census model's own, with padded leading dimensions
 * (padding must survive), beta 0 and 1, B below, at and above max_batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/gemm.h"

#define SENTINEL 777.0f
#define ACC 0.5f
#define MAX_BATCH 40

static uint64_t splitmix(uint64_t *st) {
    uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static float frand(uint64_t *st) {
    return (float)(2.0 * (double)(splitmix(st) >> 11) * 0x1.0p-53 - 1.0);
}
static float *buffer(size_t n, uint64_t *st) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = frand(st);
    return p;
}

/* |got - want| within float rounding of a sum whose terms add up to sumabs */
static void check(float got, double want, double sumabs, const char *what, int i, int j) {
    double tol = 1e-5 * sumabs + 1e-6;
    if (!(fabs(got - want) <= tol)) {
        print_error("%s[%d][%d]: %.9g, reference %.9g (tolerance %.3g)\n", what, i, j, got, want,
                    tol);
        fail();
    }
}

/* element (i, j) of a row-major matrix with row stride ld */
#define AT(p, ld, i, j) (p)[(size_t)(i) * (size_t)(ld) + (size_t)(j)]

static void one_case(mtl_gemm_backend backend, int K, int N, int cols, int B, uint64_t seed) {
    uint64_t st = seed;
    int in_ld = K + 3, out_ld = N + 2, rows = B > MAX_BATCH ? B : MAX_BATCH;
    mtl_gemm_plan p;
    mtl_error err = {{0}};
    assert_int_equal(mtl_gemm_plan_init(&p, backend, K, N, in_ld, out_ld, cols, MAX_BATCH, &err),
                     MTL_OK);
    if (backend != MTL_GEMM_AUTO)
        assert_int_equal(p.backend == MTL_GEMM_LIBXSMM,
                         backend == MTL_GEMM_LIBXSMM && K > 0 && N > 0);
    float *w = buffer((size_t)N * K, &st), *in = buffer((size_t)rows * in_ld, &st);
    float *dout = buffer((size_t)rows * out_ld, &st);
    float *out = buffer((size_t)rows * out_ld, &st), *out0 = buffer((size_t)rows * out_ld, &st);
    float *dw = malloc(((size_t)N * K + 1) * sizeof *dw), *din = buffer((size_t)rows * in_ld, &st);
    assert_non_null(dw);
    mtl_gemm_plan_sync(&p, w);
    assert_false(mtl_gemm_plan_stale(&p, w));

    for (int beta = 0; beta <= 1; beta++) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < out_ld; j++)
                AT(out, out_ld, i, j) = j < N ? (beta ? AT(out0, out_ld, i, j) : NAN) : SENTINEL;
        mtl_gemm_forward(&p, out, in, w, B, (float)beta);
        for (int i = 0; i < B; i++) {
            for (int j = 0; j < N; j++) {
                double s = beta ? AT(out0, out_ld, i, j) : 0.0, a = fabs(s);
                for (int k = 0; k < K; k++) {
                    s += (double)AT(in, in_ld, i, k) * AT(w, K, j, k);
                    a += fabs((double)AT(in, in_ld, i, k) * AT(w, K, j, k));
                }
                check(AT(out, out_ld, i, j), s, a, beta ? "forward beta 1" : "forward beta 0", i,
                      j);
            }
            for (int j = N; j < out_ld; j++) assert_true(AT(out, out_ld, i, j) == SENTINEL);
        }
    }

    for (size_t i = 0; i < (size_t)N * K; i++) dw[i] = ACC;
    mtl_gemm_wgrad(&p, dw, dout, in, B);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) {
            double s = ACC, a = ACC;
            for (int i = 0; i < B; i++) {
                s += (double)AT(dout, out_ld, i, j) * AT(in, in_ld, i, k);
                a += fabs((double)AT(dout, out_ld, i, j) * AT(in, in_ld, i, k));
            }
            check(AT(dw, K, j, k), s, a, "wgrad", j, k);
        }

    for (int i = 0; i < rows; i++)
        for (int k = 0; k < in_ld; k++) AT(din, in_ld, i, k) = k < cols ? ACC : SENTINEL;
    mtl_gemm_xgrad(&p, din, dout, w, B);
    for (int i = 0; i < B; i++)
        for (int k = 0; k < in_ld; k++) {
            if (k >= cols) {
                assert_true(AT(din, in_ld, i, k) == SENTINEL);
                continue;
            }
            double s = ACC, a = ACC;
            for (int j = 0; j < N; j++) {
                s += (double)AT(dout, out_ld, i, j) * AT(w, K, j, k);
                a += fabs((double)AT(dout, out_ld, i, j) * AT(w, K, j, k));
            }
            check(AT(din, in_ld, i, k), s, a, "xgrad", i, k);
        }

    /* the copy of W^T follows w only through mtl_gemm_plan_sync */
    if (p.backend == MTL_GEMM_LIBXSMM) {
        w[0] += 1.0f;
        assert_true(mtl_gemm_plan_stale(&p, w));
        mtl_gemm_plan_sync(&p, w);
        assert_false(mtl_gemm_plan_stale(&p, w));
    }
    mtl_gemm_plan_free(&p);
    free(w);
    free(in);
    free(dout);
    free(out);
    free(out0);
    free(dw);
    free(din);
}

static const int
    shapes[]
          [3] = {
              /* K, N, cols */
              {1, 1, 1},    {3, 5, 3},      {5, 3, 2},       {17, 33, 17},
              {64, 16, 64}, {127, 144, 87}, {144, 16, 144},  {16, 8, 0},
              {6, 200, 6},  {0, 4, 0},      {300, 600, 290}, /* over gemm.c's L2 budget: forward and
                                                                xgrad run in blocks */
};
static const int batches[] = {MAX_BATCH, 1, 7, 13, MAX_BATCH + 5};

static void run_backend(mtl_gemm_backend backend) {
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            one_case(backend, shapes[s][0], shapes[s][1], shapes[s][2], batches[b], seed++);
}

static void test_openblas(void **state) {
    (void)state;
    run_backend(MTL_GEMM_OPENBLAS);
}

static void test_libxsmm(void **state) {
    (void)state;
    run_backend(MTL_GEMM_LIBXSMM);
}

static void test_auto(void **state) {
    (void)state;
    mtl_gemm_backend a = mtl_gemm_auto_backend();
    assert_true(a == MTL_GEMM_OPENBLAS || a == MTL_GEMM_LIBXSMM);
    print_message("  auto: %s\n", mtl_gemm_backend_name(a));
    run_backend(MTL_GEMM_AUTO);
}

/* the same B twice gives the same bits (a kernel from the table, not a new one) */
static void test_repeatable(void **state) {
    (void)state;
    uint64_t st = 7;
    int K = 127, N = 144, B = 33;
    mtl_gemm_plan p;
    mtl_error err = {{0}};
    assert_int_equal(mtl_gemm_plan_init(&p, MTL_GEMM_LIBXSMM, K, N, K, N, K, MAX_BATCH, &err),
                     MTL_OK);
    float *w = buffer((size_t)N * K, &st), *in = buffer((size_t)B * K, &st);
    float *a = buffer((size_t)B * N, &st), *b = buffer((size_t)B * N, &st);
    mtl_gemm_plan_sync(&p, w);
    mtl_gemm_forward(&p, a, in, w, B, 0.0f);
    mtl_gemm_forward(&p, b, in, w, B, 0.0f);
    assert_memory_equal(a, b, (size_t)B * N * sizeof *a);
    mtl_gemm_plan_free(&p);
    free(w);
    free(in);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openblas),
        cmocka_unit_test(test_libxsmm),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_repeatable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
