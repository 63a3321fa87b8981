#define _POSIX_C_SOURCE 200809L
/* Config files through inih: the dialect is in include/mtl/ini.h. inih
 * parses; this file feeds it lines (counting them, refusing the ones it would
 * split, cutting '#' comments, which inih knows only at the start of a line)
 * and tells the handler where each key is and whether it continues one. */
#include "mtl/ini.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    FILE *f;
    const char *path;
    mtl_ini_handler handler;
    void *user;
    mtl_error *err;
    int line;        /* lines handed to inih so far: the line being parsed */
    int after_key;   /* a key came since the last section header (inih's prev_name) */
    int continued;   /* the line being parsed continues that key */
    int failed;      /* err holds our first error (reader or handler) */
    int failed_line; /* its line */
} reader;

static int is_comment_or_blank(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    return *s == '\0' || *s == ';' || *s == '#';
}

/* inih's line source: one line of the file into str (num bytes). */
static char *next_line(char *str, int num, void *stream) {
    reader *r = stream;
    if (r->failed) return NULL; /* stop at our first error */
    int len = 0, c = EOF;
    while ((c = getc(r->f)) != EOF && c != '\n') {
        if (len >= num - 3) { /* room for "\n\0" and inih's own margin */
            r->line++;
            r->failed = 1;
            r->failed_line = r->line;
            mtl_fail(r->err, NULL,
                     "%s:%d: line is too long (at most %d characters; continue a long value on "
                     "indented lines)",
                     r->path, r->line, num - 3);
            return NULL;
        }
        str[len++] = (char)c;
    }
    if (len == 0 && c == EOF) return NULL;
    r->line++;
    str[len] = '\0';
    /* '#' after a blank starts a comment, as ';' does for inih */
    for (int i = 1; i < len; i++)
        if (str[i] == '#' && isspace((unsigned char)str[i - 1])) {
            str[i] = '\0';
            len = i;
            break;
        }
    /* An indented line without '=' continues the key above; any other line
     * loses its indentation, so that inih (which would take every indented
     * line after a key as a continuation) reads it as a key or a section. */
    r->continued = 0;
    if (!is_comment_or_blank(str)) {
        int start = 0;
        while (isspace((unsigned char)str[start])) start++;
        if (start > 0 && r->after_key && str[start] != '[' && !strchr(str + start, '=')) {
            r->continued = 1;
        } else {
            r->after_key = str[start] != '[';
            memmove(str, str + start, (size_t)(len - start) + 1);
            len -= start;
        }
    }
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int on_key(void *user, const char *section, const char *key, const char *value) {
    reader *r = user;
    if (r->failed) return 0;
    mtl_ini_entry e = {.path = r->path,
                       .line = r->line,
                       .section = section,
                       .key = key,
                       .value = value,
                       .continued = r->continued};
    if (r->handler(r->user, &e, r->err) == MTL_OK) return 1;
    r->failed = 1;
    r->failed_line = r->line;
    return 0;
}

int mtl_ini_read(const char *path, mtl_ini_handler handler, void *user, mtl_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return mtl_fail(err, path, "cannot read: %s", strerror(EISDIR));
    FILE *f = fopen(path, "r");
    if (!f) return mtl_fail(err, path, "cannot open: %s", strerror(errno));
    reader r = {.f = f, .path = path, .handler = handler, .user = user, .err = err};
    int rc = ini_parse_stream(next_line, &r, on_key, &r);
    int read_error = ferror(f);
    fclose(f);
    if (read_error) return mtl_fail(err, path, "cannot read: %s", strerror(EIO));
    /* inih reports the first bad line; ours may come later */
    if (rc > 0 && (!r.failed || rc < r.failed_line))
        return mtl_fail(err, NULL,
                        "%s:%d: syntax error (expected 'key = value', '[section]' or a comment)",
                        path, rc);
    if (r.failed) return MTL_ERR;
    if (rc != 0) return mtl_fail(err, path, "cannot parse (inih error %d)", rc);
    return MTL_OK;
}

int mtl_ini_fail(const mtl_ini_entry *e, mtl_error *err, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mtl_fail(err, NULL, "%s:%d: %s: %s", e->path, e->line, e->key, what);
}
