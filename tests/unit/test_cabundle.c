/* Unit tests for cache/cabundle: which CA bundle the upstream client is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cabundle.h"

struct dir {
    char root[64];
    char a[128], b[128], c[128], empty[128], sub[128], missing[128];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    strcpy(d->root, "/tmp/stash-cabundle-XXXXXX");
    assert_non_null(mkdtemp(d->root));
    (void)snprintf(d->a, sizeof(d->a), "%s/a.pem", d->root);
    (void)snprintf(d->b, sizeof(d->b), "%s/b.pem", d->root);
    (void)snprintf(d->c, sizeof(d->c), "%s/c.pem", d->root);
    (void)snprintf(d->empty, sizeof(d->empty), "%s/empty.pem", d->root);
    (void)snprintf(d->sub, sizeof(d->sub), "%s/dir.pem", d->root);
    (void)snprintf(d->missing, sizeof(d->missing), "%s/missing.pem", d->root);
    write_file(d->a, "-----BEGIN CERTIFICATE-----\n");
    write_file(d->b, "-----BEGIN CERTIFICATE-----\n");
    write_file(d->c, "-----BEGIN CERTIFICATE-----\n");
    write_file(d->empty, "");
    assert_int_equal(mkdir(d->sub, 0755), 0);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    (void)unlink(d->a);
    (void)unlink(d->b);
    (void)unlink(d->c);
    (void)unlink(d->empty);
    (void)rmdir(d->sub);
    (void)rmdir(d->root);
    free(d);
    return 0;
}

static void expect_path(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* AWS_CA_BUNDLE wins over SSL_CERT_FILE, which wins over every fixed path. */
static void test_order(void **state)
{
    struct dir *d = *state;
    const char *fixed[] = {d->c, NULL};

    expect_path(ca_bundle_find(d->a, d->b, fixed), d->a);
    expect_path(ca_bundle_find(NULL, d->b, fixed), d->b);
    expect_path(ca_bundle_find("", d->b, fixed), d->b);
    expect_path(ca_bundle_find(NULL, "", fixed), d->c);
    expect_path(ca_bundle_find(NULL, NULL, fixed), d->c);
}

/* A variable naming something unusable is skipped: missing, empty, or a folder. */
static void test_unreadable_skipped(void **state)
{
    struct dir *d = *state;
    const char *fixed[] = {d->missing, d->empty, d->sub, d->c, NULL};

    expect_path(ca_bundle_find(d->missing, d->b, fixed), d->b);
    expect_path(ca_bundle_find(d->sub, d->empty, fixed), d->c);
}

/* The fixed list is walked in order; the first readable entry is taken. */
static void test_fixed_order(void **state)
{
    struct dir *d = *state;
    const char *fixed[] = {d->missing, d->b, d->a, NULL};

    expect_path(ca_bundle_find(NULL, NULL, fixed), d->b);
}

static void test_none(void **state)
{
    struct dir *d = *state;
    const char *fixed[] = {d->missing, d->empty, d->sub, NULL};

    assert_null(ca_bundle_find(d->missing, NULL, fixed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
