/* cache/cache.h: the TTL/LRU store with single-flight misses and serve-stale.
 *
 * Keys are opaque byte strings built by the caller (service, id and selector together; see
 * extension/).  A value is what the local API answers: an HTTP status and a body.
 *
 * cache_get() returns a fresh entry as a copy (FACTS_HIT).  On a miss, the first caller for a key
 * becomes the leader: it calls fill() with no lock held, and concurrent callers for the same key
 * wait for that one result and get copies of it (FACTS_WAITED).  Only status-200 results are
 * stored; any result is handed to the waiters of that flight.  When an expired entry's refresh
 * fails transiently (status 429, 5xx) and the entry is younger than stale_max_ms past its expiry,
 * the old value is served instead (FACTS_STALE) and kept.
 * Flags: CACHE_REFRESH fetches even when fresh (refreshNow) and replaces the entry on success;
 * CACHE_BYPASS fetches without coalescing or storing (cache disabled, TTL 0).
 *
 * Bounds: at most max_items entries and max_bytes of key+value bytes; the least recently used
 * entries go first.  A value larger than max_bytes is served but not stored.
 * Secrets: every value and key leaving the store (evicted, expired and replaced, cleared, freed)
 * is wiped with mem_wipe before free.  Values are copied out, never shared.
 * Time: now_ms() is injected (tests drive it); default is clock_mono_ms.
 * Thread-safety: all functions but cache_free are thread-safe.  One mutex guards the store and is
 * never held across fill() or any I/O.
 */
#ifndef STASH_CACHE_CACHE_H
#define STASH_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/facts.h"

struct cache;

struct cache_value {
    int status; /* HTTP status for the local caller */
    char *body; /* owned, NUL-terminated; may hold a secret: release with cache_value_release */
    size_t len; /* body length without the NUL */
};

void cache_value_release(struct cache_value *v); /* wipes and frees body; accepts zeroed values */

struct cache_opts {
    size_t max_items;      /* 0: store nothing (every get is a BYPASS) */
    size_t max_bytes;      /* 0: no byte bound */
    uint64_t stale_max_ms; /* how long past expiry a value may still be served on a fault */
    uint64_t (*now_ms)(void *clock_ctx); /* NULL: clock_mono_ms */
    void *clock_ctx;
};

enum cache_flags {
    CACHE_REFRESH = 1 << 0,
    CACHE_BYPASS = 1 << 1,
};

/* Fetches the value upstream.  Must always set out->status and out->body (an error body on
 * failure); called without the cache lock, on the leader's thread. */
typedef void (*cache_fill_fn)(void *ctx, struct cache_value *out);

struct cache *cache_new(const struct cache_opts *opts);
void cache_free(struct cache *c); /* wipes everything; no call may be in flight */

/* Fills *out with a copy the caller owns (release with cache_value_release) and returns what
 * happened.  ttl_ms is the lifetime given to a value stored by this call. */
enum facts_outcome cache_get(struct cache *c, const void *key, size_t keylen, uint64_t ttl_ms,
                             unsigned flags, cache_fill_fn fill, void *fill_ctx,
                             struct cache_value *out);

/* Wipes and drops every entry (SHUTDOWN, SnapStart). In-flight fills complete but are not kept. */
void cache_clear(struct cache *c);

struct cache_stats {
    size_t items;
    size_t bytes;
    uint64_t evictions;
};
void cache_stats(struct cache *c, struct cache_stats *out);

#endif
