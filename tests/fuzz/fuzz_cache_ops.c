/* Fuzz target for cache/cache.c: operation sequences checked against a trivial model.
 *
 * Input: 3 bytes of configuration (max_items 0..5, max_bytes 0 or 1..64, stale_max_ms), then
 * operations until the input ends:
 *   op % 4 == 0       get:     [op][key:3 flags:2 ahead:1 run:1][ttl:3 status:3][value length]
 *   op % 4 == 1       lead:    [op][key:3 flags:2 twice:1][ttl:3 status:3][value length]
 *                     cache_lead, and when it leads, the same fill's answer through
 *                     cache_complete: the store must end as a get with that fill would leave it
 *                     (same outcome, same answer).  twice: a second cache_lead of the key,
 *                     with the same flags, while the first leads: it must find the fill
 *                     running and do nothing (with the same flags no fresh entry can answer it:
 *                     the first found none, or was asked to refresh).
 *   op % 4 == 2       advance: [op][ms]  the injected clock moves forward
 *   op % 4 == 3       clear
 * The fill answers a body unique to its call (so a served value names the fill that made it) and
 * the status the input chose, with the kind extension/answer.c gives it (200 a value, 429 and
 * 5xx transient, others a failure that stands).  The model is a plain array of at most 8 keys
 * with linear scans, written from the contract in cache.h, not from cache.c.  After every
 * operation: the outcome, whether fill ran, the status and body served, and items/bytes/evictions
 * must match the model, and cache_check_invariants() must pass.  Any difference aborts.
 * Refresh-ahead (CACHE_AHEAD, CACHE_AHEAD_RUN): the refresh point is random within
 * [expiry - ttl/10, expiry - ttl/10 + ttl/20], so the model requires no claim before that band and
 * a claim at or past its end (once per stored value), takes the cache's answer inside it, and
 * checks that a run fetches exactly when a claim is open, as a refresh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/mem.h"

#define NKEYS    8
#define BODY_MAX 64

/* NOLINTNEXTLINE(readability-identifier-naming): libFuzzer entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_keys[NKEYS] = {"a", "bb", "ccc", "dddd", "key-e", "key-ff", "", "h"};
static const uint64_t s_ttls[8] = {0, 1, 2, 3, 10, 50, 1000, UINT64_MAX};
static const int s_statuses[8] = {200, 200, 200, 404, 500, 429, 403, 503};

struct model_entry {
    int present;
    char body[BODY_MAX];
    size_t len;
    uint64_t expiry;
    uint64_t used;
    uint64_t ttl;
    int claimed; /* its refresh-ahead was handed out */
};

struct model {
    struct model_entry e[NKEYS];
    size_t items;
    size_t bytes;
    uint64_t evictions;
    uint64_t tick;
};

struct run {
    size_t max_items;
    size_t max_bytes;
    uint64_t stale_max_ms;
    uint64_t now;
    unsigned seq;
    /* what the next fill answers, and what the last one did */
    int status;
    size_t len;
    int called;
    char body[BODY_MAX];
    struct model m;
};

static void mismatch(const char *what)
{
    fprintf(stderr, "fuzz_cache_ops: cache and model disagree: %s\n", what);
    abort();
}

static uint64_t run_now(void *ctx)
{
    return ((struct run *)ctx)->now;
}

