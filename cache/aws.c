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
#include "common/str.h"

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
#define AWS_REGIONS_MAX          64 /* regions with clients at most (AWS has fewer) */
#define AWS_BATCH_PAGES_MAX      20 /* pages of one batch call at most (NextToken) */

struct aws_service {
    const char *name;   /* signing name and X-Amz-Target prefix owner: "secretsmanager", "ssm" */
    const char *region; /* signing region: its aws_region's name */
    char *url;          /* normalised endpoint URL */
    char *host;         /* Host header: host[:port], a default port left out */
    char *path;         /* request path: the endpoint's, "/" when it has none */
    long timeout_ms;    /* whole call, 0: none */
    pthread_mutex_t lock;
    pthread_cond_t freed; /* signalled when a handle goes back to idle */
    CURL **idle;          /* stack of idle handles, max entries */
    unsigned nidle;
    unsigned created; /* handles in existence, <= max */
    unsigned max;
};

/* One region's clients: a pool per service, signed for the region.  Created on first use and
 * kept until aws_client_free. */
struct aws_region {
    char *name;
    struct aws_service sm;
    struct aws_service ssm;
    struct aws_region *next;
};

/* STASH_REGION_ENDPOINTS, parsed: region=URL. */
struct region_endpoint {
    char *region;
    char *url;
};

struct aws_client {
    char *akid;   /* secret */
    char *secret; /* secret */
    char *token;  /* secret, NULL if none */
    char *ca_bundle;
    char *sm_endpoint;  /* override for every region, NULL: none */
    char *ssm_endpoint; /* override for every region, NULL: none */
    struct region_endpoint *map;
    size_t nmap;
    long sm_timeout_ms;
    long ssm_timeout_ms;
    unsigned maxconn;
    unsigned max_attempts;
    size_t max_response;
    unsigned backoff_base_ms;
    struct aws_region *home;      /* the configured region: the list's first, never locked */
    pthread_mutex_t regions_lock; /* guards the list after home, and nregions */
    unsigned nregions;
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
    in.region = s->region;
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

/* A batch call's items, and the NextToken of the page last read. */
struct batch {
    struct upstream_item *items;
    size_t n;
    char *next_token; /* owned, NULL: no more pages */
    char label[160];  /* the call's name in logs: the first id, "and others" */
};

struct call {
    struct aws_client *c;
    struct aws_service *s;
    enum upstream_op op;
    const char *target;  /* X-Amz-Target */
    const char *name;    /* secret id / parameter name, for logs */
    size_t max_body;     /* ceiling on the answer */
    struct batch *batch; /* NULL: a single-item call */
};

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

    if (a->cc == CURLE_OK && k->batch && a->status >= 200 && a->status < 300) {
        upstream_result_release(r);
        r->attempts = sent;
        r->http_status = a->status;
        r->outcome = UP_OK;
        if (upstream_read_batch_page(k->op, a->body.data, a->body.len, k->batch->items, k->batch->n,
                                     &k->batch->next_token) != STASH_OK) {
            r->outcome = UP_BAD_ANSWER;
            (void)snprintf(r->message, sizeof(r->message),
                           "unreadable answer from %s (not the expected JSON)", s->name);
        }
        facts_record(facts, ms, a->status, 0, 0);
        return 0;
    }
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
                       s->name, k->max_body);
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
    buf_init(&a.body, k->max_body);
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
    wait = xorshift64(rng) % (window + 1);
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

/* Parses an endpoint URL into the normalised URL, the Host header (host[:port], lower case, a
 * default port left out) and the request path.  0 unless it is an http(s) URL without query. */
