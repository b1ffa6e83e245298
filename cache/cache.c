/* cache/cache.c: the TTL/LRU store with single-flight misses and serve-stale (see cache.h).
 *
 * Layout: one chained hash table whose buckets hold two chains, the stored entries and the open
 * flights (fills in progress) for keys hashing there.  Entries are also on one doubly-linked LRU
 * list, most recently used at the head.  Flights are separate from entries so that an entry can be
 * evicted, replaced or cleared while a fill for its key is running without touching the waiters.
 *
 * A flight lives on the heap: its leader may return before every follower has taken its reference
 * to the result, so the last one out (leader or follower) frees it.  While it is in the table its
 * key points at the leader's argument, which stays valid because the leader removes the flight from
 * the table before it returns.  cache_clear() detaches flights from the table (new gets start new
 * fills) and bumps a generation number so the detached fills store nothing when they complete.
 *
 * Values are blobs: one allocation holding a reference count, the kind, the status, the length
 * and the body (NUL-terminated), never written after it is made.  References are taken under the
 * lock (the entry or flight holding one cannot go meanwhile) and dropped anywhere, without it; the
 * count is atomic for that reason.  The thread that drops the last one wipes and frees the blob.
 * The one field written later is the attachment slot (cache.h): set once by a compare-and-swap,
 * destroyed by the last release before the wipe.
 */
#include "cache/cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "common/str.h"

#define MIN_BUCKETS 16

struct cache_blob {
    atomic_uint refs; /* references held: entries, flights, callers */
    enum cache_kind kind;
    int status;
    void *_Atomic attached;             /* the caller's attachment (cache.h); NULL: none */
    cache_attach_free_fn attached_free; /* written once, by the attach that set attached */
    size_t len;
    char body[]; /* len bytes and a NUL */
};

struct entry {
    struct entry *hnext;    /* next in the bucket's entry chain */
    struct entry *lru_prev; /* more recently used neighbour; NULL at the head */
    struct entry *lru_next; /* less recently used neighbour; NULL at the tail */
    uint64_t hash;
    uint64_t expiry_ms;     /* fresh while now < expiry_ms */
    uint64_t used;          /* tick of the last use: strictly decreasing from head to tail */
    uint64_t ahead_ms;      /* refresh-ahead point: a CACHE_AHEAD hit from here on may claim it */
    int ahead_claimed;      /* the one refresh-ahead of this entry was handed out */
    struct cache_blob *val; /* one reference, a CACHE_VALUE */
    size_t keylen;
    char key[]; /* keylen bytes and a NUL; wiped with the entry */
};

struct cache_flight {
    struct cache_flight *hnext; /* next in the bucket's flight chain, while in_table */
    uint64_t hash;
    const void *key; /* the leader's key argument, or owned_key: only read while in_table */
    char *owned_key; /* cache_lead's copy of the key (its leader returns before the fill ends) */
    size_t keylen;
    uint64_t gen;     /* c->gen when the fill started: a clear since then means "do not keep" */
    unsigned waiters; /* followers not yet gone with their copy */
    int in_table;
    int refresh;                /* the leader asked for fresh data (CACHE_REFRESH) */
    int done;                   /* result is final; followers may copy it */
    enum facts_outcome outcome; /* what followers report: WAITED, or STALE if stale was served */
    struct cache_blob *result;  /* one reference once done */
    pthread_cond_t cv;
};

struct bucket {
    struct entry *entries;
    struct cache_flight *flights;
};

struct cache {
    pthread_mutex_t mu;
    struct bucket *buckets;
    size_t nbuckets; /* a power of two */
    struct entry *lru_head;
    struct entry *lru_tail;
    size_t items;
    size_t bytes; /* sum of keylen + val->len over the entries */
    uint64_t evictions;
    uint64_t tick;
    uint64_t gen;
    uint64_t rng;    /* xorshift64 state for the refresh-ahead jitter; never 0 */
    size_t nflights; /* flights in the table */
    size_t nwaiters; /* followers waiting on or copying from any flight */
    size_t max_items;
    size_t max_bytes;
    uint64_t stale_max_ms;
    uint64_t (*now_ms)(void *clock_ctx);
    void *clock_ctx;
};

