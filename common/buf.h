/* common/buf.h: a growable byte buffer with a ceiling.
 *
 * Every buffer filled from the network is a struct buf with max set: appending past max fails
 * with STASH_ETOOBIG and leaves the buffer as it was.  data is NULL until the first append, and
 * NUL-terminated after it (the NUL is not counted in len, nor against max).
 * The buffer remembers the first append that failed (err), so a writer may append a whole
 * document without checking each step and ask buf_error() once at the end, as git's strbuf and
 * curl's dynbuf users do; a document whose buf_error() is not STASH_OK is incomplete, never used.
 * Ownership: the buf owns data; buf_detach() hands it to the caller.  buf_release_secret() wipes
 * the whole allocation before freeing it (use it for anything that carried a secret).
 * Thread-safety: none; a buf belongs to one thread at a time.
 */
#ifndef STASH_COMMON_BUF_H
#define STASH_COMMON_BUF_H

#include <stddef.h>

#include "common/err.h"

struct buf {
    char *data; /* NULL or NUL-terminated */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling on len; 0 means no ceiling (only for buffers we fill ourselves) */
    enum stash_err err; /* the first failed append's error, STASH_OK if none */
};

#define BUF_INIT(maxlen)               \
    {                                  \
        NULL, 0, 0, (maxlen), STASH_OK \
    }

void buf_init(struct buf *b, size_t max);
enum stash_err buf_append(struct buf *b, const void *p, size_t n);
enum stash_err buf_puts(struct buf *b, const char *s);
enum stash_err buf_putc(struct buf *b, char c);
enum stash_err buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (no quotes), escaping as RFC 8259 requires. */
enum stash_err buf_put_json_escaped(struct buf *b, const char *s, size_t n);
/* Appends the JSON error document AWS's APIs and the local API answer with:
 * {"__type":type,"message":message}, both escaped (NULL counts as ""). */
enum stash_err buf_put_json_error(struct buf *b, const char *type, const char *message);
/* Records rc as the buffer's error unless it has one already, and returns rc: for a writer that
 * finds its own input unusable halfway through a document. */
enum stash_err buf_fail(struct buf *b, enum stash_err rc);
/* The first error of any append since the buffer was initialised, reset or detached. */
static inline enum stash_err buf_error(const struct buf *b)
{
    return b->err;
}
/* Empties the buffer, keeping the allocation (wiping what it held), and forgets its error. */
void buf_reset(struct buf *b);
void buf_release(struct buf *b);
void buf_release_secret(struct buf *b);
/* Returns data (never NULL: an empty string if nothing was appended) and its length; the caller
 * frees it.  The buf is left empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
