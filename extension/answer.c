/* extension/answer.c: upstream results as local answers.  Contract in answer.h. */
#include "extension/answer.h"

#include <string.h>

#include "common/buf.h"

void answer_error(int status, const char *type, const char *message, struct cache_value *out)
{
    struct buf b = BUF_INIT(0);

    /* No ceiling: only bounded strings (UPSTREAM_*_MAX, our own) go in; OOM aborts. */
    (void)buf_put_json_error(&b, type, message);
    out->kind = status == 429 || status >= 500 ? CACHE_TRANSIENT : CACHE_FAILED;
    out->status = status;
    out->body = buf_detach(&b, &out->len);
}

void answer_from_upstream(struct upstream_result *r, struct cache_value *out)
{
    const char *type = r->error_type;

    switch (r->outcome) {
    case UP_OK:
        out->kind = CACHE_VALUE;
        out->status = 200;
        out->body = r->body;
        out->len = r->len;
        r->body = NULL;
        r->len = 0;
        return;
    case UP_AWS_ERROR:
        if (!type[0]) {
            type = r->http_status >= 500 ? "InternalFailure" : "UnknownError";
        }
        /* No status of its own: a batch item's error, which came inside a 200. */
        answer_error(r->http_status ? (int)r->http_status : 400, type, r->message, out);
        return;
    case UP_THROTTLED:
        answer_error(429, "ThrottlingException", r->message, out);
        return;
    case UP_TIMEOUT:
        answer_error(504, "TimeoutError", r->message, out);
        return;
    case UP_UNREACHABLE:
    case UP_BAD_ANSWER:
        answer_error(502, "ConnectionError", r->message, out);
        return;
    case UP_ABANDONED:
        answer_error(503, "ServiceUnavailable", r->message, out);
        return;
    case UP_BAD_REQUEST:
        answer_error(400, "InvalidParameterException", r->message, out);
        return;
    case UP_UNSIGNABLE:
        answer_error(500, "InternalFailure", r->message, out);
        return;
    }
    answer_error(500, "InternalFailure", "unknown upstream outcome", out);
}
