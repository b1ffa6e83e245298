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

enum stash_err batch_render_secrets(const struct batch_item *items, size_t n, struct buf *out)
{
    const char *sep = "";
    char type[128];

    (void)buf_puts(out, "{\"SecretValues\":[");
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t len;

        if (items[i].status != 200) {
            continue;
        }
        if (!secret_object(&items[i], &p, &len)) {
            return STASH_EINVAL;
        }
        (void)buf_puts(out, sep);
        (void)buf_append(out, p, len);
        (void)buf_putc(out, '}');
        sep = ",";
    }
    (void)buf_puts(out, "],\"Errors\":[");
    sep = "";
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
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t len;

        if (items[i].status != 200) {
            continue;
        }
        if (!parameter_object(&items[i], &p, &len)) {
            return STASH_EINVAL;
        }
        (void)buf_puts(out, sep);
        (void)buf_append(out, p, len);
        sep = ",";
    }
    (void)buf_puts(out, "],\"InvalidParameters\":[");
    sep = "";
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
