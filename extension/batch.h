/* extension/batch.h: the answers of the local batch paths, built from single answers.
 *
 * GET /secretsmanager/batch answers in BatchGetSecretValue's shape,
 *   {"SecretValues":[...],"Errors":[{"SecretId":..,"ErrorCode":..,"Message":..}]}
 * and GET /systemsmanager/parameters/batch in GetParameters' shape,
 *   {"Parameters":[...],"InvalidParameters":[...]}
 * (AWS's API references for BatchGetSecretValue and GetParameters).  Each value is the item a
 * single GET of the same id answers (and the cache holds), with the same field formats (ISO
 * dates, null for an absent field), so a value reads the same on both paths; the items keep the
 * order the ids were asked in.
 *
 * Pure: no I/O, no lock.  The rendered document holds secrets: the caller releases it with
 * buf_release_secret (or hands it to something that wipes it).  Thread-safety: none needed.
 */
#ifndef STASH_EXTENSION_BATCH_H
#define STASH_EXTENSION_BATCH_H

#include <stddef.h>

#include "cache/cache.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/facts.h"
#include "extension/api.h"

#define BATCH_MAX_SECRETS    20 /* BatchGetSecretValue's SecretIdList limit */
#define BATCH_MAX_PARAMETERS 10 /* GetParameters' Names limit */

struct batch_item {
    const char *id;   /* as asked for */
    int status;       /* 200: body is the single GET's answer; anything else: an error */
    const char *body; /* the single GET's answer: success, or {"__type":..,"message":..} */
    size_t len;
};

/* Appends the batch document for n items to out (out's ceiling applies).  A secret's error goes
 * to Errors with its __type and message; a parameter's error makes it an InvalidParameters name
 * when it is ParameterNotFound or ParameterVersionNotFound.  Returns STASH_OK, STASH_ETOOBIG
 * (out's ceiling), or STASH_EINVAL when a 200 body is not the shape a single GET answers (never
 * from the cache's own values) or a parameter fails otherwise (the caller answers that error
 * instead: GetParameters has no place for it). */
enum stash_err batch_render_secrets(const struct batch_item *items, size_t n, struct buf *out);
enum stash_err batch_render_parameters(const struct batch_item *items, size_t n, struct buf *out);

/* The error type of an error answer ({"__type":"X",...}), copied into type (typelen bytes);
 * "InternalFailure" when the body holds none.  For picking a batch's failing item. */
void batch_error_type(const char *body, size_t len, char *type, size_t typelen);

/* Gets n ids of one service through the cache, as n single GETs of them would (same cache keys,
 * TTLs and flags), but with one upstream call per region for the ids this call fetches:
 * BatchGetSecretValue (n <= BATCH_MAX_SECRETS) or GetParameters (n <= BATCH_MAX_PARAMETERS).
 *   - a fresh entry is a hit (no call);
 *   - a key no one is fetching is led by this call (a get of it arriving meanwhile joins and
 *     waits for the batch) and stored from the batch's item, as a single fill would be;
 *   - a key another request is already fetching is joined after the batch (never a second call);
 *   - with the cache off or a TTL of 0, the batch is made and nothing is stored.
 * A parameter read with decryption whose Type is not SecureString is also stored for reads
 * without it (GetParameter answers both the same).  An item's error is that item's answer (not
 * stored; the next read fetches it again).  When the batch call itself is refused by AWS (for
 * example a role without secretsmanager:BatchGetSecretValue) and single_fallback is set, each id
 * is fetched with a single call instead.
 * refs[i] and facts[i] (zeroed by the caller, request_id and phase set as wanted) receive each
 * id's answer and what its get did; the upstream calls of a batch are counted in the facts of
 * the first id it carried.  Release every refs[i].  Thread-safe; blocks for upstream. */
struct batch_get {
    const struct api_opts *opts;
    int ssm;             /* parameters; else secrets */
    int with_decryption; /* parameters */
    int refresh;         /* refreshNow: fetch even what is fresh */
    int single_fallback;
    const char *const *ids;
    size_t n;
    struct cache_ref *refs;
    struct facts *facts;
};
void batch_get(const struct batch_get *g);

#endif
