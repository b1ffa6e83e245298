/* Unit tests for telemetry/emf: exact lines for known records, splitting at 100 values without
 * double counting, configuration checks, aggregate mode, the fd writer.  Every line emitted here is
 * checked by tests/tools/emf_validate.py (the EMF schema as draft-07 plus the rules the schema
 * misses), and the validator itself is first proven on every tests/data/emf-vectors file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"
#include "refdir.h"
#include "telemetry/emf.h"

static char s_ref[4096];
static char s_validator[4096];

static int setup(void **state)
{
    const char *root = getenv("STASH_ROOT");

    (void)state;
    mem_init();
    if (refdir_find(s_ref, sizeof(s_ref)) != 0) {
        fprintf(stderr, "tests/data not found\n");
        return -1;
    }
    snprintf(s_validator, sizeof(s_validator), "%s/tests/tools/emf_validate.py",
             root && *root ? root : ".");
    if (access(s_validator, R_OK) != 0) {
        fprintf(stderr, "validator %s not found\n", s_validator);
        return -1;
    }
    return 0;
}

/* Runs the validator on a file; returns its exit status and its first output line in why. */
static int run_validator(const char *path, char *why, size_t whycap)
{
    char cmd[16384];
    FILE *p;
    int st;

    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s/emf-schema.json' '%s' 2>&1", s_validator,
             s_ref, path);
    p = popen(cmd, "r");
    assert_non_null(p);
    why[0] = '\0';
    if (!fgets(why, (int)whycap, p)) {
        why[0] = '\0';
    }
    while (fgetc(p) != EOF) {
    }
    st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Every line: ends in "\n", holds no other newline, and passes the validator. */
static void validate_lines(const struct emf_lines *lines)
{
    char path[] = "/tmp/stash-emf-XXXXXX";
    char why[4096];
    int fd = mkstemp(path);
    int rc;

    assert_true(fd >= 0);
    assert_true(lines->n > 0);
    for (size_t i = 0; i < lines->n; i++) {
        assert_int_equal(strlen(lines->line[i]), lines->len[i]);
        assert_true(lines->len[i] > 1);
        assert_int_equal(lines->line[i][lines->len[i] - 1], '\n');
        assert_null(memchr(lines->line[i], '\n', lines->len[i] - 1));
        assert_int_equal(write(fd, lines->line[i], lines->len[i]), (ssize_t)lines->len[i]);
    }
    close(fd);
    rc = run_validator(path, why, sizeof(why));
    unlink(path);
    if (rc != 0) {
        fail_msg("EMF validator refused a line we emit: %s", why);
    }
}

/* The validator accepts every valid vector and refuses every invalid one for its own reason. */
static void test_validator_proves_itself(void **state)
{
    static const struct {
        const char *prefix, *reason;
    } expect[] = {
        {"invalid-01", "Unit"},
        {"invalid-02", "too long"},
        {"invalid-03", "'Dimensions' is a required"},
        {"invalid-04", "integer"},
        {"invalid-05", "more than 100 metrics"},
        {"invalid-06", "more than 100 values"},
        {"invalid-07", "no root member"},
        {"invalid-08", "is not a string"},
        {"invalid-09", "not a finite number"},
        {"invalid-10", "AWS/"},
        {"invalid-11", "not ASCII"},
    };
    char dir[4200], path[4600], why[4096];
    DIR *d;
    struct dirent *de;
    int valid = 0, invalid = 0;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/emf-vectors", s_ref);
    d = opendir(dir);
    assert_non_null(d);
    for (de = readdir(d); de; de = readdir(d)) {
        int rc;

        if (!strstr(de->d_name, ".json")) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        rc = run_validator(path, why, sizeof(why));
        if (strncmp(de->d_name, "valid-", 6) == 0) {
            if (rc != 0) {
                fail_msg("validator refused %s: %s", de->d_name, why);
            }
            valid++;
            continue;
        }
        assert_int_equal(strncmp(de->d_name, "invalid-", 8), 0);
        if (rc != 1) {
            fail_msg("validator accepted %s", de->d_name);
        }
        for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
            if (strncmp(de->d_name, expect[i].prefix, strlen(expect[i].prefix)) == 0 &&
                !strstr(why, expect[i].reason)) {
                fail_msg("%s refused for the wrong reason: %s", de->d_name, why);
            }
        }
        invalid++;
    }
    closedir(d);
    assert_int_equal(valid, 6);
    assert_int_equal(invalid, 11);
}

