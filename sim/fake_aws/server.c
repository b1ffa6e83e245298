/* sim/fake_aws/server.c: the HTTP front of fake-aws (libmicrohttpd): the AWS JSON 1.1 API on
 * POST / and the /_fake/ control endpoints. */
#include "sim/fake_aws/server.h"

#include <arpa/inet.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "sim/fake_aws/b64.h"
#include "sim/fake_aws/ops.h"

#define JSON_TYPE "application/x-amz-json-1.1"

struct fa_server {
    struct MHD_Daemon *daemon;
    struct fa_server_config cfg;
    unsigned short port;
};

/* Per TCP connection (MHD socket context): how many API requests it has carried. */
struct conn_state {
    unsigned long api_requests;
};

/* Per HTTP request (MHD request context): the body as it arrives. */
struct req_state {
    struct buf body;
    int too_big;
};

/* A reply body MHD owns until sent; wiped when freed, as it may carry secrets. */
struct wiped_body {
    char *data;
    size_t len;
};

static void wiped_body_free(void *cls)
{
    struct wiped_body *w = cls;

    xfree_secret(w->data, w->len);
    free(w);
}

static void request_id(char out[37])
{
    unsigned char r[16];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = clock_mono_ns();

        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    (void)snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                   r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                   r[13], r[14], r[15]);
}

/* Queues body (taken over: the buf is left empty) with the given status and content type. */
static enum MHD_Result send_body(struct MHD_Connection *conn, int status, const char *ctype,
                                 const char *error_type, struct buf *body)
{
    struct wiped_body *w = xmalloc(sizeof(*w));
    struct MHD_Response *resp;
    char rid[37];
    enum MHD_Result ret;

    w->data = buf_detach(body, &w->len);
    resp =
        MHD_create_response_from_buffer_with_free_callback_cls(w->len, w->data, wiped_body_free, w);
    if (!resp) {
        wiped_body_free(w);
        return MHD_NO;
    }
    request_id(rid);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "x-amzn-RequestId", rid);
    if (error_type) {
        MHD_add_response_header(resp, "x-amzn-ErrorType", error_type);
    }
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, int status, const char *json)
{
    struct buf b = BUF_INIT(0);

    (void)buf_puts(&b, json);
    return send_body(conn, status, "application/json", NULL, &b);
}

static enum MHD_Result send_error_json(struct MHD_Connection *conn, int status, const char *msg)
{
    struct buf b = BUF_INIT(0);

    (void)buf_puts(&b, "{\"error\":\"");
    (void)buf_put_json_escaped(&b, msg, strlen(msg));
    (void)buf_puts(&b, "\"}");
    return send_body(conn, status, "application/json", NULL, &b);
}

/* ---- control endpoints ------------------------------------------------------------------ */

