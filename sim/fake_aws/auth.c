/* sim/fake_aws/auth.c: SigV4 (header form) verification for fake-aws, with AWS's refusals. */
#include "sim/fake_aws/auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cache/sigv4.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

static const char s_bad_signature[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";
static const char s_bad_token[] = "The security token included in the request is invalid.";

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copies [p, p+n) into out (of size cap) if it fits and is non-empty. */
static int copy_field(char *out, size_t cap, const char *p, size_t n)
{
    if (n == 0 || n >= cap) {
        return 0;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

static enum stash_err parse_credential(const char *p, size_t n, struct fa_auth_header *out,
                                       const char **why)
{
    const char *parts[5];
    size_t lens[5];
    size_t k = 0;
    const char *start = p;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            if (k == 5) {
                k = 6;
                break;
            }
            parts[k] = start;
            lens[k] = (size_t)(p + i - start);
            k++;
            start = p + i + 1;
        }
    }
    if (k != 5) {
        *why = "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request.";
        return STASH_EINVAL;
    }
    if (!copy_field(out->access_key, sizeof(out->access_key), parts[0], lens[0]) ||
        !copy_field(out->date, sizeof(out->date), parts[1], lens[1]) || lens[1] != 8 ||
        !copy_field(out->region, sizeof(out->region), parts[2], lens[2]) ||
        !copy_field(out->service, sizeof(out->service), parts[3], lens[3]) ||
        lens[4] != strlen("aws4_request") || memcmp(parts[4], "aws4_request", lens[4]) != 0) {
        *why = "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request.";
        return STASH_EINVAL;
    }
    for (int i = 0; i < 8; i++) {
        if (!is_digit(out->date[i])) {
            *why = "Credential scope date must be YYYYMMDD.";
            return STASH_EINVAL;
        }
    }
    return STASH_OK;
}

static enum stash_err parse_signed_headers(const char *p, size_t n, struct fa_auth_header *out,
                                           const char **why)
{
    const char *start = p;
    int host = 0;

    *why = "SignedHeaders must be lowercase header names, sorted, unique, ';'-separated, "
           "including host.";
    for (size_t i = 0; i <= n; i++) {
        size_t len;

        if (i < n && p[i] != ';') {
            char c = p[i];

            if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' || c == '.')) {
                return STASH_EINVAL;
            }
            continue;
        }
        len = (size_t)(p + i - start);
        if (out->nnames == FA_AUTH_NAMES_MAX ||
            !copy_field(out->names[out->nnames], FA_AUTH_NAME_MAX + 1, start, len)) {
            return STASH_EINVAL;
        }
        if (out->nnames && strcmp(out->names[out->nnames - 1], out->names[out->nnames]) >= 0) {
            return STASH_EINVAL;
        }
        host |= strcmp(out->names[out->nnames], "host") == 0;
        out->nnames++;
        start = p + i + 1;
    }
    return host ? STASH_OK : STASH_EINVAL;
}

enum stash_err fa_auth_parse(const char *value, struct fa_auth_header *out, const char **why)
{
    const char *p = value;
    int seen_cred = 0;
    int seen_signed = 0;
    int seen_sig = 0;
    enum stash_err rc;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (strlen(value) > FA_AUTH_HEADER_MAX) {
        *why = "Authorization header is too long.";
        return STASH_EINVAL;
    }
    while (*p == ' ') {
        p++;
    }
    if (strncmp(p, ALGORITHM, strlen(ALGORITHM)) != 0 || p[strlen(ALGORITHM)] != ' ') {
        *why = "Unsupported Authorization Type";
        return STASH_EINVAL;
    }
    p += strlen(ALGORITHM);
    while (*p) {
        const char *eq;
        const char *end;
        size_t klen;

        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        end = strchr(p, ',');
        end = end ? end : p + strlen(p);
        eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) {
            *why = "Authorization header parameters must be key=value pairs.";
            return STASH_EINVAL;
        }
        klen = (size_t)(eq - p);
        /* The value stops at the comma or at trailing spaces. */
        {
            const char *v = eq + 1;
            size_t vlen = (size_t)(end - v);

            while (vlen && v[vlen - 1] == ' ') {
                vlen--;
            }
            if (klen == 10 && memcmp(p, "Credential", 10) == 0 && !seen_cred++) {
                rc = parse_credential(v, vlen, out, why);
            } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0 && !seen_signed++) {
                rc = parse_signed_headers(v, vlen, out, why);
            } else if (klen == 9 && memcmp(p, "Signature", 9) == 0 && !seen_sig++) {
                rc = vlen == 64 && copy_field(out->signature, sizeof(out->signature), v, vlen)
                         ? STASH_OK
                         : STASH_EINVAL;
                for (size_t i = 0; !rc && i < 64; i++) {
                    char c = out->signature[i];

                    rc = is_digit(c) || (c >= 'a' && c <= 'f') ? STASH_OK : STASH_EINVAL;
                }
                if (rc) {
                    *why = "Signature must be 64 lowercase hexadecimal digits.";
                }
            } else {
                *why = "Authorization header has an unknown or repeated parameter.";
                rc = STASH_EINVAL;
            }
        }
        if (rc) {
            return rc;
        }
        p = end;
    }
    if (!seen_cred || !seen_signed || !seen_sig) {
        *why = !seen_cred     ? "Authorization header requires 'Credential' parameter."
               : !seen_signed ? "Authorization header requires 'SignedHeaders' parameter."
                              : "Authorization header requires 'Signature' parameter.";
        return STASH_EINVAL;
    }
    return STASH_OK;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil), so no locale- or TZ-dependent libc call is needed. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe;
    unsigned doy;
    unsigned doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

