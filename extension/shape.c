/* extension/shape.c: shaped answers (raw, jsonKey, split).  Contract in shape.h.
 *
 * JSON is read here by a small validating scanner (RFC 8259 grammar) rather than by cJSON, for
 * two reasons: a non-string member must be answered as the exact text the secret holds (cJSON
 * re-renders numbers as doubles, so 12345678901234567890 would come back altered), and every
 * byte decoded from a secret must land in a buffer this file wipes (cJSON's copies are not).
 */
#include "extension/shape.h"

#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "extension/answer.h"

enum jres {
    J_OK = 0,  /* found (a member), or well-formed */
    J_MISSING, /* well-formed object without the member */
    J_BAD,     /* not JSON */
    J_NOTOBJ,  /* JSON, but not an object */
    J_DEEP,    /* nested deeper than SHAPE_MAX_DEPTH */
};

struct span {
    const unsigned char *p;
    size_t n;
};

struct scan {
    const unsigned char *s;
    size_t n;
    size_t i;
};

/* ---- the scanner: each scan_* starts at its token and leaves i just past it ---- */

static void scan_ws(struct scan *sc)
{
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' || sc->s[sc->i] == '\n' ||
                             sc->s[sc->i] == '\r')) {
        sc->i++;
    }
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static enum jres scan_string(struct scan *sc)
{
    if (sc->i >= sc->n || sc->s[sc->i] != '"') {
        return J_BAD;
    }
    sc->i++;
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i++];

        if (c == '"') {
            return J_OK;
        }
        if (c < 0x20) {
            return J_BAD; /* control characters must be escaped */
        }
        if (c != '\\') {
            continue;
        }
        if (sc->i >= sc->n) {
            return J_BAD;
        }
        c = sc->s[sc->i++];
        if (c == 'u') {
            if (sc->n - sc->i < 4 || !is_hex(sc->s[sc->i]) || !is_hex(sc->s[sc->i + 1]) ||
                !is_hex(sc->s[sc->i + 2]) || !is_hex(sc->s[sc->i + 3])) {
                return J_BAD;
            }
            sc->i += 4;
        } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
            return J_BAD;
        }
    }
    return J_BAD;
}

static enum jres scan_digits(struct scan *sc)
{
    size_t start = sc->i;

