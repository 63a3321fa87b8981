/* Layers: pairs of plain forward/backward functions on a mini-batch.
 *
 * Conventions (every function follows them):
 *  - float32, row-major. A matrix argument `x` of B rows is followed by its
 *    leading dimension `x_ld` (distance in floats between rows), so a layer can
 *    read or write a column slice of a wider matrix (the fused expert/gate
 *    products write all experts and gates side by side).
 *  - Dense weights are stored [out_dim x in_dim] (PyTorch's nn.Linear layout),
 *    so the weights of several layers that read the same input are contiguous
 *    rows of one bigger matrix and run as one GEMM (gemm.h).
 *  - Backward functions ACCUMULATE (+=) into parameter gradients and into input
 *    gradients, because a tensor may feed several consumers (a shared expert
 *    feeds every gate). Callers zero gradient buffers once per step.
 *    Activation backwards (relu, sigmoid, softmax, dropout) transform a
 *    gradient in place or write it, as documented per function.
 *  - No allocation, no hidden state: scratch and caches are passed in.
 */
#ifndef MTL_LAYERS_H
#define MTL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/config.h"
#include "mtl/gemm.h"

/* ---- random numbers: xoshiro256** (Blackman & Vigna 2018), seeded by
 * splitmix64. Small, fast, and its whole state fits in a checkpoint. ---- */
typedef struct {
    uint64_t s[4];
} mtl_rng;

void mtl_rng_seed(mtl_rng *rng, uint64_t seed);
/* The counter-th output of splitmix64 seeded with key: a counter-based
 * generator, for values that must not depend on the order they are drawn in. */
uint64_t mtl_splitmix64(uint64_t key, uint64_t counter);
uint64_t mtl_rng_next(mtl_rng *rng);
/* uniform in [0, 1) with 24 random bits */
float mtl_rng_uniform(mtl_rng *rng);
/* uniform double in [0, 1) with 53 random bits */
double mtl_rng_uniform_double(mtl_rng *rng);
/* standard normal (Box-Muller, no cached second value so the state is all) */
double mtl_rng_normal(mtl_rng *rng);
/* uniform integer in [0, n) without modulo bias */
uint64_t mtl_rng_below(mtl_rng *rng, uint64_t n);

/* ---- dense: out = in * w^T + b ----
 * in [B x in_dim], w [out_dim x in_dim], b [out_dim] or NULL, out [B x out_dim].
 * Forward overwrites out. */
void mtl_dense_forward(float *out, int out_ld, const float *in, int in_ld, const float *w,
                       const float *b, int B, int in_dim, int out_dim);
/* dw += dout^T * in; db += column sums of dout (skipped if db NULL);
 * din += dout * w (skipped if din NULL). */
void mtl_dense_backward(float *din, int din_ld, float *dw, float *db, const float *dout,
                        int dout_ld, const float *in, int in_ld, const float *w, int B, int in_dim,
                        int out_dim);
/* The same through a GEMM plan (gemm.h), which holds the widths, the leading
 * dimensions and the backend; backward's din gets the plan's first cols
 * columns. A libxsmm plan's W^T copy must be in sync with w. */
void mtl_dense_forward_plan(const mtl_gemm_plan *p, float *out, const float *in, const float *w,
                            const float *b, int B);
void mtl_dense_backward_plan(const mtl_gemm_plan *p, float *din, float *dw, float *db,
                             const float *dout, const float *in, const float *w, int B);

/* ---- bias over the first n columns of a wider product (fused layers
 * whose later columns have no bias: gate logits) ----
 * forward: out[:, j] += b[j]; backward: db[j] += sum over rows of dout[:, j]. */
void mtl_bias_forward(float *out, int out_ld, const float *b, int B, int n);
void mtl_bias_backward(float *db, const float *dout, int dout_ld, int B, int n);

/* ---- ReLU, in place on a [B x D] slice ----
 * backward: d *= (y > 0), with y the forward output. */
