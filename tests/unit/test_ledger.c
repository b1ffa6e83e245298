/* Unit tests for telemetry/ledger: report of N arriving during N+1, attribution by header, the init
 * record and init work tagged as such, SHUTDOWN flush, cold start once, bounds, concurrency of
 * facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "telemetry/ledger.h"

#define CAP_MAX 256

/* What the sink saw: records copied (arrays included) in emission order. */
struct captured {
    struct ledger_record rec;
    double fetch[LEDGER_LAT_MAX];
    double upstream[LEDGER_LAT_MAX];
    struct ledger_key keys[LEDGER_KEYS_MAX];
    int keys_null; /* the record handed over had no key array at all */
};

static struct captured *s_cap;
static size_t s_ncap;

static void capture_sink(const struct ledger_record *rec, void *ctx)
{
    struct captured *c;

    (void)ctx;
    assert_true(s_ncap < CAP_MAX);
    c = &s_cap[s_ncap++];
    c->rec = *rec;
    c->keys_null = rec->keys == NULL;
    if (rec->nfetch) {
        memcpy(c->fetch, rec->fetch_ms, rec->nfetch * sizeof(double));
    }
    if (rec->nupstream) {
        memcpy(c->upstream, rec->upstream_ms, rec->nupstream * sizeof(double));
    }
    if (rec->nkeys) {
        memcpy(c->keys, rec->keys, rec->nkeys * sizeof(*rec->keys));
    }
    c->rec.fetch_ms = c->fetch;
    c->rec.upstream_ms = c->upstream;
    c->rec.keys = c->keys;
}

static int setup(void **state)
{
    (void)state;
    s_cap = calloc(CAP_MAX, sizeof(*s_cap));
    s_ncap = 0;
    return s_cap ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(s_cap);
    s_cap = NULL;
    return 0;
}

static struct ledger *new_ledger(size_t max_open, int per_key)
{
    struct ledger_config cfg = {
        .max_open = max_open, .per_key = per_key, .sink = capture_sink, .sink_ctx = NULL};

    return ledger_new(&cfg, 1000);
}

static struct facts mkfacts(enum facts_service svc, enum facts_outcome out, double ms,
                            const char *rid, const char *name)
{
    struct facts f;

    memset(&f, 0, sizeof(f));
    f.service = svc;
    f.outcome = out;
    f.status = 200;
    f.latency_ms = ms;
    if (rid) {
        snprintf(f.request_id, sizeof(f.request_id), "%s", rid);
    }
    if (name) {
        snprintf(f.name, sizeof(f.name), "%s", name);
    }
    return f;
}

static void add_call(struct facts *f, double ms, int http, int err, int thr)
{
    struct facts_call *c = &f->calls[f->ncalls_recorded++];

    f->ncalls++;
    c->ms = ms;
    c->http_status = http;
    c->error = (uint8_t)err;
    c->throttled = (uint8_t)thr;
}

static struct telemetry_event mkreport(const char *rid, double dur, double billed, double init)
{
    struct telemetry_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = TELEMETRY_REPORT;
    snprintf(ev.request_id, sizeof(ev.request_id), "%s", rid);
    ev.status = TELEMETRY_STATUS_SUCCESS;
    ev.duration_ms = dur;
    ev.billed_duration_ms = billed;
    ev.max_memory_used_mb = 26;
    ev.memory_size_mb = 128;
    ev.has = TELEMETRY_HAS_DURATION | TELEMETRY_HAS_BILLED | TELEMETRY_HAS_MAX_MEMORY |
             TELEMETRY_HAS_MEMORY_SIZE;
    if (init > 0) {
        ev.init_duration_ms = init;
        ev.has |= TELEMETRY_HAS_INIT_DURATION;
    }
    ev.nspans = 1;
    snprintf(ev.spans[0].name, sizeof(ev.spans[0].name), "extensionOverhead");
    ev.spans[0].duration_ms = 0.4;
    return ev;
}

