/* Unit tests for extension/shape (raw, jsonKey, split).  Every cached value here is made by the
 * upstream client's own reader (upstream_read, answer_from_upstream) from an upstream-style answer,
 * so the shaper reads exactly what the cache holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/upstream.h"
#include "extension/answer.h"
#include "extension/shape.h"

/* Every block allocated while tracking is on is recorded; one freed while it still holds MARKER
 * (a secret byte string) was not wiped.  Linked with --wrap (LDFLAGS_test_shape in Makefile). */
void *__real_malloc(size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void __wrap_free(void *p);

#define TRACK_SLOTS 1024
#define MARKER      "S3CR3T"

static struct {
    void *p;
    size_t size;
} s_slots[TRACK_SLOTS];
static int s_track;
static unsigned s_tracked;
static unsigned s_dirty_frees;

void *__wrap_malloc(size_t size)
{
    void *p = __real_malloc(size);

    if (s_track && p) {
        memset(p, 0, size); /* the scan in __wrap_free reads the whole block, spare bytes too */
    }
    for (size_t i = 0; s_track && p && i < TRACK_SLOTS; i++) {
        if (!s_slots[i].p) {
            s_slots[i].p = p;
            s_slots[i].size = size;
            s_tracked++;
            break;
        }
    }
    return p;
}

void __wrap_free(void *p)
{
    for (size_t i = 0; s_track && p && i < TRACK_SLOTS; i++) {
        if (s_slots[i].p == p) {
            for (size_t k = 0; k + strlen(MARKER) <= s_slots[i].size; k++) {
                if (memcmp((char *)p + k, MARKER, strlen(MARKER)) == 0) {
                    s_dirty_frees++;
                    break;
                }
            }
            s_slots[i].p = NULL;
            break;
        }
    }
    __real_free(p);
}

/* What the cache holds for one upstream answer, made by the same code the clients use. */
static void cached(enum upstream_op op, long status, const char *type, const char *body, size_t len,
                   struct cache_value *v)
{
    struct upstream_result r;

    memset(v, 0, sizeof(*v));
    (void)upstream_read(op, status, type, body, len, &r);
    answer_from_upstream(&r, v);
    upstream_result_release(&r);
}

/* The cached answer for a secret whose SecretString (or, with binary, SecretBinary) is the JSON
 * string literal lit, written as AWS would send it (escapes included). */
static void secret_lit(const char *lit, int binary, struct cache_value *v)
{
    char up[8192];
    int n = snprintf(up, sizeof(up),
                     "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:s\",\"Name\":\"s\","
                     "\"%s\":%s,\"VersionId\":\"v1\",\"VersionStages\":[\"AWSCURRENT\"],"
                     "\"CreatedDate\":1.7e9}",
                     binary ? "SecretBinary" : "SecretString", lit);

    assert_true(n > 0 && (size_t)n < sizeof(up));
    cached(UPSTREAM_GET_SECRET_VALUE, 200, NULL, up, (size_t)n, v);
    assert_int_equal(v->status, 200);
}

/* The same for a SecretString given as its plain text (escaped here by cJSON). */
static void secret_text(const char *text, struct cache_value *v)
{
    cJSON *s = cJSON_CreateString(text);
    char *lit = cJSON_PrintUnformatted(s);

    secret_lit(lit, 0, v);
    cJSON_free(lit);
    cJSON_Delete(s);
}

static void parameter(const char *type, const char *value_lit, struct cache_value *v)
{
    char up[4096];
    int n = snprintf(up, sizeof(up),
                     "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-1:1:parameter/p\","
                     "\"DataType\":\"text\",\"LastModifiedDate\":1.7e9,\"Name\":\"/p\","
                     "\"Type\":\"%s\",\"Value\":%s,\"Version\":3}}",
                     type, value_lit);

    assert_true(n > 0 && (size_t)n < sizeof(up));
    cached(UPSTREAM_GET_PARAMETER, 200, NULL, up, (size_t)n, v);
    assert_int_equal(v->status, 200);
}

static void expect(struct cache_value *v, const char *ctype, int status, const char *want_ctype,
                   const void *want, size_t want_len)
{
    assert_int_equal(v->status, status);
    assert_string_equal(ctype, want_ctype);
    assert_int_equal(v->len, want_len);
    assert_memory_equal(v->body, want, want_len);
    assert_int_equal(v->body[v->len], '\0');
}

static void expect_error(struct cache_value *v, const char *ctype, int status, const char *type,
                         const char *must_not_hold)
{
    cJSON *j;

    assert_int_equal(v->status, status);
    assert_string_equal(ctype, SHAPE_JSON);
    j = cJSON_ParseWithLength(v->body, v->len);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "__type")->valuestring, type);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")));
    cJSON_Delete(j);
    if (must_not_hold) {
        assert_null(strstr(v->body, must_not_hold));
    }
}

