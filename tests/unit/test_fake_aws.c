/* Unit tests for fake-aws's pure parts: base64, the data-file loader and store, the
 * Authorization header parser and SigV4 verification (against the project-derived vectors in
 * tests/data/sigv4-suite/derived, with the clock injected), the operations' wire shapes, and
 * the fault queue.  Malformed input of every kind must give a clear error, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "sim/fake_aws/auth.h"
#include "sim/fake_aws/b64.h"
#include "sim/fake_aws/control.h"
#include "sim/fake_aws/data.h"
#include "sim/fake_aws/ops.h"
#include "tests/unit/refdir.h"

#define VECTOR_TIME 1440938160 /* 20150830T123600Z */

static struct fa_data *load_sample(void)
{
    const char *root = getenv("STASH_ROOT");
    char path[4096];
    struct fa_data *d = NULL;
    struct buf why = BUF_INIT(0);

    snprintf(path, sizeof(path), "%s/sim/fake_aws/sample-data.json", root ? root : ".");
    assert_int_equal(fa_data_load(path, "us-east-1", &d, &why), STASH_OK);
    buf_release(&why);
    return d;
}

static struct fa_data *parse_ok(const char *json)
{
    struct fa_data *d = NULL;
    struct buf why = BUF_INIT(0);
    enum stash_err rc = fa_data_parse(json, strlen(json), "us-east-1", &d, &why);

    if (rc) {
        fail_msg("parse failed: %s", why.data ? why.data : "?");
    }
    buf_release(&why);
    return d;
}

/* ---- base64 -------------------------------------------------------------------------------- */

static void test_b64_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    unsigned char out[16];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        struct buf b = BUF_INIT(0);

        assert_int_equal(b64_encode(&b, plain[i], strlen(plain[i])), STASH_OK);
        assert_string_equal(b.data, enc[i]);
        assert_int_equal(b64_decode(enc[i], strlen(enc[i]), out, &n), STASH_OK);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
        buf_release(&b);
    }
}

static void test_b64_rejects(void **state)
{
    static const char *const bad[] = {"Zg=",  "Zg",   "Z===",   "Zg=a", "Z=g=", "Zh==",
                                      "Zm9=", "Zm 9", "Zm9v\n", "Zm-_", "====", "Zm8=Zm8="};
    unsigned char out[32];
    size_t n = 99;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(b64_decode(bad[i], strlen(bad[i]), out, &n), STASH_EINVAL);
        assert_int_equal(n, 0);
    }
}

/* ---- the data file and the store ------------------------------------------------------------ */

static void test_data_sample_secrets(void **state)
{
    struct fa_data *d = load_sample();
    struct fa_secret_value v;
    enum fa_miss miss;
    char arn[256];

    (void)state;
    assert_int_equal(fa_data_count_secrets(d), 6);
    assert_string_equal(fa_data_account(d), "123456789012");

    assert_int_equal(fa_data_get_secret(d, "prod/db", NULL, NULL, &v, &miss), STASH_OK);
    assert_int_equal(miss, FA_MISS_NONE);
    assert_string_equal(v.version_id, "a1b2c3d4-2222-4aaa-8bbb-000000000002");
    assert_int_equal(v.nstages, 1);
    assert_string_equal(v.stages[0], "AWSCURRENT");
    assert_non_null(strstr((const char *)v.value, "n3w-Pa55word"));
    assert_true(v.created > 1770714000.24 && v.created < 1770714000.26); /* .250 kept */
    /* Derived ARN: name, a dash and six alphanumerics, stable across loads. */
    assert_int_equal(
        strncmp(v.arn, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-", 61), 0);
    assert_int_equal(strlen(v.arn), 61 + 6);
    snprintf(arn, sizeof(arn), "%s", v.arn);
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_get_secret(d, arn, NULL, "AWSPREVIOUS", &v, &miss), STASH_OK);
    assert_non_null(strstr((const char *)v.value, "old-Pa55word"));
    fa_secret_value_release(&v);
    arn[strlen(arn) - 7] = '\0'; /* partial ARN */
    assert_int_equal(fa_data_get_secret(d, arn, NULL, NULL, &v, &miss), STASH_OK);
    assert_string_equal(v.name, "prod/db");
    fa_secret_value_release(&v);

    assert_int_equal(
        fa_data_get_secret(d, "prod/db", "a1b2c3d4-1111-4aaa-8bbb-000000000001", NULL, &v, &miss),
        STASH_OK);
    assert_string_equal(v.stages[0], "AWSPREVIOUS");
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_get_secret(d, "prod/tls-key", NULL, NULL, &v, &miss), STASH_OK);
    assert_true(v.binary);
    assert_int_equal(v.value_len, 21);
    assert_int_equal(v.value[20], 0xff);
    /* One version and no stages in the file: it is AWSCURRENT; its id is UUID-shaped. */
    assert_int_equal(strlen(v.version_id), 36);
    assert_int_equal(v.version_id[14], '4');
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_get_secret(d, "prod/api-key", NULL, NULL, &v, &miss), STASH_OK);
    assert_true(v.created == 1767225600.0);
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_get_secret(d, "prod/denied", NULL, NULL, &v, &miss), STASH_OK);
    assert_int_equal(v.flags, FA_FLAG_DENY);
    fa_secret_value_release(&v);
    fa_data_free(d);
}

static void test_data_secret_misses(void **state)
{
    struct fa_data *d = load_sample();
    struct fa_secret_value v;
    enum fa_miss miss;

    (void)state;
    assert_int_equal(fa_data_get_secret(d, "nope", NULL, NULL, &v, &miss), STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_ITEM);
    assert_null(v.value);
    assert_int_equal(fa_data_get_secret(d, "prod/db", NULL, "AWSPENDING", &v, &miss),
                     STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_STAGE);
    assert_int_equal(
        fa_data_get_secret(d, "prod/db", "00000000-0000-4000-8000-000000000000", NULL, &v, &miss),
        STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_VERSION_ID);
    assert_int_equal(fa_data_get_secret(d, "prod/db", "a1b2c3d4-1111-4aaa-8bbb-000000000001",
                                        "AWSCURRENT", &v, &miss),
                     STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_STAGE_NOT_ON_ID);
    /* A partial ARN must be the full one minus exactly "-XXXXXX". */
    assert_int_equal(
        fa_data_get_secret(d, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/d", NULL,
                           NULL, &v, &miss),
        STASH_ENOTFOUND);
    fa_data_free(d);
}

static void test_data_sample_params(void **state)
{
    struct fa_data *d = load_sample();
    struct fa_param_value v;
    enum fa_miss miss;

    (void)state;
    assert_int_equal(fa_data_count_params(d), 6);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", NULL, &v, &miss), STASH_OK);
    assert_int_equal(v.version, 3);
    assert_string_equal(v.type, "String");
    assert_string_equal(v.data_type, "text");
    fa_param_value_release(&v);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", "1", &v, &miss), STASH_OK);
    assert_string_equal(v.value, "{\"beta\":false}");
    fa_param_value_release(&v);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", "canary", &v, &miss),
                     STASH_OK);
    assert_int_equal(v.version, 2);
    fa_param_value_release(&v);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", "4", &v, &miss),
                     STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_VERSION);
    assert_int_equal(
        fa_data_get_param(d, "/app/prod/feature-flags", "99999999999999999999", &v, &miss),
        STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_VERSION);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", "live", &v, &miss),
                     STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_LABEL);
    assert_int_equal(fa_data_get_param(d, "/nope", NULL, &v, &miss), STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_ITEM);
    assert_int_equal(fa_data_get_param(d, "arn:aws:ssm:us-east-1:123456789012:parameter/plain-name",
                                       NULL, &v, &miss),
                     STASH_OK);
    assert_string_equal(v.arn, "arn:aws:ssm:us-east-1:123456789012:parameter/plain-name");
    fa_param_value_release(&v);
    assert_int_equal(
        fa_data_get_param(d, "arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/db/host", NULL,
                          &v, &miss),
        STASH_OK);
    assert_string_equal(v.name, "/app/prod/db/host");
    fa_param_value_release(&v);
    fa_data_free(d);
}

