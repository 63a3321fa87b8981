/* Inference benchmark of libmtl_infer: rows/s and per-call latency (p50,
 * p99) for batches of 1, 16 and 256 rows, on T threads scoring one opened
 * model at once (one scratch each). launch/bench-infer.sh runs it next to
 * ONNX Runtime on the same rows.
 *   bench_infer CKPT.h5 ROWS_DIR THREADS [SECONDS]
 * ROWS_DIR holds sparse.bin (int64 [n x S]) and dense.bin (float32 [n x D])
 * as tests/onnx_rows.py writes them. One line per batch size:
 *   c threads=T batch=B rows_per_s=R p50_us=X p99_us=Y calls=C */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtl/infer.h"

#define MAX_CALLS 2000000

typedef struct {
    const mtl_infer *m;
    const int64_t *sparse;
    const float *dense;
    int64_t n;
    int S, D, P, batch, offset;
    double seconds;
    double *lat; /* [MAX_CALLS] microseconds */
    int64_t calls;
    int rc;
} worker;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run(void *arg) {
    worker *w = arg;
    mtl_error err;
    mtl_infer_scratch *sc = NULL;
    float *out = malloc(sizeof *out * (size_t)w->batch * (size_t)w->P);
    w->rc = out ? mtl_infer_scratch_new(w->m, &sc, &err) : -1;
    int64_t row = w->offset % (w->n - w->batch + 1);
    for (int i = 0; i < 20 && w->rc == 0; i++) /* warm up: the scratch's pages */
        w->rc = mtl_infer_score(w->m, sc, w->batch, w->sparse + row * w->S, w->dense + row * w->D,
                                out, &err);
    double end = now() + w->seconds;
    while (w->rc == 0 && w->calls < MAX_CALLS) {
        double t0 = now();
        w->rc = mtl_infer_score(w->m, sc, w->batch, w->sparse + row * w->S, w->dense + row * w->D,
                                out, &err);
        double t1 = now();
        w->lat[w->calls++] = 1e6 * (t1 - t0);
        row += w->batch;
        if (row + w->batch > w->n) row = 0;
        if (t1 > end) break;
    }
    if (w->rc != 0) fprintf(stderr, "bench_infer: %s\n", err.msg);
    mtl_infer_scratch_free(sc);
    free(out);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *slurp(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*len + 1);
    if (buf && fread(buf, 1, *len, f) != *len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_infer CKPT.h5 ROWS_DIR THREADS [SECONDS]\n");
        return 2;
    }
    int threads = atoi(argv[3]);
    double seconds = argc > 4 ? atof(argv[4]) : 2.0;
    mtl_error err;
    mtl_infer *m;
    if (mtl_infer_open(&m, argv[1], &err) != 0) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    int S = mtl_infer_num_sparse(m), D = mtl_infer_num_dense(m), P = mtl_infer_num_outputs(m);
    size_t ls = 0, ld = 0;
    int64_t *sparse = slurp(argv[2], "sparse.bin", &ls);
    float *dense = slurp(argv[2], "dense.bin", &ld);
    int64_t n = S > 0 ? (int64_t)(ls / sizeof *sparse / (size_t)S)
                      : (int64_t)(ld / sizeof *dense / (size_t)D);
    if (!sparse || !dense || n < 256 || threads < 1 || threads > 64) {
        fprintf(stderr, "bench_infer: %s: need sparse.bin and dense.bin of >= 256 rows\n", argv[2]);
        return 1;
    }
    static const int batches[3] = {1, 16, 256};
    for (int bi = 0; bi < 3; bi++) {
        worker w[64];
        pthread_t th[64];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            w[t] = (worker){m,
                            sparse,
                            dense,
                            n,
                            S,
                            D,
                            P,
                            batches[bi],
                            t * 1009,
                            seconds,
                            malloc(sizeof(double) * MAX_CALLS),
                            0,
                            0};
            pthread_create(&th[t], NULL, run, &w[t]);
        }
        int64_t calls = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            calls += w[t].calls;
        }
        double wall = now() - t0;
        double *all = malloc(sizeof(double) * (size_t)calls);
        int64_t k = 0;
        for (int t = 0; t < threads; t++) {
            memcpy(all + k, w[t].lat, sizeof(double) * (size_t)w[t].calls);
            k += w[t].calls;
            free(w[t].lat);
        }
        qsort(all, (size_t)calls, sizeof *all, cmp);
        printf("c threads=%d batch=%d rows_per_s=%.0f p50_us=%.1f p99_us=%.1f calls=%lld\n",
               threads, batches[bi], (double)calls * batches[bi] / wall, all[calls / 2],
               all[(int64_t)(0.99 * (double)(calls - 1))], (long long)calls);
        free(all);
    }
    free(sparse);
    free(dense);
    mtl_infer_close(m);
    return 0;
}
