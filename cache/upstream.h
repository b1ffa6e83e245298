/* cache/upstream.h: what an upstream call gave, as data, and the reading of AWS's answers.
 *
 * The clients (cache/aws.h) report every call as a struct upstream_result: what happened
 * (enum upstream_outcome), what AWS said (its HTTP status, error code and message) and, on
 * success, the answer reshaped.  Nothing here knows who asked or what they are told: turning a
 * result into an answer for someone else is the caller's business (the local API's table is in
 * extension/answer.h).
 *
 * The functions below are pure: no network, no clock, no shared state.  They read one complete
 * HTTP answer of AWS's JSON 1.1 protocol (status, X-Amzn-ErrorType, body) and say what it means.
 * The clients run every answer through them; the unit tests (tests/unit/test_upstream.c) and the
 * fuzzer (tests/fuzz/fuzz_aws_answer.c) drive them directly.
 *
 * upstream_read, one answer:
 *   2xx with the operation's output structure  UP_OK, body: the JSON AWS's Parameters and
 *       Secrets extension answers (ISO 8601 dates with milliseconds, null for an absent field,
 *       "ResultMetadata":{}); fields of the wrong type or a required one missing are not a value
 *   2xx otherwise, or a status that is not 2xx, 4xx or 5xx   UP_BAD_ANSWER
 *   429, or a 4xx/5xx whose code is a throttle   UP_THROTTLED, may retry (default message
 *       "Rate exceeded")
 *   5xx, or a 4xx whose code is an internal fault (InternalServiceError, RequestTimeout, ...)
 *       UP_AWS_ERROR, may retry
 *   any other 4xx   UP_AWS_ERROR, final
 * Error code: X-Amzn-ErrorType, else __type, code or Code in the body; with any ":..." suffix,
 * "namespace#" prefix and surrounding blanks removed ("aws.protocoltests#FooError:http://..." ->
 * "FooError").  Message: message or Message in the body; when there is none, one that names the
 * service, operation and status.  Throttle codes are botocore's standard retry mode's list plus
 * SSM's TooManyUpdates.
 *
 * Batch answers (upstream_read_batch_page), one page of a 2xx at a time:
 *   BatchGetSecretValue  {"SecretValues":[<GetSecretValue's output>...],
 *                         "Errors":[{"SecretId","ErrorCode","Message"}...],"NextToken"?}
 *   GetParameters        {"Parameters":[<GetParameter's
 * Parameter>...],"InvalidParameters":[name...]} Each requested item (struct upstream_item, its id
 * as it was sent) ends as: UP_OK         body exactly what the single call's 200 would be
 * (GetSecretValue's, or GetParameter's {"Parameter":{...},"ResultMetadata":{}}), so it can be
 * stored under the key a single read uses UP_AWS_ERROR  an Errors entry (its ErrorCode, cleaned,
 * and Message) or InvalidParameters (ParameterNotFound); http_status 0: the error came inside a
 * 2xx, not as one UP_THROTTLED  an Errors entry whose code is a throttle UP_BAD_ANSWER not in the
 * answer (after the last page), or its entry is not readable Never a value in a failure's message.
 * An entry names an item when: secrets, the id is its Name or ARN, or its ARN without the
 * 6-character suffix AWS appends (a partial ARN); parameters, the id is its Name or ARN followed by
 * its Selector (":3", ":label"; nothing without one).  An entry fills every item it names (a
 * repeated id); an entry naming none is ignored.
 *
 * Ownership: a result owns body (it may hold a secret): upstream_result_release wipes and frees
 * it.  Thread-safety: every function is reentrant.
 */
#ifndef STASH_CACHE_UPSTREAM_H
#define STASH_CACHE_UPSTREAM_H

#include <stddef.h>

#include "common/err.h"

#define UPSTREAM_TYPE_MAX    128
#define UPSTREAM_MESSAGE_MAX 512

enum upstream_op {
    UPSTREAM_GET_SECRET_VALUE,       /* secretsmanager GetSecretValue */
    UPSTREAM_GET_PARAMETER,          /* ssm GetParameter */
    UPSTREAM_BATCH_GET_SECRET_VALUE, /* secretsmanager BatchGetSecretValue (SecretIdList) */
    UPSTREAM_GET_PARAMETERS,         /* ssm GetParameters */
};

