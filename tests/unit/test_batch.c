/* Unit tests for extension/batch: batch documents built from single answers, parsed back with
 * cJSON and compared field by field (unicode, escapes, binary, order, errors, refusals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <string.h>

#include "extension/batch.h"

#define SECRET_A                                                                               \
    "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf\","              \
    "\"CreatedDate\":\"2026-01-01T00:00:00.000Z\",\"Name\":\"a\",\"SecretBinary\":null,"       \
    "\"SecretString\":\"{\\\"k\\\":\\\"\xc3\xa9t\xc3\xa9 \\u2603\\\"}\",\"VersionId\":\"v1\"," \
    "\"VersionStages\":[\"AWSCURRENT\"],\"ResultMetadata\":{}}"
#define SECRET_B                                                                           \
    "{\"ARN\":null,\"CreatedDate\":null,\"Name\":\"b/bin\",\"SecretBinary\":\"AAEC/w==\"," \
    "\"SecretString\":null,\"VersionId\":\"v2\",\"VersionStages\":[\"AWSCURRENT\"],"       \
    "\"ResultMetadata\":{}}"
#define NOT_FOUND                                                                             \
    "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Secrets Manager can't find the " \
    "specified secret.\"}"
#define PARAM_A                                                                             \
    "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-1:123456789012:parameter/app/a\","       \
    "\"DataType\":\"text\",\"LastModifiedDate\":\"2026-01-01T00:00:00.000Z\",\"Name\":"     \
    "\"/app/a\",\"Selector\":null,\"SourceResult\":null,\"Type\":\"StringList\",\"Value\":" \
    "\"a,b,\xe2\x98\x83\",\"Version\":3},\"ResultMetadata\":{}}"

static cJSON *render(int secrets, const struct batch_item *items, size_t n, enum stash_err *rc)
{
    struct buf b = BUF_INIT(1 << 20);
    cJSON *doc = NULL;

    *rc = secrets ? batch_render_secrets(items, n, &b) : batch_render_parameters(items, n, &b);
    if (*rc == STASH_OK) {
        doc = cJSON_ParseWithLength(b.data, b.len);
        assert_non_null(doc);
    }
    buf_release_secret(&b);
    return doc;
}

static const char *str_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_secrets_values_and_errors_in_order(void **state)
{
    struct batch_item items[] = {
        {"b/bin", 200, SECRET_B, sizeof(SECRET_B) - 1},
        {"gone \"x\"", 400, NOT_FOUND, sizeof(NOT_FOUND) - 1},
        {"a", 200, SECRET_A, sizeof(SECRET_A) - 1},
    };
    enum stash_err rc;
    cJSON *doc = render(1, items, 3, &rc);
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(doc, "SecretValues");
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(doc, "Errors");
    const cJSON *v0, *v1, *e0;

    (void)state;
    assert_int_equal(rc, STASH_OK);
    assert_int_equal(cJSON_GetArraySize(vals), 2);
    assert_int_equal(cJSON_GetArraySize(errs), 1);
    v0 = cJSON_GetArrayItem(vals, 0);
    v1 = cJSON_GetArrayItem(vals, 1);
    assert_string_equal(str_at(v0, "Name"), "b/bin");
    assert_string_equal(str_at(v0, "SecretBinary"), "AAEC/w==");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v0, "SecretString")));
    assert_string_equal(str_at(v1, "Name"), "a");
    assert_string_equal(str_at(v1, "SecretString"), "{\"k\":\"\xc3\xa9t\xc3\xa9 \xe2\x98\x83\"}");
    assert_string_equal(str_at(v1, "CreatedDate"), "2026-01-01T00:00:00.000Z");
    /* The single answer's metadata is not carried into the items. */
    assert_null(cJSON_GetObjectItemCaseSensitive(v1, "ResultMetadata"));
    e0 = cJSON_GetArrayItem(errs, 0);
    assert_string_equal(str_at(e0, "SecretId"), "gone \"x\"");
    assert_string_equal(str_at(e0, "ErrorCode"), "ResourceNotFoundException");
    assert_string_equal(str_at(e0, "Message"), "Secrets Manager can't find the specified secret.");
    cJSON_Delete(doc);
}

