/* Unit tests for lambda-sim's pure parts: the wire (register and subscription parsing, events
 * and Telemetry records as Lambda renders them), billing, the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "sim/lambda_sim/config.h"
#include "sim/lambda_sim/tele.h"
#include "sim/lambda_sim/util.h"
#include "sim/lambda_sim/wire.h"

/* 2026-07-28T19:02:11.803Z, the honeycomb capture's platform.start */
#define T0 1785265331803ull

static void test_register_body(void **state)
{
    struct wire_error err;
    unsigned ev = 99;

    (void)state;
    assert_int_equal(wire_parse_register("", 0, &ev, &err), STASH_OK);
    assert_int_equal(ev, 0);
    assert_int_equal(wire_parse_register("{}", 2, &ev, &err), STASH_OK);
    assert_int_equal(ev, 0);
    assert_int_equal(wire_parse_register("{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}", 33, &ev, &err),
                     STASH_OK);
    assert_int_equal(ev, WIRE_EV_INVOKE | WIRE_EV_SHUTDOWN);
    assert_int_equal(wire_parse_register("{\"events\":[\"SHUTDOWN\"]}", 23, &ev, &err), STASH_OK);
    assert_int_equal(ev, WIRE_EV_SHUTDOWN);
}

static void test_register_errors(void **state)
{
    struct wire_error err;
    unsigned ev;
    const char *bad_event = "{\"events\":[\"INVOKE\",\"BOGUS\"]}";
    const char *keys = "{\"events\":[],\"configurationKeys\":[\"a\"]}";

    (void)state;
    assert_int_equal(wire_parse_register(bad_event, strlen(bad_event), &ev, &err), STASH_EINVAL);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.type, "Extension.InvalidEventType");
    assert_string_equal(err.message, "BOGUS: ErrorInvalidEventType");
    assert_int_equal(wire_parse_register(keys, strlen(keys), &ev, &err), STASH_EINVAL);
    assert_string_equal(err.type, "InvalidRequestFormat");
    assert_string_equal(err.message,
                        "configurationKeys are deprecated; use environment variables instead");
    assert_int_equal(wire_parse_register("{\"events\":", 10, &ev, &err), STASH_EINVAL);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.type, "InvalidRequestFormat");
    assert_int_equal(wire_parse_register("{\"events\":\"INVOKE\"}", 19, &ev, &err), STASH_EINVAL);
}

static enum stash_err sub(const char *buffering, const char *uri, struct wire_subscription *s,
                          struct wire_error *err)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "{\"schemaVersion\":\"2022-12-13\",\"types\":[\"platform\",\"function\"]%s%s,"
             "\"destination\":{\"protocol\":\"HTTP\",\"URI\":\"%s\"}}",
             buffering ? ",\"buffering\":" : "", buffering ? buffering : "", uri);
    return wire_parse_subscription(body, strlen(body), s, err);
}

static void test_subscription_defaults(void **state)
{
    struct wire_subscription s;
    struct wire_error err;

    (void)state;
    assert_int_equal(sub(NULL, "http://sandbox.localdomain:4243", &s, &err), STASH_OK);
    assert_string_equal(s.schema, "2022-12-13");
    assert_int_equal(s.types, WIRE_T_PLATFORM | WIRE_T_FUNCTION);
    assert_int_equal(s.max_items, 10000);
    assert_int_equal(s.max_bytes, 262144);
    assert_int_equal(s.timeout_ms, 1000);
    assert_string_equal(s.host, "sandbox.localdomain");
    assert_int_equal(s.port, 4243);
    assert_string_equal(s.path, "/");
    assert_int_equal(sub(NULL, "http://sandbox:8999/lambda/logs", &s, &err), STASH_OK);
    assert_string_equal(s.host, "sandbox");
    assert_string_equal(s.path, "/lambda/logs");
}

