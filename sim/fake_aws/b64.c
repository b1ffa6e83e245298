/* sim/fake_aws/b64.c: base64 for AWS JSON 1.1 blobs (RFC 4648 section 4). */
#include "sim/fake_aws/b64.h"

static const char s_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum stash_err b64_encode(struct buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    char quad[4];
    enum stash_err rc;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        size_t left = len - i;

        if (left > 1) {
            v |= (unsigned)p[i + 1] << 8;
        }
        if (left > 2) {
            v |= p[i + 2];
        }
        quad[0] = s_alphabet[(v >> 18) & 63];
        quad[1] = s_alphabet[(v >> 12) & 63];
        quad[2] = '=';
        quad[3] = '=';
        if (left > 1) {
            quad[2] = s_alphabet[(v >> 6) & 63];
        }
        if (left > 2) {
            quad[3] = s_alphabet[v & 63];
        }
        rc = buf_append(out, quad, 4);
        if (rc) {
            return rc;
        }
    }
    if (!out->data) {
        /* Keep the buf contract "data is a string after an append" for empty input too. */
        return buf_append(out, "", 0);
    }
    return STASH_OK;
}

size_t b64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

static int b64_value(char c)
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
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

enum stash_err b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
    size_t n = 0;

    *out_len = 0;
    if (len % 4 != 0) {
        return STASH_EINVAL;
    }
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = 0;
        unsigned v = 0;

        for (int j = 0; j < 4; j++) {
            char c = in[i + (size_t)j];
            int x = b64_value(c);

            if (c == '=' && last && j >= 2) {
                /* '=' may only end the final quad: "x=" needs the next one to be '=' too. */
                pad++;
                x = 0;
            } else if (x < 0 || pad) {
                return STASH_EINVAL;
            }
            v = (v << 6) | (unsigned)x;
        }
        /* Canonical form: the bits dropped by padding must be zero. */
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))) {
            return STASH_EINVAL;
        }
        out[n++] = (unsigned char)(v >> 16);
        if (pad < 2) {
            out[n++] = (unsigned char)(v >> 8);
        }
        if (pad < 1) {
            out[n++] = (unsigned char)v;
        }
    }
    *out_len = n;
    return STASH_OK;
}
