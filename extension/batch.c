/* extension/batch.c: batch answers from single answers (see batch.h).
 *
 * A single GET's success answer is a document stash itself wrote, so its item is cut out of it
 * rather than parsed and written again: a secret's answer is the secret's object with
 * "ResultMetadata":{} last, a parameter's is {"Parameter":{...},"ResultMetadata":{}}.  Both
 * ends are checked; anything else is refused (STASH_EINVAL), never guessed at. */
#include "extension/batch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cache/aws.h"
#include "cache/upstream.h"
#include "common/log.h"
#include "common/mem.h"
#include "extension/answer.h"

#define META_TAIL     ",\"ResultMetadata\":{}}"
#define PARAMETER_TOP "{\"Parameter\":"

static int ends_with(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);

    return len >= n && memcmp(s + len - n, tail, n) == 0;
}

/* The secret's object: the answer without its "ResultMetadata" member. */
static int secret_object(const struct batch_item *it, const char **p, size_t *n)
{
    size_t tail = sizeof(META_TAIL) - 1;

    if (!it->body || it->len < 2 + tail || it->body[0] != '{' ||
        !ends_with(it->body, it->len, META_TAIL)) {
        return 0;
    }
    *p = it->body;
    *n = it->len - tail; /* the closing brace is added back by the caller */
    return 1;
}

/* The parameter's object: what "Parameter" holds. */
static int parameter_object(const struct batch_item *it, const char **p, size_t *n)
{
    size_t top = sizeof(PARAMETER_TOP) - 1;
    size_t tail = sizeof(META_TAIL) - 1;

    if (!it->body || it->len < top + 2 + tail || memcmp(it->body, PARAMETER_TOP, top) != 0 ||
        !ends_with(it->body, it->len, "}" META_TAIL) || it->body[top] != '{') {
        return 0;
    }
    *p = it->body + top;
    *n = it->len - top - tail;
    return 1;
}

static void put_string(struct buf *b, const char *s)
{
    (void)buf_putc(b, '"');
    (void)buf_put_json_escaped(b, s, strlen(s));
    (void)buf_putc(b, '"');
}

/* The message of an error answer, escaped as it came: stash's own error bodies hold no secret. */
static void put_error_message(struct buf *b, const struct batch_item *it)
{
    cJSON *root = it->body ? cJSON_ParseWithLength(it->body, it->len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");

    if (cJSON_IsString(m)) {
        put_string(b, m->valuestring);
    } else {
        (void)buf_puts(b, "null");
    }
    cJSON_Delete(root);
}

void batch_error_type(const char *body, size_t len, char *type, size_t typelen)
{
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "__type");

    (void)snprintf(type, typelen, "%s",
                   cJSON_IsString(t) && *t->valuestring ? t->valuestring : "InternalFailure");
    cJSON_Delete(root);
}

/* Appends the object `object` reads from each item answered 200, each followed by close,
 * comma-separated; 0 when an answer is not the shape `object` reads. */
static int put_values(const struct batch_item *items, size_t n,
                      int (*object)(const struct batch_item *, const char **, size_t *),
                      const char *close, struct buf *out)
{
    const char *sep = "";

    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t len;

        if (items[i].status != 200) {
            continue;
        }
        if (!object(&items[i], &p, &len)) {
            return 0;
        }
        (void)buf_puts(out, sep);
        (void)buf_append(out, p, len);
        (void)buf_puts(out, close);
        sep = ",";
    }
    return 1;
}

enum stash_err batch_render_secrets(const struct batch_item *items, size_t n, struct buf *out)
{
    const char *sep = "";
    char type[128];

    (void)buf_puts(out, "{\"SecretValues\":[");
    /* secret_object leaves out the closing brace with "ResultMetadata". */
    if (!put_values(items, n, secret_object, "}", out)) {
        return STASH_EINVAL;
    }
    (void)buf_puts(out, "],\"Errors\":[");
    for (size_t i = 0; i < n; i++) {
        if (items[i].status == 200) {
            continue;
        }
        batch_error_type(items[i].body, items[i].len, type, sizeof(type));
        (void)buf_puts(out, sep);
        (void)buf_puts(out, "{\"SecretId\":");
        put_string(out, items[i].id);
        (void)buf_puts(out, ",\"ErrorCode\":");
        put_string(out, type);
        (void)buf_puts(out, ",\"Message\":");
        put_error_message(out, &items[i]);
        (void)buf_putc(out, '}');
        sep = ",";
    }
    (void)buf_puts(out, "]}");
    return buf_error(out);
}

static int parameter_invalid(const struct batch_item *it)
{
    char type[128];

    batch_error_type(it->body, it->len, type, sizeof(type));
    return strcmp(type, "ParameterNotFound") == 0 || strcmp(type, "ParameterVersionNotFound") == 0;
}

