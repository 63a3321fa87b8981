/* PLE, Progressive Layered Extraction (Tang et al., RecSys 2020, section
 * 4.3): num_levels stacked CGC levels with a shared gate feeding the next
 * level's shared experts; task t's experts and gate above the first level read
 * task t's output of the level below (eq. 5), not the raw input. */
#include "mtl/model.h"

int mtl_build_ple(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, cfg->num_levels, cfg->num_experts_specific,
                             cfg->num_experts_shared, "", err);
}
