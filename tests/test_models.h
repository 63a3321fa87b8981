/* The architectures as the tests name them: an index into the model list
 * (src/models/models.c), in its order, and its descriptor. */
#ifndef MTL_TEST_MODELS_H
#define MTL_TEST_MODELS_H

#include "mtl/model.h"

enum { K_SHARED_BOTTOM = 0, K_ESMM, K_MMOE, K_CGC, K_PLE, K_AITM };

static inline const mtl_model_desc *model_of(int k) {
    return mtl_models[k];
}

static inline int kind_of(const mtl_model *m) {
    for (int k = 0; mtl_models[k]; k++)
        if (mtl_models[k] == m->desc) return k;
    return -1;
}

/* one DNN shape for every task */
static inline mtl_task_units every_task(mtl_units u) {
    mtl_task_units t;
    memset(&t, 0, sizeof t);
    t.n_lists = 1;
    t.list[0] = u;
    return t;
}

#endif
