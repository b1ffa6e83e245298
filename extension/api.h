/* extension/api.h: the local HTTP API on 127.0.0.1 and ::1 (libmicrohttpd).
 *
 * Routes (compatible with AWS's Parameters and Secrets extension and the Secrets Manager Agent):
 *   GET /secretsmanager/get?secretId=ID[&versionId=V|&versionStage=S][&refreshNow=true]
 *   GET /systemsmanager/parameters/get[/]?name=N[&version=V|&label=L][&withDecryption=true]
 *       [&refreshNow=true]      (if both version and label are sent the first one wins, as AWS)
 *   GET /v1/ID[?versionId=V|versionStage=S][&refreshNow=true]   (the agent's path style)
 * stash's own shaping parameters (extension/shape.h), not in AWS's extension: secrets take
 * raw=true or jsonKey=K (not both; K not empty), parameters raw=true[&split=true]; raw and split
 * take the refreshNow grammar; any other combination is 400 ValidationException.
 *   GET /ping -> 200 "healthy" (no token)
 * Every other route needs X-Aws-Parameters-Secrets-Token or X-Vault-Token (header names are
 * case-insensitive) equal to the configured token, compared in constant time; otherwise 401
 * text/plain "bad session token or header key" with x-amzn-errortype: AccessDeniedException.
 * Checks run in this order: request size (413), X-Forwarded-For (400), method (405), /ping,
 * token (401), an encoded NUL byte anywhere in the path or query (400: decoding would cut the
 * name short and serve another secret), path (404), parameters (400).  Unknown query parameters are
 * ignored, as AWS's extension does (the agent rejects them).  Errors are JSON {"__type":...,
 * "message":...}.
 *
 * api_route() is the whole of routing and validation as a pure function, so it is unit-tested and
 * fuzzed without a server.  The server (api_start) is libmicrohttpd's epoll thread pool (2 to 4
 * threads per address, one per CPU): a hit is answered on the pool thread that read it; a request
 * that must wait (a miss, refreshNow, a flight for the same key) is suspended and fetched on a
 * fetch thread (started on demand, at most 128), so no pool thread ever waits on upstream.
 * With refresh_ahead, a hit that claims its entry's refresh-ahead (cache.h: the last tenth of the
 * TTL) is answered at once and the refresh is queued to a fetch thread; its upstream calls are
 * reported as facts of their own (FACTS_AHEAD, same request id), and the hit counts it in
 * facts.refreshes.
 * Values come from the cache (cache/cache.h), misses from the upstream client (cache/aws.h),
 * whose results become local statuses and bodies as extension/answer.h says.
 * Each request yields one struct facts handed to on_facts, if set.
 * Slow and idle clients: a request head must be complete 10 s after its request line, and a
 * connection must send a request line within 60 s of opening or of its last answer; otherwise
 * it is closed.  Connections beyond max_inbound (both addresses together) get 429
 * TooManyRequestsException with Retry-After: 1 and are closed, except /ping (200); the soft
 * RLIMIT_NOFILE is raised to the hard one at start and max_inbound is lowered (with a WARN) to
 * what it allows.
 *
 * Ownership: api_route's result points into the request it was given.  api_start borrows the
 * cache, the client and the token (they must outlive api_stop).  Response bodies that may carry
 * a secret are wiped when the server frees them: a cached value is handed to the server by
 * reference, without a copy, and the server's release of the last reference wipes it.
 * Thread-safety: api_route is reentrant.  on_facts is called from pool and fetch threads,
 * concurrently.  api_start/api_stop are called from one thread; api_stop stops accepting, waits
 * (500 ms at most) for every request in flight to send its answer, then ends every thread.
 */
#ifndef STASH_EXTENSION_API_H
#define STASH_EXTENSION_API_H

#include <stddef.h>
#include <stdint.h>

#include "cache/aws.h"
#include "cache/cache.h"
#include "common/err.h"
#include "common/facts.h"
#include "extension/shape.h"

#define API_MAX_URL_BYTES    8192  /* path plus query arguments; over it: 413 */
#define API_MAX_HEADER_BYTES 16384 /* all header names and values; over it: 413 */
#define API_MAX_ARGS         64    /* query arguments; over it: 413 */
#define API_MAX_HEADERS      64    /* header lines; over it: 413 */
#define API_MAX_ID_BYTES     2048  /* secretId / name, as AWS's own limit; over it: 400 */
#define API_MESSAGE_MAX      256

#define API_TOKEN_BODY       "bad session token or header key"

struct api_kv {
    const char *key;
    const char *value; /* NULL when the argument had no '=' */
};