static void std_config(struct emf_config *cfg, int per_key)
{
    assert_int_equal(emf_config_init(cfg, NULL, "orders-api", "$LATEST", "Env=prod", per_key),
                     STASH_OK);
}

static double s_fetch[] = {0.25, 0.3, 41.8, 1.5};
static double s_upstream[] = {19.5, 20.125};

static struct ledger_record known_record(void)
{
    struct ledger_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.request_id, sizeof(r.request_id), "8f60e725-45d2-4901-949c-482a936d20be");
    r.cold_start = 1;
    r.invoke_ms = 1785265331803ULL;
    r.counts.requests = 4;
    r.counts.hits = 2;
    r.counts.misses = 1;
    r.counts.stale = 1;
    r.counts.refreshes = 1;
    r.counts.upstream_calls = 2;
    r.counts.sm_calls = 2;
    r.counts.upstream_errors = 1;
    r.counts.upstream_throttles = 1;
    r.fetch_ms = s_fetch;
    r.nfetch = 4;
    r.upstream_ms = s_upstream;
    r.nupstream = 2;
    r.has = LEDGER_HAS_REPORT | LEDGER_HAS_DURATION | LEDGER_HAS_BILLED | LEDGER_HAS_INIT_DURATION |
            LEDGER_HAS_MAX_MEMORY | LEDGER_HAS_MEMORY_SIZE | LEDGER_HAS_EXT_OVERHEAD |
            LEDGER_HAS_RUNTIME_DONE | LEDGER_HAS_RUNTIME_DURATION | LEDGER_HAS_RESPONSE_LATENCY |
            LEDGER_HAS_RESPONSE_DURATION | LEDGER_HAS_RUNTIME_OVERHEAD | LEDGER_HAS_PRODUCED_BYTES;
    r.status = TELEMETRY_STATUS_SUCCESS;
    r.duration_ms = 503.84;
    r.billed_duration_ms = 635;
    r.init_duration_ms = 131.048;
    r.max_memory_used_mb = 26;
    r.memory_size_mb = 128;
    r.extension_overhead_ms = 490.29;
    r.runtime_duration_ms = 13.137;
    r.response_latency_ms = 12.35;
    r.response_duration_ms = 0.252;
    r.runtime_overhead_ms = 0.32;
    r.produced_bytes = 10;
    return r;
}

