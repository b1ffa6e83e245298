/* sim/fake_aws/ops.h: the Secrets Manager and SSM operations fake-aws answers (AWS JSON 1.1).
 *
 * fa_ops_handle takes the JSON body of an authenticated request and renders the reply AWS
 * would send: 200 and the operation's output shape, or a 4xx/5xx error whose body is
 * {"__type":"<Code>","message":"<text>"} (SSM's ParameterNotFound carries no message, as AWS
 * sends it).  Operations:
 *   secretsmanager.GetSecretValue       SecretId (name, ARN, partial ARN), VersionId, VersionStage
 *   secretsmanager.BatchGetSecretValue  SecretIdList (1 to 20 ids), or Filters (filters.h) with
 *                                       MaxResults (1 to 20, default 20) and NextToken: matching
 *                                       secrets in name order, a page at a time; an opaque
 *                                       token good only for the same Filters, else 400
 *                                       InvalidNextTokenException.  Exactly one of SecretIdList
 *                                       and Filters, MaxResults and NextToken only with Filters:
 *                                       else 400 InvalidParameterException
 *   AmazonSSM.GetParameter              Name[:version|:label] (or ARN), WithDecryption; the
 *                                       /aws/reference/secretsmanager/<secret>[:stage] names
 *   AmazonSSM.GetParameters             Names (1 to 10), WithDecryption
 * Timestamps are epoch seconds (JSON numbers), blobs base64, as JSON 1.1 has them.  A SecureString
 * read without WithDecryption returns a base64 stand-in for KMS ciphertext, never the plaintext.
 * Errors (status 400 unless noted): SerializationException (body not a JSON object, a member of
 * the wrong type), ValidationException (a required member missing, a length out of range),
 * ResourceNotFoundException, InvalidRequestException, AccessDeniedException, DecryptionFailure,
 * ParameterNotFound, ParameterVersionNotFound, UnknownOperationException (unknown X-Amz-Target),
 * InvalidParameterException, InvalidNextTokenException.
 * Ownership: the reply's body belongs to the caller, who releases it with fa_reply_release
 * (it may hold secret values: it is wiped).
 * Thread-safety: reentrant; the store does its own locking.
 */
#ifndef STASH_SIM_FAKE_AWS_OPS_H
#define STASH_SIM_FAKE_AWS_OPS_H

#include <stddef.h>

#include "common/buf.h"
#include "sim/fake_aws/data.h"

enum fa_op {
    FA_OP_GET_SECRET_VALUE = 0,
    FA_OP_BATCH_GET_SECRET_VALUE,
    FA_OP_GET_PARAMETER,
    FA_OP_GET_PARAMETERS,
    FA_OP_UNKNOWN,
    FA_OP_COUNT,
};

/* Above the worst reply the input limits allow: 20 secrets of 64 KiB of control characters,
 * each escaped as \u00XX (6 bytes), about 8 MiB. */
#define FA_REPLY_MAX (16u << 20)

struct fa_reply {
    int status;
    const char *error_type; /* NULL on success */
    struct buf body;        /* JSON */
};

/* "secretsmanager.GetSecretValue" -> FA_OP_GET_SECRET_VALUE; NULL or unknown -> FA_OP_UNKNOWN. */
enum fa_op fa_ops_from_target(const char *target);
/* "GetSecretValue" -> FA_OP_GET_SECRET_VALUE; unknown -> FA_OP_UNKNOWN. */
enum fa_op fa_ops_from_name(const char *name);
/* "GetSecretValue", ..., "Unknown". */
const char *fa_ops_name(enum fa_op op);
/* The SigV4 service a target is signed for, from its prefix: "secretsmanager", "ssm" or NULL. */
const char *fa_ops_target_service(const char *target);

void fa_reply_init(struct fa_reply *r);
void fa_reply_release(struct fa_reply *r);
/* Replaces whatever r held with an AWS error; message NULL sends only __type. */
void fa_ops_error(struct fa_reply *r, int status, const char *type, const char *message);

/* Answers one request whose signature has been checked.  The reply is always filled. */
void fa_ops_handle(struct fa_data *d, enum fa_op op, const char *body, size_t len,
                   struct fa_reply *out);

#endif
