/* telemetry/emf.h: CloudWatch Embedded Metric Format lines from ledger records.
 *
 * Format (CloudWatch's "Specification: Embedded metric format"): one compact JSON object per
 * line, "\n"-terminated:
 *   {"_aws":{"Timestamp":<int ms>,"CloudWatchMetrics":[{"Namespace":"Stash",
 *     "Dimensions":[["FunctionName",<extra dims>]],"Metrics":[{"Name":"CacheHits","Unit":"Count"},
 *     ...]}]},"FunctionName":"...",<extra dims>,"CacheHits":3,...,"FetchLatency":[0.41,12.5],
 *   "requestId":"...","functionVersion":"$LATEST","coldStart":false,...}
 * Metric names and units are fixed: CacheHits CacheMisses CacheStaleServed CacheRefreshes
 * UpstreamCalls SecretsManagerCalls ParameterStoreCalls UpstreamErrors UpstreamThrottles
 * ColdStart (Count);
 * FetchLatency UpstreamLatency (Milliseconds, one value per request, arrays);
 * Duration BilledDuration InitDuration ExtensionOverhead (Milliseconds); MaxMemoryUsed (Megabytes).
 * A Lambda figure that did not arrive is left out (not written as 0).  Everything else (request
 * counts, single-flight waits, runtimeDone spans, status) goes in plain properties, which cost no
 * metric.  RequestId and key names are never dimensions of the main line.
 *
 * Limits kept: <= 100 metrics per directive, <= 100 values per array (a record with more is split
 * over several lines: the first line carries every scalar metric, the next ones only the rest of
 * the arrays, so no count is counted twice), <= 30 dimension keys, integer Timestamp, finite
 * numbers only (a non-finite value is left out), units from the valid list, namespace not
 * starting with "AWS/", dimension values non-blank printable ASCII <= 1024 chars.
 *
 * Per-key lines (per_key on, opt-in: each key makes its own CloudWatch metrics, which cost money):
 * one more line per key with dimensions [["FunctionName",<extra>,"Service","Key"]] and the key's
 * counts.  Key names only, never values.
 *
 * Aggregate mode (STASH_METRICS_MODE=aggregate): records are summed into one struct emf_agg and one
 * line (or a few, when arrays pass 100 values) is written per interval.  Counts are summed;
 * latencies and Lambda figures are kept as value arrays, at most EMF_AGG_VALUES_MAX per metric
 * (a uniform reservoir sample past that, so percentiles stay representative; the number of values
 * left out is reported in a property).  The EMF spec gives a metric target as a number or an array
 * of numbers only; a Values/Counts object is PutMetricData's API, not EMF, so it is not used.
 *
 * Ownership: emf_render_* fill a caller-provided struct emf_lines (zero it first, or reuse one
 * after emf_lines_release()); on error it is left empty.  The writer copies its config.
 * Thread-safety: emf_config_init, emf_render_*, emf_agg_* are pure (an emf_agg belongs to one
 * thread).  emf_writer_* are thread-safe: one mutex guards the aggregate and the counters (never
 * held across I/O); a second one only serialises the writer's own write(2) calls, because a pipe
 * keeps writes atomic only up to PIPE_BUF (4 KiB) and an aggregate line can be longer, so two
 * threads writing at once could otherwise interleave inside a line.  Each line is built in full
 * before it is written.
 */
#ifndef STASH_TELEMETRY_EMF_H
#define STASH_TELEMETRY_EMF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "telemetry/ledger.h"

#define EMF_NAMESPACE_DEFAULT "Stash"
#define EMF_METRICS_MAX       100  /* metric definitions per directive (spec) */
#define EMF_VALUES_MAX        100  /* values per metric array (spec) */
#define EMF_DIMS_MAX          30   /* keys per dimension set (spec) */
#define EMF_EXTRA_DIMS_MAX    8    /* configurable dimensions besides FunctionName */
#define EMF_DIM_NAME_MAX      250  /* schema: DimensionReference maxLength */
#define EMF_DIM_VALUE_MAX     1024 /* spec: dimension value length */
#define EMF_NAMESPACE_MAX     255  /* PutMetricData's limit, stricter than the schema's 1024 */
#define EMF_AGG_VALUES_MAX    500  /* values kept per metric per aggregate interval */
/* The old CloudWatch event limit: a line never passes it. */
#define EMF_LINE_MAX ((size_t)256 * 1024)

enum emf_mode {
    EMF_MODE_INVOCATION = 0, /* one line per invocation (default) */
    EMF_MODE_AGGREGATE,      /* one line per interval */
    EMF_MODE_OFF,            /* nothing written */
};

/* "invocation" | "aggregate" | "off" (case-insensitive); NULL or "" gives the default. */
enum stash_err emf_mode_parse(const char *s, enum emf_mode *out);

struct emf_dim {
    char name[EMF_DIM_NAME_MAX + 1];
    char value[EMF_DIM_VALUE_MAX + 1];
};

