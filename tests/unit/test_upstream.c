/* Unit tests for cache/upstream.c: AWS's answers read without a network, as the clients and the
 * fuzzer (tests/fuzz/fuzz_aws_answer.c) read them.  Expected shapes follow the response syntax
 * of GetSecretValue and GetParameter in the AWS API references and the answers of AWS's
 * Parameters and Secrets Lambda extension. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/upstream.h"
#include "common/log.h"
#include "common/mem.h"

#define SM  UPSTREAM_GET_SECRET_VALUE
#define SSM UPSTREAM_GET_PARAMETER

/* Reads body (a C string) as op's answer with status and header type; returns the retry flag. */
static int read_str(enum upstream_op op, long status, const char *type, const char *body,
                    struct upstream_result *r)
{
    return upstream_read(op, status, type, body, strlen(body), r);
}

static void expect_error(enum upstream_op op, long status, const char *type, const char *body,
                         enum upstream_outcome outcome, int retry, const char *want_type,
                         const char *want_message)
{
    struct upstream_result r;

    assert_int_equal(read_str(op, status, type, body, &r), retry);
    if (r.outcome != outcome) {
        fail_msg("%ld %s: %s, want %s", status, body, upstream_outcome_name(r.outcome),
                 upstream_outcome_name(outcome));
    }
    assert_int_equal(r.http_status, status);
    assert_string_equal(r.error_type, want_type);
    assert_string_equal(r.message, want_message);
    assert_null(r.body);
    assert_int_equal(r.attempts, 0);
    upstream_result_release(&r);
}

static void test_secret_shape(void **state)
{
    static const char body[] =
        "{\"ARN\":\"arn:a\",\"Name\":\"n\",\"SecretString\":\"s\\\"x\",\"CreatedDate\":"
        "1523477145.713,\"VersionId\":\"v1\",\"VersionStages\":[\"AWSCURRENT\",7]}";
    struct upstream_result r;

    (void)state;
    assert_int_equal(read_str(SM, 200, NULL, body, &r), 0);
    assert_int_equal(r.outcome, UP_OK);
    assert_int_equal(r.http_status, 200);
    assert_string_equal(r.body, "{\"ARN\":\"arn:a\",\"CreatedDate\":\"2018-04-11T20:05:45.713Z\","
                                "\"Name\":\"n\",\"SecretBinary\":null,\"SecretString\":\"s\\\"x\","
                                "\"VersionId\":\"v1\",\"VersionStages\":[\"AWSCURRENT\"],"
                                "\"ResultMetadata\":{}}");
    assert_int_equal(r.len, strlen(r.body));
    assert_string_equal(r.message, "");
    upstream_result_release(&r);
    assert_null(r.body);

    /* Unicode passes through as UTF-8; control characters come back escaped. */
    assert_int_equal(read_str(SM, 200, NULL,
                              "{\"Name\":\"caf\\u00e9\",\"SecretString\":\"\\u2603\\t\\u0001\"}",
                              &r),
                     0);
    assert_int_equal(r.outcome, UP_OK);
    assert_string_equal(r.body, "{\"ARN\":null,\"CreatedDate\":null,\"Name\":\"caf\xc3\xa9\","
                                "\"SecretBinary\":null,\"SecretString\":\"\xe2\x98\x83\\t\\u0001\","
                                "\"VersionId\":null,\"VersionStages\":null,\"ResultMetadata\":{}}");
    upstream_result_release(&r);
}

/* Numbers upstream sends are rounded half away from zero (llround's rule, without libm): an SSM
 * Version, and epoch seconds to the millisecond.  0.49999999999999994 is the value a naive
 * x + 0.5 rounds up to 1; 0.0625 s is exactly 62.5 ms. */
