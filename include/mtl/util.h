/* Small helpers every module shares: one copy each. */
#ifndef MTL_UTIL_H
#define MTL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mtl/error.h"

/* A copy of s (NULL: ""), or NULL with err filled. */
char *mtl_strdup(const char *s, mtl_error *err);
/* Make room in the growable array *arr of elem-byte elements for `need` of
 * them: capacity doubles (from 16), new elements are zero. what names the
 * array in the out-of-memory message. */
int mtl_grow(void **arr, int64_t *cap, int64_t need, size_t elem, const char *what, mtl_error *err);
/* mkdir -p: dir and its parents; what names it in messages ("directory",
 * "checkpoint directory"). An existing non-directory fails. */
int mtl_mkdir_p(const char *dir, const char *what, mtl_error *err);

#endif
