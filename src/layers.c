/* Layers: forward/backward pairs on a mini-batch. See include/mtl/layers.h for
 * the conventions (row-major float32, leading dimensions, backward +=).
 *
 * Dense layers go through gemm.c (OpenBLAS or libxsmm); everything else is written as plain
 * loops with the innermost loop over contiguous columns and restrict-qualified
 * pointers so GCC vectorizes them at -O3 without -ffast-math. Where a float
 * reduction would block vectorization (dot products), we keep 8 independent
 * partial sums that GCC maps onto one vector register. */
#include "mtl/layers.h"

#include "hot.h"

/* Inlined bodies take widths the dispatchers pass as constants for the usual
 * sizes, so each row compiles to a few unrolled vector instructions. */
#define MTL_INLINE static inline __attribute__((always_inline))

/* 8-float vectors (GCC/Clang vector extensions): explicit, because the loops
 * below are short (an expert is 8..64 wide) and GCC leaves them scalar when it
 * cannot prove the rows do not alias. Each target clone compiles them to its
 * widest registers. */
typedef float v8f __attribute__((vector_size(32)));
MTL_INLINE v8f load8(const float *p) {
    v8f v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
MTL_INLINE void store8(float *p, v8f v) {
    __builtin_memcpy(p, &v, sizeof v);
}
/* 16 floats: one AVX-512 register, or two/four narrower ones in the other
 * clones; an expert row of 16 (the default width) is one vector. */
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
MTL_INLINE v16f load16(const float *p) {
    v16f v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
MTL_INLINE void store16(float *p, v16f v) {
    __builtin_memcpy(p, &v, sizeof v);
}
MTL_INLINE v8f fold16(v16f v) { /* lanes j + lanes j+8 */
    return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
}
typedef float v4f __attribute__((vector_size(16)));
MTL_INLINE v4f load4(const float *p) {
    v4f v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
MTL_INLINE void store4(float *p, v4f v) {
    __builtin_memcpy(p, &v, sizeof v);
}
/* Lane-wise max; a NaN in b passes through (x > NaN is false). */
typedef int v8i __attribute__((vector_size(32)));
MTL_INLINE v8f max8v(v8f a, v8f b) {
    v8i gt = a > b;
    return (v8f)(((v8i)a & gt) | ((v8i)b & ~gt));
}
MTL_INLINE v8f combine8(v8f a, v8f b, int use_max) {
    return use_max ? max8v(a, b) : a + b;
}
/* The lane sums (or maxima) of 8 vectors, as one vector:
 * {sum(a[0]), ..., sum(a[7])}. Each sum is ((x0+x1)+(x2+x3))+((x4+x5)+(x6+x7)),
 * the order hsum8 uses for one vector, so a row's sum does not depend on
 * whether it went alone or with 7 others. */
MTL_INLINE v8f reduce8x8(const v8f *a, int use_max) {
    v8f p[4], q[2];
    for (int i = 0; i < 4; i++) /* [x0+x1, y0+y1, x2+x3, y2+y3, ...] of a[2i], a[2i+1] */
        p[i] = combine8(__builtin_shufflevector(a[2 * i], a[2 * i + 1], 0, 8, 2, 10, 4, 12, 6, 14),
                        __builtin_shufflevector(a[2 * i], a[2 * i + 1], 1, 9, 3, 11, 5, 13, 7, 15),
                        use_max);
    for (int i = 0; i < 2; i++) /* quarter sums of four vectors */
        q[i] = combine8(__builtin_shufflevector(p[2 * i], p[2 * i + 1], 0, 1, 8, 9, 4, 5, 12, 13),
                        __builtin_shufflevector(p[2 * i], p[2 * i + 1], 2, 3, 10, 11, 6, 7, 14, 15),
                        use_max);
    return combine8(__builtin_shufflevector(q[0], q[1], 0, 1, 2, 3, 8, 9, 10, 11),
                    __builtin_shufflevector(q[0], q[1], 4, 5, 6, 7, 12, 13, 14, 15), use_max);
}
MTL_INLINE v8f hsum8x8(const v8f *a) {
    return reduce8x8(a, 0);
}
MTL_INLINE float hsum8(v8f v) {
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* random numbers                                                           */

static inline uint64_t rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* splitmix64's output function (Steele, Lea & Flood, OOPSLA 2014): the
 * counter-th output of the generator seeded with key. */
uint64_t mtl_splitmix64(uint64_t key, uint64_t counter) {
    uint64_t t = key + (counter + 1) * 0x9e3779b97f4a7c15ULL;
    t = (t ^ (t >> 30)) * 0xbf58476d1ce4e5b9ULL;
    t = (t ^ (t >> 27)) * 0x94d049bb133111ebULL;
    return t ^ (t >> 31);
}

/* splitmix64 spreads any seed (0, 1, 2, ...) over the whole 256-bit state, so
 * nearby seeds give unrelated streams and the state is never all zero. */
void mtl_rng_seed(mtl_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = mtl_splitmix64(seed, (uint64_t)i);
}

uint64_t mtl_rng_next(mtl_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* top bits: the low bits of xoshiro256** are fine, but the top ones are the
 * conventional choice and 24 bits is all a float mantissa holds, which also
 * guarantees the result is < 1 (no rounding up to 1.0f). */
float mtl_rng_uniform(mtl_rng *rng) {
    return (float)(mtl_rng_next(rng) >> 40) * 0x1.0p-24f;
}

double mtl_rng_uniform_double(mtl_rng *rng) {
    return (double)(mtl_rng_next(rng) >> 11) * 0x1.0p-53;
}

double mtl_rng_normal(mtl_rng *rng) {
    /* 1 - u is in (0, 1], so the log is finite */
    double u1 = 1.0 - mtl_rng_uniform_double(rng);
    double u2 = mtl_rng_uniform_double(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

/* Rejection sampling: drop the 2^64 mod n smallest draws so that every residue
 * appears equally often among the accepted ones. At most half the draws are
 * rejected in the worst case (n just above 2^63), usually none. n == 0 has no
 * valid answer; we return 0 rather than loop forever. */
uint64_t mtl_rng_below(mtl_rng *rng, uint64_t n) {
    if (n == 0) return 0;
    uint64_t threshold = (0 - n) % n; /* == 2^64 mod n */
    for (;;) {
        uint64_t r = mtl_rng_next(rng);
        if (r >= threshold) return r % n;
    }
}

/* ------------------------------------------------------------------------ */
/* dense                                                                    */

void mtl_dense_forward(float *out, int out_ld, const float *in, int in_ld, const float *w,
                       const float *b, int B, int in_dim, int out_dim) {
    mtl_gemm_plan p = mtl_gemm_plan_openblas(in_dim, out_dim, in_ld, out_ld, 0, 0);
    mtl_dense_forward_plan(&p, out, in, w, b, B);
}

void mtl_dense_forward_plan(const mtl_gemm_plan *p, float *out, const float *in, const float *w,
                            const float *b, int B) {
    if (B <= 0 || p->N <= 0) return;
    if (b) /* pre-fill with the bias and let the product accumulate on top (beta=1):
            * one pass over out instead of a second bias pass after the product */
        for (int i = 0; i < B; i++) memcpy(out + (size_t)i * p->out_ld, b, sizeof(float) * p->N);
    mtl_gemm_forward(p, out, in, w, B, b ? 1.0f : 0.0f);
}

void mtl_dense_backward(float *din, int din_ld, float *dw, float *db, const float *dout,
                        int dout_ld, const float *in, int in_ld, const float *w, int B, int in_dim,
                        int out_dim) {
    mtl_gemm_plan p = mtl_gemm_plan_openblas(in_dim, out_dim, in_ld, dout_ld, din_ld, in_dim);
    mtl_dense_backward_plan(&p, din, dw, db, dout, in, w, B);
}

void mtl_dense_backward_plan(const mtl_gemm_plan *p, float *din, float *dw, float *db,
                             const float *dout, const float *in, const float *w, int B) {
    if (B <= 0 || p->N <= 0) return;
    mtl_gemm_wgrad(p, dw, dout, in, B);
    if (din) mtl_gemm_xgrad(p, din, dout, w, B);
    if (db) mtl_bias_backward(db, dout, p->out_ld, B, p->N);
}

/* ------------------------------------------------------------------------ */
/* activations                                                              */

MTL_HOT void mtl_bias_forward(float *out, int out_ld, const float *b, int B, int n) {
    for (int i = 0; i < B; i++) {
        float *restrict o = out + (size_t)i * (size_t)out_ld;
        const float *restrict bb = b;
        for (int j = 0; j < n; j++) o[j] += bb[j];
    }
}

MTL_HOT void mtl_bias_backward(float *db, const float *dout, int dout_ld, int B, int n) {
    for (int i = 0; i < B; i++) {
        float *restrict acc = db;
        const float *restrict d = dout + (size_t)i * (size_t)dout_ld;
        for (int j = 0; j < n; j++) acc[j] += d[j];
    }
}

MTL_HOT void mtl_relu_forward(float *x, int x_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict r = x + (size_t)i * x_ld;
        /* written as "< 0 -> 0" rather than "> 0 ? x : 0" so a NaN stays NaN
         * and the trainer's non-finite check still sees it downstream */
        for (int j = 0; j < D; j++) r[j] = r[j] < 0.0f ? 0.0f : r[j];
    }
}

MTL_HOT void mtl_bias_relu_forward(float *x, int x_ld, const float *b, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *r = x + (size_t)i * x_ld;
        int j = 0;
        for (; j + 16 <= D; j += 16) { /* as mtl_relu_forward: a NaN stays NaN */
            v16f v = load16(r + j) + load16(b + j);
            store16(r + j, (v16f)((v16i)v & ~(v < 0.0f)));
        }
        for (; j < D; j++) {
            float v = r[j] + b[j];
            r[j] = v < 0.0f ? 0.0f : v;
        }
    }
}

MTL_HOT void mtl_relu_backward(float *d, int d_ld, const float *y, int y_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict dr = d + (size_t)i * d_ld;
        const float *restrict yr = y + (size_t)i * y_ld;
        for (int j = 0; j < D; j++) dr[j] = yr[j] > 0.0f ? dr[j] : 0.0f;
    }
}

/* tanh and the logistic function as hidden activations: their derivatives
 * come from the output, as ReLU's (tanh' = 1 - y^2, sigmoid' = y (1 - y)), so
 * backward needs nothing but the layer's output. */
MTL_HOT static void tanh_rows(float *x, int x_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict r = x + (size_t)i * x_ld;
        for (int j = 0; j < D; j++) r[j] = tanhf(r[j]);
    }
}

MTL_HOT static void sigmoid_rows(float *x, int x_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict r = x + (size_t)i * x_ld;
        for (int j = 0; j < D; j++) r[j] = 1.0f / (1.0f + expf(-r[j]));
    }
}

void mtl_activation_forward(int act, float *x, int x_ld, int B, int D) {
    if (act == MTL_ACT_TANH)
        tanh_rows(x, x_ld, B, D);
    else if (act == MTL_ACT_SIGMOID)
        sigmoid_rows(x, x_ld, B, D);
    else
        mtl_relu_forward(x, x_ld, B, D);
}

MTL_HOT static void dtanh_rows(float *d, int d_ld, const float *y, int y_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict dr = d + (size_t)i * d_ld;
        const float *restrict yr = y + (size_t)i * y_ld;
        for (int j = 0; j < D; j++) dr[j] *= 1.0f - yr[j] * yr[j];
    }
}

MTL_HOT static void dsigmoid_rows(float *d, int d_ld, const float *y, int y_ld, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict dr = d + (size_t)i * d_ld;
        const float *restrict yr = y + (size_t)i * y_ld;
        for (int j = 0; j < D; j++) dr[j] *= yr[j] * (1.0f - yr[j]);
    }
}