/* Every malformed file is refused with a sentence, and without echoing a secret value. */
static void test_data_malformed(void **state)
{
    static const struct {
        const char *json;
        enum stash_err rc;
        const char *why; /* a part of the message */
    } cases[] = {
        {"", STASH_EPARSE, "not valid JSON"},
        {"{\"Secrets\":[", STASH_EPARSE, "not valid JSON"},
        {"[]", STASH_EINVAL, "JSON object"},
        {"{\"Secrets\":{}}", STASH_EINVAL, "must be arrays"},
        {"{\"Parameters\":\"x\"}", STASH_EINVAL, "must be arrays"},
        {"{\"AccountId\":\"1234567890123\"}", STASH_EINVAL, "AccountId"},
        {"{\"Secrets\":[42]}", STASH_EINVAL, "must be an object"},
        {"{\"Secrets\":[{\"Name\":\"t\",\"Tags\":{},\"Versions\":[{\"SecretString\":\"x\"}]}]}",
         STASH_EINVAL, "\"Tags\" must be an array"},
        {"{\"Secrets\":[{\"Name\":\"t\",\"Tags\":[{\"Value\":\"v\"}],\"Versions\":[{"
         "\"SecretString\":\"x\"}]}]}",
         STASH_EINVAL, "each tag"},
        {"{\"Secrets\":[{\"Name\":\"t\",\"Description\":7,\"Versions\":[{\"SecretString\":"
         "\"x\"}]}]}",
         STASH_EINVAL, "Description"},
        {"{\"Secrets\":[{\"Versions\":[{\"SecretString\":\"TOPSECRET\"}]}]}", STASH_EINVAL,
         "\"Name\" is required"},
        {"{\"Secrets\":[{\"Name\":\"\",\"Versions\":[]}]}", STASH_EINVAL, "\"Name\""},
        {"{\"Secrets\":[{\"Name\":\"s\"}]}", STASH_EINVAL, "\"Versions\""},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[]}]}", STASH_EINVAL, "\"Versions\""},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[7]}]}", STASH_EINVAL, "must be an object"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{}]}]}", STASH_EINVAL, "exactly one"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"TOPSECRET\","
         "\"SecretBinary\":\"YQ==\"}]}]}",
         STASH_EINVAL, "exactly one"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretBinary\":\"not base64!\"}]}]}",
         STASH_EINVAL, "base64"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"\"}]}]}", STASH_EINVAL,
         "SecretString"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":7}]}]}", STASH_EINVAL,
         "SecretString"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"TOPSECRET\","
         "\"VersionId\":\"short\"}]}]}",
         STASH_EINVAL, "32 to 64"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"VersionStages\":"
         "[\"AWSCURRENT\"]},{\"SecretString\":\"b\",\"VersionStages\":[\"AWSCURRENT\"]}]}]}",
         STASH_EINVAL, "on two versions"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"VersionStages\":"
         "[\"AWSPREVIOUS\"]}]}]}",
         STASH_EINVAL, "no version carries AWSCURRENT"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"VersionStages\":"
         "\"AWSCURRENT\"}]}]}",
         STASH_EINVAL, "VersionStages"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"VersionStages\":"
         "[3]}]}]}",
         STASH_EINVAL, "VersionStages"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\"}]},{\"Name\":\"s\","
         "\"Versions\":[{\"SecretString\":\"b\"}]}]}",
         STASH_EINVAL, "appears twice"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"CreatedDate\":"
         "\"yesterday\"}]}]}",
         STASH_EINVAL, "date"},
        {"{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"a\",\"CreatedDate\":"
         "-5}]}]}",
         STASH_EINVAL, "date"},
        {"{\"Parameters\":[{\"Value\":\"v\"}]}", STASH_EINVAL, "\"Name\" is required"},
        {"{\"Parameters\":[{\"Name\":\"p\"}]}", STASH_EINVAL, "Value"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Value\":\"\"}]}", STASH_EINVAL, "Value"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Type\":\"Secret\",\"Value\":\"v\"}]}", STASH_EINVAL,
         "Type must be"},
        {"{\"Parameters\":[{\"Name\":\"p:1\",\"Value\":\"v\"}]}", STASH_EINVAL, "':'"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Value\":\"v\",\"Versions\":[{\"Value\":\"w\"}]}]}",
         STASH_EINVAL, "give \"Value\" or \"Versions\""},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Version\":2,\"Value\":\"a\"},"
         "{\"Version\":1,\"Value\":\"b\"}]}]}",
         STASH_EINVAL, "increasing"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Version\":0,\"Value\":\"a\"}]}]}",
         STASH_EINVAL, "whole number"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Version\":1.5,\"Value\":\"a\"}]}]}",
         STASH_EINVAL, "whole number"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Value\":\"a\",\"Labels\":[\"1st\"]}]}]"
         "}",
         STASH_EINVAL, "bad label"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Value\":\"a\",\"Labels\":[\"awsx\"]}]}]"
         "}",
         STASH_EINVAL, "bad label"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Versions\":[{\"Value\":\"a\",\"Labels\":[\"x\"]},"
         "{\"Value\":\"b\",\"Labels\":[\"x\"]}]}]}",
         STASH_EINVAL, "on two versions"},
        {"{\"Parameters\":[{\"Name\":\"p\",\"Value\":\"a\"},{\"Name\":\"p\",\"Value\":\"b\"}]}",
         STASH_EINVAL, "appears twice"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fa_data *d = (struct fa_data *)&d; /* must be reset to NULL */
        struct buf why = BUF_INIT(0);
        enum stash_err rc =
            fa_data_parse(cases[i].json, strlen(cases[i].json), "us-east-1", &d, &why);

        if (rc != cases[i].rc || !why.data || !strstr(why.data, cases[i].why)) {
            fail_msg("case %zu (%s): rc %d, why \"%s\"", i, cases[i].json, rc,
                     why.data ? why.data : "");
        }
        assert_null(d);
        assert_null(strstr(why.data, "TOPSECRET"));
        buf_release(&why);
    }
}

static void test_data_file_errors(void **state)
{
    struct fa_data *d = NULL;
    struct buf why = BUF_INIT(0);

    (void)state;
    assert_int_equal(fa_data_load("/nonexistent/fake-aws.json", NULL, &d, &why), STASH_EIO);
    assert_non_null(strstr(why.data, "/nonexistent/fake-aws.json"));
    buf_reset(&why);
    /* The ceiling is checked before anything is read. */
    assert_int_equal(fa_data_parse("{}", (size_t)FA_DATA_FILE_MAX + 1, NULL, &d, &why),
                     STASH_ETOOBIG);
    assert_null(d);
    buf_release(&why);
    /* An empty object is a valid, empty store in the default region. */
    d = parse_ok("{}");
    assert_string_equal(fa_data_region(d), "us-east-1");
    assert_int_equal(fa_data_count_secrets(d), 0);
    fa_data_free(d);
    fa_data_free(NULL);
}

