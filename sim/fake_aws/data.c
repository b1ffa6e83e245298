/* sim/fake_aws/data.c: the secrets and parameters fake-aws serves, from a JSON data file. */
#include "sim/fake_aws/data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/mem.h"
#include "sim/fake_aws/b64.h"

#define VERSIONS_KEPT 100 /* AWS keeps about 100 versions of a secret or parameter */

struct secret_version {
    char id[FA_VERSION_ID_MAX + 1];
    char **stages;
    size_t nstages;
    unsigned char *value; /* NUL-terminated */
    size_t len;
    int binary;
    double created;
};

struct secret {
    char *name;
    char *arn;
    struct secret_version *v;
    size_t nv;
    unsigned flags;
    /* Metadata BatchGetSecretValue's Filters search; NULL / 0 when the data file has none. */
    char *description;
    char *primary_region;
    char *owning_service;
    char **tag_keys; /* ntags each, Value "" when the file gives none */
    char **tag_values;
    size_t ntags;
};

struct param_version {
    long version;
    char *value; /* NUL-terminated */
    size_t len;
    char **labels;
    size_t nlabels;
    double modified;
};

struct param {
    char *name;
    char *arn;
    char *type;
    char *data_type;
    struct param_version *v;
    size_t nv;
    unsigned flags;
};

struct fa_data {
    pthread_mutex_t lock;
    char *account;
    char *region;
    struct secret *s;
    size_t ns;
    struct param *p;
    size_t np;
    unsigned long generated; /* ids generated so far, mixed into the next one */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;

    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A UUID-shaped id (version 4 layout) that is a function of seed text and a number. */
static void make_uuid(const char *seed, unsigned long n, char out[FA_VERSION_ID_MAX + 1])
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, seed, strlen(seed));
    uint64_t a = mix64(h ^ (n * 0x9e3779b97f4a7c15ull));
    uint64_t b = mix64(a + 0x632be59bd9b4e019ull);

    (void)snprintf(out, FA_VERSION_ID_MAX + 1, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
                   (unsigned)(a >> 16) & 0xffffu, (unsigned)a & 0xfffu,
                   0x8000u | ((unsigned)(b >> 48) & 0x3fffu),
                   (unsigned long long)(b & 0xffffffffffffull));
}

static char *secret_arn(const char *region, const char *account, const char *name)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t h = mix64(fnv1a(0xcbf29ce484222325ull, name, strlen(name)));
    char suffix[7];
    struct buf b = BUF_INIT(0);

    for (int i = 0; i < 6; i++) {
        suffix[i] = chars[h % (sizeof(chars) - 1)];
        h /= sizeof(chars) - 1;
    }
    suffix[6] = '\0';
    (void)buf_printf(&b, "arn:aws:secretsmanager:%s:%s:secret:%s-%s", region, account, name,
                     suffix);
    return buf_detach(&b, NULL);
}

static char *param_arn(const char *region, const char *account, const char *name)
{
    struct buf b = BUF_INIT(0);

    (void)buf_printf(&b, "arn:aws:ssm:%s:%s:parameter%s%s", region, account,
                     name[0] == '/' ? "" : "/", name);
    return buf_detach(&b, NULL);
}

static double now_s(void)
{
    return (double)clock_real_ms() / 1000.0;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static char **strv_dup(char *const *v, size_t n)
{
    char **c = xcalloc(n ? n : 1, sizeof(*c));

    for (size_t i = 0; i < n; i++) {
        c[i] = xstrdup(v[i]);
    }
    return c;
}

static int strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Removes s from v (keeping order); returns 1 if it was there. */
static int strv_remove(char **v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(v[i], s) == 0) {
            free(v[i]);
            memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(*v));
            (*n)--;
            return 1;
        }
    }
    return 0;
}

static void strv_add(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = xstrdup(s);
}

static void secret_version_release(struct secret_version *v)
{
    strv_free(v->stages, v->nstages);
    xfree_secret(v->value, v->len + 1);
}

static void secret_release(struct secret *s)
{
    for (size_t i = 0; i < s->nv; i++) {
        secret_version_release(&s->v[i]);
    }
    free(s->v);
    free(s->name);
    free(s->arn);
    free(s->description);
    free(s->primary_region);
    free(s->owning_service);
    strv_free(s->tag_keys, s->ntags);
    strv_free(s->tag_values, s->ntags);
}

static void param_version_release(struct param_version *v)
{
    strv_free(v->labels, v->nlabels);
    xfree_secret(v->value, v->len + 1);
}

static void param_release(struct param *p)
{
    for (size_t i = 0; i < p->nv; i++) {
        param_version_release(&p->v[i]);
    }
    free(p->v);
    free(p->name);
    free(p->arn);
    free(p->type);
    free(p->data_type);
}

