/* Console lines and the metrics file: see include/mtl/report.h. */
#include "mtl/report.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>

#include "mtl/gemm.h"

/* cJSON escapes task names (strings from the user's file) and writes numbers
 * as JSON; NaN and Inf are not JSON numbers: null. */
static void json_num(cJSON *obj, const char *key, double x) {
    if (isfinite(x))
        cJSON_AddNumberToObject(obj, key, x);
    else
        cJSON_AddNullToObject(obj, key);
}

/* {task: v[t]} over the tasks of one kind (want_regression 0/1; -1: all) */
static void json_task_map(cJSON *obj, const mtl_model *m, const char *key, const double *v,
                          int want_regression) {
    cJSON *map = cJSON_AddObjectToObject(obj, key);
    for (int t = 0; t < m->T; t++) {
        if (want_regression >= 0 && m->shape.task_regression[t] != want_regression) continue;
        json_num(map, m->shape.task_names[t], v[t]);
    }
}

/* One line of the metrics file; frees obj. */
static void json_line(FILE *f, cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    if (text) {
        fputs(text, f);
        fputc('\n', f);
        fflush(f);
    }
    cJSON_free(text);
    cJSON_Delete(obj);
}

static int any_task(const mtl_model *m, int regression) {
    for (int t = 0; t < m->T; t++)
        if (m->shape.task_regression[t] == regression) return 1;
    return 0;
}

/* PREFIX_gauc and PREFIX_gauc_groups per binary task */
static void json_gauc(cJSON *f, const mtl_model *m, const char *prefix, const mtl_eval_result *r) {
    char key[64];
    snprintf(key, sizeof key, "%s_gauc", prefix);
    json_task_map(f, m, key, r->gauc, 0);
    snprintf(key, sizeof key, "%s_gauc_groups", prefix);
    cJSON *map = cJSON_AddObjectToObject(f, key);
    for (int t = 0; t < m->T; t++)
        if (!m->shape.task_regression[t])
            cJSON_AddNumberToObject(map, m->shape.task_names[t], (double)r->gauc_groups[t]);
}

/* What the gates learned (see mtl_gate_stats), keyed by gate name
 * (mtl_gate): PREFIX_gates the mean weight of each expert, PREFIX_gate_entropy
 * the mean entropy, PREFIX_gate_entropy_uniform that of a uniform gate, ln K. */
static void json_gates(cJSON *f, const mtl_model *m, const char *prefix, const mtl_gate_stats *s) {
    char key[64];
    snprintf(key, sizeof key, "%s_gates", prefix);
    cJSON *weights = cJSON_AddObjectToObject(f, key);
    snprintf(key, sizeof key, "%s_gate_entropy", prefix);
    cJSON *entropy = cJSON_AddObjectToObject(f, key);
    snprintf(key, sizeof key, "%s_gate_entropy_uniform", prefix);
    cJSON *uniform = cJSON_AddObjectToObject(f, key);
    double w[MTL_MAX_GROUP], h;
    for (int g = 0; g < s->n_gates; g++) {
        mtl_gate_stats_mean(s, g, w, &h);
        cJSON *list = cJSON_AddArrayToObject(weights, m->gates[g].name);
        for (int k = 0; k < s->K[g]; k++)
            cJSON_AddItemToArray(list,
                                 isfinite(w[k]) ? cJSON_CreateNumber(w[k]) : cJSON_CreateNull());
        json_num(entropy, m->gates[g].name, h);
        json_num(uniform, m->gates[g].name, log(s->K[g]));
    }
}

/* "gates LABEL: income H=0.41/2.08 top e3 0.62 | marital ...": per gate its
 * mean entropy over that of a uniform gate, and its most used expert (the
 * index among the experts the gate mixes) with its mean weight */
static void print_gates(const mtl_model *m, const char *label, const mtl_gate_stats *s) {
    double w[MTL_MAX_GROUP], h;
    printf("gates %s:", label);
    for (int g = 0; g < s->n_gates; g++) {
        mtl_gate_stats_mean(s, g, w, &h);
        int top = 0;
        for (int k = 1; k < s->K[g]; k++)
            if (w[k] > w[top]) top = k;
        printf("%s %s H=%.2f/%.2f top e%d %.2f", g ? " |" : "", m->gates[g].name, h, log(s->K[g]),
               top, w[top]);
    }
    printf("\n");
}

/* <prefix>_loss, and <prefix>_auc (binary) or <prefix>_mse/_mae (regression);
 * the test split also says test_logloss. */
static void json_eval(cJSON *f, const mtl_model *m, const char *prefix, const mtl_eval_result *r) {
    char key[64];
    snprintf(key, sizeof key, "%s_loss", prefix);
    json_task_map(f, m, key, r->loss, -1);
    if (any_task(m, 0)) {
        snprintf(key, sizeof key, "%s_auc", prefix);
        json_task_map(f, m, key, r->auc, 0);
        if (strcmp(prefix, "test") == 0) json_task_map(f, m, "test_logloss", r->loss, 0);
        if (r->has_gauc) json_gauc(f, m, prefix, r);
    }
    if (any_task(m, 1)) {
        snprintf(key, sizeof key, "%s_mse", prefix);
        json_task_map(f, m, key, r->loss, 1);
        snprintf(key, sizeof key, "%s_mae", prefix);
        json_task_map(f, m, key, r->mae, 1);
    }
    if (r->gates) json_gates(f, m, prefix, r->gates);
}

