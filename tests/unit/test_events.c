/* Unit tests for telemetry/events: every sample in tests/data/telemetry-samples parses, the
 * figures read back are those in the files, malformed and oversized bodies are refused whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "refdir.h"
#include "telemetry/events.h"

static char s_dir[4096];

/* Reads a sample and turns it into a POST body: arrays as they are, single events wrapped in [ ],
 * record-only fixtures wrapped in an envelope whose type comes from the file name. */
static char *sample_body(const char *name, size_t *len)
{
    char path[8192];
    size_t n = 0;
    char *raw, *body;
    const char *p;

    snprintf(path, sizeof(path), "%s/telemetry-samples/%s", s_dir, name);
    raw = refdir_read(path, &n);
    assert_non_null(raw);
    p = raw;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
        p++;
    }
    if (*p == '[') {
        *len = n;
        return raw;
    }
    body = malloc(n + 256);
    assert_non_null(body);
    if (strncmp(name, "record-only.", 12) == 0) {
        /* "record-only.platform.runtimeDone.failure__rie..." -> "platform.runtimeDone" */
        const char *t = name + 12;
        const char *dot = strchr(t, '.');
        size_t tl;

        assert_non_null(dot);
        dot = strchr(dot + 1, '.');
        assert_non_null(dot);
        tl = (size_t)(dot - t);
        snprintf(body, n + 256,
                 "[{\"time\":\"2022-04-11T15:01:28.543Z\",\"type\":\"%.*s\","
                 "\"record\":%s}]",
                 (int)tl, t, raw);
    } else {
        snprintf(body, n + 256, "[%s]", raw);
    }
    free(raw);
    *len = strlen(body);
    return body;
}

static void parse_sample(const char *name, struct telemetry_batch *b)
{
    size_t len = 0;
    char *body = sample_body(name, &len);

    assert_int_equal(telemetry_batch_parse(body, len, b), STASH_OK);
    free(body);
}

static int setup(void **state)
{
    (void)state;
    mem_init();
    if (refdir_find(s_dir, sizeof(s_dir)) != 0) {
        fprintf(stderr, "tests/data not found: run from the repository root or set STASH_ROOT\n");
        return -1; /* fails every test of the group: missing data is not a pass */
    }
    return 0;
}

/* Every file parses; each element is stored, counted as a log record or counted as ignored. */
static void test_every_sample_parses(void **state)
{
    char path[8192];
    DIR *d;
    struct dirent *de;
    int files = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/telemetry-samples", s_dir);
    d = opendir(path);
    assert_non_null(d);
    for (de = readdir(d); de; de = readdir(d)) {
        struct telemetry_batch b;
        size_t len = 0, elements;
        char *body;
        cJSON *independent;
        size_t nl = strlen(de->d_name);

        if (nl < 5 || strcmp(de->d_name + nl - 5, ".json") != 0) {
            continue;
        }
        body = sample_body(de->d_name, &len);
        independent = cJSON_ParseWithLength(body, len);
        assert_non_null(independent);
        elements = (size_t)cJSON_GetArraySize(independent);
        cJSON_Delete(independent);
        if (telemetry_batch_parse(body, len, &b) != STASH_OK) {
            fail_msg("sample %s refused", de->d_name);
        }
        assert_int_equal(b.n + b.nlogs + b.nignored, elements);
        telemetry_batch_release(&b);
        free(body);
        files++;
    }
    closedir(d);
    assert_true(files >= 47); /* the directory holds 47 samples: all of them were seen */
}

