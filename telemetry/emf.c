/* telemetry/emf.c: EMF rendering and the stdout writer (contract in emf.h).
 *
 * A line is described as a list of metrics (scalars and value arrays) plus pre-rendered
 * properties; render_split() cuts the arrays in slices of EMF_VALUES_MAX and puts every scalar on
 * the first line only, so sums over lines equal the record's counts.
 * Numbers are printed with "%.3f" trimmed of trailing zeros (never "%g": no exponent, no nan/inf;
 * the process never calls setlocale, so the decimal point is '.').
 */
#include "telemetry/emf.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"

#define EMF_NUMBER_LIMIT 1e15 /* larger values are nonsense here and would print long */

/* Every root member name we write ourselves: extra dimensions may not take these names. */
static const char *const s_reserved[] = {
    "_aws",
    "FunctionName",
    "Service",
    "Key",
    "CacheHits",
    "CacheMisses",
    "CacheStaleServed",
    "CacheRefreshes",
    "UpstreamCalls",
    "SecretsManagerCalls",
    "ParameterStoreCalls",
    "UpstreamErrors",
    "UpstreamThrottles",
    "FetchLatency",
    "UpstreamLatency",
    "Duration",
    "BilledDuration",
    "InitDuration",
    "ExtensionOverhead",
    "MaxMemoryUsed",
    "ColdStart",
    "requestId",
    "functionVersion",
    "coldStart",
    "phase",
    "tenantId",
    "status",
    "requests",
    "singleFlightWaits",
    "bypass",
    "fetchLatencyDropped",
    "upstreamLatencyDropped",
    "keysDropped",
    "evicted",
    "runtimeDurationMs",
    "responseLatencyMs",
    "responseDurationMs",
    "runtimeOverheadMs",
    "producedBytes",
    "restoreDurationMs",
    "memorySizeMB",
    "emfPart",
    "invocations",
    "initRecords",
    "intervalStartMs",
    "intervalEndMs",
    "valuesSampledOut",
};

enum stash_err emf_mode_parse(const char *s, enum emf_mode *out)
{
    *out = EMF_MODE_INVOCATION;
    if (!s || !*s || strcasecmp(s, "invocation") == 0) {
        return STASH_OK;
    }
    if (strcasecmp(s, "aggregate") == 0) {
        *out = EMF_MODE_AGGREGATE;
        return STASH_OK;
    }
    if (strcasecmp(s, "off") == 0) {
        *out = EMF_MODE_OFF;
        return STASH_OK;
    }
    return STASH_EINVAL;
}

