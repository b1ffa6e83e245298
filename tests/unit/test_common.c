/* Unit tests for common/: bounded buffers, JSON escaping, clocks, constant-time compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"

static void test_buf_ceiling(void **state)
{
    struct buf b = BUF_INIT(8);

    (void)state;
    assert_int_equal(buf_puts(&b, "12345"), STASH_OK);
    assert_int_equal(buf_puts(&b, "6789"), STASH_ETOOBIG);
    /* A refused append leaves the buffer as it was. */
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_puts(&b, "678"), STASH_OK);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(buf_putc(&b, 'x'), STASH_ETOOBIG);
    buf_release_secret(&b);
    assert_null(b.data);
}

/* The buffer keeps the first failed append's error through later appends, successful or not,
 * so a document is checked once at its end; reset and detach forget it. */
static void test_buf_first_error(void **state)
{
    struct buf b = BUF_INIT(8);
    char *s;

    (void)state;
    assert_int_equal(buf_error(&b), STASH_OK);
    (void)buf_puts(&b, "1234");
    assert_int_equal(buf_error(&b), STASH_OK);
    assert_int_equal(buf_printf(&b, "%s", "too long"), STASH_ETOOBIG);
    assert_int_equal(buf_error(&b), STASH_ETOOBIG);
    assert_int_equal(buf_putc(&b, '5'), STASH_OK);  /* still appends... */
    assert_int_equal(buf_error(&b), STASH_ETOOBIG); /* ...but the document stays failed */
    assert_int_equal(buf_fail(&b, STASH_EINVAL), STASH_EINVAL);
    assert_int_equal(buf_error(&b), STASH_ETOOBIG); /* the first error wins */
    assert_int_equal(buf_put_json_escaped(&b, "\n\n\n", 3), STASH_ETOOBIG);
    buf_reset(&b);
    assert_int_equal(buf_error(&b), STASH_OK);
    assert_int_equal(buf_fail(&b, STASH_EINVAL), STASH_EINVAL);
    assert_int_equal(buf_error(&b), STASH_EINVAL);
    s = buf_detach(&b, NULL);
    free(s);
    assert_int_equal(buf_error(&b), STASH_OK);
    buf_release(&b);
}

/* Truncating copy, printable-ASCII check and the xorshift64 step. */
static void test_str_helpers(void **state)
{
    char small[4];
    char one[1];
    uint64_t st = 1;

    (void)state;
    assert_int_equal(str_copy_trunc(small, sizeof(small), "abcdef"), 3);
    assert_string_equal(small, "abc");
    assert_int_equal(str_copy_trunc(small, sizeof(small), "ab"), 2);
    assert_string_equal(small, "ab");
    assert_int_equal(str_copy_trunc(one, sizeof(one), "abc"), 0);
    assert_int_equal(one[0], '\0');
    assert_true(str_printable("Env=prod ~", 10));
    assert_false(str_printable("   ", 3)); /* blank */
    assert_false(str_printable("", 0));
    assert_false(str_printable("caf\xc3\xa9", 5));
    assert_false(str_printable("a\tb", 3));
    assert_false(str_printable("a\x7f", 2));
    assert_true(str_printable("a\x7f", 1)); /* only n bytes are looked at */
    /* 1 -> 1 ^ 1<<13 = 0x2001; ^ >>7 (0x40) = 0x2041; ^ <<17 = 0x40822041 */
    assert_int_equal(xorshift64(&st), 0x40822041ULL);
    assert_int_equal(st, 0x40822041ULL);
    assert_true(xorshift64(&st) != 0x40822041ULL);
}

/* The one flag grammar (environment TRUE/FALSE, refreshNow, withDecryption): true/false in any
 * case and 1/0, nothing else; a refusal leaves *out as it was. */
static void test_str_parse_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "tRuE", "1"};
    static const char *const no[] = {"false", "FALSE", "False", "0"};
    static const char *const bad[] = {"",   "yes",    "no",    "on",   " true", "true ",
                                      "01", "2",      "truex", "t",    "-1",    "false\n",
                                      "10", "falsey", "0x1",   "TRUE1"};
    int out;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        out = 7;
        assert_int_equal(str_parse_bool(yes[i], &out), 1);
        assert_int_equal(out, 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        out = 7;
        assert_int_equal(str_parse_bool(no[i], &out), 1);
        assert_int_equal(out, 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out = 7;
        assert_int_equal(str_parse_bool(bad[i], &out), 0);
        assert_int_equal(out, 7);
    }
    out = 7;
    assert_int_equal(str_parse_bool(NULL, &out), 0);
    assert_int_equal(out, 7);
}

