/* AWS credentials and region from the SDKs' default chain (SPEC §6):
 * the configuration, the environment, web identity, the shared files'
 * profile, the container endpoint and EC2 instance metadata. Resolving
 * reads files and may call STS, the container endpoint or instance
 * metadata, or run a credential_process (aws/cred_fetch.h); it runs at
 * startup and at each refresh of temporary credentials, never on a
 * shard's path. Signing itself (aws/sigv4.h) never does.
 *
 * The credentials themselves are aws/identity.h's. Error messages name the
 * source that failed (a file and profile, an environment variable or a
 * config key) and never contain a key, a secret or a token. */
#ifndef OB_AWS_CREDENTIALS_H
#define OB_AWS_CREDENTIALS_H

#include "aws/identity.h"
#include "core/buf.h"
#include "outboxd/error.h"

/* The aws.* keys of the configuration; each may be NULL. */
struct ob_credentials_options {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    /* The resolved region: where STS is called for web identity and
     * assumed roles (its regional endpoint). */
    const char *region;
};

struct ob_config_aws;

/* The options the config's aws section gives (its strings borrowed, so
 * valid while the config is). */
struct ob_credentials_options ob_credentials_options_of(const struct ob_config_aws *aws);

/* In the SDKs' order, the first source that is configured gives the
 * credentials (its failure is the error; nothing falls through):
 *  1. aws.access_key_id + aws.secret_access_key (+ aws.session_token);
 *     one without the other is OB_ERR_CONFIG;
 *  2. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, skipped
 *     when aws.profile names a profile (as botocore skips the environment
 *     for an explicitly given profile; AWS_PROFILE does not skip it);
 *  3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *     (+ AWS_ROLE_SESSION_NAME), STS AssumeRoleWithWebIdentity, the token
 *     file read at every call;
 *  4. the profile (aws.profile, else AWS_PROFILE, else "default") of the
 *     shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 *     ~/.aws/credentials, sections [name]) and config file
 *     (AWS_CONFIG_FILE, default ~/.aws/config, sections [profile name] or
 *     [default]), a key in the former winning (a profile named by
 *     aws.profile or AWS_PROFILE in neither file is OB_ERR_CONFIG, as in
 *     botocore, not a fall through to another identity): role_arn (with
 *     web_identity_token_file, or AssumeRole signed with source_profile's
 *     credentials, followed through chains (a source profile with static
 *     keys gives them, its own role_arn not assumed), or credential_source
 *     Environment, EcsContainer or Ec2InstanceMetadata;
 *     role_session_name, external_id, duration_seconds), else the static
 *     keys of the credentials file, else credential_process, else the
 *     static keys of the config file;
 *  5. the container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on
 *     169.254.170.2, else AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or
 *     http to loopback or the ECS/EKS addresses) with the Authorization of
 *     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every call) or
 *     AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *  6. EC2 instance metadata (IMDSv2, IMDSv1 where it has no tokens
 *     unless AWS_EC2_METADATA_V1_DISABLED is true) at
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254,
 *     or http://[fd00:ec2::254] when AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
 *     is IPv6), unless AWS_EC2_METADATA_DISABLED is true.
 * STS is called at opt->region's endpoint (AWS_ENDPOINT_URL_STS or
 * AWS_ENDPOINT_URL override it). Temporary credentials have expires_at.
 * A source with an access key but no secret (or the reverse) is an error
 * naming it; no source at all is OB_ERR_CREDENTIALS listing what was
 * tried. On success *out is filled (the caller owns it). */
enum ob_err ob_credentials_resolve(const struct ob_credentials_options *opt, struct ob_aws_credentials *out,
                                   struct ob_error *err);

/* Which source ob_credentials_resolve would use, said without using it:
 * the same walk reading the same files and variables, with the same
 * configuration errors, but no request made and no process run.
 * Appends the source's name to said ("web identity (role ARN, token file
 * PATH)", "instance metadata (IMDSv2, http://169.254.169.254)"), or
 * "none found (tried ...)" (which resolving is an error). */
enum ob_err ob_credentials_describe(const struct ob_credentials_options *opt, struct ob_buf *said,
                                    struct ob_error *err);

/* The region: configured (aws.region), else AWS_REGION, else
 * AWS_DEFAULT_REGION, else `region` of the profile (profile, else
 * AWS_PROFILE, else "default") in the shared config file, else instance
 * metadata (unless AWS_EC2_METADATA_DISABLED is true). *out is malloc'ed
 * (the caller frees it). None found is OB_ERR_CONFIG. */
enum ob_err ob_aws_region_resolve(const char *configured, const char *profile, char **out,
                                  struct ob_error *err);

/* Where the region comes from, without asking instance metadata: appends
 * "eu-west-1 (AWS_REGION)", "from instance metadata URL", or "none found: set
 * aws.region, ..." (which resolving is an error). */
enum ob_err ob_region_describe(const char *configured, const char *profile, struct ob_buf *said,
                                   struct ob_error *err);

#endif
