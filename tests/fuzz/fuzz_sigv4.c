/* libFuzzer harness for cache/sigv4.c: fake-aws feeds it whatever a client sent, so any input
 * must give STASH_OK, STASH_EINVAL or STASH_ETOOBIG, never a crash.
 *
 * Input: byte 0 selects normalize_path (bit 0) and whether a token header is added (bit 1); the
 * rest is split on '\n' into method, path, query, then "name:value" header lines up to an empty
 * line, then the body.
 * Properties (abort() when broken, on top of ASan/UBSan), for every accepted input:
 * - the canonical request has the SigV4 shape: method, a URI and a query made only of unreserved
 *   bytes, '/', '=', '&' and %XX escapes with upper-case hex, "name:value" lines with lower-case
 *   names in strictly increasing order matching the signed-header line, and 64 hex digits last;
 * - canonical forms are fixed points: signing the canonical query (and, without path
 *   normalisation, the canonical URI) again gives the same canonical request;
 * - the string to sign ends with the SHA-256 of the canonical request; the signature is the one
 *   in the Authorization value, and the same when computed twice.
 * Run: make fuzz && build/fuzz/fuzz/fuzz_sigv4 -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/sigv4.h"
#include "common/mem.h"

/* NOLINTNEXTLINE(readability-identifier-naming): libFuzzer entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 16
#define MAX_TEXT    4096

static int is_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int is_canonical_char(unsigned char c, const char *extra)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~' || (c && strchr(extra, c));
}

/* Checks one line made of canonical characters and %XX escapes. */
static void check_encoded(const char *s, size_t n, const char *extra)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !is_hex_upper(s[i + 1]) || !is_hex_upper(s[i + 2])) {
                abort();
            }
            i += 2;
        } else if (!is_canonical_char((unsigned char)s[i], extra)) {
            abort();
        }
    }
}

/* Returns the start of line k (0-based) of s, and its length in *len. */
static const char *line_at(const char *s, size_t k, size_t *len)
{
    const char *p = s;
    const char *nl;

    while (k--) {
        p = strchr(p, '\n');
        if (!p) {
            abort();
        }
        p++;
    }
    nl = strchr(p, '\n');
    *len = nl ? (size_t)(nl - p) : strlen(p);
    return p;
}

static void check_shape(const struct buf *creq)
{
    const char *s = creq->data;
    const char *l;
    struct buf names = BUF_INIT(0);
    char prev[MAX_TEXT] = "";
    size_t len;
    size_t signed_len;
    size_t nlines = 1;
    size_t k;
    size_t i;

    for (i = 0; i < creq->len; i++) {
        nlines += s[i] == '\n';
    }
    /* method, uri, query, >= 1 header, "", signed list, hash */
    if (nlines < 7) {
        abort();
    }
    l = line_at(s, 1, &len);
    if (len == 0 || l[0] != '/') {
        abort();
    }
    check_encoded(l, len, "/");
    l = line_at(s, 2, &len);
    check_encoded(l, len, "=&");
    if (line_at(s, nlines - 3, &len) && len != 0) {
        abort();
    }
    l = line_at(s, nlines - 1, &len);
    if (len != 64) {
        abort();
    }
    for (i = 0; i < 64; i++) {
        if (!((l[i] >= '0' && l[i] <= '9') || (l[i] >= 'a' && l[i] <= 'f'))) {
            abort();
        }
    }
    for (k = 3; k < nlines - 3; k++) {
        const char *colon;
        char name[MAX_TEXT];
        size_t nlen;

        l = line_at(s, k, &len);
        colon = memchr(l, ':', len);
        if (!colon) {
            abort();
        }
        nlen = (size_t)(colon - l);
        if (nlen == 0 || nlen >= sizeof(name)) {
            abort();
        }
        memcpy(name, l, nlen);
        name[nlen] = '\0';
        for (i = 0; i < nlen; i++) {
            if (name[i] >= 'A' && name[i] <= 'Z') {
                abort();
            }
        }
        if (prev[0] && strcmp(prev, name) >= 0) {
            abort(); /* sorted, each name once */
        }
        memcpy(prev, name, nlen + 1);
        if (buf_printf(&names, "%s%s", k > 3 ? ";" : "", name) != STASH_OK) {
            abort();
        }
    }
    l = line_at(s, nlines - 2, &signed_len);
    if (signed_len != names.len || memcmp(l, names.data, signed_len) != 0) {
        abort();
    }
    buf_release(&names);
}

