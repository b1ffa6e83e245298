/* sim/fake_aws/ops.c: Secrets Manager and SSM operations over AWS JSON 1.1, shaped as AWS
 * shapes them (field names, epoch-second timestamps, error codes and messages). */
#include "sim/fake_aws/ops.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mem.h"
#include "sim/fake_aws/b64.h"
#include "sim/fake_aws/filters.h"

#define REFERENCE_PREFIX "/aws/reference/secretsmanager/"

static const struct {
    const char *target;
    const char *name;
    const char *service;
} s_ops[FA_OP_COUNT] = {
    [FA_OP_GET_SECRET_VALUE] = {"secretsmanager.GetSecretValue", "GetSecretValue",
                                "secretsmanager"},
    [FA_OP_BATCH_GET_SECRET_VALUE] = {"secretsmanager.BatchGetSecretValue", "BatchGetSecretValue",
                                      "secretsmanager"},
    [FA_OP_GET_PARAMETER] = {"AmazonSSM.GetParameter", "GetParameter", "ssm"},
    [FA_OP_GET_PARAMETERS] = {"AmazonSSM.GetParameters", "GetParameters", "ssm"},
    [FA_OP_UNKNOWN] = {"", "Unknown", NULL},
};

enum fa_op fa_ops_from_target(const char *target)
{
    for (int i = 0; target && i < FA_OP_UNKNOWN; i++) {
        if (strcmp(target, s_ops[i].target) == 0) {
            return (enum fa_op)i;
        }
    }
    return FA_OP_UNKNOWN;
}

enum fa_op fa_ops_from_name(const char *name)
{
    for (int i = 0; name && i < FA_OP_UNKNOWN; i++) {
        if (strcmp(name, s_ops[i].name) == 0) {
            return (enum fa_op)i;
        }
    }
    return FA_OP_UNKNOWN;
}

const char *fa_ops_name(enum fa_op op)
{
    return op < FA_OP_COUNT ? s_ops[op].name : "Unknown";
}

const char *fa_ops_target_service(const char *target)
{
    if (!target) {
        return NULL;
    }
    if (strncmp(target, "secretsmanager.", 15) == 0) {
        return "secretsmanager";
    }
    if (strncmp(target, "AmazonSSM.", 10) == 0) {
        return "ssm";
    }
    return NULL;
}

void fa_reply_init(struct fa_reply *r)
{
    r->status = 200;
    r->error_type = NULL;
    buf_init(&r->body, FA_REPLY_MAX);
}

void fa_reply_release(struct fa_reply *r)
{
    buf_release_secret(&r->body);
}

void fa_ops_error(struct fa_reply *r, int status, const char *type, const char *message)
{
    buf_reset(&r->body);
    r->status = status;
    r->error_type = type;
    (void)buf_puts(&r->body, "{\"__type\":\"");
    (void)buf_put_json_escaped(&r->body, type, strlen(type));
    (void)buf_putc(&r->body, '"');
    if (message) {
        (void)buf_puts(&r->body, ",\"message\":\"");
        (void)buf_put_json_escaped(&r->body, message, strlen(message));
        (void)buf_putc(&r->body, '"');
    }
    (void)buf_putc(&r->body, '}');
}

static void errorf(struct fa_reply *r, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(struct fa_reply *r, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fa_ops_error(r, 400, type, msg);
}

/* ---- rendering helpers ------------------------------------------------------------------ */

static void put_str(struct buf *b, const char *key, const char *value, size_t len)
{
    (void)buf_printf(b, "\"%s\":\"", key);
    (void)buf_put_json_escaped(b, value, len);
    (void)buf_putc(b, '"');
}

/* Epoch seconds as JSON 1.1 sends them: a number with up to three decimals ("1523477145.713"). */
static void put_epoch(struct buf *b, const char *key, double t)
{
    char num[48];
    size_t n = (size_t)snprintf(num, sizeof(num), "%.3f", t);

    while (n > 0 && num[n - 1] == '0') {
        num[--n] = '\0';
    }
    if (n > 0 && num[n - 1] == '.') {
        num[--n] = '\0';
    }
    (void)buf_printf(b, "\"%s\":%s", key, num);
}

static void put_stages(struct buf *b, const char *key, char *const *stages, size_t n)
{
    (void)buf_printf(b, "\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        (void)buf_printf(b, "%s\"", i ? "," : "");
        (void)buf_put_json_escaped(b, stages[i], strlen(stages[i]));
        (void)buf_putc(b, '"');
    }
    (void)buf_putc(b, ']');
}

