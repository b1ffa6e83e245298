/* sim/fake_aws/control.c: counters and injected latency, failures, throttling and hangs. */
#include "sim/fake_aws/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/mem.h"

struct rule {
    enum fa_fault_kind kind;
    enum fa_op op; /* FA_OP_UNKNOWN: any */
    unsigned left;
    int status;
    char type[64];
    char message[256];
    unsigned hang_ms;
};

struct op_counts {
    unsigned long calls;
    unsigned long errors;
    unsigned long throttled;
};

struct fa_control {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled at shutdown; sleepers wait on it (CLOCK_MONOTONIC) */
    int stopping;
    unsigned latency_ms;
    unsigned jitter_ms;
    unsigned cold_ms;
    uint64_t rng;
    unsigned long connections;
    unsigned long api_connections;
    unsigned long requests;
    unsigned long in_flight;
    unsigned long resets; /* tells an answer to a request begun before a reset */
    unsigned long auth_refused;
    struct op_counts ops[FA_OP_COUNT];
    struct rule rules[FA_FAULTS_MAX];
    size_t nrules;
};

struct fa_control *fa_control_new(unsigned latency_ms, unsigned jitter_ms, unsigned cold_ms)
{
    struct fa_control *c = xcalloc(1, sizeof(*c));
    pthread_condattr_t attr;

    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &attr);
    pthread_condattr_destroy(&attr);
    c->latency_ms = latency_ms;
    c->jitter_ms = jitter_ms;
    c->cold_ms = cold_ms;
    c->rng = clock_mono_ns() | 1;
    return c;
}

void fa_control_free(struct fa_control *c)
{
    if (!c) {
        return;
    }
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void fa_control_connection_opened(struct fa_control *c)
{
    pthread_mutex_lock(&c->lock);
    c->connections++;
    pthread_mutex_unlock(&c->lock);
}

void fa_control_api_connection(struct fa_control *c)
{
    pthread_mutex_lock(&c->lock);
    c->api_connections++;
    pthread_mutex_unlock(&c->lock);
}

unsigned long fa_control_begin(struct fa_control *c, enum fa_op op)
{
    unsigned long ticket;

    if (op >= FA_OP_COUNT) {
        op = FA_OP_UNKNOWN;
    }
    pthread_mutex_lock(&c->lock);
    c->requests++;
    c->in_flight++;
    c->ops[op].calls++;
    ticket = c->resets;
    pthread_mutex_unlock(&c->lock);
    return ticket;
}

void fa_control_end(struct fa_control *c, unsigned long ticket, enum fa_op op, int status,
                    int throttled, int auth_refused)
{
    if (op >= FA_OP_COUNT) {
        op = FA_OP_UNKNOWN;
    }
    pthread_mutex_lock(&c->lock);
    c->in_flight -= c->in_flight > 0;
    if (ticket == c->resets) {
        c->auth_refused += auth_refused != 0;
        c->ops[op].errors += status < 200 || status > 299;
        c->ops[op].throttled += throttled != 0;
    }
    pthread_mutex_unlock(&c->lock);
}

unsigned fa_control_delay_ms(struct fa_control *c, int first_on_connection)
{
    unsigned ms;

    pthread_mutex_lock(&c->lock);
    ms = c->latency_ms + (first_on_connection ? c->cold_ms : 0);
    if (c->jitter_ms) {
        /* xorshift64: uniform enough for jitter, and no libc rand() state to share. */
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        ms += (unsigned)(c->rng % ((uint64_t)c->jitter_ms + 1));
    }
    pthread_mutex_unlock(&c->lock);
    return ms;
}

/* Caller holds the lock. */
static void drop_spent(struct fa_control *c)
{
    size_t n = 0;

    for (size_t i = 0; i < c->nrules; i++) {
        if (c->rules[i].left) {
            c->rules[n++] = c->rules[i];
        }
    }
    c->nrules = n;
}

void fa_control_take(struct fa_control *c, enum fa_op op, struct fa_fault *out)
{
    int took_hang = 0;
    int took_fault = 0;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nrules; i++) {
        struct rule *r = &c->rules[i];

        if (!r->left || (r->op != FA_OP_UNKNOWN && r->op != op)) {
            continue;
        }
        if (r->kind == FA_FAULT_HANG && !took_hang) {
            took_hang = 1;
            out->hang_ms = r->hang_ms;
            r->left--;
        } else if (r->kind != FA_FAULT_HANG && !took_fault) {
            took_fault = 1;
            out->kind = r->kind;
            out->status = r->status;
            (void)snprintf(out->type, sizeof(out->type), "%s", r->type);
            (void)snprintf(out->message, sizeof(out->message), "%s", r->message);
            r->left--;
        }
    }
    drop_spent(c);
    pthread_mutex_unlock(&c->lock);
}

