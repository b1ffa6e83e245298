/* sim/lambda_sim/config.h: lambda-sim's command line.
 *
 * sim_config_parse fills a struct sim_config from argv (getopt_long; see sim_config_usage for the
 * options) and lists the extensions directory (every executable non-directory entry, sorted by
 * name, at most CONFIG_MAX_EXT as in Lambda).  Errors: STASH_EINVAL with a message in err;
 * *help set when --help was given (nothing else is checked then).
 * Ownership: the config owns every string in it; sim_config_release frees them.
 * Thread-safety: parse once in main before any thread; read-only afterwards.
 */
#ifndef STASH_SIM_CONFIG_H
#define STASH_SIM_CONFIG_H

#include <stddef.h>

#include "common/err.h"

#define CONFIG_MAX_EXT 10
#define CONFIG_MAX_ENV 64

struct sim_config {
    char *function_cmd;   /* --function: run with /bin/sh -c */
    char *extensions_dir; /* --extensions, or NULL */
    char *ext_paths[CONFIG_MAX_EXT];
    char *ext_names[CONFIG_MAX_EXT]; /* file names: what Lambda-Extension-Name must equal */
    unsigned n_ext;
    char *env_kv[CONFIG_MAX_ENV]; /* --env KEY=VALUE, in order given */
    unsigned n_env;
    unsigned memory_mb;       /* --memory, 128..10240 */
    unsigned timeout_s;       /* --timeout, 1..900 */
    unsigned max_envs;        /* --max-envs */
    unsigned queue_ms;        /* --queue-ms: wait for a busy environment before 429 */
    char *logs_dir;           /* --logs, or NULL: stream lines go to stderr */
    unsigned port;            /* --port, 0 = any free port */
    char *ready_file;         /* --ready-file, or NULL */
    char *function_name;      /* --function-name */
    char *region;             /* --region */
    char *handler;            /* --handler (_HANDLER) */
    char *task_root;          /* --task-root (LAMBDA_TASK_ROOT and the runtime's cwd) */
    unsigned init_timeout_ms; /* --init-timeout seconds, stored in ms */
    unsigned shutdown_ms;     /* --shutdown-timeout ms (the SHUTDOWN budget) */
    int telemetry;            /* --telemetry on|off */
    char account_id[16];
};

enum stash_err sim_config_parse(int argc, char **argv, struct sim_config *cfg, int *help, char *err,
                                size_t errlen);
void sim_config_release(struct sim_config *cfg);
const char *sim_config_usage(void);

#endif
