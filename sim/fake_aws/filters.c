/* sim/fake_aws/filters.c: BatchGetSecretValue's Filters.  Contract in filters.h. */
#include "sim/fake_aws/filters.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const s_keys[] = {
    [FA_FK_DESCRIPTION] = "description",
    [FA_FK_NAME] = "name",
    [FA_FK_TAG_KEY] = "tag-key",
    [FA_FK_TAG_VALUE] = "tag-value",
    [FA_FK_PRIMARY_REGION] = "primary-region",
    [FA_FK_OWNING_SERVICE] = "owning-service",
    [FA_FK_ALL] = "all",
};

#define NKEYS (sizeof(s_keys) / sizeof(s_keys[0]))

static int value_chars_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;

        if (!isalnum(c) && !strchr(" :_@/+=.-!", c)) {
            return 0;
        }
    }
    return 1;
}

static enum stash_err parse_one(const cJSON *jf, size_t idx, struct fa_filter *out,
                                const char **code, char *msg, size_t cap)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(jf, "Key");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(jf, "Values");
    const cJSON *v;
    size_t i;
    int bad_key;

    if (!cJSON_IsObject(jf)) {
        *code = "SerializationException";
        (void)snprintf(msg, cap, "Start of list found where not expected");
        return STASH_EINVAL;
    }
    bad_key = k && !cJSON_IsNull(k) && !cJSON_IsString(k);
    if (bad_key || (vs && !cJSON_IsNull(vs) && !cJSON_IsArray(vs))) {
        *code = "SerializationException";
        (void)snprintf(msg, cap, "%s can not be converted to a %s", bad_key ? "Key" : "Values",
                       bad_key ? "String" : "List");
        return STASH_EINVAL;
    }
    if (!k || !vs || !cJSON_IsString(k) || !cJSON_IsArray(vs)) {
        *code = "InvalidParameterException";
        (void)snprintf(msg, cap, "Every filter needs a Key and Values.");
        return STASH_EINVAL;
    }
    for (i = 0; i < NKEYS && strcmp(k->valuestring, s_keys[i]) != 0; i++) {
    }
    if (i == NKEYS) {
        *code = "ValidationException";
        (void)snprintf(msg, cap,
                       "1 validation error detected: Value '%.64s' at 'filters.%zu.member.key' "
                       "failed to satisfy constraint: Member must satisfy enum value set: "
                       "[all, name, tag-key, description, tag-value, primary-region, "
                       "owning-service]",
                       k->valuestring, idx + 1);
        return STASH_EINVAL;
    }
    out->key = (enum fa_filter_key)i;
    out->nvalues = 0;
    if (cJSON_GetArraySize(vs) < 1 || cJSON_GetArraySize(vs) > FA_FILTER_VALUES_MAX) {
        *code = "ValidationException";
        (void)snprintf(msg, cap,
                       "1 validation error detected: Value at 'filters.%zu.member.values' failed "
                       "to satisfy constraint: Member must have length %s %d",
                       idx + 1,
                       cJSON_GetArraySize(vs) < 1 ? "greater than or equal to"
                                                  : "less than or equal to",
                       cJSON_GetArraySize(vs) < 1 ? 1 : FA_FILTER_VALUES_MAX);
        return STASH_EINVAL;
    }
    cJSON_ArrayForEach(v, vs)
    {
        if (!cJSON_IsString(v)) {
            *code = "SerializationException";
            (void)snprintf(msg, cap, "Values can not be converted to a String");
            return STASH_EINVAL;
        }
        if (strlen(v->valuestring) > FA_FILTER_VALUE_MAX || !value_chars_ok(v->valuestring)) {
            *code = "ValidationException";
            (void)snprintf(msg, cap,
                           "1 validation error detected: Value at 'filters.%zu.member.values' "
                           "failed to satisfy constraint: Member must satisfy constraint: "
                           "[Member must have length less than or equal to %d, Member must "
                           "satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 "
                           ":_@\\/\\+\\=\\.\\-\\!]*$]",
                           idx + 1, FA_FILTER_VALUE_MAX);
            return STASH_EINVAL;
        }
        out->values[out->nvalues++] = v->valuestring;
    }
    return STASH_OK;
}

