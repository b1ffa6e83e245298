/* Unit tests for cache/aws.c against an in-test AWS JSON 1.1 server (libmicrohttpd, loopback,
 * a free port chosen by the kernel).  Each call's result is checked as data (its outcome) and as
 * the local API answers it (extension/answer.h), so the whole path from the wire to the status
 * a caller sees is pinned here.
 *
 * The server plays a script of canned answers (status, X-Amzn-ErrorType, body, delay, size),
 * recomputes the SigV4 signature of every request it receives with cache/sigv4.c (whose own
 * tests check it against the suite and botocore), records what it saw, and counts the TCP
 * connections it accepted.  Timeouts are short so the tests stay fast; nothing asserts elapsed
 * time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache/aws.h"
#include "cache/sigv4.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/answer.h"

#define AKID   "AKIDTEST"
#define SECRET "test/secret+key"
#define TOKEN  "IQoJb3JpZ2luX2VjEXAMPLETOKEN//+=="

/* ---- the fake server ---------------------------------------------------------------------- */

struct canned {
    int status;
    const char *errtype; /* X-Amzn-ErrorType, or NULL */
    const char *body;    /* NULL: empty */
    unsigned delay_ms;   /* before answering */
    size_t big;          /* > 0: a body of this many bytes instead */
};

struct server {
    struct MHD_Daemon *d;
    unsigned short port;
    pthread_mutex_t lock;
    struct canned script[16];
    size_t nscript;
    size_t next;
    struct canned dflt; /* once the script is played */
    atomic_int connections;
    atomic_int requests;
    atomic_int bad_signatures;
    char last_target[128];
    char last_body[4096];
    char last_signed[512];
    char last_token[256];
    char last_path[64];
    char last_content_type[64];
    char last_region[64]; /* the credential scope's region of the last request */
    char last_host[128];
};

static struct server s_srv;

struct conn_req {
    struct buf body;
};

static void copy_hdr(struct MHD_Connection *conn, const char *name, char *out, size_t n)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

    snprintf(out, n, "%s", v ? v : "");
}

/* Recomputes the signature from what arrived: the headers named in SignedHeaders, the body, the
 * scope in Credential.  Returns 1 if it matches. */
static int verify_signature(struct MHD_Connection *conn, const char *url, const struct buf *body,
                            char *signed_out, size_t signed_len, char *region_out,
                            size_t region_len)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *date = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Date");
    static const char pre[] = "AWS4-HMAC-SHA256 Credential=";
    char cred[256];
    char signed_hdrs[512];
    char sig[SIGV4_HEX_LEN];
    char want[SIGV4_HEX_LEN];
    char *parts[5];
    char names[16][64];
    struct sigv4_header h[16];
    struct sigv4_input in = {0};
    const char *p;
    const char *q;
    size_t n = 0;
    char *tok;
    char *save = NULL;
    int i;

    if (!auth || !date || strncmp(auth, pre, sizeof(pre) - 1) != 0) {
        return 0;
    }
    p = auth + sizeof(pre) - 1;
    q = strstr(p, ", SignedHeaders=");
    if (!q || (size_t)(q - p) >= sizeof(cred)) {
        return 0;
    }
    memcpy(cred, p, (size_t)(q - p));
    cred[q - p] = '\0';
    p = q + strlen(", SignedHeaders=");
    q = strstr(p, ", Signature=");
    if (!q || (size_t)(q - p) >= sizeof(signed_hdrs)) {
        return 0;
    }
    memcpy(signed_hdrs, p, (size_t)(q - p));
    signed_hdrs[q - p] = '\0';
    snprintf(signed_out, signed_len, "%s", signed_hdrs);
    snprintf(want, sizeof(want), "%s", q + strlen(", Signature="));
    /* akid/date/region/service/aws4_request */
    tok = strtok_r(cred, "/", &save);
    for (i = 0; i < 5 && tok; i++) {
        parts[i] = tok;
        tok = strtok_r(NULL, "/", &save);
    }
    if (i != 5 || strcmp(parts[0], AKID) != 0 || strncmp(parts[1], date, 8) != 0 ||
        strcmp(parts[4], "aws4_request") != 0) {
        return 0;
    }
    snprintf(region_out, region_len, "%s", parts[2]);
    save = NULL;
    for (tok = strtok_r(signed_hdrs, ";", &save); tok && n < 16; tok = strtok_r(NULL, ";", &save)) {
        snprintf(names[n], sizeof(names[n]), "%s", tok);
        h[n].name = names[n];
        h[n].value = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, names[n]);
        if (!h[n].value) {
            return 0;
        }
        n++;
    }
    in.method = "POST";
    in.path = url;
    in.query = "";
    in.headers = h;
    in.nheaders = n;
    in.payload = body->data;
    in.payload_len = body->len;
    in.region = parts[2];
    in.service = parts[3];
    in.amz_date = date;
    in.access_key_id = AKID;
    in.secret_access_key = SECRET;
    in.normalize_path = 1;
    return sigv4_signature(&in, sig) == STASH_OK && strcmp(sig, want) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct conn_req *r = *con_cls;
    struct canned c;
    struct MHD_Response *resp;
    char *big = NULL;
    char signed_hdrs[512] = "";
    char region[64] = "";
    int ok;
    enum MHD_Result ret;

    (void)cls;
    (void)version;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        buf_init(&r->body, 1 << 20);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        (void)buf_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    ok = strcmp(method, "POST") == 0 &&
         verify_signature(conn, url, &r->body, signed_hdrs, sizeof(signed_hdrs), region,
                          sizeof(region));
    pthread_mutex_lock(&s_srv.lock);
    if (!ok) {
        s_srv.bad_signatures++;
    }
    s_srv.requests++;
    copy_hdr(conn, "X-Amz-Target", s_srv.last_target, sizeof(s_srv.last_target));
    copy_hdr(conn, "X-Amz-Security-Token", s_srv.last_token, sizeof(s_srv.last_token));
    copy_hdr(conn, "Content-Type", s_srv.last_content_type, sizeof(s_srv.last_content_type));
    copy_hdr(conn, "Host", s_srv.last_host, sizeof(s_srv.last_host));
    snprintf(s_srv.last_region, sizeof(s_srv.last_region), "%s", region);
    snprintf(s_srv.last_body, sizeof(s_srv.last_body), "%s", r->body.data ? r->body.data : "");
    snprintf(s_srv.last_signed, sizeof(s_srv.last_signed), "%s", signed_hdrs);
    snprintf(s_srv.last_path, sizeof(s_srv.last_path), "%s", url);
    c = s_srv.next < s_srv.nscript ? s_srv.script[s_srv.next++] : s_srv.dflt;
    pthread_mutex_unlock(&s_srv.lock);
    if (c.delay_ms) {
        struct timespec ts = {c.delay_ms / 1000, (long)(c.delay_ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
    if (c.big) {
        big = xmalloc(c.big);
        memset(big, 'x', c.big);
        resp = MHD_create_response_from_buffer(c.big, big, MHD_RESPMEM_MUST_FREE);
    } else {
        resp = MHD_create_response_from_buffer(
            c.body ? strlen(c.body) : 0, (void *)(c.body ? c.body : ""), MHD_RESPMEM_MUST_COPY);
    }
    MHD_add_response_header(resp, "Content-Type", "application/x-amz-json-1.1");
    MHD_add_response_header(resp, "x-amzn-RequestId", "11111111-2222-3333-4444-555555555555");
    if (c.errtype) {
        MHD_add_response_header(resp, "X-Amzn-ErrorType", c.errtype);
    }
    ret = MHD_queue_response(conn, (unsigned)c.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn_req *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (r) {
        buf_release(&r->body);
        free(r);
        *con_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s_srv.connections, 1);
    }
}

static int server_start(void **state)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    (void)state;
    memset(&s_srv, 0, sizeof(s_srv));
    pthread_mutex_init(&s_srv.lock, NULL);
    s_srv.dflt.status = 200;
    s_srv.dflt.body = "{\"Name\":\"default\",\"SecretString\":\"v\"}";
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s_srv.d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!s_srv.d) {
        return -1;
    }
    info = MHD_get_daemon_info(s_srv.d, MHD_DAEMON_INFO_BIND_PORT);
    s_srv.port = info ? info->port : 0;
    return s_srv.port ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    MHD_stop_daemon(s_srv.d);
    pthread_mutex_destroy(&s_srv.lock);
    return 0;
}

