/* extension/config.c: the table of environment variables and its three readers (load, help, dump).
 * Contract in config.h. */
#include "extension/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/str.h"
#include "telemetry/telemetry.h"

enum config_kind {
    CONFIG_BOOL,      /* int: TRUE/FALSE (also 1/0), case-insensitive */
    CONFIG_UINT,      /* uint64_t: decimal whole number in [min, max] */
    CONFIG_LOG_LEVEL, /* enum log_level */
    CONFIG_STRING,    /* char *: any non-empty text */
    CONFIG_SECRET,    /* char *: like STRING, but never printed */
    CONFIG_URL,       /* char *: http:// or https:// URL */
    CONFIG_CHOICE,    /* char *: one of the values in `unit` ("a|b|c"), case-insensitive, stored
                       * as listed there */
};

struct config_var {
    const char *name;
    enum config_kind kind;
    size_t offset;    /* of the field in struct config */
    const char *dflt; /* default as text (parsed like a value); NULL: unset */
    uint64_t min;     /* CONFIG_UINT only */
    uint64_t max;
    const char *unit; /* CONFIG_UINT: "s", "ms", "items"...; CONFIG_CHOICE: "a|b|c" */
    const char *help;
};

#define F(field) offsetof(struct config, field)

/* Valid values above what stash uses: taken as the cap, with a warning.  AWS documents no maximum
 * for MAX_CONNECTIONS (past a thousand connections to one endpoint nothing is gained) and any
 * whole number for the timeouts (past 2^31-1 ms, 24.8 days, a deadline means nothing). */
static const struct {
    const char *name;
    uint64_t cap;
} s_caps[] = {
    {"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", 1000},
    {"SECRETS_MANAGER_TIMEOUT_MILLIS", 2147483647u},
    {"SSM_PARAMETER_STORE_TIMEOUT_MILLIS", 2147483647u},
};

static uint64_t cap_of(const char *name)
{
    for (size_t i = 0; i < sizeof(s_caps) / sizeof(s_caps[0]); i++) {
        if (strcmp(s_caps[i].name, name) == 0) {
            return s_caps[i].cap;
        }
    }
    return UINT64_MAX;
}

/* AWS's rows first, in the order of its documentation, then the AWS environment, then ours.
 * The TTL ceiling is 3600 s where AWS's extension clamps at 300 s: the agent allows an hour and
 * users asked for longer (anchors §6.2). */
