#include "sim/lambda_sim/util.h"

#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

struct sim_stamp sim_stamp_now(void)
{
    struct sim_stamp s;

    s.mono_ns = clock_mono_ns();
    s.real_ms = clock_real_ms();
    return s;
}

double sim_round3(double ms)
{
    return round(ms * 1000.0) / 1000.0;
}

double sim_ms(struct sim_stamp a, struct sim_stamp b)
{
    return sim_round3(clock_ms_between(a.mono_ns, b.mono_ns));
}

static void fill_random(unsigned char *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);

        if (r > 0) {
            got += (size_t)r;
        }
    }
}

void sim_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t i;

    if (n > sizeof(raw)) {
        n = sizeof(raw);
    }
    fill_random(raw, n);
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

void sim_uuid(char out[SIM_UUID_LEN])
{
    char hex[33];

    sim_hex(hex, 16);
    hex[12] = '4';                         /* version 4 */
    hex[16] = "89ab"[(hex[16] - '0') & 3]; /* RFC 4122 variant */
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
}

int sim_is_uuid(const char *s)
{
    size_t i;

    if (strlen(s) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

unsigned sim_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    unsigned port = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

/* A message cut to fit: vsnprintf's count only says by how much, which a message can lose. */
static void msg_v(char *out, size_t outlen, const char *fmt, va_list ap)
{
    if (outlen > 0 && vsnprintf(out, outlen, fmt, ap) < 0) {
        out[0] = '\0';
    }
}

void sim_msgf(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_v(out, outlen, fmt, ap);
    va_end(ap);
}

enum stash_err sim_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_v(err, errlen, fmt, ap);
    va_end(ap);
    return STASH_EINVAL;
}

int sim_fmt(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
}
