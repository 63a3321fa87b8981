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

static int resolve_split(int n_split, const double *split, int64_t rows, double *frac, int *n_parts,
                         int64_t *count, mtl_error *err) {
    *n_parts = n_split ? n_split : 3;
    frac[0] = 0.8, frac[1] = 0.1, frac[2] = 0.1; /* default train/valid/test */
    if (n_split) memcpy(frac, split, (size_t)n_split * sizeof *frac);
    mtl_split_counts(rows, frac, *n_parts, count);
    for (int p = 0; p < *n_parts; p++)
        if (count[p] == 0)
            return mtl_fail(err, "--rows", "%lld rows leave %s empty", (long long)rows,
                            mtl_split_file(p, *n_parts));
    return MTL_OK;
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
    double frac[MTL_SPLIT_MAX];
    int64_t count[MTL_SPLIT_MAX];
    int n_parts;
    if (resolve_split(opt->n_split, opt->split, opt->rows, frac, &n_parts, count, err))
        return MTL_ERR;
    if (mtl_mkdir_p(opt->output_dir, err)) return MTL_ERR;

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

int mtl_synth_ctr(const mtl_synth_ctr_options *opt, mtl_error *err) {
    const int S = opt->sparse_fields, D = opt->dense_fields, T = opt->tasks;
    const int K = opt->multi_fields, L = opt->multi_len > 0 ? opt->multi_len : 10;
    if (opt->rows <= 0) return mtl_fail(err, "--rows", "must be positive");
    if (S < 0 || D < 0 || S + D == 0)
        return mtl_fail(err, "--sparse-fields", "need S >= 0, D >= 0 and S + D >= 1");
    if (K < 0 || S + K > 256) return mtl_fail(err, "--multi-fields", "need 0 <= K <= 256 - S");
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
    if (T < 2 || T > 64) return mtl_fail(err, "--tasks", "must be in 2..64");
    double frac[MTL_SPLIT_MAX];
    int64_t count[MTL_SPLIT_MAX];
    int n_parts;
    if (resolve_split(opt->n_split, opt->split, opt->rows, frac, &n_parts, count, err))
        return MTL_ERR;
    int64_t chunk = opt->chunk_rows > 0 ? opt->chunk_rows : SYNTH_CHUNK;
    if (mtl_mkdir_p(opt->output_dir, err)) return MTL_ERR;

    const double zipf_s = 1.1;
    const double rho = 0.5; /* stage weights' shared part */
    /* field sum: std 1 (a list's mean of weights counts as one field) */
    const double sigma = S + K > 0 ? 1.0 / sqrt((double)(S + K)) : 0.0;
    const double bias_click = -1.5, bias_stage = -1.0; /* ~20% clicks, ~5% conversions */

    char **sparse_names = make_names("c", S, err);
    char **dense_names = make_names("d", D, err);
    char **task_names = make_names("stage", T, err);
    int64_t *vocab_sizes = mtl_alloc((size_t)S, sizeof(int64_t), "vocab sizes", err);
    int64_t *field_vocab = mtl_alloc((size_t)S, sizeof(int64_t), "vocab sizes", err);
    mtl_zipf *zipf = mtl_alloc((size_t)S, sizeof(mtl_zipf), "zipf samplers", err);
    char vocab_text[256];
    double *v = mtl_alloc((size_t)T * (size_t)D, sizeof(double), "dense weights", err);
    int32_t *sparse = mtl_alloc((size_t)chunk * (size_t)S, sizeof(int32_t), "ctr chunk", err);
    float *dense = mtl_alloc((size_t)chunk * (size_t)D, sizeof(float), "ctr chunk", err);
    float *labels = mtl_alloc((size_t)chunk * (size_t)T, sizeof(float), "ctr chunk", err);
    /* multi-valued fields: field j's lists of a chunk at ids[j][off[j][i]..] */
    char **multi_names = make_names("m", K, err);
    int64_t *multi_vocab = mtl_alloc((size_t)K, sizeof(int64_t), "vocab sizes", err);
    int *multi_mean = mtl_alloc((size_t)K, sizeof(int), "pooling", err);
    int64_t *off = mtl_alloc((size_t)K * (size_t)(chunk + 1), sizeof(int64_t), "ctr lists", err);
    int32_t *ids =
        mtl_alloc((size_t)K * (size_t)chunk * (size_t)(2 * L), sizeof(int32_t), "ctr lists", err);
    mtl_zipf multi_zipf;
    char written[MTL_SPLIT_MAX][4200];
    int n_written = 0;
    mtl_writer *w = NULL;
    int rc = MTL_ERR;
    if (!sparse_names || !dense_names || !task_names || !vocab_sizes || !field_vocab || !zipf ||
        !v || !sparse || !dense || !labels || !multi_names || !multi_vocab || !multi_mean || !off ||
        !ids)
        goto done;
    if (K > 0) mtl_zipf_init(&multi_zipf, opt->vocab[opt->n_vocab - 1], zipf_s);
    for (int j = 0; j < K; j++) {
        multi_vocab[j] = opt->vocab[opt->n_vocab - 1] + 1;
        multi_mean[j] = j % 2 == 0;
    }
    snprintf(task_names[0], 24, "click");
    snprintf(task_names[1], 24, "conversion");
    for (int s = 0; s < S; s++) {
        field_vocab[s] = opt->vocab[s < opt->n_vocab ? s : opt->n_vocab - 1];
        vocab_sizes[s] = field_vocab[s] + 1;
        mtl_zipf_init(&zipf[s], field_vocab[s], zipf_s);
    }
    describe_vocab(vocab_text, sizeof vocab_text, field_vocab, S);

    mtl_rng rng;
    mtl_rng_seed(&rng, opt->seed);
    uint64_t hash_seed = mtl_rng_next(&rng);
    for (int i = 0; i < T * D; i++) v[i] = mtl_rng_normal(&rng);

    for (int p = 0; p < n_parts; p++) {
        if (part_path(written[p], sizeof written[p], opt->output_dir, p, n_parts, err)) goto done;
        if (mtl_writer_open(&w, written[p], S, (const char *const *)sparse_names, vocab_sizes, D,
                            (const char *const *)dense_names, T, (const char *const *)task_names, 0,
                            err) ||
            mtl_writer_add_multi(w, K, (const char *const *)multi_names, multi_vocab, multi_mean,
                                 err))
            goto done;
        double positives[64] = {0};
        for (int64_t b = 0; b < count[p]; b += chunk) {
            int64_t n = count[p] - b < chunk ? count[p] - b : chunk;
            for (int64_t i = 0; i < n; i++) {
                int32_t *sp = sparse + i * S;
                float *de = dense + i * D;
                float *la = labels + i * T;
                /* ranks 1..V_s: code 0 stays the OOV slot */
                for (int s = 0; s < S; s++) sp[s] = (int32_t)mtl_zipf_sample(&zipf[s], &rng);
                for (int d = 0; d < D; d++) de[d] = mtl_rng_uniform(&rng);
                for (int j = 0; j < K; j++) { /* (no draws without lists: K = 0 as before) */
                    int64_t *o = off + (size_t)j * (size_t)(chunk + 1);
                    int32_t *li = ids + (size_t)j * (size_t)chunk * (size_t)(2 * L);
                    int64_t len = (int64_t)mtl_rng_below(&rng, (uint64_t)(2 * L + 1));
                    if (i == 0) o[0] = 0;
                    for (int64_t k = 0; k < len; k++)
                        li[o[i] + k] = (int32_t)mtl_zipf_sample(&multi_zipf, &rng);
                    o[i + 1] = o[i] + len;
                }
                int reached = 1;
                for (int t = 0; t < T; t++) {
                    double z = t == 0 ? bias_click : bias_stage;
                    for (int s = 0; s < S; s++) {
                        double h0 = hash_weight(hash_seed, 0, s, sp[s]);
                        z += t == 0 ? sigma * h0
                                    : sigma * (rho * h0 + sqrt(1.0 - rho * rho) *
                                                              hash_weight(hash_seed, t, s, sp[s]));
                    }
                    for (int j = 0; j < K; j++) { /* the mean weight of the list's items */
                        const int64_t *o = off + (size_t)j * (size_t)(chunk + 1);
                        const int32_t *li = ids + (size_t)j * (size_t)chunk * (size_t)(2 * L);
                        double sum = 0;
                        for (int64_t k = o[i]; k < o[i + 1]; k++) {
                            double h0 = hash_weight(hash_seed, 0, S + j, li[k]);
                            sum += t == 0 ? h0
                                          : rho * h0 + sqrt(1.0 - rho * rho) *
                                                           hash_weight(hash_seed, t, S + j, li[k]);
                        }
                        if (o[i + 1] > o[i]) z += sigma * sum / (double)(o[i + 1] - o[i]);
                    }
                    for (int d = 0; d < D; d++) z += v[t * D + d] * ((double)de[d] - 0.5);
                    /* draw even when an earlier stage failed, so the stream of
                     * random numbers does not depend on the labels */
                    int fire = mtl_rng_uniform_double(&rng) < sigmoid(z);
                    reached = reached && fire;
                    la[t] = (float)reached;
                    positives[t] += reached;
                }
            }
            if (mtl_writer_append(w, S ? sparse : NULL, D ? dense : NULL, labels, NULL, n, err))
                goto done;
            for (int j = 0; j < K; j++)
                if (mtl_writer_append_multi(w, j, off + (size_t)j * (size_t)(chunk + 1),
                                            ids + (size_t)j * (size_t)chunk * (size_t)(2 * L), n,
                                            err))
                    goto done;
        }
        int crc = mtl_writer_close(w, NULL, err);
        w = NULL;
        if (crc) goto done;
        n_written++;
        if (!opt->quiet) {
            printf("%s: %lld rows, S=%d (vocab %s, Zipf %.1f)", written[p], (long long)count[p], S,
                   vocab_text, zipf_s);
            if (K > 0) printf(" M=%d (lists of mean length %d)", K, L);
            printf(" D=%d T=%d, positive rate:", D, T);
            for (int t = 0; t < T; t++)
                printf(" %s %.4f", task_names[t], positives[t] / (double)count[p]);
            printf("\n");
        }
    }
    rc = MTL_OK;
done:
    mtl_writer_abort(w);
    if (rc != MTL_OK)
        for (int i = 0; i < n_written; i++) remove(written[i]);
    free(sparse_names);
    free(dense_names);
    free(task_names);
    free(vocab_sizes);
    free(field_vocab);
    free(zipf);
    free(v);
    free(sparse);
    free(dense);
    free(labels);
    free(multi_names);
    free(multi_vocab);
    free(multi_mean);
    free(off);
    free(ids);
    return rc;
}