static void test_answer_rounding(void **state)
{
    static const struct {
        const char *version;
        const char *date;
        const char *want;
    } cases[] = {
        {"7", "0",
         "\"LastModifiedDate\":\"1970-01-01T00:00:00.000Z\",\"Name\":\"/p\","
         "\"Selector\":null,\"SourceResult\":null,\"Type\":null,\"Value\":\"v\","
         "\"Version\":7}"},
        {"2.5", "0.0625",
         "\"LastModifiedDate\":\"1970-01-01T00:00:00.063Z\",\"Name\":\"/p\","
         "\"Selector\":null,\"SourceResult\":null,\"Type\":null,"
         "\"Value\":\"v\",\"Version\":3}"},
        {"-2.5", "1523477145.7124",
         "\"LastModifiedDate\":\"2018-04-11T20:05:45.712Z\","
         "\"Name\":\"/p\",\"Selector\":null,\"SourceResult\":null,"
         "\"Type\":null,\"Value\":\"v\",\"Version\":-3}"},
        {"0.49999999999999994", "1523477145.7126",
         "\"LastModifiedDate\":\"2018-04-11T20:05:45.713Z\",\"Name\":\"/p\","
         "\"Selector\":null,\"SourceResult\":null,\"Type\":null,\"Value\":\"v\","
         "\"Version\":0}"},
        {"-0.5", "0.0004",
         "\"LastModifiedDate\":\"1970-01-01T00:00:00.000Z\",\"Name\":\"/p\","
         "\"Selector\":null,\"SourceResult\":null,\"Type\":null,"
         "\"Value\":\"v\",\"Version\":-1}"},
        {"9000000000000000", "253402300799",
         "\"LastModifiedDate\":\"9999-12-31T23:59:59.000Z\",\"Name\":\"/p\","
         "\"Selector\":null,\"SourceResult\":null,\"Type\":null,\"Value\":\"v\","
         "\"Version\":9000000000000000}"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        char want[512];
        struct upstream_result v;
        int n = snprintf(body, sizeof(body),
                         "{\"Parameter\":{\"Name\":\"/p\",\"Value\":\"v\",\"LastModifiedDate\":%s,"
                         "\"Version\":%s}}",
                         cases[i].date, cases[i].version);

        assert_true(n > 0 && (size_t)n < sizeof(body));
        assert_int_equal(upstream_read(SSM, 200, NULL, body, (size_t)n, &v), 0);
        (void)snprintf(want, sizeof(want),
                       "{\"Parameter\":{\"ARN\":null,\"DataType\":null,%s,"
                       "\"ResultMetadata\":{}}",
                       cases[i].want);
        assert_int_equal(v.outcome, UP_OK);
        assert_string_equal(v.body, want);
        upstream_result_release(&v);
    }
}

/* An answer is allocated at its size, not at the doubled capacity of the buffer it was built in:
 * while it lives (until it is sent) a block twice its size would fragment the heap between the
 * values the cache keeps.  A 4 KB secret's answer is 4.1 KB; its buffer grew to 8 KB. */
static void test_answer_exact_size(void **state)
{
    size_t n = 4096;
    size_t cap = 64 + n + 256;
    char *body = malloc(cap);
    struct upstream_result v;
    int len;

    (void)state;
    assert_non_null(body);
    len = snprintf(body, cap, "{\"Name\":\"s\",\"SecretString\":\"");
    memset(body + len, 'x', n);
    len += (int)n;
    len += snprintf(body + len, cap - (size_t)len, "\",\"VersionId\":\"v\"}");
    assert_int_equal(upstream_read(SM, 200, NULL, body, (size_t)len, &v), 0);
    assert_int_equal(v.outcome, UP_OK);
    assert_int_equal(v.len, strlen(v.body));
    assert_true(v.len > n);
    /* The allocator may round up by a few words, never to the next power of two. */
    assert_true(malloc_usable_size(v.body) >= v.len + 1);
    assert_true(malloc_usable_size(v.body) < v.len + 1 + 64);
    upstream_result_release(&v);
    free(body);
}

/* Error codes: the header's wins over the body's; ":..." suffixes, "namespace#" prefixes and
 * blanks go; message or Message from the body, else one naming service, operation and status. */
static void test_errors(void **state)
{
    (void)state;
    expect_error(SSM, 400, "ParameterNotFound", "{\"__type\":\"Other\"}", UP_AWS_ERROR, 0,
                 "ParameterNotFound", "ssm GetParameter answered HTTP 400 without a message");
    expect_error(SM, 400, NULL,
                 "{\"__type\":\"com.amazonaws.secretsmanager#ResourceNotFoundException\","
                 "\"Message\":\"gone\"}",
                 UP_AWS_ERROR, 0, "ResourceNotFoundException", "gone");
    expect_error(SM, 400, "",
                 "{\"code\":\"  AccessDeniedException:http://x/ \",\"message\":\"no\"}",
                 UP_AWS_ERROR, 0, "AccessDeniedException", "no");
    expect_error(SM, 403, NULL, "{\"Code\":\"ns#Forbidden\"}", UP_AWS_ERROR, 0, "Forbidden",
                 "secretsmanager GetSecretValue answered HTTP 403 without a message");
    expect_error(SSM, 404, NULL, "not json", UP_AWS_ERROR, 0, "",
                 "ssm GetParameter answered HTTP 404 without a message");
    expect_error(SM, 400, NULL, "{\"__type\":7,\"message\":[\"x\"]}", UP_AWS_ERROR, 0, "",
                 "secretsmanager GetSecretValue answered HTTP 400 without a message");
    /* Server faults are retried, with or without a 5xx. */
    expect_error(SM, 500, NULL, "{\"__type\":\"a#InternalServiceError\",\"Message\":\"m\"}",
                 UP_AWS_ERROR, 1, "InternalServiceError", "m");
    expect_error(SM, 400, NULL, "{\"__type\":\"InternalServiceError\",\"message\":\"sm fault\"}",
                 UP_AWS_ERROR, 1, "InternalServiceError", "sm fault");
    expect_error(SSM, 503, NULL, "", UP_AWS_ERROR, 1, "",
                 "ssm GetParameter answered HTTP 503 without a message");
    expect_error(SM, 408, "RequestTimeout", "", UP_AWS_ERROR, 1, "RequestTimeout",
                 "secretsmanager GetSecretValue answered HTTP 408 without a message");
}

/* Throttles: HTTP 429 whatever its code, or a throttle code with any 4xx/5xx. */
static void test_throttles(void **state)
{
    static const char *const codes[] = {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "TooManyUpdates",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
    };

    (void)state;
    expect_error(SSM, 429, NULL, "", UP_THROTTLED, 1, "", "Rate exceeded");
    expect_error(SM, 429, "Whatever", "{\"message\":\"slow\"}", UP_THROTTLED, 1, "Whatever",
                 "slow");
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char body[128];

        (void)snprintf(body, sizeof(body), "{\"__type\":\"ns#%s\"}", codes[i]);
        expect_error(SM, 400, NULL, body, UP_THROTTLED, 1, codes[i], "Rate exceeded");
        expect_error(SSM, 503, codes[i], "", UP_THROTTLED, 1, codes[i], "Rate exceeded");
    }
    /* Near misses are not throttles. */
    expect_error(SM, 400, "ThrottlingExceptionX", "", UP_AWS_ERROR, 0, "ThrottlingExceptionX",
                 "secretsmanager GetSecretValue answered HTTP 400 without a message");
}

