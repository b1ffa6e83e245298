/* sim/lambda_sim/pool.c: environment slots and dispatch (see pool.h). */
#include "sim/lambda_sim/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/mem.h"

struct pool {
    const struct sim_config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; an environment ended */
    struct env **envs; /* max_envs slots, NULL when free */
    int *finished;     /* the slot's environment thread is ending */
    unsigned seq;
    int stopping;
};

struct pool *pool_new(const struct sim_config *cfg)
{
    struct pool *p = xcalloc(1, sizeof(*p));

    p->cfg = cfg;
    pthread_mutex_init(&p->mu, NULL);
    clock_cond_init(&p->cv);
    p->envs = xcalloc(cfg->max_envs, sizeof(struct env *));
    p->finished = xcalloc(cfg->max_envs, sizeof(*p->finished));
    return p;
}

static void on_env_idle(void *arg)
{
    struct pool *p = arg;

    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void on_env_done(void *arg, struct env *env)
{
    struct pool *p = arg;
    unsigned i;

    pthread_mutex_lock(&p->mu);
    for (i = 0; i < p->cfg->max_envs; i++) {
        if (p->envs[i] == env) {
            p->finished[i] = 1;
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* mu held.  The threads of finished environments are past their last use of the pool. */
static void reap_locked(struct pool *p)
{
    unsigned i;

    for (i = 0; i < p->cfg->max_envs; i++) {
        if (p->envs[i] && p->finished[i]) {
            env_join_free(p->envs[i]);
            p->envs[i] = NULL;
            p->finished[i] = 0;
        }
    }
}

static void answer(struct sim_job *job, unsigned status, const char *body, const char *kind)
{
    sim_job_finish(job, status, xstrdup(body), strlen(body), 0, kind);
}

void pool_invoke(struct pool *p, struct sim_job *job)
{
    /* How long an invoke may wait for a resetting environment: its SHUTDOWN budget, plus
     * slack for the reaping. */
    uint64_t start = clock_mono_ns();
    uint64_t reset_deadline = start + ((uint64_t)p->cfg->shutdown_ms + 3000u) * 1000000u;
    /* --queue-ms: how long an invoke may wait for a busy environment (0: Lambda's 429). */
    uint64_t queue_deadline = start + (uint64_t)p->cfg->queue_ms * 1000000u;
    int assigned = 0;
    unsigned i;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        int resetting = 0;
        int free_slot = -1;
        uint64_t deadline;
        struct timespec ts;

        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            answer(job, 503, "{\"Type\":\"Service\",\"message\":\"lambda-sim is shutting down\"}",
                   "ServiceException");
            return;
        }
        reap_locked(p);
        for (i = 0; i < p->cfg->max_envs && !assigned; i++) {
            if (p->envs[i] && !p->finished[i] && env_try_assign(p->envs[i], job)) {
                assigned = 1;
            }
        }
        if (assigned) {
            break;
        }
        for (i = 0; i < p->cfg->max_envs; i++) {
            if (!p->envs[i] && free_slot < 0) {
                free_slot = (int)i;
            } else if (p->envs[i] && (p->finished[i] || env_is_resetting(p->envs[i]))) {
                resetting = 1;
            }
        }
        if (free_slot >= 0) {
            p->envs[free_slot] = env_start(p->cfg, ++p->seq, job, on_env_done, on_env_idle, p);
            assigned = 1;
            break;
        }
        deadline = queue_deadline;
        if (resetting && reset_deadline > deadline) {
            deadline = reset_deadline;
        }
        if (clock_mono_ns() >= deadline) {
            break;
        }
        ts.tv_sec = (time_t)(deadline / 1000000000u);
        ts.tv_nsec = (long)(deadline % 1000000000u);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    if (!assigned) {
        answer(job, 429,
               "{\"Reason\":\"ReservedFunctionConcurrentInvocationLimitExceeded\",\"Type\":"
               "\"User\",\"message\":\"Rate Exceeded.\"}",
               "TooManyRequestsException");
        return;
    }
    sim_job_wait(job);
}

void pool_stop(struct pool *p)
{
    unsigned i;

    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (i = 0; i < p->cfg->max_envs; i++) {
        if (p->envs[i]) {
            env_request_stop(p->envs[i]);
        }
    }
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->cfg->max_envs; i++) {
        struct env *e;

        pthread_mutex_lock(&p->mu);
        e = p->envs[i];
        pthread_mutex_unlock(&p->mu);
        if (e) {
            env_join_free(e); /* its done callback takes p->mu: not held here */
            pthread_mutex_lock(&p->mu);
            p->envs[i] = NULL;
            p->finished[i] = 0;
            pthread_mutex_unlock(&p->mu);
        }
    }
}

unsigned pool_started(struct pool *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->seq;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pool_free(struct pool *p)
{
    if (!p) {
        return;
    }
    free(p->envs);
    free(p->finished);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
