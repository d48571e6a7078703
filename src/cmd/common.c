#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/buf.h"
#include "core/codec.h"
#include "ops/log.h"
#include "sinks/sink.h"

const char *cmd_config_path(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("OUTBOXD_CONFIG");
    if (env && *env)
        return env;
    return "/etc/outboxd/outboxd.yaml";
}

int cmd_load_config(const char *given, struct ob_config **out)
{
    struct ob_config_diag diag = { 0 };
    if (ob_config_load(cmd_config_path(given), &ob_sinks, out, &diag) != OB_OK) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s%s\n", ob_log_journal_prefix(OB_SEV_ERROR), diag.lines[i]);
        ob_config_diag_free(&diag);
        return EX_CONFIG;
    }
    ob_config_diag_free(&diag);
    return EX_OK;
}

void cmd_setup_log(const struct ob_config *cfg)
{
    ob_log_setup(cfg->log.level, cfg->log.format == OB_LOG_JSON);
}

void cmd_log_aws(const struct ob_cred_context *aws)
{
    struct ob_cred_snapshot *s = ob_cred_acquire(aws->credentials);
    char expiry[OB_ISO8601_LEN] = "";
    if (s->creds.expires_at)
        ob_iso8601_ms(s->creds.expires_at * 1000, expiry);
    ob_log_info("region %s; credentials: %s%s%s", aws->region, s->creds.source, *expiry ? ", expiring at " : "",
                expiry);
    ob_cred_release(s);
}

int cmd_exit_code(enum ob_err code)
{
    switch (code) {
    case OB_OK: return EX_OK;
    case OB_ERR_CONFIG:
    case OB_ERR_CREDENTIALS:
    case OB_ERR_MISMATCH:
    case OB_ERR_ACCESS_DENIED:
    case OB_ERR_NOT_FOUND: return EX_CONFIG;
    case OB_ERR_INVALID:
    case OB_ERR_VALIDATION:
    case OB_ERR_CONDITION_FAILED:
    case OB_ERR_TRANSACTION_CANCELED: return EX_DATAERR;
    case OB_ERR_NETWORK:
    case OB_ERR_HTTP:
    case OB_ERR_THROTTLED:
    case OB_ERR_SERVICE:
    case OB_ERR_RESOURCE_IN_USE: return EX_UNAVAILABLE;
    case OB_ERR_IO: return EX_IOERR;
    default: return EX_SOFTWARE;
    }
}

/* getopt_long hands back extra[i] as EXTRA_OPTION + i, beyond any short option. */
#define EXTRA_OPTION 256

int cmd_parse_args(int argc, char **argv, const char *name, const char *usage, const struct cmd_option *extra,
                   struct ob_config **cfg)
{
    const char *path = NULL;
    int rc = EX_USAGE;
    size_t n_extra = 0;
    while (extra && extra[n_extra].name)
        n_extra++;
    /* --config, the extras, and the zeroed end. */
    struct option *longopts = ob_xcalloc(n_extra + 2, sizeof *longopts);
    longopts[0] = (struct option){ "config", required_argument, NULL, 'c' };
    for (size_t i = 0; i < n_extra; i++)
        longopts[i + 1] = (struct option){ extra[i].name, extra[i].value ? required_argument : no_argument, NULL,
                                           EXTRA_OPTION + (int)i };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        const struct cmd_option *o = ch >= EXTRA_OPTION ? &extra[ch - EXTRA_OPTION] : NULL;
        if (ch == 'c') {
            path = optarg;
        } else if (o && o->value) {
            *o->value = optarg;
        } else if (o) {
            *o->flag = true;
        } else {
            fprintf(stderr, "usage: %s\n", usage);
            goto out;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd %s: unexpected argument '%s'\nusage: %s\n", name, argv[optind], usage);
        goto out;
    }
    rc = cmd_load_config(path, cfg);
    if (rc == EX_OK)
        cmd_setup_log(*cfg);
out:
    free(longopts);
    return rc;
}

int cmd_config_only(int argc, char **argv, const char *name, const char *usage, struct ob_config **cfg)
{
    return cmd_parse_args(argc, argv, name, usage, NULL, cfg);
}
