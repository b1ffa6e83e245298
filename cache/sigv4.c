/* cache/sigv4.c: AWS Signature Version 4 (header form), as in cache/sigv4.h.
 *
 * Canonical request:
 *   METHOD \n canonical-uri \n canonical-query \n (name:value \n)* \n signed;headers \n
 * hex(sha256(body)) canonical-uri: with normalize_path (every service but S3) dot segments and
 * empty segments are removed from the raw path (RFC 3986 5.2.4, plus AWS's "//" rule), then every
 * byte outside A-Z a-z 0-9 - _ . ~ and '/' is percent-encoded, '%' included: the path of the
 * request line is already URI-encoded once, so non-S3 services see it encoded twice (what botocore
 * and aws-c-auth do).  Without normalize_path (S3) each segment is decoded once and re-encoded once
 * (so %2F stays an encoded slash, and sloppy escapes come out canonical). canonical-query:
 * parameters split on '&' (empty ones dropped) and at the first '=', each side decoded then encoded
 * with the unreserved set only ('+' stays a plus: it becomes %2B), sorted by encoded name then
 * encoded value, byte-wise. headers: names lower-cased and sorted; values trimmed, inner whitespace
 * runs folded to one space; repeated names joined with ',' in the order given. The payload hash is
 * always the SHA-256 of the payload (no UNSIGNED-PAYLOAD: S3 only).
 *
 * Everything that may carry the session token (the canonical request, header copies) is wiped
 * when freed; kSecret and the derived keys are wiped before return.
 */
#include "cache/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* Ceiling on our own intermediate strings: far above any real request (MHD and libcurl cap
 * headers well below it), low enough that hostile input cannot make us allocate without bound. */
#define SIGV4_TEXT_MAX ((size_t)1024 * 1024)
#define SIGV4_KEY_LEN  32

static const char s_hex_lower[] = "0123456789abcdef";
static const char s_hex_upper[] = "0123456789ABCDEF";

struct sig_header {
    char *name;  /* lower-cased copy */
    char *value; /* trimmed, folded copy; may be the session token */
    size_t value_len;
    size_t order; /* position in the input, so repeated names keep their order */
};

struct query_param {
    char *key; /* encoded */
    char *value;
};

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Appends s percent-encoded: unreserved bytes (and '/' when keep_slash) as they are. */
static enum stash_err uri_encode(struct buf *out, const char *s, size_t n, int keep_slash)
{
    enum stash_err rc = STASH_OK;
    size_t i;
    size_t run = 0;

    for (i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[3];

        if (is_unreserved(c) || (keep_slash && c == '/')) {
            run++;
            continue;
        }
        rc = buf_append(out, s + i - run, run);
        run = 0;
        esc[0] = '%';
        esc[1] = s_hex_upper[c >> 4];
        esc[2] = s_hex_upper[c & 15];
        if (!rc) {
            rc = buf_append(out, esc, 3);
        }
    }
    if (!rc) {
        rc = buf_append(out, s + n - run, run);
    }
    return rc;
}

/* Replaces %XX escapes by their byte.  STASH_EINVAL on a '%' not followed by two hex digits. */
static enum stash_err uri_decode(struct buf *out, const char *s, size_t n)
{
    enum stash_err rc = STASH_OK;
    size_t i;

    for (i = 0; i < n && !rc; i++) {
        if (s[i] != '%') {
            rc = buf_putc(out, s[i]);
            continue;
        }
        if (i + 2 >= n) {
            return STASH_EINVAL;
        }
        {
            int hi = hex_value((unsigned char)s[i + 1]);
            int lo = hi < 0 ? -1 : hex_value((unsigned char)s[i + 2]);

            if (lo < 0) {
                return STASH_EINVAL;
            }
            rc = buf_putc(out, (char)(hi * 16 + lo));
            i += 2;
        }
    }
    return rc;
}

/* Decodes then encodes s (only the unreserved set stays as it is). */
static enum stash_err uri_reencode(struct buf *out, const char *s, size_t n)
{
    struct buf raw = BUF_INIT(SIGV4_TEXT_MAX);
    enum stash_err rc;

    rc = uri_decode(&raw, s, n);
    if (!rc) {
        rc = uri_encode(out, raw.data ? raw.data : "", raw.len, 0);
    }
    buf_release(&raw);
    return rc;
}

/* The canonical URI.  With normalize: segments are what lies between '/'; empty and "."
 * segments go, ".." drops the segment before it; the leading '/' stays, and a trailing '/' stays
 * when the path ends with one and anything is left. */
static enum stash_err canonical_uri(struct buf *out, const char *path, int normalize)
{
    size_t n = path ? strlen(path) : 0;
    size_t *starts = NULL;
    size_t *lens = NULL;
    size_t nseg = 0;
    size_t i;
    size_t pos;
    enum stash_err rc;

