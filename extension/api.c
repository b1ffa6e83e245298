/* extension/api.c: routing (pure) and the libmicrohttpd server of the local API.
 * Contract in api.h.  This file and telemetry's listener are the only users of microhttpd.h. */
#include "extension/api.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"
#include "extension/answer.h"
#include "extension/batch.h"

#define API_CONN_TIMEOUT_S 60          /* idle keep-alive connections are closed after this */
#define API_MEMORY_LIMIT   (64 * 1024) /* per connection; holds the request head (see 413) */
#define API_RETRY_AFTER_S  "1"
#define API_DRAIN_MS       500 /* api_stop waits this long at most for answers in flight */
#define API_ERROR_BODY_MAX (API_MESSAGE_MAX * 6 + 128) /* worst-case escaping of message */

static const char s_token_header[] = "X-Aws-Parameters-Secrets-Token";
static const char s_vault_header[] = "X-Vault-Token";
static const char s_reqid_header[] = "X-Stash-Request-Id";

/* ---- routing (pure) ---- */

static void route_error(struct api_route *out, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void route_error(struct api_route *out, int status, const char *type, const char *fmt, ...)
{
    va_list ap;

    out->kind = API_ROUTE_ERROR;
    out->status = status;
    out->error_type = type;
    va_start(ap, fmt);
    /* va_start is just above; the analyzer misses it when it inlines a static variadic
     * function into its callers. */
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    (void)vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

static const char *header_get(const struct api_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].key, name) == 0) {
            return req->headers[i].value ? req->headers[i].value : "";
        }
    }
    return NULL;
}

/* First value of a query argument; "" for a bare key; NULL if absent. */
static const char *arg_get(const struct api_request *req, const char *name)
{
    for (size_t i = 0; i < req->nargs; i++) {
        if (strcmp(req->args[i].key, name) == 0) {
            return req->args[i].value ? req->args[i].value : "";
        }
    }
    return NULL;
}

/* An empty selector counts as absent, as AWS's extension treats it. */
static const char *arg_nonempty(const struct api_request *req, const char *name)
{
    const char *v = arg_get(req, name);

    return v && *v ? v : NULL;
}

/* true|false|1|0, case-insensitive (the agent's refreshNow grammar); absent: dflt. */
static int parse_flag(const char *v, int dflt, int *out)
{
    if (!v) {
        *out = dflt;
        return 1;
    }
    return str_parse_bool(v, out);
}

/* Accepts the token from either header; every provided value is compared in constant time. */
static int token_ok(const struct api_request *req, const char *token, size_t token_len)
{
    int ok = 0;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct api_kv *h = &req->headers[i];

        if (!h->value) {
            continue;
        }
        if (strcasecmp(h->key, s_token_header) == 0 || strcasecmp(h->key, s_vault_header) == 0) {
            ok |= mem_equal_ct(h->value, strlen(h->value), token, token_len);
        }
    }
    return ok && token_len > 0;
}

static int check_id(struct api_route *out, const char *id, const char *what)
{
    if (!id || !*id) {
        route_error(out, 400, "ValidationException", "missing required parameter %s", what);
        return 0;
    }
    if (strlen(id) > API_MAX_ID_BYTES) {
        route_error(out, 400, "ValidationException", "%s is longer than %d bytes", what,
                    API_MAX_ID_BYTES);
        return 0;
    }
    return 1;
}

static int route_refresh(const struct api_request *req, struct api_route *out)
{
    if (!parse_flag(arg_get(req, "refreshNow"), 0, &out->refresh)) {
        route_error(out, 400, "ValidationException",
                    "refreshNow must be true or false (also 1 or 0)");
        return 0;
    }
    return 1;
}

/* stash's shaping parameters (extension/shape.h); 0 and an error route if they do not fit
 * together or with the route. */
static int route_shape(const struct api_request *req, int parameter, struct api_route *out)
{
    struct shape_req *s = &out->shape;
    const char *key = arg_get(req, "jsonKey");

    if (!parse_flag(arg_get(req, "raw"), 0, &s->raw)) {
        route_error(out, 400, "ValidationException", "raw must be true or false (also 1 or 0)");
        return 0;
    }
    if (!parse_flag(arg_get(req, "split"), 0, &s->split)) {
        route_error(out, 400, "ValidationException", "split must be true or false (also 1 or 0)");
        return 0;
    }
    if (parameter) {
        if (key) {
            route_error(out, 400, "ValidationException",
                        "jsonKey applies only to secrets (/secretsmanager/get, /v1/<secretId>)");
            return 0;
        }
        if (s->split && !s->raw) {
            route_error(out, 400, "ValidationException", "split=true needs raw=true");
            return 0;
        }
        return 1;
    }
    if (s->split) {
        route_error(out, 400, "ValidationException",
                    "split applies only to parameters (/systemsmanager/parameters/get)");
        return 0;
    }
    if (key && !*key) {
        route_error(out, 400, "ValidationException", "jsonKey must not be empty");
        return 0;
    }
    if (key && s->raw) {
        route_error(out, 400, "ValidationException", "send raw=true or jsonKey, not both");
        return 0;
    }
    s->json_key = key;
    return 1;
}

static void route_secret(const struct api_request *req, const char *id, const char *id_name,
                         struct api_route *out)
{
    if (!check_id(out, id, id_name) || !route_refresh(req, out)) {
        return;
    }
    out->version_id = arg_nonempty(req, "versionId");
    out->version_stage = arg_nonempty(req, "versionStage");
    if (out->version_id && out->version_stage) {
        route_error(out, 400, "ValidationException", "send versionId or versionStage, not both");
        return;
    }
    if (!route_shape(req, 0, out)) {
        return;
    }
    out->id = id;
    out->kind = API_ROUTE_SECRET;
}

