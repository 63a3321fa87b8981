/* The matrix products of a step, behind one small interface with two
 * backends: OpenBLAS (cblas_sgemm) and libxsmm (JIT kernels generated per
 * shape and per CPU: AVX2, AVX-512).
 *
 * A dense layer y = x W^T has three products, all row-major float32, W stored
 * [N x K] (out x in, PyTorch's layout; checkpoints keep it):
 *   forward  out[B x N]  = beta out + in[B x K] . W^T       (beta 0 or 1)
 *   wgrad    dW[N x K]  += dout[B x N]^T . in[B x K]
 *   xgrad    din[B x :cols] += dout[B x N] . W[:, :cols]
 * A plan fixes everything but B (the rows, at most max_batch): the widths, the
 * leading dimensions (dout has out's; a model's din has in's) and the backend.
 *
 * libxsmm is column-major and its 1.17 JIT has no transposed A, so
 *   forward: out^T = W . in^T reads W^T, a copy [K x N] the plan keeps
 *            (mtl_gemm_plan_sync refreshes it after W changes);
 *   wgrad:   dW^T = in^T . dout, the "transposed B" kernel;
 *   xgrad:   din^T = W^T . dout^T, no transpose.
 * Kernels are looked up in a table indexed by B, so a call is a load and an
 * indirect call: B = max_batch is generated when the plan is made; another B
 * (the last micro-batch of a step, the last evaluation batch) the first time
 * it is used, once. A shape libxsmm cannot generate runs on OpenBLAS.
 *
 * --gemm auto picks libxsmm for every plan when libxsmm can generate AVX2 or
 * AVX-512 code on this CPU, OpenBLAS otherwise (and the model picks OpenBLAS
 * for --threads > 1: libxsmm's kernels run on one thread). A fixed rule
 * rather than a timing, so that a run and its resumption always compute with
 * the same kernels (bit-identical resume) and every rank with the same ones;
 * measured on the census and production shapes, libxsmm's kernels beat
 * OpenBLAS's on every product, 1.5x to 8x (tests/bench/bench_gemm.c). */
#ifndef MTL_GEMM_H
#define MTL_GEMM_H

#include "mtl/error.h"

typedef enum { MTL_GEMM_AUTO = 0, MTL_GEMM_OPENBLAS, MTL_GEMM_LIBXSMM } mtl_gemm_backend;

/* "auto", "openblas", "libxsmm" */
const char *mtl_gemm_backend_name(mtl_gemm_backend b);
/* The backend auto resolves to on this CPU. */
mtl_gemm_backend mtl_gemm_auto_backend(void);

typedef struct {
    mtl_gemm_backend backend;  /* resolved: MTL_GEMM_OPENBLAS or MTL_GEMM_LIBXSMM */
    int K, N;                  /* in and out widths */
    int in_ld, out_ld, din_ld; /* row strides of in, of out and dout, of din */
    int cols;                  /* input-gradient columns (<= K; 0: none) */
    int max_batch;
    int fwd_block, x_block; /* libxsmm: W rows per forward / xgrad kernel call (gemm.c) */
    float *wt;              /* libxsmm: W^T [K x N] */
    void **kernel;          /* libxsmm: [kinds][max_batch + 1], see gemm.c */
} mtl_gemm_plan;

/* A plan for W [N x K] (din_ld = in_ld); allocates (libxsmm) and generates
 * the B = max_batch kernels. want AUTO follows the rule above. */
int mtl_gemm_plan_init(mtl_gemm_plan *p, mtl_gemm_backend want, int K, int N, int in_ld, int out_ld,
                       int cols, int max_batch, mtl_error *err);
/* An OpenBLAS plan: no allocation, any B; for one-off products. */
mtl_gemm_plan mtl_gemm_plan_openblas(int K, int N, int in_ld, int out_ld, int din_ld, int cols);
void mtl_gemm_plan_free(mtl_gemm_plan *p);
/* W changed: refresh the plan's copy of W^T (no-op for OpenBLAS). */
void mtl_gemm_plan_sync(const mtl_gemm_plan *p, const float *w);
/* Nonzero if the plan's copy of W^T is not w's transpose (debug checks). */
int mtl_gemm_plan_stale(const mtl_gemm_plan *p, const float *w);

void mtl_gemm_forward(const mtl_gemm_plan *p, float *out, const float *in, const float *w, int B,
                      float beta);
void mtl_gemm_wgrad(const mtl_gemm_plan *p, float *dw, const float *dout, const float *in, int B);
void mtl_gemm_xgrad(const mtl_gemm_plan *p, float *din, const float *dout, const float *w, int B);

/* Seconds this process has spent in the three products above, so far. */
double mtl_gemm_seconds(void);

#endif
