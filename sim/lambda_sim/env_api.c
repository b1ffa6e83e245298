/* sim/lambda_sim/env_api.c: one environment's API server (AWS_LAMBDA_RUNTIME_API).
 *
 * One libmicrohttpd daemon on 127.0.0.1:<free port>, thread per connection, serving:
 *   GET  /2018-06-01/runtime/invocation/next          (long poll)
 *   POST /2018-06-01/runtime/invocation/{id}/response | /error
 *   POST /2018-06-01/runtime/init/error
 *   POST /2020-01-01/extension/register
 *   GET  /2020-01-01/extension/event/next             (long poll)
 *   POST /2020-01-01/extension/init/error | /exit/error
 *   PUT  /2022-07-01/telemetry
 *   PUT  /2020-08-15/logs                              (202 Logs.NotSupported, as RIE)
 * Errors use RAPID's statuses, types and messages (as aws-lambda-runtime-interface-emulator
 * renders them).  The
 * long polls block their connection's thread on env->cv until the controller hands out an event
 * or the environment dies.
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/env_int.h"
#include "sim/lambda_sim/util.h"
#include "sim/lambda_sim/wire.h"

#define API_SMALL_BODY   (64u * 1024u)
#define API_RESPONSE_MAX (6u * 1024u * 1024u + 100u) /* 6 MiB plus RAPID's 100 bytes */

struct api_req {
    struct buf body;
    int too_big;
    struct sim_stamp first; /* when the request's headers arrived */
};

struct hdr {
    const char *name;
    const char *value;
};

/* Queues status + body (taken; NULL for none) with the given extra headers. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ct, char *body,
                             size_t len, const struct hdr *hdrs, unsigned nhdrs)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned i;

    if (body) {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ct) {
        MHD_add_response_header(resp, "Content-Type", ct);
    }
    for (i = 0; i < nhdrs; i++) {
        MHD_add_response_header(resp, hdrs[i].name, hdrs[i].value);
    }
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_err(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *msg)
{
    char *body = wire_error_body(type, msg);

    return reply(c, status, "application/json", body, strlen(body), NULL, 0);
}

static enum MHD_Result reply_werr(struct MHD_Connection *c, const struct wire_error *err)
{
    return reply_err(c, (unsigned)err->status, err->type, err->message);
}

static enum MHD_Result reply_ok_status(struct MHD_Connection *c)
{
    return reply(c, 202, "application/json", xstrdup("{\"status\":\"OK\"}\n"), 16, NULL, 0);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* mu held.  The extension named by Lambda-Extension-Identifier, or NULL with err filled. */
static struct sim_ext *ext_by_id(struct env *e, struct MHD_Connection *c, struct wire_error *err)
{
    const char *id = header(c, "Lambda-Extension-Identifier");
    unsigned i;

    err->status = 403;
    if (!id || !*id) {
        str_copy_trunc(err->type, sizeof(err->type), "Extension.MissingExtensionIdentifier");
        str_copy_trunc(err->message, sizeof(err->message),
                       "Missing Lambda-Extension-Identifier header");
        return NULL;
    }
    if (!sim_is_uuid(id)) {
        str_copy_trunc(err->type, sizeof(err->type), "Extension.InvalidExtensionIdentifier");
        str_copy_trunc(err->message, sizeof(err->message), "Invalid Lambda-Extension-Identifier");
        return NULL;
    }
    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].registered && strcasecmp(e->ext[i].id, id) == 0) {
            return &e->ext[i];
        }
    }
    str_copy_trunc(err->type, sizeof(err->type), "Extension.UnknownExtensionIdentifier");
    sim_msgf(err->message, sizeof(err->message), "Unknown extension %.64s", id);
    return NULL;
}

static enum MHD_Result ext_state_error(struct MHD_Connection *c, const struct sim_ext *x,
                                       const char *from, const char *to)
{
    char msg[256];

    sim_msgf(msg, sizeof(msg),
             "State transition from %s to %s failed for extension %s. Error: State transition is "
             "not allowed",
             from, to, x->id);
    return reply_err(c, 403, "Extension.InvalidExtensionState", msg);
}

