/* CGC, Customized Gate Control (Tang et al., "Progressive Layered
 * Extraction", RecSys 2020, section 4.2): task-specific and shared experts;
 * task t's gate mixes t's experts and the shared ones. One level of
 * experts.c. */
#include "mtl/model.h"

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, 1, cfg->num_experts_specific, cfg->num_experts_shared, err);
}

const mtl_model_desc mtl_model_cgc = {
    .name = "cgc",
    .summary = "CGC (Tang et al., RecSys 2020): per-task and shared experts, a gate per task",
    .options = "num_experts_specific, num_experts_shared, expert_units, gate_units,\n"
               "                 tower_units",
    .build = build,
    .onnx = MTL_ONNX_TASKS,
};