void fa_data_free(struct fa_data *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->ns; i++) {
        secret_release(&d->s[i]);
    }
    for (size_t i = 0; i < d->np; i++) {
        param_release(&d->p[i]);
    }
    free(d->s);
    free(d->p);
    free(d->account);
    free(d->region);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* A VersionId or label must be printable ASCII without the characters that would break our
 * selectors and query strings; AWS's own rules are narrower still. */
static int id_chars_ok(const char *s)
{
    for (; *s; s++) {
        if (*s <= ' ' || *s >= 0x7f || *s == ':' || *s == '/' || *s == '"' || *s == '\\') {
            return 0;
        }
    }
    return 1;
}

static int version_id_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= 32 && n <= FA_VERSION_ID_MAX && id_chars_ok(s);
}

/* AWS: a label is 1 to 100 characters, may not start with a digit (it would read as a version
 * number) nor with "aws" or "ssm". */
static int label_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 100 || (s[0] >= '0' && s[0] <= '9') || !id_chars_ok(s)) {
        return 0;
    }
    return strncasecmp(s, "aws", 3) != 0 && strncasecmp(s, "ssm", 3) != 0;
}

static int type_ok(const char *t)
{
    return strcmp(t, "String") == 0 || strcmp(t, "StringList") == 0 ||
           strcmp(t, "SecureString") == 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

static enum stash_err parse_date(const cJSON *j, double *out, struct buf *why, const char *what)
{
    uint64_t ms;

    if (!j) {
        *out = now_s();
        return STASH_OK;
    }
    if (cJSON_IsNumber(j) && j->valuedouble >= 0) {
        *out = j->valuedouble;
        return STASH_OK;
    }
    if (cJSON_IsString(j) && clock_parse_iso(j->valuestring, &ms) == 0) {
        *out = (double)ms / 1000.0;
        return STASH_OK;
    }
    (void)buf_printf(why, "%s: a date must be epoch seconds or \"YYYY-MM-DDTHH:MM:SS[.fff]Z\"",
                     what);
    return STASH_EINVAL;
}

static unsigned parse_flags(const cJSON *o)
{
    unsigned f = 0;

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "AccessDenied"))) {
        f |= FA_FLAG_DENY;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "DecryptionFailure"))) {
        f |= FA_FLAG_DECRYPT_FAILS;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "Deleted"))) {
        f |= FA_FLAG_DELETED;
    }
    return f;
}

/* A string member that, when present, must be a non-empty string of at most max bytes. */
static enum stash_err get_string(const cJSON *o, const char *key, size_t max, const char **out,
                                 struct buf *why, const char *what)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = NULL;
    if (!j) {
        return STASH_OK;
    }
    if (!cJSON_IsString(j) || !j->valuestring[0] || strlen(j->valuestring) > max) {
        (void)buf_printf(why, "%s: \"%s\" must be a string of 1 to %zu bytes", what, key, max);
        return STASH_EINVAL;
    }
    *out = j->valuestring;
    return STASH_OK;
}

/* A version's VersionStages; a lone version without them is AWSCURRENT.  A stage may be on one
 * version only. */
static enum stash_err load_stages(struct secret *s, struct secret_version *v, const cJSON *stages,
                                  size_t count, struct buf *why)
{
    const cJSON *j;

    if (!stages && count == 1) {
        strv_add(&v->stages, &v->nstages, "AWSCURRENT");
        return STASH_OK;
    }
    if (stages && !cJSON_IsArray(stages)) {
        (void)buf_printf(why, "secret %s: VersionStages must be an array of strings", s->name);
        return STASH_EINVAL;
    }
    cJSON_ArrayForEach(j, stages)
    {
        if (!cJSON_IsString(j) || !j->valuestring[0] || strlen(j->valuestring) > 256 ||
            v->nstages >= FA_STAGES_MAX) {
            (void)buf_printf(why,
                             "secret %s: VersionStages must hold 1 to 20 strings of 1 to "
                             "256 characters",
                             s->name);
            return STASH_EINVAL;
        }
        for (size_t i = 0; i < s->nv; i++) {
            if (strv_has(s->v[i].stages, s->v[i].nstages, j->valuestring)) {
                (void)buf_printf(why, "secret %s: stage %s is on two versions", s->name,
                                 j->valuestring);
                return STASH_EINVAL;
            }
        }
        strv_add(&v->stages, &v->nstages, j->valuestring);
    }
    return STASH_OK;
}

