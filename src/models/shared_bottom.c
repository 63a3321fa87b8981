/* Shared-Bottom (Caruana, "Multitask Learning", 1997): one bottom DNN on the
 * input, one tower per task on the bottom's output. All towers read the same
 * input, so their first layers run as one fused product. */
#include <stdlib.h>

#include "mtl/model.h"

typedef struct {
    int bottom, towers; /* stack index, group index */
} plan;

static void forward(mtl_model *m, int B, int train) {
    plan *p = m->arch;
    mtl_stack_forward(m, &m->stacks[p->bottom], B, train);
    mtl_group_forward(m, &m->groups[p->towers], B);
    for (int t = 0; t < m->T; t++) mtl_stack_forward(m, &m->stacks[m->tower[t]], B, train);
}

static void backward(mtl_model *m, int B) {
    plan *p = m->arch;
    for (int t = m->T - 1; t >= 0; t--) mtl_stack_backward(m, &m->stacks[m->tower[t]], B);
    mtl_group_backward(m, &m->groups[p->towers], B);
    mtl_stack_backward(m, &m->stacks[p->bottom], B);
}

int mtl_build_shared_bottom(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    p->bottom = mtl_stack_add(m, "bottom", m->x0, m->in_dim, m->in_dim, &cfg->bottom_units, 0,
                              MTL_NONE, 0, err);
    if (p->bottom < 0) return MTL_ERR;
    const mtl_stack *bottom = &m->stacks[p->bottom];
    size_t shared_out = bottom->layer[bottom->n - 1].z;
    int width = bottom->layer[bottom->n - 1].out_dim;
    if (shared_out == MTL_NONE) { /* one-layer bottom: give it its own buffer now */
        shared_out = mtl_arena_add(m, width);
        m->stacks[p->bottom].layer[0].z = shared_out;
    }
    for (int t = 0; t < m->T; t++) {
        char name[32];
        snprintf(name, sizeof name, "towers.%d", t);
        m->tower[t] = mtl_stack_add(m, name, shared_out, width, width, &cfg->tower_units, 1,
                                    m->logits + (size_t)t, m->T, err);
        if (m->tower[t] < 0) return MTL_ERR;
        m->stacks[m->tower[t]].logit_head = 1;
    }
    p->towers = mtl_group_add(m, m->tower, m->T, MTL_NONE, 0, err);
    if (p->towers < 0) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}
