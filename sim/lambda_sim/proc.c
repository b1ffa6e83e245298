/* sim/lambda_sim/proc.c: fork/exec with a log pipe, a reader thread and a waiter thread. */
/* pipe2(2) is a GNU extension: the pipe must be close-on-exec from birth, or a child forked by
 * another thread in between would inherit it and hold the reader open. */
#define _GNU_SOURCE // NOLINT(bugprone-reserved-identifier,readability-identifier-naming)
#include "sim/lambda_sim/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "sim/lambda_sim/util.h"

struct proc {
    pid_t pid;
    int fd; /* read end of the output pipe */
    struct proc_spec spec;
    pthread_t reader;
    pthread_t waiter;
    atomic_int stop;   /* tells the reader to give up on the pipe */
    atomic_int exited; /* the waiter reaped the child */
};

static void emit_lines(struct proc *p, char *buf, size_t *len, int final)
{
    size_t start = 0;
    size_t i;

    for (i = 0; i < *len; i++) {
        if (buf[i] == '\n') {
            p->spec.on_line(p->spec.line_arg, p, buf + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start == 0 && *len >= PROC_LINE_MAX) {
        p->spec.on_line(p->spec.line_arg, p, buf, *len); /* an overlong line, cut here */
        start = *len;
    }
    if (final && start < *len) {
        p->spec.on_line(p->spec.line_arg, p, buf + start, *len - start);
        start = *len;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

static void *reader_main(void *arg)
{
    struct proc *p = arg;
    char *buf = xmalloc(PROC_LINE_MAX);
    size_t len = 0;

    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, 100);
        ssize_t n;

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            continue;
        }
        n = read(p->fd, buf + len, PROC_LINE_MAX - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            break; /* EOF: every writer (the child and its children) is gone */
        }
        len += (size_t)n;
        emit_lines(p, buf, &len, 0);
    }
    emit_lines(p, buf, &len, 1);
    free(buf);
    return NULL;
}

static void *waiter_main(void *arg)
{
    struct proc *p = arg;
    int st = 0;

    while (waitpid(p->pid, &st, 0) < 0) {
        if (errno != EINTR) {
            st = 0;
            break;
        }
    }
    atomic_store(&p->exited, 1);
    if (p->spec.on_exit) {
        p->spec.on_exit(p->spec.exit_arg, p, st);
    }
    return NULL;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const struct proc_spec *spec, int wfd, int nullfd)
{
    struct sigaction sa;
    sigset_t none;
    int sig;

    setpgid(0, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (sig = 1; sig < 32; sig++) {
        sigaction(sig, &sa, NULL); /* SIGPIPE was ignored in the parent */
    }
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    if (dup2(nullfd, 0) < 0 || dup2(wfd, 1) < 0 || dup2(wfd, 2) < 0) {
        _exit(126);
    }
    /* Descriptors of other environments (pipes, sockets) must not leak into this one: a leaked
     * pipe write end would keep another reader from ever seeing EOF. */
    syscall(SYS_close_range, 3u, ~0u, 0u);
    if (spec->cwd && chdir(spec->cwd) != 0) {
        _exit(126);
    }
    execve(spec->argv[0], spec->argv, spec->envp);
    _exit(127);
}

enum stash_err proc_spawn(const struct proc_spec *spec, struct proc **out)
{
    int pfd[2];
    int nullfd;
    pid_t pid;
    struct proc *p;

    *out = NULL;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return STASH_EIO;
    }
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return STASH_EIO;
    }
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        close(nullfd);
        return STASH_EIO;
    }
    if (pid == 0) {
        child_exec(spec, pfd[1], nullfd);
    }
    setpgid(pid, pid); /* both sides set it: whichever runs first wins the race with kill() */
    close(pfd[1]);
    close(nullfd);
    p = xcalloc(1, sizeof(*p));
    p->pid = pid;
    p->fd = pfd[0];
    p->spec = *spec;
    atomic_init(&p->stop, 0);
    atomic_init(&p->exited, 0);
    if (pthread_create(&p->reader, NULL, reader_main, p) != 0 ||
        pthread_create(&p->waiter, NULL, waiter_main, p) != 0) {
        LOG_ERROR("lambda-sim", "cannot start threads for pid %d", (int)pid);
        abort(); /* thread creation fails only when the machine is out of resources */
    }
    *out = p;
    return STASH_OK;
}

pid_t proc_pid(const struct proc *p)
{
    return p->pid;
}

int proc_exited(struct proc *p)
{
    return atomic_load(&p->exited);
}