static void test_data_rotate(void **state)
{
    struct fa_data *d = parse_ok("{\"Secrets\":[{\"Name\":\"s\",\"Versions\":"
                                 "[{\"SecretString\":\"v0\"}]}]}");
    char id1[FA_VERSION_ID_MAX + 1];
    char id2[FA_VERSION_ID_MAX + 1];
    char first[FA_VERSION_ID_MAX + 1];
    struct fa_secret_value v;
    enum fa_miss miss;
    char big[FA_SECRET_MAX + 1];

    (void)state;
    assert_int_equal(fa_data_get_secret(d, "s", NULL, NULL, &v, &miss), STASH_OK);
    snprintf(first, sizeof(first), "%s", v.version_id);
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_rotate(d, "s", "v1", 2, 0, NULL, 100.0, id1), STASH_OK);
    assert_int_equal(strlen(id1), 36);
    assert_string_not_equal(id1, first);
    assert_int_equal(
        fa_data_rotate(d, "s", "v2", 2, 0, "explicit-version-id-0123456789abcdef", 200.0, id2),
        STASH_OK);
    assert_string_equal(id2, "explicit-version-id-0123456789abcdef");

    assert_int_equal(fa_data_get_secret(d, "s", NULL, NULL, &v, &miss), STASH_OK);
    assert_string_equal((const char *)v.value, "v2");
    assert_true(v.created == 200.0);
    fa_secret_value_release(&v);
    assert_int_equal(fa_data_get_secret(d, "s", NULL, "AWSPREVIOUS", &v, &miss), STASH_OK);
    assert_string_equal((const char *)v.value, "v1");
    assert_string_equal(v.version_id, id1);
    fa_secret_value_release(&v);
    /* The first version kept no stage, but is still readable by id. */
    assert_int_equal(fa_data_get_secret(d, "s", first, NULL, &v, &miss), STASH_OK);
    assert_int_equal(v.nstages, 0);
    fa_secret_value_release(&v);

    assert_int_equal(fa_data_rotate(d, "s", "v3", 2, 0, id2, 1.0, id1), STASH_EINVAL);
    assert_int_equal(fa_data_rotate(d, "s", "v3", 2, 0, "bad id", 1.0, id1), STASH_EINVAL);
    assert_int_equal(fa_data_rotate(d, "nope", "v3", 2, 0, NULL, 1.0, id1), STASH_ENOTFOUND);
    assert_int_equal(fa_data_rotate(d, "s", "", 0, 0, NULL, 1.0, id1), STASH_EINVAL);
    memset(big, 'x', sizeof(big));
    assert_int_equal(fa_data_rotate(d, "s", big, sizeof(big), 0, NULL, 1.0, id1), STASH_ETOOBIG);

    /* Many rotations stay bounded: the oldest stage-less versions are dropped. */
    for (int i = 0; i < 150; i++) {
        assert_int_equal(fa_data_rotate(d, "s", "vv", 2, 0, NULL, 300.0 + i, id1), STASH_OK);
    }
    assert_int_equal(fa_data_get_secret(d, "s", first, NULL, &v, &miss), STASH_ENOTFOUND);
    assert_int_equal(miss, FA_MISS_VERSION_ID);
    assert_int_equal(fa_data_get_secret(d, "s", id1, "AWSCURRENT", &v, &miss), STASH_OK);
    fa_secret_value_release(&v);
    fa_data_free(d);
}

static void test_data_put_param(void **state)
{
    struct fa_data *d = load_sample();
    struct fa_param_value v;
    enum fa_miss miss;
    long version;
    char big[FA_PARAM_VALUE_MAX + 2];

    (void)state;
    assert_int_equal(fa_data_put_param(d, "/new/p", "one", NULL, NULL, 5.0, &version), STASH_OK);
    assert_int_equal(version, 1);
    assert_int_equal(fa_data_put_param(d, "/new/p", "two", "SecureString", "live", 6.0, &version),
                     STASH_OK);
    assert_int_equal(version, 2);
    assert_int_equal(fa_data_get_param(d, "/new/p", "live", &v, &miss), STASH_OK);
    assert_string_equal(v.value, "two");
    assert_string_equal(v.type, "SecureString");
    assert_true(v.modified == 6.0);
    fa_param_value_release(&v);
    /* A label moves to the newest version it is put with. */
    assert_int_equal(
        fa_data_put_param(d, "/app/prod/feature-flags", "x", NULL, "stable", 7.0, &version),
        STASH_OK);
    assert_int_equal(version, 4);
    assert_int_equal(fa_data_get_param(d, "/app/prod/feature-flags", "stable", &v, &miss),
                     STASH_OK);
    assert_int_equal(v.version, 4);
    fa_param_value_release(&v);

    assert_int_equal(fa_data_put_param(d, "/new/p", "", NULL, NULL, 1, &version), STASH_EINVAL);
    assert_int_equal(fa_data_put_param(d, "a:b", "v", NULL, NULL, 1, &version), STASH_EINVAL);
    assert_int_equal(fa_data_put_param(d, "/new/p", "v", "Blob", NULL, 1, &version), STASH_EINVAL);
    assert_int_equal(fa_data_put_param(d, "/new/p", "v", NULL, "9lives", 1, &version),
                     STASH_EINVAL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(fa_data_put_param(d, "/new/p", big, NULL, NULL, 1, &version), STASH_ETOOBIG);
    assert_int_equal(version, 0);
    fa_data_free(d);
}

/* ---- the Authorization header ---------------------------------------------------------------- */

static void test_auth_parse_ok(void **state)
{
    struct fa_auth_header h;
    const char *why;

    (void)state;
    assert_int_equal(fa_auth_parse("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                                   "secretsmanager/aws4_request, SignedHeaders=content-type;host;"
                                   "x-amz-date;x-amz-target, Signature=850e2e7bf5d9a27ceed85ab70f"
                                   "abb682bb6868d1dffca441f17dd9728b0f9786",
                                   &h, &why),
                     STASH_OK);
    assert_string_equal(h.access_key, "AKIDEXAMPLE");
    assert_string_equal(h.date, "20150830");
    assert_string_equal(h.region, "us-east-1");
    assert_string_equal(h.service, "secretsmanager");
    assert_int_equal(h.nnames, 4);
    assert_string_equal(h.names[0], "content-type");
    assert_string_equal(h.names[3], "x-amz-target");
    assert_string_equal(h.signature,
                        "850e2e7bf5d9a27ceed85ab70fabb682bb6868d1dffca441f17dd9728b0f9786");
    /* Any order, no spaces after the commas, trailing spaces. */
    assert_int_equal(fa_auth_parse("AWS4-HMAC-SHA256 Signature=850e2e7bf5d9a27ceed85ab70fabb682bb"
                                   "6868d1dffca441f17dd9728b0f9786,SignedHeaders=host,Credential="
                                   "K/20150830/eu-west-1/ssm/aws4_request  ",
                                   &h, &why),
                     STASH_OK);
    assert_string_equal(h.service, "ssm");
    assert_int_equal(h.nnames, 1);
}

static void test_auth_parse_rejects(void **state)
{
    static const char sig[] = "850e2e7bf5d9a27ceed85ab70fabb682bb6868d1dffca441f17dd9728b0f9786";
    static const char cred[] = "Credential=AKID/20150830/us-east-1/ssm/aws4_request";
    char bad[9000];
    struct fa_auth_header h;
    const char *why;
    char cases[24][400];
    int n = 0;

    (void)state;
    snprintf(cases[n++], 400, "%s", "");
    snprintf(cases[n++], 400, "%s", "AWS4-HMAC-SHA256");
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA1 %s, SignedHeaders=host, Signature=%s", cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=%s", sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, Signature=%s", cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host", cred);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/aws4_request, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ssm/aws4_request/x, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=AKID/2015083/us-east-1/ssm/aws4_request, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=AKID/2015083x/us-east-1/ssm/aws4_request, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ssm/aws5_request, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/ssm/aws4_request, "
             "SignedHeaders=host, Signature=%s",
             sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=Host, Signature=%s", cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=x-amz-date;host, Signature=%s",
             cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host;host, Signature=%s", cred,
             sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=x-amz-date, Signature=%s", cred,
             sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host;;x, Signature=%s", cred,
             sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host, Signature=%.63s", cred,
             sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host, Signature=%sa", cred, sig);
    snprintf(cases[n++], 400,
             "AWS4-HMAC-SHA256 %s, SignedHeaders=host, Signature=850E2E7BF5D9A27CEED85AB70FABB682"
             "BB6868D1DFFCA441F17DD9728B0F9786",
             cred);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, SignedHeaders=host, Signature=%s, Extra=1",
             cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s, %s, SignedHeaders=host, Signature=%s", cred,
             cred, sig);
    snprintf(cases[n++], 400, "AWS4-HMAC-SHA256 %s SignedHeaders=host Signature=%s", cred, sig);
    assert_true(n <= 24);
    for (int i = 0; i < n; i++) {
        why = NULL;
        if (fa_auth_parse(cases[i], &h, &why) != STASH_EINVAL || !why || !why[0]) {
            fail_msg("accepted or no reason: %s", cases[i]);
        }
    }
    /* Too long, and too many signed headers. */
    memset(bad, 'a', sizeof(bad) - 1);
    bad[sizeof(bad) - 1] = '\0';
    assert_int_equal(fa_auth_parse(bad, &h, &why), STASH_EINVAL);
    n = snprintf(bad, sizeof(bad), "AWS4-HMAC-SHA256 %s, SignedHeaders=host", cred);
    for (int i = 0; i < FA_AUTH_NAMES_MAX + 1; i++) {
        n += snprintf(bad + n, sizeof(bad) - (size_t)n, ";x-%02d", i);
    }
    snprintf(bad + n, sizeof(bad) - (size_t)n, ", Signature=%s", sig);
    assert_int_equal(fa_auth_parse(bad, &h, &why), STASH_EINVAL);
}

