/* Evaluation metrics over a whole split. Not on the hot path: they run once
 * per evaluation, so clarity wins over speed (AUC allocates and sorts). All
 * accumulation is in double so a 10M-row split does not lose precision. */
#include "mtl/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* one labelled item for AUC: its score and whether it is a positive */
typedef struct {
    float score;
    float pos; /* 1 or 0 */
} mtl_scored;

static int cmp_score(const void *a, const void *b) {
    float x = ((const mtl_scored *)a)->score;
    float y = ((const mtl_scored *)b)->score;
    return (x > y) - (x < y); /* no NaN here: they are rejected before sorting */
}

double mtl_auc(const float *score, size_t score_stride, const float *label, size_t label_stride,
               size_t n) {
    if (n == 0 || n > SIZE_MAX / sizeof(mtl_scored)) return NAN;
    mtl_scored *items = malloc(n * sizeof(mtl_scored));
    if (!items) return NAN;

    // keep the labelled items; labels are 0/1 floats, >= 0.5 counts as positive
    size_t m = 0;
    double n_pos = 0.0, n_neg = 0.0;
    for (size_t i = 0; i < n; i++) {
        float y = label[i * label_stride];
        if (isnan(y)) continue;
        float s = score[i * score_stride];
        if (isnan(s)) { // a NaN score has no rank: the AUC is undefined (a diverged model)
            free(items);
            return NAN;
        }
        float pos = y >= 0.5f ? 1.0f : 0.0f;
        items[m].score = s;
        items[m].pos = pos;
        m++;
        n_pos += pos;
        n_neg += 1.0 - pos;
    }
    if (n_pos == 0.0 || n_neg == 0.0) { // one class only: sklearn raises, we report NaN
        free(items);
        return NAN;
    }

    // AUC = P(score of a random positive > score of a random negative), ties
    // counting 1/2 -- the Mann-Whitney U statistic with average ranks for ties,
    // which is what sklearn's roc_auc_score computes (trapezoids over tied
    // thresholds). Sort ascending, then walk groups of equal score: every
    // positive in a group beats the negatives of all lower groups and ties
    // with the negatives of its own group. The counts are integers, summed
    // exactly in double while the pair count stays below 2^53 (~1.9e8 items).
    qsort(items, m, sizeof(mtl_scored), cmp_score);
    double pairs = 0.0, neg_below = 0.0;
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
        i = j;
    }
    free(items);
    return pairs / (n_pos * n_neg);
}

double mtl_logloss(const float *p, size_t p_stride, const float *label, size_t label_stride,
                   size_t n) {
    const double lo = 1e-7, hi = 1.0 - 1e-7; // Keras' epsilon: log(0) never happens
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        double y = label[i * label_stride];
        if (isnan(y)) continue;
        double q = p[i * p_stride];
        // explicit compares (not fmin/fmax) so a NaN prediction stays NaN and shows
        if (q < lo) q = lo;
        if (q > hi) q = hi;
        sum -= y * log(q) + (1.0 - y) * log(1.0 - q);
        count++;
    }
    return count ? sum / (double)count : NAN;
}

/* Mean of |pred - y|^power over the labelled rows (power 1 or 2). */
static double mean_error(const float *pred, size_t pred_stride, const float *label,
                         size_t label_stride, size_t n, int power) {
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        double y = label[i * label_stride];
        if (isnan(y)) continue;
        double d = fabs((double)pred[i * pred_stride] - y);
        sum += power == 2 ? d * d : d;
        count++;
    }
    return count ? sum / (double)count : NAN;
}

double mtl_mse_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, size_t n) {
    return mean_error(pred, pred_stride, label, label_stride, n, 2);
}

double mtl_mae_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, size_t n) {
    return mean_error(pred, pred_stride, label, label_stride, n, 1);
}
