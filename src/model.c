/* The model engine: stacks, fused groups and gates over one parameter block
 * and one activation arena; the input layer, predictions and the multi-task
 * loss. The architectures themselves are composed in src/models/. */
#include "mtl/model.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/util.h"

/* Keras' BatchNormalization defaults (DeepCTR builds on Keras). */
#define BN_MOMENTUM 0.01f
#define BN_EPS MTL_BN_EPS

/* Regions start on a cache line (16 floats; the arena itself is aligned),
 * so a row of 16 floats at a 16-aligned column of a 16-aligned width (an
 * expert's output in its level's buffer) is one line, not two. */
size_t mtl_arena_add(mtl_model *m, int cols) {
    size_t off = (m->arena_size + MTL_ARENA_ALIGN - 1) / MTL_ARENA_ALIGN * MTL_ARENA_ALIGN;
    m->arena_size = off;
    m->arena_size += (size_t)m->max_batch * (size_t)cols;
    return off;
}

int mtl_stack_add(mtl_model *m, const mtl_stack_spec *spec, mtl_error *err) {
    if (mtl_grow((void **)&m->stacks, &m->cap_stacks, m->n_stacks + 1, sizeof(mtl_stack), "model",
                 err))
        return MTL_ERR;
    mtl_stack *s = &m->stacks[m->n_stacks];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", spec->name);
    s->in = spec->in;
    s->in_ld = spec->in_ld;
    s->in_dim = spec->in_dim;
    s->logit_head = spec->logit_head;
    s->shares = spec->shares - 1;
    int prev = spec->in_dim, n_hidden = spec->hidden ? spec->hidden->n : 0;
    s->n = n_hidden + (spec->head > 0);
    if (s->n == 0)
        return mtl_fail(err, MTL_HERE, "%s: a stack needs at least one layer", spec->name);
    for (int i = 0; i < s->n; i++) {
        mtl_layer *L = &s->layer[i];
        L->hidden = i < n_hidden;
        L->in_dim = prev;
        L->out_dim = L->hidden ? spec->hidden->units[i] : spec->head;
        L->w = L->b = L->gamma = L->beta = L->run_mean = L->run_var = -1;
        L->xhat = L->invstd = L->bn_dx = L->mask = MTL_NONE;
        int last = i == s->n - 1;
        if (last && spec->out_ld > 0) {
            L->z = spec->out;
            L->ld = spec->out_ld;
        } else if (i == 0) {
            L->z = MTL_NONE; /* a group may place it; else its own buffer at finish */
            L->ld = L->out_dim;
        } else {
            L->z = mtl_arena_add(m, L->out_dim);
            L->ld = L->out_dim;
        }
        if (L->hidden && m->batch_norm) {
            L->xhat = mtl_arena_add(m, L->out_dim);
            L->bn_dx = mtl_arena_add(m, L->out_dim);
            L->invstd = m->arena_size;
            m->arena_size += (size_t)L->out_dim;
        }
        if (L->hidden && m->dropout > 0) L->mask = mtl_arena_add(m, L->out_dim);
        prev = L->out_dim;
    }
    if (s->shares >= 0) {
        const mtl_stack *o = &m->stacks[s->shares];
        /* only linear layers: hidden ones would also share batch-norm state */
        int same = o->n == s->n && o->shares < 0;
        for (int i = 0; same && i < s->n; i++)
            same = !s->layer[i].hidden && o->layer[i].in_dim == s->layer[i].in_dim &&
                   o->layer[i].out_dim == s->layer[i].out_dim;
        if (!same)
            return mtl_fail(err, MTL_HERE, "%s: cannot share the parameters of %s", s->name,
                            o->name);
    }
    return m->n_stacks++;
}

int mtl_towers_add(mtl_model *m, const mtl_config *cfg, const size_t *in, const int *in_dim,
                   int head, const char *const *names, mtl_error *err) {
    int T = m->T, one_input = 1;
    const mtl_task_units *u = &cfg->tower_units;
    if (u->n_lists != 1 && u->n_lists != T)
        return mtl_fail(err, NULL,
                        "--tower-units: %d lists given for %d tasks (give one list "
                        "for every task, or one per task split by '/')",
                        u->n_lists, T);
    int stacks[MTL_MAX_TASKS];
    m->towers_group = -1;
    for (int t = 0; t < T; t++) {
        char name[64];
        snprintf(name, sizeof name, "towers.%d", t);
        mtl_stack_spec spec = {.name = names ? names[t] : name,
                               .in = in[t],
                               .in_ld = in_dim[t],
                               .in_dim = in_dim[t],
                               .hidden = mtl_task_units_at(u, t),
                               .head = head ? 1 : 0,
                               .logit_head = head,
                               .out = m->logits + (size_t)t,
                               .out_ld = head ? T : 0};
        stacks[t] = m->towers[t] = mtl_stack_add(m, &spec, err);
        if (stacks[t] < 0) return MTL_ERR;
        if (head) m->tower[t] = stacks[t];
        one_input = one_input && in[t] == in[0];
    }
    m->towers_group = one_input ? mtl_group_add(m, stacks, T, 0, 0, err) : -1;
    return one_input && m->towers_group < 0 ? MTL_ERR : MTL_OK;
}

void mtl_towers_forward(mtl_model *m, int B, int train) {
    if (m->towers_group >= 0) mtl_group_forward(m, &m->groups[m->towers_group], B);
    for (int t = 0; t < m->T; t++) mtl_stack_forward(m, &m->stacks[m->towers[t]], B, train);
}

