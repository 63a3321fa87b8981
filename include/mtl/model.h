/* Models: the engine every architecture is built with (layers of layers.h
 * over one parameter block, params.h, and one activation arena), and the
 * descriptor by which an architecture in src/models/ tells the rest of the
 * program about itself (mtl_model_desc; the list is src/models/models.c).
 *
 * Building blocks (all views into the blocks, resolved once after building):
 *  - a stack is a DNN: hidden layers (dense + bias, optional batch norm,
 *    ReLU, optional dropout) and optionally a final head (dense without bias
 *    or activation: a gate's logits, a tower's logit);
 *  - a group is a set of stacks whose first layers read the same input: their
 *    weights are adjacent rows of the parameter block, so the group's first
 *    layers run as ONE GEMM forward and two in backward;
 *  - a gate is a stack whose head gives K logits, a softmax over them, and the
 *    mixture of K expert stacks' outputs.
 * The activation arena and its gradient arena have the same layout; every
 * buffer is [max_batch x ld] at a fixed offset, so nothing is allocated while
 * training. */
#ifndef MTL_MODEL_H
#define MTL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/config.h"
#include "mtl/data.h"
#include "mtl/error.h"
#include "mtl/layers.h"
#include "mtl/params.h"

#define MTL_MAX_GROUP 256
/* batch normalization's epsilon (Keras' default, as DeepCTR) */
#define MTL_BN_EPS 1e-3f

/* What a model needs to know about the data. */
typedef struct {
    int S;                               /* categorical fields */
    int64_t vocab_sizes[MTL_MAX_FIELDS]; /* [S] */
    int D;                               /* dense features */
    int T;                               /* tasks (label columns) */
    /* multi-valued fields (data.h's /multi): field j's table is the model's
     * embedding field S + j, pooled into input columns after the S fields' */
    int M;
    int64_t multi_vocab_sizes[MTL_MAX_FIELDS]; /* [M] */
    int multi_mean[MTL_MAX_FIELDS];            /* [M] 1: mean pooling, 0: sum */
    char task_names[MTL_MAX_TASKS][64];
    int task_regression[MTL_MAX_TASKS];
} mtl_data_shape;

#define MTL_NONE ((size_t)-1)

struct mtl_model;

/* An architecture: one file in src/models/, one line in src/models/models.c.
 * Config parsing, --help, checkpoints (which record the name), predict and
 * export find it by name in that list. Only name, summary, options and build
 * are required; a NULL hook means the usual multi-task head: one prediction
 * per task (sigmoid of a binary task's logit, a regression task's value),
 * per-task BCE / squared error, priors at the label means. */
typedef struct mtl_model_desc {
    const char *name;    /* --model NAME */
    const char *summary; /* one line for --help: what it is, the paper */
    const char *options; /* the option keys it reads, for --help */
    /* composes the model from stacks, groups and gates (see below); sets
     * m->tower[t], m->forward_body, m->backward_body and m->P if not T */
    int (*build)(struct mtl_model *m, const mtl_config *cfg, mtl_error *err);
    /* cross-field checks before any data is read (ESMM: tasks named) */
    int (*check)(const mtl_config *cfg, mtl_error *err);
    /* predictions [B x P] from the logits [B x T] */
    void (*predict)(struct mtl_model *m, int B);
    /* the loss after predict: writes d loss / d logits (scale[t]: task t's
     * gradient scale, see mtl_model_loss), loss_sum[t] per task */
    void (*loss)(struct mtl_model *m, const mtl_batch *b, const float *scale,
                 const double *global_count, double *loss_sum);
    void (*set_prior)(struct mtl_model *m, const double *label_mean);
    const char *(*prediction_name)(const struct mtl_model *m, int col);
    int (*prediction_of_task)(const struct mtl_model *m, int task); /* -1: none */
    /* ONNX export: MTL_ONNX_NONE refuses it; MTL_ONNX_TASKS one output per
     * task; MTL_ONNX_PRODUCT adds pred 2 = pred 0 * pred 1 (ESMM's pCTCVR) */
    int onnx;
} mtl_model_desc;