/* ---- Extensions API ------------------------------------------------------------------------ */

static enum MHD_Result ext_register(struct env *e, struct MHD_Connection *c, struct api_req *r)
{
    const char *name = header(c, "Lambda-Extension-Name");
    const char *features = header(c, "Lambda-Extension-Accept-Feature");
    struct wire_error err;
    struct sim_ext *x = NULL;
    unsigned events = 0;
    unsigned i;
    char id[SIM_UUID_LEN];
    char *body;
    struct hdr h[1];

    if (!name || !*name) {
        return reply_err(c, 403, "Extension.InvalidExtensionName", "Empty extension name");
    }
    if (r->too_big) {
        return reply_err(c, 403, "InvalidRequestFormat", "Request body too large");
    }
    if (wire_parse_register(r->body.data, r->body.len, &events, &err) != STASH_OK) {
        return reply_werr(c, &err);
    }
    pthread_mutex_lock(&e->mu);
    if (e->reg_closed || e->phase != PH_INIT) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 403, "Extension.RegistrationClosed",
                         "Extension registration closed already");
    }
    for (i = 0; i < e->n_ext; i++) {
        if (strcmp(e->ext[i].name, name) == 0) {
            x = &e->ext[i];
        }
    }
    if (x && x->registered) {
        char msg[400];

        pthread_mutex_unlock(&e->mu);
        sim_msgf(msg, sizeof(msg),
                 "State transition from Registered to Registered failed for extension %.200s. "
                 "Error: State transition is not allowed",
                 name);
        return reply_err(c, 403, "Extension.InvalidExtensionState", msg);
    }
    if (!x) {
        /* A name that matches no launched file: an internal extension (part of the runtime). */
        if (events & WIRE_EV_SHUTDOWN) {
            pthread_mutex_unlock(&e->mu);
            return reply_err(c, 403, "Extension.InvalidEventType",
                             "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension");
        }
        if (e->n_ext >= ENV_MAX_EXT) {
            pthread_mutex_unlock(&e->mu);
            return reply_err(c, 403, "Extension.TooManyExtensions", "Extension limit (10) reached");
        }
        x = &e->ext[e->n_ext++];
        memset(x, 0, sizeof(*x));
        x->env = e;
        str_copy_trunc(x->name, sizeof(x->name), name);
    }
    sim_uuid(id);
    memcpy(x->id, id, SIM_UUID_LEN);
    x->events = events;
    x->registered = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    body = wire_register_body(e->cfg->function_name, "$LATEST", e->cfg->handler,
                              wire_wants_account_id(features) ? e->cfg->account_id : NULL);
    h[0].name = "Lambda-Extension-Identifier";
    h[0].value = id;
    return reply(c, 200, "application/json", body, strlen(body), h, 1);
}

static enum MHD_Result ext_next(struct env *e, struct MHD_Connection *c)
{
    struct wire_error err;
    struct sim_ext *x;
    char *ev;
    char evid[SIM_UUID_LEN];
    struct hdr h[1];

    pthread_mutex_lock(&e->mu);
    x = ext_by_id(e, c, &err);
    if (!x) {
        pthread_mutex_unlock(&e->mu);
        return reply_werr(c, &err);
    }
    if (x->errored || e->phase == PH_DEAD) {
        pthread_mutex_unlock(&e->mu);
        return ext_state_error(c, x, x->errored ? "Errored" : "Exited", "Ready");
    }
    if (x->in_next) {
        pthread_mutex_unlock(&e->mu);
        return ext_state_error(c, x, "Ready", "Ready");
    }
    x->in_next = 1;
    pthread_cond_broadcast(&e->cv);
    while (!x->pending && e->phase != PH_DEAD) {
        pthread_cond_wait(&e->cv, &e->mu);
    }
    ev = x->pending;
    x->pending = NULL;
    x->in_next = 0;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (!ev) {
        return reply_err(c, 500, "Extension.ContainerError",
                         "Container error. Non-recoverable state. Extension should exit promptly.");
    }
    sim_uuid(evid);
    h[0].name = "Lambda-Extension-Event-Identifier";
    h[0].value = evid;
    return reply(c, 200, "application/json", ev, strlen(ev), h, 1);
}

