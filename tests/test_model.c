/* Tests for src/model.c and the architectures in src/models/.
 *
 * 1. Gradient checks. For every architecture and the list of cases
 *    (2 and 3 tasks, a regression task, gate DNNs, single-task MMoE/PLE,
 *    uncertainty weighting, batch norm, multi-layer experts, missing labels,
 *    sample weights, loss weights, batch sizes 13 and 1), the analytic
 *    gradient (mtl_model_loss + mtl_model_backward) of EVERY parameter,
 *    embeddings included (rows unused by the batch must come out exactly 0),
 *    is compared with central finite differences of the TOTAL loss
 *      L = sum_{t: count_t > 0} w_t f_t loss_t / count_t  (+ s_t / 2 with
 *          uncertainty weighting: f_t = c_t exp(-s_t), c_t = 1/2 for
 *          regression, 1 for binary; otherwise f_t = 1)
 *    where loss_t is the weighted sum of per-sample BCE-with-logits or
 *    squared error over labelled samples (per-task sample weights, some 0),
 *    count_t the labelled samples' summed weight, and ESMM's conversion task is the
 *    BCE of pCTCVR = sigmoid(z_ctr) sigmoid(z_cvr) clamped to
 *    [1e-7, 1 - 1e-7]. Tasks with no label in the batch contribute nothing
 *    (as mtl_model_loss). L is computed by this file, in double.
 *    Two finite-difference estimates, both Richardson extrapolations
 *    (4 D(h/2) - D(h)) / 3 of central differences D (error O(h^4)), with
 *    the step actually taken, (float)(p +- h) - p, computed exactly:
 *    a) the strict one: L from an independent DOUBLE reference forward
 *       (section 2), h = 1e-4: rounding ~1e-12, truncation ~1e-12, so the
 *       error is the float analytic gradient's own rounding. Relative error
 *       |a - b| / max(|a|, |b|, 1e-3) < 1e-3. The floor is 1e-3 because the
 *       float gradient carries ~1e-7 absolute rounding where the exact value
 *       cancels to 0 (pre-batch-norm biases); everywhere else the achieved
 *       error is ~1e-5.
 *    b) a coarse cross-check: L from the model's own FLOAT forward, whose
 *       ~1e-7 relative rounding limits the estimate: h = 1e-2, floor 1e-2,
 *       tolerance 2e-2 (achieved ~6e-3).
 *    ReLU kinks: parameters are randomized so pre-activations are O(1), the
 *    batch is redrawn until every ReLU pre-activation is >= 5e-4 away from 0,
 *    and a difference whose ReLU on/off pattern (all hidden layers, all rows)
 *    differs from the unperturbed one is skipped and counted: at most 2% + 2
 *    skips for (a) (in practice 0), half the entries for (b) (h = 1e-2
 *    crosses kinks often under batch norm). Dropout is 0; batch norm runs
 *    in train mode (deterministic per batch).
 * 2. The float forward against the double reference forward written here
 *    from the papers' equations (parameters looked up by name and shape),
 *    in train and inference mode; the model's loss sums against the
 *    reference loss.
 * 3. Structure: stable, unique parameter names and shapes, the block layout,
 *    fused groups' adjacency over a grid of configurations, FLOPs against
 *    hand-computed MMoE and Shared-Bottom cases, predictions in (0, 1),
 *    ESMM's pCTCVR == pCTR * pCVR, deterministic inference that touches no
 *    parameter or buffer, row independence of inference, gradient
 *    accumulation over backward calls, configuration errors.
 * 4. The gate statistics (metrics.h) against the reference's gates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/embedding.h"
#include "mtl/metrics.h"
#include "mtl/model.h"
#include "test_models.h"
#include "test_util.h"

#define REL_FLOOR 1e-3
#define GRAD_TOL 1e-3
#define FD_H_REF 1e-4
#define KINK_MARGIN 5e-4
#define REL_FLOOR_FLOAT 1e-2
#define GRAD_TOL_FLOAT 2e-2
#define FD_H_FLOAT 1e-2
#define MAX_KINK_FRACTION 0.02
#define FWD_TOL 1e-4 /* float forward vs the double reference, relative, floor 1e-3 */
#define BN_EPS 1e-3  /* Keras' BatchNormalization default, as model.c */

/* ------------------------------------------------------------------------ */
/* configurations                                                           */

typedef struct {
    const char *label;
    int kind;
    int T;
    int regression; /* bit t: task t is regression */
    int B, max_batch;
    int batch_norm;
    int gate_layers;   /* gate_units: 0 or 1 hidden layer ([5]) */
    int expert_layers; /* expert_units: [6] or [6, 5] */
    int uncertainty;
    int num_levels;
    int nan_labels; /* some labels missing */
    int weights;    /* random sample weights (else 1) */
    int loss_weights;
    int activation;          /* mtl_activation of the hidden layers */
    const char *tower_units; /* per-task lists ("4/3,2"), else [4] for every task */
    const char *gate_units;  /* per-task gate lists, else gate_layers */
    const char *task_order;  /* aitm: --task-order */
    int multi;               /* two multi-valued fields: sum (vocab 4) and mean (vocab 5) pooling */
} model_case;

/* the configuration of the model under test (the calibrator's order and
 * weight for the reference objective) */
static const mtl_config *ref_cfg;

static void small_shape(mtl_data_shape *sh, int T, int regression) {
    memset(sh, 0, sizeof *sh);
    sh->S = 3;
    sh->vocab_sizes[0] = 5;
    sh->vocab_sizes[1] = 6;
    sh->vocab_sizes[2] = 7;
    sh->D = 4;
    sh->T = T;
    for (int t = 0; t < T; t++) {
        snprintf(sh->task_names[t], sizeof sh->task_names[t], "task%d", t);
        sh->task_regression[t] = (regression >> t) & 1;
    }
}

static void small_config(mtl_config *cfg, const model_case *c) {
    mtl_config_defaults(cfg);
    cfg->model = model_of(c->kind);
    cfg->embedding_dim = 3;
    cfg->bottom_units.n = 1;
    cfg->bottom_units.units[0] = 6;
    cfg->tower_units = every_task((mtl_units){1, {4}});
    cfg->expert_units.n = c->expert_layers > 1 ? 2 : 1;
    cfg->expert_units.units[0] = 6;
    cfg->expert_units.units[1] = 5;
    cfg->gate_units = every_task((mtl_units){c->gate_layers, {5}});
    cfg->num_experts = 3;
    cfg->num_experts_specific = 1;
    cfg->num_experts_shared = 2;
    cfg->num_levels = c->num_levels > 0 ? c->num_levels : 2;
    cfg->batch_norm = c->batch_norm;
    cfg->dropout = 0.0f;
    cfg->loss_uncertainty = c->uncertainty;
    cfg->seed = 7;
    if (c->loss_weights) {
        cfg->n_loss_weights = c->T;
        for (int t = 0; t < c->T; t++) cfg->loss_weights[t] = 0.6f + 0.35f * (float)t;
    }
    /* ESMM: the label columns in the "wrong" order, so a mix-up of task
     * index and label column shows */
    strcpy(cfg->ctr_task, "task1");
    strcpy(cfg->ctcvr_task, "task0");
    cfg->activation = c->activation;
    mtl_error err = {{0}};
    if (c->tower_units)
        assert_int_equal(mtl_config_set(cfg, "tower_units", c->tower_units, "test", &err), MTL_OK);
    if (c->gate_units)
        assert_int_equal(mtl_config_set(cfg, "gate_units", c->gate_units, "test", &err), MTL_OK);
    if (c->task_order) snprintf(cfg->task_order, sizeof cfg->task_order, "%s", c->task_order);
    cfg->aitm_calibration_weight = 0.6f;
}

/* AITM: the task columns first to last (cfg's task order, else /labels') */
static void aitm_order(const mtl_model *m, const mtl_config *cfg, int *order) {
    for (int t = 0; t < m->T; t++) order[t] = t;
    const char *s = cfg->task_order;
    for (int i = 0; *s && i < m->T; i++) {
        size_t len = strcspn(s, ",");
        for (int t = 0; t < m->T; t++)
            if (strlen(m->shape.task_names[t]) == len && !strncmp(m->shape.task_names[t], s, len))
                order[i] = t;
        s += len + (s[len] == ',');
    }
}

static mtl_model *make_model(const model_case *c, mtl_config *cfg) {
    mtl_data_shape sh;
    small_shape(&sh, c->T, c->regression);
    if (c->multi) {
        sh.M = 2;
        sh.multi_vocab_sizes[0] = 4;
        sh.multi_vocab_sizes[1] = 5;
        sh.multi_mean[1] = 1;
    }
    small_config(cfg, c);
    ref_cfg = cfg;
    mtl_model *m = NULL;
    mtl_error err = {{0}};
    if (mtl_model_create(&m, cfg, &sh, c->max_batch ? c->max_batch : c->B, &err) != MTL_OK) {
        print_error("%s: mtl_model_create failed: %s\n", c->label, err.msg);
        fail();
    }
    return m;
}

/* Parameters with O(1) pre-activations: Glorot weights as initialized, but
 * embeddings, biases, batch-norm parameters and log-variances made nonzero
 * (their initial zeros/ones would hide index or sign errors). */
static void randomize_params(mtl_model *m, uint64_t seed) {
    mtl_rng rng;
    mtl_rng_seed(&rng, seed);
    for (int i = 0; i < m->params.n; i++) {
        const mtl_tensor *t = &m->params.tensors[i];
        float *v = m->params.values + t->offset;
        for (size_t k = 0; k < t->size; k++) {
            float u = 2.0f * mtl_rng_uniform(&rng) - 1.0f; /* [-1, 1) */
            if (t->is_embedding)
                v[k] = 0.8f * u;
            else if (strstr(t->name, ".gamma"))
                v[k] = 1.0f + 0.3f * u;
            else if (strstr(t->name, ".bias") || strstr(t->name, ".beta"))
                v[k] = 0.2f * u;
            else if (strcmp(t->name, "loss.log_var") == 0)
                v[k] = 0.3f * u;
            else
                v[k] *= 1.3f;
        }
    }
    mtl_params_changed(&m->params);
    for (int i = 0; i < m->buffers.n; i++) {
        const mtl_tensor *t = &m->buffers.tensors[i];
        float *v = m->buffers.values + t->offset;
        int var = strstr(t->name, "running_var") != NULL;
        for (size_t k = 0; k < t->size; k++) {
            float u = mtl_rng_uniform(&rng);
            v[k] = var ? 0.5f + u : 0.4f * (2.0f * u - 1.0f);
        }
    }
}

