/* Unit tests for extension/config: every variable's default, a valid value, and invalid values
 * whose error names the variable and its range.  The environment is a table fed through the
 * getenv-like callback; nothing reads the process environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "extension/config.h"

#define MAX_ENV 48

struct env {
    const char *name[MAX_ENV];
    const char *value[MAX_ENV];
    int n;
};

static const char *env_get(void *ctx, const char *name)
{
    struct env *e = ctx;

    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->name[i], name) == 0) {
            return e->value[i];
        }
    }
    return NULL;
}

static void env_set(struct env *e, const char *name, const char *value)
{
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->name[i], name) == 0) {
            e->value[i] = value;
            return;
        }
    }
    assert_true(e->n < MAX_ENV);
    e->name[e->n] = name;
    e->value[e->n] = value;
    e->n++;
}

/* The minimum a start needs: Region, credentials and a token. */
static void env_base(struct env *e)
{
    memset(e, 0, sizeof(*e));
    env_set(e, "AWS_REGION", "eu-west-1");
    env_set(e, "AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    env_set(e, "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    env_set(e, "AWS_SESSION_TOKEN", "session-token-value");
}

static void load_ok(struct env *e, struct config *cfg)
{
    char err[CONFIG_ERROR_MAX];
    enum stash_err rc = config_load(cfg, env_get, e, err, sizeof(err));

    if (rc != STASH_OK) {
        fail_msg("config_load failed: %s", err);
    }
}

/* Loads and expects a failure whose message contains every needle given. */
static void load_fails(struct env *e, const char *needle1, const char *needle2)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];

    assert_int_equal(config_load(&cfg, env_get, e, err, sizeof(err)), STASH_EINVAL);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2))) {
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, needle1, needle2 ? needle2 : "");
    }
    /* Released on failure: nothing to free, nothing left set. */
    assert_null(cfg.api_token);
    assert_null(cfg.region);
}

static void test_defaults(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    load_ok(&e, &cfg);
    assert_int_equal(cfg.cache_enabled, 1);
    assert_int_equal(cfg.cache_size, 1000);
    assert_int_equal(cfg.http_port, 2773);
    assert_int_equal(cfg.max_connections, 3);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.sm_ttl_s, 300);
    assert_int_equal(cfg.ssm_ttl_s, 300);
    assert_int_equal(cfg.sm_timeout_ms, 0);
    assert_int_equal(cfg.ssm_timeout_ms, 0);
    assert_int_equal(cfg.cache_max_bytes, 16777216);
    assert_int_equal(cfg.stale_max_s, 900);
    assert_int_equal(cfg.max_attempts, 3);
    assert_int_equal(cfg.max_inbound, 8192);
    assert_int_equal(cfg.refresh_ahead, 1);
    assert_null(cfg.prefetch_secrets);
    assert_null(cfg.prefetch_parameters);
    assert_null(cfg.sm_endpoint_used);
    assert_null(cfg.ssm_endpoint_used);
    assert_null(cfg.ca_bundle);
    assert_null(cfg.lambda_runtime_api);
    assert_string_equal(cfg.region_used, "eu-west-1");
    assert_string_equal(cfg.api_token, "session-token-value");
    assert_int_equal(cfg.api_token_len, strlen("session-token-value"));
    assert_string_equal(cfg.api_token_source, "AWS_SESSION_TOKEN");
    assert_int_equal(cfg.nwarnings, 0);
    config_release(&cfg);
}