static enum MHD_Result ext_error(struct env *e, struct MHD_Connection *c, int init)
{
    const char *type = header(c, "Lambda-Extension-Function-Error-Type");
    struct wire_error err;
    struct sim_ext *x;
    char msg[400];

    pthread_mutex_lock(&e->mu);
    x = ext_by_id(e, c, &err);
    if (!x) {
        pthread_mutex_unlock(&e->mu);
        return reply_werr(c, &err);
    }
    if (!type || !*type) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 403, "Extension.MissingHeader",
                         "Lambda-Extension-Function-Error-Type not found");
    }
    if (x->errored || (init && e->phase != PH_INIT)) {
        pthread_mutex_unlock(&e->mu);
        return ext_state_error(c, x, x->errored ? "Errored" : "Ready",
                               init ? "InitError" : "ExitError");
    }
    x->errored = 1;
    sim_msgf(msg, sizeof(msg), "Extension %.200s reported %s: %.100s", x->name,
             init ? "an init error" : "an exit error", type);
    env_set_fail(e, init ? "Extension.InitError" : "Extension.ExitError", msg);
    pthread_mutex_unlock(&e->mu);
    return reply_ok_status(c);
}

static enum MHD_Result telemetry_subscribe(struct env *e, struct MHD_Connection *c,
                                           struct api_req *r)
{
    struct wire_subscription sub;
    struct wire_error err;
    struct sim_ext *x;

    if (!e->cfg->telemetry) {
        return reply_err(c, 202, "Telemetry.NotSupported", "Telemetry API is not supported");
    }
    pthread_mutex_lock(&e->mu);
    x = ext_by_id(e, c, &err);
    pthread_mutex_unlock(&e->mu);
    if (!x) {
        return reply_werr(c, &err);
    }
    if (r->too_big) {
        return reply_err(c, 400, "ValidationError", "request body too large");
    }
    if (wire_parse_subscription(r->body.data ? r->body.data : "", r->body.len, &sub, &err)) {
        return reply_werr(c, &err);
    }
    pthread_mutex_lock(&e->mu);
    if (e->reg_closed || e->phase != PH_INIT) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 403, "Telemetry.SubscriptionClosed",
                         "Telemetry API subscription is closed");
    }
    tele_hub_subscribe(e->hub, x->name, &sub);
    pthread_mutex_unlock(&e->mu);
    return reply(c, 200, "application/json", xstrdup("\"OK\"\n"), 5, NULL, 0);
}

/* ---- Runtime API --------------------------------------------------------------------------- */

static enum MHD_Result rt_state_error(struct MHD_Connection *c, const char *from, const char *to)
{
    char msg[200];

    sim_msgf(msg, sizeof(msg),
             "State transition from %s to %s failed for runtime. Error: State "
             "transition is not allowed",
             from, to);
    return reply_err(c, 403, "InvalidStateTransition", msg);
}

static enum MHD_Result rt_next(struct env *e, struct MHD_Connection *c)
{
    char id[SIM_UUID_LEN];
    char deadline[24];
    _Static_assert(sizeof(deadline) > 20, "a 64-bit number in decimal fits");
    char arn[sizeof(e->arn)];
    char trace[sizeof(e->inv.trace)];
    char ct[sizeof(e->inv.content_type)];
    char *payload;
    size_t len;
    struct hdr h[4];