static enum stash_err load_secret_version(struct secret *s, const cJSON *jv, size_t idx,
                                          size_t count, struct buf *why)
{
    struct secret_version *v = &s->v[s->nv];
    const char *id;
    const char *str;
    const char *bin;
    enum stash_err rc;

    memset(v, 0, sizeof(*v));
    if (!cJSON_IsObject(jv)) {
        (void)buf_printf(why, "secret %s: each version must be an object", s->name);
        return STASH_EINVAL;
    }
    rc = get_string(jv, "VersionId", FA_VERSION_ID_MAX, &id, why, s->name);
    if (rc) {
        return rc;
    }
    if (id && !version_id_ok(id)) {
        (void)buf_printf(why,
                         "secret %s: VersionId \"%s\" must be 32 to 64 characters without "
                         "spaces, ':' or '/'",
                         s->name, id);
        return STASH_EINVAL;
    }
    if (id) {
        (void)snprintf(v->id, sizeof(v->id), "%s", id);
    } else {
        make_uuid(s->name, idx, v->id);
    }
    for (size_t i = 0; i < s->nv; i++) {
        if (strcmp(s->v[i].id, v->id) == 0) {
            (void)buf_printf(why, "secret %s: VersionId %s appears twice", s->name, v->id);
            return STASH_EINVAL;
        }
    }

    rc = get_string(jv, "SecretString", FA_SECRET_MAX, &str, why, s->name);
    if (rc) {
        return rc;
    }
    rc = get_string(jv, "SecretBinary", FA_SECRET_MAX / 3 * 4 + 4, &bin, why, s->name);
    if (rc) {
        return rc;
    }
    if (!str == !bin) {
        (void)buf_printf(why,
                         "secret %s: version %s needs exactly one of SecretString and "
                         "SecretBinary",
                         s->name, v->id);
        return STASH_EINVAL;
    }
    if (str) {
        v->len = strlen(str);
        v->value = xmemdup(str, v->len);
    } else {
        v->value = xmalloc(b64_decoded_max(strlen(bin)) + 1);
        if (b64_decode(bin, strlen(bin), v->value, &v->len) || v->len == 0 ||
            v->len > FA_SECRET_MAX) {
            xfree_secret(v->value, b64_decoded_max(strlen(bin)) + 1);
            v->value = NULL;
            v->len = 0;
            (void)buf_printf(why,
                             "secret %s: version %s: SecretBinary must be base64 of 1 to "
                             "%d bytes",
                             s->name, v->id, FA_SECRET_MAX);
            return STASH_EINVAL;
        }
        v->value[v->len] = '\0';
        v->binary = 1;
    }
    s->nv++; /* from here on, secret_release frees what this version holds */

    rc = parse_date(cJSON_GetObjectItemCaseSensitive(jv, "CreatedDate"), &v->created, why, s->name);
    if (rc) {
        return rc;
    }
    return load_stages(s, v, cJSON_GetObjectItemCaseSensitive(jv, "VersionStages"), count, why);
}

/* Description, PrimaryRegion, OwningService and Tags (AWS's limits: description 2048
 * characters, 50 tags, keys 1 to 128, values 0 to 256). */
static enum stash_err load_secret_meta(struct secret *s, const cJSON *js, struct buf *why)
{
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(js, "Tags");
    const cJSON *t;
    const char *v;
    enum stash_err rc;

    rc = get_string(js, "Description", 2048, &v, why, s->name);
    if (rc) {
        return rc;
    }
    s->description = v ? xstrdup(v) : NULL;
    rc = get_string(js, "PrimaryRegion", 64, &v, why, s->name);
    if (rc) {
        return rc;
    }
    s->primary_region = v ? xstrdup(v) : NULL;
    rc = get_string(js, "OwningService", 128, &v, why, s->name);
    if (rc) {
        return rc;
    }
    s->owning_service = v ? xstrdup(v) : NULL;
    if (!tags) {
        return STASH_OK;
    }
    if (!cJSON_IsArray(tags) || cJSON_GetArraySize(tags) > FA_TAGS_MAX) {
        (void)buf_printf(why, "secret %s: \"Tags\" must be an array of at most %d tags", s->name,
                         FA_TAGS_MAX);
        return STASH_EINVAL;
    }
    s->tag_keys = xcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof(char *));
    s->tag_values = xcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof(char *));
    cJSON_ArrayForEach(t, tags)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(t, "Key");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(t, "Value");

        if (!cJSON_IsString(k) || !k->valuestring[0] || strlen(k->valuestring) > 128 ||
            (val && (!cJSON_IsString(val) || strlen(val->valuestring) > 256))) {
            (void)buf_printf(why,
                             "secret %s: each tag is {\"Key\": 1 to 128 bytes, \"Value\": at "
                             "most 256 bytes}",
                             s->name);
            return STASH_EINVAL;
        }
        s->tag_keys[s->ntags] = xstrdup(k->valuestring);
        s->tag_values[s->ntags] = xstrdup(val ? val->valuestring : "");
        s->ntags++;
    }
    return STASH_OK;
}

