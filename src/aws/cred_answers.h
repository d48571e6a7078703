/* What the temporary credential sources answer, and the rules they are
 * reached by: pure functions, no I/O (the requests are made by
 * aws/cred_fetch.h, the chain is aws/credentials.h).
 *
 * Every error message starts with `source`, the caller's name for the
 * source ("container endpoint http://169.254.170.2/v2/x"), and never
 * contains a key, a secret or a token. */
#ifndef OB_AWS_CRED_ANSWERS_H
#define OB_AWS_CRED_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/identity.h"
#include "core/buf.h"
#include "core/url.h"
#include "outboxd/error.h"

/* The JSON documents credentials come in. */
enum ob_cred_json {
    /* The container endpoint and instance metadata: AccessKeyId,
     * SecretAccessKey, Token, Expiration (required); instance metadata adds
     * "Code": "Success", which when present must say so. */
    OB_CRED_JSON_ENDPOINT,
    /* credential_process: "Version": 1, AccessKeyId, SecretAccessKey,
     * SessionToken, Expiration (absent: the keys do not expire). */
    OB_CRED_JSON_PROCESS,
};

/* Parses text into *out (owned by the caller; source and expires_at
 * filled). A document that is not what kind says is OB_ERR_CREDENTIALS. */
enum ob_err ob_cred_json_parse(const char *text, size_t len, enum ob_cred_json kind, const char *source,
                               struct ob_aws_credentials *out, struct ob_error *err);

/* An STS answer to AssumeRole or AssumeRoleWithWebIdentity of HTTP status
 * `status`: on 200 the <Credentials> of its result into *out; otherwise
 * the <Error>'s <Code> and <Message> as the error: OB_ERR_ACCESS_DENIED
 * for the caller's faults (AccessDenied, InvalidIdentityToken,
 * ExpiredTokenException, ...), OB_ERR_THROTTLED (retriable) for
 * Throttling, OB_ERR_SERVICE (retriable) for 5xx and IDPCommunicationError,
 * err->aws_type set to the code. */
enum ob_err ob_sts_answer_parse(int status, const char *xml, size_t len, const char *source,
                                struct ob_aws_credentials *out, struct ob_error *err);

struct ob_sts_param {
    const char *name;
    const char *value; /* NULL: not sent */
};

/* The query-protocol body of an STS request: Action, Version and the
 * params, form-encoded. */
void ob_sts_form(struct ob_buf *out, const char *action, const struct ob_sts_param *params, size_t n);

/* Whether credentials may be fetched from the container endpoint URL u
 * (AWS_CONTAINER_CREDENTIALS_FULL_URI), as the SDKs allow: https to any
 * host; http only to a loopback address (127.0.0.0/8, ::1, localhost) or
 * the ECS and EKS Pod Identity addresses 169.254.170.2, 169.254.170.23
 * and fd00:ec2::23. */
bool ob_container_url_allowed(const struct ob_url *u);

#endif
