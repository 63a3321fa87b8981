#define _POSIX_C_SOURCE 200809L
/* Small shared helpers: see include/mtl/util.h. */
#include "mtl/util.h"

#include <errno.h>
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
