/* The credentials a request is signed with (the SDKs call them an
 * identity), apart from where they come from (aws/credentials.h): the
 * signer and the credential sources share this type without depending on
 * the chain that walks them.
 *
 * Ownership: struct ob_aws_credentials owns its strings; release them with
 * ob_aws_credentials_free, which also wipes them. */
#ifndef OB_AWS_IDENTITY_H
#define OB_AWS_IDENTITY_H

#include <stdint.h>

struct ob_aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when there is none */
    /* When they stop working, in Unix seconds; 0: they do not expire
     * (long-term keys). Temporary ones are refreshed before then. */
    int64_t expires_at;
    /* Where they came from, for logs: "config (aws.access_key_id)",
     * "shared credentials file /root/.aws/credentials (profile x)",
     * "web identity (role ARN, token file PATH)". */
    char source[256];
};

void ob_aws_credentials_free(struct ob_aws_credentials *c);

#endif
