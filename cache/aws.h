/* cache/aws.h: the upstream clients: Secrets Manager GetSecretValue and BatchGetSecretValue,
 * SSM GetParameter and GetParameters.
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
 * Regions: a secret id or parameter name that is an ARN
 * (arn:<partition>:<service>:<region>:<account>:...) goes to its region's endpoint, signed for
 * that region; anything else to the configured region.  Each region has its own clients (a pool
 * per service, max_connections each), made on the first call that needs them, thread-safely, and
 * kept until aws_client_free; at most 64 regions (then UP_BAD_REQUEST).  Endpoint of a service
 * in a region: sm_endpoint / ssm_endpoint when set (for every region), else the region's entry
 * in region_endpoints, else AWS's https://<service>.<region>.amazonaws.com (.com.cn for cn-*).
 * An ARN whose region field is not a region name ([a-z0-9-], 1 to 32) is UP_BAD_REQUEST.
 * Batch calls (aws_batch_get_secret_value: at most 20 ids; aws_get_parameters: at most 10 names):
 * the same pool, signing, retries, budget and stop as a single call, and the items answered as
 * cache/upstream.h says (each a single call's 200, or its own error).  All ids of one call must
 * address the same region.  BatchGetSecretValue's NextToken is followed, up to 20 pages; an
 * item no page named is UP_BAD_ANSWER.  The call's result is UP_OK (without a body) when every
 * page was read; when it fails, each item not yet answered carries the call's failure.  A batch
 * answer's ceiling is max_response_bytes per item.
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
    /* Added with per-region clients: "region=URL[,region=URL...]", the endpoint of both services
     * in a region when sm_endpoint / ssm_endpoint is NULL (they win for every region); NULL:
     * none. */
    const char *region_endpoints;
    long sm_timeout_ms; /* whole call including retries; 0: none */
    long ssm_timeout_ms;
    unsigned max_connections;  /* per service, >= 1 */
    unsigned max_attempts;     /* >= 1, retries included (0 counts as 1) */
    size_t max_response_bytes; /* ceiling on one upstream body; 0: 1 MiB */
    /* Added with the implementation: the first retry's jitter window; 0: 50 ms.  Tests make it
     * small; the product keeps the default. */
    unsigned backoff_base_ms;
};

#define AWS_BATCH_SECRETS_MAX    20 /* BatchGetSecretValue's SecretIdList */
#define AWS_BATCH_PARAMETERS_MAX 10 /* GetParameters' Names */
#define AWS_REGION_MAX           33 /* a region name and its NUL */

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

/* Batch calls: items[i].id is set by the caller (a secret id; a parameter name with its selector
 * appended, "name:3", as aws_get_parameter sends it) and items[i].r is zeroed or an earlier
 * result (released here).  Fills *out (the call) and every items[i].r; release each with
 * upstream_result_release. */
void aws_batch_get_secret_value(struct aws_client *c, struct upstream_item *items, size_t n,
                                struct upstream_result *out, struct facts *facts);
void aws_get_parameters(struct aws_client *c, struct upstream_item *items, size_t n,
                        int with_decryption, struct upstream_result *out, struct facts *facts);

/* The region an id addresses: an ARN's region field into region, else "" (the configured
 * region).  0 when the ARN's region field is not a region name.  For a caller grouping ids into
 * batch calls. */
int aws_id_region(const char *id, char region[AWS_REGION_MAX]);

/* Shutdown: every call in flight ends now (a silent upstream is not waited for: its socket is
 * shut down, a backoff or a wait for a handle is cut short) and every later call fails at once,
 * without a request, with UP_ABANDONED; a call that already had its answer keeps it.
 * Calls return within milliseconds; the client stays valid until aws_client_free.  Thread-safe;
 * idempotent.  Lambda's SHUTDOWN and the agent's SIGTERM call it before stopping the local API,
 * whose stop waits for the requests in flight. */
void aws_client_stop(struct aws_client *c);

#endif