static int all_digits(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

static void route_parameter(const struct api_request *req, struct api_route *out)
{
    const char *name = arg_get(req, "name");

    if (!check_id(out, name, "name") || !route_refresh(req, out)) {
        return;
    }
    if (!parse_flag(arg_get(req, "withDecryption"), 0, &out->with_decryption)) {
        route_error(out, 400, "ValidationException", "withDecryption must be true or false");
        return;
    }
    /* Only the first of version and label counts, as AWS's extension documents. */
    for (size_t i = 0; i < req->nargs; i++) {
        const struct api_kv *a = &req->args[i];

        if (!a->value || !*a->value) {
            continue;
        }
        if (strcmp(a->key, "version") == 0) {
            out->version = a->value;
            break;
        }
        if (strcmp(a->key, "label") == 0) {
            out->label = a->value;
            break;
        }
    }
    if (out->version && !all_digits(out->version)) {
        route_error(out, 400, "ValidationException", "version must be a whole number");
        return;
    }
    if (!route_shape(req, 1, out)) {
        return;
    }
    out->id = name;
    out->kind = API_ROUTE_PARAMETER;
}

/* The values of every `key` argument, each once, in the order sent: at most max of them. */
static int route_ids(const struct api_request *req, const char *key, size_t max,
                     struct api_route *out)
{
    for (size_t i = 0; i < req->nargs; i++) {
        const struct api_kv *a = &req->args[i];
        size_t j;

        if (strcmp(a->key, key) != 0) {
            continue;
        }
        if (!check_id(out, a->value, key)) {
            return 0;
        }
        for (j = 0; j < out->nids && strcmp(out->ids[j], a->value) != 0; j++) {
        }
        if (j < out->nids) {
            continue; /* asked twice: answered once */
        }
        if (out->nids == max) {
            route_error(out, 400, "ValidationException", "at most %zu %s values in one batch", max,
                        key);
            return 0;
        }
        out->ids[out->nids++] = a->value;
    }
    if (!out->nids) {
        route_error(out, 400, "ValidationException", "missing required parameter %s", key);
        return 0;
    }
    return 1;
}

static void route_batch(const struct api_request *req, int ssm, struct api_route *out)
{
    if (!route_ids(req, ssm ? "name" : "secretId", ssm ? API_BATCH_MAX_PARAMETERS : API_BATCH_MAX,
                   out) ||
        !route_refresh(req, out)) {
        return;
    }
    if (ssm && !parse_flag(arg_get(req, "withDecryption"), 0, &out->with_decryption)) {
        route_error(out, 400, "ValidationException", "withDecryption must be true or false");
        return;
    }
    out->kind = ssm ? API_ROUTE_PARAMETER_BATCH : API_ROUTE_SECRET_BATCH;
}

void api_route(const struct api_request *req, const char *token, size_t token_len,
               struct api_route *out)
{
    const char *path = req->path ? req->path : "";

    memset(out, 0, sizeof(*out));
    out->kind = API_ROUTE_ERROR;
    if (req->too_many || req->url_bytes > API_MAX_URL_BYTES ||
        req->header_bytes > API_MAX_HEADER_BYTES) {
        route_error(out, 413, "RequestTooLargeException",
                    "request too large: at most %d bytes of URL, %d bytes of headers, %d query "
                    "parameters and %d headers",
                    API_MAX_URL_BYTES, API_MAX_HEADER_BYTES, API_MAX_ARGS, API_MAX_HEADERS);
        return;
    }
    if (header_get(req, "X-Forwarded-For")) {
        route_error(out, 400, "ValidationException",
                    "X-Forwarded-For is not accepted: the local API serves callers on this host "
                    "only");
        return;
    }
    if (!req->method || strcmp(req->method, "GET") != 0) {
        route_error(out, 405, "MethodNotAllowedException", "only GET is allowed");
        return;
    }
    if (strcmp(path, "/ping") == 0) {
        out->kind = API_ROUTE_PING;
        out->status = 200;
        return;
    }
    if (!token_ok(req, token, token_len)) {
        out->status = 401;
        out->error_type = NULL;
        (void)snprintf(out->message, sizeof(out->message), "%s", API_TOKEN_BODY);
        return;
    }
    if (req->nul_byte) {
        /* "prod/db%00x" would decode to "prod/db" and be served as that other secret. */
        route_error(out, 400, "ValidationException",
                    "the URL holds an encoded NUL byte (%%00), which no secret or parameter name "
                    "can contain");
        return;
    }
    out->request_id = header_get(req, s_reqid_header);
    if (strcmp(path, "/secretsmanager/get") == 0 || strcmp(path, "/secretsmanager/get/") == 0) {
        route_secret(req, arg_get(req, "secretId"), "secretId", out);
    } else if (strcmp(path, "/systemsmanager/parameters/get") == 0 ||
               strcmp(path, "/systemsmanager/parameters/get/") == 0) {
        route_parameter(req, out);
    } else if (strcmp(path, "/secretsmanager/batch") == 0) {
        route_batch(req, 0, out);
    } else if (strcmp(path, "/systemsmanager/parameters/batch") == 0) {
        route_batch(req, 1, out);
    } else if (strncmp(path, "/v1/", 4) == 0) {
        route_secret(req, path + 4, "secret ID in /v1/<secretId>", out);
    } else {
        route_error(out, 404, "UnknownOperationException",
                    "no such route; stash serves GET /secretsmanager/get, "
                    "/systemsmanager/parameters/get, /v1/<secretId>, /secretsmanager/batch, "
                    "/systemsmanager/parameters/batch and /ping");
    }
}

size_t api_error_json(const char *type, const char *message, char *out, size_t outlen)
{
    struct buf b = BUF_INIT(outlen ? outlen - 1 : 0);
    size_t n = 0;

    if (!outlen) {
        return 0;
    }
    out[0] = '\0';
    if (buf_put_json_error(&b, type, message) == STASH_OK) {
        memcpy(out, b.data, b.len + 1);
        n = b.len;
    }
    buf_release(&b);
    return n;
}

/* Appends s and a NUL at out[at]; returns the next position, or SIZE_MAX once it does not fit
 * (and from then on). */
static size_t key_put(char *out, size_t outlen, size_t at, const char *s, size_t n)
{
    if (at == SIZE_MAX || n + 1 > outlen - at) {
        return SIZE_MAX;
    }
    memcpy(out + at, s, n);
    out[at + n] = '\0'; /* separator: ids and selectors never hold a NUL */
    return at + n + 1;
}

size_t api_cache_key(const struct api_route *r, char *out, size_t outlen)
{
    const char *sel;
    size_t at;

    if (r->kind == API_ROUTE_SECRET) {
        const char head[2] = {'S', (char)(r->version_id ? 'i' : r->version_stage ? 's' : '-')};

        sel = r->version_id ? r->version_id : r->version_stage;
        at = key_put(out, outlen, 0, head, 2);
        at = key_put(out, outlen, at, r->id, strlen(r->id));
        at = key_put(out, outlen, at, sel ? sel : "", sel ? strlen(sel) : 0);
    } else if (r->kind == API_ROUTE_PARAMETER) {
        /* The key holds the Name sent to AWS (cache/aws.c): the name, then ':' and the version
         * or label when one is given.  name=/x&version=3, name=/x:3 and the batch path's "/x:3"
         * are one GetParameter(s) request, so they read one entry. */
        const char head[2] = {r->with_decryption ? 'D' : 'P', ':'};

        sel = r->version && *r->version ? r->version : r->label && *r->label ? r->label : NULL;
        at = key_put(out, outlen, 0, head, 2);
        at = key_put(out, outlen, at, r->id, strlen(r->id));
        if (sel && at != SIZE_MAX) {
            out[at - 1] = ':'; /* the name's separator becomes the selector's colon */
            at = key_put(out, outlen, at, sel, strlen(sel));
        }
    } else {
        return 0;
    }
    return at == SIZE_MAX ? 0 : at;
}

/* ---- the server ---- */

struct collect {
    struct api_kv *kv;
    size_t n;
    size_t max;
    size_t bytes;
    int too_many;
};

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct collect *c = cls;

    (void)kind;
    c->bytes += strlen(key) + (value ? strlen(value) : 0);
    if (c->n >= c->max) {
        c->too_many = 1;
        return MHD_YES; /* keep counting bytes */
    }
    c->kv[c->n].key = key;
    c->kv[c->n].value = value;
    c->n++;
    return MHD_YES;
}

