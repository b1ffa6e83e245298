/* bench/bench_ab.c: two HTTP servers compared under the same load at the same time, by taking
 * turns in short slices, so that whatever else the machine does falls on both alike.
 *
 * Run one after the other, two servers see different moments of a shared machine: on a 2-core
 * VM with other work on it, two wrk runs a second apart differ by 20-40 %, far more than the
 * builds being compared.  Here one client holds C kept-alive connections to each server and
 * loads only one side at a time, switching every SLICE milliseconds in the order A B B A, B A A
 * B, ...  Each group of four slices gives the ratio of the requests A and B completed in it,
 * A's two slices against B's two (the balanced order cancels a load that rises or falls
 * steadily across the group).  Requests are attributed to the slice they were sent in; one still in
 * flight when its side's turn ends finishes at the start of the next slice, the same for both.
 *
 *   bench_ab --port-a A --port-b B --path PATH [-H 'Name: value']... [-c C] [-t T]
 *            [--secs S] [--slice-ms MS] [--warm-ms MS] [--reconnect-ms MS] [--expect STATUS]
 *
 * C connections to each server (1..512), spread over T threads (1..8), each thread driving its
 * connections with epoll; S seconds measured (1..600) after MS of warm-up (not counted).
 * --reconnect-ms replaces each connection by a new one at the start of its side's first slice
 * after it has been open that long (0, the default: never).  A server with several threads that
 * each accept connections (libmicrohttpd's thread pool) splits a few connections between its
 * threads at random, and how they are split changes its rate; new connections now and then
 * measure it over many splits instead of the one a run happened to get.  Prints
 * one JSON object on stdout:
 *   {"conns":..,"threads":..,"slice_ms":..,"secs":..,"groups":..,"empty_groups":..,
 *    "a":{"requests":..,"errors":..,"rps":..,"p50_us":..,"p90_us":..,"p99_us":..},
 *    "b":{...},
 *    "group_ratio":{"median":..,"lo95":..,"hi95":..}}
 * rps is a side's requests over the time it had the load (half the run).  group_ratio is A/B
 * per group: its median and a distribution-free 95 % interval for that median.  Exit status:
 * 0 when measured, 1 on failure (a server unreachable, an answer with another status, nothing
 * measured), 2 on bad usage. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "bench_net.h"

#define AB_MAX_CONNS   512
#define AB_MAX_THREADS 8
#define AB_MAX_HEADERS 8
#define AB_MAX_ANSWER  (1024 * 1024)       /* ceiling on one answer, head and body */
#define AB_MAX_SAMPLES (64L * 1024 * 1024) /* latencies kept per side and thread */

struct ab_cfg {
    unsigned port[2];
    const char *path;
    const char *headers[AB_MAX_HEADERS];
    int nheaders;
    int conns;
    int threads;
    long secs;
    long slice_ms;
    long warm_ms;
    long reconnect_ms;
    int expect;
};

struct ab_conn {
    int fd;
    int side;
    int busy;         /* a request is in flight */
    int polled;       /* fd is in the thread's epoll set */
    uint64_t born_ns; /* when fd was connected */
    uint64_t sent_ns;
    long slice; /* the slice it was sent in */
    char *buf;
    size_t have;
};

struct ab_lat {
    uint64_t *v;
    long n;
    long cap;
};

struct ab_thread {
    const struct ab_cfg *cfg;
    const char *req;
    size_t req_len;
    uint64_t t0;
    long nslices;
    long first_slice; /* the first slice counted: warm-up ends on a group's boundary */
    int count;        /* connection pairs it drives */
    long *done;       /* per slice: requests completed that were sent in it */
    struct ab_lat lat[2];
    long errors[2];
    int status; /* an unexpected status seen, or 0 */
    int failed;
};

/* The side slice k belongs to: the parity of k's set bits (the Thue-Morse sequence), so
 * A B B A, B A A B, B A A B, A B B A, ...: each group of four is balanced, and so is each
 * group of eight with either side first, which cancels a load that drifts steadily or bends. */
static int ab_side(long k)
{
    return __builtin_parityl((unsigned long)k);
}

/* The answer in c->buf: 0 while incomplete, its status when whole (the connection may be used
 * again), -1 when it cannot be one (no status line, no Content-Length, over the ceiling). */
