/* Shared-Bottom (Caruana, "Multitask Learning", 1997): one bottom DNN on the
 * input, one tower per task on the bottom's output. All towers read the same
 * input, so their first layers run as one fused product. */
#include <stdlib.h>

#include "mtl/model.h"

typedef struct {
    int bottom; /* stack index */
} plan;

static void forward(mtl_model *m, int B, int train) {
    plan *p = m->arch;
    mtl_stack_forward(m, &m->stacks[p->bottom], B, train);
    mtl_towers_forward(m, B, train);
}

static void backward(mtl_model *m, int B) {
    plan *p = m->arch;
    mtl_towers_backward(m, B);
    mtl_stack_backward(m, &m->stacks[p->bottom], B);
}

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    p->bottom = mtl_stack_add(m,
                              &(mtl_stack_spec){.name = "bottom",
                                                .in = m->x0,
                                                .in_ld = m->in_dim,
                                                .in_dim = m->in_dim,
                                                .hidden = &cfg->bottom_units},
                              err);
    if (p->bottom < 0) return MTL_ERR;
    const mtl_stack *bottom = &m->stacks[p->bottom];
    size_t shared_out = bottom->layer[bottom->n - 1].z;
    int width = bottom->layer[bottom->n - 1].out_dim;
    if (shared_out == MTL_NONE) { /* one-layer bottom: give it its own buffer now */
        shared_out = mtl_arena_add(m, width);
        m->stacks[p->bottom].layer[0].z = shared_out;
    }
    size_t in[MTL_MAX_TASKS];
    int dim[MTL_MAX_TASKS];
    for (int t = 0; t < m->T; t++) in[t] = shared_out, dim[t] = width;
    if (mtl_towers_add(m, cfg, in, dim, 1, NULL, err)) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}

const mtl_model_desc mtl_model_shared_bottom = {
    .name = "shared_bottom",
    .summary = "Shared-Bottom (Caruana 1997): a bottom DNN, a tower per task",
    .options = "bottom_units, tower_units",
    .build = build,
    .onnx = MTL_ONNX_TASKS,
};