struct fill_ctx {
    const struct api_opts *opts;
    const struct api_route *route;
    struct facts *facts;
};

void api_upstream(const struct api_opts *o, const struct api_route *r, struct facts *facts,
                  struct cache_value *out)
{
    struct upstream_result res;

    if (r->kind == API_ROUTE_SECRET) {
        struct aws_sm_request q = {
            .secret_id = r->id,
            .version_id = r->version_id,
            .version_stage = r->version_stage,
        };

        aws_get_secret_value(o->aws, &q, &res, facts);
    } else {
        struct aws_ssm_request q = {
            .name = r->id,
            .version = r->version,
            .label = r->label,
            .with_decryption = r->with_decryption,
        };

        aws_get_parameter(o->aws, &q, &res, facts);
    }
    answer_from_upstream(&res, out);
    upstream_result_release(&res);
}

static void fill_upstream(void *ctx, struct cache_value *out)
{
    struct fill_ctx *f = ctx;

    api_upstream(f->opts, f->route, f->facts, out);
}

void api_fetch(const struct api_opts *o, const struct api_route *r, struct facts *facts,
               struct cache_ref *out, unsigned extra)
{
    char key[API_KEY_MAX];
    size_t keylen = api_cache_key(r, key, sizeof(key));
    uint64_t ttl_ms = r->kind == API_ROUTE_SECRET ? o->sm_ttl_ms : o->ssm_ttl_ms;
    struct fill_ctx f = {.opts = o, .route = r, .facts = facts};
    unsigned flags = extra;

    facts->service = r->kind == API_ROUTE_SECRET ? FACTS_SVC_SECRETS_MANAGER : FACTS_SVC_SSM;
    (void)snprintf(facts->name, sizeof(facts->name), "%s", r->id);
    if (!keylen) {
        /* Cannot happen: the route bounds the id and the URL; answer rather than assert. */
        struct cache_value e = {0};

        answer_error(500, "InternalFailure", "cache key too long", &e);
        cache_ref_adopt(&e, out);
        facts->outcome = FACTS_LOCAL;
        return;
    }
    if (!o->cache_enabled || ttl_ms == 0) {
        flags |= CACHE_BYPASS;
    }
    if (r->refresh) {
        flags |= CACHE_REFRESH;
    }
    facts->outcome = cache_get(o->cache, key, keylen, ttl_ms, flags, fill_upstream, &f, out);
}

/* MHD is done with a response body: cls is the cache's reference to it (the body may hold a
 * secret; the cache wipes and frees it when this was the last reference). */
static void free_secret_body(void *cls)
{
    cache_blob_release(cls);
}

