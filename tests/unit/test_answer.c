/* Unit tests for extension/answer.c: the local API's status, body and cache kind for every
 * upstream outcome (the table in extension/answer.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "extension/answer.h"

/* Checks v is status with {"__type":type,"message":message} and kind. */
static void expect_error(const struct cache_value *v, int status, const char *type,
                         const char *message, enum cache_kind kind)
{
    cJSON *o;

    assert_int_equal(v->status, status);
    assert_int_equal(v->kind, kind);
    assert_int_equal(v->len, strlen(v->body));
    o = cJSON_Parse(v->body);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "__type")->valuestring, type);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "message")->valuestring, message);
    cJSON_Delete(o);
}

static void result(struct upstream_result *r, enum upstream_outcome o, long status,
                   const char *type, const char *message)
{
    memset(r, 0, sizeof(*r));
    r->outcome = o;
    r->http_status = status;
    (void)snprintf(r->error_type, sizeof(r->error_type), "%s", type);
    (void)snprintf(r->message, sizeof(r->message), "%s", message);
}

static void test_table(void **state)
{
    static const struct {
        enum upstream_outcome o;
        long http_status;
        const char *type;
        int status;
        const char *want_type;
        enum cache_kind kind;
    } rows[] = {
        {UP_AWS_ERROR, 400, "ResourceNotFoundException", 400, "ResourceNotFoundException",
         CACHE_FAILED},
        {UP_AWS_ERROR, 403, "", 403, "UnknownError", CACHE_FAILED},
        {UP_AWS_ERROR, 400, "InternalServiceError", 400, "InternalServiceError", CACHE_FAILED},
        {UP_AWS_ERROR, 500, "", 500, "InternalFailure", CACHE_TRANSIENT},
        {UP_AWS_ERROR, 503, "ServiceUnavailable", 503, "ServiceUnavailable", CACHE_TRANSIENT},
        {UP_THROTTLED, 400, "TooManyUpdates", 429, "ThrottlingException", CACHE_TRANSIENT},
        {UP_TIMEOUT, 0, "", 504, "TimeoutError", CACHE_TRANSIENT},
        {UP_UNREACHABLE, 0, "", 502, "ConnectionError", CACHE_TRANSIENT},
        {UP_BAD_ANSWER, 200, "", 502, "ConnectionError", CACHE_TRANSIENT},
        {UP_ABANDONED, 0, "", 503, "ServiceUnavailable", CACHE_TRANSIENT},
        {UP_BAD_REQUEST, 0, "", 400, "InvalidParameterException", CACHE_FAILED},
        {UP_UNSIGNABLE, 0, "", 500, "InternalFailure", CACHE_TRANSIENT},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct upstream_result r;
        struct cache_value v;

        result(&r, rows[i].o, rows[i].http_status, rows[i].type, "what \"happened\"");
        answer_from_upstream(&r, &v);
        print_message("%s -> %d %s\n", upstream_outcome_name(rows[i].o), v.status, v.body);
        expect_error(&v, rows[i].status, rows[i].want_type, "what \"happened\"", rows[i].kind);
        cache_value_release(&v);
        upstream_result_release(&r);
    }
}

/* A success's body moves into the answer as is: no copy, the result keeps none. */
static void test_ok_moves_body(void **state)
{
    struct upstream_result r;
    struct cache_value v;
    char *body = xstrdup("{\"Name\":\"n\",\"ResultMetadata\":{}}");

    (void)state;
    memset(&r, 0, sizeof(r));
    r.outcome = UP_OK;
    r.http_status = 200;
    r.body = body;
    r.len = strlen(body);
    answer_from_upstream(&r, &v);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.kind, CACHE_VALUE);
    assert_ptr_equal(v.body, body);
    assert_int_equal(v.len, strlen(body));
    assert_null(r.body);
    assert_int_equal(r.len, 0);
    upstream_result_release(&r);
    cache_value_release(&v);
}

static void test_error_escaping(void **state)
{
    struct cache_value v;

    (void)state;
    answer_error(418, "Odd\"Type", "line1\nq\"uote\\ \x01 tab\t", &v);
    expect_error(&v, 418, "Odd\"Type", "line1\nq\"uote\\ \x01 tab\t", CACHE_FAILED);
    assert_string_equal(v.body, "{\"__type\":\"Odd\\\"Type\",\"message\":\"line1\\nq\\\"uote\\\\ "
                                "\\u0001 tab\\t\"}");
    cache_value_release(&v);
    answer_error(429, "ThrottlingException", "", &v);
    expect_error(&v, 429, "ThrottlingException", "", CACHE_TRANSIENT);
    cache_value_release(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_ok_moves_body),
        cmocka_unit_test(test_error_escaping),
    };

    mem_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