static int ab_answer(struct ab_conn *c)
{
    const char *end;
    const char *h;
    long clen = -1;
    int status;
    size_t head;

    c->buf[c->have] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL) {
        return c->have >= AB_MAX_ANSWER ? -1 : 0;
    }
    head = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }
    for (h = strstr(c->buf, "\r\n"); h != NULL && h < end; h = strstr(h, "\r\n")) {
        h += 2;
        if (strncasecmp(h, "content-length:", 15) == 0) {
            clen = strtol(h + 15, NULL, 10);
        }
    }
    if (clen < 0 || head + (size_t)clen > AB_MAX_ANSWER) {
        return -1;
    }
    if (c->have < head + (size_t)clen) {
        return 0;
    }
    return c->have == head + (size_t)clen ? status : -1;
}

static int ab_keep(struct ab_lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        long cap = l->cap ? l->cap * 2 : 65536;
        uint64_t *v;

        if (cap > AB_MAX_SAMPLES) {
            return -1;
        }
        v = realloc(l->v, (size_t)cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
    return 0;
}

static int ab_send(struct ab_thread *t, struct ab_conn *c, long slice)
{
    ssize_t w;

    c->have = 0;
    c->busy = 1;
    c->slice = slice;
    c->sent_ns = bench_now_ns();
    /* The request is a few hundred bytes on an idle connection: the socket takes it whole. */
    w = send(c->fd, t->req, t->req_len, MSG_NOSIGNAL);
    return w == (ssize_t)t->req_len ? 0 : -1;
}

static void ab_drop(struct ab_conn *c, int ep)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
    c->polled = 0;
}

/* Reads what c has; on a whole answer, counts it and returns 1. */
static int ab_read(struct ab_thread *t, struct ab_conn *c, int ep)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->have, AB_MAX_ANSWER - c->have, MSG_DONTWAIT);
        int status;

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (r <= 0) {
            t->errors[c->side]++;
            ab_drop(c, ep);
            return 0;
        }
        c->have += (size_t)r;
        status = ab_answer(c);
        if (status == 0) {
            continue;
        }
        c->busy = 0;
        if (status < 0 || (t->cfg->expect && status != t->cfg->expect)) {
            t->errors[c->side]++;
            if (status > 0) {
                t->status = status;
            }
            ab_drop(c, ep);
            return 0;
        }
        if (c->slice >= t->first_slice && c->slice < t->nslices) {
            t->done[c->slice]++;
            if (ab_keep(&t->lat[c->side], bench_now_ns() - c->sent_ns) != 0) {
                fprintf(stderr, "bench_ab: more than %ld answers on one side of a thread\n",
                        AB_MAX_SAMPLES);
                t->failed = 1;
            }
        }
        return 1;
    }
}

/* An event on a connection with no request in flight: the server closed it (its idle
 * timeout), or sent what was not asked for.  Either way it is dropped; its side's next turn
 * opens a new one.  Left in the epoll set, a closed socket would wake every epoll_wait. */
static void ab_idle_event(struct ab_thread *t, struct ab_conn *c, int ep)
{
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);

    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (r > 0) {
        t->errors[c->side]++;
    }
    ab_drop(c, ep);
}