/* ReLU's backward and the bias gradient in one pass: db needs exactly the
 * masked rows ReLU's backward writes, so it is summed while each row is in
 * registers instead of by a second pass over dz (mtl_bias_backward). A block
 * of 16 (or 8) columns keeps its sums in a register over all rows: summed
 * row by row through db, each row's add would wait for the last one's store
 * (an expert is 16 wide). The rows are added in the same order as
 * mtl_bias_backward's: the sums are bit-identical. */
MTL_HOT static void drelu_bias_rows(float *d, int d_ld, const float *y, int y_ld, float *db, int B,
                                    int D) {
    int j = 0;
#define DRELU_BIAS_BLOCKS(W, VF, VI, LOAD, STORE)                                                  \
    for (; j + (W) <= D; j += (W)) {                                                               \
        VF acc = LOAD(db + j);                                                                     \
        for (int i = 0; i < B; i++) {                                                              \
            float *dr = d + (size_t)i * (size_t)d_ld + j;                                          \
            VI on = LOAD(y + (size_t)i * (size_t)y_ld + j) > 0.0f;                                 \
            VF v = (VF)((VI)LOAD(dr) & on);                                                        \
            STORE(dr, v);                                                                          \
            acc += v;                                                                              \
        }                                                                                          \
        STORE(db + j, acc);                                                                        \
    }
    DRELU_BIAS_BLOCKS(16, v16f, v16i, load16, store16)
    DRELU_BIAS_BLOCKS(8, v8f, v8i, load8, store8)
#undef DRELU_BIAS_BLOCKS
    for (; j < D; j++) {
        float acc = db[j];
        for (int i = 0; i < B; i++) {
            float *dr = d + (size_t)i * (size_t)d_ld + j;
            float v = y[(size_t)i * (size_t)y_ld + j] > 0.0f ? *dr : 0.0f;
            *dr = v;
            acc += v;
        }
        db[j] = acc;
    }
}