static void test_valid_values(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false");
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "0");
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "65535");
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "16");
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "DEBUG");
    env_set(&e, "SECRETS_MANAGER_TTL", "3600");
    env_set(&e, "SSM_PARAMETER_STORE_TTL", "0");
    env_set(&e, "SECRETS_MANAGER_TIMEOUT_MILLIS", "1500");
    env_set(&e, "SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "250");
    env_set(&e, "AWS_ENDPOINT_URL", "http://127.0.0.1:9000");
    env_set(&e, "AWS_ENDPOINT_URL_SSM", "https://ssm.example");
    env_set(&e, "AWS_CA_BUNDLE", "/etc/ssl/ca.pem");
    env_set(&e, "AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
    env_set(&e, "STASH_CACHE_MAX_BYTES", "4096");
    env_set(&e, "STASH_STALE_MAX_SECONDS", "0");
    env_set(&e, "STASH_MAX_ATTEMPTS", "10");
    env_set(&e, "STASH_MAX_INBOUND_CONNECTIONS", "1");
    env_set(&e, "STASH_PREFETCH_SECRETS", "a,b");
    env_set(&e, "STASH_PREFETCH_PARAMETERS", "/p/1");
    env_set(&e, "STASH_REGION_ENDPOINTS", "eu-west-1=http://127.0.0.1:1,cn-north-1=https://x/y");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.cache_enabled, 0);
    assert_int_equal(cfg.cache_size, 0);
    assert_int_equal(cfg.http_port, 65535);
    assert_int_equal(cfg.max_connections, 16);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.sm_ttl_s, 3600);
    assert_int_equal(cfg.ssm_ttl_s, 0);
    assert_int_equal(cfg.sm_timeout_ms, 1500);
    assert_int_equal(cfg.ssm_timeout_ms, 250);
    assert_string_equal(cfg.sm_endpoint_used, "http://127.0.0.1:9000"); /* general fallback */
    assert_string_equal(cfg.ssm_endpoint_used, "https://ssm.example");  /* specific wins */
    assert_string_equal(cfg.ca_bundle, "/etc/ssl/ca.pem");
    assert_string_equal(cfg.lambda_runtime_api, "127.0.0.1:9001");
    assert_int_equal(cfg.cache_max_bytes, 4096);
    assert_int_equal(cfg.stale_max_s, 0);
    assert_int_equal(cfg.max_attempts, 10);
    assert_int_equal(cfg.max_inbound, 1);
    assert_string_equal(cfg.prefetch_secrets, "a,b");
    assert_string_equal(cfg.prefetch_parameters, "/p/1");
    assert_string_equal(cfg.region_endpoints,
                        "eu-west-1=http://127.0.0.1:1,cn-north-1=https://x/y");
    config_release(&cfg);
}

static void test_bool_spellings(void **state)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {{"TRUE", 1},  {"true", 1},  {"True", 1},  {"1", 1},
                 {"FALSE", 0}, {"false", 0}, {"fAlSe", 0}, {"0", 0}};
    struct env e;
    struct config cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_base(&e);
        env_set(&e, "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", cases[i].text);
        env_set(&e, "STASH_REFRESH_AHEAD", cases[i].text);
        load_ok(&e, &cfg);
        assert_int_equal(cfg.cache_enabled, cases[i].want);
        assert_int_equal(cfg.refresh_ahead, cases[i].want);
        config_release(&cfg);
    }
    env_base(&e);
    env_set(&e, "STASH_REFRESH_AHEAD", "off");
    load_fails(&e, "STASH_REFRESH_AHEAD", "TRUE or FALSE");
}

static void test_log_levels(void **state)
{
    static const struct {
        const char *text;
        enum log_level want;
    } cases[] = {{"debug", LOG_LEVEL_DEBUG},
                 {"info", LOG_LEVEL_INFO},
                 {"WARN", LOG_LEVEL_WARN},
                 {"error", LOG_LEVEL_ERROR},
                 {"none", LOG_LEVEL_NONE}};
    struct env e;
    struct config cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_base(&e);
        env_set(&e, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", cases[i].text);
        load_ok(&e, &cfg);
        assert_int_equal(cfg.log_level, cases[i].want);
        config_release(&cfg);
    }
}

/* Lambda's logging controls: AWS_LAMBDA_LOG_FORMAT picks the format; AWS_LAMBDA_LOG_LEVEL is
 * the level only while PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL is unset (or empty). */
