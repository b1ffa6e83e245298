/* telemetry/events.h: one Telemetry API POST body, parsed into typed events.
 *
 * Protocol: Lambda POSTs a JSON array of envelopes {"time":"<ISO ms Z>","type":"...","record":...}
 * to the subscriber (AWS Lambda Developer Guide, "Lambda Telemetry API" and its schema
 * reference).  Schemas 2022-07-01, 2022-12-13 and 2025-01-29
 * are accepted: every field but the envelope and `requestId` (platform.start, runtimeDone,
 * report) is optional, unknown fields are ignored, unknown `type`s are counted and ignored, and
 * `function` / `extension` log records (strings or objects) are counted, never stored.
 *
 * What is malformed (STASH_EPARSE, and nothing is handed out):
 * - not JSON, not an array, an element that is not an object;
 * - an envelope whose `type` or `time` is not a string;
 * - a known platform.* event whose `record` is not an object; a `requestId` (where required) that
 *   is missing, not a string, empty or longer than TELEMETRY_ID_MAX - 1; a field of a known event
 *   with the wrong JSON type (metrics not an object, durationMs not a number...); a metric that is
 *   negative or not finite.
 * Tolerated: an envelope `time` or span `start` that does not parse as ISO 8601 (time_ms /
 * start_ms = 0: the 2022 docs example has "12:01:23:521Z"; losing a batch of reports over a
 * timestamp flavour would cost more than the timestamp), spans past TELEMETRY_SPANS_MAX
 * (dropped), a span without a name or duration (skipped), over-long free-text fields (truncated:
 * errorType, names, states).
 * Ceilings: a body longer than TELEMETRY_BODY_MAX or with more than TELEMETRY_EVENTS_MAX elements
 * is STASH_ETOOBIG.  A listener answers both errors with a 4xx (413 for ETOOBIG, 400 for EPARSE).
 *
 * Ownership: telemetry_batch_parse() fills a caller-provided struct telemetry_batch; the batch owns
 * `events` and telemetry_batch_release() frees it (safe on a zeroed or already released batch).
 * On error the batch is left empty: a rejected body has no partial effect.
 * Thread-safety: pure; concurrent calls on different batches are safe (cJSON is used with no
 * global error pointer; its hooks are set once in main by mem_init()).
 */
#ifndef STASH_TELEMETRY_EVENTS_H
#define STASH_TELEMETRY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* maxBytes can be subscribed up to 1 MiB and Lambda may send up to 2 * maxBytes + metadata. */
#define TELEMETRY_BODY_MAX ((size_t)2 * 1048576 + 65536)
/* maxItems goes up to 10,000; allow twice that, as for bytes. */
#define TELEMETRY_EVENTS_MAX 20000
#define TELEMETRY_SPANS_MAX  8
#define TELEMETRY_ID_MAX     64 /* request ids are 36-char UUIDs; with the NUL */
#define TELEMETRY_TEXT_MAX   64 /* errorType, extension name, state, initializationType... */

enum telemetry_type {
    TELEMETRY_UNKNOWN = 0,          /* never stored: counted in nignored */
    TELEMETRY_INIT_START,           /* platform.initStart */
    TELEMETRY_INIT_RUNTIME_DONE,    /* platform.initRuntimeDone */
    TELEMETRY_INIT_REPORT,          /* platform.initReport */
    TELEMETRY_START,                /* platform.start */
    TELEMETRY_RUNTIME_DONE,         /* platform.runtimeDone */
    TELEMETRY_REPORT,               /* platform.report */
    TELEMETRY_EXTENSION,            /* platform.extension */
    TELEMETRY_SUBSCRIPTION,         /* platform.telemetrySubscription */
    TELEMETRY_LOGS_DROPPED,         /* platform.logsDropped */
    TELEMETRY_RESTORE_START,        /* platform.restoreStart */
    TELEMETRY_RESTORE_RUNTIME_DONE, /* platform.restoreRuntimeDone */
    TELEMETRY_RESTORE_REPORT,       /* platform.restoreReport */
    TELEMETRY_TYPE_COUNT,
};

