/* cache/upstream.c: the reading of AWS's JSON 1.1 answers.  Contract in upstream.h.
 *
 * An answer is 2xx with the operation's output structure, or an error status with
 * X-Amzn-ErrorType and/or {"__type":...,"message"|"Message":...}.  Success is reshaped into what
 * AWS's Parameters and Secrets extension answers.  No network and no curl here: the clients in
 * aws.c hand over what they received.
 *
 * Secrets: every string of a parsed cJSON tree is wiped before the tree is freed, and so is the
 * buffer an answer is rendered in.
 */
#include "cache/upstream.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"

/* ---- error codes -------------------------------------------------------------------------- */

static void clean_type(char *t)
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
/* ---- success shapes ----------------------------------------------------------------------- */

/* The put_* writers append to b without checking: b remembers its first failed append, and the
 * shape functions ask it once at the end (buf_error). */
static void put_string_or_null(struct buf *b, const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring) {
        (void)buf_puts(b, "null");
        return;
    }
    (void)buf_putc(b, '"');
    (void)buf_put_json_escaped(b, v->valuestring, strlen(v->valuestring));
    (void)buf_putc(b, '"');
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
static void put_date_or_null(struct buf *b, const cJSON *v)
{
    char iso[CLOCK_ISO_LEN];

    if (cJSON_IsString(v)) {
        put_string_or_null(b, v);
        return;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 253402300799.0) {
        (void)buf_puts(b, "null");
        return;
    }
    clock_format_iso((uint64_t)round_half_away(v->valuedouble * 1000.0), iso);
    (void)buf_printf(b, "\"%s\"", iso);
}

static void put_integer_or_null(struct buf *b, const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 9.0e15) {
        (void)buf_puts(b, "null");
        return;
    }
    (void)buf_printf(b, "%lld", round_half_away(v->valuedouble));
}

/* Elements that are not strings are left out. */
static void put_string_array_or_null(struct buf *b, const cJSON *v)
{
    const cJSON *e;
    int first = 1;

    if (!cJSON_IsArray(v)) {
        (void)buf_puts(b, "null");
        return;
    }
    (void)buf_putc(b, '[');
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e)) {
            continue;
        }
        if (!first) {
            (void)buf_putc(b, ',');
        }
        put_string_or_null(b, e);
        first = 0;
    }
    (void)buf_putc(b, ']');
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

/* GetSecretValue's output has the fields its rules want, and a value. */
static int secret_ok(const cJSON *o)
{
    return fields_ok(o, s_secret_rules, NRULES(s_secret_rules)) &&
           (field_ok(field(o, "SecretString"), FIELD_STRING) ||
            field_ok(field(o, "SecretBinary"), FIELD_STRING));
}

/* {"ARN","CreatedDate","Name","SecretBinary","SecretString","VersionId","VersionStages",
 *  "ResultMetadata":{}} */
static enum stash_err shape_secret(const cJSON *o, struct buf *b)
{
    if (!secret_ok(o)) {
        return STASH_EPARSE;
    }
    (void)buf_puts(b, "{\"ARN\":");
    put_string_or_null(b, field(o, "ARN"));
    (void)buf_puts(b, ",\"CreatedDate\":");
    put_date_or_null(b, field(o, "CreatedDate"));
    (void)buf_puts(b, ",\"Name\":");
    put_string_or_null(b, field(o, "Name"));
    (void)buf_puts(b, ",\"SecretBinary\":");
    put_string_or_null(b, field(o, "SecretBinary"));
    (void)buf_puts(b, ",\"SecretString\":");
    put_string_or_null(b, field(o, "SecretString"));
    (void)buf_puts(b, ",\"VersionId\":");
    put_string_or_null(b, field(o, "VersionId"));
    (void)buf_puts(b, ",\"VersionStages\":");
    put_string_array_or_null(b, field(o, "VersionStages"));
    (void)buf_puts(b, ",\"ResultMetadata\":{}}");
    return buf_error(b);
}

/* p is one Parameter object (GetParameter's Parameter, an element of GetParameters'
 * Parameters):
 * {"Parameter":{"ARN","DataType","LastModifiedDate","Name","Selector","SourceResult","Type",
 *  "Value","Version"},"ResultMetadata":{}} */
