/* Unit tests for src/layers.c.
 *
 * A layer whose backward is subtly wrong still "trains", just to a worse AUC,
 * so every backward here is checked against central finite differences of an
 * independent double-precision reference forward written in this file, and
 * every float forward is checked against that same reference. Together they
 * pin the float backward to the derivative of the float forward.
 *
 * Relative errors use |a-b| / max(|a|, |b|, REL_FLOOR): test data is O(1), so
 * gradients of real bugs are O(1) off, while a float result whose true value
 * cancels to ~0 only carries O(1e-7) absolute rounding error.
 *
 * Gradient buffers are pre-filled with ACC before backward calls and ACC is
 * subtracted afterwards: this checks the "+=" contract. Column slices of wider
 * buffers are padded with SENTINEL, which must survive untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/layers.h"
#include "test_util.h"

#define REL_FLOOR 1e-2
#define GRAD_TOL 1e-3 /* analytic (float) vs finite differences (double) */
#define FWD_TOL 1e-4  /* float forward vs double reference (float sums of ~40 terms) */
#define FD_H 1e-5     /* central differences in double: h^2 and eps/h both ~1e-10 */
#define ACC 0.5f
#define SENTINEL 777.0f

static const int batch_sizes[] = {1, 7, 33};
#define N_BATCH_SIZES (int)(sizeof batch_sizes / sizeof batch_sizes[0])

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

/* test data generator, independent of the mtl_rng under test */
static uint64_t splitmix(uint64_t *st) {
    uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* uniform in [lo, hi), rounded to float so the double reference sees exactly
 * the values the float code sees */
static float frand(uint64_t *st, double lo, double hi) {
    double u = (double)(splitmix(st) >> 11) * 0x1.0p-53;
    return (float)(lo + (hi - lo) * u);
}

/* One element check that fails naming the layer, tensor and index. */
static void check_rel(const char *what, int B, const char *tensor, int row, int col, double got,
                      double want, double tol) {
    double e = rel_err(got, want, REL_FLOOR);
    if (!(e <= tol)) { /* written this way so NaN fails too */
        print_error("%s (B=%d): %s[%d,%d] = %.9g, reference %.9g, rel err %.3g > %.3g\n", what, B,
                    tensor, row, col, got, want, e, tol);
        fail();
    }
}

/* got is a [rows x cols] slice with stride ld; want is contiguous [rows x cols].
 * `offset` is subtracted from got first (ACC for accumulated gradients). */
static void check_matrix(const char *what, int B, const char *tensor, const float *got, int ld,
                         const double *want, int rows, int cols, double offset, double tol) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            check_rel(what, B, tensor, i, j, (double)got[(size_t)i * ld + j] - offset,
                      want[(size_t)i * cols + j], tol);
}

/* Every element of the [rows x ld] buffer outside columns [col0, col0+cols)
 * must still be SENTINEL: the layer respected the leading dimension. */
static void check_padding(const char *what, int B, const char *tensor, const float *buf, int rows,
                          int ld, int col0, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ld; j++) {
            if (j >= col0 && j < col0 + cols) continue;
            if (buf[(size_t)i * ld + j] != SENTINEL) {
                print_error("%s (B=%d): %s padding [%d,%d] overwritten with %g\n", what, B, tensor,
                            i, j, (double)buf[(size_t)i * ld + j]);
                fail();
            }
        }
}

static float *alloc_fill(size_t n, float v) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}
static double *alloc_d(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}
/* fill the [rows x cols] slice of a strided buffer with random values and
 * keep a contiguous double copy */
static void fill_slice(float *x, int ld, double *xd, int rows, int cols, uint64_t *st, double lo,
                       double hi) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float v = frand(st, lo, hi);
            x[(size_t)i * ld + j] = v;
            if (xd) xd[(size_t)i * cols + j] = v;
        }
}

typedef double (*objective_fn)(const void *ctx);

/* central difference of the scalar objective with respect to *p */
static double fd(objective_fn f, const void *ctx, double *p) {
    double save = *p;
    *p = save + FD_H;
    double lp = f(ctx);
    *p = save - FD_H;
    double lm = f(ctx);
    *p = save;
    return (lp - lm) / (2.0 * FD_H);
}

/* ------------------------------------------------------------------------ */
/* dense                                                                    */

typedef struct {
    int B, in_dim, out_dim;
    double *x, *w, *b, *R; /* b NULL when no bias */
} dense_ref;

static void dense_ref_forward(const dense_ref *c, double *out) {
    for (int i = 0; i < c->B; i++)
        for (int o = 0; o < c->out_dim; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int j = 0; j < c->in_dim; j++)
                s += c->x[i * c->in_dim + j] * c->w[o * c->in_dim + j];
            out[i * c->out_dim + o] = s;
        }
}
static double dense_objective(const void *ctx) {
    const dense_ref *c = ctx;
    double L = 0.0;
    for (int i = 0; i < c->B; i++)
        for (int o = 0; o < c->out_dim; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int j = 0; j < c->in_dim; j++)
                s += c->x[i * c->in_dim + j] * c->w[o * c->in_dim + j];
            L += c->R[i * c->out_dim + o] * s;
        }
    return L;
}

static void dense_case(int B, int in_dim, int out_dim, int bias, int slice, uint64_t *st) {
    char what[96];
    snprintf(what, sizeof what, "dense(in=%d,out=%d,bias=%d,slice=%d)", in_dim, out_dim, bias,
             slice);
    /* slice: each matrix is a column block in the middle of a wider one */
    int in_ld = slice ? in_dim + 3 : in_dim, in_off = slice ? 2 : 0;
    int out_ld = slice ? out_dim + 4 : out_dim, out_off = slice ? 1 : 0;
    int dout_ld = slice ? out_dim + 2 : out_dim, dout_off = slice ? 2 : 0;
    int din_ld = slice ? in_dim + 5 : in_dim, din_off = slice ? 3 : 0;

    dense_ref c = {B,
                   in_dim,
                   out_dim,
                   alloc_d((size_t)B * in_dim),
                   alloc_d((size_t)out_dim * in_dim),
                   bias ? alloc_d(out_dim) : NULL,
                   alloc_d((size_t)B * out_dim)};
    float *inbuf = alloc_fill((size_t)B * in_ld, SENTINEL);
    fill_slice(inbuf + in_off, in_ld, c.x, B, in_dim, st, -1, 1);
    float *w = alloc_fill((size_t)out_dim * in_dim, 0);
    fill_slice(w, in_dim, c.w, out_dim, in_dim, st, -1, 1);
    float *b = NULL;
    if (bias) {
        b = alloc_fill(out_dim, 0);
        fill_slice(b, out_dim, c.b, 1, out_dim, st, -1, 1);
    }

    /* forward */
    float *outbuf = alloc_fill((size_t)B * out_ld, SENTINEL);
    /* garbage in the output slice: forward must overwrite, not accumulate */
    for (int i = 0; i < B; i++)
        for (int o = 0; o < out_dim; o++) outbuf[(size_t)i * out_ld + out_off + o] = 1e3f;
    mtl_dense_forward(outbuf + out_off, out_ld, inbuf + in_off, in_ld, w, b, B, in_dim, out_dim);
    double *ref = alloc_d((size_t)B * out_dim);
    dense_ref_forward(&c, ref);
    check_matrix(what, B, "out", outbuf + out_off, out_ld, ref, B, out_dim, 0, FWD_TOL);
    check_padding(what, B, "out", outbuf, B, out_ld, out_off, out_dim);
    check_padding(what, B, "in", inbuf, B, in_ld, in_off, in_dim);

    /* backward of L = sum(out * R) */
    float *doutbuf = alloc_fill((size_t)B * dout_ld, SENTINEL);
    fill_slice(doutbuf + dout_off, dout_ld, c.R, B, out_dim, st, -1, 1);
    float *dw = alloc_fill((size_t)out_dim * in_dim, ACC);
    float *db = alloc_fill(out_dim, ACC);
    float *dinbuf = alloc_fill((size_t)B * din_ld, SENTINEL);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < in_dim; j++) dinbuf[(size_t)i * din_ld + din_off + j] = ACC;
    mtl_dense_backward(dinbuf + din_off, din_ld, dw, bias ? db : NULL, doutbuf + dout_off, dout_ld,
                       inbuf + in_off, in_ld, w, B, in_dim, out_dim);

    double *gw = alloc_d((size_t)out_dim * in_dim), *gx = alloc_d((size_t)B * in_dim);
    double *gb = alloc_d(out_dim);
    for (int k = 0; k < out_dim * in_dim; k++) gw[k] = fd(dense_objective, &c, &c.w[k]);
    for (int k = 0; k < B * in_dim; k++) gx[k] = fd(dense_objective, &c, &c.x[k]);
    if (bias)
        for (int k = 0; k < out_dim; k++) gb[k] = fd(dense_objective, &c, &c.b[k]);
    check_matrix(what, B, "dw", dw, in_dim, gw, out_dim, in_dim, ACC, GRAD_TOL);
    check_matrix(what, B, "din", dinbuf + din_off, din_ld, gx, B, in_dim, ACC, GRAD_TOL);
    if (bias)
        check_matrix(what, B, "db", db, out_dim, gb, 1, out_dim, ACC, GRAD_TOL);
    else
        for (int o = 0; o < out_dim; o++) assert_true(db[o] == ACC); /* NULL db: untouched */
    check_padding(what, B, "din", dinbuf, B, din_ld, din_off, in_dim);

    /* din == NULL and db == NULL: dw accumulates again, nothing else moves */
    float *din_before = alloc_fill((size_t)B * din_ld, 0);
    memcpy(din_before, dinbuf, sizeof(float) * B * din_ld);
    float *db_before = alloc_fill(out_dim, 0);
    memcpy(db_before, db, sizeof(float) * out_dim);
    mtl_dense_backward(NULL, 0, dw, NULL, doutbuf + dout_off, dout_ld, inbuf + in_off, in_ld, w, B,
                       in_dim, out_dim);
    for (int k = 0; k < out_dim * in_dim; k++) gw[k] *= 2.0;
    check_matrix(what, B, "dw (2nd accumulate)", dw, in_dim, gw, out_dim, in_dim, ACC, GRAD_TOL);
    assert_memory_equal(din_before, dinbuf, sizeof(float) * B * din_ld);
    assert_memory_equal(db_before, db, sizeof(float) * out_dim);

    free(c.x), free(c.w), free(c.b), free(c.R), free(inbuf), free(w), free(b), free(outbuf);
    free(ref), free(doutbuf), free(dw), free(db), free(dinbuf), free(gw), free(gx), free(gb);
    free(din_before), free(db_before);
}

