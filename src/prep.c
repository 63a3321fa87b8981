/* CSV -> HDF5 dataset encoding (see include/mtl/prep.h for the config format
 * and the encoding). The run is: parse the config, read every row of every
 * input into memory (categoricals interned as strings, numerics as doubles,
 * labels as floats; any malformed row stops here), split, fit the encoding
 * on the train rows, then write the files. Nothing touches the output
 * directory before all input has been validated. */
#include "mtl/prep.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zlib.h>

#include "mtl/data.h"
#include "mtl/ini.h"
#include "mtl/layers.h"
#include "mtl/util.h"

/* ------------------------------------------------------------------------ */
/* small string helpers */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* A label value as compared: trimmed, one trailing '.' removed (adult.test
 * writes ">50K." where adult.data writes ">50K"), trimmed again. In place. */
static char *label_key(char *s) {
    s = trim(s);
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.') s[n - 1] = '\0';
    return trim(s);
}

/* A list of strings with the config line each came from. */
typedef struct {
    int n;
    int64_t cap;
    char **item;
    int *line;
} strlist;

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->item[i]);
    free(l->item);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int strlist_push(strlist *l, const char *s, int line, mtl_error *err) {
    int64_t cap = l->cap;
    if (mtl_grow((void **)&l->item, &cap, l->n + 1, sizeof(char *), "config list", err))
        return MTL_ERR;
    cap = l->cap;
    if (mtl_grow((void **)&l->line, &cap, l->n + 1, sizeof(int), "config list", err))
        return MTL_ERR;
    l->cap = cap;
    l->item[l->n] = mtl_strdup(s, err);
    if (!l->item[l->n]) return MTL_ERR;
    l->line[l->n] = line;
    l->n++;
    return MTL_OK;
}

/* Split "a, b ,c" on commas, trim, and append the non-empty items (a list
 * continued on the next line ends in a comma). `label` applies label_key. */
static int strlist_add_csv(strlist *l, const char *value, int line, int label, mtl_error *err) {
    char *copy = mtl_strdup(value, err);
    if (!copy) return MTL_ERR;
    int rc = MTL_OK;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        char *item = label ? label_key(p) : trim(p);
        if (*item && strlist_push(l, item, line, err)) {
            rc = MTL_ERR;
            break;
        }
        if (!comma) break;
        p = comma + 1;
    }
    free(copy);
    return rc;
}

static int strlist_find(const strlist *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->item[i], s) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* string -> index hash table (open addressing, FNV-1a), insertion order ids */

typedef struct {
    int32_t n, cap;   /* strings held, capacity of str */
    char **str;       /* [n] owned */
    uint32_t n_slots; /* power of two, > 2n */
    int32_t *slot;    /* [n_slots] id or -1 */
} strtab;

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a 32-bit offset basis and prime (Fowler/Noll/Vo) */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void strtab_free(strtab *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->str[i]);
    free(t->str);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static int32_t strtab_find(const strtab *t, const char *s) {
    if (t->n_slots == 0) return -1;
    uint32_t mask = t->n_slots - 1;
    for (uint32_t i = fnv1a(s) & mask;; i = (i + 1) & mask) {
        int32_t id = t->slot[i];
        if (id < 0) return -1;
        if (strcmp(t->str[id], s) == 0) return id;
    }
}

static int strtab_rehash(strtab *t, uint32_t n_slots, mtl_error *err) {
    int32_t *slot = mtl_alloc(n_slots, sizeof *slot, "category table", err);
    if (!slot) return MTL_ERR;
    for (uint32_t i = 0; i < n_slots; i++) slot[i] = -1;
    uint32_t mask = n_slots - 1;
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t i = fnv1a(t->str[id]) & mask;
        while (slot[i] >= 0) i = (i + 1) & mask;
        slot[i] = id;
    }
    free(t->slot);
    t->slot = slot;
    t->n_slots = n_slots;
    return MTL_OK;
}

/* id of s, adding it if new; -1 on allocation failure. */
static int32_t strtab_intern(strtab *t, const char *s, mtl_error *err) {
    int32_t id = strtab_find(t, s);
    if (id >= 0) return id;
    if (t->n == INT32_MAX / 4) {
        mtl_fail(err, NULL, "category table: too many distinct values");
        return -1;
    }
    if ((uint32_t)(t->n + 1) * 2 > t->n_slots &&
        strtab_rehash(t, t->n_slots ? t->n_slots * 2 : 64, err))
        return -1;
    int64_t cap = t->cap;
    if (mtl_grow((void **)&t->str, &cap, t->n + 1, sizeof(char *), "category table", err))
        return -1;
    t->cap = (int32_t)cap;
    char *copy = mtl_strdup(s, err);
    if (!copy) return -1;
    id = t->n++;
    t->str[id] = copy;
    uint32_t mask = t->n_slots - 1;
    uint32_t i = fnv1a(s) & mask;
    while (t->slot[i] >= 0) i = (i + 1) & mask;
    t->slot[i] = id;
    return id;
}

/* ------------------------------------------------------------------------ */
/* hashed categoricals (see prep.h): no table, the same id everywhere */

int64_t mtl_hash_id(const char *field, const char *value, int64_t n_buckets) {
    XXH64_hash_t seed = XXH3_64bits(field, strlen(field));
    XXH64_hash_t h = XXH3_64bits_withSeed(value, strlen(value), seed);
    return (int64_t)(h % (uint64_t)n_buckets);
}

/* ------------------------------------------------------------------------ */
/* config */

typedef struct {
    char *name;
    int line; /* first key's line */
    strlist column, type, positive, negative;
} task_draft;

typedef struct {
    const char *path;
    mtl_error *err;
    strlist names, categorical, numeric, ignore, hash_buckets, multi_valued;
    int n_tasks;
    int64_t cap_tasks;
    task_draft *tasks;
} ini_state;

/* The [columns] list a key names, or NULL */
static strlist *columns_list(ini_state *st, const char *name) {
    return strcmp(name, "names") == 0          ? &st->names
           : strcmp(name, "categorical") == 0  ? &st->categorical
           : strcmp(name, "numeric") == 0      ? &st->numeric
           : strcmp(name, "ignore") == 0       ? &st->ignore
           : strcmp(name, "hash_buckets") == 0 ? &st->hash_buckets
           : strcmp(name, "multi_valued") == 0 ? &st->multi_valued
                                               : NULL;
}

/* [task.NAME]'s draft, created at its first key */
static task_draft *task_named(ini_state *st, const char *tname, int line, mtl_error *err) {
    for (int i = 0; i < st->n_tasks; i++)
        if (strcmp(st->tasks[i].name, tname) == 0) return &st->tasks[i];
    if (mtl_grow((void **)&st->tasks, &st->cap_tasks, st->n_tasks + 1, sizeof(task_draft),
                 "config tasks", err))
        return NULL;
    task_draft *t = &st->tasks[st->n_tasks++];
    memset(t, 0, sizeof *t);
    t->line = line;
    t->name = mtl_strdup(tname, err);
    return t->name ? t : NULL;
}

