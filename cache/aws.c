/* cache/aws.c: Secrets Manager GetSecretValue and SSM GetParameter over AWS JSON 1.1.
 *
 * One call:
 *   POST <endpoint path, "/" by default>
 *   Host, Content-Type: application/x-amz-json-1.1, X-Amz-Target, X-Amz-Date,
 *   X-Amz-Security-Token (when there is one), Authorization (SigV4 over all of those)
 *   {"SecretId":...,"VersionId":...,"VersionStage":...} / {"Name":"n[:sel]","WithDecryption":b}
 * Every answer is read by cache/upstream.c (reshaped on success, its error code and message on
 * failure); this file adds what only the transport knows (timeouts, resets, TLS, the size
 * ceiling, stop) and decides whether to try again.
 *
 * Connections: per service a stack of idle easy handles, created lazily up to max_connections;
 * each handle keeps its own connection alive between calls, so at most max_connections
 * connections per service exist.  A caller with no idle handle waits on a condition variable
 * (bounded by its deadline, on the monotonic clock).
 *
 * Stopping (aws_client_stop): every socket libcurl uses is opened and closed through our
 * callbacks, which keep a registry of them; stop sets a flag and shuts every registered socket
 * down, so a call blocked on a silent upstream returns at once instead of after its timeout or
 * the 30 s stall limit.  The flag is also checked before each attempt, while waiting for a
 * handle, during backoff and from libcurl's progress callback; no socket opens once it is set.
 *
 * Secrets: the request body, the header list (token, Authorization) and the response body are
 * wiped before they are freed (cache/upstream.c wipes what it parses).  Copies libcurl makes
 * internally (its send buffer) are not ours to wipe.
 */
#include "cache/aws.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache/sigv4.h"
#include "cache/upstream.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

/* AWS_STALL_*: an attempt whose answer arrives slower than AWS_STALL_BYTES_PER_S for
 * AWS_STALL_SECONDS is cut off (UP_TIMEOUT), with or without an overall timeout.  A real
 * answer (at most about 1 MiB, usually a few KB) comes at network speed; one byte now and then is
 * progress for a byte-level stall check but keeps a pooled handle forever.  The floor bounds any
 * attempt to AWS_STALL_SECONDS of stall or max_response / AWS_STALL_BYTES_PER_S seconds of drip. */
#define AWS_DEFAULT_MAX_RESPONSE ((size_t)1024 * 1024)
#define AWS_CONNECT_TIMEOUT_MS   3000L
#define AWS_STALL_SECONDS        10L
#define AWS_STALL_BYTES_PER_S    1024L
#define AWS_BACKOFF_DEFAULT_MS   50u
#define AWS_BACKOFF_CAP_MS       2000u
#define AWS_HEADER_MAX           ((size_t)16 * 1024) /* one header line we build (the token is < 4 KiB) */
#define AWS_CONTENT_TYPE         "application/x-amz-json-1.1"

struct aws_service {
    const char *name; /* signing name and X-Amz-Target prefix owner: "secretsmanager", "ssm" */
    char *url;        /* normalised endpoint URL */
    char *host;       /* Host header: host[:port], a default port left out */
    char *path;       /* request path: the endpoint's, "/" when it has none */
    long timeout_ms;  /* whole call, 0: none */
    pthread_mutex_t lock;
    pthread_cond_t freed; /* signalled when a handle goes back to idle */
    CURL **idle;          /* stack of idle handles, max entries */
    unsigned nidle;
    unsigned created; /* handles in existence, <= max */
    unsigned max;
};

struct aws_client {
    char *region;
    char *akid;   /* secret */
    char *secret; /* secret */
    char *token;  /* secret, NULL if none */
    char *ca_bundle;
    unsigned max_attempts;
    size_t max_response;
    unsigned backoff_base_ms;
    struct aws_service sm;
    struct aws_service ssm;
    atomic_int stopping;       /* aws_client_stop was called */
    pthread_mutex_t sock_lock; /* guards socks; held across shutdown(2), never across I/O */
    int *socks;                /* open sockets, -1 in free slots */
    size_t nsocks;             /* slots */
};