static int endpoint_parse(const char *endpoint, char **url_out, char **host_out, char **path_out)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    char *query = NULL;
    char *url = NULL;
    struct buf b = BUF_INIT(0);
    int ok = 0;

    if (!u || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
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
    for (size_t i = 0; host[i]; i++) {
        if (host[i] >= 'A' && host[i] <= 'Z') {
            host[i] = (char)(host[i] - 'A' + 'a');
        }
    }
    (void)buf_puts(&b, host);
    if (port) {
        (void)buf_printf(&b, ":%s", port);
    }
    if (host_out) {
        *host_out = buf_detach(&b, NULL);
        *path_out = xstrdup(path && *path ? path : "/");
        *url_out = xstrdup(url);
    }
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

/* endpoint NULL: the service's regional AWS endpoint. */
static int service_init(struct aws_service *s, const char *name, const char *endpoint,
                        const char *region, long timeout_ms, unsigned max)
{
    struct buf b = BUF_INIT(0);
    pthread_condattr_t ca;
    int ok;

    s->name = name;
    s->region = region;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    s->max = max;
    s->idle = xcalloc(max, sizeof(*s->idle));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    /* Deadlines are monotonic; the wait for a handle must use the same clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->freed, &ca);
    pthread_condattr_destroy(&ca);
    if (endpoint) {
        (void)buf_puts(&b, endpoint);
    } else {
        (void)buf_printf(&b, "https://%s.%s.%s", name, region,
                         strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com");
    }
    ok = endpoint_parse(b.data, &s->url, &s->host, &s->path);
    buf_release(&b);
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

/* ---- regions ------------------------------------------------------------------------------ */

static int region_name_ok(const char *r, size_t n)
{
    if (n == 0 || n >= AWS_REGION_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

int aws_id_region(const char *id, char region[AWS_REGION_MAX])
{
    const char *p = id;
    const char *end;

    region[0] = '\0';
    if (!id || strncmp(id, "arn:", 4) != 0) {
        return 1;
    }
    /* arn:partition:service:region:account:resource */
    for (int field = 0; field < 3; field++) {
        p = strchr(p, ':');
        if (!p) {
            return 1; /* not an ARN after all: AWS will say what it thinks of it */
        }
        p++;
    }
    end = strchr(p, ':');
    if (!end || end == p) {
        return 1;
    }
    if (!region_name_ok(p, (size_t)(end - p))) {
        return 0;
    }
    memcpy(region, p, (size_t)(end - p));
    region[end - p] = '\0';
    return 1;
}

/* The endpoint of one service in one region: an AWS_ENDPOINT_URL* override wins for every
 * region; else the region's STASH_REGION_ENDPOINTS entry; else NULL (AWS's own). */
static const char *endpoint_for(const struct aws_client *c, const char *override,
                                const char *region)
{
    if (override) {
        return override;
    }
    for (size_t i = 0; i < c->nmap; i++) {
        if (strcmp(c->map[i].region, region) == 0) {
            return c->map[i].url;
        }
    }
    return NULL;
}

static void region_free(struct aws_region *r)
{
    if (r) {
        service_release(&r->sm); /* closes the handles' sockets through on_close_socket */
        service_release(&r->ssm);
        free(r->name);
        free(r);
    }
}

static struct aws_region *region_new(const struct aws_client *c, const char *name)
{
    struct aws_region *r = xcalloc(1, sizeof(*r));

    r->name = xstrdup(name);
    if (!service_init(&r->sm, "secretsmanager", endpoint_for(c, c->sm_endpoint, name), r->name,
                      c->sm_timeout_ms, c->maxconn) ||
        !service_init(&r->ssm, "ssm", endpoint_for(c, c->ssm_endpoint, name), r->name,
                      c->ssm_timeout_ms, c->maxconn)) {
        region_free(r);
        return NULL;
    }
    return r;
}

/* Room in the socket registry for one more region's handles: per handle its connection, plus
 * room for happy-eyeballs' second family and a reconnect. */
static void socks_grow(struct aws_client *c)
{
    size_t more = (size_t)c->maxconn * 2u * 4u;

    pthread_mutex_lock(&c->sock_lock);
    c->socks = xrealloc(c->socks, (c->nsocks + more) * sizeof(*c->socks));
    for (size_t i = 0; i < more; i++) {
        c->socks[c->nsocks + i] = -1;
    }
    c->nsocks += more;
    pthread_mutex_unlock(&c->sock_lock);
}

/* The clients of the region id addresses (home for a name or an ARN in the configured region),
 * made on first use.  NULL, with *why set, for an ARN whose region is not a region name, or
 * past AWS_REGIONS_MAX regions. */
static struct aws_region *region_for(struct aws_client *c, const char *id, const char **why)
{
    char name[AWS_REGION_MAX];
    struct aws_region *r;

    if (!aws_id_region(id, name)) {
        *why = "the ARN's region is not a region name";
        return NULL;
    }
    if (!name[0] || strcmp(name, c->home->name) == 0) {
        return c->home;
    }
    pthread_mutex_lock(&c->regions_lock);
    for (r = c->home->next; r; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            break;
        }
    }
    if (!r && c->nregions + 1 >= AWS_REGIONS_MAX) {
        *why = "too many regions";
    } else if (!r) {
        r = region_new(c, name);
        if (r) {
            socks_grow(c);
            r->next = c->home->next;
            c->home->next = r;
            c->nregions++;
            LOG_DEBUG("aws", "region %s: clients for %s and %s", r->name, r->sm.url, r->ssm.url);
        } else {
            *why = "no endpoint for that region";
        }
    }
    pthread_mutex_unlock(&c->regions_lock);
    return r;
}

/* STASH_REGION_ENDPOINTS: "region=URL[,region=URL...]".  0 (and a log line) when malformed. */
static int map_parse(struct aws_client *c, const char *spec)
{
    char *copy;
    char *save = NULL;
    char *tok;
    int ok = 1;

    if (!spec || !*spec) {
        return 1;
    }
    copy = xstrdup(spec);
    for (tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');

        while (*tok == ' ') {
            tok++;
        }
        if (!eq || !region_name_ok(tok, (size_t)(eq - tok)) ||
            !endpoint_parse(eq + 1, NULL, NULL, NULL)) {
            LOG_ERROR("aws", "STASH_REGION_ENDPOINTS: \"%s\" is not region=http(s)-URL", tok);
            ok = 0;
            break;
        }
        *eq = '\0';
        c->map = xrealloc(c->map, (c->nmap + 1) * sizeof(*c->map));
        c->map[c->nmap].region = xstrdup(tok);
        c->map[c->nmap].url = xstrdup(eq + 1);
        c->nmap++;
    }
    free(copy);
    return ok;
}

/* ---- the client --------------------------------------------------------------------------- */

static void client_config(struct aws_client *c, const struct aws_config *cfg)
{
    c->maxconn = cfg->max_connections ? cfg->max_connections : 1;
    c->akid = xstrdup(cfg->access_key_id);
    c->secret = xstrdup(cfg->secret_access_key);
    c->token = cfg->session_token && *cfg->session_token ? xstrdup(cfg->session_token) : NULL;
    c->ca_bundle = dup_or_null(cfg->ca_bundle);
    c->sm_endpoint = dup_or_null(cfg->sm_endpoint);
    c->ssm_endpoint = dup_or_null(cfg->ssm_endpoint);
    c->sm_timeout_ms = cfg->sm_timeout_ms;
    c->ssm_timeout_ms = cfg->ssm_timeout_ms;
    c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 1;
    c->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : AWS_DEFAULT_MAX_RESPONSE;
    c->backoff_base_ms = cfg->backoff_base_ms ? cfg->backoff_base_ms : AWS_BACKOFF_DEFAULT_MS;
}

struct aws_client *aws_client_new(const struct aws_config *cfg)
{
    struct aws_client *c;

    if (!cfg || !cfg->region || !*cfg->region || !cfg->access_key_id || !*cfg->access_key_id ||
        !cfg->secret_access_key || !*cfg->secret_access_key) {
        LOG_ERROR("aws", "no region or no credentials: cannot call AWS");
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    client_config(c, cfg);
    pthread_mutex_init(&c->sock_lock, NULL);
    pthread_mutex_init(&c->regions_lock, NULL);
    if (!map_parse(c, cfg->region_endpoints)) {
        aws_client_free(c);
        return NULL;
    }
    if (cfg->sm_endpoint && !endpoint_parse(cfg->sm_endpoint, NULL, NULL, NULL)) {
        LOG_ERROR("aws", "Secrets Manager endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    if (cfg->ssm_endpoint && !endpoint_parse(cfg->ssm_endpoint, NULL, NULL, NULL)) {
        LOG_ERROR("aws", "SSM endpoint is not an http(s) URL without a query");
        aws_client_free(c);
        return NULL;
    }
    c->home = region_new(c, cfg->region);
    if (!c->home) {
        LOG_ERROR("aws", "no endpoint can be made for region %s", cfg->region);
        aws_client_free(c);
        return NULL;
    }
    socks_grow(c);
    return c;
}

void aws_client_free(struct aws_client *c)
{
    struct aws_region *r;

    if (!c) {
        return;
    }
    r = c->home;
    while (r) {
        struct aws_region *next = r->next;

        region_free(r);
        r = next;
    }
    pthread_mutex_destroy(&c->sock_lock);
    pthread_mutex_destroy(&c->regions_lock);
    free(c->socks);
    for (size_t i = 0; i < c->nmap; i++) {
        free(c->map[i].region);
        free(c->map[i].url);
    }
    free(c->map);
    free_secret_str(c->akid);
    free_secret_str(c->secret);
    free_secret_str(c->token);
    free(c->ca_bundle);
    free(c->sm_endpoint);
    free(c->ssm_endpoint);
    free(c);
}

static void wake_waiters(struct aws_service *s)
{
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->freed); /* waiters for a handle see the flag */
    pthread_mutex_unlock(&s->lock);
}

void aws_client_stop(struct aws_client *c)
{
    if (!c) {
        return;
    }
    atomic_store(&c->stopping, 1);
    pthread_mutex_lock(&c->sock_lock);
    for (size_t i = 0; i < c->nsocks; i++) {
        if (c->socks[i] >= 0) {
            (void)shutdown(c->socks[i], SHUT_RDWR); /* its poll wakes: EOF, the call ends */
        }
    }
    pthread_mutex_unlock(&c->sock_lock);
    pthread_mutex_lock(&c->regions_lock);
    for (struct aws_region *r = c->home; r; r = r->next) {
        wake_waiters(&r->sm);
        wake_waiters(&r->ssm);
    }
    pthread_mutex_unlock(&c->regions_lock);
    LOG_DEBUG("aws", "stopped: calls in flight are abandoned, new ones refused");
}

/* ---- the calls ---------------------------------------------------------------------------- */

static void put_json_string(struct buf *b, const char *v)
{
    (void)buf_putc(b, '"');
    (void)buf_put_json_escaped(b, v, strlen(v));
    (void)buf_putc(b, '"');
}

static void put_json_field(struct buf *b, const char *sep, const char *key, const char *v)
{
    (void)buf_printf(b, "%s\"%s\":", sep, key);
    put_json_string(b, v);
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
    struct call k = {c, NULL, UPSTREAM_GET_SECRET_VALUE, "secretsmanager.GetSecretValue", NULL,
                     0, NULL};
    struct aws_region *r;
    const char *why = NULL;

    if (!req || !req->secret_id || !*req->secret_id) {
        bad_request(out, "secretId is required");
        return;
    }
    r = region_for(c, req->secret_id, &why);
    if (!r) {
        bad_request(out, why);
        return;
    }
    k.s = &r->sm;
    k.name = req->secret_id;
    k.max_body = c->max_response;
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
    struct call k = {c, NULL, UPSTREAM_GET_PARAMETER, "AmazonSSM.GetParameter", NULL, 0, NULL};
    struct aws_region *r;
    const char *why = NULL;
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
    /* The Region comes from the Name as sent (as for GetParameters), which is also what the
     * local cache keys the answer by: one Name, one Region, one entry. */
    r = buf_error(&name) ? NULL : region_for(c, name.data, &why);
    if (!r) {
        bad_request(out, why ? why : "request too large");
        buf_release(&name);
        return;
    }
    k.s = &r->ssm;
    k.name = name.data;
    k.max_body = c->max_response;
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

/* ---- batch calls -------------------------------------------------------------------------- */

/* Every item the call did not answer (a value, or an error of its own) gets the failed call's
 * outcome, code and message. */
static void items_fail(struct upstream_item *items, size_t n, const struct upstream_result *call)
{
    for (size_t i = 0; i < n; i++) {
        enum upstream_outcome o = items[i].r.outcome;

        if (o == UP_OK || o == UP_AWS_ERROR || o == UP_THROTTLED) {
            continue;
        }
        upstream_result_release(&items[i].r);
        items[i].r = *call;
        items[i].r.body = NULL;
        items[i].r.len = 0;
    }
}

/* The region every item's id addresses, or NULL (and *why) when they differ or one is bad. */
static struct aws_region *batch_region(struct aws_client *c, const struct upstream_item *items,
                                       size_t n, size_t max, const char **why)
{
    struct aws_region *r = NULL;

    if (n == 0 || n > max) {
        *why = n ? "too many ids for one call" : "no ids";
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct aws_region *ri;

        if (!items[i].id || !*items[i].id) {
            *why = "an empty id";
            return NULL;
        }
        ri = region_for(c, items[i].id, why);
        if (!ri || (r && ri != r)) {
            *why = ri ? "ids in more than one region" : *why;
            return NULL;
        }
        r = ri;
    }
    return r;
}

/* The request of one page: {"SecretIdList":[...],"NextToken":t} or
 * {"Names":[...],"WithDecryption":b}. */
static void batch_body(const struct call *k, int with_decryption, struct buf *body)
{
    const struct batch *b = k->batch;
    int ssm = k->op == UPSTREAM_GET_PARAMETERS;

    (void)buf_puts(body, ssm ? "{\"Names\":[" : "{\"SecretIdList\":[");
    for (size_t i = 0; i < b->n; i++) {
        (void)buf_puts(body, i ? "," : "");
        put_json_string(body, b->items[i].id);
    }
    (void)buf_putc(body, ']');
    if (ssm) {
        (void)buf_printf(body, ",\"WithDecryption\":%s", with_decryption ? "true" : "false");
    } else if (b->next_token) {
        put_json_field(body, ",", "NextToken", b->next_token);
    }
    (void)buf_putc(body, '}');
}

static void batch_call(struct aws_client *c, struct call *k, int with_decryption,
                       struct upstream_result *out, struct facts *facts)
{
    struct batch *b = k->batch;

    (void)snprintf(b->label, sizeof(b->label), "%s%s", b->items[0].id,
                   b->n > 1 ? " and others" : "");
    k->name = b->label;
    /* Each item's answer is bounded as a single call's is. */
    k->max_body = c->max_response * b->n;
    for (unsigned page = 0; page < AWS_BATCH_PAGES_MAX; page++) {
        struct buf body = BUF_INIT(0);

        batch_body(k, with_decryption, &body);
        /* The token went into the body; the page's answer brings the next one. */
        free(b->next_token);
        b->next_token = NULL;
        if (buf_error(&body)) {
            bad_request(out, "request too large");
        } else {
            do_call(k, &body, out, facts);
        }
        buf_release_secret(&body);
        if (out->outcome != UP_OK) {
            items_fail(b->items, b->n, out);
            break;
        }
        if (!b->next_token) {
            break;
        }
    }
    free(b->next_token);
    b->next_token = NULL;
}

/* One batch call of op (target its X-Amz-Target, at most max items) to the items' region. */
static void batch_of(struct aws_client *c, enum upstream_op op, const char *target, size_t max,
                     struct upstream_item *items, size_t n, int with_decryption,
                     struct upstream_result *out, struct facts *facts)
{
    struct batch b = {items, n, NULL, ""};
    struct call k = {c, NULL, op, target, NULL, 0, &b};
    const char *why = NULL;
    struct aws_region *r;

    upstream_batch_start(k.op, items, n);
    r = batch_region(c, items, n, max, &why);
    if (!r) {
        bad_request(out, why);
        items_fail(items, n, out);
        return;
    }
    k.s = op == UPSTREAM_GET_PARAMETERS ? &r->ssm : &r->sm;
    batch_call(c, &k, with_decryption, out, facts);
}

void aws_batch_get_secret_value(struct aws_client *c, struct upstream_item *items, size_t n,
                                struct upstream_result *out, struct facts *facts)
{
    batch_of(c, UPSTREAM_BATCH_GET_SECRET_VALUE, "secretsmanager.BatchGetSecretValue",
             AWS_BATCH_SECRETS_MAX, items, n, 0, out, facts);
}

void aws_get_parameters(struct aws_client *c, struct upstream_item *items, size_t n,
                        int with_decryption, struct upstream_result *out, struct facts *facts)
{
    batch_of(c, UPSTREAM_GET_PARAMETERS, "AmazonSSM.GetParameters", AWS_BATCH_PARAMETERS_MAX, items,
             n, with_decryption, out, facts);
}
