/* bench/bench_cache.c: nanoseconds per cache hit, in process, no HTTP.
 *
 *   build/bench/bench_cache [rounds]
 *
 * For stores of 10 and 1000 keys (secret-id-sized keys) and values of 64 B and 4 KiB: fills the
 * store, then times `rounds` hits cycling over every key, five times, and prints the median with
 * min and max (ns per hit, the copy-out and its wiped release included: what a caller pays).  Then
 * the same with two threads hitting one store at once, which shows what the single mutex costs
 * under contention.  Numbers are for comparing builds of cache.c on one machine, not absolute
 * claims.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/mem.h"

#define REPEATS 5
#define KEY_MAX 96

struct keys {
    char (*k)[KEY_MAX];
    size_t *len;
    size_t n;
};

static void fill_value(void *ctx, struct cache_value *out)
{
    size_t len = *(const size_t *)ctx;

    out->kind = CACHE_VALUE;
    out->status = 200;
    out->len = len;
    out->body = xmalloc(len + 1);
    memset(out->body, 'v', len);
    out->body[len] = '\0';
}

static void keys_make(struct keys *ks, size_t n)
{
    size_t i;

    ks->n = n;
    ks->k = xcalloc(n, sizeof(*ks->k));
    ks->len = xcalloc(n, sizeof(*ks->len));
    for (i = 0; i < n; i++) {
        int w = snprintf(ks->k[i], KEY_MAX,
                         "sm\x1f"
                         "arn:aws:secretsmanager:us-east-1:1234:secret:app/db-%zu\x1f\x1f",
                         i);

        ks->len[i] = (size_t)w;
    }
}

static void keys_free(struct keys *ks)
{
    free(ks->k);
    free(ks->len);
}

struct hitter {
    struct cache *c;
    const struct keys *ks;
    size_t value_len;
    unsigned long rounds;
    unsigned long misses; /* must stay 0: a miss would mean we timed the wrong thing */
    double ns_per_hit;
};

static void *hit_loop(void *arg)
{
    struct hitter *h = arg;
    struct cache_ref v;
    uint64_t t0 = clock_mono_ns();
    unsigned long i;

    for (i = 0; i < h->rounds; i++) {
        size_t k = i % h->ks->n;

        if (cache_get(h->c, h->ks->k[k], h->ks->len[k], 3600000, 0, fill_value, &h->value_len,
                      &v) != FACTS_HIT) {
            h->misses++;
        }
        cache_ref_release(&v);
    }
    h->ns_per_hit = (double)(clock_mono_ns() - t0) / (double)h->rounds;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/* One measurement: nthreads hitting one store of n keys; returns ns per hit (mean of threads). */
static double measure(size_t n, size_t value_len, int nthreads, unsigned long rounds,
                      unsigned long *misses)
{
    struct cache_opts o = {.max_items = n, .stale_max_ms = 0};
    struct cache *c = cache_new(&o);
    struct keys ks;
    struct hitter h[2];
    pthread_t t[2];
    struct cache_ref v;
    double sum = 0;
    size_t i;
    int j;

    keys_make(&ks, n);
    for (i = 0; i < n; i++) {
        (void)cache_get(c, ks.k[i], ks.len[i], 3600000, 0, fill_value, &value_len, &v);
        cache_ref_release(&v);
    }
    for (j = 0; j < nthreads; j++) {
        h[j] = (struct hitter){.c = c, .ks = &ks, .value_len = value_len, .rounds = rounds};
        if (pthread_create(&t[j], NULL, hit_loop, &h[j]) != 0) {
            fprintf(stderr, "bench_cache: pthread_create failed\n");
            exit(1);
        }
    }
    for (j = 0; j < nthreads; j++) {
        pthread_join(t[j], NULL);
        sum += h[j].ns_per_hit;
        *misses += h[j].misses;
    }
    keys_free(&ks);
    cache_free(c);
    return sum / nthreads;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {10, 1000};
    static const size_t value_lens[] = {64, 4096};
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 500000;
    unsigned long misses = 0;
    size_t s;
    size_t vl;
    int threads;

    if (rounds == 0) {
        rounds = 1;
    }
    printf("bench_cache: %lu hits per run, median of %d runs\n", rounds, REPEATS);
    for (threads = 1; threads <= 2; threads++) {
        for (vl = 0; vl < sizeof(value_lens) / sizeof(value_lens[0]); vl++) {
            for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                double ns[REPEATS];
                int r;

                for (r = 0; r < REPEATS; r++) {
                    ns[r] = measure(sizes[s], value_lens[vl], threads, rounds, &misses);
                }
                qsort(ns, REPEATS, sizeof(ns[0]), cmp_double);
                printf("cache_hit keys=%-5zu value=%-5zu threads=%d  median %7.1f ns/hit  "
                       "(min %.1f, max %.1f)\n",
                       sizes[s], value_lens[vl], threads, ns[REPEATS / 2], ns[0], ns[REPEATS - 1]);
            }
        }
    }
    if (misses) {
        fprintf(stderr, "bench_cache: %lu gets missed; the numbers above are wrong\n", misses);
        return 1;
    }
    return 0;
}