static void *ab_run(void *arg)
{
    struct ab_thread *t = arg;
    const struct ab_cfg *cfg = t->cfg;
    uint64_t slice_ns = (uint64_t)cfg->slice_ms * 1000000ULL;
    uint64_t stop = t->t0 + (uint64_t)t->nslices * slice_ns;
    uint64_t renew_ns = (uint64_t)cfg->reconnect_ms * 1000000ULL;
    struct ab_conn *c = calloc((size_t)t->count * 2, sizeof(*c));
    struct epoll_event ev[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int i;

    if (c == NULL || ep < 0) {
        t->failed = 1;
        goto out;
    }
    for (i = 0; i < t->count * 2; i++) {
        c[i].fd = -1;
    }
    for (i = 0; i < t->count * 2; i++) {
        c[i].side = i % 2;
        c[i].buf = malloc(AB_MAX_ANSWER + 1);
        if (c[i].buf == NULL) {
            fprintf(stderr, "bench_ab: out of memory\n");
            t->failed = 1;
            goto out;
        }
        c[i].fd = bench_connect(cfg->port[c[i].side]);
        c[i].born_ns = bench_now_ns();
        if (c[i].fd < 0) {
            fprintf(stderr, "bench_ab: cannot connect to port %u\n", cfg->port[c[i].side]);
            t->failed = 1;
            goto out;
        }
    }
    for (;;) {
        uint64_t now = bench_now_ns();
        long k;
        int side;
        int n;
        int timeout;

        if (now >= stop) {
            break;
        }
        k = (long)((now - t->t0) / slice_ns);
        side = ab_side(k);
        for (i = 0; i < t->count * 2; i++) {
            struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

            if (c[i].side != side || c[i].busy) {
                continue;
            }
            if (renew_ns > 0 && c[i].fd >= 0 && now - c[i].born_ns >= renew_ns) {
                ab_drop(&c[i], ep);
            }
            if (c[i].fd < 0) {
                c[i].fd = bench_connect(cfg->port[side]);
                c[i].born_ns = bench_now_ns();
                if (c[i].fd < 0) {
                    t->errors[side]++;
                    continue;
                }
            }
            if (!c[i].polled && epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e) != 0) {
                t->failed = 1;
                goto out;
            }
            c[i].polled = 1;
            if (ab_send(t, &c[i], k) != 0) {
                t->errors[side]++;
                ab_drop(&c[i], ep);
            }
        }
        /* Wake at the next slice boundary at the latest (rounded up to a millisecond). */
        now = bench_now_ns();
        timeout = now >= t->t0 + (uint64_t)(k + 1) * slice_ns
                      ? 0
                      : (int)((t->t0 + (uint64_t)(k + 1) * slice_ns - now + 999999) / 1000000);
        n = epoll_wait(ep, ev, 64, timeout);
        for (i = 0; i < n; i++) {
            struct ab_conn *x = &c[ev[i].data.u32];

            if (x->fd >= 0 && !x->busy) {
                ab_idle_event(t, x, ep); /* the server closed an idle connection */
                continue;
            }
            if (x->fd >= 0 && x->busy && ab_read(t, x, ep) && !t->failed) {
                uint64_t at = bench_now_ns();
                long kk = (long)((at - t->t0) / slice_ns);

                /* Its side still has the load: the next request goes now, not at the top of
                 * the loop, as a client waiting on the answer would send it. */
                if (at < stop && ab_side(kk) == x->side && ab_send(t, x, kk) != 0) {
                    t->errors[x->side]++;
                    ab_drop(x, ep);
                }
            }
        }
        if (t->failed) {
            break;
        }
    }
    /* Requests sent in the last slices are answered after the end: collect them, so the last
     * slice counts as fully as every other (a bounded wait: four slices). */
    while (!t->failed && bench_now_ns() < stop + 4 * slice_ns) {
        int busy = 0;
        int n;

        for (i = 0; i < t->count * 2; i++) {
            busy |= c[i].fd >= 0 && c[i].busy;
        }
        if (!busy) {
            break;
        }
        n = epoll_wait(ep, ev, 64, (int)cfg->slice_ms);
        for (i = 0; i < n; i++) {
            struct ab_conn *x = &c[ev[i].data.u32];

            if (x->fd >= 0 && x->busy) {
                ab_read(t, x, ep);
            }
        }
    }
out:
    if (c != NULL) {
        for (i = 0; i < t->count * 2; i++) {
            if (c[i].fd >= 0) {
                close(c[i].fd);
            }
            free(c[i].buf);
        }
    }
    if (ep >= 0) {
        close(ep);
    }
    free(c);
    return NULL;
}

static int ab_cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double ab_pct_us(const uint64_t *v, long n, double p)
{
    return n > 0 ? (double)v[(long)(p * (double)(n - 1) + 0.5)] / 1000.0 : 0.0;
}

/* The order statistics that bound a 95 % interval for the median of n values (the normal
 * approximation of the binomial: ranks n/2 -+ 0.98 sqrt(n)), clamped to the sample. */
static void ab_median_ci(const double *v, long n, double *lo, double *hi)
{
    long j = (long)floor((double)n / 2.0 - 0.98 * sqrt((double)n)) - 1; /* 0-based rank */

    j = j < 0 ? 0 : j;
    *lo = v[j];
    *hi = v[n - 1 - j]; /* the same rank from the top */
}

