/* telemetry/ledger.h: per-invocation records, joining what the cache did with platform.report.
 *
 * A record has two halves.  The local half (requests, hits, misses, latencies, upstream calls)
 * fills from ledger_on_facts() and closes at the next ledger_on_invoke() or at
 * ledger_on_shutdown().  The platform half (runtimeDone, report) comes from ledger_on_event();
 * Lambda produces platform.report for invoke N only after N has ended, so it normally arrives
 * during N+1 or at SHUTDOWN.  A record is complete when its local half is closed AND its report
 * is in (or at once when telemetry is off, see ledger_telemetry_off()); it is then handed to the
 * sink and forgotten.
 *
 * Attribution of facts: to the record named by facts->request_id when that id is an open record,
 * else to the current invocation (the latest INVOKE).  Facts before the first INVOKE form the
 * init record (is_init, request_id ""), which completes when the first INVOKE closes it (it
 * waits for no report); an init record with no request and no upstream call is not emitted.
 * Platform events for an id not yet seen open a record for it (the listener can beat the main
 * thread to the INVOKE); ledger_on_invoke() with that id adopts it.  Events for a record that has
 * been emitted are dropped and counted (stats.late_events).
 * The first INVOKE's record has cold_start = 1; no other record has.
 * Init work: facts tagged FACTS_PHASE_INIT go to the init record whatever invocation is current
 * and whatever request id they carry.  So that the init record is still open when they come, the
 * code that starts such work calls ledger_init_work_begin() before it starts and
 * ledger_init_work_end() when it is over; the init record completes only when its local half is
 * closed and no init work is pending.  Tagged facts that come when no init record is open any
 * more (after ledger_flush(), or with no begin) are attributed as untagged ones are.
 *
 * Bounds: at most max_open records are open; past that the oldest is emitted with what it has
 * (stats.evicted counts them; its cache metrics are kept, its late report is dropped).  Latency
 * arrays keep LEDGER_LAT_MAX values (the counts stay exact; stats and the record count the rest).
 * Per-key entries (only with per_key on) keep LEDGER_KEYS_MAX names per record.
 *
 * Values: the ledger never sees a secret value (facts carry none).  Names are copied only when
 * per_key is on, and only names that are printable ASCII (others are counted in keys_dropped).
 *
 * Ownership: ledger_new() copies the config; ledger_free() frees everything, emitting nothing
 * (call ledger_flush() first).  The sink gets a record valid only for the duration of the call.
 * Thread-safety: every function is thread-safe (one mutex).  The sink is called with no lock held,
 * from whichever thread completed the record (main, an MHD thread, the listener), possibly from
 * two threads at once; it must be thread-safe itself (emf_writer is).
 */
#ifndef STASH_TELEMETRY_LEDGER_H
#define STASH_TELEMETRY_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/facts.h"
#include "telemetry/events.h"

#define LEDGER_OPEN_DEFAULT 64   /* open records kept before the oldest is evicted */
#define LEDGER_LAT_MAX      1000 /* latency values kept per record and per array */
#define LEDGER_KEYS_MAX     32   /* per-key entries kept per record */
#define LEDGER_RECENT       64   /* ids of emitted records remembered to drop late events */

/* Which platform facts a record carries (bit set = present). */
enum ledger_has {
    LEDGER_HAS_REPORT = 1u << 0,       /* platform.report arrived */
    LEDGER_HAS_RUNTIME_DONE = 1u << 1, /* platform.runtimeDone arrived */
    LEDGER_HAS_DURATION = 1u << 2,
    LEDGER_HAS_BILLED = 1u << 3,
    LEDGER_HAS_INIT_DURATION = 1u << 4,
    LEDGER_HAS_MAX_MEMORY = 1u << 5,
    LEDGER_HAS_MEMORY_SIZE = 1u << 6,
    LEDGER_HAS_EXT_OVERHEAD = 1u << 7, /* extensionOverhead span of the report */
    LEDGER_HAS_RESTORE_DURATION = 1u << 8,
    LEDGER_HAS_RESPONSE_LATENCY = 1u << 9, /* runtimeDone spans */
    LEDGER_HAS_RESPONSE_DURATION = 1u << 10,
    LEDGER_HAS_RUNTIME_OVERHEAD = 1u << 11,
    LEDGER_HAS_RUNTIME_DURATION = 1u << 12, /* runtimeDone metrics.durationMs */
    LEDGER_HAS_PRODUCED_BYTES = 1u << 13,
};

/* Counters of one record, or of one key in a record. */
struct ledger_counts {
    uint64_t requests;           /* local requests served (every outcome but FACTS_AHEAD) */
    uint64_t hits;               /* FACTS_HIT */
    uint64_t misses;             /* FACTS_MISS + FACTS_BYPASS: answered by going upstream */
    uint64_t stale;              /* FACTS_STALE */
    uint64_t waits;              /* FACTS_WAITED: single-flight followers */
    uint64_t bypass;             /* FACTS_BYPASS (also counted in misses) */
    uint64_t refreshes;          /* sum of facts->refreshes: refresh-ahead runs started */
    uint64_t upstream_calls;     /* sum of facts->ncalls */
    uint64_t sm_calls;           /* ... of which to Secrets Manager */
    uint64_t ssm_calls;          /* ... of which to SSM Parameter Store */
    uint64_t upstream_errors;    /* recorded calls with error set (throttles included) */
    uint64_t upstream_throttles; /* recorded calls with throttled set */
};

