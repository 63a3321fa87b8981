/* libmtl_infer (see include/mtl/infer.h): the engine's own forward on a
 * model opened from a checkpoint, one activation arena per scratch.
 *
 * A scratch holds a shallow copy of the opened model (a "view") whose
 * activation arena is the scratch's own. What points into a model's arena
 * (model.c, mtl_model_finish) is re-pointed into the scratch's: the arena
 * itself and the gates' expert outputs. Everything else the inference
 * forward reads (parameters, buffers, stacks, groups, the architecture's
 * plan) is shared and never written, so threads with their own scratches
 * share one model. */
#include "mtl/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/checkpoint.h"
#include "mtl/model.h"

/* rows per forward: a census MMoE arena of 256 rows stays in a core's L2 */
#define BATCH_ROWS 256

struct mtl_infer {
    mtl_model *model;
    mtl_ckpt_state st;
    char *sparse_names, *dense_names; /* [S], [D] x MTL_NAME_MAX, or NULL */
};

struct mtl_infer_scratch {
    const mtl_infer *owner;
    mtl_model view;
    mtl_gate *gates;          /* [n_gates], expert outputs in this arena */
    const float **expert_out; /* every gate's K pointers */
    float *act;               /* [arena_size] */
    int32_t *ids;             /* [BATCH_ROWS x S] */
};

int mtl_infer_open(mtl_infer **out, const char *checkpoint_path, mtl_error *err) {
    *out = NULL;
    mtl_infer *m = calloc(1, sizeof *m);
    if (!m) return mtl_fail(err, MTL_HERE, "infer: out of memory");
    if (mtl_checkpoint_open_model(checkpoint_path, BATCH_ROWS, &m->model, &m->st, err) != MTL_OK ||
        mtl_checkpoint_load_names(checkpoint_path, "sparse_names", m->st.shape.S, &m->sparse_names,
                                  err) != MTL_OK ||
        mtl_checkpoint_load_names(checkpoint_path, "dense_names", m->st.shape.D, &m->dense_names,
                                  err) != MTL_OK) {
        mtl_infer_close(m);
        return MTL_ERR;
    }
    if (m->st.shape.M > 0) { /* its rows have no lists: issue 14 */
        mtl_infer_close(m);
        return mtl_fail(err, checkpoint_path,
                        "infer: the model has multi-valued fields (/multi), which mtl_infer does "
                        "not take yet");
    }
    *out = m;
    return MTL_OK;
}

void mtl_infer_close(mtl_infer *m) {
    if (!m) return;
    mtl_model_free(m->model);
    free(m->sparse_names);
    free(m->dense_names);
    free(m);
}

int mtl_infer_num_sparse(const mtl_infer *m) {
    return m->model->shape.S;
}
int mtl_infer_num_dense(const mtl_infer *m) {
    return m->model->shape.D;
}
int64_t mtl_infer_vocab_size(const mtl_infer *m, int field) {
    return field >= 0 && field < m->model->shape.S ? m->model->shape.vocab_sizes[field] : -1;
}
const char *mtl_infer_sparse_name(const mtl_infer *m, int field) {
    return m->sparse_names && field >= 0 && field < m->model->shape.S
               ? m->sparse_names + (size_t)field * MTL_NAME_MAX
               : NULL;
}
const char *mtl_infer_dense_name(const mtl_infer *m, int col) {
    return m->dense_names && col >= 0 && col < m->model->shape.D
               ? m->dense_names + (size_t)col * MTL_NAME_MAX
               : NULL;
}
int mtl_infer_num_outputs(const mtl_infer *m) {
    return m->model->P;
}
const char *mtl_infer_output_name(const mtl_infer *m, int col) {
    return col >= 0 && col < m->model->P ? mtl_model_prediction_name(m->model, col) : NULL;
}
int mtl_infer_batch_rows(const mtl_infer *m) {
    return m->model->max_batch;
}

void mtl_infer_scratch_free(mtl_infer_scratch *s) {
    if (!s) return;
    free(s->gates);
    free(s->expert_out);
    free(s->act);
    free(s->ids);
    free(s);
}

