/* Run configuration: defaults (the field's census experiments), then an INI
 * file (--config), then command-line options, each overriding the last.
 * Every key has one name (early_stop_patience also its short name,
 * patience), used both as `key = value` in the INI file's [train] section (or
 * [train.MODEL], read only when training MODEL; mtl_prep's sections of the
 * same file are skipped) and as `--key value` / `--key=value` on the command
 * line, where '_' and '-' are interchangeable (--batch-size == batch_size). */
#ifndef MTL_CONFIG_H
#define MTL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/error.h"

#define MTL_MAX_LAYERS 8
#define MTL_MAX_TASKS 16
#define MTL_PATH_MAX 1024

struct mtl_model_desc; /* an architecture (model.h; the list: src/models/models.c) */

typedef enum {
    MTL_CMD_TRAIN = 0,
    MTL_CMD_PREDICT,
    MTL_CMD_HELP,
    MTL_CMD_VERSION,
    MTL_CMD_EXPORT
} mtl_command;

typedef struct {
    int n;
    int units[MTL_MAX_LAYERS];
} mtl_units; /* a DNN's layer widths; n == 0 means no layers */

/* One DNN shape per task: "32,32" (n_lists 1) serves every task, "32,32/16"
 * gives task t (in /labels order) list t. PLE's shared gate takes one more
 * list after the tasks' (else the first task's). */
typedef struct {
    int n_lists;
    mtl_units list[MTL_MAX_TASKS + 1];
} mtl_task_units;
/* task t's list (the one list when there is one) */
static inline const mtl_units *mtl_task_units_at(const mtl_task_units *u, int t) {
    return &u->list[u->n_lists == 1 || t >= u->n_lists ? 0 : t];
}

/* --activation of every hidden layer (experts, bottoms, towers, gate DNNs) */
typedef enum { MTL_ACT_RELU = 0, MTL_ACT_TANH, MTL_ACT_SIGMOID } mtl_activation;

typedef struct {
    mtl_command command;
    char config_path[MTL_PATH_MAX];

    /* data */
    char train_path[MTL_PATH_MAX], valid_path[MTL_PATH_MAX], test_path[MTL_PATH_MAX];
    double valid_split;                 /* > 0: the train file's tail validates */
    char data_path[MTL_PATH_MAX];       /* predict: input */
    char checkpoint_path[MTL_PATH_MAX]; /* predict: model */
    int data_order_global;              /* --data-order local|global */
    int stream;                         /* read the train shard in chunks, not all at once */
    int64_t stream_chunk_rows;          /* rows per chunk when streaming */

    /* model */
    const struct mtl_model_desc *model;
    int embedding_dim;
    mtl_units bottom_units, expert_units;
    mtl_task_units tower_units, gate_units; /* per task */
    int activation;                         /* mtl_activation */
    int num_experts;                        /* mmoe */
    int num_experts_specific;               /* cgc, ple: per task */
    int num_experts_shared;                 /* cgc, ple */
    int num_levels;                         /* ple */
    int batch_norm;                         /* 0/1 */
    float dropout;
    char ctr_task[64], ctcvr_task[64]; /* esmm: task names from /labels */
    char task_order[1024];             /* aitm: task names, first to last; "" = /labels order */
    float aitm_calibration_weight;     /* aitm: weight of the behavioural expectation calibrator */
    /* per-task type, "binary" or "regression"; n_task_types == 0 = infer
     * from the labels (all labels in {0,1} -> binary) */
    int n_task_types;
    int task_regression[MTL_MAX_TASKS];

    /* loss */
    int n_loss_weights;
    float loss_weights[MTL_MAX_TASKS];
    int loss_uncertainty; /* --loss-weighting fixed|uncertainty */

    /* optimization */
    int optimizer; /* mtl_optim_kind */
    float lr;
    float momentum;
    float l2_embedding, l2_dnn;
    int embedding_update;     /* mtl_embedding_update */
    int embedding_sharding;   /* mtl_embedding_sharding */
    float shard_memory_share; /* auto: shard a table above this share of a rank's memory */
    int64_t shard_min_rows;   /* auto: and shard a table of at least this many rows */
    int batch_size;           /* global batch, over all ranks */
    int epochs;
    uint64_t seed;
    int early_stop_patience;    /* 0 = off */
    char early_stop_metric[80]; /* "valid_loss", "auc:TASK" or "gauc:TASK" */
    int skip_nonfinite_steps;

    /* outputs and checkpoints */
    char metrics_out[MTL_PATH_MAX];
    char predict_out[MTL_PATH_MAX];
    char onnx_path[MTL_PATH_MAX]; /* export: the ONNX file to write */
    char checkpoint_dir[MTL_PATH_MAX];
    char resume[MTL_PATH_MAX]; /* a file, or "latest" (newest in checkpoint_dir) */
    int64_t checkpoint_every_steps;
    double checkpoint_every_seconds;
    int keep_checkpoints;

    /* runtime */
    int threads;       /* OpenBLAS threads per rank */
    int gemm;          /* --gemm: mtl_gemm_backend (gemm.h) */
    int64_t max_steps; /* stop after this many steps (0 = no limit); benchmarks */
    int quiet;

    /* the job, set by the trainer (not options): row-sharded tables need it */
    int rank, world;
    double rank_memory_mb; /* this rank's share of its machine's memory */
} mtl_config;