static const char *arg(struct MHD_Connection *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Reads an optional unsigned query parameter; 0 if it is present and malformed or over max. */
static int arg_uint(struct MHD_Connection *conn, const char *key, unsigned deflt, unsigned max,
                    unsigned *out)
{
    const char *v = arg(conn, key);
    char *end;
    unsigned long n;

    *out = deflt;
    if (!v) {
        return 1;
    }
    if (v[0] < '0' || v[0] > '9') {
        return 0;
    }
    n = strtoul(v, &end, 10);
    if (*end || n > max) {
        return 0;
    }
    *out = (unsigned)n;
    return 1;
}

/* op= names an operation ("GetSecretValue" or "secretsmanager.GetSecretValue"); absent or "*"
 * means any.  Returns 0 for a name we do not serve. */
static int arg_op(struct MHD_Connection *conn, enum fa_op *out)
{
    const char *v = arg(conn, "op");

    *out = FA_OP_UNKNOWN;
    if (!v || !v[0] || strcmp(v, "*") == 0) {
        return 1;
    }
    *out = fa_ops_from_name(v);
    if (*out == FA_OP_UNKNOWN) {
        *out = fa_ops_from_target(v);
    }
    return *out != FA_OP_UNKNOWN;
}

static enum MHD_Result control_fault(struct fa_server *s, struct MHD_Connection *conn,
                                     enum fa_fault_kind kind)
{
    enum fa_op op;
    unsigned count;
    unsigned status = 0;
    unsigned ms = 0;
    const char *type = arg(conn, "type");
    const char *message = arg(conn, "message");
    struct buf b = BUF_INIT(0);
    enum stash_err rc;

    if (!arg_op(conn, &op)) {
        return send_error_json(conn, 400,
                               "op must name GetSecretValue, BatchGetSecretValue, "
                               "GetParameter or GetParameters");
    }
    if (!arg_uint(conn, "count", 1, FA_FAULT_COUNT_MAX, &count) || count == 0) {
        return send_error_json(conn, 400, "count must be 1 to 1000000");
    }
    if (kind == FA_FAULT_FAIL) {
        if (!arg_uint(conn, "status", 500, 599, &status) || status < 400) {
            return send_error_json(conn, 400, "status must be 400 to 599");
        }
        if (!type || !type[0]) {
            type = status >= 500
                       ? (op == FA_OP_GET_SECRET_VALUE || op == FA_OP_BATCH_GET_SECRET_VALUE
                              ? "InternalServiceError"
                              : "InternalServerError")
                       : "ValidationException";
        }
    }
    if (kind == FA_FAULT_HANG && !arg_uint(conn, "ms", 30000, FA_DELAY_MAX_MS, &ms)) {
        return send_error_json(conn, 400, "ms must be 0 to 600000");
    }
    rc = fa_control_add(s->cfg.control, kind, op, count, (int)status, type, message, ms);
    if (rc == STASH_ETOOBIG) {
        return send_error_json(conn, 400, "too many pending faults (64); POST /_fake/reset");
    }
    if (rc) {
        return send_error_json(conn, 400,
                               "bad fault (type: up to 63 printable characters, no space, quote "
                               "or backslash; message: up to 255)");
    }
    (void)buf_printf(&b, "{\"ok\":true,\"op\":\"%s\",\"count\":%u}",
                     op == FA_OP_UNKNOWN ? "*" : fa_ops_name(op), count);
    return send_body(conn, 200, "application/json", NULL, &b);
}

static enum MHD_Result control_rotate(struct fa_server *s, struct MHD_Connection *conn)
{
    const char *id = arg(conn, "secretId");
    const char *value = arg(conn, "value");
    const char *binary = arg(conn, "binary");
    const char *version_id = arg(conn, "versionId");
    char new_id[FA_VERSION_ID_MAX + 1];
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    struct fa_secret_value v;
    enum fa_miss miss;
    struct buf b = BUF_INIT(0);
    enum stash_err rc;
    enum MHD_Result ret;

    if (!id || !id[0] || !value == !binary) {
        return send_error_json(conn, 400, "give secretId and exactly one of value and binary");
    }
    if (binary) {
        raw = xmalloc(b64_decoded_max(strlen(binary)) + 1);
        if (b64_decode(binary, strlen(binary), raw, &rawlen)) {
            xfree_secret(raw, b64_decoded_max(strlen(binary)) + 1);
            return send_error_json(conn, 400, "binary must be base64");
        }
    }
    rc = fa_data_rotate(s->cfg.data, id, binary ? (const void *)raw : value,
                        binary ? rawlen : strlen(value), binary != NULL, version_id,
                        (double)clock_real_ms() / 1000.0, new_id);
    if (raw) {
        xfree_secret(raw, b64_decoded_max(strlen(binary)) + 1);
    }
    if (rc == STASH_ENOTFOUND) {
        return send_error_json(conn, 404, "no such secret");
    }
    if (rc) {
        return send_error_json(conn, 400,
                               rc == STASH_ETOOBIG ? "value over 65536 bytes"
                                                   : "bad value or versionId (32 to 64 characters, "
                                                     "not already used)");
    }
    if (fa_data_get_secret(s->cfg.data, id, new_id, NULL, &v, &miss)) {
        return send_error_json(conn, 500, "rotated version vanished");
    }
    (void)buf_puts(&b, "{\"ARN\":\"");
    (void)buf_put_json_escaped(&b, v.arn, strlen(v.arn));
    (void)buf_puts(&b, "\",\"Name\":\"");
    (void)buf_put_json_escaped(&b, v.name, strlen(v.name));
    (void)buf_puts(&b, "\",\"VersionId\":\"");
    (void)buf_put_json_escaped(&b, v.version_id, strlen(v.version_id));
    (void)buf_puts(&b, "\"}");
    fa_secret_value_release(&v);
    ret = send_body(conn, 200, "application/json", NULL, &b);
    LOG_INFO("fake-aws", "rotated secret %s: new AWSCURRENT version %s", id, new_id);
    return ret;
}

static enum MHD_Result control_put_parameter(struct fa_server *s, struct MHD_Connection *conn)
{
    const char *name = arg(conn, "name");
    const char *value = arg(conn, "value");
    long version;
    struct buf b = BUF_INIT(0);
    enum stash_err rc;

    if (!name || !value) {
        return send_error_json(conn, 400, "give name and value");
    }
    rc = fa_data_put_param(s->cfg.data, name, value, arg(conn, "type"), arg(conn, "label"),
                           (double)clock_real_ms() / 1000.0, &version);
    if (rc) {
        return send_error_json(conn, 400,
                               rc == STASH_ETOOBIG ? "value over 8192 bytes"
                                                   : "bad name, value, type or label");
    }
    (void)buf_printf(&b, "{\"Tier\":\"Standard\",\"Version\":%ld}", version);
    LOG_INFO("fake-aws", "put parameter %s: version %ld", name, version);
    return send_body(conn, 200, "application/json", NULL, &b);
}

static enum MHD_Result handle_control(struct fa_server *s, struct MHD_Connection *conn,
                                      const char *path, const char *method)
{
    int post = strcmp(method, "POST") == 0;
    struct buf b = BUF_INIT(0);

    if (strcmp(path, "stats") == 0) {
        if (strcmp(method, "GET") != 0) {
            return send_error_json(conn, 405, "use GET");
        }
        (void)fa_control_stats(s->cfg.control, &b);
        return send_body(conn, 200, "application/json", NULL, &b);
    }
    if (strcmp(path, "reset") != 0 && strcmp(path, "latency") != 0 && strcmp(path, "fail") != 0 &&
        strcmp(path, "throttle") != 0 && strcmp(path, "hang") != 0 && strcmp(path, "rotate") != 0 &&
        strcmp(path, "put-parameter") != 0) {
        return send_error_json(conn, 404, "no such control endpoint");
    }
    if (!post) {
        return send_error_json(conn, 405, "use POST");
    }
    if (strcmp(path, "reset") == 0) {
        fa_control_reset(s->cfg.control);
        return send_text(conn, 200, "{\"ok\":true}");
    }
    if (strcmp(path, "latency") == 0) {
        unsigned ms;
        unsigned jitter;
        unsigned cold;

        if (!arg_uint(conn, "ms", 0, FA_DELAY_MAX_MS, &ms) ||
            !arg_uint(conn, "jitter", 0, FA_DELAY_MAX_MS, &jitter) ||
            !arg_uint(conn, "cold", 0, FA_DELAY_MAX_MS, &cold)) {
            return send_error_json(conn, 400, "ms, jitter and cold must be 0 to 600000");
        }
        (void)fa_control_set_latency(s->cfg.control, ms, jitter, cold);
        (void)buf_printf(&b, "{\"ok\":true,\"ms\":%u,\"jitter_ms\":%u,\"cold_ms\":%u}", ms, jitter,
                         cold);
        return send_body(conn, 200, "application/json", NULL, &b);
    }
    if (strcmp(path, "fail") == 0) {
        return control_fault(s, conn, FA_FAULT_FAIL);
    }
    if (strcmp(path, "throttle") == 0) {
        return control_fault(s, conn, FA_FAULT_THROTTLE);
    }
    if (strcmp(path, "hang") == 0) {
        return control_fault(s, conn, FA_FAULT_HANG);
    }
    if (strcmp(path, "rotate") == 0) {
        return control_rotate(s, conn);
    }
    return control_put_parameter(s, conn);
}

/* ---- the AWS API ------------------------------------------------------------------------ */

static const char *header_of(void *ctx, const char *name)
{
    return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

struct query_ctx {
    struct buf *q;
};

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct query_ctx *c = cls;

    (void)kind;
    (void)buf_printf(c->q, "%s%s=%s", c->q->len ? "&" : "", key, value ? value : "");
    return MHD_YES;
}

static enum MHD_Result handle_api(struct fa_server *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, struct req_state *rs)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_state *cs = ci ? ci->socket_context : NULL;
    const char *target = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Target");
    enum fa_op op = fa_ops_from_target(target);
    struct fa_control *ctl = s->cfg.control;
    struct buf query = BUF_INIT(8192);
    struct query_ctx qc = {&query};
    struct fa_auth_request ar;
    struct fa_auth_verdict verdict;
    struct fa_fault fault;
    struct fa_reply reply;
    int first = 0;
    unsigned long ticket;
    enum MHD_Result ret;

    if (cs && cs->api_requests++ == 0) {
        first = 1;
        fa_control_api_connection(ctl);
    }
    ticket = fa_control_begin(ctl, op);
    fa_control_sleep(ctl, fa_control_delay_ms(ctl, first));
    fa_reply_init(&reply);

    if (rs->too_big) {
        fa_ops_error(&reply, 413, "RequestEntityTooLarge",
                     "The request body is over the 262144-byte limit of fake-aws.");
        goto send;
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &qc);
    memset(&ar, 0, sizeof(ar));
    ar.method = method;
    ar.path = url;
    ar.query = query.data ? query.data : "";
    ar.header = header_of;
    ar.header_ctx = conn;
    ar.payload = rs->body.data ? rs->body.data : "";
    ar.payload_len = rs->body.len;
    ar.region = fa_data_region(s->cfg.data);
    ar.service = fa_ops_target_service(target);
    ar.now_s = (int64_t)(clock_real_ms() / 1000);
    if (fa_auth_verify(&ar, s->cfg.creds, s->cfg.ncreds, &verdict)) {
        LOG_DEBUG("fake-aws", "%s refused: %s (key %s)", fa_ops_name(op), verdict.type,
                  verdict.access_key[0] ? verdict.access_key : "-");
        fa_ops_error(&reply, verdict.status, verdict.type, verdict.message);
        buf_release(&query);
        ret = send_body(conn, reply.status, JSON_TYPE, reply.error_type, &reply.body);
        fa_control_end(ctl, ticket, op, reply.status, 0, 1);
        fa_reply_release(&reply);
        return ret;
    }
    if (strcmp(method, "POST") != 0 || strcmp(url, "/") != 0 || op == FA_OP_UNKNOWN) {
        fa_ops_error(&reply, op == FA_OP_UNKNOWN ? 400 : 404, "UnknownOperationException", NULL);
        goto send;
    }
    fa_control_take(ctl, op, &fault);
    if (fault.hang_ms) {
        LOG_DEBUG("fake-aws", "%s: injected hang of %u ms", fa_ops_name(op), fault.hang_ms);
        fa_control_sleep(ctl, fault.hang_ms);
    }
    if (fault.kind != FA_FAULT_NONE) {
        fa_ops_error(&reply, fault.status, fault.type, fault.message);
        goto send;
    }
    fa_reply_release(&reply);
    fa_ops_handle(s->cfg.data, op, rs->body.data, rs->body.len, &reply);
send:
    buf_release(&query);
    LOG_DEBUG("fake-aws", "%s -> %d %s", fa_ops_name(op), reply.status,
              reply.error_type ? reply.error_type : "");
    fa_control_end(ctl, ticket, op, reply.status,
                   reply.error_type && strcmp(reply.error_type, "ThrottlingException") == 0, 0);
    ret = send_body(conn, reply.status, JSON_TYPE, reply.error_type, &reply.body);
    fa_reply_release(&reply);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct fa_server *s = cls;
    struct req_state *rs = *req_cls;

    (void)version;
    if (!rs) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        rs = xcalloc(1, sizeof(*rs));
        buf_init(&rs->body, FA_BODY_MAX);
        *req_cls = rs;
        /* An announced oversized body is refused before it is read (MHD then closes). */
        if (!cl || strtoull(cl, NULL, 10) <= FA_BODY_MAX) {
            return MHD_YES;
        }
        rs->too_big = 1;
    } else if (*upload_data_size) {
        /* Past the ceiling the rest is read and dropped; the answer is 413 at the end. */
        if (!rs->too_big && buf_append(&rs->body, upload_data, *upload_data_size)) {
            rs->too_big = 1;
            buf_release_secret(&rs->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/_fake/", 7) == 0) {
        return handle_control(s, conn, url + 7, method);
    }
    return handle_api(s, conn, url, method, rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_state *rs = *req_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (rs) {
        buf_release_secret(&rs->body);
        free(rs);
        *req_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct fa_server *s = cls;

    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = xcalloc(1, sizeof(struct conn_state));
        fa_control_connection_opened(s->cfg.control);
    } else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

enum stash_err fa_server_start(const struct fa_server_config *cfg, struct fa_server **out)
{
    struct fa_server *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in addr;
    const union MHD_DaemonInfo *info;

    *out = NULL;
    s->cfg = *cfg;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
        cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)FA_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
        60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return STASH_EIO;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return STASH_OK;
}

unsigned short fa_server_port(const struct fa_server *s)
{
    return s->port;
}

void fa_server_stop(struct fa_server *s)
{
    if (!s) {
        return;
    }
    fa_control_shutdown(s->cfg.control);
    MHD_stop_daemon(s->daemon);
    free(s);
}