void mtl_relu_forward(float *x, int x_ld, int B, int D);
/* x = relu(x + b) in one pass: a hidden layer's bias and activation after a
 * product without bias */
void mtl_bias_relu_forward(float *x, int x_ld, const float *b, int B, int D);
void mtl_relu_backward(float *d, int d_ld, const float *y, int y_ld, int B, int D);

/* ---- hidden activation (mtl_activation: relu, tanh, sigmoid), in place
 * on a [B x D] slice; backward from the forward output y: d *= f'(y) ---- */
void mtl_activation_forward(int act, float *x, int x_ld, int B, int D);
void mtl_activation_backward(int act, float *d, int d_ld, const float *y, int y_ld, int B, int D);
/* the same, and db[j] += sum over rows of the result (the layer's bias
 * gradient) when db is not NULL: one pass for ReLU */
void mtl_activation_bias_backward(int act, float *d, int d_ld, const float *y, int y_ld, float *db,
                                  int B, int D);

/* ---- attention over U <= 8 candidates of width k (AITM's information
 * transfer, Xi et al. 2021, sec. 3.2): proj[u] points at row 0 of candidate
 * u's [B x 3k] projections [V_u | Q_u | K_u] (stride proj_ld);
 * w_u = softmax_u(<Q_u, K_u> / sqrt(k)), out = sum_u w_u V_u (overwritten);
 * weights [B x U] (contiguous) are saved for backward.
 * Backward accumulates into dproj[u] (same layout). ---- */
void mtl_attention_forward(float *out, int out_ld, float *weights, const float *const *proj,
                           int proj_ld, int B, int U, int k);
void mtl_attention_backward(float *const *dproj, const float *dout, int dout_ld,
                            const float *weights, const float *const *proj, int proj_ld, int B,
                            int U, int k);

/* ---- sigmoid, element-wise over n values (y may alias x) ---- */
void mtl_sigmoid_forward(float *y, const float *x, size_t n);

/* ---- softmax over the K columns of each row (the gate over experts) ----
 * y may alias x. Backward writes dx = y * (dy - sum_k dy_k y_k) (overwrites;
 * dx may alias dy). */
void mtl_softmax_forward(float *y, int y_ld, const float *x, int x_ld, int B, int K);
void mtl_softmax_backward(float *dx, int dx_ld, const float *dy, int dy_ld, const float *y,
                          int y_ld, int B, int K);

/* ---- mixture of experts: out[b] = sum_k gate[b,k] * expert_k[b] ----
 * expert[k] points at row 0 of expert k's [B x D] output; all experts share
 * the row stride expert_ld. gate [B x K]. Forward overwrites out.
 * Backward: dgate[b,k] += <dout[b], expert_k[b]>; dexpert_k[b] += gate[b,k]*dout[b].
 * dexpert[k] uses the same stride expert_ld. */
void mtl_mixture_forward(float *out, int out_ld, const float *gate, int gate_ld,
                         const float *const *expert, int expert_ld, int B, int K, int D);
void mtl_mixture_backward(float *dgate, int dgate_ld, float *const *dexpert, const float *dout,
                          int dout_ld, const float *gate, int gate_ld, const float *const *expert,
                          int expert_ld, int B, int K, int D);

/* ---- input row: one embedding per categorical field, then the dense features ----
 * sparse [B x S] int32 indices (already validated to be < vocab), table[s] is
 * field s's [vocab_s x dims[s]] table, dense [B x D] (may be NULL if D == 0).
 * out [B x (sum(dims) + D)]: field 0's embedding, field 1's, ..., then dense. */
void mtl_input_forward(float *out, int out_ld, const int32_t *sparse, int sparse_ld,
                       const float *const *table, const int *dims, int S, const float *dense,
                       int dense_ld, int D, int B);