static struct telemetry_event mkruntime_done(const char *rid, double dur)
{
    struct telemetry_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = TELEMETRY_RUNTIME_DONE;
    snprintf(ev.request_id, sizeof(ev.request_id), "%s", rid);
    ev.status = TELEMETRY_STATUS_SUCCESS;
    ev.duration_ms = dur;
    ev.produced_bytes = 10;
    ev.has = TELEMETRY_HAS_DURATION | TELEMETRY_HAS_PRODUCED_BYTES;
    ev.nspans = 3;
    snprintf(ev.spans[0].name, sizeof(ev.spans[0].name), "responseLatency");
    ev.spans[0].duration_ms = 12.35;
    snprintf(ev.spans[1].name, sizeof(ev.spans[1].name), "responseDuration");
    ev.spans[1].duration_ms = 0.252;
    snprintf(ev.spans[2].name, sizeof(ev.spans[2].name), "runtimeOverhead");
    ev.spans[2].duration_ms = 0.32;
    return ev;
}

/* The normal Lambda order: report for N arrives during N+1; the last one during SHUTDOWN. */
static void test_report_of_n_during_n_plus_1(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f;
    struct telemetry_event ev;
    struct ledger_stats st;

    (void)state;
    /* Init: one prefetch miss with one upstream call. */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_MISS, 40.5, NULL, "db");
    add_call(&f, 38.25, 200, 0, 0);
    ledger_on_facts(l, &f);
    assert_int_equal(s_ncap, 0);

    assert_int_equal(ledger_on_invoke(l, "A", 5000, 2000), STASH_OK);
    /* The init record completes at the first INVOKE, without waiting for any report. */
    assert_int_equal(s_ncap, 1);
    assert_true(s_cap[0].rec.is_init);
    assert_string_equal(s_cap[0].rec.request_id, "");
    assert_int_equal(s_cap[0].rec.counts.misses, 1);
    assert_int_equal(s_cap[0].rec.counts.sm_calls, 1);
    assert_false(s_cap[0].rec.cold_start);
    assert_int_equal(s_cap[0].rec.invoke_ms, 1000);

    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.25, NULL, "db");
    ledger_on_facts(l, &f);
    ledger_on_facts(l, &f);
    f = mkfacts(FACTS_SVC_SSM, FACTS_MISS, 20.0, NULL, "/p");
    add_call(&f, 9.0, 400, 1, 1);
    add_call(&f, 10.5, 200, 0, 0);
    ledger_on_facts(l, &f);
    ev = mkruntime_done("A", 13.137);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 1); /* runtimeDone alone completes nothing */

    assert_int_equal(ledger_on_invoke(l, "B", 6000, 3000), STASH_OK);
    assert_int_equal(s_ncap, 1); /* A's local half is closed, its report is not in */
    ledger_stats(l, &st);
    assert_int_equal(st.awaiting_report, 1);

    ev = mkreport("A", 503.84, 635, 131.048);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 2);
    {
        const struct ledger_record *r = &s_cap[1].rec;

        assert_string_equal(r->request_id, "A");
        assert_true(r->cold_start);
        assert_int_equal(r->invoke_ms, 2000);
        assert_int_equal(r->deadline_ms, 5000);
        assert_int_equal(r->counts.requests, 3);
        assert_int_equal(r->counts.hits, 2);
        assert_int_equal(r->counts.misses, 1);
        assert_int_equal(r->counts.upstream_calls, 2);
        assert_int_equal(r->counts.ssm_calls, 2);
        assert_int_equal(r->counts.sm_calls, 0);
        assert_int_equal(r->counts.upstream_errors, 1);
        assert_int_equal(r->counts.upstream_throttles, 1);
        assert_int_equal(r->nfetch, 3);
        assert_true(r->fetch_ms[0] == 0.25 && r->fetch_ms[2] == 20.0);
        assert_int_equal(r->nupstream, 2);
        assert_true(r->upstream_ms[0] == 9.0 && r->upstream_ms[1] == 10.5);
        assert_true(r->has & LEDGER_HAS_REPORT);
        assert_true(r->duration_ms == 503.84);
        assert_true(r->billed_duration_ms == 635);
        assert_true(r->init_duration_ms == 131.048);
        assert_true(r->max_memory_used_mb == 26);
        assert_true(r->extension_overhead_ms == 0.4);
        assert_true(r->runtime_duration_ms == 13.137);
        assert_true(r->response_latency_ms == 12.35);
        assert_true(r->runtime_overhead_ms == 0.32);
        assert_true(r->produced_bytes == 10);
        assert_true(s_cap[1].keys_null); /* per_key off: no names kept */
        assert_int_equal(r->keys_dropped, 0);
    }
    f = mkfacts(FACTS_SVC_SSM, FACTS_STALE, 1.5, NULL, NULL);
    ledger_on_facts(l, &f);
    ledger_on_shutdown(l);
    assert_int_equal(s_ncap, 2);
    ledger_stats(l, &st);
    assert_int_equal(st.awaiting_report, 1);
    ev = mkreport("B", 1.0, 2, 0);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 3);
    assert_string_equal(s_cap[2].rec.request_id, "B");
    assert_false(s_cap[2].rec.cold_start);
    assert_int_equal(s_cap[2].rec.counts.stale, 1);
    assert_false(s_cap[2].rec.has & LEDGER_HAS_INIT_DURATION);
    ledger_flush(l);
    assert_int_equal(s_ncap, 3);
    ledger_stats(l, &st);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.emitted, 3);
    assert_int_equal(ledger_on_invoke(l, "C", 0, 4000), STASH_ESTATE);
    ledger_free(l);
}

