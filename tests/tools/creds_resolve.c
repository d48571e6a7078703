/* creds_resolve: the credential and region chains as outboxd walks them,
 * for the integration tests of each source (tests/integration/
 * test_credential_sources.py). Never prints a secret or a token.
 *
 *   creds_resolve [--profile P] [--region R] [--times N]
 *
 * Resolves the region (R is aws.region), then the credentials N times
 * (default 1; a refresh is the same call again), with STS called in
 * that region; before each time after the first it waits for a line on
 * stdin (the test changes something meanwhile). stdout, one line each:
 *   region REGION
 *   credentials SOURCE|ACCESS_KEY_ID|EXPIRES_AT|token or no-token
 * On an error: "error: MESSAGE" on stderr and the exit status of `run`
 * for its code (sysexits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "aws/credentials.h"

static int fail(const struct ob_error *err)
{
    fprintf(stderr, "error: %s\n", err->msg);
    switch (err->code) {
    case OB_ERR_CONFIG:
    case OB_ERR_CREDENTIALS:
    case OB_ERR_ACCESS_DENIED: return EX_CONFIG;
    case OB_ERR_NETWORK:
    case OB_ERR_SERVICE:
    case OB_ERR_THROTTLED:
    case OB_ERR_HTTP: return EX_UNAVAILABLE;
    default: return EX_SOFTWARE;
    }
}

int main(int argc, char **argv)
{
    const char *profile = NULL, *configured = NULL;
    int times = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--profile") == 0) {
            profile = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--region") == 0) {
            configured = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--times") == 0) {
            times = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: creds_resolve [--profile P] [--region R] [--times N]\n");
            return EX_USAGE;
        }
    }
    struct ob_error err = { 0 };
    char *region = NULL;
    if (ob_aws_region_resolve(configured, profile, &region, &err) != OB_OK)
        return fail(&err);
    printf("region %s\n", region);
    fflush(stdout);
    struct ob_credentials_options opt = { .profile = profile, .region = region };
    int status = EX_OK;
    char line[64];
    for (int i = 0; i < times && status == EX_OK; i++) {
        struct ob_aws_credentials c;
        if (i > 0 && !fgets(line, sizeof line, stdin))
            break;
        if (ob_credentials_resolve(&opt, &c, &err) != OB_OK) {
            status = fail(&err);
            break;
        }
        printf("credentials %s|%s|%lld|%s\n", c.source, c.access_key_id, (long long)c.expires_at,
               c.session_token ? "token" : "no-token");
        fflush(stdout);
        ob_aws_credentials_free(&c);
    }
    free(region);
    return status;
}
