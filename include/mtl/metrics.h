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

/* What the gates learned (MMoE, CGC, PLE): per gate, over the evaluated
 * rows, the mean softmax weight of each expert and the mean entropy
 * -sum_e w_e ln w_e (0 ln 0 = 0; a uniform gate over K experts has ln K, a
 * gate that always picks one expert 0). The sums are one array of doubles,
 * per gate its K weight sums, its entropy sum and its row count, so the
 * ranks add them with one allreduce. Allocated once by init; adding rows
 * allocates nothing. */
typedef struct {
    int n_gates;
    int *K;       /* [n_gates] experts each gate mixes */
    size_t *at;   /* [n_gates] where the gate's sums start in sums */
    double *sums; /* [n] */
    size_t n;
} mtl_gate_stats;

/* Sums for n_gates gates of K[g] experts each, all 0 (n_gates 0: none). */
int mtl_gate_stats_init(mtl_gate_stats *s, int n_gates, const int *K, mtl_error *err);
void mtl_gate_stats_free(mtl_gate_stats *s);
void mtl_gate_stats_reset(mtl_gate_stats *s);
/* Adds B rows of gate g's weights w [B x K[g]] (row stride ld floats). */
void mtl_gate_stats_add(mtl_gate_stats *s, int g, const float *w, size_t ld, int B);
/* Gate g's mean weights (mean_w [K[g]]) and mean entropy over the rows
 * added, NaN without rows; returns the number of rows. */
double mtl_gate_stats_mean(const mtl_gate_stats *s, int g, double *mean_w, double *entropy);
/* The statistics of a model's gates (model.h), one per gate in m->gates
 * order (none for a model without gates): init allocates them, add
 * accumulates the gate weights of the model's last forward over B rows
 * (evaluation forwards only, never a training step). */
struct mtl_model;
int mtl_gate_stats_init_model(mtl_gate_stats *s, const struct mtl_model *m, mtl_error *err);
void mtl_gate_stats_add_forward(mtl_gate_stats *s, const struct mtl_model *m, int B);

#endif