static enum stash_err shape_parameter_object(const cJSON *p, struct buf *b)
{
    if (!cJSON_IsObject(p) || !fields_ok(p, s_parameter_rules, NRULES(s_parameter_rules))) {
        return STASH_EPARSE;
    }
    (void)buf_puts(b, "{\"Parameter\":{\"ARN\":");
    put_string_or_null(b, field(p, "ARN"));
    (void)buf_puts(b, ",\"DataType\":");
    put_string_or_null(b, field(p, "DataType"));
    (void)buf_puts(b, ",\"LastModifiedDate\":");
    put_date_or_null(b, field(p, "LastModifiedDate"));
    (void)buf_puts(b, ",\"Name\":");
    put_string_or_null(b, field(p, "Name"));
    (void)buf_puts(b, ",\"Selector\":");
    put_string_or_null(b, field(p, "Selector"));
    (void)buf_puts(b, ",\"SourceResult\":");
    put_string_or_null(b, field(p, "SourceResult"));
    (void)buf_puts(b, ",\"Type\":");
    put_string_or_null(b, field(p, "Type"));
    (void)buf_puts(b, ",\"Value\":");
    put_string_or_null(b, field(p, "Value"));
    (void)buf_puts(b, ",\"Version\":");
    put_integer_or_null(b, field(p, "Version"));
    (void)buf_puts(b, "},\"ResultMetadata\":{}}");
    return buf_error(b);
}

static enum stash_err shape_parameter(const cJSON *o, struct buf *b)
{
    return shape_parameter_object(field(o, "Parameter"), b);
}

typedef enum stash_err (*shape_fn)(const cJSON *o, struct buf *b);

/* Renders o with shape into out->body (UP_OK).  STASH_EPARSE when o is not what shape expects.
 * in_len is the size of the JSON o came from: it bounds the rendering. */
static enum stash_err render(const cJSON *o, shape_fn shape, size_t in_len,
                             struct upstream_result *out)
{
    /* Escaping at most sextuples a byte; the ceiling keeps a hostile body from growing it more. */
    struct buf b = BUF_INIT(6 * in_len + 4096);
    enum stash_err rc = STASH_EPARSE;

    if (cJSON_IsObject(o)) {
        rc = shape(o, &b);
    }
    if (rc == STASH_OK) {
        out->outcome = UP_OK;
        /* An exact-sized copy, not the buffer (whose capacity doubled up to twice the answer):
         * the cache stores an exact copy of it, and while this block lives, until the answer is
         * sent, a block twice its size left the heap riddled with holes of that size between
         * stored values (1.6 MB more resident with 1000 values of 4 KB in bench's footprint). */
        out->len = b.len;
        out->body = xmemdup(b.data, b.len);
    }
    buf_release_secret(&b);
    return rc;
}

/* ---- errors ------------------------------------------------------------------------------- */