/* --embedding-update: dense tables take part in the one allreduce and the
 * optimizer loop over the block; sparse tables get gradients, exchange and
 * updates only for the rows a step touches (see embedding.h). */
typedef enum {
    MTL_EMBEDDING_AUTO = 0, /* sparse when a table has many more rows than a step touches */
    MTL_EMBEDDING_DENSE,
    MTL_EMBEDDING_SPARSE
} mtl_embedding_update;

/* --embedding-sharding: a sparse table is replicated on every rank, or its
 * rows are spread over the ranks (row r on rank r mod P), see embedding.h. */
typedef enum {
    MTL_SHARDING_AUTO = 0, /* row when values + optimizer state exceed a share of memory */
    MTL_SHARDING_REPLICATED,
    MTL_SHARDING_ROW
} mtl_embedding_sharding;

void mtl_config_defaults(mtl_config *cfg);
/* Parse argv (argv[0] is the program; an optional first word "train" or
 * "predict" selects the command). cfg is reset to the defaults first; --help,
 * -h or --version anywhere only set command (nothing else is checked). Loads
 * --config FILE first wherever it appears, then applies the other options in
 * order. Unknown options, missing values, malformed numbers, out-of-range
 * values and unknown config keys are errors naming the option or
 * "file:line: key". */
int mtl_config_parse(mtl_config *cfg, int argc, char **argv, mtl_error *err);
/* Apply one INI file on top of cfg: [train], then [train.MODEL] for the
 * model [train] (or cfg already) names. mtl_config_parse reads it the same
 * way, except that a --model on the command line picks the section. */
int mtl_config_load_ini(mtl_config *cfg, const char *path, mtl_error *err);
/* Set one key from a string, as from a file or command line; `where` names
 * the source for messages ("--lr", "run.ini:7: lr"). */
int mtl_config_set(mtl_config *cfg, const char *key, const char *value, const char *where,
                   mtl_error *err);
/* Apply "key = value" lines (a checkpoint's model text, see
 * mtl_config_model_text) on top of cfg; other lines are ignored. */
int mtl_config_apply_text(mtl_config *cfg, const char *text, const char *where, mtl_error *err);
/* Cross-field checks once everything is parsed (a train file is given,
 * ESMM's tasks are named, ...). */
int mtl_config_validate(const mtl_config *cfg, mtl_error *err);

/* The model's hyperparameters as "key = value" lines (what a checkpoint
 * records so that predict and --resume need no model options). */
void mtl_config_model_text(const mtl_config *cfg, char *out, size_t cap);
/* Whether a checkpoint's model text describes cfg's model (keys an older
 * checkpoint lacks count at their defaults); cfg's own text goes to mine. */
int mtl_config_same_model(const mtl_config *cfg, const char *text, char *mine, size_t cap);
const char *mtl_activation_name(int activation);
/* The --help text. */
const char *mtl_config_usage(void);

#endif