/* Every key (and continued line) of the file: lists grow piece by piece. */
static int ini_on_key(void *user, const mtl_ini_entry *e, mtl_error *err) {
    ini_state *st = user;
    const char *section = e->section, *name = e->key;
    if (strcmp(section, "columns") == 0) {
        strlist *l = columns_list(st, name);
        if (!l)
            return mtl_ini_fail(e, err,
                                "unknown (in [columns]: names, categorical, numeric, "
                                "ignore, hash_buckets, multi_valued)");
        return strlist_add_csv(l, e->value, e->line, 0, err);
    }
    if (strncmp(section, "task.", 5) == 0 && section[5] != '\0') {
        task_draft *t = task_named(st, section + 5, e->line, err);
        if (!t) return MTL_ERR;
        strlist *l = strcmp(name, "column") == 0     ? &t->column
                     : strcmp(name, "type") == 0     ? &t->type
                     : strcmp(name, "positive") == 0 ? &t->positive
                     : strcmp(name, "negative") == 0 ? &t->negative
                                                     : NULL;
        if (!l)
            return mtl_ini_fail(e, err,
                                "unknown (in [task.NAME]: column, type, positive, "
                                "negative)");
        int is_label = l == &t->positive || l == &t->negative;
        int before = l->n;
        if (strlist_add_csv(l, e->value, e->line, is_label, err)) return MTL_ERR;
        if ((l == &t->column || l == &t->type) && (before > 0 || l->n != 1))
            return mtl_ini_fail(e, err, "expected one value, got '%s'", e->value);
        return MTL_OK;
    }
    /* one config serves both tools: mtl_dist reads [train] and [train.MODEL] */
    if (strcmp(section, "train") == 0 || strncmp(section, "train.", 6) == 0) return MTL_OK;
    return mtl_fail(err, NULL,
                    "%s:%d: [%s]: unknown section (expected [columns] or [task.NAME]; [train] "
                    "and [train.MODEL] are mtl_dist's)",
                    e->path, e->line, section);
}

static void ini_state_free(ini_state *st) {
    strlist_free(&st->names);
    strlist_free(&st->categorical);
    strlist_free(&st->numeric);
    strlist_free(&st->ignore);
    strlist_free(&st->hash_buckets);
    strlist_free(&st->multi_valued);
    for (int i = 0; i < st->n_tasks; i++) {
        free(st->tasks[i].name);
        strlist_free(&st->tasks[i].column);
        strlist_free(&st->tasks[i].type);
        strlist_free(&st->tasks[i].positive);
        strlist_free(&st->tasks[i].negative);
    }
    free(st->tasks);
}

void mtl_prep_config_free(mtl_prep_config *cfg) {
    if (!cfg) return;
    free(cfg->path);
    if (cfg->col_names)
        for (int i = 0; i < cfg->n_cols; i++) free(cfg->col_names[i]);
    free(cfg->col_names);
    free(cfg->col_role);
    free(cfg->col_slot);
    free(cfg->sparse_col);
    free(cfg->dense_col);
    free(cfg->hash_buckets);
    free(cfg->multi_sep);
    free(cfg->multi_mean);
    if (cfg->tasks) {
        for (int t = 0; t < cfg->T; t++) {
            mtl_prep_task *k = &cfg->tasks[t];
            free(k->name);
            free(k->column);
            for (int i = 0; i < k->n_positive; i++) free(k->positive[i]);
            for (int i = 0; i < k->n_negative; i++) free(k->negative[i]);
            free(k->positive);
            free(k->negative);
        }
    }
    free(cfg->tasks);
    memset(cfg, 0, sizeof *cfg);
}

/* Move a strlist's strings into a plain array (the list keeps nothing). */
static char **take_items(strlist *l) {
    char **items = l->item;
    l->item = NULL;
    l->n = 0;
    l->cap = 0;
    free(l->line);
    l->line = NULL;
    return items;
}

/* Give the columns in list `l` role `role`, in list order. */
static int assign_role(mtl_prep_config *cfg, const ini_state *st, const strlist *l, const char *key,
                       int role, int *slot_count, int *slot_col, mtl_error *err) {
    for (int i = 0; i < l->n; i++) {
        int c = strlist_find(&st->names, l->item[i]);
        if (c < 0)
            return mtl_fail(err, NULL, "%s:%d: %s: unknown column '%s' (not in names)", st->path,
                            l->line[i], key, l->item[i]);
        if (cfg->col_role[c] != MTL_COL_NONE)
            return mtl_fail(err, NULL, "%s:%d: %s: column '%s' already has a role", st->path,
                            l->line[i], key, l->item[i]);
        cfg->col_role[c] = role;
        if (slot_col) {
            cfg->col_slot[c] = *slot_count;
            slot_col[(*slot_count)++] = c;
        }
    }
    return MTL_OK;
}

/* The categorical column named by the start of `item` up to its first ':'
 * (for hash_buckets, multi_valued messages); -1 after filling err. */
static int categorical_of(mtl_prep_config *cfg, const ini_state *st, const char *key,
                          const char *item, size_t len, int line, mtl_error *err) {
    char name[256];
    while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t')) len--;
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, item, len);
    name[len] = '\0';
    int c = strlist_find(&st->names, name);
    if (c < 0)
        return mtl_fail(err, NULL, "%s:%d: %s: unknown column '%s' (not in names)", st->path, line,
                        key, name) -
               1;
    if (cfg->col_role[c] != MTL_COL_CATEGORICAL)
        return mtl_fail(err, NULL,
                        "%s:%d: %s: column '%s' is not categorical (list it under categorical "
                        "too)",
                        st->path, line, key, name) -
               1;
    return c;
}

/* [columns] hash_buckets = NAME:N, ...: categorical columns hashed into N
 * buckets (cfg->hash_buckets[slot] = N). */