static const struct config_var s_vars[] = {
    {"PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", CONFIG_BOOL, F(cache_enabled), "TRUE", 0, 0,
     NULL, "cache values (FALSE: every request goes upstream)"},
    {"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", CONFIG_UINT, F(cache_size), "1000", 0, 1000,
     "items", "most values kept (0: no caching)"},
    {"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", CONFIG_UINT, F(http_port), "2773", 1, 65535, NULL,
     "port of the local API on 127.0.0.1 and ::1"},
    {"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", CONFIG_UINT, F(max_connections), "3", 1,
     UINT64_MAX, NULL,
     "outbound connections kept per service (Secrets Manager, SSM); above 1000: 1000"},
    {"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", CONFIG_LOG_LEVEL, F(log_level), "info", 0, 0, NULL,
     "debug, info, warn, error or none"},
    {"SECRETS_MANAGER_TTL", CONFIG_UINT, F(sm_ttl_s), "300", 0, 3600, "s",
     "lifetime of a cached secret (0: no caching; AWS's extension caps this at 300)"},
    {"SSM_PARAMETER_STORE_TTL", CONFIG_UINT, F(ssm_ttl_s), "300", 0, 3600, "s",
     "lifetime of a cached parameter (0: no caching)"},
    {"SECRETS_MANAGER_TIMEOUT_MILLIS", CONFIG_UINT, F(sm_timeout_ms), "0", 0, UINT64_MAX, "ms",
     "deadline for one Secrets Manager fetch, retries included (0: none)"},
    {"SSM_PARAMETER_STORE_TIMEOUT_MILLIS", CONFIG_UINT, F(ssm_timeout_ms), "0", 0, UINT64_MAX, "ms",
     "deadline for one SSM fetch, retries included (0: none)"},

    {"AWS_REGION", CONFIG_STRING, F(region), NULL, 0, 0, NULL, "Region of the upstream services"},
    {"AWS_DEFAULT_REGION", CONFIG_STRING, F(default_region), NULL, 0, 0, NULL,
     "used when AWS_REGION is unset"},
    {"AWS_ACCESS_KEY_ID", CONFIG_SECRET, F(access_key_id), NULL, 0, 0, NULL,
     "credentials for signing upstream calls (Lambda sets them)"},
    {"AWS_SECRET_ACCESS_KEY", CONFIG_SECRET, F(secret_access_key), NULL, 0, 0, NULL,
     "credentials for signing upstream calls"},
    {"AWS_SESSION_TOKEN", CONFIG_SECRET, F(session_token), NULL, 0, 0, NULL,
     "session credentials; also the token callers send (X-Aws-Parameters-Secrets-Token)"},
    {"AWS_TOKEN", CONFIG_SECRET, F(aws_token), NULL, 0, 0, NULL,
     "token callers send, if set (preferred over AWS_SESSION_TOKEN, as the agent does); "
     "file:///path reads it from a file"},
    {"AWS_CONTAINER_AUTHORIZATION_TOKEN", CONFIG_SECRET, F(container_token), NULL, 0, 0, NULL,
     "token callers send when neither AWS_TOKEN nor AWS_SESSION_TOKEN is set (SnapStart)"},
    {"AWS_ENDPOINT_URL_SECRETS_MANAGER", CONFIG_URL, F(endpoint_sm), NULL, 0, 0, NULL,
     "Secrets Manager endpoint (default https://secretsmanager.<region>.amazonaws.com)"},
    {"AWS_ENDPOINT_URL_SSM", CONFIG_URL, F(endpoint_ssm), NULL, 0, 0, NULL,
     "SSM endpoint (default https://ssm.<region>.amazonaws.com)"},
    {"AWS_ENDPOINT_URL", CONFIG_URL, F(endpoint), NULL, 0, 0, NULL,
     "endpoint for both services when the service-specific variable is unset"},
    {"AWS_CA_BUNDLE", CONFIG_STRING, F(ca_bundle), NULL, 0, 0, NULL,
     "PEM file of CA certificates for upstream TLS"},
    {"AWS_LAMBDA_RUNTIME_API", CONFIG_STRING, F(lambda_runtime_api), NULL, 0, 0, NULL,
     "set by Lambda; when unset stash runs as a local agent until SIGTERM/SIGINT"},
    {"AWS_LAMBDA_FUNCTION_NAME", CONFIG_STRING, F(lambda_function_name), NULL, 0, 0, NULL,
     "set by Lambda; the FunctionName dimension of the metrics (register's answer wins)"},
    {"AWS_LAMBDA_FUNCTION_VERSION", CONFIG_STRING, F(lambda_function_version), NULL, 0, 0, NULL,
     "set by Lambda; the functionVersion property of the metrics"},
    {"AWS_LAMBDA_LOG_FORMAT", CONFIG_CHOICE, F(lambda_log_format), "Text", 0, 0, "Text|JSON",
     "set by Lambda (the function's log format); JSON: each of stash's log lines is a JSON "
     "object with timestamp, level, message, logger and module (EMF lines are unchanged)"},
    {"AWS_LAMBDA_LOG_LEVEL", CONFIG_CHOICE, F(lambda_log_level), NULL, 0, 0,
     "TRACE|DEBUG|INFO|WARN|ERROR|FATAL",
     "set by Lambda (the function's application log level); stash's level when "
     "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL is unset (TRACE counts as DEBUG, FATAL as ERROR)"},

    {"STASH_CACHE_MAX_BYTES", CONFIG_UINT, F(cache_max_bytes), "16777216", 4096, 4294967296ULL,
     "bytes", "most bytes of keys and values kept; least recently used go first"},
    {"STASH_STALE_MAX_SECONDS", CONFIG_UINT, F(stale_max_s), "900", 0, 86400, "s",
     "how long past expiry a value is still served when the refresh fails (throttled, 5xx, "
     "timeout); 0: never"},
    {"STASH_MAX_ATTEMPTS", CONFIG_UINT, F(max_attempts), "3", 1, 10, NULL,
     "upstream attempts per fetch, retries included (jittered backoff)"},
    {"STASH_MAX_INBOUND_CONNECTIONS", CONFIG_UINT, F(max_inbound), "8192", 1, 1048576, NULL,
     "local API connections open at once; more are answered 429 (at most what the "
     "file-descriptor limit allows)"},
    {"STASH_REFRESH_AHEAD", CONFIG_BOOL, F(refresh_ahead), "TRUE", 0, 0, NULL,
     "a value read in the last 10 % of its TTL is refreshed in the background while the caller "
     "gets it at once, so a key read steadily never waits for upstream; FALSE: refreshed only "
     "once expired"},
    {"STASH_PREFETCH_SECRETS", CONFIG_STRING, F(prefetch_secrets), NULL, 0, 0, NULL,
     "comma-separated secret ids fetched at start with BatchGetSecretValue (20 a call), so the "
     "first request is a hit"},
    {"STASH_PREFETCH_PARAMETERS", CONFIG_STRING, F(prefetch_parameters), NULL, 0, 0, NULL,
     "comma-separated parameter names fetched at start with GetParameters (10 a call, "
     "withDecryption=true)"},
    {"STASH_REGION_ENDPOINTS", CONFIG_STRING, F(region_endpoints), NULL, 0, 0, NULL,
     "region=URL[,region=URL...]: the endpoint of both services in that region, for an ARN in "
     "it or the configured region, when no AWS_ENDPOINT_URL* is set (those win for every "
     "region); unlisted regions use AWS's"},

    /* Metrics (CloudWatch EMF lines on stdout) and the Telemetry API subscription. */
    {"STASH_METRICS_NAMESPACE", CONFIG_STRING, F(metrics_namespace), TELEMETRY_NAMESPACE_DEFAULT, 0,
     0, NULL, "CloudWatch namespace of the metrics (printable ASCII, not starting with AWS/)"},
    {"STASH_METRICS_MODE", CONFIG_CHOICE, F(metrics_mode), "invocation", 0, 0,
     "invocation|aggregate|off",
     "invocation: one EMF line per invocation; aggregate: one per interval (cheaper for busy "
     "functions; the default in agent mode); off: no metrics and no telemetry subscription"},
    {"STASH_METRICS_DIMENSIONS", CONFIG_STRING, F(metrics_dimensions), NULL, 0, 0, NULL,
     "extra dimensions added to FunctionName, as Name=Value,Name=Value (each one multiplies "
     "the metrics CloudWatch bills)"},
    {"STASH_METRICS_PER_KEY", CONFIG_BOOL, F(metrics_per_key), "FALSE", 0, 0, NULL,
     "also write per-secret/parameter lines with the name as a dimension (names only, never "
     "values; each name is billed as its own metrics)"},
    {"STASH_TELEMETRY_SCHEMA", CONFIG_CHOICE, F(telemetry_schema), "2022-12-13", 0, 0,
     "2022-12-13|2025-01-29",
     "Telemetry API schemaVersion to subscribe with (2025-01-29 for Lambda Managed Instances)"},
    {"STASH_AGGREGATE_INTERVAL_SECONDS", CONFIG_UINT, F(aggregate_interval_s), "60", 1, 3600, "s",
     "aggregate mode: seconds covered by one EMF line"},
};

