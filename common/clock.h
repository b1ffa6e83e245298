/* common/clock.h: the two clocks.
 *
 * Monotonic time (CLOCK_MONOTONIC) measures TTLs, deadlines and latencies.  Wall time
 * (CLOCK_REALTIME) is used only where a protocol wants a date: SigV4's X-Amz-Date, EMF's
 * _aws.Timestamp, ISO dates in responses and Telemetry events.  Condition variables with a timed
 * wait are made by clock_cond_init and given clock_cond_deadline's times, both monotonic, so a
 * step of the wall clock neither stretches nor cuts short a bounded wait.
 * Thread-safety: all functions are thread-safe (gmtime_r, no static buffers).
 */
#ifndef STASH_COMMON_CLOCK_H
#define STASH_COMMON_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
/* Milliseconds since the epoch. */
uint64_t clock_real_ms(void);
/* Milliseconds between two clock_mono_ns() readings, as a fraction. */
double clock_ms_between(uint64_t start_ns, uint64_t end_ns);
/* Initialises cv so that pthread_cond_timedwait reads its deadline on CLOCK_MONOTONIC; returns
 * pthread_cond_init's result. */
int clock_cond_init(pthread_cond_t *cv);
/* The CLOCK_MONOTONIC instant timeout_ms from now, the deadline for a condition variable made by
 * clock_cond_init. */
void clock_cond_deadline(uint64_t timeout_ms, struct timespec *out);

#define CLOCK_ISO_LEN 25 /* "2022-11-16T08:22:40.362Z" plus NUL */
#define CLOCK_AMZ_LEN 17 /* "20150830T123600Z" plus NUL */
/* Formats epoch milliseconds as ISO 8601 UTC with milliseconds and a Z; instants past the year
 * 9999 are clamped to 9999-12-31T23:59:59.999Z (the form would not fit). */
void clock_format_iso(uint64_t epoch_ms, char out[CLOCK_ISO_LEN]);
/* Formats epoch seconds as SigV4's basic ISO 8601 date-time ("????..." outside years 0..9999,
 * which SigV4 then refuses as a malformed date). */
void clock_format_amz(int64_t epoch_s, char out[CLOCK_AMZ_LEN]);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" to epoch milliseconds; STASH_EINVAL if malformed or before
 * 1970 (the result is unsigned). */
int clock_parse_iso(const char *s, uint64_t *epoch_ms);

#endif