static const char *shape_secret(struct cache_value *v, int raw, const char *key)
{
    struct shape_req r = {.raw = raw, .json_key = key};

    return shape_value(SHAPE_SECRET, &r, v);
}

static void test_raw_string(void **state)
{
    static const char text[] = "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \"q\" \\ \n\t/end";
    struct cache_value v;
    const char *ct;

    (void)state;
    secret_text(text, &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_TEXT, text, sizeof(text) - 1);
    cache_value_release(&v);

    /* Escapes as AWS may send them: \u00e9, a surrogate pair, \/ and \b. */
    secret_lit("\"\\u00e9\\ud83d\\ude00\\/\\b\\f\\r\"", 0, &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_TEXT, "\xc3\xa9\xf0\x9f\x98\x80/\b\f\r", 10);
    cache_value_release(&v);

    /* Inside a JSON secret, a lone surrogate has no UTF-8 form: U+FFFD, as TextEncoder writes
     * it (upstream's own JSON cannot hold one: the client refuses such an answer). */
    secret_text("{\"a\":\"a\\ud800b\\udc00\\ud83d\"}", &v);
    ct = shape_secret(&v, 0, "a");
    expect(&v, ct, 200, SHAPE_TEXT,
           "a\xef\xbf\xbd"
           "b\xef\xbf\xbd\xef\xbf\xbd",
           11);
    cache_value_release(&v);

    /* An empty secret is an empty 200, not an error. */
    secret_text("", &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_TEXT, "", 0);
    cache_value_release(&v);

    /* raw=false and nothing else: the AWS-shaped answer, untouched. */
    secret_text("x", &v);
    {
        char *before = strdup(v.body);
        struct shape_req none = {0};

        ct = shape_value(SHAPE_SECRET, &none, &v);
        expect(&v, ct, 200, SHAPE_JSON, before, strlen(before));
        free(before);
    }
    cache_value_release(&v);
}

static void test_raw_binary(void **state)
{
    struct cache_value v;
    const char *ct;

    (void)state;
    /* 00 01 ff 00 fe: NULs inside and at the end; "AAH/AP4=" is its base64 (one '='). */
    secret_lit("\"AAH/AP4=\"", 1, &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_BINARY, "\x00\x01\xff\x00\xfe", 5);
    cache_value_release(&v);
    /* Two '=' and none. */
    secret_lit("\"AA==\"", 1, &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_BINARY, "\x00", 1);
    cache_value_release(&v);
    secret_lit("\"AAEC\"", 1, &v);
    ct = shape_secret(&v, 1, NULL);
    expect(&v, ct, 200, SHAPE_BINARY, "\x00\x01\x02", 3);
    cache_value_release(&v);
    /* Base64 AWS would never send: an error, never garbage bytes. */
    secret_lit("\"AA=A\"", 1, &v);
    ct = shape_secret(&v, 1, NULL);
    expect_error(&v, ct, 500, "InternalFailure", NULL);
    cache_value_release(&v);
    secret_lit("\"AAE\"", 1, &v);
    ct = shape_secret(&v, 1, NULL);
    expect_error(&v, ct, 500, "InternalFailure", NULL);
    cache_value_release(&v);
    /* jsonKey on a binary secret. */
    secret_lit("\"AAEC\"", 1, &v);
    ct = shape_secret(&v, 0, "k");
    expect_error(&v, ct, 400, "SecretNotJson", NULL);
    cache_value_release(&v);
}

