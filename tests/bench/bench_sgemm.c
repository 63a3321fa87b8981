#define _POSIX_C_SOURCE 200809L
/* Single-thread SGEMM throughput of this machine, for launch/bench.sh: the
 * ceiling the trainer's GFLOP/s is compared with. Prints one JSON object:
 *   {"square_gflops":..., "workload_gflops":..., "threads":1}
 * square: a 2048^3 product; workload: the census MMoE shapes (forward
 * 1024x127 * 127x144, and the two backward products), or the shapes given as
 * M,N,K triples on the command line. */
#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* to one decimal, as the figures are reported */
static double round1(double x) {
    return round(x * 10.0) / 10.0;
}

/* GFLOP/s of C[MxN] = A[MxK] B[KxN] (layouts as the trainer's: forward
 * A*B^T, backward dW = dY^T X and dX = dY W), best of several timed rounds. */
static double gflops(int M, int N, int K, int kind, double min_seconds) {
    float *a = malloc(sizeof(float) * (size_t)M * (size_t)K);
    float *b = malloc(sizeof(float) * (size_t)K * (size_t)N);
    float *c = malloc(sizeof(float) * (size_t)M * (size_t)N);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * (size_t)N; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            if (kind == 0) /* C = A * B^T, B stored [N x K] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K,
                            0.0f, c, N);
            else if (kind == 1) /* C = A^T * B, A stored [K x M] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, a, M, b, N,
                            1.0f, c, N);
            else /* C = A * B */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N,
                            1.0f, c, N);
            reps++;
            t = now() - t0;
        } while (t < min_seconds / 5);
        double g = 2.0 * M * N * K * reps / t / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    double square = gflops(2048, 2048, 2048, 2, 2.0);
    /* census MMoE: forward [1024x127]x[127x144]^T, dW [144x1024]x[1024x127],
     * dX [1024x144]x[144x127] */
    int shapes[16][4] = {{1024, 144, 127, 0}, {144, 127, 1024, 1}, {1024, 127, 144, 2}};
    int n = 3;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 16; i++) {
            int M, N, K;
            if (sscanf(argv[i], "%d,%d,%d", &M, &N, &K) != 3) {
                fprintf(stderr, "usage: bench_sgemm [M,N,K ...]\n");
                return 2;
            }
            shapes[n][0] = M, shapes[n][1] = N, shapes[n][2] = K, shapes[n][3] = 2;
            n++;
        }
    }
    double flops = 0, seconds = 0;
    for (int i = 0; i < n; i++) {
        double f = 2.0 * shapes[i][0] * shapes[i][1] * shapes[i][2];
        double g = gflops(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], 0.5);
        flops += f;
        seconds += f / (g * 1e9);
    }
    /* through cJSON, as every JSON the project writes (a failed timing is
     * NaN: null, not an invalid number) */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "square_gflops", round1(square));
    cJSON_AddNumberToObject(j, "workload_gflops", round1(flops / seconds / 1e9));
    cJSON_AddNumberToObject(j, "threads", 1);
    char *text = cJSON_PrintUnformatted(j);
    int ok = text != NULL && puts(text) >= 0;
    cJSON_free(text);
    cJSON_Delete(j);
    return ok ? 0 : 1;
}