static void script(const struct canned *c, size_t n)
{
    pthread_mutex_lock(&s_srv.lock);
    memcpy(s_srv.script, c, n * sizeof(*c));
    s_srv.nscript = n;
    s_srv.next = 0;
    pthread_mutex_unlock(&s_srv.lock);
}

/* ---- client helpers ----------------------------------------------------------------------- */

struct client_opts {
    unsigned max_connections;
    unsigned max_attempts;
    long timeout_ms;
    size_t max_response;
    unsigned short port; /* 0: the test server */
    int no_token;
    const char *region_endpoints; /* set: no AWS_ENDPOINT_URL* override, this map instead */
};

static struct aws_client *client(const struct client_opts *o)
{
    char url[64];
    struct aws_config cfg = {0};

    snprintf(url, sizeof(url), "http://127.0.0.1:%u", o->port ? o->port : s_srv.port);
    cfg.region = "eu-west-1";
    cfg.access_key_id = AKID;
    cfg.secret_access_key = SECRET;
    cfg.session_token = o->no_token ? NULL : TOKEN;
    cfg.sm_endpoint = o->region_endpoints ? NULL : url;
    cfg.ssm_endpoint = o->region_endpoints ? NULL : url;
    cfg.region_endpoints = o->region_endpoints;
    cfg.sm_timeout_ms = o->timeout_ms;
    cfg.ssm_timeout_ms = o->timeout_ms;
    cfg.max_connections = o->max_connections ? o->max_connections : 2;
    cfg.max_attempts = o->max_attempts ? o->max_attempts : 3;
    cfg.max_response_bytes = o->max_response;
    cfg.backoff_base_ms = 2;
    return aws_client_new(&cfg);
}

static struct aws_client *default_client(void)
{
    struct client_opts o = {0};

    o.timeout_ms = 5000;
    return client(&o);
}

/* One call, answered as the local API answers its result; returns the result's outcome. */
static enum upstream_outcome sm_call(struct aws_client *c, const struct aws_sm_request *req,
                                     struct cache_value *v, struct facts *f)
{
    struct upstream_result r;
    enum upstream_outcome o;

    aws_get_secret_value(c, req, &r, f);
    o = r.outcome;
    assert_true(o == UP_OK ? r.body != NULL && r.message[0] == '\0'
                           : r.body == NULL && r.message[0] != '\0');
    answer_from_upstream(&r, v);
    upstream_result_release(&r);
    return o;
}

static enum upstream_outcome ssm_call(struct aws_client *c, const struct aws_ssm_request *req,
                                      struct cache_value *v, struct facts *f)
{
    struct upstream_result r;
    enum upstream_outcome o;

    aws_get_parameter(c, req, &r, f);
    o = r.outcome;
    assert_true(o == UP_OK ? r.body != NULL && r.message[0] == '\0'
                           : r.body == NULL && r.message[0] != '\0');
    answer_from_upstream(&r, v);
    upstream_result_release(&r);
    return o;
}

static enum upstream_outcome get_secret(struct aws_client *c, const char *id, struct cache_value *v,
                                        struct facts *f)
{
    struct aws_sm_request r = {id, NULL, NULL};

    memset(f, 0, sizeof(*f));
    return sm_call(c, &r, v, f);
}

