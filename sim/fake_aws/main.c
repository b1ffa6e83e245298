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
    fputs(
        "usage: fake-aws --data FILE.json [options]\n"
        "A local AWS Secrets Manager and SSM Parameter Store (AWS JSON 1.1, SigV4 checked).\n"
        "  --port P              port on 127.0.0.1 (default 0: any free port)\n"
        "  --data FILE           secrets and parameters (see README, section fake-aws)\n"
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
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
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
    struct fa_cred creds[CREDS_MAX];
    size_t nkeys = 0;
    size_t nsecrets = 0;
    const char *data_path = NULL;
    const char *region = "us-east-1";
    const char *ready_file = NULL;
    unsigned long port = 0;
    unsigned latency = 0;
    unsigned jitter = 0;
    unsigned cold = 0;
    struct fa_data *data = NULL;
    struct fa_control *control = NULL;
    struct fa_server *server = NULL;
    struct fa_server_config cfg;
    struct buf why = BUF_INIT(4096);
    sigset_t sigs;
    int sig;
    int c;
    int rc = 2;
    char *end;

    mem_init();
    g_log_level = LOG_LEVEL_WARN;
    memset(creds, 0, sizeof(creds));
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            errno = 0;
            port = strtoul(optarg, &end, 10);
            if (errno || *end || !optarg[0] || port > 65535) {
                fprintf(stderr, "fake-aws: --port must be 0 to 65535\n");
                goto out;
            }
            break;
        case 'd':
            data_path = optarg;
            break;
        case 'r':
            region = optarg;
            break;
        case 'a':
            if (nkeys == CREDS_MAX || nkeys != nsecrets) {
                fprintf(stderr,
                        "fake-aws: each --access-key needs its --secret-key (at most "
                        "%d pairs)\n",
                        CREDS_MAX);
                goto out;
            }
            creds[nkeys++].access_key_id = optarg;
            break;
        case 's':
            if (nsecrets + 1 != nkeys) {
                fprintf(stderr, "fake-aws: --secret-key must follow its --access-key\n");
                goto out;
            }
            creds[nsecrets++].secret_access_key = optarg;
            break;
        case 't':
            if (!nkeys) {
                fprintf(stderr, "fake-aws: --session-token must follow an --access-key\n");
                goto out;
            }
            creds[nkeys - 1].session_token = optarg;
            break;
        case 'l':
        case 'j':
        case 'c':
            if (!parse_ms(optarg, c == 'l' ? &latency : c == 'j' ? &jitter : &cold)) {
                fprintf(stderr, "fake-aws: --%s must be 0 to %u\n",
                        c == 'l'   ? "latency-ms"
                        : c == 'j' ? "jitter-ms"
                                   : "cold-ms",
                        FA_DELAY_MAX_MS);
                goto out;
            }
            break;
        case 'f':
            ready_file = optarg;
            break;
        case 'v': {
            enum log_level lvl;

            if (log_level_parse(optarg, &lvl) != 0) {
                fprintf(stderr, "fake-aws: --log-level must be debug|info|warn|error|none\n");
                goto out;
            }
            g_log_level = lvl;
            break;
        }
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc || !data_path) {
        fprintf(stderr, "fake-aws: %s\n",
                optind < argc ? "unexpected argument"
                              : "--data is "
                                "required");
        usage(stderr);
        goto out;
    }
    if (nkeys != nsecrets) {
        fprintf(stderr, "fake-aws: --access-key %s has no --secret-key\n",
                creds[nkeys - 1].access_key_id);
        goto out;
    }
    if (!nkeys) {
        creds[0].access_key_id = DEFAULT_AKID;
        creds[0].secret_access_key = DEFAULT_SECRET;
        nkeys = 1;
    }
    rc = 1;
    if (fa_data_load(data_path, region, &data, &why)) {
        fprintf(stderr, "fake-aws: %s\n", why.data ? why.data : "cannot load the data file");
        goto out;
    }
    control = fa_control_new(latency, jitter, cold);

    /* Block the stop signals before MHD starts its threads, so they inherit the mask and
     * sigwait() below is the only receiver; SIGPIPE is ignored (a client may hang up). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&cfg, 0, sizeof(cfg));
    cfg.port = (unsigned short)port;
    cfg.data = data;
    cfg.control = control;
    cfg.creds = creds;
    cfg.ncreds = nkeys;
    if (fa_server_start(&cfg, &server)) {
        fprintf(stderr, "fake-aws: cannot listen on 127.0.0.1:%lu\n", port);
        goto out;
    }
    printf("fake-aws listening on 127.0.0.1:%u\n", fa_server_port(server));
    fflush(stdout);
    LOG_INFO("fake-aws", "%zu secrets, %zu parameters, region %s, %zu access keys",
             fa_data_count_secrets(data), fa_data_count_params(data), fa_data_region(data), nkeys);
    if (ready_file && write_ready_file(ready_file, fa_server_port(server))) {
        fprintf(stderr, "fake-aws: cannot write %s\n", ready_file);
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