static void test_known_record_line(void **state)
{
    static const char want[] =
        "{\"_aws\":{\"Timestamp\":1785265331803,\"CloudWatchMetrics\":[{\"Namespace\":\"Stash\","
        "\"Dimensions\":[[\"FunctionName\",\"Env\"]],\"Metrics\":["
        "{\"Name\":\"CacheHits\",\"Unit\":\"Count\"},{\"Name\":\"CacheMisses\",\"Unit\":\"Count\"},"
        "{\"Name\":\"CacheStaleServed\",\"Unit\":\"Count\"},"
        "{\"Name\":\"CacheRefreshes\",\"Unit\":\"Count\"},"
        "{\"Name\":\"UpstreamCalls\",\"Unit\":\"Count\"},"
        "{\"Name\":\"SecretsManagerCalls\",\"Unit\":\"Count\"},"
        "{\"Name\":\"ParameterStoreCalls\",\"Unit\":\"Count\"},"
        "{\"Name\":\"UpstreamErrors\",\"Unit\":\"Count\"},"
        "{\"Name\":\"UpstreamThrottles\",\"Unit\":\"Count\"},"
        "{\"Name\":\"ColdStart\",\"Unit\":\"Count\"},"
        "{\"Name\":\"FetchLatency\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"UpstreamLatency\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"Duration\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"BilledDuration\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"InitDuration\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"ExtensionOverhead\",\"Unit\":\"Milliseconds\"},"
        "{\"Name\":\"MaxMemoryUsed\",\"Unit\":\"Megabytes\"}]}]},"
        "\"FunctionName\":\"orders-api\",\"Env\":\"prod\",\"CacheHits\":2,\"CacheMisses\":1,"
        "\"CacheStaleServed\":1,\"CacheRefreshes\":1,\"UpstreamCalls\":2,\"SecretsManagerCalls\":2,"
        "\"ParameterStoreCalls\":0,\"UpstreamErrors\":1,\"UpstreamThrottles\":1,\"ColdStart\":1,"
        "\"FetchLatency\":[0.25,0.3,41.8,1.5],\"UpstreamLatency\":[19.5,20.125],"
        "\"Duration\":503.84,\"BilledDuration\":635,\"InitDuration\":131.048,"
        "\"ExtensionOverhead\":490.29,\"MaxMemoryUsed\":26,"
        "\"requestId\":\"8f60e725-45d2-4901-949c-482a936d20be\",\"functionVersion\":\"$LATEST\","
        "\"phase\":\"invoke\",\"coldStart\":true,\"requests\":4,\"singleFlightWaits\":0,"
        "\"bypass\":0,\"status\":\"success\",\"runtimeDurationMs\":13.137,"
        "\"responseLatencyMs\":12.35,\"responseDurationMs\":0.252,\"runtimeOverheadMs\":0.32,"
        "\"producedBytes\":10,\"memorySizeMB\":128}\n";
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_lines lines;

    (void)state;
    std_config(&cfg, 0);
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 1);
    assert_string_equal(lines.line[0], want);
    validate_lines(&lines);
    emf_lines_release(&lines);
}

/* A warm invocation whose report never came (flushed at SHUTDOWN): cache metrics only, no Lambda
 * figure written as a made-up 0. */
static void test_record_without_report(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_lines lines;

    (void)state;
    std_config(&cfg, 0);
    r.has = 0;
    r.cold_start = 0;
    r.status = TELEMETRY_STATUS_NONE;
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 1);
    assert_null(strstr(lines.line[0], "Duration"));
    assert_null(strstr(lines.line[0], "MaxMemoryUsed"));
    assert_null(strstr(lines.line[0], "\"status\""));
    assert_non_null(strstr(lines.line[0], "\"ColdStart\":0,"));
    assert_non_null(strstr(lines.line[0], "\"coldStart\":false"));
    validate_lines(&lines);
    emf_lines_release(&lines);
}

static void test_init_record(void **state)
{
    struct emf_config cfg;
    struct ledger_record r;
    struct emf_lines lines;
    double v[] = {40.5};

    (void)state;
    std_config(&cfg, 0);
    memset(&r, 0, sizeof(r));
    r.is_init = 1;
    r.invoke_ms = 1000;
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 0); /* nothing happened during init: no line */
    r.counts.requests = 1;
    r.counts.misses = 1;
    r.counts.upstream_calls = 1;
    r.counts.sm_calls = 1;
    r.fetch_ms = v;
    r.nfetch = 1;
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 1);
    assert_non_null(strstr(lines.line[0], "\"phase\":\"init\""));
    assert_null(strstr(lines.line[0], "ColdStart"));
    assert_null(strstr(lines.line[0], "requestId"));
    assert_non_null(strstr(lines.line[0], "\"FetchLatency\":[40.5]"));
    validate_lines(&lines);
    emf_lines_release(&lines);
}

