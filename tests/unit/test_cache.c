/* Unit tests for cache/cache.c: TTL, LRU, bounds, refresh, bypass, serve-stale, single-flight
 * under threads, and wiping.
 *
 * Time is the injected clock s_now: no test sleeps for a TTL.  Thread tests make the fill block on
 * a gate the test opens only once cache_stats() shows every follower waiting, so what they assert
 * never depends on scheduling.  cache_check_invariants() runs after every operation.
 *
 * Wiping is proven from outside the store: this binary is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=free (see LDFLAGS_test_cache in the Makefile), so every
 * allocation and free made by the cache (and by common/mem.c on its behalf) passes through the
 * wrappers below.  While tracking is on they remember each block's size; track_mark() tags every
 * live block whose bytes contain a needle (the key and value of one secret); and each free checks
 * the block's bytes at that moment: a tagged block must be all zeros, and no block may still
 * contain the "S3CR3T" marker.  test_wipe_detector_works shows the check fails on an unwiped free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/mem.h"

/* ---- allocation tracking (see the top comment) ---- */

/* Names fixed by ld's --wrap; they are reserved identifiers, which is how --wrap works. */
void *__real_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void __wrap_free(void *p);

#define TRACK_SLOTS 4096
#define MARKER      "S3CR3T"

struct track_slot {
    void *p;
    size_t size;
    int tagged;
};

/* Only touched by single-threaded tests while s_track is set; other tests leave it 0. */
static struct track_slot s_slots[TRACK_SLOTS];
static int s_track;
static unsigned s_tagged_zeroed; /* tagged blocks freed all-zero */
static unsigned s_tagged_dirty;  /* tagged blocks freed with a non-zero byte */
static unsigned s_marker_frees;  /* any tracked block freed still holding MARKER */

static int bytes_contain(const void *p, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    const char *s = p;
    size_t i;

    for (i = 0; i + n <= size; i++) {
        if (memcmp(s + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int bytes_zero(const void *p, size_t size)
{
    const unsigned char *s = p;
    size_t i;

    for (i = 0; i < size; i++) {
        if (s[i]) {
            return 0;
        }
    }
    return 1;
}

static void track_add(void *p, size_t size)
{
    size_t i;

    if (!s_track || !p) {
        return;
    }
    for (i = 0; i < TRACK_SLOTS; i++) {
        if (!s_slots[i].p) {
            s_slots[i].p = p;
            s_slots[i].size = size;
            s_slots[i].tagged = 0;
            return;
        }
    }
    abort(); /* the tests allocate far fewer blocks than this */
}

void *__wrap_malloc(size_t size)
{
    void *p = __real_malloc(size);

    track_add(p, size);
    return p;
}

void *__wrap_calloc(size_t nmemb, size_t size)
{
    void *p = __real_calloc(nmemb, size);

    track_add(p, nmemb * size);
    return p;
}

void __wrap_free(void *p)
{
    size_t i;

    if (s_track && p) {
        for (i = 0; i < TRACK_SLOTS; i++) {
            if (s_slots[i].p == p) {
                if (bytes_contain(p, s_slots[i].size, MARKER)) {
                    s_marker_frees++;
                }
                if (s_slots[i].tagged) {
                    if (bytes_zero(p, s_slots[i].size)) {
                        s_tagged_zeroed++;
                    } else {
                        s_tagged_dirty++;
                    }
                }
                s_slots[i].p = NULL;
                break;
            }
        }
    }
    __real_free(p);
}

static void track_start(void)
{
    memset(s_slots, 0, sizeof(s_slots));
    s_tagged_zeroed = 0;
    s_tagged_dirty = 0;
    s_marker_frees = 0;
    s_track = 1;
}

static void track_stop(void)
{
    s_track = 0;
}

/* Tags every live tracked block holding needle and returns how many there are. */
static unsigned track_mark(const char *needle)
{
    unsigned n = 0;
    size_t i;

    s_tagged_zeroed = 0;
    s_tagged_dirty = 0;
    for (i = 0; i < TRACK_SLOTS; i++) {
        s_slots[i].tagged = 0;
        if (s_slots[i].p && bytes_contain(s_slots[i].p, s_slots[i].size, needle)) {
            s_slots[i].tagged = 1;
            n++;
        }
    }
    return n;
}

/* ---- clock and fills ---- */

static uint64_t s_now;

static uint64_t test_now(void *ctx)
{
    (void)ctx;
    return s_now;
}

/* The tests speak in the local API's statuses; each result's kind is the one extension/answer.c
 * gives that status: 200 a value, 429 and 5xx transient, any other a failure that stands. */
static enum cache_kind kind_of(int status)
{
    if (status == 200) {
        return CACHE_VALUE;
    }
    return status == 429 || status >= 500 ? CACHE_TRANSIENT : CACHE_FAILED;
}

static struct cache *new_cache(size_t max_items, size_t max_bytes, uint64_t stale_max_ms)
{
    struct cache_opts o = {
        .max_items = max_items,
        .max_bytes = max_bytes,
        .stale_max_ms = stale_max_ms,
        .now_ms = test_now,
    };
    struct cache *c;

    s_now = 1000;
    c = cache_new(&o);
    cache_check_invariants(c);
    return c;
}

/* What a fill answers; calls counts how often it ran. */
struct answer {
    int status;
    const char *body;
    unsigned calls;
};

static void fill_answer(void *ctx, struct cache_value *out)
{
    struct answer *a = ctx;

    a->calls++;
    out->kind = kind_of(a->status);
    out->status = a->status;
    out->len = strlen(a->body);
    out->body = xmemdup(a->body, out->len);
}

/* One get; checks the invariants after it, the outcome, and the answer's status and body. */
static void expect_get(struct cache *c, const char *key, uint64_t ttl, unsigned flags,
                       struct answer *a, enum facts_outcome outcome, int status, const char *body)
{
    struct cache_ref v;
    enum facts_outcome got;

    got = cache_get(c, key, strlen(key), ttl, flags, fill_answer, a, &v);
    cache_check_invariants(c);
    assert_int_equal(got, outcome);
    assert_int_equal(v.status, status);
    assert_int_equal(v.len, strlen(body));
    assert_string_equal(v.body, body);
    cache_ref_release(&v);
    assert_null(v.body);
}

static void expect_stats(struct cache *c, size_t items, size_t bytes, uint64_t evictions)
{
    struct cache_stats st;

    cache_stats(c, &st);
    assert_int_equal(st.items, items);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.evictions, evictions);
    assert_int_equal(st.flights, 0);
    assert_int_equal(st.waiters, 0);
}

/* ---- single-threaded behaviour ---- */

static void test_hit_miss(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer a = {200, "value-one", 0};
    struct answer b = {200, "value-two", 0};

    (void)state;
    expect_get(c, "k1", 100, 0, &a, FACTS_MISS, 200, "value-one");
    assert_int_equal(a.calls, 1);
    expect_get(c, "k1", 100, 0, &a, FACTS_HIT, 200, "value-one");
    assert_int_equal(a.calls, 1);
    expect_get(c, "k2", 100, 0, &b, FACTS_MISS, 200, "value-two");
    expect_get(c, "k1", 100, 0, &b, FACTS_HIT, 200, "value-one");
    assert_int_equal(b.calls, 1);
    expect_stats(c, 2, 2 * (2 + 9), 0);
    cache_free(c);
}

static void test_binary_keys(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer a = {200, "a", 0};
    struct answer b = {200, "b", 0};
    const char ka[] = {'x', '\0', 'y'};
    const char kb[] = {'x', '\0', 'z'};
    struct cache_ref v;

    (void)state;
    /* Keys are byte strings: an embedded NUL does not end them. */
    assert_int_equal(cache_get(c, ka, 3, 100, 0, fill_answer, &a, &v), FACTS_MISS);
    cache_check_invariants(c);
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, kb, 3, 100, 0, fill_answer, &b, &v), FACTS_MISS);
    cache_check_invariants(c);
    assert_string_equal(v.body, "b");
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, ka, 3, 100, 0, fill_answer, &b, &v), FACTS_HIT);
    cache_check_invariants(c);
    assert_string_equal(v.body, "a");
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, "", 0, 100, 0, fill_answer, &b, &v), FACTS_MISS);
    cache_check_invariants(c);
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, "", 0, 100, 0, fill_answer, &b, &v), FACTS_HIT);
    cache_check_invariants(c);
    cache_ref_release(&v);
    expect_stats(c, 3, 3 + 1 + 3 + 1 + 0 + 1, 0);
    cache_free(c);
}

static void test_ttl_boundaries(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer a = {200, "v1", 0};
    struct answer b = {200, "v2", 0};

    (void)state;
    s_now = 5000;
    expect_get(c, "k", 100, 0, &a, FACTS_MISS, 200, "v1");
    s_now = 5099; /* last fresh millisecond: fresh while now < stored + ttl */
    expect_get(c, "k", 100, 0, &b, FACTS_HIT, 200, "v1");
    s_now = 5100; /* expired exactly at stored + ttl */
    expect_get(c, "k", 100, 0, &b, FACTS_MISS, 200, "v2");
    assert_int_equal(b.calls, 1);
    /* The new value's lifetime starts when its fill returned. */
    s_now = 5199;
    expect_get(c, "k", 100, 0, &a, FACTS_HIT, 200, "v2");
    s_now = 5200;
    expect_get(c, "k", 1, 0, &a, FACTS_MISS, 200, "v1");
    expect_get(c, "k", 1, 0, &b, FACTS_HIT, 200, "v1");
    s_now = 5201;
    expect_get(c, "k", 1, 0, &b, FACTS_MISS, 200, "v2");
    expect_stats(c, 1, 1 + 2, 0);
    cache_free(c);
}

