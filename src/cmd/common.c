#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "ops/log.h"

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
    if (ob_config_load(cmd_config_path(given), out, &diag) != OB_OK) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        ob_config_diag_free(&diag);
        return EX_CONFIG;
    }
    ob_config_diag_free(&diag);
    return EX_OK;
}

void cmd_setup_log(const struct ob_config *cfg)
{
    static const enum ob_log_severity levels[] = {
        [OB_LOG_ERROR] = OB_SEV_ERROR,
        [OB_LOG_WARN] = OB_SEV_WARN,
        [OB_LOG_INFO] = OB_SEV_INFO,
        [OB_LOG_DEBUG] = OB_SEV_DEBUG,
    };
    ob_log_setup(levels[cfg->log.level], cfg->log.format == OB_LOG_JSON);
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

int cmd_config_only(int argc, char **argv, const char *name, const char *usage, struct ob_config **cfg)
{
    const char *path = NULL;
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { 0 },
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        if (ch != 'c') {
            fprintf(stderr, "usage: %s\n", usage);
            return EX_USAGE;
        }
        path = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd %s: unexpected argument '%s'\nusage: %s\n", name, argv[optind], usage);
        return EX_USAGE;
    }
    int rc = cmd_load_config(path, cfg);
    if (rc == EX_OK)
        cmd_setup_log(*cfg);
    return rc;
}
