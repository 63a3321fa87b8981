/* ONNX export: the model of a checkpoint as one ONNX graph (opset 13), for
 * ONNX Runtime, Triton and other serving stacks.
 *
 * Inputs:  "sparse" int64 [N, S] (ids, one per categorical field) and
 *          "dense" float32 [N, D]; N is dynamic. An input of width 0 (no
 *          categorical fields, or no dense features) is left out.
 * Outputs: one float32 [N, 1] per prediction column, named as the columns of
 *          --predict-out (the task names; ESMM: pctr, pcvr, pctcvr):
 *          probabilities for binary tasks, the value for regression tasks.
 * Graph:   built from the engine's structure (model.h), not per
 *          architecture: the input row (a Gather per field, Concat), every
 *          fused group as one Gemm over its adjacent weights then Split, the
 *          stacks' layers (Gemm, BatchNormalization in inference form, Relu),
 *          the gates (Softmax, then Unsqueeze/Concat/Mul/ReduceSum for the
 *          mixture), the towers' logits (with their scalar bias) and Sigmoid.
 *          A model composed of stacks, groups and gates exports as it is.
 *          Weights are initializers named as in the checkpoint's /params.
 * metadata_props: model, tasks, task_types, outputs, S, D, vocab_sizes,
 *          embedding_dims, step, epoch, config (the model's hyperparameters
 *          as "key = value" lines) and, when the checkpoint stores them,
 *          sparse_names and dense_names (the data's columns; lists are
 *          comma-separated). */
#ifndef MTL_EXPORT_H
#define MTL_EXPORT_H

#include "mtl/checkpoint.h"
#include "mtl/error.h"
#include "mtl/model.h"

/* Write model m (st: the checkpoint's attributes; sparse_names, dense_names:
 * blocks of S and D names as mtl_checkpoint_load_names gives, or NULL) to
 * onnx_path: a temporary file renamed into place. */
int mtl_export_model_onnx(const mtl_model *m, const mtl_ckpt_state *st, const char *sparse_names,
                          const char *dense_names, const char *onnx_path, mtl_error *err);
/* Load the checkpoint and export it: `mtl_dist export`. */
int mtl_export_onnx(const char *checkpoint_path, const char *onnx_path, mtl_error *err);

#endif
