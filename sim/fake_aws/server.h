/* sim/fake_aws/server.h: fake-aws's HTTP front (libmicrohttpd) on 127.0.0.1.
 *
 * AWS API: POST / with X-Amz-Target and a JSON 1.1 body.  Each request: the injected latency
 * (and cold-connection cost) is slept; the SigV4 signature is checked (auth.h); an injected
 * hang, failure or throttle is applied (control.h); the operation answers (ops.h).  Replies carry
 * Content-Type application/x-amz-json-1.1 and x-amzn-RequestId; errors also x-amzn-ErrorType.
 * A body over FA_BODY_MAX is answered 413 RequestEntityTooLarge.
 *
 * Control endpoints (plain HTTP, no signature, paths under /_fake/, parameters in the query):
 *   GET  /_fake/stats                                    counters as JSON (control.h)
 *   POST /_fake/reset                                    zero counters, drop pending faults
 *   POST /_fake/latency?ms=&jitter=&cold=                set latency (missing = 0)
 *   POST /_fake/fail?op=&status=500&type=&message=&count=1
 *                                                        next count calls of op (any if absent)
 *                                                        fail; type defaults to
 *                                                        InternalServiceError (SM) or
 *                                                        InternalServerError (SSM, or any op)
 *   POST /_fake/throttle?op=&count=1                     next count calls: 400 ThrottlingException
 *   POST /_fake/hang?op=&count=1&ms=30000                next count calls wait ms, then answer
 *   POST /_fake/rotate?secretId=&value=|binary=<b64>&versionId=
 *                                                        new AWSCURRENT version, old -> AWSPREVIOUS
 *   POST /_fake/put-parameter?name=&value=&type=&label=  new parameter version (or parameter)
 * They answer JSON: 200 with what changed, 400 {"error": "..."} for bad parameters, 404 for an
 * unknown secret or path, 405 for a wrong method.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION), so an injected wait holds only
 * its own client; keep-alive is on.  Limits: FA_CONNECTIONS_MAX connections, idle timeout 60 s.
 * Ownership: the server borrows data, control and creds; they must outlive fa_server_stop().
 * Thread-safety: start and stop from one thread; everything else runs on MHD's threads.
 */
#ifndef STASH_SIM_FAKE_AWS_SERVER_H
#define STASH_SIM_FAKE_AWS_SERVER_H

#include <stddef.h>

#include "common/err.h"
#include "sim/fake_aws/auth.h"
#include "sim/fake_aws/control.h"
#include "sim/fake_aws/data.h"

#define FA_BODY_MAX        (256u << 10)
#define FA_CONNECTIONS_MAX 1000

struct fa_server_config {
    unsigned short port; /* 0: any free port */
    struct fa_data *data;
    struct fa_control *control;
    const struct fa_cred *creds;
    size_t ncreds;
};

struct fa_server;

/* STASH_EIO if the socket cannot be bound. */
enum stash_err fa_server_start(const struct fa_server_config *cfg, struct fa_server **out);
unsigned short fa_server_port(const struct fa_server *s);
/* Wakes injected waits, stops accepting, joins every connection thread, frees.  NULL is fine. */
void fa_server_stop(struct fa_server *s);

#endif