/* dtable[s][sparse[b,s]] += dout[b, field s's columns] (scatter-add). */
void mtl_input_backward(float *const *dtable, const int *dims, int S, const int32_t *sparse,
                        int sparse_ld, const float *dout, int dout_ld, int B);

/* ---- a multi-valued field: the pooled embedding of each row's list ----
 * Row i's list is rows[off[i] .. off[i+1]) (rows of table [.. x dim]);
 * out[i] = sum of the list's rows, divided by its length when mean (an
 * empty list gives zeros either way). */
void mtl_pooled_forward(float *out, int out_ld, const int32_t *off, const int32_t *rows,
                        const float *table, int dim, int mean, int B);
/* dtable[rows[k]] += dout[i] (/ length when mean) for every k of row i's list. */
void mtl_pooled_backward(float *dtable, int dim, const int32_t *off, const int32_t *rows, int mean,
                         const float *dout, int dout_ld, int B);

/* ---- batch normalization over the B rows of a [B x D] slice ----
 * Train mode: batch statistics (biased variance), saves xhat [B x D] and
 * invstd [D] for backward, updates running stats:
 *   running = (1 - momentum) * running + momentum * batch  (unbiased var).
 * y may alias x. */
void mtl_batchnorm_forward_train(float *y, int y_ld, float *xhat, float *invstd,
                                 float *running_mean, float *running_var, const float *x, int x_ld,
                                 const float *gamma, const float *beta, int B, int D,
                                 float momentum, float eps);
void mtl_batchnorm_forward_infer(float *y, int y_ld, const float *x, int x_ld, const float *gamma,
                                 const float *beta, const float *running_mean,
                                 const float *running_var, int B, int D, float eps);
/* dgamma += sum(dy*xhat), dbeta += sum(dy), dx += (train-mode backward).
 * dx must not alias dy. */
void mtl_batchnorm_backward(float *dx, int dx_ld, float *dgamma, float *dbeta, const float *dy,
                            int dy_ld, const float *xhat, const float *invstd, const float *gamma,
                            int B, int D);

/* ---- inverted dropout: keep with probability 1-p, scale kept by 1/(1-p) ----
 * mask [B x D] contiguous receives 0 or 1/(1-p). p == 0 writes all-ones mask. */
void mtl_dropout_forward(float *x, int x_ld, float *mask, int B, int D, float p, mtl_rng *rng);
/* d *= mask */
void mtl_dropout_backward(float *d, int d_ld, const float *mask, int B, int D);

/* ---- losses over one task's column ----
 * logit/pred [B] with stride `ld` (a column of a [B x T] matrix), label [B]
 * with stride label_ld; NaN label = missing: no loss, no gradient, not
 * counted. weight [B] with stride label_ld: per-sample weights (a column of
 * the batch's [B x T] weights, like the label), or NULL (1).
 * Returns the SUM of (weighted) per-sample losses; *count += number of
 * non-missing labels. Writes dlogit[b] = grad_scale * weight * dloss/dlogit
 * (0 where missing); dlogit has stride dlogit_ld. dlogit may be NULL. */
double mtl_bce_logits(float *dlogit, int dlogit_ld, const float *logit, int ld, const float *label,
                      int label_ld, const float *weight, int B, float grad_scale, int64_t *count);
/* BCE on a probability p (ESMM's pCTCVR = pCTR * pCVR, not a logit):
 * clamped to [1e-7, 1-1e-7]; writes dp = grad_scale * weight * dloss/dp. */
double mtl_bce_prob(float *dp, int dp_ld, const float *p, int ld, const float *label, int label_ld,
                    const float *weight, int B, float grad_scale, int64_t *count);
/* squared error: loss = (pred - y)^2, dpred = grad_scale * weight * 2 (pred - y) */
double mtl_mse(float *dpred, int dpred_ld, const float *pred, int ld, const float *label,
               int label_ld, const float *weight, int B, float grad_scale, int64_t *count);

#endif
