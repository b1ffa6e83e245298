/* sim/fake_aws/filters.h: the Filters of secretsmanager.BatchGetSecretValue (Secrets Manager's
 * Filter type, as ListSecrets takes it).
 *
 * A filter is {"Key": K, "Values": [V, ...]}.  Keys, as AWS's API reference lists them:
 *   name, tag-key, tag-value, primary-region, owning-service   prefix match, case-sensitive
 *   description                                                prefix match, not case-sensitive
 *   all     the value is split into words at spaces; every word must be, ignoring case, a prefix
 *           of some attribute (name, description, a tag key or value, primary region, owning
 *           service) or of one of its words (split at every character that is not a letter or a
 *           digit)
 * A value starting with '!' is negated.  fake-aws's reading where AWS's reference says no more:
 * within one filter, the plain values are alternatives (one must match, if there is any) and
 * every negated value must not match; all filters must hold.  A secret without the attribute
 * (no description, no tags) matches no plain value and every negated one.
 * Validation, as AWS's model states it: 1 to 10 filters; a Key from the list above; 1 to 10
 * Values of at most 512 characters from [a-zA-Z0-9 :_@/+=.-!].  A member of the wrong JSON type
 * is SerializationException, a value out of its limits ValidationException, a filter without
 * Key or Values InvalidParameterException.
 * Ownership: a parsed filter set points into the cJSON tree it was read from.
 * Thread-safety: pure functions, reentrant.
 */
#ifndef STASH_SIM_FAKE_AWS_FILTERS_H
#define STASH_SIM_FAKE_AWS_FILTERS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "common/err.h"
#include "sim/fake_aws/data.h"

#define FA_FILTERS_MAX       10
#define FA_FILTER_VALUES_MAX 10
#define FA_FILTER_VALUE_MAX  512

enum fa_filter_key {
    FA_FK_DESCRIPTION = 0,
    FA_FK_NAME,
    FA_FK_TAG_KEY,
    FA_FK_TAG_VALUE,
    FA_FK_PRIMARY_REGION,
    FA_FK_OWNING_SERVICE,
    FA_FK_ALL,
};

struct fa_filter {
    enum fa_filter_key key;
    const char *values[FA_FILTER_VALUES_MAX];
    size_t nvalues;
};

struct fa_filters {
    struct fa_filter f[FA_FILTERS_MAX];
    size_t n;
};

/* Reads the request's Filters member j.  STASH_OK and *out, or STASH_EINVAL with AWS's error
 * code in *code (a static string) and its message in msg (cap bytes). */
enum stash_err fa_filters_parse(const cJSON *j, struct fa_filters *out, const char **code,
                                char *msg, size_t cap);

/* Whether the secret m passes every filter. */
int fa_filters_match(const struct fa_filters *f, const struct fa_secret_meta *m);

#endif