#define NVARS (sizeof(s_vars) / sizeof(s_vars[0]))

/* Names seen in documentation or generated by tools that no version of the extension reads. */
static const struct {
    const char *wrong;
    const char *right;
} s_errata[] = {
    {"PARAMETERS_SECRETS_CACHE_SIZE", "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"},
    {"SSM_PARAMETER_STORE _TTL", "SSM_PARAMETER_STORE_TTL"},
    {"PARAMETERS_AND_SECRETS_EXTENSION_CACHE_ENABLED",
     "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED"},
    {"PARAMETERS_AND_SECRETS_EXTENSION_CACHE_SIZE", "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"},
    {"PARAMETERS_AND_SECRETS_EXTENSION_HTTP_PORT", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"},
    {"PARAMETERS_AND_SECRETS_EXTENSION_MAX_CONNECTIONS",
     "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS"},
    {"PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL", "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL"},
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen) {
        return;
    }
    va_start(ap, fmt);
    /* va_start is just above; the analyzer misses it when it inlines a static variadic
     * function into its callers. */
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void add_warning(struct config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_warning(struct config *cfg, const char *fmt, ...)
{
    va_list ap;

    if (cfg->nwarnings >= CONFIG_MAX_WARNINGS) {
        return;
    }
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): as in set_err */
    (void)vsnprintf(cfg->warnings[cfg->nwarnings], CONFIG_WARNING_MAX, fmt, ap);
    va_end(ap);
    cfg->nwarnings++;
}

/* Strict: digits only, no sign, no spaces, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

static const char *range_text(const struct config_var *v, char *tmp, size_t n)
{
    switch (v->kind) {
    case CONFIG_BOOL:
        return "TRUE or FALSE";
    case CONFIG_LOG_LEVEL:
        return "debug, info, warn, error or none";
    case CONFIG_UINT:
        if (v->max == UINT64_MAX) {
            (void)snprintf(tmp, n, "%llu or more%s%s", (unsigned long long)v->min,
                           v->unit ? " " : "", v->unit ? v->unit : "");
            return tmp;
        }
        (void)snprintf(tmp, n, "%llu-%llu%s%s", (unsigned long long)v->min,
                       (unsigned long long)v->max, v->unit ? " " : "", v->unit ? v->unit : "");
        return tmp;
    case CONFIG_URL:
        return "http://... or https://...";
    case CONFIG_CHOICE:
        return v->unit;
    case CONFIG_STRING:
    case CONFIG_SECRET:
        break;
    }
    return "any text";
}

/* A CONFIG_UINT value: a whole number within [min, max], cut to what stash uses (with a
 * warning). */
static enum stash_err parse_uint_var(const struct config_var *v, const char *val,
                                     struct config *cfg, char *err, size_t errlen)
{
    char *field = (char *)cfg + v->offset;
    char range[64];
    uint64_t u;

    if (!parse_u64(val, &u)) {
        set_err(err, errlen, "%s=\"%.64s\" is not a whole number; valid: %s", v->name, val,
                range_text(v, range, sizeof(range)));
        return STASH_EINVAL;
    }
    if (u < v->min || u > v->max) {
        set_err(err, errlen, "%s=%llu is out of range; valid: %s", v->name, (unsigned long long)u,
                range_text(v, range, sizeof(range)));
        return STASH_EINVAL;
    }
    if (u > cap_of(v->name)) {
        add_warning(cfg, "%s=%llu is above what stash uses; using %llu", v->name,
                    (unsigned long long)u, (unsigned long long)cap_of(v->name));
        u = cap_of(v->name);
    }
    memcpy(field, &u, sizeof(u));
    return STASH_OK;
}

/* A CONFIG_CHOICE value: one of v->unit's "a|b|c", in any case; the listed spelling is kept so
 * later code compares exactly. */
static enum stash_err parse_choice_var(const struct config_var *v, const char *val,
                                       struct config *cfg, char *err, size_t errlen)
{
    char *field = (char *)cfg + v->offset;
    const char *c = v->unit;
    size_t n = strlen(val);

    for (;;) {
        const char *end = strchr(c, '|');
        size_t clen = end ? (size_t)(end - c) : strlen(c);

        if (clen == n && strncasecmp(c, val, n) == 0) {
            char *copy = xstrndup(c, clen);

            memcpy(field, &copy, sizeof(copy));
            return STASH_OK;
        }
        if (!end) {
            break;
        }
        c = end + 1;
    }
    set_err(err, errlen, "%s=\"%.64s\" is not a valid value; valid: %s", v->name, val, v->unit);
    return STASH_EINVAL;
}

/* Parses one value of variable v into cfg.  Secret values never reach err. */
static enum stash_err parse_one(const struct config_var *v, const char *val, struct config *cfg,
                                char *err, size_t errlen)
{
    char *field = (char *)cfg + v->offset;
    char range[64];
    enum log_level level;
    char *copy;
    int b;

    switch (v->kind) {
    case CONFIG_BOOL:
        if (!str_parse_bool(val, &b)) {
            set_err(err, errlen, "%s=\"%.64s\" is not a boolean; valid: TRUE or FALSE", v->name,
                    val);
            return STASH_EINVAL;
        }
        memcpy(field, &b, sizeof(b));
        return STASH_OK;
    case CONFIG_UINT:
        return parse_uint_var(v, val, cfg, err, errlen);
    case CONFIG_LOG_LEVEL:
        if (log_level_parse(val, &level) != STASH_OK) {
            set_err(err, errlen, "%s=\"%.64s\" is not a log level; valid: %s", v->name, val,
                    range_text(v, range, sizeof(range)));
            return STASH_EINVAL;
        }
        memcpy(field, &level, sizeof(level));
        return STASH_OK;
    case CONFIG_URL:
        if (strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0) {
            set_err(err, errlen,
                    "%s=\"%.128s\" is not a URL; valid: http://host[:port] or "
                    "https://host[:port]",
                    v->name, val);
            return STASH_EINVAL;
        }
        break;
    case CONFIG_CHOICE:
        return parse_choice_var(v, val, cfg, err, errlen);
    case CONFIG_STRING:
    case CONFIG_SECRET:
        break;
    }
    copy = xstrdup(val);
    memcpy(field, &copy, sizeof(copy));
    return STASH_OK;
}

/* Reads a token from a file:// source, trimming trailing whitespace, as the agent does. */
static enum stash_err read_token_file(const char *var, const char *path, char **out, size_t *len,
                                      char *err, size_t errlen)
{
    char *data = xmalloc(CONFIG_TOKEN_MAX + 1);
    size_t n = 0;
    ssize_t r;
    int fd;
    enum stash_err rc = STASH_EINVAL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s names file://%.128s, which cannot be opened (errno %d)", var, path,
                errno);
        goto out;
    }
    while (n < CONFIG_TOKEN_MAX + 1) {
        r = read(fd, data + n, CONFIG_TOKEN_MAX + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            set_err(err, errlen, "%s: reading file://%.128s failed (errno %d)", var, path, errno);
            goto out_close;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n > CONFIG_TOKEN_MAX) {
        set_err(err, errlen, "%s: file://%.128s is larger than %d bytes; valid: a token file", var,
                path, CONFIG_TOKEN_MAX);
        goto out_close;
    }
    while (n && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' ' ||
                 data[n - 1] == '\t')) {
        n--;
    }
    if (!n) {
        set_err(err, errlen, "%s: file://%.128s is empty; valid: a file holding the token", var,
                path);
        goto out_close;
    }
    data[n] = '\0';
    *out = xmemdup(data, n);
    *len = n;
    rc = STASH_OK;