static void test_dense(void **state) {
    (void)state;
    uint64_t st = 1;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++)
        for (int bias = 0; bias <= 1; bias++)
            for (int slice = 0; slice <= 1; slice++) {
                dense_case(batch_sizes[bi], 5, 4, bias, slice, &st);
                /* sizes past OpenBLAS's small-matrix paths (slices only, to keep
                 * the finite differences fast) */
                if (slice) dense_case(batch_sizes[bi], 37, 19, bias, slice, &st);
            }
}

/* ------------------------------------------------------------------------ */
/* relu                                                                     */

typedef struct {
    int n;
    double *x, *R;
} relu_ref;
static double relu_objective(const void *ctx) {
    const relu_ref *c = ctx;
    double L = 0;
    for (int k = 0; k < c->n; k++) L += c->R[k] * (c->x[k] > 0 ? c->x[k] : 0.0);
    return L;
}

static void test_relu(void **state) {
    (void)state;
    uint64_t st = 2;
    const int D = 6, x_ld = 9, x_off = 2, d_ld = 8, d_off = 1;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        int B = batch_sizes[bi];
        relu_ref c = {B * D, alloc_d((size_t)B * D), alloc_d((size_t)B * D)};
        float *xbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < D; j++) {
                /* keep away from the kink, where finite differences are meaningless */
                float v = frand(&st, -1, 1);
                if (fabsf(v) < 0.05f) v = v < 0 ? v - 0.1f : v + 0.1f;
                xbuf[i * x_ld + x_off + j] = v;
                c.x[i * D + j] = v;
            }
        mtl_relu_forward(xbuf + x_off, x_ld, B, D);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < D; j++) {
                double want = c.x[i * D + j] > 0 ? c.x[i * D + j] : 0.0;
                check_rel("relu", B, "y", i, j, xbuf[i * x_ld + x_off + j], want, 0.0);
            }
        check_padding("relu", B, "y", xbuf, B, x_ld, x_off, D);

        float *dbuf = alloc_fill((size_t)B * d_ld, SENTINEL);
        fill_slice(dbuf + d_off, d_ld, c.R, B, D, &st, -1, 1);
        mtl_relu_backward(dbuf + d_off, d_ld, xbuf + x_off, x_ld, B, D);
        double *g = alloc_d((size_t)B * D);
        for (int k = 0; k < B * D; k++) g[k] = fd(relu_objective, &c, &c.x[k]);
        check_matrix("relu", B, "dx", dbuf + d_off, d_ld, g, B, D, 0, GRAD_TOL);
        check_padding("relu", B, "dx", dbuf, B, d_ld, d_off, D);
        free(c.x), free(c.R), free(xbuf), free(dbuf), free(g);
    }
}

/* ------------------------------------------------------------------------ */
/* sigmoid                                                                  */

static void test_sigmoid(void **state) {
    (void)state;
    uint64_t st = 3;
    enum { N = 101 };
    float x[N], y[N];
    for (int k = 0; k < N; k++) x[k] = frand(&st, -8, 8);
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f;
    mtl_sigmoid_forward(y, x, N);
    for (int k = 0; k < N; k++)
        check_rel("sigmoid", N, "y", 0, k, y[k], 1.0 / (1.0 + exp(-(double)x[k])), FWD_TOL);
    mtl_sigmoid_forward(x, x, N); /* in place */
    assert_memory_equal(x, y, sizeof y);
}

/* ------------------------------------------------------------------------ */
/* softmax                                                                  */

typedef struct {
    int B, K;
    double *x, *R;
} softmax_ref;
static void softmax_ref_row(const double *x, int K, double *y) {
    double m = x[0];
    for (int k = 1; k < K; k++) m = fmax(m, x[k]);
    double s = 0;
    for (int k = 0; k < K; k++) s += (y[k] = exp(x[k] - m));
    for (int k = 0; k < K; k++) y[k] /= s;
}
static double softmax_objective(const void *ctx) {
    const softmax_ref *c = ctx;
    double L = 0, y[64]; /* K <= 64 */
    for (int i = 0; i < c->B; i++) {
        softmax_ref_row(c->x + i * c->K, c->K, y);
        for (int k = 0; k < c->K; k++) L += c->R[i * c->K + k] * y[k];
    }
    return L;
}

static void softmax_case(int B, int K, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "softmax(K=%d)", K);
    int x_ld = K + 3, x_off = 1, y_ld = K + 2, y_off = 2, d_ld = K + 4, d_off = 3;
    softmax_ref c = {B, K, alloc_d((size_t)B * K), alloc_d((size_t)B * K)};
    float *xbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
    fill_slice(xbuf + x_off, x_ld, c.x, B, K, st, -3, 3);
    float *ybuf = alloc_fill((size_t)B * y_ld, SENTINEL);
    mtl_softmax_forward(ybuf + y_off, y_ld, xbuf + x_off, x_ld, B, K);
    double *ref = alloc_d((size_t)B * K);
    for (int i = 0; i < B; i++) softmax_ref_row(c.x + i * K, K, ref + i * K);
    check_matrix(what, B, "y", ybuf + y_off, y_ld, ref, B, K, 0, FWD_TOL);
    check_padding(what, B, "y", ybuf, B, y_ld, y_off, K);

    /* y aliasing x gives the same values */
    float *inplace = alloc_fill((size_t)B * x_ld, 0);
    memcpy(inplace, xbuf, sizeof(float) * B * x_ld);
    mtl_softmax_forward(inplace + x_off, x_ld, inplace + x_off, x_ld, B, K);
    check_matrix(what, B, "y (in place)", inplace + x_off, x_ld, ref, B, K, 0, FWD_TOL);

    /* backward: dx = y * (dy - <dy, y>), overwrite (no ACC) */
    float *dybuf = alloc_fill((size_t)B * d_ld, SENTINEL);
    fill_slice(dybuf + d_off, d_ld, c.R, B, K, st, -1, 1);
    float *dxbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) dxbuf[i * x_ld + x_off + k] = 1e3f; /* must be overwritten */
    mtl_softmax_backward(dxbuf + x_off, x_ld, dybuf + d_off, d_ld, ybuf + y_off, y_ld, B, K);
    double *g = alloc_d((size_t)B * K);
    for (int k = 0; k < B * K; k++) g[k] = fd(softmax_objective, &c, &c.x[k]);
    check_matrix(what, B, "dx", dxbuf + x_off, x_ld, g, B, K, 0, GRAD_TOL);
    check_padding(what, B, "dx", dxbuf, B, x_ld, x_off, K);
    /* dx aliasing dy */
    mtl_softmax_backward(dybuf + d_off, d_ld, dybuf + d_off, d_ld, ybuf + y_off, y_ld, B, K);
    check_matrix(what, B, "dx (in place)", dybuf + d_off, d_ld, g, B, K, 0, GRAD_TOL);

    free(c.x), free(c.R), free(xbuf), free(ybuf), free(ref), free(inplace), free(dybuf);
    free(dxbuf), free(g);
}