/* A 200 whose fields have the wrong types is not a value: UP_BAD_ANSWER, so the cache keeps (and
 * may serve stale) the good value it has instead of replacing it.  So are unreadable 200s and
 * statuses that are neither success nor error. */
static void test_bad_answers(void **state)
{
    static const struct {
        enum upstream_op op;
        long status;
        const char *body;
    } bad[] = {
        {SM, 200, "{\"ARN\":\"a\",\"Name\":null,\"SecretString\":\"s\",\"VersionId\":\"v\"}"},
        {SM, 200, "{\"ARN\":\"a\",\"Name\":\"n\",\"SecretString\":{\"x\":1},\"VersionId\":\"v\"}"},
        {SM, 200, "{\"ARN\":\"a\",\"Name\":\"n\",\"SecretString\":7}"},
        {SM, 200, "{\"ARN\":\"a\",\"Name\":\"n\",\"SecretBinary\":[1]}"},
        {SM, 200, "{\"ARN\":\"a\",\"Name\":\"n\"}"},
        {SM, 200, "{\"ARN\":5,\"Name\":\"n\",\"SecretString\":\"s\"}"},
        {SM, 200, "{\"Name\":\"n\",\"SecretString\":\"s\",\"VersionId\":true}"},
        {SM, 200, "{\"Name\":\"n\",\"SecretString\":\"s\",\"VersionStages\":\"AWSCURRENT\"}"},
        {SM, 200, "{\"Name\":\"n\",\"SecretString\":\"s\",\"CreatedDate\":[]}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":null,\"Value\":\"v\",\"Type\":\"String\"}}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":\"n\",\"Value\":7,\"Type\":\"String\"}}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":\"n\",\"Value\":{},\"Type\":\"String\"}}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":\"n\",\"Type\":\"String\"}}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":\"n\",\"Value\":\"v\",\"Version\":\"1\"}}"},
        {SSM, 200, "{\"Parameter\":{\"Name\":\"n\",\"Value\":\"v\",\"Type\":1}}"},
        {SSM, 200, "{\"Parameter\":[]}"},
        {SM, 204, ""},
        {SM, 200, "[1,2"},
        {SM, 302, ""},
        {SSM, 100, ""},
        {SSM, 0, ""},
        {SSM, 600, "{\"__type\":\"ThrottlingException\"}"},
    };
    struct upstream_result r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(read_str(bad[i].op, bad[i].status, NULL, bad[i].body, &r), 0);
        if (r.outcome != UP_BAD_ANSWER) {
            fail_msg("read %ld %s as %s", bad[i].status, bad[i].body,
                     upstream_outcome_name(r.outcome));
        }
        assert_null(r.body);
        assert_int_equal(r.http_status, bad[i].status);
        assert_non_null(strstr(r.message, bad[i].op == SSM ? "ssm" : "secretsmanager"));
        upstream_result_release(&r);
    }
}