/* Sums a metric over every line of a set (absent counts 0); arrays give their length. */
static double sum_metric(const struct emf_lines *lines, const char *name, size_t *nvalues)
{
    double sum = 0;

    *nvalues = 0;
    for (size_t i = 0; i < lines->n; i++) {
        cJSON *doc = cJSON_Parse(lines->line[i]);
        const cJSON *m;

        assert_non_null(doc);
        m = cJSON_GetObjectItemCaseSensitive(doc, name);
        if (cJSON_IsNumber(m)) {
            sum += m->valuedouble;
            (*nvalues)++;
        } else if (cJSON_IsArray(m)) {
            const cJSON *x;

            cJSON_ArrayForEach(x, m)
            {
                sum += x->valuedouble;
                (*nvalues)++;
            }
        }
        cJSON_Delete(doc);
    }
    return sum;
}

static void test_split_at_100_values(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_lines lines;
    double *fetch = calloc(250, sizeof(double));
    double *up = calloc(30, sizeof(double));
    double want_fetch = 0, want_up = 0, got;
    size_t n;

    (void)state;
    assert_non_null(fetch);
    assert_non_null(up);
    for (int i = 0; i < 250; i++) {
        fetch[i] = i + 0.5;
        want_fetch += fetch[i];
    }
    for (int i = 0; i < 30; i++) {
        up[i] = i * 2.0;
        want_up += up[i];
    }
    r.fetch_ms = fetch;
    r.nfetch = 250;
    r.upstream_ms = up;
    r.nupstream = 30;
    std_config(&cfg, 0);
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 3);
    validate_lines(&lines);
    /* Every value exactly once, in order across lines; every count exactly once. */
    got = sum_metric(&lines, "FetchLatency", &n);
    assert_int_equal(n, 250);
    assert_true(fabs(got - want_fetch) < 1e-6);
    got = sum_metric(&lines, "UpstreamLatency", &n);
    assert_int_equal(n, 30);
    assert_true(fabs(got - want_up) < 1e-6);
    got = sum_metric(&lines, "CacheHits", &n);
    assert_int_equal(n, 1);
    assert_true(got == 2);
    got = sum_metric(&lines, "Duration", &n);
    assert_int_equal(n, 1);
    got = sum_metric(&lines, "ColdStart", &n);
    assert_int_equal(n, 1);
    /* Continuation lines declare only the arrays they carry, and say which part they are. */
    assert_null(strstr(lines.line[1], "CacheHits"));
    assert_null(strstr(lines.line[1], "UpstreamLatency"));
    assert_non_null(strstr(lines.line[1], "\"emfPart\":2"));
    assert_non_null(strstr(lines.line[2], "\"emfPart\":3"));
    assert_non_null(strstr(lines.line[2], "\"requestId\":\"8f60e725"));
    assert_null(strstr(lines.line[2], "\"requests\""));
    assert_non_null(strstr(lines.line[1], "\"FetchLatency\":[100.5,"));
    emf_lines_release(&lines);

    /* Exactly 100 values: one line. */
    r.nfetch = 100;
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 1);
    validate_lines(&lines);
    emf_lines_release(&lines);
    free(fetch);
    free(up);
}

/* NaN/Infinity never reach a line; absurd magnitudes are left out too. */
static void test_non_finite_left_out(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_lines lines;
    double v[] = {NAN, 1.0, INFINITY, 2.0, 1e300};

    (void)state;
    std_config(&cfg, 0);
    r.duration_ms = NAN;
    r.billed_duration_ms = INFINITY;
    r.max_memory_used_mb = 1e300;
    r.fetch_ms = v;
    r.nfetch = 5;
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_null(strstr(lines.line[0], "\"Duration\""));
    assert_null(strstr(lines.line[0], "BilledDuration"));
    assert_null(strstr(lines.line[0], "MaxMemoryUsed"));
    assert_non_null(strstr(lines.line[0], "\"FetchLatency\":[1,2]"));
    assert_null(strstr(lines.line[0], "nan"));
    assert_null(strstr(lines.line[0], "inf"));
    validate_lines(&lines);
    emf_lines_release(&lines);
}