static void render_secret(struct buf *b, const struct fa_secret_value *v)
{
    (void)buf_putc(b, '{');
    put_str(b, "ARN", v->arn, strlen(v->arn));
    (void)buf_putc(b, ',');
    put_epoch(b, "CreatedDate", v->created);
    (void)buf_putc(b, ',');
    put_str(b, "Name", v->name, strlen(v->name));
    (void)buf_putc(b, ',');
    if (v->binary) {
        (void)buf_puts(b, "\"SecretBinary\":\"");
        (void)b64_encode(b, v->value, v->value_len);
        (void)buf_puts(b, "\",");
    } else {
        put_str(b, "SecretString", (const char *)v->value, v->value_len);
        (void)buf_putc(b, ',');
    }
    put_str(b, "VersionId", v->version_id, strlen(v->version_id));
    (void)buf_putc(b, ',');
    put_stages(b, "VersionStages", v->stages, v->nstages);
    (void)buf_putc(b, '}');
}

/* A stand-in for KMS ciphertext: base64 of a fixed envelope header and the value masked with a
 * keystream derived from the parameter's name and version.  Deterministic, length-revealing like
 * the real thing, and never the plaintext. */
static void render_ciphertext(struct buf *b, const struct fa_param_value *v)
{
    static const unsigned char header[] = {0x01, 0x02, 0x02, 0x00, 0x78, 0xfa, 0x6b, 0x65,
                                           0x61, 0x77, 0x73, 0x2d, 0x6b, 0x6d, 0x73, 0x01};
    size_t n = sizeof(header) + v->value_len + 16;
    unsigned char *c = xmalloc(n);
    uint64_t x = 0xcbf29ce484222325ull ^ (uint64_t)v->version;

    for (const char *p = v->name; *p; p++) {
        x = (x ^ (unsigned char)*p) * 0x100000001b3ull;
    }
    memcpy(c, header, sizeof(header));
    for (size_t i = 0; i < v->value_len + 16; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c[sizeof(header) + i] =
            (unsigned char)(x >> 24) ^ (i < v->value_len ? (unsigned char)v->value[i] : 0);
    }
    (void)b64_encode(b, c, n);
    free(c);
}

static void render_param(struct buf *b, const struct fa_param_value *v, const char *selector,
                         int decrypt)
{
    (void)buf_putc(b, '{');
    put_str(b, "ARN", v->arn, strlen(v->arn));
    (void)buf_putc(b, ',');
    put_str(b, "DataType", v->data_type, strlen(v->data_type));
    (void)buf_putc(b, ',');
    put_epoch(b, "LastModifiedDate", v->modified);
    (void)buf_putc(b, ',');
    put_str(b, "Name", v->name, strlen(v->name));
    (void)buf_putc(b, ',');
    if (selector) {
        (void)buf_puts(b, "\"Selector\":\":");
        (void)buf_put_json_escaped(b, selector, strlen(selector));
        (void)buf_puts(b, "\",");
    }
    put_str(b, "Type", v->type, strlen(v->type));
    (void)buf_putc(b, ',');
    if (strcmp(v->type, "SecureString") == 0 && !decrypt) {
        (void)buf_puts(b, "\"Value\":\"");
        render_ciphertext(b, v);
        (void)buf_putc(b, '"');
    } else {
        put_str(b, "Value", v->value, v->value_len);
    }
    (void)buf_printf(b, ",\"Version\":%ld}", v->version);
}

/* "Nov 16, 2022, 8:22:40 AM": how the SSM side of /aws/reference/ prints a secret's date (a Java
 * default date format, seen in real responses). */
static void java_date(double t, char *out, size_t cap)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t s = (time_t)t;
    struct tm tm;
    int h;

    gmtime_r(&s, &tm);
    h = tm.tm_hour % 12;
    (void)snprintf(out, cap, "%s %d, %d, %d:%02d:%02d %s", months[tm.tm_mon], tm.tm_mday,
                   tm.tm_year + 1900, h ? h : 12, tm.tm_min, tm.tm_sec,
                   tm.tm_hour < 12 ? "AM" : "PM");
}

/* SourceResult of a /aws/reference/secretsmanager/ parameter: the secret as the SSM service sees
 * it, a JSON document in a string.  A binary secret shows as the Java ByteBuffer it is there. */