static int ab_parse(int argc, char **argv, struct ab_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->conns = 1;
    cfg->threads = 1;
    cfg->secs = 10;
    cfg->slice_ms = 10;
    cfg->warm_ms = 500;
    cfg->expect = 200;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (v == NULL) {
            return -1;
        }
        if (strcmp(a, "--port-a") == 0) {
            cfg->port[0] = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--port-b") == 0) {
            cfg->port[1] = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--path") == 0) {
            cfg->path = v;
        } else if (strcmp(a, "-H") == 0 && cfg->nheaders < AB_MAX_HEADERS) {
            cfg->headers[cfg->nheaders++] = v;
        } else if (strcmp(a, "-c") == 0) {
            cfg->conns = atoi(v);
        } else if (strcmp(a, "-t") == 0) {
            cfg->threads = atoi(v);
        } else if (strcmp(a, "--secs") == 0) {
            cfg->secs = atol(v);
        } else if (strcmp(a, "--slice-ms") == 0) {
            cfg->slice_ms = atol(v);
        } else if (strcmp(a, "--warm-ms") == 0) {
            cfg->warm_ms = atol(v);
        } else if (strcmp(a, "--reconnect-ms") == 0) {
            cfg->reconnect_ms = atol(v);
        } else if (strcmp(a, "--expect") == 0) {
            cfg->expect = atoi(v);
        } else {
            return -1;
        }
        i++;
    }
    if (cfg->port[0] == 0 || cfg->port[0] > 65535 || cfg->port[1] == 0 || cfg->port[1] > 65535 ||
        cfg->path == NULL || cfg->path[0] != '/' || strlen(cfg->path) > 2048 || cfg->conns < 1 ||
        cfg->conns > AB_MAX_CONNS || cfg->threads < 1 || cfg->threads > AB_MAX_THREADS ||
        cfg->threads > cfg->conns || cfg->secs < 1 || cfg->secs > 600 || cfg->slice_ms < 1 ||
        cfg->slice_ms > 10000 || cfg->warm_ms < 0 || cfg->warm_ms > 60000 ||
        cfg->reconnect_ms < 0 || cfg->reconnect_ms > 600000) {
        return -1;
    }
    return 0;
}

static int ab_request(const struct ab_cfg *cfg, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", cfg->path);

    for (int i = 0; i < cfg->nheaders && n > 0 && (size_t)n < cap; i++) {
        n += snprintf(buf + n, cap - (size_t)n, "%s\r\n", cfg->headers[i]);
    }
    if (n > 0 && (size_t)n < cap) {
        n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    }
    return n > 0 && (size_t)n < cap ? n : -1;
}

static void ab_print_side(const char *name, struct ab_lat *l, long errors, double secs)
{
    qsort(l->v, (size_t)l->n, sizeof(uint64_t), bench_cmp_u64);
    printf("\"%s\":{\"requests\":%ld,\"errors\":%ld,\"rps\":%.0f,\"p50_us\":%.1f,"
           "\"p90_us\":%.1f,\"p99_us\":%.1f}",
           name, l->n, errors, secs > 0 ? (double)l->n / secs : 0.0, ab_pct_us(l->v, l->n, 0.5),
           ab_pct_us(l->v, l->n, 0.9), ab_pct_us(l->v, l->n, 0.99));
}