static enum MHD_Result queue_static(struct MHD_Connection *conn, int status, const char *body,
                                    const char *content_type)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_route_error(struct MHD_Connection *conn, const struct api_route *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char body[API_ERROR_BODY_MAX];
    size_t n;

    if (!r->error_type) { /* 401: AWS's exact text body */
        resp = MHD_create_response_from_buffer(sizeof(API_TOKEN_BODY) - 1, (void *)API_TOKEN_BODY,
                                               MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            return MHD_NO;
        }
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
        (void)MHD_add_response_header(resp, "x-amzn-errortype", "AccessDeniedException");
    } else {
        n = api_error_json(r->error_type, r->message, body, sizeof(body));
        resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
        if (!resp) {
            return MHD_NO;
        }
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (r->status == 405) {
            (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
        }
    }
    ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Hands the value's body to MHD without copying it, with the reference: MHD releases it once the
 * answer is sent (the value stays valid that long even if the cache drops it meanwhile). */
static enum MHD_Result queue_value(struct MHD_Connection *conn, struct cache_ref *v,
                                   const char *content_type)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    /* MHD only reads a buffer it is given with a free callback; the cast drops const for its
     * void * parameter. */
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        v->len, (void *)(uintptr_t)v->body, free_secret_body, v->blob);
    if (!resp) {
        cache_ref_release(v);
        return MHD_NO;
    }
    v->blob = NULL; /* MHD holds the reference now */
    v->body = NULL;
    v->len = 0;
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (v->status == 429) {
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, API_RETRY_AFTER_S);
    }
    ret = MHD_queue_response(conn, (unsigned)v->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A value's shared response is destroyed with the value (cache.h, attachment).  This drops the
 * reference its maker holds; MHD counts one more for each connection it is queued on
 * (MHD_queue_response takes one, and MHD drops it once that request is over), so a response
 * still being sent is freed only when the last of them is done. */
static void destroy_shared(void *resp)
{
    MHD_destroy_response(resp);
}

/* The one response of a value's plain answer (200, unshaped): made by the first request that
 * needs it, kept with the value and queued on every connection answered with it, which saves a
 * response and its header per hit.  Its body is the value's own, PERSISTENT (MHD never frees or
 * writes it): each request that queues it holds a reference to the value until MHD is done with
 * that request (struct conn's held), and the value, so the body, outlives every one of them.
 * NULL if it cannot be made. */
static struct MHD_Response *shared_response(const struct cache_ref *v)
{
    struct MHD_Response *resp = cache_ref_attachment(v);
    struct MHD_Response *won;

    if (resp) {
        return resp;
    }
    /* MHD only reads a PERSISTENT buffer; the cast drops const for its void * parameter. */
    resp =
        MHD_create_response_from_buffer(v->len, (void *)(uintptr_t)v->body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return NULL;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, SHAPE_JSON) != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    won = cache_ref_attach(v, resp, destroy_shared);
    if (won != resp) {
        /* Another thread attached first (or nothing could be attached): its response serves. */
        MHD_destroy_response(resp);
    }
    return won;
}

/* The server: libmicrohttpd's epoll thread pool (API_WORKERS threads per listening address).
 * A pool thread never blocks: a hit is answered where it is read; a request that must wait
 * (upstream, a flight for the same key) is suspended and handed to a fetch thread, which
 * resumes it with the value.  A sweeper closes connections that hold a slot without sending:
 * a request head not complete API_HEAD_DEADLINE_MS after its request line (slow-loris), or a
 * connection without any request line API_IDLE_DEADLINE_MS after it opened or last answered.
 * Connections over STASH_MAX_INBOUND_CONNECTIONS are answered 429 (/ping still 200) and
 * closed, not reset; past what the file-descriptor limit allows MHD refuses them itself. */

#define API_HEAD_DEADLINE_MS 10000u
#define API_IDLE_DEADLINE_MS ((uint64_t)API_CONN_TIMEOUT_S * 1000u)
#define API_SWEEP_MS         250
#define API_FETCHERS_MAX     128 /* fetch threads at most; a request beyond them queues */
#define API_FD_RESERVE       64u /* descriptors kept for upstream sockets, telemetry, logs */
#define API_LIMIT_RECHECK    32u /* connections looked at for a closed peer when over the limit */

enum conn_stage {
    CONN_IDLE = 0, /* no request line yet (new, or between keep-alive requests) */
    CONN_HEAD,     /* request line in, headers not complete */
    CONN_BUSY,     /* head complete: being answered (maybe suspended) */
};

struct job;

/* One per connection (MHD's socket context), from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED, and
 * listed in api.conns for the sweeper.  MHD calls back for a connection on one pool thread at a
 * time; stage and since are also read by the sweeper (atomics); prev/next and fd under
 * api.conns_mu. */
struct conn {
    struct conn *prev, *next;
    int fd;
    int over;                  /* opened over the limit: every request but /ping gets 429 */
    atomic_int stage;          /* enum conn_stage */
    _Atomic uint64_t since_ms; /* when the stage began */
    const char *raw_uri;       /* the request's URI as MHD read it, before any decoding */
    size_t raw_len;            /* its length up to the first NUL byte */
    uint64_t start_ns;         /* when the request's headers were in */
    int started;               /* on_request has seen this request's head */
    int counted;               /* counted in api.in_flight until on_completed */
    int too_many;              /* more query arguments than API_MAX_ARGS: the query was emptied */
    int nul_byte;              /* the path or a query argument decoded to a NUL byte (%00) */
    struct job *job;           /* the request waits for a fetch thread (suspended) */
    struct cache_blob *held;   /* the value whose shared response is queued, until on_completed */
};

/* A request that waits: routed on the pool thread, fetched on a fetch thread.  Or a
 * refresh-ahead (ahead set, no connection): a hit claimed its key's refresh and was answered at
 * once; the refresh runs here, on a fetch thread, as a pool thread must never wait on upstream. */
/* A batch request's per-id answers and facts (extension/batch.h). */
struct batch_job {
    struct cache_ref refs[API_BATCH_MAX];
    struct facts facts[API_BATCH_MAX];
};

struct job {
    struct job *next;
    struct api *a;
    struct MHD_Connection *mc; /* NULL for a refresh-ahead */
    int ahead;
    struct batch_job *batch; /* a batch route's; NULL otherwise */
    struct api_route r; /* a request's: points into MHD's copy of the request, which lives while
                         * suspended; a refresh-ahead's: into strs, as its request is gone */
    struct facts facts;
    struct cache_ref v;
    char strs[]; /* a refresh-ahead's copies of the route's strings */
};

struct api {
    struct api_opts opts;
    struct MHD_Daemon *d4;
    struct MHD_Daemon *d6;
    unsigned limit;        /* connections served at once (STASH_MAX_INBOUND_CONNECTIONS) */
    atomic_uint in_flight; /* requests whose head is in and whose answer is not yet sent */

    pthread_mutex_t conns_mu;
    struct conn *conns;
    unsigned nconns;

    pthread_mutex_t jobs_mu;
    pthread_cond_t jobs_cv; /* a job queued, or stopping */
    struct job *jobs_head, *jobs_tail;
    pthread_t fetchers[API_FETCHERS_MAX];
    unsigned nfetchers;
    unsigned idle_fetchers;
    int stopping; /* under jobs_mu: no job is taken any more (api_stop) */

    pthread_t sweeper;
    int sweeper_started;
    int sweep_stop;          /* under conns_mu */
    pthread_cond_t sweep_cv; /* sweep_stop set */
};

static _Atomic uint64_t s_limit_warned_ms;

/* At most one WARN per 10 s: under a flood every connection would say it again. */
static void warn_limit(unsigned limit)
{
    uint64_t now = clock_mono_ms();
    uint64_t last = atomic_load(&s_limit_warned_ms);

    if ((last == 0 || now - last >= 10000) &&
        atomic_compare_exchange_strong(&s_limit_warned_ms, &last, now)) {
        LOG_WARN("api",
                 "connection over STASH_MAX_INBOUND_CONNECTIONS (%u) answered 429 (raise it, or "
                 "have callers reuse connections)",
                 limit);
    }
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

static void conn_stage(struct conn *c, enum conn_stage st)
{
    atomic_store(&c->since_ms, clock_mono_ms());
    atomic_store(&c->stage, (int)st);
}

/* Whether an idle connection's peer has closed it (it is only waiting for MHD to notice).
 * Called with conns_mu held, which keeps fd open: MHD notifies _CLOSED before it closes. */
static int conn_peer_gone(const struct conn *c)
{
    char b;

    return atomic_load(&c->stage) == CONN_IDLE && recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Called once per request with its raw URI, before MHD splits and decodes the query.  Its
 * return value is on_request's first *con_cls: the connection's state.
 * - More than API_MAX_ARGS arguments: the query is emptied here, in MHD's own buffer (the URI
 *   is MHD's writable copy of the request line; it decodes it in place just after), so MHD
 *   never stores them: thousands of arguments would overflow its per-connection memory and it
 *   would close the connection with no status.  on_request answers 413.
 * - raw_len keeps where the first NUL byte is: a raw NUL cuts every string MHD hands on, so
 *   "hot\0/../k001" would be read as "hot".  on_request compares it with where the request
 *   line's HTTP version starts. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    struct conn *c = conn_of(mc);
    const char *q;
    size_t nargs = 0;

    (void)cls;
    if (!c) {
        return NULL;
    }
    conn_stage(c, CONN_HEAD);
    c->raw_uri = uri;
    c->raw_len = strlen(uri);
    c->started = 0;
    c->too_many = 0;
    c->nul_byte = 0;
    q = strchr(uri, '?');
    if (q) {
        nargs = 1;
        for (const char *p = q + 1; *p; p++) {
            nargs += *p == '&';
        }
        if (nargs > API_MAX_ARGS) {
            c->too_many = 1;
            /* MHD found the '?' before this call and parses from the byte after it: an empty
             * string there is a query without arguments. */
            *(char *)(uintptr_t)(q + 1) = '\0';
        }
    }
    return c;
}

/* Whether the request line held a raw NUL byte inside its URI.  MHD keeps the request line in
 * its read buffer and ends the URI by overwriting the space before the version with a NUL, so
 * a URI without a NUL byte ends exactly one byte before the version.  A version anywhere else
 * (some other layout) proves nothing and is not taken as a NUL. */
static int raw_nul(const struct conn *c, const char *version)
{
    uintptr_t u = (uintptr_t)c->raw_uri;
    uintptr_t v = (uintptr_t)version;

    return c->raw_uri && version && v > u + c->raw_len + 1 && v - u <= (uintptr_t)API_MEMORY_LIMIT;
}

/* MHD's own %XX decoding, plus a note when it produced a NUL: MHD hands strings on as
 * NUL-terminated, so "a%00b" would silently become "a". */
static size_t unescape(void *cls, struct MHD_Connection *mc, char *s)
{
    size_t n = MHD_http_unescape(s);
    struct conn *c;

    (void)cls;
    if (memchr(s, '\0', n) && (c = conn_of(mc)) != NULL) {
        c->nul_byte = 1;
    }
    return n;
}

static enum MHD_Result queue_too_many(struct MHD_Connection *mc)
{
    static const char body[] =
        "{\"__type\":\"TooManyRequestsException\",\"message\":\"too many connections to the "
        "local API (STASH_MAX_INBOUND_CONNECTIONS); retry, or reuse connections\"}";
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, API_RETRY_AFTER_S);
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(mc, 429, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Fills *req from MHD's view of the request; args and headers are the caller's arrays. */
static void read_request(struct MHD_Connection *mc, const struct conn *c, const char *url,
                         const char *method, const char *version, struct api_kv *args,
                         struct api_kv *headers, struct api_request *req)
{
    struct collect ca = {.kv = args, .max = API_MAX_ARGS};
    struct collect ch = {.kv = headers, .max = API_MAX_HEADERS};

    (void)MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, collect_kv, &ca);
    (void)MHD_get_connection_values(mc, MHD_HEADER_KIND, collect_kv, &ch);
    *req = (struct api_request){
        .method = method,
        .path = url,
        .args = args,
        .nargs = ca.n,
        .headers = headers,
        .nheaders = ch.n,
        .url_bytes = strlen(url) + ca.bytes,
        .header_bytes = ch.bytes,
        .too_many = ca.too_many || ch.too_many || c->too_many,
        .nul_byte = c->nul_byte || raw_nul(c, version),
    };
}

/* The request's facts go to on_facts once it is answered. */
static void report(const struct api *a, struct facts *facts, uint64_t start_ns)
{
    facts->latency_ms = clock_ms_between(start_ns, clock_mono_ns());
    facts->ncalls_recorded = facts->ncalls < FACTS_MAX_CALLS ? facts->ncalls : FACTS_MAX_CALLS;
    if (a->opts.on_facts) {
        a->opts.on_facts(a->opts.facts_ctx, facts);
    }
}

static void *fetcher_main(void *arg);
static void run_batch(struct api *a, struct job *j);
static void run_refresh(struct api *a, struct job *j);

/* Makes sure a fetch thread will take a job pushed now: starts one more if none is idle (up to
 * the cap).  Returns 0 when there is no fetch thread at all and none can be started.  Called with
 * jobs_mu held. */
static int jobs_ready(struct api *a)
{
    if (a->idle_fetchers == 0 && a->nfetchers < API_FETCHERS_MAX) {
        if (pthread_create(&a->fetchers[a->nfetchers], NULL, fetcher_main, a) == 0) {
            a->nfetchers++;
        } else {
            LOG_WARN("api", "cannot start a fetch thread (%u running)", a->nfetchers);
        }
    }
    return a->nfetchers > 0;
}

/* Queues a job for the fetch threads (after jobs_ready).  Called with jobs_mu held. */
static void jobs_push(struct api *a, struct job *j)
{
    j->next = NULL;
    if (a->jobs_tail) {
        a->jobs_tail->next = j;
    } else {
        a->jobs_head = j;
    }
    a->jobs_tail = j;
    pthread_cond_signal(&a->jobs_cv);
}

/* A fetch thread: takes jobs until stopping and none is left; each job's connection is resumed
 * once its value is in (MHD then calls on_request again, which answers). */
static void *fetcher_main(void *arg)
{
    struct api *a = arg;

    pthread_mutex_lock(&a->jobs_mu);
    for (;;) {
        struct job *j = a->jobs_head;

        if (!j) {
            if (a->stopping) {
                break;
            }
            a->idle_fetchers++;
            pthread_cond_wait(&a->jobs_cv, &a->jobs_mu);
            a->idle_fetchers--;
            continue;
        }
        a->jobs_head = j->next;
        if (!a->jobs_head) {
            a->jobs_tail = NULL;
        }
        if (j->ahead) {
            /* Stopping: nobody will read the refreshed value. */
            int skip = a->stopping;

            pthread_mutex_unlock(&a->jobs_mu);
            if (!skip) {
                run_refresh(a, j);
            }
            free(j);
            pthread_mutex_lock(&a->jobs_mu);
            continue;
        }
        pthread_mutex_unlock(&a->jobs_mu);
        if (j->batch) {
            run_batch(a, j);
        } else {
            api_fetch(&a->opts, &j->r, &j->facts, &j->v, 0);
        }
        MHD_resume_connection(j->mc);
        pthread_mutex_lock(&a->jobs_mu);
    }
    pthread_mutex_unlock(&a->jobs_mu);
    return NULL;
}

/* Copies s (if set) to *at and moves *at past it; returns the copy. */
static const char *strs_put(char **at, const char *s)
{
    char *p = *at;
    size_t n;

    if (!s) {
        return NULL;
    }
    n = strlen(s) + 1;
    memcpy(p, s, n);
    *at += n;
    return p;
}

/* Queues the refresh-ahead a hit on r claimed (cache.h); returns 1 if it was queued, 0 when no
 * fetch thread can take it (stopping, none can start): the entry then expires as it would have. */
static unsigned start_refresh(struct api *a, const struct api_route *r, const struct facts *facts)
{
    const char *parts[] = {r->id, r->version_id, r->version_stage, r->version, r->label};
    size_t total = 0;
    struct job *j;
    char *at;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i] ? strlen(parts[i]) + 1 : 0;
    }
    j = xcalloc(1, sizeof(*j) + total);
    j->a = a;
    j->ahead = 1;
    j->r = *r;
    at = j->strs;
    j->r.id = strs_put(&at, r->id);
    j->r.version_id = strs_put(&at, r->version_id);
    j->r.version_stage = strs_put(&at, r->version_stage);
    j->r.version = strs_put(&at, r->version);
    j->r.label = strs_put(&at, r->label);
    j->r.request_id = NULL;
    memset(&j->r.shape, 0, sizeof(j->r.shape)); /* its jsonKey is the request's; not needed */
    (void)snprintf(j->facts.request_id, sizeof(j->facts.request_id), "%s", facts->request_id);
    pthread_mutex_lock(&a->jobs_mu);
    if (a->stopping || !jobs_ready(a)) {
        pthread_mutex_unlock(&a->jobs_mu);
        free(j);
        return 0;
    }
    jobs_push(a, j);
    pthread_mutex_unlock(&a->jobs_mu);
    return 1;
}