enum { MTL_ONNX_NONE = 0, MTL_ONNX_TASKS, MTL_ONNX_PRODUCT };

/* the architectures, NULL-terminated (src/models/models.c) */
extern const mtl_model_desc *const mtl_models[];
const mtl_model_desc *mtl_model_find(const char *name); /* NULL if unknown */

typedef struct {
    int in_dim, out_dim, ld; /* ld: row stride of the output buffer */
    int hidden;              /* bias + [BN] + ReLU + [dropout]; else head: linear, no bias */
    int w, b, gamma, beta;   /* parameter indices (-1 if absent) */
    int run_mean, run_var;   /* buffer indices (-1 if absent) */
    size_t z;                /* arena offset of the output */
    size_t xhat, invstd, bn_dx, mask; /* arena offsets or MTL_NONE */
    /* resolved views */
    float *W, *dW, *bias, *dbias, *gam, *dgam, *bet, *dbet, *rmean, *rvar;
    mtl_gemm_plan gemm; /* the layer's products (unused for a fused first layer) */
} mtl_layer;

typedef struct {
    char name[64];
    int n; /* layers */
    mtl_layer layer[MTL_MAX_LAYERS + 1];
    size_t in; /* arena offset of the input */
    int in_ld, in_dim;
    int fused;      /* layer 0's product is done by its group */
    int logit_head; /* a task's tower: its head has a scalar bias, see model.c */
    int shares;     /* the stack whose parameters it uses, or -1 */
} mtl_stack;

typedef struct {
    size_t in;
    int in_ld, in_dim;
    int n_members, members[MTL_MAX_GROUP]; /* stack indices; biased first layers first */
    int n_out, n_biased;
    size_t out; /* arena offset of column 0 of the group's output */
    int out_ld;
    int w0, b0; /* first member's weight / bias tensor indices */
    float *W, *dW, *bias, *dbias;
    mtl_gemm_plan gemm;
} mtl_group;

typedef struct {
    /* what reports call it: the task's name, or "shared" (PLE's shared
     * gate), after the level's prefix "levels.L." when there are several
     * (the gate's tensors: "levels.L.gates.T.*", "levels.L.gates.shared.*") */
    char name[96];
    int stack; /* whose head gives the K logits */
    int K, D;  /* experts mixed, expert output width */
    int experts[MTL_MAX_GROUP];
    int expert_ld;
    size_t out; /* mixture output [B x D] at stride out_ld */
    int out_ld;
    const float **expert_out; /* [K] resolved pointers */
    float **expert_grad;      /* [K] */
} mtl_gate;

typedef struct mtl_model {
    const mtl_model_desc *desc;
    mtl_data_shape shape;
    int T, P; /* tasks, prediction columns (ESMM: 3) */
    int embedding_dim, in_dim;
    int max_batch;
    float dropout;
    int batch_norm;
    int activation; /* mtl_activation of every hidden layer */
    int loss_uncertainty;
    float loss_weights[MTL_MAX_TASKS];

    mtl_params params;       /* trained, allreduced, checkpointed */
    mtl_params buffers;      /* batch-norm running statistics: checkpointed, not trained */
    int emb[MTL_MAX_FIELDS]; /* embedding table tensor per field (S single-valued, then M multi) */
    int dims[MTL_MAX_FIELDS];
    float *tables[MTL_MAX_FIELDS], *dtables[MTL_MAX_FIELDS];
    int log_var; /* uncertainty weighting: [T] log-variances, or -1 */

    mtl_stack *stacks;
    int n_stacks;
    int64_t cap_stacks;
    mtl_group *groups;
    int n_groups;
    int64_t cap_groups;
    mtl_gate *gates;
    int n_gates;
    int64_t cap_gates;
    int tower[MTL_MAX_TASKS];  /* the stack whose head writes logits column t */
    int towers[MTL_MAX_TASKS]; /* the towers of mtl_towers_add (with a head: = tower) */
    int towers_group;          /* their fused first layers, or -1 */

    /* the model's structure as composed by its file in src/models/ */
    void (*forward_body)(struct mtl_model *m, int B, int train);
    void (*backward_body)(struct mtl_model *m, int B);
    void *arch; /* per-architecture plan (levels of experts...): arena
                 * offsets and indices only, no pointers (infer.c copies it) */

    size_t arena_size;
    float *act, *grad;
    size_t x0;     /* input rows [B x in_dim] */
    size_t logits; /* [B x T] */
    size_t preds;  /* [B x P] */
    mtl_rng dropout_rng;
    int centering;                 /* set only inside mtl_model_center_init */
    mtl_gemm_backend gemm_backend; /* --gemm as resolved on this CPU */
    uint64_t gemm_version;         /* params.version the plans' weight copies were made from */
} mtl_model;