/* Init work (prefetch) is tagged when it starts: its facts go to the init record whether they
 * come before the first INVOKE, during it or after it, whatever id they carry; the init record
 * waits for the work to end, and the invocations get none of it. */
static void test_init_work(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts init_f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_MISS, 30, NULL, "db");
    struct facts req_f = mkfacts(FACTS_SVC_SSM, FACTS_HIT, 0.5, NULL, "/p");
    struct telemetry_event ev;
    struct ledger_stats st;

    (void)state;
    init_f.phase = FACTS_PHASE_INIT;
    add_call(&init_f, 28.0, 200, 0, 0);
    ledger_init_work_begin(l);
    ledger_init_work_begin(l);   /* nested: the record waits for both ends */
    ledger_on_facts(l, &init_f); /* before the first INVOKE */

    assert_int_equal(ledger_on_invoke(l, "A", 0, 2000), STASH_OK);
    assert_int_equal(s_ncap, 0); /* the init record waits for its work */
    ledger_on_facts(l, &init_f); /* during invocation 1 */
    snprintf(init_f.request_id, sizeof(init_f.request_id), "A");
    ledger_on_facts(l, &init_f); /* naming invocation 1 does not move it there */
    ledger_on_facts(l, &req_f);  /* untagged: invocation 1's */
    assert_int_equal(ledger_on_invoke(l, "B", 0, 3000), STASH_OK);
    ev = mkreport("A", 5, 5, 100);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 1); /* A is complete; the init record still waits */
    assert_string_equal(s_cap[0].rec.request_id, "A");
    assert_int_equal(s_cap[0].rec.counts.requests, 1);
    assert_int_equal(s_cap[0].rec.counts.hits, 1);
    assert_int_equal(s_cap[0].rec.counts.upstream_calls, 0);
    assert_int_equal(s_cap[0].rec.counts.sm_calls, 0);
    init_f.request_id[0] = '\0';
    ledger_on_facts(l, &init_f); /* after invocation 1, during 2 */
    ledger_stats(l, &st);
    assert_int_equal(st.awaiting_report, 0); /* the init record owes no report */

    ledger_init_work_end(l);
    assert_int_equal(s_ncap, 1);
    ledger_init_work_end(l); /* the last end: the init record goes out at once */
    assert_int_equal(s_ncap, 2);
    assert_true(s_cap[1].rec.is_init);
    assert_string_equal(s_cap[1].rec.request_id, "");
    assert_int_equal(s_cap[1].rec.counts.requests, 4);
    assert_int_equal(s_cap[1].rec.counts.misses, 4);
    assert_int_equal(s_cap[1].rec.counts.sm_calls, 4);
    assert_int_equal(s_cap[1].rec.nupstream, 4);
    assert_false(s_cap[1].rec.cold_start);

    /* Tagged facts once the init record is out are counted as untagged ones: B's. */
    ledger_on_facts(l, &init_f);
    ledger_init_work_end(l); /* an end without a begin is ignored */
    ledger_on_shutdown(l);
    ledger_flush(l);
    assert_int_equal(s_ncap, 3);
    assert_string_equal(s_cap[2].rec.request_id, "B");
    assert_int_equal(s_cap[2].rec.counts.sm_calls, 1);
    ledger_free(l);
}

