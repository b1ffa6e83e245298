/* The two sides of the wire agree: stash's upstream client (cache/aws.c) against fake-aws, in one
 * process, on a loopback port picked by the kernel.  Checks that what fake-aws sends is what the
 * client expects (shapes, dates, errors, throttles it retries, hangs it times out on) and that the
 * client keeps its connection alive (fake-aws counts TCP connections).  Both sides use
 * cache/sigv4.c; tests/integration/fake_aws.sh checks fake-aws with independent signers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/aws.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/answer.h"
#include "sim/fake_aws/control.h"
#include "sim/fake_aws/data.h"
#include "sim/fake_aws/server.h"

#define AKID   "ASIAUPSTREAMTEST"
#define SECRET "upstream-test-secret"
#define TOKEN  "upstream-test-token"

static const struct fa_cred s_creds[] = {{AKID, SECRET, TOKEN}};

struct fixture {
    struct fa_data *data;
    struct fa_control *control;
    struct fa_server *server;
};

static struct fixture s_fx;

static int setup(void **state)
{
    const char *root = getenv("STASH_ROOT");
    char path[4096];
    struct buf why = BUF_INIT(0);
    struct fa_server_config cfg;

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/sim/fake_aws/sample-data.json", root ? root : ".");
    if (fa_data_load(path, "eu-west-1", &s_fx.data, &why)) {
        (void)fprintf(stderr, "sample data: %s\n", why.data ? why.data : "?");
        buf_release(&why);
        return -1;
    }
    buf_release(&why);
    s_fx.control = fa_control_new(0, 0, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.data = s_fx.data;
    cfg.control = s_fx.control;
    cfg.creds = s_creds;
    cfg.ncreds = 1;
    return fa_server_start(&cfg, &s_fx.server) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    fa_server_stop(s_fx.server);
    fa_control_free(s_fx.control);
    fa_data_free(s_fx.data);
    return 0;
}

static struct aws_client *client(long timeout_ms, unsigned max_attempts, const char *secret)
{
    char url[64];
    struct aws_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%u", fa_server_port(s_fx.server));
    cfg.region = "eu-west-1";
    cfg.access_key_id = AKID;
    cfg.secret_access_key = secret ? secret : SECRET;
    cfg.session_token = TOKEN;
    cfg.sm_endpoint = url;
    cfg.ssm_endpoint = url;
    cfg.sm_timeout_ms = timeout_ms;
    cfg.ssm_timeout_ms = timeout_ms;
    cfg.max_connections = 1;
    cfg.max_attempts = max_attempts;
    cfg.backoff_base_ms = 1;
    return aws_client_new(&cfg);
}

/* A call and the local API's answer for its result (extension/answer.h). */
static void get_secret(struct aws_client *c, const struct aws_sm_request *req,
                       struct cache_value *v, struct facts *f)
{
    struct upstream_result r;

    aws_get_secret_value(c, req, &r, f);
    answer_from_upstream(&r, v);
    upstream_result_release(&r);
}

static void get_parameter(struct aws_client *c, const struct aws_ssm_request *req,
                          struct cache_value *v, struct facts *f)
{
    struct upstream_result r;

    aws_get_parameter(c, req, &r, f);
    answer_from_upstream(&r, v);
    upstream_result_release(&r);
}

/* The stats document, parsed; the caller deletes it. */
static cJSON *stats(void)
{
    struct buf b = BUF_INIT(0);
    cJSON *j;

    assert_int_equal(fa_control_stats(s_fx.control, &b), STASH_OK);
    j = cJSON_Parse(b.data);
    buf_release(&b);
    assert_non_null(j);
    return j;
}

static long op_count(const cJSON *s, const char *op, const char *what)
{
    return (long)cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "ops"), op), what)
        ->valuedouble;
}

