/* tests/unit/support_shared.h: where the read-only reference data (shared/reference/) is.
 *
 * Header-only test helper.  Looks, in order, at $STASH_SHARED (either the shared/ folder or its
 * reference/ folder), $STASH_ROOT/../shared/reference (CI clones the repo with shared/ beside
 * it; tests/run.sh exports STASH_ROOT), ../shared/reference from the working directory, and
 * /work/shared/reference.  Returns 0 and the folder in out when `sub` (e.g. "sigv4-suite")
 * exists in one of them, -1 otherwise: a test that needs the data must then FAIL, not skip.
 */
#ifndef STASH_TESTS_SUPPORT_SHARED_H
#define STASH_TESTS_SUPPORT_SHARED_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int support_is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* out receives "<reference dir>/<sub>". */
static inline int support_shared_dir(const char *sub, char *out, size_t outlen)
{
    const char *env_shared = getenv("STASH_SHARED");
    const char *env_root = getenv("STASH_ROOT");
    char cand[4][1024];
    int n = 0;
    int i;

    if (env_shared && *env_shared) {
        snprintf(cand[n++], sizeof(cand[0]), "%s/reference", env_shared);
        snprintf(cand[n++], sizeof(cand[0]), "%s", env_shared);
    }
    if (env_root && *env_root) {
        snprintf(cand[n++], sizeof(cand[0]), "%s/../shared/reference", env_root);
    }
    snprintf(cand[n++], sizeof(cand[0]), "%s", "/work/shared/reference");
    for (i = 0; i < n; i++) {
        if (snprintf(out, outlen, "%s/%s", cand[i], sub) < (int)outlen && support_is_dir(out)) {
            return 0;
        }
    }
    /* Last resort: relative to where the test runs (the repo root under tests/run.sh). */
    if (snprintf(out, outlen, "../shared/reference/%s", sub) < (int)outlen && support_is_dir(out)) {
        return 0;
    }
    return -1;
}

#endif
