/* tests/tools/emf_sample.c: known ledger records through stash's own EMF writer, to stdout.
 *
 *   emf_sample invocation | aggregate | sampled
 *
 * The dashboards' tests (dashboards/test/) read these lines instead of hand-written EMF, so the
 * report and the dashboard are checked against what the writer really emits: split lines, per-key
 * lines, the init record, an invocation without Lambda's figures, aggregate lines.  Every record
 * goes through emf_writer_sink() on fd 1, the path the extension uses.  The figures below are the
 * ones the tests' expected totals are derived from: change one, change the test.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "telemetry/emf.h"

#define T0 1785265200000ULL /* an hour boundary (UTC) */

static void key(struct ledger_record *r, enum facts_service svc, const char *name,
                struct ledger_counts c)
{
    struct ledger_key *k = &r->keys[r->nkeys++];

    k->service = svc;
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->counts = c;
}

static void report(struct ledger_record *r, double duration, double billed, double overhead,
                   double mem)
{
    r->has |= LEDGER_HAS_REPORT | LEDGER_HAS_DURATION | LEDGER_HAS_BILLED | LEDGER_HAS_MAX_MEMORY |
              LEDGER_HAS_MEMORY_SIZE | LEDGER_HAS_EXT_OVERHEAD;
    r->status = TELEMETRY_STATUS_SUCCESS;
    r->duration_ms = duration;
    r->billed_duration_ms = billed;
    r->extension_overhead_ms = overhead;
    r->max_memory_used_mb = mem;
    r->memory_size_mb = 512;
}

/* The four records of the "invocation" and "aggregate" scenarios:
 *   init: 2 misses (1 Secrets Manager, 1 SSM) served during INIT, no Lambda figures.
 *   A (cold): 5 requests (1 local ping), 3 hits, 1 miss led 2 Secrets Manager calls (the first
 *     throttled), full report: Duration 120.5, Billed 121, Init 300, overhead 0.4, 80 MB.
 *   B: 4 hits, no report (the Lambda figures never arrived).
 *   C: 150 requests: 140 hits, 8 single-flight waits, 2 stale after 2 failed SSM calls; one hit
 *     on /app/flag started a background refresh (refresh-ahead) that found a fill of the key
 *     already running, so it made no call of its own; the 150
 *     fetch latencies split the record over two lines; report: Duration 200, Billed 200,
 *     overhead 0.6, 90 MB. */