static void test_lambda_log_controls(void **state)
{
    static const struct {
        const char *lambda;
        const char *own;
        enum log_level want;
    } cases[] = {
        {NULL, NULL, LOG_LEVEL_INFO},        {"DEBUG", NULL, LOG_LEVEL_DEBUG},
        {"TRACE", NULL, LOG_LEVEL_DEBUG},    {"warn", NULL, LOG_LEVEL_WARN},
        {"ERROR", NULL, LOG_LEVEL_ERROR},    {"FATAL", NULL, LOG_LEVEL_ERROR},
        {"DEBUG", "error", LOG_LEVEL_ERROR}, {"ERROR", "debug", LOG_LEVEL_DEBUG},
        {"FATAL", "none", LOG_LEVEL_NONE},   {"DEBUG", "", LOG_LEVEL_DEBUG},
        {"TRACE", "info", LOG_LEVEL_INFO},
    };
    struct env e;
    struct config cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_base(&e);
        if (cases[i].lambda) {
            env_set(&e, "AWS_LAMBDA_LOG_LEVEL", cases[i].lambda);
        }
        if (cases[i].own) {
            env_set(&e, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", cases[i].own);
        }
        load_ok(&e, &cfg);
        if (cfg.log_level != cases[i].want) {
            fail_msg("AWS_LAMBDA_LOG_LEVEL=%s PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=%s: level %d, "
                     "want %d",
                     cases[i].lambda ? cases[i].lambda : "(unset)",
                     cases[i].own ? cases[i].own : "(unset)", (int)cfg.log_level,
                     (int)cases[i].want);
        }
        assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
        config_release(&cfg);
    }
    env_base(&e);
    env_set(&e, "AWS_LAMBDA_LOG_FORMAT", "JSON");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    config_release(&cfg);
    env_base(&e);
    env_set(&e, "AWS_LAMBDA_LOG_FORMAT", "Text");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    config_release(&cfg);
    env_base(&e);
    env_set(&e, "AWS_LAMBDA_LOG_FORMAT", "xml");
    load_fails(&e, "AWS_LAMBDA_LOG_FORMAT", "Text|JSON");
    env_base(&e);
    env_set(&e, "AWS_LAMBDA_LOG_LEVEL", "verbose");
    load_fails(&e, "AWS_LAMBDA_LOG_LEVEL", "TRACE|DEBUG|INFO|WARN|ERROR|FATAL");
}

/* In JSON, the debug dump of the configuration is one JSON object per line and still shows no
 * secret: credentials and tokens only as set/unset. */
static void test_json_log_has_no_secret(void **state)
{
    char path[] = "/tmp/stash-test-config-XXXXXX";
    char buf[65536];
    struct env e;
    struct config cfg;
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    ssize_t n;
    int lines = 0;

    (void)state;
    assert_true(fd >= 0 && saved >= 0);
    env_base(&e);
    env_set(&e, "AWS_TOKEN", "agent-token-value");
    env_set(&e, "AWS_LAMBDA_LOG_FORMAT", "JSON");
    env_set(&e, "AWS_LAMBDA_LOG_LEVEL", "DEBUG");
    load_ok(&e, &cfg);
    g_log_level = cfg.log_level;
    g_log_format = cfg.log_format;
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    config_log_effective(&cfg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    g_log_level = LOG_LEVEL_INFO;
    g_log_format = LOG_FORMAT_TEXT;
    close(saved);
    config_release(&cfg);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0 && (size_t)n < sizeof(buf) - 1);
    buf[n] = '\0';
    assert_null(strstr(buf, "wJalrXUtnFEMI"));
    assert_null(strstr(buf, "session-token-value"));
    assert_null(strstr(buf, "agent-token-value"));
    assert_null(strstr(buf, "AKIDEXAMPLE"));
    assert_non_null(strstr(buf, "AWS_SECRET_ACCESS_KEY is set (value not logged)"));
    for (char *line = buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
        const cJSON *level = cJSON_GetObjectItemCaseSensitive(o, "level");

        if (!o || !cJSON_IsString(level) || strcmp(level->valuestring, "DEBUG") != 0) {
            fail_msg("not a DEBUG JSON record: %.*s", (int)(nl - line), line);
        }
        cJSON_Delete(o);
        lines++;
    }
    assert_true(lines > 30);
}

