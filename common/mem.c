#include "common/mem.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t size)
{
    char msg[96];
    int n =
        snprintf(msg, sizeof(msg), "[stash] FATAL mem: out of memory allocating %zu bytes\n", size);

    if (n > 0) {
        /* Nothing useful to do if stderr is gone too. */
        (void)!write(STDERR_FILENO, msg, (size_t)n);
    }
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p) {
        oom(size);
    }
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (!p) {
        oom(nmemb * size);
    }
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (!p) {
        oom(size);
    }
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *xmemdup(const void *p, size_t n)
{
    char *q = xmalloc(n + 1);

    if (n) {
        memcpy(q, p, n);
    }
    q[n] = '\0';
    return q;
}

void mem_wipe(void *p, size_t len)
{
    if (p && len) {
        OPENSSL_cleanse(p, len);
    }
}

void xfree_secret(void *p, size_t len)
{
    mem_wipe(p, len);
    free(p);
}

int mem_equal_ct(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, alen) == 0;
}

static void *cjson_malloc(size_t size)
{
    return xmalloc(size);
}

void mem_init(void)
{
    cJSON_Hooks hooks = {.malloc_fn = cjson_malloc, .free_fn = free};

    cJSON_InitHooks(&hooks);
}