static void test_auth_amz_date(void **state)
{
    int64_t t;

    (void)state;
    assert_int_equal(fa_auth_parse_amz_date("20150830T123600Z", &t), STASH_OK);
    assert_int_equal(t, VECTOR_TIME);
    assert_int_equal(fa_auth_parse_amz_date("20000229T000000Z", &t), STASH_OK);
    assert_int_equal(t, 951782400);
    assert_int_equal(fa_auth_parse_amz_date("20150830T123600", &t), STASH_EINVAL);
    assert_int_equal(t, 0);
    assert_int_equal(fa_auth_parse_amz_date("2015-08-30T12:36:00Z", &t), STASH_EINVAL);
    assert_int_equal(fa_auth_parse_amz_date("20151330T123600Z", &t), STASH_EINVAL);
    assert_int_equal(fa_auth_parse_amz_date("20150830T253600Z", &t), STASH_EINVAL);
    assert_int_equal(fa_auth_parse_amz_date("2015083OT123600Z", &t), STASH_EINVAL);
    assert_int_equal(fa_auth_parse_amz_date("", &t), STASH_EINVAL);
}

/* A request read from a vector's header-signed-request.txt: headers and body. */
struct vreq {
    char *text;
    const char *names[16];
    const char *values[16];
    size_t n;
    const char *body;
    const char *drop; /* a header to hide, lowercase */
};

static const char *vreq_header(void *ctx, const char *name)
{
    struct vreq *r = ctx;

    if (r->drop && strcasecmp(name, r->drop) == 0) {
        return NULL;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

static void vreq_load(const char *vector, struct vreq *r)
{
    char dir[1024];
    char path[1400];
    size_t len;
    char *line;
    char *next;

    memset(r, 0, sizeof(*r));
    assert_int_equal(refdir_find(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/sigv4-suite/derived/%s/header-signed-request.txt", dir,
             vector);
    r->text = refdir_read(path, &len);
    assert_non_null(r->text);
    line = strchr(r->text, '\n'); /* skip the request line */
    assert_non_null(line);
    line++;
    while (*line != '\n') {
        char *colon = strchr(line, ':');

        next = strchr(line, '\n');
        assert_non_null(colon);
        assert_non_null(next);
        assert_true(r->n < 16);
        *colon = '\0';
        *next = '\0';
        r->names[r->n] = line;
        r->values[r->n++] = colon + 1;
        line = next + 1;
    }
    r->body = line + 1;
}

static enum stash_err verify(struct vreq *r, const char *service, const char *region, int64_t now,
                             const struct fa_cred *creds, size_t ncreds,
                             struct fa_auth_verdict *out)
{
    struct fa_auth_request ar;

    memset(&ar, 0, sizeof(ar));
    ar.method = "POST";
    ar.path = "/";
    ar.query = "";
    ar.header = vreq_header;
    ar.header_ctx = r;
    ar.payload = r->body;
    ar.payload_len = strlen(r->body);
    ar.region = region;
    ar.service = service;
    ar.now_s = now;
    return fa_auth_verify(&ar, creds, ncreds, out);
}

static const struct fa_cred s_creds[] = {
    {"AKIDOTHER", "other-secret", NULL},
    {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL},
};

static void test_auth_verify_vectors(void **state)
{
    static const char *const vectors[][2] = {
        {"secretsmanager-getsecretvalue", "secretsmanager"},
        {"secretsmanager-batchgetsecretvalue", "secretsmanager"},
        {"ssm-getparameter", "ssm"},
        {"ssm-getparameters", "ssm"},
        {"secretsmanager-getsecretvalue-session-token", "secretsmanager"},
        {"ssm-getparameter-session-token", "ssm"},
    };
    struct fa_auth_verdict v;

    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        struct vreq r;

        vreq_load(vectors[i][0], &r);
        if (verify(&r, vectors[i][1], "us-east-1", VECTOR_TIME, s_creds, 2, &v) != STASH_OK) {
            fail_msg("%s refused: %d %s %s", vectors[i][0], v.status, v.type, v.message);
        }
        assert_int_equal(v.status, 0);
        assert_string_equal(v.access_key, "AKIDEXAMPLE");
        /* Inside the 15-minute window on both sides. */
        assert_int_equal(verify(&r, vectors[i][1], "us-east-1", VECTOR_TIME + 900, s_creds, 2, &v),
                         STASH_OK);
        assert_int_equal(verify(&r, vectors[i][1], "us-east-1", VECTOR_TIME - 900, s_creds, 2, &v),
                         STASH_OK);
        /* Any target prefix when the caller does not know the service. */
        assert_int_equal(verify(&r, NULL, "us-east-1", VECTOR_TIME, s_creds, 2, &v), STASH_OK);
        free(r.text);
    }
}

static void expect_refusal(struct vreq *r, const char *service, const char *region, int64_t now,
                           const struct fa_cred *creds, size_t ncreds, int status, const char *type,
                           const char *message)
{
    struct fa_auth_verdict v;

    assert_int_equal(verify(r, service, region, now, creds, ncreds, &v), STASH_EINVAL);
    assert_int_equal(v.status, status);
    assert_string_equal(v.type, type);
    if (!strstr(v.message, message)) {
        fail_msg("message \"%s\" lacks \"%s\"", v.message, message);
    }
}

static void test_auth_verify_refusals(void **state)
{
    static const struct fa_cred wrong_secret[] = {{"AKIDEXAMPLE", "wrong", NULL}};
    struct vreq r;
    char *sig;

    (void)state;
    vreq_load("secretsmanager-getsecretvalue", &r);
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, wrong_secret, 1, 403,
                   "InvalidSignatureException",
                   "The request signature we calculated does not match the signature you "
                   "provided.");
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 1, 403,
                   "UnrecognizedClientException",
                   "The security token included in the request is invalid.");
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME + 901, s_creds, 2, 403,
                   "InvalidSignatureException",
                   "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z "
                   "(20150830T125101Z - 15 min.)");
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME - 901, s_creds, 2, 403,
                   "InvalidSignatureException",
                   "Signature not yet current: 20150830T123600Z is still later than "
                   "20150830T123559Z (20150830T122059Z + 15 min.)");
    expect_refusal(&r, "secretsmanager", "eu-west-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException",
                   "Credential should be scoped to a valid region, not 'us-east-1'.");
    expect_refusal(&r, "ssm", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException",
                   "Credential should be scoped to correct service: 'ssm'.");

    /* A changed body, then a changed signed header. */
    r.body = "{\"SecretId\":\"MyTestSecreT\"}";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException", "does not match");
    free(r.text);
    vreq_load("secretsmanager-getsecretvalue", &r);
    r.values[2] = "secretsmanager.GetSecretValueX"; /* X-Amz-Target */
    assert_string_equal(r.names[2], "X-Amz-Target");
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException", "does not match");
    free(r.text);

    /* A flipped signature digit. */
    vreq_load("secretsmanager-getsecretvalue", &r);
    /* values point into text, which is ours to change. */
    sig = r.text + (strstr(r.values[4], "Signature=") - r.text) + strlen("Signature=");
    sig[10] = sig[10] == '0' ? '1' : '0';
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException", "does not match");
    free(r.text);

    /* A signed header that is missing from the request. */
    vreq_load("secretsmanager-getsecretvalue", &r);
    r.drop = "content-type";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException", "does not match");
    r.drop = "authorization";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 400,
                   "MissingAuthenticationTokenException", "Missing Authentication Token");
    r.drop = "x-amz-date";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 400,
                   "IncompleteSignatureException", "X-Amz-Date");
    r.drop = NULL;
    r.values[3] = "20150831T123600Z"; /* X-Amz-Date no longer matches the scope date */
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException",
                   "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                   "date from HTTP: '20150830' != '20150831', from '20150831T123600Z'.");
    r.values[3] = "2015-08-30";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 400,
                   "IncompleteSignatureException", "ISO8601");
    r.values[3] = "20150830T123600Z";
    r.values[4] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830";
    expect_refusal(&r, "secretsmanager", "us-east-1", VECTOR_TIME, s_creds, 2, 400,
                   "IncompleteSignatureException", "Credential");
    free(r.text);
}