struct ledger_key {
    enum facts_service service;
    char name[FACTS_NAME_MAX];
    struct ledger_counts counts;
};

struct ledger_record {
    char request_id[TELEMETRY_ID_MAX]; /* "" for the init record */
    char tenant_id[TELEMETRY_ID_MAX];  /* from the report/runtimeDone, or "" */
    int is_init;                       /* requests served before the first INVOKE */
    int cold_start;                    /* the first invocation of this environment */
    int evicted;                       /* emitted early because max_open was reached */
    uint64_t invoke_ms;                /* wall ms of INVOKE (init record: ledger_new's now_ms) */
    uint64_t deadline_ms;              /* from INVOKE, 0 if unknown */
    struct ledger_counts counts;

    double *fetch_ms; /* latency of each local cache request (outcome != LOCAL) */
    size_t nfetch;
    uint64_t fetch_dropped; /* latencies past LEDGER_LAT_MAX */
    double *upstream_ms;    /* latency of each recorded upstream call */
    size_t nupstream;
    uint64_t upstream_dropped;

    /* The platform half. */
    unsigned has;                 /* enum ledger_has bits */
    enum telemetry_status status; /* of the report (else runtimeDone) */
    double duration_ms, billed_duration_ms, init_duration_ms, restore_duration_ms;
    double max_memory_used_mb, memory_size_mb, extension_overhead_ms;
    double runtime_duration_ms, produced_bytes;
    double response_latency_ms, response_duration_ms, runtime_overhead_ms;

    struct ledger_key *keys; /* per-key entries (per_key on), else NULL */
    size_t nkeys;
    uint64_t keys_dropped; /* keys past LEDGER_KEYS_MAX or not printable ASCII */
};

/* Called once per completed record, with no ledger lock held. */
typedef void (*ledger_sink_fn)(const struct ledger_record *rec, void *ctx);

struct ledger_config {
    size_t max_open;     /* 0 means LEDGER_OPEN_DEFAULT */
    int per_key;         /* keep secret / parameter names (STASH_METRICS_PER_KEY) */
    ledger_sink_fn sink; /* may be NULL: records are then discarded */
    void *sink_ctx;
};

struct ledger_stats {
    uint64_t emitted;              /* records handed to the sink */
    uint64_t evicted;              /* emitted early by the max_open bound */
    uint64_t late_events;          /* platform events for records already emitted */
    uint64_t facts_after_shutdown; /* facts with no record left to take them */
    size_t open;                   /* records open now */
    size_t awaiting_report;        /* open records whose local half is closed, report missing */
};

struct ledger;

/* now_ms: wall clock (epoch ms) used as the init record's timestamp. */
struct ledger *ledger_new(const struct ledger_config *cfg, uint64_t now_ms);
void ledger_free(struct ledger *l);

/* INVOKE for request_id (non-empty, shorter than TELEMETRY_ID_MAX, else STASH_EINVAL) at wall
 * time now_ms: closes the local half of the current record (and of the init record) and makes a
 * record for request_id current.  STASH_ESTATE after ledger_on_shutdown(). */
enum stash_err ledger_on_invoke(struct ledger *l, const char *request_id, uint64_t deadline_ms,
                                uint64_t now_ms);
/* One local request's facts. */
void ledger_on_facts(struct ledger *l, const struct facts *f);
/* Init work (facts tagged FACTS_PHASE_INIT) is starting / is over: the init record waits for
 * every begin's end before it completes.  Calls nest; an end without a begin is ignored. */
void ledger_init_work_begin(struct ledger *l);
void ledger_init_work_end(struct ledger *l);
/* One platform event (runtimeDone, report, initReport...; other types are ignored). */
void ledger_on_event(struct ledger *l, const struct telemetry_event *ev);
/* Every event of a parsed batch, in order, under one lock acquisition. */
void ledger_on_batch(struct ledger *l, const struct telemetry_batch *b);
/* Telemetry is unavailable (subscription refused): records complete as soon as their local half
 * closes, and those already waiting for a report are emitted now. */
void ledger_telemetry_off(struct ledger *l);
/* Lambda Managed Instances: extensions may register only for SHUTDOWN, so no INVOKE ever comes
 * and invocations may overlap.  From this call on, records come from the Telemetry API alone: a
 * record is opened by the first facts naming its request id (X-Stash-Request-Id) or by its first
 * platform event, and is complete as soon as its platform.report is in (no local half to close).
 * The environment's first such record is its cold start.  Facts naming no open id go to the init
 * record, which then stays open until SHUTDOWN. */
void ledger_invokes_off(struct ledger *l);
/* SHUTDOWN: closes the local half of the current record.  Records still missing their report stay
 * open so the caller can wait (bounded) for ledger_stats().awaiting_report to reach 0, then call
 * ledger_flush().  Later facts go to the current record while it is open. */
void ledger_on_shutdown(struct ledger *l);
/* Emits every open record with what has arrived (local halves are closed first). */
void ledger_flush(struct ledger *l);
void ledger_stats(struct ledger *l, struct ledger_stats *out);

#endif
