/* lambda-sim: a local AWS Lambda platform for one function (see sim_config_usage() and its README).
 *
 * main parses the command line, serves the invoke endpoint
 *   POST /2015-03-31/functions/{name}/invocations
 * (the path of AWS's emulator and SAM) on 127.0.0.1, and on SIGTERM or SIGINT shuts every
 * execution environment down with SHUTDOWN spindown (pool_stop) before exiting.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/config.h"
#include "sim/lambda_sim/env.h"
#include "sim/lambda_sim/pool.h"

#define INVOKE_MAX    ((size_t)6 * 1024 * 1024) /* Lambda's synchronous payload limit, 6 MB */
#define INVOKE_PREFIX "/2015-03-31/functions/"

struct invoke_req {
    struct buf body;
    int too_big;
};

static struct pool *s_pool;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             const struct sim_job *job)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (job) {
        if (job->request_id[0]) {
            MHD_add_response_header(resp, "X-Amzn-RequestId", job->request_id);
        }
        if (status == 200) {
            MHD_add_response_header(resp, "X-Amz-Executed-Version", "$LATEST");
        }
        if (job->function_error) {
            MHD_add_response_header(resp, "X-Amz-Function-Error", "Unhandled");
        }
        if (job->error_kind[0]) {
            MHD_add_response_header(resp, "X-Amzn-ErrorType", job->error_kind);
        }
    }
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_plain(struct MHD_Connection *c, unsigned status, const char *kind,
                                   const char *msg)
{
    struct buf b = BUF_INIT(0);
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len;
    char *body;

    buf_puts(&b, "{\"Type\":\"User\",\"message\":\"");
    buf_put_json_escaped(&b, msg, strlen(msg));
    buf_puts(&b, "\"}");
    body = buf_detach(&b, &len);
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "X-Amzn-ErrorType", kind);
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int is_invoke_path(const char *url)
{
    const char *name = url + strlen(INVOKE_PREFIX);
    const char *slash;

    if (strncmp(url, INVOKE_PREFIX, strlen(INVOKE_PREFIX)) != 0) {
        return 0;
    }
    slash = strchr(name, '/');
    return slash && slash != name && strcmp(slash, "/invocations") == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct invoke_req *r = *con_cls;
    struct sim_job job;
    const char *v;
    enum MHD_Result ret;

    (void)cls;
    (void)version;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        buf_init(&r->body, INVOKE_MAX);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && buf_append(&r->body, upload, *upload_size) != STASH_OK) {
            r->too_big = 1;
            buf_release(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!is_invoke_path(url)) {
        return reply_plain(
            c, 404, "ResourceNotFoundException",
            "Function not found: use POST /2015-03-31/functions/function/invocations");
    }
    if (strcmp(method, "POST") != 0) {
        return reply_plain(c, 405, "MethodNotAllowed", "Use POST");
    }
    if (r->too_big) {
        return reply_plain(c, 413, "RequestEntityTooLargeException",
                           "Request must be smaller than 6291456 bytes for the InvokeFunction "
                           "operation");
    }
    sim_job_init(&job);
    job.payload = r->body.data ? r->body.data : "";
    job.payload_len = r->body.len;
    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    str_copy_trunc(job.content_type, sizeof(job.content_type), v ? v : "application/json");
    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-Trace-Id");
    str_copy_trunc(job.trace, sizeof(job.trace), v ? v : "");
    pool_invoke(s_pool, &job);
    ret = reply(c, job.status, job.body, job.body_len, &job);
    job.body = NULL; /* MHD frees it */
    sim_job_release(&job);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct invoke_req *r = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (r) {
        buf_release(&r->body);
        free(r);
        *con_cls = NULL;
    }
}

int main(int argc, char **argv)
{
    struct sim_config cfg;
    char err[512] = "";
    int help = 0;
    sigset_t sigs;
    struct sockaddr_in a;
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *info;
    unsigned port;
    int sig = 0;
    int rc = 1;

    mem_init();
    if (sim_config_parse(argc, argv, &cfg, &help, err, sizeof(err)) != STASH_OK) {
        (void)fprintf(stderr, "lambda-sim: %s\n%s", err, sim_config_usage()); /* nowhere else */
        sim_config_release(&cfg);
        return 2;
    }
    if (help) {
        rc = fputs(sim_config_usage(), stdout) == EOF || fflush(stdout) != 0;
        sim_config_release(&cfg);
        return rc;
    }
    /* A caller that hangs up must not kill lambda-sim: writes fail with EPIPE instead. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        (void)fprintf(stderr, "lambda-sim: cannot ignore SIGPIPE\n");
        sim_config_release(&cfg);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Every thread inherits this mask; the main thread takes the signals with sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    s_pool = pool_new(&cfg);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)cfg.port);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_NOTIFY_COMPLETED,
                         completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 2048u,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
    if (!d) {
        (void)fprintf(stderr, "lambda-sim: cannot listen on 127.0.0.1:%u\n", cfg.port);
        goto out;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : cfg.port;
    /* Whoever started lambda-sim learns the port from this line: without it, nothing can run. */
    if (printf("lambda-sim listening on 127.0.0.1:%u\n", port) < 0 || fflush(stdout) != 0) {
        goto out;
    }
    if (cfg.ready_file) {
        FILE *f = fopen(cfg.ready_file, "we");

        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0) {
            (void)fprintf(stderr, "lambda-sim: cannot write %s\n", cfg.ready_file);
            goto out;
        }
    }
    while (sigwait(&sigs, &sig) != 0) {
        /* retried: sigwait fails only with EINTR-like conditions */
    }
    LOG_INFO("lambda-sim", "signal %d: shutting down every environment", sig);
    rc = 0;
out:
    pool_stop(s_pool);
    if (d) {
        MHD_stop_daemon(d);
    }
    (void)fprintf(stderr, "lambda-sim: stopped after %u execution environment(s)\n",
                  pool_started(s_pool));
    pool_free(s_pool);
    curl_global_cleanup();
    sim_config_release(&cfg);
    return rc;
}
