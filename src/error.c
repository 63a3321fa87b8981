#define _DEFAULT_SOURCE /* madvise */
#include "mtl/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int mtl_fail(mtl_error *err, const char *where, const char *fmt, ...) {
    if (!err) return MTL_ERR;
    size_t used = 0;
    if (where) {
        int n = snprintf(err->msg, sizeof err->msg, "%s: ", where);
        used = n > 0 ? (size_t)n : 0;
        if (used >= sizeof err->msg) used = sizeof err->msg - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
    return MTL_ERR;
}

int mtl_fail_prefix(mtl_error *err, const char *fmt, ...) {
    if (!err) return MTL_ERR;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t p = strlen(prefix), m = strlen(err->msg), cap = sizeof err->msg - 1;
    if (p + m > cap) m = cap - p; /* keep the prefix, cut the old message's tail */
    memmove(err->msg + p, err->msg, m);
    memcpy(err->msg, prefix, p);
    err->msg[p + m] = '\0';
    return MTL_ERR;
}

void *mtl_alloc(size_t count, size_t size, const char *what, mtl_error *err) {
    if (count == 0) count = 1;
    if (size != 0 && count > (size_t)-1 / size) {
        mtl_fail(err, NULL, "%s: size overflow (%zu x %zu bytes)", what, count, size);
        return NULL;
    }
    void *p = calloc(count, size);
    if (!p)
        mtl_fail(err, NULL, "%s: out of memory allocating %.1f MiB", what,
                 (double)count * (double)size / 1048576.0);
    return p;
}

/* Tables of up to GBs read at random rows: 2 MB-aligned with transparent huge
 * pages requested (with 4 KB pages each such row costs a TLB miss; measured
 * on this project's machines: a random 4-byte slot of a 96 MB array 10.3 ns
 * -> 7.2 ns), and zeroed here, so the first touch of a page costs no fault
 * inside a step (page clearing took most of a step at 1 M ids per field).
 * Smaller blocks are aligned on a cache line (the model's arenas). */
#define HUGE_PAGE ((size_t)2 << 20)
void *mtl_alloc_huge(size_t count, size_t size, const char *what, mtl_error *err) {
    if (size != 0 && count > ((size_t)-1 - HUGE_PAGE) / size) {
        mtl_fail(err, NULL, "%s: size overflow (%zu x %zu bytes)", what, count, size);
        return NULL;
    }
    size_t bytes = count * size, align = bytes < 4 * HUGE_PAGE ? 64 : HUGE_PAGE;
    bytes = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (posix_memalign(&p, align, bytes ? bytes : align) != 0) {
        mtl_fail(err, NULL, "%s: out of memory allocating %.1f MiB", what,
                 (double)bytes / 1048576.0);
        return NULL;
    }
    if (align == HUGE_PAGE) (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: fine if refused */
    memset(p, 0, bytes);
    return p;
}