    pthread_mutex_lock(&e->mu);
    if (e->phase == PH_DEAD) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 500, "Runtime.ContainerError",
                         "Container error. Non-recoverable state. Runtime should exit promptly.");
    }
    if (e->rt_in_next) {
        pthread_mutex_unlock(&e->mu);
        return rt_state_error(c, "RuntimeReady", "RuntimeReady");
    }
    if (e->phase == PH_INVOKE && e->inv.taken && !e->inv.responded) {
        pthread_mutex_unlock(&e->mu);
        return rt_state_error(c, "RuntimeInvoked", "RuntimeReady");
    }
    e->rt_in_next = 1;
    e->rt_next_at = sim_stamp_now();
    pthread_cond_broadcast(&e->cv);
    while (!(e->phase == PH_INVOKE && e->inv.offered && !e->inv.taken) && e->phase != PH_DEAD) {
        pthread_cond_wait(&e->cv, &e->mu);
    }
    e->rt_in_next = 0;
    if (e->phase == PH_DEAD) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 500, "Runtime.ContainerError",
                         "Container error. Non-recoverable state. Runtime should exit promptly.");
    }
    e->inv.taken = 1;
    memcpy(id, e->inv.id, sizeof(id));
    /* 20 digits at most: always whole (see the static assertion by deadline's declaration). */
    (void)sim_fmt(deadline, sizeof(deadline), "%llu", (unsigned long long)e->inv.deadline_ms);
    memcpy(arn, e->arn, sizeof(arn));
    memcpy(trace, e->inv.trace, sizeof(trace));
    memcpy(ct, e->inv.content_type, sizeof(ct));
    payload = xmemdup(e->inv.payload, e->inv.payload_len);
    len = e->inv.payload_len;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    h[0].name = "Lambda-Runtime-Aws-Request-Id";
    h[0].value = id;
    h[1].name = "Lambda-Runtime-Deadline-Ms";
    h[1].value = deadline;
    h[2].name = "Lambda-Runtime-Invoked-Function-Arn";
    h[2].value = arn;
    h[3].name = "Lambda-Runtime-Trace-Id";
    h[3].value = trace;
    return reply(c, 200, ct, payload, len, h, 4);
}

static enum MHD_Result rt_post(struct env *e, struct MHD_Connection *c, const char *id,
                               int is_error, struct api_req *r)
{
    const char *mode = header(c, "Lambda-Runtime-Function-Response-Mode");
    const char *etype = header(c, "Lambda-Runtime-Function-Error-Type");
    size_t len;

    if (!is_error && mode && strcasecmp(mode, "streaming") != 0) {
        return reply_err(c, 400, "InvalidFunctionResponseMode", "Invalid function response mode");
    }
    pthread_mutex_lock(&e->mu);
    if (e->phase != PH_INVOKE || !e->inv.taken || strcmp(id, e->inv.id) != 0) {
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 400, "InvalidRequestID", "Invalid request ID");
    }
    if (e->inv.responded) {
        pthread_mutex_unlock(&e->mu);
        return rt_state_error(c, "RuntimeResponseSent", "RuntimeResponseSent");
    }
    e->inv.responded = 1;
    e->inv.t_first = r->first;
    e->inv.t_end = sim_stamp_now();
    if (r->too_big) {
        /* Lambda fails the invoke; the runtime hears 413. */
        char msg[96];

        sim_msgf(msg, sizeof(msg),
                 "Response payload size exceeded maximum allowed payload size "
                 "(%u bytes).",
                 6u * 1024u * 1024u);
        e->inv.is_error = 1;
        str_copy_trunc(e->inv.err_type, sizeof(e->inv.err_type), "Function.ResponseSizeTooLarge");
        e->inv.resp = wire_error_body("Function.ResponseSizeTooLarge", msg);
        e->inv.resp_len = strlen(e->inv.resp) - 1;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        return reply_err(c, 413, "RequestEntityTooLarge",
                         "Exceeded maximum allowed payload size (6291556 bytes).");
    }
    e->inv.is_error = is_error;
    if (is_error) {
        str_copy_trunc(e->inv.err_type, sizeof(e->inv.err_type),
                       etype && *etype ? etype : "Unhandled");
    }
    e->inv.resp = buf_detach(&r->body, &len);
    e->inv.resp_len = len;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return reply_ok_status(c);
}

static enum MHD_Result rt_init_error(struct env *e, struct MHD_Connection *c, struct api_req *r)
{
    const char *etype = header(c, "Lambda-Runtime-Function-Error-Type");
    char msg[200];
    size_t len;