static void test_subscription_bounds(void **state)
{
    static const struct {
        const char *buffering;
        enum stash_err want;
    } cases[] = {
        {"{\"maxItems\":1000,\"maxBytes\":262144,\"timeoutMs\":25}", STASH_OK},
        {"{\"maxItems\":10000,\"maxBytes\":1048576,\"timeoutMs\":30000}", STASH_OK},
        {"{\"maxItems\":999}", STASH_EINVAL},
        {"{\"maxItems\":10001}", STASH_EINVAL},
        {"{\"maxItems\":1000.5}", STASH_EINVAL},
        {"{\"maxItems\":\"1000\"}", STASH_EINVAL},
        {"{\"maxBytes\":262143}", STASH_EINVAL},
        {"{\"maxBytes\":1048577}", STASH_EINVAL},
        {"{\"timeoutMs\":24}", STASH_EINVAL},
        {"{\"timeoutMs\":30001}", STASH_EINVAL},
        {"[]", STASH_EINVAL},
    };
    struct wire_subscription s;
    struct wire_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum stash_err rc = sub(cases[i].buffering, "http://sandbox.localdomain:1234/", &s, &err);

        if (rc != cases[i].want) {
            fail_msg("buffering %s: got %d", cases[i].buffering, rc);
        }
        if (rc != STASH_OK) {
            assert_int_equal(err.status, 400);
            assert_string_equal(err.type, "ValidationError");
        }
    }
    assert_int_equal(sub("{\"maxItems\":2000,\"timeoutMs\":100}", "http://sandbox:1/", &s, &err),
                     STASH_OK);
    assert_int_equal(s.max_items, 2000);
    assert_int_equal(s.timeout_ms, 100);
    assert_int_equal(s.max_bytes, 262144);
}

static void test_subscription_destination(void **state)
{
    static const char *const bad[] = {
        "http://example.com:4243/",
        "http://sandbox.localdomain/",
        "https://sandbox:4243/",
        "http://sandbox:0/",
        "http://sandbox:65536/",
        "http://sandbox:12ab/",
        "http://sandbox.localdomain.evil:1/",
        "",
    };
    struct wire_subscription s;
    struct wire_error err;
    size_t i;
    const char *tcp = "{\"schemaVersion\":\"2025-01-29\",\"types\":[\"platform\"],"
                      "\"destination\":{\"protocol\":\"TCP\",\"port\":4243}}";
    const char *no_types = "{\"schemaVersion\":\"2025-01-29\",\"types\":[],"
                           "\"destination\":{\"protocol\":\"HTTP\",\"URI\":\"http://sandbox:1\"}}";
    const char *old = "{\"schemaVersion\":\"2020-08-15\",\"types\":[\"platform\"],"
                      "\"destination\":{\"protocol\":\"HTTP\",\"URI\":\"http://sandbox:1\"}}";

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sub(NULL, bad[i], &s, &err) != STASH_EINVAL) {
            fail_msg("URI %s was accepted", bad[i]);
        }
    }
    assert_int_equal(sub(NULL, "http://sandbox.localdomain/x", &s, &err), STASH_EINVAL);
    assert_string_equal(err.message, "URI port is not provided");
    assert_int_equal(sub(NULL, "http://example.com:1/", &s, &err), STASH_EINVAL);
    assert_string_equal(err.message, "destination.URI host must be sandbox.localdomain");
    assert_int_equal(wire_parse_subscription(tcp, strlen(tcp), &s, &err), STASH_EINVAL);
    assert_int_equal(wire_parse_subscription(no_types, strlen(no_types), &s, &err), STASH_EINVAL);
    assert_string_equal(err.message, "types should not be empty");
    assert_int_equal(wire_parse_subscription(old, strlen(old), &s, &err), STASH_EINVAL);
    assert_int_equal(wire_parse_subscription("nope", 4, &s, &err), STASH_EINVAL);
}