static void test_softmax(void **state) {
    (void)state;
    uint64_t st = 4;
    const int Ks[] = {1, 3, 8, 12, 16, 20}; /* one vector, two, and the scalar path */
    for (int bi = 0; bi < N_BATCH_SIZES; bi++)
        for (int ki = 0; ki < 6; ki++) softmax_case(batch_sizes[bi], Ks[ki], &st);

    /* rows go 8 at a time and the rest one by one: a row's result must not
     * depend on which (the same additions in the same order), bit for bit */
    for (int ki = 0; ki < 6; ki++) {
        int K = Ks[ki], B = 11;
        float *x = alloc_fill((size_t)B * K, 0), *y = alloc_fill((size_t)B * K, 0);
        float *dy = alloc_fill((size_t)B * K, 0), *dx = alloc_fill((size_t)B * K, 0);
        for (int k = 0; k < B * K; k++) x[k] = frand(&st, -4, 4), dy[k] = frand(&st, -1, 1);
        mtl_softmax_forward(y, K, x, K, B, K);
        mtl_softmax_backward(dx, K, dy, K, y, K, B, K);
        for (int i = 0; i < B; i++) {
            float y1[20], dx1[20];
            mtl_softmax_forward(y1, K, x + i * K, K, 1, K);
            mtl_softmax_backward(dx1, K, dy + i * K, K, y1, K, 1, K);
            assert_memory_equal(y1, y + i * K, sizeof(float) * (size_t)K);
            assert_memory_equal(dx1, dx + i * K, sizeof(float) * (size_t)K);
        }
        free(x), free(y), free(dy), free(dx);
    }

    /* huge logits: the max subtraction keeps everything finite */
    float x[3] = {1000.0f, 999.0f, -1000.0f}, y[3];
    mtl_softmax_forward(y, 3, x, 3, 1, 3);
    double e = exp(-1.0);
    check_rel("softmax(large)", 1, "y", 0, 0, y[0], 1.0 / (1.0 + e), FWD_TOL);
    check_rel("softmax(large)", 1, "y", 0, 1, y[1], e / (1.0 + e), FWD_TOL);
    assert_true(y[2] >= 0.0f && y[2] < 1e-30f);
}

/* ------------------------------------------------------------------------ */
/* mixture of experts                                                       */

typedef struct {
    int B, K, D;
    double *g; /* [B x K] */
    double *e; /* [K][B x D] */
    double *R; /* [B x D] */
} mixture_ref;
static double mixture_objective(const void *ctx) {
    const mixture_ref *c = ctx;
    double L = 0;
    for (int i = 0; i < c->B; i++)
        for (int j = 0; j < c->D; j++) {
            double s = 0;
            for (int k = 0; k < c->K; k++)
                s += c->g[i * c->K + k] * c->e[((size_t)k * c->B + i) * c->D + j];
            L += c->R[i * c->D + j] * s;
        }
    return L;
}

static void mixture_case(int B, int K, int D, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "mixture(K=%d,D=%d)", K, D);
    /* the experts sit side by side in one wide matrix, as the fused expert
     * product writes them: expert k is columns [1 + k*D, 1 + (k+1)*D) */
    int e_ld = K * D + 3, e_off = 1;
    int g_ld = K + 2, g_off = 1, o_ld = D + 1, o_off = 1, d_ld = D + 3, d_off = 2;
    mixture_ref c = {
        B, K, D, alloc_d((size_t)B * K), alloc_d((size_t)K * B * D), alloc_d((size_t)B * D)};
    float *gbuf = alloc_fill((size_t)B * g_ld, SENTINEL);
    fill_slice(gbuf + g_off, g_ld, c.g, B, K, st, 0, 1);
    float *ebuf = alloc_fill((size_t)B * e_ld, SENTINEL);
    const float *expert[32];
    float *dexpert[32];
    for (int k = 0; k < K; k++) {
        expert[k] = ebuf + e_off + k * D;
        fill_slice(ebuf + e_off + k * D, e_ld, c.e + (size_t)k * B * D, B, D, st, -1, 1);
    }
    float *obuf = alloc_fill((size_t)B * o_ld, SENTINEL);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) obuf[i * o_ld + o_off + j] = 1e3f; /* must be overwritten */
    mtl_mixture_forward(obuf + o_off, o_ld, gbuf + g_off, g_ld, expert, e_ld, B, K, D);
    double *ref = alloc_d((size_t)B * D);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++)
            for (int k = 0; k < K; k++)
                ref[i * D + j] += c.g[i * K + k] * c.e[((size_t)k * B + i) * D + j];
    check_matrix(what, B, "out", obuf + o_off, o_ld, ref, B, D, 0, FWD_TOL);
    check_padding(what, B, "out", obuf, B, o_ld, o_off, D);

    float *dbuf = alloc_fill((size_t)B * d_ld, SENTINEL);
    fill_slice(dbuf + d_off, d_ld, c.R, B, D, st, -1, 1);
    float *dgbuf = alloc_fill((size_t)B * g_ld, SENTINEL);
    float *debuf = alloc_fill((size_t)B * e_ld, SENTINEL);
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < K; k++) dgbuf[i * g_ld + g_off + k] = ACC;
        for (int j = 0; j < K * D; j++) debuf[i * e_ld + e_off + j] = ACC;
    }
    for (int k = 0; k < K; k++) dexpert[k] = debuf + e_off + k * D;
    mtl_mixture_backward(dgbuf + g_off, g_ld, dexpert, dbuf + d_off, d_ld, gbuf + g_off, g_ld,
                         expert, e_ld, B, K, D);
    double *gg = alloc_d((size_t)B * K), *ge = alloc_d((size_t)B * D);
    for (int k = 0; k < B * K; k++) gg[k] = fd(mixture_objective, &c, &c.g[k]);
    check_matrix(what, B, "dgate", dgbuf + g_off, g_ld, gg, B, K, ACC, GRAD_TOL);
    check_padding(what, B, "dgate", dgbuf, B, g_ld, g_off, K);
    for (int k = 0; k < K; k++) {
        for (int t = 0; t < B * D; t++)
            ge[t] = fd(mixture_objective, &c, &c.e[(size_t)k * B * D + t]);
        char tensor[32];
        snprintf(tensor, sizeof tensor, "dexpert%d", k);
        check_matrix(what, B, tensor, dexpert[k], e_ld, ge, B, D, ACC, GRAD_TOL);
    }
    check_padding(what, B, "dexpert", debuf, B, e_ld, e_off, K * D);

    free(c.g), free(c.e), free(c.R), free(gbuf), free(ebuf), free(obuf), free(ref), free(dbuf);
    free(dgbuf), free(debuf), free(gg), free(ge);
}

/* ------------------------------------------------------------------------ */
/* hidden activations (relu, tanh, sigmoid), through the dispatcher          */

typedef struct {
    int n, act;
    double *x, *R;
} act_ref;
static double act_ref_f(int act, double x) {
    if (act == MTL_ACT_TANH) return tanh(x);
    if (act == MTL_ACT_SIGMOID) return 1.0 / (1.0 + exp(-x));
    return x > 0 ? x : 0.0;
}
static double act_objective(const void *ctx) {
    const act_ref *c = ctx;
    double L = 0;
    for (int k = 0; k < c->n; k++) L += c->R[k] * act_ref_f(c->act, c->x[k]);
    return L;
}

static void test_activations(void **state) {
    (void)state;
    uint64_t st = 12;
    const int D = 5, x_ld = 8, x_off = 1, d_ld = 7, d_off = 2;
    const char *names[] = {"relu", "tanh", "sigmoid"};
    for (int act = MTL_ACT_RELU; act <= MTL_ACT_SIGMOID; act++)
        for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
            int B = batch_sizes[bi];
            act_ref c = {B * D, act, alloc_d((size_t)B * D), alloc_d((size_t)B * D)};
            float *xbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < D; j++) {
                    /* O(1) inputs, away from ReLU's kink */
                    float v = frand(&st, -2, 2);
                    if (fabsf(v) < 0.05f) v = v < 0 ? v - 0.1f : v + 0.1f;
                    xbuf[i * x_ld + x_off + j] = v;
                    c.x[i * D + j] = v;
                }
            mtl_activation_forward(act, xbuf + x_off, x_ld, B, D);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < D; j++)
                    check_rel(names[act], B, "y", i, j, xbuf[i * x_ld + x_off + j],
                              act_ref_f(act, c.x[i * D + j]), FWD_TOL);
            check_padding(names[act], B, "y", xbuf, B, x_ld, x_off, D);
            /* backward scales the incoming gradient in place, from the output */
            float *dbuf = alloc_fill((size_t)B * d_ld, SENTINEL);
            fill_slice(dbuf + d_off, d_ld, c.R, B, D, &st, -1, 1);
            mtl_activation_backward(act, dbuf + d_off, d_ld, xbuf + x_off, x_ld, B, D);
            double *g = alloc_d((size_t)B * D);
            for (int k = 0; k < B * D; k++) g[k] = fd(act_objective, &c, &c.x[k]);
            check_matrix(names[act], B, "dx", dbuf + d_off, d_ld, g, B, D, 0, GRAD_TOL);
            check_padding(names[act], B, "dx", dbuf, B, d_ld, d_off, D);
            free(c.x), free(c.R), free(xbuf), free(dbuf), free(g);
        }
}