static void test_batch_json_log_format(void **state)
{
    struct telemetry_batch b;
    static const enum telemetry_type want[] = {
        TELEMETRY_INIT_START,
        TELEMETRY_SUBSCRIPTION,
        TELEMETRY_EXTENSION,
        TELEMETRY_INIT_REPORT,
        TELEMETRY_INIT_RUNTIME_DONE,
        TELEMETRY_START,
        TELEMETRY_RUNTIME_DONE,
        TELEMETRY_REPORT,
        TELEMETRY_START,
        TELEMETRY_RUNTIME_DONE,
        TELEMETRY_REPORT,
        TELEMETRY_START,
        TELEMETRY_RUNTIME_DONE,
    };
    const struct telemetry_event *e;
    const struct telemetry_span *sp;

    (void)state;
    parse_sample("batch.json-log-format__honeycomb-capture.json", &b);
    assert_int_equal(b.n, 13);
    assert_int_equal(b.nlogs, 10); /* function records: strings and objects */
    assert_int_equal(b.nignored, 0);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.events[i].type, want[i]);
    }
    e = &b.events[0];
    assert_int_equal(e->time_ms, 1785265331667ULL);
    assert_string_equal(e->init_type, "on-demand");
    assert_string_equal(e->phase, "init");
    assert_string_equal(e->function_version, "$LATEST");
    e = &b.events[1];
    assert_string_equal(e->name, "hny-lambda-ext-capture");
    assert_string_equal(e->state, "Subscribed");
    e = &b.events[2];
    assert_string_equal(e->state, "Ready");
    e = &b.events[3];
    assert_true(e->has & TELEMETRY_HAS_DURATION);
    assert_true(e->duration_ms == 131.047);
    assert_int_equal(e->status, TELEMETRY_STATUS_SUCCESS);
    e = &b.events[5];
    assert_string_equal(e->request_id, "8f60e725-45d2-4901-949c-482a936d20be");
    assert_string_equal(e->function_version, "$LATEST");
    e = &b.events[6];
    assert_string_equal(e->request_id, "8f60e725-45d2-4901-949c-482a936d20be");
    assert_true(e->duration_ms == 13.137);
    assert_true(e->produced_bytes == 10);
    assert_int_equal(e->nspans, 3);
    sp = telemetry_event_span(e, "responseLatency");
    assert_non_null(sp);
    assert_true(sp->duration_ms == 12.35);
    sp = telemetry_event_span(e, "responseDuration");
    assert_non_null(sp);
    assert_true(sp->duration_ms == 0.252);
    sp = telemetry_event_span(e, "runtimeOverhead");
    assert_non_null(sp);
    assert_true(sp->duration_ms == 0.32);
    /* The cold-start report. */
    e = &b.events[7];
    assert_int_equal(e->time_ms, 1785265332307ULL);
    assert_string_equal(e->request_id, "8f60e725-45d2-4901-949c-482a936d20be");
    assert_int_equal(e->status, TELEMETRY_STATUS_SUCCESS);
    assert_true(e->duration_ms == 503.84);
    assert_true(e->billed_duration_ms == 635);
    assert_true(e->init_duration_ms == 131.048);
    assert_true(e->max_memory_used_mb == 26);
    assert_true(e->memory_size_mb == 128);
    assert_int_equal(e->has & (TELEMETRY_HAS_DURATION | TELEMETRY_HAS_BILLED |
                               TELEMETRY_HAS_INIT_DURATION | TELEMETRY_HAS_MAX_MEMORY |
                               TELEMETRY_HAS_MEMORY_SIZE | TELEMETRY_HAS_RESTORE_DURATION),
                     TELEMETRY_HAS_DURATION | TELEMETRY_HAS_BILLED | TELEMETRY_HAS_INIT_DURATION |
                         TELEMETRY_HAS_MAX_MEMORY | TELEMETRY_HAS_MEMORY_SIZE);
    sp = telemetry_event_span(e, "extensionOverhead");
    assert_non_null(sp);
    assert_true(sp->duration_ms == 490.29);
    assert_int_equal(sp->start_ms, 1785265331816ULL);
    /* The warm report: no initDurationMs. */
    e = &b.events[10];
    assert_string_equal(e->request_id, "1ba8e02a-fe88-40db-8cd3-7c7639ed00fa");
    assert_true(e->duration_ms == 503.549);
    assert_true(e->billed_duration_ms == 504);
    assert_false(e->has & TELEMETRY_HAS_INIT_DURATION);
    sp = telemetry_event_span(e, "extensionOverhead");
    assert_non_null(sp);
    assert_true(sp->duration_ms == 501.771);
    e = &b.events[12];
    assert_string_equal(e->request_id, "97dcdb2e-d517-484a-8c90-f927b7ab208d");
    assert_true(e->duration_ms == 0.811);
    telemetry_batch_release(&b);
}