static enum stash_err load_secret(struct fa_data *d, const cJSON *js, struct buf *why)
{
    struct secret *s = &d->s[d->ns];
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive(js, "Versions");
    const cJSON *jv;
    const char *name;
    const char *arn;
    size_t count;
    size_t idx = 0;
    int current = 0;
    enum stash_err rc;

    memset(s, 0, sizeof(*s));
    if (!cJSON_IsObject(js)) {
        (void)buf_puts(why, "Secrets: each entry must be an object");
        return STASH_EINVAL;
    }
    rc = get_string(js, "Name", 512, &name, why, "secret");
    if (rc) {
        return rc;
    }
    if (!name) {
        (void)buf_puts(why, "secret: \"Name\" is required");
        return STASH_EINVAL;
    }
    rc = get_string(js, "ARN", FA_NAME_MAX, &arn, why, name);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < d->ns; i++) {
        if (strcmp(d->s[i].name, name) == 0) {
            (void)buf_printf(why, "secret %s appears twice", name);
            return STASH_EINVAL;
        }
    }
    if (!cJSON_IsArray(versions) || (count = (size_t)cJSON_GetArraySize(versions)) == 0 ||
        count > VERSIONS_KEPT) {
        (void)buf_printf(why, "secret %s: \"Versions\" must be an array of 1 to %d versions", name,
                         VERSIONS_KEPT);
        return STASH_EINVAL;
    }
    s->name = xstrdup(name);
    s->arn = arn ? xstrdup(arn) : secret_arn(d->region, d->account, name);
    s->flags = parse_flags(js);
    s->v = xcalloc(count, sizeof(*s->v));
    d->ns++; /* from here on, fa_data_free frees what this secret holds */
    rc = load_secret_meta(s, js, why);
    if (rc) {
        return rc;
    }
    cJSON_ArrayForEach(jv, versions)
    {
        rc = load_secret_version(s, jv, idx++, count, why);
        if (rc) {
            return rc;
        }
    }
    for (size_t i = 0; i < s->nv; i++) {
        current |= strv_has(s->v[i].stages, s->v[i].nstages, "AWSCURRENT");
    }
    if (!current) {
        (void)buf_printf(why, "secret %s: no version carries AWSCURRENT", name);
        return STASH_EINVAL;
    }
    return STASH_OK;
}

static enum stash_err load_param_version(struct param *p, const cJSON *jv, long deflt,
                                         struct buf *why)
{
    struct param_version *v = &p->v[p->nv];
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(jv, "Version");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(jv, "Labels");
    const cJSON *jval = cJSON_GetObjectItemCaseSensitive(jv, "Value");
    const cJSON *j;
    enum stash_err rc;

    memset(v, 0, sizeof(*v));
    if (!cJSON_IsObject(jv)) {
        (void)buf_printf(why, "parameter %s: each version must be an object", p->name);
        return STASH_EINVAL;
    }
    v->version = deflt;
    if (jn) {
        if (!cJSON_IsNumber(jn) || jn->valuedouble < 1 || jn->valuedouble > 1e15 ||
            jn->valuedouble != (double)(long)jn->valuedouble) {
            (void)buf_printf(why, "parameter %s: Version must be a whole number from 1", p->name);
            return STASH_EINVAL;
        }
        v->version = (long)jn->valuedouble;
    }
    for (size_t i = 0; i < p->nv; i++) {
        if (p->v[i].version >= v->version) {
            (void)buf_printf(why, "parameter %s: versions must be listed in increasing order",
                             p->name);
            return STASH_EINVAL;
        }
    }
    if (!cJSON_IsString(jval) || strlen(jval->valuestring) > FA_PARAM_VALUE_MAX ||
        !jval->valuestring[0]) {
        (void)buf_printf(why, "parameter %s: Value must be a string of 1 to %d bytes", p->name,
                         FA_PARAM_VALUE_MAX);
        return STASH_EINVAL;
    }
    v->len = strlen(jval->valuestring);
    v->value = xmemdup(jval->valuestring, v->len);
    p->nv++;
    rc = parse_date(cJSON_GetObjectItemCaseSensitive(jv, "LastModifiedDate"), &v->modified, why,
                    p->name);
    if (rc) {
        return rc;
    }
    if (labels && !cJSON_IsArray(labels)) {
        (void)buf_printf(why, "parameter %s: Labels must be an array of strings", p->name);
        return STASH_EINVAL;
    }
    cJSON_ArrayForEach(j, labels)
    {
        if (!cJSON_IsString(j) || !label_ok(j->valuestring) || v->nlabels >= FA_LABELS_MAX) {
            (void)buf_printf(why,
                             "parameter %s: bad label (1 to 100 characters, not starting "
                             "with a digit, \"aws\" or \"ssm\"; at most 10)",
                             p->name);
            return STASH_EINVAL;
        }
        for (size_t i = 0; i < p->nv; i++) {
            if (strv_has(p->v[i].labels, p->v[i].nlabels, j->valuestring)) {
                (void)buf_printf(why, "parameter %s: label %s is on two versions", p->name,
                                 j->valuestring);
                return STASH_EINVAL;
            }
        }
        strv_add(&v->labels, &v->nlabels, j->valuestring);
    }
    return STASH_OK;
}