static int parse_hash_buckets(mtl_prep_config *cfg, const ini_state *st, mtl_error *err) {
    const strlist *l = &st->hash_buckets;
    for (int i = 0; i < l->n; i++) {
        const char *item = l->item[i];
        const char *colon = strrchr(item, ':');
        if (!colon)
            return mtl_fail(err, NULL, "%s:%d: hash_buckets: '%s' is not NAME:BUCKETS", st->path,
                            l->line[i], item);
        char *end;
        errno = 0;
        long long n = strtoll(colon + 1, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (end == colon + 1 || *end != '\0' || errno || n < 1 || n > INT32_MAX)
            return mtl_fail(err, NULL,
                            "%s:%d: hash_buckets: '%s': the bucket count must be an integer in "
                            "1..%d",
                            st->path, l->line[i], item, INT32_MAX);
        int c =
            categorical_of(cfg, st, "hash_buckets", item, (size_t)(colon - item), l->line[i], err);
        if (c < 0) return MTL_ERR;
        const char *name = st->names.item[c];
        int64_t *b = &cfg->hash_buckets[cfg->col_slot[c]];
        if (*b != 0)
            return mtl_fail(err, NULL, "%s:%d: hash_buckets: column '%s' listed twice", st->path,
                            l->line[i], name);
        *b = n;
    }
    return MTL_OK;
}

/* [columns] multi_valued = NAME:SEP[:sum|mean], ...: categorical columns
 * holding lists of values separated by the character SEP (genres:| reads
 * "Action|Comedy" as two values); pooled by mean unless :sum. */
static int parse_multi_valued(mtl_prep_config *cfg, const ini_state *st, mtl_error *err) {
    const strlist *l = &st->multi_valued;
    for (int i = 0; i < l->n; i++) {
        const char *item = l->item[i], *colon = strchr(item, ':');
        const char *pool = colon && colon[1] ? colon + 2 : NULL;
        if (!colon || !colon[1] || colon[1] == ' ' || (*pool && *pool != ':') ||
            (*pool && strcmp(pool, ":sum") != 0 && strcmp(pool, ":mean") != 0))
            return mtl_fail(err, NULL,
                            "%s:%d: multi_valued: '%s' is not NAME:SEP or NAME:SEP:sum|mean (SEP "
                            "one character, e.g. genres:|)",
                            st->path, l->line[i], item);
        int c =
            categorical_of(cfg, st, "multi_valued", item, (size_t)(colon - item), l->line[i], err);
        if (c < 0) return MTL_ERR;
        int slot = cfg->col_slot[c];
        if (cfg->multi_sep[slot])
            return mtl_fail(err, NULL, "%s:%d: multi_valued: column '%s' listed twice", st->path,
                            l->line[i], cfg->col_names ? cfg->col_names[c] : st->names.item[c]);
        cfg->multi_sep[slot] = (unsigned char)colon[1];
        cfg->multi_mean[slot] = strcmp(pool, ":sum") != 0;
        cfg->M++;
    }
    return MTL_OK;
}

/* [columns]: the names, and each column's role. */
static int config_columns(mtl_prep_config *cfg, ini_state *st, const char *path, mtl_error *err) {
    if (st->names.n == 0) {
        mtl_fail(err, path, "[columns] names: missing (list the CSV's columns in order)");
        return MTL_ERR;
    }
    for (int i = 0; i < st->names.n; i++) {
        if (strlist_find(&st->names, st->names.item[i]) != i) {
            mtl_fail(err, NULL, "%s:%d: names: column '%s' listed twice", path, st->names.line[i],
                     st->names.item[i]);
            return MTL_ERR;
        }
    }
    int nc = st->names.n;
    cfg->n_cols = nc;
    cfg->col_role = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->col_slot = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->sparse_col = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->dense_col = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->tasks = mtl_alloc((size_t)st->n_tasks, sizeof(mtl_prep_task), "config", err);
    cfg->hash_buckets = mtl_alloc((size_t)nc, sizeof(int64_t), "config", err);
    cfg->multi_sep = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->multi_mean = mtl_alloc((size_t)nc, sizeof(int), "config", err);
    cfg->path = mtl_strdup(path, err);
    if (!cfg->col_role || !cfg->col_slot || !cfg->sparse_col || !cfg->dense_col || !cfg->tasks ||
        !cfg->hash_buckets || !cfg->multi_sep || !cfg->multi_mean || !cfg->path)
        return MTL_ERR;
    for (int c = 0; c < nc; c++) cfg->col_slot[c] = -1;
    if (assign_role(cfg, st, &st->categorical, "categorical", MTL_COL_CATEGORICAL, &cfg->S,
                    cfg->sparse_col, err) ||
        assign_role(cfg, st, &st->numeric, "numeric", MTL_COL_NUMERIC, &cfg->D, cfg->dense_col,
                    err) ||
        assign_role(cfg, st, &st->ignore, "ignore", MTL_COL_IGNORE, NULL, NULL, err) ||
        parse_hash_buckets(cfg, st, err) || parse_multi_valued(cfg, st, err))
        return MTL_ERR;
    return MTL_OK;
}

/* [task.NAME] number t: its label column, type and label values. */
static int config_task(mtl_prep_config *cfg, ini_state *st, int t, const char *path,
                       mtl_error *err) {
    task_draft *d = &st->tasks[t];
    mtl_prep_task *k = &cfg->tasks[t];
    k->line = d->line;
    if (d->column.n == 0) {
        mtl_fail(err, NULL, "%s:%d: [task.%s]: column: missing", path, d->line, d->name);
        return MTL_ERR;
    }
    int c = strlist_find(&st->names, d->column.item[0]);
    if (c < 0) {
        mtl_fail(err, NULL, "%s:%d: column: unknown column '%s' (not in names)", path,
                 d->column.line[0], d->column.item[0]);
        return MTL_ERR;
    }
    if (cfg->col_role[c] != MTL_COL_NONE && cfg->col_role[c] != MTL_COL_LABEL) {
        mtl_fail(err, NULL,
                 "%s:%d: column: '%s' is task %s's label and cannot also be a feature or "
                 "ignored",
                 path, d->column.line[0], d->column.item[0], d->name);
        return MTL_ERR;
    }
    cfg->col_role[c] = MTL_COL_LABEL;
    k->col = c;
    if (d->type.n > 0) {
        if (strcmp(d->type.item[0], "regression") == 0)
            k->regression = 1;
        else if (strcmp(d->type.item[0], "binary") != 0) {
            mtl_fail(err, NULL, "%s:%d: type: '%s' is not binary or regression", path,
                     d->type.line[0], d->type.item[0]);
            return MTL_ERR;
        }
    }
    if (k->regression && (d->positive.n || d->negative.n)) {
        mtl_fail(err, NULL, "%s:%d: [task.%s]: positive/negative: not for a regression task", path,
                 d->positive.n ? d->positive.line[0] : d->negative.line[0], d->name);
        return MTL_ERR;
    }
    if (!k->regression && (d->positive.n == 0 || d->negative.n == 0)) {
        mtl_fail(err, NULL,
                 "%s:%d: [task.%s]: a binary task needs both positive and negative values", path,
                 d->line, d->name);
        return MTL_ERR;
    }
    for (int i = 0; i < d->positive.n; i++) {
        int j = strlist_find(&d->negative, d->positive.item[i]);
        if (j >= 0) {
            mtl_fail(err, NULL, "%s:%d: negative: '%s' is also positive", path, d->negative.line[j],
                     d->positive.item[i]);
            return MTL_ERR;
        }
    }
    k->n_positive = d->positive.n;
    k->n_negative = d->negative.n;
    k->positive = take_items(&d->positive);
    k->negative = take_items(&d->negative);
    k->column = mtl_strdup(d->column.item[0], err);
    k->name = d->name;
    d->name = NULL;
    cfg->T = t + 1;
    if (!k->column) return MTL_ERR;
    for (int u = 0; u < t; u++)
        if (strcmp(cfg->tasks[u].name, k->name) == 0) {
            mtl_fail(err, NULL, "%s:%d: [task.%s]: task defined twice", path, d->line, k->name);
            return MTL_ERR;
        }
    return MTL_OK;
}

int mtl_prep_config_load(mtl_prep_config *cfg, const char *path, mtl_error *err) {
    memset(cfg, 0, sizeof *cfg);
    ini_state st;
    memset(&st, 0, sizeof st);
    st.path = path;
    st.err = err;
    if (mtl_ini_read(path, ini_on_key, &st, err) || config_columns(cfg, &st, path, err)) goto fail;
    if (st.n_tasks == 0) {
        mtl_fail(err, path, "no tasks (add a [task.NAME] section)");
        goto fail;
    }
    for (int t = 0; t < st.n_tasks; t++)
        if (config_task(cfg, &st, t, path, err)) goto fail;
    /* every column accounted for */
    for (int c = 0; c < cfg->n_cols; c++) {
        if (cfg->col_role[c] == MTL_COL_NONE) {
            mtl_fail(err, path,
                     "column %s: no role (list it under categorical, numeric or ignore, or use "
                     "it as a task's column)",
                     st.names.item[c]);
            goto fail;
        }
    }
    if (cfg->S + cfg->D == 0) {
        mtl_fail(err, path, "no features (no categorical or numeric columns)");
        goto fail;
    }
    cfg->col_names = take_items(&st.names);
    ini_state_free(&st);
    return MTL_OK;

fail:
    ini_state_free(&st);
    mtl_prep_config_free(cfg);
    return MTL_ERR;
}

/* ------------------------------------------------------------------------ */
/* splits and output paths */

int mtl_split_parse(const char *s, double *frac, int *n_parts, mtl_error *err) {
    int n = 0;
    double sum = 0.0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double f = strtod(p, &end);
        if (end == p || errno || !(f > 0.0) || f > 1.0 || (*end != ',' && *end != '\0'))
            return mtl_fail(err, "--split",
                            "'%s': expected 2 or 3 fractions in (0, 1] like "
                            "0.8,0.1,0.1 (train,valid,test) or 0.8,0.2 (train,test)",
                            s);
        if (n == MTL_SPLIT_MAX)
            return mtl_fail(err, "--split", "'%s': at most %d parts (train,valid,test)", s,
                            MTL_SPLIT_MAX);
        frac[n++] = f;
        sum += f;
        if (*end == '\0') break;
        p = end + 1;
    }
    if (n < 2) return mtl_fail(err, "--split", "'%s': need at least train and test fractions", s);
    if (fabs(sum - 1.0) > 1e-6)
        return mtl_fail(err, "--split", "'%s': fractions sum to %g, not 1", s, sum);
    *n_parts = n;
    return MTL_OK;
}