/* What one HTTP exchange gave. */
struct attempt {
    CURLcode cc;
    long status;
    struct buf body; /* ceiling: max_response */
    int too_big;
    char errtype[UPSTREAM_TYPE_MAX]; /* X-Amzn-ErrorType, cleaned */
    char curl_err[CURL_ERROR_SIZE];
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void free_secret_str(char *s)
{
    if (s) {
        xfree_secret(s, strlen(s) + 1);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void facts_record(struct facts *f, double ms, long status, int throttled, int error)
{
    if (!f) {
        return;
    }
    if (f->ncalls_recorded < FACTS_MAX_CALLS) {
        struct facts_call *c = &f->calls[f->ncalls_recorded++];

        c->ms = ms;
        c->http_status = (int)status;
        c->throttled = (uint8_t)(throttled != 0);
        c->error = (uint8_t)(error != 0);
    }
    f->ncalls++;
}

/* ---- libcurl ------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct attempt *a = ud;
    size_t len = size * n;

    if (buf_append(&a->body, p, len) != STASH_OK) {
        a->too_big = 1;
        return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct attempt *a = ud;

    upstream_header_line(p, size * n, a->errtype);
    return size * n;
}

static int stopping(const struct aws_client *c)
{
    return atomic_load(&((struct aws_client *)c)->stopping);
}

/* libcurl opens every socket here, so aws_client_stop can shut it down.  None opens once stop
 * was called.  A full registry (more sockets than 4 per pooled handle) still opens the socket;
 * the progress callback then ends that transfer on stop, within about a second. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct aws_client *c = ud;
    int fd = -1;
    size_t i;

    (void)purpose;
    pthread_mutex_lock(&c->sock_lock);
    if (!atomic_load(&c->stopping)) {
        fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
        for (i = 0; fd >= 0 && i < c->nsocks; i++) {
            if (c->socks[i] < 0) {
                c->socks[i] = fd;
                break;
            }
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    return fd >= 0 ? (curl_socket_t)fd : CURL_SOCKET_BAD;
}

static int on_close_socket(void *ud, curl_socket_t fd)
{
    struct aws_client *c = ud;
    size_t i;

    /* Out of the registry before close(): the number may be reused by another open. */
    pthread_mutex_lock(&c->sock_lock);
    for (i = 0; i < c->nsocks; i++) {
        if (c->socks[i] == (int)fd) {
            c->socks[i] = -1;
            break;
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    return close((int)fd);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return stopping(ud); /* nonzero: CURLE_ABORTED_BY_CALLBACK */
}

static CURL *handle_new(const struct aws_client *c, const struct aws_service *s)
{
    CURL *h = curl_easy_init();

    if (!h) {
        LOG_ERROR("aws", "curl_easy_init failed: out of memory");
        abort();
    }
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stash/0.1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    /* A stalled or dripping answer must not hold a pooled handle forever when there is no
     * overall bound. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, AWS_STALL_BYTES_PER_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, AWS_STALL_SECONDS);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (c->ca_bundle) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_bundle);
    }
    return h;
}

/* Takes an idle handle, or makes one when fewer than max exist, or waits for one.  NULL when
 * the deadline (monotonic ns, 0: none) passes first or the client is stopping. */
static CURL *pool_acquire(const struct aws_client *c, struct aws_service *s, uint64_t deadline)
{
    CURL *h = NULL;
    int make = 0;

    pthread_mutex_lock(&s->lock);
    while (s->nidle == 0 && s->created >= s->max) {
        if (stopping(c)) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        if (deadline) {
            struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                                  .tv_nsec = (long)(deadline % 1000000000u)};

            if (pthread_cond_timedwait(&s->freed, &s->lock, &ts) == ETIMEDOUT && s->nidle == 0 &&
                s->created >= s->max) {
                pthread_mutex_unlock(&s->lock);
                return NULL;
            }
        } else {
            pthread_cond_wait(&s->freed, &s->lock);
        }
    }
    if (s->nidle) {
        h = s->idle[--s->nidle];
    } else {
        s->created++;
        make = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (make) {
        h = handle_new(c, s);
    }
    return h;
}

static void pool_release(struct aws_service *s, CURL *h)
{
    pthread_mutex_lock(&s->lock);
    s->idle[s->nidle++] = h;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

static void slist_free_secret(struct curl_slist *l)
{
    struct curl_slist *p;

    for (p = l; p; p = p->next) {
        mem_wipe(p->data, strlen(p->data));
    }
    curl_slist_free_all(l);
}

/* A header list being built: after the first failure nothing more is added, and the error is
 * asked once at the end (as a struct buf remembers its first failed append). */
struct headers {
    struct curl_slist *list;
    enum stash_err err;
};

/* Appends "Name: value" through a buffer we wipe (the value may be the token); value NULL:
 * "Name:", which tells libcurl not to send a header it would add itself. */
static void add_header(struct headers *h, const char *name, const char *value)
{
    struct buf line = BUF_INIT(AWS_HEADER_MAX);
    struct curl_slist *l;

    if (h->err) {
        return;
    }
    h->err = value ? buf_printf(&line, "%s: %s", name, value) : buf_printf(&line, "%s:", name);
    if (!h->err) {
        l = curl_slist_append(h->list, line.data);
        if (!l) {
            h->err = STASH_EIO;
        } else {
            h->list = l;
        }
    }
    buf_release_secret(&line);
}

/* Signs a request to s (target, body req, date amz) and builds its header list into *h. */
static void sign(const struct aws_client *c, const struct aws_service *s, const char *target,
                 const struct buf *req, const char *amz, struct headers *h)
{
    struct sigv4_header sh[5];
    struct sigv4_input in = {0};
    struct buf authz = BUF_INIT(AWS_HEADER_MAX);
    size_t nh = 0;

    sh[nh].name = "host";
    sh[nh++].value = s->host;
    sh[nh].name = "content-type";
    sh[nh++].value = AWS_CONTENT_TYPE;
    sh[nh].name = "x-amz-date";
    sh[nh++].value = amz;
    sh[nh].name = "x-amz-target";
    sh[nh++].value = target;
    if (c->token) {
        sh[nh].name = "x-amz-security-token";
        sh[nh++].value = c->token;
    }
    in.method = "POST";
    in.path = s->path;
    in.query = "";
    in.headers = sh;
    in.nheaders = nh;
    in.payload = req->data;
    in.payload_len = req->len;
    in.region = c->region;
    in.service = s->name;
    in.amz_date = amz;
    in.access_key_id = c->akid;
    in.secret_access_key = c->secret;
    in.normalize_path = 1;
    h->err = sigv4_authorization(&in, &authz);
    add_header(h, "Host", s->host);
    add_header(h, "Content-Type", AWS_CONTENT_TYPE);
    add_header(h, "X-Amz-Date", amz);
    add_header(h, "X-Amz-Target", target);
    if (c->token) {
        add_header(h, "X-Amz-Security-Token", c->token);
    }
    add_header(h, "Authorization", authz.data);
    /* No "Expect: 100-continue" round trip for larger bodies. */
    add_header(h, "Expect", NULL);
    buf_release_secret(&authz);
}

/* Signs and sends one request on h; fills a.  An error: nothing was sent (it cannot be signed). */
static enum stash_err perform(const struct aws_client *c, const struct aws_service *s, CURL *h,
                              const char *target, const struct buf *req, long timeout_ms,
                              struct attempt *a)
{
    struct headers hd = {NULL, STASH_OK};
    char amz[CLOCK_AMZ_LEN];
    long connect_ms = AWS_CONNECT_TIMEOUT_MS;

    clock_format_amz((int64_t)(clock_real_ms() / 1000u), amz);
    sign(c, s, target, req, amz, &hd);
    if (hd.err) {
        slist_free_secret(hd.list);
        return hd.err;
    }
    if (timeout_ms > 0 && timeout_ms < connect_ms) {
        connect_ms = timeout_ms;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd.list);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->curl_err);
    a->curl_err[0] = '\0';
    a->cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    /* Leave nothing in the pooled handle that points at memory about to be freed. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    slist_free_secret(hd.list);
    return STASH_OK;
}

static int curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

/* ---- the call ----------------------------------------------------------------------------- */

struct call {
    struct aws_client *c;
    struct aws_service *s;
    enum upstream_op op;
    const char *target; /* X-Amz-Target */
    const char *name;   /* secret id / parameter name, for logs */
};

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Sleeps ms, in slices of at most 10 ms so that aws_client_stop cuts it short. */
static void sleep_ms(const struct aws_client *c, uint64_t ms)
{
    while (ms && !stopping(c)) {
        uint64_t n = ms < 10u ? ms : 10u;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)n * 1000000L};

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        ms -= n;
    }
}

/* Judges one finished attempt into *r (its attempts count kept) and records it in facts.
 * Returns 1 when another attempt may answer differently. */
static int judge(const struct call *k, const struct attempt *a, double ms,
                 struct upstream_result *r, struct facts *facts)
{
    const struct aws_service *s = k->s;
    unsigned sent = r->attempts;
    int retry;

    if (a->cc == CURLE_OK) {
        retry = upstream_read(k->op, a->status, a->errtype, a->body.data, a->body.len, r);
        r->attempts = sent;
        facts_record(facts, ms, a->status, r->outcome == UP_THROTTLED,
                     a->status < 200 || a->status >= 300);
        return retry;
    }
    upstream_result_release(r);
    r->attempts = sent;
    if (a->too_big) {
        /* A too-big body still came with a status; a transport failure has none. */
        r->outcome = UP_BAD_ANSWER;
        r->http_status = a->status;
        (void)snprintf(r->message, sizeof(r->message), "answer from %s larger than %zu bytes",
                       s->name, k->c->max_response);
        retry = 0; /* a retry would not make it smaller */
    } else if (a->cc == CURLE_OPERATION_TIMEDOUT) {
        r->outcome = UP_TIMEOUT;
        retry = 1;
    } else {
        r->outcome = UP_UNREACHABLE;
        (void)snprintf(r->message, sizeof(r->message), "%s at %s: %s", s->name, s->host,
                       a->curl_err[0] ? a->curl_err : curl_easy_strerror(a->cc));
        retry = curl_transient(a->cc); /* TLS and configuration errors stay */
    }
    facts_record(facts, ms, r->http_status, 0, 1);
    return retry;
}

/* Makes one attempt, unless the call is stopped or out of time (deadline: monotonic ns, 0:
 * none); *r says how it ended.  Returns 1 when another attempt may answer differently. */
static int attempt_once(const struct call *k, const struct buf *req, uint64_t deadline,
                        struct upstream_result *r, struct facts *facts)
{
    struct aws_service *s = k->s;
    struct attempt a;
    long remaining = 0;
    uint64_t t0;
    CURL *h;
    enum stash_err rc;
    int retry;

    if (stopping(k->c)) {
        r->outcome = UP_ABANDONED;
        return 0;
    }
    if (deadline) {
        uint64_t now = clock_mono_ns();

        if (now >= deadline) {
            r->outcome = UP_TIMEOUT;
            return 0;
        }
        remaining = (long)((deadline - now + 999999u) / 1000000u);
    }
    h = pool_acquire(k->c, s, deadline);
    if (!h) {
        r->outcome = stopping(k->c) ? UP_ABANDONED : UP_TIMEOUT;
        return 0;
    }
    memset(&a, 0, sizeof(a));
    buf_init(&a.body, k->c->max_response);
    t0 = clock_mono_ns();
    rc = perform(k->c, s, h, k->target, req, remaining, &a);
    pool_release(s, h);
    if (rc) {
        buf_release_secret(&a.body);
        LOG_ERROR("aws", "%s %s: cannot sign the request: %s", s->name, upstream_op_name(k->op),
                  stash_strerror(rc));
        r->outcome = UP_UNSIGNABLE;
        (void)snprintf(r->message, sizeof(r->message), "stash could not sign the request");
        return 0;
    }
    r->attempts++;
    retry = judge(k, &a, clock_ms_between(t0, clock_mono_ns()), r, facts);
    buf_release_secret(&a.body);
    if (r->outcome != UP_OK && stopping(k->c)) {
        r->outcome = UP_ABANDONED; /* whatever the transfer says, it was cut short by us */
        return 0;
    }
    return retry;
}

/* Sleeps before the next attempt (full jitter).  Returns 0, without sleeping, when the wait
 * would run past the deadline. */
static int backoff(const struct call *k, unsigned attempt, uint64_t deadline, uint64_t *rng)
{
    uint64_t window = (uint64_t)k->c->backoff_base_ms << (attempt - 1 < 16 ? attempt - 1 : 16);
    uint64_t wait;

    if (window > AWS_BACKOFF_CAP_MS) {
        window = AWS_BACKOFF_CAP_MS;
    }
    wait = rng_next(rng) % (window + 1);
    if (deadline && clock_mono_ns() + wait * 1000000u >= deadline) {
        return 0;
    }
    sleep_ms(k->c, wait);
    return !stopping(k->c);
}

/* Completes a failed call's result with what only the call knows (its budget, the stop), and
 * logs it.  retry: the last attempt's verdict. */
static void finish(const struct call *k, struct upstream_result *r, int retry)
{
    const struct aws_service *s = k->s;
    const char *op = upstream_op_name(k->op);

    if (r->outcome == UP_TIMEOUT && s->timeout_ms > 0) {
        (void)snprintf(r->message, sizeof(r->message), "no answer from %s within %ld ms", s->name,
                       s->timeout_ms);
    } else if (r->outcome == UP_TIMEOUT) {
        (void)snprintf(r->message, sizeof(r->message),
                       "no answer from %s (every attempt timed out)", s->name);
    } else if (r->outcome == UP_ABANDONED) {
        (void)snprintf(r->message, sizeof(r->message),
                       "stash is shutting down: the call to %s was abandoned", s->name);
    }
    if (r->outcome == UP_UNSIGNABLE) {
        return; /* logged where it happened */
    }
    if (r->outcome == UP_AWS_ERROR && !retry) {
        LOG_INFO("aws", "%s %s %s: HTTP %ld %s", s->name, op, k->name, r->http_status,
                 r->error_type[0] ? r->error_type : "-");
    } else {
        LOG_WARN("aws", "%s %s %s: %s after %u attempt(s) (upstream %ld %s)", s->name, op, k->name,
                 upstream_outcome_name(r->outcome), r->attempts, r->http_status,
                 r->error_type[0] ? r->error_type : "-");
    }
}

static void do_call(const struct call *k, const struct buf *req, struct upstream_result *r,
                    struct facts *facts)
{
    uint64_t start = clock_mono_ns();
    uint64_t deadline = k->s->timeout_ms > 0 ? start + (uint64_t)k->s->timeout_ms * 1000000u : 0;
    uint64_t rng = start ^ (uint64_t)(uintptr_t)&start;
    unsigned attempt;
    int retry;

    memset(r, 0, sizeof(*r));
    for (attempt = 1;; attempt++) {
        retry = attempt_once(k, req, deadline, r, facts);
        if (r->outcome == UP_OK) {
            LOG_DEBUG("aws", "%s %s %s: 200 after %u attempt(s)", k->s->name,
                      upstream_op_name(k->op), k->name, attempt);
            return;
        }
        if (!retry || attempt >= k->c->max_attempts) {
            break;
        }
        LOG_DEBUG("aws", "%s %s %s: attempt %u got HTTP %ld %s, retrying", k->s->name,
                  upstream_op_name(k->op), k->name, attempt, r->http_status, r->error_type);
        if (!backoff(k, attempt, deadline, &rng)) {
            break; /* no time left for another attempt: answer with what we have */
        }
    }
    finish(k, r, retry);
}

/* ---- public ------------------------------------------------------------------------------- */

static int service_init(struct aws_service *s, const char *name, const char *endpoint,
                        const char *region, long timeout_ms, unsigned max)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    char *query = NULL;
    char *url = NULL;
    struct buf b = BUF_INIT(0);
    pthread_condattr_t ca;
    int ok = 0;
    size_t i;

    s->name = name;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    s->max = max;
    s->idle = xcalloc(max, sizeof(*s->idle));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    /* Deadlines are monotonic; the wait for a handle must use the same clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->freed, &ca);
    pthread_condattr_destroy(&ca);
    if (!u) {
        goto out;
    }
    if (endpoint) {
        (void)buf_puts(&b, endpoint);
    } else {
        (void)buf_printf(&b, "https://%s.%s.%s", name, region,
                         strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com");
    }
    if (curl_url_set(u, CURLUPART_URL, b.data, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        goto out;
    }
    if ((strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    for (i = 0; host[i]; i++) {
        if (host[i] >= 'A' && host[i] <= 'Z') {
            host[i] = (char)(host[i] - 'A' + 'a');
        }
    }
    buf_reset(&b);
    (void)buf_puts(&b, host);
    if (port) {
        (void)buf_printf(&b, ":%s", port);
    }
    s->host = buf_detach(&b, NULL);
    s->path = xstrdup(path && *path ? path : "/");
    s->url = xstrdup(url);
    ok = 1;
out:
    buf_release(&b);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(url);
    curl_url_cleanup(u);
    return ok;
}

static void service_release(struct aws_service *s)
{
    unsigned i;

    if (!s->idle) {
        return;
    }
    for (i = 0; i < s->nidle; i++) {
        curl_easy_cleanup(s->idle[i]);
    }
    free(s->idle);
    s->idle = NULL;
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    free(s->url);
    free(s->host);
    free(s->path);
}

struct aws_client *aws_client_new(const struct aws_config *cfg)
{
    struct aws_client *c;
    unsigned maxconn;

    if (!cfg || !cfg->region || !*cfg->region || !cfg->access_key_id || !*cfg->access_key_id ||
        !cfg->secret_access_key || !*cfg->secret_access_key) {
        LOG_ERROR("aws", "no region or no credentials: cannot call AWS");
        return NULL;
    }
    maxconn = cfg->max_connections ? cfg->max_connections : 1;
    c = xcalloc(1, sizeof(*c));
    c->region = xstrdup(cfg->region);
    c->akid = xstrdup(cfg->access_key_id);
    c->secret = xstrdup(cfg->secret_access_key);
    c->token = cfg->session_token && *cfg->session_token ? xstrdup(cfg->session_token) : NULL;
    c->ca_bundle = dup_or_null(cfg->ca_bundle);
    c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 1;
    c->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : AWS_DEFAULT_MAX_RESPONSE;
    c->backoff_base_ms = cfg->backoff_base_ms ? cfg->backoff_base_ms : AWS_BACKOFF_DEFAULT_MS;
    pthread_mutex_init(&c->sock_lock, NULL);
    /* Per handle: its connection, plus room for happy-eyeballs' second family and a reconnect. */
    c->nsocks = (size_t)maxconn * 2u * 4u;
    c->socks = xmalloc(c->nsocks * sizeof(*c->socks));
    for (size_t i = 0; i < c->nsocks; i++) {
        c->socks[i] = -1;
    }
    if (!service_init(&c->sm, "secretsmanager", cfg->sm_endpoint, c->region, cfg->sm_timeout_ms,
                      maxconn)) {
        LOG_ERROR("aws", "Secrets Manager endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    if (!service_init(&c->ssm, "ssm", cfg->ssm_endpoint, c->region, cfg->ssm_timeout_ms, maxconn)) {
        LOG_ERROR("aws", "SSM endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    return c;
}

void aws_client_free(struct aws_client *c)
{
    if (!c) {
        return;
    }
    service_release(&c->sm); /* closes the handles' sockets through on_close_socket */
    service_release(&c->ssm);
    if (c->socks) {
        pthread_mutex_destroy(&c->sock_lock);
        free(c->socks);
    }
    free(c->region);
    free_secret_str(c->akid);
    free_secret_str(c->secret);
    free_secret_str(c->token);
    free(c->ca_bundle);
    free(c);
}

void aws_client_stop(struct aws_client *c)
{
    struct aws_service *svc[2];
    size_t i;

    if (!c) {
        return;
    }
    atomic_store(&c->stopping, 1);
    pthread_mutex_lock(&c->sock_lock);
    for (i = 0; i < c->nsocks; i++) {
        if (c->socks[i] >= 0) {
            (void)shutdown(c->socks[i], SHUT_RDWR); /* its poll wakes: EOF, the call ends */
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    svc[0] = &c->sm;
    svc[1] = &c->ssm;
    for (i = 0; i < 2; i++) {
        pthread_mutex_lock(&svc[i]->lock);
        pthread_cond_broadcast(&svc[i]->freed); /* waiters for a handle see the flag */
        pthread_mutex_unlock(&svc[i]->lock);
    }
    LOG_DEBUG("aws", "stopped: calls in flight are abandoned, new ones refused");
}

static void put_json_field(struct buf *b, const char *sep, const char *key, const char *v)
{
    (void)buf_printf(b, "%s\"%s\":\"", sep, key);
    (void)buf_put_json_escaped(b, v, strlen(v));
    (void)buf_putc(b, '"');
}

static void bad_request(struct upstream_result *out, const char *message)
{
    memset(out, 0, sizeof(*out));
    out->outcome = UP_BAD_REQUEST;
    (void)snprintf(out->message, sizeof(out->message), "%s", message);
}

void aws_get_secret_value(struct aws_client *c, const struct aws_sm_request *req,
                          struct upstream_result *out, struct facts *facts)
{
    struct buf body = BUF_INIT(0);
    struct call k = {c, &c->sm, UPSTREAM_GET_SECRET_VALUE, "secretsmanager.GetSecretValue", NULL};

    if (!req || !req->secret_id || !*req->secret_id) {
        bad_request(out, "secretId is required");
        return;
    }
    k.name = req->secret_id;
    (void)buf_putc(&body, '{');
    put_json_field(&body, "", "SecretId", req->secret_id);
    if (req->version_id) {
        put_json_field(&body, ",", "VersionId", req->version_id);
    }
    if (req->version_stage) {
        put_json_field(&body, ",", "VersionStage", req->version_stage);
    }
    (void)buf_putc(&body, '}');
    if (buf_error(&body)) {
        bad_request(out, "request too large");
    } else {
        do_call(&k, &body, out, facts);
    }
    buf_release_secret(&body);
}

void aws_get_parameter(struct aws_client *c, const struct aws_ssm_request *req,
                       struct upstream_result *out, struct facts *facts)
{
    struct buf body = BUF_INIT(0);
    struct buf name = BUF_INIT(0);
    struct call k = {c, &c->ssm, UPSTREAM_GET_PARAMETER, "AmazonSSM.GetParameter", NULL};
    const char *sel = NULL;

    if (!req || !req->name || !*req->name) {
        bad_request(out, "name is required");
        return;
    }
    if (req->version && *req->version) {
        sel = req->version;
    } else if (req->label && *req->label) {
        sel = req->label;
    }
    (void)buf_puts(&name, req->name);
    if (sel) {
        (void)buf_printf(&name, ":%s", sel);
    }
    k.name = name.data;
    (void)buf_putc(&body, '{');
    put_json_field(&body, "", "Name", name.data);
    (void)buf_printf(&body, ",\"WithDecryption\":%s}", req->with_decryption ? "true" : "false");
    if (buf_error(&name) || buf_error(&body)) {
        bad_request(out, "request too large");
    } else {
        do_call(&k, &body, out, facts);
    }
    buf_release_secret(&body);
    buf_release(&name);
}