    pthread_mutex_lock(&e->mu);
    if (e->phase != PH_INIT || e->reg_closed) {
        pthread_mutex_unlock(&e->mu);
        return rt_state_error(c, "RuntimeReady", "RuntimeInitError");
    }
    free(e->init_error_body);
    e->init_error_body = buf_detach(&r->body, &len);
    e->init_error_len = len;
    sim_msgf(msg, sizeof(msg), "Runtime reported an init error: %.100s",
             etype && *etype ? etype : "Runtime.Unknown");
    env_set_fail(e, etype && *etype ? etype : "Runtime.Unknown", msg);
    pthread_mutex_unlock(&e->mu);
    return reply_ok_status(c);
}

/* ---- routing ------------------------------------------------------------------------------- */

#define RT_INVOCATION "/2018-06-01/runtime/invocation/"

static enum MHD_Result route(struct env *e, struct MHD_Connection *c, const char *url,
                             const char *method, struct api_req *r)
{
    int get = strcmp(method, "GET") == 0;
    int post = strcmp(method, "POST") == 0;
    int put = strcmp(method, "PUT") == 0;
    int known = 1;

    if (strcmp(url, RT_INVOCATION "next") == 0) {
        if (get) {
            return rt_next(e, c);
        }
    } else if (strncmp(url, RT_INVOCATION, strlen(RT_INVOCATION)) == 0) {
        const char *id = url + strlen(RT_INVOCATION);
        const char *slash = strchr(id, '/');
        char idbuf[128];

        if (!slash || (size_t)(slash - id) >= sizeof(idbuf) ||
            (strcmp(slash, "/response") != 0 && strcmp(slash, "/error") != 0)) {
            known = 0;
        } else if (post) {
            memcpy(idbuf, id, (size_t)(slash - id));
            idbuf[slash - id] = '\0';
            return rt_post(e, c, idbuf, strcmp(slash, "/error") == 0, r);
        }
    } else if (strcmp(url, "/2018-06-01/runtime/init/error") == 0) {
        if (post) {
            return rt_init_error(e, c, r);
        }
    } else if (strcmp(url, "/2020-01-01/extension/register") == 0) {
        if (post) {
            return ext_register(e, c, r);
        }
    } else if (strcmp(url, "/2020-01-01/extension/event/next") == 0) {
        if (get) {
            return ext_next(e, c);
        }
    } else if (strcmp(url, "/2020-01-01/extension/init/error") == 0) {
        if (post) {
            return ext_error(e, c, 1);
        }
    } else if (strcmp(url, "/2020-01-01/extension/exit/error") == 0) {
        if (post) {
            return ext_error(e, c, 0);
        }
    } else if (strcmp(url, "/2022-07-01/telemetry") == 0) {
        if (put) {
            return telemetry_subscribe(e, c, r);
        }
    } else if (strcmp(url, "/2020-08-15/logs") == 0) {
        if (put) {
            return reply_err(c, 202, "Logs.NotSupported", "Logs API is not supported");
        }
    } else {
        known = 0;
    }
    if (!known) {
        return reply_err(c, 404, "NotFound", "No such path on the Lambda Runtime API");
    }
    return reply_err(c, 405, "MethodNotAllowed", "Method not allowed on this path");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct env *e = cls;
    struct api_req *r = *con_cls;

    (void)version;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        r->first = sim_stamp_now();
        buf_init(&r->body, strncmp(url, RT_INVOCATION, strlen(RT_INVOCATION)) == 0
                               ? API_RESPONSE_MAX
                               : API_SMALL_BODY);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && buf_append(&r->body, upload, *upload_size) != STASH_OK) {
            r->too_big = 1;
            buf_release(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(e, c, url, method, r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct api_req *r = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (r) {
        buf_release(&r->body);
        free(r);
        *con_cls = NULL;
    }
}

int env_api_start(struct env *e)
{
    struct sockaddr_in a;
    const union MHD_DaemonInfo *info;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    e->mhd =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, handler, e, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_NOTIFY_COMPLETED,
                         completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 256u,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
    if (!e->mhd) {
        return -1;
    }
    info = MHD_get_daemon_info(e->mhd, MHD_DAEMON_INFO_BIND_PORT);
    e->api_port = info ? info->port : 0;
    return e->api_port ? 0 : -1;
}

void env_api_stop(struct env *e)
{
    if (e->mhd) {
        MHD_stop_daemon(e->mhd);
        e->mhd = NULL;
    }
}
