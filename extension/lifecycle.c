/* extension/lifecycle.c: the Extensions API and Telemetry API client (libcurl) and the Lambda-mode
 * event loop.  Wire facts: the AWS Lambda Developer Guide's pages "Lambda Extensions API" and
 * "Lambda Telemetry API" (the subscription). */
#include "extension/lifecycle.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"

#define MOD            "lifecycle"

#define EXT_PREFIX     "/2020-01-01/extension"
#define TELEMETRY_PATH "/2022-07-01/telemetry"
#define ID_MAX         128
/* Control calls (register, subscribe, error reports) answer at once on a healthy platform; the
 * bound only keeps a broken one from hanging init forever.  event/next has no timeout at all. */
#define CONTROL_TIMEOUT_MS 5000L
#define NEXT_RETRIES       3  /* event/next without an answer, in a row, before giving up */
#define NEXT_BAD_EVENTS    10 /* unusable event bodies in a row before giving up */

/* One Extensions API session: the identifier and two handles, so the blocking event/next keeps
 * its own connection (and its "no timeout" setting) apart from the control calls. */
struct session {
    char base[256]; /* "http://host:port" */
    char id[ID_MAX];
    CURL *next;
    CURL *ctl;
    int shutdown_only; /* Lambda Managed Instances: registered for SHUTDOWN alone (no INVOKE) */
};

struct response {
    long status;
    struct buf body;
    char id[ID_MAX]; /* Lambda-Extension-Identifier, if the answer carried one */
};

/* ---- pure helpers ---------------------------------------------------------------------- */

enum stash_err lifecycle_parse_event(const char *body, size_t len, struct lifecycle_event *out)
{
    cJSON *root;
    const cJSON *type;
    const cJSON *item;
    enum stash_err rc = STASH_EPARSE;

    memset(out, 0, sizeof(*out));
    root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        goto out;
    }
    type = cJSON_GetObjectItemCaseSensitive(root, "eventType");
    if (!cJSON_IsString(type) || !type->valuestring) {
        goto out;
    }
    item = cJSON_GetObjectItemCaseSensitive(root, "deadlineMs");
    if (cJSON_IsNumber(item) && item->valuedouble > 0 && item->valuedouble < 9.0e15) {
        out->deadline_ms = (int64_t)item->valuedouble;
    }
    rc = STASH_OK;
    if (strcasecmp(type->valuestring, "INVOKE") == 0) {
        out->type = LIFECYCLE_EVENT_INVOKE;
        item = cJSON_GetObjectItemCaseSensitive(root, "requestId");
        if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0] ||
            strlen(item->valuestring) >= sizeof(out->request_id)) {
            rc = STASH_EINVAL;
            goto out;
        }
        str_copy_trunc(out->request_id, sizeof(out->request_id), item->valuestring);
    } else if (strcasecmp(type->valuestring, "SHUTDOWN") == 0) {
        out->type = LIFECYCLE_EVENT_SHUTDOWN;
        item = cJSON_GetObjectItemCaseSensitive(root, "shutdownReason");
        /* The docs print SPINDOWN, the platform sends spindown: keep one spelling. */
        if (cJSON_IsString(item) && item->valuestring) {
            str_copy_trunc(out->shutdown_reason, sizeof(out->shutdown_reason), item->valuestring);
            for (char *p = out->shutdown_reason; *p; p++) {
                *p = (char)tolower((unsigned char)*p);
            }
        }
    } else {
        out->type = LIFECYCLE_EVENT_UNKNOWN;
    }
out:
    cJSON_Delete(root);
    return rc;
}

