/* common/facts.h: what one local request did, as the cache and the upstream clients report it.
 *
 * Facts flow one way: cache/ and the upstream clients fill a struct facts for each local request
 * (never a value, only what happened and how long it took); extension/ hands it to the telemetry
 * ledger; the EMF writer reads the ledger.  A struct facts is a plain value: copy it freely.
 * It never holds a secret.  `name` is the secret id or parameter name, which the ledger keeps only
 * when the user turns on the per-key dimension.
 */
#ifndef STASH_COMMON_FACTS_H
#define STASH_COMMON_FACTS_H

#include <stdint.h>

enum facts_service {
    FACTS_SVC_NONE = 0, /* not routed to a service (ping, bad request) */
    FACTS_SVC_SECRETS_MANAGER,
    FACTS_SVC_SSM,
};

enum facts_outcome {
    FACTS_LOCAL = 0, /* answered without the cache: bad request, token, ping, 404 */
    FACTS_HIT,       /* fresh value from the cache */
    FACTS_MISS,      /* this request led the upstream fetch */
    FACTS_WAITED,    /* joined another request's in-flight fetch (single-flight follower) */
    FACTS_STALE,     /* expired value served because the refresh failed transiently */
    FACTS_BYPASS, /* cache off or TTL 0: fetched without keeping the result (refreshNow is a MISS)
                   */
    FACTS_AHEAD,  /* not a local request: a background refresh-ahead, reported for its upstream
                   * calls only (the hit that started it counts it in `refreshes`) */
};

/* Whose work the facts record.  The tag is set by whoever starts the work, when it starts it, so
 * that the attribution does not depend on when the work ends. */
enum facts_phase {
    FACTS_PHASE_REQUEST = 0, /* a caller's request: by request_id, else the current invocation */
    FACTS_PHASE_INIT,        /* the environment's init work (prefetch): always the init record */
};

#define FACTS_MAX_CALLS 8 /* upstream attempts recorded per request (retries included) */
#define FACTS_NAME_MAX  256

struct facts_call {
    double ms;         /* wall time of the attempt, request sent to body read */
    int http_status;   /* upstream status; 0 if no answer (timeout, connect failure) */
    uint8_t throttled; /* ThrottlingException / 429 / TooManyUpdates */
    uint8_t error;     /* anything but 2xx, including throttles and transport failures */
};

struct facts {
    enum facts_service service;
    enum facts_outcome outcome;
    enum facts_phase phase;
    int status;               /* HTTP status given to the local caller */
    double latency_ms;        /* local request, first byte in to response queued */
    unsigned ncalls;          /* upstream attempts made by this request */
    unsigned ncalls_recorded; /* min(ncalls, FACTS_MAX_CALLS) */
    unsigned refreshes;       /* background refreshes this request started (refresh-ahead) */
    struct facts_call calls[FACTS_MAX_CALLS];
    char request_id[64];       /* from the optional X-Stash-Request-Id header, or "" */
    char name[FACTS_NAME_MAX]; /* secret id / parameter name, or "" */
};

#endif
