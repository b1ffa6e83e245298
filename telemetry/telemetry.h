/* telemetry/telemetry.h: the metrics pipeline behind one small interface.
 *
 * Everything about metrics lives behind this header: the per-invocation records (ledger.h), the
 * Telemetry API listener and its batches (listener.h, events.h) and the EMF lines on stdout
 * (emf.h).  The rest of stash tells it what happened and never sees those parts:
 *
 *   telemetry_settings_new   config_load: STASH_METRICS_* checked, once, into a settings struct
 *   telemetry_new            process start: requests from then on form the init record
 *   telemetry_on_facts       each local request (the local API's on_facts)
 *   telemetry_init_work_begin / _end   init work (prefetch) starts / is over: its facts, tagged
 *                            FACTS_PHASE_INIT, go to the init record, which waits for the end
 *   telemetry_start          register answered: the function's name and version for the lines;
 *                            invokes 0 on Lambda Managed Instances (no INVOKE events: records
 *                            come from the Telemetry API alone, see ledger_invokes_off())
 *   telemetry_listen         the listener for platform events; its port goes in the subscription
 *   telemetry_unavailable    no platform events will come (cannot listen, subscription refused):
 *                            records complete without Lambda's figures
 *   telemetry_on_invoke      INVOKE: in memory only (an aggregate interval that ran out is written)
 *   telemetry_on_shutdown    SHUTDOWN: closes the last record, then waits until the reports Lambda
 *                            still owes are in or the budget has passed
 *   telemetry_stop           stops the listener and writes every record (one write(2) per record)
 *   telemetry_free           frees; writes nothing
 *
 * Off: a settings struct whose mode is "off" makes telemetry_new() return NULL; every function
 * accepts NULL and does nothing (telemetry_stats gives zeros), so a caller never checks the mode.
 *
 * Ownership: settings are copied by telemetry_new; strings are copied.  telemetry_free() and
 * telemetry_settings_free() accept NULL.
 * Thread-safety: telemetry_on_facts and telemetry_init_work_begin/_end may be called from any
 * thread at any time (the ledger has its own lock), and batches arrive on the listener's thread.
 * The other calls come from one thread (the lifecycle's), in the order above; telemetry_start runs
 * before the listener starts and before the first INVOKE, so no record completes before the writer
 * exists.
 */
#ifndef STASH_TELEMETRY_TELEMETRY_H
#define STASH_TELEMETRY_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/facts.h"

#define TELEMETRY_NAMESPACE_DEFAULT "Stash"

/* The metrics settings as configured (STASH_METRICS_*), before they are checked. */
struct telemetry_config {
    const char *mode;       /* "invocation" (NULL or ""), "aggregate" or "off", any case */
    const char *namespace_; /* NULL or "": TELEMETRY_NAMESPACE_DEFAULT */
    const char *dimensions; /* "Name=Value,..." extra dimensions, NULL or "": none */
    int per_key;            /* a line per secret / parameter name (names only, never values) */
    uint64_t interval_ms;   /* aggregate mode: ms per line (0: 60 s) */
};

struct telemetry_settings;

/* Checks cfg as CloudWatch would (namespace printable ASCII, at most 255 characters, not
 * starting with "AWS/"; at most 8 extra Name=Value dimensions, not names stash writes itself)
 * and keeps the result.  STASH_EINVAL with a one-line reason naming the variable in err. */
enum stash_err telemetry_settings_new(const struct telemetry_config *cfg,
                                      struct telemetry_settings **out, char *err, size_t errlen);
void telemetry_settings_free(struct telemetry_settings *s);

struct telemetry;

/* NULL when settings is NULL or its mode is off.  fd: where the lines go (STDOUT_FILENO).
 * function_name / function_version: AWS_LAMBDA_FUNCTION_*, used when register names none. */
struct telemetry *telemetry_new(const struct telemetry_settings *settings, int fd,
                                const char *function_name, const char *function_version);
void telemetry_free(struct telemetry *t);

/* One local request's facts (an api_facts_fn; ctx is the struct telemetry, or NULL). */
void telemetry_on_facts(void *ctx, const struct facts *f);

/* Init work whose facts are tagged FACTS_PHASE_INIT is starting / is over (ledger.h: "Init
 * work").  Any thread; NULL does nothing. */
void telemetry_init_work_begin(struct telemetry *t);
void telemetry_init_work_end(struct telemetry *t);

/* Register answered; function_name / function_version are register's (NULL or "": none).  A name
 * CloudWatch would refuse as a dimension value gives "unknown" rather than no metrics. */
void telemetry_start(struct telemetry *t, const char *function_name, const char *function_version,
                     int invokes);

/* Starts the listener on addr (port 0: any); *port gets the bound port.  STASH_EIO if it cannot
 * listen.  On any error the caller reports it and calls telemetry_unavailable(). */
enum stash_err telemetry_listen(struct telemetry *t, const struct sockaddr *addr, socklen_t addrlen,
                                uint16_t *port);
void telemetry_unavailable(struct telemetry *t);

/* deadline_ms: the event's Unix epoch ms, 0 if absent. */
void telemetry_on_invoke(struct telemetry *t, const char *request_id, int64_t deadline_ms);

/* Waits at most until clock_mono_ms() reaches start_ms + budget_ms (no wait when budget_ms <= 0
 * or no listener runs); logs how many reports did not come. */
void telemetry_on_shutdown(struct telemetry *t, uint64_t start_ms, int64_t budget_ms);
void telemetry_stop(struct telemetry *t);

struct telemetry_stats {
    uint64_t records;       /* records the writer received */
    uint64_t lines;         /* EMF lines written */
    uint64_t write_errors;  /* lines not written (render or write(2) failures) */
    size_t awaiting_report; /* records whose platform.report has not come yet */
};
void telemetry_stats(struct telemetry *t, struct telemetry_stats *out);

#endif