/* Ids and versions are escaped and reduced to ASCII: the line stays one valid JSON object. */
static void test_escaping(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_lines lines;
    cJSON *doc;

    (void)state;
    assert_int_equal(emf_config_init(&cfg, "My App/v1", "fn", "v\"1\\\n", NULL, 0), STASH_OK);
    snprintf(r.request_id, sizeof(r.request_id), "a\"b\\c\n\xc3\xa9");
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    doc = cJSON_Parse(lines.line[0]);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(doc, "requestId")->valuestring,
                        "a\"b\\c\n??");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(doc, "functionVersion")->valuestring,
                        "v\"1\\\n");
    cJSON_Delete(doc);
    validate_lines(&lines);
    emf_lines_release(&lines);
}

static void test_config_checks(void **state)
{
    struct emf_config cfg;
    char longns[EMF_NAMESPACE_MAX + 2];

    (void)state;
    assert_int_equal(emf_config_init(&cfg, "", "", NULL, "", 0), STASH_OK);
    assert_string_equal(cfg.namespace_, "Stash");
    assert_string_equal(cfg.function_name, "unknown");
    assert_int_equal(cfg.ndims, 0);
    assert_int_equal(emf_config_init(&cfg, "Team/Stash", "f", "1", " Env = prod ,Team=pay", 1),
                     STASH_OK);
    assert_int_equal(cfg.ndims, 2);
    assert_string_equal(cfg.dims[0].name, "Env");
    assert_string_equal(cfg.dims[0].value, "prod");
    assert_string_equal(cfg.dims[1].name, "Team");
    assert_true(cfg.per_key);

    assert_int_equal(emf_config_init(&cfg, "AWS/Lambda", "f", "", NULL, 0), STASH_EINVAL);
    assert_string_equal(cfg.namespace_, ""); /* zeroed on error */
    assert_int_equal(emf_config_init(&cfg, "caf\xc3\xa9", "f", "", NULL, 0), STASH_EINVAL);
    assert_int_equal(emf_config_init(&cfg, "a\"b", "f", "", NULL, 0), STASH_EINVAL);
    memset(longns, 'n', sizeof(longns) - 1);
    longns[sizeof(longns) - 1] = '\0';
    assert_int_equal(emf_config_init(&cfg, longns, "f", "", NULL, 0), STASH_EINVAL);
    longns[EMF_NAMESPACE_MAX] = '\0';
    assert_int_equal(emf_config_init(&cfg, longns, "f", "", NULL, 0), STASH_OK);
    assert_int_equal(emf_config_init(&cfg, NULL, "f\xc3\xa9", "", NULL, 0), STASH_EINVAL);
    assert_int_equal(emf_config_init(&cfg, NULL, "   ", "", NULL, 0), STASH_EINVAL);

    static const char *const bad_dims[] = {
        "Env",               /* no '=' */
        "Env=",              /* empty value */
        "=prod",             /* empty name */
        "Env=prod,",         /* trailing comma */
        "Env=prod,Env=test", /* duplicate */
        "CacheHits=1",       /* a name we write ourselves */
        "FunctionName=x",
        "requestId=x",
        ":x=1", /* leading ':' is reserved by CloudWatch */
        "Env=pr\"od",
        "Env=caf\xc3\xa9",
        "A=1,B=2,C=3,D=4,E=5,F=6,G=7,H=8,I=9", /* more than EMF_EXTRA_DIMS_MAX */
    };
    for (size_t i = 0; i < sizeof(bad_dims) / sizeof(bad_dims[0]); i++) {
        if (emf_config_init(&cfg, NULL, "f", "", bad_dims[i], 0) != STASH_EINVAL) {
            fail_msg("accepted dimensions %s", bad_dims[i]);
        }
    }
    assert_int_equal(emf_config_init(&cfg, NULL, "f", "", "A=1,B=2,C=3,D=4,E=5,F=6,G=7,H=8", 0),
                     STASH_OK);
}