static void test_ttl_zero_is_bypass(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer a = {200, "stored", 0};
    struct answer b = {200, "live", 0};

    (void)state;
    expect_get(c, "k", 0, 0, &b, FACTS_BYPASS, 200, "live");
    expect_get(c, "k", 0, 0, &b, FACTS_BYPASS, 200, "live");
    assert_int_equal(b.calls, 2);
    expect_stats(c, 0, 0, 0);
    /* TTL 0 neither reads nor replaces an entry stored by a get with a TTL. */
    expect_get(c, "k", 100, 0, &a, FACTS_MISS, 200, "stored");
    expect_get(c, "k", 0, 0, &b, FACTS_BYPASS, 200, "live");
    assert_int_equal(b.calls, 3);
    expect_get(c, "k", 100, 0, &b, FACTS_HIT, 200, "stored");
    cache_free(c);
}

static void test_max_items_zero_is_bypass(void **state)
{
    struct cache *c = new_cache(0, 0, 1000);
    struct answer a = {200, "v", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &a, FACTS_BYPASS, 200, "v");
    expect_get(c, "k", 100, 0, &a, FACTS_BYPASS, 200, "v");
    expect_get(c, "k", 100, CACHE_REFRESH, &a, FACTS_BYPASS, 200, "v");
    assert_int_equal(a.calls, 3);
    expect_stats(c, 0, 0, 0);
    cache_free(c);
}

static void test_lru_order(void **state)
{
    struct cache *c = new_cache(3, 0, 0);
    struct answer a = {200, "v", 0};
    struct answer never = {200, "must-not-be-fetched", 0};

    (void)state;
    expect_get(c, "a", 100, 0, &a, FACTS_MISS, 200, "v");
    expect_get(c, "b", 100, 0, &a, FACTS_MISS, 200, "v");
    expect_get(c, "c", 100, 0, &a, FACTS_MISS, 200, "v");
    /* A hit makes "a" the most recent, so "b" is now the least recently used. */
    expect_get(c, "a", 100, 0, &never, FACTS_HIT, 200, "v");
    expect_get(c, "d", 100, 0, &a, FACTS_MISS, 200, "v");
    expect_stats(c, 3, 6, 1);
    expect_get(c, "a", 100, 0, &never, FACTS_HIT, 200, "v");
    expect_get(c, "c", 100, 0, &never, FACTS_HIT, 200, "v");
    expect_get(c, "d", 100, 0, &never, FACTS_HIT, 200, "v");
    assert_int_equal(never.calls, 0);
    /* Order is now d, c, a (most recent first): "b" comes back and pushes out "a". */
    expect_get(c, "b", 100, 0, &a, FACTS_MISS, 200, "v");
    expect_get(c, "c", 100, 0, &never, FACTS_HIT, 200, "v");
    expect_get(c, "d", 100, 0, &never, FACTS_HIT, 200, "v");
    expect_get(c, "b", 100, 0, &never, FACTS_HIT, 200, "v");
    assert_int_equal(never.calls, 0);
    expect_get(c, "a", 100, 0, &a, FACTS_MISS, 200, "v");
    expect_stats(c, 3, 6, 3);
    cache_free(c);
}

static void test_item_bound(void **state)
{
    struct cache *c = new_cache(2, 0, 0);
    struct answer a = {200, "value", 0};
    char key[16];
    int i;

    (void)state;
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        expect_get(c, key, 100, 0, &a, FACTS_MISS, 200, "value");
    }
    expect_stats(c, 2, 2 * (5 + 5), 48);
    expect_get(c, "key49", 100, 0, &a, FACTS_HIT, 200, "value");
    expect_get(c, "key48", 100, 0, &a, FACTS_HIT, 200, "value");
    expect_get(c, "key47", 100, 0, &a, FACTS_MISS, 200, "value");
    cache_free(c);
}

static void test_many_keys_grow_table(void **state)
{
    struct cache *c = new_cache(5000, 0, 0);
    struct answer a = {200, "v", 0};
    struct cache_ref v;
    char key[16];
    int i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(cache_get(c, key, strlen(key), 100, 0, fill_answer, &a, &v), FACTS_MISS);
        cache_ref_release(&v);
        cache_check_invariants(c);
    }
    cache_check_invariants(c);
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(cache_get(c, key, strlen(key), 100, 0, fill_answer, &a, &v), FACTS_HIT);
        cache_ref_release(&v);
        cache_check_invariants(c);
    }
    cache_check_invariants(c);
    assert_int_equal(a.calls, 1000);
    cache_free(c);
}

static void test_byte_bound(void **state)
{
    /* Entry size is key + value bytes: "k1" + 8 bytes = 10. */
    struct cache *c = new_cache(100, 20, 0);
    struct answer eight = {200, "12345678", 0};
    struct answer big = {200, "123456789012345678X", 0}; /* 2 + 19 = 21 > 20 */
    struct answer fits = {200, "123456789012345678", 0}; /* 2 + 18 = 20 */
    struct answer never = {200, "must-not-be-fetched", 0};

    (void)state;
    expect_get(c, "k1", 100, 0, &eight, FACTS_MISS, 200, "12345678");
    expect_get(c, "k2", 100, 0, &eight, FACTS_MISS, 200, "12345678");
    expect_stats(c, 2, 20, 0);
    expect_get(c, "k3", 100, 0, &eight, FACTS_MISS, 200, "12345678");
    expect_stats(c, 2, 20, 1); /* k1 went */
    expect_get(c, "k2", 100, 0, &never, FACTS_HIT, 200, "12345678");
    expect_get(c, "k3", 100, 0, &never, FACTS_HIT, 200, "12345678");

    /* Too big for the whole store: served, not stored, and nothing evicted for it. */
    expect_get(c, "k4", 100, 0, &big, FACTS_MISS, 200, "123456789012345678X");
    expect_stats(c, 2, 20, 1);
    expect_get(c, "k4", 100, 0, &big, FACTS_MISS, 200, "123456789012345678X");
    assert_int_equal(big.calls, 2);
    expect_get(c, "k2", 100, 0, &never, FACTS_HIT, 200, "12345678");

    /* Exactly max_bytes fits, pushing out everything else. */
    expect_get(c, "k5", 100, 0, &fits, FACTS_MISS, 200, "123456789012345678");
    expect_stats(c, 1, 20, 3);
    expect_get(c, "k5", 100, 0, &never, FACTS_HIT, 200, "123456789012345678");

    /* A refresh whose value is too big drops the now outdated entry. */
    big.body = "bigger-than-the-whole-store";
    expect_get(c, "k5", 100, CACHE_REFRESH, &big, FACTS_MISS, 200, big.body);
    expect_stats(c, 0, 0, 3);
    assert_int_equal(never.calls, 0);
    cache_free(c);
}

static void test_refresh_replaces(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer v1 = {200, "v1", 0};
    struct answer v2 = {200, "v2-longer", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    s_now += 10;
    expect_get(c, "k", 100, CACHE_REFRESH, &v2, FACTS_MISS, 200, "v2-longer");
    assert_int_equal(v2.calls, 1);
    expect_stats(c, 1, 1 + 9, 0);
    /* The replacement has its own lifetime, from the refresh. */
    s_now += 99;
    expect_get(c, "k", 100, 0, &v1, FACTS_HIT, 200, "v2-longer");
    s_now += 1;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    /* A refresh of an unknown key stores too. */
    expect_get(c, "new", 100, CACHE_REFRESH, &v2, FACTS_MISS, 200, "v2-longer");
    expect_get(c, "new", 100, 0, &v1, FACTS_HIT, 200, "v2-longer");
    cache_free(c);
}

/* CACHE_PEEK: a fresh entry or nothing; never a fill, never a change. */
static void test_peek(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct answer v1 = {200, "v1", 0};
    struct answer never = {200, "must-not-be-fetched", 0};
    struct cache_ref out;

    (void)state;
    assert_int_equal(cache_get(c, "k", 1, 100, CACHE_PEEK, fill_answer, &never, &out), FACTS_MISS);
    assert_int_equal(out.status, 0);
    assert_null(out.body);
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "k", 100, CACHE_PEEK, &never, FACTS_HIT, 200, "v1");
    assert_int_equal(
        cache_get(c, "k", 1, 100, CACHE_PEEK | CACHE_REFRESH, fill_answer, &never, &out),
        FACTS_MISS);
    assert_int_equal(cache_get(c, "k", 1, 0, CACHE_PEEK, fill_answer, &never, &out), FACTS_MISS);
    /* Expired, even far past the stale window: a miss, and the entry is left for the fill. */
    s_now += 5000;
    assert_int_equal(cache_get(c, "k", 1, 100, CACHE_PEEK, fill_answer, &never, &out), FACTS_MISS);
    expect_stats(c, 1, 3, 0);
    assert_int_equal(never.calls, 0);
    cache_free(c);
}

static void test_bypass(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct answer v1 = {200, "v1", 0};
    struct answer v2 = {200, "v2", 0};
    struct answer err = {404, "{\"not\":\"found\"}", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "k", 100, CACHE_BYPASS, &v2, FACTS_BYPASS, 200, "v2");
    expect_get(c, "k", 100, CACHE_BYPASS | CACHE_REFRESH, &v2, FACTS_BYPASS, 200, "v2");
    expect_get(c, "k", 100, 0, &v2, FACTS_HIT, 200, "v1");
    /* A bypassed error neither drops the entry nor is stored. */
    expect_get(c, "k", 100, CACHE_BYPASS, &err, FACTS_BYPASS, 404, err.body);
    expect_get(c, "k", 100, 0, &v2, FACTS_HIT, 200, "v1");
    expect_get(c, "other", 100, CACHE_BYPASS, &v2, FACTS_BYPASS, 200, "v2");
    expect_stats(c, 1, 3, 0);
    assert_int_equal(v2.calls, 3);
    cache_free(c);
}

