/* telemetry/events.c: Telemetry API batch parser (contract in events.h).
 *
 * One pass over the cJSON tree: each element is checked and, if it is a known platform event,
 * stored in an array that grows as they come (a batch of log lines allocates nothing).  The first
 * malformed element frees what was stored, so a batch is wholly accepted or leaves nothing behind.
 */
#include "telemetry/events.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "common/str.h"

struct type_name {
    const char *name;
    enum telemetry_type type;
};

static const struct type_name s_types[] = {
    {"platform.initStart", TELEMETRY_INIT_START},
    {"platform.initRuntimeDone", TELEMETRY_INIT_RUNTIME_DONE},
    {"platform.initReport", TELEMETRY_INIT_REPORT},
    {"platform.start", TELEMETRY_START},
    {"platform.runtimeDone", TELEMETRY_RUNTIME_DONE},
    {"platform.report", TELEMETRY_REPORT},
    {"platform.extension", TELEMETRY_EXTENSION},
    {"platform.telemetrySubscription", TELEMETRY_SUBSCRIPTION},
    {"platform.logsDropped", TELEMETRY_LOGS_DROPPED},
    {"platform.restoreStart", TELEMETRY_RESTORE_START},
    {"platform.restoreRuntimeDone", TELEMETRY_RESTORE_RUNTIME_DONE},
    {"platform.restoreReport", TELEMETRY_RESTORE_REPORT},
};

const char *telemetry_type_name(enum telemetry_type type)
{
    for (size_t i = 0; i < sizeof(s_types) / sizeof(s_types[0]); i++) {
        if (s_types[i].type == type) {
            return s_types[i].name;
        }
    }
    return "unknown";
}

static enum telemetry_type type_from_name(const char *s)
{
    for (size_t i = 0; i < sizeof(s_types) / sizeof(s_types[0]); i++) {
        if (strcmp(s_types[i].name, s) == 0) {
            return s_types[i].type;
        }
    }
    return TELEMETRY_UNKNOWN;
}

const struct telemetry_span *telemetry_event_span(const struct telemetry_event *ev,
                                                  const char *name)
{
    for (unsigned i = 0; i < ev->nspans; i++) {
        if (strcmp(ev->spans[i].name, name) == 0) {
            return &ev->spans[i];
        }
    }
    return NULL;
}

/* Optional string field: absent is fine, present must be a string (copied, truncated). */
static enum stash_err opt_text(const cJSON *obj, const char *key, char *dst, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!it) {
        return STASH_OK;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        return STASH_EPARSE;
    }
    str_copy_trunc(dst, cap, it->valuestring);
    return STASH_OK;
}

/* An identifier is copied exactly or refused: a truncated id would attribute to the wrong record.
 */
static enum stash_err id_field(const cJSON *obj, const char *key, char *dst, int required)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t n;

    if (!it) {
        return required ? STASH_EPARSE : STASH_OK;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        return STASH_EPARSE;
    }
    n = strlen(it->valuestring);
    if (n == 0 || n >= TELEMETRY_ID_MAX) {
        return STASH_EPARSE;
    }
    memcpy(dst, it->valuestring, n + 1);
    return STASH_OK;
}

/* Optional non-negative finite number; sets bit in *has when present. */
static enum stash_err opt_number(const cJSON *obj, const char *key, double *dst, unsigned *has,
                                 unsigned bit)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!it) {
        return STASH_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0) {
        return STASH_EPARSE;
    }
    *dst = it->valuedouble;
    *has |= bit;
    return STASH_OK;
}

static enum stash_err parse_status(const cJSON *rec, struct telemetry_event *ev)
{
    static const struct {
        const char *s;
        enum telemetry_status st;
    } names[] = {
        {"success", TELEMETRY_STATUS_SUCCESS},
        {"error", TELEMETRY_STATUS_ERROR},
        {"failure", TELEMETRY_STATUS_FAILURE},
        {"timeout", TELEMETRY_STATUS_TIMEOUT},
    };
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(rec, "status");

    ev->status = TELEMETRY_STATUS_NONE;
    if (!it) {
        return STASH_OK;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        return STASH_EPARSE;
    }
    ev->status = TELEMETRY_STATUS_OTHER;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(names[i].s, it->valuestring) == 0) {
            ev->status = names[i].st;
        }
    }
    return STASH_OK;
}