out_close:
    close(fd);
out:
    xfree_secret(data, CONFIG_TOKEN_MAX + 1);
    return rc;
}

/* The token callers must send: the agent's order, AWS_TOKEN, AWS_SESSION_TOKEN, then
 * AWS_CONTAINER_AUTHORIZATION_TOKEN.  Under Lambda only AWS_SESSION_TOKEN is set, which is what
 * AWS's extension compares with. */
static enum stash_err resolve_token(struct config *cfg, char *err, size_t errlen)
{
    const struct {
        const char *name;
        const char *value;
    } src[] = {
        {"AWS_TOKEN", cfg->aws_token},
        {"AWS_SESSION_TOKEN", cfg->session_token},
        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", cfg->container_token},
    };

    for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++) {
        if (!src[i].value) {
            continue;
        }
        cfg->api_token_source = src[i].name;
        if (strncmp(src[i].value, "file://", 7) == 0) {
            return read_token_file(src[i].name, src[i].value + 7, &cfg->api_token,
                                   &cfg->api_token_len, err, errlen);
        }
        cfg->api_token_len = strlen(src[i].value);
        cfg->api_token = xmemdup(src[i].value, cfg->api_token_len);
        return STASH_OK;
    }
    set_err(err, errlen,
            "no token for the local API: set AWS_SESSION_TOKEN (Lambda sets it), "
            "AWS_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN (a value or file:///path)");
    return STASH_EINVAL;
}

