/* Unit tests for extension/api's pure routing and validation (api_route), error JSON and cache
 * keys: every path, parameter combination, token case, X-Forwarded-For, encodings, ceilings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extension/api.h"

#define TOKEN            "tok-123"
#define API_KEY_MAX_TEST 256

struct req_builder {
    struct api_kv args[API_MAX_ARGS];
    struct api_kv headers[API_MAX_HEADERS];
    struct api_request req;
};

/* "k=v&k2=v2" style input (already decoded; '&' and '=' split, no '=' gives a NULL value). */
static void build(struct req_builder *b, const char *method, const char *path, const char *query,
                  const char *const *headers)
{
    static char qbuf[4][API_MAX_URL_BYTES * 2];
    static int qi;
    char *q = qbuf[qi++ % 4];
    char *save = NULL;
    char *tok;

    memset(b, 0, sizeof(*b));
    b->req.method = method;
    b->req.path = path;
    b->req.url_bytes = strlen(path);
    (void)snprintf(q, sizeof(qbuf[0]), "%s", query ? query : "");
    for (tok = strtok_r(q, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');

        assert_true(b->req.nargs < API_MAX_ARGS);
        if (eq) {
            *eq = '\0';
        }
        b->args[b->req.nargs].key = tok;
        b->args[b->req.nargs].value = eq ? eq + 1 : NULL;
        b->req.url_bytes += strlen(tok) + (eq ? strlen(eq + 1) : 0);
        b->req.nargs++;
    }
    for (size_t i = 0; headers && headers[i]; i += 2) {
        b->headers[b->req.nheaders].key = headers[i];
        b->headers[b->req.nheaders].value = headers[i + 1];
        b->req.header_bytes += strlen(headers[i]) + strlen(headers[i + 1]);
        b->req.nheaders++;
    }
    b->req.args = b->args;
    b->req.headers = b->headers;
}

static const char *const s_auth[] = {"X-Aws-Parameters-Secrets-Token", TOKEN, NULL};

static void route(const char *method, const char *path, const char *query,
                  const char *const *headers, struct api_route *out)
{
    struct req_builder b;

    build(&b, method, path, query, headers);
    api_route(&b.req, TOKEN, strlen(TOKEN), out);
}

static void expect_error(const struct api_route *r, int status, const char *type,
                         const char *needle)
{
    assert_int_equal(r->kind, API_ROUTE_ERROR);
    assert_int_equal(r->status, status);
    if (type) {
        assert_non_null(r->error_type);
        assert_string_equal(r->error_type, type);
    }
    if (needle && !strstr(r->message, needle)) {
        fail_msg("message \"%s\" lacks \"%s\"", r->message, needle);
    }
}

static void test_secret_routes(void **state)
{
    struct api_route r;

    (void)state;
    route("GET", "/secretsmanager/get", "secretId=db/password", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.id, "db/password");
    assert_null(r.version_id);
    assert_null(r.version_stage);
    assert_int_equal(r.refresh, 0);

    route("GET", "/secretsmanager/get", "secretId=s&versionStage=AWSPREVIOUS", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.version_stage, "AWSPREVIOUS");

    route("GET", "/secretsmanager/get", "versionId=abc-1&secretId=s", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.version_id, "abc-1");

    /* ARN, decoded by the server before routing */
    route("GET", "/secretsmanager/get",
          "secretId=arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.id, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf");

    /* Unknown parameters are ignored, as AWS's extension does. */
    route("GET", "/secretsmanager/get", "secretId=s&foo=bar&x", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);

    /* Duplicate: the first value counts. */
    route("GET", "/secretsmanager/get", "secretId=first&secretId=second", s_auth, &r);
    assert_string_equal(r.id, "first");

    /* Empty selectors count as absent. */
    route("GET", "/secretsmanager/get", "secretId=s&versionId=&versionStage=", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_null(r.version_id);
    assert_null(r.version_stage);

    route("GET", "/secretsmanager/get/", "secretId=s", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
}

static void test_batch_routes(void **state)
{
    struct api_route r;
    char q[2048];
    size_t n = 0;

    (void)state;
    route("GET", "/secretsmanager/batch", "secretId=b&secretId=a%2Fx&foo=1&secretId=b", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET_BATCH);
    assert_int_equal(r.nids, 2); /* b asked twice: once */
    assert_string_equal(r.ids[0], "b");
    assert_string_equal(r.ids[1], "a%2Fx");
    assert_int_equal(r.refresh, 0);

    route("GET", "/systemsmanager/parameters/batch", "name=/a&withDecryption=true&name=/b:3",
          s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER_BATCH);
    assert_int_equal(r.nids, 2);
    assert_string_equal(r.ids[1], "/b:3");
    assert_int_equal(r.with_decryption, 1);

    /* 20 secrets pass, 21 do not; 10 parameters pass, 11 do not. */
    for (int i = 0; i < API_BATCH_MAX; i++) {
        n += (size_t)snprintf(q + n, sizeof(q) - n, "%ssecretId=s%d", i ? "&" : "", i);
    }
    route("GET", "/secretsmanager/batch", q, s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET_BATCH);
    assert_int_equal(r.nids, API_BATCH_MAX);
    (void)snprintf(q + n, sizeof(q) - n, "&secretId=one-more");
    route("GET", "/secretsmanager/batch", q, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "at most 20 secretId");
    n = 0;
    for (int i = 0; i <= API_BATCH_MAX_PARAMETERS; i++) {
        n += (size_t)snprintf(q + n, sizeof(q) - n, "%sname=/p%d", i ? "&" : "", i);
    }
    route("GET", "/systemsmanager/parameters/batch", q, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "at most 10 name");

    route("GET", "/secretsmanager/batch", NULL, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/secretsmanager/batch", "secretId=a&secretId=", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/systemsmanager/parameters/batch", "name=/a&withDecryption=maybe", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "withDecryption");
    route("GET", "/secretsmanager/batch", "secretId=a&refreshNow=true", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET_BATCH);
    assert_int_equal(r.refresh, 1);
    route("GET", "/secretsmanager/batch", "secretId=a", NULL, &r); /* token still required */
    assert_int_equal(r.status, 401);
}

static void test_secret_errors(void **state)
{
    struct api_route r;

    (void)state;
    route("GET", "/secretsmanager/get", NULL, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/secretsmanager/get", "secretId=", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/secretsmanager/get", "secretId", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/secretsmanager/get", "secretid=s", s_auth, &r); /* names are case-sensitive */
    expect_error(&r, 400, "ValidationException", "secretId");
    route("GET", "/secretsmanager/get", "secretId=s&versionId=a&versionStage=AWSCURRENT", s_auth,
          &r);
    expect_error(&r, 400, "ValidationException", "not both");
}

static void test_refresh_now(void **state)
{
    static const struct {
        const char *value;
        int ok;
        int want;
    } cases[] = {{"true", 1, 1},  {"TRUE", 1, 1}, {"1", 1, 1},   {"false", 1, 0},
                 {"False", 1, 0}, {"0", 1, 0},    {"yes", 0, 0}, {"", 0, 0}};
    char q[64];
    struct api_route r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)snprintf(q, sizeof(q), "secretId=s&refreshNow=%s", cases[i].value);
        route("GET", "/secretsmanager/get", q, s_auth, &r);
        if (cases[i].ok) {
            assert_int_equal(r.kind, API_ROUTE_SECRET);
            assert_int_equal(r.refresh, cases[i].want);
        } else {
            expect_error(&r, 400, "ValidationException", "refreshNow");
        }
        (void)snprintf(q, sizeof(q), "name=/p&refreshNow=%s", cases[i].value);
        route("GET", "/systemsmanager/parameters/get", q, s_auth, &r);
        if (cases[i].ok) {
            assert_int_equal(r.kind, API_ROUTE_PARAMETER);
            assert_int_equal(r.refresh, cases[i].want);
        } else {
            expect_error(&r, 400, "ValidationException", "refreshNow");
        }
    }
}

static void test_v1_path(void **state)
{
    struct api_route r;

    (void)state;
    route("GET", "/v1/my-secret", NULL, s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.id, "my-secret");
    /* %2F decoded by the server: the id keeps its slashes */
    route("GET", "/v1/team/db/password", "versionStage=AWSPREVIOUS&refreshNow=1", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.id, "team/db/password");
    assert_string_equal(r.version_stage, "AWSPREVIOUS");
    assert_int_equal(r.refresh, 1);
    route("GET", "/v1/", NULL, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "secret ID");
}

static void test_parameter_routes(void **state)
{
    struct api_route r;

    (void)state;
    route("GET", "/systemsmanager/parameters/get", "name=/app/db/host", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER);
    assert_string_equal(r.id, "/app/db/host");
    assert_int_equal(r.with_decryption, 0); /* AWS's default */
    assert_null(r.version);
    assert_null(r.label);

    route("GET", "/systemsmanager/parameters/get/", "name=/p&withDecryption=true", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER);
    assert_int_equal(r.with_decryption, 1);

    route("GET", "/systemsmanager/parameters/get", "name=/p&withDecryption=FALSE", s_auth, &r);
    assert_int_equal(r.with_decryption, 0);

    route("GET", "/systemsmanager/parameters/get", "name=/p&version=3", s_auth, &r);
    assert_string_equal(r.version, "3");
    assert_null(r.label);

    route("GET", "/systemsmanager/parameters/get", "name=/p&label=prod", s_auth, &r);
    assert_string_equal(r.label, "prod");
    assert_null(r.version);

    /* Both: the first after '?' wins, the other is ignored (AWS's documented behaviour). */
    route("GET", "/systemsmanager/parameters/get", "name=/p&label=prod&version=2", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER);
    assert_string_equal(r.label, "prod");
    assert_null(r.version);
    route("GET", "/systemsmanager/parameters/get", "version=2&name=/p&label=prod", s_auth, &r);
    assert_string_equal(r.version, "2");
    assert_null(r.label);

    route("GET", "/systemsmanager/parameters/get",
          "name=/aws/reference/secretsmanager/db&withDecryption=true", s_auth, &r);
    assert_string_equal(r.id, "/aws/reference/secretsmanager/db");
    route("GET", "/systemsmanager/parameters/get",
          "name=/aws/service/global-infrastructure/regions", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER);
    route("GET", "/systemsmanager/parameters/get",
          "name=arn:aws:ssm:eu-west-1:123456789012:parameter/app/x", s_auth, &r);
    assert_string_equal(r.id, "arn:aws:ssm:eu-west-1:123456789012:parameter/app/x");
}

static void test_parameter_errors(void **state)
{
    struct api_route r;

    (void)state;
    route("GET", "/systemsmanager/parameters/get", NULL, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "name");
    route("GET", "/systemsmanager/parameters/get", "name=", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "name");
    route("GET", "/systemsmanager/parameters/get", "name=/p&withDecryption=maybe", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "withDecryption");
    route("GET", "/systemsmanager/parameters/get", "name=/p&version=latest", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "version");
    route("GET", "/systemsmanager/parameters/get", "name=/p&version=-1", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "version");
}

static void test_tokens(void **state)
{
    static const char *const lower[] = {"x-aws-parameters-secrets-token", TOKEN, NULL};
    static const char *const upper[] = {"X-AWS-PARAMETERS-SECRETS-TOKEN", TOKEN, NULL};
    static const char *const vault[] = {"X-Vault-Token", TOKEN, NULL};
    static const char *const wrong[] = {"X-Aws-Parameters-Secrets-Token", "tok-124", NULL};
    static const char *const prefix[] = {"X-Aws-Parameters-Secrets-Token", "tok-12", NULL};
    static const char *const longer[] = {"X-Aws-Parameters-Secrets-Token", "tok-1234", NULL};
    static const char *const empty[] = {"X-Aws-Parameters-Secrets-Token", "", NULL};
    static const char *const other[] = {"Authorization", TOKEN, NULL};
    static const char *const one_right[] = {"X-Vault-Token", "bad",
                                            "X-Aws-Parameters-Secrets-Token", TOKEN, NULL};
    static const char *const *const good[] = {s_auth, lower, upper, vault, one_right};
    static const char *const *const bad[] = {wrong, prefix, longer, empty, other, NULL};
    struct api_route r;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        route("GET", "/secretsmanager/get", "secretId=s", good[i], &r);
        assert_int_equal(r.kind, API_ROUTE_SECRET);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        route("GET", "/secretsmanager/get", "secretId=s", bad[i], &r);
        assert_int_equal(r.kind, API_ROUTE_ERROR);
        assert_int_equal(r.status, 401);
        assert_null(r.error_type); /* text/plain */
        assert_string_equal(r.message, "bad session token or header key");
        /* Every route needs it, also an unknown one and the parameter route. */
        route("GET", "/nope", NULL, bad[i], &r);
        assert_int_equal(r.status, 401);
        route("GET", "/systemsmanager/parameters/get", "name=/p", bad[i], &r);
        assert_int_equal(r.status, 401);
    }
    /* A server configured with an empty token accepts nobody. */
    {
        struct req_builder b;

        build(&b, "GET", "/secretsmanager/get", "secretId=s", empty);
        api_route(&b.req, "", 0, &r);
        assert_int_equal(r.status, 401);
    }
}

static void test_ping_method_path(void **state)
{
    static const char *const xff[] = {"X-Forwarded-For", "10.0.0.1", "X-Vault-Token", TOKEN, NULL};
    static const char *const xff_lower[] = {"x-forwarded-for", "", NULL};
    struct api_route r;

    (void)state;
    route("GET", "/ping", NULL, NULL, &r); /* no token needed */
    assert_int_equal(r.kind, API_ROUTE_PING);
    assert_int_equal(r.status, 200);

    route("POST", "/secretsmanager/get", "secretId=s", s_auth, &r);
    expect_error(&r, 405, "MethodNotAllowedException", "GET");
    route("PUT", "/ping", NULL, NULL, &r);
    expect_error(&r, 405, "MethodNotAllowedException", NULL);
    route("HEAD", "/secretsmanager/get", "secretId=s", s_auth, &r);
    expect_error(&r, 405, NULL, NULL);

    route("GET", "/", NULL, s_auth, &r);
    expect_error(&r, 404, "UnknownOperationException", "/secretsmanager/get");
    route("GET", "/secretsmanager/getx", "secretId=s", s_auth, &r);
    expect_error(&r, 404, NULL, NULL);
    route("GET", "/SECRETSMANAGER/GET", "secretId=s", s_auth, &r);
    expect_error(&r, 404, NULL, NULL);
    route("GET", "/v1", NULL, s_auth, &r);
    expect_error(&r, 404, NULL, NULL);

    /* X-Forwarded-For: rejected whatever else is right (SSRF), any case, even empty. */
    route("GET", "/secretsmanager/get", "secretId=s", xff, &r);
    expect_error(&r, 400, "ValidationException", "X-Forwarded-For");
    route("GET", "/ping", NULL, xff_lower, &r);
    expect_error(&r, 400, NULL, "X-Forwarded-For");
}

/* The server flags a path or query that decoded to a NUL byte ("prod/db%00x" arrives as
 * "prod/db"): refused after the token check, before any route or fetch. */
static void test_nul_byte(void **state)
{
    struct req_builder b;
    struct api_route r;

    (void)state;
    build(&b, "GET", "/secretsmanager/get", "secretId=prod/db", s_auth);
    b.req.nul_byte = 1;
    api_route(&b.req, TOKEN, strlen(TOKEN), &r);
    expect_error(&r, 400, "ValidationException", "NUL byte");

    build(&b, "GET", "/v1/prod/db", NULL, s_auth);
    b.req.nul_byte = 1;
    api_route(&b.req, TOKEN, strlen(TOKEN), &r);
    expect_error(&r, 400, "ValidationException", "NUL byte");

    /* No token: 401 first, as for any other request. */
    build(&b, "GET", "/secretsmanager/get", "secretId=prod/db", NULL);
    b.req.nul_byte = 1;
    api_route(&b.req, TOKEN, strlen(TOKEN), &r);
    assert_int_equal(r.status, 401);

    /* Without the flag the same request routes. */
    build(&b, "GET", "/secretsmanager/get", "secretId=prod/db", s_auth);
    api_route(&b.req, TOKEN, strlen(TOKEN), &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.id, "prod/db");
}

static void test_ceilings(void **state)
{
    static char big[API_MAX_URL_BYTES + 32];
    static char id[API_MAX_ID_BYTES + 16];
    static char hval[API_MAX_HEADER_BYTES + 1];
    const char *const bighdr[] = {"X-Aws-Parameters-Secrets-Token", TOKEN, "X-Pad", hval, NULL};
    struct req_builder b;
    struct api_route r;

    (void)state;
    (void)snprintf(big, sizeof(big), "secretId=");
    memset(big + 9, 'a', sizeof(big) - 10);
    big[sizeof(big) - 1] = '\0';
    route("GET", "/secretsmanager/get", big, s_auth, &r);
    expect_error(&r, 413, "RequestTooLargeException", "8192");

    memset(hval, 'h', sizeof(hval) - 1);
    route("GET", "/secretsmanager/get", "secretId=s", bighdr, &r);
    expect_error(&r, 413, NULL, NULL);

    build(&b, "GET", "/secretsmanager/get", "secretId=s", s_auth);
    b.req.too_many = 1;
    api_route(&b.req, TOKEN, strlen(TOKEN), &r);
    expect_error(&r, 413, NULL, NULL);

    /* An id over AWS's 2048 bytes, inside the URL ceiling: 400 naming the parameter. */
    memcpy(id, "secretId=", 9);
    memset(id + 9, 'b', sizeof(id) - 10);
    id[sizeof(id) - 1] = '\0';
    route("GET", "/secretsmanager/get", id, s_auth, &r);
    expect_error(&r, 400, "ValidationException", "longer than 2048");
    /* Exactly 2048 is fine. */
    id[9 + API_MAX_ID_BYTES] = '\0';
    route("GET", "/secretsmanager/get", id, s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_int_equal(strlen(r.id), API_MAX_ID_BYTES);
}

static void test_request_id(void **state)
{
    static const char *const h[] = {"X-Aws-Parameters-Secrets-Token", TOKEN, "x-stash-request-id",
                                    "req-42", NULL};
    struct api_route r;

    (void)state;
    route("GET", "/secretsmanager/get", "secretId=s", h, &r);
    assert_string_equal(r.request_id, "req-42");
    route("GET", "/secretsmanager/get", "secretId=s", s_auth, &r);
    assert_null(r.request_id);
}

/* Error bodies are valid JSON whatever the message holds. */
static void test_error_json_escaped(void **state)
{
    char out[512];
    size_t n;
    cJSON *j;

    (void)state;
    n = api_error_json("ValidationException", "quote \" backslash \\ newline \n ctl \x01 end", out,
                       sizeof(out));
    assert_int_equal(n, strlen(out));
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "__type")->valuestring,
                        "ValidationException");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring,
                        "quote \" backslash \\ newline \n ctl \x01 end");
    cJSON_Delete(j);
    /* Too small a buffer: empty, never truncated JSON. */
    n = api_error_json("T", "message", out, 10);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
}