static void test_auth_verify_session_token(void **state)
{
    static const char token[] =
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXm"
        "xfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy"
        "0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64l"
        "IZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
    const struct fa_cred with_token[] = {
        {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token}};
    const struct fa_cred other_token[] = {
        {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "another-token"}};
    struct fa_auth_verdict v;
    struct vreq r;

    (void)state;
    vreq_load("ssm-getparameter-session-token", &r);
    assert_int_equal(verify(&r, "ssm", "us-east-1", VECTOR_TIME, with_token, 1, &v), STASH_OK);
    expect_refusal(&r, "ssm", "us-east-1", VECTOR_TIME, other_token, 1, 403,
                   "UnrecognizedClientException", "security token");
    free(r.text);
    /* A key configured with a token refuses a request without one. */
    vreq_load("ssm-getparameter", &r);
    expect_refusal(&r, "ssm", "us-east-1", VECTOR_TIME, with_token, 1, 403,
                   "UnrecognizedClientException", "security token");
    free(r.text);
    /* A token sent but not signed is refused even for a key that needs none. */
    vreq_load("ssm-getparameter", &r);
    r.names[r.n] = "X-Amz-Security-Token";
    r.values[r.n++] = "unsigned-token";
    expect_refusal(&r, "ssm", "us-east-1", VECTOR_TIME, s_creds, 2, 403,
                   "InvalidSignatureException", "must be signed");
    free(r.text);
}

/* ---- operations ------------------------------------------------------------------------------ */

static cJSON *call(struct fa_data *d, enum fa_op op, const char *body, int status,
                   const char *error_type)
{
    struct fa_reply r;
    cJSON *j;

    fa_ops_handle(d, op, body, strlen(body), &r);
    if (r.status != status ||
        (error_type ? !r.error_type || strcmp(r.error_type, error_type) : r.error_type != NULL)) {
        fail_msg("%s %s: %d %s", fa_ops_name(op), body, r.status, r.body.data);
    }
    j = cJSON_ParseWithLength(r.body.data, r.body.len);
    assert_non_null(j);
    if (error_type) {
        assert_string_equal(cJSON_GetObjectItem(j, "__type")->valuestring, error_type);
    }
    fa_reply_release(&r);
    return j;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_ops_targets(void **state)
{
    (void)state;
    assert_int_equal(fa_ops_from_target("secretsmanager.GetSecretValue"), FA_OP_GET_SECRET_VALUE);
    assert_int_equal(fa_ops_from_target("AmazonSSM.GetParameters"), FA_OP_GET_PARAMETERS);
    assert_int_equal(fa_ops_from_target("AmazonSSM.GetSecretValue"), FA_OP_UNKNOWN);
    assert_int_equal(fa_ops_from_target(NULL), FA_OP_UNKNOWN);
    assert_int_equal(fa_ops_from_name("BatchGetSecretValue"), FA_OP_BATCH_GET_SECRET_VALUE);
    assert_string_equal(fa_ops_target_service("AmazonSSM.PutParameter"), "ssm");
    assert_string_equal(fa_ops_target_service("secretsmanager.X"), "secretsmanager");
    assert_null(fa_ops_target_service("Amazon.X"));
    assert_null(fa_ops_target_service(NULL));
}

static void test_ops_get_secret_value_shape(void **state)
{
    struct fa_data *d = parse_ok(
        "{\"Secrets\":[{\"Name\":\"s\",\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:s-"
        "AbCdEf\","
        "\"Versions\":[{\"VersionId\":\"EXAMPLE1-90ab-cdef-fedc-ba987SECRET1\",\"SecretString\":"
        "\"a\\\"b\\n\",\"CreatedDate\":1523477145.713}]},{\"Name\":\"i\",\"Versions\":"
        "[{\"SecretString\":\"x\",\"CreatedDate\":1523477145}]}]}");
    cJSON *j;

    (void)state;
    j = call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"s\"}", 200, NULL);
    assert_string_equal(str(j, "ARN"), "arn:aws:secretsmanager:us-east-1:1:secret:s-AbCdEf");
    assert_string_equal(str(j, "Name"), "s");
    assert_string_equal(str(j, "SecretString"), "a\"b\n");
    assert_string_equal(str(j, "VersionId"), "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1");
    assert_true(cJSON_GetObjectItem(j, "CreatedDate")->valuedouble == 1523477145.713);
    assert_null(cJSON_GetObjectItem(j, "SecretBinary"));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "VersionStages"), 0)->valuestring,
                        "AWSCURRENT");
    cJSON_Delete(j);
    {
        /* Whole seconds are sent without a fraction. */
        struct fa_reply r;

        fa_ops_handle(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"i\"}", 16, &r);
        assert_non_null(strstr(r.body.data, "\"CreatedDate\":1523477145,"));
        fa_reply_release(&r);
    }
    fa_data_free(d);
}

static void test_ops_errors(void **state)
{
    struct fa_data *d = load_sample();
    cJSON *j;

    (void)state;
    j = call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"nope\"}", 400,
             "ResourceNotFoundException");
    assert_string_equal(str(j, "message"), "Secrets Manager can't find the specified secret.");
    cJSON_Delete(j);
    j = call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"prod/db\",\"VersionStage\":\"X\"}", 400,
             "ResourceNotFoundException");
    assert_string_equal(str(j, "message"),
                        "Secrets Manager can't find the specified secret value for staging "
                        "label: X");
    cJSON_Delete(j);
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE,
                      "{\"SecretId\":\"prod/db\",\"VersionId\":\"a1b2c3d4-1111-4aaa-8bbb-"
                      "000000000001\",\"VersionStage\":\"AWSCURRENT\"}",
                      400, "InvalidRequestException"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "{}", 400, "ValidationException"));
    cJSON_Delete(
        call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"\"}", 400, "ValidationException"));
    cJSON_Delete(
        call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":null}", 400, "ValidationException"));
    cJSON_Delete(
        call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":[\"a\"]}", 400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"prod/db\",\"VersionId\":\"x\"}",
                      400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "nul", 400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "\"str\"", 400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"prod/kms-broken\"}", 400,
                      "DecryptionFailure"));
    cJSON_Delete(call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"prod/deleted\"}", 400,
                      "InvalidRequestException"));
    j = call(d, FA_OP_GET_SECRET_VALUE, "{\"SecretId\":\"prod/denied\"}", 400,
             "AccessDeniedException");
    assert_non_null(strstr(str(j, "message"), "secretsmanager:GetSecretValue"));
    assert_null(strstr(str(j, "message"), "you-should-not-see-this"));
    cJSON_Delete(j);
    /* SSM's ParameterNotFound carries no message, as AWS sends it. */
    j = call(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/nope\"}", 400, "ParameterNotFound");
    assert_null(cJSON_GetObjectItem(j, "message"));
    cJSON_Delete(j);
    j = call(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/app/prod/feature-flags:7\"}", 400,
             "ParameterVersionNotFound");
    assert_string_equal(str(j, "message"), "Systems Manager could not find version 7 of "
                                           "/app/prod/feature-flags. Verify the version and try "
                                           "again.");
    cJSON_Delete(j);
    cJSON_Delete(call(d, FA_OP_GET_PARAMETER, "{\"Name\":\"x\",\"WithDecryption\":1}", 400,
                      "SerializationException"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETERS, "{\"Names\":[]}", 400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETERS,
                      "{\"Names\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
                      "\"11\"]}",
                      400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETERS, "{\"Names\":[1]}", 400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETERS, "{}", 400, "ValidationException"));
    cJSON_Delete(
        call(d, FA_OP_BATCH_GET_SECRET_VALUE, "{\"Filters\":[]}", 400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE, "{}", 400, "InvalidParameterException"));
    j = call(d, FA_OP_UNKNOWN, "{}", 400, "UnknownOperationException");
    cJSON_Delete(j);
    fa_data_free(d);
}

/* The secrets a BatchGetSecretValue call returned, as "name,name,..." (values) and
 * "name:Code,..." (errors), and its NextToken. */
