#define _POSIX_C_SOURCE 200809L
/* The GEMM layer: see include/mtl/gemm.h for the products, the layouts and
 * the backend rule. */
#include "mtl/gemm.h"

#include <cblas.h>
#include <libxsmm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* kernels per B: forward (beta 0, 1), wgrad, xgrad, and the last, narrower
 * block of a forward or xgrad split into blocks */
enum { K_FWD0 = 0, K_FWD1, K_WGRAD, K_XGRAD, K_FWD0_TAIL, K_FWD1_TAIL, K_XGRAD_TAIL, K_KINDS };

/* A libxsmm kernel streams its whole A operand once per few columns of B, so
 * A should stay in L2 (2 MB a core on this project's machines): a forward
 * whose W^T, or an input gradient whose W slice, is larger than this many
 * floats (512 KB) runs as several kernels over blocks of W's rows. */
#define A_BUDGET (128 * 1024)

static int block_rows(int rows, int width) {
    if ((size_t)rows * (size_t)width <= A_BUDGET) return rows;
    int b = A_BUDGET / width / 16 * 16;
    return b < 16 ? 16 : (b > rows ? rows : b);
}

/* a table entry libxsmm could not generate: that product runs on OpenBLAS */
static char no_kernel_;
#define NO_KERNEL ((void *)&no_kernel_)

/* seconds spent in the products, for the benchmark's GEMM share: two vDSO
 * clock reads per product (~40 ns against a product's tens of microseconds) */
static double gemm_seconds;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double mtl_gemm_seconds(void) {
    return gemm_seconds;
}

const char *mtl_gemm_backend_name(mtl_gemm_backend b) {
    static const char *const names[] = {"auto", "openblas", "libxsmm"};
    return (unsigned)b < 3 ? names[b] : "?";
}

mtl_gemm_backend mtl_gemm_auto_backend(void) {
    /* libxsmm's CPU detection (LIBXSMM_TARGET overrides it); below AVX2 its
     * JIT has no edge over a BLAS kernel */
    return libxsmm_get_target_archid() >= LIBXSMM_X86_AVX2 ? MTL_GEMM_LIBXSMM : MTL_GEMM_OPENBLAS;
}

mtl_gemm_plan mtl_gemm_plan_openblas(int K, int N, int in_ld, int out_ld, int din_ld, int cols) {
    mtl_gemm_plan p;
    memset(&p, 0, sizeof p);
    p.backend = MTL_GEMM_OPENBLAS;
    p.K = K;
    p.N = N;
    p.in_ld = in_ld;
    p.out_ld = out_ld;
    p.din_ld = din_ld;
    p.cols = cols;
    return p;
}

/* libxsmm's column-major view of each product (see gemm.h) */
static void *generate(const mtl_gemm_plan *p, int kind, int B) {
    const float one = 1.0f, zero = 0.0f;
    libxsmm_blasint m, n, k, lda, ldb, ldc;
    int flags = LIBXSMM_GEMM_FLAG_NONE;
    const float *beta = &one;
    int tail = kind >= K_FWD0_TAIL;
    if (tail) kind = kind == K_XGRAD_TAIL ? K_XGRAD : kind - K_FWD0_TAIL;
    switch (kind) {
    case K_FWD0:
    case K_FWD1: /* out^T[N x B] = W^T' . in^T: A = wt, B = in; blocks of fwd_block rows */
        m = tail ? p->N % p->fwd_block : p->fwd_block;
        n = B, k = p->K, lda = p->N, ldb = p->in_ld, ldc = p->out_ld;
        if (kind == K_FWD0) beta = &zero, flags = LIBXSMM_GEMM_FLAG_BETA_0;
        break;
    case K_WGRAD: /* dW^T[K x N] += in^T[K x B] . (dout^T[N x B])^T */
        m = p->K, n = p->N, k = B, lda = p->in_ld, ldb = p->out_ld, ldc = p->K;
        flags = LIBXSMM_GEMM_FLAG_TRANS_B;
        break;
    default: /* din^T[cols x B] += W^T[cols x N] . dout^T[N x B], x_block of the N at a time */
        k = tail ? p->N % p->x_block : p->x_block;
        m = p->cols, n = B, lda = p->K, ldb = p->out_ld, ldc = p->din_ld;
    }
    libxsmm_smmfunction f =
        libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &one, beta, &flags, NULL);
    return f ? (void *)f : NO_KERNEL;
}

