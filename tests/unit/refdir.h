/* tests/unit/refdir.h: where the test data is (tests/data/ of this repository), for tests that
 * read it.
 *
 * The folder is $STASH_ROOT/tests/data (tests/run.sh exports STASH_ROOT, the repository root), or
 * tests/data from the working directory when STASH_ROOT is unset.  Returns 0 and fills out if the
 * directory exists, -1 if not (the caller fails the test: missing data is not a pass).
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
    struct stat st;
    int n;

    n = snprintf(out, cap, "%s/tests/data", root && *root ? root : ".");
    if (n < 0 || (size_t)n >= cap) {
        return -1;
    }
    return stat(out, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
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
