/* cache/aws.c: Secrets Manager GetSecretValue and SSM GetParameter over AWS JSON 1.1.
 *
 * One call:
 *   POST <endpoint path, "/" by default>
 *   Host, Content-Type: application/x-amz-json-1.1, X-Amz-Target, X-Amz-Date,
 *   X-Amz-Security-Token (when there is one), Authorization (SigV4 over all of those)
 *   {"SecretId":...,"VersionId":...,"VersionStage":...} / {"Name":"n[:sel]","WithDecryption":b}
 * The answer is 2xx with the output structure, or an error status with X-Amzn-ErrorType and/or
 * {"__type":...,"message"|"Message":...}.  Success is reshaped into what AWS's Parameters and
 * Secrets extension answers (ISO dates with milliseconds, nulls for absent fields,
 * "ResultMetadata":{}); failures are mapped as cache/aws.h says.
 *
 * Connections: per service a stack of idle easy handles, created lazily up to max_connections;
 * each handle keeps its own connection alive between calls, so at most max_connections
 * connections per service exist.  A caller with no idle handle waits on a condition variable
 * (bounded by its deadline, on the monotonic clock).
 *
 * Stopping (aws_client_stop): every socket libcurl uses is opened and closed through our
 * callbacks, which keep a registry of them; stop sets a flag and shuts every registered socket
 * down, so a call blocked on a silent upstream returns at once instead of after its timeout or
 * the 30 s stall limit.  The flag is also checked before each attempt, while waiting for a
 * handle, during backoff and from libcurl's progress callback; no socket opens once it is set.
 *
 * Secrets: the request body, the header list (token, Authorization) and the response body are
 * wiped before they are freed; so is every string of a parsed cJSON tree.  Copies libcurl makes
 * internally (its send buffer) are not ours to wipe.
 */
#include "cache/aws.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache/sigv4.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

/* AWS_STALL_*: an attempt whose answer arrives slower than AWS_STALL_BYTES_PER_S for
 * AWS_STALL_SECONDS is cut off (504 TimeoutError), with or without an overall timeout.  A real
 * answer (at most about 1 MiB, usually a few KB) comes at network speed; one byte now and then is
 * progress for a byte-level stall check but keeps a pooled handle forever.  The floor bounds any
 * attempt to AWS_STALL_SECONDS of stall or max_response / AWS_STALL_BYTES_PER_S seconds of drip. */
#define AWS_DEFAULT_MAX_RESPONSE ((size_t)1024 * 1024)
#define AWS_CONNECT_TIMEOUT_MS   3000L
#define AWS_STALL_SECONDS        10L
#define AWS_STALL_BYTES_PER_S    1024L
#define AWS_BACKOFF_DEFAULT_MS   50u
#define AWS_BACKOFF_CAP_MS       2000u
#define AWS_TYPE_MAX             128
#define AWS_MESSAGE_MAX          512
#define AWS_HEADER_MAX           ((size_t)16 * 1024) /* one header line we build (the token is < 4 KiB) */
#define AWS_CONTENT_TYPE         "application/x-amz-json-1.1"

struct aws_service {
    const char *name; /* signing name and X-Amz-Target prefix owner: "secretsmanager", "ssm" */
    char *url;        /* normalised endpoint URL */
    char *host;       /* Host header: host[:port], a default port left out */
    char *path;       /* request path: the endpoint's, "/" when it has none */
    long timeout_ms;  /* whole call, 0: none */
    pthread_mutex_t lock;
    pthread_cond_t freed; /* signalled when a handle goes back to idle */
    CURL **idle;          /* stack of idle handles, max entries */
    unsigned nidle;
    unsigned created; /* handles in existence, <= max */
    unsigned max;
};

struct aws_client {
    char *region;
    char *akid;   /* secret */
    char *secret; /* secret */
    char *token;  /* secret, NULL if none */
    char *ca_bundle;
    unsigned max_attempts;
    size_t max_response;
    unsigned backoff_base_ms;
    struct aws_service sm;
    struct aws_service ssm;
    atomic_int stopping;       /* aws_client_stop was called */
    pthread_mutex_t sock_lock; /* guards socks; held across shutdown(2), never across I/O */
    int *socks;                /* open sockets, -1 in free slots */
    size_t nsocks;             /* slots */
};

/* What one HTTP exchange gave. */
struct attempt {
    CURLcode cc;
    long status;
    struct buf body; /* ceiling: max_response */
    int too_big;
    char errtype[AWS_TYPE_MAX]; /* X-Amzn-ErrorType, sanitised */
    char curl_err[CURL_ERROR_SIZE];
};