static void test_serve_stale(void **state)
{
    struct cache *c = new_cache(10, 0, 50);
    struct answer v1 = {200, "v1", 0};
    struct answer v2 = {200, "v2", 0};
    struct answer unavailable = {503, "{\"error\":\"unavailable\"}", 0};
    struct answer throttled = {429, "{\"error\":\"throttled\"}", 0};
    struct answer timeout = {504, "{\"error\":\"timeout\"}", 0};

    (void)state;
    s_now = 0;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1"); /* expiry 100, stale until 149 */
    s_now = 100;
    expect_get(c, "k", 100, 0, &unavailable, FACTS_STALE, 200, "v1");
    s_now = 149;
    expect_get(c, "k", 100, 0, &throttled, FACTS_STALE, 200, "v1");
    expect_get(c, "k", 100, 0, &timeout, FACTS_STALE, 200, "v1");
    assert_int_equal(unavailable.calls + throttled.calls + timeout.calls, 3);
    expect_stats(c, 1, 3, 0); /* kept through all of it */
    /* A successful refresh replaces it. */
    expect_get(c, "k", 100, 0, &v2, FACTS_MISS, 200, "v2"); /* expiry 249, stale until 298 */
    s_now = 298;
    expect_get(c, "k", 100, 0, &unavailable, FACTS_STALE, 200, "v2");
    /* Beyond stale_max_ms: the fault goes to the caller and the entry is gone. */
    s_now = 299;
    expect_get(c, "k", 100, 0, &unavailable, FACTS_MISS, 503, unavailable.body);
    expect_stats(c, 0, 0, 0);
    expect_get(c, "k", 100, 0, &throttled, FACTS_MISS, 429, throttled.body);
    cache_free(c);
}

static void test_stale_off(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer v1 = {200, "v1", 0};
    struct answer unavailable = {500, "{\"error\":\"internal\"}", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    s_now += 100;
    expect_get(c, "k", 100, 0, &unavailable, FACTS_MISS, 500, unavailable.body);
    expect_stats(c, 0, 0, 0);
    cache_free(c);
}

/* A caller who asked for fresh data gets the fault, not the cached value it asked to replace
 * (the Secrets Manager Agent documents refreshNow this way); the entry stays as it was, with its
 * expiry, so plain reads keep hitting it. */
static void test_refresh_fault_answers_fault(void **state)
{
    struct cache *c = new_cache(10, 0, 50);
    struct answer v1 = {200, "v1", 0};
    struct answer unavailable = {503, "{\"error\":\"unavailable\"}", 0};
    struct answer never = {200, "must-not-be-fetched", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "k", 100, CACHE_REFRESH, &unavailable, FACTS_MISS, 503, unavailable.body);
    assert_int_equal(unavailable.calls, 1);
    /* Kept, with its original expiry. */
    s_now += 99;
    expect_get(c, "k", 100, 0, &never, FACTS_HIT, 200, "v1");
    assert_int_equal(never.calls, 0);
    /* Expired: a refresh that fails leaves it for the stale rules of plain reads. */
    s_now += 1;
    expect_get(c, "k", 100, CACHE_REFRESH, &unavailable, FACTS_MISS, 503, unavailable.body);
    expect_get(c, "k", 100, 0, &unavailable, FACTS_STALE, 200, "v1");
    cache_free(c);
}

static void test_definite_failure_not_stale(void **state)
{
    static const int statuses[] = {404, 400, 403};
    struct answer v1 = {200, "v1", 0};
    struct answer unavailable = {503, "{\"error\":\"unavailable\"}", 0};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct cache *c = new_cache(10, 0, 1000);
        struct answer refused = {statuses[i], "{\"error\":\"refused\"}", 0};

        expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
        s_now += 100;
        expect_get(c, "k", 100, 0, &refused, FACTS_MISS, statuses[i], refused.body);
        /* Dropped: a later transient fault has nothing old to fall back on. */
        expect_stats(c, 0, 0, 0);
        expect_get(c, "k", 100, 0, &unavailable, FACTS_MISS, 503, unavailable.body);

        /* A refreshNow refused answers the refusal but leaves the entry as it was: the
         * next plain read is still a hit. */
        expect_get(c, "k", 100, 0, &v1, FACTS_MISS, 200, "v1");
        expect_get(c, "k", 100, CACHE_REFRESH, &refused, FACTS_MISS, statuses[i], refused.body);
        expect_stats(c, 1, 1 + 2, 0);
        expect_get(c, "k", 100, 0, &unavailable, FACTS_HIT, 200, "v1");
        cache_free(c);
    }
}

/* A result with its kind set directly: the store decides by kind alone, never by status. */
struct kinded {
    enum cache_kind kind;
    int status;
    const char *body;
};

static void fill_kinded(void *ctx, struct cache_value *out)
{
    const struct kinded *k = ctx;

    out->kind = k->kind;
    out->status = k->status;
    out->len = strlen(k->body);
    out->body = xmemdup(k->body, out->len);
}

static void test_kind_not_status(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct kinded value = {CACHE_VALUE, 7, "v"};
    struct kinded transient404 = {CACHE_TRANSIENT, 404, "t"};
    struct kinded failed503 = {CACHE_FAILED, 503, "f"};
    struct kinded value500 = {CACHE_VALUE, 500, "w"};
    struct cache_ref v;

    (void)state;
    /* Stored with the status it came with. */
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_kinded, &value, &v), FACTS_MISS);
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_kinded, &failed503, &v), FACTS_HIT);
    assert_int_equal(v.status, 7);
    assert_int_equal(v.kind, CACHE_VALUE);
    cache_ref_release(&v);
    /* Expired: a transient failure, whatever its status, serves the old value. */
    s_now += 100;
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_kinded, &transient404, &v), FACTS_STALE);
    assert_string_equal(v.body, "v");
    cache_ref_release(&v);
    /* A failure that stands, whatever its status, drops it. */
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_kinded, &failed503, &v), FACTS_MISS);
    assert_string_equal(v.body, "f");
    assert_int_equal(v.status, 503);
    assert_int_equal(v.kind, CACHE_FAILED);
    cache_ref_release(&v);
    expect_stats(c, 0, 0, 0);
    /* And a value with any status is kept. */
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_kinded, &value500, &v), FACTS_MISS);
    cache_ref_release(&v);
    expect_stats(c, 1, 2, 0);
    cache_free(c);
}

static void test_errors_not_stored(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct answer e500 = {500, "{\"error\":\"internal\"}", 0};
    struct answer e404 = {404, "{\"error\":\"not found\"}", 0};
    struct answer e201 = {201, "created?", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &e500, FACTS_MISS, 500, e500.body);
    expect_get(c, "k", 100, 0, &e500, FACTS_MISS, 500, e500.body);
    expect_get(c, "k", 100, 0, &e404, FACTS_MISS, 404, e404.body);
    expect_get(c, "k", 100, 0, &e404, FACTS_MISS, 404, e404.body);
    expect_get(c, "k", 100, 0, &e201, FACTS_MISS, 201, e201.body); /* only a CACHE_VALUE is kept */
    expect_get(c, "k", 100, 0, &e201, FACTS_MISS, 201, e201.body);
    assert_int_equal(e500.calls + e404.calls + e201.calls, 6);
    expect_stats(c, 0, 0, 0);
    cache_free(c);
}

static void null_body_fill(void *ctx, struct cache_value *out)
{
    (void)ctx;
    out->kind = CACHE_TRANSIENT;
    out->status = 502;
}

static void test_fill_without_body(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct cache_ref v;

    (void)state;
    /* A fill breaking its contract still yields a well-formed (empty) body. */
    assert_int_equal(cache_get(c, "k", 1, 100, 0, null_body_fill, NULL, &v), FACTS_MISS);
    cache_check_invariants(c);
    assert_int_equal(v.status, 502);
    assert_non_null(v.body);
    assert_int_equal(v.len, 0);
    cache_ref_release(&v);
    assert_int_equal(cache_get(c, "k", 1, 0, 0, null_body_fill, NULL, &v), FACTS_BYPASS);
    cache_check_invariants(c);
    assert_non_null(v.body);
    cache_ref_release(&v);
    cache_check_invariants(c);
    cache_free(c);
}

static void test_clear(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct answer v1 = {200, "v1", 0};
    struct answer unavailable = {503, "{\"error\":\"unavailable\"}", 0};

    (void)state;
    expect_get(c, "a", 100, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "b", 100, 0, &v1, FACTS_MISS, 200, "v1");
    cache_clear(c);
    cache_check_invariants(c);
    expect_stats(c, 0, 0, 0);
    /* Nothing left to serve stale either. */
    expect_get(c, "a", 100, 0, &unavailable, FACTS_MISS, 503, unavailable.body);
    expect_get(c, "b", 100, 0, &v1, FACTS_MISS, 200, "v1");
    expect_stats(c, 1, 3, 0);
    cache_clear(c);
    cache_clear(c);
    cache_check_invariants(c);
    cache_free(c);
    cache_free(NULL);
    cache_value_release(NULL);
}

static void test_real_clock_default(void **state)
{
    struct cache_opts o = {.max_items = 4};
    struct cache *c = cache_new(&o);
    struct answer v1 = {200, "v1", 0};

    (void)state;
    /* No injected clock: the monotonic one; a one-hour TTL cannot lapse during this test. */
    expect_get(c, "k", 3600 * 1000, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "k", 3600 * 1000, 0, &v1, FACTS_HIT, 200, "v1");
    cache_free(c);
}

/* ---- refresh-ahead ---- */