static void render_source_result(struct buf *b, const struct fa_secret_value *v)
{
    struct buf doc = BUF_INIT(FA_REPLY_MAX);
    char date[64];

    java_date(v->created, date, sizeof(date));
    (void)buf_putc(&doc, '{');
    put_str(&doc, "ARN", v->arn, strlen(v->arn));
    (void)buf_putc(&doc, ',');
    put_str(&doc, "name", v->name, strlen(v->name));
    (void)buf_putc(&doc, ',');
    put_str(&doc, "versionId", v->version_id, strlen(v->version_id));
    (void)buf_putc(&doc, ',');
    if (v->binary) {
        (void)buf_puts(&doc, "\"secretBinary\":{\"hb\":[");
        for (size_t i = 0; i < v->value_len; i++) {
            (void)buf_printf(&doc, "%s%d", i ? "," : "", (int)(signed char)v->value[i]);
        }
        (void)buf_printf(&doc,
                         "],\"offset\":0,\"isReadOnly\":false,\"bigEndian\":true,"
                         "\"nativeByteOrder\":false,\"mark\":-1,\"position\":0,\"limit\":%zu,"
                         "\"capacity\":%zu,\"address\":16},",
                         v->value_len, v->value_len);
    } else {
        put_str(&doc, "secretString", (const char *)v->value, v->value_len);
        (void)buf_putc(&doc, ',');
    }
    put_stages(&doc, "versionStages", v->stages, v->nstages);
    (void)buf_putc(&doc, ',');
    put_str(&doc, "createdDate", date, strlen(date));
    (void)buf_putc(&doc, '}');
    put_str(b, "SourceResult", doc.data, doc.len);
    buf_release_secret(&doc);
}

/* ---- request parsing -------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *j)
{
    if (cJSON_IsNumber(j)) {
        return "NUMBER_VALUE";
    }
    if (cJSON_IsBool(j)) {
        return "VALUE_TRUE";
    }
    if (cJSON_IsArray(j)) {
        return "START_ARRAY";
    }
    if (cJSON_IsObject(j)) {
        return "START_OBJECT";
    }
    return "VALUE_NULL";
}

/* Reads an optional string member with AWS's length limits; 0 and a reply on failure.  The
 * member name is written in the model's camelCase in messages, as AWS's validator does. */
static int get_str(const cJSON *req, const char *key, const char *field, size_t min, size_t max,
                   int required, const char **out, struct fa_reply *r)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);
    size_t n;

    *out = NULL;
    if (!j || cJSON_IsNull(j)) {
        if (required) {
            errorf(r, "ValidationException",
                   "1 validation error detected: Value null at '%s' failed to satisfy "
                   "constraint: Member must not be null",
                   field);
            return 0;
        }
        return 1;
    }
    if (!cJSON_IsString(j)) {
        errorf(r, "SerializationException", "%s can not be converted to a String",
               json_type_name(j));
        return 0;
    }
    n = strlen(j->valuestring);
    if (n < min || n > max) {
        errorf(r, "ValidationException",
               "1 validation error detected: Value at '%s' failed to satisfy constraint: Member "
               "must have length %s %zu",
               field, n < min ? "greater than or equal to" : "less than or equal to",
               n < min ? min : max);
        return 0;
    }
    *out = j->valuestring;
    return 1;
}

static int get_bool(const cJSON *req, const char *key, int *out, struct fa_reply *r)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);

    *out = 0;
    if (!j || cJSON_IsNull(j)) {
        return 1;
    }
    if (!cJSON_IsBool(j)) {
        errorf(r, "SerializationException", "%s can not be converted to a Boolean",
               cJSON_IsString(j) ? "VALUE_STRING" : json_type_name(j));
        return 0;
    }
    *out = cJSON_IsTrue(j);
    return 1;
}