/* The namespace and dimensions must be ones CloudWatch accepts: checked once, now, so a mistake
 * stops the start with the variable named instead of losing the metrics. */
static enum stash_err check_metrics(struct config *cfg, char *err, size_t errlen)
{
    struct telemetry_config tc = {
        .mode = cfg->metrics_mode,
        .namespace_ = cfg->metrics_namespace,
        .dimensions = cfg->metrics_dimensions,
        .per_key = cfg->metrics_per_key,
        .interval_ms = cfg->aggregate_interval_s * 1000,
    };

    return telemetry_settings_new(&tc, &cfg->metrics, err, errlen);
}

/* Lambda's logging controls: its format always; its level only when this extension's own
 * variable (AWS's name, which existing configurations set) says nothing. */
static void apply_lambda_logging(struct config *cfg, config_getenv_fn get, void *ctx)
{
    const char *own = get(ctx, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL");

    cfg->log_format = LOG_FORMAT_TEXT;
    (void)log_format_parse(cfg->lambda_log_format, &cfg->log_format);
    if ((!own || !*own) && cfg->lambda_log_level) {
        (void)log_level_parse_lambda(cfg->lambda_log_level, &cfg->log_level);
    }
}

/* STASH_REGION_ENDPOINTS: "region=URL[,region=URL...]", region [a-z0-9-]{1,32}, URL http(s). */
static enum stash_err check_region_endpoints(const char *spec, char *err, size_t errlen)
{
    const char *p = spec;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t rn = eq ? (size_t)(eq - p) : 0;
        int ok =
            eq && rn >= 1 && rn <= 32 && strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-") == rn;

        ok = ok && (strncmp(eq + 1, "http://", 7) == 0 || strncmp(eq + 1, "https://", 8) == 0);
        if (!ok) {
            set_err(err, errlen,
                    "STASH_REGION_ENDPOINTS: \"%.*s\" is not region=URL (a region such as "
                    "eu-west-1, an http:// or https:// URL)",
                    (int)(n > 128 ? 128 : n), p);
            return STASH_EINVAL;
        }
        p = end ? end + 1 : NULL;
    }
    return STASH_OK;
}

