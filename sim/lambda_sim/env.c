/* sim/lambda_sim/env.c: the lifecycle controller of one execution environment (see env.h).
 *
 * Order of events, as RAPID runs them (the AWS Lambda Developer Guide's extension and telemetry
 * pages, and the rapid package of aws/aws-lambda-runtime-interface-emulator):
 *   init:   initStart; extensions launched; all external ones register; runtime launched; the
 *           runtime and every registered extension call next; initRuntimeDone, one
 *           platform.extension per extension, initReport.
 *   invoke: thaw; platform.start; INVOKE handed to extensions; then the runtime's next returns;
 *           the caller is answered when the runtime posts; runtimeDone when the runtime calls
 *           next again; platform.report (and the freeze) when every INVOKE extension has called
 *           next.  The function timeout bounds the whole phase.
 *   end:    SIGTERM to the runtime (30 % of the budget, then SIGKILL), SHUTDOWN to extensions
 *           with the budget's deadline, SIGKILL at the deadline.
 */
#include "sim/lambda_sim/env_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/util.h"
#include "sim/lambda_sim/wire.h"

void sim_job_init(struct sim_job *job)
{
    memset(job, 0, sizeof(*job));
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
}

void sim_job_finish(struct sim_job *job, unsigned status, char *body, size_t len,
                    int function_error, const char *error_kind)
{
    pthread_mutex_lock(&job->mu);
    job->status = status;
    job->body = body;
    job->body_len = len;
    job->function_error = function_error;
    str_copy_trunc(job->error_kind, sizeof(job->error_kind), error_kind ? error_kind : "");
    job->done = 1;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

void sim_job_wait(struct sim_job *job)
{
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        pthread_cond_wait(&job->cv, &job->mu);
    }
    pthread_mutex_unlock(&job->mu);
}

void sim_job_release(struct sim_job *job)
{
    free(job->body);
    job->body = NULL;
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
}

/* ---- log stream ---------------------------------------------------------------------------- */

void env_log_write(struct env *e, const char *line, size_t len)
{
    pthread_mutex_lock(&e->log_mu);
    if (e->log_fd >= 0) {
        size_t off = 0;

        while (off < len) {
            ssize_t n = write(e->log_fd, line + off, len - off);

            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            off += (size_t)n;
        }
    } else {
        /* No --logs: lambda-sim's stderr, one record per line, tagged with the stream. */
        struct buf b = BUF_INIT(0);

        buf_printf(&b, "[%.8s] ", e->stream_hex);
        buf_append(&b, line, len);
        if (len == 0 || line[len - 1] != '\n') {
            buf_putc(&b, '\n');
        }
        if (write(2, b.data, b.len) < 0) {
            /* nothing more to do about a broken stderr */
        }
        buf_release(&b);
    }
    pthread_mutex_unlock(&e->log_mu);
}

static void env_log(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void env_log(struct env *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    env_log_write(e, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void emit(struct env *e, char *json)
{
    tele_hub_emit(e->hub, WIRE_T_PLATFORM, json, 0);
}

struct line_src {
    struct env *env;
    const char *type; /* "function" or "extension" */
    unsigned category;
};

static void on_line(void *arg, struct proc *p, const char *line, size_t len)
{
    const struct line_src *src = arg;
    struct env *e = src->env;

    (void)p;
    env_log_write(e, line, len);
    tele_hub_emit(e->hub, src->category, wire_ev_log(clock_real_ms(), src->type, line, len), 0);
}

/* ---- failures ------------------------------------------------------------------------------ */

void env_set_fail(struct env *e, const char *type, const char *msg)
{
    if (e->phase == PH_IDLE) {
        e->idle_broken = 1;
    }
    if (!e->fail && e->phase != PH_SHUTDOWN && e->phase != PH_DEAD) {
        e->fail = 1;
        str_copy_trunc(e->fail_type, sizeof(e->fail_type), type);
        str_copy_trunc(e->fail_msg, sizeof(e->fail_msg), msg);
    }
    pthread_cond_broadcast(&e->cv);
}

static void on_rt_exit(void *arg, struct proc *p, int wstatus)
{
    struct env *e = arg;
    char how[64];
    char msg[160];

    (void)p;
    proc_describe_status(wstatus, how, sizeof(how));
    sim_msgf(msg, sizeof(msg), "Runtime exited with error: %s", how);
    pthread_mutex_lock(&e->mu);
    e->rt_exited = 1;
    env_set_fail(e, "Runtime.ExitError", msg);
    pthread_mutex_unlock(&e->mu);
}

static void on_ext_exit(void *arg, struct proc *p, int wstatus)
{
    struct sim_ext *x = arg;
    struct env *e = x->env;
    char how[64];
    char msg[400];

    (void)p;
    proc_describe_status(wstatus, how, sizeof(how));
    sim_msgf(msg, sizeof(msg), "Extension %s exited: %s", x->name, how);
    pthread_mutex_lock(&e->mu);
    x->exited = 1;
    env_set_fail(e, "Extension.Crash", msg);
    pthread_mutex_unlock(&e->mu);
}

/* ---- waiting ------------------------------------------------------------------------------- */

enum wait_rc {
    WAIT_OK = 0,
    WAIT_TIMEOUT,
    WAIT_FAIL,
    WAIT_STOP,
};

typedef int (*env_pred_fn)(struct env *e);

/* mu held.  Waits until pred holds, a failure is recorded, stop is asked or the deadline
 * (monotonic ns) passes. */
static enum wait_rc env_wait(struct env *e, env_pred_fn pred, uint64_t deadline_ns)
{
    for (;;) {
        struct timespec ts;

        if (pred(e)) {
            return WAIT_OK;
        }
        if (e->fail) {
            return WAIT_FAIL;
        }
        if (e->stop) {
            return WAIT_STOP;
        }
        if (clock_mono_ns() >= deadline_ns) {
            return WAIT_TIMEOUT;
        }
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
}

static int pred_all_registered(struct env *e)
{
    unsigned i;

    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].external && !e->ext[i].registered) {
            return 0;
        }
    }
    return 1;
}

static int pred_init_ready(struct env *e)
{
    unsigned i;

    if (!e->rt_in_next) {
        return 0;
    }
    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].registered && !e->ext[i].in_next) {
            return 0;
        }
    }
    return 1;
}