    if (n == 0) {
        return buf_putc(out, '/');
    }
    if (path[0] != '/') {
        return STASH_EINVAL;
    }
    if (!normalize) {
        /* Segment by segment, so an encoded slash (%2F) stays one. */
        rc = STASH_OK;
        pos = 0;
        while (pos <= n && !rc) {
            const char *slash = memchr(path + pos, '/', n - pos);
            size_t end = slash ? (size_t)(slash - path) : n;

            rc = uri_reencode(out, path + pos, end - pos);
            if (!rc && slash) {
                rc = buf_putc(out, '/');
            }
            pos = end + 1;
        }
        return rc;
    }
    /* At most n/2 + 1 non-empty segments fit in n bytes that start with '/'. */
    starts = xcalloc(n / 2 + 1, sizeof(*starts));
    lens = xcalloc(n / 2 + 1, sizeof(*lens));
    pos = 0;
    while (pos < n) {
        size_t end = pos;
        size_t len;

        while (end < n && path[end] != '/') {
            end++;
        }
        len = end - pos;
        if (len == 0 || (len == 1 && path[pos] == '.')) {
            /* empty or "." */
        } else if (len == 2 && path[pos] == '.' && path[pos + 1] == '.') {
            if (nseg) {
                nseg--;
            }
        } else {
            starts[nseg] = pos;
            lens[nseg] = len;
            nseg++;
        }
        pos = end + 1;
    }
    rc = buf_putc(out, '/');
    for (i = 0; i < nseg && !rc; i++) {
        if (i) {
            rc = buf_putc(out, '/');
        }
        if (!rc) {
            rc = uri_encode(out, path + starts[i], lens[i], 0);
        }
    }
    if (!rc && nseg && path[n - 1] == '/') {
        rc = buf_putc(out, '/');
    }
    free(starts);
    free(lens);
    return rc;
}

static int query_param_cmp(const void *a, const void *b)
{
    const struct query_param *x = a;
    const struct query_param *y = b;
    int c = strcmp(x->key, y->key);

    return c ? c : strcmp(x->value, y->value);
}

static enum stash_err canonical_query(struct buf *out, const char *query)
{
    size_t n = query ? strlen(query) : 0;
    size_t cap = 0;
    size_t np = 0;
    struct query_param *params = NULL;
    size_t pos = 0;
    size_t i;
    enum stash_err rc = STASH_OK;

    for (i = 0; i < n; i++) {
        cap += query[i] == '&';
    }
    cap++;
    params = xcalloc(cap, sizeof(*params));
    while (pos < n && !rc) {
        const char *p = query + pos;
        const char *amp = memchr(p, '&', n - pos);
        size_t len = amp ? (size_t)(amp - p) : n - pos;
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        struct buf k = BUF_INIT(SIGV4_TEXT_MAX);
        struct buf v = BUF_INIT(SIGV4_TEXT_MAX);

        pos += len + 1;
        if (len == 0) {
            continue;
        }
        rc = uri_reencode(&k, p, klen);
        if (!rc && eq) {
            rc = uri_reencode(&v, eq + 1, len - klen - 1);
        }
        if (rc) {
            buf_release(&k);
            buf_release(&v);
            break;
        }
        params[np].key = buf_detach(&k, NULL);
        params[np].value = buf_detach(&v, NULL);
        np++;
    }
    if (rc) {
        goto out;
    }
    qsort(params, np, sizeof(*params), query_param_cmp);
    for (i = 0; i < np && !rc; i++) {
        rc = buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].key, params[i].value);
    }
out:
    for (i = 0; i < np; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
    return rc;
}

static int sig_header_cmp(const void *a, const void *b)
{
    const struct sig_header *x = a;
    const struct sig_header *y = b;
    int c = strcmp(x->name, y->name);

    if (c) {
        return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

/* A header name must be a non-empty token: no controls, spaces, ':' or DEL. */
static int header_name_ok(const char *s)
{
    if (!s || !*s) {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c == 0x7f || c == ':') {
            return 0;
        }
    }
    return 1;
}

/* Trims value and folds each inner run of whitespace into one space. */
static char *fold_value(const char *v, size_t *len)
{
    size_t n = strlen(v);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    size_t i = 0;

    while (i < n && is_space((unsigned char)v[i])) {
        i++;
    }
    while (i < n) {
        if (is_space((unsigned char)v[i])) {
            while (i < n && is_space((unsigned char)v[i])) {
                i++;
            }
            if (i < n) {
                out[o++] = ' ';
            }
            continue;
        }
        out[o++] = v[i++];
    }
    out[o] = '\0';
    *len = o;
    return out;
}

static void sig_headers_free(struct sig_header *h, size_t n)
{
    size_t i;

    if (!h) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(h[i].name);
        if (h[i].value) {
            xfree_secret(h[i].value, h[i].value_len + 1);
        }
    }
    free(h);
}