void mtl_split_counts(int64_t n, const double *frac, int n_parts, int64_t *count) {
    int64_t left = n;
    for (int i = 0; i < n_parts - 1; i++) {
        /* + 1e-6 so that 0.57 * 100 = 56.99999999999999 floors to 57 */
        int64_t c = (int64_t)floor(frac[i] * (double)n + 1e-6);
        if (c > left) c = left;
        count[i] = c;
        left -= c;
    }
    count[n_parts - 1] = left;
}

const char *mtl_split_file(int part, int n_parts) {
    if (part == 0) return "train.h5";
    if (part == n_parts - 1) return "test.h5";
    return "valid.h5";
}

/* ------------------------------------------------------------------------ */
/* reading the CSV */

typedef struct {
    int S, D, T;
    int64_t n, cap;
    int32_t *sparse;             /* [n x S] ids into cat[s] */
    double *dense;               /* [n x D] raw values */
    float *labels;               /* [n x T] */
    strtab *cat;                 /* [S] distinct raw strings per field, first-appearance ids */
    const int64_t *hash_buckets; /* [S] borrowed from the config: a hashed field's
                                    sparse[] holds its bucket, cat[s] stays empty */
    /* a multi-valued field s (multi_sep[s] != 0): row i's items are
     * items[s][off[s][i] .. off[s][i+1]) (ids into cat[s], or buckets), and
     * sparse[i * S + s] is unused */
    const int *multi_sep; /* [S] borrowed from the config */
    int64_t **off;        /* [S][cap + 1] (NULL for other fields) */
    int32_t **items;      /* [S][n_items[s]] */
    int64_t *cap_items;   /* [S] */
} rowstore;

static void rowstore_free(rowstore *r) {
    free(r->sparse);
    free(r->dense);
    free(r->labels);
    if (r->cat)
        for (int s = 0; s < r->S; s++) strtab_free(&r->cat[s]);
    free(r->cat);
    for (int s = 0; s < r->S; s++) {
        free(r->off ? r->off[s] : NULL);
        free(r->items ? r->items[s] : NULL);
    }
    free(r->off);
    free(r->items);
    free(r->cap_items);
    memset(r, 0, sizeof *r);
}

static int rowstore_reserve(rowstore *r, int64_t need, mtl_error *err) {
    if (need <= r->cap) return MTL_OK;
    int64_t nc = r->cap > 0 ? r->cap * 2 : 4096;
    while (nc < need) nc *= 2;
    int32_t *sp = realloc(r->sparse, (size_t)nc * (size_t)(r->S ? r->S : 1) * sizeof *sp);
    if (sp) r->sparse = sp;
    double *de = realloc(r->dense, (size_t)nc * (size_t)(r->D ? r->D : 1) * sizeof *de);
    if (de) r->dense = de;
    float *la = realloc(r->labels, (size_t)nc * (size_t)r->T * sizeof *la);
    if (la) r->labels = la;
    if (!sp || !de || !la)
        return mtl_fail(err, NULL, "rows: out of memory growing to %lld rows", (long long)nc);
    for (int s = 0; s < r->S; s++) {
        if (!r->multi_sep[s]) continue;
        int64_t *off = realloc(r->off[s], (size_t)(nc + 1) * sizeof *off);
        if (!off)
            return mtl_fail(err, NULL, "rows: out of memory growing to %lld rows", (long long)nc);
        if (!r->off[s]) off[0] = 0;
        r->off[s] = off;
    }
    r->cap = nc;
    return MTL_OK;
}

/* One line of a (possibly gzip) text file, any length. */
typedef struct {
    gzFile gz;
    char *buf;
    size_t cap;
    int64_t line;
} line_reader;

/* 1: a line in r->buf (newline stripped), 0: end of file, MTL_ERR: error. */
static int read_line(line_reader *r, const char *path, mtl_error *err) {
    size_t len = 0;
    for (;;) {
        if (r->cap - len < 2) {
            size_t nc = r->cap ? r->cap * 2 : 65536;
            char *b = realloc(r->buf, nc);
            if (!b) return mtl_fail(err, path, "line %lld: out of memory", (long long)r->line + 1);
            r->buf = b;
            r->cap = nc;
        }
        if (!gzgets(r->gz, r->buf + len,
                    (int)(r->cap - len > INT32_MAX ? INT32_MAX : r->cap - len))) {
            int errnum;
            const char *msg = gzerror(r->gz, &errnum);
            if (errnum != Z_OK && errnum != Z_STREAM_END)
                return mtl_fail(err, path, "read error after line %lld: %s", (long long)r->line,
                                msg);
            if (len == 0) return 0;
            break; /* last line without a newline */
        }
        len += strlen(r->buf + len);
        if (len > 0 && r->buf[len - 1] == '\n') break;
    }
    r->line++;
    while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r')) r->buf[--len] = '\0';
    return 1;
}

static int csv_blank(char c) {
    return c == ' ' || c == '\t';
}

int mtl_csv_split(char *line, char **field, int cap, const char **why) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *value, *end; /* the field is [value, end) */
        while (csv_blank(*p)) p++;
        if (*p == '"') {
            value = end = ++p;
            for (;; p++) {
                if (*p == '\0') {
                    *why = "quoted field not closed on this line (a quoted field cannot span "
                           "lines)";
                    return -1 - n;
                }
                if (*p == '"' && p[1] != '"') break;
                *end++ = *p;
                if (*p == '"') p++; /* "" is one quote */
            }
            p++;
            while (csv_blank(*p)) p++;
            if (*p != ',' && *p != '\0') {
                *why = "text after the closing quote (quote the whole field)";
                return -1 - n;
            }
        } else {
            value = p;
            while (*p != ',' && *p != '\0') {
                if (*p == '"') {
                    *why = "'\"' inside an unquoted field (quote the whole field and double the "
                           "quotes in it: \"a\"\"b\")";
                    return -1 - n;
                }
                p++;
            }
            end = p;
            while (end > value && csv_blank(end[-1])) end--;
        }
        int more = *p == ',';
        *end = '\0'; /* end <= p: p's comma has been read */
        if (n < cap) field[n] = value;
        n++;
        if (!more) return n;
        p++;
    }
}

