#include "common/err.h"

const char *stash_strerror(enum stash_err err)
{
    switch (err) {
    case STASH_OK:
        return "ok";
    case STASH_EINVAL:
        return "invalid argument";
    case STASH_ETOOBIG:
        return "too big";
    case STASH_ENOTFOUND:
        return "not found";
    case STASH_EPARSE:
        return "parse error";
    case STASH_EUPSTREAM:
        return "upstream error";
    case STASH_ETIMEOUT:
        return "timed out";
    case STASH_EUNREACHABLE:
        return "upstream unreachable";
    case STASH_ETHROTTLED:
        return "throttled";
    case STASH_EIO:
        return "i/o error";
    case STASH_ESTATE:
        return "wrong state";
    }
    return "unknown error";
}