/* Keys differ by service, id, selector kind and value, and decryption; equal routes, equal keys. */
static void test_cache_keys(void **state)
{
    static const struct {
        const char *path;
        const char *query;
    } cases[] = {
        {"/secretsmanager/get", "secretId=a"},
        {"/secretsmanager/get", "secretId=a&versionId=x"},
        {"/secretsmanager/get", "secretId=a&versionStage=x"},
        {"/secretsmanager/get", "secretId=b"},
        {"/secretsmanager/get", "secretId=ax"},
        {"/systemsmanager/parameters/get", "name=a"},
        {"/systemsmanager/parameters/get", "name=a&withDecryption=true"},
        {"/systemsmanager/parameters/get", "name=a&version=1"},
        {"/systemsmanager/parameters/get", "name=a&label=x"},
    };
    char keys[9][256];
    size_t lens[9];
    struct api_route r;
    char again[256];

    (void)state;
    for (size_t i = 0; i < 9; i++) {
        route("GET", cases[i].path, cases[i].query, s_auth, &r);
        lens[i] = api_cache_key(&r, keys[i], sizeof(keys[i]));
        assert_true(lens[i] > 0);
        for (size_t j = 0; j < i; j++) {
            assert_false(lens[i] == lens[j] && memcmp(keys[i], keys[j], lens[i]) == 0);
        }
    }
    /* refreshNow and /v1/ do not change the key: they read the same entry. */
    route("GET", "/v1/a", "refreshNow=true", s_auth, &r);
    assert_int_equal(api_cache_key(&r, again, sizeof(again)), lens[0]);
    assert_memory_equal(again, keys[0], lens[0]);
    /* A buffer too small gives 0, never a truncated key. */
    assert_int_equal(api_cache_key(&r, again, 4), 0);
    /* A parameter's key is the Name stash sends to AWS: a selector in the name, as version or
     * as label is one request ("a:1"; a label cannot start with a digit, so AWS reads it as
     * the version), and so one entry; the batch path's ids carry selectors in the name. */
    route("GET", "/systemsmanager/parameters/get", "name=a:1", s_auth, &r);
    assert_int_equal(api_cache_key(&r, again, sizeof(again)), lens[7]);
    assert_memory_equal(again, keys[7], lens[7]);
    route("GET", "/systemsmanager/parameters/get", "name=a&label=1", s_auth, &r);
    assert_int_equal(api_cache_key(&r, again, sizeof(again)), lens[7]);
    assert_memory_equal(again, keys[7], lens[7]);
    route("GET", "/systemsmanager/parameters/get", "name=a:x", s_auth, &r);
    assert_int_equal(api_cache_key(&r, again, sizeof(again)), lens[8]);
    assert_memory_equal(again, keys[8], lens[8]);
    /* An empty selector is no selector (as for the request sent). */
    route("GET", "/systemsmanager/parameters/get", "name=a&version=", s_auth, &r);
    assert_int_equal(api_cache_key(&r, again, sizeof(again)), lens[5]);
    assert_memory_equal(again, keys[5], lens[5]);
}

