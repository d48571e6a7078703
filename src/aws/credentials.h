/* AWS credentials and region from the first links of the SDKs' default
 * chain: the configuration, the environment, the shared credentials file
 * and the shared config file. Resolution happens once at startup and reads
 * files; signing itself (aws/sigv4.h) never does.
 *
 * Ownership: struct ob_aws_credentials owns its strings; release them with
 * ob_aws_credentials_free, which also wipes them. Error messages name the
 * source that failed (a file and profile, an environment variable or a
 * config key) and never contain a key, a secret or a token. */
#ifndef OB_AWS_CREDENTIALS_H
#define OB_AWS_CREDENTIALS_H

#include <stdint.h>

#include "outboxd/error.h"

struct ob_aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when there is none */
    /* When they stop working, in Unix seconds; 0: they do not expire
     * (long-term keys). Temporary ones are refreshed before then. */
    int64_t expires_at;
    /* Where they came from, for logs: "config", "environment",
     * "shared credentials file /root/.aws/credentials (profile x)". */
    char source[256];
};

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

/* In the SDKs' order:
 *  1. aws.access_key_id + aws.secret_access_key (+ aws.session_token);
 *     one without the other is OB_ERR_CONFIG;
 *  2. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, skipped
 *     when aws.profile names a profile (as botocore skips the environment
 *     for an explicitly given profile; AWS_PROFILE does not skip it);
 *  3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 *     ~/.aws/credentials), section [name];
 *  4. the shared config file (AWS_CONFIG_FILE, default ~/.aws/config),
 *     section [profile name], or [default] for the default profile;
 * where the profile is aws.profile, else AWS_PROFILE, else "default".
 * A source with an access key but no secret (or the reverse) is an error
 * naming it; no source at all is OB_ERR_CREDENTIALS listing what was
 * tried. On success *out is filled (the caller owns it). */
enum ob_err ob_credentials_resolve(const struct ob_credentials_options *opt, struct ob_aws_credentials *out,
                                   struct ob_error *err);

void ob_aws_credentials_free(struct ob_aws_credentials *c);

/* The region: configured (aws.region), else AWS_REGION, else
 * AWS_DEFAULT_REGION, else `region` of the profile (profile, else
 * AWS_PROFILE, else "default") in the shared config file. *out is
 * malloc'ed (the caller frees it). None found is OB_ERR_CONFIG. */
enum ob_err ob_aws_region_resolve(const char *configured, const char *profile, char **out,
                                  struct ob_error *err);

#endif