static void test_secrets_error_without_type(void **state)
{
    struct batch_item items[] = {{"x", 502, "not json", 8}, {"y", 500, NULL, 0}};
    enum stash_err rc;
    cJSON *doc = render(1, items, 2, &rc);
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(doc, "Errors");

    (void)state;
    assert_int_equal(rc, STASH_OK);
    assert_int_equal(cJSON_GetArraySize(errs), 2);
    assert_string_equal(str_at(cJSON_GetArrayItem(errs, 0), "ErrorCode"), "InternalFailure");
    assert_true(
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(errs, 1), "Message")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "SecretValues")), 0);
    cJSON_Delete(doc);
}

static void test_secrets_refuse_other_shapes(void **state)
{
    static const char *bad[] = {
        "{\"Name\":\"a\"}",                 /* no metadata member */
        "[\"Name\",\"ResultMetadata\":{}}", /* not an object */
        ",\"ResultMetadata\":{}}",          /* nothing before it */
    };
    struct buf b = BUF_INIT(4096);

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct batch_item it = {"a", 200, bad[i], strlen(bad[i])};

        assert_int_equal(batch_render_secrets(&it, 1, &b), STASH_EINVAL);
        buf_reset(&b);
    }
    buf_release(&b);
}

static void test_parameters_and_invalid(void **state)
{
    static const char nf[] = "{\"__type\":\"ParameterNotFound\",\"message\":null}";
    static const char vnf[] = "{\"__type\":\"ParameterVersionNotFound\",\"message\":\"v\"}";
    struct batch_item items[] = {
        {"/missing", 400, nf, sizeof(nf) - 1},
        {"/app/a", 200, PARAM_A, sizeof(PARAM_A) - 1},
        {"/app/a:9", 400, vnf, sizeof(vnf) - 1},
    };
    enum stash_err rc;
    cJSON *doc = render(0, items, 3, &rc);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(doc, "Parameters");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(doc, "InvalidParameters");
    const cJSON *p0;

    (void)state;
    assert_int_equal(rc, STASH_OK);
    assert_int_equal(cJSON_GetArraySize(ps), 1);
    p0 = cJSON_GetArrayItem(ps, 0);
    assert_string_equal(str_at(p0, "Name"), "/app/a");
    assert_string_equal(str_at(p0, "Value"), "a,b,\xe2\x98\x83");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p0, "Version")->valueint, 3);
    assert_int_equal(cJSON_GetArraySize(inv), 2);
    assert_string_equal(cJSON_GetArrayItem(inv, 0)->valuestring, "/missing");
    assert_string_equal(cJSON_GetArrayItem(inv, 1)->valuestring, "/app/a:9");
    cJSON_Delete(doc);
}

/* GetParameters has no place for an access or throttling error of one name: refused, so the
 * caller answers that error itself. */
static void test_parameters_other_error_refused(void **state)
{
    static const char denied[] = "{\"__type\":\"AccessDeniedException\",\"message\":\"no\"}";
    struct batch_item items[] = {
        {"/app/a", 200, PARAM_A, sizeof(PARAM_A) - 1},
        {"/app/b", 400, denied, sizeof(denied) - 1},
    };
    struct buf b = BUF_INIT(4096);
    struct batch_item secret = {"a", 200, SECRET_A, sizeof(SECRET_A) - 1};

    (void)state;
    assert_int_equal(batch_render_parameters(items, 2, &b), STASH_EINVAL);
    buf_reset(&b);
    assert_int_equal(batch_render_parameters(&secret, 1, &b), STASH_EINVAL);
    buf_release(&b);
}

static void test_ceiling(void **state)
{
    struct batch_item it = {"a", 200, SECRET_A, sizeof(SECRET_A) - 1};
    struct buf b = BUF_INIT(64);

    (void)state;
    assert_int_equal(batch_render_secrets(&it, 1, &b), STASH_ETOOBIG);
    buf_release(&b);
}

static void test_error_type(void **state)
{
    char t[16];

    (void)state;
    batch_error_type(NOT_FOUND, sizeof(NOT_FOUND) - 1, t, sizeof(t));
    assert_string_equal(t, "ResourceNotFoun"); /* cut to the room given, NUL-terminated */
    batch_error_type("{\"__type\":\"\"}", 13, t, sizeof(t));
    assert_string_equal(t, "InternalFailure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets_values_and_errors_in_order),
        cmocka_unit_test(test_secrets_error_without_type),
        cmocka_unit_test(test_secrets_refuse_other_shapes),
        cmocka_unit_test(test_parameters_and_invalid),
        cmocka_unit_test(test_parameters_other_error_refused),
        cmocka_unit_test(test_ceiling),
        cmocka_unit_test(test_error_type),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
