/* sim/lambda_sim/env.h: one Lambda execution environment, and the invoke jobs it runs.
 *
 * An environment is a controller thread plus its own Runtime/Extensions/Telemetry API server
 * (its own port, AWS_SESSION_TOKEN, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT and log stream).  The
 * controller runs Lambda's lifecycle as RAPID does (the Extensions API page's "Lifecycle"):
 * init (extensions launched, registration barrier, runtime launched, init ends when the runtime
 * and every extension called next), then invokes one at a time, then SHUTDOWN: `spindown` when
 * asked to stop, `timeout`/`failure` after a timed out or crashed invoke (the environment then
 * ends and the pool starts a fresh one for the next invoke).
 *
 * A job is one caller's invoke.  The caller owns it (often on its stack), fills the request
 * fields, hands it to env_start or env_try_assign, and sleeps in sim_job_wait until the
 * environment finishes it; from then on the environment never touches it again.  The caller
 * frees job->body.
 *
 * Lifetime: env_start creates the environment and its thread; when the thread is about to end it
 * calls done(arg, env) (without holding any environment lock); env_join_free joins and frees.
 * Thread-safety: env_try_assign, env_is_resetting and env_request_stop are thread-safe.
 */
#ifndef STASH_SIM_ENV_H
#define STASH_SIM_ENV_H

#include <pthread.h>
#include <stddef.h>

#include "sim/lambda_sim/config.h"
#include "sim/lambda_sim/util.h"

struct sim_job {
    /* request, set by the caller */
    const char *payload;
    size_t payload_len;
    char content_type[128];
    char trace[256]; /* X-Amzn-Trace-Id of the caller, or "" */
    /* answer, set by the environment before done */
    unsigned status;
    char *body; /* owned by the caller once done */
    size_t body_len;
    int function_error;  /* X-Amz-Function-Error: Unhandled */
    char error_kind[64]; /* X-Amzn-ErrorType for non-200 answers, or "" */
    char request_id[SIM_UUID_LEN];
    /* private */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

void sim_job_init(struct sim_job *job);
/* Answers the job (takes body) and wakes its caller. */
void sim_job_finish(struct sim_job *job, unsigned status, char *body, size_t len,
                    int function_error, const char *error_kind);
void sim_job_wait(struct sim_job *job);
void sim_job_release(struct sim_job *job);

struct env;
typedef void (*env_done_fn)(void *arg, struct env *env);
/* Called (no environment lock held) each time the environment finishes an invoke and is idle. */
typedef void (*env_idle_fn)(void *arg);

/* Starts an environment that initialises and then runs first (may be NULL).  done and idle get
 * arg. */
struct env *env_start(const struct sim_config *cfg, unsigned seq, struct sim_job *first,
                      env_done_fn done, env_idle_fn idle, void *arg);
/* Gives job to an idle environment; 0 if it is not idle. */
int env_try_assign(struct env *env, struct sim_job *job);
/* 1 while the environment is shutting down after a timeout or failure (it frees its place
 * soon, so an invoke may wait for it rather than be throttled). */
int env_is_resetting(struct env *env);
/* Ends the environment with SHUTDOWN spindown as soon as possible (an invoke in flight is
 * answered with an error). */
void env_request_stop(struct env *env);
void env_join_free(struct env *env);

#endif
