/* sim/lambda_sim/wire.c: Extensions/Telemetry API bodies, parsed and rendered (see wire.h). */
#include "sim/lambda_sim/wire.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/util.h"

static enum stash_err fail(struct wire_error *err, int status, const char *type, const char *msg)
{
    err->status = status;
    str_copy_trunc(err->type, sizeof(err->type), type);
    str_copy_trunc(err->message, sizeof(err->message), msg);
    return STASH_EINVAL;
}

enum stash_err wire_parse_register(const char *body, size_t len, unsigned *events,
                                   struct wire_error *err)
{
    cJSON *root = NULL;
    const cJSON *evs;
    const cJSON *e;
    enum stash_err rc = STASH_OK;

    *events = 0;
    if (len == 0) {
        return STASH_OK; /* RAPID tolerates an empty body: no events */
    }
    root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        rc = fail(err, 403, "InvalidRequestFormat", "Failed to parse request body");
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "configurationKeys")) {
        rc = fail(err, 403, "InvalidRequestFormat",
                  "configurationKeys are deprecated; use environment variables instead");
        goto out;
    }
    evs = cJSON_GetObjectItemCaseSensitive(root, "events");
    if (!evs || cJSON_IsNull(evs)) {
        goto out;
    }
    if (!cJSON_IsArray(evs)) {
        rc = fail(err, 403, "InvalidRequestFormat", "events must be an array of strings");
        goto out;
    }
    cJSON_ArrayForEach(e, evs)
    {
        char msg[128];

        if (cJSON_IsString(e) && strcmp(e->valuestring, "INVOKE") == 0) {
            *events |= WIRE_EV_INVOKE;
        } else if (cJSON_IsString(e) && strcmp(e->valuestring, "SHUTDOWN") == 0) {
            *events |= WIRE_EV_SHUTDOWN;
        } else {
            sim_msgf(msg, sizeof(msg), "%.80s: ErrorInvalidEventType",
                     cJSON_IsString(e) ? e->valuestring : "(not a string)");
            rc = fail(err, 403, "Extension.InvalidEventType", msg);
            *events = 0;
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* Reads an optional integer field within [lo, hi]; absent leaves *out unchanged. */
static enum stash_err get_bounded(const cJSON *obj, const char *name, unsigned lo, unsigned hi,
                                  unsigned *out, struct wire_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    char msg[160];

    if (!v) {
        return STASH_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        sim_msgf(msg, sizeof(msg), "buffering.%s must be an integer between %u and %u", name, lo,
                 hi);
        return fail(err, 400, "ValidationError", msg);
    }
    *out = (unsigned)v->valuedouble;
    return STASH_OK;
}

static enum stash_err parse_uri(const char *uri, struct wire_subscription *sub,
                                struct wire_error *err)
{
    const char *p;
    const char *colon;
    const char *slash;
    size_t hostlen;
    char *end = NULL;
    unsigned long port;

    if (strncmp(uri, "http://", 7) != 0) {
        return fail(err, 400, "ValidationError", "destination.URI must start with http://");
    }
    p = uri + 7;
    slash = strchr(p, '/');
    colon = strchr(p, ':');
    if (!colon || (slash && colon > slash)) {
        return fail(err, 400, "ValidationError", "URI port is not provided");
    }
    hostlen = (size_t)(colon - p);
    if (!((hostlen == 19 && strncmp(p, "sandbox.localdomain", 19) == 0) ||
          (hostlen == 7 && strncmp(p, "sandbox", 7) == 0))) {
        return fail(err, 400, "ValidationError",
                    "destination.URI host must be sandbox.localdomain");
    }
    memcpy(sub->host, p, hostlen);
    sub->host[hostlen] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || port < 1 || port > 65535 || (*end != '\0' && *end != '/')) {
        return fail(err, 400, "ValidationError", "destination.URI port must be 1..65535");
    }
    if (port == 9001) {
        return fail(err, 400, "ValidationError", "destination.URI port 9001 is reserved");
    }
    sub->port = (unsigned)port;
    if (strlen(end) >= sizeof(sub->path)) {
        return fail(err, 400, "ValidationError", "destination.URI path is too long");
    }
    str_copy_trunc(sub->path, sizeof(sub->path), *end ? end : "/");
    return STASH_OK;
}

enum stash_err wire_parse_subscription(const char *body, size_t len, struct wire_subscription *sub,
                                       struct wire_error *err)
{
    cJSON *root = NULL;
    const cJSON *v;
    const cJSON *t;
    const cJSON *dest;
    enum stash_err rc = STASH_EINVAL;

    memset(sub, 0, sizeof(*sub));
    sub->max_items = WIRE_MAX_ITEMS_DEF;
    sub->max_bytes = WIRE_MAX_BYTES_DEF;
    sub->timeout_ms = WIRE_TIMEOUT_MS_DEF;
    root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        fail(err, 400, "ValidationError", "request body is not a JSON object");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "schemaVersion");
    if (!cJSON_IsString(v)) {
        fail(err, 400, "ValidationError", "schemaVersion is required");
        goto out;
    }
    if (strcmp(v->valuestring, "2022-07-01") != 0 && strcmp(v->valuestring, "2022-12-13") != 0 &&
        strcmp(v->valuestring, "2025-01-29") != 0) {
        fail(err, 400, "ValidationError",
             "schemaVersion must be one of 2022-07-01, 2022-12-13, 2025-01-29");
        goto out;
    }
    str_copy_trunc(sub->schema, sizeof(sub->schema), v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(root, "types");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        fail(err, 400, "ValidationError", "types should not be empty");
        goto out;
    }
    cJSON_ArrayForEach(t, v)
    {
        if (cJSON_IsString(t) && strcmp(t->valuestring, "platform") == 0) {
            sub->types |= WIRE_T_PLATFORM;
        } else if (cJSON_IsString(t) && strcmp(t->valuestring, "function") == 0) {
            sub->types |= WIRE_T_FUNCTION;
        } else if (cJSON_IsString(t) && strcmp(t->valuestring, "extension") == 0) {
            sub->types |= WIRE_T_EXTENSION;
        } else {
            fail(err, 400, "ValidationError",
                 "types must contain only platform, function, extension");
            goto out;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "buffering");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            fail(err, 400, "ValidationError", "buffering must be an object");
            goto out;
        }
        if (get_bounded(v, "maxItems", WIRE_MAX_ITEMS_MIN, WIRE_MAX_ITEMS_MAX, &sub->max_items,
                        err) ||
            get_bounded(v, "maxBytes", WIRE_MAX_BYTES_MIN, WIRE_MAX_BYTES_MAX, &sub->max_bytes,
                        err) ||
            get_bounded(v, "timeoutMs", WIRE_TIMEOUT_MS_MIN, WIRE_TIMEOUT_MS_MAX, &sub->timeout_ms,
                        err)) {
            goto out;
        }
    }
    dest = cJSON_GetObjectItemCaseSensitive(root, "destination");
    if (!cJSON_IsObject(dest)) {
        fail(err, 400, "ValidationError", "destination is required");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(dest, "protocol");
    if (!cJSON_IsString(v) ||
        (strcmp(v->valuestring, "HTTP") != 0 && strcmp(v->valuestring, "TCP") != 0)) {
        fail(err, 400, "ValidationError", "destination.protocol must be HTTP or TCP");
        goto out;
    }
    if (strcmp(v->valuestring, "TCP") == 0) {
        /* Lambda supports TCP (NDJSON); lambda-sim does not, and says so rather than drop. */
        fail(err, 400, "ValidationError",
             "destination.protocol TCP is not supported by lambda-sim");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(dest, "URI");
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        fail(err, 400, "ValidationError", "destination.URI is required");
        goto out;
    }
    if (parse_uri(v->valuestring, sub, err)) {
        goto out;
    }
    rc = STASH_OK;
out:
    cJSON_Delete(root);
    return rc;
}