/* The kernel for (kind, B): NULL when the product runs on OpenBLAS. */
static libxsmm_smmfunction kernel(const mtl_gemm_plan *p, int kind, int B) {
    if (p->backend != MTL_GEMM_LIBXSMM || B > p->max_batch) return NULL;
    void **slot = p->kernel + (size_t)kind * (size_t)(p->max_batch + 1) + (size_t)B;
    if (!*slot) *slot = generate(p, kind, B); /* once per (kind, B), see gemm.h */
    libxsmm_smmfunction f;
    void *v = *slot == NO_KERNEL ? NULL : *slot;
    memcpy(&f, &v, sizeof f); /* a data pointer holding code: ISO C has no cast for it */
    return f;
}

int mtl_gemm_plan_init(mtl_gemm_plan *p, mtl_gemm_backend want, int K, int N, int in_ld, int out_ld,
                       int cols, int max_batch, mtl_error *err) {
    *p = mtl_gemm_plan_openblas(K, N, in_ld, out_ld, in_ld, cols);
    p->max_batch = max_batch;
    if (want == MTL_GEMM_AUTO) want = mtl_gemm_auto_backend();
    if (want != MTL_GEMM_LIBXSMM || K <= 0 || N <= 0 || max_batch <= 0) return MTL_OK;
    p->backend = MTL_GEMM_LIBXSMM;
    p->fwd_block = block_rows(N, K);
    p->x_block = cols > 0 ? block_rows(N, cols) : N;
    p->wt = calloc((size_t)K * (size_t)N, sizeof *p->wt);
    p->kernel = calloc((size_t)K_KINDS * (size_t)(max_batch + 1), sizeof *p->kernel);
    if (!p->wt || !p->kernel) {
        mtl_gemm_plan_free(p);
        return mtl_fail(err, MTL_HERE, "gemm: out of memory");
    }
    for (int kind = 0; kind < K_KINDS; kind++) {
        int none = (kind == K_XGRAD && cols <= 0) ||
                   (kind == K_XGRAD_TAIL && (cols <= 0 || N % p->x_block == 0)) ||
                   ((kind == K_FWD0_TAIL || kind == K_FWD1_TAIL) && N % p->fwd_block == 0);
        if (!none) (void)kernel(p, kind, max_batch);
    }
    return MTL_OK;
}

void mtl_gemm_plan_free(mtl_gemm_plan *p) {
    free(p->wt);
    free(p->kernel);
    p->wt = NULL;
    p->kernel = NULL;
}

/* wt[K x N] = w[N x K]^T in 32 x 32 tiles: both sides stay in L1 */
void mtl_gemm_plan_sync(const mtl_gemm_plan *p, const float *w) {
    if (!p->wt) return;
    const int T = 32, K = p->K, N = p->N;
    for (int i0 = 0; i0 < N; i0 += T)
        for (int j0 = 0; j0 < K; j0 += T) {
            int i1 = i0 + T < N ? i0 + T : N, j1 = j0 + T < K ? j0 + T : K;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++)
                    p->wt[(size_t)j * (size_t)N + (size_t)i] = w[(size_t)i * (size_t)K + (size_t)j];
        }
}