static void test_mode_parse(void **state)
{
    enum emf_mode m;

    (void)state;
    assert_int_equal(emf_mode_parse(NULL, &m), STASH_OK);
    assert_int_equal(m, EMF_MODE_INVOCATION);
    assert_int_equal(emf_mode_parse("Aggregate", &m), STASH_OK);
    assert_int_equal(m, EMF_MODE_AGGREGATE);
    assert_int_equal(emf_mode_parse("off", &m), STASH_OK);
    assert_int_equal(m, EMF_MODE_OFF);
    assert_int_equal(emf_mode_parse("sometimes", &m), STASH_EINVAL);
}

/* Per-key lines (opt-in): one per key with Service and Key dimensions; the main line unchanged. */
static void test_per_key_lines(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct ledger_key keys[2];
    struct emf_lines lines;

    (void)state;
    memset(keys, 0, sizeof(keys));
    keys[0].service = FACTS_SVC_SECRETS_MANAGER;
    snprintf(keys[0].name, sizeof(keys[0].name), "prod/db-password");
    keys[0].counts.hits = 2;
    keys[0].counts.upstream_calls = 2;
    keys[1].service = FACTS_SVC_SSM;
    snprintf(keys[1].name, sizeof(keys[1].name), "/app/flags");
    keys[1].counts.misses = 1;
    r.keys = keys;
    r.nkeys = 2;
    std_config(&cfg, 1);
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 3);
    assert_null(strstr(lines.line[0], "prod/db-password"));
    assert_non_null(strstr(lines.line[1], "\"Dimensions\":[[\"FunctionName\",\"Env\",\"Service\","
                                          "\"Key\"]]"));
    assert_non_null(strstr(lines.line[1], "\"Service\":\"SecretsManager\",\"Key\":"
                                          "\"prod/db-password\",\"CacheHits\":2"));
    assert_non_null(strstr(lines.line[2], "\"Service\":\"ParameterStore\",\"Key\":\"/app/flags\""));
    assert_null(strstr(lines.line[1], "FetchLatency"));
    validate_lines(&lines);
    emf_lines_release(&lines);

    /* Off: names present in the record are not written. */
    std_config(&cfg, 0);
    assert_int_equal(emf_render_record(&cfg, &r, &lines), STASH_OK);
    assert_int_equal(lines.n, 1);
    emf_lines_release(&lines);
}

static void test_aggregate(void **state)
{
    struct emf_config cfg;
    struct emf_agg *a = malloc(sizeof(*a));
    struct ledger_record r = known_record();
    struct emf_lines lines;
    double *many = calloc(350, sizeof(double));
    double got;
    size_t n;
    cJSON *doc;

    (void)state;
    assert_non_null(a);
    assert_non_null(many);
    std_config(&cfg, 0);
    emf_agg_reset(a);
    assert_int_equal(emf_render_agg(&cfg, a, 5, &lines), STASH_OK);
    assert_int_equal(lines.n, 0); /* an empty interval writes nothing */
    for (int i = 0; i < 350; i++) {
        many[i] = 1.0;
    }
    emf_agg_add(a, &r); /* cold, 4 fetch values */
    r.cold_start = 0;
    r.has &= ~(unsigned)LEDGER_HAS_INIT_DURATION;
    r.fetch_ms = many;
    r.nfetch = 350;
    emf_agg_add(a, &r);
    emf_agg_add(a, &r); /* 704 fetch values: 500 kept */
    assert_int_equal(a->invocations, 3);
    assert_int_equal(a->fetch.n, EMF_AGG_VALUES_MAX);
    assert_int_equal(a->fetch.seen, 704);
    assert_int_equal(emf_render_agg(&cfg, a, 99, &lines), STASH_OK);
    assert_int_equal(lines.n, 5);
    validate_lines(&lines);
    got = sum_metric(&lines, "CacheHits", &n);
    assert_true(got == 6);
    assert_int_equal(n, 1);
    got = sum_metric(&lines, "ColdStart", &n);
    assert_true(got == 1);
    got = sum_metric(&lines, "CacheRefreshes", &n);
    assert_true(got == 3);
    assert_int_equal(n, 1);
    sum_metric(&lines, "FetchLatency", &n);
    assert_int_equal(n, EMF_AGG_VALUES_MAX);
    sum_metric(&lines, "Duration", &n);
    assert_int_equal(n, 3);
    sum_metric(&lines, "InitDuration", &n);
    assert_int_equal(n, 1);
    doc = cJSON_Parse(lines.line[0]);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(doc, "invocations")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(doc, "valuesSampledOut")->valueint, 204);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(doc, "requests")->valueint, 12);
    cJSON_Delete(doc);
    emf_lines_release(&lines);
    free(many);
    free(a);
}

