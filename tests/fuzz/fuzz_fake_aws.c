/* libFuzzer harness for what fake-aws parses from the network and from its data file: the
 * Authorization header, the SigV4 check around it, each operation's JSON body, and the data file.
 *
 * Input: byte 0 selects the target (its value mod 7), the rest is the text:
 *   0  fa_auth_parse: an accepted header has a non-empty key, an 8-digit date, region and
 *      service, 1..FA_AUTH_NAMES_MAX lowercase names in strictly increasing order including host,
 *      and 64 lowercase hex digits of signature.
 *   1  fa_auth_verify with the text as the Authorization value: it accepts nothing (the secret
 *      is not guessable), and refuses with 400 or 403, a code and a message.
 *   2..5  fa_ops_handle for GetSecretValue, BatchGetSecretValue, GetParameter, GetParameters on
 *      a small store: the reply is always one JSON object; 200, or 4xx with "__type" equal to the
 *      error type; a SecureString's plaintext never appears without WithDecryption.
 *   6  fa_data_parse: STASH_OK with a store, or an error with a reason and no store.
 * Run: make fuzz && build/fuzz/fuzz/fuzz_fake_aws -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "sim/fake_aws/auth.h"
#include "sim/fake_aws/data.h"
#include "sim/fake_aws/ops.h"

/* NOLINTNEXTLINE(readability-identifier-naming): libFuzzer entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char s_store[] =
    "{\"Secrets\":[{\"Name\":\"s\",\"Versions\":[{\"SecretString\":\"sv\",\"VersionStages\":"
    "[\"AWSCURRENT\"]},{\"VersionId\":\"0123456789abcdef0123456789abcdef\",\"SecretBinary\":"
    "\"AAH/\",\"VersionStages\":[\"AWSPREVIOUS\"]}]},{\"Name\":\"d\",\"AccessDenied\":true,"
    "\"Versions\":[{\"SecretString\":\"x\"}]}],\"Parameters\":[{\"Name\":\"/p\",\"Type\":"
    "\"SecureString\",\"Value\":\"PLAINTEXT-7f3a\"},{\"Name\":\"/l\",\"Type\":\"StringList\","
    "\"Versions\":[{\"Value\":\"a,b\",\"Labels\":[\"live\"]},{\"Value\":\"c\"}]}]}";

static struct fa_data *s_data;

static int is_hex_lower(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_parsed(const struct fa_auth_header *h)
{
    int host = 0;

    if (!h->access_key[0] || !h->region[0] || !h->service[0] || strlen(h->date) != 8 ||
        h->nnames == 0 || h->nnames > FA_AUTH_NAMES_MAX || strlen(h->signature) != 64) {
        abort();
    }
    for (size_t i = 0; i < 8; i++) {
        if (h->date[i] < '0' || h->date[i] > '9') {
            abort();
        }
    }
    for (size_t i = 0; i < 64; i++) {
        if (!is_hex_lower(h->signature[i])) {
            abort();
        }
    }
    for (size_t i = 0; i < h->nnames; i++) {
        if (!h->names[i][0] || (i && strcmp(h->names[i - 1], h->names[i]) >= 0)) {
            abort();
        }
        for (const char *c = h->names[i]; *c; c++) {
            if (*c >= 'A' && *c <= 'Z') {
                abort();
            }
        }
        host |= strcmp(h->names[i], "host") == 0;
    }
    if (!host) {
        abort();
    }
}

struct hdrs {
    const char *auth;
};

static const char *header(void *ctx, const char *name)
{
    struct hdrs *h = ctx;

    if (strcmp(name, "authorization") == 0) {
        return h->auth;
    }
    if (strcmp(name, "x-amz-date") == 0) {
        return "20150830T123600Z";
    }
    if (strcmp(name, "host") == 0) {
        return "127.0.0.1";
    }
    return NULL;
}

static void fuzz_verify(const char *text)
{
    static const struct fa_cred creds[] = {{"AKIDEXAMPLE", "not-guessable-by-the-fuzzer", NULL}};
    struct hdrs h = {text};
    struct fa_auth_request req;
    struct fa_auth_verdict v;

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/";
    req.query = "";
    req.header = header;
    req.header_ctx = &h;
    req.payload = "{}";
    req.payload_len = 2;
    req.region = "us-east-1";
    req.service = "secretsmanager";
    req.now_s = 1440938160;
    if (fa_auth_verify(&req, creds, 1, &v) != STASH_EINVAL ||
        (v.status != 400 && v.status != 403) || !v.type || !v.message[0]) {
        abort();
    }
}

static void fuzz_op(enum fa_op op, const char *body, size_t len)
{
    struct fa_reply r;
    cJSON *j;
    cJSON *req = cJSON_ParseWithLength(body, len);
    char *printed = req ? cJSON_PrintUnformatted(req) : NULL;
    int decrypt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "WithDecryption"));
    const cJSON *type;

    fa_ops_handle(s_data, op, body, len, &r);
    j = cJSON_ParseWithLength(r.body.data, r.body.len);
    if (!cJSON_IsObject(j)) {
        abort();
    }
    if (r.status == 200) {
        if (r.error_type) {
            abort();
        }
    } else {
        type = cJSON_GetObjectItemCaseSensitive(j, "__type");
        if (r.status < 400 || r.status > 499 || !r.error_type || !cJSON_IsString(type) ||
            strcmp(type->valuestring, r.error_type) != 0) {
            abort();
        }
    }
    /* The plaintext of /p is in a reply only if decryption was asked for, or if the request
     * itself held that text (names and selectors are echoed in errors). */
    if (strstr(r.body.data, "PLAINTEXT-7f3a") && !decrypt &&
        !(printed && strstr(printed, "PLAINTEXT-7f3a"))) {
        abort();
    }
    free(printed);
    cJSON_Delete(req);
    cJSON_Delete(j);
    fa_reply_release(&r);
}

static void fuzz_data(const char *text, size_t len)
{
    struct fa_data *d = NULL;
    struct buf why = BUF_INIT(0);
    enum stash_err rc = fa_data_parse(text, len, "us-east-1", &d, &why);

    if (rc == STASH_OK) {
        if (!d || why.len) {
            abort();
        }
    } else if (d || !why.len || (rc != STASH_EPARSE && rc != STASH_EINVAL)) {
        abort();
    }
    fa_data_free(d);
    buf_release(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum fa_op ops[] = {FA_OP_GET_SECRET_VALUE, FA_OP_BATCH_GET_SECRET_VALUE,
                                     FA_OP_GET_PARAMETER, FA_OP_GET_PARAMETERS};
    struct fa_auth_header h;
    const char *why;
    char *text;
    int target;

    if (!s_data) {
        struct buf b = BUF_INIT(0);

        mem_init();
        if (fa_data_parse(s_store, strlen(s_store), NULL, &s_data, &b)) {
            abort();
        }
        buf_release(&b);
    }
    if (size == 0) {
        return 0;
    }
    target = data[0] % 7;
    text = xmemdup(data + 1, size - 1); /* NUL-terminated copy */
    switch (target) {
    case 0:
        if (fa_auth_parse(text, &h, &why) == STASH_OK) {
            check_parsed(&h);
        } else if (!why || !why[0]) {
            abort();
        }
        break;
    case 1:
        fuzz_verify(text);
        break;
    case 6:
        fuzz_data(text, size - 1);
        break;
    default:
        fuzz_op(ops[target - 2], text, size - 1);
        break;
    }
    free(text);
    return 0;
}
