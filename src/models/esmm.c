/* ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018): a CTR tower
 * and a CVR tower on the shared embedding input; pCTCVR = pCTR * pCVR (eq. 2),
 * and the loss is BCE(pCTR, click) + BCE(pCTCVR, conversion) over all samples
 * (eq. 3), so pCVR is learned on the entire space without being supervised
 * directly. Predictions pctr, pcvr, pctcvr; the click and conversion tasks
 * are named by --ctr-task and --ctcvr-task. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/model.h"

typedef struct {
    int ctr, ctcvr; /* label columns */
} plan;

static void forward(mtl_model *m, int B, int train) {
    mtl_towers_forward(m, B, train);
}

static void backward(mtl_model *m, int B) {
    mtl_towers_backward(m, B);
}

/* logits column 0: CTR, 1: CVR */
static void predict(mtl_model *m, int B) {
    const float *logits = m->act + m->logits;
    float *pred = m->act + m->preds;
    for (int i = 0; i < B; i++) {
        float ctr = 1.0f / (1.0f + expf(-logits[i * 2]));
        float cvr = 1.0f / (1.0f + expf(-logits[i * 2 + 1]));
        pred[i * 3] = ctr;
        pred[i * 3 + 1] = cvr;
        pred[i * 3 + 2] = ctr * cvr;
    }
}

/* eq. 3: BCE on pCTR's logit for clicks, BCE on the product for conversions */
static void loss(mtl_model *m, const mtl_batch *b, const float *scale, const double *global_count,
                 double *loss_sum) {
    (void)global_count;
    const plan *p = m->arch;
    int B = b->n, ctr = p->ctr, ctcvr = p->ctcvr;
    int64_t cnt = 0;
    float *dlogits = m->grad + m->logits;
    const float *logits = m->act + m->logits;
    const float *pred = m->act + m->preds;
    float *dp = m->grad + m->preds; /* scratch: d loss / d pCTCVR */
    loss_sum[ctr] = mtl_bce_logits(dlogits, 2, logits, 2, b->labels + ctr, b->T, b->weights + ctr,
                                   B, scale[ctr], &cnt);
    loss_sum[ctcvr] = mtl_bce_prob(dp + 2, 3, pred + 2, 3, b->labels + ctcvr, b->T,
                                   b->weights + ctcvr, B, scale[ctcvr], &cnt);
    for (int i = 0; i < B; i++) {
        float pctr = pred[i * 3], pcvr = pred[i * 3 + 1], g = dp[i * 3 + 2];
        dlogits[i * 2] += g * pcvr * pctr * (1.0f - pctr);
        dlogits[i * 2 + 1] = g * pctr * pcvr * (1.0f - pcvr);
    }
}

/* the CTR tower at the click rate, the CVR tower at conversions / clicks */
static void set_prior(mtl_model *m, const double *label_mean) {
    const plan *p = m->arch;
    double ctr = label_mean[p->ctr], ctcvr = label_mean[p->ctcvr];
    double mean[2] = {ctr, ctr > 0 ? ctcvr / ctr : NAN};
    for (int t = 0; t < 2; t++) {
        float *bias = mtl_model_logit_bias(m, t);
        if (bias && !isnan(mean[t])) bias[0] = mtl_log_odds(mean[t]);
    }
}

static const char *prediction_name(const mtl_model *m, int col) {
    (void)m;
    static const char *names[3] = {"pctr", "pcvr", "pctcvr"};
    return names[col];
}

/* the click task is scored by pCTR, the conversion task by pCTCVR */
static int prediction_of_task(const mtl_model *m, int task) {
    const plan *p = m->arch;
    return task == p->ctr ? 0 : 2;
}

static int check(const mtl_config *cfg, mtl_error *err) {
    if (cfg->ctr_task[0] == '\0' || cfg->ctcvr_task[0] == '\0')
        return mtl_fail(err, NULL,
                        "model esmm needs --ctr-task and --ctcvr-task (task names in the "
                        "data's /labels)");
    if (strcmp(cfg->ctr_task, cfg->ctcvr_task) == 0)
        return mtl_fail(err, NULL, "esmm: ctr_task and ctcvr_task are both '%s'", cfg->ctr_task);
    return MTL_OK;
}

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    if (m->T != 2)
        return mtl_fail(err, NULL, "esmm: needs exactly 2 tasks (click, conversion), data has %d",
                        m->T);
    if (check(cfg, err)) return MTL_ERR;
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    if ((p->ctr = mtl_model_find_task(m, cfg->ctr_task, "ctr_task", err)) < 0) return MTL_ERR;
    if ((p->ctcvr = mtl_model_find_task(m, cfg->ctcvr_task, "ctcvr_task", err)) < 0) return MTL_ERR;
    if (m->shape.task_regression[0] || m->shape.task_regression[1])
        return mtl_fail(err, NULL, "esmm: both tasks must be binary");
    m->P = 3; /* pCTR, pCVR, pCTCVR */
    static const char *const names[2] = {"towers.ctr", "towers.cvr"};
    size_t in[2] = {m->x0, m->x0};
    int dim[2] = {m->in_dim, m->in_dim};
    if (mtl_towers_add(m, cfg, in, dim, 1, names, err)) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}

const mtl_model_desc mtl_model_esmm = {
    .name = "esmm",
    .summary = "ESMM (Ma et al., SIGIR 2018): CTR and CVR towers, pCTCVR = pCTR * pCVR",
    .options = "ctr_task, ctcvr_task, tower_units (CTR tower / CVR tower)",
    .build = build,
    .check = check,
    .predict = predict,
    .loss = loss,
    .set_prior = set_prior,
    .prediction_name = prediction_name,
    .prediction_of_task = prediction_of_task,
    .onnx = MTL_ONNX_PRODUCT,
};
