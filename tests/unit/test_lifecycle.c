/* Unit tests for extension/lifecycle and telemetry/listener: the event parser, the subscription
 * body, the listener's answers, and lifecycle_run() end to end against a fake Extensions and
 * Telemetry API served by libmicrohttpd in this process.
 *
 * The fake plays Lambda's ordering: platform.report for invoke N is POSTed to the listener only
 * after the extension has called event/next again (during N+1), and the last one only after
 * SHUTDOWN was handed out, from another thread, a little later (as after a thaw).  Local requests
 * are simulated by handing facts to the metrics object from the fake's next handler: when the
 * extension calls next for the k-th time, INVOKE k-1 has been recorded, so those facts belong
 * to invoke k-1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/lifecycle.h"
#include "telemetry/listener.h"
#include "tests/unit/refdir.h"

/* ---- small helpers ------------------------------------------------------------------------ */

/* A file of the repository's test data (tests/data/). */
static const char *ref(const char *rel)
{
    static char path[1024];
    char dir[512];

    assert_int_equal(refdir_find(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return path;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b = BUF_INIT(0);
    char chunk[4096];
    size_t n;

    if (!f) {
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        assert_int_equal(buf_append(&b, chunk, n), STASH_OK);
    }
    fclose(f);
    return buf_detach(&b, len);
}

/* The body of a raw HTTP capture (after the blank line). */
static char *http_body(const char *path)
{
    size_t len;
    char *raw = slurp(path, &len);
    char *p;
    char *body;

    assert_non_null(raw);
    p = strstr(raw, "\r\n\r\n");
    if (p) {
        p += 4;
    } else {
        p = strstr(raw, "\n\n");
        assert_non_null(p);
        p += 2;
    }
    body = xstrdup(p);
    free(raw);
    return body;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static long http_post(uint16_t port, const char *body, size_t len, const char *method)
{
    char url[64];
    CURL *h = curl_easy_init();
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(h);
    return status;
}

/* ---- pure parts --------------------------------------------------------------------------- */

static void test_parse_event_samples(void **state)
{
    struct lifecycle_event ev;
    char *body;
    size_t len;

    (void)state;
    body = slurp(ref("extensions-api-samples/INVOKE-event__aws-docs-2022.json"), &len);
    assert_non_null(body);
    assert_int_equal(lifecycle_parse_event(body, len, &ev), STASH_OK);
    assert_int_equal(ev.type, LIFECYCLE_EVENT_INVOKE);
    assert_string_equal(ev.request_id, "3da1f2dc-3222-475e-9205-e2e6c6318895");
    assert_int_equal(ev.deadline_ms, 676051);
    free(body);

    body = http_body(ref("extensions-api-samples/rie-v1.15-observed.ext-next-1.http"));
    assert_int_equal(lifecycle_parse_event(body, strlen(body), &ev), STASH_OK);
    assert_int_equal(ev.type, LIFECYCLE_EVENT_INVOKE);
    assert_string_equal(ev.request_id, "3bb29c2f-a912-4282-a373-4d0c45471244");
    assert_int_equal(ev.deadline_ms, 1795323951282LL);
    free(body);

    body = slurp(
        ref("extensions-api-samples/SHUTDOWN-event.spindown__constructed-from-rie-model.json"),
        &len);
    assert_int_equal(lifecycle_parse_event(body, len, &ev), STASH_OK);
    assert_int_equal(ev.type, LIFECYCLE_EVENT_SHUTDOWN);
    assert_string_equal(ev.shutdown_reason, "spindown");
    assert_int_equal(ev.deadline_ms, 1795323949503LL);
    free(body);

    /* RIE's SIGTERM variant: text/plain, its own reason, folded to lower case. */
    body = http_body(ref("extensions-api-samples/rie-v1.15-observed.ext-next-3.http"));
    assert_int_equal(lifecycle_parse_event(body, strlen(body), &ev), STASH_OK);
    assert_int_equal(ev.type, LIFECYCLE_EVENT_SHUTDOWN);
    assert_string_equal(ev.shutdown_reason, "sandboxterminated");
    free(body);
}

static void test_parse_event_bad(void **state)
{
    static const char *const parse_errors[] = {
        "", "nope", "[]", "{}", "{\"eventType\":3}", "{\"eventType\":\"INVOKE\"", "null",
    };
    static const char *const invalid[] = {
        "{\"eventType\":\"INVOKE\",\"deadlineMs\":1}",
        "{\"eventType\":\"INVOKE\",\"requestId\":\"\"}",
        "{\"eventType\":\"INVOKE\",\"requestId\":7}",
        "{\"eventType\":\"INVOKE\",\"requestId\":\"0123456789012345678901234567890123456789"
        "012345678901234567890123456789\"}",
    };
    struct lifecycle_event ev;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++) {
        assert_int_equal(lifecycle_parse_event(parse_errors[i], strlen(parse_errors[i]), &ev),
                         STASH_EPARSE);
    }
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_int_equal(lifecycle_parse_event(invalid[i], strlen(invalid[i]), &ev), STASH_EINVAL);
    }
    /* A type we did not register for is not an error: the loop ignores it. */
    assert_int_equal(lifecycle_parse_event("{\"eventType\":\"RESTORE\",\"deadlineMs\":5}", 39, &ev),
                     STASH_OK);
    assert_int_equal(ev.type, LIFECYCLE_EVENT_UNKNOWN);
    assert_int_equal(ev.deadline_ms, 5);
    /* Negative or absurd deadlines are dropped, not trusted. */
    assert_int_equal(
        lifecycle_parse_event("{\"eventType\":\"SHUTDOWN\",\"deadlineMs\":-4}", 40, &ev), STASH_OK);
    assert_int_equal(ev.deadline_ms, 0);
}

static void test_name_from_argv0(void **state)
{
    (void)state;
    assert_string_equal(lifecycle_name_from_argv0("/opt/extensions/stash"), "stash");
    assert_string_equal(lifecycle_name_from_argv0("stash"), "stash");
    assert_string_equal(lifecycle_name_from_argv0("./build/extensions/my-ext"), "my-ext");
    assert_string_equal(lifecycle_name_from_argv0(NULL), "");
}

static void test_subscription_body(void **state)
{
    char *body = lifecycle_subscription_body("2025-01-29", 4243);
    cJSON *root;
    const cJSON *types;
    const cJSON *buffering;
    const cJSON *dest;
    double t;

    (void)state;
    root = cJSON_Parse(body);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "schemaVersion")->valuestring, "2025-01-29");
    types = cJSON_GetObjectItem(root, "types");
    assert_int_equal(cJSON_GetArraySize(types), 1);
    assert_string_equal(cJSON_GetArrayItem(types, 0)->valuestring, "platform");
    buffering = cJSON_GetObjectItem(root, "buffering");
    /* Within the Telemetry API's buffering limits (timeoutMs 25-30000, maxItems 1000-10000,
     * maxBytes 262144-1048576), and prompt. */
    t = cJSON_GetObjectItem(buffering, "timeoutMs")->valuedouble;
    assert_true(t >= 25 && t <= 100);
    assert_true(cJSON_GetObjectItem(buffering, "maxItems")->valuedouble >= 1000);
    assert_true(cJSON_GetObjectItem(buffering, "maxBytes")->valuedouble >= 262144);
    assert_true(cJSON_GetObjectItem(buffering, "maxBytes")->valuedouble <= 1048576);
    dest = cJSON_GetObjectItem(root, "destination");
    assert_string_equal(cJSON_GetObjectItem(dest, "protocol")->valuestring, "HTTP");
    assert_string_equal(cJSON_GetObjectItem(dest, "URI")->valuestring,
                        "http://sandbox.localdomain:4243/");
    cJSON_Delete(root);
    free(body);
}