/* A string list member with 1..max entries of 1..maxlen characters; NULL when absent. */
static int get_list(const cJSON *req, const char *key, const char *field, int max, size_t maxlen,
                    const cJSON **out, struct fa_reply *r)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);
    const cJSON *e;
    int n;

    *out = NULL;
    if (!j || cJSON_IsNull(j)) {
        return 1;
    }
    if (!cJSON_IsArray(j)) {
        errorf(r, "SerializationException", "%s can not be converted to a List",
               cJSON_IsString(j) ? "VALUE_STRING" : json_type_name(j));
        return 0;
    }
    n = cJSON_GetArraySize(j);
    if (n < 1 || n > max) {
        errorf(r, "ValidationException",
               "1 validation error detected: Value at '%s' failed to satisfy constraint: Member "
               "must have length %s %d",
               field, n < 1 ? "greater than or equal to" : "less than or equal to",
               n < 1 ? 1 : max);
        return 0;
    }
    cJSON_ArrayForEach(e, j)
    {
        if (!cJSON_IsString(e)) {
            errorf(r, "SerializationException", "%s can not be converted to a String",
                   json_type_name(e));
            return 0;
        }
        if (!e->valuestring[0] || strlen(e->valuestring) > maxlen) {
            errorf(r, "ValidationException",
                   "1 validation error detected: Value at '%s' failed to satisfy constraint: "
                   "Member must satisfy constraint: [Member must have length less than or equal "
                   "to %zu, Member must have length greater than or equal to 1]",
                   field, maxlen);
            return 0;
        }
    }
    *out = j;
    return 1;
}

static void access_denied(struct fa_reply *r, const struct fa_data *d, const char *action,
                          const char *resource)
{
    errorf(r, "AccessDeniedException",
           "User: arn:aws:sts::%s:assumed-role/fake-aws-role/fake-aws-session is not authorized "
           "to perform: %s on resource: %s because no identity-based policy allows the %s "
           "action",
           fa_data_account(d), action, resource, action);
}

/* ---- Secrets Manager -------------------------------------------------------------------- */

/* Looks a secret up and turns every refusal into AWS's error code and message.  Returns 1 with
 * *v filled, or 0 with code and message set (the caller releases nothing then). */
static int resolve_secret(struct fa_data *d, const char *id, const char *version_id,
                          const char *stage, struct fa_secret_value *v, const char **code,
                          char *msg, size_t cap)
{
    enum fa_miss miss;

    if (fa_data_get_secret(d, id, version_id, stage, v, &miss) == STASH_OK) {
        if (v->flags & FA_FLAG_DENY) {
            *code = "AccessDeniedException";
            (void)snprintf(
                msg, cap,
                "User: arn:aws:sts::%s:assumed-role/fake-aws-role/fake-aws-session is not "
                "authorized to perform: secretsmanager:GetSecretValue on resource: %s "
                "because no identity-based policy allows the secretsmanager:GetSecretValue "
                "action",
                fa_data_account(d), id);
        } else if (v->flags & FA_FLAG_DELETED) {
            *code = "InvalidRequestException";
            (void)snprintf(msg, cap,
                           "You can't perform this operation on the secret because it was "
                           "marked for deletion.");
        } else if (v->flags & FA_FLAG_DECRYPT_FAILS) {
            *code = "DecryptionFailure";
            (void)snprintf(msg, cap,
                           "Secrets Manager can't decrypt the protected secret text using "
                           "the provided KMS key.");
        } else {
            return 1;
        }
        fa_secret_value_release(v);
        return 0;
    }
    *code = "ResourceNotFoundException";
    switch (miss) {
    case FA_MISS_VERSION_ID:
        (void)snprintf(msg, cap,
                       "Secrets Manager can't find the specified secret value for VersionId: %s",
                       version_id);
        break;
    case FA_MISS_STAGE:
        (void)snprintf(
            msg, cap, "Secrets Manager can't find the specified secret value for staging label: %s",
            stage ? stage : "AWSCURRENT");
        break;
    case FA_MISS_STAGE_NOT_ON_ID:
        *code = "InvalidRequestException";
        (void)snprintf(
            msg, cap,
            "You provided a VersionStage that is not associated to the provided VersionId.");
        break;
    default:
        (void)snprintf(msg, cap, "Secrets Manager can't find the specified secret.");
        break;
    }
    return 0;
}

static void get_secret_value(struct fa_data *d, const cJSON *req, struct fa_reply *r)
{
    struct fa_secret_value v;
    const char *id;
    const char *version_id;
    const char *stage;
    const char *code;
    char msg[1024];

    if (!get_str(req, "SecretId", "secretId", 1, 2048, 1, &id, r) ||
        !get_str(req, "VersionId", "versionId", 32, 64, 0, &version_id, r) ||
        !get_str(req, "VersionStage", "versionStage", 1, 256, 0, &stage, r)) {
        return;
    }
    if (!resolve_secret(d, id, version_id, stage, &v, &code, msg, sizeof(msg))) {
        fa_ops_error(r, 400, code, msg);
        return;
    }
    render_secret(&r->body, &v);
    fa_secret_value_release(&v);
}

