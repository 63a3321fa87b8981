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

/* s after its leading whitespace */
const char *mtl_skip_space(const char *s);
/* Strict numbers: the whole text (spaces around it allowed) is one decimal
 * number, finite, in range; `where` prefixes the message ("--rows",
 * "file:line: key"): "'abc' is not a number", "'1.5' is not an integer",
 * "0 is out of range (1..64)". */
int mtl_parse_double(const char *text, double *out, const char *where, mtl_error *err);
int mtl_parse_i64(const char *text, int64_t lo, int64_t hi, int64_t *out, const char *where,
                  mtl_error *err);
int mtl_parse_u64(const char *text, uint64_t *out, const char *where, mtl_error *err);

#endif
