/* bench/bench_hit.c: a loopback HTTP/1.1 latency client on raw sockets, so stash and the floor are
 * timed by the same code, over the same kind of connection, with nothing of a client library in
 * the way.
 *
 * Latency mode (default): C connections (one thread each) each send N requests back to back over
 * one kept-alive connection, after W warm-up requests that are not counted.  A request is timed
 * from just before write(2) to the last byte of the body (Content-Length framing; chunked answers
 * are counted as errors).  Prints one JSON object on stdout:
 *   {"requests":..,"errors":..,"conns":..,"p50_us":..,"p90_us":..,"p99_us":..,"min_us":..,
 *    "max_us":..,"mean_us":..,"rps":..,"status":..,"body_bytes":..}
 *
 *   bench_hit --port P --path PATH [--keys K] [-H 'Name: value']... [-n N] [-w W] [-c C]
 *             [--method GET|POST] [--body-file F] [--max-ms MS] [--expect STATUS] [--gap-us US]
 *
 * PATH may hold one "%d", replaced by the request's key index (0..K-1, round-robin, each
 * connection starting at a different key): the scaling runs over many cached keys.  --max-ms
 * bounds the run in time (requests not sent by then are not counted).  --expect makes any other
 * status an error.  --gap-us pauses between a connection's requests (the pause is not timed): a
 * caller that reads a value now and then, whose server finds its caches cold.
 *
 * Exec mode: --exec-first ... -- CMD ARGS...: forks and execs CMD (environment inherited), then
 * polls the port with the request until an answer with the --expect status (default 200) arrives,
 * or --max-ms passes.  Prints {"exec_to_first_ms":..,"status":..,"attempts":..,"minflt":..,
 * "hwm_kb":..} and stops the child with SIGTERM.  minflt and hwm_kb are the child's page faults
 * and peak RSS when the answer arrived (from /proc/PID/stat and status; -1 if unreadable): the
 * work done before the first answer, counted rather than timed, so a busy machine leaves them
 * alone.  Exit status: 0 when measured, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "bench_net.h"

#define HIT_MAX_HEADERS  8
#define HIT_MAX_CONNS    256
#define HIT_MAX_N        10000000L
#define HIT_MAX_ANSWER   (4 * 1024 * 1024) /* ceiling on one answer, head and body */
#define HIT_MAX_REQ_BODY (1024 * 1024)

struct hit_cfg {
    unsigned port;
    const char *path;
    const char *method;
    const char *headers[HIT_MAX_HEADERS];
    int nheaders;
    char *req_body;
    size_t req_body_len;
    long n;
    long warmup;
    int conns;
    long keys;
    long max_ms;
    int expect;
    long gap_us; /* pause between requests (not timed): sparse callers, caches gone cold */
    int exec_first;
    char **cmd;
};

struct hit_worker {
    const struct hit_cfg *cfg;
    int index;
    uint64_t deadline_ns;
    uint64_t *lat_ns; /* n entries */
    long done;
    long errors;
    int status;
    size_t body_bytes;
};

/* Builds one request for key index k into buf; returns its length or -1 if it does not fit. */
static int hit_request(const struct hit_cfg *cfg, long k, char *buf, size_t cap)
{
    char path[2048];
    size_t len;
    int n;
    int i;

    if (strstr(cfg->path, "%d") != NULL) {
        const char *p = strstr(cfg->path, "%d");

        n = snprintf(path, sizeof(path), "%.*s%ld%s", (int)(p - cfg->path), cfg->path, k, p + 2);
    } else {
        n = snprintf(path, sizeof(path), "%s", cfg->path);
    }
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -1;
    }
    n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", cfg->method, path,
                 cfg->port);
    if (n < 0 || (size_t)n >= cap) {
        return -1;
    }
    len = (size_t)n;
    for (i = 0; i < cfg->nheaders; i++) {
        n = snprintf(buf + len, cap - len, "%s\r\n", cfg->headers[i]);
        if (n < 0 || (size_t)n >= cap - len) {
            return -1;
        }
        len += (size_t)n;
    }
    if (cfg->req_body != NULL) {
        n = snprintf(buf + len, cap - len, "Content-Length: %zu\r\n", cfg->req_body_len);
        if (n < 0 || (size_t)n >= cap - len) {
            return -1;
        }
        len += (size_t)n;
    }
    if (cap - len < 3 + cfg->req_body_len) {
        return -1;
    }
    memcpy(buf + len, "\r\n", 2);
    len += 2;
    if (cfg->req_body != NULL) {
        memcpy(buf + len, cfg->req_body, cfg->req_body_len);
        len += cfg->req_body_len;
    }
    return (int)len;
}

