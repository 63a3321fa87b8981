/* MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with
 * Multi-gate Mixture-of-Experts", KDD 2018, section 4.3, eq. 5-6):
 * num_experts experts shared by all tasks, one softmax gate per task,
 * y_k = h^k(sum_i g^k(x)_i f_i(x)). */
#include "mtl/model.h"

int mtl_build_mmoe(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    return mtl_build_experts(m, cfg, 1, 0, cfg->num_experts, "", err);
}