static void test_batch_text_log_format(void **state)
{
    struct telemetry_batch b;
    const struct telemetry_event *e;

    (void)state;
    parse_sample("batch.text-log-format__honeycomb-capture.json", &b);
    assert_int_equal(b.n, 10);
    assert_int_equal(b.nlogs, 10); /* JSON lines arriving as strings */
    e = &b.events[4];
    assert_int_equal(e->type, TELEMETRY_INIT_REPORT);
    assert_true(e->duration_ms == 120.381);
    e = &b.events[6];
    assert_int_equal(e->type, TELEMETRY_RUNTIME_DONE);
    assert_true(e->duration_ms == 15.529);
    assert_true(telemetry_event_span(e, "runtimeOverhead")->duration_ms == 0.21);
    e = &b.events[7];
    assert_int_equal(e->type, TELEMETRY_REPORT);
    assert_string_equal(e->request_id, "c3626c7f-3602-46f2-8199-d6e8243bfa4a");
    assert_true(e->duration_ms == 502.976);
    assert_true(e->billed_duration_ms == 624);
    assert_true(e->init_duration_ms == 120.381);
    assert_true(e->max_memory_used_mb == 26);
    assert_true(e->memory_size_mb == 128);
    assert_true(telemetry_event_span(e, "extensionOverhead")->duration_ms == 486.99);
    /* runtimeDone before start in the same millisecond (the capture sorts by time, type). */
    e = &b.events[8];
    assert_int_equal(e->type, TELEMETRY_RUNTIME_DONE);
    assert_string_equal(e->request_id, "3fe3b35a-3198-453f-8e9c-e58e514cffae");
    assert_true(e->duration_ms == 0.741);
    assert_int_equal(b.events[9].type, TELEMETRY_START);
    telemetry_batch_release(&b);
}

static void test_batch_2022_init_and_logs_api(void **state)
{
    struct telemetry_batch b;

    (void)state;
    parse_sample("batch.init-2022-09__aws-samples-python-telemetry.CONVERTED-from-python-repr.json",
                 &b);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.events[0].type, TELEMETRY_INIT_START);
    assert_string_equal(b.events[0].init_type, "on-demand");
    assert_string_equal(b.events[0].phase, "");
    assert_int_equal(b.nlogs, 9);
    telemetry_batch_release(&b);

    /* Logs API (2020): platform.end and platform.logsSubscription are unknown here. */
    parse_sample("logsapi.batch-2020-11__aws-samples-s3-logs-demo.CONVERTED-from-python-repr.json",
                 &b);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.nignored, 2);
    assert_int_equal(b.nlogs, 1);
    assert_int_equal(b.events[2].type, TELEMETRY_REPORT);
    assert_int_equal(b.events[2].status, TELEMETRY_STATUS_NONE);
    assert_true(b.events[2].duration_ms == 4.96);
    assert_true(b.events[2].billed_duration_ms == 100);
    assert_true(b.events[2].init_duration_ms == 792.41);
    assert_true(b.events[2].max_memory_used_mb == 87);
    telemetry_batch_release(&b);

    parse_sample("logsapi.platform.fault__aws-docs-2022.json", &b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.nignored, 1);
    telemetry_batch_release(&b);
}

