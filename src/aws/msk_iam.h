/* AWS MSK IAM authentication: the SASL/OAUTHBEARER token a Kafka client
 * presents to an MSK cluster is a SigV4-presigned request for the action
 * kafka-cluster:Connect, as the aws-msk-iam-sasl-signer libraries make it:
 * GET https://kafka.REGION.amazonaws.com/?Action=kafka-cluster%3AConnect
 * presigned (query-string auth, X-Amz-Expires=900) for the service
 * "kafka-cluster", with User-Agent appended, base64url-encoded without
 * padding. No password exists anywhere: the credentials are the relay's.
 * Pure: the time comes in, nothing is read. */
#ifndef OB_AWS_MSK_IAM_H
#define OB_AWS_MSK_IAM_H

#include <stdint.h>
#include <time.h>

#include "aws/credentials.h"
#include "core/buf.h"
#include "outboxd/error.h"

/* How long a token is valid (X-Amz-Expires). */
#define OB_MSK_IAM_TOKEN_SECONDS 900

/* Appends the token for credentials in region, signed at `now`, to token;
 * *expires_at_ms receives when it expires (epoch milliseconds; a
 * temporary credential expiring sooner is not known here). For the same
 * inputs the token is the one aws-msk-iam-sasl-signer-python makes, but
 * for its User-Agent ("outboxd/VERSION"). It carries the session token of
 * temporary credentials (signed, in X-Amz-Security-Token): wipe it as a
 * secret. A region that is not an AWS region name (lowercase letters,
 * digits, hyphens) is OB_ERR_CONFIG, credentials without a key id or
 * secret OB_ERR_INVALID. Errors never contain a secret or the token. */
enum ob_err ob_msk_iam_token(const struct ob_aws_credentials *creds, const char *region, time_t now,
                             struct ob_buf *token, int64_t *expires_at_ms, struct ob_error *err);

#endif
