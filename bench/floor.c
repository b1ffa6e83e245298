/* bench/floor.c: the floor for stash's hit path: a bare libmicrohttpd responder on loopback that
 * answers every GET with one fixed body (the bytes of stash's own answer for the hot key, so both
 * send the same size), built on the same library as stash.  No routing, no token check, no cache:
 * whatever stash costs above this is stash's own.
 *
 *   floor --port P|0 [--body-file F | --size N] [--mode epoll|thread|pool] [--threads N]
 *
 * Prints "floor listening on 127.0.0.1:<port>" on stdout once it accepts, then serves until
 * SIGTERM or SIGINT.  Modes: epoll (one internal epoll thread, MHD_USE_TURBO), thread (a thread per
 * connection), pool (--threads epoll threads).  A body file is capped at 1 MiB.
 *
 *   floor --loaded [curl]
 *
 * Prints {"rss_kb":..,"rss_file_kb":..,"rss_anon_kb":..,"minflt":..} of its own process as main()
 * begins and exits: what a process linked like stash has resident, and the page faults it took,
 * once the dynamic loader has loaded and relocated the libraries and before it does anything.
 * With "curl", after curl_global_init(CURL_GLOBAL_DEFAULT) as stash calls it (libcurl's and
 * OpenSSL's initialisation: the part of stash's start-up that is libraries' work, not its own).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netinet/in.h>

#define FLOOR_MAX_BODY (1024 * 1024)

struct floor_cfg {
    unsigned port;
    const char *body_file;
    size_t size;
    const char *mode;
    unsigned threads;
};

static enum MHD_Result floor_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_size, void **req_cls)
{
    static int s_seen; /* any non-NULL marker for "the head of this request was seen" */
    struct MHD_Response *resp = cls;

    (void)url;
    (void)version;
    (void)upload_data;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        return MHD_NO;
    }
    /* Answer on the second call, once the whole request is read: a response queued on the first
     * call (request head only) makes libmicrohttpd close the connection after it, which would
     * turn every kept-alive request into a new TCP connection. */
    if (*req_cls == NULL) {
        *req_cls = &s_seen;
        return MHD_YES;
    }
    *upload_size = 0;
    return MHD_queue_response(conn, MHD_HTTP_OK, resp);
}

static char *floor_load_body(const struct floor_cfg *cfg, size_t *len)
{
    char *body = NULL;
    FILE *f = NULL;
    size_t n;

    if (cfg->body_file == NULL) {
        body = malloc(cfg->size + 1);
        if (body == NULL) {
            return NULL;
        }
        memset(body, 'x', cfg->size);
        *len = cfg->size;
        return body;
    }
    f = fopen(cfg->body_file, "rb");
    if (f == NULL) {
        fprintf(stderr, "floor: %s: %s\n", cfg->body_file, strerror(errno));
        return NULL;
    }
    body = malloc(FLOOR_MAX_BODY + 1);
    if (body == NULL) {
        goto out;
    }
    n = fread(body, 1, FLOOR_MAX_BODY + 1, f);
    if (n > FLOOR_MAX_BODY) {
        fprintf(stderr, "floor: %s is over %d bytes\n", cfg->body_file, FLOOR_MAX_BODY);
        free(body);
        body = NULL;
        goto out;
    }
    *len = n;
out:
    fclose(f);
    return body;
}

/* floor --loaded [curl]: the resident set and faults of this process so far (see the top
 * comment). */
static int floor_loaded(int curl_init)
{
    long rss = -1;
    long file = -1;
    long anon = -1;
    long minflt = -1;
    char line[1024];
    const char *p;
    FILE *f;

    if (curl_init && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 1;
    }
    f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return 1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        (void)(sscanf(line, "VmRSS: %ld", &rss) == 1 || sscanf(line, "RssFile: %ld", &file) == 1 ||
               sscanf(line, "RssAnon: %ld", &anon) == 1);
    }
    fclose(f);
    f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL && (p = strrchr(line, ')')) != NULL &&
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %ld", &minflt) != 1) {
            minflt = -1;
        }
        fclose(f);
    }
    printf("{\"rss_kb\":%ld,\"rss_file_kb\":%ld,\"rss_anon_kb\":%ld,\"minflt\":%ld}\n", rss, file,
           anon, minflt);
    return rss < 0;
}

static int floor_parse(int argc, char **argv, struct floor_cfg *cfg)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (v == NULL) {
            fprintf(stderr, "floor: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--port") == 0) {
            cfg->port = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--body-file") == 0) {
            cfg->body_file = v;
        } else if (strcmp(a, "--size") == 0) {
            cfg->size = (size_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--mode") == 0) {
            cfg->mode = v;
        } else if (strcmp(a, "--threads") == 0) {
            cfg->threads = (unsigned)strtoul(v, NULL, 10);
        } else {
            fprintf(stderr, "floor: unknown option %s\n", a);
            return -1;
        }
        i++;
    }
    if (cfg->port > 65535 || cfg->size > FLOOR_MAX_BODY || cfg->threads < 1 ||
        cfg->threads > 64) {
        fprintf(stderr, "floor: --port 0..65535, --size 0..%d, --threads 1..64\n",
                FLOOR_MAX_BODY);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct floor_cfg cfg = {.port = 0, .size = 256, .mode = "epoll", .threads = 2};
    struct MHD_Response *resp = NULL;
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in sa;
    unsigned flags;
    char *body = NULL;
    size_t len = 0;
    sigset_t set;
    int sig;
    int rc = 1;

    if (argc >= 2 && strcmp(argv[1], "--loaded") == 0) {
        return floor_loaded(argc == 3 && strcmp(argv[2], "curl") == 0);
    }
    if (floor_parse(argc, argv, &cfg) != 0) {
        return 2;
    }
    body = floor_load_body(&cfg, &len);
    if (body == NULL) {
        goto out;
    }
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        goto out;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");

    /* Block the stop signals before MHD starts its threads, so only sigwait below sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (strcmp(cfg.mode, "thread") == 0) {
        flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
        d = MHD_start_daemon(flags, 0, NULL, NULL, floor_answer, resp, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_CONNECTION_LIMIT, 256U, MHD_OPTION_END);
    } else if (strcmp(cfg.mode, "pool") == 0) {
        flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO;
        d = MHD_start_daemon(flags, 0, NULL, NULL, floor_answer, resp, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_THREAD_POOL_SIZE, cfg.threads,
                             MHD_OPTION_CONNECTION_LIMIT, 256U, MHD_OPTION_END);
    } else if (strcmp(cfg.mode, "epoll") == 0) {
        flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO;
        d = MHD_start_daemon(flags, 0, NULL, NULL, floor_answer, resp, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_CONNECTION_LIMIT, 256U, MHD_OPTION_END);
    } else {
        fprintf(stderr, "floor: --mode epoll|thread|pool\n");
        goto out;
    }
    if (d == NULL) {
        fprintf(stderr, "floor: cannot listen on 127.0.0.1:%u\n", cfg.port);
        goto out;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("floor listening on 127.0.0.1:%u\n", info != NULL ? (unsigned)info->port : cfg.port);
    fflush(stdout);
    sigwait(&set, &sig);
    rc = 0;
out:
    if (d != NULL) {
        MHD_stop_daemon(d);
    }
    if (resp != NULL) {
        MHD_destroy_response(resp);
    }
    free(body);
    return rc;
}