    while (sc->i < sc->n && is_digit(sc->s[sc->i])) {
        sc->i++;
    }
    return sc->i > start ? J_OK : J_BAD;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static enum jres scan_number(struct scan *sc)
{
    if (sc->i < sc->n && sc->s[sc->i] == '-') {
        sc->i++;
    }
    if (sc->i < sc->n && sc->s[sc->i] == '0') {
        sc->i++;
    } else if (scan_digits(sc) != J_OK) {
        return J_BAD;
    }
    if (sc->i < sc->n && sc->s[sc->i] == '.') {
        sc->i++;
        if (scan_digits(sc) != J_OK) {
            return J_BAD;
        }
    }
    if (sc->i < sc->n && (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) {
        sc->i++;
        if (sc->i < sc->n && (sc->s[sc->i] == '+' || sc->s[sc->i] == '-')) {
            sc->i++;
        }
        if (scan_digits(sc) != J_OK) {
            return J_BAD;
        }
    }
    return J_OK;
}

static enum jres scan_literal(struct scan *sc, const char *lit)
{
    size_t n = strlen(lit);

    if (sc->n - sc->i < n || memcmp(sc->s + sc->i, lit, n) != 0) {
        return J_BAD;
    }
    sc->i += n;
    return J_OK;
}

static enum jres scan_value(struct scan *sc, int depth);

/* An array or an object (open is '[' or '{'); members of an object are "key": value. */
static enum jres scan_container(struct scan *sc, int depth, unsigned char open)
{
    unsigned char close = open == '[' ? ']' : '}';
    enum jres r;

    if (depth >= SHAPE_MAX_DEPTH) {
        return J_DEEP;
    }
    sc->i++;
    scan_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == close) {
        sc->i++;
        return J_OK;
    }
    for (;;) {
        if (open == '{') {
            r = scan_string(sc);
            if (r) {
                return r;
            }
            scan_ws(sc);
            if (sc->i >= sc->n || sc->s[sc->i] != ':') {
                return J_BAD;
            }
            sc->i++;
        }
        r = scan_value(sc, depth + 1);
        if (r) {
            return r;
        }
        scan_ws(sc);
        if (sc->i >= sc->n) {
            return J_BAD;
        }
        if (sc->s[sc->i] == close) {
            sc->i++;
            return J_OK;
        }
        if (sc->s[sc->i] != ',') {
            return J_BAD;
        }
        sc->i++;
        scan_ws(sc);
    }
}

/* Skips leading whitespace, then one value. */
static enum jres scan_value(struct scan *sc, int depth)
{
    scan_ws(sc);
    if (sc->i >= sc->n) {
        return J_BAD;
    }
    switch (sc->s[sc->i]) {
    case '{':
    case '[':
        return scan_container(sc, depth, sc->s[sc->i]);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        return scan_number(sc);
    }
}

/* ---- decoding a scanned string ---- */

static unsigned hex4(const unsigned char *p)
{
    unsigned v = 0;

    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];

        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static void put_utf8(struct buf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    (void)buf_append(b, u, n);
}

/* Appends the text of a string token s (quotes included, already scanned) to b, unescaped. */
static void decode_string(struct span s, struct buf *b)
{
    size_t i = 1;
    size_t end = s.n - 1;

    while (i < end) {
        size_t run = i;
        unsigned cp;

        while (i < end && s.p[i] != '\\') {
            i++;
        }
        (void)buf_append(b, s.p + run, i - run);
        if (i >= end) {
            break;
        }
        i++; /* the backslash */
        switch (s.p[i++]) {
        case 'b':
            (void)buf_putc(b, '\b');
            break;
        case 'f':
            (void)buf_putc(b, '\f');
            break;
        case 'n':
            (void)buf_putc(b, '\n');
            break;
        case 'r':
            (void)buf_putc(b, '\r');
            break;
        case 't':
            (void)buf_putc(b, '\t');
            break;
        case 'u':
            cp = hex4(s.p + i);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && end - i >= 6 && s.p[i] == '\\' &&
                s.p[i + 1] == 'u') {
                unsigned lo = hex4(s.p + i + 2);

                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd; /* a lone surrogate has no UTF-8 form */
            }
            put_utf8(b, cp);
            break;
        default: /* '"', '\\', '/' stand for themselves */
            (void)buf_putc(b, (char)s.p[i - 1]);
            break;
        }
    }
}

/* Finds the last member named key (keylen bytes, compared after unescaping) of the JSON object
 * that is the whole of doc (surrounding whitespace allowed), checking all of doc is well-formed.
 * J_OK and *val (the member's value, exact text) when found. */
static enum jres json_member(struct span doc, const char *key, size_t keylen, struct span *val)
{
    struct scan sc = {doc.p, doc.n, 0};
    struct buf name = BUF_INIT(0);
    enum jres r = J_MISSING;
    int found = 0;

