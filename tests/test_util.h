/* Helpers the cmocka test programs share (include after <cmocka.h>). */
#ifndef MTL_TEST_UTIL_H
#define MTL_TEST_UTIL_H

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

static inline int have_h5py(void) {
    static int cached = -1;
    if (cached < 0) cached = system(PY " -c 'import h5py, numpy' >/dev/null 2>&1") == 0;
    return cached;
}

#endif
