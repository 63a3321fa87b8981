/* Helpers the cmocka test programs share (include after <cmocka.h>). */
#ifndef MTL_TEST_UTIL_H
#define MTL_TEST_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mtl/error.h"

/* Debian's python, which has h5py and numpy (a pyenv python on PATH may not) */
#define PY "/usr/bin/python3"

static inline int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Fails the test unless err's message contains want. */
static inline void assert_msg(const mtl_error *err, const char *want) {
    if (!strstr(err->msg, want)) {
        print_error("error message\n  \"%s\"\ndoes not contain\n  \"%s\"\n", err->msg, want);
        fail();
    }
}

/* |a - b| / max(|a|, |b|, floor): relative, except near 0, where floor
 * (the scale of the values compared) makes it absolute. */
static inline double rel_err(double a, double b, double floor_) {
    return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), floor_);
}

/* cmocka 1.1's assert_float_equal compares in float with a float epsilon;
 * this compares doubles and prints both values in full */
#define assert_near(a, b, tol) assert_near_((a), (b), (tol), #a, __FILE__, __LINE__)
static inline void assert_near_(double a, double b, double tol, const char *expr, const char *file,
                                int line) {
    if (fabs(a - b) <= tol) return;
    print_error("%s = %.17g, expected %.17g (tolerance %g)\n", expr, a, b, tol);
    _fail(file, line);
}

static inline int have_h5py(void) {
    static int cached = -1;
    if (cached < 0) cached = system(PY " -c 'import h5py, numpy' >/dev/null 2>&1") == 0;
    return cached;
}

#endif
