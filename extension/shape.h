/* extension/shape.h: shaped answers, stash's own query parameters on the local API (AWS's
 * extension has none of them).  Pure: no I/O, no lock, no log line.
 *
 * The cache stores the AWS-shaped answer (GetSecretValue's or GetParameter's JSON, see
 * cache/aws.h) once per cache key; shape_value() turns a copy of it into what the request asked
 * for, after the cache, so a shaped and a plain read of one secret share one entry and one
 * upstream call.
 *   secret, raw=true        SecretString bare (text/plain; charset=utf-8), or SecretBinary's
 *                           base64 decoded to its bytes (application/octet-stream)
 *   secret, jsonKey=K       the SecretString parsed as JSON (RFC 8259, strictly); the value of
 *                           its top-level member K (compared byte for byte after unescaping; if K
 *                           appears twice, the last one, as JSON.parse and Python's json take
 *                           it): a string bare (text/plain; charset=utf-8), anything else as the
 *                           exact JSON text the secret holds (application/json).  Errors: 404
 *                           JsonKeyNotFound (no such member); 400 SecretNotJson (binary secret,
 *                           not JSON, not an object, nested deeper than SHAPE_MAX_DEPTH)
 *   parameter, raw=true     Parameter.Value bare (text/plain; charset=utf-8)
 *   parameter, raw+split    a StringList's Value split at every comma, as a JSON array of
 *                           strings (application/json); "" gives [""] and "a,,b" ["a","","b"],
 *                           as String.prototype.split does.  400 ParameterNotStringList for any
 *                           other Type
 * Strings are UTF-8; a \u escape of a lone UTF-16 surrogate becomes U+FFFD, as JavaScript's
 * TextEncoder writes it.  A value that is not a 200 (an upstream or local error) is passed
 * through untouched, as is every value when no shaping was asked for.  A 200 whose body is not
 * the AWS shape (cannot happen: the upstream client renders it) becomes 500 InternalFailure.
 * Error messages name what is wrong, never a value or a key from the secret, nor jsonKey itself.
 *
 * Ownership: *v is in/out: on return it holds the answer to send (the old body wiped and freed
 * if it was replaced), owned by the caller as before, NUL-terminated, allocated with xmalloc
 * so that it can be wiped and freed like a cached body (xfree_secret or cache_value_release).
 * Every intermediate copy of secret bytes is wiped before it is freed.  req is borrowed.
 * Thread-safety: reentrant.
 */
#ifndef STASH_EXTENSION_SHAPE_H
#define STASH_EXTENSION_SHAPE_H

#include "cache/cache.h"

#define SHAPE_MAX_DEPTH 128 /* nesting of arrays and objects jsonKey accepts in a secret */

#define SHAPE_JSON      "application/json"
#define SHAPE_TEXT      "text/plain; charset=utf-8"
#define SHAPE_BINARY    "application/octet-stream"

enum shape_service {
    SHAPE_SECRET = 0,
    SHAPE_PARAMETER,
};

/* What a request asked for; all zero: the AWS-shaped answer as it is. */
struct shape_req {
    int raw;              /* raw=true */
    int split;            /* split=true (parameters, with raw) */
    const char *json_key; /* jsonKey (secrets, without raw); NULL if absent */
};

/* Whether req asks for any shaping. */
int shape_wanted(const struct shape_req *req);

/* Shapes *v (a cached or fetched answer for service) as req asks; returns its Content-Type (a
 * static string).  Never fails: errors become an error answer in *v. */
const char *shape_value(enum shape_service service, const struct shape_req *req,
                        struct cache_value *v);

#endif