/* ---- the listener, alone ------------------------------------------------------------------ */

struct batch_log {
    int calls;
    char last[64];
};

static enum stash_err record_batch(void *ctx, const char *body, size_t len)
{
    struct batch_log *bl = ctx;

    bl->calls++;
    if (len == 0 || body[0] != '[') {
        return STASH_EPARSE;
    }
    if (strstr(body, "\"many\"")) {
        return STASH_ETOOBIG;
    }
    snprintf(bl->last, sizeof(bl->last), "%.*s", (int)(len < 60 ? len : 60), body);
    return STASH_OK;
}

static void test_listener_answers(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct listener *l;
    struct listener_opts o;
    struct batch_log bl;
    char *big;
    uint16_t port;

    (void)state;
    memset(&bl, 0, sizeof(bl));
    listener_resolve("127.0.0.1", 0, &ss, &sl);
    memset(&o, 0, sizeof(o));
    o.addr = (struct sockaddr *)&ss;
    o.addrlen = sl;
    o.max_body = 1000;
    o.on_batch = record_batch;
    o.ctx = &bl;
    assert_int_equal(listener_start(&o, &l), STASH_OK);
    port = listener_port(l);
    assert_true(port > 0);

    assert_int_equal(http_post(port, "[1]", 3, "POST"), 200);
    assert_int_equal(listener_batches(l), 1);
    assert_string_equal(bl.last, "[1]");
    /* Malformed: 400, and the earlier batch stays what was recorded. */
    assert_int_equal(http_post(port, "{oops", 5, "POST"), 400);
    assert_int_equal(listener_batches(l), 1);
    assert_string_equal(bl.last, "[1]");
    assert_int_equal(http_post(port, "[\"many\"]", 8, "POST"), 413);
    /* Over the ceiling: 413 and on_batch never sees it. */
    big = xmalloc(5000);
    memset(big, '[', 5000);
    bl.calls = 0;
    assert_int_equal(http_post(port, big, 5000, "POST"), 413);
    assert_int_equal(bl.calls, 0);
    free(big);
    assert_int_equal(http_post(port, NULL, 0, "GET"), 405);
    /* Still serving after all that. */
    assert_int_equal(http_post(port, "[2]", 3, "POST"), 200);
    assert_int_equal(listener_wait(l, 1, 1000), 2);
    assert_string_equal(bl.last, "[2]");
    listener_stop(l);
    listener_stop(NULL);
}

static void test_listener_resolve_fallback(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    (void)state;
    /* ".invalid" never resolves (RFC 6761): the loopback fallback. */
    listener_resolve("no-such-host.invalid", 4243, &ss, &sl);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(sl, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(sin->sin_port), 4243);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
}

/* ---- a fake Extensions + Telemetry API ------------------------------------------------------ */

#define FAKE_MAX_EVENTS 8

enum telemetry_answer {
    TELEMETRY_OK = 0,        /* 200 "OK", then reports are delivered */
    TELEMETRY_NOT_SUPPORTED, /* 202 Telemetry.NotSupported, as RIE answers */
};