/* ------------------------------------------------------------------------ */
/* attention over candidates (AITM)                                         */

typedef struct {
    int B, U, k;
    double *p; /* [U][B x 3k]: V | Q | K */
    double *R; /* [B x k] */
} attn_ref;
static void attn_ref_row(const attn_ref *c, int i, double *out) {
    int k = c->k;
    double a[8], mx = -INFINITY, sum = 0;
    for (int u = 0; u < c->U; u++) {
        const double *p = c->p + ((size_t)u * c->B + i) * 3 * k;
        a[u] = 0;
        for (int j = 0; j < k; j++) a[u] += p[k + j] * p[2 * k + j];
        a[u] /= sqrt((double)k);
        mx = fmax(mx, a[u]);
    }
    for (int u = 0; u < c->U; u++) sum += (a[u] = exp(a[u] - mx));
    for (int j = 0; j < k; j++) out[j] = 0;
    for (int u = 0; u < c->U; u++)
        for (int j = 0; j < k; j++) out[j] += a[u] / sum * c->p[((size_t)u * c->B + i) * 3 * k + j];
}
static double attn_objective(const void *ctx) {
    const attn_ref *c = ctx;
    double L = 0, out[16];
    for (int i = 0; i < c->B; i++) {
        attn_ref_row(c, i, out);
        for (int j = 0; j < c->k; j++) L += c->R[i * c->k + j] * out[j];
    }
    return L;
}

static void attention_case(int B, int U, int k, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "attention(U=%d,k=%d)", U, k);
    int p_ld = 3 * k + 2, p_off = 1, o_ld = k + 3, o_off = 2;
    attn_ref c = {B, U, k, alloc_d((size_t)U * B * 3 * k), alloc_d((size_t)B * k)};
    float *pbuf[8], *dpbuf[8];
    const float *proj[8];
    float *dproj[8];
    for (int u = 0; u < U; u++) {
        pbuf[u] = alloc_fill((size_t)B * p_ld, SENTINEL);
        fill_slice(pbuf[u] + p_off, p_ld, c.p + (size_t)u * B * 3 * k, B, 3 * k, st, -1.5, 1.5);
        proj[u] = pbuf[u] + p_off;
        dpbuf[u] = alloc_fill((size_t)B * p_ld, SENTINEL);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < 3 * k; j++) dpbuf[u][i * p_ld + p_off + j] = ACC;
        dproj[u] = dpbuf[u] + p_off;
    }
    float *obuf = alloc_fill((size_t)B * o_ld, SENTINEL), *w = alloc_fill((size_t)B * U, 0);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < k; j++) obuf[i * o_ld + o_off + j] = 1e3f; /* must be overwritten */
    mtl_attention_forward(obuf + o_off, o_ld, w, proj, p_ld, B, U, k);
    double *ref = alloc_d((size_t)B * k);
    for (int i = 0; i < B; i++) attn_ref_row(&c, i, ref + (size_t)i * k);
    check_matrix(what, B, "out", obuf + o_off, o_ld, ref, B, k, 0, FWD_TOL);
    check_padding(what, B, "out", obuf, B, o_ld, o_off, k);
    for (int i = 0; i < B; i++) { /* the saved weights are a distribution */
        double sum = 0;
        for (int u = 0; u < U; u++) sum += w[i * U + u];
        check_rel(what, B, "weights", i, 0, sum, 1.0, FWD_TOL);
    }

    float *dout = alloc_fill((size_t)B * o_ld, SENTINEL);
    fill_slice(dout + o_off, o_ld, c.R, B, k, st, -1, 1);
    mtl_attention_backward(dproj, dout + o_off, o_ld, w, proj, p_ld, B, U, k);
    double *g = alloc_d((size_t)B * 3 * k);
    for (int u = 0; u < U; u++) {
        for (int t = 0; t < B * 3 * k; t++)
            g[t] = fd(attn_objective, &c, &c.p[(size_t)u * B * 3 * k + t]);
        char tensor[32];
        snprintf(tensor, sizeof tensor, "dproj%d", u);
        check_matrix(what, B, tensor, dproj[u], p_ld, g, B, 3 * k, ACC, GRAD_TOL);
        check_padding(what, B, tensor, dpbuf[u], B, p_ld, p_off, 3 * k);
        free(pbuf[u]), free(dpbuf[u]);
    }
    free(c.p), free(c.R), free(obuf), free(w), free(ref), free(dout), free(g);
}

static void test_attention(void **state) {
    (void)state;
    uint64_t st = 13;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        attention_case(batch_sizes[bi], 2, 4, &st); /* AITM's: {transferred, tower} */
        attention_case(batch_sizes[bi], 3, 5, &st);
        attention_case(batch_sizes[bi], 1, 3, &st); /* one candidate: weight 1 */
    }
}

/* The partial bias of fused products: exact sums, columns past n untouched. */
static void test_bias(void **state) {
    (void)state;
    uint64_t st = 9;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        int B = batch_sizes[bi], n = 19, ld = 27;
        float *out = alloc_fill((size_t)B * ld, 0), *b = alloc_fill((size_t)n, 0);
        float *db = alloc_fill((size_t)n, 0.5f);
        double *ref = alloc_d((size_t)B * ld), *dref = alloc_d((size_t)n);
        for (int j = 0; j < n; j++) b[j] = frand(&st, -1, 1);
        for (int k = 0; k < B * ld; k++) ref[k] = out[k] = frand(&st, -1, 1);
        for (int j = 0; j < n; j++) dref[j] = 0.5;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < n; j++) dref[j] += out[i * ld + j];
        mtl_bias_backward(db, out, ld, B, n);
        mtl_bias_forward(out, ld, b, B, n);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < ld; j++) {
                double want = j < n ? (double)(float)ref[i * ld + j] + b[j] : ref[i * ld + j];
                assert_true(fabs(out[i * ld + j] - want) <= 1e-6 * (1 + fabs(want)));
            }
        for (int j = 0; j < n; j++)
            assert_true(fabs(db[j] - dref[j]) <= 1e-5 * (1 + fabs(dref[j])));
        free(out), free(b), free(db), free(ref), free(dref);
    }
}

/* The activation's backward with the bias gradient in one pass: the same
 * floats as the two passes it replaces (the same additions in the same row
 * order), so compared bit for bit. */
static void test_activation_bias_backward(void **state) {
    (void)state;
    uint64_t st = 21;
    const int acts[] = {MTL_ACT_RELU, MTL_ACT_TANH, MTL_ACT_SIGMOID};
    /* widths: one 8-column block, one 16-column block, 16 + 5 and 16 + 8 + 5 */
    const int Ds[] = {8, 16, 21, 29};
    for (int a = 0; a < 3; a++)
        for (int bi = 0; bi < N_BATCH_SIZES * 4; bi++) {
            int B = batch_sizes[bi % N_BATCH_SIZES], D = Ds[bi / N_BATCH_SIZES], ld = D + 3;
            float *y = alloc_fill((size_t)B * ld, 0), *d = alloc_fill((size_t)B * ld, 0);
            float *d2 = alloc_fill((size_t)B * ld, 0);
            float *db = alloc_fill((size_t)D, 0.25f), *db2 = alloc_fill((size_t)D, 0.25f);
            for (int k = 0; k < B * ld; k++) {
                y[k] = acts[a] == MTL_ACT_RELU ? frand(&st, -1, 1) : frand(&st, 0.01f, 0.99f);
                d[k] = d2[k] = frand(&st, -1, 1);
            }
            mtl_activation_bias_backward(acts[a], d, ld, y, ld, db, B, D);
            mtl_activation_backward(acts[a], d2, ld, y, ld, B, D);
            mtl_bias_backward(db2, d2, ld, B, D);
            assert_memory_equal(d, d2, sizeof(float) * (size_t)B * ld);
            assert_memory_equal(db, db2, sizeof(float) * (size_t)D);
            free(y), free(d), free(d2), free(db), free(db2);
        }
}

/* The bias and ReLU in one pass: the same floats as mtl_bias_forward then
 * mtl_relu_forward (one addition, one comparison per element). */
static void test_bias_relu_forward(void **state) {
    (void)state;
    uint64_t st = 23;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        int B = batch_sizes[bi], D = 21, ld = 24;
        float *x = alloc_fill((size_t)B * ld, SENTINEL), *x2 = alloc_fill((size_t)B * ld, SENTINEL);
        float *b = alloc_fill((size_t)D, 0);
        for (int j = 0; j < D; j++) b[j] = frand(&st, -1, 1);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < D; j++) x[i * ld + j] = x2[i * ld + j] = frand(&st, -1, 1);
        x[ld - 1] = x2[ld - 1] = NAN;  /* past D: untouched */
        if (D > 1) x[1] = x2[1] = NAN; /* a NaN stays NaN, as through ReLU */
        mtl_bias_relu_forward(x, ld, b, B, D);
        mtl_bias_forward(x2, ld, b, B, D);
        mtl_relu_forward(x2, ld, B, D);
        assert_memory_equal(x, x2, sizeof(float) * (size_t)B * ld);
        assert_true(isnan(x[1]));
        free(x), free(x2), free(b);
    }
}

