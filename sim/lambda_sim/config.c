/* sim/lambda_sim/config.c: the command line (see config.h). */
#include "sim/lambda_sim/config.h"

#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"

const char *sim_config_usage(void)
{
    return "usage: lambda-sim --function CMD [options]\n"
           "Runs a function the way AWS Lambda does: execution environments with the Runtime,\n"
           "Extensions and Telemetry APIs, and an invoke endpoint for curl and load tools:\n"
           "  POST http://127.0.0.1:PORT/2015-03-31/functions/function/invocations\n"
           "\n"
           "  --function CMD        the runtime process, run with /bin/sh -c (required)\n"
           "  --extensions DIR      every executable in DIR is an external extension\n"
           "  --env KEY=VALUE       environment of function and extensions (repeatable;\n"
           "                        overrides lambda-sim's defaults, e.g. credentials)\n"
           "  --memory MB           memory size, 128..10240 (default 128)\n"
           "  --timeout S           function timeout in seconds, 1..900 (default 3)\n"
           "  --max-envs N          concurrent execution environments (default 10); an invoke\n"
           "                        beyond that gets 429 TooManyRequestsException\n"
           "  --queue-ms MS         let such an invoke wait up to MS for an environment to\n"
           "                        become idle first (default 0: 429 at once, as Lambda)\n"
           "  --logs DIR            one log stream file per environment (default: stderr)\n"
           "  --port P              invoke endpoint port on 127.0.0.1 (0 = a free one; default\n"
           "                        9000); prints 'lambda-sim listening on 127.0.0.1:PORT'\n"
           "  --ready-file PATH     written with the port once the endpoint listens\n"
           "  --function-name NAME  AWS_LAMBDA_FUNCTION_NAME (default function)\n"
           "  --region REGION       AWS_REGION (default us-east-1)\n"
           "  --handler H           _HANDLER (default function.handler)\n"
           "  --task-root DIR       LAMBDA_TASK_ROOT and the runtime's directory (default .)\n"
           "  --init-timeout S      init limit in seconds (default 10)\n"
           "  --shutdown-timeout MS SHUTDOWN budget in ms (default 2000)\n"
           "  --telemetry on|off    off: subscriptions get 202 Telemetry.NotSupported, as\n"
           "                        AWS's emulator answers (default on)\n"
           "  --help                this text\n";
}

enum opt_id {
    OPT_FUNCTION = 256,
    OPT_EXTENSIONS,
    OPT_ENV,
    OPT_MEMORY,
    OPT_TIMEOUT,
    OPT_MAX_ENVS,
    OPT_QUEUE,
    OPT_LOGS,
    OPT_PORT,
    OPT_READY,
    OPT_NAME,
    OPT_REGION,
    OPT_HANDLER,
    OPT_TASK_ROOT,
    OPT_INIT_TIMEOUT,
    OPT_SHUTDOWN,
    OPT_TELEMETRY,
    OPT_HELP,
};

