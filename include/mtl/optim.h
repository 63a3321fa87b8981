/* Optimizers over the one contiguous parameter block. State buffers (m, v)
 * have the parameter layout. L2 is applied per tensor (embedding tables and
 * dense weights separately; biases and norm parameters get none). */
#ifndef MTL_OPTIM_H
#define MTL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MTL_OPT_ADAM = 0, MTL_OPT_SGD, MTL_OPT_ADAGRAD } mtl_optim_kind;

typedef struct {
    mtl_optim_kind kind;
    float lr;
    float beta1, beta2, eps; /* Adam (Keras defaults: 0.9, 0.999, 1e-7) */
    float momentum;          /* SGD; 0 = plain SGD */
    float adagrad_init;      /* Adagrad initial accumulator (0.1 as Keras) */
} mtl_optim;

void mtl_optim_defaults(mtl_optim *opt, mtl_optim_kind kind);
/* Name <-> kind ("adam", "sgd", "adagrad"); returns -1 if unknown. */
int mtl_optim_parse(const char *name);
const char *mtl_optim_name(mtl_optim_kind kind);

/* One update of n parameters p with gradient g (g already includes L2 if any,
 * see mtl_add_l2). m and v are state buffers of n floats (v unused by SGD,
 * m unused by Adagrad). step is the 1-based update count (Adam's bias
 * correction). For Adagrad v must start at adagrad_init. */
void mtl_optim_update(const mtl_optim *opt, float *p, const float *g, float *m, float *v, size_t n,
                      int64_t step);

/* The same update on n rows of a table [rows x dim] with state m, v of its
 * layout: row ids[k] gets gradient grad[k * dim ...], to which L2 is added
 * first (g += 2 l2 p, as mtl_add_l2). The rows' state changes only here
 * ("lazy": TF's LazyAdam, PyTorch's SparseAdam); Adam's bias correction uses
 * the global step as in both. ids must be distinct. */
void mtl_optim_update_rows(const mtl_optim *opt, float *table, float *m, float *v, int dim,
                           const int32_t *ids, float *grad, int n, float l2, int64_t step);

/* 1 if no value is NaN or Inf (the check before every update). */
int mtl_all_finite(const float *x, size_t n);

/* g += 2 * l2 * p over n values (gradient of l2 * ||p||^2, Keras' l2). */
void mtl_add_l2(float *g, const float *p, size_t n, float l2);

#endif