static void test_mixture(void **state) {
    (void)state;
    uint64_t st = 5;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++)
        for (int K = 3; K <= 8; K++) {
            mixture_case(batch_sizes[bi], K, 6, &st);
            if (K == 3 || K == 8) mixture_case(batch_sizes[bi], K, 19, &st); /* D past 8 lanes */
        }
    /* the vector paths: widths that are multiples of 8 (8, 16, 32 are
     * specialized), and 8 experts at a time with a remainder */
    const int Ks[] = {1, 5, 8, 12, 16, 17}, Ds[] = {8, 16, 24, 32};
    for (int bi = 0; bi < N_BATCH_SIZES; bi++)
        for (int ki = 0; ki < 6; ki++)
            for (int di = 0; di < 4; di++) mixture_case(batch_sizes[bi], Ks[ki], Ds[di], &st);
}

/* ------------------------------------------------------------------------ */
/* input row (embeddings + dense)                                           */

enum { IN_S = 3 };
static const int in_dims[IN_S] = {3, 1, 5};
static const int in_vocab[IN_S] = {4, 2, 6};

typedef struct {
    int B, D, width;
    const int32_t *sparse; /* [B x IN_S] contiguous */
    double *table[IN_S];
    double *R; /* [B x width] */
} input_ref;
static double input_objective(const void *ctx) {
    const input_ref *c = ctx;
    double L = 0;
    for (int i = 0; i < c->B; i++) {
        int col = 0;
        for (int s = 0; s < IN_S; s++)
            for (int j = 0; j < in_dims[s]; j++, col++)
                L += c->R[i * c->width + col] *
                     c->table[s][c->sparse[i * IN_S + s] * in_dims[s] + j];
    }
    return L;
}

static void input_case(int B, int D, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "input(S=3,dims=3/1/5,D=%d)", D);
    int emb = 0;
    for (int s = 0; s < IN_S; s++) emb += in_dims[s];
    int width = emb + D;
    int out_ld = width + 2, out_off = 1, sp_ld = IN_S + 1, dn_ld = D + 2, d_ld = width + 3,
        d_off = 2;

    int32_t *sparse = malloc(sizeof(int32_t) * B * sp_ld);
    int32_t *sp = malloc(sizeof(int32_t) * B * IN_S); /* contiguous copy */
    for (int i = 0; i < B; i++) {
        for (int s = 0; s < IN_S; s++)
            sparse[i * sp_ld + s] = (int32_t)(splitmix(st) % (uint64_t)in_vocab[s]);
        sparse[i * sp_ld + IN_S] = 1; /* valid index in the wrong column */
    }
    if (B > 1) sparse[1 * sp_ld + 0] = sparse[0 * sp_ld + 0]; /* a guaranteed repeat */
    for (int i = 0; i < B; i++)
        for (int s = 0; s < IN_S; s++) sp[i * IN_S + s] = sparse[i * sp_ld + s];

    input_ref c = {B, D, width, sp, {NULL, NULL, NULL}, alloc_d((size_t)B * width)};
    float *table[IN_S], *dtable[IN_S];
    for (int s = 0; s < IN_S; s++) {
        size_t n = (size_t)in_vocab[s] * in_dims[s];
        c.table[s] = alloc_d(n);
        table[s] = alloc_fill(n, 0);
        fill_slice(table[s], (int)n, c.table[s], 1, (int)n, st, -1, 1);
        dtable[s] = alloc_fill(n, ACC);
    }
    float *dense = D ? alloc_fill((size_t)B * dn_ld, SENTINEL) : NULL;
    if (D) fill_slice(dense, dn_ld, NULL, B, D, st, -1, 1);

    float *obuf = alloc_fill((size_t)B * out_ld, SENTINEL);
    mtl_input_forward(obuf + out_off, out_ld, sparse, sp_ld, (const float *const *)table, in_dims,
                      IN_S, dense, dn_ld, D, B);
    for (int i = 0; i < B; i++) {
        const float *o = obuf + i * out_ld + out_off;
        int col = 0;
        for (int s = 0; s < IN_S; s++)
            for (int j = 0; j < in_dims[s]; j++, col++)
                check_rel(what, B, "out(embedding)", i, col, o[col],
                          table[s][sp[i * IN_S + s] * in_dims[s] + j], 0.0);
        for (int j = 0; j < D; j++, col++)
            check_rel(what, B, "out(dense)", i, col, o[col], dense[i * dn_ld + j], 0.0);
    }
    check_padding(what, B, "out", obuf, B, out_ld, out_off, width);

    /* backward: scatter-add, repeated indices accumulate */
    float *dbuf = alloc_fill((size_t)B * d_ld, SENTINEL);
    fill_slice(dbuf + d_off, d_ld, c.R, B, width, st, -1, 1);
    mtl_input_backward(dtable, in_dims, IN_S, sparse, sp_ld, dbuf + d_off, d_ld, B);
    for (int s = 0; s < IN_S; s++) {
        int n = in_vocab[s] * in_dims[s];
        double *g = alloc_d(n);
        for (int t = 0; t < n; t++) g[t] = fd(input_objective, &c, &c.table[s][t]);
        char tensor[32];
        snprintf(tensor, sizeof tensor, "dtable%d", s);
        check_matrix(what, B, tensor, dtable[s], in_dims[s], g, in_vocab[s], in_dims[s], ACC,
                     GRAD_TOL);
        free(g);
    }
    /* the test must actually exercise a repeated index */
    if (B > 1) assert_int_equal(sp[0], sp[IN_S]);

    free(sparse), free(sp), free(c.R), free(dense), free(obuf), free(dbuf);
    for (int s = 0; s < IN_S; s++) free(c.table[s]), free(table[s]), free(dtable[s]);
}

static void test_input(void **state) {
    (void)state;
    uint64_t st = 6;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        input_case(batch_sizes[bi], 2, &st);
        input_case(batch_sizes[bi], 0, &st); /* dense == NULL */
    }
}

/* ------------------------------------------------------------------------ */
/* pooled lists (multi-valued fields)                                       */

enum { PL_VOCAB = 6, PL_DIM = 3 };

typedef struct {
    int B, mean;
    const int32_t *off, *ids;
    double *table; /* [PL_VOCAB x PL_DIM] */
    double *R;     /* [B x PL_DIM] */
} pooled_ref;
/* the reference pooled row i, column j */
static double pooled_value(const pooled_ref *c, int i, int j) {
    double sum = 0;
    for (int k = c->off[i]; k < c->off[i + 1]; k++) sum += c->table[c->ids[k] * PL_DIM + j];
    int n = c->off[i + 1] - c->off[i];
    return c->mean && n > 0 ? sum / n : sum;
}
static double pooled_objective(const void *ctx) {
    const pooled_ref *c = ctx;
    double L = 0;
    for (int i = 0; i < c->B; i++)
        for (int j = 0; j < PL_DIM; j++) L += c->R[i * PL_DIM + j] * pooled_value(c, i, j);
    return L;
}

static void pooled_case(int B, int mean, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "pooled(%s)", mean ? "mean" : "sum");
    int out_ld = PL_DIM + 2, out_off = 1, d_ld = PL_DIM + 3, d_off = 2;
    /* lists of 0..4 ids: row 0 empty, row 1 a repeated id */
    int32_t *off = malloc(sizeof(int32_t) * (B + 1)), *ids = malloc(sizeof(int32_t) * 4 * B);
    off[0] = 0;
    for (int i = 0; i < B; i++) {
        int n = i == 0 ? 0 : i == 1 ? 3 : (int)(splitmix(st) % 5);
        for (int k = 0; k < n; k++) ids[off[i] + k] = (int32_t)(splitmix(st) % PL_VOCAB);
        if (i == 1) ids[off[i] + 2] = ids[off[i]];
        off[i + 1] = off[i] + n;
    }
    size_t n_table = (size_t)PL_VOCAB * PL_DIM;
    pooled_ref c = {B, mean, off, ids, alloc_d(n_table), alloc_d((size_t)B * PL_DIM)};
    float *table = alloc_fill(n_table, 0), *dtable = alloc_fill(n_table, ACC);
    fill_slice(table, (int)n_table, c.table, 1, (int)n_table, st, -1, 1);

    float *obuf = alloc_fill((size_t)B * out_ld, SENTINEL);
    mtl_pooled_forward(obuf + out_off, out_ld, off, ids, table, PL_DIM, mean, B);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < PL_DIM; j++)
            check_rel(what, B, "out", i, j, obuf[i * out_ld + out_off + j], pooled_value(&c, i, j),
                      FWD_TOL);
    check_padding(what, B, "out", obuf, B, out_ld, out_off, PL_DIM);
    for (int j = 0; j < PL_DIM; j++) /* an empty list pools to exact zeros */
        assert_true(obuf[out_off + j] == 0.0f);

    float *dbuf = alloc_fill((size_t)B * d_ld, SENTINEL);
    fill_slice(dbuf + d_off, d_ld, c.R, B, PL_DIM, st, -1, 1);
    mtl_pooled_backward(dtable, PL_DIM, off, ids, mean, dbuf + d_off, d_ld, B);
    double *g = alloc_d(n_table);
    for (size_t t = 0; t < n_table; t++) g[t] = fd(pooled_objective, &c, &c.table[t]);
    check_matrix(what, B, "dtable", dtable, PL_DIM, g, PL_VOCAB, PL_DIM, ACC, GRAD_TOL);

    free(off), free(ids), free(c.table), free(c.R), free(table), free(dtable), free(obuf);
    free(dbuf), free(g);
}