static void batch_names(const cJSON *j, char *vals, char *errs, size_t cap)
{
    const cJSON *e;

    vals[0] = errs[0] = '\0';
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "SecretValues"))
    {
        (void)snprintf(vals + strlen(vals), cap - strlen(vals), "%s%s", vals[0] ? "," : "",
                       str(e, "Name"));
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "Errors"))
    {
        (void)snprintf(errs + strlen(errs), cap - strlen(errs), "%s%s:%s", errs[0] ? "," : "",
                       str(e, "SecretId"), str(e, "ErrorCode"));
    }
}

static void expect_batch(struct fa_data *d, const char *filters, const char *want_vals,
                         const char *want_errs)
{
    char body[1024];
    char vals[512];
    char errs[512];
    cJSON *j;

    (void)snprintf(body, sizeof(body), "{\"Filters\":%s}", filters);
    j = call(d, FA_OP_BATCH_GET_SECRET_VALUE, body, 200, NULL);
    batch_names(j, vals, errs, sizeof(vals));
    if (strcmp(vals, want_vals) != 0 || strcmp(errs, want_errs) != 0) {
        fail_msg("%s: got [%s] [%s], want [%s] [%s]", filters, vals, errs, want_vals, want_errs);
    }
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "NextToken"));
    cJSON_Delete(j);
}

static void test_ops_batch_filters(void **state)
{
    struct fa_data *d = parse_ok(
        "{\"Secrets\":["
        "{\"Name\":\"app/b\",\"Tags\":[{\"Key\":\"env\",\"Value\":\"dev\"},{\"Key\":\"team\"}],"
        "\"Versions\":[{\"SecretString\":\"b\"}]},"
        "{\"Name\":\"app/a\",\"Description\":\"Alpha DB\",\"PrimaryRegion\":\"eu-west-1\","
        "\"OwningService\":\"rds\",\"Tags\":[{\"Key\":\"env\",\"Value\":\"prod\"}],"
        "\"Versions\":[{\"SecretString\":\"a\"}]},"
        "{\"Name\":\"app/c\",\"Versions\":[{\"SecretString\":\"c\"}]},"
        "{\"Name\":\"App/upper\",\"Versions\":[{\"SecretString\":\"u\"}]},"
        "{\"Name\":\"other/x\",\"Description\":\"alpha thing\",\"Versions\":[{\"SecretString\":"
        "\"x\"}]},"
        "{\"Name\":\"app/gone\",\"Deleted\":true,\"Versions\":[{\"SecretString\":\"g\"}]},"
        "{\"Name\":\"app/denied\",\"AccessDenied\":true,\"Versions\":[{\"SecretString\":\"d\"}]}"
        "]}");
    cJSON *j;
    char body[1024];
    const char *tok;
    char *tok2;

    (void)state;
    /* name: prefix, case-sensitive, name order; deleted ones not listed, denied ones as errors. */
    expect_batch(d, "[{\"Key\":\"name\",\"Values\":[\"app/\"]}]", "app/a,app/b,app/c",
                 "app/denied:AccessDeniedException");
    expect_batch(d, "[{\"Key\":\"name\",\"Values\":[\"App\"]}]", "App/upper", "");
    expect_batch(d, "[{\"Key\":\"name\",\"Values\":[\"\"]}]", "App/upper,app/a,app/b,app/c,other/x",
                 "app/denied:AccessDeniedException");
    /* description: prefix, not case-sensitive; a secret without one never matches. */
    expect_batch(d, "[{\"Key\":\"description\",\"Values\":[\"ALPHA\"]}]", "app/a,other/x", "");
    expect_batch(d, "[{\"Key\":\"description\",\"Values\":[\"DB\"]}]", "", "");
    /* tags: any tag's key or value; a tag without Value has "". */
    expect_batch(d, "[{\"Key\":\"tag-key\",\"Values\":[\"te\"]}]", "app/b", "");
    expect_batch(d, "[{\"Key\":\"tag-value\",\"Values\":[\"pr\",\"de\"]}]", "app/a,app/b", "");
    expect_batch(d, "[{\"Key\":\"primary-region\",\"Values\":[\"eu-\"]}]", "app/a", "");
    expect_batch(d, "[{\"Key\":\"owning-service\",\"Values\":[\"rds\"]}]", "app/a", "");
    /* Negation: every negated value must miss; absent attributes miss. */
    expect_batch(d, "[{\"Key\":\"name\",\"Values\":[\"app/\",\"!app/b\",\"!app/d\"]}]",
                 "app/a,app/c", "");
    expect_batch(d, "[{\"Key\":\"tag-key\",\"Values\":[\"!env\"]}]", "App/upper,app/c,other/x",
                 "app/denied:AccessDeniedException");
    /* Several filters: all must hold. */
    expect_batch(d,
                 "[{\"Key\":\"name\",\"Values\":[\"app/\"]},{\"Key\":\"tag-value\",\"Values\":"
                 "[\"prod\"]}]",
                 "app/a", "");
    /* all: each word, any case, starts an attribute or a word of one. */
    expect_batch(d, "[{\"Key\":\"all\",\"Values\":[\"alpha\"]}]", "app/a,other/x", "");
    expect_batch(d, "[{\"Key\":\"all\",\"Values\":[\"alpha DB\"]}]", "app/a", "");
    expect_batch(d, "[{\"Key\":\"all\",\"Values\":[\"THING x\"]}]", "other/x", "");
    expect_batch(d, "[{\"Key\":\"all\",\"Values\":[\"upper\"]}]", "App/upper", "");
    expect_batch(d, "[{\"Key\":\"all\",\"Values\":[\"!app\"]}]", "other/x", "");

    /* Paging: MaxResults per page, NextToken until the end, then none. */
    j = call(d, FA_OP_BATCH_GET_SECRET_VALUE,
             "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"app/\"]}],\"MaxResults\":3}", 200,
             NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "SecretValues")), 3);
    tok = str(j, "NextToken");
    assert_non_null(tok);
    tok2 = strdup(tok);
    cJSON_Delete(j);
    (void)snprintf(body, sizeof(body),
                   "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"app/\"]}],\"MaxResults\":3,"
                   "\"NextToken\":\"%s\"}",
                   tok2);
    j = call(d, FA_OP_BATCH_GET_SECRET_VALUE, body, 200, NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "SecretValues")), 0);
    assert_string_equal(str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "Errors"), 0), "SecretId"),
                        "app/denied");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "NextToken"));
    cJSON_Delete(j);
    /* The token of another search, a forged one, garbage: InvalidNextTokenException. */
    (void)snprintf(body, sizeof(body),
                   "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"app\"]}],\"NextToken\":\"%s\"}",
                   tok2);
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE, body, 400, "InvalidNextTokenException"));
    free(tok2);
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"NextToken\":\"!!\"}",
                      400, "InvalidNextTokenException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"NextToken\":"
                      "\"ZmExOjAwMDAwMDAwMDAwMDAwMDA6YXBw\"}",
                      400, "InvalidNextTokenException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"NextToken\":\"\"}",
                      400, "ValidationException"));

    /* Validation. */
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"SecretIdList\":[\"app/a\"],\"Filters\":[{\"Key\":\"name\",\"Values\":"
                      "[\"a\"]}]}",
                      400, "InvalidParameterException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"SecretIdList\":[\"app/a\"],\"MaxResults\":2}", 400,
                      "InvalidParameterException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"SecretIdList\":[\"app/a\"],\"NextToken\":\"x\"}", 400,
                      "InvalidParameterException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"MaxResults\":21}",
                      400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"MaxResults\":1e300}",
                      400, "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"MaxResults\":2.5}",
                      400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a\"]}],\"MaxResults\":\"2\"}",
                      400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"Name\",\"Values\":[\"a\"]}]}", 400,
                      "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[\"a*\"]}]}", 400,
                      "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":\"name\",\"Values\":[]}]}", 400,
                      "ValidationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE, "{\"Filters\":[{\"Key\":\"name\"}]}", 400,
                      "InvalidParameterException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE,
                      "{\"Filters\":[{\"Key\":1,\"Values\":[\"a\"]}]}", 400,
                      "SerializationException"));
    cJSON_Delete(
        call(d, FA_OP_BATCH_GET_SECRET_VALUE, "{\"Filters\":{}}", 400, "SerializationException"));
    cJSON_Delete(call(d, FA_OP_BATCH_GET_SECRET_VALUE, "{\"Filters\":[1,2,3,4,5,6,7,8,9,10,11]}",
                      400, "ValidationException"));
    fa_data_free(d);
}

