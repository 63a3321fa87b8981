/* PLE, Progressive Layered Extraction (Tang et al., RecSys 2020, section
 * 4.3): num_levels stacked CGC levels with a shared gate feeding the next
 * level's shared experts; task t's experts and gate above the first level read
 * task t's output of the level below (eq. 5), not the raw input. */
#include "mtl/model.h"

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, cfg->num_levels, cfg->num_experts_specific,
                             cfg->num_experts_shared, err);
}

const mtl_model_desc mtl_model_ple = {
    .name = "ple",
    .summary = "PLE (Tang et al., RecSys 2020): num_levels stacked CGC levels",
    .options = "num_levels, num_experts_specific, num_experts_shared, expert_units,\n"
               "                 gate_units (per task, + shared gate), tower_units",
    .build = build,
    .onnx = MTL_ONNX_TASKS,
};