struct fake {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t lock;
    /* script */
    int register_status; /* 200 or an error */
    enum telemetry_answer telemetry;
    const char *events[FAKE_MAX_EVENTS];      /* bodies handed out by event/next, in order */
    const char *request_ids[FAKE_MAX_EVENTS]; /* INVOKE ids, NULL for other events */
    int nevents;
    int hits_per_invoke;     /* facts injected for each invoke */
    int deliver_last_report; /* post the last report after SHUTDOWN */
    int lmi; /* Lambda Managed Instances: INVOKE refused at register, schema 2025-01-29 only; at
              * the first next, requests named lmi-1 and lmi-2 and their reports arrive */
    struct telemetry *metrics;
    /* what happened */
    char name[64];
    char register_body[256];
    char id_seen_ok; /* every next carried the identifier */
    int nnext;
    int subscribed;
    char subscription[512];
    uint16_t listener_port;
    char init_error[64];
    char exit_error[64];
    char error_body[512]; /* the last init/error or exit/error body */
    int late_status;      /* status of the delayed report POST */
    int report_refused;   /* report POSTs the listener did not take */
    int garbage_first;    /* post a malformed batch before each report */
    int garbage_status;   /* what the listener answered to it */
    pthread_t late;
    int late_started;
};

struct fake_req {
    struct buf body;
};

#define FAKE_ID "5e1f0a6c-2b1c-4a5e-8f00-0123456789ab"

static char *report_batch(const char *rid, double duration, int with_init)
{
    char *s = xmalloc(1024);

    snprintf(s, 1024,
             "[{\"time\":\"2026-07-28T19:02:12.307Z\",\"type\":\"platform.runtimeDone\","
             "\"record\":{\"requestId\":\"%s\",\"status\":\"success\","
             "\"metrics\":{\"durationMs\":%.3f,\"producedBytes\":10}}},"
             "{\"time\":\"2026-07-28T19:02:12.308Z\",\"type\":\"platform.report\","
             "\"record\":{\"requestId\":\"%s\",\"status\":\"success\",\"metrics\":{"
             "\"durationMs\":%.3f,\"billedDurationMs\":%d,\"memorySizeMB\":128,"
             "\"maxMemoryUsedMB\":26%s},\"spans\":[{\"name\":\"extensionOverhead\","
             "\"start\":\"2026-07-28T19:02:11.816Z\",\"durationMs\":0.25}]}}]",
             rid, duration - 0.5, rid, duration, (int)duration + 1,
             with_init ? ",\"initDurationMs\":131.048" : "");
    return s;
}

static double report_duration(int invoke_index)
{
    return 10.0 * (invoke_index + 1) + 0.125;
}

static void *late_report(void *arg)
{
    struct fake *f = arg;
    struct timespec ts = {0, 100 * 1000000L};
    char *b;
    int last = -1;
    int i;

    nanosleep(&ts, NULL);
    for (i = 0; i < f->nevents; i++) {
        if (f->request_ids[i]) {
            last = i;
        }
    }
    if (last >= 0) {
        b = report_batch(f->request_ids[last], report_duration(last), last == 0);
        f->late_status = (int)http_post(f->listener_port, b, strlen(b), "POST");
        free(b);
    }
    return NULL;
}

static void inject_facts(struct fake *f, int n)
{
    struct facts fa;
    int i;

    for (i = 0; i < n; i++) {
        memset(&fa, 0, sizeof(fa));
        fa.service = FACTS_SVC_SECRETS_MANAGER;
        fa.outcome = FACTS_HIT;
        fa.status = 200;
        fa.latency_ms = 0.5;
        telemetry_on_facts(f->metrics, &fa);
    }
}

/* Two overlapping invocations on a Managed Instance: each request names its invocation
 * (X-Stash-Request-Id), one names none; then their reports, in the LMI shape (no runtimeDone). */