#define BATCH_MAX      20   /* secrets per call: SecretIdList's limit and MaxResults' */
#define NEXT_TOKEN_MAX 4096 /* NextToken's length limit in AWS's model */
#define TOKEN_PREFIX   "fa1:"

/* The secrets a Filters search matched, by name (copies). */
struct listing {
    const struct fa_filters *filters;
    char **names;
    size_t n;
    size_t cap;
};

static void collect_match(void *ctx, const struct fa_secret_meta *m)
{
    struct listing *l = ctx;

    /* As ListSecrets by default, a secret scheduled for deletion is not listed. */
    if ((m->flags & FA_FLAG_DELETED) || !fa_filters_match(l->filters, m)) {
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
    }
    l->names[l->n++] = xstrdup(m->name);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ties a NextToken to the search it pages through: a token is good only for the same Filters. */
static uint64_t filters_hash(const cJSON *filters)
{
    char *text = cJSON_PrintUnformatted(filters);
    uint64_t h = 1469598103934665603ull;

    for (const char *p = text ? text : ""; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    }
    cJSON_free(text);
    return h;
}

/* NextToken: base64 of "fa1:<hash of the Filters>:<last name returned>".  Opaque to clients,
 * as AWS's are; a page starts after that name, so it holds even if secrets come and go. */
static void token_make(struct buf *out, uint64_t h, const char *after)
{
    struct buf raw = BUF_INIT(0);

    (void)buf_printf(&raw, TOKEN_PREFIX "%016llx:%s", (unsigned long long)h, after);
    (void)b64_encode(out, raw.data, raw.len);
    buf_release(&raw);
}

/* The name a NextToken continues after (the caller frees it), or NULL when the token is not one
 * this search handed out. */
static char *token_read(const char *tok, uint64_t h)
{
    size_t n = strlen(tok);
    unsigned char *raw = xmalloc(b64_decoded_max(n) + 1);
    size_t len = 0;
    char want[64];
    char *after = NULL;
    size_t wlen;

    wlen = (size_t)snprintf(want, sizeof(want), TOKEN_PREFIX "%016llx:", (unsigned long long)h);
    if (b64_decode(tok, n, raw, &len) == STASH_OK && len > wlen && memcmp(raw, want, wlen) == 0 &&
        !memchr(raw, 0, len)) {
        raw[len] = '\0';
        after = xstrdup((const char *)raw + wlen);
    }
    free(raw);
    return after;
}

/* One SecretValues entry, or an Errors entry naming id, for each of ids; then the answer. */
static void render_batch(struct fa_data *d, const char *const *ids, size_t n,
                         const struct buf *next_token, struct fa_reply *r)
{
    struct buf errors = BUF_INIT(FA_REPLY_MAX);
    struct buf values = BUF_INIT(FA_REPLY_MAX);
    int nvalues = 0;
    int nerrors = 0;

    for (size_t i = 0; i < n; i++) {
        struct fa_secret_value v;
        const char *code;
        char msg[1024];

        if (resolve_secret(d, ids[i], NULL, NULL, &v, &code, msg, sizeof(msg))) {
            (void)buf_puts(&values, nvalues++ ? "," : "");
            render_secret(&values, &v);
            fa_secret_value_release(&v);
            continue;
        }
        (void)buf_puts(&errors, nerrors++ ? ",{" : "{");
        put_str(&errors, "ErrorCode", code, strlen(code));
        (void)buf_putc(&errors, ',');
        put_str(&errors, "Message", msg, strlen(msg));
        (void)buf_putc(&errors, ',');
        put_str(&errors, "SecretId", ids[i], strlen(ids[i]));
        (void)buf_putc(&errors, '}');
    }
    (void)buf_puts(&r->body, "{\"Errors\":[");
    (void)buf_append(&r->body, errors.data ? errors.data : "", errors.len);
    (void)buf_puts(&r->body, "],");
    if (next_token && next_token->len) {
        put_str(&r->body, "NextToken", next_token->data, next_token->len);
        (void)buf_putc(&r->body, ',');
    }
    (void)buf_puts(&r->body, "\"SecretValues\":[");
    (void)buf_append(&r->body, values.data ? values.data : "", values.len);
    (void)buf_puts(&r->body, "]}");
    buf_release(&errors);
    buf_release_secret(&values);
}

/* MaxResults: an integer from 1 to BATCH_MAX; *out 0 when absent. */
static int get_max_results(const cJSON *req, int *out, struct fa_reply *r)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "MaxResults");

    *out = 0;
    if (!j || cJSON_IsNull(j)) {
        return 1;
    }
    if (!cJSON_IsNumber(j)) {
        errorf(r, "SerializationException", "%s can not be converted to an Integer",
               cJSON_IsString(j) ? "VALUE_STRING" : json_type_name(j));
        return 0;
    }
    if (!(j->valuedouble >= 1 && j->valuedouble <= BATCH_MAX)) {
        errorf(r, "ValidationException",
               "1 validation error detected: Value '%.15g' at 'maxResults' failed to satisfy "
               "constraint: Member must have value %s %d",
               j->valuedouble,
               j->valuedouble < 1 ? "greater than or equal to" : "less than or equal to",
               j->valuedouble < 1 ? 1 : BATCH_MAX);
        return 0;
    }
    if (j->valuedouble != (double)(int)j->valuedouble) {
        errorf(r, "SerializationException", "NUMBER_VALUE can not be converted to an Integer");
        return 0;
    }
    *out = (int)j->valuedouble;
    return 1;
}