const char *lifecycle_name_from_argv0(const char *argv0)
{
    const char *slash;

    if (!argv0) {
        return "";
    }
    slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

char *lifecycle_subscription_body(const char *schema, uint16_t port)
{
    struct buf b = BUF_INIT(0);

    /* platform only: function and extension logs would cost the user buffer memory and bring
     * our own log lines back to us.  25 ms is the smallest timeout the API accepts: the report
     * for invoke N is produced while the sandbox is frozen, so it can only come at the next thaw,
     * and it should come in the first milliseconds of it.  maxItems and maxBytes are the
     * minimums the API accepts. */
    (void)buf_printf(&b,
                     "{\"schemaVersion\":\"%s\",\"types\":[\"platform\"],"
                     "\"buffering\":{\"maxItems\":1000,\"maxBytes\":262144,\"timeoutMs\":25},"
                     "\"destination\":{\"protocol\":\"HTTP\","
                     "\"URI\":\"http://sandbox.localdomain:%u/\"}}",
                     schema, (unsigned)port);
    return buf_detach(&b, NULL);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static size_t s_on_body(char *p, size_t size, size_t n, void *ud)
{
    struct response *r = ud;

    if (buf_append(&r->body, p, size * n) != STASH_OK) {
        return 0; /* over the ceiling: curl aborts the transfer */
    }
    return size * n;
}

static size_t s_on_header(char *p, size_t size, size_t n, void *ud)
{
    static const char name[] = "Lambda-Extension-Identifier:";
    struct response *r = ud;
    size_t len = size * n;
    size_t i;
    size_t j;

    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        i = sizeof(name) - 1;
        while (i < len && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        j = len;
        while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' ')) {
            j--;
        }
        if (j - i < sizeof(r->id)) {
            memcpy(r->id, p + i, j - i);
            r->id[j - i] = '\0';
        }
    }
    return len;
}

/* Set by lifecycle_interrupt() (SIGTERM): the blocking event/next ends and the loop shuts down
 * as if SHUTDOWN had come. */
static atomic_int s_interrupted;

void lifecycle_interrupt(void)
{
    atomic_store(&s_interrupted, 1);
}

/* libcurl calls this at least once a second while a transfer waits (nonzero: abort it). */
static int s_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&s_interrupted);
}

/* Sends one request; *resp gets the status, body (bounded) and identifier header.
 * STASH_EUNREACHABLE if no answer came (connection refused, reset, timeout, ceiling). */
static enum stash_err s_http(CURL *h, const char *method, const char *url,
                             struct curl_slist *headers, const char *body, long timeout_ms,
                             struct response *resp)
{
    CURLcode cc;

    memset(resp, 0, sizeof(*resp));
    buf_init(&resp->body, LIFECYCLE_EVENT_MAX_BODY);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms ? timeout_ms : CONTROL_TIMEOUT_MS);
    if (headers) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s_on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        LOG_DEBUG(MOD, "%s %s: %s", method, url, curl_easy_strerror(cc));
        return STASH_EUNREACHABLE;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    return STASH_OK;
}

static void s_response_release(struct response *r)
{
    buf_release(&r->body);
}

/* errorType from an error body, for the log line; "" when there is none. */
static void s_error_type(const struct response *r, char *out, size_t cap)
{
    cJSON *root;
    const cJSON *t;

    out[0] = '\0';
    if (!r->body.data) {
        return;
    }
    root = cJSON_ParseWithLength(r->body.data, r->body.len);
    t = cJSON_GetObjectItemCaseSensitive(root, "errorType");
    if (cJSON_IsString(t) && t->valuestring) {
        str_copy_trunc(out, cap, t->valuestring);
    }
    cJSON_Delete(root);
}

static struct curl_slist *s_id_header(const struct session *s, struct curl_slist *list)
{
    char line[ID_MAX + 64];

    (void)snprintf(line, sizeof(line), "Lambda-Extension-Identifier: %s", s->id);
    return curl_slist_append(list, line);
}

static enum stash_err s_register(struct session *s, const char *name, struct telemetry *t)
{
    char url[320];
    char line[320];
    char etype[96];
    struct curl_slist *hdr = NULL;
    struct response r;
    cJSON *root = NULL;
    const cJSON *fname;
    const cJSON *fver;
    enum stash_err rc;

