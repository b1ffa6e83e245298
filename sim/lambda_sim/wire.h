/* sim/lambda_sim/wire.h: the bytes lambda-sim exchanges with runtimes and extensions.
 *
 * Pure functions (no I/O, no clocks): parsers for what extensions send (register body, Telemetry
 * subscription), renderers for what Lambda sends back (error bodies, INVOKE/SHUTDOWN events,
 * Telemetry events, CloudWatch REPORT lines).  Shapes follow the Lambda Developer Guide's
 * Extensions, Runtime and Telemetry API pages and the captures in tests/data/telemetry-samples/:
 * RAPID's field order, times as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", durations in ms rounded to microseconds.
 * Ownership: every returned string is allocated with xmalloc and owned by the caller.
 * Errors: parsers return STASH_EINVAL and fill struct wire_error with the HTTP status, errorType
 * and errorMessage Lambda answers with.
 * Thread-safety: all functions are thread-safe (cJSON is used with per-call trees only).
 */
#ifndef STASH_SIM_WIRE_H
#define STASH_SIM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define WIRE_EV_INVOKE   1u
#define WIRE_EV_SHUTDOWN 2u

#define WIRE_T_PLATFORM  1u
#define WIRE_T_FUNCTION  2u
#define WIRE_T_EXTENSION 4u

struct wire_error {
    int status;        /* HTTP status to answer with */
    char type[64];     /* errorType */
    char message[256]; /* errorMessage */
};

/* POST /2020-01-01/extension/register body: {"events":[...]} (events optional).  Sets *events to
 * a mask of WIRE_EV_*.  403 InvalidRequestFormat / Extension.InvalidEventType on bad input. */
enum stash_err wire_parse_register(const char *body, size_t len, unsigned *events,
                                   struct wire_error *err);

struct wire_subscription {
    char schema[16];    /* schemaVersion */
    unsigned types;     /* WIRE_T_* mask */
    unsigned max_items; /* buffering, defaults applied */
    unsigned max_bytes;
    unsigned timeout_ms;
    char host[32]; /* sandbox.localdomain or sandbox */
    unsigned port;
    char path[256]; /* "/..." (at least "/") */
};

#define WIRE_MAX_ITEMS_MIN  1000u
#define WIRE_MAX_ITEMS_MAX  10000u
#define WIRE_MAX_ITEMS_DEF  10000u
#define WIRE_MAX_BYTES_MIN  262144u
#define WIRE_MAX_BYTES_MAX  1048576u
#define WIRE_MAX_BYTES_DEF  262144u
#define WIRE_TIMEOUT_MS_MIN 25u
#define WIRE_TIMEOUT_MS_MAX 30000u
#define WIRE_TIMEOUT_MS_DEF 1000u

/* PUT /2022-07-01/telemetry body.  400 ValidationError with a message naming the field. */
enum stash_err wire_parse_subscription(const char *body, size_t len, struct wire_subscription *sub,
                                       struct wire_error *err);

/* Register's 200 body {"functionName","functionVersion","handler"[,"accountId"]}\n; account_id
 * NULL leaves it out (it is sent only when the extension asked for the accountId feature). */
char *wire_register_body(const char *function_name, const char *version, const char *handler,
                         const char *account_id);
/* 1 if a Lambda-Extension-Accept-Feature value (comma-separated, items trimmed) names accountId. */
int wire_wants_account_id(const char *features);
/* {"errorMessage":"...","errorType":"..."}\n (RAPID's RenderJSON ends bodies with a newline). */
char *wire_error_body(const char *type, const char *message);
/* {"eventType":"INVOKE","deadlineMs":...,"requestId":...,"invokedFunctionArn":...,"tracing":...};
 * trace may be NULL (no "tracing" key).  No trailing newline, as RAPID marshals events. */
char *wire_invoke_event(uint64_t deadline_ms, const char *request_id, const char *arn,
                        const char *trace);
char *wire_shutdown_event(uint64_t deadline_ms, const char *reason);
/* "INVOKE, SHUTDOWN" style list for CloudWatch EXTENSION lines; out holds >= 32 bytes. */
void wire_events_list(unsigned events, char *out, size_t outlen);

/* Telemetry events: each returns one envelope {"time":...,"type":...,"record":...}. */
char *wire_ev_init_start(uint64_t time_ms, const char *function_name, const char *version,
                         const char *instance_id, uint64_t max_memory_bytes, const char *phase);
char *wire_ev_init_runtime_done(uint64_t time_ms, const char *phase, const char *status,
                                const char *error_type);
char *wire_ev_init_report(uint64_t time_ms, const char *phase, const char *status,
                          const char *error_type, double duration_ms);
char *wire_ev_extension(uint64_t time_ms, const char *name, const char *state, unsigned events,
                        const char *error_type);
char *wire_ev_subscription(uint64_t time_ms, const char *name, unsigned types);
char *wire_ev_start(uint64_t time_ms, const char *request_id, const char *function_arn,
                    const char *version);
char *wire_ev_log(uint64_t time_ms, const char *type, const char *line, size_t len);
char *wire_ev_logs_dropped(uint64_t time_ms, uint64_t bytes, uint64_t records, const char *reason);

struct wire_span {
    const char *name;
    uint64_t start_ms; /* wall clock */
    double duration_ms;
};

struct wire_runtime_done {
    const char *request_id;
    const char *status;     /* success | error | failure | timeout */
    const char *error_type; /* NULL for none */
    double duration_ms;
    uint64_t produced_bytes;
    unsigned nspans; /* 0 when the runtime never answered */
    struct wire_span spans[3];
};
char *wire_ev_runtime_done(uint64_t time_ms, const struct wire_runtime_done *rd);

struct wire_report {
    const char *request_id;
    const char *status;
    const char *error_type; /* NULL for none */
    double duration_ms;
    uint64_t billed_ms;
    unsigned memory_mb;
    unsigned max_used_mb;
    double init_ms;   /* < 0: not the first invoke of the environment */
    int has_ext_span; /* extensionOverhead span present */
    struct wire_span ext_span;
};
char *wire_ev_report(uint64_t time_ms, const struct wire_report *r);
/* Billed duration: duration plus init (custom runtime cold start), rounded up to the next ms,
 * at least 1 ms. */
uint64_t wire_billed_ms(double duration_ms, double init_ms);
/* The CloudWatch line "REPORT RequestId: ...\tDuration: ... ms\t...\n". */
char *wire_report_line(const struct wire_report *r);

#endif