/* Prints a tree unformatted and frees it. */
static char *render(cJSON *root, int newline)
{
    char *s = cJSON_PrintUnformatted(root);
    char *out;
    size_t n;

    cJSON_Delete(root);
    if (!s) {
        abort(); /* only on out-of-memory, which xmalloc already treats as fatal */
    }
    n = strlen(s);
    out = xmalloc(n + 2);
    memcpy(out, s, n);
    if (newline) {
        out[n++] = '\n';
    }
    out[n] = '\0';
    cJSON_free(s);
    return out;
}

char *wire_error_body(const char *type, const char *message)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "errorMessage", message);
    cJSON_AddStringToObject(o, "errorType", type);
    return render(o, 1);
}

char *wire_register_body(const char *function_name, const char *version, const char *handler,
                         const char *account_id)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "functionName", function_name);
    cJSON_AddStringToObject(o, "functionVersion", version);
    cJSON_AddStringToObject(o, "handler", handler);
    if (account_id) {
        cJSON_AddStringToObject(o, "accountId", account_id);
    }
    return render(o, 1);
}

int wire_wants_account_id(const char *features)
{
    const char *p = features;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        if (n == 9 && strncmp(p, "accountId", 9) == 0) {
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

char *wire_invoke_event(uint64_t deadline_ms, const char *request_id, const char *arn,
                        const char *trace)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "eventType", "INVOKE");
    cJSON_AddNumberToObject(o, "deadlineMs", (double)deadline_ms);
    cJSON_AddStringToObject(o, "requestId", request_id);
    cJSON_AddStringToObject(o, "invokedFunctionArn", arn);
    if (trace && *trace) {
        cJSON *t = cJSON_AddObjectToObject(o, "tracing");

        cJSON_AddStringToObject(t, "type", "X-Amzn-Trace-Id");
        cJSON_AddStringToObject(t, "value", trace);
    }
    return render(o, 0);
}

