/* What a run tells its user: console lines and the metrics file (one JSON
 * object per line, written with cJSON). Rank 0 calls these; a NULL metrics
 * file writes no JSON, quiet prints nothing. */
#ifndef MTL_REPORT_H
#define MTL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "mtl/metrics.h"
#include "mtl/model.h"

/* The metrics of one evaluated split. */
typedef struct {
    double loss[MTL_MAX_TASKS];         /* logloss (binary) or MSE (regression) */
    double auc[MTL_MAX_TASKS];          /* binary */
    double mae[MTL_MAX_TASKS];          /* regression */
    double gauc[MTL_MAX_TASKS];         /* binary, when the split has /groups (has_gauc) */
    int64_t gauc_groups[MTL_MAX_TASKS]; /* groups counted in gauc (metrics.h) */
    int has_gauc;
    double total; /* sum of loss-weighted per-task losses */
    /* what the gates learned over the split's rows, one per gate of the
     * model (m->gates); NULL: a model without gates */
    const mtl_gate_stats *gates;
} mtl_eval_result;

/* Time and work of the training steps. Steady state: the steps after the
 * first few (page faults, BLAS warm-up). */
typedef struct {
    double train_seconds, train_samples; /* every epoch, whole */
    double steady_steps, steady_seconds, steady_samples;
    double allreduce_seconds; /* of steady_seconds: the gradient exchange */
    double gemm_seconds;      /* of steady_seconds: matrix products */
    double exchange_bytes;    /* received by this rank in the steady steps */
} mtl_throughput;

/* The end of an epoch. valid NULL: no validation split. */
typedef struct {
    int64_t epoch; /* 1-based */
    int epochs;
    const double *train_loss; /* [T] */
    const mtl_eval_result *valid;
    double samples_per_sec, seconds;
    int64_t steps;
} mtl_epoch_report;

/* The end of a run. test NULL: no test split. */
typedef struct {
    int64_t best_epoch, steps, nonfinite_skipped;
    const mtl_eval_result *test;
    mtl_throughput tp;
    double total_seconds, peak_rss_mb;
    int world_size, threads, sparse_tables, sharded_tables;
} mtl_final_report;

/* What the run is, for its first console line. Rows -1: no such split. */
typedef struct {
    const char *model_name;
    int world_size;
    int64_t train_rows, valid_rows, test_rows;
    int valid_from_split; /* the valid rows are the training file's tail (--valid-split) */
    int sparse_tables;
} mtl_run_header;

void mtl_report_start(int quiet, const mtl_model *m, const mtl_run_header *h);
/* " | <label> task loss x auc y ..." (no newline) */
void mtl_report_print_eval(const mtl_model *m, const char *label, const mtl_eval_result *r);
void mtl_report_epoch(FILE *metrics, int quiet, const mtl_model *m, const mtl_epoch_report *e);
/* "test | ..." on the console */
void mtl_report_test(int quiet, const mtl_model *m, const mtl_eval_result *test);
void mtl_report_final(FILE *metrics, int quiet, const mtl_model *m, const mtl_final_report *f);

#endif
