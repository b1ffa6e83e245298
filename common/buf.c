#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = STASH_OK;
}

/* Every failed append ends here: the buffer keeps its first error (see buf_error()). */
enum stash_err buf_fail(struct buf *b, enum stash_err rc)
{
    if (b->err == STASH_OK) {
        b->err = rc;
    }
    return rc;
}

static enum stash_err buf_grow(struct buf *b, size_t n)
{
    size_t need;
    size_t cap;
    char *p;

    if (n > (size_t)-1 - b->len - 1) {
        return STASH_ETOOBIG;
    }
    if (b->max && b->len + n > b->max) {
        return STASH_ETOOBIG;
    }
    need = b->len + n + 1;
    if (need <= b->cap) {
        return STASH_OK;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    }
    /* Grow by copy so the old block can be wiped: it may hold a secret. */
    p = xmalloc(cap);
    if (b->data) {
        memcpy(p, b->data, b->len + 1);
        xfree_secret(b->data, b->cap);
    }
    b->data = p;
    b->cap = cap;
    return STASH_OK;
}

enum stash_err buf_append(struct buf *b, const void *p, size_t n)
{
    enum stash_err rc = buf_grow(b, n);

    if (rc) {
        return buf_fail(b, rc);
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return STASH_OK;
}

enum stash_err buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum stash_err buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

enum stash_err buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum stash_err rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return buf_fail(b, STASH_EINVAL);
    }
    rc = buf_grow(b, (size_t)n);
    if (rc) {
        return buf_fail(b, rc);
    }
    va_start(ap, fmt);
    /* Same format, same arguments: the length cannot differ unless the output is broken. */
    if (vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap) != n) {
        va_end(ap);
        b->data[b->len] = '\0';
        return buf_fail(b, STASH_EINVAL);
    }
    va_end(ap);
    b->len += (size_t)n;
    return STASH_OK;
}

enum stash_err buf_put_json_escaped(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    size_t run = 0;
    enum stash_err rc = STASH_OK;

    for (i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        char letter = 0; /* the two-character escape's letter, if it has one */
        size_t elen = 0;

        if (c == '"' || c == '\\') {
            letter = (char)c;
        } else if (c == '\n') {
            letter = 'n';
        } else if (c == '\r') {
            letter = 'r';
        } else if (c == '\t') {
            letter = 't';
        }
        if (letter) {
            esc[0] = '\\';
            esc[1] = letter;
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (elen) {
            rc = buf_append(b, s + i - run, run);
            if (!rc) {
                rc = buf_append(b, esc, elen);
            }
            run = 0;
        } else {
            run++;
        }
    }
    if (!rc) {
        rc = buf_append(b, s + n - run, run);
    }
    return rc;
}

void buf_reset(struct buf *b)
{
    if (b->data) {
        mem_wipe(b->data, b->len);
        b->data[0] = '\0';
    }
    b->len = 0;
    b->err = STASH_OK;
}

void buf_release(struct buf *b)
{
    free(b->data);
    buf_init(b, b->max);
}

void buf_release_secret(struct buf *b)
{
    xfree_secret(b->data, b->cap);
    buf_init(b, b->max);
}

enum stash_err buf_put_json_error(struct buf *b, const char *type, const char *message)
{
    const char *t = type ? type : "";
    const char *m = message ? message : "";

    (void)buf_puts(b, "{\"__type\":\"");
    (void)buf_put_json_escaped(b, t, strlen(t));
    (void)buf_puts(b, "\",\"message\":\"");
    (void)buf_put_json_escaped(b, m, strlen(m));
    (void)buf_puts(b, "\"}");
    return buf_error(b);
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data ? b->data : xstrdup("");

    if (len) {
        *len = b->len;
    }
    buf_init(b, b->max);
    return p;
}
