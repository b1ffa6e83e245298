/* telemetry/listener.h: the HTTP endpoint Lambda's Telemetry API POSTs event batches to.
 *
 * Protocol: Lambda POSTs `Content-Type: application/json` bodies, each a JSON array of events, to
 * the destination given at subscription (http://sandbox.localdomain:<port>/).  It expects a 2xx
 * quickly, sends one batch at a time, and retries or drops (platform.logsDropped) when the
 * listener is slow.  So this listener does no work of its own: it buffers the body up to a
 * ceiling and hands it to on_batch(), which must parse and record without blocking (no I/O, no
 * waiting on anything held across I/O), then answers:
 *   200 "OK"   on_batch returned STASH_OK (it accepted the batch, or ignored what it did not know);
 *   400        on_batch returned anything else (malformed JSON): nothing of the batch is kept,
 *              and whatever earlier batches recorded stays recorded;
 *   413        the body is over max_body (on_batch is not called), or on_batch returned
 *              STASH_ETOOBIG (too many events);
 *   405        any method but POST.
 * Any path is accepted (the destination may carry one).
 *
 * Address: listener_resolve() turns "sandbox.localdomain" into the address it resolves to in
 * Lambda (getaddrinfo), and 127.0.0.1 where it does not resolve (a laptop, CI).  Call it in
 * main() before any thread starts.
 *
 * Ownership: listener_start() copies the address; listener_stop() stops taking connections, lets
 * answers already decided go out (at most 100 ms), stops the server thread (no on_batch call is
 * running or will run once it returns) and frees everything; it accepts NULL.
 * Thread-safety: on_batch runs on the listener's own thread, one batch at a time.
 * listener_port/listener_batches/listener_wait may be called from any thread while it runs.
 */
#ifndef STASH_TELEMETRY_LISTENER_H
#define STASH_TELEMETRY_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

/* Lambda sends at most 2 * maxBytes plus metadata in one POST; we subscribe with maxBytes 256 KiB,
 * so 1 MiB leaves room for the envelope and is still a hard bound on memory. */
#define LISTENER_DEFAULT_MAX_BODY ((size_t)1024 * 1024)

/* Accepts or rejects one whole batch (body is NUL-terminated, len excludes the NUL). */
typedef enum stash_err (*listener_batch_fn)(void *ctx, const char *body, size_t len);

struct listener_opts {
    const struct sockaddr *addr; /* IPv4 or IPv6, port included (0: any free port) */
    socklen_t addrlen;
    size_t max_body; /* 0: LISTENER_DEFAULT_MAX_BODY */
    listener_batch_fn on_batch;
    void *ctx;
};

struct listener;

/* Resolves host (NULL: "sandbox.localdomain") to its first IPv4/IPv6 address, falling back to
 * 127.0.0.1; the port is set to `port`.  Never fails. */
void listener_resolve(const char *host, uint16_t port, struct sockaddr_storage *out,
                      socklen_t *outlen);

/* STASH_EINVAL for bad options, STASH_EIO if the address cannot be bound. */
enum stash_err listener_start(const struct listener_opts *opts, struct listener **out);
/* The bound port (the real one when opts asked for 0). */
uint16_t listener_port(const struct listener *l);
/* Batches accepted (answered 200) so far. */
uint64_t listener_batches(struct listener *l);
/* Waits until more than `seen` batches were accepted or timeout_ms passed; returns the count. */
uint64_t listener_wait(struct listener *l, uint64_t seen, uint64_t timeout_ms);
void listener_stop(struct listener *l);

#endif