int mtl_model_create(mtl_model **out, const mtl_config *cfg, const mtl_data_shape *shape,
                     int max_batch, mtl_error *err);
void mtl_model_free(mtl_model *m);

/* Forward over b->n rows: predictions [n x P] (probabilities for binary
 * tasks; ESMM: pCTR, pCVR, pCTCVR). train: batch statistics and dropout. */
void mtl_model_forward(mtl_model *m, const mtl_batch *b, int train);
static inline const float *mtl_model_predictions(const mtl_model *m) {
    return m->act + m->preds;
}
/* Per task, the summed weight of this batch's labelled rows (their number
 * when the data has no /weights): what the ranks sum into global_count. */
void mtl_model_count_labels(const mtl_model *m, const mtl_batch *b, double *count);
/* Loss of the batch after forward. global_count[t] is the summed weight of
 * the labelled samples of task t in the GLOBAL batch (summed over ranks):
 * gradients are scaled by 1/global_count so that summing the ranks'
 * gradients gives the gradient of the weighted mean loss
 * sum_i w_it l_it / sum_i w_it (rows with a missing label or weight 0 count
 * in neither sum). loss_sum[t] receives this rank's summed weighted
 * per-sample loss of task t. Writes the logits' gradient, and
 * (uncertainty weighting) the log-variances' gradient; is_root adds the
 * regularizer's constant part once over all ranks. */
void mtl_model_loss(mtl_model *m, const mtl_batch *b, const double *global_count, int is_root,
                    double *loss_sum);
/* Backward after loss: ACCUMULATES into m->params.grads. */
void mtl_model_backward(mtl_model *m, const mtl_batch *b);
/* Start every task at its prior: the logit bias of task t's tower becomes
 * the log-odds of the label mean (binary: the positive rate) or the mean
 * (regression), so the first steps learn features instead of the base rate.
 * label_mean[t] over the training labels (NaN: leave at 0). ESMM: the CTR
 * tower gets the click rate, the CVR tower conversion rate / click rate. */
void mtl_model_set_prior(mtl_model *m, const double *label_mean);
/* Shift every hidden layer's bias so its pre-activations have zero mean over
 * the batch, layer by layer in forward order (skipped with batch norm). Once,
 * before the first step. */
void mtl_model_center_init(mtl_model *m, const mtl_batch *b);
/* Rows of embedding field `field`'s table (S single-valued, then M multi). */
int64_t mtl_model_field_vocab(const mtl_model *m, int field);
/* Training FLOPs per sample of the matrix products (forward + backward). */
double mtl_model_flops_per_sample(const mtl_model *m);
/* The task column a prediction column belongs to (ESMM: pCVR has none: -1). */
const char *mtl_model_prediction_name(const mtl_model *m, int col);

/* ---- building blocks for the files of src/models ---- */
/* A [max_batch x cols] region of the activation arena (and its twin in the
 * gradient arena): its offset, a multiple of MTL_ARENA_ALIGN floats. */