void mtl_activation_bias_backward(int act, float *d, int d_ld, const float *y, int y_ld, float *db,
                                  int B, int D) {
    if (db && act != MTL_ACT_TANH && act != MTL_ACT_SIGMOID) {
        drelu_bias_rows(d, d_ld, y, y_ld, db, B, D);
        return;
    }
    if (act == MTL_ACT_TANH)
        dtanh_rows(d, d_ld, y, y_ld, B, D);
    else if (act == MTL_ACT_SIGMOID)
        dsigmoid_rows(d, d_ld, y, y_ld, B, D);
    else
        mtl_relu_backward(d, d_ld, y, y_ld, B, D);
    if (db) mtl_bias_backward(db, d, d_ld, B, D);
}

void mtl_activation_backward(int act, float *d, int d_ld, const float *y, int y_ld, int B, int D) {
    mtl_activation_bias_backward(act, d, d_ld, y, y_ld, NULL, B, D);
}

/* Attention over U candidates, each of width k (AITM, Xi et al., KDD 2021,
 * sec. 3.2, eq. 3-5): per row, a_u = <Q_u, K_u> / sqrt(k), w = softmax(a),
 * out = sum_u w_u V_u, where candidate u's projections [V_u | Q_u | K_u]
 * are 3k adjacent columns of proj[u]. U is small (AITM: 2). */
#define MAX_CANDIDATES 8
void mtl_attention_forward(float *out, int out_ld, float *weights, const float *const *proj,
                           int proj_ld, int B, int U, int k) {
    float scale = 1.0f / sqrtf((float)k);
    for (int i = 0; i < B; i++) {
        float *w = weights + (size_t)i * (size_t)U, mx = -INFINITY, sum = 0.0f;
        for (int u = 0; u < U; u++) {
            const float *p = proj[u] + (size_t)i * (size_t)proj_ld;
            float a = 0.0f;
            for (int j = 0; j < k; j++) a += p[k + j] * p[2 * k + j];
            w[u] = a * scale;
            mx = fmaxf(mx, w[u]);
        }
        for (int u = 0; u < U; u++) sum += (w[u] = expf(w[u] - mx));
        float *o = out + (size_t)i * (size_t)out_ld;
        for (int j = 0; j < k; j++) o[j] = 0.0f;
        for (int u = 0; u < U; u++) {
            w[u] /= sum;
            const float *v = proj[u] + (size_t)i * (size_t)proj_ld;
            for (int j = 0; j < k; j++) o[j] += w[u] * v[j];
        }
    }
}

void mtl_attention_backward(float *const *dproj, const float *dout, int dout_ld,
                            const float *weights, const float *const *proj, int proj_ld, int B,
                            int U, int k) {
    float scale = 1.0f / sqrtf((float)k);
    for (int i = 0; i < B; i++) {
        const float *w = weights + (size_t)i * (size_t)U, *g = dout + (size_t)i * (size_t)dout_ld;
        float dw[MAX_CANDIDATES], dot = 0.0f;
        for (int u = 0; u < U; u++) {
            const float *v = proj[u] + (size_t)i * (size_t)proj_ld;
            float *dv = dproj[u] + (size_t)i * (size_t)proj_ld;
            dw[u] = 0.0f;
            for (int j = 0; j < k; j++) {
                dw[u] += g[j] * v[j];
                dv[j] += w[u] * g[j];
            }
            dot += w[u] * dw[u];
        }
        for (int u = 0; u < U; u++) {
            float da = w[u] * (dw[u] - dot) * scale; /* softmax backward, then the 1/sqrt(k) */
            const float *p = proj[u] + (size_t)i * (size_t)proj_ld;
            float *dp = dproj[u] + (size_t)i * (size_t)proj_ld;
            for (int j = 0; j < k; j++) {
                dp[k + j] += da * p[2 * k + j];
                dp[2 * k + j] += da * p[k + j];
            }
        }
    }
}

/* y may alias x: no restrict. 1/(1+exp(-x)) is already stable in float:
 * exp(-x) overflows to inf for x < -88 and the result is then exactly 0. */