/* Parse a whole numeric field (already trimmed). */
static int parse_number(const char *s, double *out) {
    if (*s == '\0') return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* The items of a multi-valued field's value (split at sep, trimmed, empty
 * ones dropped) as row r->n's list. */
static int read_list(rowstore *r, const mtl_prep_config *cfg, int s, char *value, mtl_error *err) {
    const char *col = cfg->col_names[cfg->sparse_col[s]];
    int64_t at = r->off[s][r->n];
    for (char *p = value;;) {
        char *sep = strchr(p, cfg->multi_sep[s]);
        if (sep) *sep = '\0';
        char *item = trim(p);
        if (*item) {
            if (mtl_grow((void **)&r->items[s], &r->cap_items[s], at + 1, sizeof(int32_t),
                         "list items", err))
                return MTL_ERR;
            int64_t id = cfg->hash_buckets[s] ? mtl_hash_id(col, item, cfg->hash_buckets[s])
                                              : strtab_intern(&r->cat[s], item, err);
            if (id < 0) return MTL_ERR;
            r->items[s][at++] = (int32_t)id;
        }
        if (!sep) break;
        p = sep + 1;
    }
    r->off[s][r->n + 1] = at;
    return MTL_OK;
}

/* The row's fields: exactly the config's columns, or an error naming the
 * first column that is missing, extra or malformed. */
static int split_row(char *line, char **field, const mtl_prep_config *cfg, const char *where,
                     mtl_error *err) {
    int nc = cfg->n_cols;
    const char *why = NULL;
    int n = mtl_csv_split(line, field, nc, &why); /* every field is counted: a long row shows */
    if (n < 0) {
        int bad = -1 - n;
        if (bad < nc) return mtl_fail(err, where, "column %s: %s", cfg->col_names[bad], why);
        return mtl_fail(err, where, "column %s: field %d after it: %s", cfg->col_names[nc - 1],
                        bad - nc + 1, why);
    }
    if (n < nc)
        return mtl_fail(err, where, "column %s: missing (row has %d fields, config names %d)",
                        cfg->col_names[n], n, nc);
    if (n > nc)
        return mtl_fail(err, where,
                        "column %s: extra fields after the last column (row has %d fields, "
                        "config names %d)",
                        cfg->col_names[nc - 1], n, nc);
    return MTL_OK;
}

/* Row r->n's categorical ids: train-fitted codes, hashed ids, or lists. */
static int encode_categorical(rowstore *r, const mtl_prep_config *cfg, char **field,
                              mtl_error *err) {
    int32_t *sp = r->sparse + r->n * r->S;
    for (int s = 0; s < cfg->S; s++) {
        char *value = field[cfg->sparse_col[s]];
        if (cfg->multi_sep[s]) {
            sp[s] = 0;
            if (read_list(r, cfg, s, value, err)) return MTL_ERR;
        } else if (cfg->hash_buckets[s]) {
            sp[s] = (int32_t)mtl_hash_id(cfg->col_names[cfg->sparse_col[s]], value,
                                         cfg->hash_buckets[s]);
        } else {
            int32_t id = strtab_intern(&r->cat[s], value, err);
            if (id < 0) return MTL_ERR;
            sp[s] = id;
        }
    }
    return MTL_OK;
}

static int encode_numeric(rowstore *r, const mtl_prep_config *cfg, char **field, const char *where,
                          mtl_error *err) {
    double *de = r->dense + r->n * r->D;
    for (int d = 0; d < cfg->D; d++) {
        int c = cfg->dense_col[d];
        if (!parse_number(field[c], &de[d]))
            return mtl_fail(
                err, where, "column %s: '%s' is not a number%s", cfg->col_names[c], field[c],
                strcmp(field[c], "?") == 0 ? " (unknown values are not allowed in a numeric column)"
                                           : "");
    }
    return MTL_OK;
}

/* Row r->n's labels: a number (regression), or 1/0 from the task's
 * positive and negative values (binary). */
static int encode_labels(rowstore *r, const mtl_prep_config *cfg, char **field, const char *where,
                         mtl_error *err) {
    float *la = r->labels + r->n * r->T;
    for (int t = 0; t < cfg->T; t++) {
        const mtl_prep_task *k = &cfg->tasks[t];
        int c = k->col;
        if (k->regression) {
            double v;
            if (!parse_number(field[c], &v))
                return mtl_fail(err, where, "column %s: '%s' is not a number (task %s)",
                                cfg->col_names[c], field[c], k->name);
            if (fabs(v) > FLT_MAX) /* labels are float32: it would become Inf */
                return mtl_fail(err, where, "column %s: '%s' is out of the float32 range (task %s)",
                                cfg->col_names[c], field[c], k->name);
            la[t] = (float)v;
            continue;
        }
        char *key = label_key(field[c]);
        int found = -1;
        for (int i = 0; i < k->n_positive && found < 0; i++)
            if (strcmp(key, k->positive[i]) == 0) found = 1;
        for (int i = 0; i < k->n_negative && found < 0; i++)
            if (strcmp(key, k->negative[i]) == 0) found = 0;
        if (found < 0)
            return mtl_fail(err, where,
                            "column %s: label value '%s' is neither positive nor negative for "
                            "task %s (see %s)",
                            cfg->col_names[c], key, k->name, cfg->path);
        la[t] = (float)found;
    }
    return MTL_OK;
}

