/* cache/sigv4.h: AWS Signature Version 4, as a pure function (inputs -> strings).
 *
 * Implements the header-signing form of SigV4 (not presigned URLs): canonical request, string to
 * sign, signing-key derivation (HMAC-SHA256 chain kSecret -> kDate -> kRegion -> kService ->
 * kSigning) and the Authorization header value.  Both sides use it: the upstream clients sign,
 * and fake-aws recomputes the signature of what it received to verify it (tests also check it
 * against botocore, an independent implementation).
 *
 * Inputs are taken as given: path and query are the raw strings of the request line (the signer
 * normalises and encodes as the spec says); header names are matched case-insensitively, values
 * trimmed and inner runs of spaces folded; headers named in the request but not in `headers` are
 * not signed.  The caller includes host and x-amz-date (and x-amz-security-token when it is to be
 * signed) in `headers`.
 * Encoding (what botocore and aws-c-auth do, checked against both): with normalize_path the raw
 * path has its dot segments and "//" runs removed and is then URI-encoded as it stands, so a
 * '%' in it becomes %25 (non-S3 services sign the path encoded twice); without it (S3) each
 * segment is decoded and encoded once.  Query parameters are decoded and encoded once ('+' is a
 * literal plus), empty ones dropped.  The payload hash is always SHA-256 of the payload; an
 * x-amz-content-sha256 header is signed like any other but does not replace it.  A header name
 * given twice (in any case) is signed once, its values joined with ',' in the order given.
 * Output: NUL-terminated strings in caller buffers (struct buf, emptied on entry, its ceiling
 * respected); STASH_EINVAL on malformed input (a bad percent-escape, a path not starting with
 * '/', a bad amz_date, an empty header name), STASH_ETOOBIG past the buffer's ceiling.
 * Secrets: the secret key and every derived key are wiped before return.  OpenSSL (HMAC, SHA-256)
 * is used only here and in common/mem.c.
 * Thread-safety: every function is reentrant.
 */
#ifndef STASH_CACHE_SIGV4_H
#define STASH_CACHE_SIGV4_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct sigv4_header {
    const char *name;
    const char *value;
};

struct sigv4_input {
    const char *method;                 /* "GET", "POST" */
    const char *path;                   /* raw request path, e.g. "/" or "/a/../b" */
    const char *query;                  /* raw query without '?', or "" */
    const struct sigv4_header *headers; /* headers to sign; order does not matter */
    size_t nheaders;
    const void *payload;
    size_t payload_len;
    const char *region;
    const char *service;
    const char *amz_date; /* "20150830T123600Z" */
    const char *access_key_id;
    const char *secret_access_key;
    int normalize_path; /* 1 for every service but S3 */
};

#define SIGV4_HEX_LEN 65 /* 64 hex digits and a NUL */

enum stash_err sigv4_canonical_request(const struct sigv4_input *in, struct buf *out);
enum stash_err sigv4_string_to_sign(const struct sigv4_input *in, struct buf *out);
/* The signature as 64 lowercase hex digits. */
enum stash_err sigv4_signature(const struct sigv4_input *in, char out[SIGV4_HEX_LEN]);
/* "AWS4-HMAC-SHA256 Credential=.../aws4_request, SignedHeaders=..., Signature=..." */
enum stash_err sigv4_authorization(const struct sigv4_input *in, struct buf *out);
/* Lowercase hex SHA-256 of data (for x-amz-content-sha256 and tests). */
void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HEX_LEN]);

#endif