/* One request as the server received it; strings are NUL-terminated and already URL-decoded. */
struct api_request {
    const char *method;
    const char *path;          /* without the query */
    const struct api_kv *args; /* query arguments, in the order sent */
    size_t nargs;
    const struct api_kv *headers;
    size_t nheaders;
    size_t url_bytes;    /* path plus every argument's key and value */
    size_t header_bytes; /* every header's key and value */
    int too_many;        /* the server saw more than API_MAX_ARGS or API_MAX_HEADERS */
    int nul_byte;        /* the path or a query argument decoded to a NUL byte (%00) */
};

enum api_route_kind {
    API_ROUTE_ERROR = 0, /* answer status/error_type/message locally */
    API_ROUTE_PING,
    API_ROUTE_SECRET,
    API_ROUTE_PARAMETER,
    API_ROUTE_SECRET_BATCH,    /* /secretsmanager/batch: ids[0..nids) */
    API_ROUTE_PARAMETER_BATCH, /* /systemsmanager/parameters/batch: ids[0..nids) */
};

#define API_BATCH_MAX            20 /* secrets in one batch: BatchGetSecretValue's limit */
#define API_BATCH_MAX_PARAMETERS 10 /* parameters in one batch: GetParameters' limit */

struct api_route {
    enum api_route_kind kind;
    int status;             /* API_ROUTE_ERROR: the HTTP status */
    const char *error_type; /* API_ROUTE_ERROR: __type; NULL for 401 (text/plain body) */
    char message[API_MESSAGE_MAX];
    const char *id;            /* secretId or parameter name */
    const char *version_id;    /* secret: NULL if absent */
    const char *version_stage; /* secret: NULL if absent */
    const char *version;       /* parameter: NULL if absent */
    const char *label;         /* parameter: NULL if absent */
    int with_decryption;       /* parameter */
    int refresh;               /* refreshNow=true */
    const char *request_id;    /* X-Stash-Request-Id, or NULL */
    struct shape_req shape;    /* raw, jsonKey, split (extension/shape.h); not in the cache key */
    const char *ids[API_BATCH_MAX]; /* batch: the ids asked for, each once, in the order sent */
    size_t nids;
};

/* Routes and validates one request against the token (token_len bytes).  Never fails: the
 * outcome is in out->kind (and out->status for errors). */
void api_route(const struct api_request *req, const char *token, size_t token_len,
               struct api_route *out);

/* Renders an error route's JSON body into out (outlen bytes); returns its length. */
size_t api_error_json(const char *type, const char *message, char *out, size_t outlen);

#define API_KEY_MAX (API_MAX_URL_BYTES + 16) /* room for any key api_cache_key builds */

/* Builds the cache key of a routed secret or parameter (service, id, selector, decryption) into
 * out; returns its length, or 0 if it does not fit. */
size_t api_cache_key(const struct api_route *r, char *out, size_t outlen);

typedef void (*api_facts_fn)(void *ctx, const struct facts *f);

struct api_opts {
    uint16_t port;
    unsigned max_inbound; /* connections at once, both listening addresses together */
    const char *token;    /* borrowed */
    size_t token_len;
    struct cache *cache;    /* borrowed */
    struct aws_client *aws; /* borrowed */
    uint64_t sm_ttl_ms;     /* 0: bypass the cache for secrets */
    uint64_t ssm_ttl_ms;    /* 0: bypass the cache for parameters */
    int cache_enabled;      /* 0: bypass the cache */
    int refresh_ahead;      /* a hit late in its TTL refreshes the value in the background */
    api_facts_fn on_facts;  /* may be NULL */
    void *facts_ctx;
};

struct api;

/* Starts serving on 127.0.0.1:port (required: STASH_EIO if it cannot bind) and [::1]:port (if
 * the host has IPv6 loopback).  Returns STASH_OK and *out, or an error and *out NULL. */
enum stash_err api_start(const struct api_opts *opts, struct api **out);

/* Fetches a routed secret or parameter (API_ROUTE_SECRET or API_ROUTE_PARAMETER) upstream, with
 * no cache, into the local answer (extension/answer.h); its calls are counted in facts.  Blocks
 * for upstream.  The cache's fill for a request, and a batch's single-call fallback. */
void api_upstream(const struct api_opts *o, const struct api_route *r, struct facts *facts,
                  struct cache_value *out);

/* Gets a routed secret or parameter (API_ROUTE_SECRET or API_ROUTE_PARAMETER) through the cache
 * as a request does: the route's key, the service's TTL, bypass when the cache is off, refresh
 * for refreshNow, and flags in extra (CACHE_PEEK: only a fresh value, out->blob NULL when there
 * is none).  Fills facts' service, name and outcome.  Blocks for upstream unless CACHE_PEEK. */
void api_fetch(const struct api_opts *o, const struct api_route *r, struct facts *facts,
               struct cache_ref *out, unsigned extra);

/* Stops listening, lets in-flight requests send their answers (500 ms at most), frees.  Accepts
 * NULL. */
void api_stop(struct api *a);

#endif