static int hit_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads one whole answer; returns its status, or -1 on a transport or framing error.  A
 * connection the server closes after its answer ("Connection: close") sets *closed. */
static int hit_read_answer(int fd, char *buf, size_t cap, size_t *body_bytes, int *closed)
{
    size_t have = 0;
    size_t head_len = 0;
    long clen = -1;
    int status = -1;

    *closed = 0;
    for (;;) {
        ssize_t r;

        if (head_len == 0) {
            char *end;

            if (have >= 4) {
                buf[have] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (end != NULL) {
                    const char *h;

                    head_len = (size_t)(end - buf) + 4;
                    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
                        return -1;
                    }
                    /* Header lines start after each CRLF up to the blank line. */
                    for (h = strstr(buf, "\r\n"); h != NULL && h < end; h = strstr(h, "\r\n")) {
                        const char *eol;

                        h += 2;
                        eol = strstr(h, "\r\n");
                        if (strncasecmp(h, "content-length:", 15) == 0) {
                            clen = strtol(h + 15, NULL, 10);
                        } else if (strncasecmp(h, "connection:", 11) == 0 && eol != NULL) {
                            const char *c = h + 11;

                            while (*c == ' ') {
                                c++;
                            }
                            *closed = (eol - c >= 5 && strncasecmp(c, "close", 5) == 0);
                        }
                    }
                    if (clen < 0 || (size_t)clen > cap - head_len - 1) {
                        return -1; /* chunked or oversized: not what these servers send */
                    }
                }
            }
        }
        if (head_len != 0 && have >= head_len + (size_t)clen) {
            *body_bytes = (size_t)clen;
            return status;
        }
        if (have >= cap - 1) {
            return -1;
        }
        r = read(fd, buf + have, cap - 1 - have);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        have += (size_t)r;
    }
}

