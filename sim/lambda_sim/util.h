/* sim/lambda_sim/util.h: small helpers shared by lambda-sim's modules.
 *
 * Time stamps carry both clocks: the monotonic reading measures durations, the wall reading is
 * what Telemetry events print.  Identifiers come from getrandom(2).
 * Thread-safety: every function is thread-safe.
 */
#ifndef STASH_SIM_UTIL_H
#define STASH_SIM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct sim_stamp {
    uint64_t mono_ns; /* CLOCK_MONOTONIC */
    uint64_t real_ms; /* milliseconds since the epoch */
};

struct sim_stamp sim_stamp_now(void);
/* Milliseconds from a to b (0 if b is earlier), rounded to microseconds as RAPID prints them. */
double sim_ms(struct sim_stamp a, struct sim_stamp b);
/* Rounds to three decimals (Telemetry durations are ms with microsecond precision). */
double sim_round3(double ms);

#define SIM_UUID_LEN 37 /* 8-4-4-4-12 plus NUL */
/* A random (version 4) UUID in lower case. */
void sim_uuid(char out[SIM_UUID_LEN]);
/* 2*n random lower-case hex digits plus a NUL into out (which holds 2*n+1 bytes). */
void sim_hex(char *out, size_t n);
/* 1 if s is a UUID in the 8-4-4-4-12 hex form (either case). */
int sim_is_uuid(const char *s);
/* A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, then closed); 0 on failure. */
unsigned sim_free_port(void);

/* Formatting into fixed buffers.  sim_msgf is for messages (an error body, a log line): one cut
 * short to fit is still a message.  sim_fail is sim_msgf for an error reason, and returns
 * STASH_EINVAL so an error path reads `return sim_fail(err, errlen, ...)`.  sim_fmt is for
 * values that must be whole (paths, URLs, numbers): it returns -1 if out was too small. */
void sim_msgf(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
enum stash_err sim_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sim_fmt(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
