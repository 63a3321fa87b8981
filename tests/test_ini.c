/* The config-file dialect both tools read (include/mtl/ini.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "mtl/ini.h"
#include "test_util.h"

/* What the handler saw. */
typedef struct {
    int n;
    struct {
        char section[32], key[32], value[200];
        int line, continued;
    } e[32];
    const char *fail_key; /* the handler fails on this key */
} seen;

static int record(void *user, const mtl_ini_entry *e, mtl_error *err) {
    seen *s = user;
    if (s->fail_key && strcmp(e->key, s->fail_key) == 0)
        return mtl_ini_fail(e, err, "'%s' is not allowed", e->value);
    assert_true(s->n < 32);
    snprintf(s->e[s->n].section, sizeof s->e[0].section, "%s", e->section);
    snprintf(s->e[s->n].key, sizeof s->e[0].key, "%s", e->key);
    snprintf(s->e[s->n].value, sizeof s->e[0].value, "%s", e->value);
    s->e[s->n].line = e->line;
    s->e[s->n].continued = e->continued;
    s->n++;
    return MTL_OK;
}

static const char *write_ini(const char *name, const char *text) {
    static char path[512];
    mkdir(MTL_TEST_TMP, 0777);
    snprintf(path, sizeof path, "%s/%s", MTL_TEST_TMP, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void assert_entry(const seen *s, int i, const char *section, const char *key,
                         const char *value, int line, int continued) {
    assert_true(i < s->n);
    assert_string_equal(s->e[i].section, section);
    assert_string_equal(s->e[i].key, key);
    assert_string_equal(s->e[i].value, value);
    assert_int_equal(s->e[i].line, line);
    assert_int_equal(s->e[i].continued, continued);
}

static void test_dialect(void **state) {
    (void)state;
    const char *path = write_ini("dialect.ini", "; comment\n"               /* 1 */
                                                "# comment too\n"           /* 2 */
                                                "[columns]\n"               /* 3 */
                                                "names = a, b,\n"           /* 4 */
                                                "    c, d\n"                /* 5 */
                                                "\n"                        /* 6 */
                                                "  ; an indented comment\n" /* 7 */
                                                "    e\n"                   /* 8 */
                                                "  ignore = x   # inline\n" /* 9 */
                                                "[train]\n"                 /* 10 */
                                                "  lr = 0.1 ; inline\n"     /* 11 */
                                                "  epochs=3\n"              /* 12 */
                                                "sep = a#b;c\n"             /* 13 */
                                                "[task.t]\n"                /* 14 */
                                                "    column = y\n");        /* 15 */
    seen s = {0};
    mtl_error err;
    assert_int_equal(mtl_ini_read(path, record, &s, &err), MTL_OK);
    assert_int_equal(s.n, 8);
    assert_entry(&s, 0, "columns", "names", "a, b,", 4, 0);
    /* indented lines without '=' continue the key above, past blank and comment lines */
    assert_entry(&s, 1, "columns", "names", "c, d", 5, 1);
    assert_entry(&s, 2, "columns", "names", "e", 8, 1);
    /* indented lines with '=' are keys; inline comments after a blank are cut */
    assert_entry(&s, 3, "columns", "ignore", "x", 9, 0);
    assert_entry(&s, 4, "train", "lr", "0.1", 11, 0);
    assert_entry(&s, 5, "train", "epochs", "3", 12, 0);
    /* '#' and ';' inside a value are the value's */
    assert_entry(&s, 6, "train", "sep", "a#b;c", 13, 0);
    assert_entry(&s, 7, "task.t", "column", "y", 15, 0);
}

static void test_errors(void **state) {
    (void)state;
    mtl_error err;
    seen s = {0};
    /* a line that is neither a key, a section nor a comment */
    const char *p = write_ini("syntax.ini", "[train]\nepochs = 3\nno equals sign here\n");
    assert_int_equal(mtl_ini_read(p, record, &s, &err), MTL_ERR);
    assert_msg(&err, "syntax.ini:3: syntax error");
    /* the handler's error names file, line and key, and stops the reading */
    memset(&s, 0, sizeof s);
    s.fail_key = "lr";
    p = write_ini("handler.ini", "[train]\nepochs = 3\nlr = -1\nbatch_size = 2\n");
    assert_int_equal(mtl_ini_read(p, record, &s, &err), MTL_ERR);
    assert_msg(&err, "handler.ini:3: lr: '-1' is not allowed");
    assert_int_equal(s.n, 1); /* epochs only */
    /* a line inih would cut in two is refused, not misread */
    char text[2048] = "[columns]\nnames = a";
    for (int i = 0; i < 200; i++) strcat(text, ", c");
    strcat(text, "\n");
    p = write_ini("long.ini", text);
    memset(&s, 0, sizeof s);
    assert_int_equal(mtl_ini_read(p, record, &s, &err), MTL_ERR);
    assert_msg(&err, "long.ini:2: line is too long");
    assert_int_equal(s.n, 0);
    /* files that cannot be read */
    assert_int_equal(mtl_ini_read(MTL_TEST_TMP "/no_such.ini", record, &s, &err), MTL_ERR);
    assert_msg(&err, "no_such.ini: cannot open: No such file or directory");
    assert_int_equal(mtl_ini_read(MTL_TEST_TMP, record, &s, &err), MTL_ERR);
    assert_msg(&err, "cannot read: Is a directory");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialect),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