    (void)snprintf(url, sizeof(url), "%s" EXT_PREFIX "/register", s->base);
    (void)snprintf(line, sizeof(line), "Lambda-Extension-Name: %s", name);
    hdr = curl_slist_append(hdr, line);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    rc = s_http(s->ctl, "POST", url, hdr, "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}",
                CONTROL_TIMEOUT_MS, &r);
    if (rc == STASH_OK && r.status == 403) {
        s_error_type(&r, etype, sizeof(etype));
        if (strcmp(etype, "Extension.InvalidEventType") == 0) {
            /* Lambda Managed Instances take external extensions for SHUTDOWN only: the cache
             * serves all the same, and invocations are known from the Telemetry API. */
            s_response_release(&r);
            rc = s_http(s->ctl, "POST", url, hdr, "{\"events\":[\"SHUTDOWN\"]}", CONTROL_TIMEOUT_MS,
                        &r);
            s->shutdown_only = 1;
        }
    }
    if (rc != STASH_OK) {
        LOG_ERROR(MOD, "register as \"%s\" failed: Extensions API at %s unreachable", name,
                  s->base);
        goto out;
    }
    if (r.status != 200 || !r.id[0]) {
        s_error_type(&r, etype, sizeof(etype));
        LOG_ERROR(MOD, "register as \"%s\" refused: HTTP %ld %s%s", name, r.status,
                  etype[0] ? etype : "(no errorType)",
                  r.status == 200 ? " (no Lambda-Extension-Identifier)" : "");
        rc = STASH_EUPSTREAM;
        goto out;
    }
    str_copy_trunc(s->id, sizeof(s->id), r.id);
    root = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
    fname = cJSON_GetObjectItemCaseSensitive(root, "functionName");
    fver = cJSON_GetObjectItemCaseSensitive(root, "functionVersion");
    telemetry_start(t, cJSON_IsString(fname) ? fname->valuestring : NULL,
                    cJSON_IsString(fver) ? fver->valuestring : NULL, !s->shutdown_only);
    if (s->shutdown_only) {
        LOG_INFO(MOD,
                 "registered as \"%s\" for SHUTDOWN only (INVOKE refused, as on Lambda Managed "
                 "Instances): invocations are known from the Telemetry API",
                 name);
    } else {
        LOG_INFO(MOD, "registered as \"%s\" for INVOKE, SHUTDOWN", name);
    }
out:
    cJSON_Delete(root);
    curl_slist_free_all(hdr);
    s_response_release(&r);
    return rc;
}

/* POST init/error or exit/error; best effort (we are exiting either way).  STASH_OK when the
 * platform took it (202, or 200), STASH_EUNREACHABLE with no answer, STASH_EUPSTREAM if refused. */
static enum stash_err s_report_error(struct session *s, const char *which, const char *type,
                                     const char *message)
{
    enum stash_err rc = STASH_EUPSTREAM;
    char url[320];
    char line[192];
    struct curl_slist *hdr = NULL;
    struct buf body = BUF_INIT(0);
    struct response r;

    (void)snprintf(url, sizeof(url), "%s" EXT_PREFIX "/%s", s->base, which);
    hdr = s_id_header(s, hdr);
    (void)snprintf(line, sizeof(line), "Lambda-Extension-Function-Error-Type: %s", type);
    hdr = curl_slist_append(hdr, line);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    (void)buf_puts(&body, "{\"errorMessage\":\"");
    (void)buf_put_json_escaped(&body, message, strlen(message));
    (void)buf_puts(&body, "\",\"errorType\":\"");
    (void)buf_put_json_escaped(&body, type, strlen(type));
    (void)buf_puts(&body, "\",\"stackTrace\":[]}");
    if (s_http(s->ctl, "POST", url, hdr, body.data, CONTROL_TIMEOUT_MS, &r) != STASH_OK) {
        LOG_WARN(MOD, "%s %s: Extensions API unreachable", which, type);
        rc = STASH_EUNREACHABLE;
    } else if (r.status != 202 && r.status != 200) {
        LOG_WARN(MOD, "%s %s: HTTP %ld", which, type, r.status);
    } else {
        rc = STASH_OK;
    }
    s_response_release(&r);
    buf_release(&body);
    curl_slist_free_all(hdr);
    return rc;
}

/* Returns 1 when the platform accepted the subscription (200), 0 otherwise (logged once). */
static int s_subscribe(struct session *s, const char *schema, uint16_t port)
{
    char url[320];
    char etype[96];
    struct curl_slist *hdr = NULL;
    struct response r;
    char *body;
    int ok = 0;

    (void)snprintf(url, sizeof(url), "%s" TELEMETRY_PATH, s->base);
    hdr = s_id_header(s, hdr);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    body = lifecycle_subscription_body(schema, port);
    if (s_http(s->ctl, "PUT", url, hdr, body, CONTROL_TIMEOUT_MS, &r) != STASH_OK) {
        LOG_WARN(MOD, "telemetry unavailable (subscription got no answer): cache metrics are "
                      "emitted without Lambda's duration, billing and memory figures");
    } else if (r.status != 200) {
        /* 202 Telemetry.NotSupported is how local emulators say "no telemetry": not an error
         * for the cache, which keeps serving. */
        s_error_type(&r, etype, sizeof(etype));
        LOG_WARN(MOD,
                 "telemetry unavailable (subscription answered HTTP %ld %s): cache metrics "
                 "are emitted without Lambda's duration, billing and memory figures",
                 r.status, etype[0] ? etype : "");
    } else {
        LOG_INFO(MOD, "subscribed to platform telemetry (schema %s) on port %u", schema,
                 (unsigned)port);
        ok = 1;
    }
    free(body);
    s_response_release(&r);
    curl_slist_free_all(hdr);
    return ok;
}

