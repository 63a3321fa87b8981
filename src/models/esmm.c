/* ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018): a CTR tower
 * and a CVR tower on the shared embedding input; pCTCVR = pCTR * pCVR, and the
 * loss is BCE(pCTR, click) + BCE(pCTCVR, conversion) over all samples
 * (eq. 3), so pCVR is learned on the entire space without being supervised
 * directly. The predictions and loss live in model.c; here are the towers. */
#include <stdlib.h>
#include <string.h>

#include "mtl/model.h"

typedef struct {
    int towers; /* group index */
} plan;

static void forward(mtl_model *m, int B, int train) {
    plan *p = m->arch;
    mtl_group_forward(m, &m->groups[p->towers], B);
    for (int t = 0; t < 2; t++) mtl_stack_forward(m, &m->stacks[m->tower[t]], B, train);
}

static void backward(mtl_model *m, int B) {
    plan *p = m->arch;
    for (int t = 1; t >= 0; t--) mtl_stack_backward(m, &m->stacks[m->tower[t]], B);
    mtl_group_backward(m, &m->groups[p->towers], B);
}

static int find_task(const mtl_model *m, const char *name, const char *key, mtl_error *err) {
    for (int t = 0; t < m->T; t++)
        if (strcmp(m->shape.task_names[t], name) == 0) return t;
    char known[512] = "";
    for (int t = 0; t < m->T; t++) {
        strncat(known, m->shape.task_names[t], sizeof known - strlen(known) - 3);
        if (t + 1 < m->T) strcat(known, ", ");
    }
    return mtl_fail(err, NULL, "%s: '%s' is not a task of the data (tasks: %s)", key, name, known);
}

int mtl_build_esmm(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    if (m->T != 2)
        return mtl_fail(err, NULL, "esmm: needs exactly 2 tasks (click, conversion), data has %d",
                        m->T);
    if ((m->esmm_ctr = find_task(m, cfg->ctr_task, "ctr_task", err)) < 0) return MTL_ERR;
    if ((m->esmm_ctcvr = find_task(m, cfg->ctcvr_task, "ctcvr_task", err)) < 0) return MTL_ERR;
    if (m->esmm_ctr == m->esmm_ctcvr)
        return mtl_fail(err, NULL, "esmm: ctr_task and ctcvr_task are both '%s'", cfg->ctr_task);
    if (m->shape.task_regression[0] || m->shape.task_regression[1])
        return mtl_fail(err, NULL, "esmm: both tasks must be binary");
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    m->P = 3; /* pCTR, pCVR, pCTCVR */
    static const char *names[2] = {"towers.ctr", "towers.cvr"};
    for (int t = 0; t < 2; t++) {
        m->tower[t] = mtl_stack_add(m, names[t], m->x0, m->in_dim, m->in_dim, &cfg->tower_units, 1,
                                    m->logits + (size_t)t, 2, err);
        if (m->tower[t] < 0) return MTL_ERR;
        m->stacks[m->tower[t]].logit_head = 1;
    }
    p->towers = mtl_group_add(m, m->tower, 2, MTL_NONE, 0, err);
    if (p->towers < 0) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}
