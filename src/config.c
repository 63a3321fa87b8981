/* Run configuration: defaults, then the INI file (--config), then the command
 * line. Every key is described once in the table `keys` below (type, field,
 * range) and that one entry serves the INI file, the command line and
 * mtl_config_set, so the three can never disagree. Parsing is strict: a
 * number must be consumed whole, be finite and in range, and every message
 * names where the bad value came from ("--lr", "run.ini:7: lr"). */
#include "mtl/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtl/ini.h"
#include "mtl/model.h"
#include "mtl/optim.h"
#include "mtl/util.h"

/* ------------------------------------------------------------------------ */
/* defaults and names */

static void set_units(mtl_units *u, int n, const int *units) {
    memset(u, 0, sizeof *u);
    u->n = n;
    for (int i = 0; i < n; i++) u->units[i] = units[i];
}

static int set_gemm(mtl_config *cfg, const char *value, const char *where, mtl_error *err);

void mtl_config_defaults(mtl_config *cfg) {
    memset(cfg, 0, sizeof *cfg); // every path and task name empty, every list empty
    cfg->command = MTL_CMD_TRAIN;
    cfg->data_order_global = 0;

    // model: the census experiments of the MMoE/PLE papers' open-source ports
    cfg->model = mtl_model_find("mmoe");
    cfg->embedding_dim = 4;
    const int u16[] = {16}, u8[] = {8};
    set_units(&cfg->bottom_units, 1, u16);
    set_units(&cfg->tower_units.list[0], 1, u8);
    cfg->tower_units.n_lists = 1;
    set_units(&cfg->expert_units, 1, u16);
    set_units(&cfg->gate_units.list[0], 0, NULL);
    cfg->gate_units.n_lists = 1;
    cfg->activation = MTL_ACT_RELU;
    /* Xi et al. (KDD 2021), sec. 4.1.3: alpha = 0.6 on both of their datasets */
    cfg->aitm_calibration_weight = 0.6f;
    cfg->num_experts = 8;
    cfg->num_experts_specific = 4;
    cfg->num_experts_shared = 4;
    cfg->num_levels = 2;
    cfg->batch_norm = 0;
    cfg->dropout = 0.0f;

    cfg->loss_uncertainty = 0;

    cfg->optimizer = MTL_OPT_ADAM;
    cfg->lr = 0.01f;
    cfg->momentum = 0.0f;
    cfg->l2_embedding = 1e-5f;
    cfg->l2_dnn = 0.0f;
    cfg->batch_size = 1024;
    cfg->epochs = 10;
    cfg->seed = 1024;
    cfg->early_stop_patience = 0;
    strcpy(cfg->early_stop_metric, "valid_loss");
    cfg->skip_nonfinite_steps = 0;

    cfg->checkpoint_every_steps = 0;
    cfg->checkpoint_every_seconds = 0.0;
    cfg->keep_checkpoints = 3;

    cfg->threads = 1;
    /* $MTL_GEMM, when it names a backend, is --gemm's default: it runs a whole
     * test suite on one backend (mtl_config_validate rejects another word) */
    const char *gemm = getenv("MTL_GEMM");
    mtl_error ignored;
    if (!gemm || set_gemm(cfg, gemm, "MTL_GEMM", &ignored)) cfg->gemm = 0; /* auto */
    cfg->max_steps = 0;
    cfg->stream = 0;
    cfg->stream_chunk_rows = 65536;
    cfg->quiet = 0;
    cfg->embedding_sharding = MTL_SHARDING_AUTO;
    cfg->shard_memory_share = 0.25f;
    cfg->shard_min_rows = 1000;
    cfg->rank = 0;
    cfg->world = 1;
    cfg->rank_memory_mb = 0;
}

static const char *const activation_names[] = {"relu", "tanh", "sigmoid"}; /* mtl_activation */

const char *mtl_activation_name(int activation) {
    return activation >= 0 && activation < 3 ? activation_names[activation] : "unknown";
}

/* "shared_bottom, esmm, ..." from the model list */
static void model_list(char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; mtl_models[i]; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? ", " : "", mtl_models[i]->name);
}

/* a model by name ('-' for '_' too: shared-bottom) */
static const mtl_model_desc *model_named(const char *name) {
    char w[32];
    snprintf(w, sizeof w, "%s", name);
    for (char *c = w; *c; c++)
        if (*c == '-') *c = '_';
    return mtl_model_find(w);
}

