/* cache/cache.h: the TTL/LRU store with single-flight misses and serve-stale.
 *
 * Keys are opaque byte strings built by the caller (service, id and selector together; see
 * extension/).  A value is a body and what kind of result it is (struct cache_value): a value to
 * keep, a failure that may pass (transient) or a failure that stands.  Its status is the
 * caller's, copied with the body and never read here.
 *
 * cache_get() returns a fresh entry by reference (FACTS_HIT).  On a miss, the first caller for a
 * key becomes the leader: it calls fill() with no lock held, and concurrent callers for the same
 * key wait for that one result and get references to it (FACTS_WAITED).  Only CACHE_VALUE
 * results are stored; any result is handed to the waiters of that flight.  When an expired
 * entry's refresh fails transiently (CACHE_TRANSIENT) and the entry is younger than stale_max_ms
 * past its expiry, the old value is served instead (FACTS_STALE) and kept.
 * Flags: CACHE_REFRESH fetches even when fresh (refreshNow) and replaces the entry on success
 * (on failure it returns the failure and leaves the entry alone);
 * CACHE_BYPASS fetches without coalescing or storing (cache disabled, TTL 0);
 * CACHE_AHEAD and CACHE_AHEAD_RUN refresh an entry that is still being read before it expires.
 *
 * Refresh-ahead: each stored entry gets a refresh point in the last tenth of its TTL, at
 * expiry - ttl/10 plus a random part of up to ttl/20 (so stores filled at the same moment, in
 * many environments, do not refresh in lockstep; a TTL under 10 ms has none).  The first
 * CACHE_AHEAD hit at or past that point, while no fill of the key runs, claims the entry's one
 * refresh: it still gets the current value at once, with out->refresh_due set.  The caller then
 * runs the refresh with CACHE_AHEAD_RUN on a thread that may block (or drops it: the entry then
 * expires as it would have).  That run is a CACHE_REFRESH (single-flight: gets after the expiry
 * join it; on success the entry is replaced and has a new refresh point; on failure it is left
 * exactly as it was, claimed, so it is not retried and expires, and the stale rules apply from
 * there), but only if the entry is still stored and claimed and no other fill of the key runs;
 * else it does nothing (FACTS_MISS, out empty, fill not called).  A key read steadily thus never
 * waits for upstream after its first fetch, and a key nobody reads expires as before.
 *
 * Precise semantics (refined while building the store; the tests pin each one):
 * - A value stored at time t with ttl_ms is fresh while now < t + ttl_ms (t is when the fill
 *   returned).  ttl_ms == 0 behaves as CACHE_BYPASS: a value that is expired when stored would
 *   only push live entries out.  max_items == 0 does the same for every call.
 * - Serve-stale window: expiry <= now < expiry + stale_max_ms ("younger than stale_max_ms past its
 *   expiry"), so stale_max_ms == 0 turns serve-stale off.  An entry past that window is dropped
 *   when next looked up.
 * - A failure that stands (CACHE_FAILED: a secret deleted, access revoked, ...) of a plain read
 *   is returned as is and drops the entry: an answer "not found" after a delete or "denied"
 *   after a policy change must not keep serving the old secret.
 * - A CACHE_REFRESH that fails (anything but CACHE_VALUE) returns the failure, as the caller
 *   asked for fresh data, and leaves the entry exactly as it was (value and expiry): plain reads
 *   keep hitting it, and past its expiry they follow the stale rules above.  A plain read that
 *   joined a failed refresh's flight gets the stale value where those rules allow it.
 * - A CACHE_VALUE that is too big to store still drops the old entry for its key (it is
 *   outdated).
 * - Outcomes: the leader reports FACTS_MISS (FACTS_STALE if it served the old value), a refresh
 *   leader too; followers report FACTS_WAITED, or FACTS_STALE when the flight served the old
 *   value (so a stale answer is always counted as stale).  CACHE_REFRESH joins a running flight.
 * - cache_clear() during a fill: the fill's result goes to its leader and followers, is not
 *   stored, and gets that start after the clear begin a new fill rather than joining the old one.
 * - Only the leader's fill and fill_ctx run; a follower's are never called (so per-request
 *   facts such as upstream calls land in the leader's context only).
 * - Expired entries are not swept in the background: one stays until it is looked up (then
 *   refilled or dropped) or evicted as least recently used.
 *
 * Bounds: at most max_items entries and max_bytes of key+value bytes; the least recently used
 * entries go first.  A value larger than max_bytes is served but not stored.
 * Values are shared, not copied: a stored value is one immutable, reference-counted allocation
 * (count, kind, status, length and body), and cache_get hands out a reference to it (one atomic
 * increment under the lock, no copy).  The store holds one reference per entry and a flight one
 * for its result; each caller releases its own.  An entry that is evicted, replaced or cleared
 * while a caller still holds its value only drops the store's reference: the caller's body stays
 * valid and unchanged until it releases it.
 * Secrets: every key leaving the store (evicted, expired and replaced, cleared, freed) is wiped
 * with mem_wipe before free, and so is every value when its last reference goes (whichever
 * thread that is); a fill's own result is wiped as soon as it is made into a stored value.
 * Time: now_ms() is injected (tests drive it); default is clock_mono_ms.  It is called with the
 * store's lock held: it must be cheap and must not call into the cache.
 * Thread-safety: all functions but cache_free are thread-safe.  One mutex guards the store and is
 * never held across fill() or any I/O.
 */
