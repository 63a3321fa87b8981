/* Config files (INI), read by inih for both tools: mtl_dist reads [train]
 * and [train.MODEL], mtl_prep [columns] and [task.NAME], so one file can
 * serve both. One dialect, the same for every section:
 *   - `[section]` starts a section; `key = value` sets a key (spaces around
 *     key and value are dropped);
 *   - a line whose first non-blank character is ';' or '#' is a comment, and
 *     so is the rest of a line from a ';' or '#' that follows a blank;
 *   - an indented line without '=' after a key of the same section (blank
 *     and comment lines between do not matter) continues that key's value: a
 *     long list on several lines. It reaches the handler as another piece of
 *     the same key, with `continued` set (mtl_prep's lists take the pieces as
 *     more items; mtl_dist's options are one line each and refuse it). Any
 *     other indented line is read as if it were not indented: indented keys
 *     are keys;
 *   - a line longer than inih's buffer is an error, never split in two.
 * Errors read "file:line: key: what is wrong". */
#ifndef MTL_INI_H
#define MTL_INI_H

#include "mtl/error.h"

typedef struct {
    const char *path;
    int line; /* of this key, or of this continuation */
    const char *section, *key, *value;
    int continued; /* an indented line: more of the value of the key above */
} mtl_ini_entry;

/* Called for every key and continuation in file order; MTL_ERR (with err
 * filled, e.g. by mtl_ini_fail) stops the reading. */
typedef int (*mtl_ini_handler)(void *user, const mtl_ini_entry *e, mtl_error *err);

int mtl_ini_read(const char *path, mtl_ini_handler handler, void *user, mtl_error *err);
/* "path:line: key: <what>" */
int mtl_ini_fail(const mtl_ini_entry *e, mtl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
