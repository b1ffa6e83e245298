/* extension/main.c: stash's entry point.
 *
 * Order (global state first, before any thread): curl_global_init, mem_init (cJSON hooks), the
 * environment parsed once (config), the log level, SIGTERM/SIGINT blocked so that every thread
 * inherits the mask and only the main thread takes them, then the cache, the upstream client, the
 * local API, the prefetch thread.  The API serves from that moment, before any Lambda event, so
 * requests made during INIT are answered.
 *
 * Two modes:
 *   agent  (AWS_LAMBDA_RUNTIME_API unset: ECS, EC2, a laptop): serve until SIGTERM or SIGINT,
 *          with EMF lines on stdout (aggregate by default: one line per interval).
 *   Lambda (AWS_LAMBDA_RUNTIME_API set): run_lambda(), the Extensions API lifecycle
 *          (extension/lifecycle.h): register, subscribe to platform telemetry, one ledger record
 *          per INVOKE (the local API hands each request's facts to it), EMF lines on stdout, until
 *          SHUTDOWN (or SIGTERM/SIGINT, taken the same way).  The address sandbox.localdomain
 *          resolves to is looked up in main(), before any thread.
 *          A stash that cannot work (invalid configuration, local API cannot listen) is still
 *          reported to Lambda: lifecycle_report_init_error() (register, init/error).
 * Either way the end is the same, in this order (struct work owns it all):
 *   1. stop upstream calls (in flight ones answer 503 ServiceUnavailable at once),
 *   2. stop the local API (it waits for its requests in flight, now short),
 *   3. join prefetch,            -- 1 to 3 are work_stop(), the one place the API is stopped
 *   4. flush the metrics         (agent: run(); Lambda: lifecycle_run(), which writes the records
 *                                 even if steps 1-3 are stuck past half its SHUTDOWN budget),
 *   5. free: client, cache (wiped), metrics; exit 0.
 * Prefetch runs beside the event loop; its facts are tagged init work, so they land in the init
 * record however long it takes.
 * Exit status 2: invalid configuration (the message names the variable); 1: could not start.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cache/aws.h"
#include "cache/cabundle.h"
#include "cache/cache.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/api.h"
#include "extension/batch.h"
#include "extension/config.h"
#include "extension/lifecycle.h"
#include "telemetry/listener.h"
#include "telemetry/telemetry.h"

/* Ceiling on one upstream answer: a secret is at most 64 KiB, and base64 grows a binary one. */
#define UPSTREAM_MAX_RESPONSE_BYTES ((size_t)1024 * 1024)

/* The prefetch thread uses the cache and the client through its own copy of the API's options,
 * never the server.  work_stop() joins it after the API has stopped. */
struct prefetch {
    struct api_opts opts; /* the API's, with on_facts tagging each fact as init work */
    struct telemetry *metrics;
    const struct config *cfg;
    pthread_t thread;
    int started;
    atomic_int stop; /* set at shutdown: fetch nothing more (the one in flight completes) */
};

/* Prefetch is the environment's init work whenever it runs: each of its facts is tagged so, and
 * the ledger puts it in the init record even when the first INVOKE came before it finished. */
static void prefetch_on_facts(void *ctx, const struct facts *f)
{
    struct facts tagged = *f;

    tagged.phase = FACTS_PHASE_INIT;
    telemetry_on_facts(ctx, &tagged);
}

/* Prefetch works in chunks of one batch call's ids (extension/batch.h), all run at once on up to
 * PREFETCH_THREADS threads over the kept-alive pool: STASH_PREFETCH_SECRETS by
 * BatchGetSecretValue, 20 a call, and STASH_PREFETCH_PARAMETERS by GetParameters with
 * decryption, 10 a call.  A get of an id arriving meanwhile waits for its chunk's call. */
#define PREFETCH_THREADS 8

struct prefetch_chunk {
    int ssm;
    size_t n;
    const char *ids[API_BATCH_MAX];
};