void mtl_towers_backward(mtl_model *m, int B) {
    for (int t = m->T - 1; t >= 0; t--) mtl_stack_backward(m, &m->stacks[m->towers[t]], B);
    if (m->towers_group >= 0) mtl_group_backward(m, &m->groups[m->towers_group], B);
}

int mtl_group_add(mtl_model *m, const int *stacks, int n, size_t out, int out_ld, mtl_error *err) {
    if (mtl_grow((void **)&m->groups, &m->cap_groups, m->n_groups + 1, sizeof(mtl_group), "model",
                 err))
        return MTL_ERR;
    if (n > MTL_MAX_GROUP) return mtl_fail(err, MTL_HERE, "group: too many members (%d)", n);
    mtl_group *g = &m->groups[m->n_groups];
    memset(g, 0, sizeof *g);
    const mtl_stack *first = &m->stacks[stacks[0]];
    g->in = first->in;
    g->in_ld = first->in_ld;
    g->in_dim = first->in_dim;
    /* Members whose first layer has a bias come first, so the group's biases are
     * one contiguous vector over its first n_biased output columns. */
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < n; i++) {
            mtl_stack *s = &m->stacks[stacks[i]];
            if (s->in != g->in || s->in_dim != g->in_dim)
                return mtl_fail(err, MTL_HERE, "group: %s reads another input", s->name);
            if (s->layer[0].hidden != pass) continue;
            g->members[g->n_members++] = stacks[i];
            g->n_out += s->layer[0].out_dim;
            if (pass) g->n_biased += s->layer[0].out_dim;
        }
    if (out_ld == 0) {
        out = mtl_arena_add(m, g->n_out);
        out_ld = g->n_out;
    }
    g->out = out;
    g->out_ld = out_ld;
    int col = 0;
    for (int i = 0; i < g->n_members; i++) {
        mtl_stack *s = &m->stacks[g->members[i]];
        if (s->n == 1 && s->layer[0].z != MTL_NONE)
            return mtl_fail(err, MTL_HERE, "group: %s's output is placed twice", s->name);
        s->fused = 1;
        s->layer[0].z = out + (size_t)col;
        s->layer[0].ld = out_ld;
        col += s->layer[0].out_dim;
    }
    return m->n_groups++;
}

int mtl_gate_add(mtl_model *m, const char *name, int stack, const int *experts, int K,
                 mtl_error *err) {
    if (mtl_grow((void **)&m->gates, &m->cap_gates, m->n_gates + 1, sizeof(mtl_gate), "model", err))
        return MTL_ERR;
    if (K > MTL_MAX_GROUP || K < 1) return mtl_fail(err, MTL_HERE, "gate: %d experts", K);
    mtl_gate *g = &m->gates[m->n_gates];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->stack = stack;
    g->K = K;
    memcpy(g->experts, experts, (size_t)K * sizeof *experts);
    const mtl_stack *e0 = &m->stacks[experts[0]];
    g->D = e0->layer[e0->n - 1].out_dim;
    g->out = mtl_arena_add(m, g->D);
    g->out_ld = g->D;
    return m->n_gates++;
}

/* ---- parameter registration ---- */

static int register_weight(mtl_model *m, mtl_stack *s, int i, mtl_error *err) {
    mtl_layer *L = &s->layer[i];
    char name[96];
    if (L->hidden)
        snprintf(name, sizeof name, "%s.dense%d.weight", s->name, i);
    else
        snprintf(name, sizeof name, "%s.out.weight", s->name);
    L->w = mtl_params_add(&m->params, name, L->out_dim, L->in_dim, MTL_INIT_GLOROT_NORMAL,
                          MTL_REG_DNN, err);
    return L->w < 0 ? MTL_ERR : MTL_OK;
}

static int register_bias(mtl_model *m, mtl_stack *s, int i, mtl_error *err) {
    mtl_layer *L = &s->layer[i];
    char name[96];
    if (!L->hidden) {
        /* A task's logit: a bias-free dense layer, then one scalar bias, as
         * DeepCTR's PredictionLayer. Without it the tower must encode the
         * base rate in its logit weights: on a task near 50% positives
         * (census/adult marital) the first steps turn them all negative, the
         * non-negative ReLU inputs then cap p at 0.5 and the task stalls at a
         * plateau (seen with 1 seed in 3: marital AUC 0.98 instead of 0.995). */
        if (!s->logit_head) return MTL_OK;
        snprintf(name, sizeof name, "%s.out.bias", s->name);
    } else {
        snprintf(name, sizeof name, "%s.dense%d.bias", s->name, i);
    }
    L->b = mtl_params_add(&m->params, name, 1, L->out_dim, MTL_INIT_ZEROS, MTL_REG_NONE, err);
    return L->b < 0 ? MTL_ERR : MTL_OK;
}

static int register_norm(mtl_model *m, mtl_stack *s, int i, mtl_error *err) {
    mtl_layer *L = &s->layer[i];
    if (!L->hidden || !m->batch_norm) return MTL_OK;
    char name[96];
    snprintf(name, sizeof name, "%s.bn%d.gamma", s->name, i);
    L->gamma = mtl_params_add(&m->params, name, 1, L->out_dim, MTL_INIT_ONES, MTL_REG_NONE, err);
    snprintf(name, sizeof name, "%s.bn%d.beta", s->name, i);
    L->beta = mtl_params_add(&m->params, name, 1, L->out_dim, MTL_INIT_ZEROS, MTL_REG_NONE, err);
    snprintf(name, sizeof name, "%s.bn%d.running_mean", s->name, i);
    L->run_mean =
        mtl_params_add(&m->buffers, name, 1, L->out_dim, MTL_INIT_ZEROS, MTL_REG_NONE, err);
    snprintf(name, sizeof name, "%s.bn%d.running_var", s->name, i);
    L->run_var = mtl_params_add(&m->buffers, name, 1, L->out_dim, MTL_INIT_ONES, MTL_REG_NONE, err);
    return (L->gamma < 0 || L->beta < 0 || L->run_mean < 0 || L->run_var < 0) ? MTL_ERR : MTL_OK;
}