#define MTL_ARENA_ALIGN 16
size_t mtl_arena_add(mtl_model *m, int cols);
/* A stack: hidden layers (dense + bias, [BN], activation, [dropout]) and, if
 * head > 0, a linear head without bias (a gate's logits; with logit_head a
 * task's logit, with one scalar bias). It reads arena offset `in` (row
 * stride in_ld, in_dim wide); its last layer writes at `out` with stride
 * out_ld, or (out_ld == 0) its own buffer. shares >= 0: the stack of the same
 * shape whose parameters it uses (the same projection applied to another
 * input; gradients add up). */
typedef struct {
    const char *name;
    size_t in;
    int in_ld, in_dim;
    const mtl_units *hidden; /* NULL: no hidden layer */
    int head;
    int logit_head;
    size_t out;
    int out_ld;
    int shares; /* stack index + 1, 0 = own parameters */
} mtl_stack_spec;
int mtl_stack_add(mtl_model *m, const mtl_stack_spec *spec, mtl_error *err);
/* Fuse the first layers of stacks (which must all read the same input) into
 * one group writing columns [0, n_out) at arena offset out with stride out_ld
 * (out_ld == 0: its own buffer). Call before registering parameters. */
int mtl_group_add(mtl_model *m, const int *stacks, int n, size_t out, int out_ld, mtl_error *err);
int mtl_gate_add(mtl_model *m, const char *name, int stack, const int *experts, int K,
                 mtl_error *err);
/* The towers, one per task, every model's one tower builder: task t's DNN
 * (--tower-units, task t's list) reads in[t] (in_dim[t] wide, stride
 * in_dim[t]) into m->towers[t]; with head its logit goes to column t of the
 * logits (m->tower[t]), without it the tower ends at its last hidden layer.
 * names: NULL = "towers.T". Towers reading one input are one group
 * (m->towers_group). mtl_towers_forward/backward run them. */
int mtl_towers_add(mtl_model *m, const mtl_config *cfg, const size_t *in, const int *in_dim,
                   int head, const char *const *names, mtl_error *err);
void mtl_towers_forward(mtl_model *m, int B, int train);
void mtl_towers_backward(mtl_model *m, int B);
/* Register parameters of groups and stacks (in order), embeddings, allocate. */
int mtl_model_finish(mtl_model *m, const mtl_config *cfg, mtl_error *err);
/* Execution of the blocks */
void mtl_group_forward(mtl_model *m, const mtl_group *g, int B);
void mtl_group_backward(mtl_model *m, const mtl_group *g, int B);
void mtl_stack_forward(mtl_model *m, mtl_stack *s, int B, int train);
void mtl_stack_backward(mtl_model *m, mtl_stack *s, int B);
void mtl_gate_forward(mtl_model *m, const mtl_gate *g, int B);
void mtl_gate_backward(mtl_model *m, const mtl_gate *g, int B);
static inline float *mtl_stack_out(const mtl_model *m, const mtl_stack *s) {
    return m->act + s->layer[s->n - 1].z;
}
/* The usual head, for models that add to it: sigmoid / identity per task,
 * per-task BCE / squared error (see mtl_model_desc). */
void mtl_model_task_predict(mtl_model *m, int B);
void mtl_model_task_loss(mtl_model *m, const mtl_batch *b, const float *scale, double *loss_sum);
/* the scalar bias of task t's logit (NULL if none), and log(p / (1 - p))
 * clamped to p in [1e-4, 1 - 1e-4]: a prior's logit */
float *mtl_model_logit_bias(mtl_model *m, int t);
float mtl_log_odds(double p);
/* column of the task called name in the data, or an error naming key */
int mtl_model_find_task(const mtl_model *m, const char *name, const char *key, mtl_error *err);
/* the prediction column of task t (ESMM's conversion task: pCTCVR) */
int mtl_model_prediction_of_task(const mtl_model *m, int task);

/* Levels of experts and gates shared by MMoE (one level, shared experts
 * only), CGC (one level) and PLE (several levels). */
int mtl_build_experts(mtl_model *m, const mtl_config *cfg, int num_levels, int num_specific,
                      int num_shared, mtl_error *err);

#endif