static char *take_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    char *s = xstrndup(*p, (size_t)(stop - *p));

    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 1;
    const char *end = (const char *)data + size;
    struct sigv4_header h[MAX_HEADERS + 3];
    char *owned[MAX_HEADERS + 4] = {0};
    size_t nowned = 0;
    struct sigv4_input in = {0};
    struct buf creq = BUF_INIT(MAX_TEXT * 4);
    struct buf creq2 = BUF_INIT(MAX_TEXT * 4);
    struct buf sts = BUF_INIT(MAX_TEXT);
    struct buf authz = BUF_INIT(MAX_TEXT);
    char sig[SIGV4_HEX_LEN];
    char sig2[SIGV4_HEX_LEN];
    char hash[SIGV4_HEX_LEN];
    size_t nh = 0;
    size_t i;
    enum stash_err rc;

    if (size < 1 || size > MAX_TEXT) {
        return 0;
    }
    in.normalize_path = data[0] & 1;
    in.method = owned[nowned++] = take_line(&p, end);
    in.path = owned[nowned++] = take_line(&p, end);
    in.query = owned[nowned++] = take_line(&p, end);
    h[nh].name = "host";
    h[nh++].value = "example.amazonaws.com";
    h[nh].name = "x-amz-date";
    h[nh++].value = "20150830T123600Z";
    if (data[0] & 2) {
        h[nh].name = "X-Amz-Security-Token";
        h[nh++].value = "token/+=";
    }
    while (p < end && *p != '\n' && nh < MAX_HEADERS && nowned < MAX_HEADERS + 4) {
        char *line = take_line(&p, end);
        char *colon = strchr(line, ':');

        owned[nowned++] = line;
        if (colon) {
            *colon = '\0';
            h[nh].name = line;
            h[nh++].value = colon + 1;
        }
    }
    if (p < end && *p == '\n') {
        p++;
    }
    in.headers = h;
    in.nheaders = nh;
    in.payload = p;
    in.payload_len = (size_t)(end - p);
    in.region = "us-east-1";
    in.service = "service";
    in.amz_date = "20150830T123600Z";
    in.access_key_id = "AKIDEXAMPLE";
    in.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    rc = sigv4_canonical_request(&in, &creq);
    if (rc != STASH_OK) {
        if (rc != STASH_EINVAL && rc != STASH_ETOOBIG) {
            abort();
        }
        /* The other entry points must agree that the input is unusable. */
        if (sigv4_signature(&in, sig) == STASH_OK && rc == STASH_EINVAL) {
            abort();
        }
        goto out;
    }
    check_shape(&creq);

    /* Fixed points: the canonical query (and URI without normalisation) sign the same. */
    {
        size_t qlen;
        size_t ulen;
        const char *q = line_at(creq.data, 2, &qlen);
        const char *u = line_at(creq.data, 1, &ulen);
        char *q2 = xstrndup(q, qlen);
        char *u2 = xstrndup(u, ulen);
        struct sigv4_input again = in;

        again.query = q2;
        if (!in.normalize_path) {
            again.path = u2;
        }
        if (sigv4_canonical_request(&again, &creq2) != STASH_OK ||
            strcmp(creq.data, creq2.data) != 0) {
            abort();
        }
        free(q2);
        free(u2);
    }

    if (sigv4_string_to_sign(&in, &sts) != STASH_OK) {
        abort();
    }
    sigv4_sha256_hex(creq.data, creq.len, hash);
    if (sts.len < 64 || strcmp(sts.data + sts.len - 64, hash) != 0) {
        abort();
    }
    if (sigv4_signature(&in, sig) != STASH_OK || sigv4_signature(&in, sig2) != STASH_OK ||
        strcmp(sig, sig2) != 0) {
        abort();
    }
    if (sigv4_authorization(&in, &authz) != STASH_OK ||
        strcmp(authz.data + authz.len - 64, sig) != 0) {
        abort();
    }
out:
    for (i = 0; i < nowned; i++) {
        free(owned[i]);
    }
    buf_release(&creq);
    buf_release(&creq2);
    buf_release(&sts);
    buf_release(&authz);
    return 0;
}