static float *pval(mtl_params *p, int idx) {
    return idx < 0 ? NULL : mtl_params_value(p, idx);
}
static float *pgrad(mtl_params *p, int idx) {
    return idx < 0 ? NULL : mtl_params_grad(p, idx);
}

/* Columns of an input whose gradient anybody reads: of the model's input row
 * only the embeddings (the dense features are data), of anything else all. */
static int grad_cols(const mtl_model *m, size_t in, int in_dim) {
    return in == m->x0 ? m->in_dim - m->shape.D : in_dim;
}

/* The GEMM plans of the groups and of the layers that are not fused; the
 * input gradient only for the columns that are needed (grad_cols). */
static int make_plans(mtl_model *m, mtl_gemm_backend want, int threads, mtl_error *err) {
    /* libxsmm's kernels run on one thread: --threads N wants OpenBLAS's */
    if (want == MTL_GEMM_AUTO) want = threads > 1 ? MTL_GEMM_OPENBLAS : mtl_gemm_auto_backend();
    m->gemm_backend = want;
    for (int g = 0; g < m->n_groups; g++) {
        mtl_group *G = &m->groups[g];
        if (mtl_gemm_plan_init(&G->gemm, want, G->in_dim, G->n_out, G->in_ld, G->out_ld,
                               grad_cols(m, G->in, G->in_dim), m->max_batch, err))
            return MTL_ERR;
    }
    for (int i = 0; i < m->n_stacks; i++) {
        mtl_stack *s = &m->stacks[i];
        for (int l = s->fused; l < s->n; l++) {
            mtl_layer *L = &s->layer[l];
            int in_ld = l == 0 ? s->in_ld : s->layer[l - 1].ld;
            int cols = l == 0 ? grad_cols(m, s->in, L->in_dim) : L->in_dim;
            if (mtl_gemm_plan_init(&L->gemm, want, L->in_dim, L->out_dim, in_ld, L->ld, cols,
                                   m->max_batch, err))
                return MTL_ERR;
        }
    }
    return MTL_OK;
}

/* The plans' copies of the weights follow the parameters (gemm.h). */
static void sync_plans(mtl_model *m) {
    if (m->gemm_version == m->params.version) {
#ifndef NDEBUG /* a writer of params.values that did not call mtl_params_changed */
        for (int g = 0; g < m->n_groups; g++)
            assert(!mtl_gemm_plan_stale(&m->groups[g].gemm, m->groups[g].W));
        for (int i = 0; i < m->n_stacks; i++)
            for (int l = m->stacks[i].fused; l < m->stacks[i].n; l++)
                assert(!mtl_gemm_plan_stale(&m->stacks[i].layer[l].gemm, m->stacks[i].layer[l].W));
#endif
        return;
    }
    for (int g = 0; g < m->n_groups; g++) mtl_gemm_plan_sync(&m->groups[g].gemm, m->groups[g].W);
    for (int i = 0; i < m->n_stacks; i++)
        for (int l = m->stacks[i].fused; l < m->stacks[i].n; l++)
            mtl_gemm_plan_sync(&m->stacks[i].layer[l].gemm, m->stacks[i].layer[l].W);
    m->gemm_version = m->params.version;
}

/* Every tensor of the stacks in the parameter block: groups first (their
 * members' first-layer weights one after another, then their biases, so each
 * group is one [n_out x in_dim] matrix and one bias), then the other layers,
 * then uncertainty weighting's log-variances. */
static int register_layers(mtl_model *m, mtl_error *err) {
    for (int i = 0; i < m->n_stacks; i++) {
        mtl_layer *L = &m->stacks[i].layer[0];
        if (L->z == MTL_NONE) L->z = mtl_arena_add(m, L->out_dim);
    }
    for (int g = 0; g < m->n_groups; g++) {
        mtl_group *G = &m->groups[g];
        for (int i = 0; i < G->n_members; i++)
            if (register_weight(m, &m->stacks[G->members[i]], 0, err)) return MTL_ERR;
        for (int i = 0; i < G->n_members; i++)
            if (register_bias(m, &m->stacks[G->members[i]], 0, err)) return MTL_ERR;
        G->w0 = m->stacks[G->members[0]].layer[0].w;
        G->b0 = m->stacks[G->members[0]].layer[0].b;
    }
    for (int i = 0; i < m->n_stacks; i++) {
        mtl_stack *s = &m->stacks[i];
        if (s->shares >= 0) continue; /* resolve_views points it at the other stack's tensors */
        for (int l = 0; l < s->n; l++) {
            if (!(l == 0 && s->fused)) {
                if (register_weight(m, s, l, err) || register_bias(m, s, l, err)) return MTL_ERR;
            }
            if (register_norm(m, s, l, err)) return MTL_ERR;
        }
    }
    m->log_var = -1;
    if (m->loss_uncertainty) {
        m->log_var =
            mtl_params_add(&m->params, "loss.log_var", 1, m->T, MTL_INIT_ZEROS, MTL_REG_NONE, err);
        if (m->log_var < 0) return MTL_ERR;
    }
    return MTL_OK;
}

