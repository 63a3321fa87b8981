#define _POSIX_C_SOURCE 200809L
/* GFLOP/s of the GEMM layer's three products (src/gemm.c) on each backend,
 * one thread, for the shapes of a model's dense layers: the evidence behind
 * --gemm auto's rule. Usage: bench_gemm [B] [K,N ...] (default: B = 256, the
 * micro-batch, and the census MMoE's and the production MMoE's layers). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "mtl/gemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* best of 5 rounds of 20 ms */
static double gflops(const mtl_gemm_plan *p, int kind, float *out, float *in, float *w, float *dw,
                     float *din, int B) {
    double best = 0;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            if (kind == 0)
                mtl_gemm_forward(p, out, in, w, B, 0.0f);
            else if (kind == 1)
                mtl_gemm_wgrad(p, dw, out, in, B);
            else
                mtl_gemm_xgrad(p, din, out, w, B);
            reps++;
            t = now() - t0;
        } while (t < 0.02);
        double g = 2.0 * B * p->N * (kind == 2 ? p->cols : p->K) * reps / t / 1e9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    int shapes[32][2] = {{127, 144}, {144, 16}, {16, 1}, {392, 2064}, {256, 128}, {128, 64}};
    int n = 6, B = 256, a = 1;
    if (argc > 1 && sscanf(argv[1], "%d", &B) == 1) a = 2;
    if (argc > a) n = 0;
    for (; a < argc && n < 32; a++, n++)
        if (sscanf(argv[a], "%d,%d", &shapes[n][0], &shapes[n][1]) != 2) {
            fprintf(stderr, "usage: bench_gemm [B] [K,N ...]\n");
            return 2;
        }
    printf("B = %d; GFLOP/s of forward, wgrad, xgrad\n", B);
    for (int s = 0; s < n; s++) {
        int K = shapes[s][0], N = shapes[s][1];
        float *w = calloc((size_t)N * K, sizeof *w), *in = calloc((size_t)B * K, sizeof *in);
        float *out = calloc((size_t)B * N, sizeof *out), *dw = calloc((size_t)N * K, sizeof *dw);
        float *din = calloc((size_t)B * K, sizeof *din);
        if (!w || !in || !out || !dw || !din) return 1;
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = 0.01f * (float)(i % 7);
        for (size_t i = 0; i < (size_t)B * K; i++) in[i] = 0.01f * (float)(i % 5);
        printf("K %4d N %4d:", K, N);
        for (int be = MTL_GEMM_OPENBLAS; be <= MTL_GEMM_LIBXSMM; be++) {
            mtl_gemm_plan p;
            mtl_error err;
            if (mtl_gemm_plan_init(&p, be, K, N, K, N, K, B, &err)) return 1;
            mtl_gemm_plan_sync(&p, w);
            printf("  %-8s %6.1f %6.1f %6.1f", mtl_gemm_backend_name(p.backend),
                   gflops(&p, 0, out, in, w, dw, din, B), gflops(&p, 1, out, in, w, dw, din, B),
                   gflops(&p, 2, out, in, w, dw, din, B));
            mtl_gemm_plan_free(&p);
        }
        printf("\n");
        free(w);
        free(in);
        free(out);
        free(dw);
        free(din);
    }
    return 0;
}