/* A CACHE_AHEAD get that must be a hit with body; returns whether it claimed the refresh. */
static int ahead_hit(struct cache *c, const char *key, uint64_t ttl, const char *body)
{
    struct answer never = {200, "must-not-be-fetched", 0};
    struct cache_ref v;
    int due;

    assert_int_equal(
        cache_get(c, key, strlen(key), ttl, CACHE_PEEK | CACHE_AHEAD, fill_answer, &never, &v),
        FACTS_HIT);
    cache_check_invariants(c);
    assert_int_equal(never.calls, 0);
    assert_string_equal(v.body, body);
    due = v.refresh_due;
    cache_ref_release(&v);
    return due;
}

/* Runs a claimed refresh with fill a; returns the outcome (the answer is checked by the caller
 * through the store). */
static enum facts_outcome ahead_run(struct cache *c, const char *key, uint64_t ttl,
                                    struct answer *a, int *status)
{
    struct cache_ref v;
    enum facts_outcome o;

    o = cache_get(c, key, strlen(key), ttl, CACHE_AHEAD_RUN, fill_answer, a, &v);
    cache_check_invariants(c);
    *status = v.status;
    assert_int_equal(v.refresh_due, 0);
    cache_ref_release(&v);
    return o;
}

static void test_ahead_window(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer v1 = {200, "v1", 0};
    struct answer v2 = {200, "v2", 0};
    int status;

    (void)state;
    /* Stored at 1000 with TTL 1000: expires at 2000; the refresh point is in [1900, 1950]. */
    expect_get(c, "k", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    expect_get(c, "plain", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    s_now = 1899;
    assert_false(ahead_hit(c, "k", 1000, "v1")); /* before the last tenth: never */
    s_now = 1950;
    /* Without CACHE_AHEAD no hit claims anything, however late. */
    expect_get(c, "plain", 1000, CACHE_PEEK, &v1, FACTS_HIT, 200, "v1");
    assert_true(ahead_hit(c, "k", 1000, "v1"));  /* at the latest jittered point: claimed */
    assert_false(ahead_hit(c, "k", 1000, "v1")); /* once per entry */
    s_now = 1999;
    assert_false(ahead_hit(c, "k", 1000, "v1"));
    assert_int_equal(v1.calls, 2);

    /* The claimed run replaces the value; the new entry has its own window. */
    assert_int_equal(ahead_run(c, "k", 1000, &v2, &status), FACTS_MISS);
    assert_int_equal(status, 200);
    assert_int_equal(v2.calls, 1);
    s_now = 2500; /* the old entry would have expired: this is the new one (expires 2999) */
    assert_false(ahead_hit(c, "k", 1000, "v2"));
    s_now = 2949;
    assert_true(ahead_hit(c, "k", 1000, "v2"));
    /* A run that was not claimed, or whose entry is gone, fetches nothing. */
    assert_int_equal(ahead_run(c, "plain", 1000, &v2, &status), FACTS_MISS);
    assert_int_equal(status, 0);
    assert_int_equal(ahead_run(c, "absent", 1000, &v2, &status), FACTS_MISS);
    assert_int_equal(status, 0);
    /* TTL 0 and a disabled cache store nothing, so a run there fetches nothing either. */
    assert_int_equal(ahead_run(c, "k", 0, &v2, &status), FACTS_MISS);
    assert_int_equal(status, 0);
    assert_int_equal(v2.calls, 1);
    cache_free(c);
}

/* The refresh point is jittered per entry, within its bounds: stores filled at one instant do
 * not all claim at the same one. */
static void test_ahead_jitter(void **state)
{
    enum { NKEYS = 40 };
    struct cache *c = new_cache(NKEYS + 1, 0, 0);
    struct answer v1 = {200, "v1", 0};
    uint64_t first_due[NKEYS];
    char key[NKEYS][16];
    int distinct = 0;
    int i;

    (void)state;
    for (i = 0; i < NKEYS; i++) {
        (void)snprintf(key[i], sizeof(key[i]), "k%d", i);
        expect_get(c, key[i], 1000, 0, &v1, FACTS_MISS, 200, "v1");
        first_due[i] = 0;
    }
    /* Every key is read every millisecond from 1850 on; each claims exactly once, in
     * [1900, 1950]. */
    for (s_now = 1850; s_now < 2000; s_now++) {
        for (i = 0; i < NKEYS; i++) {
            if (ahead_hit(c, key[i], 1000, "v1")) {
                assert_int_equal(first_due[i], 0);
                first_due[i] = s_now;
            }
        }
    }
    for (i = 0; i < NKEYS; i++) {
        assert_in_range(first_due[i], 1900, 1950);
        distinct += i > 0 && first_due[i] != first_due[0];
    }
    assert_true(distinct > 0);
    /* Below 10 ms there is no last tenth to refresh in. */
    expect_get(c, "short", 9, 0, &v1, FACTS_MISS, 200, "v1");
    s_now += 8;
    assert_false(ahead_hit(c, "short", 9, "v1"));
    cache_free(c);
}

/* A failed refresh-ahead keeps the value until it expires, is not retried, and after the expiry
 * the stale rules apply as before. */
static void test_ahead_failure_keeps_value(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct answer v1 = {200, "v1", 0};
    struct answer down = {503, "{\"error\":\"unavailable\"}", 0};
    struct answer gone = {404, "{\"error\":\"not found\"}", 0};
    int status;

    (void)state;
    expect_get(c, "k", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    s_now = 1960;
    assert_true(ahead_hit(c, "k", 1000, "v1"));
    assert_int_equal(ahead_run(c, "k", 1000, &down, &status), FACTS_MISS);
    assert_int_equal(status, 503);
    s_now = 1999;
    assert_false(ahead_hit(c, "k", 1000, "v1")); /* still served, not claimed again */
    assert_int_equal(down.calls, 1);
    s_now = 2000; /* expired: a plain read refreshes, fails, and is served stale */
    expect_get(c, "k", 1000, 0, &down, FACTS_STALE, 200, "v1");
    assert_int_equal(down.calls, 2);

    /* A definite refusal of the refresh-ahead does not drop the value early either. */
    expect_get(c, "g", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    s_now += 960;
    assert_true(ahead_hit(c, "g", 1000, "v1"));
    assert_int_equal(ahead_run(c, "g", 1000, &gone, &status), FACTS_MISS);
    assert_int_equal(status, 404);
    assert_false(ahead_hit(c, "g", 1000, "v1"));
    s_now += 40; /* expired: the plain read's 404 drops it, as without refresh-ahead */
    expect_get(c, "g", 1000, 0, &gone, FACTS_MISS, 404, gone.body);
    expect_stats(c, 1, 1 + 2, 0);
    cache_free(c);
}

/* ---- threads: a fill the test holds until it opens the gate ---- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned entered; /* fills that started */
    int open;
    int status;
    const char *body;
};

static void gate_init(struct gate *g, int status, const char *body)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    clock_cond_init(&g->cv);
    g->status = status;
    g->body = body;
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void fill_gated(void *ctx, struct cache_value *out)
{
    struct gate *g = ctx;

    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    out->kind = kind_of(g->status);
    out->status = g->status;
    out->len = strlen(g->body);
    out->body = xmemdup(g->body, out->len);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static unsigned gate_entered(struct gate *g)
{
    unsigned n;

    pthread_mutex_lock(&g->mu);
    n = g->entered;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* Waits (bounded, so a bug fails the test instead of hanging it) until n fills have started. */
static void gate_wait_entered(struct gate *g, unsigned n)
{
    struct timespec deadline;
    int rc = 0;

    clock_cond_deadline(30000, &deadline);
    pthread_mutex_lock(&g->mu);
    while (g->entered < n && rc == 0) {
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
    }
    pthread_mutex_unlock(&g->mu);
    assert_true(g->entered >= n);
}

/* Polls the store's own gauges until n followers wait (bounded as above).  The poll only decides
 * when to go on; what the test asserts does not depend on how long it took. */
static void wait_waiters(struct cache *c, size_t n)
{
    uint64_t deadline = clock_mono_ms() + 30000;
    struct cache_stats st;
    const struct timespec pause = {0, 200 * 1000};

    for (;;) {
        cache_stats(c, &st);
        if (st.waiters >= n || clock_mono_ms() > deadline) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    assert_int_equal(st.waiters, n);
}

struct worker {
    pthread_t thread;
    struct cache *c;
    const char *key;
    unsigned flags;
    cache_fill_fn fill;
    void *fill_ctx;
    enum facts_outcome outcome;
    struct cache_ref v;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;

    w->outcome =
        cache_get(w->c, w->key, strlen(w->key), 1000, w->flags, w->fill, w->fill_ctx, &w->v);
    return NULL;
}

static void worker_start(struct worker *w, struct cache *c, const char *key, unsigned flags,
                         cache_fill_fn fill, void *fill_ctx)
{
    memset(w, 0, sizeof(*w));
    w->c = c;
    w->key = key;
    w->flags = flags;
    w->fill = fill;
    w->fill_ctx = fill_ctx;
    assert_int_equal(pthread_create(&w->thread, NULL, worker_run, w), 0);
}

static void worker_join(struct worker *w)
{
    assert_int_equal(pthread_join(w->thread, NULL), 0);
}

#define NTHREADS 32

static void test_single_flight_32(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct gate g;
    struct worker w[NTHREADS];
    struct answer never = {200, "must-not-be-fetched", 0};
    unsigned misses = 0;
    unsigned waited = 0;
    int i;

    (void)state;
    gate_init(&g, 200, "the-one-value");
    for (i = 0; i < NTHREADS; i++) {
        worker_start(&w[i], c, "shared-key", 0, fill_gated, &g);
    }
    gate_wait_entered(&g, 1);
    wait_waiters(c, NTHREADS - 1);
    cache_check_invariants(c);
    gate_open(&g);
    for (i = 0; i < NTHREADS; i++) {
        worker_join(&w[i]);
        cache_check_invariants(c);
        misses += w[i].outcome == FACTS_MISS;
        waited += w[i].outcome == FACTS_WAITED;
        assert_int_equal(w[i].v.status, 200);
        assert_string_equal(w[i].v.body, "the-one-value");
        cache_ref_release(&w[i].v);
    }
    assert_int_equal(gate_entered(&g), 1); /* exactly one fill */
    assert_int_equal(misses, 1);
    assert_int_equal(waited, NTHREADS - 1);
    expect_stats(c, 1, strlen("shared-key") + strlen("the-one-value"), 0);
    expect_get(c, "shared-key", 1000, 0, &never, FACTS_HIT, 200, "the-one-value");
    gate_destroy(&g);
    cache_free(c);
}

static void test_distinct_keys_in_parallel(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct gate g;
    struct worker wa;
    struct answer b = {200, "value-b", 0};
    struct answer cc = {200, "value-c", 0};
    struct answer never = {200, "must-not-be-fetched", 0};
    struct cache_stats st;

    (void)state;
    gate_init(&g, 200, "value-a");
    expect_get(c, "B", 1000, 0, &b, FACTS_MISS, 200, "value-b");
    worker_start(&wa, c, "A", 0, fill_gated, &g);
    gate_wait_entered(&g, 1);
    /* A's fill is blocked right now: a hit on B and a whole miss on C still complete. */
    expect_get(c, "B", 1000, 0, &never, FACTS_HIT, 200, "value-b");
    expect_get(c, "C", 1000, 0, &cc, FACTS_MISS, 200, "value-c");
    expect_get(c, "C", 1000, 0, &never, FACTS_HIT, 200, "value-c");
    cache_stats(c, &st);
    assert_int_equal(st.flights, 1);
    assert_int_equal(st.items, 2);
    gate_open(&g);
    worker_join(&wa);
    cache_check_invariants(c);
    assert_int_equal(wa.outcome, FACTS_MISS);
    assert_string_equal(wa.v.body, "value-a");
    cache_ref_release(&wa.v);
    expect_get(c, "A", 1000, 0, &never, FACTS_HIT, 200, "value-a");
    assert_int_equal(never.calls, 0);
    gate_destroy(&g);
    cache_free(c);
}

/* Starts n gets of key on the gated fill, waits until one fills and n - 1 wait. */
static void start_flight(struct cache *c, struct gate *g, struct worker *w, int n, const char *key,
                         unsigned flags)
{
    int i;

    for (i = 0; i < n; i++) {
        worker_start(&w[i], c, key, flags, fill_gated, g);
        if (i == 0) {
            gate_wait_entered(g, 1);
        }
    }
    wait_waiters(c, (size_t)n - 1);
    cache_check_invariants(c);
}

/* Joins the n workers; checks each got status/body; counts the outcomes. */
static void finish_flight(struct cache *c, struct worker *w, int n, int status, const char *body,
                          unsigned counts[FACTS_BYPASS + 1])
{
    int i;

    memset(counts, 0, sizeof(unsigned) * (FACTS_BYPASS + 1));
    for (i = 0; i < n; i++) {
        worker_join(&w[i]);
        cache_check_invariants(c);
        counts[w[i].outcome]++;
        assert_int_equal(w[i].v.status, status);
        assert_string_equal(w[i].v.body, body);
        cache_ref_release(&w[i].v);
    }
}

static void test_error_handed_to_waiters(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct gate g;
    struct worker w[4];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer v1 = {200, "v1", 0};

    (void)state;
    gate_init(&g, 500, "{\"error\":\"internal\"}");
    start_flight(c, &g, w, 4, "k", 0);
    gate_open(&g);
    finish_flight(c, w, 4, 500, g.body, counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 3);
    assert_int_equal(gate_entered(&g), 1);
    /* Not stored: the next get fetches again. */
    expect_stats(c, 0, 0, 0);
    expect_get(c, "k", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    gate_destroy(&g);
    cache_free(c);
}

static void test_stale_handed_to_waiters(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct gate g;
    struct worker w[4];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer v1 = {200, "old-value", 0};

    (void)state;
    expect_get(c, "k", 1000, 0, &v1, FACTS_MISS, 200, "old-value");
    s_now += 1000; /* expired, inside the stale window */
    gate_init(&g, 503, "{\"error\":\"unavailable\"}");
    start_flight(c, &g, w, 4, "k", 0);
    gate_open(&g);
    finish_flight(c, w, 4, 200, "old-value", counts);
    /* A stale answer counts as stale whoever fetched. */
    assert_int_equal(counts[FACTS_STALE], 4);
    assert_int_equal(gate_entered(&g), 1);
    expect_stats(c, 1, 1 + 9, 0);
    gate_destroy(&g);
    cache_free(c);
}

static void test_refresh_joins_flight(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct gate g;
    struct worker w[3];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer never = {200, "must-not-be-fetched", 0};

    (void)state;
    gate_init(&g, 200, "v1");
    worker_start(&w[0], c, "k", 0, fill_gated, &g);
    gate_wait_entered(&g, 1);
    worker_start(&w[1], c, "k", CACHE_REFRESH, fill_gated, &g);
    worker_start(&w[2], c, "k", CACHE_REFRESH, fill_gated, &g);
    wait_waiters(c, 2);
    gate_open(&g);
    finish_flight(c, w, 3, 200, "v1", counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 2);
    assert_int_equal(gate_entered(&g), 1);
    expect_get(c, "k", 1000, 0, &never, FACTS_HIT, 200, "v1");
    gate_destroy(&g);
    cache_free(c);
}

static void test_clear_during_flight(void **state)
{
    struct cache *c = new_cache(10, 0, 1000);
    struct gate g;
    struct gate g2;
    struct worker w[3];
    struct worker late;
    unsigned counts[FACTS_BYPASS + 1];
    struct answer other = {200, "other", 0};
    struct answer v2 = {200, "v2", 0};
    struct cache_stats st;

    (void)state;
    gate_init(&g, 200, "pre-clear");
    gate_init(&g2, 200, "post-clear");
    expect_get(c, "other", 1000, 0, &other, FACTS_MISS, 200, "other");
    start_flight(c, &g, w, 3, "k", 0);
    cache_clear(c);
    cache_check_invariants(c);
    cache_stats(c, &st);
    assert_int_equal(st.items, 0);
    assert_int_equal(st.flights, 0); /* detached: new gets do not join it */
    assert_int_equal(st.waiters, 2); /* but its followers still wait for it */
    /* A get after the clear starts its own fill instead of taking the pre-clear value. */
    worker_start(&late, c, "k", 0, fill_gated, &g2);
    gate_wait_entered(&g2, 1);
    gate_open(&g);
    finish_flight(c, w, 3, 200, "pre-clear", counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 2);
    cache_stats(c, &st);
    assert_int_equal(st.items, 0); /* the pre-clear result was not kept */
    gate_open(&g2);
    worker_join(&late);
    cache_check_invariants(c);
    assert_int_equal(late.outcome, FACTS_MISS);
    assert_string_equal(late.v.body, "post-clear");
    cache_ref_release(&late.v);
    expect_get(c, "k", 1000, 0, &v2, FACTS_HIT, 200, "post-clear");
    assert_int_equal(v2.calls, 0);
    gate_destroy(&g);
    gate_destroy(&g2);
    cache_free(c);
}

static void test_evicted_during_flight(void **state)
{
    struct cache *c = new_cache(2, 0, 1000);
    struct gate g;
    struct worker w[2];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer v = {200, "v", 0};
    struct cache_stats st;

    (void)state;
    /* k is expired but servable stale when its refresh starts ... */
    expect_get(c, "k", 10, 0, &v, FACTS_MISS, 200, "v");
    s_now += 10;
    gate_init(&g, 503, "{\"error\":\"unavailable\"}");
    start_flight(c, &g, w, 2, "k", 0);
    /* ... then pushed out by other keys while the refresh runs ... */
    expect_get(c, "x", 1000, 0, &v, FACTS_MISS, 200, "v");
    expect_get(c, "y", 1000, 0, &v, FACTS_MISS, 200, "v");
    cache_stats(c, &st);
    assert_int_equal(st.items, 2);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.flights, 1);
    /* ... so the fault has nothing to fall back on and reaches every caller as is. */
    gate_open(&g);
    finish_flight(c, w, 2, 503, g.body, counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 1);
    expect_stats(c, 2, 4, 1);
    gate_destroy(&g);

    /* A successful fill for an evicted key is stored normally. */
    expect_get(c, "k", 10, 0, &v, FACTS_MISS, 200, "v");
    s_now += 10;
    gate_init(&g, 200, "new");
    start_flight(c, &g, w, 2, "k", 0);
    expect_get(c, "x", 1000, 0, &v, FACTS_MISS, 200, "v");
    expect_get(c, "y", 1000, 0, &v, FACTS_MISS, 200, "v");
    gate_open(&g);
    finish_flight(c, w, 2, 200, "new", counts);
    expect_get(c, "k", 1000, 0, &v, FACTS_HIT, 200, "new");
    gate_destroy(&g);
    cache_free(c);
}

static void test_table_grows_during_flight(void **state)
{
    struct cache *c = new_cache(1000, 0, 0);
    struct gate g;
    struct worker w[3];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer v = {200, "v", 0};
    char key[16];
    int i;

    (void)state;
    gate_init(&g, 200, "flight-value");
    start_flight(c, &g, w, 2, "in-flight", 0);
    /* Enough entries to rehash the table several times while the flight is open ... */
    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        expect_get(c, key, 1000, 0, &v, FACTS_MISS, 200, "v");
    }
    /* ... and a new get still finds the flight in its new bucket and joins it. */
    worker_start(&w[2], c, "in-flight", 0, fill_gated, &g);
    wait_waiters(c, 2);
    gate_open(&g);
    finish_flight(c, w, 3, 200, "flight-value", counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 2);
    assert_int_equal(gate_entered(&g), 1);
    expect_get(c, "in-flight", 1000, 0, &v, FACTS_HIT, 200, "flight-value");
    gate_destroy(&g);
    cache_free(c);
}

static void test_stale_window_ends_during_fill(void **state)
{
    struct cache *c = new_cache(10, 0, 50);
    struct gate g;
    struct worker w[2];
    unsigned counts[FACTS_BYPASS + 1];
    struct answer v = {200, "old", 0};

    (void)state;
    expect_get(c, "k", 100, 0, &v, FACTS_MISS, 200, "old");
    s_now += 120; /* expired, 20 ms into a 50 ms stale window */
    gate_init(&g, 503, "{\"error\":\"unavailable\"}");
    start_flight(c, &g, w, 2, "k", 0);
    /* The fill outlasts the window (the gate orders this write before the leader's next read). */
    s_now += 30;
    gate_open(&g);
    finish_flight(c, w, 2, 503, g.body, counts);
    assert_int_equal(counts[FACTS_MISS], 1);
    assert_int_equal(counts[FACTS_WAITED], 1);
    expect_stats(c, 0, 0, 0); /* too old to serve, so not kept either */
    gate_destroy(&g);
    cache_free(c);
}

/* ---- stress: many threads, random operations, for ThreadSanitizer and lost wakeups ---- */

#define STRESS_THREADS 6
#define STRESS_OPS     3000

static _Atomic uint64_t s_stress_now;
static _Atomic unsigned s_stress_fills;

static uint64_t stress_now(void *ctx)
{
    (void)ctx;
    return s_stress_now;
}

struct stress_fill {
    const char *key;
    int status;
};

static void fill_stress(void *ctx, struct cache_value *out)
{
    const struct stress_fill *sf = ctx;
    char body[64];
    int n;

    /* Give other threads a chance to pile up on this flight. */
    sched_yield();
    n = snprintf(body, sizeof(body), "%s:%u", sf->key, ++s_stress_fills);
    out->kind = kind_of(sf->status);
    out->status = sf->status;
    out->len = (size_t)n;
    out->body = xmemdup(body, out->len);
}

struct stress_worker {
    pthread_t thread;
    struct cache *c;
    unsigned seed;
    unsigned bad; /* answers that broke a rule; asserted 0 on the main thread */
};

static unsigned stress_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

static void *stress_run(void *arg)
{
    static const char *const keys[] = {"alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"};
    static const int statuses[] = {200, 200, 200, 200, 503, 429, 404};
    static const uint64_t ttls[] = {0, 1, 3, 20, 1000};
    struct stress_worker *w = arg;
    int i;

    for (i = 0; i < STRESS_OPS; i++) {
        unsigned r = stress_rand(&w->seed);
        struct stress_fill sf = {keys[r % 7], statuses[(r / 7) % 7]};
        unsigned flags = (r / 49) % 16 == 0 ? CACHE_REFRESH : (r / 49) % 16 == 1 ? CACHE_BYPASS : 0;
        uint64_t ttl = ttls[(r / 784) % 5];
        struct cache_ref v;
        enum facts_outcome o;
        size_t klen = strlen(sf.key);

        if (r % 97 == 0) {
            cache_clear(w->c);
        } else if (r % 13 == 0) {
            s_stress_now += 1;
        }
        o = cache_get(w->c, sf.key, klen, ttl, flags, fill_stress, &sf, &v);
        /* Whoever fetched it, the answer is for this key and well-formed. */
        if (!v.body || v.len <= klen || memcmp(v.body, sf.key, klen) != 0 || v.body[klen] != ':' ||
            v.body[v.len] != '\0') {
            w->bad++;
        }
        if ((o == FACTS_HIT || o == FACTS_STALE) && v.status != 200) {
            w->bad++;
        }
        cache_ref_release(&v);
        cache_check_invariants(w->c);
    }
    return NULL;
}

/* The refresh-ahead is single-flight: while it runs, another claimed run, a refreshNow or a plain
 * read after the expiry joins it or does nothing; no hit claims a second one; and a hit while
 * another fill of the key runs claims nothing. */
static void test_ahead_single_flight(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer v1 = {200, "v1", 0};
    struct answer never = {200, "must-not-be-fetched", 0};
    struct gate g;
    struct worker run;
    struct worker after;
    struct worker refresh;
    struct cache_stats st;
    int status;

    (void)state;
    gate_init(&g, 200, "v2");
    expect_get(c, "k", 1000, 0, &v1, FACTS_MISS, 200, "v1");
    s_now = 1960;
    assert_true(ahead_hit(c, "k", 1000, "v1"));
    worker_start(&run, c, "k", CACHE_AHEAD_RUN, fill_gated, &g);
    gate_wait_entered(&g, 1);
    /* A second run of the same claim: nothing to do, the first one is refreshing. */
    assert_int_equal(ahead_run(c, "k", 1000, &never, &status), FACTS_MISS);
    assert_int_equal(status, 0);
    /* Hits go on, with the current value, and claim nothing. */
    assert_false(ahead_hit(c, "k", 1000, "v1"));
    /* Past the expiry a plain read and a refreshNow join the running refresh. */
    s_now = 2000;
    worker_start(&after, c, "k", 0, fill_answer, &never);
    worker_start(&refresh, c, "k", CACHE_REFRESH, fill_answer, &never);
    wait_waiters(c, 2);
    cache_stats(c, &st);
    assert_int_equal(st.flights, 1);
    gate_open(&g);
    worker_join(&run);
    worker_join(&after);
    worker_join(&refresh);
    cache_check_invariants(c);
    assert_int_equal(run.outcome, FACTS_MISS);
    assert_int_equal(after.outcome, FACTS_WAITED);
    assert_int_equal(refresh.outcome, FACTS_WAITED);
    assert_string_equal(after.v.body, "v2");
    assert_string_equal(refresh.v.body, "v2");
    cache_ref_release(&run.v);
    cache_ref_release(&after.v);
    cache_ref_release(&refresh.v);
    assert_int_equal(gate_entered(&g), 1);
    assert_int_equal(never.calls, 0);
    expect_get(c, "k", 1000, 0, &never, FACTS_HIT, 200, "v2");

    /* A refreshNow in flight: a hit in the window claims nothing (that fill is the refresh). */
    gate_destroy(&g);
    gate_init(&g, 200, "v3");
    s_now = 2960;
    worker_start(&refresh, c, "k", CACHE_REFRESH, fill_gated, &g);
    gate_wait_entered(&g, 1);
    assert_false(ahead_hit(c, "k", 1000, "v2"));
    gate_open(&g);
    worker_join(&refresh);
    cache_ref_release(&refresh.v);
    assert_false(ahead_hit(c, "k", 1000, "v3")); /* the new entry: its window is ahead */
    gate_destroy(&g);
    cache_free(c);
}

static void test_stress_threads(void **state)
{
    struct cache_opts o = {
        .max_items = 4, .max_bytes = 40, .stale_max_ms = 10, .now_ms = stress_now};
    struct cache *c;
    struct stress_worker w[STRESS_THREADS];
    struct cache_stats st;
    int i;

    (void)state;
    s_stress_now = 1000;
    c = cache_new(&o);
    /* A follower left waiting forever would hang here: SIGALRM ends the run as a failure. */
    alarm(120);
    for (i = 0; i < STRESS_THREADS; i++) {
        w[i] = (struct stress_worker){.c = c, .seed = (unsigned)i * 7919u + 1u};
        assert_int_equal(pthread_create(&w[i].thread, NULL, stress_run, &w[i]), 0);
    }
    for (i = 0; i < STRESS_THREADS; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    alarm(0);
    cache_check_invariants(c);
    cache_stats(c, &st);
    assert_int_equal(st.flights, 0);
    assert_int_equal(st.waiters, 0);
    assert_true(s_stress_fills > 0);
    assert_true(s_stress_fills <= STRESS_THREADS * STRESS_OPS);
    cache_free(c);
}

/* ---- wiping ---- */

static void test_wipe_detector_works(void **state)
{
    char *p;

    (void)state;
    /* The control: a block freed with the marker still in it is caught, a wiped one is not. */
    track_start();
    p = xmemdup("xx" MARKER "xx", 10);
    assert_int_equal(track_mark(MARKER), 1);
    free(p);
    assert_int_equal(s_marker_frees, 1);
    assert_int_equal(s_tagged_dirty, 1);
    p = xmemdup("xx" MARKER "xx", 10);
    assert_int_equal(track_mark(MARKER), 1);
    xfree_secret(p, 11);
    assert_int_equal(s_marker_frees, 1);
    assert_int_equal(s_tagged_zeroed, 1);
    track_stop();
}

/* A get whose fill answers the given secret; the caller's copy is released (wiped) at once. */
static void put_secret(struct cache *c, const char *key, const char *secret)
{
    struct answer a = {200, secret, 0};

    expect_get(c, key, 100, 0, &a, FACTS_MISS, 200, secret);
}

static void test_wipe_on_evict_replace_clear_free(void **state)
{
    struct cache *c;
    struct answer v = {200, "v", 0};

    (void)state;
    track_start();
    c = new_cache(2, 0, 0);
    put_secret(c, "sm/1-" MARKER, "1-" MARKER "-password-one");
    put_secret(c, "sm/2-" MARKER, "2-" MARKER "-password-two");

    /* Eviction: the entry block (holding the key) and the value of secret 1. */
    assert_int_equal(track_mark("1-" MARKER), 2);
    put_secret(c, "sm/3-" MARKER, "3-" MARKER "-password-three");
    expect_stats(c, 2, 11 + 21 + 11 + 23, 1);
    assert_int_equal(s_tagged_zeroed, 2);
    assert_int_equal(s_tagged_dirty, 0);

    /* Expired and replaced: the old value and its entry go, wiped. */
    s_now += 100;
    assert_int_equal(track_mark("2-" MARKER), 2);
    put_secret(c, "sm/2-" MARKER, "2-" MARKER "-rotated");
    assert_int_equal(s_tagged_zeroed, 2);
    assert_int_equal(s_tagged_dirty, 0);

    /* Expired past the stale window and dropped on lookup (not replaced: the fill fails). */
    assert_int_equal(track_mark("3-" MARKER), 2);
    v.status = 404;
    expect_get(c, "sm/3-" MARKER, 100, 0, &v, FACTS_MISS, 404, "v");
    assert_int_equal(s_tagged_zeroed, 2);
    assert_int_equal(s_tagged_dirty, 0);

    /* Cleared. */
    put_secret(c, "sm/4-" MARKER, "4-" MARKER);
    assert_int_equal(track_mark(MARKER), 4);
    cache_clear(c);
    cache_check_invariants(c);
    assert_int_equal(s_tagged_zeroed, 4);
    assert_int_equal(s_tagged_dirty, 0);

    /* Freed with the store. */
    put_secret(c, "sm/5-" MARKER, "5-" MARKER);
    put_secret(c, "sm/6-" MARKER, "6-" MARKER);
    assert_int_equal(track_mark(MARKER), 4);
    cache_free(c);
    assert_int_equal(s_tagged_zeroed, 4);
    assert_int_equal(s_tagged_dirty, 0);

    /* And not one block anywhere was freed still holding a secret. */
    assert_int_equal(s_marker_frees, 0);
    track_stop();
}

/* Hits share the stored value (no copy), and a reference stays valid and unwiped after its entry
 * is replaced, evicted or cleared and even after the store is freed; the last release wipes it. */
static void test_refs_outlive_entries(void **state)
{
    struct cache *c;
    struct answer one = {200, "1-" MARKER "-first", 0};
    struct answer two = {200, "2-" MARKER "-second", 0};
    struct answer three = {200, "3-" MARKER "-third", 0};
    struct cache_ref h1;
    struct cache_ref h2;
    struct cache_ref held[3];

    (void)state;
    track_start();
    c = new_cache(1, 0, 0);
    put_secret(c, "k1", one.body);
    assert_int_equal(cache_get(c, "k1", 2, 100, 0, fill_answer, &one, &h1), FACTS_HIT);
    assert_int_equal(cache_get(c, "k1", 2, 100, 0, fill_answer, &one, &h2), FACTS_HIT);
    assert_ptr_equal(h1.body, h2.body); /* one stored body, two references */
    cache_ref_release(&h2);
    assert_null(h2.body);
    held[0] = h1;

    /* Replaced (refreshNow): the held body is the old one, intact. */
    assert_int_equal(cache_get(c, "k1", 2, 100, CACHE_REFRESH, fill_answer, &two, &h1), FACTS_MISS);
    cache_check_invariants(c);
    assert_ptr_not_equal(h1.body, held[0].body);
    held[1] = h1;
    /* Evicted (max_items 1): the value of k1 leaves the store but not the holder. */
    put_secret(c, "k3", three.body);
    expect_stats(c, 1, 2 + strlen(three.body), 1);
    assert_int_equal(cache_get(c, "k3", 2, 100, 0, fill_answer, &three, &held[2]), FACTS_HIT);
    /* Cleared and freed. */
    cache_clear(c);
    cache_free(c);

    assert_string_equal(held[0].body, one.body);
    assert_int_equal(held[0].len, strlen(one.body));
    assert_string_equal(held[1].body, two.body);
    assert_string_equal(held[2].body, three.body);
    assert_int_equal(held[2].status, 200);
    /* Nothing else holds them now: each release is the last one and wipes. */
    assert_int_equal(track_mark(MARKER), 3);
    for (int i = 0; i < 3; i++) {
        cache_ref_release(&held[i]);
    }
    assert_int_equal(s_tagged_zeroed, 3);
    assert_int_equal(s_tagged_dirty, 0);
    assert_int_equal(s_marker_frees, 0);
    cache_ref_release(NULL);
    track_stop();
}

static void test_wipe_flight_results(void **state)
{
    struct cache *c;
    struct answer big = {200, "too-big-" MARKER "-for-the-store", 0};
    struct answer err = {500, "{\"error\":\"" MARKER "\"}", 0};
    struct answer v = {200, "v-" MARKER, 0};

    (void)state;
    track_start();
    c = new_cache(4, 20, 1000);
    /* Served-not-stored, error and bypass results: every copy is wiped on its way out. */
    expect_get(c, "k", 100, 0, &big, FACTS_MISS, 200, big.body);
    expect_get(c, "k", 100, 0, &err, FACTS_MISS, 500, err.body);
    expect_get(c, "k", 100, CACHE_BYPASS, &v, FACTS_BYPASS, 200, v.body);
    expect_get(c, "k", 100, 0, &v, FACTS_MISS, 200, v.body);
    s_now += 100;
    /* A stale answer replaces the error body, which is wiped too. */
    expect_get(c, "k", 100, 0, &err, FACTS_STALE, 200, v.body);
    cache_free(c);
    assert_int_equal(s_marker_frees, 0);
    track_stop();
}

/* ---- attachments ---- */

/* An attachment that checks, when it is destroyed, that the value it was attached to is still
 * intact (its destructor runs before the wipe) and counts how often it is destroyed. */
struct probe {
    const char *body; /* the value's body, read when destroyed */
    const char *want; /* what it must still hold then */
    int *destroyed;   /* shared by the probes of one test */
    int intact;       /* body equalled want when destroyed */
};

static void probe_free(void *a)
{
    struct probe *p = a;

    p->intact = strcmp(p->body, p->want) == 0;
    (*p->destroyed)++;
}

/* The attachment lives as long as the value, not as the entry: it survives replacement, eviction
 * and clearing while a caller holds the value, goes with the last reference (whichever that is),
 * before the wipe, exactly once; a second attach keeps the first. */
static void test_attachment_lifetime(void **state)
{
    struct cache *c;
    struct answer one = {200, "one-" MARKER, 0};
    struct answer two = {200, "two-" MARKER, 0};
    struct answer other = {200, "other", 0};
    struct cache_ref h1;
    struct cache_ref h2;
    struct cache_ref empty = {0};
    int destroyed = 0;
    struct probe p1 = {.want = "one-" MARKER, .destroyed = &destroyed};
    struct probe loser = {.want = "one-" MARKER, .destroyed = &destroyed};
    struct probe p2 = {.want = "two-" MARKER, .destroyed = &destroyed};
    struct probe p3 = {.want = "other", .destroyed = &destroyed};

    (void)state;
    track_start();
    c = new_cache(1, 0, 0);
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_answer, &one, &h1), FACTS_MISS);
    assert_null(cache_ref_attachment(&h1));
    p1.body = h1.body;
    assert_ptr_equal(cache_ref_attach(&h1, &p1, probe_free), &p1);
    /* A hit sees it; a second attach returns the first and leaves it in place. */
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_answer, &one, &h2), FACTS_HIT);
    assert_ptr_equal(cache_ref_attachment(&h2), &p1);
    assert_ptr_equal(cache_ref_attach(&h2, &loser, probe_free), &p1);
    cache_ref_release(&h2);
    /* Nothing attaches to an empty ref, nor without an attachment or a destructor. */
    assert_null(cache_ref_attachment(&empty));
    assert_null(cache_ref_attachment(NULL));
    assert_null(cache_ref_attach(&empty, &loser, probe_free));
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_answer, &one, &h2), FACTS_HIT);
    assert_null(cache_ref_attach(&h2, NULL, probe_free));
    assert_null(cache_ref_attach(&h2, &loser, NULL));
    cache_ref_release(&h2);
    assert_int_equal(destroyed, 0);

    /* Replaced (refreshNow) while h1 holds the old value: the old attachment stays. */
    assert_int_equal(cache_get(c, "k", 1, 100, CACHE_REFRESH, fill_answer, &two, &h2), FACTS_MISS);
    assert_null(cache_ref_attachment(&h2)); /* the new value starts with none */
    p2.body = h2.body;
    assert_ptr_equal(cache_ref_attach(&h2, &p2, probe_free), &p2);
    assert_int_equal(destroyed, 0);
    assert_ptr_equal(cache_ref_attachment(&h1), &p1);
    /* The last reference to the old value goes: its attachment first, then the wipe. */
    assert_int_equal(track_mark("one-" MARKER), 1);
    cache_ref_release(&h1);
    assert_int_equal(destroyed, 1);
    assert_true(p1.intact);
    assert_int_equal(s_tagged_zeroed, 1);
    assert_int_equal(s_tagged_dirty, 0);

    /* Evicted while h2 holds the new value: the store's release is not the last. */
    expect_get(c, "x", 100, 0, &other, FACTS_MISS, 200, "other");
    expect_stats(c, 1, 1 + strlen("other"), 1);
    assert_int_equal(destroyed, 1);
    assert_string_equal(h2.body, "two-" MARKER);
    cache_ref_release(&h2);
    assert_int_equal(destroyed, 2);
    assert_true(p2.intact);

    /* Held by the store alone: cleared, the store's release is the last one. */
    assert_int_equal(cache_get(c, "x", 1, 100, 0, fill_answer, &other, &h1), FACTS_HIT);
    p3.body = h1.body;
    assert_ptr_equal(cache_ref_attach(&h1, &p3, probe_free), &p3);
    cache_ref_release(&h1);
    assert_int_equal(destroyed, 2);
    cache_clear(c);
    assert_int_equal(destroyed, 3);
    assert_true(p3.intact);
    cache_free(c);
    assert_int_equal(destroyed, 3); /* the loser was never attached, so never destroyed */
    assert_int_equal(s_marker_frees, 0);
    track_stop();
}

