/* sim/fake_aws/main.c: fake-aws, a local Secrets Manager and SSM Parameter Store speaking the
 * AWS JSON 1.1 wire protocol with SigV4 checked, for stash's tests, benchmarks and demo.
 * Reads flags and the data file, starts the server on 127.0.0.1, prints the port, waits for
 * SIGINT or SIGTERM, stops. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "sim/fake_aws/auth.h"
#include "sim/fake_aws/control.h"
#include "sim/fake_aws/data.h"
#include "sim/fake_aws/server.h"

#define CREDS_MAX 16

/* AWS's documentation example key pair (also the SigV4 test suite's). */
#define DEFAULT_AKID   "AKIDEXAMPLE"
#define DEFAULT_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static void usage(FILE *f)
{
    (void)fputs(
        "usage: fake-aws --data FILE.json [options]\n"
        "A local AWS Secrets Manager and SSM Parameter Store (AWS JSON 1.1, SigV4 checked).\n"
        "  --port P              port on 127.0.0.1 (default 0: any free port)\n"
        "  --data FILE           secrets and parameters (see sim/fake_aws/README.md)\n"
        "  --region R            region served and expected in signatures (us-east-1)\n"
        "  --access-key AKID     a key pair accepted (repeatable, each followed by\n"
        "  --secret-key SECRET     --secret-key; default AKIDEXAMPLE and the AWS docs'\n"
        "                          example secret)\n"
        "  --session-token TOKEN   require this X-Amz-Security-Token with the last key\n"
        "  --latency-ms N        wait N ms before answering each API request\n"
        "  --jitter-ms N         plus a uniform 0..N ms\n"
        "  --cold-ms N           plus N ms on a connection's first request (TLS stand-in)\n"
        "  --ready-file PATH     write the port there once listening\n"
        "  --log-level L         debug|info|warn|error|none (default warn)\n"
        "  --help\n"
        "Prints \"fake-aws listening on 127.0.0.1:PORT\" once ready.  Control endpoints:\n"
        "GET /_fake/stats; POST /_fake/{reset,latency,fail,throttle,hang,rotate,put-parameter}.\n",
        f);
}

static int parse_ms(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || s[0] < '0' || s[0] > '9') {
        return 0;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > FA_DELAY_MAX_MS) {
        return 0;
    }
    *out = (unsigned)v;
    return 1;
}

/* Writes the port to path through a temporary file and a rename, so a reader never sees a
 * half-written file. */
static int write_ready_file(const char *path, unsigned short port)
{
    char tmp[4096];
    FILE *f;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        return -1;
    }
    f = fopen(tmp, "w");
    if (!f) {
        return -1;
    }
    (void)fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct options {
    struct fa_cred creds[CREDS_MAX];
    size_t nkeys;
    const char *data_path;
    const char *region;
    const char *ready_file;
    unsigned long port;
    unsigned latency;
    unsigned jitter;
    unsigned cold;
};

/* Reads one option into o; 0 to go on, or the exit status (0 after --help, 2 on a bad flag). */
static int parse_option(int c, const char *arg, struct options *o, size_t *nsecrets)
{
    char *end;

    switch (c) {
    case 'p':
        errno = 0;
        o->port = strtoul(arg, &end, 10);
        if (errno || *end || !arg[0] || o->port > 65535) {
            (void)fprintf(stderr, "fake-aws: --port must be 0 to 65535\n");
            return 2;
        }
        return 0;
    case 'd':
        o->data_path = arg;
        return 0;
    case 'r':
        o->region = arg;
        return 0;
    case 'a':
        if (o->nkeys == CREDS_MAX || o->nkeys != *nsecrets) {
            (void)fprintf(stderr,
                          "fake-aws: each --access-key needs its --secret-key (at most "
                          "%d pairs)\n",
                          CREDS_MAX);
            return 2;
        }
        o->creds[o->nkeys++].access_key_id = arg;
        return 0;
    case 's':
        if (*nsecrets + 1 != o->nkeys) {
            (void)fprintf(stderr, "fake-aws: --secret-key must follow its --access-key\n");
            return 2;
        }
        o->creds[(*nsecrets)++].secret_access_key = arg;
        return 0;
    case 't':
        if (!o->nkeys) {
            (void)fprintf(stderr, "fake-aws: --session-token must follow an --access-key\n");
            return 2;
        }
        o->creds[o->nkeys - 1].session_token = arg;
        return 0;
    case 'l':
    case 'j':
    case 'c':
        if (!parse_ms(arg, c == 'l' ? &o->latency : c == 'j' ? &o->jitter : &o->cold)) {
            (void)fprintf(stderr, "fake-aws: --%s must be 0 to %u\n",
                          c == 'l'   ? "latency-ms"
                          : c == 'j' ? "jitter-ms"
                                     : "cold-ms",
                          FA_DELAY_MAX_MS);
            return 2;
        }
        return 0;
    case 'f':
        o->ready_file = arg;
        return 0;
    case 'v': {
        enum log_level lvl;

        if (log_level_parse(arg, &lvl) != 0) {
            (void)fprintf(stderr, "fake-aws: --log-level must be debug|info|warn|error|none\n");
            return 2;
        }
        g_log_level = lvl;
        return 0;
    }
    case 'h':
        usage(stdout);
        return -1;
    default:
        usage(stderr);
        return 2;
    }
}