/* Init work still going at SHUTDOWN: the flush writes the init record with what it has. */
static void test_init_work_at_shutdown(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f = mkfacts(FACTS_SVC_SSM, FACTS_MISS, 30, NULL, "/p");

    (void)state;
    f.phase = FACTS_PHASE_INIT;
    add_call(&f, 28.0, 200, 0, 0);
    ledger_init_work_begin(l);
    assert_int_equal(ledger_on_invoke(l, "A", 0, 2000), STASH_OK);
    ledger_on_facts(l, &f);
    ledger_on_shutdown(l);
    assert_int_equal(s_ncap, 0);
    ledger_flush(l);
    assert_int_equal(s_ncap, 2);
    assert_true(s_cap[0].rec.is_init);
    assert_int_equal(s_cap[0].rec.counts.ssm_calls, 1);
    assert_string_equal(s_cap[1].rec.request_id, "A");
    assert_int_equal(s_cap[1].rec.counts.requests, 0);
    ledger_free(l);
}

static void test_attribution_by_header(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f;

    (void)state;
    assert_int_equal(ledger_on_invoke(l, "A", 0, 10), STASH_OK);
    assert_int_equal(ledger_on_invoke(l, "B", 0, 20), STASH_OK);
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 1, "A", NULL);
    ledger_on_facts(l, &f);
    ledger_on_facts(l, &f);
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 1, "unknown-id", NULL);
    ledger_on_facts(l, &f); /* not an open record: the current invocation (B) */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_WAITED, 1, NULL, NULL);
    ledger_on_facts(l, &f);
    ledger_on_shutdown(l);
    ledger_flush(l);
    assert_int_equal(s_ncap, 2); /* the empty init record is not emitted */
    assert_string_equal(s_cap[0].rec.request_id, "A");
    assert_int_equal(s_cap[0].rec.counts.hits, 2);
    assert_int_equal(s_cap[0].rec.counts.requests, 2);
    assert_string_equal(s_cap[1].rec.request_id, "B");
    assert_int_equal(s_cap[1].rec.counts.hits, 1);
    assert_int_equal(s_cap[1].rec.counts.waits, 1);
    assert_int_equal(s_cap[1].rec.counts.requests, 2);
    /* Flushed without reports: cache metrics only. */
    assert_false(s_cap[0].rec.has & LEDGER_HAS_REPORT);
    assert_false(s_cap[1].rec.has & LEDGER_HAS_REPORT);
    ledger_free(l);
}

/* A refresh-ahead: the hit that started it counts it in refreshes; the refresh's own facts
 * (FACTS_AHEAD) add its upstream calls but no request, no outcome and no fetch latency; per key
 * too. */
static void test_refresh_ahead_counts(void **state)
{
    struct ledger *l = new_ledger(0, 1);
    struct facts hit = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.2, NULL, "db");
    struct facts ahead = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_AHEAD, 210.0, NULL, "db");
    const struct ledger_record *r;

    (void)state;
    hit.refreshes = 1;
    add_call(&ahead, 205.5, 200, 0, 0);
    assert_int_equal(ledger_on_invoke(l, "A", 0, 10), STASH_OK);
    ledger_on_facts(l, &hit);
    ledger_on_facts(l, &ahead);
    ledger_on_shutdown(l);
    ledger_flush(l);
    assert_int_equal(s_ncap, 1);
    r = &s_cap[0].rec;
    assert_int_equal(r->counts.requests, 1);
    assert_int_equal(r->counts.hits, 1);
    assert_int_equal(r->counts.misses + r->counts.stale + r->counts.waits, 0);
    assert_int_equal(r->counts.refreshes, 1);
    assert_int_equal(r->counts.upstream_calls, 1);
    assert_int_equal(r->counts.sm_calls, 1);
    assert_int_equal(r->nfetch, 1);
    assert_true(r->fetch_ms[0] == 0.2);
    assert_int_equal(r->nupstream, 1);
    assert_true(r->upstream_ms[0] == 205.5);
    assert_int_equal(r->nkeys, 1);
    assert_int_equal(r->keys[0].counts.refreshes, 1);
    assert_int_equal(r->keys[0].counts.requests, 1);
    assert_int_equal(r->keys[0].counts.upstream_calls, 1);
    ledger_free(l);
}