void proc_signal(struct proc *p, int sig)
{
    if (!atomic_load(&p->exited)) {
        kill(-p->pid, sig);
        kill(p->pid, sig); /* in case the child has not reached setpgid yet */
    } else {
        kill(-p->pid, sig); /* grandchildren left in the group */
    }
}

/* The state and the process group from what follows the ")" of /proc/PID/stat
 * (" S 1 1234 ..."); 0 if it does not have that shape. */
static int parse_stat_tail(const char *s, char *state, long *pgrp)
{
    char *end;

    while (*s == ' ') {
        s++;
    }
    if (!*s) {
        return 0;
    }
    *state = *s++;
    (void)strtol(s, &end, 10); /* the parent's pid */
    if (end == s) {
        return 0;
    }
    s = end;
    *pgrp = strtol(s, &end, 10);
    return end != s;
}

int proc_group_alive(struct proc *p)
{
    DIR *d;
    struct dirent *de;
    int alive = 0;

    if (!atomic_load(&p->exited)) {
        return 1;
    }
    /* kill(-pgid, 0) would count zombies: an orphan whose new parent (PID 1 of a container)
     * does not reap it would look alive until the deadline.  /proc tells the states apart. */
    d = opendir("/proc");
    if (!d) {
        return kill(-p->pid, 0) == 0;
    }
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): readdir races only on a stream shared by threads */
    while (!alive && (de = readdir(d)) != NULL) {
        char path[300];
        char stat[512];
        const char *rp;
        FILE *f;
        size_t n;
        char state = 0;
        long pgrp = 0;

        if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
            sim_fmt(path, sizeof(path), "/proc/%s/stat", de->d_name) != 0) {
            continue;
        }
        f = fopen(path, "re");
        if (!f) {
            continue;
        }
        n = fread(stat, 1, sizeof(stat) - 1, f);
        (void)fclose(f); /* read only: nothing is lost if closing fails */
        stat[n] = '\0';
        rp = strrchr(stat, ')');
        if (rp && parse_stat_tail(rp + 1, &state, &pgrp) && pgrp == p->pid && state != 'Z' &&
            state != 'X') {
            alive = 1;
        }
    }
    (void)closedir(d);
    return alive;
}

void proc_free(struct proc *p)
{
    if (!p) {
        return;
    }
    kill(-p->pid, SIGKILL);
    if (!atomic_load(&p->exited)) {
        kill(p->pid, SIGKILL);
    }
    pthread_join(p->waiter, NULL);
    atomic_store(&p->stop, 1);
    pthread_join(p->reader, NULL);
    close(p->fd);
    free(p);
}

static unsigned long read_hwm_kb(pid_t pid)
{
    char path[64];
    char line[256];
    unsigned long kb = 0;
    FILE *f;

    if (sim_fmt(path, sizeof(path), "/proc/%d/status", (int)pid) != 0) {
        return 0;
    }
    f = fopen(path, "re");
    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtoul(line + 6, NULL, 10);
            break;
        }
    }
    (void)fclose(f); /* read only */
    return kb;
}

static unsigned long tree_kb(pid_t pid, int depth)
{
    char path[80];
    char list[4096];
    unsigned long kb = read_hwm_kb(pid);
    size_t n;
    FILE *f;
    char *s;
    char *end;

    if (depth > 16) {
        return kb;
    }
    if (sim_fmt(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid) != 0) {
        return kb;
    }
    f = fopen(path, "re");
    if (!f) {
        return kb;
    }
    n = fread(list, 1, sizeof(list) - 1, f);
    (void)fclose(f); /* read only */
    list[n] = '\0';
    s = list;
    for (;;) {
        long child = strtol(s, &end, 10);

        if (end == s) {
            break;
        }
        if (child > 0) {
            kb += tree_kb((pid_t)child, depth + 1);
        }
        s = end;
    }
    return kb;
}

unsigned long proc_tree_peak_kb(pid_t pid)
{
    return tree_kb(pid, 0);
}

void proc_describe_status(int wstatus, char *out, size_t outlen)
{
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        const char *name = sig == SIGKILL   ? "killed"
                           : sig == SIGTERM ? "terminated"
                           : sig == SIGSEGV ? "segmentation fault"
                           : sig == SIGABRT ? "aborted"
                                            : NULL;

        if (name) {
            sim_msgf(out, outlen, "signal: %s", name);
        } else {
            sim_msgf(out, outlen, "signal: %d", sig);
        }
    } else {
        sim_msgf(out, outlen, "exit status %d", WEXITSTATUS(wstatus));
    }
}