/* Appends the canonical header block (each "name:value\n") to creq and the signed header list to
 * signed_list (either may be NULL). */
static enum stash_err canonical_headers(const struct sigv4_input *in, struct buf *creq,
                                        struct buf *signed_list)
{
    struct sig_header *h = NULL;
    size_t i;
    enum stash_err rc = STASH_OK;

    if (in->nheaders == 0) {
        return STASH_OK;
    }
    if (!in->headers) {
        return STASH_EINVAL;
    }
    h = xcalloc(in->nheaders, sizeof(*h));
    for (i = 0; i < in->nheaders; i++) {
        const char *name = in->headers[i].name;
        size_t j;

        if (!header_name_ok(name) || !in->headers[i].value) {
            rc = STASH_EINVAL;
            goto out;
        }
        h[i].name = xstrdup(name);
        for (j = 0; h[i].name[j]; j++) {
            char c = h[i].name[j];

            if (c >= 'A' && c <= 'Z') {
                h[i].name[j] = (char)(c - 'A' + 'a');
            }
        }
        h[i].value = fold_value(in->headers[i].value, &h[i].value_len);
        h[i].order = i;
    }
    qsort(h, in->nheaders, sizeof(*h), sig_header_cmp);
    for (i = 0; i < in->nheaders && !rc; i++) {
        int first = i == 0 || strcmp(h[i - 1].name, h[i].name) != 0;
        int last = i + 1 == in->nheaders || strcmp(h[i + 1].name, h[i].name) != 0;

        if (creq) {
            if (first) {
                rc = buf_printf(creq, "%s:", h[i].name);
            } else {
                rc = buf_putc(creq, ',');
            }
            if (!rc) {
                rc = buf_append(creq, h[i].value, h[i].value_len);
            }
            if (!rc && last) {
                rc = buf_putc(creq, '\n');
            }
        }
        if (!rc && signed_list && first) {
            rc = buf_printf(signed_list, "%s%s", i ? ";" : "", h[i].name);
        }
    }
out:
    sig_headers_free(h, in->nheaders);
    return rc;
}

static int amz_date_ok(const char *d)
{
    size_t i;

    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') {
        return 0;
    }
    for (i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9')) {
            return 0;
        }
    }
    return 1;
}

static int scope_part_ok(const char *s)
{
    if (!s || !*s) {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c == 0x7f || c == '/') {
            return 0;
        }
    }
    return 1;
}

static enum stash_err check_input(const struct sigv4_input *in)
{
    if (!in || !in->method || !*in->method || !amz_date_ok(in->amz_date) ||
        !scope_part_ok(in->region) || !scope_part_ok(in->service)) {
        return STASH_EINVAL;
    }
    if (in->payload_len && !in->payload) {
        return STASH_EINVAL;
    }
    return STASH_OK;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = s_hex_lower[d[i] >> 4];
        out[2 * i + 1] = s_hex_lower[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HEX_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    /* EVP_Digest with SHA-256 cannot fail short of a broken OpenSSL; abort rather than hand out
     * a hash that is not one. */
    if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != SIGV4_KEY_LEN) {
        abort();
    }
    hex_encode(md, mdlen, out);
}

/* The canonical request into creq (reset first), and the signed header list into signed_list
 * when not NULL. */
static enum stash_err build_canonical(const struct sigv4_input *in, struct buf *creq,
                                      struct buf *signed_list)
{
    struct buf sl = BUF_INIT(SIGV4_TEXT_MAX);
    char hash[SIGV4_HEX_LEN];
    size_t i;
    enum stash_err rc;

    buf_reset(creq);
    rc = check_input(in);
    for (i = 0; !rc && in->method[i]; i++) {
        unsigned char c = (unsigned char)in->method[i];

        if (c >= 'a' && c <= 'z') {
            c = (unsigned char)(c - 'a' + 'A');
        }
        rc = buf_append(creq, &c, 1);
    }
    if (!rc) {
        rc = buf_putc(creq, '\n');
    }
    if (!rc) {
        rc = canonical_uri(creq, in->path, in->normalize_path);
    }
    if (!rc) {
        rc = buf_putc(creq, '\n');
    }
    if (!rc) {
        rc = canonical_query(creq, in->query);
    }
    if (!rc) {
        rc = buf_putc(creq, '\n');
    }
    if (!rc) {
        rc = canonical_headers(in, creq, &sl);
    }
    if (!rc) {
        rc = buf_putc(creq, '\n');
    }
    if (!rc) {
        rc = buf_append(creq, sl.data ? sl.data : "", sl.len);
    }
    if (!rc) {
        sigv4_sha256_hex(in->payload, in->payload_len, hash);
        rc = buf_printf(creq, "\n%s", hash);
    }
    if (!rc && signed_list) {
        buf_reset(signed_list);
        rc = buf_append(signed_list, sl.data ? sl.data : "", sl.len);
    }
    buf_release(&sl);
    return rc;
}