/* Header lines as libcurl hands them over. */
static void test_header_line(void **state)
{
    char type[UPSTREAM_TYPE_MAX] = "";
    char longline[600];
    const char *l;

    (void)state;
    l = "x-amzn-ErrorType: ns#ParameterNotFound:http://x/\r\n";
    upstream_header_line(l, strlen(l), type);
    assert_string_equal(type, "ParameterNotFound");
    l = "Content-Type: application/json\r\n";
    upstream_header_line(l, strlen(l), type);
    assert_string_equal(type, "ParameterNotFound"); /* other lines leave it */
    l = "HTTP/1.1 200 OK\r\n";
    upstream_header_line(l, strlen(l), type);
    assert_string_equal(type, ""); /* a new response forgets it */
    l = "X-AMZN-ERRORTYPE:\tThrottlingException \r\n";
    upstream_header_line(l, strlen(l), type);
    assert_string_equal(type, "ThrottlingException");
    /* Not NUL-terminated: only len bytes are read. */
    upstream_header_line("X-Amzn-ErrorType: AbcDEF", 21, type);
    assert_string_equal(type, "Abc");
    /* Longer than the buffer: cut, still terminated. */
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "X-Amzn-ErrorType: ", 18);
    upstream_header_line(longline, sizeof(longline), type);
    assert_int_equal(strlen(type), UPSTREAM_TYPE_MAX - 1 - 1); /* the leading blank is dropped */
}

#define BSM  UPSTREAM_BATCH_GET_SECRET_VALUE
#define BSSM UPSTREAM_GET_PARAMETERS

static void items_release(struct upstream_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        upstream_result_release(&items[i].r);
    }
}

/* A page of secrets: values (string, binary, unicode), errors, an id by partial ARN, an entry
 * nobody asked for; each value is what the single call's 200 would be. */