/* Runs a refresh-ahead on a fetch thread.  Its upstream calls are reported (FACTS_AHEAD: not a
 * request, so counted as calls only), to the invocation of the request that started it; when
 * the cache found nothing to do (another fill had the key, or the entry went) nothing is. */
static void run_refresh(struct api *a, struct job *j)
{
    uint64_t start_ns = clock_mono_ns();

    api_fetch(&a->opts, &j->r, &j->facts, &j->v, CACHE_AHEAD_RUN);
    cache_ref_release(&j->v);
    if (j->facts.ncalls > 0) {
        j->facts.outcome = FACTS_AHEAD;
        report(a, &j->facts, start_ns);
    }
}

/* The batch document for the answers in b (extension/batch.h) into *v.  A parameter that failed
 * otherwise than "not found" has no place in GetParameters' shape: its own answer is given (it
 * is what the whole call would have answered). */
static void batch_answer(const struct job *j, struct batch_job *b, struct cache_ref *v)
{
    int ssm = j->r.kind == API_ROUTE_PARAMETER_BATCH;
    struct batch_item items[API_BATCH_MAX];
    struct cache_value own = {0};
    size_t cap = 4096;
    struct buf out;
    enum stash_err rc;

    for (size_t i = 0; i < j->r.nids; i++) {
        items[i].id = j->r.ids[i];
        items[i].status = b->refs[i].status;
        items[i].body = b->refs[i].body;
        items[i].len = b->refs[i].len;
        cap += b->refs[i].len + strlen(j->r.ids[i]) * 6 + (size_t)UPSTREAM_MESSAGE_MAX * 12;
    }
    buf_init(&out, cap);
    rc = ssm ? batch_render_parameters(items, j->r.nids, &out)
             : batch_render_secrets(items, j->r.nids, &out);
    if (rc == STASH_OK) {
        own.kind = CACHE_VALUE;
        own.status = 200;
        own.body = buf_detach(&out, &own.len);
    } else {
        for (size_t i = 0; ssm && i < j->r.nids; i++) {
            if (b->refs[i].status != 200) {
                *v = b->refs[i]; /* moved: the batch's answer is this one */
                memset(&b->refs[i], 0, sizeof(b->refs[i]));
                buf_release_secret(&out);
                return;
            }
        }
        answer_error(500, "InternalFailure", "the batch answer could not be built", &own);
    }
    buf_release_secret(&out);
    cache_ref_adopt(&own, v);
}