static void set_message(struct upstream_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_message(struct upstream_result *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above */
    (void)vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

/* Error code and message of a non-2xx answer: the header's code first, then __type / code /
 * Code in the body; message / Message from the body. */
static void parse_error(const char *type, const void *body, size_t len, struct upstream_result *out)
{
    cJSON *root = NULL;
    const cJSON *v;

    (void)snprintf(out->error_type, sizeof(out->error_type), "%s", type ? type : "");
    if (len) {
        root = cJSON_ParseWithLength(body, len);
    }
    if (cJSON_IsObject(root)) {
        if (!out->error_type[0]) {
            v = field(root, "__type");
            if (!cJSON_IsString(v)) {
                v = field(root, "code");
            }
            if (!cJSON_IsString(v)) {
                v = field(root, "Code");
            }
            if (cJSON_IsString(v)) {
                (void)snprintf(out->error_type, sizeof(out->error_type), "%s", v->valuestring);
                clean_type(out->error_type);
            }
        }
        v = field(root, "message");
        if (!cJSON_IsString(v)) {
            v = field(root, "Message");
        }
        if (cJSON_IsString(v)) {
            (void)snprintf(out->message, sizeof(out->message), "%s", v->valuestring);
        }
    }
    json_free_secret(root);
}

/* ---- public ------------------------------------------------------------------------------- */

void upstream_result_release(struct upstream_result *r)
{
    if (!r) {
        return;
    }
    xfree_secret(r->body, r->body ? r->len + 1 : 0);
    memset(r, 0, sizeof(*r));
}

const char *upstream_outcome_name(enum upstream_outcome o)
{
    switch (o) {
    case UP_OK:
        return "UP_OK";
    case UP_AWS_ERROR:
        return "UP_AWS_ERROR";
    case UP_THROTTLED:
        return "UP_THROTTLED";
    case UP_TIMEOUT:
        return "UP_TIMEOUT";
    case UP_UNREACHABLE:
        return "UP_UNREACHABLE";
    case UP_BAD_ANSWER:
        return "UP_BAD_ANSWER";
    case UP_ABANDONED:
        return "UP_ABANDONED";
    case UP_BAD_REQUEST:
        return "UP_BAD_REQUEST";
    case UP_UNSIGNABLE:
        return "UP_UNSIGNABLE";
    }
    return "UP_?";
}

const char *upstream_service(enum upstream_op op)
{
    return op == UPSTREAM_GET_PARAMETER || op == UPSTREAM_GET_PARAMETERS ? "ssm" : "secretsmanager";
}

const char *upstream_op_name(enum upstream_op op)
{
    switch (op) {
    case UPSTREAM_GET_SECRET_VALUE:
        break;
    case UPSTREAM_GET_PARAMETER:
        return "GetParameter";
    case UPSTREAM_BATCH_GET_SECRET_VALUE:
        return "BatchGetSecretValue";
    case UPSTREAM_GET_PARAMETERS:
        return "GetParameters";
    }
    return "GetSecretValue";
}

static int is_batch(enum upstream_op op)
{
    return op == UPSTREAM_BATCH_GET_SECRET_VALUE || op == UPSTREAM_GET_PARAMETERS;
}

void upstream_header_line(const char *line, size_t len, char type[UPSTREAM_TYPE_MAX])
{
    static const char key[] = "x-amzn-errortype:";
    size_t klen = sizeof(key) - 1;

    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        type[0] = '\0'; /* a new response (after a 100 Continue): forget the last one */
    } else if (len > klen && strncasecmp(line, key, klen) == 0) {
        size_t vlen = len - klen;

        if (vlen >= UPSTREAM_TYPE_MAX) {
            vlen = UPSTREAM_TYPE_MAX - 1;
        }
        memcpy(type, line + klen, vlen);
        type[vlen] = '\0';
        clean_type(type);
    }
}

/* A 2xx: the output structure of op, reshaped. */
static void read_success(enum upstream_op op, const void *body, size_t len,
                         struct upstream_result *out)
{
    cJSON *root = is_batch(op) ? NULL : cJSON_ParseWithLength(len ? body : "", len);
    shape_fn shape = op == UPSTREAM_GET_PARAMETER ? shape_parameter : shape_secret;

    if (!root || render(root, shape, len, out) != STASH_OK) {
        out->outcome = UP_BAD_ANSWER;
        set_message(out, "unreadable answer from %s (not the expected JSON)", upstream_service(op));
    }
    json_free_secret(root);
}

int upstream_read(enum upstream_op op, long status, const char *type, const void *body, size_t len,
                  struct upstream_result *out)
{
    memset(out, 0, sizeof(*out));
    out->http_status = status;
    if (status >= 200 && status < 300) {
        read_success(op, body, len, out);
        return 0;
    }
    if (status < 400 || status >= 600) {
        out->outcome = UP_BAD_ANSWER;
        set_message(out, "unexpected HTTP %ld from %s", status, upstream_service(op));
        return 0;
    }
    parse_error(type, body, len, out);
    if (status == 429 || (out->error_type[0] && is_throttle_type(out->error_type))) {
        out->outcome = UP_THROTTLED;
        if (!out->message[0]) {
            set_message(out, "Rate exceeded");
        }
        return 1;
    }
    out->outcome = UP_AWS_ERROR;
    if (!out->message[0]) {
        set_message(out, "%s %s answered HTTP %ld without a message", upstream_service(op),
                    upstream_op_name(op), status);
    }
    return status >= 500 || (out->error_type[0] && is_server_type(out->error_type));
}

/* ---- batch answers ------------------------------------------------------------------------ */

void upstream_batch_start(enum upstream_op op, struct upstream_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        upstream_result_release(&items[i].r);
        items[i].r.outcome = UP_BAD_ANSWER;
        set_message(&items[i].r, "not in the answer to %s %s", upstream_service(op),
                    upstream_op_name(op));
    }
}