static void fill_batch(mtl_batch *b, const mtl_model *m, const model_case *c, uint64_t seed) {
    mtl_error err = {{0}};
    const mtl_data_shape *sh = &m->shape;
    assert_int_equal(mtl_batch_alloc(b, c->B, sh->S, sh->D, sh->T, &err), MTL_OK);
    mtl_rng rng;
    mtl_rng_seed(&rng, seed);
    b->n = c->B;
    for (int i = 0; i < c->B; i++) {
        for (int s = 0; s < sh->S; s++)
            b->sparse[i * sh->S + s] = (int32_t)mtl_rng_below(&rng, (uint64_t)sh->vocab_sizes[s]);
        for (int d = 0; d < sh->D; d++)
            b->dense[i * sh->D + d] = 2.0f * mtl_rng_uniform(&rng) - 1.0f;
        for (int t = 0; t < sh->T; t++) {
            float y = sh->task_regression[t] ? (float)mtl_rng_normal(&rng)
                                             : (float)(mtl_rng_uniform(&rng) < 0.4f);
            /* missing labels: about 1 in 4, but never all of a task in a
             * batch of more than one row (row 0 always labelled) */
            if (c->nan_labels &&
                (c->B == 1 ? t == sh->T - 1 : i > 0 && mtl_rng_uniform(&rng) < 0.25f))
                y = NAN;
            b->labels[i * sh->T + t] = y;
            /* per-task weights ([N, T] /weights), some 0 (the row is out of
             * that task's loss; row 0 keeps every task's count above 0) */
            float w = 0.5f + 1.5f * mtl_rng_uniform(&rng);
            if (i > 0 && mtl_rng_uniform(&rng) < 0.15f) w = 0.0f;
            b->weights[i * sh->T + t] = c->weights ? w : 1.0f;
        }
    }
    /* lists of 0..3 ids (row 0's empty, row 1's with a repeated id) */
    assert_int_equal(mtl_batch_alloc_multi(b, sh->M, &err), MTL_OK);
    for (int j = 0; j < sh->M; j++) {
        int32_t *o = b->multi_off + (size_t)j * (size_t)b->multi_ld;
        b->multi_cap[j] = 3 * (int64_t)c->B;
        b->multi_ids[j] = malloc((size_t)b->multi_cap[j] * sizeof(int32_t));
        assert_non_null(b->multi_ids[j]);
        for (int i = 0; i < c->B; i++) {
            int n = i == 0 ? 0 : i == 1 ? 3 : (int)mtl_rng_below(&rng, 4);
            for (int k = 0; k < n; k++)
                b->multi_ids[j][o[i] + k] =
                    (int32_t)mtl_rng_below(&rng, (uint64_t)sh->multi_vocab_sizes[j]);
            if (i == 1) b->multi_ids[j][o[i] + 2] = b->multi_ids[j][o[i]];
            o[i + 1] = o[i] + n;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the reference objective (double, from the model's float logits)          */

static double bce_logit(double z, double y) {
    return fmax(z, 0.0) - z * y + log1p(exp(-fabs(z)));
}
static double sigmoid(double z) {
    return 1.0 / (1.0 + exp(-z));
}

/* Per-task loss sums (label columns) and the total objective L. z: [B x T]
 * logits in double. */
static double ref_objective(const mtl_model *m, const double *z, const mtl_batch *b,
                            const double *count, double *loss_sum) {
    int T = m->T, B = b->n;
    double ls[MTL_MAX_TASKS] = {0};
    for (int i = 0; i < B; i++) {
        const float *w = b->weights + (size_t)i * (size_t)b->T;
        const float *y = b->labels + (size_t)i * (size_t)b->T;
        if (m->desc == model_of(K_ESMM)) {
            /* the click task is scored by pCTR (column 0) */
            int ctr = mtl_model_prediction_of_task(m, 0) == 0 ? 0 : 1, ctcvr = 1 - ctr;
            if (!isnan(y[ctr])) ls[ctr] += w[ctr] * bce_logit(z[i * 2], y[ctr]);
            if (!isnan(y[ctcvr])) {
                double p = sigmoid(z[i * 2]) * sigmoid(z[i * 2 + 1]);
                p = fmin(fmax(p, 1e-7), 1.0 - 1e-7);
                ls[ctcvr] += -w[ctcvr] * (y[ctcvr] * log(p) + (1.0 - y[ctcvr]) * log1p(-p));
            }
            continue;
        }
        for (int t = 0; t < T; t++) {
            if (isnan(y[t])) continue;
            double zt = z[i * T + t];
            ls[t] += w[t] * (m->shape.task_regression[t] ? (zt - y[t]) * (zt - y[t])
                                                         : bce_logit(zt, y[t]));
        }
    }
    /* AITM's calibrator (Xi et al. 2021, eq. 6-7): alpha * max(p_t - p_{t-1}, 0)
     * per row labelled for task t, weighted, over task t's count */
    double calib = 0.0;
    if (kind_of(m) == K_AITM) {
        int order[MTL_MAX_TASKS];
        aitm_order(m, ref_cfg, order);
        for (int k = 1; k < T; k++) {
            int t = order[k], prev = order[k - 1];
            if (count[t] <= 0) continue;
            double sum = 0;
            for (int i = 0; i < B; i++)
                if (!isnan(b->labels[(size_t)i * (size_t)b->T + (size_t)t]))
                    sum += b->weights[(size_t)i * (size_t)b->T + (size_t)t] *
                           fmax(sigmoid(z[i * T + t]) - sigmoid(z[i * T + prev]), 0);
            calib += ref_cfg->aitm_calibration_weight * sum / count[t];
        }
    }
    const float *log_var = m->log_var >= 0 ? mtl_params_value(&m->params, m->log_var) : NULL;
    double L = calib;
    for (int t = 0; t < T; t++) {
        if (loss_sum) loss_sum[t] = ls[t];
        if (count[t] <= 0) continue; /* as mtl_model_loss: no term at all */
        double f = 1.0;
        if (log_var) f = (m->shape.task_regression[t] ? 0.5 : 1.0) * exp(-(double)log_var[t]);
        L += (double)m->loss_weights[t] * f * ls[t] / count[t];
        if (log_var) L += 0.5 * (double)log_var[t];
    }
    return L;
}

static double model_objective(mtl_model *m, const mtl_batch *b, const double *count) {
    mtl_model_forward(m, b, 1);
    double z[64 * MTL_MAX_TASKS];
    int T = m->T;
    assert_true(b->n <= 64);
    const float *lg = m->act + m->logits;
    for (int i = 0; i < b->n * T; i++) z[i] = lg[i];
    return ref_objective(m, z, b, count, NULL);
}

/* ReLU on/off pattern of every hidden layer over the batch, after forward. */
static size_t relu_pattern(const mtl_model *m, int B, unsigned char *out, size_t cap) {
    size_t n = 0;
    for (int s = 0; s < m->n_stacks; s++) {
        const mtl_stack *st = &m->stacks[s];
        for (int l = 0; l < st->n; l++) {
            const mtl_layer *L = &st->layer[l];
            if (!L->hidden) continue;
            for (int i = 0; i < B; i++)
                for (int j = 0; j < L->out_dim; j++) {
                    assert_true(n < cap);
                    out[n++] = m->act[L->z + (size_t)i * (size_t)L->ld + (size_t)j] > 0.0f;
                }
        }
    }
    if (kind_of(m) == K_AITM) { /* the calibrator's kink (see ref_aitm) */
        int order[MTL_MAX_TASKS], T = m->T;
        aitm_order(m, ref_cfg, order);
        const float *p = m->act + m->preds;
        for (int i = 1; i < T; i++)
            for (int r = 0; r < B; r++) {
                assert_true(n < cap);
                out[n++] = p[r * T + order[i]] > p[r * T + order[i - 1]];
            }
    }
    return n;
}

/* Case c's model with randomized parameters (seed) and a batch (seed + 1000). */
static mtl_model *make_case(const model_case *c, mtl_config *cfg, mtl_batch *b, uint64_t seed) {
    mtl_model *m = make_model(c, cfg);
    randomize_params(m, seed);
    fill_batch(b, m, c, seed + 1000);
    return m;
}

/* ------------------------------------------------------------------------ */
/* the reference forward: double, from the papers' equations, parameters
 * looked up by name (so it also pins names and shapes)                     */

#define REF_MAX_BUFS 512
static double *ref_bufs[REF_MAX_BUFS];
static int ref_nbufs;

/* When set, ref_dnn records every ReLU's on/off state (kink detection). */
#define REF_PAT_CAP (1u << 16)
static unsigned char *ref_pat;
static size_t ref_npat;
static double ref_min_abs; /* smallest |pre-activation| of a ReLU */

static double *ref_new(size_t n) {
    assert_true(ref_nbufs < REF_MAX_BUFS);
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    ref_bufs[ref_nbufs++] = p;
    return p;
}
static void ref_free_all(void) {
    for (int i = 0; i < ref_nbufs; i++) free(ref_bufs[i]);
    ref_nbufs = 0;
}

static const float *ref_tensor(const mtl_params *p, const char *name, int64_t rows, int64_t cols) {
    int i = mtl_params_find(p, name);
    if (i < 0) {
        print_error("tensor %s not found\n", name);
        fail();
    }
    const mtl_tensor *t = &p->tensors[i];
    if (t->rows != rows || t->cols != cols) {
        print_error("tensor %s is [%lld x %lld], expected [%lld x %lld]\n", name,
                    (long long)t->rows, (long long)t->cols, (long long)rows, (long long)cols);
        fail();
    }
    return mtl_params_value(p, i);
}

typedef struct {
    const mtl_model *m;
    int B, train;
} ref_ctx;

/* A DNN: hidden layers (dense + bias, [BN], ReLU), optional linear head. */
static double *ref_dnn(const ref_ctx *c, const char *name, const double *x, int in,
                       const mtl_units *hidden, int head) {
    int B = c->B;
    char key[160];
    const double *cur = x;
    for (int l = 0; l < hidden->n + (head > 0); l++) {
        int is_hidden = l < hidden->n, out = is_hidden ? hidden->units[l] : head;
        if (is_hidden)
            snprintf(key, sizeof key, "%s.dense%d.weight", name, l);
        else
            snprintf(key, sizeof key, "%s.out.weight", name);
        const float *W = ref_tensor(&c->m->params, key, out, in);
        const float *bias = NULL;
        if (is_hidden) {
            snprintf(key, sizeof key, "%s.dense%d.bias", name, l);
            bias = ref_tensor(&c->m->params, key, 1, out);
        } else if (strncmp(name, "towers.", 7) == 0) { /* the task's scalar logit bias */
            snprintf(key, sizeof key, "%s.out.bias", name);
            bias = ref_tensor(&c->m->params, key, 1, 1);
        }
        double *y = ref_new((size_t)B * (size_t)out);
        for (int i = 0; i < B; i++)
            for (int o = 0; o < out; o++) {
                double s = bias ? bias[o] : 0.0;
                for (int k = 0; k < in; k++) s += (double)W[o * in + k] * cur[i * in + k];
                y[i * out + o] = s;
            }
        if (is_hidden && c->m->batch_norm) {
            snprintf(key, sizeof key, "%s.bn%d.gamma", name, l);
            const float *g = ref_tensor(&c->m->params, key, 1, out);
            snprintf(key, sizeof key, "%s.bn%d.beta", name, l);
            const float *be = ref_tensor(&c->m->params, key, 1, out);
            snprintf(key, sizeof key, "%s.bn%d.running_mean", name, l);
            const float *rm = ref_tensor(&c->m->buffers, key, 1, out);
            snprintf(key, sizeof key, "%s.bn%d.running_var", name, l);
            const float *rv = ref_tensor(&c->m->buffers, key, 1, out);
            for (int o = 0; o < out; o++) {
                double mean = rm[o], var = rv[o];
                if (c->train) {
                    mean = var = 0.0;
                    for (int i = 0; i < B; i++) mean += y[i * out + o];
                    mean /= B;
                    for (int i = 0; i < B; i++)
                        var += (y[i * out + o] - mean) * (y[i * out + o] - mean);
                    var /= B;
                }
                for (int i = 0; i < B; i++)
                    y[i * out + o] = g[o] * (y[i * out + o] - mean) / sqrt(var + BN_EPS) + be[o];
            }
        }
        if (is_hidden)
            for (int i = 0; i < B * out; i++) {
                if (ref_cfg->activation == MTL_ACT_TANH) {
                    y[i] = tanh(y[i]);
                    continue;
                }
                if (ref_cfg->activation == MTL_ACT_SIGMOID) {
                    y[i] = sigmoid(y[i]);
                    continue;
                }
                if (ref_pat) {
                    assert_true(ref_npat < REF_PAT_CAP);
                    ref_pat[ref_npat++] = y[i] > 0.0;
                    ref_min_abs = fmin(ref_min_abs, fabs(y[i]));
                }
                y[i] = fmax(y[i], 0.0);
            }
        cur = y;
        in = out;
    }
    return (double *)cur;
}

/* When set (test_gate_stats), ref_experts records each gate's name, mean
 * weights and mean entropy over the batch, in the order the gates mix. */
#define REF_MAX_GATES 32
typedef struct {
    int n;
    char name[REF_MAX_GATES][96];
    int K[REF_MAX_GATES];
    double mean[REF_MAX_GATES][64], entropy[REF_MAX_GATES];
} ref_gates;
static ref_gates *ref_gate_sink;

static void ref_record_gate(const char *name, const double *g, int B, int K) {
    ref_gates *r = ref_gate_sink;
    if (!r) return;
    assert_true(r->n < REF_MAX_GATES && K <= 64);
    snprintf(r->name[r->n], sizeof r->name[r->n], "%s", name);
    r->K[r->n] = K;
    double h = 0.0;
    for (int k = 0; k < K; k++) r->mean[r->n][k] = 0.0;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) {
            double w = g[i * K + k];
            r->mean[r->n][k] += w / B;
            if (w > 0) h -= w * log(w) / B;
        }
    r->entropy[r->n++] = h;
}

static void ref_softmax(double *g, int B, int K) {
    for (int i = 0; i < B; i++) {
        double mx = g[i * K], s = 0;
        for (int k = 1; k < K; k++) mx = fmax(mx, g[i * K + k]);
        for (int k = 0; k < K; k++) s += (g[i * K + k] = exp(g[i * K + k] - mx));
        for (int k = 0; k < K; k++) g[i * K + k] /= s;
    }
}

static double *ref_mix(const ref_ctx *c, const double *gate, double *const *experts, int K, int D) {
    double *y = ref_new((size_t)c->B * (size_t)D);
    for (int i = 0; i < c->B; i++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < D; j++) y[i * D + j] += gate[i * K + k] * experts[k][i * D + j];
    return y;
}

/* CGC / PLE (Tang et al. 2020, eq. 1-5) and MMoE (shared experts only). */
static void ref_experts(const ref_ctx *c, const mtl_config *cfg, const double *x, int levels,
                        int nspec, int nshared, double *logits) {
    const mtl_model *m = c->m;
    int T = m->T, B = c->B, in = m->in_dim;
    int width = cfg->expert_units.units[cfg->expert_units.n - 1];
    const double *task_in[MTL_MAX_TASKS], *shared_in = x;
    for (int t = 0; t < T; t++) task_in[t] = x;
    char lp[32], name[128];
    for (int l = 0; l < levels; l++) {
        if (levels > 1)
            snprintf(lp, sizeof lp, "levels.%d.", l);
        else
            lp[0] = '\0';
        double *spec[MTL_MAX_TASKS][8], *shared[8], *all[64];
        int E = 0;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < nspec; k++) {
                snprintf(name, sizeof name, "%sexperts.task%d.%d", lp, t, k);
                all[E++] = spec[t][k] = ref_dnn(c, name, task_in[t], in, &cfg->expert_units, 0);
            }
        for (int k = 0; k < nshared; k++) {
            snprintf(name, sizeof name, nspec ? "%sexperts.shared.%d" : "%sexperts.%d", lp, k);
            all[E++] = shared[k] = ref_dnn(c, name, shared_in, in, &cfg->expert_units, 0);
        }
        const double *next_task[MTL_MAX_TASKS], *next_shared = NULL;
        for (int t = 0; t < T; t++) {
            snprintf(name, sizeof name, "%sgates.%d", lp, t);
            int K = nspec + nshared;
            double *g = ref_dnn(c, name, task_in[t], in, mtl_task_units_at(&cfg->gate_units, t), K);
            ref_softmax(g, B, K);
            snprintf(name, sizeof name, "%s%s", lp, m->shape.task_names[t]);
            ref_record_gate(name, g, B, K);
            double *ex[64];
            int n = 0;
            for (int k = 0; k < nspec; k++) ex[n++] = spec[t][k];
            for (int k = 0; k < nshared; k++) ex[n++] = shared[k];
            next_task[t] = ref_mix(c, g, ex, K, width);
        }
        if (l < levels - 1) {
            snprintf(name, sizeof name, "%sgates.shared", lp);
            double *g = ref_dnn(c, name, shared_in, in,
                                &cfg->gate_units.list[cfg->gate_units.n_lists == T + 1 ? T : 0], E);
            ref_softmax(g, B, E);
            snprintf(name, sizeof name, "%sshared", lp);
            ref_record_gate(name, g, B, E);
            next_shared = ref_mix(c, g, all, E, width);
        }
        for (int t = 0; t < T; t++) task_in[t] = next_task[t];
        shared_in = next_shared;
        in = width;
    }
    for (int t = 0; t < T; t++) {
        snprintf(name, sizeof name, "towers.%d", t);
        double *z = ref_dnn(c, name, task_in[t], width, mtl_task_units_at(&cfg->tower_units, t), 1);
        for (int i = 0; i < B; i++) logits[i * T + t] = z[i];
    }
}

/* AITM (Xi et al. 2021, sec. 3.1-3.2): towers q_t, then for each later step
 * p = g(z_prev) (one hidden layer), attention over {p, q_t} with the
 * bias-free projections h1 | h2 | h3 = rows of aitm.attention.T.out.weight,
 * z_t = sum_u softmax_u(<h2 u, h3 u> / sqrt(k)) h1 u; logit = towers.T head. */
static void ref_aitm(const ref_ctx *c, const mtl_config *cfg, const double *x, double *logits) {
    const mtl_model *m = c->m;
    int T = m->T, B = c->B, order[MTL_MAX_TASKS], k_prev = 0;
    aitm_order(m, cfg, order);
    const double *z_prev = NULL;
    char name[96];
    for (int i = 0; i < T; i++) {
        int t = order[i];
        const mtl_units *u = mtl_task_units_at(&cfg->tower_units, t);
        int k = u->units[u->n - 1];
        snprintf(name, sizeof name, "towers.%d", t);
        double *z = ref_dnn(c, name, x, m->in_dim, u, 0);
        if (i > 0) {
            snprintf(name, sizeof name, "aitm.transfer.%d", t);
            double *p = ref_dnn(c, name, z_prev, k_prev, &(mtl_units){1, {k}}, 0);
            snprintf(name, sizeof name, "aitm.attention.%d.out.weight", t);
            const float *W = ref_tensor(&m->params, name, 3 * k, k);
            double *out = ref_new((size_t)B * (size_t)k);
            for (int r = 0; r < B; r++) {
                const double *cand[2] = {p + r * k, z + r * k};
                double proj[2][3][64], a[2];
                assert_true(k <= 64);
                for (int v = 0; v < 2; v++) {
                    for (int h = 0; h < 3; h++)
                        for (int o = 0; o < k; o++) {
                            double acc = 0;
                            for (int j = 0; j < k; j++)
                                acc += (double)W[(h * k + o) * k + j] * cand[v][j];
                            proj[v][h][o] = acc;
                        }
                    a[v] = 0;
                    for (int o = 0; o < k; o++) a[v] += proj[v][1][o] * proj[v][2][o];
                    a[v] /= sqrt((double)k);
                }
                double mx = fmax(a[0], a[1]), w0 = exp(a[0] - mx), w1 = exp(a[1] - mx);
                double sum = w0 + w1;
                for (int o = 0; o < k; o++)
                    out[r * k + o] = (w0 * proj[0][0][o] + w1 * proj[1][0][o]) / sum;
            }
            z = out;
        }
        snprintf(name, sizeof name, "towers.%d", t);
        double *lg = ref_dnn(c, name, z, k, &(mtl_units){0, {0}}, 1);
        for (int r = 0; r < B; r++) logits[r * T + t] = lg[r];
        z_prev = z;
        k_prev = k;
    }
    /* the calibrator's max(p_t - p_{t-1}, 0) has a kink too: record it as ReLU's */
    for (int i = 1; ref_pat && i < T; i++)
        for (int r = 0; r < B; r++) {
            double d = sigmoid(logits[r * T + order[i]]) - sigmoid(logits[r * T + order[i - 1]]);
            assert_true(ref_npat < REF_PAT_CAP);
            ref_pat[ref_npat++] = d > 0;
            ref_min_abs = fmin(ref_min_abs, fabs(d));
        }
}

/* logits [B x T] of the model's architecture, in double */
static void ref_forward(const mtl_model *m, const mtl_config *cfg, const mtl_batch *b, int train,
                        double *logits) {
    ref_ctx c = {m, b->n, train};
    int B = b->n, in = m->in_dim, E = m->embedding_dim, T = m->T;
    int S = m->shape.S, M = m->shape.M;
    assert_int_equal(in, (S + M) * E + m->shape.D);
    double *x = ref_new((size_t)B * (size_t)in);
    for (int i = 0; i < B; i++) {
        for (int s = 0; s < m->shape.S; s++) {
            char key[32];
            snprintf(key, sizeof key, "embeddings.%d", s);
            const float *tab = ref_tensor(&m->params, key, m->shape.vocab_sizes[s], E);
            for (int j = 0; j < E; j++)
                x[i * in + s * E + j] = tab[b->sparse[i * b->S + s] * E + j];
        }
        /* a multi-valued field: the sum or mean of its list's rows, 0 if empty */
        for (int j = 0; j < M; j++) {
            char key[32];
            snprintf(key, sizeof key, "embeddings.%d", S + j);
            const float *tab = ref_tensor(&m->params, key, m->shape.multi_vocab_sizes[j], E);
            const int32_t *o = b->multi_off + (size_t)j * (size_t)b->multi_ld;
            for (int e = 0; e < E; e++) {
                double sum = 0;
                for (int k = o[i]; k < o[i + 1]; k++) sum += tab[b->multi_ids[j][k] * E + e];
                int n = o[i + 1] - o[i];
                x[i * in + (S + j) * E + e] = m->shape.multi_mean[j] && n > 0 ? sum / n : sum;
            }
        }
        for (int d = 0; d < m->shape.D; d++) x[i * in + (S + M) * E + d] = b->dense[i * b->D + d];
    }
    switch (kind_of(m)) {
    case K_SHARED_BOTTOM: {
        double *h = ref_dnn(&c, "bottom", x, in, &cfg->bottom_units, 0);
        int w = cfg->bottom_units.units[cfg->bottom_units.n - 1];
        for (int t = 0; t < T; t++) {
            char name[32];
            snprintf(name, sizeof name, "towers.%d", t);
            double *z = ref_dnn(&c, name, h, w, mtl_task_units_at(&cfg->tower_units, t), 1);
            for (int i = 0; i < B; i++) logits[i * T + t] = z[i];
        }
        break;
    }
    case K_ESMM: {
        double *zc = ref_dnn(&c, "towers.ctr", x, in, mtl_task_units_at(&cfg->tower_units, 0), 1);
        double *zv = ref_dnn(&c, "towers.cvr", x, in, mtl_task_units_at(&cfg->tower_units, 1), 1);
        for (int i = 0; i < B; i++) {
            logits[i * 2] = zc[i];
            logits[i * 2 + 1] = zv[i];
        }
        break;
    }
    case K_MMOE:
        ref_experts(&c, cfg, x, 1, 0, cfg->num_experts, logits);
        break;
    case K_CGC:
        ref_experts(&c, cfg, x, 1, cfg->num_experts_specific, cfg->num_experts_shared, logits);
        break;
    case K_PLE:
        ref_experts(&c, cfg, x, cfg->num_levels, cfg->num_experts_specific, cfg->num_experts_shared,
                    logits);
        break;
    case K_AITM:
        ref_aitm(&c, cfg, x, logits);
        break;
    }
    ref_free_all();
}

/* ------------------------------------------------------------------------ */
/* gradient check                                                           */

#define PATTERN_CAP (1u << 16)

typedef struct {
    double max_rel;       /* analytic vs finite differences of the double reference */
    double max_rel_float; /* analytic vs finite differences of the model's float forward */
    char worst[128], worst_float[128];
    int checked, kinks, kinks_float, tries;
} grad_report;

/* The objective of the double reference forward (train mode), and its ReLU
 * pattern into pat (n_pat entries). */
static double ref_objective_at(const mtl_model *m, const mtl_config *cfg, const mtl_batch *b,
                               const double *count, unsigned char *pat, size_t *n_pat) {
    double z[64 * MTL_MAX_TASKS];
    ref_pat = pat;
    ref_npat = 0;
    ref_min_abs = INFINITY;
    ref_forward(m, cfg, b, 1, z);
    *n_pat = ref_npat;
    ref_pat = NULL;
    return ref_objective(m, z, b, count, NULL);
}

/* Richardson extrapolation of central differences at h and h/2 of a
 * parameter p: (4 D(h/2) - D(h)) / 3, error O(h^4). The step actually taken
 * is (float)(p0 +- h) - p0, exact in double. *kink: some ReLU switched. */
static double fd_ref(const mtl_model *m, const mtl_config *cfg, const mtl_batch *b,
                     const double *count, float *p, double h, const unsigned char *base,
                     size_t nbase, unsigned char *pat, int *kink) {
    float p0 = *p;
    double d[2];
    for (int s = 0; s < 2; s++) {
        double hs = s ? h / 2 : h;
        float pp = (float)(p0 + hs), pm = (float)(p0 - hs);
        size_t n;
        *p = pp;
        double Lp = ref_objective_at(m, cfg, b, count, pat, &n);
        *kink |= n != nbase || memcmp(pat, base, n);
        *p = pm;
        double Lm = ref_objective_at(m, cfg, b, count, pat, &n);
        *kink |= n != nbase || memcmp(pat, base, n);
        d[s] = (Lp - Lm) / ((double)pp - (double)pm);
    }
    *p = p0;
    return (4.0 * d[1] - d[0]) / 3.0;
}

static double fd_float(mtl_model *m, const mtl_batch *b, const double *count, float *p, double h,
                       const unsigned char *base, size_t nbase, unsigned char *pat, int *kink) {
    float p0 = *p;
    double d[2];
    for (int s = 0; s < 2; s++) {
        double hs = s ? h / 2 : h;
        float pp = (float)(p0 + hs), pm = (float)(p0 - hs);
        *p = pp;
        mtl_params_changed(&m->params);
        double Lp = model_objective(m, b, count);
        size_t n = relu_pattern(m, b->n, pat, PATTERN_CAP);
        *kink |= n != nbase || memcmp(pat, base, n);
        *p = pm;
        mtl_params_changed(&m->params);
        double Lm = model_objective(m, b, count);
        n = relu_pattern(m, b->n, pat, PATTERN_CAP);
        *kink |= n != nbase || memcmp(pat, base, n);
        d[s] = (Lp - Lm) / ((double)pp - (double)pm);
    }
    *p = p0;
    mtl_params_changed(&m->params);
    return (4.0 * d[1] - d[0]) / 3.0;
}

static void gradient_check(const model_case *c, grad_report *rep) {
    memset(rep, 0, sizeof *rep);
    mtl_config cfg;
    mtl_model *m = make_model(c, &cfg);
    randomize_params(m, 1000 + (uint64_t)c->kind);
    unsigned char *base = malloc(PATTERN_CAP), *pat = malloc(PATTERN_CAP);
    unsigned char *rbase = malloc(REF_PAT_CAP), *rpat = malloc(REF_PAT_CAP);
    assert_true(base && pat && rbase && rpat);
    double count[MTL_MAX_TASKS], loss_sum[MTL_MAX_TASKS], ref_sum[MTL_MAX_TASKS];

    /* a batch whose ReLU pre-activations all stay KINK_MARGIN away from 0 */
    mtl_batch b;
    size_t nrpat = 0;
    int tries = 0;
    for (;; tries++) {
        assert_true(tries < 1000);
        fill_batch(&b, m, c, 2000 + 7919 * (uint64_t)tries + (uint64_t)c->B);
        mtl_model_count_labels(m, &b, count);
        (void)ref_objective_at(m, &cfg, &b, count, rbase, &nrpat);
        if (ref_min_abs >= KINK_MARGIN) break;
        mtl_batch_free(&b);
    }
    rep->tries = tries + 1;

    /* the analytic gradient, as the trainer computes it */
    mtl_model_forward(m, &b, 1);
    mtl_model_count_labels(m, &b, count);
    for (int t = 0; t < m->T; t++) {
        double want = 0;
        for (int i = 0; i < b.n; i++) /* the labelled rows' summed weight */
            if (!isnan(b.labels[i * b.T + t])) want += b.weights[i * b.T + t];
        assert_true(count[t] == want);
    }
    memset(m->params.grads, 0, m->params.size * sizeof(float));
    mtl_model_loss(m, &b, count, 1, loss_sum);
    mtl_model_backward(m, &b);
    float *analytic = malloc(m->params.size * sizeof(float));
    assert_non_null(analytic);
    memcpy(analytic, m->params.grads, m->params.size * sizeof(float));

    /* the model's loss sums are the reference's */
    double z[64 * MTL_MAX_TASKS];
    for (int i = 0; i < b.n * m->T; i++) z[i] = m->act[m->logits + (size_t)i];
    double L0 = ref_objective(m, z, &b, count, ref_sum);
    assert_true(isfinite(L0));
    for (int t = 0; t < m->T; t++)
        if (rel_err(loss_sum[t], ref_sum[t], 1e-6) > 1e-6) {
            print_error("%s: task %d loss sum %.10g, reference %.10g\n", c->label, t, loss_sum[t],
                        ref_sum[t]);
            fail();
        }

    mtl_model_forward(m, &b, 1);
    size_t npat = relu_pattern(m, b.n, base, PATTERN_CAP);

    for (int ti = 0; ti < m->params.n; ti++) {
        const mtl_tensor *t = &m->params.tensors[ti];
        for (size_t k = 0; k < t->size; k++) {
            float *p = m->params.values + t->offset + k;
            double an = analytic[t->offset + k];
            int kink = 0, kink_f = 0;
            double fd = fd_ref(m, &cfg, &b, count, p, FD_H_REF, rbase, nrpat, rpat, &kink);
            double fdf = fd_float(m, &b, count, p, FD_H_FLOAT, base, npat, pat, &kink_f);
            rep->checked++;
            rep->kinks += kink;
            rep->kinks_float += kink_f;
            if (!kink) {
                double e = rel_err(an, fd, REL_FLOOR);
                if (e > rep->max_rel) {
                    rep->max_rel = e;
                    snprintf(rep->worst, sizeof rep->worst, "%s[%zu]", t->name, k);
                }
                if (e > GRAD_TOL) {
                    print_error("%s: d L / d %s[%zu]: analytic %.8g, finite differences of the "
                                "double reference %.8g (relative error %.3g > %g)\n",
                                c->label, t->name, k, an, fd, e, GRAD_TOL);
                    fail();
                }
                /* embedding rows no sample uses: exactly zero gradient */
                if (t->is_embedding && fd == 0.0 && an != 0.0) {
                    print_error("%s: %s[%zu] unused by the batch has gradient %g\n", c->label,
                                t->name, k, an);
                    fail();
                }
            }
            if (!kink_f) {
                double e = rel_err(an, fdf, REL_FLOOR_FLOAT);
                if (e > rep->max_rel_float) {
                    rep->max_rel_float = e;
                    snprintf(rep->worst_float, sizeof rep->worst_float, "%s[%zu]", t->name, k);
                }
                if (e > GRAD_TOL_FLOAT) {
                    print_error("%s: d L / d %s[%zu]: analytic %.8g, finite differences of the "
                                "float model %.8g (relative error %.3g > %g)\n",
                                c->label, t->name, k, an, fdf, e, GRAD_TOL_FLOAT);
                    fail();
                }
            }
        }
    }
    int max_kinks = (int)(MAX_KINK_FRACTION * rep->checked) + 2;
    if (rep->kinks > max_kinks || rep->kinks_float > rep->checked / 2) {
        print_error("%s: %d (reference) / %d (float) of %d finite differences crossed a ReLU "
                    "kink (at most %d allowed)\n",
                    c->label, rep->kinks, rep->kinks_float, rep->checked, max_kinks);
        fail();
    }
    print_message("  %-32s %4d params  max rel err %.1e (%s)  float fd %.1e (%s)  kinks %d/%d "
                  "batch %d\n",
                  c->label, rep->checked, rep->max_rel, rep->worst, rep->max_rel_float,
                  rep->worst_float, rep->kinks, rep->kinks_float, rep->tries);
    free(base);
    free(pat);
    free(rbase);
    free(rpat);
    free(analytic);
    mtl_batch_free(&b);
    mtl_model_free(m);
}

/* The list of cases. Defaults of each row: experts [6], towers [4],
 * bottom [6], 3 MMoE experts, 1 specific + 2 shared (CGC/PLE), 2 PLE levels. */
static const model_case grad_cases[] = {
    {.label = "shared_bottom T2 B13",
     .kind = K_SHARED_BOTTOM,
     .T = 2,
     .B = 13,
     .max_batch = 16,
     .nan_labels = 1,
     .weights = 1},
    {.label = "shared_bottom T3 reg bn lw",
     .kind = K_SHARED_BOTTOM,
     .T = 3,
     .regression = 4,
     .B = 13,
     .batch_norm = 1,
     .loss_weights = 1,
     .nan_labels = 1},
    {.label = "esmm T2 B13 nan w", .kind = K_ESMM, .T = 2, .B = 13, .nan_labels = 1, .weights = 1},
    {.label = "esmm bn uncertainty lw",
     .kind = K_ESMM,
     .T = 2,
     .B = 13,
     .batch_norm = 1,
     .uncertainty = 1,
     .loss_weights = 1},
    {.label = "mmoe T2 gate-dnn nan w",
     .kind = K_MMOE,
     .T = 2,
     .B = 13,
     .max_batch = 20,
     .gate_layers = 1,
     .nan_labels = 1,
     .weights = 1},
    {.label = "mmoe T1", .kind = K_MMOE, .T = 1, .B = 13},
    {.label = "mmoe T3 reg uncertainty 2-layer",
     .kind = K_MMOE,
     .T = 3,
     .regression = 2,
     .B = 13,
     .uncertainty = 1,
     .expert_layers = 2,
     .weights = 1},
    {.label = "mmoe T2 bn gate-dnn",
     .kind = K_MMOE,
     .T = 2,
     .B = 13,
     .batch_norm = 1,
     .gate_layers = 1},
    {.label = "cgc T2 2-layer bn nan",
     .kind = K_CGC,
     .T = 2,
     .B = 13,
     .batch_norm = 1,
     .expert_layers = 2,
     .nan_labels = 1,
     .weights = 1},
    {.label = "cgc T3 reg uncertainty",
     .kind = K_CGC,
     .T = 3,
     .regression = 1,
     .B = 13,
     .uncertainty = 1,
     .loss_weights = 1},
    {.label = "ple T2 gate-dnn nan w",
     .kind = K_PLE,
     .T = 2,
     .B = 13,
     .gate_layers = 1,
     .nan_labels = 1,
     .weights = 1},
    {.label = "ple T1", .kind = K_PLE, .T = 1, .B = 13},
    {.label = "ple T1 gate-dnn 3 levels",
     .kind = K_PLE,
     .T = 1,
     .B = 13,
     .gate_layers = 1,
     .num_levels = 3},
    {.label = "ple T3 reg unc 2-layer bn 3 lvl",
     .kind = K_PLE,
     .T = 3,
     .regression = 4,
     .B = 13,
     .uncertainty = 1,
     .expert_layers = 2,
     .batch_norm = 1,
     .num_levels = 3,
     .nan_labels = 1,
     .weights = 1},
    {.label = "ple T2 1 level", .kind = K_PLE, .T = 2, .B = 13, .num_levels = 1},
    /* batch size 1 (the last task's label missing: count 0, no gradient) */
    {.label = "shared_bottom B1 nan", .kind = K_SHARED_BOTTOM, .T = 2, .B = 1, .nan_labels = 1},
    {.label = "esmm B1", .kind = K_ESMM, .T = 2, .B = 1, .weights = 1},
    {.label = "mmoe B1 uncertainty nan",
     .kind = K_MMOE,
     .T = 2,
     .B = 1,
     .uncertainty = 1,
     .nan_labels = 1,
     .gate_layers = 1},
    {.label = "cgc B1", .kind = K_CGC, .T = 2, .B = 1, .expert_layers = 2},
    {.label = "ple B1 reg", .kind = K_PLE, .T = 2, .regression = 1, .B = 1, .weights = 1},
    /* per-task towers and gates, and the other activations */
    {.label = "shared_bottom towers 4/3,2 tanh",
     .kind = K_SHARED_BOTTOM,
     .T = 2,
     .B = 13,
     .tower_units = "4/3,2",
     .activation = MTL_ACT_TANH,
     .nan_labels = 1},
    {.label = "esmm towers 3/4,2 sigmoid",
     .kind = K_ESMM,
     .T = 2,
     .B = 13,
     .tower_units = "3/4,2",
     .activation = MTL_ACT_SIGMOID},
    {.label = "mmoe towers/gates per task tanh",
     .kind = K_MMOE,
     .T = 3,
     .B = 13,
     .tower_units = "4/2/3,2",
     .gate_units = "5/none/3",
     .activation = MTL_ACT_TANH,
     .weights = 1},
    {.label = "cgc gates 5/2,3 sigmoid bn",
     .kind = K_CGC,
     .T = 2,
     .B = 13,
     .gate_units = "5/2,3",
     .batch_norm = 1,
     .activation = MTL_ACT_SIGMOID},
    {.label = "ple gates 4/3/2 shared tanh",
     .kind = K_PLE,
     .T = 2,
     .B = 13,
     .gate_units = "4/3/2",
     .tower_units = "3/4",
     .activation = MTL_ACT_TANH},
    /* AITM: calibrator, task order, per-task widths, missing labels, weights */
    {.label = "aitm T2 nan w", .kind = K_AITM, .T = 2, .B = 13, .nan_labels = 1, .weights = 1},
    {.label = "aitm T3 order 2,0,1 towers 4/3,5/2",
     .kind = K_AITM,
     .T = 3,
     .B = 13,
     .tower_units = "4/3,5/2",
     .task_order = "task2,task0,task1",
     .loss_weights = 1},
    {.label = "aitm T2 bn uncertainty tanh",
     .kind = K_AITM,
     .T = 2,
     .B = 13,
     .batch_norm = 1,
     .uncertainty = 1,
     .activation = MTL_ACT_TANH},
    {.label = "aitm T1", .kind = K_AITM, .T = 1, .B = 13},
    {.label = "aitm B1 sigmoid", .kind = K_AITM, .T = 2, .B = 1, .activation = MTL_ACT_SIGMOID},
    /* multi-valued fields (sum and mean pooling, empty lists, repeated ids) */
    {.label = "shared_bottom T2 multi", .kind = K_SHARED_BOTTOM, .T = 2, .B = 13, .multi = 1},
    {.label = "esmm multi w", .kind = K_ESMM, .T = 2, .B = 13, .weights = 1, .multi = 1},
    {.label = "mmoe T2 multi nan", .kind = K_MMOE, .T = 2, .B = 13, .nan_labels = 1, .multi = 1},
    {.label = "cgc T2 multi", .kind = K_CGC, .T = 2, .B = 13, .multi = 1},
    {.label = "ple T2 multi bn", .kind = K_PLE, .T = 2, .B = 13, .batch_norm = 1, .multi = 1},
    {.label = "mmoe B1 multi", .kind = K_MMOE, .T = 2, .B = 1, .multi = 1},
};
#define N_GRAD_CASES (int)(sizeof grad_cases / sizeof grad_cases[0])

static void run_grad_cases(int kind) {
    int ran = 0;
    double worst = 0, worst_f = 0;
    for (int i = 0; i < N_GRAD_CASES; i++) {
        if (grad_cases[i].kind != kind) continue;
        grad_report rep;
        gradient_check(&grad_cases[i], &rep);
        worst = fmax(worst, rep.max_rel);
        worst_f = fmax(worst_f, rep.max_rel_float);
        ran++;
    }
    assert_true(ran >= 3);
    print_message("  %s: max relative error over %d cases %.2e (float-forward differences "
                  "%.2e)\n",
                  model_of(kind)->name, ran, worst, worst_f);
}

static void test_grad_shared_bottom(void **state) {
    (void)state;
    run_grad_cases(K_SHARED_BOTTOM);
}
static void test_grad_esmm(void **state) {
    (void)state;
    run_grad_cases(K_ESMM);
}
static void test_grad_mmoe(void **state) {
    (void)state;
    run_grad_cases(K_MMOE);
}
static void test_grad_cgc(void **state) {
    (void)state;
    run_grad_cases(K_CGC);
}
static void test_grad_ple(void **state) {
    (void)state;
    run_grad_cases(K_PLE);
}
static void test_grad_aitm(void **state) {
    (void)state;
    run_grad_cases(K_AITM);
}

/* Every gradient case's forward (train and inference mode) against the
 * reference; predictions are the sigmoid of binary logits, the logit of
 * regression ones, and ESMM's (pCTR, pCVR, pCTCVR). */
static void test_forward_reference(void **state) {
    (void)state;
    double worst = 0;
    for (int ci = 0; ci < N_GRAD_CASES; ci++) {
        const model_case *c = &grad_cases[ci];
        mtl_config cfg;
        mtl_batch b;
        mtl_model *m = make_case(c, &cfg, &b, 3000 + (uint64_t)ci);
        for (int train = 0; train <= 1; train++) {
            double ref[64 * MTL_MAX_TASKS];
            ref_forward(m, &cfg, &b, train, ref); /* before: train forward moves running stats */
            mtl_model_forward(m, &b, train);
            const float *lg = m->act + m->logits, *pred = mtl_model_predictions(m);
            for (int i = 0; i < b.n; i++)
                for (int t = 0; t < m->T; t++) {
                    /* floor 1e-3: ~1e-7 absolute rounding of O(1) sums; a
                     * sum-pooled list of up to 3 embedding rows triples the
                     * input's scale, so its rounding: floor 3e-3 */
                    double e = rel_err(lg[i * m->T + t], ref[i * m->T + t], c->multi ? 3e-3 : 1e-3);
                    worst = fmax(worst, e);
                    if (e > FWD_TOL) {
                        print_error("%s (%s): logit [%d, %d] = %.8g, reference %.8g\n", c->label,
                                    train ? "train" : "inference", i, t, lg[i * m->T + t],
                                    ref[i * m->T + t]);
                        fail();
                    }
                }
            for (int i = 0; i < b.n; i++) {
                if (m->desc == model_of(K_ESMM)) {
                    assert_int_equal(m->P, 3);
                    double pc = sigmoid(ref[i * 2]), pv = sigmoid(ref[i * 2 + 1]);
                    const float *pr = pred + i * 3;
                    assert_true(rel_err(pr[0], pc, 1e-3) < FWD_TOL);
                    assert_true(rel_err(pr[1], pv, 1e-3) < FWD_TOL);
                    assert_true(rel_err(pr[2], pc * pv, 1e-3) < FWD_TOL);
                    continue;
                }
                assert_int_equal(m->P, m->T);
                for (int t = 0; t < m->T; t++) {
                    double r = ref[i * m->T + t];
                    double want = m->shape.task_regression[t] ? r : sigmoid(r);
                    assert_true(rel_err(pred[i * m->T + t], want, 1e-3) < FWD_TOL);
                }
            }
        }
        mtl_batch_free(&b);
        mtl_model_free(m);
    }
    print_message("  forward vs double reference: max relative error %.2e\n", worst);
}

/* ------------------------------------------------------------------------ */
/* structure                                                                */

static mtl_model *defaults_model(int kind, int T, mtl_config *cfg) {
    mtl_config_defaults(cfg);
    cfg->model = model_of(kind);
    strcpy(cfg->ctr_task, "task0");
    strcpy(cfg->ctcvr_task, "task1");
    mtl_data_shape sh;
    small_shape(&sh, T, 0);
    mtl_model *m = NULL;
    mtl_error err = {{0}};
    if (mtl_model_create(&m, cfg, &sh, 32, &err) != MTL_OK) {
        print_error("%s: %s\n", model_of(kind)->name, err.msg);
        fail();
    }
    return m;
}

static void expect_tensor(const mtl_params *p, const char *name, int64_t rows, int64_t cols) {
    (void)ref_tensor(p, name, rows, cols);
}

static void expect_absent(const mtl_params *p, const char *name) {
    if (mtl_params_find(p, name) >= 0) {
        print_error("unexpected tensor %s\n", name);
        fail();
    }
}

static void check_unique_names(const mtl_model *m) {
    const mtl_params *blocks[2] = {&m->params, &m->buffers};
    for (int b1 = 0; b1 < 2; b1++)
        for (int i = 0; i < blocks[b1]->n; i++)
            for (int b2 = b1; b2 < 2; b2++)
                for (int j = b1 == b2 ? i + 1 : 0; j < blocks[b2]->n; j++)
                    if (strcmp(blocks[b1]->tensors[i].name, blocks[b2]->tensors[j].name) == 0) {
                        print_error("%s: tensor name %s used twice\n", m->desc->name,
                                    blocks[b1]->tensors[i].name);
                        fail();
                    }
}

/* Tensors tile the block without gaps or overlap, dense ones before the
 * embedding tables. */
static void check_layout(const mtl_model *m) {
    const mtl_params *p = &m->params;
    size_t total = 0;
    for (int i = 0; i < p->n; i++) {
        const mtl_tensor *t = &p->tensors[i];
        assert_true(t->size == (size_t)(t->rows * t->cols));
        assert_true(t->offset + t->size <= p->size);
        assert_true(t->is_embedding ? t->offset >= p->dense_size
                                    : t->offset + t->size <= p->dense_size);
        /* sparse tables after the block the allreduce and optimizer cover */
        assert_true(t->sparse ? t->is_embedding && t->offset >= p->block_size
                              : t->offset + t->size <= p->block_size);
        for (int j = i + 1; j < p->n; j++) {
            const mtl_tensor *u = &p->tensors[j];
            assert_true(t->offset + t->size <= u->offset || u->offset + u->size <= t->offset);
        }
        total += t->size;
    }
    assert_true(total == p->size);
}

/* collect: every (row, field) of a batch points at a compact row holding
 * its id, the compact rows are the batch's distinct ids in first-touch
 * order, zeroed; and the id maps are empty again after each step (ids
 * removed in the wrong order would leave stale entries behind: a later step
 * would find an id it has not touched yet). Ids of 0..199999 collide in the
 * maps of 1024 slots and repeat, and the steps share some ids. */
static void test_collect_ids(void **state) {
    (void)state;
    enum { ROWS = 512, STEPS = 4 };
    mtl_config cfg;
    mtl_data_shape sh;
    small_shape(&sh, 2, 0);
    sh.vocab_sizes[0] = 200000;
    sh.vocab_sizes[1] = 3000;
    mtl_config_defaults(&cfg);
    cfg.model = model_of(K_MMOE);
    cfg.embedding_update = MTL_EMBEDDING_SPARSE;
    mtl_model *m = NULL;
    mtl_error err = {{0}};
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, ROWS, &err), MTL_OK);
    mtl_embeddings E;
    assert_int_equal(mtl_embeddings_init(&E, m, ROWS, 1, &err), MTL_OK);
    assert_int_equal(E.n_tables, 3);
    mtl_batch b;
    assert_int_equal(mtl_batch_alloc(&b, ROWS, sh.S, sh.D, sh.T, &err), MTL_OK);
    uint64_t rng = 12345;
    for (int step = 0; step < STEPS; step++) {
        b.n = ROWS - 37 * step;
        for (int i = 0; i < b.n; i++)
            for (int s = 0; s < sh.S; s++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                uint32_t r = (uint32_t)(rng >> 33);
                /* field 0: multiples of 1024 (and neighbours) across the
                 * table; field 1: a few hundred hot ids; field 2: all 7 */
                b.sparse[(size_t)i * sh.S + s] =
                    s == 0   ? (int32_t)(((r % 190) * 1024 + r % 3) % 200000)
                    : s == 1 ? (int32_t)(r % 300)
                             : (int32_t)(r % 7);
            }
        assert_int_equal(mtl_embeddings_collect(&E, &b, &err), MTL_OK);
        for (int s = 0; s < sh.S; s++) {
            const mtl_sparse_table *st = E.of_field[s];
            int distinct = 0;
            for (int i = 0; i < b.n; i++) {
                int32_t id = b.sparse[(size_t)i * sh.S + s];
                int32_t row = b.grad_rows[(size_t)i * sh.S + s];
                assert_true(row >= 0 && row < st->n);
                assert_int_equal(st->ids[row], id);
                int first = 1; /* the first touch of id gets the next row */
                for (int j = 0; j < i && first; j++) first = b.sparse[(size_t)j * sh.S + s] != id;
                if (first) assert_int_equal(row, distinct++);
            }
            assert_int_equal(st->n, distinct);
            assert_int_equal(st->n_local, distinct);
            for (size_t j = 0; j < (size_t)st->n * (size_t)st->dim; j++)
                assert_true(st->grad[j] == 0.0f);
        }
    }
    mtl_batch_free(&b);
    mtl_embeddings_free(&E);
    mtl_model_free(m);
}