static cJSON *body_json(const struct cache_value *v)
{
    cJSON *j = cJSON_ParseWithLength(v->body, v->len);

    if (!j) {
        fail_msg("not JSON: %.*s", (int)v->len, v->body);
    }
    return j;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_secret_value_and_keep_alive(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct aws_sm_request req = {"prod/db", NULL, NULL};
    struct cache_value v = {0};
    struct facts f;
    cJSON *j;
    cJSON *s;

    (void)state;
    fa_control_reset(s_fx.control);
    for (int i = 0; i < 5; i++) {
        memset(&f, 0, sizeof(f));
        get_secret(c, &req, &v, &f);
        assert_int_equal(v.status, 200);
        assert_int_equal(f.ncalls, 1);
        assert_int_equal(f.calls[0].http_status, 200);
        if (i < 4) {
            cache_value_release(&v);
        }
    }
    j = body_json(&v);
    assert_string_equal(str(j, "Name"), "prod/db");
    assert_non_null(strstr(str(j, "SecretString"), "n3w-Pa55word"));
    /* fake-aws sends epoch seconds; the client turns them into the extension's ISO form. */
    assert_string_equal(str(j, "CreatedDate"), "2026-02-10T09:00:00.250Z");
    assert_non_null(strstr(str(j, "ARN"), "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
                                          "prod/db-"));
    cJSON_Delete(j);
    cache_value_release(&v);

    s = stats();
    assert_int_equal(op_count(s, "GetSecretValue", "calls"), 5);
    assert_int_equal(op_count(s, "GetSecretValue", "errors"), 0);
    assert_int_equal((long)cJSON_GetObjectItem(s, "api_connections")->valuedouble, 1);
    assert_int_equal((long)cJSON_GetObjectItem(s, "auth_failures")->valuedouble, 0);
    cJSON_Delete(s);
    aws_client_free(c);
}

static void test_binary_previous_and_not_found(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct aws_sm_request bin = {"prod/tls-key", NULL, NULL};
    struct aws_sm_request prev = {"prod/db", NULL, "AWSPREVIOUS"};
    struct aws_sm_request none = {"prod/nope", NULL, NULL};
    struct cache_value v = {0};
    struct facts f = {0};
    cJSON *j;

    (void)state;
    get_secret(c, &bin, &v, &f);
    assert_int_equal(v.status, 200);
    j = body_json(&v);
    assert_string_equal(str(j, "SecretBinary"), "AAECAwQFBgcICQoLDA0ODxAREhP/");
    cJSON_Delete(j);
    cache_value_release(&v);

    get_secret(c, &prev, &v, &f);
    assert_int_equal(v.status, 200);
    j = body_json(&v);
    assert_non_null(strstr(str(j, "SecretString"), "old-Pa55word"));
    cJSON_Delete(j);
    cache_value_release(&v);

    memset(&f, 0, sizeof(f));
    get_secret(c, &none, &v, &f);
    assert_int_equal(v.status, 400);
    assert_int_equal(f.ncalls, 1); /* a 4xx is not retried */
    j = body_json(&v);
    assert_string_equal(str(j, "__type"), "ResourceNotFoundException");
    assert_string_equal(str(j, "message"), "Secrets Manager can't find the specified secret.");
    cJSON_Delete(j);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_parameters(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct aws_ssm_request label = {"/app/prod/feature-flags", NULL, "canary", 0};
    struct aws_ssm_request version = {"/app/prod/feature-flags", "1", NULL, 0};
    struct aws_ssm_request secure = {"/app/prod/db/password", NULL, NULL, 1};
    struct aws_ssm_request missing = {"/app/prod/nope", NULL, NULL, 0};
    struct aws_ssm_request ref = {"/aws/reference/secretsmanager/prod/api-key", NULL, NULL, 1};
    struct cache_value v = {0};
    struct facts f = {0};
    cJSON *j;
    const cJSON *p;

    (void)state;
    get_parameter(c, &label, &v, &f);
    assert_int_equal(v.status, 200);
    j = body_json(&v);
    p = cJSON_GetObjectItem(j, "Parameter");
    assert_int_equal(cJSON_GetObjectItem(p, "Version")->valueint, 2);
    assert_string_equal(str(p, "Selector"), ":canary");
    assert_string_equal(str(p, "LastModifiedDate"), "2026-02-01T00:00:00.000Z");
    cJSON_Delete(j);
    cache_value_release(&v);

    get_parameter(c, &version, &v, &f);
    j = body_json(&v);
    assert_string_equal(str(cJSON_GetObjectItem(j, "Parameter"), "Value"), "{\"beta\":false}");
    cJSON_Delete(j);
    cache_value_release(&v);

    get_parameter(c, &secure, &v, &f);
    j = body_json(&v);
    assert_string_equal(str(cJSON_GetObjectItem(j, "Parameter"), "Value"), "s3cure-Pa55");
    cJSON_Delete(j);
    cache_value_release(&v);

    get_parameter(c, &ref, &v, &f);
    assert_int_equal(v.status, 200);
    j = body_json(&v);
    p = cJSON_GetObjectItem(j, "Parameter");
    assert_non_null(str(p, "SourceResult"));
    assert_string_equal(str(p, "Type"), "SecureString");
    cJSON_Delete(j);
    cache_value_release(&v);

    get_parameter(c, &missing, &v, &f);
    assert_int_equal(v.status, 400);
    j = body_json(&v);
    assert_string_equal(str(j, "__type"), "ParameterNotFound");
    cJSON_Delete(j);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_throttle_is_retried(void **state)
{
    struct aws_client *c = client(5000, 3, NULL);
    struct aws_ssm_request req = {"/app/prod/db/host", NULL, NULL, 0};
    struct cache_value v = {0};
    struct facts f = {0};
    cJSON *s;

    (void)state;
    fa_control_reset(s_fx.control);
    assert_int_equal(
        fa_control_add(s_fx.control, FA_FAULT_THROTTLE, FA_OP_GET_PARAMETER, 2, 0, NULL, NULL, 0),
        STASH_OK);
    get_parameter(c, &req, &v, &f);
    assert_int_equal(v.status, 200);
    assert_int_equal(f.ncalls, 3);
    assert_true(f.calls[0].throttled && f.calls[1].throttled && !f.calls[2].throttled);
    assert_int_equal(f.calls[0].http_status, 400);
    cache_value_release(&v);
    s = stats();
    assert_int_equal(op_count(s, "GetParameter", "calls"), 3);
    assert_int_equal(op_count(s, "GetParameter", "throttled"), 2);
    cJSON_Delete(s);

    /* Throttled on every attempt: the caller gets 429. */
    assert_int_equal(
        fa_control_add(s_fx.control, FA_FAULT_THROTTLE, FA_OP_GET_PARAMETER, 3, 0, NULL, NULL, 0),
        STASH_OK);
    memset(&f, 0, sizeof(f));
    get_parameter(c, &req, &v, &f);
    assert_int_equal(v.status, 429);
    assert_int_equal(f.ncalls, 3);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_server_error_then_recovery(void **state)
{
    struct aws_client *c = client(5000, 2, NULL);
    struct aws_sm_request req = {"prod/api-key", NULL, NULL};
    struct cache_value v = {0};
    struct facts f = {0};
    cJSON *j;

    (void)state;
    fa_control_reset(s_fx.control);
    assert_int_equal(fa_control_add(s_fx.control, FA_FAULT_FAIL, FA_OP_GET_SECRET_VALUE, 2, 500,
                                    "InternalServiceError", "injected", 0),
                     STASH_OK);
    get_secret(c, &req, &v, &f);
    assert_int_equal(v.status, 500);
    assert_int_equal(f.ncalls, 2);
    j = body_json(&v);
    assert_string_equal(str(j, "__type"), "InternalServiceError");
    cJSON_Delete(j);
    cache_value_release(&v);
    memset(&f, 0, sizeof(f));
    get_secret(c, &req, &v, &f);
    assert_int_equal(v.status, 200);
    assert_int_equal(f.ncalls, 1);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_rotation_is_seen(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct aws_sm_request req = {"prod/api-key", NULL, NULL};
    struct cache_value v = {0};
    struct facts f = {0};
    char id[FA_VERSION_ID_MAX + 1];
    cJSON *j;

    (void)state;
    assert_int_equal(
        fa_data_rotate(s_fx.data, "prod/api-key", "rotated-in-test", 15, 0, NULL, 1800000000.0, id),
        STASH_OK);
    get_secret(c, &req, &v, &f);
    j = body_json(&v);
    assert_string_equal(str(j, "SecretString"), "rotated-in-test");
    assert_string_equal(str(j, "VersionId"), id);
    assert_string_equal(str(j, "CreatedDate"), "2027-01-15T08:00:00.000Z");
    cJSON_Delete(j);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_hang_times_out(void **state)
{
    struct aws_client *c = client(300, 1, NULL);
    struct aws_sm_request req = {"prod/db", NULL, NULL};
    struct cache_value v = {0};
    struct facts f = {0};

    (void)state;
    fa_control_reset(s_fx.control);
    assert_int_equal(
        fa_control_add(s_fx.control, FA_FAULT_HANG, FA_OP_GET_SECRET_VALUE, 1, 0, NULL, NULL, 3000),
        STASH_OK);
    get_secret(c, &req, &v, &f);
    assert_int_equal(v.status, 504);
    cache_value_release(&v);
    aws_client_free(c);
}

static void test_wrong_secret_is_refused(void **state)
{
    struct aws_client *c = client(5000, 1, "not-the-secret");
    struct aws_sm_request req = {"prod/db", NULL, NULL};
    struct cache_value v = {0};
    struct facts f = {0};
    cJSON *j;

    (void)state;
    get_secret(c, &req, &v, &f);
    assert_int_equal(v.status, 403);
    j = body_json(&v);
    assert_string_equal(str(j, "__type"), "InvalidSignatureException");
    cJSON_Delete(j);
    cache_value_release(&v);
    aws_client_free(c);
}

/* The single call's answer body for a secret id (a 200 expected). */
static char *single_secret(struct aws_client *c, const char *id)
{
    struct aws_sm_request req = {id, NULL, NULL};
    struct upstream_result r;
    struct facts f = {0};
    char *body;

    aws_get_secret_value(c, &req, &r, &f);
    assert_int_equal(r.outcome, UP_OK);
    body = r.body;
    r.body = NULL;
    upstream_result_release(&r);
    return body;
}

/* BatchGetSecretValue against fake-aws: values (string, binary; by name and by full ARN) are
 * exactly what GetSecretValue answers for the same id, errors come per item, one call made. */
static void test_batch_secrets(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct upstream_item items[6];
    const char *ids[6] = {"prod/db",     "prod/tls-key", "prod/nope",
                          "prod/denied", "prod/deleted", NULL};
    struct upstream_result out;
    struct facts f = {0};
    char *arn;
    cJSON *j;
    cJSON *st;

    (void)state;
    /* prod/api-key by its ARN, as a caller would name a secret in another account's terms. */
    arn = single_secret(c, "prod/api-key");
    j = cJSON_Parse(arn);
    ids[5] = xstrdup(str(j, "ARN"));
    cJSON_Delete(j);
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 6; i++) {
        items[i].id = ids[i];
    }
    fa_control_reset(s_fx.control);
    aws_batch_get_secret_value(c, items, 6, &out, &f);
    assert_int_equal(out.outcome, UP_OK);
    assert_int_equal(f.ncalls, 1);
    st = stats();
    assert_int_equal(op_count(st, "BatchGetSecretValue", "calls"), 1);
    assert_int_equal(op_count(st, "GetSecretValue", "calls"), 0);
    cJSON_Delete(st);
    for (int i = 0; i < 6; i++) {
        print_message("%s: %s %s\n", ids[i], upstream_outcome_name(items[i].r.outcome),
                      items[i].r.outcome == UP_OK ? "(value)" : items[i].r.error_type);
    }
    for (int i = 0; i < 2; i++) {
        char *want = single_secret(c, ids[i]);

        assert_int_equal(items[i].r.outcome, UP_OK);
        assert_string_equal(items[i].r.body, want);
        free(want);
    }
    assert_int_equal(items[5].r.outcome, UP_OK);
    assert_string_equal(items[5].r.body, arn);
    assert_int_equal(items[2].r.outcome, UP_AWS_ERROR);
    assert_string_equal(items[2].r.error_type, "ResourceNotFoundException");
    assert_int_equal(items[3].r.outcome, UP_AWS_ERROR);
    assert_string_equal(items[3].r.error_type, "AccessDeniedException");
    assert_int_equal(items[4].r.outcome, UP_AWS_ERROR);
    for (int i = 2; i < 5; i++) {
        assert_null(items[i].r.body);
        assert_true(items[i].r.message[0] != '\0');
        assert_null(strstr(items[i].r.message, "Pa55word"));
    }
    for (int i = 0; i < 6; i++) {
        upstream_result_release(&items[i].r);
    }
    upstream_result_release(&out);
    free(arn);
    free((char *)ids[5]);
    aws_client_free(c);
}

/* GetParameters against fake-aws: selectors, decryption and unknown names; each value is what
 * GetParameter answers for the same name and selector. */
static void test_batch_parameters(void **state)
{
    struct aws_client *c = client(5000, 1, NULL);
    struct upstream_item items[] = {
        {"/app/prod/feature-flags:canary", {0}},
        {"/app/prod/feature-flags:1", {0}},
        {"/app/prod/db/password", {0}},
        {"/app/prod/nope", {0}},
    };
    struct aws_ssm_request single[] = {
        {"/app/prod/feature-flags", NULL, "canary", 1},
        {"/app/prod/feature-flags", "1", NULL, 1},
        {"/app/prod/db/password", NULL, NULL, 1},
    };
    struct upstream_result out;
    struct facts f = {0};
    cJSON *st;

    (void)state;
    fa_control_reset(s_fx.control);
    aws_get_parameters(c, items, 4, 1, &out, &f);
    assert_int_equal(out.outcome, UP_OK);
    st = stats();
    assert_int_equal(op_count(st, "GetParameters", "calls"), 1);
    cJSON_Delete(st);
    for (int i = 0; i < 3; i++) {
        struct upstream_result r;

        aws_get_parameter(c, &single[i], &r, &f);
        assert_int_equal(r.outcome, UP_OK);
        assert_int_equal(items[i].r.outcome, UP_OK);
        assert_string_equal(items[i].r.body, r.body);
        upstream_result_release(&r);
    }
    assert_int_equal(items[3].r.outcome, UP_AWS_ERROR);
    assert_string_equal(items[3].r.error_type, "ParameterNotFound");
    for (int i = 0; i < 4; i++) {
        upstream_result_release(&items[i].r);
    }
    upstream_result_release(&out);
    aws_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_value_and_keep_alive),
        cmocka_unit_test(test_binary_previous_and_not_found),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_throttle_is_retried),
        cmocka_unit_test(test_server_error_then_recovery),
        cmocka_unit_test(test_rotation_is_seen),
        cmocka_unit_test(test_hang_times_out),
        cmocka_unit_test(test_wrong_secret_is_refused),
        cmocka_unit_test(test_batch_secrets),
        cmocka_unit_test(test_batch_parameters),
    };
    int rc;

    mem_init();
    g_log_level = LOG_LEVEL_NONE; /* expected failures would otherwise fill the output */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