struct emf_config {
    char namespace_[EMF_NAMESPACE_MAX + 1];
    char function_name[EMF_DIM_VALUE_MAX + 1];
    char function_version[128];
    size_t ndims;
    struct emf_dim dims[EMF_EXTRA_DIMS_MAX];
    int per_key;
};

/* Validates and copies.  metric_namespace: NULL or "" gives EMF_NAMESPACE_DEFAULT; must be
 * printable ASCII, <= EMF_NAMESPACE_MAX, not starting with "AWS/".  function_name: the FunctionName
 * dimension (NULL or "" gives "unknown").  function_version: property (NULL gives "").
 * dims_spec: NULL/"" or "Name=Value,Name=Value" (STASH_METRICS_DIMENSIONS), names and values
 * non-blank printable ASCII without ',' '=' '"' '\\', names not one we write ourselves.
 * STASH_EINVAL on any violation (cfg is then zeroed), never a silent fix. */
enum stash_err emf_config_init(struct emf_config *cfg, const char *metric_namespace,
                               const char *function_name, const char *function_version,
                               const char *dims_spec, int per_key);
/* The three parts of emf_config_init, each checked as described there, for a caller that checks
 * the configured parts once and sets the function's name later.  On STASH_EINVAL that part of
 * cfg is left empty; set_dims adds to the dimensions already there. */
enum stash_err emf_config_set_namespace(struct emf_config *cfg, const char *metric_namespace);
enum stash_err emf_config_set_function(struct emf_config *cfg, const char *function_name,
                                       const char *function_version);
enum stash_err emf_config_set_dims(struct emf_config *cfg, const char *dims_spec);

struct emf_lines {
    char **line; /* each NUL-terminated and ending in "\n" */
    size_t *len; /* bytes of each line, "\n" included */
    size_t n;
};
void emf_lines_release(struct emf_lines *lines);

/* Lines for one completed record (timestamp: rec->invoke_ms).  An init record with nothing in it
 * gives zero lines.  STASH_ETOOBIG if a line would pass EMF_LINE_MAX (cannot happen with the
 * bounds above; checked anyway). */
enum stash_err emf_render_record(const struct emf_config *cfg, const struct ledger_record *rec,
                                 struct emf_lines *out);

/* Sum of records over an interval. */
struct emf_agg {
    uint64_t invocations; /* records added that were invocations (not init) */
    uint64_t cold_starts;
    uint64_t init_records;
    struct ledger_counts counts;
    uint64_t start_ms, end_ms; /* first and last record timestamps */
    /* Value arrays, each at most EMF_AGG_VALUES_MAX, seen = values offered (sampled past max). */
    struct emf_agg_series {
        double v[EMF_AGG_VALUES_MAX];
        size_t n;
        uint64_t seen;
    } fetch, upstream, duration, billed, init, overhead, memory;
    uint64_t rng; /* reservoir sampling state (deterministic) */
};
void emf_agg_reset(struct emf_agg *a);
void emf_agg_add(struct emf_agg *a, const struct ledger_record *rec);
/* Lines for the interval, timestamp ts_ms; zero lines if nothing was added. */
enum stash_err emf_render_agg(const struct emf_config *cfg, const struct emf_agg *a, uint64_t ts_ms,
                              struct emf_lines *out);

/* Writes each line with one write(2) (a short write, which a pipe does not do below PIPE_BUF, is
 * finished with further writes; EINTR is retried).  STASH_EIO if a write fails. */
enum stash_err emf_write_lines(int fd, const struct emf_lines *lines);

/* The production path: mode + config + fd (stdout). */
struct emf_writer;
struct emf_writer_stats {
    uint64_t records; /* records received */
    uint64_t lines;   /* lines written */
    uint64_t errors;  /* render or write failures (each logged once as a warning) */
};
/* interval_ms: aggregate interval (0 gives 60000).  now_ms: wall clock, start of the interval. */
struct emf_writer *emf_writer_new(const struct emf_config *cfg, enum emf_mode mode, int fd,
                                  uint64_t interval_ms, uint64_t now_ms);
void emf_writer_free(struct emf_writer *w);
/* A ledger_sink_fn: ctx is the struct emf_writer.  Invocation mode writes the record's lines;
 * aggregate mode adds it, then writes the interval if it has run past interval_ms (judged by the
 * record's timestamp); off mode counts it. */
void emf_writer_sink(const struct ledger_record *rec, void *ctx);
/* Aggregate mode: writes the interval if now_ms is past its end (call it at each INVOKE). */
void emf_writer_tick(struct emf_writer *w, uint64_t now_ms);
/* Writes any pending aggregate now (SHUTDOWN, after ledger_flush()). */
void emf_writer_flush(struct emf_writer *w, uint64_t now_ms);
void emf_writer_stats(struct emf_writer *w, struct emf_writer_stats *out);

#endif
