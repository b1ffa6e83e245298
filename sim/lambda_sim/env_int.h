/* sim/lambda_sim/env_int.h: the inside of struct env, shared by env.c (the lifecycle controller)
 * and env_api.c (the Runtime/Extensions/Telemetry API handlers).  Not for other modules.
 *
 * Locking: env->mu guards every field below marked (mu); env->cv (CLOCK_MONOTONIC) is broadcast
 * on every change.  Lock order: pool -> env->mu -> (tele hub, job, log_mu).  No proc_free, MHD
 * stop or thread join happens under env->mu.
 */
#ifndef STASH_SIM_ENV_INT_H
#define STASH_SIM_ENV_INT_H

#include <pthread.h>
#include <stdint.h>

#include "sim/lambda_sim/config.h"
#include "sim/lambda_sim/env.h"
#include "sim/lambda_sim/proc.h"
#include "sim/lambda_sim/tele.h"
#include "sim/lambda_sim/util.h"

enum env_phase {
    PH_INIT,
    PH_IDLE,
    PH_INVOKE,
    PH_SHUTDOWN,
    PH_DEAD,
};

#define ENV_MAX_EXT CONFIG_MAX_EXT

struct sim_ext {
    struct env *env;
    char name[256];
    int external;      /* launched from the extensions dir; else registered from inside */
    struct proc *proc; /* external only */
    int exited;        /* (mu) */
    int registered;    /* (mu) */
    char id[SIM_UUID_LEN];
    unsigned events;   /* WIRE_EV_* */
    int in_next;       /* (mu) blocked in event/next */
    char *pending;     /* (mu) event to hand out at its next `next` */
    int errored;       /* (mu) called init/error or exit/error */
    int shutdown_sent; /* (mu) */
};

struct inv_state {
    char id[SIM_UUID_LEN];
    uint64_t deadline_ms;
    char trace[256];
    char content_type[128];
    char *payload;
    size_t payload_len;
    int offered;   /* the runtime may take it */
    int taken;     /* the runtime's next returned it */
    int responded; /* response or error posted */
    int is_error;
    char *resp;
    size_t resp_len;
    char err_type[128];
    struct sim_stamp t_start; /* platform.start */
    struct sim_stamp t_first; /* response POST began */
    struct sim_stamp t_end;   /* response body received */
};

struct env {
    const struct sim_config *cfg;
    unsigned seq;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum env_phase phase; /* (mu) */
    int reg_closed;       /* (mu) registration and subscription closed */
    char token[64];       /* AWS_SESSION_TOKEN */
    char stream_hex[33];
    char stream_name[96];
    char log_path[4200];
    char arn[320];
    unsigned api_port;
    unsigned ext_port;
    struct MHD_Daemon *mhd;
    int log_fd;
    pthread_mutex_t log_mu;
    struct tele_hub *hub;
    struct sim_ext ext[ENV_MAX_EXT];
    unsigned n_ext; /* (mu) */
    struct proc *rt;
    int rt_exited;               /* (mu) */
    int rt_in_next;              /* (mu) */
    struct sim_stamp rt_next_at; /* (mu) last time the runtime called next */
    char *init_error_body;       /* (mu) runtime's init/error body */
    size_t init_error_len;
    int fail;             /* (mu) a process died or reported a fatal error */
    char fail_type[64];   /* (mu) */
    char fail_msg[256];   /* (mu) */
    int idle_broken;      /* (mu) a process died between invokes */
    struct sim_job *job;  /* (mu) assigned, not yet started */
    int stop;             /* (mu) */
    int resetting;        /* (mu) */
    struct inv_state inv; /* (mu) */
    double init_ms;
    unsigned invokes;
    pthread_t thread;
    env_done_fn done;
    env_idle_fn idle;
    void *done_arg;
};

/* env_api.c */
int env_api_start(struct env *e);
void env_api_stop(struct env *e);
/* env.c, for the API handlers (mu held): records a fatal error unless one is recorded. */
void env_set_fail(struct env *e, const char *type, const char *msg);
/* Writes one line (with its newline) to the environment's log stream. */
void env_log_write(struct env *e, const char *line, size_t len);

#endif