static int namespace_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > EMF_NAMESPACE_MAX || !str_printable(s, n) || strncmp(s, "AWS/", 4) == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr(" ._#:/-", c) != NULL;

        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int reserved(const char *name)
{
    for (size_t i = 0; i < sizeof(s_reserved) / sizeof(s_reserved[0]); i++) {
        if (strcmp(s_reserved[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Copies s[0..n) without leading/trailing spaces into dst (cap bytes); 0 if it does not fit. */
static int copy_trimmed(char *dst, size_t cap, const char *s, size_t n)
{
    while (n > 0 && *s == ' ') {
        s++;
        n--;
    }
    while (n > 0 && s[n - 1] == ' ') {
        n--;
    }
    if (n >= cap) {
        return 0;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 1;
}

static enum stash_err parse_dims(struct emf_config *cfg, const char *spec)
{
    const char *p = spec;

    while (*p) {
        const char *end = strchr(p, ',');
        const char *eq;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        struct emf_dim *d;

        eq = memchr(p, '=', len);
        if (!eq || cfg->ndims >= EMF_EXTRA_DIMS_MAX) {
            return STASH_EINVAL;
        }
        d = &cfg->dims[cfg->ndims];
        if (!copy_trimmed(d->name, sizeof(d->name), p, (size_t)(eq - p)) ||
            !copy_trimmed(d->value, sizeof(d->value), eq + 1, len - (size_t)(eq - p) - 1)) {
            return STASH_EINVAL;
        }
        if (!str_printable(d->name, strlen(d->name)) ||
            !str_printable(d->value, strlen(d->value)) || d->name[0] == ':' ||
            strpbrk(d->name, "=\"\\") || strpbrk(d->value, "=\"\\") || reserved(d->name)) {
            return STASH_EINVAL;
        }
        for (size_t i = 0; i < cfg->ndims; i++) {
            if (strcmp(cfg->dims[i].name, d->name) == 0) {
                return STASH_EINVAL;
            }
        }
        cfg->ndims++;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) {
                return STASH_EINVAL; /* trailing comma: an empty entry */
            }
        }
    }
    return STASH_OK;
}

enum stash_err emf_config_set_namespace(struct emf_config *cfg, const char *metric_namespace)
{
    if (!metric_namespace || !*metric_namespace) {
        metric_namespace = EMF_NAMESPACE_DEFAULT;
    }
    if (!namespace_ok(metric_namespace)) {
        cfg->namespace_[0] = '\0';
        return STASH_EINVAL;
    }
    memcpy(cfg->namespace_, metric_namespace, strlen(metric_namespace) + 1);
    return STASH_OK;
}

enum stash_err emf_config_set_function(struct emf_config *cfg, const char *function_name,
                                       const char *function_version)
{
    if (!function_name || !*function_name) {
        function_name = "unknown";
    }
    if (!function_version) {
        function_version = "";
    }
    if (strlen(function_name) > EMF_DIM_VALUE_MAX ||
        !str_printable(function_name, strlen(function_name)) ||
        strlen(function_version) >= sizeof(cfg->function_version)) {
        cfg->function_name[0] = '\0';
        cfg->function_version[0] = '\0';
        return STASH_EINVAL;
    }
    memcpy(cfg->function_name, function_name, strlen(function_name) + 1);
    memcpy(cfg->function_version, function_version, strlen(function_version) + 1);
    return STASH_OK;
}

enum stash_err emf_config_set_dims(struct emf_config *cfg, const char *dims_spec)
{
    enum stash_err rc = STASH_OK;

    if (dims_spec && *dims_spec) {
        rc = parse_dims(cfg, dims_spec);
    }
    if (rc != STASH_OK) {
        memset(cfg->dims, 0, sizeof(cfg->dims));
        cfg->ndims = 0;
    }
    return rc;
}

enum stash_err emf_config_init(struct emf_config *cfg, const char *metric_namespace,
                               const char *function_name, const char *function_version,
                               const char *dims_spec, int per_key)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->per_key = per_key ? 1 : 0;
    if (emf_config_set_namespace(cfg, metric_namespace) != STASH_OK ||
        emf_config_set_function(cfg, function_name, function_version) != STASH_OK ||
        emf_config_set_dims(cfg, dims_spec) != STASH_OK) {
        memset(cfg, 0, sizeof(*cfg));
        return STASH_EINVAL;
    }
    return STASH_OK;
}

void emf_lines_release(struct emf_lines *lines)
{
    if (!lines) {
        return;
    }
    for (size_t i = 0; i < lines->n; i++) {
        free(lines->line[i]);
    }
    free(lines->line);
    free(lines->len);
    memset(lines, 0, sizeof(*lines));
}

static void lines_push(struct emf_lines *out, char *line, size_t len)
{
    out->line = xrealloc(out->line, (out->n + 1) * sizeof(*out->line));
    out->len = xrealloc(out->len, (out->n + 1) * sizeof(*out->len));
    out->line[out->n] = line;
    out->len[out->n] = len;
    out->n++;
}

/* A JSON number for a finite value: "%.3f" without trailing zeros. */
static void put_number(struct buf *b, double v)
{
    char tmp[64];
    int n;

    if (v > -0.0005 && v < 0.0005) {
        v = 0; /* no "-0" */
    }
    n = snprintf(tmp, sizeof(tmp), "%.3f", v);
    if (n <= 0 || (size_t)n >= sizeof(tmp)) {
        (void)buf_fail(b, STASH_EINVAL);
        return;
    }
    while (n > 1 && tmp[n - 1] == '0') {
        n--;
    }
    if (tmp[n - 1] == '.') {
        n--;
    }
    (void)buf_append(b, tmp, (size_t)n);
}

static int number_ok(double v)
{
    return isfinite(v) && fabs(v) < EMF_NUMBER_LIMIT;
}

/* A JSON string of s, control characters escaped and every byte above 0x7e replaced by '?', so
 * a line is always ASCII (and valid UTF-8) whatever an id or name carried. */
static void put_string(struct buf *b, const char *s)
{
    (void)buf_putc(b, '"');
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p > 0x7e) {
            (void)buf_putc(b, '?');
        } else {
            (void)buf_put_json_escaped(b, p, 1);
        }
    }
    (void)buf_putc(b, '"');
}

enum metric_kind {
    MK_COUNT,  /* uint64 */
    MK_NUMBER, /* double */
    MK_ARRAY,  /* doubles */
};

struct metric {
    const char *name;
    const char *unit;
    enum metric_kind kind;
    uint64_t u;
    double d;
    const double *arr;
    size_t n;
};

struct metric_list {
    struct metric m[24];
    size_t n;
};

static void add_count(struct metric_list *l, const char *name, uint64_t v)
{
    l->m[l->n++] = (struct metric){.name = name, .unit = "Count", .kind = MK_COUNT, .u = v};
}

static void add_number(struct metric_list *l, const char *name, const char *unit, double v)
{
    if (!number_ok(v)) {
        return;
    }
    l->m[l->n++] = (struct metric){.name = name, .unit = unit, .kind = MK_NUMBER, .d = v};
}

static void add_array(struct metric_list *l, const char *name, const char *unit, const double *v,
                      size_t n)
{
    if (n == 0) {
        return;
    }
    l->m[l->n++] = (struct metric){.name = name, .unit = unit, .kind = MK_ARRAY, .arr = v, .n = n};
}

/* The values of m that go on line `part`: scalars on part 0 only, arrays by slices. */
static int on_line(const struct metric *m, size_t part, size_t *from, size_t *count)
{
    if (m->kind != MK_ARRAY) {
        return part == 0;
    }
    *from = part * EMF_VALUES_MAX;
    if (*from >= m->n) {
        return 0;
    }
    *count = m->n - *from < EMF_VALUES_MAX ? m->n - *from : EMF_VALUES_MAX;
    return 1;
}

/* [v, ...] of the values finite enough to print; the others are skipped. */
static void put_values(struct buf *b, const double *v, size_t from, size_t count)
{
    int first = 1;

    (void)buf_putc(b, '[');
    for (size_t i = from; i < from + count; i++) {
        if (!number_ok(v[i])) {
            continue;
        }
        if (!first) {
            (void)buf_putc(b, ',');
        }
        put_number(b, v[i]);
        first = 0;
    }
    if (first) {
        put_number(b, 0); /* an all-non-finite slice cannot happen (ledger filters) */
    }
    (void)buf_putc(b, ']');
}

/* Dimensions beyond FunctionName and the configured ones (per-key lines). */
struct line_dims {
    const char *service; /* NULL: none */
    const char *key;
};

/* {"_aws":{...}}: the metadata that tells CloudWatch which members below are metrics, in which
 * namespace, with which dimensions. */
static void put_directive(struct buf *b, const struct emf_config *cfg, uint64_t ts,
                          const struct metric_list *ml, size_t part, const struct line_dims *ld)
{
    size_t from = 0, count = 0;
    const char *sep = "";

    (void)buf_printf(b, "{\"_aws\":{\"Timestamp\":%llu,\"CloudWatchMetrics\":[{\"Namespace\":",
                     (unsigned long long)ts);
    put_string(b, cfg->namespace_);
    (void)buf_puts(b, ",\"Dimensions\":[[\"FunctionName\"");
    for (size_t i = 0; i < cfg->ndims; i++) {
        (void)buf_putc(b, ',');
        put_string(b, cfg->dims[i].name);
    }
    if (ld && ld->service) {
        (void)buf_puts(b, ",\"Service\",\"Key\"");
    }
    (void)buf_puts(b, "]],\"Metrics\":[");
    for (size_t i = 0; i < ml->n; i++) {
        if (on_line(&ml->m[i], part, &from, &count)) {
            (void)buf_printf(b, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", sep, ml->m[i].name,
                             ml->m[i].unit);
            sep = ",";
        }
    }
    (void)buf_puts(b, "]}]}");
}

/* ,"FunctionName":"...",<extra dimensions>[,"Service":"...","Key":"..."] */
static void put_dimension_values(struct buf *b, const struct emf_config *cfg,
                                 const struct line_dims *ld)
{
    (void)buf_puts(b, ",\"FunctionName\":");
    put_string(b, cfg->function_name);
    for (size_t i = 0; i < cfg->ndims; i++) {
        (void)buf_putc(b, ',');
        put_string(b, cfg->dims[i].name);
        (void)buf_putc(b, ':');
        put_string(b, cfg->dims[i].value);
    }
    if (ld && ld->service) {
        (void)buf_puts(b, ",\"Service\":");
        put_string(b, ld->service);
        (void)buf_puts(b, ",\"Key\":");
        put_string(b, ld->key);
    }
}

/* ,"Metric":value for each metric on this line (its slice of values, for an array). */
static void put_metric_values(struct buf *b, const struct metric_list *ml, size_t part)
{
    size_t from = 0, count = 0;

    for (size_t i = 0; i < ml->n; i++) {
        const struct metric *m = &ml->m[i];

        if (!on_line(m, part, &from, &count)) {
            continue;
        }
        (void)buf_printf(b, ",\"%s\":", m->name);
        if (m->kind == MK_COUNT) {
            (void)buf_printf(b, "%llu", (unsigned long long)m->u);
        } else if (m->kind == MK_NUMBER) {
            put_number(b, m->d);
        } else {
            put_values(b, m->arr, from, count);
        }
    }
}

/* Hands a finished line to out, or drops it if any append failed. */
static enum stash_err lines_take(struct emf_lines *out, struct buf *b)
{
    enum stash_err rc = buf_error(b);
    char *line;
    size_t len;

    if (rc != STASH_OK) {
        buf_release(b);
        return rc;
    }
    line = buf_detach(b, &len);
    lines_push(out, line, len);
    return STASH_OK;
}

/* One line: the directive, the dimension values, the metrics, then the properties. */
static enum stash_err render_line(const struct emf_config *cfg, uint64_t ts,
                                  const struct metric_list *ml, size_t part,
                                  const struct line_dims *ld, const char *props,
                                  struct emf_lines *out)
{
    struct buf b = BUF_INIT(EMF_LINE_MAX);

    put_directive(&b, cfg, ts, ml, part, ld);
    put_dimension_values(&b, cfg, ld);
    put_metric_values(&b, ml, part);
    if (part > 0) {
        (void)buf_printf(&b, ",\"emfPart\":%zu", part + 1);
    }
    if (props) {
        (void)buf_puts(&b, props);
    }
    (void)buf_puts(&b, "}\n");
    return lines_take(out, &b);
}

/* Lines for a metric list: as many as the longest array needs; props_first on the first line,
 * props_rest on the others. */
static enum stash_err render_split(const struct emf_config *cfg, uint64_t ts,
                                   const struct metric_list *ml, const struct line_dims *ld,
                                   const char *props_first, const char *props_rest,
                                   struct emf_lines *out)
{
    size_t longest = 0, parts;
    enum stash_err rc = STASH_OK;

    for (size_t i = 0; i < ml->n; i++) {
        if (ml->m[i].kind == MK_ARRAY && ml->m[i].n > longest) {
            longest = ml->m[i].n;
        }
    }
    parts = longest > EMF_VALUES_MAX ? (longest + EMF_VALUES_MAX - 1) / EMF_VALUES_MAX : 1;
    for (size_t p = 0; p < parts && rc == STASH_OK; p++) {
        rc = render_line(cfg, ts, ml, p, ld, p == 0 ? props_first : props_rest, out);
    }
    return rc;
}

static const char *service_name(enum facts_service s)
{
    return s == FACTS_SVC_SECRETS_MANAGER ? "SecretsManager" : "ParameterStore";
}

static void add_counts(struct metric_list *ml, const struct ledger_counts *c, int per_api)
{
    add_count(ml, "CacheHits", c->hits);
    add_count(ml, "CacheMisses", c->misses);
    add_count(ml, "CacheStaleServed", c->stale);
    add_count(ml, "CacheRefreshes", c->refreshes);
    add_count(ml, "UpstreamCalls", c->upstream_calls);
    if (per_api) {
        add_count(ml, "SecretsManagerCalls", c->sm_calls);
        add_count(ml, "ParameterStoreCalls", c->ssm_calls);
    }
    add_count(ml, "UpstreamErrors", c->upstream_errors);
    add_count(ml, "UpstreamThrottles", c->upstream_throttles);
}

static const char *status_name(enum telemetry_status s)
{
    switch (s) {
    case TELEMETRY_STATUS_SUCCESS:
        return "success";
    case TELEMETRY_STATUS_ERROR:
        return "error";
    case TELEMETRY_STATUS_FAILURE:
        return "failure";
    case TELEMETRY_STATUS_TIMEOUT:
        return "timeout";
    case TELEMETRY_STATUS_OTHER:
        return "other";
    case TELEMETRY_STATUS_NONE:
        break;
    }
    return NULL;
}

/* ,"name":<number> when the bit is set and the value prints. */
static void prop_number(struct buf *b, unsigned has, unsigned bit, const char *name, double v)
{
    if (!(has & bit) || !number_ok(v)) {
        return;
    }
    (void)buf_printf(b, ",\"%s\":", name);
    put_number(b, v);
}

/* Properties shared by every line of a record: the id, version, phase, cold start. */
static void props_common(struct buf *b, const struct emf_config *cfg, const struct ledger_record *r)
{
    (void)buf_puts(b, ""); /* an empty property set is still a string, never NULL */
    if (!r->is_init) {
        (void)buf_puts(b, ",\"requestId\":");
        put_string(b, r->request_id);
    }
    (void)buf_puts(b, ",\"functionVersion\":");
    put_string(b, cfg->function_version);
    (void)buf_printf(b, ",\"phase\":\"%s\",\"coldStart\":%s", r->is_init ? "init" : "invoke",
                     r->cold_start ? "true" : "false");
}

/* ,"name":n for a count that is not zero. */
static void prop_count_nonzero(struct buf *b, const char *name, uint64_t n)
{
    if (n) {
        (void)buf_printf(b, ",\"%s\":%llu", name, (unsigned long long)n);
    }
}

/* Properties of the first line only (things a Logs Insights query may sum). */
static void props_first(struct buf *b, const struct ledger_record *r)
{
    const char *st = status_name(r->status);
    unsigned has = r->has;

    (void)buf_printf(b, ",\"requests\":%llu,\"singleFlightWaits\":%llu,\"bypass\":%llu",
                     (unsigned long long)r->counts.requests, (unsigned long long)r->counts.waits,
                     (unsigned long long)r->counts.bypass);
    prop_count_nonzero(b, "fetchLatencyDropped", r->fetch_dropped);
    prop_count_nonzero(b, "upstreamLatencyDropped", r->upstream_dropped);
    prop_count_nonzero(b, "keysDropped", r->keys_dropped);
    if (r->evicted) {
        (void)buf_puts(b, ",\"evicted\":true");
    }
    if (st) {
        (void)buf_printf(b, ",\"status\":\"%s\"", st);
    }
    if (r->tenant_id[0]) {
        (void)buf_puts(b, ",\"tenantId\":");
        put_string(b, r->tenant_id);
    }
    prop_number(b, has, LEDGER_HAS_RUNTIME_DURATION, "runtimeDurationMs", r->runtime_duration_ms);
    prop_number(b, has, LEDGER_HAS_RESPONSE_LATENCY, "responseLatencyMs", r->response_latency_ms);
    prop_number(b, has, LEDGER_HAS_RESPONSE_DURATION, "responseDurationMs",
                r->response_duration_ms);
    prop_number(b, has, LEDGER_HAS_RUNTIME_OVERHEAD, "runtimeOverheadMs", r->runtime_overhead_ms);
    prop_number(b, has, LEDGER_HAS_PRODUCED_BYTES, "producedBytes", r->produced_bytes);
    prop_number(b, has, LEDGER_HAS_RESTORE_DURATION, "restoreDurationMs", r->restore_duration_ms);
    prop_number(b, has, LEDGER_HAS_MEMORY_SIZE, "memorySizeMB", r->memory_size_mb);
}

static int record_empty_init(const struct ledger_record *r)
{
    return r->is_init && r->counts.requests == 0 && r->counts.upstream_calls == 0;
}

/* The metrics of a record's main line, in the order they are written. */
static void record_metrics(struct metric_list *ml, const struct ledger_record *rec)
{
    add_counts(ml, &rec->counts, 1);
    if (!rec->is_init) {
        add_count(ml, "ColdStart", rec->cold_start ? 1 : 0);
    }
    add_array(ml, "FetchLatency", "Milliseconds", rec->fetch_ms, rec->nfetch);
    add_array(ml, "UpstreamLatency", "Milliseconds", rec->upstream_ms, rec->nupstream);
    if (rec->has & LEDGER_HAS_DURATION) {
        add_number(ml, "Duration", "Milliseconds", rec->duration_ms);
    }
    if (rec->has & LEDGER_HAS_BILLED) {
        add_number(ml, "BilledDuration", "Milliseconds", rec->billed_duration_ms);
    }
    if (rec->has & LEDGER_HAS_INIT_DURATION) {
        add_number(ml, "InitDuration", "Milliseconds", rec->init_duration_ms);
    }
    if (rec->has & LEDGER_HAS_EXT_OVERHEAD) {
        add_number(ml, "ExtensionOverhead", "Milliseconds", rec->extension_overhead_ms);
    }
    if (rec->has & LEDGER_HAS_MAX_MEMORY) {
        add_number(ml, "MaxMemoryUsed", "Megabytes", rec->max_memory_used_mb);
    }
}

/* One line per key with its counts (per_key on); props: the record's common properties. */
static enum stash_err render_keys(const struct emf_config *cfg, const struct ledger_record *rec,
                                  const char *props, struct emf_lines *out)
{
    enum stash_err rc = STASH_OK;

    for (size_t k = 0; k < rec->nkeys && rc == STASH_OK; k++) {
        const struct ledger_key *key = &rec->keys[k];
        struct metric_list kl = {.n = 0};
        struct line_dims ld = {service_name(key->service), key->name};
        size_t n = strnlen(key->name, sizeof(key->name));

        if (key->service == FACTS_SVC_NONE || n == 0 || n > EMF_DIM_VALUE_MAX ||
            !str_printable(key->name, n)) {
            continue; /* the ledger keeps only good names; checked again at the boundary */
        }
        add_counts(&kl, &key->counts, 0);
        rc = render_line(cfg, rec->invoke_ms, &kl, 0, &ld, props, out);
    }
    return rc;
}

enum stash_err emf_render_record(const struct emf_config *cfg, const struct ledger_record *rec,
                                 struct emf_lines *out)
{
    struct metric_list ml = {.n = 0};
    struct buf common = BUF_INIT(EMF_LINE_MAX);
    struct buf first = BUF_INIT(EMF_LINE_MAX);
    enum stash_err rc;

    memset(out, 0, sizeof(*out));
    if (record_empty_init(rec)) {
        return STASH_OK;
    }
    record_metrics(&ml, rec);
    props_common(&common, cfg, rec);
    (void)buf_puts(&first, common.data ? common.data : "");
    props_first(&first, rec);
    rc = buf_error(&common) != STASH_OK ? buf_error(&common) : buf_error(&first);
    if (rc == STASH_OK) {
        rc = render_split(cfg, rec->invoke_ms, &ml, NULL, first.data, common.data, out);
    }
    if (rc == STASH_OK && cfg->per_key) {
        rc = render_keys(cfg, rec, common.data, out);
    }
    buf_release(&common);
    buf_release(&first);
    if (rc != STASH_OK) {
        emf_lines_release(out);
    }
    return rc;
}

/* ---- aggregate ---- */

void emf_agg_reset(struct emf_agg *a)
{
    memset(a, 0, sizeof(*a));
    a->rng = 0x9e3779b97f4a7c15ULL;
}

/* Algorithm R: keeps a uniform sample of at most EMF_AGG_VALUES_MAX values. */
static void series_add(struct emf_agg *a, struct emf_agg_series *s, double v)
{
    if (!number_ok(v) || v < 0) {
        return;
    }
    s->seen++;
    if (s->n < EMF_AGG_VALUES_MAX) {
        s->v[s->n++] = v;
        return;
    }
    {
        uint64_t j = xorshift64(&a->rng) % s->seen; /* deterministic */

        if (j < EMF_AGG_VALUES_MAX) {
            s->v[j] = v;
        }
    }
}

static void counts_add(struct ledger_counts *dst, const struct ledger_counts *src)
{
    dst->requests += src->requests;
    dst->hits += src->hits;
    dst->misses += src->misses;
    dst->stale += src->stale;
    dst->waits += src->waits;
    dst->bypass += src->bypass;
    dst->refreshes += src->refreshes;
    dst->upstream_calls += src->upstream_calls;
    dst->sm_calls += src->sm_calls;
    dst->ssm_calls += src->ssm_calls;
    dst->upstream_errors += src->upstream_errors;
    dst->upstream_throttles += src->upstream_throttles;
}

void emf_agg_add(struct emf_agg *a, const struct ledger_record *r)
{
    if (record_empty_init(r)) {
        return;
    }
    if (a->invocations == 0 && a->init_records == 0) {
        a->start_ms = r->invoke_ms;
    }
    if (r->invoke_ms < a->start_ms) {
        a->start_ms = r->invoke_ms;
    }
    if (r->invoke_ms > a->end_ms) {
        a->end_ms = r->invoke_ms;
    }
    if (r->is_init) {
        a->init_records++;
    } else {
        a->invocations++;
    }
    a->cold_starts += r->cold_start ? 1 : 0;
    counts_add(&a->counts, &r->counts);
    for (size_t i = 0; i < r->nfetch; i++) {
        series_add(a, &a->fetch, r->fetch_ms[i]);
    }
    for (size_t i = 0; i < r->nupstream; i++) {
        series_add(a, &a->upstream, r->upstream_ms[i]);
    }
    if (r->has & LEDGER_HAS_DURATION) {
        series_add(a, &a->duration, r->duration_ms);
    }
    if (r->has & LEDGER_HAS_BILLED) {
        series_add(a, &a->billed, r->billed_duration_ms);
    }
    if (r->has & LEDGER_HAS_INIT_DURATION) {
        series_add(a, &a->init, r->init_duration_ms);
    }
    if (r->has & LEDGER_HAS_EXT_OVERHEAD) {
        series_add(a, &a->overhead, r->extension_overhead_ms);
    }
    if (r->has & LEDGER_HAS_MAX_MEMORY) {
        series_add(a, &a->memory, r->max_memory_used_mb);
    }
}

static uint64_t series_left_out(const struct emf_agg_series *s)
{
    return s->seen - s->n;
}

enum stash_err emf_render_agg(const struct emf_config *cfg, const struct emf_agg *a, uint64_t ts_ms,
                              struct emf_lines *out)
{
    struct metric_list ml = {.n = 0};
    struct buf common = BUF_INIT(EMF_LINE_MAX);
    struct buf first = BUF_INIT(EMF_LINE_MAX);
    enum stash_err rc;
    uint64_t left_out = series_left_out(&a->fetch) + series_left_out(&a->upstream) +
                        series_left_out(&a->duration) + series_left_out(&a->billed) +
                        series_left_out(&a->init) + series_left_out(&a->overhead) +
                        series_left_out(&a->memory);

    memset(out, 0, sizeof(*out));
    if (a->invocations == 0 && a->init_records == 0) {
        return STASH_OK;
    }
    add_counts(&ml, &a->counts, 1);
    add_count(&ml, "ColdStart", a->cold_starts);
    add_array(&ml, "FetchLatency", "Milliseconds", a->fetch.v, a->fetch.n);
    add_array(&ml, "UpstreamLatency", "Milliseconds", a->upstream.v, a->upstream.n);
    add_array(&ml, "Duration", "Milliseconds", a->duration.v, a->duration.n);
    add_array(&ml, "BilledDuration", "Milliseconds", a->billed.v, a->billed.n);
    add_array(&ml, "InitDuration", "Milliseconds", a->init.v, a->init.n);
    add_array(&ml, "ExtensionOverhead", "Milliseconds", a->overhead.v, a->overhead.n);
    add_array(&ml, "MaxMemoryUsed", "Megabytes", a->memory.v, a->memory.n);
    (void)buf_puts(&common, ",\"functionVersion\":");
    put_string(&common, cfg->function_version);
    (void)buf_printf(&common,
                     ",\"phase\":\"aggregate\",\"intervalStartMs\":%llu,\"intervalEndMs\":%llu",
                     (unsigned long long)a->start_ms, (unsigned long long)a->end_ms);
    (void)buf_puts(&first, common.data ? common.data : "");
    (void)buf_printf(&first,
                     ",\"invocations\":%llu,\"initRecords\":%llu,\"requests\":%llu,"
                     "\"singleFlightWaits\":%llu,\"bypass\":%llu,\"valuesSampledOut\":%llu",
                     (unsigned long long)a->invocations, (unsigned long long)a->init_records,
                     (unsigned long long)a->counts.requests, (unsigned long long)a->counts.waits,
                     (unsigned long long)a->counts.bypass, (unsigned long long)left_out);
    rc = buf_error(&common) != STASH_OK ? buf_error(&common) : buf_error(&first);
    if (rc == STASH_OK) {
        rc = render_split(cfg, ts_ms, &ml, NULL, first.data, common.data, out);
    }
    buf_release(&common);
    buf_release(&first);
    if (rc != STASH_OK) {
        emf_lines_release(out);
    }
    return rc;
}

/* ---- writing ---- */

enum stash_err emf_write_lines(int fd, const struct emf_lines *lines)
{
    for (size_t i = 0; i < lines->n; i++) {
        const char *p = lines->line[i];
        size_t left = lines->len[i];

        while (left > 0) {
            ssize_t w = write(fd, p, left);

            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                return STASH_EIO;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    return STASH_OK;
}

struct emf_writer {
    pthread_mutex_t mu;  /* aggregate, interval, stats */
    pthread_mutex_t wmu; /* our own write(2) calls, one record's lines at a time */
    struct emf_config cfg;
    enum emf_mode mode;
    int fd;
    uint64_t interval_ms;
    uint64_t interval_start;
    struct emf_agg agg;
    struct emf_writer_stats stats;
    int warned;
};

struct emf_writer *emf_writer_new(const struct emf_config *cfg, enum emf_mode mode, int fd,
                                  uint64_t interval_ms, uint64_t now_ms)
{
    struct emf_writer *w = xcalloc(1, sizeof(*w));

    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->wmu, NULL);
    w->cfg = *cfg;
    w->mode = mode;
    w->fd = fd;
    w->interval_ms = interval_ms ? interval_ms : 60000;
    w->interval_start = now_ms;
    emf_agg_reset(&w->agg);
    return w;
}

void emf_writer_free(struct emf_writer *w)
{
    if (!w) {
        return;
    }
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->wmu);
    free(w);
}

/* Writes lines outside the writer's lock and counts the outcome. */
static void write_and_count(struct emf_writer *w, struct emf_lines *lines, enum stash_err rc)
{
    int warn = 0;

    if (rc == STASH_OK && lines->n > 0) {
        pthread_mutex_lock(&w->wmu);
        rc = emf_write_lines(w->fd, lines);
        pthread_mutex_unlock(&w->wmu);
    }
    pthread_mutex_lock(&w->mu);
    if (rc == STASH_OK) {
        w->stats.lines += lines->n;
    } else {
        w->stats.errors++;
        warn = !w->warned;
        w->warned = 1;
    }
    pthread_mutex_unlock(&w->mu);
    if (warn) {
        LOG_WARN("emf", "metrics line not written: %s (further failures counted silently)",
                 stash_strerror(rc));
    }
    emf_lines_release(lines);
}

/* Under the lock: if the interval has run out at now_ms, renders it and starts the next. */
static enum stash_err take_interval(struct emf_writer *w, uint64_t now_ms, int force,
                                    struct emf_lines *lines)
{
    enum stash_err rc = STASH_OK;

    memset(lines, 0, sizeof(*lines));
    if (!force && now_ms < w->interval_start + w->interval_ms) {
        return STASH_OK;
    }
    rc = emf_render_agg(&w->cfg, &w->agg, now_ms, lines);
    emf_agg_reset(&w->agg);
    w->interval_start = now_ms;
    return rc;
}

void emf_writer_sink(const struct ledger_record *rec, void *ctx)
{
    struct emf_writer *w = ctx;
    struct emf_lines lines = {0};
    enum stash_err rc = STASH_OK;

    pthread_mutex_lock(&w->mu);
    w->stats.records++;
    if (w->mode == EMF_MODE_AGGREGATE) {
        emf_agg_add(&w->agg, rec);
        rc = take_interval(w, rec->invoke_ms, 0, &lines);
    }
    pthread_mutex_unlock(&w->mu);
    if (w->mode == EMF_MODE_INVOCATION) {
        rc = emf_render_record(&w->cfg, rec, &lines);
    }
    if (w->mode != EMF_MODE_OFF) {
        write_and_count(w, &lines, rc);
    }
}

void emf_writer_tick(struct emf_writer *w, uint64_t now_ms)
{
    struct emf_lines lines = {0};
    enum stash_err rc = STASH_OK;

    if (w->mode != EMF_MODE_AGGREGATE) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    rc = take_interval(w, now_ms, 0, &lines);
    pthread_mutex_unlock(&w->mu);
    write_and_count(w, &lines, rc);
}

void emf_writer_flush(struct emf_writer *w, uint64_t now_ms)
{
    struct emf_lines lines = {0};
    enum stash_err rc = STASH_OK;

    if (w->mode != EMF_MODE_AGGREGATE) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    rc = take_interval(w, now_ms, 1, &lines);
    pthread_mutex_unlock(&w->mu);
    write_and_count(w, &lines, rc);
}

void emf_writer_stats(struct emf_writer *w, struct emf_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}