static enum stash_err load_param(struct fa_data *d, const cJSON *jp, struct buf *why)
{
    struct param *p = &d->p[d->np];
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive(jp, "Versions");
    const cJSON *jv;
    const char *name;
    const char *type;
    const char *data_type;
    const char *arn;
    size_t count;
    long n = 1;
    enum stash_err rc;

    memset(p, 0, sizeof(*p));
    if (!cJSON_IsObject(jp)) {
        (void)buf_puts(why, "Parameters: each entry must be an object");
        return STASH_EINVAL;
    }
    rc = get_string(jp, "Name", FA_NAME_MAX, &name, why, "parameter");
    if (!rc && !name) {
        (void)buf_puts(why, "parameter: \"Name\" is required");
        rc = STASH_EINVAL;
    }
    if (!rc) {
        rc = get_string(jp, "Type", 16, &type, why, name);
    }
    if (!rc) {
        rc = get_string(jp, "DataType", 64, &data_type, why, name);
    }
    if (!rc) {
        rc = get_string(jp, "ARN", FA_NAME_MAX, &arn, why, name);
    }
    if (rc) {
        return rc;
    }
    if (strchr(name, ':') || strchr(name, ' ')) {
        (void)buf_printf(why, "parameter %s: a name may not hold ':' or spaces", name);
        return STASH_EINVAL;
    }
    if (type && !type_ok(type)) {
        (void)buf_printf(why, "parameter %s: Type must be String, StringList or SecureString",
                         name);
        return STASH_EINVAL;
    }
    for (size_t i = 0; i < d->np; i++) {
        if (strcmp(d->p[i].name, name) == 0) {
            (void)buf_printf(why, "parameter %s appears twice", name);
            return STASH_EINVAL;
        }
    }
    if (versions) {
        if (!cJSON_IsArray(versions) || (count = (size_t)cJSON_GetArraySize(versions)) == 0 ||
            count > VERSIONS_KEPT || cJSON_GetObjectItemCaseSensitive(jp, "Value")) {
            (void)buf_printf(why, "parameter %s: give \"Value\" or \"Versions\" (1 to %d)", name,
                             VERSIONS_KEPT);
            return STASH_EINVAL;
        }
    } else {
        count = 1;
    }
    p->name = xstrdup(name);
    p->arn = arn ? xstrdup(arn) : param_arn(d->region, d->account, name);
    p->type = xstrdup(type ? type : "String");
    p->data_type = xstrdup(data_type ? data_type : "text");
    p->flags = parse_flags(jp);
    p->v = xcalloc(count, sizeof(*p->v));
    d->np++;
    if (!versions) {
        return load_param_version(p, jp, 1, why);
    }
    cJSON_ArrayForEach(jv, versions)
    {
        rc = load_param_version(p, jv, p->nv ? p->v[p->nv - 1].version + 1 : n, why);
        if (rc) {
            return rc;
        }
    }
    return STASH_OK;
}

static void wipe_strings(cJSON *j)
{
    cJSON *c;

    if (!j) {
        return;
    }
    if (cJSON_IsString(j) && j->valuestring) {
        mem_wipe(j->valuestring, strlen(j->valuestring));
    }
    cJSON_ArrayForEach(c, j)
    {
        wipe_strings(c);
    }
}

enum stash_err fa_data_parse(const char *json, size_t len, const char *region, struct fa_data **out,
                             struct buf *why)
{
    struct fa_data *d = NULL;
    cJSON *root = NULL;
    const cJSON *secrets;
    const cJSON *params;
    const cJSON *j;
    const char *account;
    enum stash_err rc = STASH_EPARSE;

    *out = NULL;
    if (len > FA_DATA_FILE_MAX) {
        (void)buf_printf(why, "data file is over %u bytes", FA_DATA_FILE_MAX);
        return STASH_ETOOBIG;
    }
    root = cJSON_ParseWithLength(json, len);
    if (!root) {
        (void)buf_puts(why, "data file is not valid JSON");
        goto out;
    }
    rc = STASH_EINVAL;
    if (!cJSON_IsObject(root)) {
        (void)buf_puts(why, "data file must hold a JSON object");
        goto out;
    }
    d = xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    d->region = xstrdup(region && region[0] ? region : "us-east-1");
    if (get_string(root, "AccountId", 12, &account, why, "data file")) {
        goto out;
    }
    d->account = xstrdup(account ? account : "123456789012");