/* Gets a batch route's ids through the cache (one upstream call per region for those it
 * fetches) and builds its answer into j->v; blocks for upstream. */
static void run_batch(struct api *a, struct job *j)
{
    struct batch_job *b = j->batch;
    struct batch_get g = {
        .opts = &a->opts,
        .ssm = j->r.kind == API_ROUTE_PARAMETER_BATCH,
        .with_decryption = j->r.with_decryption,
        .refresh = j->r.refresh,
        .ids = j->r.ids,
        .n = j->r.nids,
        .refs = b->refs,
        .facts = b->facts,
    };

    for (size_t i = 0; i < j->r.nids; i++) {
        (void)snprintf(b->facts[i].request_id, sizeof(b->facts[i].request_id), "%s",
                       j->facts.request_id);
    }
    batch_get(&g);
    batch_answer(j, b, &j->v);
}

/* Answers a batch job and reports each id's facts (one request per id, as a single GET of each
 * would be counted); frees the job's batch part. */
static enum MHD_Result answer_batch(struct api *a, struct MHD_Connection *mc, struct conn *c,
                                    struct job *j)
{
    enum MHD_Result ret = queue_value(mc, &j->v, SHAPE_JSON);

    for (size_t i = 0; i < j->r.nids; i++) {
        report(a, &j->batch->facts[i], c->start_ns);
        cache_ref_release(&j->batch->refs[i]);
    }
    free(j->batch);
    j->batch = NULL;
    return ret;
}

/* Shapes the answer in *v as r asks (extension/shape.h) and returns its Content-Type.  Unshaped,
 * the value goes out as it is, shared with the cache.  Shaping works on a copy of it (wiped by
 * shape_value or with v), which then replaces v's reference. */
static const char *shape_ref(const struct api_route *r, struct cache_ref *v)
{
    struct cache_value own = {0};
    const char *ctype;

    if (!shape_wanted(&r->shape) || v->kind != CACHE_VALUE || !v->blob) {
        return SHAPE_JSON;
    }
    own.kind = v->kind;
    own.status = v->status;
    own.len = v->len;
    own.body = xmemdup(v->body, v->len);
    cache_ref_release(v);
    ctype = shape_value(r->kind == API_ROUTE_PARAMETER ? SHAPE_PARAMETER : SHAPE_SECRET, &r->shape,
                        &own);
    cache_ref_adopt(&own, v);
    return ctype;
}

/* Answers a routed request whose value is in v (the cache's or a fetch's), shaped as r asks. */
static enum MHD_Result answer_value(struct api *a, struct MHD_Connection *mc, struct conn *c,
                                    const struct api_route *r, struct facts *facts,
                                    struct cache_ref *v)
{
    enum MHD_Result ret;
    const char *ctype = shape_ref(r, v);
    struct MHD_Response *shared = NULL;

    facts->status = v->status;
    if (!shape_wanted(&r->shape) && v->kind == CACHE_VALUE && v->status == 200 && v->blob) {
        shared = shared_response(v);
    }
    if (shared) {
        /* The request keeps its reference to the value until MHD is done with it. */
        cache_blob_release(c->held); /* NULL: on_completed released the last request's */
        c->held = v->blob;
        v->blob = NULL;
        v->body = NULL;
        v->len = 0;
        ret = MHD_queue_response(mc, 200, shared);
    } else {
        ret = queue_value(mc, v, ctype);
    }
    report(a, facts, c->start_ns);
    return ret;
}

/* A routed request that is not a fresh hit: suspended and handed to a fetch thread, which resumes
 * it with the value (on_request then answers).  While stopping, or with no fetch thread at all,
 * it is answered here instead. */
static enum MHD_Result wait_for_value(struct api *a, struct MHD_Connection *mc, struct conn *c,
                                      const struct api_route *r, struct facts *facts)
{
    struct cache_ref v = {0};
    struct job *j = xcalloc(1, sizeof(*j));

    j->a = a;
    j->mc = mc;
    j->r = *r;
    if (r->kind == API_ROUTE_SECRET_BATCH || r->kind == API_ROUTE_PARAMETER_BATCH) {
        j->batch = xcalloc(1, sizeof(*j->batch));
    }
    (void)snprintf(j->facts.request_id, sizeof(j->facts.request_id), "%s", facts->request_id);
    pthread_mutex_lock(&a->jobs_mu);
    if (a->stopping) {
        /* api_stop is past its drain: nothing may be suspended any more. */
        struct cache_value e = {0};

        pthread_mutex_unlock(&a->jobs_mu);
        free(j->batch);
        free(j);
        answer_error(503, "ServiceUnavailable", "stash is shutting down", &e);
        cache_ref_adopt(&e, &v);
        return answer_value(a, mc, c, r, facts, &v);
    }
    if (!jobs_ready(a)) {
        /* No thread to hand it to: fetch here, blocking this pool thread, rather than suspend a
         * request nothing would resume. */
        pthread_mutex_unlock(&a->jobs_mu);
        if (j->batch) {
            enum MHD_Result ret;

            run_batch(a, j);
            ret = answer_batch(a, mc, c, j);
            free(j);
            return ret;
        }
        free(j);
        api_fetch(&a->opts, r, facts, &v, 0);
        return answer_value(a, mc, c, r, facts, &v);
    }
    /* Suspended before it is queued: a fetch thread may resume it at once. */
    c->job = j;
    MHD_suspend_connection(mc);
    jobs_push(a, j);
    pthread_mutex_unlock(&a->jobs_mu);
    return MHD_YES;
}

/* A secret, a parameter or a batch of them: a fresh hit is answered on this thread (and may
 * start a refresh-ahead); anything else waits for a fetch thread, a batch always (its hits are
 * answered there with its misses). */
