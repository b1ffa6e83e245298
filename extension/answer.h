/* extension/answer.h: what the local API answers for an upstream result.
 *
 * The clients (cache/aws.h) report what happened as data (struct upstream_result); this is the
 * one place that turns it into an HTTP status and a body for the local caller, and says which
 * failures may pass (the cache may then serve a stale value instead).  Bodies: on success the
 * reshaped answer as is; on failure {"__type":...,"message":...} (buf_put_json_error) with the
 * result's message.
 *   UP_OK            200, the answer                         CACHE_VALUE
 *   UP_AWS_ERROR     upstream status and code passed through (code "" -> InternalFailure for a
 *                    5xx, UnknownError for a 4xx); a batch item's error (status 0) answers 400,
 *                    the single call's status for the codes AWS reports per item (not found,
 *                    denied, decryption failure)             transient for a 5xx only
 *   UP_THROTTLED     429 ThrottlingException (the API adds Retry-After)   transient
 *   UP_TIMEOUT       504 TimeoutError                        transient
 *   UP_UNREACHABLE, UP_BAD_ANSWER   502 ConnectionError      transient
 *   UP_ABANDONED     503 ServiceUnavailable                  transient
 *   UP_BAD_REQUEST   400 InvalidParameterException           stands
 *   UP_UNSIGNABLE    500 InternalFailure                     transient
 * Transient is exactly "status 429 or 5xx": a caller may retry those.
 * Thread-safety: reentrant.
 */
#ifndef STASH_EXTENSION_ANSWER_H
#define STASH_EXTENSION_ANSWER_H

#include "cache/cache.h"
#include "cache/upstream.h"

/* Fills *out from r as the table says.  r's body moves into out (r is left without one); the
 * caller still releases r. */
void answer_from_upstream(struct upstream_result *r, struct cache_value *out);

/* An error answer made here (not from upstream): status, {"__type":type,"message":message}, and
 * the kind the table above gives that status. */
void answer_error(int status, const char *type, const char *message, struct cache_value *out);

#endif