    secrets = cJSON_GetObjectItemCaseSensitive(root, "Secrets");
    params = cJSON_GetObjectItemCaseSensitive(root, "Parameters");
    if ((secrets && !cJSON_IsArray(secrets)) || (params && !cJSON_IsArray(params))) {
        (void)buf_puts(why, "\"Secrets\" and \"Parameters\" must be arrays");
        goto out;
    }
    d->s = xcalloc((size_t)cJSON_GetArraySize(secrets) + 1, sizeof(*d->s));
    d->p = xcalloc((size_t)cJSON_GetArraySize(params) + 1, sizeof(*d->p));
    cJSON_ArrayForEach(j, secrets)
    {
        if (load_secret(d, j, why)) {
            goto out;
        }
    }
    cJSON_ArrayForEach(j, params)
    {
        if (load_param(d, j, why)) {
            goto out;
        }
    }
    *out = d;
    d = NULL;
    rc = STASH_OK;
out:
    fa_data_free(d);
    /* The tree holds every secret of the file: wipe its strings before cJSON frees them. */
    wipe_strings(root);
    cJSON_Delete(root);
    return rc;
}

enum stash_err fa_data_load(const char *path, const char *region, struct fa_data **out,
                            struct buf *why)
{
    struct buf text = BUF_INIT(FA_DATA_FILE_MAX);
    char chunk[8192];
    ssize_t n;
    int fd;
    enum stash_err rc = STASH_EIO;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char e[128];

        (void)buf_printf(why, "cannot open %s: %s", path,
                         strerror_r(errno, e, sizeof(e)) == 0 ? e : "error");
        return STASH_EIO;
    }
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            (void)buf_printf(why, "cannot read %s", path);
            goto out;
        }
        if (buf_append(&text, chunk, (size_t)n)) {
            (void)buf_printf(why, "%s is over %u bytes", path, FA_DATA_FILE_MAX);
            rc = STASH_ETOOBIG;
            goto out;
        }
    }
    rc = fa_data_parse(text.data ? text.data : "", text.len, region, out, why);
out:
    close(fd);
    mem_wipe(chunk, sizeof(chunk));
    buf_release_secret(&text);
    return rc;
}

const char *fa_data_account(const struct fa_data *d)
{
    return d->account;
}

const char *fa_data_region(const struct fa_data *d)
{
    return d->region;
}

size_t fa_data_count_secrets(struct fa_data *d)
{
    size_t n;

    pthread_mutex_lock(&d->lock);
    n = d->ns;
    pthread_mutex_unlock(&d->lock);
    return n;
}

size_t fa_data_count_params(struct fa_data *d)
{
    size_t n;

    pthread_mutex_lock(&d->lock);
    n = d->np;
    pthread_mutex_unlock(&d->lock);
    return n;
}

void fa_data_each_secret(struct fa_data *d, fa_secret_visit_fn visit, void *ctx)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->ns; i++) {
        const struct secret *s = &d->s[i];
        struct fa_secret_meta m = {
            .name = s->name,
            .arn = s->arn,
            .description = s->description,
            .primary_region = s->primary_region,
            .owning_service = s->owning_service,
            .tag_keys = s->tag_keys,
            .tag_values = s->tag_values,
            .ntags = s->ntags,
            .flags = s->flags,
        };

        visit(ctx, &m);
    }
    pthread_mutex_unlock(&d->lock);
}

/* ---- lookups ---------------------------------------------------------------------------- */

/* Caller holds the lock. */
static struct secret *find_secret(struct fa_data *d, const char *id)
{
    size_t idlen = strlen(id);

    for (size_t i = 0; i < d->ns; i++) {
        struct secret *s = &d->s[i];
        size_t alen = strlen(s->arn);

        if (strcmp(s->name, id) == 0 || strcmp(s->arn, id) == 0) {
            return s;
        }
        /* A partial ARN: the full one without "-" and the six random characters. */
        if (strncmp(id, "arn:", 4) == 0 && alen == idlen + 7 && strncmp(s->arn, id, idlen) == 0 &&
            s->arn[idlen] == '-') {
            return s;
        }
    }
    return NULL;
}

enum stash_err fa_data_get_secret(struct fa_data *d, const char *secret_id, const char *version_id,
                                  const char *stage, struct fa_secret_value *out,
                                  enum fa_miss *miss)
{
    struct secret *s;
    struct secret_version *v = NULL;
    enum stash_err rc = STASH_ENOTFOUND;