static void *hit_worker_run(void *arg)
{
    struct hit_worker *w = arg;
    const struct hit_cfg *cfg = w->cfg;
    char *req = malloc(HIT_MAX_REQ_BODY + 8192);
    char *ans = malloc(HIT_MAX_ANSWER + 1);
    long total = cfg->warmup + cfg->n;
    long key = w->index;
    long i;
    int fd = -1;

    if (req == NULL || ans == NULL) {
        w->errors = total;
        goto out;
    }
    for (i = 0; i < total; i++) {
        uint64_t t0;
        uint64_t t1;
        int len;
        int status;
        int closed;
        size_t body = 0;

        if (bench_now_ns() > w->deadline_ns) {
            break;
        }
        if (cfg->gap_us > 0 && i > 0) {
            struct timespec gap = {cfg->gap_us / 1000000, (cfg->gap_us % 1000000) * 1000};

            nanosleep(&gap, NULL);
        }
        if (fd < 0) {
            fd = bench_connect(cfg->port);
            if (fd < 0) {
                w->errors++;
                continue;
            }
        }
        len = hit_request(cfg, cfg->keys > 0 ? key % cfg->keys : 0, req, HIT_MAX_REQ_BODY + 8192);
        key++;
        if (len < 0) {
            w->errors++;
            break;
        }
        t0 = bench_now_ns();
        if (hit_write_all(fd, req, (size_t)len) != 0) {
            status = -1;
        } else {
            status = hit_read_answer(fd, ans, HIT_MAX_ANSWER + 1, &body, &closed);
        }
        t1 = bench_now_ns();
        if (status < 0 || closed) {
            close(fd);
            fd = -1;
        }
        if (status < 0 || (cfg->expect != 0 && status != cfg->expect)) {
            w->errors++;
            if (status > 0) {
                w->status = status;
            }
            continue;
        }
        w->status = status;
        w->body_bytes = body;
        if (i >= cfg->warmup) {
            w->lat_ns[w->done++] = t1 - t0;
        }
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(req);
    free(ans);
    return NULL;
}

static double hit_pct(const uint64_t *v, long n, double p)
{
    long i = (long)(p * (double)(n - 1) + 0.5);

    return n > 0 ? (double)v[i] / 1000.0 : 0.0;
}

static int hit_latency(const struct hit_cfg *cfg)
{
    struct hit_worker *w = calloc((size_t)cfg->conns, sizeof(*w));
    pthread_t *th = calloc((size_t)cfg->conns, sizeof(*th));
    uint64_t *all = NULL;
    uint64_t start;
    uint64_t elapsed;
    long total = 0;
    long errors = 0;
    double sum = 0;
    int status = 0;
    size_t body_bytes = 0;
    int rc = 1;
    int i;
    long j;

    if (w == NULL || th == NULL) {
        goto out;
    }
    start = bench_now_ns();
    for (i = 0; i < cfg->conns; i++) {
        w[i].cfg = cfg;
        w[i].index = i;
        w[i].deadline_ns =
            cfg->max_ms > 0 ? start + (uint64_t)cfg->max_ms * 1000000ULL : UINT64_MAX;
        w[i].lat_ns = calloc((size_t)cfg->n, sizeof(uint64_t));
        if (w[i].lat_ns == NULL || pthread_create(&th[i], NULL, hit_worker_run, &w[i]) != 0) {
            fprintf(stderr, "bench_hit: cannot start worker %d\n", i);
            exit(1);
        }
    }
    for (i = 0; i < cfg->conns; i++) {
        pthread_join(th[i], NULL);
        total += w[i].done;
        errors += w[i].errors;
        if (w[i].status != 0) {
            status = w[i].status;
        }
        if (w[i].body_bytes != 0) {
            body_bytes = w[i].body_bytes;
        }
    }
    elapsed = bench_now_ns() - start;
    all = malloc((size_t)(total > 0 ? total : 1) * sizeof(uint64_t));
    if (all == NULL) {
        goto out;
    }
    total = 0;
    for (i = 0; i < cfg->conns; i++) {
        for (j = 0; j < w[i].done; j++) {
            all[total++] = w[i].lat_ns[j];
            sum += (double)w[i].lat_ns[j];
        }
    }
    qsort(all, (size_t)total, sizeof(uint64_t), bench_cmp_u64);
    printf("{\"requests\":%ld,\"errors\":%ld,\"conns\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,"
           "\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"rps\":%.0f,"
           "\"status\":%d,\"body_bytes\":%zu}\n",
           total, errors, cfg->conns, hit_pct(all, total, 0.50), hit_pct(all, total, 0.90),
           hit_pct(all, total, 0.99), hit_pct(all, total, 0.0), hit_pct(all, total, 1.0),
           total > 0 ? sum / (double)total / 1000.0 : 0.0,
           elapsed > 0 ? (double)total * 1e9 / (double)elapsed : 0.0, status, body_bytes);
    rc = total > 0 ? 0 : 1;
out:
    if (w != NULL) {
        for (i = 0; i < cfg->conns; i++) {
            free(w[i].lat_ns);
        }
    }
    free(all);
    free(w);
    free(th);
    return rc;
}

/* Minor page faults of a process so far (field 10 of /proc/PID/stat), or -1. */
static long proc_minflt(pid_t pid)
{
    char path[64];
    char line[1024];
    const char *p;
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    if (fgets(line, sizeof(line), f) != NULL && (p = strrchr(line, ')')) != NULL) {
        /* After "(comm)": state ppid pgrp session tty_nr tpgid flags minflt */
        if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %ld", &v) != 1) {
            v = -1;
        }
    }
    fclose(f);
    return v;
}

/* Peak RSS of a process so far in KiB (VmHWM in /proc/PID/status), or -1. */
static long proc_hwm_kb(pid_t pid)
{
    char path[64];
    char line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmHWM: %ld", &v) == 1) {
            break;
        }
    }
    fclose(f);
    return v;
}

/* Exec mode: time from fork+exec to the first answer with the expected status. */
static int hit_exec_first(const struct hit_cfg *cfg)
{
    char *req = malloc(HIT_MAX_REQ_BODY + 8192);
    char *ans = malloc(HIT_MAX_ANSWER + 1);
    uint64_t t0;
    uint64_t deadline;
    long attempts = 0;
    int status = -1;
    int len;
    int rc = 1;
    pid_t pid;

    if (req == NULL || ans == NULL) {
        goto out;
    }
    len = hit_request(cfg, 0, req, HIT_MAX_REQ_BODY + 8192);
    if (len < 0) {
        goto out;
    }
    t0 = bench_now_ns();
    deadline = t0 + (uint64_t)(cfg->max_ms > 0 ? cfg->max_ms : 5000) * 1000000ULL;
    pid = fork();
    if (pid < 0) {
        goto out;
    }
    if (pid == 0) {
        execvp(cfg->cmd[0], cfg->cmd);
        _exit(127);
    }
    while (bench_now_ns() < deadline) {
        struct timespec pause = {0, 50000}; /* 50 us between attempts */
        size_t body;
        int closed;
        int fd = bench_connect(cfg->port);

        attempts++;
        if (fd >= 0) {
            if (hit_write_all(fd, req, (size_t)len) == 0) {
                status = hit_read_answer(fd, ans, HIT_MAX_ANSWER + 1, &body, &closed);
            }
            close(fd);
            if (status == cfg->expect) {
                double ms = (double)(bench_now_ns() - t0) / 1e6;

                printf("{\"exec_to_first_ms\":%.3f,\"status\":%d,\"attempts\":%ld,"
                       "\"minflt\":%ld,\"hwm_kb\":%ld}\n",
                       ms, status, attempts, proc_minflt(pid), proc_hwm_kb(pid));
                rc = 0;
                break;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "bench_hit: %s exited before answering\n", cfg->cmd[0]);
            pid = 0;
            break;
        }
        nanosleep(&pause, NULL);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_hit: no %d answer within %ld ms (last status %d)\n", cfg->expect,
                cfg->max_ms, status);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
out:
    free(req);
    free(ans);
    return rc;
}

