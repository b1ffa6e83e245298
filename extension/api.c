/* extension/api.c: routing (pure) and the libmicrohttpd server of the local API.
 * Contract in api.h.  This file and telemetry's listener are the only users of microhttpd.h. */
#include "extension/api.h"

#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#define API_CONN_TIMEOUT_S 60          /* idle keep-alive connections are closed after this */
#define API_MEMORY_LIMIT   (64 * 1024) /* per connection; holds the request head (see 413) */
#define API_RETRY_AFTER_S  "1"
#define API_DRAIN_MS       500 /* api_stop waits this long at most for answers in flight */
#define API_ERROR_BODY_MAX (API_MESSAGE_MAX * 6 + 128) /* worst-case escaping of message */
#define API_KEY_MAX        (API_MAX_URL_BYTES + 16)

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
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = 1;
        return 1;
    }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = 0;
        return 1;
    }
    return 0;
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
    out->id = name;
    out->kind = API_ROUTE_PARAMETER;
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
    } else if (strncmp(path, "/v1/", 4) == 0) {
        route_secret(req, path + 4, "secret ID in /v1/<secretId>", out);
    } else {
        route_error(out, 404, "UnknownOperationException",
                    "no such route; stash serves GET /secretsmanager/get, "
                    "/systemsmanager/parameters/get, /v1/<secretId> and /ping");
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
    if (buf_puts(&b, "{\"__type\":\"") == STASH_OK &&
        buf_put_json_escaped(&b, type, strlen(type)) == STASH_OK &&
        buf_puts(&b, "\",\"message\":\"") == STASH_OK &&
        buf_put_json_escaped(&b, message, strlen(message)) == STASH_OK &&
        buf_puts(&b, "\"}") == STASH_OK) {
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
    const char *sel = NULL;
    char head[3] = {0, 0, 0};
    size_t at;

    if (r->kind == API_ROUTE_SECRET) {
        head[0] = 'S';
        head[1] = (char)(r->version_id ? 'i' : r->version_stage ? 's' : '-');
        sel = r->version_id ? r->version_id : r->version_stage;
    } else if (r->kind == API_ROUTE_PARAMETER) {
        head[0] = r->with_decryption ? 'D' : 'P';
        head[1] = (char)(r->version ? 'v' : r->label ? 'l' : '-');
        sel = r->version ? r->version : r->label;
    } else {
        return 0;
    }
    at = key_put(out, outlen, 0, head, 2);
    at = key_put(out, outlen, at, r->id, strlen(r->id));
    at = key_put(out, outlen, at, sel ? sel : "", sel ? strlen(sel) : 0);
    return at == SIZE_MAX ? 0 : at;
}

/* ---- the server ---- */

struct api {
    struct api_opts opts;
    struct MHD_Daemon *d4;
    struct MHD_Daemon *d6;
    atomic_uint in_flight; /* requests whose head is in and whose answer is not yet sent */
};

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

static void fill_upstream(void *ctx, struct cache_value *out)
{
    struct fill_ctx *f = ctx;
    const struct api_route *r = f->route;

    if (r->kind == API_ROUTE_SECRET) {
        struct aws_sm_request q = {
            .secret_id = r->id,
            .version_id = r->version_id,
            .version_stage = r->version_stage,
        };

        aws_get_secret_value(f->opts->aws, &q, out, f->facts);
    } else {
        struct aws_ssm_request q = {
            .name = r->id,
            .version = r->version,
            .label = r->label,
            .with_decryption = r->with_decryption,
        };

        aws_get_parameter(f->opts->aws, &q, out, f->facts);
    }
}

/* Asks the cache (and through it upstream) for a routed secret or parameter. */
static void fetch(const struct api_opts *o, const struct api_route *r, struct facts *facts,
                  struct cache_value *out)
{
    char key[API_KEY_MAX];
    size_t keylen = api_cache_key(r, key, sizeof(key));
    uint64_t ttl_ms = r->kind == API_ROUTE_SECRET ? o->sm_ttl_ms : o->ssm_ttl_ms;
    struct fill_ctx f = {.opts = o, .route = r, .facts = facts};
    unsigned flags = 0;

    facts->service = r->kind == API_ROUTE_SECRET ? FACTS_SVC_SECRETS_MANAGER : FACTS_SVC_SSM;
    (void)snprintf(facts->name, sizeof(facts->name), "%s", r->id);
    if (!keylen) {
        /* Cannot happen: the route bounds the id and the URL; answer rather than assert. */
        aws_error_value(500, "InternalFailure", "cache key too long", out);
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

/* MHD frees a response body through this: the body may hold a secret.  The body came from
 * malloc (the cache's copy), so its whole allocation is wiped, not only the JSON text. */
static void free_secret_body(void *cls)
{
    if (cls) {
        xfree_secret(cls, malloc_usable_size(cls));
    }
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

/* Hands the value's body to MHD, which wipes and frees it after sending. */
static enum MHD_Result queue_value(struct MHD_Connection *conn, struct cache_value *v)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer_with_free_callback_cls(v->len, v->body, free_secret_body,
                                                                  v->body);
    if (!resp) {
        cache_value_release(v);
        return MHD_NO;
    }
    v->body = NULL; /* MHD owns it now */
    v->len = 0;
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (v->status == 429) {
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, API_RETRY_AFTER_S);
    }
    ret = MHD_queue_response(conn, (unsigned)v->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* One per connection (MHD's socket context), from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED.
 * Every callback for a connection runs on the thread that serves it, one at a time, so the
 * fields need no lock. */
struct conn {
    const char *raw_uri; /* the request's URI as MHD read it, before any decoding */
    size_t raw_len;      /* its length up to the first NUL byte */
    uint64_t start_ns;   /* when the request's headers were in */
    int busy;            /* the headers are in: on_request's second call answers */
    int counted;         /* counted in api.in_flight until on_completed */
    int too_many;        /* more query arguments than API_MAX_ARGS: the query was cut off */
    int nul_byte;        /* the path or a query argument decoded to a NUL byte (%00) */
};

static struct conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
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
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct conn *c = conn_of(conn);
    const char *q;
    size_t nargs = 0;

    (void)cls;
    if (!c) {
        return NULL;
    }
    c->raw_uri = uri;
    c->raw_len = strlen(uri);
    c->busy = 0;
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

    return c->raw_uri && version && v > u + c->raw_len + 1 && v - u <= API_MEMORY_LIMIT;
}

/* MHD's own %XX decoding, plus a note when it produced a NUL: MHD hands strings on as
 * NUL-terminated, so "a%00b" would silently become "a". */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    size_t n = MHD_http_unescape(s);
    struct conn *c;

    (void)cls;
    if (memchr(s, '\0', n) && (c = conn_of(conn)) != NULL) {
        c->nul_byte = 1;
    }
    return n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct api *a = cls;
    uint64_t start_ns;
    struct api_kv args[API_MAX_ARGS];
    struct api_kv headers[API_MAX_HEADERS];
    struct collect ca = {.kv = args, .max = API_MAX_ARGS};
    struct collect ch = {.kv = headers, .max = API_MAX_HEADERS};
    struct api_request req;
    struct api_route r;
    struct facts facts;
    enum MHD_Result ret;

    struct conn *c = *con_cls;
    struct conn none = {0};

    (void)upload_data;
    if (!c) {
        c = &none; /* no state (cannot happen: every connection gets one when it starts) */
        none.start_ns = clock_mono_ns();
    }
    /* MHD calls twice for a request without a body: headers first, then "body complete".
     * Answering on the first call makes MHD close the connection (it cannot tell the body was
     * read), which would cost every keep-alive client a new connection per request. */
    if (c != &none && !c->busy) {
        c->busy = 1;
        c->start_ns = clock_mono_ns();
        c->counted = 1;
        atomic_fetch_add(&a->in_flight, 1);
        if (strcmp(method, "GET") == 0) {
            return MHD_YES;
        }
        /* Anything else is refused at once, without reading its body (MHD then closes). */
    } else if (*upload_data_size) {
        *upload_data_size = 0; /* a GET with a body: discarded */
        return MHD_YES;
    }
    start_ns = c->start_ns;
    (void)MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, &ca);
    (void)MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_kv, &ch);
    req = (struct api_request){
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
    api_route(&req, a->opts.token, a->opts.token_len, &r);

    memset(&facts, 0, sizeof(facts));
    facts.outcome = FACTS_LOCAL;
    if (r.request_id) {
        (void)snprintf(facts.request_id, sizeof(facts.request_id), "%s", r.request_id);
    }
    switch (r.kind) {
    case API_ROUTE_PING:
        facts.status = 200;
        ret = queue_static(conn, 200, "healthy", "text/plain");
        break;
    case API_ROUTE_SECRET:
    case API_ROUTE_PARAMETER: {
        struct cache_value v = {0};

        fetch(&a->opts, &r, &facts, &v);
        facts.status = v.status;
        ret = queue_value(conn, &v);
        break;
    }
    case API_ROUTE_ERROR:
    default:
        facts.status = r.status;
        ret = queue_route_error(conn, &r);
        break;
    }
    facts.latency_ms = clock_ms_between(start_ns, clock_mono_ns());
    facts.ncalls_recorded = facts.ncalls < FACTS_MAX_CALLS ? facts.ncalls : FACTS_MAX_CALLS;
    if (a->opts.on_facts) {
        a->opts.on_facts(a->opts.facts_ctx, &facts);
    }
    return ret;
}

int api_prefetch(const struct api_opts *opts, enum facts_service service, const char *id)
{
    struct api_route r;
    struct facts facts;
    struct cache_value v = {0};
    uint64_t start_ns = clock_mono_ns();
    int status;

    memset(&r, 0, sizeof(r));
    memset(&facts, 0, sizeof(facts));
    r.kind = service == FACTS_SVC_SSM ? API_ROUTE_PARAMETER : API_ROUTE_SECRET;
    r.id = id;
    r.with_decryption = 1;
    if (!*id || strlen(id) > API_MAX_ID_BYTES) {
        return 400;
    }
    fetch(opts, &r, &facts, &v);
    status = v.status;
    cache_value_release(&v);
    /* Reported as a request is: its upstream calls are real ones, and like every request made
     * during init they belong to the init record. */
    facts.status = status;
    facts.latency_ms = clock_ms_between(start_ns, clock_mono_ns());
    facts.ncalls_recorded = facts.ncalls < FACTS_MAX_CALLS ? facts.ncalls : FACTS_MAX_CALLS;
    if (opts->on_facts) {
        opts->on_facts(opts->facts_ctx, &facts);
    }
    return status;
}

/* A request ended: its answer was sent, or its connection failed.  api_stop waits for this. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api *a = cls;
    struct conn *c = *con_cls;

    (void)conn;
    (void)toe;
    if (c && c->counted) {
        c->counted = 0;
        atomic_fetch_sub(&a->in_flight, 1);
    }
}

/* Hop limit 1 on every accepted socket: a reply can never leave this host (as the agent does). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    const union MHD_ConnectionInfo *info;
    int one = 1;
    int v6 = cls != NULL;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
        return;
    }
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) {
        return;
    }
    *socket_context = xcalloc(1, sizeof(struct conn));
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) {
        return;
    }
    if (v6) {
        (void)setsockopt(info->connect_fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &one, sizeof(one));
    } else {
        (void)setsockopt(info->connect_fd, IPPROTO_IP, IP_TTL, &one, sizeof(one));
    }
}

static _Atomic uint64_t s_limit_warned_ms;

/* MHD's own messages (bind failures, protocol errors), at debug: they carry no request data. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];

    (void)cls;
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    if (strstr(line, "connection limit")) {
        /* The one message a user must see: callers get a reset.  At most one line per 10 s,
         * since every refused connection says it again. */
        uint64_t now = clock_mono_ms();
        uint64_t last = atomic_load(&s_limit_warned_ms);

        if ((last == 0 || now - last >= 10000) &&
            atomic_compare_exchange_strong(&s_limit_warned_ms, &last, now)) {
            LOG_WARN("api", "connection refused: STASH_MAX_INBOUND_CONNECTIONS reached (raise it, "
                            "or have callers reuse connections)");
        }
        return;
    }
    LOG_DEBUG("api", "microhttpd: %s", line);
}