/* A value freed with the store destroys its attachment then. */
static void test_attachment_freed_with_store(void **state)
{
    struct cache *c = new_cache(4, 0, 0);
    struct answer one = {200, "one", 0};
    struct cache_ref h;
    int destroyed = 0;
    struct probe p = {.want = "one", .destroyed = &destroyed};

    (void)state;
    assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_answer, &one, &h), FACTS_MISS);
    p.body = h.body;
    assert_ptr_equal(cache_ref_attach(&h, &p, probe_free), &p);
    cache_ref_release(&h);
    assert_int_equal(destroyed, 0);
    cache_free(c);
    assert_int_equal(destroyed, 1);
    assert_true(p.intact);
}

#define ATTACHERS 16

struct attacher {
    pthread_t thread;
    struct gate *start; /* every attacher waits here, so they race */
    struct cache_ref v; /* its own reference */
    struct probe mine;
    void *got; /* what cache_ref_attach returned */
};

static void *attacher_run(void *arg)
{
    struct attacher *t = arg;

    pthread_mutex_lock(&t->start->mu);
    while (!t->start->open) {
        pthread_cond_wait(&t->start->cv, &t->start->mu);
    }
    pthread_mutex_unlock(&t->start->mu);
    t->got = cache_ref_attachment(&t->v);
    if (!t->got) {
        t->got = cache_ref_attach(&t->v, &t->mine, probe_free);
    }
    cache_ref_release(&t->v);
    return NULL;
}