/* Filters: every matching secret (by name, in name order), MaxResults (default BATCH_MAX) per
 * page, NextToken to go on. */
static void batch_filtered(struct fa_data *d, const cJSON *jfilters, int max, const char *token,
                           struct fa_reply *r)
{
    struct fa_filters filters;
    struct listing l = {.filters = &filters};
    struct buf next = BUF_INIT(0);
    const char *code;
    char msg[1024];
    uint64_t h = filters_hash(jfilters);
    char *after = NULL;
    size_t from = 0;
    size_t count;

    if (fa_filters_parse(jfilters, &filters, &code, msg, sizeof(msg)) != STASH_OK) {
        fa_ops_error(r, 400, code, msg);
        return;
    }
    if (token) {
        after = token_read(token, h);
        if (!after) {
            fa_ops_error(r, 400, "InvalidNextTokenException", "The NextToken value is invalid.");
            return;
        }
    }
    fa_data_each_secret(d, collect_match, &l);
    if (l.n) {
        qsort(l.names, l.n, sizeof(*l.names), cmp_names);
    }
    while (after && from < l.n && strcmp(l.names[from], after) <= 0) {
        from++;
    }
    count =
        l.n - from < (size_t)(max ? max : BATCH_MAX) ? l.n - from : (size_t)(max ? max : BATCH_MAX);
    if (from + count < l.n) {
        token_make(&next, h, l.names[from + count - 1]);
    }
    render_batch(d, count ? (const char *const *)l.names + from : NULL, count, &next, r);
    for (size_t i = 0; i < l.n; i++) {
        free(l.names[i]);
    }
    free(l.names);
    free(after);
    buf_release(&next);
}

static void batch_get_secret_value(struct fa_data *d, const cJSON *req, struct fa_reply *r)
{
    const cJSON *ids;
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(req, "Filters");
    const cJSON *e;
    const char *token;
    const char *list[BATCH_MAX];
    size_t n = 0;
    int max;

    if (cJSON_IsNull(filters)) {
        filters = NULL;
    }
    if (!get_list(req, "SecretIdList", "secretIdList", BATCH_MAX, 2048, &ids, r) ||
        !get_max_results(req, &max, r) ||
        !get_str(req, "NextToken", "nextToken", 1, NEXT_TOKEN_MAX, 0, &token, r)) {
        return;
    }
    if (ids && filters) {
        fa_ops_error(r, 400, "InvalidParameterException",
                     "Either SecretIdList or Filters must be provided, but not both.");
        return;
    }
    if (!ids && !filters) {
        fa_ops_error(r, 400, "InvalidParameterException",
                     "You must provide either a list of secret IDs or a filter.");
        return;
    }
    if (filters) {
        batch_filtered(d, filters, max, token, r);
        return;
    }
    if (max || token) {
        fa_ops_error(r, 400, "InvalidParameterException",
                     max ? "MaxResults can be used only with Filters."
                         : "NextToken can be used only with Filters.");
        return;
    }
    cJSON_ArrayForEach(e, ids)
    {
        list[n++] = e->valuestring;
    }
    render_batch(d, list, n, NULL, r);
}

/* ---- SSM -------------------------------------------------------------------------------- */

/* Splits "name:selector" (or "arn:...:parameter/name:selector") in place; returns the selector
 * or NULL. */