enum upstream_outcome {
    UP_OK,          /* a 2xx with a readable answer: body */
    UP_AWS_ERROR,   /* AWS answered 4xx/5xx (not a throttle): http_status, error_type, message */
    UP_THROTTLED,   /* still throttled after the last attempt */
    UP_TIMEOUT,     /* the call's budget ran out, or every attempt timed out */
    UP_UNREACHABLE, /* no answer: connect failed, connection reset, TLS failure, nothing received */
    UP_BAD_ANSWER,  /* an answer that cannot be used: oversized, unreadable, unexpected status */
    UP_ABANDONED,   /* the client was stopped (aws_client_stop) */
    UP_BAD_REQUEST, /* not sent: the request is invalid (no id, too large) */
    UP_UNSIGNABLE,  /* not sent: the request could not be signed (configuration) */
};

struct upstream_result {
    enum upstream_outcome outcome;
    long http_status;  /* the last answer's HTTP status; 0 if none came */
    unsigned attempts; /* requests sent (the clients fill it; upstream_read leaves it 0) */
    char error_type[UPSTREAM_TYPE_MAX]; /* the code AWS gave, cleaned; "" if none */
    char message[UPSTREAM_MESSAGE_MAX]; /* never empty on a failure; "" on UP_OK */
    char *body; /* UP_OK: the answer, NUL-terminated, owned (may hold a secret); else NULL */
    size_t len; /* body's length without the NUL */
};

/* Wipes and frees body; leaves the result zeroed.  Accepts a zeroed result. */
void upstream_result_release(struct upstream_result *r);

/* The outcome's name as written above ("UP_TIMEOUT"), for logs and tests. */
const char *upstream_outcome_name(enum upstream_outcome o);

/* The service's signing name ("secretsmanager", "ssm") and the operation's name. */
const char *upstream_service(enum upstream_op op);
const char *upstream_op_name(enum upstream_op op);

/* One item of a batch call: what was asked (id, borrowed: a secret id, or a parameter name with
 * its selector appended as the single call sends it) and what came of it. */
struct upstream_item {
    const char *id;
    struct upstream_result r;
};

/* Before the first page: every item is "not in the answer" (UP_BAD_ANSWER, with a message
 * naming the operation), its earlier result released. */
void upstream_batch_start(enum upstream_op op, struct upstream_item *items, size_t n);

/* Reads one 2xx page of op's answer (a batch op), updating the items it names as the table
 * above says (an item's earlier result is released when an entry replaces it).  *next_token:
 * the page's NextToken (owned, free() it) or NULL.  Returns STASH_EPARSE, with the items and
 * *next_token untouched, when the page is not the output structure (not an object, a list of
 * the wrong type, a NextToken that is not a string); STASH_OK otherwise. */
enum stash_err upstream_read_batch_page(enum upstream_op op, const void *body, size_t len,
                                        struct upstream_item *items, size_t n, char **next_token);

/* Reads one raw response header line as libcurl hands it over ("X-Amzn-ErrorType: Foo\r\n",
 * len bytes, not NUL-terminated): X-Amzn-ErrorType's value goes into type, cleaned and cut to
 * UPSTREAM_TYPE_MAX - 1 bytes; a status line ("HTTP/...", a new response after a 100 Continue)
 * empties type; any other line leaves it alone. */
void upstream_header_line(const char *line, size_t len, char type[UPSTREAM_TYPE_MAX]);

/* Reads one complete answer to op: status, the X-Amzn-ErrorType value as upstream_header_line
 * left it ("" or NULL: none) and the body (len bytes, any content).  Resets and fills *out as
 * the table above says (attempts stays 0).  For a batch op a 2xx is read by
 * upstream_read_batch_page instead: here it is UP_BAD_ANSWER.  Returns 1 when another attempt may
 * answer differently (a throttle, a server fault), else 0. */
int upstream_read(enum upstream_op op, long status, const char *type, const void *body, size_t len,
                  struct upstream_result *out);

#endif