static uint64_t default_now_ms(void *ctx)
{
    (void)ctx;
    return clock_mono_ms();
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Word-at-a-time multiply-xorshift hash.  Keys come from the function's own code through the
 * token-checked loopback API, so no adversary picks them and a keyed hash is not needed. */
static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len;
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    w = 0;
    if (len) {
        memcpy(&w, p, len);
    }
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int key_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static size_t entry_size(const struct entry *e)
{
    return e->keylen + e->val->len;
}

void cache_value_release(struct cache_value *v)
{
    if (!v) {
        return;
    }
    /* The NUL too: the whole allocation we know of is wiped. */
    xfree_secret(v->body, v->body ? v->len + 1 : 0);
    v->body = NULL;
    v->len = 0;
}

/* Makes a blob of v (one reference, the caller's; a NULL body is an empty one; no attachment),
 * wipes v's body and zeroes *v. */
static struct cache_blob *blob_from_value(struct cache_value *v)
{
    struct cache_blob *b;

    if (!v->body) {
        v->len = 0;
    }
    assert(v->len < SIZE_MAX - sizeof(*b) - 1);
    b = xmalloc(sizeof(*b) + v->len + 1);
    /* The header's padding too: no byte of a blob is left undefined (memory checkers, and the
     * tests that scan freed blocks for a secret read every byte). */
    memset(b, 0, sizeof(*b));
    atomic_init(&b->refs, 1);
    atomic_init(&b->attached, NULL);
    b->attached_free = NULL;
    b->kind = v->kind;
    b->status = v->status;
    b->len = v->len;
    if (v->len) {
        memcpy(b->body, v->body, v->len);
    }
    b->body[v->len] = '\0';
    cache_value_release(v);
    v->kind = CACHE_FAILED;
    v->status = 0;
    return b;
}

/* Takes one more reference.  The caller holds one already, or the lock over a holder. */
static struct cache_blob *blob_ref(struct cache_blob *b)
{
    /* Relaxed: the new holder got the pointer through the lock or from another holder, which
     * orders everything it reads of the (immutable) blob. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void cache_blob_release(struct cache_blob *b)
{
    /* acq_rel: every holder's reads happen before the last one's wipe. */
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        /* Relaxed: the acq_rel above orders the attach (and its attached_free) before this. */
        void *a = atomic_load_explicit(&b->attached, memory_order_relaxed);

        if (a) {
            b->attached_free(a);
        }
        xfree_secret(b, sizeof(*b) + b->len + 1);
    }
}

void *cache_ref_attachment(const struct cache_ref *r)
{
    /* Acquire: pairs with the attach's release, so the attachment is seen fully made. */
    return r && r->blob ? atomic_load_explicit(&r->blob->attached, memory_order_acquire) : NULL;
}

void *cache_ref_attach(const struct cache_ref *r, void *attachment, cache_attach_free_fn free_fn)
{
    void *cur = NULL;

    if (!r || !r->blob || !attachment || !free_fn) {
        return NULL;
    }
    if (atomic_compare_exchange_strong_explicit(&r->blob->attached, &cur, attachment,
                                                memory_order_acq_rel, memory_order_acquire)) {
        /* Only the winner writes it, and only the last release reads it: that release comes
         * after the winner's own (the caller holds r), which orders this write before it. */
        r->blob->attached_free = free_fn;
        return attachment;
    }
    return cur;
}

/* Gives *out the reference b (owned by the caller until now). */
static void ref_set(struct cache_ref *out, struct cache_blob *b)
{
    out->kind = b->kind;
    out->status = b->status;
    out->body = b->body;
    out->len = b->len;
    out->blob = b;
}

void cache_ref_release(struct cache_ref *r)
{
    if (!r) {
        return;
    }
    cache_blob_release(r->blob);
    memset(r, 0, sizeof(*r));
}

void cache_ref_adopt(struct cache_value *v, struct cache_ref *out)
{
    ref_set(out, blob_from_value(v));
}