static enum stash_err check_required(struct config *cfg, char *err, size_t errlen)
{
    cfg->region_used = cfg->region ? cfg->region : cfg->default_region;
    if (!cfg->region_used) {
        set_err(err, errlen, "no Region: set AWS_REGION (Lambda sets it) or AWS_DEFAULT_REGION");
        return STASH_EINVAL;
    }
    if (!cfg->access_key_id || !cfg->secret_access_key) {
        set_err(err, errlen,
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(Lambda sets them; stash reads no instance metadata or ~/.aws files)");
        return STASH_EINVAL;
    }
    cfg->sm_endpoint_used = cfg->endpoint_sm ? cfg->endpoint_sm : cfg->endpoint;
    cfg->ssm_endpoint_used = cfg->endpoint_ssm ? cfg->endpoint_ssm : cfg->endpoint;
    if (check_region_endpoints(cfg->region_endpoints, err, errlen) != STASH_OK) {
        return STASH_EINVAL;
    }
    return resolve_token(cfg, err, errlen);
}

enum stash_err config_load(struct config *cfg, config_getenv_fn get, void *ctx, char *err,
                           size_t errlen)
{
    enum stash_err rc;

    memset(cfg, 0, sizeof(*cfg));
    set_err(err, errlen, "%s", "");
    for (size_t i = 0; i < NVARS; i++) {
        const struct config_var *v = &s_vars[i];
        const char *val = get(ctx, v->name);

        if (!val || !*val) {
            if (!v->dflt) {
                continue;
            }
            val = v->dflt;
        }
        rc = parse_one(v, val, cfg, err, errlen);
        if (rc != STASH_OK) {
            goto fail;
        }
    }
    for (size_t i = 0; i < sizeof(s_errata) / sizeof(s_errata[0]); i++) {
        const char *val = get(ctx, s_errata[i].wrong);

        if (val) {
            add_warning(cfg, "%s is not read (a known documentation mistake); did you mean %s?",
                        s_errata[i].wrong, s_errata[i].right);
        }
    }
    apply_lambda_logging(cfg, get, ctx);
    if (!cfg->lambda_runtime_api &&
        !(get(ctx, "STASH_METRICS_MODE") && *get(ctx, "STASH_METRICS_MODE"))) {
        /* Agent mode has no invocations: one line per interval is its natural default. */
        free(cfg->metrics_mode);
        cfg->metrics_mode = xstrdup("aggregate");
    }
    rc = check_metrics(cfg, err, errlen);
    if (rc != STASH_OK) {
        goto fail;
    }
    rc = check_required(cfg, err, errlen);
    if (rc != STASH_OK) {
        goto fail;
    }
    return STASH_OK;
fail:
    config_release(cfg);
    return rc;
}

void config_release(struct config *cfg)
{
    for (size_t i = 0; i < NVARS; i++) {
        const struct config_var *v = &s_vars[i];
        char *p;

        if (v->kind != CONFIG_STRING && v->kind != CONFIG_SECRET && v->kind != CONFIG_URL &&
            v->kind != CONFIG_CHOICE) {
            continue;
        }
        memcpy(&p, (char *)cfg + v->offset, sizeof(p));
        if (p) {
            xfree_secret(p, strlen(p));
        }
    }
    if (cfg->api_token) {
        xfree_secret(cfg->api_token, cfg->api_token_len);
    }
    telemetry_settings_free(cfg->metrics);
    memset(cfg, 0, sizeof(*cfg));
}

const char *config_getenv_process(void *ctx, const char *name)
{
    (void)ctx;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): called from main before any thread starts */
    return getenv(name);
}