/* One table per categorical field (single- and multi-valued), and how each
 * is updated (dense or sparse) and stored (replicated or row-sharded). */
static int register_embeddings(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    for (int s = 0; s < m->shape.S + m->shape.M; s++) {
        char name[96];
        snprintf(name, sizeof name, "embeddings.%d", s);
        int64_t vocab = mtl_model_field_vocab(m, s);
        m->emb[s] = mtl_params_add(&m->params, name, vocab, m->dims[s], MTL_INIT_EMBEDDING,
                                   MTL_REG_EMBEDDING, err);
        if (m->emb[s] < 0) return MTL_ERR;
        /* --embedding-update auto: by bytes. A step touches at most batch_size
         * rows of a table, which as (id, row) pairs are B (4d + 4) bytes in all;
         * a ring allreduce of the whole table moves 2 V 4d: sparse when even a
         * whole batch of distinct rows is smaller, V > B (d + 1) / 2d. (Census
         * and Adult tables, of at most ~50 rows, stay dense.) */
        m->params.tensors[m->emb[s]].sparse =
            cfg->embedding_update == MTL_EMBEDDING_SPARSE ||
            (cfg->embedding_update == MTL_EMBEDDING_AUTO &&
             2 * (int64_t)m->dims[s] * vocab > (int64_t)cfg->batch_size * (m->dims[s] + 1));
        /* row sharding: a sparse table's values, m and v spread over the ranks
         * when forced; under auto when it has many rows, or when it would take
         * more than a share of a rank's memory. Rows: a large table's rows are
         * cache misses on every rank, so fetching them from their owners adds
         * little, while the owners' update and memory halve (bench-vocab.sh,
         * 2 ranks: row-sharded never slower than replicated; 1-11% faster at
         * 1k rows per field, 3-21% at 100k, 0-35% at 1M); a table of a few
         * hundred rows stays in every rank's cache, where replicas look rows
         * up locally. */
        double table_mb = 3.0 * (double)vocab * m->dims[s] * 4.0 / 1048576.0;
        int auto_row =
            vocab >= cfg->shard_min_rows ||
            (cfg->rank_memory_mb > 0 && table_mb > cfg->shard_memory_share * cfg->rank_memory_mb);
        if (m->params.tensors[m->emb[s]].sparse && cfg->world > 1 &&
            (cfg->embedding_sharding == MTL_SHARDING_ROW ||
             (cfg->embedding_sharding == MTL_SHARDING_AUTO && auto_row)))
            mtl_params_shard(&m->params, m->emb[s], cfg->rank, cfg->world);
        else if (m->params.tensors[m->emb[s]].sparse && cfg->world > 1) {
            /* replicated: each row's optimizer state on its owner only */
            m->params.tensors[m->emb[s]].state_rank = cfg->rank;
            m->params.tensors[m->emb[s]].state_world = cfg->world;
        }
    }

    return MTL_OK;
}

/* The layers', groups' and tables' pointers into the blocks, once the blocks
 * exist. */
static int resolve_views(mtl_model *m, mtl_error *err) {
    mtl_params *P = &m->params, *Bf = &m->buffers;
    for (int i = 0; i < m->n_stacks; i++) {
        mtl_stack *s = &m->stacks[i];
        for (int l = 0; l < s->n; l++) {
            mtl_layer *L = &s->layer[l];
            if (s->shares >= 0) {
                const mtl_layer *O = &m->stacks[s->shares].layer[l];
                L->w = O->w;
                L->b = O->b;
            }
            L->W = pval(P, L->w);
            L->dW = pgrad(P, L->w);
            L->bias = pval(P, L->b);
            L->dbias = pgrad(P, L->b);
            L->gam = pval(P, L->gamma);
            L->dgam = pgrad(P, L->gamma);
            L->bet = pval(P, L->beta);
            L->dbet = pgrad(P, L->beta);
            L->rmean = pval(Bf, L->run_mean);
            L->rvar = pval(Bf, L->run_var);
        }
    }
    for (int g = 0; g < m->n_groups; g++) {
        mtl_group *G = &m->groups[g];
        G->W = pval(P, G->w0);
        G->dW = pgrad(P, G->w0);
        G->bias = pval(P, G->b0);
        G->dbias = pgrad(P, G->b0);
        /* the fused product relies on adjacency: check it rather than assume */
        const float *expect_w = G->W, *expect_b = G->bias;
        for (int i = 0; i < G->n_members; i++) {
            const mtl_layer *L = &m->stacks[G->members[i]].layer[0];
            if (L->W != expect_w || (L->hidden && L->bias != expect_b))
                return mtl_fail(err, MTL_HERE, "group %d: parameters are not adjacent", g);
            expect_w += (size_t)L->out_dim * (size_t)L->in_dim;
            if (L->hidden) expect_b += L->out_dim;
        }
    }
    for (int s = 0; s < m->shape.S + m->shape.M; s++) {
        m->tables[s] = pval(P, m->emb[s]);
        m->dtables[s] = pgrad(P, m->emb[s]);
    }
    return MTL_OK;
}