static void test_pooled(void **state) {
    (void)state;
    uint64_t st = 14;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) {
        pooled_case(batch_sizes[bi], 0, &st);
        pooled_case(batch_sizes[bi], 1, &st);
    }
}

/* ------------------------------------------------------------------------ */
/* batchnorm                                                                */

typedef struct {
    int B, D, col;
    double eps;
    double *x, *gamma, *beta, *R; /* x, R [B x D] */
} bn_ref;
/* Columns are independent, so the reference works one column at a time and
 * finite differences only re-evaluate the column that was perturbed. */
static void bn_ref_col(const bn_ref *c, int j, double *y, double *mean, double *var) {
    double m = 0, v = 0;
    for (int i = 0; i < c->B; i++) m += c->x[i * c->D + j];
    m /= c->B;
    for (int i = 0; i < c->B; i++) v += (c->x[i * c->D + j] - m) * (c->x[i * c->D + j] - m);
    v /= c->B;
    for (int i = 0; i < c->B; i++)
        y[i] = c->gamma[j] * (c->x[i * c->D + j] - m) / sqrt(v + c->eps) + c->beta[j];
    if (mean) *mean = m;
    if (var) *var = v;
}
static double bn_objective(const void *ctx) {
    const bn_ref *c = ctx;
    double y[64], L = 0;
    bn_ref_col(c, c->col, y, NULL, NULL);
    for (int i = 0; i < c->B; i++) L += c->R[i * c->D + c->col] * y[i];
    return L;
}

static void batchnorm_case(int B, int D, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "batchnorm(D=%d)", D);
    const float eps = 1e-5f, momentum = 0.1f;
    int x_ld = D + 3, x_off = 1, y_ld = D + 2, y_off = 2, d_ld = D + 4, d_off = 3;
    bn_ref c = {
        B, D, 0, eps, alloc_d((size_t)B * D), alloc_d(D), alloc_d(D), alloc_d((size_t)B * D)};
    float *xbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) /* per-column offset and scale */
            c.x[i * D + j] = xbuf[i * x_ld + x_off + j] =
                (float)(0.3 * (j % 5) - 0.5) + (float)(1 + j % 3) * frand(st, -1, 1);
    float *gamma = alloc_fill(D, 0), *beta = alloc_fill(D, 0);
    fill_slice(gamma, D, c.gamma, 1, D, st, 0.5, 1.5);
    fill_slice(beta, D, c.beta, 1, D, st, -0.5, 0.5);
    float *rm = alloc_fill(D, 0), *rv = alloc_fill(D, 0);
    double *rm0 = alloc_d(D), *rv0 = alloc_d(D);
    fill_slice(rm, D, rm0, 1, D, st, -1, 1);
    fill_slice(rv, D, rv0, 1, D, st, 0.5, 2);

    float *ybuf = alloc_fill((size_t)B * y_ld, SENTINEL);
    float *xhat = alloc_fill((size_t)B * D, 0), *invstd = alloc_fill(D, 0);
    mtl_batchnorm_forward_train(ybuf + y_off, y_ld, xhat, invstd, rm, rv, xbuf + x_off, x_ld, gamma,
                                beta, B, D, momentum, eps);
    double *yref = alloc_d(B), *unit = alloc_d(B);
    for (int j = 0; j < D; j++) {
        double m, v;
        bn_ref_col(&c, j, yref, &m, &v);
        for (int i = 0; i < B; i++) {
            check_rel(what, B, "y", i, j, ybuf[i * y_ld + y_off + j], yref[i], 1e-4);
            double xh = (c.x[i * D + j] - m) / sqrt(v + eps);
            check_rel(what, B, "xhat", i, j, xhat[i * D + j], xh, 1e-4);
        }
        check_rel(what, B, "invstd", 0, j, invstd[j], 1.0 / sqrt(v + eps), 1e-4);
        /* running var uses the unbiased batch variance (biased when B == 1) */
        double vu = B > 1 ? v * B / (B - 1) : v;
        check_rel(what, B, "running_mean", 0, j, rm[j], 0.9 * rm0[j] + 0.1 * m, 1e-5);
        check_rel(what, B, "running_var", 0, j, rv[j], 0.9 * rv0[j] + 0.1 * vu, 1e-5);
    }
    check_padding(what, B, "y", ybuf, B, y_ld, y_off, D);

    /* y aliasing x gives the same result */
    float *inplace = alloc_fill((size_t)B * x_ld, 0);
    memcpy(inplace, xbuf, sizeof(float) * B * x_ld);
    float *rm2 = alloc_fill(D, 0), *rv2 = alloc_fill(D, 1), *xhat2 = alloc_fill((size_t)B * D, 0);
    float *invstd2 = alloc_fill(D, 0);
    mtl_batchnorm_forward_train(inplace + x_off, x_ld, xhat2, invstd2, rm2, rv2, inplace + x_off,
                                x_ld, gamma, beta, B, D, momentum, eps);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++)
            check_rel(what, B, "y (in place)", i, j, inplace[i * x_ld + x_off + j],
                      ybuf[i * y_ld + y_off + j], 0.0);

    /* backward of L = sum(y * R) */
    float *dybuf = alloc_fill((size_t)B * d_ld, SENTINEL);
    fill_slice(dybuf + d_off, d_ld, c.R, B, D, st, -1, 1);
    float *dxbuf = alloc_fill((size_t)B * x_ld, SENTINEL);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) dxbuf[i * x_ld + x_off + j] = ACC;
    float *dgamma = alloc_fill(D, ACC), *dbeta = alloc_fill(D, ACC);
    mtl_batchnorm_backward(dxbuf + x_off, x_ld, dgamma, dbeta, dybuf + d_off, d_ld, xhat, invstd,
                           gamma, B, D);
    double *gx = alloc_d((size_t)B * D), *gg = alloc_d(D), *gb = alloc_d(D);
    for (int j = 0; j < D; j++) {
        c.col = j;
        for (int i = 0; i < B; i++) gx[i * D + j] = fd(bn_objective, &c, &c.x[i * D + j]);
        gg[j] = fd(bn_objective, &c, &c.gamma[j]);
        gb[j] = fd(bn_objective, &c, &c.beta[j]);
    }
    check_matrix(what, B, "dx", dxbuf + x_off, x_ld, gx, B, D, ACC, GRAD_TOL);
    check_matrix(what, B, "dgamma", dgamma, D, gg, 1, D, ACC, GRAD_TOL);
    check_matrix(what, B, "dbeta", dbeta, D, gb, 1, D, ACC, GRAD_TOL);
    check_padding(what, B, "dx", dxbuf, B, x_ld, x_off, D);

    /* inference: the running statistics, not the batch's */
    float *yinf = alloc_fill((size_t)B * y_ld, SENTINEL);
    mtl_batchnorm_forward_infer(yinf + y_off, y_ld, xbuf + x_off, x_ld, gamma, beta, rm, rv, B, D,
                                eps);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) {
            double want =
                c.gamma[j] * (c.x[i * D + j] - rm[j]) / sqrt((double)rv[j] + eps) + c.beta[j];
            check_rel(what, B, "y (infer)", i, j, yinf[i * y_ld + y_off + j], want, 1e-4);
        }
    check_padding(what, B, "y (infer)", yinf, B, y_ld, y_off, D);

    free(c.x), free(c.gamma), free(c.beta), free(c.R), free(xbuf), free(gamma), free(beta);
    free(rm), free(rv), free(rm0), free(rv0), free(ybuf), free(xhat), free(invstd), free(yref);
    free(unit), free(inplace), free(rm2), free(rv2), free(xhat2), free(invstd2), free(dybuf);
    free(dxbuf), free(dgamma), free(dbeta), free(gx), free(gg), free(gb), free(yinf);
}

static void test_batchnorm(void **state) {
    (void)state;
    uint64_t st = 7;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++) batchnorm_case(batch_sizes[bi], 5, &st);
    batchnorm_case(33, 261, &st); /* more columns than one internal block */
}

/* ------------------------------------------------------------------------ */
/* dropout                                                                  */

