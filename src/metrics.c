/* Evaluation metrics over a whole split. Not on the hot path: they run once
 * per evaluation, so clarity wins over speed (AUC allocates and sorts). All
 * accumulation is in double so a 10M-row split does not lose precision. */
#include "mtl/metrics.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/model.h"

/* one labelled item for AUC: its group (0 for a plain AUC), score and class */
typedef struct {
    int64_t group;
    float score;
    float pos; /* 1 or 0 */
} mtl_scored;

/* by group, then score: a plain AUC is one group, GAUC walks the groups in turn */
static int cmp_scored(const void *a, const void *b) {
    const mtl_scored *x = a, *y = b;
    if (x->group != y->group) return (x->group > y->group) - (x->group < y->group);
    return (x->score > y->score) - (x->score < y->score); /* NaN rejected before sorting */
}

/* Collects the labelled items (label not NaN) with their group; returns how
 * many, or -1 when a labelled item has a NaN score (the AUC is undefined: a
 * diverged model). Labels >= 0.5 count as positive. */
static ptrdiff_t collect(mtl_scored *items, const float *score, size_t score_stride,
                         const float *label, size_t label_stride, const int64_t *group, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float y = label[i * label_stride];
        if (isnan(y)) continue;
        float s = score[i * score_stride];
        if (isnan(s)) return -1;
        items[m].group = group ? group[i] : 0;
        items[m].score = s;
        items[m].pos = y >= 0.5f ? 1.0f : 0.0f;
        m++;
    }
    return (ptrdiff_t)m;
}

/* AUC of one run of sorted items of one group, NaN when one class only.
 * AUC = P(score of a random positive > score of a random negative), ties
 * counting 1/2 -- the Mann-Whitney U statistic with average ranks for ties,
 * which is what sklearn's roc_auc_score computes (trapezoids over tied
 * thresholds). Walk groups of equal score in ascending order: every positive
 * in a group beats the negatives of all lower groups and ties with the
 * negatives of its own group. The counts are integers, summed exactly in
 * double while the pair count stays below 2^53 (~1.9e8 items). */
static double sorted_auc(const mtl_scored *items, size_t m) {
    double pairs = 0.0, neg_below = 0.0, n_pos = 0.0;
    size_t i = 0;
    while (i < m) {
        size_t j = i;
        double pos_g = 0.0, neg_g = 0.0;
        while (j < m && items[j].score == items[i].score) {
            pos_g += items[j].pos;
            neg_g += 1.0 - items[j].pos;
            j++;
        }
        pairs += pos_g * neg_below + 0.5 * pos_g * neg_g;
        neg_below += neg_g;
        n_pos += pos_g;
        i = j;
    }
    if (n_pos == 0.0 || neg_below == 0.0) return NAN; // sklearn raises, we report NaN
    return pairs / (n_pos * neg_below);
}

/* Sorted labelled items of score/label (and group when not NULL); NULL with
 * *m = 0 when there are none, NULL with *m = 1 on a NaN score or no memory. */
static mtl_scored *sorted_items(const float *score, size_t score_stride, const float *label,
                                size_t label_stride, const int64_t *group, size_t n, size_t *m) {
    *m = 1;
    if (n == 0 || n > SIZE_MAX / sizeof(mtl_scored)) {
        *m = 0;
        return NULL;
    }
    mtl_scored *items = malloc(n * sizeof(mtl_scored));
    if (!items) return NULL;
    ptrdiff_t k = collect(items, score, score_stride, label, label_stride, group, n);
    if (k <= 0) {
        free(items);
        *m = k == 0 ? 0 : 1;
        return NULL;
    }
    qsort(items, (size_t)k, sizeof(mtl_scored), cmp_scored);
    *m = (size_t)k;
    return items;
}

double mtl_auc(const float *score, size_t score_stride, const float *label, size_t label_stride,
               size_t n) {
    size_t m;
    mtl_scored *items = sorted_items(score, score_stride, label, label_stride, NULL, n, &m);
    if (!items) return NAN;
    double auc = sorted_auc(items, m);
    free(items);
    return auc;
}

double mtl_gauc(const float *score, size_t score_stride, const float *label, size_t label_stride,
                const int64_t *group, size_t n, int64_t *n_groups) {
    *n_groups = 0;
    size_t m;
    mtl_scored *items = sorted_items(score, score_stride, label, label_stride, group, n, &m);
    if (!items) return NAN;
    // Zhou et al., "Deep Interest Network" (KDD 2018) section 5.2: the AUC of
    // each group weighted by its number of labelled rows; one-class groups
    // have no AUC and count for nothing (neither numerator nor weight)
    double sum = 0.0, weight = 0.0;
    size_t i = 0;
    while (i < m) {
        size_t j = i;
        while (j < m && items[j].group == items[i].group) j++;
        double auc = sorted_auc(items + i, j - i);
        if (!isnan(auc)) {
            sum += (double)(j - i) * auc;
            weight += (double)(j - i);
            (*n_groups)++;
        }
        i = j;
    }
    free(items);
    return weight > 0.0 ? sum / weight : NAN;
}