    scan_ws(&sc);
    if (sc.i >= sc.n || sc.s[sc.i] != '{') {
        r = scan_value(&sc, 0);
        scan_ws(&sc);
        r = r ? r : sc.i < sc.n ? J_BAD : J_NOTOBJ;
        goto out;
    }
    sc.i++;
    scan_ws(&sc);
    if (sc.i < sc.n && sc.s[sc.i] == '}') {
        sc.i++;
        goto end;
    }
    for (;;) {
        size_t kstart = sc.i;
        size_t vstart;

        r = scan_string(&sc);
        if (r) {
            goto out;
        }
        buf_reset(&name);
        decode_string((struct span){sc.s + kstart, sc.i - kstart}, &name);
        scan_ws(&sc);
        if (sc.i >= sc.n || sc.s[sc.i] != ':') {
            r = J_BAD;
            goto out;
        }
        sc.i++;
        scan_ws(&sc);
        vstart = sc.i;
        r = scan_value(&sc, 1);
        if (r) {
            goto out;
        }
        if (name.len == keylen && memcmp(name.data ? name.data : "", key, keylen) == 0) {
            found = 1;
            *val = (struct span){sc.s + vstart, sc.i - vstart};
        }
        scan_ws(&sc);
        if (sc.i < sc.n && sc.s[sc.i] == '}') {
            sc.i++;
            break;
        }
        if (sc.i >= sc.n || sc.s[sc.i] != ',') {
            r = J_BAD;
            goto out;
        }
        sc.i++;
        scan_ws(&sc);
    }
end:
    scan_ws(&sc);
    r = sc.i < sc.n ? J_BAD : found ? J_OK : J_MISSING;
out:
    buf_release_secret(&name);
    return r;
}

static int is_string(struct span v)
{
    return v.n >= 2 && v.p[0] == '"';
}

/* ---- base64 (RFC 4648 section 4, padded), for SecretBinary ---- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static enum stash_err b64_decode(const unsigned char *s, size_t n, struct buf *out)
{
    if (n % 4) {
        return STASH_EPARSE;
    }
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
        unsigned v = 0;
        unsigned char o[3];

        for (int k = 0; k < 4 - pad; k++) {
            int d = b64_value(s[i + (size_t)k]);

            if (d < 0) {
                return STASH_EPARSE;
            }
            v = v << 6 | (unsigned)d;
        }
        v <<= 6 * pad;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
        (void)buf_append(out, o, (size_t)(3 - pad));
        mem_wipe(o, sizeof(o));
        mem_wipe(&v, sizeof(v));
    }
    return STASH_OK;
}

/* ---- the answers ---- */

static void replace_body(struct cache_value *v, int status, struct buf *b)
{
    cache_value_release(v);
    v->kind = CACHE_VALUE;
    v->status = status;
    /* An exact-sized copy: cache_value_release and MHD's free callback wipe it whole. */
    v->len = b->len;
    v->body = xmemdup(b->data ? b->data : "", b->len);
    buf_release_secret(b);
}

static const char *fail(struct cache_value *v, int status, const char *type, const char *message)
{
    cache_value_release(v);
    answer_error(status, type, message, v);
    return SHAPE_JSON;
}

static const char *unreadable(struct cache_value *v)
{
    return fail(v, 500, "InternalFailure",
                "the cached answer is not in GetSecretValue's or "
                "GetParameter's shape");
}

static const char *shape_json_key(struct cache_value *v, struct span secret, const char *key)
{
    struct buf text = BUF_INIT(0);
    struct buf out = BUF_INIT(0);
    struct span member = {NULL, 0};
    const char *type = SHAPE_TEXT;
    enum jres r;

    decode_string(secret, &text);
    r = json_member((struct span){(const unsigned char *)text.data, text.len}, key, strlen(key),
                    &member);
    if (r == J_OK) {
        if (is_string(member)) {
            decode_string(member, &out);
        } else {
            (void)buf_append(&out, member.p, member.n);
            type = SHAPE_JSON;
        }
        replace_body(v, 200, &out);
    } else if (r == J_MISSING) {
        type = fail(v, 404, "JsonKeyNotFound",
                    "the secret's JSON object has no top-level key "
                    "named by jsonKey");
    } else if (r == J_NOTOBJ) {
        type = fail(v, 400, "SecretNotJson",
                    "the secret's value is JSON but not an object, so "
                    "jsonKey cannot select from it");
    } else if (r == J_DEEP) {
        type = fail(v, 400, "SecretNotJson", "the secret's JSON is nested too deeply to read");
    } else {
        type = fail(v, 400, "SecretNotJson",
                    "the secret's value is not JSON, so jsonKey "
                    "cannot select from it");
    }
    buf_release_secret(&text);
    buf_release_secret(&out);
    return type;
}

