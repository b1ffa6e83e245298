/* extension/lifecycle.h: stash as a Lambda extension: the Extensions API (register, event/next,
 * init/error, exit/error) and the Telemetry API subscription, and the Lambda-mode main loop.
 *
 * Protocol (AWS Lambda Developer Guide, "Lambda Extensions API" and "Lambda Telemetry API"):
 * POST register with `Lambda-Extension-Name: <executable file name>` for INVOKE and SHUTDOWN, keep
 * the `Lambda-Extension-Identifier` it answers, PUT the telemetry subscription during init, then
 * block on GET event/next with no client timeout (the sandbox is frozen between events).
 *
 * lifecycle_run() is the whole Lambda mode, called by main() once the local API is serving:
 *   register            failure: one ERROR line, stop(), returns 1 (nothing else can be reported
 *                       to Lambda).  Refused with 403 Extension.InvalidEventType (Lambda Managed
 *                       Instances take external extensions for SHUTDOWN only): registers for
 *                       SHUTDOWN alone, subscribes with schema 2025-01-29 (the only one LMI
 *                       takes) and starts telemetry with invokes off: records come from the
 *                       callers' X-Stash-Request-Id and the reports
 *   metrics             telemetry_start() with register's functionName / functionVersion
 *   subscribe           types ["platform"] only, buffering 1000 items / 256 KiB / 25 ms so a
 *                       report is delivered as soon as the sandbox thaws; any refusal (RIE and
 *                       emulators answer 202 Telemetry.NotSupported) or listener failure: one
 *                       WARN line, telemetry_unavailable(), and the cache keeps serving with its
 *                       metrics
 *   INVOKE              telemetry_on_invoke() (in memory), then event/next again at once, so the
 *                       extension adds no billed time.  (With telemetry off, the previous record
 *                       completes here and its line is written: one write(2).)
 *   SHUTDOWN (any)      stop() on a thread of its own, waited for at most half the budget (the
 *                       event's deadline less LIFECYCLE_SHUTDOWN_MARGIN_MS, never more than
 *                       LIFECYCLE_SHUTDOWN_WAIT_MAX_MS): a local request stuck on an upstream that
 *                       does not answer must not hold the records past the deadline;
 *                       telemetry_on_shutdown() (waits for the reports owed within the rest of
 *                       the budget); telemetry_stop() (every record goes out); then wait for
 *                       stop() to return, however long; returns 0
 *   next fails          (the platform went away or refused us): the same flush, then POST
 *                       exit/error "Extension.EventNextFailed" if it was refused; returns 1
 * Whatever the path, the stop hook has been called exactly once, and has returned, when
 * lifecycle_run() returns: the caller frees what the hook stopped, and stops nothing itself.
 *
 * lifecycle_report_init_error() is the other way in, for a stash that cannot work (its
 * configuration is invalid, its local API cannot listen): register, then POST init/error with
 * the given Category.Reason, so the function's init fails with the reason instead of a bare
 * crash.  After it Lambda takes no other call from this extension, which should exit.
 *
 * Ownership: opts and hooks are borrowed for the duration of the call.
 * Thread-safety: lifecycle_run() and lifecycle_report_init_error() run on the main thread; the
 * stop hook may run on a thread of its own (see SHUTDOWN) and must be safe against the local API's
 * threads.
 * curl_global_init() is main()'s job, before any thread starts.
 */
#ifndef STASH_EXTENSION_LIFECYCLE_H
#define STASH_EXTENSION_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"
#include "telemetry/telemetry.h"

#define LIFECYCLE_REQUEST_ID_MAX       64
#define LIFECYCLE_SHUTDOWN_MARGIN_MS   300  /* left for flushing and exiting before the deadline */
#define LIFECYCLE_SHUTDOWN_WAIT_MAX_MS 1500 /* never wait longer for a late report */
#define LIFECYCLE_EVENT_MAX_BODY \
    ((size_t)64 * 1024) /* ceiling on an event/next or register answer */

enum lifecycle_event_type {
    LIFECYCLE_EVENT_UNKNOWN = 0, /* a type we did not register for: ignored, next again */
    LIFECYCLE_EVENT_INVOKE,
    LIFECYCLE_EVENT_SHUTDOWN,
};

struct lifecycle_event {
    enum lifecycle_event_type type;
    int64_t deadline_ms;                       /* Unix epoch ms; 0 if absent */
    char request_id[LIFECYCLE_REQUEST_ID_MAX]; /* INVOKE */
    char shutdown_reason[32];                  /* SHUTDOWN, lower-cased ("spindown", ...) */
};

/* Parses an event/next body.  STASH_EPARSE if it is not a JSON object with a string eventType;
 * STASH_EINVAL for an INVOKE without a usable requestId (missing, empty, too long). */
enum stash_err lifecycle_parse_event(const char *body, size_t len, struct lifecycle_event *out);

/* Name for Lambda-Extension-Name: the file name of argv0 (Lambda matches it against the files in
 * /opt/extensions).  Returns a pointer into argv0. */
const char *lifecycle_name_from_argv0(const char *argv0);

/* The subscription body for schema (e.g. "2022-12-13") and the listener's port; caller frees. */
char *lifecycle_subscription_body(const char *schema, uint16_t port);

/* ---- the Lambda-mode loop ---------------------------------------------------------------- */

/* What lifecycle_run needs from the rest of the process (may be NULL). */
struct lifecycle_hooks {
    void *ctx;
    /* Stops every piece of work that makes facts or uses the cache (upstream calls, the local
     * API, prefetch); once it returns no fact arrives any more.  Called exactly once per
     * lifecycle_run(): at SHUTDOWN and after a fatal event/next failure on a thread of its own,
     * when registration fails on the calling thread.  lifecycle_run() returns only after it has
     * returned. */
    void (*stop)(void *ctx);
};

struct lifecycle_opts {
    const char *runtime_api;            /* AWS_LAMBDA_RUNTIME_API, "host:port" */
    const char *name;                   /* Lambda-Extension-Name */
    const char *schema;                 /* telemetry schemaVersion (NULL: 2022-12-13) */
    const struct sockaddr *listen_addr; /* from listener_resolve() */
    socklen_t listen_addrlen;
    struct telemetry *metrics; /* NULL: no telemetry, no EMF */
};

/* Makes a running (or starting) lifecycle_run end as SHUTDOWN does (reason "sigterm", no
 * deadline: LIFECYCLE_SHUTDOWN_WAIT_MAX_MS): its blocking event/next is cut short within about a
 * second.  For SIGTERM, which Lambda mode must treat like SHUTDOWN.  Thread-safe; not
 * async-signal-safe (call it from a thread that took the signal with sigwait). */
void lifecycle_interrupt(void);

/* Runs Lambda mode to its end; returns the process exit status. */
int lifecycle_run(const struct lifecycle_opts *opts, const struct lifecycle_hooks *hooks);

/* Registers as name with the Extensions API at runtime_api, then POSTs init/error with
 * error_type (a Category.Reason such as "Extension.ConfigInvalid") and message (errorMessage;
 * it must hold no secret).  STASH_OK when Lambda took the report; STASH_EINVAL (unusable
 * runtime_api or name), STASH_EUNREACHABLE or STASH_EUPSTREAM (register or the report failed;
 * logged) otherwise.  Either way the caller exits. */
enum stash_err lifecycle_report_init_error(const char *runtime_api, const char *name,
                                           const char *error_type, const char *message);

#endif