static void test_buf_growth_and_printf(void **state)
{
    struct buf b = BUF_INIT(0);
    size_t len;
    char *s;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(buf_printf(&b, "%d,", i % 10), STASH_OK);
    }
    assert_int_equal(b.len, 2000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 1990, "5,6,7,8,9,", 10);
    s = buf_detach(&b, &len);
    assert_int_equal(len, 2000);
    assert_null(b.data);
    free(s);
    s = buf_detach(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
}

static void test_json_escape(void **state)
{
    struct buf b = BUF_INIT(0);
    const char in[] = "a\"b\\c\nd\te\x01"
                      "f\x7f"
                      "g\xc3\xa9";

    (void)state;
    assert_int_equal(buf_put_json_escaped(&b, in, sizeof(in) - 1), STASH_OK);
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\te\\u0001f\\u007fg\xc3\xa9");
    buf_release(&b);
}

static void test_clock_format_parse(void **state)
{
    char iso[CLOCK_ISO_LEN];
    char amz[CLOCK_AMZ_LEN];
    uint64_t ms;

    (void)state;
    clock_format_iso(1668586960362ull, iso);
    assert_string_equal(iso, "2022-11-16T08:22:40.362Z");
    clock_format_amz(1440938160, amz);
    assert_string_equal(amz, "20150830T123600Z");
    assert_int_equal(clock_parse_iso("2022-11-16T08:22:40.362Z", &ms), STASH_OK);
    assert_int_equal(ms, 1668586960362ull);
    assert_int_equal(clock_parse_iso("2022-11-16T08:22:40Z", &ms), STASH_OK);
    assert_int_equal(ms, 1668586960000ull);
    assert_int_equal(clock_parse_iso("2022-11-16 08:22:40Z", &ms), STASH_EINVAL);
    assert_int_equal(clock_parse_iso("2022-13-16T08:22:40Z", &ms), STASH_EINVAL);
    assert_int_equal(clock_parse_iso("2022-11-16T08:22:40.Z", &ms), STASH_EINVAL);
    assert_int_equal(clock_parse_iso("2022-11-16T08:22:40", &ms), STASH_EINVAL);
    assert_true(clock_mono_ns() > 0);
}

/* epoch_ms is unsigned: a date before 1970 used to wrap to ~1.8e19 ms, which then became an EMF
 * _aws.Timestamp (and the ledger's "latest time seen") via a Telemetry event's "time". */
static void test_clock_parse_rejects_pre_epoch(void **state)
{
    uint64_t ms = 42;

    (void)state;
    assert_int_equal(clock_parse_iso("1969-12-31T23:59:59.999Z", &ms), STASH_EINVAL);
    assert_int_equal(ms, 0);
    assert_int_equal(clock_parse_iso("0000-01-01T00:00:00Z", &ms), STASH_EINVAL);
    assert_int_equal(clock_parse_iso("1970-01-01T00:00:00.000Z", &ms), STASH_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(clock_parse_iso("9999-12-31T23:59:59.999Z", &ms), STASH_OK);
    assert_int_equal(ms, 253402300799999ull);
}

/* A condition variable from clock_cond_init times out on the monotonic clock, at the deadline
 * clock_cond_deadline gave: not before it (a wall-clock condition would take the monotonic
 * instant, years before now, as long past and return at once), and the deadline is in the future.
 */
static void test_clock_cond_monotonic(void **state)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    struct timespec deadline, now;
    int rc;

    (void)state;
    assert_int_equal(clock_cond_init(&cv), 0);
    clock_cond_deadline(20, &deadline);
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(deadline.tv_sec > now.tv_sec ||
                (deadline.tv_sec == now.tv_sec && deadline.tv_nsec > now.tv_nsec));
    assert_true(deadline.tv_nsec >= 0 && deadline.tv_nsec < 1000000000L);
    pthread_mutex_lock(&mu);
    do {
        rc = pthread_cond_timedwait(&cv, &mu, &deadline);
    } while (rc == 0); /* a spurious wake-up: wait again for the same deadline */
    pthread_mutex_unlock(&mu);
    assert_int_equal(rc, ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec));
    pthread_cond_destroy(&cv);
}

