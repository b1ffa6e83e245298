/* common/mem.h: allocation that never returns NULL, and wiping of secrets.
 *
 * Contract: x*alloc abort the process with a message on out-of-memory (a daemon that silently
 * drops data is worse than one that restarts).  Whoever allocates frees.  mem_wipe() cannot be
 * optimised away (OPENSSL_cleanse); xfree_secret() wipes len bytes, then frees; both accept NULL.
 * mem_init() points cJSON's allocator at ours; call it once in main() before any thread starts.
 * Thread-safety: all functions are thread-safe except mem_init().
 */
#ifndef STASH_COMMON_MEM_H
#define STASH_COMMON_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Copy of the n bytes at p, with a NUL after them. */
void *xmemdup(const void *p, size_t n);

void mem_wipe(void *p, size_t len);
void xfree_secret(void *p, size_t len);
/* Constant-time equality of two byte strings; different lengths compare unequal (the length
 * itself is not secret here: tokens are fixed-format). */
int mem_equal_ct(const void *a, size_t alen, const void *b, size_t blen);

void mem_init(void);

#endif