static void lmi_invocations(struct fake *f)
{
    static const char batch[] =
        "[{\"time\":\"2026-07-28T19:02:12.308Z\",\"type\":\"platform.report\","
        "\"record\":{\"requestId\":\"lmi-2\",\"status\":\"success\","
        "\"metrics\":{\"durationMs\":7.5}}},"
        "{\"time\":\"2026-07-28T19:02:12.309Z\",\"type\":\"platform.report\","
        "\"record\":{\"requestId\":\"lmi-1\",\"status\":\"success\","
        "\"metrics\":{\"durationMs\":9.25}}}]";
    static const char *const ids[] = {"lmi-1", "lmi-2", "lmi-1", ""};
    struct facts fa;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        memset(&fa, 0, sizeof(fa));
        fa.service = FACTS_SVC_SECRETS_MANAGER;
        fa.outcome = FACTS_HIT;
        fa.status = 200;
        fa.latency_ms = 0.5;
        snprintf(fa.request_id, sizeof(fa.request_id), "%s", ids[i]);
        telemetry_on_facts(f->metrics, &fa);
    }
    if (f->subscribed && http_post(f->listener_port, batch, strlen(batch), "POST") != 200) {
        f->report_refused++;
    }
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body,
                              const char *hname, const char *hval)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", "application/json");
    if (hname) {
        MHD_add_response_header(r, hname, hval);
    }
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result fake_handle(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    struct fake *f = cls;
    struct fake_req *req = *con_cls;
    const char *id;
    const char *v;
    char *b;
    int k;
    enum MHD_Result ret;

    (void)version;
    if (!req) {
        req = xcalloc(1, sizeof(*req));
        buf_init(&req->body, 65536);
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        /* No cmocka assert on this thread (it would longjmp across MHD): a bad body is simply
         * cut, and the test's checks on what was captured fail instead. */
        (void)buf_append(&req->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Lambda-Extension-Identifier");
    if (strcmp(url, "/2020-01-01/extension/register") == 0 && strcmp(method, "POST") == 0) {
        v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Lambda-Extension-Name");
        pthread_mutex_lock(&f->lock);
        snprintf(f->name, sizeof(f->name), "%s", v ? v : "");
        snprintf(f->register_body, sizeof(f->register_body), "%s",
                 req->body.data ? req->body.data : "");
        pthread_mutex_unlock(&f->lock);
        if (f->lmi && strstr(f->register_body, "INVOKE")) {
            return answer(c, 403,
                          "{\"errorMessage\":\"INVOKE: ErrorInvalidEventType\","
                          "\"errorType\":\"Extension.InvalidEventType\"}\n",
                          NULL, NULL);
        }
        if (f->register_status != 200) {
            return answer(c, (unsigned)f->register_status,
                          "{\"errorMessage\":\"Extension limit (10) reached\","
                          "\"errorType\":\"Extension.TooManyExtensions\"}\n",
                          NULL, NULL);
        }
        return answer(c, 200,
                      "{\"functionName\":\"test_function\",\"functionVersion\":\"$LATEST\","
                      "\"handler\":\"\"}",
                      "Lambda-Extension-Identifier", FAKE_ID);
    }
    if (!id || strcmp(id, FAKE_ID) != 0) {
        f->id_seen_ok = 0;
        return answer(c, 403,
                      "{\"errorMessage\":\"Missing Lambda-Extension-Identifier header\","
                      "\"errorType\":\"Extension.MissingExtensionIdentifier\"}\n",
                      NULL, NULL);
    }
    if (strcmp(url, "/2022-07-01/telemetry") == 0 && strcmp(method, "PUT") == 0) {
        const char *p;

        pthread_mutex_lock(&f->lock);
        snprintf(f->subscription, sizeof(f->subscription), "%s",
                 req->body.data ? req->body.data : "");
        p = strstr(f->subscription, "sandbox.localdomain:");
        f->listener_port = p ? (uint16_t)atoi(p + strlen("sandbox.localdomain:")) : 0;
        pthread_mutex_unlock(&f->lock);
        if (f->lmi && !strstr(f->subscription, "\"schemaVersion\":\"2025-01-29\"")) {
            return answer(c, 400,
                          "{\"errorMessage\":\"schemaVersion\","
                          "\"errorType\":\"Telemetry.InvalidSchemaVersion\"}\n",
                          NULL, NULL);
        }
        if (f->telemetry == TELEMETRY_NOT_SUPPORTED) {
            return answer(c, 202,
                          "{\"errorMessage\":\"Telemetry API is not supported\","
                          "\"errorType\":\"Telemetry.NotSupported\"}\n",
                          NULL, NULL);
        }
        f->subscribed = 1;
        return answer(c, 200, "\"OK\"", NULL, NULL);
    }
    if (strcmp(url, "/2020-01-01/extension/event/next") == 0 && strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&f->lock);
        k = f->nnext++;
        pthread_mutex_unlock(&f->lock);
        /* The extension is back for more: invoke k-1 is over.  Its local requests happened
         * before this call; its report comes now (Lambda delivers it during the next invoke). */
        if (k > 0 && f->request_ids[k - 1]) {
            inject_facts(f, f->hits_per_invoke + k - 1);
            if (f->subscribed && k < f->nevents && f->request_ids[k]) {
                if (f->garbage_first) {
                    /* A cut or corrupt batch first: refused, and nothing before it is lost. */
                    f->garbage_status = (int)http_post(f->listener_port, "[{\"time\":", 9, "POST");
                }
                b = report_batch(f->request_ids[k - 1], report_duration(k - 1), k - 1 == 0);
                if (http_post(f->listener_port, b, strlen(b), "POST") != 200) {
                    f->report_refused++;
                }
                free(b);
            }
        }
        if (k == 0 && f->lmi) {
            lmi_invocations(f);
        }
        if (k >= f->nevents) {
            return answer(c, 500, "{\"errorType\":\"Test.Exhausted\"}", NULL, NULL);
        }
        if (strstr(f->events[k], "SHUTDOWN") && f->subscribed && f->deliver_last_report) {
            f->late_started = pthread_create(&f->late, NULL, late_report, f) == 0;
        }
        ret = answer(c, 200, f->events[k], "Lambda-Extension-Event-Identifier",
                     "97501526-3a7c-4852-b3b1-9560d12b2cdc");
        return ret;
    }
    if (strncmp(url, "/2020-01-01/extension/", 22) == 0 &&
        (strcmp(url + 22, "init/error") == 0 || strcmp(url + 22, "exit/error") == 0)) {
        v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Lambda-Extension-Function-Error-Type");
        if (!v) {
            return answer(c, 403, "{\"errorType\":\"Extension.MissingHeader\"}\n", NULL, NULL);
        }
        pthread_mutex_lock(&f->lock);
        snprintf(url[22] == 'i' ? f->init_error : f->exit_error, sizeof(f->init_error), "%s", v);
        snprintf(f->error_body, sizeof(f->error_body), "%s", req->body.data ? req->body.data : "");
        pthread_mutex_unlock(&f->lock);
        return answer(c, 202, "{\"status\":\"OK\"}\n", NULL, NULL);
    }
    return answer(c, 404, "{\"errorType\":\"NotFound\"}", NULL, NULL);
}

static void fake_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct fake_req *req = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (req) {
        buf_release(&req->body);
        free(req);
        *con_cls = NULL;
    }
}

static void fake_start(struct fake *f)
{
    f->id_seen_ok = 1;
    pthread_mutex_init(&f->lock, NULL);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, fake_handle, f, MHD_OPTION_NOTIFY_COMPLETED, fake_completed,
                            f, MHD_OPTION_END);
    assert_non_null(f->d);
    f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void fake_stop(struct fake *f)
{
    if (f->late_started) {
        pthread_join(f->late, NULL);
    }
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->lock);
}

