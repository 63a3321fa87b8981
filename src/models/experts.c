/* Levels of experts and gates: the machinery MMoE, CGC and PLE share.
 *
 * One level (CGC, Tang et al., RecSys 2020, section 4.2, fig. 4): per task
 * `num_specific` private experts and one gate, plus `num_shared` shared
 * experts. Task t's gate mixes t's private experts and the shared ones:
 *   g_t(x) = softmax(W_t x),   y_t = sum_k g_t,k(x) * E_k(x)        (eq. 1-3)
 * PLE (section 4.3, fig. 5, eq. 5): levels stacked; every level but the last
 * also has a shared gate over ALL experts, whose output feeds the next level's
 * shared experts; above the first level, task t's experts and t's gate read
 * task t's output of the level below, the shared experts and shared gate the
 * shared output. MMoE (Ma et al., KDD 2018, eq. 5) is one level with shared
 * experts only.
 *
 * All experts and gates of a level that read the same input are one group:
 * one GEMM. On the first level that is every expert and every gate. */
#include <stdlib.h>
#include <string.h>

#include "mtl/model.h"

#define MAX_LEVELS 8

typedef struct {
    int n_groups, groups[MTL_MAX_TASKS + 1];
    int n_stacks, stacks[MTL_MAX_GROUP]; /* experts, then gate stacks */
    int n_gates, gates[MTL_MAX_TASKS + 1];
} level_plan;

typedef struct {
    int n_levels;
    level_plan level[MAX_LEVELS];
} plan;

static void forward(mtl_model *m, int B, int train) {
    plan *p = m->arch;
    for (int l = 0; l < p->n_levels; l++) {
        const level_plan *L = &p->level[l];
        for (int i = 0; i < L->n_groups; i++) mtl_group_forward(m, &m->groups[L->groups[i]], B);
        for (int i = 0; i < L->n_stacks; i++)
            mtl_stack_forward(m, &m->stacks[L->stacks[i]], B, train);
        for (int i = 0; i < L->n_gates; i++) mtl_gate_forward(m, &m->gates[L->gates[i]], B);
    }
    mtl_towers_forward(m, B, train);
}

static void backward(mtl_model *m, int B) {
    plan *p = m->arch;
    mtl_towers_backward(m, B);
    for (int l = p->n_levels - 1; l >= 0; l--) {
        const level_plan *L = &p->level[l];
        for (int i = L->n_gates - 1; i >= 0; i--) mtl_gate_backward(m, &m->gates[L->gates[i]], B);
        for (int i = L->n_stacks - 1; i >= 0; i--)
            mtl_stack_backward(m, &m->stacks[L->stacks[i]], B);
        for (int i = L->n_groups - 1; i >= 0; i--)
            mtl_group_backward(m, &m->groups[L->groups[i]], B);
    }
}