static const struct option s_opts[] = {
    {"function", required_argument, NULL, OPT_FUNCTION},
    {"extensions", required_argument, NULL, OPT_EXTENSIONS},
    {"env", required_argument, NULL, OPT_ENV},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-envs", required_argument, NULL, OPT_MAX_ENVS},
    {"queue-ms", required_argument, NULL, OPT_QUEUE},
    {"logs", required_argument, NULL, OPT_LOGS},
    {"port", required_argument, NULL, OPT_PORT},
    {"ready-file", required_argument, NULL, OPT_READY},
    {"function-name", required_argument, NULL, OPT_NAME},
    {"region", required_argument, NULL, OPT_REGION},
    {"handler", required_argument, NULL, OPT_HANDLER},
    {"task-root", required_argument, NULL, OPT_TASK_ROOT},
    {"init-timeout", required_argument, NULL, OPT_INIT_TIMEOUT},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
    {"telemetry", required_argument, NULL, OPT_TELEMETRY},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    unsigned long v;

    if (!s || !*s || *s == '-') {
        return -1;
    }
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = xstrdup(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum stash_err list_extensions(struct sim_config *cfg, char *err, size_t errlen)
{
    DIR *d = opendir(cfg->extensions_dir);
    struct dirent *de;
    char *names[256];
    unsigned n = 0;
    unsigned i;
    enum stash_err rc = STASH_EINVAL;

    if (!d) {
        snprintf(err, errlen, "--extensions %s: cannot open directory", cfg->extensions_dir);
        return STASH_EINVAL;
    }
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;

        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", cfg->extensions_dir, de->d_name);
        if (stat(path, &st) != 0 || S_ISDIR(st.st_mode) || access(path, X_OK) != 0) {
            continue;
        }
        if (n == 256) {
            break;
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > CONFIG_MAX_EXT) {
        snprintf(err, errlen, "--extensions %s: %u extensions; Lambda allows %d",
                 cfg->extensions_dir, n, CONFIG_MAX_EXT);
        goto out;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (i = 0; i < n; i++) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", cfg->extensions_dir, names[i]);
        cfg->ext_paths[i] = xstrdup(path);
        cfg->ext_names[i] = names[i];
        names[i] = NULL;
    }
    cfg->n_ext = n;
    rc = STASH_OK;
out:
    for (i = 0; i < n; i++) {
        free(names[i]);
    }
    return rc;
}

enum stash_err sim_config_parse(int argc, char **argv, struct sim_config *cfg, int *help, char *err,
                                size_t errlen)
{
    int c;
    unsigned v;

    memset(cfg, 0, sizeof(*cfg));
    *help = 0;
    cfg->memory_mb = 128;
    cfg->timeout_s = 3;
    cfg->max_envs = 10;
    cfg->port = 9000;
    cfg->init_timeout_ms = 10000;
    cfg->shutdown_ms = 2000;
    cfg->telemetry = 1;
    snprintf(cfg->account_id, sizeof(cfg->account_id), "123456789012");
    cfg->function_name = xstrdup("function");
    cfg->region = xstrdup("us-east-1");
    cfg->handler = xstrdup("function.handler");
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", s_opts, NULL)) != -1) {
        switch (c) {
        case OPT_FUNCTION:
            set_str(&cfg->function_cmd, optarg);
            break;
        case OPT_EXTENSIONS:
            set_str(&cfg->extensions_dir, optarg);
            break;
        case OPT_ENV:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                snprintf(err, errlen, "--env %s: expected KEY=VALUE", optarg);
                return STASH_EINVAL;
            }
            if (cfg->n_env == CONFIG_MAX_ENV) {
                snprintf(err, errlen, "--env: at most %d", CONFIG_MAX_ENV);
                return STASH_EINVAL;
            }
            cfg->env_kv[cfg->n_env++] = xstrdup(optarg);
            break;
        case OPT_MEMORY:
            if (parse_uint(optarg, 128, 10240, &cfg->memory_mb)) {
                snprintf(err, errlen, "--memory %s: expected 128..10240 (MB)", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_TIMEOUT:
            if (parse_uint(optarg, 1, 900, &cfg->timeout_s)) {
                snprintf(err, errlen, "--timeout %s: expected 1..900 (seconds)", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_MAX_ENVS:
            if (parse_uint(optarg, 1, 1000, &cfg->max_envs)) {
                snprintf(err, errlen, "--max-envs %s: expected 1..1000", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_QUEUE:
            if (parse_uint(optarg, 0, 900000, &cfg->queue_ms)) {
                snprintf(err, errlen, "--queue-ms %s: expected 0..900000", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_LOGS:
            set_str(&cfg->logs_dir, optarg);
            break;
        case OPT_PORT:
            if (parse_uint(optarg, 0, 65535, &cfg->port)) {
                snprintf(err, errlen, "--port %s: expected 0..65535", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_READY:
            set_str(&cfg->ready_file, optarg);
            break;
        case OPT_NAME:
            set_str(&cfg->function_name, optarg);
            break;
        case OPT_REGION:
            set_str(&cfg->region, optarg);
            break;
        case OPT_HANDLER:
            set_str(&cfg->handler, optarg);
            break;
        case OPT_TASK_ROOT:
            set_str(&cfg->task_root, optarg);
            break;
        case OPT_INIT_TIMEOUT:
            if (parse_uint(optarg, 1, 900, &v)) {
                snprintf(err, errlen, "--init-timeout %s: expected 1..900 (seconds)", optarg);
                return STASH_EINVAL;
            }
            cfg->init_timeout_ms = v * 1000;
            break;
        case OPT_SHUTDOWN:
            if (parse_uint(optarg, 0, 60000, &cfg->shutdown_ms)) {
                snprintf(err, errlen, "--shutdown-timeout %s: expected 0..60000 (ms)", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_TELEMETRY:
            if (strcmp(optarg, "on") == 0) {
                cfg->telemetry = 1;
            } else if (strcmp(optarg, "off") == 0) {
                cfg->telemetry = 0;
            } else {
                snprintf(err, errlen, "--telemetry %s: expected on or off", optarg);
                return STASH_EINVAL;
            }
            break;
        case OPT_HELP:
            *help = 1;
            return STASH_OK;
        default:
            snprintf(err, errlen, "unknown or incomplete option: %s",
                     optind > 0 && optind <= argc ? argv[optind - 1] : "?");
            return STASH_EINVAL;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument: %s", argv[optind]);
        return STASH_EINVAL;
    }
    if (!cfg->function_cmd || !*cfg->function_cmd) {
        snprintf(err, errlen, "--function CMD is required");
        return STASH_EINVAL;
    }
    if (!cfg->task_root) {
        char cwd[PATH_MAX];

        cfg->task_root = xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : "/");
    }
    if (cfg->extensions_dir) {
        return list_extensions(cfg, err, errlen);
    }
    return STASH_OK;
}

void sim_config_release(struct sim_config *cfg)
{
    unsigned i;

    for (i = 0; i < cfg->n_ext; i++) {
        free(cfg->ext_paths[i]);
        free(cfg->ext_names[i]);
    }
    for (i = 0; i < cfg->n_env; i++) {
        free(cfg->env_kv[i]);
    }
    free(cfg->function_cmd);
    free(cfg->extensions_dir);
    free(cfg->logs_dir);
    free(cfg->ready_file);
    free(cfg->function_name);
    free(cfg->region);
    free(cfg->handler);
    free(cfg->task_root);
    memset(cfg, 0, sizeof(*cfg));
}
