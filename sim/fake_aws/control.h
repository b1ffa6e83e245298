/* sim/fake_aws/control.h: fake-aws's counters and injected behaviour (latency, failures,
 * throttling, hangs), driven by the /_fake/ endpoints.
 *
 * Counters: TCP connections accepted; connections that carried at least one AWS API request
 * (what a keep-alive test looks at: the admin calls of the test itself open connections too);
 * API requests and, per operation, calls (every request naming it, refused or not), both counted
 * when the request arrives (fa_control_begin), so a hung request is counted at once; then, when
 * it is answered (fa_control_end): requests refused by the signature check, and per operation
 * errors (a non-2xx status) and throttled (ThrottlingException).  in_flight is the number of
 * requests begun and not yet ended (a gauge: reset leaves it alone).  fa_control_stats renders
 * them as JSON.
 * Latency: every API request waits latency_ms plus a uniform 0..jitter_ms, plus cold_ms on the
 * first request of a new connection (a stand-in for the TLS handshake a real client pays).
 * Faults: a queue of rules (at most FA_FAULTS_MAX), each for one operation or for any, each good
 * for `count` calls: FAIL answers status/type/message, THROTTLE answers 400 ThrottlingException
 * "Rate exceeded", HANG waits ms before the request is answered normally.  fa_control_take
 * consumes, for one request, the first HANG rule that matches and the first FAIL or THROTTLE
 * rule that matches, in the order they were added.
 * fa_control_reset zeroes the counters and drops pending faults; latency stays as set.
 * Sleeps (fa_control_sleep) end early once fa_control_shutdown is called, so stopping the
 * server never waits on an injected hang.
 * Thread-safety: every function may be called from any thread (one mutex, never held while
 * sleeping) except fa_control_free.
 */
#ifndef STASH_SIM_FAKE_AWS_CONTROL_H
#define STASH_SIM_FAKE_AWS_CONTROL_H

#include "common/buf.h"
#include "common/err.h"
#include "sim/fake_aws/ops.h"

#define FA_FAULTS_MAX      64
#define FA_DELAY_MAX_MS    600000u /* 10 minutes: a ceiling on any injected wait */
#define FA_FAULT_COUNT_MAX 1000000u

enum fa_fault_kind {
    FA_FAULT_NONE = 0,
    FA_FAULT_FAIL,
    FA_FAULT_THROTTLE,
    FA_FAULT_HANG,
};

struct fa_fault {
    enum fa_fault_kind kind; /* FAIL or THROTTLE, or NONE */
    int status;
    char type[64];
    char message[256];
    unsigned hang_ms; /* from a HANG rule, 0 if none */
};

struct fa_control;

struct fa_control *fa_control_new(unsigned latency_ms, unsigned jitter_ms, unsigned cold_ms);
void fa_control_free(struct fa_control *c);

void fa_control_connection_opened(struct fa_control *c);
void fa_control_api_connection(struct fa_control *c);
/* One API request for op arrived; returns a ticket for fa_control_end. */
unsigned long fa_control_begin(struct fa_control *c, enum fa_op op);
/* ... and was answered with `status`; auth_refused if the signature check refused it.  A request
 * begun before the last reset changes only in_flight. */
void fa_control_end(struct fa_control *c, unsigned long ticket, enum fa_op op, int status,
                    int throttled, int auth_refused);

/* The wait before answering an API request (latency, jitter, cold start). */
unsigned fa_control_delay_ms(struct fa_control *c, int first_on_connection);
/* Consumes the injected behaviour for one call of op (see above). */
void fa_control_take(struct fa_control *c, enum fa_op op, struct fa_fault *out);

/* STASH_EINVAL when a value is out of range (waits above FA_DELAY_MAX_MS). */
enum stash_err fa_control_set_latency(struct fa_control *c, unsigned ms, unsigned jitter_ms,
                                      unsigned cold_ms);
/* op FA_OP_UNKNOWN means any operation.  STASH_EINVAL: a count of 0 or over
 * FA_FAULT_COUNT_MAX, a status outside 400..599, an empty type or one with a space, quote,
 * backslash or non-printable byte (it goes into JSON and a header); STASH_ETOOBIG: the queue is
 * full. */
enum stash_err fa_control_add(struct fa_control *c, enum fa_fault_kind kind, enum fa_op op,
                              unsigned count, int status, const char *type, const char *message,
                              unsigned hang_ms);
void fa_control_reset(struct fa_control *c);
enum stash_err fa_control_stats(struct fa_control *c, struct buf *out);

/* Sleeps ms, or less if shut down; returns 0 if it slept in full. */
int fa_control_sleep(struct fa_control *c, unsigned ms);
void fa_control_shutdown(struct fa_control *c);

#endif