static void test_single_reports(void **state)
{
    struct telemetry_batch b;
    const struct telemetry_event *e;

    (void)state;
    parse_sample("platform.report__aws-lambda-rust-runtime.json", &b);
    e = &b.events[0];
    assert_int_equal(e->time_ms, 1666361105766ULL);
    assert_string_equal(e->request_id, "459921b5-681c-4a96-beb0-81e0aa586026");
    assert_true(e->duration_ms == 2599.4);
    assert_true(e->billed_duration_ms == 2600);
    assert_true(e->memory_size_mb == 128);
    assert_true(e->max_memory_used_mb == 94);
    assert_true(e->init_duration_ms == 549.04);
    assert_int_equal(e->nspans, 0);
    telemetry_batch_release(&b);

    parse_sample("platform.report.managed-instances__datadog-bottlecap.json", &b);
    e = &b.events[0];
    assert_string_equal(e->request_id, "13d1305b-a2f5-440c-bfbe-686ccff3d3e0");
    assert_int_equal(e->has, TELEMETRY_HAS_DURATION);
    assert_true(e->duration_ms == 1.148);
    assert_true(telemetry_event_span(e, "responseLatency")->duration_ms == 0.847);
    assert_true(telemetry_event_span(e, "responseDuration")->duration_ms == 0.127);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.report.error-with-tenantId__rie-fixture.json", &b);
    e = &b.events[0];
    assert_int_equal(e->type, TELEMETRY_REPORT);
    assert_string_equal(e->request_id, "REQUEST_ID");
    assert_string_equal(e->tenant_id, "blue");
    assert_int_equal(e->status, TELEMETRY_STATUS_ERROR);
    assert_string_equal(e->error_type, "Runtime.ExitError");
    assert_true(e->duration_ms == 52.56);
    assert_true(e->billed_duration_ms == 52.40);
    assert_true(e->memory_size_mb == 1024);
    assert_true(e->max_memory_used_mb == 512);
    telemetry_batch_release(&b);

    parse_sample("platform.report.cold-start__honeycomb-capture.json", &b);
    assert_true(b.events[0].init_duration_ms == 131.048);
    assert_true(b.events[0].billed_duration_ms == 635);
    telemetry_batch_release(&b);

    parse_sample("platform.report.warm__honeycomb-capture.json", &b);
    assert_true(b.events[0].duration_ms == 503.549);
    assert_false(b.events[0].has & TELEMETRY_HAS_INIT_DURATION);
    telemetry_batch_release(&b);
}

static void test_single_other_events(void **state)
{
    struct telemetry_batch b;
    const struct telemetry_event *e;

    (void)state;
    parse_sample("platform.runtimeDone__aws-lambda-rust-runtime.json", &b);
    e = &b.events[0];
    assert_true(e->duration_ms == 2599.0);
    assert_true(e->produced_bytes == 8);
    assert_true(telemetry_event_span(e, "responseLatency")->duration_ms == 2598.0);
    assert_int_equal(telemetry_event_span(e, "responseLatency")->start_ms, 1666361103165ULL);
    telemetry_batch_release(&b);

    /* The docs example's span start "12:01:23:521Z" is not ISO: kept with start_ms 0. */
    parse_sample("platform.runtimeDone__aws-docs-2022.json", &b);
    e = &b.events[0];
    assert_true(e->duration_ms == 140.0);
    assert_true(e->produced_bytes == 16);
    assert_int_equal(e->nspans, 1);
    assert_string_equal(e->spans[0].name, "someTimeSpan");
    assert_int_equal(e->spans[0].start_ms, 0);
    assert_true(e->spans[0].duration_ms == 80.0);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.runtimeDone.timeout__rie-fixture.json", &b);
    assert_int_equal(b.events[0].status, TELEMETRY_STATUS_TIMEOUT);
    assert_true(b.events[0].produced_bytes == 0);
    assert_true(b.events[0].has & TELEMETRY_HAS_PRODUCED_BYTES);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.runtimeDone.failure__rie-fixture.json", &b);
    assert_int_equal(b.events[0].status, TELEMETRY_STATUS_FAILURE);
    assert_string_equal(b.events[0].error_type, "Runtime.ExitError");
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.runtimeDone.with-tenantId__rie-fixture.json", &b);
    assert_string_equal(b.events[0].tenant_id, "blue");
    assert_true(telemetry_event_span(&b.events[0], "responseDuration")->duration_ms == 20);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.initRuntimeDone.error-snapstart__rie-fixture.json", &b);
    assert_int_equal(b.events[0].type, TELEMETRY_INIT_RUNTIME_DONE);
    assert_string_equal(b.events[0].init_type, "snap-start");
    assert_int_equal(b.events[0].status, TELEMETRY_STATUS_ERROR);
    telemetry_batch_release(&b);

    parse_sample("platform.initReport__aws-docs-2022.json", &b);
    assert_true(b.events[0].duration_ms == 125.33);
    assert_true(b.events[0].spans[0].duration_ms == 90.1);
    telemetry_batch_release(&b);

    parse_sample("platform.initReport__aws-lambda-rust-runtime.json", &b);
    assert_true(b.events[0].duration_ms == 500.0);
    telemetry_batch_release(&b);

    parse_sample("platform.logsDropped__aws-docs-2022.json", &b);
    assert_int_equal(b.events[0].dropped_records, 123);
    assert_int_equal(b.events[0].dropped_bytes, 12345);
    telemetry_batch_release(&b);

    parse_sample("platform.restoreReport.success__datadog-bottlecap.json", &b);
    assert_int_equal(b.events[0].type, TELEMETRY_RESTORE_REPORT);
    assert_true(b.events[0].duration_ms == 150.5);
    telemetry_batch_release(&b);

    parse_sample("platform.restoreReport.failure__datadog-bottlecap.json", &b);
    assert_int_equal(b.events[0].status, TELEMETRY_STATUS_FAILURE);
    assert_string_equal(b.events[0].error_type, "RestoreError");
    telemetry_batch_release(&b);

    parse_sample("platform.restoreStart__datadog-bottlecap.json", &b);
    assert_int_equal(b.events[0].type, TELEMETRY_RESTORE_START);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.restoreRuntimeDone.error__rie-fixture.json", &b);
    assert_int_equal(b.events[0].type, TELEMETRY_RESTORE_RUNTIME_DONE);
    assert_int_equal(b.events[0].status, TELEMETRY_STATUS_ERROR);
    telemetry_batch_release(&b);

    parse_sample("record-only.platform.extension.errorType__rie-fixture.json", &b);
    assert_string_equal(b.events[0].name, "agentName");
    assert_string_equal(b.events[0].state, "Registered");
    assert_string_equal(b.events[0].error_type, "Extension.FooBar");
    telemetry_batch_release(&b);

    parse_sample("platform.initStart.with-runtime-version__datadog-bottlecap-listener.json", &b);
    assert_string_equal(b.events[0].function_version, "$LATEST");
    telemetry_batch_release(&b);

    parse_sample("function.json-object__datadog-bottlecap.json", &b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.nlogs, 1);
    telemetry_batch_release(&b);
}

