/* libFuzzer harness for api_route (extension/api.h), the local API's routing and validation.
 *
 * Input: lines "METHOD\nPATH\nk=v&k2=v2\nHeader: value\n...".  Properties checked, beyond no
 * crash: the status is one the API documents; a routed secret or parameter carries a non-empty
 * id within AWS's length limit, a cache key, and was authorised by a header equal to the token,
 * and shaping parameters (raw, jsonKey, split) only in the combinations api.h allows;
 * a JSON error body parses back to the same message.
 *   build/fuzz/fuzz/fuzz_request_route -dict=tests/fuzz/request_route.dict \
 *       tests/fuzz/corpus/request_route
 */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extension/api.h"

#define TOKEN "fuzz-token"

/* NOLINTNEXTLINE(readability-identifier-naming): libFuzzer entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *next_line(char **p)
{
    char *s = *p;
    char *nl;

    if (!s) {
        return NULL;
    }
    nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return s;
}

static int authorised(const struct api_request *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if ((strcasecmp(req->headers[i].key, "X-Aws-Parameters-Secrets-Token") == 0 ||
             strcasecmp(req->headers[i].key, "X-Vault-Token") == 0) &&
            req->headers[i].value && strcmp(req->headers[i].value, TOKEN) == 0) {
            return 1;
        }
    }
    return 0;
}

static void check_json(const struct api_route *r)
{
    char body[API_MESSAGE_MAX * 6 + 128];
    size_t n = api_error_json(r->error_type, r->message, body, sizeof(body));
    cJSON *j = cJSON_ParseWithLength(body, n);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");

    if (!j || !cJSON_IsString(m) || strcmp(m->valuestring, r->message) != 0) {
        abort();
    }
    cJSON_Delete(j);
}

/* NOLINTNEXTLINE(readability-identifier-naming) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_kv args[API_MAX_ARGS];
    struct api_kv headers[API_MAX_HEADERS];
    struct api_request req;
    struct api_route r;
    char key[API_MAX_URL_BYTES + 16];
    char *text = malloc(size + 1);
    char *p = text;
    char *q;
    char *line;
    char *save = NULL;

    memcpy(text, data, size);
    text[size] = '\0';
    memset(&req, 0, sizeof(req));
    req.method = next_line(&p);
    req.path = next_line(&p);
    q = next_line(&p);
    req.args = args;
    req.headers = headers;
    req.url_bytes = req.path ? strlen(req.path) : 0;
    for (char *tok = q ? strtok_r(q, "&", &save) : NULL; tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');

        if (req.nargs == API_MAX_ARGS) {
            req.too_many = 1;
            break;
        }
        if (eq) {
            *eq = '\0';
        }
        args[req.nargs].key = tok;
        args[req.nargs].value = eq ? eq + 1 : NULL;
        req.url_bytes += strlen(tok) + (eq ? strlen(eq + 1) : 0);
        req.nargs++;
    }
    while ((line = next_line(&p))) {
        char *colon = strchr(line, ':');

        if (!colon) {
            continue;
        }
        if (req.nheaders == API_MAX_HEADERS) {
            req.too_many = 1;
            break;
        }
        *colon = '\0';
        headers[req.nheaders].key = line;
        headers[req.nheaders].value = colon + 1 + (colon[1] == ' ');
        req.header_bytes += strlen(line) + strlen(headers[req.nheaders].value);
        req.nheaders++;
    }
    if (!req.method) {
        req.method = "";
    }

    api_route(&req, TOKEN, strlen(TOKEN), &r);
    switch (r.kind) {
    case API_ROUTE_PING:
        break;
    case API_ROUTE_SECRET:
    case API_ROUTE_PARAMETER:
        if (!r.id || !*r.id || strlen(r.id) > API_MAX_ID_BYTES || !authorised(&req) ||
            api_cache_key(&r, key, sizeof(key)) == 0) {
            abort();
        }
        /* The shaping parameters hold together: jsonKey (non-empty) only on secrets and never
         * with raw, split only on parameters and only with raw. */
        if ((r.shape.json_key && (r.kind != API_ROUTE_SECRET || r.shape.raw ||
                                  !*r.shape.json_key)) ||
            (r.shape.split && (r.kind != API_ROUTE_PARAMETER || !r.shape.raw))) {
            abort();
        }
        break;
    case API_ROUTE_ERROR:
        if (r.status != 400 && r.status != 401 && r.status != 404 && r.status != 405 &&
            r.status != 413) {
            abort();
        }
        if (r.error_type) {
            check_json(&r);
        } else if (r.status != 401) {
            abort();
        }
        break;
    default:
        abort();
    }
    free(text);
    return 0;
}