/* Append every data row of the file at `path` to r. */
static int read_csv(rowstore *r, const mtl_prep_config *cfg, const char *path, mtl_error *err) {
    line_reader lr = {0};
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return mtl_fail(err, path, "cannot read: is a directory");
    errno = 0;
    lr.gz = gzopen(path, "rb");
    if (!lr.gz)
        return mtl_fail(err, path, "cannot open: %s", errno ? strerror(errno) : "gzopen failed");
    gzbuffer(lr.gz, 1 << 20);
    char **field = mtl_alloc((size_t)cfg->n_cols + 1, sizeof(char *), "csv fields", err);
    int64_t rows_before = r->n;
    int rc = field ? MTL_OK : MTL_ERR;
    char where[4200];
    while (rc == MTL_OK) {
        int got = read_line(&lr, path, err);
        if (got <= 0) {
            rc = got < 0 ? MTL_ERR : MTL_OK;
            break;
        }
        char *line = lr.buf;
        if (lr.line == 1 && line[0] == '|') continue; /* adult.test's "|1x3 Cross validator" */
        if (*trim(line) == '\0') continue;            /* blank (UCI files end with one) */
        snprintf(where, sizeof where, "%s:%lld", path, (long long)lr.line);
        rc = split_row(line, field, cfg, where, err);
        if (rc == MTL_OK) rc = rowstore_reserve(r, r->n + 1, err);
        if (rc == MTL_OK) rc = encode_categorical(r, cfg, field, err);
        if (rc == MTL_OK) rc = encode_numeric(r, cfg, field, where, err);
        if (rc == MTL_OK) rc = encode_labels(r, cfg, field, where, err);
        if (rc == MTL_OK) r->n++;
    }
    if (rc == MTL_OK && r->n == rows_before) rc = mtl_fail(err, path, "no data rows");
    free(field);
    free(lr.buf);
    gzclose(lr.gz);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* encoding */

static char oov_name[] = "<OOV>";

typedef struct {
    int S, D;
    int32_t **code;        /* [S][distinct raw ids of field s] -> code (0 = OOV) */
    int64_t *vocab_size;   /* [S] */
    int64_t *vocab_len;    /* [S] vocab_size, 0 for a hashed field */
    int64_t *hash_buckets; /* [S] 0: vocabulary field; N: hashed into N buckets */
    char ***vocab;         /* [S][vocab_len] vocab[s][0] = "<OOV>", borrowed strings */
    double *dmin, *dmax;   /* [D] */
    mtl_meta loaded;       /* --vocab-from: owns the strings vocab points at */
} encoding;

static void encoding_free(encoding *e) {
    for (int s = 0; s < e->S; s++) {
        if (e->code) free(e->code[s]);
        if (e->vocab) free(e->vocab[s]);
    }
    free(e->code);
    free(e->vocab);
    free(e->vocab_size);
    free(e->vocab_len);
    free(e->hash_buckets);
    free(e->dmin);
    free(e->dmax);
    mtl_meta_free(&e->loaded);
    memset(e, 0, sizeof *e);
}

static const strtab *sort_tab; /* qsort has no context argument in C11 */
static int cmp_by_string(const void *a, const void *b) {
    return strcmp(sort_tab->str[*(const int32_t *)a], sort_tab->str[*(const int32_t *)b]);
}

static int encoding_alloc(encoding *e, const rowstore *r, mtl_error *err) {
    e->S = r->S;
    e->D = r->D;
    e->code = mtl_alloc((size_t)r->S, sizeof *e->code, "encoding", err);
    e->vocab = mtl_alloc((size_t)r->S, sizeof *e->vocab, "encoding", err);
    e->vocab_size = mtl_alloc((size_t)r->S, sizeof *e->vocab_size, "encoding", err);
    e->vocab_len = mtl_alloc((size_t)r->S, sizeof *e->vocab_len, "encoding", err);
    e->hash_buckets = mtl_alloc((size_t)r->S, sizeof *e->hash_buckets, "encoding", err);
    e->dmin = mtl_alloc((size_t)r->D, sizeof *e->dmin, "encoding", err);
    e->dmax = mtl_alloc((size_t)r->D, sizeof *e->dmax, "encoding", err);
    if (!e->code || !e->vocab || !e->vocab_size || !e->vocab_len || !e->hash_buckets || !e->dmin ||
        !e->dmax)
        return MTL_ERR;
    if (r->S > 0) memcpy(e->hash_buckets, r->hash_buckets, (size_t)r->S * sizeof *e->hash_buckets);
    for (int s = 0; s < r->S; s++) {
        e->code[s] = mtl_alloc((size_t)r->cat[s].n, sizeof(int32_t), "encoding", err);
        if (!e->code[s]) return MTL_ERR;
    }
    return MTL_OK;
}

/* Fit on the train rows order[0..n_train): vocabularies in strcmp order,
 * dense min/max. */
static int encoding_fit(encoding *e, const rowstore *r, const int64_t *order, int64_t n_train,
                        mtl_error *err) {
    if (encoding_alloc(e, r, err)) return MTL_ERR;
    for (int s = 0; s < r->S; s++) {
        if (r->hash_buckets[s]) { /* nothing to fit */
            e->vocab_size[s] = r->hash_buckets[s];
            continue;
        }
        const strtab *tab = &r->cat[s];
        int32_t *code = e->code[s]; /* first a seen-in-train flag */
        for (int64_t i = 0; i < n_train; i++) {
            int64_t row = order[i];
            if (!r->multi_sep[s])
                code[r->sparse[row * r->S + s]] = 1;
            else
                for (int64_t k = r->off[s][row]; k < r->off[s][row + 1]; k++)
                    code[r->items[s][k]] = 1;
        }
        int32_t *ids = mtl_alloc((size_t)tab->n, sizeof *ids, "encoding", err);
        if (!ids) return MTL_ERR;
        int32_t n_seen = 0;
        for (int32_t id = 0; id < tab->n; id++)
            if (code[id]) ids[n_seen++] = id;
        sort_tab = tab;
        qsort(ids, (size_t)n_seen, sizeof *ids, cmp_by_string);
        e->vocab_size[s] = e->vocab_len[s] = n_seen + 1;
        e->vocab[s] = mtl_alloc((size_t)n_seen + 1, sizeof(char *), "encoding", err);
        if (!e->vocab[s]) {
            free(ids);
            return MTL_ERR;
        }
        e->vocab[s][0] = oov_name;
        memset(code, 0, (size_t)tab->n * sizeof *code);
        for (int32_t i = 0; i < n_seen; i++) {
            code[ids[i]] = i + 1;
            e->vocab[s][i + 1] = tab->str[ids[i]];
        }
        free(ids);
    }
    for (int d = 0; d < r->D; d++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n_train; i++) {
            double v = r->dense[order[i] * r->D + d];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        e->dmin[d] = lo;
        e->dmax[d] = hi;
    }
    return MTL_OK;
}

/* Reuse the encoding stored in another file's /meta (--vocab-from). */
static int encoding_load(encoding *e, const rowstore *r, const mtl_prep_config *cfg,
                         const char *path, mtl_error *err) {
    if (encoding_alloc(e, r, err)) return MTL_ERR;
    if (mtl_meta_load(&e->loaded, path, err)) return MTL_ERR;
    const mtl_meta *m = &e->loaded;
    if (m->S == 0 && m->D == 0)
        return mtl_fail(err, path, "no /meta (not written by mtl_prep): no encoding to reuse");
    if (m->S != r->S || m->D != r->D)
        return mtl_fail(err, path,
                        "/meta has %d categorical and %d numeric columns, %s has %d and %d", m->S,
                        m->D, cfg->path, r->S, r->D);
    mtl_dataset hdr;
    memset(&hdr, 0, sizeof hdr);
    if (mtl_dataset_load_header(&hdr, path, err)) return MTL_ERR;
    int rc = MTL_OK;
    /* /meta and the datasets beside it can disagree in a damaged file */
    if (hdr.S != r->S || hdr.D != r->D)
        rc = mtl_fail(err, path, "/sparse and /dense have %d and %d columns, %s has %d and %d",
                      hdr.S, hdr.D, cfg->path, r->S, r->D);
    for (int s = 0; s < r->S && rc == MTL_OK; s++) {
        if (strcmp(hdr.sparse_names[s], cfg->col_names[cfg->sparse_col[s]]) != 0)
            rc = mtl_fail(err, path, "/sparse field %d is '%s', %s has '%s'", s,
                          hdr.sparse_names[s], cfg->path, cfg->col_names[cfg->sparse_col[s]]);
        else if (m->hash_buckets[s] != r->hash_buckets[s])
            rc = mtl_fail(err, path,
                          "field %s: hashed into %lld buckets there (0: a vocabulary), "
                          "%s says %lld (hash_buckets)",
                          hdr.sparse_names[s], (long long)m->hash_buckets[s], cfg->path,
                          (long long)r->hash_buckets[s]);
        else if (m->hash_buckets[s] != 0) {
            if (hdr.vocab_sizes[s] != m->hash_buckets[s] || m->vocab_len[s] != 0)
                rc = mtl_fail(err, path,
                              "field %s: hashed into %lld buckets, but vocab_sizes says %lld and "
                              "/meta has %lld vocabulary entries",
                              hdr.sparse_names[s], (long long)m->hash_buckets[s],
                              (long long)hdr.vocab_sizes[s], (long long)m->vocab_len[s]);
        } else if (m->vocab_len[s] < 1 || hdr.vocab_sizes[s] != m->vocab_len[s])
            rc = mtl_fail(err, path,
                          "/meta vocabulary of field %s has %lld entries, "
                          "vocab_sizes says %lld",
                          hdr.sparse_names[s], (long long)m->vocab_len[s],
                          (long long)hdr.vocab_sizes[s]);
    }
    for (int d = 0; d < r->D && rc == MTL_OK; d++)
        if (strcmp(hdr.dense_names[d], cfg->col_names[cfg->dense_col[d]]) != 0)
            rc = mtl_fail(err, path, "/dense column %d is '%s', %s has '%s'", d, hdr.dense_names[d],
                          cfg->path, cfg->col_names[cfg->dense_col[d]]);
    mtl_dataset_free(&hdr);
    if (rc) return rc;
    for (int s = 0; s < r->S; s++) {
        if (r->hash_buckets[s]) {
            e->vocab_size[s] = r->hash_buckets[s];
            continue;
        }
        /* index the stored strings (entry 0 is the OOV placeholder) */
        strtab known;
        memset(&known, 0, sizeof known);
        for (int64_t i = 1; i < m->vocab_len[s]; i++) {
            if (strtab_intern(&known, m->vocab[s][i], err) != (int32_t)(i - 1)) {
                strtab_free(&known);
                return mtl_fail(err, path, "/meta vocabulary of field %s: '%s' listed twice",
                                cfg->col_names[cfg->sparse_col[s]], m->vocab[s][i]);
            }
        }
        for (int32_t id = 0; id < r->cat[s].n; id++)
            e->code[s][id] = strtab_find(&known, r->cat[s].str[id]) + 1; /* -1 + 1 = OOV */
        strtab_free(&known);
        e->vocab_size[s] = e->vocab_len[s] = m->vocab_len[s];
        e->vocab[s] = mtl_alloc((size_t)m->vocab_len[s], sizeof(char *), "encoding", err);
        if (!e->vocab[s]) return MTL_ERR;
        for (int64_t i = 0; i < m->vocab_len[s]; i++) e->vocab[s][i] = m->vocab[s][i];
    }
    for (int d = 0; d < r->D; d++) {
        if (!isfinite(m->dense_min[d]) || !isfinite(m->dense_max[d]) ||
            m->dense_min[d] > m->dense_max[d])
            return mtl_fail(err, path, "/meta: column %s: bad range [%g, %g]",
                            cfg->col_names[cfg->dense_col[d]], m->dense_min[d], m->dense_max[d]);
        e->dmin[d] = m->dense_min[d];
        e->dmax[d] = m->dense_max[d];
    }
    return MTL_OK;
}

/* Encode rows order[0..n) into the output buffers (sparse: the S - M
 * single-valued fields). */
static void encode_rows(const encoding *e, const rowstore *r, const int64_t *order, int64_t n,
                        int32_t *sparse, float *dense, float *labels) {
    for (int64_t i = 0; i < n; i++) {
        int64_t row = order[i];
        for (int s = 0; s < r->S; s++) {
            if (r->multi_sep[s]) continue;
            int32_t raw = r->sparse[row * r->S + s]; /* a hashed field's bucket is its code */
            *sparse++ = e->hash_buckets[s] ? raw : e->code[s][raw];
        }
        for (int d = 0; d < r->D; d++) {
            /* in halves: max - min overflows to Inf (and Inf / Inf = NaN) for
             * values near +-DBL_MAX; halving is exact, so the quotient is the
             * same as without it for every other value */
            double range = 0.5 * e->dmax[d] - 0.5 * e->dmin[d];
            double v =
                range > 0.0 ? (0.5 * r->dense[row * r->D + d] - 0.5 * e->dmin[d]) / range : 0.0;
            if (v < 0.0) v = 0.0;
            if (v > 1.0) v = 1.0;
            dense[i * r->D + d] = (float)v;
        }
        for (int t = 0; t < r->T; t++) labels[i * r->T + t] = r->labels[row * r->T + t];
    }
}

/* ------------------------------------------------------------------------ */
/* the run */

#define PREP_CHUNK 65536

/* Field s's lists of rows order[0..n) appended to w as its multi-valued
 * field j, encoded like single values. */
static int write_lists(mtl_writer *w, int j, const encoding *e, const rowstore *r, int s,
                       const int64_t *order, int64_t n, mtl_error *err) {
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++) nnz += r->off[s][order[i] + 1] - r->off[s][order[i]];
    int64_t *off = mtl_alloc((size_t)n + 1, sizeof *off, "list offsets", err);
    int32_t *ids = mtl_alloc((size_t)nnz, sizeof *ids, "list ids", err);
    int rc = MTL_ERR;
    if (off && ids) {
        off[0] = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t at = off[i];
            for (int64_t k = r->off[s][order[i]]; k < r->off[s][order[i] + 1]; k++) {
                int32_t raw = r->items[s][k];
                ids[at++] = e->hash_buckets[s] ? raw : e->code[s][raw];
            }
            off[i + 1] = at;
        }
        rc = mtl_writer_append_multi(w, j, off, ids, n, err);
    }
    free(off);
    free(ids);
    return rc;
}