static char *split_selector(char *name)
{
    char *from = name;
    char *colon;

    if (strncmp(name, "arn:", 4) == 0) {
        from = strstr(name, ":parameter/");
        if (!from) {
            return NULL;
        }
        from += strlen(":parameter/");
    }
    colon = strchr(from, ':');
    if (!colon) {
        return NULL;
    }
    *colon = '\0';
    return colon + 1;
}

/* The outcome of resolving one SSM name. */
enum param_outcome {
    PARAM_OK,
    PARAM_NOT_FOUND,
    PARAM_VERSION_NOT_FOUND,
    PARAM_DENIED,
    PARAM_NEEDS_DECRYPTION,
};

/* Resolves one name (with its selector) and renders the Parameter object into b. */
static enum param_outcome render_one_param(struct fa_data *d, const char *full, int decrypt,
                                           struct buf *b, char *resource, size_t cap)
{
    char *name = xstrdup(full);
    char *selector = split_selector(name);
    enum param_outcome out = PARAM_OK;
    enum fa_miss miss;

    (void)snprintf(resource, cap, "%s", name);
    if (strncmp(name, REFERENCE_PREFIX, strlen(REFERENCE_PREFIX)) == 0) {
        const char *id = name + strlen(REFERENCE_PREFIX);
        struct fa_secret_value v;
        enum stash_err rc;

        if (!decrypt) {
            out = PARAM_NEEDS_DECRYPTION;
            goto out;
        }
        /* The selector names a stage, or else a version id. */
        rc = fa_data_get_secret(d, id, NULL, selector, &v, &miss);
        if (rc && selector && strlen(selector) >= 32) {
            rc = fa_data_get_secret(d, id, selector, NULL, &v, &miss);
        }
        if (rc || (v.flags & (FA_FLAG_DELETED | FA_FLAG_DECRYPT_FAILS))) {
            if (!rc) {
                fa_secret_value_release(&v);
            }
            out = PARAM_NOT_FOUND;
            goto out;
        }
        if (v.flags & FA_FLAG_DENY) {
            fa_secret_value_release(&v);
            out = PARAM_DENIED;
            goto out;
        }
        (void)buf_putc(b, '{');
        put_str(b, "ARN", v.arn, strlen(v.arn));
        (void)buf_putc(b, ',');
        put_epoch(b, "LastModifiedDate", v.created);
        (void)buf_putc(b, ',');
        put_str(b, "Name", name, strlen(name));
        (void)buf_putc(b, ',');
        if (selector) {
            (void)buf_puts(b, "\"Selector\":\":");
            (void)buf_put_json_escaped(b, selector, strlen(selector));
            (void)buf_puts(b, "\",");
        }
        render_source_result(b, &v);
        (void)buf_puts(b, ",\"Type\":\"SecureString\",");
        if (!v.binary) {
            put_str(b, "Value", (const char *)v.value, v.value_len);
            (void)buf_putc(b, ',');
        }
        (void)buf_puts(b, "\"Version\":0}");
        fa_secret_value_release(&v);
    } else {
        struct fa_param_value v;

        if (fa_data_get_param(d, name, selector, &v, &miss)) {
            out = miss == FA_MISS_ITEM ? PARAM_NOT_FOUND : PARAM_VERSION_NOT_FOUND;
            goto out;
        }
        (void)snprintf(resource, cap, "%s", v.arn);
        if (v.flags & FA_FLAG_DENY) {
            fa_param_value_release(&v);
            out = PARAM_DENIED;
            goto out;
        }
        render_param(b, &v, selector, decrypt);
        fa_param_value_release(&v);
    }
out:
    if (out == PARAM_VERSION_NOT_FOUND) {
        (void)snprintf(resource, cap, "%s:%s", name, selector ? selector : "");
    }
    free(name);
    return out;
}