/* Every bounded variable: below/above range and not-a-number each fail naming the variable. */
static void test_invalid_numbers(void **state)
{
    static const struct {
        const char *name;
        const char *bad;
        const char *range;
    } cases[] = {
        {"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1001", "0-1000"},
        {"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "-1", "0-1000"},
        {"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0", "1-65535"},
        {"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "65536", "1-65535"},
        {"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "27 73", "1-65535"},
        {"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "0", "1 or more"},
        {"SECRETS_MANAGER_TTL", "3601", "0-3600 s"},
        {"SECRETS_MANAGER_TTL", "5m", "0-3600 s"},
        {"SSM_PARAMETER_STORE_TTL", "99999999999999999999999", "0-3600 s"},
        {"SECRETS_MANAGER_TIMEOUT_MILLIS", "1.5", "0 or more ms"},
        {"SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "+5", "0 or more ms"},
        {"SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "-1", "0 or more ms"},
        {"SECRETS_MANAGER_TIMEOUT_MILLIS", "18446744073709551616", "0 or more ms"},
        {"STASH_CACHE_MAX_BYTES", "100", "4096-4294967296 bytes"},
        {"STASH_STALE_MAX_SECONDS", "86401", "0-86400 s"},
        {"STASH_MAX_ATTEMPTS", "0", "1-10"},
        {"STASH_MAX_INBOUND_CONNECTIONS", "1048577", "1-1048576"},
    };
    struct env e;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_base(&e);
        env_set(&e, cases[i].name, cases[i].bad);
        load_fails(&e, cases[i].name, cases[i].range);
    }
}

/* AWS's extension documents no maximum for MAX_CONNECTIONS and any whole number for the
 * timeouts: such values start stash; one above what stash uses is capped with a warning. */
static void test_unbounded_values(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "2000");
    env_set(&e, "SECRETS_MANAGER_TIMEOUT_MILLIS", "86400000");
    env_set(&e, "SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "18446744073709551615");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.max_connections, 1000);
    assert_int_equal(cfg.sm_timeout_ms, 86400000);
    assert_int_equal(cfg.ssm_timeout_ms, 2147483647);
    assert_int_equal(cfg.nwarnings, 2);
    assert_non_null(strstr(cfg.warnings[0], "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS=2000"));
    assert_non_null(strstr(cfg.warnings[0], "1000"));
    assert_non_null(strstr(cfg.warnings[1], "SSM_PARAMETER_STORE_TIMEOUT_MILLIS"));
    config_release(&cfg);

    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "1000");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.max_connections, 1000);
    assert_int_equal(cfg.nwarnings, 0);
    config_release(&cfg);
}

static void test_invalid_other(void **state)
{
    struct env e;

    (void)state;
    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "yes");
    load_fails(&e, "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "TRUE or FALSE");

    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "verbose");
    load_fails(&e, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug, info, warn, error or none");

    env_base(&e);
    env_set(&e, "AWS_ENDPOINT_URL_SECRETS_MANAGER", "localhost:4566");
    load_fails(&e, "AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://");

    env_base(&e);
    env_set(&e, "AWS_ENDPOINT_URL_SSM", "ftp://x");
    load_fails(&e, "AWS_ENDPOINT_URL_SSM", NULL);

    env_base(&e);
    env_set(&e, "AWS_ENDPOINT_URL", "x");
    load_fails(&e, "AWS_ENDPOINT_URL", NULL);

    /* Each entry region=URL: a region name, then an http(s) URL; the bad entry is named. */
    static const char *const bad_maps[] = {
        "eu-west-1",
        "=http://x",
        "EU-WEST-1=http://x",
        "eu-west-1=ftp://x",
        "eu-west-1=http://x,,us-east-1=http://y",
        "eu-west-1=http://x,us east=http://y",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=http://x",
    };
    for (size_t i = 0; i < sizeof(bad_maps) / sizeof(bad_maps[0]); i++) {
        env_base(&e);
        env_set(&e, "STASH_REGION_ENDPOINTS", bad_maps[i]);
        load_fails(&e, "STASH_REGION_ENDPOINTS", "region=URL");
    }
}

/* An empty variable is unset, as in AWS's extension: the default applies. */
static void test_empty_is_unset(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    env_set(&e, "SECRETS_MANAGER_TTL", "");
    env_set(&e, "AWS_REGION", "");
    env_set(&e, "AWS_DEFAULT_REGION", "us-east-2");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.sm_ttl_s, 300);
    assert_string_equal(cfg.region_used, "us-east-2");
    config_release(&cfg);
}

static void test_region(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    env_set(&e, "AWS_DEFAULT_REGION", "us-east-2");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.region_used, "eu-west-1"); /* AWS_REGION first */
    config_release(&cfg);

    env_base(&e);
    env_set(&e, "AWS_REGION", NULL);
    load_fails(&e, "AWS_REGION", "AWS_DEFAULT_REGION");
}

static void test_credentials_required(void **state)
{
    struct env e;

    (void)state;
    env_base(&e);
    env_set(&e, "AWS_ACCESS_KEY_ID", NULL);
    load_fails(&e, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY");
    env_base(&e);
    env_set(&e, "AWS_SECRET_ACCESS_KEY", NULL);
    load_fails(&e, "AWS_SECRET_ACCESS_KEY", NULL);
}

static void test_token_sources(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    /* The agent's order: AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN. */
    env_base(&e);
    env_set(&e, "AWS_TOKEN", "agent-token");
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.api_token, "agent-token");
    assert_string_equal(cfg.api_token_source, "AWS_TOKEN");
    assert_string_equal(cfg.session_token, "session-token-value"); /* still signs requests */
    config_release(&cfg);

    env_base(&e);
    env_set(&e, "AWS_SESSION_TOKEN", NULL);
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.api_token, "container-token");
    assert_string_equal(cfg.api_token_source, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    assert_null(cfg.session_token);
    config_release(&cfg);

    env_base(&e);
    env_set(&e, "AWS_SESSION_TOKEN", NULL);
    load_fails(&e, "AWS_SESSION_TOKEN", "AWS_TOKEN");
}

static void test_token_file(void **state)
{
    char path[] = "/tmp/stash-test-token-XXXXXX";
    char url[64];
    struct env e;
    struct config cfg;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "file-token\r\n \n", 14), 14);
    close(fd);
    (void)snprintf(url, sizeof(url), "file://%s", path);

    env_base(&e);
    env_set(&e, "AWS_TOKEN", url);
    load_ok(&e, &cfg);
    assert_string_equal(cfg.api_token, "file-token"); /* trailing whitespace trimmed */
    assert_int_equal(cfg.api_token_len, 10);
    config_release(&cfg);

    /* An empty file and a missing file are errors naming the variable. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    load_fails(&e, "AWS_TOKEN", "empty");
    unlink(path);
    load_fails(&e, "AWS_TOKEN", "cannot be opened");
}

static void test_errata_warn(void **state)
{
    struct env e;
    struct config cfg;

    (void)state;
    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_CACHE_SIZE", "10");
    env_set(&e, "PARAMETERS_AND_SECRETS_EXTENSION_HTTP_PORT", "9999");
    load_ok(&e, &cfg);
    assert_int_equal(cfg.cache_size, 1000); /* not read */
    assert_int_equal(cfg.http_port, 2773);
    assert_int_equal(cfg.nwarnings, 2);
    assert_non_null(strstr(cfg.warnings[0], "PARAMETERS_SECRETS_CACHE_SIZE"));
    assert_non_null(strstr(cfg.warnings[0], "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"));
    assert_non_null(strstr(cfg.warnings[1], "PARAMETERS_AND_SECRETS_EXTENSION_HTTP_PORT"));
    config_release(&cfg);
}