static void test_ops_parameters(void **state)
{
    struct fa_data *d = load_sample();
    cJSON *j;
    const cJSON *p;
    struct fa_reply r;

    (void)state;
    j = call(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/app/prod/feature-flags:canary\"}", 200, NULL);
    p = cJSON_GetObjectItem(j, "Parameter");
    assert_string_equal(str(p, "Name"), "/app/prod/feature-flags");
    assert_string_equal(str(p, "Selector"), ":canary");
    assert_int_equal(cJSON_GetObjectItem(p, "Version")->valueint, 2);
    assert_true(cJSON_GetObjectItem(p, "LastModifiedDate")->valuedouble == 1769904000.0);
    cJSON_Delete(j);

    /* SecureString: a deterministic stand-in for ciphertext without decryption. */
    fa_ops_handle(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/app/prod/db/password\"}", 34, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.data, "s3cure"));
    j = cJSON_Parse(r.body.data);
    {
        const char *ct = str(cJSON_GetObjectItem(j, "Parameter"), "Value");
        unsigned char raw[256];
        size_t n;

        assert_int_equal(b64_decode(ct, strlen(ct), raw, &n), STASH_OK);
        assert_int_equal(n, 16 + strlen("s3cure-Pa55") + 16);
    }
    cJSON_Delete(j);
    {
        struct fa_reply again;

        fa_ops_handle(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/app/prod/db/password\"}", 34, &again);
        assert_string_equal(again.body.data, r.body.data);
        fa_reply_release(&again);
    }
    fa_reply_release(&r);
    j = call(d, FA_OP_GET_PARAMETER, "{\"Name\":\"/app/prod/db/password\",\"WithDecryption\":true}",
             200, NULL);
    assert_string_equal(str(cJSON_GetObjectItem(j, "Parameter"), "Value"), "s3cure-Pa55");
    cJSON_Delete(j);

    j = call(d, FA_OP_GET_PARAMETERS,
             "{\"Names\":[\"/nope\",\"/app/prod/db/host\",\"/app/prod/feature-flags:9\"]}", 200,
             NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "Parameters")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "InvalidParameters")), 2);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(j, "InvalidParameters"), 1)->valuestring,
        "/app/prod/feature-flags:9");
    cJSON_Delete(j);
    cJSON_Delete(call(d, FA_OP_GET_PARAMETERS, "{\"Names\":[\"/app/prod/denied\"]}", 400,
                      "AccessDeniedException"));
    fa_data_free(d);
}

static void test_ops_reference(void **state)
{
    struct fa_data *d = load_sample();
    cJSON *j;
    cJSON *src;
    const cJSON *p;

    (void)state;
    j = call(d, FA_OP_GET_PARAMETER,
             "{\"Name\":\"/aws/reference/secretsmanager/prod/db\",\"WithDecryption\":true}", 200,
             NULL);
    p = cJSON_GetObjectItem(j, "Parameter");
    assert_string_equal(str(p, "Type"), "SecureString");
    assert_int_equal(cJSON_GetObjectItem(p, "Version")->valueint, 0);
    assert_null(cJSON_GetObjectItem(p, "DataType"));
    src = cJSON_Parse(str(p, "SourceResult"));
    assert_non_null(src);
    assert_string_equal(str(src, "name"), "prod/db");
    assert_string_equal(str(src, "versionId"), "a1b2c3d4-2222-4aaa-8bbb-000000000002");
    assert_string_equal(str(src, "createdDate"), "Feb 10, 2026, 9:00:00 AM");
    assert_string_equal(str(src, "secretString"), str(p, "Value"));
    cJSON_Delete(src);
    cJSON_Delete(j);

    /* A binary secret: no Value; SourceResult holds the bytes as a Java ByteBuffer does. */
    j = call(d, FA_OP_GET_PARAMETER,
             "{\"Name\":\"/aws/reference/secretsmanager/prod/tls-key\",\"WithDecryption\":true}",
             200, NULL);
    p = cJSON_GetObjectItem(j, "Parameter");
    assert_null(cJSON_GetObjectItem(p, "Value"));
    src = cJSON_Parse(str(p, "SourceResult"));
    {
        const cJSON *hb = cJSON_GetObjectItem(cJSON_GetObjectItem(src, "secretBinary"), "hb");

        assert_int_equal(cJSON_GetArraySize(hb), 21);
        assert_int_equal(cJSON_GetArrayItem(hb, 1)->valueint, 1);
        assert_int_equal(cJSON_GetArrayItem(hb, 20)->valueint, -1);
        assert_string_equal(str(src, "createdDate"), "Mar 1, 2026, 12:00:00 AM");
    }
    cJSON_Delete(src);
    cJSON_Delete(j);

    /* By version id as the selector; unknown secret; without decryption. */
    j = call(d, FA_OP_GET_PARAMETER,
             "{\"Name\":\"/aws/reference/secretsmanager/prod/db:a1b2c3d4-1111-4aaa-8bbb-"
             "000000000001\",\"WithDecryption\":true}",
             200, NULL);
    assert_non_null(strstr(str(cJSON_GetObjectItem(j, "Parameter"), "Value"), "old-Pa55word"));
    cJSON_Delete(j);
    cJSON_Delete(call(d, FA_OP_GET_PARAMETER,
                      "{\"Name\":\"/aws/reference/secretsmanager/nope\",\"WithDecryption\":true}",
                      400, "ParameterNotFound"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETER,
                      "{\"Name\":\"/aws/reference/secretsmanager/prod/db\"}", 400,
                      "ValidationException"));
    cJSON_Delete(call(d, FA_OP_GET_PARAMETER,
                      "{\"Name\":\"/aws/reference/secretsmanager/prod/denied\","
                      "\"WithDecryption\":true}",
                      400, "AccessDeniedException"));
    fa_data_free(d);
}

static void test_ops_batch(void **state)
{
    struct fa_data *d = load_sample();
    cJSON *j;
    const cJSON *errors;

    (void)state;
    j = call(d, FA_OP_BATCH_GET_SECRET_VALUE,
             "{\"SecretIdList\":[\"prod/db\",\"nope\",\"prod/denied\",\"prod/tls-key\"]}", 200,
             NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "SecretValues")), 2);
    errors = cJSON_GetObjectItem(j, "Errors");
    assert_int_equal(cJSON_GetArraySize(errors), 2);
    assert_string_equal(str(cJSON_GetArrayItem(errors, 0), "SecretId"), "nope");
    assert_string_equal(str(cJSON_GetArrayItem(errors, 0), "ErrorCode"),
                        "ResourceNotFoundException");
    assert_string_equal(str(cJSON_GetArrayItem(errors, 1), "ErrorCode"), "AccessDeniedException");
    assert_non_null(
        str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "SecretValues"), 1), "SecretBinary"));
    cJSON_Delete(j);
    fa_data_free(d);
}

/* ---- the fault queue and counters ------------------------------------------------------------ */