struct prefetch_run {
    struct prefetch *p;
    struct prefetch_chunk *chunks;
    size_t nchunks;
    size_t first; /* this thread's chunks: first, first + PREFETCH_THREADS, ... */
};

static int listed(const struct prefetch_chunk *chunks, size_t nchunks, int ssm, const char *id)
{
    for (size_t c = 0; c < nchunks; c++) {
        for (size_t i = 0; chunks[c].ssm == ssm && i < chunks[c].n; i++) {
            if (strcmp(chunks[c].ids[i], id) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Splits a comma-separated list (in place; spaces around ids ignored; an id named twice counts
 * once) into chunks of at most max ids, appended to *chunks. */
static void chunks_add(char *list, int ssm, size_t max, struct prefetch_chunk **chunks,
                       size_t *nchunks)
{
    char *save = NULL;

    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t n;
        struct prefetch_chunk *k;

        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) {
            tok[--n] = '\0';
        }
        if (!n) {
            continue;
        }
        if (listed(*chunks, *nchunks, ssm, tok)) {
            continue; /* named twice: fetched once */
        }
        k = *nchunks ? &(*chunks)[*nchunks - 1] : NULL;
        if (!k || k->ssm != ssm || k->n == max) {
            *chunks = xrealloc(*chunks, (*nchunks + 1) * sizeof(**chunks));
            k = &(*chunks)[(*nchunks)++];
            memset(k, 0, sizeof(*k));
            k->ssm = ssm;
        }
        k->ids[k->n++] = tok;
    }
}

/* One chunk through the cache; each id's facts are reported as a request's (tagged init work by
 * the prefetch's on_facts) and its outcome logged by name, never with a value. */
static void prefetch_chunk(struct prefetch *p, const struct prefetch_chunk *k)
{
    struct cache_ref refs[API_BATCH_MAX];
    struct facts facts[API_BATCH_MAX];
    uint64_t start_ns = clock_mono_ns();
    struct batch_get g = {
        .opts = &p->opts,
        .ssm = k->ssm,
        .with_decryption = 1,
        .single_fallback = 1,
        .ids = k->ids,
        .n = k->n,
        .refs = refs,
        .facts = facts,
    };
    const char *what = k->ssm ? "parameter" : "secret";

    memset(refs, 0, sizeof(refs));
    memset(facts, 0, sizeof(facts));
    batch_get(&g);
    for (size_t i = 0; i < k->n; i++) {
        if (refs[i].status == 200) {
            LOG_DEBUG("main", "prefetched %s %s", what, k->ids[i]);
        } else {
            LOG_WARN("main",
                     "prefetch of %s %s failed with status %d; it will be fetched on "
                     "first use",
                     what, k->ids[i], refs[i].status);
        }
        facts[i].latency_ms = clock_ms_between(start_ns, clock_mono_ns());
        facts[i].ncalls_recorded =
            facts[i].ncalls < FACTS_MAX_CALLS ? facts[i].ncalls : FACTS_MAX_CALLS;
        p->opts.on_facts(p->opts.facts_ctx, &facts[i]);
        cache_ref_release(&refs[i]);
    }
}

static void *prefetch_run_main(void *arg)
{
    struct prefetch_run *r = arg;

    for (size_t i = r->first; i < r->nchunks && !atomic_load(&r->p->stop); i += PREFETCH_THREADS) {
        prefetch_chunk(r->p, &r->chunks[i]);
    }
    return NULL;
}

/* Runs every chunk, PREFETCH_THREADS at a time at most; the last share runs on this thread. */
static void prefetch_chunks(struct prefetch *p, struct prefetch_chunk *chunks, size_t nchunks)
{
    struct prefetch_run runs[PREFETCH_THREADS];
    pthread_t threads[PREFETCH_THREADS];
    int started[PREFETCH_THREADS] = {0};
    size_t nthreads = nchunks < PREFETCH_THREADS ? nchunks : PREFETCH_THREADS;

    for (size_t t = 0; t < nthreads; t++) {
        runs[t] = (struct prefetch_run){.p = p, .chunks = chunks, .nchunks = nchunks, .first = t};
    }
    for (size_t t = 0; t + 1 < nthreads; t++) {
        started[t] = pthread_create(&threads[t], NULL, prefetch_run_main, &runs[t]) == 0;
        if (!started[t]) {
            (void)prefetch_run_main(&runs[t]); /* no thread: its share runs here */
        }
    }
    if (nthreads) {
        (void)prefetch_run_main(&runs[nthreads - 1]);
    }
    for (size_t t = 0; t < nthreads; t++) {
        if (started[t]) {
            pthread_join(threads[t], NULL);
        }
    }
}

static void *prefetch_main(void *arg)
{
    struct prefetch *p = arg;
    char *secrets = p->cfg->prefetch_secrets ? xstrdup(p->cfg->prefetch_secrets) : NULL;
    char *parameters = p->cfg->prefetch_parameters ? xstrdup(p->cfg->prefetch_parameters) : NULL;
    struct prefetch_chunk *chunks = NULL;
    size_t nchunks = 0;

    if (secrets) {
        chunks_add(secrets, 0, BATCH_MAX_SECRETS, &chunks, &nchunks);
    }
    if (parameters) {
        chunks_add(parameters, 1, BATCH_MAX_PARAMETERS, &chunks, &nchunks);
    }
    prefetch_chunks(p, chunks, nchunks);
    free(chunks);
    free(secrets);
    free(parameters);
    telemetry_init_work_end(p->metrics); /* the init record may complete now */
    return NULL;
}

/* Starts prefetch (if any id is configured) on a thread of its own, so that the function's init
 * does not wait for it.  Its work is declared to the metrics before the thread starts. */
static void prefetch_start(struct prefetch *p, const struct api_opts *aopts,
                           struct telemetry *metrics, const struct config *cfg)
{
    p->opts = *aopts;
    p->opts.on_facts = prefetch_on_facts;
    p->opts.facts_ctx = metrics;
    p->metrics = metrics;
    p->cfg = cfg;
    if (!cfg->prefetch_secrets && !cfg->prefetch_parameters) {
        return;
    }
    telemetry_init_work_begin(metrics);
    p->started = pthread_create(&p->thread, NULL, prefetch_main, p) == 0;
    if (!p->started) {
        telemetry_init_work_end(metrics);
        LOG_WARN("main", "cannot start the prefetch thread; values are fetched on first use");
    }
}

/* Agent mode's metrics: the same pipeline as Lambda's, without the Extensions and Telemetry
 * APIs.  No platform report will come (records complete as soon as they are cut), and each
 * interval stands in for an invocation: opening the next one completes the current record and
 * writes an aggregate line whose interval ran out.  All accept NULL (metrics off). */
static unsigned long long s_agent_intervals;

static void agent_metrics_start(struct telemetry *t)
{
    telemetry_start(t, NULL, NULL, 1);
    telemetry_unavailable(t);
}

static void agent_metrics_tick(struct telemetry *t)
{
    char id[32];

    (void)snprintf(id, sizeof(id), "agent-%llu", ++s_agent_intervals);
    telemetry_on_invoke(t, id, 0);
}

static void agent_metrics_finish(struct telemetry *t)
{
    telemetry_on_shutdown(t, clock_mono_ms(), 0);
    telemetry_stop(t);
}

/* Agent mode: waits for SIGTERM or SIGINT; meanwhile, if metrics are on, cuts a record and
 * lets the EMF writer out every interval (1 s at least). */
static int wait_for_signal(const sigset_t *set, struct telemetry *metrics, uint64_t interval_ms)
{
    int sig = 0;
    uint64_t next = clock_mono_ms() + interval_ms;

    for (;;) {
        struct timespec ts;
        uint64_t now = clock_mono_ms();
        uint64_t wait = next > now ? next - now : 0;

        if (!metrics) {
            if (sigwait(set, &sig) == 0) {
                break;
            }
            continue;
        }
        ts.tv_sec = (time_t)(wait / 1000);
        ts.tv_nsec = (long)(wait % 1000) * 1000000L;
        sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            break;
        }
        if (clock_mono_ms() >= next) {
            agent_metrics_tick(metrics);
            next += interval_ms;
        }
    }
    LOG_INFO("main", "%s received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return 0;
}

/* Lambda mode: SIGTERM or SIGINT ends it as SHUTDOWN does.  The thread waits (in 100 ms
 * steps) for the signals every thread blocks, until lifecycle_run has returned. */
struct sigwaiter {
    const sigset_t *set;
    pthread_t thread;
    int started;
    atomic_int done; /* lifecycle_run returned: stop waiting */
};

static void *sigwaiter_main(void *arg)
{
    struct sigwaiter *w = arg;
    const struct timespec step = {0, 100000000L};

    while (!atomic_load(&w->done)) {
        int sig = sigtimedwait(w->set, NULL, &step);

        if (sig == SIGTERM || sig == SIGINT) {
            LOG_INFO("main", "%s received: shutting down as for SHUTDOWN",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
            lifecycle_interrupt();
            break;
        }
    }
    return NULL;
}

/* What Lambda mode needs from main: where the listener binds and the extension's name. */
struct lambda_env {
    const char *name; /* basename of argv[0]: Lambda matches it against /opt/extensions */
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
};

/* Lambda mode: the Extensions API lifecycle until SHUTDOWN.  lifecycle_run() calls
 * stop(stop_ctx) exactly once (work_stop), flushes the metrics after it, and returns when it has
 * returned. */
static int run_lambda(const struct config *cfg, const struct lambda_env *le, const sigset_t *set,
                      struct telemetry *metrics, void (*stop)(void *), void *stop_ctx)
{
    struct sigwaiter sw = {.set = set};
    int rc;
    struct lifecycle_hooks hooks = {.ctx = stop_ctx, .stop = stop};
    struct lifecycle_opts opts = {
        .runtime_api = cfg->lambda_runtime_api,
        .name = le->name,
        .schema = cfg->telemetry_schema,
        .listen_addr = (const struct sockaddr *)&le->listen_addr,
        .listen_addrlen = le->listen_addrlen,
        .metrics = metrics,
    };

    sw.started = pthread_create(&sw.thread, NULL, sigwaiter_main, &sw) == 0;
    rc = lifecycle_run(&opts, &hooks);
    if (sw.started) {
        atomic_store(&sw.done, 1);
        pthread_join(sw.thread, NULL);
    }
    return rc;
}

static void usage(FILE *out)
{
    (void)fputs("usage: stash [--help | --version]\n", out);
}

/* The local API could not listen.  Under Lambda the function would get connection errors with no
 * explanation: its init fails with the reason instead. */
static void report_api_unavailable(const struct config *cfg, const struct lambda_env *le)
{
    char why[128];

    if (!cfg->lambda_runtime_api) {
        return;
    }
    (void)snprintf(why, sizeof(why),
                   "cannot listen on 127.0.0.1:%llu (PARAMETERS_SECRETS_EXTENSION_HTTP_PORT "
                   "in use?)",
                   (unsigned long long)cfg->http_port);
    (void)lifecycle_report_init_error(cfg->lambda_runtime_api, le->name,
                                      "Extension.LocalApiUnavailable", why);
}

/* Everything run() builds.  One owner and one order: work_start() builds it, work_stop() (called
 * exactly once: by lifecycle_run() in Lambda mode, by run() in agent mode) stops it, run() (agent
 * mode) or lifecycle_run() (Lambda mode) flushes the metrics, work_free() frees it. */
struct work {
    struct cache *cache;
    struct aws_client *aws;
    struct api *api;
    struct telemetry *metrics;
    struct api_opts aopts;
    struct prefetch pf;
};

/* Builds the cache, the upstream client, the metrics and the local API, then starts prefetch.
 * STASH_OK when the API serves; else logged (and, under Lambda, reported), and work_free() frees
 * what was built. */
static enum stash_err work_start(struct work *w, const struct config *cfg,
                                 const struct lambda_env *le)
{
    /* No CA path is built into libcurl: the bundle is found on the image, once (cabundle.h).
     * NOLINTNEXTLINE(concurrency-mt-unsafe): read before run() starts any thread */
    char *ca_bundle = ca_bundle_find(cfg->ca_bundle, getenv("SSL_CERT_FILE"), NULL);
    struct cache_opts copts = {
        .max_items = cfg->cache_enabled ? (size_t)cfg->cache_size : 0,
        .max_bytes = (size_t)cfg->cache_max_bytes,
        .stale_max_ms = cfg->stale_max_s * 1000,
    };
    struct aws_config acfg = {
        .region = cfg->region_used,
        .access_key_id = cfg->access_key_id,
        .secret_access_key = cfg->secret_access_key,
        .session_token = cfg->session_token,
        .sm_endpoint = cfg->sm_endpoint_used,
        .ssm_endpoint = cfg->ssm_endpoint_used,
        .region_endpoints = cfg->region_endpoints,
        .ca_bundle = ca_bundle,
        .sm_timeout_ms = (long)cfg->sm_timeout_ms,
        .ssm_timeout_ms = (long)cfg->ssm_timeout_ms,
        .max_connections = (unsigned)cfg->max_connections,
        .max_attempts = (unsigned)cfg->max_attempts,
        .max_response_bytes = UPSTREAM_MAX_RESPONSE_BYTES,
    };

    memset(w, 0, sizeof(*w));
    w->cache = cache_new(&copts);
    w->aws = aws_client_new(&acfg);
    free(ca_bundle); /* the client keeps its own copy */
    if (!w->cache || !w->aws) {
        LOG_ERROR("main", "cannot create the %s", !w->cache ? "cache" : "upstream client");
        return STASH_EIO;
    }
    /* Metrics in both modes: CloudWatch reads EMF from any log group (ECS, EC2 too).  Made
     * before the API starts so INIT requests are recorded (NULL when metrics are off). */
    w->metrics = telemetry_new(cfg->metrics, STDOUT_FILENO, cfg->lambda_function_name,
                               cfg->lambda_function_version);
    if (!cfg->lambda_runtime_api) {
        agent_metrics_start(w->metrics);
    }
    w->aopts = (struct api_opts){
        .port = (uint16_t)cfg->http_port,
        .max_inbound = (unsigned)cfg->max_inbound,
        .token = cfg->api_token,
        .token_len = cfg->api_token_len,
        .sm_ttl_ms = cfg->sm_ttl_s * 1000,
        .ssm_ttl_ms = cfg->ssm_ttl_s * 1000,
        .cache_enabled = cfg->cache_enabled && cfg->cache_size > 0,
        .cache = w->cache,
        .aws = w->aws,
        .on_facts = telemetry_on_facts,
        .facts_ctx = w->metrics,
        .refresh_ahead = cfg->refresh_ahead,
    };
    if (api_start(&w->aopts, &w->api) != STASH_OK) {
        report_api_unavailable(cfg, le);
        return STASH_EIO;
    }
    prefetch_start(&w->pf, &w->aopts, w->metrics, cfg);
    return STASH_OK;
}

/* The one place the work stops, in this order:
 *   1. upstream calls: prefetch takes no next id, and calls in flight end now (their requests
 *      answer 503 ServiceUnavailable at once), so the waits below are short whatever the upstream;
 *   2. the local API: no new request, and api_stop waits for the requests in flight;
 *   3. prefetch: joined (its fetch in flight ended at step 1).
 * After it no fact arrives: the caller flushes the metrics, then work_free() frees (and wipes).
 * Runs on lifecycle_run()'s stopper thread in Lambda mode: it touches only w, which the main
 * thread leaves alone until lifecycle_run() has returned. */
static void work_stop(void *arg)
{
    struct work *w = arg;

    atomic_store(&w->pf.stop, 1);
    aws_client_stop(w->aws);
    api_stop(w->api);
    w->api = NULL;
    if (w->pf.started) {
        pthread_join(w->pf.thread, NULL);
        w->pf.started = 0;
    }
}

/* Frees what work_start() built, stopped or never started.  The cache is wiped as it is freed. */
static void work_free(struct work *w)
{
    aws_client_free(w->aws);
    cache_free(w->cache);
    telemetry_free(w->metrics);
}

static int run(const struct config *cfg, const struct lambda_env *le)
{
    struct work w;
    sigset_t set;
    int rc = 1;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Before any thread: every thread inherits the mask, and only sigwait() takes the signals. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (work_start(&w, cfg, le) != STASH_OK) {
        work_free(&w);
        return 1;
    }
    if (cfg->lambda_runtime_api) {
        rc = run_lambda(cfg, le, &set, w.metrics, work_stop, &w);
    } else {
        rc = wait_for_signal(&set, w.metrics, cfg->aggregate_interval_s * 1000);
        work_stop(&w);
        agent_metrics_finish(w.metrics); /* every fact is in: work_stop returned */
    }
    work_free(&w);
    return rc;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct lambda_env le = {.name = lifecycle_name_from_argv0(argv[0])};
    char err[CONFIG_ERROR_MAX];
    const char *runtime_api;
    int rc;

    if (argc > 1) {
        if (strcmp(argv[1], "--version") == 0) {
            printf("stash %s\n", STASH_VERSION);
            return 0;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            config_print_help(stdout);
            return 0;
        }
        if (strcmp(argv[1], "--help-markdown") == 0) {
            config_print_markdown(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    /* This process holds secrets in memory: no core dump may write them to disk, and no other
     * process of the same user may ptrace it or read its /proc/PID/mem.  (RLIMIT_CORE alone
     * would not do: a core_pattern pipe such as systemd-coredump may ignore it.) */
    if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0) {
        LOG_WARN("main", "cannot disable core dumps (prctl PR_SET_DUMPABLE)");
    }
    (void)signal(SIGPIPE, SIG_IGN); /* a peer gone mid-answer is an error, not a death */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        LOG_ERROR("main", "curl_global_init failed");
        return 1;
    }
    mem_init();
    /* Lambda's log format holds from the first line: a configuration error is logged in it too. */
    (void)log_format_parse(config_getenv_process(NULL, "AWS_LAMBDA_LOG_FORMAT"), &g_log_format);
    if (config_load(&cfg, config_getenv_process, NULL, err, sizeof(err)) != STASH_OK) {
        LOG_ERROR("config", "%s", err);
        /* Under Lambda, say it where the function's owner looks: register, then init/error
         * Extension.ConfigInvalid (the init fails with the reason instead of a bare crash). */
        runtime_api = config_getenv_process(NULL, "AWS_LAMBDA_RUNTIME_API");
        if (runtime_api && *runtime_api) {
            (void)lifecycle_report_init_error(runtime_api, le.name, "Extension.ConfigInvalid", err);
        }
        curl_global_cleanup();
        return 2;
    }
    g_log_level = cfg.log_level;
    g_log_format = cfg.log_format;
    for (unsigned i = 0; i < cfg.nwarnings; i++) {
        LOG_WARN("config", "%s", cfg.warnings[i]);
    }
    config_log_effective(&cfg);
    LOG_INFO("main", "stash %s: %s mode; Secrets Manager TTL %llu s, SSM TTL %llu s, cache %s",
             STASH_VERSION, cfg.lambda_runtime_api ? "Lambda" : "agent",
             (unsigned long long)cfg.sm_ttl_s, (unsigned long long)cfg.ssm_ttl_s,
             cfg.cache_enabled && cfg.cache_size ? "on" : "off");
    if (cfg.lambda_runtime_api) {
        /* getaddrinfo here, before any thread: sandbox.localdomain in Lambda, loopback outside. */
        listener_resolve(NULL, 0, &le.listen_addr, &le.listen_addrlen);
    }
    rc = run(&cfg, &le);
    config_release(&cfg);
    curl_global_cleanup();
    return rc;
}