/* Weighted means sum_i w_i e_i / sum_i w_i over the labelled rows (w NULL:
 * every w_i 1); rows of weight 0 count in neither sum, and no weight at all
 * gives NaN. */
double mtl_logloss(const float *p, size_t p_stride, const float *label, size_t label_stride,
                   const float *weight, size_t n) {
    const double lo = 1e-7, hi = 1.0 - 1e-7; // Keras' epsilon: log(0) never happens
    double sum = 0.0, wsum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double y = label[i * label_stride], w = weight ? weight[i * label_stride] : 1.0;
        if (isnan(y) || w == 0.0) continue;
        double q = p[i * p_stride];
        // explicit compares (not fmin/fmax) so a NaN prediction stays NaN and shows
        if (q < lo) q = lo;
        if (q > hi) q = hi;
        sum -= w * (y * log(q) + (1.0 - y) * log(1.0 - q));
        wsum += w;
    }
    return wsum > 0.0 ? sum / wsum : NAN;
}

/* Weighted mean of |pred - y|^power over the labelled rows (power 1 or 2). */
static double mean_error(const float *pred, size_t pred_stride, const float *label,
                         size_t label_stride, const float *weight, size_t n, int power) {
    double sum = 0.0, wsum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double y = label[i * label_stride], w = weight ? weight[i * label_stride] : 1.0;
        if (isnan(y) || w == 0.0) continue;
        double d = fabs((double)pred[i * pred_stride] - y);
        sum += w * (power == 2 ? d * d : d);
        wsum += w;
    }
    return wsum > 0.0 ? sum / wsum : NAN;
}

double mtl_mse_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, const float *weight, size_t n) {
    return mean_error(pred, pred_stride, label, label_stride, weight, n, 2);
}

double mtl_mae_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, const float *weight, size_t n) {
    return mean_error(pred, pred_stride, label, label_stride, weight, n, 1);
}

int mtl_gate_stats_init(mtl_gate_stats *s, int n_gates, const int *K, mtl_error *err) {
    memset(s, 0, sizeof *s);
    if (n_gates <= 0) return MTL_OK;
    for (int g = 0; g < n_gates; g++) s->n += (size_t)K[g] + 2; /* weights, entropy, rows */
    s->K = malloc((size_t)n_gates * sizeof *s->K);
    s->at = malloc((size_t)n_gates * sizeof *s->at);
    s->sums = calloc(s->n, sizeof *s->sums);
    if (!s->K || !s->at || !s->sums) {
        mtl_gate_stats_free(s);
        return mtl_fail(err, MTL_HERE, "gate statistics: out of memory");
    }
    s->n_gates = n_gates;
    size_t at = 0;
    for (int g = 0; g < n_gates; g++) {
        s->K[g] = K[g];
        s->at[g] = at;
        at += (size_t)K[g] + 2;
    }
    return MTL_OK;
}

void mtl_gate_stats_free(mtl_gate_stats *s) {
    free(s->K);
    free(s->at);
    free(s->sums);
    memset(s, 0, sizeof *s);
}

void mtl_gate_stats_reset(mtl_gate_stats *s) {
    if (s->n) memset(s->sums, 0, s->n * sizeof *s->sums);
}

void mtl_gate_stats_add(mtl_gate_stats *s, int g, const float *w, size_t ld, int B) {
    int K = s->K[g];
    double *sum = s->sums + s->at[g]; /* [K] weights, then entropy, then rows */
    for (int i = 0; i < B; i++) {
        const float *row = w + (size_t)i * ld;
        double h = 0.0;
        for (int k = 0; k < K; k++) {
            double x = row[k];
            sum[k] += x;
            if (x > 0.0) h -= x * log(x);
        }
        sum[K] += h;
    }
    sum[K + 1] += B;
}

double mtl_gate_stats_mean(const mtl_gate_stats *s, int g, double *mean_w, double *entropy) {
    int K = s->K[g];
    const double *sum = s->sums + s->at[g];
    double rows = sum[K + 1];
    for (int k = 0; k < K; k++) mean_w[k] = rows > 0 ? sum[k] / rows : NAN;
    *entropy = rows > 0 ? sum[K] / rows : NAN;
    return rows;
}

int mtl_gate_stats_init_model(mtl_gate_stats *s, const mtl_model *m, mtl_error *err) {
    int *K = malloc(((size_t)m->n_gates + 1) * sizeof *K);
    if (!K) return mtl_fail(err, MTL_HERE, "gate statistics: out of memory");
    for (int g = 0; g < m->n_gates; g++) K[g] = m->gates[g].K;
    int rc = mtl_gate_stats_init(s, m->n_gates, K, err);
    free(K);
    return rc;
}

void mtl_gate_stats_add_forward(mtl_gate_stats *s, const mtl_model *m, int B) {
    for (int g = 0; g < s->n_gates; g++) {
        const mtl_stack *st = &m->stacks[m->gates[g].stack];
        const mtl_layer *head = &st->layer[st->n - 1]; /* softmax weights, in place of the logits */
        mtl_gate_stats_add(s, g, m->act + head->z, (size_t)head->ld, B);
    }
}