/* A SecretString holding JSON with every kind of member; jsonKey=key must answer want. */
static const char s_doc[] =
    " {\"user\":\"admin\", \"pass\":\"p\\\"w\\\\d\\u00e9\\n\", \"n\": 12345678901234567890 ,"
    "\"f\":-0.5e+3,\"nested\":{\"a\":[1,{\"b\":null}],\"s\":\"x,y\"},\"arr\":[ ],"
    "\"t\":true,\"nil\":null,\"e\":\"\",\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\":\"\xd0\xb7\","
    "\"k\\u00e9y\":\"escaped key\",\"emoji\\ud83d\\ude00\":\"pair\",\"dup\":1,\"dup\":\"two\"} ";

static void key_is(const char *key, const char *want_ctype, const char *want)
{
    struct cache_value v;
    const char *ct;

    secret_text(s_doc, &v);
    ct = shape_secret(&v, 0, key);
    expect(&v, ct, 200, want_ctype, want, strlen(want));
    cache_value_release(&v);
}

static void test_json_key(void **state)
{
    (void)state;
    key_is("user", SHAPE_TEXT, "admin");
    key_is("pass", SHAPE_TEXT, "p\"w\\d\xc3\xa9\n");
    /* Numbers keep their exact text (a double would round this one). */
    key_is("n", SHAPE_JSON, "12345678901234567890");
    key_is("f", SHAPE_JSON, "-0.5e+3");
    key_is("nested", SHAPE_JSON, "{\"a\":[1,{\"b\":null}],\"s\":\"x,y\"}");
    key_is("arr", SHAPE_JSON, "[ ]");
    key_is("t", SHAPE_JSON, "true");
    key_is("nil", SHAPE_JSON, "null");
    key_is("e", SHAPE_TEXT, "");
    key_is("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", SHAPE_TEXT, "\xd0\xb7");
    /* Keys compare after unescaping. */
    key_is("k\xc3\xa9y", SHAPE_TEXT, "escaped key");
    key_is("emoji\xf0\x9f\x98\x80", SHAPE_TEXT, "pair");
    /* A repeated key: the last one, as JSON.parse takes it. */
    key_is("dup", SHAPE_TEXT, "two");
}

static void test_json_key_errors(void **state)
{
    struct cache_value v;
    const char *ct;
    static const char *const not_json[] = {
        "hunter2-not-json",
        "{\"a\":1} trailing",
        "{\"a\":01}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":tru}",
        "{\"a\":1.}",
        "{\"a\":-}",
        "{\"a\":[1,2}",
        "{\"a\":1",
        "",
    };
    char deep[600];

    (void)state;
    /* Missing key: 404, and the body holds none of the secret. */
    secret_text("{\"user\":\"admin\",\"pass\":\"s3cr3t-value\"}", &v);
    ct = shape_secret(&v, 0, "password");
    expect_error(&v, ct, 404, "JsonKeyNotFound", "s3cr3t-value");
    assert_null(strstr(v.body, "password"));
    cache_value_release(&v);
    /* Key comparison is exact: no case folding, no trimming. */
    secret_text("{\"User\":\"admin\"}", &v);
    ct = shape_secret(&v, 0, "user");
    expect_error(&v, ct, 404, "JsonKeyNotFound", "admin");
    cache_value_release(&v);
    /* Nested keys are not top-level. */
    secret_text("{\"a\":{\"b\":\"inner-secret\"}}", &v);
    ct = shape_secret(&v, 0, "b");
    expect_error(&v, ct, 404, "JsonKeyNotFound", "inner-secret");
    cache_value_release(&v);
    /* An empty object. */
    secret_text("{ }", &v);
    ct = shape_secret(&v, 0, "a");
    expect_error(&v, ct, 404, "JsonKeyNotFound", NULL);
    cache_value_release(&v);

    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        secret_text(not_json[i], &v);
        ct = shape_secret(&v, 0, "a");
        expect_error(&v, ct, 400, "SecretNotJson", *not_json[i] ? not_json[i] : NULL);
        cache_value_release(&v);
    }
    /* JSON, but not an object. */
    secret_text("[\"x\",1]", &v);
    ct = shape_secret(&v, 0, "a");
    expect_error(&v, ct, 400, "SecretNotJson", NULL);
    cache_value_release(&v);
    secret_text(" \"just-a-string\" ", &v);
    ct = shape_secret(&v, 0, "a");
    expect_error(&v, ct, 400, "SecretNotJson", "just-a-string");
    cache_value_release(&v);
    /* Nested deeper than SHAPE_MAX_DEPTH: refused, not a stack overflow. */
    memset(deep, '[', sizeof(deep) - 1);
    deep[0] = '{';
    deep[1] = '"';
    deep[2] = 'a';
    deep[3] = '"';
    deep[4] = ':';
    deep[sizeof(deep) - 1] = '\0';
    secret_text(deep, &v);
    ct = shape_secret(&v, 0, "a");
    expect_error(&v, ct, 400, "SecretNotJson", NULL);
    cache_value_release(&v);
}