static enum stash_err parse_metrics(const cJSON *rec, struct telemetry_event *ev)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "metrics");
    enum stash_err rc;

    if (!m) {
        return STASH_OK;
    }
    if (!cJSON_IsObject(m)) {
        return STASH_EPARSE;
    }
    rc = opt_number(m, "durationMs", &ev->duration_ms, &ev->has, TELEMETRY_HAS_DURATION);
    if (rc == STASH_OK) {
        rc = opt_number(m, "billedDurationMs", &ev->billed_duration_ms, &ev->has,
                        TELEMETRY_HAS_BILLED);
    }
    if (rc == STASH_OK) {
        rc =
            opt_number(m, "memorySizeMB", &ev->memory_size_mb, &ev->has, TELEMETRY_HAS_MEMORY_SIZE);
    }
    if (rc == STASH_OK) {
        rc = opt_number(m, "maxMemoryUsedMB", &ev->max_memory_used_mb, &ev->has,
                        TELEMETRY_HAS_MAX_MEMORY);
    }
    if (rc == STASH_OK) {
        rc = opt_number(m, "initDurationMs", &ev->init_duration_ms, &ev->has,
                        TELEMETRY_HAS_INIT_DURATION);
    }
    if (rc == STASH_OK) {
        rc = opt_number(m, "restoreDurationMs", &ev->restore_duration_ms, &ev->has,
                        TELEMETRY_HAS_RESTORE_DURATION);
    }
    if (rc == STASH_OK) {
        rc = opt_number(m, "producedBytes", &ev->produced_bytes, &ev->has,
                        TELEMETRY_HAS_PRODUCED_BYTES);
    }
    return rc;
}

/* Spans are informative: a malformed element is skipped, but spans that is not an array is a
 * malformed record. */
static enum stash_err parse_spans(const cJSON *rec, struct telemetry_event *ev)
{
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(rec, "spans");
    const cJSON *sp;

    ev->nspans = 0;
    if (!spans) {
        return STASH_OK;
    }
    if (!cJSON_IsArray(spans)) {
        return STASH_EPARSE;
    }
    cJSON_ArrayForEach(sp, spans)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "name");
        const cJSON *dur = cJSON_GetObjectItemCaseSensitive(sp, "durationMs");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(sp, "start");
        struct telemetry_span *out;

        if (ev->nspans >= TELEMETRY_SPANS_MAX) {
            break;
        }
        if (!cJSON_IsObject(sp) || !cJSON_IsString(name) || !name->valuestring ||
            !cJSON_IsNumber(dur) || !isfinite(dur->valuedouble) || dur->valuedouble < 0) {
            continue;
        }
        out = &ev->spans[ev->nspans++];
        str_copy_trunc(out->name, sizeof(out->name), name->valuestring);
        out->duration_ms = dur->valuedouble;
        out->start_ms = 0;
        if (cJSON_IsString(start) && start->valuestring) {
            uint64_t ms;

            if (clock_parse_iso(start->valuestring, &ms) == STASH_OK) {
                out->start_ms = ms;
            }
        }
    }
    return STASH_OK;
}

static enum stash_err opt_count(const cJSON *obj, const char *key, uint64_t *dst, unsigned *has)
{
    double v = 0;
    unsigned got = 0;
    enum stash_err rc = opt_number(obj, key, &v, &got, 1);

    if (rc != STASH_OK) {
        return rc;
    }
    if (got) {
        if (v > 1e18) {
            return STASH_EPARSE;
        }
        *dst = (uint64_t)v;
        *has |= TELEMETRY_HAS_DROPPED;
    }
    return STASH_OK;
}

/* Fills ev from a known platform event's record.  ev->type and time_ms are already set. */
static enum stash_err parse_record(const cJSON *rec, struct telemetry_event *ev)
{
    enum stash_err rc;
    int needs_id = ev->type == TELEMETRY_START || ev->type == TELEMETRY_RUNTIME_DONE ||
                   ev->type == TELEMETRY_REPORT;

    if (!cJSON_IsObject(rec)) {
        return STASH_EPARSE;
    }
    rc = id_field(rec, "requestId", ev->request_id, needs_id);
    if (rc != STASH_OK) {
        return rc;
    }
    rc = opt_text(rec, "tenantId", ev->tenant_id, sizeof(ev->tenant_id));
    if (rc == STASH_OK) {
        rc = parse_status(rec, ev);
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, "errorType", ev->error_type, sizeof(ev->error_type));
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, "initializationType", ev->init_type, sizeof(ev->init_type));
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, "phase", ev->phase, sizeof(ev->phase));
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, "name", ev->name, sizeof(ev->name));
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, "state", ev->state, sizeof(ev->state));
    }
    if (rc == STASH_OK) {
        rc = opt_text(rec, ev->type == TELEMETRY_START ? "version" : "functionVersion",
                      ev->function_version, sizeof(ev->function_version));
    }
    if (rc == STASH_OK) {
        rc = parse_metrics(rec, ev);
    }
    if (rc == STASH_OK) {
        rc = parse_spans(rec, ev);
    }
    if (rc == STASH_OK && ev->type == TELEMETRY_LOGS_DROPPED) {
        rc = opt_count(rec, "droppedRecords", &ev->dropped_records, &ev->has);
        if (rc == STASH_OK) {
            rc = opt_count(rec, "droppedBytes", &ev->dropped_bytes, &ev->has);
        }
    }
    return rc;
}

