#include "common/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

uint64_t clock_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

uint64_t clock_real_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double clock_ms_between(uint64_t start_ns, uint64_t end_ns)
{
    if (end_ns < start_ns) {
        return 0.0;
    }
    return (double)(end_ns - start_ns) / 1e6;
}

int clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc;

    rc = pthread_condattr_init(&ca);
    if (rc != 0) {
        return rc;
    }
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cv, &ca);
    }
    (void)pthread_condattr_destroy(&ca);
    return rc;
}

void clock_cond_deadline(uint64_t timeout_ms, struct timespec *out)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    *out = ts;
}

/* The last instant whose ISO form fits CLOCK_ISO_LEN: 9999-12-31T23:59:59.999Z. */
#define CLOCK_ISO_LAST_MS 253402300799999ull

void clock_format_iso(uint64_t epoch_ms, char out[CLOCK_ISO_LEN])
{
    time_t s;
    struct tm tm;
    int n;

    /* Formatted through a roomy buffer: gcc cannot see that struct tm fields are in range. */
    char tmp[64];

    /* Past year 9999 the form is longer than CLOCK_ISO_LEN: clamp rather than cut off the 'Z'. */
    if (epoch_ms > CLOCK_ISO_LAST_MS) {
        epoch_ms = CLOCK_ISO_LAST_MS;
    }
    s = (time_t)(epoch_ms / 1000u);
    /* Cannot fail in range [1970, 9999]; a defined answer all the same. */
    if (!gmtime_r(&s, &tm)) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    n = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(epoch_ms % 1000u));
    if (n != CLOCK_ISO_LEN - 1) {
        memset(tmp, '?', CLOCK_ISO_LEN - 1);
    }
    memcpy(out, tmp, CLOCK_ISO_LEN - 1);
    out[CLOCK_ISO_LEN - 1] = '\0';
}

void clock_format_amz(int64_t epoch_s, char out[CLOCK_AMZ_LEN])
{
    time_t s = (time_t)epoch_s;
    struct tm tm;
    int n;

    char tmp[64];

    if (!gmtime_r(&s, &tm)) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    n = snprintf(tmp, sizeof(tmp), "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    /* Outside years 0..9999 the form does not fit: an obviously invalid date, never a cut one. */
    if (n != CLOCK_AMZ_LEN - 1) {
        memset(tmp, '?', CLOCK_AMZ_LEN - 1);
    }
    memcpy(out, tmp, CLOCK_AMZ_LEN - 1);
    out[CLOCK_AMZ_LEN - 1] = '\0';
}

static int days_from_civil(int y, unsigned m, unsigned d, int64_t *days)
{
    /* Howard Hinnant's days-from-civil algorithm, proleptic Gregorian. */
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *days = era * 146097 + (int64_t)doe - 719468;
    return 0;
}

int clock_parse_iso(const char *s, uint64_t *epoch_ms)
{
    int y, mo, d, h, mi, sec;
    unsigned ms = 0;
    int64_t days;
    const char *p;

    *epoch_ms = 0;
    if (strlen(s) < 20) {
        return STASH_EINVAL;
    }
    for (int i = 0; i < 19; i++) {
        char c = s[i];
        int digit = c >= '0' && c <= '9';
        int want_sep = i == 4 || i == 7 || i == 10 || i == 13 || i == 16;

        if (want_sep ? digit : !digit) {
            return STASH_EINVAL;
        }
    }
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
        return STASH_EINVAL;
    }
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    mo = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    h = (s[11] - '0') * 10 + (s[12] - '0');
    mi = (s[14] - '0') * 10 + (s[15] - '0');
    sec = (s[17] - '0') * 10 + (s[18] - '0');
    /* epoch_ms is unsigned: a date before 1970 would wrap around to the far future. */
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return STASH_EINVAL;
    }
    p = s + 19;
    if (*p == '.') {
        unsigned scale = 100;

        p++;
        if (*p < '0' || *p > '9') {
            return STASH_EINVAL;
        }
        while (*p >= '0' && *p <= '9') {
            ms += (unsigned)(*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (p[0] != 'Z' || p[1] != '\0') {
        return STASH_EINVAL;
    }
    days_from_civil(y, (unsigned)mo, (unsigned)d, &days);
    *epoch_ms = (uint64_t)((days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec) * 1000) + ms;
    return STASH_OK;
}