/* --embedding-update: auto makes sparse exactly the tables of more than
 * batch-size (d + 1) / 2d rows (640 here); dense and sparse force it either
 * way. */
static void test_sparse_tables(void **state) {
    (void)state;
    mtl_config cfg;
    mtl_data_shape sh;
    small_shape(&sh, 2, 0);
    sh.vocab_sizes[1] = 5000;                                 /* > 1024 x 5 / 8 */
    const int want[3][3] = {{0, 1, 0}, {0, 0, 0}, {1, 1, 1}}; /* auto, dense, sparse */
    for (int mode = MTL_EMBEDDING_AUTO; mode <= MTL_EMBEDDING_SPARSE; mode++) {
        mtl_config_defaults(&cfg);
        cfg.model = model_of(K_MMOE);
        cfg.embedding_update = mode;
        mtl_model *m = NULL;
        mtl_error err = {{0}};
        assert_int_equal(mtl_model_create(&m, &cfg, &sh, 32, &err), MTL_OK);
        size_t sparse_floats = 0;
        for (int s = 0; s < 3; s++) {
            const mtl_tensor *t = &m->params.tensors[m->emb[s]];
            assert_int_equal(t->sparse, want[mode][s]);
            if (t->sparse) sparse_floats += t->size;
        }
        assert_true(m->params.block_size + sparse_floats == m->params.size);
        check_layout(m);
        mtl_model_free(m);
    }
    /* row sharding on rank 1 of 3: forced, or auto when the table (5000 rows)
     * has at least min_rows rows, or when its values and Adam state (5000 x 4
     * x 4 bytes x 3 = 0.23 MB) exceed the share of the rank's memory */
    const struct {
        int sharding;
        double rank_mb;
        int64_t min_rows;
        int sharded;
    } cases[] = {{MTL_SHARDING_ROW, 0, 1000000, 1},
                 {MTL_SHARDING_REPLICATED, 0.1, 1, 0},
                 {MTL_SHARDING_AUTO, 0.5, 1000000, 1},
                 {MTL_SHARDING_AUTO, 100, 1000000, 0},
                 {MTL_SHARDING_AUTO, 0, 1000000, 0},
                 {MTL_SHARDING_AUTO, 100, 5000, 1},
                 {MTL_SHARDING_AUTO, 0, 5001, 0},
                 {MTL_SHARDING_AUTO, 0, 0, 1}}; /* 0: the default, 1000 */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mtl_config_defaults(&cfg);
        cfg.model = model_of(K_MMOE);
        cfg.embedding_sharding = cases[c].sharding;
        cfg.rank = 1;
        cfg.world = 3;
        cfg.rank_memory_mb = cases[c].rank_mb;
        if (cases[c].min_rows > 0) cfg.shard_min_rows = cases[c].min_rows;
        mtl_model *m = NULL;
        mtl_error err = {{0}};
        assert_int_equal(mtl_model_create(&m, &cfg, &sh, 32, &err), MTL_OK);
        const mtl_tensor *t = &m->params.tensors[m->emb[1]];
        assert_int_equal(t->shard_world > 1, cases[c].sharded);
        if (cases[c].sharded) {
            assert_int_equal(t->local_rows, 1667); /* rows 1, 4, ..., 4999 */
            assert_true(t->size == 1667 * 4);
            assert_true(t->offset >= m->params.replicated_size);
        }
        assert_int_equal(m->params.tensors[m->emb[0]].shard_world, 1); /* small: dense */
        mtl_model_free(m);
    }
}

