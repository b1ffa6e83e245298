/* sim/lambda_sim/config.c: the command line (see config.h). */
#include "sim/lambda_sim/config.h"

#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/util.h"

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
        return sim_fail(err, errlen, "--extensions %s: cannot open directory", cfg->extensions_dir);
    }
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): d is this function's own, read before any thread */
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;

        if (de->d_name[0] == '.') {
            continue;
        }
        /* A path too long to open is not an extension Lambda could run either. */
        if (sim_fmt(path, sizeof(path), "%s/%s", cfg->extensions_dir, de->d_name) != 0 ||
            stat(path, &st) != 0 || S_ISDIR(st.st_mode) || access(path, X_OK) != 0) {
            continue;
        }
        if (n == 256) {
            break;
        }
        names[n++] = xstrdup(de->d_name);
    }
    (void)closedir(d); /* read only: nothing is lost if closing fails */
    if (n > CONFIG_MAX_EXT) {
        (void)sim_fail(err, errlen, "--extensions %s: %u extensions; Lambda allows %d",
                       cfg->extensions_dir, n, CONFIG_MAX_EXT);
        goto out;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (i = 0; i < n; i++) {
        char path[PATH_MAX];

        (void)sim_fmt(path, sizeof(path), "%s/%s", cfg->extensions_dir, names[i]); /* fit above */
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

static void set_defaults(struct sim_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory_mb = 128;
    cfg->timeout_s = 3;
    cfg->max_envs = 10;
    cfg->port = 9000;
    cfg->init_timeout_ms = 10000;
    cfg->shutdown_ms = 2000;
    cfg->telemetry = 1;
    (void)str_copy_trunc(cfg->account_id, sizeof(cfg->account_id), "123456789012");
    cfg->function_name = xstrdup("function");
    cfg->region = xstrdup("us-east-1");
    cfg->handler = xstrdup("function.handler");
}

/* The options that take a string, and the field each sets. */
static const struct {
    int id;
    size_t offset;
} s_strings[] = {
    {OPT_FUNCTION, offsetof(struct sim_config, function_cmd)},
    {OPT_EXTENSIONS, offsetof(struct sim_config, extensions_dir)},
    {OPT_LOGS, offsetof(struct sim_config, logs_dir)},
    {OPT_READY, offsetof(struct sim_config, ready_file)},
    {OPT_NAME, offsetof(struct sim_config, function_name)},
    {OPT_REGION, offsetof(struct sim_config, region)},
    {OPT_HANDLER, offsetof(struct sim_config, handler)},
    {OPT_TASK_ROOT, offsetof(struct sim_config, task_root)},
};

/* The options that take a number in a range, and the field each sets. */
static const struct {
    int id;
    const char *flag;
    unsigned lo, hi;
    const char *unit;
    size_t offset;
} s_numbers[] = {
    {OPT_MEMORY, "--memory", 128, 10240, " (MB)", offsetof(struct sim_config, memory_mb)},
    {OPT_TIMEOUT, "--timeout", 1, 900, " (seconds)", offsetof(struct sim_config, timeout_s)},
    {OPT_MAX_ENVS, "--max-envs", 1, 1000, "", offsetof(struct sim_config, max_envs)},
    {OPT_QUEUE, "--queue-ms", 0, 900000, "", offsetof(struct sim_config, queue_ms)},
    {OPT_PORT, "--port", 0, 65535, "", offsetof(struct sim_config, port)},
    /* seconds on the command line, kept in ms (see parse_option) */
    {OPT_INIT_TIMEOUT, "--init-timeout", 1, 900, " (seconds)",
     offsetof(struct sim_config, init_timeout_ms)},
    {OPT_SHUTDOWN, "--shutdown-timeout", 0, 60000, " (ms)",
     offsetof(struct sim_config, shutdown_ms)},
};

/* --env KEY=VALUE, at most CONFIG_MAX_ENV of them. */
static enum stash_err env_option(const char *arg, struct sim_config *cfg, char *err, size_t errlen)
{
    if (!strchr(arg, '=') || arg[0] == '=') {
        return sim_fail(err, errlen, "--env %s: expected KEY=VALUE", arg);
    }
    if (cfg->n_env == CONFIG_MAX_ENV) {
        return sim_fail(err, errlen, "--env: at most %d", CONFIG_MAX_ENV);
    }
    cfg->env_kv[cfg->n_env++] = xstrdup(arg);
    return STASH_OK;
}

/* One option other than --help; STASH_EINVAL with the reason in err. */
static enum stash_err parse_option(int c, const char *arg, struct sim_config *cfg, char *err,
                                   size_t errlen)
{
    for (size_t i = 0; i < sizeof(s_strings) / sizeof(s_strings[0]); i++) {
        if (s_strings[i].id == c) {
            set_str((char **)((char *)cfg + s_strings[i].offset), arg);
            return STASH_OK;
        }
    }
    for (size_t i = 0; i < sizeof(s_numbers) / sizeof(s_numbers[0]); i++) {
        unsigned *slot = (unsigned *)((char *)cfg + s_numbers[i].offset);

        if (s_numbers[i].id != c) {
            continue;
        }
        if (parse_uint(arg, s_numbers[i].lo, s_numbers[i].hi, slot)) {
            return sim_fail(err, errlen, "%s %s: expected %u..%u%s", s_numbers[i].flag, arg,
                            s_numbers[i].lo, s_numbers[i].hi, s_numbers[i].unit);
        }
        if (c == OPT_INIT_TIMEOUT) {
            *slot *= 1000;
        }
        return STASH_OK;
    }
    if (c == OPT_ENV) {
        return env_option(arg, cfg, err, errlen);
    }
    if (c == OPT_TELEMETRY && (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
        cfg->telemetry = strcmp(arg, "on") == 0;
        return STASH_OK;
    }
    if (c == OPT_TELEMETRY) {
        return sim_fail(err, errlen, "--telemetry %s: expected on or off", arg);
    }
    return sim_fail(err, errlen, "unknown option");
}

enum stash_err sim_config_parse(int argc, char **argv, struct sim_config *cfg, int *help, char *err,
                                size_t errlen)
{
    int c;
    enum stash_err rc;

    set_defaults(cfg);
    *help = 0;
    optind = 1;
    opterr = 0;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is read before any thread starts */
    while ((c = getopt_long(argc, argv, "", s_opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            *help = 1;
            return STASH_OK;
        }
        if (c == '?' || c == ':' || !optarg) {
            return sim_fail(err, errlen, "unknown or incomplete option: %s",
                            optind > 0 && optind <= argc ? argv[optind - 1] : "?");
        }
        rc = parse_option(c, optarg, cfg, err, errlen);
        if (rc != STASH_OK) {
            return rc;
        }
    }
    if (optind < argc) {
        return sim_fail(err, errlen, "unexpected argument: %s", argv[optind]);
    }
    if (!cfg->function_cmd || !*cfg->function_cmd) {
        return sim_fail(err, errlen, "--function CMD is required");
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
