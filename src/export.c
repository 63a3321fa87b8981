/* ONNX export (see include/mtl/export.h). The protobuf is written with
 * protobuf-c from the code generated at build time out of onnx.proto.
 *
 * The graph follows the data flow of the engine's blocks: a stack's input is
 * found by its arena offset (the input row, a gate's mixture, or another
 * stack's output), so values are emitted on demand, producers first, and
 * every architecture in src/models/ exports through the same code. */
#define _POSIX_C_SOURCE 200809L
#include "mtl/export.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include MTL_ONNX_PB_H /* generated from onnx.proto (CMakeLists.txt) */

#define OPSET 13
#define IR_VERSION 7 /* the IR of opset 13 (ONNX 1.8) */

typedef struct {
    const mtl_model *m;
    mtl_error *err;
    int failed;
    void **allocs; /* everything below, freed at the end */
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    const char **stack_out; /* [n_stacks] output value, once emitted */
    const char **stack_z0;  /* [n_stacks] layer 0's product, from its group */
    const char **gate_out;  /* [n_gates] */
    char *busy;             /* [n_stacks]: being emitted (a cycle is an error) */
    const char *x;          /* the input row */
    const char *axes1, *axes2;
} ex;

static int ex_fail(ex *e, const char *fmt, const char *what) {
    if (!e->failed) mtl_fail(e->err, MTL_HERE, fmt, what);
    e->failed = 1;
    return MTL_ERR;
}

static int push(ex *e, void ***arr, size_t *n, size_t *cap, void *item) {
    if (!item) return ex_fail(e, "export: %s", "out of memory");
    if (*n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        void **p = realloc(*arr, ncap * sizeof *p);
        if (!p) return ex_fail(e, "export: %s", "out of memory");
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*n)++] = item;
    return MTL_OK;
}

static void *ex_new(ex *e, size_t size) {
    void *p = calloc(1, size);
    if (push(e, &e->allocs, &e->n_allocs, &e->cap_allocs, p) != MTL_OK) {
        free(p);
        return NULL;
    }
    return p;
}

