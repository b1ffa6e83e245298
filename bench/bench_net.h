/* bench/bench_net.h: what the loopback load clients (bench_hit.c, bench_ab.c) share: a monotonic
 * clock in nanoseconds, a kept-alive TCP connection to 127.0.0.1, and the comparison qsort needs
 * to sort latencies.  Header-only (each client is one file); nothing here allocates. */
#ifndef STASH_BENCH_NET_H
#define STASH_BENCH_NET_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A connected socket to 127.0.0.1:port, or -1.  Requests are small and sent whole: no Nagle
 * delay, as any HTTP client does. */
static inline int bench_connect(unsigned port)
{
    struct sockaddr_in sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* qsort's comparison for uint64_t values, ascending. */
static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

#endif