/* Secrets never reach an error message: a bad value next to secrets shows only the bad one. */
static void test_no_secret_in_errors(void **state)
{
    struct env e;
    struct config cfg;
    char err[CONFIG_ERROR_MAX];

    (void)state;
    env_base(&e);
    env_set(&e, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "x");
    assert_int_equal(config_load(&cfg, env_get, &e, err, sizeof(err)), STASH_EINVAL);
    assert_null(strstr(err, "wJalrXUtnFEMI"));
    assert_null(strstr(err, "session-token-value"));
}

/* --help comes from the same table: every variable, its default and its range. */
static void test_help_lists_everything(void **state)
{
    static const char *const names[] = {
        "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
        "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
        "SECRETS_MANAGER_TTL",
        "SSM_PARAMETER_STORE_TTL",
        "SECRETS_MANAGER_TIMEOUT_MILLIS",
        "SSM_PARAMETER_STORE_TIMEOUT_MILLIS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL",
        "AWS_CA_BUNDLE",
        "STASH_CACHE_MAX_BYTES",
        "STASH_STALE_MAX_SECONDS",
        "STASH_MAX_ATTEMPTS",
        "STASH_MAX_INBOUND_CONNECTIONS",
        "STASH_PREFETCH_SECRETS",
        "STASH_PREFETCH_PARAMETERS",
        "STASH_REGION_ENDPOINTS",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    config_print_help(f);
    (void)fclose(f);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strstr(text, names[i])) {
            fail_msg("--help lacks %s", names[i]);
        }
    }
    assert_non_null(strstr(text, "default: 2773; valid: 1-65535"));
    assert_non_null(strstr(text, "default: 300; valid: 0-3600 s"));
    assert_non_null(strstr(text, "default: TRUE; valid: TRUE or FALSE"));
    free(text);
}

/* STASH_METRICS_* and the telemetry schema: defaults, each valid value, and refusals that name
 * the variable (a bad namespace must stop the start, not silently lose every metric). */
