/* sim/lambda_sim/tele.h: the Telemetry API delivery side of one execution environment.
 *
 * A hub holds the environment's subscribers.  tele_hub_emit offers an event (one JSON envelope)
 * to every subscriber whose types include its category; each subscriber has its own queue and
 * one delivery thread that POSTs JSON arrays to http://<host>:<port><path> (the host,
 * sandbox.localdomain or sandbox, is resolved to 127.0.0.1) when maxItems, maxBytes or timeoutMs
 * is reached, with at most one POST in flight.  A failed POST is retried three times, then the
 * batch is dropped and a platform.logsDropped event queued.
 * Init replay: while the hub is in init (until tele_hub_end_init) every event is also kept, and
 * a new subscriber first receives the kept events of its types, as Lambda does.
 * Freeze: while frozen nothing is delivered (events queue up); this is Lambda's freeze between
 * invokes.  tele_hub_emit can freeze atomically after queueing, so platform.report of invoke N
 * can never leave before the thaw of invoke N+1 or SHUTDOWN.
 * Ownership: the hub owns the events given to it (tele_hub_emit takes the string).
 * Thread-safety: every function is thread-safe; tele_hub_free must be the last call.
 */
#ifndef STASH_SIM_TELE_H
#define STASH_SIM_TELE_H

#include "sim/lambda_sim/wire.h"

struct tele_hub;

struct tele_hub *tele_hub_new(void);
/* Takes json.  category is one WIRE_T_* bit.  freeze_after: freeze the hub once queued. */
void tele_hub_emit(struct tele_hub *hub, unsigned category, char *json, int freeze_after);
/* Adds (or, for a name already subscribed, replaces the settings of) a subscriber, replays the
 * kept init events to it, then emits platform.telemetrySubscription to everyone. */
void tele_hub_subscribe(struct tele_hub *hub, const char *name,
                        const struct wire_subscription *sub);
void tele_hub_end_init(struct tele_hub *hub);
void tele_hub_freeze(struct tele_hub *hub, int frozen);
/* Number of events queued and not yet delivered (for tests and the shutdown drain). */
unsigned tele_hub_pending(struct tele_hub *hub);
/* Stops delivery threads (an in-flight POST finishes or times out) and frees everything. */
void tele_hub_free(struct tele_hub *hub);

#endif