static void dropout_case(int B, int D, float p, uint64_t seed) {
    char what[64];
    snprintf(what, sizeof what, "dropout(p=%g)", (double)p);
    int ld = D + 2, off = 1;
    uint64_t st = seed ^ 0x5555;
    float *x0 = alloc_fill((size_t)B * ld, SENTINEL);
    fill_slice(x0 + off, ld, NULL, B, D, &st, -1, 1);
    float *x = alloc_fill((size_t)B * ld, 0);
    memcpy(x, x0, sizeof(float) * B * ld);
    float *mask = alloc_fill((size_t)B * D, -1);
    mtl_rng rng;
    mtl_rng_seed(&rng, seed);
    mtl_dropout_forward(x + off, ld, mask, B, D, p, &rng);
    double scale = 1.0 / (1.0 - (double)p);
    size_t kept = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) {
            float m = mask[i * D + j];
            if (m != 0.0f) {
                check_rel(what, B, "mask", i, j, m, scale, 1e-6);
                kept++;
            }
            /* x is exactly x0 * mask */
            check_rel(what, B, "x", i, j, x[i * ld + off + j], x0[i * ld + off + j] * m, 0.0);
        }
    check_padding(what, B, "x", x, B, ld, off, D);
    if ((size_t)B * D >= 10000) {
        /* binomial: std of the kept fraction is sqrt(p(1-p)/n) <= 0.0016 at n = 1e5 */
        double frac = (double)kept / ((double)B * D);
        if (fabs(frac - (1.0 - p)) > 0.01) {
            print_error("%s: kept fraction %.4f, expected %.4f\n", what, frac, 1.0 - p);
            fail();
        }
    }
    if (p == 0.0f) {
        assert_memory_equal(x, x0, sizeof(float) * B * ld);
        for (size_t k = 0; k < (size_t)B * D; k++) assert_true(mask[k] == 1.0f);
    }

    /* same seed, same mask; another seed, another mask */
    float *mask2 = alloc_fill((size_t)B * D, -1);
    memcpy(x, x0, sizeof(float) * B * ld);
    mtl_rng rng2;
    mtl_rng_seed(&rng2, seed);
    mtl_dropout_forward(x + off, ld, mask2, B, D, p, &rng2);
    assert_memory_equal(mask, mask2, sizeof(float) * B * D);
    assert_memory_equal(&rng, &rng2, sizeof rng);
    if (p > 0.0f && (size_t)B * D >= 64) {
        mtl_rng_seed(&rng2, seed + 1);
        mtl_dropout_forward(x + off, ld, mask2, B, D, p, &rng2);
        assert_true(memcmp(mask, mask2, sizeof(float) * B * D) != 0);
    }

    /* backward: d *= mask */
    float *d0 = alloc_fill((size_t)B * ld, SENTINEL);
    fill_slice(d0 + off, ld, NULL, B, D, &st, -1, 1);
    float *d = alloc_fill((size_t)B * ld, 0);
    memcpy(d, d0, sizeof(float) * B * ld);
    mtl_dropout_backward(d + off, ld, mask, B, D);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++)
            check_rel(what, B, "dx", i, j, d[i * ld + off + j],
                      d0[i * ld + off + j] * mask[i * D + j], 0.0);
    check_padding(what, B, "dx", d, B, ld, off, D);
    free(x0), free(x), free(mask), free(mask2), free(d0), free(d);
}

static void test_dropout(void **state) {
    (void)state;
    const float ps[] = {0.0f, 0.1f, 0.3f, 0.5f};
    for (int pi = 0; pi < 4; pi++) {
        for (int bi = 0; bi < N_BATCH_SIZES; bi++) dropout_case(batch_sizes[bi], 5, ps[pi], 11);
        dropout_case(1000, 101, ps[pi], 12); /* 101k values for the kept fraction */
    }
}

/* ------------------------------------------------------------------------ */
/* losses                                                                   */

typedef double (*loss_fn)(float *d, int d_ld, const float *z, int ld, const float *label,
                          int label_ld, const float *weight, int B, float grad_scale,
                          int64_t *count);
typedef double (*loss_ref_fn)(double z, double y);

/* textbook forms, no stabilization (the test only feeds moderate inputs) */
static double ref_bce_logits(double z, double y) {
    double s = 1.0 / (1.0 + exp(-z));
    return -(y * log(s) + (1 - y) * log(1 - s));
}
static double ref_bce_prob(double p, double y) {
    return -(y * log(p) + (1 - y) * log(1 - p));
}
static double ref_mse(double p, double y) {
    return (p - y) * (p - y);
}

typedef struct {
    loss_ref_fn f;
    double z, y, w;
} loss_ref;
static double loss_objective(const void *ctx) {
    const loss_ref *c = ctx;
    return c->w * c->f(c->z, c->y);
}

static void loss_case(const char *name, loss_fn fn, loss_ref_fn ref, int B, int weighted,
                      double zlo, double zhi, int binary, uint64_t *st) {
    char what[64];
    snprintf(what, sizeof what, "%s(weighted=%d)", name, weighted);
    /* a column of a [B x 3] logit matrix, of a [B x 2] label matrix, and of a
     * [B x 4] gradient matrix */
    const int ld = 3, z_off = 1, label_ld = 2, l_off = 1, d_ld = 4, d_off = 2;
    const float scale = 0.37f;
    float *z = alloc_fill((size_t)B * ld, SENTINEL);
    float *label = alloc_fill((size_t)B * label_ld, SENTINEL);
    float *w = alloc_fill((size_t)B * label_ld, SENTINEL); /* a column, as label */
    float *d = alloc_fill((size_t)B * d_ld, SENTINEL);
    int64_t n_valid = 0;
    for (int i = 0; i < B; i++) {
        z[i * ld + z_off] = frand(st, zlo, zhi);
        float y = binary ? (float)(splitmix(st) & 1) : frand(st, -1, 1);
        if (i % 5 == 3)
            y = NAN;
        else
            n_valid++;
        label[i * label_ld + l_off] = y;
        w[i * label_ld + l_off] = weighted ? frand(st, 0.5, 2.0) : 1.0f;
        d[i * d_ld + d_off] = 123.0f; /* must be overwritten, also where missing */
    }
    int64_t count = 5;
    double loss = fn(d + d_off, d_ld, z + z_off, ld, label + l_off, label_ld,
                     weighted ? w + l_off : NULL, B, scale, &count);
    assert_int_equal(count, 5 + n_valid);
    double want = 0;
    for (int i = 0; i < B; i++) {
        double y = label[i * label_ld + l_off];
        if (isnan(y)) {
            if (d[i * d_ld + d_off] != 0.0f) {
                print_error("%s (B=%d): grad[%d] = %g for a missing label\n", what, B, i,
                            (double)d[i * d_ld + d_off]);
                fail();
            }
            continue;
        }
        loss_ref c = {ref, z[i * ld + z_off], y, w[i * label_ld + l_off]};
        want += loss_objective(&c);
        double g = fd(loss_objective, &c, &c.z);
        check_rel(what, B, "grad/grad_scale", i, 0, d[i * d_ld + d_off] / scale, g, GRAD_TOL);
    }
    check_rel(what, B, "loss", 0, 0, loss, want, 1e-7);
    check_padding(what, B, "grad", d, B, d_ld, d_off, 1);

    /* dlogit NULL: same loss, still counted */
    double loss2 = fn(NULL, 0, z + z_off, ld, label + l_off, label_ld, weighted ? w + l_off : NULL,
                      B, scale, &count);
    assert_true(loss2 == loss);
    assert_int_equal(count, 5 + 2 * n_valid);

    /* every label missing: zero loss, nothing counted */
    for (int i = 0; i < B; i++) label[i * label_ld + l_off] = NAN;
    count = 0;
    loss2 = fn(d + d_off, d_ld, z + z_off, ld, label + l_off, label_ld, weighted ? w + l_off : NULL,
               B, scale, &count);
    assert_true(loss2 == 0.0);
    assert_int_equal(count, 0);
    for (int i = 0; i < B; i++) assert_true(d[i * d_ld + d_off] == 0.0f);
    free(z), free(label), free(w), free(d);
}

static void test_losses(void **state) {
    (void)state;
    uint64_t st = 8;
    for (int bi = 0; bi < N_BATCH_SIZES; bi++)
        for (int weighted = 0; weighted <= 1; weighted++) {
            int B = batch_sizes[bi];
            loss_case("bce_logits", mtl_bce_logits, ref_bce_logits, B, weighted, -4, 4, 1, &st);
            /* away from the clamp, where the reference is the plain formula */
            loss_case("bce_prob", mtl_bce_prob, ref_bce_prob, B, weighted, 0.02, 0.98, 1, &st);
            loss_case("mse", mtl_mse, ref_mse, B, weighted, -2, 2, 0, &st);
        }
}