static int ext_gets_invoke(const struct sim_ext *x)
{
    return x->registered && (x->events & WIRE_EV_INVOKE) && !x->exited && !x->errored;
}

static int pred_invoke_taken(struct env *e)
{
    unsigned i;

    for (i = 0; i < e->n_ext; i++) {
        if (ext_gets_invoke(&e->ext[i]) && e->ext[i].pending) {
            return 0;
        }
    }
    return 1;
}

static int pred_responded(struct env *e)
{
    return e->inv.responded;
}

static int pred_rt_next(struct env *e)
{
    return e->rt_in_next;
}

static int pred_ext_ready(struct env *e)
{
    unsigned i;

    for (i = 0; i < e->n_ext; i++) {
        if (ext_gets_invoke(&e->ext[i]) && !e->ext[i].in_next) {
            return 0;
        }
    }
    return 1;
}

static int pred_ext_exited(struct env *e)
{
    unsigned i;

    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].external && e->ext[i].proc && !e->ext[i].exited) {
            return 0;
        }
    }
    return 1;
}

/* mu held.  Like env_wait, but only the predicate or the deadline end it (shutdown must run
 * to its end whatever else fails meanwhile). */
static void env_wait_only(struct env *e, env_pred_fn pred, uint64_t deadline_ns)
{
    while (!pred(e) && clock_mono_ns() < deadline_ns) {
        struct timespec ts;

        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
}

/* ---- process environment ------------------------------------------------------------------- */

struct envv {
    char *kv[160];
    unsigned n;
};

static void envv_set(struct envv *v, const char *key, const char *val)
{
    size_t klen = strlen(key);
    struct buf b = BUF_INIT(0);
    size_t len;
    unsigned i;

    buf_printf(&b, "%s=%s", key, val);
    for (i = 0; i < v->n; i++) {
        if (strncmp(v->kv[i], key, klen) == 0 && v->kv[i][klen] == '=') {
            free(v->kv[i]);
            v->kv[i] = buf_detach(&b, &len);
            return;
        }
    }
    if (v->n + 1 < sizeof(v->kv) / sizeof(v->kv[0])) {
        v->kv[v->n++] = buf_detach(&b, &len);
        v->kv[v->n] = NULL;
    } else {
        buf_release(&b);
    }
}

static void envv_free(struct envv *v)
{
    unsigned i;

    for (i = 0; i < v->n; i++) {
        free(v->kv[i]);
    }
    v->n = 0;
}

/* Runtime-only variables, hidden from extensions as Lambda hides them. */
static int runtime_only(const char *key)
{
    static const char *const hidden[] = {
        "AWS_EXECUTION_ENV",          "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",    "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",           "_AWS_XRAY_DAEMON_ADDRESS",
        "_AWS_XRAY_DAEMON_PORT",      "_HANDLER",
    };
    size_t i;

    for (i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        if (strcmp(key, hidden[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void build_env(struct env *e, struct envv *v, int for_runtime)
{
    const struct sim_config *c = e->cfg;
    static const char *const passthrough[] = {"PATH", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                              "LSAN_OPTIONS"};
    struct buf num = BUF_INIT(0); /* formatted values, of any length */
    char akid[21];
    char secret[41];
    unsigned i;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++) {
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): lambda-sim never changes its environment */
        const char *val = getenv(passthrough[i]);

        if (val) {
            envv_set(v, passthrough[i], val);
        }
    }
    envv_set(v, "LANG", "en_US.UTF-8");
    envv_set(v, "TZ", ":UTC");
    envv_set(v, "AWS_LAMBDA_FUNCTION_NAME", c->function_name);
    envv_set(v, "AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    buf_printf(&num, "%u", c->memory_mb);
    envv_set(v, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", num.data);
    envv_set(v, "AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
    envv_set(v, "AWS_REGION", c->region);
    envv_set(v, "AWS_DEFAULT_REGION", c->region);
    buf_reset(&num);
    buf_printf(&num, "127.0.0.1:%u", e->api_port);
    envv_set(v, "AWS_LAMBDA_RUNTIME_API", num.data);
    /* Execution-role style credentials; --env replaces them (e.g. with fake-aws's). */
    memcpy(akid, "ASIA", 4);
    for (i = 0; i < 16; i++) {
        akid[4 + i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(unsigned char)e->stream_hex[i] % 32];
    }
    akid[20] = '\0';
    envv_set(v, "AWS_ACCESS_KEY_ID", akid);
    sim_hex(secret, 20);
    envv_set(v, "AWS_SECRET_ACCESS_KEY", secret);
    envv_set(v, "AWS_SESSION_TOKEN", e->token);
    buf_reset(&num);
    buf_printf(&num, "%u", e->ext_port);
    envv_set(v, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", num.data);
    if (for_runtime) {
        buf_reset(&num);
        buf_printf(&num, "/aws/lambda/%s", c->function_name);
        envv_set(v, "AWS_LAMBDA_LOG_GROUP_NAME", num.data);
        envv_set(v, "AWS_LAMBDA_LOG_STREAM_NAME", e->stream_name);
        envv_set(v, "LAMBDA_TASK_ROOT", c->task_root);
        envv_set(v, "LAMBDA_RUNTIME_DIR", c->task_root);
        envv_set(v, "_HANDLER", c->handler);
    }
    for (i = 0; i < c->n_env; i++) {
        char key[256];
        const char *eq = strchr(c->env_kv[i], '=');
        size_t klen = (size_t)(eq - c->env_kv[i]);

        if (klen >= sizeof(key)) {
            continue;
        }
        memcpy(key, c->env_kv[i], klen);
        key[klen] = '\0';
        if (!for_runtime && runtime_only(key)) {
            continue;
        }
        envv_set(v, key, eq + 1);
    }
    buf_release(&num);
}

/* ---- init ---------------------------------------------------------------------------------- */

static struct line_src *line_src_new(struct env *e, int function)
{
    struct line_src *s = xcalloc(1, sizeof(*s));

    s->env = e;
    s->type = function ? "function" : "extension";
    s->category = function ? WIRE_T_FUNCTION : WIRE_T_EXTENSION;
    return s;
}

/* line_src objects live as long as the environment; kept here to free them at the end. */
struct env_extra {
    struct line_src *src[ENV_MAX_EXT + 1];
};

static void emit_ext_states(struct env *e, const char *state_ok)
{
    unsigned i;
    char list[32];

    for (i = 0; i < e->n_ext; i++) {
        const struct sim_ext *x = &e->ext[i];
        const char *state = x->errored       ? "InitError"
                            : x->exited      ? "Exited"
                            : !x->registered ? "Started"
                                             : state_ok;

        emit(e, wire_ev_extension(clock_real_ms(), x->name, state, x->events, NULL));
        wire_events_list(x->events, list, sizeof(list));
        env_log(e, "EXTENSION\tName: %s\tState: %s\tEvents: [%s]\n", x->name, state, list);
    }
}

/* Launches every external extension (in name order, as Lambda does); stops at the first that
 * cannot be started, with the failure set. */
static void start_extensions(struct env *e, struct env_extra *xtra)
{
    struct envv ev;
    char *argv[2] = {NULL, NULL};

    build_env(e, &ev, 0);
    for (unsigned i = 0; i < e->cfg->n_ext; i++) {
        struct sim_ext *x = &e->ext[i];
        struct proc_spec spec;

        argv[0] = e->cfg->ext_paths[i];
        xtra->src[i] = line_src_new(e, 0);
        memset(&spec, 0, sizeof(spec));
        spec.argv = argv;
        spec.envp = ev.kv;
        spec.cwd = e->cfg->task_root;
        spec.on_exit = on_ext_exit;
        spec.on_line = on_line;
        spec.exit_arg = x;
        spec.line_arg = xtra->src[i];
        pthread_mutex_lock(&e->mu);
        x->env = e;
        x->external = 1;
        str_copy_trunc(x->name, sizeof(x->name), e->cfg->ext_names[i]);
        e->n_ext = i + 1;
        pthread_mutex_unlock(&e->mu);
        if (proc_spawn(&spec, &x->proc) != STASH_OK) {
            pthread_mutex_lock(&e->mu);
            env_set_fail(e, "Extension.LaunchError", "cannot start extension");
            pthread_mutex_unlock(&e->mu);
            break;
        }
    }
    envv_free(&ev);
}

/* Launches the runtime: /bin/sh -c with the function's command. */
static void start_runtime(struct env *e, struct env_extra *xtra)
{
    struct envv ev;
    struct proc_spec spec;
    char *argv[4] = {(char *)"/bin/sh", (char *)"-c", e->cfg->function_cmd, NULL};

    build_env(e, &ev, 1);
    xtra->src[ENV_MAX_EXT] = line_src_new(e, 1);
    memset(&spec, 0, sizeof(spec));
    spec.argv = argv;
    spec.envp = ev.kv;
    spec.cwd = e->cfg->task_root;
    spec.on_exit = on_rt_exit;
    spec.on_line = on_line;
    spec.exit_arg = e;
    spec.line_arg = xtra->src[ENV_MAX_EXT];
    if (proc_spawn(&spec, &e->rt) != STASH_OK) {
        pthread_mutex_lock(&e->mu);
        env_set_fail(e, "Runtime.InvalidEntrypoint", "cannot start /bin/sh");
        pthread_mutex_unlock(&e->mu);
    }
    envv_free(&ev);
}

/* mu held.  How init ended: the failure if there is one, then initRuntimeDone, the extensions'
 * states and initReport (and the INIT_REPORT line on an error). */
static void end_init(struct env *e, enum wait_rc w)
{
    if (w == WAIT_TIMEOUT && !e->fail) {
        char msg[96];

        sim_msgf(msg, sizeof(msg), "Init timed out after %.2f seconds",
                 e->cfg->init_timeout_ms / 1000.0);
        env_set_fail(e, "Sandbox.Timedout", msg);
    } else if (w == WAIT_STOP && !e->fail) {
        env_set_fail(e, "Sandbox.Terminated", "lambda-sim is shutting down");
    }
    if (w == WAIT_OK) {
        e->phase = PH_IDLE;
        emit(e, wire_ev_init_runtime_done(clock_real_ms(), "init", "success", NULL));
        emit_ext_states(e, "Ready");
        emit(e, wire_ev_init_report(clock_real_ms(), "init", "success", NULL, e->init_ms));
        return;
    }
    emit(e, wire_ev_init_runtime_done(clock_real_ms(), "init", "error", e->fail_type));
    emit_ext_states(e, "Ready");
    emit(e, wire_ev_init_report(clock_real_ms(), "init", "error", e->fail_type, e->init_ms));
    env_log(e,
            "INIT_REPORT Init Duration: %.2f ms\tPhase: init\tStatus: error\t"
            "Error Type: %s\n",
            e->init_ms, e->fail_type);
    env_log(e, "%s\n", e->fail_msg);
}

/* Returns 0 when init completed; otherwise the failure is in e->fail_type/fail_msg. */
static int env_init(struct env *e, struct env_extra *xtra)
{
    struct sim_stamp t0 = sim_stamp_now();
    uint64_t deadline = t0.mono_ns + (uint64_t)e->cfg->init_timeout_ms * 1000000u;
    enum wait_rc w;

    pthread_mutex_lock(&e->mu);
    emit(e, wire_ev_init_start(t0.real_ms, e->cfg->function_name, "$LATEST", e->stream_name,
                               (uint64_t)e->cfg->memory_mb * 1024u * 1024u, "init"));
    env_log(e, "INIT_START Runtime Version: lambda-sim\n");
    pthread_mutex_unlock(&e->mu);

    start_extensions(e, xtra);
    pthread_mutex_lock(&e->mu);
    w = env_wait(e, pred_all_registered, deadline);
    pthread_mutex_unlock(&e->mu);
    if (w == WAIT_OK) {
        start_runtime(e, xtra);
        pthread_mutex_lock(&e->mu);
        w = env_wait(e, pred_init_ready, deadline);
        pthread_mutex_unlock(&e->mu);
    }

    pthread_mutex_lock(&e->mu);
    e->reg_closed = 1;
    e->init_ms = sim_ms(t0, sim_stamp_now());
    end_init(e, w);
    tele_hub_end_init(e->hub);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return w == WAIT_OK ? 0 : -1;
}

/* ---- invoke -------------------------------------------------------------------------------- */

static unsigned env_max_memory_mb(struct env *e)
{
    unsigned long kb = 0;
    unsigned i;

    if (e->rt) {
        kb += proc_tree_peak_kb(proc_pid(e->rt));
    }
    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].proc) {
            kb += proc_tree_peak_kb(proc_pid(e->ext[i].proc));
        }
    }
    return (unsigned)((kb + 1023) / 1024);
}

static void make_trace(char *out, size_t len)
{
    char a[25];
    char b[17];

    sim_hex(a, 12);
    sim_hex(b, 8);
    sim_msgf(out, len, "Root=1-%08llx-%s;Parent=%s;Sampled=0",
             (unsigned long long)(clock_real_ms() / 1000u), a, b); /* 74 bytes, out holds 256 */
}

/* mu held.  Answers the caller with a function error built from type and message. */
static void answer_error(struct env *e, struct sim_job *job, const char *type, const char *msg)
{
    char full[512];
    char *body;

    sim_msgf(full, sizeof(full), "RequestId: %s Error: %s", e->inv.id, msg);
    body = wire_error_body(type, full);
    sim_job_finish(job, 200, body, strlen(body) - 1 /* no newline on the invoke API */, 1, NULL);
}

enum outcome {
    OUT_OK = 0,
    OUT_TIMEOUT,
    OUT_FAILURE,
    OUT_STOP,
};

static void reset_inv(struct env *e)
{
    free(e->inv.payload);
    free(e->inv.resp);
    memset(&e->inv, 0, sizeof(e->inv));
}

/* mu held.  The report of the current invoke: status, spans, log lines. */
static void finish_invoke(struct env *e, const char *status, const char *error_type, int rt_next,
                          int freeze)
{
    struct sim_stamp done = sim_stamp_now();
    struct wire_report r;
    char *line;

    memset(&r, 0, sizeof(r));
    r.request_id = e->inv.id;
    r.status = status;
    r.error_type = error_type;
    r.duration_ms = sim_ms(e->inv.t_start, done);
    r.init_ms = e->invokes == 0 ? e->init_ms : -1;
    r.billed_ms = wire_billed_ms(r.duration_ms, r.init_ms);
    r.memory_mb = e->cfg->memory_mb;
    r.max_used_mb = env_max_memory_mb(e);
    if (rt_next) {
        unsigned i;

        for (i = 0; i < e->n_ext; i++) {
            if (e->ext[i].registered && (e->ext[i].events & WIRE_EV_INVOKE)) {
                r.has_ext_span = 1;
            }
        }
        r.ext_span.name = "extensionOverhead";
        r.ext_span.start_ms = e->rt_next_at.real_ms;
        r.ext_span.duration_ms = sim_ms(e->rt_next_at, done);
    }
    env_log(e, "END RequestId: %s\n", e->inv.id);
    line = wire_report_line(&r);
    env_log_write(e, line, strlen(line));
    free(line);
    tele_hub_emit(e->hub, WIRE_T_PLATFORM, wire_ev_report(done.real_ms, &r), freeze);
    e->invokes++;
}

/* mu held.  runtimeDone for the current invoke. */
static void runtime_done(struct env *e, const char *status, const char *error_type, int spans)
{
    struct wire_runtime_done rd;
    struct sim_stamp now = spans ? e->rt_next_at : sim_stamp_now();

    memset(&rd, 0, sizeof(rd));
    rd.request_id = e->inv.id;
    rd.status = status;
    rd.error_type = error_type;
    rd.duration_ms = sim_ms(e->inv.t_start, now);
    rd.produced_bytes = e->inv.responded ? e->inv.resp_len : 0;
    if (spans) {
        rd.nspans = 3;
        rd.spans[0].name = "responseLatency";
        rd.spans[0].start_ms = e->inv.t_start.real_ms;
        rd.spans[0].duration_ms = sim_ms(e->inv.t_start, e->inv.t_first);
        rd.spans[1].name = "responseDuration";
        rd.spans[1].start_ms = e->inv.t_first.real_ms;
        rd.spans[1].duration_ms = sim_ms(e->inv.t_first, e->inv.t_end);
        rd.spans[2].name = "runtimeOverhead";
        rd.spans[2].start_ms = e->inv.t_end.real_ms;
        rd.spans[2].duration_ms = sim_ms(e->inv.t_end, e->rt_next_at);
    }
    emit(e, wire_ev_runtime_done(now.real_ms, &rd));
}

/* mu held.  A new invocation for job: its id, payload, trace header and deadline. */
static void begin_invoke(struct env *e, struct sim_job *job)
{
    reset_inv(e);
    sim_uuid(e->inv.id);
    memcpy(job->request_id, e->inv.id, SIM_UUID_LEN);
    e->inv.payload = xmemdup(job->payload ? job->payload : "", job->payload_len);
    e->inv.payload_len = job->payload_len;
    str_copy_trunc(e->inv.content_type, sizeof(e->inv.content_type),
                   job->content_type[0] ? job->content_type : "application/json");
    if (job->trace[0]) {
        str_copy_trunc(e->inv.trace, sizeof(e->inv.trace), job->trace);
    } else {
        make_trace(e->inv.trace, sizeof(e->inv.trace));
    }
    e->inv.t_start = sim_stamp_now();
    e->inv.deadline_ms = e->inv.t_start.real_ms + (uint64_t)e->cfg->timeout_s * 1000u;
    e->phase = PH_INVOKE;
    tele_hub_freeze(e->hub, 0);
    emit(e, wire_ev_start(e->inv.t_start.real_ms, e->inv.id, e->arn, "$LATEST"));
    env_log(e, "START RequestId: %s Version: $LATEST\n", e->inv.id);
    for (unsigned i = 0; i < e->n_ext; i++) {
        if (ext_gets_invoke(&e->ext[i])) {
            free(e->ext[i].pending);
            e->ext[i].pending =
                wire_invoke_event(e->inv.deadline_ms, e->inv.id, e->arn, e->inv.trace);
        }
    }
    pthread_cond_broadcast(&e->cv);
}

/* mu held.  The caller is answered as soon as the runtime posts, while extensions may still be
 * working: the response, or the function error. */
static void answer_caller(struct env *e, struct sim_job *job)
{
    char *body = e->inv.resp;
    size_t len = e->inv.resp_len;

    if (!e->inv.is_error) {
        e->inv.resp = NULL;
        sim_job_finish(job, 200, body ? body : xstrdup(""), len, 0, NULL);
    } else if (len >= 2 && body[0] == '{') {
        /* A body the runtime posted as the error document is passed on as it is. */
        e->inv.resp = NULL;
        sim_job_finish(job, 200, body, len, 1, NULL);
    } else {
        char *doc = wire_error_body(e->inv.err_type[0] ? e->inv.err_type : "Unhandled", "");

        sim_job_finish(job, 200, doc, strlen(doc) - 1, 1, NULL);
    }
}

/* mu held.  An invocation that did not end well: the caller (if not answered yet) gets the
 * error, and the platform events and log lines say timeout, failure or shutdown. */
static enum outcome abort_invoke(struct env *e, struct sim_job *job, enum wait_rc w,
                                 int rt_done_sent)
{
    if (w == WAIT_TIMEOUT) {
        char msg[96];
        char iso[CLOCK_ISO_LEN];

        sim_msgf(msg, sizeof(msg), "Task timed out after %u.00 seconds", e->cfg->timeout_s);
        if (job) {
            answer_error(e, job, "Sandbox.Timedout", msg);
        }
        clock_format_iso(clock_real_ms(), iso);
        env_log(e, "%s %s %s\n", iso, e->inv.id, msg);
        if (!rt_done_sent) {
            runtime_done(e, "timeout", NULL, 0);
        }
        finish_invoke(e, "timeout", NULL, rt_done_sent, 0);
        return OUT_TIMEOUT;
    }
    if (w == WAIT_FAIL) {
        if (job) {
            answer_error(e, job, e->fail_type, e->fail_msg);
        }
        env_log(e, "RequestId: %s Error: %s\n", e->inv.id, e->fail_msg);
        env_log(e, "%s\n", e->fail_type);
        if (!rt_done_sent) {
            runtime_done(e, "failure", e->fail_type, 0);
        }
        finish_invoke(e, "failure", e->fail_type, rt_done_sent, 0);
        return OUT_FAILURE;
    }
    if (job) {
        char *doc = xstrdup("{\"Type\":\"Service\",\"message\":\"lambda-sim is shutting "
                            "down\"}");
        sim_job_finish(job, 503, doc, strlen(doc), 0, "ServiceException");
    }
    if (!rt_done_sent) {
        runtime_done(e, "failure", "Sandbox.Terminated", 0);
    }
    finish_invoke(e, "failure", "Sandbox.Terminated", rt_done_sent, 0);
    return OUT_STOP;
}

static enum outcome env_invoke(struct env *e, struct sim_job *job)
{
    uint64_t deadline;
    enum wait_rc w;
    enum outcome out;
    int rt_done_sent = 0;

    pthread_mutex_lock(&e->mu);
    begin_invoke(e, job);
    deadline = e->inv.t_start.mono_ns + (uint64_t)e->cfg->timeout_s * 1000000000u;
    /* Extensions first, then the runtime (RAPID releases them in this order). */
    w = env_wait(e, pred_invoke_taken, deadline);
    if (w != WAIT_OK) {
        goto abort;
    }
    e->inv.offered = 1;
    pthread_cond_broadcast(&e->cv);
    w = env_wait(e, pred_responded, deadline);
    if (w != WAIT_OK) {
        goto abort;
    }
    answer_caller(e, job);
    job = NULL;
    w = env_wait(e, pred_rt_next, deadline);
    if (w != WAIT_OK) {
        goto abort;
    }
    runtime_done(e, e->inv.is_error ? "error" : "success", e->inv.is_error ? e->inv.err_type : NULL,
                 1);
    rt_done_sent = 1;
    w = env_wait(e, pred_ext_ready, deadline);
    if (w != WAIT_OK) {
        goto abort;
    }
    finish_invoke(e, e->inv.is_error ? "error" : "success",
                  e->inv.is_error ? e->inv.err_type : NULL, 1, 1);
    e->phase = PH_IDLE;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return OUT_OK;

abort:
    out = abort_invoke(e, job, w, rt_done_sent);
    pthread_mutex_unlock(&e->mu);
    return out;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void env_shutdown(struct env *e, const char *reason)
{
    struct sim_stamp t0 = sim_stamp_now();
    unsigned budget = 0;
    uint64_t deadline;
    unsigned i;
    int externals = 0;
    int internals = 0;

    pthread_mutex_lock(&e->mu);
    e->phase = PH_SHUTDOWN;
    e->resetting = strcmp(reason, "spindown") != 0;
    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].registered && e->ext[i].external) {
            externals = 1;
        } else if (e->ext[i].registered) {
            internals = 1;
        }
    }
    /* Lambda's budget: 2000 ms with an external extension, 500 ms with internal ones only,
     * none without extensions. */
    budget = externals ? e->cfg->shutdown_ms : internals ? 500 : 0;
    deadline = t0.mono_ns + (uint64_t)budget * 1000000u;
    pthread_mutex_unlock(&e->mu);
    tele_hub_freeze(e->hub, 0);

    if (e->rt) {
        if (budget > 0) {
            /* RAPID gives the runtime 30 % of the budget after SIGTERM.  The whole process group
             * is waited for: `sh -c CMD` may exit before the CMD it forked. */
            uint64_t rt_deadline = t0.mono_ns + (uint64_t)budget * 300000u;

            proc_signal(e->rt, SIGTERM);
            while (proc_group_alive(e->rt) && clock_mono_ns() < rt_deadline) {
                struct timespec d = {0, 5000000L};

                nanosleep(&d, NULL);
            }
        }
        proc_signal(e->rt, SIGKILL);
    }

    pthread_mutex_lock(&e->mu);
    for (i = 0; i < e->n_ext; i++) {
        struct sim_ext *x = &e->ext[i];

        if (!x->external || !x->proc || x->exited) {
            continue;
        }
        if (x->registered && (x->events & WIRE_EV_SHUTDOWN) && !x->errored) {
            free(x->pending);
            x->pending = wire_shutdown_event(t0.real_ms + budget, reason);
            x->shutdown_sent = 1;
        } else {
            proc_signal(x->proc, SIGKILL);
        }
    }
    pthread_cond_broadcast(&e->cv);
    env_wait_only(e, pred_ext_exited, deadline);
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < e->n_ext; i++) {
        if (e->ext[i].proc) {
            proc_signal(e->ext[i].proc, SIGKILL);
        }
    }
}

/* ---- the controller ------------------------------------------------------------------------ */

static int pred_has_work(struct env *e)
{
    return e->job != NULL || e->stop || e->idle_broken;
}

static void *env_main(void *arg)
{
    struct env *e = arg;
    struct env_extra xtra;
    struct sim_job *job;
    const char *reason = "spindown";
    unsigned i;

    memset(&xtra, 0, sizeof(xtra));
    if (env_init(e, &xtra) != 0) {
        pthread_mutex_lock(&e->mu);
        job = e->job;
        e->job = NULL;
        if (job) {
            sim_uuid(e->inv.id);
            memcpy(job->request_id, e->inv.id, SIM_UUID_LEN);
            if (e->init_error_body && e->init_error_len > 1 && e->init_error_body[0] == '{') {
                sim_job_finish(job, 200, e->init_error_body, e->init_error_len, 1, NULL);
                e->init_error_body = NULL;
            } else {
                answer_error(e, job, e->fail_type, e->fail_msg);
            }
        }
        /* A stop during init is still a spindown; anything else failed the init. */
        reason = e->stop ? "spindown" : "failure";
        pthread_mutex_unlock(&e->mu);
        goto out;
    }
    for (;;) {
        enum outcome o;

        pthread_mutex_lock(&e->mu);
        while (!pred_has_work(e)) {
            pthread_cond_wait(&e->cv, &e->mu);
        }
        job = e->job;
        e->job = NULL;
        if (!job) {
            reason = e->stop ? "spindown" : "failure";
            pthread_mutex_unlock(&e->mu);
            break;
        }
        pthread_mutex_unlock(&e->mu);
        o = env_invoke(e, job);
        if (o == OUT_TIMEOUT) {
            reason = "timeout";
            break;
        }
        if (o == OUT_FAILURE) {
            reason = "failure";
            break;
        }
        if (o == OUT_STOP) {
            break;
        }
        if (e->idle) {
            e->idle(e->done_arg);
        }
    }
out:
    env_shutdown(e, reason);
    pthread_mutex_lock(&e->mu);
    e->phase = PH_DEAD;
    job = e->job;
    e->job = NULL;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (job) {
        /* Assigned while this environment was ending: nobody will run it. */
        char *doc = xstrdup("{\"Type\":\"Service\",\"message\":\"execution environment ended\"}");

        sim_job_finish(job, 503, doc, strlen(doc), 0, "ServiceException");
    }
    env_api_stop(e);
    for (i = 0; i < e->n_ext; i++) {
        proc_free(e->ext[i].proc);
        e->ext[i].proc = NULL;
    }
    proc_free(e->rt);
    e->rt = NULL;
    tele_hub_free(e->hub);
    e->hub = NULL;
    for (i = 0; i <= ENV_MAX_EXT; i++) {
        free(xtra.src[i]);
    }
    if (e->done) {
        e->done(e->done_arg, e);
    }
    return NULL;
}

/* The log stream's name and file, named after the UTC day as Lambda names them. */
static void name_stream(struct env *e, const struct sim_config *cfg)
{
    char iso[CLOCK_ISO_LEN];
    char day[11]; /* YYYY-MM-DD */

    clock_format_iso(clock_real_ms(), iso);
    memcpy(day, iso, 10);
    day[10] = '\0';
    if (sim_fmt(e->stream_name, sizeof(e->stream_name), "%.4s/%.2s/%.2s/[$LATEST]%s", day, day + 5,
                day + 8, e->stream_hex) != 0 ||
        sim_fmt(e->arn, sizeof(e->arn), "arn:aws:lambda:%s:%s:function:%s", cfg->region,
                cfg->account_id, cfg->function_name) != 0) {
        env_set_fail(e, "Sandbox.Failure", "the function name or region is too long for an ARN");
    }
    if (!cfg->logs_dir) {
        return;
    }
    if (sim_fmt(e->log_path, sizeof(e->log_path), "%s/%s-%s.log", cfg->logs_dir, day,
                e->stream_hex) != 0) {
        LOG_WARN("lambda-sim", "--logs path too long; using stderr");
        return;
    }
    e->log_fd = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (e->log_fd < 0) {
        LOG_WARN("lambda-sim", "cannot open log stream %s; using stderr", e->log_path);
    }
}

struct env *env_start(const struct sim_config *cfg, unsigned seq, struct sim_job *first,
                      env_done_fn done, env_idle_fn idle, void *arg)
{
    struct env *e = xcalloc(1, sizeof(*e));

    e->cfg = cfg;
    e->seq = seq;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->log_mu, NULL);
    clock_cond_init(&e->cv);
    e->phase = PH_INIT;
    e->log_fd = -1;
    e->job = first;
    e->done = done;
    e->idle = idle;
    e->done_arg = arg;
    sim_hex(e->token, 24);
    sim_hex(e->stream_hex, 16);
    name_stream(e, cfg);
    e->ext_port = sim_free_port();
    e->hub = tele_hub_new();
    if (env_api_start(e) != 0) {
        env_set_fail(e, "Sandbox.Failure", "cannot start the Runtime API server");
    }
    LOG_INFO("lambda-sim", "environment %u: api 127.0.0.1:%u, extension port %u, stream %s", seq,
             e->api_port, e->ext_port, e->stream_name);
    if (pthread_create(&e->thread, NULL, env_main, e) != 0) {
        abort(); /* out of resources */
    }
    return e;
}

int env_try_assign(struct env *e, struct sim_job *job)
{
    int ok = 0;

    pthread_mutex_lock(&e->mu);
    if (e->phase == PH_IDLE && !e->job && !e->stop && !e->idle_broken && !e->fail) {
        e->job = job;
        e->phase = PH_INVOKE; /* busy from now on, for other dispatchers */
        pthread_cond_broadcast(&e->cv);
        ok = 1;
    }
    pthread_mutex_unlock(&e->mu);
    return ok;
}

int env_is_resetting(struct env *e)
{
    int r;

    pthread_mutex_lock(&e->mu);
    r = e->idle_broken || e->resetting || (e->phase == PH_SHUTDOWN && !e->stop);
    pthread_mutex_unlock(&e->mu);
    return r;
}

void env_request_stop(struct env *e)
{
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void env_join_free(struct env *e)
{
    unsigned i;

    if (!e) {
        return;
    }
    pthread_join(e->thread, NULL);
    for (i = 0; i < ENV_MAX_EXT; i++) {
        free(e->ext[i].pending);
    }
    reset_inv(e);
    free(e->init_error_body);
    if (e->log_fd >= 0) {
        close(e->log_fd);
    }
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->log_mu);
    free(e);
}