/* Joins the threads' counts; prints the result.  Returns 0 when both sides were measured. */
static int ab_report(const struct ab_cfg *cfg, struct ab_thread *th, long nslices)
{
    long first_group = th[0].first_slice / 4;
    long ngroups = nslices / 4 - first_group;
    long empty = 0;
    double *ratio = calloc((size_t)(ngroups > 0 ? ngroups : 1), sizeof(double));
    struct ab_lat all[2] = {{0}};
    long errors[2] = {0, 0};
    long nr = 0;
    double lo = 0;
    double hi = 0;
    int status = 0;
    int rc = 1;

    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < cfg->threads; i++) {
            for (long j = 0; j < th[i].lat[s].n; j++) {
                if (ab_keep(&all[s], th[i].lat[s].v[j]) != 0) {
                    fprintf(stderr, "bench_ab: out of memory\n");
                    goto out;
                }
            }
            errors[s] += th[i].errors[s];
            status = th[i].status ? th[i].status : status;
        }
    }
    for (long g = first_group; ratio != NULL && g < first_group + ngroups; g++) {
        long n[2] = {0, 0};

        for (long k = g * 4; k < g * 4 + 4; k++) {
            for (int i = 0; i < cfg->threads; i++) {
                n[ab_side(k)] += th[i].done[k];
            }
        }
        /* A group in which one side served nothing (a stall) has no ratio; it is counted
         * as empty and reported, not left out silently. */
        if (n[0] > 0 && n[1] > 0) {
            ratio[nr++] = (double)n[0] / (double)n[1];
        } else {
            empty++;
        }
    }
    if (ratio == NULL || nr == 0 || all[0].n == 0 || all[1].n == 0) {
        fprintf(stderr, "bench_ab: nothing measured (errors A %ld, B %ld, last status %d)\n",
                errors[0], errors[1], status);
        goto out;
    }
    qsort(ratio, (size_t)nr, sizeof(double), ab_cmp_dbl);
    ab_median_ci(ratio, nr, &lo, &hi);
    printf("{\"conns\":%d,\"threads\":%d,\"slice_ms\":%ld,\"secs\":%ld,\"groups\":%ld,"
           "\"empty_groups\":%ld,",
           cfg->conns, cfg->threads, cfg->slice_ms, cfg->secs, nr, empty);
    /* Each side had the load for half of the counted groups' time. */
    ab_print_side("a", &all[0], errors[0], (double)(ngroups * 2 * cfg->slice_ms) / 1000.0);
    putchar(',');
    ab_print_side("b", &all[1], errors[1], (double)(ngroups * 2 * cfg->slice_ms) / 1000.0);
    /* With an even count, the geometric mean of the middle two: 1/median is then exactly the
     * median of the inverted ratios. */
    printf(",\"group_ratio\":{\"median\":%.4f,\"lo95\":%.4f,\"hi95\":%.4f}}\n",
           nr % 2 ? ratio[nr / 2] : sqrt(ratio[nr / 2 - 1] * ratio[nr / 2]), lo, hi);
    rc = errors[0] + errors[1] > 0 ? 1 : 0;
    if (rc != 0) {
        fprintf(stderr, "bench_ab: %ld failed requests on A, %ld on B (last status %d)\n",
                errors[0], errors[1], status);
    }
out:
    free(all[0].v);
    free(all[1].v);
    free(ratio);
    return rc;
}

int main(int argc, char **argv)
{
    struct ab_cfg cfg;
    struct ab_thread th[AB_MAX_THREADS];
    pthread_t tid[AB_MAX_THREADS];
    char req[4096];
    int req_len;
    long nslices;
    long first_slice;
    uint64_t t0;
    int rc = 1;
    int failed = 0;

    if (ab_parse(argc, argv, &cfg) != 0 || (req_len = ab_request(&cfg, req, sizeof(req))) < 0) {
        fprintf(stderr,
                "usage: bench_ab --port-a A --port-b B --path /PATH [-H 'K: V']... "
                "[-c 1..%d] [-t 1..%d] [--secs 1..600] [--slice-ms MS] [--warm-ms MS] "
                "[--reconnect-ms MS] [--expect STATUS]\n",
                AB_MAX_CONNS, AB_MAX_THREADS);
        return 2;
    }
    /* Whole groups of four slices: the warm-up rounded up to a group, then the measured time
     * rounded up to a group. */
    first_slice = (cfg.warm_ms + 4 * cfg.slice_ms - 1) / (4 * cfg.slice_ms) * 4;
    nslices = first_slice + (cfg.secs * 1000 + 4 * cfg.slice_ms - 1) / (4 * cfg.slice_ms) * 4;
    t0 = bench_now_ns();
    memset(th, 0, sizeof(th));
    for (int i = 0; i < cfg.threads; i++) {
        th[i].cfg = &cfg;
        th[i].req = req;
        th[i].req_len = (size_t)req_len;
        th[i].t0 = t0;
        th[i].nslices = nslices;
        th[i].first_slice = first_slice;
        th[i].count = (i + 1) * cfg.conns / cfg.threads - i * cfg.conns / cfg.threads;
        th[i].done = calloc((size_t)nslices, sizeof(long));
        if (th[i].done == NULL || pthread_create(&tid[i], NULL, ab_run, &th[i]) != 0) {
            fprintf(stderr, "bench_ab: cannot start thread %d\n", i);
            return 1;
        }
    }
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(tid[i], NULL);
        failed |= th[i].failed;
    }
    if (!failed) {
        rc = ab_report(&cfg, th, nslices);
    }
    for (int i = 0; i < cfg.threads; i++) {
        free(th[i].done);
        free(th[i].lat[0].v);
        free(th[i].lat[1].v);
    }
    return rc;
}