static void emit_four(struct emf_writer *w)
{
    static double init_fetch[] = {30, 20}, init_up[] = {28, 18};
    static double a_fetch[] = {0.5, 0.4, 0.6, 40}, a_up[] = {10, 25};
    static double b_fetch[] = {0.3, 0.3, 0.5, 0.4};
    static double c_fetch[150], c_up[] = {120, 80};
    struct ledger_key keys[4];
    struct ledger_record r;

    memset(&r, 0, sizeof(r));
    r.is_init = 1;
    r.invoke_ms = T0;
    r.counts = (struct ledger_counts){
        .requests = 2, .misses = 2, .upstream_calls = 2, .sm_calls = 1, .ssm_calls = 1};
    r.fetch_ms = init_fetch;
    r.nfetch = 2;
    r.upstream_ms = init_up;
    r.nupstream = 2;
    r.keys = keys;
    key(&r, FACTS_SVC_SECRETS_MANAGER, "db/password",
        (struct ledger_counts){.requests = 1, .misses = 1, .upstream_calls = 1, .sm_calls = 1});
    key(&r, FACTS_SVC_SSM, "/app/flag",
        (struct ledger_counts){.requests = 1, .misses = 1, .upstream_calls = 1, .ssm_calls = 1});
    emf_writer_sink(&r, w);

    memset(&r, 0, sizeof(r));
    snprintf(r.request_id, sizeof(r.request_id), "req-a");
    r.cold_start = 1;
    r.invoke_ms = T0 + 1000;
    r.counts = (struct ledger_counts){.requests = 5, .hits = 3, .misses = 1, .upstream_calls = 2,
                                      .sm_calls = 2, .upstream_errors = 1,
                                      .upstream_throttles = 1};
    r.fetch_ms = a_fetch;
    r.nfetch = 4;
    r.upstream_ms = a_up;
    r.nupstream = 2;
    report(&r, 120.5, 121, 0.4, 80);
    r.has |= LEDGER_HAS_INIT_DURATION;
    r.init_duration_ms = 300;
    r.keys = keys;
    key(&r, FACTS_SVC_SECRETS_MANAGER, "db/password",
        (struct ledger_counts){.requests = 3, .hits = 2, .misses = 1, .upstream_calls = 2,
                               .sm_calls = 2, .upstream_errors = 1, .upstream_throttles = 1});
    key(&r, FACTS_SVC_SSM, "/app/flag", (struct ledger_counts){.requests = 1, .hits = 1});
    emf_writer_sink(&r, w);

    memset(&r, 0, sizeof(r));
    snprintf(r.request_id, sizeof(r.request_id), "req-b");
    r.invoke_ms = T0 + 61000;
    r.counts = (struct ledger_counts){.requests = 4, .hits = 4};
    r.fetch_ms = b_fetch;
    r.nfetch = 4;
    r.keys = keys;
    key(&r, FACTS_SVC_SECRETS_MANAGER, "db/password",
        (struct ledger_counts){.requests = 2, .hits = 2});
    key(&r, FACTS_SVC_SSM, "/app/flag", (struct ledger_counts){.requests = 2, .hits = 2});
    emf_writer_sink(&r, w);

    memset(&r, 0, sizeof(r));
    snprintf(r.request_id, sizeof(r.request_id), "req-c");
    r.invoke_ms = T0 + 2 * 3600000ULL + 5000;
    r.counts = (struct ledger_counts){.requests = 150, .hits = 140, .stale = 2, .waits = 8,
                                      .refreshes = 1, .upstream_calls = 2, .ssm_calls = 2,
                                      .upstream_errors = 2};
    for (size_t i = 0; i < 150; i++) {
        c_fetch[i] = i < 140 ? 0.5 : i < 148 ? 30 : 100;
    }
    r.fetch_ms = c_fetch;
    r.nfetch = 150;
    r.upstream_ms = c_up;
    r.nupstream = 2;
    report(&r, 200, 200, 0.6, 90);
    r.keys = keys;
    key(&r, FACTS_SVC_SECRETS_MANAGER, "db/password",
        (struct ledger_counts){.requests = 74, .hits = 70, .waits = 4});
    key(&r, FACTS_SVC_SSM, "/app/flag",
        (struct ledger_counts){.requests = 76, .hits = 70, .stale = 2, .waits = 4,
                               .refreshes = 1, .upstream_calls = 2, .ssm_calls = 2,
                               .upstream_errors = 2});
    emf_writer_sink(&r, w);
}

/* 700 invocations of one hit each (fetch 0.5 ms, Duration 10, Billed 10, overhead 0.5, 60 MB):
 * past EMF_AGG_VALUES_MAX the aggregate keeps a 500-value sample of each series. */
static void emit_many(struct emf_writer *w)
{
    static double fetch[] = {0.5};

    for (int i = 0; i < 700; i++) {
        struct ledger_record r;

        memset(&r, 0, sizeof(r));
        snprintf(r.request_id, sizeof(r.request_id), "req-%d", i);
        r.cold_start = i == 0;
        r.invoke_ms = T0 + (uint64_t)i * 10;
        r.counts = (struct ledger_counts){.requests = 1, .hits = 1};
        r.fetch_ms = fetch;
        r.nfetch = 1;
        report(&r, 10, 10, 0.5, 60);
        emf_writer_sink(&r, w);
    }
}

int main(int argc, char **argv)
{
    struct emf_config cfg;
    struct emf_writer *w;
    const char *s = argc == 2 ? argv[1] : "";
    int agg = strcmp(s, "aggregate") == 0 || strcmp(s, "sampled") == 0;

    mem_init();
    if (!agg && strcmp(s, "invocation") != 0) {
        fprintf(stderr, "usage: emf_sample invocation|aggregate|sampled\n");
        return 2;
    }
    if (emf_config_init(&cfg, NULL, "orders-api", "7", NULL, !agg) != STASH_OK) {
        return 1;
    }
    /* A one-day interval: the whole scenario is one aggregate, written by the flush. */
    w = emf_writer_new(&cfg, agg ? EMF_MODE_AGGREGATE : EMF_MODE_INVOCATION, STDOUT_FILENO,
                       86400000ULL, T0);
    if (strcmp(s, "sampled") == 0) {
        emit_many(w);
    } else {
        emit_four(w);
    }
    emf_writer_flush(w, T0 + 3 * 3600000ULL);
    emf_writer_free(w);
    return 0;
}