static void test_param_names(void **state) {
    (void)state;
    mtl_config cfg;
    /* defaults: embedding_dim 4, S 3, D 4 -> in_dim 16; experts [16], towers
     * [8], 8 MMoE experts, 4 + 4 CGC/PLE experts, 2 PLE levels */
    mtl_model *m = defaults_model(K_MMOE, 2, &cfg);
    assert_int_equal(m->in_dim, 16);
    expect_tensor(&m->params, "experts.0.dense0.weight", 16, 16);
    expect_tensor(&m->params, "experts.0.dense0.bias", 1, 16);
    expect_tensor(&m->params, "experts.7.dense0.weight", 16, 16);
    expect_absent(&m->params, "experts.8.dense0.weight");
    expect_tensor(&m->params, "gates.0.out.weight", 8, 16);
    expect_tensor(&m->params, "gates.1.out.weight", 8, 16);
    expect_absent(&m->params, "gates.1.out.bias");
    expect_tensor(&m->params, "towers.1.dense0.weight", 8, 16);
    expect_tensor(&m->params, "towers.1.out.weight", 1, 8);
    expect_tensor(&m->params, "embeddings.2", 7, 4);
    expect_absent(&m->params, "loss.log_var");
    assert_int_equal(m->buffers.n, 0);
    /* registration order is the checkpoint/allreduce contract: fused group
     * (expert then gate weights, then biases), the rest, embeddings last */
    assert_string_equal(m->params.tensors[0].name, "experts.0.dense0.weight");
    assert_string_equal(m->params.tensors[8].name, "gates.0.out.weight");
    assert_string_equal(m->params.tensors[10].name, "experts.0.dense0.bias");
    assert_string_equal(m->params.tensors[m->params.n - 1].name, "embeddings.2");
    check_unique_names(m);
    check_layout(m);
    mtl_model_free(m);

    m = defaults_model(K_CGC, 2, &cfg);
    expect_tensor(&m->params, "experts.task1.3.dense0.weight", 16, 16);
    expect_tensor(&m->params, "experts.shared.3.dense0.weight", 16, 16);
    expect_tensor(&m->params, "gates.1.out.weight", 8, 16);
    expect_absent(&m->params, "gates.shared.out.weight");
    check_unique_names(m);
    check_layout(m);
    mtl_model_free(m);

    m = defaults_model(K_PLE, 2, &cfg);
    expect_tensor(&m->params, "levels.0.experts.task0.0.dense0.weight", 16, 16);
    expect_tensor(&m->params, "levels.0.gates.shared.out.weight", 12, 16);
    expect_tensor(&m->params, "levels.1.experts.task1.3.dense0.weight", 16, 16);
    expect_tensor(&m->params, "levels.1.experts.shared.0.dense0.weight", 16, 16);
    expect_tensor(&m->params, "levels.1.gates.0.out.weight", 8, 16);
    expect_absent(&m->params, "levels.1.gates.shared.out.weight");
    expect_tensor(&m->params, "towers.0.out.weight", 1, 8);
    check_unique_names(m);
    check_layout(m);
    mtl_model_free(m);

    m = defaults_model(K_SHARED_BOTTOM, 3, &cfg);
    expect_tensor(&m->params, "bottom.dense0.weight", 16, 16);
    expect_tensor(&m->params, "towers.2.dense0.weight", 8, 16);
    expect_tensor(&m->params, "towers.2.out.weight", 1, 8);
    check_unique_names(m);
    check_layout(m);
    mtl_model_free(m);

    cfg.batch_norm = 1;
    mtl_config_defaults(&cfg);
    cfg.model = model_of(K_ESMM);
    cfg.batch_norm = 1;
    cfg.loss_uncertainty = 1;
    strcpy(cfg.ctr_task, "task0");
    strcpy(cfg.ctcvr_task, "task1");
    mtl_data_shape sh;
    small_shape(&sh, 2, 0);
    mtl_error err = {{0}};
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 8, &err), MTL_OK);
    expect_tensor(&m->params, "towers.ctr.dense0.weight", 8, 16);
    expect_tensor(&m->params, "towers.cvr.out.weight", 1, 8);
    expect_tensor(&m->params, "towers.cvr.bn0.gamma", 1, 8);
    expect_tensor(&m->params, "towers.ctr.bn0.beta", 1, 8);
    expect_tensor(&m->params, "loss.log_var", 1, 2);
    expect_tensor(&m->buffers, "towers.ctr.bn0.running_mean", 1, 8);
    expect_tensor(&m->buffers, "towers.cvr.bn0.running_var", 1, 8);
    assert_int_equal(m->P, 3);
    assert_string_equal(mtl_model_prediction_name(m, 0), "pctr");
    assert_string_equal(mtl_model_prediction_name(m, 2), "pctcvr");
    check_unique_names(m);
    check_layout(m);
    mtl_model_free(m);
}

