/* The architectures. Adding one is a file in src/models/ that defines
 * `const mtl_model_desc mtl_model_NAME` and one line in this list. */
#include <string.h>

#include "mtl/model.h"

#define MTL_MODEL_LIST(X)                                                                          \
    X(shared_bottom)                                                                               \
    X(esmm)                                                                                        \
    X(mmoe)                                                                                        \
    X(cgc)                                                                                         \
    X(ple)                                                                                         \
    X(aitm)                                                                                        \
    /* (the end of the list) */

#define DECLARE(name) extern const mtl_model_desc mtl_model_##name;
#define ENTRY(name) &mtl_model_##name,
MTL_MODEL_LIST(DECLARE)
const mtl_model_desc *const mtl_models[] = {MTL_MODEL_LIST(ENTRY) NULL};

const mtl_model_desc *mtl_model_find(const char *name) {
    for (int i = 0; name && mtl_models[i]; i++)
        if (strcmp(mtl_models[i]->name, name) == 0) return mtl_models[i];
    return NULL;
}