static void test_events_json(void **state)
{
    char *s;

    (void)state;
    s = wire_invoke_event(1795323951282ull, "3bb29c2f-a912-4282-a373-4d0c45471244",
                          "arn:aws:lambda:us-east-1:012345678912:function:test_function", NULL);
    /* Byte for byte what RIE v1.15 sent (extensions-api-samples/rie-v1.15-observed.ext-next-1) */
    assert_string_equal(s, "{\"eventType\":\"INVOKE\",\"deadlineMs\":1795323951282,\"requestId\":"
                           "\"3bb29c2f-a912-4282-a373-4d0c45471244\",\"invokedFunctionArn\":"
                           "\"arn:aws:lambda:us-east-1:012345678912:function:test_function\"}");
    free(s);
    s = wire_invoke_event(1, "r", "a", "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Sampled=1");
    assert_string_equal(s, "{\"eventType\":\"INVOKE\",\"deadlineMs\":1,\"requestId\":\"r\","
                           "\"invokedFunctionArn\":\"a\",\"tracing\":{\"type\":\"X-Amzn-Trace-Id\","
                           "\"value\":\"Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Sampled=1\"}}");
    free(s);
    s = wire_shutdown_event(1795323949503ull, "spindown");
    assert_string_equal(s, "{\"eventType\":\"SHUTDOWN\",\"deadlineMs\":1795323949503,"
                           "\"shutdownReason\":\"spindown\"}");
    free(s);
    s = wire_error_body("Extension.MissingExtensionIdentifier",
                        "Missing Lambda-Extension-Identifier header");
    /* RAPID's RenderJSON ends the body with a newline (113 bytes in the RIE capture) */
    assert_int_equal(strlen(s), 113);
    assert_string_equal(s, "{\"errorMessage\":\"Missing Lambda-Extension-Identifier header\","
                           "\"errorType\":\"Extension.MissingExtensionIdentifier\"}\n");
    free(s);
    s = wire_register_body("test_function", "$LATEST", "", NULL);
    assert_int_equal(strlen(s), 74); /* RIE capture: Content-Length 74 */
    free(s);
    assert_true(wire_wants_account_id("accountId"));
    assert_true(wire_wants_account_id(" foo , accountId "));
    assert_false(wire_wants_account_id("accountIds"));
    assert_false(wire_wants_account_id(""));
}