/* What lifecycle_run's hooks saw. */
struct hooks_log {
    int stopped;
    int stop_returned;       /* the stop hook had returned when lifecycle_run did */
    int stuck;               /* the stop hook acts as if a request waited on a hung upstream */
    int out_fd;              /* the EMF lines' file */
    int lines_while_stopped; /* stuck: the lines were written while stop_serving had not returned */
};

/* Set by a test before run(): the next run's stop_serving is stuck (see hooks_log.stuck). */
static int s_stop_stuck;

static void hook_stop(void *ctx)
{
    struct hooks_log *h = ctx;

    h->stopped++;
    if (h->stuck) {
        /* Stuck until more EMF lines are out (the init record's went out at the first INVOKE),
         * as long as an upstream timeout could hold it; the 10 s cap only keeps a broken
         * lifecycle from hanging the test (which then fails). */
        struct stat st;
        off_t before = fstat(h->out_fd, &st) == 0 ? st.st_size : 0;

        for (int i = 0; i < 2000; i++) {
            struct timespec ts = {0, 5000000L};

            if (fstat(h->out_fd, &st) == 0 && st.st_size > before) {
                h->lines_while_stopped = 1;
                break;
            }
            nanosleep(&ts, NULL);
        }
    }
    h->stop_returned = 1;
}

/* Runs lifecycle_run against f, with EMF lines going to a temp file; returns the exit status
 * and the lines as parsed JSON objects (caller frees). */
static int run(struct fake *f, const char *mode, cJSON **lines, size_t *nlines,
               struct hooks_log *hl)
{
    char runtime_api[32];
    struct telemetry_config tc;
    struct telemetry_settings *set;
    struct lifecycle_opts o;
    struct lifecycle_hooks h;
    struct sockaddr_storage ss;
    socklen_t sl;
    FILE *tmp = tmpfile();
    char err[256];
    char line[65536];
    int status;

    assert_non_null(tmp);
    memset(&tc, 0, sizeof(tc));
    tc.mode = mode;
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_OK);
    f->metrics = telemetry_new(set, fileno(tmp), NULL, NULL);
    telemetry_settings_free(set);
    /* A request during init (the function's init code reading a secret). */
    {
        struct facts fa;

        memset(&fa, 0, sizeof(fa));
        fa.service = FACTS_SVC_SSM;
        fa.outcome = FACTS_MISS;
        fa.status = 200;
        fa.latency_ms = 12.5;
        fa.ncalls = fa.ncalls_recorded = 1;
        fa.calls[0].ms = 11.0;
        fa.calls[0].http_status = 200;
        telemetry_on_facts(f->metrics, &fa);
    }
    fake_start(f);
    snprintf(runtime_api, sizeof(runtime_api), "127.0.0.1:%u", (unsigned)f->port);
    listener_resolve("127.0.0.1", 0, &ss, &sl);
    memset(&o, 0, sizeof(o));
    o.runtime_api = runtime_api;
    o.name = "stash-test";
    o.listen_addr = (struct sockaddr *)&ss;
    o.listen_addrlen = sl;
    o.metrics = f->metrics;
    memset(&h, 0, sizeof(h));
    memset(hl, 0, sizeof(*hl));
    hl->stuck = s_stop_stuck;
    hl->out_fd = fileno(tmp);
    s_stop_stuck = 0;
    h.ctx = hl;
    h.stop = hook_stop;
    status = lifecycle_run(&o, &h);
    fake_stop(f);

    *nlines = 0;
    rewind(tmp);
    while (fgets(line, sizeof(line), tmp)) {
        assert_true(*nlines < 16);
        assert_non_null(strchr(line, '\n'));
        lines[*nlines] = cJSON_Parse(line);
        assert_non_null(lines[*nlines]);
        (*nlines)++;
    }
    fclose(tmp);
    telemetry_free(f->metrics);
    f->metrics = NULL;
    return status;
}

static const cJSON *prop(const cJSON *line, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(line, name);
}

static double num(const cJSON *line, const char *name)
{
    const cJSON *it = prop(line, name);

    assert_true(cJSON_IsNumber(it));
    return it->valuedouble;
}

/* The line whose requestId is rid (NULL: the init record's line, which has none or ""). */
static const cJSON *line_for(cJSON **lines, size_t n, const char *rid)
{
    const cJSON *r;
    size_t i;

    for (i = 0; i < n; i++) {
        r = prop(lines[i], "requestId");
        if (rid && cJSON_IsString(r) && strcmp(r->valuestring, rid) == 0) {
            return lines[i];
        }
        if (!rid && (!cJSON_IsString(r) || !r->valuestring[0])) {
            return lines[i];
        }
    }
    return NULL;
}

static void free_lines(cJSON **lines, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        cJSON_Delete(lines[i]);
    }
}

#define INVOKE(id)                                                                     \
    "{\"eventType\":\"INVOKE\",\"deadlineMs\":4102444800000,\"requestId\":\"" id "\"," \
    "\"invokedFunctionArn\":\"arn:aws:lambda:us-east-1:012345678912:function:test_function\"}"

static char s_shutdown_far[128];

/* A SHUTDOWN event whose deadline is ms from now, for the given reason. */
static void shutdown_event(char *buf, size_t len, unsigned ms, const char *reason)
{
    snprintf(buf, len, "{\"eventType\":\"SHUTDOWN\",\"deadlineMs\":%llu,\"shutdownReason\":\"%s\"}",
             (unsigned long long)(clock_real_ms() + ms), reason);
}