static enum stash_err build_sts(const struct sigv4_input *in, struct buf *sts,
                                struct buf *signed_list)
{
    struct buf creq = BUF_INIT(SIGV4_TEXT_MAX);
    char hash[SIGV4_HEX_LEN];
    enum stash_err rc;

    buf_reset(sts);
    rc = build_canonical(in, &creq, signed_list);
    if (rc) {
        goto out;
    }
    sigv4_sha256_hex(creq.data, creq.len, hash);
    rc = buf_printf(sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", in->amz_date,
                    in->amz_date, in->region, in->service, hash);
out:
    buf_release_secret(&creq);
    return rc;
}

static enum stash_err hmac_sha256(const unsigned char *key, size_t keylen, const void *data,
                                  size_t len, unsigned char out[SIGV4_KEY_LEN])
{
    unsigned int outlen = 0;

    if (keylen > (size_t)0x7fffffff) {
        return STASH_EINVAL;
    }
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) || outlen != SIGV4_KEY_LEN) {
        return STASH_EIO;
    }
    return STASH_OK;
}

/* signature = HMAC(kSigning, sts), kSigning from the chain kSecret -> kDate -> kRegion ->
 * kService -> "aws4_request".  Every key is wiped, on every path. */
static enum stash_err sign_sts(const struct sigv4_input *in, const struct buf *sts,
                               char out[SIGV4_HEX_LEN])
{
    unsigned char k1[SIGV4_KEY_LEN];
    unsigned char k2[SIGV4_KEY_LEN];
    unsigned char sig[SIGV4_KEY_LEN];
    char *ksecret = NULL;
    size_t slen;
    enum stash_err rc = STASH_EINVAL;

    out[0] = '\0';
    if (!in->secret_access_key) {
        goto out;
    }
    slen = strlen(in->secret_access_key);
    ksecret = xmalloc(slen + 5);
    memcpy(ksecret, "AWS4", 5);
    memcpy(ksecret + 4, in->secret_access_key, slen + 1);
    rc = hmac_sha256((unsigned char *)ksecret, slen + 4, in->amz_date, 8, k1); /* kDate */
    if (!rc) {
        rc = hmac_sha256(k1, sizeof(k1), in->region, strlen(in->region), k2); /* kRegion */
    }
    if (!rc) {
        rc = hmac_sha256(k2, sizeof(k2), in->service, strlen(in->service), k1); /* kService */
    }
    if (!rc) {
        rc = hmac_sha256(k1, sizeof(k1), "aws4_request", 12, k2); /* kSigning */
    }
    if (!rc) {
        rc = hmac_sha256(k2, sizeof(k2), sts->data, sts->len, sig);
    }
    if (!rc) {
        hex_encode(sig, sizeof(sig), out);
    }
out:
    if (ksecret) {
        xfree_secret(ksecret, slen + 5);
    }
    mem_wipe(k1, sizeof(k1));
    mem_wipe(k2, sizeof(k2));
    mem_wipe(sig, sizeof(sig));
    return rc;
}

enum stash_err sigv4_canonical_request(const struct sigv4_input *in, struct buf *out)
{
    return build_canonical(in, out, NULL);
}

enum stash_err sigv4_string_to_sign(const struct sigv4_input *in, struct buf *out)
{
    return build_sts(in, out, NULL);
}

enum stash_err sigv4_signature(const struct sigv4_input *in, char out[SIGV4_HEX_LEN])
{
    struct buf sts = BUF_INIT(SIGV4_TEXT_MAX);
    enum stash_err rc;

    out[0] = '\0';
    rc = build_sts(in, &sts, NULL);
    if (!rc) {
        rc = sign_sts(in, &sts, out);
    }
    buf_release(&sts);
    return rc;
}

enum stash_err sigv4_authorization(const struct sigv4_input *in, struct buf *out)
{
    struct buf sts = BUF_INIT(SIGV4_TEXT_MAX);
    struct buf sl = BUF_INIT(SIGV4_TEXT_MAX);
    char sig[SIGV4_HEX_LEN];
    enum stash_err rc;

    buf_reset(out);
    rc = build_sts(in, &sts, &sl);
    if (!rc && !scope_part_ok(in->access_key_id)) {
        rc = STASH_EINVAL;
    }
    if (!rc) {
        rc = sign_sts(in, &sts, sig);
    }
    if (!rc) {
        rc = buf_printf(out,
                        "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
                        "SignedHeaders=%s, Signature=%s",
                        in->access_key_id, in->amz_date, in->region, in->service,
                        sl.data ? sl.data : "", sig);
    }
    buf_release(&sts);
    buf_release(&sl);
    return rc;
}