enum stash_err fa_filters_parse(const cJSON *j, struct fa_filters *out, const char **code,
                                char *msg, size_t cap)
{
    const cJSON *jf;
    int n;

    out->n = 0;
    if (!cJSON_IsArray(j)) {
        *code = "SerializationException";
        (void)snprintf(msg, cap, "Filters can not be converted to a List");
        return STASH_EINVAL;
    }
    n = cJSON_GetArraySize(j);
    if (n < 1 || n > FA_FILTERS_MAX) {
        *code = "ValidationException";
        (void)snprintf(msg, cap,
                       "1 validation error detected: Value at 'filters' failed to satisfy "
                       "constraint: Member must have length %s %d",
                       n < 1 ? "greater than or equal to" : "less than or equal to",
                       n < 1 ? 1 : FA_FILTERS_MAX);
        return STASH_EINVAL;
    }
    cJSON_ArrayForEach(jf, j)
    {
        if (parse_one(jf, out->n, &out->f[out->n], code, msg, cap) != STASH_OK) {
            return STASH_EINVAL;
        }
        out->n++;
    }
    return STASH_OK;
}

static int has_prefix(const char *s, const char *p, int ci)
{
    size_t n = strlen(p);

    return s && (ci ? strncasecmp(s, p, n) == 0 : strncmp(s, p, n) == 0);
}

/* Whether word (n bytes) is, ignoring case, a prefix of attr or of one of attr's words. */
static int word_in(const char *attr, const char *word, size_t n)
{
    const char *p = attr;

    if (!attr) {
        return 0;
    }
    while (*p) {
        if (strlen(p) >= n && strncasecmp(p, word, n) == 0) {
            return 1;
        }
        while (*p && isalnum((unsigned char)*p)) {
            p++;
        }
        while (*p && !isalnum((unsigned char)*p)) {
            p++;
        }
    }
    return 0;
}

static int all_words_in(const struct fa_secret_meta *m, const char *v)
{
    while (*v) {
        size_t n;
        int hit;

        while (*v == ' ') {
            v++;
        }
        n = strcspn(v, " ");
        if (!n) {
            break;
        }
        hit = word_in(m->name, v, n) || word_in(m->description, v, n) ||
              word_in(m->primary_region, v, n) || word_in(m->owning_service, v, n);
        for (size_t i = 0; !hit && i < m->ntags; i++) {
            hit = word_in(m->tag_keys[i], v, n) || word_in(m->tag_values[i], v, n);
        }
        if (!hit) {
            return 0;
        }
        v += n;
    }
    return 1;
}

static int value_hits(enum fa_filter_key key, const struct fa_secret_meta *m, const char *v)
{
    switch (key) {
    case FA_FK_DESCRIPTION:
        return has_prefix(m->description, v, 1);
    case FA_FK_NAME:
        return has_prefix(m->name, v, 0);
    case FA_FK_PRIMARY_REGION:
        return has_prefix(m->primary_region, v, 0);
    case FA_FK_OWNING_SERVICE:
        return has_prefix(m->owning_service, v, 0);
    case FA_FK_TAG_KEY:
    case FA_FK_TAG_VALUE:
        for (size_t i = 0; i < m->ntags; i++) {
            if (has_prefix(key == FA_FK_TAG_KEY ? m->tag_keys[i] : m->tag_values[i], v, 0)) {
                return 1;
            }
        }
        return 0;
    case FA_FK_ALL:
        return all_words_in(m, v);
    }
    return 0;
}

static int filter_holds(const struct fa_filter *f, const struct fa_secret_meta *m)
{
    int plain = 0;
    int plain_hit = 0;

    for (size_t i = 0; i < f->nvalues; i++) {
        const char *v = f->values[i];

        if (v[0] == '!') {
            if (value_hits(f->key, m, v + 1)) {
                return 0;
            }
            continue;
        }
        plain = 1;
        plain_hit |= value_hits(f->key, m, v);
    }
    return !plain || plain_hit;
}

int fa_filters_match(const struct fa_filters *f, const struct fa_secret_meta *m)
{
    for (size_t i = 0; i < f->n; i++) {
        if (!filter_holds(&f->f[i], m)) {
            return 0;
        }
    }
    return 1;
}