#ifndef STASH_CACHE_CACHE_H
#define STASH_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/facts.h"

struct cache;

/* What a fill's result is, for the store.  Zero is CACHE_FAILED, so a zeroed value is never
 * kept. */
enum cache_kind {
    CACHE_FAILED = 0, /* a failure that stands: handed out, never stored, drops an old entry */
    CACHE_TRANSIENT,  /* a failure that may pass: an old entry may be served instead (stale) */
    CACHE_VALUE,      /* a value: stored */
};

/* What a fill produces: a result the caller owns outright. */
struct cache_value {
    enum cache_kind kind;
    int status; /* the filler's code for this result: copied with the body, never read here */
    char *body; /* owned, NUL-terminated; may hold a secret: release with cache_value_release */
    size_t len; /* body length without the NUL */
};

void cache_value_release(struct cache_value *v); /* wipes and frees body; accepts zeroed values */

/* A value as the store keeps it: immutable, reference-counted, one allocation (cache.c). */
struct cache_blob;

/* What cache_get hands out: one reference to an immutable result.  kind, status, body and len
 * describe it and are read-only; body is NUL-terminated at len and stays valid until the
 * reference is released.  An empty ref (all zero: CACHE_FAILED, blob NULL) holds nothing. */
struct cache_ref {
    enum cache_kind kind;
    int status;
    const char *body;
    size_t len;
    struct cache_blob *blob; /* the reference; NULL in an empty ref */
    int refresh_due;         /* a CACHE_AHEAD hit claimed the refresh: run CACHE_AHEAD_RUN */
};

/* Drops the reference and empties *r; the last reference to a value wipes and frees it.
 * Accepts NULL and empty refs.  Any thread may release any reference. */
void cache_ref_release(struct cache_ref *r);
/* The same through the bare blob pointer, for a callback that carries only a void * (the local
 * API's response free callback): the caller took r->blob out of *r and hands it on. */
void cache_blob_release(struct cache_blob *b);
/* Attachment: one object of the caller's tied to a value's life, such as the local API's HTTP
 * response for a value, made once and shared by every request answered with it (the store never
 * looks inside it).  A value has at most one; it is set once and never replaced.
 * cache_ref_attachment returns r's attachment, or NULL (none yet, or an empty ref).
 * cache_ref_attach gives r's value the attachment a, to be destroyed with free_fn(a), unless it
 * has one already: it returns the value's attachment after the call, a when a was attached, or
 * the one attached before (two threads racing both get the winner's; the loser still owns its a
 * and destroys it itself).  An empty ref, or a NULL a or free_fn, attaches nothing and returns
 * NULL.  The caller must hold r for the call.  An attachment made visible by cache_ref_attach is
 * fully made for any thread that then gets it from cache_ref_attachment (release/acquire).
 * free_fn(a) runs exactly once, when the value's last reference goes, before the value is wiped
 * (so a may point into body until then).  It runs on whichever thread drops that reference,
 * which may be inside any cache call with the store's lock held: it must be quick, must not block
 * and must not call into the cache.  An attachment does not count against max_bytes. */
