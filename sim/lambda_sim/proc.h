/* sim/lambda_sim/proc.h: a child process of an execution environment (runtime or extension).
 *
 * proc_spawn forks and execs argv with exactly envp, in its own process group, stdin from
 * /dev/null, stdout and stderr into one pipe (Lambda merges them into the log stream).  Two
 * threads serve it: a reader that calls on_line for every output line (a line longer than
 * PROC_LINE_MAX is cut into pieces; a final line without newline is passed as is), and a waiter
 * that reaps the child and calls on_exit once with its wait status.  Callbacks run on those
 * threads: they must not call proc_free on their own proc.
 * Ownership: the caller owns the proc and ends it with proc_free, which SIGKILLs the process
 * group if it still runs, joins both threads and closes the pipe.  Never call proc_free while
 * holding a lock that on_exit or on_line take.
 * Thread-safety: proc_signal, proc_pid and proc_exited are thread-safe.
 */
#ifndef STASH_SIM_PROC_H
#define STASH_SIM_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

#define PROC_LINE_MAX 65536

struct proc;

typedef void (*proc_exit_fn)(void *arg, struct proc *p, int wstatus);
typedef void (*proc_line_fn)(void *arg, struct proc *p, const char *line, size_t len);

struct proc_spec {
    char *const *argv; /* argv[0] is the path executed */
    char *const *envp;
    const char *cwd; /* NULL: inherit */
    proc_exit_fn on_exit;
    proc_line_fn on_line;
    void *exit_arg; /* first argument of on_exit */
    void *line_arg; /* first argument of on_line */
};

enum stash_err proc_spawn(const struct proc_spec *spec, struct proc **out);
pid_t proc_pid(const struct proc *p);
int proc_exited(struct proc *p);
/* Sends sig to the child's process group (so grandchildren of `sh -c` are reached too). */
void proc_signal(struct proc *p, int sig);
void proc_free(struct proc *p);
/* 1 while any process of the child's process group is alive (e.g. the command `sh -c` runs). */
int proc_group_alive(struct proc *p);
/* Peak resident set (VmHWM) of pid and all its descendants, in KiB; 0 if gone. */
unsigned long proc_tree_peak_kb(pid_t pid);
/* "exit status N" or "signal: NAME", as Lambda's Runtime.ExitError messages print it. */
void proc_describe_status(int wstatus, char *out, size_t outlen);

#endif