/* Envelope check: type and time.  *type is TELEMETRY_UNKNOWN for log
 * records and unknown types; *is_log tells the two apart. */
static enum stash_err parse_envelope(const cJSON *el, enum telemetry_type *type, int *is_log,
                                     uint64_t *time_ms)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(el, "type");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(el, "time");

    *type = TELEMETRY_UNKNOWN;
    *is_log = 0;
    *time_ms = 0;
    if (!cJSON_IsObject(el) || !cJSON_IsString(t) || !t->valuestring || !cJSON_IsString(tm) ||
        !tm->valuestring) {
        return STASH_EPARSE;
    }
    /* A time in another ISO flavour must not cost the whole batch (and its reports): only the
     * timestamp of a record opened by this event is lost. */
    if (clock_parse_iso(tm->valuestring, time_ms) != STASH_OK) {
        *time_ms = 0;
    }
    if (strcmp(t->valuestring, "function") == 0 || strcmp(t->valuestring, "extension") == 0) {
        *is_log = 1;
        return STASH_OK;
    }
    *type = type_from_name(t->valuestring);
    return STASH_OK;
}

/* The next free slot of b's events, zeroed; the array doubles when full. */
static struct telemetry_event *batch_slot(struct telemetry_batch *b, size_t *cap)
{
    if (b->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        b->events = xrealloc(b->events, *cap * sizeof(*b->events));
    }
    memset(&b->events[b->n], 0, sizeof(b->events[0]));
    return &b->events[b->n];
}

/* One element of the array: stored as an event, or counted as a log record or an unknown type. */
static enum stash_err parse_element(const cJSON *el, struct telemetry_batch *b, size_t *cap)
{
    enum telemetry_type type;
    int is_log;
    uint64_t time_ms;
    struct telemetry_event *ev;
    enum stash_err rc = parse_envelope(el, &type, &is_log, &time_ms);

    if (rc != STASH_OK) {
        return rc;
    }
    if (is_log) {
        b->nlogs++;
        return STASH_OK;
    }
    if (type == TELEMETRY_UNKNOWN) {
        b->nignored++;
        return STASH_OK;
    }
    ev = batch_slot(b, cap);
    ev->type = type;
    ev->time_ms = time_ms;
    rc = parse_record(cJSON_GetObjectItemCaseSensitive(el, "record"), ev);
    if (rc == STASH_OK) {
        b->n++;
    }
    return rc;
}

/* The body as a JSON array with nothing but whitespace after it, or NULL. */
static cJSON *parse_array(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);

    if (!root) {
        return NULL;
    }
    while (end && (size_t)(end - body) < len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (!end || (size_t)(end - body) != len || !cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

enum stash_err telemetry_batch_parse(const char *body, size_t len, struct telemetry_batch *out)
{
    enum stash_err rc = STASH_OK;
    cJSON *root;
    const cJSON *el;
    size_t nel = 0, cap = 0;

    memset(out, 0, sizeof(*out));
    if (!body) {
        return STASH_EINVAL;
    }
    if (len > TELEMETRY_BODY_MAX) {
        return STASH_ETOOBIG;
    }
    root = parse_array(body, len);
    if (!root) {
        return STASH_EPARSE;
    }
    cJSON_ArrayForEach(el, root)
    {
        if (++nel > TELEMETRY_EVENTS_MAX) {
            rc = STASH_ETOOBIG;
            break;
        }
        rc = parse_element(el, out, &cap);
        if (rc != STASH_OK) {
            break;
        }
    }
    cJSON_Delete(root);
    if (rc != STASH_OK) {
        telemetry_batch_release(out);
    }
    return rc;
}

void telemetry_batch_release(struct telemetry_batch *b)
{
    if (!b) {
        return;
    }
    free(b->events);
    memset(b, 0, sizeof(*b));
}