static void test_control_faults(void **state)
{
    struct fa_control *c = fa_control_new(0, 0, 0);
    struct fa_fault f;

    (void)state;
    fa_control_take(c, FA_OP_GET_PARAMETER, &f);
    assert_int_equal(f.kind, FA_FAULT_NONE);
    assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_GET_SECRET_VALUE, 2, 500,
                                    "InternalServiceError", NULL, 0),
                     STASH_OK);
    assert_int_equal(fa_control_add(c, FA_FAULT_THROTTLE, FA_OP_UNKNOWN, 1, 0, NULL, NULL, 0),
                     STASH_OK);
    assert_int_equal(
        fa_control_add(c, FA_FAULT_HANG, FA_OP_GET_SECRET_VALUE, 1, 0, NULL, NULL, 1234), STASH_OK);
    /* GetParameter: the any-op throttle; the GetSecretValue rules are untouched. */
    fa_control_take(c, FA_OP_GET_PARAMETER, &f);
    assert_int_equal(f.kind, FA_FAULT_THROTTLE);
    assert_int_equal(f.status, 400);
    assert_string_equal(f.type, "ThrottlingException");
    assert_string_equal(f.message, "Rate exceeded");
    assert_int_equal(f.hang_ms, 0);
    fa_control_take(c, FA_OP_GET_PARAMETER, &f);
    assert_int_equal(f.kind, FA_FAULT_NONE);
    /* GetSecretValue: a hang and a failure together, then the failure alone, then nothing. */
    fa_control_take(c, FA_OP_GET_SECRET_VALUE, &f);
    assert_int_equal(f.kind, FA_FAULT_FAIL);
    assert_int_equal(f.status, 500);
    assert_string_equal(f.type, "InternalServiceError");
    assert_int_equal(f.hang_ms, 1234);
    fa_control_take(c, FA_OP_GET_SECRET_VALUE, &f);
    assert_int_equal(f.kind, FA_FAULT_FAIL);
    assert_int_equal(f.hang_ms, 0);
    fa_control_take(c, FA_OP_GET_SECRET_VALUE, &f);
    assert_int_equal(f.kind, FA_FAULT_NONE);

    assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_UNKNOWN, 0, 500, "X", NULL, 0),
                     STASH_EINVAL);
    assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_UNKNOWN, 1, 302, "X", NULL, 0),
                     STASH_EINVAL);
    assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_UNKNOWN, 1, 500, "", NULL, 0),
                     STASH_EINVAL);
    assert_int_equal(
        fa_control_add(c, FA_FAULT_HANG, FA_OP_UNKNOWN, 1, 0, NULL, NULL, FA_DELAY_MAX_MS + 1),
        STASH_EINVAL);
    for (int i = 0; i < FA_FAULTS_MAX; i++) {
        assert_int_equal(fa_control_add(c, FA_FAULT_THROTTLE, FA_OP_UNKNOWN, 1, 0, NULL, NULL, 0),
                         STASH_OK);
    }
    assert_int_equal(fa_control_add(c, FA_FAULT_THROTTLE, FA_OP_UNKNOWN, 1, 0, NULL, NULL, 0),
                     STASH_ETOOBIG);
    fa_control_reset(c);
    fa_control_take(c, FA_OP_GET_PARAMETER, &f);
    assert_int_equal(f.kind, FA_FAULT_NONE);
    fa_control_free(c);
}

/* An injected error type travels in a JSON string and in the x-amzn-ErrorType header: one that
 * could break either (a quote, a backslash, a control byte, a space) is refused when injected,
 * and fa_ops_error escapes whatever it is given, so its body always parses. */
static void test_control_fault_type_is_a_token(void **state)
{
    struct fa_control *c = fa_control_new(0, 0, 0);
    static const char *const bad[] = {"Bad\"Type", "Bad\\Type", "Bad\r\nX-Evil: 1", "Bad Type",
                                      "Bad\x7f"};
    struct fa_reply r;
    cJSON *j;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_UNKNOWN, 1, 500, bad[i], NULL, 0),
                         STASH_EINVAL);
    }
    assert_int_equal(fa_control_add(c, FA_FAULT_FAIL, FA_OP_UNKNOWN, 1, 500,
                                    "aws.protocoltests#FooError:http://x/", NULL, 0),
                     STASH_OK);
    fa_control_free(c);

    fa_reply_init(&r);
    fa_ops_error(&r, 500, "Bad\"Type\\", "m");
    j = cJSON_ParseWithLength(r.body.data, r.body.len);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "__type")->valuestring, "Bad\"Type\\");
    cJSON_Delete(j);
    fa_reply_release(&r);
}

static void test_control_counters_and_delay(void **state)
{
    struct fa_control *c = fa_control_new(10, 0, 90);
    struct buf b = BUF_INIT(0);
    unsigned long t;
    unsigned long hung;
    cJSON *j;
    const cJSON *gsv;

    (void)state;
    assert_int_equal(fa_control_delay_ms(c, 0), 10);
    assert_int_equal(fa_control_delay_ms(c, 1), 100);
    assert_int_equal(fa_control_set_latency(c, 5, 3, 0), STASH_OK);
    for (int i = 0; i < 200; i++) {
        unsigned ms = fa_control_delay_ms(c, 1);

        assert_true(ms >= 5 && ms <= 8);
    }
    assert_int_equal(fa_control_set_latency(c, FA_DELAY_MAX_MS + 1, 0, 0), STASH_EINVAL);

    fa_control_connection_opened(c);
    fa_control_connection_opened(c);
    fa_control_api_connection(c);
    t = fa_control_begin(c, FA_OP_GET_SECRET_VALUE);
    fa_control_end(c, t, FA_OP_GET_SECRET_VALUE, 200, 0, 0);
    t = fa_control_begin(c, FA_OP_GET_SECRET_VALUE);
    fa_control_end(c, t, FA_OP_GET_SECRET_VALUE, 400, 1, 0);
    t = fa_control_begin(c, FA_OP_GET_SECRET_VALUE);
    fa_control_end(c, t, FA_OP_GET_SECRET_VALUE, 403, 0, 1);
    t = fa_control_begin(c, FA_OP_GET_PARAMETER);
    fa_control_end(c, t, FA_OP_GET_PARAMETER, 500, 0, 0);
    t = fa_control_begin(c, (enum fa_op)99);
    fa_control_end(c, t, (enum fa_op)99, 400, 0, 0);
    hung = fa_control_begin(c, FA_OP_GET_PARAMETERS); /* still being answered */
    assert_int_equal(fa_control_stats(c, &b), STASH_OK);
    j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "connections")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(j, "api_connections")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(j, "requests")->valueint, 6);
    assert_int_equal(cJSON_GetObjectItem(j, "in_flight")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(j, "auth_failures")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "latency"), "jitter_ms")->valueint,
                     3);
    gsv = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ops"), "GetSecretValue");
    assert_int_equal(cJSON_GetObjectItem(gsv, "calls")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(gsv, "errors")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(gsv, "throttled")->valueint, 1);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ops"), "Unknown"), "calls")
            ->valueint,
        1);
    cJSON_Delete(j);
    buf_reset(&b);
    fa_control_reset(c);
    assert_int_equal(fa_control_stats(c, &b), STASH_OK);
    assert_non_null(
        strstr(b.data, "\"connections\":0,\"api_connections\":0,\"requests\":0,\"in_flight\":1,"));
    /* The answer to a request begun before the reset changes no counter but the gauge. */
    fa_control_end(c, hung, FA_OP_GET_PARAMETERS, 503, 1, 1);
    buf_reset(&b);
    assert_int_equal(fa_control_stats(c, &b), STASH_OK);
    assert_non_null(strstr(b.data, "\"requests\":0,\"in_flight\":0,\"auth_failures\":0,"));
    assert_null(strstr(b.data, "\"errors\":1"));
    assert_null(strstr(b.data, "\"throttled\":1"));
    buf_release(&b);

    /* After shutdown, a sleep returns at once and says it was cut short. */
    assert_int_equal(fa_control_sleep(c, 0), 0);
    fa_control_shutdown(c);
    assert_int_equal(fa_control_sleep(c, FA_DELAY_MAX_MS), -1);
    fa_control_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_data_sample_secrets),
        cmocka_unit_test(test_data_secret_misses),
        cmocka_unit_test(test_data_sample_params),
        cmocka_unit_test(test_data_malformed),
        cmocka_unit_test(test_data_file_errors),
        cmocka_unit_test(test_data_rotate),
        cmocka_unit_test(test_data_put_param),
        cmocka_unit_test(test_auth_parse_ok),
        cmocka_unit_test(test_auth_parse_rejects),
        cmocka_unit_test(test_auth_amz_date),
        cmocka_unit_test(test_auth_verify_vectors),
        cmocka_unit_test(test_auth_verify_refusals),
        cmocka_unit_test(test_auth_verify_session_token),
        cmocka_unit_test(test_ops_targets),
        cmocka_unit_test(test_ops_get_secret_value_shape),
        cmocka_unit_test(test_ops_errors),
        cmocka_unit_test(test_ops_parameters),
        cmocka_unit_test(test_ops_batch_filters),
        cmocka_unit_test(test_ops_reference),
        cmocka_unit_test(test_ops_batch),
        cmocka_unit_test(test_control_faults),
        cmocka_unit_test(test_control_fault_type_is_a_token),
        cmocka_unit_test(test_control_counters_and_delay),
    };

    mem_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