static void test_batch_secrets(void **state)
{
    static const char page[] =
        "{\"SecretValues\":["
        "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf\",\"Name\":\"a\","
        "\"SecretString\":\"caf\\u00e9 \\\"q\\\"\",\"VersionId\":\"v1\","
        "\"VersionStages\":[\"AWSCURRENT\"],\"CreatedDate\":1523477145.713},"
        "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:bin-123456\",\"Name\":\"bin\","
        "\"SecretBinary\":\"AAEC/w==\"},"
        "{\"Name\":\"unasked\",\"SecretString\":\"x\"},"
        "{\"Name\":\"broken\",\"SecretString\":7}],"
        "\"Errors\":[{\"SecretId\":\"gone\",\"ErrorCode\":\"ResourceNotFoundException\","
        "\"Message\":\"Secrets Manager can't find the specified secret.\"},"
        "{\"SecretId\":\"slow\",\"ErrorCode\":\"ns#ThrottlingException\"},"
        "{\"SecretId\":\"nobody\",\"ErrorCode\":\"X\"}]}";
    struct upstream_item items[] = {
        {"a", {0}},
        {"arn:aws:secretsmanager:us-east-1:1:secret:bin", {0}}, /* partial ARN */
        {"gone", {0}},
        {"slow", {0}},
        {"missing", {0}},
        {"broken", {0}},
        {"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf", {0}}, /* full ARN of "a" */
    };
    size_t n = sizeof(items) / sizeof(items[0]);
    struct upstream_result single;
    char *next = (char *)"untouched";

    (void)state;
    upstream_batch_start(BSM, items, n);
    assert_int_equal(upstream_read_batch_page(BSM, page, strlen(page), items, n, &next), STASH_OK);
    assert_null(next);
    /* The value is exactly the single call's answer for the same entry. */
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_int_equal(read_str(SM, 200, NULL,
                              "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf\","
                              "\"Name\":\"a\",\"SecretString\":\"caf\\u00e9 \\\"q\\\"\","
                              "\"VersionId\":\"v1\",\"VersionStages\":[\"AWSCURRENT\"],"
                              "\"CreatedDate\":1523477145.713}",
                              &single),
                     0);
    assert_string_equal(items[0].r.body, single.body);
    assert_int_equal(items[0].r.len, single.len);
    assert_non_null(strstr(items[0].r.body, "\"SecretString\":\"caf\xc3\xa9 \\\"q\\\"\""));
    upstream_result_release(&single);
    assert_string_equal(items[6].r.body, items[0].r.body);
    assert_int_equal(items[1].r.outcome, UP_OK);
    assert_string_equal(items[1].r.body,
                        "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:bin-123456\","
                        "\"CreatedDate\":null,\"Name\":\"bin\",\"SecretBinary\":\"AAEC/w==\","
                        "\"SecretString\":null,\"VersionId\":null,\"VersionStages\":null,"
                        "\"ResultMetadata\":{}}");
    /* Errors: the code cleaned, the message as sent, no status of their own, no body. */
    assert_int_equal(items[2].r.outcome, UP_AWS_ERROR);
    assert_int_equal(items[2].r.http_status, 0);
    assert_string_equal(items[2].r.error_type, "ResourceNotFoundException");
    assert_string_equal(items[2].r.message, "Secrets Manager can't find the specified secret.");
    assert_null(items[2].r.body);
    assert_int_equal(items[3].r.outcome, UP_THROTTLED);
    assert_string_equal(items[3].r.error_type, "ThrottlingException");
    assert_string_equal(items[3].r.message,
                        "secretsmanager BatchGetSecretValue reported ThrottlingException");
    /* Not in the answer, and an entry of the wrong types: never a value. */
    assert_int_equal(items[4].r.outcome, UP_BAD_ANSWER);
    assert_string_equal(items[4].r.message,
                        "not in the answer to secretsmanager BatchGetSecretValue");
    assert_int_equal(items[5].r.outcome, UP_BAD_ANSWER);
    assert_null(items[5].r.body);
    items_release(items, n);
}

/* Pages: an item answered on the second page; NextToken handed back; a page that is not the
 * output structure leaves everything as it was. */
static void test_batch_pages(void **state)
{
    static const char page1[] = "{\"SecretValues\":[{\"Name\":\"a\",\"SecretString\":\"1\"}],"
                                "\"Errors\":[],\"NextToken\":\"tok/+=\"}";
    static const char page2[] = "{\"SecretValues\":[{\"Name\":\"b\",\"SecretString\":\"2\"}]}";
    static const char *const bad[] = {
        "",
        "[]",
        "{\"SecretValues\":{}}",
        "{\"Errors\":\"x\"}",
        "{\"SecretValues\":[],\"NextToken\":5}",
        "{\"SecretValues\":[{\"Name\":\"a\",\"SecretString\":\"1\"}]",
    };
    struct upstream_item items[] = {{"a", {0}}, {"b", {0}}};
    char *next = NULL;

    (void)state;
    upstream_batch_start(BSM, items, 2);
    assert_int_equal(upstream_read_batch_page(BSM, page1, strlen(page1), items, 2, &next),
                     STASH_OK);
    assert_string_equal(next, "tok/+=");
    free(next);
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_int_equal(items[1].r.outcome, UP_BAD_ANSWER);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        next = (char *)"untouched";
        assert_int_equal(upstream_read_batch_page(BSM, bad[i], strlen(bad[i]), items, 2, &next),
                         STASH_EPARSE);
        assert_string_equal(next, "untouched");
        assert_int_equal(items[0].r.outcome, UP_OK);
        assert_int_equal(items[1].r.outcome, UP_BAD_ANSWER);
    }
    assert_int_equal(upstream_read_batch_page(BSM, page2, strlen(page2), items, 2, &next),
                     STASH_OK);
    assert_null(next);
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_int_equal(items[1].r.outcome, UP_OK);
    assert_non_null(strstr(items[1].r.body, "\"SecretString\":\"2\""));
    /* A single-item operation has no batch pages. */
    assert_int_equal(upstream_read_batch_page(SM, page2, strlen(page2), items, 2, &next),
                     STASH_EPARSE);
    items_release(items, 2);
}