static void fill(void *ctx, struct cache_value *out)
{
    struct run *r = ctx;
    int n;

    if (r->called) {
        mismatch("fill ran twice in one get");
    }
    r->called = 1;
    /* Unique per call, padded to the chosen length (at least the prefix). */
    n = snprintf(r->body, sizeof(r->body), "#%u:", ++r->seq);
    memset(r->body + n, 'x', sizeof(r->body) - (size_t)n);
    r->len = r->len > (size_t)n ? r->len : (size_t)n;
    if (r->len >= BODY_MAX) {
        r->len = BODY_MAX - 1;
    }
    r->body[r->len] = '\0';
    out->kind = r->status == 200                       ? CACHE_VALUE
                : r->status == 429 || r->status >= 500 ? CACHE_TRANSIENT
                                                       : CACHE_FAILED;
    out->status = r->status;
    out->len = r->len;
    out->body = xmemdup(r->body, r->len);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static size_t model_size(int k, size_t len)
{
    return strlen(s_keys[k]) + len;
}

static void model_drop(struct model *m, int k)
{
    m->items--;
    m->bytes -= model_size(k, m->e[k].len);
    m->e[k].present = 0;
}

static void model_evict_lru(struct model *m)
{
    int victim = -1;
    int k;

    for (k = 0; k < NKEYS; k++) {
        if (m->e[k].present && (victim < 0 || m->e[k].used < m->e[victim].used)) {
            victim = k;
        }
    }
    model_drop(m, victim);
    m->evictions++;
}

/* The store as cache.h describes it: returns the outcome, whether fill runs, and the status and
 * body the caller gets (*body NULL: the fill's own answer). */
/* Whether a CACHE_AHEAD hit on e may (1), must (2) or must not (0) claim its refresh-ahead. */
static int model_claim(const struct run *r, const struct model_entry *e)
{
    uint64_t w = e->ttl / 10;
    uint64_t lo;

    if (e->claimed || w == 0 || e->expiry == UINT64_MAX) {
        return 0;
    }
    lo = e->expiry - w;
    return r->now < lo ? 0 : r->now >= lo + w / 2 ? 2 : 1;
}

/* got_due is the cache's refresh_due, taken where the contract leaves it open; *due_ok is set
 * to 0 when it breaks the contract.  *empty: the answer must be the empty ref (no fill ran). */
static enum facts_outcome model_get(struct run *r, int k, uint64_t ttl, unsigned flags,
                                    int *fill_runs, int *status, const char **body, size_t *len,
                                    int got_due, int *due_ok, int *empty)
{
    struct model *m = &r->m;
    struct model_entry *e = &m->e[k];
    int transient = r->status == 429 || r->status >= 500;
    size_t size;

    *fill_runs = 1;
    *status = r->status;
    *body = NULL; /* the fill's own answer */
    *due_ok = !got_due;
    *empty = 0;
    if ((flags & CACHE_AHEAD_RUN) &&
        (r->max_items == 0 || (flags & CACHE_BYPASS) || ttl == 0 || !e->present || !e->claimed)) {
        *fill_runs = 0;
        *empty = 1;
        return FACTS_MISS;
    }
    if (flags & CACHE_AHEAD_RUN) {
        flags |= CACHE_REFRESH;
    }
    if (r->max_items == 0 || (flags & CACHE_BYPASS) || ttl == 0) {
        return FACTS_BYPASS;
    }
    if (e->present && !(flags & CACHE_REFRESH) && r->now < e->expiry) {
        *fill_runs = 0;
        *status = 200;
        *body = e->body;
        *len = e->len;
        e->used = ++m->tick;
        if (flags & CACHE_AHEAD) {
            int may = model_claim(r, e);

            *due_ok = may == 2 ? got_due : may == 1 ? 1 : !got_due;
            if (got_due && may) {
                e->claimed = 1;
            }
        }
        return FACTS_HIT;
    }
    if (e->present && r->now >= sat_add(e->expiry, r->stale_max_ms)) {
        model_drop(m, k);
    }
    if (r->status != 200) {
        if (flags & CACHE_REFRESH) {
            return FACTS_MISS; /* the caller asked for fresh data: the fault, entry untouched */
        }
        if (transient && e->present) {
            *status = 200;
            *body = e->body;
            *len = e->len;
            e->used = ++m->tick;
            return FACTS_STALE;
        }
        if (e->present) {
            model_drop(m, k);
        }
        return FACTS_MISS;
    }
    if (e->present) {
        model_drop(m, k);
    }
    size = model_size(k, r->len);
    if (r->max_bytes && size > r->max_bytes) {
        return FACTS_MISS;
    }
    while (m->items >= r->max_items || (r->max_bytes && m->bytes + size > r->max_bytes)) {
        model_evict_lru(m);
    }
    e->present = 1;
    e->claimed = 0;
    e->ttl = ttl;
    memcpy(e->body, r->body, r->len + 1);
    e->len = r->len;
    e->expiry = sat_add(r->now, ttl);
    e->used = ++m->tick;
    m->items++;
    m->bytes += size;
    return FACTS_MISS;
}

/* The answer v must be the model's: status and body (NULL: the fill's own answer), NUL-ended;
 * then v is released.  what names the operation in a mismatch. */
static void expect_served(const struct run *r, struct cache_ref *v, int status, const char *body,
                          size_t body_len, const char *what)
{
    if (!body) {
        body = r->body;
        body_len = r->len;
    }
    if (v->status != status || v->len != body_len || memcmp(v->body, body, body_len) != 0 ||
        v->body[v->len] != '\0') {
        mismatch(what);
    }
    cache_ref_release(v);
}

static void do_get(struct cache *c, struct run *r, uint8_t a, uint8_t b, uint8_t len)
{
    int k = a & 7;
    unsigned flags =
        ((a >> 3) & 3) | ((a & 0x20) ? CACHE_AHEAD : 0) | ((a & 0x40) ? CACHE_AHEAD_RUN : 0);
    uint64_t ttl = s_ttls[b & 7];
    struct cache_ref v;
    enum facts_outcome got;
    enum facts_outcome want;
    int fill_runs;
    int status;
    const char *body;
    size_t body_len = 0;
    int due_ok;
    int empty;

    r->status = s_statuses[(b >> 3) & 7];
    r->len = len % BODY_MAX;
    r->called = 0;
    got = cache_get(c, s_keys[k], strlen(s_keys[k]), ttl, flags, fill, r, &v);
    /* The model runs second: it needs the answer the fill just gave. */
    want = model_get(r, k, ttl, flags, &fill_runs, &status, &body, &body_len, v.refresh_due,
                     &due_ok, &empty);
    if (got != want) {
        mismatch("outcome");
    }
    if (r->called != fill_runs) {
        mismatch("whether fill ran");
    }
    if (!due_ok) {
        mismatch("refresh-ahead claim");
    }
    if (empty) {
        if (v.blob || v.body || v.status || v.len) {
            mismatch("a run with nothing to refresh answered something");
        }
        return;
    }
    expect_served(r, &v, status, body, body_len, "value served");
}

/* cache_lead / cache_complete against the same model as a get: a lead is a get whose fill runs
 * outside the cache (no refresh-ahead; a TTL of 0 comes as CACHE_BYPASS, as cache.h asks). */
static void do_lead(struct cache *c, struct run *r, uint8_t a, uint8_t b, uint8_t len)
{
    int k = a & 7;
    unsigned flags = (a >> 3) & (CACHE_REFRESH | CACHE_BYPASS);
    uint64_t ttl = s_ttls[b & 7];
    struct cache_flight *lead = NULL;
    struct cache_ref v;
    struct cache_value result;
    struct cache_stats st;
    enum facts_outcome got;
    enum facts_outcome want;
    int fill_runs;
    int status;
    const char *body;
    size_t body_len = 0;
    int due_ok;
    int empty;

    if (ttl == 0) {
        flags |= CACHE_BYPASS;
    }
    r->status = s_statuses[(b >> 3) & 7];
    r->len = len % BODY_MAX;
    r->called = 0;
    memset(&v, 0, sizeof(v));
    got = cache_lead(c, s_keys[k], strlen(s_keys[k]), flags, &lead, &v);
    if (got == FACTS_MISS) {
        if (lead == NULL) {
            mismatch("a lead without its flight");
        }
        if (v.blob || v.body || v.len) {
            mismatch("a lead's miss answered something");
        }
        if (a & 0x20) {
            struct cache_flight *second = NULL;
            struct cache_ref w;

            memset(&w, 0, sizeof(w));
            if (cache_lead(c, s_keys[k], strlen(s_keys[k]), flags, &second, &w) != FACTS_WAITED ||
                second != NULL || w.blob != NULL || w.body != NULL || w.len != 0) {
                mismatch("a second lead while the first runs");
            }
            cache_stats(c, &st);
            if (st.flights != 1) {
                mismatch("flights while a lead runs");
            }
        }
        memset(&result, 0, sizeof(result));
        fill(r, &result);
        got = cache_complete(c, lead, ttl, &result, &v);
    }
    want = model_get(r, k, ttl, flags, &fill_runs, &status, &body, &body_len, 0, &due_ok, &empty);
    if (got != want) {
        mismatch("lead outcome");
    }
    if (r->called != fill_runs && want != FACTS_BYPASS) {
        mismatch("whether the lead led");
    }
    if (want == FACTS_BYPASS) {
        if (r->called || v.blob || v.body) {
            mismatch("a bypassing lead did something");
        }
        return;
    }
    expect_served(r, &v, status, body, body_len, "value a lead served");
}

static void check(struct cache *c, const struct run *r)
{
    struct cache_stats st;

    cache_check_invariants(c);
    cache_stats(c, &st);
    if (st.items != r->m.items || st.bytes != r->m.bytes || st.evictions != r->m.evictions ||
        st.flights != 0 || st.waiters != 0) {
        mismatch("stats");
    }
}

/* NOLINTNEXTLINE(readability-identifier-naming) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run *r;
    struct cache_opts o;
    struct cache *c;
    size_t i = 3;

    if (size < 3) {
        return 0;
    }
    r = xcalloc(1, sizeof(*r));
    r->max_items = data[0] % 6;
    r->max_bytes = data[1] % 4 == 0 ? 0 : (size_t)(data[1] % 64) + 1;
    r->stale_max_ms = (uint64_t)(data[2] % 8) * 5;
    r->now = 1000;
    memset(&o, 0, sizeof(o));
    o.max_items = r->max_items;
    o.max_bytes = r->max_bytes;
    o.stale_max_ms = r->stale_max_ms;
    o.now_ms = run_now;
    o.clock_ctx = r;
    c = cache_new(&o);
    check(c, r);
    while (i < size) {
        uint8_t op = data[i++];

        switch (op % 4) {
        case 0:
        case 1:
            if (size - i < 3) {
                i = size;
                break;
            }
            if (op % 4 == 0) {
                do_get(c, r, data[i], data[i + 1], data[i + 2]);
            } else {
                do_lead(c, r, data[i], data[i + 1], data[i + 2]);
            }
            i += 3;
            break;
        case 2:
            if (i < size) {
                r->now += data[i++];
            }
            break;
        default:
            cache_clear(c);
            memset(r->m.e, 0, sizeof(r->m.e));
            r->m.items = 0;
            r->m.bytes = 0;
            break;
        }
        check(c, r);
    }
    cache_free(c);
    free(r);
    return 0;
}