    memset(out, 0, sizeof(*out));
    *miss = FA_MISS_NONE;
    if (version_id && !version_id[0]) {
        version_id = NULL;
    }
    if (!stage || !stage[0]) {
        stage = version_id ? NULL : "AWSCURRENT";
    }
    pthread_mutex_lock(&d->lock);
    s = find_secret(d, secret_id);
    if (!s) {
        *miss = FA_MISS_ITEM;
        goto out;
    }
    for (size_t i = 0; i < s->nv && !v; i++) {
        if (version_id ? strcmp(s->v[i].id, version_id) == 0
                       : strv_has(s->v[i].stages, s->v[i].nstages, stage)) {
            v = &s->v[i];
        }
    }
    if (!v) {
        *miss = version_id ? FA_MISS_VERSION_ID : FA_MISS_STAGE;
        goto out;
    }
    if (version_id && stage && !strv_has(v->stages, v->nstages, stage)) {
        *miss = FA_MISS_STAGE_NOT_ON_ID;
        goto out;
    }
    out->arn = xstrdup(s->arn);
    out->name = xstrdup(s->name);
    (void)snprintf(out->version_id, sizeof(out->version_id), "%s", v->id);
    out->stages = strv_dup(v->stages, v->nstages);
    out->nstages = v->nstages;
    out->value = xmemdup(v->value, v->len);
    out->value_len = v->len;
    out->binary = v->binary;
    out->created = v->created;
    out->flags = s->flags;
    rc = STASH_OK;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void fa_secret_value_release(struct fa_secret_value *v)
{
    if (!v) {
        return;
    }
    free(v->arn);
    free(v->name);
    strv_free(v->stages, v->nstages);
    xfree_secret(v->value, v->value_len + 1);
    memset(v, 0, sizeof(*v));
}

/* Caller holds the lock.  name may be an SSM ARN: arn:aws:ssm:<region>:<acct>:parameter/<name>,
 * where a name that starts with '/' keeps it ("parameter/app/x" is "/app/x"). */
static struct param *find_param(struct fa_data *d, const char *name)
{
    const char *bare = NULL;