/* Each of these is refused whole, with the batch left empty. */
static void test_malformed_rejected(void **state)
{
    static const char *const bad[] = {
        "",
        "nope",
        "{}",
        "[1]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\"}]",
        "[{\"type\":\"platform.start\",\"record\":{\"requestId\":\"a\"}}]",
        "[{\"time\":5,\"type\":\"platform.start\",\"record\":{\"requestId\":\"a\"}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":7,\"record\":{}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":\"x\"}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":{}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\","
        "\"record\":{\"requestId\":\"\"}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\","
        "\"record\":{\"requestId\":5}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"metrics\":{\"durationMs\":\"3\"}}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"metrics\":{\"durationMs\":-1}}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"metrics\":{\"durationMs\":1e999}}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"metrics\":[]}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"spans\":{}}}]",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.report\",\"record\":"
        "{\"requestId\":\"a\",\"status\":1}}]",
        /* A good event then a bad one: nothing of the first may come out. */
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.start\","
        "\"record\":{\"requestId\":\"a\"}},{\"time\":\"2022-10-21T14:05:05.766Z\"}]",
        /* Trailing garbage and truncation. */
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"x\"}] x",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"x\"}",
        "[{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"platform.start\","
        "\"record\":{\"requestId\":\"0123456789012345678901234567890123456789012345678901234567890"
        "123456789\"}}]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct telemetry_batch b;

        memset(&b, 0xa5, sizeof(b));
        if (telemetry_batch_parse(bad[i], strlen(bad[i]), &b) != STASH_EPARSE) {
            fail_msg("accepted or wrong error for #%zu: %s", i, bad[i]);
        }
        assert_null(b.events);
        assert_int_equal(b.n, 0);
        assert_int_equal(b.nlogs, 0);
        assert_int_equal(b.nignored, 0);
    }
}