static void get_parameter(struct fa_data *d, const cJSON *req, struct fa_reply *r)
{
    const char *name;
    int decrypt;
    char resource[FA_NAME_MAX + 160];
    struct buf param = BUF_INIT(FA_REPLY_MAX);

    if (!get_str(req, "Name", "name", 1, FA_NAME_MAX, 1, &name, r) ||
        !get_bool(req, "WithDecryption", &decrypt, r)) {
        return;
    }
    switch (render_one_param(d, name, decrypt, &param, resource, sizeof(resource))) {
    case PARAM_OK:
        (void)buf_puts(&r->body, "{\"Parameter\":");
        (void)buf_append(&r->body, param.data, param.len);
        (void)buf_putc(&r->body, '}');
        break;
    case PARAM_NOT_FOUND:
        fa_ops_error(r, 400, "ParameterNotFound", NULL);
        break;
    case PARAM_VERSION_NOT_FOUND: {
        const char *colon = strrchr(resource, ':');

        errorf(r, "ParameterVersionNotFound",
               "Systems Manager could not find version %s of %.*s. Verify the version and try "
               "again.",
               colon + 1, (int)(colon - resource), resource);
        break;
    }
    case PARAM_DENIED:
        access_denied(r, d, "ssm:GetParameter", resource);
        break;
    case PARAM_NEEDS_DECRYPTION:
        fa_ops_error(r, 400, "ValidationException",
                     "WithDecryption flag must be True for retrieving a Secret Manager secret.");
        break;
    }
    buf_release_secret(&param);
}

static void get_parameters(struct fa_data *d, const cJSON *req, struct fa_reply *r)
{
    const cJSON *names;
    const cJSON *e;
    int decrypt;
    struct buf params = BUF_INIT(FA_REPLY_MAX);
    struct buf invalid = BUF_INIT(FA_REPLY_MAX);
    char resource[FA_NAME_MAX + 160];

    if (!get_list(req, "Names", "names", 10, FA_NAME_MAX, &names, r) ||
        !get_bool(req, "WithDecryption", &decrypt, r)) {
        goto out;
    }
    if (!names) {
        fa_ops_error(r, 400, "ValidationException",
                     "1 validation error detected: Value null at 'names' failed to satisfy "
                     "constraint: Member must not be null");
        goto out;
    }
    cJSON_ArrayForEach(e, names)
    {
        struct buf one = BUF_INIT(FA_REPLY_MAX);

        switch (render_one_param(d, e->valuestring, decrypt, &one, resource, sizeof(resource))) {
        case PARAM_OK:
            (void)buf_puts(&params, params.len ? "," : "");
            (void)buf_append(&params, one.data, one.len);
            break;
        case PARAM_DENIED:
            buf_release_secret(&one);
            access_denied(r, d, "ssm:GetParameters", resource);
            goto out;
        case PARAM_NEEDS_DECRYPTION:
            buf_release_secret(&one);
            fa_ops_error(r, 400, "ValidationException",
                         "WithDecryption flag must be True for retrieving a Secret Manager "
                         "secret.");
            goto out;
        default:
            (void)buf_printf(&invalid, "%s\"", invalid.len ? "," : "");
            (void)buf_put_json_escaped(&invalid, e->valuestring, strlen(e->valuestring));
            (void)buf_putc(&invalid, '"');
            break;
        }
        buf_release_secret(&one);
    }
    (void)buf_puts(&r->body, "{\"InvalidParameters\":[");
    (void)buf_append(&r->body, invalid.data ? invalid.data : "", invalid.len);
    (void)buf_puts(&r->body, "],\"Parameters\":[");
    (void)buf_append(&r->body, params.data ? params.data : "", params.len);
    (void)buf_puts(&r->body, "]}");
out:
    buf_release_secret(&params);
    buf_release(&invalid);
}

void fa_ops_handle(struct fa_data *d, enum fa_op op, const char *body, size_t len,
                   struct fa_reply *out)
{
    cJSON *req = NULL;

    fa_reply_init(out);
    if (op == FA_OP_UNKNOWN) {
        fa_ops_error(out, 400, "UnknownOperationException", NULL);
        return;
    }
    req = len ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
    if (!req || !cJSON_IsObject(req)) {
        fa_ops_error(out, 400, "SerializationException",
                     req ? "Start of structure or map found where not expected."
                         : "Could not parse the request body as JSON.");
        cJSON_Delete(req);
        return;
    }
    switch (op) {
    case FA_OP_GET_SECRET_VALUE:
        get_secret_value(d, req, out);
        break;
    case FA_OP_BATCH_GET_SECRET_VALUE:
        batch_get_secret_value(d, req, out);
        break;
    case FA_OP_GET_PARAMETER:
        get_parameter(d, req, out);
        break;
    case FA_OP_GET_PARAMETERS:
        get_parameters(d, req, out);
        break;
    default:
        fa_ops_error(out, 400, "UnknownOperationException", NULL);
        break;
    }
    cJSON_Delete(req);
}
