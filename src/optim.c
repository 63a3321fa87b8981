/* Optimizers over the one contiguous parameter block. These loops run over
 * every parameter every step, so each is a single pass of independent
 * element-wise updates over restrict pointers with per-step scalars hoisted
 * out, which the compiler turns into SIMD code. */
#include "mtl/optim.h"

#include "hot.h"

#include <math.h>
#include <string.h>

void mtl_optim_defaults(mtl_optim *opt, mtl_optim_kind kind) {
    memset(opt, 0, sizeof *opt);
    opt->kind = kind;
    // Keras' defaults per optimizer (the run config usually overrides lr)
    opt->lr = kind == MTL_OPT_SGD ? 0.01f : 0.001f;
    opt->beta1 = 0.9f;
    opt->beta2 = 0.999f;
    opt->eps = 1e-7f;
    opt->momentum = 0.0f;
    opt->adagrad_init = 0.1f;
}

int mtl_optim_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "adam") == 0) return MTL_OPT_ADAM;
    if (strcmp(name, "sgd") == 0) return MTL_OPT_SGD;
    if (strcmp(name, "adagrad") == 0) return MTL_OPT_ADAGRAD;
    return -1;
}

const char *mtl_optim_name(mtl_optim_kind kind) {
    switch (kind) {
    case MTL_OPT_ADAM:
        return "adam";
    case MTL_OPT_SGD:
        return "sgd";
    case MTL_OPT_ADAGRAD:
        return "adagrad";
    }
    return "unknown";
}

/* Adam exactly as Keras/TF (tf.raw_ops.ApplyAdam, keras.optimizers.Adam):
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
 *   lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
 *   p -= lr_t * m / (sqrt(v) + eps)
 * i.e. the bias correction is folded into the step size and eps is added to
 * the uncorrected sqrt(v) -- the paper's "epsilon hat" form, not the
 * m_hat / (sqrt(v_hat) + eps) of PyTorch. The two differ only through eps. */
static inline void adam_element(float *restrict p, float gi, float *restrict m, float *restrict v,
                                float lr_t, float b1, float b2, float eps) {
    float mi = b1 * *m + (1.0f - b1) * gi;
    float vi = b2 * *v + (1.0f - b2) * gi * gi;
    *m = mi;
    *v = vi;
    // vi >= 0, so sqrtf never sets errno; GCC still vectorizes it only
    // when built with -fno-math-errno (otherwise one sqrtss per element)
    *p -= lr_t * mi / (sqrtf(vi) + eps);
}

MTL_HOT static void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                                float *restrict v, size_t n, float lr_t, float b1, float b2,
                                float eps) {
    for (size_t i = 0; i < n; i++) adam_element(p + i, g[i], m + i, v + i, lr_t, b1, b2, eps);
}

/* Rows of a large table are far apart in memory: ask for the row (and its
 * state) a few updates ahead of row k, so their cache misses overlap work. */
static inline void prefetch_row(const float *table, const float *m, const float *v,
                                const int32_t *ids, int k, int n, size_t dim) {
    enum { AHEAD = 4 };
    if (k + AHEAD >= n) return;
    size_t next = (size_t)ids[k + AHEAD] * dim;
    __builtin_prefetch(table + next, 1);
    __builtin_prefetch(m + next, 1);
    __builtin_prefetch(v + next, 1);
}

/* Adam over rows ids[0..n) of a table, L2 folded in (g += 2 l2 p first, as
 * mtl_add_l2): one pass per row, no call per row. */
MTL_HOT static void adam_rows(float *restrict table, float *restrict m, float *restrict v,
                              size_t dim, const int32_t *ids, const float *restrict grad, int n,
                              float l2, float lr_t, float b1, float b2, float eps) {
    const float c = 2.0f * l2;
    for (int k = 0; k < n; k++) {
        prefetch_row(table, m, v, ids, k, n, dim);
        size_t row = (size_t)ids[k] * dim;
        const float *g = grad + (size_t)k * dim;
        float *p = table + row, *mr = m + row, *vr = v + row;
        if (l2 != 0.0f)
            for (size_t j = 0; j < dim; j++)
                adam_element(p + j, g[j] + c * p[j], mr + j, vr + j, lr_t, b1, b2, eps);
        else
            for (size_t j = 0; j < dim; j++)
                adam_element(p + j, g[j], mr + j, vr + j, lr_t, b1, b2, eps);
    }
}