/* GetParameters: entries matched by name or ARN with their selector; InvalidParameters are
 * ParameterNotFound; each value is GetParameter's 200 for it. */
static void test_batch_parameters(void **state)
{
    static const char page[] =
        "{\"Parameters\":["
        "{\"ARN\":\"arn:aws:ssm:us-east-1:1:parameter/p\",\"Name\":\"/p\",\"Type\":\"String\","
        "\"Value\":\"\\u2603\",\"Version\":3,\"Selector\":\":3\",\"LastModifiedDate\":0},"
        "{\"ARN\":\"arn:aws:ssm:us-east-1:1:parameter/q\",\"Name\":\"/"
        "q\",\"Type\":\"SecureString\","
        "\"Value\":\"s\",\"Version\":1},"
        "{\"Name\":\"/bad\",\"Value\":7}],"
        "\"InvalidParameters\":[\"/nope\",\"/p:9\",5]}";
    struct upstream_item items[] = {
        {"/p:3", {0}}, {"arn:aws:ssm:us-east-1:1:parameter/q", {0}},
        {"/p", {0}},   {"/nope", {0}},
        {"/p:9", {0}}, {"/bad", {0}},
    };
    size_t n = sizeof(items) / sizeof(items[0]);
    struct upstream_result single;
    static const char single_p[] =
        "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-1:1:parameter/p\",\"Name\":\"/p\","
        "\"Type\":\"String\",\"Value\":\"\\u2603\",\"Version\":3,\"Selector\":\":3\","
        "\"LastModifiedDate\":0}}";
    char *next = NULL;

    (void)state;
    upstream_batch_start(BSSM, items, n);
    assert_int_equal(upstream_read_batch_page(BSSM, page, strlen(page), items, n, &next), STASH_OK);
    assert_null(next);
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_int_equal(read_str(SSM, 200, NULL, single_p, &single), 0);
    assert_string_equal(items[0].r.body, single.body);
    assert_non_null(strstr(single.body, "\"Value\":\"\xe2\x98\x83\""));
    upstream_result_release(&single);
    assert_int_equal(items[1].r.outcome, UP_OK);
    assert_string_equal(items[1].r.body,
                        "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-1:1:parameter/q\","
                        "\"DataType\":null,\"LastModifiedDate\":null,\"Name\":\"/q\","
                        "\"Selector\":null,\"SourceResult\":null,\"Type\":\"SecureString\","
                        "\"Value\":\"s\",\"Version\":1},\"ResultMetadata\":{}}");
    /* "/p" without a selector is not the entry for "/p:3". */
    assert_int_equal(items[2].r.outcome, UP_BAD_ANSWER);
    assert_int_equal(items[3].r.outcome, UP_AWS_ERROR);
    assert_string_equal(items[3].r.error_type, "ParameterNotFound");
    assert_string_equal(items[3].r.message, "ssm GetParameters reported ParameterNotFound");
    assert_int_equal(items[4].r.outcome, UP_AWS_ERROR);
    assert_int_equal(items[5].r.outcome, UP_BAD_ANSWER);
    items_release(items, n);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(upstream_service(SM), "secretsmanager");
    assert_string_equal(upstream_service(SSM), "ssm");
    assert_string_equal(upstream_op_name(SM), "GetSecretValue");
    assert_string_equal(upstream_op_name(SSM), "GetParameter");
    assert_string_equal(upstream_outcome_name(UP_BAD_ANSWER), "UP_BAD_ANSWER");
    assert_string_equal(upstream_service(BSM), "secretsmanager");
    assert_string_equal(upstream_service(BSSM), "ssm");
    assert_string_equal(upstream_op_name(BSM), "BatchGetSecretValue");
    assert_string_equal(upstream_op_name(BSSM), "GetParameters");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_shape),      cmocka_unit_test(test_answer_rounding),
        cmocka_unit_test(test_answer_exact_size), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_throttles),         cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_header_line),       cmocka_unit_test(test_names),
        cmocka_unit_test(test_batch_secrets),     cmocka_unit_test(test_batch_pages),
        cmocka_unit_test(test_batch_parameters),
    };

    mem_init();
    g_log_level = LOG_LEVEL_NONE;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