/* ------------------------------------------------------------------------ */
/* case-insensitive equality (strcasecmp is POSIX, not C11) */
static int eq_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* 1/0 for a boolean word, -1 if it is not one */
static int bool_word(const char *s) {
    static const char *const yes[] = {"true", "1", "on", "yes"};
    static const char *const no[] = {"false", "0", "off", "no"};
    for (int i = 0; i < 4; i++) {
        if (eq_nocase(s, yes[i])) return 1;
        if (eq_nocase(s, no[i])) return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* the key table */

typedef enum {
    KT_STR,        /* char[size] */
    KT_INT,        /* int in [ilo, ihi] */
    KT_I64,        /* int64_t in [ilo, ihi] */
    KT_U64,        /* uint64_t, any */
    KT_FLOAT,      /* float in the range (flo, fhi, lo_open, hi_open) */
    KT_DOUBLE,     /* double, same */
    KT_BOOL,       /* int 0/1; on the command line the value may be omitted (= true) */
    KT_UNITS,      /* mtl_units; ilo = minimum number of layers */
    KT_TASK_UNITS, /* mtl_task_units: per-task lists split by '/'; ilo as KT_UNITS */
    KT_FN          /* custom setter */
} key_type;

typedef int (*key_setter)(mtl_config *cfg, const char *value, const char *where, mtl_error *err);

typedef struct {
    const char *name; /* canonical, with '_' */
    key_type type;
    size_t offset;
    size_t size; /* KT_STR: buffer size */
    int64_t ilo, ihi;
    double flo, fhi;
    int lo_open, hi_open; /* float range (flo, ...) / [..., fhi) */
    key_setter set;
} key_def;

#define FIELD(f) offsetof(mtl_config, f)
#define K_STR(n, f)                                                                                \
    { .name = n, .type = KT_STR, .offset = FIELD(f), .size = sizeof(((mtl_config *)0)->f) }
#define K_INT(n, f, lo, hi)                                                                        \
    { .name = n, .type = KT_INT, .offset = FIELD(f), .ilo = lo, .ihi = hi }
#define K_I64(n, f, lo, hi)                                                                        \
    { .name = n, .type = KT_I64, .offset = FIELD(f), .ilo = lo, .ihi = hi }
#define K_FLT(n, t, f, lo, hi, lo_o, hi_o)                                                         \
    {                                                                                              \
        .name = n, .type = t, .offset = FIELD(f), .flo = lo, .fhi = hi, .lo_open = lo_o,           \
        .hi_open = hi_o                                                                            \
    }
#define K_BOOL(n, f)                                                                               \
    { .name = n, .type = KT_BOOL, .offset = FIELD(f) }
#define K_UNITS(n, f, min_layers)                                                                  \
    { .name = n, .type = KT_UNITS, .offset = FIELD(f), .ilo = min_layers }
#define K_TASK_UNITS(n, f, min_layers)                                                             \
    { .name = n, .type = KT_TASK_UNITS, .offset = FIELD(f), .ilo = min_layers }
#define K_FN(n, fn)                                                                                \
    { .name = n, .type = KT_FN, .set = fn }

#define MAX_UNITS 1000000 /* one layer's width; far above anything sensible */

static int set_config(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_model(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_optimizer(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_data_order(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_embedding_update(mtl_config *cfg, const char *value, const char *where,
                                mtl_error *err);
static int set_embedding_sharding(mtl_config *cfg, const char *value, const char *where,
                                  mtl_error *err);
static int set_loss_weighting(mtl_config *cfg, const char *value, const char *where,
                              mtl_error *err);
static int set_task_types(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_loss_weights(mtl_config *cfg, const char *value, const char *where, mtl_error *err);
static int set_early_stop_metric(mtl_config *cfg, const char *value, const char *where,
                                 mtl_error *err);
static int set_activation(mtl_config *cfg, const char *value, const char *where, mtl_error *err);

static const key_def keys[] = {
    K_FN("config", set_config),
    // data
    K_STR("train", train_path),
    K_STR("valid", valid_path),
    K_FLT("valid_split", KT_DOUBLE, valid_split, 0.0, 1.0, 0, 1),
    K_STR("test", test_path),
    K_STR("data", data_path),
    K_STR("checkpoint", checkpoint_path),
    K_FN("data_order", set_data_order),
    K_BOOL("stream", stream),
    K_I64("stream_chunk_rows", stream_chunk_rows, 1, 1000000000),
    // model
    K_FN("model", set_model),
    K_INT("embedding_dim", embedding_dim, 1, 65536),
    K_UNITS("bottom_units", bottom_units, 1),
    K_TASK_UNITS("tower_units", tower_units, 1),
    K_UNITS("expert_units", expert_units, 1),
    K_TASK_UNITS("gate_units", gate_units, 0),
    K_FN("activation", set_activation),
    K_INT("num_experts", num_experts, 1, 1024),
    K_INT("num_experts_specific", num_experts_specific, 1, 1024),
    K_INT("num_experts_shared", num_experts_shared, 1, 1024),
    K_INT("num_levels", num_levels, 1, 64),
    K_BOOL("batch_norm", batch_norm),
    K_FLT("dropout", KT_FLOAT, dropout, 0.0, 1.0, 0, 1),
    K_STR("ctr_task", ctr_task),
    K_STR("ctcvr_task", ctcvr_task),
    K_STR("task_order", task_order),
    K_FLT("aitm_calibration_weight", KT_FLOAT, aitm_calibration_weight, 0.0, INFINITY, 0, 0),
    K_FN("task_types", set_task_types),
    // loss
    K_FN("loss_weights", set_loss_weights),
    K_FN("loss_weighting", set_loss_weighting),
    // optimization
    K_FN("optimizer", set_optimizer),
    K_FLT("lr", KT_FLOAT, lr, 0.0, INFINITY, 1, 0),
    K_FLT("momentum", KT_FLOAT, momentum, 0.0, 1.0, 0, 1),
    K_FLT("l2_embedding", KT_FLOAT, l2_embedding, 0.0, INFINITY, 0, 0),
    K_FLT("l2_dnn", KT_FLOAT, l2_dnn, 0.0, INFINITY, 0, 0),
    K_FN("embedding_update", set_embedding_update),
    K_FN("embedding_sharding", set_embedding_sharding),
    K_FLT("shard_memory_share", KT_FLOAT, shard_memory_share, 0.0, 1.0, 1, 0),
    K_I64("shard_min_rows", shard_min_rows, 1, INT64_MAX),
    K_INT("batch_size", batch_size, 1, 100000000),
    K_INT("epochs", epochs, 1, 1000000000),
    {.name = "seed", .type = KT_U64, .offset = FIELD(seed)},
    K_INT("early_stop_patience", early_stop_patience, 0, 1000000000),
    K_INT("patience", early_stop_patience, 0, 1000000000), /* its short name */
    K_FN("early_stop_metric", set_early_stop_metric),
    K_BOOL("skip_nonfinite_steps", skip_nonfinite_steps),
    // outputs and checkpoints
    K_STR("metrics_out", metrics_out),
    K_STR("predict_out", predict_out),
    K_STR("onnx", onnx_path),
    K_STR("checkpoint_dir", checkpoint_dir),
    K_STR("resume", resume),
    K_I64("checkpoint_every_steps", checkpoint_every_steps, 0, INT64_MAX),
    K_FLT("checkpoint_every_seconds", KT_DOUBLE, checkpoint_every_seconds, 0.0, INFINITY, 0, 0),
    K_INT("keep_checkpoints", keep_checkpoints, 1, 1000000),
    // runtime
    K_INT("threads", threads, 1, 4096),
    K_FN("gemm", set_gemm),
    K_I64("max_steps", max_steps, 0, INT64_MAX),
    K_BOOL("quiet", quiet),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* Look a key up; '-' and '_' are the same character. NULL if unknown. */
static const key_def *find_key(const char *name, size_t len) {
    for (size_t k = 0; k < N_KEYS; k++) {
        const char *c = keys[k].name;
        size_t i = 0;
        for (; i < len && c[i]; i++) {
            char a = name[i] == '-' ? '_' : name[i];
            if (a != c[i]) break;
        }
        if (i == len && c[i] == '\0') return &keys[k];
    }
    return NULL;
}

static int float_range_error(const key_def *k, const char *text, const char *where,
                             mtl_error *err) {
    if (isinf(k->fhi))
        return mtl_fail(err, where, "'%s' must be %s %g", text, k->lo_open ? ">" : ">=", k->flo);
    return mtl_fail(err, where, "'%s' must be in %c%g, %g%c", text, k->lo_open ? '(' : '[', k->flo,
                    k->fhi, k->hi_open ? ')' : ']');
}

static int in_float_range(const key_def *k, double v) {
    if (k->lo_open ? !(v > k->flo) : !(v >= k->flo)) return 0;
    if (k->hi_open ? !(v < k->fhi) : !(v <= k->fhi)) return 0;
    return 1;
}

static int parse_units(mtl_units *out, const char *value, int min_layers, const char *where,
                       mtl_error *err);
static int parse_task_units(mtl_task_units *out, const char *value, int min_layers,
                            const char *where, mtl_error *err);

static int apply_key(mtl_config *cfg, const key_def *k, const char *value, const char *where,
                     mtl_error *err) {
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KT_STR: {
        size_t len = strlen(value);
        if (len >= k->size)
            return mtl_fail(err, where, "value is too long (%zu characters, at most %zu)", len,
                            k->size - 1);
        memcpy(field, value, len + 1);
        return MTL_OK;
    }
    case KT_INT:
    case KT_I64: {
        int64_t v;
        if (mtl_parse_i64(value, k->ilo, k->ihi, &v, where, err) != MTL_OK) return MTL_ERR;
        if (k->type == KT_INT)
            *(int *)field = (int)v; // the range is within int
        else
            *(int64_t *)field = v;
        return MTL_OK;
    }
    case KT_U64:
        return mtl_parse_u64(value, (uint64_t *)field, where, err);
    case KT_FLOAT:
    case KT_DOUBLE: {
        double d;
        if (mtl_parse_double(value, &d, where, err) != MTL_OK) return MTL_ERR;
        if (k->type == KT_FLOAT) {
            // check the value actually stored: 1e-50 is > 0 but rounds to 0.0f
            float f = (float)d;
            if (!isfinite(f)) return mtl_fail(err, where, "'%s' is too large", value);
            if (!in_float_range(k, (double)f)) return float_range_error(k, value, where, err);
            *(float *)field = f;
        } else {
            if (!in_float_range(k, d)) return float_range_error(k, value, where, err);
            *(double *)field = d;
        }
        return MTL_OK;
    }
    case KT_BOOL: {
        char buf[16];
        const char *s = mtl_skip_space(value);
        size_t len = strlen(s);
        while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
        int b = -1;
        if (len < sizeof buf) {
            memcpy(buf, s, len);
            buf[len] = '\0';
            b = bool_word(buf);
        }
        if (b < 0)
            return mtl_fail(err, where, "'%s' is not a boolean (true/false, 1/0, on/off, yes/no)",
                            value);
        *(int *)field = b;
        return MTL_OK;
    }
    case KT_UNITS:
        return parse_units((mtl_units *)field, value, (int)k->ilo, where, err);
    case KT_TASK_UNITS:
        return parse_task_units((mtl_task_units *)field, value, (int)k->ilo, where, err);
    case KT_FN:
        return k->set(cfg, value, where, err);
    }
    return mtl_fail(err, NULL, "%s: key '%s' has no type", MTL_HERE, k->name);
}

int mtl_config_set(mtl_config *cfg, const char *key, const char *value, const char *where,
                   mtl_error *err) {
    if (!where) where = key;
    const key_def *k = find_key(key, strlen(key));
    if (!k) return mtl_fail(err, where, "unknown key");
    return apply_key(cfg, k, value ? value : "", where, err);
}

/* ------------------------------------------------------------------------ */
/* custom setters */

static int set_config(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    (void)where;
    return mtl_config_load_ini(cfg, value, err);
}

/* copy value into a small buffer with surrounding whitespace removed (names
 * and enum words; too long = cannot be a valid word) */
static void trimmed(char *buf, size_t size, const char *value) {
    const char *s = mtl_skip_space(value);
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    if (len >= size) len = size - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
}

static int set_model(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    char w[32], list[256];
    trimmed(w, sizeof w, value);
    const mtl_model_desc *m = model_named(w);
    if (!m) {
        model_list(list, sizeof list);
        return mtl_fail(err, where, "'%s' is not a model (%s)", value, list);
    }
    cfg->model = m;
    return MTL_OK;
}

static int one_of(int *out, const char *value, const char *const *words, int n, const char *what,
                  const char *where, mtl_error *err);

static int set_activation(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    return one_of(&cfg->activation, value, activation_names, 3, "an activation", where, err);
}

static int set_optimizer(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    char w[32];
    trimmed(w, sizeof w, value);
    int o = mtl_optim_parse(w);
    if (o < 0) return mtl_fail(err, where, "'%s' is not an optimizer (adam, sgd, adagrad)", value);
    cfg->optimizer = o;
    return MTL_OK;
}

static int one_of(int *out, const char *value, const char *const *words, int n, const char *what,
                  const char *where, mtl_error *err);

static int set_data_order(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    static const char *const names[] = {"local", "global"};
    return one_of(&cfg->data_order_global, value, names, 2, "a data order", where, err);
}

/* A setting that is one of a few words: *out = its index, else an error
 * naming them ("'x' is not a data order (local, global)"). */
static int one_of(int *out, const char *value, const char *const *words, int n, const char *what,
                  const char *where, mtl_error *err) {
    char w[32];
    trimmed(w, sizeof w, value);
    for (int i = 0; i < n; i++)
        if (strcmp(w, words[i]) == 0) {
            *out = i;
            return MTL_OK;
        }
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", words[i]);
    return mtl_fail(err, where, "'%s' is not %s (%s)", value, what, list);
}

static int set_embedding_update(mtl_config *cfg, const char *value, const char *where,
                                mtl_error *err) {
    static const char *const names[] = {"auto", "dense", "sparse"}; /* mtl_embedding_update */
    return one_of(&cfg->embedding_update, value, names, 3, "an embedding update", where, err);
}

static int set_embedding_sharding(mtl_config *cfg, const char *value, const char *where,
                                  mtl_error *err) {
    static const char *const names[] = {"auto", "replicated", "row"}; /* mtl_embedding_sharding */
    return one_of(&cfg->embedding_sharding, value, names, 3, "an embedding sharding", where, err);
}

static int set_gemm(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    static const char *const names[] = {"auto", "openblas", "libxsmm"}; /* mtl_gemm_backend */
    return one_of(&cfg->gemm, value, names, 3, "a GEMM backend", where, err);
}

static int set_loss_weighting(mtl_config *cfg, const char *value, const char *where,
                              mtl_error *err) {
    static const char *const names[] = {"fixed", "uncertainty"};
    return one_of(&cfg->loss_uncertainty, value, names, 2, "a loss weighting", where, err);
}

/* Split a comma list into whitespace-trimmed items, calling item() on each.
 * "" and "none" are the empty list. Returns the item count or -1 on error. */
typedef int (*item_fn)(void *out, int i, const char *item, const char *where, mtl_error *err);
static int parse_list(const char *value, int max_items, const char *noun, item_fn item, void *out,
                      const char *where, mtl_error *err) {
    const char *s = mtl_skip_space(value);
    if (*s == '\0' || (eq_nocase(s, "none") && *mtl_skip_space(s + 4) == '\0')) return 0;
    char item_where[256]; // "--bottom-units: '16,x'": the bad item is shown in its list
    snprintf(item_where, sizeof item_where, "%s: '%s'", where ? where : "", value);
    int n = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char raw[64], tok[64];
        if (len >= sizeof raw) len = sizeof raw - 1; // shown cut; no valid item is this long
        memcpy(raw, s, len);
        raw[len] = '\0';
        trimmed(tok, sizeof tok, raw);
        if (n == max_items) {
            mtl_fail(err, where, "'%s' has more than %d %s", value, max_items, noun);
            return -1;
        }
        if (item(out, n, tok, item_where, err) != MTL_OK) return -1;
        n++;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

static int units_item(void *out, int i, const char *item, const char *where, mtl_error *err) {
    int64_t w;
    if (mtl_parse_i64(item, 1, MAX_UNITS, &w, where, err) != MTL_OK) return MTL_ERR;
    ((int *)out)[i] = (int)w;
    return MTL_OK;
}

/* A comma list "16,8" of layer widths; "" or "none" = no layers. */
static int parse_units(mtl_units *out, const char *value, int min_layers, const char *where,
                       mtl_error *err) {
    mtl_units u;
    memset(&u, 0, sizeof u);
    int n = parse_list(value, MTL_MAX_LAYERS, "layers", units_item, u.units, where, err);
    if (n < 0) return MTL_ERR;
    if (n < min_layers)
        return mtl_fail(err, where, "'%s' must have at least %d layer%s", value, min_layers,
                        min_layers == 1 ? "" : "s");
    u.n = n;
    *out = u;
    return MTL_OK;
}

/* Per-task lists "32,32/16": one list serves every task. */
static int parse_task_units(mtl_task_units *out, const char *value, int min_layers,
                            const char *where, mtl_error *err) {
    mtl_task_units u;
    memset(&u, 0, sizeof u);
    const char *s = value;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        char item[512];
        if (len >= sizeof item) return mtl_fail(err, where, "'%s' is too long", value);
        if (u.n_lists == MTL_MAX_TASKS + 1)
            return mtl_fail(err, where, "'%s': more than %d lists", value, MTL_MAX_TASKS + 1);
        memcpy(item, s, len);
        item[len] = '\0';
        if (parse_units(&u.list[u.n_lists++], item, min_layers, where, err)) return MTL_ERR;
        if (!slash) break;
        s = slash + 1;
    }
    *out = u;
    return MTL_OK;
}

static int task_type_item(void *out, int i, const char *item, const char *where, mtl_error *err) {
    int *regression = out;
    if (strcmp(item, "binary") == 0)
        regression[i] = 0;
    else if (strcmp(item, "regression") == 0)
        regression[i] = 1;
    else
        return mtl_fail(err, where, "'%s' is not a task type (binary, regression)", item);
    return MTL_OK;
}

static int set_task_types(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    int types[MTL_MAX_TASKS];
    int n = parse_list(value, MTL_MAX_TASKS, "task types", task_type_item, types, where, err);
    if (n < 0) return MTL_ERR;
    cfg->n_task_types = n;
    memcpy(cfg->task_regression, types, sizeof types);
    return MTL_OK;
}

static int loss_weight_item(void *out, int i, const char *item, const char *where, mtl_error *err) {
    float *w = out;
    double d;
    if (mtl_parse_double(item, &d, where, err) != MTL_OK) return MTL_ERR;
    if (!(d >= 0.0)) return mtl_fail(err, where, "'%s' must be >= 0", item);
    if (!isfinite((float)d)) return mtl_fail(err, where, "'%s' is too large", item);
    w[i] = (float)d;
    return MTL_OK;
}

static int set_loss_weights(mtl_config *cfg, const char *value, const char *where, mtl_error *err) {
    float w[MTL_MAX_TASKS] = {0};
    int n = parse_list(value, MTL_MAX_TASKS, "weights", loss_weight_item, w, where, err);
    if (n < 0) return MTL_ERR;
    cfg->n_loss_weights = n;
    memcpy(cfg->loss_weights, w, sizeof w);
    return MTL_OK;
}

/* "valid_loss", "auc:TASK" or "gauc:TASK" */
static int check_early_stop_metric(const char *m, const char *where, mtl_error *err) {
    if (strcmp(m, "valid_loss") == 0) return MTL_OK;
    size_t k = strncmp(m, "auc:", 4) == 0 ? 4 : strncmp(m, "gauc:", 5) == 0 ? 5 : 0;
    if (k > 0 && m[k] != '\0') {
        for (const char *c = m + k; *c; c++)
            if (isspace((unsigned char)*c))
                return mtl_fail(err, where, "'%s': a task name has no spaces", m);
        return MTL_OK;
    }
    return mtl_fail(err, where, "'%s' is not valid_loss, auc:TASK or gauc:TASK", m);
}

static int set_early_stop_metric(mtl_config *cfg, const char *value, const char *where,
                                 mtl_error *err) {
    char m[sizeof cfg->early_stop_metric];
    if (strlen(value) >= sizeof m)
        return mtl_fail(err, where, "value is too long (%zu characters, at most %zu)",
                        strlen(value), sizeof m - 1);
    trimmed(m, sizeof m, value);
    if (check_early_stop_metric(m, where, err) != MTL_OK) return MTL_ERR;
    memcpy(cfg->early_stop_metric, m, sizeof m);
    return MTL_OK;
}

/* ------------------------------------------------------------------------ */
/* INI files */

/* One config file serves both tools (include/mtl/ini.h): mtl_dist reads
 * [train] and, for the model being trained, [train.MODEL]; mtl_prep reads
 * [columns] and [task.NAME] (src/prep.c). Each tool skips the other's
 * sections and refuses any other section, and a key outside a section. The
 * file is read twice: pass 1 applies [train] and checks every [train.MODEL]
 * section's keys (on a scratch copy), pass 2 applies the [train.MODEL]
 * section of the model that [train] or the command line chose. */
typedef struct {
    mtl_config *cfg;
    mtl_config *scratch;         /* pass 1: where [train.MODEL] keys are checked */
    const mtl_model_desc *model; /* pass 2: the model whose section applies; NULL in pass 1 */
} ini_pass;

/* [columns] and [task.NAME]: mtl_prep's sections */
static int prep_section(const char *name) {
    return strcmp(name, "columns") == 0 || (strncmp(name, "task.", 5) == 0 && name[5] != '\0');
}

static int ini_on_key(void *user, const mtl_ini_entry *e, mtl_error *err) {
    ini_pass *ctx = user;
    const char *section = e->section;
    if (prep_section(section)) return MTL_OK;
    if (e->continued)
        return mtl_ini_fail(e, err,
                            "an indented line without '=' continues the value above, but an "
                            "option's value is one line");
    char where[MTL_PATH_MAX + 128];
    snprintf(where, sizeof where, "%s:%d: %s", e->path, e->line, e->key);
    int model_section = strncmp(section, "train.", 6) == 0;
    const mtl_model_desc *section_model = model_section ? model_named(section + 6) : NULL;
    const key_def *k = find_key(e->key, strlen(e->key));
    if (ctx->model) { /* pass 2: the chosen model's section (checked in pass 1) */
        if (!k || section_model != ctx->model) return MTL_OK;
        return apply_key(ctx->cfg, k, e->value, where, err);
    }
    if (section[0] == '\0')
        return mtl_fail(err, where, "outside a section (mtl_dist reads [train] and [train.MODEL])");
    if (strcmp(section, "train") != 0 && !section_model) {
        char list[256];
        model_list(list, sizeof list);
        return mtl_fail(err, NULL,
                        "%s:%d: [%s]: unknown section (mtl_dist reads [train] and [train.MODEL], "
                        "MODEL one of %s; mtl_prep reads [columns] and [task.NAME])",
                        e->path, e->line, section, list);
    }
    if (!k) return mtl_fail(err, where, "unknown key");
    if (k->type == KT_FN && k->set == set_config)
        return mtl_fail(err, where, "not allowed in a config file (use --config)");
    if (model_section && k->set == set_model)
        return mtl_fail(err, where,
                        "not allowed in [%s] (choose the model in [train] or with --model)",
                        section);
    /* pass 1: [train] applies now, [train.MODEL] is only checked */
    return apply_key(model_section ? ctx->scratch : ctx->cfg, k, e->value, where, err);
}

/* model: the command line's --model (or NULL), which picks the [train.MODEL]
 * section whatever [train] says */
static int load_ini(mtl_config *cfg, const char *path, const mtl_model_desc *model,
                    mtl_error *err) {
    size_t len = strlen(path);
    if (len >= sizeof cfg->config_path)
        return mtl_fail(err, "--config", "path is too long (%zu characters, at most %zu)", len,
                        sizeof cfg->config_path - 1);
    memcpy(cfg->config_path, path, len + 1);
    mtl_config *scratch = malloc(sizeof *scratch);
    if (!scratch) return mtl_fail(err, path, "out of memory");
    *scratch = *cfg;
    ini_pass ctx = {.cfg = cfg, .scratch = scratch, .model = NULL};
    int rc = mtl_ini_read(path, ini_on_key, &ctx, err);
    if (rc == MTL_OK) {
        ctx.model = model ? model : cfg->model;
        rc = mtl_ini_read(path, ini_on_key, &ctx, err);
    }
    free(scratch);
    return rc;
}

int mtl_config_load_ini(mtl_config *cfg, const char *path, mtl_error *err) {
    return load_ini(cfg, path, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* command line */

/* One command-line item: an option with its value, or a positional word. */
typedef struct {
    const key_def *key; /* NULL for a positional word */
    const char *value;  /* option value, or the word */
    char where[80];     /* "--batch-size" as typed */
} cli_item;

/* Read the item at argv[*i] and advance *i past it (and its value). */
static int cli_next(int argc, char **argv, int *i, cli_item *it, mtl_error *err) {
    const char *arg = argv[*i];
    memset(it, 0, sizeof *it);
    if (arg[0] != '-' || arg[1] == '\0') { // a word (or "-")
        it->value = arg;
        (*i)++;
        return MTL_OK;
    }
    if (arg[1] != '-' || arg[2] == '\0') // -x, --
        return mtl_fail(err, arg, "unknown option (see --help)");
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    snprintf(it->where, sizeof it->where, "--%.*s", (int)(name_len < 60 ? name_len : 60), name);
    it->key = find_key(name, name_len);
    if (!it->key) return mtl_fail(err, it->where, "unknown option (see --help)");
    (*i)++;
    if (eq) {
        it->value = eq + 1;
    } else if (it->key->type == KT_BOOL) {
        // a flag: "--quiet" alone is true; "--quiet false" also works since a
        // positional word is never a boolean word
        if (*i < argc && bool_word(argv[*i]) >= 0)
            it->value = argv[(*i)++];
        else
            it->value = "true";
    } else {
        // "--lr --epochs 3": a value never starts with "--" (use --key=--x if
        // one really must); negative numbers ("-1") are still values
        if (*i >= argc || strncmp(argv[*i], "--", 2) == 0)
            return mtl_fail(err, it->where, "missing value");
        it->value = argv[(*i)++];
    }
    return MTL_OK;
}

int mtl_config_parse(mtl_config *cfg, int argc, char **argv, mtl_error *err) {
    mtl_config_defaults(cfg);

    // --help and --version win over everything else, even a broken command
    // line: they are what one types to find out how to fix it
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cfg->command = MTL_CMD_HELP;
            return MTL_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            cfg->command = MTL_CMD_VERSION;
            return MTL_OK;
        }
    }

    // pass 1: syntax, the command word, and the last --model (it picks the
    // config file's [train.MODEL] section; a bad name is reported in pass 2)
    int have_command = 0;
    const mtl_model_desc *cli_model = NULL;
    for (int i = 1; i < argc;) {
        cli_item it;
        if (cli_next(argc, argv, &i, &it, err) != MTL_OK) return MTL_ERR;
        if (!it.key) {
            if (have_command)
                return mtl_fail(err, NULL, "'%s': unexpected argument (see --help)", it.value);
            if (strcmp(it.value, "train") == 0)
                cfg->command = MTL_CMD_TRAIN;
            else if (strcmp(it.value, "predict") == 0)
                cfg->command = MTL_CMD_PREDICT;
            else if (strcmp(it.value, "export") == 0)
                cfg->command = MTL_CMD_EXPORT;
            else
                return mtl_fail(err, NULL,
                                "'%s': unknown command (train, predict, export; see --help)",
                                it.value);
            have_command = 1;
        } else if (it.key->set == set_model) {
            char w[32];
            trimmed(w, sizeof w, it.value);
            cli_model = model_named(w);
        }
    }
    // then --config (so the file is the base the other options override,
    // wherever --config appears)
    for (int i = 1; i < argc;) {
        cli_item it;
        if (cli_next(argc, argv, &i, &it, err) != MTL_OK) return MTL_ERR;
        if (it.key && it.key->set == set_config &&
            load_ini(cfg, it.value, cli_model, err) != MTL_OK)
            return MTL_ERR;
    }

    // pass 2: every other option in order, the last one winning
    for (int i = 1; i < argc;) {
        cli_item it;
        if (cli_next(argc, argv, &i, &it, err) != MTL_OK) return MTL_ERR;
        if (!it.key || it.key->set == set_config) continue;
        if (apply_key(cfg, it.key, it.value, it.where, err) != MTL_OK) return MTL_ERR;
    }
    return MTL_OK;
}

int mtl_config_apply_text(mtl_config *cfg, const char *text, const char *where, mtl_error *err) {
    char line[512];
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= sizeof line) return mtl_fail(err, where, "config line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl != NULL);
        char *eq = strstr(line, " = ");
        if (!eq) continue;
        *eq = '\0';
        if (mtl_config_set(cfg, line, eq + 3, where, err)) return MTL_ERR;
    }
    return MTL_OK;
}

/* ------------------------------------------------------------------------ */
/* cross-field checks */

static int check_units(const mtl_units *u, const char *name, int min_layers, mtl_error *err) {
    if (u->n < min_layers || u->n > MTL_MAX_LAYERS)
        return mtl_fail(err, name, "%d layers (must be %d..%d)", u->n, min_layers, MTL_MAX_LAYERS);
    for (int i = 0; i < u->n; i++)
        if (u->units[i] < 1 || u->units[i] > MAX_UNITS)
            return mtl_fail(err, name, "layer %d has %d units (must be 1..%d)", i + 1, u->units[i],
                            MAX_UNITS);
    return MTL_OK;
}

int mtl_config_validate(const mtl_config *cfg, mtl_error *err) {
    if (cfg->command == MTL_CMD_HELP || cfg->command == MTL_CMD_VERSION) return MTL_OK;

    const char *gemm = getenv("MTL_GEMM");
    mtl_config scratch;
    if (gemm && set_gemm(&scratch, gemm, "MTL_GEMM (environment)", err)) return MTL_ERR;

    if (cfg->command == MTL_CMD_TRAIN && cfg->train_path[0] == '\0')
        return mtl_fail(err, NULL,
                        "no training data: give --train FILE (or train = FILE in the config)");
    if (cfg->command == MTL_CMD_TRAIN && cfg->predict_out[0] && cfg->test_path[0] == '\0')
        return mtl_fail(
            err, NULL, "--predict-out: writes the test set's predictions, so it needs --test FILE");
    if (cfg->command == MTL_CMD_PREDICT) {
        if (cfg->checkpoint_path[0] == '\0')
            return mtl_fail(err, NULL, "predict needs --checkpoint FILE (the model to load)");
        if (cfg->data_path[0] == '\0')
            return mtl_fail(err, NULL, "predict needs --data FILE (the rows to score)");
        if (cfg->predict_out[0] == '\0')
            return mtl_fail(err, NULL, "predict needs --predict-out FILE (where to write)");
    }
    if (cfg->command == MTL_CMD_EXPORT && (!cfg->checkpoint_path[0] || !cfg->onnx_path[0]))
        return mtl_fail(err, NULL, "export needs --checkpoint FILE and --onnx FILE");

    if (cfg->model->check && cfg->model->check(cfg, err) != MTL_OK) return MTL_ERR;

    if (check_early_stop_metric(cfg->early_stop_metric, "early_stop_metric", err) != MTL_OK)
        return MTL_ERR;
    if (cfg->command == MTL_CMD_TRAIN && cfg->valid_split > 0 && cfg->valid_path[0])
        return mtl_fail(err, "--valid-split",
                        "holds out part of --train as the validation set, so it cannot be "
                        "combined with --valid FILE (give one of the two)");
    if (cfg->command == MTL_CMD_TRAIN && cfg->early_stop_patience > 0 &&
        cfg->valid_path[0] == '\0' && cfg->valid_split <= 0)
        return mtl_fail(err, NULL,
                        "early stopping (early_stop_patience %d) needs a validation set "
                        "(--valid FILE or --valid-split FRACTION)",
                        cfg->early_stop_patience);

    if (cfg->n_loss_weights < 0 || cfg->n_loss_weights > MTL_MAX_TASKS)
        return mtl_fail(err, "loss_weights", "%d values (at most %d)", cfg->n_loss_weights,
                        MTL_MAX_TASKS);
    if (cfg->n_task_types < 0 || cfg->n_task_types > MTL_MAX_TASKS)
        return mtl_fail(err, "task_types", "%d values (at most %d)", cfg->n_task_types,
                        MTL_MAX_TASKS);
    if (cfg->n_loss_weights > 0 && cfg->n_task_types > 0 &&
        cfg->n_loss_weights != cfg->n_task_types)
        return mtl_fail(err, NULL, "loss_weights has %d values but task_types has %d",
                        cfg->n_loss_weights, cfg->n_task_types);

    if (check_units(&cfg->bottom_units, "bottom_units", 1, err) != MTL_OK ||
        check_units(&cfg->expert_units, "expert_units", 1, err) != MTL_OK)
        return MTL_ERR;
    for (int i = 0; i < cfg->tower_units.n_lists; i++)
        if (check_units(&cfg->tower_units.list[i], "tower_units", 1, err) != MTL_OK) return MTL_ERR;
    for (int i = 0; i < cfg->gate_units.n_lists; i++)
        if (check_units(&cfg->gate_units.list[i], "gate_units", 0, err) != MTL_OK) return MTL_ERR;
    if (cfg->tower_units.n_lists < 1 || cfg->gate_units.n_lists < 1)
        return mtl_fail(err, "tower_units", "no list");

    if (cfg->command == MTL_CMD_TRAIN) {
        if (strcmp(cfg->resume, "latest") == 0 && cfg->checkpoint_dir[0] == '\0')
            return mtl_fail(err, NULL, "--resume latest needs --checkpoint-dir DIR");
        if ((cfg->checkpoint_every_steps > 0 || cfg->checkpoint_every_seconds > 0.0) &&
            cfg->checkpoint_dir[0] == '\0')
            return mtl_fail(err, NULL,
                            "periodic checkpoints (checkpoint_every_*) need --checkpoint-dir DIR");
    }
    return MTL_OK;
}

/* ------------------------------------------------------------------------ */
/* the model's hyperparameters as text (checkpoints) */

/* "16,8", "16,8/4" (per task), "none" */
static size_t units_text(const mtl_units *u, char *out, size_t cap) {
    size_t used = 0;
    if (u->n == 0) return (size_t)snprintf(out, cap, "none");
    for (int i = 0; i < u->n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, i ? ",%d" : "%d", u->units[i]);
    return used;
}

static void task_units_text(const mtl_task_units *u, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < u->n_lists && used + 1 < cap; i++) {
        if (i) out[used++] = '/';
        used += units_text(&u->list[i], out + used, cap - used);
    }
}

void mtl_config_model_text(const mtl_config *cfg, char *out, size_t cap) {
    char bottom[128], tower[1024], expert[128], gate[1024];
    units_text(&cfg->bottom_units, bottom, sizeof bottom);
    task_units_text(&cfg->tower_units, tower, sizeof tower);
    units_text(&cfg->expert_units, expert, sizeof expert);
    task_units_text(&cfg->gate_units, gate, sizeof gate);
    int n = snprintf(out, cap,
                     "model = %s\nembedding_dim = %d\nbottom_units = %s\ntower_units = %s\n"
                     "expert_units = %s\ngate_units = %s\nnum_experts = %d\n"
                     "num_experts_specific = %d\nnum_experts_shared = %d\nnum_levels = %d\n"
                     "batch_norm = %d\ndropout = %.9g\nloss_weighting = %s\nactivation = %s\n",
                     cfg->model->name, cfg->embedding_dim, bottom, tower, expert, gate,
                     cfg->num_experts, cfg->num_experts_specific, cfg->num_experts_shared,
                     cfg->num_levels, cfg->batch_norm, (double)cfg->dropout,
                     cfg->loss_uncertainty ? "uncertainty" : "fixed",
                     mtl_activation_name(cfg->activation));
    /* the tasks' roles, for the models that give them (empty keys are the default) */
    if (n > 0 && (size_t)n < cap && cfg->ctr_task[0])
        n += snprintf(out + n, cap - (size_t)n, "ctr_task = %s\nctcvr_task = %s\n", cfg->ctr_task,
                      cfg->ctcvr_task);
    if (n > 0 && (size_t)n < cap && cfg->task_order[0])
        n += snprintf(out + n, cap - (size_t)n, "task_order = %s\n", cfg->task_order);
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "aitm_calibration_weight = %.9g\n",
                 (double)cfg->aitm_calibration_weight);
}

int mtl_config_same_model(const mtl_config *cfg, const char *text, char *mine, size_t cap) {
    mtl_config *theirs = malloc(sizeof *theirs);
    char *their_text = malloc(cap);
    mtl_error ignored;
    int same = 0;
    mtl_config_model_text(cfg, mine, cap);
    if (theirs && their_text) {
        mtl_config_defaults(theirs);
        if (mtl_config_apply_text(theirs, text, "checkpoint", &ignored) == MTL_OK) {
            mtl_config_model_text(theirs, their_text, cap);
            same = strcmp(mine, their_text) == 0;
        }
    }
    free(theirs);
    free(their_text);
    return same;
}

/* ------------------------------------------------------------------------ */
/* --help */

static const char usage_text[] =
    "Usage:\n"
    "  mtl_dist [train] [--config FILE] [options]     train a multi-task model\n"
    "  mtl_dist predict --checkpoint F.h5 --data F.h5 --predict-out P.h5 [options]\n"
    "  mtl_dist export --checkpoint F.h5 --onnx MODEL.onnx   write the model as ONNX\n"
    "  mtl_dist --help | --version\n"
    "Data parallel under MPI: mpirun -n 4 mtl_dist --config run.ini\n"
    "\n"
    "Options are --key VALUE or --key=VALUE; '-' and '_' are interchangeable in\n"
    "names (--batch-size = --batch_size). Each also works as \"key = VALUE\" in the\n"
    "INI file given by --config, in its [train] section or in [train.MODEL] (read\n"
    "only when MODEL is the model trained, e.g. [train.esmm]); ';' and '#' start\n"
    "comments. mtl_prep's sections of the same file ([columns], [task.NAME]) are\n"
    "skipped, other sections refused. The file is read first wherever --config\n"
    "appears, so the command line overrides it. Lists are comma separated (16,8);\n"
    "\"none\" or \"\" is an empty list.\n"
    "Booleans: true/false, 1/0, on/off, yes/no; a bare --flag means true.\n"
    "\n"
    "General:\n"
    "  --config FILE                 INI file of options (command line only)\n"
    "  -h, --help                    show this text\n"
    "  --version                     show the version\n"
    "  --quiet[=BOOL]                print less progress output (default off)\n"
    "  --threads N                   OpenBLAS threads per MPI rank (default 1)\n"
    "  --gemm NAME                   matrix products: libxsmm (JIT kernels per shape\n"
    "                                and CPU), openblas, or auto = libxsmm where it\n"
    "                                generates AVX2/AVX-512 code and --threads is 1\n"
    "                                (default auto, or $MTL_GEMM if set)\n"
    "  --seed N                      random seed, 0..2^64-1 (default 1024)\n"
    "\n"
    "Data (HDF5 files written by mtl_prep):\n"
    "  --train FILE                  training set (required to train)\n"
    "  --valid FILE                  validation set, scored each epoch (default none)\n"
    "  --valid-split FRACTION        without --valid: the last FRACTION of the\n"
    "                                training file's rows, in [0, 1), is the\n"
    "                                validation set instead (default 0 = none)\n"
    "  --test FILE                   test set, scored after training (default none)\n"
    "  --data-order local|global     local: each rank shuffles only its own shard;\n"
    "                                global: one shuffle over all rows\n"
    "                                (default local)\n"
    "  --stream[=BOOL]               read the training shard in chunks, the next\n"
    "                                one loaded while the current one trains, for\n"
    "                                data larger than memory (default off; local\n"
    "                                data order)\n"
    "  --stream-chunk-rows N         rows per chunk when streaming (default 65536)\n"
    "  --data FILE                   predict: rows to score\n"
    "  --checkpoint FILE             predict: model checkpoint to load\n"
    "  --predict-out FILE            predict: output file of predictions\n"
    "  --onnx FILE                   export: the ONNX model to write\n"
    "\n"
    "Model:\n"
    "  --model NAME                  the architecture, see Models below (default mmoe)\n"
    "  --embedding-dim N             embedding width per sparse field (default 4)\n"
    "  --bottom-units LIST           shared bottom DNN, >= 1 layer (default 16)\n"
    "  --tower-units LIST[/LIST...]  per-task tower DNN, >= 1 layer (default 8); one\n"
    "                                list for every task, or one per task in /labels\n"
    "                                order split by '/' (32,32/16)\n"
    "  --expert-units LIST           each expert DNN, >= 1 layer (default 16)\n"
    "  --gate-units LIST[/LIST...]   hidden layers of each gate (default none); per\n"
    "                                task as --tower-units (ple: one more list for\n"
    "                                the shared gate, else the first task's)\n"
    "  --activation NAME             relu, tanh or sigmoid: the hidden layers of\n"
    "                                experts, bottoms, towers and gates (default relu)\n"
    "  --num-experts N               mmoe: shared experts (default 8)\n"
    "  --num-experts-specific N      cgc/ple: experts per task (default 4)\n"
    "  --num-experts-shared N        cgc/ple: shared experts (default 4)\n"
    "  --num-levels N                ple: extraction levels (default 2)\n"
    "  --batch-norm[=BOOL]           batch normalization in the DNNs (default off)\n"
    "  --dropout P                   dropout rate in [0, 1) (default 0)\n"
    "  --ctr-task NAME               esmm: the CTR task (a /labels name; required)\n"
    "  --ctcvr-task NAME             esmm: the CTCVR task (a /labels name; required)\n"
    "  --task-order LIST             aitm: task names, first to last step of the\n"
    "                                funnel (default: /labels order)\n"
    "  --aitm-calibration-weight X   aitm: weight of the behavioural expectation\n"
    "                                calibrator, >= 0 (default 0.6, the paper's)\n"
    "  --task-types LIST             binary|regression per task (default: inferred,\n"
    "                                binary if all labels are 0/1)\n"
    "\n"
    "Loss:\n"
    "  --loss-weights LIST           per-task weights >= 0 (default all 1)\n"
    "  --loss-weighting MODE         fixed (the weights above) or uncertainty\n"
    "                                (learned, Kendall et al.) (default fixed)\n"
    "\n"
    "Optimization:\n"
    "  --optimizer NAME              adam, sgd or adagrad (default adam)\n"
    "  --lr X                        learning rate > 0 (default 0.01)\n"
    "  --momentum X                  sgd momentum in [0, 1) (default 0)\n"
    "  --l2-embedding X              L2 on embedding tables, >= 0 (default 1e-05)\n"
    "  --l2-dnn X                    L2 on dense weights, >= 0 (default 0)\n"
    "  --embedding-update MODE       dense, sparse or auto: sparse tables get\n"
    "                                gradients, exchange and (lazy) optimizer updates\n"
    "                                only for the rows a step touches; auto = sparse\n"
    "                                when a batch's worth of (id, row) pairs is\n"
    "                                smaller than the table, i.e. for more than\n"
    "                                batch-size x (d+1)/2d rows (default auto)\n"
    "  --embedding-sharding MODE     replicated, row or auto: row spreads a sparse\n"
    "                                table's rows (and optimizer state) over the\n"
    "                                ranks; auto = row, on several ranks, for a\n"
    "                                sparse table of at least --shard-min-rows rows\n"
    "                                or taking more than --shard-memory-share of a\n"
    "                                rank's memory (default auto)\n"
    "  --shard-min-rows N            >= 1 (default 1000)\n"
    "  --shard-memory-share X        in (0, 1] (default 0.25)\n"
    "  --batch-size N                global batch over all ranks, 1..100000000\n"
    "                                (default 1024)\n"
    "  --epochs N                    passes over the training set, >= 1 (default 10)\n"
    "  --max-steps N                 stop after N updates, 0 = no limit (default 0)\n"
    "  --early-stop-patience N       stop after N epochs without improvement,\n"
    "                                0 = off (default 0; needs --valid or\n"
    "                                --valid-split)\n"
    "  --patience N                  the same: --early-stop-patience's short name\n"
    "  --early-stop-metric M         valid_loss, auc:TASK or gauc:TASK\n"
    "                                (default valid_loss)\n"
    "  --skip-nonfinite-steps[=BOOL] skip an update whose loss or gradient is NaN/Inf\n"
    "                                instead of failing (default off)\n"
    "\n"
    "Outputs and checkpoints:\n"
    "  --metrics-out FILE            write per-epoch metrics here (default none)\n"
    "  --checkpoint-dir DIR          where checkpoints are written (default none)\n"
    "  --checkpoint-every-steps N    checkpoint every N updates, 0 = off (default 0)\n"
    "  --checkpoint-every-seconds S  checkpoint every S seconds, 0 = off (default 0)\n"
    "  --keep-checkpoints N          newest checkpoints kept in DIR, >= 1 (default 3)\n"
    "  --resume FILE|latest          continue from a checkpoint; latest = newest in\n"
    "                                --checkpoint-dir (default none)\n"
    "\n"
    "Example (in the source tree, with out/census/*.h5 written by mtl_prep\n"
    "--config configs/census.ini, see README.md; that file's [train] section\n"
    "holds the census defaults):\n"
    "  mpirun -n 2 mtl_dist --config configs/census.ini --model ple --lr=0.005 \\\n"
    "      --train out/census/train.h5 --valid out/census/valid.h5 --patience 2\n";

/* the text above with the models of the list, and the options each reads,
 * before its closing example */
const char *mtl_config_usage(void) {
    static char text[sizeof usage_text + 4096];
    if (text[0]) return text;
    const char *example = strstr(usage_text, "Example (");
    size_t used =
        (size_t)snprintf(text, sizeof text, "%.*s", (int)(example - usage_text), usage_text);
    used += (size_t)snprintf(text + used, sizeof text - used, "Models (--model NAME):\n");
    for (int i = 0; mtl_models[i] && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "  %-14s %s\n  %-14s options: %s\n", mtl_models[i]->name,
                                 mtl_models[i]->summary, "", mtl_models[i]->options);
    if (used < sizeof text) snprintf(text + used, sizeof text - used, "\n%s", example);
    return text;
}