/* Threads holding one value race to attach: one attachment wins, every thread gets it, the
 * losers keep their own, and the winner is destroyed once, with the last reference. */
static void test_attachment_race(void **state)
{
    struct cache *c = new_cache(4, 0, 0);
    struct answer one = {200, "raced", 0};
    struct attacher t[ATTACHERS];
    struct gate g;
    int destroyed = 0;
    struct probe *winner;
    int i;

    (void)state;
    gate_init(&g, 200, "unused");
    for (i = 0; i < ATTACHERS; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].start = &g;
        assert_int_equal(cache_get(c, "k", 1, 100, 0, fill_answer, &one, &t[i].v),
                         i ? FACTS_HIT : FACTS_MISS);
        t[i].mine.body = t[i].v.body;
        t[i].mine.want = "raced";
        t[i].mine.destroyed = &destroyed;
        assert_int_equal(pthread_create(&t[i].thread, NULL, attacher_run, &t[i]), 0);
    }
    gate_open(&g);
    for (i = 0; i < ATTACHERS; i++) {
        assert_int_equal(pthread_join(t[i].thread, NULL), 0);
    }
    winner = t[0].got;
    assert_non_null(winner);
    for (i = 0; i < ATTACHERS; i++) {
        assert_ptr_equal(t[i].got, winner);
    }
    assert_int_equal(destroyed, 0); /* the store still holds the value */
    cache_free(c);
    assert_int_equal(destroyed, 1);
    assert_true(winner->intact);
    gate_destroy(&g);
}