static void set_shutdown_far(void)
{
    /* A SHUTDOWN deadline two seconds from now, as Lambda gives. */
    shutdown_event(s_shutdown_far, sizeof(s_shutdown_far), 2000, "spindown");
}

static void test_run_invokes_and_shutdown(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;
    const cJSON *l1;
    const cJSON *l2;
    const cJSON *init;

    (void)state;
    memset(&f, 0, sizeof(f));
    set_shutdown_far();
    f.register_status = 200;
    f.telemetry = TELEMETRY_OK;
    f.events[0] = INVOKE("req-1");
    f.request_ids[0] = "req-1";
    f.events[1] = INVOKE("req-2");
    f.request_ids[1] = "req-2";
    f.events[2] = s_shutdown_far;
    f.nevents = 3;
    f.hits_per_invoke = 2; /* req-1: 2 hits, req-2: 3 hits */
    f.deliver_last_report = 1;
    f.garbage_first = 1;

    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 0);
    /* Registration: the executable's name, both events, the identifier kept. */
    assert_string_equal(f.name, "stash-test");
    assert_non_null(strstr(f.register_body, "\"INVOKE\""));
    assert_non_null(strstr(f.register_body, "\"SHUTDOWN\""));
    assert_true(f.id_seen_ok);
    assert_int_equal(f.nnext, 3);
    assert_non_null(strstr(f.subscription, "\"types\":[\"platform\"]"));
    assert_non_null(strstr(f.subscription, "\"schemaVersion\":\"2022-12-13\""));
    assert_true(f.listener_port > 0);
    assert_string_equal(f.init_error, "");
    assert_string_equal(f.exit_error, "");
    /* SHUTDOWN: the work stopped once, and for good before lifecycle_run returned. */
    assert_int_equal(hl.stopped, 1);
    assert_true(hl.stop_returned);
    /* The last report came 100 ms after SHUTDOWN and was waited for. */
    assert_int_equal(f.late_status, 200);
    assert_int_equal(f.report_refused, 0);
    assert_int_equal(f.garbage_status, 400);

    /* init record + two invocations, each with what happened and Lambda's figures. */
    assert_int_equal(n, 3);
    init = line_for(lines, n, NULL);
    assert_non_null(init);
    assert_int_equal(num(init, "CacheMisses"), 1);
    assert_int_equal(num(init, "ParameterStoreCalls"), 1);
    l1 = line_for(lines, n, "req-1");
    assert_non_null(l1);
    assert_int_equal(num(l1, "CacheHits"), 2);
    assert_int_equal(num(l1, "CacheMisses"), 0);
    assert_true(num(l1, "Duration") == report_duration(0));
    assert_int_equal(num(l1, "BilledDuration"), (int)report_duration(0) + 1);
    assert_int_equal(num(l1, "MaxMemoryUsed"), 26);
    assert_true(num(l1, "InitDuration") == 131.048);
    assert_int_equal(num(l1, "ColdStart"), 1);
    assert_string_equal(prop(l1, "functionVersion")->valuestring, "$LATEST");
    assert_string_equal(prop(l1, "FunctionName")->valuestring, "test_function");
    l2 = line_for(lines, n, "req-2");
    assert_non_null(l2);
    assert_int_equal(num(l2, "CacheHits"), 3);
    assert_true(num(l2, "Duration") == report_duration(1));
    assert_null(prop(l2, "InitDuration"));
    assert_int_equal(num(l2, "ColdStart"), 0);
    free_lines(lines, n);
}

static void test_run_telemetry_refused(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;
    const cJSON *l1;
    const cJSON *l2;

    (void)state;
    memset(&f, 0, sizeof(f));
    set_shutdown_far();
    f.register_status = 200;
    f.telemetry = TELEMETRY_NOT_SUPPORTED;
    f.events[0] = INVOKE("req-a");
    f.request_ids[0] = "req-a";
    f.events[1] = INVOKE("req-b");
    f.request_ids[1] = "req-b";
    f.events[2] = s_shutdown_far;
    f.nevents = 3;
    f.hits_per_invoke = 4;
    f.deliver_last_report = 1; /* ignored: not subscribed */

    /* The extension keeps working: every event is taken, every record is written. */
    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 0);
    assert_int_equal(f.nnext, 3);
    assert_string_equal(f.init_error, "");
    assert_int_equal(hl.stopped, 1);
    assert_int_equal(n, 3);
    l1 = line_for(lines, n, "req-a");
    l2 = line_for(lines, n, "req-b");
    assert_non_null(l1);
    assert_non_null(l2);
    assert_int_equal(num(l1, "CacheHits"), 4);
    assert_int_equal(num(l2, "CacheHits"), 5);
    assert_int_equal(num(l1, "ColdStart"), 1);
    /* No Lambda figure is invented when none arrived. */
    assert_null(prop(l1, "Duration"));
    assert_null(prop(l2, "BilledDuration"));
    free_lines(lines, n);
}

static void test_run_report_never_comes(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;
    char shutdown[128];
    const cJSON *l1;

    (void)state;
    memset(&f, 0, sizeof(f));
    /* A deadline 400 ms out leaves 100 ms of wait: the record goes out without its report. */
    shutdown_event(shutdown, sizeof(shutdown), 400, "timeout");
    f.register_status = 200;
    f.telemetry = TELEMETRY_OK;
    f.events[0] = INVOKE("req-x");
    f.request_ids[0] = "req-x";
    f.events[1] = shutdown;
    f.nevents = 2;
    f.hits_per_invoke = 1;
    f.deliver_last_report = 0;

    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 0);
    l1 = line_for(lines, n, "req-x");
    assert_non_null(l1);
    assert_int_equal(num(l1, "CacheHits"), 1);
    assert_null(prop(l1, "Duration"));
    free_lines(lines, n);
}

