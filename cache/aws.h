/* cache/aws.h: the upstream clients: Secrets Manager GetSecretValue and SSM GetParameter.
 *
 * Wire: AWS JSON 1.1 (POST /, X-Amz-Target, Content-Type application/x-amz-json-1.1), signed with
 * SigV4 (cache/sigv4.h) including x-amz-security-token, over libcurl with kept-alive connections:
 * a pool of at most max_connections easy handles per service, reused across calls and threads
 * (a caller waits for a free handle; it is never refused).  Bounded retries with jittered
 * exponential backoff on throttling, 5xx and transport errors.  Response bodies have a ceiling.
 *
 * Results are what the local API answers (struct cache_value): on success status 200 and the
 * JSON in the shape AWS's Parameters and Secrets extension returns; on failure a status a program
 * can act on and {"__type":"...","message":"..."}:
 *   AWS error (4xx, not a throttle)  upstream status and type, passed through, never retried
 *                                    (type from X-Amzn-ErrorType, else __type/code in the body,
 *                                    with any ":..." suffix and "namespace#" prefix removed)
 *   5xx after the last attempt       upstream status and type passed through (InternalFailure if
 *                                    none was given)
 *   still throttled after retries    429 ThrottlingException
 *   timeout (the whole call's budget, or every attempt timed out)   504 TimeoutError
 *   unreachable, connection reset, TLS failure, oversized (max_response_bytes) or unreadable
 *   answer                           502 ConnectionError
 *   request not signable (bad id, bad config)   400 InvalidParameterException / 500 InternalFailure
 *   abandoned by aws_client_stop     503 ServiceUnavailable
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

#include "cache/cache.h"
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

void aws_get_secret_value(struct aws_client *c, const struct aws_sm_request *req,
                          struct cache_value *out, struct facts *facts);
void aws_get_parameter(struct aws_client *c, const struct aws_ssm_request *req,
                       struct cache_value *out, struct facts *facts);

/* Shutdown: every call in flight ends now (a silent upstream is not waited for: its socket is
 * shut down, a backoff or a wait for a handle is cut short) and every later call fails at once,
 * without a request, with 503 ServiceUnavailable; a call that already had its answer keeps it.
 * Calls return within milliseconds; the client stays valid until aws_client_free.  Thread-safe;
 * idempotent.  Lambda's SHUTDOWN and the agent's SIGTERM call it before stopping the local API,
 * whose stop waits for the requests in flight. */
void aws_client_stop(struct aws_client *c);

/* What one upstream HTTP answer becomes, without the network: status and body as received, and
 * header one raw response header line as libcurl hands it over ("X-Amzn-ErrorType: Foo\r\n";
 * NULL: none).  ssm selects GetParameter's shape, else GetSecretValue's.  The answer is the one
 * a call would give if this were its last attempt (a 200 reshaped, or an error as listed above).
 * Public so the parsing of upstream answers can be fuzzed and unit-tested directly
 * (tests/fuzz/fuzz_aws_answer.c); the clients themselves use the same code. */
void aws_answer_from_response(int ssm, long status, const char *header, const void *body,
                              size_t len, struct cache_value *out);

/* Builds an error body {"__type":type,"message":message}, correctly escaped. */
void aws_error_value(int status, const char *type, const char *message, struct cache_value *out);

#endif