/* Each gate's views of its experts' outputs and gradients in the arena. */
static int bind_gates(mtl_model *m, mtl_error *err) {
    for (int g = 0; g < m->n_gates; g++) {
        mtl_gate *G = &m->gates[g];
        G->expert_out = calloc((size_t)G->K, sizeof *G->expert_out);
        G->expert_grad = calloc((size_t)G->K, sizeof *G->expert_grad);
        if (!G->expert_out || !G->expert_grad)
            return mtl_fail(err, MTL_HERE, "gates: out of memory");
        for (int k = 0; k < G->K; k++) {
            const mtl_stack *e = &m->stacks[G->experts[k]];
            const mtl_layer *L = &e->layer[e->n - 1];
            if (k == 0) G->expert_ld = L->ld;
            if (L->ld != G->expert_ld || L->out_dim != G->D)
                return mtl_fail(err, MTL_HERE, "gate %d: experts differ in layout", g);
            G->expert_out[k] = m->act + L->z;
            G->expert_grad[k] = m->grad + L->z;
        }
    }
    return MTL_OK;
}

int mtl_model_finish(mtl_model *m, const mtl_config *cfg, mtl_error *err) {
    if (register_layers(m, err) || register_embeddings(m, cfg, err)) return MTL_ERR;
    mtl_rng init_rng;
    mtl_rng_seed(&init_rng, cfg->seed);
    if (mtl_params_finalize(&m->params, 1, &init_rng, err)) return MTL_ERR;
    if (m->buffers.n > 0 && mtl_params_finalize(&m->buffers, 0, &init_rng, err)) return MTL_ERR;
    mtl_rng_seed(&m->dropout_rng, cfg->seed ^ 0x9e3779b97f4a7c15ULL);
    if (resolve_views(m, err)) return MTL_ERR;
    if (make_plans(m, (mtl_gemm_backend)cfg->gemm, cfg->threads, err)) return MTL_ERR;
    m->act = mtl_alloc_huge(m->arena_size, sizeof(float), "activations", err);
    m->grad = mtl_alloc_huge(m->arena_size, sizeof(float), "activation gradients", err);
    if (!m->act || !m->grad) return MTL_ERR;
    return bind_gates(m, err);
}

/* ---- execution ---- */

/* Hidden layers add their bias in ReLU's pass over the product (one pass
 * instead of two), unless centering or batch norm comes in between. */
static int bias_with_relu(const mtl_model *m) {
    return m->activation == MTL_ACT_RELU && !m->batch_norm && !m->centering;
}

void mtl_group_forward(mtl_model *m, const mtl_group *g, int B) {
    float *out = m->act + g->out;
    int with_relu = bias_with_relu(m);
    mtl_dense_forward_plan(&g->gemm, out, m->act + g->in, g->W,
                           !with_relu && g->n_biased == g->n_out ? g->bias : NULL, B);
    if (g->n_biased == 0) return;
    if (with_relu) /* the biased members' columns, side by side: their layers' ReLU too */
        mtl_bias_relu_forward(out, g->out_ld, g->bias, B, g->n_biased);
    else if (g->n_biased < g->n_out)
        mtl_bias_forward(out, g->out_ld, g->bias, B, g->n_biased);
}

void mtl_group_backward(mtl_model *m, const mtl_group *g, int B) {
    const float *dout = m->grad + g->out;
    mtl_dense_backward_plan(&g->gemm, m->grad + g->in, g->dW, NULL, dout, m->act + g->in, g->W, B);
    /* without batch norm each member summed its bias gradient (a slice of the
     * group's) with its activation's backward: mtl_stack_backward */
    if (g->n_biased > 0 && m->batch_norm)
        mtl_bias_backward(g->dbias, dout, g->out_ld, B, g->n_biased);
}

/* Data-dependent initialization (Kraehenbuehl et al., ICLR 2016; Salimans &
 * Kingma 2016, sec. 3): shift a layer's bias so that each unit's
 * pre-activation has zero mean over a batch. A tower reads mixtures of ReLU
 * outputs, non-negative and much alike from sample to sample, so with zero
 * biases about half its units are off for every sample from the first step
 * and never recover (seen on Adult: 4 of 8 marital units dead at step 1). */
static void center_columns(float *z, int ld, float *bias, int B, int D) {
    for (int j = 0; j < D; j++) {
        double mean = 0;
        for (int b = 0; b < B; b++) mean += z[(size_t)b * (size_t)ld + (size_t)j];
        mean /= B;
        bias[j] -= (float)mean;
        for (int b = 0; b < B; b++) z[(size_t)b * (size_t)ld + (size_t)j] -= (float)mean;
    }
}

void mtl_model_center_init(mtl_model *m, const mtl_batch *b) {
    if (m->batch_norm || b->n < 2) return; /* batch norm centers by itself */
    mtl_batch rows = *b;
    if (rows.n > m->max_batch) rows.n = m->max_batch; /* what the arena holds */
    m->centering = 1;
    mtl_model_forward(m, &rows, 0);
    m->centering = 0;
}

/* A hidden layer's [centering,] [batch norm,] activation on its product z,
 * which holds the bias. */
static void hidden_forward(mtl_model *m, const mtl_layer *L, float *z, int B, int train) {
    if (m->centering) center_columns(z, L->ld, L->bias, B, L->out_dim);
    if (m->batch_norm) {
        if (train)
            mtl_batchnorm_forward_train(z, L->ld, m->act + L->xhat, m->act + L->invstd, L->rmean,
                                        L->rvar, z, L->ld, L->gam, L->bet, B, L->out_dim,
                                        BN_MOMENTUM, BN_EPS);
        else
            mtl_batchnorm_forward_infer(z, L->ld, z, L->ld, L->gam, L->bet, L->rmean, L->rvar, B,
                                        L->out_dim, BN_EPS);
    }
    mtl_activation_forward(m->activation, z, L->ld, B, L->out_dim);
}

