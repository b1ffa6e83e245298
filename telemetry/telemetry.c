/* telemetry/telemetry.c: the ledger, the listener and the EMF writer wired together (contract in
 * telemetry.h). */
#include "telemetry/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "telemetry/emf.h"
#include "telemetry/events.h"
#include "telemetry/ledger.h"
#include "telemetry/listener.h"

#define MOD "telemetry"

/* Re-check the reports owed at least this often while waiting at SHUTDOWN, in case a batch landed
 * just before the count of batches was read. */
#define SHUTDOWN_POLL_MS 50

struct telemetry_settings {
    enum emf_mode mode;
    struct emf_config emf; /* namespace, dimensions, per_key; the function is set at start */
    uint64_t interval_ms;
};

struct telemetry {
    struct telemetry_settings set;
    int fd;
    char *function_name;    /* AWS_LAMBDA_FUNCTION_NAME, or NULL */
    char *function_version; /* AWS_LAMBDA_FUNCTION_VERSION, or NULL */
    struct ledger *ledger;
    /* Set once by telemetry_start() before the listener or the first INVOKE: no record can
     * complete before that (the init record closes at the first INVOKE), and the ledger's mutex
     * orders this store before every sink call. */
    struct emf_writer *writer;
    struct listener *listener;
};

enum stash_err telemetry_settings_new(const struct telemetry_config *cfg,
                                      struct telemetry_settings **out, char *err, size_t errlen)
{
    struct telemetry_settings s;
    const char *ns =
        cfg->namespace_ && cfg->namespace_[0] ? cfg->namespace_ : TELEMETRY_NAMESPACE_DEFAULT;

    *out = NULL;
    memset(&s, 0, sizeof(s));
    if (emf_mode_parse(cfg->mode, &s.mode) != STASH_OK) {
        (void)snprintf(err, errlen,
                       "STASH_METRICS_MODE=\"%.64s\" is not valid; valid: invocation, aggregate, "
                       "off",
                       cfg->mode);
        return STASH_EINVAL;
    }
    if (emf_config_set_namespace(&s.emf, ns) != STASH_OK) {
        (void)snprintf(err, errlen,
                       "STASH_METRICS_NAMESPACE=\"%.64s\" is not a valid namespace; valid: "
                       "printable ASCII, at most %d characters, not starting with AWS/",
                       ns, EMF_NAMESPACE_MAX);
        return STASH_EINVAL;
    }
    if (emf_config_set_dims(&s.emf, cfg->dimensions) != STASH_OK) {
        (void)snprintf(err, errlen,
                       "STASH_METRICS_DIMENSIONS=\"%.64s\" is not valid; valid: up to %d "
                       "Name=Value pairs separated by commas (printable ASCII, no quotes or "
                       "backslashes, not FunctionName or other names stash writes)",
                       cfg->dimensions, EMF_EXTRA_DIMS_MAX);
        return STASH_EINVAL;
    }
    s.emf.per_key = cfg->per_key ? 1 : 0;
    s.interval_ms = cfg->interval_ms;
    *out = xmemdup(&s, sizeof(s));
    return STASH_OK;
}

void telemetry_settings_free(struct telemetry_settings *s)
{
    free(s);
}

static char *s_dup_or_null(const char *s)
{
    return s && s[0] ? xstrdup(s) : NULL;
}

static void s_sink(const struct ledger_record *rec, void *ctx)
{
    struct telemetry *t = ctx;

    if (t->writer) {
        emf_writer_sink(rec, t->writer);
    }
}

struct telemetry *telemetry_new(const struct telemetry_settings *settings, int fd,
                                const char *function_name, const char *function_version)
{
    struct telemetry *t;
    struct ledger_config lc;

    if (!settings || settings->mode == EMF_MODE_OFF) {
        return NULL;
    }
    t = xcalloc(1, sizeof(*t));
    t->set = *settings;
    t->fd = fd;
    t->function_name = s_dup_or_null(function_name);
    t->function_version = s_dup_or_null(function_version);
    memset(&lc, 0, sizeof(lc));
    lc.per_key = settings->emf.per_key;
    lc.sink = s_sink;
    lc.sink_ctx = t;
    t->ledger = ledger_new(&lc, clock_real_ms());
    return t;
}

void telemetry_free(struct telemetry *t)
{
    if (!t) {
        return;
    }
    listener_stop(t->listener); /* no batch may reach the ledger once it is gone */
    ledger_free(t->ledger);
    emf_writer_free(t->writer);
    free(t->function_name);
    free(t->function_version);
    free(t);
}

void telemetry_on_facts(void *ctx, const struct facts *f)
{
    struct telemetry *t = ctx;

    if (t) {
        ledger_on_facts(t->ledger, f);
    }
}