/* ---- fills led from outside cache_get (cache_lead / cache_complete) ---- */

static void complete_with(struct cache *c, struct cache_flight *lead, int status, const char *body,
                          enum facts_outcome outcome)
{
    struct cache_value v = {0};
    struct cache_ref r;

    v.kind = kind_of(status);
    v.status = status;
    v.len = strlen(body);
    v.body = xmemdup(body, v.len);
    assert_int_equal(cache_complete(c, lead, 1000, &v, &r), outcome);
    assert_null(v.body); /* taken */
    assert_int_equal(r.status, status);
    assert_string_equal(r.body, body);
    cache_ref_release(&r);
    cache_check_invariants(c);
}

static void test_lead_complete(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer never = {200, "must-not-be-fetched", 0};
    struct cache_flight *lead;
    struct cache_ref r;
    char key[16];

    (void)state;
    (void)snprintf(key, sizeof(key), "k1");
    assert_int_equal(cache_lead(c, key, strlen(key), 0, &lead, &r), FACTS_MISS);
    assert_non_null(lead);
    assert_null(r.blob);
    memset(key, 'x', sizeof(key) - 1); /* the flight keeps its own copy of the key */
    cache_check_invariants(c);
    /* While led, a second lead of the key does nothing and says another fill runs. */
    {
        struct cache_flight *other;

        assert_int_equal(cache_lead(c, "k1", 2, 0, &other, &r), FACTS_WAITED);
        assert_null(other);
    }
    complete_with(c, lead, 200, "v1", FACTS_MISS);
    expect_get(c, "k1", 1000, 0, &never, FACTS_HIT, 200, "v1");
    assert_int_equal(cache_lead(c, "k1", 2, 0, &lead, &r), FACTS_HIT);
    assert_null(lead);
    assert_string_equal(r.body, "v1");
    cache_ref_release(&r);
    /* CACHE_REFRESH leads over a fresh entry, which the result replaces. */
    assert_int_equal(cache_lead(c, "k1", 2, CACHE_REFRESH, &lead, &r), FACTS_MISS);
    complete_with(c, lead, 200, "v2", FACTS_MISS);
    expect_get(c, "k1", 1000, 0, &never, FACTS_HIT, 200, "v2");
    assert_int_equal(never.calls, 0);
    /* A failure is handed out, not stored, and drops the old entry as a fill's would. */
    s_now += 2000;
    assert_int_equal(cache_lead(c, "k1", 2, 0, &lead, &r), FACTS_MISS);
    complete_with(c, lead, 404, "gone", FACTS_MISS);
    expect_stats(c, 0, 0, 0);
    assert_int_equal(cache_lead(c, "k2", 2, CACHE_BYPASS, &lead, &r), FACTS_BYPASS);
    assert_null(lead);
    expect_stats(c, 0, 0, 0);
    cache_free(c);
}