static void test_telemetry_records(void **state)
{
    struct wire_runtime_done rd;
    struct wire_report r;
    char *s;

    (void)state;
    memset(&rd, 0, sizeof(rd));
    rd.request_id = "8f60e725-45d2-4901-949c-482a936d20be";
    rd.status = "success";
    rd.duration_ms = 13.1374;
    rd.produced_bytes = 10;
    rd.nspans = 3;
    rd.spans[0] = (struct wire_span){"responseLatency", T0, 12.35};
    rd.spans[1] = (struct wire_span){"responseDuration", T0 + 12, 0.252};
    rd.spans[2] = (struct wire_span){"runtimeOverhead", T0 + 12, 0.32};
    s = wire_ev_runtime_done(T0 + 13, &rd);
    assert_string_equal(
        s, "{\"time\":\"2026-07-28T19:02:11.816Z\",\"type\":\"platform.runtimeDone\",\"record\":{"
           "\"requestId\":\"8f60e725-45d2-4901-949c-482a936d20be\",\"status\":\"success\","
           "\"spans\":[{\"name\":\"responseLatency\",\"start\":\"2026-07-28T19:02:11.803Z\","
           "\"durationMs\":12.35},{\"name\":\"responseDuration\",\"start\":"
           "\"2026-07-28T19:02:11.815Z\",\"durationMs\":0.252},{\"name\":\"runtimeOverhead\","
           "\"start\":\"2026-07-28T19:02:11.815Z\",\"durationMs\":0.32}],\"metrics\":{"
           "\"durationMs\":13.137,\"producedBytes\":10}}}");
    free(s);

    memset(&r, 0, sizeof(r));
    r.request_id = "8f60e725-45d2-4901-949c-482a936d20be";
    r.status = "success";
    r.duration_ms = 503.84;
    r.init_ms = 131.048;
    r.billed_ms = wire_billed_ms(r.duration_ms, r.init_ms);
    r.memory_mb = 128;
    r.max_used_mb = 26;
    r.has_ext_span = 1;
    r.ext_span = (struct wire_span){"extensionOverhead", T0 + 13, 490.29};
    s = wire_ev_report(T0 + 504, &r);
    /* The honeycomb cold-start capture's values, in RAPID's field order. */
    assert_string_equal(
        s,
        "{\"time\":\"2026-07-28T19:02:12.307Z\",\"type\":\"platform.report\",\"record\":{"
        "\"requestId\":\"8f60e725-45d2-4901-949c-482a936d20be\",\"status\":\"success\","
        "\"metrics\":{\"durationMs\":503.84,\"billedDurationMs\":635,\"memorySizeMB\":128,"
        "\"maxMemoryUsedMB\":26,\"initDurationMs\":131.048},\"spans\":[{\"name\":"
        "\"extensionOverhead\",\"start\":\"2026-07-28T19:02:11.816Z\",\"durationMs\":490.29}]}}");
    free(s);
    s = wire_report_line(&r);
    assert_string_equal(s, "REPORT RequestId: 8f60e725-45d2-4901-949c-482a936d20be\t"
                           "Duration: 503.84 ms\tBilled Duration: 635 ms\tMemory Size: 128 MB\t"
                           "Max Memory Used: 26 MB\tInit Duration: 131.05 ms\t\n");
    free(s);
    r.status = "timeout";
    r.init_ms = -1;
    s = wire_report_line(&r);
    assert_non_null(strstr(s, "Max Memory Used: 26 MB\tStatus: timeout\t\n"));
    free(s);
    s = wire_ev_log(T0, "function", "an ordinary log line\n", 21);
    assert_string_equal(s, "{\"time\":\"2026-07-28T19:02:11.803Z\",\"type\":\"function\","
                           "\"record\":\"an ordinary log line\\n\"}");
    free(s);
    s = wire_ev_subscription(T0, "ext", WIRE_T_PLATFORM | WIRE_T_FUNCTION);
    assert_non_null(strstr(s, "\"record\":{\"name\":\"ext\",\"state\":\"Subscribed\","
                              "\"types\":[\"platform\",\"function\"]}"));
    free(s);
}

static void test_billing(void **state)
{
    (void)state;
    assert_int_equal(wire_billed_ms(503.84, 131.048), 635); /* cold, custom runtime */
    assert_int_equal(wire_billed_ms(503.549, -1), 504);     /* warm */
    assert_int_equal(wire_billed_ms(2.0000000001, -1), 2);  /* float noise is not a ms */
    assert_int_equal(wire_billed_ms(2.0004, -1), 2);        /* durations are whole µs */
    assert_int_equal(wire_billed_ms(2.001, -1), 3);
    assert_int_equal(wire_billed_ms(0.2, -1), 1);
}

