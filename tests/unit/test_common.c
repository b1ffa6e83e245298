/* Unit tests for common/: bounded buffers, JSON escaping, clocks, constant-time compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

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
        cmocka_unit_test(test_buf_ceiling),  cmocka_unit_test(test_buf_growth_and_printf),
        cmocka_unit_test(test_json_escape),  cmocka_unit_test(test_clock_format_parse),
        cmocka_unit_test(test_mem_equal_ct), cmocka_unit_test(test_log_level_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
