/* sim/fake_aws/data.h: fake-aws's store of secrets and parameters, loaded from a JSON file.
 *
 * Data file (UTF-8 JSON object; every key optional):
 *   {"AccountId": "123456789012",
 *    "Secrets": [{"Name": "prod/db", "ARN": "arn:...",          (ARN derived when absent)
 *                 "AccessDenied": false, "DecryptionFailure": false, "Deleted": false,
 *                 "Description": "...", "PrimaryRegion": "...", "OwningService": "...",
 *                 "Tags": [{"Key": "env", "Value": "prod"}],   (what Filters search; optional)
 *                 "Versions": [{"VersionId": "...",             (derived when absent)
 *                               "VersionStages": ["AWSCURRENT"],
 *                               "SecretString": "..." | "SecretBinary": "<base64>",
 *                               "CreatedDate": 1700000000.5 | "2023-11-14T22:13:20Z"}]}],
 *    "Parameters": [{"Name": "/app/prod/db/host", "Type": "String|StringList|SecureString",
 *                    "DataType": "text", "AccessDenied": false,
 *                    "Value": "..."                            (shorthand for one version) or
 *                    "Versions": [{"Version": 1, "Value": "...", "Labels": ["live"],
 *                                  "LastModifiedDate": <as CreatedDate>}]}]}
 * A derived secret ARN is arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 chars>, the
 * suffix a stable hash of the name (so restarts agree); a derived VersionId is a UUID-shaped hash.
 * Ceilings: file 16 MiB, SecretString/SecretBinary 65,536 bytes, parameter values 8,192 bytes,
 * names 2,048 bytes, 20 stages per version, 10 labels per parameter version, descriptions 2,048
 * bytes, 50 tags per secret with keys of 1 to 128 bytes and values of at most 256 (AWS's limits
 * or above).  A malformed file is STASH_EPARSE (bad JSON) or STASH_EINVAL (bad shape) with a
 * sentence naming the offending item in `why`, never a partial store.
 *
 * Lookups copy what they return (fa_secret_value, fa_param_value): the store can change under
 * them (rotate, put) and values are secrets: release the copies with the *_release functions,
 * which wipe the values.  Misses say why through enum fa_miss.
 * Ownership: fa_data_parse/fa_data_load hand back a store that the caller frees with
 * fa_data_free (NULL is fine).
 * Thread-safety: every function but fa_data_free may be called from any thread; one mutex
 * guards the store and is held only for the copy (never across I/O).
 */
#ifndef STASH_SIM_FAKE_AWS_DATA_H
#define STASH_SIM_FAKE_AWS_DATA_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

#define FA_SECRET_MAX      65536
#define FA_PARAM_VALUE_MAX 8192
#define FA_NAME_MAX        2048
#define FA_DATA_FILE_MAX   (16u << 20)
#define FA_STAGES_MAX      20
#define FA_LABELS_MAX      10
#define FA_VERSION_ID_MAX  64 /* AWS: VersionId is 32 to 64 characters */
#define FA_TAGS_MAX        50 /* AWS: at most 50 tags per secret */

/* Simulated per-item conditions, set in the data file. */
#define FA_FLAG_DENY          1u /* AccessDeniedException */
#define FA_FLAG_DECRYPT_FAILS 2u /* DecryptionFailure (secrets) */
#define FA_FLAG_DELETED       4u /* InvalidRequestException: marked for deletion (secrets) */

struct fa_data;

enum fa_miss {
    FA_MISS_NONE = 0,
    FA_MISS_ITEM,            /* no such secret or parameter */
    FA_MISS_VERSION_ID,      /* the secret has no version with that VersionId */
    FA_MISS_STAGE,           /* no version carries that VersionStage */
    FA_MISS_STAGE_NOT_ON_ID, /* both given, and the version does not carry the stage */
    FA_MISS_VERSION,         /* the parameter has no such version number */
    FA_MISS_LABEL,           /* the parameter has no version with that label */
};

struct fa_secret_value {
    char *arn;
    char *name;
    char version_id[FA_VERSION_ID_MAX + 1];
    char **stages;
    size_t nstages;
    unsigned char *value; /* NUL-terminated copy; wiped on release */
    size_t value_len;
    int binary;
    double created; /* epoch seconds */
    unsigned flags;
};

struct fa_param_value {
    char *arn;
    char *name;
    char *type;      /* String, StringList, SecureString */
    char *data_type; /* text */
    char *value;     /* plaintext; wiped on release */
    size_t value_len;
    long version;
    double modified;
    unsigned flags;
};

enum stash_err fa_data_parse(const char *json, size_t len, const char *region, struct fa_data **out,
                             struct buf *why);
enum stash_err fa_data_load(const char *path, const char *region, struct fa_data **out,
                            struct buf *why);
void fa_data_free(struct fa_data *d);

const char *fa_data_account(const struct fa_data *d);
const char *fa_data_region(const struct fa_data *d);
size_t fa_data_count_secrets(struct fa_data *d);
size_t fa_data_count_params(struct fa_data *d);

/* What BatchGetSecretValue's Filters search in one secret (no value).  Strings may be NULL
 * (absent from the data file); they point into the store and live only during the visit. */
struct fa_secret_meta {
    const char *name;
    const char *arn;
    const char *description;
    const char *primary_region;
    const char *owning_service;
    char *const *tag_keys;
    char *const *tag_values;
    size_t ntags;
    unsigned flags; /* FA_FLAG_* */
};

typedef void (*fa_secret_visit_fn)(void *ctx, const struct fa_secret_meta *m);

/* Calls visit once per secret, in the data file's order, with the store's lock held: visit
 * copies what it keeps and must not call into the store. */
void fa_data_each_secret(struct fa_data *d, fa_secret_visit_fn visit, void *ctx);

/* secret_id is a name, a full ARN or an ARN without its 6-character suffix.  version_id and stage
 * may be NULL; with neither, AWSCURRENT.  STASH_ENOTFOUND with *miss set when absent. */
enum stash_err fa_data_get_secret(struct fa_data *d, const char *secret_id, const char *version_id,
                                  const char *stage, struct fa_secret_value *out,
                                  enum fa_miss *miss);
void fa_secret_value_release(struct fa_secret_value *v);

/* name is a bare name or an SSM parameter ARN (no selector); selector is NULL, a version number
 * ("3") or a label ("live").  STASH_ENOTFOUND with *miss set when absent. */
enum stash_err fa_data_get_param(struct fa_data *d, const char *name, const char *selector,
                                 struct fa_param_value *out, enum fa_miss *miss);
void fa_param_value_release(struct fa_param_value *v);

/* Adds a version holding value and makes it AWSCURRENT; the former AWSCURRENT becomes
 * AWSPREVIOUS (the former AWSPREVIOUS loses it).  version_id NULL or "" generates one.  The new
 * id is written to new_id.  STASH_ENOTFOUND: no such secret; STASH_EINVAL: the id is taken or
 * malformed; STASH_ETOOBIG: value over FA_SECRET_MAX. */
enum stash_err fa_data_rotate(struct fa_data *d, const char *secret_id, const void *value,
                              size_t len, int binary, const char *version_id, double now,
                              char new_id[FA_VERSION_ID_MAX + 1]);

/* Adds a version (creating the parameter, of `type` or String, if absent); label, if not NULL,
 * moves to the new version.  STASH_EINVAL: bad type or label; STASH_ETOOBIG: value too long. */
enum stash_err fa_data_put_param(struct fa_data *d, const char *name, const char *value,
                                 const char *type, const char *label, double now,
                                 long *new_version);

#endif