/* SGD, PyTorch-style momentum (no dampening, not Nesterov):
 *   buf = mu*buf + g;  p -= lr*buf.   mu == 0 is plain SGD and skips buf. */
MTL_HOT static void sgd_update(float *restrict p, const float *restrict g, float *restrict buf,
                               size_t n, float lr, float mu) {
    if (mu == 0.0f) {
        for (size_t i = 0; i < n; i++) p[i] -= lr * g[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float bi = mu * buf[i] + g[i];
        buf[i] = bi;
        p[i] -= lr * bi;
    }
}

/* Adagrad as TF2 Keras (tf.raw_ops.ApplyAdagradV2), accumulator starting at
 * adagrad_init (0.1) rather than 0 so the first steps are not huge:
 *   acc += g^2;  p -= lr * g / (sqrt(acc) + eps)
 * (Keras 3 puts eps inside the sqrt; with acc >= 0.1 the difference is nil.) */
MTL_HOT static void adagrad_update(float *restrict p, const float *restrict g, float *restrict acc,
                                   size_t n, float lr, float eps) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float ai = acc[i] + gi * gi;
        acc[i] = ai;
        p[i] -= lr * gi / (sqrtf(ai) + eps);
    }
}

/* Adam's step size with Keras' bias correction, in double: b2^t is close to 1
 * for small t and the difference 1 - b2^t loses digits in float. step < 1
 * would divide by 1 - b1^0 = 0, so it is treated as the first step. */
static float adam_step_size(const mtl_optim *opt, int64_t step) {
    double t = step < 1 ? 1.0 : (double)step;
    return (float)((double)opt->lr * sqrt(1.0 - pow((double)opt->beta2, t)) /
                   (1.0 - pow((double)opt->beta1, t)));
}

/* n values at p, g, m, v; lr_t is adam_step_size (Adam only) */
static void update(const mtl_optim *opt, float *p, const float *g, float *m, float *v, size_t n,
                   float lr_t) {
    switch (opt->kind) {
    case MTL_OPT_ADAM:
        adam_update(p, g, m, v, n, lr_t, opt->beta1, opt->beta2, opt->eps);
        break;
    case MTL_OPT_SGD:
        sgd_update(p, g, m, n, opt->lr, opt->momentum);
        break;
    case MTL_OPT_ADAGRAD:
        adagrad_update(p, g, v, n, opt->lr, opt->eps);
        break;
    }
}

void mtl_optim_update(const mtl_optim *opt, float *p, const float *g, float *m, float *v, size_t n,
                      int64_t step) {
    update(opt, p, g, m, v, n, adam_step_size(opt, step));
}

void mtl_optim_update_rows(const mtl_optim *opt, float *table, float *m, float *v, int dim,
                           const int32_t *ids, float *grad, int n, float l2, int64_t step) {
    float lr_t = adam_step_size(opt, step);
    size_t d = (size_t)dim;
    if (opt->kind == MTL_OPT_ADAM) {
        adam_rows(table, m, v, d, ids, grad, n, l2, lr_t, opt->beta1, opt->beta2, opt->eps);
        return;
    }
    for (int k = 0; k < n; k++) {
        prefetch_row(table, m, v, ids, k, n, d);
        size_t row = (size_t)ids[k] * d;
        float *g = grad + (size_t)k * d;
        mtl_add_l2(g, table + row, d, l2);
        update(opt, table + row, g, m + row, v + row, d, lr_t);
    }
}

MTL_HOT void mtl_add_l2(float *g, const float *p, size_t n, float l2) {
    if (l2 == 0.0f) return;
    const float c = 2.0f * l2; // d/dp of l2 * p^2
    float *restrict gr = g;
    const float *restrict pr = p;
    for (size_t i = 0; i < n; i++) gr[i] += c * pr[i];
}

/* On the bits: a NaN or Inf has all exponent bits set. An OR of integers
 * vectorizes; a float sum would not without -ffast-math. */
MTL_HOT int mtl_all_finite(const float *x, size_t n) {
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return bad == 0;
}