static const char *str_field(const cJSON *o, const char *k)
{
    const cJSON *v = field(o, k);

    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* id is arn, or arn without its last 7 characters ("-" and the 6 AWS appends to the name). */
static int arn_matches(const char *id, const char *arn)
{
    size_t n = strlen(id);
    size_t m = strlen(arn);

    if (strcmp(id, arn) == 0) {
        return 1;
    }
    return m == n + 7 && strncmp(id, arn, n) == 0 && arn[n] == '-';
}

/* a followed by b (b NULL: nothing) is id. */
static int joined_is(const char *id, const char *a, const char *b)
{
    size_t n = strlen(a);

    return strncmp(id, a, n) == 0 && strcmp(id + n, b ? b : "") == 0;
}

static int entry_names(enum upstream_op op, const cJSON *e, const char *id)
{
    const char *name = str_field(e, "Name");
    const char *arn = str_field(e, "ARN");

    if (op == UPSTREAM_BATCH_GET_SECRET_VALUE) {
        return (name && strcmp(id, name) == 0) || (arn && arn_matches(id, arn));
    }
    return (name && joined_is(id, name, str_field(e, "Selector"))) ||
           (arn && joined_is(id, arn, str_field(e, "Selector")));
}

/* One SecretValues / Parameters entry: every item it names gets its single-call shape, or
 * UP_BAD_ANSWER when the entry is not readable. */
static void read_value_entry(enum upstream_op op, const cJSON *e, size_t in_len,
                             struct upstream_item *items, size_t n)
{
    shape_fn shape = op == UPSTREAM_GET_PARAMETERS ? shape_parameter_object : shape_secret;

    for (size_t i = 0; i < n; i++) {
        struct upstream_result *r = &items[i].r;

        if (!cJSON_IsObject(e) || !entry_names(op, e, items[i].id)) {
            continue;
        }
        upstream_result_release(r);
        r->http_status = 200;
        if (render(e, shape, in_len, r) != STASH_OK) {
            r->outcome = UP_BAD_ANSWER;
            set_message(r, "unreadable entry in the answer to %s %s", upstream_service(op),
                        upstream_op_name(op));
        }
    }
}

/* One Errors entry (secrets) or InvalidParameters name (parameters). */
static void read_error_entry(enum upstream_op op, const cJSON *e, struct upstream_item *items,
                             size_t n)
{
    const char *id = op == UPSTREAM_GET_PARAMETERS ? (cJSON_IsString(e) ? e->valuestring : NULL)
                                                   : str_field(e, "SecretId");
    const char *code =
        op == UPSTREAM_GET_PARAMETERS ? "ParameterNotFound" : str_field(e, "ErrorCode");
    const char *message = op == UPSTREAM_GET_PARAMETERS ? NULL : str_field(e, "Message");

    for (size_t i = 0; id && i < n; i++) {
        struct upstream_result *r = &items[i].r;

        if (strcmp(items[i].id, id) != 0) {
            continue;
        }
        upstream_result_release(r);
        (void)snprintf(r->error_type, sizeof(r->error_type), "%s", code ? code : "");
        clean_type(r->error_type);
        r->outcome =
            r->error_type[0] && is_throttle_type(r->error_type) ? UP_THROTTLED : UP_AWS_ERROR;
        if (message && message[0]) {
            set_message(r, "%s", message);
        } else {
            set_message(r, "%s %s reported %s", upstream_service(op), upstream_op_name(op),
                        r->error_type[0] ? r->error_type : "an error without a code");
        }
    }
}

enum stash_err upstream_read_batch_page(enum upstream_op op, const void *body, size_t len,
                                        struct upstream_item *items, size_t n, char **next_token)
{
    int ssm = op == UPSTREAM_GET_PARAMETERS;
    cJSON *root = cJSON_ParseWithLength(len ? body : "", len);
    const cJSON *values = field(root, ssm ? "Parameters" : "SecretValues");
    const cJSON *errors = field(root, ssm ? "InvalidParameters" : "Errors");
    const cJSON *next = field(root, "NextToken");
    const cJSON *e;
    enum stash_err rc = STASH_EPARSE;

    if (!is_batch(op) || !cJSON_IsObject(root) || (values && !cJSON_IsArray(values)) ||
        (errors && !cJSON_IsArray(errors)) ||
        (next && !cJSON_IsNull(next) && !cJSON_IsString(next))) {
        goto out;
    }
    cJSON_ArrayForEach(e, values)
    {
        read_value_entry(op, e, len, items, n);
    }
    cJSON_ArrayForEach(e, errors)
    {
        read_error_entry(op, e, items, n);
    }
    *next_token = NULL;
    if (next && cJSON_IsString(next) && next->valuestring && next->valuestring[0]) {
        *next_token = xstrdup(next->valuestring);
    }
    rc = STASH_OK;
out:
    json_free_secret(root);
    return rc;
}