void mtl_sigmoid_forward(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* exp of 8 values <= 0 (softmax after subtracting the row's max): Cephes'
 * expf (Moshier), a degree-6 polynomial on [-ln2/2, ln2/2] times 2^n, within
 * 2 ulp of expf; inputs below -87 give exp(-87), which is 0 next to the
 * row's max term exp(0) = 1. */
MTL_INLINE v8f exp8_nonpositive(v8f x) {
    const v8f lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    v8i below = x < lo; /* all ones where true: a branch-free select */
    x = (v8f)(((v8i)lo & below) | ((v8i)x & ~below));
    v8f t = x * 1.44269504088896341f - 0.5f; /* round half away from zero, t <= 0 */
    v8i n = __builtin_convertvector(t, v8i);
    v8f nf = __builtin_convertvector(n, v8f);
    v8f r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
    v8f p = 1.9875691500E-4f * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    v8f e = p * r * r + r + 1.0f;
    v8i bits = (n + 127) << 23; /* 2^n, n >= -126 */
    v8f scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

MTL_INLINE float max8(v8f v) {
    float m = v[0];
    for (int k = 1; k < 8; k++) m = v[k] > m ? v[k] : m;
    return m;
}

/* A row of K <= 16 values as two vectors, lanes past K filled with `pad`:
 * a load or a few moves where K is a constant. */
MTL_INLINE v8f row_lo(const float *r, int K, float pad) {
    if (K >= 8) return load8(r);
    v8f v;
    for (int k = 0; k < 8; k++) v[k] = k < K ? r[k] : pad;
    return v;
}
MTL_INLINE v8f row_hi(const float *r, int K, float pad) {
    if (K >= 16) return load8(r + 8);
    v8f v;
    for (int k = 0; k < 8; k++) v[k] = k + 8 < K ? r[k + 8] : pad;
    return v;
}
MTL_INLINE void store_row(float *r, int K, v8f lo, v8f hi) {
    if (K >= 8)
        store8(r, lo);
    else
        for (int k = 0; k < K; k++) r[k] = lo[k];
    if (K >= 16)
        store8(r + 8, hi);
    else
        for (int k = 0; k + 8 < K; k++) r[k + 8] = hi[k];
}

/* exp(x - m) of one row's two vectors (x <= m), lanes past K zero. */
MTL_INLINE void exp_row(v8f lo, v8f hi, float m, int K, v8f *elo, v8f *ehi) {
    v8i keep_lo, keep_hi;
    for (int k = 0; k < 8; k++) {
        keep_lo[k] = k < K ? -1 : 0;
        keep_hi[k] = k + 8 < K ? -1 : 0;
    }
    *elo = (v8f)((v8i)exp8_nonpositive(lo - m) & keep_lo);
    *ehi = K > 8 ? (v8f)((v8i)exp8_nonpositive(hi - m) & keep_hi) : (v8f){0};
}

/* softmax(x) of rows of K <= 16 values. A row alone is a
 * serial chain: max across lanes, exp, sum across lanes, divide. Eight rows
 * at a time turn the 16 horizontal reductions into two 8x8 ones and one
 * divide, and their exps overlap; the sums add in the same order either way
 * (reduce8x8), so a row's result does not depend on its place in the batch. */
MTL_INLINE void softmax_rows(float *y, int y_ld, const float *x, int x_ld, int B, int K) {
    const float pad = -INFINITY;
    int i = 0;
    for (; i + 8 <= B; i += 8) {
        v8f lo[8], hi[8], top[8], sum[8];
        for (int r = 0; r < 8; r++) {
            const float *xr = x + (size_t)(i + r) * (size_t)x_ld;
            lo[r] = row_lo(xr, K, pad);
            hi[r] = K > 8 ? row_hi(xr, K, pad) : lo[r];
            top[r] = max8v(lo[r], hi[r]);
        }
        v8f m = reduce8x8(top, 1);
        for (int r = 0; r < 8; r++) {
            exp_row(lo[r], hi[r], m[r], K, &lo[r], &hi[r]);
            sum[r] = lo[r] + hi[r];
        }
        v8f inv = 1.0f / hsum8x8(sum); /* each sum >= 1: the max term is exp(0) */
        for (int r = 0; r < 8; r++)
            store_row(y + (size_t)(i + r) * (size_t)y_ld, K, lo[r] * inv[r], hi[r] * inv[r]);
    }
    for (; i < B; i++) {
        const float *xr = x + (size_t)i * (size_t)x_ld;
        v8f lo = row_lo(xr, K, pad), hi = K > 8 ? row_hi(xr, K, pad) : lo;
        exp_row(lo, hi, max8(max8v(lo, hi)), K, &lo, &hi);
        float inv = 1.0f / hsum8(lo + hi);
        store_row(y + (size_t)i * (size_t)y_ld, K, lo * inv, hi * inv);
    }
}

/* y may alias x. Gates mix a handful of experts: K <= 16 takes the vector
 * bodies, compiled for the usual K as constants (8: MMoE's and a CGC/PLE
 * task's gate of 4 + 4 experts; 12: PLE's shared gate), wider rows a scalar
 * loop. */
MTL_HOT void mtl_softmax_forward(float *y, int y_ld, const float *x, int x_ld, int B, int K) {
    if (K == 8)
        softmax_rows(y, y_ld, x, x_ld, B, 8);
    else if (K == 12)
        softmax_rows(y, y_ld, x, x_ld, B, 12);
    else if (K == 16)
        softmax_rows(y, y_ld, x, x_ld, B, 16);
    else if (K > 0 && K < 16)
        softmax_rows(y, y_ld, x, x_ld, B, K);
    if (K <= 16) return;
    for (int i = 0; i < B; i++) {
        const float *xr = x + (size_t)i * x_ld;
        float *yr = y + (size_t)i * y_ld;
        float m = xr[0];
        for (int k = 1; k < K; k++) m = xr[k] > m ? xr[k] : m;
        float s = 0.0f;
        for (int k = 0; k < K; k++) {
            float e = expf(xr[k] - m); /* <= 1: no overflow */
            yr[k] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int k = 0; k < K; k++) yr[k] *= inv;
    }
}

/* dx = y * (dy - <dy, y>) per row (the softmax Jacobian-vector product);
 * rows of K <= 16 as in softmax_rows, 8 at a time. dx may alias dy. */
MTL_INLINE void softmax_backward_rows(float *dx, int dx_ld, const float *dy, int dy_ld,
                                      const float *y, int y_ld, int B, int K) {
    int i = 0;
    for (; i + 8 <= B; i += 8) {
        v8f dlo[8], dhi[8], ylo[8], yhi[8], prod[8];
        for (int r = 0; r < 8; r++) {
            const float *dyr = dy + (size_t)(i + r) * (size_t)dy_ld;
            const float *yr = y + (size_t)(i + r) * (size_t)y_ld;
            dlo[r] = row_lo(dyr, K, 0.0f);
            ylo[r] = row_lo(yr, K, 0.0f);
            dhi[r] = K > 8 ? row_hi(dyr, K, 0.0f) : (v8f){0};
            yhi[r] = K > 8 ? row_hi(yr, K, 0.0f) : (v8f){0};
            prod[r] = dlo[r] * ylo[r] + dhi[r] * yhi[r];
        }
        v8f dot = hsum8x8(prod);
        for (int r = 0; r < 8; r++)
            store_row(dx + (size_t)(i + r) * (size_t)dx_ld, K, ylo[r] * (dlo[r] - dot[r]),
                      yhi[r] * (dhi[r] - dot[r]));
    }
    for (; i < B; i++) {
        const float *dyr = dy + (size_t)i * (size_t)dy_ld;
        const float *yr = y + (size_t)i * (size_t)y_ld;
        v8f dlo = row_lo(dyr, K, 0.0f), ylo = row_lo(yr, K, 0.0f);
        v8f dhi = K > 8 ? row_hi(dyr, K, 0.0f) : (v8f){0};
        v8f yhi = K > 8 ? row_hi(yr, K, 0.0f) : (v8f){0};
        float dot = hsum8(dlo * ylo + dhi * yhi);
        store_row(dx + (size_t)i * (size_t)dx_ld, K, ylo * (dlo - dot), yhi * (dhi - dot));
    }
}

MTL_HOT void mtl_softmax_backward(float *dx, int dx_ld, const float *dy, int dy_ld, const float *y,
                                  int y_ld, int B, int K) {
    if (K == 8)
        softmax_backward_rows(dx, dx_ld, dy, dy_ld, y, y_ld, B, 8);
    else if (K == 12)
        softmax_backward_rows(dx, dx_ld, dy, dy_ld, y, y_ld, B, 12);
    else if (K == 16)
        softmax_backward_rows(dx, dx_ld, dy, dy_ld, y, y_ld, B, 16);
    else if (K > 0 && K < 16)
        softmax_backward_rows(dx, dx_ld, dy, dy_ld, y, y_ld, B, K);
    if (K <= 16) return;
    for (int i = 0; i < B; i++) {
        const float *dyr = dy + (size_t)i * dy_ld;
        const float *yr = y + (size_t)i * y_ld;
        float *dxr = dx + (size_t)i * dx_ld;
        float dot = 0.0f;
        for (int k = 0; k < K; k++) dot += dyr[k] * yr[k];
        for (int k = 0; k < K; k++) dxr[k] = yr[k] * (dyr[k] - dot);
    }
}

/* ------------------------------------------------------------------------ */
/* mixture of experts                                                       */

/* Dot product with 8 independent partial sums: a single float accumulator is
 * a serial dependency chain GCC may not reorder (no -ffast-math); 8 lanes let
 * it use one vector register of accumulators. */
static inline float dot_f32(const float *restrict a, const float *restrict b, int n) {
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[j + u] * b[j + u];
    float s = 0.0f;
    for (; j < n; j++) s += a[j] * b[j];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

MTL_INLINE void mixture_forward_rows(float *out, int out_ld, const float *gate, int gate_ld,
                                     const float *const *expert, int expert_ld, int B, int K,
                                     int D) {
    for (int i = 0; i < B; i++) {
        float *restrict o = out + (size_t)i * out_ld;
        const float *g = gate + (size_t)i * gate_ld;
        size_t row = (size_t)i * (size_t)expert_ld;
        if (K <= 0) {
            memset(o, 0, sizeof(float) * D);
            continue;
        }
        int j = 0;
        if (D == 16) {
            v16f acc = g[0] * load16(expert[0] + row);
            for (int k = 1; k < K; k++) acc += g[k] * load16(expert[k] + row);
            store16(o, acc);
            continue;
        }
        if (D % 8 == 0)
            for (; j < D; j += 8) { /* the row's sum stays in a register over k */
                v8f acc = g[0] * load8(expert[0] + row + j);
                for (int k = 1; k < K; k++) acc += g[k] * load8(expert[k] + row + j);
                store8(o + j, acc);
            }
        if (j == D) continue;
        /* first expert initializes the row (no separate zeroing pass) */
        const float *restrict e0 = expert[0] + row;
        float g0 = g[0];
        for (j = 0; j < D; j++) o[j] = g0 * e0[j];
        for (int k = 1; k < K; k++) {
            const float *restrict e = expert[k] + row;
            float gk = g[k];
            for (j = 0; j < D; j++) o[j] += gk * e[j];
        }
    }
}

MTL_HOT void mtl_mixture_forward(float *out, int out_ld, const float *gate, int gate_ld,
                                 const float *const *expert, int expert_ld, int B, int K, int D) {
    switch (D) {
    case 8:
        mixture_forward_rows(out, out_ld, gate, gate_ld, expert, expert_ld, B, K, 8);
        break;
    case 16:
        mixture_forward_rows(out, out_ld, gate, gate_ld, expert, expert_ld, B, K, 16);
        break;
    case 32:
        mixture_forward_rows(out, out_ld, gate, gate_ld, expert, expert_ld, B, K, 32);
        break;
    default:
        mixture_forward_rows(out, out_ld, gate, gate_ld, expert, expert_ld, B, K, D);
    }
}

MTL_INLINE void mixture_backward_rows(float *dgate, int dgate_ld, float *const *dexpert,
                                      const float *dout, int dout_ld, const float *gate,
                                      int gate_ld, const float *const *expert, int expert_ld, int B,
                                      int K, int D) {
    for (int i = 0; i < B; i++) {
        const float *restrict d = dout + (size_t)i * dout_ld;
        const float *g = gate + (size_t)i * gate_ld;
        float *dg = dgate + (size_t)i * dgate_ld;
        size_t row = (size_t)i * (size_t)expert_ld;
        int k = 0;
        if (D == 16) { /* a row is one vector */
            v16f dv = load16(d);
            for (; k + 8 <= K; k += 8) {
                v8f acc[8];
                for (int u = 0; u < 8; u++) {
                    float *restrict de = dexpert[k + u] + row;
                    acc[u] = fold16(dv * load16(expert[k + u] + row));
                    store16(de, load16(de) + g[k + u] * dv);
                }
                store8(dg + k, load8(dg + k) + hsum8x8(acc));
            }
            for (; k < K; k++) {
                float *restrict de = dexpert[k] + row;
                dg[k] += hsum8(fold16(dv * load16(expert[k] + row)));
                store16(de, load16(de) + g[k] * dv);
            }
            continue;
        }
        if (D % 8 == 0)
            for (; k + 8 <= K; k += 8) { /* 8 experts: 8 dot products, one reduction */
                v8f acc[8];
                for (int u = 0; u < 8; u++) {
                    const float *restrict e = expert[k + u] + row;
                    float *restrict de = dexpert[k + u] + row;
                    float gk = g[k + u];
                    acc[u] = (v8f){0};
                    for (int j = 0; j < D; j += 8) {
                        v8f dv = load8(d + j);
                        acc[u] += dv * load8(e + j);
                        store8(de + j, load8(de + j) + gk * dv);
                    }
                }
                store8(dg + k, load8(dg + k) + hsum8x8(acc));
            }
        for (; k < K; k++) {
            const float *restrict e = expert[k] + row;
            float *restrict de = dexpert[k] + row;
            float gk = g[k];
            if (D % 8 == 0) {
                v8f acc = {0};
                for (int j = 0; j < D; j += 8) {
                    v8f dv = load8(d + j);
                    acc += dv * load8(e + j);
                    store8(de + j, load8(de + j) + gk * dv);
                }
                dg[k] += hsum8(acc);
                continue;
            }
            dg[k] += dot_f32(d, e, D);
            for (int j = 0; j < D; j++) de[j] += gk * d[j];
        }
    }
}

MTL_HOT void mtl_mixture_backward(float *dgate, int dgate_ld, float *const *dexpert,
                                  const float *dout, int dout_ld, const float *gate, int gate_ld,
                                  const float *const *expert, int expert_ld, int B, int K, int D) {
#define MIX_BWD(W)                                                                                 \
    mixture_backward_rows(dgate, dgate_ld, dexpert, dout, dout_ld, gate, gate_ld, expert,          \
                          expert_ld, B, K, W)
    switch (D) {
    case 8:
        MIX_BWD(8);
        break;
    case 16:
        MIX_BWD(16);
        break;
    case 32:
        MIX_BWD(32);
        break;
    default:
        MIX_BWD(D);
    }
#undef MIX_BWD
}

/* ------------------------------------------------------------------------ */
/* input row: embeddings + dense features                                   */

/* Embedding rows of `dim` floats; the dispatchers pass common widths as
 * constants (all fields share one width in the models here). */
MTL_INLINE void input_forward_rows(float *out, int out_ld, const int32_t *sparse, int sparse_ld,
                                   const float *const *table, const int *dims, int S,
                                   const float *dense, int dense_ld, int D, int B, int dim_all) {
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * out_ld;
        const int32_t *idx = sparse + (size_t)i * sparse_ld;
        if (i + 2 < B) /* rows of large tables miss the cache: ask two samples ahead */
            for (int s = 0; s < S; s++) {
                int dim = dim_all > 0 ? dim_all : dims[s];
                __builtin_prefetch(table[s] + (size_t)idx[2 * sparse_ld + s] * (size_t)dim);
            }
        /* plain loops, not memcpy: rows are a few floats, a libc call each costs more */
        for (int s = 0; s < S; s++) {
            int dim = dim_all > 0 ? dim_all : dims[s];
            const float *row = table[s] + (size_t)idx[s] * (size_t)dim;
            if (dim_all == 4)
                store4(o, load4(row));
            else
                for (int j = 0; j < dim; j++) o[j] = row[j];
            o += dim;
        }
        const float *x = dense + (size_t)i * (size_t)dense_ld;
        for (int j = 0; j < D; j++) o[j] = x[j];
    }
}

/* the width all S fields share, or 0 */
static int common_dim(const int *dims, int S) {
    for (int s = 1; s < S; s++)
        if (dims[s] != dims[0]) return 0;
    return S > 0 ? dims[0] : 0;
}

MTL_HOT void mtl_input_forward(float *out, int out_ld, const int32_t *sparse, int sparse_ld,
                               const float *const *table, const int *dims, int S,
                               const float *dense, int dense_ld, int D, int B) {
#define IN_FWD(W)                                                                                  \
    input_forward_rows(out, out_ld, sparse, sparse_ld, table, dims, S, dense, dense_ld, D, B, W)
    switch (common_dim(dims, S)) {
    case 4:
        IN_FWD(4);
        break;
    case 8:
        IN_FWD(8);
        break;
    case 16:
        IN_FWD(16);
        break;
    default:
        IN_FWD(0);
    }
#undef IN_FWD
}

void mtl_pooled_forward(float *out, int out_ld, const int32_t *off, const int32_t *rows,
                        const float *table, int dim, int mean, int B) {
    for (int i = 0; i < B; i++) {
        float *restrict o = out + (size_t)i * (size_t)out_ld;
        for (int j = 0; j < dim; j++) o[j] = 0.0f;
        for (int32_t k = off[i]; k < off[i + 1]; k++) {
            const float *restrict r = table + (size_t)rows[k] * (size_t)dim;
            for (int j = 0; j < dim; j++) o[j] += r[j];
        }
        if (mean && off[i + 1] > off[i]) {
            float inv = 1.0f / (float)(off[i + 1] - off[i]);
            for (int j = 0; j < dim; j++) o[j] *= inv;
        }
    }
}

/* Sequential over the lists, so repeated ids simply accumulate. */
void mtl_pooled_backward(float *dtable, int dim, const int32_t *off, const int32_t *rows, int mean,
                         const float *dout, int dout_ld, int B) {
    for (int i = 0; i < B; i++) {
        int32_t n = off[i + 1] - off[i];
        if (n == 0) continue;
        float scale = mean ? 1.0f / (float)n : 1.0f;
        const float *restrict d = dout + (size_t)i * (size_t)dout_ld;
        for (int32_t k = off[i]; k < off[i + 1]; k++) {
            float *restrict t = dtable + (size_t)rows[k] * (size_t)dim;
            for (int j = 0; j < dim; j++) t[j] += scale * d[j];
        }
    }
}

/* Sequential over the batch, so repeated indices simply accumulate. */
MTL_INLINE void input_backward_rows(float *const *dtable, const int *dims, int S,
                                    const int32_t *sparse, int sparse_ld, const float *dout,
                                    int dout_ld, int B, int dim_all) {
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * dout_ld;
        const int32_t *idx = sparse + (size_t)i * sparse_ld;
        for (int s = 0; s < S; s++) {
            int dim = dim_all > 0 ? dim_all : dims[s];
            float *restrict t = dtable[s] + (size_t)idx[s] * (size_t)dim;
            const float *restrict ds = d;
            if (dim_all == 4)
                store4(t, load4(t) + load4(ds));
            else
                for (int j = 0; j < dim; j++) t[j] += ds[j];
            d += dim;
        }
    }
}

MTL_HOT void mtl_input_backward(float *const *dtable, const int *dims, int S, const int32_t *sparse,
                                int sparse_ld, const float *dout, int dout_ld, int B) {
#define IN_BWD(W) input_backward_rows(dtable, dims, S, sparse, sparse_ld, dout, dout_ld, B, W)
    switch (common_dim(dims, S)) {
    case 4:
        IN_BWD(4);
        break;
    case 8:
        IN_BWD(8);
        break;
    case 16:
        IN_BWD(16);
        break;
    default:
        IN_BWD(0);
    }
#undef IN_BWD
}

/* ------------------------------------------------------------------------ */
/* batch normalization                                                      */

/* Per-column statistics are accumulated row by row (contiguous inner loop)
 * into small stack buffers, one block of columns at a time: the header
 * promises no allocation and gives no scratch for the per-column sums. */
#define BN_BLOCK 256

void mtl_batchnorm_forward_train(float *y, int y_ld, float *xhat, float *invstd,
                                 float *running_mean, float *running_var, const float *x, int x_ld,
                                 const float *gamma, const float *beta, int B, int D,
                                 float momentum, float eps) {
    if (B <= 0) return;
    float inv_b = 1.0f / (float)B;
    /* running_var tracks the unbiased variance (as PyTorch does); with one
     * row there is no unbiased estimate and we fall back to the biased one */
    float unbias = B > 1 ? (float)B / (float)(B - 1) : 1.0f;
    for (int j0 = 0; j0 < D; j0 += BN_BLOCK) {
        int n = D - j0 < BN_BLOCK ? D - j0 : BN_BLOCK;
        float mean[BN_BLOCK], var[BN_BLOCK];
        for (int j = 0; j < n; j++) mean[j] = var[j] = 0.0f;
        for (int i = 0; i < B; i++) {
            const float *restrict xr = x + (size_t)i * x_ld + j0;
            for (int j = 0; j < n; j++) mean[j] += xr[j];
        }
        for (int j = 0; j < n; j++) mean[j] *= inv_b;
        /* two passes (mean, then centered squares) avoid the cancellation of
         * E[x^2] - E[x]^2; the centered values are parked in xhat */
        for (int i = 0; i < B; i++) {
            const float *restrict xr = x + (size_t)i * x_ld + j0;
            float *restrict xh = xhat + (size_t)i * D + j0;
            for (int j = 0; j < n; j++) {
                float c = xr[j] - mean[j];
                xh[j] = c;
                var[j] += c * c;
            }
        }
        for (int j = 0; j < n; j++) {
            float v = var[j] * inv_b; /* biased: what normalization uses */
            invstd[j0 + j] = 1.0f / sqrtf(v + eps);
            running_mean[j0 + j] = (1.0f - momentum) * running_mean[j0 + j] + momentum * mean[j];
            running_var[j0 + j] = (1.0f - momentum) * running_var[j0 + j] + momentum * (v * unbias);
        }
        /* y is written only now, after every read of x: y may alias x */
        const float *restrict inv = invstd + j0;
        const float *restrict g = gamma + j0;
        const float *restrict bt = beta + j0;
        for (int i = 0; i < B; i++) {
            float *restrict xh = xhat + (size_t)i * D + j0;
            float *restrict yr = y + (size_t)i * y_ld + j0;
            for (int j = 0; j < n; j++) {
                float h = xh[j] * inv[j];
                xh[j] = h;
                yr[j] = g[j] * h + bt[j];
            }
        }
    }
}

void mtl_batchnorm_forward_infer(float *y, int y_ld, const float *x, int x_ld, const float *gamma,
                                 const float *beta, const float *running_mean,
                                 const float *running_var, int B, int D, float eps) {
    /* fold into y = x * scale + shift per column */
    for (int j0 = 0; j0 < D; j0 += BN_BLOCK) {
        int n = D - j0 < BN_BLOCK ? D - j0 : BN_BLOCK;
        float scale[BN_BLOCK], shift[BN_BLOCK];
        for (int j = 0; j < n; j++) {
            scale[j] = gamma[j0 + j] / sqrtf(running_var[j0 + j] + eps);
            shift[j] = beta[j0 + j] - running_mean[j0 + j] * scale[j];
        }
        for (int i = 0; i < B; i++) {
            const float *xr = x + (size_t)i * x_ld + j0;
            float *yr = y + (size_t)i * y_ld + j0;
            for (int j = 0; j < n; j++) yr[j] = xr[j] * scale[j] + shift[j];
        }
    }
}

/* With xhat = (x - mean) * invstd and y = gamma * xhat + beta:
 *   dx = gamma * invstd * (dy - mean_b(dy) - xhat * mean_b(dy * xhat)) */
void mtl_batchnorm_backward(float *dx, int dx_ld, float *dgamma, float *dbeta, const float *dy,
                            int dy_ld, const float *xhat, const float *invstd, const float *gamma,
                            int B, int D) {
    if (B <= 0) return;
    float inv_b = 1.0f / (float)B;
    for (int j0 = 0; j0 < D; j0 += BN_BLOCK) {
        int n = D - j0 < BN_BLOCK ? D - j0 : BN_BLOCK;
        float sdy[BN_BLOCK], sdyx[BN_BLOCK], k[BN_BLOCK];
        for (int j = 0; j < n; j++) sdy[j] = sdyx[j] = 0.0f;
        for (int i = 0; i < B; i++) {
            const float *restrict d = dy + (size_t)i * dy_ld + j0;
            const float *restrict xh = xhat + (size_t)i * D + j0;
            for (int j = 0; j < n; j++) {
                sdy[j] += d[j];
                sdyx[j] += d[j] * xh[j];
            }
        }
        for (int j = 0; j < n; j++) {
            dgamma[j0 + j] += sdyx[j];
            dbeta[j0 + j] += sdy[j];
            k[j] = gamma[j0 + j] * invstd[j0 + j];
            sdy[j] *= inv_b;
            sdyx[j] *= inv_b;
        }
        for (int i = 0; i < B; i++) {
            const float *restrict d = dy + (size_t)i * dy_ld + j0;
            const float *restrict xh = xhat + (size_t)i * D + j0;
            float *restrict dxr = dx + (size_t)i * dx_ld + j0;
            for (int j = 0; j < n; j++) dxr[j] += k[j] * (d[j] - sdy[j] - xh[j] * sdyx[j]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* dropout                                                                  */

/* Each 64-bit draw decides two elements (32 bits each, compared against
 * p * 2^32): half the generator calls of one-draw-per-element, and 32 bits
 * resolve p far finer than any dropout rate anyone sets. */
void mtl_dropout_forward(float *x, int x_ld, float *mask, int B, int D, float p, mtl_rng *rng) {
    size_t n = (size_t)(B > 0 ? B : 0) * (size_t)(D > 0 ? D : 0);
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) mask[i] = 1.0f;
        return; /* x unchanged */
    }
    if (p >= 1.0f) {
        /* 1/(1-p) would be inf and inf*0 NaN: drop everything */
        memset(mask, 0, sizeof(float) * n);
    } else {
        float scale = 1.0f / (1.0f - p);
        uint32_t threshold = (uint32_t)((double)p * 4294967296.0); /* p < 1: fits */
        size_t i = 0;
        for (; i + 2 <= n; i += 2) {
            uint64_t r = mtl_rng_next(rng);
            mask[i] = (uint32_t)r >= threshold ? scale : 0.0f;
            mask[i + 1] = (uint32_t)(r >> 32) >= threshold ? scale : 0.0f;
        }
        if (i < n) mask[i] = (uint32_t)(mtl_rng_next(rng) >> 32) >= threshold ? scale : 0.0f;
    }
    mtl_dropout_backward(x, x_ld, mask, B, D); /* x *= mask, same loop */
}

MTL_HOT void mtl_dropout_backward(float *d, int d_ld, const float *mask, int B, int D) {
    for (int i = 0; i < B; i++) {
        float *restrict dr = d + (size_t)i * d_ld;
        const float *restrict m = mask + (size_t)i * D;
        for (int j = 0; j < D; j++) dr[j] *= m[j];
    }
}

/* ------------------------------------------------------------------------ */
/* losses                                                                   */

/* log1p(x) for x in [0, 1]: 2 atanh(t) with t = x / (2 + x) in [0, 1/3],
 * by its series to t^15 (the first term left out is below 1e-9 of the sum),
 * with float's relative accuracy down to the tiniest x. */
MTL_INLINE v8f log1p8_unit(v8f x) {
    v8f t = x / (2.0f + x), t2 = t * t;
    v8f p = t2 * (1.0f / 15) + 1.0f / 13;
    p = p * t2 + 1.0f / 11;
    p = p * t2 + 1.0f / 9;
    p = p * t2 + 1.0f / 7;
    p = p * t2 + 1.0f / 5;
    p = p * t2 + 1.0f / 3;
    p = p * t2 + 1.0f;
    return 2.0f * t * p;
}

/* -y log s(z) - (1-y) log(1-s(z)) = max(z, 0) - z y + log1p(exp(-|z|)),
 * which never overflows. exp and log1p run on 8 rows at a time in float (the
 * rest of a row's term, and the sum, in double as before: a loss of a few
 * units keeps ~1e-7 absolute accuracy); libm's scalar double calls took 4% of
 * a census MMoE step. */
MTL_HOT double mtl_bce_logits(float *dlogit, int dlogit_ld, const float *logit, int ld,
                              const float *label, int label_ld, const float *weight, int B,
                              float grad_scale, int64_t *count) {
    const v8f below = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    double total = 0.0;
    int64_t n = 0;
    for (int i0 = 0; i0 < B; i0 += 8) {
        int rows = B - i0 < 8 ? B - i0 : 8;
        v8f z = {0};
        for (int k = 0; k < rows; k++) z[k] = logit[(size_t)(i0 + k) * (size_t)ld];
        v8f neg = (v8f)((v8i)z | (v8i){INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN,
                                       INT32_MIN, INT32_MIN, INT32_MIN}); /* -|z| */
        /* exp(-|z|) in (0, 1]; 0 below e^-87 rather than exp8's floor */
        v8f ez = (v8f)((v8i)exp8_nonpositive(neg) & ~(neg < below));
        v8f softplus = log1p8_unit(ez), inv = 1.0f / (1.0f + ez);
        for (int k = 0; k < rows; k++) {
            size_t i = (size_t)(i0 + k);
            float yf = label[i * (size_t)label_ld];
            if (isnan(yf)) {
                if (dlogit) dlogit[i * (size_t)dlogit_ld] = 0.0f;
                continue;
            }
            double y = yf, zd = z[k];
            double w = weight ? weight[i * (size_t)label_ld] : 1.0;
            total += w * (fmax(zd, 0.0) - zd * y + softplus[k]);
            if (dlogit) {
                /* s(z) - y = (num - y (1 + e)) / (1 + e), num = 1 or e by z's sign;
                 * (num - y) - y e keeps the difference when e is below 1's ulp */
                float num = z[k] >= 0 ? 1.0f : ez[k];
                float ds = ((num - yf) - yf * ez[k]) * inv[k];
                dlogit[i * (size_t)dlogit_ld] = (float)(grad_scale * w * ds);
            }
            n++;
        }
    }
    if (count) *count += n;
    return total;
}

/* The gradient is the derivative of the loss evaluated at the clamped p, not
 * the derivative of the clamp (which would be 0 and leave a saturated
 * pCTCVR = 0 with a positive label stuck forever). */
MTL_HOT double mtl_bce_prob(float *dp, int dp_ld, const float *p, int ld, const float *label,
                            int label_ld, const float *weight, int B, float grad_scale,
                            int64_t *count) {
    const double lo = 1e-7, hi = 1.0 - 1e-7;
    double total = 0.0;
    int64_t n = 0;
    for (int i = 0; i < B; i++) {
        float yf = label[(size_t)i * label_ld];
        if (isnan(yf)) {
            if (dp) dp[(size_t)i * dp_ld] = 0.0f;
            continue;
        }
        double y = yf, pc = p[(size_t)i * ld];
        pc = pc < lo ? lo : (pc > hi ? hi : pc);
        double w = weight ? weight[(size_t)i * label_ld] : 1.0;
        total += -w * (y * log(pc) + (1.0 - y) * log1p(-pc));
        if (dp) dp[(size_t)i * dp_ld] = (float)(grad_scale * w * (pc - y) / (pc * (1.0 - pc)));
        n++;
    }
    if (count) *count += n;
    return total;
}

MTL_HOT double mtl_mse(float *dpred, int dpred_ld, const float *pred, int ld, const float *label,
                       int label_ld, const float *weight, int B, float grad_scale, int64_t *count) {
    double total = 0.0;
    int64_t n = 0;
    for (int i = 0; i < B; i++) {
        float yf = label[(size_t)i * label_ld];
        if (isnan(yf)) {
            if (dpred) dpred[(size_t)i * dpred_ld] = 0.0f;
            continue;
        }
        double d = (double)pred[(size_t)i * ld] - yf;
        double w = weight ? weight[(size_t)i * label_ld] : 1.0;
        total += w * d * d;
        if (dpred) dpred[(size_t)i * dpred_ld] = (float)(grad_scale * w * 2.0 * d);
        n++;
    }
    if (count) *count += n;
    return total;
}
