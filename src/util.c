#define _POSIX_C_SOURCE 200809L
/* Small shared helpers: see include/mtl/util.h. */
#include "mtl/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *mtl_strdup(const char *s, mtl_error *err) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = mtl_alloc(n, 1, "string", err);
    if (d) memcpy(d, s, n);
    return d;
}

int mtl_grow(void **arr, int64_t *cap, int64_t need, size_t elem, const char *what,
             mtl_error *err) {
    if (need <= *cap) return MTL_OK;
    int64_t nc = *cap > 0 ? *cap : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return mtl_fail(err, NULL, "%s: out of memory (%.1f MiB)", what,
                        (double)nc * (double)elem / 1048576.0);
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return MTL_OK;
}

int mtl_mkdir_p(const char *dir, const char *what, mtl_error *err) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0) return mtl_fail(err, NULL, "%s: empty path", what);
    if (n >= sizeof buf) return mtl_fail(err, dir, "path too long");
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return mtl_fail(err, buf, "cannot create %s: %s", what, strerror(errno));
        buf[i] = saved;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return mtl_fail(err, dir, "not a directory");
    return MTL_OK;
}

/* ---- strict numbers ---- */

const char *mtl_skip_space(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* true when only whitespace follows */
static int only_space(const char *end) {
    return *mtl_skip_space(end) == '\0';
}

int mtl_parse_double(const char *text, double *out, const char *where, mtl_error *err) {
    const char *s = mtl_skip_space(text);
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || !only_space(end)) return mtl_fail(err, where, "'%s' is not a number", text);
    // strtod accepts "nan" and "inf" and overflows to HUGE_VAL: none is a
    // usable setting (an underflow, also ERANGE, is a usable tiny number)
    if (!isfinite(d)) return mtl_fail(err, where, "'%s' is not a finite number", text);
    *out = d;
    return MTL_OK;
}

int mtl_parse_i64(const char *text, int64_t lo, int64_t hi, int64_t *out, const char *where,
                  mtl_error *err) {
    const char *s = mtl_skip_space(text);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || !only_space(end)) {
        double d;
        mtl_error ignore;
        if (mtl_parse_double(text, &d, NULL, &ignore) == MTL_OK) // "1.5", "1e3"
            return mtl_fail(err, where, "'%s' is not an integer", text);
        return mtl_fail(err, where, "'%s' is not a number", text);
    }
    if (errno == ERANGE || v < lo || v > hi)
        return mtl_fail(err, where, "%s is out of range (%lld..%lld)", s, (long long)lo,
                        (long long)hi);
    *out = (int64_t)v;
    return MTL_OK;
}

int mtl_parse_u64(const char *text, uint64_t *out, const char *where, mtl_error *err) {
    const char *s = mtl_skip_space(text);
    char *end = NULL;
    errno = 0;
    // strtoull silently negates "-1" to 2^64-1, so a sign is rejected up front
    unsigned long long v = (*s == '-') ? 0 : strtoull(s, &end, 10);
    if (*s == '-' || end == s || !only_space(end)) {
        if (*s == '-' && isdigit((unsigned char)s[1]))
            return mtl_fail(err, where, "%s is out of range (0..%llu)", s,
                            (unsigned long long)UINT64_MAX);
        return mtl_fail(err, where, "'%s' is not a number", text);
    }
    if (errno == ERANGE)
        return mtl_fail(err, where, "%s is out of range (0..%llu)", s,
                        (unsigned long long)UINT64_MAX);
    *out = (uint64_t)v;
    return MTL_OK;
}