enum stash_err fa_auth_parse_amz_date(const char *s, int64_t *out)
{
    unsigned v[6] = {0};
    static const int widths[6] = {4, 2, 2, 2, 2, 2};
    static const unsigned lo[6] = {1970, 1, 1, 0, 0, 0};
    static const unsigned hi[6] = {9999, 12, 31, 23, 59, 60};
    const char *p = s;

    *out = 0;
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z') {
        return STASH_EINVAL;
    }
    for (int i = 0; i < 6; i++) {
        if (i == 3) {
            p++; /* the 'T' */
        }
        for (int j = 0; j < widths[i]; j++, p++) {
            if (!is_digit(*p)) {
                return STASH_EINVAL;
            }
            v[i] = v[i] * 10 + (unsigned)(*p - '0');
        }
        if (v[i] < lo[i] || v[i] > hi[i]) {
            return STASH_EINVAL;
        }
    }
    *out = days_from_civil(v[0], v[1], v[2]) * 86400 + (int64_t)v[3] * 3600 + (int64_t)v[4] * 60 +
           v[5];
    return STASH_OK;
}

static enum stash_err refuse(struct fa_auth_verdict *out, int status, const char *type,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum stash_err refuse(struct fa_auth_verdict *out, int status, const char *type,
                             const char *fmt, ...)
{
    va_list ap;

    out->status = status;
    out->type = type;
    va_start(ap, fmt);
    (void)vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
    return STASH_EINVAL;
}

/* The credential scope must name the request's date, our region and the target's service. */
static enum stash_err check_scope(const struct fa_auth_request *req, const struct fa_auth_header *h,
                                  const char *amz_date, struct fa_auth_verdict *out)
{
    if (strncmp(h->date, amz_date, 8) != 0) {
        return refuse(out, 403, "InvalidSignatureException",
                      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                      "date from HTTP: '%s' != '%.8s', from '%s'.",
                      h->date, amz_date, amz_date);
    }
    if (strcmp(h->region, req->region) != 0) {
        return refuse(out, 403, "InvalidSignatureException",
                      "Credential should be scoped to a valid region, not '%s'. ", h->region);
    }
    if (req->service && strcmp(h->service, req->service) != 0) {
        return refuse(out, 403, "InvalidSignatureException",
                      "Credential should be scoped to correct service: '%s'. ", req->service);
    }
    return STASH_OK;
}

/* X-Amz-Date (t) must be within FA_AUTH_SKEW_S of now, either way. */
static enum stash_err check_skew(int64_t t, int64_t now, const char *amz_date,
                                 struct fa_auth_verdict *out)
{
    char a[CLOCK_AMZ_LEN];
    char b[CLOCK_AMZ_LEN];

    if (t >= now - FA_AUTH_SKEW_S && t <= now + FA_AUTH_SKEW_S) {
        return STASH_OK;
    }
    clock_format_amz(now, a);
    if (t < now) {
        clock_format_amz(now - FA_AUTH_SKEW_S, b);
        return refuse(out, 403, "InvalidSignatureException",
                      "Signature expired: %s is now earlier than %s (%s - 15 min.)", amz_date, b,
                      a);
    }
    clock_format_amz(now + FA_AUTH_SKEW_S, b);
    return refuse(out, 403, "InvalidSignatureException",
                  "Signature not yet current: %s is still later than %s (%s + 15 min.)", amz_date,
                  b, a);
}

/* Recomputes the signature over the headers the request says it signed; constant-time compare. */
static enum stash_err check_signature(const struct fa_auth_request *req,
                                      const struct fa_auth_header *h, const struct fa_cred *cred,
                                      const char *amz_date, struct fa_auth_verdict *out)
{
    struct sigv4_header headers[FA_AUTH_NAMES_MAX];
    struct sigv4_input in;
    char want[SIGV4_HEX_LEN];

    for (size_t i = 0; i < h->nnames; i++) {
        const char *v = req->header(req->header_ctx, h->names[i]);

        if (!v) {
            return refuse(out, 403, "InvalidSignatureException", "%s", s_bad_signature);
        }
        headers[i].name = h->names[i];
        headers[i].value = v;
    }
    memset(&in, 0, sizeof(in));
    in.method = req->method;
    in.path = req->path;
    in.query = req->query;
    in.headers = headers;
    in.nheaders = h->nnames;
    in.payload = req->payload;
    in.payload_len = req->payload_len;
    in.region = h->region;
    in.service = h->service;
    in.amz_date = amz_date;
    in.access_key_id = cred->access_key_id;
    in.secret_access_key = cred->secret_access_key;
    in.normalize_path = 1;
    if (sigv4_signature(&in, want) || !mem_equal_ct(want, 64, h->signature, 64)) {
        return refuse(out, 403, "InvalidSignatureException", "%s", s_bad_signature);
    }
    return STASH_OK;
}

enum stash_err fa_auth_verify(const struct fa_auth_request *req, const struct fa_cred *creds,
                              size_t ncreds, struct fa_auth_verdict *out)
{
    struct fa_auth_header h;
    const struct fa_cred *cred = NULL;
    const char *auth = req->header(req->header_ctx, "authorization");
    const char *amz_date = req->header(req->header_ctx, "x-amz-date");
    const char *token = req->header(req->header_ctx, "x-amz-security-token");
    const char *why;
    int64_t t;
    int token_signed = 0;

    memset(out, 0, sizeof(*out));
    if (!auth) {
        return refuse(out, 400, "MissingAuthenticationTokenException", "%s",
                      "Missing Authentication Token");
    }
    if (fa_auth_parse(auth, &h, &why)) {
        return refuse(out, 400, "IncompleteSignatureException", "%s", why);
    }
    (void)snprintf(out->access_key, sizeof(out->access_key), "%s", h.access_key);
    if (!amz_date) {
        return refuse(out, 400, "IncompleteSignatureException", "%s",
                      "Authorization header requires existence of either a 'X-Amz-Date' or a "
                      "'Date' header.");
    }
    if (fa_auth_parse_amz_date(amz_date, &t)) {
        return refuse(out, 400, "IncompleteSignatureException",
                      "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'.");
    }
    if (check_scope(req, &h, amz_date, out)) {
        return STASH_EINVAL;
    }
    for (size_t i = 0; i < ncreds && !cred; i++) {
        if (strcmp(creds[i].access_key_id, h.access_key) == 0) {
            cred = &creds[i];
        }
    }
    if (!cred) {
        return refuse(out, 403, "UnrecognizedClientException", "%s", s_bad_token);
    }
    if (check_skew(t, req->now_s, amz_date, out)) {
        return STASH_EINVAL;
    }
    for (size_t i = 0; i < h.nnames; i++) {
        token_signed |= strcmp(h.names[i], "x-amz-security-token") == 0;
    }
    if (cred->session_token && (!token || !mem_equal_ct(token, strlen(token), cred->session_token,
                                                        strlen(cred->session_token)))) {
        return refuse(out, 403, "UnrecognizedClientException", "%s", s_bad_token);
    }
    if (token && !token_signed) {
        return refuse(out, 403, "InvalidSignatureException", "%s",
                      "The security token must be signed: add x-amz-security-token to "
                      "SignedHeaders.");
    }
    return check_signature(req, &h, cred, amz_date, out);
}