int mtl_infer_scratch_new(const mtl_infer *m, mtl_infer_scratch **out, mtl_error *err) {
    *out = NULL;
    const mtl_model *src = m->model;
    mtl_infer_scratch *s = calloc(1, sizeof *s);
    if (!s) return mtl_fail(err, MTL_HERE, "infer: out of memory");
    size_t n_experts = 0;
    for (int g = 0; g < src->n_gates; g++) n_experts += (size_t)src->gates[g].K;
    s->owner = m;
    s->act = mtl_alloc(src->arena_size, sizeof *s->act, "infer: activations", err);
    s->gates = mtl_alloc((size_t)src->n_gates + 1, sizeof *s->gates, "infer: gates", err);
    s->expert_out = mtl_alloc(n_experts + 1, sizeof *s->expert_out, "infer: gates", err);
    s->ids = mtl_alloc((size_t)src->max_batch * (size_t)src->shape.S + 1, sizeof *s->ids,
                       "infer: ids", err);
    if (!s->act || !s->gates || !s->expert_out || !s->ids) {
        mtl_infer_scratch_free(s);
        return MTL_ERR;
    }
    s->view = *src;
    s->view.act = s->act;
    s->view.grad = NULL; /* inference reads no gradient */
    s->view.gates = s->gates;
    const float **next = s->expert_out;
    for (int g = 0; g < src->n_gates; g++) {
        s->gates[g] = src->gates[g];
        s->gates[g].expert_out = next;
        s->gates[g].expert_grad = NULL;
        for (int k = 0; k < src->gates[g].K; k++)
            next[k] = s->act + (src->gates[g].expert_out[k] - src->act);
        next += src->gates[g].K;
    }
    *out = s;
    return MTL_OK;
}

/* ids to the engine's int32, checked against the vocabularies; dense
 * values checked finite */
static int check_rows(const mtl_infer *m, int64_t row0, int n, const int64_t *sparse,
                      const float *dense, int32_t *ids, mtl_error *err) {
    const mtl_data_shape *sh = &m->model->shape;
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < sh->S; f++) {
            int64_t id = sparse[(size_t)i * (size_t)sh->S + (size_t)f];
            if (id < 0 || id >= sh->vocab_sizes[f])
                return mtl_fail(err, "mtl_infer_score",
                                "row %lld: sparse field %d: id %lld is outside its vocabulary "
                                "(0..%lld; 0 is out-of-vocabulary)",
                                (long long)(row0 + i), f, (long long)id,
                                (long long)sh->vocab_sizes[f] - 1);
            ids[(size_t)i * (size_t)sh->S + (size_t)f] = (int32_t)id;
        }
        for (int j = 0; j < sh->D; j++)
            if (!isfinite(dense[(size_t)i * (size_t)sh->D + (size_t)j]))
                return mtl_fail(err, "mtl_infer_score",
                                "row %lld: dense feature %d: value is not finite",
                                (long long)(row0 + i), j);
    }
    return MTL_OK;
}

int mtl_infer_score(const mtl_infer *m, mtl_infer_scratch *scratch, int64_t n,
                    const int64_t *sparse, const float *dense, float *out, mtl_error *err) {
    const mtl_model *model = m->model;
    int S = model->shape.S, D = model->shape.D, P = model->P;
    if (n < 0 || (n > 0 && ((S > 0 && !sparse) || (D > 0 && !dense) || !out)))
        return mtl_fail(err, "mtl_infer_score", "%lld rows: sparse, dense or out is missing",
                        (long long)n);
    if (scratch && scratch->owner != m)
        return mtl_fail(err, "mtl_infer_score", "the scratch was made for another model");
    mtl_infer_scratch *own = NULL;
    if (!scratch) {
        if (mtl_infer_scratch_new(m, &own, err) != MTL_OK) return MTL_ERR;
        scratch = own;
    }
    int rc = MTL_OK;
    for (int64_t r = 0; r < n && rc == MTL_OK; r += model->max_batch) {
        int b = (int)(n - r < model->max_batch ? n - r : model->max_batch);
        const int64_t *sp = S > 0 ? sparse + (size_t)r * (size_t)S : NULL;
        const float *dn = D > 0 ? dense + (size_t)r * (size_t)D : NULL;
        rc = check_rows(m, r, b, sp, dn, scratch->ids, err);
        if (rc != MTL_OK) break;
        mtl_batch batch = {0};
        batch.capacity = batch.n = b;
        batch.S = S;
        batch.D = D;
        batch.sparse = scratch->ids;
        batch.dense = (float *)dn; /* read only */
        mtl_model_forward(&scratch->view, &batch, 0);
        memcpy(out + (size_t)r * (size_t)P, mtl_model_predictions(&scratch->view),
               (size_t)b * (size_t)P * sizeof *out);
    }
    mtl_infer_scratch_free(own);
    return rc;
}