/* weight NULL means weight 1: identical to explicit ones */
static void test_losses_null_weight(void **state) {
    (void)state;
    uint64_t st = 9;
    enum { B = 33 };
    const loss_fn fns[3] = {mtl_bce_logits, mtl_bce_prob, mtl_mse};
    float z[B], y[B], ones[B], d1[B], d2[B];
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < B; i++) {
            z[i] = frand(&st, 0.05, 0.95);
            y[i] = i % 4 == 1 ? NAN : (float)(i & 1);
            ones[i] = 1.0f;
        }
        int64_t c1 = 0, c2 = 0;
        double l1 = fns[f](d1, 1, z, 1, y, 1, NULL, B, 0.5f, &c1);
        double l2 = fns[f](d2, 1, z, 1, y, 1, ones, B, 0.5f, &c2);
        assert_true(l1 == l2);
        assert_int_equal(c1, c2);
        assert_memory_equal(d1, d2, sizeof d1);
    }
}

static void expect_loss(const char *what, double loss, double want_loss, float grad,
                        double want_grad) {
    if (!isfinite(loss) || !isfinite(grad) || rel_err(loss, want_loss, REL_FLOOR) > 1e-6 ||
        rel_err(grad, want_grad, REL_FLOOR) > 1e-6) {
        print_error("%s: loss %.9g (want %.9g), grad %.9g (want %.9g)\n", what, loss, want_loss,
                    (double)grad, want_grad);
        fail();
    }
}

/* Saturated inputs: finite and correct, where the textbook formulas give
 * inf or NaN. */
static void test_losses_extreme(void **state) {
    (void)state;
    float d;
    int64_t n = 0;
    const float zs[4] = {100.0f, -100.0f, 1000.0f, -1000.0f};
    for (int k = 0; k < 4; k++)
        for (int yi = 0; yi <= 1; yi++) {
            float z = zs[k], y = (float)yi;
            double loss = mtl_bce_logits(&d, 1, &z, 1, &y, 1, NULL, 1, 1.0f, &n);
            int wrong = (z > 0) != (yi == 1); /* confidently wrong: loss |z|, grad +-1 */
            char what[64];
            snprintf(what, sizeof what, "bce_logits(z=%g, y=%d)", (double)z, yi);
            if (wrong)
                expect_loss(what, loss, fabs(z), d, z > 0 ? 1.0 : -1.0);
            else {
                /* confidently right: loss exp(-|z|) ~ 0, grad ~ 0 */
                if (!(isfinite(loss) && loss >= 0 && loss < 1e-40 && fabsf(d) < 1e-30f)) {
                    print_error("%s: loss %g grad %g\n", what, loss, (double)d);
                    fail();
                }
            }
        }
    assert_int_equal(n, 8);

    /* bce_logits' exp and log1p run in float: against the double formula over
     * z in [-40, 40], loss and gradient within a few float ulps (1e-6
     * relative), also where s(z) - y is far below 1's ulp (|z| > 17) */
    for (int k = 0; k <= 800; k++)
        for (int yi = 0; yi <= 1; yi++) {
            float z = -40.0f + 0.1f * (float)k, y = (float)yi;
            double zd = z, ez = exp(-fabs(zd)), num = zd >= 0 ? 1.0 : ez;
            double want_loss = fmax(zd, 0.0) - zd * yi + log1p(ez);
            double want_grad = ((num - yi) - yi * ez) / (1.0 + ez); /* s(z) - y, no cancellation */
            double loss = mtl_bce_logits(&d, 1, &z, 1, &y, 1, NULL, 1, 1.0f, &n);
            if (rel_err(loss, want_loss, 1e-30) > 1e-6 || rel_err(d, want_grad, 1e-30) > 1e-6) {
                print_error(
                    "bce_logits(z=%g, y=%d): loss %.9g (want %.9g), grad %.9g (want %.9g)\n",
                    (double)z, yi, loss, want_loss, (double)d, want_grad);
                fail();
            }
        }

    /* bce_prob at and beyond the clamp: loss and gradient of the clamped p */
    const float ps[4] = {0.0f, 1.0f, -0.5f, 1.5f};
    for (int k = 0; k < 4; k++)
        for (int yi = 0; yi <= 1; yi++) {
            float p = ps[k], y = (float)yi;
            double pc = p < 1e-7 ? 1e-7 : (p > 1 - 1e-7 ? 1 - 1e-7 : p);
            double wl = -(yi * log(pc) + (1 - yi) * log(1 - pc));
            double wg = 0.5 * (pc - yi) / (pc * (1 - pc));
            double loss = mtl_bce_prob(&d, 1, &p, 1, &y, 1, NULL, 1, 0.5f, &n);
            char what[64];
            snprintf(what, sizeof what, "bce_prob(p=%g, y=%d)", (double)p, yi);
            expect_loss(what, loss, wl, d, wg);
        }

    /* mse far from the label */
    float p = 1e4f, y = -1e4f;
    double loss = mtl_mse(&d, 1, &p, 1, &y, 1, NULL, 1, 1.0f, &n);
    expect_loss("mse(1e4, -1e4)", loss, 4e8, d, 4e4);
}

/* ------------------------------------------------------------------------ */
/* rng                                                                      */

static void test_rng(void **state) {
    (void)state;
    /* reference vectors from the xoshiro256** and splitmix64 papers' C code
     * (computed independently with Python) */
    mtl_rng r = {{1, 2, 3, 4}};
    const uint64_t want[6] = {
        0x2d00, 0x0, 0x5a007080, 0x10e0000000009d80, 0x10e0b61ce1009d80, 0x870021ce143ad00};
    for (int k = 0; k < 6; k++) assert_true(mtl_rng_next(&r) == want[k]);
    mtl_rng_seed(&r, 0);
    assert_true(r.s[0] == 0xe220a8397b1dcdafULL && r.s[1] == 0x6e789e6aa1b965f4ULL &&
                r.s[2] == 0x06c45d188009454fULL && r.s[3] == 0xf88bb8a8724c81ecULL);
    assert_true(mtl_rng_next(&r) == 0x99ec5f36cb75f2b4ULL);

    /* same seed, same stream; neighbouring seed, different stream */
    mtl_rng a, b;
    mtl_rng_seed(&a, 42), mtl_rng_seed(&b, 42);
    for (int k = 0; k < 1000; k++) assert_true(mtl_rng_next(&a) == mtl_rng_next(&b));
    mtl_rng_seed(&b, 43);
    int same = 0;
    for (int k = 0; k < 1000; k++) same += mtl_rng_next(&a) == mtl_rng_next(&b);
    assert_true(same == 0);

    /* moments over 1e5 draws; tolerances are ~5 standard errors */
    enum { N = 100000 };
    double su = 0, sd = 0, sn = 0, sn2 = 0;
    int within1 = 0;
    mtl_rng_seed(&a, 7);
    for (int k = 0; k < N; k++) {
        float u = mtl_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        su += u;
        double ud = mtl_rng_uniform_double(&a);
        assert_true(ud >= 0.0 && ud < 1.0);
        sd += ud;
        double z = mtl_rng_normal(&a);
        assert_true(isfinite(z));
        sn += z, sn2 += z * z;
        within1 += fabs(z) < 1.0;
    }
    double mean_n = sn / N, var_n = sn2 / N - mean_n * mean_n;
    if (fabs(su / N - 0.5) > 0.005 || fabs(sd / N - 0.5) > 0.005 || fabs(mean_n) > 0.016 ||
        fabs(var_n - 1.0) > 0.025 || fabs((double)within1 / N - 0.682689) > 0.0075) {
        print_error("rng moments: uniform mean %.5f, uniform_double mean %.5f, normal mean %.5f "
                    "var %.5f P(|z|<1) %.5f\n",
                    su / N, sd / N, mean_n, var_n, (double)within1 / N);
        fail();
    }

    /* mtl_rng_below: in range, roughly uniform */
    const uint64_t ns[] = {1, 2, 3, 7, 1000, (1ULL << 63) + 1, UINT64_MAX};
    for (int t = 0; t < 7; t++)
        for (int k = 0; k < 2000; k++) assert_true(mtl_rng_below(&a, ns[t]) < ns[t]);
    int counts[7] = {0};
    for (int k = 0; k < 70000; k++) counts[mtl_rng_below(&a, 7)]++;
    for (int v = 0; v < 7; v++) assert_true(abs(counts[v] - 10000) < 500); /* ~5 sigma */
    /* no modulo bias: with n = 3 * 2^62, plain r % n returns values below
     * 2^62 half the time instead of a third */
    uint64_t n3 = 3ULL << 62;
    int low = 0;
    for (int k = 0; k < 20000; k++) low += mtl_rng_below(&a, n3) < (1ULL << 62);
    assert_true(fabs(low / 20000.0 - 1.0 / 3.0) < 0.02);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_bias),
        cmocka_unit_test(test_activation_bias_backward),
        cmocka_unit_test(test_bias_relu_forward),
        cmocka_unit_test(test_mixture),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_input),
        cmocka_unit_test(test_pooled),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_losses_null_weight),
        cmocka_unit_test(test_losses_extreme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