enum telemetry_status {
    TELEMETRY_STATUS_NONE = 0, /* absent */
    TELEMETRY_STATUS_SUCCESS,
    TELEMETRY_STATUS_ERROR,
    TELEMETRY_STATUS_FAILURE,
    TELEMETRY_STATUS_TIMEOUT,
    TELEMETRY_STATUS_OTHER, /* a string we do not know */
};

/* Which of the numeric fields below were present (bit set) in the record. */
enum telemetry_has {
    TELEMETRY_HAS_DURATION = 1u << 0,         /* metrics.durationMs */
    TELEMETRY_HAS_BILLED = 1u << 1,           /* metrics.billedDurationMs */
    TELEMETRY_HAS_MEMORY_SIZE = 1u << 2,      /* metrics.memorySizeMB */
    TELEMETRY_HAS_MAX_MEMORY = 1u << 3,       /* metrics.maxMemoryUsedMB */
    TELEMETRY_HAS_INIT_DURATION = 1u << 4,    /* metrics.initDurationMs */
    TELEMETRY_HAS_RESTORE_DURATION = 1u << 5, /* metrics.restoreDurationMs */
    TELEMETRY_HAS_PRODUCED_BYTES = 1u << 6,   /* metrics.producedBytes */
    TELEMETRY_HAS_DROPPED = 1u << 7,          /* droppedRecords / droppedBytes */
};

struct telemetry_span {
    char name[32];     /* responseLatency, responseDuration, runtimeOverhead, extensionOverhead.. */
    uint64_t start_ms; /* epoch ms; 0 if absent or unparseable */
    double duration_ms;
};

struct telemetry_event {
    enum telemetry_type type;
    uint64_t time_ms; /* envelope time, epoch ms */
    enum telemetry_status status;
    unsigned has;                        /* enum telemetry_has bits */
    char request_id[TELEMETRY_ID_MAX];   /* "" where the type has none */
    char tenant_id[TELEMETRY_ID_MAX];    /* "" unless tenantId was given (truncated) */
    char error_type[TELEMETRY_TEXT_MAX]; /* errorType, "" if absent */
    char init_type[TELEMETRY_TEXT_MAX];  /* initializationType (init events) */
    char phase[16];                      /* init | invoke (init events) */
    char name[TELEMETRY_TEXT_MAX];       /* platform.extension / telemetrySubscription name */
    char state[TELEMETRY_TEXT_MAX];      /* platform.extension / telemetrySubscription state */
    char function_version[TELEMETRY_TEXT_MAX]; /* initStart functionVersion, start version */
    double duration_ms;
    double billed_duration_ms;
    double memory_size_mb;
    double max_memory_used_mb;
    double init_duration_ms;
    double restore_duration_ms;
    double produced_bytes;
    uint64_t dropped_records;
    uint64_t dropped_bytes;
    unsigned nspans;
    struct telemetry_span spans[TELEMETRY_SPANS_MAX];
};

struct telemetry_batch {
    struct telemetry_event *events; /* known platform events, in body order */
    size_t n;
    size_t nlogs;    /* function / extension records seen (not stored) */
    size_t nignored; /* envelopes of unknown types (platform.end, platform.fault, future types) */
};

/* Parses body[0..len) (need not be NUL-terminated).  See the top comment for what is rejected. */
enum stash_err telemetry_batch_parse(const char *body, size_t len, struct telemetry_batch *out);
void telemetry_batch_release(struct telemetry_batch *b);

/* "platform.report"... for a known type, "unknown" otherwise.  Static string. */
const char *telemetry_type_name(enum telemetry_type type);
/* The first span of that name in ev, or NULL. */
const struct telemetry_span *telemetry_event_span(const struct telemetry_event *ev,
                                                  const char *name);

#endif