/* Same configuration, same seed: same names, offsets and initial values;
 * another seed: other values. */
static void test_param_stability(void **state) {
    (void)state;
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++) {
        mtl_config cfg;
        mtl_model *a = defaults_model(kind, 2, &cfg);
        mtl_model *b = defaults_model(kind, 2, &cfg);
        assert_int_equal(a->params.n, b->params.n);
        assert_true(a->params.size == b->params.size);
        for (int i = 0; i < a->params.n; i++) {
            assert_string_equal(a->params.tensors[i].name, b->params.tensors[i].name);
            assert_true(a->params.tensors[i].offset == b->params.tensors[i].offset);
        }
        assert_memory_equal(a->params.values, b->params.values, a->params.size * sizeof(float));
        mtl_model_free(b);
        cfg.seed = 99;
        mtl_data_shape sh;
        small_shape(&sh, 2, 0);
        mtl_error err = {{0}};
        assert_int_equal(mtl_model_create(&b, &cfg, &sh, 32, &err), MTL_OK);
        assert_true(memcmp(a->params.values, b->params.values, a->params.size * sizeof(float)));
        mtl_model_free(a);
        mtl_model_free(b);
    }
}

/* Every group's member first-layer weights and biases are adjacent rows of
 * the block, and member outputs tile the group's columns, over a grid of
 * configurations (creation itself checks adjacency and must succeed). */
