/* CGC, Customized Gate Control (Tang et al., "Progressive Layered
 * Extraction", RecSys 2020, section 4.2): task-specific and shared experts;
 * task t's gate mixes t's experts and the shared ones. */
#include "mtl/model.h"

int mtl_build_cgc(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, 1, cfg->num_experts_specific, cfg->num_experts_shared, "",
                             err);
}