static int write_part(const char *path, const mtl_prep_config *cfg, const encoding *e,
                      const rowstore *r, const int64_t *order, int64_t n, mtl_error *err) {
    const char **sparse_names = mtl_alloc((size_t)cfg->S, sizeof(char *), "names", err);
    const char **dense_names = mtl_alloc((size_t)cfg->D, sizeof(char *), "names", err);
    const char **task_names = mtl_alloc((size_t)cfg->T, sizeof(char *), "names", err);
    int64_t chunk = n < PREP_CHUNK ? n : PREP_CHUNK;
    int32_t *sparse = mtl_alloc((size_t)chunk * (size_t)cfg->S, sizeof(int32_t), "chunk", err);
    float *dense = mtl_alloc((size_t)chunk * (size_t)cfg->D, sizeof(float), "chunk", err);
    float *labels = mtl_alloc((size_t)chunk * (size_t)cfg->T, sizeof(float), "chunk", err);
    mtl_writer *w = NULL;
    int rc = MTL_ERR;
    /* single-valued fields -> /sparse, multi-valued ones -> /multi, each in
     * config order */
    const char **multi_names = mtl_alloc((size_t)cfg->M, sizeof(char *), "names", err);
    int64_t *vocab = mtl_alloc((size_t)cfg->S, sizeof(int64_t), "vocab", err);
    int64_t *multi_vocab = mtl_alloc((size_t)cfg->M, sizeof(int64_t), "vocab", err);
    int *multi_mean = mtl_alloc((size_t)cfg->M, sizeof(int), "pooling", err);
    if (!sparse_names || !dense_names || !task_names || !sparse || !dense || !labels ||
        !multi_names || !vocab || !multi_vocab || !multi_mean)
        goto done;
    int S1 = 0, M = 0;
    for (int s = 0; s < cfg->S; s++) {
        const char *name = cfg->col_names[cfg->sparse_col[s]];
        if (cfg->multi_sep[s]) {
            multi_names[M] = name;
            multi_mean[M] = cfg->multi_mean[s];
            multi_vocab[M++] = e->vocab_size[s];
        } else {
            sparse_names[S1] = name;
            vocab[S1++] = e->vocab_size[s];
        }
    }
    for (int d = 0; d < cfg->D; d++) dense_names[d] = cfg->col_names[cfg->dense_col[d]];
    for (int t = 0; t < cfg->T; t++) task_names[t] = cfg->tasks[t].name;
    if (mtl_writer_open(&w, path, S1, sparse_names, vocab, cfg->D, dense_names, cfg->T, task_names,
                        0, err) ||
        mtl_writer_add_multi(w, M, multi_names, multi_vocab, multi_mean, err))
        goto done;
    for (int64_t b = 0; b < n; b += chunk) {
        int64_t m = n - b < chunk ? n - b : chunk;
        encode_rows(e, r, order + b, m, sparse, dense, labels);
        if (mtl_writer_append(w, S1 ? sparse : NULL, cfg->D ? dense : NULL, labels, NULL, m, err))
            goto done;
        for (int s = 0, j = 0; s < cfg->S; s++)
            if (cfg->multi_sep[s] && write_lists(w, j++, e, r, s, order + b, m, err)) goto done;
    }
    mtl_meta meta = {.S = e->S,
                     .vocab_len = e->vocab_len,
                     .vocab = e->vocab,
                     .hash_buckets = e->hash_buckets,
                     .D = e->D,
                     .dense_min = e->dmin,
                     .dense_max = e->dmax};
    rc = mtl_writer_close(w, &meta, err);
    w = NULL;
done:
    mtl_writer_abort(w);
    free(sparse_names);
    free(dense_names);
    free(task_names);
    free(multi_names);
    free(vocab);
    free(multi_vocab);
    free(multi_mean);
    free(sparse);
    free(dense);
    free(labels);
    return rc;
}