/* stash's shaping parameters: parsed into r.shape, checked against each other and the route,
 * and never part of the cache key. */
static void test_shape_params(void **state)
{
    struct api_route r;
    char plain[API_KEY_MAX_TEST];
    char shaped[API_KEY_MAX_TEST];
    size_t n;

    (void)state;
    route("GET", "/secretsmanager/get", "secretId=s&raw=true", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_int_equal(r.shape.raw, 1);
    assert_null(r.shape.json_key);
    route("GET", "/v1/s", "jsonKey=user name", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_int_equal(r.shape.raw, 0);
    assert_string_equal(r.shape.json_key, "user name");
    route("GET", "/secretsmanager/get", "secretId=s&raw=FALSE&jsonKey=k&split=0", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_SECRET);
    assert_string_equal(r.shape.json_key, "k");
    route("GET", "/systemsmanager/parameters/get", "name=/p&raw=1&split=true", s_auth, &r);
    assert_int_equal(r.kind, API_ROUTE_PARAMETER);
    assert_int_equal(r.shape.raw, 1);
    assert_int_equal(r.shape.split, 1);
    route("GET", "/systemsmanager/parameters/get", "name=/p", s_auth, &r);
    assert_false(shape_wanted(&r.shape));

    route("GET", "/secretsmanager/get", "secretId=s&raw=yes", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "raw must be true or false");
    route("GET", "/secretsmanager/get", "secretId=s&raw", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "raw must be true or false");
    route("GET", "/secretsmanager/get", "secretId=s&raw=true&jsonKey=k", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "not both");
    route("GET", "/v1/s", "jsonKey=", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "jsonKey must not be empty");
    route("GET", "/secretsmanager/get", "secretId=s&raw=true&split=true", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "split applies only to parameters");
    route("GET", "/systemsmanager/parameters/get", "name=/p&split=true", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "split=true needs raw=true");
    route("GET", "/systemsmanager/parameters/get", "name=/p&raw=true&split=maybe", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "split must be true or false");
    route("GET", "/systemsmanager/parameters/get", "name=/p&jsonKey=k", s_auth, &r);
    expect_error(&r, 400, "ValidationException", "jsonKey applies only to secrets");

    /* One cache entry for every shape of one secret or parameter. */
    route("GET", "/secretsmanager/get", "secretId=s", s_auth, &r);
    n = api_cache_key(&r, plain, sizeof(plain));
    route("GET", "/secretsmanager/get", "secretId=s&raw=true", s_auth, &r);
    assert_int_equal(api_cache_key(&r, shaped, sizeof(shaped)), n);
    assert_memory_equal(plain, shaped, n);
    route("GET", "/v1/s", "jsonKey=k", s_auth, &r);
    assert_int_equal(api_cache_key(&r, shaped, sizeof(shaped)), n);
    assert_memory_equal(plain, shaped, n);
    route("GET", "/systemsmanager/parameters/get", "name=/p", s_auth, &r);
    n = api_cache_key(&r, plain, sizeof(plain));
    route("GET", "/systemsmanager/parameters/get", "name=/p&raw=true&split=true", s_auth, &r);
    assert_int_equal(api_cache_key(&r, shaped, sizeof(shaped)), n);
    assert_memory_equal(plain, shaped, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_routes),    cmocka_unit_test(test_secret_errors),
        cmocka_unit_test(test_refresh_now),      cmocka_unit_test(test_v1_path),
        cmocka_unit_test(test_parameter_routes), cmocka_unit_test(test_parameter_errors),
        cmocka_unit_test(test_tokens),           cmocka_unit_test(test_ping_method_path),
        cmocka_unit_test(test_ceilings),         cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_request_id),       cmocka_unit_test(test_error_json_escaped),
        cmocka_unit_test(test_cache_keys),       cmocka_unit_test(test_shape_params),
        cmocka_unit_test(test_batch_routes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
