/* Error reporting shared by every module: library functions return MTL_OK or
 * MTL_ERR and fill an mtl_error with "file:line: field: what is wrong". They
 * never exit(); the executables print the message once and exit non-zero. */
#ifndef MTL_ERROR_H
#define MTL_ERROR_H

#include <stdio.h>

enum { MTL_OK = 0, MTL_ERR = -1 };

typedef struct {
    char msg[1024];
} mtl_error;

/* Set the message (printf-style) and return MTL_ERR. `where` is the input
 * being read when it is a user's file ("data/train.h5", "census.ini:12"), or
 * NULL to use the C source location. */
int mtl_fail(mtl_error *err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with more context ("rank 1: ..."). */
int mtl_fail_prefix(mtl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Source location as a string, for errors about a program state rather than a
 * user's input (allocation failures, impossible shapes). */
#define MTL_STR2(x) #x
#define MTL_STR(x) MTL_STR2(x)
#define MTL_HERE __FILE__ ":" MTL_STR(__LINE__)

/* calloc that reports what it was for; returns NULL with err filled. */
void *mtl_alloc(size_t count, size_t size, const char *what, mtl_error *err);
/* mtl_alloc for tables of up to GBs read at random rows, and for blocks that
 * want cache-line alignment: zeroed, 64-byte aligned, on transparent huge
 * pages when large (error.c says why); free() frees it. */
void *mtl_alloc_huge(size_t count, size_t size, const char *what, mtl_error *err);

#endif
