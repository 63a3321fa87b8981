#define _POSIX_C_SOURCE 200809L
/* The core's peak single-precision FMA throughput, one thread, for
 * launch/bench.sh: the ceiling no GEMM kernel can pass. An explicit loop of
 * fused multiply-adds over registers (16 independent accumulators hide the
 * FMA latency on two FMA ports), for AVX2 (8 floats) and AVX-512 (16 floats)
 * where the CPU has them. Prints one JSON object:
 *   {"avx2_gflops":..., "avx512_gflops":..., "peak_gflops":..., "threads":1}
 * (0 for an instruction set the CPU lacks). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define ACCS 16
#define ITERS 4096

/* each returns the FLOPs done; *sink keeps the compiler from dropping them */
#define FMA_LOOP(VEC, SET1, FMADD, ADD, STORE, LANES)                                              \
    VEC acc[ACCS], a = SET1(0.999999f), b = SET1(1e-7f);                                           \
    for (int i = 0; i < ACCS; i++) acc[i] = SET1((float)i);                                        \
    for (long r = 0; r < reps; r++)                                                                \
        for (int it = 0; it < ITERS; it++)                                                         \
            for (int i = 0; i < ACCS; i++) acc[i] = FMADD(acc[i], a, b);                           \
    for (int i = 1; i < ACCS; i++) acc[0] = ADD(acc[0], acc[i]);                                   \
    float out[LANES];                                                                              \
    STORE(out, acc[0]);                                                                            \
    *sink += out[0];                                                                               \
    return 2.0 * LANES * ACCS * ITERS * (double)reps;

__attribute__((target("avx2,fma"))) static double fma_avx2(long reps, float *sink) {
    FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

__attribute__((target("avx512f"))) static double fma_avx512(long reps, float *sink) {
    FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

/* best of 5 rounds of ~0.1 s: other processes only slow a round down */
static double gflops(double (*loop)(long, float *)) {
    float sink = 0;
    long reps = 16;
    double t0 = now();
    while (now() - t0 < 0.02) loop(reps, &sink); /* warm-up: clocks up, pages in */
    double t, flops;
    for (;;) { /* calibrate to ~0.1 s */
        t0 = now();
        flops = loop(reps, &sink);
        t = now() - t0;
        if (t > 0.1) break;
        reps *= 2;
    }
    double best = flops / t;
    for (int round = 0; round < 4; round++) {
        t0 = now();
        flops = loop(reps, &sink);
        t = now() - t0;
        if (flops / t > best) best = flops / t;
    }
    if (sink == 12345.0f) fputs("", stderr); /* use sink */
    return best / 1e9;
}

int main(void) {
    __builtin_cpu_init();
    double avx2 =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? gflops(fma_avx2) : 0.0;
    double avx512 = __builtin_cpu_supports("avx512f") ? gflops(fma_avx512) : 0.0;
    printf("{\"avx2_gflops\":%.1f,\"avx512_gflops\":%.1f,\"peak_gflops\":%.1f,\"threads\":1}\n",
           avx2, avx512, avx512 > avx2 ? avx512 : avx2);
    return 0;
}
