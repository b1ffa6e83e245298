/* libFuzzer harness: shape_value() (extension/shape.h) over a secret whose SecretString is the
 * fuzzer's bytes, asked for with jsonKey.
 *
 * Input: the bytes up to the first NUL are jsonKey (empty: raw=true instead); the rest is the
 * SecretString, put in a cached answer the way the upstream client renders one.
 * Properties (abort() when broken, on top of ASan/UBSan):
 * - the answer is 200, 400 SecretNotJson or 404 JsonKeyNotFound for jsonKey; 200 for raw, and
 *   then exactly the SecretString's bytes;
 * - the body is NUL-terminated at len; error bodies are JSON with __type and message;
 * - a 200 jsonKey answer never holds more bytes than the SecretString (it is part of it);
 * - when cJSON, strictly (nothing after the value), reads the SecretString as an object whose
 *   only member named jsonKey is a string without NUL, a 200 text answer is that string.
 * Seeds: tests/fuzz/corpus/shape.
 * Run: make fuzz && build/fuzz/fuzz/fuzz_shape tests/fuzz/corpus/shape -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "extension/shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int member_count(const cJSON *o, const char *key)
{
    int n = 0;

    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        n += c->string && strcmp(c->string, key) == 0;
    }
    return n;
}

static void check_error(const struct cache_value *v)
{
    cJSON *j = cJSON_ParseWithLength(v->body, v->len);

    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "__type")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message"))) {
        abort();
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t klen = nul ? (size_t)(nul - data) : 0;
    const char *secret = (const char *)data + (nul ? klen + 1 : 0);
    size_t slen = size - (size_t)(secret - (const char *)data);
    char *key = strndup((const char *)data, klen);
    struct buf b = BUF_INIT(0);
    struct cache_value v = {0};
    struct shape_req req = {.raw = klen == 0, .json_key = klen ? key : NULL};
    const char *ct;

    if (memchr(secret, 0, slen)) {
        free(key); /* a SecretString from AWS never holds a NUL once decoded */
        return 0;
    }
    (void)buf_puts(&b, "{\"ARN\":null,\"CreatedDate\":null,\"Name\":\"s\",\"SecretBinary\":null,"
                       "\"SecretString\":\"");
    (void)buf_put_json_escaped(&b, secret, slen);
    (void)buf_puts(&b, "\",\"VersionId\":null,\"VersionStages\":null,\"ResultMetadata\":{}}");
    v.kind = CACHE_VALUE;
    v.status = 200;
    v.body = buf_detach(&b, &v.len);
    ct = shape_value(SHAPE_SECRET, &req, &v);
    if (v.body[v.len] != '\0') {
        abort();
    }
    if (req.raw) {
        if (v.status != 200 || strcmp(ct, SHAPE_TEXT) != 0 || v.len != slen ||
            memcmp(v.body, secret, slen) != 0) {
            abort();
        }
    } else if (v.status == 200) {
        char *text = strndup(secret, slen);
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, key);

        if (v.len > slen) {
            abort();
        }
        /* (\u0000 decodes to a NUL, where cJSON's C string would end.) */
        if (cJSON_IsObject(j) && member_count(j, key) == 1 && cJSON_IsString(m) &&
            strcmp(ct, SHAPE_TEXT) == 0 && !memchr(v.body, 0, v.len) &&
            (strlen(m->valuestring) != v.len || memcmp(m->valuestring, v.body, v.len) != 0)) {
            abort();
        }
        cJSON_Delete(j);
        free(text);
    } else if (v.status == 400 || v.status == 404) {
        check_error(&v);
    } else {
        abort();
    }
    cache_value_release(&v);
    free(key);
    return 0;
}