static void test_group_adjacency(void **state) {
    (void)state;
    int n_models = 0;
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++)
        for (int T = 1; T <= 3; T++)
            for (int gl = 0; gl <= 1; gl++)
                for (int el = 1; el <= 2; el++)
                    for (int bn = 0; bn <= 1; bn++)
                        for (int lv = 1; lv <= 3; lv++)
                            for (int spec = 0; spec <= 2; spec++) {
                                if (kind == K_ESMM && T != 2) continue;
                                if (kind != K_PLE && lv > 1) continue;
                                if ((kind < K_CGC || kind == K_AITM) && spec > 0) continue;
                                model_case c = {.label = "grid",
                                                .kind = kind,
                                                .T = T,
                                                .B = 5,
                                                .batch_norm = bn,
                                                .gate_layers = gl,
                                                .expert_layers = el,
                                                .num_levels = lv};
                                mtl_config cfg;
                                small_config(&cfg, &c);
                                cfg.num_experts_specific = spec;
                                cfg.num_experts_shared = spec == 2 ? 0 : 2;
                                strcpy(cfg.ctr_task, "task0");
                                strcpy(cfg.ctcvr_task, "task1");
                                mtl_data_shape sh;
                                small_shape(&sh, T, 0);
                                mtl_model *m = NULL;
                                mtl_error err = {{0}};
                                if (mtl_model_create(&m, &cfg, &sh, 5, &err) != MTL_OK) {
                                    print_error("%s T=%d gate %d expert %d bn %d levels %d "
                                                "specific %d: %s\n",
                                                model_of(kind)->name, T, gl, el, bn, lv, spec,
                                                err.msg);
                                    fail();
                                }
                                n_models++;
                                check_unique_names(m);
                                check_layout(m);
                                assert_true(m->n_groups >= 1);
                                for (int g = 0; g < m->n_groups; g++) {
                                    const mtl_group *G = &m->groups[g];
                                    const float *w = G->W, *bias = G->bias;
                                    int col = 0, biased = 0;
                                    for (int i = 0; i < G->n_members; i++) {
                                        const mtl_stack *s = &m->stacks[G->members[i]];
                                        const mtl_layer *L = &s->layer[0];
                                        assert_true(s->fused);
                                        assert_true(s->in == G->in);
                                        assert_ptr_equal(L->W, w);
                                        assert_true(L->z == G->out + (size_t)col);
                                        assert_int_equal(L->ld, G->out_ld);
                                        w += L->out_dim * L->in_dim;
                                        col += L->out_dim;
                                        if (L->hidden) {
                                            assert_int_equal(biased, col - L->out_dim);
                                            assert_ptr_equal(L->bias, bias);
                                            bias += L->out_dim;
                                            biased += L->out_dim;
                                        }
                                    }
                                    assert_int_equal(col, G->n_out);
                                    assert_int_equal(biased, G->n_biased);
                                }
                                /* and it runs: finite predictions */
                                mtl_batch b;
                                fill_batch(&b, m, &c, 5);
                                mtl_model_forward(m, &b, 1);
                                for (int i = 0; i < b.n * m->P; i++)
                                    assert_true(isfinite(mtl_model_predictions(m)[i]));
                                mtl_batch_free(&b);
                                mtl_model_free(m);
                            }
    assert_true(n_models > 100);
}