int mtl_build_experts(mtl_model *m, const mtl_config *cfg, int num_levels, int num_specific,
                      int num_shared, mtl_error *err) {
    int T = m->T;
    const mtl_task_units *gu = &cfg->gate_units;
    int shared_gate_list = num_levels > 1 && gu->n_lists == T + 1 ? T : 0;
    if (gu->n_lists != 1 && gu->n_lists != T && !(num_levels > 1 && gu->n_lists == T + 1))
        return mtl_fail(err, NULL,
                        "--gate-units: %d lists given for %d tasks (give one list for every "
                        "gate, or one per task split by '/'%s)",
                        gu->n_lists, T, num_levels > 1 ? ", and one more for the shared gate" : "");
    if (num_levels < 1 || num_levels > MAX_LEVELS)
        return mtl_fail(err, NULL, "num_levels: %d is out of range (1..%d)", num_levels,
                        MAX_LEVELS);
    if (num_specific < 0 || num_shared < 0 || num_specific + num_shared < 1)
        return mtl_fail(err, NULL, "experts: a task's gate needs at least one expert");
    int E = T * num_specific + num_shared;
    if (E + T + 1 > MTL_MAX_GROUP)
        return mtl_fail(err, NULL, "experts: %d experts per level is too many (max %d)", E,
                        MTL_MAX_GROUP - T - 1);
    if (cfg->expert_units.n < 1) return mtl_fail(err, NULL, "expert_units: needs a layer");
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    p->n_levels = num_levels;
    int width = cfg->expert_units.units[cfg->expert_units.n - 1];

    /* inputs of the current level: per task, and shared */
    size_t task_in[MTL_MAX_TASKS], shared_in = m->x0;
    int in_dim = m->in_dim;
    for (int t = 0; t < T; t++) task_in[t] = m->x0;
    int prev_shared_gate = -1, prev_task_gate[MTL_MAX_TASKS];

    for (int l = 0; l < num_levels; l++) {
        level_plan *L = &p->level[l];
        int last = l == num_levels - 1;
        int in_ld = in_dim;
        if (l > 0) {
            for (int t = 0; t < T; t++) task_in[t] = m->gates[prev_task_gate[t]].out;
            shared_in = prev_shared_gate >= 0 ? m->gates[prev_shared_gate].out : m->x0;
        }
        char lp[48];
        if (num_levels > 1)
            snprintf(lp, sizeof lp, "levels.%d.", l);
        else
            lp[0] = '\0';
        /* multi-layer experts write their last layer side by side */
        size_t expert_out = 0;
        int expert_ld = 0; /* 0: each expert its own buffer */
        if (cfg->expert_units.n > 1) {
            expert_out = mtl_arena_add(m, E * width);
            expert_ld = E * width;
        }
        int specific[MTL_MAX_TASKS][MTL_MAX_GROUP], shared[MTL_MAX_GROUP];
        char name[96];
        /* experts e = 0..E-1: each task's, then the shared ones */
        for (int e = 0; e < E; e++) {
            int t = e / (num_specific ? num_specific : 1), k = e - t * num_specific;
            int is_shared = e >= T * num_specific;
            if (is_shared) k = e - T * num_specific;
            if (!is_shared)
                snprintf(name, sizeof name, "%sexperts.task%d.%d", lp, t, k);
            else if (num_specific > 0)
                snprintf(name, sizeof name, "%sexperts.shared.%d", lp, k);
            else
                snprintf(name, sizeof name, "%sexperts.%d", lp, k);
            int s = mtl_stack_add(m,
                                  &(mtl_stack_spec){.name = name,
                                                    .in = is_shared ? shared_in : task_in[t],
                                                    .in_ld = in_ld,
                                                    .in_dim = in_dim,
                                                    .hidden = &cfg->expert_units,
                                                    .out = expert_out + (size_t)(e * width),
                                                    .out_ld = expert_ld},
                                  err);
            if (s < 0) return MTL_ERR;
            if (is_shared)
                shared[k] = s;
            else
                specific[t][k] = s;
            L->stacks[L->n_stacks++] = s;
        }
        /* gates: one per task, and a shared one below the last PLE level */
        int task_gate_stack[MTL_MAX_TASKS], shared_gate_stack = -1;
        int K_task = num_specific + num_shared;
        for (int t = 0; t < T; t++) {
            snprintf(name, sizeof name, "%sgates.%d", lp, t);
            task_gate_stack[t] = mtl_stack_add(m,
                                               &(mtl_stack_spec){.name = name,
                                                                 .in = task_in[t],
                                                                 .in_ld = in_ld,
                                                                 .in_dim = in_dim,
                                                                 .hidden = mtl_task_units_at(gu, t),
                                                                 .head = K_task},
                                               err);
            if (task_gate_stack[t] < 0) return MTL_ERR;
            L->stacks[L->n_stacks++] = task_gate_stack[t];
        }
        if (!last) {
            snprintf(name, sizeof name, "%sgates.shared", lp);
            shared_gate_stack =
                mtl_stack_add(m,
                              &(mtl_stack_spec){.name = name,
                                                .in = shared_in,
                                                .in_ld = in_ld,
                                                .in_dim = in_dim,
                                                .hidden = &gu->list[shared_gate_list],
                                                .head = E},
                              err);
            if (shared_gate_stack < 0) return MTL_ERR;
            L->stacks[L->n_stacks++] = shared_gate_stack;
        }
        /* groups: everything reading the same input, all into one level buffer */
        int members[MTL_MAX_TASKS + 1][MTL_MAX_GROUP], n_members[MTL_MAX_TASKS + 1] = {0};
        int n_inputs = l == 0 ? 1 : T + 1;
        for (int t = 0; t < T; t++) {
            int gi = l == 0 ? 0 : t;
            for (int k = 0; k < num_specific; k++) members[gi][n_members[gi]++] = specific[t][k];
            members[gi][n_members[gi]++] = task_gate_stack[t];
        }
        int gs = l == 0 ? 0 : T;
        for (int k = 0; k < num_shared; k++) members[gs][n_members[gs]++] = shared[k];
        if (shared_gate_stack >= 0) members[gs][n_members[gs]++] = shared_gate_stack;
        int total = 0;
        for (int gi = 0; gi < n_inputs; gi++)
            for (int i = 0; i < n_members[gi]; i++)
                total += m->stacks[members[gi][i]].layer[0].out_dim;
        size_t level_buf = mtl_arena_add(m, total);
        int col = 0;
        for (int gi = 0; gi < n_inputs; gi++) {
            if (n_members[gi] == 0) continue;
            int g =
                mtl_group_add(m, members[gi], n_members[gi], level_buf + (size_t)col, total, err);
            if (g < 0) return MTL_ERR;
            L->groups[L->n_groups++] = g;
            col += m->groups[g].n_out;
        }
        /* the mixtures */
        for (int t = 0; t < T; t++) {
            int experts[MTL_MAX_GROUP], K = 0;
            for (int k = 0; k < num_specific; k++) experts[K++] = specific[t][k];
            for (int k = 0; k < num_shared; k++) experts[K++] = shared[k];
            int g = mtl_gate_add(m, task_gate_stack[t], experts, K, err);
            if (g < 0) return MTL_ERR;
            L->gates[L->n_gates++] = g;
            prev_task_gate[t] = g;
        }
        prev_shared_gate = -1;
        if (shared_gate_stack >= 0) {
            int experts[MTL_MAX_GROUP], K = 0;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < num_specific; k++) experts[K++] = specific[t][k];
            for (int k = 0; k < num_shared; k++) experts[K++] = shared[k];
            int g = mtl_gate_add(m, shared_gate_stack, experts, K, err);
            if (g < 0) return MTL_ERR;
            L->gates[L->n_gates++] = g;
            prev_shared_gate = g;
        }
        in_dim = width;
    }
    size_t in[MTL_MAX_TASKS];
    int dim[MTL_MAX_TASKS];
    for (int t = 0; t < T; t++) in[t] = m->gates[prev_task_gate[t]].out, dim[t] = width;
    if (mtl_towers_add(m, cfg, in, dim, 1, NULL, err)) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}