static int hit_load_body(struct hit_cfg *cfg, const char *file)
{
    FILE *f = fopen(file, "rb");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "bench_hit: %s: %s\n", file, strerror(errno));
        return -1;
    }
    cfg->req_body = malloc(HIT_MAX_REQ_BODY + 1);
    if (cfg->req_body == NULL) {
        fclose(f);
        return -1;
    }
    n = fread(cfg->req_body, 1, HIT_MAX_REQ_BODY + 1, f);
    fclose(f);
    if (n > HIT_MAX_REQ_BODY) {
        fprintf(stderr, "bench_hit: %s is over %d bytes\n", file, HIT_MAX_REQ_BODY);
        return -1;
    }
    cfg->req_body_len = n;
    return 0;
}

static int hit_parse(int argc, char **argv, struct hit_cfg *cfg)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--") == 0) {
            cfg->cmd = &argv[i + 1];
            break;
        }
        if (strcmp(a, "--exec-first") == 0) {
            cfg->exec_first = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bench_hit: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--port") == 0) {
            cfg->port = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--path") == 0) {
            cfg->path = v;
        } else if (strcmp(a, "-H") == 0) {
            if (cfg->nheaders == HIT_MAX_HEADERS) {
                fprintf(stderr, "bench_hit: at most %d headers\n", HIT_MAX_HEADERS);
                return -1;
            }
            cfg->headers[cfg->nheaders++] = v;
        } else if (strcmp(a, "-n") == 0) {
            cfg->n = strtol(v, NULL, 10);
        } else if (strcmp(a, "-w") == 0) {
            cfg->warmup = strtol(v, NULL, 10);
        } else if (strcmp(a, "-c") == 0) {
            cfg->conns = (int)strtol(v, NULL, 10);
        } else if (strcmp(a, "--keys") == 0) {
            cfg->keys = strtol(v, NULL, 10);
        } else if (strcmp(a, "--method") == 0) {
            cfg->method = v;
        } else if (strcmp(a, "--body-file") == 0) {
            if (hit_load_body(cfg, v) != 0) {
                return -1;
            }
        } else if (strcmp(a, "--max-ms") == 0) {
            cfg->max_ms = strtol(v, NULL, 10);
        } else if (strcmp(a, "--gap-us") == 0) {
            cfg->gap_us = strtol(v, NULL, 10);
        } else if (strcmp(a, "--expect") == 0) {
            cfg->expect = (int)strtol(v, NULL, 10);
        } else {
            fprintf(stderr, "bench_hit: unknown option %s\n", a);
            return -1;
        }
        i++;
    }
    if (cfg->port == 0 || cfg->port > 65535 || cfg->path == NULL || cfg->path[0] != '/' ||
        cfg->n < 1 || cfg->n > HIT_MAX_N || cfg->warmup < 0 || cfg->warmup > HIT_MAX_N ||
        cfg->conns < 1 || cfg->conns > HIT_MAX_CONNS || cfg->keys < 0 || cfg->gap_us < 0 ||
        cfg->gap_us > 10000000 || (cfg->exec_first && (cfg->cmd == NULL || cfg->cmd[0] == NULL))) {
        fprintf(stderr,
                "usage: bench_hit --port P --path /PATH [-H 'K: V']... [-n N] [-w W] "
                "[-c 1..%d] [--keys K] [--method M] [--body-file F] [--max-ms MS] "
                "[--expect STATUS] [--gap-us US] [--exec-first -- CMD ARGS...]\n",
                HIT_MAX_CONNS);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct hit_cfg cfg = {.method = "GET", .n = 1000, .warmup = 100, .conns = 1};
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (hit_parse(argc, argv, &cfg) != 0) {
        free(cfg.req_body);
        return 2;
    }
    if (cfg.exec_first && cfg.expect == 0) {
        cfg.expect = 200;
    }
    rc = cfg.exec_first ? hit_exec_first(&cfg) : hit_latency(&cfg);
    free(cfg.req_body);
    return rc;
}