static void test_shutdown_flush_without_report(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f = mkfacts(FACTS_SVC_SSM, FACTS_BYPASS, 3, NULL, NULL);
    struct telemetry_event ev = mkruntime_done("A", 2.0);
    struct ledger_stats st;

    (void)state;
    add_call(&f, 2.5, 200, 0, 0);
    assert_int_equal(ledger_on_invoke(l, "A", 0, 10), STASH_OK);
    ledger_on_facts(l, &f);
    ledger_on_event(l, &ev);
    ledger_on_shutdown(l);
    assert_int_equal(s_ncap, 0);
    ledger_flush(l);
    assert_int_equal(s_ncap, 1);
    assert_int_equal(s_cap[0].rec.counts.misses, 1);
    assert_int_equal(s_cap[0].rec.counts.bypass, 1);
    assert_true(s_cap[0].rec.has & LEDGER_HAS_RUNTIME_DONE);
    assert_false(s_cap[0].rec.has & LEDGER_HAS_REPORT);
    /* A report arriving after the flush is late: dropped, counted, nothing re-emitted. */
    ev = mkreport("A", 1, 1, 0);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 1);
    ledger_stats(l, &st);
    assert_int_equal(st.late_events, 1);
    assert_int_equal(st.open, 0);
    /* Facts with no record left are counted, not lost silently. */
    ledger_on_facts(l, &f);
    ledger_stats(l, &st);
    assert_int_equal(st.facts_after_shutdown, 1);
    ledger_free(l);
}

static void test_cold_start_once(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    char id[16];
    int cold = 0;

    (void)state;
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        assert_int_equal(ledger_on_invoke(l, id, 0, (uint64_t)i), STASH_OK);
    }
    ledger_on_shutdown(l);
    ledger_flush(l);
    assert_int_equal(s_ncap, 5);
    for (size_t i = 0; i < s_ncap; i++) {
        cold += s_cap[i].rec.cold_start;
    }
    assert_int_equal(cold, 1);
    assert_string_equal(s_cap[0].rec.request_id, "r0");
    assert_true(s_cap[0].rec.cold_start);
    ledger_free(l);
}

/* The listener can deliver runtimeDone/report before the main thread records the INVOKE. */
static void test_event_before_invoke_is_adopted(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct telemetry_event ev = mkreport("A", 7, 8, 0);
    struct facts f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 1, NULL, NULL);

    (void)state;
    ev.time_ms = 77;
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 0);
    assert_int_equal(ledger_on_invoke(l, "A", 0, 100), STASH_OK);
    ledger_on_facts(l, &f);
    assert_int_equal(s_ncap, 0);
    assert_int_equal(ledger_on_invoke(l, "B", 0, 200), STASH_OK);
    /* A: local half closed, report already in: emitted at once. */
    assert_int_equal(s_ncap, 1);
    assert_string_equal(s_cap[0].rec.request_id, "A");
    assert_int_equal(s_cap[0].rec.invoke_ms, 100);
    assert_int_equal(s_cap[0].rec.counts.hits, 1);
    assert_true(s_cap[0].rec.cold_start);
    assert_true(s_cap[0].rec.duration_ms == 7);
    /* An event without a usable time opens its record at the latest time the ledger has seen. */
    ev = mkreport("Z", 1, 1, 0);
    ev.time_ms = 0;
    ledger_on_event(l, &ev);
    ledger_flush(l);
    assert_string_equal(s_cap[s_ncap - 1].rec.request_id, "Z");
    assert_int_equal(s_cap[s_ncap - 1].rec.invoke_ms, 1000); /* ledger_new's, the latest here */
    ledger_free(l);
}