void mtl_stack_forward(mtl_model *m, mtl_stack *s, int B, int train) {
    for (int i = 0; i < s->n; i++) {
        mtl_layer *L = &s->layer[i];
        const float *in = i == 0 ? m->act + s->in : m->act + s->layer[i - 1].z;
        float *z = m->act + L->z;
        int add_bias = L->hidden && bias_with_relu(m);
        if (!(i == 0 && s->fused))
            mtl_dense_forward_plan(&L->gemm, z, in, L->W, add_bias ? NULL : L->bias, B);
        if (!L->hidden) continue;
        if (add_bias) {
            if (!(i == 0 && s->fused)) /* else done by the group */
                mtl_bias_relu_forward(z, L->ld, L->bias, B, L->out_dim);
        } else
            hidden_forward(m, L, z, B, train);
        if (train && m->dropout > 0)
            mtl_dropout_forward(z, L->ld, m->act + L->mask, B, L->out_dim, m->dropout,
                                &m->dropout_rng);
    }
}

void mtl_stack_backward(mtl_model *m, mtl_stack *s, int B) {
    for (int i = s->n - 1; i >= 0; i--) {
        mtl_layer *L = &s->layer[i];
        float *dz = m->grad + L->z;
        float *db = L->dbias;
        if (L->hidden) {
            if (m->dropout > 0) mtl_dropout_backward(dz, L->ld, m->act + L->mask, B, L->out_dim);
            /* the bias gradient with the activation's backward (one pass over dz),
             * unless batch norm changes dz afterwards; a fused first layer's
             * bias is its slice of the group's (checked in resolve_views) */
            int own_bias = !m->batch_norm;
            mtl_activation_bias_backward(m->activation, dz, L->ld, m->act + L->z, L->ld,
                                         own_bias ? L->dbias : NULL, B, L->out_dim);
            if (own_bias) db = NULL;
            if (m->batch_norm) {
                float *dx = m->grad + L->bn_dx;
                memset(dx, 0, (size_t)B * (size_t)L->out_dim * sizeof *dx);
                mtl_batchnorm_backward(dx, L->out_dim, L->dgam, L->dbet, dz, L->ld,
                                       m->act + L->xhat, m->act + L->invstd, L->gam, B, L->out_dim);
                for (int b = 0; b < B; b++)
                    memcpy(dz + (size_t)b * (size_t)L->ld, dx + (size_t)b * (size_t)L->out_dim,
                           (size_t)L->out_dim * sizeof *dz);
            }
        }
        if (i == 0 && s->fused) continue; /* the group does this product */
        const float *in = i == 0 ? m->act + s->in : m->act + s->layer[i - 1].z;
        float *din = i == 0 ? m->grad + s->in : m->grad + s->layer[i - 1].z;
        mtl_dense_backward_plan(&L->gemm, din, L->dW, db, dz, in, L->W, B);
    }
}

void mtl_gate_forward(mtl_model *m, const mtl_gate *g, int B) {
    const mtl_stack *s = &m->stacks[g->stack];
    const mtl_layer *head = &s->layer[s->n - 1];
    float *logits = m->act + head->z;
    mtl_softmax_forward(logits, head->ld, logits, head->ld, B, g->K);
    mtl_mixture_forward(m->act + g->out, g->out_ld, logits, head->ld, g->expert_out, g->expert_ld,
                        B, g->K, g->D);
}

void mtl_gate_backward(mtl_model *m, const mtl_gate *g, int B) {
    const mtl_stack *s = &m->stacks[g->stack];
    const mtl_layer *head = &s->layer[s->n - 1];
    float *dgate = m->grad + head->z;
    const float *gate = m->act + head->z;
    mtl_mixture_backward(dgate, head->ld, g->expert_grad, m->grad + g->out, g->out_ld, gate,
                         head->ld, g->expert_out, g->expert_ld, B, g->K, g->D);
    mtl_softmax_backward(dgate, head->ld, dgate, head->ld, gate, head->ld, B, g->K);
}

/* ---- model ---- */

int mtl_model_create(mtl_model **out, const mtl_config *cfg, const mtl_data_shape *shape,
                     int max_batch, mtl_error *err) {
    *out = NULL;
    if (shape->T < 1 || shape->T > MTL_MAX_TASKS)
        return mtl_fail(err, NULL, "model: %d tasks (1..%d supported)", shape->T, MTL_MAX_TASKS);
    if (shape->S + shape->M > MTL_MAX_FIELDS)
        return mtl_fail(err, NULL, "model: %d categorical fields (max %d)", shape->S + shape->M,
                        MTL_MAX_FIELDS);
    if (shape->S + shape->M + shape->D == 0)
        return mtl_fail(err, NULL, "model: the data has no features");
    mtl_model *m = calloc(1, sizeof *m);
    if (!m) return mtl_fail(err, MTL_HERE, "model: out of memory");
    m->desc = cfg->model;
    m->activation = cfg->activation;
    m->shape = *shape;
    m->T = shape->T;
    m->P = shape->T;
    m->max_batch = max_batch;
    m->embedding_dim = cfg->embedding_dim;
    m->dropout = cfg->dropout;
    m->batch_norm = cfg->batch_norm;
    m->loss_uncertainty = cfg->loss_uncertainty;
    for (int t = 0; t < m->T; t++)
        m->loss_weights[t] = cfg->n_loss_weights ? cfg->loss_weights[t] : 1.0f;
    if (cfg->n_loss_weights && cfg->n_loss_weights != shape->T) {
        free(m);
        return mtl_fail(err, NULL, "--loss-weights: %d weights given for %d tasks",
                        cfg->n_loss_weights, shape->T);
    }
    for (int s = 0; s < shape->S + shape->M; s++) m->dims[s] = cfg->embedding_dim;
    m->in_dim = (shape->S + shape->M) * cfg->embedding_dim + shape->D;
    m->x0 = mtl_arena_add(m, m->in_dim);
    m->logits = mtl_arena_add(m, m->T);
    int rc = m->desc->build(m, cfg, err);
    if (rc == MTL_OK) {
        m->preds = mtl_arena_add(m, m->P);
        rc = mtl_model_finish(m, cfg, err);
    }
    if (rc != MTL_OK) {
        mtl_model_free(m);
        return MTL_ERR;
    }
    *out = m;
    return MTL_OK;
}