/* FLOPs of a hand-computed MMoE: in_dim = 3*3 + 4 = 13, 3 experts [6], 2
 * gates (no hidden layer, 3 logits), 2 towers [4] + head:
 *   experts 3*13*6 = 234, gates 2*13*3 = 78, towers 2*(6*4 + 4*1) = 56
 *   -> 368 multiply-adds forward, x6 (fwd 2, dW 2, din 2) = 2208;
 *   mixtures 2 gates * 6 * K(3) * D(6) = 216; total 2424. */
static void test_flops(void **state) {
    (void)state;
    model_case c = {.label = "flops", .kind = K_MMOE, .T = 2, .B = 4};
    mtl_config cfg;
    mtl_model *m = make_model(&c, &cfg);
    assert_int_equal(m->in_dim, 13);
    assert_true(mtl_model_flops_per_sample(m) == 2424.0);
    mtl_model_free(m);
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++) {
        model_case k = {.label = "flops", .kind = kind, .T = 2, .B = 4};
        m = make_model(&k, &cfg);
        assert_true(mtl_model_flops_per_sample(m) > 0);
        mtl_model_free(m);
    }
    /* shared bottom [6], towers [4]: 6*(13*6 + 2*(6*4 + 4)) = 804 */
    model_case sb = {.label = "flops", .kind = K_SHARED_BOTTOM, .T = 2, .B = 4};
    m = make_model(&sb, &cfg);
    assert_true(mtl_model_flops_per_sample(m) == 804.0);
    mtl_model_free(m);
}

/* Predictions in (0, 1) for binary tasks (also for large logits of both
 * signs), regression columns equal the logit; ESMM's pCTCVR is the product;
 * inference is deterministic and does not touch parameters or buffers. */
static void test_predictions(void **state) {
    (void)state;
    for (int ci = 0; ci < N_GRAD_CASES; ci++) {
        const model_case *c = &grad_cases[ci];
        mtl_config cfg;
        mtl_batch b;
        mtl_model *m = make_case(c, &cfg, &b, 5000 + (uint64_t)ci);
        int n = b.n * m->P;
        float *p1 = malloc((size_t)n * sizeof *p1);
        float *vals = malloc(m->params.size * sizeof *vals);
        float *bufs = malloc((m->buffers.size + 1) * sizeof *bufs);
        assert_non_null(p1);
        assert_non_null(vals);
        assert_non_null(bufs);
        memcpy(vals, m->params.values, m->params.size * sizeof *vals);
        if (m->buffers.size) memcpy(bufs, m->buffers.values, m->buffers.size * sizeof *bufs);

        mtl_model_forward(m, &b, 0);
        memcpy(p1, mtl_model_predictions(m), (size_t)n * sizeof *p1);
        mtl_model_forward(m, &b, 0);
        assert_memory_equal(p1, mtl_model_predictions(m), (size_t)n * sizeof *p1);
        assert_memory_equal(vals, m->params.values, m->params.size * sizeof *vals);
        if (m->buffers.size)
            assert_memory_equal(bufs, m->buffers.values, m->buffers.size * sizeof *bufs);
        /* train mode with dropout 0 changes only the running statistics */
        mtl_model_forward(m, &b, 1);
        assert_memory_equal(vals, m->params.values, m->params.size * sizeof *vals);
        if (m->buffers.size)
            assert_true(memcmp(bufs, m->buffers.values, m->buffers.size * sizeof *bufs));

        const float *pred = mtl_model_predictions(m);
        for (int i = 0; i < b.n; i++) {
            if (m->desc == model_of(K_ESMM)) {
                const float *r = pred + i * 3;
                for (int k = 0; k < 3; k++) assert_true(r[k] > 0.0f && r[k] < 1.0f);
                assert_true(r[2] == r[0] * r[1]);
                continue;
            }
            for (int t = 0; t < m->T; t++) {
                float v = pred[i * m->T + t], z = m->act[m->logits + (size_t)(i * m->T + t)];
                if (m->shape.task_regression[t])
                    assert_true(v == z);
                else
                    assert_true(v > 0.0f && v < 1.0f);
            }
        }
        free(p1);
        free(vals);
        free(bufs);
        mtl_batch_free(&b);
        mtl_model_free(m);
    }
}