static void test_telemetry_off(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 1, NULL, NULL);

    (void)state;
    assert_int_equal(ledger_on_invoke(l, "A", 0, 1), STASH_OK);
    ledger_on_facts(l, &f);
    assert_int_equal(ledger_on_invoke(l, "B", 0, 2), STASH_OK);
    assert_int_equal(s_ncap, 0);
    ledger_telemetry_off(l); /* A was waiting for a report that will never come */
    assert_int_equal(s_ncap, 1);
    assert_string_equal(s_cap[0].rec.request_id, "A");
    assert_int_equal(ledger_on_invoke(l, "C", 0, 3), STASH_OK);
    assert_int_equal(s_ncap, 2); /* B: complete as soon as its local half closes */
    ledger_on_shutdown(l);
    assert_int_equal(s_ncap, 3);
    ledger_free(l);
}

/* Lambda Managed Instances: no INVOKE, overlapping invocations.  Records come from the callers'
 * ids and the reports: each completes with its report, facts land where their id says, and what
 * names no id stays in the init record until SHUTDOWN. */
static void test_no_invokes(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct facts f;
    struct telemetry_event ev;
    struct ledger_stats st;

    (void)state;
    ledger_invokes_off(l);
    /* Two invocations overlap: a hit for A, a miss with one call for B, another hit for A. */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.2, "inv-a", NULL);
    ledger_on_facts(l, &f);
    f = mkfacts(FACTS_SVC_SSM, FACTS_MISS, 12.0, "inv-b", NULL);
    add_call(&f, 11.0, 200, 0, 0);
    ledger_on_facts(l, &f);
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.3, "inv-a", NULL);
    ledger_on_facts(l, &f);
    /* One request names no id. */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.1, NULL, NULL);
    ledger_on_facts(l, &f);
    assert_int_equal(s_ncap, 0);

    /* B's report first: B is complete at once, A still waits for its own. */
    ev = mkreport("inv-b", 20.5, 21, 0);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 1);
    assert_string_equal(s_cap[0].rec.request_id, "inv-b");
    assert_int_equal(s_cap[0].rec.counts.misses, 1);
    assert_int_equal(s_cap[0].rec.counts.ssm_calls, 1);
    assert_int_equal(s_cap[0].rec.counts.hits, 0);
    assert_true(s_cap[0].rec.duration_ms == 20.5);
    assert_int_equal(s_cap[0].rec.cold_start, 0); /* A's facts came first: A is the cold start */

    ev = mkreport("inv-a", 5.25, 6, 0);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 2);
    assert_string_equal(s_cap[1].rec.request_id, "inv-a");
    assert_int_equal(s_cap[1].rec.counts.hits, 2);
    assert_int_equal(s_cap[1].rec.counts.requests, 2);
    assert_int_equal(s_cap[1].rec.cold_start, 1);

    /* A report for an invocation that made no request: its own record, Lambda's figures only. */
    ev = mkreport("inv-c", 1.0, 1, 0);
    ledger_on_event(l, &ev);
    assert_int_equal(s_ncap, 3);
    assert_string_equal(s_cap[2].rec.request_id, "inv-c");
    assert_int_equal(s_cap[2].rec.counts.requests, 0);
    assert_int_equal(s_cap[2].rec.cold_start, 0);

    /* Facts naming an id already emitted do not reopen it. */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.1, "inv-a", NULL);
    ledger_on_facts(l, &f);
    ledger_stats(l, &st);
    assert_int_equal(st.open, 1); /* the init record only */

    /* At SHUTDOWN an invocation still running owes its report: SHUTDOWN waits for it. */
    f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_MISS, 3.0, "inv-d", NULL);
    ledger_on_facts(l, &f);
    ledger_on_shutdown(l);
    /* The init record closes now and goes out: the id-less hit and the late one. */
    assert_int_equal(s_ncap, 4);
    assert_true(s_cap[3].rec.is_init);
    assert_int_equal(s_cap[3].rec.counts.hits, 2);
    ledger_stats(l, &st);
    assert_int_equal(st.awaiting_report, 1);
    ev = mkreport("inv-d", 4.0, 4, 0);
    ledger_on_event(l, &ev);
    ledger_stats(l, &st);
    assert_int_equal(st.awaiting_report, 0);
    assert_int_equal(s_ncap, 5);
    assert_string_equal(s_cap[4].rec.request_id, "inv-d");
    assert_int_equal(s_cap[4].rec.counts.misses, 1);
    assert_true(s_cap[4].rec.duration_ms == 4.0);

    ledger_flush(l);
    assert_int_equal(s_ncap, 5);
    ledger_free(l);
}