/* Asserts an error body {"__type":type,...} and returns its message (static copy). */
static const char *assert_error(const struct cache_value *v, int status, const char *type)
{
    static char msg[512];
    cJSON *o;
    const cJSON *t;
    const cJSON *m;

    assert_int_equal(v->status, status);
    assert_non_null(v->body);
    o = cJSON_Parse(v->body);
    assert_non_null(o);
    t = cJSON_GetObjectItemCaseSensitive(o, "__type");
    m = cJSON_GetObjectItemCaseSensitive(o, "message");
    assert_true(cJSON_IsString(t));
    assert_true(cJSON_IsString(m));
    assert_string_equal(t->valuestring, type);
    snprintf(msg, sizeof(msg), "%s", m->valuestring);
    cJSON_Delete(o);
    return msg;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_sm_success_shape(void **state)
{
    static const struct canned c[] = {
        {200, NULL,
         "{\"ARN\":\"arn:aws:secretsmanager:us-west-2:123456789012:secret:MyTestDatabaseSecret-"
         "a1b2c3\",\"CreatedDate\":1523477145.713,\"Name\":\"MyTestDatabaseSecret\","
         "\"SecretString\":\"{\\n  \\\"username\\\":\\\"david\\\",\\n  "
         "\\\"password\\\":\\\"EXAMPLE-PASSWORD\\\"\\n}\\n\",\"VersionId\":\"EXAMPLE1-90ab-cdef-"
         "fedc-ba987SECRET1\",\"VersionStages\":[\"AWSPREVIOUS\"]}",
         0, 0},
    };
    struct aws_client *cl = default_client();
    struct aws_sm_request r = {"MyTestDatabaseSecret", NULL, "AWSPREVIOUS"};
    struct cache_value v;
    struct facts f = {0};

    (void)state;
    script(c, 1);
    sm_call(cl, &r, &v, &f);
    assert_int_equal(v.status, 200);
    assert_string_equal(
        v.body,
        "{\"ARN\":\"arn:aws:secretsmanager:us-west-2:123456789012:secret:MyTestDatabaseSecret-"
        "a1b2c3\",\"CreatedDate\":\"2018-04-11T20:05:45.713Z\",\"Name\":\"MyTestDatabaseSecret\","
        "\"SecretBinary\":null,\"SecretString\":\"{\\n  \\\"username\\\":\\\"david\\\",\\n  "
        "\\\"password\\\":\\\"EXAMPLE-PASSWORD\\\"\\n}\\n\",\"VersionId\":\"EXAMPLE1-90ab-cdef-"
        "fedc-ba987SECRET1\",\"VersionStages\":[\"AWSPREVIOUS\"],\"ResultMetadata\":{}}");
    assert_int_equal(v.len, strlen(v.body));
    /* The wire request. */
    assert_string_equal(s_srv.last_target, "secretsmanager.GetSecretValue");
    assert_string_equal(s_srv.last_content_type, "application/x-amz-json-1.1");
    assert_string_equal(s_srv.last_path, "/");
    assert_string_equal(s_srv.last_body,
                        "{\"SecretId\":\"MyTestDatabaseSecret\",\"VersionStage\":\"AWSPREVIOUS\"}");
    assert_string_equal(s_srv.last_token, TOKEN);
    assert_string_equal(s_srv.last_signed,
                        "content-type;host;x-amz-date;x-amz-security-token;x-amz-target");
    assert_int_equal(s_srv.bad_signatures, 0);
    /* The facts. */
    assert_int_equal(f.ncalls, 1);
    assert_int_equal(f.ncalls_recorded, 1);
    assert_int_equal(f.calls[0].http_status, 200);
    assert_int_equal(f.calls[0].error, 0);
    assert_int_equal(f.calls[0].throttled, 0);
    assert_true(f.calls[0].ms >= 0.0);
    assert_int_equal(f.status, 0); /* nothing else in facts is touched */
    cache_value_release(&v);
    aws_client_free(cl);
}

static void test_sm_binary_and_nulls(void **state)
{
    static const struct canned c[] = {
        {200, NULL,
         "{\"ARN\":\"arn:a\",\"Name\":\"bin\",\"SecretBinary\":\"AAEC/w==\",\"VersionId\":\"v1\","
         "\"CreatedDate\":1700000000}",
         0, 0},
    };
    struct aws_client *cl = default_client();
    struct aws_sm_request r = {"bin", "v1", NULL};
    struct cache_value v;
    struct facts f = {0};

    (void)state;
    script(c, 1);
    sm_call(cl, &r, &v, &f);
    assert_int_equal(v.status, 200);
    assert_string_equal(v.body, "{\"ARN\":\"arn:a\",\"CreatedDate\":\"2023-11-14T22:13:20.000Z\","
                                "\"Name\":\"bin\",\"SecretBinary\":\"AAEC/w==\",\"SecretString\":"
                                "null,\"VersionId\":\"v1\",\"VersionStages\":null,"
                                "\"ResultMetadata\":{}}");
    assert_string_equal(s_srv.last_body, "{\"SecretId\":\"bin\",\"VersionId\":\"v1\"}");
    cache_value_release(&v);
    aws_client_free(cl);
}

static void test_ssm_success_shape(void **state)
{
    static const struct canned c[] = {
        {200, NULL,
         "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-2:111122223333:parameter/"
         "MyGitHubPassword\","
         "\"DataType\":\"text\",\"LastModifiedDate\":1582657288.8,\"Name\":\"MyGitHubPassword\","
         "\"Type\":\"SecureString\",\"Value\":\"AYA39c3b3042cd2a\\\"q\",\"Version\":3,"
         "\"Selector\":\":3\"}}",
         0, 0},
        {200, NULL,
         "{\"Parameter\":{\"Name\":\"/p\",\"Type\":\"String\",\"Value\":\"x\",\"Version\":7}}", 0,
         0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct aws_ssm_request r = {"MyGitHubPassword", "3", NULL, 1};
    struct cache_value v;
    struct facts f = {0};

    (void)state;
    o.no_token = 1;
    o.timeout_ms = 5000;
    cl = client(&o);
    script(c, 2);
    ssm_call(cl, &r, &v, &f);
    assert_int_equal(v.status, 200);
    assert_string_equal(
        v.body,
        "{\"Parameter\":{\"ARN\":\"arn:aws:ssm:us-east-2:111122223333:parameter/MyGitHubPassword\","
        "\"DataType\":\"text\",\"LastModifiedDate\":\"2020-02-25T19:01:28.800Z\",\"Name\":"
        "\"MyGitHubPassword\",\"Selector\":\":3\",\"SourceResult\":null,\"Type\":\"SecureString\","
        "\"Value\":\"AYA39c3b3042cd2a\\\"q\",\"Version\":3},\"ResultMetadata\":{}}");
    assert_string_equal(s_srv.last_target, "AmazonSSM.GetParameter");
    assert_string_equal(s_srv.last_body,
                        "{\"Name\":\"MyGitHubPassword:3\",\"WithDecryption\":true}");
    /* No token configured: none sent, none signed. */
    assert_string_equal(s_srv.last_token, "");
    assert_string_equal(s_srv.last_signed, "content-type;host;x-amz-date;x-amz-target");
    cache_value_release(&v);

    r.name = "/p";
    r.version = NULL;
    r.label = "prod";
    r.with_decryption = 0;
    ssm_call(cl, &r, &v, &f);
    assert_int_equal(v.status, 200);
    assert_string_equal(v.body, "{\"Parameter\":{\"ARN\":null,\"DataType\":null,"
                                "\"LastModifiedDate\":null,\"Name\":\"/p\",\"Selector\":null,"
                                "\"SourceResult\":null,\"Type\":\"String\",\"Value\":\"x\","
                                "\"Version\":7},\"ResultMetadata\":{}}");
    assert_string_equal(s_srv.last_body, "{\"Name\":\"/p:prod\",\"WithDecryption\":false}");
    assert_int_equal(s_srv.bad_signatures, 0);
    cache_value_release(&v);
    aws_client_free(cl);
}

/* Every AWS client error passes through with its status and type, after one attempt. */
static void test_error_mapping(void **state)
{
    static const struct {
        struct canned c;
        int ssm;
        const char *type;
        const char *message;
    } rows[] = {
        {{400, "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.sm/",
          "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Secrets Manager can't find the "
          "specified secret.\"}",
          0, 0},
         0,
         "ResourceNotFoundException",
         "Secrets Manager can't find the specified secret."},
        {{400, NULL,
          "{\"__type\":\"com.amazonaws.secretsmanager#ResourceNotFoundException\",\"Message\":"
          "\"gone\"}",
          0, 0},
         0,
         "ResourceNotFoundException",
         "gone"},
        {{400, NULL, "{\"__type\":\"AccessDeniedException\",\"Message\":\"not \\\"allowed\\\"\"}",
          0, 0},
         0,
         "AccessDeniedException",
         "not \"allowed\""},
        {{400, NULL, "{\"__type\":\"DecryptionFailure\",\"message\":\"kms\"}", 0, 0},
         0,
         "DecryptionFailure",
         "kms"},
        {{400, NULL, "{\"__type\":\"InvalidRequestException\",\"message\":\"deleted\"}", 0, 0},
         0,
         "InvalidRequestException",
         "deleted"},
        {{400, NULL, "{\"__type\":\"InvalidParameterException\",\"message\":\"bad\"}", 0, 0},
         0,
         "InvalidParameterException",
         "bad"},
        {{400, NULL, "{\"__type\":\"ParameterNotFound\"}", 0, 0},
         1,
         "ParameterNotFound",
         "ssm GetParameter answered HTTP 400 without a message"},
        {{400, NULL, "{\"__type\":\"ParameterVersionNotFound\",\"message\":\"v9\"}", 0, 0},
         1,
         "ParameterVersionNotFound",
         "v9"},
        {{403, "InvalidSignatureException", "{\"message\":\"sig\"}", 0, 0},
         1,
         "InvalidSignatureException",
         "sig"},
        {{404, NULL, "not json", 0, 0},
         1,
         "UnknownError",
         "ssm GetParameter answered HTTP 404 without a message"},
    };
    struct aws_client *cl = default_client();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct cache_value v;
        struct facts f = {0};
        const char *msg;

        script(&rows[i].c, 1);
        s_srv.dflt.status = 500; /* a retry would be visible */
        if (rows[i].ssm) {
            struct aws_ssm_request r = {"/p", NULL, NULL, 1};

            assert_int_equal(ssm_call(cl, &r, &v, &f), UP_AWS_ERROR);
        } else {
            assert_int_equal(get_secret(cl, "s", &v, &f), UP_AWS_ERROR);
        }
        print_message("row %zu: %d %s\n", i, v.status, v.body);
        msg = assert_error(&v, rows[i].c.status, rows[i].type);
        assert_string_equal(msg, rows[i].message);
        assert_int_equal(f.ncalls, 1);
        assert_int_equal(f.calls[0].http_status, rows[i].c.status);
        assert_int_equal(f.calls[0].error, 1);
        assert_int_equal(f.calls[0].throttled, 0);
        cache_value_release(&v);
    }
    assert_int_equal(s_srv.requests, (int)(sizeof(rows) / sizeof(rows[0])));
    assert_int_equal(s_srv.bad_signatures, 0);
    aws_client_free(cl);
}

static void test_throttle_then_success(void **state)
{
    static const struct canned c[] = {
        {400, NULL, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}", 0, 0},
        {429, NULL, "", 0, 0},
        {200, NULL, "{\"Name\":\"s\",\"SecretString\":\"ok\"}", 0, 0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;

    (void)state;
    o.max_attempts = 3;
    o.timeout_ms = 5000;
    cl = client(&o);
    script(c, 3);
    get_secret(cl, "s", &v, &f);
    assert_int_equal(v.status, 200);
    assert_non_null(strstr(v.body, "\"SecretString\":\"ok\""));
    assert_int_equal(f.ncalls, 3);
    assert_int_equal(f.calls[0].http_status, 400);
    assert_int_equal(f.calls[0].throttled, 1);
    assert_int_equal(f.calls[1].http_status, 429);
    assert_int_equal(f.calls[1].throttled, 1);
    assert_int_equal(f.calls[2].http_status, 200);
    assert_int_equal(f.calls[2].error, 0);
    cache_value_release(&v);
    aws_client_free(cl);
}

static void test_throttle_exhausted(void **state)
{
    static const struct canned c[] = {
        {400, "ThrottlingException", "{\"message\":\"Rate exceeded\"}", 0, 0},
        {400, NULL, "{\"__type\":\"TooManyUpdates\"}", 0, 0},
        {400, NULL, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}", 0, 0},
        {400, NULL, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}", 0, 0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;

    (void)state;
    o.max_attempts = 4;
    o.timeout_ms = 5000;
    cl = client(&o);
    script(c, 4);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_THROTTLED);
    assert_error(&v, 429, "ThrottlingException");
    assert_int_equal(f.ncalls, 4);
    assert_int_equal(s_srv.requests, 4);
    assert_int_equal(f.calls[3].throttled, 1);
    cache_value_release(&v);
    aws_client_free(cl);
}

static void test_server_errors(void **state)
{
    static const struct canned retry_ok[] = {
        {500, NULL, "{\"__type\":\"InternalServerError\"}", 0, 0},
        {503, NULL, "", 0, 0},
        {200, NULL, "{\"Parameter\":{\"Name\":\"/p\",\"Value\":\"1\"}}", 0, 0},
    };
    static const struct canned all_503[] = {
        {503, "ServiceUnavailable", "{\"message\":\"down\"}", 0, 0},
        {503, "ServiceUnavailable", "{\"message\":\"down\"}", 0, 0},
        {400, NULL, "{\"__type\":\"InternalServiceError\",\"message\":\"sm fault\"}", 0, 0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct aws_ssm_request r = {"/p", NULL, NULL, 0};
    struct cache_value v;
    struct facts f = {0};

    (void)state;
    o.max_attempts = 3;
    o.timeout_ms = 5000;
    cl = client(&o);
    script(retry_ok, 3);
    ssm_call(cl, &r, &v, &f);
    assert_int_equal(v.status, 200);
    assert_int_equal(f.ncalls, 3);
    assert_int_equal(f.calls[0].http_status, 500);
    assert_int_equal(f.calls[1].http_status, 503);
    cache_value_release(&v);

    /* Exhausted: the last answer passes through (an internal error type is retried even when it
     * comes with a 400). */
    script(all_503, 3);
    memset(&f, 0, sizeof(f));
    assert_int_equal(ssm_call(cl, &r, &v, &f), UP_AWS_ERROR);
    assert_string_equal(assert_error(&v, 400, "InternalServiceError"), "sm fault");
    assert_int_equal(f.ncalls, 3);
    cache_value_release(&v);
    aws_client_free(cl);
}

static void test_timeout(void **state)
{
    static const struct canned slow[] = {{200, NULL, "{}", 600, 0}};
    struct client_opts o = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;

    (void)state;
    o.max_attempts = 3;
    o.timeout_ms = 150;
    cl = client(&o);
    script(slow, 1);
    s_srv.dflt.delay_ms = 600;
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_TIMEOUT);
    assert_error(&v, 504, "TimeoutError");
    /* The budget covers the whole call: one attempt timed out, no time was left for another. */
    assert_int_equal(f.ncalls, 1);
    assert_int_equal(f.calls[0].http_status, 0);
    assert_int_equal(f.calls[0].error, 1);
    cache_value_release(&v);
    aws_client_free(cl);
}

struct waiter {
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct aws_sm_request r = {"s", NULL, NULL};

    sm_call(w->cl, &r, &w->v, &w->f);
    return NULL;
}

/* One handle, four callers, an upstream slower than the budget: whoever waits for the handle
 * waits within its own deadline, and everyone gets 504 (none hangs, none is refused). */
static void test_pool_wait_bounded(void **state)
{
    struct client_opts o = {0};
    struct waiter w[4];
    pthread_t t[4];
    struct aws_client *cl;
    int i;

    (void)state;
    o.max_connections = 1;
    o.max_attempts = 2;
    o.timeout_ms = 150;
    s_srv.dflt.delay_ms = 400;
    cl = client(&o);
    memset(w, 0, sizeof(w));
    for (i = 0; i < 4; i++) {
        w[i].cl = cl;
        assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_error(&w[i].v, 504, "TimeoutError");
        assert_true(w[i].f.ncalls <= 1);
        if (w[i].f.ncalls) {
            assert_int_equal(w[i].f.calls[0].http_status, 0);
        }
        cache_value_release(&w[i].v);
    }
    /* A timed-out attempt closes its connection, so connections are not counted here. */
    assert_true(s_srv.requests <= 4);
    aws_client_free(cl);
}

static unsigned short closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd); /* bound, never listened on, closed: connecting is refused */
    return ntohs(sa.sin_port);
}

static void test_connection_refused(void **state)
{
    struct client_opts o = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;
    const char *msg;

    (void)state;
    o.port = closed_port();
    o.max_attempts = 2;
    o.timeout_ms = 2000;
    cl = client(&o);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_UNREACHABLE);
    msg = assert_error(&v, 502, "ConnectionError");
    assert_non_null(strstr(msg, "secretsmanager"));
    assert_int_equal(f.ncalls, 2); /* transport errors are retried */
    assert_int_equal(f.calls[0].http_status, 0);
    assert_int_equal(f.calls[1].error, 1);
    cache_value_release(&v);
    aws_client_free(cl);
}

/* A loopback port that accepts connections (the kernel completes the handshake into the
 * backlog) and never answers: an upstream that has gone silent.  *fd is closed by the caller. */
static unsigned short silent_port(int *fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    *fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(*fd, 16), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* Shutdown against a silent upstream with no overall timeout (the default): without
 * aws_client_stop these calls would wait for the 30 s stall limit, and the joins below would
 * only return then, with 502.  With it: the call on the wire and the callers waiting for the
 * one handle all end with 503 ServiceUnavailable, and a call made afterwards never reaches
 * the network. */
static void test_stop_abandons_calls(void **state)
{
    struct client_opts o = {0};
    struct waiter w[3];
    pthread_t t[3];
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;
    struct timespec pause = {0, 200 * 1000000L};
    int lfd;
    int i;

    (void)state;
    o.port = silent_port(&lfd);
    o.max_connections = 1;
    o.max_attempts = 3;
    o.timeout_ms = 0;
    cl = client(&o);
    memset(w, 0, sizeof(w));
    for (i = 0; i < 3; i++) {
        w[i].cl = cl;
        assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    /* Not a timing assertion: the calls are blocked whenever stop comes; this only makes it
     * likely that one is on the wire and two wait for the handle. */
    nanosleep(&pause, NULL);
    aws_client_stop(cl);
    for (i = 0; i < 3; i++) {
        const char *msg;

        pthread_join(t[i], NULL);
        msg = assert_error(&w[i].v, 503, "ServiceUnavailable");
        assert_non_null(strstr(msg, "shutting down"));
        assert_true(w[i].f.ncalls <= 1);
        cache_value_release(&w[i].v);
    }
    /* After the stop: refused at once, nothing sent, nothing counted. */
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_ABANDONED);
    assert_error(&v, 503, "ServiceUnavailable");
    assert_int_equal(f.ncalls, 0);
    cache_value_release(&v);
    aws_client_stop(cl); /* idempotent */
    aws_client_free(cl);
    close(lfd);
}

static void test_oversized_and_unreadable(void **state)
{
    static const struct canned c[] = {
        {200, NULL, NULL, 0, 64 * 1024},
        {200, NULL, "{\"Name\":", 0, 0},
        {200, NULL, "{\"NoParameter\":{}}", 0, 0},
        {302, NULL, "", 0, 0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct aws_ssm_request r = {"/p", NULL, NULL, 0};
    struct cache_value v;
    struct facts f;

    (void)state;
    o.max_response = 4096;
    o.max_attempts = 3;
    o.timeout_ms = 5000;
    cl = client(&o);
    script(c, 4);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_BAD_ANSWER);
    assert_non_null(strstr(assert_error(&v, 502, "ConnectionError"), "larger than 4096 bytes"));
    assert_int_equal(f.ncalls, 1); /* a retry would not make it smaller */
    assert_int_equal(f.calls[0].http_status, 200);
    cache_value_release(&v);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_BAD_ANSWER);
    assert_error(&v, 502, "ConnectionError");
    cache_value_release(&v);
    memset(&f, 0, sizeof(f));
    assert_int_equal(ssm_call(cl, &r, &v, &f), UP_BAD_ANSWER);
    assert_error(&v, 502, "ConnectionError");
    cache_value_release(&v);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_BAD_ANSWER);
    assert_error(&v, 502, "ConnectionError");
    assert_int_equal(f.ncalls, 1);
    cache_value_release(&v);
    assert_int_equal(s_srv.requests, 4);
    aws_client_free(cl);
}

static void test_connection_reuse(void **state)
{
    struct client_opts o = {0};
    struct aws_client *cl;
    int i;

    (void)state;
    o.max_connections = 2;
    o.timeout_ms = 5000;
    cl = client(&o);
    for (i = 0; i < 20; i++) {
        struct cache_value v;
        struct facts f;

        get_secret(cl, "s", &v, &f);
        assert_int_equal(v.status, 200);
        cache_value_release(&v);
    }
    assert_int_equal(s_srv.requests, 20);
    print_message("20 sequential calls: %d TCP connections\n", (int)s_srv.connections);
    assert_true(s_srv.connections >= 1);
    assert_true(s_srv.connections <= 2);
    assert_int_equal(s_srv.bad_signatures, 0);
    aws_client_free(cl);
}

#define NTHREADS 8
#define NCALLS   5

struct worker {
    struct aws_client *cl;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < NCALLS; i++) {
        struct cache_value v;
        struct facts f;
        struct aws_sm_request r = {"s", NULL, NULL};

        memset(&f, 0, sizeof(f));
        sm_call(w->cl, &r, &v, &f);
        if (v.status == 200 && f.ncalls == 1) {
            w->ok++;
        }
        cache_value_release(&v);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    struct client_opts o = {0};
    struct worker w[NTHREADS];
    pthread_t t[NTHREADS];
    int i;
    int ok = 0;

    (void)state;
    o.max_connections = 2;
    o.timeout_ms = 0; /* callers wait for a handle as long as it takes */
    s_srv.dflt.delay_ms = 5;
    for (i = 0; i < NTHREADS; i++) {
        w[i].ok = 0;
    }
    w[0].cl = client(&o);
    for (i = 0; i < NTHREADS; i++) {
        w[i].cl = w[0].cl;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    print_message("%d threads x %d calls over max 2 connections: %d ok, %d TCP connections\n",
                  NTHREADS, NCALLS, ok, (int)s_srv.connections);
    assert_int_equal(ok, NTHREADS * NCALLS);
    assert_true(s_srv.connections <= 2);
    assert_int_equal(s_srv.bad_signatures, 0);
    aws_client_free(w[0].cl);
}

/* ---- regions ------------------------------------------------------------------------------ */

static void test_id_region(void **state)
{
    char r[AWS_REGION_MAX];

    (void)state;
    assert_int_equal(aws_id_region("prod/db", r), 1);
    assert_string_equal(r, "");
    assert_int_equal(aws_id_region("arn:aws:secretsmanager:us-west-2:1:secret:s-AbCdEf", r), 1);
    assert_string_equal(r, "us-west-2");
    assert_int_equal(aws_id_region("arn:aws-cn:ssm:cn-north-1:1:parameter/p", r), 1);
    assert_string_equal(r, "cn-north-1");
    assert_int_equal(aws_id_region("arn:aws:ssm::1:parameter/p", r), 1); /* no region: home */
    assert_string_equal(r, "");
    assert_int_equal(aws_id_region("arn:aws:ssm", r), 1); /* not an ARN: AWS will say so */
    assert_string_equal(r, "");
    assert_int_equal(aws_id_region("arn:aws:ssm:EU_WEST:1:parameter/p", r), 0);
    assert_int_equal(aws_id_region("arn:aws:ssm:a/../b:1:parameter/p", r), 0);
    assert_int_equal(
        aws_id_region("arn:aws:ssm:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1:parameter/p", r), 0);
}

/* An ARN in another region is signed for that region (the server checks the signature with the
 * scope it was given); with an override endpoint every region goes there. */
static void test_region_signing(void **state)
{
    struct aws_client *cl = default_client();
    struct aws_ssm_request p = {"arn:aws:ssm:ap-south-1:1:parameter/p", NULL, NULL, 1};
    struct aws_sm_request bad = {"arn:aws:secretsmanager:EU_WEST:1:secret:s", NULL, NULL};
    struct cache_value v;
    struct facts f;

    (void)state;
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:us-west-2:1:secret:s", &v, &f), UP_OK);
    assert_string_equal(s_srv.last_region, "us-west-2");
    cache_value_release(&v);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_OK);
    assert_string_equal(s_srv.last_region, "eu-west-1");
    cache_value_release(&v);
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:eu-west-1:1:secret:s", &v, &f), UP_OK);
    assert_string_equal(s_srv.last_region, "eu-west-1");
    cache_value_release(&v);
    s_srv.dflt.body = "{\"Parameter\":{\"Name\":\"p\",\"Value\":\"v\"}}";
    assert_int_equal(ssm_call(cl, &p, &v, &f), UP_OK);
    assert_string_equal(s_srv.last_region, "ap-south-1");
    assert_string_equal(s_srv.last_target, "AmazonSSM.GetParameter");
    cache_value_release(&v);
    assert_int_equal(s_srv.requests, 4);
    assert_int_equal(s_srv.bad_signatures, 0);
    /* A region field that is no region name: refused, nothing sent. */
    memset(&f, 0, sizeof(f));
    assert_int_equal(sm_call(cl, &bad, &v, &f), UP_BAD_REQUEST);
    assert_error(&v, 400, "InvalidParameterException");
    assert_int_equal(f.ncalls, 0);
    assert_int_equal(s_srv.requests, 4);
    cache_value_release(&v);
    aws_client_free(cl);
}

/* Without an override, STASH_REGION_ENDPOINTS names each region's endpoint (the paths tell
 * them apart here: both are this server). */
static void test_region_endpoints(void **state)
{
    char map[160];
    struct client_opts o = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f;

    (void)state;
    snprintf(map, sizeof(map),
             "eu-west-1=http://127.0.0.1:%u/home,us-west-2=http://127.0.0.1:%u/west", s_srv.port,
             s_srv.port);
    o.region_endpoints = map;
    o.timeout_ms = 5000;
    cl = client(&o);
    assert_non_null(cl);
    assert_int_equal(get_secret(cl, "s", &v, &f), UP_OK);
    assert_string_equal(s_srv.last_path, "/home");
    assert_string_equal(s_srv.last_region, "eu-west-1");
    cache_value_release(&v);
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:us-west-2:1:secret:s", &v, &f), UP_OK);
    assert_string_equal(s_srv.last_path, "/west");
    assert_string_equal(s_srv.last_region, "us-west-2");
    cache_value_release(&v);
    assert_int_equal(s_srv.bad_signatures, 0);
    aws_client_free(cl);

    /* Malformed maps are refused. */
    o.region_endpoints = "eu-west-1";
    assert_null(client(&o));
    o.region_endpoints = "EU=http://127.0.0.1:1";
    assert_null(client(&o));
    o.region_endpoints = "eu-west-1=ftp://127.0.0.1:1";
    assert_null(client(&o));
}

/* Clients for at most AWS_REGIONS_MAX regions, the configured one included. */
static void test_region_limit(void **state)
{
    struct aws_client *cl = default_client();
    struct cache_value v;
    struct facts f;
    char arn[96];
    int i;

    (void)state;
    for (i = 1; i < 64; i++) {
        snprintf(arn, sizeof(arn), "arn:aws:secretsmanager:r-%d:1:secret:s", i);
        assert_int_equal(get_secret(cl, arn, &v, &f), UP_OK);
        cache_value_release(&v);
    }
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:r-64:1:secret:s", &v, &f),
                     UP_BAD_REQUEST);
    assert_non_null(strstr(assert_error(&v, 400, "InvalidParameterException"), "too many"));
    cache_value_release(&v);
    /* The ones made are still there. */
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:r-63:1:secret:s", &v, &f), UP_OK);
    cache_value_release(&v);
    assert_int_equal(s_srv.requests, 64);
    assert_int_equal(s_srv.bad_signatures, 0);
    aws_client_free(cl);
}

struct region_worker {
    struct aws_client *cl;
    int id;
    int ok;
};

static void *region_worker_main(void *arg)
{
    struct region_worker *w = arg;

    for (int i = 0; i < 6; i++) {
        char arn[96];
        struct aws_sm_request r = {arn, NULL, NULL};
        struct upstream_result res;
        struct facts f = {0};

        /* Every thread asks for the same three new regions, in its own order. */
        snprintf(arn, sizeof(arn), "arn:aws:secretsmanager:t-%d:1:secret:s", (w->id + i) % 3);
        aws_get_secret_value(w->cl, &r, &res, &f);
        w->ok += res.outcome == UP_OK;
        upstream_result_release(&res);
    }
    return NULL;
}

/* Threads making the same regions' clients at once: each region is made once, every call
 * answered (run under ThreadSanitizer by make tsan). */
static void test_region_concurrency(void **state)
{
    struct aws_client *cl = default_client();
    struct region_worker w[6];
    pthread_t t[6];
    int ok = 0;
    char arn[96];
    struct cache_value v;
    struct facts f;

    (void)state;
    for (int i = 0; i < 6; i++) {
        w[i].cl = cl;
        w[i].id = i;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, region_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    assert_int_equal(ok, 36);
    assert_int_equal(s_srv.bad_signatures, 0);
    /* Three regions were made, not more: 60 more fit under the limit of 64 with home. */
    for (int i = 0; i < 60; i++) {
        snprintf(arn, sizeof(arn), "arn:aws:secretsmanager:u-%d:1:secret:s", i);
        assert_int_equal(get_secret(cl, arn, &v, &f), UP_OK);
        cache_value_release(&v);
    }
    assert_int_equal(get_secret(cl, "arn:aws:secretsmanager:u-60:1:secret:s", &v, &f),
                     UP_BAD_REQUEST);
    cache_value_release(&v);
    aws_client_free(cl);
}

/* ---- batch calls -------------------------------------------------------------------------- */

static void items_release(struct upstream_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        upstream_result_release(&items[i].r);
    }
}

/* Two pages (NextToken followed), a throttle retried in between, a value and an error. */
static void test_batch_secrets_paged(void **state)
{
    static const struct canned c[] = {
        {200, NULL,
         "{\"SecretValues\":[{\"Name\":\"a\",\"SecretString\":\"1\"}],\"Errors\":[],"
         "\"NextToken\":\"page\\\"2\"}",
         0, 0},
        {429, NULL, "", 0, 0},
        {200, NULL,
         "{\"SecretValues\":[],\"Errors\":[{\"SecretId\":\"b\",\"ErrorCode\":"
         "\"ResourceNotFoundException\",\"Message\":\"gone\"}]}",
         0, 0},
    };
    struct aws_client *cl = default_client();
    struct upstream_item items[] = {{"a", {0}}, {"b", {0}}};
    struct upstream_result out;
    struct facts f = {0};
    struct cache_value v;

    (void)state;
    script(c, 3);
    aws_batch_get_secret_value(cl, items, 2, &out, &f);
    assert_int_equal(out.outcome, UP_OK);
    assert_null(out.body);
    assert_string_equal(s_srv.last_target, "secretsmanager.BatchGetSecretValue");
    assert_string_equal(s_srv.last_body,
                        "{\"SecretIdList\":[\"a\",\"b\"],\"NextToken\":\"page\\\"2\"}");
    assert_int_equal(s_srv.requests, 3);
    assert_int_equal(f.ncalls, 3);
    assert_int_equal(f.calls[1].throttled, 1);
    assert_int_equal(s_srv.bad_signatures, 0);
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_string_equal(items[0].r.body, "{\"ARN\":null,\"CreatedDate\":null,\"Name\":\"a\","
                                         "\"SecretBinary\":null,\"SecretString\":\"1\","
                                         "\"VersionId\":null,\"VersionStages\":null,"
                                         "\"ResultMetadata\":{}}");
    assert_int_equal(items[1].r.outcome, UP_AWS_ERROR);
    /* The local answer for an item's error is the single call's. */
    answer_from_upstream(&items[1].r, &v);
    assert_string_equal(assert_error(&v, 400, "ResourceNotFoundException"), "gone");
    cache_value_release(&v);
    items_release(items, 2);
    upstream_result_release(&out);
    aws_client_free(cl);
}

/* A call that fails gives each item its failure; a call that cannot be made sends nothing. */
static void test_batch_failures(void **state)
{
    static const struct canned denied[] = {
        {400, "AccessDeniedException", "{\"message\":\"no batch for you\"}", 0, 0},
    };
    struct client_opts o = {0};
    struct aws_client *cl;
    struct upstream_item items[21];
    struct upstream_item mixed[] = {{"a", {0}},
                                    {"arn:aws:secretsmanager:us-west-2:1:secret:b", {0}}};
    struct upstream_item empty[] = {{"a", {0}}, {"", {0}}};
    struct upstream_result out;
    struct facts f = {0};
    size_t i;

    (void)state;
    o.timeout_ms = 5000;
    o.max_attempts = 3;
    cl = client(&o);
    memset(items, 0, sizeof(items));
    for (i = 0; i < 21; i++) {
        items[i].id = "x";
    }
    script(denied, 1);
    aws_batch_get_secret_value(cl, items, 2, &out, &f);
    assert_int_equal(out.outcome, UP_AWS_ERROR);
    assert_int_equal(f.ncalls, 1); /* not retried */
    for (i = 0; i < 2; i++) {
        assert_int_equal(items[i].r.outcome, UP_AWS_ERROR);
        assert_string_equal(items[i].r.error_type, "AccessDeniedException");
        assert_string_equal(items[i].r.message, "no batch for you");
        assert_null(items[i].r.body);
    }
    upstream_result_release(&out);
    assert_int_equal(s_srv.requests, 1);

    aws_batch_get_secret_value(cl, items, 21, &out, &f);
    assert_int_equal(out.outcome, UP_BAD_REQUEST);
    assert_int_equal(items[20].r.outcome, UP_BAD_REQUEST);
    upstream_result_release(&out);
    aws_get_parameters(cl, items, 11, 1, &out, &f);
    assert_int_equal(out.outcome, UP_BAD_REQUEST);
    upstream_result_release(&out);
    aws_get_parameters(cl, items, 0, 1, &out, &f);
    assert_int_equal(out.outcome, UP_BAD_REQUEST);
    upstream_result_release(&out);
    aws_batch_get_secret_value(cl, mixed, 2, &out, &f);
    assert_int_equal(out.outcome, UP_BAD_REQUEST);
    assert_string_equal(out.message, "ids in more than one region");
    assert_int_equal(mixed[0].r.outcome, UP_BAD_REQUEST);
    upstream_result_release(&out);
    aws_batch_get_secret_value(cl, empty, 2, &out, &f);
    assert_int_equal(out.outcome, UP_BAD_REQUEST);
    upstream_result_release(&out);
    assert_int_equal(s_srv.requests, 1);
    items_release(items, 21);
    items_release(mixed, 2);
    items_release(empty, 2);
    aws_client_free(cl);
}

/* An upstream that pages forever is followed 20 pages, no more; what no page named stays
 * "not in the answer". */
static void test_batch_page_limit(void **state)
{
    struct aws_client *cl = default_client();
    struct upstream_item items[] = {{"a", {0}}};
    struct upstream_result out;
    struct facts f = {0};

    (void)state;
    s_srv.dflt.body = "{\"SecretValues\":[],\"NextToken\":\"again\"}";
    aws_batch_get_secret_value(cl, items, 1, &out, &f);
    assert_int_equal(out.outcome, UP_OK);
    assert_int_equal(s_srv.requests, 20);
    assert_int_equal(items[0].r.outcome, UP_BAD_ANSWER);
    upstream_result_release(&out);
    items_release(items, 1);
    aws_client_free(cl);
}

/* GetParameters: the wire request, and the items as GetParameter would answer them. */
static void test_batch_parameters(void **state)
{
    static const struct canned c[] = {
        {200, NULL,
         "{\"Parameters\":[{\"Name\":\"/p\",\"Selector\":\":3\",\"Value\":\"three\","
         "\"Version\":3}],\"InvalidParameters\":[\"/q\"]}",
         0, 0},
    };
    struct aws_client *cl = default_client();
    struct upstream_item items[] = {{"/p:3", {0}}, {"/q", {0}}};
    struct upstream_result out;
    struct facts f = {0};

    (void)state;
    script(c, 1);
    aws_get_parameters(cl, items, 2, 1, &out, &f);
    assert_int_equal(out.outcome, UP_OK);
    assert_string_equal(s_srv.last_target, "AmazonSSM.GetParameters");
    assert_string_equal(s_srv.last_body, "{\"Names\":[\"/p:3\",\"/q\"],\"WithDecryption\":true}");
    assert_int_equal(items[0].r.outcome, UP_OK);
    assert_string_equal(items[0].r.body,
                        "{\"Parameter\":{\"ARN\":null,\"DataType\":null,\"LastModifiedDate\":null,"
                        "\"Name\":\"/p\",\"Selector\":\":3\",\"SourceResult\":null,\"Type\":null,"
                        "\"Value\":\"three\",\"Version\":3},\"ResultMetadata\":{}}");
    assert_int_equal(items[1].r.outcome, UP_AWS_ERROR);
    assert_string_equal(items[1].r.error_type, "ParameterNotFound");
    assert_int_equal(s_srv.bad_signatures, 0);
    upstream_result_release(&out);
    items_release(items, 2);
    aws_client_free(cl);
}

static void test_bad_config_and_request(void **state)
{
    struct aws_config cfg = {0};
    struct aws_client *cl;
    struct cache_value v;
    struct facts f = {0};
    struct aws_sm_request r = {NULL, NULL, NULL};

    (void)state;
    assert_null(aws_client_new(&cfg));
    cfg.region = "us-east-1";
    cfg.access_key_id = AKID;
    cfg.secret_access_key = SECRET;
    cfg.sm_endpoint = "ftp://127.0.0.1/";
    assert_null(aws_client_new(&cfg));
    cfg.sm_endpoint = "http://127.0.0.1:1/?a=b";
    assert_null(aws_client_new(&cfg));
    cfg.sm_endpoint = NULL;
    cl = aws_client_new(&cfg); /* default endpoints; nothing is sent below */
    assert_non_null(cl);
    assert_int_equal(sm_call(cl, &r, &v, &f), UP_BAD_REQUEST);
    assert_error(&v, 400, "InvalidParameterException");
    assert_int_equal(f.ncalls, 0);
    cache_value_release(&v);
    aws_client_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sm_success_shape, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_sm_binary_and_nulls, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_ssm_success_shape, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_error_mapping, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_throttle_then_success, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_throttle_exhausted, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_server_errors, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_timeout, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_pool_wait_bounded, server_start, server_stop),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_stop_abandons_calls),
        cmocka_unit_test_setup_teardown(test_oversized_and_unreadable, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_connection_reuse, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_concurrency, server_start, server_stop),
        cmocka_unit_test(test_bad_config_and_request),
        cmocka_unit_test(test_id_region),
        cmocka_unit_test_setup_teardown(test_region_signing, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_region_endpoints, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_region_limit, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_region_concurrency, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_batch_secrets_paged, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_batch_failures, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_batch_page_limit, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_batch_parameters, server_start, server_stop),
    };
    int rc;

    mem_init();
    g_log_level = LOG_LEVEL_NONE; /* expected failures would otherwise fill the output */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