static void test_metrics_vars(void **state)
{
    static const char *const modes[] = {"invocation", "aggregate", "off"};
    struct env e;
    struct config cfg;

    (void)state;
    /* Default: aggregate in agent mode (no invocations to write a line for), invocation under
     * Lambda; an explicit value wins in either. */
    env_base(&e);
    load_ok(&e, &cfg);
    assert_string_equal(cfg.metrics_mode, "aggregate");
    config_release(&cfg);
    env_base(&e);
    env_set(&e, "STASH_METRICS_MODE", "invocation");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.metrics_mode, "invocation");
    config_release(&cfg);
    env_base(&e);
    env_set(&e, "AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.metrics_namespace, "Stash");
    assert_string_equal(cfg.metrics_mode, "invocation");
    assert_null(cfg.metrics_dimensions);
    assert_int_equal(cfg.metrics_per_key, 0);
    assert_string_equal(cfg.telemetry_schema, "2022-12-13");
    assert_int_equal(cfg.aggregate_interval_s, 60);
    config_release(&cfg);

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char upper[16];

        env_base(&e);
        (void)snprintf(upper, sizeof(upper), "%s", modes[i]);
        upper[0] = (char)(upper[0] - 'a' + 'A'); /* case-insensitive, stored as listed */
        env_set(&e, "STASH_METRICS_MODE", upper);
        load_ok(&e, &cfg);
        assert_string_equal(cfg.metrics_mode, modes[i]);
        config_release(&cfg);
    }

    env_base(&e);
    env_set(&e, "STASH_METRICS_NAMESPACE", "Payments/Cache");
    env_set(&e, "STASH_METRICS_DIMENSIONS", "Stage=prod,Team=payments");
    env_set(&e, "STASH_METRICS_PER_KEY", "TRUE");
    env_set(&e, "STASH_TELEMETRY_SCHEMA", "2025-01-29");
    env_set(&e, "STASH_AGGREGATE_INTERVAL_SECONDS", "3600");
    load_ok(&e, &cfg);
    assert_string_equal(cfg.metrics_namespace, "Payments/Cache");
    assert_string_equal(cfg.metrics_dimensions, "Stage=prod,Team=payments");
    assert_int_equal(cfg.metrics_per_key, 1);
    assert_string_equal(cfg.telemetry_schema, "2025-01-29");
    assert_int_equal(cfg.aggregate_interval_s, 3600);
    config_release(&cfg);

    env_base(&e);
    env_set(&e, "STASH_METRICS_MODE", "verbose");
    load_fails(&e, "STASH_METRICS_MODE", "invocation|aggregate|off");
    env_base(&e);
    env_set(&e, "STASH_TELEMETRY_SCHEMA", "2020-08-15");
    load_fails(&e, "STASH_TELEMETRY_SCHEMA", "2025-01-29");
    env_base(&e);
    env_set(&e, "STASH_METRICS_NAMESPACE", "AWS/Lambda");
    load_fails(&e, "STASH_METRICS_NAMESPACE", "AWS/");
    env_base(&e);
    env_set(&e, "STASH_METRICS_DIMENSIONS", "Stage");
    load_fails(&e, "STASH_METRICS_DIMENSIONS", "Name=Value");
    env_base(&e);
    env_set(&e, "STASH_METRICS_DIMENSIONS", "FunctionName=x");
    load_fails(&e, "STASH_METRICS_DIMENSIONS", NULL);
    env_base(&e);
    env_set(&e, "STASH_AGGREGATE_INTERVAL_SECONDS", "0");
    load_fails(&e, "STASH_AGGREGATE_INTERVAL_SECONDS", "1-3600");
    env_base(&e);
    env_set(&e, "STASH_METRICS_PER_KEY", "yes");
    load_fails(&e, "STASH_METRICS_PER_KEY", "TRUE or FALSE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_valid_values),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_invalid_numbers),
        cmocka_unit_test(test_unbounded_values),
        cmocka_unit_test(test_invalid_other),
        cmocka_unit_test(test_empty_is_unset),
        cmocka_unit_test(test_region),
        cmocka_unit_test(test_credentials_required),
        cmocka_unit_test(test_token_sources),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_errata_warn),
        cmocka_unit_test(test_no_secret_in_errors),
        cmocka_unit_test(test_help_lists_everything),
        cmocka_unit_test(test_metrics_vars),
        cmocka_unit_test(test_lambda_log_controls),
        cmocka_unit_test(test_json_log_has_no_secret),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
