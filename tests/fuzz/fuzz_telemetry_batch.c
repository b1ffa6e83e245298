/* libFuzzer harness: one Telemetry API POST body through the parser, the ledger and the EMF
 * renderer, as the listener does.
 *
 * Properties (abort() when broken, on top of ASan/UBSan):
 * - a rejected body leaves the batch empty and the ledger unchanged: two ledgers built the same
 *   way, one of which is offered the rejected batch, emit identical records when flushed;
 * - an accepted body never makes the ledger hold more than max_open records, and every record it
 *   emits renders to lines that are single JSON objects (cJSON refuses NaN/Infinity).
 * Seeds: tests/fuzz/seed_telemetry_batch.sh makes a corpus from tests/data/telemetry-samples.
 * Run: make fuzz && tests/fuzz/seed_telemetry_batch.sh build/fuzz/corpus-telemetry &&
 *      build/fuzz/fuzz/fuzz_telemetry_batch build/fuzz/corpus-telemetry -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "telemetry/emf.h"
#include "telemetry/events.h"
#include "telemetry/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPEN 8

struct seen {
    struct ledger_record recs[64];
    size_t n;
    const struct emf_config *cfg;
};

static void check_lines(const struct emf_config *cfg, const struct ledger_record *rec)
{
    struct emf_lines lines;

    if (emf_render_record(cfg, rec, &lines) != STASH_OK) {
        abort();
    }
    for (size_t i = 0; i < lines.n; i++) {
        cJSON *doc = cJSON_Parse(lines.line[i]);

        /* cJSON refuses nan/inf, so a parse is also the finite-numbers check. */
        if (!doc || !cJSON_IsObject(doc) || memchr(lines.line[i], '\n', lines.len[i] - 1)) {
            abort();
        }
        cJSON_Delete(doc);
    }
    emf_lines_release(&lines);
}

static void sink(const struct ledger_record *rec, void *ctx)
{
    struct seen *s = ctx;

    check_lines(s->cfg, rec);
    if (s->n < sizeof(s->recs) / sizeof(s->recs[0])) {
        s->recs[s->n] = *rec;
        /* Arrays are freed after the sink returns: compare counts, not pointers. */
        s->recs[s->n].fetch_ms = NULL;
        s->recs[s->n].upstream_ms = NULL;
        s->recs[s->n].keys = NULL;
        s->n++;
    }
}

/* The same history for every ledger: an init prefetch, two invocations, a report for the first. */
static struct ledger *make_ledger(struct seen *s)
{
    struct ledger_config cfg = {.max_open = MAX_OPEN, .per_key = 1, .sink = sink, .sink_ctx = s};
    struct ledger *l = ledger_new(&cfg, 1000);
    struct facts f;
    struct telemetry_event ev;

    memset(&f, 0, sizeof(f));
    f.service = FACTS_SVC_SECRETS_MANAGER;
    f.outcome = FACTS_MISS;
    f.latency_ms = 12.5;
    f.ncalls = f.ncalls_recorded = 1;
    f.calls[0].ms = 11.0;
    f.calls[0].http_status = 200;
    snprintf(f.name, sizeof(f.name), "db");
    ledger_on_facts(l, &f);
    ledger_on_invoke(l, "8f60e725-45d2-4901-949c-482a936d20be", 0, 2000);
    f.outcome = FACTS_HIT;
    f.ncalls = f.ncalls_recorded = 0;
    ledger_on_facts(l, &f);
    ledger_on_invoke(l, "1ba8e02a-fe88-40db-8cd3-7c7639ed00fa", 0, 3000);
    ledger_on_facts(l, &f);
    memset(&ev, 0, sizeof(ev));
    ev.type = TELEMETRY_RUNTIME_DONE;
    snprintf(ev.request_id, sizeof(ev.request_id), "1ba8e02a-fe88-40db-8cd3-7c7639ed00fa");
    ledger_on_event(l, &ev);
    return l;
}

static int same_records(const struct seen *a, const struct seen *b)
{
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct ledger_record *x = &a->recs[i], *y = &b->recs[i];

        if (strcmp(x->request_id, y->request_id) != 0 || x->has != y->has ||
            memcmp(&x->counts, &y->counts, sizeof(x->counts)) != 0 || x->nfetch != y->nfetch ||
            x->nupstream != y->nupstream || x->cold_start != y->cold_start ||
            x->nkeys != y->nkeys) {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    static struct emf_config cfg;
    struct telemetry_batch b;
    struct seen *fuzzed = calloc(1, sizeof(*fuzzed));
    struct seen *control = calloc(1, sizeof(*control));
    struct ledger *lf, *lc;
    struct ledger_stats st;
    enum stash_err rc;

    if (!initialised) {
        mem_init();
        if (emf_config_init(&cfg, NULL, "fuzz", "$LATEST", "Env=fuzz", 1) != STASH_OK) {
            abort();
        }
        initialised = 1;
    }
    if (!fuzzed || !control) {
        abort();
    }
    fuzzed->cfg = control->cfg = &cfg;
    lf = make_ledger(fuzzed);
    lc = make_ledger(control);
    rc = telemetry_batch_parse((const char *)data, size, &b);
    if (rc != STASH_OK) {
        if (b.events || b.n || b.nlogs || b.nignored) {
            abort();
        }
        /* What a listener must not do is apply it; applying the empty batch must be a no-op. */
        ledger_on_batch(lf, &b);
        ledger_on_shutdown(lf);
        ledger_on_shutdown(lc);
        ledger_flush(lf);
        ledger_flush(lc);
        if (!same_records(fuzzed, control)) {
            abort();
        }
    } else {
        if (b.n > TELEMETRY_EVENTS_MAX) {
            abort();
        }
        ledger_on_batch(lf, &b);
        ledger_stats(lf, &st);
        if (st.open > MAX_OPEN) {
            abort();
        }
        ledger_on_shutdown(lf);
        ledger_flush(lf);
        ledger_flush(lc);
    }
    telemetry_batch_release(&b);
    ledger_free(lf);
    ledger_free(lc);
    free(fuzzed);
    free(control);
    return 0;
}