static void test_ceilings(void **state)
{
    struct telemetry_batch b;
    const char *ev =
        "{\"time\":\"2022-10-21T14:05:05.766Z\",\"type\":\"function\",\"record\":\"x\"},";
    size_t evlen = strlen(ev);
    size_t n = TELEMETRY_EVENTS_MAX + 1;
    char *body = malloc(n * evlen + 2);
    size_t len = 0;

    (void)state;
    assert_non_null(body);
    body[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(body + len, ev, evlen);
        len += evlen;
    }
    body[len - 1] = ']';
    assert_int_equal(telemetry_batch_parse(body, len, &b), STASH_ETOOBIG);
    assert_null(b.events);
    /* One fewer element is fine. */
    len -= evlen;
    body[len - 1] = ']';
    assert_int_equal(telemetry_batch_parse(body, len, &b), STASH_OK);
    assert_int_equal(b.nlogs, TELEMETRY_EVENTS_MAX);
    telemetry_batch_release(&b);
    free(body);

    /* Over the byte ceiling: refused before parsing. */
    body = malloc(TELEMETRY_BODY_MAX + 1);
    assert_non_null(body);
    memset(body, ' ', TELEMETRY_BODY_MAX + 1);
    body[0] = '[';
    body[TELEMETRY_BODY_MAX] = ']';
    assert_int_equal(telemetry_batch_parse(body, TELEMETRY_BODY_MAX + 1, &b), STASH_ETOOBIG);
    assert_null(b.events);
    assert_int_equal(telemetry_batch_parse(body + 1, TELEMETRY_BODY_MAX, &b), STASH_EPARSE);
    free(body);
}

static void test_unknown_types_and_fields_ignored(void **state)
{
    static const char body[] =
        "[{\"time\":\"2030-01-01T00:00:00.000Z\",\"type\":\"platform.future\",\"record\":[1,2]},"
        " {\"time\":\"2030-01-01T00:00:00.000Z\",\"type\":\"platform.report\",\"extra\":{},"
        "  \"record\":{\"requestId\":\"r1\",\"newField\":[{}],\"metrics\":{\"durationMs\":1.5,"
        "  "
        "\"futureMetric\":\"x\"},\"spans\":[7,{\"name\":\"n\"},{\"name\":\"a\",\"durationMs\":2}]}}"
        ","
        " {\"time\":\"2030-01-01T00:00:00.000Z\",\"type\":\"function\",\"record\":{\"k\":[null]}},"
        " {\"time\":\"2030-01-01T00:00:00.000Z\",\"type\":\"extension\"}]\n";
    struct telemetry_batch b;

    (void)state;
    assert_int_equal(telemetry_batch_parse(body, strlen(body), &b), STASH_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.nignored, 1);
    assert_int_equal(b.nlogs, 2);
    assert_string_equal(b.events[0].request_id, "r1");
    assert_true(b.events[0].duration_ms == 1.5);
    assert_int_equal(b.events[0].nspans, 1); /* the two malformed spans skipped */
    assert_string_equal(b.events[0].spans[0].name, "a");
    telemetry_batch_release(&b);
    telemetry_batch_release(&b); /* twice is harmless */

    /* A time that is a string but not ISO: the event is kept, its time is 0. */
    {
        static const char odd[] = "[{\"time\":\"yesterday\",\"type\":\"platform.report\","
                                  "\"record\":{\"requestId\":\"r2\"}}]";

        assert_int_equal(telemetry_batch_parse(odd, strlen(odd), &b), STASH_OK);
        assert_int_equal(b.n, 1);
        assert_int_equal(b.events[0].time_ms, 0);
        assert_string_equal(b.events[0].request_id, "r2");
        telemetry_batch_release(&b);
    }

    /* An empty batch is fine. */
    assert_int_equal(telemetry_batch_parse("[]", 2, &b), STASH_OK);
    assert_int_equal(b.n, 0);
    telemetry_batch_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_parses),
        cmocka_unit_test(test_batch_json_log_format),
        cmocka_unit_test(test_batch_text_log_format),
        cmocka_unit_test(test_batch_2022_init_and_logs_api),
        cmocka_unit_test(test_single_reports),
        cmocka_unit_test(test_single_other_events),
        cmocka_unit_test(test_malformed_rejected),
        cmocka_unit_test(test_ceilings),
        cmocka_unit_test(test_unknown_types_and_fields_ignored),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