static void test_uuid(void **state)
{
    char a[SIM_UUID_LEN];
    char b[SIM_UUID_LEN];

    (void)state;
    sim_uuid(a);
    sim_uuid(b);
    assert_true(sim_is_uuid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(sim_is_uuid("3BB29C2F-A912-4282-A373-4D0C45471244"));
    assert_false(sim_is_uuid("3bb29c2f-a912-4282-a373-4d0c4547124"));
    assert_false(sim_is_uuid("3bb29c2fxa912-4282-a373-4d0c45471244"));
    assert_false(sim_is_uuid(""));
}

/* ---- Telemetry delivery: a listener that records every POSTed batch ------------------------ */

#define MAX_BATCHES 64

struct listener {
    int fd;
    unsigned port;
    pthread_t thread;
    pthread_mutex_t mu;
    int nbatches;
    int items[MAX_BATCHES];
    size_t bytes[MAX_BATCHES];
    char *first_types[MAX_BATCHES]; /* "type" of each batch's first event */
    int total;
    int bad; /* bodies that were not a JSON array */
    int stopped;
};

static void serve_one(struct listener *l, int c)
{
    static char req[2 * 1024 * 1024];
    size_t len = 0;
    char *hdr_end = NULL;
    size_t want = 0;
    cJSON *arr;

    while (len < sizeof(req) - 1) {
        ssize_t n = read(c, req + len, sizeof(req) - 1 - len);

        if (n <= 0) {
            return;
        }
        len += (size_t)n;
        req[len] = '\0';
        if (!hdr_end) {
            hdr_end = strstr(req, "\r\n\r\n");
            if (hdr_end) {
                const char *cl = strstr(req, "Content-Length: ");

                want = (size_t)(hdr_end + 4 - req) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
            }
        }
        if (hdr_end && len >= want) {
            break;
        }
    }
    arr = cJSON_ParseWithLength(hdr_end + 4, want - (size_t)(hdr_end + 4 - req));
    pthread_mutex_lock(&l->mu);
    if (cJSON_IsArray(arr) && l->nbatches < MAX_BATCHES) {
        const cJSON *first = cJSON_GetArrayItem(arr, 0);
        const cJSON *type = first ? cJSON_GetObjectItem(first, "type") : NULL;

        l->items[l->nbatches] = cJSON_GetArraySize(arr);
        l->bytes[l->nbatches] = want - (size_t)(hdr_end + 4 - req);
        l->first_types[l->nbatches] = xstrdup(cJSON_IsString(type) ? type->valuestring : "?");
        l->total += cJSON_GetArraySize(arr);
        l->nbatches++;
    } else {
        l->bad++;
    }
    pthread_mutex_unlock(&l->mu);
    cJSON_Delete(arr);
    if (write(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 57) < 0) {
        return;
    }
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;

    for (;;) {
        int c = accept(l->fd, NULL, NULL);

        if (c < 0) {
            break;
        }
        serve_one(l, c);
        close(c);
    }
    return NULL;
}

static void listener_start(struct listener *l)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l->fd, 16), 0);
    assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &alen), 0);
    l->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&l->thread, NULL, listener_main, l), 0);
}

static void listener_stop(struct listener *l)
{
    int i;

    shutdown(l->fd, SHUT_RDWR);
    close(l->fd);
    pthread_join(l->thread, NULL);
    for (i = 0; i < l->nbatches; i++) {
        free(l->first_types[i]);
    }
    pthread_mutex_destroy(&l->mu);
}

static int listener_total(struct listener *l)
{
    int n;

    pthread_mutex_lock(&l->mu);
    n = l->total;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* Waits (up to 10 s: a bound, not a measurement) until the listener holds want events. */
static void wait_total(struct listener *l, int want)
{
    int i;

    for (i = 0; i < 1000 && listener_total(l) < want; i++) {
        struct timespec d = {0, 10000000L};

        nanosleep(&d, NULL);
    }
    assert_int_equal(listener_total(l), want);
}

static void subscription(struct wire_subscription *s, unsigned port, unsigned types,
                         unsigned max_bytes)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->schema, sizeof(s->schema), "2022-12-13");
    s->types = types;
    s->max_items = 1000;
    s->max_bytes = max_bytes;
    s->timeout_ms = 25;
    snprintf(s->host, sizeof(s->host), "sandbox.localdomain");
    s->port = port;
    snprintf(s->path, sizeof(s->path), "/telemetry");
}