/* Reads everything available from a non-blocking pipe. */
static size_t drain(int fd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;

    for (;;) {
        r = read(fd, out + n, cap - n - 1);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void test_writer_modes(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    struct emf_writer *w;
    struct emf_writer_stats st;
    static char out[1 << 16];
    int p[2];

    (void)state;
    std_config(&cfg, 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);

    /* invocation: one record, one line, as rendered. */
    w = emf_writer_new(&cfg, EMF_MODE_INVOCATION, p[1], 0, 0);
    emf_writer_sink(&r, w);
    drain(p[0], out, sizeof(out));
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"requestId\":\"8f60e725-45d2-4901-949c-482a936d20be\""));
    emf_writer_stats(w, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.lines, 1);
    assert_int_equal(st.errors, 0);
    emf_writer_free(w);

    /* aggregate: nothing until the interval has run, then one line; flush writes the rest. */
    w = emf_writer_new(&cfg, EMF_MODE_AGGREGATE, p[1], 60000, 1000);
    r.invoke_ms = 2000;
    emf_writer_sink(&r, w);
    r.invoke_ms = 30000;
    emf_writer_sink(&r, w);
    emf_writer_tick(w, 40000);
    assert_int_equal(drain(p[0], out, sizeof(out)), 0);
    r.invoke_ms = 61000;
    emf_writer_sink(&r, w);
    drain(p[0], out, sizeof(out));
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"invocations\":3"));
    assert_non_null(strstr(out, "\"CacheHits\":6"));
    r.invoke_ms = 70000;
    emf_writer_sink(&r, w);
    emf_writer_flush(w, 71000);
    drain(p[0], out, sizeof(out));
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"invocations\":1"));
    emf_writer_flush(w, 72000);
    assert_int_equal(drain(p[0], out, sizeof(out)), 0); /* nothing pending: nothing written */
    emf_writer_free(w);

    /* off: counted, never written. */
    w = emf_writer_new(&cfg, EMF_MODE_OFF, p[1], 0, 0);
    emf_writer_sink(&r, w);
    emf_writer_flush(w, 1);
    assert_int_equal(drain(p[0], out, sizeof(out)), 0);
    emf_writer_stats(w, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.lines, 0);
    emf_writer_free(w);

    /* A write failure is counted, not fatal. */
    close(p[0]);
    close(p[1]);
    w = emf_writer_new(&cfg, EMF_MODE_INVOCATION, p[1], 0, 0);
    emf_writer_sink(&r, w);
    emf_writer_stats(w, &st);
    assert_int_equal(st.errors, 1);
    emf_writer_free(w);
}

