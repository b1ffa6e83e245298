/* telemetry/listener.c: receives Telemetry API batches (HTTP POST of a JSON array) with
 * libmicrohttpd, one internal polling thread, and answers as soon as on_batch() returns. */
#include "telemetry/listener.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#define MOD                    "listener"
#define LISTENER_STOP_GRACE_MS 100 /* at most this long for answers in flight at stop */

struct listener {
    struct MHD_Daemon *daemon;
    size_t max_body;
    listener_batch_fn on_batch;
    void *ctx;
    uint16_t port;
    pthread_mutex_t lock; /* guards batches and active; held only to count and signal */
    pthread_cond_t cond;
    uint64_t batches;
    unsigned active; /* requests begun whose response has not been sent yet */
};

/* Per-request state, in MHD's con_cls; freed in s_completed. */
struct request {
    struct buf body;
    int too_big;
};

void listener_resolve(const char *host, uint16_t port, struct sockaddr_storage *out,
                      socklen_t *outlen)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct addrinfo *ai;
    struct sockaddr_in *sin;

    memset(out, 0, sizeof(*out));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host ? host : "sandbox.localdomain", NULL, &hints, &res) == 0) {
        for (ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET && ai->ai_addrlen <= sizeof(*out)) {
                memcpy(out, ai->ai_addr, ai->ai_addrlen);
                ((struct sockaddr_in *)out)->sin_port = htons(port);
                *outlen = (socklen_t)sizeof(struct sockaddr_in);
                freeaddrinfo(res);
                return;
            }
            if (ai->ai_family == AF_INET6 && ai->ai_addrlen <= sizeof(*out)) {
                memcpy(out, ai->ai_addr, ai->ai_addrlen);
                ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
                *outlen = (socklen_t)sizeof(struct sockaddr_in6);
                freeaddrinfo(res);
                return;
            }
        }
        freeaddrinfo(res);
    }
    /* Outside Lambda the name does not resolve: loopback is what the platform (or a local
     * simulator) connects to, and never a public interface. */
    sin = (struct sockaddr_in *)out;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *outlen = (socklen_t)sizeof(*sin);
}

static enum MHD_Result s_answer(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
                                           MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    struct listener *l = cls;
    struct request *req = *con_cls;
    const char *clen;
    enum stash_err rc;

    (void)url;
    (void)version;
    if (!req) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            return s_answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "{\"errorType\":\"MethodNotAllowed\"}");
        }
        req = xcalloc(1, sizeof(*req));
        buf_init(&req->body, l->max_body);
        pthread_mutex_lock(&l->lock);
        l->active++;
        pthread_mutex_unlock(&l->lock);
        clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (clen && strtoull(clen, NULL, 10) > l->max_body) {
            req->too_big = 1;
        }
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Over the ceiling we keep reading (and dropping) so the 413 goes out on a clean
         * connection instead of a reset the platform would retry blindly. */
        if (!req->too_big && buf_append(&req->body, upload, *upload_size) != STASH_OK) {
            req->too_big = 1;
            buf_release(&req->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->too_big) {
        LOG_WARN(MOD, "telemetry batch over %zu bytes refused (413)", l->max_body);
        return s_answer(conn, MHD_HTTP_CONTENT_TOO_LARGE, "{\"errorType\":\"PayloadTooLarge\"}");
    }
    rc = l->on_batch(l->ctx, req->body.data ? req->body.data : "", req->body.len);
    if (rc == STASH_ETOOBIG) {
        LOG_WARN(MOD, "telemetry batch of %zu bytes refused (413): too many events", req->body.len);
        return s_answer(conn, MHD_HTTP_CONTENT_TOO_LARGE, "{\"errorType\":\"PayloadTooLarge\"}");
    }
    if (rc != STASH_OK) {
        LOG_WARN(MOD, "telemetry batch of %zu bytes refused (400): %s", req->body.len,
                 stash_strerror(rc));
        return s_answer(conn, MHD_HTTP_BAD_REQUEST, "{\"errorType\":\"InvalidBatch\"}");
    }
    pthread_mutex_lock(&l->lock);
    l->batches++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return s_answer(conn, MHD_HTTP_OK, "\"OK\"");
}

/* MHD calls this once the response has been sent (or the connection died). */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct request *req = *con_cls;

    (void)conn;
    (void)toe;
    if (req) {
        buf_release(&req->body);
        free(req);
        *con_cls = NULL;
        pthread_mutex_lock(&l->lock);
        l->active--;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}

enum stash_err listener_start(const struct listener_opts *opts, struct listener **out)
{
    struct listener *l;
    const union MHD_DaemonInfo *info;
    /* ITC lets listener_stop() quiesce: stop accepting, let answers in flight go out. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC;

    *out = NULL;
    if (!opts || !opts->addr || !opts->on_batch ||
        (opts->addr->sa_family != AF_INET && opts->addr->sa_family != AF_INET6)) {
        return STASH_EINVAL;
    }
    l = xcalloc(1, sizeof(*l));
    l->max_body = opts->max_body ? opts->max_body : LISTENER_DEFAULT_MAX_BODY;
    l->on_batch = opts->on_batch;
    l->ctx = opts->ctx;
    pthread_mutex_init(&l->lock, NULL);
    clock_cond_init(&l->cond);
    if (opts->addr->sa_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    /* Lambda sends one batch at a time; a few connections cover its retries.  The timeout only
     * reaps peers that went silent: a frozen sandbox does not count against it. */
    l->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, s_handle, l, MHD_OPTION_SOCK_ADDR, opts->addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)30, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                         MHD_OPTION_NOTIFY_COMPLETED, s_completed, l, MHD_OPTION_END);
    if (!l->daemon) {
        LOG_ERROR(MOD, "cannot listen for telemetry");
        listener_stop(l);
        return STASH_EIO;
    }
    info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
    l->port = info ? info->port : 0;
    *out = l;
    return STASH_OK;
}

uint16_t listener_port(const struct listener *l)
{
    return l->port;
}

uint64_t listener_batches(struct listener *l)
{
    uint64_t n;

    pthread_mutex_lock(&l->lock);
    n = l->batches;
    pthread_mutex_unlock(&l->lock);
    return n;
}

uint64_t listener_wait(struct listener *l, uint64_t seen, uint64_t timeout_ms)
{
    struct timespec ts;
    uint64_t n;

    clock_cond_deadline(timeout_ms, &ts);
    pthread_mutex_lock(&l->lock);
    while (l->batches <= seen) {
        if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) != 0) {
            break;
        }
    }
    n = l->batches;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void listener_stop(struct listener *l)
{
    struct timespec ts;

    if (!l) {
        return;
    }
    if (l->daemon) {
        /* The platform counts a batch as delivered only when our 200 reaches it: stop taking
         * connections, give answers in flight a moment to go out, then stop. */
        (void)MHD_quiesce_daemon(l->daemon);
        clock_cond_deadline(LISTENER_STOP_GRACE_MS, &ts);
        pthread_mutex_lock(&l->lock);
        while (l->active > 0) {
            if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) != 0) {
                break;
            }
        }
        pthread_mutex_unlock(&l->lock);
        MHD_stop_daemon(l->daemon);
    }
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
