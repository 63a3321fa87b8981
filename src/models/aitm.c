/* AITM (Xi et al., "Modeling the Sequential Dependence among Audience
 * Multi-step Conversions with Multi-task Learning in Targeted Display
 * Advertising", KDD 2021): the tasks are the steps of a funnel (impression
 * -> click -> conversion ...), in --task-order (default /labels order).
 *
 *  - a tower per task over the shared embedding input: q_t (sec. 3.1);
 *  - the Adaptive Information Transfer module (sec. 3.2, eq. 2-5): the
 *    previous step's information p_{t-1} = g_{t-1}(z_{t-1}) (one hidden
 *    layer), then attention over {p_{t-1}, q_t} with single-layer projections
 *    h1, h2, h3 (no bias, shared by both candidates):
 *      w_u = softmax_u(<h2(u), h3(u)> / sqrt(k)),  z_t = sum_u w_u h1(u);
 *    the first step has z_1 = q_1;
 *  - a logit per task from z_t, p_t = sigmoid;
 *  - the behavioural expectation calibrator (sec. 3.3, eq. 6-7): a later
 *    step cannot be more likely than the one before it, so the loss adds
 *      alpha * sum_{t >= 2} mean over task t's labelled rows of max(p_t - p_{t-1}, 0)
 *    with alpha = --aitm-calibration-weight (0.6, the paper's value).
 *
 * Per-task towers (--tower-units 32/16) fit naturally: g_{t-1} maps the
 * previous width to this task's, the attention runs at this task's width. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/model.h"

typedef struct {
    int order[MTL_MAX_TASKS]; /* task columns, first step to last */
    int transfer[MTL_MAX_TASKS], proj_q[MTL_MAX_TASKS], proj_p[MTL_MAX_TASKS]; /* stacks, by step */
    size_t z[MTL_MAX_TASKS];       /* attention output, by step (step 0: unused) */
    size_t weights[MTL_MAX_TASKS]; /* attention weights [B x 2], by step */
    int width[MTL_MAX_TASKS];      /* k of each step */
    float alpha;
} plan;

static void attention_io(mtl_model *m, const plan *p, int i, const float *proj[2],
                         float *dproj[2]) {
    const mtl_stack *q = &m->stacks[p->proj_q[i]], *pp = &m->stacks[p->proj_p[i]];
    proj[0] = m->act + pp->layer[0].z; /* the transferred information p_{t-1} */
    proj[1] = m->act + q->layer[0].z;  /* this task's tower q_t */
    if (dproj) {
        dproj[0] = m->grad + pp->layer[0].z;
        dproj[1] = m->grad + q->layer[0].z;
    }
}

static void forward(mtl_model *m, int B, int train) {
    plan *p = m->arch;
    mtl_towers_forward(m, B, train);
    for (int i = 1; i < m->T; i++) {
        int k = p->width[i];
        mtl_stack_forward(m, &m->stacks[p->transfer[i]], B, train);
        mtl_stack_forward(m, &m->stacks[p->proj_p[i]], B, train);
        mtl_stack_forward(m, &m->stacks[p->proj_q[i]], B, train);
        const float *proj[2];
        attention_io(m, p, i, proj, NULL);
        mtl_attention_forward(m->act + p->z[i], k, m->act + p->weights[i], proj, 3 * k, B, 2, k);
    }
    for (int t = 0; t < m->T; t++) mtl_stack_forward(m, &m->stacks[m->tower[t]], B, train);
}

static void backward(mtl_model *m, int B) {
    plan *p = m->arch;
    for (int t = m->T - 1; t >= 0; t--) mtl_stack_backward(m, &m->stacks[m->tower[t]], B);
    for (int i = m->T - 1; i >= 1; i--) {
        int k = p->width[i];
        const float *proj[2];
        float *dproj[2];
        attention_io(m, p, i, proj, dproj);
        mtl_attention_backward(dproj, m->grad + p->z[i], k, m->act + p->weights[i], proj, 3 * k, B,
                               2, k);
        mtl_stack_backward(m, &m->stacks[p->proj_q[i]], B);
        mtl_stack_backward(m, &m->stacks[p->proj_p[i]], B);
        mtl_stack_backward(m, &m->stacks[p->transfer[i]], B);
    }
    mtl_towers_backward(m, B);
}

/* the tasks' BCE, then the calibrator on consecutive steps */
static void loss(mtl_model *m, const mtl_batch *b, const float *scale, const double *global_count,
                 double *loss_sum) {
    const plan *p = m->arch;
    mtl_model_task_loss(m, b, scale, loss_sum);
    int T = m->T;
    const float *pred = m->act + m->preds;
    float *dlogits = m->grad + m->logits;
    for (int i = 1; i < T; i++) {
        int t = p->order[i], prev = p->order[i - 1];
        if (global_count[t] <= 0 || p->alpha == 0.0f) continue;
        float c = (float)(p->alpha / global_count[t]);
        for (int r = 0; r < b->n; r++) {
            if (isnan(b->labels[(size_t)r * (size_t)b->T + (size_t)t])) continue;
            float pt = pred[r * T + t], pp = pred[r * T + prev];
            if (pt <= pp) continue;
            float g = c * (b->weights ? b->weights[(size_t)r * (size_t)b->T + (size_t)t] : 1.0f);
            dlogits[r * T + t] += g * pt * (1.0f - pt);
            dlogits[r * T + prev] -= g * pp * (1.0f - pp);
        }
    }
}