static enum MHD_Result answer_routed(struct api *a, struct MHD_Connection *mc, struct conn *c,
                                     const struct api_route *r, struct facts *facts)
{
    struct cache_ref v = {0};

    if (r->kind == API_ROUTE_SECRET_BATCH || r->kind == API_ROUTE_PARAMETER_BATCH) {
        return wait_for_value(a, mc, c, r, facts);
    }
    api_fetch(&a->opts, r, facts, &v, CACHE_PEEK | (a->opts.refresh_ahead ? CACHE_AHEAD : 0));
    if (v.kind != CACHE_VALUE) {
        return wait_for_value(a, mc, c, r, facts);
    }
    if (v.refresh_due) {
        facts->refreshes = start_refresh(a, r, facts);
    }
    return answer_value(a, mc, c, r, facts, &v);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct api *a = cls;
    struct conn *c = *con_cls;
    struct api_kv args[API_MAX_ARGS];
    struct api_kv headers[API_MAX_HEADERS];
    struct api_request req;
    struct api_route r;
    struct facts facts;
    enum MHD_Result ret;

    (void)upload_data;
    if (!c) {
        /* No state: every connection gets one when it starts, so this cannot happen. */
        return MHD_NO;
    }
    if (c->job) {
        /* Resumed: the fetch thread has the value. */
        struct job *j = c->job;

        c->job = NULL;
        ret =
            j->batch ? answer_batch(a, mc, c, j) : answer_value(a, mc, c, &j->r, &j->facts, &j->v);
        free(j);
        return ret;
    }
    /* MHD calls twice for a request without a body: headers first, then "body complete".
     * Answering on the first call makes MHD close the connection (it cannot tell the body was
     * read), which would cost every keep-alive client a new connection per request. */
    if (!c->started) {
        c->started = 1;
        c->start_ns = clock_mono_ns();
        c->counted = 1;
        atomic_fetch_add(&a->in_flight, 1);
        conn_stage(c, CONN_BUSY);
        if (strcmp(method, "GET") == 0) {
            return MHD_YES;
        }
        /* Anything else is refused at once, without reading its body (MHD then closes). */
    } else if (*upload_data_size) {
        *upload_data_size = 0; /* a GET with a body: discarded */
        return MHD_YES;
    }
    read_request(mc, c, url, method, version, args, headers, &req);
    api_route(&req, a->opts.token, a->opts.token_len, &r);
    if (c->over && r.kind != API_ROUTE_PING) {
        warn_limit(a->limit);
        return queue_too_many(mc);
    }

    memset(&facts, 0, sizeof(facts));
    facts.outcome = FACTS_LOCAL;
    if (r.request_id) {
        (void)snprintf(facts.request_id, sizeof(facts.request_id), "%s", r.request_id);
    }
    switch (r.kind) {
    case API_ROUTE_PING:
        facts.status = 200;
        ret = queue_static(mc, 200, "healthy", "text/plain");
        break;
    case API_ROUTE_SECRET:
    case API_ROUTE_PARAMETER:
    case API_ROUTE_SECRET_BATCH:
    case API_ROUTE_PARAMETER_BATCH:
        return answer_routed(a, mc, c, &r, &facts);
    case API_ROUTE_ERROR:
    default:
        facts.status = r.status;
        ret = queue_route_error(mc, &r);
        break;
    }
    report(a, &facts, c->start_ns);
    return ret;
}

/* A request ended: its answer was sent, or its connection failed.  api_stop waits for this. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api *a = cls;
    struct conn *c = *con_cls;

    (void)mc;
    (void)toe;
    if (!c) {
        return;
    }
    if (c->counted) {
        c->counted = 0;
        atomic_fetch_sub(&a->in_flight, 1);
    }
    /* MHD sends nothing more of this request's answer.  If this was the value's last reference,
     * its shared response goes with it: MHD still holds this request's reference to the response
     * and drops it just after this call, so the response is freed then (not its body, which
     * PERSISTENT leaves to the value, wiped here). */
    cache_blob_release(c->held);
    c->held = NULL;
    c->raw_uri = NULL;
    conn_stage(c, CONN_IDLE);
}

/* Every accepted socket: its state, listed for the sweeper; hop limit 1, so a reply can never
 * leave this host (as the agent does); over the limit it is marked for 429. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct api *a = cls;
    struct conn *c = *socket_context;
    const union MHD_ConnectionInfo *info;
    const union MHD_ConnectionInfo *ainfo;
    int one = 1;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!c) {
            return;
        }
        pthread_mutex_lock(&a->conns_mu);
        if (c->prev) {
            c->prev->next = c->next;
        } else {
            a->conns = c->next;
        }
        if (c->next) {
            c->next->prev = c->prev;
        }
        a->nconns--;
        pthread_mutex_unlock(&a->conns_mu);
        cache_blob_release(c->held); /* NULL: on_completed came first */
        free(c);
        *socket_context = NULL;
        return;
    }
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) {
        return;
    }
    info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    ainfo = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    c = xcalloc(1, sizeof(*c));
    c->fd = info ? info->connect_fd : -1;
    conn_stage(c, CONN_IDLE);
    if (info) {
        if (ainfo && ainfo->client_addr && ainfo->client_addr->sa_family == AF_INET6) {
            (void)setsockopt(info->connect_fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &one, sizeof(one));
        } else {
            (void)setsockopt(info->connect_fd, IPPROTO_IP, IP_TTL, &one, sizeof(one));
        }
    }
    pthread_mutex_lock(&a->conns_mu);
    c->next = a->conns;
    if (a->conns) {
        a->conns->prev = c;
    }
    a->conns = c;
    a->nconns++;
    if (a->nconns > a->limit) {
        /* Connections whose peer already closed them still count until MHD notices; a
         * sequential client at the limit must not be refused for its previous connection.  The
         * most recent ones are looked at (the list is newest first), a bounded number, so a
         * flood over the limit costs a few syscalls per connection, not one per connection
         * held. */
        unsigned gone = 0;
        unsigned seen = 0;

        for (const struct conn *o = c->next; o && seen < API_LIMIT_RECHECK; o = o->next, seen++) {
            gone += conn_peer_gone(o);
        }
        c->over = a->nconns - gone > a->limit;
    }
    pthread_mutex_unlock(&a->conns_mu);
    *socket_context = c;
}

/* Closes (shutdown: MHD notices and cleans up) connections past their deadline. */
static void *sweeper_main(void *arg)
{
    struct api *a = arg;
    struct timespec ts;

    pthread_mutex_lock(&a->conns_mu);
    while (!a->sweep_stop) {
        uint64_t now = clock_mono_ms();

        for (struct conn *c = a->conns; c; c = c->next) {
            int st = atomic_load(&c->stage);
            uint64_t since = atomic_load(&c->since_ms);
            uint64_t limit = st == CONN_HEAD   ? API_HEAD_DEADLINE_MS
                             : st == CONN_IDLE ? API_IDLE_DEADLINE_MS
                                               : 0;

            if (limit && now > since && now - since > limit && c->fd >= 0) {
                (void)shutdown(c->fd, SHUT_RDWR);
                atomic_store(&c->since_ms, now); /* once per deadline, not every sweep */
            }
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += API_SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&a->sweep_cv, &a->conns_mu, &ts);
    }
    pthread_mutex_unlock(&a->conns_mu);
    return NULL;
}