    if (strncmp(name, "arn:", 4) == 0) {
        bare = strstr(name, ":parameter/");
        bare = bare ? bare + strlen(":parameter") : NULL;
    }
    for (size_t i = 0; i < d->np; i++) {
        struct param *p = &d->p[i];

        if (strcmp(p->name, name) == 0 || strcmp(p->arn, name) == 0) {
            return p;
        }
        if (bare && (strcmp(p->name, bare) == 0 || strcmp(p->name, bare + 1) == 0)) {
            return p;
        }
    }
    return NULL;
}

static int all_digits(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

enum stash_err fa_data_get_param(struct fa_data *d, const char *name, const char *selector,
                                 struct fa_param_value *out, enum fa_miss *miss)
{
    struct param *p;
    struct param_version *v = NULL;
    enum stash_err rc = STASH_ENOTFOUND;

    memset(out, 0, sizeof(*out));
    *miss = FA_MISS_NONE;
    pthread_mutex_lock(&d->lock);
    p = find_param(d, name);
    if (!p) {
        *miss = FA_MISS_ITEM;
        goto out;
    }
    if (!selector || !selector[0]) {
        v = &p->v[p->nv - 1];
    } else if (all_digits(selector)) {
        long want = strlen(selector) > 15 ? -1 : strtol(selector, NULL, 10);

        for (size_t i = 0; i < p->nv && !v; i++) {
            if (p->v[i].version == want) {
                v = &p->v[i];
            }
        }
        *miss = v ? FA_MISS_NONE : FA_MISS_VERSION;
    } else {
        for (size_t i = 0; i < p->nv && !v; i++) {
            if (strv_has(p->v[i].labels, p->v[i].nlabels, selector)) {
                v = &p->v[i];
            }
        }
        *miss = v ? FA_MISS_NONE : FA_MISS_LABEL;
    }
    if (!v) {
        goto out;
    }
    out->arn = xstrdup(p->arn);
    out->name = xstrdup(p->name);
    out->type = xstrdup(p->type);
    out->data_type = xstrdup(p->data_type);
    out->value = xmemdup(v->value, v->len);
    out->value_len = v->len;
    out->version = v->version;
    out->modified = v->modified;
    out->flags = p->flags;
    rc = STASH_OK;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void fa_param_value_release(struct fa_param_value *v)
{
    if (!v) {
        return;
    }
    free(v->arn);
    free(v->name);
    free(v->type);
    free(v->data_type);
    xfree_secret(v->value, v->value_len + 1);
    memset(v, 0, sizeof(*v));
}

/* ---- changes ---------------------------------------------------------------------------- */

/* Drops the oldest version that no stage points at, so a long rotation loop stays bounded. */
static void secret_trim(struct secret *s)
{
    for (size_t i = 0; s->nv > VERSIONS_KEPT && i < s->nv; i++) {
        if (s->v[i].nstages == 0) {
            secret_version_release(&s->v[i]);
            memmove(s->v + i, s->v + i + 1, (s->nv - i - 1) * sizeof(*s->v));
            s->nv--;
            return;
        }
    }
}

enum stash_err fa_data_rotate(struct fa_data *d, const char *secret_id, const void *value,
                              size_t len, int binary, const char *version_id, double now,
                              char new_id[FA_VERSION_ID_MAX + 1])
{
    struct secret *s;
    struct secret_version *v;
    enum stash_err rc = STASH_ENOTFOUND;

    new_id[0] = '\0';
    if (len == 0 || len > FA_SECRET_MAX) {
        return len ? STASH_ETOOBIG : STASH_EINVAL;
    }
    if (version_id && version_id[0] && !version_id_ok(version_id)) {
        return STASH_EINVAL;
    }
    pthread_mutex_lock(&d->lock);
    s = find_secret(d, secret_id);
    if (!s) {
        goto out;
    }
    if (version_id && version_id[0]) {
        (void)snprintf(new_id, FA_VERSION_ID_MAX + 1, "%s", version_id);
    } else {
        make_uuid(s->name, 1000000ul + d->generated++ + (unsigned long)(now * 1000), new_id);
    }
    rc = STASH_EINVAL;
    for (size_t i = 0; i < s->nv; i++) {
        if (strcmp(s->v[i].id, new_id) == 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < s->nv; i++) {
        struct secret_version *o = &s->v[i];

        strv_remove(o->stages, &o->nstages, "AWSPREVIOUS");
        if (strv_remove(o->stages, &o->nstages, "AWSCURRENT")) {
            strv_add(&o->stages, &o->nstages, "AWSPREVIOUS");
        }
    }
    s->v = xrealloc(s->v, (s->nv + 1) * sizeof(*s->v));
    v = &s->v[s->nv++];
    memset(v, 0, sizeof(*v));
    (void)snprintf(v->id, sizeof(v->id), "%s", new_id);
    v->value = xmemdup(value, len);
    v->len = len;
    v->binary = binary;
    v->created = now;
    strv_add(&v->stages, &v->nstages, "AWSCURRENT");
    secret_trim(s);
    rc = STASH_OK;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

enum stash_err fa_data_put_param(struct fa_data *d, const char *name, const char *value,
                                 const char *type, const char *label, double now, long *new_version)
{
    struct param *p;
    struct param_version *v;
    size_t len = strlen(value);

    *new_version = 0;
    if (len > FA_PARAM_VALUE_MAX) {
        return STASH_ETOOBIG;
    }
    if (!len || !name[0] || strlen(name) > FA_NAME_MAX || strchr(name, ':') || strchr(name, ' ') ||
        (type && type[0] && !type_ok(type)) || (label && label[0] && !label_ok(label))) {
        return STASH_EINVAL;
    }
    pthread_mutex_lock(&d->lock);
    p = find_param(d, name);
    if (!p) {
        d->p = xrealloc(d->p, (d->np + 1) * sizeof(*d->p));
        p = &d->p[d->np++];
        memset(p, 0, sizeof(*p));
        p->name = xstrdup(name);
        p->arn = param_arn(d->region, d->account, name);
        p->type = xstrdup(type && type[0] ? type : "String");
        p->data_type = xstrdup("text");
    } else if (type && type[0] && strcmp(type, p->type) != 0) {
        free(p->type);
        p->type = xstrdup(type);
    }
    if (label && label[0]) {
        for (size_t i = 0; i < p->nv; i++) {
            strv_remove(p->v[i].labels, &p->v[i].nlabels, label);
        }
    }
    if (p->nv >= VERSIONS_KEPT) {
        param_version_release(&p->v[0]);
        memmove(p->v, p->v + 1, (p->nv - 1) * sizeof(*p->v));
        p->nv--;
    }
    p->v = xrealloc(p->v, (p->nv + 1) * sizeof(*p->v));
    v = &p->v[p->nv];
    memset(v, 0, sizeof(*v));
    v->version = p->nv ? p->v[p->nv - 1].version + 1 : 1;
    v->value = xmemdup(value, len);
    v->len = len;
    v->modified = now;
    if (label && label[0]) {
        strv_add(&v->labels, &v->nlabels, label);
    }
    p->nv++;
    *new_version = v->version;
    pthread_mutex_unlock(&d->lock);
    return STASH_OK;
}