static const char *shape_secret_value(const struct shape_req *req, struct cache_value *v)
{
    struct span doc = {(const unsigned char *)v->body, v->len};
    struct span str = {NULL, 0};
    struct span bin = {NULL, 0};
    struct buf out = BUF_INIT(0);
    enum jres rs = json_member(doc, "SecretString", strlen("SecretString"), &str);
    enum jres rb = json_member(doc, "SecretBinary", strlen("SecretBinary"), &bin);
    int has_str = rs == J_OK && is_string(str);
    int has_bin = rb == J_OK && is_string(bin);

    if ((rs != J_OK && rs != J_MISSING) || (!has_str && !has_bin)) {
        return unreadable(v);
    }
    if (req->json_key) {
        if (!has_str) {
            return fail(v, 400, "SecretNotJson",
                        "the secret is binary (SecretBinary), so "
                        "jsonKey cannot select from it");
        }
        return shape_json_key(v, str, req->json_key);
    }
    if (has_str) {
        decode_string(str, &out);
        replace_body(v, 200, &out);
        return SHAPE_TEXT;
    }
    {
        struct buf b64 = BUF_INIT(0);
        enum stash_err rc;

        decode_string(bin, &b64);
        rc = b64_decode((const unsigned char *)(b64.data ? b64.data : ""), b64.len, &out);
        buf_release_secret(&b64);
        if (rc) {
            buf_release_secret(&out);
            return fail(v, 500, "InternalFailure", "SecretBinary is not valid base64");
        }
    }
    replace_body(v, 200, &out);
    return SHAPE_BINARY;
}

/* ["item",...] from a StringList's text: every comma separates two items. */
static void split_items(const struct buf *text, struct buf *out)
{
    const char *p = text->data ? text->data : "";
    const char *end = p + text->len;

    (void)buf_putc(out, '[');
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;

        (void)buf_putc(out, '"');
        (void)buf_put_json_escaped(out, p, (size_t)(stop - p));
        (void)buf_putc(out, '"');
        if (!comma) {
            break;
        }
        (void)buf_putc(out, ',');
        p = comma + 1;
    }
    (void)buf_putc(out, ']');
}

static const char *shape_parameter_value(const struct shape_req *req, struct cache_value *v)
{
    struct span doc = {(const unsigned char *)v->body, v->len};
    struct span param = {NULL, 0};
    struct span value = {NULL, 0};
    struct span type = {NULL, 0};
    struct buf text = BUF_INIT(0);
    struct buf out = BUF_INIT(0);
    const char *ctype = SHAPE_TEXT;

    if (json_member(doc, "Parameter", strlen("Parameter"), &param) != J_OK ||
        json_member(param, "Value", strlen("Value"), &value) != J_OK || !is_string(value)) {
        return unreadable(v);
    }
    if (req->split) {
        static const char list[] = "\"StringList\"";

        if (json_member(param, "Type", strlen("Type"), &type) != J_OK ||
            type.n != sizeof(list) - 1 || memcmp(type.p, list, type.n) != 0) {
            return fail(v, 400, "ParameterNotStringList",
                        "split=true applies only to a parameter of Type StringList");
        }
        decode_string(value, &text);
        split_items(&text, &out);
        buf_release_secret(&text);
        ctype = SHAPE_JSON;
    } else {
        decode_string(value, &out);
    }
    replace_body(v, 200, &out);
    return ctype;
}

int shape_wanted(const struct shape_req *req)
{
    return req && (req->raw || req->split || req->json_key);
}

const char *shape_value(enum shape_service service, const struct shape_req *req,
                        struct cache_value *v)
{
    if (!shape_wanted(req) || v->kind != CACHE_VALUE || v->status != 200 || !v->body) {
        return SHAPE_JSON;
    }
    if (service == SHAPE_SECRET) {
        return shape_secret_value(req, v);
    }
    return shape_parameter_value(req, v);
}