/* Returns 0 with o filled, -1 after --help, 2 on bad usage (said on stderr). */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"region", required_argument, NULL, 'r'},
        {"access-key", required_argument, NULL, 'a'},
        {"secret-key", required_argument, NULL, 's'},
        {"session-token", required_argument, NULL, 't'},
        {"latency-ms", required_argument, NULL, 'l'},
        {"jitter-ms", required_argument, NULL, 'j'},
        {"cold-ms", required_argument, NULL, 'c'},
        {"ready-file", required_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    size_t nsecrets = 0;
    int c;
    int rc;

    memset(o, 0, sizeof(*o));
    o->region = "us-east-1";
    /* getopt_long keeps static state; it runs here, before any thread exists. */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) { // NOLINT(concurrency-mt-unsafe)
        rc = parse_option(c, optarg, o, &nsecrets);
        if (rc) {
            return rc;
        }
    }
    if (optind < argc || !o->data_path) {
        (void)fprintf(stderr, "fake-aws: %s\n",
                      optind < argc ? "unexpected argument" : "--data is required");
        usage(stderr);
        return 2;
    }
    if (o->nkeys != nsecrets) {
        (void)fprintf(stderr, "fake-aws: --access-key %s has no --secret-key\n",
                      o->creds[o->nkeys - 1].access_key_id);
        return 2;
    }
    if (!o->nkeys) {
        o->creds[0].access_key_id = DEFAULT_AKID;
        o->creds[0].secret_access_key = DEFAULT_SECRET;
        o->nkeys = 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    struct fa_data *data = NULL;
    struct fa_control *control = NULL;
    struct fa_server *server = NULL;
    struct fa_server_config cfg;
    struct buf why = BUF_INIT(4096);
    sigset_t sigs;
    int sig;
    int rc;

    mem_init();
    g_log_level = LOG_LEVEL_WARN;
    rc = parse_args(argc, argv, &o);
    if (rc) {
        return rc < 0 ? 0 : rc;
    }
    rc = 1;
    if (fa_data_load(o.data_path, o.region, &data, &why)) {
        (void)fprintf(stderr, "fake-aws: %s\n", why.data ? why.data : "cannot load the data file");
        goto out;
    }
    control = fa_control_new(o.latency, o.jitter, o.cold);

    /* Block the stop signals before MHD starts its threads, so they inherit the mask and
     * sigwait() below is the only receiver; SIGPIPE is ignored (a client may hang up). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    (void)signal(SIGPIPE, SIG_IGN);

    memset(&cfg, 0, sizeof(cfg));
    cfg.port = (unsigned short)o.port;
    cfg.data = data;
    cfg.control = control;
    cfg.creds = o.creds;
    cfg.ncreds = o.nkeys;
    if (fa_server_start(&cfg, &server)) {
        (void)fprintf(stderr, "fake-aws: cannot listen on 127.0.0.1:%lu\n", o.port);
        goto out;
    }
    (void)printf("fake-aws listening on 127.0.0.1:%u\n", fa_server_port(server));
    (void)fflush(stdout);
    LOG_INFO("fake-aws", "%zu secrets, %zu parameters, region %s, %zu access keys",
             fa_data_count_secrets(data), fa_data_count_params(data), fa_data_region(data),
             o.nkeys);
    if (o.ready_file && write_ready_file(o.ready_file, fa_server_port(server))) {
        (void)fprintf(stderr, "fake-aws: cannot write %s\n", o.ready_file);
        goto out;
    }
    while (sigwait(&sigs, &sig) != 0) {
        continue;
    }
    LOG_INFO("fake-aws", "signal %d: stopping", sig);
    rc = 0;
out:
    fa_server_stop(server);
    fa_control_free(control);
    fa_data_free(data);
    buf_release(&why);
    return rc;
}