void mtl_model_free(mtl_model *m) {
    if (!m) return;
    for (int g = 0; g < m->n_gates; g++) {
        free(m->gates[g].expert_out);
        free(m->gates[g].expert_grad);
    }
    free(m->gates);
    for (int g = 0; g < m->n_groups; g++) mtl_gemm_plan_free(&m->groups[g].gemm);
    for (int i = 0; i < m->n_stacks; i++)
        for (int l = 0; l < m->stacks[i].n; l++) mtl_gemm_plan_free(&m->stacks[i].layer[l].gemm);
    free(m->groups);
    free(m->stacks);
    free(m->arch);
    free(m->act);
    free(m->grad);
    mtl_params_free(&m->params);
    mtl_params_free(&m->buffers);
    free(m);
}

/* ---- multi-valued fields: input columns [S E, (S + M) E) ---- */

int64_t mtl_model_field_vocab(const mtl_model *m, int field) {
    return field < m->shape.S ? m->shape.vocab_sizes[field]
                              : m->shape.multi_vocab_sizes[field - m->shape.S];
}

/* The input row with multi-valued fields: the single-valued embeddings, the
 * pooled lists, then the dense features. */
static void input_forward_multi(mtl_model *m, const mtl_batch *b, int B) {
    int S = m->shape.S, E = m->embedding_dim;
    float *x = m->act + m->x0;
    mtl_input_forward(x, m->in_dim, b->table_rows ? b->table_rows : b->sparse, b->S,
                      (const float *const *)m->tables, m->dims, S, NULL, 0, 0, B);
    for (int j = 0; j < m->shape.M; j++) {
        const int32_t *off = b->multi_off + (size_t)j * (size_t)b->multi_ld;
        const int32_t *rows = b->multi_table_rows ? b->multi_table_rows[j] : b->multi_ids[j];
        mtl_pooled_forward(x + (size_t)(S + j) * (size_t)E, m->in_dim, off, rows, m->tables[S + j],
                           m->dims[S + j], m->shape.multi_mean[j], B);
    }
    mtl_input_forward(x + (size_t)(S + m->shape.M) * (size_t)E, m->in_dim, NULL, 0, NULL, NULL, 0,
                      b->dense, b->D, m->shape.D, B);
}

static void input_backward_multi(mtl_model *m, const mtl_batch *b, int B) {
    int S = m->shape.S, E = m->embedding_dim;
    for (int j = 0; j < m->shape.M; j++) {
        const int32_t *off = b->multi_off + (size_t)j * (size_t)b->multi_ld;
        const int32_t *rows = b->multi_grad_rows ? b->multi_grad_rows[j] : b->multi_ids[j];
        mtl_pooled_backward(m->dtables[S + j], m->dims[S + j], off, rows, m->shape.multi_mean[j],
                            m->grad + m->x0 + (size_t)(S + j) * (size_t)E, m->in_dim, B);
    }
}

void mtl_model_forward(mtl_model *m, const mtl_batch *b, int train) {
    int B = b->n;
    sync_plans(m);
    if (m->shape.M > 0)
        input_forward_multi(m, b, B);
    else
        mtl_input_forward(m->act + m->x0, m->in_dim, b->table_rows ? b->table_rows : b->sparse,
                          b->S, (const float *const *)m->tables, m->dims, m->shape.S, b->dense,
                          b->D, m->shape.D, B);
    m->forward_body(m, B, train);
    if (m->desc->predict)
        m->desc->predict(m, B);
    else
        mtl_model_task_predict(m, B);
}

void mtl_model_task_predict(mtl_model *m, int B) {
    const float *logits = m->act + m->logits;
    float *pred = m->act + m->preds;
    int T = m->T;
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++) {
            float z = logits[i * T + t];
            pred[i * T + t] = m->shape.task_regression[t] ? z : 1.0f / (1.0f + expf(-z));
        }
}

void mtl_model_count_labels(const mtl_model *m, const mtl_batch *b, double *count) {
    for (int t = 0; t < m->T; t++) {
        double c = 0;
        for (int i = 0; i < b->n; i++) {
            size_t at = (size_t)i * (size_t)b->T + (size_t)t;
            if (!isnan(b->labels[at])) c += b->weights ? b->weights[at] : 1.0f;
        }
        count[t] = c;
    }
}

