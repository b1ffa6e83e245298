/* sim/fake_aws/auth.h: checks the SigV4 signature of every AWS API request, as AWS does.
 *
 * fa_auth_parse reads an Authorization header value
 *   AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/secretsmanager/aws4_request,
 *   SignedHeaders=content-type;host;x-amz-date, Signature=<64 lowercase hex>
 * (parameters in any order, separated by ',' and optional spaces) into fixed-size fields; it is
 * pure and rejects (STASH_EINVAL, with a static reason) anything else: another algorithm, a
 * missing or repeated parameter, a scope that is not 5 '/'-separated parts ending aws4_request,
 * signed header names that are not lowercase, sorted and unique, or that leave out host.
 *
 * fa_auth_verify recomputes the signature with cache/sigv4.h over the headers the request says
 * it signed, using the secret configured for its access key, compares in constant time, and
 * checks the rest of what AWS checks.  On refusal it returns STASH_EINVAL and fills a verdict
 * with the status, error code and message AWS would send:
 *   no Authorization header                         400 MissingAuthenticationTokenException
 *   malformed header, no X-Amz-Date                 400 IncompleteSignatureException
 *   unknown access key, wrong or missing token      403 UnrecognizedClientException
 *   scope date/region/service wrong, bad signature  403 InvalidSignatureException
 *   X-Amz-Date more than 15 minutes from now        403 InvalidSignatureException
 *                                                       "Signature expired: ..." / "not yet
 * current" Session tokens: a credential configured with a token requires X-Amz-Security-Token equal
 * to it; one configured without accepts any token or none.  A token that is sent must be signed.
 * The clock is a parameter (now_s), so tests are deterministic.
 * Secrets: the secret keys are the caller's; nothing here logs or keeps them.
 * Thread-safety: reentrant; the credential table is read-only after start.
 */
#ifndef STASH_SIM_FAKE_AWS_AUTH_H
#define STASH_SIM_FAKE_AWS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define FA_AUTH_AKID_MAX    128
#define FA_AUTH_REGION_MAX  32
#define FA_AUTH_SERVICE_MAX 32
#define FA_AUTH_NAMES_MAX   32 /* signed headers */
#define FA_AUTH_NAME_MAX    64 /* bytes in one header name */
#define FA_AUTH_HEADER_MAX  4096
#define FA_AUTH_SKEW_S      ((int64_t)15 * 60)

struct fa_auth_header {
    char access_key[FA_AUTH_AKID_MAX + 1];
    char date[9]; /* YYYYMMDD */
    char region[FA_AUTH_REGION_MAX + 1];
    char service[FA_AUTH_SERVICE_MAX + 1];
    char names[FA_AUTH_NAMES_MAX][FA_AUTH_NAME_MAX + 1];
    size_t nnames;
    char signature[65];
};

/* Returns the header's value (NULL if absent); name is lowercase. */
typedef const char *(*fa_header_fn)(void *ctx, const char *name);

struct fa_cred {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL: none required */
};

struct fa_auth_request {
    const char *method;
    const char *path;
    const char *query; /* "" for the AWS API */
    fa_header_fn header;
    void *header_ctx;
    const void *payload;
    size_t payload_len;
    const char *region;  /* the region fake-aws serves */
    const char *service; /* what the X-Amz-Target implies (secretsmanager, ssm); NULL: any */
    int64_t now_s;       /* wall clock, epoch seconds */
};

struct fa_auth_verdict {
    int status;       /* 0 when accepted */
    const char *type; /* AWS error code, NULL when accepted */
    char message[320];
    char access_key[FA_AUTH_AKID_MAX + 1]; /* who asked, when the header parsed */
};

enum stash_err fa_auth_parse(const char *value, struct fa_auth_header *out, const char **why);
enum stash_err fa_auth_verify(const struct fa_auth_request *req, const struct fa_cred *creds,
                              size_t ncreds, struct fa_auth_verdict *out);
/* Parses "YYYYMMDDTHHMMSSZ" to epoch seconds; STASH_EINVAL if malformed. */
enum stash_err fa_auth_parse_amz_date(const char *s, int64_t *out);

#endif