/* What the gates learned (metrics.h) over an inference forward, for every
 * case: one statistic per gate, named after its level and task, the mean
 * weights summing to 1 and equal with the mean entropy to the double
 * reference's softmax (float rounding: 1e-5); none without gates. */
static void test_gate_stats(void **state) {
    (void)state;
    int checked = 0;
    for (int ci = 0; ci < N_GRAD_CASES; ci++) {
        const model_case *c = &grad_cases[ci];
        mtl_config cfg;
        mtl_batch b;
        mtl_model *m = make_case(c, &cfg, &b, 7000 + (uint64_t)ci);
        static ref_gates ref;
        memset(&ref, 0, sizeof ref);
        double logits[64 * MTL_MAX_TASKS];
        ref_gate_sink = &ref;
        ref_forward(m, &cfg, &b, 0, logits);
        ref_gate_sink = NULL;
        mtl_model_forward(m, &b, 0);
        mtl_gate_stats s;
        mtl_error err;
        assert_int_equal(mtl_gate_stats_init_model(&s, m, &err), MTL_OK);
        mtl_gate_stats_add_forward(&s, m, b.n);
        int gated = kind_of(m) == K_MMOE || kind_of(m) == K_CGC || kind_of(m) == K_PLE;
        assert_int_equal(s.n_gates, gated ? ref.n : 0);
        assert_true(!gated || ref.n >= m->T);
        for (int g = 0; g < s.n_gates; g++) {
            double w[MTL_MAX_GROUP], h, sum = 0.0;
            assert_string_equal(m->gates[g].name, ref.name[g]);
            assert_int_equal(s.K[g], ref.K[g]);
            assert_near(mtl_gate_stats_mean(&s, g, w, &h), b.n, 0.0);
            for (int k = 0; k < s.K[g]; k++) {
                assert_near(w[k], ref.mean[g][k], 1e-5);
                sum += w[k];
            }
            assert_near(sum, 1.0, 1e-5);
            assert_near(h, ref.entropy[g], 1e-5);
            assert_true(h >= 0.0 && h <= log(s.K[g]) + 1e-6);
            checked++;
        }
        mtl_gate_stats_free(&s);
        mtl_batch_free(&b);
        mtl_model_free(m);
    }
    assert_true(checked > 20);
}

/* Row i's inference prediction does not depend on the other rows of the
 * batch (batch norm uses running statistics), nor on max_batch. */
static void test_inference_row_independent(void **state) {
    (void)state;
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++) {
        model_case c = {
            .label = "rows", .kind = kind, .T = 2, .B = 13, .batch_norm = 1, .gate_layers = 1};
        mtl_config cfg;
        mtl_model *m = make_model(&c, &cfg);
        randomize_params(m, 77);
        mtl_batch b;
        fill_batch(&b, m, &c, 78);
        mtl_model_forward(m, &b, 0);
        float all[13 * 3];
        memcpy(all, mtl_model_predictions(m), (size_t)(b.n * m->P) * sizeof(float));
        int n = b.n;
        for (int i = 0; i < n; i++) {
            mtl_batch one = b; /* a view of row i */
            one.n = 1;
            one.sparse = b.sparse + i * b.S;
            one.dense = b.dense + i * b.D;
            one.labels = b.labels + i * b.T;
            one.weights = b.weights + i;
            mtl_model_forward(m, &one, 0);
            /* not bit for bit: a 1-row product may take another SGEMM kernel
             * (chosen by shape and OPENBLAS_CORETYPE) that sums in another
             * order, a few float32 ulp (~1e-7) per layer; 1e-5 relative is
             * far above that, far below a row mixed with its neighbours */
            for (int k = 0; k < m->P; k++)
                assert_true(rel_err(mtl_model_predictions(m)[k], all[i * m->P + k], 1e-3) < 1e-5);
        }
        mtl_batch_free(&b);
        mtl_model_free(m);
    }
}

/* backward accumulates: two backward passes give twice the gradient; and the
 * logits' gradient of a missing label is exactly 0. */
/* Initial values: Glorot-normal weights (std sqrt(2/(in+out)), truncated at
 * 2 std), zero biases (one scalar logit bias per task), tiny embeddings. */
static void test_initial_values(void **state) {
    (void)state;
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++) {
        mtl_config cfg;
        mtl_model *m = defaults_model(kind, 2, &cfg);
        int logits = 0;
        for (int i = 0; i < m->params.n; i++) {
            const mtl_tensor *t = &m->params.tensors[i];
            const float *v = m->params.values + t->offset;
            double sum2 = 0, maxabs = 0;
            for (size_t k = 0; k < t->size; k++) {
                sum2 += (double)v[k] * v[k];
                if (fabs(v[k]) > maxabs) maxabs = fabs(v[k]);
            }
            double std = sqrt(sum2 / (double)t->size);
            if (strstr(t->name, "towers.") && strstr(t->name, ".out.bias")) {
                assert_int_equal(t->size, 1);
                assert_true(maxabs == 0.0);
                logits++;
            } else if (strstr(t->name, ".bias")) {
                assert_true(maxabs == 0.0);
            } else if (t->is_embedding) {
                assert_true(maxabs > 0.0 && maxabs < 1e-3);
            } else if (strstr(t->name, ".weight") && t->size >= 64) {
                double want = sqrt(2.0 / (double)(t->rows + t->cols));
                if (std < 0.7 * want || std > 1.3 * want || maxabs > 2.0 * want / .8796 + 1e-6) {
                    print_error("%s: std %g, Glorot std %g, max |w| %g\n", t->name, std, want,
                                maxabs);
                    fail();
                }
            }
        }
        assert_int_equal(logits, 2);
        mtl_model_free(m);
    }
}

static void test_backward_accumulates(void **state) {
    (void)state;
    for (int kind = K_SHARED_BOTTOM; model_of(kind); kind++) {
        model_case c = {.label = "acc",
                        .kind = kind,
                        .T = 2,
                        .B = 13,
                        .nan_labels = 1,
                        .weights = 1,
                        .uncertainty = 1};
        mtl_config cfg;
        mtl_model *m = make_model(&c, &cfg);
        randomize_params(m, 11);
        mtl_batch b;
        fill_batch(&b, m, &c, 12);
        double count[MTL_MAX_TASKS], ls[MTL_MAX_TASKS];
        mtl_model_forward(m, &b, 1);
        mtl_model_count_labels(m, &b, count);
        memset(m->params.grads, 0, m->params.size * sizeof(float));
        mtl_model_loss(m, &b, count, 1, ls);
        if (kind != K_ESMM)
            for (int i = 0; i < b.n; i++)
                for (int t = 0; t < m->T; t++)
                    if (isnan(b.labels[i * b.T + t]))
                        assert_true(m->grad[m->logits + (size_t)(i * m->T + t)] == 0.0f);
        mtl_model_backward(m, &b);
        float *g1 = malloc(m->params.size * sizeof *g1);
        assert_non_null(g1);
        memcpy(g1, m->params.grads, m->params.size * sizeof *g1);
        size_t nonzero = 0;
        for (size_t i = 0; i < m->params.size; i++) nonzero += g1[i] != 0.0f;
        assert_true(nonzero > m->params.size / 2);
        /* second pass on top: the log-variance's gradient comes from the
         * loss, everything else from backward */
        mtl_model_forward(m, &b, 1);
        mtl_model_loss(m, &b, count, 1, ls);
        mtl_model_backward(m, &b);
        /* The second pass adds its terms onto g1 inside the products and
         * loops, so each sum rounds in another order than 2*g1: an error of
         * a few float eps times the terms' magnitudes. Where the terms cancel
         * to far below the block's scale (seen: an element of 1.6e-5 off by 2e-10),
         * that is a large relative error, hence a floor at 1e-4 of the
         * largest gradient; a lost or doubled accumulation is still off by
         * 50-100% of the element. */
        double scale = 0;
        for (size_t i = 0; i < m->params.size; i++) scale = fmax(scale, fabs(g1[i]));
        for (size_t i = 0; i < m->params.size; i++) {
            double want = 2.0 * g1[i];
            if (rel_err(m->params.grads[i], want, fmax(1e-6, 1e-4 * scale)) > 1e-5) {
                print_error("%s: gradient %zu after two passes %g, expected %g\n", m->desc->name, i,
                            m->params.grads[i], want);
                fail();
            }
        }
        free(g1);
        mtl_batch_free(&b);
        mtl_model_free(m);
    }
}

/* Configuration errors the builders must report. */
static void test_create_errors(void **state) {
    (void)state;
    mtl_config cfg;
    mtl_data_shape sh;
    mtl_model *m = NULL;
    mtl_error err = {{0}};
    mtl_config_defaults(&cfg);
    cfg.model = model_of(K_ESMM);
    strcpy(cfg.ctr_task, "task0");
    strcpy(cfg.ctcvr_task, "nope");
    small_shape(&sh, 2, 0);
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 4, &err), MTL_ERR);
    assert_null(m);
    assert_non_null(strstr(err.msg, "'nope'"));
    small_shape(&sh, 3, 0);
    strcpy(cfg.ctcvr_task, "task1");
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 4, &err), MTL_ERR);
    assert_non_null(strstr(err.msg, "2 tasks"));
    small_shape(&sh, 2, 2);
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 4, &err), MTL_ERR);
    assert_non_null(strstr(err.msg, "binary"));
    cfg.model = model_of(K_MMOE);
    cfg.n_loss_weights = 3;
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 4, &err), MTL_ERR);
    assert_non_null(strstr(err.msg, "loss-weights"));
    cfg.n_loss_weights = 0;
    sh.T = 0;
    assert_int_equal(mtl_model_create(&m, &cfg, &sh, 4, &err), MTL_ERR);
    assert_null(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_tables),
        cmocka_unit_test(test_collect_ids),
        cmocka_unit_test(test_param_names),
        cmocka_unit_test(test_param_stability),
        cmocka_unit_test(test_group_adjacency),
        cmocka_unit_test(test_flops),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_forward_reference),
        cmocka_unit_test(test_predictions),
        cmocka_unit_test(test_gate_stats),
        cmocka_unit_test(test_inference_row_independent),
        cmocka_unit_test(test_initial_values),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_grad_shared_bottom),
        cmocka_unit_test(test_grad_esmm),
        cmocka_unit_test(test_grad_mmoe),
        cmocka_unit_test(test_grad_cgc),
        cmocka_unit_test(test_grad_ple),
        cmocka_unit_test(test_grad_aitm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