static char *ex_str(ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ex_str(ex *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : ex_new(e, (size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- graph pieces ---- */

static Onnx__NodeProto *node(ex *e, const char *op, const char *out, int n_in, ...) {
    Onnx__NodeProto *nd = ex_new(e, sizeof *nd);
    char **in = ex_new(e, (size_t)(n_in > 0 ? n_in : 1) * sizeof *in);
    char **outs = ex_new(e, sizeof *outs);
    if (!nd || !in || !outs || !out) {
        ex_fail(e, "export: %s", "out of memory");
        return NULL;
    }
    onnx__node_proto__init(nd);
    va_list ap;
    va_start(ap, n_in);
    for (int i = 0; i < n_in; i++) in[i] = (char *)va_arg(ap, const char *);
    va_end(ap);
    outs[0] = (char *)out;
    nd->n_input = (size_t)n_in;
    nd->input = in;
    nd->n_output = 1;
    nd->output = outs;
    nd->op_type = (char *)op;
    nd->name = (char *)out; /* one output per node: its name names the node */
    if (push(e, (void ***)&e->nodes, &e->n_nodes, &e->cap_nodes, nd) != MTL_OK) return NULL;
    return nd;
}

/* a node over n inputs in[] (an arena array) */
static Onnx__NodeProto *node_list(ex *e, const char *op, const char *out, int n, char **in) {
    Onnx__NodeProto *nd = node(e, op, out, 0);
    if (nd && in) {
        nd->input = in;
        nd->n_input = (size_t)n;
    }
    return nd;
}

static Onnx__AttributeProto *attr(ex *e, Onnx__NodeProto *nd, const char *name,
                                  Onnx__AttributeProto__AttributeType type) {
    if (!nd) return NULL;
    Onnx__AttributeProto *a = ex_new(e, sizeof *a);
    Onnx__AttributeProto **list = ex_new(e, (nd->n_attribute + 1) * sizeof *list);
    if (!a || !list) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    if (nd->n_attribute) memcpy(list, nd->attribute, nd->n_attribute * sizeof *list);
    list[nd->n_attribute++] = a;
    nd->attribute = list;
    return a;
}

static void attr_int(ex *e, Onnx__NodeProto *nd, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(e, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void attr_float(ex *e, Onnx__NodeProto *nd, const char *name, float v) {
    Onnx__AttributeProto *a = attr(e, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

static Onnx__TensorProto *init_tensor(ex *e, const char *name, int ndims, int64_t d0, int64_t d1) {
    Onnx__TensorProto *t = ex_new(e, sizeof *t);
    int64_t *dims = ex_new(e, 2 * sizeof *dims);
    if (!t || !dims || !name) {
        ex_fail(e, "export: %s", "out of memory");
        return NULL;
    }
    onnx__tensor_proto__init(t);
    dims[0] = d0;
    dims[1] = d1;
    t->n_dims = (size_t)ndims;
    t->dims = dims;
    t->name = (char *)name;
    t->has_data_type = 1;
    if (push(e, (void ***)&e->inits, &e->n_inits, &e->cap_inits, t) != MTL_OK) return NULL;
    return t;
}

/* A float initializer that points at the model's own values (not copied:
 * the model outlives the packing). ndims 1: [d0]; 2: [d0 x d1]. */
static const char *init_floats(ex *e, const char *name, const float *v, int ndims, int64_t d0,
                               int64_t d1) {
    Onnx__TensorProto *t = init_tensor(e, name, ndims, d0, d1);
    if (!t) return NULL;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = (size_t)(ndims == 1 ? d0 : d0 * d1);
    t->float_data = (float *)v;
    return name;
}

/* An int64 initializer, copied: ndims 0 is a scalar, 1 a vector of n. */
static const char *init_ints(ex *e, const char *name, const int64_t *v, int ndims, int64_t n) {
    Onnx__TensorProto *t = init_tensor(e, name, ndims, n, 0);
    int64_t *copy = ex_new(e, (size_t)(ndims == 0 ? 1 : n) * sizeof *copy);
    if (!t || !copy) return NULL;
    memcpy(copy, v, (size_t)(ndims == 0 ? 1 : n) * sizeof *copy);
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = (size_t)(ndims == 0 ? 1 : n);
    t->int64_data = copy;
    return name;
}

static const char *param_name(const mtl_params *p, int idx) {
    return p->tensors[idx].name;
}

/* ---- the engine's blocks ---- */

static const char *emit_stack(ex *e, int s);
static const char *emit_gate(ex *e, int g);

static int is_gate_stack(const mtl_model *m, int s) {
    for (int g = 0; g < m->n_gates; g++)
        if (m->gates[g].stack == s) return 1;
    return 0;
}

/* The value at arena offset `off`, `dim` wide: the input row, a gate's
 * mixture, or the output of a stack (not a gate's logits). */
static const char *value_at(ex *e, size_t off, int dim, const char *reader) {
    const mtl_model *m = e->m;
    if (off == m->x0 && dim == m->in_dim) return e->x;
    for (int g = 0; g < m->n_gates; g++)
        if (m->gates[g].out == off && m->gates[g].D == dim) return emit_gate(e, g);
    for (int s = 0; s < m->n_stacks; s++) {
        const mtl_stack *S = &m->stacks[s];
        const mtl_layer *last = &S->layer[S->n - 1];
        if (last->z == off && last->out_dim == dim && !is_gate_stack(m, s)) return emit_stack(e, s);
    }
    ex_fail(e, "export: %s: its input is produced by no block the exporter knows", reader);
    return NULL;
}

/* A fused group: one Gemm over the members' adjacent first-layer weights,
 * then Split into the members' pre-activations. */
static int emit_group(ex *e, int gi) {
    const mtl_model *m = e->m;
    const mtl_group *G = &m->groups[gi];
    const char *in = value_at(e, G->in, G->in_dim, m->stacks[G->members[0]].name);
    const char *w = init_floats(e, ex_str(e, "groups.%d.weight", gi), G->W, 2, G->n_out, G->in_dim);
    const char *b = NULL;
    if (G->n_biased == G->n_out) {
        b = init_floats(e, ex_str(e, "groups.%d.bias", gi), G->bias, 1, G->n_out, 0);
    } else if (G->n_biased > 0) { /* gates' logits have no bias: zeros there */
        float *pad = ex_new(e, (size_t)G->n_out * sizeof *pad);
        if (!pad) return ex_fail(e, "export: %s", "out of memory");
        memcpy(pad, G->bias, (size_t)G->n_biased * sizeof *pad);
        b = init_floats(e, ex_str(e, "groups.%d.bias", gi), pad, 1, G->n_out, 0);
    }
    const char *z = ex_str(e, "groups.%d.z", gi);
    Onnx__NodeProto *nd = b ? node(e, "Gemm", z, 3, in, w, b) : node(e, "Gemm", z, 2, in, w);
    attr_int(e, nd, "transB", 1);
    if (G->n_members == 1) {
        e->stack_z0[G->members[0]] = z;
        return e->failed ? MTL_ERR : MTL_OK;
    }
    int64_t split[MTL_MAX_GROUP];
    for (int i = 0; i < G->n_members; i++) split[i] = m->stacks[G->members[i]].layer[0].out_dim;
    const char *sizes = init_ints(e, ex_str(e, "groups.%d.split", gi), split, 1, G->n_members);
    char **outs = ex_new(e, (size_t)G->n_members * sizeof *outs);
    if (!outs) return ex_fail(e, "export: %s", "out of memory");
    for (int i = 0; i < G->n_members; i++) {
        const mtl_stack *S = &m->stacks[G->members[i]];
        outs[i] = ex_str(e, S->layer[0].hidden ? "%s.dense0.z" : "%s.out.z", S->name);
        e->stack_z0[G->members[i]] = outs[i];
    }
    nd = node(e, "Split", outs[0], 2, z, sizes);
    if (!nd) return MTL_ERR;
    nd->output = outs;
    nd->n_output = (size_t)G->n_members;
    nd->name = ex_str(e, "groups.%d.split", gi);
    attr_int(e, nd, "axis", 1);
    return e->failed ? MTL_ERR : MTL_OK;
}

static const char *emit_stack(ex *e, int s) {
    const mtl_model *m = e->m;
    const mtl_stack *S = &m->stacks[s];
    if (e->stack_out[s]) return e->stack_out[s];
    if (e->busy[s]) {
        ex_fail(e, "export: %s: reads its own output", S->name);
        return NULL;
    }
    e->busy[s] = 1;
    const char *cur = NULL;
    if (!S->fused) cur = value_at(e, S->in, S->in_dim, S->name);
    for (int l = 0; l < S->n && !e->failed; l++) {
        const mtl_layer *L = &S->layer[l];
        const char *z;
        if (l == 0 && S->fused) {
            if (!e->stack_z0[s]) {
                int gi = -1;
                for (int g = 0; g < m->n_groups && gi < 0; g++)
                    for (int i = 0; i < m->groups[g].n_members; i++)
                        if (m->groups[g].members[i] == s) gi = g;
                if (gi < 0 || emit_group(e, gi) != MTL_OK) {
                    ex_fail(e, "export: %s: its group cannot be exported", S->name);
                    break;
                }
            }
            z = e->stack_z0[s];
        } else {
            z = ex_str(e, L->hidden ? "%s.dense%d.z" : "%s.out.z%d", S->name, l);
            const char *w =
                init_floats(e, param_name(&m->params, L->w), L->W, 2, L->out_dim, L->in_dim);
            Onnx__NodeProto *nd;
            if (L->b >= 0) {
                const char *b =
                    init_floats(e, param_name(&m->params, L->b), L->bias, 1, L->out_dim, 0);
                nd = node(e, "Gemm", z, 3, cur, w, b);
            } else {
                nd = node(e, "Gemm", z, 2, cur, w);
            }
            attr_int(e, nd, "transB", 1);
        }
        if (!L->hidden) {
            cur = z;
            continue;
        }
        if (m->batch_norm) {
            const char *bn = ex_str(e, "%s.bn%d", S->name, l);
            Onnx__NodeProto *nd = node(
                e, "BatchNormalization", bn, 5, z,
                init_floats(e, param_name(&m->params, L->gamma), L->gam, 1, L->out_dim, 0),
                init_floats(e, param_name(&m->params, L->beta), L->bet, 1, L->out_dim, 0),
                init_floats(e, param_name(&m->buffers, L->run_mean), L->rmean, 1, L->out_dim, 0),
                init_floats(e, param_name(&m->buffers, L->run_var), L->rvar, 1, L->out_dim, 0));
            attr_float(e, nd, "epsilon", MTL_BN_EPS);
            z = bn;
        }
        static const char *const op[] = {"Relu", "Tanh", "Sigmoid"}; /* mtl_activation */
        static const char *const op_name[] = {"relu", "tanh", "sigmoid"};
        cur = ex_str(e, "%s.%s%d", S->name, op_name[m->activation], l);
        node(e, op[m->activation], cur, 1, z);
    }
    e->busy[s] = 0;
    if (e->failed) return NULL;
    e->stack_out[s] = cur;
    return cur;
}

/* softmax over the gate stack's K logits, then sum_k gate_k * expert_k */
static const char *emit_gate(ex *e, int g) {
    const mtl_model *m = e->m;
    const mtl_gate *G = &m->gates[g];
    if (e->gate_out[g]) return e->gate_out[g];
    const char *gname = m->stacks[G->stack].name;
    const char *logits = emit_stack(e, G->stack);
    if (!logits) return NULL;
    const char *weights = ex_str(e, "%s.softmax", gname);
    attr_int(e, node(e, "Softmax", weights, 1, logits), "axis", 1);
    char **ins = ex_new(e, (size_t)G->K * sizeof *ins);
    if (!ins) {
        ex_fail(e, "export: %s", "out of memory");
        return NULL;
    }
    for (int k = 0; k < G->K; k++) {
        const char *out = emit_stack(e, G->experts[k]);
        if (!out) return NULL;
        ins[k] = ex_str(e, "%s.expert%d", gname, k);
        node(e, "Unsqueeze", ins[k], 2, out, e->axes1); /* [N, 1, D] */
    }
    const char *experts = ex_str(e, "%s.experts", gname);
    attr_int(e, node_list(e, "Concat", experts, G->K, ins), "axis", 1); /* [N, K, D] */
    const char *w3 = ex_str(e, "%s.weights3", gname);
    node(e, "Unsqueeze", w3, 2, weights, e->axes2); /* [N, K, 1] */
    const char *prod = ex_str(e, "%s.weighted", gname);
    node(e, "Mul", prod, 2, experts, w3);
    const char *out = ex_str(e, "%s.mixture", gname);
    attr_int(e, node(e, "ReduceSum", out, 2, prod, e->axes1), "keepdims", 0); /* [N, D] */
    if (e->failed) return NULL;
    e->gate_out[g] = out;
    return out;
}

/* ---- inputs, outputs, metadata ---- */

static Onnx__ValueInfoProto *value_info(ex *e, const char *name, int elem_type, int64_t cols) {
    Onnx__ValueInfoProto *v = ex_new(e, sizeof *v);
    Onnx__TypeProto *tp = ex_new(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_new(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_new(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ex_new(e, 2 * sizeof *dims);
    Onnx__TensorShapeProto__Dimension *d0 = ex_new(e, sizeof *d0), *d1 = ex_new(e, sizeof *d1);
    if (!v || !tp || !tt || !sh || !dims || !d0 || !d1) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    onnx__tensor_shape_proto__dimension__init(d0);
    onnx__tensor_shape_proto__dimension__init(d1);
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0->dim_param = "N";
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1->dim_value = cols;
    dims[0] = d0;
    dims[1] = d1;
    sh->n_dim = 2;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = (char *)name;
    v->type = tp;
    return v;
}

static Onnx__StringStringEntryProto *meta(ex *e, const char *key, char *value) {
    Onnx__StringStringEntryProto *p = ex_new(e, sizeof *p);
    if (!p || !value) return NULL;
    onnx__string_string_entry_proto__init(p);
    p->key = (char *)key;
    p->value = value;
    return p;
}

/* "a,b,c" of n items formatted by item(i) into one arena string */
static char *join_ints(ex *e, const int64_t *v, int n) {
    size_t cap = (size_t)n * 21 + 1, used = 0;
    char *s = ex_new(e, cap);
    if (!s) return NULL;
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, i ? ",%lld" : "%lld", (long long)v[i]);
    return s;
}

/* "a,b,c" of a block of n names (MTL_NAME_MAX apart) */
static char *join_block(ex *e, const char *block, int n) {
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(block + (size_t)i * MTL_NAME_MAX) + 1;
    char *s = ex_new(e, cap);
    for (int i = 0; s && i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, block + (size_t)i * MTL_NAME_MAX);
    }
    return s;
}

static char *join_names(ex *e, const mtl_model *m, int predictions) {
    int n = predictions ? m->P : m->T;
    size_t cap = 1;
    for (int i = 0; i < n; i++)
        cap += strlen(predictions ? mtl_model_prediction_name(m, i) : m->shape.task_names[i]) + 1;
    char *s = ex_new(e, cap);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, predictions ? mtl_model_prediction_name(m, i) : m->shape.task_names[i]);
    }
    return s;
}

static int write_file(const char *path, const uint8_t *buf, size_t len, mtl_error *err) {
    char tmp[MTL_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return mtl_fail(err, path, "cannot create: %s", strerror(errno));
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mtl_fail(err, path, "cannot write: %s", strerror(e));
    }
    return MTL_OK;
}

/* The model's input row: one embedding per field (Gather from its table),
 * then the dense features; e->x names it. */
static void emit_input_row(ex *e) {
    const mtl_model *m = e->m;
    int S = m->shape.S, D = m->shape.D, n_in = 0;
    char **parts = ex_new(e, (size_t)(S + 1) * sizeof *parts);
    for (int s = 0; s < S && !e->failed && parts; s++) {
        int64_t col = s;
        const char *ids = ex_str(e, "sparse.%d", s);
        Onnx__NodeProto *nd = node(e, "Gather", ids, 2, "sparse",
                                   init_ints(e, ex_str(e, "const.field%d", s), &col, 0, 0));
        attr_int(e, nd, "axis", 1); /* [N] */
        const char *table = init_floats(e, param_name(&m->params, m->emb[s]), m->tables[s], 2,
                                        m->shape.vocab_sizes[s], m->dims[s]);
        parts[n_in] = ex_str(e, "embedding.%d", s);
        attr_int(e, node(e, "Gather", parts[n_in++], 2, table, ids), "axis", 0); /* [N, dim] */
    }
    if (D > 0 && parts) parts[n_in++] = "dense";
    attr_int(e, node_list(e, "Concat", "input_row", n_in, parts), "axis", 1);
    e->x = "input_row";
}

/* The predictions from the towers' logits: sigmoid (binary), identity
 * (regression), ESMM's pCTCVR = pCTR * pCVR. Returns their [P] value infos. */
static Onnx__ValueInfoProto **emit_predictions(ex *e) {
    const mtl_model *m = e->m;
    const char *logit[MTL_MAX_TASKS];
    for (int t = 0; t < m->T && !e->failed; t++) logit[t] = emit_stack(e, m->tower[t]);
    Onnx__ValueInfoProto **outs = ex_new(e, (size_t)m->P * sizeof *outs);
    for (int p = 0; p < m->P && !e->failed && outs; p++) {
        const char *name = mtl_model_prediction_name(m, p);
        if (m->desc->onnx == MTL_ONNX_PRODUCT && p == 2)
            node(e, "Mul", name, 2, mtl_model_prediction_name(m, 0),
                 mtl_model_prediction_name(m, 1));
        else
            node(e, m->shape.task_regression[p] ? "Identity" : "Sigmoid", name, 1, logit[p]);
        outs[p] = value_info(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1);
    }
    for (int p = 0; p < m->P && outs; p++)
        if (!outs[p]) ex_fail(e, "export: %s", "out of memory");
    return outs;
}

#define MAX_PROPS 13

/* The model's metadata_props: what a server needs to feed it (fields,
 * vocabularies, tasks) and where it came from. Returns their count. */
static size_t metadata(ex *e, const mtl_ckpt_state *st, const char *sparse_names,
                       const char *dense_names, Onnx__StringStringEntryProto **props) {
    const mtl_model *m = e->m;
    int S = m->shape.S, D = m->shape.D;
    int64_t dims[MTL_MAX_FIELDS];
    for (int s = 0; s < S; s++) dims[s] = m->dims[s];
    char types[MTL_MAX_TASKS * 11 + 1] = "";
    for (int t = 0; t < m->T; t++) {
        if (t) strcat(types, ",");
        strcat(types, m->shape.task_regression[t] ? "regression" : "binary");
    }
    size_t n = 0;
    props[n++] = meta(e, "model", ex_str(e, "%s", m->desc->name));
    props[n++] = meta(e, "tasks", join_names(e, m, 0));
    props[n++] = meta(e, "task_types", ex_str(e, "%s", types));
    props[n++] = meta(e, "outputs", join_names(e, m, 1));
    props[n++] = meta(e, "S", ex_str(e, "%d", S));
    props[n++] = meta(e, "D", ex_str(e, "%d", D));
    props[n++] = meta(e, "vocab_sizes", join_ints(e, m->shape.vocab_sizes, S));
    props[n++] = meta(e, "embedding_dims", join_ints(e, dims, S));
    props[n++] = meta(e, "step", ex_str(e, "%lld", (long long)st->step));
    props[n++] = meta(e, "epoch", ex_str(e, "%lld", (long long)st->epoch));
    props[n++] = meta(e, "config", ex_str(e, "%s", st->config));
    if (sparse_names && S > 0) props[n++] = meta(e, "sparse_names", join_block(e, sparse_names, S));
    if (dense_names && D > 0) props[n++] = meta(e, "dense_names", join_block(e, dense_names, D));
    for (size_t i = 0; i < n; i++)
        if (!props[i]) ex_fail(e, "export: %s", "out of memory");
    return n;
}

/* The ModelProto around e's graph, packed and written to path. */
static int write_model(ex *e, const mtl_ckpt_state *st, Onnx__ValueInfoProto **ins, int n_inputs,
                       Onnx__ValueInfoProto **outs, Onnx__StringStringEntryProto **props,
                       size_t n_props, const char *path) {
    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = "mtl_dist";
    graph.n_node = e->n_nodes;
    graph.node = e->nodes;
    graph.n_initializer = e->n_inits;
    graph.initializer = e->inits;
    graph.n_input = (size_t)n_inputs;
    graph.input = ins;
    graph.n_output = (size_t)e->m->P;
    graph.output = outs;
    Onnx__OperatorSetIdProto opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = OPSET;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = IR_VERSION;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "mtl_dist";
    model.producer_version = MTL_VERSION;
    model.has_model_version = 1;
    model.model_version = st->step;
    model.graph = &graph;
    model.n_metadata_props = n_props;
    model.metadata_props = props;
    size_t len = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return mtl_fail(e->err, MTL_HERE, "export: out of memory (%zu bytes)", len);
    onnx__model_proto__pack(&model, buf);
    int rc = write_file(path, buf, len, e->err);
    free(buf);
    return rc;
}

int mtl_export_model_onnx(const mtl_model *m, const mtl_ckpt_state *st, const char *sparse_names,
                          const char *dense_names, const char *onnx_path, mtl_error *err) {
    if (m->desc->onnx == MTL_ONNX_NONE)
        return mtl_fail(err, NULL, "export: model %s is not supported yet", m->desc->name);
    if (m->shape.M > 0) /* issue 14: lists would be extra (ids, offsets) inputs; not yet */
        return mtl_fail(err, onnx_path,
                        "export: the model has %d multi-valued field(s) (/multi), which the ONNX "
                        "export does not support yet",
                        m->shape.M);
    ex e_ = {0}, *e = &e_;
    e->m = m;
    e->err = err;
    e->stack_out = ex_new(e, (size_t)m->n_stacks * sizeof *e->stack_out);
    e->stack_z0 = ex_new(e, (size_t)m->n_stacks * sizeof *e->stack_z0);
    e->gate_out = ex_new(e, (size_t)(m->n_gates + 1) * sizeof *e->gate_out);
    e->busy = ex_new(e, (size_t)m->n_stacks);
    if (!e->stack_out || !e->stack_z0 || !e->gate_out || !e->busy)
        ex_fail(e, "export: %s", "out of memory");
    static const int64_t one = 1, two = 2;
    e->axes1 = init_ints(e, "const.axes1", &one, 1, 1);
    e->axes2 = init_ints(e, "const.axes2", &two, 1, 1);

    emit_input_row(e);
    Onnx__ValueInfoProto **outs = emit_predictions(e);
    Onnx__ValueInfoProto **ins = ex_new(e, 2 * sizeof *ins);
    int n_inputs = 0;
    if (ins && m->shape.S > 0)
        ins[n_inputs++] = value_info(e, "sparse", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, m->shape.S);
    if (ins && m->shape.D > 0)
        ins[n_inputs++] = value_info(e, "dense", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, m->shape.D);
    for (int i = 0; i < n_inputs; i++)
        if (!ins[i]) ex_fail(e, "export: %s", "out of memory");
    Onnx__StringStringEntryProto *props[MAX_PROPS];
    size_t n_props = metadata(e, st, sparse_names, dense_names, props);
    if (!outs || !ins) ex_fail(e, "export: %s", "out of memory");

    int rc =
        e->failed ? MTL_ERR : write_model(e, st, ins, n_inputs, outs, props, n_props, onnx_path);
    for (size_t i = 0; i < e->n_allocs; i++) free(e->allocs[i]);
    free(e->allocs);
    free(e->nodes);
    free(e->inits);
    return rc;
}

int mtl_export_onnx(const char *checkpoint_path, const char *onnx_path, mtl_error *err) {
    mtl_ckpt_state *st = calloc(1, sizeof *st);
    if (!st) return mtl_fail(err, MTL_HERE, "export: out of memory");
    mtl_model *m = NULL;
    char *sparse_names = NULL, *dense_names = NULL;
    int rc = mtl_checkpoint_open_model(checkpoint_path, 1, &m, st, err);
    if (rc == MTL_OK)
        rc = mtl_checkpoint_load_names(checkpoint_path, "sparse_names", st->shape.S, &sparse_names,
                                       err);
    if (rc == MTL_OK)
        rc = mtl_checkpoint_load_names(checkpoint_path, "dense_names", st->shape.D, &dense_names,
                                       err);
    if (rc == MTL_OK) rc = mtl_export_model_onnx(m, st, sparse_names, dense_names, onnx_path, err);
    free(sparse_names);
    free(dense_names);
    mtl_model_free(m);
    free(st);
    return rc;
}
