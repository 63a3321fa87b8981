#define _POSIX_C_SOURCE 200809L
/* What a sparse step's random rows cost on this machine, for the layout of
 * large embedding tables (issue 12): a lazy Adam update reads and writes a
 * row of the table, of m and of v. Today they live in three blocks of the one
 * parameter layout (params.h), so a row is three random cache lines, each
 * with its own address translation; interleaved per row ([value | m | v],
 * as Monolith or HugeCTR keep an id's embedding and optimizer state) it would
 * be three adjacent lines of one page.
 *
 *   bench_rows [--rows N] [--dim D] [--touched T] [--rounds R]
 *
 * defaults: the 1M-ids-per-field case of launch/bench-vocab.sh (24 fields ->
 * 24,000,000 rows of 16 floats: 1.5 GB per block; 9.2 GB in all with the
 * interleaved copy) and 12,000 touched rows per step (use --touched 200000
 * for steadier figures). Each round times, in turn on fresh random ids: a
 * gather of one row (the forward's read), the update of a row in three
 * separate blocks, and the update of three adjacent rows of one interleaved
 * block; it prints the best round's ns per row of each (other jobs on the
 * machine only slow a round down). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtl/error.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* the update's memory traffic: read-modify-write of each element */
static inline void touch(float *restrict x, int dim) {
    for (int j = 0; j < dim; j++) x[j] = x[j] * 0.999f + 1e-6f;
}

int main(int argc, char **argv) {
    size_t rows = 24000000;
    int dim = 16, touched = 12000, rounds = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0)
            rows = (size_t)atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--dim") == 0)
            dim = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--touched") == 0)
            touched = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_rows [--rows N] [--dim D] [--touched T] [--rounds R]\n");
            return 2;
        }
    }
    if (rows < 1 || dim < 1 || touched < 1 || rounds < 1) {
        fprintf(stderr, "bench_rows: --rows, --dim, --touched and --rounds must be positive\n");
        return 2;
    }
    mtl_error err;
    size_t n = rows * (size_t)dim;
    float *value = mtl_alloc_huge(n, sizeof(float), "values", &err);
    float *m = value ? mtl_alloc_huge(n, sizeof(float), "m", &err) : NULL;
    float *v = m ? mtl_alloc_huge(n, sizeof(float), "v", &err) : NULL;
    float *mixed = v ? mtl_alloc_huge(3 * n, sizeof(float), "interleaved", &err) : NULL;
    int32_t *ids = malloc((size_t)touched * sizeof *ids);
    if (!mixed || !ids) {
        fprintf(stderr, "bench_rows: %s\n", mixed ? "out of memory" : err.msg);
        return 1;
    }
    double best[3] = {1e30, 1e30, 1e30}, sink = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < touched; k++) ids[k] = (int32_t)(xorshift(&seed) % rows);
        double t0 = now();
        for (int k = 0; k < touched; k++) sink += value[(size_t)ids[k] * (size_t)dim];
        double t1 = now();
        for (int k = 0; k < touched; k++) {
            size_t at = (size_t)ids[k] * (size_t)dim;
            touch(value + at, dim);
            touch(m + at, dim);
            touch(v + at, dim);
        }
        double t2 = now();
        for (int k = 0; k < touched; k++) touch(mixed + 3 * (size_t)ids[k] * (size_t)dim, 3 * dim);
        double t3 = now();
        double dt[3] = {t1 - t0, t2 - t1, t3 - t2};
        for (int i = 0; i < 3; i++)
            if (dt[i] < best[i]) best[i] = dt[i];
    }
    double per[3];
    for (int i = 0; i < 3; i++) per[i] = best[i] / touched * 1e9;
    printf("random rows of %zu x %d floats, %d touched, best of %d rounds:\n", rows, dim, touched,
           rounds);
    printf("  gather one row:                      %6.1f ns/row\n", per[0]);
    printf("  update value, m, v in three blocks:  %6.1f ns/row\n", per[1]);
    printf("  update [value|m|v] of one row block: %6.1f ns/row (%.2fx)\n", per[2],
           per[1] / per[2]);
    printf("{\"gather_ns\":%.1f,\"update_separate_ns\":%.1f,\"update_interleaved_ns\":%.1f}\n",
           per[0], per[1], per[2]);
    free(ids);
    free(mixed);
    free(v);
    free(m);
    free(value);
    return sink == 42.0 ? 3 : 0; /* keeps the gather */
}