static void test_passthrough(void **state)
{
    struct cache_value v = {0};
    const char *ct;
    static const char err[] = "{\"__type\":\"ResourceNotFoundException\",\"message\":\"no\"}";

    (void)state;
    /* Errors go through untouched, whatever was asked. */
    cached(UPSTREAM_GET_SECRET_VALUE, 400, "ResourceNotFoundException", err, sizeof(err) - 1, &v);
    {
        char *before = strdup(v.body);
        int status = v.status;

        ct = shape_secret(&v, 0, "k");
        expect(&v, ct, status, SHAPE_JSON, before, strlen(before));
        free(before);
    }
    cache_value_release(&v);
    /* A 200 that is not the AWS shape: 500, never a guess. */
    v.kind = CACHE_VALUE;
    v.status = 200;
    v.body = strdup("{\"Other\":1}");
    v.len = strlen(v.body);
    ct = shape_secret(&v, 1, NULL);
    expect_error(&v, ct, 500, "InternalFailure", NULL);
    cache_value_release(&v);
    v.kind = CACHE_VALUE;
    v.status = 200;
    v.body = strdup("{\"Other\":1}");
    v.len = strlen(v.body);
    {
        struct shape_req raw = {.raw = 1};

        ct = shape_value(SHAPE_PARAMETER, &raw, &v);
    }
    expect_error(&v, ct, 500, "InternalFailure", NULL);
    cache_value_release(&v);
}

static const char *shape_param(struct cache_value *v, int split)
{
    struct shape_req r = {.raw = 1, .split = split};

    return shape_value(SHAPE_PARAMETER, &r, v);
}

static void test_parameter(void **state)
{
    struct cache_value v;
    const char *ct;

    (void)state;
    parameter("String", "\"v\\u00e9 \\\"q\\\" ,x\"", &v);
    ct = shape_param(&v, 0);
    expect(&v, ct, 200, SHAPE_TEXT, "v\xc3\xa9 \"q\" ,x", 10);
    cache_value_release(&v);
    parameter("SecureString", "\"plain-decrypted\"", &v);
    ct = shape_param(&v, 0);
    expect(&v, ct, 200, SHAPE_TEXT, "plain-decrypted", 15);
    cache_value_release(&v);
    parameter("String", "\"\"", &v);
    ct = shape_param(&v, 0);
    expect(&v, ct, 200, SHAPE_TEXT, "", 0);
    cache_value_release(&v);
    /* StringList raw without split: the Value as it is. */
    parameter("StringList", "\"a,b\"", &v);
    ct = shape_param(&v, 0);
    expect(&v, ct, 200, SHAPE_TEXT, "a,b", 3);
    cache_value_release(&v);
}