/* Blocks in event/next.  STASH_EUNREACHABLE (no answer), STASH_EUPSTREAM (refused),
 * STASH_EPARSE/EINVAL (unusable body). */
static enum stash_err s_next(struct session *s, struct curl_slist *hdr, const char *url,
                             struct lifecycle_event *ev)
{
    struct response r;
    char etype[96];
    enum stash_err rc;

    /* No timeout: the sandbox may stay frozen for minutes inside this call. */
    rc = s_http(s->next, "GET", url, hdr, NULL, 0L, &r);
    if (rc != STASH_OK) {
        goto out;
    }
    if (r.status != 200) {
        s_error_type(&r, etype, sizeof(etype));
        LOG_ERROR(MOD, "event/next refused: HTTP %ld %s", r.status, etype);
        rc = STASH_EUPSTREAM;
        goto out;
    }
    rc = lifecycle_parse_event(r.body.data ? r.body.data : "", r.body.len, ev);
    if (rc != STASH_OK) {
        LOG_ERROR(MOD, "event/next answered an unusable event (%zu bytes): %s", r.body.len,
                  stash_strerror(rc));
    }
out:
    s_response_release(&r);
    return rc;
}

/* ---- the Lambda-mode loop -------------------------------------------------------------- */

static void s_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

#define LIFECYCLE_STOP_WAIT_MIN_MS 10 /* the stop's wait even when SHUTDOWN came late */

/* The stop hook on its own thread, so that SHUTDOWN can go on writing the records when it takes
 * long: it waits for the local API's requests in flight.  The hook abandons upstream calls first,
 * so it normally takes milliseconds; but whatever else held a request would hold it past the
 * SHUTDOWN deadline, when Lambda kills the process and every record owed is lost. */