char *wire_shutdown_event(uint64_t deadline_ms, const char *reason)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "eventType", "SHUTDOWN");
    cJSON_AddNumberToObject(o, "deadlineMs", (double)deadline_ms);
    cJSON_AddStringToObject(o, "shutdownReason", reason);
    return render(o, 0);
}

void wire_events_list(unsigned events, char *out, size_t outlen)
{
    sim_msgf(out, outlen, "%s%s%s", (events & WIRE_EV_INVOKE) ? "INVOKE" : "",
             (events & WIRE_EV_INVOKE) && (events & WIRE_EV_SHUTDOWN) ? ", " : "",
             (events & WIRE_EV_SHUTDOWN) ? "SHUTDOWN" : "");
}

static char *envelope(uint64_t time_ms, const char *type, cJSON *record)
{
    cJSON *o = cJSON_CreateObject();
    char iso[CLOCK_ISO_LEN];

    clock_format_iso(time_ms, iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddItemToObject(o, "record", record);
    return render(o, 0);
}

static void add_ms(cJSON *o, const char *name, double ms)
{
    cJSON_AddNumberToObject(o, name, round(ms * 1000.0) / 1000.0);
}

static void add_events(cJSON *o, unsigned events)
{
    cJSON *a = cJSON_AddArrayToObject(o, "events");

    if (events & WIRE_EV_INVOKE) {
        cJSON_AddItemToArray(a, cJSON_CreateString("INVOKE"));
    }
    if (events & WIRE_EV_SHUTDOWN) {
        cJSON_AddItemToArray(a, cJSON_CreateString("SHUTDOWN"));
    }
}

static void add_span(cJSON *spans, const struct wire_span *s)
{
    cJSON *o = cJSON_CreateObject();
    char iso[CLOCK_ISO_LEN];

    clock_format_iso(s->start_ms, iso);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "start", iso);
    add_ms(o, "durationMs", s->duration_ms);
    cJSON_AddItemToArray(spans, o);
}

char *wire_ev_init_start(uint64_t time_ms, const char *function_name, const char *version,
                         const char *instance_id, uint64_t max_memory_bytes, const char *phase)
{
    cJSON *r = cJSON_CreateObject();

    cJSON_AddStringToObject(r, "initializationType", "on-demand");
    cJSON_AddStringToObject(r, "functionName", function_name);
    cJSON_AddStringToObject(r, "functionVersion", version);
    cJSON_AddStringToObject(r, "instanceId", instance_id);
    cJSON_AddNumberToObject(r, "instanceMaxMemory", (double)max_memory_bytes);
    cJSON_AddStringToObject(r, "phase", phase);
    return envelope(time_ms, "platform.initStart", r);
}

char *wire_ev_init_runtime_done(uint64_t time_ms, const char *phase, const char *status,
                                const char *error_type)
{
    cJSON *r = cJSON_CreateObject();

    cJSON_AddStringToObject(r, "initializationType", "on-demand");
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddStringToObject(r, "phase", phase);
    if (error_type) {
        cJSON_AddStringToObject(r, "errorType", error_type);
    }
    return envelope(time_ms, "platform.initRuntimeDone", r);
}

char *wire_ev_init_report(uint64_t time_ms, const char *phase, const char *status,
                          const char *error_type, double duration_ms)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *m;

    cJSON_AddStringToObject(r, "initializationType", "on-demand");
    m = cJSON_AddObjectToObject(r, "metrics");
    add_ms(m, "durationMs", duration_ms);
    cJSON_AddStringToObject(r, "phase", phase);
    cJSON_AddStringToObject(r, "status", status);
    if (error_type) {
        cJSON_AddStringToObject(r, "errorType", error_type);
    }
    return envelope(time_ms, "platform.initReport", r);
}

char *wire_ev_extension(uint64_t time_ms, const char *name, const char *state, unsigned events,
                        const char *error_type)
{
    cJSON *r = cJSON_CreateObject();

    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddStringToObject(r, "state", state);
    add_events(r, events);
    if (error_type) {
        cJSON_AddStringToObject(r, "errorType", error_type);
    }
    return envelope(time_ms, "platform.extension", r);
}