static void entry_free(struct entry *e)
{
    if (!e) {
        return;
    }
    cache_blob_release(e->val);
    /* The key is secret-adjacent (it names the secret); the whole block goes. */
    xfree_secret(e, sizeof(*e) + e->keylen + 1);
}

static struct bucket *bucket_of(struct cache *c, uint64_t hash)
{
    return &c->buckets[hash & (c->nbuckets - 1)];
}

static struct entry *entry_find(struct cache *c, uint64_t hash, const void *key, size_t keylen)
{
    struct entry *e;

    for (e = bucket_of(c, hash)->entries; e; e = e->hnext) {
        if (e->hash == hash && key_equal(e->key, e->keylen, key, keylen)) {
            return e;
        }
    }
    return NULL;
}

static struct cache_flight *flight_find(struct cache *c, uint64_t hash, const void *key,
                                        size_t keylen)
{
    struct cache_flight *f;

    for (f = bucket_of(c, hash)->flights; f; f = f->hnext) {
        if (f->hash == hash && key_equal(f->key, f->keylen, key, keylen)) {
            return f;
        }
    }
    return NULL;
}

static void lru_unlink(struct cache *c, struct entry *e)
{
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    } else {
        c->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    } else {
        c->lru_tail = e->lru_prev;
    }
    e->lru_prev = NULL;
    e->lru_next = NULL;
}

static void lru_push_head(struct cache *c, struct entry *e)
{
    e->used = ++c->tick;
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head) {
        c->lru_head->lru_prev = e;
    } else {
        c->lru_tail = e;
    }
    c->lru_head = e;
}

static void lru_touch(struct cache *c, struct entry *e)
{
    if (c->lru_head != e) {
        lru_unlink(c, e);
        lru_push_head(c, e);
    } else {
        e->used = ++c->tick;
    }
}

/* Unlinks e from the table and the list and wipes it. */
static void entry_drop(struct cache *c, struct entry *e)
{
    struct entry **pp = &bucket_of(c, e->hash)->entries;

    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    lru_unlink(c, e);
    c->items--;
    c->bytes -= entry_size(e);
    entry_free(e);
}

static void table_grow(struct cache *c)
{
    size_t n = c->nbuckets * 2;
    struct bucket *nb = xcalloc(n, sizeof(*nb));
    size_t i;

    for (i = 0; i < c->nbuckets; i++) {
        struct entry *e = c->buckets[i].entries;
        struct cache_flight *f = c->buckets[i].flights;

        while (e) {
            struct entry *next = e->hnext;
            struct bucket *b = &nb[e->hash & (n - 1)];

            e->hnext = b->entries;
            b->entries = e;
            e = next;
        }
        while (f) {
            struct cache_flight *next = f->hnext;
            struct bucket *b = &nb[f->hash & (n - 1)];

            f->hnext = b->flights;
            b->flights = f;
            f = next;
        }
    }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

/* Takes ownership of e (its key and value set): evicts least recently used entries until it fits,
 * then links it in as the most recently used.  The caller has checked e fits max_bytes alone and
 * that no entry for the key exists. */
static void entry_insert(struct cache *c, struct entry *e)
{
    size_t size = entry_size(e);
    struct bucket *b;

    while (c->lru_tail &&
           (c->items >= c->max_items || (c->max_bytes && c->bytes + size > c->max_bytes))) {
        entry_drop(c, c->lru_tail);
        c->evictions++;
    }
    if (c->items >= c->nbuckets) {
        table_grow(c);
    }
    b = bucket_of(c, e->hash);
    e->hnext = b->entries;
    b->entries = e;
    lru_push_head(c, e);
    c->items++;
    c->bytes += size;
}

static void flight_unlink(struct cache *c, struct cache_flight *f)
{
    struct cache_flight **pp = &bucket_of(c, f->hash)->flights;

    while (*pp != f) {
        pp = &(*pp)->hnext;
    }
    *pp = f->hnext;
    f->hnext = NULL;
    f->in_table = 0;
    c->nflights--;
}

static void flight_free(struct cache_flight *f)
{
    cache_blob_release(f->result);
    if (f->owned_key) {
        xfree_secret(f->owned_key, f->keylen + 1);
    }
    pthread_cond_destroy(&f->cv);
    free(f);
}

struct cache *cache_new(const struct cache_opts *opts)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    assert(opts);
    pthread_mutex_init(&c->mu, NULL);
    c->nbuckets = MIN_BUCKETS;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    c->max_items = opts->max_items;
    c->max_bytes = opts->max_bytes;
    c->stale_max_ms = opts->stale_max_ms;
    c->now_ms = opts->now_ms ? opts->now_ms : default_now_ms;
    c->clock_ctx = opts->clock_ctx;
    /* Jitter, not a secret: environments started together only need different seeds. */
    c->rng = (clock_mono_ns() ^ (uint64_t)(uintptr_t)c) | 1;
    return c;
}