void mtl_model_loss(mtl_model *m, const mtl_batch *b, const double *global_count, int is_root,
                    double *loss_sum) {
    int T = m->T;
    const float *log_var = m->log_var >= 0 ? mtl_params_value(&m->params, m->log_var) : NULL;
    float factor[MTL_MAX_TASKS];
    float scale[MTL_MAX_TASKS];
    for (int t = 0; t < T; t++) {
        /* Kendall, Gal & Cipolla (CVPR 2018) eq. 7/10 with s = log sigma^2:
         * regression 1/2 e^-s L + s/2, classification e^-s L + s/2. */
        float c = m->shape.task_regression[t] ? 0.5f : 1.0f;
        factor[t] = log_var ? c * expf(-log_var[t]) : 1.0f;
        scale[t] =
            global_count[t] > 0 ? (float)(m->loss_weights[t] * factor[t] / global_count[t]) : 0.0f;
    }
    if (m->desc->loss)
        m->desc->loss(m, b, scale, global_count, loss_sum);
    else
        mtl_model_task_loss(m, b, scale, loss_sum);
    if (log_var) {
        float *dlog_var = mtl_params_grad(&m->params, m->log_var);
        for (int t = 0; t < T; t++) {
            if (global_count[t] <= 0) continue;
            dlog_var[t] += (float)(-m->loss_weights[t] * factor[t] * loss_sum[t] / global_count[t]);
            if (is_root) dlog_var[t] += 0.5f;
        }
    }
}

void mtl_model_task_loss(mtl_model *m, const mtl_batch *b, const float *scale, double *loss_sum) {
    int B = b->n, T = m->T;
    float *dlogits = m->grad + m->logits;
    const float *logits = m->act + m->logits;
    int64_t cnt = 0;
    for (int t = 0; t < T; t++) {
        if (m->shape.task_regression[t])
            loss_sum[t] = mtl_mse(dlogits + t, T, logits + t, T, b->labels + t, b->T,
                                  b->weights + t, B, scale[t], &cnt);
        else
            loss_sum[t] = mtl_bce_logits(dlogits + t, T, logits + t, T, b->labels + t, b->T,
                                         b->weights + t, B, scale[t], &cnt);
    }
}

void mtl_model_backward(mtl_model *m, const mtl_batch *b) {
    int B = b->n;
    /* Everything but the logits' gradient (written by the loss) accumulates. */
    size_t keep_lo = m->logits, keep_hi = m->logits + (size_t)m->max_batch * (size_t)m->T;
    memset(m->grad, 0, keep_lo * sizeof(float));
    memset(m->grad + keep_hi, 0, (m->arena_size - keep_hi) * sizeof(float));
    m->backward_body(m, B);
    if (m->shape.S > 0)
        mtl_input_backward(m->dtables, m->dims, m->shape.S, b->grad_rows ? b->grad_rows : b->sparse,
                           b->S, m->grad + m->x0, m->in_dim, B);
    if (m->shape.M > 0) input_backward_multi(m, b, B);
}

float mtl_log_odds(double p) {
    if (p < 1e-4) p = 1e-4;
    if (p > 1 - 1e-4) p = 1 - 1e-4;
    return (float)log(p / (1 - p));
}

void mtl_model_set_prior(mtl_model *m, const double *label_mean) {
    /* "Init well" (Karpathy, A Recipe for Training Neural Networks, 2019):
     * with the logit at the base rate, the first Adam steps no longer push
     * every unit of a small tower whose logit weight has the wrong sign off
     * for good (seen on Adult: 3 of 8 marital units dead after 8 steps). */
    if (m->desc->set_prior) {
        m->desc->set_prior(m, label_mean);
        return;
    }
    for (int t = 0; t < m->T; t++) {
        float *bias = mtl_model_logit_bias(m, t);
        if (bias && !isnan(label_mean[t]))
            bias[0] =
                m->shape.task_regression[t] ? (float)label_mean[t] : mtl_log_odds(label_mean[t]);
    }
}

float *mtl_model_logit_bias(mtl_model *m, int t) {
    const mtl_stack *s = &m->stacks[m->tower[t]];
    return s->layer[s->n - 1].bias;
}

double mtl_model_flops_per_sample(const mtl_model *m) {
    double f = 0;
    for (int i = 0; i < m->n_stacks; i++) {
        const mtl_stack *s = &m->stacks[i];
        for (int l = 0; l < s->n; l++)
            f += 6.0 * s->layer[l].in_dim * s->layer[l].out_dim; /* fwd 2, dW 2, din 2 */
    }
    for (int g = 0; g < m->n_gates; g++) f += 6.0 * m->gates[g].K * m->gates[g].D;
    return f;
}

const char *mtl_model_prediction_name(const mtl_model *m, int col) {
    if (m->desc->prediction_name) return m->desc->prediction_name(m, col);
    return m->shape.task_names[col];
}

int mtl_model_prediction_of_task(const mtl_model *m, int task) {
    if (m->desc->prediction_of_task) return m->desc->prediction_of_task(m, task);
    return task;
}

int mtl_model_find_task(const mtl_model *m, const char *name, const char *key, mtl_error *err) {
    for (int t = 0; t < m->T; t++)
        if (strcmp(m->shape.task_names[t], name) == 0) return t;
    char known[512] = "";
    for (int t = 0; t < m->T; t++) {
        strncat(known, m->shape.task_names[t], sizeof known - strlen(known) - 3);
        if (t + 1 < m->T) strcat(known, ", ");
    }
    return mtl_fail(err, NULL, "%s: '%s' is not a task of the data (tasks: %s)", key, name, known);
}