static void print_summary(const char *path, const mtl_prep_config *cfg, const rowstore *r,
                          const int64_t *order, int64_t n) {
    printf("%s: %lld rows, S=%d", path, (long long)n, cfg->S - cfg->M);
    if (cfg->M) printf(" M=%d (multi-valued)", cfg->M);
    printf(" D=%d T=%d, positive rate:", cfg->D, cfg->T);
    for (int t = 0; t < cfg->T; t++) {
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += r->labels[order[i] * r->T + t];
        printf(" %s %.4f%s", cfg->tasks[t].name, n ? sum / (double)n : 0.0,
               cfg->tasks[t].regression ? " (mean)" : "");
    }
    printf("\n");
}

int mtl_prep_run(const mtl_prep_options *opt, mtl_error *err) {
    mtl_prep_config cfg;
    rowstore rows;
    encoding enc;
    memset(&rows, 0, sizeof rows);
    memset(&enc, 0, sizeof enc);
    int64_t *order = NULL;
    char written[MTL_SPLIT_MAX][4200];
    int n_written = 0;
    int rc = MTL_ERR;

    int split_mode = opt->input_path != NULL;
    if (split_mode == (opt->train_path != NULL || opt->test_path != NULL) ||
        (!split_mode && (!opt->train_path || !opt->test_path)))
        return mtl_fail(err, NULL, "give either an input file or both a train and a test file");
    if (!opt->output_dir) return mtl_fail(err, NULL, "no output directory");
    if (mtl_prep_config_load(&cfg, opt->config_path, err)) return MTL_ERR;

    rows.S = cfg.S;
    rows.D = cfg.D;
    rows.T = cfg.T;
    rows.hash_buckets = cfg.hash_buckets;
    rows.multi_sep = cfg.multi_sep;
    rows.cat = mtl_alloc((size_t)cfg.S, sizeof(strtab), "category tables", err);
    rows.off = mtl_alloc((size_t)cfg.S, sizeof *rows.off, "lists", err);
    rows.items = mtl_alloc((size_t)cfg.S, sizeof *rows.items, "lists", err);
    rows.cap_items = mtl_alloc((size_t)cfg.S, sizeof *rows.cap_items, "lists", err);
    if (!rows.cat || !rows.off || !rows.items || !rows.cap_items) goto done;
    if (opt->vocab_from && cfg.M > 0) {
        mtl_fail(err, opt->config_path,
                 "--vocab-from: not supported with multi_valued columns yet (encode the splits "
                 "in one run: --split, or --train and --test)");
        goto done;
    }

    /* 1. read and validate every row */
    int n_parts;
    double frac[MTL_SPLIT_MAX] = {0.8, 0.1, 0.1};
    int64_t count[MTL_SPLIT_MAX];
    if (split_mode) {
        n_parts = opt->n_split ? opt->n_split : 3;
        if (opt->n_split) memcpy(frac, opt->split, sizeof frac);
        if (read_csv(&rows, &cfg, opt->input_path, err)) goto done;
        mtl_split_counts(rows.n, frac, n_parts, count);
        for (int p = 0; p < n_parts; p++)
            if (count[p] == 0) {
                mtl_fail(err, opt->input_path, "%lld rows leave %s empty", (long long)rows.n,
                         mtl_split_file(p, n_parts));
                goto done;
            }
    } else {
        n_parts = 2;
        if (read_csv(&rows, &cfg, opt->train_path, err)) goto done;
        count[0] = rows.n;
        if (read_csv(&rows, &cfg, opt->test_path, err)) goto done;
        count[1] = rows.n - count[0];
    }

    /* 2. row order: file order, or a seeded Fisher-Yates shuffle */
    order = mtl_alloc((size_t)rows.n, sizeof *order, "row order", err);
    if (!order) goto done;
    for (int64_t i = 0; i < rows.n; i++) order[i] = i;
    if (split_mode && opt->shuffle) {
        mtl_rng rng;
        mtl_rng_seed(&rng, opt->shuffle_seed);
        for (int64_t i = rows.n - 1; i > 0; i--) {
            int64_t j = (int64_t)mtl_rng_below(&rng, (uint64_t)i + 1);
            int64_t tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
    }

    /* 3. the encoding: fitted on train, or loaded */
    if (opt->vocab_from) {
        if (encoding_load(&enc, &rows, &cfg, opt->vocab_from, err)) goto done;
    } else if (encoding_fit(&enc, &rows, order, count[0], err)) {
        goto done;
    }

    /* 4. write; on failure remove what this run already wrote */
    if (mtl_mkdir_p(opt->output_dir, "directory", err)) goto done;
    int64_t begin = 0;
    for (int p = 0; p < n_parts; p++) {
        char *path = written[n_written];
        int len =
            snprintf(path, sizeof written[0], "%s/%s", opt->output_dir, mtl_split_file(p, n_parts));
        if (len < 0 || (size_t)len >= sizeof written[0]) {
            mtl_fail(err, opt->output_dir, "path too long");
            goto done;
        }
        if (write_part(path, &cfg, &enc, &rows, order + begin, count[p], err)) goto done;
        n_written++;
        if (!opt->quiet) print_summary(path, &cfg, &rows, order + begin, count[p]);
        begin += count[p];
    }
    if (!opt->quiet) {
        printf("vocab sizes (incl. OOV):");
        int64_t total = 0;
        for (int s = 0; s < cfg.S; s++) {
            printf(" %s=%lld%s", cfg.col_names[cfg.sparse_col[s]], (long long)enc.vocab_size[s],
                   enc.hash_buckets[s] ? " (hashed)" : "");
            total += enc.vocab_size[s];
        }
        printf(" (total %lld)\n", (long long)total);
    }
    rc = MTL_OK;

done:
    if (rc != MTL_OK)
        for (int i = 0; i < n_written; i++) remove(written[i]);
    free(order);
    encoding_free(&enc);
    rowstore_free(&rows);
    mtl_prep_config_free(&cfg);
    return rc;
}