/* Wipes every entry and detaches every flight; called with the lock held. */
static void clear_locked(struct cache *c)
{
    size_t i;

    while (c->lru_head) {
        entry_drop(c, c->lru_head);
    }
    for (i = 0; i < c->nbuckets; i++) {
        while (c->buckets[i].flights) {
            flight_unlink(c, c->buckets[i].flights);
        }
    }
    c->gen++;
}

void cache_free(struct cache *c)
{
    if (!c) {
        return;
    }
    /* No call may be in flight (contract), so no flight is left to detach. */
    assert(c->nflights == 0 && c->nwaiters == 0);
    clear_locked(c);
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void cache_clear(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    clear_locked(c);
    pthread_mutex_unlock(&c->mu);
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    out->items = c->items;
    out->bytes = c->bytes;
    out->evictions = c->evictions;
    out->flights = c->nflights;
    out->waiters = c->nwaiters;
    pthread_mutex_unlock(&c->mu);
}

/* Calls fill and makes its result a blob (one reference, the caller's); the fill's own body is
 * wiped.  A NULL body becomes an empty one. */
static struct cache_blob *run_fill(cache_fill_fn fill, void *fill_ctx)
{
    struct cache_value res;

    memset(&res, 0, sizeof(res));
    fill(fill_ctx, &res);
    return blob_from_value(&res);
}

/* The refresh-ahead point of a value stored at now with ttl_ms (see cache.h); called with the
 * lock held (it steps the jitter generator). */
static uint64_t ahead_point(struct cache *c, uint64_t now, uint64_t ttl_ms)
{
    uint64_t window = ttl_ms / 10;
    uint64_t expiry = sat_add(now, ttl_ms);

    if (window == 0 || expiry == UINT64_MAX) {
        return UINT64_MAX;
    }
    return expiry - window + xorshift64(&c->rng) % (window / 2 + 1);
}

/* Follower: waits for the flight's result and takes a reference to it.  Called and returns with
 * the lock. */
static enum facts_outcome follow(struct cache *c, struct cache_flight *f, struct cache_ref *out)
{
    enum facts_outcome outcome;

    f->waiters++;
    c->nwaiters++;
    while (!f->done) {
        pthread_cond_wait(&f->cv, &c->mu);
    }
    ref_set(out, blob_ref(f->result));
    outcome = f->outcome;
    f->waiters--;
    c->nwaiters--;
    if (f->waiters == 0) {
        /* The leader left already (done is set before it drops the lock for good). */
        flight_free(f);
    }
    return outcome;
}

/* Builds, without the lock, the entry a CACHE_VALUE result would be stored as (sharing res), or
 * NULL when the result is not storable (a failure, or bigger than max_bytes on its own). */
static struct entry *entry_prepare(struct cache *c, uint64_t hash, const void *key, size_t keylen,
                                   struct cache_blob *res)
{
    struct entry *e;

    if (res->kind != CACHE_VALUE) {
        return NULL;
    }
    if (c->max_bytes && (keylen > c->max_bytes || res->len > c->max_bytes - keylen)) {
        return NULL;
    }
    e = xcalloc(1, sizeof(*e) + keylen + 1);
    e->hash = hash;
    e->keylen = keylen;
    if (keylen) {
        memcpy(e->key, key, keylen);
    }
    e->val = blob_ref(res);
    return e;
}

/* Leader: settles the flight with the fill's result res (one reference, owned), fills *out and
 * returns the leader's outcome.  Called and returns with the lock held; fresh is the prepared
 * entry or NULL. */
static enum facts_outcome settle(struct cache *c, struct cache_flight *f, struct entry *fresh,
                                 uint64_t ttl_ms, struct cache_blob *res, struct cache_ref *out)
{
    enum facts_outcome outcome = FACTS_MISS;
    uint64_t now = c->now_ms(c->clock_ctx);
    struct entry *old = NULL;

    if (f->in_table) {
        flight_unlink(c, f);
        old = entry_find(c, f->hash, f->key, f->keylen);
    }
    /* A clear since the fill began: hand the result out, keep nothing, touch nothing. */
    if (f->gen != c->gen) {
        old = NULL;
        entry_free(fresh);
        fresh = NULL;
    }
    if (old && now >= sat_add(old->expiry_ms, c->stale_max_ms)) {
        entry_drop(c, old);
        old = NULL;
    }
    if (res->kind != CACHE_VALUE && f->refresh) {
        /* A refresh that failed: the caller asked for fresh data and gets the fault; the entry
         * stays exactly as it was, for plain reads and their stale rules. */
        old = NULL;
    }
    if (res->kind == CACHE_VALUE) {
        if (old) {
            entry_drop(c, old); /* replaced, or too big to keep: either way outdated */
        }
        if (fresh) {
            fresh->expiry_ms = sat_add(now, ttl_ms);
            fresh->ahead_ms = ahead_point(c, now, ttl_ms);
            entry_insert(c, fresh);
        }
    } else if (res->kind == CACHE_TRANSIENT && old) {
        /* Serve the old value instead of the fault; it stays stored and keeps its expiry. */
        cache_blob_release(res);
        res = blob_ref(old->val);
        lru_touch(c, old);
        outcome = FACTS_STALE;
    } else if (old) {
        /* A failure that stands (not found after a delete, denied after a policy change): the
         * old value must not be served any longer. */
        entry_drop(c, old);
    }

    f->outcome = outcome == FACTS_STALE ? FACTS_STALE : FACTS_WAITED;
    f->done = 1;
    if (f->waiters == 0) {
        flight_free(f);
    } else {
        f->result = blob_ref(res);
        pthread_cond_broadcast(&f->cv);
    }
    ref_set(out, res);
    return outcome;
}

/* Opens a flight for key (the leader's argument) in the table; called with the lock held. */
static struct cache_flight *flight_start(struct cache *c, uint64_t hash, const void *key,
                                         size_t keylen, int refresh)
{
    struct cache_flight *f = xcalloc(1, sizeof(*f));

    pthread_cond_init(&f->cv, NULL);
    f->hash = hash;
    f->key = key;
    f->keylen = keylen;
    f->gen = c->gen;
    f->refresh = refresh;
    f->in_table = 1;
    f->hnext = bucket_of(c, hash)->flights;
    bucket_of(c, hash)->flights = f;
    c->nflights++;
    return f;
}

/* A CACHE_AHEAD hit on the fresh entry e: claims its refresh-ahead if the point is reached, it is
 * not claimed yet and no fill of the key runs (that fill is the refresh).  Called with the lock
 * held; returns whether it claimed. */
static int ahead_claim(struct cache *c, struct entry *e, uint64_t now)
{
    if (e->ahead_claimed || now < e->ahead_ms || flight_find(c, e->hash, e->key, e->keylen)) {
        return 0;
    }
    e->ahead_claimed = 1;
    return 1;
}

enum facts_outcome cache_get(struct cache *c, const void *key, size_t keylen, uint64_t ttl_ms,
                             unsigned flags, cache_fill_fn fill, void *fill_ctx,
                             struct cache_ref *out)
{
    uint64_t hash;
    uint64_t now;
    struct entry *e;
    struct entry *fresh;
    struct cache_flight *f;
    struct cache_blob *res;
    enum facts_outcome outcome;

    assert(c && fill && out && (key || keylen == 0));
    memset(out, 0, sizeof(*out));
    if ((flags & CACHE_PEEK) &&
        ((flags & (CACHE_BYPASS | CACHE_REFRESH)) || c->max_items == 0 || ttl_ms == 0)) {
        return FACTS_MISS;
    }
    if ((flags & CACHE_AHEAD_RUN) && ((flags & CACHE_BYPASS) || c->max_items == 0 || ttl_ms == 0)) {
        return FACTS_MISS; /* nothing is stored, so no refresh was claimed */
    }
    if ((flags & CACHE_BYPASS) || c->max_items == 0 || ttl_ms == 0) {
        ref_set(out, run_fill(fill, fill_ctx));
        return FACTS_BYPASS;
    }
    hash = hash_key(key, keylen);

    pthread_mutex_lock(&c->mu);
    now = c->now_ms(c->clock_ctx);
    e = entry_find(c, hash, key, keylen);
    if (flags & CACHE_AHEAD_RUN) {
        if (!e || !e->ahead_claimed || flight_find(c, hash, key, keylen)) {
            /* Gone, replaced since the claim, or another fill is already refreshing it. */
            pthread_mutex_unlock(&c->mu);
            return FACTS_MISS;
        }
        flags = (flags & ~(unsigned)CACHE_PEEK) | CACHE_REFRESH;
    }
    if (e && !(flags & CACHE_REFRESH) && now < e->expiry_ms) {
        lru_touch(c, e);
        ref_set(out, blob_ref(e->val));
        out->refresh_due = (flags & CACHE_AHEAD) && ahead_claim(c, e, now);
        pthread_mutex_unlock(&c->mu);
        return FACTS_HIT;
    }
    if (flags & CACHE_PEEK) {
        pthread_mutex_unlock(&c->mu);
        return FACTS_MISS;
    }
    if (e && now >= sat_add(e->expiry_ms, c->stale_max_ms)) {
        entry_drop(c, e); /* too old even to be served stale: nothing left to keep it for */
    }
    f = flight_find(c, hash, key, keylen);
    if (f) {
        /* A refresh joins too: the running fill is as fresh as a new one would be. */
        outcome = follow(c, f, out);
        if (!(flags & CACHE_REFRESH) && out->kind == CACHE_TRANSIENT &&
            (e = entry_find(c, hash, key, keylen)) &&
            now < sat_add(e->expiry_ms, c->stale_max_ms)) {
            /* A refresh's fault, handed to a plain read of an expired entry: the stale rules
             * of plain reads still hold for it. */
            cache_ref_release(out);
            ref_set(out, blob_ref(e->val));
            lru_touch(c, e);
            outcome = FACTS_STALE;
        }
        pthread_mutex_unlock(&c->mu);
        return outcome;
    }
    f = flight_start(c, hash, key, keylen, (flags & CACHE_REFRESH) != 0);
    pthread_mutex_unlock(&c->mu);

    res = run_fill(fill, fill_ctx);
    fresh = entry_prepare(c, hash, key, keylen, res);

    pthread_mutex_lock(&c->mu);
    outcome = settle(c, f, fresh, ttl_ms, res, out);
    pthread_mutex_unlock(&c->mu);
    return outcome;
}

enum facts_outcome cache_lead(struct cache *c, const void *key, size_t keylen, unsigned flags,
                              struct cache_flight **lead, struct cache_ref *out)
{
    uint64_t hash;
    uint64_t now;
    struct entry *e;
    char *copy;

    assert(c && lead && out && (key || keylen == 0));
    *lead = NULL;
    memset(out, 0, sizeof(*out));
    if ((flags & CACHE_BYPASS) || c->max_items == 0) {
        return FACTS_BYPASS;
    }
    hash = hash_key(key, keylen);
    pthread_mutex_lock(&c->mu);
    now = c->now_ms(c->clock_ctx);
    e = entry_find(c, hash, key, keylen);
    if (e && !(flags & CACHE_REFRESH) && now < e->expiry_ms) {
        lru_touch(c, e);
        ref_set(out, blob_ref(e->val));
        pthread_mutex_unlock(&c->mu);
        return FACTS_HIT;
    }
    if (e && now >= sat_add(e->expiry_ms, c->stale_max_ms)) {
        entry_drop(c, e);
    }
    if (flight_find(c, hash, key, keylen)) {
        pthread_mutex_unlock(&c->mu);
        return FACTS_WAITED;
    }
    copy = xmalloc(keylen + 1);
    if (keylen) {
        memcpy(copy, key, keylen);
    }
    copy[keylen] = '\0';
    *lead = flight_start(c, hash, copy, keylen, (flags & CACHE_REFRESH) != 0);
    (*lead)->owned_key = copy;
    pthread_mutex_unlock(&c->mu);
    return FACTS_MISS;
}

enum facts_outcome cache_complete(struct cache *c, struct cache_flight *lead, uint64_t ttl_ms,
                                  struct cache_value *result, struct cache_ref *out)
{
    struct cache_blob *res;
    struct entry *fresh;
    enum facts_outcome outcome;

    assert(c && lead && result && out);
    memset(out, 0, sizeof(*out));
    res = blob_from_value(result);
    fresh = ttl_ms ? entry_prepare(c, lead->hash, lead->key, lead->keylen, res) : NULL;
    pthread_mutex_lock(&c->mu);
    outcome = settle(c, lead, fresh, ttl_ms, res, out);
    pthread_mutex_unlock(&c->mu);
    return outcome;
}

static void check_failed(const char *what, int line)
{
    (void)fprintf(stderr, "cache_check_invariants: %s (cache.c:%d)\n", what, line);
    abort();
}

/* Not assert(): the checks must hold in NDEBUG builds of the tests and the fuzzer too. */
#define CHECK(cond)                        \
    do {                                   \
        if (!(cond)) {                     \
            check_failed(#cond, __LINE__); \
        }                                  \
    } while (0)

void cache_check_invariants(struct cache *c)
{
    size_t n = 0;
    size_t bytes = 0;
    size_t in_table = 0;
    size_t waiting = 0;
    size_t i;
    const struct entry *e;
    const struct entry *prev = NULL;

    pthread_mutex_lock(&c->mu);
    CHECK(c->nbuckets >= MIN_BUCKETS && (c->nbuckets & (c->nbuckets - 1)) == 0);
    for (e = c->lru_head; e; prev = e, e = e->lru_next) {
        const struct entry *b;

        CHECK(e->lru_prev == prev);
        CHECK(!prev || prev->used > e->used);
        CHECK(e->used <= c->tick);
        CHECK(e->hash == hash_key(e->key, e->keylen));
        CHECK(e->key[e->keylen] == '\0');
        CHECK(e->val && e->val->kind == CACHE_VALUE);
        CHECK(e->val->body[e->val->len] == '\0');
        CHECK(atomic_load(&e->val->refs) >= 1);
        CHECK(e->ahead_ms == UINT64_MAX || e->ahead_ms < e->expiry_ms);
        CHECK(!c->max_bytes || entry_size(e) <= c->max_bytes);
        for (b = bucket_of(c, e->hash)->entries; b && b != e; b = b->hnext) {
            CHECK(!key_equal(b->key, b->keylen, e->key, e->keylen)); /* keys are unique */
        }
        CHECK(b == e); /* listed in the bucket its hash names */
        n++;
        bytes += entry_size(e);
        CHECK(n <= c->items);
    }
    CHECK(c->lru_tail == prev);
    CHECK(n == c->items);
    CHECK(bytes == c->bytes);
    CHECK(n <= c->max_items);
    CHECK(!c->max_bytes || bytes <= c->max_bytes);
    n = 0;
    for (i = 0; i < c->nbuckets; i++) {
        const struct cache_flight *f;

        for (e = c->buckets[i].entries; e; e = e->hnext) {
            CHECK((e->hash & (c->nbuckets - 1)) == i);
            n++;
        }
        for (f = c->buckets[i].flights; f; f = f->hnext) {
            CHECK((f->hash & (c->nbuckets - 1)) == i);
            CHECK(f->in_table && !f->done && f->gen == c->gen);
            in_table++;
            waiting += f->waiters;
        }
    }
    CHECK(n == c->items); /* nothing in the table that is not on the list */
    CHECK(in_table == c->nflights);
    CHECK(waiting <= c->nwaiters); /* detached flights may still have followers */
    pthread_mutex_unlock(&c->mu);
}