static void test_bounds(void **state)
{
    struct ledger *l = new_ledger(4, 1);
    struct ledger_stats st;
    struct facts f;
    char id[16];
    char name[32];

    (void)state;
    /* Open records: never more than max_open; the oldest go first, counted. */
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        assert_int_equal(ledger_on_invoke(l, id, 0, (uint64_t)i), STASH_OK);
        ledger_stats(l, &st);
        assert_true(st.open <= 4);
    }
    ledger_stats(l, &st);
    assert_int_equal(st.evicted, 6);
    assert_int_equal(s_ncap, 6);
    assert_string_equal(s_cap[0].rec.request_id, "r0");
    assert_true(s_cap[0].rec.evicted);
    assert_string_equal(s_cap[5].rec.request_id, "r5");
    /* Latencies: at most LEDGER_LAT_MAX kept, the rest counted; counts stay exact. Keys: at most
     * LEDGER_KEYS_MAX names, non-ASCII names never kept. */
    for (int i = 0; i < LEDGER_LAT_MAX + 10; i++) {
        snprintf(name, sizeof(name), "key-%d", i % (LEDGER_KEYS_MAX + 3));
        f = mkfacts(FACTS_SVC_SSM, FACTS_MISS, (double)i, NULL, name);
        add_call(&f, 1.0, 200, 0, 0);
        ledger_on_facts(l, &f);
    }
    f = mkfacts(FACTS_SVC_SSM, FACTS_HIT, 1.0, NULL, "caf\xc3\xa9");
    ledger_on_facts(l, &f);
    ledger_on_shutdown(l);
    ledger_flush(l);
    {
        const struct ledger_record *r = &s_cap[s_ncap - 1].rec;

        assert_string_equal(r->request_id, "r9");
        assert_int_equal(r->counts.misses, LEDGER_LAT_MAX + 10);
        assert_int_equal(r->counts.upstream_calls, LEDGER_LAT_MAX + 10);
        assert_int_equal(r->nfetch, LEDGER_LAT_MAX);
        assert_int_equal(r->fetch_dropped, 11);
        assert_int_equal(r->nupstream, LEDGER_LAT_MAX);
        assert_int_equal(r->upstream_dropped, 10);
        assert_int_equal(r->nkeys, LEDGER_KEYS_MAX);
        assert_string_equal(r->keys[0].name, "key-0");
        assert_int_equal(r->keys[0].service, FACTS_SVC_SSM);
        assert_true(r->keys[0].counts.misses > 0);
        assert_true(r->keys_dropped > 0);
        for (size_t i = 0; i < r->nkeys; i++) {
            assert_null(strstr(r->keys[i].name, "caf"));
        }
    }
    ledger_free(l);
}

/* A flood of events for unknown ids (a hostile or confused Telemetry batch) evicts the oldest
 * other records, never the current invocation, which still collects its facts. */
static void test_flood_never_evicts_current(void **state)
{
    struct ledger *l = new_ledger(3, 0);
    struct ledger_stats st;
    struct telemetry_event ev;
    struct facts f;
    char id[16];

    (void)state;
    assert_int_equal(ledger_on_invoke(l, "cur", 0, 2000), STASH_OK);
    for (int i = 0; i < 50; i++) {
        memset(&ev, 0, sizeof(ev));
        ev.type = TELEMETRY_RUNTIME_DONE;
        snprintf(id, sizeof(id), "x%d", i);
        snprintf(ev.request_id, sizeof(ev.request_id), "%s", id);
        ledger_on_event(l, &ev);
        ledger_stats(l, &st);
        assert_true(st.open <= 3);
    }
    ledger_stats(l, &st);
    assert_int_equal(st.evicted, 48);
    f = mkfacts(FACTS_SVC_SSM, FACTS_HIT, 1.0, NULL, "p");
    ledger_on_facts(l, &f);
    ev = mkreport("cur", 5, 5, 0);
    ledger_on_event(l, &ev);
    ledger_on_shutdown(l);
    ledger_flush(l);
    for (size_t i = 0; i < s_ncap; i++) {
        if (strcmp(s_cap[i].rec.request_id, "cur") == 0) {
            assert_false(s_cap[i].rec.evicted);
            assert_int_equal(s_cap[i].rec.counts.hits, 1);
            assert_true(s_cap[i].rec.has & LEDGER_HAS_REPORT);
            ledger_free(l);
            return;
        }
    }
    ledger_free(l);
    fail_msg("the current record was never emitted");
}

