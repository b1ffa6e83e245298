/* libFuzzer harness: one upstream HTTP answer (status, a response header line, body) through
 * cache/upstream.c, the code every Secrets Manager / SSM answer goes through, and on through
 * extension/answer.c to the local API's answer.
 *
 * Input: byte 0 picks the operation (bit 0: SSM) and the status (bits 1-4, from s_status); with
 * bit 5 set, the bytes up to the first '\n' (included) are one raw header line
 * (upstream_header_line); the rest is the body (upstream_read).
 * Properties (abort() when broken, on top of ASan/UBSan):
 * - the outcome is one an answer can give: UP_OK only for a 2xx status, with a body,
 *   NUL-terminated, len == strlen, that is a JSON object with "ResultMetadata"; UP_AWS_ERROR and
 *   UP_THROTTLED only for 4xx/5xx; otherwise UP_BAD_ANSWER; a failure has no body, a non-empty
 *   message and no retry unless it is a throttle or an AWS error;
 * - the error code is cleaned: no ':' and no '#' left in it;
 * - the local answer's status is 200 (only for UP_OK) or 400..599, and its body a JSON object:
 *   on 200 with "ResultMetadata", else with string "__type" and "message";
 * - the same bytes give the same result.
 * With bit 6 set, the body is instead one 2xx page of a batch answer (bit 0: GetParameters, else
 * BatchGetSecretValue) for a fixed list of ids (upstream_read_batch_page): it is read or refused
 * (STASH_EPARSE, nothing changed); every item is a value (a JSON object with "ResultMetadata",
 * len == strlen), its own error (no body, a message, no status) or not in the answer.
 * Seeds: tests/fuzz/corpus/aws_answer.
 * Run: make fuzz && build/fuzz/fuzz/fuzz_aws_answer tests/fuzz/corpus/aws_answer -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/upstream.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/answer.h"

/* NOLINTNEXTLINE(readability-identifier-naming): libFuzzer entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long s_status[16] = {200, 201, 204, 400, 403, 404, 429, 500,
                                  502, 503, 504, 100, 302, 0,   599, 999};

static int json_object_with(const char *body, size_t len, const char *a, const char *b)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    int ok = cJSON_IsObject(o);

    if (ok && !b) {
        ok = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, a));
    } else if (ok) {
        ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, a)) &&
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, b));
    }
    cJSON_Delete(o);
    return ok;
}

static void check_result(const struct upstream_result *r, int retry, long status)
{
    int ok2xx = status >= 200 && status < 300;
    int err = status >= 400 && status < 600;

    if (r->http_status != status || strchr(r->error_type, ':') || strchr(r->error_type, '#')) {
        abort();
    }
    switch (r->outcome) {
    case UP_OK:
        if (!ok2xx || retry || !r->body || strlen(r->body) != r->len || r->message[0] ||
            !json_object_with(r->body, r->len, "ResultMetadata", NULL)) {
            abort();
        }
        return;
    case UP_AWS_ERROR:
    case UP_THROTTLED:
        if (!err || (r->outcome == UP_THROTTLED && !retry)) {
            abort();
        }
        break;
    case UP_BAD_ANSWER:
        if (err || retry) {
            abort();
        }
        break;
    default:
        abort(); /* the others come from the transport, never from an answer */
    }
    if (r->body || !r->message[0]) {
        abort();
    }
}

static void check_answer(const struct cache_value *v, enum upstream_outcome o)
{
    if (!v->body || strlen(v->body) != v->len) {
        abort();
    }
    if (v->status == 200 ? o != UP_OK : v->status < 400 || v->status > 599) {
        abort();
    }
    if (v->status == 200 ? !json_object_with(v->body, v->len, "ResultMetadata", NULL)
                         : !json_object_with(v->body, v->len, "__type", "message")) {
        abort();
    }
}

static const char *const s_ids[] = {"a", "/p:3", "arn:aws:secretsmanager:us-east-1:1:secret:a",
                                    "arn:aws:ssm:us-east-1:1:parameter/p", "x"};
#define NIDS (sizeof(s_ids) / sizeof(s_ids[0]))

static void fuzz_batch(int ssm, const uint8_t *body, size_t blen)
{
    enum upstream_op op = ssm ? UPSTREAM_GET_PARAMETERS : UPSTREAM_BATCH_GET_SECRET_VALUE;
    struct upstream_item items[NIDS];
    char *next = NULL;
    enum stash_err rc;

    memset(items, 0, sizeof(items));
    for (size_t i = 0; i < NIDS; i++) {
        items[i].id = s_ids[i];
    }
    upstream_batch_start(op, items, NIDS);
    rc = upstream_read_batch_page(op, body, blen, items, NIDS, &next);
    if (rc != STASH_OK && (rc != STASH_EPARSE || next)) {
        abort();
    }
    for (size_t i = 0; i < NIDS; i++) {
        const struct upstream_result *r = &items[i].r;

        switch (r->outcome) {
        case UP_OK:
            if (!r->body || strlen(r->body) != r->len || r->message[0] ||
                !json_object_with(r->body, r->len, "ResultMetadata", NULL)) {
                abort();
            }
            break;
        case UP_AWS_ERROR:
        case UP_THROTTLED:
        case UP_BAD_ANSWER:
            if (r->body || !r->message[0] ||
                (r->outcome != UP_BAD_ANSWER &&
                 (r->http_status != 0 || strchr(r->error_type, ':') ||
                  strchr(r->error_type, '#')))) {
                abort();
            }
            break;
        default:
            abort();
        }
        upstream_result_release(&items[i].r);
    }
    free(next);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct upstream_result a;
    struct upstream_result b;
    struct cache_value v;
    char type[UPSTREAM_TYPE_MAX] = "";
    const uint8_t *body;
    size_t blen;
    long status;
    enum upstream_op op;
    int retry;

    if (!ready) {
        mem_init();
        g_log_level = LOG_LEVEL_NONE;
        ready = 1;
    }
    if (size < 1) {
        return 0;
    }
    if (data[0] & 0x40) {
        fuzz_batch(data[0] & 1, data + 1, size - 1);
        return 0;
    }
    op = (data[0] & 1) ? UPSTREAM_GET_PARAMETER : UPSTREAM_GET_SECRET_VALUE;
    status = s_status[(data[0] >> 1) & 15];
    body = data + 1;
    blen = size - 1;
    if (data[0] & 0x20) {
        const uint8_t *nl = memchr(body, '\n', blen);
        size_t hlen = nl ? (size_t)(nl - body) + 1 : blen;

        upstream_header_line((const char *)body, hlen, type);
        if (strlen(type) >= UPSTREAM_TYPE_MAX) {
            abort();
        }
        body += hlen;
        blen -= hlen;
    }
    retry = upstream_read(op, status, type, body, blen, &a);
    check_result(&a, retry, status);
    if (upstream_read(op, status, type, body, blen, &b) != retry || a.outcome != b.outcome ||
        a.len != b.len || (a.body && memcmp(a.body, b.body, a.len) != 0) ||
        strcmp(a.error_type, b.error_type) != 0 || strcmp(a.message, b.message) != 0) {
        abort();
    }
    answer_from_upstream(&a, &v);
    check_answer(&v, b.outcome);
    cache_value_release(&v);
    upstream_result_release(&a);
    upstream_result_release(&b);
    return 0;
}