/* A function timed out because stash's request waited on an upstream that never answered:
 * SHUTDOWN (timeout) comes while that request still holds stop_serving.  The records must be
 * written anyway, before the deadline; the wipe still waits for the local API to stop. */
static void test_run_shutdown_with_stuck_request(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;
    char shutdown[128];
    const cJSON *l1;

    (void)state;
    memset(&f, 0, sizeof(f));
    shutdown_event(shutdown, sizeof(shutdown), 2000, "timeout");
    f.register_status = 200;
    f.telemetry = TELEMETRY_OK;
    f.events[0] = INVOKE("req-t");
    f.request_ids[0] = "req-t";
    f.events[1] = shutdown;
    f.nevents = 2;
    f.hits_per_invoke = 1;
    f.deliver_last_report = 1;
    s_stop_stuck = 1;

    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 0);
    assert_int_equal(hl.stopped, 1);
    assert_true(hl.lines_while_stopped);
    assert_true(hl.stop_returned);
    l1 = line_for(lines, n, "req-t");
    assert_non_null(l1);
    assert_int_equal(num(l1, "CacheHits"), 1);
    free_lines(lines, n);
}

/* Lambda Managed Instances refuse INVOKE at register: stash registers for SHUTDOWN alone and
 * keeps working (the function's init does not fail), subscribes with the schema LMI takes, and
 * builds its records from the callers' ids and the reports. */
static void test_run_managed_instances(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;
    const cJSON *l1;
    const cJSON *l2;
    const cJSON *init;

    (void)state;
    memset(&f, 0, sizeof(f));
    set_shutdown_far();
    f.register_status = 200;
    f.telemetry = TELEMETRY_OK;
    f.lmi = 1;
    f.events[0] = s_shutdown_far;
    f.nevents = 1;

    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 0);
    assert_string_equal(f.register_body, "{\"events\":[\"SHUTDOWN\"]}");
    assert_true(f.subscribed);
    assert_int_equal(f.report_refused, 0);
    assert_string_equal(f.init_error, "");
    assert_int_equal(hl.stopped, 1);
    assert_true(hl.stop_returned);
    assert_int_equal(n, 3);
    l1 = line_for(lines, n, "lmi-1");
    assert_non_null(l1);
    assert_int_equal(num(l1, "CacheHits"), 2);
    assert_true(num(l1, "Duration") == 9.25);
    assert_int_equal(num(l1, "ColdStart"), 1);
    l2 = line_for(lines, n, "lmi-2");
    assert_non_null(l2);
    assert_int_equal(num(l2, "CacheHits"), 1);
    assert_true(num(l2, "Duration") == 7.5);
    assert_int_equal(num(l2, "ColdStart"), 0);
    /* The init read (run()'s) and the request that named no invocation. */
    init = line_for(lines, n, NULL);
    assert_non_null(init);
    assert_int_equal(num(init, "CacheMisses"), 1);
    assert_int_equal(num(init, "CacheHits"), 1);
    free_lines(lines, n);
}

/* stash cannot work (here: its configuration is invalid): it registers, reports the reason by
 * init/error with the type asked for, and goes no further (no event/next, no subscription). */
static void test_report_init_error(void **state)
{
    struct fake f;
    char runtime_api[32];

    (void)state;
    memset(&f, 0, sizeof(f));
    f.register_status = 200;
    f.events[0] = INVOKE("req-1");
    f.request_ids[0] = "req-1";
    f.nevents = 1;
    fake_start(&f);
    snprintf(runtime_api, sizeof(runtime_api), "127.0.0.1:%u", (unsigned)f.port);
    assert_int_equal(lifecycle_report_init_error(runtime_api, "stash-test",
                                                 "Extension.ConfigInvalid",
                                                 "STASH_METRICS_MODE: \"loud\" is not one of "
                                                 "invocation, aggregate, off"),
                     STASH_OK);
    fake_stop(&f);
    assert_string_equal(f.name, "stash-test");
    assert_string_equal(f.init_error, "Extension.ConfigInvalid");
    assert_string_equal(f.exit_error, "");
    /* The message reaches Lambda as errorMessage, JSON-escaped. */
    assert_non_null(strstr(f.error_body, "\"errorMessage\":\"STASH_METRICS_MODE: \\\"loud\\\" is "
                                         "not one of invocation, aggregate, off\""));
    assert_non_null(strstr(f.error_body, "\"errorType\":\"Extension.ConfigInvalid\""));
    assert_int_equal(f.nnext, 0);
    assert_int_equal(f.subscribed, 0);

    /* Register refused: nothing more is sent, and the caller hears it. */
    memset(&f, 0, sizeof(f));
    f.register_status = 403;
    fake_start(&f);
    snprintf(runtime_api, sizeof(runtime_api), "127.0.0.1:%u", (unsigned)f.port);
    assert_int_equal(lifecycle_report_init_error(runtime_api, "stash-test",
                                                 "Extension.LocalApiUnavailable", "port in use"),
                     STASH_EUPSTREAM);
    fake_stop(&f);
    assert_string_equal(f.init_error, "");
    /* Unusable inputs: refused before any request. */
    assert_int_equal(lifecycle_report_init_error("127.0.0.1:9/x", "stash", "A.B", "m"),
                     STASH_EINVAL);
    assert_int_equal(lifecycle_report_init_error("127.0.0.1:9", "", "A.B", "m"), STASH_EINVAL);
}