enum stash_err fa_control_set_latency(struct fa_control *c, unsigned ms, unsigned jitter_ms,
                                      unsigned cold_ms)
{
    if (ms > FA_DELAY_MAX_MS || jitter_ms > FA_DELAY_MAX_MS || cold_ms > FA_DELAY_MAX_MS) {
        return STASH_EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    c->latency_ms = ms;
    c->jitter_ms = jitter_ms;
    c->cold_ms = cold_ms;
    pthread_mutex_unlock(&c->lock);
    return STASH_OK;
}

/* An error type goes into a JSON string and the x-amzn-ErrorType header: printable ASCII with no
 * space, quote or backslash ("aws.protocoltests#FooError:http://..." is fine). */
static int type_ok(const char *t)
{
    for (; *t; t++) {
        unsigned char ch = (unsigned char)*t;

        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            return 0;
        }
    }
    return 1;
}

enum stash_err fa_control_add(struct fa_control *c, enum fa_fault_kind kind, enum fa_op op,
                              unsigned count, int status, const char *type, const char *message,
                              unsigned hang_ms)
{
    struct rule r;
    enum stash_err rc = STASH_ETOOBIG;

    memset(&r, 0, sizeof(r));
    if (count == 0 || count > FA_FAULT_COUNT_MAX || kind == FA_FAULT_NONE ||
        hang_ms > FA_DELAY_MAX_MS) {
        return STASH_EINVAL;
    }
    if (kind == FA_FAULT_FAIL &&
        (status < 400 || status > 599 || !type || !type[0] || strlen(type) >= sizeof(r.type) ||
         !type_ok(type) || (message && strlen(message) >= sizeof(r.message)))) {
        return STASH_EINVAL;
    }
    r.kind = kind;
    r.op = op;
    r.left = count;
    r.hang_ms = hang_ms;
    if (kind == FA_FAULT_THROTTLE) {
        r.status = 400;
        (void)snprintf(r.type, sizeof(r.type), "ThrottlingException");
        (void)snprintf(r.message, sizeof(r.message), "Rate exceeded");
    } else if (kind == FA_FAULT_FAIL) {
        r.status = status;
        (void)snprintf(r.type, sizeof(r.type), "%s", type);
        (void)snprintf(r.message, sizeof(r.message), "%s",
                       message ? message : "fake-aws: injected failure");
    }
    pthread_mutex_lock(&c->lock);
    if (c->nrules < FA_FAULTS_MAX) {
        c->rules[c->nrules++] = r;
        rc = STASH_OK;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void fa_control_reset(struct fa_control *c)
{
    pthread_mutex_lock(&c->lock);
    c->connections = 0;
    c->api_connections = 0;
    c->requests = 0;
    c->auth_refused = 0;
    memset(c->ops, 0, sizeof(c->ops));
    c->nrules = 0;
    c->resets++;
    pthread_mutex_unlock(&c->lock);
}

enum stash_err fa_control_stats(struct fa_control *c, struct buf *out)
{
    enum stash_err rc;
    struct fa_control snap;

    pthread_mutex_lock(&c->lock);
    snap.connections = c->connections;
    snap.api_connections = c->api_connections;
    snap.requests = c->requests;
    snap.in_flight = c->in_flight;
    snap.auth_refused = c->auth_refused;
    snap.latency_ms = c->latency_ms;
    snap.jitter_ms = c->jitter_ms;
    snap.cold_ms = c->cold_ms;
    snap.nrules = c->nrules;
    memcpy(snap.ops, c->ops, sizeof(snap.ops));
    pthread_mutex_unlock(&c->lock);

    rc = buf_printf(out,
                    "{\"connections\":%lu,\"api_connections\":%lu,\"requests\":%lu,"
                    "\"in_flight\":%lu,"
                    "\"auth_failures\":%lu,\"latency\":{\"ms\":%u,\"jitter_ms\":%u,\"cold_ms\":%u},"
                    "\"pending_faults\":%zu,\"ops\":{",
                    snap.connections, snap.api_connections, snap.requests, snap.in_flight,
                    snap.auth_refused, snap.latency_ms, snap.jitter_ms, snap.cold_ms, snap.nrules);
    for (int i = 0; !rc && i < FA_OP_COUNT; i++) {
        rc = buf_printf(out, "%s\"%s\":{\"calls\":%lu,\"errors\":%lu,\"throttled\":%lu}",
                        i ? "," : "", fa_ops_name((enum fa_op)i), snap.ops[i].calls,
                        snap.ops[i].errors, snap.ops[i].throttled);
    }
    return rc ? rc : buf_puts(out, "}}");
}

int fa_control_sleep(struct fa_control *c, unsigned ms)
{
    struct timespec until;
    int full = 1;

    if (ms == 0) {
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        if (pthread_cond_timedwait(&c->wake, &c->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    full = !c->stopping;
    pthread_mutex_unlock(&c->lock);
    return full ? 0 : -1;
}

void fa_control_shutdown(struct fa_control *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
}