/* Past year 9999 the ISO form no longer fits CLOCK_ISO_LEN: the output is clamped to the last
 * representable instant instead of being cut (which lost the 'Z'). */
static void test_clock_format_iso_clamps(void **state)
{
    char iso[CLOCK_ISO_LEN];

    (void)state;
    clock_format_iso(253402300799999ull, iso);
    assert_string_equal(iso, "9999-12-31T23:59:59.999Z");
    clock_format_iso(253402300800000ull, iso);
    assert_string_equal(iso, "9999-12-31T23:59:59.999Z");
    clock_format_iso(UINT64_MAX, iso);
    assert_string_equal(iso, "9999-12-31T23:59:59.999Z");
    clock_format_iso(0, iso);
    assert_string_equal(iso, "1970-01-01T00:00:00.000Z");
}

/* Runs log_write with stderr redirected to a pipe; returns what was written. */
static size_t capture_log(const char *msg, char *out, size_t cap)
{
    int fds[2];
    int saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(saved >= 0);
    assert_int_equal(pipe(fds), 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    log_write(LOG_LEVEL_WARN, "test", "%s", msg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    n = read(fds[0], out, cap - 1);
    close(fds[0]);
    assert_true(n > 0);
    out[n] = '\0';
    return (size_t)n;
}

/* A record is one line of text: no newline, carriage return or other control character (a
 * terminal escape from a hostile name) gets through; tabs are kept. */
static void test_log_line_sanitised(void **state)
{
    char out[LOG_LINE_MAX + 16];
    char big[LOG_LINE_MAX * 2];
    size_t n;

    (void)state;
    n = capture_log("a\nb\rc\x1b[31md\te\x7f", out, sizeof(out));
    assert_string_equal(out, "[stash] WARN test: a b c [31md\te \n");
    assert_int_equal(n, strlen(out));
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    n = capture_log(big, out, sizeof(out));
    assert_int_equal(n, LOG_LINE_MAX - 1);
    assert_memory_equal(out + n - 4, "...\n", 4);
}

/* A JSON record: one line, one object, whose message holds exactly what was logged (quotes,
 * backslashes, newlines, tabs, control bytes, UTF-8), and bytes that are not UTF-8 as '?'. */
static cJSON *capture_json(const char *msg, char *out, size_t cap)
{
    size_t n;
    cJSON *o;

    g_log_format = LOG_FORMAT_JSON;
    n = capture_log(msg, out, cap);
    g_log_format = LOG_FORMAT_TEXT;
    assert_true(n > 2);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1)); /* one line */
    o = cJSON_ParseWithLength(out, n);
    if (!o || !cJSON_IsObject(o)) {
        fail_msg("not a JSON object: %s", out);
    }
    return o;
}

static const char *field(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsString(f));
    return f->valuestring;
}

static void test_log_json_line(void **state)
{
    static const char msg[] = "say \"hi\"\\ now\nnext\rline\ttab \x01\x1b[31m\x7f caf\xc3\xa9 "
                              "\xff\xc3( \xed\xa0\x80 \xe2\x82";
    static const char want[] = "say \"hi\"\\ now\nnext\rline\ttab \x01\x1b[31m\x7f caf\xc3\xa9 "
                               "?\?( ??? ??";
    char out[LOG_LINE_MAX * 8];
    const char *ts;
    cJSON *o;

    (void)state;
    o = capture_json(msg, out, sizeof(out));
    assert_string_equal(field(o, "message"), want);
    assert_string_equal(field(o, "level"), "WARN");
    assert_string_equal(field(o, "logger"), "stash");
    assert_string_equal(field(o, "module"), "test");
    ts = field(o, "timestamp");
    /* ISO 8601 UTC with milliseconds, as Lambda's JSON logs: 2026-01-02T03:04:05.678Z */
    assert_int_equal(strlen(ts), CLOCK_ISO_LEN - 1);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    {
        uint64_t ms;

        assert_int_equal(clock_parse_iso(ts, &ms), STASH_OK);
        assert_true(ms + 60000 > clock_real_ms() && ms <= clock_real_ms());
    }
    /* The first field is the timestamp, then the level and the message, in Lambda's order. */
    assert_memory_equal(out, "{\"timestamp\":", 13);
    assert_non_null(strstr(out, "\",\"level\":\"WARN\",\"message\":\""));
    cJSON_Delete(o);
}

