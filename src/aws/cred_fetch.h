/* Fetching temporary credentials from outside the process: STS
 * (AssumeRoleWithWebIdentity unsigned, AssumeRole signed), the container
 * endpoint, EC2 instance metadata (IMDSv2) and credential_process. Each
 * call blocks until it has an answer or gives up; they run at startup and
 * at a refresh, never on a shard's path. aws/credentials.c decides which
 * to call and with what.
 *
 * `source` is the caller's name for the source; error messages start
 * with it and never contain a key, a secret or a token. Credentials
 * returned are owned by the caller (ob_aws_credentials_free). */
#ifndef OB_AWS_CRED_FETCH_H
#define OB_AWS_CRED_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "aws/identity.h"
#include "core/buf.h"
#include "outboxd/error.h"

/* STS's endpoint: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the
 * regional one (https://sts.REGION.amazonaws.com/), else without a region
 * the global one (https://sts.amazonaws.com/), as botocore. Appended to
 * out. */
void ob_sts_endpoint(const char *region, struct ob_buf *out);

/* A token file's contents (web identity, the container endpoint's
 * authorization) without trailing white space, read now: such files are
 * rotated on disk. Unreadable, empty or larger than 64 KiB is
 * OB_ERR_CREDENTIALS naming the file. The caller wipes and frees *out. */
enum ob_err ob_cred_token_file_read(const char *path, const char *source, struct ob_buf *out,
                                    struct ob_error *err);

/* What an AssumeRole* call asks for. */
struct ob_assume_role {
    const char *role_arn;
    const char *session_name; /* NULL: "outboxd-<unix seconds>" */
    const char *external_id;  /* AssumeRole only; NULL: none */
    int duration_seconds;     /* 0: STS's default (one hour) */
    const char *region;       /* where STS is called (NULL: the global endpoint) */
};

/* AssumeRoleWithWebIdentity with the token read from token_file now (it
 * is rotated on disk: read again at every refresh). */
enum ob_err ob_sts_assume_role_with_web_identity(const struct ob_assume_role *r, const char *token_file,
                                                 const char *source, struct ob_aws_credentials *out,
                                                 struct ob_error *err);

/* AssumeRole signed with the credentials `by`. */
enum ob_err ob_sts_assume_role(const struct ob_assume_role *r, const struct ob_aws_credentials *by,
                               const char *source, struct ob_aws_credentials *out, struct ob_error *err);

/* GET url (a container endpoint), direct, 2 s timeout, 3 attempts a
 * second apart, as botocore. authorization: the Authorization header's
 * value, or NULL. */
enum ob_err ob_container_fetch(const char *url, const char *authorization, const char *source,
                               struct ob_aws_credentials *out, struct ob_error *err);

/* IMDSv2 at endpoint ("http://169.254.169.254"): a session token (PUT
 * /latest/api/token, TTL 21600 s, kept for the process and fetched again
 * near its end or on a 401), then the role's name and its credentials.
 * A token request answered 403, 404 or 405 (a service without IMDSv2)
 * goes on without a token, as the SDKs do, unless
 * AWS_EC2_METADATA_V1_DISABLED is true. 1 s timeouts, one retry. */
enum ob_err ob_imds_credentials(const char *endpoint, const char *source, struct ob_aws_credentials *out,
                                struct ob_error *err);

/* The instance's region (/latest/meta-data/placement/region); *out is
 * malloc'ed. */
enum ob_err ob_imds_region(const char *endpoint, char **out, struct ob_error *err);

/* Runs command with /bin/sh -c, as the SDKs do (default signal
 * dispositions and mask, a process group of its own, no descriptor open
 * but standard input from /dev/null, output and error), and reads its
 * standard output as credential_process JSON (Version 1). Not exited
 * within timeout_ms, it is killed with all it started. It cannot prompt
 * on a terminal (outboxd runs unattended: a background process group is
 * stopped reading one). A nonzero exit is an error quoting the first line
 * of its standard error. */
enum ob_err ob_credential_process_run(const char *command, int64_t timeout_ms, const char *source,
                                      struct ob_aws_credentials *out, struct ob_error *err);

#endif