enum stash_err batch_render_parameters(const struct batch_item *items, size_t n, struct buf *out)
{
    const char *sep = "";

    for (size_t i = 0; i < n; i++) {
        if (items[i].status != 200 && !parameter_invalid(&items[i])) {
            return STASH_EINVAL;
        }
    }
    (void)buf_puts(out, "{\"Parameters\":[");
    if (!put_values(items, n, parameter_object, "", out)) {
        return STASH_EINVAL;
    }
    (void)buf_puts(out, "],\"InvalidParameters\":[");
    for (size_t i = 0; i < n; i++) {
        if (items[i].status != 200) {
            (void)buf_puts(out, sep);
            put_string(out, items[i].id);
            sep = ",";
        }
    }
    (void)buf_puts(out, "]}");
    return buf_error(out);
}

/* ---- getting a batch through the cache ---------------------------------------------------- */

/* What batch_get does with one id. */
enum slot_state {
    SLOT_DONE,   /* answered from the cache */
    SLOT_LEAD,   /* this call leads the key's fill: answered from a batch */
    SLOT_BYPASS, /* cache off: answered from a batch, not stored */
    SLOT_JOIN,   /* another request fetches the key: joined after the batches */
};

struct slot {
    enum slot_state state;
    struct api_route route;
    struct cache_flight *flight; /* SLOT_LEAD */
    char region[AWS_REGION_MAX];
    int bad_region; /* an ARN whose region field is not a region name */
};

static uint64_t ttl_of(const struct batch_get *g)
{
    return g->ssm ? g->opts->ssm_ttl_ms : g->opts->sm_ttl_ms;
}

static unsigned flags_of(const struct batch_get *g)
{
    unsigned flags = 0;

    if (!g->opts->cache_enabled || ttl_of(g) == 0) {
        flags |= CACHE_BYPASS;
    }
    if (g->refresh) {
        flags |= CACHE_REFRESH;
    }
    return flags;
}

/* Decides each id's slot: a hit is answered here. */
static void slots_begin(const struct batch_get *g, struct slot *s)
{
    unsigned flags = flags_of(g);

    for (size_t i = 0; i < g->n; i++) {
        char key[API_KEY_MAX];
        size_t keylen;

        memset(&s[i], 0, sizeof(s[i]));
        s[i].route.kind = g->ssm ? API_ROUTE_PARAMETER : API_ROUTE_SECRET;
        s[i].route.id = g->ids[i];
        s[i].route.with_decryption = g->with_decryption;
        s[i].route.refresh = g->refresh;
        s[i].bad_region = !aws_id_region(g->ids[i], s[i].region);
        g->facts[i].service = g->ssm ? FACTS_SVC_SSM : FACTS_SVC_SECRETS_MANAGER;
        (void)snprintf(g->facts[i].name, sizeof(g->facts[i].name), "%s", g->ids[i]);
        keylen = api_cache_key(&s[i].route, key, sizeof(key));
        if (flags & CACHE_BYPASS || !keylen) {
            s[i].state = keylen ? SLOT_BYPASS : SLOT_JOIN; /* JOIN: the single path answers */
            g->facts[i].outcome = FACTS_BYPASS;
            continue;
        }
        g->facts[i].outcome =
            cache_lead(g->opts->cache, key, keylen, flags, &s[i].flight, &g->refs[i]);
        s[i].state = g->facts[i].outcome == FACTS_HIT ? SLOT_DONE
                     : s[i].flight                    ? SLOT_LEAD
                                                      : SLOT_JOIN;
    }
}

/* A parameter answer's Type is SecureString.  The answer is stash's own rendering
 * ({"Parameter":{...,"Type":...,"Value":...}}): the pattern's quotes are unescaped, so it can
 * only match the structure, never the inside of a string. */
static int secure_string(const char *body)
{
    return strstr(body, ",\"Type\":\"SecureString\",\"Value\":") != NULL;
}

/* A parameter read with decryption that is not a SecureString reads the same without it:
 * stored for those reads too, unless one is stored or being fetched already. */
static void share_plain(const struct batch_get *g, const struct slot *s, const struct cache_ref *r)
{
    struct api_route plain = s->route;
    char key[API_KEY_MAX];
    size_t keylen;
    struct cache_flight *flight = NULL;
    struct cache_ref hit = {0};
    struct cache_ref done = {0};
    struct cache_value v = {0};

    if (!g->ssm || !g->with_decryption || r->kind != CACHE_VALUE || secure_string(r->body)) {
        return;
    }
    plain.with_decryption = 0;
    plain.refresh = 0;
    keylen = api_cache_key(&plain, key, sizeof(key));
    if (!keylen || cache_lead(g->opts->cache, key, keylen, 0, &flight, &hit) != FACTS_MISS) {
        cache_ref_release(&hit);
        return;
    }
    v.kind = r->kind;
    v.status = r->status;
    v.body = xmemdup(r->body, r->len + 1);
    v.len = r->len;
    (void)cache_complete(g->opts->cache, flight, ttl_of(g), &v, &done);
    cache_ref_release(&done);
}