/* A message past LOG_LINE_MAX, all of it characters that need escaping, still makes one whole
 * object: the message is cut with "..." before escaping, never the JSON. */
static void test_log_json_truncated(void **state)
{
    char big[LOG_LINE_MAX * 2];
    char out[LOG_LINE_MAX * 8];
    const char *m;
    cJSON *o;

    (void)state;
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    o = capture_json(big, out, sizeof(out));
    m = field(o, "message");
    assert_int_equal(strlen(m), LOG_LINE_MAX - 2);
    assert_string_equal(m + strlen(m) - 3, "...");
    cJSON_Delete(o);
}

/* The text format is unchanged by the JSON one existing. */
static void test_log_text_is_default(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(g_log_format, LOG_FORMAT_TEXT);
    capture_log("plain", out, sizeof(out));
    assert_string_equal(out, "[stash] WARN test: plain\n");
}

static void test_log_lambda_names(void **state)
{
    static const struct {
        const char *name;
        enum log_level want;
    } cases[] = {{"TRACE", LOG_LEVEL_DEBUG}, {"debug", LOG_LEVEL_DEBUG},
                 {"Info", LOG_LEVEL_INFO},   {"WARN", LOG_LEVEL_WARN},
                 {"ERROR", LOG_LEVEL_ERROR}, {"fatal", LOG_LEVEL_ERROR}};
    enum log_level l = LOG_LEVEL_NONE;
    enum log_format f = LOG_FORMAT_TEXT;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(log_level_parse_lambda(cases[i].name, &l), STASH_OK);
        assert_int_equal(l, cases[i].want);
    }
    assert_int_equal(log_level_parse_lambda("none", &l), STASH_EINVAL);
    assert_int_equal(log_level_parse_lambda("warning", &l), STASH_EINVAL);
    assert_int_equal(log_level_parse_lambda(NULL, &l), STASH_EINVAL);
    assert_int_equal(log_format_parse("JSON", &f), STASH_OK);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_format_parse("text", &f), STASH_OK);
    assert_int_equal(f, LOG_FORMAT_TEXT);
    f = LOG_FORMAT_JSON;
    assert_int_equal(log_format_parse("yaml", &f), STASH_EINVAL);
    assert_int_equal(log_format_parse(NULL, &f), STASH_EINVAL);
    assert_int_equal(f, LOG_FORMAT_JSON); /* left as it was */
}

static void test_mem_equal_ct(void **state)
{
    (void)state;
    assert_true(mem_equal_ct("token", 5, "token", 5));
    assert_false(mem_equal_ct("token", 5, "tokem", 5));
    assert_false(mem_equal_ct("token", 5, "token2", 6));
    assert_true(mem_equal_ct("", 0, "", 0));
}

static void test_log_level_parse(void **state)
{
    enum log_level l;

    (void)state;
    assert_int_equal(log_level_parse("DEBUG", &l), STASH_OK);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("none", &l), STASH_OK);
    assert_int_equal(l, LOG_LEVEL_NONE);
    assert_int_equal(log_level_parse("verbose", &l), STASH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_ceiling),
        cmocka_unit_test(test_buf_first_error),
        cmocka_unit_test(test_str_helpers),
        cmocka_unit_test(test_str_parse_bool),
        cmocka_unit_test(test_buf_growth_and_printf),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_clock_format_parse),
        cmocka_unit_test(test_clock_cond_monotonic),
        cmocka_unit_test(test_mem_equal_ct),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_clock_parse_rejects_pre_epoch),
        cmocka_unit_test(test_clock_format_iso_clamps),
        cmocka_unit_test(test_log_line_sanitised),
        cmocka_unit_test(test_log_json_line),
        cmocka_unit_test(test_log_json_truncated),
        cmocka_unit_test(test_log_text_is_default),
        cmocka_unit_test(test_log_lambda_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