/* --task-order "a,b,c": a permutation of the data's tasks */
static int task_order(mtl_model *m, const mtl_config *cfg, int *order, mtl_error *err) {
    int T = m->T, n = 0, used[MTL_MAX_TASKS] = {0};
    if (!cfg->task_order[0]) {
        for (int t = 0; t < T; t++) order[t] = t;
        return MTL_OK;
    }
    for (const char *s = cfg->task_order; *s;) {
        size_t len = strcspn(s, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), s);
        int t = mtl_model_find_task(m, name, "--task-order", err);
        if (t < 0) return MTL_ERR;
        if (n == T || used[t])
            return mtl_fail(err, NULL, "--task-order: '%s' is listed twice", name);
        used[t] = 1;
        order[n++] = t;
        s += len + (s[len] == ',');
    }
    if (n != T) return mtl_fail(err, NULL, "--task-order: names %d tasks, the data has %d", n, T);
    return MTL_OK;
}

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    int T = m->T;
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    p->alpha = cfg->aitm_calibration_weight;
    for (int t = 0; t < T; t++)
        if (m->shape.task_regression[t])
            return mtl_fail(err, NULL, "aitm: every task must be binary (task %s is regression)",
                            m->shape.task_names[t]);
    if (task_order(m, cfg, p->order, err)) return MTL_ERR;
    /* towers q_t over the embeddings, one group */
    size_t in[MTL_MAX_TASKS];
    int dim[MTL_MAX_TASKS];
    for (int t = 0; t < T; t++) in[t] = m->x0, dim[t] = m->in_dim;
    if (mtl_towers_add(m, cfg, in, dim, 0, NULL, err)) return MTL_ERR;
    size_t z_prev = 0;
    int prev_width = 0, prev_ld = 0;
    char name[64];
    for (int i = 0; i < T; i++) {
        int t = p->order[i];
        const mtl_stack *q = &m->stacks[m->towers[t]];
        const mtl_layer *top = &q->layer[q->n - 1];
        int k = p->width[i] = top->out_dim;
        size_t z = top->z; /* step 0: z = q */
        if (i > 0) {
            /* p_{t-1} = g(z_{t-1}): one hidden layer to this task's width */
            mtl_units g = {1, {k}};
            snprintf(name, sizeof name, "aitm.transfer.%d", t);
            p->transfer[i] = mtl_stack_add(m,
                                           &(mtl_stack_spec){.name = name,
                                                             .in = z_prev,
                                                             .in_ld = prev_ld,
                                                             .in_dim = prev_width,
                                                             .hidden = &g},
                                           err);
            if (p->transfer[i] < 0) return MTL_ERR;
            size_t pz = m->stacks[p->transfer[i]].layer[0].z = mtl_arena_add(m, k);
            /* [h1 | h2 | h3] of q_t, and the same projections of p_{t-1} */
            snprintf(name, sizeof name, "aitm.attention.%d", t);
            p->proj_q[i] = mtl_stack_add(
                m,
                &(mtl_stack_spec){
                    .name = name, .in = top->z, .in_ld = top->ld, .in_dim = k, .head = 3 * k},
                err);
            if (p->proj_q[i] < 0) return MTL_ERR;
            snprintf(name, sizeof name, "aitm.attention.%d.transferred", t);
            p->proj_p[i] = mtl_stack_add(m,
                                         &(mtl_stack_spec){.name = name,
                                                           .in = pz,
                                                           .in_ld = k,
                                                           .in_dim = k,
                                                           .head = 3 * k,
                                                           .shares = p->proj_q[i] + 1},
                                         err);
            if (p->proj_p[i] < 0) return MTL_ERR;
            m->stacks[p->proj_q[i]].layer[0].z = mtl_arena_add(m, 3 * k);
            m->stacks[p->proj_p[i]].layer[0].z = mtl_arena_add(m, 3 * k);
            z = p->z[i] = mtl_arena_add(m, k);
            p->weights[i] = mtl_arena_add(m, 2);
        }
        /* the logit of task t from z_t */
        snprintf(name, sizeof name, "towers.%d", t);
        m->tower[t] = mtl_stack_add(m,
                                    &(mtl_stack_spec){.name = name,
                                                      .in = z,
                                                      .in_ld = i > 0 ? k : top->ld,
                                                      .in_dim = k,
                                                      .head = 1,
                                                      .logit_head = 1,
                                                      .out = m->logits + (size_t)t,
                                                      .out_ld = T},
                                    err);
        if (m->tower[t] < 0) return MTL_ERR;
        z_prev = z;
        prev_width = k;
        prev_ld = i > 0 ? k : top->ld;
    }
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}

const mtl_model_desc mtl_model_aitm = {
    .name = "aitm",
    .summary = "AITM (Xi et al., KDD 2021): towers in funnel order, attention transfer, calibrator",
    .options = "tower_units, task_order, aitm_calibration_weight",
    .build = build,
    .loss = loss,
    .onnx = MTL_ONNX_NONE,
};