static void test_lead_serves_stale(void **state)
{
    struct cache *c = new_cache(10, 0, 5000);
    struct answer a = {200, "old", 0};
    struct cache_flight *lead;
    struct cache_ref r;

    (void)state;
    expect_get(c, "k", 1000, 0, &a, FACTS_MISS, 200, "old");
    s_now += 1500; /* expired, within the stale window */
    assert_int_equal(cache_lead(c, "k", 1, 0, &lead, &r), FACTS_MISS);
    {
        struct cache_value v = {.kind = CACHE_TRANSIENT, .status = 503};

        v.body = xmemdup("down", 4);
        v.len = 4;
        assert_int_equal(cache_complete(c, lead, 1000, &v, &r), FACTS_STALE);
        assert_string_equal(r.body, "old");
        cache_ref_release(&r);
    }
    expect_stats(c, 1, 4, 0);
    cache_free(c);
}

/* A get of a key a batch leads waits for the batch's result: it never runs its own fill. */
static void test_lead_followers_wait(void **state)
{
    struct cache *c = new_cache(10, 0, 0);
    struct answer never = {200, "must-not-be-fetched", 0};
    struct worker w[4];
    struct cache_flight *lead;
    struct cache_ref r;

    (void)state;
    assert_int_equal(cache_lead(c, "batch-key", 9, 0, &lead, &r), FACTS_MISS);
    for (int i = 0; i < 4; i++) {
        worker_start(&w[i], c, "batch-key", 0, fill_answer, &never);
    }
    wait_waiters(c, 4);
    complete_with(c, lead, 200, "from-the-batch", FACTS_MISS);
    for (int i = 0; i < 4; i++) {
        worker_join(&w[i]);
        assert_int_equal(w[i].outcome, FACTS_WAITED);
        assert_string_equal(w[i].v.body, "from-the-batch");
        cache_ref_release(&w[i].v);
    }
    assert_int_equal(never.calls, 0);
    expect_stats(c, 1, strlen("batch-key") + strlen("from-the-batch"), 0);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_ttl_boundaries),
        cmocka_unit_test(test_ttl_zero_is_bypass),
        cmocka_unit_test(test_max_items_zero_is_bypass),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_item_bound),
        cmocka_unit_test(test_many_keys_grow_table),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_refresh_replaces),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_bypass),
        cmocka_unit_test(test_serve_stale),
        cmocka_unit_test(test_stale_off),
        cmocka_unit_test(test_refresh_fault_answers_fault),
        cmocka_unit_test(test_definite_failure_not_stale),
        cmocka_unit_test(test_kind_not_status),
        cmocka_unit_test(test_errors_not_stored),
        cmocka_unit_test(test_fill_without_body),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_real_clock_default),
        cmocka_unit_test(test_ahead_window),
        cmocka_unit_test(test_ahead_jitter),
        cmocka_unit_test(test_ahead_failure_keeps_value),
        cmocka_unit_test(test_single_flight_32),
        cmocka_unit_test(test_distinct_keys_in_parallel),
        cmocka_unit_test(test_error_handed_to_waiters),
        cmocka_unit_test(test_stale_handed_to_waiters),
        cmocka_unit_test(test_refresh_joins_flight),
        cmocka_unit_test(test_clear_during_flight),
        cmocka_unit_test(test_evicted_during_flight),
        cmocka_unit_test(test_table_grows_during_flight),
        cmocka_unit_test(test_stale_window_ends_during_fill),
        cmocka_unit_test(test_ahead_single_flight),
        cmocka_unit_test(test_stress_threads),
        cmocka_unit_test(test_wipe_detector_works),
        cmocka_unit_test(test_wipe_on_evict_replace_clear_free),
        cmocka_unit_test(test_wipe_flight_results),
        cmocka_unit_test(test_refs_outlive_entries),
        cmocka_unit_test(test_attachment_lifetime),
        cmocka_unit_test(test_attachment_freed_with_store),
        cmocka_unit_test(test_attachment_race),
        cmocka_unit_test(test_lead_complete),
        cmocka_unit_test(test_lead_serves_stale),
        cmocka_unit_test(test_lead_followers_wait),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