/* The ledger and the writer together: what the ledger completes is what comes out. */
static void test_ledger_to_writer(void **state)
{
    struct emf_config cfg;
    struct emf_writer *w;
    struct ledger *l;
    struct ledger_config lc = {0};
    struct facts f;
    struct telemetry_event ev;
    static char out[1 << 16];
    int p[2];

    (void)state;
    std_config(&cfg, 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    w = emf_writer_new(&cfg, EMF_MODE_INVOCATION, p[1], 0, 0);
    lc.sink = emf_writer_sink;
    lc.sink_ctx = w;
    l = ledger_new(&lc, 1000);
    assert_int_equal(ledger_on_invoke(l, "req-1", 0, 2000), STASH_OK);
    memset(&f, 0, sizeof(f));
    f.service = FACTS_SVC_SECRETS_MANAGER;
    f.outcome = FACTS_HIT;
    f.latency_ms = 0.5;
    ledger_on_facts(l, &f);
    assert_int_equal(ledger_on_invoke(l, "req-2", 0, 3000), STASH_OK);
    assert_int_equal(drain(p[0], out, sizeof(out)), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = TELEMETRY_REPORT;
    snprintf(ev.request_id, sizeof(ev.request_id), "req-1");
    ev.has = TELEMETRY_HAS_DURATION | TELEMETRY_HAS_BILLED;
    ev.duration_ms = 3.25;
    ev.billed_duration_ms = 4;
    ledger_on_event(l, &ev);
    drain(p[0], out, sizeof(out));
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"Timestamp\":2000,"));
    assert_non_null(strstr(out, "\"CacheHits\":1,"));
    assert_non_null(strstr(out, "\"ColdStart\":1,"));
    assert_non_null(strstr(out, "\"Duration\":3.25,\"BilledDuration\":4,"));
    ledger_on_shutdown(l);
    ledger_flush(l);
    drain(p[0], out, sizeof(out));
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"requestId\":\"req-2\""));
    ledger_free(l);
    emf_writer_free(w);
    close(p[0]);
    close(p[1]);
}

struct writer_thread {
    struct emf_writer *w;
    const struct ledger_record *rec;
};

static void *sink_many(void *arg)
{
    struct writer_thread *t = arg;

    for (int i = 0; i < 50; i++) {
        emf_writer_sink(t->rec, t->w);
    }
    return NULL;
}

struct reader {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;

    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);

        if (n <= 0) {
            break;
        }
        r->len += (size_t)n;
    }
    r->buf[r->len] = '\0';
    return NULL;
}

/* Lines longer than PIPE_BUF from four threads at once: every line arrives whole. */
static void test_writer_threads_never_interleave(void **state)
{
    struct emf_config cfg;
    struct ledger_record r = known_record();
    char spec[8 * 1100];
    size_t off = 0;
    struct emf_writer *w;
    struct writer_thread wt;
    struct reader rd = {0};
    pthread_t th[4], reader;
    int p[2];
    size_t nlines = 0;
    char *line, *save = NULL;

    (void)state;
    for (int i = 0; i < 8; i++) {
        off += (size_t)snprintf(spec + off, sizeof(spec) - off, "%sD%d=", i ? "," : "", i);
        memset(spec + off, 'a' + i, 1000);
        off += 1000;
        spec[off] = '\0';
    }
    assert_int_equal(emf_config_init(&cfg, NULL, "f", "1", spec, 0), STASH_OK);
    assert_int_equal(pipe(p), 0);
    rd.fd = p[0];
    rd.cap = 8u << 20;
    rd.buf = malloc(rd.cap);
    assert_non_null(rd.buf);
    assert_int_equal(pthread_create(&reader, NULL, read_all, &rd), 0);
    w = emf_writer_new(&cfg, EMF_MODE_INVOCATION, p[1], 0, 0);
    wt.w = w;
    wt.rec = &r;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, sink_many, &wt), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    close(p[1]);
    pthread_join(reader, NULL);
    close(p[0]);
    emf_writer_free(w);
    for (line = strtok_r(rd.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *doc = cJSON_Parse(line);

        assert_true(strlen(line) > 8192);
        assert_non_null(doc);
        cJSON_Delete(doc);
        nlines++;
    }
    assert_int_equal(nlines, 200);
    free(rd.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_proves_itself),
        cmocka_unit_test(test_known_record_line),
        cmocka_unit_test(test_record_without_report),
        cmocka_unit_test(test_init_record),
        cmocka_unit_test(test_split_at_100_values),
        cmocka_unit_test(test_non_finite_left_out),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_mode_parse),
        cmocka_unit_test(test_per_key_lines),
        cmocka_unit_test(test_aggregate),
        cmocka_unit_test(test_writer_modes),
        cmocka_unit_test(test_ledger_to_writer),
        cmocka_unit_test(test_writer_threads_never_interleave),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