struct stopper {
    const struct lifecycle_hooks *hooks;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void *s_stopper_main(void *arg)
{
    struct stopper *st = arg;

    st->hooks->stop(st->hooks->ctx);
    pthread_mutex_lock(&st->mu);
    st->done = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Waits until the stopper is done or timeout_ms have passed; returns done. */
static int s_stopper_wait(struct stopper *st, int64_t timeout_ms)
{
    struct timespec ts;
    int done;

    clock_cond_deadline(timeout_ms > 0 ? (uint64_t)timeout_ms : 0, &ts);
    pthread_mutex_lock(&st->mu);
    while (!st->done && timeout_ms > 0) {
        if (pthread_cond_timedwait(&st->cv, &st->mu, &ts) != 0) {
            break;
        }
    }
    done = st->done;
    pthread_mutex_unlock(&st->mu);
    return done;
}

/* The SHUTDOWN budget: the event's deadline less the margin, at most
 * LIFECYCLE_SHUTDOWN_WAIT_MAX_MS; 0 without an event (nothing to wait for). */
static int64_t s_shutdown_budget(const struct lifecycle_event *ev)
{
    int64_t budget;

    if (!ev) {
        return 0;
    }
    budget = ev->deadline_ms > 0
                 ? ev->deadline_ms - (int64_t)clock_real_ms() - LIFECYCLE_SHUTDOWN_MARGIN_MS
                 : LIFECYCLE_SHUTDOWN_WAIT_MAX_MS;
    return budget > LIFECYCLE_SHUTDOWN_WAIT_MAX_MS ? LIFECYCLE_SHUTDOWN_WAIT_MAX_MS : budget;
}

/* Starts the stop hook on its own thread and waits for it at most stop_wait ms; returns 1 if the
 * thread runs (the caller joins it), 0 if the hook already ran on this thread. */
static int s_stop_work(struct stopper *st, int64_t stop_wait)
{
    pthread_t *th = &st->thread;

    pthread_mutex_init(&st->mu, NULL);
    clock_cond_init(&st->cv);
    if (pthread_create(th, NULL, s_stopper_main, st) != 0) {
        st->hooks->stop(st->hooks->ctx); /* no thread: unbounded, on this one */
        return 0;
    }
    if (!s_stopper_wait(st, stop_wait)) {
        LOG_WARN(MOD,
                 "shutdown: local API requests still in flight after %lld ms (upstream not "
                 "answering?); writing the records first",
                 (long long)(stop_wait > 0 ? stop_wait : 0));
    }
    return 1;
}

/* Stops the work (bounded: see struct stopper), closes the last record, waits (bounded) for the
 * reports Lambda still owes, writes everything, then waits for the stop to be complete. */
static void s_finish(const struct lifecycle_event *ev, struct telemetry *t,
                     const struct lifecycle_hooks *hooks)
{
    struct telemetry_stats ts;
    struct stopper st = {.hooks = hooks};
    int stopping = 0;
    uint64_t start = clock_mono_ms();
    int64_t budget = s_shutdown_budget(ev);
    /* At most half the budget for the requests in flight, the rest for the reports.  After an
     * event/next failure there is no deadline and no report to wait for. */
    int64_t stop_wait = ev ? budget / 2 : LIFECYCLE_SHUTDOWN_WAIT_MAX_MS;

    if (stop_wait < LIFECYCLE_STOP_WAIT_MIN_MS) {
        stop_wait = LIFECYCLE_STOP_WAIT_MIN_MS; /* a late SHUTDOWN still lets a quick stop finish */
    }
    if (hooks->stop) {
        stopping = s_stop_work(&st, stop_wait);
    }
    telemetry_on_shutdown(t, start, budget);
    telemetry_stop(t);
    if (stopping) {
        /* The records are out; now the stop may take as long as it needs (the caller frees,
         * and so wipes, the cache once lifecycle_run returns: never under a request still being
         * answered). */
        pthread_join(st.thread, NULL);
    }
    if (hooks->stop) {
        pthread_cond_destroy(&st.cv);
        pthread_mutex_destroy(&st.mu);
    }
    telemetry_stats(t, &ts);
    LOG_INFO(MOD, "shutdown (%s): %llu record(s), %llu EMF line(s) written",
             ev && ev->shutdown_reason[0] ? ev->shutdown_reason : "no event",
             (unsigned long long)ts.records, (unsigned long long)ts.lines);
}

/* Starts the listener and subscribes; on any failure telemetry is off (one warning). */
static void s_telemetry_start(struct session *s, const struct lifecycle_opts *opts,
                              struct telemetry *t)
{
    uint16_t port;

    if (telemetry_listen(t, opts->listen_addr, opts->listen_addrlen, &port) != STASH_OK) {
        LOG_WARN(MOD, "telemetry unavailable (cannot listen): cache metrics are emitted "
                      "without Lambda's duration, billing and memory figures");
        telemetry_unavailable(t);
    } else if (!s_subscribe(s,
                            /* Managed Instances accept 2025-01-29 only. */
                            s->shutdown_only ? "2025-01-29"
                            : opts->schema   ? opts->schema
                                             : "2022-12-13",
                            port)) {
        telemetry_unavailable(t);
    }
}

/* event/next until SHUTDOWN (returns 0) or a failure we cannot work past (returns 1). */
static int s_loop(struct session *s, struct telemetry *t, const struct lifecycle_hooks *hooks)
{
    struct curl_slist *hdr = s_id_header(s, NULL);
    struct lifecycle_event ev = {0};
    char url[320];
    int failures = 0;
    int bad = 0;
    int status = 1;
    enum stash_err rc;

    (void)snprintf(url, sizeof(url), "%s" EXT_PREFIX "/event/next", s->base);
    for (;;) {
        rc = atomic_load(&s_interrupted) ? STASH_OK : s_next(s, hdr, url, &ev);
        if (atomic_load(&s_interrupted)) {
            /* SIGTERM: the same end as SHUTDOWN, within the same budget (no deadline known). */
            memset(&ev, 0, sizeof(ev));
            ev.type = LIFECYCLE_EVENT_SHUTDOWN;
            (void)snprintf(ev.shutdown_reason, sizeof(ev.shutdown_reason), "sigterm");
            s_finish(&ev, t, hooks);
            status = 0;
            break;
        }
        if (rc == STASH_EUNREACHABLE && ++failures < NEXT_RETRIES) {
            s_nap_ms(10L * failures);
            continue;
        }
        if ((rc == STASH_EPARSE || rc == STASH_EINVAL) && ++bad < NEXT_BAD_EVENTS) {
            /* One bad event is not a reason to take the cache away from the function. */
            continue;
        }
        if (rc != STASH_OK) {
            LOG_ERROR(MOD, "event/next failed: %s; writing metrics and exiting",
                      stash_strerror(rc));
            s_finish(NULL, t, hooks);
            if (rc == STASH_EUPSTREAM) {
                s_report_error(s, "exit/error", "Extension.EventNextFailed",
                               "event/next was refused");
            }
            break;
        }
        failures = 0;
        bad = 0;
        if (ev.type == LIFECYCLE_EVENT_INVOKE) {
            /* In memory only; the call to next just below is what ends our part of the
             * invoke, so nothing else may come between them. */
            telemetry_on_invoke(t, ev.request_id, ev.deadline_ms);
        } else if (ev.type == LIFECYCLE_EVENT_SHUTDOWN) {
            s_finish(&ev, t, hooks);
            status = 0;
            break;
        }
    }
    curl_slist_free_all(hdr);
    return status;
}

/* 0 if the runtime API address and the name can go into a request; else logs why, returns 1. */
static int s_check_opts(const char *runtime_api, const char *name)
{
    if (!runtime_api || !runtime_api[0] || !name || !name[0]) {
        LOG_ERROR(MOD, "cannot register: AWS_LAMBDA_RUNTIME_API or extension name empty");
        return 1;
    }
    /* Both end up in a request line or a header: no control character may smuggle in another. */
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            LOG_ERROR(MOD, "cannot register: the executable's file name has a control character");
            return 1;
        }
    }
    for (const char *p = runtime_api; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/') {
            LOG_ERROR(MOD, "cannot register: AWS_LAMBDA_RUNTIME_API is not host:port");
            return 1;
        }
    }
    return 0;
}