/* MHD's own messages (bind failures, protocol errors), at debug: they carry no request data. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];

    (void)cls;
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    if (strstr(line, "connection limit")) {
        uint64_t now = clock_mono_ms();
        uint64_t last = atomic_load(&s_limit_warned_ms);

        if ((last == 0 || now - last >= 10000) &&
            atomic_compare_exchange_strong(&s_limit_warned_ms, &last, now)) {
            LOG_WARN("api", "connection refused: no file descriptor left for it (raise the "
                            "RLIMIT_NOFILE hard limit, or have callers reuse connections)");
        }
        return;
    }
    LOG_DEBUG("api", "microhttpd: %s", line);
}

static unsigned pool_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 2 ? 2u : n > 4 ? 4u : (unsigned)n;
}

static struct MHD_Daemon *start_daemon(struct api *a, const struct sockaddr *addr, int v6,
                                       unsigned mhd_limit)
{
    /* MHD_USE_ITC: api_stop quiesces the daemon (stops accepting) before it drains. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);

    /* The logger first: MHD prints options' complaints to stderr until it is set. */
    return MHD_start_daemon(
        flags, a->opts.port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_THREAD_POOL_SIZE, pool_threads(),
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)API_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_MEMORY_LIMIT,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, a, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        a, MHD_OPTION_END);
}

/* The soft RLIMIT_NOFILE raised to the hard one (each connection is a descriptor); returns the
 * connections that fit, with API_FD_RESERVE kept for everything else. */
static unsigned fd_room(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 1024 - API_FD_RESERVE;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1048576) {
        return 1048576;
    }
    return rl.rlim_cur > (rlim_t)2 * API_FD_RESERVE ? (unsigned)(rl.rlim_cur - API_FD_RESERVE)
                                                    : API_FD_RESERVE;
}

static void api_free(struct api *a)
{
    pthread_mutex_destroy(&a->conns_mu);
    pthread_mutex_destroy(&a->jobs_mu);
    pthread_cond_destroy(&a->jobs_cv);
    pthread_cond_destroy(&a->sweep_cv);
    free(a);
}

enum stash_err api_start(const struct api_opts *opts, struct api **out)
{
    struct api *a;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    unsigned room;
    unsigned margin;
    unsigned mhd_limit;

    *out = NULL;
    if (!opts->port || !opts->max_inbound || !opts->cache || !opts->token) {
        return STASH_EINVAL;
    }
    a = xcalloc(1, sizeof(*a));
    a->opts = *opts;
    pthread_mutex_init(&a->conns_mu, NULL);
    pthread_mutex_init(&a->jobs_mu, NULL);
    pthread_cond_init(&a->jobs_cv, NULL);
    pthread_cond_init(&a->sweep_cv, NULL);

    /* Connections up to the limit are served; a margin past it is accepted to be answered 429
     * (both addresses together share what the descriptors allow). */
    room = fd_room();
    margin = room / 16 < 16 ? 16 : room / 16;
    a->limit = opts->max_inbound;
    if (a->limit + margin > room) {
        a->limit = room > margin ? room - margin : 1;
        LOG_WARN("api",
                 "STASH_MAX_INBOUND_CONNECTIONS=%u is more than the file-descriptor limit "
                 "allows; serving at most %u connections",
                 opts->max_inbound, a->limit);
    }
    mhd_limit = a->limit + margin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(opts->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->d4 = start_daemon(a, (const struct sockaddr *)&sin, 0, mhd_limit);
    if (!a->d4) {
        LOG_ERROR("api",
                  "cannot listen on 127.0.0.1:%u (port in use? set "
                  "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT)",
                  (unsigned)opts->port);
        api_free(a);
        return STASH_EIO;
    }
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(opts->port);
    sin6.sin6_addr = in6addr_loopback;
    a->d6 = start_daemon(a, (const struct sockaddr *)&sin6, 1, mhd_limit);
    if (!a->d6) {
        LOG_DEBUG("api", "not listening on [::1]:%u (no IPv6 loopback here)", (unsigned)opts->port);
    }
    a->sweeper_started = pthread_create(&a->sweeper, NULL, sweeper_main, a) == 0;
    if (!a->sweeper_started) {
        LOG_WARN("api", "cannot start the sweeper thread: slow clients are cut off only by the "
                        "idle timeout");
    }
    LOG_INFO("api", "listening on 127.0.0.1:%u%s; at most %u connections", (unsigned)opts->port,
             a->d6 ? " and [::1]" : "", a->limit);
    *out = a;
    return STASH_OK;
}

/* Stops accepting on d; returns its listening socket (closed by the caller after the stop). */
static MHD_socket quiesce(struct MHD_Daemon *d)
{
    return d ? MHD_quiesce_daemon(d) : MHD_INVALID_SOCKET;
}

void api_stop(struct api *a)
{
    MHD_socket l4;
    MHD_socket l6;
    uint64_t end;

    if (!a) {
        return;
    }
    /* No new connection, then let every request already in answer and its answer go out:
     * stopping the daemon closes every socket at once, and a request abandoned a moment ago
     * (503) would lose its answer. */
    l6 = quiesce(a->d6);
    l4 = quiesce(a->d4);
    end = clock_mono_ms() + API_DRAIN_MS;
    while (atomic_load(&a->in_flight) > 0 && clock_mono_ms() < end) {
        struct timespec ts = {0, 2000000L};

        nanosleep(&ts, NULL);
    }
    if (atomic_load(&a->in_flight) > 0) {
        LOG_WARN("api", "stop: %u request(s) still in flight after %d ms; closing them",
                 atomic_load(&a->in_flight), API_DRAIN_MS);
    }
    /* The fetch threads finish every job they hold (each resumes its connection: MHD must not
     * be stopped with one suspended), then end. */
    pthread_mutex_lock(&a->jobs_mu);
    a->stopping = 1;
    pthread_cond_broadcast(&a->jobs_cv);
    pthread_mutex_unlock(&a->jobs_mu);
    for (unsigned i = 0; i < a->nfetchers; i++) {
        pthread_join(a->fetchers[i], NULL);
    }
    if (a->d6) {
        MHD_stop_daemon(a->d6);
    }
    if (a->d4) {
        MHD_stop_daemon(a->d4);
    }
    if (l6 != MHD_INVALID_SOCKET) {
        (void)close(l6);
    }
    if (l4 != MHD_INVALID_SOCKET) {
        (void)close(l4);
    }
    if (a->sweeper_started) {
        pthread_mutex_lock(&a->conns_mu);
        a->sweep_stop = 1;
        pthread_cond_signal(&a->sweep_cv);
        pthread_mutex_unlock(&a->conns_mu);
        pthread_join(a->sweeper, NULL);
    }
    api_free(a);
}
