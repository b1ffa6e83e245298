/* cache/aws.h: the upstream clients: Secrets Manager GetSecretValue and SSM GetParameter.
 *
 * Wire: AWS JSON 1.1 (POST /, X-Amz-Target, Content-Type application/x-amz-json-1.1), signed with
 * SigV4 (cache/sigv4.h) including x-amz-security-token, over libcurl with kept-alive connections:
 * a pool of at most max_connections easy handles per service, reused across calls and threads
 * (a caller waits for a free handle; it is never refused).  Bounded retries with jittered
 * exponential backoff on throttling, 5xx and transport errors.  Response bodies have a ceiling.
 *
 * Results are data (struct upstream_result, cache/upstream.h): what happened, what AWS said,
 * and on success the answer reshaped.  What a caller is told for each outcome is not decided
 * here.  How a call ends:
 *   2xx with a readable answer       UP_OK, body set
 *   AWS error (4xx, not a throttle)  UP_AWS_ERROR, never retried; its status, code and message
 *   5xx or an internal-fault code after the last attempt   UP_AWS_ERROR, the last answer's
 *                                    status, code (may be "") and message
 *   still throttled after retries    UP_THROTTLED
 *   the whole call's budget ran out, or every attempt timed out   UP_TIMEOUT
 *   unreachable, connection reset, TLS failure   UP_UNREACHABLE
 *   oversized (max_response_bytes), unreadable or an unexpected status   UP_BAD_ANSWER, never
 *                                    retried
 *   request invalid (no id, too large)   UP_BAD_REQUEST, nothing sent
 *   request not signable (bad config)    UP_UNSIGNABLE, nothing sent
 *   abandoned by aws_client_stop     UP_ABANDONED
 * A failure's message is never empty; attempts counts the requests sent.
 * Retried: throttles (ThrottlingException, Throttling, TooManyRequestsException,
 * RequestLimitExceeded, TooManyUpdates, ... or HTTP 429), 5xx and internal-error types,
 * RequestTimeout, and transport errors (connect, reset, nothing received, per-attempt timeout).
 * Backoff: full jitter, uniform in [0, backoff_base_ms * 2^(attempt-1)], capped at 2 s, and never
 * past the call's budget (then the last error is returned).  Every attempt is recorded in *facts
 * (calls, ncalls); nothing else in facts is touched.
 * Timeouts: *_timeout_ms bounds the whole call, waiting for a pooled handle and backoff included;
 * 0 means no overall bound, but a connect timeout (3 s) and a stall limit (an answer arriving
 * slower than 1 KiB/s for 10 s, a drip as much as silence) still apply to every attempt.
 * Selectors: SSM version and label are appended to the name (":3", ":label"); if both are given
 * the version wins.
 *
 * Ownership: aws_client_new copies the config.  Secrets (keys, token, bodies) are wiped on free.
 * Thread-safety: aws_get_* are thread-safe; new/free are not.  libcurl is the only HTTP client
 * library here and this module is its only user in cache/.  curl_global_init is the caller's job
 * (main, before threads).
 */
#ifndef STASH_CACHE_AWS_H
#define STASH_CACHE_AWS_H

#include <stddef.h>

#include "cache/upstream.h"
#include "common/facts.h"

struct aws_config {
    const char *region;
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* may be NULL */
    const char *sm_endpoint;   /* base URL; NULL: https://secretsmanager.<region>.amazonaws.com */
    const char *ssm_endpoint;  /* NULL: https://ssm.<region>.amazonaws.com */
    const char *ca_bundle;     /* AWS_CA_BUNDLE, may be NULL */
    long sm_timeout_ms;        /* whole call including retries; 0: none */
    long ssm_timeout_ms;
    unsigned max_connections;  /* per service, >= 1 */
    unsigned max_attempts;     /* >= 1, retries included (0 counts as 1) */
    size_t max_response_bytes; /* ceiling on one upstream body; 0: 1 MiB */
    /* Added with the implementation: the first retry's jitter window; 0: 50 ms.  Tests make it
     * small; the product keeps the default. */
    unsigned backoff_base_ms;
};

struct aws_client;

struct aws_sm_request {
    const char *secret_id;
    const char *version_id;    /* NULL if absent */
    const char *version_stage; /* NULL if absent */
};

struct aws_ssm_request {
    const char *name;
    const char *version; /* NULL if absent; the selector is appended to the name (":3") */
    const char *label;   /* NULL if absent */
    int with_decryption;
};

/* NULL (and a log line naming the field) if cfg lacks the region or credentials or an endpoint
 * is not an http(s) URL without query. */
struct aws_client *aws_client_new(const struct aws_config *cfg);
void aws_client_free(struct aws_client *c);

/* Fills *out (reset first; release it with upstream_result_release). */
void aws_get_secret_value(struct aws_client *c, const struct aws_sm_request *req,
                          struct upstream_result *out, struct facts *facts);
void aws_get_parameter(struct aws_client *c, const struct aws_ssm_request *req,
                       struct upstream_result *out, struct facts *facts);

/* Shutdown: every call in flight ends now (a silent upstream is not waited for: its socket is
 * shut down, a backoff or a wait for a handle is cut short) and every later call fails at once,
 * without a request, with UP_ABANDONED; a call that already had its answer keeps it.
 * Calls return within milliseconds; the client stays valid until aws_client_free.  Thread-safe;
 * idempotent.  Lambda's SHUTDOWN and the agent's SIGTERM call it before stopping the local API,
 * whose stop waits for the requests in flight. */
void aws_client_stop(struct aws_client *c);

#endif