static void split_is(const char *value_lit, const char *want)
{
    struct cache_value v;
    const char *ct;

    parameter("StringList", value_lit, &v);
    ct = shape_param(&v, 1);
    expect(&v, ct, 200, SHAPE_JSON, want, strlen(want));
    cache_value_release(&v);
}

static void test_split(void **state)
{
    struct cache_value v;
    const char *ct;

    (void)state;
    split_is("\"a,b,c\"", "[\"a\",\"b\",\"c\"]");
    split_is("\"a,,b,\"", "[\"a\",\"\",\"b\",\"\"]");
    split_is("\"\"", "[\"\"]");
    split_is("\",\"", "[\"\",\"\"]");
    split_is("\"one\"", "[\"one\"]");
    split_is("\" sp ace ,\\u00e9\\\"q\\\\\\n\"", "[\" sp ace \",\"\xc3\xa9\\\"q\\\\\\n\"]");
    /* split on any other Type: 400 naming the rule, not the value. */
    parameter("String", "\"a,b-secret\"", &v);
    ct = shape_param(&v, 1);
    expect_error(&v, ct, 400, "ParameterNotStringList", "b-secret");
    cache_value_release(&v);
}

/* Every copy of a secret that shaping makes (decoded text, member values, split items, the
 * answer itself) is wiped before it is freed. */
static void shape_tracked(enum shape_service svc, const struct shape_req *req,
                          struct cache_value *v, int want_status)
{
    memset(s_slots, 0, sizeof(s_slots));
    s_tracked = 0;
    s_dirty_frees = 0;
    s_track = 1;
    (void)shape_value(svc, req, v);
    assert_int_equal(v->status, want_status);
    cache_value_release(v);
    s_track = 0;
    assert_true(s_tracked > 0); /* the tracking saw the allocations */
    assert_int_equal(s_dirty_frees, 0);
}

static void test_wiped(void **state)
{
    struct cache_value v;
    struct shape_req raw = {.raw = 1};
    struct shape_req key = {.json_key = "k"};
    struct shape_req nested = {.json_key = "n"};
    struct shape_req missing = {.json_key = "S3CR3T-not-there"};
    struct shape_req split = {.raw = 1, .split = 1};

    (void)state;
    secret_text("S3CR3T plain", &v);
    shape_tracked(SHAPE_SECRET, &raw, &v, 200);
    secret_text("{\"S3CR3T-key\":1,\"k\":\"S3CR3T-\\u00e9\",\"n\":{\"x\":\"S3CR3T\"}}", &v);
    shape_tracked(SHAPE_SECRET, &key, &v, 200);
    secret_text("{\"S3CR3T-key\":1,\"k\":\"S3CR3T-\\u00e9\",\"n\":{\"x\":\"S3CR3T\"}}", &v);
    shape_tracked(SHAPE_SECRET, &nested, &v, 200);
    secret_text("{\"S3CR3T-key\":\"S3CR3T\"}", &v);
    shape_tracked(SHAPE_SECRET, &missing, &v, 404);
    secret_text("S3CR3T, not JSON", &v);
    shape_tracked(SHAPE_SECRET, &key, &v, 400);
    /* "S3CR3T\0\1" in base64. */
    secret_lit("\"UzNDUjNUAAE=\"", 1, &v);
    shape_tracked(SHAPE_SECRET, &raw, &v, 200);
    parameter("StringList", "\"a,S3CR3T,b\"", &v);
    shape_tracked(SHAPE_PARAMETER, &split, &v, 200);
    parameter("SecureString", "\"S3CR3T\"", &v);
    shape_tracked(SHAPE_PARAMETER, &raw, &v, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_string),  cmocka_unit_test(test_raw_binary),
        cmocka_unit_test(test_json_key),    cmocka_unit_test(test_json_key_errors),
        cmocka_unit_test(test_passthrough), cmocka_unit_test(test_parameter),
        cmocka_unit_test(test_split),       cmocka_unit_test(test_wiped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