static void test_run_register_refused(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;

    (void)state;
    memset(&f, 0, sizeof(f));
    f.register_status = 403;
    f.events[0] = INVOKE("req-1");
    f.nevents = 1;
    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 1);
    assert_string_equal(f.name, "stash-test");
    assert_int_equal(f.nnext, 0);
    /* Never registered, still stopped: the caller stops nothing itself. */
    assert_int_equal(hl.stopped, 1);
    assert_true(hl.stop_returned);
    free_lines(lines, n);
}

static void test_run_next_refused(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;

    (void)state;
    memset(&f, 0, sizeof(f));
    f.register_status = 200;
    f.telemetry = TELEMETRY_NOT_SUPPORTED;
    f.events[0] = INVOKE("req-1");
    f.request_ids[0] = "req-1";
    f.nevents = 1; /* the second next gets a 500 */
    f.hits_per_invoke = 2;
    assert_int_equal(run(&f, "invocation", lines, &n, &hl), 1);
    /* What was recorded still goes out, and Lambda hears why we stop. */
    assert_string_equal(f.exit_error, "Extension.EventNextFailed");
    assert_int_equal(hl.stopped, 1);
    assert_true(hl.stop_returned);
    assert_non_null(line_for(lines, n, "req-1"));
    assert_int_equal(num(line_for(lines, n, "req-1"), "CacheHits"), 2);
    free_lines(lines, n);
}

static void test_run_metrics_off(void **state)
{
    struct fake f;
    struct hooks_log hl;
    cJSON *lines[16];
    size_t n;

    (void)state;
    memset(&f, 0, sizeof(f));
    set_shutdown_far();
    f.register_status = 200;
    f.telemetry = TELEMETRY_OK;
    f.events[0] = INVOKE("req-1");
    f.request_ids[0] = "req-1";
    f.events[1] = s_shutdown_far;
    f.nevents = 2;
    f.hits_per_invoke = 1;
    assert_int_equal(run(&f, "off", lines, &n, &hl), 0);
    /* Off means off: no subscription (no buffer memory charged to the function), no lines. */
    assert_string_equal(f.subscription, "");
    assert_int_equal(n, 0);
    assert_int_equal(hl.stopped, 1);
}

static void test_run_bad_inputs(void **state)
{
    struct lifecycle_opts o;

    (void)state;
    memset(&o, 0, sizeof(o));
    /* Nothing is sent anywhere: these fail before any request (port 9 would refuse anyway). */
    o.runtime_api = "127.0.0.1:9";
    o.name = "stash\r\nX-Evil: 1";
    assert_int_equal(lifecycle_run(&o, NULL), 1);
    o.name = "stash";
    o.runtime_api = "127.0.0.1:9/x";
    assert_int_equal(lifecycle_run(&o, NULL), 1);
    o.runtime_api = "";
    assert_int_equal(lifecycle_run(&o, NULL), 1);
    /* A platform that is not there: register fails, exit status 1. */
    o.runtime_api = "127.0.0.1:9";
    assert_int_equal(lifecycle_run(&o, NULL), 1);
}

/* The metrics settings are checked once, each variable named in the reason; mode off makes no
 * telemetry, and every telemetry call takes NULL. */
static void test_metrics_bad_config(void **state)
{
    struct telemetry_config tc;
    struct telemetry_settings *set = (struct telemetry_settings *)&tc;
    struct telemetry_stats st;
    char err[256];

    (void)state;
    memset(&tc, 0, sizeof(tc));
    tc.namespace_ = "AWS/Lambda";
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_EINVAL);
    assert_null(set);
    assert_non_null(strstr(err, "STASH_METRICS_NAMESPACE"));
    tc.namespace_ = NULL;
    tc.dimensions = "Stage";
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_EINVAL);
    assert_non_null(strstr(err, "STASH_METRICS_DIMENSIONS"));
    tc.dimensions = "Stage=prod";
    tc.mode = "sometimes";
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_EINVAL);
    assert_non_null(strstr(err, "STASH_METRICS_MODE"));
    tc.mode = "off";
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_OK);
    assert_null(telemetry_new(set, 1, "f", "1"));
    telemetry_settings_free(set);
    tc.mode = NULL;
    assert_int_equal(telemetry_settings_new(&tc, &set, err, sizeof(err)), STASH_OK);
    assert_non_null(set);
    telemetry_free(telemetry_new(set, 1, "f", "1"));
    telemetry_settings_free(set);
    telemetry_settings_free(NULL);
    telemetry_free(NULL);
    telemetry_on_facts(NULL, NULL);
    telemetry_stats(NULL, &st);
    assert_int_equal(st.records, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_event_samples),
        cmocka_unit_test(test_parse_event_bad),
        cmocka_unit_test(test_name_from_argv0),
        cmocka_unit_test(test_subscription_body),
        cmocka_unit_test(test_listener_answers),
        cmocka_unit_test(test_listener_resolve_fallback),
        cmocka_unit_test(test_metrics_bad_config),
        cmocka_unit_test(test_run_bad_inputs),
        cmocka_unit_test(test_run_invokes_and_shutdown),
        cmocka_unit_test(test_run_telemetry_refused),
        cmocka_unit_test(test_run_report_never_comes),
        cmocka_unit_test(test_run_shutdown_with_stuck_request),
        cmocka_unit_test(test_run_managed_instances),
        cmocka_unit_test(test_report_init_error),
        cmocka_unit_test(test_run_register_refused),
        cmocka_unit_test(test_run_next_refused),
        cmocka_unit_test(test_run_metrics_off),
    };
    int rc;

    g_log_level = getenv("TEST_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_NONE;
    mem_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
