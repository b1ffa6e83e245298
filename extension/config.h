/* extension/config.h: the environment, read once at start into a struct config.
 *
 * Every variable stash reads is one row of a table in config.c: its name, its kind, its default,
 * its range and a line of help.  The same table drives parsing, `stash --help` and the debug dump
 * of the effective configuration, so they cannot disagree.  AWS's Parameters and Secrets Lambda
 * Extension names, defaults and ranges come first (anchors §1.4); ours start with STASH_.
 * To add a variable: add a field to struct config and a row to s_vars (config.c).
 *
 * config_load() is a pure function of the getenv-like callback, except that a token given as
 * file://path is read from that file.  An empty variable counts as unset (as AWS's extension
 * treats it).  Any invalid value fails the load with STASH_EINVAL and an error message naming
 * the variable, what is wrong with the value and the valid range; no value is silently replaced
 * by a default.  Names that look like a known documentation mistake (PARAMETERS_AND_SECRETS_...,
 * PARAMETERS_SECRETS_CACHE_SIZE) are not read but produce a warning in cfg->warnings.
 *
 * Ownership: the struct config owns its strings; config_release() wipes and frees them (tokens
 * and keys are secrets).  Error and warning texts never contain a secret or token value.
 * Thread-safety: config_load is reentrant; the struct is read-only after main hands it out.
 */
#ifndef STASH_EXTENSION_CONFIG_H
#define STASH_EXTENSION_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/log.h"

struct telemetry_settings; /* telemetry/telemetry.h */

#define STASH_VERSION       "0.1.0"

#define CONFIG_MAX_WARNINGS 8
#define CONFIG_WARNING_MAX  200
#define CONFIG_ERROR_MAX    256
#define CONFIG_TOKEN_MAX    8192 /* ceiling on a token read from a file:// source */

/* Returns the variable's value or NULL if unset.  The string must stay valid during the load. */
typedef const char *(*config_getenv_fn)(void *ctx, const char *name);

struct config {
    /* AWS's Parameters and Secrets extension */
    int cache_enabled;
    uint64_t cache_size;      /* items, 0: no caching */
    uint64_t http_port;       /* 1..65535 */
    uint64_t max_connections; /* outbound, per service */
    enum log_level log_level;
    uint64_t sm_ttl_s; /* 0: no caching of secrets */
    uint64_t ssm_ttl_s;
    uint64_t sm_timeout_ms; /* 0: no timeout */
    uint64_t ssm_timeout_ms;

    /* The standard AWS environment */
    char *region;
    char *default_region;
    char *access_key_id;     /* secret */
    char *secret_access_key; /* secret */
    char *session_token;     /* secret */
    char *aws_token;         /* secret: the agent's AWS_TOKEN */
    char *container_token;   /* secret: AWS_CONTAINER_AUTHORIZATION_TOKEN */
    char *endpoint_sm;
    char *endpoint_ssm;
    char *endpoint;
    char *region_endpoints; /* STASH_REGION_ENDPOINTS, checked: region=URL[,region=URL...] */
    char *ca_bundle;
    char *lambda_runtime_api;      /* set by Lambda: selects Lambda mode */
    char *lambda_function_name;    /* set by Lambda: FunctionName dimension if register has none */
    char *lambda_function_version; /* set by Lambda: functionVersion property, likewise */
    char *lambda_log_format;       /* set by Lambda: "Text" or "JSON" */
    char *lambda_log_level;        /* set by Lambda: TRACE..FATAL, or NULL */

    /* stash's own */
    uint64_t cache_max_bytes;
    uint64_t stale_max_s;
    uint64_t max_attempts;
    uint64_t max_inbound;
    int refresh_ahead;         /* hits late in the TTL refresh in the background */
    char *prefetch_secrets;    /* comma-separated secret ids, or NULL */
    char *prefetch_parameters; /* comma-separated parameter names, or NULL */

    /* Metrics and telemetry (Lambda mode) */
    char *metrics_namespace;       /* EMF namespace, validated like CloudWatch's */
    char *metrics_mode;            /* "invocation", "aggregate" or "off" */
    char *metrics_dimensions;      /* "Name=Value,..." extra dimensions, or NULL */
    int metrics_per_key;           /* secret / parameter names as a dimension (opt-in) */
    char *telemetry_schema;        /* Telemetry API schemaVersion */
    uint64_t aggregate_interval_s; /* aggregate mode: seconds per line */

    /* Derived by config_load (pointers into the fields above or static strings) */
    const char *region_used;       /* AWS_REGION, else AWS_DEFAULT_REGION */
    const char *sm_endpoint_used;  /* NULL: the regional AWS endpoint */
    const char *ssm_endpoint_used; /* NULL: the regional AWS endpoint */
    char *api_token;               /* owned, secret: what callers must send */
    size_t api_token_len;
    const char *api_token_source;       /* name of the variable it came from */
    struct telemetry_settings *metrics; /* owned: the STASH_METRICS_* above, checked */
    enum log_format log_format;         /* from AWS_LAMBDA_LOG_FORMAT */

    char warnings[CONFIG_MAX_WARNINGS][CONFIG_WARNING_MAX];
    unsigned nwarnings;
};

/* Parses the environment into *cfg (reset on entry).  On failure returns STASH_EINVAL, writes a
 * one-line message into err (errlen bytes, NUL-terminated) and leaves *cfg released. */
enum stash_err config_load(struct config *cfg, config_getenv_fn get, void *ctx, char *err,
                           size_t errlen);
void config_release(struct config *cfg);

/* A config_getenv_fn over the process environment (main only: getenv is not thread-safe). */
const char *config_getenv_process(void *ctx, const char *name);

/* `stash --help`: usage and every variable with its default and range. */
void config_print_help(FILE *out);

/* The same as a Markdown table (`stash --help-markdown`), kept in README.md and checked there. */
void config_print_markdown(FILE *out);

/* Logs the effective configuration at debug level: names and values, secrets only as set/unset. */
void config_log_effective(const struct config *cfg);

#endif
