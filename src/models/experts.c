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
#include <stdio.h>
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

/* One level under construction: its inputs and the stacks it has so far. */
typedef struct {
    int T, E, num_specific, num_shared, last;
    int width;         /* an expert's output */
    int in_dim, in_ld; /* the level's inputs */
    size_t task_in[MTL_MAX_TASKS], shared_in;
    char prefix[48]; /* "levels.<l>." when there are several, else "" */
    int specific[MTL_MAX_TASKS][MTL_MAX_GROUP], shared[MTL_MAX_GROUP]; /* expert stacks */
    int task_gate_stack[MTL_MAX_TASKS], shared_gate_stack;             /* -1: none */
} level_build;

/* The level's experts e = 0..E-1: each task's, then the shared ones.
 * Multi-layer experts write their last layer side by side. */
static int add_experts(mtl_model *m, const mtl_config *cfg, level_plan *L, level_build *b,
                       mtl_error *err) {
    size_t expert_out = 0;
    int expert_ld = 0; /* 0: each expert its own buffer */
    if (cfg->expert_units.n > 1) {
        expert_out = mtl_arena_add(m, b->E * b->width);
        expert_ld = b->E * b->width;
    }
    char name[96];
    for (int e = 0; e < b->E; e++) {
        int t = e / (b->num_specific ? b->num_specific : 1), k = e - t * b->num_specific;
        int is_shared = e >= b->T * b->num_specific;
        if (is_shared) k = e - b->T * b->num_specific;
        if (!is_shared)
            snprintf(name, sizeof name, "%sexperts.task%d.%d", b->prefix, t, k);
        else if (b->num_specific > 0)
            snprintf(name, sizeof name, "%sexperts.shared.%d", b->prefix, k);
        else
            snprintf(name, sizeof name, "%sexperts.%d", b->prefix, k);
        int s = mtl_stack_add(m,
                              &(mtl_stack_spec){.name = name,
                                                .in = is_shared ? b->shared_in : b->task_in[t],
                                                .in_ld = b->in_ld,
                                                .in_dim = b->in_dim,
                                                .hidden = &cfg->expert_units,
                                                .out = expert_out + (size_t)(e * b->width),
                                                .out_ld = expert_ld},
                              err);
        if (s < 0) return MTL_ERR;
        if (is_shared)
            b->shared[k] = s;
        else
            b->specific[t][k] = s;
        L->stacks[L->n_stacks++] = s;
    }
    return MTL_OK;
}

/* The gate DNNs: one per task, and a shared one below the last PLE level
 * (hidden units from list shared_gate_list of --gate-units). */
static int add_gate_stacks(mtl_model *m, const mtl_config *cfg, level_plan *L, level_build *b,
                           int shared_gate_list, mtl_error *err) {
    const mtl_task_units *gu = &cfg->gate_units;
    char name[96];
    for (int t = 0; t < b->T; t++) {
        snprintf(name, sizeof name, "%sgates.%d", b->prefix, t);
        b->task_gate_stack[t] =
            mtl_stack_add(m,
                          &(mtl_stack_spec){.name = name,
                                            .in = b->task_in[t],
                                            .in_ld = b->in_ld,
                                            .in_dim = b->in_dim,
                                            .hidden = mtl_task_units_at(gu, t),
                                            .head = b->num_specific + b->num_shared},
                          err);
        if (b->task_gate_stack[t] < 0) return MTL_ERR;
        L->stacks[L->n_stacks++] = b->task_gate_stack[t];
    }
    b->shared_gate_stack = -1;
    if (b->last) return MTL_OK;
    snprintf(name, sizeof name, "%sgates.shared", b->prefix);
    b->shared_gate_stack = mtl_stack_add(m,
                                         &(mtl_stack_spec){.name = name,
                                                           .in = b->shared_in,
                                                           .in_ld = b->in_ld,
                                                           .in_dim = b->in_dim,
                                                           .hidden = &gu->list[shared_gate_list],
                                                           .head = b->E},
                                         err);
    if (b->shared_gate_stack < 0) return MTL_ERR;
    L->stacks[L->n_stacks++] = b->shared_gate_stack;
    return MTL_OK;
}

/* Groups: the experts and gates that read the same input (on the first
 * level all of them, above it each task's and the shared ones), all writing
 * into one level buffer. */
static int add_groups(mtl_model *m, int level, level_plan *L, const level_build *b,
                      mtl_error *err) {
    int members[MTL_MAX_TASKS + 1][MTL_MAX_GROUP], n_members[MTL_MAX_TASKS + 1] = {0};
    int T = b->T, n_inputs = level == 0 ? 1 : T + 1;
    for (int t = 0; t < T; t++) {
        int gi = level == 0 ? 0 : t;
        for (int k = 0; k < b->num_specific; k++) members[gi][n_members[gi]++] = b->specific[t][k];
        members[gi][n_members[gi]++] = b->task_gate_stack[t];
    }
    int gs = level == 0 ? 0 : T;
    for (int k = 0; k < b->num_shared; k++) members[gs][n_members[gs]++] = b->shared[k];
    if (b->shared_gate_stack >= 0) members[gs][n_members[gs]++] = b->shared_gate_stack;
    /* the groups side by side, each from a 16-float column (experts first in
     * a group: each expert's 16 outputs of a row on one cache line) */
    int width[MTL_MAX_TASKS + 1] = {0}, total = 0;
    for (int gi = 0; gi < n_inputs; gi++) {
        for (int i = 0; i < n_members[gi]; i++)
            width[gi] += m->stacks[members[gi][i]].layer[0].out_dim;
        total += (width[gi] + MTL_ARENA_ALIGN - 1) / MTL_ARENA_ALIGN * MTL_ARENA_ALIGN;
    }
    size_t level_buf = mtl_arena_add(m, total);
    int col = 0;
    for (int gi = 0; gi < n_inputs; gi++) {
        if (n_members[gi] == 0) continue;
        int g = mtl_group_add(m, members[gi], n_members[gi], level_buf + (size_t)col, total, err);
        if (g < 0) return MTL_ERR;
        L->groups[L->n_groups++] = g;
        col += (width[gi] + MTL_ARENA_ALIGN - 1) / MTL_ARENA_ALIGN * MTL_ARENA_ALIGN;
    }
    return MTL_OK;
}

