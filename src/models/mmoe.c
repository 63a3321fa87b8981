/* MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with
 * Multi-gate Mixture-of-Experts", KDD 2018, section 4.3, eq. 5-6):
 * num_experts experts shared by all tasks, one softmax gate per task,
 * y_k = h^k(sum_i g^k(x)_i f_i(x)). One level of experts.c with shared
 * experts only. */
#include "mtl/model.h"

static int build(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, 1, 0, cfg->num_experts, err);
}

const mtl_model_desc mtl_model_mmoe = {
    .name = "mmoe",
    .summary = "MMoE (Ma et al., KDD 2018): shared experts, a softmax gate per task",
    .options = "num_experts, expert_units, gate_units, tower_units",
    .build = build,
    .onnx = MTL_ONNX_TASKS,
};
