/* sim/lambda_sim/pool.h: the execution environments of one function, and invoke dispatch.
 *
 * pool_invoke gives a job to an idle environment, or starts a new one while fewer than
 * --max-envs exist (its init runs first, as a cold start); when every environment is busy the
 * job is answered at once with 429 TooManyRequestsException, as Lambda answers an invoke over
 * the function's reserved concurrency.  Environments that are resetting after a timeout or a
 * crash free their place within the SHUTDOWN budget, so an invoke waits for them instead; with
 * --queue-ms an invoke also waits that long for a busy environment to become idle.
 * Environments that ended are reaped (joined and freed) by later dispatches and by pool_stop.
 * Thread-safety: pool_invoke may be called from any number of threads; pool_stop once, after
 * which pool_invoke answers 503; pool_free last.
 */
#ifndef STASH_SIM_POOL_H
#define STASH_SIM_POOL_H

#include "sim/lambda_sim/config.h"
#include "sim/lambda_sim/env.h"

struct pool;

struct pool *pool_new(const struct sim_config *cfg);
/* Returns when job is answered. */
void pool_invoke(struct pool *p, struct sim_job *job);
/* SHUTDOWN spindown to every environment (in parallel), then waits for all of them. */
void pool_stop(struct pool *p);
void pool_free(struct pool *p);
/* Environments started so far (cold starts), for the exit summary. */
unsigned pool_started(struct pool *p);

#endif