void mtl_report_start(int quiet, const mtl_model *m, const mtl_run_header *h) {
    if (quiet) return;
    printf("mtl_dist %s: model %s, %d rank%s, %lld parameters (%lld in embeddings), "
           "%.1f kFLOP/sample, train %lld rows",
           MTL_VERSION, h->model_name, h->world_size, h->world_size > 1 ? "s" : "",
           (long long)m->params.size, (long long)(m->params.size - m->params.dense_size),
           mtl_model_flops_per_sample(m) / 1e3, (long long)h->train_rows);
    if (h->sparse_tables > 0)
        printf(", %d sparse embedding table%s", h->sparse_tables, h->sparse_tables > 1 ? "s" : "");
    if (h->valid_rows >= 0)
        printf(", valid %lld%s", (long long)h->valid_rows,
               h->valid_from_split ? " (the last rows of the training file: --valid-split)" : "");
    if (h->test_rows >= 0) printf(", test %lld", (long long)h->test_rows);
    printf("\n");
    fflush(stdout);
}

void mtl_report_print_eval(const mtl_model *m, const char *label, const mtl_eval_result *r) {
    printf(" | %s", label);
    for (int t = 0; t < m->T; t++) {
        if (m->shape.task_regression[t])
            printf(" %s mse %.4f mae %.4f", m->shape.task_names[t], r->loss[t], r->mae[t]);
        else
            printf(" %s loss %.4f auc %.4f", m->shape.task_names[t], r->loss[t], r->auc[t]);
        if (r->has_gauc && !m->shape.task_regression[t]) printf(" gauc %.4f", r->gauc[t]);
    }
}

void mtl_report_epoch(FILE *metrics, int quiet, const mtl_model *m, const mtl_epoch_report *e) {
    if (!quiet) {
        printf("epoch %lld/%d train", (long long)e->epoch, e->epochs);
        for (int t = 0; t < m->T; t++) printf(" %s %.4f", m->shape.task_names[t], e->train_loss[t]);
        if (e->valid) mtl_report_print_eval(m, "valid", e->valid);
        printf(" | %.0f samples/s | %.2f s\n", e->samples_per_sec, e->seconds);
        if (e->valid && e->valid->gates) print_gates(m, "valid", e->valid->gates);
        fflush(stdout);
    }
    if (!metrics) return;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", (double)e->epoch);
    json_task_map(j, m, "train_loss", e->train_loss, -1);
    if (e->valid) json_eval(j, m, "valid", e->valid);
    json_num(j, "samples_per_sec", e->samples_per_sec);
    json_num(j, "epoch_seconds", e->seconds);
    cJSON_AddNumberToObject(j, "steps", (double)e->steps);
    json_line(metrics, j);
}

void mtl_report_test(int quiet, const mtl_model *m, const mtl_eval_result *test) {
    if (quiet) return;
    printf("test");
    mtl_report_print_eval(m, "", test);
    printf("\n");
    if (test->gates) print_gates(m, "test", test->gates);
}

static double ratio(double a, double b) {
    return b > 0 ? a / b : NAN;
}

void mtl_report_final(FILE *metrics, int quiet, const mtl_model *m, const mtl_final_report *f) {
    const mtl_throughput *tp = &f->tp;
    double samples_per_sec = tp->train_seconds > 0 ? tp->train_samples / tp->train_seconds : 0;
    if (metrics) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddTrueToObject(j, "final");
        cJSON_AddNumberToObject(j, "best_epoch", (double)f->best_epoch);
        if (f->test) {
            if (any_task(m, 0)) {
                json_task_map(j, m, "test_auc", f->test->auc, 0);
                json_task_map(j, m, "test_logloss", f->test->loss, 0);
                if (f->test->has_gauc) json_gauc(j, m, "test", f->test);
            }
            if (any_task(m, 1)) {
                json_task_map(j, m, "test_mse", f->test->loss, 1);
                json_task_map(j, m, "test_mae", f->test->mae, 1);
            }
            if (f->test->gates) json_gates(j, m, "test", f->test->gates);
        }
        json_num(j, "train_samples_per_sec", samples_per_sec);
        json_num(j, "train_seconds", tp->train_seconds);
        json_num(j, "total_seconds", f->total_seconds);
        json_num(j, "steady_samples_per_sec", ratio(tp->steady_samples, tp->steady_seconds));
        json_num(j, "allreduce_share", ratio(tp->allreduce_seconds, tp->steady_seconds));
        json_num(j, "gemm_share", ratio(tp->gemm_seconds, tp->steady_seconds));
        cJSON_AddStringToObject(j, "gemm", mtl_gemm_backend_name(m->gemm_backend));
        json_num(j, "exchange_bytes_per_step", ratio(tp->exchange_bytes, tp->steady_steps));
        cJSON_AddNumberToObject(j, "sparse_tables", f->sparse_tables);
        cJSON_AddNumberToObject(j, "sharded_tables", f->sharded_tables);
        json_num(j, "flops_per_sample", round(mtl_model_flops_per_sample(m)));
        json_num(j, "peak_rss_mb", round(f->peak_rss_mb * 10.0) / 10.0);
        cJSON_AddNumberToObject(j, "steps", (double)f->steps);
        cJSON_AddNumberToObject(j, "nonfinite_steps_skipped", (double)f->nonfinite_skipped);
        cJSON_AddNumberToObject(j, "world_size", f->world_size);
        cJSON_AddNumberToObject(j, "threads", f->threads);
        json_line(metrics, j);
    }
    if (!quiet)
        printf("done: %lld steps, %.0f samples/s, %.2f s\n", (long long)f->steps, samples_per_sec,
               f->total_seconds);
}