/* How an attempt ended, for the retry decision and the final answer. */
enum outcome {
    OUT_OK,         /* 2xx and a readable body: done */
    OUT_CLIENT,     /* 4xx AWS error: pass through, no retry */
    OUT_THROTTLED,  /* retry; 429 when exhausted */
    OUT_SERVER,     /* 5xx or internal error type: retry; pass through when exhausted */
    OUT_TRANSPORT,  /* connect/reset/empty: retry; 502 when exhausted */
    OUT_TIMEOUT,    /* per-attempt timeout: retry while budget is left; 504 */
    OUT_UNREADABLE, /* oversized or unparsable: 502, no retry */
    OUT_FATAL,      /* TLS/config errors that a retry cannot fix: 502 */
    OUT_STOPPED,    /* aws_client_stop: abandoned, no retry; 503 */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void free_secret_str(char *s)
{
    if (s) {
        xfree_secret(s, strlen(s) + 1);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* Keeps the code of an AWS error type: drops a ":..." suffix and a "namespace#" prefix, and
 * surrounding blanks ("aws.protocoltests#FooError:http://..." -> "FooError"). */
static void sanitize_type(char *t)
{
    char *p = strchr(t, ':');
    char *hash;
    size_t n;
    size_t start = 0;

    if (p) {
        *p = '\0';
    }
    hash = strrchr(t, '#');
    if (hash) {
        memmove(t, hash + 1, strlen(hash + 1) + 1);
    }
    while (t[start] == ' ' || t[start] == '\t') {
        start++;
    }
    if (start) {
        memmove(t, t + start, strlen(t + start) + 1);
    }
    n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r' || t[n - 1] == '\n')) {
        t[--n] = '\0';
    }
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(s, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* botocore's standard retry mode lists these as throttles; SSM adds TooManyUpdates. */
static int is_throttle_type(const char *t)
{
    static const char *const codes[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "TooManyUpdates",
    };

    return in_list(t, codes, sizeof(codes) / sizeof(codes[0]));
}

/* Server-side faults that some services send with a 4xx status (Secrets Manager's docs disagree
 * on InternalServiceError's status), and transient timeouts. */
static int is_server_type(const char *t)
{
    static const char *const codes[] = {
        "InternalServiceError", "InternalServerError", "InternalFailure",
        "ServiceUnavailable",   "RequestTimeout",      "RequestTimeoutException",
    };

    return in_list(t, codes, sizeof(codes) / sizeof(codes[0]));
}

static void facts_record(struct facts *f, double ms, long status, int throttled, int error)
{
    if (!f) {
        return;
    }
    if (f->ncalls_recorded < FACTS_MAX_CALLS) {
        struct facts_call *c = &f->calls[f->ncalls_recorded++];

        c->ms = ms;
        c->http_status = (int)status;
        c->throttled = (uint8_t)(throttled != 0);
        c->error = (uint8_t)(error != 0);
    }
    f->ncalls++;
}

/* Wipes every string in a parsed tree (values may be secrets) before it is freed. */
static void json_wipe(cJSON *n)
{
    for (; n; n = n->next) {
        if (n->valuestring) {
            mem_wipe(n->valuestring, strlen(n->valuestring));
        }
        json_wipe(n->child);
    }
}

static void json_free_secret(cJSON *root)
{
    if (root) {
        json_wipe(root);
        cJSON_Delete(root);
    }
}

/* ---- error bodies ------------------------------------------------------------------------- */

void aws_error_value(int status, const char *type, const char *message, struct cache_value *out)
{
    struct buf b = BUF_INIT(0);
    const char *t = type ? type : "InternalFailure";
    const char *m = message ? message : "";

    /* Only our own bounded strings go in here; a failed append is impossible short of OOM,
     * which aborts. */
    (void)buf_puts(&b, "{\"__type\":\"");
    (void)buf_put_json_escaped(&b, t, strlen(t));
    (void)buf_puts(&b, "\",\"message\":\"");
    (void)buf_put_json_escaped(&b, m, strlen(m));
    (void)buf_puts(&b, "\"}");
    out->status = status;
    out->body = buf_detach(&b, &out->len);
}

/* ---- success shapes ----------------------------------------------------------------------- */

static enum stash_err put_string_or_null(struct buf *b, const cJSON *v)
{
    enum stash_err rc;

    if (!cJSON_IsString(v) || !v->valuestring) {
        return buf_puts(b, "null");
    }
    rc = buf_putc(b, '"');
    if (!rc) {
        rc = buf_put_json_escaped(b, v->valuestring, strlen(v->valuestring));
    }
    if (!rc) {
        rc = buf_putc(b, '"');
    }
    return rc;
}

/* x rounded to the nearest integer, halfway cases away from zero (llround's rule), for
 * |x| < 2^63; the callers bound x far below that.  Not llround: it is the one libm function
 * stash used, and linking libm costs every start a library to map and relocate (and about
 * 0.3 MB of resident pages) for one rounding.  The cast truncates toward zero and, for |x| <
 * 2^53, x - t is exact; beyond that every double is an integer and the fraction is 0. */
static long long round_half_away(double x)
{
    long long t = (long long)x;
    double frac = x - (double)t;

    if (frac >= 0.5) {
        t++;
    } else if (frac <= -0.5) {
        t--;
    }
    return t;
}

/* JSON 1.1 timestamps are epoch seconds (possibly fractional); the extension answers ISO 8601
 * with milliseconds.  A string is passed through (some emulators send ISO already). */
static enum stash_err put_date_or_null(struct buf *b, const cJSON *v)
{
    char iso[CLOCK_ISO_LEN];

    if (cJSON_IsString(v)) {
        return put_string_or_null(b, v);
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 253402300799.0) {
        return buf_puts(b, "null");
    }
    clock_format_iso((uint64_t)round_half_away(v->valuedouble * 1000.0), iso);
    return buf_printf(b, "\"%s\"", iso);
}

static enum stash_err put_integer_or_null(struct buf *b, const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 9.0e15) {
        return buf_puts(b, "null");
    }
    return buf_printf(b, "%lld", round_half_away(v->valuedouble));
}

static enum stash_err put_string_array_or_null(struct buf *b, const cJSON *v)
{
    const cJSON *e;
    int first = 1;
    enum stash_err rc;

    if (!cJSON_IsArray(v)) {
        return buf_puts(b, "null");
    }
    rc = buf_putc(b, '[');
    cJSON_ArrayForEach(e, v)
    {
        if (rc || !cJSON_IsString(e)) {
            continue;
        }
        if (!first) {
            rc = buf_putc(b, ',');
        }
        if (!rc) {
            rc = put_string_or_null(b, e);
        }
        first = 0;
    }
    if (!rc) {
        rc = buf_putc(b, ']');
    }
    return rc;
}

static const cJSON *field(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* What a field of a success answer must be when it is there and not null. */
enum field_kind {
    FIELD_STRING,
    FIELD_NUMBER,
    FIELD_DATE,  /* epoch seconds, or an ISO string (emulators) */
    FIELD_ARRAY, /* of strings; other elements are skipped when rendered */
};

struct field_rule {
    const char *name;
    enum field_kind kind;
    int required; /* must be present and not null */
};

static int field_ok(const cJSON *v, enum field_kind kind)
{
    switch (kind) {
    case FIELD_STRING:
        return cJSON_IsString(v) && v->valuestring;
    case FIELD_NUMBER:
        return cJSON_IsNumber(v);
    case FIELD_DATE:
        return cJSON_IsNumber(v) || (cJSON_IsString(v) && v->valuestring);
    case FIELD_ARRAY:
        return cJSON_IsArray(v);
    }
    return 0;
}

/* A 200 whose fields have other types than the API's (a null Name, an object SecretString) is
 * not a value to serve or cache: rendering it would turn it into nulls silently. */
static int fields_ok(const cJSON *o, const struct field_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, rules[i].name);

        if (!v || cJSON_IsNull(v)) {
            if (rules[i].required) {
                return 0;
            }
            continue;
        }
        if (!field_ok(v, rules[i].kind)) {
            return 0;
        }
    }
    return 1;
}

/* GetSecretValue's response syntax: every field a string but CreatedDate (timestamp) and
 * VersionStages (list of strings); Name, and one of SecretString and SecretBinary, always. */
static const struct field_rule s_secret_rules[] = {
    {"ARN", FIELD_STRING, 0},          {"CreatedDate", FIELD_DATE, 0},
    {"Name", FIELD_STRING, 1},         {"SecretBinary", FIELD_STRING, 0},
    {"SecretString", FIELD_STRING, 0}, {"VersionId", FIELD_STRING, 0},
    {"VersionStages", FIELD_ARRAY, 0},
};

/* GetParameter's Parameter: strings but LastModifiedDate (timestamp) and Version (long); Name
 * and Value always. */
static const struct field_rule s_parameter_rules[] = {
    {"ARN", FIELD_STRING, 0},  {"DataType", FIELD_STRING, 0}, {"LastModifiedDate", FIELD_DATE, 0},
    {"Name", FIELD_STRING, 1}, {"Selector", FIELD_STRING, 0}, {"SourceResult", FIELD_STRING, 0},
    {"Type", FIELD_STRING, 0}, {"Value", FIELD_STRING, 1},    {"Version", FIELD_NUMBER, 0},
};

#define NRULES(r) (sizeof(r) / sizeof((r)[0]))

/* {"ARN","CreatedDate","Name","SecretBinary","SecretString","VersionId","VersionStages",
 *  "ResultMetadata":{}} */
static enum stash_err shape_secret(const cJSON *o, struct buf *b)
{
    enum stash_err rc;

    if (!fields_ok(o, s_secret_rules, NRULES(s_secret_rules)) ||
        (!field_ok(field(o, "SecretString"), FIELD_STRING) &&
         !field_ok(field(o, "SecretBinary"), FIELD_STRING))) {
        return STASH_EPARSE;
    }
    rc = buf_puts(b, "{\"ARN\":");
    rc = rc ? rc : put_string_or_null(b, field(o, "ARN"));
    rc = rc ? rc : buf_puts(b, ",\"CreatedDate\":");
    rc = rc ? rc : put_date_or_null(b, field(o, "CreatedDate"));
    rc = rc ? rc : buf_puts(b, ",\"Name\":");
    rc = rc ? rc : put_string_or_null(b, field(o, "Name"));
    rc = rc ? rc : buf_puts(b, ",\"SecretBinary\":");
    rc = rc ? rc : put_string_or_null(b, field(o, "SecretBinary"));
    rc = rc ? rc : buf_puts(b, ",\"SecretString\":");
    rc = rc ? rc : put_string_or_null(b, field(o, "SecretString"));
    rc = rc ? rc : buf_puts(b, ",\"VersionId\":");
    rc = rc ? rc : put_string_or_null(b, field(o, "VersionId"));
    rc = rc ? rc : buf_puts(b, ",\"VersionStages\":");
    rc = rc ? rc : put_string_array_or_null(b, field(o, "VersionStages"));
    rc = rc ? rc : buf_puts(b, ",\"ResultMetadata\":{}}");
    return rc;
}

/* {"Parameter":{"ARN","DataType","LastModifiedDate","Name","Selector","SourceResult","Type",
 *  "Value","Version"},"ResultMetadata":{}} */
static enum stash_err shape_parameter(const cJSON *o, struct buf *b)
{
    const cJSON *p = field(o, "Parameter");
    enum stash_err rc;

    if (!cJSON_IsObject(p) || !fields_ok(p, s_parameter_rules, NRULES(s_parameter_rules))) {
        return STASH_EPARSE;
    }
    rc = buf_puts(b, "{\"Parameter\":{\"ARN\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "ARN"));
    rc = rc ? rc : buf_puts(b, ",\"DataType\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "DataType"));
    rc = rc ? rc : buf_puts(b, ",\"LastModifiedDate\":");
    rc = rc ? rc : put_date_or_null(b, field(p, "LastModifiedDate"));
    rc = rc ? rc : buf_puts(b, ",\"Name\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "Name"));
    rc = rc ? rc : buf_puts(b, ",\"Selector\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "Selector"));
    rc = rc ? rc : buf_puts(b, ",\"SourceResult\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "SourceResult"));
    rc = rc ? rc : buf_puts(b, ",\"Type\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "Type"));
    rc = rc ? rc : buf_puts(b, ",\"Value\":");
    rc = rc ? rc : put_string_or_null(b, field(p, "Value"));
    rc = rc ? rc : buf_puts(b, ",\"Version\":");
    rc = rc ? rc : put_integer_or_null(b, field(p, "Version"));
    rc = rc ? rc : buf_puts(b, "},\"ResultMetadata\":{}}");
    return rc;
}

typedef enum stash_err (*shape_fn)(const cJSON *o, struct buf *b);

/* Parses body and renders the local answer into out (status 200).  STASH_EPARSE when the body
 * is not the expected JSON object. */
static enum stash_err shape_success(const struct buf *body, shape_fn shape, size_t max,
                                    struct cache_value *out)
{
    /* Escaping at most sextuples a byte; the ceiling keeps a hostile body from growing it more. */
    struct buf b = BUF_INIT(6 * max + 4096);
    cJSON *root = cJSON_ParseWithLength(body->data ? body->data : "", body->len);
    enum stash_err rc = STASH_EPARSE;

    if (!cJSON_IsObject(root)) {
        goto out;
    }
    rc = shape(root, &b);
    if (rc) {
        goto out;
    }
    out->status = 200;
    /* An exact-sized copy, not the buffer (whose capacity doubled up to twice the answer): the
     * cache stores an exact copy of it, and while this block lives, until the answer is sent,
     * a block twice its size left the heap riddled with holes of that size between stored
     * values (1.6 MB more resident with 1000 values of 4 KB in bench's footprint). */
    out->len = b.len;
    out->body = xmemdup(b.data, b.len);
out:
    buf_release_secret(&b);
    json_free_secret(root);
    return rc;
}

/* Error type and message of a non-2xx answer: the header first, then __type / code in the body;
 * message / Message from the body. */
static void parse_error(const struct attempt *a, char type[AWS_TYPE_MAX],
                        char message[AWS_MESSAGE_MAX])
{
    cJSON *root = NULL;
    const cJSON *v;

    (void)snprintf(type, AWS_TYPE_MAX, "%s", a->errtype);
    message[0] = '\0';
    if (a->body.len) {
        root = cJSON_ParseWithLength(a->body.data, a->body.len);
    }
    if (cJSON_IsObject(root)) {
        if (!type[0]) {
            v = field(root, "__type");
            if (!cJSON_IsString(v)) {
                v = field(root, "code");
            }
            if (!cJSON_IsString(v)) {
                v = field(root, "Code");
            }
            if (cJSON_IsString(v)) {
                (void)snprintf(type, AWS_TYPE_MAX, "%s", v->valuestring);
                sanitize_type(type);
            }
        }
        v = field(root, "message");
        if (!cJSON_IsString(v)) {
            v = field(root, "Message");
        }
        if (cJSON_IsString(v)) {
            (void)snprintf(message, AWS_MESSAGE_MAX, "%s", v->valuestring);
        }
    }
    json_free_secret(root);
}

/* ---- libcurl ------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct attempt *a = ud;
    size_t len = size * n;

    if (buf_append(&a->body, p, len) != STASH_OK) {
        a->too_big = 1;
        return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    static const char key[] = "x-amzn-errortype:";
    struct attempt *a = ud;
    size_t len = size * n;
    size_t klen = sizeof(key) - 1;

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        a->errtype[0] = '\0'; /* a new response (after a 100 Continue): forget the last one */
    } else if (len > klen && strncasecmp(p, key, klen) == 0) {
        size_t vlen = len - klen;

        if (vlen >= AWS_TYPE_MAX) {
            vlen = AWS_TYPE_MAX - 1;
        }
        memcpy(a->errtype, p + klen, vlen);
        a->errtype[vlen] = '\0';
        sanitize_type(a->errtype);
    }
    return len;
}

static int stopping(const struct aws_client *c)
{
    return atomic_load(&((struct aws_client *)c)->stopping);
}

/* libcurl opens every socket here, so aws_client_stop can shut it down.  None opens once stop
 * was called.  A full registry (more sockets than 4 per pooled handle) still opens the socket;
 * the progress callback then ends that transfer on stop, within about a second. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct aws_client *c = ud;
    int fd = -1;
    size_t i;

    (void)purpose;
    pthread_mutex_lock(&c->sock_lock);
    if (!atomic_load(&c->stopping)) {
        fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
        for (i = 0; fd >= 0 && i < c->nsocks; i++) {
            if (c->socks[i] < 0) {
                c->socks[i] = fd;
                break;
            }
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    return fd >= 0 ? (curl_socket_t)fd : CURL_SOCKET_BAD;
}

static int on_close_socket(void *ud, curl_socket_t fd)
{
    struct aws_client *c = ud;
    size_t i;

    /* Out of the registry before close(): the number may be reused by another open. */
    pthread_mutex_lock(&c->sock_lock);
    for (i = 0; i < c->nsocks; i++) {
        if (c->socks[i] == (int)fd) {
            c->socks[i] = -1;
            break;
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    return close((int)fd);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return stopping(ud); /* nonzero: CURLE_ABORTED_BY_CALLBACK */
}

static CURL *handle_new(const struct aws_client *c, const struct aws_service *s)
{
    CURL *h = curl_easy_init();

    if (!h) {
        LOG_ERROR("aws", "curl_easy_init failed: out of memory");
        abort();
    }
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stash/0.1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    /* A stalled or dripping answer must not hold a pooled handle forever when there is no
     * overall bound. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, AWS_STALL_BYTES_PER_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, AWS_STALL_SECONDS);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (c->ca_bundle) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_bundle);
    }
    return h;
}

/* Takes an idle handle, or makes one when fewer than max exist, or waits for one.  NULL when
 * the deadline (monotonic ns, 0: none) passes first or the client is stopping. */
static CURL *pool_acquire(const struct aws_client *c, struct aws_service *s, uint64_t deadline)
{
    CURL *h = NULL;
    int make = 0;

    pthread_mutex_lock(&s->lock);
    while (s->nidle == 0 && s->created >= s->max) {
        if (stopping(c)) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        if (deadline) {
            struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                                  .tv_nsec = (long)(deadline % 1000000000u)};

            if (pthread_cond_timedwait(&s->freed, &s->lock, &ts) == ETIMEDOUT && s->nidle == 0 &&
                s->created >= s->max) {
                pthread_mutex_unlock(&s->lock);
                return NULL;
            }
        } else {
            pthread_cond_wait(&s->freed, &s->lock);
        }
    }
    if (s->nidle) {
        h = s->idle[--s->nidle];
    } else {
        s->created++;
        make = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (make) {
        h = handle_new(c, s);
    }
    return h;
}

static void pool_release(struct aws_service *s, CURL *h)
{
    pthread_mutex_lock(&s->lock);
    s->idle[s->nidle++] = h;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

static void slist_free_secret(struct curl_slist *l)
{
    struct curl_slist *p;

    for (p = l; p; p = p->next) {
        mem_wipe(p->data, strlen(p->data));
    }
    curl_slist_free_all(l);
}

/* Appends "Name: value" to *list through a buffer we wipe (the value may be the token). */
static enum stash_err add_header(struct curl_slist **list, const char *name, const char *value)
{
    struct buf line = BUF_INIT(AWS_HEADER_MAX);
    struct curl_slist *l;
    enum stash_err rc = buf_printf(&line, "%s: %s", name, value);

    if (!rc) {
        l = curl_slist_append(*list, line.data);
        if (!l) {
            rc = STASH_EIO;
        } else {
            *list = l;
        }
    }
    buf_release_secret(&line);
    return rc;
}

/* Signs and sends one request on h; fills a. */
static enum stash_err perform(const struct aws_client *c, const struct aws_service *s, CURL *h,
                              const char *target, const struct buf *req, long timeout_ms,
                              struct attempt *a)
{
    struct sigv4_header sh[5];
    struct sigv4_input in = {0};
    struct buf authz = BUF_INIT(AWS_HEADER_MAX);
    struct curl_slist *list = NULL;
    char amz[CLOCK_AMZ_LEN];
    size_t nh = 0;
    long connect_ms = AWS_CONNECT_TIMEOUT_MS;
    enum stash_err rc;

    clock_format_amz((int64_t)(clock_real_ms() / 1000u), amz);
    sh[nh].name = "host";
    sh[nh++].value = s->host;
    sh[nh].name = "content-type";
    sh[nh++].value = AWS_CONTENT_TYPE;
    sh[nh].name = "x-amz-date";
    sh[nh++].value = amz;
    sh[nh].name = "x-amz-target";
    sh[nh++].value = target;
    if (c->token) {
        sh[nh].name = "x-amz-security-token";
        sh[nh++].value = c->token;
    }
    in.method = "POST";
    in.path = s->path;
    in.query = "";
    in.headers = sh;
    in.nheaders = nh;
    in.payload = req->data;
    in.payload_len = req->len;
    in.region = c->region;
    in.service = s->name;
    in.amz_date = amz;
    in.access_key_id = c->akid;
    in.secret_access_key = c->secret;
    in.normalize_path = 1;
    rc = sigv4_authorization(&in, &authz);
    if (rc) {
        goto out;
    }
    rc = add_header(&list, "Host", s->host);
    rc = rc ? rc : add_header(&list, "Content-Type", AWS_CONTENT_TYPE);
    rc = rc ? rc : add_header(&list, "X-Amz-Date", amz);
    rc = rc ? rc : add_header(&list, "X-Amz-Target", target);
    if (c->token) {
        rc = rc ? rc : add_header(&list, "X-Amz-Security-Token", c->token);
    }
    rc = rc ? rc : add_header(&list, "Authorization", authz.data);
    /* No "Expect: 100-continue" round trip for larger bodies. */
    if (!rc) {
        struct curl_slist *l = curl_slist_append(list, "Expect:");

        rc = l ? STASH_OK : STASH_EIO;
        list = l ? l : list;
    }
    if (rc) {
        goto out;
    }
    if (timeout_ms > 0 && timeout_ms < connect_ms) {
        connect_ms = timeout_ms;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->curl_err);
    a->curl_err[0] = '\0';
    a->cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    /* Leave nothing in the pooled handle that points at memory about to be freed. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
out:
    slist_free_secret(list);
    buf_release_secret(&authz);
    return rc;
}

static int curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

/* ---- the call ----------------------------------------------------------------------------- */

struct call {
    struct aws_client *c;
    struct aws_service *s;
    const char *op;     /* "GetSecretValue" for logs */
    const char *target; /* X-Amz-Target */
    const char *name;   /* secret id / parameter name, for logs */
    shape_fn shape;
};

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Sleeps ms, in slices of at most 10 ms so that aws_client_stop cuts it short. */
static void sleep_ms(const struct aws_client *c, uint64_t ms)
{
    while (ms && !stopping(c)) {
        uint64_t n = ms < 10u ? ms : 10u;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)n * 1000000L};

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        ms -= n;
    }
}

/* The per-call state that survives from one attempt to the next. */
struct verdict {
    enum outcome last;
    long status; /* upstream status of the last attempt, 0 if none */
    char type[AWS_TYPE_MAX];
    char message[AWS_MESSAGE_MAX];
};

/* Judges one finished attempt, records it in facts, and on success renders out. */
static void judge(const struct call *k, const struct attempt *a, double ms, struct verdict *v,
                  struct cache_value *out, struct facts *facts)
{
    const struct aws_service *s = k->s;

    v->type[0] = '\0';
    v->message[0] = '\0';
    v->status = a->cc == CURLE_OK ? a->status : 0;
    if (a->cc == CURLE_OK && a->status >= 200 && a->status < 300) {
        facts_record(facts, ms, a->status, 0, 0);
        if (shape_success(&a->body, k->shape, k->c->max_response, out) == STASH_OK) {
            v->last = OUT_OK;
            return;
        }
        v->last = OUT_UNREADABLE;
        (void)snprintf(v->message, sizeof(v->message),
                       "unreadable answer from %s (not the expected JSON)", s->name);
    } else if (a->cc == CURLE_OK && a->status >= 400 && a->status < 600) {
        parse_error(a, v->type, v->message);
        if (a->status == 429 || (v->type[0] && is_throttle_type(v->type))) {
            v->last = OUT_THROTTLED;
        } else if (a->status >= 500 || (v->type[0] && is_server_type(v->type))) {
            v->last = OUT_SERVER;
        } else {
            v->last = OUT_CLIENT;
        }
        facts_record(facts, ms, a->status, v->last == OUT_THROTTLED, 1);
    } else if (a->cc == CURLE_OK) {
        v->last = OUT_UNREADABLE;
        (void)snprintf(v->message, sizeof(v->message), "unexpected HTTP %ld from %s", a->status,
                       s->name);
        facts_record(facts, ms, a->status, 0, 1);
    } else {
        if (a->too_big) {
            v->last = OUT_UNREADABLE;
            (void)snprintf(v->message, sizeof(v->message), "answer from %s larger than %zu bytes",
                           s->name, k->c->max_response);
        } else if (a->cc == CURLE_OPERATION_TIMEDOUT) {
            v->last = OUT_TIMEOUT;
        } else {
            v->last = curl_transient(a->cc) ? OUT_TRANSPORT : OUT_FATAL;
            (void)snprintf(v->message, sizeof(v->message), "%s at %s: %s", s->name, s->host,
                           a->curl_err[0] ? a->curl_err : curl_easy_strerror(a->cc));
        }
        /* A too-big body still came with a status; a transport failure has none. */
        v->status = a->too_big ? a->status : 0;
        facts_record(facts, ms, v->status, 0, 1);
    }
}

/* Sleeps before the next attempt (full jitter).  Returns 0, without sleeping, when the wait
 * would run past the deadline. */
static int backoff(const struct call *k, unsigned attempt, uint64_t deadline, uint64_t *rng)
{
    uint64_t window = (uint64_t)k->c->backoff_base_ms << (attempt - 1 < 16 ? attempt - 1 : 16);
    uint64_t wait;

    if (window > AWS_BACKOFF_CAP_MS) {
        window = AWS_BACKOFF_CAP_MS;
    }
    wait = rng_next(rng) % (window + 1);
    if (deadline && clock_mono_ns() + wait * 1000000u >= deadline) {
        return 0;
    }
    sleep_ms(k->c, wait);
    return !stopping(k->c);
}

/* The local answer for a call that did not succeed. */
static void final_answer(const struct call *k, struct verdict *v, unsigned attempts,
                         struct cache_value *out)
{
    const struct aws_service *s = k->s;

    switch (v->last) {
    case OUT_THROTTLED:
        aws_error_value(429, "ThrottlingException", v->message[0] ? v->message : "Rate exceeded",
                        out);
        break;
    case OUT_CLIENT:
    case OUT_SERVER:
        if (!v->message[0]) {
            (void)snprintf(v->message, sizeof(v->message),
                           "%s %s answered HTTP %ld without a message", s->name, k->op, v->status);
        }
        aws_error_value((int)v->status,
                        v->type[0] ? v->type
                                   : (v->last == OUT_SERVER ? "InternalFailure" : "UnknownError"),
                        v->message, out);
        break;
    case OUT_TIMEOUT:
        if (s->timeout_ms > 0) {
            (void)snprintf(v->message, sizeof(v->message), "no answer from %s within %ld ms",
                           s->name, s->timeout_ms);
        } else {
            (void)snprintf(v->message, sizeof(v->message),
                           "no answer from %s (every attempt timed out)", s->name);
        }
        aws_error_value(504, "TimeoutError", v->message, out);
        break;
    case OUT_STOPPED:
        (void)snprintf(v->message, sizeof(v->message),
                       "stash is shutting down: the call to %s was abandoned", s->name);
        aws_error_value(503, "ServiceUnavailable", v->message, out);
        break;
    case OUT_OK:
    case OUT_TRANSPORT:
    case OUT_UNREADABLE:
    case OUT_FATAL:
        aws_error_value(502, "ConnectionError", v->message, out);
        break;
    }
    if (v->last == OUT_CLIENT) {
        LOG_INFO("aws", "%s %s %s: HTTP %d %s", s->name, k->op, k->name, out->status,
                 v->type[0] ? v->type : "-");
    } else {
        LOG_WARN("aws", "%s %s %s: HTTP %d after %u attempt(s) (upstream %ld %s)", s->name, k->op,
                 k->name, out->status, attempts, v->status, v->type[0] ? v->type : "-");
    }
}

static void do_call(const struct call *k, const struct buf *req, struct cache_value *out,
                    struct facts *facts)
{
    struct aws_service *s = k->s;
    uint64_t start = clock_mono_ns();
    uint64_t deadline = s->timeout_ms > 0 ? start + (uint64_t)s->timeout_ms * 1000000u : 0;
    uint64_t rng = start ^ (uint64_t)(uintptr_t)&start;
    struct verdict v = {.last = OUT_TIMEOUT};
    unsigned attempt;

    out->status = 0;
    out->body = NULL;
    out->len = 0;
    for (attempt = 1;; attempt++) {
        struct attempt a;
        long remaining = 0;
        uint64_t t0;
        CURL *h;
        enum stash_err rc;

        if (stopping(k->c)) {
            v.last = OUT_STOPPED;
            break;
        }
        if (deadline) {
            uint64_t now = clock_mono_ns();

            if (now >= deadline) {
                v.last = OUT_TIMEOUT;
                break;
            }
            remaining = (long)((deadline - now + 999999u) / 1000000u);
        }
        h = pool_acquire(k->c, s, deadline);
        if (!h) {
            v.last = stopping(k->c) ? OUT_STOPPED : OUT_TIMEOUT;
            break;
        }
        memset(&a, 0, sizeof(a));
        buf_init(&a.body, k->c->max_response);
        t0 = clock_mono_ns();
        rc = perform(k->c, s, h, k->target, req, remaining, &a);
        pool_release(s, h);
        if (rc) {
            /* Nothing was sent: the request cannot be signed (bad configuration). */
            buf_release_secret(&a.body);
            LOG_ERROR("aws", "%s %s: cannot sign the request: %s", s->name, k->op,
                      stash_strerror(rc));
            aws_error_value(500, "InternalFailure", "stash could not sign the request", out);
            return;
        }
        judge(k, &a, clock_ms_between(t0, clock_mono_ns()), &v, out, facts);
        buf_release_secret(&a.body);
        if (v.last != OUT_OK && stopping(k->c)) {
            v.last = OUT_STOPPED; /* whatever the transfer says, it was cut short by us */
            break;
        }
        if (v.last == OUT_OK) {
            LOG_DEBUG("aws", "%s %s %s: 200 after %u attempt(s)", s->name, k->op, k->name, attempt);
            return;
        }
        if (v.last == OUT_CLIENT || v.last == OUT_UNREADABLE || v.last == OUT_FATAL ||
            attempt >= k->c->max_attempts) {
            break;
        }
        LOG_DEBUG("aws", "%s %s %s: attempt %u got HTTP %ld %s, retrying", s->name, k->op, k->name,
                  attempt, v.status, v.type);
        if (!backoff(k, attempt, deadline, &rng)) {
            break; /* no time left for another attempt: answer with what we have */
        }
    }
    final_answer(k, &v, attempt, out);
}

/* ---- public ------------------------------------------------------------------------------- */

void aws_answer_from_response(int ssm, long status, const char *header, const void *body,
                              size_t len, struct cache_value *out)
{
    struct aws_client c;
    struct call k;
    struct attempt a;
    struct verdict v = {.last = OUT_TIMEOUT};
    char sm_host[] = "secretsmanager.invalid";
    char ssm_host[] = "ssm.invalid";

    /* Only the fields judge() and final_answer() read are set: no pool, no credentials. */
    memset(&c, 0, sizeof(c));
    c.max_response = AWS_DEFAULT_MAX_RESPONSE;
    c.sm.name = "secretsmanager";
    c.sm.host = sm_host;
    c.ssm.name = "ssm";
    c.ssm.host = ssm_host;
    k.c = &c;
    k.s = ssm ? &c.ssm : &c.sm;
    k.op = ssm ? "GetParameter" : "GetSecretValue";
    k.target = ssm ? "AmazonSSM.GetParameter" : "secretsmanager.GetSecretValue";
    k.name = "-";
    k.shape = ssm ? shape_parameter : shape_secret;
    memset(&a, 0, sizeof(a));
    buf_init(&a.body, c.max_response);
    a.cc = CURLE_OK;
    a.status = status;
    if (header) {
        struct buf line = BUF_INIT(0);

        (void)buf_puts(&line, header);
        (void)on_header(line.data, 1, line.len, &a);
        buf_release(&line);
    }
    /* As on_body() does it: past the ceiling the transfer fails as libcurl's would. */
    if (len && buf_append(&a.body, body, len) != STASH_OK) {
        a.too_big = 1;
        a.cc = CURLE_WRITE_ERROR;
    }
    out->status = 0;
    out->body = NULL;
    out->len = 0;
    judge(&k, &a, 0.0, &v, out, NULL);
    if (v.last != OUT_OK) {
        final_answer(&k, &v, 1, out);
    }
    buf_release_secret(&a.body);
}

static int service_init(struct aws_service *s, const char *name, const char *endpoint,
                        const char *region, long timeout_ms, unsigned max)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    char *query = NULL;
    char *url = NULL;
    struct buf b = BUF_INIT(0);
    pthread_condattr_t ca;
    int ok = 0;
    size_t i;

    s->name = name;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    s->max = max;
    s->idle = xcalloc(max, sizeof(*s->idle));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    /* Deadlines are monotonic; the wait for a handle must use the same clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->freed, &ca);
    pthread_condattr_destroy(&ca);
    if (!u) {
        goto out;
    }
    if (endpoint) {
        (void)buf_puts(&b, endpoint);
    } else {
        (void)buf_printf(&b, "https://%s.%s.%s", name, region,
                         strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com");
    }
    if (curl_url_set(u, CURLUPART_URL, b.data, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        goto out;
    }
    if ((strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    for (i = 0; host[i]; i++) {
        if (host[i] >= 'A' && host[i] <= 'Z') {
            host[i] = (char)(host[i] - 'A' + 'a');
        }
    }
    buf_reset(&b);
    (void)buf_puts(&b, host);
    if (port) {
        (void)buf_printf(&b, ":%s", port);
    }
    s->host = buf_detach(&b, NULL);
    s->path = xstrdup(path && *path ? path : "/");
    s->url = xstrdup(url);
    ok = 1;
out:
    buf_release(&b);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(url);
    curl_url_cleanup(u);
    return ok;
}

static void service_release(struct aws_service *s)
{
    unsigned i;

    if (!s->idle) {
        return;
    }
    for (i = 0; i < s->nidle; i++) {
        curl_easy_cleanup(s->idle[i]);
    }
    free(s->idle);
    s->idle = NULL;
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    free(s->url);
    free(s->host);
    free(s->path);
}

struct aws_client *aws_client_new(const struct aws_config *cfg)
{
    struct aws_client *c;
    unsigned maxconn;

    if (!cfg || !cfg->region || !*cfg->region || !cfg->access_key_id || !*cfg->access_key_id ||
        !cfg->secret_access_key || !*cfg->secret_access_key) {
        LOG_ERROR("aws", "no region or no credentials: cannot call AWS");
        return NULL;
    }
    maxconn = cfg->max_connections ? cfg->max_connections : 1;
    c = xcalloc(1, sizeof(*c));
    c->region = xstrdup(cfg->region);
    c->akid = xstrdup(cfg->access_key_id);
    c->secret = xstrdup(cfg->secret_access_key);
    c->token = cfg->session_token && *cfg->session_token ? xstrdup(cfg->session_token) : NULL;
    c->ca_bundle = dup_or_null(cfg->ca_bundle);
    c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 1;
    c->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : AWS_DEFAULT_MAX_RESPONSE;
    c->backoff_base_ms = cfg->backoff_base_ms ? cfg->backoff_base_ms : AWS_BACKOFF_DEFAULT_MS;
    pthread_mutex_init(&c->sock_lock, NULL);
    /* Per handle: its connection, plus room for happy-eyeballs' second family and a reconnect. */
    c->nsocks = (size_t)maxconn * 2u * 4u;
    c->socks = xmalloc(c->nsocks * sizeof(*c->socks));
    for (size_t i = 0; i < c->nsocks; i++) {
        c->socks[i] = -1;
    }
    if (!service_init(&c->sm, "secretsmanager", cfg->sm_endpoint, c->region, cfg->sm_timeout_ms,
                      maxconn)) {
        LOG_ERROR("aws", "Secrets Manager endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    if (!service_init(&c->ssm, "ssm", cfg->ssm_endpoint, c->region, cfg->ssm_timeout_ms, maxconn)) {
        LOG_ERROR("aws", "SSM endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    return c;
}

void aws_client_free(struct aws_client *c)
{
    if (!c) {
        return;
    }
    service_release(&c->sm); /* closes the handles' sockets through on_close_socket */
    service_release(&c->ssm);
    if (c->socks) {
        pthread_mutex_destroy(&c->sock_lock);
        free(c->socks);
    }
    free(c->region);
    free_secret_str(c->akid);
    free_secret_str(c->secret);
    free_secret_str(c->token);
    free(c->ca_bundle);
    free(c);
}

void aws_client_stop(struct aws_client *c)
{
    struct aws_service *svc[2];
    size_t i;

    if (!c) {
        return;
    }
    atomic_store(&c->stopping, 1);
    pthread_mutex_lock(&c->sock_lock);
    for (i = 0; i < c->nsocks; i++) {
        if (c->socks[i] >= 0) {
            (void)shutdown(c->socks[i], SHUT_RDWR); /* its poll wakes: EOF, the call ends */
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    svc[0] = &c->sm;
    svc[1] = &c->ssm;
    for (i = 0; i < 2; i++) {
        pthread_mutex_lock(&svc[i]->lock);
        pthread_cond_broadcast(&svc[i]->freed); /* waiters for a handle see the flag */
        pthread_mutex_unlock(&svc[i]->lock);
    }
    LOG_DEBUG("aws", "stopped: calls in flight are abandoned, new ones refused");
}

static enum stash_err put_json_field(struct buf *b, const char *sep, const char *key, const char *v)
{
    enum stash_err rc = buf_printf(b, "%s\"%s\":\"", sep, key);

    rc = rc ? rc : buf_put_json_escaped(b, v, strlen(v));
    rc = rc ? rc : buf_putc(b, '"');
    return rc;
}

void aws_get_secret_value(struct aws_client *c, const struct aws_sm_request *req,
                          struct cache_value *out, struct facts *facts)
{
    struct buf body = BUF_INIT(0);
    struct call k = {c,    &c->sm,      "GetSecretValue", "secretsmanager.GetSecretValue",
                     NULL, shape_secret};
    enum stash_err rc;

    if (!req || !req->secret_id || !*req->secret_id) {
        aws_error_value(400, "InvalidParameterException", "secretId is required", out);
        return;
    }
    k.name = req->secret_id;
    rc = buf_putc(&body, '{');
    rc = rc ? rc : put_json_field(&body, "", "SecretId", req->secret_id);
    if (req->version_id) {
        rc = rc ? rc : put_json_field(&body, ",", "VersionId", req->version_id);
    }
    if (req->version_stage) {
        rc = rc ? rc : put_json_field(&body, ",", "VersionStage", req->version_stage);
    }
    rc = rc ? rc : buf_putc(&body, '}');
    if (rc) {
        aws_error_value(400, "InvalidParameterException", "request too large", out);
    } else {
        do_call(&k, &body, out, facts);
    }
    buf_release_secret(&body);
}

void aws_get_parameter(struct aws_client *c, const struct aws_ssm_request *req,
                       struct cache_value *out, struct facts *facts)
{
    struct buf body = BUF_INIT(0);
    struct buf name = BUF_INIT(0);
    struct call k = {c, &c->ssm, "GetParameter", "AmazonSSM.GetParameter", NULL, shape_parameter};
    const char *sel = NULL;
    enum stash_err rc;

    if (!req || !req->name || !*req->name) {
        aws_error_value(400, "InvalidParameterException", "name is required", out);
        return;
    }
    if (req->version && *req->version) {
        sel = req->version;
    } else if (req->label && *req->label) {
        sel = req->label;
    }
    rc = buf_puts(&name, req->name);
    if (sel) {
        rc = rc ? rc : buf_printf(&name, ":%s", sel);
    }
    k.name = name.data;
    rc = rc ? rc : buf_putc(&body, '{');
    rc = rc ? rc : put_json_field(&body, "", "Name", name.data);
    rc = rc ? rc
            : buf_printf(&body, ",\"WithDecryption\":%s}", req->with_decryption ? "true" : "false");
    if (rc) {
        aws_error_value(400, "InvalidParameterException", "request too large", out);
    } else {
        do_call(&k, &body, out, facts);
    }
    buf_release_secret(&body);
    buf_release(&name);
}
