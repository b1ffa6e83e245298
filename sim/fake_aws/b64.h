/* sim/fake_aws/b64.h: standard base64 (RFC 4648 section 4, with '=' padding), as AWS JSON 1.1
 * carries blobs (SecretBinary) and as SSM shows SecureString ciphertext.
 *
 * Contract: b64_encode appends to a caller buf (STASH_ETOOBIG past its ceiling).  b64_decode
 * writes into a caller array of at least b64_decoded_max(len) bytes; it accepts only the
 * canonical alphabet with correct padding (no whitespace, no URL-safe alphabet) and returns
 * STASH_EINVAL otherwise, leaving *out_len at 0.
 * Thread-safety: pure functions, reentrant.
 */
#ifndef STASH_SIM_FAKE_AWS_B64_H
#define STASH_SIM_FAKE_AWS_B64_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

enum stash_err b64_encode(struct buf *out, const void *data, size_t len);
size_t b64_decoded_max(size_t len);
enum stash_err b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len);

#endif
