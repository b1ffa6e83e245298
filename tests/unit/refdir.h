/* tests/unit/refdir.h: where the read-only reference material lives, for tests that read it.
 *
 * Order: $STASH_ROOT/../shared/reference (the main checkout next to shared/), then
 * $STASH_SHARED/reference, then /work/shared/reference.  Returns 0 and fills out if the directory
 * exists, -1 if none does (the caller fails the test: missing references are not a pass).
 * Also holds a small whole-file reader.  Header-only (static) so each test binary stays one file.
 */
#ifndef STASH_TESTS_REFDIR_H
#define STASH_TESTS_REFDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static inline int refdir_find(char *out, size_t cap)
{
    const char *root = getenv("STASH_ROOT");
    const char *shared = getenv("STASH_SHARED");
    struct stat st;

    if (root && *root) {
        snprintf(out, cap, "%s/../shared/reference", root);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
            return 0;
        }
    }
    if (shared && *shared) {
        snprintf(out, cap, "%s/reference", shared);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
            return 0;
        }
    }
    snprintf(out, cap, "/work/shared/reference");
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 0;
    }
    return -1;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL on failure. */
static inline char *refdir_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) {
        data[n] = '\0';
        *len = (size_t)n;
    }
    return data;
}

#endif