/* The shared gate's name in reports: "<prefix>shared", or its tensors'
 * "<prefix>gates.shared" when a task is called "shared". */
static void shared_gate_name(const mtl_model *m, const level_build *b, char *name, size_t size) {
    const char *what = "shared";
    for (int t = 0; t < b->T; t++)
        if (strcmp(m->shape.task_names[t], "shared") == 0) what = "gates.shared";
    snprintf(name, size, "%s%s", b->prefix, what);
}

/* The mixtures (eq. 1-3, 5): task t's gate over t's experts and the shared
 * ones; the shared gate over all. task_gate[t] and *shared_gate (-1: none)
 * receive the gates, whose outputs the next level reads. Gates are named
 * after their task (mtl_gate). */
static int add_mixtures(mtl_model *m, level_plan *L, const level_build *b, int *task_gate,
                        int *shared_gate, mtl_error *err) {
    char name[sizeof m->gates[0].name];
    for (int t = 0; t < b->T; t++) {
        int experts[MTL_MAX_GROUP], K = 0;
        for (int k = 0; k < b->num_specific; k++) experts[K++] = b->specific[t][k];
        for (int k = 0; k < b->num_shared; k++) experts[K++] = b->shared[k];
        snprintf(name, sizeof name, "%s%s", b->prefix, m->shape.task_names[t]);
        int g = mtl_gate_add(m, name, b->task_gate_stack[t], experts, K, err);
        if (g < 0) return MTL_ERR;
        L->gates[L->n_gates++] = g;
        task_gate[t] = g;
    }
    *shared_gate = -1;
    if (b->shared_gate_stack < 0) return MTL_OK;
    int experts[MTL_MAX_GROUP], K = 0;
    for (int t = 0; t < b->T; t++)
        for (int k = 0; k < b->num_specific; k++) experts[K++] = b->specific[t][k];
    for (int k = 0; k < b->num_shared; k++) experts[K++] = b->shared[k];
    shared_gate_name(m, b, name, sizeof name);
    int g = mtl_gate_add(m, name, b->shared_gate_stack, experts, K, err);
    if (g < 0) return MTL_ERR;
    L->gates[L->n_gates++] = g;
    *shared_gate = g;
    return MTL_OK;
}

static int check_options(const mtl_config *cfg, int T, int num_levels, int num_specific,
                         int num_shared, mtl_error *err) {
    const mtl_task_units *gu = &cfg->gate_units;
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
    return MTL_OK;
}

int mtl_build_experts(mtl_model *m, const mtl_config *cfg, int num_levels, int num_specific,
                      int num_shared, mtl_error *err) {
    int T = m->T;
    if (check_options(cfg, T, num_levels, num_specific, num_shared, err)) return MTL_ERR;
    int shared_gate_list = num_levels > 1 && cfg->gate_units.n_lists == T + 1 ? T : 0;
    plan *p = calloc(1, sizeof *p);
    if (!p) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->arch = p;
    p->n_levels = num_levels;
    level_build b = {.T = T,
                     .E = T * num_specific + num_shared,
                     .num_specific = num_specific,
                     .num_shared = num_shared,
                     .width = cfg->expert_units.units[cfg->expert_units.n - 1],
                     .in_dim = m->in_dim,
                     .shared_in = m->x0};
    for (int t = 0; t < T; t++) b.task_in[t] = m->x0;
    int task_gate[MTL_MAX_TASKS] = {0}, shared_gate = -1; /* the last level's mixtures */
    for (int l = 0; l < num_levels; l++) {
        level_plan *L = &p->level[l];
        b.last = l == num_levels - 1;
        b.in_ld = b.in_dim;
        if (l > 0) { /* the level below's mixtures */
            for (int t = 0; t < T; t++) b.task_in[t] = m->gates[task_gate[t]].out;
            b.shared_in = shared_gate >= 0 ? m->gates[shared_gate].out : m->x0;
        }
        if (num_levels > 1)
            snprintf(b.prefix, sizeof b.prefix, "levels.%d.", l);
        else
            b.prefix[0] = '\0';
        if (add_experts(m, cfg, L, &b, err) ||
            add_gate_stacks(m, cfg, L, &b, shared_gate_list, err) || add_groups(m, l, L, &b, err) ||
            add_mixtures(m, L, &b, task_gate, &shared_gate, err))
            return MTL_ERR;
        b.in_dim = b.width;
    }
    size_t in[MTL_MAX_TASKS];
    int dim[MTL_MAX_TASKS];
    for (int t = 0; t < T; t++) in[t] = m->gates[task_gate[t]].out, dim[t] = b.width;
    if (mtl_towers_add(m, cfg, in, dim, 1, NULL, err)) return MTL_ERR;
    m->forward_body = forward;
    m->backward_body = backward;
    return MTL_OK;
}