void telemetry_init_work_begin(struct telemetry *t)
{
    if (t) {
        ledger_init_work_begin(t->ledger);
    }
}

void telemetry_init_work_end(struct telemetry *t)
{
    if (t) {
        ledger_init_work_end(t->ledger);
    }
}

void telemetry_start(struct telemetry *t, const char *function_name, const char *function_version,
                     int invokes)
{
    struct emf_config ec;

    if (!t || t->writer) {
        return;
    }
    if (!function_name || !function_name[0]) {
        function_name = t->function_name;
    }
    if (!function_version || !function_version[0]) {
        function_version = t->function_version;
    }
    ec = t->set.emf;
    if (emf_config_set_function(&ec, function_name, function_version) != STASH_OK) {
        (void)emf_config_set_function(&ec, NULL, NULL); /* "unknown" cannot fail */
    }
    t->writer = emf_writer_new(&ec, t->set.mode, t->fd, t->set.interval_ms, clock_real_ms());
    if (!invokes) {
        ledger_invokes_off(t->ledger);
    }
}

/* The listener's on_batch: parse, then hand to the ledger. */
static enum stash_err s_on_batch(void *ctx, const char *body, size_t len)
{
    struct telemetry *t = ctx;
    struct telemetry_batch b;
    enum stash_err rc;

    rc = telemetry_batch_parse(body, len, &b);
    if (rc == STASH_OK) {
        ledger_on_batch(t->ledger, &b);
    }
    telemetry_batch_release(&b);
    return rc;
}

enum stash_err telemetry_listen(struct telemetry *t, const struct sockaddr *addr, socklen_t addrlen,
                                uint16_t *port)
{
    struct listener_opts lo;
    enum stash_err rc;

    *port = 0;
    if (!t) {
        return STASH_ESTATE;
    }
    memset(&lo, 0, sizeof(lo));
    lo.addr = addr;
    lo.addrlen = addrlen;
    lo.on_batch = s_on_batch;
    lo.ctx = t;
    rc = listener_start(&lo, &t->listener);
    if (rc == STASH_OK) {
        *port = listener_port(t->listener);
    }
    return rc;
}

void telemetry_unavailable(struct telemetry *t)
{
    if (!t) {
        return;
    }
    listener_stop(t->listener);
    t->listener = NULL;
    ledger_telemetry_off(t->ledger);
}

void telemetry_on_invoke(struct telemetry *t, const char *request_id, int64_t deadline_ms)
{
    if (!t) {
        return;
    }
    (void)ledger_on_invoke(t->ledger, request_id, deadline_ms > 0 ? (uint64_t)deadline_ms : 0,
                           clock_real_ms());
    if (t->writer && t->set.mode == EMF_MODE_AGGREGATE) {
        emf_writer_tick(t->writer, clock_real_ms());
    }
}

static size_t s_awaiting(struct telemetry *t)
{
    struct ledger_stats st;

    ledger_stats(t->ledger, &st);
    return st.awaiting_report;
}

void telemetry_on_shutdown(struct telemetry *t, uint64_t start_ms, int64_t budget_ms)
{
    uint64_t end = start_ms + (uint64_t)(budget_ms > 0 ? budget_ms : 0);
    uint64_t seen;
    uint64_t now;
    size_t waiting;

    if (!t) {
        return;
    }
    ledger_on_shutdown(t->ledger);
    if (!t->listener || budget_ms <= 0) {
        return;
    }
    seen = listener_batches(t->listener);
    while ((waiting = s_awaiting(t)) > 0) {
        now = clock_mono_ms();
        if (now >= end) {
            LOG_WARN(MOD,
                     "shutdown: %zu platform.report(s) not in after %lld ms; writing those "
                     "records without Lambda's figures",
                     waiting, (long long)budget_ms);
            break;
        }
        seen = listener_wait(t->listener, seen,
                             end - now < SHUTDOWN_POLL_MS ? end - now : SHUTDOWN_POLL_MS);
    }
}

void telemetry_stop(struct telemetry *t)
{
    if (!t) {
        return;
    }
    /* No batch may land while records are written: what came later stays out, consistently. */
    listener_stop(t->listener);
    t->listener = NULL;
    ledger_flush(t->ledger);
    if (t->writer) {
        emf_writer_flush(t->writer, clock_real_ms());
    }
}

void telemetry_stats(struct telemetry *t, struct telemetry_stats *out)
{
    struct ledger_stats ls;
    struct emf_writer_stats es;

    memset(out, 0, sizeof(*out));
    if (!t) {
        return;
    }
    ledger_stats(t->ledger, &ls);
    out->awaiting_report = ls.awaiting_report;
    if (t->writer) {
        emf_writer_stats(t->writer, &es);
        out->records = es.records;
        out->lines = es.lines;
        out->write_errors = es.errors;
    }
}