static void test_invoke_validation(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    char longid[TELEMETRY_ID_MAX + 1];

    (void)state;
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(ledger_on_invoke(l, "", 0, 0), STASH_EINVAL);
    assert_int_equal(ledger_on_invoke(l, NULL, 0, 0), STASH_EINVAL);
    assert_int_equal(ledger_on_invoke(l, longid, 0, 0), STASH_EINVAL);
    /* The same INVOKE twice keeps one record. */
    assert_int_equal(ledger_on_invoke(l, "A", 0, 0), STASH_OK);
    assert_int_equal(ledger_on_invoke(l, "A", 0, 0), STASH_OK);
    ledger_flush(l);
    assert_int_equal(s_ncap, 1);
    ledger_free(l);
}

/* A batch applies all its events under one lock: two reports complete two records. */
static void test_batch(void **state)
{
    struct ledger *l = new_ledger(0, 0);
    struct telemetry_event evs[3];
    struct telemetry_batch b = {evs, 3, 0, 0};

    (void)state;
    assert_int_equal(ledger_on_invoke(l, "A", 0, 1), STASH_OK);
    assert_int_equal(ledger_on_invoke(l, "B", 0, 2), STASH_OK);
    assert_int_equal(ledger_on_invoke(l, "C", 0, 3), STASH_OK);
    evs[0] = mkreport("A", 1, 1, 0);
    evs[1] = mkruntime_done("C", 1);
    evs[2] = mkreport("B", 2, 2, 0);
    ledger_on_batch(l, &b);
    assert_int_equal(s_ncap, 2);
    assert_string_equal(s_cap[0].rec.request_id, "A");
    assert_string_equal(s_cap[1].rec.request_id, "B");
    ledger_flush(l);
    ledger_free(l);
}

struct hammer {
    struct ledger *l;
    int n;
};

static void *hammer_facts(void *arg)
{
    struct hammer *h = arg;
    struct facts f = mkfacts(FACTS_SVC_SECRETS_MANAGER, FACTS_HIT, 0.1, NULL, "k");

    for (int i = 0; i < h->n; i++) {
        ledger_on_facts(h->l, &f);
    }
    return NULL;
}

/* Facts from several threads while INVOKEs arrive: nothing lost, nothing counted twice. */
static void test_concurrent_facts(void **state)
{
    struct ledger *l = new_ledger(0, 1);
    pthread_t th[4];
    struct hammer h = {l, 5000};
    uint64_t total = 0;
    char id[16];

    (void)state;
    assert_int_equal(ledger_on_invoke(l, "r0", 0, 0), STASH_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, hammer_facts, &h), 0);
    }
    for (int i = 1; i < 50; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        assert_int_equal(ledger_on_invoke(l, id, 0, (uint64_t)i), STASH_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    ledger_on_shutdown(l);
    ledger_flush(l);
    for (size_t i = 0; i < s_ncap; i++) {
        total += s_cap[i].rec.counts.hits;
        if (s_cap[i].rec.nkeys) {
            assert_int_equal(s_cap[i].rec.keys[0].counts.hits, s_cap[i].rec.counts.hits);
        }
    }
    assert_int_equal(total, 4 * 5000);
    ledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_of_n_during_n_plus_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribution_by_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_work_at_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_flush_without_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_ahead_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_before_invoke_is_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_invokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_never_evicts_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_facts, setup, teardown),
    };

    mem_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
