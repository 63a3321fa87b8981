/* Synthetic datasets (see include/mtl/synth.h). Both generators stream: rows
 * are drawn chunk by chunk and appended to the part's writer, so memory is
 * O(chunk) whatever --rows is. */
#include "mtl/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/data.h"
#include "mtl/util.h"

#define SYNTH_CHUNK 65536

/* Names "x0", "x1", ... in one allocation: names[i] points into the block. */
static char **make_names(const char *prefix, int n, mtl_error *err) {
    char **names = mtl_alloc((size_t)n + 1, sizeof(char *) + 24, "names", err);
    if (!names) return NULL;
    char *block = (char *)(names + n + 1);
    for (int i = 0; i < n; i++) {
        names[i] = block + (size_t)i * 24;
        snprintf(names[i], 24, "%s%d", prefix, i);
    }
    return names;
}

/* The parts' row counts (default split train/valid/test 0.8/0.1/0.1; no
 * part may be empty), and the output directory, created. */
static int plan_parts(int n_split, const double *split, int64_t rows, const char *dir, int *n_parts,
                      int64_t *count, mtl_error *err) {
    double frac[MTL_SPLIT_MAX] = {0.8, 0.1, 0.1};
    *n_parts = n_split ? n_split : 3;
    if (n_split) memcpy(frac, split, (size_t)n_split * sizeof *frac);
    mtl_split_counts(rows, frac, *n_parts, count);
    for (int p = 0; p < *n_parts; p++)
        if (count[p] == 0)
            return mtl_fail(err, "--rows", "%lld rows leave %s empty", (long long)rows,
                            mtl_split_file(p, *n_parts));
    return mtl_mkdir_p(dir, "directory", err);
}

static int part_path(char *path, size_t cap, const char *dir, int part, int n_parts,
                     mtl_error *err) {
    int len = snprintf(path, cap, "%s/%s", dir, mtl_split_file(part, n_parts));
    if (len < 0 || (size_t)len >= cap) return mtl_fail(err, dir, "path too long");
    return MTL_OK;
}

/* ------------------------------------------------------------------------ */
/* MMoE synthetic data (Ma et al., KDD 2018, section 3.2):
 *   x ~ N(0, I_d), d = 100
 *   u1, u2 orthogonal unit vectors (Gram-Schmidt on two Gaussian vectors)
 *   w1 = c u1,  w2 = c (p u1 + sqrt(1 - p^2) u2)   => cos(w1, w2) = p
 *   y_t = w_t^T x + sum_{i=1..m} sin(alpha_i w_t^T x + beta_i) + eps_t,
 *   eps_t ~ N(0, 0.01)
 * The paper leaves c, m, alpha, beta open; we use the values of the published
 * replication in the PLE paper (Tang et al., RecSys 2020, "Progressive Layered
 * Extraction (PLE)", its synthetic-data experiment): c = 1, m = 10,
 * alpha_i, beta_i ~ N(0, 1), shared by the two tasks. Since |w1| = |w2| = 1 and x ~ N(0, I), the
 * linear parts are standard normal with correlation exactly p. */

void mtl_mmoe_init(mtl_mmoe_model *m, double p, mtl_rng *rng) {
    const double c = 1.0;
    double u[2][MTL_MMOE_D];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < MTL_MMOE_D; j++) u[k][j] = mtl_rng_normal(rng);
    /* Gram-Schmidt: normalize u1, remove its component from u2, normalize */
    double n1 = 0.0;
    for (int j = 0; j < MTL_MMOE_D; j++) n1 += u[0][j] * u[0][j];
    n1 = sqrt(n1);
    for (int j = 0; j < MTL_MMOE_D; j++) u[0][j] /= n1;
    double dot = 0.0;
    for (int j = 0; j < MTL_MMOE_D; j++) dot += u[0][j] * u[1][j];
    double n2 = 0.0;
    for (int j = 0; j < MTL_MMOE_D; j++) {
        u[1][j] -= dot * u[0][j];
        n2 += u[1][j] * u[1][j];
    }
    n2 = sqrt(n2);
    for (int j = 0; j < MTL_MMOE_D; j++) u[1][j] /= n2;
    m->p = p;
    double q = sqrt(fmax(0.0, 1.0 - p * p));
    for (int j = 0; j < MTL_MMOE_D; j++) {
        m->w[0][j] = c * u[0][j];
        m->w[1][j] = c * (p * u[0][j] + q * u[1][j]);
    }
    for (int i = 0; i < MTL_MMOE_M; i++) {
        m->alpha[i] = mtl_rng_normal(rng);
        m->beta[i] = mtl_rng_normal(rng);
    }
}