/* The batch call itself was refused by AWS (4xx: access, an unknown operation), not failed on
 * the way: a single call may still be allowed. */
static int refused(const struct upstream_result *call)
{
    return call->outcome == UP_AWS_ERROR && call->http_status >= 400 && call->http_status < 500;
}

/* Answers slot s (LEAD or BYPASS) with v (taken): stored as a fill's result, or handed out. */
static void answer_slot(const struct batch_get *g, struct slot *s, size_t i, struct cache_value *v)
{
    if (s->state == SLOT_LEAD) {
        g->facts[i].outcome = cache_complete(g->opts->cache, s->flight, ttl_of(g), v, &g->refs[i]);
        s->flight = NULL;
        share_plain(g, s, &g->refs[i]);
    } else {
        cache_ref_adopt(v, &g->refs[i]);
    }
    s->state = SLOT_DONE;
}

/* One single call for slot s (the batch was refused, or the id's region is not one). */
static void single_slot(const struct batch_get *g, struct slot *s, size_t i)
{
    struct cache_value v = {0};

    api_upstream(g->opts, &s->route, &g->facts[i], &v);
    answer_slot(g, s, i, &v);
}

/* One batch call for the pending slots of one region (at most the operation's limit). */
static void batch_call(const struct batch_get *g, struct slot *s, const size_t *idx, size_t k)
{
    struct upstream_item items[BATCH_MAX_SECRETS];
    struct upstream_result call = {0};
    struct facts *facts = &g->facts[idx[0]];

    memset(items, 0, sizeof(items));
    for (size_t j = 0; j < k; j++) {
        items[j].id = g->ids[idx[j]];
    }
    if (g->ssm) {
        aws_get_parameters(g->opts->aws, items, k, g->with_decryption, &call, facts);
    } else {
        aws_batch_get_secret_value(g->opts->aws, items, k, &call, facts);
    }
    if (g->single_fallback && refused(&call)) {
        LOG_WARN("batch",
                 "%s was refused (%s); fetching %zu %s one by one (allow %s to fetch them in "
                 "one call)",
                 g->ssm ? "GetParameters" : "BatchGetSecretValue", call.error_type, k,
                 g->ssm ? "parameters" : "secrets",
                 g->ssm ? "ssm:GetParameters" : "secretsmanager:BatchGetSecretValue");
        for (size_t j = 0; j < k; j++) {
            single_slot(g, &s[idx[j]], idx[j]);
        }
    } else {
        for (size_t j = 0; j < k; j++) {
            struct cache_value v = {0};

            answer_from_upstream(&items[j].r, &v);
            answer_slot(g, &s[idx[j]], idx[j], &v);
        }
    }
    for (size_t j = 0; j < k; j++) {
        upstream_result_release(&items[j].r);
    }
    upstream_result_release(&call);
}

/* The pending slots, one batch call per region. */
static void slots_fetch(const struct batch_get *g, struct slot *s)
{
    size_t idx[BATCH_MAX_SECRETS];
    size_t max = g->ssm ? BATCH_MAX_PARAMETERS : BATCH_MAX_SECRETS;

    for (size_t i = 0; i < g->n; i++) {
        size_t k = 0;

        if (s[i].state != SLOT_LEAD && s[i].state != SLOT_BYPASS) {
            continue;
        }
        if (s[i].bad_region) {
            single_slot(g, &s[i], i); /* the single path answers it as it would any GET */
            continue;
        }
        for (size_t j = i; j < g->n && k < max; j++) {
            if ((s[j].state == SLOT_LEAD || s[j].state == SLOT_BYPASS) && !s[j].bad_region &&
                strcmp(s[j].region, s[i].region) == 0) {
                idx[k++] = j;
            }
        }
        batch_call(g, s, idx, k);
    }
}

void batch_get(const struct batch_get *g)
{
    struct slot s[BATCH_MAX_SECRETS];

    if (g->n == 0 || g->n > (g->ssm ? BATCH_MAX_PARAMETERS : BATCH_MAX_SECRETS)) {
        for (size_t i = 0; i < g->n; i++) {
            struct cache_value e = {0};

            answer_error(400, "ValidationException", "too many ids for one batch", &e);
            cache_ref_adopt(&e, &g->refs[i]);
            g->facts[i].outcome = FACTS_LOCAL;
        }
        return;
    }
    slots_begin(g, s);
    slots_fetch(g, s);
    for (size_t i = 0; i < g->n; i++) {
        if (s[i].state == SLOT_JOIN) {
            api_fetch(g->opts, &s[i].route, &g->facts[i], &g->refs[i], 0);
        }
        g->facts[i].status = g->refs[i].status;
    }
}
