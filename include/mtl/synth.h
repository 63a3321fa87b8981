/* Synthetic datasets for benchmarks and tests (mtl_prep synth).
 *
 * mmoe: the MMoE paper's task-relatedness benchmark (Ma et al., KDD 2018,
 *   "Modeling Task Relationships in Multi-task Learning with Multi-gate
 *   Mixture-of-Experts", section 3.2): two regression tasks whose linear parts
 *   have Pearson correlation p.
 * ctr: a click-log-like stream: Zipf-distributed categorical fields, dense
 *   features, and T >= 2 funnel labels (click, then conversion) from a hidden
 *   logistic model; written in chunks so 10M rows need O(chunk) memory. */
#ifndef MTL_SYNTH_H
#define MTL_SYNTH_H

#include <stdint.h>

#include "mtl/error.h"
#include "mtl/layers.h"
#include "mtl/prep.h"

/* ---- MMoE synthetic regression ---- */
#define MTL_MMOE_D 100 /* input dimension d (paper: d = 100) */
#define MTL_MMOE_M 10  /* sinusoid count m (PLE paper's replication: m = 10) */

typedef struct {
    double p;                 /* correlation of the linear parts */
    double w[2][MTL_MMOE_D];  /* w1 = c u1, w2 = c (p u1 + sqrt(1-p^2) u2) */
    double alpha[MTL_MMOE_M]; /* alpha_i ~ N(0,1) */
    double beta[MTL_MMOE_M];  /* beta_i ~ N(0,1) */
} mtl_mmoe_model;

/* Draw u1, u2, alpha, beta from rng (consumes rng; call first). */
void mtl_mmoe_init(mtl_mmoe_model *m, double p, mtl_rng *rng);
/* n rows: x [n x 100] ~ N(0, I), y [n x 2] targets; lin [n x 2] (may be
 * NULL) receives the linear parts w1^T x, w2^T x without sinusoids or noise. */
void mtl_mmoe_sample(const mtl_mmoe_model *m, mtl_rng *rng, int64_t n, float *x, float *y,
                     double *lin);

typedef struct {
    int64_t rows;       /* total over the splits */
    double correlation; /* p in [-1, 1] */
    uint64_t seed;
    int n_split; /* 0: default 0.8,0.1,0.1 */
    double split[MTL_SPLIT_MAX];
    const char *output_dir;
    int quiet;
} mtl_synth_mmoe_options;

/* Writes train/valid/test.h5: /dense [N x 100] names x0..x99, /labels
 * [N x 2] names y1, y2, no /sparse. */
int mtl_synth_mmoe(const mtl_synth_mmoe_options *opt, mtl_error *err);

/* ---- Zipf-distributed ranks ---- */

/* Zipf(s) on 1..n: P(k) = k^-s / sum_{j=1..n} j^-s, sampled exactly in O(1)
 * memory and O(1) expected time by rejection-inversion (Hoermann &
 * Derflinger, ACM TOMACS 6(3) 1996, "Rejection-inversion to generate variates
 * from monotone discrete distributions"; the formulation of Apache Commons
 * RNG's RejectionInversionZipfSampler), so a 10M-id field needs no table. */
typedef struct {
    int64_t n;
    double s;
    double h_x1, h_n, threshold; /* H(1.5) - 1, H(n + 0.5), the squeeze */
} mtl_zipf;

/* n >= 1, s > 0 */
void mtl_zipf_init(mtl_zipf *z, int64_t n, double s);
int64_t mtl_zipf_sample(const mtl_zipf *z, mtl_rng *rng);

/* ---- click-log-like stream ---- */

/* "--vocab" of the ctr generator: "10000" or "10000000,1000000,1000": each
 * value in 1..INT32_MAX-1, at most MTL_SYNTH_VOCAB_MAX of them. */
#define MTL_SYNTH_VOCAB_MAX 1024
int mtl_synth_vocab_parse(const char *text, int64_t *vocab, int *n_vocab, mtl_error *err);

typedef struct {
    int64_t rows;
    int sparse_fields; /* S */
    /* categories per field (codes 1..V, 0 = OOV unused): field s has
     * vocab[min(s, n_vocab - 1)], so one value serves every field and a list
     * shorter than S repeats its last value; n_vocab > S is an error */
    int n_vocab;
    int64_t vocab[MTL_SYNTH_VOCAB_MAX];
    int dense_fields; /* D */
    int tasks;        /* T >= 2 */
    /* K multi-valued fields /multi/m0.. (0: none): lists of Zipf ranks of
     * vocab[n_vocab - 1] categories, lengths uniform in 0..2 multi_len (mean
     * multi_len, some empty), pooled by mean (even j) or sum (odd j); each
     * list adds the mean of its items' weights to the logits */
    int multi_fields;
    int multi_len; /* 0: 10 */
    uint64_t seed;
    int n_split; /* 0: default 0.8,0.1,0.1 */
    double split[MTL_SPLIT_MAX];
    const char *output_dir;
    int64_t chunk_rows; /* rows per append; 0: 65536 */
    int quiet;
} mtl_synth_ctr_options;

/* Writes train/valid/test.h5: /sparse [N x S] names c0.., vocab_sizes V_s+1,
 * /dense [N x D] names d0.. in [0,1), /labels [N x T] in {0,1}: "click",
 * "conversion" (= click AND converted, the CTCVR label ESMM trains on), then
 * "stage2", "stage3", ... each implying the previous one. */
int mtl_synth_ctr(const mtl_synth_ctr_options *opt, mtl_error *err);

#endif