typedef void (*cache_attach_free_fn)(void *attachment);
void *cache_ref_attachment(const struct cache_ref *r);
void *cache_ref_attach(const struct cache_ref *r, void *attachment, cache_attach_free_fn free_fn);
/* Makes an owned value (an answer made outside the store, such as a local error) into a ref:
 * takes v's body, which is wiped and freed, and leaves *v zeroed. */
void cache_ref_adopt(struct cache_value *v, struct cache_ref *out);

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
    /* Only a fresh entry: FACTS_HIT and its value, or FACTS_MISS with *out empty (blob NULL)
     * and nothing else done (no fill, no flight joined, no entry dropped).  With CACHE_REFRESH
     * or CACHE_BYPASS it is always a miss.  For a caller that must not block: it fetches on
     * another thread after a miss. */
    CACHE_PEEK = 1 << 2,
    CACHE_AHEAD = 1 << 3,     /* a hit may claim the entry's refresh-ahead (see above) */
    CACHE_AHEAD_RUN = 1 << 4, /* run a claimed refresh-ahead (see above) */
};

/* Fetches the value upstream.  Must always set out->kind and out->body (out->status as the
 * caller wants it; a NULL body is replaced by an empty one); called without the cache lock, on
 * the leader's thread.  out->body passes to the cache, which wipes it and releases it with
 * free(): it must come from malloc (xmalloc, xmemdup, buf_detach).  fill must not cache_get()
 * its own key: it would wait for itself. */
typedef void (*cache_fill_fn)(void *ctx, struct cache_value *out);

struct cache *cache_new(const struct cache_opts *opts);
void cache_free(struct cache *c); /* wipes everything; no call may be in flight */

/* Fills *out with a reference the caller owns (release with cache_ref_release) and returns what
 * happened.  ttl_ms is the lifetime given to a value stored by this call. */
enum facts_outcome cache_get(struct cache *c, const void *key, size_t keylen, uint64_t ttl_ms,
                             unsigned flags, cache_fill_fn fill, void *fill_ctx,
                             struct cache_ref *out);

/* A fill led from outside cache_get, for a caller that fetches many keys with one upstream call
 * (extension/batch.h): cache_lead takes the leader's place of one key and cache_complete ends
 * it with the result, which is then stored, stale-served and handed to the followers exactly as
 * a fill's result in cache_get (a get of the key arriving in between waits for it).
 * cache_lead returns
 *   FACTS_HIT     a fresh entry (not with CACHE_REFRESH): *out is a reference to it;
 *   FACTS_MISS    the caller leads: *lead is set, and it must call cache_complete exactly once;
 *   FACTS_WAITED  another fill of the key runs: nothing done (cache_get joins it);
 *   FACTS_BYPASS  CACHE_BYPASS, or a store that keeps nothing: nothing done.
 * A TTL of 0 must come as CACHE_BYPASS (cache_lead does not know the TTL); flags other than
 * CACHE_REFRESH and CACHE_BYPASS are ignored.  cache_complete takes result's body (as a fill's)
 * and returns the leader's outcome (FACTS_MISS, or FACTS_STALE when the old value was served),
 * with *out the leader's answer. */
struct cache_flight;
enum facts_outcome cache_lead(struct cache *c, const void *key, size_t keylen, unsigned flags,
                              struct cache_flight **lead, struct cache_ref *out);
enum facts_outcome cache_complete(struct cache *c, struct cache_flight *lead, uint64_t ttl_ms,
                                  struct cache_value *result, struct cache_ref *out);

/* Wipes and drops every entry (SHUTDOWN, SnapStart). In-flight fills complete but are not kept. */
void cache_clear(struct cache *c);

/* flights and waiters were added to the first contract: they make "is anyone stuck waiting"
 * observable, and the single-flight tests use them to know every follower is waiting before they
 * release the fill (no sleeps). */
struct cache_stats {
    size_t items;
    size_t bytes;       /* key + value bytes stored */
    uint64_t evictions; /* entries pushed out by the bounds (not replaced, expired or cleared) */
    size_t flights;     /* fills in progress that new gets can join */
    size_t waiters;     /* gets waiting for another get's fill */
};
void cache_stats(struct cache *c, struct cache_stats *out);

/* For tests and the fuzzer: aborts with a message unless the table and the LRU list agree, the
 * counts and byte totals match, recency strictly decreases along the list and the bounds hold.
 * Takes the lock; O(items + buckets). */
void cache_check_invariants(struct cache *c);

#endif