/* Checks the address and name, makes the two handles and registers (t: NULL, or the metrics
 * to start with register's function name).  s_session_close() releases s whatever this returned. */
static enum stash_err s_session_open(struct session *s, const char *runtime_api, const char *name,
                                     struct telemetry *t)
{
    if (s_check_opts(runtime_api, name) != 0) {
        return STASH_EINVAL;
    }
    (void)snprintf(s->base, sizeof(s->base), "http://%s", runtime_api);
    s->next = curl_easy_init();
    s->ctl = curl_easy_init();
    if (!s->next || !s->ctl) {
        LOG_ERROR(MOD, "cannot register: libcurl handle allocation failed");
        return STASH_EIO;
    }
    return s_register(s, name, t);
}

static void s_session_close(struct session *s)
{
    if (s->next) {
        curl_easy_cleanup(s->next);
    }
    if (s->ctl) {
        curl_easy_cleanup(s->ctl);
    }
    s->next = s->ctl = NULL;
}

int lifecycle_run(const struct lifecycle_opts *opts, const struct lifecycle_hooks *hooks)
{
    static const struct lifecycle_hooks no_hooks;
    struct telemetry *t = opts->metrics;
    struct session s;
    int status = 1;
    int stopped = 0;

    if (!hooks) {
        hooks = &no_hooks;
    }
    memset(&s, 0, sizeof(s));
    if (s_session_open(&s, opts->runtime_api, opts->name, t) != STASH_OK) {
        goto out;
    }
    if (t) {
        s_telemetry_start(&s, opts, t);
    }
    status = s_loop(&s, t, hooks);
    stopped = 1; /* every way out of the loop goes through s_finish */
out:
    if (!stopped && hooks->stop) {
        hooks->stop(hooks->ctx); /* never registered: nothing to flush, nothing to wait for */
    }
    s_session_close(&s);
    return status;
}

enum stash_err lifecycle_report_init_error(const char *runtime_api, const char *name,
                                           const char *error_type, const char *message)
{
    struct session s;
    enum stash_err rc;

    memset(&s, 0, sizeof(s));
    rc = s_session_open(&s, runtime_api, name, NULL);
    if (rc == STASH_OK) {
        LOG_ERROR(MOD, "cannot work, reported to Lambda: %s", message);
        rc = s_report_error(&s, "init/error", error_type, message);
    }
    s_session_close(&s);
    return rc;
}
