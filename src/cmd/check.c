/* outboxd check: validate a config, print every error or a summary, and
 * say where the AWS credentials and region would come from (the chain's
 * walk without its requests: check calls nothing). */
#include <stdio.h>
#include <stdlib.h>

#include "aws/credentials.h"
#include "cmd/cmd.h"

/* Prints "NAME: WHAT" on stdout, or an error on stderr (a source `run`
 * would refuse: a key without its secret, a source_profile loop); returns
 * rc. None found is said, not an error: the machine check runs on may not
 * be the one the daemon will. */
static enum ob_err say(const struct ob_config *cfg, const char *name, enum ob_err rc, const struct ob_buf *what,
                       const struct ob_error *err)
{
    if (rc)
        fprintf(stderr, "%s: error: %s\n", cfg->path, err->msg);
    else
        printf("%s: %s\n", name, ob_buf_cstr(what));
    return rc;
}

/* Where the region and the credentials would come from. Returns the exit
 * status. */
static int print_aws_sources(const struct ob_config *cfg)
{
    struct ob_buf credentials = { 0 }, region = { 0 };
    struct ob_error err = { 0 };
    struct ob_credentials_options co = ob_credentials_options_of(&cfg->aws);
    enum ob_err region_rc = ob_region_describe(cfg->aws.region, cfg->aws.profile, &region, &err);
    say(cfg, "region", region_rc, &region, &err);
    enum ob_err rc = ob_credentials_describe(&co, &credentials, &err);
    say(cfg, "credentials", rc, &credentials, &err);
    ob_buf_free(&credentials);
    ob_buf_free(&region);
    return cmd_exit_code(region_rc ? region_rc : rc);
}

int cmd_check(int argc, char **argv)
{
    struct ob_config *cfg;
    int rc = cmd_config_only(argc, argv, "check", "outboxd check -c FILE", &cfg);
    if (rc)
        return rc;
    ob_config_print_summary(cfg, stdout);
    rc = print_aws_sources(cfg);
    ob_config_free(cfg);
    return rc;
}