void config_print_help(FILE *out)
{
    char range[64];

    (void)fprintf(
        out,
        "stash %s: a local cache for Secrets Manager secrets and Parameter Store parameters\n"
        "(a drop-in for AWS's Parameters and Secrets Lambda Extension).\n\n"
        "usage: stash [--help | --version]\n\n"
        "Configuration is read from the environment once at start; an invalid value stops\n"
        "stash with exit status 2 and a message naming the variable.\n\n",
        STASH_VERSION);
    for (size_t i = 0; i < NVARS; i++) {
        const struct config_var *v = &s_vars[i];

        (void)fprintf(out, "  %s\n      %s\n      default: %s; valid: %s\n", v->name, v->help,
                      v->dflt ? v->dflt : "unset", range_text(v, range, sizeof(range)));
    }
}

/* One Markdown table cell: a '|' inside would end the cell early. */
static void md_cell(FILE *out, const char *s)
{
    (void)fputs(" ", out);
    for (; *s; s++) {
        if (*s == '|') {
            (void)fputc('\\', out);
        }
        (void)fputc(*s, out);
    }
    (void)fputs(" |", out);
}

void config_print_markdown(FILE *out)
{
    char range[64];

    (void)fputs("| Variable | Default | Valid | What |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < NVARS; i++) {
        const struct config_var *v = &s_vars[i];

        (void)fprintf(out, "| `%s` |", v->name);
        md_cell(out, v->dflt ? v->dflt : "unset");
        md_cell(out, range_text(v, range, sizeof(range)));
        md_cell(out, v->help);
        (void)fputc('\n', out);
    }
}

void config_log_effective(const struct config *cfg)
{
    if (g_log_level > LOG_LEVEL_DEBUG) {
        return;
    }
    for (size_t i = 0; i < NVARS; i++) {
        const struct config_var *v = &s_vars[i];
        const char *field = (const char *)cfg + v->offset;
        uint64_t u;
        int b;
        enum log_level level;
        const char *s;

        switch (v->kind) {
        case CONFIG_BOOL:
            memcpy(&b, field, sizeof(b));
            LOG_DEBUG("config", "%s=%s", v->name, b ? "TRUE" : "FALSE");
            break;
        case CONFIG_UINT:
            memcpy(&u, field, sizeof(u));
            LOG_DEBUG("config", "%s=%llu", v->name, (unsigned long long)u);
            break;
        case CONFIG_LOG_LEVEL:
            memcpy(&level, field, sizeof(level));
            LOG_DEBUG("config", "%s=%s", v->name, log_level_name(level));
            break;
        case CONFIG_SECRET:
            memcpy(&s, field, sizeof(s));
            LOG_DEBUG("config", "%s is %s", v->name, s ? "set (value not logged)" : "unset");
            break;
        case CONFIG_STRING:
        case CONFIG_URL:
        case CONFIG_CHOICE:
            memcpy(&s, field, sizeof(s));
            LOG_DEBUG("config", "%s=%s", v->name, s ? s : "(unset)");
            break;
        }
    }
    LOG_DEBUG("config", "local API token from %s", cfg->api_token_source);
}