static void test_tele_freeze_and_max_items(void **state)
{
    struct listener l;
    struct tele_hub *hub = tele_hub_new();
    struct wire_subscription s;
    struct timespec d = {0, 200000000L};
    int i;

    (void)state;
    listener_start(&l);
    tele_hub_end_init(hub);
    tele_hub_freeze(hub, 1);
    subscription(&s, l.port, WIRE_T_PLATFORM, 262144);
    tele_hub_subscribe(hub, "ext", &s); /* + platform.telemetrySubscription */
    for (i = 0; i < 2500; i++) {
        tele_hub_emit(hub, WIRE_T_PLATFORM, wire_ev_start(T0, "r", "arn", "$LATEST"), 0);
    }
    nanosleep(&d, NULL);
    assert_int_equal(listener_total(&l), 0); /* frozen: nothing leaves */
    assert_int_equal(tele_hub_pending(hub), 2501);
    tele_hub_freeze(hub, 0);
    wait_total(&l, 2501);
    /* maxItems caps each batch; order kept (the subscription event first). */
    assert_int_equal(l.items[0], 1000);
    assert_int_equal(l.items[1], 1000);
    assert_int_equal(l.items[2], 501);
    assert_int_equal(l.nbatches, 3);
    assert_string_equal(l.first_types[0], "platform.telemetrySubscription");
    assert_int_equal(l.bad, 0);
    tele_hub_free(hub);
    listener_stop(&l);
}

static void test_tele_max_bytes_and_types(void **state)
{
    struct listener l;
    struct tele_hub *hub = tele_hub_new();
    struct wire_subscription s;
    char line[2001];
    int i;

    (void)state;
    memset(line, 'x', 2000);
    line[2000] = '\0';
    listener_start(&l);
    tele_hub_end_init(hub);
    tele_hub_freeze(hub, 1);
    subscription(&s, l.port, WIRE_T_FUNCTION, 262144);
    tele_hub_subscribe(hub, "ext", &s);
    for (i = 0; i < 300; i++) {
        tele_hub_emit(hub, WIRE_T_FUNCTION, wire_ev_log(T0, "function", line, 2000), 0);
        tele_hub_emit(hub, WIRE_T_EXTENSION, wire_ev_log(T0, "extension", "x\n", 2), 0);
    }
    tele_hub_freeze(hub, 0);
    /* function only: neither the extension lines nor the platform subscription event */
    wait_total(&l, 300);
    for (i = 0; i < l.nbatches; i++) {
        if (l.bytes[i] > 262144) {
            fail_msg("batch %d has %zu bytes, over maxBytes", i, l.bytes[i]);
        }
        assert_string_equal(l.first_types[i], "function");
    }
    assert_true(l.nbatches >= 3); /* 300 x ~2 KB = ~620 KB */
    tele_hub_free(hub);
    listener_stop(&l);
}

static void test_tele_init_replay(void **state)
{
    struct listener l;
    struct tele_hub *hub = tele_hub_new();
    struct wire_subscription s;

    (void)state;
    listener_start(&l);
    /* produced before anyone subscribed, during init */
    tele_hub_emit(hub, WIRE_T_PLATFORM,
                  wire_ev_init_start(T0, "fn", "$LATEST", "i", 134217728, "init"), 0);
    tele_hub_emit(hub, WIRE_T_EXTENSION, wire_ev_log(T0, "extension", "booting\n", 8), 0);
    subscription(&s, l.port, WIRE_T_PLATFORM, 262144);
    tele_hub_subscribe(hub, "late", &s);
    wait_total(&l, 2);
    assert_string_equal(l.first_types[0], "platform.initStart");
    tele_hub_free(hub);
    listener_stop(&l);
}

static int parse(const char *const *args, int n, struct sim_config *cfg, char *err)
{
    char *argv[32];
    int help = 0;
    int i;
    enum stash_err rc;

    argv[0] = (char *)"lambda-sim";
    for (i = 0; i < n; i++) {
        argv[i + 1] = (char *)args[i];
    }
    argv[n + 1] = NULL;
    rc = sim_config_parse(n + 1, argv, cfg, &help, err, 256);
    return rc == STASH_OK ? 0 : -1;
}

