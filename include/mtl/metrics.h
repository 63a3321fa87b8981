/* Evaluation metrics over a whole split. NaN labels (missing) are skipped. */
#ifndef MTL_METRICS_H
#define MTL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/error.h"

/* Exact ROC AUC (sort by score, tied scores share their average rank), equal
 * to scikit-learn's roc_auc_score. score/label have strides (in floats) so a
 * column of a [N x T] matrix can be passed. Labels >= 0.5 count as positive.
 * Scratch is allocated internally. Returns NaN when only one class is present
 * (sklearn raises; we report NaN), when a labelled item has a NaN score, or
 * when the allocation fails. */
double mtl_auc(const float *score, size_t score_stride, const float *label, size_t label_stride,
               size_t n);

/* Group AUC (Zhou et al., "Deep Interest Network", KDD 2018, section 5.2):
 * the mean over groups of each group's exact AUC (as mtl_auc, ties count 1/2),
 * weighted by the group's number of labelled rows, counting only groups whose
 * labels contain both classes. group[i] is row i's group (user or session id).
 * *n_groups receives the number of groups counted. NaN when no group counts,
 * a labelled row has a NaN score, or the allocation fails. */
double mtl_gauc(const float *score, size_t score_stride, const float *label, size_t label_stride,
                const int64_t *group, size_t n, int64_t *n_groups);

/* Mean binary cross-entropy of probabilities p (clamped to [1e-7, 1-1e-7]).
 * weight: per-row weights with the label's stride, or NULL (all 1): the
 * weighted mean sum w l / sum w over the labelled rows (weight 0: the row
 * counts in neither sum). */
double mtl_logloss(const float *p, size_t p_stride, const float *label, size_t label_stride,
                   const float *weight, size_t n);
/* Mean squared and mean absolute error, weighted as mtl_logloss. */
double mtl_mse_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, const float *weight, size_t n);
double mtl_mae_metric(const float *pred, size_t pred_stride, const float *label,
                      size_t label_stride, const float *weight, size_t n);

#endif