char *wire_ev_subscription(uint64_t time_ms, const char *name, unsigned types)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *a;

    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddStringToObject(r, "state", "Subscribed");
    a = cJSON_AddArrayToObject(r, "types");
    if (types & WIRE_T_PLATFORM) {
        cJSON_AddItemToArray(a, cJSON_CreateString("platform"));
    }
    if (types & WIRE_T_FUNCTION) {
        cJSON_AddItemToArray(a, cJSON_CreateString("function"));
    }
    if (types & WIRE_T_EXTENSION) {
        cJSON_AddItemToArray(a, cJSON_CreateString("extension"));
    }
    return envelope(time_ms, "platform.telemetrySubscription", r);
}

char *wire_ev_start(uint64_t time_ms, const char *request_id, const char *function_arn,
                    const char *version)
{
    cJSON *r = cJSON_CreateObject();

    cJSON_AddStringToObject(r, "requestId", request_id);
    cJSON_AddStringToObject(r, "version", version);
    cJSON_AddStringToObject(r, "functionArn", function_arn);
    return envelope(time_ms, "platform.start", r);
}

char *wire_ev_log(uint64_t time_ms, const char *type, const char *line, size_t len)
{
    char *copy = xmemdup(line, len);
    cJSON *r = cJSON_CreateString(copy);

    free(copy);
    return envelope(time_ms, type, r);
}

char *wire_ev_logs_dropped(uint64_t time_ms, uint64_t bytes, uint64_t records, const char *reason)
{
    cJSON *r = cJSON_CreateObject();

    cJSON_AddNumberToObject(r, "droppedBytes", (double)bytes);
    cJSON_AddNumberToObject(r, "droppedRecords", (double)records);
    cJSON_AddStringToObject(r, "reason", reason);
    return envelope(time_ms, "platform.logsDropped", r);
}

char *wire_ev_runtime_done(uint64_t time_ms, const struct wire_runtime_done *rd)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *m;
    unsigned i;

    cJSON_AddStringToObject(r, "requestId", rd->request_id);
    cJSON_AddStringToObject(r, "status", rd->status);
    if (rd->nspans) {
        cJSON *spans = cJSON_AddArrayToObject(r, "spans");

        for (i = 0; i < rd->nspans && i < 3; i++) {
            add_span(spans, &rd->spans[i]);
        }
    }
    m = cJSON_AddObjectToObject(r, "metrics");
    add_ms(m, "durationMs", rd->duration_ms);
    cJSON_AddNumberToObject(m, "producedBytes", (double)rd->produced_bytes);
    if (rd->error_type) {
        cJSON_AddStringToObject(r, "errorType", rd->error_type);
    }
    return envelope(time_ms, "platform.runtimeDone", r);
}

char *wire_ev_report(uint64_t time_ms, const struct wire_report *rp)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *m;

    cJSON_AddStringToObject(r, "requestId", rp->request_id);
    cJSON_AddStringToObject(r, "status", rp->status);
    if (rp->error_type) {
        cJSON_AddStringToObject(r, "errorType", rp->error_type);
    }
    m = cJSON_AddObjectToObject(r, "metrics");
    add_ms(m, "durationMs", rp->duration_ms);
    cJSON_AddNumberToObject(m, "billedDurationMs", (double)rp->billed_ms);
    cJSON_AddNumberToObject(m, "memorySizeMB", rp->memory_mb);
    cJSON_AddNumberToObject(m, "maxMemoryUsedMB", rp->max_used_mb);
    if (rp->init_ms >= 0) {
        add_ms(m, "initDurationMs", rp->init_ms);
    }
    if (rp->has_ext_span) {
        add_span(cJSON_AddArrayToObject(r, "spans"), &rp->ext_span);
    }
    return envelope(time_ms, "platform.report", r);
}

uint64_t wire_billed_ms(double duration_ms, double init_ms)
{
    double total = duration_ms + (init_ms > 0 ? init_ms : 0);
    /* Rounded to microseconds first so 2.0000000001 (float noise) bills 2, not 3. */
    double b = ceil(round(total * 1000.0) / 1000.0);

    return b < 1 ? 1 : (uint64_t)b;
}

char *wire_report_line(const struct wire_report *r)
{
    struct buf b = BUF_INIT(0);
    size_t len;

    buf_printf(&b,
               "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %llu ms\t"
               "Memory Size: %u MB\tMax Memory Used: %u MB\t",
               r->request_id, r->duration_ms, (unsigned long long)r->billed_ms, r->memory_mb,
               r->max_used_mb);
    if (r->init_ms >= 0) {
        buf_printf(&b, "Init Duration: %.2f ms\t", r->init_ms);
    }
    if (strcmp(r->status, "success") != 0) {
        buf_printf(&b, "Status: %s\t", r->status);
        if (r->error_type) {
            buf_printf(&b, "Error Type: %s\t", r->error_type);
        }
    }
    buf_putc(&b, '\n');
    return buf_detach(&b, &len);
}