void mtl_mmoe_sample(const mtl_mmoe_model *m, mtl_rng *rng, int64_t n, float *x, float *y,
                     double *lin) {
    const double noise_std = 0.1; /* eps ~ N(0, 0.01): variance 0.01 */
    for (int64_t b = 0; b < n; b++) {
        float *xb = x + b * MTL_MMOE_D;
        for (int j = 0; j < MTL_MMOE_D; j++) xb[j] = (float)mtl_rng_normal(rng);
        for (int t = 0; t < 2; t++) {
            /* the linear part from the float32 x actually written, so a model
             * reading the file sees exactly this function */
            double a = 0.0;
            for (int j = 0; j < MTL_MMOE_D; j++) a += m->w[t][j] * (double)xb[j];
            double v = a;
            for (int i = 0; i < MTL_MMOE_M; i++) v += sin(m->alpha[i] * a + m->beta[i]);
            v += noise_std * mtl_rng_normal(rng);
            y[b * 2 + t] = (float)v;
            if (lin) lin[b * 2 + t] = a;
        }
    }
}

int mtl_synth_mmoe(const mtl_synth_mmoe_options *opt, mtl_error *err) {
    if (!(opt->correlation >= -1.0 && opt->correlation <= 1.0))
        return mtl_fail(err, "--correlation", "%g is not in [-1, 1]", opt->correlation);
    if (opt->rows <= 0) return mtl_fail(err, "--rows", "must be positive");
    int64_t count[MTL_SPLIT_MAX];
    int n_parts;
    if (plan_parts(opt->n_split, opt->split, opt->rows, opt->output_dir, &n_parts, count, err))
        return MTL_ERR;

    mtl_rng rng;
    mtl_rng_seed(&rng, opt->seed);
    mtl_mmoe_model model;
    mtl_mmoe_init(&model, opt->correlation, &rng);

    char **dense_names = make_names("x", MTL_MMOE_D, err);
    float *x = mtl_alloc(SYNTH_CHUNK * MTL_MMOE_D, sizeof(float), "mmoe chunk", err);
    float *y = mtl_alloc(SYNTH_CHUNK * 2, sizeof(float), "mmoe chunk", err);
    const char *task_names[2] = {"y1", "y2"};
    char written[MTL_SPLIT_MAX][4200];
    int n_written = 0;
    mtl_writer *w = NULL;
    int rc = MTL_ERR;
    if (!dense_names || !x || !y) goto done;
    for (int p = 0; p < n_parts; p++) {
        if (part_path(written[p], sizeof written[p], opt->output_dir, p, n_parts, err)) goto done;
        if (mtl_writer_open(&w, written[p], 0, NULL, NULL, MTL_MMOE_D,
                            (const char *const *)dense_names, 2, task_names, 0, err))
            goto done;
        for (int64_t b = 0; b < count[p]; b += SYNTH_CHUNK) {
            int64_t n = count[p] - b < SYNTH_CHUNK ? count[p] - b : SYNTH_CHUNK;
            mtl_mmoe_sample(&model, &rng, n, x, y, NULL);
            if (mtl_writer_append(w, NULL, x, y, NULL, n, err)) goto done;
        }
        int crc = mtl_writer_close(w, NULL, err);
        w = NULL;
        if (crc) goto done;
        n_written++;
        if (!opt->quiet)
            printf("%s: %lld rows, D=%d, tasks y1 y2 (p=%g)\n", written[p], (long long)count[p],
                   MTL_MMOE_D, opt->correlation);
    }
    rc = MTL_OK;
done:
    mtl_writer_abort(w);
    if (rc != MTL_OK)
        for (int i = 0; i < n_written; i++) remove(written[i]);
    free(dense_names);
    free(x);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Zipf by rejection-inversion (see synth.h). With H(x) = (x^(1-s) - 1)/(1-s)
 * (log x when s = 1), the integral of h(x) = x^-s: draw u uniform in
 * (H(1.5) - 1, H(n + 0.5)], invert x = H^-1(u), round to k, and accept k when
 * it lies close enough to x (the squeeze) or u >= H(k + 0.5) - h(k). */

/* log1p(x)/x and expm1(x)/x, with their series near 0 */
static double log1p_over_x(double x) {
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double expm1_over_x(double x) {
    return fabs(x) > 1e-8 ? expm1(x) / x
                          : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

static double zipf_H(double s, double x) {
    double lx = log(x);
    return expm1_over_x((1.0 - s) * lx) * lx;
}

static double zipf_H_inv(double s, double u) {
    double t = u * (1.0 - s);
    if (t < -1.0) t = -1.0; /* rounding can push it just below */
    return exp(log1p_over_x(t) * u);
}

void mtl_zipf_init(mtl_zipf *z, int64_t n, double s) {
    z->n = n;
    z->s = s;
    z->h_x1 = zipf_H(s, 1.5) - 1.0;
    z->h_n = zipf_H(s, (double)n + 0.5);
    z->threshold = 2.0 - zipf_H_inv(s, zipf_H(s, 2.5) - exp(-s * log(2.0)));
}

int64_t mtl_zipf_sample(const mtl_zipf *z, mtl_rng *rng) {
    for (;;) {
        double u = z->h_n + mtl_rng_uniform_double(rng) * (z->h_x1 - z->h_n);
        double x = zipf_H_inv(z->s, u);
        int64_t k = (int64_t)(x + 0.5);
        if (k < 1) k = 1;
        if (k > z->n) k = z->n;
        if ((double)k - x <= z->threshold ||
            u >= zipf_H(z->s, (double)k + 0.5) - exp(-z->s * log((double)k)))
            return k;
    }
}

int mtl_synth_vocab_parse(const char *text, int64_t *vocab, int *n_vocab, mtl_error *err) {
    int n = 0;
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 1 || v > INT32_MAX - 1 || (*end != ',' && *end != '\0'))
            return mtl_fail(err, "--vocab",
                            "'%s': expected category counts in 1..%d like 10000 or "
                            "10000000,1000000,1000",
                            text, INT32_MAX - 1);
        if (n == MTL_SYNTH_VOCAB_MAX)
            return mtl_fail(err, "--vocab", "at most %d values", MTL_SYNTH_VOCAB_MAX);
        vocab[n++] = v;
        if (*end == '\0') break;
        p = end + 1;
    }
    *n_vocab = n;
    return MTL_OK;
}

/* "10000000x4,1000x20": the per-field vocabularies, runs collapsed. */
static void describe_vocab(char *buf, size_t cap, const int64_t *v, int S) {
    size_t used = 0;
    buf[0] = '\0';
    for (int s = 0; s < S && used < cap;) {
        int run = 1;
        while (s + run < S && v[s + run] == v[s]) run++;
        int len = snprintf(buf + used, cap - used, run > 1 ? "%s%lldx%d" : "%s%lld", s ? "," : "",
                           (long long)v[s], run);
        if (len < 0 || (size_t)len >= cap - used) break; /* cut: it is only a message */
        used += (size_t)len;
        s += run;
    }
}

/* ------------------------------------------------------------------------ */
/* Click-log-like data.
 *
 * Features: S categorical fields, each value a Zipf-distributed rank
 * k in 1..V_s (the field's vocabulary) with P(k) ~ k^-1.1 (exponent ~1.1:
 * item/user popularity in click logs is roughly Zipfian with exponent near 1,
 * e.g. Adamic & Huberman 2002, "Zipf's law and the Internet"), drawn by
 * rejection-inversion (no table: a 10M-id field costs no memory); D dense
 * features uniform in [0, 1).
 *
 * Labels: a hidden logistic model per funnel stage t,
 *   logit_t = b_t + sum_s a_t(s, k_s) + sum_d v_t,d (x_d - 0.5)
 * with a per-category weight a_t(s, k) computed from a hash of (seed, t, s, k)
 * (no V-sized weight table), shared in part across stages:
 *   a_t = sigma (rho h_0 + sqrt(1 - rho^2) h_t),  h uniform, unit variance.
 * Stage 0 is the click; stage t > 0 fires only if stage t-1 did (click ->
 * conversion), so label t is "stage t reached" (ESMM's CTCVR for t = 1). */

static uint64_t mix64(uint64_t z) {
    /* splitmix64's finalizer (Steele, Lea & Flood, OOPSLA 2014) */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform on [-sqrt 3, sqrt 3): mean 0, variance 1 */
static double hash_weight(uint64_t seed, int t, int s, int64_t k) {
    uint64_t h = mix64(seed ^ mix64(((uint64_t)t << 56) ^ ((uint64_t)s << 40) ^ (uint64_t)k));
    double u = (double)(h >> 11) * 0x1.0p-53;
    return 1.7320508075688772 * (2.0 * u - 1.0);
}

static double sigmoid(double z) {
    return 1.0 / (1.0 + exp(-z));
}

static int check_ctr_options(const mtl_synth_ctr_options *opt, mtl_error *err) {
    const int S = opt->sparse_fields, D = opt->dense_fields, K = opt->multi_fields;
    if (opt->rows <= 0) return mtl_fail(err, "--rows", "must be positive");
    if (S < 0 || D < 0 || S + D == 0)
        return mtl_fail(err, "--sparse-fields", "need S >= 0, D >= 0 and S + D >= 1");
    if (K < 0 || S + K > MTL_MAX_FIELDS)
        return mtl_fail(err, "--multi-fields", "need 0 <= K <= %d - S", MTL_MAX_FIELDS);
    if (K > 0 && (opt->n_vocab < 1 || opt->vocab[opt->n_vocab - 1] < 1))
        return mtl_fail(err, "--vocab", "multi-valued fields need a vocabulary size");
    if (S > 0 && (opt->n_vocab < 1 || opt->n_vocab > MTL_SYNTH_VOCAB_MAX))
        return mtl_fail(err, "--vocab", "give 1 to %d values", MTL_SYNTH_VOCAB_MAX);
    if (opt->n_vocab > S && S > 0)
        return mtl_fail(err, "--vocab", "%d values for %d sparse fields", opt->n_vocab, S);
    for (int i = 0; i < opt->n_vocab && S > 0; i++)
        if (opt->vocab[i] < 1 || opt->vocab[i] > INT32_MAX - 1)
            return mtl_fail(err, "--vocab", "%lld is not in 1..%d", (long long)opt->vocab[i],
                            INT32_MAX - 1);
    if (opt->tasks < 2 || opt->tasks > 64) return mtl_fail(err, "--tasks", "must be in 2..64");
    return MTL_OK;
}

#define CTR_ZIPF_S 1.1
#define CTR_RHO 0.5 /* stage weights' shared part */

/* The click log's generator: its samplers, its hidden model, and one chunk
 * of rows. */
typedef struct {
    int S, D, T, K, L; /* fields, dense, stages, list fields, mean list length */
    int64_t chunk;
    double sigma; /* per-field weight scale: the field sum has std 1 */
    uint64_t hash_seed;
    char **sparse_names, **dense_names, **task_names, **multi_names;
    int64_t *vocab_sizes, *field_vocab, *multi_vocab;
    int *multi_mean;
    mtl_zipf *zipf, multi_zipf;
    double *v; /* [T x D] dense weights */
    /* the chunk: field j's lists at ids + j * chunk * 2L, from offsets off + j * (chunk + 1) */
    int32_t *sparse;
    float *dense, *labels;
    int64_t *off;
    int32_t *ids;
} ctr_gen;

static void ctr_free(ctr_gen *g) {
    free(g->sparse_names);
    free(g->dense_names);
    free(g->task_names);
    free(g->multi_names);
    free(g->vocab_sizes);
    free(g->field_vocab);
    free(g->multi_vocab);
    free(g->multi_mean);
    free(g->zipf);
    free(g->v);
    free(g->sparse);
    free(g->dense);
    free(g->labels);
    free(g->off);
    free(g->ids);
}

static int64_t *ctr_offsets(const ctr_gen *g, int j) {
    return g->off + (size_t)j * (size_t)(g->chunk + 1);
}

static int32_t *ctr_lists(const ctr_gen *g, int j) {
    return g->ids + (size_t)j * (size_t)g->chunk * (size_t)(2 * g->L);
}

static int ctr_init(ctr_gen *g, const mtl_synth_ctr_options *opt, mtl_rng *rng, mtl_error *err) {
    memset(g, 0, sizeof *g);
    const int S = g->S = opt->sparse_fields, D = g->D = opt->dense_fields, T = g->T = opt->tasks;
    const int K = g->K = opt->multi_fields;
    g->L = opt->multi_len > 0 ? opt->multi_len : 10;
    g->chunk = opt->chunk_rows > 0 ? opt->chunk_rows : SYNTH_CHUNK;
    /* field sum: std 1 (a list's mean of weights counts as one field) */
    g->sigma = S + K > 0 ? 1.0 / sqrt((double)(S + K)) : 0.0;
    size_t chunk = (size_t)g->chunk;
    g->sparse_names = make_names("c", S, err);
    g->dense_names = make_names("d", D, err);
    g->task_names = make_names("stage", T, err);
    g->multi_names = make_names("m", K, err);
    g->vocab_sizes = mtl_alloc((size_t)S, sizeof(int64_t), "vocab sizes", err);
    g->field_vocab = mtl_alloc((size_t)S, sizeof(int64_t), "vocab sizes", err);
    g->multi_vocab = mtl_alloc((size_t)K, sizeof(int64_t), "vocab sizes", err);
    g->multi_mean = mtl_alloc((size_t)K, sizeof(int), "pooling", err);
    g->zipf = mtl_alloc((size_t)S, sizeof(mtl_zipf), "zipf samplers", err);
    g->v = mtl_alloc((size_t)T * (size_t)D, sizeof(double), "dense weights", err);
    g->sparse = mtl_alloc(chunk * (size_t)S, sizeof(int32_t), "ctr chunk", err);
    g->dense = mtl_alloc(chunk * (size_t)D, sizeof(float), "ctr chunk", err);
    g->labels = mtl_alloc(chunk * (size_t)T, sizeof(float), "ctr chunk", err);
    g->off = mtl_alloc((size_t)K * (chunk + 1), sizeof(int64_t), "ctr lists", err);
    g->ids = mtl_alloc((size_t)K * chunk * (size_t)(2 * g->L), sizeof(int32_t), "ctr lists", err);
    if (!g->sparse_names || !g->dense_names || !g->task_names || !g->multi_names ||
        !g->vocab_sizes || !g->field_vocab || !g->multi_vocab || !g->multi_mean || !g->zipf ||
        !g->v || !g->sparse || !g->dense || !g->labels || !g->off || !g->ids)
        return MTL_ERR;
    if (K > 0) mtl_zipf_init(&g->multi_zipf, opt->vocab[opt->n_vocab - 1], CTR_ZIPF_S);
    for (int j = 0; j < K; j++) {
        g->multi_vocab[j] = opt->vocab[opt->n_vocab - 1] + 1;
        g->multi_mean[j] = j % 2 == 0;
    }
    snprintf(g->task_names[0], 24, "click");
    snprintf(g->task_names[1], 24, "conversion");
    for (int s = 0; s < S; s++) {
        g->field_vocab[s] = opt->vocab[s < opt->n_vocab ? s : opt->n_vocab - 1];
        g->vocab_sizes[s] = g->field_vocab[s] + 1;
        mtl_zipf_init(&g->zipf[s], g->field_vocab[s], CTR_ZIPF_S);
    }
    g->hash_seed = mtl_rng_next(rng);
    for (int i = 0; i < T * D; i++) g->v[i] = mtl_rng_normal(rng);
    return MTL_OK;
}

/* Row i of the chunk's features: ids, dense values and lists. */
static void ctr_draw_features(ctr_gen *g, mtl_rng *rng, int64_t i) {
    int32_t *sp = g->sparse + i * g->S;
    float *de = g->dense + i * g->D;
    /* ranks 1..V_s: code 0 stays the OOV slot */
    for (int s = 0; s < g->S; s++) sp[s] = (int32_t)mtl_zipf_sample(&g->zipf[s], rng);
    for (int d = 0; d < g->D; d++) de[d] = mtl_rng_uniform(rng);
    for (int j = 0; j < g->K; j++) { /* (no draws without lists: K = 0 as before) */
        int64_t *o = ctr_offsets(g, j);
        int32_t *li = ctr_lists(g, j);
        int64_t len = (int64_t)mtl_rng_below(rng, (uint64_t)(2 * g->L + 1));
        if (i == 0) o[0] = 0;
        for (int64_t k = 0; k < len; k++)
            li[o[i] + k] = (int32_t)mtl_zipf_sample(&g->multi_zipf, rng);
        o[i + 1] = o[i] + len;
    }
}

/* a_t(s, k) of the header comment */
static double ctr_weight(const ctr_gen *g, int t, int s, int64_t k) {
    double h0 = hash_weight(g->hash_seed, 0, s, k);
    return t == 0
               ? h0
               : CTR_RHO * h0 + sqrt(1.0 - CTR_RHO * CTR_RHO) * hash_weight(g->hash_seed, t, s, k);
}

/* logit_t of row i (header comment); a list counts its items' mean weight */
static double ctr_logit(const ctr_gen *g, int t, int64_t i) {
    const double bias_click = -1.5, bias_stage = -1.0; /* ~20% clicks, ~5% conversions */
    const int32_t *sp = g->sparse + i * g->S;
    const float *de = g->dense + i * g->D;
    double z = t == 0 ? bias_click : bias_stage;
    for (int s = 0; s < g->S; s++) z += g->sigma * ctr_weight(g, t, s, sp[s]);
    for (int j = 0; j < g->K; j++) {
        const int64_t *o = ctr_offsets(g, j);
        const int32_t *li = ctr_lists(g, j);
        double sum = 0;
        for (int64_t k = o[i]; k < o[i + 1]; k++) sum += ctr_weight(g, t, g->S + j, li[k]);
        if (o[i + 1] > o[i]) z += g->sigma * sum / (double)(o[i + 1] - o[i]);
    }
    for (int d = 0; d < g->D; d++) z += g->v[t * g->D + d] * ((double)de[d] - 0.5);
    return z;
}

/* Row i's labels: stage t is reached if it fires and stage t-1 was reached. */
static void ctr_draw_labels(ctr_gen *g, mtl_rng *rng, int64_t i, double *positives) {
    float *la = g->labels + i * g->T;
    int reached = 1;
    for (int t = 0; t < g->T; t++) {
        double z = ctr_logit(g, t, i);
        /* draw even when an earlier stage failed, so the stream of random
         * numbers does not depend on the labels */
        int fire = mtl_rng_uniform_double(rng) < sigmoid(z);
        reached = reached && fire;
        la[t] = (float)reached;
        positives[t] += reached;
    }
}

/* count rows into the file path; positives[t]: their labels' sums */
static int ctr_write_part(ctr_gen *g, mtl_rng *rng, const char *path, int64_t count,
                          double *positives, mtl_error *err) {
    mtl_writer *w = NULL;
    if (mtl_writer_open(&w, path, g->S, (const char *const *)g->sparse_names, g->vocab_sizes, g->D,
                        (const char *const *)g->dense_names, g->T,
                        (const char *const *)g->task_names, 0, err) ||
        mtl_writer_add_multi(w, g->K, (const char *const *)g->multi_names, g->multi_vocab,
                             g->multi_mean, err))
        goto fail;
    for (int64_t b = 0; b < count; b += g->chunk) {
        int64_t n = count - b < g->chunk ? count - b : g->chunk;
        for (int64_t i = 0; i < n; i++) {
            ctr_draw_features(g, rng, i);
            ctr_draw_labels(g, rng, i, positives);
        }
        if (mtl_writer_append(w, g->S ? g->sparse : NULL, g->D ? g->dense : NULL, g->labels, NULL,
                              n, err))
            goto fail;
        for (int j = 0; j < g->K; j++)
            if (mtl_writer_append_multi(w, j, ctr_offsets(g, j), ctr_lists(g, j), n, err))
                goto fail;
    }
    return mtl_writer_close(w, NULL, err);
fail:
    mtl_writer_abort(w);
    return MTL_ERR;
}

int mtl_synth_ctr(const mtl_synth_ctr_options *opt, mtl_error *err) {
    if (check_ctr_options(opt, err)) return MTL_ERR;
    int64_t count[MTL_SPLIT_MAX];
    int n_parts;
    if (plan_parts(opt->n_split, opt->split, opt->rows, opt->output_dir, &n_parts, count, err))
        return MTL_ERR;
    char written[MTL_SPLIT_MAX][4200];
    int n_written = 0;
    mtl_rng rng;
    mtl_rng_seed(&rng, opt->seed);
    ctr_gen g;
    int rc = ctr_init(&g, opt, &rng, err);
    char vocab_text[256];
    if (rc == MTL_OK) describe_vocab(vocab_text, sizeof vocab_text, g.field_vocab, g.S);
    for (int p = 0; p < n_parts && rc == MTL_OK; p++) {
        double positives[64] = {0};
        rc = part_path(written[p], sizeof written[p], opt->output_dir, p, n_parts, err);
        if (rc == MTL_OK) rc = ctr_write_part(&g, &rng, written[p], count[p], positives, err);
        if (rc != MTL_OK) break;
        n_written++;
        if (!opt->quiet) {
            printf("%s: %lld rows, S=%d (vocab %s, Zipf %.1f)", written[p], (long long)count[p],
                   g.S, vocab_text, CTR_ZIPF_S);
            if (g.K > 0) printf(" M=%d (lists of mean length %d)", g.K, g.L);
            printf(" D=%d T=%d, positive rate:", g.D, g.T);
            for (int t = 0; t < g.T; t++)
                printf(" %s %.4f", g.task_names[t], positives[t] / (double)count[p]);
            printf("\n");
        }
    }
    if (rc != MTL_OK)
        for (int i = 0; i < n_written; i++) remove(written[i]);
    ctr_free(&g);
    return rc;
}