int mtl_gemm_plan_stale(const mtl_gemm_plan *p, const float *w) {
    if (!p->wt) return 0;
    for (size_t i = 0; i < (size_t)p->N; i++)
        for (size_t j = 0; j < (size_t)p->K; j++)
            if (memcmp(&p->wt[j * (size_t)p->N + i], &w[i * (size_t)p->K + j], sizeof *w)) return 1;
    return 0;
}

/* libxsmm's AVX/AVX-512 kernels return with the upper halves of the vector
 * registers dirty (no VZEROUPPER); the SSE code that follows (libm's scalar
 * exp and log1p, loops compiled for baseline x86-64) then runs many times
 * slower. Measured on census AITM, whose small products alternate with such
 * code: 0.2M samples/s before, 0.7-0.9M after (OpenBLAS: 0.4M). */
static inline void clean_upper(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx")) __asm__ volatile("vzeroupper"); /* --gemm libxsmm on SSE */
#endif
}

static void forward(const mtl_gemm_plan *p, float *out, const float *in, const float *w, int B,
                    float beta) {
    if (B <= 0 || p->N <= 0) return;
    if (p->K <= 0) { /* an empty sum */
        if (beta == 0.0f)
            for (int i = 0; i < B; i++)
                memset(out + (size_t)i * p->out_ld, 0, sizeof(float) * p->N);
        return;
    }
    int kind = beta == 0.0f ? K_FWD0 : K_FWD1;
    libxsmm_smmfunction f = kernel(p, kind, B), t = NULL;
    int bs = p->fwd_block, full = f ? p->N / bs * bs : 0;
    if (f) t = full < p->N ? kernel(p, kind + K_FWD0_TAIL, B) : f;
    if (t) {
        for (int i = 0; i < full; i += bs) f(p->wt + i, in, out + i);
        if (full < p->N) t(p->wt + full, in, out + full);
        clean_upper();
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, p->N, p->K, 1.0f, in, p->in_ld, w, p->K,
                beta, out, p->out_ld);
}

static void wgrad(const mtl_gemm_plan *p, float *dw, const float *dout, const float *in, int B) {
    if (B <= 0 || p->N <= 0 || p->K <= 0) return;
    libxsmm_smmfunction f = kernel(p, K_WGRAD, B);
    if (f) {
        f(in, dout, dw);
        clean_upper();
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->N, p->K, B, 1.0f, dout, p->out_ld, in,
                p->in_ld, 1.0f, dw, p->K);
}

static void xgrad(const mtl_gemm_plan *p, float *din, const float *dout, const float *w, int B) {
    if (B <= 0 || p->N <= 0 || p->cols <= 0) return;
    libxsmm_smmfunction f = kernel(p, K_XGRAD, B), t = NULL;
    int bs = p->x_block, full = f ? p->N / bs * bs : 0;
    if (f) t = full < p->N ? kernel(p, K_XGRAD_TAIL, B) : f;
    if (t) {
        for (int j = 0; j < full; j += bs) f(w + (size_t)j * (size_t)p->K, dout + j, din);
        if (full < p->N) t(w + (size_t)full * (size_t)p->K, dout + full, din);
        clean_upper();
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, p->cols, p->N, 1.0f, dout, p->out_ld,
                w, p->K, 1.0f, din, p->din_ld);
}

void mtl_gemm_forward(const mtl_gemm_plan *p, float *out, const float *in, const float *w, int B,
                      float beta) {
    double t0 = now();
    forward(p, out, in, w, B, beta);
    gemm_seconds += now() - t0;
}

void mtl_gemm_wgrad(const mtl_gemm_plan *p, float *dw, const float *dout, const float *in, int B) {
    double t0 = now();
    wgrad(p, dw, dout, in, B);
    gemm_seconds += now() - t0;
}

void mtl_gemm_xgrad(const mtl_gemm_plan *p, float *din, const float *dout, const float *w, int B) {
    double t0 = now();
    xgrad(p, din, dout, w, B);
    gemm_seconds += now() - t0;
}
