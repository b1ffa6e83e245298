/* libFuzzer harness: one upstream HTTP answer (status, a response header line, body) through
 * aws_answer_from_response(), the code every Secrets Manager / SSM answer goes through.
 *
 * Input: byte 0 picks the operation (bit 0: SSM) and the status (bits 1-4, from s_status); with
 * bit 5 set, the bytes up to the first '\n' (included) are one raw header line; the rest is the
 * body.
 * Properties (abort() when broken, on top of ASan/UBSan):
 * - there is always an answer: a body, NUL-terminated, len == strlen (no NUL inside);
 * - its status is 200 (only for a 2xx upstream status) or 400..599;
 * - the body is a JSON object: on 200 with "ResultMetadata", else with string "__type" and
 *   "message";
 * - the same bytes give the same answer.
 * Seeds: tests/fuzz/corpus/aws_answer.
 * Run: make fuzz && build/fuzz/fuzz/fuzz_aws_answer tests/fuzz/corpus/aws_answer -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/aws.h"
#include "common/log.h"
#include "common/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long s_status[16] = {200, 201, 204, 400, 403, 404, 429, 500,
                                  502, 503, 504, 100, 302, 0,   599, 999};

static void check(const struct cache_value *v, long upstream)
{
    cJSON *o;
    int ok;

    if (!v->body || strlen(v->body) != v->len) {
        abort();
    }
    if (v->status == 200 ? upstream < 200 || upstream > 299 : v->status < 400 || v->status > 599) {
        abort();
    }
    o = cJSON_ParseWithLength(v->body, v->len);
    if (!cJSON_IsObject(o)) {
        abort();
    }
    if (v->status == 200) {
        ok = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "ResultMetadata"));
    } else {
        ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "__type")) &&
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "message"));
    }
    cJSON_Delete(o);
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct cache_value a;
    struct cache_value b;
    char *header = NULL;
    const uint8_t *body;
    size_t blen;
    long status;
    int ssm;

    if (!ready) {
        mem_init();
        g_log_level = LOG_LEVEL_NONE;
        ready = 1;
    }
    if (size < 1) {
        return 0;
    }
    ssm = data[0] & 1;
    status = s_status[(data[0] >> 1) & 15];
    body = data + 1;
    blen = size - 1;
    if (data[0] & 0x20) {
        const uint8_t *nl = memchr(body, '\n', blen);
        size_t hlen = nl ? (size_t)(nl - body) + 1 : blen;

        header = xstrndup((const char *)body, hlen);
        body += hlen;
        blen -= hlen;
    }
    aws_answer_from_response(ssm, status, header, body, blen, &a);
    check(&a, status);
    aws_answer_from_response(ssm, status, header, body, blen, &b);
    if (a.status != b.status || a.len != b.len || memcmp(a.body, b.body, a.len) != 0) {
        abort();
    }
    cache_value_release(&a);
    cache_value_release(&b);
    free(header);
    return 0;
}