static void test_config(void **state)
{
    struct sim_config cfg;
    char err[256];
    const char *ok[] = {"--function", "./bootstrap", "--env",       "A=1",        "--env",
                        "B==x",       "--memory",    "512",         "--max-envs", "3",
                        "--port",     "0",           "--telemetry", "off"};
    const char *bad_mem[] = {"--function", "x", "--memory", "127"};
    const char *bad_env[] = {"--function", "x", "--env", "NOEQUALS"};
    const char *bad_arg[] = {"--function", "x", "extra"};
    const char *missing[] = {"--port", "1"};

    (void)state;
    assert_int_equal(parse(ok, 14, &cfg, err), 0);
    assert_string_equal(cfg.function_cmd, "./bootstrap");
    assert_int_equal(cfg.n_env, 2);
    assert_string_equal(cfg.env_kv[1], "B==x");
    assert_int_equal(cfg.memory_mb, 512);
    assert_int_equal(cfg.max_envs, 3);
    assert_int_equal(cfg.port, 0);
    assert_int_equal(cfg.telemetry, 0);
    assert_int_equal(cfg.timeout_s, 3);
    assert_int_equal(cfg.init_timeout_ms, 10000);
    assert_int_equal(cfg.shutdown_ms, 2000);
    assert_string_equal(cfg.function_name, "function");
    sim_config_release(&cfg);
    assert_int_equal(parse(bad_mem, 4, &cfg, err), -1);
    sim_config_release(&cfg);
    assert_int_equal(parse(bad_env, 4, &cfg, err), -1);
    sim_config_release(&cfg);
    assert_int_equal(parse(bad_arg, 3, &cfg, err), -1);
    sim_config_release(&cfg);
    assert_int_equal(parse(missing, 2, &cfg, err), -1);
    assert_non_null(strstr(err, "--function"));
    sim_config_release(&cfg);
}

static void touch(const char *dir, const char *name, mode_t mode)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    chmod(path, mode);
}

static void test_config_extensions_dir(void **state)
{
    char dir[] = "/tmp/lambda-sim-test-XXXXXX";
    char sub[600];
    struct sim_config cfg;
    char err[256];
    const char *args[] = {"--function", "x", "--extensions", dir};
    int i;

    (void)state;
    assert_non_null(mkdtemp(dir));
    touch(dir, "zeta", 0755);
    touch(dir, "alpha", 0755);
    touch(dir, "notes.txt", 0644); /* not executable: not an extension */
    snprintf(sub, sizeof(sub), "%s/subdir", dir);
    mkdir(sub, 0755); /* directories are skipped (non-recursive, as /opt/extensions) */
    assert_int_equal(parse(args, 4, &cfg, err), 0);
    assert_int_equal(cfg.n_ext, 2);
    assert_string_equal(cfg.ext_names[0], "alpha");
    assert_string_equal(cfg.ext_names[1], "zeta");
    sim_config_release(&cfg);
    for (i = 0; i < 9; i++) {
        char name[16];

        snprintf(name, sizeof(name), "e%d", i);
        touch(dir, name, 0755);
    }
    assert_int_equal(parse(args, 4, &cfg, err), -1); /* 11 > Lambda's 10 */
    assert_non_null(strstr(err, "10"));
    sim_config_release(&cfg);
    snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
    assert_int_equal(system(sub), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_body),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_subscription_defaults),
        cmocka_unit_test(test_subscription_bounds),
        cmocka_unit_test(test_subscription_destination),
        cmocka_unit_test(test_events_json),
        cmocka_unit_test(test_telemetry_records),
        cmocka_unit_test(test_billing),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_extensions_dir),
        cmocka_unit_test(test_tele_freeze_and_max_items),
        cmocka_unit_test(test_tele_max_bytes_and_types),
        cmocka_unit_test(test_tele_init_replay),
    };
    int rc;

    mem_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