static struct MHD_Daemon *start_daemon(struct api *a, const struct sockaddr *addr, int v6)
{
    /* MHD_USE_ITC: api_stop quiesces the daemon (stops accepting) before it drains. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);

    /* The logger first: MHD prints options' complaints to stderr until it is set. */
    return MHD_start_daemon(
        flags, a->opts.port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->opts.max_inbound,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_MEMORY_LIMIT, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, v6 ? (void *)a : NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_END);
}

enum stash_err api_start(const struct api_opts *opts, struct api **out)
{
    struct api *a;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    *out = NULL;
    if (!opts->port || !opts->max_inbound || !opts->cache || !opts->token) {
        return STASH_EINVAL;
    }
    a = xcalloc(1, sizeof(*a));
    a->opts = *opts;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(opts->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->d4 = start_daemon(a, (const struct sockaddr *)&sin, 0);
    if (!a->d4) {
        LOG_ERROR("api",
                  "cannot listen on 127.0.0.1:%u (port in use? set "
                  "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT)",
                  (unsigned)opts->port);
        free(a);
        return STASH_EIO;
    }
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(opts->port);
    sin6.sin6_addr = in6addr_loopback;
    a->d6 = start_daemon(a, (const struct sockaddr *)&sin6, 1);
    if (!a->d6) {
        LOG_DEBUG("api", "not listening on [::1]:%u (no IPv6 loopback here)", (unsigned)opts->port);
    }
    LOG_INFO("api", "listening on 127.0.0.1:%u%s", (unsigned)opts->port, a->d6 ? " and [::1]" : "");
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
        struct timespec ts = {0, 2 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    if (atomic_load(&a->in_flight) > 0) {
        LOG_WARN("api", "stop: %u request(s) still in flight after %d ms; closing them",
                 atomic_load(&a->in_flight), API_DRAIN_MS);
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
    free(a);
}
