/* common/err.h: the project's error codes.
 *
 * Contract: every fallible function returns enum stash_err by value (STASH_OK is 0), never a
 * thread-local code.  Out-parameters are reset on entry.  stash_strerror() returns a static string
 * and is thread-safe.
 */
#ifndef STASH_COMMON_ERR_H
#define STASH_COMMON_ERR_H

enum stash_err {
    STASH_OK = 0,
    STASH_EINVAL,       /* bad input from a caller or a peer */
    STASH_ETOOBIG,      /* a ceiling on a buffer was reached */
    STASH_ENOTFOUND,    /* no such thing */
    STASH_EPARSE,       /* malformed document */
    STASH_EUPSTREAM,    /* the upstream answered with an error */
    STASH_ETIMEOUT,     /* a deadline passed */
    STASH_EUNREACHABLE, /* could not connect or the connection broke */
    STASH_ETHROTTLED,   /* the upstream throttled us after every retry */
    STASH_EIO,          /* a local system call failed */
    STASH_ESTATE,       /* called in the wrong state (already started, shut down) */
};

const char *stash_strerror(enum stash_err err);

#endif
